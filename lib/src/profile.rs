//! What each certificate should be: the recipe's defaults and the options
//! around them.
//!
//! Every params type's [`Default`] is the profile of Istio's
//! `tools/certs/Makefile.selfsigned.mk` (subjects, validity, pathlen, SAN),
//! with the recipe's weak points fixed: an AuthorityKeyIdentifier on every
//! issued certificate, `keyCertSign` + `cRLSign` on CAs (no
//! `keyEncipherment`/`nonRepudiation`), random 20-byte serials, and
//! `notBefore` backdated by [`DEFAULT_BACKDATE`] for clock skew between
//! clusters.

use std::fmt;
use std::str::FromStr;

use time::Duration;

use crate::error::{Error, Result};

/// How far `notBefore` is set before "now", so that a cluster whose clock
/// runs a little behind still accepts a freshly made certificate.
pub const DEFAULT_BACKDATE: Duration = Duration::minutes(5);

/// The key types meshca makes and accepts, as istiod supports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyType {
    /// RSA, 2048-bit modulus.
    Rsa2048,
    /// RSA, 3072-bit modulus.
    Rsa3072,
    /// RSA, 4096-bit modulus (the recipe's choice).
    #[default]
    Rsa4096,
    /// ECDSA on NIST P-256, signing with SHA-256.
    EcdsaP256,
    /// ECDSA on NIST P-384, signing with SHA-384.
    EcdsaP384,
}

/// The names [`KeyType`] parses, for messages and help texts.
pub const KEY_TYPE_NAMES: &str = "rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384";

impl KeyType {
    /// Every key type, in the order of [`KEY_TYPE_NAMES`].
    pub const ALL: [KeyType; 5] = [
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
    ];

    /// The name used on the command line (`rsa-4096`, `ecdsa-p256`, ...).
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
        }
    }

    /// Whether this is an RSA key type.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096)
    }

    /// Key size in bits (modulus for RSA, field size for ECDSA).
    pub fn bits(self) -> u32 {
        match self {
            KeyType::Rsa2048 => 2048,
            KeyType::Rsa3072 => 3072,
            KeyType::Rsa4096 => 4096,
            KeyType::EcdsaP256 => 256,
            KeyType::EcdsaP384 => 384,
        }
    }

    /// The signature algorithm a key of this type signs with.
    pub(crate) fn signature_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyType {
    type Err = Error;

    /// Parses `rsa-2048|rsa-3072|rsa-4096|ecdsa-p256|ecdsa-p384`
    /// (case-insensitive). A bare RSA size (`2048`, `3072`, `4096`) is
    /// accepted too, so the recipe's `ROOTCA_KEYSZ`/`INTERMEDIATE_KEYSZ`
    /// variables carry over.
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let found = match lower.as_str() {
            "rsa-2048" | "rsa2048" | "2048" => KeyType::Rsa2048,
            "rsa-3072" | "rsa3072" | "3072" => KeyType::Rsa3072,
            "rsa-4096" | "rsa4096" | "4096" => KeyType::Rsa4096,
            "ecdsa-p256" | "p256" | "p-256" | "prime256v1" => KeyType::EcdsaP256,
            "ecdsa-p384" | "p384" | "p-384" | "secp384r1" => KeyType::EcdsaP384,
            _ => {
                return Err(Error::InvalidArgument {
                    what: "key type",
                    value: s.to_owned(),
                    reason: format!("valid key types: {KEY_TYPE_NAMES}"),
                })
            }
        };
        Ok(found)
    }
}

/// The profile of the offline root CA (`root-cert.pem`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RootParams {
    /// Subject O (`ROOTCA_ORG`, default `Istio`).
    pub org: String,
    /// Subject CN (`ROOTCA_CN`, default `Root CA`).
    pub cn: String,
    /// Validity in days from now (`ROOTCA_DAYS`, default 3650).
    pub days: u32,
    /// Key type (`ROOTCA_KEYSZ`, default RSA 4096).
    pub key_type: KeyType,
    /// How far `notBefore` is set before now.
    pub backdate: Duration,
}

impl Default for RootParams {
    fn default() -> Self {
        RootParams {
            org: "Istio".into(),
            cn: "Root CA".into(),
            days: 3650,
            key_type: KeyType::Rsa4096,
            backdate: DEFAULT_BACKDATE,
        }
    }
}

/// The profile of a cluster's intermediate CA (`ca-cert.pem`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IntermediateParams {
    /// Subject O (`INTERMEDIATE_ORG`, default `Istio`).
    pub org: String,
    /// Subject CN (`INTERMEDIATE_CN`, default `Intermediate CA`).
    pub cn: String,
    /// Validity in days from now (`INTERMEDIATE_DAYS`, default 730). The
    /// certificate never outlives its root: `notAfter` is clamped to the
    /// root's (see [`crate::IssuedIntermediate::clamped`]).
    pub days: u32,
    /// Key type (`INTERMEDIATE_KEYSZ`, default RSA 4096).
    pub key_type: KeyType,
    /// DNS SANs (`INTERMEDIATE_SAN_DNS`, default `istiod.istio-system.svc`).
    pub san_dns: Vec<String>,
    /// How far `notBefore` is set before now.
    pub backdate: Duration,
    /// A critical NameConstraints extension limiting what the
    /// intermediate may sign (`None`: unconstrained, as the recipe).
    pub name_constraints: Option<NameConstraints>,
}

impl Default for IntermediateParams {
    fn default() -> Self {
        IntermediateParams {
            org: "Istio".into(),
            cn: "Intermediate CA".into(),
            days: 730,
            key_type: KeyType::Rsa4096,
            san_dns: vec!["istiod.istio-system.svc".into()],
            backdate: DEFAULT_BACKDATE,
            name_constraints: None,
        }
    }
}

/// The trust domain `--name-constraints` permits unless told otherwise.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// What a name-constrained intermediate may sign: workload identities of
/// its trust domains and DNS names of istiod's own certificate.
///
/// The extension, marked critical, permits:
/// - one URI subtree per trust domain: RFC 5280 matches a URI constraint
///   against the URI's host, so `cluster.local` permits
///   `spiffe://cluster.local/ns/<ns>/sa/<sa>`. OpenSSL takes a constraint
///   without a leading dot as that host exactly; Go's crypto/x509
///   (verify.go `matchURIConstraint` -> `matchDomainConstraint`) also
///   permits its subdomains (`spiffe://a.cluster.local/...`).
///   rustls-webpki (ztunnel) does not implement URI constraints and
///   refuses every URI name below one (`subject_name/mod.rs`: "fail
///   closed"): see [`NameConstraints::check_verifier_support`].
/// - one DNS subtree per name of the intermediate's own DNS SANs
///   (`istiod.<ns>.svc`, which istiod puts in its serving certificate) and
///   per [`NameConstraints::permit_dns`] suffix; a DNS constraint permits
///   the name and its subdomains in Go, OpenSSL and webpki alike.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NameConstraints {
    /// SPIFFE trust domains (`cluster.local`), at least one.
    pub trust_domains: Vec<String>,
    /// DNS suffixes permitted beyond the intermediate's own SANs.
    pub permit_dns: Vec<String>,
    /// Read from a certificate whose constraints hold more than meshca
    /// writes (excluded subtrees, other name forms): re-issuing from these
    /// would widen them, so [`NameConstraints::validate`] refuses.
    pub(crate) incomplete: bool,
}

impl Default for NameConstraints {
    fn default() -> Self {
        NameConstraints {
            trust_domains: vec![DEFAULT_TRUST_DOMAIN.into()],
            permit_dns: Vec::new(),
            incomplete: false,
        }
    }
}

impl NameConstraints {
    /// Constraints for `trust_domains` (the default trust domain when
    /// empty) and the extra DNS suffixes `permit_dns`.
    pub fn new(trust_domains: Vec<String>, permit_dns: Vec<String>) -> Self {
        let trust_domains = if trust_domains.is_empty() {
            vec![DEFAULT_TRUST_DOMAIN.into()]
        } else {
            trust_domains
        };
        NameConstraints {
            trust_domains,
            permit_dns,
            incomplete: false,
        }
    }

    /// Checks every trust domain (a lowercase DNS name, as the SPIFFE spec
    /// wants) and DNS suffix (a DNS name, optionally with a leading `.`:
    /// subdomains only).
    pub fn validate(&self) -> Result<()> {
        if self.incomplete {
            return Err(Error::Refused {
                what: "name constraints".into(),
                reason: "the intermediate's constraints hold excluded subtrees or name forms \
                         meshca does not write (IP, e-mail, directory names, DNS-only): a \
                         re-issue would widen them; re-issue it with explicit name constraints \
                         (intermediate --force --name-constraints)"
                    .into(),
            });
        }
        if self.trust_domains.is_empty() {
            return Err(Error::InvalidArgument {
                what: "trust domain",
                value: String::new(),
                reason: "name constraints need at least one trust domain".into(),
            });
        }
        for td in &self.trust_domains {
            let lower = td.bytes().all(|b| !b.is_ascii_uppercase());
            if !lower || td.starts_with("*.") || validate_dns_name(td).is_err() {
                return Err(Error::InvalidArgument {
                    what: "trust domain",
                    value: td.clone(),
                    reason: "must be a lowercase DNS name such as cluster.local".into(),
                });
            }
        }
        for d in &self.permit_dns {
            let body = d.strip_prefix('.').unwrap_or(d);
            if body.starts_with("*.") || validate_dns_name(body).is_err() {
                return Err(Error::InvalidArgument {
                    what: "permitted DNS suffix",
                    value: d.clone(),
                    reason: "must be a DNS name such as example.com or .example.com (no wildcard)"
                        .into(),
                });
            }
        }
        Ok(())
    }

    /// The permitted DNS subtrees for an intermediate with the DNS SANs
    /// `san_dns`: those SANs (a wildcard `*.x` as `.x`), then
    /// [`NameConstraints::permit_dns`], each once (compared without case),
    /// in that order.
    pub fn permitted_dns(&self, san_dns: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let sans = san_dns
            .iter()
            .map(|s| s.strip_prefix('*').unwrap_or(s).to_owned());
        for name in sans.chain(self.permit_dns.iter().cloned()) {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&name)) {
                out.push(name);
            }
        }
        out
    }

    /// Refuses the combination of URI name constraints with a verifier
    /// that cannot process them: rustls-webpki, the verifier of ztunnel
    /// (Istio's ambient data plane), rejects every certificate with a URI
    /// SAN below a CA that constrains URIs, so no workload of such a mesh
    /// could connect. `ambient`: whether the mesh runs ztunnel.
    pub fn check_verifier_support(&self, ambient: bool) -> Result<()> {
        if ambient {
            return Err(Error::Refused {
                what: "name constraints".into(),
                reason: "ztunnel verifies with rustls-webpki, which does not implement URI name \
                         constraints and refuses every SPIFFE identity below one: an ambient \
                         mesh cannot use name-constrained intermediates"
                    .into(),
            });
        }
        Ok(())
    }
}

/// The profile of a VM workload certificate (`workload-cert.pem`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkloadParams {
    /// Subject O (default `Istio`).
    pub org: String,
    /// Subject CN (default `Workload`).
    pub cn: String,
    /// Validity in days from now (`WORKLOAD_DAYS`, default 1).
    pub days: u32,
    /// Key type (default RSA 4096, as the recipe).
    pub key_type: KeyType,
    /// SPIFFE trust domain (default `cluster.local`).
    pub trust_domain: String,
    /// Service account (`SERVICE_ACCOUNT`, default `default`).
    pub service_account: String,
    /// How far `notBefore` is set before now.
    pub backdate: Duration,
}

impl Default for WorkloadParams {
    fn default() -> Self {
        WorkloadParams {
            org: "Istio".into(),
            cn: "Workload".into(),
            days: 1,
            key_type: KeyType::Rsa4096,
            trust_domain: "cluster.local".into(),
            service_account: "default".into(),
            backdate: DEFAULT_BACKDATE,
        }
    }
}

impl WorkloadParams {
    /// The SPIFFE ID of the workload in `namespace`:
    /// `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
    pub fn spiffe_id(&self, namespace: &str) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, namespace, self.service_account
        )
    }
}

/// Checks that `name` is usable as a cluster or namespace name: an RFC 1123
/// DNS label (1-63 of `a-z`, `0-9`, `-`, starting and ending with a letter
/// or digit). This also keeps it a single, safe directory name.
pub fn validate_name(what: &'static str, name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidArgument {
            what,
            value: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name.len() > 63 {
        return bad("must be at most 63 characters (a DNS label)");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("must be a DNS label: lowercase letters, digits and '-' only");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return bad("must start and end with a letter or digit");
    }
    Ok(())
}

/// Checks a validity period in days (1 to 100 years).
pub(crate) fn validate_days(what: &'static str, days: u32) -> Result<()> {
    if days == 0 || days > 36_500 {
        return Err(Error::InvalidArgument {
            what,
            value: days.to_string(),
            reason: "must be between 1 and 36500 days".into(),
        });
    }
    Ok(())
}

/// Checks a DNS name for a SAN (labels of letters, digits, '-', '.'; `*.` allowed first).
pub(crate) fn validate_dns_name(name: &str) -> Result<()> {
    let body = name.strip_prefix("*.").unwrap_or(name);
    let ok = !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            what: "DNS SAN",
            value: name.to_owned(),
            reason: "not a valid DNS name".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_round_trips_and_accepts_recipe_sizes() {
        for kt in KeyType::ALL {
            assert_eq!(kt.name().parse::<KeyType>().unwrap(), kt);
        }
        assert_eq!("4096".parse::<KeyType>().unwrap(), KeyType::Rsa4096);
        assert_eq!("2048".parse::<KeyType>().unwrap(), KeyType::Rsa2048);
        let err = "rsa-1024".parse::<KeyType>().unwrap_err().to_string();
        assert!(
            err.contains("rsa-1024") && err.contains(KEY_TYPE_NAMES),
            "{err}"
        );
    }

    #[test]
    fn names_must_be_dns_labels() {
        for good in ["cluster1", "a", "east-1", &"x".repeat(63)] {
            validate_name("cluster name", good).unwrap();
        }
        for bad in [
            "",
            "Cluster1",
            "../etc",
            "a/b",
            "-a",
            "a-",
            "a.b",
            &"x".repeat(64),
            "a b",
        ] {
            assert!(
                validate_name("cluster name", bad).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn dns_sans_are_checked() {
        validate_dns_name("istiod.istio-system.svc").unwrap();
        validate_dns_name("*.example.com").unwrap();
        for bad in ["", "a..b", "a b", "-a.b", "a_b.c"] {
            assert!(validate_dns_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
