//! The Go oracle (`oracle/`) judged on bundles whose verdict is known:
//! fresh `meshca init` meshes and the openssl recipe's output must load,
//! hand-broken bundles must not. Then a sample of the differential test's
//! generated cases through the real `meshca verify` binary, whose exit code
//! must match the library's verdict.

mod util;

#[path = "../../lib/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use meshca::{verify_cluster_dir, Severity, VerifyOptions};
use support::gen::{Generator, Meshes, CLUSTER};
use support::oracle::{self, Verdict};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use util::Dir;

/// The oracle, built once per test process (the tests run in parallel).
fn oracle_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        oracle::build(
            &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oracle"),
            "oracle-cli",
        )
    })
    .clone()
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap()
}

fn judge(bin: &Path, at: &str, dirs: &[PathBuf]) -> Vec<Verdict> {
    oracle::run(bin, at, dirs)
}

fn assert_all_ok(what: &str, verdicts: &[Verdict]) {
    assert!(!verdicts.is_empty());
    for v in verdicts {
        assert!(
            v.ok,
            "{what}: the oracle refuses {}: {} {}",
            v.dir, v.stage, v.reason
        );
    }
}

fn recipe(dir: &Dir, key_type: &str) {
    let mut cmd = std::process::Command::new(util::require_tool("bash"));
    cmd.arg(util::testdata().join("recipe.sh"))
        .args(["-q", "--key-type", key_type])
        .arg(dir.join("certs"))
        .args(["cluster1", "cluster2"]);
    for v in util::RECIPE_VARS {
        cmd.env_remove(v);
    }
    let out = cmd.output().unwrap();
    util::assert_success("recipe.sh", &out);
}

#[test]
fn oracle_accepts_every_cluster_of_a_fresh_meshca_init_and_of_the_recipe() {
    let bin = oracle_bin();
    for key_type in ["ecdsa-p256", "rsa-2048"] {
        let dir = Dir::new();
        dir.ok(&[
            "init",
            "--dir",
            "certs",
            "--key-type",
            key_type,
            "cluster1",
            "cluster2",
        ]);
        let dirs = vec![dir.join("certs/cluster1"), dir.join("certs/cluster2")];
        assert_all_ok(
            &format!("meshca init --key-type {key_type}"),
            &judge(&bin, &now(), &dirs),
        );
        // With the CRLs meshca writes, too.
        dir.ok(&["crl", "--dir", "certs", "cluster1", "cluster2"]);
        assert!(dir.join("certs/cluster1/ca-crl.pem").is_file());
        assert_all_ok(
            &format!("meshca crl ({key_type})"),
            &judge(&bin, &now(), &dirs),
        );

        let rec = Dir::new();
        recipe(&rec, key_type);
        let dirs = vec![rec.join("certs/cluster1"), rec.join("certs/cluster2")];
        assert_all_ok(
            &format!("recipe.sh --key-type {key_type}"),
            &judge(&bin, &now(), &dirs),
        );
    }
}

#[test]
fn oracle_agrees_with_istiod_on_istios_own_sample_bundles() {
    let bin = oracle_bin();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../oracle/testdata/istio-samples");
    let good: Vec<PathBuf> = ["default", "combined", "alt-combined"]
        .iter()
        .map(|d| samples.join(d))
        .collect();
    // The samples are valid from 2018 (2023 for alt-2) to 2033 and later.
    let at = "2030-01-01T00:00:00Z";
    assert_all_ok("Istio's samples/certs", &judge(&bin, at, &good));
    let v = judge(&bin, at, &[samples.join("combined-2")]);
    assert!(
        !v[0].ok && v[0].stage == "verify" && v[0].reason.contains("does not match"),
        "samples/certs ca-key-alt-2.pem does not match ca-cert-alt-2.pem: {:?}",
        v[0]
    );
}

#[test]
fn oracle_rejects_hand_broken_bundles() {
    let bin = oracle_bin();
    let mesh = util::ecdsa_mesh();
    let other = util::ecdsa_mesh();
    let copy = |name: &str| {
        let d = mesh.join(&format!("broken/{name}/cluster1"));
        std::fs::create_dir_all(&d).unwrap();
        for f in [
            "ca-cert.pem",
            "ca-key.pem",
            "cert-chain.pem",
            "root-cert.pem",
        ] {
            std::fs::copy(mesh.join(&format!("certs/cluster1/{f}")), d.join(f)).unwrap();
        }
        d
    };
    let mismatch = copy("key-mismatch");
    std::fs::copy(
        mesh.join("certs/cluster2/ca-key.pem"),
        mismatch.join("ca-key.pem"),
    )
    .unwrap();
    let wrong_root = copy("wrong-root");
    std::fs::copy(
        other.join("certs/root-cert.pem"),
        wrong_root.join("root-cert.pem"),
    )
    .unwrap();
    let partial = copy("partial");
    std::fs::remove_file(partial.join("cert-chain.pem")).unwrap();
    let revoked = mesh.join("certs/cluster2");
    mesh.ok(&["revoke", "--dir", "certs", "cluster2"]);
    mesh.ok(&["crl", "--dir", "certs", "cluster2"]);

    let dirs = vec![mismatch, wrong_root, partial, revoked];
    let v = judge(&bin, &now(), &dirs);
    let expect = [
        ("verify", "does not match"),
        ("verify", "unknown authority"),
        ("load", "incomplete"),
        ("crl", "revoked"),
    ];
    for (v, (stage, words)) in v.iter().zip(expect) {
        assert!(!v.ok, "{}: the oracle accepts it", v.dir);
        assert_eq!(v.stage, stage, "{}: {}", v.dir, v.reason);
        assert!(v.reason.contains(words), "{}: {}", v.dir, v.reason);
    }
    // The unbroken cluster, far in the future: expired.
    let v = judge(&bin, "2040-01-01T00:00:00Z", &[mesh.join("certs/cluster1")]);
    assert!(
        !v[0].ok && v[0].stage == "verify" && v[0].reason.contains("expired"),
        "{:?}",
        v[0]
    );
}

#[test]
fn meshca_verify_exit_codes_match_the_library_on_generated_cases() {
    let seed = std::env::var("MESHCA_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("sample seed {seed} (replay: MESHCA_DIFF_SEED={seed})");
    let meshes = Meshes::new();
    let mut gen = Generator::new(&meshes, seed);
    let work = Dir::new();
    let opts = VerifyOptions::at(OffsetDateTime::now_utc());
    let (mut zero, mut one) = (0, 0);
    // 50 cases a run; MESHCA_DIFF_CLI_CASES changes it.
    let n: usize = std::env::var("MESHCA_DIFF_CLI_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    for i in 0..n {
        let case = gen.case();
        let dir = work.join(&format!("{i:02}")).join(CLUSTER);
        case.write(&dir);
        let lib_fails = verify_cluster_dir(&dir, &opts)
            .findings
            .iter()
            .any(|f| f.severity == Severity::Error);
        let out = work.meshca(&["verify", dir.to_str().unwrap()]);
        // An empty directory is neither a cluster nor a certs directory:
        // the CLI cannot run (exit 2) where the library lists missing files.
        let want = if case.files.is_empty() {
            2
        } else if lib_fails {
            1
        } else {
            0
        };
        assert_eq!(
            out.status.code(),
            Some(want),
            "seed {seed} case {i} ({}): `meshca verify` exit code differs from the library's verdict:\n{}",
            case.mutation,
            util::stderr(&out)
        );
        if lib_fails {
            one += 1;
        } else {
            zero += 1;
        }
    }
    assert!(
        zero > 0 && one > 0,
        "the sample needs both verdicts: {zero} passed, {one} failed"
    );
}
