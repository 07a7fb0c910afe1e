//! The lifecycle commands: `renew`, `root --renew`, `status` and the
//! reload-aware `verify --previous [--multiroot]`, checked against openssl,
//! promtool and the Go oracle.

mod util;

#[path = "../../lib/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use util::{stderr, stdout, Dir};
use zeroize::Zeroizing;

type Snapshot = BTreeMap<PathBuf, Zeroizing<Vec<u8>>>;

fn snapshot(dir: &Dir, sub: &str) -> Snapshot {
    meshca::store::snapshot(&dir.join(sub)).unwrap()
}

/// The files of `snap` under `prefix` (a cluster directory).
fn under(snap: &Snapshot, prefix: &str) -> Snapshot {
    snap.iter()
        .filter(|(p, _)| p.starts_with(prefix))
        .map(|(p, b)| (p.clone(), b.clone()))
        .collect()
}

fn file(snap: &Snapshot, path: &str) -> Vec<u8> {
    snap.get(Path::new(path))
        .unwrap_or_else(|| panic!("{path} missing"))
        .to_vec()
}

/// certs/: east (ECDSA P-256, 10 days, with ca-crl.pem) and west (RSA
/// 2048, 730 days, kubernetes.io/tls Secret in namespace `mesh`).
fn mixed_mesh() -> Dir {
    let dir = Dir::new();
    dir.ok(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--root-key-type",
        "ecdsa-p256",
        "--days",
        "10",
        "east",
    ]);
    dir.ok(&["crl", "--dir", "certs", "east"]);
    dir.ok(&[
        "intermediate",
        "--dir",
        "certs",
        "--key-type",
        "rsa-2048",
        "--tls-secret",
        "--namespace",
        "mesh",
        "west",
    ]);
    dir
}

fn openssl_text(dir: &Dir, path: &str) -> String {
    dir.openssl(&["x509", "-in", path, "-noout", "-text"])
}

fn openssl_verify(dir: &Dir, ca_file: &str, cert: &str) {
    let out = dir.openssl(&["verify", "-x509_strict", "-CAfile", ca_file, cert]);
    assert!(out.contains(": OK"), "{out}");
}

fn verify_code(dir: &Dir, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["verify", "--json"];
    all.extend_from_slice(args);
    let out = dir.meshca(&all);
    (out.status.code(), stdout(&out))
}

#[test]
fn renew_keeps_root_cert_and_untouched_clusters_byte_identical_and_the_profile() {
    let dir = mixed_mesh();
    let before = snapshot(&dir, "certs");
    let out = dir.ok(&["renew", "--dir", "certs", "east"]);
    let text = stdout(&out);
    assert!(text.contains("east: renewed"), "{text}");
    assert!(text.contains("next:"), "{text}");
    let after = snapshot(&dir, "certs");
    // Root and the untouched cluster: byte for byte.
    assert_eq!(
        file(&before, "root-cert.pem"),
        file(&after, "root-cert.pem")
    );
    assert_eq!(file(&before, "root-key.pem"), file(&after, "root-key.pem"));
    assert_eq!(file(&before, "root-crl.pem"), file(&after, "root-crl.pem"));
    assert_eq!(under(&before, "west"), under(&after, "west"));
    assert_eq!(
        file(&before, "east/root-cert.pem"),
        file(&after, "east/root-cert.pem")
    );
    for f in [
        "ca-cert.pem",
        "ca-key.pem",
        "cert-chain.pem",
        "ca-crl.pem",
        "cacerts.yaml",
    ] {
        assert_ne!(
            file(&before, &format!("east/{f}")),
            file(&after, &format!("east/{f}")),
            "east/{f} should change"
        );
    }
    // The profile: key type, subject, SAN, 10 days again.
    let t = openssl_text(&dir, "certs/east/ca-cert.pem");
    assert!(t.contains("ASN1 OID: prime256v1"), "{t}");
    assert!(
        t.contains("O=Istio, CN=Intermediate CA, L=east")
            || t.contains("O = Istio, CN = Intermediate CA, L = east"),
        "{t}"
    );
    assert!(t.contains("DNS:istiod.istio-system.svc"), "{t}");
    openssl_verify(&dir, "certs/root-cert.pem", "certs/east/ca-cert.pem");
    // The CRL is signed by the new key: openssl checks it with the new cert.
    let crl = dir.tool(
        "openssl",
        &[
            "crl",
            "-in",
            "certs/east/ca-crl.pem",
            "-noout",
            "-CAfile",
            "certs/east/ca-cert.pem",
        ],
    );
    // The first CRL of ca-crl.pem is the intermediate's own.
    assert!(
        String::from_utf8_lossy(&crl.stderr).contains("verify OK"),
        "{}",
        stderr(&crl)
    );
    dir.ok(&["verify", "certs"]);

    // west: RSA 2048, the TLS Secret shape in namespace mesh.
    dir.ok(&["renew", "--dir", "certs", "--days", "90", "west"]);
    let t = openssl_text(&dir, "certs/west/ca-cert.pem");
    assert!(t.contains("Public-Key: (2048 bit)"), "{t}");
    assert!(t.contains("DNS:istiod.mesh.svc"), "{t}");
    let yaml = dir.read("certs/west/cacerts.yaml");
    assert!(
        yaml.contains("kubernetes.io/tls") && yaml.contains("tls.crt"),
        "{yaml}"
    );
    assert!(yaml.contains("namespace: mesh"), "{yaml}");
    assert!(!dir.join("certs/west/ca-crl.pem").exists());
    openssl_verify(&dir, "certs/root-cert.pem", "certs/west/ca-cert.pem");
    let end = dir.openssl(&[
        "x509",
        "-in",
        "certs/west/ca-cert.pem",
        "-noout",
        "-enddate",
    ]);
    let start = dir.openssl(&[
        "x509",
        "-in",
        "certs/west/ca-cert.pem",
        "-noout",
        "-startdate",
    ]);
    let parse = |s: &str| {
        let v = s.trim().split_once('=').unwrap().1.to_owned();
        let fmt = time::format_description::parse_borrowed::<1>(
            "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT",
        )
        .unwrap();
        time::PrimitiveDateTime::parse(&v, &fmt).unwrap()
    };
    let days = (parse(&end) - parse(&start)).whole_days();
    assert_eq!(days, 90, "{start} {end}");
    dir.ok(&["verify", "certs"]);
}

#[test]
fn renew_reuse_key_keeps_the_key() {
    let dir = mixed_mesh();
    let before = snapshot(&dir, "certs");
    dir.ok(&["renew", "--dir", "certs", "--reuse-key", "east", "west"]);
    let after = snapshot(&dir, "certs");
    for c in ["east", "west"] {
        assert_eq!(
            file(&before, &format!("{c}/ca-key.pem")),
            file(&after, &format!("{c}/ca-key.pem"))
        );
        assert_ne!(
            file(&before, &format!("{c}/ca-cert.pem")),
            file(&after, &format!("{c}/ca-cert.pem"))
        );
    }
    dir.ok(&["verify", "certs"]);
}

#[test]
fn renew_within_selects_only_the_intermediates_due() {
    let dir = mixed_mesh();
    let before = snapshot(&dir, "certs");
    // Nothing within 5 days: exit 0, nothing written.
    let out = dir.ok(&["renew", "--dir", "certs", "--within", "5"]);
    assert!(
        stdout(&out).contains("nothing to renew"),
        "{}",
        stdout(&out)
    );
    assert_eq!(snapshot(&dir, "certs"), before);
    // east (10 days) is due within 30, west (730) is not.
    let out = dir.ok(&["renew", "--dir", "certs", "--within", "30"]);
    let text = stdout(&out);
    assert!(text.contains("east: renewed"), "{text}");
    assert!(text.contains("west: not due"), "{text}");
    let after = snapshot(&dir, "certs");
    assert_eq!(under(&before, "west"), under(&after, "west"));
    assert_ne!(under(&before, "east"), under(&after, "east"));
    // A named cluster not due is left alone too.
    let again = snapshot(&dir, "certs");
    let out = dir.ok(&["renew", "--dir", "certs", "--within", "30", "west"]);
    assert!(stdout(&out).contains("west: not due"), "{}", stdout(&out));
    assert_eq!(snapshot(&dir, "certs"), again);
    // Neither clusters nor --within: a usage error.
    let out = dir.meshca(&["renew", "--dir", "certs"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_failing_renew_changes_nothing() {
    let dir = mixed_mesh();
    let before = snapshot(&dir, "certs");
    for (args, code) in [
        (vec!["renew", "--dir", "certs", "north"], 2),
        (vec!["renew", "--dir", "certs", "--days", "0", "east"], 2),
        (vec!["renew", "--dir", "certs", "east", "east"], 2),
    ] {
        let out = dir.meshca(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert_eq!(snapshot(&dir, "certs"), before, "{args:?} changed files");
    }
}

#[test]
fn renew_with_an_encrypted_root_key_reads_the_passphrase_and_fails_without_it() {
    let dir = Dir::new();
    fs::write(dir.join("pass"), "correct horse\n").unwrap();
    dir.ok(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--root-key-type",
        "ecdsa-p256",
        "--encrypt-root",
        "--passphrase-file",
        "pass",
        "c1",
    ]);
    let before = snapshot(&dir, "certs");
    let out = dir.meshca(&["renew", "--dir", "certs", "c1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("passphrase"), "{}", stderr(&out));
    assert_eq!(snapshot(&dir, "certs"), before);
    dir.ok(&["renew", "--dir", "certs", "--passphrase-file", "pass", "c1"]);
    assert_ne!(snapshot(&dir, "certs"), before);
}

#[test]
fn renew_out_writes_a_new_directory_and_the_step_needs_no_multiroot() {
    let dir = mixed_mesh();
    let before = snapshot(&dir, "certs");
    let out = dir.ok(&["renew", "--dir", "certs", "--out", "next", "--within", "30"]);
    assert!(
        stdout(&out).contains("meshca verify --previous certs next"),
        "{}",
        stdout(&out)
    );
    assert_eq!(snapshot(&dir, "certs"), before, "--out leaves DIR alone");
    let next = snapshot(&dir, "next");
    assert_eq!(under(&before, "west"), under(&next, "west"));
    assert_eq!(file(&before, "root-key.pem"), file(&next, "root-key.pem"));
    let (code, report) = verify_code(&dir, &["--previous", "certs", "next"]);
    assert_eq!(code, Some(0), "{report}");
    let (code, report) = verify_code(&dir, &["--multiroot", "--previous", "certs", "next"]);
    assert_eq!(code, Some(0), "{report}");
    // A second --out into the same directory needs --force.
    let out = dir.meshca(&["renew", "--dir", "certs", "--out", "next", "east"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn root_renew_keeps_key_and_subject_and_intermediates_verify_under_the_renewed_root() {
    let dir = mixed_mesh();
    let before = snapshot(&dir, "certs");
    fs::create_dir(dir.join("old")).unwrap();
    copy_dir(&dir.join("certs"), &dir.join("old"));
    let out = dir.ok(&["root", "--dir", "certs", "--renew", "--days", "7300"]);
    let text = stdout(&out);
    assert!(text.contains("ISTIO_MULTIROOT_MESH=true"), "{text}");
    assert!(text.contains("--multiroot"), "{text}");
    let after = snapshot(&dir, "certs");
    assert_eq!(file(&before, "root-key.pem"), file(&after, "root-key.pem"));
    for c in ["east", "west"] {
        for f in ["ca-cert.pem", "ca-key.pem"] {
            let p = format!("{c}/{f}");
            assert_eq!(file(&before, &p), file(&after, &p), "{p}");
        }
    }
    // The renewed root alone (the first certificate of root-cert.pem).
    dir.openssl(&["x509", "-in", "certs/root-cert.pem", "-out", "renewed.pem"]);
    let old_root = String::from_utf8(file(&before, "root-cert.pem")).unwrap();
    assert_ne!(dir.read("renewed.pem"), old_root);
    let field = |path: &str, opt: &str| dir.openssl(&["x509", "-in", path, "-noout", opt]);
    assert_eq!(
        field("renewed.pem", "-subject"),
        field("old/root-cert.pem", "-subject")
    );
    assert_eq!(
        field("renewed.pem", "-pubkey"),
        field("old/root-cert.pem", "-pubkey")
    );
    let t = openssl_text(&dir, "renewed.pem");
    let ski = util::text_after(&t, "X509v3 Subject Key Identifier");
    let old_ski = util::text_after(
        &openssl_text(&dir, "old/root-cert.pem"),
        "X509v3 Subject Key Identifier",
    );
    assert_eq!(ski, old_ski);
    // The old intermediates verify, strictly, under the renewed root only,
    // and their chains now end with it.
    for c in ["east", "west"] {
        openssl_verify(&dir, "renewed.pem", &format!("certs/{c}/ca-cert.pem"));
        assert!(dir
            .read(&format!("certs/{c}/cert-chain.pem"))
            .ends_with(&dir.read("renewed.pem")));
    }
    // No error, and no warning but east's expiry (a chain that ended with
    // the old root would be `chain-order`).
    let out = dir.ok(&["verify", "--quiet", "certs"]);
    let findings = stdout(&out);
    assert_eq!(findings.lines().count(), 1, "{findings}");
    assert!(findings.contains("expires-soon"), "{findings}");
    // The step changes root-cert.pem: an error unless istiod is multi-root.
    let (code, report) = verify_code(&dir, &["--previous", "old", "certs"]);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("\"code\": \"root-changed\""), "{report}");
    assert!(report.contains("ISTIO_MULTIROOT_MESH"), "{report}");
    let (code, report) = verify_code(&dir, &["--multiroot", "--previous", "old", "certs"]);
    assert_eq!(code, Some(0), "{report}");
    // The renewed root signs new clusters and renewals.
    dir.ok(&["renew", "--dir", "certs", "east"]);
    openssl_verify(&dir, "renewed.pem", "certs/east/ca-cert.pem");
    dir.ok(&["verify", "certs"]);
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != ".meshca.lock" {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn status_prints_each_cluster_and_the_root_as_text_json_and_prometheus() {
    let dir = mixed_mesh();
    let out = dir.ok(&["status", "--dir", "certs"]);
    let text = stdout(&out);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in {text}"))
            .to_owned()
    };
    assert!(line("(root)").ends_with(" ok"), "{text}");
    assert!(
        line("east").contains("ecdsa-p256") && line("east").ends_with("renew-soon"),
        "{text}"
    );
    assert!(
        line("west").contains("rsa-2048") && line("west").ends_with(" ok"),
        "{text}"
    );
    // JSON, twenty days on: east has expired.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(20))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = dir.ok(&["status", "--dir", "certs", "--json", "--at", &later]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "meshca.status/v1");
    let state = |n: &str| {
        v["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("east"), "expired");
    assert_eq!(state("west"), "ok");
    assert!(
        v["clusters"][0]["ca"]["days_left"].as_i64().unwrap() < 0,
        "{v:#}"
    );
    assert!(v["clusters"][0]["crl_next_update_unix"].is_i64(), "{v:#}");
    // --format json is the same as --json.
    let out2 = dir.ok(&[
        "status", "--dir", "certs", "--format", "json", "--at", &later,
    ]);
    assert_eq!(out.stdout, out2.stdout);
    // A revoked intermediate.
    dir.ok(&["revoke", "--dir", "certs", "east"]);
    let out = dir.ok(&["status", "--dir", "certs", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["clusters"][0]["state"], "revoked", "{v:#}");
    assert_eq!(v["ok"], false);
}

#[test]
fn status_reports_a_cluster_that_cannot_be_loaded_as_invalid() {
    let dir = mixed_mesh();
    fs::remove_file(dir.join("certs/west/ca-key.pem")).unwrap();
    let out = dir.ok(&["status", "--dir", "certs"]);
    let text = stdout(&out);
    let west = text
        .lines()
        .find(|l| l.starts_with("west"))
        .unwrap_or_default();
    assert!(west.ends_with("invalid"), "{text}");
    assert!(text.contains("east ") && text.contains("FAILED"), "{text}");
    let out = dir.ok(&["status", "--dir", "certs", "--format", "prometheus"]);
    promtool_check(&dir, &out.stdout);
    let text = stdout(&out);
    assert!(
        text.contains("meshca_state{cluster=\"west\",state=\"invalid\"} 1"),
        "{text}"
    );
    assert!(text.contains("meshca_verify_ok 0"), "{text}");
    // Not a certs directory at all: exit 2.
    fs::create_dir(dir.join("empty")).unwrap();
    let out = dir.meshca(&["status", "--dir", "empty"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

fn promtool_check(dir: &Dir, metrics: &[u8]) {
    fs::write(dir.join("metrics.prom"), metrics).unwrap();
    let out = std::process::Command::new(util::require_tool("promtool"))
        .args(["check", "metrics"])
        .stdin(fs::File::open(dir.join("metrics.prom")).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{}",
        stdout(&out),
        stderr(&out),
        String::from_utf8_lossy(metrics)
    );
    // promtool prints lint problems without failing on some of them.
    assert!(
        stdout(&out).trim().is_empty() && stderr(&out).trim().is_empty(),
        "promtool lint:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn status_prometheus_passes_promtool_with_hostile_subjects() {
    let dir = Dir::new();
    // Subjects with a quote and backslashes, as label values.
    dir.ok(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--root-key-type",
        "ecdsa-p256",
        "--root-org",
        "Ex\"ample\\Org \\n",
        "--cn",
        "Inter\\mediate \"CA\"",
        "east",
        "west",
    ]);
    dir.ok(&["crl", "--dir", "certs", "east"]);
    // A day on, to the second.
    let at = time::OffsetDateTime::from_unix_timestamp(
        (time::OffsetDateTime::now_utc() + time::Duration::days(1)).unix_timestamp(),
    )
    .unwrap();
    let at_text = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = dir.ok(&[
        "status",
        "--dir",
        "certs",
        "--format",
        "prometheus",
        "--at",
        &at_text,
    ]);
    let text = stdout(&out);
    promtool_check(&dir, &out.stdout);
    let stamp = format!("meshca_status_timestamp_seconds {}", at.unix_timestamp());
    for metric in [
        "# TYPE meshca_certificate_expiry_timestamp_seconds gauge",
        "# TYPE meshca_crl_next_update_timestamp_seconds gauge",
        "# TYPE meshca_findings gauge",
        "meshca_crl_next_update_timestamp_seconds{cluster=\"east\"} ",
        "meshca_state{cluster=\"west\",state=\"ok\"} 1",
        "meshca_verify_ok 1",
        stamp.as_str(),
        "file=\"ca-cert.pem\",subject=\"O=Istio, CN=Inter\\\\mediate \\\"CA\\\", L=east\"",
        "subject=\"O=Ex\\\"ample\\\\Org \\\\n, CN=Root CA\"",
    ] {
        assert!(text.contains(metric), "{metric} missing in\n{text}");
    }
    let expiry = text
        .lines()
        .find(|l| {
            l.starts_with(
                "meshca_certificate_expiry_timestamp_seconds{cluster=\"east\",file=\"ca-cert.pem\"",
            )
        })
        .unwrap();
    let value: i64 = expiry.rsplit(' ').next().unwrap().parse().unwrap();
    let end = dir.openssl(&[
        "x509",
        "-in",
        "certs/east/ca-cert.pem",
        "-noout",
        "-enddate",
    ]);
    let fmt = time::format_description::parse_borrowed::<1>(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT",
    )
    .unwrap();
    let end = time::PrimitiveDateTime::parse(end.trim().split_once('=').unwrap().1, &fmt)
        .unwrap()
        .assume_utc();
    assert_eq!(value, end.unix_timestamp());
    // Findings carry their severity and code: a revoked cluster.
    dir.ok(&["revoke", "--dir", "certs", "east"]);
    let out = dir.ok(&["status", "--dir", "certs", "--format", "prometheus"]);
    promtool_check(&dir, &out.stdout);
    let text = stdout(&out);
    assert!(
        text.contains("meshca_findings{severity=\"error\",code=\"revoked\"} "),
        "{text}"
    );
    assert!(text.contains("meshca_verify_ok 0"), "{text}");
    assert!(
        text.contains("meshca_state{cluster=\"east\",state=\"revoked\"} 1"),
        "{text}"
    );
}

#[test]
fn verify_previous_without_multiroot_refuses_a_rotation_and_catches_crl_steps() {
    let dir = util::ecdsa_mesh();
    dir.ok(&["crl", "--dir", "certs", "cluster1"]);
    dir.ok(&["root", "--dir", "new-root", "--key-type", "ecdsa-p256"]);
    let out = dir.ok(&[
        "rotate",
        "--dir",
        "certs",
        "--new-root",
        "new-root",
        "--out",
        "rot",
    ]);
    let text = stdout(&out);
    assert!(text.contains("ISTIO_MULTIROOT_MESH=true"), "{text}");
    assert!(
        text.contains("meshca verify --multiroot --previous certs rot/stage-1"),
        "{text}"
    );
    assert!(
        text.contains("meshca verify --multiroot --previous rot/stage-2 rot/stage-3"),
        "{text}"
    );
    let (code, report) = verify_code(&dir, &["--previous", "certs", "rot/stage-1"]);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("\"code\": \"root-changed\""), "{report}");
    let (code, report) = verify_code(&dir, &["--multiroot", "--previous", "certs", "rot/stage-1"]);
    assert_eq!(code, Some(0), "{report}");
    // --multiroot alone is a usage error.
    let out = dir.meshca(&["verify", "--multiroot", "certs"]);
    assert_eq!(out.status.code(), Some(2));

    // A removed ca-crl.pem: istiod keeps the CRL it holds.
    fs::create_dir(dir.join("nocrl")).unwrap();
    copy_dir(&dir.join("certs"), &dir.join("nocrl"));
    fs::remove_file(dir.join("nocrl/cluster1/ca-crl.pem")).unwrap();
    let (code, report) = verify_code(&dir, &["--previous", "certs", "nocrl"]);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("\"code\": \"crl-removed\""), "{report}");
    // A new CRL istiod cannot load (no CRL from the intermediate): it
    // keeps the old bundle.
    fs::create_dir(dir.join("badcrl")).unwrap();
    copy_dir(&dir.join("certs"), &dir.join("badcrl"));
    fs::copy(
        dir.join("certs/root-crl.pem"),
        dir.join("badcrl/cluster1/ca-crl.pem"),
    )
    .unwrap();
    let (code, report) = verify_code(&dir, &["--previous", "certs", "badcrl"]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("\"code\": \"crl-not-loadable\""),
        "{report}"
    );
    // The same unchanged directory is a clean step.
    let (code, report) = verify_code(&dir, &["--previous", "certs", "certs"]);
    assert_eq!(code, Some(0), "{report}");
}

#[test]
fn every_renewed_mesh_verifies_with_the_istiod_oracle() {
    let bin = support::oracle::build(
        &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oracle"),
        "oracle-lifecycle",
    );
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let dir = mixed_mesh();
    dir.ok(&[
        "renew", "--dir", "certs", "--out", "new-keys", "east", "west",
    ]);
    dir.ok(&[
        "renew",
        "--dir",
        "certs",
        "--out",
        "same-keys",
        "--reuse-key",
        "east",
        "west",
    ]);
    dir.ok(&["root", "--dir", "certs", "--renew"]);
    dir.ok(&["renew", "--dir", "certs", "--days", "30", "east", "west"]);
    let meshes: Vec<PathBuf> = ["new-keys", "same-keys", "certs"]
        .iter()
        .map(|d| dir.join(d))
        .collect();
    let verdicts = support::oracle::run_with(&bin, &at, &["--mesh"], &meshes);
    assert_eq!(verdicts.len(), 3);
    for v in &verdicts {
        assert!(
            v.ok,
            "the oracle refuses {}: {} {}",
            v.dir, v.stage, v.reason
        );
    }
    // And a mesh the oracle must refuse, so the check above can fail.
    fs::copy(
        dir.join("certs/east/ca-key.pem"),
        dir.join("certs/west/ca-key.pem"),
    )
    .unwrap();
    let verdicts = support::oracle::run_with(&bin, &at, &["--mesh"], &[dir.join("certs")]);
    assert!(!verdicts[0].ok, "{:?}", verdicts[0]);
}

/// The README's "Lifecycle" section: its `meshca` lines, in order, in an
/// empty directory, all succeed.
#[test]
fn the_readme_lifecycle_walk_runs() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let start = readme
        .find("\n## Lifecycle")
        .expect("README has a Lifecycle section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    let section = &rest[..end];
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in section.lines() {
        if line.starts_with("```sh") {
            in_sh = true;
        } else if line.starts_with("```") {
            in_sh = false;
        } else if in_sh {
            let cmd = line.split(" #").next().unwrap().trim();
            if cmd.starts_with("meshca ") && !cmd.contains('|') && !cmd.contains('>') {
                commands.push(cmd.to_owned());
            }
        }
    }
    assert!(commands.len() >= 5, "{commands:?}");
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("meshca init --dir life --days 10")),
        "{commands:?}"
    );
    let dir = Dir::new();
    for cmd in &commands {
        let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        let out = dir.meshca(&args);
        util::assert_success(cmd, &out);
        if cmd.starts_with("meshca verify --previous") {
            assert!(!cmd.contains("--multiroot"), "{cmd}");
        }
    }
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("meshca verify --previous")),
        "{commands:?}"
    );
}

/// The rollout steps of the lifecycle, judged by `meshca verify --previous
/// [--multiroot]` and by the oracle's restatement of istiod's reload
/// (`--previous OLD [--multiroot]`): both must agree on each.
#[test]
fn verify_previous_agrees_with_the_oracle_on_lifecycle_steps() {
    let bin = support::oracle::build(
        &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oracle"),
        "oracle-lifecycle-step",
    );
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let dir = mixed_mesh();
    dir.ok(&[
        "renew", "--dir", "certs", "--out", "renewed", "east", "west",
    ]);
    dir.ok(&[
        "renew",
        "--dir",
        "certs",
        "--out",
        "reused",
        "--reuse-key",
        "east",
    ]);
    fs::create_dir(dir.join("root-renewed")).unwrap();
    copy_dir(&dir.join("certs"), &dir.join("root-renewed"));
    dir.ok(&["root", "--dir", "root-renewed", "--renew"]);
    dir.ok(&["root", "--dir", "new-root", "--key-type", "ecdsa-p256"]);
    dir.ok(&[
        "rotate",
        "--dir",
        "certs",
        "--new-root",
        "new-root",
        "--out",
        "rot",
    ]);
    fs::create_dir(dir.join("nocrl")).unwrap();
    copy_dir(&dir.join("renewed"), &dir.join("nocrl"));
    fs::remove_file(dir.join("nocrl/east/ca-crl.pem")).unwrap();
    // (previous, next, multiroot, expected verdict)
    let cases = [
        ("certs", "renewed", false, true),
        ("certs", "reused", false, true),
        ("certs", "root-renewed", false, false),
        ("certs", "root-renewed", true, true),
        ("certs", "rot/stage-1", false, false),
        ("certs", "rot/stage-1", true, true),
        ("rot/stage-1", "rot/stage-2", true, true),
        ("rot/stage-2", "rot/stage-3", true, true),
        ("certs", "rot/stage-3", true, false),
        ("certs", "nocrl", false, false),
    ];
    for (prev, next, multiroot, want) in cases {
        let mut flags = vec![
            "--previous".to_owned(),
            dir.join(prev).display().to_string(),
        ];
        if multiroot {
            flags.push("--multiroot".into());
        }
        let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        let v = support::oracle::run_with(&bin, &at, &flag_refs, &[dir.join(next)]);
        let mut args = vec!["verify", "--quiet"];
        if multiroot {
            args.push("--multiroot");
        }
        args.extend(["--previous", prev, next]);
        let out = dir.meshca(&args);
        let meshca_ok = out.status.code() == Some(0);
        assert_eq!(
            v[0].ok, want,
            "oracle on {prev} -> {next} (multiroot {multiroot}): {} {}",
            v[0].stage, v[0].reason
        );
        assert_eq!(
            meshca_ok,
            want,
            "meshca on {prev} -> {next} (multiroot {multiroot}):\n{}{}",
            stdout(&out),
            stderr(&out)
        );
    }
}

/// A root made the openssl recipe's way (its subject encoded by openssl,
/// a SHA-1 key identifier, the recipe's key usages) renews to a certificate
/// with the same subject bytes and SKI, under which the recipe's
/// intermediates verify.
#[test]
fn root_renew_of_a_recipe_root_keeps_openssls_subject_and_ski() {
    let dir = Dir::new();
    let mut cmd = std::process::Command::new(util::require_tool("bash"));
    cmd.arg(util::testdata().join("recipe.sh"))
        .args(["-q", "--key-type", "ecdsa-p256"])
        .arg(dir.join("certs"))
        .args(["cluster1", "cluster2"]);
    for v in util::RECIPE_VARS {
        cmd.env_remove(v);
    }
    util::assert_success("recipe.sh", &cmd.output().unwrap());
    dir.openssl(&["x509", "-in", "certs/root-cert.pem", "-out", "old.pem"]);
    dir.ok(&["root", "--dir", "certs", "--renew", "--days", "7300"]);
    dir.openssl(&["x509", "-in", "certs/root-cert.pem", "-out", "renewed.pem"]);
    assert_ne!(dir.read("old.pem"), dir.read("renewed.pem"));
    let der = |p: &str| {
        let out = dir.tool("openssl", &["x509", "-in", p, "-outform", "DER"]);
        util::assert_success("openssl x509 -outform DER", &out);
        out.stdout
    };
    // tbsCertificate: version, serial, signature, issuer, validity,
    // subject, subjectPublicKeyInfo, extensions.
    let tbs = |d: &[u8]| support::der_tree::Node::parse(d).kids()[0].clone();
    let (old, new) = (tbs(&der("old.pem")), tbs(&der("renewed.pem")));
    assert_eq!(
        old.kids()[5].encode(),
        new.kids()[5].encode(),
        "subject bytes"
    );
    assert_eq!(
        old.kids()[3].encode(),
        new.kids()[3].encode(),
        "issuer bytes"
    );
    assert_eq!(old.kids()[6].encode(), new.kids()[6].encode(), "public key");
    assert_ne!(old.kids()[1].encode(), new.kids()[1].encode(), "serial");
    let ski = |p: &str| {
        let items = meshca::inspect_pem(p, dir.read(p).as_bytes(), time::OffsetDateTime::now_utc())
            .unwrap();
        match items.into_iter().next().unwrap() {
            meshca::Item::Certificate(c) => c.subject_key_id.clone(),
            other => panic!("{other:?}"),
        }
    };
    assert!(ski("old.pem").is_some());
    assert_eq!(ski("old.pem"), ski("renewed.pem"));
    for c in ["cluster1", "cluster2"] {
        openssl_verify(&dir, "renewed.pem", &format!("certs/{c}/ca-cert.pem"));
    }
    dir.ok(&["verify", "certs"]);
}

/// A cluster directory given as `--dir` used to be read as a mesh with
/// no clusters: `renew --within` said "nothing to renew" (exit 0, a cron
/// job renewing nothing, ever), `renew --out` wrote a mesh into it and
/// `status` said `ok` whatever its intermediate's state. All three refuse
/// it now (exit 2, naming the file that makes it a cluster directory),
/// changing nothing.
#[test]
fn renew_root_renew_and_status_refuse_a_cluster_directory_as_dir() {
    let dir = mixed_mesh();
    let before = snapshot(&dir, "certs");
    for args in [
        &["renew", "--dir", "certs/east", "--within", "1000"][..],
        &["renew", "--dir", "certs/east", "east"],
        &["renew", "--dir", "certs", "--out", "certs/west", "east"],
        &["root", "--renew", "--dir", "certs/east"],
        &["status", "--dir", "certs/east"],
        &["status", "--dir", "certs/west", "--json"],
    ] {
        let out = dir.meshca(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("a cluster directory"), "{args:?}: {err}");
        assert!(err.contains("ca-cert.pem"), "{args:?}: {err}");
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    let after = snapshot(&dir, "certs");
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    assert!(before.iter().all(|(p, b)| after[p] == *b));
    // The certs directory itself still works.
    dir.ok(&["status", "--dir", "certs"]);
    dir.ok(&["renew", "--dir", "certs", "--within", "1000", "east"]);
}

/// `renew --within` on a directory that holds no mesh (missing with
/// `--out`, or empty) used to say "nothing to renew" and exit 0, and
/// `--out` made OUT: a mistyped path in a cron job renewed nothing, ever,
/// without a word. Refused now (exit 2), writing nothing; a mesh with a
/// root and no cluster yet still has nothing to renew (exit 0).
#[test]
fn renew_within_refuses_a_directory_that_holds_no_mesh() {
    let dir = Dir::new();
    fs::create_dir(dir.join("empty")).unwrap();
    for args in [
        &[
            "renew", "--dir", "nosuch", "--within", "30", "--out", "next",
        ][..],
        &["renew", "--dir", "empty", "--within", "30", "--out", "next"],
        &["renew", "--dir", "empty", "--within", "30"],
        &["renew", "--dir", "nosuch", "--within", "30"],
    ] {
        let out = dir.meshca(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("not a certs directory") || err.contains("nosuch"),
            "{args:?}: {err}"
        );
        assert!(!dir.join("next").exists(), "{args:?} made next/");
        assert!(!dir.join("nosuch").exists(), "{args:?} made nosuch/");
    }
    assert_eq!(fs::read_dir(dir.join("empty")).unwrap().count(), 0);
    dir.ok(&["root", "--dir", "rootonly", "--key-type", "ecdsa-p256"]);
    let out = dir.ok(&["renew", "--dir", "rootonly", "--within", "30"]);
    assert!(
        stdout(&out).contains("nothing to renew"),
        "{}",
        stdout(&out)
    );
}
