//! What a newcomer meets first: options only where they act, one name per
//! idea, defaults and value lists in `--help` and completions, progress on a
//! terminal from the start, the passphrase asked before any work, plural
//! forms, and the manual pages.

mod util;

use std::process::Command;

use util::{assert_success, ecdsa_mesh, stderr, stdout, Dir};

const KEY_TYPES: [&str; 5] = [
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
    "ecdsa-p256",
    "ecdsa-p384",
];
const REASONS: [&str; 6] = [
    "unspecified",
    "key-compromise",
    "ca-compromise",
    "affiliation-changed",
    "superseded",
    "cessation-of-operation",
];

fn help(cmd: &str) -> String {
    stdout(&Dir::new().ok(&[cmd, "--help"]))
}

/// The text of `--help` from the line naming `option` to the next option.
fn option_help(help: &str, option: &str) -> String {
    let mut lines = help.lines().skip_while(|l| {
        let l = l.trim_start();
        !(l.starts_with('-') && l.split([',', ' ']).any(|w| w == option))
    });
    let Some(first) = lines.next() else {
        panic!("{option} not in help:\n{help}");
    };
    let mut text = first.to_owned();
    for l in lines {
        if l.trim_start().starts_with('-') {
            break;
        }
        text.push('\n');
        text.push_str(l);
    }
    text
}

#[test]
fn verify_inspect_and_completions_list_no_options_that_do_nothing_there() {
    for cmd in ["verify", "inspect", "completions"] {
        let text = help(cmd);
        for option in ["--dir", "--passphrase-file"] {
            assert!(
                !text.contains(option),
                "{cmd} --help lists {option}:\n{text}"
            );
        }
    }
    // --quiet acts on verify (only the findings), not on inspect or completions.
    assert!(help("verify").contains("--quiet"));
    for cmd in ["inspect", "completions"] {
        assert!(!help(cmd).contains("--quiet"), "{cmd} --help lists --quiet");
    }
    // The commands that sign list them.
    for cmd in [
        "init",
        "root",
        "intermediate",
        "workload",
        "revoke",
        "crl",
        "rotate",
    ] {
        let text = help(cmd);
        for option in ["--dir", "--quiet", "--passphrase-file"] {
            assert!(text.contains(option), "{cmd} --help lacks {option}");
        }
    }
    assert!(help("secret").contains("--dir"));
    // Given anyway, they are a usage error (exit 2), not silently ignored.
    let dir = ecdsa_mesh();
    let out = dir.meshca(&["verify", "--dir", "certs", "certs"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = dir.meshca(&["inspect", "--passphrase-file", "x", "certs/root-cert.pem"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn help_shows_defaults_and_value_lists() {
    for cmd in ["init", "intermediate", "root", "workload"] {
        let text = option_help(&help(cmd), "--key-type");
        assert!(text.contains("[default: rsa-4096]"), "{cmd}: {text}");
        for kt in KEY_TYPES {
            assert!(
                text.contains(kt),
                "{cmd} --key-type help lacks {kt}: {text}"
            );
        }
    }
    let init = help("init");
    let root_type = option_help(&init, "--root-key-type");
    assert!(root_type.contains("ecdsa-p384"), "{root_type}");
    assert!(option_help(&init, "--days").contains("[default: 730]"));
    assert!(option_help(&init, "--root-days").contains("[default: 3650]"));
    assert!(option_help(&init, "--namespace").contains("[default: istio-system]"));
    let revoke = option_help(&help("revoke"), "--reason");
    assert!(revoke.contains("[default: unspecified]"), "{revoke}");
    for r in REASONS {
        assert!(revoke.contains(r), "--reason help lacks {r}: {revoke}");
    }
    let completions = help("completions");
    for shell in ["bash", "zsh", "fish"] {
        assert!(completions.contains(shell), "{completions}");
    }
    // The recipe's bare key sizes still parse (ROOTCA_KEYSZ=4096), and a
    // wrong value lists the right ones.
    let dir = Dir::new();
    let out = dir.meshca_env(&["root", "--dir", "r"], &[("ROOTCA_KEYSZ", "2048")]);
    assert_success("ROOTCA_KEYSZ=2048 meshca root", &out);
    assert!(stdout(&out).contains("rsa-2048"), "{}", stdout(&out));
    let out = dir.meshca(&["init", "--key-type", "rsa-1024", "c1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("ecdsa-p256"), "{}", stderr(&out));
}

#[test]
fn bash_completion_offers_key_types_reasons_and_shells() {
    let dir = Dir::new();
    let script = stdout(&dir.ok(&["completions", "bash"]));
    for v in KEY_TYPES.iter().chain(&REASONS) {
        assert!(script.contains(v), "bash completion lacks {v}");
    }
    // Values, not file names, for --key-type: its case offers the list.
    let key_type_case = script
        .split("--key-type)")
        .nth(1)
        .expect("a --key-type case in the bash script");
    let case = key_type_case.split(";;").next().unwrap_or_default();
    assert!(
        case.contains("rsa-2048 rsa-3072 rsa-4096 ecdsa-p256 ecdsa-p384"),
        "{case}"
    );
    assert!(script.contains("bash elvish fish powershell zsh"));
    let zsh = stdout(&dir.ok(&["completions", "zsh"]));
    assert!(zsh.contains("ecdsa-p384") && zsh.contains("key-compromise"));
}

#[test]
fn secret_tls_secret_works_and_tls_is_a_hidden_alias() {
    let dir = ecdsa_mesh();
    let new = stdout(&dir.ok(&["secret", "--dir", "certs", "--tls-secret", "cluster1"]));
    assert!(new.contains("type: kubernetes.io/tls"), "{new}");
    assert!(new.contains("tls.crt:"), "{new}");
    let old = stdout(&dir.ok(&["secret", "--dir", "certs", "--tls", "cluster1"]));
    assert_eq!(old, new);
    let text = help("secret");
    assert!(text.contains("--tls-secret"), "{text}");
    assert!(!text.contains("--tls "), "--tls is listed:\n{text}");
}

#[test]
fn workload_takes_namespace_for_istiod_and_istio_namespace_as_alias() {
    let text = help("workload");
    let ns = option_help(&text, "--namespace");
    assert!(ns.contains("istiod"), "{ns}");
    assert!(!text.contains("--istio-namespace"), "{text}");
    assert!(
        text.contains("The namespace the WORKLOAD runs in"),
        "{text}"
    );
    for (option, dir_name) in [("--namespace", "a"), ("--istio-namespace", "b")] {
        let dir = Dir::new();
        dir.ok(&["root", "--key-type", "ecdsa-p256", "--dir", dir_name]);
        dir.ok(&[
            "workload",
            "--dir",
            dir_name,
            "--key-type",
            "ecdsa-p256",
            option,
            "mesh-ns",
            "vm",
        ]);
        let yaml = dir.read(&format!("{dir_name}/vm/cacerts.yaml"));
        assert!(yaml.contains("namespace: mesh-ns"), "{option}: {yaml}");
    }
}

/// Runs `meshca ARGS` on a pseudo-terminal (util-linux `script`), stdout
/// discarded; returns what the terminal showed.
fn on_terminal(dir: &Dir, args: &str) -> String {
    let cmd = format!("{} {args} >/dev/null", env!("CARGO_BIN_EXE_meshca"));
    let out = dir.tool("script", &["-qec", &cmd, "/dev/null"]);
    assert_success("script", &out);
    stdout(&out)
}

#[test]
fn progress_shows_at_once_with_the_key_count_type_and_time() {
    let dir = Dir::new();
    let shown = on_terminal(&dir, "init --key-type rsa-3072 c1 c2");
    // Drawn before the first key is done, then each key by name.
    assert!(
        shown.contains("generating 3 keys (rsa-3072): 0/3 done, 0.0 s"),
        "{shown:?}"
    );
    assert!(shown.contains("3/3 done ("), "{shown:?}");
    for name in ["root", "c1", "c2"] {
        assert!(shown.contains(&format!("done ({name})")), "{shown:?}");
    }
    // One key, as `meshca root` makes it: singular, named.
    let dir = Dir::new();
    let shown = on_terminal(&dir, "root --key-type rsa-2048");
    assert!(
        shown.contains("generating 1 key (rsa-2048): 0/1 done, 0.0 s"),
        "{shown:?}"
    );
    assert!(shown.contains("1/1 done (root)"), "{shown:?}");
    // Mixed key types are both named.
    let dir = Dir::new();
    let shown = on_terminal(
        &dir,
        "init --key-type ecdsa-p256 --root-key-type rsa-2048 c1",
    );
    assert!(
        shown.contains("generating 2 keys (rsa-2048, ecdsa-p256)"),
        "{shown:?}"
    );
    // ECDSA alone is instant: no progress; --quiet: none either.
    let dir = Dir::new();
    let shown = on_terminal(&dir, "init --key-type ecdsa-p256 c1");
    assert!(!shown.contains("generating"), "{shown:?}");
    let dir = Dir::new();
    let shown = on_terminal(&dir, "init --quiet --key-type rsa-2048 c1");
    assert!(!shown.contains("generating"), "{shown:?}");
    // Not a terminal: nothing.
    let dir = Dir::new();
    let out = dir.ok(&["init", "--key-type", "rsa-2048", "c1"]);
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

/// `meshca ARGS` with no terminal (stdin /dev/null, output piped, no
/// controlling terminal), under bash's `time`: (exit code, stderr, CPU
/// seconds, user + system).
fn timed_without_terminal(dir: &Dir, args: &str) -> (Option<i32>, String, f64) {
    let script = format!(
        "TIMEFORMAT='%3U %3S'; {{ time {} {args} </dev/null 2>meshca.err; }} 2>time.txt",
        env!("CARGO_BIN_EXE_meshca")
    );
    // setsid: no controlling terminal, even when the tests run in one.
    let mut cmd = Command::new(util::require_tool("setsid"));
    cmd.current_dir(dir.path())
        .arg("--wait")
        .arg(util::require_tool("bash"))
        .arg("-c")
        .arg(&script)
        .env_remove("MESHCA_PASSPHRASE_FILE");
    for v in util::RECIPE_VARS {
        cmd.env_remove(v);
    }
    let out = cmd.output().expect("run bash");
    let times = dir.read("time.txt");
    let cpu: f64 = times
        .split_whitespace()
        .map(|t| {
            t.parse::<f64>()
                .unwrap_or_else(|_| panic!("time: {times:?}"))
        })
        .sum();
    (out.status.code(), dir.read("meshca.err"), cpu)
}

#[test]
fn no_terminal_and_no_passphrase_file_fails_before_any_key_is_made() {
    for (args, key) in [
        (
            "root --dir r --key-type rsa-4096 --encrypt",
            "r/root-key.pem",
        ),
        (
            "init --dir i --key-type rsa-4096 --encrypt-root c1 c2 c3",
            "i/root-key.pem",
        ),
    ] {
        let dir = Dir::new();
        let (code, err, cpu) = timed_without_terminal(&dir, args);
        assert_eq!(code, Some(2), "{args}: {err}");
        assert!(err.contains("needs a passphrase"), "{args}: {err}");
        assert!(err.contains("--passphrase-file"), "{args}: {err}");
        // RSA-4096 keys take about 0.4 s of CPU each: none was made.
        assert!(cpu < 0.5, "{args}: {cpu} s of CPU before failing");
        assert!(!dir.join(key).exists(), "{args}: a key was written");
    }
    // An encrypted root then asks before the intermediates' keys are made.
    let dir = Dir::new();
    std::fs::write(dir.join("pass"), "secret words\n").unwrap();
    dir.ok(&[
        "root",
        "--dir",
        "v",
        "--key-type",
        "ecdsa-p256",
        "--encrypt",
        "--passphrase-file",
        "pass",
    ]);
    let (code, err, cpu) =
        timed_without_terminal(&dir, "intermediate --dir v --key-type rsa-4096 c1 c2 c3");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("needs a passphrase"), "{err}");
    assert!(cpu < 0.5, "{cpu} s of CPU before failing");
    assert!(!dir.join("v/c1").exists());
}

#[test]
fn counts_read_one_cluster_two_clusters() {
    let dir = Dir::new();
    dir.ok(&["init", "--dir", "one", "--key-type", "ecdsa-p256", "c1"]);
    let out = stdout(&dir.ok(&["verify", "one"]));
    assert!(out.contains("1 cluster checked"), "{out}");
    assert!(out.contains("0 errors, 0 warnings"), "{out}");
    dir.ok(&["root", "--dir", "new", "--key-type", "ecdsa-p256"]);
    let out = stdout(&dir.ok(&[
        "rotate",
        "--dir",
        "one",
        "--new-root",
        "new",
        "--out",
        "rot",
    ]));
    assert!(out.contains("stage 1: rot/stage-1 (1 cluster)"), "{out}");
    assert!(!out.contains("(s)") && !out.contains("1 clusters"), "{out}");
    let out = stdout(&dir.ok(&["inspect", "one/root-cert.pem", "one/c1/cert-chain.pem"]));
    assert!(out.contains("one/root-cert.pem: 1 PEM block\n"), "{out}");
    assert!(
        out.contains("one/c1/cert-chain.pem: 2 PEM blocks\n"),
        "{out}"
    );
    dir.ok(&[
        "intermediate",
        "--dir",
        "one",
        "--key-type",
        "ecdsa-p256",
        "c2",
    ]);
    let out = stdout(&dir.ok(&[
        "rotate",
        "--dir",
        "one",
        "--new-root",
        "new",
        "--out",
        "rot2",
    ]));
    assert!(out.contains("(2 clusters)"), "{out}");
    let out = stdout(&dir.ok(&["verify", "one"]));
    assert!(out.contains("2 clusters checked"), "{out}");
    // Two days from now is one whole day and some hours left.
    dir.ok(&[
        "init",
        "--dir",
        "soon",
        "--key-type",
        "ecdsa-p256",
        "--days",
        "2",
        "c1",
    ]);
    let out = stdout(&dir.ok(&["verify", "soon"]));
    assert!(out.contains("(1 day left)"), "{out}");
    let out = stdout(&dir.ok(&["inspect", "soon/c1/ca-cert.pem"]));
    assert!(out.contains("1 day left"), "{out}");
    assert!(!out.contains("1 days"), "{out}");
}

#[test]
fn man_pages_render_with_every_command_and_option() {
    let dir = Dir::new();
    dir.ok(&["man", "--out", "man1"]);
    let commands = [
        "init",
        "root",
        "intermediate",
        "workload",
        "secret",
        "verify",
        "rotate",
        "inspect",
        "revoke",
        "crl",
        "completions",
    ];
    assert!(
        !dir.join("man1/meshca-man.1").exists(),
        "the hidden man command has no page"
    );
    let render = |page: &str| {
        let path = dir.join(&format!("man1/{page}.1"));
        assert!(path.is_file(), "{page}.1 missing");
        // groff: no warning about the roff itself (a line holding a long
        // pkcs11: URI cannot be justified: that `break` warning is typography).
        let out = dir.tool(
            "groff",
            &[
                "-man",
                "-Tascii",
                "-ww",
                "-Wbreak",
                "-z",
                path.to_str().unwrap(),
            ],
        );
        assert_success("groff", &out);
        assert!(out.stderr.is_empty(), "{page}: {}", stderr(&out));
        // man -l: what a reader sees.
        let out = Command::new(util::require_tool("man"))
            .arg("-l")
            .arg(&path)
            .env("MANWIDTH", "250")
            .env("LC_ALL", "C")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .expect("man");
        assert_success("man -l", &out);
        stdout(&out)
    };
    let top = render("meshca");
    for cmd in commands {
        assert!(
            top.contains(&format!("meshca-{cmd}(1)")),
            "meshca.1 lacks {cmd}:\n{top}"
        );
        let page = render(&format!("meshca-{cmd}"));
        assert!(page.contains("NAME"), "{cmd}: {page}");
        // Every option `--help` lists is in the page.
        let help = help(cmd);
        let options: Vec<&str> = help
            .lines()
            .filter_map(|l| {
                l.trim_start()
                    .split([' ', ','])
                    .find(|w| w.starts_with("--"))
            })
            .collect();
        assert!(!options.is_empty(), "{cmd}: no options in --help");
        for option in options {
            assert!(
                page.contains(option),
                "meshca-{cmd}.1 lacks {option}:\n{page}"
            );
        }
    }
    let init = render("meshca-init");
    assert!(
        init.contains("rsa-4096") && init.contains("ecdsa-p384"),
        "{init}"
    );
}

#[test]
fn rotate_hides_intermediate_options_it_cannot_honour() {
    let text = help("rotate");
    for option in ["--key-type", "--tls-secret", "--root-from-secret"] {
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with(option)),
            "rotate --help lists {option}:\n{text}"
        );
    }
    // Given anyway (older scripts), they are named as having no effect.
    let dir = ecdsa_mesh();
    dir.ok(&["root", "--dir", "new", "--key-type", "ecdsa-p256"]);
    let out = dir.ok(&[
        "rotate",
        "--dir",
        "certs",
        "--new-root",
        "new",
        "--out",
        "rot",
        "--key-type",
        "rsa-2048",
    ]);
    let err = stderr(&out);
    assert!(err.contains("--key-type has no effect on rotate"), "{err}");
    let inspect = stdout(&dir.ok(&["inspect", "rot/stage-2/cluster1/ca-cert.pem"]));
    assert!(inspect.contains("key:         ecdsa-p256"), "{inspect}");
}
