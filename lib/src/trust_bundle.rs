//! The mesh's roots in the forms other systems take trust anchors in: a
//! PEM bundle, a SPIFFE trust bundle, a Kubernetes ClusterTrustBundle, a
//! cert-manager trust-manager `Bundle` and Istio's
//! `meshConfig.caCertificates`.
//!
//! [`Mesh::trust_anchors`] collects every root of a mesh, both roots during
//! a rotation stage; [`trust_bundle`] renders them. Pure: no file system.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Serialize;
use x509_parser::public_key::PublicKey;

use crate::bundle::ROOT_CERT;
use crate::error::{Error, Result};
use crate::mesh::Mesh;
use crate::pemutil;

/// The name and signer of the ClusterTrustBundle istiod publishes its root
/// in (istio/istio pilot/pkg/config/kube/clustertrustbundle/controller.go:
/// `istioClusterTrustBundleName`, `istioClusterTrustBundleSignerName`,
/// certificates.k8s.io/v1beta1, with `ENABLE_CLUSTER_TRUST_BUNDLE_API`).
pub const ISTIOD_CLUSTER_TRUST_BUNDLE: &str = "istio.io:istiod-ca:root-cert";
/// The signer name of [`ISTIOD_CLUSTER_TRUST_BUNDLE`].
pub const ISTIOD_SIGNER_NAME: &str = "istio.io/istiod-ca";
/// The default name of the trust-manager `Bundle` (and so of the
/// ConfigMap it writes into each namespace).
pub const DEFAULT_TRUST_MANAGER_BUNDLE: &str = "istio-root-certs";
/// The ConfigMap key trust-manager writes the roots to.
pub const TRUST_MANAGER_KEY: &str = "root-cert.pem";
/// The default `spiffe_refresh_hint`, in seconds.
pub const DEFAULT_REFRESH_HINT: u64 = 300;

/// The forms [`trust_bundle`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TrustBundleFormat {
    /// The roots, PEM, one after another.
    Pem,
    /// A SPIFFE bundle (JWKS), per the SPIFFE Trust Domain and Bundle spec.
    Spiffe,
    /// A Kubernetes `certificates.k8s.io/v1beta1` ClusterTrustBundle.
    ClusterTrustBundle,
    /// A cert-manager trust-manager `trust.cert-manager.io/v1alpha1` Bundle.
    TrustManager,
    /// Istio's `meshConfig.caCertificates`.
    MeshConfig,
}

/// The names [`TrustBundleFormat`] parses.
pub const TRUST_BUNDLE_FORMAT_NAMES: &str =
    "pem, spiffe, cluster-trust-bundle, trust-manager, mesh-config";

impl TrustBundleFormat {
    /// Every format, in the order of [`TRUST_BUNDLE_FORMAT_NAMES`].
    pub const ALL: [TrustBundleFormat; 5] = [
        TrustBundleFormat::Pem,
        TrustBundleFormat::Spiffe,
        TrustBundleFormat::ClusterTrustBundle,
        TrustBundleFormat::TrustManager,
        TrustBundleFormat::MeshConfig,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TrustBundleFormat::Pem => "pem",
            TrustBundleFormat::Spiffe => "spiffe",
            TrustBundleFormat::ClusterTrustBundle => "cluster-trust-bundle",
            TrustBundleFormat::TrustManager => "trust-manager",
            TrustBundleFormat::MeshConfig => "mesh-config",
        }
    }
}

impl fmt::Display for TrustBundleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TrustBundleFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        TrustBundleFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| Error::InvalidArgument {
                what: "bundle format",
                value: s.to_owned(),
                reason: format!("valid formats: {TRUST_BUNDLE_FORMAT_NAMES}"),
            })
    }
}

/// How [`trust_bundle`] renders the roots. Options a format has no use
/// for are refused, not ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustBundleOptions {
    /// The form.
    pub format: TrustBundleFormat,
    /// `mesh-config`: the entries' `trustDomains` (empty: none, so Istio
    /// uses them for every trust domain).
    pub trust_domains: Vec<String>,
    /// `cluster-trust-bundle`: `metadata.name` (default
    /// [`ISTIOD_CLUSTER_TRUST_BUNDLE`]; it must start with
    /// `istio.io:istiod-ca:`, the signer's prefix); `trust-manager`: the
    /// Bundle's name (default [`DEFAULT_TRUST_MANAGER_BUNDLE`]).
    pub name: Option<String>,
    /// `trust-manager`: only the namespace of this name gets the ConfigMap
    /// (default: every namespace).
    pub namespace: Option<String>,
    /// `spiffe`: `spiffe_sequence`, to be raised each time the bundle changes.
    pub sequence: u64,
    /// `spiffe`: `spiffe_refresh_hint`, seconds.
    pub refresh_hint: u64,
}

impl TrustBundleOptions {
    /// Options for `format`, the rest at their defaults.
    pub fn new(format: TrustBundleFormat) -> Self {
        TrustBundleOptions {
            format,
            trust_domains: Vec::new(),
            name: None,
            namespace: None,
            sequence: 1,
            refresh_hint: DEFAULT_REFRESH_HINT,
        }
    }

    fn refuse_unused(&self) -> Result<()> {
        use TrustBundleFormat as F;
        let unused = |what: &'static str, value: &str| {
            Err(Error::InvalidArgument {
                what,
                value: value.to_owned(),
                reason: format!("the {} format has no use for it", self.format),
            })
        };
        if let Some(td) = self.trust_domains.first() {
            if self.format != F::MeshConfig {
                return unused("trust domain", td);
            }
        }
        if let Some(name) = &self.name {
            if !matches!(self.format, F::ClusterTrustBundle | F::TrustManager) {
                return unused("name", name);
            }
        }
        if let Some(ns) = &self.namespace {
            if self.format != F::TrustManager {
                return unused("namespace", ns);
            }
        }
        Ok(())
    }
}

impl Mesh {
    /// Every root certificate of the mesh (DER): those of `root-cert.pem`
    /// in file order, then any other root in a cluster's `root-cert.pem`
    /// (clusters by name), each once. During a rotation stage this is both
    /// the old and the new root. Every one must be a self-signed CA.
    pub fn trust_anchors(&self) -> Result<Vec<Vec<u8>>> {
        let mut sources: Vec<(String, &str)> = Vec::new();
        if let Some(root) = &self.root {
            sources.push((ROOT_CERT.to_owned(), &root.cert));
        }
        for (name, c) in &self.clusters {
            sources.push((format!("{name}/{ROOT_CERT}"), &c.bundle.root_cert));
        }
        let mut out: Vec<Vec<u8>> = Vec::new();
        for (what, pem) in sources {
            for der in pemutil::certificates(&what, pem.as_bytes())? {
                if out.contains(&der) {
                    continue;
                }
                check_root(&what, &der)?;
                out.push(der);
            }
        }
        if out.is_empty() {
            return Err(Error::MissingFile {
                path: ROOT_CERT.into(),
                hint: String::new(),
            });
        }
        Ok(out)
    }
}

fn check_root(what: &str, der: &[u8]) -> Result<()> {
    let cert = crate::issue::parse(what, der)?;
    let ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    // A trust anchor is trusted for its key alone, but one whose own
    // signature does not verify is a forgery or a corrupt copy: istiod's
    // root-cert.pem check (and `meshca verify`) refuses it, so no bundle
    // hands it out.
    if !ca
        || cert.subject().as_raw() != cert.issuer().as_raw()
        || cert.verify_signature(None).is_err()
    {
        return Err(Error::NotACa {
            what: what.into(),
            reason: "it holds a certificate that is not a self-signed CA, so not a trust anchor"
                .into(),
        });
    }
    Ok(())
}

/// Renders `anchors` (DER, as [`Mesh::trust_anchors`] gives them) in the
/// form `opts` asks for.
pub fn trust_bundle(anchors: &[Vec<u8>], opts: &TrustBundleOptions) -> Result<String> {
    opts.refuse_unused()?;
    for td in &opts.trust_domains {
        crate::profile::NameConstraints::new(vec![td.clone()], Vec::new()).validate()?;
    }
    let pem: Vec<String> = anchors
        .iter()
        .map(|d| pemutil::certificate_pem(d))
        .collect();
    match opts.format {
        TrustBundleFormat::Pem => Ok(pem.concat()),
        TrustBundleFormat::Spiffe => spiffe(anchors, opts),
        TrustBundleFormat::ClusterTrustBundle => cluster_trust_bundle(&pem.concat(), opts),
        TrustBundleFormat::TrustManager => trust_manager(&pem.concat(), opts),
        TrustBundleFormat::MeshConfig => mesh_config(&pem, opts),
    }
}

/// One JWK of a SPIFFE bundle (SPIFFE Trust Domain and Bundle, 4.2 and
/// 4.2.1: `use` `x509-svid`, `x5c` with exactly the root, the key's public
/// parameters per RFC 7518).
#[derive(Serialize)]
struct Jwk {
    #[serde(rename = "use")]
    use_: &'static str,
    kty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    x5c: [String; 1],
}

#[derive(Serialize)]
struct SpiffeBundle {
    keys: Vec<Jwk>,
    spiffe_sequence: u64,
    spiffe_refresh_hint: u64,
}

fn jwk(what: &str, der: &[u8]) -> Result<Jwk> {
    let cert = crate::issue::parse(what, der)?;
    let spki = cert.public_key();
    let unsupported = |found: &str| Error::UnsupportedKey {
        what: what.into(),
        found: found.into(),
        supported: "RSA, ECDSA P-256, ECDSA P-384",
    };
    let parsed = spki.parsed().map_err(|_| unsupported("(unparsable)"))?;
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let mut k = Jwk {
        use_: "x509-svid",
        kty: "",
        crv: None,
        x: None,
        y: None,
        n: None,
        e: None,
        x5c: [STANDARD.encode(der)],
    };
    match parsed {
        PublicKey::RSA(rsa) => {
            let strip =
                |b: &'_ [u8]| -> Vec<u8> { b.iter().copied().skip_while(|&x| x == 0).collect() };
            k.kty = "RSA";
            k.n = Some(b64(&strip(rsa.modulus)));
            k.e = Some(b64(&strip(rsa.exponent)));
        }
        PublicKey::EC(point) => {
            use x509_parser::oid_registry::{OID_EC_P256, OID_NIST_EC_P384};
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            let (crv, len) = match curve {
                Some(c) if c == OID_EC_P256 => ("P-256", 32),
                Some(c) if c == OID_NIST_EC_P384 => ("P-384", 48),
                _ => return Err(unsupported("EC on another curve")),
            };
            // An uncompressed point: 0x04 || X || Y.
            let data = point.data();
            let coords = match data.split_first() {
                Some((4, rest)) if rest.len() == 2 * len => rest,
                _ => return Err(unsupported("EC point not in uncompressed form")),
            };
            let (x, y) = coords.split_at(len);
            k.kty = "EC";
            k.crv = Some(crv);
            k.x = Some(b64(x));
            k.y = Some(b64(y));
        }
        _ => return Err(unsupported("neither RSA nor EC")),
    }
    Ok(k)
}

fn spiffe(anchors: &[Vec<u8>], opts: &TrustBundleOptions) -> Result<String> {
    let keys = anchors
        .iter()
        .enumerate()
        .map(|(i, d)| jwk(&format!("root {}", i + 1), d))
        .collect::<Result<Vec<_>>>()?;
    let bundle = SpiffeBundle {
        keys,
        spiffe_sequence: opts.sequence,
        spiffe_refresh_hint: opts.refresh_hint,
    };
    let mut s =
        serde_json::to_string_pretty(&bundle).map_err(|e| encode_error("SPIFFE bundle", &e))?;
    s.push('\n');
    Ok(s)
}

fn encode_error(what: &str, e: &dyn fmt::Display) -> Error {
    Error::Refused {
        what: what.into(),
        reason: format!("cannot be encoded: {e}"),
    }
}

#[derive(Serialize)]
struct Meta {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CtbSpec {
    signer_name: &'static str,
    trust_bundle: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Resource<S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Meta,
    spec: S,
}

/// YAML that Kubernetes' reader (YAML 1.1) reads back as written: a
/// string such as `on` or `yes` (a namespace name, in a label value) is
/// quoted, where serde_yaml_ng wrote it plain and Kubernetes read `true`.
fn yaml<T: Serialize>(what: &str, v: &T) -> Result<String> {
    serde_saphyr::to_string(v).map_err(|e| encode_error(what, &e))
}

fn cluster_trust_bundle(pem: &str, opts: &TrustBundleOptions) -> Result<String> {
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| ISTIOD_CLUSTER_TRUST_BUNDLE.to_owned());
    // The API server requires a name that starts with the signer name,
    // '/' written ':', followed by more.
    let prefix = format!("{}:", ISTIOD_SIGNER_NAME.replace('/', ":"));
    if !name.starts_with(&prefix) || name.len() == prefix.len() || name.len() > 253 {
        return Err(Error::InvalidArgument {
            what: "ClusterTrustBundle name",
            value: name,
            reason: format!(
                "must start with {prefix} (the signer {ISTIOD_SIGNER_NAME}), as the API server requires"
            ),
        });
    }
    yaml(
        "ClusterTrustBundle",
        &Resource {
            api_version: "certificates.k8s.io/v1beta1",
            kind: "ClusterTrustBundle",
            metadata: Meta { name },
            spec: CtbSpec {
                signer_name: ISTIOD_SIGNER_NAME,
                trust_bundle: pem.to_owned(),
            },
        },
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TmSource {
    in_line: String,
}

#[derive(Serialize)]
struct TmKey {
    key: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TmSelector {
    match_labels: std::collections::BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TmTarget {
    config_map: TmKey,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace_selector: Option<TmSelector>,
}

#[derive(Serialize)]
struct TmSpec {
    sources: Vec<TmSource>,
    target: TmTarget,
}

fn trust_manager(pem: &str, opts: &TrustBundleOptions) -> Result<String> {
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| DEFAULT_TRUST_MANAGER_BUNDLE.to_owned());
    // The Bundle names the ConfigMap it writes: a DNS subdomain.
    crate::profile::validate_dns_name(&name).map_err(|_| Error::InvalidArgument {
        what: "Bundle name",
        value: name.clone(),
        reason: "must be a DNS name (it names the ConfigMap trust-manager writes)".into(),
    })?;
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(Error::InvalidArgument {
            what: "Bundle name",
            value: name,
            reason: "must be lowercase".into(),
        });
    }
    let namespace_selector = match &opts.namespace {
        Some(ns) => {
            crate::profile::validate_name("namespace", ns)?;
            let mut labels = std::collections::BTreeMap::new();
            // Set by Kubernetes on every namespace (1.21+).
            labels.insert("kubernetes.io/metadata.name", ns.clone());
            Some(TmSelector {
                match_labels: labels,
            })
        }
        None => None,
    };
    yaml(
        "trust-manager Bundle",
        &Resource {
            api_version: "trust.cert-manager.io/v1alpha1",
            kind: "Bundle",
            metadata: Meta { name },
            spec: TmSpec {
                sources: vec![TmSource {
                    in_line: pem.to_owned(),
                }],
                target: TmTarget {
                    config_map: TmKey {
                        key: TRUST_MANAGER_KEY,
                    },
                    namespace_selector,
                },
            },
        },
    )
}

/// `meshConfig.caCertificates[]` (istio/api mesh/v1alpha1/config.proto,
/// `MeshConfig.CertificateData`: `pem` or `spiffeBundleUrl`, optional
/// `certSigners` and `trustDomains`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CertificateData {
    pem: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    trust_domains: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MeshConfigCa {
    ca_certificates: Vec<CertificateData>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MeshConfigSnippet {
    mesh_config: MeshConfigCa,
}

fn mesh_config(pems: &[String], opts: &TrustBundleOptions) -> Result<String> {
    yaml(
        "meshConfig",
        &MeshConfigSnippet {
            mesh_config: MeshConfigCa {
                ca_certificates: pems
                    .iter()
                    .map(|p| CertificateData {
                        pem: p.clone(),
                        trust_domains: opts.trust_domains.clone(),
                    })
                    .collect(),
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_their_names() {
        for f in TrustBundleFormat::ALL {
            assert_eq!(f.name().parse::<TrustBundleFormat>().unwrap(), f);
        }
        assert!("jwks".parse::<TrustBundleFormat>().is_err());
    }

    #[test]
    fn options_a_format_does_not_use_are_refused() {
        let mut o = TrustBundleOptions::new(TrustBundleFormat::Pem);
        o.namespace = Some("x".into());
        assert!(trust_bundle(&[], &o).is_err());
        let mut o = TrustBundleOptions::new(TrustBundleFormat::Spiffe);
        o.trust_domains = vec!["cluster.local".into()];
        assert!(trust_bundle(&[], &o).is_err());
        let mut o = TrustBundleOptions::new(TrustBundleFormat::ClusterTrustBundle);
        o.name = Some("other".into());
        let err = trust_bundle(&[], &o).unwrap_err().to_string();
        assert!(err.contains("istio.io:istiod-ca:"), "{err}");
    }
}
