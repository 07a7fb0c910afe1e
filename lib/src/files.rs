//! Reading bounded files and writing sets of files atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pemutil::MAX_PEM_BYTES;

/// One file to write.
#[derive(Debug)]
pub struct FileWrite<'a> {
    /// Where it goes.
    pub path: PathBuf,
    /// What it holds.
    pub contents: &'a [u8],
    /// Whether it holds a private key: then it is created mode 0600 and
    /// stays so; other files end up 0644.
    pub secret: bool,
}

/// Reads a file of at most 1 MiB, naming it in every error.
pub fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingFile {
                path: path.to_owned(),
                hint: String::new(),
            })
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    if meta.is_dir() {
        return Err(Error::Pem {
            what: path.display().to_string(),
            problem: "is a directory, not a file".into(),
        });
    }
    if meta.len() > MAX_PEM_BYTES as u64 {
        return Err(Error::TooLarge {
            what: path.display().to_string(),
            size: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            limit: MAX_PEM_BYTES,
        });
    }
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() > MAX_PEM_BYTES {
        return Err(Error::TooLarge {
            what: path.display().to_string(),
            size: bytes.len(),
            limit: MAX_PEM_BYTES,
        });
    }
    Ok(bytes)
}

/// Fails with [`Error::AlreadyExists`] for the first file of `paths` that exists.
pub fn refuse_existing<'p>(paths: impl IntoIterator<Item = &'p Path>) -> Result<()> {
    for path in paths {
        if fs::symlink_metadata(path).is_ok() {
            return Err(Error::AlreadyExists {
                path: path.to_owned(),
            });
        }
    }
    Ok(())
}

/// Writes every file atomically: each goes to a temporary file in its
/// target directory (created 0600), is flushed to disk, and is then renamed
/// over its name; the directories are flushed last. Without `force`,
/// nothing is written when any target exists, and a file appearing in the
/// meantime is never replaced. A crash leaves each file either absent, or
/// old, or complete: never partial.
pub fn write_files(files: &[FileWrite<'_>], force: bool) -> Result<()> {
    if !force {
        refuse_existing(files.iter().map(|f| f.path.as_path()))?;
    }
    let mut staged = Vec::with_capacity(files.len());
    for file in files {
        let dir = parent_dir(&file.path);
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".meshca-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        tmp.write_all(file.contents)
            .map_err(|e| Error::io(tmp.path(), e))?;
        #[cfg(unix)]
        if !file.secret {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))
                .map_err(|e| Error::io(tmp.path(), e))?;
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(tmp.path(), e))?;
        staged.push((tmp, &file.path));
    }
    let mut dirs: Vec<&Path> = Vec::new();
    for (tmp, path) in staged {
        let persisted = if force {
            tmp.persist(path)
        } else {
            tmp.persist_noclobber(path)
        };
        persisted.map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::AlreadyExists { path: path.clone() }
            } else {
                Error::io(path.clone(), e.error)
            }
        })?;
        let dir = parent_dir(path);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in dirs {
        sync_dir(dir)?;
    }
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
        d.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_overwrite_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.pem");
        let b = dir.path().join("b.pem");
        fs::write(&b, "old").unwrap();
        let files = [
            FileWrite {
                path: a.clone(),
                contents: b"new-a",
                secret: false,
            },
            FileWrite {
                path: b.clone(),
                contents: b"new-b",
                secret: true,
            },
        ];
        let err = write_files(&files, false).unwrap_err();
        assert!(
            matches!(err, Error::AlreadyExists { ref path } if *path == b),
            "{err}"
        );
        assert!(
            !a.exists(),
            "a file was written although the set was refused"
        );
        assert_eq!(fs::read_to_string(&b).unwrap(), "old");
        write_files(&files, true).unwrap();
        assert_eq!(fs::read_to_string(&b).unwrap(), "new-b");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .collect();
        assert!(leftovers.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn secrets_are_0600_and_others_0644() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("sub/k.pem");
        let c = dir.path().join("sub/c.pem");
        write_files(
            &[
                FileWrite {
                    path: k.clone(),
                    contents: b"k",
                    secret: true,
                },
                FileWrite {
                    path: c.clone(),
                    contents: b"c",
                    secret: false,
                },
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&c).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }

    #[test]
    fn read_limited_names_missing_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = read_limited(&missing).unwrap_err().to_string();
        assert!(
            err.contains("nope.pem") && err.contains("not found"),
            "{err}"
        );
        let err = read_limited(dir.path()).unwrap_err().to_string();
        assert!(err.contains("directory"), "{err}");
    }
}
