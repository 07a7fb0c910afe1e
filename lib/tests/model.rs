//! Model-based test of the workflows and the store: random sequences of
//! commands (seeded; the seed is printed, `MESHCA_MODEL_SEED` replays one,
//! `MESHCA_MODEL_SEQUENCES` sets how many run, 500 by default), run on a
//! mesh in memory and saved to a directory whose saves fail at a random
//! operation now and then (renewals: at every operation in turn, then
//! saved). The commands: add clusters (`--force` re-issues), revoke then
//! re-issue, CRLs, workload certificates, rotation stage by stage, renewal
//! of intermediates (named clusters or `--within DAYS`, a new key or the
//! same) and renewal of the root. After every step:
//!
//! - the mesh verifies in memory, and the directory verifies on disk;
//! - the directory holds exactly the mesh's files;
//! - files the step did not target are byte-identical;
//! - a failed step (refused workflow or failed save) left the directory
//!   byte-identical;
//! - a renewal re-issued exactly the clusters the model expects (due by
//!   the validity the model tracks), kept every `root-cert.pem` byte for
//!   byte and every other cluster's files, and its step from the mesh
//!   before verifies as istiod reloads it without `ISTIO_MULTIROOT_MESH`;
//! - a root renewal kept the key, every intermediate and CRL, put the
//!   renewed root first in every `root-cert.pem`, and its step verifies
//!   with `ISTIO_MULTIROOT_MESH=true` (and is refused without);
//! - the Go oracle (istiod's loading, a workload leaf verified for
//!   serverAuth and clientAuth) accepts every cluster that is not revoked:
//!   each step's cluster directories are copied aside and judged in one
//!   batch at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshca::mesh::{Mesh, NewCluster, RenewKeys, RenewOptions};
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
/// Saves crashed at a random operation, then recovered.
static CRASHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Of those, the ones `recover` finished (the crash came after the record).
static FINISHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Renewals saved: intermediates (`renew`) and roots (`root --renew`).
static RENEWED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static ROOTS_RENEWED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Renewals selected by `--within` that renewed some clusters and not others.
static WITHIN_PARTIAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

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

/// How a save meets injected failures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Faults {
    /// Now and then, at a random operation.
    Random,
    /// At every operation in turn, then none.
    Every,
}

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
    /// Each cluster's intermediate validity in days, as the model knows
    /// it (everything is issued at NOW: its notAfter is NOW + days).
    days: BTreeMap<String, u32>,
    /// The validity of the clusters the step in progress issues.
    pending_days: Vec<(String, u32)>,
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
    // Short-lived intermediates now and then, for `renew --within`.
    p.days = [10, 30, 730][rng.usize(..3)];
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
            days: BTreeMap::new(),
            pending_days: Vec::new(),
            log: vec!["root".into()],
        };
        let mut w = w;
        w.save(mesh, Faults::Random).unwrap();
        w
    }

    /// Verifies `new` against the current mesh and saves it, with failures
    /// injected as `faults` says; checks all-or-nothing either way. `Err`:
    /// the verify-before-write check refused it (nothing written).
    fn save(&mut self, new: Mesh, faults: Faults) -> Result<(), String> {
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
        if faults == Faults::Every && !tx.is_empty() {
            // A failure at each operation in turn, every one rolled back,
            // until the fault lies past the last operation and the save
            // goes through.
            let mut n = 0;
            loop {
                let mut tx = plan(true).unwrap();
                tx.fail_at(n);
                if tx.commit().is_ok() {
                    break;
                }
                assert_same(
                    &before,
                    &snapshot(self.dir.path()),
                    &format!("a save failing at operation {n}\n{}", self.log.join("\n")),
                );
                ROLLED_BACK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                n += 1;
                assert!(
                    n <= ops + 10,
                    "more operations than expected\n{}",
                    self.log.join("\n")
                );
            }
            assert!(
                n > 0,
                "a save with a fault at its first operation went through"
            );
            self.log.push(format!(
                "  (saves failing at operations 0..{n} rolled back)"
            ));
            let after = snapshot(self.dir.path());
            let targets: Vec<PathBuf> = tx
                .paths()
                .map(|p| p.strip_prefix(self.dir.path()).unwrap().to_owned())
                .collect();
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
            return Ok(());
        }
        if ops > 0 && self.rng.u8(..8) == 0 {
            // A crash (SIGKILL) at a random operation, then what the next
            // command does: recover. The directory is the old mesh (once
            // the temporary files a crash before the commit record left
            // are removed) or exactly what the save writes.
            let mut tx = plan(true).unwrap();
            let n = self.rng.usize(..ops + 2);
            tx.crash_at(n);
            if tx.commit().is_err() {
                let recovered = store::recover(self.dir.path())
                    .unwrap_or_else(|e| panic!("recover: {e}\n{}", self.log.join("\n")));
                for f in store::leftovers(self.dir.path()).unwrap() {
                    // A file, or a new directory the save was writing whole.
                    if f.is_dir() {
                        std::fs::remove_dir_all(f).unwrap();
                    } else {
                        std::fs::remove_file(f).unwrap();
                    }
                }
                let now = snapshot(self.dir.path());
                if now == before {
                    assert!(recovered.is_none(), "{}", self.log.join("\n"));
                    self.log
                        .push(format!("  (crash at operation {n}: the old mesh)"));
                    CRASHED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    // What the save writes, made in a copy of the old files.
                    let copy = tempfile::tempdir().unwrap();
                    for (path, bytes) in &before {
                        let p = copy.path().join(path);
                        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                        std::fs::write(&p, bytes).unwrap();
                    }
                    let mut tx = Transaction::new();
                    tx.no_sync();
                    store::plan(&mut tx, copy.path(), Some(&self.mesh), &new, true).unwrap();
                    tx.commit().unwrap();
                    assert_same(
                        &snapshot(copy.path()),
                        &now,
                        &format!(
                            "a save crashed at operation {n}, recovered\n{}",
                            self.log.join("\n")
                        ),
                    );
                    assert!(
                        matches!(recovered, Some(store::Recovered::Finished { .. })),
                        "{}",
                        self.log.join("\n")
                    );
                    self.log
                        .push(format!("  (crash at operation {n}: finished by recover)"));
                    CRASHED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    FINISHED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.mesh = new;
                    self.report = report;
                    return Ok(());
                }
            } else {
                self.mesh = new;
                self.report = report;
                return Ok(());
            }
        }
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
            0..=24 => {
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
                let days: Vec<(String, u32)> = new
                    .iter()
                    .map(|c| (c.name.clone(), c.params.days))
                    .collect();
                let exists = names.iter().any(|n| self.mesh.clusters.contains_key(n));
                match self.mesh.add_clusters(&self.signer, new, force, NOW) {
                    Ok((m, _)) => {
                        self.pending_days = days;
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
            25..=36 => match self.pick_existing() {
                Some(name) => {
                    self.log.push(format!("revoke {name}, then re-issue it"));
                    let (m, _) = self
                        .mesh
                        .revoke(&self.signer, &name, Reason::KeyCompromise, NOW, 30)
                        .unwrap();
                    // The revoked step, saved and checked before the re-issue.
                    if self.save(m, Faults::Random).is_ok() {
                        self.revoked.push(name.clone());
                        self.check();
                    }
                    before = snapshot(self.dir.path());
                    let c = new_cluster(&mut self.rng, &name, self.namespace);
                    self.pending_days = vec![(name.clone(), c.params.days)];
                    let (m, _) = self
                        .mesh
                        .add_clusters(&self.signer, vec![c], true, NOW)
                        .unwrap();
                    self.revoked.retain(|r| r != &name);
                    Ok(m)
                }
                None => Err("no cluster".into()),
            },
            37..=51 => {
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
            52..=63 => match self.pick_existing() {
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
            64..=81 => {
                self.renew();
                return;
            }
            82..=90 => {
                self.renew_root();
                return;
            }
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
        let days = std::mem::take(&mut self.pending_days);
        match result.and_then(|m| self.save(m, Faults::Random)) {
            Ok(()) => {
                self.revoked.retain(|r| !reissuing.contains(r));
                self.days.extend(days);
            }
            Err(why) => {
                self.refused(&why);
                assert_same(&before, &snapshot(self.dir.path()), &self.log.join("\n"));
            }
        }
        self.check();
    }

    /// Whether `path` (relative to the certs directory) is in cluster
    /// `name`'s directory.
    fn in_cluster(path: &Path, names: &[String]) -> bool {
        path.components().count() == 2
            && path
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .is_some_and(|c| names.iter().any(|n| n == c))
    }

    /// The step from `prev` to the mesh now, as istiod reloads it.
    fn step_findings(&self, prev: &meshca::MeshFiles, multiroot: bool) -> Vec<meshca::Finding> {
        let mut o = opts(self.namespace);
        o.multiroot = multiroot;
        meshca::verify_mesh_step("prev", prev, "cur", &self.mesh.files(), &o).findings
    }

    /// `meshca renew [CLUSTER...] [--within DAYS] [--reuse-key] [--days N]`:
    /// the clusters due are those the model expects; every `root-cert.pem`
    /// and every cluster not renewed stays byte for byte; saved with a
    /// failure at every operation in turn; the step verifies without
    /// `ISTIO_MULTIROOT_MESH`.
    fn renew(&mut self) {
        let before = snapshot(self.dir.path());
        let prev = self.mesh.files();
        let existing: Vec<String> = self.mesh.clusters.keys().cloned().collect();
        let mut named: Vec<String> = existing
            .iter()
            .filter(|_| self.rng.u8(..3) == 0)
            .cloned()
            .collect();
        let typo = self.rng.u8(..10) == 0;
        if typo {
            named.push("nosuch".into());
        }
        if !named.is_empty() && self.rng.u8(..10) == 0 {
            let again = named[0].clone();
            named.push(again);
        }
        // `--within`: none, one past every cluster's end, or one cluster's
        // validity (due: that one and those as short-lived).
        let within = match self.rng.u8(..8) {
            0 => None,
            1 => Some(800),
            _ => Some(match existing.len() {
                0 => 10,
                n => self.days[&existing[self.rng.usize(..n)]],
            }),
        };
        let reuse = self.rng.bool();
        let days = [None, None, Some(30u32), Some(365)][self.rng.usize(..4)];
        self.log.push(format!(
            "renew {named:?} within={within:?} reuse-key={reuse} days={days:?}"
        ));
        let unchanged = |w: &mut World, why: &str| {
            w.refused(why);
            assert_same(&before, &snapshot(w.dir.path()), &w.log.join("\n"));
            w.check();
        };
        let due = match self.mesh.renewal_due(&named, within, NOW) {
            Ok(due) => {
                assert!(
                    !typo,
                    "an unknown cluster was accepted\n{}",
                    self.log.join("\n")
                );
                due
            }
            Err(e) => {
                assert!(
                    typo && matches!(e, meshca::Error::UnknownCluster { .. }),
                    "{e}\n{}",
                    self.log.join("\n")
                );
                return unchanged(self, &e.to_string());
            }
        };
        // The model's expectation: named clusters are a filter, and a
        // cluster is due when its intermediate ends within `within` days.
        let candidates = if named.is_empty() { &existing } else { &named };
        let expected: Vec<String> = candidates
            .iter()
            .filter(|n| within.is_none_or(|w| self.days[*n] <= w))
            .cloned()
            .collect();
        for d in &due {
            assert_eq!(
                d.not_after,
                NOW + time::Duration::days(i64::from(self.days[&d.name])),
                "{}\n{}",
                d.name,
                self.log.join("\n")
            );
        }
        let names: Vec<String> = due
            .iter()
            .filter(|d| d.due)
            .map(|d| d.name.clone())
            .collect();
        assert_eq!(names, expected, "clusters due\n{}", self.log.join("\n"));
        if names.is_empty() {
            return unchanged(self, "nothing due");
        }
        let candidates_len = candidates.len();
        let twice = names
            .iter()
            .enumerate()
            .any(|(i, n)| names[..i].contains(n));
        let keys = if reuse {
            RenewKeys::Reuse
        } else {
            match self.mesh.key_types(&names) {
                Ok(types) => RenewKeys::New(
                    types
                        .iter()
                        .map(|t| PrivateKey::generate(*t).unwrap())
                        .collect(),
                ),
                Err(e) => {
                    assert!(twice, "{e}\n{}", self.log.join("\n"));
                    return unchanged(self, &e.to_string());
                }
            }
        };
        let mut ro = RenewOptions::default();
        ro.days = days;
        let (new, renewed) = match self.mesh.renew(&self.signer, &names, keys, &ro, NOW) {
            Ok(r) => {
                assert!(
                    !twice,
                    "a cluster given twice was renewed\n{}",
                    self.log.join("\n")
                );
                r
            }
            Err(e) => {
                assert!(
                    twice && matches!(e, meshca::Error::InvalidArgument { .. }),
                    "{e}\n{}",
                    self.log.join("\n")
                );
                return unchanged(self, &e.to_string());
            }
        };
        // In memory: what renew says it did, and the rest unchanged.
        let ctx = self.log.join("\n");
        assert_eq!(
            renewed.iter().map(|r| &r.name).collect::<Vec<_>>(),
            names.iter().collect::<Vec<_>>(),
            "{ctx}"
        );
        for r in &renewed {
            let old = &self.mesh.clusters[&r.name];
            let want = days.unwrap_or(self.days[&r.name]);
            assert_eq!(r.days, want, "{}\n{ctx}", r.name);
            assert_eq!(r.not_after, NOW + time::Duration::days(i64::from(want)));
            assert_eq!(
                r.previous_not_after,
                NOW + time::Duration::days(i64::from(self.days[&r.name]))
            );
            assert!(!r.clamped, "{}\n{ctx}", r.name);
            assert_eq!(r.new_key, !reuse);
            assert_eq!(r.crl, old.bundle.ca_crl.is_some());
            assert_eq!(Some(r.key_type), old.profile.key_type, "{}\n{ctx}", r.name);
        }
        assert_eq!(new.root, self.mesh.root, "{ctx}");
        assert_eq!(new.root_crl, self.mesh.root_crl, "{ctx}");
        assert_eq!(new.extra, self.mesh.extra, "{ctx}");
        assert_eq!(
            new.clusters.keys().collect::<Vec<_>>(),
            self.mesh.clusters.keys().collect::<Vec<_>>()
        );
        for (name, c) in &new.clusters {
            let old = &self.mesh.clusters[name];
            if !names.contains(name) {
                assert_eq!(c, old, "{name} was not to be renewed\n{ctx}");
                continue;
            }
            assert_eq!(c.bundle.root_cert, old.bundle.root_cert, "{name}\n{ctx}");
            assert_ne!(c.bundle.ca_cert, old.bundle.ca_cert, "{name}\n{ctx}");
            assert_ne!(c.bundle.cert_chain, old.bundle.cert_chain, "{name}\n{ctx}");
            assert_eq!(c.bundle.ca_key == old.bundle.ca_key, reuse, "{name}\n{ctx}");
            assert_eq!(c.bundle.ca_crl.is_some(), old.bundle.ca_crl.is_some());
            assert_eq!(c.profile, old.profile, "{name}\n{ctx}");
            assert_eq!(c.secret_yaml.is_some(), old.secret_yaml.is_some());
        }
        if let Err(why) = self.save(new, Faults::Every) {
            return unchanged(self, &why);
        }
        // On disk: every root-cert.pem, the root's files and every cluster
        // not renewed, byte for byte.
        let after = snapshot(self.dir.path());
        for path in before.keys().chain(after.keys()) {
            let keep = path.file_name().is_some_and(|f| f == "root-cert.pem")
                || !World::in_cluster(path, &names);
            if keep {
                assert_eq!(
                    before.get(path),
                    after.get(path),
                    "{} changed\n{}",
                    path.display(),
                    self.log.join("\n")
                );
            }
        }
        for r in &renewed {
            self.days.insert(r.name.clone(), r.days);
        }
        RENEWED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if within.is_some() && candidates_len > names.len() {
            WITHIN_PARTIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.revoked.retain(|r| !names.contains(r));
        // The rollout step needs no ISTIO_MULTIROOT_MESH.
        let bad: Vec<String> = self
            .step_findings(&prev, false)
            .iter()
            .filter(|f| f.severity == meshca::Severity::Error)
            .map(|f| format!("{}: {}", f.code, f.message))
            .collect();
        assert!(
            bad.is_empty(),
            "the renewal step: {bad:#?}\n{}",
            self.log.join("\n")
        );
        self.check();
    }

    /// `meshca root --renew`: same key and subject, the renewed root first
    /// in every `root-cert.pem` and last in every `cert-chain.pem`,
    /// intermediates and CRLs unchanged; saved with a failure at every
    /// operation in turn; the step verifies with `ISTIO_MULTIROOT_MESH=true`
    /// only. The renewed certificate signs from then on.
    fn renew_root(&mut self) {
        let before = snapshot(self.dir.path());
        let prev = self.mesh.files();
        let days = [3650u32, 7300][self.rng.usize(..2)];
        self.log.push(format!("root --renew --days {days}"));
        let ctx = self.log.join("\n");
        if NOW + time::Duration::days(i64::from(days)) < self.signer.not_after() {
            // After a longer renewal: this one would shorten the root.
            let e = self.mesh.renew_root(&self.signer, days, NOW).unwrap_err();
            assert!(matches!(e, meshca::Error::Refused { .. }), "{e}\n{ctx}");
            self.refused(&e.to_string());
            assert_same(&before, &snapshot(self.dir.path()), &ctx);
            return self.check();
        }
        let (new, renewal) = self
            .mesh
            .renew_root(&self.signer, days, NOW)
            .unwrap_or_else(|e| panic!("{e}\n{ctx}"));
        assert_eq!(
            renewal.not_after,
            NOW + time::Duration::days(i64::from(days))
        );
        assert_eq!(renewal.previous_not_after, self.signer.not_after());
        assert_eq!(
            renewal.clusters,
            self.mesh.clusters.keys().cloned().collect::<Vec<_>>(),
            "{ctx}"
        );
        let certs = |what: &str, pem: &str| meshca::certificates(what, pem.as_bytes()).unwrap();
        let (old_root, new_root) = (self.mesh.root.as_ref().unwrap(), new.root.as_ref().unwrap());
        let mut want = vec![renewal.cert_der.clone()];
        want.extend(certs("old root", &old_root.cert));
        assert_eq!(certs("root", &new_root.cert), want, "root-cert.pem\n{ctx}");
        assert_eq!(new_root.key, old_root.key, "{ctx}");
        assert_eq!(new.root_crl, self.mesh.root_crl, "{ctx}");
        assert_eq!(new.extra, self.mesh.extra, "{ctx}");
        let signer_der = self.signer.cert_der().to_vec();
        for (name, c) in &new.clusters {
            let old = &self.mesh.clusters[name];
            assert_eq!(c.bundle.ca_cert, old.bundle.ca_cert, "{name}\n{ctx}");
            assert_eq!(c.bundle.ca_key, old.bundle.ca_key, "{name}\n{ctx}");
            assert_eq!(c.bundle.ca_crl, old.bundle.ca_crl, "{name}\n{ctx}");
            assert_eq!(c.profile, old.profile, "{name}\n{ctx}");
            let mut roots = vec![renewal.cert_der.clone()];
            roots.extend(certs("old", &old.bundle.root_cert));
            assert_eq!(certs(name, &c.bundle.root_cert), roots, "{name}\n{ctx}");
            let chain: Vec<Vec<u8>> = certs("old", &old.bundle.cert_chain)
                .into_iter()
                .map(|d| {
                    if d == signer_der {
                        renewal.cert_der.clone()
                    } else {
                        d
                    }
                })
                .collect();
            assert_eq!(certs(name, &c.bundle.cert_chain), chain, "{name}\n{ctx}");
        }
        self.save(new, Faults::Every)
            .unwrap_or_else(|e| panic!("a renewed root refused: {e}\n{ctx}"));
        // On disk: only root-cert.pem, cert-chain.pem and cacerts.yaml.
        let after = snapshot(self.dir.path());
        for path in before.keys().chain(after.keys()) {
            let may_change = ["root-cert.pem", "cert-chain.pem", "cacerts.yaml"]
                .iter()
                .any(|f| path.file_name().is_some_and(|n| n == *f))
                && (path.components().count() == 1
                    || self.mesh.clusters.contains_key(
                        path.components()
                            .next()
                            .unwrap()
                            .as_os_str()
                            .to_str()
                            .unwrap(),
                    ));
            if !may_change {
                assert_eq!(
                    before.get(path),
                    after.get(path),
                    "{} changed\n{}",
                    path.display(),
                    self.log.join("\n")
                );
            }
        }
        // The step: taken with ISTIO_MULTIROOT_MESH=true, ignored without.
        let bad: Vec<String> = self
            .step_findings(&prev, true)
            .iter()
            .filter(|f| f.severity == meshca::Severity::Error)
            .map(|f| format!("{}: {}", f.code, f.message))
            .collect();
        assert!(
            bad.is_empty(),
            "the root renewal step: {bad:#?}\n{}",
            self.log.join("\n")
        );
        if !self.mesh.clusters.is_empty() {
            assert!(
                self.step_findings(&prev, false)
                    .iter()
                    .any(|f| f.code == meshca::Code::RootChanged),
                "a changed root-cert.pem passed without --multiroot\n{}",
                self.log.join("\n")
            );
        }
        let key =
            PrivateKey::from_pem("root-key.pem", self.signer.key().to_pem().as_bytes()).unwrap();
        let root_pem = self.mesh.root.as_ref().unwrap().cert.clone();
        self.signer =
            RootCa::from_cert_and_key("root-cert.pem", root_pem.as_bytes(), "root-key.pem", key)
                .unwrap();
        assert_eq!(self.signer.cert_der(), renewal.cert_der.as_slice());
        ROOTS_RENEWED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
            self.save(staged, Faults::Random).unwrap();
            self.log.push(format!("  stage {} applied", i + 1));
            self.check();
        }
        self.signer = new_root;
        let days = IntermediateParams::default().days;
        for d in self.days.values_mut() {
            *d = days;
        }
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
    let count = |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "model test: {} saves rolled back at an injected failure, {} renewals ({} by --within \
         leaving some clusters alone), {} root renewals",
        count(&ROLLED_BACK),
        count(&RENEWED),
        count(&WITHIN_PARTIAL),
        count(&ROOTS_RENEWED)
    );
    // A few sequences in a hundred renew by --within with some clusters
    // due and others not.
    if sequences >= 500 {
        assert!(
            count(&WITHIN_PARTIAL) > 0,
            "--within never left a cluster alone"
        );
    }
    println!(
        "model test: {} saves crashed at a random operation and recovered ({} finished by recover)",
        count(&CRASHED),
        count(&FINISHED)
    );
    if sequences >= 50 {
        assert!(count(&CRASHED) > 0, "no crash was exercised");
        assert!(count(&FINISHED) > 0, "no crash came after a commit record");
        assert!(count(&ROLLED_BACK) > 0, "no injected failure was exercised");
        assert!(count(&RENEWED) > 0, "no renewal was saved");
        assert!(count(&ROOTS_RENEWED) > 0, "no root renewal was saved");
    }
}
