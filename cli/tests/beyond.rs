//! Revocation, root rotation, encrypted root keys and signing with a root
//! taken from a Secret, checked with openssl and `meshca verify`.

mod util;

use std::fs;

use util::{stderr, stdout, Dir};

fn verify_ok(dir: &Dir, args: &[&str]) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let out = dir.meshca(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify {args:?}:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("PASSED: 0 errors, 0 warnings"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn crl_covers_every_ca_of_the_chain_and_openssl_agrees() {
    let dir = util::ecdsa_mesh();
    dir.ok(&["crl", "--dir", "certs", "cluster1", "cluster2"]);
    verify_ok(&dir, &["certs"]);
    for c in ["cluster1", "cluster2"] {
        // The Secret carries the CRLs.
        let yaml = dir.read(&format!("certs/{c}/cacerts.yaml"));
        let secret = meshca::SecretData::from_yaml("y", yaml.as_bytes()).unwrap();
        assert_eq!(
            secret.data["ca-crl.pem"].as_slice(),
            dir.read(&format!("certs/{c}/ca-crl.pem")).as_bytes()
        );
        let out = dir.openssl(&[
            "verify",
            "-crl_check_all",
            "-CRLfile",
            &format!("certs/{c}/ca-crl.pem"),
            "-CAfile",
            &format!("certs/{c}/root-cert.pem"),
            "-untrusted",
            &format!("certs/{c}/cert-chain.pem"),
            &format!("certs/{c}/ca-cert.pem"),
        ]);
        assert!(out.contains(": OK"), "{out}");
    }
    let out = dir.tool(
        "openssl",
        &[
            "crl",
            "-in",
            "certs/root-crl.pem",
            "-noout",
            "-verify",
            "-CAfile",
            "certs/root-cert.pem",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verify OK"),
        "{}",
        stderr(&out)
    );

    // Numbers only grow: regenerating a cluster's CRL bumps its own number.
    // Every CRL's number in a file, via `meshca inspect --json`.
    let number = |dir: &Dir, file: &str| -> Vec<String> {
        let out = dir.ok(&["inspect", "--json", file]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| format!("{}={}", i["issuer"], i["number"]))
            .collect()
    };
    let before = number(&dir, "certs/cluster1/ca-crl.pem");
    dir.ok(&["crl", "--dir", "certs", "cluster1"]);
    let after = number(&dir, "certs/cluster1/ca-crl.pem");
    assert_ne!(before, after);

    // Revoke cluster2: an error for verify and for openssl, and cluster1's
    // CRLs carry the new root CRL.
    let root_number = number(&dir, "certs/root-crl.pem");
    dir.ok(&[
        "revoke",
        "--dir",
        "certs",
        "--reason",
        "key-compromise",
        "cluster2",
    ]);
    assert_ne!(number(&dir, "certs/root-crl.pem"), root_number);
    let text = dir.openssl(&["crl", "-in", "certs/root-crl.pem", "-noout", "-text"]);
    assert!(text.contains("Key Compromise"), "{text}");
    let out = dir.meshca(&["verify", "--json", "certs/cluster2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("\"code\": \"revoked\""),
        "{}",
        stdout(&out)
    );
    let out = dir.tool(
        "openssl",
        &[
            "verify",
            "-crl_check_all",
            "-CRLfile",
            "certs/cluster1/ca-crl.pem",
            "-CAfile",
            "certs/root-cert.pem",
            "certs/cluster2/ca-cert.pem",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("certificate revoked")
            || stderr(&out).contains("certificate revoked")
    );
    verify_ok(&dir, &["certs/cluster1"]);

    // New clusters get CRLs once the root has one.
    dir.ok(&[
        "intermediate",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "cluster3",
    ]);
    assert!(dir.join("certs/cluster3/ca-crl.pem").exists());
    verify_ok(&dir, &["certs/cluster3"]);
}

#[test]
fn revoking_needs_a_crl_capable_root() {
    let dir = Dir::new();
    let out = std::process::Command::new(util::require_tool("bash"))
        .arg(util::testdata().join("recipe.sh"))
        .args(["-q", "--key-type", "rsa-2048"])
        .arg(dir.join("certs"))
        .arg("cluster1")
        .output()
        .unwrap();
    util::assert_success("recipe.sh", &out);
    let out = dir.meshca(&["revoke", "--dir", "certs", "cluster1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cRLSign"), "{}", stderr(&out));
    assert!(!dir.join("certs/root-crl.pem").exists());
    let out = dir.meshca(&["revoke", "--dir", "certs", "--reason", "bored", "cluster1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("key-compromise"), "{}", stderr(&out));
}

#[test]
fn rotation_stages_verify_and_each_step_keeps_trust() {
    let dir = util::ecdsa_mesh();
    dir.ok(&["root", "--dir", "new-root", "--key-type", "ecdsa-p384"]);
    dir.ok(&[
        "rotate",
        "--dir",
        "certs",
        "--new-root",
        "new-root",
        "--out",
        "r",
        "--key-type",
        "ecdsa-p256",
    ]);
    let a = dir.read("certs/root-cert.pem");
    let b = dir.read("new-root/root-cert.pem");
    for c in ["cluster1", "cluster2"] {
        assert_eq!(
            dir.read(&format!("r/stage-1/{c}/root-cert.pem")),
            format!("{a}{b}")
        );
        assert_eq!(
            dir.read(&format!("r/stage-1/{c}/ca-cert.pem")),
            dir.read(&format!("certs/{c}/ca-cert.pem"))
        );
        assert_eq!(
            dir.read(&format!("r/stage-2/{c}/root-cert.pem")),
            format!("{a}{b}")
        );
        assert_eq!(dir.read(&format!("r/stage-3/{c}/root-cert.pem")), b);
        let text = dir.openssl(&[
            "x509",
            "-in",
            &format!("r/stage-2/{c}/ca-cert.pem"),
            "-noout",
            "-issuer",
        ]);
        assert!(text.contains("Root CA"), "{text}");
        // Stage 2 intermediates chain to B, openssl agrees.
        let out = dir.openssl(&[
            "verify",
            "-x509_strict",
            "-CAfile",
            "new-root/root-cert.pem",
            "-untrusted",
            &format!("r/stage-2/{c}/cert-chain.pem"),
            &format!("r/stage-2/{c}/ca-cert.pem"),
        ]);
        assert!(out.contains(": OK"));
    }
    // The stages change root-cert.pem: they need ISTIO_MULTIROOT_MESH=true.
    verify_ok(&dir, &["--multiroot", "--previous", "certs", "r/stage-1"]);
    verify_ok(
        &dir,
        &["--multiroot", "--previous", "r/stage-1", "r/stage-2"],
    );
    verify_ok(
        &dir,
        &["--multiroot", "--previous", "r/stage-2", "r/stage-3"],
    );
    // Without it, as Istio by default, istiod would ignore the update.
    let out = dir.meshca(&["verify", "--json", "--previous", "certs", "r/stage-1"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("\"code\": \"root-changed\""), "{text}");
    assert!(text.contains("ISTIO_MULTIROOT_MESH"), "{text}");
    // Skipping stages breaks trust and is caught.
    let out = dir.meshca(&[
        "verify",
        "--json",
        "--multiroot",
        "--previous",
        "certs",
        "r/stage-3",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("\"code\": \"cross-stage-trust\""), "{text}");
    // A root-cert.pem that is neither superset nor subset is caught.
    dir.ok(&["root", "--dir", "third", "--key-type", "ecdsa-p256"]);
    fs::copy(
        dir.join("third/root-cert.pem"),
        dir.join("r/stage-3/cluster1/root-cert.pem"),
    )
    .unwrap();
    let out = dir.meshca(&[
        "verify",
        "--json",
        "--multiroot",
        "--previous",
        "r/stage-2",
        "r/stage-3",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("\"code\": \"root-step\""),
        "{}",
        stdout(&out)
    );
}

#[test]
fn encrypted_root_key_is_readable_by_openssl_and_used_by_every_signing_command() {
    let dir = Dir::new();
    fs::write(dir.join("pass"), "correct horse battery\n").unwrap();
    dir.ok(&[
        "root",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--encrypt",
        "--passphrase-file",
        "pass",
    ]);
    let key = dir.read("certs/root-key.pem");
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    // openssl decrypts it, and it is the root's key.
    let plain = dir.openssl(&[
        "pkey",
        "-in",
        "certs/root-key.pem",
        "-passin",
        "file:pass",
        "-pubout",
    ]);
    let cert_pub = dir.openssl(&["x509", "-in", "certs/root-cert.pem", "-noout", "-pubkey"]);
    assert_eq!(plain, cert_pub);
    let text = dir.openssl(&["asn1parse", "-in", "certs/root-key.pem"]);
    assert!(
        text.contains(":scrypt") && text.contains("aes-256-cbc"),
        "{text}"
    );
    // Without the passphrase (no terminal): a clear error, exit 2, nothing written.
    let out = dir.meshca(&[
        "intermediate",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "cluster1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("passphrase"), "{}", stderr(&out));
    assert!(!dir.join("certs/cluster1").exists());
    // Wrong passphrase.
    fs::write(dir.join("wrong"), "nope\n").unwrap();
    let out = dir.meshca(&[
        "intermediate",
        "--dir",
        "certs",
        "--passphrase-file",
        "wrong",
        "cluster1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "{}",
        stderr(&out)
    );
    // With it: intermediate, init, crl, revoke all sign.
    let p = ["--passphrase-file", "pass"];
    dir.ok(&[
        "intermediate",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        p[0],
        p[1],
        "cluster1",
    ]);
    dir.ok(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        p[0],
        p[1],
        "cluster2",
    ]);
    dir.ok(&["crl", "--dir", "certs", p[0], p[1], "cluster1", "cluster2"]);
    verify_ok(&dir, &["certs"]);
    dir.ok(&["revoke", "--dir", "certs", p[0], p[1], "cluster2"]);
    // Cluster keys stay unencrypted (istiod cannot read encrypted keys).
    assert!(dir
        .read("certs/cluster1/ca-key.pem")
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    // An openssl-encrypted PBKDF2 key works too.
    dir.openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-passout",
        "file:pass",
        "-in",
        "certs/cluster1/ca-key.pem",
        "-out",
        "enc.pem",
    ]);
    let enc = dir.read("enc.pem");
    let root = meshca::PrivateKey::from_pem_with_passphrase("enc.pem", enc.as_bytes(), &|| {
        Ok(zeroize::Zeroizing::new("correct horse battery".to_owned()))
    });
    assert!(root.is_ok(), "{root:?}");
}

#[test]
fn a_cluster_joins_a_mesh_started_with_istiods_self_signed_ca() {
    let dir = Dir::new();
    // istiod's self-signed CA, saved the way `kubectl get secret istio-ca-secret -o yaml` does.
    dir.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "k.pem",
        "-out",
        "c.pem",
        "-days",
        "3650",
        "-subj",
        "/O=cluster.local",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ]);
    let secret = dir.tool(
        "kubectl",
        &[
            "create",
            "secret",
            "generic",
            "istio-ca-secret",
            "-n",
            "istio-system",
            "--from-file=ca-cert.pem=c.pem",
            "--from-file=ca-key.pem=k.pem",
            "--from-literal=cert-chain.pem=",
            "--from-file=root-cert.pem=c.pem",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
    util::assert_success("kubectl create secret", &secret);
    fs::write(dir.join("istio-ca-secret.yaml"), &secret.stdout).unwrap();
    dir.ok(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--root-from-secret",
        "istio-ca-secret.yaml",
        "cluster2",
    ]);
    assert_eq!(dir.read("certs/root-cert.pem"), dir.read("c.pem"));
    assert!(
        !dir.join("certs/root-key.pem").exists(),
        "the root key must not be copied"
    );
    let out = dir.openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        "c.pem",
        "-untrusted",
        "certs/cluster2/cert-chain.pem",
        "certs/cluster2/ca-cert.pem",
    ]);
    assert!(out.contains(": OK"), "{out}");
    verify_ok(&dir, &["certs"]);
    // The kubernetes.io/tls shape too.
    let tls = dir.tool(
        "kubectl",
        &[
            "create",
            "secret",
            "tls",
            "root",
            "--cert=c.pem",
            "--key=k.pem",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
    util::assert_success("kubectl create secret tls", &tls);
    fs::write(dir.join("tls.yaml"), &tls.stdout).unwrap();
    dir.ok(&[
        "intermediate",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--root-from-secret",
        "tls.yaml",
        "cluster3",
    ]);
    verify_ok(&dir, &["certs"]);
    // A Secret without a key is refused by name.
    fs::write(
        dir.join("bad.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata: {}\n",
    )
    .unwrap();
    let out = dir.meshca(&[
        "intermediate",
        "--dir",
        "certs",
        "--root-from-secret",
        "bad.yaml",
        "cluster4",
    ]);
    // An unusable input file: exit 2, as every missing or unreadable input.
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.yaml") && stderr(&out).contains("ca-cert.pem"),
        "{}",
        stderr(&out)
    );
}
