//! A certs directory: the root at its top, one sub-directory per cluster.
//!
//! ```text
//! DIR/root-cert.pem  DIR/root-key.pem
//! DIR/<cluster>/{ca-cert,ca-key,cert-chain,root-cert}.pem  DIR/<cluster>/cacerts.yaml
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::bundle::{ClusterBundle, ROOT_CERT, ROOT_KEY, SECRET_YAML};
use crate::error::{Error, Result};
use crate::files::{read_limited, refuse_existing, write_files, FileWrite};
use crate::issue::{IntermediateCa, RootCa};
use crate::key::PrivateKey;
use crate::profile::{validate_name, KeyType};
use crate::secret::{cacerts_yaml, SecretOptions};

/// A certs directory on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertsDir {
    path: PathBuf,
}

/// Which root files a certs directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RootState {
    /// Neither `root-cert.pem` nor `root-key.pem`.
    Absent,
    /// Both.
    Present,
}

impl CertsDir {
    /// A certs directory at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CertsDir { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `DIR/root-cert.pem`.
    pub fn root_cert_path(&self) -> PathBuf {
        self.path.join(ROOT_CERT)
    }

    /// `DIR/root-key.pem`.
    pub fn root_key_path(&self) -> PathBuf {
        self.path.join(ROOT_KEY)
    }

    /// `DIR/<cluster>`, after checking the name is a DNS label.
    pub fn cluster_dir(&self, cluster: &str) -> Result<PathBuf> {
        validate_name("cluster name", cluster)?;
        Ok(self.path.join(cluster))
    }

    /// Whether the root is there. Having only one of its two files is an
    /// error naming the missing one.
    pub fn root_state(&self) -> Result<RootState> {
        let cert = self.root_cert_path();
        let key = self.root_key_path();
        match (cert.exists(), key.exists()) {
            (false, false) => Ok(RootState::Absent),
            (true, true) => Ok(RootState::Present),
            (true, false) => Err(Error::MissingFile {
                path: key,
                hint: format!("; {} exists without its key", cert.display()),
            }),
            (false, true) => Err(Error::MissingFile {
                path: cert,
                hint: format!("; {} exists without its certificate", key.display()),
            }),
        }
    }

    /// Loads the root from `root-cert.pem` and `root-key.pem`.
    pub fn load_root(&self) -> Result<RootCa> {
        let cert_path = self.root_cert_path();
        let key_path = self.root_key_path();
        let hint = "; create the root first with `meshca root` (or `meshca init`)".to_owned();
        let read = |p: &Path| {
            read_limited(p).map_err(|e| match e {
                Error::MissingFile { path, .. } => Error::MissingFile {
                    path,
                    hint: hint.clone(),
                },
                other => other,
            })
        };
        let cert = read(&cert_path)?;
        let key = zeroize::Zeroizing::new(read(&key_path)?);
        RootCa::from_pem(
            &cert_path.display().to_string(),
            &cert,
            &key_path.display().to_string(),
            &key,
        )
    }

    /// Writes `root-key.pem` (0600) and `root-cert.pem`, atomically, never
    /// over existing files without `force`.
    pub fn write_root(&self, root: &RootCa, force: bool) -> Result<()> {
        let key = root.key().to_pem();
        write_files(
            &[
                FileWrite {
                    path: self.root_key_path(),
                    contents: key.as_bytes(),
                    secret: true,
                },
                FileWrite {
                    path: self.root_cert_path(),
                    contents: root.roots_pem().as_bytes(),
                    secret: false,
                },
            ],
            force,
        )
    }

    /// The files [`CertsDir::write_cluster`] writes for `cluster`.
    pub fn cluster_files(&self, cluster: &str) -> Result<Vec<PathBuf>> {
        let dir = self.cluster_dir(cluster)?;
        let bundle_names = [
            crate::bundle::CA_CERT,
            crate::bundle::CA_KEY,
            crate::bundle::CERT_CHAIN,
            crate::bundle::ROOT_CERT,
            SECRET_YAML,
        ];
        Ok(bundle_names.iter().map(|n| dir.join(n)).collect())
    }

    /// Fails if any file `write_cluster` would write for these clusters exists.
    pub fn refuse_existing_clusters(&self, clusters: &[String]) -> Result<()> {
        for c in clusters {
            let files = self.cluster_files(c)?;
            refuse_existing(files.iter().map(PathBuf::as_path))?;
        }
        Ok(())
    }

    /// Writes a cluster's bundle and its `cacerts.yaml` into `DIR/<cluster>`.
    pub fn write_cluster(
        &self,
        ca: &IntermediateCa,
        secret: &SecretOptions,
        force: bool,
    ) -> Result<ClusterBundle> {
        let dir = self.cluster_dir(ca.cluster())?;
        let bundle = ca.bundle();
        let yaml = cacerts_yaml(&bundle, secret)?;
        bundle.write_dir(&dir, Some(&yaml), force)?;
        Ok(bundle)
    }

    /// Reads `DIR/<cluster>`'s four files.
    pub fn read_cluster(&self, cluster: &str) -> Result<ClusterBundle> {
        ClusterBundle::read_dir(&self.cluster_dir(cluster)?)
    }
}

/// Generates one key per entry of `types`, on all cores, returning them in
/// order. `progress` is called (from worker threads) with the number of
/// keys done so far after each one.
pub fn generate_keys(
    types: &[KeyType],
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<PrivateKey>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(types.len().max(1));
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<PrivateKey>>>> =
        Mutex::new((0..types.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(kt) = types.get(i) else { break };
                let key = PrivateKey::generate(*kt);
                let failed = key.is_err();
                if let Ok(mut slots) = slots.lock() {
                    if let Some(slot) = slots.get_mut(i) {
                        *slot = Some(key);
                    }
                }
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                if failed {
                    // Stop handing out work; the error is reported below.
                    next.store(types.len(), Ordering::Relaxed);
                }
            });
        }
    });
    let slots = slots.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut keys = Vec::with_capacity(types.len());
    for (slot, kt) in slots.into_iter().zip(types) {
        match slot {
            Some(Ok(k)) => keys.push(k),
            Some(Err(e)) => return Err(e),
            None => {
                return Err(Error::signing(
                    format!("generating a {kt} key"),
                    rcgen::Error::KeyGenerationUnavailable,
                ))
            }
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_keys_keeps_order_and_types() {
        let types = [KeyType::EcdsaP384, KeyType::EcdsaP256, KeyType::EcdsaP384];
        let count = AtomicUsize::new(0);
        let keys = generate_keys(&types, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        let got: Vec<_> = keys.iter().map(PrivateKey::key_type).collect();
        assert_eq!(got, types);
        assert_eq!(count.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn half_a_root_is_an_error_naming_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let certs = CertsDir::new(dir.path());
        assert_eq!(certs.root_state().unwrap(), RootState::Absent);
        std::fs::write(certs.root_cert_path(), "x").unwrap();
        let err = certs.root_state().unwrap_err().to_string();
        assert!(
            err.contains("root-key.pem") && err.contains("not found"),
            "{err}"
        );
    }
}
