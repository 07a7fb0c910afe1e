//! The load stage: what istiod reads from each file of `/etc/cacerts`.
//!
//! istiod (security/pkg/pki/util/keycertbundle.go `Verify`, crypto.go
//! `ParsePemEncodedCertificate` and `ParsePemEncodedKey`, in istio/istio)
//! reads:
//! - `ca-cert.pem` and `ca-key.pem`: only the FIRST PEM block, whatever its
//!   type (`pem.Decode` once); a key block must be `EC PRIVATE KEY`,
//!   `RSA PRIVATE KEY` or `PRIVATE KEY`;
//! - `root-cert.pem` and `cert-chain.pem`: through Go's
//!   `CertPool.AppendCertsFromPEM`, which skips blocks that are not
//!   `CERTIFICATE`, that carry PEM headers, or that do not parse;
//! - with a CRL, `cert-chain.pem` again, every block parsed as a
//!   certificate (a block of another type is then a hard error), and every
//!   block of `ca-crl.pem` parsed as a CRL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};
use x509_parser::certificate::X509Certificate;

use super::report::{err, warn, Code, Finding};
use crate::error::Error;
use crate::key::PrivateKey;
use crate::pemutil::{self, Blocks};

/// A certificate from a file, with where it came from.
#[derive(Clone)]
pub(super) struct Loaded {
    /// Its DER.
    pub(super) der: Vec<u8>,
    /// `cluster1/cert-chain.pem` or `cluster1/cert-chain.pem (certificate 2)`.
    pub(super) name: String,
    /// The DER parsed, once: every stage reads the same parse, and every
    /// copy of the same certificate alive at the same time shares it.
    parsed: Arc<ParsedCert>,
    /// SHA-256 of the DER: what the memo's keys are made of (see
    /// [`super::memo::der_digest`]).
    pub(super) digest: [u8; 32],
}

/// Why a DER is not a certificate.
enum NotParsed {
    /// It parses, with bytes after it.
    Trailing,
    /// It does not parse (x509-parser's reason).
    Invalid(String),
}

type Parsed<'a> = Result<X509Certificate<'a>, NotParsed>;

self_cell::self_cell!(
    /// A certificate's DER with its parse.
    struct ParsedCert {
        owner: Vec<u8>,
        #[covariant]
        dependent: Parsed,
    }
);

/// Parses held by a live [`Loaded`], by SHA-256 of the DER: a mesh repeats
/// the same root in every cluster (three times in each), and a rotation
/// step loads the same intermediates on both sides. Entries are weak, so
/// nothing outlives the checks that loaded it.
fn interned(der: Vec<u8>, key: [u8; 32]) -> Arc<ParsedCert> {
    type Table = HashMap<[u8; 32], Weak<ParsedCert>>;
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    let table = TABLE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(found) = table
        .lock()
        .ok()
        .and_then(|t| t.get(&key).and_then(Weak::upgrade))
    {
        return found;
    }
    let parsed = Arc::new(ParsedCert::new(
        der,
        |d| match x509_parser::parse_x509_certificate(d) {
            Ok(([], c)) => Ok(c),
            Ok(_) => Err(NotParsed::Trailing),
            Err(e) => Err(NotParsed::Invalid(e.to_string())),
        },
    ));
    if let Ok(mut t) = table.lock() {
        if t.len() >= 4096 && t.len().is_power_of_two() {
            t.retain(|_, w| w.strong_count() > 0);
        }
        t.insert(key, Arc::downgrade(&parsed));
    }
    parsed
}

impl Loaded {
    /// A certificate named `name` in findings.
    pub(super) fn new(der: Vec<u8>, name: String) -> Self {
        let digest = super::memo::der_digest(&der);
        Loaded {
            parsed: interned(der.clone(), digest),
            der,
            name,
            digest,
        }
    }

    /// The certificate, parsed (`None` if its DER does not parse).
    pub(super) fn cert(&self) -> Option<&X509Certificate<'_>> {
        self.parsed.borrow_dependent().as_ref().ok()
    }
}

/// Words for a PEM block type, without echoing unknown input.
pub(super) fn describe_tag(tag: &str) -> &'static str {
    match tag {
        "CERTIFICATE" => "a certificate",
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => "a certificate request (CSR)",
        "EC PARAMETERS" => "EC PARAMETERS (as `openssl ecparam -genkey` writes first)",
        "X509 CRL" => "a CRL",
        "PUBLIC KEY" | "RSA PUBLIC KEY" => "a public key",
        "ENCRYPTED PRIVATE KEY" => "an encrypted private key",
        t if t.ends_with("PRIVATE KEY") => "a private key",
        _ => "a block of another type",
    }
}

/// Checks PEM hygiene that Envoy and istiod depend on.
pub(super) fn check_pem_format(file: &str, bytes: &[u8], out: &mut Vec<Finding>) {
    if !bytes.ends_with(b"\n") {
        // istiod accepts it (Istio's own samples/certs/root-cert-combined.pem
        // has no final newline); only a file appended to it may glue blocks.
        out.push(warn(
            Code::PemFormat,
            file,
            format!("{file} does not end with a newline; istiod accepts it, but a file appended to it would glue two PEM blocks on one line"),
        ));
    }
    let text = String::from_utf8_lossy(bytes);
    // Go's pem.Decode (encoding/pem/pem.go) looks for "-----BEGIN " at the
    // start of the data or right after a newline, and for "\n-----END ":
    // an armor line with leading whitespace hides its block from Go, so
    // istiod does not see that certificate or key.
    let indented = text.lines().any(|line| {
        let trimmed = line.trim_start();
        trimmed.len() != line.len()
            && (trimmed.starts_with("-----BEGIN ") || trimmed.starts_with("-----END "))
    });
    if indented {
        out.push(err(
            Code::PemFormat,
            file,
            format!("{file} has a PEM armor line (-----BEGIN/-----END) with leading whitespace; Go's PEM decoder does not see that block, so istiod ignores it"),
        ));
    }
    if text.contains("----------BEGIN") {
        out.push(err(
            Code::PemFormat,
            file,
            format!("{file} has two PEM blocks glued on one line (\"-----END ...----------BEGIN\"); Envoy rejects that"),
        ));
    }
}

/// The PEM blocks of a file, reporting a missing, empty, oversized or
/// non-PEM file.
pub(super) fn pem_blocks(
    file: &str,
    bytes: Option<&[u8]>,
    out: &mut Vec<Finding>,
) -> Option<Blocks> {
    pem_blocks_by(file, bytes, out, pemutil::parse_blocks)
}

/// [`pem_blocks`] for a certificate file: see [`pemutil::parse_cert_blocks`].
fn pem_cert_blocks(file: &str, bytes: Option<&[u8]>, out: &mut Vec<Finding>) -> Option<Blocks> {
    pem_blocks_by(file, bytes, out, pemutil::parse_cert_blocks)
}

fn pem_blocks_by(
    file: &str,
    bytes: Option<&[u8]>,
    out: &mut Vec<Finding>,
    parse: fn(&str, &[u8]) -> crate::error::Result<Blocks>,
) -> Option<Blocks> {
    let Some(bytes) = bytes else {
        out.push(err(Code::MissingFile, file, format!("{file} is missing")));
        return None;
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        out.push(err(Code::EmptyFile, file, format!("{file} is empty")));
        return None;
    }
    match parse(file, bytes) {
        Ok(b) => {
            check_pem_format(file, bytes, out);
            Some(b)
        }
        Err(Error::TooLarge { size, limit, .. }) => {
            out.push(err(
                Code::TooLarge,
                file,
                format!("{file} is {size} bytes, over the {limit}-byte limit"),
            ));
            None
        }
        Err(Error::Pem { problem, .. }) => {
            out.push(err(Code::NotPem, file, format!("{file} is {problem}")));
            None
        }
        Err(e) => {
            out.push(err(Code::NotPem, file, e.to_string()));
            None
        }
    }
}

/// How a certificate file is read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CertFile {
    /// `ca-cert.pem`: the first block is parsed as a certificate.
    First,
    /// `root-cert.pem`, `cert-chain.pem`: a Go certificate pool.
    Pool,
}

/// Loads the certificates of a file, reporting every problem. For a
/// [`CertFile::Pool`] file, a block Go's pool skips (PEM headers) is
/// reported and left out, as istiod leaves it out.
pub(super) fn load_certs(
    file: &str,
    bytes: Option<&[u8]>,
    how: CertFile,
    out: &mut Vec<Finding>,
) -> Option<Vec<Loaded>> {
    let blocks = pem_cert_blocks(file, bytes, out)?;
    let total = blocks.iter().filter(|b| b.tag() == "CERTIFICATE").count();
    if how == CertFile::First {
        if let Some(first) = blocks.first() {
            if first.tag() != "CERTIFICATE" && !first.tag().contains("PRIVATE KEY") {
                out.push(err(
                    Code::FirstBlock,
                    file,
                    format!(
                        "the first PEM block of {file} is {}; istiod reads only the first block as its CA certificate and fails",
                        describe_tag(first.tag())
                    ),
                ));
                return None;
            }
        }
    }
    let mut certs = Vec::new();
    let mut index = 0;
    for block in blocks.iter() {
        if block.tag() != "CERTIFICATE" {
            if block.tag().contains("PRIVATE KEY") {
                let first = how == CertFile::First
                    && blocks.first().is_some_and(|b| std::ptr::eq(b, block));
                out.push(err(
                    Code::WrongContent,
                    file,
                    if first {
                        format!("{file} starts with a private key; istiod reads only its first PEM block as the CA certificate and fails")
                    } else {
                        format!(
                            "{file} holds {}; it should hold only certificates",
                            describe_tag(block.tag())
                        )
                    },
                ));
                if first {
                    return None;
                }
            }
            continue;
        }
        index += 1;
        let name = if total > 1 {
            format!("{file} (certificate {index})")
        } else {
            file.to_owned()
        };
        if block.headers().iter().next().is_some() {
            if how == CertFile::Pool && file.ends_with(crate::bundle::ROOT_CERT) {
                out.push(err(
                    Code::PemHeaders,
                    file,
                    format!("{name} is a PEM block with header lines; Go's certificate pool skips such a block, so istiod does not trust this root"),
                ));
                continue;
            }
            if how == CertFile::Pool {
                // Left out of the intermediates, as Go's pool leaves it out:
                // when the path needs it, the path stage reports the break.
                out.push(warn(
                    Code::PemHeaders,
                    file,
                    format!("{name} is a PEM block with header lines; Go's certificate pool skips such a block, so istiod does not use this certificate to build paths"),
                ));
                continue;
            }
            out.push(warn(
                Code::PemHeaders,
                file,
                format!("{name} is a PEM block with header lines; istiod reads it, but Go's certificate pools skip such blocks"),
            ));
        }
        let loaded = Loaded::new(block.contents().to_vec(), name);
        match loaded.parsed.borrow_dependent() {
            Ok(_) => certs.push(loaded),
            Err(NotParsed::Trailing) => out.push(err(
                Code::BadCertificate,
                file,
                format!("{} has trailing bytes after the certificate", loaded.name),
            )),
            Err(NotParsed::Invalid(e)) => out.push(err(
                Code::BadCertificate,
                file,
                format!("{} is not a valid X.509 certificate: {e}", loaded.name),
            )),
        }
    }
    if total == 0 {
        let mut kinds: Vec<&str> = blocks.iter().map(|b| describe_tag(b.tag())).collect();
        kinds.dedup();
        out.push(err(
            Code::WrongContent,
            file,
            format!("{file} holds no certificate (found: {})", kinds.join(", ")),
        ));
        return None;
    }
    if certs.is_empty() {
        return None;
    }
    Some(certs)
}

/// With a CRL, istiod parses every block of `cert-chain.pem` as a
/// certificate (keycertbundle.go `Verify`): any other block is fatal.
/// Without one, such a block is skipped by istiod but still served to
/// workloads after their certificates.
pub(super) fn check_chain_blocks(
    file: &str,
    bytes: Option<&[u8]>,
    crl_present: bool,
    out: &mut Vec<Finding>,
) {
    let Some(bytes) = bytes else { return };
    let Ok(blocks) = pemutil::parse_cert_blocks(file, bytes) else {
        return;
    };
    for (i, block) in blocks.iter().enumerate() {
        let tag = block.tag();
        if tag == "CERTIFICATE" || tag.contains("PRIVATE KEY") {
            continue;
        }
        if crl_present {
            out.push(err(
                Code::WrongContent,
                file,
                format!(
                    "PEM block {} of {file} is {}; with a ca-crl.pem istiod parses every block of {file} as a certificate and fails",
                    i + 1,
                    describe_tag(tag)
                ),
            ));
        } else {
            out.push(warn(
                Code::WrongContent,
                file,
                format!(
                    "PEM block {} of {file} is {}, not a certificate; istiod skips it but serves it to workloads after their certificates",
                    i + 1,
                    describe_tag(tag)
                ),
            ));
        }
    }
}

/// Key block types istiod's `ParsePemEncodedKey` accepts as the first block.
const KEY_TAGS: &[&str] = &["EC PRIVATE KEY", "RSA PRIVATE KEY", "PRIVATE KEY"];

/// Loads `ca-key.pem` as istiod does (its first PEM block only) and gives
/// the SubjectPublicKeyInfo of its public half. `cert_spki` is the public
/// key of the certificate the key goes with, when known: a key this
/// process made or read for that certificate is not parsed again.
pub(super) fn load_key(
    file: &str,
    bytes: Option<&[u8]>,
    cert_spki: Option<&[u8]>,
    out: &mut Vec<Finding>,
) -> Option<Vec<u8>> {
    let bytes = bytes?;
    let first = {
        let mut scratch = Vec::new();
        let blocks = pem_blocks(file, Some(bytes), &mut scratch);
        let any_key = blocks
            .as_ref()
            .is_some_and(|b| b.iter().any(|b| b.tag().ends_with("PRIVATE KEY")));
        let first = blocks.as_ref().and_then(|b| b.first()).map(|b| {
            (
                any_key,
                b.tag().to_owned(),
                b.headers().iter().next().is_some(),
                b.headers()
                    .get("Proc-Type")
                    .is_some_and(|v| v.contains("ENCRYPTED")),
                zeroize::Zeroizing::new(b.contents().to_vec()),
            )
        });
        // Missing, empty, oversized and non-PEM files are reported below,
        // by the key parser's own words, except the newline check.
        out.extend(scratch.into_iter().filter(|f| f.code == Code::PemFormat));
        first
    };
    if let Some((any_key, tag, has_headers, encrypted, der)) = &first {
        if *encrypted {
            out.push(err(
                Code::KeyEncrypted,
                file,
                format!(
                    "{file} is encrypted (legacy PEM encryption); istiod needs an unencrypted key"
                ),
            ));
            return None;
        }
        if !any_key {
            out.push(err(
                Code::WrongContent,
                file,
                format!(
                    "{file} holds no private key (its first PEM block is {})",
                    describe_tag(tag)
                ),
            ));
            return None;
        }
        if tag != "ENCRYPTED PRIVATE KEY" && !KEY_TAGS.contains(&tag.as_str()) {
            out.push(err(
                Code::FirstBlock,
                file,
                format!(
                    "the first PEM block of {file} is {}; istiod reads only the first block as its CA key and fails",
                    describe_tag(tag)
                ),
            ));
            return None;
        }
        if *has_headers {
            out.push(warn(
                Code::PemHeaders,
                file,
                format!("{file} has PEM header lines; istiod ignores them"),
            ));
        }
        if let Some(why) = key_label_mismatch(tag, der) {
            out.push(err(
                Code::KeyUnparsable,
                file,
                format!("{file}: {why}; istiod picks the key parser by the PEM label and fails"),
            ));
            return None;
        }
        if explicit_curve_key(tag, der) {
            out.push(err(
                Code::ExplicitCurve,
                file,
                format!("{file} is an EC key with explicit curve parameters; Go's parser (and so istiod) accepts only named curves (P-256, P-384)"),
            ));
            return None;
        }
    }
    if let (Some(spki), Some((_, tag, _, _, der))) = (cert_spki, &first) {
        if super::memo::known_key_pair(tag, der, spki) {
            return Some(spki.to_vec());
        }
    }
    // Parse the first block alone, as istiod does.
    let parsed = first.as_ref().and_then(|(_, tag, _, _, der)| {
        crate::key::KeyFormat::from_pem_tag(tag)
            .map(|format| PrivateKey::from_der(file, format, der))
    });
    let text = match &first {
        _ if parsed.is_some() => zeroize::Zeroizing::new(String::new()),
        Some((_, tag, _, _, der)) => {
            let block = pem::Pem::new(tag.clone(), der.to_vec());
            let text = pemutil::encode(&block);
            zeroize::Zeroize::zeroize(&mut block.into_contents());
            text
        }
        None => zeroize::Zeroizing::new(String::from_utf8_lossy(bytes).into_owned()),
    };
    match parsed.unwrap_or_else(|| PrivateKey::from_pem(file, text.as_bytes())) {
        Ok(k) => Some(k.public_key_der()),
        Err(e) => {
            let (code, msg) = match &e {
                Error::EncryptedKey { .. } => (
                    Code::KeyEncrypted,
                    format!("{file} is encrypted; istiod needs an unencrypted key"),
                ),
                Error::UnsupportedKey { found, .. } => (
                    Code::UnsupportedKey,
                    format!(
                        "{file} is a {found} key; istiod supports RSA 2048+ and ECDSA P-256/P-384"
                    ),
                ),
                Error::Pem { problem, .. } if problem.starts_with("no private key") => {
                    (Code::WrongContent, format!("{file} holds {problem}"))
                }
                Error::Pem { problem, .. } if problem.contains("empty") => {
                    (Code::EmptyFile, format!("{file} is empty"))
                }
                Error::Pem { problem, .. } => (Code::NotPem, format!("{file} is {problem}")),
                Error::TooLarge { .. } => (Code::TooLarge, e.to_string()),
                _ => (Code::KeyUnparsable, format!("{file} cannot be used: {e}")),
            };
            out.push(err(code, file, msg));
            None
        }
    }
}

/// Whether a private key's DER (SEC1 `EC PRIVATE KEY` or PKCS#8
/// `PRIVATE KEY`) names its curve by explicit parameters rather than by
/// OID. Go's `x509.ParseECPrivateKey`/`ParsePKCS8PrivateKey` refuse it.
fn explicit_curve_key(tag: &str, der: &[u8]) -> bool {
    let Ok((_, outer)) = Any::from_der(der) else {
        return false;
    };
    let elements = sequence_elements(outer.data);
    match tag {
        // ECPrivateKey ::= SEQUENCE { version, privateKey, [0] parameters, [1] publicKey }
        "EC PRIVATE KEY" => elements.iter().any(|e| {
            e.header.class() == Class::ContextSpecific
                && e.header.tag() == Tag(0)
                && Any::from_der(e.data).is_ok_and(|(_, p)| p.header.tag() == Tag::Sequence)
        }),
        // PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier { ecPublicKey, parameters }, ... }
        "PRIVATE KEY" => elements.get(1).is_some_and(|alg| {
            let parts = sequence_elements(alg.data);
            let is_ec = parts.first().is_some_and(|oid| {
                oid.header.tag() == Tag::Oid && oid.data == EC_PUBLIC_KEY_OID_CONTENT
            });
            is_ec
                && parts
                    .get(1)
                    .is_some_and(|p| p.header.tag() == Tag::Sequence)
        }),
        _ => false,
    }
}

/// Why Go's parser for a key block's label refuses its contents, or `None`.
/// istiod's `ParsePemEncodedKey` (security/pkg/pki/util/crypto.go) picks
/// the parser by the PEM label: `EC PRIVATE KEY` → `x509.ParseECPrivateKey`
/// (SEC1, which must name its curve: a PKCS#8-embedded ECPrivateKey has no
/// parameters and fails with "unknown elliptic curve"), `RSA PRIVATE KEY` →
/// `x509.ParsePKCS1PrivateKey`, `PRIVATE KEY` → `x509.ParsePKCS8PrivateKey`.
fn key_label_mismatch(tag: &str, der: &[u8]) -> Option<&'static str> {
    let Ok((_, outer)) = Any::from_der(der) else {
        return None;
    };
    let elements = sequence_elements(outer.data);
    let second = elements.get(1).map(|e| e.header.tag());
    match tag {
        // ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING,
        // [0] parameters, [1] publicKey }
        "EC PRIVATE KEY" => {
            if second != Some(Tag::OctetString) {
                Some("the EC PRIVATE KEY block does not hold a SEC1 key (Go: use the parser of its real format)")
            } else if !elements
                .iter()
                .any(|e| e.header.class() == Class::ContextSpecific && e.header.tag() == Tag(0))
            {
                Some("the EC PRIVATE KEY block does not name its curve (a key taken out of PKCS#8?); Go fails with \"unknown elliptic curve\"")
            } else {
                None
            }
        }
        // RSAPrivateKey ::= SEQUENCE { version, modulus INTEGER, ... }
        "RSA PRIVATE KEY" => (second != Some(Tag::Integer))
            .then_some("the RSA PRIVATE KEY block does not hold a PKCS#1 RSA key"),
        // PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, OCTET STRING }
        "PRIVATE KEY" => (second != Some(Tag::Sequence))
            .then_some("the PRIVATE KEY block does not hold a PKCS#8 key"),
        _ => None,
    }
}

/// The content octets of OID 1.2.840.10045.2.1 (id-ecPublicKey).
const EC_PUBLIC_KEY_OID_CONTENT: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// The elements of a SEQUENCE's content (stopping at the first that does not parse).
fn sequence_elements(mut content: &[u8]) -> Vec<Any<'_>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        match Any::from_der(content) {
            Ok((rest, any)) => {
                out.push(any);
                content = rest;
            }
            Err(_) => break,
        }
    }
    out
}

/// basicConstraints as Go reads them (`IsCA`, `MaxPathLen`): only from a
/// version 3 certificate, and with Go's parser's leniency, which differs
/// from x509-parser's (parser.go parseBasicConstraintsExtension). `None`:
/// no usable basicConstraints, so not a CA for Go.
pub(super) fn go_basic_constraints(c: &X509Certificate<'_>) -> Option<(bool, Option<u64>)> {
    if c.version() != x509_parser::x509::X509Version::V3 {
        return None;
    }
    let oid = x509_parser::oid_registry::OID_X509_EXT_BASIC_CONSTRAINTS;
    let ext = c.extensions().iter().find(|e| e.oid == oid)?;
    crate::goparse::basic_constraints(ext.value)
}

/// Whether Go sees `c` as a CA certificate.
pub(super) fn go_is_ca(c: &X509Certificate<'_>) -> bool {
    matches!(go_basic_constraints(c), Some((true, _)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key this process made is matched with its certificate's public
    /// key without a second parse, and with no other: asked about another
    /// public key, the key is parsed and gives its own.
    #[test]
    fn a_key_made_here_is_known_only_with_its_own_public_key() {
        use crate::profile::KeyType;
        let a = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let b = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let (a_spki, b_spki) = (a.public_key_der(), b.public_key_der());
        let a_pem = a.to_pem();
        let der = pem::parse(a_pem.as_bytes()).unwrap().into_contents();
        use super::super::memo::known_key_pair as known;
        assert!(known("PRIVATE KEY", &der, &a_spki));
        assert!(!known("PRIVATE KEY", &der, &b_spki));
        assert!(!known("EC PRIVATE KEY", &der, &a_spki));
        for expected in [Some(a_spki.as_slice()), Some(b_spki.as_slice()), None] {
            let mut out = Vec::new();
            let got = load_key("ca-key.pem", Some(a_pem.as_bytes()), expected, &mut out);
            assert_eq!(got.as_deref(), Some(a_spki.as_slice()), "{out:?}");
            assert!(out.is_empty(), "{out:?}");
        }
    }

    /// Runs openssl (required: the test fails when it is missing).
    fn openssl(dir: &std::path::Path, args: &[&str]) {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl must be installed to run this test");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    }

    fn first_block(path: &std::path::Path) -> (String, Vec<u8>) {
        let text = std::fs::read(path).unwrap();
        let blocks = pemutil::parse_blocks("k", &text).unwrap();
        let b = blocks.first().unwrap();
        (b.tag().to_owned(), b.contents().to_vec())
    }

    #[test]
    fn explicit_curve_parameters_are_found_in_sec1_and_pkcs8_keys() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "named.key",
            ],
        );
        openssl(
            d,
            &[
                "ec",
                "-in",
                "named.key",
                "-param_enc",
                "explicit",
                "-out",
                "explicit.key",
            ],
        );
        openssl(
            d,
            &[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                "named.key",
                "-out",
                "named.p8",
            ],
        );
        openssl(
            d,
            &[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                "explicit.key",
                "-out",
                "explicit.p8",
            ],
        );
        for (file, explicit) in [
            ("named.key", false),
            ("explicit.key", true),
            ("named.p8", false),
            ("explicit.p8", true),
        ] {
            let (tag, der) = first_block(&d.join(file));
            assert_eq!(explicit_curve_key(&tag, &der), explicit, "{file}");
            let mut out = Vec::new();
            let bytes = std::fs::read(d.join(file)).unwrap();
            let key = load_key("ca-key.pem", Some(&bytes), None, &mut out);
            assert_eq!(key.is_some(), !explicit, "{file}: {out:?}");
            assert_eq!(
                out.iter().any(|f| f.code == Code::ExplicitCurve),
                explicit,
                "{file}: {out:?}"
            );
        }
    }

    #[test]
    fn only_the_first_block_of_ca_cert_pem_counts() {
        let mut out = Vec::new();
        let csr_then_cert = b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(load_certs(
            "ca-cert.pem",
            Some(csr_then_cert),
            CertFile::First,
            &mut out
        )
        .is_none());
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].code, Code::FirstBlock);
        assert!(out[0].message.contains("certificate request"), "{out:?}");
    }

    #[test]
    fn unknown_block_types_are_not_echoed() {
        assert_eq!(describe_tag("SECRET VALUE 1234"), "a block of another type");
        assert_eq!(describe_tag("EC PARAMETERS").split(' ').next(), Some("EC"));
    }
}
