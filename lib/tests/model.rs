//! Model-based test of the workflows and the store: random sequences of
//! commands (seeded; the seed is printed, `MESHCA_MODEL_SEED` replays one,
//! `MESHCA_MODEL_SEQUENCES` sets how many run, 500 by default), run on a
//! mesh in memory and saved to a directory whose saves fail at a random
//! operation now and then. After every step:
//!
//! - the mesh verifies in memory, and the directory verifies on disk;
//! - the directory holds exactly the mesh's files;
//! - files the step did not target are byte-identical;
//! - a failed step (refused workflow or failed save) left the directory
//!   byte-identical;
//! - the Go oracle (istiod's loading, a workload leaf verified for
//!   serverAuth and clientAuth) accepts every cluster that is not revoked:
//!   each step's cluster directories are copied aside and judged in one
//!   batch at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshca::mesh::{Mesh, NewCluster};
use meshca::store::{self, Transaction};
use meshca::{
    IntermediateParams, KeyType, PrivateKey, Reason, RootCa, RootParams, SecretOptions,
    SecretShape, VerifyOptions, WorkloadParams,
};
use time::macros::datetime;
use time::OffsetDateTime;

mod support;

const NAMES: [&str; 5] = ["east", "west", "north", "south", "edge"];
const NAMESPACES: [&str; 2] = ["istio-system", "mesh-ca"];

/// Pinned time: certificates are made at NOW and checked a day later.
/// Saves that failed at an injected fault and were rolled back.
static ROLLED_BACK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Copies of every step's cluster directories for the oracle, by istiod
/// namespace, with the sequence's log.
static FOR_ORACLE: std::sync::Mutex<Vec<(&'static str, PathBuf, String)>> =
    std::sync::Mutex::new(Vec::new());

/// Where the copies go.
fn oracle_stage() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// Copies `dir` (a cluster directory) to `to`.
fn copy_dir(dir: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

fn opts(namespace: &str) -> VerifyOptions {
    let mut o = VerifyOptions::at(NOW + time::Duration::days(1));
    o.namespace = namespace.to_owned();
    o
}

struct World {
    seed: u64,
    /// Checks made so far (names the oracle's copies).
    checks: std::cell::Cell<usize>,
    rng: fastrand::Rng,
    /// istiod's namespace, one per mesh.
    namespace: &'static str,
    mesh: Mesh,
    signer: RootCa,
    dir: tempfile::TempDir,
    /// Clusters revoked and not yet re-issued: verify rightly fails.
    revoked: Vec<String>,
    /// Clusters the step in progress re-issues (no longer revoked once saved).
    reissuing: Vec<String>,
    /// The in-memory report of the mesh last saved (from its check).
    report: Option<meshca::Report>,
    log: Vec<String>,
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    store::snapshot(dir)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.to_vec()))
        .collect()
}

/// Asserts two snapshots are equal, naming the paths that differ (never
/// their bytes).
fn assert_same(before: &BTreeMap<PathBuf, Vec<u8>>, after: &BTreeMap<PathBuf, Vec<u8>>, ctx: &str) {
    let differ: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(differ.is_empty(), "changed: {differ:?}\n{ctx}");
}

fn key_type(rng: &mut fastrand::Rng) -> KeyType {
    if rng.u8(..4) == 0 {
        KeyType::EcdsaP384
    } else {
        KeyType::EcdsaP256
    }
}

fn new_cluster(rng: &mut fastrand::Rng, name: &str, ns: &str) -> NewCluster {
    let kt = key_type(rng);
    let mut p = IntermediateParams::default();
    p.key_type = kt;
    p.san_dns = vec![format!("istiod.{ns}.svc")];
    let mut c = NewCluster::new(name, p, PrivateKey::generate(kt).unwrap());
    let mut s = SecretOptions::default();
    s.namespace = ns.to_owned();
    s.shape = if rng.bool() {
        SecretShape::Tls
    } else {
        SecretShape::Opaque
    };
    c.secret = if rng.u8(..5) == 0 { None } else { Some(s) };
    c
}

fn root(rng: &mut fastrand::Rng) -> RootCa {
    let mut p = RootParams::default();
    p.key_type = key_type(rng);
    RootCa::generate(&p, NOW).unwrap()
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = fastrand::Rng::with_seed(seed);
        let namespace = NAMESPACES[rng.usize(..NAMESPACES.len())];
        let signer = root(&mut rng);
        let mesh = Mesh::new()
            .with_root(&signer, Some(signer.key().to_pem()), false)
            .unwrap();
        let w = World {
            seed,
            checks: std::cell::Cell::new(0),
            rng,
            namespace,
            mesh: Mesh::new(),
            signer,
            dir: tempfile::tempdir().unwrap(),
            revoked: Vec::new(),
            reissuing: Vec::new(),
            report: None,
            log: vec!["root".into()],
        };
        let mut w = w;
        w.save(mesh).unwrap();
        w
    }

    /// Verifies `new` against the current mesh and saves it, sometimes with
    /// a failure injected; checks all-or-nothing either way. `Err`: the
    /// verify-before-write check refused it (nothing written).
    fn save(&mut self, new: Mesh) -> Result<(), String> {
        let before = snapshot(self.dir.path());
        // Verify before write, as every command does.
        let checked = new.check_against(Some(&self.mesh), &opts(self.namespace));
        if let Err(e) = checked {
            let meshca::Error::WouldNotVerify { errors } = &e else {
                panic!("{e}");
            };
            // The one refusal a valid sequence can meet: a TLS-shaped
            // Secret in a mesh that uses CRLs (istiod would ignore them).
            assert!(
                errors.iter().all(|e| e.starts_with("secret-shape:")),
                "a workflow made a mesh that does not verify: {errors:#?}\n{}",
                self.log.join("\n")
            );
            return Err(e.to_string());
        }
        let report = checked.ok();
        let plan = |force| {
            let mut tx = Transaction::new();
            tx.no_sync();
            store::plan(&mut tx, self.dir.path(), Some(&self.mesh), &new, force).map(|()| tx)
        };
        let tx = plan(true).unwrap_or_else(|e| panic!("plan: {e}\n{}", self.log.join("\n")));
        let ops = tx.paths().count() * 3;
        if ops > 0 && self.rng.u8(..4) == 0 {
            let mut tx = plan(true).unwrap();
            let n = self.rng.usize(..ops);
            tx.fail_at(n);
            if tx.commit().is_err() {
                assert_same(
                    &before,
                    &snapshot(self.dir.path()),
                    &format!("a save failing at operation {n}\n{}", self.log.join("\n")),
                );
                self.log
                    .push(format!("  (save failed at operation {n}: rolled back)"));
                ROLLED_BACK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            // A fault past the last operation lets the save through; run
            // the rest below as a plain save of the same mesh.
            if snapshot(self.dir.path()) != before {
                self.mesh = new;
                self.report = report;
                return Ok(());
            }
        }
        let targets: Vec<PathBuf> = tx
            .paths()
            .map(|p| p.strip_prefix(self.dir.path()).unwrap().to_owned())
            .collect();
        tx.commit()
            .unwrap_or_else(|e| panic!("save: {e}\n{}", self.log.join("\n")));
        let after = snapshot(self.dir.path());
        for (path, bytes) in &before {
            if !targets.contains(path) {
                assert_eq!(
                    after.get(path),
                    Some(bytes),
                    "{} changed although the step did not target it\n{}",
                    path.display(),
                    self.log.join("\n")
                );
            }
        }
        self.mesh = new;
        self.report = report;
        Ok(())
    }

    fn refused(&mut self, why: &str) {
        self.log.push(format!("  refused: {why}"));
    }

    fn check(&self) {
        let ctx = || self.log.join("\n");
        let report = match &self.report {
            Some(r) => r.clone(),
            None => self.mesh.verify("", &opts(self.namespace)),
        };
        let bad: Vec<String> = report
            .findings()
            .filter(|f| f.severity == meshca::Severity::Error)
            .filter(|f| f.code != meshca::Code::Revoked)
            .map(|f| format!("{}: {}", f.code, f.message))
            .collect();
        assert!(bad.is_empty(), "in memory: {bad:#?}\n{}", ctx());
        let groups = meshca::verify_certs_dir(self.dir.path(), &opts(self.namespace)).unwrap();
        let disk = meshca::Report::new(groups, &opts(self.namespace));
        let bad: Vec<String> = disk
            .findings()
            .filter(|f| f.severity == meshca::Severity::Error)
            .filter(|f| f.code != meshca::Code::Revoked)
            .map(|f| format!("{}: {}", f.code, f.message))
            .collect();
        assert!(bad.is_empty(), "on disk: {bad:#?}\n{}", ctx());
        if self.revoked.is_empty() {
            assert!(report.ok, "in memory\n{}", ctx());
            assert!(disk.ok, "on disk\n{}", ctx());
        }
        // The directory holds the mesh, nothing more, nothing less.
        let on_disk = snapshot(self.dir.path());
        let loaded = store::load(self.dir.path()).unwrap();
        assert_eq!(
            loaded.clusters.keys().collect::<Vec<_>>(),
            self.mesh.clusters.keys().collect::<Vec<_>>(),
            "{}",
            ctx()
        );
        for (name, c) in &self.mesh.clusters {
            assert_eq!(
                loaded.clusters.get(name).map(|l| &l.bundle),
                Some(&c.bundle),
                "{name}\n{}",
                ctx()
            );
            assert_eq!(
                on_disk
                    .get(&Path::new(name).join("cacerts.yaml"))
                    .map(Vec::as_slice),
                c.secret_yaml.as_ref().map(|y| y.as_bytes()),
                "{name}/cacerts.yaml\n{}",
                ctx()
            );
        }
        assert!(
            store::leftovers(self.dir.path()).unwrap().is_empty(),
            "{}",
            ctx()
        );
        // The oracle judges every cluster that is not revoked, at the end.
        let k = self.checks.get();
        self.checks.set(k + 1);
        let mut copies = Vec::new();
        for name in self.mesh.clusters.keys() {
            if self.revoked.contains(name) {
                continue;
            }
            let to = oracle_stage().join(format!("{}-{k}", self.seed)).join(name);
            copy_dir(&self.dir.path().join(name), &to);
            copies.push((self.namespace, to, ctx()));
        }
        FOR_ORACLE.lock().unwrap().extend(copies);
    }

    fn pick_existing(&mut self) -> Option<String> {
        let names: Vec<&String> = self.mesh.clusters.keys().collect();
        if names.is_empty() {
            None
        } else {
            Some(names[self.rng.usize(..names.len())].clone())
        }
    }

    fn step(&mut self) {
        let mut before = snapshot(self.dir.path());
        let choice = self.rng.u8(..100);
        let result: Result<Mesh, String> = match choice {
            0..=29 => {
                let n = self.rng.usize(1..=2);
                let mut names: Vec<String> = Vec::new();
                for _ in 0..n {
                    let name = NAMES[self.rng.usize(..NAMES.len())].to_owned();
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                let force = self.rng.bool();
                self.log.push(format!("add {names:?} force={force}"));
                let ns = self.namespace;
                let new: Vec<NewCluster> = names
                    .iter()
                    .map(|n| new_cluster(&mut self.rng, n, ns))
                    .collect();
                let exists = names.iter().any(|n| self.mesh.clusters.contains_key(n));
                match self.mesh.add_clusters(&self.signer, new, force, NOW) {
                    Ok((m, _)) => {
                        assert!(
                            force || !exists,
                            "re-issue without force\n{}",
                            self.log.join("\n")
                        );
                        self.revoked.retain(|r| !names.contains(r));
                        Ok(m)
                    }
                    Err(e) => {
                        assert!(exists && !force, "{e}\n{}", self.log.join("\n"));
                        Err(e.to_string())
                    }
                }
            }
            30..=44 => match self.pick_existing() {
                Some(name) => {
                    self.log.push(format!("revoke {name}, then re-issue it"));
                    let (m, _) = self
                        .mesh
                        .revoke(&self.signer, &name, Reason::KeyCompromise, NOW, 30)
                        .unwrap();
                    // The revoked step, saved and checked before the re-issue.
                    if self.save(m).is_ok() {
                        self.revoked.push(name.clone());
                        self.check();
                    }
                    before = snapshot(self.dir.path());
                    let c = new_cluster(&mut self.rng, &name, self.namespace);
                    let (m, _) = self
                        .mesh
                        .add_clusters(&self.signer, vec![c], true, NOW)
                        .unwrap();
                    self.revoked.retain(|r| r != &name);
                    Ok(m)
                }
                None => Err("no cluster".into()),
            },
            45..=64 => {
                let mut names: Vec<String> = self
                    .mesh
                    .clusters
                    .keys()
                    .filter(|_| self.rng.bool())
                    .cloned()
                    .collect();
                let typo = self.rng.u8(..6) == 0;
                if typo {
                    names.push("nosuch".into());
                }
                self.log.push(format!("crl {names:?}"));
                match self.mesh.write_crls(&self.signer, &names, NOW, 30) {
                    Ok(m) => {
                        assert!(!typo);
                        Ok(m)
                    }
                    Err(e) => {
                        assert!(
                            typo && matches!(e, meshca::Error::UnknownCluster { .. }),
                            "{e}\n{}",
                            self.log.join("\n")
                        );
                        Err(e.to_string())
                    }
                }
            }
            65..=79 => match self.pick_existing() {
                Some(name) => {
                    let ns = "vm-ns";
                    self.log.push(format!("workload {ns} from {name}"));
                    let mut p = WorkloadParams::default();
                    p.key_type = KeyType::EcdsaP256;
                    let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
                    self.mesh
                        .add_workload(&name, ns, &p, key, true, NOW)
                        .map(|(m, _)| m)
                        .map_err(|e| e.to_string())
                }
                None => Err("no cluster".into()),
            },
            _ => {
                if self.mesh.clusters.is_empty() || !self.revoked.is_empty() {
                    Err("nothing to rotate".into())
                } else {
                    self.log.push("rotate, stage by stage".into());
                    self.rotate();
                    return;
                }
            }
        };
        let reissuing = std::mem::take(&mut self.reissuing);
        match result.and_then(|m| self.save(m)) {
            Ok(()) => self.revoked.retain(|r| !reissuing.contains(r)),
            Err(why) => {
                self.refused(&why);
                assert_same(&before, &snapshot(self.dir.path()), &self.log.join("\n"));
            }
        }
        self.check();
    }

    /// The three stages, applied to the directory one after another, each
    /// checked, and the step between them too; the mesh then belongs to
    /// the new root.
    fn rotate(&mut self) {
        let new_root = root(&mut self.rng);
        let clusters: Vec<String> = self.mesh.clusters.keys().cloned().collect();
        let types = self.mesh.key_types(&clusters).unwrap();
        let keys = types
            .iter()
            .map(|t| PrivateKey::generate(*t).unwrap())
            .collect();
        let stages = self
            .mesh
            .rotation(
                &new_root,
                None,
                &clusters,
                &IntermediateParams::default(),
                keys,
                NOW,
            )
            .unwrap();
        let mut prev = self.mesh.files();
        for (i, stage) in stages.into_iter().enumerate() {
            // Rotation stages need ISTIO_MULTIROOT_MESH=true on every istiod.
            let mut step_opts = opts(self.namespace);
            step_opts.multiroot = true;
            let step = meshca::verify_mesh_step("prev", &prev, "cur", &stage.files(), &step_opts);
            assert!(
                step.findings
                    .iter()
                    .all(|f| f.severity != meshca::Severity::Error),
                "stage {}: {:#?}\n{}",
                i + 1,
                step.findings,
                self.log.join("\n")
            );
            for (name, c) in &stage.clusters {
                let old = &self.mesh.clusters[name];
                assert_eq!(c.profile.key_type, old.profile.key_type, "{name}");
                assert_eq!(
                    c.bundle.ca_crl.is_some(),
                    old.bundle.ca_crl.is_some(),
                    "{name}"
                );
            }
            prev = stage.files();
            // The stage is applied in place: the root key stays with the
            // mesh's files until stage 3 hands over to the new root.
            let mut staged = stage;
            staged.extra = self.mesh.extra.clone();
            staged.root.as_mut().unwrap().key = if i == 2 {
                Some(new_root.key().to_pem())
            } else {
                self.mesh.root.as_ref().unwrap().key.clone()
            };
            self.save(staged).unwrap();
            self.log.push(format!("  stage {} applied", i + 1));
            self.check();
        }
        self.signer = new_root;
    }
}

#[test]
fn random_command_sequences_leave_a_mesh_that_verifies_or_change_nothing() {
    let sequences: u64 = std::env::var("MESHCA_MODEL_SEQUENCES")
        .ok()
        .map(|s| s.parse().expect("MESHCA_MODEL_SEQUENCES: a number"))
        .unwrap_or(500);
    let base: u64 = std::env::var("MESHCA_MODEL_SEED")
        .ok()
        .map(|s| s.parse().expect("MESHCA_MODEL_SEED: a number"))
        .unwrap_or_else(|| fastrand::u64(..));
    println!("model test: seed {base}, {sequences} sequences (MESHCA_MODEL_SEED={base} replays)");
    // Sequences are independent: run them on every core.
    use rayon::prelude::*;
    let steps: usize = (0..sequences)
        .into_par_iter()
        .map(|i| {
            let seed = base.wrapping_add(i);
            let result = std::panic::catch_unwind(|| {
                let mut w = World::new(seed);
                w.check();
                let n = w.rng.usize(3..=6);
                for _ in 0..n {
                    w.step();
                }
                n
            });
            match result {
                Ok(n) => n,
                Err(e) => {
                    eprintln!(
                        "model test failed: sequence seed {seed} \
                         (MESHCA_MODEL_SEED={seed} MESHCA_MODEL_SEQUENCES=1)"
                    );
                    std::panic::resume_unwind(e);
                }
            }
        })
        .sum();
    assert!(steps >= sequences as usize * 3);
    // The oracle, in one batch per istiod namespace.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/model-oracle");
    let bin = support::oracle::build(&target, "oracle");
    let at = (NOW + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let copies = std::mem::take(&mut *FOR_ORACLE.lock().unwrap());
    let mut judged = 0;
    for ns in NAMESPACES {
        let (dirs, logs): (Vec<PathBuf>, Vec<&String>) = copies
            .iter()
            .filter(|(n, _, _)| *n == ns)
            .map(|(_, d, log)| (d.clone(), log))
            .unzip();
        if dirs.is_empty() {
            continue;
        }
        let verdicts = support::oracle::run_with(&bin, &at, &["--namespace", ns], &dirs);
        for (v, log) in verdicts.iter().zip(&logs) {
            assert!(
                v.ok,
                "the oracle rejects {} ({}: {}); the sequence (its seed is the \
                 directory's first number):\n{log}",
                v.dir, v.stage, v.reason
            );
        }
        judged += verdicts.len();
    }
    println!("model test: the oracle accepted all {judged} cluster directories");
    assert!(
        judged >= sequences as usize,
        "only {judged} clusters judged"
    );
    if sequences >= 50 {
        assert!(
            ROLLED_BACK.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "no injected failure was exercised"
        );
    }
}
