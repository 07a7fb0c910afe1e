//! Hostile input for the lifecycle commands (status, bundle, renew, root
//! --renew, audit) and the checks they rely on: each test is named after a
//! bug found by attacking the real binary.

mod util;

use std::fs;

use base64::Engine as _;
use util::{ecdsa_mesh, stderr, stdout};

/// A self-issued CA certificate (subject = issuer, CA:TRUE) whose
/// signature does not verify: one byte of the signature changed, as a
/// forger who cannot sign with the key would hand it out.
fn forged_root_pem() -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Root CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let mut der = params
        .self_signed(&key)
        .expect("self-signed")
        .der()
        .to_vec();
    // The last byte belongs to the ECDSA signature's s: the DER stays
    // well-formed, the signature no longer verifies.
    let last = der.last_mut().expect("non-empty DER");
    *last ^= 0x01;
    pem::encode(&pem::Pem::new("CERTIFICATE", der))
}

fn append(path: &std::path::Path, text: &str) {
    let mut old = fs::read_to_string(path).expect("read");
    old.push_str(text);
    fs::write(path, old).expect("write");
}

/// "A forged root appended to DIR/root-cert.pem passed `meshca verify`,
/// showed as ok in `meshca status` and was handed out by `meshca bundle`":
/// the mesh root file is held to the rule of a cluster's root-cert.pem
/// (self-signed CAs only), and a bundle never carries a root whose own
/// signature fails.
#[test]
fn a_forged_root_in_the_mesh_root_file_passed_verify_and_reached_bundle() {
    let dir = ecdsa_mesh();
    append(&dir.join("certs/root-cert.pem"), &forged_root_pem());

    let out = dir.meshca(&["verify", "certs"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = stdout(&out);
    assert!(
        report
            .lines()
            .any(|l| l.contains("root-not-self-signed-ca") && l.contains("certs/root-cert.pem")),
        "{report}"
    );

    let out = dir.meshca(&["status", "--dir", "certs", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(json["root"]["state"], "invalid", "{json:#}");

    let out = dir.meshca(&["bundle", "--dir", "certs", "--format", "pem"]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    assert!(stderr(&out).contains("root-cert.pem"), "{}", stderr(&out));
}

/// "A line break in a certificate's subject forged a line of the verify
/// report (`cluster9 (certs/cluster9): ok`)": a finding is one line.
#[test]
fn a_line_break_in_a_subject_forged_a_line_of_the_verify_report() {
    let dir = ecdsa_mesh();
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "x\ncluster9 (certs/cluster9): ok\r\nPASSED: 0 errors",
    );
    let hostile = params.self_signed(&key).expect("self-signed").pem();
    append(&dir.join("certs/cluster1/root-cert.pem"), &hostile);

    let out = dir.meshca(&["verify", "certs"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = stdout(&out);
    for line in report.lines() {
        assert!(
            !line.starts_with("cluster9") && !line.starts_with("PASSED"),
            "a forged line: {line:?} in\n{report}"
        );
    }
    assert!(report.contains("\\ncluster9"), "{report}");
}

/// "A cacerts.yaml naming `ca-cert.pem` twice passed verify": YAML readers
/// disagree on which value wins, so the file is refused.
#[test]
fn a_cacerts_yaml_with_a_key_given_twice_passed_verify() {
    let dir = ecdsa_mesh();
    let path = dir.join("certs/cluster1/cacerts.yaml");
    let yaml = fs::read_to_string(&path).expect("read");
    let planted = base64::engine::general_purpose::STANDARD.encode("PLANTED-VALUE-8e1f");
    let twice = yaml.replacen(
        "\ndata:\n",
        &format!("\ndata:\n  ca-cert.pem: {planted}\n"),
        1,
    );
    assert_ne!(twice, yaml, "the Secret has a data: map");
    fs::write(&path, twice).expect("write");

    let out = dir.meshca(&["verify", "certs"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = stdout(&out);
    assert!(
        report
            .lines()
            .any(|l| l.contains("secret-invalid") && l.contains("given twice")),
        "{report}"
    );
    let all = format!("{report}{}", stderr(&out));
    assert!(!all.contains(&planted) && !all.contains("PLANTED"), "{all}");
}

/// "A line break in the subject of a root in the cluster's ConfigMap forged
/// a line of the audit report (`cluster1: in sync`)": each fact stays on
/// its line.
#[test]
fn a_line_break_in_a_subject_forged_a_line_of_the_audit_report() {
    let dir = ecdsa_mesh();
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "x\ncluster1: in sync: all is well\r\n",
    );
    let hostile = params.self_signed(&key).expect("self-signed").pem();
    let roots = format!("{}{hostile}", dir.read("certs/cluster1/root-cert.pem"));
    let indented: String = roots.lines().map(|l| format!("    {l}\n")).collect();
    let configmap = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-ca-root-cert\n  namespace: istio-system\ndata:\n  root-cert.pem: |\n{indented}"
    );
    fs::write(dir.join("root-east.yaml"), configmap).expect("write");

    let out = dir.meshca(&[
        "audit",
        "--dir",
        "certs",
        "cluster1",
        "--secret",
        "certs/cluster1/cacerts.yaml",
        "--root-configmap",
        "root-east.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("\\ncluster1: in sync"), "{report}");
    for line in report.lines() {
        assert!(
            !line.starts_with("cluster1: in sync"),
            "a forged line: {line:?} in\n{report}"
        );
    }
}

/// "`meshca status` said ok (and `meshca_verify_ok 1`) for a certs
/// directory whose cluster directory is a symbolic link, which `meshca
/// verify` fails": the linked cluster is reported invalid.
#[cfg(unix)]
#[test]
fn status_said_ok_for_a_symlinked_cluster_directory_that_verify_fails() {
    let dir = ecdsa_mesh();
    fs::rename(dir.join("certs/cluster1"), dir.join("elsewhere")).expect("move");
    std::os::unix::fs::symlink(dir.join("elsewhere"), dir.join("certs/cluster1")).expect("link");
    let out = dir.meshca(&["verify", "certs"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    let out = dir.meshca(&["status", "--dir", "certs", "--format", "prometheus"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let metrics = stdout(&out);
    assert!(metrics.contains("\nmeshca_verify_ok 0\n"), "{metrics}");
    assert!(
        metrics.contains("meshca_state{cluster=\"cluster1\",state=\"invalid\"} 1"),
        "{metrics}"
    );
}

/// "`meshca status` said ok for a cluster directory holding a `tls.crt`
/// beside `ca-cert.pem` (istiod then runs the other CA), which `meshca
/// verify` fails": status takes verify's verdict on the directory.
#[test]
fn status_said_ok_for_a_directory_that_verify_fails() {
    let dir = ecdsa_mesh();
    fs::write(dir.join("certs/cluster2/tls.crt"), "stray\n").expect("write");
    let out = dir.meshca(&["verify", "certs"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    let out = dir.meshca(&["status", "--dir", "certs", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(json["ok"], false, "{json:#}");
    let state = |name: &str| {
        json["clusters"]
            .as_array()
            .expect("clusters")
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["state"].clone())
    };
    assert_eq!(state("cluster2"), Some("invalid".into()), "{json:#}");
    assert_eq!(state("cluster1"), Some("ok".into()), "{json:#}");
    assert_eq!(json["root"]["state"], "ok", "{json:#}");
    let counted = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .any(|f| f["code"] == "wrong-content" && f["severity"] == "error");
    assert!(counted, "{json:#}");
}

/// "`meshca man --out DIR` wrote through a symbolic link planted at
/// DIR/meshca.1, creating or clobbering the file it points to": the pages
/// are renamed into place, which replaces the link itself.
#[cfg(unix)]
#[test]
fn man_wrote_through_a_symlink_planted_in_the_output_directory() {
    let dir = util::Dir::new();
    fs::create_dir(dir.join("man")).expect("mkdir");
    fs::write(dir.join("victim"), "keep me\n").expect("write");
    std::os::unix::fs::symlink(dir.join("victim"), dir.join("man/meshca.1")).expect("link");
    std::os::unix::fs::symlink(dir.join("absent"), dir.join("man/meshca-status.1")).expect("link");

    let out = dir.meshca(&["man", "--out", "man"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(dir.read("victim"), "keep me\n");
    assert!(
        !dir.join("absent").exists(),
        "a page was written through a dangling link"
    );
    for page in ["man/meshca.1", "man/meshca-status.1"] {
        let meta = fs::symlink_metadata(dir.join(page)).expect("page");
        assert!(meta.is_file(), "{page} is not a regular file");
        assert!(dir.read(page).contains(".TH"), "{page}");
    }
    let left: Vec<_> = fs::read_dir(dir.join("man"))
        .expect("read man")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// "`meshca verify` passed a certs directory whose root-key.uri records a
/// PIN or is garbage, which status, bundle and every signing command
/// refuse": verify reports it, without echoing the PIN.
#[test]
fn verify_passed_a_root_key_uri_that_every_other_command_refuses() {
    for (uri, what) in [
        (
            "pkcs11:object=root?module-path=/usr/lib/x.so&pin-value=PIN-4d61c0",
            "records a PIN",
        ),
        ("garbage PIN-4d61c0\n", "not a usable key reference"),
        (
            "pkcs11:object=root?module-path=/usr/lib/x.so\n",
            "both there",
        ),
    ] {
        let dir = ecdsa_mesh();
        fs::write(dir.join("certs/root-key.uri"), uri).expect("write");
        let out = dir.meshca(&["verify", "certs"]);
        let report = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{uri}: {report}");
        assert!(
            report
                .lines()
                .any(|l| l.contains("certs/root-key.uri") && l.contains(what)),
            "{uri}: {report}"
        );
        assert!(!report.contains("PIN-4d61c0"), "{report}");
    }
}

/// A bad `root-key.uri` is bad input: every command that loads the
/// directory exits 2 (it exited 1, where a non-text one exited 2), names
/// the file, and never prints the PIN.
#[test]
fn a_bad_root_key_uri_is_exit_2_for_every_command_that_loads_the_mesh() {
    for (uri, what) in [
        (
            "pkcs11:object=root?module-path=/usr/lib/x.so&pin-value=PIN-4d61c0",
            "records a PIN",
        ),
        ("garbage PIN-4d61c0\n", "root-key.uri"),
        ("pkcs11:object=root?module-path=/usr/lib/x.so\n", "both"),
    ] {
        let dir = ecdsa_mesh();
        fs::write(dir.join("certs/root-key.uri"), uri).expect("write");
        for args in [
            &["renew", "--dir", "certs", "cluster1"][..],
            &["crl", "--dir", "certs", "cluster1"][..],
            &["status", "--dir", "certs"][..],
        ] {
            let out = dir.meshca(args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{uri} {args:?}: {err}");
            assert!(
                err.contains("certs/root-key.uri") && err.contains(what),
                "{uri} {args:?}: {err}"
            );
            assert!(!err.contains("PIN-4d61c0"), "{err}");
        }
    }
}
