//! Unit tests of the stages, on certificates made in memory with rcgen at
//! a pinned time. Compiled only in test builds (`#[cfg(test)] mod tests` in
//! `verify/mod.rs`).

use std::collections::BTreeMap;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    CrlIssuingDistributionPoint, CrlScope, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, NameConstraints, SerialNumber,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::*;

const NOW: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn base_params(cn: &str, ca: bool) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::OrganizationName, "Istio");
    p.distinguished_name.push(DnType::CommonName, cn);
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
    }
    p.not_before = NOW - Duration::days(10);
    p.not_after = NOW + Duration::days(700);
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.serial_number = Some(SerialNumber::from_slice(&[0x11, 0x22, rand_byte()]));
    p
}

fn rand_byte() -> u8 {
    use std::sync::atomic::{AtomicU8, Ordering};
    static N: AtomicU8 = AtomicU8::new(1);
    N.fetch_add(1, Ordering::Relaxed) % 127 + 1
}

fn root_with(cn: &str, key: Option<KeyPair>, f: impl FnOnce(&mut CertificateParams)) -> Ca {
    let key = key.unwrap_or_else(|| KeyPair::generate().unwrap());
    let mut params = base_params(cn, true);
    params.not_after = NOW + Duration::days(3650);
    f(&mut params);
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

fn root(cn: &str) -> Ca {
    root_with(cn, None, |_| {})
}

fn issue(cn: &str, issuer: &Ca, f: impl FnOnce(&mut CertificateParams)) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = base_params(cn, true);
    params.subject_alt_names = vec![rcgen::SanType::DnsName(
        "istiod.istio-system.svc".try_into().unwrap(),
    )];
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    f(&mut params);
    let signer = Issuer::from_params(&issuer.params, &issuer.key);
    let pem = params.signed_by(&key, &signer).unwrap().pem();
    Ca { params, key, pem }
}

fn cat(parts: &[&str]) -> Vec<u8> {
    parts.concat().into_bytes()
}

fn bundle(ca: &Ca, chain: &[&str], roots: &[&str]) -> BundleFiles {
    let mut all = vec![ca.pem.as_str()];
    all.extend_from_slice(chain);
    BundleFiles {
        ca_cert: Some(ca.pem.clone().into_bytes()),
        ca_key: Some(Zeroizing::new(ca.key.serialize_pem().into_bytes())),
        cert_chain: Some(cat(&all)),
        root_cert: Some(cat(roots)),
        ..BundleFiles::default()
    }
}

fn check(files: &BundleFiles) -> Vec<Finding> {
    verify_bundle("c1", None, files, &VerifyOptions::at(NOW))
}

fn errors(findings: &[Finding]) -> Vec<(Code, String)> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| (f.code, f.file.clone()))
        .collect()
}

fn has(findings: &[Finding], severity: Severity, code: Code, file: &str) -> bool {
    findings
        .iter()
        .any(|f| f.severity == severity && f.code == code && f.file == file)
}

#[test]
fn a_plain_bundle_has_no_error() {
    let r = root("Root CA");
    let ca = issue("Intermediate CA", &r, |_| {});
    let f = check(&bundle(&ca, &[&r.pem], &[&r.pem]));
    assert!(errors(&f).is_empty(), "{f:#?}");
}

#[test]
fn path_building_finds_the_renewed_copy_of_an_expired_root() {
    let old = root_with("Root CA", None, |p| {
        p.not_before = NOW - Duration::days(4000);
        p.not_after = NOW - Duration::days(1);
    });
    let key = KeyPair::from_pem(&old.key.serialize_pem()).unwrap();
    let renewed = root_with("Root CA", Some(key), |_| {});
    let ca = issue("Intermediate CA", &renewed, |_| {});
    // The expired copy first: a first-match path builder would stop there.
    let f = check(&bundle(&ca, &[&renewed.pem], &[&old.pem, &renewed.pem]));
    assert!(errors(&f).is_empty(), "{f:#?}");
    // The expired copy off the path is only a warning.
    assert!(
        has(&f, Severity::Warning, Code::Expired, "c1/root-cert.pem"),
        "{f:#?}"
    );
}

#[test]
fn path_building_tries_every_candidate_intermediate() {
    let r = root("Root CA");
    let wrong = issue("Regional CA", &r, |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1))
    });
    let right = issue("Regional CA", &r, |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1))
    });
    let ca = issue("Intermediate CA", &right, |_| {});
    let f = check(&bundle(&ca, &[&wrong.pem, &right.pem, &r.pem], &[&r.pem]));
    assert!(errors(&f).is_empty(), "{f:#?}");
}

#[test]
fn path_building_prefers_a_valid_path_over_an_expired_intermediate() {
    let r = root("Root CA");
    let key = KeyPair::generate().unwrap();
    let key_pem = key.serialize_pem();
    let mut expired_params = base_params("Regional CA", true);
    expired_params.not_before = NOW - Duration::days(100);
    expired_params.not_after = NOW - Duration::days(1);
    let signer = Issuer::from_params(&r.params, &r.key);
    let expired = expired_params.signed_by(&key, &signer).unwrap().pem();
    let mut fresh_params = base_params("Regional CA", true);
    fresh_params.not_after = NOW + Duration::days(1000);
    let fresh = fresh_params.signed_by(&key, &signer).unwrap().pem();
    let regional = Ca {
        params: fresh_params,
        key: KeyPair::from_pem(&key_pem).unwrap(),
        pem: fresh.clone(),
    };
    let ca = issue("Intermediate CA", &regional, |_| {});
    let f = check(&bundle(&ca, &[&expired, &fresh, &r.pem], &[&r.pem]));
    assert!(errors(&f).is_empty(), "{f:#?}");
}

#[test]
fn path_building_stops_at_its_signature_budget_on_hostile_input() {
    let r = root("Root CA");
    // Many look-alike issuers with the CA's issuer name and other keys.
    let decoys: Vec<Ca> = (0..(path::SIGNATURE_BUDGET + 20))
        .map(|_| root("Root CA"))
        .collect();
    let ca = issue("Intermediate CA", &r, |_| {});
    let mut chain: Vec<&str> = decoys.iter().map(|d| d.pem.as_str()).collect();
    chain.push(&r.pem);
    // The trusted root has another name: every look-alike is tried first.
    let trusted = root("Trusted Root CA");
    let started = std::time::Instant::now();
    let f = check(&bundle(&ca, &chain, &[&trusted.pem]));
    assert!(
        f.iter()
            .any(|f| f.code == Code::UntrustedChain && f.message.contains("signature checks")),
        "{f:#?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn an_intermediate_limited_to_server_auth_fails_mtls() {
    let r = root("Root CA");
    let ca = issue("Intermediate CA", &r, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    });
    let f = check(&bundle(&ca, &[&r.pem], &[&r.pem]));
    assert_eq!(
        errors(&f),
        vec![(Code::IncompatibleEku, "c1/ca-cert.pem".into())],
        "{f:#?}"
    );
    // Both usages: fine.
    let ok = issue("Intermediate CA", &r, |p| {
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
    });
    assert!(errors(&check(&bundle(&ok, &[&r.pem], &[&r.pem]))).is_empty());
}

#[test]
fn a_root_limited_to_client_auth_constrains_the_whole_chain() {
    let r = root_with("Root CA", None, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    });
    let ca = issue("Intermediate CA", &r, |_| {});
    let f = check(&bundle(&ca, &[&r.pem], &[&r.pem]));
    assert!(
        has(
            &f,
            Severity::Error,
            Code::IncompatibleEku,
            "c1/root-cert.pem"
        ),
        "{f:#?}"
    );
}

#[test]
fn name_constraints_on_the_root_must_permit_istiod_and_the_trust_domain() {
    // Permitting only another DNS subtree: istiod.istio-system.svc is not permitted.
    let r = root_with("Root CA", None, |p| {
        p.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName("example.com".into())],
            excluded_subtrees: vec![],
        });
    });
    let ca = issue("Intermediate CA", &r, |_| {});
    let f = check(&bundle(&ca, &[&r.pem], &[&r.pem]));
    assert!(
        has(
            &f,
            Severity::Error,
            Code::NameNotPermitted,
            "c1/root-cert.pem"
        ),
        "{f:#?}"
    );
    // Permitting svc: fine (URIs are unconstrained when no URI subtree exists).
    let r = root_with("Root CA", None, |p| {
        p.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName("svc".into())],
            excluded_subtrees: vec![],
        });
    });
    let ca = issue("Intermediate CA", &r, |_| {});
    let f = check(&bundle(&ca, &[&r.pem], &[&r.pem]));
    assert!(errors(&f).is_empty(), "{f:#?}");
}

#[test]
fn name_constraints_are_checked_for_istiods_namespace() {
    let r = root("Root CA");
    let ca = issue("Intermediate CA", &r, |p| {
        p.subject_alt_names.clear();
        p.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![],
            excluded_subtrees: vec![GeneralSubtree::DnsName("mesh-system.svc".into())],
        });
    });
    let files = bundle(&ca, &[&r.pem], &[&r.pem]);
    assert!(errors(&check(&files)).is_empty());
    let mut opts = VerifyOptions::at(NOW);
    opts.namespace = "mesh-system".into();
    let f = verify_bundle("c1", None, &files, &opts);
    assert!(
        has(
            &f,
            Severity::Error,
            Code::NameNotPermitted,
            "c1/ca-cert.pem"
        ),
        "{f:#?}"
    );
}

#[test]
fn ca_cert_pem_that_is_the_root_itself_is_an_error() {
    let r = root("Root CA");
    let files = BundleFiles {
        ca_cert: Some(r.pem.clone().into_bytes()),
        ca_key: Some(Zeroizing::new(r.key.serialize_pem().into_bytes())),
        cert_chain: Some(r.pem.clone().into_bytes()),
        root_cert: Some(r.pem.clone().into_bytes()),
        ..BundleFiles::default()
    };
    let f = check(&files);
    assert!(
        has(&f, Severity::Error, Code::RootAsClusterCa, "c1/ca-cert.pem"),
        "{f:#?}"
    );
}

fn mesh_of(root_cert: &str, clusters: Vec<(&str, BundleFiles)>) -> MeshFiles {
    MeshFiles {
        root_cert: Some(root_cert.as_bytes().to_vec()),
        clusters: clusters
            .into_iter()
            .map(|(n, f)| (n.to_owned(), f))
            .collect::<BTreeMap<_, _>>(),
        ..MeshFiles::default()
    }
}

#[test]
fn a_cluster_chaining_to_a_foreign_root_is_an_error_even_holding_both_roots() {
    let mesh_root = root("Root CA");
    let other = root("Other Root CA");
    let good = issue("Intermediate CA", &mesh_root, |_| {});
    let stray = issue("Intermediate CA", &other, |_| {});
    let both = format!("{}{}", mesh_root.pem, other.pem);
    let mesh = mesh_of(
        &mesh_root.pem,
        vec![
            ("east", bundle(&good, &[&mesh_root.pem], &[&mesh_root.pem])),
            ("west", bundle(&stray, &[&other.pem], &[&both])),
        ],
    );
    let groups = verify_mesh("", &mesh, &VerifyOptions::at(NOW));
    let m = &groups[0].findings;
    assert!(
        has(m, Severity::Error, Code::ForeignRoot, "west/ca-cert.pem"),
        "{m:#?}"
    );
    assert!(
        !has(m, Severity::Error, Code::ForeignRoot, "east/ca-cert.pem"),
        "{m:#?}"
    );
    // The cluster on its own is fine: only the mesh view shows it.
    assert!(errors(&groups[2].findings).is_empty(), "{:#?}", groups[2]);
}

#[test]
fn cross_cluster_trust_is_checked_against_every_distinct_root_set() {
    // No mesh root-cert.pem: east holds only the old root, west only the new one.
    let old = root("Root CA");
    let new = root("New Root CA");
    let east = issue("Intermediate CA", &old, |_| {});
    let west = issue("Intermediate CA", &new, |_| {});
    let mut mesh = MeshFiles::default();
    mesh.clusters
        .insert("east".into(), bundle(&east, &[&old.pem], &[&old.pem]));
    mesh.clusters
        .insert("west".into(), bundle(&west, &[&new.pem], &[&new.pem]));
    let groups = verify_mesh("", &mesh, &VerifyOptions::at(NOW));
    let m = &groups[0].findings;
    assert!(
        has(m, Severity::Error, Code::RootDiffers, "west/root-cert.pem"),
        "{m:#?}"
    );
    assert!(
        has(m, Severity::Error, Code::ForeignRoot, "west/ca-cert.pem"),
        "{m:#?}"
    );
    // Mid-rotation: both hold both roots: no error.
    let both = format!("{}{}", old.pem, new.pem);
    let mut mesh = MeshFiles::default();
    mesh.clusters
        .insert("east".into(), bundle(&east, &[&old.pem], &[&both]));
    mesh.clusters
        .insert("west".into(), bundle(&west, &[&new.pem], &[&both]));
    let groups = verify_mesh("", &mesh, &VerifyOptions::at(NOW));
    assert!(errors(&groups[0].findings).is_empty(), "{:#?}", groups[0]);
}

#[test]
fn the_mesh_root_key_deployed_in_a_cluster_is_an_error() {
    let r = root("Root CA");
    // A "cluster CA" certificate for the root's own key.
    let signer = Issuer::from_params(&r.params, &r.key);
    let params = base_params("Intermediate CA", true);
    let pem = params.signed_by(&r.key, &signer).unwrap().pem();
    let ca = Ca {
        params,
        key: KeyPair::from_pem(&r.key.serialize_pem()).unwrap(),
        pem,
    };
    let mesh = mesh_of(&r.pem, vec![("east", bundle(&ca, &[&r.pem], &[&r.pem]))]);
    let groups = verify_mesh("", &mesh, &VerifyOptions::at(NOW));
    let m = &groups[0].findings;
    assert!(
        has(
            m,
            Severity::Error,
            Code::RootAsClusterCa,
            "east/ca-cert.pem"
        ),
        "{m:#?}"
    );
}

fn crl_of(issuer: &Ca, f: impl FnOnce(&mut CertificateRevocationListParams)) -> String {
    let mut p = CertificateRevocationListParams {
        this_update: NOW - Duration::days(1),
        next_update: NOW + Duration::days(30),
        crl_number: SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: vec![],
        key_identifier_method: KeyIdMethod::Sha256,
    };
    f(&mut p);
    let signer = Issuer::from_params(&issuer.params, &issuer.key);
    p.signed_by(&signer).unwrap().pem().unwrap()
}

#[test]
fn crl_windows_and_scope_are_checked_as_envoy_does() {
    let r = root("Root CA");
    let ca = issue("Intermediate CA", &r, |_| {});
    let with = |ca_crl: String| {
        let mut b = bundle(&ca, &[&r.pem], &[&r.pem]);
        b.ca_crl = Some(format!("{}{}", crl_of(&r, |_| {}), ca_crl).into_bytes());
        check(&b)
    };
    assert!(errors(&with(crl_of(&ca, |_| {}))).is_empty());
    let f = with(crl_of(&ca, |p| {
        p.this_update = NOW - Duration::days(40);
        p.next_update = NOW - Duration::days(10);
    }));
    assert_eq!(
        errors(&f),
        vec![(Code::CrlStale, "c1/ca-crl.pem".into())],
        "{f:#?}"
    );
    let f = with(crl_of(&ca, |p| {
        p.this_update = NOW + Duration::days(1);
        p.next_update = NOW + Duration::days(30);
    }));
    assert_eq!(
        errors(&f),
        vec![(Code::CrlNotYetValid, "c1/ca-crl.pem".into())],
        "{f:#?}"
    );
    // The cluster CA's CRL covers workloads: limited to CA certificates, it does not.
    let f = with(crl_of(&ca, |p| {
        p.issuing_distribution_point = Some(CrlIssuingDistributionPoint {
            distribution_point: CrlDistributionPoint {
                uris: vec!["http://ca.example/ca.crl".into()],
            },
            scope: Some(CrlScope::CaCertsOnly),
        });
    }));
    assert_eq!(
        errors(&f),
        vec![(Code::CrlPartialScope, "c1/ca-crl.pem".into())],
        "{f:#?}"
    );
    // Limited to user certificates, it is fine.
    let f = with(crl_of(&ca, |p| {
        p.issuing_distribution_point = Some(CrlIssuingDistributionPoint {
            distribution_point: CrlDistributionPoint {
                uris: vec!["http://ca.example/ca.crl".into()],
            },
            scope: Some(CrlScope::UserCertsOnly),
        });
    }));
    assert!(errors(&f).is_empty(), "{f:#?}");
}

#[test]
fn pem_headers_and_stray_blocks_are_judged_per_file() {
    let r = root("Root CA");
    let ca = issue("Intermediate CA", &r, |_| {});
    // A header on ca-cert.pem: istiod reads it; a warning.
    let mut b = bundle(&ca, &[&r.pem], &[&r.pem]);
    let headed = ca
        .pem
        .replacen("-----\n", "-----\nComment: cluster CA\n\n", 1);
    b.ca_cert = Some(headed.into_bytes());
    let f = check(&b);
    assert!(
        has(&f, Severity::Warning, Code::PemHeaders, "c1/ca-cert.pem"),
        "{f:#?}"
    );
    assert!(errors(&f).is_empty(), "{f:#?}");
    // A CRL block in cert-chain.pem without ca-crl.pem: a warning.
    let mut b = bundle(&ca, &[&r.pem], &[&r.pem]);
    let crl = crl_of(&r, |_| {});
    b.cert_chain = Some(cat(&[&ca.pem, &r.pem, &crl]));
    let f = check(&b);
    assert!(
        has(
            &f,
            Severity::Warning,
            Code::WrongContent,
            "c1/cert-chain.pem"
        ),
        "{f:#?}"
    );
    assert!(errors(&f).is_empty(), "{f:#?}");
}

fn secret_yaml(namespace: &str, entries: &[(&str, &[u8])], extra: &str) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut y = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cacerts\n  namespace: {namespace}\ntype: Opaque\ndata:\n"
    );
    for (k, v) in entries {
        y.push_str(&format!("  {k}: {}\n", b64.encode(v)));
    }
    y.push_str(extra);
    y.into_bytes()
}

#[test]
fn the_secret_is_judged_as_istiod_mounts_it() {
    let r = root("Root CA");
    let ca = issue("Intermediate CA", &r, |_| {});
    let base = bundle(&ca, &[&r.pem], &[&r.pem]);
    let key = base.ca_key.clone().unwrap();
    let entries = |chain: &[u8]| -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("ca-cert.pem", ca.pem.clone().into_bytes()),
            ("ca-key.pem", key.to_vec()),
            ("cert-chain.pem", chain.to_vec()),
            ("root-cert.pem", r.pem.clone().into_bytes()),
        ]
    };
    let chain = base.cert_chain.clone().unwrap();
    let run_with =
        |opts: &VerifyOptions, ns: &str, e: &[(&str, Vec<u8>)], extra: &str, crl: Option<&str>| {
            let mut b = base.clone();
            let refs: Vec<(&str, &[u8])> = e.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            b.cacerts_yaml = Some(Zeroizing::new(secret_yaml(ns, &refs, extra)));
            b.ca_crl = crl.map(|c| c.as_bytes().to_vec());
            verify_bundle("c1", None, &b, opts)
        };
    let inferred = VerifyOptions::at(NOW);
    let run = |ns: &str, e: &[(&str, Vec<u8>)], extra: &str, crl: Option<&str>| {
        run_with(&inferred, ns, e, extra, crl)
    };
    let yaml = "c1/cacerts.yaml";
    assert!(run("istio-system", &entries(&chain), "", None).is_empty());
    // Unless stated, istiod's namespace is the one the Secret is for.
    assert!(run("default", &entries(&chain), "", None).is_empty());
    let mut stated = VerifyOptions::at(NOW);
    stated.infer_namespace = false;
    let f = run_with(&stated, "default", &entries(&chain), "", None);
    assert_eq!(
        errors(&f),
        vec![(Code::SecretNamespace, yaml.into())],
        "{f:#?}"
    );
    let f = run(
        "istio-system",
        &entries(&chain),
        "  istio-generated: \"\"\n",
        None,
    );
    assert_eq!(
        errors(&f),
        vec![(Code::SecretIstioGenerated, yaml.into())],
        "{f:#?}"
    );
    // ca-crl.pem in the Secret, none in the files.
    let mut with_crl = entries(&chain);
    let crl = format!("{}{}", crl_of(&r, |_| {}), crl_of(&ca, |_| {}));
    with_crl.push(("ca-crl.pem", crl.clone().into_bytes()));
    let f = run("istio-system", &with_crl, "", None);
    assert_eq!(
        errors(&f),
        vec![(Code::SecretMismatch, yaml.into())],
        "{f:#?}"
    );
    assert!(run("istio-system", &with_crl, "", Some(&crl)).is_empty());
    // A tls.crt key: istiod switches layout and ignores the CRL.
    let mut tls = vec![
        ("tls.crt", ca.pem.clone().into_bytes()),
        ("tls.key", key.to_vec()),
        ("ca.crt", r.pem.clone().into_bytes()),
    ];
    assert!(run("istio-system", &tls, "", None).is_empty());
    tls.push(("ca-crl.pem", crl.clone().into_bytes()));
    let f = run("istio-system", &tls, "", Some(&crl));
    assert!(has(&f, Severity::Error, Code::SecretShape, yaml), "{f:#?}");
    // base64 folded as a plain multi-line scalar decodes with spaces.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&chain);
    let (a, b) = b64.split_at(40);
    let folded = format!("  extra.pem: {a}\n    {b}\n");
    let f = run("istio-system", &entries(&chain), &folded, None);
    assert!(has(&f, Severity::Error, Code::SecretBase64, yaml), "{f:#?}");
}

#[test]
fn path_building_tries_the_key_id_match_first_and_stays_within_budget() {
    let r = root("Root CA");
    let regional = issue("Regional CA", &r, |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    });
    let ca = issue("Intermediate CA", &regional, |_| {});
    // More same-named look-alikes than the signature budget, listed first.
    let decoys: Vec<Ca> = (0..(path::SIGNATURE_BUDGET + 20))
        .map(|_| root("Regional CA"))
        .collect();
    let mut chain: Vec<&str> = decoys.iter().map(|d| d.pem.as_str()).collect();
    chain.push(&regional.pem);
    chain.push(&r.pem);
    let f = check(&bundle(&ca, &chain, &[&r.pem]));
    assert!(errors(&f).is_empty(), "{f:#?}");
}

#[test]
fn a_rotation_step_checks_each_ca_against_each_distinct_root_file_once() {
    let old = root("Root CA");
    let new = root("New Root CA");
    let mk = |r: &Ca| {
        let mut m = MeshFiles::default();
        for name in ["east", "west"] {
            let ca = issue("Intermediate CA", r, |_| {});
            m.clusters
                .insert(name.into(), bundle(&ca, &[&r.pem], &[&r.pem]));
        }
        m
    };
    let (prev, cur) = (mk(&old), mk(&new));
    // As Istio by default: any change of root-cert.pem drops the update.
    let g = verify_mesh_step("a", &prev, "b", &cur, &VerifyOptions::at(NOW));
    let count = |code| g.findings.iter().filter(|f| f.code == code).count();
    assert_eq!(count(Code::RootChanged), 2, "{g:#?}");
    assert_eq!(count(Code::RootStep), 0, "{g:#?}");
    assert!(g
        .findings
        .iter()
        .any(|f| f.code == Code::RootChanged && f.message.contains("ISTIO_MULTIROOT_MESH")));
    let mut multiroot = VerifyOptions::at(NOW);
    multiroot.multiroot = true;
    let g = verify_mesh_step("a", &prev, "b", &cur, &multiroot);
    let count = |code| g.findings.iter().filter(|f| f.code == code).count();
    // Neither root set is a superset of the other.
    assert_eq!(count(Code::RootStep), 2, "{g:#?}");
    assert_eq!(count(Code::RootChanged), 0, "{g:#?}");
    // Every CA of each stage against both clusters of the other: 2 x 2 x 2.
    assert_eq!(count(Code::CrossStageTrust), 8, "{g:#?}");
    assert!(g
        .findings
        .iter()
        .any(|f| f.file == "a/east/ca-cert.pem" && f.message.contains("b/west/root-cert.pem")));
    // With both roots everywhere at the new stage: no cross-stage error.
    let both = format!("{}{}", old.pem, new.pem);
    let mut cur = cur;
    for f in cur.clusters.values_mut() {
        f.root_cert = Some(both.clone().into_bytes());
    }
    let mut prev = prev;
    for f in prev.clusters.values_mut() {
        f.root_cert = Some(both.clone().into_bytes());
    }
    let g = verify_mesh_step("a", &prev, "b", &cur, &multiroot);
    assert!(g.findings.is_empty(), "{g:#?}");
}

#[test]
fn the_roots_own_crl_is_checked_in_the_mesh_group() {
    let r = root("Root CA");
    let other = root("Other Root CA");
    let ca = issue("Intermediate CA", &r, |_| {});
    let mut mesh = mesh_of(&r.pem, vec![("east", bundle(&ca, &[&r.pem], &[&r.pem]))]);
    let run = |mesh: &MeshFiles| verify_mesh("", mesh, &VerifyOptions::at(NOW)).remove(0);
    mesh.root_crl = Some(crl_of(&r, |_| {}).into_bytes());
    assert!(run(&mesh).findings.is_empty(), "{:#?}", run(&mesh));
    mesh.root_crl = Some(
        crl_of(&r, |p| {
            p.this_update = NOW - Duration::days(40);
            p.next_update = NOW - Duration::days(10);
        })
        .into_bytes(),
    );
    let g = run(&mesh);
    assert!(
        has(&g.findings, Severity::Error, Code::CrlStale, "root-crl.pem"),
        "{g:#?}"
    );
    mesh.root_crl = Some(crl_of(&other, |_| {}).into_bytes());
    let g = run(&mesh);
    assert!(
        has(
            &g.findings,
            Severity::Error,
            Code::CrlBadSignature,
            "root-crl.pem"
        ),
        "{g:#?}"
    );
}
