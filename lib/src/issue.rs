//! Building and signing the root CA, cluster intermediates and VM workload
//! certificates.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;

use crate::bundle::ClusterBundle;
use crate::error::{Error, Result};
use crate::key::PrivateKey;
use crate::pemutil;
use crate::profile::{
    validate_days, validate_dns_name, validate_name, IntermediateParams, NameConstraints,
    RootParams, WorkloadParams,
};

/// Length of the random serial numbers meshca writes (RFC 5280 allows up
/// to 20 octets; CA/B Forum asks for 64+ bits of entropy).
pub const SERIAL_LEN: usize = 20;

/// A certificate together with the key it certifies, able to sign others.
///
/// The type parameter-free design keeps root and intermediate apart by
/// type ([`RootCa`], [`IntermediateCa`]) while sharing this signing core.
struct Signer {
    cert_der: Vec<u8>,
    /// rcgen's view of this CA (subject, key identifier, key usages) with
    /// its key, built once when the CA is loaded, not per signature.
    issuer: Issuer<'static, PrivateKey>,
    subject_raw: Vec<u8>,
    spki_der: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Signer {
    /// Loads a CA from its certificate DER and key, checking they belong
    /// together and that the certificate may sign others.
    fn load(cert_what: &str, cert_der: Vec<u8>, key_what: &str, key: PrivateKey) -> Result<Self> {
        let (not_before, not_after, subject_raw, spki_der) = {
            let cert = parse(cert_what, &cert_der)?;
            if cert.public_key().raw != key.public_key_der().as_slice() {
                return Err(Error::KeyMismatch {
                    key: key_what.into(),
                    cert: cert_what.into(),
                });
            }
            check_can_sign(cert_what, &cert)?;
            // rcgen re-encodes the subject from its parts: it supports one
            // attribute per RDN (as every CA here has), no empty RDN.
            if cert.subject().iter().any(|rdn| rdn.iter().count() != 1) {
                return Err(Error::NotACa {
                    what: cert_what.into(),
                    reason: "its subject has an empty or multi-valued RDN, which meshca cannot re-encode".into(),
                });
            }
            (
                cert.validity().not_before.to_datetime(),
                cert.validity().not_after.to_datetime(),
                cert.subject().as_raw().to_vec(),
                cert.public_key().raw.to_vec(),
            )
        };
        let issuer = Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key)
            .map_err(|e| Error::signing(cert_what, e))?;
        Ok(Signer {
            cert_der,
            issuer,
            subject_raw,
            spki_der,
            not_before,
            not_after,
        })
    }

    fn key(&self) -> &PrivateKey {
        self.issuer.key()
    }

    /// Signs `params` for `public` and checks the result: parses, names this
    /// signer as issuer byte for byte (Go's crypto/x509 chains on raw
    /// names), and carries a signature this signer's key verifies.
    fn sign(&self, what: &str, params: &CertificateParams, public: &PrivateKey) -> Result<Vec<u8>> {
        let cert = params
            .signed_by(public, &self.issuer)
            .map_err(|e| Error::signing(what, e))?;
        let der = cert.der().to_vec();
        self.check_issued(what, &der)?;
        Ok(der)
    }

    fn check_issued(&self, what: &str, der: &[u8]) -> Result<()> {
        use x509_parser::prelude::FromDer;
        let issued = parse(what, der)?;
        if issued.issuer().as_raw() != self.subject_raw.as_slice() {
            return Err(Error::BadCertificate {
                what: what.into(),
                reason: "issuer name does not match the CA subject byte for byte".into(),
            });
        }
        let (_, spki) =
            x509_parser::x509::SubjectPublicKeyInfo::from_der(&self.spki_der).map_err(|e| {
                Error::BadCertificate {
                    what: what.into(),
                    reason: format!("issuer key: {e}"),
                }
            })?;
        // Remembered as verify remembers it: the check of the mesh before
        // it is saved meets the same (certificate, signer key) pair.
        let ok = crate::verify::memo::remembered(
            crate::verify::memo::Kind::Signature,
            &[&crate::verify::memo::der_digest(der), &self.spki_der],
            || issued.verify_signature(Some(&spki)).is_ok(),
        );
        if ok {
            Ok(())
        } else {
            Err(Error::BadCertificate {
                what: what.into(),
                reason: "signature does not verify".into(),
            })
        }
    }

    /// The validity of a certificate issued now for `days`, inside this
    /// signer's own validity. Returns whether `notAfter` was clamped.
    fn validity(
        &self,
        what: &str,
        now: OffsetDateTime,
        days: u32,
        backdate: Duration,
    ) -> Result<(OffsetDateTime, OffsetDateTime, bool)> {
        if now >= self.not_after {
            return Err(Error::NotACa {
                what: what.into(),
                reason: format!("the issuing CA expired on {}", fmt_time(self.not_after)),
            });
        }
        let not_before = std::cmp::max(now - backdate, self.not_before);
        let wanted = now + Duration::days(i64::from(days));
        let clamped = wanted > self.not_after;
        Ok((not_before, std::cmp::min(wanted, self.not_after), clamped))
    }
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

pub(crate) fn parse<'a>(what: &str, der: &'a [u8]) -> Result<X509Certificate<'a>> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|e| Error::BadCertificate {
            what: what.into(),
            reason: e.to_string(),
        })
}

fn check_can_sign(what: &str, cert: &X509Certificate<'_>) -> Result<()> {
    let not_ca = |reason: &str| {
        Err(Error::NotACa {
            what: what.into(),
            reason: reason.into(),
        })
    };
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {}
        Ok(_) => return not_ca("basicConstraints does not say CA:TRUE"),
        Err(e) => return not_ca(&format!("bad basicConstraints: {e}")),
    }
    match cert.key_usage() {
        Ok(Some(ku)) if !ku.value.key_cert_sign() => not_ca("keyUsage lacks keyCertSign"),
        Ok(_) => Ok(()),
        Err(e) => not_ca(&format!("bad keyUsage: {e}")),
    }
}

/// A random, positive serial number of [`SERIAL_LEN`] bytes.
pub(crate) fn random_serial() -> Result<SerialNumber> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; SERIAL_LEN];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::signing("serial number", rcgen::Error::KeyGenerationUnavailable))?;
    // Positive (top bit clear) and full length (next bit set), so DER keeps
    // all 20 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// The recipe's subject order: O, CN, then L (the cluster or namespace).
fn subject(org: &str, cn: &str, locality: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CommonName, cn);
    if let Some(l) = locality {
        dn.push(DnType::LocalityName, l);
    }
    dn
}

pub(crate) fn ca_key_usages() -> Vec<KeyUsagePurpose> {
    vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ]
}

fn ia5(what: &'static str, s: &str) -> Result<rcgen::string::Ia5String> {
    rcgen::string::Ia5String::try_from(s).map_err(|e| Error::InvalidArgument {
        what,
        value: s.to_owned(),
        reason: e.to_string(),
    })
}

fn check_text(what: &'static str, s: &str) -> Result<()> {
    if s.trim().is_empty() || s.len() > 64 || s.chars().any(char::is_control) {
        return Err(Error::InvalidArgument {
            what,
            value: s.to_owned(),
            reason: "must be 1 to 64 printable characters".into(),
        });
    }
    Ok(())
}

/// The offline root CA: `root-cert.pem` and `root-key.pem`.
pub struct RootCa {
    signer: Signer,
    /// Every certificate of `root-cert.pem` (several during root rotation).
    root_certs_pem: String,
}

impl std::fmt::Debug for RootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCa")
            .field("not_after", &self.signer.not_after)
            .field("key", self.signer.key())
            .finish_non_exhaustive()
    }
}

impl RootCa {
    /// Makes a self-signed root with a freshly generated key.
    pub fn generate(params: &RootParams, now: OffsetDateTime) -> Result<Self> {
        let key = PrivateKey::generate(params.key_type)?;
        Self::self_signed(params, key, now)
    }

    /// Makes a self-signed root with the given key (its type wins over
    /// `params.key_type`).
    pub fn self_signed(params: &RootParams, key: PrivateKey, now: OffsetDateTime) -> Result<Self> {
        validate_days("root validity (days)", params.days)?;
        check_text("root O", &params.org)?;
        check_text("root CN", &params.cn)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = subject(&params.org, &params.cn, None);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = ca_key_usages();
        p.not_before = now - params.backdate;
        p.not_after = now + Duration::days(i64::from(params.days));
        p.serial_number = Some(random_serial()?);
        p.use_authority_key_identifier_extension = true;
        let cert = p
            .self_signed(&key)
            .map_err(|e| Error::signing("root certificate", e))?;
        let der = cert.der().to_vec();
        let pem = pemutil::certificate_pem(&der);
        let signer = Signer::load("root certificate", der, "root key", key)?;
        Ok(RootCa {
            signer,
            root_certs_pem: pem,
        })
    }

    /// Loads an existing root from the text of `root-cert.pem` and
    /// `root-key.pem`, made by meshca, the openssl recipe or anyone else.
    /// The key may be PKCS#8, PKCS#1 (RSA) or SEC1 (EC). When
    /// `root-cert.pem` holds several roots, the one the key matches signs;
    /// all of them are handed on to clusters as their `root-cert.pem`.
    pub fn from_pem(
        cert_what: &str,
        cert_pem: &[u8],
        key_what: &str,
        key_pem: &[u8],
    ) -> Result<Self> {
        let key = PrivateKey::from_pem(key_what, key_pem)?;
        Self::from_cert_and_key(cert_what, cert_pem, key_what, key)
    }

    /// Like [`RootCa::from_pem`], but an encrypted `root-key.pem` is
    /// decrypted with the passphrase `passphrase` returns (asked only then).
    pub fn from_pem_with_passphrase(
        cert_what: &str,
        cert_pem: &[u8],
        key_what: &str,
        key_pem: &[u8],
        passphrase: &dyn Fn() -> Result<zeroize::Zeroizing<String>>,
    ) -> Result<Self> {
        let key = PrivateKey::from_pem_with_passphrase(key_what, key_pem, passphrase)?;
        Self::from_cert_and_key(cert_what, cert_pem, key_what, key)
    }

    /// Loads a root from a Kubernetes Secret YAML: `istio-ca-secret` as
    /// `kubectl get secret istio-ca-secret -n istio-system -o yaml` saves it
    /// (keys `ca-cert.pem`, `ca-key.pem`: istiod's self-signed CA), or a
    /// `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`). `what` names the
    /// file in errors.
    pub fn from_secret_yaml(
        what: &str,
        yaml: &[u8],
        passphrase: &dyn Fn() -> Result<zeroize::Zeroizing<String>>,
    ) -> Result<Self> {
        let secret = crate::secret::SecretData::from_yaml(what, yaml)?;
        let pick = |names: [&'static str; 2]| {
            names.iter().find_map(|n| {
                secret
                    .data
                    .get(*n)
                    .filter(|v| !v.is_empty())
                    .map(|v| (*n, v))
            })
        };
        let (cert_key, cert) = pick(["ca-cert.pem", "tls.crt"]).ok_or_else(|| Error::BadSecret {
            what: what.into(),
            reason: "no data.ca-cert.pem or data.tls.crt (expected istio-ca-secret or a kubernetes.io/tls Secret)".into(),
        })?;
        let (key_key, key) = pick(["ca-key.pem", "tls.key"]).ok_or_else(|| Error::BadSecret {
            what: what.into(),
            reason: "no data.ca-key.pem or data.tls.key".into(),
        })?;
        let key = PrivateKey::from_pem_with_passphrase(
            &format!("{what} data.{key_key}"),
            key,
            passphrase,
        )?;
        Self::from_cert_and_key(
            &format!("{what} data.{cert_key}"),
            cert,
            &format!("{what} data.{key_key}"),
            key,
        )
    }

    /// Pairs the certificates of `root-cert.pem` with a loaded key.
    pub fn from_cert_and_key(
        cert_what: &str,
        cert_pem: &[u8],
        key_what: &str,
        key: PrivateKey,
    ) -> Result<Self> {
        let certs = pemutil::certificates(cert_what, cert_pem)?;
        let spki = key.public_key_der();
        let mut signing = None;
        for der in &certs {
            let cert = parse(cert_what, der)?;
            if cert.public_key().raw == spki.as_slice() {
                signing = Some(der.clone());
                break;
            }
        }
        let Some(der) = signing else {
            return Err(Error::KeyMismatch {
                key: key_what.into(),
                cert: cert_what.into(),
            });
        };
        {
            let cert = parse(cert_what, &der)?;
            if cert.subject().as_raw() != cert.issuer().as_raw() {
                return Err(Error::NotACa {
                    what: cert_what.into(),
                    reason: "the certificate matching the key is not self-signed \
                             (a root's subject and issuer are equal)"
                        .into(),
                });
            }
        }
        let signer = Signer::load(cert_what, der, key_what, key)?;
        let pems: Vec<String> = certs.iter().map(|d| pemutil::certificate_pem(d)).collect();
        Ok(RootCa {
            signer,
            root_certs_pem: pems.concat(),
        })
    }

    /// The signing root certificate, PEM.
    pub fn cert_pem(&self) -> String {
        pemutil::certificate_pem(&self.signer.cert_der)
    }

    /// The signing root certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.signer.cert_der
    }

    /// `root-cert.pem` as clusters get it: every root certificate, PEM.
    pub fn roots_pem(&self) -> &str {
        &self.root_certs_pem
    }

    /// The root's private key.
    pub fn key(&self) -> &PrivateKey {
        self.signer.key()
    }

    /// The root's `notAfter`.
    pub fn not_after(&self) -> OffsetDateTime {
        self.signer.not_after
    }

    /// Signs the root's CRL: the entries of `previous` (the root's last
    /// CRL, PEM, if any) plus `add`, numbered one above `previous`. Fails
    /// when the root's keyUsage lacks cRLSign (the recipe's roots).
    pub fn crl(
        &self,
        previous: Option<&[u8]>,
        add: &[crate::crl::Revocation],
        now: OffsetDateTime,
        next_update_days: u32,
    ) -> Result<String> {
        crate::crl::sign_crl(
            "root CRL",
            &self.signer.cert_der,
            self.signer.key(),
            previous,
            add,
            now,
            next_update_days,
        )
    }

    /// Issues a cluster's intermediate CA for `key` (its type wins over
    /// `params.key_type`): subject `O=<org>, CN=<cn>, L=<cluster>`,
    /// CA:TRUE pathlen:0, keyCertSign + cRLSign + digitalSignature, the
    /// DNS SANs, an AKI equal to the root's SKI and a random serial.
    ///
    /// The intermediate never outlives the root: a `notAfter` past the
    /// root's is clamped to it, and [`IssuedIntermediate::clamped`] says so.
    pub fn issue_intermediate(
        &self,
        cluster: &str,
        params: &IntermediateParams,
        key: PrivateKey,
        now: OffsetDateTime,
    ) -> Result<IssuedIntermediate> {
        validate_name("cluster name", cluster)?;
        validate_days("intermediate validity (days)", params.days)?;
        check_text("intermediate O", &params.org)?;
        check_text("intermediate CN", &params.cn)?;
        let what = format!("{cluster}/ca-cert.pem");
        let (not_before, not_after, clamped) =
            self.signer
                .validity(&what, now, params.days, params.backdate)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = subject(&params.org, &params.cn, Some(cluster));
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = ca_key_usages();
        for name in &params.san_dns {
            validate_dns_name(name)?;
            p.subject_alt_names
                .push(SanType::DnsName(ia5("DNS SAN", name)?));
        }
        if let Some(nc) = &params.name_constraints {
            p.custom_extensions
                .push(name_constraints_extension(nc, &params.san_dns)?);
        }
        p.not_before = not_before;
        p.not_after = not_after;
        p.serial_number = Some(random_serial()?);
        p.use_authority_key_identifier_extension = true;
        let der = self.signer.sign(&what, &p, &key)?;
        let ca = IntermediateCa {
            cluster: cluster.to_owned(),
            signer: Signer::load(&what, der, &format!("{cluster}/ca-key.pem"), key)?,
            chain_rest_pem: self.cert_pem(),
            root_certs_pem: self.root_certs_pem.clone(),
        };
        Ok(IssuedIntermediate { ca, clamped })
    }
}

/// The critical NameConstraints extension of `nc` for an intermediate with
/// the DNS SANs `san_dns`: permitted URI subtrees (one per trust domain),
/// then DNS subtrees, no excluded subtrees. rcgen's own `NameConstraints`
/// has no URI form, so x509-cert encodes it.
fn name_constraints_extension(
    nc: &NameConstraints,
    san_dns: &[String],
) -> Result<rcgen::CustomExtension> {
    use x509_cert::der::asn1::Ia5String;
    use x509_cert::der::Encode;
    use x509_cert::ext::pkix::constraints::name::GeneralSubtree;
    use x509_cert::ext::pkix::name::GeneralName;
    nc.validate()?;
    let ia5 = |what: &'static str, s: &str| {
        Ia5String::new(s).map_err(|e| Error::InvalidArgument {
            what,
            value: s.to_owned(),
            reason: e.to_string(),
        })
    };
    let subtree = |base| GeneralSubtree {
        base,
        minimum: 0,
        maximum: None,
    };
    let mut permitted = Vec::new();
    for td in &nc.trust_domains {
        permitted.push(subtree(GeneralName::UniformResourceIdentifier(ia5(
            "trust domain",
            td,
        )?)));
    }
    for d in nc.permitted_dns(san_dns) {
        permitted.push(subtree(GeneralName::DnsName(ia5(
            "permitted DNS suffix",
            &d,
        )?)));
    }
    let ext = x509_cert::ext::pkix::NameConstraints {
        permitted_subtrees: Some(permitted),
        excluded_subtrees: None,
    };
    let der = ext.to_der().map_err(|e| Error::BadCertificate {
        what: "name constraints".into(),
        reason: format!("cannot encode: {e}"),
    })?;
    // id-ce-nameConstraints (RFC 5280 4.2.1.10).
    let mut ext = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 30], der);
    ext.set_criticality(true);
    Ok(ext)
}

/// The name constraints of an intermediate certificate (DER) as meshca
/// writes them: the host of each permitted URI subtree as a trust domain,
/// each permitted DNS subtree as a suffix. `None` when the certificate has
/// no NameConstraints extension (or one meshca cannot read back).
pub(crate) fn read_name_constraints(der: &[u8]) -> Option<NameConstraints> {
    use x509_parser::extensions::GeneralName;
    let cert = parse("ca-cert.pem", der).ok()?;
    let nc = cert.name_constraints().ok()??;
    let mut trust_domains = Vec::new();
    let mut permit_dns = Vec::new();
    let mut incomplete = nc.value.excluded_subtrees.is_some();
    for s in nc.value.permitted_subtrees.iter().flatten() {
        match s.base {
            GeneralName::URI(u) => trust_domains.push(u.to_owned()),
            GeneralName::DNSName(d) => permit_dns.push(d.to_owned()),
            _ => incomplete = true,
        }
    }
    if trust_domains.is_empty() {
        incomplete = true;
    }
    Some(NameConstraints {
        trust_domains,
        permit_dns,
        incomplete,
    })
}

/// An intermediate just issued by [`RootCa::issue_intermediate`].
#[derive(Debug)]
#[non_exhaustive]
pub struct IssuedIntermediate {
    /// The intermediate CA.
    pub ca: IntermediateCa,
    /// Whether `notAfter` was cut back to the root's.
    pub clamped: bool,
}

/// A cluster's intermediate CA, the signer behind istiod's `cacerts`.
pub struct IntermediateCa {
    cluster: String,
    signer: Signer,
    /// The certificates that follow `ca-cert.pem` in `cert-chain.pem`.
    chain_rest_pem: String,
    root_certs_pem: String,
}

impl std::fmt::Debug for IntermediateCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntermediateCa")
            .field("cluster", &self.cluster)
            .field("not_after", &self.signer.not_after)
            .field("key", self.signer.key())
            .finish_non_exhaustive()
    }
}

impl IntermediateCa {
    /// Loads a cluster's intermediate from its bundle (to issue workload
    /// certificates with it). Checks that the key matches the certificate,
    /// that it may sign, and that `cert-chain.pem` starts with it.
    pub fn from_bundle(cluster: &str, bundle: &ClusterBundle) -> Result<Self> {
        let cert_what = format!("{cluster}/ca-cert.pem");
        let key_what = format!("{cluster}/ca-key.pem");
        let chain_what = format!("{cluster}/cert-chain.pem");
        let cert = pemutil::certificates(&cert_what, bundle.ca_cert.as_bytes())?;
        let Some(cert_der) = cert.into_iter().next() else {
            return Err(Error::Pem {
                what: cert_what,
                problem: "no certificate found".into(),
            });
        };
        let key = PrivateKey::from_pem(&key_what, bundle.ca_key.as_bytes())?;
        let chain = pemutil::certificates(&chain_what, bundle.cert_chain.as_bytes())?;
        if chain.first() != Some(&cert_der) {
            return Err(Error::BadCertificate {
                what: chain_what,
                reason: format!("does not start with {cert_what}"),
            });
        }
        let rest: Vec<String> = chain
            .iter()
            .skip(1)
            .map(|d| pemutil::certificate_pem(d))
            .collect();
        Ok(IntermediateCa {
            cluster: cluster.to_owned(),
            signer: Signer::load(&cert_what, cert_der, &key_what, key)?,
            chain_rest_pem: rest.concat(),
            root_certs_pem: bundle.root_cert.clone(),
        })
    }

    /// The cluster (or namespace) this intermediate belongs to.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// `ca-cert.pem`.
    pub fn cert_pem(&self) -> String {
        pemutil::certificate_pem(&self.signer.cert_der)
    }

    /// The intermediate's `notAfter`.
    pub fn not_after(&self) -> OffsetDateTime {
        self.signer.not_after
    }

    /// The intermediate's serial number (DER content bytes).
    pub fn serial(&self) -> Vec<u8> {
        parse("ca-cert.pem", &self.signer.cert_der)
            .map(|c| c.raw_serial().to_vec())
            .unwrap_or_default()
    }

    /// `ca-crl.pem` for this cluster, as istiod wants it: the root's CRL
    /// (`root_crl`, PEM), then this intermediate's own, empty CRL, numbered
    /// one above the one it signed in `previous` (the old `ca-crl.pem`).
    pub fn ca_crl(
        &self,
        root_crl: &[u8],
        previous: Option<&[u8]>,
        now: OffsetDateTime,
        next_update_days: u32,
    ) -> Result<String> {
        let own = crate::crl::sign_crl(
            &format!("{}/ca-crl.pem", self.cluster),
            &self.signer.cert_der,
            self.signer.key(),
            previous,
            &[],
            now,
            next_update_days,
        )?;
        Ok(pemutil::concat(&[&String::from_utf8_lossy(root_crl), &own]))
    }

    /// The intermediate key's type.
    pub fn key_type(&self) -> crate::KeyType {
        self.signer.key().key_type()
    }

    /// `cert-chain.pem`: this certificate, then the rest of the chain up to
    /// and including the root.
    pub fn chain_pem(&self) -> String {
        pemutil::concat(&[&self.cert_pem(), &self.chain_rest_pem])
    }

    /// The cluster's four PEM documents.
    pub fn bundle(&self) -> ClusterBundle {
        ClusterBundle::new(
            self.cert_pem(),
            self.signer.key().to_pem(),
            self.chain_pem(),
            self.root_certs_pem.clone(),
        )
    }

    /// Issues a VM workload certificate for `namespace` (the recipe's
    /// `<ns>-certs`): subject `O, CN, L=<namespace>`, CA:FALSE,
    /// digitalSignature (+ keyEncipherment for RSA keys), serverAuth +
    /// clientAuth, SAN URI `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.
    pub fn issue_workload(
        &self,
        namespace: &str,
        params: &WorkloadParams,
        key: PrivateKey,
        now: OffsetDateTime,
    ) -> Result<Workload> {
        validate_name("namespace", namespace)?;
        validate_days("workload validity (days)", params.days)?;
        check_text("workload O", &params.org)?;
        check_text("workload CN", &params.cn)?;
        if params.service_account.is_empty()
            || params.service_account.contains('/')
            || params.service_account.chars().any(char::is_whitespace)
        {
            return Err(Error::InvalidArgument {
                what: "service account",
                value: params.service_account.clone(),
                reason: "must be a non-empty name without '/' or spaces".into(),
            });
        }
        validate_dns_name(&params.trust_domain).map_err(|_| Error::InvalidArgument {
            what: "trust domain",
            value: params.trust_domain.clone(),
            reason: "must be a DNS name such as cluster.local".into(),
        })?;
        let what = format!("{namespace}/workload-cert.pem");
        let (not_before, not_after, _) =
            self.signer
                .validity(&what, now, params.days, params.backdate)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = subject(&params.org, &params.cn, Some(namespace));
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if key.key_type().is_rsa() {
            p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.subject_alt_names = vec![SanType::URI(ia5(
            "SPIFFE ID",
            &params.spiffe_id(namespace),
        )?)];
        p.not_before = not_before;
        p.not_after = not_after;
        p.serial_number = Some(random_serial()?);
        p.use_authority_key_identifier_extension = true;
        let der = self.signer.sign(&what, &p, &key)?;
        let cert = pemutil::certificate_pem(&der);
        Ok(Workload {
            chain: pemutil::concat(&[&cert, &self.chain_pem()]),
            cert,
            key,
            root_cert: self.root_certs_pem.clone(),
        })
    }
}

/// A VM workload's certificate, key, chain and root.
#[derive(Debug)]
#[non_exhaustive]
pub struct Workload {
    /// `workload-cert.pem`.
    pub cert: String,
    /// `key.pem`.
    pub key: PrivateKey,
    /// `workload-cert-chain.pem`: leaf, intermediate, root.
    pub chain: String,
    /// `root-cert.pem`.
    pub root_cert: String,
}
