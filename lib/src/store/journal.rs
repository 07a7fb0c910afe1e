//! The commit record of a save, so a save cut short by a crash (SIGKILL,
//! power loss, Ctrl-C) is finished or undone by the next run, never left
//! half-renamed.
//!
//! A [`super::Transaction`] writes every new file to a temporary file and
//! keeps a hard link to every file it replaces or removes; both are on
//! disk before this record is. The record lists, for each change, the
//! temporary file, the target and the link, and says `commit`: from the
//! moment it is on disk the save counts as done, and [`recover`] finishes
//! the renames a crash stopped. A save that fails in the middle rewrites
//! the record to say `abort` before it puts the old files back, so a crash
//! while undoing is undone by [`recover`] too. The record goes when the
//! save (or its undoing) is complete.
//!
//! Paths are relative to the directory the record sits in, each written as
//! the hex of its bytes (any file name survives), one change per line.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The record's file name: a `.meshca-*.tmp` name, so [`super::leftovers`]
/// (and `meshca verify`) report one a crash left.
pub const JOURNAL: &str = ".meshca-journal.tmp";
const NEXT: &str = ".meshca-journal-next.tmp";
const MAGIC: &str = "meshca-journal 1";

/// What the record says the save is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Done: every rename is to be carried out.
    Commit,
    /// Failed: every file is to be put back as it was.
    Abort,
}

/// One change of the save, paths relative to the record's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The temporary file holding the new bytes (`None`: a removal).
    pub(crate) tmp: Option<PathBuf>,
    /// The file changed.
    pub(crate) target: PathBuf,
    /// The hard link to the file replaced or removed (`None`: a new file).
    pub(crate) backup: Option<PathBuf>,
    /// SHA-256 of the new bytes (hex): after the rename the target has
    /// them, so a temporary file that is gone is told from one already
    /// renamed (in the directory or in a copy of it).
    pub(crate) sum: Option<String>,
    /// In an `abort` record: the rename (or removal) was done, so it is
    /// what is to be undone.
    pub(crate) applied: bool,
    /// A directory the save made, written whole under the temporary name
    /// `tmp` and renamed to `target` (written `dir` in the sum's place).
    pub(crate) dir: bool,
}

/// What [`recover`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recovered {
    /// An interrupted save was finished: the directory holds what it wrote.
    Finished {
        /// Files the save changed.
        files: usize,
    },
    /// An interrupted failed save was undone: the directory is as before it.
    Undone {
        /// Files the save would have changed.
        files: usize,
    },
}

#[cfg(unix)]
fn to_hex(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    data_encoding::HEXLOWER.encode(p.as_os_str().as_bytes())
}

#[cfg(not(unix))]
fn to_hex(p: &Path) -> String {
    data_encoding::HEXLOWER.encode(p.to_string_lossy().as_bytes())
}

fn from_hex(s: &str) -> Option<PathBuf> {
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(s.as_bytes())
        .ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)))
    }
    #[cfg(not(unix))]
    {
        String::from_utf8(bytes).ok().map(PathBuf::from)
    }
}

fn opt_hex(p: Option<&Path>) -> String {
    p.map_or_else(|| "-".to_owned(), to_hex)
}

fn opt_from_hex(s: &str) -> Option<Option<PathBuf>> {
    if s == "-" {
        Some(None)
    } else {
        from_hex(s).map(Some)
    }
}

/// Whether `p` names something inside the record's directory (relative,
/// no `..`, no `.`).
pub(crate) fn inside(p: &Path) -> bool {
    p.is_relative()
        && p.components().next().is_some()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// The largest record read (a save of 10,000 clusters writes one of about
/// 7 MB).
const MAX_RECORD_BYTES: usize = 256 << 20;

fn encode(state: State, entries: &[Entry]) -> String {
    let mut out = String::new();
    out.push_str(MAGIC);
    out.push('\n');
    out.push_str(match state {
        State::Commit => "commit\n",
        State::Abort => "abort\n",
    });
    for e in entries {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "{} {} {} {} {}",
            opt_hex(e.tmp.as_deref()),
            to_hex(&e.target),
            opt_hex(e.backup.as_deref()),
            if e.dir {
                "dir"
            } else {
                e.sum.as_deref().unwrap_or("-")
            },
            u8::from(e.applied)
        );
    }
    out.push_str("end\n");
    out
}

fn decode(path: &Path, text: &str) -> Result<(State, Vec<Entry>)> {
    let bad = || {
        Error::Refused {
        what: path.display().to_string(),
        reason: "is not a save record meshca can read: remove it after checking the directory with `meshca verify`".into(),
    }
    };
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(bad());
    }
    let state = match lines.next() {
        Some("commit") => State::Commit,
        Some("abort") => State::Abort,
        _ => return Err(bad()),
    };
    let mut entries = Vec::new();
    let mut ended = false;
    for line in lines {
        if line == "end" {
            ended = true;
            break;
        }
        let parts: Vec<&str> = line.split(' ').collect();
        let [tmp, target, backup, sum, applied] = parts.as_slice() else {
            return Err(bad());
        };
        let entry = Entry {
            tmp: opt_from_hex(tmp).ok_or_else(bad)?,
            target: from_hex(target).ok_or_else(bad)?,
            backup: opt_from_hex(backup).ok_or_else(bad)?,
            dir: *sum == "dir",
            sum: match *sum {
                "-" | "dir" => None,
                h if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Some(h.to_owned())
                }
                _ => return Err(bad()),
            },
            applied: match *applied {
                "0" => false,
                "1" => true,
                _ => return Err(bad()),
            },
        };
        // Every path stays inside the record's directory; a directory is
        // renamed from a temporary name and replaces nothing.
        if entry.dir && (entry.tmp.is_none() || entry.backup.is_some()) {
            return Err(bad());
        }
        if !inside(&entry.target)
            || !entry.tmp.as_deref().is_none_or(inside)
            || !entry.backup.as_deref().is_none_or(inside)
        {
            return Err(bad());
        }
        entries.push(entry);
    }
    if !ended {
        return Err(bad());
    }
    Ok((state, entries))
}

/// Writes the record into `dir` (atomically: a temporary file renamed over
/// it), flushed to disk with its directory when `sync`.
pub(crate) fn write(dir: &Path, state: State, entries: &[Entry], sync: bool) -> Result<()> {
    let next = dir.join(NEXT);
    let path = dir.join(JOURNAL);
    {
        // A stale one goes first; the new one is made, never opened (a
        // link planted there is not followed).
        match fs::remove_file(&next) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&next, e)),
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&next)
            .map_err(|e| Error::io(&next, e))?;
        f.write_all(encode(state, entries).as_bytes())
            .map_err(|e| Error::io(&next, e))?;
        if sync {
            f.sync_all().map_err(|e| Error::io(&next, e))?;
        }
    }
    fs::rename(&next, &path).map_err(|e| Error::io(&path, e))?;
    if sync {
        super::tx::sync_dir(dir)?;
    }
    Ok(())
}

/// Removes the record from `dir` (flushed when `sync`).
pub(crate) fn remove(dir: &Path, sync: bool) -> Result<()> {
    let path = dir.join(JOURNAL);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&path, e)),
    }
    if sync {
        super::tx::sync_dir(dir)?;
    }
    Ok(())
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// A directory, not a link to one.
fn is_real_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// SHA-256 (hex) of the file at `p`, if it is a readable regular file.
fn sum_of(p: &Path) -> Option<String> {
    let bytes = crate::files::read_capped(p, MAX_RECORD_BYTES).ok()?;
    Some(sum(&bytes))
}

/// SHA-256 (hex) of `bytes`.
pub(crate) fn sum(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// Whether `dir` holds the record of an interrupted save.
pub fn pending(dir: &Path) -> bool {
    exists(&dir.join(JOURNAL))
}

/// Refuses to read `dir` (or a rotation stage, `dir` in a directory) while
/// a save of it is half-way: the files are a mix of two meshes until
/// [`recover`] runs.
pub(crate) fn refuse_pending(dir: &Path) -> Result<()> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    for d in std::iter::once(dir).chain(parent) {
        if pending(d) {
            return Err(Error::Refused {
                what: d.join(JOURNAL).display().to_string(),
                reason: format!(
                    "a save of {} was interrupted half-way (some files new, some old): run `meshca recover --dir {}` first",
                    d.display(),
                    d.display()
                ),
            });
        }
    }
    Ok(())
}

/// Finishes or undoes the save a crash interrupted in `dir`, if its record
/// is there (call it holding the directory's lock, before reading the
/// mesh). Every step can be repeated: a crash while recovering is
/// recovered by the next call.
pub fn recover(dir: &Path) -> Result<Option<Recovered>> {
    let path = dir.join(JOURNAL);
    let bytes = match crate::files::read_capped(&path, MAX_RECORD_BYTES) {
        Ok(b) => b,
        Err(Error::MissingFile { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::Refused {
        what: path.display().to_string(),
        reason: "is not a save record meshca can read".into(),
    })?;
    let (state, entries) = decode(&path, text)?;
    let io = |p: &Path, e: std::io::Error| Error::io(p, e);
    if state == State::Commit {
        // Every new file is there: in its temporary file, or already
        // renamed (the target has the temporary file's inode). A temporary
        // file someone removed cannot be put back: refuse, change nothing.
        for e in &entries {
            let Some(tmp) = &e.tmp else { continue };
            let target = dir.join(&e.target);
            let renamed = if e.dir {
                is_real_dir(&target)
            } else {
                e.sum.is_some() && sum_of(&target) == e.sum
            };
            if !exists(&dir.join(tmp)) && !renamed {
                return Err(Error::Refused {
                    what: path.display().to_string(),
                    reason: format!(
                        "the new {} of this interrupted save is gone (its temporary file was removed): the save cannot be finished; restore {} from a copy",
                        target.display(),
                        dir.display()
                    ),
                });
            }
        }
    }
    match state {
        State::Commit => {
            for e in &entries {
                let target = dir.join(&e.target);
                match &e.tmp {
                    Some(tmp) => {
                        let tmp = dir.join(tmp);
                        if e.dir {
                            if is_real_dir(&tmp) {
                                super::tx::rename_noreplace(&tmp, &target)?;
                            }
                        } else if exists(&tmp) {
                            fs::rename(&tmp, &target).map_err(|err| io(&target, err))?;
                        }
                    }
                    None => {
                        // A removal not yet done: the old file is still there
                        // and so is its link (a save whose undoing finished
                        // has neither link nor temporary file left, so a
                        // record it could not remove changes nothing).
                        if e.backup.as_ref().is_some_and(|b| exists(&dir.join(b)))
                            && exists(&target)
                        {
                            fs::remove_file(&target).map_err(|err| io(&target, err))?;
                        }
                    }
                }
            }
        }
        State::Abort => {
            // Only what the save did is undone (it had stopped renaming
            // when the record was written).
            for e in entries.iter().filter(|e| e.applied) {
                let target = dir.join(&e.target);
                if let (true, Some(tmp)) = (e.dir, &e.tmp) {
                    // A directory renamed into place goes back under its
                    // temporary name (removed below).
                    let tmp = dir.join(tmp);
                    if is_real_dir(&target) && !exists(&tmp) {
                        super::tx::rename_noreplace(&target, &tmp)?;
                    }
                    continue;
                }
                match &e.backup {
                    Some(b) => {
                        let b = dir.join(b);
                        if exists(&b) {
                            fs::rename(&b, &target).map_err(|err| io(&target, err))?;
                        }
                    }
                    None => {
                        // A new file, removed again: only the save's own
                        // (the bytes it wrote).
                        if e.sum.is_some() && sum_of(&target) == e.sum {
                            fs::remove_file(&target).map_err(|err| io(&target, err))?;
                        }
                    }
                }
            }
        }
    }
    // What is left of the save: its temporary files, directories and links.
    for e in &entries {
        for p in [&e.tmp, &e.backup].into_iter().flatten() {
            let p = dir.join(p);
            if e.dir && e.tmp.as_deref().is_some_and(|t| dir.join(t) == p) {
                if is_real_dir(&p) {
                    fs::remove_dir_all(&p).map_err(|err| io(&p, err))?;
                }
            } else if exists(&p) {
                fs::remove_file(&p).map_err(|err| io(&p, err))?;
            }
        }
    }
    let dirs: std::collections::BTreeSet<PathBuf> = entries
        .iter()
        .map(|e| super::tx::parent_dir(&dir.join(&e.target)).to_owned())
        .collect();
    for d in &dirs {
        if d.exists() {
            super::tx::sync_dir(d)?;
        }
    }
    remove(dir, true)?;
    let files = entries.len();
    Ok(Some(match state {
        State::Commit => Recovered::Finished { files },
        State::Abort => Recovered::Undone { files },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_refuses_paths_that_leave_its_directory() {
        let entries = vec![
            Entry {
                tmp: Some("c1/.meshca-a.tmp".into()),
                target: "c1/ca-key.pem".into(),
                backup: None,
                sum: Some("ab".repeat(32)),
                applied: true,
                dir: false,
            },
            Entry {
                tmp: None,
                target: "c1/ca-crl.pem".into(),
                backup: Some("c1/.meshca-b.tmp".into()),
                sum: None,
                applied: false,
                dir: false,
            },
            Entry {
                tmp: Some(".meshca-c.tmp".into()),
                target: "c2".into(),
                backup: None,
                sum: None,
                applied: true,
                dir: true,
            },
        ];
        let text = encode(State::Commit, &entries);
        let p = Path::new("x");
        assert_eq!(decode(p, &text).unwrap(), (State::Commit, entries.clone()));
        assert!(decode(p, text.trim_end_matches("end\n")).is_err(), "torn");
        let evil = encode(
            State::Commit,
            &[Entry {
                tmp: None,
                target: "../outside".into(),
                backup: None,
                sum: None,
                applied: false,
                dir: false,
            }],
        );
        assert!(decode(p, &evil).is_err());
        // A directory entry names the temporary directory it renames.
        let no_tmp = encode(
            State::Commit,
            &[Entry {
                tmp: None,
                target: "c3".into(),
                backup: None,
                sum: None,
                applied: false,
                dir: true,
            }],
        );
        assert!(decode(p, &no_tmp).is_err());
    }
}
