//! Findings, their codes, and the report they make up.

use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;

use super::VerifyOptions;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Severity {
    /// istiod (or cross-cluster trust) will fail: `verify` exits 1.
    Error,
    /// Works today but deserves attention: `verify` still exits 0.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// The stable, machine-readable identity of a finding.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as it appears in output (`key-mismatch`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    /// A file of the bundle is missing.
    MissingFile = "missing-file",
    /// A file is empty.
    EmptyFile = "empty-file",
    /// A file is larger than meshca reads (1 MiB).
    TooLarge = "too-large",
    /// A file is not PEM.
    NotPem = "not-pem",
    /// A file is PEM but does not hold what its name says.
    WrongContent = "wrong-content",
    /// A PEM file does not end with a newline, or two blocks are glued on one line.
    PemFormat = "pem-format",
    /// A certificate does not parse as X.509.
    BadCertificate = "bad-certificate",
    /// `ca-key.pem` is encrypted (istiod needs it in the clear).
    KeyEncrypted = "key-encrypted",
    /// `ca-key.pem` cannot be parsed.
    KeyUnparsable = "key-unparsable",
    /// A key does not match its certificate.
    KeyMismatch = "key-mismatch",
    /// A key file is readable by group or others.
    KeyPermissions = "key-permissions",
    /// RSA under 2048 bits.
    WeakKey = "weak-key",
    /// A key type or curve istiod does not support.
    UnsupportedKey = "unsupported-key",
    /// A SHA-1, MD5 or MD2 signature (Go rejects them).
    WeakSignature = "weak-signature",
    /// A negative serial number (Go's parser rejects it).
    NegativeSerial = "negative-serial",
    /// A critical extension Go does not understand.
    UnknownCriticalExtension = "unknown-critical-extension",
    /// `cert-chain.pem` does not start with `ca-cert.pem`.
    ChainStart = "chain-start",
    /// `ca-cert.pem` does not chain to a root of `root-cert.pem`.
    UntrustedChain = "untrusted-chain",
    /// A signature in the chain does not verify.
    BadSignature = "bad-signature",
    /// `ca-cert.pem` (or an issuer in the chain) is not a CA.
    NotCa = "not-ca",
    /// A CA's keyUsage lacks keyCertSign.
    NoKeyCertSign = "no-keycertsign",
    /// A CA's pathLenConstraint is exceeded.
    PathLenExceeded = "pathlen-exceeded",
    /// An extendedKeyUsage that excludes serverAuth, so Go's default verification fails.
    IncompatibleEku = "incompatible-eku",
    /// A certificate has expired.
    Expired = "expired",
    /// A certificate is not valid yet.
    NotYetValid = "not-yet-valid",
    /// A certificate of `root-cert.pem` is not a self-signed CA.
    RootNotSelfSignedCa = "root-not-self-signed-ca",
    /// A cluster's root differs from the mesh root.
    RootDiffers = "root-differs",
    /// Two clusters share an intermediate key.
    SharedKey = "shared-key",
    /// `cacerts.yaml` does not match the files.
    SecretMismatch = "secret-mismatch",
    /// `cacerts.yaml` cannot be read as a Secret.
    SecretInvalid = "secret-invalid",
    /// `ca-crl.pem` lacks a CRL from a CA of `cert-chain.pem`.
    CrlMissing = "crl-missing",
    /// A CRL is not signed by any CA of `cert-chain.pem`.
    CrlBadSignature = "crl-bad-signature",
    /// A CRL signer's keyUsage lacks cRLSign.
    CrlSignerNoCrlSign = "crl-signer-no-crlsign",
    /// A certificate of the chain is revoked by a CRL of `ca-crl.pem`.
    Revoked = "revoked",
    /// A CRL's nextUpdate has passed.
    CrlStale = "crl-stale",
    /// A certificate expires within `--warn-days`.
    ExpiresSoon = "expires-soon",
    /// The intermediate outlives its root.
    OutlivesRoot = "outlives-root",
    /// A non-root certificate has no AuthorityKeyIdentifier.
    NoAki = "no-aki",
    /// `ca-cert.pem` has no subjectAltName.
    NoSan = "no-san",
    /// `ca-cert.pem`'s L differs from the cluster directory's name.
    LocalityMismatch = "locality-mismatch",
    /// `cert-chain.pem` does not end with the root.
    ChainWithoutRoot = "chain-without-root",
    /// `cert-chain.pem` holds certificates out of issuing order, or extra ones.
    ChainOrder = "chain-order",
    /// `ca-cert.pem` holds more than one certificate.
    ExtraCertificate = "extra-certificate",
    /// A cluster's `root-cert.pem` holds a different set of roots than the mesh's.
    RootSetDiffers = "root-set-differs",
    /// A certs directory without clusters.
    NoClusters = "no-clusters",
    /// Between two rotation stages, a cluster's roots are neither a superset nor a subset of the previous ones.
    RootStep = "root-step",
    /// Between two rotation stages, a cluster's CA is not trusted by the other stage's roots.
    CrossStageTrust = "cross-stage-trust",
    /// Between two steps, a cluster's `root-cert.pem` changed while istiod runs without `ISTIO_MULTIROOT_MESH=true` (it ignores the whole update).
    RootChanged = "root-changed",
    /// Between two steps, a cluster's `ca-crl.pem` was removed or emptied (istiod keeps the CRL it holds).
    CrlRemoved = "crl-removed",
    /// Between two steps, a cluster's new `ca-crl.pem` would fail to load in istiod (it keeps the old bundle).
    CrlNotLoadable = "crl-not-loadable",
    /// The first PEM block of `ca-cert.pem` or `ca-key.pem` is not what istiod reads there.
    FirstBlock = "first-block",
    /// A PEM block has header lines (Go's certificate pool skips such blocks).
    PemHeaders = "pem-headers",
    /// An EC key with explicit curve parameters instead of a named curve.
    ExplicitCurve = "explicit-curve",
    /// Go's crypto/x509 parser refuses a certificate or CRL.
    GoParse = "go-parse",
    /// Envoy's BoringSSL parser (strict DER) refuses a certificate or CRL Go accepts.
    EnvoyParse = "envoy-parse",
    /// A policyConstraints requireExplicitPolicy that the workload certificates (no certificatePolicies) cannot meet.
    ExplicitPolicy = "explicit-policy",
    /// A name the CA has or will issue is excluded or not permitted by a name constraint.
    NameNotPermitted = "name-not-permitted",
    /// A CRL's thisUpdate is in the future.
    CrlNotYetValid = "crl-not-yet-valid",
    /// A CRL has a critical extension Envoy does not handle.
    CrlCriticalExtension = "crl-critical-extension",
    /// A CRL's issuingDistributionPoint limits its scope (reasons, certificate kinds, indirect).
    CrlPartialScope = "crl-partial-scope",
    /// The Secret's shape makes istiod read other keys than the files (kubernetes.io/tls layout).
    SecretShape = "secret-shape",
    /// A base64 value of the Secret is folded across lines.
    SecretBase64 = "secret-base64",
    /// The Secret is in another namespace than the one istiod reads.
    SecretNamespace = "secret-namespace",
    /// The Secret carries the `istio-generated` key.
    SecretIstioGenerated = "secret-istio-generated",
    /// A cluster's CA chains to a root that is not the mesh root.
    ForeignRoot = "foreign-root",
    /// The root's own key and certificate are deployed as a cluster CA.
    RootAsClusterCa = "root-as-cluster-ca",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Stable identity of the problem.
    pub code: Code,
    /// The file it is about, as the operator named it (`cluster2/ca-key.pem`).
    pub file: String,
    /// What is wrong, in words a mesh operator understands.
    pub message: String,
}

/// What a group of findings is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum GroupKind {
    /// One cluster directory.
    Cluster,
    /// The certs directory as a whole (its root, cross-cluster checks).
    Mesh,
    /// The step from one rotation stage to the next.
    Step,
}

/// The findings about one cluster, or about the mesh as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Group {
    /// Cluster name (directory name), or `mesh`.
    pub name: String,
    /// The directory, as given.
    pub path: String,
    /// Cluster or mesh.
    pub kind: GroupKind,
    /// `ok`, `warnings` or `errors`.
    pub verdict: &'static str,
    /// Every finding, errors first.
    pub findings: Vec<Finding>,
}

impl Group {
    pub(super) fn new(name: &str, path: &str, kind: GroupKind, mut findings: Vec<Finding>) -> Self {
        findings.sort_by_key(|f| f.severity);
        let verdict = if findings.iter().any(|f| f.severity == Severity::Error) {
            "errors"
        } else if findings.is_empty() {
            "ok"
        } else {
            "warnings"
        };
        Group {
            name: name.to_owned(),
            path: path.to_owned(),
            kind,
            verdict,
            findings,
        }
    }
}

/// The result of `verify`: every group and every finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// Schema identity of the JSON form: `meshca.verify/v1`.
    pub schema: &'static str,
    /// The time the checks were made for (RFC 3339).
    pub at: String,
    /// Expiry warning window in days.
    pub warn_days: u32,
    /// True when there is no error.
    pub ok: bool,
    /// Number of errors.
    pub errors: usize,
    /// Number of warnings.
    pub warnings: usize,
    /// The groups, in the order checked.
    pub groups: Vec<Group>,
}

impl Report {
    /// Builds a report from groups.
    pub fn new(groups: Vec<Group>, options: &VerifyOptions) -> Self {
        let count = |s| {
            groups
                .iter()
                .flat_map(|g| &g.findings)
                .filter(|f| f.severity == s)
                .count()
        };
        let errors = count(Severity::Error);
        let warnings = count(Severity::Warning);
        Report {
            schema: "meshca.verify/v1",
            at: rfc3339(options.at),
            warn_days: options.warn_days,
            ok: errors == 0,
            errors,
            warnings,
            groups,
        }
    }

    /// Every finding of every group.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.groups.iter().flat_map(|g| &g.findings)
    }
}

pub(super) fn join(label: &str, name: &str) -> String {
    if label.is_empty() {
        name.to_owned()
    } else {
        format!("{label}/{name}")
    }
}

pub(super) fn err(code: Code, file: &str, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        code,
        file: file.to_owned(),
        message: one_line(message),
    }
}

pub(super) fn warn(code: Code, file: &str, message: String) -> Finding {
    Finding {
        severity: Severity::Warning,
        code,
        file: file.to_owned(),
        message: one_line(message),
    }
}

/// A finding is one line of a report: a line break that a certificate's
/// subject (or any other text from input) carries into the message is
/// written as `\n` / `\r`, so that it cannot forge a line of its own
/// (`c2 (certs/c2): ok`).
fn one_line(message: String) -> String {
    if !message.contains(['\n', '\r']) {
        return message;
    }
    message.replace('\n', "\\n").replace('\r', "\\r")
}

pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

pub(super) fn day(t: OffsetDateTime) -> String {
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}
