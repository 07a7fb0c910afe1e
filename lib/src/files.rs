//! Reading input files safely (writing is the store's: [`crate::store`]).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pemutil::MAX_PEM_BYTES;

/// Reads a file of at most 1 MiB, naming it in every error.
///
/// Input directories may be hostile, so the file is opened without
/// following a symbolic link (`O_NOFOLLOW`) and without blocking
/// (`O_NONBLOCK`: a FIFO cannot hang the read); only a regular file is
/// read, and never more than the cap, whatever its size claims (a device
/// such as `/dev/zero` is refused before any read).
pub fn read_limited(path: &Path) -> Result<Vec<u8>> {
    read_limited_meta(path).map(|(bytes, _)| bytes)
}

/// Like [`read_limited`] for a file the operator names on the command
/// line or in the environment (`-f mesh.yaml`, `--passphrase-file`,
/// `--root-key FILE`, `--secret FILE`): a symbolic link is followed, as
/// every tool follows the path it is given (a Kubernetes Secret or
/// ConfigMap mounted in a pod is a link into `..data/`). The target must
/// still be a regular file of at most 1 MiB, opened without blocking.
/// Files found inside a certs directory are never read this way.
pub fn read_named(path: &Path) -> Result<Vec<u8>> {
    read_file(path, false, MAX_PEM_BYTES).map(|(bytes, _)| bytes)
}

/// Like [`read_limited`] with a cap of `cap` bytes (the commit record of a
/// large save is larger than any input file).
pub(crate) fn read_capped(path: &Path, cap: usize) -> Result<Vec<u8>> {
    read_file(path, true, cap).map(|(bytes, _)| bytes)
}

/// [`read_limited`], also giving the file's metadata (from the open file,
/// so it describes the bytes read, not a file put there since).
pub(crate) fn read_limited_meta(path: &Path) -> Result<(Vec<u8>, fs::Metadata)> {
    read_file(path, true, MAX_PEM_BYTES)
}

fn read_file(path: &Path, no_follow: bool, cap: usize) -> Result<(Vec<u8>, fs::Metadata)> {
    read_opened(open_untrusted(path, no_follow)?, path, cap)
}

/// A directory whose files are read by name, each opened relative to the
/// directory (one path lookup for the directory, not one per file), so
/// the files read are the ones of the directory opened, whatever is put
/// at its path meanwhile.
pub(crate) struct OpenDir {
    path: PathBuf,
    #[cfg(target_os = "linux")]
    fd: Option<rustix::fd::OwnedFd>,
    /// Opened without following a link, and a link was there: no file
    /// of it is read.
    #[cfg(target_os = "linux")]
    link: bool,
}

impl OpenDir {
    /// `path`, opened when it can be; else its files are read by path
    /// (with the same checks and errors). Unless `follow`, a symbolic
    /// link at `path` is not followed (a directory found in a listing
    /// that became a link since): reading its files fails.
    pub(crate) fn open(path: &Path, follow: bool) -> OpenDir {
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{Mode, OFlags, CWD};
            let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            if !follow {
                flags |= OFlags::NOFOLLOW;
            }
            let opened = rustix::fs::openat(CWD, path, flags, Mode::empty());
            let link = !follow
                && opened.is_err()
                && fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            OpenDir {
                path: path.to_owned(),
                fd: opened.ok(),
                link,
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = follow;
            OpenDir {
                path: path.to_owned(),
            }
        }
    }

    /// The path of the file `name` in the directory.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// [`read_limited_meta`] of the file `name` in the directory.
    pub(crate) fn read_limited_meta(&self, name: &str) -> Result<(Vec<u8>, fs::Metadata)> {
        let path = self.join(name);
        #[cfg(target_os = "linux")]
        if self.link {
            return Err(Error::NotRegularFile {
                path: self.path.clone(),
                kind: "a symbolic link (not followed)",
            });
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            use rustix::fs::{Mode, OFlags};
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            match rustix::fs::openat(fd, name, flags, Mode::empty()) {
                Ok(file) => return read_opened(fs::File::from(file), &path, MAX_PEM_BYTES),
                Err(rustix::io::Errno::NOENT) => {
                    return Err(Error::MissingFile {
                        path,
                        hint: String::new(),
                    })
                }
                // Anything else (a link, no permission) is told as a read
                // by path tells it.
                Err(_) => {}
            }
        }
        read_file(&path, true, MAX_PEM_BYTES)
    }

    /// Whether anything (a link included, not followed) is at `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        #[cfg(target_os = "linux")]
        if self.link {
            return false;
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            use rustix::fs::AtFlags;
            return rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok();
        }
        fs::symlink_metadata(self.join(name)).is_ok()
    }
}

/// The checks and the read of [`read_file`], on the file opened from
/// `path`.
fn read_opened(file: fs::File, path: &Path, cap: usize) -> Result<(Vec<u8>, fs::Metadata)> {
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
    if meta.len() > cap as u64 {
        return Err(Error::TooLarge {
            what: path.display().to_string(),
            size: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            limit: cap,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One byte past the cap tells a file that grew since fstat.
    file.take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() > cap {
        return Err(Error::TooLarge {
            what: path.display().to_string(),
            size: bytes.len(),
            limit: cap,
        });
    }
    Ok((bytes, meta))
}

/// Opens `path` for reading without blocking on a FIFO and, when
/// `no_follow`, without following a final symbolic link.
fn open_untrusted(path: &Path, no_follow: bool) -> Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = if no_follow {
            rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK
        } else {
            rustix::fs::OFlags::NONBLOCK
        };
        options.custom_flags(flags.bits() as i32);
    }
    let _ = no_follow;
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

pub(crate) fn file_kind(ft: &fs::FileType) -> &'static str {
    if ft.is_dir() {
        return "a directory";
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[cfg(target_os = "linux")]
    #[test]
    fn an_open_directory_is_read_whatever_is_put_at_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, other) = (tmp.path().join("c1"), tmp.path().join("elsewhere"));
        fs::create_dir(&dir).unwrap();
        fs::create_dir(&other).unwrap();
        fs::write(dir.join("ca-cert.pem"), "listed").unwrap();
        fs::write(other.join("ca-cert.pem"), "SECRET elsewhere").unwrap();
        let opened = OpenDir::open(&dir, false);
        // The directory is moved away and a link to another put in its place.
        fs::rename(&dir, tmp.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&other, &dir).unwrap();
        let (bytes, _) = opened.read_limited_meta("ca-cert.pem").unwrap();
        assert_eq!(bytes, b"listed");
        assert!(opened.has("ca-cert.pem") && !opened.has("ca-key.pem"));
        // Opened now, the link is not followed unless asked.
        let err = OpenDir::open(&dir, false)
            .read_limited_meta("ca-cert.pem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(!err.contains("SECRET"), "{err}");
        assert!(!OpenDir::open(&dir, false).has("ca-cert.pem"));
        let (bytes, _) = OpenDir::open(&dir, true)
            .read_limited_meta("ca-cert.pem")
            .unwrap();
        assert_eq!(bytes, b"SECRET elsewhere");
        // A missing file is missing, a file that is a link is refused.
        let opened = OpenDir::open(&other, false);
        assert!(matches!(
            opened.read_limited_meta("nothing.pem"),
            Err(Error::MissingFile { .. })
        ));
        std::os::unix::fs::symlink(other.join("ca-cert.pem"), other.join("link.pem")).unwrap();
        let err = opened
            .read_limited_meta("link.pem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }
}
