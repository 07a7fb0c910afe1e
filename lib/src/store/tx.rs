//! All-or-nothing saves and the directory lock.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tempfile::{NamedTempFile, TempDir, TempPath};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The lock file meshca holds in a certs directory while it changes it.
pub const LOCK_FILE: &str = ".meshca.lock";

/// An exclusive lock on a certs directory, held until dropped.
///
/// Like cargo's `util/flock.rs` and git's `index.lock`: a lock file in the
/// directory, locked with `flock(2)` (std's `File::lock`), so two meshca
/// runs on the same directory never interleave their reads and writes. The
/// kernel drops the lock when the process ends, even when it is killed:
/// there is no stale lock to clean up.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
    path: PathBuf,
}

impl DirLock {
    /// Locks `dir` (created if missing) exclusively. When another run holds
    /// the lock, `waiting` is called once with the lock file's path, then
    /// this blocks until the lock is free.
    pub fn acquire(dir: &Path, waiting: &dyn Fn(&Path)) -> Result<DirLock> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        let file = open_lock_file(&path, &mut options)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                waiting(&path);
                file.lock().map_err(|e| Error::io(&path, e))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        Ok(DirLock { _file: file, path })
    }

    /// A shared lock on `dir`, when it has a lock file (readers such as
    /// `verify` create nothing): held, it keeps a writer from renaming
    /// files while the directory is read, so a read sees one state.
    /// `waiting` is called when a writer holds the lock.
    pub fn shared(dir: &Path, waiting: &dyn Fn(&Path)) -> Result<Option<DirLock>> {
        let path = dir.join(LOCK_FILE);
        if fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let mut options = fs::OpenOptions::new();
        options.read(true);
        let file = open_lock_file(&path, &mut options)?;
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                waiting(&path);
                file.lock_shared().map_err(|e| Error::io(&path, e))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        Ok(Some(DirLock { _file: file, path }))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens a lock file without following a symbolic link or blocking on a
/// FIFO; anything but a regular file is refused.
fn open_lock_file(path: &Path, options: &mut fs::OpenOptions) -> Result<fs::File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        options.custom_flags(flags.bits() as i32);
    }
    let file = options.open(path).map_err(|e| {
        if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            Error::NotRegularFile {
                path: path.to_owned(),
                kind: "a symbolic link (not followed)",
            }
        } else {
            Error::io(path, e)
        }
    })?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::NotRegularFile {
            path: path.to_owned(),
            kind: crate::files::file_kind(&meta.file_type()),
        });
    }
    Ok(file)
}

/// What one file of a save becomes.
#[derive(Clone, PartialEq, Eq)]
enum Change {
    /// Written with these bytes (mode 0600 when `secret`, else 0644).
    Write {
        path: PathBuf,
        contents: Zeroizing<Vec<u8>>,
        secret: bool,
    },
    /// Removed.
    Remove { path: PathBuf },
}

impl Change {
    fn path(&self) -> &Path {
        match self {
            Change::Write { path, .. } | Change::Remove { path } => path,
        }
    }
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Write {
                path,
                contents,
                secret,
            } => write!(
                f,
                "write {} ({} bytes{})",
                path.display(),
                contents.len(),
                if *secret { ", secret" } else { "" }
            ),
            Change::Remove { path } => write!(f, "remove {}", path.display()),
        }
    }
}

/// A set of file changes applied all together or not at all.
///
/// [`Transaction::commit`] writes every new file to a temporary file
/// (`.meshca-*.tmp`, created 0600) in its target directory and flushes it
/// to disk; only when every one is written does it rename them over their
/// names, keeping a hard link to each file it replaces or removes (a
/// directory it makes is written whole under a temporary name,
/// `.meshca-*.tmp` beside it, and renamed into place). When anything
/// fails, the files already renamed are put back from those links,
/// the temporary files and the directories it created are removed, and the
/// directory is as it was, byte for byte. Between the writes and the
/// renames a commit record (see [`super::recover`]) is put on disk: a
/// crash before it leaves the old files and `.meshca-*.tmp` files
/// ([`leftovers`] finds them), a crash after it is finished by the next
/// run's [`super::recover`], and never a partial file or a mix.
#[derive(Debug, Default)]
pub struct Transaction {
    changes: Vec<Change>,
    fail_at: Option<usize>,
    no_sync: bool,
    /// Where the commit record goes (default: the deepest directory
    /// holding every change).
    journal_dir: Option<PathBuf>,
    /// Tests: the fault at `fail_at` is a crash (nothing undone, nothing
    /// cleaned up); `Some(k)`: the undoing after the fault stops, as a
    /// crash would, after `k` files.
    crash: Option<Crash>,
}

/// How a test crash happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Crash {
    /// At the failing operation.
    AtFault,
    /// While undoing, after this many files were put back.
    InRollback(usize),
}

/// The file operations of a commit, counted for fault injection (the
/// `n`-th one fails when `fail_at` is `Some(n)`).
struct Ops {
    done: usize,
    fail_at: Option<usize>,
}

fn injected(path: &Path) -> Error {
    Error::io(
        path,
        std::io::Error::other("injected failure (a test of the all-or-nothing save)"),
    )
}

/// One change, staged.
struct Staged<'a> {
    change: &'a Change,
    /// The written temporary file, closed (a save of 10,000 clusters
    /// would otherwise hold 50,000 descriptors open), removed on drop.
    tmp: Option<TempPath>,
    /// SHA-256 (hex) of the bytes written (what the target holds once
    /// renamed).
    sum: Option<String>,
    backup: Option<NamedTempFile<()>>,
    applied: bool,
    /// Written, under its own name, into a [`StagedDir`]: renamed with it.
    in_stage: bool,
}

/// A directory the save makes, written whole under a temporary name
/// (`.meshca-*.tmp`) beside its target, its files under their own names,
/// then renamed into place: one rename for the directory instead of one
/// per file, and no temporary name per file.
struct StagedDir<'a> {
    target: &'a Path,
    /// Removed with its files on drop, unless renamed.
    tmp: Option<TempDir>,
    applied: bool,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Transaction::default()
    }

    /// Adds a file to write (mode 0600 when `secret`).
    pub fn write(&mut self, path: impl Into<PathBuf>, contents: &[u8], secret: bool) {
        self.changes.push(Change::Write {
            path: path.into(),
            contents: Zeroizing::new(contents.to_vec()),
            secret,
        });
    }

    /// [`Transaction::write`] of each `(path, contents, secret)` in order,
    /// the bytes copied on all cores (a fleet's save is 50,000 files).
    pub fn write_all(&mut self, files: &[(PathBuf, &[u8], bool)]) {
        let changes: Vec<Change> = files
            .par_iter()
            .map(|(path, contents, secret)| Change::Write {
                path: path.clone(),
                contents: Zeroizing::new(contents.to_vec()),
                secret: *secret,
            })
            .collect();
        self.changes.extend(changes);
    }

    /// Adds a file to remove.
    pub fn remove(&mut self, path: impl Into<PathBuf>) {
        self.changes.push(Change::Remove { path: path.into() });
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The files written or removed, in order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.changes.iter().map(Change::path)
    }

    /// Makes the `n`-th file operation of [`Transaction::commit`] (0-based:
    /// temporary writes, links, renames) fail with an I/O error. For tests
    /// of the all-or-nothing guarantee.
    pub fn fail_at(&mut self, n: usize) {
        self.fail_at = Some(n);
    }

    /// Puts the commit record in `dir` (the certs directory the save is
    /// for, which [`super::recover`] is run on); every change must lie
    /// under it, else the deepest directory holding them all is used.
    pub fn journal_in(&mut self, dir: impl Into<PathBuf>) {
        self.journal_dir = Some(dir.into());
    }

    /// [`Transaction::journal_in`] unless a place was given already.
    pub(crate) fn journal_in_default(&mut self, dir: &Path) {
        if self.journal_dir.is_none() {
            self.journal_dir = Some(dir.to_owned());
        }
    }

    /// Makes the fault of [`Transaction::fail_at`] a crash: the commit
    /// stops there and leaves the disk as a killed process would, for
    /// [`super::recover`] to put right. For tests.
    #[doc(hidden)]
    pub fn crash_at(&mut self, n: usize) {
        self.fail_at = Some(n);
        self.crash = Some(Crash::AtFault);
    }

    /// Makes the undoing after the fault of [`Transaction::fail_at`] stop,
    /// as a crash would, after `k` files are put back. For tests.
    #[doc(hidden)]
    pub fn crash_in_rollback(&mut self, k: usize) {
        self.crash = Some(Crash::InRollback(k));
    }

    /// Skips flushing files and directories to disk: still all-or-nothing
    /// for other processes, but not across a power loss. For tests and
    /// scratch directories only.
    pub fn no_sync(&mut self) {
        self.no_sync = true;
    }

    /// Applies every change, or none (see [`Transaction`]).
    pub fn commit(self) -> Result<()> {
        self.commit_checked(|| Ok(()))
    }

    /// [`Transaction::commit`], with `check` deciding whether it goes on:
    /// once every file is written under its temporary name, `check` runs
    /// while they are flushed to disk (the wait for the disk is the longest
    /// part of a large save), and only if it succeeds is the commit point
    /// passed. If it fails, nothing is changed and its error is returned.
    /// A check of the new mesh before it is saved (verify before write)
    /// then shares the cores with the flush instead of running before
    /// every write.
    pub fn commit_checked<T>(self, check: impl FnOnce() -> Result<T>) -> Result<T> {
        let mut check = Some(check);
        let mut verdict: Option<T> = None;
        // Run once, at the commit point.
        let mut gate = || -> Result<()> {
            if let Some(check) = check.take() {
                verdict = Some(check()?);
            }
            Ok(())
        };
        self.commit_gated(&mut gate)?;
        // A commit that succeeds has passed its commit point, where the
        // check ran.
        verdict.ok_or_else(|| Error::Refused {
            what: "the save".into(),
            reason: "its check did not run".into(),
        })
    }

    fn commit_gated(self, gate: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        let mut ops = Ops {
            done: 0,
            fail_at: self.fail_at,
        };
        let mut created_dirs: Vec<PathBuf> = Vec::new();
        let mut staged: Vec<Staged<'_>> = Vec::with_capacity(self.changes.len());
        let mut stages: Vec<StagedDir<'_>> = Vec::new();
        let sync = if self.no_sync {
            Sync::Off
        } else if self.changes.len() >= BATCH_SYNC && cfg!(target_os = "linux") {
            Sync::Batch
        } else {
            Sync::PerFile
        };
        let journal_dir = self.record_dir();
        // The record of a save a crash interrupted is finished first
        // (`recover`): writing over it would orphan its files.
        super::journal::refuse_pending(&journal_dir)?;
        // The commit record once it is on disk (an undoing record lists
        // the same entries: the renames take the temporary files out of
        // `staged`).
        let mut recorded: Option<Vec<super::journal::Entry>> = None;
        let result = apply(
            &self.changes,
            &mut ops,
            &mut created_dirs,
            &mut staged,
            &mut stages,
            sync,
            &journal_dir,
            &mut recorded,
            gate,
        );
        let sync_on = sync != Sync::Off;
        if let Err(e) = result {
            if self.crash == Some(Crash::AtFault) {
                abandon(staged, stages);
                return Err(e);
            }
            if let Some(entries) = &recorded {
                // The renames have stopped: the undoing record says which
                // were done, so a crash while undoing is undone by
                // `recover`. If it cannot be written, nothing is undone:
                // the commit record stays and `recover` finishes the save.
                let undo: Vec<super::journal::Entry> = entries
                    .iter()
                    .zip(applied_flags(&staged, &stages))
                    .map(|(e, applied)| super::journal::Entry {
                        applied,
                        ..e.clone()
                    })
                    .collect();
                if let Err(w) = super::journal::write(
                    &journal_dir,
                    super::journal::State::Abort,
                    &undo,
                    sync_on,
                ) {
                    abandon(staged, stages);
                    return Err(Error::Refused {
                        what: journal_dir.display().to_string(),
                        reason: format!(
                            "a save failed half-way ({e}) and its undoing could not be recorded ({w}): run `meshca recover --dir {}` to finish it",
                            journal_dir.display()
                        ),
                    });
                }
            }
            if let Some(Crash::InRollback(k)) = self.crash {
                rollback_partly(staged, stages, k);
                return Err(e);
            }
            let dirs: Vec<PathBuf> = changed_dirs(&staged, &stages, &created_dirs)
                .into_iter()
                .map(Path::to_owned)
                .collect();
            let undone = rollback(staged, stages, &created_dirs);
            if recorded.is_some() {
                // Put back for good, then the record goes; an undoing that
                // did not complete keeps it, for `recover`.
                let flushed = !sync_on
                    || dirs
                        .iter()
                        .filter(|d| d.exists())
                        .all(|d| sync_dir(d).is_ok());
                if undone && flushed {
                    let _ = super::journal::remove(&journal_dir, sync_on);
                }
            }
            return Err(e);
        }
        // The links to the replaced files go first, then each directory
        // whose entries changed is flushed once (a new directory also
        // needs its own entry in its parent flushed): one fsync per
        // directory, or one flush of each file system for a large batch.
        let dirs: Vec<PathBuf> = changed_dirs(&staged, &stages, &created_dirs)
            .into_iter()
            .map(Path::to_owned)
            .collect();
        drop(staged);
        drop(stages);
        let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
        // Every file is renamed: a failure now is not a failed save.
        if let Err(e) = flush(sync, &dirs) {
            return Err(match e {
                Error::Io { path, source } => Error::NotFlushed { path, source },
                other => other,
            });
        }
        // The save is complete. A record that cannot be removed changes
        // nothing (every temporary file and link is gone) and the next
        // command's `recover` removes it.
        if recorded.is_some() {
            let _ = super::journal::remove(&journal_dir, sync_on);
        }
        Ok(())
    }

    /// The directory of the commit record.
    fn record_dir(&self) -> PathBuf {
        if let Some(d) = self
            .journal_dir
            .as_ref()
            .filter(|d| !d.as_os_str().is_empty())
        {
            let under =
                |p: &Path| p.starts_with(d) || (d.as_path() == Path::new(".") && p.is_relative());
            if self.changes.iter().all(|c| under(c.path())) {
                return d.clone();
            }
        }
        let mut common: Option<PathBuf> = None;
        for c in &self.changes {
            let dir = parent_dir(c.path());
            common = Some(match common {
                None => dir.to_owned(),
                Some(mut a) => {
                    while !dir.starts_with(&a) {
                        if !a.pop() {
                            break;
                        }
                    }
                    a
                }
            });
        }
        match common {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => PathBuf::from("."),
        }
    }
}

/// Whether each change of the record was done, in the record's order
/// (see [`record_entries`]).
fn applied_flags(staged: &[Staged<'_>], stages: &[StagedDir<'_>]) -> Vec<bool> {
    staged
        .iter()
        .filter(|s| !s.in_stage)
        .map(|s| s.applied)
        .chain(stages.iter().map(|d| d.applied))
        .collect()
}

/// The record of `staged` (but the files of staged directories), then of
/// each staged directory; paths relative to `dir`.
fn record_entries(
    staged: &[Staged<'_>],
    stages: &[StagedDir<'_>],
    dir: &Path,
) -> Vec<super::journal::Entry> {
    let rel = |p: &Path| {
        p.strip_prefix(dir)
            .or_else(|_| p.strip_prefix(Path::new(".").join(dir)))
            .unwrap_or(p)
            .to_owned()
    };
    // A temporary file and a link sit beside their target (tempfile may
    // have made their paths absolute): named from the target's directory.
    let beside = |target: &Path, other: &Path| -> PathBuf {
        let name = other.file_name().map(PathBuf::from).unwrap_or_default();
        match target.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => parent.join(name),
            None => name,
        }
    };
    let files = staged.iter().filter(|s| !s.in_stage).map(|s| {
        let target = rel(s.change.path());
        super::journal::Entry {
            tmp: s.tmp.as_ref().map(|t| beside(&target, t)),
            backup: s.backup.as_ref().map(|b| beside(&target, b.path())),
            target,
            sum: s.sum.clone(),
            applied: false,
            dir: false,
        }
    });
    let dirs = stages.iter().map(|d| {
        let target = rel(d.target);
        super::journal::Entry {
            tmp: d.tmp.as_ref().map(|t| beside(&target, t.path())),
            backup: None,
            target,
            sum: None,
            applied: false,
            dir: true,
        }
    });
    files.chain(dirs).collect()
}

/// Tests: leaves every temporary file, directory and link on disk, as a
/// crash would.
fn abandon(staged: Vec<Staged<'_>>, stages: Vec<StagedDir<'_>>) {
    for s in staged {
        if let Some(t) = s.tmp {
            let _ = t.keep();
        }
        if let Some(b) = s.backup {
            let _ = b.into_temp_path().keep();
        }
    }
    for d in stages {
        if let Some(t) = d.tmp {
            let _ = t.keep();
        }
    }
}

/// Tests: undoes the first `k` applied changes (newest first), then stops
/// as a crash would.
fn rollback_partly(staged: Vec<Staged<'_>>, mut stages: Vec<StagedDir<'_>>, k: usize) {
    let mut undone = 0;
    // The directories first (rollback undoes them first too).
    for d in stages.iter_mut().rev() {
        if d.applied && undone < k {
            undone += 1;
            if let Some(t) = &mut d.tmp {
                if fs::rename(d.target, t.path()).is_ok() {
                    t.disable_cleanup(false);
                }
            }
            d.applied = false;
        }
    }
    let mut rest = Vec::new();
    for s in staged.into_iter().rev() {
        if s.applied && undone < k {
            undone += 1;
            let path = s.change.path().to_owned();
            match s.backup {
                Some(backup) => {
                    let _ = backup.persist(&path);
                }
                None => {
                    let _ = fs::remove_file(&path);
                }
            }
            if let Some(t) = s.tmp {
                let _ = t.keep();
            }
        } else {
            rest.push(s);
        }
    }
    abandon(rest, stages);
}

// Every `&mut` is state the caller needs after a failure, to undo it.
#[allow(clippy::too_many_arguments)]
fn apply<'a>(
    changes: &'a [Change],
    ops: &mut Ops,
    created_dirs: &mut Vec<PathBuf>,
    staged: &mut Vec<Staged<'a>>,
    stages: &mut Vec<StagedDir<'a>>,
    sync: Sync,
    journal_dir: &Path,
    recorded: &mut Option<Vec<super::journal::Entry>>,
    gate: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    // 1. Every new file goes to a temporary file beside its target. The
    // missing ancestors of the target directories are made first, in
    // order; then each target directory, on all cores, is made if missing
    // and its files written and flushed (each write is one counted
    // operation, numbered in the order of `changes` whatever thread runs
    // it). Making a directory and writing its files in one job keeps the
    // threads from all making directories in the same parent at once,
    // where they wait on its lock.
    let mut n_writes = 0usize;
    let mut ops_of: Vec<Option<usize>> = Vec::with_capacity(changes.len());
    let mut groups: Vec<(&Path, Vec<usize>)> = Vec::new();
    let mut group_of: std::collections::HashMap<&Path, usize> = std::collections::HashMap::new();
    for (i, change) in changes.iter().enumerate() {
        match change {
            Change::Write { path, .. } => {
                let dir = parent_dir(path);
                let g = *group_of.entry(dir).or_insert_with(|| {
                    groups.push((dir, Vec::new()));
                    groups.len() - 1
                });
                if let Some((_, members)) = groups.get_mut(g) {
                    members.push(i);
                }
                ops_of.push(Some(ops.done + n_writes));
                n_writes += 1;
            }
            Change::Remove { .. } => ops_of.push(None),
        }
    }
    let mut ancestors: BTreeSet<&Path> = BTreeSet::new();
    for (dir, _) in &groups {
        if let Some(p) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            if ancestors.insert(p) {
                create_dirs(p, created_dirs)?;
            }
        }
    }
    let fail_at = ops.fail_at;
    let chmod = umask_clears_0644();
    type GroupDone = (Result<Made>, Vec<(usize, Result<Written>)>);
    let done: Vec<GroupDone> = groups
        .par_iter()
        .map(|(dir, members)| {
            // A directory the save makes (not the record's own) is written
            // under a temporary name and renamed whole.
            if *dir != journal_dir && is_missing(dir) {
                return write_staged_dir(dir, members, changes, &ops_of, fail_at, sync, chmod);
            }
            let made = make_dir(dir, *dir == journal_dir).map(|made| {
                if made {
                    Made::Created
                } else {
                    Made::Existing
                }
            });
            if made.is_err() {
                return (made, Vec::new());
            }
            let files = members
                .iter()
                .filter_map(|&i| {
                    let Some(Change::Write {
                        path,
                        contents,
                        secret,
                    }) = changes.get(i)
                    else {
                        return None;
                    };
                    let op = ops_of.get(i).copied().flatten();
                    let w = if op.is_some() && op == fail_at {
                        Err(injected(path))
                    } else {
                        write_temp(dir, contents, *secret, sync == Sync::PerFile)
                            .map(|(t, sum)| (Some(t), sum))
                    };
                    Some((i, w))
                })
                .collect();
            (made, files)
        })
        .collect();
    ops.done += n_writes;
    // Which directories were made (a failure removes them), which files
    // are known not to exist yet (those of a directory just made), and the
    // first error in the order of `changes`.
    let mut written: Vec<Option<Result<Written>>> = (0..changes.len()).map(|_| None).collect();
    let mut fresh = vec![false; changes.len()];
    let mut in_stage = vec![false; changes.len()];
    let mut dir_err: Option<(usize, Error)> = None;
    for ((dir, members), (made, files)) in groups.iter().zip(done) {
        match made {
            Ok(made) => {
                let (is_new, staged_dir) = match made {
                    Made::Existing => (false, false),
                    Made::Created => {
                        created_dirs.push(dir.to_path_buf());
                        (true, false)
                    }
                    Made::Staged(tmp) => {
                        stages.push(StagedDir {
                            target: dir,
                            tmp: Some(tmp),
                            applied: false,
                        });
                        (true, true)
                    }
                };
                for (i, w) in files {
                    if let Some(slot) = written.get_mut(i) {
                        *slot = Some(w);
                    }
                    if let Some(f) = fresh.get_mut(i) {
                        *f = is_new;
                    }
                    if let Some(f) = in_stage.get_mut(i) {
                        *f = staged_dir;
                    }
                }
            }
            Err(e) => {
                let first = members.first().copied().unwrap_or(0);
                if dir_err.as_ref().is_none_or(|(at, _)| first < *at) {
                    dir_err = Some((first, e));
                }
            }
        }
    }
    // Every temporary file is kept in `staged` (so a failure removes them
    // all), then the first error in order is returned.
    let mut first_err = None;
    for (i, (change, tmp)) in changes.iter().zip(written).enumerate() {
        if dir_err.as_ref().is_some_and(|(at, _)| *at == i) {
            if let Some((_, e)) = dir_err.take() {
                first_err.get_or_insert(e);
            }
        }
        let (tmp, sum) = match tmp {
            Some(Ok((t, sum))) => (t, sum),
            None => (None, None),
            Some(Err(e)) => {
                first_err.get_or_insert(e);
                (None, None)
            }
        };
        staged.push(Staged {
            change,
            tmp,
            sum,
            backup: None,
            applied: false,
            in_stage: in_stage.get(i).copied().unwrap_or(false),
        });
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    // 2. A hard link keeps every file about to be replaced or removed.
    // On all cores: each existing file's link is one counted operation,
    // numbered in the order of `changes`; the first failure in that order
    // is returned, after every link made is kept in `staged`.
    let exists: Vec<Result<bool>> = staged
        .par_iter()
        .zip(fresh.par_iter())
        .map(|(s, fresh)| {
            if *fresh {
                return Ok(false);
            }
            let path = s.change.path();
            match fs::symlink_metadata(path) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(Error::io(path, e)),
            }
        })
        .collect();
    let mut numbered = Vec::with_capacity(exists.len());
    for e in exists {
        let op = if e? {
            let n = ops.done;
            ops.done += 1;
            Some(n)
        } else {
            None
        };
        numbered.push(op);
    }
    let backups: Vec<Result<Option<NamedTempFile<()>>>> = staged
        .par_iter()
        .zip(numbered.par_iter())
        .map(|(s, op)| {
            let Some(op) = *op else { return Ok(None) };
            let path = s.change.path();
            if Some(op) == fail_at {
                return Err(injected(path));
            }
            tempfile::Builder::new()
                .prefix(".meshca-")
                .suffix(".tmp")
                .make_in(parent_dir(path), |p| fs::hard_link(path, p))
                .map(Some)
                .map_err(|e| Error::io(path, e))
        })
        .collect();
    let mut first_err = None;
    for (s, b) in staged.iter_mut().zip(backups) {
        match b {
            Ok(b) => s.backup = b,
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    // The commit point. First every temporary file (its bytes were
    // flushed when written, per file, or are now with the file system),
    // every link and every new directory is on disk: each directory whose
    // entries changed is flushed, or each file system once. Then the
    // record (one counted operation). From here a crash is finished by
    // `recover`. The gate (the caller's check) runs meanwhile, on this
    // thread, while another waits for the disk; its refusal comes first.
    let dirs: Vec<&Path> = changed_dirs(staged, stages, created_dirs);
    if sync == Sync::Off {
        gate()?;
    } else {
        std::thread::scope(|s| {
            let flushing = s.spawn(|| flush(sync, &dirs));
            let verdict = gate();
            let flushed = flushing
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            verdict.and(flushed)
        })?;
    }
    let entries = record_entries(staged, stages, journal_dir);
    if let Some(bad) = entries.iter().find(|e| {
        !super::journal::inside(&e.target)
            || !e.tmp.as_deref().is_none_or(super::journal::inside)
            || !e.backup.as_deref().is_none_or(super::journal::inside)
    }) {
        return Err(Error::Refused {
            what: bad.target.display().to_string(),
            reason: format!(
                "is not inside {}, where the save's record goes",
                journal_dir.display()
            ),
        });
    }
    if Some(ops.done) == fail_at {
        return Err(injected(&journal_dir.join(super::journal::JOURNAL)));
    }
    ops.done += 1;
    super::journal::write(
        journal_dir,
        super::journal::State::Commit,
        &entries,
        sync != Sync::Off,
    )?;
    *recorded = Some(entries);
    // 3. Rename (or remove) every file, on all cores: one counted operation
    // each, numbered in order; `applied` marks what rollback must undo.
    let base = ops.done;
    ops.done += staged.len();
    let results: Vec<Result<()>> = staged
        .par_iter_mut()
        .enumerate()
        .map(|(i, s)| {
            let path = s.change.path();
            if Some(base + i) == fail_at {
                return Err(injected(path));
            }
            match s.tmp.take() {
                Some(tmp) => {
                    let persisted = if s.backup.is_some() {
                        tmp.persist(path)
                    } else {
                        tmp.persist_noclobber(path)
                    };
                    match persisted {
                        Ok(_) => {
                            s.applied = true;
                            Ok(())
                        }
                        Err(e) => Err(if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                            Error::AlreadyExists {
                                path: path.to_owned(),
                            }
                        } else {
                            Error::io(path, e.error)
                        }),
                    }
                }
                None => {
                    if s.backup.is_some() {
                        fs::remove_file(path).map_err(|e| Error::io(path, e))?;
                        s.applied = true;
                    }
                    Ok(())
                }
            }
        })
        .collect();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    // Then every staged directory, on all cores, one counted operation
    // each; never over a directory someone made meanwhile.
    let base = ops.done;
    ops.done += stages.len();
    let results: Vec<Result<()>> = stages
        .par_iter_mut()
        .enumerate()
        .map(|(j, d)| {
            if Some(base + j) == fail_at {
                return Err(injected(d.target));
            }
            let Some(tmp) = d.tmp.as_mut() else {
                return Ok(());
            };
            rename_noreplace(tmp.path(), d.target)?;
            // Renamed: its temporary name is gone, nothing to clean up.
            tmp.disable_cleanup(true);
            d.applied = true;
            Ok(())
        })
        .collect();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(())
}

/// How a save's target directory came to be there.
enum Made {
    /// It was there.
    Existing,
    /// The save made it (removed again if the save fails).
    Created,
    /// The save wrote it under this temporary name, to rename it whole.
    Staged(TempDir),
}

/// Whether nothing (not even a dangling link) is at `dir`.
fn is_missing(dir: &Path) -> bool {
    !dir.as_os_str().is_empty()
        && matches!(fs::symlink_metadata(dir), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// Writes the files of a directory the save makes into a new temporary
/// directory beside it, each under its own name (a counted operation each,
/// as [`write_temp`] is).
fn write_staged_dir(
    dir: &Path,
    members: &[usize],
    changes: &[Change],
    ops_of: &[Option<usize>],
    fail_at: Option<usize>,
    sync: Sync,
    chmod: bool,
) -> (Result<Made>, Vec<(usize, Result<Written>)>) {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".meshca-").suffix(".tmp");
    // The mode a directory made with mkdir gets (0777 less the umask), not
    // tempfile's 0700.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o777));
    }
    let tmp = match builder.tempdir_in(parent_dir(dir)) {
        Ok(t) => t,
        Err(e) => return (Err(Error::io(dir, e)), Vec::new()),
    };
    let files = members
        .iter()
        .filter_map(|&i| {
            let Some(Change::Write {
                path,
                contents,
                secret,
            }) = changes.get(i)
            else {
                return None;
            };
            let op = ops_of.get(i).copied().flatten();
            let w = if op.is_some() && op == fail_at {
                Err(injected(path))
            } else {
                match path.file_name() {
                    Some(name) => write_new(
                        &tmp.path().join(name),
                        contents,
                        *secret,
                        sync == Sync::PerFile,
                        chmod,
                    )
                    .map(|sum| (None, Some(sum))),
                    None => Err(Error::io(
                        path,
                        std::io::Error::other("a file name is needed"),
                    )),
                }
            };
            Some((i, w))
        })
        .collect();
    (Ok(Made::Staged(tmp)), files)
}

/// Whether the process's umask takes a bit of 0644 away, so that a file
/// made 0644 needs a `chmod` to be 0644. Read from `/proc/self/status`
/// (reading it with umask(2) would change it for every thread a moment);
/// `true` when it cannot be read.
fn umask_clears_0644() -> bool {
    #[cfg(target_os = "linux")]
    {
        let mask = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        });
        mask.is_none_or(|m| m & 0o644 != 0)
    }
    #[cfg(not(target_os = "linux"))]
    true
}

/// Writes a new file (never one that is there: `create_new`), mode 0600
/// when `secret`, else 0644 (set again with `chmod` when `chmod`, as the
/// umask may take bits away); flushed when `sync`. Returns the SHA-256
/// (hex) of its bytes.
fn write_new(
    path: &Path,
    contents: &[u8],
    secret: bool,
    sync: bool,
    chmod: bool,
) -> Result<String> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let _ = (secret, chmod);
    let mut file = options.open(path).map_err(|e| Error::io(path, e))?;
    #[cfg(unix)]
    if !secret && chmod {
        // 0644 whatever the umask, as every file meshca writes.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(path, e))?;
    }
    file.write_all(contents).map_err(|e| Error::io(path, e))?;
    if sync {
        file.sync_all().map_err(|e| Error::io(path, e))?;
    }
    Ok(super::journal::sum(contents))
}

/// Renames `from` to `to`, failing if anything is at `to` (a directory
/// rename would otherwise replace an empty directory).
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE).map_err(|e| {
            if e == rustix::io::Errno::EXIST {
                Error::AlreadyExists {
                    path: to.to_owned(),
                }
            } else {
                Error::io(to, e.into())
            }
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        if fs::symlink_metadata(to).is_ok() {
            return Err(Error::AlreadyExists {
                path: to.to_owned(),
            });
        }
        fs::rename(from, to).map_err(|e| Error::io(to, e))
    }
}

/// Every directory whose entries a save changes: those of its files and
/// the ones it made, with their parents.
fn changed_dirs<'p>(
    staged: &'p [Staged<'_>],
    stages: &'p [StagedDir<'_>],
    created: &'p [PathBuf],
) -> Vec<&'p Path> {
    // Sorted by bytes, not by `Path`'s component order: the order does not
    // matter here, and comparing components was a tenth of a fleet's save.
    let mut dirs: Vec<&Path> =
        Vec::with_capacity(staged.len() + 2 * created.len() + 2 * stages.len());
    dirs.extend(
        staged
            .iter()
            .filter(|s| !s.in_stage)
            .map(|s| parent_dir(s.change.path())),
    );
    // A staged directory's entries (before it is renamed; after, the
    // target's), and its parent's.
    for d in stages {
        dirs.push(parent_dir(d.target));
        match &d.tmp {
            Some(t) if !d.applied => dirs.push(t.path()),
            _ => dirs.push(d.target),
        }
    }
    for d in created {
        dirs.push(parent_dir(d));
        dirs.push(d.as_path());
    }
    dirs.sort_unstable_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    dirs.dedup();
    dirs
}

/// Undoes what `apply` did, newest first. Best effort: every step is
/// tried; `false` when a file could not be put back.
fn rollback(staged: Vec<Staged<'_>>, stages: Vec<StagedDir<'_>>, created_dirs: &[PathBuf]) -> bool {
    let mut ok = true;
    // A directory renamed into place goes back under its temporary name,
    // and is removed with its files on drop.
    for mut d in stages.into_iter().rev() {
        if d.applied {
            ok &= d.tmp.as_mut().is_some_and(|t| {
                let back = fs::rename(d.target, t.path()).is_ok();
                t.disable_cleanup(!back);
                back
            });
        }
    }
    for s in staged.into_iter().rev() {
        let path = s.change.path();
        if s.applied {
            ok &= match s.backup {
                Some(backup) => backup.persist(path).is_ok(),
                None => fs::remove_file(path).is_ok(),
            };
        }
        // Unrenamed temporary files and unused links are removed on drop.
    }
    for dir in created_dirs.iter().rev() {
        let _ = fs::remove_dir(dir);
    }
    ok
}

/// A file written: its temporary file (none when written under its own
/// name in a staged directory), with the SHA-256 (hex) of its bytes.
type Written = (Option<TempPath>, Option<String>);

fn write_temp(
    dir: &Path,
    contents: &[u8],
    secret: bool,
    sync: bool,
) -> Result<(TempPath, Option<String>)> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".meshca-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(contents)
        .map_err(|e| Error::io(tmp.path(), e))?;
    #[cfg(unix)]
    if !secret {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(tmp.path(), e))?;
    }
    let _ = secret;
    if sync {
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(tmp.path(), e))?;
    }
    Ok((tmp.into_temp_path(), Some(super::journal::sum(contents))))
}

/// Makes `dir` if it is missing: `true` when this made it. A directory
/// inside the save's own (a cluster's) that is a symbolic link is refused
/// unless `follow` (the directory the operator named): files written
/// through it would land outside the certs directory, and loading skips it.
fn make_dir(dir: &Path, follow: bool) -> Result<bool> {
    if dir.as_os_str().is_empty() {
        return Ok(false);
    }
    if !follow && fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::NotRegularFile {
            path: dir.to_owned(),
            kind: "a symbolic link (not followed)",
        });
    }
    if dir.exists() {
        return Ok(false);
    }
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Creates `dir` and its missing ancestors, remembering each one made.
fn create_dirs(dir: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_owned());
        cur = d.parent();
    }
    for d in missing.into_iter().rev() {
        match fs::create_dir(&d) {
            Ok(()) => created.push(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(&d, e)),
        }
    }
    Ok(())
}

pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// How a commit gets its changes to disk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sync {
    /// Not at all (tests, scratch directories).
    Off,
    /// `fsync` of every file before the renames, then of every changed
    /// directory.
    PerFile,
    /// `syncfs` of each file system involved before the renames, and again
    /// after them: the same guarantee as [`Sync::PerFile`], with two flushes
    /// instead of one per file and directory.
    Batch,
}

/// From this many changes a commit flushes whole file systems
/// ([`Sync::Batch`]) rather than each file: thousands of `fsync` calls
/// (a rotation of 1,000 clusters writes 15,000 files) each wait for the
/// disk, two `syncfs` calls wait twice.
const BATCH_SYNC: usize = 64;

/// Puts the entries of `dirs` on disk as `sync` says: each directory, or
/// each file system once.
fn flush(sync: Sync, dirs: &[&Path]) -> Result<()> {
    match sync {
        Sync::Off => Ok(()),
        Sync::PerFile => dirs.par_iter().try_for_each(|d| sync_dir(d)),
        Sync::Batch => sync_filesystems(dirs),
    }
}

/// `syncfs(2)` once per file system holding one of `dirs`.
fn sync_filesystems(dirs: &[&Path]) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        // The device of each directory, then one flush per device in
        // order. On this thread alone (a fleet's save changes 10,000
        // directories, a few milliseconds): the commit's check runs on
        // all cores meanwhile, and would hold back jobs given to them.
        let mut devices = BTreeSet::new();
        for dir in dirs {
            let dev = fs::metadata(dir).map_err(|e| Error::io(dir, e))?.dev();
            if devices.insert(dev) {
                let d = fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
                rustix::fs::syncfs(&d).map_err(|e| Error::io(dir, e.into()))?;
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    for dir in dirs {
        sync_dir(dir)?;
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
        d.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    let _ = dir;
    Ok(())
}

/// Whether a file name is one of meshca's temporary files.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(".meshca-") && name.ends_with(".tmp")
}

/// The `.meshca-*.tmp` files and directories under `dir` (in it and in its
/// sub-directories, two levels deep: cluster directories and rotation
/// stages): what an interrupted run left. They may hold private keys.
pub fn leftovers(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    scan(dir, 2, &mut out)?;
    out.sort();
    Ok(out)
}

fn scan(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut subdirs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Ok(ft) = entry.file_type() else { continue };
        let temp = is_temp_name(&name.to_string_lossy());
        if ft.is_dir() && !temp {
            if depth > 0 {
                subdirs.push(entry.path());
            }
        } else if temp {
            // A file, or a directory a save was writing whole.
            out.push(entry.path());
        }
    }
    // The cluster directories on all cores: a fleet has 10,000 of them,
    // and this runs before every command.
    let found: Vec<Result<Vec<PathBuf>>> = subdirs
        .par_iter()
        .map(|d| {
            let mut found = Vec::new();
            scan(d, depth - 1, &mut found).map(|()| found)
        })
        .collect();
    for f in found {
        out.extend(f?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        use std::os::unix::fs::PermissionsExt;
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                let meta = fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    out.insert(p.clone(), (Vec::new(), meta.permissions().mode()));
                    stack.push(p);
                } else {
                    out.insert(
                        p.clone(),
                        (fs::read(&p).unwrap(), meta.permissions().mode()),
                    );
                }
            }
        }
        out
    }

    /// Every file under `dir` but meshca's temporary files, by relative path.
    fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        snapshot(dir)
            .into_iter()
            .map(|(p, v)| (p.strip_prefix(dir).unwrap().to_owned(), v))
            .filter(|(p, (_, mode))| {
                // Not in a temporary file, nor in a directory a save was
                // writing whole.
                mode & 0o170000 != 0o040000
                    && !p
                        .components()
                        .any(|c| is_temp_name(&c.as_os_str().to_string_lossy()))
            })
            .map(|(p, (b, _))| (p, b))
            .collect()
    }

    fn crash_case() -> (tempfile::TempDir, impl Fn(&Path) -> Transaction) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.pem"), "old a").unwrap();
        fs::create_dir(dir.path().join("c1")).unwrap();
        fs::write(dir.path().join("c1/k.pem"), "old key").unwrap();
        fs::write(dir.path().join("gone.pem"), "to remove").unwrap();
        let build = |d: &Path| {
            let mut tx = Transaction::new();
            tx.journal_in(d);
            tx.write(d.join("a.pem"), b"new a", false);
            tx.write(d.join("c1/k.pem"), b"new key", true);
            tx.write(d.join("c2/deep/b.pem"), b"new b", false);
            tx.remove(d.join("gone.pem"));
            tx
        };
        (dir, build)
    }

    #[test]
    fn a_crash_at_any_step_is_finished_or_undone_by_recover() {
        let (done, build) = crash_case();
        let before = files(done.path());
        build(done.path()).commit().unwrap();
        let after = files(done.path());
        assert_ne!(before, after);
        // Operations 0..=6 come before the commit record is on disk
        // (3 writes, 3 links, the record itself); then 4 renames or
        // removals (c2/deep/b.pem's is nothing: c2/deep is new, written
        // whole under a temporary name) and the rename of c2/deep.
        for n in 0..12 {
            let (dir, build) = crash_case();
            let mut tx = build(dir.path());
            tx.crash_at(n);
            assert!(tx.commit().is_err());
            let recovered = super::super::recover(dir.path()).unwrap();
            let now = files(dir.path());
            if n <= 6 {
                assert_eq!(recovered, None, "crash at {n}");
                assert_eq!(now, before, "crash at {n}: the old files");
            } else {
                assert_eq!(
                    recovered,
                    Some(super::super::Recovered::Finished { files: 4 }),
                    "crash at {n}"
                );
                assert_eq!(now, after, "crash at {n}: the save finished");
                assert!(leftovers(dir.path()).unwrap().is_empty(), "crash at {n}");
            }
            // A second recovery has nothing to do.
            assert_eq!(super::super::recover(dir.path()).unwrap(), None);
        }
        // A failure in the renames whose undoing is cut short by a crash:
        // recover finishes the undoing.
        for n in 7..12 {
            for k in 0..4 {
                let (dir, build) = crash_case();
                let mut tx = build(dir.path());
                tx.fail_at(n);
                tx.crash_in_rollback(k);
                assert!(tx.commit().is_err());
                let recovered = super::super::recover(dir.path()).unwrap();
                assert_eq!(
                    recovered,
                    Some(super::super::Recovered::Undone { files: 4 }),
                    "fault at {n}, crash after {k} undone"
                );
                assert_eq!(files(dir.path()), before, "fault at {n}, crash after {k}");
                assert!(leftovers(dir.path()).unwrap().is_empty());
            }
        }
    }

    #[test]
    fn recover_refuses_when_a_new_file_of_the_save_was_removed() {
        // Crash at the first rename (operation 7, a.pem's): the other renames of
        // the parallel phase went through, that one's temporary file is
        // still there. Remove it, as an operator told "remove temporary
        // files" would: the save cannot be finished, nothing is touched.
        let (dir, build) = crash_case();
        let mut tx = build(dir.path());
        tx.crash_at(7);
        assert!(tx.commit().is_err());
        let pending: Vec<PathBuf> = leftovers(dir.path())
            .unwrap()
            .into_iter()
            .filter(|p| p.file_name().unwrap() != super::super::journal::JOURNAL)
            .collect();
        let a_tmp = pending
            .iter()
            .find(|p| p.parent() == Some(dir.path()) && fs::read(p).unwrap() == b"new a");
        // Operation 7 is a.pem's own rename: its temporary file is there.
        let a_tmp = a_tmp.expect("a.pem's temporary file");
        fs::remove_file(a_tmp).unwrap();
        let before = snapshot(dir.path());
        let err = super::super::recover(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cannot be finished"), "{err}");
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn a_new_directory_is_written_whole_and_renamed_into_place() {
        use std::os::unix::fs::PermissionsExt;
        let build = |d: &Path| {
            let mut tx = Transaction::new();
            tx.journal_in(d);
            tx.write(d.join("new/ca-key.pem"), b"key", true);
            tx.write(d.join("new/ca-cert.pem"), b"cert", false);
            tx
        };
        // Written under a temporary name (the leftover a crash before the
        // record leaves, which verify reports), then renamed: same modes
        // as a directory made with mkdir.
        let dir = tempfile::tempdir().unwrap();
        let mut tx = build(dir.path());
        tx.crash_at(2); // the commit record
        assert!(tx.commit().is_err());
        let found = leftovers(dir.path()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].is_dir());
        assert_eq!(fs::read(found[0].join("ca-key.pem")).unwrap(), b"key");
        assert!(!dir.path().join("new").exists());
        fs::remove_dir_all(&found[0]).unwrap();
        build(dir.path()).commit().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        fs::create_dir(dir.path().join("by-mkdir")).unwrap();
        assert_eq!(
            mode(&dir.path().join("new")),
            mode(&dir.path().join("by-mkdir"))
        );
        assert_eq!(mode(&dir.path().join("new/ca-key.pem")), 0o600);
        assert_eq!(mode(&dir.path().join("new/ca-cert.pem")), 0o644);
        assert!(leftovers(dir.path()).unwrap().is_empty());

        // A directory that is there is written into, file by file.
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("new")).unwrap();
        build(dir.path()).commit().unwrap();
        assert_eq!(fs::read(dir.path().join("new/ca-key.pem")).unwrap(), b"key");
        // One made at the target while a save runs (even an empty one) is
        // never replaced by the staged directory's rename.
        let staged = dir.path().join(".meshca-x.tmp");
        fs::create_dir(&staged).unwrap();
        fs::create_dir(dir.path().join("empty")).unwrap();
        let err = rename_noreplace(&staged, &dir.path().join("empty")).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        assert!(staged.is_dir());

        // After the record, the staged directory removed by hand: recover
        // refuses and touches nothing.
        let dir = tempfile::tempdir().unwrap();
        let mut tx = build(dir.path());
        tx.crash_at(3); // the rename of new/ca-key.pem (nothing: it is staged)
        assert!(tx.commit().is_err());
        let pending: Vec<PathBuf> = leftovers(dir.path())
            .unwrap()
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        assert_eq!(pending.len(), 1);
        fs::remove_dir_all(&pending[0]).unwrap();
        let before = snapshot(dir.path());
        let err = super::super::recover(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cannot be finished"), "{err}");
        assert_eq!(snapshot(dir.path()), before);

        // Two new directories; the second one's rename fails and the
        // undoing stops at once, as a crash would: recover renames the
        // first one back out and removes both.
        for k in 0..2 {
            let dir = tempfile::tempdir().unwrap();
            let mut tx = build(dir.path());
            tx.write(dir.path().join("other/ca-key.pem"), b"key 2", true);
            tx.write(dir.path().join("other/ca-cert.pem"), b"cert 2", false);
            // 4 writes, the record (4), 4 renames of staged files (5..=8),
            // the two directories (9, 10).
            tx.fail_at(10);
            tx.crash_in_rollback(k);
            assert!(tx.commit().is_err());
            let recovered = super::super::recover(dir.path()).unwrap();
            assert_eq!(
                recovered,
                Some(super::super::Recovered::Undone { files: 2 }),
                "crash after {k} undone"
            );
            assert!(files(dir.path()).is_empty(), "crash after {k} undone");
            assert!(leftovers(dir.path()).unwrap().is_empty());
            assert!(!dir.path().join("new").exists() && !dir.path().join("other").exists());
        }
    }

    #[test]
    fn a_record_of_relative_paths_names_files_beside_their_targets() {
        // tempfile makes a relative directory absolute: the record still
        // holds paths relative to its own directory.
        let (dir, _) = crash_case();
        let rel = Path::new("c1/k.pem");
        let abs = dir.path().join(rel);
        let change = Change::Write {
            path: abs.clone(),
            contents: Zeroizing::new(b"x".to_vec()),
            secret: true,
        };
        let tmp = tempfile::Builder::new()
            .prefix(".meshca-")
            .suffix(".tmp")
            .tempfile_in(dir.path().join("c1"))
            .unwrap()
            .into_temp_path();
        let staged = vec![Staged {
            change: &change,
            tmp: Some(tmp),
            sum: None,
            backup: None,
            applied: false,
            in_stage: false,
        }];
        let entries = record_entries(&staged, &[], dir.path());
        assert_eq!(entries[0].target, rel);
        let t = entries[0].tmp.as_ref().unwrap();
        assert!(super::super::journal::inside(t), "{}", t.display());
        assert!(t.starts_with("c1"));
        let mut tx = Transaction::new();
        tx.journal_in(".");
        tx.write("c3/a.pem", b"a", false);
        assert_eq!(tx.record_dir(), Path::new("."));
    }

    #[test]
    fn a_failure_at_any_step_leaves_the_directory_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.pem"), "old a").unwrap();
        fs::create_dir(dir.path().join("c1")).unwrap();
        fs::write(dir.path().join("c1/k.pem"), "old key").unwrap();
        fs::write(dir.path().join("gone.pem"), "to remove").unwrap();
        let build = || {
            let mut tx = Transaction::new();
            tx.write(dir.path().join("a.pem"), b"new a", false);
            tx.write(dir.path().join("c1/k.pem"), b"new key", true);
            tx.write(dir.path().join("c2/deep/b.pem"), b"new b", false);
            tx.remove(dir.path().join("gone.pem"));
            tx
        };
        let before = snapshot(dir.path());
        // 3 writes + 3 links + the commit record + 4 renames/removals + the
        // rename of the new directory c2/deep = 12 operations.
        for n in 0..12 {
            let mut tx = build();
            tx.fail_at(n);
            let err = tx.commit().unwrap_err().to_string();
            assert!(err.contains("injected failure"), "step {n}: {err}");
            assert_eq!(snapshot(dir.path()), before, "step {n} left changes");
        }
        build().commit().unwrap();
        assert_eq!(fs::read(dir.path().join("a.pem")).unwrap(), b"new a");
        assert_eq!(
            fs::read(dir.path().join("c2/deep/b.pem")).unwrap(),
            b"new b"
        );
        assert!(!dir.path().join("gone.pem").exists());
        assert!(leftovers(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn a_large_batch_synced_per_file_system_is_still_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("c0")).unwrap();
        fs::write(dir.path().join("c0/f0.pem"), "old").unwrap();
        let n = BATCH_SYNC + 6;
        let build = || {
            let mut tx = Transaction::new();
            for i in 0..n {
                let p = dir.path().join(format!("c{}/f{}.pem", i / 5, i % 5));
                tx.write(p, format!("new {i}").as_bytes(), i % 5 == 1);
            }
            tx
        };
        let before = snapshot(dir.path());
        // n temp writes, 1 link (c0/f0.pem), n renames.
        // Then one rename per new directory (c1..): the 4th and the last.
        let new_dirs = n.div_ceil(5) - 1;
        for at in [
            0,
            1,
            n / 2,
            n - 1,
            n,
            n + 1,
            n + n / 2,
            2 * n,
            2 * n + 5,
            2 * n + 1 + new_dirs,
        ] {
            let mut tx = build();
            tx.fail_at(at);
            let err = tx.commit().unwrap_err().to_string();
            assert!(err.contains("injected failure"), "step {at}: {err}");
            assert_eq!(snapshot(dir.path()), before, "step {at} left changes");
        }
        build().commit().unwrap();
        for i in 0..n {
            let p = dir.path().join(format!("c{}/f{}.pem", i / 5, i % 5));
            assert_eq!(fs::read(&p).unwrap(), format!("new {i}").as_bytes());
        }
        assert!(leftovers(dir.path()).unwrap().is_empty());
    }

    /// The check of [`Transaction::commit_checked`] runs when every file
    /// is written under a temporary name and nothing is renamed yet; if it
    /// fails, nothing changes and its error is the commit's.
    #[test]
    fn a_commit_goes_on_only_if_its_check_passes() {
        for n in [3, BATCH_SYNC + 6] {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join("c0")).unwrap();
            fs::write(dir.path().join("c0/f0.pem"), "old").unwrap();
            let build = || {
                let mut tx = Transaction::new();
                for i in 0..n {
                    let p = dir.path().join(format!("c{}/f{}.pem", i / 5, i % 5));
                    tx.write(p, format!("new {i}").as_bytes(), false);
                }
                tx
            };
            let before = files(dir.path());
            let seen_while_checking = |what: &str| {
                // The targets are as they were; the new bytes wait in
                // temporary files.
                assert_eq!(files(dir.path()), before, "{n}: {what}");
                assert!(!leftovers(dir.path()).unwrap().is_empty(), "{n}: {what}");
            };
            let snap = snapshot(dir.path());
            let err = build()
                .commit_checked(|| -> Result<()> {
                    seen_while_checking("refused");
                    Err(Error::WouldNotVerify {
                        errors: vec!["refused by the check".into()],
                    })
                })
                .unwrap_err();
            assert!(
                matches!(&err, Error::WouldNotVerify { errors } if errors[0] == "refused by the check"),
                "{n}: {err}"
            );
            assert_eq!(
                snapshot(dir.path()),
                snap,
                "{n}: a refused commit left changes"
            );
            let got = build()
                .commit_checked(|| {
                    seen_while_checking("passed");
                    Ok(n)
                })
                .unwrap();
            assert_eq!(got, n);
            for i in 0..n {
                let p = dir.path().join(format!("c{}/f{}.pem", i / 5, i % 5));
                assert_eq!(fs::read(&p).unwrap(), format!("new {i}").as_bytes());
            }
            assert!(leftovers(dir.path()).unwrap().is_empty());
        }
    }

    #[test]
    fn keys_are_0600_and_other_files_0644() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("sub/k.pem");
        let c = dir.path().join("sub/c.pem");
        let mut tx = Transaction::new();
        tx.write(&k, b"k", true);
        tx.write(&c, b"c", false);
        tx.commit().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&k), 0o600);
        assert_eq!(mode(&c), 0o644);
    }

    #[test]
    fn leftover_temporary_files_are_found() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("c1")).unwrap();
        fs::write(dir.path().join("c1/.meshca-abc.tmp"), "key").unwrap();
        fs::write(dir.path().join("c1/ca-key.pem"), "key").unwrap();
        assert_eq!(
            leftovers(dir.path()).unwrap(),
            [dir.path().join("c1/.meshca-abc.tmp")]
        );
    }

    #[test]
    fn a_second_lock_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), &|_| panic!("no wait expected")).unwrap();
        let waited = std::sync::atomic::AtomicBool::new(false);
        let read_waited = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                DirLock::acquire(dir.path(), &|p| {
                    assert!(p.ends_with(LOCK_FILE));
                    waited.store(true, std::sync::atomic::Ordering::SeqCst);
                })
                .unwrap()
            });
            while !waited.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            drop(first);
            let second = h.join().unwrap();
            assert!(second.path().ends_with(LOCK_FILE));
            // A reader waits for the writer too.
            let r = s.spawn(|| {
                DirLock::shared(dir.path(), &|_| {
                    read_waited.store(true, std::sync::atomic::Ordering::SeqCst)
                })
                .unwrap()
                .is_some()
            });
            while !read_waited.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            drop(second);
            assert!(r.join().unwrap());
        });
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_file_that_is_a_symlink_or_fifo_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, dir.path().join(LOCK_FILE)).unwrap();
        let err = DirLock::acquire(dir.path(), &|_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(!target.exists(), "the link was followed");
        let d2 = tempfile::tempdir().unwrap();
        assert!(DirLock::shared(d2.path(), &|_| {}).unwrap().is_none());
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            d2.path().join(LOCK_FILE),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let err = DirLock::shared(d2.path(), &|_| {}).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(err.contains("FIFO"), "{err}");
    }

    #[test]
    fn a_lock_file_that_is_a_directory_said_not_a_regular_file_twice() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(LOCK_FILE)).unwrap();
        let err = DirLock::shared(dir.path(), &|_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a directory, not a regular file"), "{err}");
        assert_eq!(err.matches("not a regular file").count(), 1, "{err}");
    }
}
