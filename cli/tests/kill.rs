//! A run killed with SIGKILL in the middle of `init` leaves no partial or
//! empty file under a real name, and never a key readable by others.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
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
        if name.starts_with(".meshca-") {
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
