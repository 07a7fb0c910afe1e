//! What a PEM file holds: certificates, keys (never their secret parts) and
//! CRLs, summarised for humans and as JSON.

use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::{Error, Result};
use crate::key::{KeyFormat, PrivateKey};
use crate::pemutil;

/// One PEM block of an inspected file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Item {
    /// An X.509 certificate.
    Certificate(Box<CertSummary>),
    /// A private key: its type, never its secret.
    PrivateKey(KeySummary),
    /// A certificate revocation list.
    Crl(CrlSummary),
    /// Any other PEM block.
    Other {
        /// The PEM label.
        label: String,
    },
}

/// A certificate's fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CertSummary {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Whether subject equals issuer and the certificate's own key verifies it.
    pub self_signed: bool,
    /// Serial number, colon-separated hex.
    pub serial: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// Whole days from the inspection time to notAfter (negative: expired).
    pub days_left: i64,
    /// Key algorithm and size (`rsa-4096`, `ecdsa-p256`, ...).
    pub key: String,
    /// Signature algorithm.
    pub signature_algorithm: String,
    /// SubjectKeyIdentifier, hex.
    pub subject_key_id: Option<String>,
    /// AuthorityKeyIdentifier, hex.
    pub authority_key_id: Option<String>,
    /// basicConstraints CA flag.
    pub is_ca: bool,
    /// basicConstraints pathLenConstraint.
    pub path_len: Option<u32>,
    /// keyUsage names.
    pub key_usage: Vec<String>,
    /// extendedKeyUsage names.
    pub extended_key_usage: Vec<String>,
    /// subjectAltName entries (`DNS:...`, `URI:...`, `IP:...`).
    pub sans: Vec<String>,
    /// SHA-256 fingerprint of the DER, colon-separated hex.
    pub sha256_fingerprint: String,
}

/// A private key's public facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KeySummary {
    /// The PEM label (`PRIVATE KEY`, `RSA PRIVATE KEY`, ...).
    pub format: String,
    /// Whether the key is encrypted.
    pub encrypted: bool,
    /// Key type when known (`rsa-4096`, ...), or why not.
    pub key: String,
}

/// A CRL's fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CrlSummary {
    /// Issuer DN.
    pub issuer: String,
    /// thisUpdate, RFC 3339.
    pub this_update: String,
    /// nextUpdate, RFC 3339.
    pub next_update: Option<String>,
    /// cRLNumber, decimal.
    pub number: Option<String>,
    /// Serials of the revoked certificates, hex.
    pub revoked: Vec<String>,
}

fn hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    parts.join(":")
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Describes a public key as `rsa-<bits>`, `ecdsa-p256`, ...
pub(crate) fn describe_key(spki: &SubjectPublicKeyInfo<'_>) -> String {
    match crate::key::describe_spki(spki) {
        Ok(kt) => kt.to_string(),
        Err(other) => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => format!("rsa-{}", rsa.key_size()),
            _ => other,
        },
    }
}

fn summarize_cert(c: &X509Certificate<'_>, der: &[u8], at: OffsetDateTime) -> CertSummary {
    let mut ski = None;
    let mut aki = None;
    let mut key_usage = Vec::new();
    let mut eku = Vec::new();
    let mut sans = Vec::new();
    let mut is_ca = false;
    let mut path_len = None;
    for ext in c.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(hex(k.0)),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| hex(k.0));
            }
            ParsedExtension::BasicConstraints(bc) => {
                is_ca = bc.ca;
                path_len = bc.path_len_constraint;
            }
            ParsedExtension::KeyUsage(ku) => {
                key_usage = ku
                    .to_string()
                    .split(", ")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            ParsedExtension::ExtendedKeyUsage(e) => {
                if e.any {
                    eku.push("any".to_owned());
                }
                if e.server_auth {
                    eku.push("serverAuth".to_owned());
                }
                if e.client_auth {
                    eku.push("clientAuth".to_owned());
                }
                if e.code_signing {
                    eku.push("codeSigning".to_owned());
                }
                if e.email_protection {
                    eku.push("emailProtection".to_owned());
                }
                if e.time_stamping {
                    eku.push("timeStamping".to_owned());
                }
                if e.ocsp_signing {
                    eku.push("OCSPSigning".to_owned());
                }
                eku.extend(e.other.iter().map(|o| o.to_id_string()));
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    sans.push(match name {
                        GeneralName::DNSName(d) => format!("DNS:{d}"),
                        GeneralName::URI(u) => format!("URI:{u}"),
                        GeneralName::RFC822Name(e) => format!("email:{e}"),
                        GeneralName::IPAddress(ip) => {
                            if let Ok(v4) = <[u8; 4]>::try_from(*ip) {
                                format!("IP:{}", std::net::Ipv4Addr::from(v4))
                            } else if let Ok(v6) = <[u8; 16]>::try_from(*ip) {
                                format!("IP:{}", std::net::Ipv6Addr::from(v6))
                            } else {
                                format!("IP:{}", hex(ip))
                            }
                        }
                        other => format!("{other}"),
                    });
                }
            }
            _ => {}
        }
    }
    let not_after = c.validity().not_after.to_datetime();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let sig_oid = c.signature_algorithm.algorithm.clone();
    let signature_algorithm = x509_parser::oid_registry::OidRegistry::default()
        .with_all_crypto()
        .get(&sig_oid)
        .map(|e| e.sn().to_owned())
        .unwrap_or_else(|| sig_oid.to_id_string());
    CertSummary {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        self_signed: c.subject().as_raw() == c.issuer().as_raw()
            && c.verify_signature(None).is_ok(),
        serial: hex(c.raw_serial()),
        not_before: rfc3339(c.validity().not_before.to_datetime()),
        not_after: rfc3339(not_after),
        days_left: (not_after - at).whole_days(),
        key: describe_key(c.public_key()),
        signature_algorithm,
        subject_key_id: ski,
        authority_key_id: aki,
        is_ca,
        path_len,
        key_usage,
        extended_key_usage: eku,
        sans,
        sha256_fingerprint: hex(digest.as_ref()),
    }
}

/// Summarises every PEM block of a document. `what` names it in errors; `at`
/// is the time `days_left` counts from. Bad input is an [`Error`].
pub fn inspect_pem(what: &str, bytes: &[u8], at: OffsetDateTime) -> Result<Vec<Item>> {
    let blocks = pemutil::parse_blocks(what, bytes)?;
    let mut items = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        let which = format!("{what} (PEM block {})", i + 1);
        let item = match block.tag() {
            "CERTIFICATE" => {
                let (_, c) =
                    x509_parser::parse_x509_certificate(block.contents()).map_err(|e| {
                        Error::BadCertificate {
                            what: which.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                Item::Certificate(Box::new(summarize_cert(&c, block.contents(), at)))
            }
            "X509 CRL" => {
                let (_, crl) =
                    CertificateRevocationList::from_der(block.contents()).map_err(|e| {
                        Error::Pem {
                            what: which.clone(),
                            problem: format!("not a valid CRL: {e}"),
                        }
                    })?;
                Item::Crl(CrlSummary {
                    issuer: crl.issuer().to_string(),
                    this_update: rfc3339(crl.last_update().to_datetime()),
                    next_update: crl.next_update().map(|t| rfc3339(t.to_datetime())),
                    number: crl.crl_number().map(|n| n.to_string()),
                    revoked: crl
                        .iter_revoked_certificates()
                        .map(|r| hex(r.raw_serial()))
                        .collect(),
                })
            }
            "ENCRYPTED PRIVATE KEY" => Item::PrivateKey(KeySummary {
                format: block.tag().to_owned(),
                encrypted: true,
                key: "unknown (encrypted)".into(),
            }),
            tag => match KeyFormat::from_pem_tag(tag) {
                None => Item::Other {
                    label: tag.to_owned(),
                },
                Some(format) => {
                    let encrypted = block.headers().get("Proc-Type").is_some();
                    let key = if encrypted {
                        "unknown (encrypted)".to_owned()
                    } else {
                        match PrivateKey::from_der(&which, format, block.contents()) {
                            Ok(k) => k.key_type().to_string(),
                            Err(Error::UnsupportedKey { found, .. }) => found,
                            Err(e) => return Err(e),
                        }
                    };
                    Item::PrivateKey(KeySummary {
                        format: tag.to_owned(),
                        encrypted,
                        key,
                    })
                }
            },
        };
        items.push(item);
    }
    Ok(items)
}
