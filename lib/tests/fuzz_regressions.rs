//! Inputs the fuzzers found, kept as regression tests (see fuzz/README.md).

use meshca::{
    verify_bundle, BundleFiles, IntermediateParams, Item, KeyType, PrivateKey, RootCa, RootParams,
    VerifyOptions,
};
use time::macros::datetime;

/// `fuzz/artifacts/roundtrip/crash-8fe4d151...` ("o world me\xffesh", 14
/// bytes): the round-trip harness sliced the O/CN split out of bounds for
/// short inputs (a harness bug, fixed). The property it checks must hold
/// for that input's parameters: an empty-looking O falls back to "x".
#[test]
fn roundtrip_crash_8fe4d151_short_input() {
    let data: &[u8] = b"o world me\xffesh";
    let now = datetime!(2024-10-04 00:00 UTC);
    let kt = if data[0].is_multiple_of(2) {
        KeyType::EcdsaP256
    } else {
        KeyType::EcdsaP384
    };
    let mut rp = RootParams::default();
    rp.key_type = kt;
    rp.org = "x".into();
    rp.cn = "esh".into();
    let root = RootCa::generate(&rp, now).unwrap();
    let mut ip = IntermediateParams::default();
    ip.key_type = kt;
    ip.org = "x".into();
    ip.cn = "esh".into();
    let issued = root
        .issue_intermediate("ccc", &ip, PrivateKey::generate(kt).unwrap(), now)
        .unwrap();
    let bundle = issued.ca.bundle();
    let items = meshca::inspect_pem("ca-cert.pem", bundle.ca_cert.as_bytes(), now).unwrap();
    let Some(Item::Certificate(c)) = items.first() else {
        panic!("no certificate")
    };
    assert_eq!(c.subject, "O=x, CN=esh, L=ccc");
    let mut files = BundleFiles::default();
    files.ca_cert = Some(bundle.ca_cert.clone().into_bytes());
    files.ca_key = Some(zeroize::Zeroizing::new(bundle.ca_key.as_bytes().to_vec()));
    files.cert_chain = Some(bundle.cert_chain.clone().into_bytes());
    files.root_cert = Some(bundle.root_cert.clone().into_bytes());
    assert!(verify_bundle("ccc", Some("ccc"), &files, &VerifyOptions::at(now)).is_empty());
}
