//! Reading bounded files and writing sets of files atomically.

use std::fs;
use std::io::Read;
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
///
/// Input directories may be hostile, so the file is opened without
/// following a symbolic link (`O_NOFOLLOW`) and without blocking
/// (`O_NONBLOCK`: a FIFO cannot hang the read); only a regular file is
/// read, and never more than the cap, whatever its size claims (a device
/// such as `/dev/zero` is refused before any read).
pub fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let file = open_untrusted(path)?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::Pem {
            what: path.display().to_string(),
            problem: "is a directory, not a file".into(),
        });
    }
    if !meta.is_file() {
        return Err(Error::NotRegularFile {
            path: path.to_owned(),
            kind: file_kind(&meta.file_type()),
        });
    }
    if meta.len() > MAX_PEM_BYTES as u64 {
        return Err(Error::TooLarge {
            what: path.display().to_string(),
            size: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            limit: MAX_PEM_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One byte past the cap tells a file that grew since fstat.
    file.take(MAX_PEM_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() > MAX_PEM_BYTES {
        return Err(Error::TooLarge {
            what: path.display().to_string(),
            size: bytes.len(),
            limit: MAX_PEM_BYTES,
        });
    }
    Ok(bytes)
}

/// Opens `path` for reading without following a final symbolic link and
/// without blocking on a FIFO.
fn open_untrusted(path: &Path) -> Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        options.custom_flags(flags.bits() as i32);
    }
    match options.open(path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::MissingFile {
            path: path.to_owned(),
            hint: String::new(),
        }),
        Err(e) => {
            // ELOOP (or EMLINK on some systems) from O_NOFOLLOW: a link.
            let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            if is_link {
                Err(Error::NotRegularFile {
                    path: path.to_owned(),
                    kind: "a symbolic link (not followed)",
                })
            } else {
                Err(Error::io(path, e))
            }
        }
    }
}

fn file_kind(ft: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_symlink() {
        return "a symbolic link (not followed)";
    }
    "something else"
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

/// Writes every file atomically and all together (see
/// [`crate::store::Transaction`]): on any failure nothing is changed.
/// Without `force`, nothing is written when any target exists, and a file
/// appearing in the meantime is never replaced.
pub fn write_files(files: &[FileWrite<'_>], force: bool) -> Result<()> {
    if !force {
        refuse_existing(files.iter().map(|f| f.path.as_path()))?;
    }
    let mut tx = crate::store::Transaction::new();
    for f in files {
        tx.write(f.path.clone(), f.contents, f.secret);
    }
    tx.commit()
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

    /// "/dev/zero or a FIFO given as a PEM file grows memory without bound
    /// or hangs": both are refused at once, before any read.
    #[cfg(unix)]
    #[test]
    fn dev_zero_or_a_fifo_as_a_pem_file_is_refused_at_once() {
        let started = std::time::Instant::now();
        let err = read_limited(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/dev/zero") && err.contains("character device"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("ca-cert.pem");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let err = read_limited(&fifo).unwrap_err().to_string();
        assert!(err.contains("ca-cert.pem") && err.contains("FIFO"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    /// "A cacerts.yaml that is a symlink to the operator's root key leaks
    /// it": a link is never followed.
    #[cfg(unix)]
    #[test]
    fn a_symlinked_cacerts_yaml_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("root-key.pem");
        fs::write(&key, "SECRET KEY BYTES").unwrap();
        let link = dir.path().join("cacerts.yaml");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        let err = read_limited(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(!err.contains("SECRET"), "{err}");
    }
}
