//! What a cluster really runs, compared with its directory: the `cacerts`
//! Secret as `kubectl get secret cacerts -n istio-system -o yaml` prints it
//! (server fields and all, or a `kind: List` of one), and the
//! `istio-ca-root-cert` ConfigMap istiod publishes in every namespace
//! (`data.root-cert.pem`). Files only: nothing here talks to a cluster.
//!
//! The comparison is by what istiod reads, not by bytes of YAML: each data
//! entry is mapped to the file of the cluster directory it stands for
//! (`tls.crt` is `ca-cert.pem` in the kubernetes.io/tls shape), and
//! certificate files are equal when they hold the same certificates.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::{Zeroize, Zeroizing};

use crate::bundle::{CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT};
use crate::error::{Error, Result};
use crate::inspect::{inspect_pem, Item};
use crate::mesh::Cluster;
use crate::secret::{cacerts_yaml, SecretOptions, MAX_SECRET_BYTES};

/// The key of the `istio-ca-root-cert` ConfigMap that holds the roots.
pub const CONFIGMAP_ROOT_KEY: &str = "root-cert.pem";

/// The public facts of a certificate, to tell two apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CertFacts {
    /// Serial number, colon-separated hex.
    pub serial: String,
    /// Subject DN.
    pub subject: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
}

/// One way in which the cluster differs from its directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Difference {
    /// What differs: a file of the cluster directory (`ca-cert.pem`), or a
    /// Secret field (`type`, `metadata.namespace`), or the ConfigMap's
    /// `root-cert.pem`.
    pub what: String,
    /// How (`differs`, `missing in the cluster`, ...).
    pub problem: String,
    /// The certificates the directory has there.
    pub ours: Vec<CertFacts>,
    /// The certificates the cluster has there.
    pub theirs: Vec<CertFacts>,
}

/// The result of [`audit`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Audit {
    /// The cluster.
    pub cluster: String,
    /// Every difference found; none: in sync.
    pub differences: Vec<Difference>,
}

impl Audit {
    /// Whether the cluster runs what its directory holds.
    pub fn in_sync(&self) -> bool {
        self.differences.is_empty()
    }
}

/// A Kubernetes object as `kubectl get -o yaml` prints it; what is not
/// named here (status, managedFields, annotations) is ignored.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LiveDoc {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: LiveMeta,
    #[serde(rename = "type", default)]
    type_: Option<String>,
    /// Keys given twice are refused: YAML readers disagree on which value
    /// wins, so "in sync" could be judged on one and installed with the other.
    #[serde(default, deserialize_with = "crate::secret::unique_keys")]
    data: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "crate::secret::unique_keys")]
    string_data: BTreeMap<String, String>,
    #[serde(default)]
    items: Vec<LiveDoc>,
}

#[derive(Deserialize, Default)]
struct LiveMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

impl Drop for LiveDoc {
    fn drop(&mut self) {
        for v in self.data.values_mut().chain(self.string_data.values_mut()) {
            v.zeroize();
        }
    }
}

/// Reads an object of `kind` from `text` (or the one item of a `kind:
/// List`); errors name `what` and where, never a value.
fn read_live(
    what: &str,
    text: &[u8],
    kind: &str,
    bad: &dyn Fn(String) -> Error,
) -> Result<LiveDoc> {
    if text.len() > MAX_SECRET_BYTES {
        return Err(Error::TooLarge {
            what: what.to_owned(),
            size: text.len(),
            limit: MAX_SECRET_BYTES,
        });
    }
    if super::flow_depth(text) > super::MAX_FLOW_DEPTH {
        return Err(bad(format!(
            "YAML nested deeper than {} levels of [ and {{",
            super::MAX_FLOW_DEPTH
        )));
    }
    let mut doc: LiveDoc = serde_yaml_ng::from_slice(text).map_err(|e| {
        // serde's messages quote the values they met: say where only (the
        // duplicate-key message is meshca's own and holds no input).
        if e.to_string().contains(crate::secret::DUPLICATE_KEY) {
            return bad(match e.location() {
                Some(at) => format!(
                    "{} in data or stringData (line {}, column {}): each key once",
                    crate::secret::DUPLICATE_KEY,
                    at.line(),
                    at.column()
                ),
                None => format!(
                    "{} in data or stringData: each key once",
                    crate::secret::DUPLICATE_KEY
                ),
            });
        }
        bad(match e.location() {
            Some(at) => format!(
                "invalid YAML, or not a {kind} (line {}, column {})",
                at.line(),
                at.column()
            ),
            None => format!("invalid YAML, or not a {kind}"),
        })
    })?;
    if doc.kind == "List" {
        if doc.items.len() != 1 {
            return Err(bad(format!(
                "a List of {} objects; expected exactly one {kind}",
                doc.items.len()
            )));
        }
        doc = doc.items.pop().unwrap_or_default();
    }
    if doc.kind != kind || doc.api_version != "v1" {
        return Err(bad(format!("expected apiVersion v1, kind {kind}")));
    }
    Ok(doc)
}

/// The data entries of a Secret, base64-decoded, by the cluster file each
/// stands for.
fn secret_files(
    doc: &LiveDoc,
    bad: &dyn Fn(String) -> Error,
) -> Result<BTreeMap<String, Zeroizing<Vec<u8>>>> {
    // istiod takes the TLS layout when tls.crt is there, whatever the
    // Secret's type (pilot/pkg/bootstrap/istio_ca.go,
    // detectSigningCABundleAndCRL).
    let tls = doc.type_.as_deref() == Some("kubernetes.io/tls") || doc.data.contains_key("tls.crt");
    let mut out = BTreeMap::new();
    for (k, v) in &doc.data {
        let compact: Zeroizing<String> =
            Zeroizing::new(v.chars().filter(|c| !c.is_whitespace()).collect());
        let bytes = B64
            .decode(compact.as_bytes())
            .map_err(|_| bad(format!("data.{k} is not valid base64")))?;
        out.insert(file_of(k, tls), Zeroizing::new(bytes));
    }
    for (k, v) in &doc.string_data {
        out.insert(file_of(k, tls), Zeroizing::new(v.as_bytes().to_vec()));
    }
    Ok(out)
}

/// The cluster file a Secret key stands for (istiod's two layouts:
/// pilot/pkg/bootstrap/istio_ca.go reads `tls.crt`, `tls.key`, `ca.crt`
/// in place of `ca-cert.pem`, `ca-key.pem`, `root-cert.pem`).
fn file_of(key: &str, tls: bool) -> String {
    match (key, tls) {
        ("tls.crt", true) => CA_CERT,
        ("tls.key", true) => CA_KEY,
        ("ca.crt", true) => ROOT_CERT,
        (other, _) => other,
    }
    .to_owned()
}

/// The certificates of a PEM document (empty when it holds none or does
/// not parse).
fn certs(what: &str, bytes: &[u8], at: OffsetDateTime) -> Vec<CertFacts> {
    inspect_pem(what, bytes, at)
        .map(|items| {
            items
                .into_iter()
                .filter_map(|i| match i {
                    Item::Certificate(c) => Some(CertFacts {
                        serial: c.serial,
                        subject: c.subject,
                        not_after: c.not_after,
                    }),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether two documents say the same to istiod: the same bytes, or (for
/// certificate files) the same certificates in the same order.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    match (
        crate::pemutil::certificates("a", a),
        crate::pemutil::certificates("b", b),
    ) {
        (Ok(x), Ok(y)) => !x.is_empty() && x == y,
        _ => false,
    }
}

const CERT_FILES: [&str; 3] = [CA_CERT, CERT_CHAIN, ROOT_CERT];

/// Compares what a cluster holds (`secret`: its `cacerts` Secret as
/// `kubectl get -o yaml` saved it; `configmap`: its `istio-ca-root-cert`
/// ConfigMap, when given) with `cluster`, its directory in the certs
/// directory. Each input is `(file name for messages, bytes)`. `at` is the
/// time certificate facts are read at.
pub fn audit(
    name: &str,
    cluster: &Cluster,
    secret: (&str, &[u8]),
    configmap: Option<(&str, &[u8])>,
    at: OffsetDateTime,
) -> Result<Audit> {
    let (secret_what, secret_text) = secret;
    let bad_secret = |reason: String| Error::BadSecret {
        what: secret_what.to_owned(),
        reason,
    };
    let live = read_live(secret_what, secret_text, "Secret", &bad_secret)?;
    let theirs = secret_files(&live, &bad_secret)?;

    // What the directory says the Secret holds: its cacerts.yaml, else the
    // default Secret of its bundle.
    let options = cluster.profile.secret.clone().unwrap_or_default();
    let yaml = match &cluster.secret_yaml {
        Some(y) => y.clone(),
        None => cacerts_yaml(&cluster.bundle, &SecretOptions::default())?,
    };
    let ours_what = format!("{name}/{}", crate::bundle::SECRET_YAML);
    let bad_ours = |reason: String| Error::BadSecret {
        what: ours_what.clone(),
        reason,
    };
    let ours_doc = read_live(&ours_what, yaml.as_bytes(), "Secret", &bad_ours)?;
    let ours = secret_files(&ours_doc, &bad_ours)?;

    let mut differences = Vec::new();
    let meta = |what: &str, problem: String| Difference {
        what: what.to_owned(),
        problem,
        ours: Vec::new(),
        theirs: Vec::new(),
    };
    // A Secret without a type is Opaque (the API server's default).
    let type_of = |d: &LiveDoc| d.type_.clone().unwrap_or_else(|| "Opaque".to_owned());
    if type_of(&live) != type_of(&ours_doc) {
        differences.push(meta(
            "type",
            format!(
                "the cluster's Secret has {}, the directory's {}",
                type_name(live.type_.as_deref()),
                type_name(ours_doc.type_.as_deref())
            ),
        ));
    }
    if live.metadata.namespace.as_deref() != Some(options.namespace.as_str()) {
        differences.push(meta(
            "metadata.namespace",
            format!(
                "the cluster's Secret is not in {}, the namespace the directory's is for",
                options.namespace
            ),
        ));
    }
    if live.metadata.name.as_deref() != Some(options.name.as_str()) {
        differences.push(meta(
            "metadata.name",
            format!("the cluster's Secret is not named {}", options.name),
        ));
    }
    let mut files: Vec<&String> = ours.keys().chain(theirs.keys()).collect();
    files.sort();
    files.dedup();
    for file in files {
        let is_cert = CERT_FILES.contains(&file.as_str());
        let facts = |b: Option<&Zeroizing<Vec<u8>>>, side: &str| match b {
            Some(b) if is_cert => certs(&format!("{side} {file}"), b, at),
            _ => Vec::new(),
        };
        let (o, t) = (ours.get(file), theirs.get(file));
        let problem = match (o, t) {
            (Some(o), Some(t)) if same(o, t) => continue,
            (Some(_), Some(_)) if file == CA_KEY => "the cluster runs another key".to_owned(),
            (Some(_), Some(_)) => "differs".to_owned(),
            (Some(_), None) => "missing in the cluster's Secret".to_owned(),
            (None, Some(_)) => format!("in the cluster's Secret, not in {name}/"),
            (None, None) => continue,
        };
        differences.push(Difference {
            what: file.clone(),
            problem,
            ours: facts(o, "ours"),
            theirs: facts(t, "theirs"),
        });
    }

    if let Some((cm_what, cm_text)) = configmap {
        let bad_cm = |reason: String| Error::Pem {
            what: cm_what.to_owned(),
            problem: format!("not a usable ConfigMap: {reason}"),
        };
        let cm = read_live(cm_what, cm_text, "ConfigMap", &bad_cm)?;
        let what = format!("ConfigMap {CONFIGMAP_ROOT_KEY}");
        let ours_root = cluster.bundle.root_cert.as_bytes();
        let ours_facts = certs(ROOT_CERT, ours_root, at);
        match cm.data.get(CONFIGMAP_ROOT_KEY) {
            None => differences.push(Difference {
                what,
                problem: format!("the ConfigMap has no data.{CONFIGMAP_ROOT_KEY}"),
                ours: ours_facts,
                theirs: Vec::new(),
            }),
            Some(theirs) if !same(ours_root, theirs.as_bytes()) => differences.push(Difference {
                what,
                problem: format!("the roots workloads trust differ from {name}/{ROOT_CERT}"),
                ours: ours_facts,
                theirs: certs(cm_what, theirs.as_bytes(), at),
            }),
            Some(_) => {}
        }
    }
    Ok(Audit {
        cluster: name.to_owned(),
        differences,
    })
}

fn type_name(t: Option<&str>) -> &'static str {
    match t {
        Some("Opaque") => "type Opaque",
        Some("kubernetes.io/tls") => "type kubernetes.io/tls",
        Some(_) => "another type",
        None => "no type",
    }
}
