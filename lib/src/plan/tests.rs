use time::macros::datetime;

use super::*;
use crate::verify::VerifyOptions;

const AT: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

fn file(body: &str) -> MeshFile {
    let text = format!(
        "apiVersion: meshca/v1\nkind: Mesh\nroot:\n  keyType: ecdsa-p256\n\
         defaults:\n  keyType: ecdsa-p256\n  renewBefore: 60\n{body}"
    );
    MeshFile::parse("mesh.yaml", text.as_bytes()).unwrap()
}

fn keys(plan: &Plan) -> Vec<PrivateKey> {
    plan.key_types()
        .into_iter()
        .map(|t| PrivateKey::generate(t).unwrap())
        .collect()
}

fn signer(mesh: &Mesh) -> RootCa {
    let root = mesh.root.as_ref().unwrap();
    RootCa::from_pem(
        ROOT_CERT,
        root.cert.as_bytes(),
        ROOT_KEY,
        root.key.as_ref().unwrap().as_bytes(),
    )
    .unwrap()
}

/// plan + apply + check, as `meshca apply` does.
fn apply(f: &MeshFile, mesh: &Mesh, at: OffsetDateTime) -> (Plan, Mesh) {
    let p = plan(f, mesh, at).unwrap();
    let s = mesh.root.as_ref().map(|_| signer(mesh));
    let new = p
        .apply(
            mesh,
            if p.needs_root_key() { s.as_ref() } else { None },
            keys(&p),
            at,
        )
        .unwrap();
    new.check_against(Some(mesh), &VerifyOptions::at(at))
        .unwrap();
    (p, new)
}

fn kinds(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .map(|a| match a {
            Action::CreateRoot { .. } => "create-root".to_owned(),
            Action::AddCluster { cluster } => format!("add {}", cluster.name),
            Action::Reissue { cluster, .. } => format!("reissue {}", cluster.name),
            Action::Renew { cluster, .. } => format!("renew {}", cluster.name),
            Action::RefreshRootCrl { clusters, .. } => format!("root-crl {}", clusters.join(",")),
            Action::RefreshCrl { cluster, .. } => format!("crl {cluster}"),
        })
        .collect()
}

const TWO: &str = "clusters:\n  - name: east\n  - name: west\n";

#[test]
fn an_empty_mesh_plans_the_root_and_every_cluster() {
    let p = plan(&file(TWO), &Mesh::new(), AT).unwrap();
    assert_eq!(kinds(&p), ["create-root", "add east", "add west"]);
    assert!(!p.needs_root_key());
    assert_eq!(p.key_types(), [KeyType::EcdsaP256; 3]);
    assert!(p.unmanaged.is_empty());
}

#[test]
fn after_apply_the_plan_is_empty_and_the_mesh_verifies() {
    let f = file(TWO);
    let (_, mesh) = apply(&f, &Mesh::new(), AT);
    let report = mesh.verify("", &VerifyOptions::at(AT));
    assert_eq!(report.errors, 0, "{report:?}");
    assert!(plan(&f, &mesh, AT).unwrap().is_empty());
    assert_eq!(mesh.clusters.keys().collect::<Vec<_>>(), ["east", "west"]);
}

#[test]
fn drift_reissues_only_the_drifted_cluster() {
    let (_, mesh) = apply(&file(TWO), &Mesh::new(), AT);
    for (body, field) in [
        (
            "clusters:\n  - name: east\n  - name: west\n    keyType: ecdsa-p384\n",
            "keyType",
        ),
        (
            "clusters:\n  - name: east\n  - name: west\n    namespace: istio\n",
            "namespace",
        ),
        (
            "clusters:\n  - name: east\n  - name: west\n    secret: tls\n",
            "secret",
        ),
    ] {
        let f = file(body);
        let p = plan(&f, &mesh, AT).unwrap();
        assert_eq!(kinds(&p), ["reissue west"], "{field}");
        let Some(Action::Reissue { drift, .. }) = p.actions.first() else {
            panic!("{p:?}")
        };
        assert!(drift.iter().any(|d| d.field == field), "{drift:?}");
        assert!(p.needs_root_key());
        let (_, new) = apply(&f, &mesh, AT);
        assert_eq!(new.clusters["east"], mesh.clusters["east"], "{field}");
        assert_ne!(
            new.clusters["west"].bundle.ca_cert,
            mesh.clusters["west"].bundle.ca_cert
        );
        assert_eq!(new.root, mesh.root);
        assert!(plan(&f, &new, AT).unwrap().is_empty(), "{field}");
    }
}

#[test]
fn renew_before_renews_at_a_pinned_time() {
    let f = file(TWO);
    let (_, mesh) = apply(&f, &Mesh::new(), AT);
    // 730-day intermediates: 680 days on, 50 are left, under renewBefore 60.
    assert!(plan(&f, &mesh, AT + Duration::days(660))
        .unwrap()
        .is_empty());
    let later = AT + Duration::days(680);
    let p = plan(&f, &mesh, later).unwrap();
    assert_eq!(kinds(&p), ["renew east", "renew west"]);
    let Some(Action::Renew { days_left, .. }) = p.actions.first() else {
        panic!("{p:?}")
    };
    assert_eq!(*days_left, 50);
    let (_, new) = apply(&f, &mesh, later);
    assert!(plan(&f, &new, later).unwrap().is_empty());
    assert_eq!(new.root, mesh.root);
}

#[test]
fn a_cluster_the_file_drops_is_reported_and_kept() {
    let (_, mesh) = apply(&file(TWO), &Mesh::new(), AT);
    let f = file("clusters:\n  - name: east\n");
    let p = plan(&f, &mesh, AT).unwrap();
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(p.unmanaged, ["west"]);
    let new = p.apply(&mesh, None, Vec::new(), AT).unwrap();
    assert_eq!(new, mesh);
}

#[test]
fn stale_crls_are_refreshed_and_spread() {
    let f = file(TWO);
    let (_, mesh) = apply(&f, &Mesh::new(), AT);
    let names = vec!["east".to_owned(), "west".to_owned()];
    let mesh = mesh
        .write_crls(&signer(&mesh), &names, AT, DEFAULT_CRL_DAYS)
        .unwrap();
    assert!(plan(&f, &mesh, AT + Duration::days(30)).unwrap().is_empty());
    let later = AT + Duration::days(70);
    let p = plan(&f, &mesh, later).unwrap();
    assert_eq!(kinds(&p), ["root-crl east,west"]);
    let (_, new) = apply(&f, &mesh, later);
    assert_ne!(new.root_crl, mesh.root_crl);
    assert_eq!(
        new.clusters["east"].bundle.ca_cert,
        mesh.clusters["east"].bundle.ca_cert
    );
    assert!(plan(&f, &new, later).unwrap().is_empty());
}

#[test]
fn a_root_unlike_the_file_is_noted_never_replaced() {
    let (_, mesh) = apply(&file(TWO), &Mesh::new(), AT);
    let text = "apiVersion: meshca/v1\nkind: Mesh\nroot:\n  keyType: rsa-2048\n  cn: Other\n\
                defaults:\n  keyType: ecdsa-p256\n";
    let f = MeshFile::parse("m.yaml", text.as_bytes()).unwrap();
    let p = plan(&f, &mesh, AT).unwrap();
    assert!(p.is_empty());
    assert_eq!(p.notes.len(), 1, "{p:?}");
    assert!(p.notes[0].contains("keyType, cn"), "{p:?}");
}

#[test]
fn audit_in_sync_drifted_and_foreign_root() {
    let (_, mesh) = apply(&file(TWO), &Mesh::new(), AT);
    let east = &mesh.clusters["east"];
    let west = &mesh.clusters["west"];
    let ours = east.secret_yaml.as_ref().unwrap();
    // Server fields as `kubectl get -o yaml` adds them.
    let live = ours.replace(
        "metadata:\n",
        "metadata:\n  uid: 0b9c\n  resourceVersion: \"42\"\n  creationTimestamp: \"2026-01-01T00:00:00Z\"\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: |\n      {}\n  managedFields: []\n",
    );
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-ca-root-cert\ndata:\n  root-cert.pem: |\n{}",
        east.bundle
            .root_cert
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let a = audit::audit(
        "east",
        east,
        ("s.yaml", live.as_bytes()),
        Some(("cm.yaml", cm.as_bytes())),
        AT,
    )
    .unwrap();
    assert!(a.in_sync(), "{a:?}");
    // A List of one.
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}",
        live.lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
            .replacen("  ", "- ", 1)
    );
    let a = audit::audit("east", east, ("l.yaml", list.as_bytes()), None, AT).unwrap();
    assert!(a.in_sync(), "{a:?}");
    // west's Secret where east's belongs.
    let wrong = west.secret_yaml.as_ref().unwrap();
    let a = audit::audit("east", east, ("s.yaml", wrong.as_bytes()), None, AT).unwrap();
    let what: Vec<&str> = a.differences.iter().map(|d| d.what.as_str()).collect();
    assert_eq!(
        what,
        ["ca-cert.pem", "ca-key.pem", "cert-chain.pem"],
        "{a:?}"
    );
    let cert = &a.differences[0];
    assert_ne!(cert.ours[0].serial, cert.theirs[0].serial);
    assert!(cert.theirs[0].subject.contains("west"), "{cert:?}");
    // A foreign root in the ConfigMap.
    let other = RootCa::generate(
        &RootParams {
            key_type: KeyType::EcdsaP256,
            ..RootParams::default()
        },
        AT,
    )
    .unwrap();
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-ca-root-cert\ndata:\n  root-cert.pem: {:?}\n",
        other.cert_pem()
    );
    let a = audit::audit(
        "east",
        east,
        ("s.yaml", live.as_bytes()),
        Some(("cm.yaml", cm.as_bytes())),
        AT,
    )
    .unwrap();
    assert_eq!(a.differences.len(), 1, "{a:?}");
    assert_eq!(a.differences[0].what, "ConfigMap root-cert.pem");
}

#[test]
fn audit_of_garbage_names_the_file_and_echoes_nothing() {
    let (_, mesh) = apply(&file(TWO), &Mesh::new(), AT);
    let east = &mesh.clusters["east"];
    let e = audit::audit("east", east, ("s.yaml", b"data: [sekrit-value\n"), None, AT)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("s.yaml: "), "{e}");
    assert!(!e.contains("sekrit"), "{e}");
    let e = audit::audit(
        "east",
        east,
        ("s.yaml", b"apiVersion: v1\nkind: Pod\n"),
        None,
        AT,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("kind Secret") && !e.contains("Pod"), "{e}");
}

#[test]
fn audit_takes_the_tls_layout_when_tls_crt_is_there() {
    let f = file("clusters:\n  - name: north\n    secret: tls\n");
    let (_, mesh) = apply(&f, &Mesh::new(), AT);
    let north = &mesh.clusters["north"];
    // `kubectl create secret generic` with tls.crt, tls.key, ca.crt: type
    // Opaque, yet istiod reads it in the TLS layout.
    let ours = north.secret_yaml.as_ref().unwrap();
    assert!(ours.contains("type: kubernetes.io/tls"));
    let live = ours.replace("type: kubernetes.io/tls", "type: Opaque");
    let a = audit::audit("north", north, ("s.yaml", live.as_bytes()), None, AT).unwrap();
    let what: Vec<&str> = a.differences.iter().map(|d| d.what.as_str()).collect();
    assert_eq!(what, ["type"], "{a:?}");
}

/// "1 MiB of nested brackets as cacerts.yaml takes minutes", for the mesh
/// file and the Secret audit reads.
#[test]
fn a_mebibyte_of_nested_brackets_is_refused_at_once() {
    let text = vec![b'['; (1 << 20) - 1];
    let started = std::time::Instant::now();
    let e = MeshFile::parse("mesh.yaml", &text).unwrap_err();
    assert!(e.problem.contains("nested"), "{e}");
    let (_, mesh) = apply(&file(TWO), &Mesh::new(), AT);
    let e = audit::audit("east", &mesh.clusters["east"], ("s.yaml", &text), None, AT)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nested"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// plan + apply + check with the file's trust domain, as `meshca apply`.
fn apply_checked(f: &MeshFile, mesh: &Mesh, at: OffsetDateTime) -> Mesh {
    let p = plan(f, mesh, at).unwrap();
    let s = mesh.root.as_ref().map(|_| signer(mesh));
    let new = p
        .apply(
            mesh,
            if p.needs_root_key() { s.as_ref() } else { None },
            keys(&p),
            at,
        )
        .unwrap();
    let mut opts = VerifyOptions::at(at);
    opts.trust_domain = f.trust_domain.clone();
    new.check_against(Some(mesh), &opts).unwrap();
    new
}

fn constraints_of(mesh: &Mesh, cluster: &str) -> Option<NameConstraints> {
    let ders = crate::pemutil::certificates(
        "ca-cert.pem",
        mesh.clusters[cluster].bundle.ca_cert.as_bytes(),
    )
    .unwrap();
    crate::issue::read_name_constraints(&ders[0])
}

const CONSTRAINED: &str = "trustDomain: mesh.example\n\
    clusters:\n  - name: east\n    nameConstraints: true\n    permitDns: [.svc.example]\n  - name: west\n";

#[test]
fn name_constraints_from_the_file_are_issued_and_checked_with_its_trust_domain() {
    let text = format!(
        "apiVersion: meshca/v1\nkind: Mesh\nroot:\n  keyType: ecdsa-p256\n\
         defaults:\n  keyType: ecdsa-p256\n{CONSTRAINED}"
    );
    let f = MeshFile::parse("mesh.yaml", text.as_bytes()).unwrap();
    let mesh = apply_checked(&f, &Mesh::new(), AT);
    let nc = constraints_of(&mesh, "east").expect("east is constrained");
    assert_eq!(nc.trust_domains, ["mesh.example"]);
    assert!(nc.permit_dns.contains(&".svc.example".to_owned()), "{nc:?}");
    assert!(
        nc.permit_dns
            .contains(&"istiod.istio-system.svc".to_owned()),
        "{nc:?}"
    );
    assert_eq!(constraints_of(&mesh, "west"), None);
    assert!(plan(&f, &mesh, AT).unwrap().is_empty());
    // Checked against another trust domain, the constrained intermediate
    // does not permit its workloads: the check apply makes matters.
    let report = mesh.verify("", &VerifyOptions::at(AT));
    assert!(report.errors > 0, "{report:?}");
}

#[test]
fn name_constraints_drift_on_off_and_trust_domain_reissues() {
    let head = "apiVersion: meshca/v1\nkind: Mesh\nroot:\n  keyType: ecdsa-p256\n\
                defaults:\n  keyType: ecdsa-p256\n";
    let parse =
        |body: &str| MeshFile::parse("mesh.yaml", format!("{head}{body}").as_bytes()).unwrap();
    let off = parse(TWO);
    let on = parse(&format!("  nameConstraints: true\n{TWO}"));
    let other = parse(&format!(
        "  nameConstraints: true\ntrustDomain: other.example\n{TWO}"
    ));
    let mesh = apply_checked(&off, &Mesh::new(), AT);
    let mut last = mesh.clone();
    for (f, have, want) in [
        (&on, "off", "trust domain cluster.local"),
        (
            &other,
            "trust domain cluster.local",
            "trust domain other.example",
        ),
        (&off, "trust domain other.example", "off"),
    ] {
        let p = plan(f, &last, AT).unwrap();
        assert_eq!(kinds(&p), ["reissue east", "reissue west"], "{want}");
        let Some(Action::Reissue { drift, .. }) = p.actions.first() else {
            panic!("{p:?}")
        };
        assert_eq!(drift.len(), 1, "{drift:?}");
        assert_eq!(
            (
                drift[0].field,
                drift[0].have.as_str(),
                drift[0].want.as_str()
            ),
            ("nameConstraints", have, want)
        );
        let new = apply_checked(f, &last, AT);
        assert!(plan(f, &new, AT).unwrap().is_empty(), "{want}");
        assert_eq!(new.root, last.root);
        last = new;
    }
    assert_eq!(constraints_of(&last, "east"), None);
}

/// Renew goes through Mesh::renew: the subject, the name constraints and
/// root-cert.pem are kept, the cluster's own CRL is continued (its
/// number one higher), and a new key is used.
#[test]
fn renew_keeps_the_profile_root_bytes_constraints_and_crl_numbering() {
    let text = "apiVersion: meshca/v1\nkind: Mesh\nroot:\n  keyType: ecdsa-p256\n\
                defaults:\n  keyType: ecdsa-p256\n  renewBefore: 60\n  nameConstraints: true\n\
                clusters:\n  - name: east\n  - name: west\n";
    let f = MeshFile::parse("mesh.yaml", text.as_bytes()).unwrap();
    let mesh = apply_checked(&f, &Mesh::new(), AT);
    let names = vec!["east".to_owned()];
    let mesh = mesh
        .write_crls(&signer(&mesh), &names, AT, DEFAULT_CRL_DAYS)
        .unwrap();
    let later = AT + Duration::days(680);
    let p = plan(&f, &mesh, later).unwrap();
    // The CRLs are stale too: the root's is refreshed into east's
    // ca-crl.pem before east is renewed.
    assert_eq!(
        kinds(&p),
        ["renew east", "renew west", "root-crl east"],
        "{p:?}"
    );
    let new = apply_checked(&f, &mesh, later);
    assert!(plan(&f, &new, later).unwrap().is_empty());
    for name in ["east", "west"] {
        let (old_c, new_c) = (&mesh.clusters[name], &new.clusters[name]);
        assert_eq!(new_c.bundle.root_cert, old_c.bundle.root_cert, "{name}");
        assert_ne!(new_c.bundle.ca_cert, old_c.bundle.ca_cert, "{name}");
        assert_ne!(
            *new_c.bundle.ca_key, *old_c.bundle.ca_key,
            "{name}: new key"
        );
        assert_eq!(constraints_of(&new, name), constraints_of(&mesh, name));
        assert!(constraints_of(&new, name).is_some());
        assert_eq!(new_c.profile, old_c.profile, "{name}");
    }
    let numbers = |m: &Mesh| -> Vec<Option<String>> {
        inspect_pem(
            "ca-crl.pem",
            m.clusters["east"]
                .bundle
                .ca_crl
                .as_ref()
                .unwrap()
                .as_bytes(),
            later,
        )
        .unwrap()
        .into_iter()
        .filter_map(|i| match i {
            Item::Crl(c) => Some(c.number),
            _ => None,
        })
        .collect()
    };
    // The root's once more (refreshed), east's own twice more (refreshed
    // with the root's, then continued by renew), in either order.
    let (before, mut after) = (numbers(&mesh), numbers(&new));
    after.sort();
    assert_eq!(before, [Some("1".to_owned()), Some("1".to_owned())]);
    assert_eq!(after, [Some("2".to_owned()), Some("3".to_owned())]);
    assert_ne!(new.root_crl, mesh.root_crl);
}

/// "a permitDns entry equal to the intermediate's own SAN drifts on every
/// plan": the SAN is permitted either way, so it is no drift.
#[test]
fn regression_permit_dns_naming_the_own_san_is_no_drift() {
    let text = "apiVersion: meshca/v1\nkind: Mesh\nroot:\n  keyType: ecdsa-p256\n\
                defaults:\n  keyType: ecdsa-p256\n  nameConstraints: true\n  \
                permitDns: [istiod.istio-system.svc, example.com]\nclusters:\n  - name: east\n";
    let f = MeshFile::parse("mesh.yaml", text.as_bytes()).unwrap();
    let mesh = apply_checked(&f, &Mesh::new(), AT);
    let p = plan(&f, &mesh, AT).unwrap();
    assert!(p.is_empty(), "{p:?}");
    // Dropping example.com is a drift.
    let f = MeshFile::parse("mesh.yaml", text.replace(", example.com", "").as_bytes()).unwrap();
    assert_eq!(kinds(&plan(&f, &mesh, AT).unwrap()), ["reissue east"]);
}
