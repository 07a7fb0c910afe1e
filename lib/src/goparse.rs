//! Parse certificates and CRLs the way Go's `crypto/x509` does.
//!
//! istiod loads the `cacerts` Secret with Go's `x509.ParseCertificate` and
//! `x509.ParseRevocationList`; whatever those refuse, istiod refuses. x509-parser
//! (which the rest of meshca uses to read certificates) accepts more than Go does,
//! so this module restates Go's parser rule by rule and reports the first rule a
//! DER document breaks, in Go's words. The reference is Go 1.25.5's
//! `src/crypto/x509/parser.go` (functions named in the comments below),
//! `src/crypto/x509/verify.go` (`parseRFC2821Mailbox`), `src/net/url/url.go`
//! (`url.Parse`, for URI SANs) and the vendored
//! `golang.org/x/crypto/cryptobyte/asn1.go` (the DER reader all of them use).
//!
//! Which DER crate, and why (evidence from the crates' sources):
//! - RustCrypto `der` 0.7 (chosen) decodes lengths exactly as cryptobyte does:
//!   minimal length octets, at most four of them, no indefinite length
//!   (`Length::decode`); its INTEGER decoding refuses empty and non-minimal
//!   encodings (`validate_canonical`), its BOOLEAN only 0x00/0xFF. Where it is
//!   stricter than Go it is used only where Go is as strict: it refuses
//!   identifier octets it does not know (e.g. UniversalString, or a constructed
//!   UTF8String), which Go accepts as algorithm parameters and as GeneralNames it
//!   skips, so the identifier octet is read here and only the length and
//!   contents go to `der`.
//!   Its BIT STRING does not check that the unused bits are zero (cryptobyte
//!   does), and its OID type caps the encoding at 39 bytes and allows 32-bit arcs
//!   (cryptobyte allows any length and 31-bit arcs), so those two rules are
//!   restated below.
//! - `asn1-rs` 0.7 / `der-parser` 10 (what x509-parser uses) accept non-minimal
//!   long-form lengths in DER mode (the check is commented out in
//!   `Header::from_der`), lengths of up to eight octets and high-tag-number
//!   identifiers, all of which cryptobyte refuses: too lenient for this job.
//!
//! istiod releases are built with different Go releases, and a mesh being
//! upgraded runs two istiod versions at once, so this module refuses what any
//! Go release from 1.25 on refuses, and says which releases refuse
//! ([`Releases`]). Measured against Go 1.25.5, 1.26.0 and 1.27.3's sources:
//! 1.25 and 1.26 parse certificates alike; 1.27 takes any well-formed element
//! as a name attribute value (1.25 and 1.26: six string types only), refuses
//! an IPv4-mapped IPv6 address (::ffff:a.b.c.d) in a SAN or an IP name
//! constraint, and an '@' in the domain of an rfc822Name constraint, and
//! parses ML-DSA keys (1.25 keeps them unparsed; verify refuses them as
//! `unsupported-key` anyway).
//!
//! URI SANs go through a restatement of Go's `url.Parse` rather than the `url`
//! crate, which follows the WHATWG URL standard and so accepts and refuses
//! other strings than Go's `net/url`.
//!
//! Known differences from Go 1.25: a P-224 public key is checked for its
//! uncompressed form and length but not for lying on the curve (aws-lc-rs
//! offers no P-224); a URI whose host has a ']' before its last '[' makes Go
//! panic (slice out of range) and is refused here.
//!
//! Go also does NOT check the ordering of SET OF in names, nor that trailing
//! bytes are absent inside most structures (extension values, the TBS after the
//! extensions, the CRL after its outer SEQUENCE): neither does this module.

use std::collections::HashSet;
use std::fmt;

use der::{Decode, Length, Reader, SliceReader};

/// Why Go's `crypto/x509` refuses to parse a certificate or CRL, in Go's
/// words. It never carries a value read from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoParseError {
    reason: &'static str,
    releases: Releases,
}

/// Which Go releases refuse: istiod is built with whichever Go its release
/// branch pins, so a mesh running several istiod versions meets several.
/// This module refuses what any release from 1.25 on refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Releases {
    /// Every release from Go 1.25 on.
    All,
    /// Go 1.25 and 1.26; Go 1.27 accepts it.
    UpTo126,
    /// Go 1.27 and later; Go 1.25 and 1.26 accept it.
    From127,
}

/// Go's refusal of a negative serial number (since Go 1.23, unless
/// GODEBUG=x509negativeserial=1), which verify reports under its own code.
pub(crate) const NEGATIVE_SERIAL: GoParseError = GoParseError::new("x509: negative serial number");

impl GoParseError {
    const fn new(reason: &'static str) -> Self {
        Self {
            reason,
            releases: Releases::All,
        }
    }

    const fn only(reason: &'static str, releases: Releases) -> Self {
        Self { reason, releases }
    }

    /// The Go releases that refuse.
    pub(crate) fn releases(&self) -> Releases {
        self.releases
    }

    /// Go's error text for the rule that was broken (values elided).
    pub(crate) fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for GoParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for GoParseError {}

type GoResult<T> = Result<T, GoParseError>;

/// Shorthand: turn a failed read into Go's error text.
fn or<T>(value: Option<T>, reason: &'static str) -> GoResult<T> {
    value.ok_or(GoParseError::new(reason))
}

fn ensure(ok: bool, reason: &'static str) -> GoResult<()> {
    if ok {
        Ok(())
    } else {
        Err(GoParseError::new(reason))
    }
}

// Identifier octets (cryptobyte/asn1 tags).
const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OBJECT_IDENTIFIER: u8 = 0x06;
const ENUMERATED: u8 = 0x0a;
const UTF8_STRING: u8 = 0x0c;
const NUMERIC_STRING: u8 = 0x12;
const PRINTABLE_STRING: u8 = 0x13;
const T61_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const BMP_STRING: u8 = 0x1e;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const fn context(n: u8) -> u8 {
    0x80 | n
}
const fn context_constructed(n: u8) -> u8 {
    0xa0 | n
}

/// A DER reader with cryptobyte's semantics (`cryptobyte.String`): every
/// read either consumes one whole element or fails. Contents are only
/// checked when read, as in Go, so bytes Go never looks at are never judged.
#[derive(Clone, Copy)]
struct Der<'a> {
    rest: &'a [u8],
}

/// One element: its identifier octet, its contents and its whole encoding.
struct Element<'a> {
    tag: u8,
    contents: &'a [u8],
    full: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Self { rest }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// cryptobyte `PeekASN1Tag`.
    fn peek(&self, tag: u8) -> bool {
        self.rest.first() == Some(&tag)
    }

    /// cryptobyte `readASN1`: any tag except the high-tag-number form, a
    /// DER length (decoded by the `der` crate), the contents present.
    fn read_any(&mut self) -> Option<Element<'a>> {
        if self.rest.len() < 2 {
            return None;
        }
        let tag = *self.rest.first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let mut reader = SliceReader::new(self.rest.get(1..)?).ok()?;
        let length = Length::decode(&mut reader).ok()?;
        let contents = reader.read_slice(length).ok()?;
        // The identifier octet, then the length octets and contents read.
        let total = 1 + usize::try_from(u32::from(reader.position())).ok()?;
        let full = self.rest.get(..total)?;
        self.rest = self.rest.get(total..)?;
        Some(Element {
            tag,
            contents,
            full,
        })
    }

    /// cryptobyte `ReadASN1`: the contents of an element with this tag.
    fn read(&mut self, tag: u8) -> Option<&'a [u8]> {
        let element = self.read_any()?;
        (element.tag == tag).then_some(element.contents)
    }

    /// cryptobyte `ReadASN1Element`: the whole encoding of an element with this tag.
    fn read_element(&mut self, tag: u8) -> Option<&'a [u8]> {
        let element = self.read_any()?;
        (element.tag == tag).then_some(element.full)
    }

    /// cryptobyte `ReadOptionalASN1`: `Some(None)` when absent, `None` when malformed.
    fn read_optional(&mut self, tag: u8) -> Option<Option<&'a [u8]>> {
        if self.peek(tag) {
            self.read(tag).map(Some)
        } else {
            Some(None)
        }
    }

    /// cryptobyte `ReadASN1Integer` into a `*big.Int`: the sign of a
    /// minimally encoded INTEGER (-1, 0 or 1).
    fn read_big_int_sign(&mut self) -> Option<i8> {
        let element = self.read_any()?;
        if element.tag != INTEGER {
            return None;
        }
        let int = der::asn1::IntRef::from_der(element.full).ok()?;
        let bytes = int.as_bytes();
        Some(if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            -1
        } else if bytes.iter().all(|b| *b == 0) {
            0
        } else {
            1
        })
    }

    /// cryptobyte `ReadASN1Integer` into an `int`/`int64` (64-bit platform).
    fn read_i64(&mut self) -> Option<i64> {
        let element = self.read_any()?;
        if element.tag != INTEGER {
            return None;
        }
        i64::from_der(element.full).ok()
    }

    /// cryptobyte `ReadASN1Enum`: an ENUMERATED that fits an `int`.
    fn read_enum(&mut self) -> Option<i64> {
        let element = self.read_any()?;
        if element.tag != ENUMERATED {
            return None;
        }
        i64_from_contents(element.contents)
    }

    /// cryptobyte `ReadASN1Boolean`: exactly one octet, 0x00 or 0xFF.
    fn read_bool(&mut self) -> Option<bool> {
        let element = self.read_any()?;
        if element.tag != BOOLEAN {
            return None;
        }
        bool::from_der(element.full).ok()
    }

    /// cryptobyte `ReadASN1BitString`: returns (unused bits, bytes).
    fn read_bit_string(&mut self) -> Option<(u8, &'a [u8])> {
        let element = self.read_any()?;
        if element.tag != BIT_STRING {
            return None;
        }
        let bits = der::asn1::BitStringRef::from_der(element.full).ok()?;
        let unused = bits.unused_bits();
        let bytes = bits.raw_bytes();
        // The `der` crate does not check that the unused bits are zero; DER
        // and cryptobyte require it.
        if let Some(last) = bytes.last() {
            let mask = (1u16 << unused) - 1;
            if u16::from(*last) & mask != 0 {
                return None;
            }
        }
        Some((unused, bytes))
    }

    /// cryptobyte `ReadASN1ObjectIdentifier`: the contents octets of a valid OID.
    fn read_oid(&mut self) -> Option<&'a [u8]> {
        let contents = self.read(OBJECT_IDENTIFIER)?;
        oid_valid(contents).then_some(contents)
    }
}

/// checkASN1Integer + asn1Signed on contents octets read under another tag
/// (ENUMERATED, or an IMPLICIT context tag): the `der` crate's INTEGER rules.
fn i64_from_contents(contents: &[u8]) -> Option<i64> {
    let length = Length::try_from(contents.len()).ok()?;
    let header = der::Header::new(der::Tag::Integer, length).ok()?;
    let mut reader = SliceReader::new(contents).ok()?;
    let value = <i64 as der::DecodeValue>::decode_value(&mut reader, header).ok()?;
    reader.is_finished().then_some(value)
}

/// cryptobyte's OID rules (`ReadASN1ObjectIdentifier`, `readBase128Int`):
/// not empty, every arc minimally encoded (no leading 0x80), at most five
/// octets and below 2^31, none truncated.
fn oid_valid(contents: &[u8]) -> bool {
    if contents.is_empty() {
        return false;
    }
    let mut value: u32 = 0;
    let mut octets = 0;
    for &b in contents {
        if octets == 5 || value >= 1 << (31 - 7) {
            return false;
        }
        if octets == 0 && b == 0x80 {
            return false;
        }
        value = (value << 7) | u32::from(b & 0x7f);
        octets += 1;
        if b & 0x80 == 0 {
            value = 0;
            octets = 0;
        }
    }
    octets == 0
}

// Object identifiers, as DER contents octets (Go: x509.go, oid* variables).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_DSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_P224: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x21];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_AIA: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01];
const OID_CRL_REASON: &[u8] = &[0x55, 0x1d, 0x15];
const OID_CRL_NUMBER: &[u8] = &[0x55, 0x1d, 0x14];
const OID_AKI: &[u8] = &[0x55, 0x1d, 0x23];

/// Check a DER certificate as Go's `x509.ParseCertificate` does; `Err`
/// exactly when Go returns an error (Go 1.25, default GODEBUG).
pub(crate) fn check_certificate(der: &[u8]) -> Result<(), GoParseError> {
    let mut input = Der::new(der);
    // parseCertificate: the outer SEQUENCE, read whole to know its length.
    let raw = or(input.read_element(SEQUENCE), "x509: malformed certificate")?;
    let mut cert = or(Der::new(raw).read(SEQUENCE), "x509: malformed certificate").map(Der::new)?;

    let tbs_raw = or(
        cert.read_element(SEQUENCE),
        "x509: malformed tbs certificate",
    )?;
    let mut tbs = or(
        Der::new(tbs_raw).read(SEQUENCE),
        "x509: malformed tbs certificate",
    )
    .map(Der::new)?;

    // Version: [0] EXPLICIT INTEGER DEFAULT v1 (an explicit v1 is accepted).
    // Go 1.25: negative is malformed, anything above v3 (2) is invalid.
    let version = match or(
        tbs.read_optional(context_constructed(0)),
        "x509: malformed version",
    )? {
        None => 0,
        Some(explicit) => {
            let mut explicit = Der::new(explicit);
            let v = or(explicit.read_i64(), "x509: malformed version")?;
            ensure(explicit.is_empty(), "x509: malformed version")?;
            v
        }
    };
    ensure(version >= 0, "x509: malformed version")?;
    ensure(version <= 2, "x509: invalid version")?;

    // Serial: a minimally encoded INTEGER (so never empty); negative refused
    // since Go 1.23 unless GODEBUG=x509negativeserial=1.
    let serial_sign = or(tbs.read_big_int_sign(), "x509: malformed serial number")?;
    ensure(serial_sign >= 0, NEGATIVE_SERIAL.reason)?;

    // The inner signature AlgorithmIdentifier must equal the outer one byte
    // for byte (contents compared, as Go compares the unwrapped SEQUENCEs).
    let sig_ai = or(
        tbs.read_element(SEQUENCE),
        "x509: malformed signature algorithm identifier",
    )?;
    let sig_ai = or(
        Der::new(sig_ai).read(SEQUENCE),
        "x509: malformed signature algorithm identifier",
    )?;
    let outer_sig_ai = or(cert.read(SEQUENCE), "x509: malformed algorithm identifier")?;
    ensure(
        outer_sig_ai == sig_ai,
        "x509: inner and outer signature algorithm identifiers don't match",
    )?;
    parse_ai(sig_ai)?;

    let issuer = or(tbs.read_element(SEQUENCE), "x509: malformed issuer")?;
    parse_name(issuer)?;

    let validity = or(tbs.read(SEQUENCE), "x509: malformed validity")?;
    let mut validity = Der::new(validity);
    read_time(&mut validity)?;
    read_time(&mut validity)?;

    // Go says "malformed issuer" for the subject too.
    let subject = or(tbs.read_element(SEQUENCE), "x509: malformed issuer")?;
    parse_name(subject)?;

    let spki = or(tbs.read_element(SEQUENCE), "x509: malformed spki")?;
    parse_spki(spki)?;

    if version >= 1 {
        // issuerUniqueID [1] and subjectUniqueID [2], IMPLICIT BIT STRING:
        // skipped, but they must be well-formed elements.
        or(
            tbs.read_optional(context(1)),
            "x509: malformed issuerUniqueID",
        )?;
        or(
            tbs.read_optional(context(2)),
            "x509: malformed subjectUniqueID",
        )?;
        if version == 2 {
            let extensions = or(
                tbs.read_optional(context_constructed(3)),
                "x509: malformed extensions",
            )?;
            if let Some(extensions) = extensions {
                check_certificate_extensions(extensions)?;
            }
        }
    }

    or(cert.read_bit_string(), "x509: malformed signature")?;
    // ParseCertificate: nothing may follow the certificate.
    ensure(raw.len() == der.len(), "x509: trailing data")
}

/// The extensions of a certificate: each well-formed, no OID twice, then
/// each extension Go understands parsed (`processExtensions`).
fn check_certificate_extensions(extensions: &[u8]) -> GoResult<()> {
    let list = or(
        Der::new(extensions).read(SEQUENCE),
        "x509: malformed extensions",
    )?;
    let mut list = Der::new(list);
    let mut parsed: Vec<Extension<'_>> = Vec::new();
    // A set, as Go's map: a certificate may carry tens of thousands of
    // extensions, and a scan per extension would be quadratic.
    let mut seen: HashSet<&[u8]> = HashSet::new();
    while !list.is_empty() {
        let extension = or(list.read(SEQUENCE), "x509: malformed extension")?;
        let extension = parse_extension(extension)?;
        // Go keys this on the OID's dotted form; minimal encoding makes
        // equal OIDs equal bytes.
        ensure(
            seen.insert(extension.oid),
            "x509: certificate contains duplicate extension",
        )?;
        parsed.push(extension);
    }
    parsed.iter().try_for_each(process_extension)
}

struct Extension<'a> {
    oid: &'a [u8],
    critical: bool,
    value: &'a [u8],
}

/// parseExtension: OID, optional DER BOOLEAN critical, OCTET STRING value.
fn parse_extension(extension: &[u8]) -> GoResult<Extension<'_>> {
    let mut extension = Der::new(extension);
    let oid = or(extension.read_oid(), "x509: malformed extension OID field")?;
    let mut critical = false;
    if extension.peek(BOOLEAN) {
        critical = or(
            extension.read_bool(),
            "x509: malformed extension critical field",
        )?;
    }
    let value = or(
        extension.read(OCTET_STRING),
        "x509: malformed extension value field",
    )?;
    Ok(Extension {
        oid,
        critical,
        value,
    })
}

/// processExtensions, for one extension. Unknown extensions are accepted
/// here (an unknown critical one fails verification, not parsing).
fn process_extension(e: &Extension<'_>) -> GoResult<()> {
    match e.oid {
        [0x55, 0x1d, n] => match n {
            15 => parse_key_usage(e.value),
            19 => parse_basic_constraints(e.value),
            17 => parse_san(e.value),
            30 => parse_name_constraints(e.value),
            31 => parse_crl_distribution_points(e.value),
            35 => parse_authority_key_id(e),
            36 => parse_policy_constraints(e.value),
            37 => parse_ext_key_usage(e.value),
            14 => parse_subject_key_id(e),
            32 => parse_certificate_policies(e.value),
            33 => parse_policy_mappings(e.value),
            54 => {
                // ReadASN1Integer into an int.
                or(
                    Der::new(e.value).read_i64(),
                    "x509: invalid inhibit any policy extension",
                )?;
                Ok(())
            }
            _ => Ok(()),
        },
        OID_AIA => parse_authority_info_access(e),
        _ => Ok(()),
    }
}

/// parseKeyUsageExtension: a DER BIT STRING (empty is accepted).
fn parse_key_usage(value: &[u8]) -> GoResult<()> {
    or(Der::new(value).read_bit_string(), "x509: invalid key usage")?;
    Ok(())
}

/// parseBasicConstraintsExtension: SEQUENCE { cA BOOLEAN OPTIONAL,
/// pathLen INTEGER (0..MaxInt) OPTIONAL }.
fn parse_basic_constraints(value: &[u8]) -> GoResult<()> {
    basic_constraints(value)
        .map(|_| ())
        .ok_or(GoParseError::new("x509: invalid basic constraints"))
}

/// What Go reads from a basicConstraints extension value (`IsCA`,
/// `MaxPathLen`), with parseBasicConstraintsExtension's leniency: an
/// element that is neither the BOOLEAN nor the INTEGER is skipped unread
/// (`PeekASN1Tag`), so `SEQUENCE { [0x21] ... }` is simply "not a CA", and
/// bytes after the INTEGER are ignored. `None` when Go refuses the value.
pub(crate) fn basic_constraints(value: &[u8]) -> Option<(bool, Option<u64>)> {
    let mut seq = Der::new(Der::new(value).read(SEQUENCE)?);
    let mut is_ca = false;
    if seq.peek(BOOLEAN) {
        is_ca = seq.read_bool()?;
    }
    let mut path_len = None;
    if seq.peek(INTEGER) {
        let n = seq.read_i64()?;
        path_len = Some(u64::try_from(n).ok()?);
    }
    Some((is_ca, path_len))
}

/// isIA5String: every character ASCII (Go ranges over runes, so any byte
/// of 0x80 or above fails).
fn is_ia5(data: &[u8]) -> bool {
    data.is_ascii()
}

/// forEachSAN + parseSANExtension.
fn parse_san(value: &[u8]) -> GoResult<()> {
    let names = or(
        Der::new(value).read(SEQUENCE),
        "x509: invalid subject alternative names",
    )?;
    let mut names = Der::new(names);
    while !names.is_empty() {
        let name = or(names.read_any(), "x509: invalid subject alternative name")?;
        match name.tag {
            // rfc822Name [1]
            0x81 => ensure(is_ia5(name.contents), "x509: SAN rfc822Name is malformed")?,
            // dNSName [2]
            0x82 => ensure(is_ia5(name.contents), "x509: SAN dNSName is malformed")?,
            // uniformResourceIdentifier [6]
            0x86 => {
                ensure(
                    is_ia5(name.contents),
                    "x509: SAN uniformResourceIdentifier is malformed",
                )?;
                let host = or(url_parse_host(name.contents), "x509: cannot parse URI")?;
                ensure(
                    host.is_empty() || domain_name_valid(&host, false),
                    "x509: cannot parse URI: invalid domain",
                )?;
            }
            // iPAddress [7]
            0x87 => {
                ensure(
                    matches!(name.contents.len(), 4 | 16),
                    "x509: cannot parse IP address of this length",
                )?;
                if is_v4_mapped(name.contents) {
                    return Err(GoParseError::only(
                        "x509: SAN iPAddress contains IPv4-mapped IPv6 address",
                        Releases::From127,
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// domainNameValid (Go 1.25.5 parser.go): no trailing dot, no empty label,
/// only printable ASCII (33..=126); a constraint may start with one dot;
/// the empty string is accepted.
fn domain_name_valid(s: &[u8], constraint: bool) -> bool {
    if s.is_empty() {
        return true;
    }
    if s.last() == Some(&b'.') {
        return false;
    }
    let s = match s {
        [b'.', rest @ ..] if constraint => rest,
        _ => s,
    };
    s.split(|b| *b == b'.')
        .all(|label| !label.is_empty() && label.iter().all(|b| (33..=126).contains(b)))
}

/// domainToReverseLabels (verify.go): empty, or non-empty labels of
/// printable ASCII.
fn domain_to_reverse_labels_ok(s: &[u8]) -> bool {
    s.is_empty()
        || s.split(|b| *b == b'.')
            .all(|label| !label.is_empty() && label.iter().all(|b| (33..=126).contains(b)))
}

/// parseRFC2821Mailbox (verify.go): a local part (quoted, or dot-atom with
/// backslash escapes) followed by '@' and a domain; `Some(domain)` when
/// Go 1.25 takes it.
fn mailbox_domain(input: &[u8]) -> Option<&[u8]> {
    let mut rest = input;
    if rest.is_empty() {
        return None;
    }
    if rest.first() == Some(&b'"') {
        rest = rest.get(1..).unwrap_or_default();
        loop {
            let (&c, tail) = rest.split_first()?;
            rest = tail;
            match c {
                b'"' => break,
                b'\\' => {
                    let (&escaped, tail) = rest.split_first()?;
                    if matches!(escaped, 11 | 12 | 1..=9 | 14..=127) {
                        rest = tail;
                    } else {
                        return None;
                    }
                }
                11 | 12 | 32 | 33 | 127 | 1..=8 | 14..=31 | 35..=91 | 93..=126 => {}
                _ => return None,
            }
        }
    } else {
        let mut local = Vec::new();
        while let Some(&c) = rest.first() {
            let mut current = c;
            if c == b'\\' {
                rest = rest.get(1..).unwrap_or_default();
                match rest.first() {
                    None => return None,
                    Some(&escaped) => current = escaped,
                }
            } else if !(c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&c)) {
                break;
            }
            local.push(current);
            rest = rest.get(1..).unwrap_or_default();
        }
        if local.is_empty()
            || local.first() == Some(&b'.')
            || local.last() == Some(&b'.')
            || local.windows(2).any(|w| w == b"..")
        {
            return None;
        }
    }
    match rest.split_first() {
        Some((b'@', domain)) if domain_to_reverse_labels_ok(domain) => Some(domain),
        _ => None,
    }
}

/// A 16-byte address of the form ::ffff:a.b.c.d (`net.IP.To4` succeeds on
/// it), which Go 1.27 refuses in a SAN and in an IP constraint.
fn is_v4_mapped(ip: &[u8]) -> bool {
    ip.len() == 16
        && ip
            .get(..10)
            .is_some_and(|zeros| zeros.iter().all(|b| *b == 0))
        && ip.get(10..12) == Some(&[0xff, 0xff][..])
}

/// isValidIPMask: zero or more one bits followed by zero bits.
fn is_valid_ip_mask(mask: &[u8]) -> bool {
    let mut seen_zero = false;
    for &b in mask {
        if seen_zero {
            if b != 0 {
                return false;
            }
            continue;
        }
        match b {
            0x00 | 0x80 | 0xc0 | 0xe0 | 0xf0 | 0xf8 | 0xfc | 0xfe => seen_zero = true,
            0xff => {}
            _ => return false,
        }
    }
    true
}

/// parseNameConstraintsExtension (Go 1.25.5).
fn parse_name_constraints(value: &[u8]) -> GoResult<()> {
    const INVALID: &str = "x509: invalid NameConstraints extension";
    let mut outer = Der::new(value);
    let mut top = Der::new(or(outer.read(SEQUENCE), INVALID)?);
    ensure(outer.is_empty(), INVALID)?;
    let permitted = or(top.read_optional(context_constructed(0)), INVALID)?;
    let excluded = or(top.read_optional(context_constructed(1)), INVALID)?;
    ensure(top.is_empty(), INVALID)?;
    let permitted_empty = permitted.is_none_or(<[u8]>::is_empty);
    let excluded_empty = excluded.is_none_or(<[u8]>::is_empty);
    ensure(
        !(permitted_empty && excluded_empty),
        "x509: empty name constraints extension",
    )?;
    for subtrees in [permitted, excluded].into_iter().flatten() {
        let mut subtrees = Der::new(subtrees);
        while !subtrees.is_empty() {
            let mut subtree = Der::new(or(subtrees.read(SEQUENCE), INVALID)?);
            let base = or(subtree.read_any(), INVALID)?;
            let value = base.contents;
            match base.tag {
                // dNSName [2]
                0x82 => {
                    ensure(is_ia5(value), "x509: invalid constraint value")?;
                    ensure(
                        domain_name_valid(value, true),
                        "x509: failed to parse dnsName constraint",
                    )?;
                }
                // iPAddress [7]: address and mask
                0x87 => {
                    let mask = match value.len() {
                        8 => value.get(4..),
                        32 => value.get(16..),
                        _ => None,
                    };
                    let mask = or(
                        mask,
                        "x509: IP constraint contained value of invalid length",
                    )?;
                    ensure(
                        is_valid_ip_mask(mask),
                        "x509: IP constraint contained invalid mask",
                    )?;
                    if value.len() == 32 && value.get(..16).is_some_and(is_v4_mapped) {
                        return Err(GoParseError::only(
                            "x509: IP constraint contained IPv4-mapped IPv6 address",
                            Releases::From127,
                        ));
                    }
                }
                // rfc822Name [1]
                0x81 => {
                    ensure(is_ia5(value), "x509: invalid constraint value")?;
                    const BAD_MAILBOX: &str = "x509: failed to parse rfc822Name constraint";
                    match value.iter().position(|b| *b == b'@') {
                        Some(_) => {
                            let domain = mailbox_domain(value);
                            ensure(domain.is_some(), BAD_MAILBOX)?;
                            // Go 1.27's parseRFC2821Mailbox also refuses an
                            // '@' in the domain; 1.25 and 1.26 take it.
                            if domain.is_some_and(|d| d.contains(&b'@')) {
                                return Err(GoParseError::only(BAD_MAILBOX, Releases::From127));
                            }
                        }
                        None => ensure(domain_name_valid(value, true), BAD_MAILBOX)?,
                    }
                }
                // uniformResourceIdentifier [6]
                0x86 => {
                    ensure(is_ia5(value), "x509: invalid constraint value")?;
                    ensure(
                        !go_parse_ip(value),
                        "x509: failed to parse URI constraint: cannot be IP address",
                    )?;
                    ensure(
                        domain_name_valid(value, true),
                        "x509: failed to parse URI constraint",
                    )?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// net.ParseIP: a dotted IPv4 address (no leading zeros) or an IPv6 address
/// (no zone).
fn go_parse_ip(s: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(s) else {
        return false;
    };
    s.parse::<std::net::IpAddr>().is_ok()
}

/// The CRL distribution points extension (processExtensions, case 31).
fn parse_crl_distribution_points(value: &[u8]) -> GoResult<()> {
    const INVALID: &str = "x509: invalid CRL distribution point";
    let points = or(
        Der::new(value).read(SEQUENCE),
        "x509: invalid CRL distribution points",
    )?;
    let mut points = Der::new(points);
    while !points.is_empty() {
        let mut point = Der::new(or(points.read(SEQUENCE), INVALID)?);
        let Some(name) = or(point.read_optional(context_constructed(0)), INVALID)? else {
            continue;
        };
        let mut full_name = Der::new(or(Der::new(name).read(context_constructed(0)), INVALID)?);
        while full_name.peek(context(6)) {
            or(full_name.read(context(6)), INVALID)?;
        }
    }
    Ok(())
}

/// parseAuthorityKeyIdentifier: not critical, a SEQUENCE whose optional
/// keyIdentifier [0] is well-formed.
fn parse_authority_key_id(e: &Extension<'_>) -> GoResult<()> {
    const INVALID: &str = "x509: invalid authority key identifier";
    ensure(
        !e.critical,
        "x509: authority key identifier incorrectly marked critical",
    )?;
    let mut akid = Der::new(or(Der::new(e.value).read(SEQUENCE), INVALID)?);
    if akid.peek(context(0)) {
        or(akid.read(context(0)), INVALID)?;
    }
    Ok(())
}

/// Policy constraints (case 36): two optional [0]/[1] int64 values.
fn parse_policy_constraints(value: &[u8]) -> GoResult<()> {
    const INVALID: &str = "x509: invalid policy constraints extension";
    let mut seq = Der::new(or(Der::new(value).read(SEQUENCE), INVALID)?);
    for n in [0, 1] {
        if seq.peek(context(n)) {
            // ReadASN1Int64WithTag: an INTEGER's contents under an implicit tag.
            let contents = or(seq.read(context(n)), INVALID)?;
            or(i64_from_contents(contents), INVALID)?;
        }
    }
    Ok(())
}

/// parseExtKeyUsageExtension: a SEQUENCE of valid OIDs.
fn parse_ext_key_usage(value: &[u8]) -> GoResult<()> {
    const INVALID: &str = "x509: invalid extended key usages";
    let mut seq = Der::new(or(Der::new(value).read(SEQUENCE), INVALID)?);
    while !seq.is_empty() {
        or(seq.read_oid(), INVALID)?;
    }
    Ok(())
}

/// Subject key identifier (case 14): not critical, an OCTET STRING.
fn parse_subject_key_id(e: &Extension<'_>) -> GoResult<()> {
    ensure(
        !e.critical,
        "x509: subject key identifier incorrectly marked critical",
    )?;
    or(
        Der::new(e.value).read(OCTET_STRING),
        "x509: invalid subject key identifier",
    )?;
    Ok(())
}

/// parseCertificatePoliciesExtension: each PolicyInformation starts with a
/// distinct, valid OID.
fn parse_certificate_policies(value: &[u8]) -> GoResult<()> {
    const INVALID: &str = "x509: invalid certificate policies";
    let mut seq = Der::new(or(Der::new(value).read(SEQUENCE), INVALID)?);
    // A set, as Go's map (a scan per policy would be quadratic).
    let mut seen: HashSet<&[u8]> = HashSet::new();
    while !seq.is_empty() {
        let mut policy = Der::new(or(seq.read(SEQUENCE), INVALID)?);
        let oid = or(policy.read(OBJECT_IDENTIFIER), INVALID)?;
        ensure(seen.insert(oid), INVALID)?;
        // newOIDFromDER: non-empty, minimal base-128 arcs, not truncated
        // (arbitrary size: unlike cryptobyte, no 31-bit limit).
        ensure(oid_der_valid_any_size(oid), INVALID)?;
    }
    Ok(())
}

/// newOIDFromDER (oid.go): not empty, no arc starting with 0x80, the last
/// octet ends an arc.
fn oid_der_valid_any_size(der: &[u8]) -> bool {
    let mut start = true;
    for &b in der {
        if start && b == 0x80 {
            return false;
        }
        start = b & 0x80 == 0;
    }
    !der.is_empty() && start
}

/// Policy mappings (case 33): SEQUENCE OF SEQUENCE { OID, OID } (the OIDs
/// only need the right tag).
fn parse_policy_mappings(value: &[u8]) -> GoResult<()> {
    const INVALID: &str = "x509: invalid policy mappings extension";
    let mut seq = Der::new(or(Der::new(value).read(SEQUENCE), INVALID)?);
    while !seq.is_empty() {
        let mut mapping = Der::new(or(seq.read(SEQUENCE), INVALID)?);
        or(mapping.read(OBJECT_IDENTIFIER), INVALID)?;
        or(mapping.read(OBJECT_IDENTIFIER), INVALID)?;
    }
    Ok(())
}

/// Authority information access: not critical, SEQUENCE OF SEQUENCE
/// { method OID, location }, a URI location [6] well-formed.
fn parse_authority_info_access(e: &Extension<'_>) -> GoResult<()> {
    const INVALID: &str = "x509: invalid authority info access";
    ensure(
        !e.critical,
        "x509: authority info access incorrectly marked critical",
    )?;
    let mut seq = Der::new(or(Der::new(e.value).read(SEQUENCE), INVALID)?);
    while !seq.is_empty() {
        let mut access = Der::new(or(seq.read(SEQUENCE), INVALID)?);
        or(access.read_oid(), INVALID)?;
        if access.peek(context(6)) {
            or(access.read(context(6)), INVALID)?;
        }
    }
    Ok(())
}

/// parseAI: an OID, then optionally one element of any tag (the rest of the
/// SEQUENCE is not looked at).
fn parse_ai(ai: &[u8]) -> GoResult<Option<Element<'_>>> {
    let mut ai = Der::new(ai);
    or(ai.read_oid(), "x509: malformed OID")?;
    if ai.is_empty() {
        return Ok(None);
    }
    or(ai.read_any(), "x509: malformed parameters").map(Some)
}

/// The OID of an AlgorithmIdentifier already checked by `parse_ai`.
fn ai_oid(ai: &[u8]) -> &[u8] {
    Der::new(ai).read(OBJECT_IDENTIFIER).unwrap_or_default()
}

/// The SubjectPublicKeyInfo, and parsePublicKey for the algorithms Go
/// knows in 1.25 (RSA, DSA, ECDSA, Ed25519); others are kept unparsed.
fn parse_spki(spki: &[u8]) -> GoResult<()> {
    let mut spki = Der::new(or(Der::new(spki).read(SEQUENCE), "x509: malformed spki")?);
    let ai = or(
        spki.read(SEQUENCE),
        "x509: malformed public key algorithm identifier",
    )?;
    let params = parse_ai(ai)?;
    let (unused, key) = or(spki.read_bit_string(), "x509: malformed subjectPublicKey")?;
    let key = right_align(unused, key);
    let params_full: &[u8] = params.as_ref().map(|p| p.full).unwrap_or_default();
    match ai_oid(ai) {
        OID_RSA => {
            ensure(
                params_full == [NULL, 0x00],
                "x509: RSA key missing NULL parameters",
            )?;
            let mut rsa = Der::new(or(
                Der::new(&key).read(SEQUENCE),
                "x509: invalid RSA public key",
            )?);
            let modulus = or(rsa.read_big_int_sign(), "x509: invalid RSA modulus")?;
            let exponent = or(rsa.read_i64(), "x509: invalid RSA public exponent")?;
            ensure(modulus > 0, "x509: RSA modulus is not a positive number")?;
            ensure(
                exponent > 0,
                "x509: RSA public exponent is not a positive number",
            )?;
        }
        OID_EC_PUBLIC_KEY => {
            let curve = or(
                Der::new(params_full).read_oid(),
                "x509: invalid ECDSA parameters",
            )?;
            check_ec_point(curve, &key)?;
        }
        OID_ED25519 => {
            ensure(
                params_full.is_empty(),
                "x509: Ed25519 key encoded with illegal parameters",
            )?;
            ensure(key.len() == 32, "x509: wrong Ed25519 public key size")?;
        }
        OID_DSA => {
            let y = or(
                Der::new(&key).read_big_int_sign(),
                "x509: invalid DSA public key",
            )?;
            let mut p = Der::new(params_full);
            let mut dsa = Der::new(or(p.read(SEQUENCE), "x509: invalid DSA parameters")?);
            let mut signs = [y, 0, 0, 0];
            for sign in signs.iter_mut().skip(1) {
                *sign = or(dsa.read_big_int_sign(), "x509: invalid DSA parameters")?;
            }
            ensure(
                signs.iter().all(|s| *s > 0),
                "x509: zero or negative DSA parameter",
            )?;
        }
        _ => {}
    }
    Ok(())
}

/// asn1.BitString.RightAlign: shift out the unused bits.
fn right_align(unused: u8, bytes: &[u8]) -> Vec<u8> {
    if unused == 0 || bytes.is_empty() {
        return bytes.to_vec();
    }
    let shift = u32::from(unused);
    let mut out = Vec::with_capacity(bytes.len());
    let mut previous: u8 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let high = if i == 0 {
            0
        } else {
            previous.wrapping_shl(8 - shift)
        };
        out.push(high | (b >> shift));
        previous = b;
    }
    out
}

/// elliptic.Unmarshal on a named curve: an uncompressed point (0x04, X, Y)
/// of the curve's size that lies on the curve.
fn check_ec_point(curve: &[u8], point: &[u8]) -> GoResult<()> {
    const BAD_POINT: &str = "x509: failed to unmarshal elliptic curve point";
    let (size, algorithm) = match curve {
        OID_P224 => (28, None),
        OID_P256 => (32, Some(&aws_lc_rs::agreement::ECDH_P256)),
        OID_P384 => (48, Some(&aws_lc_rs::agreement::ECDH_P384)),
        OID_P521 => (66, Some(&aws_lc_rs::agreement::ECDH_P521)),
        _ => return Err(GoParseError::new("x509: unsupported elliptic curve")),
    };
    ensure(
        point.len() == 1 + 2 * size && point.first() == Some(&0x04),
        BAD_POINT,
    )?;
    // On the curve: aws-lc decodes the point with EC_POINT_oct2point, which
    // refuses points off the curve (P-224 is not offered by aws-lc-rs; its
    // length and form are checked).
    if let Some(algorithm) = algorithm {
        let peer = aws_lc_rs::agreement::UnparsedPublicKey::new(algorithm, point);
        aws_lc_rs::agreement::ParsedPublicKey::try_from(&peer)
            .map_err(|_| GoParseError::new(BAD_POINT))?;
    }
    Ok(())
}

/// parseName: SEQUENCE OF SET OF SEQUENCE { OID, value }, each value a
/// valid string. SET ordering is not checked, as in Go.
fn parse_name(raw: &[u8]) -> GoResult<()> {
    let mut rdns = Der::new(or(
        Der::new(raw).read(SEQUENCE),
        "x509: invalid RDNSequence",
    )?);
    while !rdns.is_empty() {
        let mut set = Der::new(or(rdns.read(SET), "x509: invalid RDNSequence")?);
        while !set.is_empty() {
            let mut atav = Der::new(or(
                set.read(SEQUENCE),
                "x509: invalid RDNSequence: invalid attribute",
            )?);
            or(
                atav.read_oid(),
                "x509: invalid RDNSequence: invalid attribute type",
            )?;
            parse_attribute_value(&mut atav)?;
        }
    }
    Ok(())
}

/// The attribute value. Go 1.25 and 1.26 (parseName + parseASN1String) take
/// one of six string types, valid for its type, and refuse any other type.
/// Go 1.27 (readASN1Any) also takes a well-formed INTEGER (fitting 64 bits),
/// BIT STRING, OID, time or BOOLEAN, and any other element as it is (OCTET
/// STRING, NULL, VisibleString, a constructed string...). A non-string value
/// is refused here; its `releases` say whether Go 1.27 takes it.
fn parse_attribute_value(der: &mut Der<'_>) -> GoResult<()> {
    const INVALID_VALUE: &str = "x509: invalid RDNSequence: invalid attribute value";
    let value = or(der.read_any(), INVALID_VALUE)?;
    let string_valid = match value.tag {
        T61_STRING => Some(true),
        PRINTABLE_STRING => Some(value.contents.iter().all(|b| is_printable(*b))),
        UTF8_STRING => Some(std::str::from_utf8(value.contents).is_ok()),
        BMP_STRING => Some(bmp_string_valid(value.contents)),
        IA5_STRING => Some(is_ia5(value.contents)),
        NUMERIC_STRING => Some(
            value
                .contents
                .iter()
                .all(|b| b.is_ascii_digit() || *b == b' '),
        ),
        _ => None,
    };
    if let Some(valid) = string_valid {
        return ensure(valid, INVALID_VALUE);
    }
    let mut element = Der::new(value.full);
    let taken_by_go_127 = match value.tag {
        INTEGER => element.read_i64().is_some(),
        BIT_STRING => element.read_bit_string().is_some(),
        OBJECT_IDENTIFIER => element.read_oid().is_some(),
        UTC_TIME | GENERALIZED_TIME => read_time(&mut element).is_ok(),
        BOOLEAN => element.read_bool().is_some(),
        _ => true,
    };
    let releases = if taken_by_go_127 {
        Releases::UpTo126
    } else {
        Releases::All
    };
    Err(GoParseError::only(INVALID_VALUE, releases))
}

/// isPrintable (parser.go): the PrintableString set plus '*' and '&',
/// which Go tolerates.
fn is_printable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"'()+,-./ :=?*&".contains(&b)
}

/// BMPString: UCS-2, even length, an optional 0x0000 terminator, no
/// surrogates or noncharacters (0xFFFE, 0xFFFF, 0xFDD0..=0xFDEF).
fn bmp_string_valid(value: &[u8]) -> bool {
    if !value.len().is_multiple_of(2) {
        return false;
    }
    let value = value.strip_suffix(&[0, 0]).unwrap_or(value);
    value.chunks_exact(2).all(|pair| {
        let point = pair.iter().fold(0u16, |acc, b| (acc << 8) | u16::from(*b));
        !(point == 0xfffe
            || point == 0xffff
            || (0xfdd0..=0xfdef).contains(&point)
            || (0xd800..=0xdfff).contains(&point))
    })
}

/// readASN1Time: a UTCTime or GeneralizedTime as cryptobyte accepts them.
fn read_time(der: &mut Der<'_>) -> GoResult<()> {
    if der.peek(UTC_TIME) {
        let text = or(der.read(UTC_TIME), "x509: malformed UTCTime")?;
        ensure(utc_time_valid(text), "x509: malformed UTCTime")
    } else if der.peek(GENERALIZED_TIME) {
        let text = or(
            der.read(GENERALIZED_TIME),
            "x509: malformed GeneralizedTime",
        )?;
        ensure(
            generalized_time_valid(text),
            "x509: malformed GeneralizedTime",
        )
    } else {
        Err(GoParseError::new("x509: unsupported time format"))
    }
}

/// Two ASCII digits as a number.
fn two_digits(text: &[u8]) -> Option<u32> {
    match text {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => None,
    }
}

/// cryptobyte parses times with Go's time.Parse and then requires that
/// formatting the result gives back the same text. The net effect: fixed
/// digits, real calendar dates, hours below 24, minutes and seconds below
/// 60, no fractional seconds, and a zone that is "Z" or a non-zero offset
/// ±hhmm (hh up to 24, mm below 60: "+0000" formats as "Z").
fn date_time_valid(year: i32, digits: &[u8], zone: &[u8]) -> bool {
    let field = |i: usize| digits.get(i..i + 2).and_then(two_digits);
    let (Some(month), Some(day), Some(hour), Some(minute)) =
        (field(0), field(2), field(4), field(6))
    else {
        return false;
    };
    let second = match digits.len() {
        8 => Some(0),
        10 => field(8),
        _ => None,
    };
    let Some(second) = second else { return false };
    let date_ok = u8::try_from(month)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .zip(u8::try_from(day).ok())
        .is_some_and(|(m, d)| time::Date::from_calendar_date(year, m, d).is_ok());
    let zone_ok = match zone {
        b"Z" => true,
        [sign, rest @ ..] if *sign == b'+' || *sign == b'-' => {
            match (
                rest.get(0..2).and_then(two_digits),
                rest.get(2..4).and_then(two_digits),
            ) {
                (Some(h), Some(m)) if rest.len() == 4 => h <= 24 && m < 60 && (h, m) != (0, 0),
                _ => false,
            }
        }
        _ => false,
    };
    date_ok && zone_ok && hour < 24 && minute < 60 && second < 60
}

/// Where the zone starts: the first byte that is not a digit.
fn split_zone(text: &[u8]) -> (&[u8], &[u8]) {
    let at = text
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(at)
}

/// ReadASN1UTCTime: "YYMMDDhhmmssZ" or, as Go also accepts,
/// "YYMMDDhhmmZ"; YY below 50 is 20YY.
fn utc_time_valid(text: &[u8]) -> bool {
    let (digits, zone) = split_zone(text);
    if digits.len() != 10 && digits.len() != 12 {
        return false;
    }
    let Some(yy) = digits.get(0..2).and_then(two_digits) else {
        return false;
    };
    let year = if yy < 50 { 2000 } else { 1900 } + i32::try_from(yy).unwrap_or_default();
    digits
        .get(2..)
        .is_some_and(|rest| date_time_valid(year, rest, zone))
}

/// ReadASN1GeneralizedTime: "YYYYMMDDhhmmssZ" (or a ±hhmm offset).
fn generalized_time_valid(text: &[u8]) -> bool {
    let (digits, zone) = split_zone(text);
    if digits.len() != 14 {
        return false;
    }
    let year = digits
        .get(0..4)
        .and_then(|y| std::str::from_utf8(y).ok())
        .and_then(|y| y.parse::<i32>().ok());
    match (year, digits.get(4..)) {
        (Some(year), Some(rest)) => date_time_valid(year, rest, zone),
        _ => false,
    }
}

/// Check a DER CRL as Go's `x509.ParseRevocationList` does; `Err` exactly
/// when Go returns an error (Go 1.25).
pub(crate) fn check_crl(der: &[u8]) -> Result<(), GoParseError> {
    const MALFORMED: &str = "x509: malformed crl";
    // Bytes after the outer SEQUENCE are ignored by ParseRevocationList.
    let raw = or(Der::new(der).read(SEQUENCE), MALFORMED)?;
    let mut crl = Der::new(raw);
    let tbs = or(crl.read_element(SEQUENCE), "x509: malformed tbs crl")?;
    let mut tbs = Der::new(or(Der::new(tbs).read(SEQUENCE), "x509: malformed tbs crl")?);

    // Version: required, v2 (1).
    ensure(tbs.peek(INTEGER), "x509: unsupported crl version")?;
    let version = or(tbs.read_i64(), MALFORMED)?;
    ensure(version == 1, "x509: unsupported crl version")?;

    let sig_ai = or(
        tbs.read_element(SEQUENCE),
        "x509: malformed signature algorithm identifier",
    )?;
    let sig_ai = or(
        Der::new(sig_ai).read(SEQUENCE),
        "x509: malformed signature algorithm identifier",
    )?;
    let outer_sig_ai = or(crl.read(SEQUENCE), "x509: malformed algorithm identifier")?;
    ensure(
        outer_sig_ai == sig_ai,
        "x509: inner and outer signature algorithm identifiers don't match",
    )?;
    parse_ai(sig_ai)?;
    or(crl.read_bit_string(), "x509: malformed signature")?;

    let issuer = or(tbs.read_element(SEQUENCE), "x509: malformed issuer")?;
    parse_name(issuer)?;
    read_time(&mut tbs)?; // thisUpdate
    if tbs.peek(GENERALIZED_TIME) || tbs.peek(UTC_TIME) {
        read_time(&mut tbs)?; // nextUpdate
    }

    if tbs.peek(SEQUENCE) {
        let mut revoked = Der::new(or(tbs.read(SEQUENCE), MALFORMED)?);
        while !revoked.is_empty() {
            let entry = or(revoked.read_element(SEQUENCE), MALFORMED)?;
            let mut entry = Der::new(or(Der::new(entry).read(SEQUENCE), MALFORMED)?);
            or(entry.read_big_int_sign(), "x509: malformed serial number")?;
            read_time(&mut entry)?;
            let extensions = or(entry.read_optional(SEQUENCE), "x509: malformed extensions")?;
            let mut extensions = Der::new(extensions.unwrap_or_default());
            while !extensions.is_empty() {
                let extension = or(extensions.read(SEQUENCE), "x509: malformed extension")?;
                let extension = parse_extension(extension)?;
                if extension.oid == OID_CRL_REASON {
                    or(
                        Der::new(extension.value).read_enum(),
                        "x509: malformed reasonCode extension",
                    )?;
                }
            }
        }
    }

    let extensions = or(
        tbs.read_optional(context_constructed(0)),
        "x509: malformed extensions",
    )?;
    if let Some(extensions) = extensions {
        let list = or(
            Der::new(extensions).read(SEQUENCE),
            "x509: malformed extensions",
        )?;
        let mut list = Der::new(list);
        while !list.is_empty() {
            let extension = or(list.read(SEQUENCE), "x509: malformed extension")?;
            let extension = parse_extension(extension)?;
            if extension.oid == OID_AKI {
                parse_authority_key_id(&extension)?;
            } else if extension.oid == OID_CRL_NUMBER {
                or(
                    Der::new(extension.value).read_big_int_sign(),
                    "x509: malformed crl number",
                )?;
            }
        }
    }
    Ok(())
}

/// url.Parse (net/url, Go 1.25) as parseSANExtension calls it: `Some(host)`
/// (the unescaped host, port included) when Go parses the URI, `None` when
/// it returns an error.
fn url_parse_host(raw: &[u8]) -> Option<Vec<u8>> {
    let (url, fragment) = split_once(raw, b'#');
    // stringContainsCTLByte: checked on the part before the fragment only.
    if url.iter().any(|b| *b < b' ' || *b == 0x7f) {
        return None;
    }
    if let Some(fragment) = fragment {
        unescape(fragment, Mode::Other)?;
    }
    if url == b"*" {
        return Some(Vec::new());
    }
    let (scheme, rest) = get_scheme(url)?;
    let rest = if rest.ends_with(b"?") && rest.iter().filter(|b| **b == b'?').count() == 1 {
        rest.get(..rest.len() - 1)?
    } else {
        split_once(rest, b'?').0
    };
    if !rest.starts_with(b"/") {
        if !scheme.is_empty() {
            // An opaque URI: nothing more is parsed.
            return Some(Vec::new());
        }
        let segment = split_once(rest, b'/').0;
        if segment.contains(&b':') {
            return None;
        }
    }
    let mut host = Vec::new();
    let mut path = rest;
    if (!scheme.is_empty() || !rest.starts_with(b"///")) && rest.starts_with(b"//") {
        let authority_and_path = rest.get(2..)?;
        let (authority, tail) = match authority_and_path.iter().position(|b| *b == b'/') {
            Some(i) => authority_and_path.split_at(i),
            None => (authority_and_path, &[][..]),
        };
        path = tail;
        host = parse_authority(authority)?;
    }
    unescape(path, Mode::Other)?;
    Some(host)
}

/// The first `sep` splits the text; `None` when it is absent.
fn split_once(text: &[u8], sep: u8) -> (&[u8], Option<&[u8]>) {
    match text.iter().position(|b| *b == sep) {
        Some(i) => (text.get(..i).unwrap_or_default(), text.get(i + 1..)),
        None => (text, None),
    }
}

/// getScheme: letters, then letters, digits, '+', '-', '.' up to ':'; a
/// leading ':' is an error ("missing protocol scheme").
fn get_scheme(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    for (i, &c) in raw.iter().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return None,
            b':' => return Some((raw.get(..i)?, raw.get(i + 1..)?)),
            _ => return Some((&[], raw)),
        }
    }
    Some((&[], raw))
}

/// parseAuthority: optional userinfo before the last '@', then the host.
fn parse_authority(authority: &[u8]) -> Option<Vec<u8>> {
    let at = authority.iter().rposition(|b| *b == b'@');
    let host_part = match at {
        Some(i) => authority.get(i + 1..)?,
        None => authority,
    };
    let host = parse_host(host_part)?;
    if let Some(i) = at {
        let userinfo = authority.get(..i)?;
        let valid = userinfo
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(c));
        if !valid {
            return None;
        }
        let (user, password) = split_once(userinfo, b':');
        unescape(user, Mode::Other)?;
        if let Some(password) = password {
            unescape(password, Mode::Other)?;
        }
    }
    Some(host)
}

/// parseHost: an IP literal in brackets (with an optional zone and port),
/// or a host with an optional numeric port; %-escapes checked per RFC 3986.
fn parse_host(host: &[u8]) -> Option<Vec<u8>> {
    if let Some(open) = host.iter().rposition(|b| *b == b'[') {
        let close = host.iter().rposition(|b| *b == b']')?;
        let colon_port = host.get(close + 1..)?;
        if !valid_optional_port(colon_port) {
            return None;
        }
        let port = unescape(colon_port, Mode::Host)?;
        // A ']' before the last '[' makes Go slice out of range; refuse it.
        let hostname = host.get(open + 1..close)?;
        let mut unescaped = match find(hostname, b"%25") {
            Some(zone_at) => {
                let mut part = unescape(hostname.get(..zone_at)?, Mode::Host)?;
                part.extend(unescape(hostname.get(zone_at..)?, Mode::Zone)?);
                part
            }
            None => unescape(hostname, Mode::Host)?,
        };
        // netip.ParseAddr: an IPv6 address, with a non-empty zone after '%'.
        let text = std::str::from_utf8(&unescaped).ok()?;
        let (address, zone) = match text.split_once('%') {
            Some((address, zone)) => (address, Some(zone)),
            None => (text, None),
        };
        if zone.is_some_and(str::is_empty) {
            return None;
        }
        address.parse::<std::net::Ipv6Addr>().ok()?;
        let mut out = vec![b'['];
        out.append(&mut unescaped);
        out.push(b']');
        out.extend(port);
        return Some(out);
    }
    if let Some(colon) = host.iter().rposition(|b| *b == b':') {
        if !valid_optional_port(host.get(colon..)?) {
            return None;
        }
    }
    unescape(host, Mode::Host)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// validOptionalPort: empty, or ':' followed by digits.
fn valid_optional_port(port: &[u8]) -> bool {
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Host,
    Zone,
    /// Path, fragment, user and password: only %-escapes are checked.
    Other,
}

/// shouldEscape(c, encodeHost/encodeZone) for ASCII bytes.
fn should_escape_host(c: u8) -> bool {
    !(c.is_ascii_alphanumeric() || b"!$&'()*+,;=:[]<>\"-_.~".contains(&c))
}

/// unescape: every '%' starts two hex digits; in a host only non-ASCII
/// bytes (or "%25") may be escaped and ASCII bytes that need escaping are
/// refused; in a zone, escapes of such bytes are refused.
fn unescape(s: &[u8], mode: Mode) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'%' {
            let hi = s.get(i + 1).and_then(|b| (*b as char).to_digit(16))?;
            let lo = s.get(i + 2).and_then(|b| (*b as char).to_digit(16))?;
            let is_25 = s.get(i..i + 3) == Some(b"%25");
            let v = u8::try_from(hi * 16 + lo).ok()?;
            if mode == Mode::Host && hi < 8 && !is_25 {
                return None;
            }
            if mode == Mode::Zone && !is_25 && v != b' ' && should_escape_host(v) {
                return None;
            }
            out.push(v);
            i += 3;
        } else {
            if mode != Mode::Other && c < 0x80 && should_escape_host(c) {
                return None;
            }
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Envoy's parser (BoringSSL): strict DER, element by element.
//
// Envoy parses the certificates and CRLs istiod hands out with BoringSSL,
// whose X.509 parser (crypto/x509/x_x509.c, x_name.c, x_crl.c, x_exten.c,
// built on the ASN1_SEQUENCE templates of crypto/asn1/tasn_dec.c) takes
// exactly the elements RFC 5280 4.1 and 5.1 define: no extra field in a
// SEQUENCE, no trailing element, a name made of non-empty SETs of
// { type, value }. Go's parser skips some of that (fields after the
// extensions, extra elements at the end of a SEQUENCE), so a certificate
// istiod loads may still break every workload connection. The checks below
// restate the oracle's model of BoringSSL (oracle/strict.go) rule by rule.

/// Why Envoy (BoringSSL) refuses a certificate or CRL that Go may accept.
pub(crate) type EnvoyParseError = &'static str;

/// The universal tag number of an identifier octet, `None` when the octet
/// is not of the universal class (the constructed bit is ignored, as
/// `encoding/asn1`'s `RawValue` comparison in the oracle does).
fn universal(tag: u8) -> Option<u8> {
    (tag & 0xc0 == 0).then_some(tag & 0x1f)
}

fn is_universal(e: &Element<'_>, number: u8) -> bool {
    universal(e.tag) == Some(number)
}

fn is_context(e: &Element<'_>, number: u8) -> bool {
    e.tag & 0xc0 == 0x80 && e.tag & 0x1f == number
}

fn is_time(e: &Element<'_>) -> bool {
    is_universal(e, UTC_TIME) || is_universal(e, GENERALIZED_TIME)
}

/// The elements inside `contents`, which must be exactly a run of elements.
fn elements(contents: &[u8]) -> Option<Vec<Element<'_>>> {
    let mut der = Der::new(contents);
    let mut out = Vec::new();
    while !der.is_empty() {
        out.push(der.read_any()?);
    }
    Some(out)
}

/// Exactly one element, nothing after it.
fn exactly_one(bytes: &[u8]) -> Option<Element<'_>> {
    let mut der = Der::new(bytes);
    let e = der.read_any()?;
    der.is_empty().then_some(e)
}

/// The elements of a constructed SEQUENCE (or SET).
fn sequence_of<'a>(
    e: &Element<'a>,
    tag: u8,
    reason: EnvoyParseError,
) -> Result<Vec<Element<'a>>, EnvoyParseError> {
    if e.tag != tag {
        return Err(reason);
    }
    elements(e.contents).ok_or(reason)
}

/// Name: SEQUENCE OF SET OF SEQUENCE { OID, value } (x_name.c), every SET
/// non-empty.
fn envoy_name(e: &Element<'_>, what: Names) -> Result<(), EnvoyParseError> {
    for rdn in sequence_of(e, SEQUENCE, what.malformed)? {
        let attributes = sequence_of(&rdn, SET, what.malformed)?;
        if attributes.is_empty() {
            return Err(what.empty_rdn);
        }
        for attribute in attributes {
            let parts = sequence_of(&attribute, SEQUENCE, what.attribute)?;
            match parts.as_slice() {
                [kind, _] if is_universal(kind, OBJECT_IDENTIFIER) => {}
                _ => return Err(what.attribute),
            }
        }
    }
    Ok(())
}

/// The error texts for one kind of name (issuer, subject, CRL issuer).
#[derive(Clone, Copy)]
struct Names {
    malformed: EnvoyParseError,
    empty_rdn: EnvoyParseError,
    attribute: EnvoyParseError,
}

const ISSUER_NAME: Names = Names {
    malformed: "the issuer name is not a SEQUENCE OF SET OF attributes",
    empty_rdn: "the issuer name has an empty RDN",
    attribute: "an issuer name attribute is not { type, value }",
};
const SUBJECT_NAME: Names = Names {
    malformed: "the subject name is not a SEQUENCE OF SET OF attributes",
    empty_rdn: "the subject name has an empty RDN",
    attribute: "a subject name attribute is not { type, value }",
};
const CRL_ISSUER: Names = Names {
    malformed: "the CRL issuer name is not a SEQUENCE OF SET OF attributes",
    empty_rdn: "the CRL issuer name has an empty RDN",
    attribute: "a CRL issuer name attribute is not { type, value }",
};

/// AlgorithmIdentifier: SEQUENCE { OID, parameters OPTIONAL }.
fn envoy_algorithm(e: &Element<'_>, reason: EnvoyParseError) -> Result<(), EnvoyParseError> {
    match sequence_of(e, SEQUENCE, reason)?.as_slice() {
        [oid] | [oid, _] if is_universal(oid, OBJECT_IDENTIFIER) => Ok(()),
        _ => Err(reason),
    }
}

/// The contents of the [0]/[3] EXPLICIT wrapper: exactly one SEQUENCE OF
/// Extension, each exactly { OID, BOOLEAN OPTIONAL, OCTET STRING } (x_exten.c).
fn envoy_extensions(wrapper: &Element<'_>) -> Result<(), EnvoyParseError> {
    const MALFORMED: EnvoyParseError = "the extensions are not one SEQUENCE OF Extension";
    let inner = exactly_one(wrapper.contents).ok_or(MALFORMED)?;
    for extension in sequence_of(&inner, SEQUENCE, MALFORMED)? {
        const ENTRY: EnvoyParseError = "an extension is not { extnID, critical, extnValue }";
        match sequence_of(&extension, SEQUENCE, ENTRY)?.as_slice() {
            [id, value]
                if is_universal(id, OBJECT_IDENTIFIER) && is_universal(value, OCTET_STRING) => {}
            [id, critical, value]
                if is_universal(id, OBJECT_IDENTIFIER)
                    && is_universal(critical, BOOLEAN)
                    && is_universal(value, OCTET_STRING) => {}
            _ => return Err(ENTRY),
        }
    }
    Ok(())
}

/// The signed envelope: SEQUENCE { tbs, algorithm, BIT STRING } and
/// nothing after it; returns the TBS element.
fn envoy_signed(der: &[u8]) -> Result<Element<'_>, EnvoyParseError> {
    const MALFORMED: EnvoyParseError =
        "it is not exactly one SEQUENCE { tbs, signatureAlgorithm, signature }";
    let outer = exactly_one(der).ok_or(MALFORMED)?;
    let mut parts = sequence_of(&outer, SEQUENCE, MALFORMED)?.into_iter();
    let (Some(tbs), Some(algorithm), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MALFORMED);
    };
    if !is_universal(&signature, BIT_STRING) {
        return Err(MALFORMED);
    }
    envoy_algorithm(
        &algorithm,
        "the signatureAlgorithm is not { algorithm, parameters }",
    )?;
    Ok(tbs)
}

/// An RSA subjectPublicKey is exactly SEQUENCE { n, e } (BoringSSL's
/// `RSA_parse_public_key` refuses trailing bytes; Go ignores them).
fn envoy_rsa_key(algorithm: &Element<'_>, key: &Element<'_>) -> Result<(), EnvoyParseError> {
    const MALFORMED: EnvoyParseError =
        "the RSA subjectPublicKey is not exactly { modulus, publicExponent }";
    let is_rsa = elements(algorithm.contents)
        .and_then(|parts| parts.into_iter().next())
        .is_some_and(|oid| oid.tag == OBJECT_IDENTIFIER && oid.contents == OID_RSA);
    if !is_rsa {
        return Ok(());
    }
    let (unused, bytes) = or(
        Der::new(key.full).read_bit_string(),
        "x509: malformed subjectPublicKey",
    )
    .map_err(|e| e.reason())?;
    if unused != 0 {
        return Err(MALFORMED);
    }
    let inner = exactly_one(bytes).ok_or(MALFORMED)?;
    match sequence_of(&inner, SEQUENCE, MALFORMED)?.as_slice() {
        [n, e] if is_universal(n, INTEGER) && is_universal(e, INTEGER) => Ok(()),
        _ => Err(MALFORMED),
    }
}

/// Check a DER certificate as Envoy's BoringSSL parses it; `Err` with the
/// rule broken (never a value from the input).
pub(crate) fn check_envoy_certificate(der: &[u8]) -> Result<(), EnvoyParseError> {
    let tbs = envoy_signed(der)?;
    let fields = sequence_of(&tbs, SEQUENCE, "the tbsCertificate is not a SEQUENCE")?;
    let mut fields = fields.iter().peekable();
    if let Some(version) = fields.next_if(|f| is_context(f, 0)) {
        exactly_one(version.contents).ok_or("the version is not exactly one INTEGER")?;
    }
    let (Some(serial), Some(signature), Some(issuer), Some(validity), Some(subject), Some(spki)) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err("the tbsCertificate lacks fields");
    };
    if !is_universal(serial, INTEGER) {
        return Err("the serialNumber is not an INTEGER");
    }
    envoy_algorithm(
        signature,
        "the tbsCertificate signature is not { algorithm, parameters }",
    )?;
    envoy_name(issuer, ISSUER_NAME)?;
    const VALIDITY: EnvoyParseError = "the validity is not { notBefore, notAfter }";
    match sequence_of(validity, SEQUENCE, VALIDITY)?.as_slice() {
        [not_before, not_after] if is_time(not_before) && is_time(not_after) => {}
        _ => return Err(VALIDITY),
    }
    envoy_name(subject, SUBJECT_NAME)?;
    const SPKI: EnvoyParseError = "the subjectPublicKeyInfo is not { algorithm, subjectPublicKey }";
    match sequence_of(spki, SEQUENCE, SPKI)?.as_slice() {
        [algorithm, key] if is_universal(key, BIT_STRING) => {
            envoy_algorithm(
                algorithm,
                "the subjectPublicKeyInfo algorithm is not { algorithm, parameters }",
            )?;
            envoy_rsa_key(algorithm, key)?;
        }
        _ => return Err(SPKI),
    }
    // issuerUniqueID [1], subjectUniqueID [2], extensions [3].
    let _ = fields.next_if(|f| is_context(f, 1));
    let _ = fields.next_if(|f| is_context(f, 2));
    if let Some(extensions) = fields.next_if(|f| is_context(f, 3)) {
        envoy_extensions(extensions)?;
    }
    ensure(fields.next().is_none(), "")
        .map_err(|_| "the tbsCertificate has fields after the extensions")
}

/// Check a DER CRL as Envoy's BoringSSL parses it (x_crl.c).
pub(crate) fn check_envoy_crl(der: &[u8]) -> Result<(), EnvoyParseError> {
    let tbs = envoy_signed(der)?;
    let fields = sequence_of(&tbs, SEQUENCE, "the tbsCertList is not a SEQUENCE")?;
    let mut fields = fields.iter().peekable();
    let _ = fields.next_if(|f| is_universal(f, INTEGER));
    let (Some(signature), Some(issuer), Some(this_update)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err("the tbsCertList lacks fields");
    };
    envoy_algorithm(
        signature,
        "the CRL's inner signature is not { algorithm, parameters }",
    )?;
    envoy_name(issuer, CRL_ISSUER)?;
    if !is_time(this_update) {
        return Err("the CRL's thisUpdate is not a time");
    }
    let _ = fields.next_if(|f| is_time(f));
    if let Some(revoked) = fields.next_if(|f| f.tag == SEQUENCE) {
        const ENTRY: EnvoyParseError = "a revoked entry is not { serial, date, extensions }";
        for entry in sequence_of(
            revoked,
            SEQUENCE,
            "the revokedCertificates are not a SEQUENCE",
        )? {
            match sequence_of(&entry, SEQUENCE, ENTRY)?.as_slice() {
                [serial, date] if is_universal(serial, INTEGER) && is_time(date) => {}
                [serial, date, extensions] if is_universal(serial, INTEGER) && is_time(date) => {
                    sequence_of(extensions, SEQUENCE, ENTRY)?;
                }
                _ => return Err(ENTRY),
            }
        }
    }
    if let Some(extensions) = fields.next_if(|f| is_context(f, 0)) {
        envoy_extensions(extensions)?;
    }
    ensure(fields.next().is_none(), "")
        .map_err(|_| "the tbsCertList has fields after the extensions")
}

#[cfg(test)]
mod tests {
    //! Each case takes a certificate or CRL that meshca issued (ECDSA
    //! P-256, pinned time), rebuilds it with one field changed, and asserts
    //! Go's verdict. Parsing does not check signatures, so the rebuilt TBS
    //! is not re-signed.
    use super::*;
    use std::sync::OnceLock;

    /// One DER element: identifier octet, `der`-encoded length, contents.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let length = Length::try_from(contents.len()).expect("length");
        let mut buf = [0u8; 8];
        let encoded = der::Encode::encode_to_slice(&length, &mut buf).expect("encode length");
        let mut out = vec![tag];
        out.extend_from_slice(encoded);
        out.extend_from_slice(contents);
        out
    }

    fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(SEQUENCE, &parts.concat())
    }

    fn oid(contents: &[u8]) -> Vec<u8> {
        tlv(OBJECT_IDENTIFIER, contents)
    }

    /// The elements inside an element's contents.
    fn children(contents: &[u8]) -> Vec<Vec<u8>> {
        let mut der = Der::new(contents);
        let mut out = Vec::new();
        while !der.is_empty() {
            out.push(der.read_any().expect("well-formed fixture").full.to_vec());
        }
        out
    }

    fn contents(full: &[u8]) -> Vec<u8> {
        Der::new(full)
            .read_any()
            .expect("element")
            .contents
            .to_vec()
    }

    struct Fixtures {
        root: Vec<u8>,
        intermediate: Vec<u8>,
        crl: Vec<u8>,
    }

    fn fixtures() -> &'static Fixtures {
        static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
        FIXTURES.get_or_init(|| {
            let now = time::macros::datetime!(2026-01-01 00:00 UTC);
            let root_params = crate::RootParams {
                key_type: crate::KeyType::EcdsaP256,
                ..Default::default()
            };
            let root = crate::RootCa::generate(&root_params, now).expect("root");
            let key = crate::PrivateKey::generate(crate::KeyType::EcdsaP256).expect("key");
            let issued = root
                .issue_intermediate("cluster1", &crate::IntermediateParams::default(), key, now)
                .expect("intermediate");
            let intermediate = pem::parse(issued.ca.cert_pem())
                .expect("pem")
                .contents()
                .to_vec();
            let revoked =
                crate::Revocation::new(issued.ca.serial(), now, crate::Reason::KeyCompromise);
            let crl_pem = root.crl(None, &[revoked], now, 7).expect("crl");
            let crl = pem::parse(crl_pem).expect("pem").contents().to_vec();
            Fixtures {
                root: root.cert_der().to_vec(),
                intermediate,
                crl,
            }
        })
    }

    /// A certificate taken apart: the TBS elements, the outer
    /// AlgorithmIdentifier and the signature.
    #[derive(Clone)]
    struct Cert {
        tbs: Vec<Vec<u8>>,
        outer: Vec<Vec<u8>>,
    }

    // Positions in a v3 TBS.
    const VERSION: usize = 0;
    const SERIAL: usize = 1;
    const SIG_AI: usize = 2;
    const ISSUER: usize = 3;
    const VALIDITY: usize = 4;
    const SUBJECT: usize = 5;
    const SPKI: usize = 6;
    const EXTENSIONS: usize = 7;

    impl Cert {
        fn intermediate() -> Self {
            Self::parse(&fixtures().intermediate)
        }

        fn parse(der: &[u8]) -> Self {
            let outer = children(&contents(der));
            let tbs = children(&contents(&outer[0]));
            Self { tbs, outer }
        }

        fn der(&self) -> Vec<u8> {
            let tbs = tlv(SEQUENCE, &self.tbs.concat());
            let mut outer = self.outer.clone();
            outer[0] = tbs;
            tlv(SEQUENCE, &outer.concat())
        }

        fn with(mut self, index: usize, element: Vec<u8>) -> Self {
            self.tbs[index] = element;
            self
        }

        /// Set both signature AlgorithmIdentifiers.
        fn with_sig_ai(mut self, ai: Vec<u8>) -> Self {
            self.tbs[SIG_AI] = ai.clone();
            self.outer[1] = ai;
            self
        }

        fn extensions(&self) -> Vec<Vec<u8>> {
            children(&contents(&contents(&self.tbs[EXTENSIONS])))
        }

        fn with_extensions(self, extensions: &[Vec<u8>]) -> Self {
            let list = tlv(SEQUENCE, &extensions.concat());
            self.with(EXTENSIONS, tlv(context_constructed(3), &list))
        }

        /// Replace the extension with this OID, or append it.
        fn with_extension(self, new: Vec<u8>) -> Self {
            let new_oid = children(&contents(&new))[0].clone();
            let mut list = self.extensions();
            match list
                .iter()
                .position(|e| children(&contents(e))[0] == new_oid)
            {
                Some(i) => list[i] = new,
                None => list.push(new),
            }
            self.with_extensions(&list)
        }

        fn check(&self) -> GoResult<()> {
            check_certificate(&self.der())
        }
    }

    fn ext(id: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
        let flag = if critical {
            tlv(BOOLEAN, &[0xff])
        } else {
            Vec::new()
        };
        seq(&[&oid(id), &flag, &tlv(OCTET_STRING, value)])
    }

    fn id(n: u8) -> [u8; 3] {
        [0x55, 0x1d, n]
    }

    /// A Name with one attribute (CN) of this tag and contents.
    fn name(tag: u8, value: &[u8]) -> Vec<u8> {
        let atav = seq(&[&oid(&[0x55, 0x04, 0x03]), &tlv(tag, value)]);
        seq(&[&tlv(SET, &atav)])
    }

    fn validity(not_before: Vec<u8>) -> Vec<u8> {
        seq(&[&not_before, &tlv(UTC_TIME, b"360101000000Z")])
    }

    fn san(names: &[Vec<u8>]) -> Vec<u8> {
        ext(&id(17), false, &tlv(SEQUENCE, &names.concat()))
    }

    fn uri(text: &str) -> Vec<u8> {
        san(&[tlv(0x86, text.as_bytes())])
    }

    fn name_constraints(permitted: &[Vec<u8>]) -> Vec<u8> {
        let subtrees: Vec<Vec<u8>> = permitted.iter().map(|base| seq(&[base])).collect();
        let value = seq(&[&tlv(context_constructed(0), &subtrees.concat())]);
        ext(&id(30), true, &value)
    }

    /// An SPKI for this algorithm, parameters and key bytes (no unused bits).
    fn spki(algorithm: &[u8], params: &[u8], key: &[u8]) -> Vec<u8> {
        let mut bits = vec![0];
        bits.extend_from_slice(key);
        seq(&[&seq(&[&oid(algorithm), params]), &tlv(BIT_STRING, &bits)])
    }

    fn rsa_spki(modulus: &[u8], exponent: &[u8], params: &[u8]) -> Vec<u8> {
        let key = seq(&[&tlv(INTEGER, modulus), &tlv(INTEGER, exponent)]);
        spki(OID_RSA, params, &key)
    }

    /// The intermediate's EC point, for rebuilding its SPKI.
    fn ec_point() -> Vec<u8> {
        let spki = children(&contents(&Cert::intermediate().tbs[SPKI]));
        contents(&spki[1])[1..].to_vec()
    }

    fn ok(result: GoResult<()>) {
        assert_eq!(result, Ok(()));
    }

    fn refused(result: GoResult<()>, reason: &str) {
        assert_eq!(result.map_err(|e| e.reason), Err(reason));
    }

    #[test]
    fn issued_certificates_and_crl_parse() {
        ok(check_certificate(&fixtures().root));
        ok(check_certificate(&fixtures().intermediate));
        ok(check_crl(&fixtures().crl));
        // The rebuild helpers are faithful: an untouched rebuild is identical.
        assert_eq!(Cert::intermediate().der(), fixtures().intermediate);
    }

    #[test]
    fn outer_structure_and_trailing_data() {
        let good = fixtures().intermediate.clone();
        let mut trailing = good.clone();
        trailing.push(0);
        refused(check_certificate(&trailing), "x509: trailing data");
        refused(check_certificate(&[]), "x509: malformed certificate");
        refused(
            check_certificate(&good[..good.len() - 1]),
            "x509: malformed certificate",
        );
        // Indefinite length (BER) and a non-minimal long-form length.
        let mut indefinite = good.clone();
        indefinite[1] = 0x80;
        refused(
            check_certificate(&indefinite),
            "x509: malformed certificate",
        );
        let body = contents(&good);
        let mut long_form = vec![SEQUENCE, 0x84];
        long_form.extend_from_slice(&u32::try_from(body.len()).expect("len").to_be_bytes());
        long_form.extend_from_slice(&body);
        refused(check_certificate(&long_form), "x509: malformed certificate");
        // Go ignores elements after the signature inside the certificate.
        let mut cert = Cert::intermediate();
        cert.outer.push(tlv(NULL, &[]));
        ok(cert.check());
        let mut cert = Cert::intermediate();
        cert.outer[2] = tlv(BIT_STRING, &[0x01, 0xff]);
        refused(cert.check(), "x509: malformed signature");
    }

    #[test]
    fn envoy_strict_der_refuses_what_go_skips() {
        let good = fixtures().intermediate.clone();
        assert_eq!(check_envoy_certificate(&good), Ok(()));
        assert_eq!(check_envoy_crl(&fixtures().crl), Ok(()));
        // A trailing field in the Certificate SEQUENCE: Go ignores it.
        let mut cert = Cert::intermediate();
        cert.outer.push(tlv(NULL, &[]));
        ok(cert.check());
        assert_eq!(
            check_envoy_certificate(&cert.der()),
            Err("it is not exactly one SEQUENCE { tbs, signatureAlgorithm, signature }")
        );
        // A field after the extensions of the TBS.
        let mut cert = Cert::intermediate();
        cert.tbs.push(tlv(NULL, &[]));
        assert_eq!(
            check_envoy_certificate(&cert.der()),
            Err("the tbsCertificate has fields after the extensions")
        );
        // An empty RDN in the subject.
        let mut cert = Cert::intermediate();
        let mut rdns = children(&contents(&cert.tbs[SUBJECT]));
        rdns.push(tlv(SET, &[]));
        cert.tbs[SUBJECT] = tlv(SEQUENCE, &rdns.concat());
        assert_eq!(
            check_envoy_certificate(&cert.der()),
            Err("the subject name has an empty RDN")
        );
        // An attribute with a third element.
        let mut cert = Cert::intermediate();
        let mut rdns = children(&contents(&cert.tbs[ISSUER]));
        let mut atv = children(&contents(&children(&contents(&rdns[0]))[0]));
        atv.push(tlv(NULL, &[]));
        rdns[0] = tlv(SET, &seq(&[&atv.concat()]));
        cert.tbs[ISSUER] = tlv(SEQUENCE, &rdns.concat());
        assert_eq!(
            check_envoy_certificate(&cert.der()),
            Err("an issuer name attribute is not { type, value }")
        );
        // A validity with a third element.
        let mut cert = Cert::intermediate();
        let mut validity = children(&contents(&cert.tbs[VALIDITY]));
        validity.push(validity[0].clone());
        cert.tbs[VALIDITY] = tlv(SEQUENCE, &validity.concat());
        assert_eq!(
            check_envoy_certificate(&cert.der()),
            Err("the validity is not { notBefore, notAfter }")
        );
        // A CRL with bytes after its outer SEQUENCE.
        let mut crl = fixtures().crl.clone();
        crl.push(0);
        assert!(check_envoy_crl(&crl).is_err());
    }

    #[test]
    fn version_rules() {
        let explicit = |v: &[u8]| tlv(context_constructed(0), &tlv(INTEGER, v));
        // v1 written out explicitly is accepted (DER would omit it).
        ok(Cert::intermediate().with(VERSION, explicit(&[0])).check());
        // v2: extensions are not read at all.
        let broken_ext = ext(&id(15), false, b"junk");
        ok(Cert::intermediate()
            .with_extension(broken_ext.clone())
            .with(VERSION, explicit(&[1]))
            .check());
        refused(
            Cert::intermediate().with_extension(broken_ext).check(),
            "x509: invalid key usage",
        );
        refused(
            Cert::intermediate().with(VERSION, explicit(&[3])).check(),
            "x509: invalid version",
        );
        refused(
            Cert::intermediate()
                .with(VERSION, explicit(&[0xff]))
                .check(),
            "x509: malformed version",
        );
        refused(
            Cert::intermediate()
                .with(VERSION, explicit(&[0, 2]))
                .check(),
            "x509: malformed version",
        );
        let mut extra = tlv(INTEGER, &[2]);
        extra.extend(tlv(NULL, &[]));
        refused(
            Cert::intermediate()
                .with(VERSION, tlv(context_constructed(0), &extra))
                .check(),
            "x509: malformed version",
        );
        // No version at all: v1, and the rest of the TBS is never read.
        let mut v1 = Cert::intermediate();
        v1.tbs.remove(VERSION);
        ok(v1.check());
    }

    #[test]
    fn serial_rules() {
        let serial = |v: &[u8]| Cert::intermediate().with(SERIAL, tlv(INTEGER, v)).check();
        ok(serial(&[0]));
        ok(serial(&[0x00, 0x80]));
        refused(serial(&[0x80]), "x509: negative serial number");
        refused(serial(&[0xff]), "x509: negative serial number");
        refused(serial(&[]), "x509: malformed serial number");
        refused(serial(&[0x00, 0x01]), "x509: malformed serial number");
        refused(serial(&[0xff, 0x80]), "x509: malformed serial number");
        refused(
            Cert::intermediate()
                .with(SERIAL, tlv(OCTET_STRING, &[1]))
                .check(),
            "x509: malformed serial number",
        );
    }

    #[test]
    fn signature_algorithm_rules() {
        let cert = Cert::intermediate();
        let ai = cert.tbs[SIG_AI].clone();
        // Outer differs from inner (NULL parameters added outside only).
        let mut mismatched = cert.clone();
        mismatched.outer[1] = seq(&[&contents(&ai), &tlv(NULL, &[])]);
        refused(
            mismatched.check(),
            "x509: inner and outer signature algorithm identifiers don't match",
        );
        refused(
            Cert::intermediate().with_sig_ai(seq(&[&oid(&[])])).check(),
            "x509: malformed OID",
        );
        refused(
            Cert::intermediate()
                .with_sig_ai(seq(&[&oid(&[0x2a, 0x80, 0x01])]))
                .check(),
            "x509: malformed OID",
        );
        // Parameters of any type, and bytes after them, are not judged.
        let odd = seq(&[&contents(&ai), &tlv(0x1c, b"x"), b"\x00"]);
        ok(Cert::intermediate().with_sig_ai(odd).check());
        let bad_params = seq(&[&contents(&ai), &[0x05, 0x05]]);
        refused(
            Cert::intermediate().with_sig_ai(bad_params).check(),
            "x509: malformed parameters",
        );
        // An unknown algorithm parses (verification fails later).
        ok(Cert::intermediate()
            .with_sig_ai(seq(&[&oid(&[0x2a, 0x03])]))
            .check());
    }

    #[test]
    fn name_attribute_string_rules() {
        let subject =
            |tag: u8, value: &[u8]| Cert::intermediate().with(SUBJECT, name(tag, value)).check();
        const BAD: &str = "x509: invalid RDNSequence: invalid attribute value";
        ok(subject(UTF8_STRING, "Zürich".as_bytes()));
        refused(subject(UTF8_STRING, b"\xc3\x28"), BAD);
        ok(subject(PRINTABLE_STRING, b"Istio CA *.mesh & co"));
        refused(subject(PRINTABLE_STRING, b"a@b"), BAD);
        refused(subject(PRINTABLE_STRING, b"a_b"), BAD);
        ok(subject(IA5_STRING, b"a@b"));
        refused(subject(IA5_STRING, b"\x80"), BAD);
        ok(subject(NUMERIC_STRING, b"12 34"));
        refused(subject(NUMERIC_STRING, b"12a"), BAD);
        ok(subject(T61_STRING, b"\xff\x00"));
        ok(subject(BMP_STRING, &[0x00, 0x41, 0x00, 0x00]));
        refused(subject(BMP_STRING, &[0x00, 0x41, 0x00]), BAD);
        refused(subject(BMP_STRING, &[0xd8, 0x00]), BAD);
        refused(subject(BMP_STRING, &[0xff, 0xfe]), BAD);
        // Go 1.25 and 1.26 take only the six string types: not
        // UniversalString, VisibleString, a constructed UTF8String, NULL or
        // INTEGER. Go 1.27 takes those when well formed.
        let up_to_126 = |result: GoResult<()>| {
            assert_eq!(
                result.map_err(|e| (e.reason, e.releases)),
                Err((BAD, Releases::UpTo126))
            );
        };
        let all = |result: GoResult<()>| {
            assert_eq!(
                result.map_err(|e| (e.reason, e.releases)),
                Err((BAD, Releases::All))
            );
        };
        up_to_126(subject(0x1c, b"\x00\x00\x00\x41"));
        up_to_126(subject(0x1a, b"Istio CA"));
        up_to_126(subject(0x2c, b"\xff"));
        up_to_126(subject(NULL, b"junk"));
        up_to_126(subject(OCTET_STRING, b"\xff"));
        up_to_126(subject(INTEGER, &[0x01]));
        up_to_126(subject(UTC_TIME, b"260101000000Z"));
        up_to_126(subject(BOOLEAN, &[0xff]));
        up_to_126(subject(OBJECT_IDENTIFIER, &[0x2a, 0x03]));
        up_to_126(subject(BIT_STRING, &[0x00, 0xff]));
        // What Go 1.27's readASN1Any refuses as well.
        all(subject(INTEGER, &[0x00, 0x01]));
        all(subject(INTEGER, &[0x01; 9]));
        all(subject(UTC_TIME, b"26010100000Z"));
        all(subject(BOOLEAN, &[0x01]));
        all(subject(OBJECT_IDENTIFIER, &[0x2a, 0x80, 0x01]));
        all(subject(BIT_STRING, &[0x01, 0xff]));
        all(subject(PRINTABLE_STRING, b"a_b"));
        // A high-tag-number identifier is not DER Go reads.
        refused(subject(0x1f, b"\x21\x00"), BAD);
        refused(
            Cert::intermediate()
                .with(ISSUER, name(UTF8_STRING, b"\xff"))
                .check(),
            BAD,
        );
    }

    #[test]
    fn name_structure_rules() {
        let cn = seq(&[&oid(&[0x55, 0x04, 0x03]), &tlv(UTF8_STRING, b"b")]);
        let o = seq(&[&oid(&[0x55, 0x04, 0x0a]), &tlv(UTF8_STRING, b"a")]);
        // SET OF out of DER order, and an empty SET: Go does not mind.
        let unsorted = seq(&[&tlv(SET, &[cn.clone(), o.clone()].concat()), &tlv(SET, &[])]);
        ok(Cert::intermediate().with(SUBJECT, unsorted).check());
        refused(
            Cert::intermediate()
                .with(SUBJECT, seq(&[&tlv(SEQUENCE, &cn)]))
                .check(),
            "x509: invalid RDNSequence",
        );
        refused(
            Cert::intermediate()
                .with(SUBJECT, seq(&[&tlv(SET, &tlv(SET, &[]))]))
                .check(),
            "x509: invalid RDNSequence: invalid attribute",
        );
        refused(
            Cert::intermediate()
                .with(SUBJECT, seq(&[&tlv(SET, &seq(&[&tlv(UTF8_STRING, b"x")]))]))
                .check(),
            "x509: invalid RDNSequence: invalid attribute type",
        );
        refused(
            Cert::intermediate().with(SUBJECT, tlv(SET, &[])).check(),
            "x509: malformed issuer",
        );
    }

    #[test]
    fn validity_time_rules() {
        let not_before = |tag: u8, text: &str| {
            Cert::intermediate()
                .with(VALIDITY, validity(tlv(tag, text.as_bytes())))
                .check()
        };
        ok(not_before(UTC_TIME, "260101000000Z"));
        ok(not_before(UTC_TIME, "2601010000Z")); // no seconds: Go accepts
        ok(not_before(UTC_TIME, "260101000000+0130"));
        ok(not_before(UTC_TIME, "240229000000Z"));
        ok(not_before(UTC_TIME, "500101000000Z")); // 1950
        ok(not_before(GENERALIZED_TIME, "20260101000000Z"));
        ok(not_before(GENERALIZED_TIME, "20260101000000-0800"));
        const UTC: &str = "x509: malformed UTCTime";
        const GEN: &str = "x509: malformed GeneralizedTime";
        refused(not_before(UTC_TIME, "230229000000Z"), UTC);
        refused(not_before(UTC_TIME, "260101240000Z"), UTC);
        refused(not_before(UTC_TIME, "260101006000Z"), UTC);
        refused(not_before(UTC_TIME, "260101000060Z"), UTC);
        refused(not_before(UTC_TIME, "260101000000"), UTC);
        refused(not_before(UTC_TIME, "260101000000+0000"), UTC);
        refused(not_before(UTC_TIME, "260101000000+0060"), UTC);
        refused(not_before(UTC_TIME, "261301000000Z"), UTC);
        refused(not_before(UTC_TIME, "26010100000Z"), UTC);
        refused(not_before(GENERALIZED_TIME, "20260101000000.5Z"), GEN);
        refused(not_before(GENERALIZED_TIME, "202601010000Z"), GEN);
        refused(not_before(GENERALIZED_TIME, "20260431000000Z"), GEN);
        refused(
            not_before(PRINTABLE_STRING, "260101000000Z"),
            "x509: unsupported time format",
        );
        refused(
            Cert::intermediate().with(VALIDITY, tlv(SET, &[])).check(),
            "x509: malformed validity",
        );
    }

    #[test]
    fn public_key_rules() {
        let p256 = oid(OID_P256);
        let with_spki = |spki: Vec<u8>| Cert::intermediate().with(SPKI, spki).check();
        ok(with_spki(spki(OID_EC_PUBLIC_KEY, &p256, &ec_point())));
        // Explicit curve parameters, unknown curves, points off the curve.
        let explicit = seq(&[&tlv(INTEGER, &[1]), &seq(&[&oid(&[0x2a])])]);
        refused(
            with_spki(spki(OID_EC_PUBLIC_KEY, &explicit, &ec_point())),
            "x509: invalid ECDSA parameters",
        );
        refused(
            with_spki(spki(OID_EC_PUBLIC_KEY, &[], &ec_point())),
            "x509: invalid ECDSA parameters",
        );
        refused(
            with_spki(spki(
                OID_EC_PUBLIC_KEY,
                &oid(&[0x2b, 0x81, 0x04, 0x00, 0x0a]),
                &ec_point(),
            )),
            "x509: unsupported elliptic curve",
        );
        let mut off_curve = ec_point();
        off_curve[64] ^= 1;
        refused(
            with_spki(spki(OID_EC_PUBLIC_KEY, &p256, &off_curve)),
            "x509: failed to unmarshal elliptic curve point",
        );
        let mut compressed = ec_point()[..33].to_vec();
        compressed[0] = 0x02;
        refused(
            with_spki(spki(OID_EC_PUBLIC_KEY, &p256, &compressed)),
            "x509: failed to unmarshal elliptic curve point",
        );
        refused(
            with_spki(spki(OID_EC_PUBLIC_KEY, &oid(OID_P384), &ec_point())),
            "x509: failed to unmarshal elliptic curve point",
        );
        // RSA: NULL parameters, a positive modulus and exponent.
        let null = tlv(NULL, &[]);
        let modulus = [&[0x00, 0xc1][..], &[0x55; 255]].concat();
        ok(with_spki(rsa_spki(&modulus, &[1, 0, 1], &null)));
        refused(
            with_spki(rsa_spki(&modulus, &[1, 0, 1], &[])),
            "x509: RSA key missing NULL parameters",
        );
        refused(
            with_spki(rsa_spki(&[0xc1, 0x55], &[1, 0, 1], &null)),
            "x509: RSA modulus is not a positive number",
        );
        refused(
            with_spki(rsa_spki(&[0x00, 0x05], &[1, 0, 1], &null)),
            "x509: invalid RSA modulus",
        );
        refused(
            with_spki(rsa_spki(&modulus, &[0], &null)),
            "x509: RSA public exponent is not a positive number",
        );
        refused(
            with_spki(rsa_spki(&modulus, &[1; 9], &null)),
            "x509: invalid RSA public exponent",
        );
        refused(
            with_spki(spki(OID_RSA, &null, b"\x04\x00")),
            "x509: invalid RSA public key",
        );
        // Ed25519: no parameters, 32 bytes.
        ok(with_spki(spki(OID_ED25519, &[], &[7; 32])));
        refused(
            with_spki(spki(OID_ED25519, &null, &[7; 32])),
            "x509: Ed25519 key encoded with illegal parameters",
        );
        refused(
            with_spki(spki(OID_ED25519, &[], &[7; 31])),
            "x509: wrong Ed25519 public key size",
        );
        // Go 1.25 does not parse keys it does not know (X25519 here).
        ok(with_spki(spki(&[0x2b, 0x65, 0x6e], &null, b"junk")));
        // The BIT STRING itself must be DER: unused bits zero.
        let bad_bits = seq(&[
            &seq(&[&oid(OID_EC_PUBLIC_KEY), &p256]),
            &tlv(BIT_STRING, &[0x01, 0x01]),
        ]);
        refused(with_spki(bad_bits), "x509: malformed subjectPublicKey");
        refused(
            with_spki(seq(&[&tlv(SET, &[])])),
            "x509: malformed public key algorithm identifier",
        );
    }

    #[test]
    fn unique_id_rules() {
        let mut cert = Cert::intermediate();
        cert.tbs.insert(EXTENSIONS, tlv(context(1), &[0x00, 0xaa]));
        cert.tbs
            .insert(EXTENSIONS + 1, tlv(context(2), &[0x00, 0xbb]));
        ok(cert.check());
        let mut cert = Cert::intermediate();
        cert.tbs
            .insert(EXTENSIONS, vec![context(1), 0x81, 0x01, 0x00]);
        refused(cert.check(), "x509: malformed issuerUniqueID");
    }

    #[test]
    fn extension_framing_rules() {
        let cert = Cert::intermediate();
        let list = cert.extensions();
        let mut duplicated = list.clone();
        duplicated.push(list[0].clone());
        refused(
            Cert::intermediate().with_extensions(&duplicated).check(),
            "x509: certificate contains duplicate extension",
        );
        // critical must be DER TRUE/FALSE; an explicit FALSE is accepted.
        let ski_value = tlv(OCTET_STRING, &[1, 2, 3]);
        let with_flag = |flag: &[u8]| {
            let e = seq(&[
                &oid(&id(14)),
                &tlv(BOOLEAN, flag),
                &tlv(OCTET_STRING, &ski_value),
            ]);
            Cert::intermediate().with_extension(e).check()
        };
        ok(with_flag(&[0x00]));
        refused(
            with_flag(&[0x01]),
            "x509: malformed extension critical field",
        );
        refused(
            with_flag(&[0xff, 0xff]),
            "x509: malformed extension critical field",
        );
        refused(
            Cert::intermediate()
                .with_extension(seq(&[&oid(&id(14)), &tlv(BIT_STRING, &[0])]))
                .check(),
            "x509: malformed extension value field",
        );
        refused(
            Cert::intermediate()
                .with_extensions(&[seq(&[&oid(&[0x80, 0x01]), &tlv(OCTET_STRING, &[])])])
                .check(),
            "x509: malformed extension OID field",
        );
        refused(
            Cert::intermediate()
                .with_extensions(&[tlv(SET, &[])])
                .check(),
            "x509: malformed extension",
        );
        // An unknown critical extension parses (verification refuses it).
        ok(Cert::intermediate()
            .with_extension(ext(&[0x2a, 0x03, 0x04], true, b"\xff"))
            .check());
    }

    #[test]
    fn key_usage_basic_constraints_key_ids() {
        let with = |e: Vec<u8>| Cert::intermediate().with_extension(e).check();
        ok(with(ext(&id(15), true, &tlv(BIT_STRING, &[0x00]))));
        refused(
            with(ext(&id(15), true, &tlv(BIT_STRING, &[0x01, 0x87]))),
            "x509: invalid key usage",
        );
        refused(
            with(ext(&id(15), true, &tlv(OCTET_STRING, &[0x86]))),
            "x509: invalid key usage",
        );
        let bc = |parts: &[&[u8]]| with(ext(&id(19), true, &seq(parts)));
        ok(bc(&[&tlv(BOOLEAN, &[0xff]), &tlv(INTEGER, &[0])]));
        ok(bc(&[]));
        const BC: &str = "x509: invalid basic constraints";
        refused(bc(&[&tlv(BOOLEAN, &[0x01])]), BC);
        refused(bc(&[&tlv(BOOLEAN, &[0xff]), &tlv(INTEGER, &[0xff])]), BC);
        refused(bc(&[&tlv(BOOLEAN, &[0xff]), &tlv(INTEGER, &[0, 0])]), BC);
        // AKI and SKI: never critical, the right shape.
        let aki = seq(&[&tlv(context(0), &[1, 2, 3])]);
        ok(with(ext(&id(35), false, &aki)));
        refused(
            with(ext(&id(35), true, &aki)),
            "x509: authority key identifier incorrectly marked critical",
        );
        refused(
            with(ext(&id(35), false, &tlv(OCTET_STRING, &[1]))),
            "x509: invalid authority key identifier",
        );
        refused(
            with(ext(&id(35), false, &seq(&[&[context(0), 0x05, 0x01]]))),
            "x509: invalid authority key identifier",
        );
        refused(
            with(ext(&id(14), true, &tlv(OCTET_STRING, &[1]))),
            "x509: subject key identifier incorrectly marked critical",
        );
        refused(
            with(ext(&id(14), false, &tlv(BIT_STRING, &[0]))),
            "x509: invalid subject key identifier",
        );
        // EKU: a SEQUENCE of valid OIDs.
        ok(with(ext(
            &id(37),
            false,
            &seq(&[&oid(&[0x2b, 0x06, 0x01])]),
        )));
        refused(
            with(ext(&id(37), false, &seq(&[&oid(&[0x2b, 0x86])]))),
            "x509: invalid extended key usages",
        );
    }

    #[test]
    fn subject_alternative_name_rules() {
        let with = |e: Vec<u8>| Cert::intermediate().with_extension(e).check();
        ok(with(san(&[tlv(0x82, b"istiod.istio-system.svc")])));
        // Go 1.25 checks only that a dNSName is ASCII.
        ok(with(san(&[tlv(0x82, b"not a hostname..")])));
        refused(
            with(san(&[tlv(0x82, b"b\xc3\xa4d")])),
            "x509: SAN dNSName is malformed",
        );
        refused(
            with(san(&[tlv(0x81, b"\xff@x")])),
            "x509: SAN rfc822Name is malformed",
        );
        ok(with(san(&[tlv(0x87, &[10, 0, 0, 1])])));
        ok(with(san(&[tlv(0x87, &[0; 16])])));
        // ::ffff:10.0.0.1: Go 1.27 refuses it, 1.25 and 1.26 take it.
        let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1];
        assert_eq!(
            with(san(&[tlv(0x87, &mapped)])).map_err(|e| (e.reason, e.releases)),
            Err((
                "x509: SAN iPAddress contains IPv4-mapped IPv6 address",
                Releases::From127
            ))
        );
        let mut not_mapped = mapped;
        not_mapped[9] = 1;
        ok(with(san(&[tlv(0x87, &not_mapped)])));
        refused(
            with(san(&[tlv(0x87, &[10, 0, 0, 1, 0])])),
            "x509: cannot parse IP address of this length",
        );
        // Other GeneralName types are skipped, even a constructed one.
        ok(with(san(&[tlv(context_constructed(0), b"junk")])));
        refused(
            with(ext(&id(17), false, &tlv(SET, &[]))),
            "x509: invalid subject alternative names",
        );
        refused(
            with(ext(&id(17), false, &seq(&[&[0x82, 0x05]]))),
            "x509: invalid subject alternative name",
        );
        refused(
            with(san(&[tlv(0x86, b"spiffe://x/\x80")])),
            "x509: SAN uniformResourceIdentifier is malformed",
        );
    }

    #[test]
    fn uri_rules() {
        let check = |text: &str| Cert::intermediate().with_extension(uri(text)).check();
        for good in [
            "spiffe://cluster.local/ns/default/sa/default",
            "https://user:pa%20ss@example.com:8443/a%2Fb?q=%zz#frag",
            "http://[fe80::1%25eth0]:80/",
            "http://[::1]/",
            "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
            "mailto:a@b",
            "relative/path",
            "//host.example/p",
            "*",
            "",
            "spiffe://",
        ] {
            ok(check(good));
        }
        for bad in [
            "://missing.scheme",
            "http://exa mple.com/",
            "http://host:port/",
            "http://[1.2.3.4]/",
            "http://[::1/",
            "http://[fe80::1%25]/",
            "http://%41b/",
            "http://a/%zz",
            "http://a/#%zz",
            "1:2",
            "http://us\"er@host/",
            "http://a\x01/",
        ] {
            refused(check(bad), "x509: cannot parse URI");
        }
        for bad_domain in ["http://a..b/", "http://host./", "http://.host/"] {
            refused(check(bad_domain), "x509: cannot parse URI: invalid domain");
        }
    }

    #[test]
    fn name_constraint_rules() {
        let with = |bases: &[Vec<u8>]| {
            Cert::intermediate()
                .with_extension(name_constraints(bases))
                .check()
        };
        ok(with(&[tlv(0x82, b".cluster.local")]));
        ok(with(&[tlv(0x86, b"cluster.local")]));
        ok(with(&[tlv(0x81, b"user@example.com")]));
        ok(with(&[tlv(0x81, b"\"a b\"@example.com")]));
        ok(with(&[tlv(0x87, &[10, 0, 0, 0, 255, 0, 0, 0])]));
        ok(with(&[tlv(context_constructed(4), b"dirname, unhandled")]));
        refused(
            with(&[tlv(0x82, b"cluster.local.")]),
            "x509: failed to parse dnsName constraint",
        );
        refused(
            with(&[tlv(0x82, b"\xff")]),
            "x509: invalid constraint value",
        );
        refused(
            with(&[tlv(0x87, &[10, 0, 0, 0, 255, 0, 255, 0])]),
            "x509: IP constraint contained invalid mask",
        );
        refused(
            with(&[tlv(0x87, &[10, 0, 0, 0])]),
            "x509: IP constraint contained value of invalid length",
        );
        refused(
            with(&[tlv(0x81, b"a..b@example.com")]),
            "x509: failed to parse rfc822Name constraint",
        );
        refused(
            with(&[tlv(0x81, b"a@exa..mple")]),
            "x509: failed to parse rfc822Name constraint",
        );
        refused(
            with(&[tlv(0x86, b"10.0.0.1")]),
            "x509: failed to parse URI constraint: cannot be IP address",
        );
        refused(
            with(&[tlv(0x86, b"a..b")]),
            "x509: failed to parse URI constraint",
        );
        refused(with(&[]), "x509: empty name constraints extension");
        // Refused by Go 1.27 only.
        let from_127 = |result: GoResult<()>, reason: &str| {
            assert_eq!(
                result.map_err(|e| (e.reason, e.releases)),
                Err((reason, Releases::From127))
            );
        };
        let mut mapped = [0u8; 32];
        mapped[10..12].copy_from_slice(&[0xff, 0xff]);
        mapped[12] = 10;
        mapped[16..].fill(0xff);
        from_127(
            with(&[tlv(0x87, &mapped)]),
            "x509: IP constraint contained IPv4-mapped IPv6 address",
        );
        mapped[0] = 0xfd;
        ok(with(&[tlv(0x87, &mapped)]));
        from_127(
            with(&[tlv(0x81, b"user@a@example.com")]),
            "x509: failed to parse rfc822Name constraint",
        );
        let nc = |value: Vec<u8>| {
            Cert::intermediate()
                .with_extension(ext(&id(30), true, &value))
                .check()
        };
        refused(nc(seq(&[])), "x509: empty name constraints extension");
        refused(
            nc([seq(&[]), vec![0]].concat()),
            "x509: invalid NameConstraints extension",
        );
        refused(
            nc(seq(&[&tlv(context_constructed(2), &[])])),
            "x509: invalid NameConstraints extension",
        );
    }

    #[test]
    fn distribution_points_access_and_policies() {
        let with = |e: Vec<u8>| Cert::intermediate().with_extension(e).check();
        let uri = tlv(context(6), b"http://crl.example/ca.crl");
        let full_name = tlv(context_constructed(0), &tlv(context_constructed(0), &uri));
        ok(with(ext(&id(31), false, &seq(&[&seq(&[&full_name])]))));
        ok(with(ext(&id(31), false, &seq(&[&seq(&[])]))));
        refused(
            with(ext(&id(31), false, &tlv(SET, &[]))),
            "x509: invalid CRL distribution points",
        );
        let relative = tlv(context_constructed(0), &tlv(context_constructed(1), &[]));
        refused(
            with(ext(&id(31), false, &seq(&[&seq(&[&relative])]))),
            "x509: invalid CRL distribution point",
        );
        let ocsp = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
        let aia = seq(&[&seq(&[&oid(&ocsp), &uri])]);
        ok(with(ext(OID_AIA, false, &aia)));
        refused(
            with(ext(OID_AIA, true, &aia)),
            "x509: authority info access incorrectly marked critical",
        );
        refused(
            with(ext(OID_AIA, false, &seq(&[&seq(&[&uri])]))),
            "x509: invalid authority info access",
        );
        let policy = seq(&[&oid(&[0x55, 0x1d, 0x20, 0x00])]);
        ok(with(ext(&id(32), false, &seq(&[&policy]))));
        refused(
            with(ext(&id(32), false, &seq(&[&policy, &policy]))),
            "x509: invalid certificate policies",
        );
        refused(
            with(ext(&id(32), false, &seq(&[&seq(&[&oid(&[0x2a, 0x81])])]))),
            "x509: invalid certificate policies",
        );
        let constraint = |v: &[u8]| with(ext(&id(36), true, &seq(&[&tlv(context(0), v)])));
        ok(constraint(&[0]));
        refused(
            constraint(&[0, 1]),
            "x509: invalid policy constraints extension",
        );
        refused(
            with(ext(&id(54), true, &tlv(INTEGER, &[1; 9]))),
            "x509: invalid inhibit any policy extension",
        );
        refused(
            with(ext(&id(33), false, &seq(&[&seq(&[&oid(&[0x2a])])]))),
            "x509: invalid policy mappings extension",
        );
    }

    /// A CRL taken apart like [`Cert`].
    #[derive(Clone)]
    struct Crl {
        tbs: Vec<Vec<u8>>,
        outer: Vec<Vec<u8>>,
    }

    // Positions in a v2 TBSCertList with nextUpdate, entries, extensions.
    const CRL_VERSION: usize = 0;
    const CRL_SIG_AI: usize = 1;
    const CRL_THIS_UPDATE: usize = 3;
    const CRL_NEXT_UPDATE: usize = 4;
    const CRL_REVOKED: usize = 5;
    const CRL_EXTENSIONS: usize = 6;

    impl Crl {
        fn new() -> Self {
            let outer = children(&contents(&fixtures().crl));
            let tbs = children(&contents(&outer[0]));
            Self { tbs, outer }
        }

        fn with(mut self, index: usize, element: Vec<u8>) -> Self {
            self.tbs[index] = element;
            self
        }

        fn der(&self) -> Vec<u8> {
            let mut outer = self.outer.clone();
            outer[0] = tlv(SEQUENCE, &self.tbs.concat());
            tlv(SEQUENCE, &outer.concat())
        }

        fn check(&self) -> GoResult<()> {
            check_crl(&self.der())
        }

        fn with_entry_extensions(self, extensions: &[Vec<u8>]) -> Self {
            let entries = children(&contents(&self.tbs[CRL_REVOKED]));
            let mut entry = children(&contents(&entries[0]));
            entry.truncate(2);
            entry.push(tlv(SEQUENCE, &extensions.concat()));
            self.with(CRL_REVOKED, seq(&[&tlv(SEQUENCE, &entry.concat())]))
        }

        fn with_extensions(self, extensions: &[Vec<u8>]) -> Self {
            let list = tlv(SEQUENCE, &extensions.concat());
            self.with(CRL_EXTENSIONS, tlv(context_constructed(0), &list))
        }
    }

    #[test]
    fn crl_rules() {
        assert_eq!(Crl::new().der(), fixtures().crl);
        ok(Crl::new().check());
        // Go ignores bytes after the CRL.
        let mut trailing = fixtures().crl.clone();
        trailing.extend_from_slice(b"junk");
        ok(check_crl(&trailing));
        refused(check_crl(b"\x30\x80"), "x509: malformed crl");
        // The outer AlgorithmIdentifier must equal the inner one.
        let mut crl = Crl::new();
        crl.outer[1] = seq(&[&contents(&crl.outer[1]), &tlv(NULL, &[])]);
        refused(
            crl.check(),
            "x509: inner and outer signature algorithm identifiers don't match",
        );
        let mut crl = Crl::new();
        crl.outer[1] = tlv(SET, &[]);
        refused(crl.check(), "x509: malformed algorithm identifier");
        let mut crl = Crl::new().with(CRL_SIG_AI, seq(&[&oid(&[])]));
        crl.outer[1] = seq(&[&oid(&[])]);
        refused(crl.check(), "x509: malformed OID");
        let mut crl = Crl::new();
        crl.outer[2] = tlv(BIT_STRING, &[0x08]);
        refused(crl.check(), "x509: malformed signature");
        // Version: v2 only, and present.
        let mut v1 = Crl::new();
        v1.tbs.remove(CRL_VERSION);
        refused(v1.check(), "x509: unsupported crl version");
        refused(
            Crl::new().with(CRL_VERSION, tlv(INTEGER, &[2])).check(),
            "x509: unsupported crl version",
        );
        refused(
            Crl::new().with(CRL_VERSION, tlv(INTEGER, &[0, 1])).check(),
            "x509: malformed crl",
        );
        // Times.
        refused(
            Crl::new()
                .with(CRL_THIS_UPDATE, tlv(UTC_TIME, b"260230000000Z"))
                .check(),
            "x509: malformed UTCTime",
        );
        let mut no_next = Crl::new();
        no_next.tbs.remove(CRL_NEXT_UPDATE);
        ok(no_next.check());
        refused(
            Crl::new()
                .with(CRL_NEXT_UPDATE, tlv(GENERALIZED_TIME, b"2026010100Z"))
                .check(),
            "x509: malformed GeneralizedTime",
        );
        // Entries: any serial sign; reasonCode must be an ENUMERATED.
        let entry = |serial: &[u8]| {
            let e = seq(&[&tlv(INTEGER, serial), &tlv(UTC_TIME, b"260101000000Z")]);
            Crl::new().with(CRL_REVOKED, seq(&[&e])).check()
        };
        ok(entry(&[0xff]));
        refused(entry(&[]), "x509: malformed serial number");
        let reason = |value: Vec<u8>| {
            Crl::new()
                .with_entry_extensions(&[ext(OID_CRL_REASON, false, &value)])
                .check()
        };
        ok(reason(tlv(ENUMERATED, &[1])));
        refused(
            reason(tlv(INTEGER, &[1])),
            "x509: malformed reasonCode extension",
        );
        refused(
            reason(tlv(ENUMERATED, &[0, 1])),
            "x509: malformed reasonCode extension",
        );
        // CRL extensions: AKI rules, a DER CRL number; duplicates allowed.
        let number = |value: Vec<u8>| {
            Crl::new()
                .with_extensions(&[ext(OID_CRL_NUMBER, false, &value)])
                .check()
        };
        ok(number(tlv(INTEGER, &[5])));
        refused(number(tlv(INTEGER, &[0, 5])), "x509: malformed crl number");
        let aki = seq(&[&tlv(context(0), &[1])]);
        refused(
            Crl::new()
                .with_extensions(&[ext(OID_AKI, true, &aki)])
                .check(),
            "x509: authority key identifier incorrectly marked critical",
        );
        let twice = ext(OID_CRL_NUMBER, false, &tlv(INTEGER, &[5]));
        ok(Crl::new().with_extensions(&[twice.clone(), twice]).check());
        refused(
            Crl::new().with_extensions(&[tlv(SET, &[])]).check(),
            "x509: malformed extension",
        );
    }

    // Regressions: the classes of mutated, re-signed intermediates that
    // passed x509-parser and failed in Go, and the CRL with a broken outer
    // AlgorithmIdentifier.

    #[test]
    fn regression_wrong_version_passed() {
        let v = tlv(context_constructed(0), &tlv(INTEGER, &[5]));
        refused(
            Cert::intermediate().with(VERSION, v).check(),
            "x509: invalid version",
        );
    }

    #[test]
    fn regression_non_der_boolean_passed() {
        let bc = seq(&[&tlv(BOOLEAN, &[0x01])]);
        let e = seq(&[
            &oid(&id(19)),
            &tlv(BOOLEAN, &[0x01]),
            &tlv(OCTET_STRING, &bc),
        ]);
        refused(
            Cert::intermediate().with_extension(e).check(),
            "x509: malformed extension critical field",
        );
        refused(
            Cert::intermediate()
                .with_extension(ext(&id(19), true, &bc))
                .check(),
            "x509: invalid basic constraints",
        );
    }

    #[test]
    fn regression_invalid_utf8_in_name_passed() {
        refused(
            Cert::intermediate()
                .with(SUBJECT, name(UTF8_STRING, b"Istio \xff"))
                .check(),
            "x509: invalid RDNSequence: invalid attribute value",
        );
    }

    #[test]
    fn regression_malformed_dns_name_passed() {
        refused(
            Cert::intermediate()
                .with_extension(san(&[tlv(0x82, b"istiod\xe9")]))
                .check(),
            "x509: SAN dNSName is malformed",
        );
    }

    #[test]
    fn regression_signature_algorithm_mismatch_passed() {
        let mut cert = Cert::intermediate();
        // ecdsa-with-SHA384 outside, ecdsa-with-SHA256 inside.
        cert.outer[1] = seq(&[&oid(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03])]);
        refused(
            cert.check(),
            "x509: inner and outer signature algorithm identifiers don't match",
        );
    }

    #[test]
    fn regression_malformed_key_usage_aki_ski_passed() {
        let with = |e: Vec<u8>| Cert::intermediate().with_extension(e).check();
        refused(
            with(ext(&id(15), true, &tlv(BIT_STRING, &[0x08, 0x86]))),
            "x509: invalid key usage",
        );
        refused(
            with(ext(&id(35), false, &tlv(OCTET_STRING, &[1]))),
            "x509: invalid authority key identifier",
        );
        refused(
            with(ext(&id(14), false, &seq(&[]))),
            "x509: invalid subject key identifier",
        );
    }

    #[test]
    fn regression_crl_broken_outer_algorithm_identifier_passed() {
        let mut crl = Crl::new();
        let inner = contents(&crl.outer[1]);
        let mut broken = inner.clone();
        broken[1] -= 1; // the OID one byte shorter: truncated arc
        broken.truncate(broken.len() - 1);
        crl.outer[1] = tlv(SEQUENCE, &broken);
        refused(
            crl.check(),
            "x509: inner and outer signature algorithm identifiers don't match",
        );
    }

    #[test]
    fn errors_never_echo_input() {
        // A URI SAN carrying a secret-looking value: the message stays Go's
        // fixed text.
        let secret = "http://[::1/hunter2";
        let err = Cert::intermediate()
            .with_extension(uri(secret))
            .check()
            .expect_err("refused");
        assert!(!err.to_string().contains("hunter2"));
        assert_eq!(err.to_string(), "x509: cannot parse URI");
    }

    #[test]
    fn oid_and_bit_string_primitives() {
        assert!(oid_valid(&[0x2a, 0x86, 0x48]));
        assert!(!oid_valid(&[0x2a, 0x86])); // truncated
        assert!(!oid_valid(&[0x80, 0x01])); // non-minimal
        assert!(oid_valid(&[0x87, 0xff, 0xff, 0xff, 0x7f])); // 2^31 - 1
        assert!(!oid_valid(&[0x88, 0x80, 0x80, 0x80, 0x00])); // 2^31
        assert_eq!(right_align(4, &[0xab, 0xc0]), vec![0x0a, 0xbc]);
        assert_eq!(right_align(0, &[0xab]), vec![0xab]);
    }

    /// A fuzzed basicConstraints (found by the differential test): Go skips
    /// an element that is neither BOOLEAN nor INTEGER, so `[0x21]` first
    /// means "not a CA", and junk after the BOOLEAN is ignored.
    #[test]
    fn basic_constraints_read_with_gos_leniency() {
        assert_eq!(
            basic_constraints(&[0x30, 0x06, 0x01, 0x01, 0xff, 0x00, 0x01, 0x00]),
            Some((true, None))
        );
        assert_eq!(
            basic_constraints(&[0x30, 0x06, 0x21, 0x01, 0xff, 0x02, 0x01, 0x00]),
            Some((false, None))
        );
        assert_eq!(
            basic_constraints(&[0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x01]),
            Some((true, Some(1)))
        );
        assert_eq!(basic_constraints(&[0x30, 0x03, 0x01, 0x01, 0x01]), None);
        assert_eq!(basic_constraints(&[0x30, 0x03, 0x02, 0x01, 0xff]), None);
    }
}
