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

    /// Loads the root from `root-cert.pem` and `root-key.pem`; an encrypted
    /// key is an error (see [`CertsDir::load_root_with_passphrase`]).
    pub fn load_root(&self) -> Result<RootCa> {
        self.load_root_with_passphrase(&|| {
            Err(Error::EncryptedKey {
                what: self.root_key_path().display().to_string(),
            })
        })
    }

    /// Loads the root; an encrypted `root-key.pem` is decrypted with the
    /// passphrase `passphrase` returns (asked only when it is encrypted).
    pub fn load_root_with_passphrase(
        &self,
        passphrase: &dyn Fn() -> Result<zeroize::Zeroizing<String>>,
    ) -> Result<RootCa> {
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
        RootCa::from_pem_with_passphrase(
            &cert_path.display().to_string(),
            &cert,
            &key_path.display().to_string(),
            &key,
            passphrase,
        )
    }

    /// Writes `root-key.pem` (0600) and `root-cert.pem`, atomically, never
    /// over existing files without `force`.
    pub fn write_root(&self, root: &RootCa, force: bool) -> Result<()> {
        self.write_root_with(root, None, force)
    }

    /// Like [`CertsDir::write_root`]; with a passphrase, `root-key.pem` is
    /// written as encrypted PKCS#8 (see [`PrivateKey::to_encrypted_pem`]).
    pub fn write_root_with(
        &self,
        root: &RootCa,
        passphrase: Option<&[u8]>,
        force: bool,
    ) -> Result<()> {
        let key = match passphrase {
            Some(p) => root.key().to_encrypted_pem(p)?,
            None => root.key().to_pem(),
        };
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
            crate::bundle::CA_CRL,
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

    /// `DIR/root-crl.pem`.
    pub fn root_crl_path(&self) -> PathBuf {
        self.path.join(crate::crl::ROOT_CRL)
    }

    /// The root's current CRL (`DIR/root-crl.pem`), if there is one.
    pub fn read_root_crl(&self) -> Result<Option<Vec<u8>>> {
        let path = self.root_crl_path();
        if path.exists() {
            read_limited(&path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Writes `DIR/root-crl.pem` (replacing the previous one, atomically).
    pub fn write_root_crl(&self, pem: &str) -> Result<()> {
        write_files(
            &[FileWrite {
                path: self.root_crl_path(),
                contents: pem.as_bytes(),
                secret: false,
            }],
            true,
        )
    }

    /// Revokes `cluster`'s intermediate in the root's CRL (`DIR/root-crl.pem`,
    /// created if absent, its number one higher), then puts the new root CRL
    /// into the `ca-crl.pem` (and `cacerts.yaml`) of every cluster that has
    /// one. Needs only the cluster's `ca-cert.pem`: a compromised cluster's
    /// key may be gone. Returns the clusters updated.
    pub fn revoke(
        &self,
        root: &RootCa,
        cluster: &str,
        reason: crate::crl::Reason,
        now: time::OffsetDateTime,
        next_update_days: u32,
    ) -> Result<Vec<String>> {
        let cert_path = self.cluster_dir(cluster)?.join(crate::bundle::CA_CERT);
        let what = cert_path.display().to_string();
        let (serial, issuer) = crate::crl::serial_and_issuer(&what, &read_limited(&cert_path)?)?;
        let root_subject = crate::issue::parse("root", root.cert_der())?
            .subject()
            .as_raw()
            .to_vec();
        if issuer != root_subject {
            return Err(Error::NotACa {
                what: self.root_cert_path().display().to_string(),
                reason: format!(
                    "{what} was not issued by this root; revoke it with its own issuer"
                ),
            });
        }
        let previous = self.read_root_crl()?;
        let crl = root.crl(
            previous.as_deref(),
            &[crate::crl::Revocation::new(serial, now, reason)],
            now,
            next_update_days,
        )?;
        self.write_root_crl(&crl)?;
        self.spread_root_crl(root, &crl)
    }

    /// Puts `root_crl` into every cluster's existing `ca-crl.pem` in place of
    /// the root's old CRL, and refreshes their `cacerts.yaml`.
    pub fn spread_root_crl(&self, root: &RootCa, root_crl: &str) -> Result<Vec<String>> {
        let mut updated = Vec::new();
        for cluster in self.clusters()? {
            let path = self.cluster_dir(&cluster)?.join(crate::bundle::CA_CRL);
            if !path.exists() {
                continue;
            }
            let old = read_limited(&path)?;
            let new = crate::crl::replace_crl_of(
                &path.display().to_string(),
                &old,
                root.cert_der(),
                root_crl,
            )?;
            self.write_ca_crl(&cluster, &new)?;
            updated.push(cluster);
        }
        Ok(updated)
    }

    /// Writes `DIR/<cluster>/ca-crl.pem` (replacing it) and refreshes the
    /// cluster's `cacerts.yaml` to carry it. Returns whether there was a
    /// `cacerts.yaml` to refresh.
    pub fn write_ca_crl(&self, cluster: &str, ca_crl: &str) -> Result<bool> {
        write_files(
            &[FileWrite {
                path: self.cluster_dir(cluster)?.join(crate::bundle::CA_CRL),
                contents: ca_crl.as_bytes(),
                secret: false,
            }],
            true,
        )?;
        self.refresh_secret(cluster)
    }

    /// The Secret options of a cluster's existing `cacerts.yaml` (name,
    /// namespace, shape), or the defaults when it has none.
    pub fn secret_options_of(&self, cluster: &str) -> Result<SecretOptions> {
        let path = self.cluster_dir(cluster)?.join(SECRET_YAML);
        let mut options = SecretOptions::default();
        if !path.exists() {
            return Ok(options);
        }
        let old = crate::secret::SecretData::from_yaml(
            &path.display().to_string(),
            &zeroize::Zeroizing::new(read_limited(&path)?),
        )?;
        options.name = old.name.clone();
        if let Some(ns) = &old.namespace {
            options.namespace = ns.clone();
        }
        if old.type_.as_deref() == Some("kubernetes.io/tls") {
            options.shape = crate::secret::SecretShape::Tls;
        }
        Ok(options)
    }

    /// Writes the three stages of moving `clusters` from this directory's
    /// root (A) to `new_root` (B), as certs directories `out/stage-1`,
    /// `out/stage-2`, `out/stage-3` (Istio's multi-root mesh,
    /// `ISTIO_MULTIROOT_MESH=true`):
    ///
    /// 1. every cluster's `root-cert.pem` = A+B; intermediates unchanged (from A);
    /// 2. new intermediates from B (`keys`, one per cluster, `params`);
    ///    `root-cert.pem` still A+B;
    /// 3. `root-cert.pem` = B only.
    ///
    /// Each stage's roots are a superset or subset of the previous stage's,
    /// and clusters at neighbouring stages trust each other.
    #[allow(clippy::too_many_arguments)]
    pub fn write_rotation(
        &self,
        new_root: &RootCa,
        out: &Path,
        clusters: &[String],
        params: &crate::profile::IntermediateParams,
        keys: Vec<PrivateKey>,
        now: time::OffsetDateTime,
        force: bool,
    ) -> Result<Vec<PathBuf>> {
        let old_roots =
            String::from_utf8_lossy(&read_limited(&self.root_cert_path())?).into_owned();
        let new_roots = new_root.roots_pem().to_owned();
        let both = crate::pemutil::concat(&[&old_roots, &new_roots]);
        let stages: Vec<PathBuf> = (1..=3).map(|n| out.join(format!("stage-{n}"))).collect();
        let (Some(s1), Some(s2), Some(s3)) = (stages.first(), stages.get(1), stages.get(2)) else {
            return Ok(stages);
        };
        let write_roots = |dir: &Path, roots: &str| {
            write_files(
                &[FileWrite {
                    path: dir.join(ROOT_CERT),
                    contents: roots.as_bytes(),
                    secret: false,
                }],
                force,
            )
        };
        if !force {
            for dir in &stages {
                refuse_existing([dir.join(ROOT_CERT).as_path()])?;
            }
        }
        write_roots(s1, &both)?;
        write_roots(s2, &both)?;
        write_roots(s3, &new_roots)?;
        for (cluster, key) in clusters.iter().zip(keys) {
            let old = self.read_cluster(cluster)?;
            let secret = self.secret_options_of(cluster)?;
            // Stage 1: trust B as well; the A-issued intermediate stays.
            let mut b1 = old.clone();
            b1.root_cert = both.clone();
            b1.ca_crl = None;
            let yaml = cacerts_yaml(&b1, &secret)?;
            b1.write_dir(&s1.join(cluster), Some(&yaml), force)?;
            // Stage 2: a new intermediate from B.
            let issued = new_root.issue_intermediate(cluster, params, key, now)?;
            let mut b2 = issued.ca.bundle();
            b2.root_cert = both.clone();
            let yaml = cacerts_yaml(&b2, &secret)?;
            b2.write_dir(&s2.join(cluster), Some(&yaml), force)?;
            // Stage 3: B only.
            let mut b3 = b2.clone();
            b3.root_cert = new_roots.clone();
            let yaml = cacerts_yaml(&b3, &secret)?;
            b3.write_dir(&s3.join(cluster), Some(&yaml), force)?;
        }
        Ok(stages)
    }

    /// Rewrites `DIR/<cluster>/cacerts.yaml` from the cluster's files,
    /// keeping its name, namespace and shape. Returns false when the
    /// cluster has no `cacerts.yaml`.
    pub fn refresh_secret(&self, cluster: &str) -> Result<bool> {
        let path = self.cluster_dir(cluster)?.join(SECRET_YAML);
        if !path.exists() {
            return Ok(false);
        }
        let options = self.secret_options_of(cluster)?;
        let bundle = self.read_cluster(cluster)?;
        let yaml = cacerts_yaml(&bundle, &options)?;
        write_files(
            &[FileWrite {
                path,
                contents: yaml.as_bytes(),
                secret: true,
            }],
            true,
        )?;
        Ok(true)
    }

    /// The cluster directories under DIR (those holding `ca-cert.pem`), sorted.
    pub fn clusters(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.path).map_err(|e| Error::io(&self.path, e))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() && p.join(crate::bundle::CA_CERT).exists() {
                if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                    if validate_name("cluster name", name).is_ok() {
                        out.push(name.to_owned());
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Writes a cluster's bundle and its `cacerts.yaml` into `DIR/<cluster>`.
    /// `ca_crl` becomes `ca-crl.pem` (and enters the Secret) when given.
    pub fn write_cluster(
        &self,
        ca: &IntermediateCa,
        secret: &SecretOptions,
        ca_crl: Option<String>,
        force: bool,
    ) -> Result<ClusterBundle> {
        let dir = self.cluster_dir(ca.cluster())?;
        let bundle = ca.bundle().with_crl(ca_crl);
        let yaml = cacerts_yaml(&bundle, secret)?;
        bundle.write_dir(&dir, Some(&yaml), force)?;
        Ok(bundle)
    }

    /// Reads `DIR/<cluster>`'s four files.
    pub fn read_cluster(&self, cluster: &str) -> Result<ClusterBundle> {
        ClusterBundle::read_dir(&self.cluster_dir(cluster)?)
    }
}

/// Runs `f` on every item on up to `threads` threads, returning the results
/// in the items' order. Used for work that waits on the disk (fsync) or
/// uses the CPU per cluster, so a mesh of many clusters goes wide.
pub fn map_parallel<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: &(dyn Fn(T) -> R + Sync),
) -> Vec<R> {
    let n = items.len();
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return items.into_iter().map(f).collect();
    }
    let queue: Mutex<std::vec::IntoIter<(usize, T)>> = Mutex::new(
        items
            .into_iter()
            .enumerate()
            .collect::<Vec<_>>()
            .into_iter(),
    );
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let next = match queue.lock() {
                    Ok(mut q) => q.next(),
                    Err(_) => None,
                };
                let Some((i, item)) = next else { break };
                let r = f(item);
                if let Ok(mut res) = results.lock() {
                    if let Some(slot) = res.get_mut(i) {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// Generates one key per entry of `types`, on all cores, returning them in
/// order. `progress` is called (from worker threads) after each key with
/// the number of keys done so far and the index of the key just made.
pub fn generate_keys(
    types: &[KeyType],
    progress: &(dyn Fn(usize, usize) + Sync),
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
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, i);
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
        let keys = generate_keys(&types, &|_, _| {
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
