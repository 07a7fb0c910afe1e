//! `meshca verify` and `meshca inspect` on good meshes and on meshes broken
//! by hand, one defect at a time. Each case asserts the exact finding code
//! and file.

mod util;

use std::fs;
use std::process::Output;

use serde::{Deserialize, Serialize};
use util::{stderr, stdout, Dir};

fn verify_json(dir: &Dir, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["verify", "--json"];
    all.extend_from_slice(args);
    let out = dir.meshca(&all);
    let code = out.status.code().expect("exit code");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --json printed no JSON ({e}): {}{}",
            stdout(&out),
            stderr(&out)
        )
    });
    (code, json)
}

fn findings(report: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut all = Vec::new();
    for g in report["groups"].as_array().expect("groups") {
        for f in g["findings"].as_array().expect("findings") {
            all.push((
                f["severity"].as_str().unwrap().to_owned(),
                f["code"].as_str().unwrap().to_owned(),
                f["file"].as_str().unwrap().to_owned(),
            ));
        }
    }
    all
}

fn assert_finding(report: &serde_json::Value, severity: &str, code: &str, file: &str) {
    let all = findings(report);
    assert!(
        all.iter()
            .any(|(s, c, f)| s == severity && c == code && f == file),
        "expected {severity} {code} on {file}; got {all:#?}"
    );
}

use util::ecdsa_mesh as mesh;

#[test]
fn a_meshca_mesh_verifies_clean() {
    let dir = mesh();
    let (code, report) = verify_json(&dir, &["certs"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(report["warnings"], 0, "{report:#}");
    assert_eq!(report["groups"].as_array().unwrap().len(), 3);
    let human = dir.ok(&["verify", "certs"]);
    let text = stdout(&human);
    assert!(text.contains("cluster1 (certs/cluster1): ok"), "{text}");
    assert!(
        text.contains("PASSED: 0 errors, 0 warnings, 2 clusters checked"),
        "{text}"
    );
    // A single cluster directory too.
    let (code, report) = verify_json(&dir, &["certs/cluster2"]);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn a_recipe_mesh_verifies_clean() {
    let dir = Dir::new();
    let out = std::process::Command::new(util::require_tool("bash"))
        .arg(util::testdata().join("recipe.sh"))
        .args(["-q", "--key-type", "rsa-2048"])
        .arg(dir.join("certs"))
        .args(["cluster1", "cluster2"])
        .output()
        .unwrap();
    util::assert_success("recipe.sh", &out);
    let (code, report) = verify_json(&dir, &["certs"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(report["warnings"], 0, "{report:#}");
}

type Mutation = fn(&Dir);

fn write(dir: &Dir, p: &str, contents: impl AsRef<[u8]>) {
    fs::write(dir.join(p), contents).unwrap();
}

/// (name, mutation, severity, code, file)
const CASES: &[(&str, Mutation, &str, &str, &str)] = &[
    (
        "missing key",
        |d| fs::remove_file(d.join("certs/cluster1/ca-key.pem")).unwrap(),
        "error",
        "missing-file",
        "certs/cluster1/ca-key.pem",
    ),
    (
        "empty chain",
        |d| write(d, "certs/cluster1/cert-chain.pem", ""),
        "error",
        "empty-file",
        "certs/cluster1/cert-chain.pem",
    ),
    (
        "huge cert",
        |d| write(d, "certs/cluster1/ca-cert.pem", vec![b'A'; 2 << 20]),
        "error",
        "too-large",
        "certs/cluster1/ca-cert.pem",
    ),
    (
        "text cert",
        |d| write(d, "certs/cluster1/ca-cert.pem", "hello\n"),
        "error",
        "not-pem",
        "certs/cluster1/ca-cert.pem",
    ),
    (
        "DER cert",
        |d| {
            d.openssl(&[
                "x509",
                "-in",
                "certs/cluster1/ca-cert.pem",
                "-outform",
                "der",
                "-out",
                "ca.der",
            ]);
            fs::copy(d.join("ca.der"), d.join("certs/cluster1/ca-cert.pem")).unwrap();
        },
        "error",
        "not-pem",
        "certs/cluster1/ca-cert.pem",
    ),
    (
        "key in cert file",
        |d| {
            let key = d.read("certs/cluster1/ca-key.pem");
            write(d, "certs/cluster1/ca-cert.pem", key);
        },
        "error",
        "wrong-content",
        "certs/cluster1/ca-cert.pem",
    ),
    (
        "cert in key file",
        |d| {
            let cert = d.read("certs/cluster1/ca-cert.pem");
            write(d, "certs/cluster1/ca-key.pem", cert);
        },
        "error",
        "wrong-content",
        "certs/cluster1/ca-key.pem",
    ),
    (
        "no final newline (a warning: istiod accepts Istio's root-cert-combined.pem)",
        |d| {
            let root = d.read("certs/cluster1/root-cert.pem");
            write(d, "certs/cluster1/root-cert.pem", root.trim_end());
        },
        "warning",
        "pem-format",
        "certs/cluster1/root-cert.pem",
    ),
    (
        "glued chain",
        |d| {
            let chain = d.read("certs/cluster1/cert-chain.pem");
            write(
                d,
                "certs/cluster1/cert-chain.pem",
                chain.replacen("-----\n-----BEGIN", "----------BEGIN", 1),
            );
        },
        "error",
        "pem-format",
        "certs/cluster1/cert-chain.pem",
    ),
    (
        "corrupt certificate",
        |d| {
            let pem = d.read("certs/cluster1/ca-cert.pem");
            let mut lines: Vec<String> = pem.lines().map(str::to_owned).collect();
            lines[3] = "A".repeat(lines[3].len());
            write(d, "certs/cluster1/ca-cert.pem", lines.join("\n") + "\n");
        },
        "error",
        "bad-certificate",
        "certs/cluster1/ca-cert.pem",
    ),
    (
        "garbage key",
        |d| {
            write(
                d,
                "certs/cluster1/ca-key.pem",
                "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END PRIVATE KEY-----\n",
            )
        },
        "error",
        "key-unparsable",
        "certs/cluster1/ca-key.pem",
    ),
    (
        "swapped keys",
        |d| {
            fs::copy(
                d.join("certs/cluster2/ca-key.pem"),
                d.join("certs/cluster1/ca-key.pem"),
            )
            .unwrap();
        },
        "error",
        "key-mismatch",
        "certs/cluster1/ca-key.pem",
    ),
    (
        "root key swapped",
        |d| {
            fs::copy(
                d.join("certs/cluster2/ca-key.pem"),
                d.join("certs/root-key.pem"),
            )
            .unwrap();
        },
        "error",
        "key-mismatch",
        "certs/root-key.pem",
    ),
    (
        "world-readable key",
        |d| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(
                d.join("certs/cluster1/ca-key.pem"),
                fs::Permissions::from_mode(0o644),
            )
            .unwrap();
        },
        "warning",
        "key-permissions",
        "certs/cluster1/ca-key.pem",
    ),
    (
        "chain starts with root",
        |d| {
            let ca = d.read("certs/cluster1/ca-cert.pem");
            let root = d.read("certs/cluster1/root-cert.pem");
            write(d, "certs/cluster1/cert-chain.pem", format!("{root}{ca}"));
        },
        "error",
        "chain-start",
        "certs/cluster1/cert-chain.pem",
    ),
    (
        "chain without root",
        |d| {
            let ca = d.read("certs/cluster1/ca-cert.pem");
            write(d, "certs/cluster1/cert-chain.pem", ca);
        },
        "warning",
        "chain-without-root",
        "certs/cluster1/cert-chain.pem",
    ),
    (
        "chain with extra certificate",
        |d| {
            let chain = d.read("certs/cluster1/cert-chain.pem");
            let other = d.read("certs/cluster2/ca-cert.pem");
            write(
                d,
                "certs/cluster1/cert-chain.pem",
                format!("{chain}{other}"),
            );
        },
        "warning",
        "chain-order",
        "certs/cluster1/cert-chain.pem",
    ),
    (
        "two certificates in ca-cert.pem",
        |d| {
            let chain = d.read("certs/cluster1/cert-chain.pem");
            write(d, "certs/cluster1/ca-cert.pem", chain);
        },
        "warning",
        "extra-certificate",
        "certs/cluster1/ca-cert.pem",
    ),
    (
        "a cluster from another mesh",
        |d| {
            d.ok(&[
                "init",
                "--dir",
                "other",
                "--key-type",
                "ecdsa-p256",
                "cluster3",
            ]);
            fs::rename(d.join("other/cluster3"), d.join("certs/cluster3")).unwrap();
        },
        "error",
        "root-differs",
        "certs/cluster3/root-cert.pem",
    ),
    (
        "an extra root in one cluster",
        |d| {
            d.ok(&["root", "--dir", "other", "--key-type", "ecdsa-p256"]);
            let roots = d.read("certs/cluster1/root-cert.pem") + &d.read("other/root-cert.pem");
            write(d, "certs/cluster1/root-cert.pem", roots);
        },
        "warning",
        "root-set-differs",
        "certs/cluster1/root-cert.pem",
    ),
    (
        "two clusters share a key",
        |d| {
            fs::create_dir(d.join("certs/cluster3")).unwrap();
            for f in [
                "ca-cert.pem",
                "ca-key.pem",
                "cert-chain.pem",
                "root-cert.pem",
            ] {
                fs::copy(
                    d.join("certs/cluster1").join(f),
                    d.join("certs/cluster3").join(f),
                )
                .unwrap();
            }
        },
        "error",
        "shared-key",
        "certs/cluster3/ca-key.pem",
    ),
    (
        "stale Secret",
        |d| {
            fs::copy(
                d.join("certs/cluster2/cacerts.yaml"),
                d.join("certs/cluster1/cacerts.yaml"),
            )
            .unwrap();
        },
        "error",
        "secret-mismatch",
        "certs/cluster1/cacerts.yaml",
    ),
    (
        "Secret with the istio-generated key",
        |d| {
            let y = d.read("certs/cluster1/cacerts.yaml") + "  istio-generated: \"\"\n";
            write(d, "certs/cluster1/cacerts.yaml", y);
        },
        "error",
        "secret-istio-generated",
        "certs/cluster1/cacerts.yaml",
    ),
    (
        "Secret with base64 folded across lines",
        |d| {
            let y = d.read("certs/cluster1/cacerts.yaml");
            let folded: Vec<String> = y
                .lines()
                .map(|l| match l.strip_prefix("  root-cert.pem: ") {
                    Some(v) => format!("  root-cert.pem: {}\n    {}", &v[..40], &v[40..]),
                    None => l.to_owned(),
                })
                .collect();
            write(d, "certs/cluster1/cacerts.yaml", folded.join("\n") + "\n");
        },
        "error",
        "secret-base64",
        "certs/cluster1/cacerts.yaml",
    ),
    (
        "Secret with a tls.crt key and a CRL",
        |d| {
            let y = d.read("certs/cluster1/cacerts.yaml");
            let crt = y
                .lines()
                .find_map(|l| l.strip_prefix("  ca-cert.pem: "))
                .unwrap()
                .to_owned();
            write(
                d,
                "certs/cluster1/cacerts.yaml",
                y + &format!("  tls.crt: {crt}\n  ca-crl.pem: {crt}\n"),
            );
        },
        "error",
        "secret-shape",
        "certs/cluster1/cacerts.yaml",
    ),
    (
        "EC PARAMETERS before the key",
        |d| {
            let key = d.read("certs/cluster1/ca-key.pem");
            let params =
                "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
            write(d, "certs/cluster1/ca-key.pem", format!("{params}{key}"));
        },
        "error",
        "first-block",
        "certs/cluster1/ca-key.pem",
    ),
    (
        "a cluster of another mesh holding both roots",
        |d| {
            d.ok(&[
                "init",
                "--dir",
                "other",
                "--key-type",
                "ecdsa-p256",
                "cluster3",
            ]);
            fs::rename(d.join("other/cluster3"), d.join("certs/cluster3")).unwrap();
            let roots = d.read("certs/root-cert.pem") + &d.read("other/root-cert.pem");
            write(d, "certs/cluster3/root-cert.pem", roots);
            fs::remove_file(d.join("certs/cluster3/cacerts.yaml")).unwrap();
        },
        "error",
        "foreign-root",
        "certs/cluster3/ca-cert.pem",
    ),
    (
        "the root deployed as a cluster CA",
        |d| {
            fs::create_dir(d.join("certs/cluster3")).unwrap();
            let root = d.read("certs/root-cert.pem");
            for f in ["ca-cert.pem", "cert-chain.pem", "root-cert.pem"] {
                write(d, &format!("certs/cluster3/{f}"), &root);
            }
            fs::copy(
                d.join("certs/root-key.pem"),
                d.join("certs/cluster3/ca-key.pem"),
            )
            .unwrap();
        },
        "error",
        "root-as-cluster-ca",
        "certs/cluster3/ca-cert.pem",
    ),
    (
        "not a Secret",
        |d| {
            write(
                d,
                "certs/cluster1/cacerts.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            )
        },
        "error",
        "secret-invalid",
        "certs/cluster1/cacerts.yaml",
    ),
];

#[test]
fn every_hand_made_defect_is_reported_with_its_code_and_file() {
    for (name, mutate, severity, code, file) in CASES {
        let dir = mesh();
        if !code.starts_with("secret-") {
            // Keep the Secret out of it: editing a file makes it stale.
            fs::remove_file(dir.join("certs/cluster1/cacerts.yaml")).unwrap();
        }
        mutate(&dir);
        let (exit, report) = verify_json(&dir, &["certs"]);
        assert_finding(&report, severity, code, file);
        let expected_exit = if *severity == "error" { 1 } else { 0 };
        assert_eq!(exit, expected_exit, "{name}: {report:#}");
        // Exit status follows the findings, and so does `ok`.
        assert_eq!(
            report["ok"],
            serde_json::Value::Bool(expected_exit == 0),
            "{name}"
        );
    }
}

#[test]
fn validity_is_checked_at_the_given_time() {
    let dir = mesh();
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let later = fmt(now + time::Duration::days(800));
    let (exit, report) = verify_json(&dir, &["--at", &later, "certs/cluster1"]);
    assert_eq!(exit, 1);
    assert_finding(&report, "error", "expired", "certs/cluster1/ca-cert.pem");
    let earlier = fmt(now - time::Duration::days(1));
    let (exit, report) = verify_json(&dir, &["--at", &earlier, "certs/cluster1"]);
    assert_eq!(exit, 1);
    assert_finding(
        &report,
        "error",
        "not-yet-valid",
        "certs/cluster1/ca-cert.pem",
    );
    let soon = fmt(now + time::Duration::days(720));
    let (exit, report) = verify_json(&dir, &["--at", &soon, "certs/cluster1"]);
    assert_eq!(exit, 0, "{report:#}");
    assert_finding(
        &report,
        "warning",
        "expires-soon",
        "certs/cluster1/ca-cert.pem",
    );
    // --warn-days widens the window.
    let (_, report) = verify_json(&dir, &["--warn-days", "800", "certs/cluster1"]);
    assert_finding(
        &report,
        "warning",
        "expires-soon",
        "certs/cluster1/ca-cert.pem",
    );
    let (_, report) = verify_json(&dir, &["--warn-days", "0", "certs/cluster1"]);
    assert!(findings(&report).is_empty(), "{report:#}");
}

#[test]
fn a_certs_directory_without_clusters_is_a_warning() {
    let dir = Dir::new();
    dir.ok(&["root", "--dir", "certs", "--key-type", "ecdsa-p256"]);
    let (exit, report) = verify_json(&dir, &["certs"]);
    assert_eq!(exit, 0);
    assert_finding(&report, "warning", "no-clusters", "certs/root-cert.pem");
}

#[test]
fn verify_exit_2_when_it_cannot_run() {
    let dir = mesh();
    for args in [
        vec!["verify", "nonexistent"],
        vec!["verify", "certs/cluster1/ca-cert.pem"],
        vec!["verify", "--warn-days", "soon", "certs"],
        vec!["verify", "--at", "yesterday", "certs"],
        vec!["verify"],
    ] {
        let out = dir.meshca(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty());
    }
    fs::create_dir(dir.join("empty")).unwrap();
    let out = dir.meshca(&["verify", "empty"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("neither a cluster directory"),
        "{}",
        stderr(&out)
    );
    let help = stdout(&dir.ok(&["verify", "--help"]));
    assert!(
        help.contains("EXIT STATUS") && help.contains("0  every check passed"),
        "{help}"
    );
}

/// The documented JSON schema (README, "verify --json"): unknown fields are
/// refused, so a change to the output must change this too.
#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ReportV1 {
    schema: String,
    at: String,
    warn_days: u32,
    ok: bool,
    errors: usize,
    warnings: usize,
    groups: Vec<GroupV1>,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct GroupV1 {
    name: String,
    path: String,
    kind: String,
    verdict: String,
    findings: Vec<FindingV1>,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct FindingV1 {
    severity: String,
    code: String,
    file: String,
    message: String,
}

#[test]
fn verify_json_schema_round_trips() {
    let dir = mesh();
    fs::copy(
        dir.join("certs/cluster2/ca-key.pem"),
        dir.join("certs/cluster1/ca-key.pem"),
    )
    .unwrap();
    fs::remove_file(dir.join("certs/cluster1/cacerts.yaml")).unwrap();
    let (_, value) = verify_json(&dir, &["--warn-days", "45", "certs"]);
    let typed: ReportV1 = serde_json::from_value(value.clone()).expect("matches schema v1");
    assert_eq!(typed.schema, "meshca.verify/v1");
    assert_eq!(typed.warn_days, 45);
    assert_eq!(typed.errors, 1);
    assert!(!typed.ok);
    let kinds: Vec<&str> = typed.groups.iter().map(|g| g.kind.as_str()).collect();
    assert_eq!(kinds, ["mesh", "cluster", "cluster"]);
    assert_eq!(typed.groups[1].verdict, "errors");
    assert_eq!(
        typed.groups[1].findings[0].message,
        "certs/cluster1/ca-key.pem does not match certs/cluster1/ca-cert.pem"
    );
    assert_eq!(serde_json::to_value(&typed).unwrap(), value);
}

#[test]
fn human_output_groups_findings_per_cluster() {
    let dir = mesh();
    fs::remove_file(dir.join("certs/cluster2/root-cert.pem")).unwrap();
    let out = dir.meshca(&["verify", "certs"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "mesh (certs): ok", "{text}");
    assert_eq!(lines[1], "cluster1 (certs/cluster1): ok", "{text}");
    assert_eq!(
        lines[2], "cluster2 (certs/cluster2): FAILED, 1 error",
        "{text}"
    );
    assert!(
        lines[3].contains("missing-file")
            && lines[3].contains("certs/cluster2/root-cert.pem is missing")
    );
    assert_eq!(lines[4], "FAILED: 1 error, 0 warnings, 2 clusters checked");
}

fn inspect(dir: &Dir, args: &[&str]) -> Output {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    dir.meshca(&all)
}

#[test]
fn inspect_shows_certificates_and_keys_but_never_key_material() {
    let dir = mesh();
    let out = inspect(
        &dir,
        &["certs/cluster1/cert-chain.pem", "certs/cluster1/ca-key.pem"],
    );
    util::assert_success("inspect", &out);
    let text = stdout(&out);
    for needle in [
        "subject:     O=Istio, CN=Intermediate CA, L=cluster1",
        "issuer:      O=Istio, CN=Root CA (self-signed)",
        "CA:TRUE, pathlen:0",
        "DNS:istiod.istio-system.svc",
        "key:         ecdsa-p256",
        "Key Cert Sign",
        "SHA-256:",
        "729 days left",
        "private key: ecdsa-p256 (PRIVATE KEY, not encrypted)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    let key = dir.read("certs/cluster1/ca-key.pem");
    let secret_line = key.lines().nth(1).unwrap();
    assert!(!text.contains(&secret_line[..20]));

    // JSON: fingerprint as openssl computes it.
    let out = inspect(&dir, &["--json", "certs/cluster1/ca-cert.pem"]);
    util::assert_success("inspect --json", &out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let item = &v[0]["items"][0];
    assert_eq!(item["type"], "certificate");
    assert_eq!(item["is_ca"], true);
    assert_eq!(item["path_len"], 0);
    let fp = dir.openssl(&[
        "x509",
        "-in",
        "certs/cluster1/ca-cert.pem",
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    assert_eq!(
        fp.trim()
            .trim_start_matches("sha256 Fingerprint=")
            .trim_start_matches("SHA256 Fingerprint="),
        item["sha256_fingerprint"].as_str().unwrap()
    );
    let serial = dir.openssl(&[
        "x509",
        "-in",
        "certs/cluster1/ca-cert.pem",
        "-noout",
        "-serial",
    ]);
    assert_eq!(
        serial.trim().trim_start_matches("serial="),
        item["serial"].as_str().unwrap().replace(':', "")
    );
}

#[test]
fn inspect_reports_encrypted_keys() {
    let dir = mesh();
    dir.openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-passout",
        "pass:secret",
        "-in",
        "certs/cluster1/ca-key.pem",
        "-out",
        "enc.pem",
    ]);
    let out = inspect(&dir, &["enc.pem"]);
    util::assert_success("inspect enc.pem", &out);
    assert!(
        stdout(&out).contains("ENCRYPTED PRIVATE KEY, encrypted"),
        "{}",
        stdout(&out)
    );
    // verify reports it as istiod would fail.
    fs::copy(dir.join("enc.pem"), dir.join("certs/cluster1/ca-key.pem")).unwrap();
    let (exit, report) = verify_json(&dir, &["certs/cluster1"]);
    assert_eq!(exit, 1);
    assert_finding(
        &report,
        "error",
        "key-encrypted",
        "certs/cluster1/ca-key.pem",
    );
}

#[test]
fn inspect_bad_input_is_a_clear_error_with_exit_2() {
    let dir = mesh();
    write(&dir, "text.pem", "not a pem\n");
    dir.openssl(&[
        "x509",
        "-in",
        "certs/cluster1/ca-cert.pem",
        "-outform",
        "der",
        "-out",
        "cert.der",
    ]);
    let pem = dir.read("certs/cluster1/ca-cert.pem");
    write(&dir, "truncated.pem", &pem[..pem.len() / 2]);
    write(&dir, "cut.pem", format!("{}\n", &pem[..pem.len() - 30]));
    for (file, needle) in [
        ("text.pem", "text.pem: not PEM"),
        ("cert.der", "looks like DER"),
        ("truncated.pem", "truncated.pem"),
        ("cut.pem", "cut.pem"),
        ("certs", "is a directory"),
        ("missing.pem", "missing.pem: file not found"),
    ] {
        let out = inspect(&dir, &[file]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{file}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{file}");
    }
    // Good files are still shown when another one is bad.
    let out = inspect(&dir, &["certs/root-cert.pem", "text.pem"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("O=Istio, CN=Root CA"));
}

/// The openssl-made fixtures of `testdata/broken.sh`: each broken case must
/// give exactly its one finding (code, severity, file), each good case none.
#[test]
fn openssl_made_broken_bundles_give_exactly_their_finding() {
    let dir = Dir::new();
    let out = std::process::Command::new(util::require_tool("bash"))
        .arg(util::testdata().join("broken.sh"))
        .arg(dir.join("cases"))
        .output()
        .expect("run broken.sh");
    util::assert_success("testdata/broken.sh", &out);
    let tsv = fs::read_to_string(util::testdata().join("broken-cases.tsv")).unwrap();
    let mut checked = 0;
    for line in tsv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [case, severity, code, file] = cols[..] else {
            panic!("bad tsv line {line:?}");
        };
        let (exit, report) = verify_json(&dir, &[&format!("cases/{case}")]);
        let expected = (
            severity.to_owned(),
            code.to_owned(),
            format!("cases/{case}/{file}"),
        );
        assert_eq!(findings(&report), vec![expected], "case {case}: {report:#}");
        assert_eq!(exit, if severity == "error" { 1 } else { 0 }, "case {case}");
        checked += 1;
    }
    assert!(checked >= 43, "only {checked} cases in broken-cases.tsv");
    for good in [
        "good",
        "good-three-level",
        "good-multi-root",
        "good-crl",
        "good-recipe",
    ] {
        let (exit, report) = verify_json(&dir, &[&format!("cases/{good}")]);
        assert_eq!(exit, 0, "{good}: {report:#}");
        assert!(findings(&report).is_empty(), "{good}: {report:#}");
    }
}

/// `init --namespace mesh-ca` exited 0, then `verify` said the Secret was in
/// the wrong namespace: verify now takes istiod's namespace from each cluster's
/// files (their cacerts.yaml, else the CA's istiod.<ns>.svc) unless `--namespace` states it.
#[test]
fn a_mesh_made_for_another_namespace_verifies_and_a_stated_namespace_is_checked() {
    let dir = Dir::new();
    util::assert_success(
        "init",
        &dir.meshca(&[
            "init",
            "-q",
            "--key-type",
            "ecdsa-p256",
            "--namespace",
            "mesh-ca",
            "c1",
        ]),
    );
    let (code, report) = verify_json(&dir, &["."]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(findings(&report), vec![], "{report:#}");
    let (code, report) = verify_json(&dir, &["--namespace", "mesh-ca", "."]);
    assert_eq!((code, findings(&report)), (0, vec![]), "{report:#}");
    let (code, report) = verify_json(&dir, &["--namespace", "istio-system", "."]);
    assert_eq!(code, 1, "{report:#}");
    let codes: Vec<String> = findings(&report).into_iter().map(|f| f.1).collect();
    assert!(codes.contains(&"secret-namespace".to_owned()), "{report:#}");
}

/// Istio's own sample bundles (samples/certs, copied under
/// oracle/testdata/istio-samples), the multi-root `root-cert-combined.pem`
/// without its final newline among them, verify with warnings only.
#[test]
fn istios_own_sample_bundles_verify() {
    let dir = Dir::new();
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../oracle/testdata/istio-samples")
        .canonicalize()
        .unwrap();
    for sample in ["default", "combined", "alt-combined"] {
        let path = samples.join(sample);
        let (code, report) = verify_json(
            &dir,
            &["--at", "2030-01-01T00:00:00Z", path.to_str().unwrap()],
        );
        assert_eq!(code, 0, "{sample}: {report:#}");
        assert_eq!(report["errors"], 0, "{sample}: {report:#}");
    }
    // combined's root-cert.pem holds two roots and lacks its final newline.
    let roots = fs::read(samples.join("combined/root-cert.pem")).unwrap();
    assert!(!roots.ends_with(b"\n"));
    assert_eq!(
        roots
            .windows(27)
            .filter(|w| w == b"-----BEGIN CERTIFICATE-----")
            .count(),
        2
    );
    // combined-2's key does not match its certificate: an error.
    let (code, report) = verify_json(
        &dir,
        &[
            "--at",
            "2030-01-01T00:00:00Z",
            samples.join("combined-2").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{report:#}");
    let codes: Vec<String> = findings(&report).into_iter().map(|f| f.1).collect();
    assert!(codes.contains(&"key-mismatch".to_owned()), "{report:#}");
}

/// A cluster directory planted as a symbolic link (to the operator's own
/// files, say) is never followed: an error names it, nothing is read there.
#[test]
fn a_symlinked_cluster_directory_is_not_followed() {
    let dir = util::ecdsa_mesh();
    let outside = Dir::new();
    fs::create_dir(outside.join("c9")).unwrap();
    fs::write(outside.join("c9/ca-key.pem"), "SECRET-MARKER-42\n").unwrap();
    std::os::unix::fs::symlink(outside.join("c9"), dir.join("certs/c9")).unwrap();
    let (code, report) = verify_json(&dir, &["certs"]);
    assert_eq!(code, 1, "{report:#}");
    assert!(
        findings(&report).contains(&("error".into(), "wrong-content".into(), "certs/c9".into())),
        "{report:#}"
    );
    assert!(!report.to_string().contains("SECRET-MARKER"), "{report:#}");
}

/// A `ca-key.pem` that is a symbolic link was refused, and then also got a
/// key-permissions warning about the link's target: only the refusal stays.
#[test]
fn a_symlinked_key_got_a_permissions_warning_about_its_target() {
    use std::os::unix::fs::PermissionsExt;
    let dir = util::ecdsa_mesh();
    let outside = Dir::new();
    fs::copy(dir.join("certs/cluster1/ca-key.pem"), outside.join("k.pem")).unwrap();
    fs::set_permissions(outside.join("k.pem"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::remove_file(dir.join("certs/cluster1/ca-key.pem")).unwrap();
    std::os::unix::fs::symlink(outside.join("k.pem"), dir.join("certs/cluster1/ca-key.pem"))
        .unwrap();
    let (code, report) = verify_json(&dir, &["certs/cluster1"]);
    assert_eq!(code, 1, "{report:#}");
    let codes: Vec<String> = findings(&report).into_iter().map(|f| f.1).collect();
    assert!(codes.contains(&"not-pem".to_owned()), "{report:#}");
    assert!(!codes.contains(&"key-permissions".to_owned()), "{report:#}");
}
