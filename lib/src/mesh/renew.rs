//! Renewal: re-issuing cluster intermediates before they expire
//! ([`Mesh::renew`]), and extending the root with the same key and subject
//! ([`Mesh::renew_root`]).
//!
//! A renewed intermediate keeps its cluster's profile: key type, subject
//! (O, CN, L), DNS SANs, the Secret's name, namespace and shape, and its
//! `ca-crl.pem` (the root's CRL as it was, the intermediate's own CRL
//! signed again by the new certificate's key, its number one higher).
//! `root-cert.pem` stays byte-identical, so istiod (which ignores a
//! changed `root-cert.pem` unless `ISTIO_MULTIROOT_MESH=true`) takes the
//! new intermediate with its default settings. Clusters not renewed are
//! left byte-identical.

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

use super::{Cluster, Mesh, MeshRoot};
use crate::bundle::{CA_CERT, CA_CRL, CA_KEY, CERT_CHAIN, ROOT_CERT};
use crate::error::{Error, Result};
use crate::issue::RootCa;
use crate::key::PrivateKey;
use crate::profile::{validate_days, IntermediateParams, KeyType, DEFAULT_BACKDATE};

/// How [`Mesh::renew`] re-issues intermediates.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RenewOptions {
    /// Validity of the renewed intermediates in days; `None` keeps each
    /// one's current validity period (a 10-day intermediate gets 10 days
    /// again). Never past the root's end.
    pub days: Option<u32>,
    /// nextUpdate, in days, of the intermediate CRLs signed again.
    pub crl_days: u32,
}

impl Default for RenewOptions {
    fn default() -> Self {
        RenewOptions {
            days: None,
            crl_days: crate::crl::DEFAULT_CRL_DAYS,
        }
    }
}

/// The keys of the renewed intermediates.
#[derive(Debug)]
#[non_exhaustive]
pub enum RenewKeys {
    /// Keep each cluster's `ca-key.pem` (a new certificate for the same key).
    Reuse,
    /// One new key per cluster, in the order of the clusters, each of the
    /// cluster's key type ([`Mesh::key_types`] gives them).
    New(Vec<PrivateKey>),
}

/// One cluster's intermediate as [`Mesh::renewal_due`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Due {
    /// The cluster.
    pub name: String,
    /// Its intermediate's `notAfter`.
    pub not_after: OffsetDateTime,
    /// Whether it is to be renewed.
    pub due: bool,
}

/// What [`Mesh::renew`] did for one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Renewed {
    /// The cluster.
    pub name: String,
    /// The intermediate's key type (unchanged).
    pub key_type: KeyType,
    /// The old intermediate's `notAfter`.
    pub previous_not_after: OffsetDateTime,
    /// The new intermediate's `notAfter`.
    pub not_after: OffsetDateTime,
    /// The validity asked for, in days.
    pub days: u32,
    /// Whether `notAfter` was cut back to the root's.
    pub clamped: bool,
    /// Whether the intermediate has a new key (else `ca-key.pem` is unchanged).
    pub new_key: bool,
    /// Whether its `ca-crl.pem` was renewed.
    pub crl: bool,
}

/// What [`Mesh::renew_root`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct RootRenewal {
    /// The renewed root certificate (DER; same key and subject).
    pub cert_der: Vec<u8>,
    /// Its `notAfter`.
    pub not_after: OffsetDateTime,
    /// The old root certificate's `notAfter`.
    pub previous_not_after: OffsetDateTime,
    /// The clusters whose `root-cert.pem` (and `cacerts.yaml`) changed.
    pub clusters: Vec<String>,
}

/// The first certificate of a PEM document, parsed, passed to `f`.
fn with_cert<T>(
    what: &str,
    pem: &str,
    f: impl FnOnce(&X509Certificate<'_>) -> Result<T>,
) -> Result<T> {
    let ders = crate::pemutil::certificates(what, pem.as_bytes())?;
    let der = ders.first().ok_or_else(|| Error::Pem {
        what: what.into(),
        problem: "no certificate found".into(),
    })?;
    let cert = crate::issue::parse(what, der)?;
    f(&cert)
}

/// The value of the first `ty` attribute of a name, as text.
fn attribute(
    name: &x509_parser::x509::X509Name<'_>,
    oid: &x509_parser::der_parser::Oid<'_>,
) -> Option<String> {
    name.iter_by_oid(oid)
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned)
}

impl Mesh {
    /// The `notAfter` of cluster `name`'s intermediate (`ca-cert.pem`).
    pub fn intermediate_not_after(&self, name: &str) -> Result<OffsetDateTime> {
        let cluster = self.cluster(name)?;
        with_cert(&format!("{name}/{CA_CERT}"), &cluster.bundle.ca_cert, |c| {
            Ok(c.validity().not_after.to_datetime())
        })
    }

    /// Which of `clusters` (empty: every cluster) are due for renewal at
    /// `now`: with `within_days`, those whose intermediate's `notAfter` is
    /// at most that many days away (or past); without, all of them.
    /// Unknown clusters and unreadable certificates are errors.
    pub fn renewal_due(
        &self,
        clusters: &[String],
        within_days: Option<u32>,
        now: OffsetDateTime,
    ) -> Result<Vec<Due>> {
        self.check_clusters(clusters)?;
        let names: Vec<String> = if clusters.is_empty() {
            self.clusters.keys().cloned().collect()
        } else {
            clusters.to_vec()
        };
        let limit = within_days.map(|d| now + Duration::days(i64::from(d)));
        names
            .into_iter()
            .map(|name| {
                let not_after = self.intermediate_not_after(&name)?;
                let due = limit.is_none_or(|l| not_after <= l);
                Ok(Due {
                    name,
                    not_after,
                    due,
                })
            })
            .collect()
    }

    /// Re-issues the intermediates of `clusters`, signed by `signer` (the
    /// mesh's root), each keeping its profile (see the module docs) and
    /// its `root-cert.pem` byte for byte; every other cluster and file is
    /// left as it was. `keys` says whether each cluster keeps its key or
    /// gets the new one given. Returns the new mesh and what was renewed,
    /// in the order of `clusters`; `self` is unchanged, and any error comes
    /// before anything is issued.
    pub fn renew(
        &self,
        signer: &RootCa,
        clusters: &[String],
        keys: RenewKeys,
        opts: &RenewOptions,
        now: OffsetDateTime,
    ) -> Result<(Mesh, Vec<Renewed>)> {
        self.check_signer(signer)?;
        self.check_clusters(clusters)?;
        for (i, c) in clusters.iter().enumerate() {
            if clusters.iter().take(i).any(|o| o == c) {
                return Err(Error::InvalidArgument {
                    what: "cluster name",
                    value: c.clone(),
                    reason: "given twice".into(),
                });
            }
        }
        if let Some(days) = opts.days {
            validate_days("intermediate validity (days)", days)?;
        }
        validate_days("CRL next update (days)", opts.crl_days)?;
        let keys: Vec<Option<PrivateKey>> = match keys {
            RenewKeys::Reuse => clusters.iter().map(|_| None).collect(),
            RenewKeys::New(keys) => {
                if keys.len() != clusters.len() {
                    return Err(Error::InvalidArgument {
                        what: "keys",
                        value: keys.len().to_string(),
                        reason: format!("one key per cluster is needed ({})", clusters.len()),
                    });
                }
                keys.into_iter().map(Some).collect()
            }
        };
        let work: Vec<(&String, Option<PrivateKey>)> = clusters.iter().zip(keys).collect();
        let done = super::map_parallel(work, 0, &|(name, key)| {
            self.renew_one(signer, name, key, opts, now)
        });
        let mut mesh = self.clone();
        let mut renewed = Vec::new();
        for r in done {
            let (cluster, what) = r?;
            mesh.clusters.insert(what.name.clone(), cluster);
            renewed.push(what);
        }
        Ok((mesh, renewed))
    }

    fn renew_one(
        &self,
        signer: &RootCa,
        name: &str,
        key: Option<PrivateKey>,
        opts: &RenewOptions,
        now: OffsetDateTime,
    ) -> Result<(Cluster, Renewed)> {
        let old = self.cluster(name)?;
        let cert_what = format!("{name}/{CA_CERT}");
        let key_what = format!("{name}/{CA_KEY}");
        let (org, cn, previous_not_after, period, old_der) =
            with_cert(&cert_what, &old.bundle.ca_cert, |c| {
                let subject = c.subject();
                let v = c.validity();
                let (nb, na) = (v.not_before.to_datetime(), v.not_after.to_datetime());
                Ok((
                    attribute(
                        subject,
                        &x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME,
                    ),
                    attribute(subject, &x509_parser::oid_registry::OID_X509_COMMON_NAME),
                    na,
                    // meshca backdates notBefore by a few minutes: whole days.
                    (na - nb).whole_days(),
                    c.as_ref().to_vec(),
                ))
            })?;
        let old_key = PrivateKey::from_pem(&key_what, old.bundle.ca_key.as_bytes())?;
        let new_key = key.is_some();
        let key = match key {
            Some(k) => {
                if k.key_type() != old_key.key_type() {
                    return Err(Error::InvalidArgument {
                        what: "key type",
                        value: k.key_type().to_string(),
                        reason: format!(
                            "{key_what} is {}: a renewed intermediate keeps its key type",
                            old_key.key_type()
                        ),
                    });
                }
                k
            }
            None => old_key,
        };
        let defaults = IntermediateParams::default();
        let days = opts
            .days
            .unwrap_or_else(|| u32::try_from(period.clamp(1, 36_500)).unwrap_or(defaults.days));
        let params = IntermediateParams {
            org: org.unwrap_or(defaults.org),
            cn: cn.unwrap_or(defaults.cn),
            days,
            key_type: key.key_type(),
            san_dns: old.profile.san_dns.clone(),
            backdate: defaults.backdate,
            name_constraints: old.profile.name_constraints.clone(),
        };
        let issued = signer.issue_intermediate(name, &params, key, now)?;
        let mut bundle = issued.ca.bundle();
        // root-cert.pem byte for byte: istiod without ISTIO_MULTIROOT_MESH
        // drops a whole update whose root-cert.pem changed.
        bundle.root_cert = old.bundle.root_cert.clone();
        let crl = match &old.bundle.ca_crl {
            Some(old_crl) => {
                let what = format!("{name}/{CA_CRL}");
                let new_der = crate::pemutil::certificates(&cert_what, bundle.ca_cert.as_bytes())?;
                let new_der = new_der.first().ok_or_else(|| Error::Pem {
                    what: cert_what.clone(),
                    problem: "no certificate found".into(),
                })?;
                let own = crate::crl::sign_crl_continuing(
                    &what,
                    new_der,
                    &issued_key(&issued.ca, &key_what)?,
                    (&old_der, Some(old_crl.as_bytes())),
                    &[],
                    now,
                    opts.crl_days,
                )?;
                Some(crate::crl::replace_crl_of(
                    &what,
                    old_crl.as_bytes(),
                    &old_der,
                    &own,
                )?)
            }
            None => None,
        };
        let has_crl = crl.is_some();
        bundle.ca_crl = crl;
        let mut profile = old.profile.clone();
        profile.key_type = Some(issued.ca.key_type());
        let mut cluster = Cluster {
            bundle,
            profile,
            secret_yaml: old.secret_yaml.clone(),
        };
        cluster.refresh_secret()?;
        let renewed = Renewed {
            name: name.to_owned(),
            key_type: issued.ca.key_type(),
            previous_not_after,
            not_after: issued.ca.not_after(),
            days,
            clamped: issued.clamped,
            new_key,
            crl: has_crl,
        };
        Ok((cluster, renewed))
    }

    /// Renews the root as istiod's self-signed CA rotator does
    /// (security/pkg/pki/ca/selfsignedcarootcertrotator.go): a new
    /// certificate for the same key and the same subject (byte for byte),
    /// with the same subjectKeyIdentifier, basicConstraints and keyUsage,
    /// valid `days` from `now`, with a new serial. Every intermediate the
    /// old certificate signed verifies under the renewed one (same issuer
    /// name, same key, AKI = SKI).
    ///
    /// The renewed certificate is put first in `root-cert.pem`, before the
    /// old contents (as the rotator appends the old roots), in the root
    /// and in every cluster whose `root-cert.pem` holds the old root:
    /// istiod then sees a superset of its roots, which it accepts only with
    /// `ISTIO_MULTIROOT_MESH=true` (pilot/pkg/bootstrap/istio_ca.go,
    /// `handleEvent`). Those clusters' `cert-chain.pem` ends with the
    /// renewed root instead of the old one. `root-key.pem`, the root CRL,
    /// the intermediates and their keys are unchanged.
    pub fn renew_root(
        &self,
        signer: &RootCa,
        days: u32,
        now: OffsetDateTime,
    ) -> Result<(Mesh, RootRenewal)> {
        self.check_signer(signer)?;
        validate_days("root validity (days)", days)?;
        let Some(root) = &self.root else {
            return Err(Error::MissingFile {
                path: ROOT_CERT.into(),
                hint: String::new(),
            });
        };
        let previous_not_after = signer.not_after();
        // A renewal that ends sooner is no renewal: the intermediates
        // would outlive the root that signs from then on, and new ones
        // would be cut to its end (ROOTCA_DAYS from the recipe's
        // environment gives --days unasked).
        if now + Duration::days(i64::from(days)) < previous_not_after {
            return Err(Error::Refused {
                what: ROOT_CERT.into(),
                reason: format!(
                    "the renewed root would end before the current one ({}): give a --days that \
                     reaches past it",
                    previous_not_after.date()
                ),
            });
        }
        let renewed_der = renewed_root_der(signer, days, now)?;
        let renewed_pem = crate::pemutil::certificate_pem(&renewed_der);
        let roots = crate::pemutil::concat(&[&renewed_pem, &root.cert]);
        let not_after = crate::issue::parse(ROOT_CERT, &renewed_der)?
            .validity()
            .not_after
            .to_datetime();
        let mut mesh = self.clone();
        mesh.root = Some(MeshRoot {
            cert: roots,
            key: root.key.clone(),
            key_uri: root.key_uri.clone(),
        });
        let mut changed = Vec::new();
        for (name, cluster) in &mut mesh.clusters {
            let what = format!("{name}/{ROOT_CERT}");
            let holds_old =
                crate::pemutil::certificates(&what, cluster.bundle.root_cert.as_bytes())
                    .map(|ders| ders.iter().any(|d| d.as_slice() == signer.cert_der()))
                    .unwrap_or(false);
            if !holds_old {
                continue;
            }
            cluster.bundle.root_cert =
                crate::pemutil::concat(&[&renewed_pem, &cluster.bundle.root_cert]);
            // cert-chain.pem ends with the renewed root, the first of
            // root-cert.pem (istiod serves the chain after each workload
            // certificate).
            let chain_what = format!("{name}/{CERT_CHAIN}");
            if let Ok(chain) =
                crate::pemutil::certificates(&chain_what, cluster.bundle.cert_chain.as_bytes())
            {
                if chain.iter().any(|d| d.as_slice() == signer.cert_der()) {
                    let pems: Vec<String> = chain
                        .iter()
                        .map(|d| {
                            if d.as_slice() == signer.cert_der() {
                                renewed_pem.clone()
                            } else {
                                crate::pemutil::certificate_pem(d)
                            }
                        })
                        .collect();
                    let refs: Vec<&str> = pems.iter().map(String::as_str).collect();
                    cluster.bundle.cert_chain = crate::pemutil::concat(&refs);
                }
            }
            cluster.refresh_secret()?;
            changed.push(name.clone());
        }
        Ok((
            mesh,
            RootRenewal {
                cert_der: renewed_der,
                not_after,
                previous_not_after,
                clusters: changed,
            },
        ))
    }
}

/// The issued intermediate's key, reloaded for signing its CRL.
fn issued_key(ca: &crate::issue::IntermediateCa, what: &str) -> Result<PrivateKey> {
    PrivateKey::from_pem(what, ca.bundle().ca_key.as_bytes())
}

/// The subject of `c` as rcgen writes it, each attribute with its string
/// type; `None` when rcgen could not write it back the same.
fn distinguished_name(c: &X509Certificate<'_>) -> Option<DistinguishedName> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let mut dn = DistinguishedName::new();
    for rdn in c.subject().iter() {
        let mut attrs = rdn.iter();
        let attr = attrs.next()?;
        if attrs.next().is_some() {
            return None;
        }
        let oid: Vec<u64> = attr.attr_type().iter()?.collect();
        let ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            // The same attribute twice: rcgen keeps one.
            return None;
        }
        let text = std::str::from_utf8(attr.attr_value().data).ok()?;
        let value = match attr.attr_value().header.tag() {
            Tag::PrintableString => DnValue::PrintableString(text.try_into().ok()?),
            Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
            Tag::Ia5String => DnValue::Ia5String(text.try_into().ok()?),
            Tag::T61String => DnValue::TeletexString(text.try_into().ok()?),
            _ => return None,
        };
        dn.push(ty, value);
    }
    Some(dn)
}

fn key_usages(c: &X509Certificate<'_>) -> Vec<rcgen::KeyUsagePurpose> {
    use rcgen::KeyUsagePurpose as K;
    let Ok(Some(ku)) = c.key_usage() else {
        return crate::issue::ca_key_usages();
    };
    let ku = ku.value;
    [
        (ku.digital_signature(), K::DigitalSignature),
        (ku.non_repudiation(), K::ContentCommitment),
        (ku.key_encipherment(), K::KeyEncipherment),
        (ku.data_encipherment(), K::DataEncipherment),
        (ku.key_agreement(), K::KeyAgreement),
        (ku.key_cert_sign(), K::KeyCertSign),
        (ku.crl_sign(), K::CrlSign),
        (ku.encipher_only(), K::EncipherOnly),
        (ku.decipher_only(), K::DecipherOnly),
    ]
    .into_iter()
    .filter_map(|(set, k)| set.then_some(k))
    .collect()
}

/// A new self-signed certificate for `root`'s key and subject.
fn renewed_root_der(root: &RootCa, days: u32, now: OffsetDateTime) -> Result<Vec<u8>> {
    let what = "root certificate";
    let old = crate::issue::parse(what, root.cert_der())?;
    let refuse = |reason: &str| Error::Refused {
        what: ROOT_CERT.into(),
        reason: reason.into(),
    };
    let dn = distinguished_name(&old).ok_or_else(|| {
        refuse("its subject cannot be written again byte for byte (an attribute type or string type meshca does not write); renew it with the tool that made it")
    })?;
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
    p.is_ca = match old.basic_constraints() {
        Ok(Some(bc)) => match bc.value.path_len_constraint {
            Some(n) => IsCa::Ca(BasicConstraints::Constrained(
                u8::try_from(n).unwrap_or(u8::MAX),
            )),
            None => IsCa::Ca(BasicConstraints::Unconstrained),
        },
        _ => return Err(refuse("it is not a CA (no basicConstraints CA:TRUE)")),
    };
    p.key_usages = key_usages(&old);
    let mut ski = None;
    let mut aki = false;
    for ext in old.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(_) => aki = true,
            _ => {}
        }
    }
    if let Some(id) = ski {
        p.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(id);
    }
    p.use_authority_key_identifier_extension = aki;
    p.not_before = now - DEFAULT_BACKDATE;
    p.not_after = now + Duration::days(i64::from(days));
    p.serial_number = Some(crate::issue::random_serial()?);
    let cert = p
        .self_signed(root.key())
        .map_err(|e| Error::signing(what, e))?;
    let der = cert.der().to_vec();
    let new = crate::issue::parse(what, &der)?;
    if new.subject().as_raw() != old.subject().as_raw()
        || new.public_key().raw != old.public_key().raw
    {
        return Err(refuse(
            "the renewed certificate's subject would not be byte-identical, so intermediates would not chain to it",
        ));
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::ROOT_KEY;
    use crate::mesh::NewCluster;
    use crate::{RootParams, SecretOptions, SecretShape, VerifyOptions};

    const NOW: OffsetDateTime = time::macros::datetime!(2026-06-01 12:00 UTC);

    fn ip(kt: KeyType, days: u32, ns: &str) -> IntermediateParams {
        IntermediateParams {
            key_type: kt,
            days,
            san_dns: vec![format!("istiod.{ns}.svc")],
            ..IntermediateParams::default()
        }
    }

    /// east: ECDSA P-256, 10 days, with CRLs; west: P-384, 730 days, the
    /// kubernetes.io/tls Secret in namespace `mesh`.
    fn mesh() -> (Mesh, RootCa) {
        let rp = RootParams {
            key_type: KeyType::EcdsaP256,
            ..RootParams::default()
        };
        let root = RootCa::generate(&rp, NOW).unwrap();
        let east = NewCluster::new(
            "east",
            ip(KeyType::EcdsaP256, 10, "istio-system"),
            PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
        );
        let mut west = NewCluster::new(
            "west",
            ip(KeyType::EcdsaP384, 730, "mesh"),
            PrivateKey::generate(KeyType::EcdsaP384).unwrap(),
        );
        west.secret = Some(SecretOptions {
            namespace: "mesh".into(),
            shape: SecretShape::Tls,
            ..SecretOptions::default()
        });
        let (m, _) = Mesh::new()
            .with_root(&root, Some(root.key().to_pem()), false)
            .unwrap()
            .add_clusters(&root, vec![east, west], false, NOW)
            .unwrap();
        let m = m.write_crls(&root, &["east".into()], NOW, 30).unwrap();
        (m, root)
    }

    fn new_keys(m: &Mesh, clusters: &[String]) -> RenewKeys {
        let types = m.key_types(clusters).unwrap();
        RenewKeys::New(
            types
                .iter()
                .map(|t| PrivateKey::generate(*t).unwrap())
                .collect(),
        )
    }

    #[test]
    fn renewal_keeps_the_profile_and_root_cert_and_leaves_the_others_alone() {
        let (m, root) = mesh();
        let later = NOW + Duration::days(8);
        let due = m.renewal_due(&[], Some(5), later).unwrap();
        let due: Vec<&str> = due
            .iter()
            .filter(|d| d.due)
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(due, ["east"]);
        let names = vec!["east".to_owned()];
        let (r, done) = m
            .renew(
                &root,
                &names,
                new_keys(&m, &names),
                &RenewOptions::default(),
                later,
            )
            .unwrap();
        assert_eq!(done.len(), 1);
        let d = &done[0];
        assert!(d.new_key && d.crl && !d.clamped);
        assert_eq!(d.days, 10, "keeps its validity period");
        assert_eq!(d.not_after, later + Duration::days(10));
        let (old, new) = (&m.clusters["east"], &r.clusters["east"]);
        assert_eq!(new.bundle.root_cert, old.bundle.root_cert);
        assert_ne!(new.bundle.ca_key, old.bundle.ca_key);
        assert_ne!(new.bundle.ca_cert, old.bundle.ca_cert);
        assert_ne!(new.bundle.ca_crl, old.bundle.ca_crl);
        assert_eq!(new.profile, old.profile);
        assert_eq!(r.clusters["west"], m.clusters["west"]);
        assert_eq!(r.root, m.root);
        assert_eq!(r.root_crl, m.root_crl);
        // The result verifies, and the step from the old mesh needs no
        // ISTIO_MULTIROOT_MESH.
        let opts = VerifyOptions::at(later);
        r.check_against(Some(&m), &opts).unwrap();
        let step = crate::verify_mesh_step("a", &m.files(), "b", &r.files(), &opts);
        assert!(step.findings.is_empty(), "{step:#?}");
    }

    #[test]
    fn reuse_key_keeps_the_key_and_a_tls_cluster_keeps_its_shape() {
        let (m, root) = mesh();
        let names = vec!["west".to_owned()];
        let opts = RenewOptions {
            days: Some(365),
            ..RenewOptions::default()
        };
        let (r, done) = m
            .renew(&root, &names, RenewKeys::Reuse, &opts, NOW)
            .unwrap();
        assert!(!done[0].new_key && !done[0].crl);
        assert_eq!(done[0].key_type, KeyType::EcdsaP384);
        let (old, new) = (&m.clusters["west"], &r.clusters["west"]);
        assert_eq!(new.bundle.ca_key, old.bundle.ca_key);
        assert_ne!(new.bundle.ca_cert, old.bundle.ca_cert);
        let yaml = new.secret_yaml.as_ref().unwrap();
        assert!(yaml.contains("kubernetes.io/tls") && yaml.contains("namespace: mesh"));
        assert_eq!(new.profile.san_dns, ["istiod.mesh.svc"]);
        r.check_against(Some(&m), &VerifyOptions::at(NOW)).unwrap();
    }

    #[test]
    fn a_wrong_key_type_or_unknown_cluster_changes_nothing() {
        let (m, root) = mesh();
        let names = vec!["west".to_owned()];
        let keys = RenewKeys::New(vec![PrivateKey::generate(KeyType::EcdsaP256).unwrap()]);
        let e = m
            .renew(&root, &names, keys, &RenewOptions::default(), NOW)
            .unwrap_err();
        assert!(e.to_string().contains("keeps its key type"), "{e}");
        let e = m
            .renew(
                &root,
                &["north".into()],
                RenewKeys::Reuse,
                &RenewOptions::default(),
                NOW,
            )
            .unwrap_err();
        assert!(matches!(e, Error::UnknownCluster { .. }), "{e}");
    }

    /// `root --renew` with fewer days than the root has left (ROOTCA_DAYS
    /// from the recipe's environment sets `--days`) used to shorten the
    /// root: the intermediates then outlived the root that signs. Refused
    /// now, the mesh unchanged; a longer renewal still works.
    #[test]
    fn a_root_renewal_that_would_end_sooner_is_refused() {
        let (m, root) = mesh();
        let e = m
            .renew_root(&root, 365, NOW + Duration::days(1))
            .unwrap_err();
        assert!(matches!(e, Error::Refused { .. }), "{e}");
        assert!(
            e.to_string().contains("would end before the current one"),
            "{e}"
        );
        let (_, renewal) = m.renew_root(&root, 3650, NOW + Duration::days(1)).unwrap();
        assert!(renewal.not_after > renewal.previous_not_after);
    }

    /// The old copy a root renewal keeps in `root-cert.pem` used to make
    /// the certs directory fail verification once it expired (an error on
    /// `DIR/root-cert.pem`, the root `invalid` in `meshca status`), although
    /// every path goes through the renewed copy: now a warning, as in the
    /// clusters' `root-cert.pem`.
    #[test]
    fn the_expired_old_copy_of_a_renewed_root_is_only_a_warning() {
        let rp = RootParams {
            key_type: KeyType::EcdsaP256,
            days: 20,
            ..RootParams::default()
        };
        let root = RootCa::generate(&rp, NOW).unwrap();
        let east = NewCluster::new(
            "east",
            ip(KeyType::EcdsaP256, 10, "istio-system"),
            PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
        );
        let (m, _) = Mesh::new()
            .with_root(&root, Some(root.key().to_pem()), false)
            .unwrap()
            .add_clusters(&root, vec![east], false, NOW)
            .unwrap();
        let (r, _) = m.renew_root(&root, 3650, NOW + Duration::days(5)).unwrap();
        let renewed = RootCa::from_cert_and_key(
            ROOT_CERT,
            r.root.as_ref().unwrap().cert.as_bytes(),
            ROOT_KEY,
            PrivateKey::from_pem(ROOT_KEY, root.key().to_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        let names = vec!["east".to_owned()];
        let opts = RenewOptions {
            days: Some(365),
            ..RenewOptions::default()
        };
        let later = NOW + Duration::days(8);
        let (r, _) = r
            .renew(&renewed, &names, RenewKeys::Reuse, &opts, later)
            .unwrap();
        // Past the old copy's end.
        let at = VerifyOptions::at(NOW + Duration::days(30));
        let report = r.verify("certs", &at);
        let errors: Vec<_> = report
            .findings()
            .filter(|f| f.severity == crate::Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        assert!(report
            .findings()
            .any(|f| f.code == crate::Code::Expired && f.file == "certs/root-cert.pem"));
        // The first certificate, the one the root signs with, is never
        // excused: past the renewed root's end the mesh fails.
        let report = r.verify("certs", &VerifyOptions::at(NOW + Duration::days(4000)));
        assert!(report
            .findings()
            .any(|f| f.severity == crate::Severity::Error
                && f.code == crate::Code::Expired
                && f.file == "certs/root-cert.pem"));
    }

    #[test]
    fn errors_the_mesh_had_block_a_save_unless_allowed_and_new_ones_always_do() {
        let (m, _) = mesh();
        // At NOW + 20 days east (10 days) has expired: an error of `m`.
        let later = VerifyOptions::at(NOW + Duration::days(20));
        let same = m.clone();
        let err = same.check_against(Some(&m), &later).unwrap_err();
        assert!(
            matches!(&err, Error::WouldNotVerify { errors } if errors.iter().all(|e| e.contains(crate::ALREADY_SO))),
            "{err}"
        );
        same.check_against_with(Some(&m), &later, crate::ExistingErrors::Allow)
            .unwrap();
        // A key swapped in is a new error: refused even when allowed.
        let mut broken = m.clone();
        let west_key = m.clusters["west"].bundle.ca_key.clone();
        if let Some(c) = broken.clusters.get_mut("east") {
            c.bundle.ca_key = west_key;
        }
        let now = VerifyOptions::at(NOW);
        for existing in [crate::ExistingErrors::Refuse, crate::ExistingErrors::Allow] {
            let err = broken
                .check_against_with(Some(&m), &now, existing)
                .unwrap_err();
            assert!(
                matches!(&err, Error::WouldNotVerify { errors }
                    if errors.iter().any(|e| e.contains("east/ca-key.pem") && !e.contains(crate::ALREADY_SO))),
                "{err}"
            );
        }
    }

    #[test]
    fn a_renewed_root_has_the_same_key_subject_and_ski_and_still_signs_for_the_mesh() {
        let (m, root) = mesh();
        let later = NOW + Duration::days(20);
        let (r, renewal) = m.renew_root(&root, 7300, later).unwrap();
        assert_eq!(renewal.clusters, ["east", "west"]);
        let old = crate::issue::parse("old", root.cert_der()).unwrap();
        let new = crate::issue::parse("new", &renewal.cert_der).unwrap();
        assert_eq!(old.subject().as_raw(), new.subject().as_raw());
        assert_eq!(old.public_key().raw, new.public_key().raw);
        let ski = |c: &X509Certificate<'_>| {
            c.extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                    _ => None,
                })
        };
        assert_eq!(ski(&old), ski(&new));
        assert_ne!(old.raw_serial(), new.raw_serial());
        assert_eq!(renewal.not_after, later + Duration::days(7300));
        assert_eq!(r.root.as_ref().unwrap().key, m.root.as_ref().unwrap().key);
        assert_eq!(
            r.clusters["east"].bundle.ca_cert,
            m.clusters["east"].bundle.ca_cert
        );
        // Intermediates of the old certificate verify under the renewed one,
        // past the old one's end too.
        // (east, issued for a few days, has expired by then: an error the
        // mesh already had, which the check is told to allow.)
        let opts = VerifyOptions::at(later);
        let report = r
            .check_against_with(Some(&m), &opts, crate::ExistingErrors::Allow)
            .unwrap();
        assert!(report
            .findings()
            .all(|f| f.severity != crate::Severity::Error || f.file.starts_with("east/")));
        assert!(r.check_against(Some(&m), &opts).is_err());
        // The renewed root signs a new cluster that the mesh trusts.
        let c = NewCluster::new(
            "north",
            ip(KeyType::EcdsaP256, 30, "istio-system"),
            PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
        );
        let renewed_root = RootCa::from_cert_and_key(
            ROOT_CERT,
            r.root.as_ref().unwrap().cert.as_bytes(),
            ROOT_KEY,
            PrivateKey::from_pem(ROOT_KEY, root.key().to_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        let (r2, _) = r
            .add_clusters(&renewed_root, vec![c], false, later)
            .unwrap();
        r2.check_against_with(Some(&r), &opts, crate::ExistingErrors::Allow)
            .unwrap();
        // The step changes root-cert.pem: istiod needs ISTIO_MULTIROOT_MESH.
        let step = crate::verify_mesh_step("a", &m.files(), "b", &r.files(), &opts);
        assert!(step
            .findings
            .iter()
            .any(|f| f.code == crate::Code::RootChanged));
        let mut multi = opts.clone();
        multi.multiroot = true;
        let step = crate::verify_mesh_step("a", &m.files(), "b", &r.files(), &multi);
        assert!(step.findings.is_empty(), "{step:#?}");
    }
}
