//! The Secret stage: `cacerts.yaml` as Kubernetes stores it and istiod
//! mounts it at `/etc/cacerts`.
//!
//! istiod (pilot/pkg/bootstrap/istio_ca.go `detectSigningCABundleAndCRL`)
//! switches to the kubernetes.io/tls layout as soon as `tls.crt` exists,
//! reads `tls.crt`, `tls.key` and `ca.crt`, and then never reads
//! `ca-crl.pem`; with an `istio-generated` key (`createIstioCA`) it treats
//! `cacerts` as its own self-signed CA store.

use super::report::{err, join, warn, Code, Finding};
use super::{BundleFiles, VerifyOptions};
use crate::bundle::{CA_CERT, CA_CRL, CA_KEY, CERT_CHAIN, ROOT_CERT, SECRET_YAML};
use crate::secret::SecretData;

/// `cacerts.yaml` must carry exactly the bundle's files, in the shape and
/// namespace istiod reads.
pub(super) fn check_secret(
    label: &str,
    files: &BundleFiles,
    parsed: &crate::error::Result<SecretData>,
    opts: &VerifyOptions,
    out: &mut Vec<Finding>,
) {
    let file = join(label, SECRET_YAML);
    let secret = match parsed {
        Ok(s) => s,
        Err(e) => {
            out.push(err(Code::SecretInvalid, &file, e.to_string()));
            return;
        }
    };
    folded_base64(&file, secret, out);
    let tls = secret.data.contains_key("tls.crt");
    if secret.type_.as_deref() == Some("kubernetes.io/tls") && !tls {
        out.push(err(
            Code::SecretShape,
            &file,
            format!("{file} is of type kubernetes.io/tls but has no data.tls.crt; Kubernetes refuses it"),
        ));
    }
    if tls && (files.ca_crl.is_some() || secret.data.contains_key(CA_CRL)) {
        out.push(err(
            Code::SecretShape,
            &file,
            format!("{file} has a tls.crt key, so istiod reads the kubernetes.io/tls layout and ignores ca-crl.pem: revocation would be silently off"),
        ));
    }
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
    if files.ca_crl.is_some() && !tls {
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
    if secret.data.contains_key(CA_CRL) && files.ca_crl.is_none() {
        out.push(err(
            Code::SecretMismatch,
            &file,
            format!(
                "{file} has data.ca-crl.pem but there is no {}; istiod would enforce a CRL this directory does not hold",
                join(label, CA_CRL)
            ),
        ));
    }
    if secret.data.contains_key("istio-generated") {
        out.push(err(
            Code::SecretIstioGenerated,
            &file,
            format!("{file} has an istio-generated key; istiod (with USE_CACERTS_FOR_SELF_SIGNED_CA) then treats cacerts as its own self-signed CA and may replace it"),
        ));
    }
    if secret.name != "cacerts" {
        out.push(warn(
            Code::SecretInvalid,
            &file,
            format!("{file} names the Secret differently; istiod reads only \"cacerts\""),
        ));
    }
    match secret.namespace.as_deref() {
        Some(ns) if ns == opts.namespace => {}
        Some(_) => out.push(err(
            Code::SecretNamespace,
            &file,
            format!(
                "{file} puts the Secret in another namespace than {}, where istiod reads cacerts",
                opts.namespace
            ),
        )),
        None => out.push(warn(
            Code::SecretNamespace,
            &file,
            format!(
                "{file} names no namespace; it lands in kubectl's current one, and istiod reads cacerts from {}",
                opts.namespace
            ),
        )),
    }
}

/// A base64 value folded across lines as a plain or folded YAML scalar
/// decodes with spaces in it, which Kubernetes' base64 decoder refuses
/// (newlines, as in a literal block, it accepts).
fn folded_base64(file: &str, secret: &SecretData, out: &mut Vec<Finding>) {
    for key in &secret.folded {
        let key = crate::secret::key_label(key);
        out.push(err(
            Code::SecretBase64,
            file,
            format!("{file}: data.{key} is base64 folded across lines; Kubernetes refuses it (illegal base64 data)"),
        ));
    }
}
