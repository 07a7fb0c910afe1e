//! The mesh stage: a certs directory as a whole. One root for every
//! cluster, no shared intermediate keys, the root never deployed as a
//! cluster CA, and every cluster's CA trusted by every other cluster's
//! roots (computed once per distinct root set, not per pair of clusters).

use std::collections::BTreeMap;

use super::load::{load_certs, CertFile, Loaded};
use super::parse::check_cert_alone;
use super::path::{check_path, validity_findings, PathInput};
use super::report::{err, join, warn, Code, Finding, Group, GroupKind, Severity};
use super::{verify_bundle_and_ca, BundleFiles, MeshFiles, VerifyOptions};
use crate::bundle::{CA_CERT, CA_KEY, ROOT_CERT, ROOT_KEY};
use crate::error::Error;

/// Distinct cluster root sets checked for cross-cluster trust; beyond this
/// many (a mesh in the middle of several rotations at once, or hostile
/// input) the rest are only compared as sets.
const MAX_ROOT_SETS: usize = 8;

/// A cluster's certificates, loaded once for the mesh and step checks.
pub(super) struct ClusterCa {
    label: String,
    ca: Option<Loaded>,
    intermediates: Vec<Loaded>,
    roots: Option<Vec<Vec<u8>>>,
}

impl ClusterCa {
    /// From a bundle's loaded files: `ca-cert.pem`'s first certificate,
    /// `cert-chain.pem` after its first, `root-cert.pem` (sorted, each once).
    pub(super) fn new(
        label: &str,
        ca: Option<&[Loaded]>,
        chain: Option<&[Loaded]>,
        roots: Option<&[Loaded]>,
    ) -> Self {
        let roots = roots.map(|v| {
            let mut d: Vec<Vec<u8>> = v.iter().map(|l| l.der.clone()).collect();
            d.sort();
            d.dedup();
            d
        });
        ClusterCa {
            label: label.to_owned(),
            ca: ca.and_then(|v| v.first()).cloned(),
            intermediates: chain
                .map(|c| c.iter().skip(1).cloned().collect())
                .unwrap_or_default(),
            roots,
        }
    }
}

pub(super) fn load_cluster(label: &str, files: &BundleFiles) -> ClusterCa {
    let mut scratch = Vec::new();
    let ca = load_certs(
        &join(label, CA_CERT),
        files.ca_cert.as_deref(),
        CertFile::First,
        &mut scratch,
    )
    .and_then(|v| v.into_iter().next());
    let chain = load_certs(
        "",
        files.cert_chain.as_deref(),
        CertFile::Pool,
        &mut scratch,
    )
    .unwrap_or_default();
    let intermediates = chain.into_iter().skip(1).collect();
    let roots = load_certs("", files.root_cert.as_deref(), CertFile::Pool, &mut scratch).map(|v| {
        let mut d: Vec<Vec<u8>> = v.into_iter().map(|l| l.der).collect();
        d.sort();
        d.dedup();
        d
    });
    ClusterCa {
        label: label.to_owned(),
        ca,
        intermediates,
        roots,
    }
}

/// Whether the cluster's CA chains to one of `roots` (DER).
pub(super) fn chains_to(c: &ClusterCa, roots: &[Vec<u8>], opts: &VerifyOptions) -> bool {
    let Some(ca) = &c.ca else { return true };
    let roots: Vec<Loaded> = roots
        .iter()
        .map(|d| Loaded::new(d.clone(), String::new()))
        .collect();
    let issued = super::issued_dns(ca, opts);
    let input = PathInput {
        ca,
        intermediates: &c.intermediates,
        roots: &roots,
        ca_file: "",
        chain_file: "",
        root_file: "",
        issued_dns: &issued,
        trust_domain: &opts.trust_domain,
    };
    check_path(&input, opts).is_some_and(|r| {
        r.trusted
            && !r.findings.iter().any(|f| {
                f.severity == Severity::Error
                    && matches!(f.code, Code::UntrustedChain | Code::BadSignature)
            })
    })
}

/// Whether another certificate of `roots` with the same subject and key
/// as `root` is valid at `opts.at`: a renewed copy that supersedes it.
fn superseded(root: &Loaded, roots: &[Loaded], opts: &VerifyOptions) -> bool {
    let Some(c) = root.cert() else {
        return false;
    };
    roots.iter().any(|o| {
        o.der != root.der
            && o.cert().is_some_and(|n| {
                let v = n.validity();
                n.subject().as_raw() == c.subject().as_raw()
                    && n.public_key().raw == c.public_key().raw
                    && v.not_before.to_datetime() <= opts.at
                    && opts.at <= v.not_after.to_datetime()
            })
    })
}

/// Verifies a mesh held in memory. `label` is the path prefix used in
/// finding file names (`"certs"` gives `certs/cluster1/ca-cert.pem`, `""`
/// gives `cluster1/ca-cert.pem`). Returns the `mesh` group followed by one
/// group per cluster, exactly as [`super::verify_certs_dir`] does.
pub fn verify_mesh(label: &str, mesh_files: &MeshFiles, opts: &VerifyOptions) -> Vec<Group> {
    let (names, files): (Vec<&str>, Vec<&BundleFiles>) = mesh_files
        .clusters
        .iter()
        .map(|(name, files)| (name.as_str(), files))
        .unzip();
    verify_mesh_with(label, mesh_files, &names, opts, &|i, name, clabel| {
        let empty = BundleFiles::default();
        let files = files.get(i).copied().unwrap_or(&empty);
        let (findings, ca) = verify_bundle_and_ca(clabel, Some(name), files, opts);
        (Group::new(name, clabel, GroupKind::Cluster, findings), ca)
    })
}

/// [`verify_mesh`] of the clusters `names`, the files of the `i`th got by
/// `files_of(i)` in the job that checks them (the root files are
/// `mesh_files`', its `clusters` are not looked at).
pub(crate) fn verify_mesh_by(
    label: &str,
    mesh_files: &MeshFiles,
    names: &[&str],
    opts: &VerifyOptions,
    files_of: &(dyn Fn(usize) -> BundleFiles + Sync),
) -> Vec<Group> {
    verify_mesh_with(label, mesh_files, names, opts, &|i, name, clabel| {
        let files = files_of(i);
        let (findings, ca) = verify_bundle_and_ca(clabel, Some(name), &files, opts);
        (Group::new(name, clabel, GroupKind::Cluster, findings), ca)
    })
}

/// [`verify_mesh`] with the clusters' files got by `check`: it is called
/// once per name of `names` (on all cores, with its index in `names`, the
/// name and the cluster's label) and returns the cluster's group and
/// loaded CA. The root files are `mesh_files`' (its `clusters` are not
/// looked at). A reader of a certs directory reads, checks and drops each
/// cluster's files in one job: a fleet's files are never all in memory at
/// once.
pub(super) fn verify_mesh_with(
    label: &str,
    mesh_files: &MeshFiles,
    names: &[&str],
    opts: &VerifyOptions,
    check: &(dyn Fn(usize, &str, &str) -> (Group, ClusterCa) + Sync),
) -> Vec<Group> {
    let mut mesh = Vec::new();
    let root_file = join(label, ROOT_CERT);
    let mesh_roots: Option<Vec<Loaded>> = match &mesh_files.root_cert {
        Some(bytes) => {
            let roots = load_certs(&root_file, Some(bytes), CertFile::Pool, &mut mesh);
            if let Some(roots) = &roots {
                for (i, r) in roots.iter().enumerate() {
                    check_cert_alone(r, &root_file, true, &mut mesh);
                    // An old copy of a renewed root (`meshca root --renew`
                    // keeps it after the renewed one) is only a warning
                    // once expired, as a cluster's roots off the path are:
                    // paths are built through the renewed copy.
                    let severity = if i > 0 && superseded(r, roots, opts) {
                        Severity::Warning
                    } else {
                        Severity::Error
                    };
                    validity_findings(r, &root_file, opts, severity, &mut mesh);
                }
            }
            roots
        }
        None => None,
    };
    let mesh_root_keys: Vec<Vec<u8>> = mesh_roots
        .iter()
        .flatten()
        .filter_map(|r| r.cert().map(|c| c.public_key().raw.to_vec()))
        .collect();
    if let Some(bytes) = &mesh_files.root_key {
        let key_file = join(label, ROOT_KEY);
        match crate::key::PrivateKey::from_pem(&key_file, bytes) {
            Ok(k) => {
                let spki = k.public_key_der();
                if mesh_roots.is_some() && !mesh_root_keys.iter().any(|r| r == spki.as_slice()) {
                    mesh.push(err(
                        Code::KeyMismatch,
                        &key_file,
                        format!("{key_file} does not match {root_file}"),
                    ));
                }
            }
            Err(Error::EncryptedKey { .. }) => {} // an encrypted root key at rest is good practice
            Err(e) => mesh.push(err(Code::KeyUnparsable, &key_file, e.to_string())),
        }
    }
    if let Some(bytes) = &mesh_files.root_crl {
        let crl_file = join(label, crate::crl::ROOT_CRL);
        let roots = mesh_roots.as_deref().unwrap_or(&[]);
        super::crl::check_root_crl(&crl_file, roots, bytes, opts, &mut mesh);
    }
    // Clusters are independent: check them on all cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let indexed: Vec<(usize, &str)> = names.iter().copied().enumerate().collect();
    let checked = crate::mesh::map_parallel(indexed, threads, &|(i, name): (usize, &str)| {
        check(i, name, &join(label, name))
    });
    let (groups, cas): (Vec<Group>, Vec<ClusterCa>) = checked.into_iter().unzip();
    // The mesh root file is what `bundle` hands out and every new cluster
    // copies: it holds self-signed CAs only, as a cluster's root-cert.pem
    // does. A certificate some cluster's root-cert.pem also holds is
    // reported there, once.
    for r in mesh_roots.iter().flatten() {
        let in_a_cluster = cas
            .iter()
            .any(|c| c.roots.as_ref().is_some_and(|v| v.contains(&r.der)));
        if !in_a_cluster {
            super::check_root(r, &root_file, &mut mesh);
        }
    }
    let mut keys: BTreeMap<Vec<u8>, &str> = BTreeMap::new();
    for c in &cas {
        let Some(ca) = c.ca.as_ref().and_then(|l| l.cert()) else {
            continue;
        };
        let spki = ca.public_key().raw.to_vec();
        if mesh_root_keys.contains(&spki) {
            mesh.push(err(
                Code::RootAsClusterCa,
                &join(&c.label, CA_CERT),
                format!(
                    "{} carries the mesh root's own key ({root_file}): the offline root would be online in that cluster; issue an intermediate instead",
                    join(&c.label, CA_CERT)
                ),
            ));
        }
        if let Some(other) = keys.get(&spki) {
            mesh.push(err(
                Code::SharedKey,
                &join(&c.label, CA_KEY),
                format!(
                    "{} and {} share the same intermediate key; every cluster needs its own",
                    join(&c.label, CA_CERT),
                    join(other, CA_CERT)
                ),
            ));
        } else {
            keys.insert(spki, &c.label);
        }
    }
    // The reference roots: the mesh's, else the first cluster's.
    let reference: Option<(String, Vec<Vec<u8>>)> = match &mesh_roots {
        Some(m) => {
            let mut v: Vec<Vec<u8>> = m.iter().map(|l| l.der.clone()).collect();
            v.sort();
            v.dedup();
            Some((root_file.clone(), v))
        }
        None => cas
            .iter()
            .find_map(|c| c.roots.clone().map(|r| (join(&c.label, ROOT_CERT), r))),
    };
    if let Some((ref_file, rset)) = &reference {
        for c in &cas {
            let Some(cset) = &c.roots else { continue };
            let cfile = join(&c.label, ROOT_CERT);
            if cfile == *ref_file {
                continue;
            }
            // Both sets are sorted: a binary search keeps this linear-ish
            // however many roots the files hold.
            if !cset.iter().any(|r| rset.binary_search(r).is_ok()) {
                mesh.push(err(
                    Code::RootDiffers,
                    &cfile,
                    format!("{cfile} is not the mesh root ({ref_file}): its workloads will not trust the other clusters'"),
                ));
            } else if cset != rset {
                mesh.push(warn(
                    Code::RootSetDiffers,
                    &cfile,
                    format!("{cfile} holds a different set of roots than {ref_file} (fine during a root rotation)"),
                ));
            }
        }
    }
    mesh.extend(cross_trust(&cas, reference.as_ref(), opts));
    if names.is_empty() {
        mesh.push(warn(
            Code::NoClusters,
            if root_file.is_empty() {
                ROOT_CERT
            } else {
                &root_file
            },
            format!(
                "{} has no cluster directories",
                if label.is_empty() { "." } else { label }
            ),
        ));
    }
    let mut all = vec![Group::new(
        "mesh",
        if label.is_empty() { "." } else { label },
        GroupKind::Mesh,
        mesh,
    )];
    all.extend(groups);
    all
}

/// Every cluster's CA must chain to the reference roots and to every
/// distinct root set other clusters hold: workloads elsewhere check it
/// against their own `root-cert.pem`. One path search per (cluster,
/// distinct root set).
fn cross_trust(
    cas: &[ClusterCa],
    reference: Option<&(String, Vec<Vec<u8>>)>,
    opts: &VerifyOptions,
) -> Vec<Finding> {
    let mut out = Vec::new();
    // Distinct root sets, each with the first cluster holding it.
    let mut sets: Vec<(String, &Vec<Vec<u8>>)> = Vec::new();
    if let Some((f, r)) = reference {
        sets.push((f.clone(), r));
    }
    for c in cas {
        if let Some(r) = &c.roots {
            if !sets.iter().any(|(_, s)| *s == r) && sets.len() < MAX_ROOT_SETS {
                sets.push((join(&c.label, ROOT_CERT), r));
            }
        }
    }
    // Clusters are independent: checked on all cores, findings in order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let found = crate::mesh::map_parallel(cas.iter().collect(), threads, &|c: &ClusterCa| {
        // A cluster that does not chain to its own roots is reported in its group.
        if c.roots.as_ref().is_some_and(|own| !chains_to(c, own, opts)) {
            return None;
        }
        for (k, (holder, set)) in sets.iter().enumerate() {
            // Its own set was just checked.
            if c.roots.as_ref() == Some(*set) {
                continue;
            }
            if chains_to(c, set, opts) {
                continue;
            }
            let ca_file = join(&c.label, CA_CERT);
            let message = if k == 0 {
                format!("{ca_file} chains to a root that is not the mesh root ({holder}); the other clusters' workloads reject its workloads, even if its own root-cert.pem holds both roots")
            } else {
                format!("{ca_file} does not chain to the roots of {holder}: workloads of clusters holding those roots reject its workloads")
            };
            return Some(err(Code::ForeignRoot, &ca_file, message));
        }
        None
    });
    out.extend(found.into_iter().flatten());
    out
}
