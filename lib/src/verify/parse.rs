//! The parse stage: each certificate on its own, as Go's crypto/x509
//! parser and istiod judge it (signature algorithm, key, extensions).

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::load::Loaded;
use super::report::{err, warn, Code, Finding};

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
    weak_signature_oid(&c.signature_algorithm.algorithm)
}

/// The name of a signature algorithm Go refuses (SHA-1, MD5, MD2, MD4).
pub(super) fn weak_signature_oid(
    oid: &x509_parser::der_parser::oid::Oid<'_>,
) -> Option<&'static str> {
    let oid = oid.to_id_string();
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
                format!("{name} has an ECDSA key without a named curve (explicit parameters); Go refuses it"),
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

/// Why Go's parser does not handle a critical extension, or `None` when it
/// does. Restates `processExtensions` in Go's crypto/x509/parser.go: Go
/// handles keyUsage, basicConstraints, subjectAltName (when it holds a DNS,
/// email, IP or URI name), nameConstraints (DNS, email, IP and URI forms
/// only), CRL distribution points, AKI, policyConstraints, extKeyUsage,
/// certificatePolicies, policyMappings and inhibitAnyPolicy; everything
/// else marked critical makes `Verify` fail with "unhandled critical
/// extension" (verify.go `isValid`, for every certificate of the chain).
fn unhandled_critical(ext: &x509_parser::extensions::X509Extension<'_>) -> Option<&'static str> {
    const HANDLED: &[u64] = &[15, 19, 31, 35, 36, 37, 32, 33, 54];
    let arcs: Option<Vec<u64>> = ext.oid.iter().map(|i| i.collect());
    let arcs = arcs.unwrap_or_default();
    if let [2, 5, 29, n] = arcs.as_slice() {
        if HANDLED.contains(n) {
            return None;
        }
        match (*n, ext.parsed_extension()) {
            (17, ParsedExtension::SubjectAlternativeName(san)) => {
                let usable = san.general_names.iter().any(|g| {
                    matches!(
                        g,
                        GeneralName::DNSName(_)
                            | GeneralName::RFC822Name(_)
                            | GeneralName::IPAddress(_)
                            | GeneralName::URI(_)
                    )
                });
                return (!usable)
                    .then_some("a critical subjectAltName without a DNS, email, IP or URI name");
            }
            (30, ParsedExtension::NameConstraints(nc)) => {
                let subtrees = nc
                    .permitted_subtrees
                    .iter()
                    .chain(nc.excluded_subtrees.iter())
                    .flatten();
                let other = subtrees.into_iter().any(|s| {
                    !matches!(
                        s.base,
                        GeneralName::DNSName(_)
                            | GeneralName::RFC822Name(_)
                            | GeneralName::IPAddress(_)
                            | GeneralName::URI(_)
                    )
                });
                return other.then_some(
                    "critical name constraints of a form Go does not handle (directoryName, otherName, ...)",
                );
            }
            // Go's parser refuses a critical SKI: reported as `go-parse`.
            (14, _) => return None,
            _ => return Some("a critical extension Go does not handle"),
        }
    }
    if arcs.as_slice() == [1, 3, 6, 1, 5, 5, 7, 1, 1] {
        // Go's parser refuses a critical AIA: reported as `go-parse`.
        return None;
    }
    Some("a critical extension Go does not handle")
}

/// Checks every certificate on its own: parse-level rules Go enforces,
/// weak signatures and keys, critical extensions.
///
/// The checks depend on the DER and `is_root` only: a certificate found
/// clean is remembered (see `memo`) and not checked again, so a root that
/// every cluster carries is checked once per run. Findings are always made
/// afresh, with this file's names.
pub(super) fn check_cert_alone(l: &Loaded, file: &str, is_root: bool, out: &mut Vec<Finding>) {
    use super::memo;
    let kind = if is_root {
        memo::Kind::CleanRoot
    } else {
        memo::Kind::CleanCert
    };
    let key = memo::key(kind, &[&l.digest]);
    if memo::get(&key) == Some(true) {
        return;
    }
    let before = out.len();
    check_cert_findings(l, file, is_root, out);
    memo::put(key, out.len() == before);
}

fn check_cert_findings(l: &Loaded, file: &str, is_root: bool, out: &mut Vec<Finding>) {
    out.extend(go_parse_findings(l, file));
    let Some(c) = l.cert() else { return };
    if !is_root {
        if let Some(alg) = weak_signature(c) {
            out.push(err(
                Code::WeakSignature,
                file,
                format!(
                    "{} is signed with {alg}; Go rejects such signatures",
                    l.name
                ),
            ));
        }
    } else if let Some(alg) = weak_signature(c) {
        out.push(warn(
            Code::WeakSignature,
            file,
            format!("{} (a root) is self-signed with {alg}; Go ignores a root's own signature, but replace it", l.name),
        ));
    }
    check_key_strength(&l.name, file, c.public_key(), out);
    for ext in c.extensions().iter().filter(|e| e.critical) {
        if let Some(why) = unhandled_critical(ext) {
            out.push(err(
                Code::UnknownCriticalExtension,
                file,
                format!(
                    "{} has {why} ({}); Go's verification, as istiod runs it, fails",
                    l.name, ext.oid
                ),
            ));
        }
    }
}

/// What Go's crypto/x509 parser refuses in a certificate's DER, beyond
/// what x509-parser refuses (wrong version, non-DER encodings, malformed
/// names and extensions, inner/outer signature algorithm mismatch): one
/// `go-parse` error with Go's reason. istiod parses every certificate of the
/// bundle with Go (`x509.ParseCertificate`), so such a bundle never loads.
/// A certificate Go accepts is then held to BoringSSL's strict DER, as
/// Envoy parses it (`envoy-parse`).
pub(super) fn go_parse_findings(cert: &Loaded, file: &str) -> Vec<Finding> {
    match crate::goparse::check_certificate(&cert.der) {
        Ok(()) => match crate::goparse::check_envoy_certificate(&cert.der) {
            Ok(()) => Vec::new(),
            Err(why) => vec![err(
                Code::EnvoyParse,
                file,
                format!(
                    "{} is refused by Envoy's strict DER parser (BoringSSL): {why}; Go loads it, but workloads cannot use the chain",
                    cert.name
                ),
            )],
        },
        // The one refusal with a code of its own.
        Err(why) if why == crate::goparse::NEGATIVE_SERIAL => vec![err(
            Code::NegativeSerial,
            file,
            format!(
                "{} has a negative serial number; Go's crypto/x509 refuses to parse it",
                cert.name
            ),
        )],
        Err(why) => vec![err(
            Code::GoParse,
            file,
            format!(
                "{} is refused by Go's certificate parser{} ({why}); {}",
                cert.name,
                go_releases(&why).0,
                go_releases(&why).1
            ),
        )],
    }
}

/// As [`go_parse_findings`], for one CRL of `ca-crl.pem` (`name` says which).
pub(super) fn go_parse_crl_findings(der: &[u8], name: &str, file: &str) -> Vec<Finding> {
    match crate::goparse::check_crl(der) {
        Ok(()) => match crate::goparse::check_envoy_crl(der) {
            Ok(()) => Vec::new(),
            Err(why) => vec![err(
                Code::EnvoyParse,
                file,
                format!("{name} is refused by Envoy's strict DER parser (BoringSSL): {why}; Envoy cannot load the CRLs"),
            )],
        },
        Err(why) => vec![err(
            Code::GoParse,
            file,
            format!(
                "{name} is refused by Go's CRL parser{} ({why}); {}",
                go_releases(&why).0,
                go_releases(&why).1
            ),
        )],
    }
}

/// Which Go releases refuse, and who then cannot load the file: words for
/// a `go-parse` message.
fn go_releases(why: &crate::goparse::GoParseError) -> (&'static str, &'static str) {
    use crate::goparse::Releases;
    match why.releases() {
        Releases::All => ("", "istiod cannot load it"),
        Releases::UpTo126 => (
            " up to Go 1.26",
            "an istiod built with Go 1.26 or earlier cannot load it (Go 1.27 can)",
        ),
        Releases::From127 => (
            " from Go 1.27 on",
            "an istiod built with Go 1.27 or later cannot load it (Go 1.26 can)",
        ),
    }
}
