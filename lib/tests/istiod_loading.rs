//! PEM-level loading rules that the differential test found, each as a
//! plain test: what istiod (Go's `pem.Decode`, its key parser chosen by the
//! PEM label) and Envoy do with a file, and what `verify_bundle` reports.

use meshca::{
    verify_bundle, BundleFiles, Code, IntermediateParams, KeyType, PrivateKey, RootCa, RootParams,
    Severity, VerifyOptions,
};
use time::macros::datetime;
use time::OffsetDateTime;
use zeroize::Zeroizing;

const NOW: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

fn good() -> BundleFiles {
    let mut p = RootParams::default();
    p.key_type = KeyType::EcdsaP256;
    let root = RootCa::generate(&p, NOW).unwrap();
    let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    let b = root
        .issue_intermediate("c1", &IntermediateParams::default(), key, NOW)
        .unwrap()
        .ca
        .bundle();
    let mut f = BundleFiles::default();
    f.ca_cert = Some(b.ca_cert.into_bytes());
    f.ca_key = Some(Zeroizing::new(b.ca_key.as_bytes().to_vec()));
    f.cert_chain = Some(b.cert_chain.into_bytes());
    f.root_cert = Some(b.root_cert.into_bytes());
    f
}

fn findings(f: &BundleFiles) -> Vec<(Severity, Code, String)> {
    verify_bundle(
        "c1",
        Some("c1"),
        f,
        &VerifyOptions::at(NOW + time::Duration::days(1)),
    )
    .into_iter()
    .map(|x| (x.severity, x.code, x.file))
    .collect()
}

fn errors(f: &BundleFiles) -> Vec<(Code, String)> {
    findings(f)
        .into_iter()
        .filter(|(s, _, _)| *s == Severity::Error)
        .map(|(_, c, file)| (c, file))
        .collect()
}

#[test]
fn a_good_bundle_has_no_finding() {
    assert_eq!(findings(&good()), vec![]);
}

/// Go's pem.Decode needs "-----BEGIN" at the start of a line: an indented
/// ca-cert.pem holds no certificate for istiod.
#[test]
fn an_indented_pem_block_is_not_seen_by_go() {
    let mut f = good();
    let text = String::from_utf8(f.ca_cert.take().unwrap()).unwrap();
    let indented: String = text.lines().map(|l| format!("  {l}\n")).collect();
    f.ca_cert = Some(indented.into_bytes());
    let e = errors(&f);
    assert!(
        e.iter()
            .any(|(c, file)| *c == Code::PemFormat && file == "c1/ca-cert.pem"),
        "{e:?}"
    );
}

/// istiod picks the key parser by the PEM label: a PKCS#8 key labelled
/// "EC PRIVATE KEY" does not parse.
#[test]
fn a_key_whose_label_does_not_match_its_format_is_unparsable() {
    let mut f = good();
    let key = String::from_utf8(f.ca_key.take().unwrap().to_vec()).unwrap();
    assert!(key.contains("BEGIN PRIVATE KEY"), "meshca writes PKCS#8");
    let relabelled = key.replace("PRIVATE KEY-----", "EC PRIVATE KEY-----");
    f.ca_key = Some(Zeroizing::new(relabelled.into_bytes()));
    let e = errors(&f);
    assert!(
        e.iter()
            .any(|(c, file)| *c == Code::KeyUnparsable && file == "c1/ca-key.pem"),
        "{e:?}"
    );
}

/// An empty ca-crl.pem is what istiod treats as no CRL: a warning only.
#[test]
fn an_empty_ca_crl_is_a_warning_not_an_error() {
    let mut f = good();
    f.ca_crl = Some(Vec::new());
    assert_eq!(errors(&f), vec![]);
    assert!(
        findings(&f)
            .iter()
            .any(|(s, _, file)| *s == Severity::Warning && file == "c1/ca-crl.pem"),
        "{:?}",
        findings(&f)
    );
}

/// A PEM block with header lines in cert-chain.pem is skipped by Go's
/// certificate pool; the root is in root-cert.pem anyway, so a warning.
#[test]
fn a_header_block_for_the_root_in_cert_chain_is_a_warning() {
    let mut f = good();
    let chain = String::from_utf8(f.cert_chain.take().unwrap()).unwrap();
    let second = chain.rfind("-----BEGIN CERTIFICATE-----").unwrap();
    let (head, tail) = chain.split_at(second);
    let tail = tail.replacen(
        "-----BEGIN CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nComment: the root\n\n",
        1,
    );
    f.cert_chain = Some(format!("{head}{tail}").into_bytes());
    assert_eq!(errors(&f), vec![]);
    assert!(
        findings(&f)
            .iter()
            .any(|(s, c, _)| *s == Severity::Warning && *c == Code::PemHeaders),
        "{:?}",
        findings(&f)
    );
}

/// istiod reads only the first PEM block of ca-key.pem: `openssl ecparam
/// -genkey` writes EC PARAMETERS first, and istiod then fails.
#[test]
fn ec_parameters_before_the_key_is_an_error() {
    let mut f = good();
    let key = String::from_utf8(f.ca_key.take().unwrap().to_vec()).unwrap();
    let params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
    f.ca_key = Some(Zeroizing::new(format!("{params}{key}").into_bytes()));
    let e = errors(&f);
    assert!(e.iter().any(|(_, file)| file == "c1/ca-key.pem"), "{e:?}");
}
