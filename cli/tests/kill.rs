//! A run killed with SIGKILL in the middle of `init`, `renew` or `apply`
//! leaves no partial or empty file under a real name, and never a key
//! readable by others; a killed `renew` or `apply` leaves the old mesh or
//! the new one, and it verifies (once the temporary files the kill left
//! are removed, as `meshca verify` asks).

mod util;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Whether `rel` is a temporary file or lies in a temporary directory (a
/// new cluster's directory the save was writing whole): what a kill may
/// leave behind, cut short.
fn in_temp(rel: &Path) -> bool {
    rel.components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with(".meshca-"))
}

fn check_tree(dir: &Path) -> usize {
    let mut files = Vec::new();
    walk(dir, &mut files);
    let mut complete = 0;
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        if name == meshca::store::LOCK_FILE {
            // The directory's lock file: empty by design.
            continue;
        }
        if in_temp(f.strip_prefix(dir).unwrap()) {
            // A temporary file the kill left behind: a certificate's may be
            // 0644 already, but one holding a key is never readable by others.
            let bytes = std::fs::read(&f).unwrap();
            let holds_key = String::from_utf8_lossy(&bytes).contains("PRIVATE KEY")
                || String::from_utf8_lossy(&bytes).contains("ca-key.pem");
            assert!(
                mode == 0o600 || !holds_key,
                "{} holds key material with mode {mode:o}",
                f.display()
            );
            continue;
        }
        let bytes = std::fs::read(&f).unwrap();
        assert!(!bytes.is_empty(), "{} is empty", f.display());
        assert!(bytes.ends_with(b"\n"), "{} is cut short", f.display());
        let text = String::from_utf8(bytes).unwrap();
        if name.ends_with(".pem") {
            let begins = text.matches("-----BEGIN ").count();
            let ends = text.matches("-----END ").count();
            assert!(begins > 0 && begins == ends, "{} is partial", f.display());
            if name.contains("key") {
                assert_eq!(mode, 0o600, "{}", f.display());
                meshca::PrivateKey::from_pem("k", text.as_bytes()).unwrap();
            } else {
                meshca::certificates("c", text.as_bytes()).unwrap();
            }
        } else if name.ends_with(".yaml") {
            assert_eq!(mode, 0o600);
            meshca::SecretData::from_yaml("s", text.as_bytes()).unwrap();
        }
        complete += 1;
    }
    complete
}

#[test]
fn sigkill_during_init_leaves_no_partial_file() {
    let clusters: Vec<String> = (1..=6).map(|i| format!("c{i}")).collect();
    for delay_ms in [30u64, 150, 400, 900, 1600, 2600] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_meshca"))
            .current_dir(dir.path())
            .args(["init", "-q", "--key-type", "rsa-3072"])
            .args(&clusters)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL on Unix
        let _ = child.wait();
        check_tree(dir.path());
    }
    // And the checks above do find complete trees.
    let dir = util::Dir::new();
    dir.ok(&["init", "-q", "--key-type", "ecdsa-p256", "c1"]);
    assert_eq!(check_tree(dir.path()), 7);
}

/// Every file under `dir` but the lock file and meshca's temporary files,
/// relative, with its bytes.
fn state(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = Vec::new();
    walk(dir, &mut files);
    files
        .into_iter()
        .filter(|f| {
            let name = f.file_name().unwrap().to_string_lossy();
            name != meshca::store::LOCK_FILE && !in_temp(f.strip_prefix(dir).unwrap())
        })
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            (f.strip_prefix(dir).unwrap().to_owned(), bytes)
        })
        .collect()
}

/// Runs `meshca ARGS` in `dir` and kills it after `delay_ms`. `true`: it
/// was killed while running; `false`: it had already finished, and
/// successfully.
fn kill_after(dir: &Path, args: &[&str], delay_ms: u64) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshca"))
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(delay_ms));
    if let Some(status) = child.try_wait().unwrap() {
        assert!(status.success(), "meshca {args:?} failed: {status}");
        return false;
    }
    let _ = child.kill(); // SIGKILL on Unix
    let _ = child.wait();
    true
}

/// After a kill: `meshca verify` names any temporary file left (exit 1);
/// with them removed, the directory verifies.
fn verifies_once_cleaned(dir: &util::Dir, certs: &str) {
    let left = meshca::store::leftovers(&dir.join(certs)).unwrap();
    if !left.is_empty() {
        let out = dir.meshca(&["verify", certs]);
        assert_eq!(out.status.code(), Some(1), "{}", util::stderr(&out));
        let err = util::stderr(&out);
        assert!(
            err.contains("temporary file left") || err.contains("temporary directory left"),
            "{err}"
        );
        for f in left {
            // A file, or a new cluster's directory the save was writing.
            if f.is_dir() {
                std::fs::remove_dir_all(f).unwrap();
            } else {
                std::fs::remove_file(f).unwrap();
            }
        }
    }
    dir.ok(&["verify", certs]);
}

const CLUSTERS: [&str; 6] = ["c1", "c2", "c3", "c4", "c5", "c6"];

/// Which mesh a killed `renew` of every cluster left: `false` the old one
/// (every file as it was), `true` the new one (every cluster renewed,
/// every root file as it was); anything else fails.
fn renewed(old: &BTreeMap<PathBuf, Vec<u8>>, now: &BTreeMap<PathBuf, Vec<u8>>) -> bool {
    assert_eq!(
        old.keys().collect::<Vec<_>>(),
        now.keys().collect::<Vec<_>>(),
        "the files differ from the mesh's"
    );
    let changed: Vec<&PathBuf> = old.keys().filter(|p| old[*p] != now[*p]).collect();
    if changed.is_empty() {
        return false;
    }
    let mut expected: Vec<PathBuf> = Vec::new();
    for c in CLUSTERS {
        for f in [
            "ca-cert.pem",
            "ca-key.pem",
            "cert-chain.pem",
            "cacerts.yaml",
        ] {
            expected.push(Path::new(c).join(f));
        }
    }
    expected.sort();
    assert_eq!(
        changed,
        expected.iter().collect::<Vec<_>>(),
        "a killed renew left part of the old mesh and part of the new"
    );
    true
}

#[test]
fn sigkill_during_renew_leaves_the_old_mesh_or_the_new_one_and_it_verifies() {
    // Six RSA-3072 intermediates: the new keys take seconds to make.
    let template = util::Dir::new();
    let mut init = vec![
        "init",
        "-q",
        "--dir",
        "certs",
        "--key-type",
        "rsa-3072",
        "--root-key-type",
        "ecdsa-p256",
    ];
    init.extend(CLUSTERS);
    template.ok(&init);
    let old = state(&template.join("certs"));
    let mut renew = vec!["renew", "-q", "--dir", "certs"];
    renew.extend(CLUSTERS);
    let (mut olds, mut news, mut killed) = (0, 0, 0);
    for delay_ms in [30u64, 150, 400, 900, 1600, 2600, 4000] {
        let dir = util::Dir::new();
        util::copy_tree(&template.join("certs"), &dir.join("certs"));
        killed += usize::from(kill_after(dir.path(), &renew, delay_ms));
        // What the next command does first: finish a save the kill cut
        // short after its commit record.
        meshca::store::recover(&dir.join("certs")).unwrap();
        check_tree(&dir.join("certs"));
        if renewed(&old, &state(&dir.join("certs"))) {
            news += 1;
        } else {
            olds += 1;
        }
        verifies_once_cleaned(&dir, "certs");
    }
    assert!(
        killed > 0 && olds > 0,
        "no kill came before the renewal was saved"
    );
    // And a renewal left to finish is seen as the new mesh.
    let dir = util::Dir::new();
    util::copy_tree(&template.join("certs"), &dir.join("certs"));
    dir.ok(&renew);
    assert!(renewed(&old, &state(&dir.join("certs"))));
    dir.ok(&["verify", "certs"]);
    println!(
        "killed renew: {killed} of 7 runs killed; {olds} left the old mesh, {news} the new one"
    );
}

#[test]
fn sigkill_during_apply_leaves_the_old_mesh_or_the_new_one_and_it_verifies() {
    let mesh_file = |clusters: &[&str]| {
        let mut y = String::from(
            "apiVersion: meshca/v1\nkind: Mesh\nroot:\n  keyType: ecdsa-p256\n\
             defaults:\n  keyType: ecdsa-p256\nclusters:\n  - name: c0\n",
        );
        for c in clusters {
            // RSA-3072: the new keys take seconds to make.
            y.push_str(&format!("  - name: {c}\n    keyType: rsa-3072\n"));
        }
        y
    };
    let template = util::Dir::new();
    std::fs::write(template.join("one.yaml"), mesh_file(&[])).unwrap();
    std::fs::write(template.join("seven.yaml"), mesh_file(&CLUSTERS)).unwrap();
    template.ok(&["apply", "-q", "-f", "one.yaml", "--dir", "certs"]);
    let old = state(&template.join("certs"));
    let apply = ["apply", "-q", "-f", "seven.yaml", "--dir", "certs"];
    // The old mesh's files as they were, and the new clusters all there or
    // none of them.
    let added = |now: &BTreeMap<PathBuf, Vec<u8>>| -> bool {
        for (p, bytes) in &old {
            assert_eq!(now.get(p), Some(bytes), "{} changed", p.display());
        }
        let present: Vec<&str> = CLUSTERS
            .into_iter()
            .filter(|c| now.keys().any(|p| p.starts_with(c)))
            .collect();
        if present.is_empty() {
            assert_eq!(now.len(), old.len());
            return false;
        }
        assert_eq!(
            present, CLUSTERS,
            "a killed apply added some clusters, not all"
        );
        for c in CLUSTERS {
            for f in [
                "ca-cert.pem",
                "ca-key.pem",
                "cert-chain.pem",
                "root-cert.pem",
                "cacerts.yaml",
            ] {
                assert!(now.contains_key(&Path::new(c).join(f)), "{c}/{f} missing");
            }
        }
        true
    };
    let (mut olds, mut news, mut killed) = (0, 0, 0);
    for delay_ms in [30u64, 150, 400, 900, 1600, 2600, 4000] {
        let dir = util::Dir::new();
        util::copy_tree(&template.join("certs"), &dir.join("certs"));
        std::fs::copy(template.join("seven.yaml"), dir.join("seven.yaml")).unwrap();
        killed += usize::from(kill_after(dir.path(), &apply, delay_ms));
        meshca::store::recover(&dir.join("certs")).unwrap();
        check_tree(&dir.join("certs"));
        if added(&state(&dir.join("certs"))) {
            news += 1;
        } else {
            olds += 1;
        }
        verifies_once_cleaned(&dir, "certs");
    }
    assert!(
        killed > 0 && olds > 0,
        "no kill came before the apply was saved"
    );
    let dir = util::Dir::new();
    util::copy_tree(&template.join("certs"), &dir.join("certs"));
    std::fs::copy(template.join("seven.yaml"), dir.join("seven.yaml")).unwrap();
    dir.ok(&apply);
    assert!(added(&state(&dir.join("certs"))));
    dir.ok(&["verify", "certs"]);
    println!(
        "killed apply: {killed} of 7 runs killed; {olds} left the old mesh, {news} the new one"
    );
}

/// A save cut short after its commit record is on disk (a crash in the
/// renames) is finished by the next command that opens the directory:
/// `verify` names the record until then, and after it the directory is
/// the new mesh, whole, and verifies.
#[test]
fn a_save_killed_in_its_renames_is_finished_by_the_next_command() {
    let template = util::Dir::new();
    template.ok(&[
        "init",
        "-q",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "c1",
        "c2",
        "c3",
    ]);
    template.ok(&[
        "renew", "-q", "--dir", "certs", "--out", "renewed", "c1", "c2", "c3",
    ]);
    let new_state = state(&template.join("renewed"));
    let new_mesh = meshca::store::load(&template.join("renewed")).unwrap();
    for n in 0.. {
        assert!(n < 200, "no crash point came after the commit record");
        let dir = util::Dir::new();
        util::copy_tree(&template.join("certs"), &dir.join("certs"));
        let certs = dir.join("certs");
        let old_mesh = meshca::store::load(&certs).unwrap();
        let mut tx = meshca::store::Transaction::new();
        tx.journal_in(&certs);
        meshca::store::plan(&mut tx, &certs, Some(&old_mesh), &new_mesh, true).unwrap();
        tx.crash_at(n);
        if tx.commit().is_ok() {
            panic!("the save went through at {n}");
        }
        if !certs.join(meshca::store::JOURNAL).exists() {
            continue; // a crash before the commit point: the old mesh
        }
        // Some renames done, some not: verify says so, and what to run.
        let out = dir.meshca(&["verify", "certs"]);
        assert_eq!(out.status.code(), Some(1), "{}", util::stdout(&out));
        assert!(
            util::stderr(&out).contains("meshca recover --dir certs"),
            "{}",
            util::stderr(&out)
        );
        // Every command that changes the directory finishes the save
        // first; `recover` does only that.
        let copy = util::Dir::new();
        util::copy_tree(&certs, &copy.join("certs"));
        let out = dir.meshca(&["recover", "--dir", "certs"]);
        util::assert_success("recover", &out);
        assert!(
            util::stdout(&out).contains("finished a save that was interrupted"),
            "{}",
            util::stdout(&out)
        );
        assert_eq!(state(&certs), new_state, "crash at {n}");
        assert!(meshca::store::leftovers(&certs).unwrap().is_empty());
        dir.ok(&["verify", "certs"]);
        let again = dir.meshca(&["recover", "--dir", "certs"]);
        assert!(util::stdout(&again).contains("no interrupted save"));
        let out = copy.meshca(&["renew", "--dir", "certs", "--within", "1"]);
        util::assert_success("renew", &out);
        assert!(
            util::stderr(&out).contains("finished a save that was interrupted"),
            "{}",
            util::stderr(&out)
        );
        assert_eq!(state(&copy.join("certs")), new_state);
        break;
    }
}
