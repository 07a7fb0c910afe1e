//! The step stage: from one rollout step of a mesh to the next, as istiod
//! reloads its `cacerts` (istio/istio pilot/pkg/bootstrap/istio_ca.go,
//! `handleEvent`, and security/pkg/pki/util/keycertbundle.go):
//!
//! - a `root-cert.pem` whose bytes changed is ignored, and with it the
//!   whole update (new intermediate and CRL included), unless istiod runs
//!   with `ISTIO_MULTIROOT_MESH=true` ([`VerifyOptions::multiroot`]); then
//!   the new roots must be a superset or a subset of the old ones
//!   (`pemBundleHasSubsetRelation`, which also refuses an empty set);
//! - a removed or emptied `ca-crl.pem` leaves istiod with the CRL it holds
//!   (`setAllFromPem` only replaces the CRL with a non-empty one);
//! - a new `ca-crl.pem` that fails istiod's `Verify` fails the whole update,
//!   and istiod keeps the old bundle.

use std::collections::BTreeMap;

use super::load::{load_certs, CertFile};
use super::mesh::{chains_to, load_cluster};
use super::report::{err, join, Code, Finding, Group, GroupKind};
use super::{BundleFiles, MeshFiles, VerifyOptions};
use crate::bundle::{CA_CERT, CA_CRL, ROOT_CERT};

/// Codes of findings about `ca-crl.pem` that mean istiod's `Verify`
/// refuses it (not Envoy's staleness rules: istiod does not check dates).
const CRL_LOAD_CODES: &[Code] = &[
    Code::CrlMissing,
    Code::CrlBadSignature,
    Code::CrlSignerNoCrlSign,
    Code::GoParse,
    Code::NotPem,
    Code::WrongContent,
    Code::TooLarge,
    Code::BadCertificate,
];

/// The rollout-step check of two meshes in memory, `prev` then `cur`: for
/// every cluster present in both, how istiod takes the change of its
/// files (see the module docs; `opts.multiroot` says whether istiod runs
/// with `ISTIO_MULTIROOT_MESH=true`), and every cluster's CA at one step
/// must chain to the roots of every cluster at the other, so workloads
/// keep trusting each other while clusters move one by one.
pub fn verify_mesh_step(
    prev_label: &str,
    prev: &MeshFiles,
    cur_label: &str,
    cur: &MeshFiles,
    opts: &VerifyOptions,
) -> Group {
    let mut out = Vec::new();
    let roots_of = |label: &str, files: &BundleFiles, out: &mut Vec<Finding>| -> Vec<Vec<u8>> {
        let mut scratch = Vec::new();
        let certs = load_certs(
            &join(label, ROOT_CERT),
            files.root_cert.as_deref(),
            CertFile::Pool,
            &mut scratch,
        );
        if certs.is_none() {
            out.extend(scratch);
        }
        let mut v: Vec<Vec<u8>> = certs
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.der)
            .collect();
        v.sort();
        v
    };
    // Each cluster on its own, on all cores (a changed CRL is loaded again).
    let pairs: Vec<(&String, &BundleFiles, &BundleFiles)> = cur
        .clusters
        .iter()
        .filter_map(|(name, new)| prev.clusters.get(name).map(|old| (name, old, new)))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_cluster = crate::mesh::map_parallel(pairs, threads, &|(name, old_files, new_files)| {
        let mut out = Vec::new();
        let old_label = join(prev_label, name);
        let new_label = join(cur_label, name);
        let file = join(&new_label, ROOT_CERT);
        let old_file = join(&old_label, ROOT_CERT);
        if opts.multiroot {
            let old = roots_of(&old_label, old_files, &mut out);
            let new = roots_of(&new_label, new_files, &mut out);
            let sub = new.iter().all(|r| old.contains(r));
            let sup = old.iter().all(|r| new.contains(r));
            if old.is_empty() || new.is_empty() || (!sub && !sup) {
                out.push(err(
                    Code::RootStep,
                    &file,
                    format!(
                        "{file} is neither a superset nor a subset of {old_file}: istiod refuses such a root change even with ISTIO_MULTIROOT_MESH=true"
                    ),
                ));
            }
        } else if old_files.root_cert != new_files.root_cert {
            out.push(err(
                Code::RootChanged,
                &file,
                format!(
                    "{file} differs from {old_file}: istiod without ISTIO_MULTIROOT_MESH=true ignores a changed root-cert.pem and the whole update with it (new intermediate and CRL included); set ISTIO_MULTIROOT_MESH=true on every istiod and check with --multiroot, or keep root-cert.pem byte-identical"
                ),
            ));
        }
        crl_step(&old_label, old_files, &new_label, new_files, opts, &mut out);
        out
    });
    out.extend(per_cluster.into_iter().flatten());
    // Cross trust between the two stages, both ways. Trust depends on the
    // set of roots, not on the cluster holding it: the clusters of the other
    // stage are grouped by their root-cert.pem, and each CA is checked once
    // per group (a path search and its signatures only; each bundle's own
    // findings come from the stage checks). Linear in clusters.
    for (a_label, a_mesh, b_label, b_mesh) in [
        (prev_label, prev, cur_label, cur),
        (cur_label, cur, prev_label, prev),
    ] {
        let mut groups: BTreeMap<&[u8], Vec<String>> = BTreeMap::new();
        for (b, b_files) in &b_mesh.clusters {
            if let Some(roots) = b_files.root_cert.as_deref() {
                groups.entry(roots).or_default().push(join(b_label, b));
            }
        }
        // Each distinct file parsed once; one that does not parse trusts
        // nothing.
        let sets: Vec<(Vec<Vec<u8>>, Vec<String>)> = groups
            .into_iter()
            .map(|(roots, holders)| {
                let mut scratch = Vec::new();
                let ders = load_certs("", Some(roots), CertFile::Pool, &mut scratch)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|l| l.der)
                    .collect();
                (ders, holders)
            })
            .collect();
        let entries: Vec<(&String, &BundleFiles)> = a_mesh.clusters.iter().collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let found = crate::mesh::map_parallel(entries, threads, &|(a, a_files)| {
            let a_label = join(a_label, a);
            let ca = load_cluster(&a_label, a_files);
            let mut out = Vec::new();
            for (roots, holders) in &sets {
                if chains_to(&ca, roots, opts) {
                    continue;
                }
                for b_label in holders {
                    out.push(err(
                        Code::CrossStageTrust,
                        &join(&a_label, CA_CERT),
                        format!(
                            "{} does not chain to {}: workloads of {a_label} and {b_label} would stop trusting each other",
                            join(&a_label, CA_CERT),
                            join(b_label, ROOT_CERT)
                        ),
                    ));
                }
            }
            out
        });
        out.extend(found.into_iter().flatten());
    }
    let name = format!("{prev_label} -> {cur_label}");
    Group::new(&name, cur_label, GroupKind::Step, out)
}

/// `ca-crl.pem` from one step to the next, as istiod reloads it.
fn crl_step(
    old_label: &str,
    old: &BundleFiles,
    new_label: &str,
    new: &BundleFiles,
    opts: &VerifyOptions,
    out: &mut Vec<Finding>,
) {
    let old_crl = old.ca_crl.as_deref().filter(|c| !c.is_empty());
    let new_crl = new.ca_crl.as_deref().filter(|c| !c.is_empty());
    let file = join(new_label, CA_CRL);
    match (old_crl, new_crl) {
        (Some(_), None) => out.push(err(
            Code::CrlRemoved,
            &file,
            format!(
                "{file} is gone (or empty) but {} had CRLs: istiod keeps the CRL it holds (istio/istio#61073); give the cluster a current ca-crl.pem instead (`meshca crl`)",
                join(old_label, CA_CRL)
            ),
        )),
        (old_crl, Some(crl)) if old_crl != Some(crl) => {
            let refused: Vec<String> = super::verify_bundle(new_label, None, new, opts)
                .into_iter()
                .filter(|f| {
                    f.severity == super::Severity::Error
                        && f.file == file
                        && CRL_LOAD_CODES.contains(&f.code)
                })
                .map(|f| f.code.as_str().to_owned())
                .collect();
            if !refused.is_empty() {
                out.push(err(
                    Code::CrlNotLoadable,
                    &file,
                    format!(
                        "{file} would fail to load in istiod ({}): it would keep the old bundle, new intermediate included (istio/istio#61075)",
                        refused.join(", ")
                    ),
                ));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::{Mesh, NewCluster};
    use crate::{IntermediateParams, KeyType, PrivateKey, RootCa, RootParams};

    const NOW: time::OffsetDateTime = time::macros::datetime!(2026-06-01 12:00 UTC);

    fn mesh_with_crl() -> Mesh {
        let rp = RootParams {
            key_type: KeyType::EcdsaP256,
            ..RootParams::default()
        };
        let root = RootCa::generate(&rp, NOW).unwrap();
        let ip = IntermediateParams {
            key_type: KeyType::EcdsaP256,
            ..IntermediateParams::default()
        };
        let c = NewCluster::new("c1", ip, PrivateKey::generate(KeyType::EcdsaP256).unwrap());
        let (m, _) = Mesh::new()
            .with_root(&root, Some(root.key().to_pem()), false)
            .unwrap()
            .add_clusters(&root, vec![c], false, NOW)
            .unwrap();
        m.write_crls(&root, &["c1".into()], NOW, 30).unwrap()
    }

    fn codes(prev: &MeshFiles, cur: &MeshFiles, multiroot: bool) -> Vec<Code> {
        let mut opts = VerifyOptions::at(NOW);
        opts.multiroot = multiroot;
        verify_mesh_step("a", prev, "b", cur, &opts)
            .findings
            .iter()
            .map(|f| f.code)
            .collect()
    }

    #[test]
    fn an_unchanged_mesh_is_a_clean_step() {
        let m = mesh_with_crl().files();
        assert!(codes(&m, &m, false).is_empty());
        assert!(codes(&m, &m, true).is_empty());
    }

    #[test]
    fn a_removed_or_emptied_crl_is_an_error_as_istiod_keeps_the_old_one() {
        let prev = mesh_with_crl().files();
        for emptied in [None, Some(Vec::new())] {
            let mut cur = prev.clone();
            if let Some(c) = cur.clusters.get_mut("c1") {
                c.ca_crl = emptied.clone();
            }
            assert_eq!(codes(&prev, &cur, false), [Code::CrlRemoved], "{emptied:?}");
        }
    }

    #[test]
    fn a_new_crl_istiod_cannot_load_is_an_error() {
        let m = mesh_with_crl();
        let prev = m.files();
        // Only the root's CRL: the intermediate's is missing.
        let mut cur = prev.clone();
        if let Some(c) = cur.clusters.get_mut("c1") {
            c.ca_crl = m.root_crl.as_ref().map(|r| r.as_bytes().to_vec());
        }
        assert_eq!(codes(&prev, &cur, false), [Code::CrlNotLoadable]);
        let g = verify_mesh_step("a", &prev, "b", &cur, &VerifyOptions::at(NOW));
        assert!(g.findings[0].message.contains("crl-missing"), "{g:#?}");
        // Not PEM at all.
        if let Some(c) = cur.clusters.get_mut("c1") {
            c.ca_crl = Some(b"garbage".to_vec());
        }
        assert_eq!(codes(&prev, &cur, false), [Code::CrlNotLoadable]);
    }

    #[test]
    fn an_empty_root_set_is_no_subset_for_istiod() {
        let prev = mesh_with_crl().files();
        let mut cur = prev.clone();
        if let Some(c) = cur.clusters.get_mut("c1") {
            c.root_cert = Some(Vec::new());
        }
        assert!(codes(&prev, &cur, true).contains(&Code::RootStep));
        assert!(codes(&prev, &cur, false).contains(&Code::RootChanged));
    }
}
