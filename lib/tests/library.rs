//! The library on its own, in memory, at a pinned time: what an installer
//! linking `meshca` does.

use meshca::{
    cacerts_yaml, verify_bundle, BundleFiles, Code, IntermediateCa, IntermediateParams, KeyType,
    PrivateKey, RootCa, RootParams, SecretData, SecretOptions, Severity, VerifyOptions,
    WorkloadParams,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

const NOW: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

fn root(kt: KeyType) -> RootCa {
    let mut p = RootParams::default();
    p.key_type = kt;
    RootCa::generate(&p, NOW).unwrap()
}

fn files_of(b: &meshca::ClusterBundle) -> BundleFiles {
    let mut f = BundleFiles::default();
    f.ca_cert = Some(b.ca_cert.clone().into_bytes());
    f.ca_key = Some(Zeroizing::new(b.ca_key.as_bytes().to_vec()));
    f.cert_chain = Some(b.cert_chain.clone().into_bytes());
    f.root_cert = Some(b.root_cert.clone().into_bytes());
    f
}

#[test]
fn every_key_type_makes_a_bundle_that_verifies_at_a_pinned_time() {
    for kt in KeyType::ALL {
        let root = root(KeyType::EcdsaP256);
        let key = PrivateKey::generate(kt).unwrap();
        let issued = root
            .issue_intermediate("east", &IntermediateParams::default(), key, NOW)
            .unwrap();
        assert!(!issued.clamped);
        assert_eq!(issued.ca.key_type(), kt);
        assert_eq!(issued.ca.not_after(), NOW + Duration::days(730));
        let bundle = issued.ca.bundle();
        let findings = verify_bundle(
            "east",
            Some("east"),
            &files_of(&bundle),
            &VerifyOptions::at(NOW),
        );
        assert!(findings.is_empty(), "{kt}: {findings:?}");
        // 729 days later it is about to expire; 731 days later it has.
        let soon = verify_bundle(
            "east",
            None,
            &files_of(&bundle),
            &VerifyOptions::at(NOW + Duration::days(729)),
        );
        assert!(soon
            .iter()
            .any(|f| f.code == Code::ExpiresSoon && f.severity == Severity::Warning));
        let late = verify_bundle(
            "east",
            None,
            &files_of(&bundle),
            &VerifyOptions::at(NOW + Duration::days(731)),
        );
        assert!(
            late.iter()
                .any(|f| f.code == Code::Expired && f.file == "east/ca-cert.pem"),
            "{late:?}"
        );
    }
}

#[test]
fn serials_are_random_positive_and_twenty_bytes() {
    let root = root(KeyType::EcdsaP256);
    let mut serials = Vec::new();
    for _ in 0..8 {
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let ca = root
            .issue_intermediate("c", &IntermediateParams::default(), key, NOW)
            .unwrap()
            .ca;
        let serial = ca.serial();
        assert_eq!(serial.len(), meshca::SERIAL_LEN);
        assert_eq!(serial[0] & 0x80, 0, "negative serial");
        serials.push(serial);
    }
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 8);
}

#[test]
fn intermediates_never_outlive_their_root() {
    let mut p = RootParams::default();
    p.key_type = KeyType::EcdsaP256;
    p.days = 100;
    let root = RootCa::generate(&p, NOW).unwrap();
    let issued = root
        .issue_intermediate(
            "c",
            &IntermediateParams::default(),
            PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
            NOW,
        )
        .unwrap();
    assert!(issued.clamped);
    assert_eq!(issued.ca.not_after(), root.not_after());
    // An expired root refuses to sign.
    let err = root
        .issue_intermediate(
            "c",
            &IntermediateParams::default(),
            PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
            NOW + Duration::days(101),
        )
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn workloads_chain_leaf_intermediate_root() {
    let root = root(KeyType::EcdsaP384);
    let ca = root
        .issue_intermediate(
            "vm",
            &IntermediateParams::default(),
            PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
            NOW,
        )
        .unwrap()
        .ca;
    let mut wp = WorkloadParams::default();
    wp.key_type = KeyType::EcdsaP256;
    wp.service_account = "app".into();
    let w = ca
        .issue_workload(
            "vm",
            &wp,
            PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
            NOW,
        )
        .unwrap();
    assert_eq!(
        w.chain,
        format!("{}{}{}", w.cert, ca.cert_pem(), root.cert_pem())
    );
    let items = meshca::inspect_pem("w", w.cert.as_bytes(), NOW).unwrap();
    let meshca::Item::Certificate(c) = &items[0] else {
        panic!()
    };
    assert_eq!(c.sans, ["URI:spiffe://cluster.local/ns/vm/sa/app"]);
    assert!(!c.is_ca);
    assert_eq!(c.extended_key_usage, ["serverAuth", "clientAuth"]);
    assert_eq!(c.days_left, 1);
    // Reloading the intermediate from its bundle signs the same way.
    let again = IntermediateCa::from_bundle("vm", &ca.bundle()).unwrap();
    assert_eq!(again.cert_pem(), ca.cert_pem());
}

#[test]
fn secret_yaml_round_trips_and_verify_sees_a_stale_one() {
    let root = root(KeyType::EcdsaP256);
    let make = |name: &str| {
        root.issue_intermediate(
            name,
            &IntermediateParams::default(),
            PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
            NOW,
        )
        .unwrap()
        .ca
        .bundle()
    };
    let b1 = make("c1");
    let b2 = make("c2");
    let yaml = cacerts_yaml(&b1, &SecretOptions::default()).unwrap();
    let data = SecretData::from_yaml("cacerts.yaml", yaml.as_bytes()).unwrap();
    assert_eq!(data.data["ca-key.pem"].as_slice(), b1.ca_key.as_bytes());
    let mut files = files_of(&b1);
    files.cacerts_yaml = Some(Zeroizing::new(yaml.as_bytes().to_vec()));
    assert!(verify_bundle("c1", None, &files, &VerifyOptions::at(NOW)).is_empty());
    let stale = cacerts_yaml(&b2, &SecretOptions::default()).unwrap();
    files.cacerts_yaml = Some(Zeroizing::new(stale.as_bytes().to_vec()));
    let findings = verify_bundle("c1", None, &files, &VerifyOptions::at(NOW));
    assert!(
        findings.iter().all(|f| f.code == Code::SecretMismatch),
        "{findings:?}"
    );
    assert_eq!(
        findings.len(),
        3,
        "ca-cert, ca-key and cert-chain differ: {findings:?}"
    );
}

#[test]
fn crl_numbers_only_grow_and_revocations_persist() {
    let root = root(KeyType::EcdsaP256);
    let ca = root
        .issue_intermediate(
            "c",
            &IntermediateParams::default(),
            PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
            NOW,
        )
        .unwrap()
        .ca;
    let first = root.crl(None, &[], NOW, 30).unwrap();
    let revoked = root
        .crl(
            Some(first.as_bytes()),
            &[meshca::Revocation::new(
                ca.serial(),
                NOW,
                meshca::Reason::Superseded,
            )],
            NOW,
            30,
        )
        .unwrap();
    let later = root.crl(Some(revoked.as_bytes()), &[], NOW, 30).unwrap();
    let number = |pem: &str| match &meshca::inspect_pem("crl", pem.as_bytes(), NOW).unwrap()[0] {
        meshca::Item::Crl(c) => (c.number.clone().unwrap(), c.revoked.len()),
        _ => panic!(),
    };
    assert_eq!(number(&first), ("1".to_owned(), 0));
    assert_eq!(number(&revoked), ("2".to_owned(), 1));
    assert_eq!(
        number(&later),
        ("3".to_owned(), 1),
        "the revocation must persist"
    );
    // A CRL under our name that our key did not sign is refused, not extended.
    let impostor = self::root(KeyType::EcdsaP256); // same subject, other key
    let err = impostor
        .crl(Some(first.as_bytes()), &[], NOW, 30)
        .unwrap_err();
    assert!(err.to_string().contains("not signed by its key"), "{err}");
}
