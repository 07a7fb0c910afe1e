//! The CRL stage: `ca-crl.pem` as istiod (keycertbundle.go `Verify`) and
//! Envoy will use it.
//!
//! istiod parses every PEM block of `ca-crl.pem` as a CRL and requires,
//! for every certificate of `cert-chain.pem`, a CRL whose signature
//! verifies with it (Go's `RevocationList.CheckSignatureFrom`, which also
//! wants the signer to be a CA with cRLSign when it has a keyUsage). Envoy
//! (BoringSSL) then checks workloads against them: it rejects a CRL past
//! its nextUpdate or before its thisUpdate, a CRL with a critical
//! extension it does not handle (anything but issuingDistributionPoint and
//! authorityKeyIdentifier), and a CRL whose issuingDistributionPoint limits
//! its scope, which then does not cover the chain.

use std::collections::HashMap;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::load::{describe_tag, Loaded};
use super::parse::go_parse_crl_findings;
use super::report::{day, err, join, warn, Code, Finding};
use super::Severity;
use super::VerifyOptions;
use crate::bundle::{CA_CERT, CA_CRL, CERT_CHAIN};
use crate::pemutil;

/// Signature checks allowed when no CRL signer is found by name or key id.
const FALLBACK_SIGNATURES: usize = 16;
/// Signature checks allowed for all the CRLs of one file: a real bundle
/// needs a few (one per CRL and same-named candidate), but many CRLs with
/// one issuer name against many same-named certificates would otherwise
/// cost one check per pair.
const CRL_SIGNATURE_BUDGET: usize = super::path::SIGNATURE_BUDGET;

/// The finding when [`CRL_SIGNATURE_BUDGET`] runs out.
fn budget_spent(file: &str, against: &str) -> Finding {
    err(
        Code::CrlBadSignature,
        file,
        format!("{file}'s CRL signatures cannot be checked against {against} within {CRL_SIGNATURE_BUDGET} signature checks (too many CRLs or same-named certificates); meshca stops there"),
    )
}

fn key_id(c: &X509Certificate<'_>) -> Option<Vec<u8>> {
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

fn crl_key_id(crl: &CertificateRevocationList<'_>) -> Option<Vec<u8>> {
    crl.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

/// istiod's and Envoy's CRL rules for one bundle.
pub(super) fn check_crls(
    label: &str,
    chain: &[Loaded],
    bytes: &[u8],
    opts: &VerifyOptions,
    out: &mut Vec<Finding>,
) {
    let file = join(label, CA_CRL);
    // istiod reads ca-crl.pem's bytes and only checks CRLs when there are
    // any (security/pkg/pki/util/keycertbundle.go: a zero-length CRL is
    // no CRL), so an empty file turns revocation off rather than failing.
    if bytes.is_empty() {
        out.push(warn(
            Code::EmptyFile,
            &file,
            format!("{file} is empty; istiod treats it as absent, so revocation is off"),
        ));
        return;
    }
    let blocks = match pemutil::parse_blocks(&file, bytes) {
        Ok(b) => b,
        Err(e) => {
            out.push(err(Code::NotPem, &file, e.to_string()));
            return;
        }
    };
    super::load::check_pem_format(&file, bytes, out);
    let mut ders: Vec<(usize, Vec<u8>)> = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        if block.tag() == "X509 CRL" {
            ders.push((i + 1, block.contents().to_vec()));
        } else {
            out.push(err(
                Code::WrongContent,
                &file,
                format!(
                    "PEM block {} of {file} is {}; istiod parses every block of {file} as a CRL and fails",
                    i + 1,
                    describe_tag(block.tag())
                ),
            ));
        }
    }
    if ders.is_empty() {
        out.push(err(
            Code::WrongContent,
            &file,
            format!("{file} holds no \"X509 CRL\" block"),
        ));
        return;
    }
    let mut crls: Vec<(usize, CertificateRevocationList<'_>)> = Vec::new();
    for (n, der) in &ders {
        out.extend(go_parse_crl_findings(
            der,
            &format!("{file} (CRL {n})"),
            &file,
        ));
        match CertificateRevocationList::from_der(der) {
            Ok(([], crl)) => crls.push((*n, crl)),
            Ok(_) => out.push(err(
                Code::WrongContent,
                &file,
                format!("{file} (block {n}) has trailing bytes after the CRL"),
            )),
            Err(e) => out.push(err(
                Code::WrongContent,
                &file,
                format!("{file} (block {n}) does not parse as a CRL: {e}"),
            )),
        }
    }
    // The chain parsed once, indexed by subject and by key id (the CRL
    // signer search), and by (issuer, serial) for revoked entries.
    let parsed_chain: Vec<(&Loaded, &X509Certificate<'_>)> = chain
        .iter()
        .filter_map(|l| l.cert().map(|c| (l, c)))
        .collect();
    let mut by_subject: HashMap<&[u8], Vec<usize>> = HashMap::new();
    let mut by_key_id: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for (i, (_, c)) in parsed_chain.iter().enumerate() {
        by_subject.entry(c.subject().as_raw()).or_default().push(i);
        if let Some(k) = key_id(c) {
            by_key_id.entry(k).or_default().push(i);
        }
    }
    let mut covered = vec![false; parsed_chain.len()];
    let by_issuer_serial: HashMap<(&[u8], &[u8]), &Loaded> = parsed_chain
        .iter()
        .map(|(l, c)| ((c.issuer().as_raw(), c.raw_serial()), *l))
        .collect();
    let mut fallback_left = FALLBACK_SIGNATURES;
    let mut signatures_left = CRL_SIGNATURE_BUDGET;
    for (n, crl) in &crls {
        let name = format!("{file} (CRL {n})");
        let mut candidates: Vec<usize> = by_subject
            .get(crl.issuer().as_raw())
            .cloned()
            .unwrap_or_default();
        if let Some(k) = crl_key_id(crl).and_then(|k| by_key_id.get(&k)) {
            candidates.extend(
                k.iter()
                    .filter(|i| !candidates.contains(i))
                    .collect::<Vec<_>>(),
            );
        }
        let mut verifies = |i: &usize| {
            if signatures_left == 0 {
                return None;
            }
            signatures_left -= 1;
            Some(
                parsed_chain
                    .get(*i)
                    .is_some_and(|(_, c)| crl.verify_signature(c.public_key()).is_ok()),
            )
        };
        let mut signers: Vec<usize> = Vec::new();
        for i in &candidates {
            match verifies(i) {
                None => {
                    out.push(budget_spent(&file, &join(label, CERT_CHAIN)));
                    return;
                }
                Some(true) => signers.push(*i),
                Some(false) => {}
            }
        }
        if signers.is_empty() {
            // Go matches by signature alone: try the others, within a budget.
            for i in 0..parsed_chain.len() {
                if candidates.contains(&i) || fallback_left == 0 {
                    continue;
                }
                fallback_left -= 1;
                match verifies(&i) {
                    None => {
                        out.push(budget_spent(&file, &join(label, CERT_CHAIN)));
                        return;
                    }
                    Some(true) => signers.push(i),
                    Some(false) => {}
                }
            }
        }
        if signers.is_empty() {
            out.push(err(
                Code::CrlBadSignature,
                &file,
                format!(
                    "{name} (issuer {}) is not signed by any certificate of {}",
                    crl.issuer(),
                    join(label, CERT_CHAIN)
                ),
            ));
            continue;
        }
        // Envoy (BoringSSL x509_vfy.c get_crl_sk) looks a CA's CRLs up by
        // issuer name: a CRL whose issuer is not its signer's subject
        // (byte for byte) is never used for that CA.
        let named = signers.iter().any(|s| {
            parsed_chain
                .get(*s)
                .is_some_and(|(_, c)| c.subject().as_raw() == crl.issuer().as_raw())
        });
        if !named {
            out.push(err(
                Code::CrlBadSignature,
                &file,
                format!("{name} is signed by a certificate of {} but its issuer name is not that certificate's subject; Envoy finds CRLs by name and never uses it", join(label, CERT_CHAIN)),
            ));
        }
        for s in &signers {
            let Some((signer_l, signer_c)) = parsed_chain.get(*s) else {
                continue;
            };
            let is_ca = super::load::go_is_ca(signer_c);
            let crl_sign = !matches!(signer_c.key_usage(), Ok(Some(ku)) if !ku.value.crl_sign());
            if is_ca {
                // Without cRLSign Go refuses the CRL: said once, below.
                if let Some(flag) = covered.get_mut(*s) {
                    *flag = true;
                }
            }
            if is_ca && !crl_sign {
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
        if let Some(alg) = super::parse::weak_signature_oid(&crl.signature_algorithm.algorithm) {
            out.push(err(
                Code::WeakSignature,
                &file,
                format!(
                    "{name} is signed with {alg}; Go refuses it, so istiod counts it as missing"
                ),
            ));
        }
        // Envoy (BoringSSL) looks a CA's CRL up by issuer name and keeps
        // the best one that verifies (x509_vfy.c get_crl_sk / crl_akid and
        // time scoring): an old CRL next to a current one from the same CA
        // is unused, not fatal.
        let superseded = !in_window(crl, opts)
            && crls.iter().any(|(m, other)| {
                m != n
                    && other.issuer().as_raw() == crl.issuer().as_raw()
                    && in_window(other, opts)
                    && signers.iter().any(|s| {
                        parsed_chain
                            .get(*s)
                            .is_some_and(|(_, c)| other.verify_signature(c.public_key()).is_ok())
                    })
            });
        let severity = if superseded {
            Severity::Warning
        } else {
            Severity::Error
        };
        crl_window(&name, &file, crl, opts, severity, out);
        // The CRL of ca-cert.pem (chain position 0) covers workloads; the
        // others cover CAs.
        let covers_cas = signers.iter().any(|&s| s > 0);
        let covers_leaves = signers.contains(&0);
        crl_extensions(&name, &file, crl, covers_leaves, covers_cas, out);
        for revoked in crl.iter_revoked_certificates() {
            if let Some(l) = by_issuer_serial.get(&(crl.issuer().as_raw(), revoked.raw_serial())) {
                // The first certificate of the chain is ca-cert.pem: say so.
                let cert_name = if chain.first().is_some_and(|f| f.der == l.der) {
                    join(label, CA_CERT)
                } else {
                    l.name.clone()
                };
                out.push(err(
                    Code::Revoked,
                    &file,
                    format!(
                        "{cert_name} is revoked by the CRL of {}: replace this cluster's intermediate",
                        crl.issuer()
                    ),
                ));
            }
        }
    }
    for ((l, c), ok) in parsed_chain.iter().zip(&covered) {
        if *ok {
            continue;
        }
        let why = if super::load::go_is_ca(c) {
            String::new()
        } else {
            " (it is not a CA, so no CRL can be signed by it)".to_owned()
        };
        out.push(err(
            Code::CrlMissing,
            &file,
            format!(
                "{file} has no CRL signed by {} ({}){why}; istiod requires one per certificate of the chain",
                l.name,
                c.subject()
            ),
        ));
    }
}

/// Whether `opts.at` is inside the CRL's thisUpdate..nextUpdate window.
fn in_window(crl: &CertificateRevocationList<'_>, opts: &VerifyOptions) -> bool {
    crl.last_update().to_datetime() <= opts.at
        && crl
            .next_update()
            .is_none_or(|next| next.to_datetime() >= opts.at)
}

/// thisUpdate and nextUpdate against `opts.at`, reported with `severity`
/// (a warning when a current CRL of the same CA supersedes this one).
fn crl_window(
    name: &str,
    file: &str,
    crl: &CertificateRevocationList<'_>,
    opts: &VerifyOptions,
    severity: Severity,
    out: &mut Vec<Finding>,
) {
    let superseded = if severity == Severity::Warning {
        "; a current CRL of the same CA in this file supersedes it, remove it"
    } else {
        ""
    };
    let push = |out: &mut Vec<Finding>, code: Code, message: String| {
        out.push(if severity == Severity::Warning {
            warn(code, file, message)
        } else {
            err(code, file, message)
        });
    };
    let this = crl.last_update().to_datetime();
    if this > opts.at {
        push(
            out,
            Code::CrlNotYetValid,
            format!(
                "{name}: the CRL of {} is not valid before {} (thisUpdate); Envoy rejects it until then{superseded}",
                crl.issuer(),
                super::report::rfc3339(this)
            ),
        );
    }
    if let Some(next) = crl.next_update() {
        if next.to_datetime() < opts.at {
            push(
                out,
                Code::CrlStale,
                format!(
                    "{name}: the CRL of {} was due for renewal on {} (nextUpdate); Envoy rejects connections with a stale CRL{superseded}",
                    crl.issuer(),
                    day(next.to_datetime())
                ),
            );
        }
    }
}

/// Critical extensions and the issuingDistributionPoint's scope.
fn crl_extensions(
    name: &str,
    file: &str,
    crl: &CertificateRevocationList<'_>,
    covers_leaves: bool,
    covers_cas: bool,
    out: &mut Vec<Finding>,
) {
    use x509_parser::oid_registry::{
        OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_ISSUER_DISTRIBUTION_POINT,
    };
    for ext in crl.extensions() {
        if ext.oid == OID_X509_EXT_ISSUER_DISTRIBUTION_POINT
            && !matches!(
                ext.parsed_extension(),
                ParsedExtension::IssuingDistributionPoint(_)
            )
        {
            // BoringSSL decodes the extension when it loads the CRL
            // (x509_crl.c crl_cb): one that does not decode fails the load.
            out.push(err(
                Code::EnvoyParse,
                file,
                format!("{name} has an issuingDistributionPoint that does not decode; Envoy (BoringSSL) refuses to load the CRL"),
            ));
        }
        if let ParsedExtension::IssuingDistributionPoint(idp) = ext.parsed_extension() {
            let mut limits = Vec::new();
            if idp.only_some_reasons.is_some() {
                limits.push("onlySomeReasons");
            }
            if idp.only_contains_user_certs && covers_cas {
                limits.push("onlyContainsUserCerts (it must cover CA certificates)");
            }
            if idp.only_contains_ca_certs && covers_leaves {
                limits.push("onlyContainsCACerts (it must cover workload certificates)");
            }
            if idp.only_contains_attribute_certs {
                limits.push("onlyContainsAttributeCerts");
            }
            if idp.indirect_crl {
                limits.push("indirectCRL");
            }
            if !limits.is_empty() {
                out.push(err(
                    Code::CrlPartialScope,
                    file,
                    format!(
                        "{name} has an issuingDistributionPoint limited by {}: it does not cover every certificate of the chain, and Envoy then fails revocation checks",
                        limits.join(", ")
                    ),
                ));
            }
        }
        if ext.critical
            && ext.oid != OID_X509_EXT_ISSUER_DISTRIBUTION_POINT
            && ext.oid != OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER
        {
            out.push(err(
                Code::CrlCriticalExtension,
                file,
                format!(
                    "{name} has a critical extension {} that Envoy does not handle; it rejects the CRL",
                    ext.oid
                ),
            ));
        }
    }
    for entry in crl.iter_revoked_certificates() {
        if entry.extensions().iter().any(|e| e.critical) {
            out.push(err(
                Code::CrlCriticalExtension,
                file,
                format!(
                    "{name} has a revoked entry with a critical extension; Envoy rejects the CRL"
                ),
            ));
            break;
        }
    }
}

/// The root's own CRL (`root-crl.pem`, from which every cluster's
/// `ca-crl.pem` takes its first CRL): CRL blocks only, each signed by a
/// root of `root-cert.pem`, inside its window, with no extension Envoy
/// refuses.
pub(super) fn check_root_crl(
    file: &str,
    roots: &[Loaded],
    bytes: &[u8],
    opts: &VerifyOptions,
    out: &mut Vec<Finding>,
) {
    let blocks = match pemutil::parse_blocks(file, bytes) {
        Ok(b) => b,
        Err(e) => {
            out.push(err(Code::NotPem, file, e.to_string()));
            return;
        }
    };
    super::load::check_pem_format(file, bytes, out);
    let parsed_roots: Vec<&X509Certificate<'_>> = roots.iter().filter_map(|r| r.cert()).collect();
    let mut signatures_left = CRL_SIGNATURE_BUDGET;
    for (i, block) in blocks.iter().enumerate() {
        let n = i + 1;
        if block.tag() != "X509 CRL" {
            out.push(err(
                Code::WrongContent,
                file,
                format!(
                    "PEM block {n} of {file} is {}, not a CRL",
                    describe_tag(block.tag())
                ),
            ));
            continue;
        }
        let name = format!("{file} (CRL {n})");
        out.extend(go_parse_crl_findings(block.contents(), &name, file));
        let crl = match CertificateRevocationList::from_der(block.contents()) {
            Ok(([], crl)) => crl,
            Ok(_) | Err(_) => {
                out.push(err(
                    Code::WrongContent,
                    file,
                    format!("{name} does not parse as a CRL"),
                ));
                continue;
            }
        };
        let mut signed = false;
        for r in parsed_roots
            .iter()
            .filter(|r| r.subject().as_raw() == crl.issuer().as_raw())
        {
            if signatures_left == 0 {
                out.push(budget_spent(file, "the mesh's root-cert.pem"));
                return;
            }
            signatures_left -= 1;
            if crl.verify_signature(r.public_key()).is_ok() {
                signed = true;
                break;
            }
        }
        if !signed && !parsed_roots.is_empty() {
            out.push(err(
                Code::CrlBadSignature,
                file,
                format!("{name} is not signed by a root of the mesh's root-cert.pem"),
            ));
        }
        crl_window(&name, file, &crl, opts, Severity::Error, out);
        crl_extensions(&name, file, &crl, false, true, out);
    }
}
