//! A mesh held in memory, and the workflows over it.
//!
//! A [`Mesh`] is what a certs directory holds: the root (its certificate
//! and, when kept here, its key file), the root's CRL, and every cluster's
//! bundle with its profile (key type, SANs, Secret shape and namespace,
//! CRL). Workflows ([`Mesh::add_clusters`], [`Mesh::revoke`],
//! [`Mesh::write_crls`], [`Mesh::rotation`], [`Mesh::add_workload`]) are
//! pure: they never touch the file system and return a new mesh or a typed
//! error, leaving `self` as it was. [`Mesh::verify`] checks a mesh as
//! `meshca verify` checks a directory; [`crate::store`] loads and saves
//! one.
//!
//! ```text
//! DIR/root-cert.pem  DIR/root-key.pem  DIR/root-crl.pem
//! DIR/<cluster>/{ca-cert,ca-key,cert-chain,root-cert,ca-crl}.pem  DIR/<cluster>/cacerts.yaml
//! ```

mod renew;
mod text;

pub use renew::{Due, RenewKeys, RenewOptions, Renewed, RootRenewal};

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::bundle::{ClusterBundle, CA_CERT, CA_CRL, CA_KEY, ROOT_CERT, ROOT_KEY, SECRET_YAML};
use crate::crl::{Reason, Revocation, ROOT_CRL};
use crate::error::{Error, Result};
use crate::issue::{IntermediateCa, RootCa};
use crate::key::PrivateKey;
use crate::profile::{validate_name, IntermediateParams, KeyType, NameConstraints, WorkloadParams};
use crate::secret::{cacerts_yaml, SecretData, SecretOptions, SecretShape};
use crate::verify::{BundleFiles, Code, MeshFiles, Report, Severity, VerifyOptions};

/// The root of a mesh: `root-cert.pem` and, when the directory keeps it,
/// `root-key.pem` exactly as stored (it may be encrypted).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MeshRoot {
    /// `root-cert.pem` (several roots during a rotation).
    pub cert: String,
    /// `root-key.pem` as stored, zeroized on drop; `None` when the mesh
    /// signs with a key kept elsewhere (a Secret, a rotation stage, a
    /// token).
    pub key: Option<Zeroizing<String>>,
    /// `root-key.uri`: the `pkcs11:` URI (never with a PIN) of a root key
    /// kept in a token.
    pub key_uri: Option<crate::keyref::Pkcs11Uri>,
}

impl fmt::Debug for MeshRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshRoot")
            .field("cert", &format_args!("{} bytes", self.cert.len()))
            .field("key", &self.key.as_ref().map(|_| "[secret key elided]"))
            .field("key_uri", &self.key_uri.as_ref().map(|u| u.to_string()))
            .finish()
    }
}

/// What a cluster's intermediate and Secret should look like: kept through
/// re-issues and rotations.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterProfile {
    /// The intermediate's key type (`None`: the key could not be read).
    pub key_type: Option<KeyType>,
    /// The intermediate's DNS SANs.
    pub san_dns: Vec<String>,
    /// The `cacerts` Secret's name, namespace and shape; `None` when the
    /// cluster has no `cacerts.yaml`.
    pub secret: Option<SecretOptions>,
    /// The intermediate's name constraints (`None`: unconstrained); a
    /// re-issued intermediate gets the same.
    pub name_constraints: Option<NameConstraints>,
}

/// One cluster: its bundle, its profile and its `cacerts.yaml`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cluster {
    /// `ca-cert.pem`, `ca-key.pem`, `cert-chain.pem`, `root-cert.pem`,
    /// `ca-crl.pem`.
    pub bundle: ClusterBundle,
    /// What the cluster's intermediate and Secret look like.
    pub profile: ClusterProfile,
    /// `cacerts.yaml` as stored (zeroized: it holds the key).
    pub secret_yaml: Option<Zeroizing<String>>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("bundle", &self.bundle)
            .field("profile", &self.profile)
            .field("secret_yaml", &self.secret_yaml.as_ref().map(|y| y.len()))
            .finish()
    }
}

impl Cluster {
    /// The cluster's files as its directory holds them.
    pub(crate) fn files(&self) -> BundleFiles {
        let b = &self.bundle;
        BundleFiles {
            ca_cert: Some(b.ca_cert.as_bytes().to_vec()),
            ca_key: Some(Zeroizing::new(b.ca_key.as_bytes().to_vec())),
            cert_chain: Some(b.cert_chain.as_bytes().to_vec()),
            root_cert: Some(b.root_cert.as_bytes().to_vec()),
            ca_crl: b.ca_crl.as_ref().map(|s| s.as_bytes().to_vec()),
            cacerts_yaml: self
                .secret_yaml
                .as_ref()
                .map(|y| Zeroizing::new(y.as_bytes().to_vec())),
        }
    }

    /// A cluster from its bundle, its profile read from the bundle and
    /// the Secret (when `secret_yaml` is given).
    pub fn from_bundle(
        name: &str,
        bundle: ClusterBundle,
        secret_yaml: Option<Zeroizing<String>>,
    ) -> Result<Cluster> {
        let key_type = PrivateKey::from_pem(&format!("{name}/{CA_KEY}"), bundle.ca_key.as_bytes())
            .ok()
            .map(|k| k.key_type());
        let san_dns = dns_sans(bundle.ca_cert.as_bytes());
        let name_constraints = name_constraints_of(bundle.ca_cert.as_bytes(), &san_dns);
        let secret = match &secret_yaml {
            Some(yaml) => Some(secret_options_of(
                &format!("{name}/{SECRET_YAML}"),
                yaml.as_bytes(),
            )?),
            None => None,
        };
        Ok(Cluster {
            bundle,
            profile: ClusterProfile {
                key_type,
                san_dns,
                secret,
                name_constraints,
            },
            secret_yaml,
        })
    }

    /// Rewrites `cacerts.yaml` from the bundle, when the cluster has one.
    fn refresh_secret(&mut self) -> Result<()> {
        if let Some(options) = &self.profile.secret {
            self.secret_yaml = Some(cacerts_yaml(&self.bundle, options)?);
        }
        Ok(())
    }
}

/// The Secret options of a `cacerts.yaml` (name, namespace, shape).
fn secret_options_of(what: &str, yaml: &[u8]) -> Result<SecretOptions> {
    let old = SecretData::from_yaml(what, yaml)?;
    let mut options = SecretOptions {
        name: old.name.clone(),
        ..SecretOptions::default()
    };
    if let Some(ns) = &old.namespace {
        options.namespace = ns.clone();
    }
    if old.type_.as_deref() == Some("kubernetes.io/tls") {
        options.shape = SecretShape::Tls;
    }
    Ok(options)
}

/// The name constraints of `ca-cert.pem`, its own DNS SANs left out of
/// the extra DNS suffixes (a re-issue adds its SANs again).
fn name_constraints_of(cert_pem: &[u8], san_dns: &[String]) -> Option<NameConstraints> {
    let ders = crate::pemutil::certificates("ca-cert.pem", cert_pem).ok()?;
    let mut nc = crate::issue::read_name_constraints(ders.first()?)?;
    let own: Vec<String> = NameConstraints::new(Vec::new(), Vec::new()).permitted_dns(san_dns);
    nc.permit_dns
        .retain(|d| !own.iter().any(|o| o.eq_ignore_ascii_case(d)));
    Some(nc)
}

fn dns_sans(cert_pem: &[u8]) -> Vec<String> {
    let Ok(ders) = crate::pemutil::certificates("ca-cert.pem", cert_pem) else {
        return Vec::new();
    };
    let Some(der) = ders.first() else {
        return Vec::new();
    };
    let Ok(cert) = crate::issue::parse("ca-cert.pem", der) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = name {
                out.push((*d).to_owned());
            }
        }
    }
    out
}

/// A file of a mesh that is not part of the CA layout (a workload's
/// certificate and key), by path relative to the certs directory.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExtraFile {
    /// The bytes.
    pub contents: Zeroizing<Vec<u8>>,
    /// Whether it holds a private key (mode 0600).
    pub secret: bool,
}

impl fmt::Debug for ExtraFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            write!(f, "ExtraFile([secret key elided])")
        } else {
            write!(f, "ExtraFile({} bytes)", self.contents.len())
        }
    }
}

/// One file of a mesh's layout: its bytes, borrowed from the mesh (a
/// fleet's layout is tens of megabytes; copying it, then wiping the copy,
/// was a tenth of a save).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct FileOut<'a> {
    pub(crate) contents: std::borrow::Cow<'a, [u8]>,
    pub(crate) secret: bool,
}

/// A certs directory held in memory.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct Mesh {
    /// The root, if the mesh has one.
    pub root: Option<MeshRoot>,
    /// `root-crl.pem`: the root's latest CRL.
    pub root_crl: Option<String>,
    /// The clusters, by name.
    pub clusters: BTreeMap<String, Cluster>,
    /// Other files the mesh writes (workload certificates), by path
    /// relative to the certs directory.
    pub extra: BTreeMap<PathBuf, ExtraFile>,
}

/// A cluster to add with [`Mesh::add_clusters`].
#[derive(Debug)]
#[non_exhaustive]
pub struct NewCluster {
    /// Its name (a DNS label).
    pub name: String,
    /// The intermediate's profile (the key's type wins over `params.key_type`).
    pub params: IntermediateParams,
    /// The intermediate's key.
    pub key: PrivateKey,
    /// The Secret written as `cacerts.yaml` (`None`: no `cacerts.yaml`).
    pub secret: Option<SecretOptions>,
}

impl NewCluster {
    /// A cluster to add, with the default Secret.
    pub fn new(name: &str, params: IntermediateParams, key: PrivateKey) -> Self {
        NewCluster {
            name: name.to_owned(),
            params,
            key,
            secret: Some(SecretOptions::default()),
        }
    }
}

/// What [`Mesh::add_clusters`] did for one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Added {
    /// The cluster.
    pub name: String,
    /// The intermediate's key type.
    pub key_type: KeyType,
    /// Its `notAfter`.
    pub not_after: OffsetDateTime,
    /// Whether its validity was cut to the root's end.
    pub clamped: bool,
    /// Whether it replaced an existing intermediate.
    pub replaced: bool,
    /// Whether it got a `ca-crl.pem` (the mesh uses CRLs).
    pub crl: bool,
}

impl Mesh {
    /// A mesh with nothing in it.
    pub fn new() -> Self {
        Mesh::default()
    }

    /// The cluster `name`, or [`Error::UnknownCluster`] listing the
    /// clusters there are, nearest to `name` first.
    pub fn cluster(&self, name: &str) -> Result<&Cluster> {
        self.clusters.get(name).ok_or_else(|| self.unknown(name))
    }

    fn unknown(&self, name: &str) -> Error {
        unknown_cluster(name, self.clusters.keys().cloned().collect())
    }

    /// Checks that every name is a cluster of the mesh.
    pub fn check_clusters(&self, names: &[String]) -> Result<()> {
        for n in names {
            self.cluster(n)?;
        }
        Ok(())
    }

    /// Whether `signer` is this mesh's root: its certificate is one of
    /// `root-cert.pem`'s (or the mesh has no root yet).
    fn check_signer(&self, signer: &RootCa) -> Result<()> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        let ours = crate::pemutil::certificates(ROOT_CERT, root.cert.as_bytes())?;
        if ours.iter().any(|d| d.as_slice() == signer.cert_der()) {
            Ok(())
        } else {
            Err(Error::Refused {
                what: ROOT_CERT.into(),
                reason: "the signing CA is not this mesh's root: its clusters would not trust \
                         each other, and the root's CRL is signed by another CA"
                    .into(),
            })
        }
    }

    /// The mesh with a new root (`key_pem`: its `root-key.pem` as it is to
    /// be stored, possibly encrypted; a root whose key is in a token is
    /// recorded by its URI, `root-key.uri`, instead). Refuses when the mesh has a root,
    /// unless `replace`: every cluster then still chains to the old one,
    /// and [`Mesh::verify`] says so.
    pub fn with_root(
        &self,
        root: &RootCa,
        key_pem: Option<Zeroizing<String>>,
        replace: bool,
    ) -> Result<Mesh> {
        if self.root.is_some() && !replace {
            return Err(Error::AlreadyExists {
                path: ROOT_CERT.into(),
            });
        }
        let mut new = self.clone();
        new.root = Some(MeshRoot {
            cert: root.roots_pem().to_owned(),
            key: key_pem,
            // A root in a token is recorded by its URI, never with a PIN.
            key_uri: root.key().token_uri().map(|u| u.without_pin()),
        });
        if replace {
            // The old root's CRL is no use to the new root.
            new.root_crl = None;
        }
        Ok(new)
    }

    /// Issues an intermediate for every cluster of `new`, signed by
    /// `signer` (the mesh's root; a mesh without one takes the signer's
    /// certificate as its `root-cert.pem`). An existing cluster is refused
    /// unless `replace`; a replaced cluster keeps its `ca-crl.pem` (renewed
    /// for the new intermediate). When the mesh has a root CRL, every new
    /// cluster gets a `ca-crl.pem` too, except with the kubernetes.io/tls
    /// Secret shape, where istiod ignores it. Each cluster's Secret is what
    /// its [`NewCluster::secret`] says.
    pub fn add_clusters(
        &self,
        signer: &RootCa,
        new: Vec<NewCluster>,
        replace: bool,
        now: OffsetDateTime,
    ) -> Result<(Mesh, Vec<Added>)> {
        self.check_signer(signer)?;
        let mut seen = std::collections::HashSet::with_capacity(new.len());
        for c in &new {
            validate_name("cluster name", &c.name)?;
            if !seen.insert(c.name.as_str()) {
                return Err(Error::InvalidArgument {
                    what: "cluster name",
                    value: c.name.clone(),
                    reason: "given twice".into(),
                });
            }
            if self.clusters.contains_key(&c.name) && !replace {
                return Err(Error::AlreadyExists {
                    path: PathBuf::from(&c.name).join(CA_CERT),
                });
            }
        }
        let mut mesh = self.clone();
        if mesh.root.is_none() {
            mesh.root = Some(MeshRoot {
                cert: signer.roots_pem().to_owned(),
                key: None,
                key_uri: None,
            });
        }
        // One root CRL for every cluster that needs a ca-crl.pem: the
        // mesh's, or (when a re-issued cluster had CRLs without one) a new,
        // empty one, then kept as root-crl.pem.
        let needs_crl = |c: &NewCluster| {
            // istiod ignores ca-crl.pem in the kubernetes.io/tls layout
            // (pilot/pkg/bootstrap/istio_ca.go, detectSigningCABundleAndCRL),
            // and verify refuses the pair: such a cluster gets none.
            let tls = c
                .secret
                .as_ref()
                .is_some_and(|s| s.shape == SecretShape::Tls);
            !tls && (self.root_crl.is_some()
                || self
                    .clusters
                    .get(&c.name)
                    .is_some_and(|o| o.bundle.ca_crl.is_some()))
        };
        let root_crl = match &self.root_crl {
            Some(crl) => Some(crl.clone()),
            None if new.iter().any(needs_crl) => {
                Some(signer.crl(None, &[], now, crate::crl::DEFAULT_CRL_DAYS)?)
            }
            None => None,
        };
        mesh.root_crl = root_crl.clone();
        let issued: Vec<Result<(String, Cluster, Added)>> = new
            .into_par_iter()
            .map(|c| {
                let old = self.clusters.get(&c.name);
                let uses_crl = needs_crl(&c);
                let issued = signer.issue_intermediate(&c.name, &c.params, c.key, now)?;
                let ca_crl = match (&root_crl, uses_crl) {
                    (Some(root_crl), true) => Some(issued.ca.ca_crl(
                        root_crl.as_bytes(),
                        None,
                        now,
                        crate::crl::DEFAULT_CRL_DAYS,
                    )?),
                    _ => None,
                };
                let bundle = issued.ca.bundle().with_crl(ca_crl);
                let mut cluster = Cluster {
                    bundle,
                    profile: ClusterProfile {
                        key_type: Some(issued.ca.key_type()),
                        san_dns: c.params.san_dns.clone(),
                        secret: c.secret,
                        name_constraints: c.params.name_constraints.clone(),
                    },
                    secret_yaml: None,
                };
                cluster.refresh_secret()?;
                let added = Added {
                    name: c.name.clone(),
                    key_type: issued.ca.key_type(),
                    not_after: issued.ca.not_after(),
                    clamped: issued.clamped,
                    replaced: old.is_some(),
                    crl: uses_crl,
                };
                Ok((c.name, cluster, added))
            })
            .collect();
        let mut added = Vec::new();
        for r in issued {
            let (name, cluster, a) = r?;
            mesh.clusters.insert(name, cluster);
            added.push(a);
        }
        Ok((mesh, added))
    }

    /// Revokes `cluster`'s intermediate in the root's CRL (made if the mesh
    /// has none, its number one higher), and puts the new root CRL into the
    /// `ca-crl.pem` (and `cacerts.yaml`) of every cluster that has one.
    /// Needs only the cluster's `ca-cert.pem`. Returns the new mesh and the
    /// clusters whose `ca-crl.pem` changed.
    pub fn revoke(
        &self,
        signer: &RootCa,
        cluster: &str,
        reason: Reason,
        now: OffsetDateTime,
        next_update_days: u32,
    ) -> Result<(Mesh, Vec<String>)> {
        self.check_signer(signer)?;
        let target = self.cluster(cluster)?;
        let what = format!("{cluster}/{CA_CERT}");
        let (serial, issuer) =
            crate::crl::serial_and_issuer(&what, target.bundle.ca_cert.as_bytes())?;
        let root_subject = crate::issue::parse("root", signer.cert_der())?
            .subject()
            .as_raw()
            .to_vec();
        if issuer != root_subject {
            return Err(Error::Refused {
                what,
                reason: "not issued by this root: revoke it with its own issuer".into(),
            });
        }
        let crl = signer.crl(
            self.root_crl.as_deref().map(str::as_bytes),
            &[Revocation::new(serial, now, reason)],
            now,
            next_update_days,
        )?;
        let mut mesh = self.clone();
        let updated = mesh.spread_root_crl(signer, &crl)?;
        mesh.root_crl = Some(crl);
        Ok((mesh, updated))
    }

    /// Puts `root_crl` into every cluster's `ca-crl.pem` in place of the
    /// root's old CRL. All or nothing: a cluster whose `ca-crl.pem` is
    /// unreadable fails the whole step.
    fn spread_root_crl(&mut self, signer: &RootCa, root_crl: &str) -> Result<Vec<String>> {
        let mut updated = Vec::new();
        for (name, cluster) in &mut self.clusters {
            let Some(old) = &cluster.bundle.ca_crl else {
                continue;
            };
            let new = crate::crl::replace_crl_of(
                &format!("{name}/{CA_CRL}"),
                old.as_bytes(),
                signer.cert_der(),
                root_crl,
            )?;
            cluster.bundle.ca_crl = Some(new);
            cluster.refresh_secret()?;
            updated.push(name.clone());
        }
        Ok(updated)
    }

    /// Writes `ca-crl.pem` for each of `clusters`: the root's CRL (an
    /// empty one, number 1, is made when the mesh has none) and the
    /// intermediate's own, numbered one above its previous one.
    pub fn write_crls(
        &self,
        signer: &RootCa,
        clusters: &[String],
        now: OffsetDateTime,
        next_update_days: u32,
    ) -> Result<Mesh> {
        self.check_signer(signer)?;
        self.check_clusters(clusters)?;
        let mut mesh = self.clone();
        let root_crl = match &self.root_crl {
            Some(crl) => crl.clone(),
            None => signer.crl(None, &[], now, next_update_days)?,
        };
        mesh.root_crl = Some(root_crl.clone());
        for name in clusters {
            let Some(cluster) = mesh.clusters.get_mut(name) else {
                return Err(self.unknown(name));
            };
            let ca = IntermediateCa::from_bundle(name, &cluster.bundle)?;
            let previous = cluster.bundle.ca_crl.as_deref().map(str::as_bytes);
            let crl = ca.ca_crl(root_crl.as_bytes(), previous, now, next_update_days)?;
            cluster.bundle.ca_crl = Some(crl);
            cluster.refresh_secret()?;
        }
        Ok(mesh)
    }

    /// The key types the clusters' new intermediates get in a rotation:
    /// each keeps its own (an unreadable key is an error naming it).
    pub fn key_types(&self, clusters: &[String]) -> Result<Vec<KeyType>> {
        clusters
            .iter()
            .map(|name| {
                self.cluster(name)?
                    .profile
                    .key_type
                    .ok_or_else(|| Error::BadKey {
                        what: format!("{name}/{CA_KEY}"),
                        reason: "cannot be read, so its key type is unknown".into(),
                    })
            })
            .collect()
    }

    /// The three stages of moving `clusters` from this mesh's root (A) to
    /// `new_root` (B), Istio's multi-root mesh (`ISTIO_MULTIROOT_MESH=true`):
    ///
    /// 1. every cluster's `root-cert.pem` = A+B; intermediates unchanged
    ///    (with their CRLs: a revoked intermediate stays revoked);
    /// 2. new intermediates from B, one `keys` entry per cluster (each of
    ///    the cluster's key type), `params` for the rest of the profile
    ///    (SANs: the cluster's own); `root-cert.pem` still A+B; a cluster
    ///    that had a `ca-crl.pem` gets one from B (`new_root_crl`, or an
    ///    empty one made here);
    /// 3. `root-cert.pem` = B only.
    ///
    /// The stages hold no root key; stage 1 keeps A's `root-crl.pem`,
    /// stages 2 and 3 hold B's when a cluster uses CRLs. `self` is left as
    /// it was; any error (an unknown cluster, an unreadable key) comes
    /// before any stage exists.
    pub fn rotation(
        &self,
        new_root: &RootCa,
        new_root_crl: Option<&str>,
        clusters: &[String],
        params: &IntermediateParams,
        keys: Vec<PrivateKey>,
        now: OffsetDateTime,
    ) -> Result<[Mesh; 3]> {
        self.check_clusters(clusters)?;
        if clusters.is_empty() {
            return Err(Error::Refused {
                what: "rotation".into(),
                reason: "no clusters to rotate".into(),
            });
        }
        if keys.len() != clusters.len() {
            return Err(Error::InvalidArgument {
                what: "keys",
                value: keys.len().to_string(),
                reason: format!("one key per cluster is needed ({})", clusters.len()),
            });
        }
        let Some(root) = &self.root else {
            return Err(Error::MissingFile {
                path: ROOT_CERT.into(),
                hint: String::new(),
            });
        };
        let new_roots = new_root.roots_pem().to_owned();
        let both = crate::pemutil::concat(&[&root.cert, &new_roots]);
        let uses_crl = clusters.iter().any(|c| {
            self.clusters
                .get(c)
                .is_some_and(|c| c.bundle.ca_crl.is_some())
        });
        let b_crl = match (new_root_crl, uses_crl) {
            (Some(crl), _) => Some(crl.to_owned()),
            (None, true) => Some(new_root.crl(None, &[], now, crate::crl::DEFAULT_CRL_DAYS)?),
            (None, false) => None,
        };
        let stage_root = |cert: &str, crl: Option<String>| Mesh {
            root: Some(MeshRoot {
                cert: cert.to_owned(),
                key: None,
                key_uri: None,
            }),
            root_crl: crl,
            clusters: BTreeMap::new(),
            extra: BTreeMap::new(),
        };
        let mut s1 = stage_root(&both, self.root_crl.clone());
        let mut s2 = stage_root(&both, b_crl.clone());
        let mut s3 = stage_root(&new_roots, b_crl.clone());
        let work: Vec<(&String, PrivateKey)> = clusters.iter().zip(keys).collect();
        let staged: Vec<Result<(String, [Cluster; 3])>> = work
            .into_par_iter()
            .map(|(name, key)| {
                let old = self.cluster(name)?;
                // Stage 1: trust B as well; the A-issued intermediate stays.
                let mut c1 = old.clone();
                c1.bundle.root_cert = both.clone();
                c1.refresh_secret()?;
                // Stage 2: a new intermediate from B, same profile.
                let mut p = params.clone();
                if !old.profile.san_dns.is_empty() {
                    p.san_dns = old.profile.san_dns.clone();
                }
                if old.profile.name_constraints.is_some() {
                    p.name_constraints = old.profile.name_constraints.clone();
                }
                let issued = new_root.issue_intermediate(name, &p, key, now)?;
                let ca_crl = match (&b_crl, old.bundle.ca_crl.is_some()) {
                    (Some(b), true) => Some(issued.ca.ca_crl(
                        b.as_bytes(),
                        None,
                        now,
                        crate::crl::DEFAULT_CRL_DAYS,
                    )?),
                    _ => None,
                };
                let mut b2 = issued.ca.bundle().with_crl(ca_crl);
                b2.root_cert = both.clone();
                let mut c2 = Cluster {
                    bundle: b2,
                    profile: ClusterProfile {
                        key_type: Some(issued.ca.key_type()),
                        san_dns: p.san_dns.clone(),
                        secret: old.profile.secret.clone(),
                        name_constraints: p.name_constraints.clone(),
                    },
                    secret_yaml: None,
                };
                c2.refresh_secret()?;
                // Stage 3: B only.
                let mut c3 = c2.clone();
                c3.bundle.root_cert = new_roots.clone();
                c3.refresh_secret()?;
                Ok((name.clone(), [c1, c2, c3]))
            })
            .collect();
        for r in staged {
            let (name, [c1, c2, c3]) = r?;
            s1.clusters.insert(name.clone(), c1);
            s2.clusters.insert(name.clone(), c2);
            s3.clusters.insert(name, c3);
        }
        Ok([s1, s2, s3])
    }

    /// Issues a VM workload certificate for `namespace` with `issuer`'s
    /// intermediate, as the recipe's `<ns>-certs`: `key.pem`,
    /// `workload-cert.pem`, `workload-cert-chain.pem` and `root-cert.pem`
    /// in `<namespace>/`. Existing workload files are refused unless
    /// `replace`.
    pub fn add_workload(
        &self,
        issuer: &str,
        namespace: &str,
        params: &WorkloadParams,
        key: PrivateKey,
        replace: bool,
        now: OffsetDateTime,
    ) -> Result<(Mesh, crate::issue::Workload)> {
        validate_name("namespace", namespace)?;
        let cluster = self.cluster(issuer)?;
        let ca = IntermediateCa::from_bundle(issuer, &cluster.bundle)?;
        let workload = ca.issue_workload(namespace, params, key, now)?;
        let dir = PathBuf::from(namespace);
        let mut mesh = self.clone();
        let key_pem = workload.key.to_pem();
        for (name, bytes, secret) in [
            (WORKLOAD_KEY, key_pem.as_bytes(), true),
            (WORKLOAD_CERT, workload.cert.as_bytes(), false),
            (WORKLOAD_CHAIN, workload.chain.as_bytes(), false),
        ] {
            let path = dir.join(name);
            if !replace && self.extra.contains_key(&path) {
                return Err(Error::AlreadyExists { path });
            }
            mesh.extra.insert(
                path,
                ExtraFile {
                    contents: Zeroizing::new(bytes.to_vec()),
                    secret,
                },
            );
        }
        if !mesh.clusters.contains_key(namespace) {
            mesh.extra.insert(
                dir.join(ROOT_CERT),
                ExtraFile {
                    contents: Zeroizing::new(workload.root_cert.as_bytes().to_vec()),
                    secret: false,
                },
            );
        }
        Ok((mesh, workload))
    }

    /// The mesh as the files of a certs directory, for [`crate::verify_mesh`].
    pub fn files(&self) -> MeshFiles {
        // Copied on all cores: a fleet's files are tens of megabytes, and
        // most of the copying is the kernel handing out fresh pages.
        let clusters: BTreeMap<String, BundleFiles> = self
            .clusters
            .par_iter()
            .map(|(name, c)| (name.clone(), c.files()))
            .collect();
        MeshFiles {
            clusters,
            ..self.root_files()
        }
    }

    /// The mesh's files at the top of its certs directory (its `clusters`
    /// left empty).
    fn root_files(&self) -> MeshFiles {
        MeshFiles {
            root_cert: self.root.as_ref().map(|r| r.cert.as_bytes().to_vec()),
            root_key: self
                .root
                .as_ref()
                .and_then(|r| r.key.as_ref())
                .map(|k| Zeroizing::new(k.as_bytes().to_vec())),
            root_crl: self.root_crl.as_ref().map(|c| c.as_bytes().to_vec()),
            clusters: BTreeMap::new(),
        }
    }

    /// Every file of the mesh's layout, by path relative to the certs
    /// directory.
    pub(crate) fn layout(&self) -> BTreeMap<PathBuf, FileOut<'_>> {
        let mut out: BTreeMap<PathBuf, FileOut<'_>> = BTreeMap::new();
        let mut put = |path: PathBuf, bytes, secret: bool| {
            out.insert(
                path,
                FileOut {
                    contents: bytes,
                    secret,
                },
            );
        };
        if let Some(root) = &self.root {
            put(ROOT_CERT.into(), root.cert.as_bytes().into(), false);
            if let Some(key) = &root.key {
                put(ROOT_KEY.into(), key.as_bytes().into(), true);
            }
            if let Some(uri) = &root.key_uri {
                let line = format!("{}\n", uri.without_pin());
                put(
                    crate::keyref::ROOT_KEY_URI.into(),
                    line.into_bytes().into(),
                    false,
                );
            }
        }
        if let Some(crl) = &self.root_crl {
            put(ROOT_CRL.into(), crl.as_bytes().into(), false);
        }
        for (path, f) in &self.extra {
            put(path.clone(), f.contents.as_slice().into(), f.secret);
        }
        for (name, c) in &self.clusters {
            let dir = PathBuf::from(name);
            for (file, bytes, secret) in c.bundle.documents() {
                put(dir.join(file), bytes.into(), secret);
            }
            if let Some(yaml) = &c.secret_yaml {
                put(dir.join(SECRET_YAML), yaml.as_bytes().into(), true);
            }
        }
        out
    }

    /// The trust domain the clusters' name constraints agree on, for
    /// checking the mesh (`meshca verify --trust-domain`): `None` when no
    /// cluster is name-constrained; else the default trust domain if every
    /// constrained cluster permits it, else the first trust domain of the
    /// first constrained cluster that every one permits (`None` if none is
    /// common, so the default is checked and the disagreement shows).
    pub fn constrained_trust_domain(&self) -> Option<String> {
        let constrained: Vec<&NameConstraints> = self
            .clusters
            .values()
            .filter_map(|c| c.profile.name_constraints.as_ref())
            .collect();
        let first = constrained.first()?;
        let all_permit = |td: &str| {
            constrained
                .iter()
                .all(|nc| nc.trust_domains.iter().any(|t| t.eq_ignore_ascii_case(td)))
        };
        if all_permit(crate::profile::DEFAULT_TRUST_DOMAIN) {
            return Some(crate::profile::DEFAULT_TRUST_DOMAIN.to_owned());
        }
        first
            .trust_domains
            .iter()
            .find(|td| all_permit(td))
            .cloned()
    }

    /// Verifies the mesh as `meshca verify` verifies a certs directory
    /// (`label` prefixes the file names of findings).
    pub fn verify(&self, label: &str, opts: &VerifyOptions) -> Report {
        // The report `verify_mesh(label, &self.files(), opts)` gives, with
        // each cluster's files copied in the job that checks them: a fleet
        // is never in memory twice.
        let (names, clusters): (Vec<&str>, Vec<&Cluster>) =
            self.clusters.iter().map(|(n, c)| (n.as_str(), c)).unzip();
        let groups = crate::verify::verify_mesh_by(label, &self.root_files(), &names, opts, &|i| {
            clusters.get(i).map(|c| c.files()).unwrap_or_default()
        });
        Report::new(groups, opts)
    }

    /// Verify before write: fails with [`Error::WouldNotVerify`] when
    /// [`Mesh::verify`] finds an error in this mesh, so a command that
    /// succeeds leaves a mesh that verifies. Errors that `old` (the mesh
    /// it was made from, `None` for a new one) already had are listed
    /// after the new ones and marked as such: the operator fixes them
    /// first, or in the same command (`meshca renew A B`). A revoked
    /// intermediate (`revoked`) is the operator's own doing and never
    /// blocks. Both meshes are checked with `opts`.
    pub fn check_against(&self, old: Option<&Mesh>, opts: &VerifyOptions) -> Result<Report> {
        self.check_against_with(old, opts, ExistingErrors::Refuse)
    }

    /// [`Mesh::check_against`], with what to do about errors `old` already
    /// had ([`ExistingErrors::Allow`]: they do not block, the report still
    /// holds them).
    pub fn check_against_with(
        &self,
        old: Option<&Mesh>,
        opts: &VerifyOptions,
        existing: ExistingErrors,
    ) -> Result<Report> {
        let mut reports = Mesh::check_all_against_with(&[self], old, opts, existing)?;
        reports
            .pop()
            .ok_or(Error::WouldNotVerify { errors: Vec::new() })
    }

    /// [`Mesh::check_against`] for several meshes made from the same `old`
    /// (the stages of a rotation): `old` is verified at most once, and only
    /// when a mesh has errors. Returns the reports in order, or the first
    /// failing mesh's errors.
    pub fn check_all_against(
        meshes: &[&Mesh],
        old: Option<&Mesh>,
        opts: &VerifyOptions,
    ) -> Result<Vec<Report>> {
        Mesh::check_all_against_with(meshes, old, opts, ExistingErrors::Refuse)
    }

    /// [`Mesh::check_all_against`], with what to do about errors `old`
    /// already had.
    pub fn check_all_against_with(
        meshes: &[&Mesh],
        old: Option<&Mesh>,
        opts: &VerifyOptions,
        existing: ExistingErrors,
    ) -> Result<Vec<Report>> {
        let errors = |report: &Report| -> Vec<(Code, String, String)> {
            report
                .findings()
                .filter(|f| f.severity == Severity::Error && f.code != Code::Revoked)
                .map(|f| (f.code, f.file.clone(), f.message.clone()))
                .collect()
        };
        // `old` is verified only when a new mesh has errors (to tell those
        // it had already): a clean result needs no comparison.
        let mut before: Option<std::collections::HashSet<(Code, String, String)>> = None;
        let mut out = Vec::with_capacity(meshes.len());
        for mesh in meshes {
            let report = mesh.verify("", opts);
            let found = errors(&report);
            if found.is_empty() {
                out.push(report);
                continue;
            }
            let before = before.get_or_insert_with(|| {
                old.map(|m| errors(&m.verify("", opts)).into_iter().collect())
                    .unwrap_or_default()
            });
            let (had, fresh): (Vec<_>, Vec<_>) =
                found.into_iter().partition(|e| before.contains(e));
            if fresh.is_empty() && existing == ExistingErrors::Allow {
                out.push(report);
                continue;
            }
            let mut errors: Vec<String> = fresh
                .into_iter()
                .map(|(code, _, message)| format!("{code}: {message}"))
                .collect();
            errors.extend(
                had.into_iter()
                    .map(|(code, _, message)| format!("{code}: {message} ({ALREADY_SO})")),
            );
            return Err(Error::WouldNotVerify { errors });
        }
        Ok(out)
    }
}

/// What an error of [`Error::WouldNotVerify`] that the mesh had before the
/// command says about itself.
pub const ALREADY_SO: &str = "already so before this command: fix it first, or in the same command";

/// What a verify-before-write check ([`Mesh::check_against_with`]) does
/// with errors the mesh already had before the change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExistingErrors {
    /// Any error refuses the change: a change that is saved leaves a mesh
    /// that verifies.
    #[default]
    Refuse,
    /// Errors the old mesh had do not block (a repair done in steps, such
    /// as renewing an expired root and then its expired intermediates);
    /// new ones still do.
    Allow,
}

/// [`Error::UnknownCluster`] for `name`, the `known` clusters nearest to
/// it (by edit distance, a transposition counting once) first.
pub(crate) fn unknown_cluster(name: &str, mut known: Vec<String>) -> Error {
    known.sort_by_key(|k| (strsim::damerau_levenshtein(name, k), k.clone()));
    Error::UnknownCluster {
        name: name.to_owned(),
        known,
    }
}

/// `key.pem`: a VM workload's key.
pub const WORKLOAD_KEY: &str = "key.pem";
/// `workload-cert.pem`: a VM workload's certificate.
pub const WORKLOAD_CERT: &str = "workload-cert.pem";
/// `workload-cert-chain.pem`: leaf, intermediate, root.
pub const WORKLOAD_CHAIN: &str = "workload-cert-chain.pem";

/// Runs `f` on every item on rayon's pool, results in the items' order.
/// `_threads` is kept for the callers written for the old pool.
pub(crate) fn map_parallel<T: Send, R: Send>(
    items: Vec<T>,
    _threads: usize,
    f: &(dyn Fn(T) -> R + Sync),
) -> Vec<R> {
    items.into_par_iter().map(f).collect()
}

/// Generates one key per entry of `types`, on all cores, returning them in
/// order. `progress` is called (from worker threads) after each key with
/// the number of keys done so far and the index of the key just made.
pub fn generate_keys(
    types: &[KeyType],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<PrivateKey>> {
    let done = AtomicUsize::new(0);
    types
        .par_iter()
        .enumerate()
        .map(|(i, kt)| {
            let key = PrivateKey::generate(*kt);
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, i);
            key
        })
        .collect()
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

    /// A fixed time and an ECDSA P-256 root made at it.
    fn p256_root() -> (OffsetDateTime, RootCa) {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let rp = crate::profile::RootParams {
            key_type: KeyType::EcdsaP256,
            ..Default::default()
        };
        (now, RootCa::generate(&rp, now).unwrap())
    }

    #[test]
    fn name_constraints_are_read_back_into_the_profile() {
        let (now, root) = p256_root();
        let nc = NameConstraints::new(
            vec!["cluster.local".into(), "east.example".into()],
            vec![".mesh.example.com".into(), "ISTIOD.mesh.svc".into()],
        );
        let params = IntermediateParams {
            key_type: KeyType::EcdsaP256,
            san_dns: vec!["istiod.mesh.svc".into(), "*.istiod.mesh.svc".into()],
            name_constraints: Some(nc),
            ..Default::default()
        };
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let new = vec![NewCluster::new("c1", params, key)];
        let (mesh, _) = Mesh::new().add_clusters(&root, new, false, now).unwrap();
        let c = mesh.cluster("c1").unwrap();
        let read = Cluster::from_bundle("c1", c.bundle.clone(), None).unwrap();
        let got = read.profile.name_constraints.unwrap();
        assert_eq!(got.trust_domains, ["cluster.local", "east.example"]);
        // The SANs (a wildcard as its suffix, case-insensitively once) are
        // the intermediate's own; only the extra suffix is kept.
        assert_eq!(got.permit_dns, [".mesh.example.com"]);
        assert_eq!(
            got.permitted_dns(&read.profile.san_dns),
            ["istiod.mesh.svc", ".istiod.mesh.svc", ".mesh.example.com"]
        );
        // Unconstrained intermediates read back as such.
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let plain = IntermediateParams {
            key_type: KeyType::EcdsaP256,
            ..Default::default()
        };
        let new = vec![NewCluster::new("c2", plain, key)];
        let (mesh, _) = mesh.add_clusters(&root, new, false, now).unwrap();
        let b = mesh.cluster("c2").unwrap().bundle.clone();
        let read = Cluster::from_bundle("c2", b, None).unwrap();
        assert_eq!(read.profile.name_constraints, None);
    }

    /// `Mesh::verify` copies each cluster's files in the job that checks
    /// them: its report is the one of the whole mesh's files copied first,
    /// findings and order included.
    #[test]
    fn verify_in_memory_is_verify_of_the_mesh_files() {
        let (now, root) = p256_root();
        let new: Vec<NewCluster> = ["c1", "c2", "c3", "c4"]
            .iter()
            .map(|n| {
                let params = IntermediateParams {
                    key_type: KeyType::EcdsaP256,
                    ..Default::default()
                };
                NewCluster::new(n, params, PrivateKey::generate(KeyType::EcdsaP256).unwrap())
            })
            .collect();
        let (mut mesh, _) = Mesh::new().add_clusters(&root, new, false, now).unwrap();
        // c2 holds c3's key; c4 lost its Secret.
        let c3_key = mesh.clusters["c3"].bundle.ca_key.clone();
        mesh.clusters.get_mut("c2").unwrap().bundle.ca_key = c3_key;
        mesh.clusters.get_mut("c4").unwrap().secret_yaml = None;
        let opts = VerifyOptions::at(now);
        let streamed = mesh.verify("certs", &opts);
        let copied = Report::new(
            crate::verify::verify_mesh("certs", &mesh.files(), &opts),
            &opts,
        );
        assert_eq!(streamed, copied);
        assert!(!streamed.ok);
        assert_eq!(streamed.groups.len(), 5);
        assert!(
            streamed.groups[2]
                .findings
                .iter()
                .any(|f| f.code == crate::verify::Code::KeyMismatch
                    && f.file == "certs/c2/ca-key.pem")
        );
    }

    /// Regression: constraints meshca does not write (here DNS-only with
    /// an excluded subtree) must not be re-issued narrowed to what meshca
    /// understands, which would widen them.
    #[test]
    fn foreign_name_constraints_are_not_re_issued_wider() {
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.name_constraints = Some(rcgen::NameConstraints {
            permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName("example.com".into())],
            excluded_subtrees: vec![rcgen::GeneralSubtree::DnsName("bad.example.com".into())],
        });
        let cert = p.self_signed(&key).unwrap();
        let b = ClusterBundle::new(
            cert.pem(),
            Zeroizing::new(String::new()),
            String::new(),
            String::new(),
        );
        let c = Cluster::from_bundle("c1", b, None).unwrap();
        let nc = c.profile.name_constraints.unwrap();
        let err = nc.validate().unwrap_err().to_string();
        assert!(err.contains("would widen"), "{err}");
    }

    #[test]
    fn bad_trust_domains_and_suffixes_are_refused() {
        for (tds, dns) in [
            (vec!["Cluster.Local"], vec![]),
            (vec!["spiffe://cluster.local"], vec![]),
            (vec!["*.cluster.local"], vec![]),
            (vec!["cluster.local"], vec!["*.example.com"]),
            (vec!["cluster.local"], vec!["a..b"]),
        ] {
            let nc = NameConstraints::new(
                tds.iter().map(|s| s.to_string()).collect(),
                dns.iter().map(|s| s.to_string()).collect(),
            );
            assert!(nc.validate().is_err(), "{tds:?} {dns:?}");
        }
        assert!(NameConstraints::default().validate().is_ok());
        assert!(NameConstraints::default()
            .check_verifier_support(true)
            .is_err());
    }

    #[test]
    fn unknown_cluster_lists_the_nearest_first() {
        let mut mesh = Mesh::new();
        for name in ["west", "east", "north"] {
            let b = ClusterBundle::new(
                String::new(),
                Zeroizing::new(String::new()),
                String::new(),
                String::new(),
            );
            mesh.clusters
                .insert(name.into(), Cluster::from_bundle(name, b, None).unwrap());
        }
        let err = mesh.cluster("eats").unwrap_err();
        match &err {
            Error::UnknownCluster { known, .. } => assert_eq!(known, &["east", "west", "north"]),
            other => panic!("{other}"),
        }
        assert!(
            err.to_string().contains("clusters: east, west, north"),
            "{err}"
        );
    }
}
