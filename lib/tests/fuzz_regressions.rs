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

// --- Work bounds on hostile bundles (found by hand while fuzzing
// `verify_mesh`): each input below made verification quadratic or worse.

mod hostile {
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
        GeneralSubtree, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, NameConstraints,
        SanType, SerialNumber,
    };
    use time::{Duration, OffsetDateTime};

    pub const NOW: OffsetDateTime = time::macros::datetime!(2030-01-01 00:00 UTC);

    pub struct Ca {
        pub params: CertificateParams,
        pub key: KeyPair,
        pub pem: String,
    }

    pub fn params(cn: &str, serial: u32) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::OrganizationName, "Istio");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        p.not_before = NOW - Duration::days(10);
        p.not_after = NOW + Duration::days(3650);
        p.use_authority_key_identifier_extension = true;
        p.key_identifier_method = KeyIdMethod::Sha256;
        let mut s = vec![0x11];
        s.extend_from_slice(&serial.to_be_bytes());
        p.serial_number = Some(SerialNumber::from_slice(&s));
        p
    }

    pub fn self_signed(p: CertificateParams, key: KeyPair) -> Ca {
        let pem = p.self_signed(&key).unwrap().pem();
        Ca {
            params: p,
            key,
            pem,
        }
    }

    pub fn signed(p: CertificateParams, key: KeyPair, issuer: &Ca) -> Ca {
        let signer = Issuer::from_params(&issuer.params, &issuer.key);
        let pem = p.signed_by(&key, &signer).unwrap().pem();
        Ca {
            params: p,
            key,
            pem,
        }
    }

    pub fn intermediate(issuer: &Ca, dns: &[String]) -> Ca {
        let mut p = params("Intermediate CA", 7);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.subject_alt_names = dns
            .iter()
            .map(|d| SanType::DnsName(d.as_str().try_into().unwrap()))
            .collect();
        signed(p, KeyPair::generate().unwrap(), issuer)
    }

    pub fn permitting(dns: &[String]) -> NameConstraints {
        NameConstraints {
            permitted_subtrees: dns
                .iter()
                .map(|d| GeneralSubtree::DnsName(d.clone()))
                .collect(),
            excluded_subtrees: vec![],
        }
    }

    pub fn crl_by(issuer: &Ca, number: u8) -> String {
        let p = CertificateRevocationListParams {
            this_update: NOW - Duration::days(1),
            next_update: NOW + Duration::days(30),
            crl_number: SerialNumber::from_slice(&[number]),
            issuing_distribution_point: None,
            revoked_certs: vec![],
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let signer = Issuer::from_params(&issuer.params, &issuer.key);
        p.signed_by(&signer).unwrap().pem().unwrap()
    }

    pub fn files(ca: &Ca, chain: &[&str], roots: &[&str]) -> meshca::BundleFiles {
        let mut f = meshca::BundleFiles::default();
        f.ca_cert = Some(ca.pem.clone().into_bytes());
        f.ca_key = Some(zeroize::Zeroizing::new(ca.key.serialize_pem().into_bytes()));
        let mut all = vec![ca.pem.as_str()];
        all.extend_from_slice(chain);
        f.cert_chain = Some(all.concat().into_bytes());
        f.root_cert = Some(roots.concat().into_bytes());
        f
    }
}

/// Runs `verify_bundle` and asserts it took under `limit` (the inputs
/// below took from seconds to minutes before their fixes).
fn timed_verify(files: &BundleFiles, limit: std::time::Duration) -> Vec<meshca::Finding> {
    let started = std::time::Instant::now();
    let f = verify_bundle("c1", None, files, &VerifyOptions::at(hostile::NOW));
    let took = started.elapsed();
    assert!(took < limit, "verify took {took:?}");
    f
}

/// Nine CAs with one name and one key, each self-signed (so each verifies
/// every other), under a root without keyCertSign so no path is clean:
/// signature checks were charged only for new (child, issuer) pairs, so
/// after 100 checks the remembered ones let the search spell out and judge
/// 20,000 paths (seconds of work for a 6 KiB chain).
#[test]
fn mutually_signing_same_name_cas_do_not_multiply_paths() {
    use hostile::*;
    let key_pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let key = || rcgen::KeyPair::from_pem(&key_pem).unwrap();
    let mut root_params = params("Shared CA", 1);
    root_params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let root = self_signed(root_params, key());
    let twins: Vec<Ca> = (0..9)
        .map(|i| self_signed(params("Shared CA", 100 + i), key()))
        .collect();
    let ca = intermediate(&root, &["istiod.istio-system.svc".to_owned()]);
    let chain: Vec<&str> = twins.iter().map(|t| t.pem.as_str()).collect();
    let f = timed_verify(
        &files(&ca, &chain, &[&root.pem]),
        std::time::Duration::from_secs(2),
    );
    assert!(
        f.iter()
            .any(|f| f.code == meshca::Code::NoKeyCertSign && f.file == "c1/root-cert.pem"),
        "{f:#?}"
    );
}

/// 600 DNS names under a root permitting 500 DNS subtrees: 300,000
/// comparisons, past Go's 250,000 (`TooManyConstraints`, so istiod refuses
/// the bundle), and every candidate path repeated them. meshca now counts
/// as Go does and says so.
#[test]
fn name_constraints_past_gos_comparison_limit_are_an_error() {
    use hostile::*;
    let subtrees: Vec<String> = (0..499)
        .map(|i| format!("p{i}.example"))
        .chain(["svc".to_owned()])
        .collect();
    let mut root_params = params("Root CA", 1);
    root_params.name_constraints = Some(permitting(&subtrees));
    let root = self_signed(root_params, rcgen::KeyPair::generate().unwrap());
    let names: Vec<String> = (0..600).map(|i| format!("n{i}.istio-system.svc")).collect();
    let ca = intermediate(&root, &names);
    let f = timed_verify(
        &files(&ca, &[&root.pem], &[&root.pem]),
        std::time::Duration::from_secs(10),
    );
    assert!(
        f.iter().any(|f| f.code == meshca::Code::NameNotPermitted
            && f.file == "c1/root-cert.pem"
            && f.message.contains("250000 comparisons")),
        "{f:#?}"
    );
    // Under the limit (fewer names), the same constraints are fine.
    let ca = intermediate(&root, &names[..10]);
    let f = timed_verify(
        &files(&ca, &[&root.pem], &[&root.pem]),
        std::time::Duration::from_secs(10),
    );
    assert!(
        !f.iter().any(|f| f.severity == meshca::Severity::Error),
        "{f:#?}"
    );
}

/// 40 copies of the root's CRL against a chain holding 40 copies of the
/// root: every CRL was checked against every same-named certificate, one
/// signature check per pair (quadratic: 1 MiB files meant minutes).
#[test]
fn crl_signature_checks_stop_at_their_budget() {
    use hostile::*;
    let root = self_signed(params("Root CA", 1), rcgen::KeyPair::generate().unwrap());
    let ca = intermediate(&root, &["istiod.istio-system.svc".to_owned()]);
    let copies: Vec<&str> = std::iter::repeat_n(root.pem.as_str(), 40).collect();
    let mut f = files(&ca, &copies, &[&root.pem]);
    let root_crl = crl_by(&root, 1);
    f.ca_crl = Some(format!("{}{}", crl_by(&ca, 2), root_crl.repeat(40)).into_bytes());
    let found = timed_verify(&f, std::time::Duration::from_secs(10));
    assert!(
        found.iter().any(|x| x.code == meshca::Code::CrlBadSignature
            && x.file == "c1/ca-crl.pem"
            && x.message.contains("signature checks")),
        "{found:#?}"
    );
    // One copy of each: clean.
    let mut f = files(&ca, &[&root.pem], &[&root.pem]);
    f.ca_crl = Some(format!("{}{}", crl_by(&ca, 2), root_crl).into_bytes());
    let found = timed_verify(&f, std::time::Duration::from_secs(10));
    assert!(
        !found.iter().any(|x| x.severity == meshca::Severity::Error),
        "{found:#?}"
    );
}

/// root-crl.pem: 30 CRLs naming the root but signed by another key, against
/// 30 copies of the root in root-cert.pem: one check per pair, as above.
#[test]
fn root_crl_signature_checks_stop_at_their_budget() {
    use hostile::*;
    let root = self_signed(params("Root CA", 1), rcgen::KeyPair::generate().unwrap());
    let impostor = self_signed(params("Root CA", 2), rcgen::KeyPair::generate().unwrap());
    let mut mesh = meshca::MeshFiles::default();
    mesh.root_cert = Some(root.pem.repeat(30).into_bytes());
    mesh.root_crl = Some(crl_by(&impostor, 1).repeat(30).into_bytes());
    let started = std::time::Instant::now();
    let groups = meshca::verify_mesh("", &mesh, &VerifyOptions::at(NOW));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let g = &groups[0];
    assert!(
        g.findings
            .iter()
            .any(|x| x.code == meshca::Code::CrlBadSignature
                && x.file == "root-crl.pem"
                && x.message.contains("signature checks")),
        "{g:#?}"
    );
}

/// A CA certificate with 20,000 extensions of distinct OIDs: Go's parser
/// rule against duplicate extensions was restated as a scan of the ones
/// seen so far (quadratic; Go uses a map). Go parses the certificate.
#[test]
fn many_extensions_are_checked_for_duplicates_in_linear_time() {
    use hostile::*;
    let root = self_signed(params("Root CA", 1), rcgen::KeyPair::generate().unwrap());
    let mut p = params("Intermediate CA", 7);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.subject_alt_names = vec![rcgen::SanType::DnsName(
        "istiod.istio-system.svc".try_into().unwrap(),
    )];
    p.custom_extensions = (0..20_000u64)
        .map(|i| rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, i], vec![]))
        .collect();
    let ca = signed(p, rcgen::KeyPair::generate().unwrap(), &root);
    let f = timed_verify(
        &files(&ca, &[&root.pem], &[&root.pem]),
        std::time::Duration::from_secs(5),
    );
    assert!(!f.iter().any(|f| f.code == meshca::Code::GoParse), "{f:#?}");
}

/// A certificatePolicies extension with 20,000 distinct policies: the same
/// quadratic scan for duplicates (Go: a map). One policy twice is refused,
/// as Go refuses it.
#[test]
fn many_certificate_policies_are_checked_for_duplicates_in_linear_time() {
    use der::asn1::ObjectIdentifier;
    use der::Encode;
    use hostile::*;
    let policies = |n: u32, twice: bool| -> Vec<u8> {
        let mut list: Vec<Vec<ObjectIdentifier>> = (0..n)
            // Arcs under 128 only: const-oid 0.9 encodes an arc of 128 as
            // 0x80 0x00, which Go (and goparse) rightly refuse.
            .map(|i| {
                let oid = format!(
                    "1.3.6.1.4.1.99999.{}.{}.{}",
                    i / 10_000,
                    i / 100 % 100,
                    i % 100
                );
                vec![ObjectIdentifier::new(&oid).unwrap()]
            })
            .collect();
        if twice {
            list.push(list[0].clone());
        }
        list.to_der().unwrap()
    };
    let root = self_signed(params("Root CA", 1), rcgen::KeyPair::generate().unwrap());
    let with = |content: Vec<u8>| {
        let mut p = params("Intermediate CA", 7);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.subject_alt_names = vec![rcgen::SanType::DnsName(
            "istiod.istio-system.svc".try_into().unwrap(),
        )];
        p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            &[2, 5, 29, 32],
            content,
        )];
        let ca = signed(p, rcgen::KeyPair::generate().unwrap(), &root);
        timed_verify(
            &files(&ca, &[&root.pem], &[&root.pem]),
            std::time::Duration::from_secs(5),
        )
    };
    let f = with(policies(20_000, false));
    assert!(!f.iter().any(|f| f.code == meshca::Code::GoParse), "{f:#?}");
    let f = with(policies(3, true));
    assert!(
        f.iter().any(|f| f.code == meshca::Code::GoParse
            && f.message.contains("invalid certificate policies")),
        "{f:#?}"
    );
}

/// `fuzz/artifacts/verify_mesh/crash-c55c4850...`: a ca-key.pem whose
/// BEGIN line ran into its base64 body. The pem crate's error quotes both
/// labels (`mismatching BEGIN ("...") and END ("...") tags`), and the
/// finding repeated it: key bytes in the report. Also a header line, which
/// the pem crate quotes the same way.
#[test]
fn verify_mesh_crash_c55c4850_pem_errors_do_not_echo_key_bytes() {
    const SECRET: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC";
    let keys = [
        format!("-----BEGIN PRIVATE KEY{SECRET}-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        format!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END {SECRET}-----\n"),
        format!("-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info {SECRET}\n\nAAAA\n-----END PRIVATE KEY-----\n"),
        format!("-----BEGIN PRIVATE KEY-----\n{SECRET}!!\n-----END PRIVATE KEY-----\n"),
    ];
    for key in keys {
        let mut files = BundleFiles::default();
        files.ca_key = Some(zeroize::Zeroizing::new(key.clone().into_bytes()));
        let f = verify_bundle("c1", None, &files, &VerifyOptions::at(hostile::NOW));
        assert!(f.iter().any(|f| f.file == "c1/ca-key.pem"), "{key}: {f:#?}");
        for finding in &f {
            assert!(!finding.message.contains(SECRET), "{key}: {finding:?}");
            assert!(!finding.message.contains("MIIEvQ"), "{key}: {finding:?}");
        }
        // The library's own error for the same bytes says no more.
        let e = PrivateKey::from_pem("ca-key.pem", key.as_bytes()).unwrap_err();
        assert!(!e.to_string().contains("MIIEvQ"), "{key}: {e}");
    }
}

/// Found by hand while fuzzing `verify_mesh`: a cacerts.yaml of 100,000
/// nested `[` took libyaml's scanner 17 s (its work per token grows with
/// the nesting depth), and 1 MiB of them minutes. Such YAML is now refused
/// before parsing; a normal Secret (a flow list or map or two) still reads.
#[test]
fn deeply_nested_secret_yaml_is_refused_quickly() {
    let deep = format!("{}{}", "[".repeat(400_000), "]".repeat(400_000));
    let started = std::time::Instant::now();
    let e = meshca::SecretData::from_yaml("cacerts.yaml", deep.as_bytes()).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert!(e.to_string().contains("nested deeper"), "{e}");
    let flow = b"apiVersion: v1\nkind: Secret\nmetadata: {name: cacerts, namespace: istio-system, labels: {a: b}}\ndata: {ca-cert.pem: QUJD}\n";
    let s = meshca::SecretData::from_yaml("cacerts.yaml", flow).unwrap();
    assert_eq!(
        s.data.get("ca-cert.pem").map(|v| v.as_slice()),
        Some(&b"ABC"[..])
    );
}

/// serde's error messages quote the values they met (`invalid type:
/// string "...", expected a map`), and the Secret's reasons repeated the
/// apiVersion and kind found: a cacerts.yaml whose data is a string put
/// that string (the key's base64) in the report.
#[test]
fn secret_yaml_errors_do_not_echo_its_values() {
    const SECRET: &str = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUV2UUlCQURBTkJna3Foa2lHOXcw";
    let docs = [
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: cacerts}}\ndata: {SECRET}\n"),
        format!("apiVersion: v1\nkind: {SECRET}\nmetadata: {{name: cacerts}}\ndata: {{}}\n"),
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: cacerts}}\ndata:\n  ca-key.pem: {SECRET}!!\n"),
        format!("apiVersion: v1\nkind: Secret\nmetadata: {SECRET}\n"),
    ];
    use hostile::*;
    let root = self_signed(params("Root CA", 1), rcgen::KeyPair::generate().unwrap());
    let ca = intermediate(&root, &["istiod.istio-system.svc".to_owned()]);
    for doc in docs {
        let e = meshca::SecretData::from_yaml("cacerts.yaml", doc.as_bytes()).unwrap_err();
        assert!(!e.to_string().contains("LS0tLS1"), "{doc}: {e}");
        let mut files = files(&ca, &[&root.pem], &[&root.pem]);
        files.cacerts_yaml = Some(zeroize::Zeroizing::new(doc.clone().into_bytes()));
        let f = verify_bundle("c1", None, &files, &VerifyOptions::at(hostile::NOW));
        assert!(
            f.iter().any(|f| f.code == meshca::Code::SecretInvalid),
            "{doc}: {f:#?}"
        );
        for finding in &f {
            assert!(!finding.message.contains("LS0tLS1"), "{doc}: {finding:?}");
        }
    }
}

/// The differential test (seed 8802976120286671589, case 34) flipped the
/// CRL Number extension's OID into issuingDistributionPoint's and
/// re-signed: an IDP whose value does not decode. BoringSSL fails to load
/// such a CRL (the oracle: "malformed issuingDistributionPoint"); verify
/// passed it. The case is kept in testdata/regressions/crl-idp-undecodable.
#[test]
fn a_crl_whose_issuing_distribution_point_does_not_decode_is_an_envoy_error() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/regressions/crl-idp-undecodable");
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let mut files = BundleFiles::default();
    files.ca_cert = Some(read("ca-cert.pem"));
    files.ca_key = Some(zeroize::Zeroizing::new(read("ca-key.pem")));
    files.cert_chain = Some(read("cert-chain.pem"));
    files.root_cert = Some(read("root-cert.pem"));
    files.ca_crl = Some(read("ca-crl.pem"));
    let findings = verify_bundle(
        "cluster1",
        Some("cluster1"),
        &files,
        &VerifyOptions::at(datetime!(2026-06-11 00:00 UTC)),
    );
    assert!(
        findings.iter().any(|f| f.code == meshca::Code::EnvoyParse
            && f.file == "cluster1/ca-crl.pem"
            && f.message.contains("issuingDistributionPoint")),
        "{findings:#?}"
    );
}
