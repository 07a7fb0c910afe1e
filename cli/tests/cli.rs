//! The `meshca` binary, checked against openssl, kubectl and
//! kubernetes-validate.

mod util;

use std::os::unix::fs::PermissionsExt;

use util::{require_tool, stderr, stdout, text_after, Dir};

const DAY: u64 = 86_400;

fn mode(dir: &Dir, p: &str) -> u32 {
    std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777
}

/// `openssl verify -x509_strict` of a cluster, as istiod's check.
fn openssl_verify_cluster(dir: &Dir, cluster: &str) {
    let out = dir.openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        &format!("{cluster}/root-cert.pem"),
        "-untrusted",
        &format!("{cluster}/cert-chain.pem"),
        &format!("{cluster}/ca-cert.pem"),
    ]);
    assert!(out.contains(": OK"), "{out}");
}

fn mesh_for_key_type(kt: &str, key_text: &str) {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", kt, "cluster1", "cluster2"]);
    let root_text = dir.openssl(&["x509", "-in", "root-cert.pem", "-noout", "-text"]);
    let root_ski = text_after(&root_text, "X509v3 Subject Key Identifier");
    assert!(
        root_text.contains("Subject: O = Istio, CN = Root CA"),
        "{root_text}"
    );
    for cluster in ["cluster1", "cluster2"] {
        openssl_verify_cluster(&dir, cluster);
        let cert = format!("{cluster}/ca-cert.pem");
        let text = dir.openssl(&["x509", "-in", &cert, "-noout", "-text"]);
        assert!(
            text.contains(&format!(
                "Subject: O = Istio, CN = Intermediate CA, L = {cluster}"
            )),
            "{text}"
        );
        assert!(text.contains("Issuer: O = Istio, CN = Root CA"), "{text}");
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert!(text.contains("DNS:istiod.istio-system.svc"), "{text}");
        assert_eq!(
            text_after(&text, "X509v3 Key Usage: critical"),
            "Digital Signature, Certificate Sign, CRL Sign"
        );
        assert_eq!(
            text_after(&text, "X509v3 Authority Key Identifier"),
            root_ski
        );
        assert!(text.contains(key_text), "expected {key_text:?} in {text}");
        // 730 days: valid in 729 days, not in 731.
        dir.openssl(&[
            "x509",
            "-in",
            &cert,
            "-noout",
            "-checkend",
            &(729 * DAY).to_string(),
        ]);
        let late = dir.tool(
            "openssl",
            &[
                "x509",
                "-in",
                &cert,
                "-noout",
                "-checkend",
                &(731 * DAY).to_string(),
            ],
        );
        assert!(!late.status.success(), "{cluster} outlives 730 days");
        // The chain is ca-cert then the root; every PEM ends with a newline.
        let chain = dir.read(&format!("{cluster}/cert-chain.pem"));
        let ca = dir.read(&cert);
        let root = dir.read(&format!("{cluster}/root-cert.pem"));
        assert_eq!(chain, format!("{ca}{root}"));
        assert_eq!(root, dir.read("root-cert.pem"));
        for doc in [
            &chain,
            &ca,
            &root,
            &dir.read(&format!("{cluster}/ca-key.pem")),
        ] {
            assert!(doc.ends_with("-----\n"));
        }
        // The key parses with openssl and matches the certificate.
        let key_pub = dir.openssl(&["pkey", "-in", &format!("{cluster}/ca-key.pem"), "-pubout"]);
        let cert_pub = dir.openssl(&["x509", "-in", &cert, "-noout", "-pubkey"]);
        assert_eq!(key_pub, cert_pub);
    }
    // Clusters have distinct keys.
    assert_ne!(
        dir.read("cluster1/ca-key.pem"),
        dir.read("cluster2/ca-key.pem")
    );
}

#[test]
fn mesh_rsa_2048_is_accepted_by_openssl() {
    mesh_for_key_type("rsa-2048", "Public-Key: (2048 bit)");
}

#[test]
fn mesh_rsa_3072_is_accepted_by_openssl() {
    mesh_for_key_type("rsa-3072", "Public-Key: (3072 bit)");
}

#[test]
fn mesh_rsa_4096_is_accepted_by_openssl() {
    mesh_for_key_type("rsa-4096", "Public-Key: (4096 bit)");
}

#[test]
fn mesh_ecdsa_p256_is_accepted_by_openssl() {
    mesh_for_key_type("ecdsa-p256", "NIST CURVE: P-256");
}

#[test]
fn mesh_ecdsa_p384_is_accepted_by_openssl() {
    mesh_for_key_type("ecdsa-p384", "NIST CURVE: P-384");
}

#[test]
fn default_init_is_rsa_4096_with_pkcs8_keys() {
    let dir = Dir::new();
    dir.ok(&["init", "cluster1"]);
    for key in ["root-key.pem", "cluster1/ca-key.pem"] {
        let pem = dir.read(key);
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{key}");
        let text = dir.openssl(&["pkey", "-in", key, "-noout", "-text"]);
        assert!(text.contains("Private-Key: (4096 bit"), "{key}: {text}");
    }
    let text = dir.openssl(&["x509", "-in", "root-cert.pem", "-noout", "-text"]);
    assert!(text.contains("sha256WithRSAEncryption"));
    // Root: 3650 days.
    dir.openssl(&[
        "x509",
        "-in",
        "root-cert.pem",
        "-noout",
        "-checkend",
        &(3649 * DAY).to_string(),
    ]);
    let late = dir.tool(
        "openssl",
        &[
            "x509",
            "-in",
            "root-cert.pem",
            "-noout",
            "-checkend",
            &(3651 * DAY).to_string(),
        ],
    );
    assert!(!late.status.success());
}

#[test]
fn workload_of_cluster1_is_trusted_by_cluster2() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "cluster1", "cluster2"]);
    dir.ok(&[
        "workload",
        "--key-type",
        "ecdsa-p256",
        "--cluster",
        "cluster1",
        "--service-account",
        "app",
        "--trust-domain",
        "mesh.example",
        "vm-ns",
    ]);
    // cluster2's workloads trust cluster1's: its root verifies the leaf,
    // with cluster1's chain as istiod would serve it.
    let out = dir.openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        "sslclient",
        "-CAfile",
        "cluster2/root-cert.pem",
        "-untrusted",
        "cluster1/cert-chain.pem",
        "vm-ns/workload-cert.pem",
    ]);
    assert!(out.contains(": OK"), "{out}");
    // The workload's own chain: leaf, intermediate, root.
    let chain = dir.read("vm-ns/workload-cert-chain.pem");
    let leaf = dir.read("vm-ns/workload-cert.pem");
    assert_eq!(
        chain,
        format!("{leaf}{}", dir.read("cluster1/cert-chain.pem"))
    );
    let text = dir.openssl(&["x509", "-in", "vm-ns/workload-cert.pem", "-noout", "-text"]);
    assert!(
        text.contains("URI:spiffe://mesh.example/ns/vm-ns/sa/app"),
        "{text}"
    );
    assert!(text.contains("TLS Web Server Authentication, TLS Web Client Authentication"));
    assert!(text.contains("CA:FALSE"));
    assert!(
        text.contains("Subject: O = Istio, CN = Workload, L = vm-ns"),
        "{text}"
    );
    assert_eq!(
        text_after(&text, "X509v3 Key Usage: critical"),
        "Digital Signature"
    );
    assert_eq!(mode(&dir, "vm-ns/key.pem"), 0o600);
    // 1 day by default.
    let late = dir.tool(
        "openssl",
        &[
            "x509",
            "-in",
            "vm-ns/workload-cert.pem",
            "-noout",
            "-checkend",
            &(2 * DAY).to_string(),
        ],
    );
    assert!(!late.status.success());
}

#[test]
fn workload_like_the_recipe_makes_the_namespace_intermediate() {
    let dir = Dir::new();
    dir.ok(&["root", "--key-type", "ecdsa-p256"]);
    dir.ok(&["workload", "--key-type", "rsa-2048", "foo"]);
    openssl_verify_cluster(&dir, "foo");
    let text = dir.openssl(&["x509", "-in", "foo/ca-cert.pem", "-noout", "-subject"]);
    assert!(text.contains("L = foo"), "{text}");
    let text = dir.openssl(&["x509", "-in", "foo/workload-cert.pem", "-noout", "-text"]);
    assert!(
        text.contains("URI:spiffe://cluster.local/ns/foo/sa/default"),
        "{text}"
    );
    // RSA leaves carry keyEncipherment, as the recipe's.
    assert_eq!(
        text_after(&text, "X509v3 Key Usage: critical"),
        "Digital Signature, Key Encipherment"
    );
    let out = dir.openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        "foo/root-cert.pem",
        "-untrusted",
        "foo/workload-cert-chain.pem",
        "foo/workload-cert.pem",
    ]);
    assert!(out.contains(": OK"));
}

/// A namespace YAML 1.1 reads as a boolean or null (`on`, `yes`, `n`,
/// `null`: valid namespace names) is quoted in the Secret, so kubectl reads
/// it as the name it is (written plain, kubectl refuses the document:
/// "cannot unmarshal bool into ... namespace of type string"); so is the
/// label value of a trust-manager Bundle's namespace selector.
#[test]
fn a_namespace_yaml_reads_as_a_boolean_is_quoted_for_kubectl() {
    let dir = Dir::new();
    for ns in ["on", "yes", "n", "off", "true", "null"] {
        let certs = format!("certs-{ns}");
        dir.ok(&[
            "init",
            "--dir",
            &certs,
            "--key-type",
            "ecdsa-p256",
            "--namespace",
            ns,
            "c1",
        ]);
        let file = format!("{certs}/c1/cacerts.yaml");
        let out = dir.tool(
            "kubectl",
            &["label", "--local", "-o", "json", "x=1", "-f", &file],
        );
        util::assert_success(&format!("kubectl reads the Secret of namespace {ns}"), &out);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["metadata"]["namespace"], ns, "namespace {ns}");
        dir.ok(&["verify", "-q", &certs, "--namespace", ns]);
        // The trust-manager Bundle selects the namespace by a label value.
        let bundle = dir.ok(&[
            "bundle",
            "--dir",
            &certs,
            "--format",
            "trust-manager",
            "--namespace",
            ns,
        ]);
        let path = format!("{certs}/bundle.yaml");
        std::fs::write(dir.path().join(&path), &bundle.stdout).unwrap();
        let out = dir.tool(
            "kubectl",
            &["label", "--local", "-o", "json", "x=1", "-f", &path],
        );
        util::assert_success(&format!("kubectl reads the Bundle of namespace {ns}"), &out);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let selector = &v["spec"]["target"]["namespaceSelector"]["matchLabels"];
        assert_eq!(
            selector["kubernetes.io/metadata.name"], ns,
            "Bundle of namespace {ns}"
        );
    }
}

#[test]
fn secret_yaml_matches_kubectl_and_validates() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "cluster1"]);
    let kubectl = dir.tool(
        "kubectl",
        &[
            "create",
            "secret",
            "generic",
            "cacerts",
            "-n",
            "istio-system",
            "--from-file=cluster1/ca-cert.pem",
            "--from-file=cluster1/ca-key.pem",
            "--from-file=cluster1/cert-chain.pem",
            "--from-file=cluster1/root-cert.pem",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
    util::assert_success("kubectl create secret", &kubectl);
    let theirs = meshca::SecretData::from_yaml("kubectl", &kubectl.stdout).unwrap();
    let ours_text = dir.read("cluster1/cacerts.yaml");
    let ours = meshca::SecretData::from_yaml("cacerts.yaml", ours_text.as_bytes()).unwrap();
    assert_eq!(ours.data, theirs.data, "data differs from kubectl's");
    assert_eq!(ours.data.len(), 4);
    assert_eq!(ours.name, theirs.name);
    assert_eq!(ours.namespace, theirs.namespace);
    assert_eq!(ours.type_.as_deref(), Some("Opaque"));
    assert_eq!(mode(&dir, "cluster1/cacerts.yaml"), 0o600);

    // `meshca secret` prints the same document.
    let printed = dir.ok(&["secret", "cluster1"]);
    assert_eq!(stdout(&printed), ours_text);

    // kubernetes-validate --strict accepts both shapes.
    let tls = dir.ok(&["secret", "--tls", "cluster1"]);
    std::fs::write(dir.join("tls.yaml"), &tls.stdout).unwrap();
    let tls_data = meshca::SecretData::from_yaml("tls.yaml", &tls.stdout).unwrap();
    assert_eq!(tls_data.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(tls_data.data["tls.crt"], theirs.data["ca-cert.pem"]);
    assert_eq!(tls_data.data["tls.key"], theirs.data["ca-key.pem"]);
    assert_eq!(tls_data.data["ca.crt"], theirs.data["root-cert.pem"]);
    for file in ["cluster1/cacerts.yaml", "tls.yaml"] {
        let out = dir.tool("kubernetes-validate", &["--strict", file]);
        util::assert_success(&format!("kubernetes-validate --strict {file}"), &out);
    }
    // And refuses a broken Secret, so the check above means something.
    std::fs::write(
        dir.join("bad.yaml"),
        ours_text.replace("type: Opaque", "type: Opaque\nbogus: 1"),
    )
    .unwrap();
    let out = dir.tool("kubernetes-validate", &["--strict", "bad.yaml"]);
    assert!(!out.status.success());
}

/// Makes a root the way the recipe does, with `testdata/recipe.sh`.
fn recipe_root(dir: &Dir, key_type: &str, format: &str) {
    let script = util::testdata().join("recipe.sh");
    let out = std::process::Command::new(require_tool("bash"))
        .arg(&script)
        .args(["-q", "--key-type", key_type, "--root-key-format", format])
        .arg(dir.path())
        .output()
        .expect("run recipe.sh");
    util::assert_success("testdata/recipe.sh", &out);
    let key = dir.read("root-key.pem");
    let label = match format {
        "pkcs1" => "RSA PRIVATE KEY",
        "sec1" => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    assert!(
        key.starts_with(&format!("-----BEGIN {label}-----")),
        "{key}"
    );
}

fn recipe_root_signs(key_type: &str, format: &str) {
    let dir = Dir::new();
    recipe_root(&dir, key_type, format);
    let root_before = dir.read("root-cert.pem");
    dir.ok(&["intermediate", "--key-type", "ecdsa-p256", "cluster1"]);
    openssl_verify_cluster(&dir, "cluster1");
    assert_eq!(dir.read("cluster1/root-cert.pem"), root_before);
    // `init` keeps an existing root too.
    dir.ok(&["init", "--key-type", "ecdsa-p256", "cluster2"]);
    openssl_verify_cluster(&dir, "cluster2");
    assert_eq!(dir.read("root-cert.pem"), root_before);
}

#[test]
fn recipe_root_pkcs8_rsa_signs_meshca_intermediates() {
    recipe_root_signs("rsa-2048", "pkcs8");
}

#[test]
fn recipe_root_pkcs1_rsa_key_loads() {
    recipe_root_signs("rsa-2048", "pkcs1");
}

#[test]
fn recipe_root_sec1_ec_key_loads() {
    recipe_root_signs("ecdsa-p256", "sec1");
}

#[test]
fn recipe_root_pkcs8_p384_signs() {
    recipe_root_signs("ecdsa-p384", "pkcs8");
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "cluster1"]);
    let root_key = dir.read("root-key.pem");
    let ca_key = dir.read("cluster1/ca-key.pem");

    let again = dir.meshca(&["init", "--key-type", "ecdsa-p256", "cluster1"]);
    assert_eq!(again.status.code(), Some(1));
    let err = stderr(&again);
    assert!(
        err.contains("cluster1/ca-cert.pem already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(dir.read("cluster1/ca-key.pem"), ca_key);

    let root_again = dir.meshca(&["root", "--key-type", "ecdsa-p256"]);
    assert_eq!(root_again.status.code(), Some(1));
    assert!(
        stderr(&root_again).contains("root-"),
        "{}",
        stderr(&root_again)
    );
    assert_eq!(dir.read("root-key.pem"), root_key);

    let inter = dir.meshca(&["intermediate", "--key-type", "ecdsa-p256", "cluster1"]);
    assert_eq!(inter.status.code(), Some(1));
    assert_eq!(dir.read("cluster1/ca-key.pem"), ca_key);

    // With --force the cluster is re-issued; init never replaces the root.
    dir.ok(&["init", "--force", "--key-type", "ecdsa-p256", "cluster1"]);
    assert_ne!(dir.read("cluster1/ca-key.pem"), ca_key);
    assert_eq!(dir.read("root-key.pem"), root_key);
    openssl_verify_cluster(&dir, "cluster1");
    assert_eq!(mode(&dir, "cluster1/ca-key.pem"), 0o600);
    // No temporary files left behind.
    for entry in std::fs::read_dir(dir.join("cluster1")).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(!name.to_string_lossy().starts_with(".meshca-"), "{name:?}");
    }
}

#[test]
fn keys_are_0600_and_certificates_0644() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "cluster1"]);
    for key in [
        "root-key.pem",
        "cluster1/ca-key.pem",
        "cluster1/cacerts.yaml",
    ] {
        assert_eq!(mode(&dir, key), 0o600, "{key}");
    }
    for cert in [
        "root-cert.pem",
        "cluster1/ca-cert.pem",
        "cluster1/cert-chain.pem",
        "cluster1/root-cert.pem",
    ] {
        assert_eq!(mode(&dir, cert), 0o644, "{cert}");
    }
}

#[test]
fn modes_are_the_same_whatever_the_umask() {
    // A umask that takes read bits away (077, 027) or none (000): meshca
    // sets 0644 itself where the umask would leave less, and 0600 keys
    // never gain a bit.
    for umask in ["077", "027", "000", "022"] {
        let dir = Dir::new();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_meshca"))
            .args(["init", "-q", "--key-type", "ecdsa-p256", "c1", "c2"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        util::assert_success(&format!("meshca init under umask {umask}"), &out);
        for c in ["c1", "c2"] {
            for key in ["ca-key.pem", "cacerts.yaml"] {
                assert_eq!(
                    mode(&dir, &format!("{c}/{key}")),
                    0o600,
                    "umask {umask}: {c}/{key}"
                );
            }
            for cert in ["ca-cert.pem", "cert-chain.pem", "root-cert.pem"] {
                assert_eq!(
                    mode(&dir, &format!("{c}/{cert}")),
                    0o644,
                    "umask {umask}: {c}/{cert}"
                );
            }
        }
        assert_eq!(mode(&dir, "root-key.pem"), 0o600, "umask {umask}");
        assert_eq!(mode(&dir, "root-cert.pem"), 0o644, "umask {umask}");
    }
}

#[test]
fn recipe_environment_variables_change_the_output() {
    let dir = Dir::new();
    let out = dir.meshca_env(
        &["init", "cluster1"],
        &[
            ("ROOTCA_ORG", "Example"),
            ("ROOTCA_CN", "Example Root"),
            ("ROOTCA_DAYS", "1000"),
            ("ROOTCA_KEYSZ", "ecdsa-p384"),
            ("INTERMEDIATE_ORG", "Example Mesh"),
            ("INTERMEDIATE_CN", "Example Intermediate"),
            ("INTERMEDIATE_DAYS", "100"),
            ("INTERMEDIATE_KEYSZ", "2048"),
            ("INTERMEDIATE_SAN_DNS", "istiod.mesh.svc"),
        ],
    );
    util::assert_success("meshca init with recipe variables", &out);
    let root = dir.openssl(&["x509", "-in", "root-cert.pem", "-noout", "-text"]);
    assert!(
        root.contains("Subject: O = Example, CN = Example Root"),
        "{root}"
    );
    assert!(root.contains("NIST CURVE: P-384"), "{root}");
    let late = dir.tool(
        "openssl",
        &[
            "x509",
            "-in",
            "root-cert.pem",
            "-noout",
            "-checkend",
            &(1001 * DAY).to_string(),
        ],
    );
    assert!(!late.status.success());
    let ca = dir.openssl(&["x509", "-in", "cluster1/ca-cert.pem", "-noout", "-text"]);
    assert!(
        ca.contains("Subject: O = Example Mesh, CN = Example Intermediate, L = cluster1"),
        "{ca}"
    );
    assert!(ca.contains("Public-Key: (2048 bit)"), "{ca}");
    assert!(ca.contains("DNS:istiod.mesh.svc"), "{ca}");
    assert!(
        ca.contains("ecdsa-with-SHA384"),
        "signed by the P-384 root: {ca}"
    );
    let late = dir.tool(
        "openssl",
        &[
            "x509",
            "-in",
            "cluster1/ca-cert.pem",
            "-noout",
            "-checkend",
            &(101 * DAY).to_string(),
        ],
    );
    assert!(!late.status.success());
    openssl_verify_cluster(&dir, "cluster1");

    // ISTIO_NAMESPACE moves the Secret and the default SAN.
    let out = dir.meshca_env(
        &["intermediate", "--key-type", "ecdsa-p256", "cluster2"],
        &[("ISTIO_NAMESPACE", "mesh-system")],
    );
    util::assert_success("intermediate with ISTIO_NAMESPACE", &out);
    assert!(dir
        .read("cluster2/cacerts.yaml")
        .contains("namespace: mesh-system"));
    let ca = dir.openssl(&["x509", "-in", "cluster2/ca-cert.pem", "-noout", "-text"]);
    assert!(ca.contains("DNS:istiod.mesh-system.svc"), "{ca}");
}

#[test]
fn intermediate_outliving_the_root_is_clamped_with_a_warning() {
    let dir = Dir::new();
    dir.ok(&["root", "--key-type", "ecdsa-p256", "--days", "10"]);
    let out = dir.ok(&[
        "intermediate",
        "--key-type",
        "ecdsa-p256",
        "--days",
        "730",
        "cluster1",
    ]);
    assert!(
        stderr(&out).contains("validity cut to the root's end"),
        "{}",
        stderr(&out)
    );
    let root_end = dir.openssl(&["x509", "-in", "root-cert.pem", "-noout", "-enddate"]);
    let ca_end = dir.openssl(&["x509", "-in", "cluster1/ca-cert.pem", "-noout", "-enddate"]);
    assert_eq!(root_end, ca_end);
    openssl_verify_cluster(&dir, "cluster1");
}

#[test]
fn intermediate_without_a_root_says_so_and_creates_nothing() {
    let dir = Dir::new();
    let out = dir.meshca(&["intermediate", "cluster1"]);
    // A missing input: exit 2.
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("root-cert.pem: file not found") && err.contains("meshca root"),
        "{err}"
    );
    // Only the directory's lock file (empty, and kept as cargo keeps its own).
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [meshca::store::LOCK_FILE], "something was created");
}

#[test]
fn unknown_key_type_lists_the_valid_ones() {
    let dir = Dir::new();
    let out = dir.meshca(&["init", "--key-type", "rsa-1024", "cluster1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for name in [
        "rsa-2048",
        "rsa-3072",
        "rsa-4096",
        "ecdsa-p256",
        "ecdsa-p384",
    ] {
        assert!(err.contains(name), "{name} missing from: {err}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn invalid_cluster_names_are_refused_before_anything_is_made() {
    let dir = Dir::new();
    for bad in ["../escape", "Cluster1", "a/b", "-x", "a_b"] {
        let out = dir.meshca(&["init", "--key-type", "ecdsa-p256", "--", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("invalid cluster name"),
            "{}",
            stderr(&out)
        );
    }
    let out = dir.meshca(&["init", "--key-type", "ecdsa-p256", "c1", "c1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn secret_of_a_broken_bundle_is_refused() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "cluster1", "cluster2"]);
    std::fs::copy(
        dir.join("cluster2/ca-key.pem"),
        dir.join("cluster1/ca-key.pem"),
    )
    .unwrap();
    let out = dir.meshca(&["secret", "cluster1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cluster1/ca-key.pem does not match cluster1/ca-cert.pem"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn every_command_has_examples_and_completions_generate() {
    let dir = Dir::new();
    for cmd in [
        "init",
        "root",
        "intermediate",
        "workload",
        "secret",
        "completions",
    ] {
        let out = dir.ok(&[cmd, "--help"]);
        assert!(
            stdout(&out).contains("EXAMPLES:"),
            "{cmd} --help lacks EXAMPLES"
        );
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = dir.ok(&["completions", shell]);
        let script = stdout(&out);
        assert!(
            script.contains("meshca") && script.contains("intermediate"),
            "{shell}"
        );
    }
}

#[test]
fn progress_shows_on_a_terminal_only() {
    // Not a terminal: nothing on stderr.
    let dir = Dir::new();
    let out = dir.ok(&["init", "--key-type", "rsa-3072", "c1", "c2", "c3"]);
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    // On a terminal (util-linux `script` gives one): which cluster, how many.
    let dir = Dir::new();
    let cmd = format!(
        "{} init --key-type rsa-4096 c1 c2 c3 c4 c5 c6 >/dev/null",
        env!("CARGO_BIN_EXE_meshca")
    );
    let out = dir.tool("script", &["-qec", &cmd, "/dev/null"]);
    util::assert_success("script", &out);
    let shown = stdout(&out);
    assert!(
        shown.contains("generating 7 keys (rsa-4096): 7/7 done"),
        "{shown:?}"
    );
    assert!(shown.contains(" done, "), "{shown:?}");
    // --quiet silences it.
    let dir = Dir::new();
    let cmd = format!(
        "{} init --quiet --key-type rsa-4096 c1 c2 c3 c4 c5 c6",
        env!("CARGO_BIN_EXE_meshca")
    );
    let out = dir.tool("script", &["-qec", &cmd, "/dev/null"]);
    util::assert_success("script", &out);
    assert!(!stdout(&out).contains("generating"), "{:?}", stdout(&out));
}
