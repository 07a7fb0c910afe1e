//! Name-constrained intermediates (`--name-constraints`) judged by three
//! verifiers: Go's crypto/x509 (the oracle, as istiod), OpenSSL
//! (`openssl verify -x509_strict`) and rustls-webpki (ztunnel's verifier).
//! A workload of the permitted trust domain must verify in Go and OpenSSL,
//! one of another trust domain signed by the same intermediate must be
//! refused by both; rustls-webpki refuses every SPIFFE identity below a URI
//! name constraint, which is why meshca refuses `--data-plane ambient`.

mod util;

#[path = "../../lib/tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, UnixTime};
use support::oracle;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use util::Dir;

/// The oracle, built once per test process.
fn oracle_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        oracle::build(
            &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oracle"),
            "oracle-nc",
        )
    })
    .clone()
}

/// A mesh in `certs/` with one name-constrained cluster `c1` and the
/// workloads `ns1` (cluster.local), `ns2` (other.domain) and `ns3`
/// (sub.cluster.local), all issued by `c1`.
fn constrained_mesh(key_type: &str, extra: &[&str]) -> Dir {
    let dir = Dir::new();
    let mut args = vec![
        "init",
        "--dir",
        "certs",
        "--key-type",
        key_type,
        "--name-constraints",
    ];
    args.extend_from_slice(extra);
    args.push("c1");
    dir.ok(&args);
    for (ns, td) in [
        ("ns1", "cluster.local"),
        ("ns2", "other.domain"),
        ("ns3", "sub.cluster.local"),
    ] {
        dir.ok(&[
            "workload",
            "--dir",
            "certs",
            "--cluster",
            "c1",
            "--key-type",
            key_type,
            "--trust-domain",
            td,
            ns,
        ]);
    }
    dir
}

fn der_of(dir: &Dir, path: &str) -> Vec<u8> {
    let text = dir.read(path);
    let blocks = pem::parse_many(text.as_bytes()).unwrap();
    assert!(!blocks.is_empty(), "{path}: no PEM block");
    blocks[0].contents().to_vec()
}

/// `openssl verify -x509_strict` of `leaf` with the mesh root as the
/// only trust anchor and the cluster's intermediate as untrusted chain.
fn openssl_verify(dir: &Dir, leaf: &str) -> (bool, String) {
    let out = dir.tool(
        "openssl",
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            "certs/root-cert.pem",
            "-untrusted",
            "certs/c1/ca-cert.pem",
            leaf,
        ],
    );
    let text = format!("{}{}", util::stdout(&out), util::stderr(&out));
    (out.status.success(), text)
}

/// rustls-webpki's verdict on `leaf` as a server and as a client (mTLS),
/// as ztunnel verifies a peer: the mesh root as trust anchor, the
/// cluster's intermediate as intermediate.
fn webpki_verify(dir: &Dir, leaf: &str) -> Vec<Result<(), webpki::Error>> {
    let root = CertificateDer::from(der_of(dir, "certs/root-cert.pem"));
    let inter = CertificateDer::from(der_of(dir, "certs/c1/ca-cert.pem"));
    let leaf = CertificateDer::from(der_of(dir, leaf));
    let anchor = webpki::anchor_from_trusted_cert(&root).unwrap();
    let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
    let now = UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap(),
    ));
    [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::client_auth(),
    ]
    .into_iter()
    .map(|usage| {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            std::slice::from_ref(&anchor),
            std::slice::from_ref(&inter),
            now,
            usage,
            None,
            None,
        )
        .map(|_| ())
    })
    .collect()
}

fn go_verdict(dir: &Dir, flags: &[&str]) -> oracle::Verdict {
    let at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let mut v = oracle::run_with(&oracle_bin(), &at, flags, &[dir.join("certs/c1")]);
    assert_eq!(v.len(), 1);
    v.remove(0)
}

#[test]
fn workloads_of_the_trust_domain_verify_and_of_another_are_refused_by_go_and_openssl() {
    for key_type in ["ecdsa-p256", "rsa-2048"] {
        let dir = constrained_mesh(key_type, &[]);
        // The extension is critical and permits the URI host and istiod's SAN.
        let text = dir.openssl(&[
            "x509",
            "-in",
            "certs/c1/ca-cert.pem",
            "-noout",
            "-ext",
            "nameConstraints",
        ]);
        assert!(text.contains("Name Constraints: critical"), "{text}");
        assert!(text.contains("URI:cluster.local"), "{text}");
        assert!(text.contains("DNS:istiod.istio-system.svc"), "{text}");

        // OpenSSL.
        let (ok, text) = openssl_verify(&dir, "certs/ns1/workload-cert.pem");
        assert!(
            ok,
            "{key_type}: openssl refuses the trust domain's workload: {text}"
        );
        let (ok, text) = openssl_verify(&dir, "certs/ns2/workload-cert.pem");
        assert!(
            !ok,
            "{key_type}: openssl accepts another trust domain: {text}"
        );
        assert!(text.contains("permitted subtree violation"), "{text}");

        // Go, as istiod and Go peers: the oracle signs a leaf with the
        // cluster's CA and verifies it (and istiod's DNS certificate).
        let v = go_verdict(&dir, &[]);
        assert!(v.ok, "{key_type}: Go refuses: {} {}", v.stage, v.reason);
        let v = go_verdict(&dir, &["--workload-id", "spiffe://other.domain/ns/x/sa/y"]);
        assert!(!v.ok, "{key_type}: Go accepts another trust domain");
        assert_eq!(v.stage, "leaf");
        assert!(
            v.reason.contains("is not permitted by any constraint"),
            "{}",
            v.reason
        );

        // meshca verify agrees with both.
        dir.ok(&["verify", "certs"]);
    }
}

/// Go matches a URI constraint as a domain (the host or any subdomain,
/// verify.go matchDomainConstraint); OpenSSL takes it as the host only.
/// The README and SECURITY.md state the wider of the two.
#[test]
fn sub_trust_domains_are_permitted_by_go_but_not_by_openssl() {
    let dir = constrained_mesh("ecdsa-p256", &[]);
    let (ok, text) = openssl_verify(&dir, "certs/ns3/workload-cert.pem");
    assert!(!ok, "openssl accepts spiffe://sub.cluster.local: {text}");
    let v = go_verdict(
        &dir,
        &["--workload-id", "spiffe://sub.cluster.local/ns/x/sa/y"],
    );
    assert!(v.ok, "Go refuses a sub-domain: {} {}", v.stage, v.reason);
}

/// rustls-webpki 0.103 does not implement URI name constraints and fails
/// closed (src/subject_name/mod.rs): every SPIFFE identity below the
/// constrained intermediate is refused, that of the trust domain too. The
/// same workload profile under an unconstrained intermediate verifies, so
/// the constraint is the cause.
#[test]
fn webpki_refuses_every_spiffe_identity_below_a_uri_constraint() {
    let dir = constrained_mesh("ecdsa-p256", &[]);
    for leaf in ["certs/ns1/workload-cert.pem", "certs/ns2/workload-cert.pem"] {
        for r in webpki_verify(&dir, leaf) {
            assert_eq!(r, Err(webpki::Error::NameConstraintViolation), "{leaf}");
        }
    }
    let plain = Dir::new();
    plain.ok(&["init", "--dir", "certs", "--key-type", "ecdsa-p256", "c1"]);
    plain.ok(&[
        "workload",
        "--dir",
        "certs",
        "--cluster",
        "c1",
        "--key-type",
        "ecdsa-p256",
        "ns1",
    ]);
    for r in webpki_verify(&plain, "certs/ns1/workload-cert.pem") {
        assert_eq!(r, Ok(()));
    }
}

#[test]
fn ambient_data_plane_with_name_constraints_is_refused_and_writes_nothing() {
    let dir = Dir::new();
    let out = dir.meshca(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--name-constraints",
        "--data-plane",
        "ambient",
        "c1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", util::stderr(&out));
    assert!(util::stderr(&out).contains("rustls-webpki"));
    assert!(!dir.join("certs/root-cert.pem").exists());
    // Without constraints an ambient mesh is fine.
    dir.ok(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--data-plane",
        "ambient",
        "c1",
    ]);
}

#[test]
fn constraint_options_without_name_constraints_are_a_usage_error() {
    let dir = Dir::new();
    for extra in [
        ["--trust-domain", "example.org"],
        ["--permit-dns", "example.com"],
    ] {
        let mut args = vec!["init", "--dir", "certs", "--key-type", "ecdsa-p256"];
        args.extend_from_slice(&extra);
        args.push("c1");
        let out = dir.meshca(&args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
    }
    let out = dir.meshca(&[
        "intermediate",
        "--dir",
        "certs",
        "--name-constraints",
        "--trust-domain",
        "Bad_Domain",
        "c1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    assert!(util::stderr(&out).contains("trust domain"));
    assert!(!dir.join("certs").exists());
}

/// Several trust domains and extra DNS suffixes: each trust domain's
/// workloads verify; `meshca verify` checks against the one it is given.
#[test]
fn several_trust_domains_and_dns_suffixes() {
    let dir = Dir::new();
    dir.ok(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--name-constraints",
        "--trust-domain",
        "east.example",
        "--trust-domain",
        "west.example",
        "--permit-dns",
        ".mesh.example.com",
        "c1",
    ]);
    let text = dir.openssl(&[
        "x509",
        "-in",
        "certs/c1/ca-cert.pem",
        "-noout",
        "-ext",
        "nameConstraints",
    ]);
    for want in [
        "URI:east.example",
        "URI:west.example",
        "DNS:istiod.istio-system.svc",
        "DNS:.mesh.example.com",
    ] {
        assert!(text.contains(want), "{want} missing: {text}");
    }
    dir.ok(&[
        "workload",
        "--dir",
        "certs",
        "--cluster",
        "c1",
        "--key-type",
        "ecdsa-p256",
        "--trust-domain",
        "west.example",
        "ns1",
    ]);
    let (ok, text) = openssl_verify(&dir, "certs/ns1/workload-cert.pem");
    assert!(ok, "{text}");
    let v = go_verdict(&dir, &["--trust-domain", "west.example"]);
    assert!(v.ok, "{} {}", v.stage, v.reason);
    // verify's default trust domain (cluster.local) is not permitted.
    let out = dir.meshca(&["verify", "certs"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(util::stdout(&out).contains("name-not-permitted"));
    dir.ok(&["verify", "--trust-domain", "east.example", "certs"]);
}

/// The constraints live in the certificate, so every workflow that
/// re-issues from the loaded profile keeps them: the rotation's new
/// intermediates carry the same extension.
#[test]
fn reissue_and_rotation_keep_the_name_constraints() {
    let dir = Dir::new();
    dir.ok(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--name-constraints",
        "--trust-domain",
        "example.org",
        "--permit-dns",
        "mesh.example.com",
        "c1",
    ]);
    dir.ok(&["root", "--dir", "new-root", "--key-type", "ecdsa-p256"]);
    dir.ok(&[
        "rotate",
        "--dir",
        "certs",
        "--new-root",
        "new-root",
        "--out",
        "rotation",
    ]);
    let ext = |path: &str| dir.openssl(&["x509", "-in", path, "-noout", "-ext", "nameConstraints"]);
    let before = ext("certs/c1/ca-cert.pem");
    assert!(before.contains("URI:example.org"), "{before}");
    assert_eq!(ext("rotation/stage-2/c1/ca-cert.pem"), before);
    assert_eq!(ext("rotation/stage-3/c1/ca-cert.pem"), before);

    // A re-issue with --force and no --name-constraints keeps them too; new
    // --name-constraints options replace them.
    let old_cert = dir.read("certs/c1/ca-cert.pem");
    dir.ok(&[
        "intermediate",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--force",
        "c1",
    ]);
    assert_ne!(dir.read("certs/c1/ca-cert.pem"), old_cert);
    assert_eq!(ext("certs/c1/ca-cert.pem"), before);
    dir.ok(&[
        "intermediate",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--force",
        "--name-constraints",
        "--trust-domain",
        "example.net",
        "c1",
    ]);
    let after = ext("certs/c1/ca-cert.pem");
    assert!(after.contains("URI:example.net"), "{after}");
    assert!(
        !after.contains("example.org") && !after.contains("mesh.example.com"),
        "{after}"
    );
}
