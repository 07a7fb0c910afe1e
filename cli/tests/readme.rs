//! The README, run: every `meshca` command line of its ```sh blocks, in
//! order, in one empty temporary directory, with the built binary on PATH
//! (the rules are in the README's "Testing" section). A newcomer who types
//! the README word for word gets what it says.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one line (or heredoc) of a ```sh block becomes.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A shell command with a `meshca` command in it, run with `sh -c`.
    Run(String),
    /// `cat > FILE <<'EOF'` ... `EOF`: FILE is written with the body.
    Write { path: String, body: String },
    /// A line the rules leave out, and why.
    Skip { text: String, why: String },
}

/// A step and the README line it starts on (1-based).
#[derive(Debug)]
struct Located {
    line: usize,
    step: Step,
}

/// Splits a shell line into words up to its first comment (a word
/// starting with `#`). Quotes are not interpreted: the rules only look at
/// command names and options.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .collect()
}

/// The names of the commands a shell line runs: the first word, and the
/// first after each `|`, `||`, `&&`, `;` or `$(`, past `VAR=value`
/// assignments.
fn command_names(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut at_command = true;
    for word in words(line) {
        if matches!(word, "|" | "||" | "&&" | ";") {
            at_command = true;
            continue;
        }
        let word = word.trim_start_matches("$(").trim_start_matches('(');
        if at_command {
            let is_assignment = word.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if !is_assignment && !word.is_empty() {
                names.push(word.to_owned());
                at_command = false;
            }
        }
        if word.ends_with(';') {
            at_command = true;
        }
    }
    names
}

/// Why a line is not run, if a rule says so.
fn skip_reason(line: &str) -> Option<String> {
    if let Some((_, why)) = line.split_once("# not run:") {
        return Some(why.trim().to_owned());
    }
    let names = command_names(line);
    if names.iter().any(|n| n == "kubectl") {
        return Some("calls kubectl (needs a cluster)".to_owned());
    }
    let w = words(line);
    let asks = w
        .iter()
        .any(|x| *x == "--encrypt" || *x == "--encrypt-root");
    let has_file = w
        .iter()
        .any(|x| x.starts_with("--passphrase-file") || x.starts_with("MESHCA_PASSPHRASE_FILE="));
    if asks && !has_file {
        return Some("asks for a passphrase on a terminal".to_owned());
    }
    None
}

/// The terminator word of a heredoc (`<<'EOF'`, `<<"EOF"`, `<<EOF`,
/// `<<-EOF`), if the line has one.
fn heredoc(line: &str) -> Option<(String, bool)> {
    let (_, rest) = line.split_once("<<")?;
    let (rest, strip_tabs) = match rest.strip_prefix('-') {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let word: String = rest
        .trim_start()
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some((word, strip_tabs))
}

/// `cat > FILE <<...` (or `cat >FILE <<...`): FILE.
fn cat_target(line: &str) -> Option<String> {
    let w = words(line);
    match w.as_slice() {
        ["cat", ">", file, here] if here.starts_with("<<") => Some((*file).to_owned()),
        ["cat", file, here] if file.starts_with('>') && here.starts_with("<<") => {
            Some(file.trim_start_matches('>').to_owned())
        }
        _ => None,
    }
}

/// Every step of every ```sh block of `readme`, in order. Lines whose
/// commands include no `meshca` (cargo, openssl, tar...) are not steps.
fn extract(readme: &str) -> Vec<Located> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut steps = Vec::new();
    let mut in_sh = false;
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        i += 1;
        if !in_sh {
            in_sh = raw.trim_end() == "```sh";
            continue;
        }
        if raw.trim_start().starts_with("```") {
            in_sh = false;
            continue;
        }
        let start = i; // 1-based number of `raw`
        let mut line = raw.to_owned();
        while line.trim_end().ends_with('\\') && i < lines.len() {
            let trimmed = line.trim_end();
            line = format!(
                "{} {}",
                &trimmed[..trimmed.len() - 1],
                lines[i].trim_start()
            );
            i += 1;
        }
        let mut body = None;
        if let Some((word, strip_tabs)) = heredoc(&line) {
            let mut text = String::new();
            loop {
                let Some(l) = lines.get(i) else {
                    panic!("README.md line {start}: heredoc without its `{word}` line");
                };
                i += 1;
                let l = if strip_tabs {
                    l.trim_start_matches('\t')
                } else {
                    l
                };
                if l == word {
                    break;
                }
                text.push_str(l);
                text.push('\n');
            }
            body = Some((text, word));
        }
        let step = if let Some(why) = skip_reason(&line) {
            Step::Skip {
                text: line.trim().to_owned(),
                why,
            }
        } else if let (Some(path), Some((text, _))) = (cat_target(&line), &body) {
            Step::Write {
                path,
                body: text.clone(),
            }
        } else if command_names(&line).iter().any(|n| n == "meshca") {
            match &body {
                Some((text, word)) => Step::Run(format!("{}\n{text}{word}\n", line.trim())),
                None => Step::Run(line.trim().to_owned()),
            }
        } else {
            continue;
        };
        steps.push(Located { line: start, step });
    }
    assert!(!in_sh, "README.md: a ```sh block is not closed");
    steps
}

fn readme_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")
}

/// One empty directory to run README steps in, a HOME beside it, and
/// meshca first on PATH.
struct Sandbox {
    _tmp: tempfile::TempDir,
    work: PathBuf,
    home: PathBuf,
    path: String,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().expect("temp dir");
        let work = tmp.path().join("work");
        let home = tmp.path().join("home");
        let bin = tmp.path().join("bin");
        for d in [&work, &home, &bin] {
            std::fs::create_dir(d).expect("mkdir");
        }
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_meshca"), bin.join("meshca"))
            .expect("symlink");
        // Where `cargo install` puts meshca: on PATH, as rustup arranges.
        let cargo_bin = home.join(".cargo/bin");
        std::fs::create_dir_all(&cargo_bin).expect("mkdir");
        let path = format!(
            "{}:{}:{}",
            bin.display(),
            cargo_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Sandbox {
            _tmp: tmp,
            work,
            home,
            path,
        }
    }

    /// Runs the steps of `readme` in order; the number of commands run,
    /// or what failed: the README line, the command, its stderr.
    fn run(&self, readme: &str) -> Result<usize, String> {
        let mut ran = 0;
        for Located { line, step } in extract(readme) {
            match step {
                Step::Skip { text, why } => eprintln!("README.md:{line}: not run ({why}): {text}"),
                Step::Write { path, body } => {
                    let target = self.work.join(&path);
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent).expect("mkdir");
                    }
                    std::fs::write(&target, body)
                        .map_err(|e| format!("README.md line {line}: writing {path}: {e}"))?;
                }
                Step::Run(script) => {
                    eprintln!("README.md:{line}: {script}");
                    let mut cmd = Command::new("sh");
                    cmd.arg("-c")
                        .arg(&script)
                        .current_dir(&self.work)
                        .env("PATH", &self.path)
                        .env("HOME", &self.home)
                        .env_remove("MESHCA_PASSPHRASE_FILE")
                        .env_remove("XDG_DATA_HOME")
                        .env_remove("MANPATH")
                        .stdin(Stdio::null());
                    for v in util::RECIPE_VARS {
                        cmd.env_remove(v);
                    }
                    let out = cmd.output().expect("run sh");
                    if !out.status.success() {
                        return Err(format!(
                            "README.md line {line}: `{script}` failed ({}):\nstderr:\n{}\nstdout:\n{}",
                            out.status,
                            String::from_utf8_lossy(&out.stderr),
                            String::from_utf8_lossy(&out.stdout)
                        ));
                    }
                    ran += 1;
                }
            }
        }
        Ok(ran)
    }
}

#[test]
fn every_meshca_command_of_the_readme_runs_in_order() {
    let readme = std::fs::read_to_string(readme_path()).expect("README.md");
    let sandbox = Sandbox::new();
    let ran = sandbox.run(&readme).unwrap_or_else(|e| panic!("{e}"));
    let (home, work, path) = (&sandbox.home, &sandbox.work, &sandbox.path);
    // The README's tour alone has more than this many commands: an
    // extractor that finds fewer has stopped seeing them.
    assert!(ran >= 20, "only {ran} README commands found and run");
    // What the install and the tour promise is there.
    assert!(home.join(".cargo/share/man/man1/meshca.1").is_file());
    assert!(home.join(".cargo/share/man/man1/meshca-init.1").is_file());
    assert!(work.join("certs/root-cert.pem").is_file());
    // `man meshca-init` finds the installed page with no MANPATH set.
    let out = Command::new(util::require_tool("man"))
        .args(["-w", "meshca-init"])
        .env("PATH", path)
        .env("HOME", home)
        .env_remove("MANPATH")
        .output()
        .expect("man -w");
    util::assert_success("man -w meshca-init", &out);
    let found = String::from_utf8_lossy(&out.stdout);
    assert!(
        found.trim()
            == home
                .join(".cargo/share/man/man1/meshca-init.1")
                .display()
                .to_string(),
        "man -w meshca-init: {found}"
    );
}

#[test]
fn the_readme_installs_meshca_with_cargo_install() {
    let readme = std::fs::read_to_string(readme_path()).expect("README.md");
    // The install line works on the virtual workspace (a plain `cargo
    // install --path .` does not).
    assert!(
        readme.contains("\ncargo install --locked --path cli"),
        "README.md lacks the install line"
    );
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let text = std::fs::read_to_string(manifest).expect("cli/Cargo.toml");
    assert!(text.contains("name = \"meshca\""), "the binary is meshca");
}

#[test]
fn extractor_follows_the_documented_rules() {
    let readme = "\
text
```sh
meshca init --dir lab a b \\
    --key-type ecdsa-p256   # a comment
cargo build
kubectl apply -f lab/a/cacerts.yaml
meshca secret --dir lab a | kubectl apply -f -
meshca root --dir v --encrypt
meshca root --dir v --encrypt --passphrase-file p
meshca verify lab   # not run: shown for its output only
mkdir -p out && meshca completions bash > out/meshca
ROOTCA_DAYS=10 meshca root --dir r
cat > mesh.yaml <<'EOF'
clusters: [a]
EOF
```
```text
meshca not-a-step
```
```sh
meshca apply -f - <<EOF
x
EOF
```
";
    let steps = extract(readme);
    let got: Vec<(usize, &Step)> = steps.iter().map(|s| (s.line, &s.step)).collect();
    let run = |s: &str| Step::Run(s.to_owned());
    let skip = |t: &str, w: &str| Step::Skip {
        text: t.to_owned(),
        why: w.to_owned(),
    };
    let expected = [
        (
            3,
            run("meshca init --dir lab a b  --key-type ecdsa-p256   # a comment"),
        ),
        (
            6,
            skip(
                "kubectl apply -f lab/a/cacerts.yaml",
                "calls kubectl (needs a cluster)",
            ),
        ),
        (
            7,
            skip(
                "meshca secret --dir lab a | kubectl apply -f -",
                "calls kubectl (needs a cluster)",
            ),
        ),
        (
            8,
            skip(
                "meshca root --dir v --encrypt",
                "asks for a passphrase on a terminal",
            ),
        ),
        (9, run("meshca root --dir v --encrypt --passphrase-file p")),
        (
            10,
            skip(
                "meshca verify lab   # not run: shown for its output only",
                "shown for its output only",
            ),
        ),
        (
            11,
            run("mkdir -p out && meshca completions bash > out/meshca"),
        ),
        (12, run("ROOTCA_DAYS=10 meshca root --dir r")),
        (
            13,
            Step::Write {
                path: "mesh.yaml".into(),
                body: "clusters: [a]\n".into(),
            },
        ),
        (21, run("meshca apply -f - <<EOF\nx\nEOF\n")),
    ];
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!((g.0, g.1), (e.0, &e.1));
    }
}

#[test]
fn a_failing_readme_command_is_named_by_line_with_its_stderr() {
    let readme = "# t\n\n```sh\nmeshca init --dir lab --key-type ecdsa-p256 c1\nmeshca verify lab/nowhere\nmeshca verify lab\n```\n";
    let err = Sandbox::new()
        .run(readme)
        .expect_err("verify of a missing path fails");
    assert!(
        err.starts_with("README.md line 5: `meshca verify lab/nowhere` failed"),
        "{err}"
    );
    assert!(err.contains("lab/nowhere"), "{err}");
    assert!(err.contains("stderr:\nmeshca: error:"), "{err}");
}
