//! Verification of cluster bundles and whole certs directories, the way
//! istiod (Go's crypto/x509) will judge them, and more.
//!
//! Verification never stops at the first problem: it returns every
//! [`Finding`] (severity, file, stable code, message), grouped per cluster
//! in a [`Report`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::bundle::{CA_CERT, CA_CRL, CA_KEY, CERT_CHAIN, ROOT_CERT, ROOT_KEY, SECRET_YAML};
use crate::error::{Error, Result};
use crate::key::PrivateKey;
use crate::pemutil;
use crate::secret::SecretData;

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
    fn new(name: &str, path: &str, kind: GroupKind, mut findings: Vec<Finding>) -> Self {
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

/// When and how strictly to check.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// The time validity is checked at (the CLI passes now; tests pin it).
    pub at: OffsetDateTime,
    /// Warn about certificates expiring within this many days (default 30).
    pub warn_days: u32,
}

impl VerifyOptions {
    /// Options checking at `at`, warning 30 days ahead.
    pub fn at(at: OffsetDateTime) -> Self {
        VerifyOptions { at, warn_days: 30 }
    }
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

fn join(label: &str, name: &str) -> String {
    if label.is_empty() {
        name.to_owned()
    } else {
        format!("{label}/{name}")
    }
}

fn err(code: Code, file: &str, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        code,
        file: file.to_owned(),
        message,
    }
}

fn warn(code: Code, file: &str, message: String) -> Finding {
    Finding {
        severity: Severity::Warning,
        code,
        file: file.to_owned(),
        message,
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn day(t: OffsetDateTime) -> String {
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// A certificate from a file, with where it came from.
struct Loaded {
    der: Vec<u8>,
    /// `cluster1/cert-chain.pem` or `cluster1/cert-chain.pem (certificate 2)`.
    name: String,
}

/// Checks PEM hygiene that Envoy and istiod depend on.
fn check_pem_format(file: &str, bytes: &[u8], out: &mut Vec<Finding>) {
    if !bytes.ends_with(b"\n") {
        out.push(err(
            Code::PemFormat,
            file,
            format!("{file} does not end with a newline (istiod appends it to other PEM; Envoy then fails)"),
        ));
    }
    let text = String::from_utf8_lossy(bytes);
    if text.contains("-----END CERTIFICATE----------BEGIN") || text.contains("----------BEGIN") {
        out.push(err(
            Code::PemFormat,
            file,
            format!("{file} has two PEM blocks glued on one line (\"-----END ...----------BEGIN\"); Envoy rejects that"),
        ));
    }
}

/// Loads the certificates of a file, reporting every problem.
fn load_certs(file: &str, bytes: Option<&[u8]>, out: &mut Vec<Finding>) -> Option<Vec<Loaded>> {
    let Some(bytes) = bytes else {
        out.push(err(Code::MissingFile, file, format!("{file} is missing")));
        return None;
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        out.push(err(Code::EmptyFile, file, format!("{file} is empty")));
        return None;
    }
    let blocks = match pemutil::parse_blocks(file, bytes) {
        Ok(b) => b,
        Err(Error::TooLarge { size, limit, .. }) => {
            out.push(err(
                Code::TooLarge,
                file,
                format!("{file} is {size} bytes, over the {limit}-byte limit"),
            ));
            return None;
        }
        Err(Error::Pem { problem, .. }) => {
            out.push(err(Code::NotPem, file, format!("{file} is {problem}")));
            return None;
        }
        Err(e) => {
            out.push(err(Code::NotPem, file, e.to_string()));
            return None;
        }
    };
    check_pem_format(file, bytes, out);
    let total = blocks.iter().filter(|b| b.tag() == "CERTIFICATE").count();
    let mut certs = Vec::new();
    let mut index = 0;
    for block in blocks.iter() {
        if block.tag() != "CERTIFICATE" {
            if block.tag().contains("PRIVATE KEY") {
                out.push(err(
                    Code::WrongContent,
                    file,
                    format!(
                        "{file} holds a private key ({}); it should hold only certificates",
                        block.tag()
                    ),
                ));
            }
            continue;
        }
        index += 1;
        let name = if total > 1 {
            format!("{file} (certificate {index})")
        } else {
            file.to_owned()
        };
        match x509_parser::parse_x509_certificate(block.contents()) {
            Ok(([], _)) => certs.push(Loaded {
                der: block.contents().to_vec(),
                name,
            }),
            Ok(_) => out.push(err(
                Code::BadCertificate,
                file,
                format!("{name} has trailing bytes after the certificate"),
            )),
            Err(e) => out.push(err(
                Code::BadCertificate,
                file,
                format!("{name} is not a valid X.509 certificate: {e}"),
            )),
        }
    }
    if total == 0 {
        let tags: Vec<&str> = blocks.iter().map(pem::Pem::tag).collect();
        out.push(err(
            Code::WrongContent,
            file,
            format!("{file} holds no certificate (found: {})", tags.join(", ")),
        ));
        return None;
    }
    if certs.is_empty() {
        return None;
    }
    Some(certs)
}

fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c)
}

fn subject_of(c: &X509Certificate<'_>) -> String {
    c.subject().to_string()
}

const WEAK_SIGNATURES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.2", "MD2 with RSA"),
    ("1.2.840.113549.1.1.3", "MD4 with RSA"),
    ("1.2.840.113549.1.1.4", "MD5 with RSA"),
    ("1.2.840.113549.1.1.5", "SHA-1 with RSA"),
    ("1.3.14.3.2.29", "SHA-1 with RSA"),
    ("1.3.14.3.2.25", "MD5 with RSA"),
    ("1.2.840.10040.4.3", "DSA with SHA-1"),
    ("1.2.840.10045.4.1", "ECDSA with SHA-1"),
];

fn weak_signature(c: &X509Certificate<'_>) -> Option<&'static str> {
    let oid = c.signature_algorithm.algorithm.to_id_string();
    WEAK_SIGNATURES
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, name)| *name)
}

/// Key strength as istiod sees it: RSA 2048+, ECDSA P-256/P-384.
fn check_key_strength(
    name: &str,
    file: &str,
    spki: &SubjectPublicKeyInfo<'_>,
    out: &mut Vec<Finding>,
) {
    use x509_parser::oid_registry::{
        OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    };
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) if rsa.key_size() >= 2048 => {}
            Ok(PublicKey::RSA(rsa)) => out.push(err(
                Code::WeakKey,
                file,
                format!(
                    "{name} has a {}-bit RSA key; at least 2048 bits are needed",
                    rsa.key_size()
                ),
            )),
            _ => out.push(err(
                Code::UnsupportedKey,
                file,
                format!("{name} has an RSA key that cannot be parsed"),
            )),
        }
    } else if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 || c == OID_NIST_EC_P384 => {}
            Some(c) => out.push(err(
                Code::UnsupportedKey,
                file,
                format!("{name} has an ECDSA key on curve {c}; istiod supports P-256 and P-384"),
            )),
            None => out.push(err(
                Code::UnsupportedKey,
                file,
                format!("{name} has an ECDSA key without a named curve"),
            )),
        }
    } else {
        out.push(err(
            Code::UnsupportedKey,
            file,
            format!(
                "{name} has a key of algorithm {alg}; istiod supports RSA and ECDSA P-256/P-384"
            ),
        ));
    }
}

/// Checks every certificate on its own: parse-level rules Go enforces,
/// weak signatures and keys.
fn check_cert_alone(l: &Loaded, file: &str, is_root: bool, out: &mut Vec<Finding>) {
    let Some(c) = parse(&l.der) else { return };
    if c.raw_serial().first().is_some_and(|b| b & 0x80 != 0) {
        out.push(err(
            Code::NegativeSerial,
            file,
            format!(
                "{} has a negative serial number; Go's crypto/x509 refuses to parse it",
                l.name
            ),
        ));
    }
    if !is_root {
        if let Some(alg) = weak_signature(&c) {
            out.push(err(
                Code::WeakSignature,
                file,
                format!(
                    "{} is signed with {alg}; Go rejects such signatures",
                    l.name
                ),
            ));
        }
    } else if let Some(alg) = weak_signature(&c) {
        out.push(warn(
            Code::WeakSignature,
            file,
            format!("{} (a root) is self-signed with {alg}; Go ignores a root's own signature, but replace it", l.name),
        ));
    }
    check_key_strength(&l.name, file, c.public_key(), out);
    for ext in c.extensions() {
        if ext.critical
            && matches!(
                ext.parsed_extension(),
                ParsedExtension::UnsupportedExtension { .. }
            )
        {
            out.push(err(
                Code::UnknownCriticalExtension,
                file,
                format!(
                    "{} has a critical extension {} that Go does not understand",
                    l.name, ext.oid
                ),
            ));
        }
    }
}

fn validity_findings(
    l: &Loaded,
    file: &str,
    opts: &VerifyOptions,
    severity: Severity,
    out: &mut Vec<Finding>,
) {
    let Some(c) = parse(&l.der) else { return };
    let nb = c.validity().not_before.to_datetime();
    let na = c.validity().not_after.to_datetime();
    let mk = |code, message| Finding {
        severity,
        code,
        file: file.to_owned(),
        message,
    };
    if opts.at > na {
        out.push(mk(
            Code::Expired,
            format!("{} expired on {}", l.name, day(na)),
        ));
    } else if opts.at < nb {
        out.push(mk(
            Code::NotYetValid,
            format!("{} is not valid before {}", l.name, rfc3339(nb)),
        ));
    } else if na - opts.at < Duration::days(i64::from(opts.warn_days)) {
        let left = (na - opts.at).whole_days();
        out.push(warn(
            Code::ExpiresSoon,
            file,
            format!("{} expires on {} ({left} days left)", l.name, day(na)),
        ));
    }
}

/// Whether a certificate's own key verifies its signature. Every cluster of
/// a mesh carries the same root, so results are remembered (by the
/// certificate's DER) for the life of the process: the function is pure.
fn self_signature_ok(der: &[u8], c: &X509Certificate<'_>) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static MEMO: OnceLock<Mutex<HashMap<Vec<u8>, bool>>> = OnceLock::new();
    let memo = MEMO.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(ok) = memo.lock().ok().and_then(|m| m.get(der).copied()) {
        return ok;
    }
    let ok = c.verify_signature(None).is_ok();
    if let Ok(mut m) = memo.lock() {
        if m.len() < 1024 {
            m.insert(der.to_vec(), ok);
        }
    }
    ok
}

/// Whether `child` names `parent` as issuer and `parent`'s key signed it.
fn issued_by(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> (bool, bool) {
    let names = child.issuer().as_raw() == parent.subject().as_raw();
    let sig = names && child.verify_signature(Some(parent.public_key())).is_ok();
    (names, sig)
}

/// Builds the path from `ca` through `intermediates` to one of `roots`, as
/// Go does (raw name match + signature), reporting why it fails.
fn build_path<'a>(
    ca: &'a Loaded,
    intermediates: &'a [Loaded],
    roots: &'a [Loaded],
    ca_file: &str,
    root_file: &str,
    chain_file: &str,
    out: &mut Vec<Finding>,
) -> Option<(Vec<&'a Loaded>, bool)> {
    let mut path: Vec<&Loaded> = vec![ca];
    if roots.iter().any(|r| r.der == ca.der) {
        return Some((path, true));
    }
    for _ in 0..8 {
        let current = *path.last()?;
        let cur = parse(&current.der)?;
        let mut name_match = false;
        let mut next: Option<(&Loaded, bool)> = None;
        for (cand, is_root) in roots
            .iter()
            .map(|r| (r, true))
            .chain(intermediates.iter().map(|i| (i, false)))
        {
            if path.iter().any(|p| p.der == cand.der) {
                continue;
            }
            let Some(pc) = parse(&cand.der) else { continue };
            let (names, sig) = issued_by(&cur, &pc);
            name_match |= names;
            if sig {
                next = Some((cand, is_root));
                break;
            }
        }
        match next {
            Some((cand, true)) => {
                path.push(cand);
                return Some((path, true));
            }
            Some((cand, false)) => path.push(cand),
            None => {
                if name_match {
                    out.push(err(
                        Code::BadSignature,
                        ca_file,
                        format!(
                            "the signature on {} does not verify with the key of its issuer ({}): the chain to {root_file} is broken",
                            current.name,
                            cur.issuer()
                        ),
                    ));
                } else if cur.subject().as_raw() == cur.issuer().as_raw() {
                    out.push(err(
                        Code::UntrustedChain,
                        ca_file,
                        format!(
                            "{ca_file} does not chain to {root_file}: its chain ends at {} ({}), a root that {root_file} does not hold",
                            current.name,
                            cur.subject()
                        ),
                    ));
                } else {
                    out.push(err(
                        Code::UntrustedChain,
                        ca_file,
                        format!(
                            "{ca_file} does not chain to {root_file} through {chain_file}: no certificate there is the issuer of {} ({})",
                            current.name,
                            cur.issuer()
                        ),
                    ));
                }
                return Some((path, false));
            }
        }
    }
    out.push(err(
        Code::UntrustedChain,
        ca_file,
        format!("{ca_file} does not reach a root of {root_file} within 8 certificates"),
    ));
    Some((path, false))
}

/// Go's extended key usage rule: with no usages requested, verification
/// asks for serverAuth, and every certificate with an EKU must allow it.
fn eku_allows_server_auth(c: &X509Certificate<'_>) -> bool {
    match c.extended_key_usage() {
        Ok(Some(eku)) => eku.value.any || eku.value.server_auth,
        _ => true,
    }
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
    let mut out = Vec::new();
    let ca_file = join(label, CA_CERT);
    let key_file = join(label, CA_KEY);
    let chain_file = join(label, CERT_CHAIN);
    let root_file = join(label, ROOT_CERT);

    let ca_certs = load_certs(&ca_file, files.ca_cert.as_deref(), &mut out);
    let chain = load_certs(&chain_file, files.cert_chain.as_deref(), &mut out);
    let roots = load_certs(&root_file, files.root_cert.as_deref(), &mut out);

    // root-cert.pem: self-signed CAs only.
    if let Some(roots) = &roots {
        for r in roots {
            check_cert_alone(r, &root_file, true, &mut out);
            if let Some(c) = parse(&r.der) {
                let self_signed =
                    c.subject().as_raw() == c.issuer().as_raw() && self_signature_ok(&r.der, &c);
                let ca = matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
                if !self_signed || !ca {
                    out.push(err(
                        Code::RootNotSelfSignedCa,
                        &root_file,
                        format!(
                            "{} ({}) is not a self-signed CA certificate{}",
                            r.name,
                            subject_of(&c),
                            if !self_signed {
                                ": its issuer is someone else"
                            } else {
                                ": CA:TRUE is missing"
                            }
                        ),
                    ));
                }
            }
        }
    }

    let ca = ca_certs.as_ref().and_then(|v| v.first());
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

    // ca-key.pem
    let key = match files.ca_key.as_deref() {
        None => {
            out.push(err(
                Code::MissingFile,
                &key_file,
                format!("{key_file} is missing"),
            ));
            None
        }
        Some(b) if b.iter().all(u8::is_ascii_whitespace) => {
            out.push(err(
                Code::EmptyFile,
                &key_file,
                format!("{key_file} is empty"),
            ));
            None
        }
        Some(b) => match PrivateKey::from_pem(&key_file, b) {
            Ok(k) => {
                check_pem_format(&key_file, b, &mut out);
                Some(k)
            }
            Err(e) => {
                let (code, msg) = match &e {
                    Error::EncryptedKey { .. } => (Code::KeyEncrypted, format!("{key_file} is encrypted; istiod needs an unencrypted key")),
                    Error::UnsupportedKey { found, .. } => (Code::UnsupportedKey, format!("{key_file} is a {found} key; istiod supports RSA 2048+ and ECDSA P-256/P-384")),
                    Error::Pem { problem, .. } if problem.starts_with("no private key") => {
                        (Code::WrongContent, format!("{key_file} holds {problem}"))
                    }
                    Error::Pem { problem, .. } => (Code::NotPem, format!("{key_file} is {problem}")),
                    Error::TooLarge { .. } => (Code::TooLarge, e.to_string()),
                    _ => (Code::KeyUnparsable, format!("{key_file} cannot be used: {e}")),
                };
                out.push(err(code, &key_file, msg));
                None
            }
        },
    };
    if let (Some(k), Some(ca)) = (&key, ca) {
        if let Some(c) = parse(&ca.der) {
            if c.public_key().raw != k.public_key_der().as_slice() {
                out.push(err(
                    Code::KeyMismatch,
                    &key_file,
                    format!("{key_file} does not match {ca_file}"),
                ));
            }
        }
    }

    let Some(ca) = ca else {
        return out;
    };
    check_cert_alone(ca, &ca_file, false, &mut out);
    let Some(ca_parsed) = parse(&ca.der) else {
        return out;
    };

    // ca-cert.pem must itself be a CA that may sign workload certificates.
    match ca_parsed.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {}
        _ => out.push(err(
            Code::NotCa,
            &ca_file,
            format!("{ca_file} is not a CA certificate (basicConstraints CA:TRUE missing): istiod cannot sign workloads with it"),
        )),
    }
    if let Ok(Some(ku)) = ca_parsed.key_usage() {
        if !ku.value.key_cert_sign() {
            out.push(err(
                Code::NoKeyCertSign,
                &ca_file,
                format!("{ca_file}'s keyUsage lacks keyCertSign: the workload certificates it signs will not verify"),
            ));
        }
    }
    if ca_parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .is_none()
    {
        out.push(warn(
            Code::NoSan,
            &ca_file,
            format!("{ca_file} has no subjectAltName (the recipe puts DNS:istiod.istio-system.svc there)"),
        ));
    }
    if let Some(dir) = dir_name {
        let locality: Vec<String> = ca_parsed
            .subject()
            .iter_locality()
            .filter_map(|a| a.as_str().ok().map(str::to_owned))
            .collect();
        if let Some(l) = locality.first() {
            if l != dir {
                out.push(warn(
                    Code::LocalityMismatch,
                    &ca_file,
                    format!("{ca_file} says L={l} but sits in directory {dir}: is it the right cluster's certificate?"),
                ));
            }
        }
    }

    // cert-chain.pem starts with ca-cert.pem.
    if let Some(chain) = &chain {
        for c in chain.iter().skip(1) {
            check_cert_alone(
                c,
                &chain_file,
                roots
                    .as_ref()
                    .is_some_and(|r| r.iter().any(|x| x.der == c.der)),
                &mut out,
            );
        }
        if chain.first().map(|c| &c.der) != Some(&ca.der) {
            out.push(err(
                Code::ChainStart,
                &chain_file,
                format!("{chain_file} does not start with {ca_file}; istiod serves it after every workload certificate"),
            ));
        }
    }

    // The path istiod's crypto/x509 will build.
    let empty = Vec::new();
    let intermediates: &[Loaded] = chain.as_ref().map_or(&empty, |c| c.get(1..).unwrap_or(&[]));
    let (Some(roots), Some(chain)) = (&roots, &chain) else {
        return out;
    };
    let Some((path, trusted)) = build_path(
        ca,
        intermediates,
        roots,
        &ca_file,
        &root_file,
        &chain_file,
        &mut out,
    ) else {
        return out;
    };

    // Rules along the path: CA flag, keyCertSign, pathlen, EKU, validity.
    for (k, l) in path.iter().enumerate() {
        let file = if k == 0 {
            ca_file.as_str()
        } else if roots.iter().any(|r| r.der == l.der) {
            root_file.as_str()
        } else {
            chain_file.as_str()
        };
        validity_findings(l, file, opts, Severity::Error, &mut out);
        let Some(c) = parse(&l.der) else { continue };
        if !eku_allows_server_auth(&c) {
            out.push(err(
                Code::IncompatibleEku,
                file,
                format!("{} has an extendedKeyUsage without serverAuth; Go's chain verification (as istiod runs it) fails", l.name),
            ));
        }
        if k == 0 {
            continue;
        }
        if k == 1 || trusted || k + 1 < path.len() {
            match c.basic_constraints() {
                Ok(Some(bc)) if bc.value.ca => {
                    if let Some(max) = bc.value.path_len_constraint {
                        // Intermediate CAs below this one, toward the workload leaf.
                        let below = u32::try_from(k).unwrap_or(u32::MAX);
                        if below > max {
                            out.push(err(
                                Code::PathLenExceeded,
                                file,
                                format!(
                                    "{} allows {max} CA(s) below it (pathlen:{max}) but has {below} below it on the way to workloads",
                                    l.name
                                ),
                            ));
                        }
                    }
                }
                _ => out.push(err(
                    Code::NotCa,
                    file,
                    format!(
                        "{} issues {} but is not a CA (basicConstraints CA:TRUE missing)",
                        l.name,
                        path.get(k - 1).map_or("", |p| p.name.as_str())
                    ),
                )),
            }
            if let Ok(Some(ku)) = c.key_usage() {
                if !ku.value.key_cert_sign() {
                    out.push(err(
                        Code::NoKeyCertSign,
                        file,
                        format!(
                            "{}'s keyUsage lacks keyCertSign, so it may not issue certificates",
                            l.name
                        ),
                    ));
                }
            }
        }
        let self_issued = c.subject().as_raw() == c.issuer().as_raw();
        if (k + 1 < path.len() || !trusted) && !self_issued {
            if let Ok(None) | Err(_) = c.get_extension_unique(
                &x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
            ) {
                out.push(warn(
                    Code::NoAki,
                    file,
                    format!("{} has no AuthorityKeyIdentifier", l.name),
                ));
            }
        }
    }
    if ca_parsed
        .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
        .ok()
        .flatten()
        .is_none()
        && !(path.len() == 1 && trusted)
    {
        out.push(warn(
            Code::NoAki,
            &ca_file,
            format!("{ca_file} has no AuthorityKeyIdentifier"),
        ));
    }
    // Roots not on the path: expired ones are only a warning.
    for r in roots.iter() {
        if !path.iter().any(|p| p.der == r.der) {
            validity_findings(r, &root_file, opts, Severity::Warning, &mut out);
        }
    }
    if trusted {
        if let (Some(root), Some(ca_c)) = (path.last().and_then(|r| parse(&r.der)), parse(&ca.der))
        {
            let ra = root.validity().not_after.to_datetime();
            let ca_a = ca_c.validity().not_after.to_datetime();
            if ca_a > ra && path.len() > 1 {
                out.push(warn(
                    Code::OutlivesRoot,
                    &ca_file,
                    format!("{ca_file} (until {}) outlives its root (until {}): it stops working when the root expires", day(ca_a), day(ra)),
                ));
            }
        }
        // cert-chain.pem should be the path, root included.
        let chain_ders: Vec<&Vec<u8>> = chain.iter().map(|c| &c.der).collect();
        let path_ders: Vec<&Vec<u8>> = path.iter().map(|c| &c.der).collect();
        if chain_ders != path_ders {
            let without_root = path_ders
                .get(..path_ders.len().saturating_sub(1))
                .unwrap_or(&[]);
            if chain_ders == without_root {
                out.push(warn(
                    Code::ChainWithoutRoot,
                    &chain_file,
                    format!("{chain_file} does not end with the root; istiod works, but workloads' chains will lack it"),
                ));
            } else if chain_ders.first() == path_ders.first() {
                out.push(warn(
                    Code::ChainOrder,
                    &chain_file,
                    format!("{chain_file} is not the issuing order {ca_file} → … → root, or holds extra certificates"),
                ));
            }
        }
    }

    if let Some(crl) = files.ca_crl.as_deref() {
        check_crls(label, chain, crl, opts, &mut out);
    }
    // A key istiod cannot use is reported once, on the certificate; the
    // crypto library's refusal to load the same key adds nothing.
    if out
        .iter()
        .any(|f| f.file == ca_file && matches!(f.code, Code::WeakKey | Code::UnsupportedKey))
    {
        out.retain(|f| {
            !(f.file == key_file && matches!(f.code, Code::KeyUnparsable | Code::UnsupportedKey))
        });
    }
    if let Some(yaml) = files.cacerts_yaml.as_deref() {
        check_secret(label, files, yaml, &mut out);
    }
    out
}

/// istiod's CRL rules: every CA of `cert-chain.pem` has a CRL it signed;
/// a revoked chain certificate is an error.
fn check_crls(
    label: &str,
    chain: &[Loaded],
    bytes: &[u8],
    opts: &VerifyOptions,
    out: &mut Vec<Finding>,
) {
    let file = join(label, CA_CRL);
    let blocks = match pemutil::parse_blocks(&file, bytes) {
        Ok(b) => b,
        Err(e) => {
            out.push(err(Code::NotPem, &file, e.to_string()));
            return;
        }
    };
    check_pem_format(&file, bytes, out);
    let ders: Vec<Vec<u8>> = blocks
        .iter()
        .filter(|b| b.tag() == "X509 CRL")
        .map(|b| b.contents().to_vec())
        .collect();
    if ders.is_empty() {
        out.push(err(
            Code::WrongContent,
            &file,
            format!("{file} holds no \"X509 CRL\" block"),
        ));
        return;
    }
    let mut crls: Vec<CertificateRevocationList<'_>> = Vec::new();
    for (i, der) in ders.iter().enumerate() {
        match CertificateRevocationList::from_der(der) {
            Ok((_, crl)) => crls.push(crl),
            Err(e) => out.push(err(
                Code::WrongContent,
                &file,
                format!("{file} (CRL {}) does not parse: {e}", i + 1),
            )),
        }
    }
    // The chain parsed once: its CAs (possible CRL signers), and every
    // certificate by (issuer, serial), one lookup per revoked entry.
    let parsed_chain: Vec<(&Loaded, X509Certificate<'_>)> = chain
        .iter()
        .filter_map(|l| parse(&l.der).map(|c| (l, c)))
        .collect();
    let cas: Vec<&(&Loaded, X509Certificate<'_>)> =
        parsed_chain.iter().filter(|(_, c)| c.is_ca()).collect();
    let mut covered = vec![false; cas.len()];
    let by_issuer_serial: std::collections::HashMap<(&[u8], &[u8]), &Loaded> = parsed_chain
        .iter()
        .map(|(l, c)| ((c.issuer().as_raw(), c.raw_serial()), *l))
        .collect();
    for (i, crl) in crls.iter().enumerate() {
        let signer = cas.iter().position(|(_, c)| {
            c.subject().as_raw() == crl.issuer().as_raw()
                && crl.verify_signature(c.public_key()).is_ok()
        });
        let Some(s) = signer else {
            out.push(err(
                Code::CrlBadSignature,
                &file,
                format!(
                    "{file} (CRL {}, issuer {}) is not signed by any CA of {}",
                    i + 1,
                    crl.issuer(),
                    join(label, CERT_CHAIN)
                ),
            ));
            continue;
        };
        if let Some(flag) = covered.get_mut(s) {
            *flag = true;
        }
        let Some((signer_l, signer_c)) = cas.get(s) else {
            continue;
        };
        if let Ok(Some(ku)) = signer_c.key_usage() {
            if !ku.value.crl_sign() {
                out.push(err(
                    Code::CrlSignerNoCrlSign,
                    &file,
                    format!(
                        "{} signs a CRL but its keyUsage lacks cRLSign; Go refuses the CRL",
                        signer_l.name
                    ),
                ));
            }
        }
        if let Some(next) = crl.next_update() {
            if next.to_datetime() < opts.at {
                out.push(warn(
                    Code::CrlStale,
                    &file,
                    format!(
                        "{file}: the CRL of {} was due for renewal on {}",
                        crl.issuer(),
                        day(next.to_datetime())
                    ),
                ));
            }
        }
        for revoked in crl.iter_revoked_certificates() {
            if let Some(l) = by_issuer_serial.get(&(crl.issuer().as_raw(), revoked.raw_serial())) {
                // The first certificate of the chain is ca-cert.pem: say so.
                let name = if chain.first().is_some_and(|f| f.der == l.der) {
                    join(label, CA_CERT)
                } else {
                    l.name.clone()
                };
                out.push(err(
                    Code::Revoked,
                    &file,
                    format!(
                        "{name} is revoked by the CRL of {}: replace this cluster's intermediate",
                        crl.issuer()
                    ),
                ));
            }
        }
    }
    for ((l, _), ok) in cas.iter().zip(&covered) {
        if !ok {
            out.push(err(
                Code::CrlMissing,
                &file,
                format!(
                    "{file} has no CRL signed by {} ({}); istiod requires one per CA of the chain",
                    l.name,
                    parse(&l.der)
                        .map(|c| c.subject().to_string())
                        .unwrap_or_default()
                ),
            ));
        }
    }
}

/// `cacerts.yaml` must carry exactly the bundle's files.
fn check_secret(label: &str, files: &BundleFiles, yaml: &[u8], out: &mut Vec<Finding>) {
    let file = join(label, SECRET_YAML);
    let secret = match SecretData::from_yaml(&file, yaml) {
        Ok(s) => s,
        Err(e) => {
            out.push(err(Code::SecretInvalid, &file, e.to_string()));
            return;
        }
    };
    let tls = secret.type_.as_deref() == Some("kubernetes.io/tls");
    let mut expected: Vec<(&str, &str, Option<&[u8]>)> = if tls {
        vec![
            ("tls.crt", CA_CERT, files.ca_cert.as_deref()),
            (
                "tls.key",
                CA_KEY,
                files.ca_key.as_deref().map(|v| v.as_slice()),
            ),
            ("ca.crt", ROOT_CERT, files.root_cert.as_deref()),
        ]
    } else {
        vec![
            (CA_CERT, CA_CERT, files.ca_cert.as_deref()),
            (
                CA_KEY,
                CA_KEY,
                files.ca_key.as_deref().map(|v| v.as_slice()),
            ),
            (CERT_CHAIN, CERT_CHAIN, files.cert_chain.as_deref()),
            (ROOT_CERT, ROOT_CERT, files.root_cert.as_deref()),
        ]
    };
    if files.ca_crl.is_some() {
        expected.push((CA_CRL, CA_CRL, files.ca_crl.as_deref()));
    }
    for (key, fname, contents) in expected {
        match (secret.data.get(key), contents) {
            (None, _) => out.push(err(
                Code::SecretMismatch,
                &file,
                format!("{file} has no data.{key}; istiod needs it"),
            )),
            (Some(v), Some(c)) if v.as_slice() != c => out.push(err(
                Code::SecretMismatch,
                &file,
                format!(
                    "{file}: data.{key} differs from {}; regenerate it with `meshca secret`",
                    join(label, fname)
                ),
            )),
            _ => {}
        }
    }
    if secret.name != "cacerts" {
        out.push(warn(
            Code::SecretInvalid,
            &file,
            format!(
                "{file} names the Secret {:?}; istiod reads only \"cacerts\"",
                secret.name
            ),
        ));
    }
}

fn label_for(path: &Path) -> String {
    let s = path.display().to_string();
    let s = s
        .strip_prefix("./")
        .unwrap_or(&s)
        .trim_end_matches('/')
        .to_owned();
    if s == "." {
        String::new()
    } else {
        s
    }
}

fn is_cluster_dir(dir: &Path) -> bool {
    [CA_CERT, CA_KEY, CERT_CHAIN, SECRET_YAML]
        .iter()
        .any(|n| dir.join(n).exists())
}

#[cfg(unix)]
fn check_key_mode(path: &Path, file: &str, out: &mut Vec<Finding>) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(warn(
                Code::KeyPermissions,
                file,
                format!("{file} is readable by others (mode {mode:o}); run `chmod 600 {file}`"),
            ));
        }
    }
}

#[cfg(not(unix))]
fn check_key_mode(_: &Path, _: &str, _: &mut Vec<Finding>) {}

/// The cluster directories directly under `dir`, sorted.
fn cluster_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir() && is_cluster_dir(p))
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Verifies a cluster directory.
pub fn verify_cluster_dir(dir: &Path, opts: &VerifyOptions) -> Group {
    check_cluster_dir(dir, opts)
}

/// Verifies a cluster directory: reads it, then runs [`verify_bundle`].
fn check_cluster_dir(dir: &Path, opts: &VerifyOptions) -> Group {
    let label = label_for(dir);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| label.clone());
    let (files, rf) = read_bundle_dir(dir, &label);
    let findings = verify_bundle(&label, Some(&name), &files, opts);
    rf.merge_into(Group::new(&name, &label, GroupKind::Cluster, findings))
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

/// What reading a directory found that the bytes cannot show: files that
/// could not be read, too large, or with loose permissions.
#[derive(Default)]
struct ReadFindings {
    findings: Vec<Finding>,
    /// Files (as labelled) that exist but could not be read: their
    /// `missing-file` finding from the byte checks is dropped.
    unreadable: Vec<String>,
}

impl ReadFindings {
    /// Reads one file, `None` when absent; other failures become findings.
    fn read(&mut self, dir: &Path, label: &str, name: &str) -> Option<Vec<u8>> {
        let path = dir.join(name);
        if let Err(e) = std::fs::symlink_metadata(&path) {
            if e.kind() == std::io::ErrorKind::NotFound {
                return None;
            }
        }
        let file = join(label, name);
        match crate::files::read_limited(&path) {
            Ok(b) => Some(b),
            Err(Error::TooLarge { size, limit, .. }) => {
                self.findings.push(err(
                    Code::TooLarge,
                    &file,
                    format!("{file} is {size} bytes, over the {limit}-byte limit"),
                ));
                self.unreadable.push(file);
                None
            }
            Err(e) => {
                self.findings.push(err(
                    Code::NotPem,
                    &file,
                    format!("{file} cannot be read: {e}"),
                ));
                self.unreadable.push(file);
                None
            }
        }
    }

    /// Adds these findings to a group computed from the bytes.
    fn merge_into(self, group: Group) -> Group {
        let mut findings: Vec<Finding> = group
            .findings
            .into_iter()
            .filter(|f| !(f.code == Code::MissingFile && self.unreadable.contains(&f.file)))
            .collect();
        findings.extend(self.findings);
        Group::new(&group.name, &group.path, group.kind, findings)
    }
}

/// Reads a cluster directory's files, with what the file system says.
fn read_bundle_dir(dir: &Path, label: &str) -> (BundleFiles, ReadFindings) {
    let mut rf = ReadFindings::default();
    let files = BundleFiles {
        ca_cert: rf.read(dir, label, CA_CERT),
        ca_key: rf.read(dir, label, CA_KEY).map(zeroize::Zeroizing::new),
        cert_chain: rf.read(dir, label, CERT_CHAIN),
        root_cert: rf.read(dir, label, ROOT_CERT),
        ca_crl: rf.read(dir, label, CA_CRL),
        cacerts_yaml: rf
            .read(dir, label, SECRET_YAML)
            .map(zeroize::Zeroizing::new),
    };
    for key in [CA_KEY, SECRET_YAML] {
        check_key_mode(&dir.join(key), &join(label, key), &mut rf.findings);
    }
    (files, rf)
}

/// Reads a certs directory: its root files and every cluster directory.
/// Returns the files, the mesh-level read findings and each cluster's.
fn read_mesh_dir(
    dir: &Path,
    label: &str,
) -> Result<(MeshFiles, ReadFindings, BTreeMap<String, ReadFindings>)> {
    let mut rf = ReadFindings::default();
    let root_cert = rf.read(dir, label, ROOT_CERT);
    let root_key = rf.read(dir, label, ROOT_KEY).map(zeroize::Zeroizing::new);
    if root_key.is_some() {
        check_key_mode(
            &dir.join(ROOT_KEY),
            &join(label, ROOT_KEY),
            &mut rf.findings,
        );
    }
    let root_crl = rf.read(dir, label, crate::crl::ROOT_CRL);
    let mut clusters = BTreeMap::new();
    let mut cluster_reads = BTreeMap::new();
    for cdir in cluster_dirs(dir)? {
        let Some(name) = cdir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let (files, crf) = read_bundle_dir(&cdir, &join(label, &name));
        clusters.insert(name.clone(), files);
        cluster_reads.insert(name, crf);
    }
    Ok((
        MeshFiles {
            root_cert,
            root_key,
            root_crl,
            clusters,
        },
        rf,
        cluster_reads,
    ))
}

/// Verifies a certs directory: its root, every cluster under it, and the
/// mesh as a whole (one root, no shared intermediate keys). Reads the
/// directory, then runs [`verify_mesh`]; what only the file system shows
/// (unreadable files, key file modes) is added to the groups.
pub fn verify_certs_dir(dir: &Path, opts: &VerifyOptions) -> Result<Vec<Group>> {
    let label = label_for(dir);
    let (mesh, mesh_reads, mut cluster_reads) = read_mesh_dir(dir, &label)?;
    let mut groups = verify_mesh(&label, &mesh, opts).into_iter();
    let mut all = Vec::new();
    if let Some(first) = groups.next() {
        all.push(mesh_reads.merge_into(first));
    }
    for group in groups {
        match cluster_reads.remove(&group.name) {
            Some(rf) => all.push(rf.merge_into(group)),
            None => all.push(group),
        }
    }
    Ok(all)
}

/// Verifies a mesh held in memory. `label` is the path prefix used in
/// finding file names (`"certs"` gives `certs/cluster1/ca-cert.pem`, `""`
/// gives `cluster1/ca-cert.pem`). Returns the `mesh` group followed by one
/// group per cluster, exactly as [`verify_certs_dir`] does.
pub fn verify_mesh(label: &str, mesh_files: &MeshFiles, opts: &VerifyOptions) -> Vec<Group> {
    let mut mesh = Vec::new();
    let root_file = join(label, ROOT_CERT);
    let mesh_roots: Option<Vec<Loaded>> = match &mesh_files.root_cert {
        Some(bytes) => {
            let roots = load_certs(&root_file, Some(bytes), &mut mesh);
            if let Some(roots) = &roots {
                for r in roots {
                    check_cert_alone(r, &root_file, true, &mut mesh);
                    validity_findings(r, &root_file, opts, Severity::Error, &mut mesh);
                }
            }
            roots
        }
        None => None,
    };
    if let Some(bytes) = &mesh_files.root_key {
        let key_file = join(label, ROOT_KEY);
        match PrivateKey::from_pem(&key_file, bytes) {
            Ok(k) => {
                let spki = k.public_key_der();
                let matches = mesh_roots.as_ref().is_some_and(|rs| {
                    rs.iter().any(|r| {
                        parse(&r.der).is_some_and(|c| c.public_key().raw == spki.as_slice())
                    })
                });
                if mesh_roots.is_some() && !matches {
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
    let entries: Vec<(&String, &BundleFiles)> = mesh_files.clusters.iter().collect();
    let mut groups = Vec::new();
    let mut keys: BTreeMap<Vec<u8>, String> = BTreeMap::new();
    let mut first_roots: Option<(String, Vec<Vec<u8>>)> = None;
    // Clusters are independent: check them on all cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let checked = crate::mesh::map_parallel(entries.clone(), threads, &|(name, files): (
        &String,
        &BundleFiles,
    )| {
        let clabel = join(label, name);
        Group::new(
            name,
            &clabel,
            GroupKind::Cluster,
            verify_bundle(&clabel, Some(name), files, opts),
        )
    });
    for ((name, files), group) in entries.iter().zip(checked) {
        let clabel = join(label, name);
        // Mesh-wide checks on this cluster.
        let mut scratch = Vec::new();
        if let Some(cas) = load_certs(
            &join(&clabel, CA_CERT),
            files.ca_cert.as_deref(),
            &mut scratch,
        ) {
            if let Some(c) = cas.first().and_then(|l| parse(&l.der)) {
                let spki = c.public_key().raw.to_vec();
                if let Some(other) = keys.get(&spki) {
                    mesh.push(err(
                        Code::SharedKey,
                        &join(&clabel, CA_KEY),
                        format!("{} and {} share the same intermediate key; every cluster needs its own", join(&clabel, CA_CERT), join(other, CA_CERT)),
                    ));
                } else {
                    keys.insert(spki, clabel.clone());
                }
            }
        }
        if let Some(croots) = load_certs(
            &join(&clabel, ROOT_CERT),
            files.root_cert.as_deref(),
            &mut scratch,
        ) {
            let mut cset: Vec<Vec<u8>> = croots.into_iter().map(|l| l.der).collect();
            cset.sort();
            let reference = match (&mesh_roots, &first_roots) {
                (Some(m), _) => {
                    let mut v: Vec<Vec<u8>> = m.iter().map(|l| l.der.clone()).collect();
                    v.sort();
                    Some((root_file.clone(), v))
                }
                (None, Some(f)) => Some(f.clone()),
                (None, None) => None,
            };
            match reference {
                Some((ref_file, rset)) => {
                    let shared = cset.iter().any(|c| rset.contains(c));
                    if !shared {
                        mesh.push(err(
                            Code::RootDiffers,
                            &join(&clabel, ROOT_CERT),
                            format!("{} is not the mesh root ({ref_file}): its workloads will not trust the other clusters'", join(&clabel, ROOT_CERT)),
                        ));
                    } else if cset != rset {
                        mesh.push(warn(
                            Code::RootSetDiffers,
                            &join(&clabel, ROOT_CERT),
                            format!("{} holds a different set of roots than {ref_file} (fine during a root rotation)", join(&clabel, ROOT_CERT)),
                        ));
                    }
                }
                None => first_roots = Some((join(&clabel, ROOT_CERT), cset)),
            }
        }
        groups.push(group);
    }
    if entries.is_empty() {
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

/// Verifies each path: a cluster directory (it holds `ca-cert.pem`,
/// `ca-key.pem`, `cert-chain.pem` or `cacerts.yaml`) or a certs directory
/// (its root and every cluster under it). A path that is neither is an
/// [`Error`], not a finding: the command could not run.
pub fn verify_paths(paths: &[PathBuf], opts: &VerifyOptions) -> Result<Report> {
    let mut groups = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::MissingFile {
                    path: path.clone(),
                    hint: String::new(),
                }
            } else {
                Error::io(path, e)
            }
        })?;
        if !meta.is_dir() {
            return Err(Error::InvalidArgument {
                what: "path",
                value: path.display().to_string(),
                reason: "not a directory: give a cluster directory or a certs directory (use `meshca inspect` for a single file)".into(),
            });
        }
        if is_cluster_dir(path) {
            groups.push(verify_cluster_dir(path, opts));
        } else if path.join(ROOT_CERT).exists() || !cluster_dirs(path)?.is_empty() {
            groups.extend(verify_certs_dir(path, opts)?);
        } else {
            return Err(Error::InvalidArgument {
                what: "path",
                value: path.display().to_string(),
                reason: "neither a cluster directory (no ca-cert.pem) nor a certs directory (no root-cert.pem, no cluster directories)".into(),
            });
        }
    }
    Ok(Report::new(groups, opts))
}

/// Checks the step between two certs directories, `previous` then
/// `current` (stages of a root rotation): reads both, then runs
/// [`verify_mesh_step`].
pub fn verify_step(previous: &Path, current: &Path, opts: &VerifyOptions) -> Result<Group> {
    let (prev_label, cur_label) = (label_for(previous), label_for(current));
    let (prev, ..) = read_mesh_dir(previous, &prev_label)?;
    let (cur, ..) = read_mesh_dir(current, &cur_label)?;
    Ok(verify_mesh_step(&prev_label, &prev, &cur_label, &cur, opts))
}

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
    // Cross trust between the two stages, both ways.
    for (a_label, a_mesh, b_label, b_mesh) in [
        (prev_label, prev, cur_label, cur),
        (cur_label, cur, prev_label, prev),
    ] {
        for (a, a_files) in &a_mesh.clusters {
            let a_label = join(a_label, a);
            for (b, b_files) in &b_mesh.clusters {
                let b_label = join(b_label, b);
                let files = BundleFiles {
                    ca_cert: a_files.ca_cert.clone(),
                    cert_chain: a_files.cert_chain.clone(),
                    root_cert: b_files.root_cert.clone(),
                    ..BundleFiles::default()
                };
                let findings = verify_bundle(&a_label, None, &files, opts);
                if findings
                    .iter()
                    .any(|f| matches!(f.code, Code::UntrustedChain | Code::BadSignature))
                {
                    out.push(err(
                        Code::CrossStageTrust,
                        &join(&a_label, CA_CERT),
                        format!(
                            "{} does not chain to {}: workloads of {a_label} and {b_label} would stop trusting each other",
                            join(&a_label, CA_CERT),
                            join(&b_label, ROOT_CERT)
                        ),
                    ));
                }
            }
        }
    }
    let name = format!("{prev_label} -> {cur_label}");
    Group::new(&name, cur_label, GroupKind::Step, out)
}
