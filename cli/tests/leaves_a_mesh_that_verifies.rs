//! Every command leaves a mesh that verifies, or changes nothing: one
//! regression test per bug that used to break that rule.

mod util;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use util::{stderr, stdout, Dir};

/// Every file under `dir` (the lock file aside), by relative path.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    meshca::store::snapshot(dir)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.to_vec()))
        .collect()
}

fn verify_passes(dir: &Dir, path: &str) {
    let out = dir.meshca(&["verify", path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify {path}:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// A Secret YAML holding `certs_dir`'s root as `ca-cert.pem`/`ca-key.pem`,
/// as `kubectl get secret istio-ca-secret -o yaml` saves istiod's CA.
fn root_as_secret(dir: &Dir, certs_dir: &str, out: &str) {
    let cert = dir.read(&format!("{certs_dir}/root-cert.pem"));
    let key = dir.read(&format!("{certs_dir}/root-key.pem"));
    let bundle = meshca::ClusterBundle::new(
        cert.clone(),
        zeroize::Zeroizing::new(key),
        cert.clone(),
        cert,
    );
    let yaml = meshca::cacerts_yaml(&bundle, &meshca::SecretOptions::default()).unwrap();
    fs::write(dir.join(out), yaml.as_bytes()).unwrap();
}

#[test]
fn init_root_from_secret_over_a_directory_with_another_root_is_refused() {
    let dir = util::ecdsa_mesh();
    dir.ok(&["root", "--dir", "other", "--key-type", "ecdsa-p256"]);
    dir.ok(&["crl", "--dir", "certs", "cluster1"]);
    root_as_secret(&dir, "other", "s.yaml");
    let before = snapshot(&dir.join("certs"));
    let out = dir.meshca(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--root-from-secret",
        "s.yaml",
        "c2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not this mesh's root"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&dir.join("certs")), before);
    verify_passes(&dir, "certs");
}

#[test]
fn root_options_are_refused_not_ignored_when_a_root_exists() {
    let dir = util::ecdsa_mesh();
    let before = snapshot(&dir.join("certs"));
    for opt in [
        &["--encrypt-root"][..],
        &["--root-key-type", "ecdsa-p384"],
        &["--root-days", "100"],
        &["--root-cn", "Other Root"],
    ] {
        let mut args = vec!["init", "--dir", "certs", "--key-type", "ecdsa-p256"];
        args.extend_from_slice(opt);
        args.push("c3");
        let out = dir.meshca(&args);
        assert_eq!(out.status.code(), Some(1), "{opt:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(opt[0]), "{}", stderr(&out));
        assert_eq!(snapshot(&dir.join("certs")), before, "{opt:?}");
    }
}

#[test]
fn rotate_keeps_each_clusters_key_type_and_crls() {
    let dir = util::ecdsa_mesh();
    dir.ok(&["crl", "--dir", "certs", "cluster1"]);
    dir.ok(&["root", "--dir", "new-root", "--key-type", "ecdsa-p256"]);
    let started = std::time::Instant::now();
    dir.ok(&[
        "rotate",
        "--dir",
        "certs",
        "--new-root",
        "new-root",
        "--out",
        "rot",
    ]);
    // ECDSA keys: no RSA-4096 generation.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    for stage in ["rot/stage-2", "rot/stage-3"] {
        for c in ["cluster1", "cluster2"] {
            let key = dir.read(&format!("{stage}/{c}/ca-key.pem"));
            let k = meshca::PrivateKey::from_pem("k", key.as_bytes()).unwrap();
            assert_eq!(k.key_type(), meshca::KeyType::EcdsaP256, "{stage}/{c}");
        }
    }
    for stage in ["rot/stage-1", "rot/stage-2", "rot/stage-3"] {
        assert!(
            dir.join(&format!("{stage}/cluster1/ca-crl.pem")).exists(),
            "{stage}"
        );
        assert!(
            !dir.join(&format!("{stage}/cluster2/ca-crl.pem")).exists(),
            "{stage}"
        );
        verify_passes(&dir, stage);
    }
    let out = dir.meshca(&[
        "verify",
        "--multiroot",
        "--previous",
        "rot/stage-1",
        "rot/stage-2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn rotate_keeps_a_revoked_intermediate_revoked() {
    let dir = util::ecdsa_mesh();
    dir.ok(&["crl", "--dir", "certs", "cluster1", "cluster2"]);
    dir.ok(&["revoke", "--dir", "certs", "cluster2"]);
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
    // Stage 1 still carries the intermediate and the CRL revoking it.
    let out = dir.meshca(&["verify", "rot/stage-1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("revoked"), "{}", stdout(&out));
    let out = dir.meshca(&[
        "verify",
        "--multiroot",
        "--previous",
        "certs",
        "rot/stage-1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

#[test]
fn secret_of_a_tls_secret_cluster_keeps_the_tls_shape() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "--tls-secret", "c1"]);
    let out = dir.ok(&["secret", "c1"]);
    let yaml = stdout(&out);
    assert!(yaml.contains("type: kubernetes.io/tls"), "{yaml}");
    assert!(yaml.contains("tls.crt"), "{yaml}");
    // An explicit namespace still wins.
    let out = dir.ok(&["secret", "--namespace", "other", "c1"]);
    assert!(stdout(&out).contains("namespace: other"));
}

#[test]
fn crl_with_a_missing_cluster_writes_nothing() {
    let dir = util::ecdsa_mesh();
    let before = snapshot(&dir.join("certs"));
    let out = dir.meshca(&["crl", "--dir", "certs", "cluster1", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nosuch") && stderr(&out).contains("cluster1, cluster2"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&dir.join("certs")), before);
}

#[test]
fn revoke_with_one_corrupt_ca_crl_writes_nothing() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "c1", "c2", "c3"]);
    dir.ok(&["crl", "c1", "c2", "c3"]);
    fs::write(
        dir.join("c2/ca-crl.pem"),
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let before = snapshot(dir.path());
    let out = dir.meshca(&["revoke", "c3"]);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("c2/ca-crl.pem"), "{}", stderr(&out));
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn init_that_fails_half_way_leaves_nothing_and_verify_reports_leftovers() {
    let dir = Dir::new();
    // A file where c3's directory should go makes the save fail after
    // the other clusters' files could be written.
    fs::write(dir.join("c3"), "in the way\n").unwrap();
    let out = dir.meshca(&["init", "--key-type", "ecdsa-p256", "c1", "c2", "c3"]);
    assert_ne!(out.status.code(), Some(0));
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != meshca::store::LOCK_FILE)
        .collect();
    assert_eq!(names, ["c3"], "left behind: {names:?}");
    // A killed run's temporary file (it may hold a key) fails verify.
    fs::remove_file(dir.join("c3")).unwrap();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "c1"]);
    fs::write(
        dir.join("c1/.meshca-AbC123.tmp"),
        "-----BEGIN PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = dir.meshca(&["verify", "."]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(".meshca-AbC123.tmp"),
        "{}",
        stderr(&out)
    );
    // So does the directory a killed save was writing a new cluster into
    // (it holds a key), and it is not verified as a cluster.
    fs::remove_file(dir.join("c1/.meshca-AbC123.tmp")).unwrap();
    let staged = dir.join(".meshca-Dir456.tmp");
    fs::create_dir(&staged).unwrap();
    for f in [
        "ca-cert.pem",
        "ca-key.pem",
        "cert-chain.pem",
        "root-cert.pem",
    ] {
        fs::copy(dir.join("c1").join(f), staged.join(f)).unwrap();
    }
    let out = dir.meshca(&["verify", "."]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(".meshca-Dir456.tmp: a temporary directory left by an interrupted meshca run"),
        "{err}"
    );
    assert!(!stdout(&out).contains("Dir456"), "{}", stdout(&out));
    fs::remove_dir_all(&staged).unwrap();
    dir.ok(&["verify", "."]);
}

#[test]
fn two_concurrent_force_reissues_never_mix_key_and_certificate() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "c1", "c2"]);
    for round in 0..6 {
        let spawn = || {
            Command::new(env!("CARGO_BIN_EXE_meshca"))
                .current_dir(dir.path())
                .args([
                    "intermediate",
                    "-q",
                    "--force",
                    "--key-type",
                    "ecdsa-p256",
                    "c1",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", stderr(&out));
        }
        verify_passes(&dir, ".");
    }
}

#[test]
fn a_key_file_given_as_a_secret_is_never_printed() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "c1"]);
    let key = dir.read("root-key.pem");
    let out = dir.meshca(&["init", "--root-from-secret", "root-key.pem", "c2"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!err.contains(line), "key echoed: {err}");
    }
}

#[test]
fn a_cacerts_yaml_symlinked_to_the_root_key_is_not_read() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "c1"]);
    let key = dir.read("root-key.pem");
    fs::remove_file(dir.join("c1/cacerts.yaml")).unwrap();
    std::os::unix::fs::symlink(dir.join("root-key.pem"), dir.join("c1/cacerts.yaml")).unwrap();
    for args in [&["verify", "."][..], &["verify", "--json", "."]] {
        let out = dir.meshca(args);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(all.contains("symbolic link"), "{all}");
        for line in key.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!all.contains(line), "key leaked: {all}");
        }
    }
}

#[test]
fn dev_zero_a_fifo_or_nested_brackets_fail_at_once() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "c1"]);
    let started = std::time::Instant::now();
    let out = dir.meshca(&["inspect", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("character device") || stderr(&out).contains("character device"));
    fs::remove_file(dir.join("c1/ca-cert.pem")).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        dir.join("c1/ca-cert.pem"),
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    let out = dir.meshca(&["verify", "c1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("FIFO"), "{}", stdout(&out));
    let d2 = Dir::new();
    d2.ok(&["init", "--key-type", "ecdsa-p256", "c1"]);
    fs::write(d2.join("c1/cacerts.yaml"), vec![b'['; 1 << 20]).unwrap();
    let out = d2.meshca(&["verify", "c1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn a_missing_cluster_is_exit_2_everywhere_and_lists_the_nearest_first() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "east", "west", "north"]);
    for args in [
        &["secret", "eats"][..],
        &["crl", "eats"],
        &["revoke", "eats"],
        &[
            "workload",
            "--cluster",
            "eats",
            "--key-type",
            "ecdsa-p256",
            "vm",
        ],
    ] {
        let out = dir.meshca(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("clusters: east, west, north"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = dir.meshca(&["verify", "eats"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn key_type_option_beats_rootca_keysz() {
    let dir = Dir::new();
    let out = dir.meshca_env(
        &["init", "--key-type", "ecdsa-p256", "c1"],
        &[("ROOTCA_KEYSZ", "2048")],
    );
    util::assert_success("init", &out);
    let key = dir.read("root-key.pem");
    let k = meshca::PrivateKey::from_pem("k", key.as_bytes()).unwrap();
    assert_eq!(k.key_type(), meshca::KeyType::EcdsaP256);
}

#[test]
fn verify_into_a_closed_pipe_is_not_an_error() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "c1", "c2", "c3", "c4"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshca"))
        .current_dir(dir.path())
        .args(["verify", "--json", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end at once, as `| head -1` does after one line.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Broken pipe"), "{}", stderr(&out));
}

#[test]
fn a_run_while_another_holds_the_lock_says_it_waits_then_runs() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "c1"]);
    let lock = meshca::store::DirLock::acquire(dir.path(), &|_| panic!("not held yet")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_meshca"))
        .current_dir(dir.path())
        .args(["intermediate", "-q", "--key-type", "ecdsa-p256", "c2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !dir.join("c2").exists(),
        "c2 was written under another run's lock"
    );
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("waiting for") && stderr(&out).contains(".meshca.lock"),
        "{}",
        stderr(&out)
    );
    verify_passes(&dir, ".");
}

#[test]
fn secret_of_one_cluster_does_not_depend_on_the_others() {
    let dir = Dir::new();
    dir.ok(&["init", "--key-type", "ecdsa-p256", "c1", "c2"]);
    fs::remove_file(dir.join("c2/ca-key.pem")).unwrap();
    let out = dir.ok(&["secret", "c1"]);
    assert!(stdout(&out).contains("name: cacerts"));
    // A change to the mesh still refuses to run over the broken cluster.
    let out = dir.meshca(&["crl", "c1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("c2/ca-key.pem"), "{}", stderr(&out));
}

/// cluster1 and cluster2, cluster2's key swapped for another mesh's: verify
/// fails on it.
fn mesh_with_a_broken_cluster2() -> Dir {
    let dir = util::ecdsa_mesh();
    dir.ok(&["init", "--dir", "other", "--key-type", "ecdsa-p256", "x"]);
    fs::copy(
        dir.join("other/x/ca-key.pem"),
        dir.join("certs/cluster2/ca-key.pem"),
    )
    .unwrap();
    dir
}

#[test]
fn a_command_on_a_mesh_with_a_broken_cluster_writes_nothing_until_it_is_fixed() {
    let dir = mesh_with_a_broken_cluster2();
    let broken = dir.meshca(&["verify", "certs"]);
    assert_eq!(broken.status.code(), Some(1), "{}", stdout(&broken));
    let before = snapshot(&dir.join("certs"));
    // Each of these leaves cluster2 as it is: exit 0 would leave a mesh
    // that verify rejects.
    for args in [
        &["renew", "--dir", "certs", "cluster1"][..],
        &[
            "init",
            "--dir",
            "certs",
            "--key-type",
            "ecdsa-p256",
            "cluster3",
        ][..],
        &["crl", "--dir", "certs", "cluster1"][..],
    ] {
        let out = dir.meshca(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("cluster2/ca-key.pem") && err.contains("already so before this command"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("PRIVATE KEY"), "{err}");
        assert_eq!(snapshot(&dir.join("certs")), before, "{args:?}");
    }
    // Fixing cluster2 in the same command is accepted, and verifies.
    dir.ok(&[
        "intermediate",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--force",
        "cluster2",
    ]);
    verify_passes(&dir, "certs");
    dir.ok(&["renew", "--dir", "certs", "cluster1"]);
    verify_passes(&dir, "certs");
}

#[test]
fn allow_existing_errors_saves_a_repair_step_and_says_what_is_left() {
    let dir = mesh_with_a_broken_cluster2();
    let refused = dir.meshca(&["renew", "--dir", "certs", "cluster1"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("--allow-existing-errors"),
        "{}",
        stderr(&refused)
    );
    let old_cert = dir.read("certs/cluster1/ca-cert.pem");
    let out = dir.meshca(&[
        "renew",
        "--dir",
        "certs",
        "--allow-existing-errors",
        "cluster1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_ne!(dir.read("certs/cluster1/ca-cert.pem"), old_cert);
    let err = stderr(&out);
    assert!(
        err.contains("already had") && err.contains("cluster2/ca-key.pem"),
        "{err}"
    );
    let v = dir.meshca(&["verify", "certs"]);
    assert_eq!(v.status.code(), Some(1), "cluster2 is still broken");
    let cluster1 = dir.meshca(&["verify", "certs/cluster1"]);
    assert_eq!(cluster1.status.code(), Some(0), "{}", stdout(&cluster1));
}
