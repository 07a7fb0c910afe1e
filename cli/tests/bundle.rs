//! `meshca bundle`: each format checked by its consumer's schema or a
//! second implementation: PEM by OpenSSL, the SPIFFE bundle's keys by
//! Python's `cryptography`, the ClusterTrustBundle by `kubernetes-validate
//! --strict`, the trust-manager Bundle by its CRD's schema (Python
//! `jsonschema`) and `meshConfig.caCertificates` by a schema written from
//! istio/api's config.proto (testdata/schemas/). A missing tool fails.

mod util;

use std::path::Path;

use util::Dir;

/// `certs/` (ECDSA P-256 root, clusters c1 and c2) and a rotation of it to
/// an RSA-2048 root in `rotation/stage-{1,2,3}`.
fn rotated_mesh() -> Dir {
    let dir = Dir::new();
    dir.ok(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "c1",
        "c2",
    ]);
    dir.ok(&["root", "--dir", "new-root", "--key-type", "rsa-2048"]);
    dir.ok(&[
        "rotate",
        "--dir",
        "certs",
        "--new-root",
        "new-root",
        "--out",
        "rotation",
    ]);
    dir
}

fn bundle(dir: &Dir, certs: &str, args: &[&str]) -> String {
    let mut all = vec!["bundle", "--dir", certs];
    all.extend_from_slice(args);
    util::stdout(&dir.ok(&all))
}

fn write(dir: &Dir, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_owned()
}

/// Runs a Python script (the modules it imports must be installed:
/// .ci/run installs them) with `args`; returns stdout. Fails the test on
/// any error.
fn python(dir: &Dir, script: &str, args: &[&str]) -> String {
    let mut all = vec!["-c", script];
    all.extend_from_slice(args);
    let out = dir.tool("python3", &all);
    util::assert_success("python3", &out);
    util::stdout(&out)
}

/// The SHA-256 fingerprints of the certificates of a PEM file, in order,
/// as OpenSSL reads them.
fn fingerprints(dir: &Dir, file: &str) -> Vec<String> {
    let text = dir.read(file);
    let mut out = Vec::new();
    for block in pem::parse_many(text.as_bytes()).unwrap() {
        assert_eq!(block.tag(), "CERTIFICATE");
        let one = write(dir, "one.pem", &pem::encode(&block));
        let fp = dir.openssl(&["x509", "-in", &one, "-noout", "-fingerprint", "-sha256"]);
        out.push(fp.trim().to_owned());
    }
    out
}

#[test]
fn pem_holds_every_root_once_in_a_stable_order_and_openssl_verifies_with_it() {
    let dir = rotated_mesh();
    let old = fingerprints(&dir, "certs/root-cert.pem");
    let new = fingerprints(&dir, "new-root/root-cert.pem");
    assert_eq!((old.len(), new.len()), (1, 1));
    for (certs, want) in [
        ("certs", vec![old[0].clone()]),
        ("rotation/stage-1", vec![old[0].clone(), new[0].clone()]),
        ("rotation/stage-2", vec![old[0].clone(), new[0].clone()]),
        ("rotation/stage-3", vec![new[0].clone()]),
    ] {
        let text = bundle(&dir, certs, &["--format", "pem"]);
        assert_eq!(
            text,
            bundle(&dir, certs, &[]),
            "{certs}: pem is the default"
        );
        assert_eq!(
            text,
            bundle(&dir, certs, &["--format", "pem"]),
            "{certs}: not stable"
        );
        let file = write(&dir, "bundle.pem", &text);
        let store = dir.openssl(&["storeutl", "-noout", "-certs", &file]);
        assert!(
            store.contains(&format!("Total found: {}", want.len())),
            "{certs}: {store}"
        );
        assert_eq!(fingerprints(&dir, &file), want, "{certs}");
    }
    // Stage 2's bundle anchors both the old and the new intermediates.
    let file = write(
        &dir,
        "stage2.pem",
        &bundle(&dir, "rotation/stage-2", &["--format", "pem"]),
    );
    for inter in ["certs/c1/ca-cert.pem", "rotation/stage-2/c1/ca-cert.pem"] {
        dir.openssl(&["verify", "-x509_strict", "-CAfile", &file, inter]);
    }
    // Stage 3's only the new.
    let file = write(
        &dir,
        "stage3.pem",
        &bundle(&dir, "rotation/stage-3", &["--format", "pem"]),
    );
    let out = dir.tool(
        "openssl",
        &["verify", "-CAfile", &file, "certs/c1/ca-cert.pem"],
    );
    assert!(!out.status.success());
}

/// Compares each JWK with the public key of its `x5c` certificate, read by
/// Python's `cryptography`, and checks the members the SPIFFE Trust Domain
/// and Bundle spec (4.1, 4.2, 4.2.1) requires.
const CHECK_SPIFFE: &str = r#"
import base64, json, sys
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

doc = json.load(open(sys.argv[1]))
assert set(doc) == {"keys", "spiffe_sequence", "spiffe_refresh_hint"}, doc.keys()
assert isinstance(doc["spiffe_sequence"], int) and isinstance(doc["spiffe_refresh_hint"], int)

def b64url(s):
    assert "=" not in s, "base64url must be unpadded"
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")

out = []
for k in doc["keys"]:
    assert k["use"] == "x509-svid", k
    assert len(k["x5c"]) == 1, "x5c must hold exactly the root"
    cert = x509.load_der_x509_certificate(base64.b64decode(k["x5c"][0], validate=True))
    pub = cert.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        n = pub.public_numbers()
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[pub.curve.name]
        size = (pub.curve.key_size + 7) // 8
        assert k["kty"] == "EC" and k["crv"] == crv, k
        assert len(base64.urlsafe_b64decode(k["x"] + "=" * (-len(k["x"]) % 4))) == size
        assert b64url(k["x"]) == n.x and b64url(k["y"]) == n.y, "EC point differs"
        assert set(k) == {"use", "kty", "crv", "x", "y", "x5c"}, k.keys()
    elif isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        assert k["kty"] == "RSA", k
        assert b64url(k["n"]) == n.n and b64url(k["e"]) == n.e, "RSA key differs"
        assert not base64.urlsafe_b64decode(k["n"] + "=" * (-len(k["n"]) % 4)).startswith(b"\0")
        assert set(k) == {"use", "kty", "n", "e", "x5c"}, k.keys()
    else:
        raise SystemExit("unexpected key type")
    out.append(k["kty"])
print(" ".join(out))
"#;

#[test]
fn spiffe_bundle_keys_are_the_roots_public_keys() {
    let dir = rotated_mesh();
    let text = bundle(
        &dir,
        "rotation/stage-2",
        &[
            "--format",
            "spiffe",
            "--sequence",
            "42",
            "--refresh-hint",
            "600",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["spiffe_sequence"], 42);
    assert_eq!(doc["spiffe_refresh_hint"], 600);
    let file = write(&dir, "bundle.json", &text);
    assert_eq!(python(&dir, CHECK_SPIFFE, &[&file]).trim(), "EC RSA");
    // The x5c certificates are the PEM bundle's, in the same order.
    let pem_text = bundle(&dir, "rotation/stage-2", &["--format", "pem"]);
    let ders: Vec<Vec<u8>> = pem::parse_many(pem_text.as_bytes())
        .unwrap()
        .iter()
        .map(|b| b.contents().to_vec())
        .collect();
    use base64::Engine as _;
    let x5c: Vec<Vec<u8>> = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            base64::engine::general_purpose::STANDARD
                .decode(k["x5c"][0].as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(x5c, ders);

    // ECDSA P-384 too, and a default sequence that grows with time.
    let p384 = Dir::new();
    p384.ok(&["init", "--dir", "certs", "--key-type", "ecdsa-p384", "c1"]);
    let text = bundle(&p384, "certs", &["--format", "spiffe"]);
    let file = write(&p384, "bundle.json", &text);
    assert_eq!(python(&p384, CHECK_SPIFFE, &[&file]).trim(), "EC");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(doc["spiffe_sequence"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(doc["spiffe_refresh_hint"], 300);
}

#[test]
fn cluster_trust_bundle_passes_kubernetes_validate_strict() {
    let dir = rotated_mesh();
    let text = bundle(
        &dir,
        "rotation/stage-1",
        &["--format", "cluster-trust-bundle"],
    );
    let file = write(&dir, "ctb.yaml", &text);
    // v1beta1 since Kubernetes 1.33 (what istiod writes); still served in 1.37.
    for k8s in ["1.33.0", "1.37.0"] {
        let out = dir.tool("kubernetes-validate", &["--strict", "-k", k8s, &file]);
        util::assert_success(&format!("kubernetes-validate -k {k8s}"), &out);
    }
    let doc: serde_json::Value = serde_yaml_from(&text);
    assert_eq!(doc["metadata"]["name"], "istio.io:istiod-ca:root-cert");
    assert_eq!(doc["spec"]["signerName"], "istio.io/istiod-ca");
    assert_eq!(
        doc["spec"]["trustBundle"],
        bundle(&dir, "rotation/stage-1", &["--format", "pem"])
    );
    // A schema violation is caught: the validator is really judging.
    let bad = write(
        &dir,
        "bad.yaml",
        &text.replace("trustBundle", "trustBundles"),
    );
    let out = dir.tool("kubernetes-validate", &["--strict", "-k", "1.33.0", &bad]);
    assert!(!out.status.success());

    let named = bundle(
        &dir,
        "certs",
        &[
            "--format",
            "cluster-trust-bundle",
            "--name",
            "istio.io:istiod-ca:east",
        ],
    );
    assert!(named.contains("name: istio.io:istiod-ca:east"), "{named}");
    let out = dir.meshca(&[
        "bundle",
        "--dir",
        "certs",
        "--format",
        "cluster-trust-bundle",
        "--name",
        "roots",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(util::stderr(&out).contains("istio.io:istiod-ca:"));
}

/// YAML as JSON values, through Python's PyYAML (a second reader).
fn serde_yaml_from(text: &str) -> serde_json::Value {
    let dir = Dir::new();
    let file = write(&dir, "doc.yaml", text);
    let json = python(
        &dir,
        "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        &[&file],
    );
    serde_json::from_str(&json).unwrap()
}

/// Validates a document against the `v1alpha1` schema of trust-manager's
/// Bundle CRD and checks the CRD's CEL rules that apply (jsonschema cannot
/// run CEL): one source kind per source, a ConfigMap or Secret target.
const CHECK_TRUST_MANAGER: &str = r#"
import sys, yaml, jsonschema
crd = yaml.safe_load(open(sys.argv[1]))
doc = yaml.safe_load(open(sys.argv[2]))
assert crd["spec"]["group"] == "trust.cert-manager.io" and crd["spec"]["names"]["kind"] == "Bundle"
assert crd["spec"]["scope"] == "Cluster"
(version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
schema = version["schema"]["openAPIV3Schema"]
assert doc["apiVersion"] == "trust.cert-manager.io/v1alpha1" and doc["kind"] == "Bundle"
assert "namespace" not in doc["metadata"], "Bundle is cluster-scoped"
jsonschema.validate(doc, schema)
# Strict field validation, as `kubectl apply --validate=strict` asks of the
# API server: no field the schema does not name.
def known(v, sch, path):
    if isinstance(v, dict) and "properties" in sch:
        for k, x in v.items():
            if k in sch["properties"]:
                known(x, sch["properties"][k], path + "." + k)
            else:
                assert "additionalProperties" in sch or sch.get("x-kubernetes-preserve-unknown-fields"), "unknown field " + path + "." + k
    elif isinstance(v, list) and "items" in sch:
        for x in v:
            known(x, sch["items"], path + "[]")
known(doc, schema, "")
for s in doc["spec"]["sources"]:
    assert sum(k in s for k in ("configMap", "secret", "inLine", "useDefaultCAs")) == 1, s
t = doc["spec"].get("target", {})
assert "configMap" in t or "secret" in t, t
print(len(doc["spec"]["sources"]))
"#;

#[test]
fn trust_manager_bundle_matches_the_crd_schema() {
    let dir = rotated_mesh();
    let crd = util::testdata().join("schemas/trust.cert-manager.io_bundles.yaml");
    let crd = crd.to_str().unwrap();
    let text = bundle(&dir, "rotation/stage-1", &["--format", "trust-manager"]);
    let file = write(&dir, "tm.yaml", &text);
    assert_eq!(python(&dir, CHECK_TRUST_MANAGER, &[crd, &file]).trim(), "1");
    let doc = serde_yaml_from(&text);
    assert_eq!(
        doc["spec"]["sources"][0]["inLine"],
        bundle(&dir, "rotation/stage-1", &["--format", "pem"])
    );
    assert_eq!(doc["spec"]["target"]["configMap"]["key"], "root-cert.pem");
    assert_eq!(doc["metadata"]["name"], "istio-root-certs");

    let text = bundle(
        &dir,
        "certs",
        &[
            "--format",
            "trust-manager",
            "--name",
            "mesh-roots",
            "--namespace",
            "apps",
        ],
    );
    let file = write(&dir, "tm2.yaml", &text);
    python(&dir, CHECK_TRUST_MANAGER, &[crd, &file]);
    let doc = serde_yaml_from(&text);
    assert_eq!(doc["metadata"]["name"], "mesh-roots");
    assert_eq!(
        doc["spec"]["target"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "apps"
    );
    // The check bites: a field the CRD does not know is refused.
    let bad = write(&dir, "bad.yaml", &text.replace("configMap:", "configmap:"));
    let out = dir.tool("python3", &["-c", CHECK_TRUST_MANAGER, crd, &bad]);
    assert!(!out.status.success());
    assert!(util::stderr(&out).contains("unknown field .spec.target.configmap"));
}

const CHECK_SCHEMA: &str = r#"
import json, sys, yaml, jsonschema
jsonschema.validate(yaml.safe_load(open(sys.argv[2])), json.load(open(sys.argv[1])))
"#;

#[test]
fn mesh_config_matches_istios_certificate_data() {
    let dir = rotated_mesh();
    let schema = util::testdata().join("schemas/meshconfig-cacertificates.schema.json");
    let schema = schema.to_str().unwrap();
    let text = bundle(
        &dir,
        "rotation/stage-2",
        &[
            "--format",
            "mesh-config",
            "--trust-domain",
            "cluster.local",
            "--trust-domain",
            "east.example",
        ],
    );
    let file = write(&dir, "mc.yaml", &text);
    python(&dir, CHECK_SCHEMA, &[schema, &file]);
    let doc = serde_yaml_from(&text);
    let entries = doc["meshConfig"]["caCertificates"].as_array().unwrap();
    let pem_text = bundle(&dir, "rotation/stage-2", &["--format", "pem"]);
    let joined: String = entries
        .iter()
        .map(|e| e["pem"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(entries.len(), 2, "one entry per root");
    assert_eq!(joined, pem_text);
    for e in entries {
        assert_eq!(
            e["trustDomains"],
            serde_json::json!(["cluster.local", "east.example"])
        );
    }
    // Without --trust-domain, no trustDomains: Istio then uses the roots
    // for every trust domain.
    let text = bundle(&dir, "certs", &["--format", "mesh-config"]);
    assert!(!text.contains("trustDomains"), "{text}");
    let file = write(&dir, "mc2.yaml", &text);
    python(&dir, CHECK_SCHEMA, &[schema, &file]);
    let bad = write(&dir, "bad.yaml", &text.replace("pem:", "pems:"));
    let out = dir.tool("python3", &["-c", CHECK_SCHEMA, schema, &bad]);
    assert!(!out.status.success());
}

#[test]
fn options_a_format_has_no_use_for_are_refused() {
    let dir = Dir::new();
    dir.ok(&["init", "--dir", "certs", "--key-type", "ecdsa-p256", "c1"]);
    for args in [
        &["--format", "pem", "--namespace", "apps"][..],
        &["--format", "spiffe", "--trust-domain", "cluster.local"],
        &["--format", "mesh-config", "--name", "x"],
        &["--format", "cluster-trust-bundle", "--sequence", "3"],
        &["--format", "pem", "--refresh-hint", "60"],
    ] {
        let mut all = vec!["bundle", "--dir", "certs"];
        all.extend_from_slice(args);
        let out = dir.meshca(&all);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            util::stderr(&out)
        );
        assert!(util::stdout(&out).is_empty());
    }
    let out = dir.meshca(&["bundle", "--dir", "missing"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!Path::new(&dir.join("missing")).exists());
}
