//! Verification of cluster bundles and whole meshes, the way istiod (Go's
//! crypto/x509) and Envoy will judge them, and more.
//!
//! Verification never stops at the first problem: it returns every
//! [`Finding`] (severity, file, stable code, message), grouped per cluster
//! in a [`Report`]. It works on bytes in memory ([`BundleFiles`],
//! [`MeshFiles`]); [`verify_paths`] and friends read directories first.
//!
//! Stages, one module each: `load` (what istiod reads from each file),
//! `parse` (each certificate as Go's parser judges it), `path` (the chain
//! and the rules along it), `crl`, `secret`, `mesh`, `step`, and `report`
//! (the finding types); `dir` reads directories.

use std::collections::BTreeMap;
use std::fmt;

use time::OffsetDateTime;

mod crl;
mod dir;
mod load;
pub(crate) mod memo;
mod mesh;
mod parse;
mod path;
mod report;
mod secret;
mod step;

pub use dir::{verify_certs_dir, verify_cluster_dir, verify_paths, verify_step};
pub use mesh::verify_mesh;
pub(crate) use mesh::verify_mesh_by;
pub use report::{Code, Finding, Group, GroupKind, Report, Severity};
pub use step::verify_mesh_step;

use crate::bundle::{CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT, SECRET_YAML};
use crate::secret::SecretData;
use load::{load_certs, load_key, CertFile, Loaded};
use report::{err, join, warn};

/// When and how strictly to check.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// The time validity is checked at (the CLI passes now; tests pin it).
    pub at: OffsetDateTime,
    /// Warn about certificates expiring within this many days (default 30).
    pub warn_days: u32,
    /// The mesh's trust domain (default `cluster.local`): workloads get
    /// `spiffe://<trust domain>/ns/<ns>/sa/<sa>` identities, which every
    /// name constraint on the chain must permit.
    pub trust_domain: String,
    /// The namespace istiod runs in and reads `cacerts` from (default
    /// `istio-system`); istiod's own certificate names `istiod.<ns>.svc`.
    pub namespace: String,
    /// Take istiod's namespace from each cluster's files instead: the
    /// namespace its `cacerts.yaml` is for, else the `<ns>` of its CA's one
    /// `istiod.<ns>.svc` subjectAltName (as the recipe's and meshca's
    /// intermediates have); `namespace` is the fallback. On by default; off
    /// when the operator states the namespace (then a Secret for another
    /// namespace is an error).
    pub infer_namespace: bool,
    /// For rollout steps ([`verify_mesh_step`]): istiod runs with
    /// `ISTIO_MULTIROOT_MESH=true`, so a new `root-cert.pem` that is a
    /// superset or a subset of the old one is accepted. Off by default, as
    /// in Istio: then any byte change of `root-cert.pem` makes istiod
    /// ignore the whole update.
    pub multiroot: bool,
}

impl VerifyOptions {
    /// Options checking at `at`, warning 30 days ahead, for trust domain
    /// `cluster.local` and namespace `istio-system`.
    pub fn at(at: OffsetDateTime) -> Self {
        VerifyOptions {
            at,
            warn_days: 30,
            trust_domain: "cluster.local".to_owned(),
            namespace: "istio-system".to_owned(),
            infer_namespace: true,
            multiroot: false,
        }
    }
}

/// istiod's namespace as `ca`'s subjectAltNames tell it: the `<ns>` of its
/// one `istiod.<ns>.svc` DNS name.
fn namespace_of_ca(ca: &Loaded) -> Option<String> {
    let c = ca.cert()?;
    let san = c.subject_alternative_name().ok()??;
    let mut found = san.value.general_names.iter().filter_map(|g| match g {
        x509_parser::extensions::GeneralName::DNSName(d) => d
            .strip_prefix("istiod.")
            .and_then(|r| r.strip_suffix(".svc"))
            .filter(|ns| !ns.is_empty() && !ns.contains('.')),
        _ => None,
    });
    let ns = found.next()?;
    found.next().is_none().then(|| ns.to_owned())
}

/// The files of one cluster bundle, as bytes (`None`: the file is absent).
/// Lets a program verify a bundle without touching the file system.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BundleFiles {
    /// `ca-cert.pem`.
    pub ca_cert: Option<Vec<u8>>,
    /// `ca-key.pem` (zeroized on drop).
    pub ca_key: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// `cert-chain.pem`.
    pub cert_chain: Option<Vec<u8>>,
    /// `root-cert.pem`.
    pub root_cert: Option<Vec<u8>>,
    /// `ca-crl.pem` (optional).
    pub ca_crl: Option<Vec<u8>>,
    /// `cacerts.yaml` (optional; zeroized on drop).
    pub cacerts_yaml: Option<zeroize::Zeroizing<Vec<u8>>>,
}

impl fmt::Debug for BundleFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = |o: Option<usize>| o.map_or("absent".to_owned(), |n| format!("{n} bytes"));
        f.debug_struct("BundleFiles")
            .field("ca_cert", &len(self.ca_cert.as_ref().map(Vec::len)))
            .field("ca_key", &"[secret key elided]")
            .field("cert_chain", &len(self.cert_chain.as_ref().map(Vec::len)))
            .field("root_cert", &len(self.root_cert.as_ref().map(Vec::len)))
            .field("ca_crl", &len(self.ca_crl.as_ref().map(Vec::len)))
            .field(
                "cacerts_yaml",
                &len(self.cacerts_yaml.as_ref().map(|v| v.len())),
            )
            .finish()
    }
}

/// Every file of a certs directory, as bytes (`None`: absent). Lets a
/// program verify a whole mesh held in memory and get the same report as
/// from disk.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MeshFiles {
    /// `DIR/root-cert.pem`.
    pub root_cert: Option<Vec<u8>>,
    /// `DIR/root-key.pem` (may be encrypted PKCS#8; zeroized on drop).
    pub root_key: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// `DIR/root-crl.pem`.
    pub root_crl: Option<Vec<u8>>,
    /// `DIR/<name>/...`, by cluster name.
    pub clusters: BTreeMap<String, BundleFiles>,
}

impl fmt::Debug for MeshFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = |o: Option<usize>| o.map_or("absent".to_owned(), |n| format!("{n} bytes"));
        f.debug_struct("MeshFiles")
            .field("root_cert", &len(self.root_cert.as_ref().map(Vec::len)))
            .field("root_key", &"[secret key elided]")
            .field("root_crl", &len(self.root_crl.as_ref().map(Vec::len)))
            .field("clusters", &self.clusters)
            .finish()
    }
}

/// The DNS names istiod will put in certificates it issues with `ca`: its
/// own `istiod.<namespace>.svc` and the CA's own DNS subjectAltNames.
fn issued_dns(ca: &Loaded, opts: &VerifyOptions) -> Vec<String> {
    let mut names = vec![format!("istiod.{}.svc", opts.namespace)];
    // Case-folded names seen so far: a set, as a CA may list many names.
    let mut seen: std::collections::HashSet<String> =
        names.iter().map(|n| n.to_ascii_lowercase()).collect();
    if let Some(c) = ca.cert() {
        if let Ok(Some(san)) = c.subject_alternative_name() {
            for g in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(d) = g {
                    if seen.insert(d.to_ascii_lowercase()) {
                        names.push((*d).to_owned());
                    }
                }
            }
        }
    }
    names
}

/// Verifies one cluster bundle given as bytes. `label` prefixes file names
/// in findings (`cluster2` gives `cluster2/ca-key.pem`); `dir_name` is the
/// cluster directory's name for the L= check (None to skip).
pub fn verify_bundle(
    label: &str,
    dir_name: Option<&str>,
    files: &BundleFiles,
    opts: &VerifyOptions,
) -> Vec<Finding> {
    verify_bundle_and_ca(label, dir_name, files, opts).0
}

/// [`verify_bundle`], also returning the cluster's certificates as the
/// mesh stage reads them (loaded once for both).
fn verify_bundle_and_ca(
    label: &str,
    dir_name: Option<&str>,
    files: &BundleFiles,
    opts: &VerifyOptions,
) -> (Vec<Finding>, mesh::ClusterCa) {
    let mut out = Vec::new();
    let ca_file = join(label, CA_CERT);
    let key_file = join(label, CA_KEY);
    let chain_file = join(label, CERT_CHAIN);
    let root_file = join(label, ROOT_CERT);

    // Load: what istiod reads from each file.
    let ca_certs = load_certs(
        &ca_file,
        files.ca_cert.as_deref(),
        CertFile::First,
        &mut out,
    );
    // The Secret, read once: its namespace and the secret stage use it.
    let secret_file = join(label, SECRET_YAML);
    let secret = files
        .cacerts_yaml
        .as_deref()
        .map(|yaml| (yaml.as_slice(), SecretData::from_yaml(&secret_file, yaml)));
    let inferred;
    let stated_by_files = secret
        .as_ref()
        .and_then(|(_, s)| s.as_ref().ok())
        .and_then(|s| s.namespace.clone())
        .or_else(|| ca_certs.as_ref()?.first().and_then(namespace_of_ca));
    let opts = match stated_by_files {
        Some(ns) if opts.infer_namespace && ns != opts.namespace => {
            inferred = VerifyOptions {
                namespace: ns,
                ..opts.clone()
            };
            &inferred
        }
        _ => opts,
    };
    let chain = load_certs(
        &chain_file,
        files.cert_chain.as_deref(),
        CertFile::Pool,
        &mut out,
    );
    load::check_chain_blocks(
        &chain_file,
        files.cert_chain.as_deref(),
        files.ca_crl.is_some(),
        &mut out,
    );
    let roots = load_certs(
        &root_file,
        files.root_cert.as_deref(),
        CertFile::Pool,
        &mut out,
    );
    // What the mesh stage needs of this cluster, from these same loads.
    let cluster = mesh::ClusterCa::new(
        label,
        ca_certs.as_deref(),
        chain.as_deref(),
        roots.as_deref(),
    );
    if files.ca_key.is_none() {
        out.push(err(
            Code::MissingFile,
            &key_file,
            format!("{key_file} is missing"),
        ));
    }
    let ca = ca_certs.as_ref().and_then(|v| v.first());
    let key = load_key(
        &key_file,
        files.ca_key.as_deref().map(|k| k.as_slice()),
        ca.and_then(|c| c.cert()).map(|c| c.public_key().raw),
        &mut out,
    );

    // Parse: root-cert.pem holds self-signed CAs only.
    if let Some(roots) = &roots {
        for r in roots {
            parse::check_cert_alone(r, &root_file, true, &mut out);
            check_root(r, &root_file, &mut out);
        }
    }
    if let Some(v) = &ca_certs {
        if v.len() > 1 {
            out.push(warn(
                Code::ExtraCertificate,
                &ca_file,
                format!(
                    "{ca_file} holds {} certificates; istiod uses only the first",
                    v.len()
                ),
            ));
        }
    }
    if let (Some(k), Some(ca)) = (&key, ca) {
        if let Some(c) = ca.cert() {
            if c.public_key().raw != k.as_slice() {
                out.push(err(
                    Code::KeyMismatch,
                    &key_file,
                    format!("{key_file} does not match {ca_file}"),
                ));
            }
        }
    }
    let Some(ca) = ca else {
        return (out, cluster);
    };
    parse::check_cert_alone(ca, &ca_file, false, &mut out);
    check_ca_itself(ca, &ca_file, dir_name, &mut out);
    if let Some(chain) = &chain {
        let root_ders: std::collections::HashSet<&[u8]> =
            roots.iter().flatten().map(|r| r.der.as_slice()).collect();
        for c in chain.iter().skip(1) {
            let is_root = root_ders.contains(c.der.as_slice());
            parse::check_cert_alone(c, &chain_file, is_root, &mut out);
        }
        if chain.first().map(|c| &c.der) != Some(&ca.der) {
            out.push(err(
                Code::ChainStart,
                &chain_file,
                format!("{chain_file} does not start with {ca_file}; istiod serves it after every workload certificate"),
            ));
        }
    }
    if roots
        .as_ref()
        .is_some_and(|r| r.iter().any(|x| x.der == ca.der))
    {
        out.push(err(
            Code::RootAsClusterCa,
            &ca_file,
            format!("{ca_file} is a root of {root_file} itself: the offline root's key would be online in this cluster; issue an intermediate instead"),
        ));
    }

    path_stage(
        &Files {
            ca_file: &ca_file,
            chain_file: &chain_file,
            root_file: &root_file,
        },
        ca,
        roots.as_deref(),
        chain.as_deref(),
        files,
        label,
        opts,
        &mut out,
    );
    (
        finish(
            out,
            files,
            secret.as_ref(),
            label,
            &ca_file,
            &key_file,
            opts,
        ),
        cluster,
    )
}

/// The names of a bundle's files in findings.
struct Files<'a> {
    ca_file: &'a str,
    chain_file: &'a str,
    root_file: &'a str,
}

/// The path stage (the chain istiod's crypto/x509 builds, the rules along
/// it, the chain's shape) and the CRL stage, which need both
/// `root-cert.pem` and `cert-chain.pem`.
#[allow(clippy::too_many_arguments)]
fn path_stage(
    names: &Files<'_>,
    ca: &Loaded,
    roots: Option<&[Loaded]>,
    chain: Option<&[Loaded]>,
    files: &BundleFiles,
    label: &str,
    opts: &VerifyOptions,
    out: &mut Vec<Finding>,
) {
    let Files {
        ca_file,
        chain_file,
        root_file,
    } = *names;
    // Path: the chain istiod's crypto/x509 builds, and the rules along it.
    let (Some(roots), Some(chain)) = (roots, chain) else {
        return;
    };
    let intermediates: &[Loaded] = chain.get(1..).unwrap_or(&[]);
    let issued = issued_dns(ca, opts);
    let input = path::PathInput {
        ca,
        intermediates,
        roots,
        ca_file,
        chain_file,
        root_file,
        issued_dns: &issued,
        trust_domain: &opts.trust_domain,
    };
    let Some(found) = path::check_path(&input, opts) else {
        return;
    };
    out.extend(found.findings);
    let (path, trusted) = (found.path, found.trusted);
    // Roots not on the path: expired ones are only a warning.
    for r in roots.iter() {
        if !path.iter().any(|p| p.der == r.der) {
            path::validity_findings(r, root_file, opts, Severity::Warning, out);
        }
    }
    if trusted {
        check_chain_shape(&path, chain, ca_file, chain_file, out);
    }

    // CRL: ca-crl.pem against the chain.
    if let Some(crl) = files.ca_crl.as_deref() {
        crl::check_crls(label, chain, crl, opts, out);
    }
}

/// The last stages: the Secret, and de-duplication of key findings.
fn finish(
    mut out: Vec<Finding>,
    files: &BundleFiles,
    secret: Option<&(&[u8], crate::error::Result<SecretData>)>,
    label: &str,
    ca_file: &str,
    key_file: &str,
    opts: &VerifyOptions,
) -> Vec<Finding> {
    // A key istiod cannot use is reported once, on the certificate; the
    // crypto library's refusal to load the same key adds nothing.
    if out
        .iter()
        .any(|f| f.file == ca_file && matches!(f.code, Code::WeakKey | Code::UnsupportedKey))
    {
        out.retain(|f| {
            !(f.file == key_file
                && matches!(
                    f.code,
                    Code::KeyUnparsable | Code::UnsupportedKey | Code::ExplicitCurve
                ))
        });
    }
    if let Some((_, parsed)) = secret {
        secret::check_secret(label, files, parsed, opts, &mut out);
    }
    // The same rule may be met on several candidate paths: say it once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|f| seen.insert((f.severity, f.code, f.file.clone(), f.message.clone())));
    out
}

/// A certificate of `root-cert.pem` must be a self-signed CA.
fn check_root(r: &Loaded, root_file: &str, out: &mut Vec<Finding>) {
    let Some(c) = r.cert() else { return };
    let self_signed =
        c.subject().as_raw() == c.issuer().as_raw() && path::self_signature_ok(&r.digest, c);
    let ca = load::go_is_ca(c);
    if !self_signed || !ca {
        out.push(err(
            Code::RootNotSelfSignedCa,
            root_file,
            format!(
                "{} ({}) is not a self-signed CA certificate{}",
                r.name,
                c.subject(),
                if !self_signed {
                    ": its issuer is someone else"
                } else {
                    ": CA:TRUE is missing"
                }
            ),
        ));
    }
}

/// `ca-cert.pem` must itself be a CA that may sign workload certificates.
fn check_ca_itself(ca: &Loaded, ca_file: &str, dir_name: Option<&str>, out: &mut Vec<Finding>) {
    let Some(c) = ca.cert() else { return };
    // Go reads extensions only from a version 3 certificate (parser.go
    // parseCertificate, `if cert.Version == 3`): for istiod a v1/v2
    // ca-cert.pem has no basicConstraints (ca.go NewPluggedCertIstioCAOptions:
    // "certificate is not authorized to sign other certificates").
    if c.version() != x509_parser::x509::X509Version::V3 {
        out.push(err(
            Code::NotCa,
            ca_file,
            format!(
                "{ca_file} is a version {} certificate: Go ignores the extensions of a certificate below version 3, so istiod does not see it as a CA",
                c.version().0 + 1
            ),
        ));
    }
    match load::go_basic_constraints(c) {
        _ if c.version() != x509_parser::x509::X509Version::V3 => {}
        Some((true, _)) => {}
        _ => out.push(err(
            Code::NotCa,
            ca_file,
            format!("{ca_file} is not a CA certificate (basicConstraints CA:TRUE missing): istiod cannot sign workloads with it"),
        )),
    }
    if let Ok(Some(ku)) = c.key_usage() {
        if !ku.value.key_cert_sign() {
            out.push(err(
                Code::NoKeyCertSign,
                ca_file,
                format!("{ca_file}'s keyUsage lacks keyCertSign: the workload certificates it signs will not verify"),
            ));
        }
    }
    if c.subject_alternative_name().ok().flatten().is_none() {
        out.push(warn(
            Code::NoSan,
            ca_file,
            format!("{ca_file} has no subjectAltName (the recipe puts DNS:istiod.istio-system.svc there)"),
        ));
    }
    if let Some(dir) = dir_name {
        let locality: Vec<String> = c
            .subject()
            .iter_locality()
            .filter_map(|a| a.as_str().ok().map(str::to_owned))
            .collect();
        if let Some(l) = locality.first() {
            if l != dir {
                out.push(warn(
                    Code::LocalityMismatch,
                    ca_file,
                    format!("{ca_file} says L={l} but sits in directory {dir}: is it the right cluster's certificate?"),
                ));
            }
        }
    }
}

/// With a trusted path: the intermediate's lifetime against its root, and
/// `cert-chain.pem` against the path (root included).
fn check_chain_shape(
    path: &[&Loaded],
    chain: &[Loaded],
    ca_file: &str,
    chain_file: &str,
    out: &mut Vec<Finding>,
) {
    if let (Some(root), Some(ca_c)) = (
        path.last().and_then(|r| r.cert()),
        path.first().and_then(|c| c.cert()),
    ) {
        let ra = root.validity().not_after.to_datetime();
        let ca_a = ca_c.validity().not_after.to_datetime();
        if ca_a > ra && path.len() > 1 {
            out.push(warn(
                Code::OutlivesRoot,
                ca_file,
                format!("{ca_file} (until {}) outlives its root (until {}): it stops working when the root expires", report::day(ca_a), report::day(ra)),
            ));
        }
    }
    let chain_ders: Vec<&Vec<u8>> = chain.iter().map(|c| &c.der).collect();
    let path_ders: Vec<&Vec<u8>> = path.iter().map(|c| &c.der).collect();
    if chain_ders != path_ders {
        let without_root = path_ders
            .get(..path_ders.len().saturating_sub(1))
            .unwrap_or(&[]);
        if chain_ders == without_root {
            out.push(warn(
                Code::ChainWithoutRoot,
                chain_file,
                format!("{chain_file} does not end with the root; istiod works, but workloads' chains will lack it"),
            ));
        } else if chain_ders.first() == path_ders.first() {
            out.push(warn(
                Code::ChainOrder,
                chain_file,
                format!("{chain_file} is not the issuing order {ca_file} → … → root, or holds extra certificates"),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
