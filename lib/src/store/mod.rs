//! The store: a certs directory on disk, loaded into a [`Mesh`] and saved
//! back all-or-nothing under the directory's lock.
//!
//! Loading reads every file with [`crate::read_limited`] (no symbolic link
//! followed, regular files only, capped) and skips cluster directories that
//! are symbolic links. Saving compares the new mesh with the one loaded and
//! writes only the files that differ, in one [`Transaction`].

mod journal;
mod tx;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use zeroize::Zeroizing;

pub use journal::{pending, recover, Recovered, JOURNAL};
pub use tx::{is_temp_name, leftovers, DirLock, Transaction, LOCK_FILE};

use crate::bundle::{
    ClusterBundle, CA_CERT, CA_CRL, CA_KEY, CERT_CHAIN, ROOT_CERT, ROOT_KEY, SECRET_YAML,
};
use crate::crl::ROOT_CRL;
use crate::error::{Error, Result};
use crate::files::read_limited;
use crate::keyref::ROOT_KEY_URI;
use crate::mesh::{Cluster, Mesh, MeshRoot};
use crate::profile::validate_name;

/// Reads a file, `None` when it does not exist.
fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => read_limited(path).map(Some),
    }
}

fn text(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| Error::Pem {
        what: path.display().to_string(),
        problem: "not PEM: the file is not text".into(),
    })
}

fn read_text(path: &Path) -> Result<Option<String>> {
    read_opt(path)?.map(|b| text(path, b)).transpose()
}

/// The cluster directories under `dir`: real directories (not links)
/// holding `ca-cert.pem`, named as DNS labels, sorted.
pub fn cluster_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        if !ft.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if validate_name("cluster name", &name).is_ok()
            && fs::symlink_metadata(entry.path().join(CA_CERT)).is_ok()
        {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// `root-key.uri`, when there: the `pkcs11:` URI of a root key in a token
/// (one line). A PIN in it (`pin-value=`) is refused: the certs directory
/// never records one.
fn read_key_uri(dir: &Path) -> Result<Option<crate::keyref::Pkcs11Uri>> {
    let path = dir.join(ROOT_KEY_URI);
    let Some(bytes) = read_opt(&path)? else {
        return Ok(None);
    };
    let line = text(&path, bytes)?;
    // A bad reference is bad input (exit 2), as a file that is not text is.
    let uri = crate::keyref::Pkcs11Uri::parse(line.trim()).map_err(|e| Error::KeyRef {
        reason: format!("{}: {e}", path.display()),
    })?;
    if uri.has_pin_value() {
        return Err(Error::KeyRef {
            reason: format!(
                "{} records a PIN (pin-value=): remove it, use pin-source=file:PATH",
                path.display()
            ),
        });
    }
    Ok(Some(uri))
}

/// Loads the mesh of the certs directory `dir` (an absent directory is an
/// empty mesh). Having only one of `root-cert.pem` and `root-key.pem` is
/// fine (a mesh signed from a Secret keeps no key); a cluster directory
/// must have its four files.
pub fn load(dir: &Path) -> Result<Mesh> {
    load_replacing(dir, &[]).map(|(mesh, _)| mesh)
}

/// Like [`load`], for a change that replaces the clusters `replaced` whole
/// (`meshca intermediate --force`): a cluster among them whose directory
/// cannot be loaded (a file missing, unreadable, or not text) is left out
/// of the mesh instead of failing the load, so that the change can repair
/// it. Returns the mesh and the meshca files found in those left-out
/// directories: [`save_replacing`] removes the ones the new mesh does not
/// write, so no stale file (an old `ca-crl.pem`) outlives the repair.
pub fn load_replacing(dir: &Path, replaced: &[String]) -> Result<(Mesh, Vec<PathBuf>)> {
    // Half-way between two meshes until `recover` runs: never read as one.
    journal::refuse_pending(dir)?;
    let mut mesh = Mesh::new();
    let root_cert = read_text(&dir.join(ROOT_CERT))?;
    let root_key = read_opt(&dir.join(ROOT_KEY))?;
    let key_uri = read_key_uri(dir)?;
    if root_key.is_some() && key_uri.is_some() {
        return Err(Error::KeyRef {
            reason: format!(
                "{}: both {ROOT_KEY} and {ROOT_KEY_URI} are there: keep the one that holds the root key",
                dir.join(ROOT_KEY_URI).display()
            ),
        });
    }
    mesh.root = match (root_cert, root_key.is_some() || key_uri.is_some()) {
        (Some(cert), _) => Some(MeshRoot {
            cert,
            key: root_key
                .map(|k| text(&dir.join(ROOT_KEY), k).map(Zeroizing::new))
                .transpose()?,
            key_uri,
        }),
        (None, true) => {
            return Err(Error::MissingFile {
                path: dir.join(ROOT_CERT),
                hint: String::new(),
            })
        }
        (None, false) => None,
    };
    mesh.root_crl = read_text(&dir.join(ROOT_CRL))?;
    let mut stale = Vec::new();
    let replaced: std::collections::HashSet<&str> = replaced.iter().map(String::as_str).collect();
    // Clusters are independent: read (and parse) them on all cores, then
    // take the results in name order, so the first error is the same one
    // whatever the scheduling.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let read = crate::mesh::map_parallel(cluster_names(dir)?, threads, &|name: String| {
        let cluster = read_cluster(dir, &name, true);
        (name, cluster)
    });
    for (name, cluster) in read {
        match cluster {
            Ok(cluster) => {
                mesh.clusters.insert(name, cluster);
            }
            Err(_) if replaced.contains(name.as_str()) => {
                let cdir = dir.join(&name);
                stale.extend(
                    CLUSTER_FILES
                        .iter()
                        .map(|f| cdir.join(f))
                        .filter(|p| fs::symlink_metadata(p).is_ok()),
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok((mesh, stale))
}

/// The files meshca keeps in a cluster directory.
const CLUSTER_FILES: [&str; 6] = [CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT, CA_CRL, SECRET_YAML];

/// Loads one cluster of the certs directory `dir`, whatever the state of
/// the others; a name that is not a cluster directory there is
/// [`Error::UnknownCluster`], listing those that are.
pub fn load_cluster(dir: &Path, name: &str) -> Result<Cluster> {
    validate_name("cluster name", name)?;
    let names = cluster_names(dir)?;
    if !names.iter().any(|n| n == name) {
        return Err(crate::mesh::unknown_cluster(name, names));
    }
    read_cluster(dir, name, true)
}

/// Like [`load_cluster`], ignoring the cluster's `cacerts.yaml`: for
/// `meshca secret`, which rewrites that file, when it cannot be used.
pub fn load_cluster_without_secret(dir: &Path, name: &str) -> Result<Cluster> {
    validate_name("cluster name", name)?;
    let names = cluster_names(dir)?;
    if !names.iter().any(|n| n == name) {
        return Err(crate::mesh::unknown_cluster(name, names));
    }
    read_cluster(dir, name, false)
}

fn read_cluster(dir: &Path, name: &str, with_secret: bool) -> Result<Cluster> {
    let cdir = dir.join(name);
    let need = |file: &str| -> Result<String> {
        let path = cdir.join(file);
        read_text(&path)?.ok_or(Error::MissingFile {
            path,
            hint: String::new(),
        })
    };
    let bundle = ClusterBundle::new(
        need(CA_CERT)?,
        Zeroizing::new(need(CA_KEY)?),
        need(CERT_CHAIN)?,
        need(ROOT_CERT)?,
    )
    .with_crl(read_text(&cdir.join(CA_CRL))?);
    let yaml = if with_secret {
        read_text(&cdir.join(SECRET_YAML))?.map(Zeroizing::new)
    } else {
        None
    };
    Cluster::from_bundle(name, bundle, yaml).map_err(|e| relabel(e, dir))
}

fn relabel(e: Error, dir: &Path) -> Error {
    match e {
        Error::BadSecret { what, reason } => Error::BadSecret {
            what: dir.join(what).display().to_string(),
            reason,
        },
        other => other,
    }
}

/// Adds to `tx` what turns `old` (the mesh loaded from `dir`, or `None`
/// for a directory meshca has not written) into `new` on disk: every file
/// whose bytes differ is written, every file of `old` that `new` lacks is
/// removed. A file `new` adds where a file exists that `old` does not
/// know is left alone when it holds the same bytes, else refused unless
/// `force`. The commit record goes in `dir` (where [`recover`] looks)
/// unless the transaction was told another place.
pub fn plan(
    tx: &mut Transaction,
    dir: &Path,
    old: Option<&Mesh>,
    new: &Mesh,
    force: bool,
) -> Result<()> {
    tx.journal_in_default(dir);
    let before = old.map(Mesh::layout).unwrap_or_default();
    let after = new.layout();
    // Which of the files `old` does not know are on disk: none of a
    // directory that is missing (one look per directory, not per file: a
    // fleet's new clusters are 10,000 missing directories).
    let unknown: Vec<&Path> = after
        .keys()
        .filter(|p| !before.contains_key(*p))
        .map(PathBuf::as_path)
        .collect();
    let mut parents: Vec<&Path> = unknown.iter().map(|p| tx::parent_dir(p)).collect();
    parents.sort_unstable_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    parents.dedup();
    let present: std::collections::HashSet<&Path> = parents
        .par_iter()
        .filter(|p| fs::metadata(dir.join(p)).is_ok())
        .copied()
        .collect();
    let on_disk: std::collections::HashSet<&Path> = unknown
        .par_iter()
        .filter(|p| present.contains(tx::parent_dir(p)))
        .filter(|p| fs::symlink_metadata(dir.join(p)).is_ok())
        .copied()
        .collect();
    let mut writes: Vec<(PathBuf, &[u8], bool)> = Vec::with_capacity(after.len());
    for (path, file) in &after {
        match before.get(path) {
            Some(prev) if prev == file => continue,
            Some(_) => {}
            None => {
                if on_disk.contains(path.as_path()) {
                    let full = dir.join(path);
                    // A file the mesh did not load: the same bytes need no
                    // write; other bytes are replaced only with `force`.
                    if read_limited(&full).is_ok_and(|b| b.as_slice() == &file.contents[..]) {
                        continue;
                    }
                    if !force {
                        return Err(Error::AlreadyExists { path: full });
                    }
                }
            }
        }
        writes.push((dir.join(path), &file.contents, file.secret));
    }
    tx.write_all(&writes);
    for path in before.keys() {
        if !after.contains_key(path) {
            tx.remove(dir.join(path));
        }
    }
    Ok(())
}

/// Saves `new` over `old` in `dir` in one transaction (see [`plan`]):
/// every changed file or none. Returns the paths written or removed.
pub fn save(dir: &Path, old: Option<&Mesh>, new: &Mesh, force: bool) -> Result<Vec<PathBuf>> {
    let mut tx = Transaction::new();
    tx.journal_in(dir);
    plan(&mut tx, dir, old, new, force)?;
    let paths: Vec<PathBuf> = tx.paths().map(Path::to_owned).collect();
    tx.commit()?;
    Ok(paths)
}

/// Like [`save`], also removing every path of `stale` (from
/// [`load_replacing`]) that `new` does not write, in the same transaction.
pub fn save_replacing(
    dir: &Path,
    old: Option<&Mesh>,
    new: &Mesh,
    force: bool,
    stale: &[PathBuf],
) -> Result<Vec<PathBuf>> {
    save_checked(dir, old, new, force, stale, || Ok(())).map(|(paths, ())| paths)
}

/// [`save_replacing`], saving only if `check` succeeds (see
/// [`Transaction::commit_checked`]: it runs while the written files are
/// flushed, before the commit point). A failed check changes nothing and
/// is returned as it is. Gives the paths and the check's result.
///
/// ```no_run
/// # fn demo(dir: &std::path::Path, old: &meshca::Mesh, new: &meshca::Mesh) -> meshca::Result<()> {
/// let opts = meshca::VerifyOptions::at(time::OffsetDateTime::now_utc());
/// let (written, report) = meshca::store::save_checked(dir, Some(old), new, false, &[], || {
///     new.check_against(Some(old), &opts)
/// })?;
/// # let _ = (written, report);
/// # Ok(())
/// # }
/// ```
pub fn save_checked<T>(
    dir: &Path,
    old: Option<&Mesh>,
    new: &Mesh,
    force: bool,
    stale: &[PathBuf],
    check: impl FnOnce() -> Result<T>,
) -> Result<(Vec<PathBuf>, T)> {
    let mut tx = Transaction::new();
    tx.journal_in(dir);
    plan(&mut tx, dir, old, new, force)?;
    let kept = if stale.is_empty() {
        BTreeMap::new()
    } else {
        new.layout()
    };
    for path in stale {
        let in_new = path
            .strip_prefix(dir)
            .is_ok_and(|rel| kept.contains_key(rel));
        if !in_new {
            tx.remove(path.clone());
        }
    }
    let paths: Vec<PathBuf> = tx.paths().map(Path::to_owned).collect();
    let checked = tx.commit_checked(check)?;
    Ok((paths, checked))
}

/// The bytes of every regular file under `dir` (recursively), by path
/// relative to it, skipping the lock file: what tests compare to prove a
/// step changed nothing, or only what it should.
pub fn snapshot(dir: &Path) -> Result<BTreeMap<PathBuf, Zeroizing<Vec<u8>>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&d, e)),
        };
        for entry in entries.flatten() {
            let p = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if entry.file_name() != LOCK_FILE {
                let bytes = read_limited(&p)?;
                let rel = p.strip_prefix(dir).unwrap_or(&p).to_owned();
                out.insert(rel, Zeroizing::new(bytes));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_key_uri_is_loaded_saved_and_refused_with_a_pin_or_beside_a_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::RootCa::generate(
            &crate::RootParams {
                key_type: crate::KeyType::EcdsaP256,
                ..crate::RootParams::default()
            },
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        fs::write(dir.path().join(ROOT_CERT), root.cert_pem()).unwrap();
        let uri = "pkcs11:token=t;object=root?module-path=/m.so&pin-source=file:/run/pin";
        fs::write(dir.path().join(ROOT_KEY_URI), format!("{uri}\n")).unwrap();
        let mesh = load(dir.path()).unwrap();
        let loaded = mesh.root.as_ref().unwrap();
        assert!(loaded.key.is_none());
        let recorded = loaded.key_uri.as_ref().unwrap();
        assert_eq!(recorded.object.as_deref(), Some("root"));
        // Saved back as it was (the layout writes it).
        let layout = mesh.layout();
        let line = &layout.get(Path::new(ROOT_KEY_URI)).unwrap().contents;
        let back = crate::keyref::Pkcs11Uri::parse(std::str::from_utf8(line).unwrap().trim());
        assert_eq!(&back.unwrap(), recorded);
        // A recorded PIN is refused, without showing it.
        fs::write(
            dir.path().join(ROOT_KEY_URI),
            "pkcs11:object=root?pin-value=S3CRET-PIN\n",
        )
        .unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("records a PIN"), "{err}");
        assert!(!err.contains("S3CRET"), "{err}");
        // root-key.pem and root-key.uri together: which one is the key?
        fs::write(dir.path().join(ROOT_KEY_URI), format!("{uri}\n")).unwrap();
        fs::write(dir.path().join(ROOT_KEY), root.key().to_pem()).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("both root-key.pem and root-key.uri"), "{err}");
    }

    #[test]
    fn a_file_the_loaded_mesh_does_not_know_is_kept_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::RootCa::generate(
            &crate::RootParams {
                key_type: crate::KeyType::EcdsaP256,
                ..crate::RootParams::default()
            },
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        fs::write(dir.path().join(ROOT_KEY), "operator's own file\n").unwrap();
        // root-key.pem without root-cert.pem: the load names the missing file.
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("root-cert.pem"), "{err}");
        let new = Mesh::new()
            .with_root(&root, Some(root.key().to_pem()), false)
            .unwrap();
        let err = save(dir.path(), None, &new, false).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        assert_eq!(
            fs::read(dir.path().join(ROOT_KEY)).unwrap(),
            b"operator's own file\n"
        );
        assert!(!dir.path().join(ROOT_CERT).exists());
        save(dir.path(), None, &new, true).unwrap();
        assert_eq!(load(dir.path()).unwrap(), new);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_cluster_directory_is_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        fs::write(elsewhere.path().join(CA_CERT), "x").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("c1")).unwrap();
        assert!(cluster_names(dir.path()).unwrap().is_empty());
    }
}
