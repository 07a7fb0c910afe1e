//! Hostile input and unlucky operators: each test is named after a bug
//! found by attacking the real binary.

mod util;

use std::fs;
use std::io::Read as _;
use std::process::{Command, Stdio};

use util::{ecdsa_mesh, stderr, stdout, Dir, RECIPE_VARS};

/// Runs `meshca ARGS` in `dir` with its stdout closed before it writes
/// (a reader that went away, as `| head -1` or `| true` does): returns
/// the exit code and stderr.
fn run_with_closed_stdout(dir: &Dir, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshca"));
    cmd.current_dir(dir.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for v in RECIPE_VARS {
        cmd.env_remove(v);
    }
    let mut child = cmd.spawn().expect("run meshca");
    // Close the read end at once: every write of the child fails with EPIPE.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut err)
        .expect("read stderr");
    let status = child.wait().expect("wait for meshca");
    (status.code(), err)
}

/// A self-signed ECDSA certificate whose CN holds terminal escape
/// sequences (colour, window title, bell, a C1 CSI, a right-to-left
/// override).
const HOSTILE_CN: &str = "a\u{1b}[31mRED\u{1b}]0;title\u{7}\u{9b}2J\u{202e}x";

fn hostile_cert_pem() -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, HOSTILE_CN);
    params.self_signed(&key).expect("self-signed").pem()
}

fn assert_no_raw_controls(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n' && c != '\t') || ('\u{202a}'..='\u{202e}').contains(&c)
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{what} printed raw control characters {bad:?}:\n{}",
        text.escape_debug()
    );
}

#[test]
fn completions_into_a_closed_pipe_panicked() {
    let dir = Dir::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, err) = run_with_closed_stdout(&dir, &["completions", shell]);
        assert!(!err.contains("panicked"), "completions {shell}: {err}");
        assert_eq!(code, Some(0), "completions {shell}: {err}");
    }
}

#[test]
fn inspect_json_into_a_closed_pipe_failed_with_exit_2() {
    let dir = ecdsa_mesh();
    for args in [
        &["inspect", "--json", "certs/cluster1/cert-chain.pem"][..],
        &["inspect", "certs/cluster1/cert-chain.pem"][..],
        &["verify", "--json", "certs"][..],
        &["verify", "certs"][..],
    ] {
        let (code, err) = run_with_closed_stdout(&dir, args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?} printed: {err}");
    }
}

#[test]
fn escape_sequences_in_a_certificate_reached_the_terminal() {
    let dir = ecdsa_mesh();
    let pem = hostile_cert_pem();
    fs::write(dir.join("hostile.pem"), &pem).unwrap();
    // inspect shows the subject, escaped.
    let out = dir.meshca(&["inspect", "hostile.pem"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_no_raw_controls("inspect", &text);
    assert!(text.contains(r"CN=a\u{1b}[31mRED"), "{text}");
    // verify names the certificate where its chain ends, escaped too.
    fs::write(dir.join("certs/cluster1/ca-cert.pem"), &pem).unwrap();
    let out = dir.meshca(&["verify", "certs"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert_no_raw_controls("verify", &text);
    assert!(text.contains(r"\u{1b}[31mRED"), "{text}");
    assert_no_raw_controls("verify (stderr)", &stderr(&out));
    // Errors of commands that load the mesh, too.
    for args in [
        &["secret", "--dir", "certs", "cluster1"][..],
        &["crl", "--dir", "certs", "cluster1"][..],
    ] {
        let out = dir.meshca(args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert_no_raw_controls(&format!("{args:?}"), &stderr(&out));
        assert_no_raw_controls(&format!("{args:?}"), &stdout(&out));
    }
}

#[test]
fn a_rotation_stage_without_the_root_key_hinted_to_make_a_root() {
    let dir = ecdsa_mesh();
    dir.ok(&["root", "--dir", "new", "--key-type", "ecdsa-p256"]);
    dir.ok(&[
        "rotate",
        "--dir",
        "certs",
        "--new-root",
        "new",
        "--out",
        "stages",
        "--key-type",
        "ecdsa-p256",
    ]);
    let before = meshca::store::snapshot(&dir.join("stages/stage-2")).unwrap();
    let out = dir.meshca(&["revoke", "--dir", "stages/stage-2", "cluster1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("root-key.pem"), "{err}");
    assert!(
        !err.contains("create the root first"),
        "a hint `meshca root` refuses: {err}"
    );
    assert!(err.contains("root's own certs directory"), "{err}");
    assert_eq!(
        meshca::store::snapshot(&dir.join("stages/stage-2")).unwrap(),
        before,
        "the failed revoke changed the stage"
    );
    // In an empty directory the hint to make a root stays.
    fs::create_dir(dir.join("empty")).unwrap();
    let out = dir.meshca(&["intermediate", "--dir", "empty", "c1"]);
    assert!(
        stderr(&out).contains("create the root first"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_cluster_missing_one_file_could_not_be_repaired_with_force() {
    use std::os::unix::fs::PermissionsExt;
    let dir = ecdsa_mesh();
    dir.ok(&["crl", "--dir", "certs", "cluster1"]);
    for lost in ["cert-chain.pem", "ca-key.pem", "root-cert.pem"] {
        fs::remove_file(dir.join(&format!("certs/cluster1/{lost}"))).unwrap();
        let before = meshca::store::snapshot(&dir.join("certs")).unwrap();
        // Other changes still refuse the broken mesh, and change nothing.
        let out = dir.meshca(&[
            "intermediate",
            "--dir",
            "certs",
            "--key-type",
            "ecdsa-p256",
            "cluster3",
        ]);
        assert_eq!(out.status.code(), Some(2), "{lost}: {}", stderr(&out));
        assert!(stderr(&out).contains(lost), "{}", stderr(&out));
        assert_eq!(
            meshca::store::snapshot(&dir.join("certs")).unwrap(),
            before,
            "{lost}: a refused command changed the directory"
        );
        // Replacing the broken cluster whole repairs it.
        dir.ok(&[
            "intermediate",
            "--dir",
            "certs",
            "--force",
            "--key-type",
            "ecdsa-p256",
            "cluster1",
        ]);
        let out = dir.meshca(&["verify", "certs"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{lost}: exit 0 but the mesh does not verify:\n{}",
            stdout(&out)
        );
        let mode = fs::metadata(dir.join("certs/cluster1/ca-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{lost}");
    }
    // A directory where a file should be is still refused, changing nothing.
    fs::remove_file(dir.join("certs/cluster1/cert-chain.pem")).unwrap();
    fs::create_dir(dir.join("certs/cluster1/cert-chain.pem")).unwrap();
    fs::write(dir.join("certs/cluster1/cert-chain.pem/x"), "x").unwrap();
    let before = meshca::store::snapshot(&dir.join("certs")).unwrap();
    let out = dir.meshca(&[
        "intermediate",
        "--dir",
        "certs",
        "--force",
        "--key-type",
        "ecdsa-p256",
        "cluster1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was changed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(meshca::store::snapshot(&dir.join("certs")).unwrap(), before);
}

#[test]
fn secret_refused_to_rewrite_an_unusable_cacerts_yaml() {
    let dir = ecdsa_mesh();
    let good = dir.read("certs/cluster1/cacerts.yaml");
    for hostile in [
        "not: [a secret\n".to_owned(),
        format!("{}{}\n", "[".repeat(10_000), "]".repeat(10_000)),
        "SECRETVALUE123\n".to_owned(),
    ] {
        fs::write(dir.join("certs/cluster1/cacerts.yaml"), &hostile).unwrap();
        let out = dir.meshca(&["secret", "--dir", "certs", "cluster1"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("cacerts.yaml is not a usable Secret"), "{err}");
        assert!(
            !err.contains("SECRETVALUE"),
            "a YAML value was echoed: {err}"
        );
        // The Secret printed is the one meshca writes: verify accepts it.
        assert_eq!(stdout(&out), good);
        fs::write(dir.join("certs/cluster1/cacerts.yaml"), stdout(&out)).unwrap();
        let out = dir.meshca(&["verify", "certs"]);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    }
}

#[test]
fn quiet_verify_printed_every_ok_line() {
    let dir = ecdsa_mesh();
    let out = dir.meshca(&["verify", "--quiet", "certs"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "",
        "a quiet verify of a good mesh prints nothing"
    );
    fs::write(dir.join("certs/cluster2/ca-key.pem"), "junk\n").unwrap();
    let out = dir.meshca(&["verify", "-q", "certs"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(!text.contains(": ok"), "{text}");
    assert!(
        text.lines()
            .all(|l| l.starts_with("error") || l.starts_with("warning")),
        "{text}"
    );
    assert!(text.contains("certs/cluster2/ca-key.pem"), "{text}");
}

#[test]
fn an_io_error_was_printed_twice_as_its_own_cause() {
    let dir = ecdsa_mesh();
    let lock = dir.join("certs/.meshca.lock");
    let _ = fs::remove_file(&lock);
    fs::create_dir(&lock).unwrap();
    let out = dir.meshca(&[
        "intermediate",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "cluster3",
    ]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("certs/.meshca.lock"), "{err}");
    assert!(
        !err.contains("caused by"),
        "the cause is already in the error: {err}"
    );
    assert!(!dir.join("certs/cluster3").exists());
    // A reader names what is in the way, once.
    let out = dir.meshca(&["secret", "--dir", "certs", "cluster1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is a directory, not a regular file"), "{err}");
}

#[test]
fn a_root_key_without_its_certificate_hinted_at_a_root_command_that_fails() {
    let dir = ecdsa_mesh();
    let cert = dir.read("certs/root-cert.pem");
    let key = dir.read("certs/root-key.pem");
    fs::remove_file(dir.join("certs/root-cert.pem")).unwrap();
    for args in [
        &["root", "--dir", "certs", "--key-type", "ecdsa-p256"][..],
        &[
            "init",
            "--dir",
            "certs",
            "--key-type",
            "ecdsa-p256",
            "cluster3",
        ][..],
    ] {
        let out = dir.meshca(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(!err.contains("create the root first"), "{args:?}: {err}");
        assert!(err.contains("CLUSTER/root-cert.pem"), "{args:?}: {err}");
        assert_eq!(dir.read("certs/root-key.pem"), key, "the root key changed");
    }
    // Following the hint restores the mesh.
    fs::copy(
        dir.join("certs/cluster1/root-cert.pem"),
        dir.join("certs/root-cert.pem"),
    )
    .unwrap();
    assert_eq!(dir.read("certs/root-cert.pem"), cert);
    let out = dir.meshca(&["verify", "certs"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

/// A symbolic link planted where a new cluster's directory goes: the
/// cluster's key was written through it, outside the certs directory, and
/// the command exited 0 (loading skips linked cluster directories). Now
/// the save is refused and nothing is written anywhere.
#[test]
fn a_planted_link_for_a_new_cluster_directory_is_not_written_through() {
    let dir = ecdsa_mesh();
    let before = meshca::store::snapshot(&dir.path().join("certs")).unwrap();
    fs::create_dir(dir.path().join("victim")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("victim"), dir.path().join("certs/evil")).unwrap();
    let out = dir.meshca(&["init", "--dir", "certs", "--key-type", "ecdsa-p256", "evil"]);
    assert!(!out.status.success(), "init through a link succeeded");
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(fs::read_dir(dir.path().join("victim")).unwrap().count(), 0);
    fs::remove_file(dir.path().join("certs/evil")).unwrap();
    assert_eq!(
        meshca::store::snapshot(&dir.path().join("certs")).unwrap(),
        before
    );
    // The certs directory itself may be a link the operator names.
    std::os::unix::fs::symlink(dir.path().join("certs"), dir.path().join("certs-link")).unwrap();
    dir.ok(&[
        "init",
        "--dir",
        "certs-link",
        "--key-type",
        "ecdsa-p256",
        "c3",
    ]);
    dir.ok(&["verify", "-q", "certs"]);
}
