//! The step stage: from one rotation stage of a mesh to the next, as
//! istiod reloads `root-cert.pem` (with `ISTIO_MULTIROOT_MESH=true` it
//! accepts a superset or a subset of the old roots: istio_ca.go
//! `pemBundleHasSubsetRelation`).

use std::collections::BTreeMap;

use super::load::{load_certs, CertFile};
use super::mesh::{chains_to, load_cluster};
use super::report::{err, join, Code, Finding, Group, GroupKind};
use super::{BundleFiles, MeshFiles, VerifyOptions};
use crate::bundle::{CA_CERT, ROOT_CERT};

/// The rotation-step check of two meshes in memory, `prev` then `cur`: for
/// every cluster present in both, its `root-cert.pem` must be a superset or
/// a subset of the previous one (istiod's rule with
/// `ISTIO_MULTIROOT_MESH=true`), and every cluster's CA at one stage must
/// chain to the roots of every cluster at the other, so workloads keep
/// trusting each other while clusters move one by one.
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
    for (name, new_files) in &cur.clusters {
        let Some(old_files) = prev.clusters.get(name) else {
            continue;
        };
        let old = roots_of(&join(prev_label, name), old_files, &mut out);
        let new = roots_of(&join(cur_label, name), new_files, &mut out);
        let sub = new.iter().all(|r| old.contains(r));
        let sup = old.iter().all(|r| new.contains(r));
        if !sub && !sup {
            let file = join(&join(cur_label, name), ROOT_CERT);
            out.push(err(
                Code::RootStep,
                &file,
                format!(
                    "{file} is neither a superset nor a subset of {}: istiod refuses such a root change",
                    join(&join(prev_label, name), ROOT_CERT)
                ),
            ));
        }
    }
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
