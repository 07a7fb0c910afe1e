//! The mesh file: what a mesh should be, as YAML kept in git.
//!
//! ```yaml
//! apiVersion: meshca/v1
//! kind: Mesh
//! trustDomain: cluster.local
//! root: {keyType: ecdsa-p384, days: 3650, org: Istio, cn: Root CA}
//! defaults: {keyType: ecdsa-p256, days: 730, renewBefore: 30, namespace: istio-system, secret: opaque,
//!            nameConstraints: true, permitDns: [.svc.example.com], dataPlane: sidecar}
//! clusters:
//!   - name: east
//!     nameConstraints: false
//!   - name: west
//!     keyType: rsa-4096
//!     secret: tls
//! ```
//!
//! Every mapping refuses fields it does not know. An error names the file,
//! the line and column, and the field (`clusters[1].keyType`), never the
//! value found there.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::profile::{validate_name, KeyType, NameConstraints, KEY_TYPE_NAMES};
use crate::secret::SecretShape;

/// The `apiVersion` a mesh file must have.
pub const API_VERSION: &str = "meshca/v1";
/// The `kind` a mesh file must have.
pub const KIND: &str = "Mesh";
/// The largest mesh file read (1 MiB).
pub const MAX_MESH_FILE_BYTES: usize = 1 << 20;
/// `defaults.renewBefore` when the file does not say (days).
pub const DEFAULT_RENEW_BEFORE: u32 = 30;

/// A mesh file that could not be read: where and what, never the value
/// found there.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MeshFileError {
    /// The file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The field concerned (`clusters[1].keyType`), when known.
    pub field: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for MeshFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ": line {line}")?;
            if let Some(col) = self.column {
                write!(f, ", column {col}")?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for MeshFileError {}

/// `root`: the offline root CA.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct RootSpec {
    /// Key type (default `rsa-4096`).
    #[serde(
        default,
        deserialize_with = "key_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_type: Option<KeyType>,
    /// Validity in days (default 3650).
    #[serde(
        default,
        deserialize_with = "days",
        skip_serializing_if = "Option::is_none"
    )]
    pub days: Option<u32>,
    /// Subject O (default `Istio`).
    #[serde(
        default,
        deserialize_with = "text",
        skip_serializing_if = "Option::is_none"
    )]
    pub org: Option<String>,
    /// Subject CN (default `Root CA`).
    #[serde(
        default,
        deserialize_with = "text",
        skip_serializing_if = "Option::is_none"
    )]
    pub cn: Option<String>,
    /// Where the root key is: a file path (default: `root-key.pem` in the
    /// certs directory) or a `pkcs11:` URI, kept as written.
    #[serde(
        default,
        deserialize_with = "text",
        skip_serializing_if = "Option::is_none"
    )]
    pub key: Option<String>,
}

/// `defaults`: every cluster's profile unless it says otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Defaults {
    /// The intermediate's key type (default `rsa-4096`).
    #[serde(
        default,
        deserialize_with = "key_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_type: Option<KeyType>,
    /// The intermediate's validity in days (default 730).
    #[serde(
        default,
        deserialize_with = "days",
        skip_serializing_if = "Option::is_none"
    )]
    pub days: Option<u32>,
    /// Re-issue the intermediate this many days before it expires
    /// (default 30).
    #[serde(
        default,
        deserialize_with = "days",
        skip_serializing_if = "Option::is_none"
    )]
    pub renew_before: Option<u32>,
    /// istiod's namespace, where the `cacerts` Secret goes (default
    /// `istio-system`).
    #[serde(
        default,
        deserialize_with = "namespace",
        skip_serializing_if = "Option::is_none"
    )]
    pub namespace: Option<String>,
    /// The Secret's shape: `opaque` (default) or `tls`.
    #[serde(
        default,
        deserialize_with = "shape",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret: Option<Shape>,
    /// The intermediate's DNS SANs (default `istiod.<namespace>.svc`).
    #[serde(
        default,
        deserialize_with = "san_dns",
        skip_serializing_if = "Option::is_none"
    )]
    pub san_dns: Option<Vec<String>>,
    /// Name constraints on the intermediates (default `false`): `true`
    /// permits the workload identities of `trustDomain` and the
    /// intermediate's own DNS SANs (plus `permitDns`), nothing else.
    #[serde(
        default,
        deserialize_with = "flag",
        skip_serializing_if = "Option::is_none"
    )]
    pub name_constraints: Option<bool>,
    /// DNS suffixes a name-constrained intermediate also permits
    /// (`example.com`, or `.example.com` for subdomains only).
    #[serde(
        default,
        deserialize_with = "permit_dns",
        skip_serializing_if = "Option::is_none"
    )]
    pub permit_dns: Option<Vec<String>>,
    /// The mesh's data plane: `sidecar` (default) or `ambient`. Ambient
    /// (ztunnel, whose verifier cannot process URI name constraints)
    /// refuses `nameConstraints: true`.
    #[serde(
        default,
        deserialize_with = "data_plane",
        skip_serializing_if = "Option::is_none"
    )]
    pub data_plane: Option<DataPlane>,
}

/// The data plane that verifies workload certificates, as the mesh file
/// spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DataPlane {
    /// Envoy sidecars (Go and BoringSSL verifiers).
    Sidecar,
    /// ztunnel (rustls-webpki).
    Ambient,
}

/// The `cacerts` Secret's shape, as the mesh file spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Shape {
    /// `type: Opaque` (`ca-cert.pem`, ...).
    Opaque,
    /// `type: kubernetes.io/tls` (`tls.crt`, `tls.key`, `ca.crt`).
    Tls,
}

impl From<Shape> for SecretShape {
    fn from(s: Shape) -> SecretShape {
        match s {
            Shape::Opaque => SecretShape::Opaque,
            Shape::Tls => SecretShape::Tls,
        }
    }
}

/// One entry of `clusters`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct ClusterSpec {
    /// The cluster's name (a DNS label): its directory under the certs
    /// directory.
    #[serde(deserialize_with = "cluster_name")]
    pub name: String,
    /// The intermediate's key type (default `rsa-4096`).
    #[serde(
        default,
        deserialize_with = "key_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_type: Option<KeyType>,
    /// The intermediate's validity in days (default 730).
    #[serde(
        default,
        deserialize_with = "days",
        skip_serializing_if = "Option::is_none"
    )]
    pub days: Option<u32>,
    /// Re-issue the intermediate this many days before it expires
    /// (default 30).
    #[serde(
        default,
        deserialize_with = "days",
        skip_serializing_if = "Option::is_none"
    )]
    pub renew_before: Option<u32>,
    /// istiod's namespace, where the `cacerts` Secret goes (default
    /// `istio-system`).
    #[serde(
        default,
        deserialize_with = "namespace",
        skip_serializing_if = "Option::is_none"
    )]
    pub namespace: Option<String>,
    /// The Secret's shape: `opaque` (default) or `tls`.
    #[serde(
        default,
        deserialize_with = "shape",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret: Option<Shape>,
    /// The intermediate's DNS SANs (default `istiod.<namespace>.svc`).
    #[serde(
        default,
        deserialize_with = "san_dns",
        skip_serializing_if = "Option::is_none"
    )]
    pub san_dns: Option<Vec<String>>,
    /// Name constraints on the intermediate (default: `defaults`').
    #[serde(
        default,
        deserialize_with = "flag",
        skip_serializing_if = "Option::is_none"
    )]
    pub name_constraints: Option<bool>,
    /// DNS suffixes a name-constrained intermediate also permits
    /// (default: `defaults`').
    #[serde(
        default,
        deserialize_with = "permit_dns",
        skip_serializing_if = "Option::is_none"
    )]
    pub permit_dns: Option<Vec<String>>,
}

/// A mesh file, parsed and checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MeshFile {
    /// The SPIFFE trust domain (default `cluster.local`).
    pub trust_domain: String,
    /// The root.
    pub root: RootSpec,
    /// Every cluster's profile unless it says otherwise.
    pub defaults: Defaults,
    /// The clusters, in the file's order.
    pub clusters: Vec<ClusterSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Doc {
    #[serde(deserialize_with = "api_version")]
    api_version: (),
    #[serde(deserialize_with = "kind")]
    kind: (),
    #[serde(default, deserialize_with = "trust_domain")]
    trust_domain: Option<String>,
    #[serde(default)]
    root: Option<RootSpec>,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    clusters: Clusters,
}

impl MeshFile {
    /// Parses the mesh file `text`; `file` names it in errors.
    pub fn parse(file: &str, text: &[u8]) -> Result<MeshFile, MeshFileError> {
        let fail = |problem: String| MeshFileError {
            file: file.to_owned(),
            line: None,
            column: None,
            field: None,
            problem,
        };
        if text.len() > MAX_MESH_FILE_BYTES {
            return Err(fail(format!(
                "{} bytes is larger than the {MAX_MESH_FILE_BYTES}-byte limit",
                text.len()
            )));
        }
        if super::flow_depth(text) > super::MAX_FLOW_DEPTH {
            return Err(fail(format!(
                "YAML nested deeper than {} levels of [ and {{",
                super::MAX_FLOW_DEPTH
            )));
        }
        if std::str::from_utf8(text).is_err() {
            return Err(fail("not UTF-8 text".to_owned()));
        }
        let doc: Doc = serde_yaml_ng::from_slice(text).map_err(|e| located(file, &e))?;
        let _ = (doc.api_version, doc.kind);
        let file_out = MeshFile {
            trust_domain: doc
                .trust_domain
                .unwrap_or_else(|| "cluster.local".to_owned()),
            root: doc.root.unwrap_or(RootSpec {
                key_type: None,
                days: None,
                org: None,
                cn: None,
                key: None,
            }),
            defaults: doc.defaults,
            clusters: doc.clusters.0,
        };
        for (i, spec) in file_out.clusters.iter().enumerate() {
            let d = file_out.desired(spec);
            if let Some(nc) = d.name_constraints() {
                let field = if spec.name_constraints.is_some() {
                    format!("clusters[{i}].nameConstraints")
                } else {
                    "defaults.nameConstraints".to_owned()
                };
                let ambient = file_out.defaults.data_plane == Some(DataPlane::Ambient);
                // The reasons are meshca's own texts, never a value of the
                // file (the trust domain and suffixes were checked above).
                if let Err(e) = nc
                    .validate()
                    .and_then(|()| nc.check_verifier_support(ambient))
                {
                    let problem = match e {
                        crate::Error::Refused { reason, .. } => reason,
                        _ => "the name constraints are invalid".to_owned(),
                    };
                    return Err(MeshFileError {
                        field: Some(field),
                        ..fail(problem)
                    });
                }
            }
            if d.renew_before >= d.days {
                let field = if spec.renew_before.is_some() || spec.days.is_some() {
                    format!("clusters[{i}].renewBefore")
                } else {
                    "defaults.renewBefore".to_owned()
                };
                return Err(MeshFileError {
                    field: Some(field),
                    ..fail(
                        "renewBefore must be less than the intermediate's days (730 unless \
                         set), or every plan would renew it again"
                            .to_owned(),
                    )
                });
            }
        }
        Ok(file_out)
    }

    /// A cluster's profile: its own fields over `defaults` over meshca's
    /// defaults.
    pub fn desired(&self, spec: &ClusterSpec) -> Desired {
        let d = &self.defaults;
        let o = spec;
        let namespace = o
            .namespace
            .clone()
            .or_else(|| d.namespace.clone())
            .unwrap_or_else(|| "istio-system".to_owned());
        let san_dns = o
            .san_dns
            .clone()
            .or_else(|| d.san_dns.clone())
            .unwrap_or_else(|| vec![format!("istiod.{namespace}.svc")]);
        Desired {
            name: spec.name.clone(),
            key_type: o.key_type.or(d.key_type).unwrap_or_default(),
            days: o.days.or(d.days).unwrap_or(730),
            renew_before: o
                .renew_before
                .or(d.renew_before)
                .unwrap_or(DEFAULT_RENEW_BEFORE),
            namespace,
            shape: o.secret.or(d.secret).unwrap_or(Shape::Opaque),
            san_dns,
            name_constraints: o.name_constraints.or(d.name_constraints).unwrap_or(false),
            trust_domain: self.trust_domain.clone(),
            permit_dns: o
                .permit_dns
                .clone()
                .or_else(|| d.permit_dns.clone())
                .unwrap_or_default(),
        }
    }
}

/// A cluster's profile as the mesh file asks for it, every default filled
/// in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Desired {
    /// The cluster.
    pub name: String,
    /// The intermediate's key type.
    pub key_type: KeyType,
    /// The intermediate's validity in days.
    pub days: u32,
    /// Days before expiry at which it is renewed.
    pub renew_before: u32,
    /// istiod's namespace (and the Secret's).
    pub namespace: String,
    /// The Secret's shape.
    pub shape: Shape,
    /// The intermediate's DNS SANs.
    pub san_dns: Vec<String>,
    /// Whether the intermediate is name-constrained.
    pub name_constraints: bool,
    /// The trust domain its name constraints permit (the file's
    /// `trustDomain`).
    pub trust_domain: String,
    /// DNS suffixes its name constraints permit beyond its own SANs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permit_dns: Vec<String>,
}

impl Desired {
    /// The intermediate's name constraints (`None`: unconstrained).
    pub fn name_constraints(&self) -> Option<NameConstraints> {
        self.name_constraints
            .then(|| NameConstraints::new(vec![self.trust_domain.clone()], self.permit_dns.clone()))
    }
}

// KeyType lives in profile.rs without serde: this gives it its
// command-line name in plans printed as JSON.
impl Serialize for KeyType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What serde_yaml_ng refused, where, and in which field, without the
/// value it met: serde's messages quote values (`invalid type: string
/// "..."`), and a value may be anything, a key pasted by mistake included.
fn located(file: &str, e: &serde_yaml_ng::Error) -> MeshFileError {
    let (line, column) = match e.location() {
        Some(at) => (Some(at.line()), Some(at.column())),
        None => (None, None),
    };
    let shown = e.to_string();
    // serde_yaml_ng writes "PATH: MESSAGE at line L column C" for errors
    // from deserializing (error.rs, `message_no_mark` and `display`); the
    // path has no spaces. Other errors (YAML syntax) get a fixed text.
    let body = match shown.rfind(" at line ") {
        Some(i) => shown.get(..i).unwrap_or_default(),
        None => shown.as_str(),
    };
    let (field, message) = match body.split_once(": ") {
        Some((path, rest)) if !path.is_empty() && !path.contains(char::is_whitespace) => {
            (Some(path.to_owned()), rest)
        }
        _ => (None, body),
    };
    let (field, problem) = describe(field, message);
    MeshFileError {
        file: file.to_owned(),
        line,
        column,
        field,
        problem,
    }
}

/// Marks the messages this module makes itself (they hold no value).
const OURS: &str = "\u{1}";

/// serde's message without the value it quotes; the field named by an
/// unknown/missing/duplicate field message is appended to the path.
fn describe(path: Option<String>, message: &str) -> (Option<String>, String) {
    let expected = |m: &str| {
        m.rfind(", expected ")
            .and_then(|i| m.get(i + 2..))
            .map(str::to_owned)
    };
    let join = |name: &str| {
        Some(match &path {
            Some(p) => format!("{p}.{name}"),
            None => name.to_owned(),
        })
    };
    let backticked = |m: &str| m.split('`').nth(1).map(str::to_owned);
    if let Some(ours) = message.strip_prefix(OURS) {
        return (path, ours.to_owned());
    }
    if message.starts_with("unknown field `") {
        let name = backticked(message).unwrap_or_default();
        let known = expected(message).unwrap_or_default();
        return (
            join(&name),
            format!(
                "unknown field; known fields: {}",
                known
                    .trim_start_matches("expected ")
                    .trim_start_matches("one of ")
            ),
        );
    }
    for (prefix, what) in [
        ("missing field `", "missing (required)"),
        ("duplicate field `", "given twice"),
    ] {
        if message.starts_with(prefix) {
            let name = backticked(message).unwrap_or_default();
            return (join(&name), what.to_owned());
        }
    }
    if message.starts_with("invalid type: ") {
        let want = expected(message).unwrap_or_else(|| "another type".to_owned());
        // serde names the Rust type it wanted (`expected struct RootSpec`).
        let want = if want.starts_with("expected struct ") {
            "expected a mapping".to_owned()
        } else {
            want
        };
        return (path, format!("wrong type, {want}"));
    }
    if message.starts_with("invalid value: ") || message.starts_with("unknown variant `") {
        let want = expected(message).unwrap_or_else(|| "another value".to_owned());
        return (path, format!("invalid value, {want}"));
    }
    if message.starts_with("invalid length ") {
        return (path, message.to_owned());
    }
    if path.is_none() && !message.contains('`') && !message.contains('"') {
        // libyaml's syntax errors are fixed texts ("did not find expected
        // key"), never input.
        let text = message.split(" at line ").next().unwrap_or(message);
        return (None, format!("not valid YAML ({text})"));
    }
    (path, "invalid".to_owned())
}

fn ours<E: de::Error>(message: impl fmt::Display) -> E {
    E::custom(format_args!("{OURS}{message}"))
}

/// A visitor for a string scalar checked by `check`, whose error (raised
/// inside the scalar's own deserialization) carries the scalar's line.
struct Checked<F> {
    expecting: &'static str,
    check: F,
}

impl<'de, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'de> for Checked<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.check)(v).map_err(ours)
    }
}

fn checked_str<'de, D: Deserializer<'de>, T>(
    d: D,
    expecting: &'static str,
    check: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    d.deserialize_str(Checked { expecting, check })
}

fn key_type<'de, D: Deserializer<'de>>(d: D) -> Result<Option<KeyType>, D::Error> {
    checked_str(d, "a key type", |s| {
        s.parse::<KeyType>()
            .map(Some)
            .map_err(|_| format!("unknown key type; valid key types: {KEY_TYPE_NAMES}"))
    })
}

fn shape<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Shape>, D::Error> {
    checked_str(d, "opaque or tls", |s| match s {
        "opaque" => Ok(Some(Shape::Opaque)),
        "tls" => Ok(Some(Shape::Tls)),
        _ => Err("unknown Secret shape; valid shapes: opaque, tls".to_owned()),
    })
}

fn san_dns<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Names;
    impl<'de> Visitor<'de> for Names {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of DNS names")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(name) = seq.next_element_seed(DnsName)? {
                out.push(name);
            }
            if out.is_empty() {
                return Err(ours("must name at least one DNS name"));
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Names).map(Some)
}

struct DnsName;

impl<'de> DeserializeSeed<'de> for DnsName {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        checked_str(d, "a DNS name", |s| {
            if is_dns_name(s) {
                Ok(s.to_owned())
            } else {
                Err("not a DNS name (lowercase labels separated by '.')".to_owned())
            }
        })
    }
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| validate_name("label", l).is_ok())
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked_str(d, "a string", |s| {
        if s.trim().is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(Some(s.to_owned()))
        }
    })
}

fn namespace<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked_str(d, "a namespace", |s| {
        validate_name("namespace", s)
            .map(|()| Some(s.to_owned()))
            .map_err(|_| "not a DNS label (lowercase letters, digits, '-')".to_owned())
    })
}

fn trust_domain<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked_str(d, "a trust domain", |s| {
        if is_dns_name(s) {
            Ok(Some(s.to_owned()))
        } else {
            Err("not a DNS name (lowercase labels separated by '.')".to_owned())
        }
    })
}

fn cluster_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked_str(d, "a cluster name", |s| {
        validate_name("cluster name", s)
            .map(|()| s.to_owned())
            .map_err(|_| "not a DNS label (lowercase letters, digits, '-')".to_owned())
    })
}

fn api_version<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    checked_str(d, "meshca/v1", |s| {
        if s == API_VERSION {
            Ok(())
        } else {
            Err(format!("unsupported apiVersion; expected {API_VERSION}"))
        }
    })
}

fn kind<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    checked_str(d, "Mesh", |s| {
        if s == KIND {
            Ok(())
        } else {
            Err(format!("unsupported kind; expected {KIND}"))
        }
    })
}

struct Days;

impl Visitor<'_> for Days {
    type Value = Option<u32>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number of days")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<u32>, E> {
        match u32::try_from(v) {
            Ok(n) if (1..=36500).contains(&n) => Ok(Some(n)),
            _ => Err(ours("days must be between 1 and 36500")),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<u32>, E> {
        match u64::try_from(v) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(ours("days must be between 1 and 36500")),
        }
    }
}

fn days<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    d.deserialize_u64(Days)
}

struct Flag;

impl Visitor<'_> for Flag {
    type Value = Option<bool>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("true or false")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<bool>, E> {
        Ok(Some(v))
    }
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_bool(Flag)
}

fn data_plane<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DataPlane>, D::Error> {
    checked_str(d, "sidecar or ambient", |s| match s {
        "sidecar" => Ok(Some(DataPlane::Sidecar)),
        "ambient" => Ok(Some(DataPlane::Ambient)),
        _ => Err("unknown data plane; valid data planes: sidecar, ambient".to_owned()),
    })
}

fn permit_dns<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Suffixes;
    impl<'de> Visitor<'de> for Suffixes {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of DNS suffixes")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(name) = seq.next_element_seed(DnsSuffix)? {
                out.push(name);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Suffixes).map(Some)
}

/// A DNS name, or `.` and a DNS name (its subdomains only).
struct DnsSuffix;

impl<'de> DeserializeSeed<'de> for DnsSuffix {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        checked_str(d, "a DNS suffix", |s| {
            if is_dns_name(s.strip_prefix('.').unwrap_or(s)) {
                Ok(s.to_owned())
            } else {
                Err(
                    "not a DNS suffix (lowercase labels separated by '.', optionally \
                     starting with '.')"
                        .to_owned(),
                )
            }
        })
    }
}

/// `clusters`, each name once: a second use of a name is an error at the
/// line of the entry that repeats it.
#[derive(Default)]
struct Clusters(Vec<ClusterSpec>);

impl<'de> Deserialize<'de> for Clusters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Clusters;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of clusters")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Clusters, A::Error> {
                let mut seen = BTreeSet::new();
                let mut out = Vec::new();
                while let Some(c) = seq.next_element_seed(Unique(&mut seen))? {
                    out.push(c);
                }
                Ok(Clusters(out))
            }
        }
        d.deserialize_seq(List)
    }
}

/// One cluster entry, checked against the names seen before it.
struct Unique<'a>(&'a mut BTreeSet<String>);

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = ClusterSpec;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ClusterSpec, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = ClusterSpec;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a cluster (a mapping with a name)")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ClusterSpec, A::Error> {
        // The error is raised inside the entry's own mapping, so it carries
        // that entry's line.
        let spec = ClusterSpec::deserialize(de::value::MapAccessDeserializer::new(map))?;
        if !self.0.insert(spec.name.clone()) {
            return Err(ours(
                "a cluster of this name is listed before: each name once",
            ));
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> MeshFileError {
        MeshFile::parse("mesh.yaml", text.as_bytes()).unwrap_err()
    }

    const HEAD: &str = "apiVersion: meshca/v1\nkind: Mesh\n";

    #[test]
    fn a_full_file_parses_with_defaults_filled_in() {
        let text = format!(
            "{HEAD}trustDomain: example.org\nroot:\n  keyType: ecdsa-p384\n  days: 7300\n  key: pkcs11:token=mesh;object=root\n\
             defaults:\n  keyType: ecdsa-p256\n  renewBefore: 60\n  nameConstraints: false\n\
             clusters:\n  - name: east\n  - name: west\n    keyType: rsa-2048\n    namespace: istio\n    secret: tls\n"
        );
        let f = MeshFile::parse("mesh.yaml", text.as_bytes()).unwrap();
        assert_eq!(f.trust_domain, "example.org");
        assert_eq!(f.root.key_type, Some(KeyType::EcdsaP384));
        assert_eq!(f.root.key.as_deref(), Some("pkcs11:token=mesh;object=root"));
        let east = f.desired(&f.clusters[0]);
        assert_eq!(east.key_type, KeyType::EcdsaP256);
        assert_eq!(east.renew_before, 60);
        assert_eq!(east.days, 730);
        assert_eq!(east.san_dns, ["istiod.istio-system.svc"]);
        assert_eq!(east.shape, Shape::Opaque);
        let west = f.desired(&f.clusters[1]);
        assert_eq!(west.key_type, KeyType::Rsa2048);
        assert_eq!(west.namespace, "istio");
        assert_eq!(west.san_dns, ["istiod.istio.svc"]);
        assert_eq!(west.shape, Shape::Tls);
    }

    #[test]
    fn an_unknown_field_is_named_with_its_line() {
        let e = err(&format!(
            "{HEAD}clusters:\n  - name: east\n    keytype: rsa-2048\n"
        ));
        assert_eq!(e.line, Some(5), "{e}");
        assert_eq!(e.field.as_deref(), Some("clusters[0].keytype"), "{e}");
        assert!(e.to_string().contains("unknown field"), "{e}");
        assert!(
            e.to_string().contains("keyType"),
            "lists the known fields: {e}"
        );
        assert!(!e.to_string().contains("rsa-2048"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_the_field_not_the_value() {
        let e = err(&format!("{HEAD}defaults:\n  days: sevenhundred\n"));
        assert_eq!(e.line, Some(4), "{e}");
        assert_eq!(e.field.as_deref(), Some("defaults.days"), "{e}");
        assert!(!e.to_string().contains("sevenhundred"), "{e}");
        assert!(e.problem.starts_with("wrong type"), "{e}");
    }

    #[test]
    fn a_bad_key_type_names_the_valid_ones_not_the_value() {
        let e = err(&format!(
            "{HEAD}clusters:\n- name: a\n- name: b\n  keyType: dsa-1024\n"
        ));
        assert_eq!(e.line, Some(6), "{e}");
        assert_eq!(e.field.as_deref(), Some("clusters[1].keyType"), "{e}");
        assert!(e.problem.contains("ecdsa-p256"), "{e}");
        assert!(!e.to_string().contains("dsa-1024"), "{e}");
    }

    #[test]
    fn a_duplicate_cluster_is_reported_at_the_second_entry() {
        let e = err(&format!(
            "{HEAD}clusters:\n  - name: east\n  - name: west\n  - name: east\n"
        ));
        assert_eq!(e.line, Some(6), "{e}");
        assert_eq!(e.field.as_deref(), Some("clusters[2]"), "{e}");
        assert!(e.problem.contains("listed before"), "{e}");
    }

    #[test]
    fn name_constraints_default_and_per_cluster() {
        let text = format!(
            "{HEAD}trustDomain: mesh.example\ndefaults:\n  nameConstraints: true\n  \
             permitDns: [.svc.example]\nclusters:\n  - name: a\n  - name: b\n    \
             nameConstraints: false\n  - name: c\n    permitDns: []\n"
        );
        let f = MeshFile::parse("mesh.yaml", text.as_bytes()).unwrap();
        let nc = f.desired(&f.clusters[0]).name_constraints().unwrap();
        assert_eq!(nc.trust_domains, ["mesh.example"]);
        assert_eq!(nc.permit_dns, [".svc.example"]);
        assert_eq!(f.desired(&f.clusters[1]).name_constraints(), None);
        let nc = f.desired(&f.clusters[2]).name_constraints().unwrap();
        assert!(nc.permit_dns.is_empty(), "{nc:?}");
        let plain = MeshFile::parse("mesh.yaml", HEAD.as_bytes()).unwrap();
        assert_eq!(plain.defaults.name_constraints, None);
    }

    #[test]
    fn name_constraints_with_an_ambient_data_plane_are_refused() {
        let e = err(&format!(
            "{HEAD}defaults:\n  dataPlane: ambient\nclusters:\n  - name: a\n    nameConstraints: true\n"
        ));
        assert_eq!(
            e.field.as_deref(),
            Some("clusters[0].nameConstraints"),
            "{e}"
        );
        assert!(e.problem.contains("rustls-webpki"), "{e}");
        // Ambient without constraints is fine.
        let text = format!("{HEAD}defaults:\n  dataPlane: ambient\nclusters:\n  - name: a\n");
        assert!(MeshFile::parse("mesh.yaml", text.as_bytes()).is_ok());
        let e = err(&format!("{HEAD}defaults:\n  dataPlane: istio-cni\n"));
        assert_eq!(e.field.as_deref(), Some("defaults.dataPlane"), "{e}");
        assert!(!e.to_string().contains("istio-cni"), "{e}");
        let e = err(&format!("{HEAD}defaults:\n  permitDns: [Bad_Name]\n"));
        assert_eq!(e.line, Some(4), "{e}");
        assert_eq!(e.field.as_deref(), Some("defaults.permitDns[0]"), "{e}");
        assert!(!e.to_string().contains("Bad_Name"), "{e}");
        let e = err(&format!("{HEAD}defaults:\n  nameConstraints: yes please\n"));
        assert_eq!(e.field.as_deref(), Some("defaults.nameConstraints"), "{e}");
        assert!(!e.to_string().contains("please"), "{e}");
    }

    #[test]
    fn wrong_api_version_kind_and_bad_names_are_refused() {
        let e = err("apiVersion: meshca/v2\nkind: Mesh\n");
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(1), Some("apiVersion")),
            "{e}"
        );
        assert!(!e.to_string().contains("v2"), "{e}");
        let e = err("apiVersion: meshca/v1\nkind: Mash\n");
        assert_eq!(e.field.as_deref(), Some("kind"), "{e}");
        let e = err(&format!("{HEAD}clusters:\n  - name: East_1\n"));
        assert_eq!(e.field.as_deref(), Some("clusters[0].name"), "{e}");
        assert!(!e.to_string().contains("East_1"), "{e}");
        let e = err(&format!("{HEAD}defaults:\n  secret: generic\n"));
        assert_eq!(e.field.as_deref(), Some("defaults.secret"), "{e}");
        assert!(!e.to_string().contains("generic"), "{e}");
        let e = err("kind: Mesh\n");
        assert_eq!(e.field.as_deref(), Some("apiVersion"), "{e}");
        assert!(e.problem.contains("missing"), "{e}");
    }

    #[test]
    fn a_scalar_where_a_mapping_belongs_says_so() {
        let e = err(&format!("{HEAD}root: ecdsa-p256\n"));
        assert_eq!(e.field.as_deref(), Some("root"), "{e}");
        assert_eq!(e.problem, "wrong type, expected a mapping", "{e}");
        let e = err(&format!("{HEAD}clusters: east\n"));
        assert_eq!(e.field.as_deref(), Some("clusters"), "{e}");
        assert!(e.problem.contains("list of clusters"), "{e}");
        let e = err(&format!("{HEAD}clusters:\n  - east\n"));
        assert_eq!(e.field.as_deref(), Some("clusters[0]"), "{e}");
        assert!(!e.to_string().contains("east"), "{e}");
    }

    /// A private key pasted where the mesh file belongs is not echoed.
    #[test]
    fn a_key_given_as_the_mesh_file_is_not_echoed() {
        let key = crate::key::PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let pem = key.to_pem();
        let e = err(&pem).to_string();
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!e.contains(line), "{e}");
        }
        assert!(e.starts_with("mesh.yaml"), "{e}");
        let e = err("apiVersion: [unclosed\n").to_string();
        assert!(e.contains("line"), "{e}");
    }
}
