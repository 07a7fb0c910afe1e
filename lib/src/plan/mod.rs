//! A declarative mesh: a mesh file says what the mesh should be, [`plan`]
//! says what it would take to get there, [`Plan::apply`] does it in memory.
//!
//! The plan compares a [`MeshFile`] with a [`Mesh`] (as loaded from a certs
//! directory) at a time `at`:
//!
//! - no root: create it (as the file's `root` says);
//! - a cluster the file names that the mesh lacks: add it;
//! - a cluster whose key type, SANs, namespace, Secret shape or name
//!   constraints differ from the file: re-issue it with the file's profile;
//! - a cluster whose intermediate expires within `renewBefore` days:
//!   renew it with [`Mesh::renew`] (same profile, subject and name
//!   constraints, `root-cert.pem` byte for byte, its CRL continued), for
//!   the file's `days` and with a new key;
//! - a CRL (`root-crl.pem`, a cluster's `ca-crl.pem`) whose nextUpdate is
//!   less than [`CRL_REFRESH_DAYS`] away: sign it anew;
//! - a cluster on disk the file does not name: reported, never removed.
//!
//! [`Plan::apply`] carries the plan out on the mesh in memory and returns
//! the new mesh; the caller checks it ([`Mesh::check_against`]) and saves
//! it in one transaction ([`crate::store::save`]). Clusters the plan does
//! not name are left as they were, byte for byte.

pub mod audit;
pub mod file;

use std::collections::BTreeMap;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

pub use file::{
    ClusterSpec, DataPlane, Defaults, Desired, MeshFile, MeshFileError, RootSpec, Shape,
    API_VERSION, DEFAULT_RENEW_BEFORE, KIND, MAX_MESH_FILE_BYTES,
};

use crate::bundle::{CA_CRL, ROOT_CERT, ROOT_KEY};
use crate::crl::{DEFAULT_CRL_DAYS, ROOT_CRL};
use crate::error::{Error, Result};
use crate::inspect::{inspect_pem, Item};
use crate::issue::RootCa;
use crate::key::PrivateKey;
use crate::mesh::{Added, Cluster, Mesh, NewCluster, RenewKeys, RenewOptions};
use crate::profile::{IntermediateParams, KeyType, NameConstraints, RootParams};
use crate::secret::{SecretOptions, SecretShape};

/// A CRL is refreshed when its nextUpdate is less than this many days
/// away (Envoy refuses a CRL past its nextUpdate). Below
/// [`DEFAULT_CRL_DAYS`], so a CRL just signed is never stale.
pub const CRL_REFRESH_DAYS: i64 = 30;

/// One thing [`Plan::apply`] does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Action {
    /// Make the root (`root-cert.pem`, `root-key.pem`).
    CreateRoot {
        /// Its key type.
        key_type: KeyType,
        /// Its validity in days.
        days: u32,
        /// Subject O.
        org: String,
        /// Subject CN.
        cn: String,
    },
    /// Issue an intermediate for a cluster the mesh does not have.
    AddCluster {
        /// The cluster's profile.
        cluster: Desired,
    },
    /// Re-issue a cluster whose profile differs from the file's.
    Reissue {
        /// The profile it gets.
        cluster: Desired,
        /// What differs.
        drift: Vec<Drift>,
    },
    /// Re-issue a cluster whose intermediate expires within `renewBefore`.
    Renew {
        /// The profile it keeps.
        cluster: Desired,
        /// The intermediate's notAfter (RFC 3339).
        not_after: String,
        /// Whole days from the plan's time to notAfter.
        days_left: i64,
    },
    /// Sign the root's CRL anew and put it into the `ca-crl.pem` of every
    /// cluster listed.
    RefreshRootCrl {
        /// Its nextUpdate (RFC 3339).
        next_update: String,
        /// The clusters whose `ca-crl.pem` gets it.
        clusters: Vec<String>,
    },
    /// Sign a cluster's `ca-crl.pem` anew.
    RefreshCrl {
        /// The cluster.
        cluster: String,
        /// The earliest nextUpdate among its CRLs (RFC 3339).
        next_update: String,
    },
}

/// One field in which a cluster differs from the mesh file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Drift {
    /// The mesh file's field (`keyType`, `sanDns`, `namespace`, `secret`,
    /// `nameConstraints`).
    pub field: &'static str,
    /// What the cluster has.
    pub have: String,
    /// What the file asks for.
    pub want: String,
}

/// What it takes to make a mesh what its mesh file says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Plan {
    /// What apply does, in order.
    pub actions: Vec<Action>,
    /// Clusters in the certs directory that the file does not name: kept,
    /// never deleted.
    pub unmanaged: Vec<String>,
    /// What the plan will not change and the operator should know (a root
    /// that differs from the file: meshca never replaces a root).
    pub notes: Vec<String>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Whether apply signs with the mesh's existing root key (it does
    /// unless it makes the root itself, or has nothing to sign).
    pub fn needs_root_key(&self) -> bool {
        !self.actions.is_empty()
            && !self
                .actions
                .iter()
                .any(|a| matches!(a, Action::CreateRoot { .. }))
    }

    /// The key types of the keys [`Plan::apply`] takes, in order: the
    /// root's (when it makes one), then one per cluster it issues.
    pub fn key_types(&self) -> Vec<KeyType> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::CreateRoot { key_type, .. } => Some(*key_type),
                Action::AddCluster { cluster }
                | Action::Reissue { cluster, .. }
                | Action::Renew { cluster, .. } => Some(cluster.key_type),
                Action::RefreshRootCrl { .. } | Action::RefreshCrl { .. } => None,
            })
            .collect()
    }

    /// What each key of [`Plan::key_types`] is for (`root`, a cluster).
    pub fn key_labels(&self) -> Vec<String> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::CreateRoot { .. } => Some("root".to_owned()),
                Action::AddCluster { cluster }
                | Action::Reissue { cluster, .. }
                | Action::Renew { cluster, .. } => Some(cluster.name.clone()),
                Action::RefreshRootCrl { .. } | Action::RefreshCrl { .. } => None,
            })
            .collect()
    }

    /// Carries the plan out on `mesh` at `at` and returns the new mesh.
    /// `keys`: one per entry of [`Plan::key_types`], of those types.
    /// `signer`: the mesh's root, needed when [`Plan::needs_root_key`].
    /// `mesh` is left as it was; nothing is checked or saved here.
    pub fn apply(
        &self,
        mesh: &Mesh,
        signer: Option<&RootCa>,
        keys: Vec<PrivateKey>,
        at: OffsetDateTime,
    ) -> Result<Mesh> {
        if keys.len() != self.key_types().len() {
            return Err(Error::InvalidArgument {
                what: "keys",
                value: keys.len().to_string(),
                reason: format!("the plan needs {}", self.key_types().len()),
            });
        }
        let mut keys = keys.into_iter();
        let mut new = mesh.clone();
        let mut made: Option<RootCa> = None;
        let mut issue: Vec<(Desired, PrivateKey)> = Vec::new();
        let mut renew: Vec<(Desired, PrivateKey)> = Vec::new();
        let mut crls: Vec<String> = Vec::new();
        let mut root_crl = false;
        for action in &self.actions {
            match action {
                Action::CreateRoot {
                    key_type,
                    days,
                    org,
                    cn,
                } => {
                    let params = RootParams {
                        key_type: *key_type,
                        days: *days,
                        org: org.clone(),
                        cn: cn.clone(),
                        ..RootParams::default()
                    };
                    let key = keys.next().ok_or_else(missing_key)?;
                    let root = RootCa::self_signed(&params, key, at)?;
                    new = new.with_root(&root, Some(root.key().to_pem()), false)?;
                    made = Some(root);
                }
                Action::AddCluster { cluster } | Action::Reissue { cluster, .. } => {
                    issue.push((cluster.clone(), keys.next().ok_or_else(missing_key)?));
                }
                Action::Renew { cluster, .. } => {
                    renew.push((cluster.clone(), keys.next().ok_or_else(missing_key)?));
                }
                Action::RefreshRootCrl { clusters, .. } => {
                    root_crl = true;
                    crls.extend(clusters.iter().cloned());
                }
                Action::RefreshCrl { cluster, .. } => crls.push(cluster.clone()),
            }
        }
        let signer = match (&made, signer) {
            (Some(root), _) => root,
            (None, Some(s)) => s,
            (None, None)
                if issue.is_empty() && renew.is_empty() && crls.is_empty() && !root_crl =>
            {
                return Ok(new)
            }
            (None, None) => {
                return Err(Error::MissingFile {
                    path: ROOT_KEY.into(),
                    hint: String::new(),
                })
            }
        };
        if root_crl {
            let previous = new.root_crl.as_deref().map(str::as_bytes);
            new.root_crl = Some(signer.crl(previous, &[], at, DEFAULT_CRL_DAYS)?);
        }
        if !crls.is_empty() {
            new = new.write_crls(signer, &crls, at, DEFAULT_CRL_DAYS)?;
        }
        // After the CRLs: a renewed cluster keeps the root's CRL of its
        // ca-crl.pem, refreshed above when it was due.
        new = renew_clusters(&new, signer, renew, at)?;
        if !issue.is_empty() {
            new = reissue(&new, signer, issue, at)?.0;
        }
        Ok(new)
    }
}

fn missing_key() -> Error {
    Error::InvalidArgument {
        what: "keys",
        value: String::new(),
        reason: "fewer keys than the plan needs".into(),
    }
}

/// Renews each cluster's intermediate through [`Mesh::renew`] with its
/// new key, for the file's `days` (one call per validity period).
fn renew_clusters(
    mesh: &Mesh,
    signer: &RootCa,
    items: Vec<(Desired, PrivateKey)>,
    at: OffsetDateTime,
) -> Result<Mesh> {
    let mut by_days: BTreeMap<u32, (Vec<String>, Vec<PrivateKey>)> = BTreeMap::new();
    for (d, key) in items {
        let entry = by_days.entry(d.days).or_default();
        entry.0.push(d.name);
        entry.1.push(key);
    }
    let mut new = mesh.clone();
    for (days, (names, keys)) in by_days {
        let opts = RenewOptions {
            days: Some(days),
            ..RenewOptions::default()
        };
        new = new
            .renew(signer, &names, RenewKeys::New(keys), &opts, at)?
            .0;
    }
    Ok(new)
}

/// Issues each new or drifted cluster's intermediate with the file's
/// profile and the given key, replacing the cluster's bundle when it has
/// one, through the mesh's own workflow (the old bundle is taken out of
/// the mesh and the new one added, keeping the Secret's name).
fn reissue(
    mesh: &Mesh,
    signer: &RootCa,
    items: Vec<(Desired, PrivateKey)>,
    at: OffsetDateTime,
) -> Result<(Mesh, Vec<Added>)> {
    let mut base = mesh.clone();
    let mut new = Vec::with_capacity(items.len());
    for (d, key) in items {
        let old = base.clusters.remove(&d.name);
        let params = IntermediateParams {
            key_type: d.key_type,
            days: d.days,
            san_dns: d.san_dns.clone(),
            name_constraints: d.name_constraints(),
            ..IntermediateParams::default()
        };
        let mut c = NewCluster::new(&d.name, params, key);
        let mut secret = SecretOptions::default();
        if let Some(Some(s)) = old.map(|c| c.profile.secret) {
            secret.name = s.name;
        }
        secret.namespace = d.namespace.clone();
        secret.shape = d.shape.into();
        c.secret = Some(secret);
        new.push(c);
    }
    base.add_clusters(signer, new, false, at)
}

/// What it takes to make `mesh` what `file` says, at `at`.
pub fn plan(file: &MeshFile, mesh: &Mesh, at: OffsetDateTime) -> Result<Plan> {
    let mut plan = Plan::default();
    let root_not_after = match &mesh.root {
        None => {
            let d = RootParams::default();
            let r = &file.root;
            let days = r.days.unwrap_or(d.days);
            plan.actions.push(Action::CreateRoot {
                key_type: r.key_type.unwrap_or(d.key_type),
                days,
                org: r.org.clone().unwrap_or(d.org),
                cn: r.cn.clone().unwrap_or(d.cn),
            });
            at + Duration::days(i64::from(days))
        }
        Some(root) => {
            plan.notes.extend(root_drift(file, &root.cert, at));
            first_cert_not_after(ROOT_CERT, root.cert.as_bytes())?
        }
    };
    let mut crl_actions = Vec::new();
    // Clusters issued anew (added or re-issued): their ca-crl.pem comes
    // with the new bundle. Renewed ones keep theirs and are not listed.
    let mut issued: std::collections::HashSet<String> = std::collections::HashSet::new();
    for spec in &file.clusters {
        let want = file.desired(spec);
        let Some(have) = mesh.clusters.get(&spec.name) else {
            issued.insert(want.name.clone());
            plan.actions.push(Action::AddCluster { cluster: want });
            continue;
        };
        let drift = drift(have, &want);
        if !drift.is_empty() {
            issued.insert(want.name.clone());
            plan.actions.push(Action::Reissue {
                cluster: want,
                drift,
            });
            continue;
        }
        let what = format!("{}/{}", spec.name, crate::bundle::CA_CERT);
        let not_after = first_cert_not_after(&what, have.bundle.ca_cert.as_bytes())?;
        let left = not_after - at;
        if left < Duration::days(i64::from(want.renew_before)) {
            if root_not_after - at < Duration::days(i64::from(want.renew_before)) {
                plan.notes.push(format!(
                    "{}: expires in {} days, but the root expires within renewBefore \
                     ({} days) too, so a renewed intermediate would end with it: rotate \
                     the root (`meshca rotate`)",
                    spec.name,
                    left.whole_days(),
                    want.renew_before
                ));
            } else {
                plan.actions.push(Action::Renew {
                    cluster: want,
                    not_after: rfc3339(not_after),
                    days_left: left.whole_days(),
                });
                continue;
            }
        }
        if let Some(crl) = &have.bundle.ca_crl {
            let what = format!("{}/{CA_CRL}", spec.name);
            if let Some(next) = stale_crl(&what, crl.as_bytes(), at)? {
                crl_actions.push(Action::RefreshCrl {
                    cluster: spec.name.clone(),
                    next_update: rfc3339(next),
                });
            }
        }
    }
    if let Some(crl) = &mesh.root_crl {
        if let Some(next) = stale_crl(ROOT_CRL, crl.as_bytes(), at)? {
            // Every cluster carrying the root's CRL gets the new one (a
            // renewed one before it is renewed); the clusters issued anew
            // get it with their new bundle.
            let clusters: Vec<String> = mesh
                .clusters
                .iter()
                .filter(|(n, c)| c.bundle.ca_crl.is_some() && !issued.contains(n.as_str()))
                .map(|(n, _)| n.clone())
                .collect();
            crl_actions.retain(|a| !matches!(a, Action::RefreshCrl { .. }));
            crl_actions.push(Action::RefreshRootCrl {
                next_update: rfc3339(next),
                clusters,
            });
        }
    }
    plan.actions.extend(crl_actions);
    let managed: std::collections::HashSet<&str> =
        file.clusters.iter().map(|c| c.name.as_str()).collect();
    plan.unmanaged = mesh
        .clusters
        .keys()
        .filter(|n| !managed.contains(n.as_str()))
        .cloned()
        .collect();
    Ok(plan)
}

/// How `have` differs from `want` in what the mesh file sets.
fn drift(have: &Cluster, want: &Desired) -> Vec<Drift> {
    let mut out = Vec::new();
    let p = &have.profile;
    let have_type = p
        .key_type
        .map_or("unreadable".to_owned(), |k| k.to_string());
    if p.key_type != Some(want.key_type) {
        out.push(Drift {
            field: "keyType",
            have: have_type,
            want: want.key_type.to_string(),
        });
    }
    let mut a = p.san_dns.clone();
    let mut b = want.san_dns.clone();
    a.sort();
    b.sort();
    if a != b {
        out.push(Drift {
            field: "sanDns",
            have: p.san_dns.join(","),
            want: want.san_dns.join(","),
        });
    }
    let want_nc = want.name_constraints();
    if !same_constraints(
        (p.name_constraints.as_ref(), &p.san_dns),
        (want_nc.as_ref(), &want.san_dns),
    ) {
        out.push(Drift {
            field: "nameConstraints",
            have: constraints_text(p.name_constraints.as_ref()),
            want: constraints_text(want_nc.as_ref()),
        });
    }
    match &p.secret {
        None => out.push(Drift {
            field: "secret",
            have: "no cacerts.yaml".to_owned(),
            want: shape_name(want.shape.into()).to_owned(),
        }),
        Some(s) => {
            if s.namespace != want.namespace {
                out.push(Drift {
                    field: "namespace",
                    have: s.namespace.clone(),
                    want: want.namespace.clone(),
                });
            }
            let want_shape: SecretShape = want.shape.into();
            if s.shape != want_shape {
                out.push(Drift {
                    field: "secret",
                    have: shape_name(s.shape).to_owned(),
                    want: shape_name(want_shape).to_owned(),
                });
            }
        }
    }
    out
}

/// Whether a cluster's name constraints (with its DNS SANs) are the
/// file's: the same trust domains and the same permitted DNS subtrees, the
/// intermediate's own SANs included (in any order, a SAN listed in
/// `permitDns` too counting once); constraints read with more than meshca
/// writes never are.
fn same_constraints(
    (have, have_sans): (Option<&NameConstraints>, &[String]),
    (want, want_sans): (Option<&NameConstraints>, &[String]),
) -> bool {
    let sorted = |v: &[String]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_ascii_lowercase()).collect();
        v.sort();
        v.dedup();
        v
    };
    match (have, want) {
        (None, None) => true,
        (Some(h), Some(w)) => {
            !h.incomplete
                && sorted(&h.trust_domains) == sorted(&w.trust_domains)
                && sorted(&h.permitted_dns(have_sans)) == sorted(&w.permitted_dns(want_sans))
        }
        _ => false,
    }
}

fn constraints_text(nc: Option<&NameConstraints>) -> String {
    match nc {
        None => "off".to_owned(),
        Some(nc) if nc.incomplete => "foreign constraints".to_owned(),
        Some(nc) => {
            let mut text = format!("trust domain {}", nc.trust_domains.join(","));
            if !nc.permit_dns.is_empty() {
                text.push_str(&format!(", DNS {}", nc.permit_dns.join(",")));
            }
            text
        }
    }
}

fn shape_name(s: SecretShape) -> &'static str {
    match s {
        SecretShape::Tls => "tls",
        _ => "opaque",
    }
}

/// Notes on how the existing root differs from the file's `root`: a root
/// is never replaced by a plan (that orphans every cluster).
fn root_drift(file: &MeshFile, cert_pem: &str, at: OffsetDateTime) -> Vec<String> {
    let Ok(items) = inspect_pem(ROOT_CERT, cert_pem.as_bytes(), at) else {
        return Vec::new();
    };
    let Some(Item::Certificate(c)) = items.first() else {
        return Vec::new();
    };
    let mut differs = Vec::new();
    if let Some(kt) = file.root.key_type {
        if c.key != kt.name() {
            differs.push("keyType");
        }
    }
    let fields: Vec<&str> = c.subject.split(", ").collect();
    if let Some(org) = &file.root.org {
        if !fields.contains(&format!("O={org}").as_str()) {
            differs.push("org");
        }
    }
    if let Some(cn) = &file.root.cn {
        if !fields.contains(&format!("CN={cn}").as_str()) {
            differs.push("cn");
        }
    }
    if differs.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "root-cert.pem differs from the mesh file's root ({}): a plan never replaces a root, \
         which would orphan every cluster; move the mesh to a new root with `meshca rotate`",
        differs.join(", ")
    )]
}

/// The notAfter of the first certificate of a PEM document.
fn first_cert_not_after(what: &str, pem: &[u8]) -> Result<OffsetDateTime> {
    let ders = crate::pemutil::certificates(what, pem)?;
    let Some(der) = ders.first() else {
        return Err(Error::Pem {
            what: what.to_owned(),
            problem: "no certificate found".into(),
        });
    };
    Ok(crate::issue::parse(what, der)?
        .validity()
        .not_after
        .to_datetime())
}

/// The earliest nextUpdate among the CRLs of `pem`, when it is less than
/// [`CRL_REFRESH_DAYS`] after `at` (or past).
fn stale_crl(what: &str, pem: &[u8], at: OffsetDateTime) -> Result<Option<OffsetDateTime>> {
    let mut earliest: Option<OffsetDateTime> = None;
    for item in inspect_pem(what, pem, at)? {
        if let Item::Crl(c) = item {
            let Some(next) = c.next_update else { continue };
            let Ok(t) =
                OffsetDateTime::parse(&next, &time::format_description::well_known::Rfc3339)
            else {
                continue;
            };
            earliest = Some(earliest.map_or(t, |e| e.min(t)));
        }
    }
    Ok(earliest.filter(|t| *t - at < Duration::days(CRL_REFRESH_DAYS)))
}

// The nesting limit and its count are the Secret reader's: a mesh file
// and a saved Secret are read with the same YAML parser.
use crate::secret::{flow_depth, MAX_FLOW_DEPTH};

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests;
