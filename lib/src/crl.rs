//! Certificate revocation lists, as istiod reads them from `ca-crl.pem`
//! (Istio 1.27+): one CRL from every CA of the cluster's `cert-chain.pem`.

use std::fmt;
use std::str::FromStr;

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, RevocationReason, RevokedCertParams,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::num_bigint::BigUint;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::error::{Error, Result};
use crate::key::PrivateKey;
use crate::pemutil;

/// `root-crl.pem`: the root's current CRL, kept in the certs directory (the
/// record of what the root has revoked and of its CRL number).
pub const ROOT_CRL: &str = "root-crl.pem";

/// Default nextUpdate of a CRL, in days.
pub const DEFAULT_CRL_DAYS: u32 = 90;

/// Why a certificate is revoked (RFC 5280 CRLReason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reason {
    /// No reason given.
    #[default]
    Unspecified,
    /// The key leaked.
    KeyCompromise,
    /// A CA key above leaked.
    CaCompromise,
    /// The subject's affiliation changed.
    AffiliationChanged,
    /// Replaced by a new certificate.
    Superseded,
    /// The CA is no longer used (a cluster decommissioned).
    CessationOfOperation,
}

/// The names [`Reason`] parses.
pub const REASON_NAMES: &str = "unspecified, key-compromise, ca-compromise, affiliation-changed, superseded, cessation-of-operation";

impl FromStr for Reason {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "unspecified" => Reason::Unspecified,
            "key-compromise" | "keycompromise" => Reason::KeyCompromise,
            "ca-compromise" | "cacompromise" => Reason::CaCompromise,
            "affiliation-changed" | "affiliationchanged" => Reason::AffiliationChanged,
            "superseded" => Reason::Superseded,
            "cessation-of-operation" | "cessationofoperation" => Reason::CessationOfOperation,
            _ => {
                return Err(Error::InvalidArgument {
                    what: "revocation reason",
                    value: s.to_owned(),
                    reason: format!("valid reasons: {REASON_NAMES}"),
                })
            }
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "key-compromise",
            Reason::CaCompromise => "ca-compromise",
            Reason::AffiliationChanged => "affiliation-changed",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessation-of-operation",
        })
    }
}

impl Reason {
    fn to_rcgen(self) -> RevocationReason {
        match self {
            Reason::Unspecified => RevocationReason::Unspecified,
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::CaCompromise => RevocationReason::CaCompromise,
            Reason::AffiliationChanged => RevocationReason::AffiliationChanged,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => Reason::KeyCompromise,
            2 => Reason::CaCompromise,
            3 => Reason::AffiliationChanged,
            4 => Reason::Superseded,
            5 => Reason::CessationOfOperation,
            _ => Reason::Unspecified,
        }
    }
}

/// A revocation to add to a CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Revocation {
    /// Serial number of the revoked certificate (big-endian DER content bytes).
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub time: OffsetDateTime,
    /// Why.
    pub reason: Reason,
}

impl Revocation {
    /// A revocation of `serial` at `time` for `reason`.
    pub fn new(serial: Vec<u8>, time: OffsetDateTime, reason: Reason) -> Self {
        Revocation {
            serial,
            time,
            reason,
        }
    }
}

/// What a previous CRL of the same CA recorded: its number and entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct CrlState {
    number: Option<BigUint>,
    revoked: Vec<Revocation>,
}

/// Reads the CRL, among the PEM blocks of `previous`, that `issuer_der`'s key
/// signed. Returns the default state when there is none.
fn previous_state(what: &str, issuer_der: &[u8], previous: Option<&[u8]>) -> Result<CrlState> {
    let Some(bytes) = previous else {
        return Ok(CrlState::default());
    };
    let issuer = crate::issue::parse("issuer certificate", issuer_der)?;
    let blocks = pemutil::parse_blocks(what, bytes)?;
    for block in blocks.iter().filter(|b| b.tag() == "X509 CRL") {
        let (_, crl) =
            CertificateRevocationList::from_der(block.contents()).map_err(|e| Error::Pem {
                what: what.into(),
                problem: format!("not a valid CRL: {e}"),
            })?;
        if crl.issuer().as_raw() != issuer.subject().as_raw() {
            continue;
        }
        if crl.verify_signature(issuer.public_key()).is_err() {
            return Err(Error::BadCertificate {
                what: what.into(),
                reason: format!(
                    "the CRL of {} is not signed by its key; refusing to extend it",
                    issuer.subject()
                ),
            });
        }
        let revoked = crl
            .iter_revoked_certificates()
            .map(|r| Revocation {
                serial: r.raw_serial().to_vec(),
                time: r.revocation_date.to_datetime(),
                reason: r
                    .reason_code()
                    .map_or(Reason::Unspecified, |(_, c)| Reason::from_code(c.0)),
            })
            .collect();
        return Ok(CrlState {
            number: crl.crl_number().cloned(),
            revoked,
        });
    }
    Ok(CrlState::default())
}

/// Signs a CRL for the CA `issuer_der` + `key`: the entries of the previous
/// CRL of that CA found in `previous` (if any) plus `add`, with a CRL number
/// one above the previous one (numbers only grow). Returns PEM.
pub(crate) fn sign_crl(
    what: &str,
    issuer_der: &[u8],
    key: &PrivateKey,
    previous: Option<&[u8]>,
    add: &[Revocation],
    now: OffsetDateTime,
    next_update_days: u32,
) -> Result<String> {
    sign_crl_continuing(
        what,
        issuer_der,
        key,
        (issuer_der, previous),
        add,
        now,
        next_update_days,
    )
}

/// Like [`sign_crl`], for a CA whose certificate was re-issued: the
/// previous CRL is the one `previous.0` (the CA's former certificate,
/// possibly with another key) signed among the blocks of `previous.1`; its
/// entries and number carry over to the CRL `issuer_der` + `key` sign.
pub(crate) fn sign_crl_continuing(
    what: &str,
    issuer_der: &[u8],
    key: &PrivateKey,
    previous: (&[u8], Option<&[u8]>),
    add: &[Revocation],
    now: OffsetDateTime,
    next_update_days: u32,
) -> Result<String> {
    crate::profile::validate_days("CRL next update (days)", next_update_days)?;
    let state = previous_state(what, previous.0, previous.1)?;
    let number = state
        .number
        .map_or_else(|| BigUint::from(1u32), |n| n + 1u32);
    let mut number_bytes = number.to_bytes_be();
    if number_bytes.first().is_some_and(|b| b & 0x80 != 0) {
        number_bytes.insert(0, 0);
    }
    let mut revoked = state.revoked;
    for r in add {
        if !revoked.iter().any(|x| x.serial == r.serial) {
            revoked.push(r.clone());
        }
    }
    let issuer =
        Issuer::from_ca_cert_der(&issuer_der.into(), key).map_err(|e| Error::signing(what, e))?;
    let params = CertificateRevocationListParams {
        this_update: now - Duration::minutes(5),
        next_update: now + Duration::days(i64::from(next_update_days)),
        crl_number: SerialNumber::from_slice(&number_bytes),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&r.serial),
                revocation_time: r.time,
                reason_code: Some(r.reason.to_rcgen()),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: issuer_key_id(issuer_der),
    };
    let crl = params.signed_by(&issuer).map_err(|e| match e {
        rcgen::Error::IssuerNotCrlSigner => Error::NotACa {
            what: what.into(),
            reason: "its keyUsage lacks cRLSign, and Go refuses CRLs from such a CA; \
                     re-issue it with meshca (which adds cRLSign)"
                .into(),
        },
        other => Error::signing(what, other),
    })?;
    let der = crl.der().to_vec();
    Ok(pemutil::encode(&pem::Pem::new("X509 CRL", der)).to_string())
}

fn issuer_key_id(issuer_der: &[u8]) -> KeyIdMethod {
    let ski = crate::issue::parse("issuer", issuer_der)
        .ok()
        .and_then(|c| {
            c.extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                        Some(k.0.to_vec())
                    }
                    _ => None,
                })
        });
    match ski {
        Some(id) => KeyIdMethod::PreSpecified(id),
        None => KeyIdMethod::Sha256,
    }
}

/// Replaces, among the PEM blocks of a `ca-crl.pem`, the CRL issued by the
/// CA `issuer_der` with `new_crl` (put first); keeps every other block.
pub(crate) fn replace_crl_of(
    what: &str,
    ca_crl: &[u8],
    issuer_der: &[u8],
    new_crl: &str,
) -> Result<String> {
    let issuer = crate::issue::parse("issuer certificate", issuer_der)?;
    let mut out = vec![new_crl.to_owned()];
    for block in pemutil::parse_blocks(what, ca_crl)?.iter() {
        if block.tag() == "X509 CRL" {
            if let Ok((_, crl)) = CertificateRevocationList::from_der(block.contents()) {
                if crl.issuer().as_raw() == issuer.subject().as_raw() {
                    continue;
                }
            }
        }
        out.push(pemutil::encode(block).to_string());
    }
    let refs: Vec<&str> = out.iter().map(String::as_str).collect();
    Ok(pemutil::concat(&refs))
}

/// The raw serial number and raw issuer name of the first certificate of a PEM document.
pub(crate) fn serial_and_issuer(what: &str, pem_bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let ders = pemutil::certificates(what, pem_bytes)?;
    let der = ders.first().ok_or_else(|| Error::Pem {
        what: what.into(),
        problem: "no certificate found".into(),
    })?;
    let c = crate::issue::parse(what, der)?;
    Ok((c.raw_serial().to_vec(), c.issuer().as_raw().to_vec()))
}
