//! Running the real `meshca` binary and the external tools the tests
//! compare it with. A missing tool fails the test: it never skips.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The recipe's environment variables, cleared so the caller's shell
/// cannot change what a test sees.
pub const RECIPE_VARS: &[&str] = &[
    "ROOTCA_DAYS",
    "ROOTCA_ORG",
    "ROOTCA_CN",
    "ROOTCA_KEYSZ",
    "INTERMEDIATE_DAYS",
    "INTERMEDIATE_ORG",
    "INTERMEDIATE_CN",
    "INTERMEDIATE_KEYSZ",
    "INTERMEDIATE_SAN_DNS",
    "WORKLOAD_DAYS",
    "SERVICE_ACCOUNT",
    "ISTIO_NAMESPACE",
];

/// A temporary working directory in which `meshca` runs.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Default for Dir {
    fn default() -> Self {
        Self::new()
    }
}

impl Dir {
    pub fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    pub fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// `meshca ARGS` in this directory, with the recipe's variables cleared.
    pub fn meshca(&self, args: &[&str]) -> Output {
        self.meshca_env(args, &[])
    }

    pub fn meshca_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshca"));
        cmd.current_dir(self.path()).args(args);
        for v in RECIPE_VARS {
            cmd.env_remove(v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run meshca")
    }

    /// `meshca ARGS`, which must succeed.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.meshca(args);
        assert_success(&format!("meshca {args:?}"), &out);
        out
    }

    /// Runs an external tool in this directory; the tool must exist.
    pub fn tool(&self, name: &str, args: &[&str]) -> Output {
        Command::new(require_tool(name))
            .current_dir(self.path())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {name}: {e}"))
    }

    /// `openssl ARGS`, which must succeed; returns stdout.
    pub fn openssl(&self, args: &[&str]) -> String {
        let out = self.tool("openssl", args);
        assert_success(&format!("openssl {args:?}"), &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A temporary directory holding a two-cluster ECDSA mesh in `certs/`
/// (`cluster1`, `cluster2`), made by `meshca init`.
pub fn ecdsa_mesh() -> Dir {
    let dir = Dir::new();
    dir.ok(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "cluster1",
        "cluster2",
    ]);
    dir
}

pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The path of a tool on PATH; panics (fails the test) when it is missing.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("required tool `{name}` is not on PATH; .ci/run installs it (see README)");
}

/// Copies the files of `from` and of its sub-directories to `to`, modes
/// kept (a certs directory, before a command changes it).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The repository's testdata directory.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// The value of the line after `label` in `openssl x509 -text` output.
pub fn text_after(text: &str, label: &str) -> String {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with(label) {
            return lines.next().unwrap_or_default().trim().to_owned();
        }
    }
    panic!("{label} not found in:\n{text}");
}
