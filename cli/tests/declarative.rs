//! The declarative mesh: `meshca plan`, `meshca apply` and `meshca audit`,
//! run as the real binary, checked with openssl and kubectl.

mod util;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use util::{stderr, stdout, Dir};

/// Every file under `dir` (the lock file aside), by relative path.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    meshca::store::snapshot(dir)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.to_vec()))
        .collect()
}

/// The files of `snap` under `prefix`.
fn under(snap: &BTreeMap<PathBuf, Vec<u8>>, prefix: &str) -> BTreeMap<PathBuf, Vec<u8>> {
    snap.iter()
        .filter(|(p, _)| p.starts_with(prefix))
        .map(|(p, b)| (p.clone(), b.clone()))
        .collect()
}

const T0: &str = "2026-06-01T00:00:00Z";

fn mesh_file(clusters: &str) -> String {
    format!(
        "apiVersion: meshca/v1\nkind: Mesh\ntrustDomain: cluster.local\nroot:\n  keyType: ecdsa-p384\n  \
         org: Example\n  cn: Example Root CA\ndefaults:\n  keyType: ecdsa-p256\n  days: 365\n  \
         renewBefore: 30\nclusters:\n{clusters}"
    )
}

const EAST_WEST: &str = "  - name: east\n  - name: west\n";

fn write(dir: &Dir, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

fn plan(dir: &Dir, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["plan", "-f", "fleet.yaml", "--dir", "fleet"];
    args.extend_from_slice(extra);
    dir.meshca(&args)
}

fn apply(dir: &Dir, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "-f", "fleet.yaml", "--dir", "fleet"];
    args.extend_from_slice(extra);
    let out = dir.meshca(&args);
    util::assert_success("meshca apply", &out);
    out
}

/// A mesh applied from fleet.yaml with east and west, at T0.
fn applied() -> Dir {
    let dir = Dir::new();
    write(&dir, "fleet.yaml", &mesh_file(EAST_WEST));
    apply(&dir, &["--at", T0]);
    dir
}

fn openssl_verify_cluster(dir: &Dir, cluster: &str, at: Option<&str>) {
    let epoch;
    let mut args = vec!["verify", "-x509_strict"];
    if let Some(at) = at {
        let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .unwrap();
        epoch = t.unix_timestamp().to_string();
        args.extend(["-attime", epoch.as_str()]);
    }
    let root = format!("fleet/{cluster}/root-cert.pem");
    let chain = format!("fleet/{cluster}/cert-chain.pem");
    let ca = format!("fleet/{cluster}/ca-cert.pem");
    args.extend(["-CAfile", &root, "-untrusted", &chain, &ca]);
    let out = dir.openssl(&args);
    assert!(out.contains(": OK"), "{out}");
}

fn verify_at(dir: &Dir, at: &str) {
    let out = dir.meshca(&["verify", "--at", at, "fleet"]);
    assert_eq!(code(&out), Some(0), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn schema_errors_name_the_line_and_field_and_exit_2() {
    let dir = Dir::new();
    let cases: [(&str, &str, &str, &str); 5] = [
        (
            "  - name: east\n    keytype: rsa-2048\n",
            "line 14",
            "clusters[0].keytype",
            "rsa-2048",
        ),
        (
            "  - name: east\n    days: forever-and-ever\n",
            "line 14",
            "clusters[0].days",
            "forever-and-ever",
        ),
        (
            "  - name: east\n    keyType: dsa-1024\n",
            "line 14",
            "clusters[0].keyType",
            "dsa-1024",
        ),
        (
            "  - name: east\n  - name: west\n  - name: east\n",
            "line 15",
            "clusters[2]",
            "\u{0}",
        ),
        (
            "  - name: east\n    secret: sealed-secret\n",
            "line 14",
            "clusters[0].secret",
            "sealed-secret",
        ),
    ];
    for (clusters, line, field, value) in cases {
        write(&dir, "fleet.yaml", &mesh_file(clusters));
        for cmd in ["plan", "apply"] {
            let out = dir.meshca(&[cmd, "-f", "fleet.yaml", "--dir", "fleet"]);
            let err = stderr(&out);
            assert_eq!(code(&out), Some(2), "{cmd} {field}: {err}");
            assert!(
                err.contains(&format!("fleet.yaml: {line}")),
                "{cmd} {field}: {err}"
            );
            assert!(
                err.contains(&format!(": {field}: ")),
                "{cmd} {field}: {err}"
            );
            assert!(!err.contains(value), "the value is echoed: {err}");
            assert!(!dir.join("fleet").exists(), "{cmd} wrote something");
        }
    }
    // Name constraints with an ambient data plane: refused, nothing written.
    write(
        &dir,
        "fleet.yaml",
        &mesh_file(EAST_WEST).replace(
            "renewBefore: 30",
            "renewBefore: 30\n  nameConstraints: true\n  dataPlane: ambient",
        ),
    );
    for cmd in ["plan", "apply"] {
        let out = dir.meshca(&[cmd, "-f", "fleet.yaml", "--dir", "fleet"]);
        let err = stderr(&out);
        assert_eq!(code(&out), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("fleet.yaml: defaults.nameConstraints: "),
            "{cmd}: {err}"
        );
        assert!(err.contains("rustls-webpki"), "{cmd}: {err}");
        assert!(!dir.join("fleet").exists(), "{cmd} wrote something");
    }
}

#[test]
fn plan_on_an_empty_directory_lists_the_root_and_every_cluster() {
    let dir = Dir::new();
    write(&dir, "fleet.yaml", &mesh_file(EAST_WEST));
    let out = plan(&dir, &["--exit-code"]);
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("create the root (ecdsa-p384"), "{text}");
    assert!(text.contains("add east (ecdsa-p256"), "{text}");
    assert!(text.contains("add west (ecdsa-p256"), "{text}");
    assert!(text.contains("3 changes"), "{text}");
    // Without --exit-code, pending changes are still exit 0.
    assert_eq!(code(&plan(&dir, &[])), Some(0));
    let out = plan(&dir, &["--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema"], "meshca.plan/v1");
    let actions: Vec<&str> = doc["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create-root", "add-cluster", "add-cluster"]);
    assert_eq!(doc["actions"][1]["cluster"]["name"], "east");
    assert_eq!(doc["actions"][1]["cluster"]["keyType"], "ecdsa-p256");
    assert!(!dir.join("fleet").exists(), "plan wrote something");
}

#[test]
fn apply_then_the_plan_is_empty_and_the_mesh_verifies() {
    let dir = Dir::new();
    write(&dir, "fleet.yaml", &mesh_file(EAST_WEST));
    let out = apply(&dir, &[]);
    let text = stdout(&out);
    assert!(text.contains("created the root"), "{text}");
    assert!(
        text.contains("added east") && text.contains("added west"),
        "{text}"
    );
    let out = plan(&dir, &["--exit-code"]);
    assert_eq!(code(&out), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
    let out = dir.meshca(&["verify", "fleet"]);
    assert_eq!(code(&out), Some(0), "{}", stdout(&out));
    for c in ["east", "west"] {
        openssl_verify_cluster(&dir, c, None);
    }
    let root = dir.openssl(&["x509", "-in", "fleet/root-cert.pem", "-noout", "-subject"]);
    assert!(root.contains("CN = Example Root CA"), "{root}");
    // A second apply has nothing to do and writes nothing.
    let before = snapshot(&dir.join("fleet"));
    let out = apply(&dir, &[]);
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
    assert_eq!(snapshot(&dir.join("fleet")), before);
}

#[test]
fn drift_reissues_just_that_cluster_and_leaves_the_others_byte_identical() {
    for (west, field, check) in [
        (
            "    keyType: ecdsa-p384\n",
            "keyType ecdsa-p256 -> ecdsa-p384",
            "ecdsa-p384",
        ),
        (
            "    namespace: istio\n",
            "namespace istio-system -> istio",
            "namespace: istio\n",
        ),
        (
            "    secret: tls\n",
            "secret opaque -> tls",
            "kubernetes.io/tls",
        ),
    ] {
        let dir = applied();
        let before = snapshot(&dir.join("fleet"));
        write(
            &dir,
            "fleet.yaml",
            &mesh_file(&format!("  - name: east\n  - name: west\n{west}")),
        );
        let out = plan(&dir, &["--exit-code", "--at", T0]);
        assert_eq!(code(&out), Some(3), "{field}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("re-issue west: "), "{text}");
        assert!(text.contains(field), "{text}");
        assert!(text.contains("1 change;"), "{text}");
        apply(&dir, &["--at", T0]);
        let after = snapshot(&dir.join("fleet"));
        assert_eq!(under(&after, "east"), under(&before, "east"), "{field}");
        for root_file in ["root-cert.pem", "root-key.pem"] {
            assert_eq!(after[Path::new(root_file)], before[Path::new(root_file)]);
        }
        assert_ne!(under(&after, "west"), under(&before, "west"), "{field}");
        let west_files = String::from_utf8_lossy(&after[Path::new("west/cacerts.yaml")])
            .into_owned()
            + &dir.openssl(&["pkey", "-in", "fleet/west/ca-key.pem", "-noout", "-text"]);
        let expect = if check == "ecdsa-p384" {
            "NIST CURVE: P-384"
        } else {
            check
        };
        assert!(west_files.contains(expect), "{field}: {west_files}");
        let out = plan(&dir, &["--exit-code", "--at", T0]);
        assert_eq!(code(&out), Some(0), "{field}: {}", stdout(&out));
        verify_at(&dir, T0);
        openssl_verify_cluster(&dir, "west", Some(T0));
    }
}

#[test]
fn renew_before_renews_at_a_pinned_time() {
    let dir = applied();
    let before = snapshot(&dir.join("fleet"));
    // 365-day intermediates, renewBefore 30: on day 330 nothing, on day 340 both.
    let out = plan(&dir, &["--exit-code", "--at", "2027-04-27T00:00:00Z"]);
    assert_eq!(code(&out), Some(0), "{}", stdout(&out));
    let later = "2027-05-07T00:00:00Z";
    let out = plan(&dir, &["--exit-code", "--at", later]);
    assert_eq!(code(&out), Some(3), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("renew east: expires"), "{text}");
    assert!(text.contains("renew west: expires"), "{text}");
    assert!(text.contains("renewBefore 30"), "{text}");
    apply(&dir, &["--at", later]);
    assert_eq!(code(&plan(&dir, &["--exit-code", "--at", later])), Some(0));
    verify_at(&dir, later);
    openssl_verify_cluster(&dir, "east", Some(later));
    let after = snapshot(&dir.join("fleet"));
    assert_eq!(
        after[Path::new("root-cert.pem")],
        before[Path::new("root-cert.pem")]
    );
    assert_ne!(
        after[Path::new("east/ca-cert.pem")],
        before[Path::new("east/ca-cert.pem")]
    );
}

#[test]
fn a_cluster_removed_from_the_file_is_reported_never_deleted() {
    let dir = applied();
    let before = snapshot(&dir.join("fleet"));
    write(&dir, "fleet.yaml", &mesh_file("  - name: east\n"));
    let out = plan(&dir, &["--exit-code", "--at", T0]);
    assert_eq!(code(&out), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("west: in fleet but not in fleet.yaml: kept (never deleted)"),
        "{}",
        stdout(&out)
    );
    let out = plan(&dir, &["--json", "--at", T0]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["unmanaged"], serde_json::json!(["west"]));
    let out = apply(&dir, &["--at", T0]);
    assert!(
        stdout(&out).contains("kept (never deleted)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(snapshot(&dir.join("fleet")), before);
}

#[test]
fn stale_crls_are_refreshed() {
    let dir = applied();
    dir.ok(&["crl", "--dir", "fleet", "east"]);
    let before = snapshot(&dir.join("fleet"));
    // `meshca crl` signs at the real time: plan 70 days past it (90-day CRLs).
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(70);
    let later = later
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = plan(&dir, &["--exit-code", "--at", &later]);
    assert_eq!(code(&out), Some(3), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("refresh root-crl.pem")
            && stdout(&out).contains("ca-crl.pem of east"),
        "{}",
        stdout(&out)
    );
    apply(&dir, &["--at", &later]);
    let after = snapshot(&dir.join("fleet"));
    assert_ne!(
        after[Path::new("root-crl.pem")],
        before[Path::new("root-crl.pem")]
    );
    assert_eq!(under(&after, "west"), under(&before, "west"));
    assert_eq!(
        after[Path::new("east/ca-cert.pem")],
        before[Path::new("east/ca-cert.pem")]
    );
    assert_eq!(code(&plan(&dir, &["--exit-code", "--at", &later])), Some(0));
    verify_at(&dir, &later);
}

#[test]
fn a_failed_apply_changes_nothing() {
    let dir = applied();
    // A file where the new cluster's directory must go: the save fails
    // after the plan was carried out and checked in memory.
    fs::write(dir.join("fleet/north"), "not a directory\n").unwrap();
    let before = snapshot(&dir.join("fleet"));
    write(
        &dir,
        "fleet.yaml",
        &mesh_file("  - name: east\n    keyType: ecdsa-p384\n  - name: west\n  - name: north\n"),
    );
    let out = dir.meshca(&["apply", "-f", "fleet.yaml", "--dir", "fleet", "--at", T0]);
    assert_eq!(code(&out), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("nothing was changed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&dir.join("fleet")), before);
    assert!(meshca::store::leftovers(&dir.join("fleet"))
        .unwrap()
        .is_empty());
    // The plan still says what is pending.
    let out = plan(&dir, &["--exit-code", "--at", T0]);
    assert_eq!(code(&out), Some(3));
}

/// The cacerts Secret as `kubectl get secret cacerts -n NS -o yaml` prints
/// it: what `kubectl create secret generic --dry-run=client -o yaml` makes
/// from the cluster's files, plus the fields the API server adds.
fn live_secret(dir: &Dir, cluster: &str, ns: &str, out: &str) {
    let d = format!("fleet/{cluster}");
    let args: Vec<String> = [
        "ca-cert.pem",
        "ca-key.pem",
        "cert-chain.pem",
        "root-cert.pem",
    ]
    .iter()
    .map(|f| format!("--from-file={f}={d}/{f}"))
    .collect();
    let mut all = vec!["create", "secret", "generic", "cacerts", "-n", ns];
    all.extend(args.iter().map(String::as_str));
    all.extend(["--dry-run=client", "-o", "yaml"]);
    let made = dir.tool("kubectl", &all);
    util::assert_success("kubectl create secret", &made);
    let yaml = stdout(&made).replace(
        "metadata:\n",
        "metadata:\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: |\n      \
         {\"apiVersion\":\"v1\",\"kind\":\"Secret\"}\n  managedFields:\n  - apiVersion: v1\n    \
         fieldsType: FieldsV1\n    manager: kubectl\n    operation: Update\n  \
         resourceVersion: \"4711\"\n  uid: 5f0c2a9e-0d3b-4c59-9d1c-2b4f0e0c9a11\n",
    );
    let yaml = yaml.replace(
        "creationTimestamp: null",
        "creationTimestamp: \"2026-06-01T00:00:00Z\"",
    );
    assert!(yaml.contains("resourceVersion"), "{yaml}");
    fs::write(dir.join(out), yaml).unwrap();
}

fn configmap(dir: &Dir, root_file: &str, out: &str) {
    let from = format!("--from-file=root-cert.pem={root_file}");
    let made = dir.tool(
        "kubectl",
        &[
            "create",
            "configmap",
            "istio-ca-root-cert",
            "-n",
            "default",
            &from,
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
    util::assert_success("kubectl create configmap", &made);
    fs::write(dir.join(out), made.stdout).unwrap();
}

fn audit(dir: &Dir, cluster: &str, secret: &str, cm: Option<&str>) -> std::process::Output {
    let mut args = vec!["audit", "--dir", "fleet", cluster, "--secret", secret];
    if let Some(cm) = cm {
        args.extend(["--root-configmap", cm]);
    }
    dir.meshca(&args)
}

#[test]
fn audit_in_sync() {
    let dir = applied();
    live_secret(&dir, "east", "istio-system", "east-live.yaml");
    configmap(&dir, "fleet/east/root-cert.pem", "east-root.yaml");
    let out = audit(&dir, "east", "east-live.yaml", Some("east-root.yaml"));
    assert_eq!(code(&out), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("east: in sync"), "{}", stdout(&out));
    let out = dir.meshca(&[
        "audit",
        "--dir",
        "fleet",
        "east",
        "--secret",
        "east-live.yaml",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"cluster": "east", "differences": []})
    );
    // meshca's own cacerts.yaml is in sync with its directory too.
    let out = audit(&dir, "west", "fleet/west/cacerts.yaml", None);
    assert_eq!(code(&out), Some(0), "{}{}", stdout(&out), stderr(&out));
    // A `kind: List` of one, as `kubectl get secret -o yaml` of a selection prints.
    let live = dir.read("east-live.yaml");
    let items: String = live
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("- {l}\n")
            } else {
                format!("  {l}\n")
            }
        })
        .collect();
    write(
        &dir,
        "east-list.yaml",
        &format!("apiVersion: v1\nkind: List\nmetadata:\n  resourceVersion: \"\"\nitems:\n{items}"),
    );
    let out = audit(&dir, "east", "east-list.yaml", None);
    assert_eq!(code(&out), Some(0), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn audit_of_a_drifted_secret_names_the_file_and_what_the_cluster_runs() {
    let dir = applied();
    // The cluster still runs east's bundle from before a re-issue.
    live_secret(&dir, "east", "istio-system", "east-old.yaml");
    let old_serial = dir.openssl(&["x509", "-in", "fleet/east/ca-cert.pem", "-noout", "-serial"]);
    write(
        &dir,
        "fleet.yaml",
        &mesh_file("  - name: east\n    keyType: ecdsa-p384\n  - name: west\n"),
    );
    apply(&dir, &["--at", T0]);
    let new_serial = dir.openssl(&["x509", "-in", "fleet/east/ca-cert.pem", "-noout", "-serial"]);
    let out = audit(&dir, "east", "east-old.yaml", None);
    assert_eq!(code(&out), Some(1), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("east: ca-cert.pem: differs"), "{text}");
    assert!(
        text.contains("east: ca-key.pem: the cluster runs another key"),
        "{text}"
    );
    assert!(text.contains("out of sync"), "{text}");
    // Serials as openssl prints them (`serial=ABCD...`), colon-separated here.
    let hex = |s: &str| s.trim().trim_start_matches("serial=").to_owned();
    let plain = text.replace(':', "");
    assert!(plain.contains(&hex(&old_serial)), "{text}");
    assert!(plain.contains(&hex(&new_serial)), "{text}");
    assert!(text.contains("the cluster runs: serial"), "{text}");
    assert!(text.contains("L=east, not after"), "{text}");
    // The key itself is never printed.
    let key = dir.read("fleet/east/ca-key.pem");
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!text.contains(line));
    }
    // West's Secret in east: every certificate file differs.
    live_secret(&dir, "west", "istio-system", "west-live.yaml");
    let out = audit(&dir, "east", "west-live.yaml", None);
    assert_eq!(code(&out), Some(1));
    assert!(stdout(&out).contains("L=west"), "{}", stdout(&out));
    let out = dir.meshca(&[
        "audit",
        "--dir",
        "fleet",
        "east",
        "--secret",
        "west-live.yaml",
        "--json",
    ]);
    assert_eq!(code(&out), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &doc["differences"][0];
    assert_eq!(first["what"], "ca-cert.pem");
    assert!(
        first["theirs"][0]["subject"]
            .as_str()
            .unwrap()
            .contains("L=west"),
        "{doc}"
    );
    assert!(
        first["ours"][0]["subject"]
            .as_str()
            .unwrap()
            .contains("L=east"),
        "{doc}"
    );
    // The Secret in another namespace than istiod's.
    live_secret(&dir, "west", "istio", "west-ns.yaml");
    let out = audit(&dir, "west", "west-ns.yaml", None);
    assert_eq!(code(&out), Some(1));
    assert!(
        stdout(&out).contains("metadata.namespace"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn audit_of_a_foreign_root_configmap() {
    let dir = applied();
    dir.ok(&["root", "--dir", "other", "--key-type", "ecdsa-p256"]);
    live_secret(&dir, "east", "istio-system", "east-live.yaml");
    configmap(&dir, "other/root-cert.pem", "foreign-root.yaml");
    let out = audit(&dir, "east", "east-live.yaml", Some("foreign-root.yaml"));
    assert_eq!(code(&out), Some(1), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("east: ConfigMap root-cert.pem: the roots workloads trust differ"),
        "{text}"
    );
    assert!(text.contains("fleet/east has: serial"), "{text}");
    assert!(text.contains("CN=Example Root CA"), "{text}");
    assert!(
        text.contains("the cluster runs: serial") && text.contains("CN=Root CA"),
        "{text}"
    );
    assert!(text.contains("1 difference"), "{text}");
}

#[test]
fn audit_of_garbage_yaml_names_the_file_and_echoes_nothing() {
    let dir = applied();
    for (name, text) in [
        ("garbage.yaml", "apiVersion: v1\nkind: Secret\ndata: [top-secret-value\n"),
        ("pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: not-a-secret-value\n"),
        ("base64.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cacerts\ndata:\n  ca-cert.pem: '!!not-base64-value'\n"),
    ] {
        write(&dir, name, text);
        let out = audit(&dir, "east", name, None);
        let err = stderr(&out);
        assert_eq!(code(&out), Some(2), "{name}: {err}");
        assert!(err.contains(&format!("{name}: ")), "{err}");
        assert!(!err.contains("-value") && !err.contains("Pod"), "echoed: {err}");
    }
    let good = "fleet/east/cacerts.yaml";
    write(
        &dir,
        "cm.yaml",
        "kind: ConfigMap\ndata: {root-cert.pem: [oops-value\n",
    );
    let out = audit(&dir, "east", good, Some("cm.yaml"));
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cm.yaml: ") && !stderr(&out).contains("oops"),
        "{}",
        stderr(&out)
    );
    // A cluster that does not exist.
    let out = audit(&dir, "north", good, None);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
}

/// Regression: a Secret (or ConfigMap) naming `ca-cert.pem` twice was
/// judged "in sync" on the last value, which another YAML reader may not
/// take; it is refused (exit 2), the value never echoed.
#[test]
fn audit_passed_a_secret_that_names_a_key_twice() {
    let dir = applied();
    let good = dir.read("fleet/east/cacerts.yaml");
    let twice = good.replacen(
        "\ndata:\n",
        "\ndata:\n  ca-cert.pem: U0VDUkVUVkFMVUU0Mg==\n",
        1,
    );
    assert_ne!(twice, good, "the Secret has a data: map");
    write(&dir, "twice.yaml", &twice);
    let out = audit(&dir, "east", "twice.yaml", None);
    let err = stderr(&out);
    assert_eq!(code(&out), Some(2), "{}{err}", stdout(&out));
    assert!(
        err.contains("twice.yaml: ") && err.contains("given twice"),
        "{err}"
    );
    assert!(!err.contains("U0VDUkVU"), "echoed: {err}");
    configmap(&dir, "fleet/east/root-cert.pem", "east-root.yaml");
    let cm = dir.read("east-root.yaml");
    let cm_twice = cm.replacen("\ndata:\n", "\ndata:\n  root-cert.pem: other\n", 1);
    assert_ne!(cm_twice, cm, "the ConfigMap has a data: map");
    write(&dir, "cm-twice.yaml", &cm_twice);
    let out = audit(
        &dir,
        "east",
        "fleet/east/cacerts.yaml",
        Some("cm-twice.yaml"),
    );
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("given twice"), "{}", stderr(&out));
}

/// The README's "Declarative mesh" section, run as a reader would: its
/// heredocs written, its `meshca` lines run in order (kubectl lines need a
/// cluster and are skipped).
#[test]
fn the_readme_declarative_section_runs_in_order() {
    let readme = fs::read_to_string(util::testdata().join("../README.md")).unwrap();
    let start = readme
        .find("\n## Declarative mesh\n")
        .expect("README has a Declarative mesh section");
    let section = &readme[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let section = &section[..end];
    let dir = Dir::new();
    let (mut in_sh, mut heredoc, mut ran) = (false, None::<(String, String)>, Vec::new());
    for line in section.lines() {
        if let Some((file, body)) = &mut heredoc {
            if line == "EOF" {
                fs::write(dir.join(file), &*body).unwrap();
                heredoc = None;
            } else {
                body.push_str(line);
                body.push('\n');
            }
            continue;
        }
        if !in_sh {
            in_sh = line == "```sh";
            continue;
        }
        if line == "```" {
            in_sh = false;
        } else if let Some(file) = line
            .strip_prefix("cat > ")
            .and_then(|r| r.strip_suffix(" <<'EOF'"))
        {
            heredoc = Some((file.to_owned(), String::new()));
        } else if let Some(cmd) = line.strip_prefix("meshca ") {
            let cmd = cmd.split("  #").next().unwrap_or(cmd);
            let args: Vec<&str> = cmd.split_whitespace().collect();
            dir.ok(&args);
            ran.push(args[0].to_owned());
        }
    }
    assert_eq!(
        ran,
        ["plan", "apply", "plan", "plan", "apply", "verify", "audit", "plan", "apply", "verify"],
        "the section's meshca lines"
    );
    // What the section promises: west re-issued as P-384, north with the
    // TLS-shaped Secret, nothing left to do.
    let key = dir.openssl(&["pkey", "-in", "fleet/west/ca-key.pem", "-noout", "-text"]);
    assert!(key.contains("P-384"), "{key}");
    assert!(dir
        .read("fleet/north/cacerts.yaml")
        .contains("kubernetes.io/tls"));
    // And every intermediate name-constrained to the trust domain, north
    // with its extra DNS suffix.
    for cluster in ["east", "west", "north"] {
        let text = dir.openssl(&[
            "x509",
            "-in",
            &format!("fleet/{cluster}/ca-cert.pem"),
            "-noout",
            "-ext",
            "nameConstraints",
        ]);
        assert!(text.contains("URI:cluster.local"), "{cluster}: {text}");
    }
    let text = dir.openssl(&[
        "x509",
        "-in",
        "fleet/north/ca-cert.pem",
        "-noout",
        "-ext",
        "nameConstraints",
    ]);
    assert!(text.contains("DNS:.north.example.com"), "{text}");
    let out = dir.meshca(&["plan", "-f", "fleet.yaml", "--dir", "fleet", "--exit-code"]);
    assert_eq!(code(&out), Some(0), "{}", stdout(&out));
}

#[test]
fn the_root_passphrase_is_asked_only_when_the_root_signs() {
    let dir = Dir::new();
    write(&dir, "pass", "correct horse\n");
    dir.ok(&[
        "root",
        "--dir",
        "fleet",
        "--key-type",
        "ecdsa-p384",
        "--org",
        "Example",
        "--cn",
        "Example Root CA",
        "--encrypt",
        "--passphrase-file",
        "pass",
    ]);
    write(&dir, "fleet.yaml", &mesh_file(EAST_WEST));
    // No terminal, no passphrase file: apply cannot sign and writes nothing.
    let before = snapshot(&dir.join("fleet"));
    let out = dir.meshca(&["apply", "-f", "fleet.yaml", "--dir", "fleet"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("needs a passphrase"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&dir.join("fleet")), before);
    apply(&dir, &["--passphrase-file", "pass"]);
    verify_at(&dir, &now());
    // Nothing to sign: no passphrase needed.
    let out = apply(&dir, &[]);
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn root_key_reference_a_file_elsewhere_or_pkcs11() {
    let dir = Dir::new();
    dir.ok(&["root", "--dir", "offline", "--key-type", "ecdsa-p256"]);
    fs::create_dir(dir.join("fleet")).unwrap();
    fs::copy(
        dir.join("offline/root-cert.pem"),
        dir.join("fleet/root-cert.pem"),
    )
    .unwrap();
    let file = mesh_file(EAST_WEST).replace(
        "root:\n  keyType: ecdsa-p384\n  org: Example\n  cn: Example Root CA\n",
        "root:\n  keyType: ecdsa-p256\n  key: offline/root-key.pem\n",
    );
    write(&dir, "fleet.yaml", &file);
    apply(&dir, &[]);
    assert!(!dir.join("fleet/root-key.pem").exists());
    let out = dir.meshca(&["verify", "fleet"]);
    assert_eq!(code(&out), Some(0), "{}", stdout(&out));
    openssl_verify_cluster(&dir, "east", None);
    // A pkcs11: URI is taken as the root key: here the token cannot be
    // used (no PIN source, no terminal), which stops apply before any write.
    write(
        &dir,
        "fleet.yaml",
        &file
            .replace("offline/root-key.pem", "\"pkcs11:token=mesh;object=root\"")
            .replace("  - name: west\n", "  - name: west\n  - name: north\n"),
    );
    let before = snapshot(&dir.join("fleet"));
    let out = dir.meshca(&["apply", "-f", "fleet.yaml", "--dir", "fleet"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("token \"mesh\", object \"root\"")
            && stderr(&out).contains("needs a PIN"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&dir.join("fleet")), before);
    // The plan itself needs no key.
    assert_eq!(code(&plan(&dir, &["--exit-code"])), Some(3));
    // Neither a pkcs11: key nor a key file elsewhere makes a new root: a
    // missing certs directory is not even created.
    for key in ["\"pkcs11:token=mesh;object=root\"", "offline/root-key.pem"] {
        let file = mesh_file(EAST_WEST).replace(
            "root:\n  keyType: ecdsa-p384\n",
            &format!("root:\n  keyType: ecdsa-p384\n  key: {key}\n"),
        );
        write(&dir, "new.yaml", &file);
        let out = dir.meshca(&["apply", "-f", "new.yaml", "--dir", "new"]);
        assert_eq!(code(&out), Some(1), "{key}: {}", stderr(&out));
        assert!(stderr(&out).contains("root.key: "), "{}", stderr(&out));
        assert!(!dir.join("new").exists(), "{key}");
    }
}

/// `openssl verify -x509_strict` of a workload leaf below `cluster`'s
/// intermediate, the mesh root the only trust anchor.
fn openssl_verify_leaf(dir: &Dir, cluster: &str, leaf: &str) -> (bool, String) {
    let ca = format!("fleet/{cluster}/ca-cert.pem");
    let out = dir.tool(
        "openssl",
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            "fleet/root-cert.pem",
            "-untrusted",
            &ca,
            leaf,
        ],
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    (out.status.success(), text)
}

fn workload(dir: &Dir, cluster: &str, trust_domain: &str, ns: &str) {
    dir.ok(&[
        "workload",
        "--dir",
        "fleet",
        "--cluster",
        cluster,
        "--key-type",
        "ecdsa-p256",
        "--trust-domain",
        trust_domain,
        ns,
    ]);
}

fn name_constraints_ext(dir: &Dir, cluster: &str) -> String {
    dir.openssl(&[
        "x509",
        "-in",
        &format!("fleet/{cluster}/ca-cert.pem"),
        "-noout",
        "-ext",
        "nameConstraints",
    ])
}

/// `nameConstraints: true` in the mesh file: the intermediate permits the
/// file's trust domain (OpenSSL verifies its workloads and refuses those of
/// another trust domain), apply checks with that trust domain, and turning
/// the constraints off is a re-issue of just that drift.
#[test]
fn name_constraints_from_the_mesh_file_hold_in_openssl_and_drift_both_ways() {
    let dir = Dir::new();
    // The workload command signs at the real time, so the mesh is made at it.
    let at = now();
    let constrained = mesh_file("  - name: east\n    nameConstraints: true\n    permitDns: [.svc.example]\n  - name: west\n")
        .replace("trustDomain: cluster.local", "trustDomain: mesh.example");
    write(&dir, "fleet.yaml", &constrained);
    let out = plan(&dir, &["--json", "--at", &at]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        doc["actions"][1]["cluster"]["nameConstraints"], true,
        "{doc}"
    );
    assert_eq!(
        doc["actions"][1]["cluster"]["trustDomain"], "mesh.example",
        "{doc}"
    );
    let text = stdout(&plan(&dir, &["--at", &at]));
    assert!(
        text.contains("in istio-system, name-constrained to mesh.example)"),
        "{text}"
    );
    apply(&dir, &["--at", &at]);
    let text = name_constraints_ext(&dir, "east");
    assert!(text.contains("Name Constraints: critical"), "{text}");
    assert!(text.contains("URI:mesh.example"), "{text}");
    assert!(text.contains("DNS:istiod.istio-system.svc"), "{text}");
    assert!(text.contains("DNS:.svc.example"), "{text}");
    assert!(
        !name_constraints_ext(&dir, "west").contains("Name Constraints"),
        "west is not constrained"
    );
    let out = dir.meshca(&["verify", "--trust-domain", "mesh.example", "fleet"]);
    assert_eq!(code(&out), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(code(&plan(&dir, &["--exit-code", "--at", &at])), Some(0));

    workload(&dir, "east", "mesh.example", "ns1");
    workload(&dir, "east", "other.example", "ns2");
    let (ok, text) = openssl_verify_leaf(&dir, "east", "fleet/ns1/workload-cert.pem");
    assert!(ok, "openssl refuses the trust domain's workload: {text}");
    let (ok, text) = openssl_verify_leaf(&dir, "east", "fleet/ns2/workload-cert.pem");
    assert!(!ok, "openssl accepts another trust domain: {text}");
    assert!(text.contains("permitted subtree violation"), "{text}");

    // Off again: east is re-issued unconstrained, west stays byte-identical.
    let before = snapshot(&dir.join("fleet"));
    write(
        &dir,
        "fleet.yaml",
        &constrained.replace(
            "    nameConstraints: true\n    permitDns: [.svc.example]\n",
            "",
        ),
    );
    let out = plan(&dir, &["--exit-code", "--at", &at]);
    assert_eq!(code(&out), Some(3), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "re-issue east: nameConstraints trust domain mesh.example, DNS .svc.example -> off"
        ),
        "{text}"
    );
    assert!(!text.contains("west"), "{text}");
    apply(&dir, &["--at", &at]);
    assert!(!name_constraints_ext(&dir, "east").contains("Name Constraints"));
    let after = snapshot(&dir.join("fleet"));
    assert_eq!(under(&after, "west"), under(&before, "west"));
    assert_eq!(
        after[Path::new("root-cert.pem")],
        before[Path::new("root-cert.pem")]
    );
    assert_eq!(code(&plan(&dir, &["--exit-code", "--at", &at])), Some(0));
}

#[test]
fn files_named_on_the_command_line_are_read_through_a_mounted_configmaps_links() {
    // A ConfigMap or Secret mounted in a pod: NAME -> ..data/NAME ->
    // ..2026_12_02/NAME. The operator names the file; it is followed.
    let dir = Dir::new();
    fs::create_dir_all(dir.join("mount/..2026_12_02")).unwrap();
    write(&dir, "mount/..2026_12_02/fleet.yaml", &mesh_file(EAST_WEST));
    std::os::unix::fs::symlink("..2026_12_02", dir.join("mount/..data")).unwrap();
    std::os::unix::fs::symlink("..data/fleet.yaml", dir.join("mount/fleet.yaml")).unwrap();
    let out = dir.meshca(&[
        "apply",
        "-f",
        "mount/fleet.yaml",
        "--dir",
        "fleet",
        "--at",
        T0,
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let out = dir.meshca(&[
        "plan",
        "-f",
        "mount/fleet.yaml",
        "--dir",
        "fleet",
        "--exit-code",
        "--at",
        T0,
    ]);
    assert_eq!(code(&out), Some(0), "{}{}", stdout(&out), stderr(&out));
    // audit reads a kubectl-saved Secret through a link too.
    let secret = dir.meshca(&["secret", "--dir", "fleet", "east"]);
    util::assert_success("meshca secret", &secret);
    fs::write(dir.join("mount/..2026_12_02/east.yaml"), &secret.stdout).unwrap();
    std::os::unix::fs::symlink("..data/east.yaml", dir.join("mount/east.yaml")).unwrap();
    let out = dir.meshca(&[
        "audit",
        "--dir",
        "fleet",
        "east",
        "--secret",
        "mount/east.yaml",
    ]);
    assert_eq!(code(&out), Some(0), "{}{}", stdout(&out), stderr(&out));
    // A link to something that is not a regular file is still refused, at once.
    let fifo = dir.join("mount/fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink("fifo", dir.join("mount/via-link.yaml")).unwrap();
    let out = dir.meshca(&["plan", "-f", "mount/via-link.yaml", "--dir", "fleet"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("FIFO"), "{}", stderr(&out));
    // Inside a certs directory a link is never followed (verify refuses it).
    fs::remove_file(dir.join("fleet/west/cacerts.yaml")).unwrap();
    std::os::unix::fs::symlink("../../mount/east.yaml", dir.join("fleet/west/cacerts.yaml"))
        .unwrap();
    let out = dir.meshca(&["verify", "fleet"]);
    assert_eq!(code(&out), Some(1));
    assert!(stdout(&out).contains("symbolic link"), "{}", stdout(&out));
}
