//! Differential test: `meshca::verify_cluster_dir` against the Go oracle
//! (`oracle/`), which loads a cluster directory the way istiod does and
//! then verifies a workload leaf for serverAuth and clientAuth.
//!
//! Thousands of cluster directories are generated from a seed (printed;
//! `MESHCA_DIFF_SEED` replays it, `MESHCA_DIFF_CASES` sets the count):
//! good meshes made with the library, then mutated at the DER level (the
//! intermediate's or the root's to-be-signed bytes, re-signed with the real
//! issuer key), at the PEM and file level, and in ca-crl.pem.
//!
//! Asserted: whenever the oracle rejects a directory, meshca reports an
//! error; whenever meshca reports an error the oracle does not, each error
//! code is one of the documented policies in [`POLICIES`].

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use meshca::{verify_cluster_dir, Group, Severity, VerifyOptions};
use support::gen::{Case, Generator, Meshes, AT, AT_RFC3339, CLUSTER};
use support::oracle::{self, Verdict};

/// Errors meshca reports by design where istiod itself would load the
/// bundle (README, "What verify checks"). Anything else meshca rejects and
/// the oracle accepts is a failure.
/// A policy may be limited to some mutations (`Some(substring)` of the
/// mutation name): glued PEM blocks are an error, a missing final newline is
/// not (Istio's own multi-root sample has none).
const POLICIES: &[(&str, Option<&str>, &str)] = &[
    ("weak-key", None, "RSA under 2048 bits"),
    (
        "unsupported-key",
        None,
        "a key type or curve istiod cannot sign workloads with",
    ),
    ("weak-signature", None, "SHA-1 or MD5 signatures"),
    (
        "no-keycertsign",
        None,
        "a CA whose keyUsage lacks keyCertSign: Go ignores keyUsage, Envoy (BoringSSL) refuses it",
    ),
    (
        "root-not-self-signed-ca",
        None,
        "root-cert.pem holding a certificate that is not a self-signed CA",
    ),
    (
        "chain-start",
        None,
        "cert-chain.pem not starting with ca-cert.pem: istiod serves it after every leaf",
    ),
    (
        "root-as-cluster-ca",
        None,
        "a ca-cert.pem that is itself a root of root-cert.pem: the offline root's key would be online",
    ),
    (
        "pem-format",
        Some("glued"),
        "PEM blocks glued on one line: Go reads them, Envoy does not",
    ),
];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

/// The class a mismatch is counted under: the mutation without the random
/// location of a fuzzed node, and the oracle's stage.
fn class_of(kind: &str, case: &Case, v: &Verdict) -> String {
    let m = match case.mutation.find(":fuzz:") {
        Some(i) => {
            let rest = &case.mutation[i + 6..];
            let op = rest.split(['@', '-']).next().unwrap_or(rest);
            format!("{}:fuzz:{op}", &case.mutation[..i])
        }
        None => case.mutation.clone(),
    };
    let stage = if v.ok { "ok" } else { v.stage.as_str() };
    format!("{kind} | {m} | oracle {stage}")
}

/// The error findings: code and message.
fn errors(g: &Group) -> Vec<(String, String)> {
    g.findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| (f.code.as_str().to_owned(), f.message.clone()))
        .collect()
}

/// Go's parser differs between releases, and meshca refuses what any
/// release from Go 1.25 on refuses, saying which releases do. A `go-parse`
/// error that names only releases other than the oracle's (`go_minor`) is
/// expected where the oracle accepts.
fn refused_by_other_go_release(code: &str, message: &str, go_minor: u32) -> bool {
    code == "go-parse"
        && ((go_minor >= 27 && message.contains(" parser up to Go 1.26 "))
            || (go_minor <= 26 && message.contains(" parser from Go 1.27 on ")))
}

fn findings_text(g: &Group) -> String {
    g.findings
        .iter()
        .map(|f| format!("{} {} {}: {}", f.severity, f.code, f.file, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

struct Mismatch {
    index: usize,
    class: String,
    detail: String,
}

#[test]
fn meshca_reports_an_error_whenever_the_istiod_oracle_rejects() {
    let seed = env_u64("MESHCA_DIFF_SEED").unwrap_or_else(|| fastrand::u64(..));
    let count = env_u64("MESHCA_DIFF_CASES").map_or(2000, |n| n as usize);
    eprintln!("differential: seed {seed}, {count} cases (replay: MESHCA_DIFF_SEED={seed})");

    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let go_minor = oracle::go_minor();
    eprintln!("differential: oracle built with Go 1.{go_minor}");
    let bin = oracle::build(
        &tmp.join(format!("oracle-go1.{go_minor}")),
        "oracle-differential",
    );
    let meshes = Meshes::new();
    let mut gen = Generator::new(&meshes, seed);
    let cases: Vec<Case> = (0..count).map(|_| gen.case()).collect();

    let work = tempfile::Builder::new()
        .prefix("differential-")
        .tempdir_in(&tmp)
        .unwrap();
    let dirs: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let d = work.path().join(format!("{i:05}")).join(CLUSTER);
            c.write(&d);
            d
        })
        .collect();

    let verdicts = oracle::run(&bin, AT_RFC3339, &dirs);
    let opts = VerifyOptions::at(AT);
    let groups: Vec<Group> = std::thread::scope(|s| {
        let half = dirs.len().div_ceil(2);
        let handles: Vec<_> = dirs
            .chunks(half.max(1))
            .map(|chunk| {
                let opts = &opts;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|d| verify_cluster_dir(d, opts))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });

    // Findings name files under the (temporary) work directory: drop it.
    let prefix = format!("{}/", work.path().display());
    let policy = |code: &str, case: &Case| {
        POLICIES
            .iter()
            .any(|(c, only, _)| *c == code && only.is_none_or(|m| case.mutation.contains(m)))
    };
    let mut policy_uses: BTreeMap<String, usize> = BTreeMap::new();
    let mut mismatches = Vec::new();
    let (mut rejected, mut accepted, mut by_policy) = (0, 0, 0);
    for (i, ((case, v), g)) in cases.iter().zip(&verdicts).zip(&groups).enumerate() {
        let errs = errors(g);
        if case.mutation == "none" {
            assert!(
                v.ok && errs.is_empty(),
                "an unmutated bundle must pass both: seed {seed} case {i} ({}): oracle {v:?}, meshca {}",
                meshes.bases[case.base].name,
                findings_text(g).replace(&prefix, "")
            );
        }
        if !v.ok {
            rejected += 1;
            if errs.is_empty() {
                mismatches.push(Mismatch {
                    index: i,
                    class: class_of("MISSED (oracle rejects, meshca passes)", case, v),
                    detail: format!(
                        "{}: oracle {}: {}; meshca: {}",
                        case.mutation,
                        v.stage,
                        v.reason,
                        findings_text(g).replace(&prefix, "")
                    ),
                });
            }
        } else {
            accepted += 1;
            let unexplained: Vec<&String> = errs
                .iter()
                .filter(|(c, m)| !policy(c, case) && !refused_by_other_go_release(c, m, go_minor))
                .map(|(c, _)| c)
                .collect();
            if !errs.is_empty() && unexplained.is_empty() {
                by_policy += 1;
                let codes: Vec<&str> = errs.iter().map(|(c, _)| c.as_str()).collect();
                let key = format!("{} <- {}", codes.join(","), class_of("", case, v));
                *policy_uses.entry(key).or_default() += 1;
            }
            if !unexplained.is_empty() {
                let codes: Vec<&str> = unexplained.iter().map(|s| s.as_str()).collect();
                mismatches.push(Mismatch {
                    index: i,
                    class: format!(
                        "{} [{}]",
                        class_of("STRICT (meshca rejects, oracle accepts)", case, v),
                        codes.join(",")
                    ),
                    detail: format!(
                        "{}: meshca: {}",
                        case.mutation,
                        findings_text(g).replace(&prefix, "")
                    ),
                });
            }
        }
    }
    eprintln!(
        "differential: oracle rejected {rejected}, accepted {accepted} \
         ({by_policy} of those rejected by meshca as a documented policy); {} mismatches",
        mismatches.len()
    );
    for (k, n) in &policy_uses {
        eprintln!("differential: policy, oracle accepts: {n} x {k}");
    }
    // The generator must exercise both verdicts, or the test proves nothing.
    assert!(
        rejected * 5 >= count && accepted * 10 >= count,
        "the generator is off balance: {rejected} rejected, {accepted} accepted of {count}"
    );
    if mismatches.is_empty() {
        return;
    }

    // Every failing case, then the classes.
    for m in mismatches.iter().take(400) {
        eprintln!("seed {seed} case {}: {} | {}", m.index, m.class, m.detail);
    }
    if mismatches.len() > 400 {
        eprintln!("... and {} more", mismatches.len() - 400);
    }
    // Classes, with a count and one kept, replayable example each.
    let keep = tmp.join("differential-failures").join(seed.to_string());
    let mut classes: BTreeMap<&str, (usize, &Mismatch)> = BTreeMap::new();
    for m in &mismatches {
        classes.entry(&m.class).or_insert((0, m)).0 += 1;
    }
    let mut table = String::new();
    writeln!(
        table,
        "seed {seed}, {count} cases, verified at {AT_RFC3339}"
    )
    .unwrap();
    writeln!(table, "| count | class | example case | detail |").unwrap();
    writeln!(table, "|---:|---|---|---|").unwrap();
    for (class, (n, m)) in &classes {
        let kept = keep.join(format!("{:05}", m.index)).join(CLUSTER);
        copy_dir(&dirs[m.index], &kept);
        let mesh = &meshes.bases[cases[m.index].base].name;
        let detail = m.detail.replace('|', "/");
        writeln!(table, "| {n} | {class} | {} ({mesh}) | {detail} |", m.index).unwrap();
    }
    std::fs::write(tmp.join("differential-report.md"), &table).unwrap();
    panic!(
        "{} of {count} cases disagree with the oracle (seed {seed}; replay with \
         MESHCA_DIFF_SEED={seed}; one example per class kept under {}, run \
         `oracle --at {AT_RFC3339} DIR` on it):\n{table}",
        mismatches.len(),
        keep.display()
    );
}

/// Mesh-level errors meshca reports by design (README, "What verify
/// checks") that no istiod and no workload refuses.
const MESH_POLICIES: &[(&str, &str)] = &[
    (
        "shared-key",
        "two clusters sharing an intermediate key (one leak exposes both)",
    ),
    (
        "root-differs",
        "a cluster whose root differs from the certs directory's mesh root",
    ),
    (
        "foreign-root",
        "a cluster CA that does not chain to DIR/root-cert.pem, the mesh root that signs new clusters",
    ),
    (
        "root-as-cluster-ca",
        "a cluster whose CA is the mesh root itself or carries its key (the offline root online)",
    ),
];

#[test]
fn meshca_reports_an_error_whenever_the_oracle_rejects_a_mesh() {
    let seed = env_u64("MESHCA_DIFF_SEED").unwrap_or_else(|| fastrand::u64(..));
    let count = env_u64("MESHCA_DIFF_MESHES").map_or(200, |n| n as usize);
    eprintln!("differential meshes: seed {seed}, {count} certs directories (replay: MESHCA_DIFF_SEED={seed})");
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let go_minor = oracle::go_minor();
    let bin = oracle::build(
        &tmp.join(format!("oracle-go1.{go_minor}")),
        "oracle-differential-mesh",
    );
    let meshes = Meshes::new();
    let mut gen = Generator::new(&meshes, seed);
    let cases: Vec<Case> = (0..count).map(|_| gen.mesh_case()).collect();
    let work = tempfile::Builder::new()
        .prefix("differential-mesh-")
        .tempdir_in(&tmp)
        .unwrap();
    let dirs: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let d = work.path().join(format!("{i:05}"));
            c.write(&d);
            d
        })
        .collect();
    let verdicts = oracle::run_with(&bin, AT_RFC3339, &["--mesh"], &dirs);
    let opts = VerifyOptions::at(AT);
    let prefix = format!("{}/", work.path().display());
    let allowed = |code: &str, case: &Case| {
        MESH_POLICIES.iter().any(|(c, _)| *c == code)
            || POLICIES
                .iter()
                .any(|(c, only, _)| *c == code && only.is_none_or(|m| case.mutation.contains(m)))
    };
    let mut failures: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let (mut rejected, mut accepted) = (0, 0);
    for (i, ((case, v), dir)) in cases.iter().zip(&verdicts).zip(&dirs).enumerate() {
        let groups = meshca::verify_certs_dir(dir, &opts).expect("a readable certs directory");
        let errs: Vec<(String, String)> = groups.iter().flat_map(errors).collect();
        let text = groups
            .iter()
            .map(findings_text)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
            .replace(&prefix, "");
        if case.mutation == "mesh:good" {
            assert!(
                v.ok && errs.is_empty(),
                "a good mesh must pass both: seed {seed} case {i}: oracle {v:?}, meshca {text}"
            );
        }
        let class = if !v.ok {
            rejected += 1;
            errs.is_empty()
                .then(|| format!("MISSED | {} | oracle {}", case.mutation, v.stage))
        } else {
            accepted += 1;
            let odd: Vec<&str> = errs
                .iter()
                .filter(|(c, m)| !allowed(c, case) && !refused_by_other_go_release(c, m, go_minor))
                .map(|(c, _)| c.as_str())
                .collect();
            (!odd.is_empty()).then(|| format!("STRICT | {} | [{}]", case.mutation, odd.join(",")))
        };
        if let Some(class) = class {
            let e = failures
                .entry(class)
                .or_insert((0, format!("case {i}: oracle: {}; meshca: {text}", v.reason)));
            e.0 += 1;
        }
    }
    eprintln!("differential meshes: oracle rejected {rejected}, accepted {accepted}");
    assert!(rejected > 0 && accepted > 0, "both verdicts must occur");
    if failures.is_empty() {
        return;
    }
    let mut table = String::new();
    for (class, (n, example)) in &failures {
        writeln!(table, "| {n} | {class} | {example} |").unwrap();
    }
    std::fs::write(tmp.join("differential-mesh-report.md"), &table).unwrap();
    panic!(
        "{} mesh classes disagree with the oracle (seed {seed}; replay with MESHCA_DIFF_SEED={seed}):\n{table}",
        failures.len()
    );
}
