//! Parameters taken from the input -> generate a root and an intermediate
//! -> PEM -> parse back: the fields must be what was asked for, and the
//! bundle must verify clean.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshca::{IntermediateParams, Item, KeyType, PrivateKey, RootCa, RootParams};

fn text(bytes: &[u8]) -> String {
    // Printable ASCII letters, digits and spaces, 1..=20 characters.
    let s: String = bytes
        .iter()
        .map(|b| (b'a' + b % 26) as char)
        .take(20)
        .collect();
    if s.is_empty() { "x".into() } else { s }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    // ECDSA only: RSA key generation is too slow to fuzz.
    let kt = if data[0] % 2 == 0 { KeyType::EcdsaP256 } else { KeyType::EcdsaP384 };
    let root_days = 2 + u32::from(u16::from_le_bytes([data[1], data[2]])) % 36_000;
    let days = 1 + u32::from(u16::from_le_bytes([data[3], data[4]])) % 36_000;
    // O from data[8..split], CN from data[split..], split within bounds.
    let split = 8 + usize::from(data[5]) % (data.len() - 8 + 1);
    let org = text(data.get(8..split).unwrap_or_default());
    let cn = text(data.get(split..).unwrap_or_default());
    let cluster_len = 1 + usize::from(data[7]) % 20;
    let cluster: String = std::iter::repeat('c').take(cluster_len).collect();
    let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);

    let mut rp = RootParams::default();
    rp.key_type = kt;
    rp.days = root_days;
    rp.org = org.clone();
    rp.cn = cn.clone();
    let root = RootCa::generate(&rp, now).expect("root");
    let mut ip = IntermediateParams::default();
    ip.key_type = kt;
    ip.days = days;
    ip.org = org.clone();
    ip.cn = cn.clone();
    let key = PrivateKey::generate(kt).expect("key");
    let issued = root.issue_intermediate(&cluster, &ip, key, now).expect("intermediate");
    assert_eq!(issued.clamped, days > root_days);
    let bundle = issued.ca.bundle();

    let items = meshca::inspect_pem("ca-cert.pem", bundle.ca_cert.as_bytes(), now).expect("parse");
    let Some(Item::Certificate(c)) = items.first() else { panic!("no certificate") };
    assert_eq!(c.subject, format!("O={org}, CN={cn}, L={cluster}"));
    assert_eq!(c.issuer, format!("O={org}, CN={cn}"));
    assert!(c.is_ca);
    assert_eq!(c.path_len, Some(0));
    assert_eq!(c.key, kt.to_string());
    assert_eq!(c.days_left, i64::from(days.min(root_days)));

    let mut files = meshca::BundleFiles::default();
    files.ca_cert = Some(bundle.ca_cert.clone().into_bytes());
    files.ca_key = Some(zeroize::Zeroizing::new(bundle.ca_key.as_bytes().to_vec()));
    files.cert_chain = Some(bundle.cert_chain.clone().into_bytes());
    files.root_cert = Some(bundle.root_cert.clone().into_bytes());
    let mut opts = meshca::VerifyOptions::at(now);
    opts.warn_days = 0;
    let findings = meshca::verify_bundle(&cluster, Some(&cluster), &files, &opts);
    let unexpected: Vec<_> = findings
        .iter()
        .filter(|f| f.code != meshca::Code::OutlivesRoot)
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
});
