//! Generates cluster directories for the differential test: good meshes
//! made with the meshca library, then mutated at the DER, PEM, file and CRL
//! level. Every mutated certificate or CRL is re-signed with its real
//! issuer's key, so only the mutation itself can make it fail.

use std::collections::BTreeMap;
use std::path::Path;

use der::{Encode, Tag};
use meshca::{
    IntermediateCa, IntermediateParams, KeyType, PrivateKey, Reason, Revocation, RootCa, RootParams,
};
use rcgen::SigningKey;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::der_tree::{extension, general_name, Node};

/// When the meshes are made.
pub const T0: OffsetDateTime = datetime!(2026-06-01 00:00 UTC);
/// When everything is verified (meshca and the oracle): ten days later.
pub const AT: OffsetDateTime = datetime!(2026-06-11 00:00 UTC);
pub const AT_RFC3339: &str = "2026-06-11T00:00:00Z";
/// The cluster name: every case is DIR/<index>/cluster1.
pub const CLUSTER: &str = "cluster1";
const CRL_DAYS: u32 = 30;

/// One good mesh: a root and one intermediate, with their CRLs.
pub struct Base {
    pub name: String,
    pub root: RootCa,
    pub ica: IntermediateCa,
    pub ica_key: PrivateKey,
    pub ica_key_pem: Zeroizing<String>,
    pub root_der: Vec<u8>,
    pub ica_der: Vec<u8>,
    pub root_crl: String,
    pub ca_crl: String,
    /// A second cluster's intermediate from the same root (ECDSA P-256).
    pub ica2: IntermediateCa,
    /// The EC intermediate key as SEC1 with explicit curve parameters
    /// (`openssl ec -param_enc explicit`); None for RSA.
    pub ica_key_explicit: Option<String>,
}

/// `openssl ec -param_enc explicit` of an EC key (PEM in, SEC1 PEM out).
/// openssl is a test requirement (`.ci/run` installs it); missing, it fails.
fn explicit_curve(key_pem: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["ec", "-param_enc", "explicit"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl is required (.ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(key_pem.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl ec -param_enc explicit failed"
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pem_der(text: &str) -> Vec<u8> {
    pem::parse(text).unwrap().into_contents()
}

pub fn pem_block(label: &str, der: &[u8]) -> String {
    let cfg = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), cfg)
}

impl Base {
    pub fn new(name: &str, root_key_pem: &str, ica_key_pem: &str) -> Base {
        let mut rp = RootParams::default();
        rp.key_type = KeyType::EcdsaP256;
        let root = RootCa::self_signed(
            &rp,
            PrivateKey::from_pem("root-key.pem", root_key_pem.as_bytes()).unwrap(),
            T0,
        )
        .unwrap();
        let ica = root
            .issue_intermediate(
                CLUSTER,
                &IntermediateParams::default(),
                PrivateKey::from_pem("ca-key.pem", ica_key_pem.as_bytes()).unwrap(),
                T0,
            )
            .unwrap()
            .ca;
        let root_crl = root.crl(None, &[], T0, CRL_DAYS).unwrap();
        let ca_crl = ica.ca_crl(root_crl.as_bytes(), None, T0, CRL_DAYS).unwrap();
        let ica_key_explicit = (!ica.key_type().is_rsa()).then(|| explicit_curve(ica_key_pem));
        let ica2 = root
            .issue_intermediate(
                "cluster2",
                &IntermediateParams::default(),
                PrivateKey::generate(KeyType::EcdsaP256).unwrap(),
                T0,
            )
            .unwrap()
            .ca;
        Base {
            ica2,
            ica_key_explicit,
            name: name.to_owned(),
            root_der: root.cert_der().to_vec(),
            ica_der: pem_der(&ica.cert_pem()),
            ica_key: PrivateKey::from_pem("ca-key.pem", ica_key_pem.as_bytes()).unwrap(),
            ica_key_pem: Zeroizing::new(ica_key_pem.to_owned()),
            root,
            ica,
            root_crl,
            ca_crl,
        }
    }

    /// The cluster directory's files, unmutated.
    pub fn files(&self) -> Files {
        let ca = meshca::certificate_pem(&self.ica_der);
        let root = meshca::certificate_pem(&self.root_der);
        let mut f = Files::new();
        f.insert("ca-cert.pem".into(), ca.clone().into_bytes());
        f.insert("ca-key.pem".into(), self.ica_key_pem.as_bytes().to_vec());
        f.insert("cert-chain.pem".into(), format!("{ca}{root}").into_bytes());
        f.insert("root-cert.pem".into(), root.into_bytes());
        f
    }
}

pub type Files = BTreeMap<String, Vec<u8>>;

/// The meshes every run starts from: ECDSA P-256 and RSA-2048 roots and
/// intermediates in each combination, one P-384 mesh, and a foreign mesh
/// whose root has the same name as the others but another key.
pub struct Meshes {
    pub bases: Vec<Base>,
    pub foreign: Base,
}

impl Meshes {
    pub fn new() -> Meshes {
        let key = |kt| PrivateKey::generate(kt).unwrap().to_pem().to_string();
        let (ec1, ec2, ec3, ec4) = (
            key(KeyType::EcdsaP256),
            key(KeyType::EcdsaP256),
            key(KeyType::EcdsaP256),
            key(KeyType::EcdsaP256),
        );
        let (rsa1, rsa2) = (key(KeyType::Rsa2048), key(KeyType::Rsa2048));
        let (p384a, p384b) = (key(KeyType::EcdsaP384), key(KeyType::EcdsaP384));
        Meshes {
            bases: vec![
                Base::new("ec-root/ec-ica", &ec1, &ec2),
                Base::new("rsa-root/ec-ica", &rsa1, &ec2),
                Base::new("ec-root/rsa-ica", &ec1, &rsa2),
                Base::new("rsa-root/rsa-ica", &rsa1, &rsa2),
                Base::new("p384-root/p384-ica", &p384a, &p384b),
            ],
            foreign: Base::new("foreign", &ec3, &ec4),
        }
    }
}

impl Default for Meshes {
    fn default() -> Self {
        Self::new()
    }
}

/// One generated case.
pub struct Case {
    pub base: usize,
    pub mutation: String,
    pub files: Files,
}

impl Case {
    pub fn write(&self, dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        for (name, bytes) in &self.files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
            let mode = if name.contains("key") { 0o600 } else { 0o644 };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

// ---- certificates as trees ----------------------------------------------

/// Signs `tbs` with `key` and wraps it with the outer algorithm `alg`.
pub fn signed(tbs: &Node, alg: &Node, key: &PrivateKey) -> Vec<u8> {
    let sig = key.sign(&tbs.encode()).unwrap();
    let bits = der::asn1::BitString::from_bytes(&sig)
        .unwrap()
        .to_der()
        .unwrap();
    Node::seq(vec![tbs.clone(), alg.clone(), Node::parse(&bits)]).encode()
}

/// Field positions of a pristine TBSCertificate.
struct Tbs;
impl Tbs {
    fn off(t: &Node) -> usize {
        usize::from(t.kids().first().is_some_and(|k| k.is_ctx(0)))
    }
    fn serial(t: &Node) -> usize {
        Self::off(t)
    }
    fn alg(t: &Node) -> usize {
        Self::off(t) + 1
    }
    fn issuer(t: &Node) -> usize {
        Self::off(t) + 2
    }
    fn validity(t: &Node) -> usize {
        Self::off(t) + 3
    }
    fn subject(t: &Node) -> usize {
        Self::off(t) + 4
    }
}

/// The extension list of a TBS (created when absent).
fn exts(tbs: &mut Node) -> &mut Vec<Node> {
    let kids = tbs.kids_mut();
    let i = match kids.iter().position(|k| k.is_ctx(3)) {
        Some(i) => i,
        None => {
            kids.push(Node::ctx(3, Some(vec![Node::seq(vec![])]), &[]));
            kids.len() - 1
        }
    };
    kids[i].kids_mut()[0].kids_mut()
}

fn ext_pos(list: &[Node], oid: &str) -> Option<usize> {
    let want = Node::oid(oid);
    list.iter().position(|e| e.kids().first() == Some(&want))
}

fn set_ext(tbs: &mut Node, oid: &str, critical: bool, value: Vec<u8>) {
    let e = extension(oid, critical, value);
    let list = exts(tbs);
    match ext_pos(list, oid) {
        Some(i) => list[i] = e,
        None => list.push(e),
    }
}

fn remove_ext(tbs: &mut Node, oid: &str) {
    let list = exts(tbs);
    if let Some(i) = ext_pos(list, oid) {
        list.remove(i);
    }
}

const BC: &str = "2.5.29.19";
const KU: &str = "2.5.29.15";
const EKU: &str = "2.5.29.37";
const SAN: &str = "2.5.29.17";
const IAN: &str = "2.5.29.18";
const NC: &str = "2.5.29.30";
const AKI: &str = "2.5.29.35";
const SKI: &str = "2.5.29.14";
const AIA: &str = "1.3.6.1.5.5.7.1.1";
const SIA: &str = "1.3.6.1.5.5.7.1.11";
const NS_CERT_TYPE: &str = "2.16.840.1.113730.1.1";
const POLICIES: &str = "2.5.29.32";
const POLICY_CONSTRAINTS: &str = "2.5.29.36";
const INHIBIT_ANY: &str = "2.5.29.54";
const CRL_DP: &str = "2.5.29.31";
const UNKNOWN: &str = "1.3.6.1.4.1.55555.1.1";
const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
const CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
const ANY_EKU: &str = "2.5.29.37.0";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const RSA_SHA1: &str = "1.2.840.113549.1.1.5";

fn tag(n: u8) -> Tag {
    Tag::try_from(n).unwrap()
}

fn bits(v: &[u8]) -> Node {
    Node::prim(Tag::BitString, v.to_vec())
}

fn ia5(s: &[u8]) -> Vec<u8> {
    s.to_vec()
}

fn san_dns(names: &[&[u8]]) -> Vec<u8> {
    Node::seq(names.iter().map(|n| general_name(2, &ia5(n))).collect()).encode()
}

fn subtrees(names: Vec<Node>) -> Vec<Node> {
    names.into_iter().map(|n| Node::seq(vec![n])).collect()
}

/// nameConstraints with permitted and excluded GeneralNames.
/// ::ffff:10.0.0.0 and a /120 mask: an IPv4-mapped IPv6 address (the first
/// 16 bytes) and an IP name constraint, which Go 1.27 refuses and 1.25 takes.
const V4_MAPPED: [u8; 32] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,
];

fn name_constraints(permitted: Vec<Node>, excluded: Vec<Node>) -> Vec<u8> {
    let mut kids = Vec::new();
    if !permitted.is_empty() {
        kids.push(Node::ctx(0, Some(subtrees(permitted)), &[]));
    }
    if !excluded.is_empty() {
        kids.push(Node::ctx(1, Some(subtrees(excluded)), &[]));
    }
    Node::seq(kids).encode()
}

fn dir_name(org: &str) -> Node {
    let atv = Node::seq(vec![
        Node::oid("2.5.4.10"),
        Node::prim(Tag::Utf8String, org.as_bytes().to_vec()),
    ]);
    Node::ctx(
        4,
        Some(vec![Node::seq(vec![Node::cons(Tag::Set, vec![atv])])]),
        &[],
    )
}

fn alg_id(oid: &str, null_params: bool) -> Node {
    let mut k = vec![Node::oid(oid)];
    if null_params {
        k.push(Node::prim(Tag::Null, Vec::<u8>::new()));
    }
    Node::seq(k)
}

fn utc(t: OffsetDateTime) -> Node {
    let d = std::time::Duration::from_secs(t.unix_timestamp() as u64);
    Node::parse(
        &der::asn1::UtcTime::from_unix_duration(d)
            .unwrap()
            .to_der()
            .unwrap(),
    )
}

fn gen_time(t: OffsetDateTime) -> Node {
    let d = std::time::Duration::from_secs(t.unix_timestamp() as u64);
    Node::parse(
        &der::asn1::GeneralizedTime::from_unix_duration(d)
            .unwrap()
            .to_der()
            .unwrap(),
    )
}

/// The first attribute value of type `oid` in a Name node.
fn name_value<'a>(name: &'a mut Node, oid: &str) -> Option<&'a mut Node> {
    let want = Node::oid(oid);
    name.kids_mut()
        .iter_mut()
        .flat_map(|rdn| rdn.kids_mut().iter_mut())
        .find(|atv| atv.kids().first() == Some(&want))
        .map(|atv| &mut atv.kids_mut()[1])
}

/// Mutations of a CA certificate's TBS that keep it re-signable. `tbs` is
/// pristine; returns false when the mutation does not apply.
const TBS_MUTATIONS: &[&str] = &[
    "version=v1",
    "version=v2",
    "version=v4",
    "version=non-minimal",
    "version=absent",
    "version=v1-no-extensions",
    "serial=negative",
    "serial=zero",
    "serial=non-minimal",
    "serial=21-bytes",
    "inner-alg=ecdsa-sha384",
    "inner-alg=rsa-sha256",
    "inner-alg=null-params",
    "both-alg=ecdsa-sha384",
    "both-alg=sha1-rsa",
    "issuer-cn=printable",
    "issuer-cn=utf8-content",
    "subject-cn=printable-invalid",
    "subject-cn=t61",
    "subject-cn=bmp-odd",
    "subject-cn=bmp",
    "subject-cn=ia5",
    "subject-cn=invalid-utf8",
    "subject-cn=empty",
    "subject-cn=nul",
    "subject-cn=visible-string",
    "subject-cn=integer",
    "subject-cn=integer-non-minimal",
    "subject-cn=octet-string",
    "subject=empty",
    "subject=duplicate-rdn",
    "validity=expired",
    "validity=not-yet-valid",
    "validity=generalized-time",
    "validity=outlives-root",
    "validity=utc-no-seconds",
    "validity=utc-offset",
    "validity=generalized-fraction",
    "validity=expires-in-a-day",
    "validity=utc-2050",
    "validity=inverted",
    "bc=absent",
    "bc=ca-false",
    "bc=ca-bool-01",
    "bc=explicit-false",
    "bc=non-critical",
    "bc=pathlen-absent",
    "bc=pathlen-negative",
    "bc=pathlen-1",
    "bc=garbage",
    "ku=absent",
    "ku=no-keycertsign",
    "ku=keycertsign-only",
    "ku=crlsign-only",
    "ku=digitalsignature-only",
    "ku=empty",
    "ku=non-minimal-unused",
    "ku=unused-8",
    "ku=non-critical",
    "ku=all-nine",
    "eku=server-only",
    "eku=client-only",
    "eku=server-client",
    "eku=any",
    "eku=code-signing",
    "eku=empty",
    "eku=critical-server-client",
    "san=absent",
    "san=dns-wildcard",
    "san=dns-space",
    "san=dns-empty",
    "san=dns-trailing-dot",
    "san=dns-high-byte",
    "san=dns-uppercase",
    "san=dns-underscore",
    "san=uri-spiffe",
    "san=uri-garbage",
    "san=uri-empty",
    "san=email",
    "san=ip-bad-length",
    "san=ip-v4-mapped",
    "san=empty-sequence",
    "san=critical",
    "san=dirname",
    "nc=permitted-dns-svc",
    "nc=permitted-dns-example",
    "nc=excluded-dns-istiod",
    "nc=permitted-uri-trust-domain",
    "nc=permitted-uri-other",
    "nc=excluded-uri-trust-domain",
    "nc=permitted-dirname",
    "nc=permitted-dirname-non-critical",
    "nc=empty",
    "nc=excluded-dns-empty",
    "nc=permitted-ip",
    "nc=permitted-ip-v4-mapped",
    "nc=permitted-email-at-domain",
    "ext=issuer-alt-name-critical",
    "ext=issuer-alt-name",
    "ext=aia-critical",
    "ext=aia",
    "ext=sia-critical",
    "ext=netscape-cert-type-critical",
    "ext=netscape-cert-type",
    "ext=unknown-critical",
    "ext=unknown",
    "ext=policies-critical",
    "ext=policy-constraints-critical",
    "ext=inhibit-any-policy",
    "ext=crl-dp-critical",
    "ext=duplicate-bc",
    "ext=duplicate-san",
    "ext=critical-bool-01",
    "ext=critical-explicit-false",
    "ext=empty-extensions",
    "aki=absent",
    "aki=wrong-keyid",
    "aki=not-a-sequence",
    "aki=empty",
    "aki=critical",
    "ski=absent",
    "ski=not-octets",
    "ski=empty",
    "ski=critical",
];

fn apply_tbs(m: &str, tbs: &mut Node, rng: &mut fastrand::Rng) -> bool {
    let has_version = tbs.kids().first().is_some_and(|k| k.is_ctx(0));
    let set_version = |tbs: &mut Node, v: &[u8]| {
        if has_version {
            tbs.kids_mut()[0].kids_mut()[0] = Node::int(v);
        }
    };
    let set_validity = |tbs: &mut Node, nb: Node, na: Node| {
        let i = Tbs::validity(tbs);
        tbs.kids_mut()[i] = Node::seq(vec![nb, na]);
    };
    let set_cn = |tbs: &mut Node, which: usize, t: Option<u8>, v: Option<&[u8]>| -> bool {
        let i = if which == 0 {
            Tbs::issuer(tbs)
        } else {
            Tbs::subject(tbs)
        };
        match name_value(&mut tbs.kids_mut()[i], "2.5.4.3") {
            Some(n) => {
                if let Some(t) = t {
                    n.tag = tag(t);
                }
                if let Some(v) = v {
                    n.value = v.to_vec();
                }
                true
            }
            None => false,
        }
    };
    let inner = |tbs: &mut Node, a: Node| {
        let i = Tbs::alg(tbs);
        tbs.kids_mut()[i] = a;
    };
    match m {
        "version=v1" => set_version(tbs, &[0]),
        "version=v2" => set_version(tbs, &[1]),
        "version=v4" => set_version(tbs, &[3]),
        "version=non-minimal" => set_version(tbs, &[0, 2]),
        "version=absent" => {
            if has_version {
                tbs.kids_mut().remove(0);
            }
        }
        "version=v1-no-extensions" => {
            if has_version {
                tbs.kids_mut().remove(0);
            }
            tbs.kids_mut().retain(|k| !k.is_ctx(3));
        }
        "serial=negative" => {
            let i = Tbs::serial(tbs);
            tbs.kids_mut()[i] = Node::int(&[0x80, 0x12, 0x34, 0x56]);
        }
        "serial=zero" => {
            let i = Tbs::serial(tbs);
            tbs.kids_mut()[i] = Node::int(&[0]);
        }
        "serial=non-minimal" => {
            let i = Tbs::serial(tbs);
            tbs.kids_mut()[i] = Node::int(&[0, 0x12, 0x34]);
        }
        "serial=21-bytes" => {
            let i = Tbs::serial(tbs);
            let mut v = vec![0x7f; 21];
            v[20] = rng.u8(..);
            tbs.kids_mut()[i] = Node::int(&v);
        }
        "inner-alg=ecdsa-sha384" => inner(tbs, alg_id(ECDSA_SHA384, false)),
        "inner-alg=rsa-sha256" => inner(tbs, alg_id(RSA_SHA256, true)),
        "inner-alg=null-params" => {
            let i = Tbs::alg(tbs);
            let oid = tbs.kids()[i].kids()[0].clone();
            tbs.kids_mut()[i] = Node::seq(vec![oid, Node::prim(Tag::Null, Vec::<u8>::new())]);
        }
        // The outer algorithm is set to the inner one by the caller.
        "both-alg=ecdsa-sha384" => inner(tbs, alg_id(ECDSA_SHA384, false)),
        "both-alg=sha1-rsa" => inner(tbs, alg_id(RSA_SHA1, true)),
        "issuer-cn=printable" => return set_cn(tbs, 0, Some(0x13), None),
        "issuer-cn=utf8-content" => return set_cn(tbs, 0, None, Some(b"Root  CA")),
        "subject-cn=printable-invalid" => {
            return set_cn(tbs, 1, Some(0x13), Some(b"Intermediate CA @ *"))
        }
        "subject-cn=t61" => return set_cn(tbs, 1, Some(0x14), None),
        "subject-cn=bmp-odd" => return set_cn(tbs, 1, Some(0x1e), Some(&[0, b'I', 0])),
        "subject-cn=bmp" => return set_cn(tbs, 1, Some(0x1e), Some(&[0, b'I', 0, b'C'])),
        "subject-cn=ia5" => return set_cn(tbs, 1, Some(0x16), None),
        "subject-cn=invalid-utf8" => return set_cn(tbs, 1, None, Some(&[b'I', 0xff, 0xfe, b'C'])),
        "subject-cn=empty" => return set_cn(tbs, 1, None, Some(b"")),
        "subject-cn=nul" => return set_cn(tbs, 1, None, Some(b"Inter\0mediate")),
        "subject-cn=visible-string" => {
            return set_cn(tbs, 1, Some(0x1a), Some(b"Intermediate\tCA"))
        }
        "subject-cn=integer" => return set_cn(tbs, 1, Some(0x02), Some(&[0x01])),
        "subject-cn=integer-non-minimal" => return set_cn(tbs, 1, Some(0x02), Some(&[0x00, 0x01])),
        "subject-cn=octet-string" => return set_cn(tbs, 1, Some(0x04), Some(b"Intermediate CA")),
        "subject=empty" => {
            let i = Tbs::subject(tbs);
            tbs.kids_mut()[i] = Node::seq(vec![]);
        }
        "subject=duplicate-rdn" => {
            let i = Tbs::subject(tbs);
            let s = &mut tbs.kids_mut()[i];
            let first = s.kids()[0].clone();
            s.kids_mut().push(first);
        }
        "validity=expired" => set_validity(
            tbs,
            utc(AT - Duration::days(30)),
            utc(AT - Duration::hours(1)),
        ),
        "validity=not-yet-valid" => set_validity(
            tbs,
            utc(AT + Duration::hours(1)),
            utc(AT + Duration::days(300)),
        ),
        "validity=generalized-time" => set_validity(
            tbs,
            gen_time(T0 - Duration::hours(1)),
            gen_time(T0 + Duration::days(300)),
        ),
        "validity=outlives-root" => set_validity(
            tbs,
            utc(T0 - Duration::hours(1)),
            utc(T0 + Duration::days(4000)),
        ),
        "validity=utc-no-seconds" => set_validity(
            tbs,
            Node::prim(Tag::UtcTime, b"2605010000Z".to_vec()),
            utc(T0 + Duration::days(300)),
        ),
        "validity=utc-offset" => set_validity(
            tbs,
            Node::prim(Tag::UtcTime, b"260501000000+0000".to_vec()),
            utc(T0 + Duration::days(300)),
        ),
        "validity=generalized-fraction" => set_validity(
            tbs,
            Node::prim(Tag::GeneralizedTime, b"20260501000000.5Z".to_vec()),
            utc(T0 + Duration::days(300)),
        ),
        "validity=expires-in-a-day" => set_validity(tbs, utc(T0), utc(AT + Duration::days(1))),
        "validity=utc-2050" => set_validity(
            tbs,
            utc(T0),
            Node::prim(Tag::UtcTime, b"500101000000Z".to_vec()),
        ),
        "validity=inverted" => set_validity(
            tbs,
            utc(AT + Duration::days(1)),
            utc(AT - Duration::days(1)),
        ),
        "bc=absent" => remove_ext(tbs, BC),
        "bc=ca-false" => set_ext(tbs, BC, true, Node::seq(vec![]).encode()),
        "bc=ca-bool-01" => set_ext(
            tbs,
            BC,
            true,
            Node::seq(vec![Node::prim(Tag::Boolean, [1u8]), Node::int(&[0])]).encode(),
        ),
        "bc=explicit-false" => set_ext(
            tbs,
            BC,
            true,
            Node::seq(vec![Node::boolean(false)]).encode(),
        ),
        "bc=non-critical" => set_ext(
            tbs,
            BC,
            false,
            Node::seq(vec![Node::boolean(true), Node::int(&[0])]).encode(),
        ),
        "bc=pathlen-absent" => {
            set_ext(tbs, BC, true, Node::seq(vec![Node::boolean(true)]).encode())
        }
        "bc=pathlen-negative" => set_ext(
            tbs,
            BC,
            true,
            Node::seq(vec![Node::boolean(true), Node::int(&[0xff])]).encode(),
        ),
        "bc=pathlen-1" => set_ext(
            tbs,
            BC,
            true,
            Node::seq(vec![Node::boolean(true), Node::int(&[1])]).encode(),
        ),
        "bc=garbage" => set_ext(tbs, BC, true, vec![0x30, 0x03, 0x01, 0x01]),
        "ku=absent" => remove_ext(tbs, KU),
        "ku=no-keycertsign" => set_ext(tbs, KU, true, bits(&[0x01, 0x82]).encode()),
        "ku=keycertsign-only" => set_ext(tbs, KU, true, bits(&[0x02, 0x04]).encode()),
        "ku=crlsign-only" => set_ext(tbs, KU, true, bits(&[0x01, 0x02]).encode()),
        "ku=digitalsignature-only" => set_ext(tbs, KU, true, bits(&[0x07, 0x80]).encode()),
        "ku=empty" => set_ext(tbs, KU, true, bits(&[0x00]).encode()),
        "ku=non-minimal-unused" => set_ext(tbs, KU, true, bits(&[0x00, 0x86]).encode()),
        "ku=unused-8" => set_ext(tbs, KU, true, bits(&[0x08, 0x86]).encode()),
        "ku=non-critical" => set_ext(tbs, KU, false, bits(&[0x01, 0x86]).encode()),
        "ku=all-nine" => set_ext(tbs, KU, true, bits(&[0x07, 0xff, 0x80]).encode()),
        "eku=server-only" => set_ext(
            tbs,
            EKU,
            false,
            Node::seq(vec![Node::oid(SERVER_AUTH)]).encode(),
        ),
        "eku=client-only" => set_ext(
            tbs,
            EKU,
            false,
            Node::seq(vec![Node::oid(CLIENT_AUTH)]).encode(),
        ),
        "eku=server-client" => set_ext(
            tbs,
            EKU,
            false,
            Node::seq(vec![Node::oid(SERVER_AUTH), Node::oid(CLIENT_AUTH)]).encode(),
        ),
        "eku=any" => set_ext(
            tbs,
            EKU,
            false,
            Node::seq(vec![Node::oid(ANY_EKU)]).encode(),
        ),
        "eku=code-signing" => set_ext(
            tbs,
            EKU,
            false,
            Node::seq(vec![Node::oid(CODE_SIGNING)]).encode(),
        ),
        "eku=empty" => set_ext(tbs, EKU, false, Node::seq(vec![]).encode()),
        "eku=critical-server-client" => set_ext(
            tbs,
            EKU,
            true,
            Node::seq(vec![Node::oid(SERVER_AUTH), Node::oid(CLIENT_AUTH)]).encode(),
        ),
        "san=absent" => remove_ext(tbs, SAN),
        "san=dns-wildcard" => set_ext(tbs, SAN, false, san_dns(&[b"*.istio-system.svc"])),
        "san=dns-space" => set_ext(tbs, SAN, false, san_dns(&[b"istiod istio-system.svc"])),
        "san=dns-empty" => set_ext(tbs, SAN, false, san_dns(&[b""])),
        "san=dns-trailing-dot" => set_ext(tbs, SAN, false, san_dns(&[b"istiod.istio-system.svc."])),
        "san=dns-high-byte" => set_ext(tbs, SAN, false, san_dns(&[b"istiod.istio-system.sv\xe9"])),
        "san=dns-uppercase" => set_ext(tbs, SAN, false, san_dns(&[b"ISTIOD.istio-system.svc"])),
        "san=dns-underscore" => set_ext(tbs, SAN, false, san_dns(&[b"istio_d.istio-system.svc"])),
        "san=uri-spiffe" => set_ext(
            tbs,
            SAN,
            false,
            Node::seq(vec![general_name(
                6,
                b"spiffe://cluster.local/ns/istio-system/sa/istiod",
            )])
            .encode(),
        ),
        "san=uri-garbage" => set_ext(
            tbs,
            SAN,
            false,
            Node::seq(vec![general_name(6, b"spiffe://%zz/\x01")]).encode(),
        ),
        "san=uri-empty" => set_ext(
            tbs,
            SAN,
            false,
            Node::seq(vec![general_name(6, b"")]).encode(),
        ),
        "san=email" => set_ext(
            tbs,
            SAN,
            false,
            Node::seq(vec![general_name(1, b"ca@@example")]).encode(),
        ),
        "san=ip-bad-length" => set_ext(
            tbs,
            SAN,
            false,
            Node::seq(vec![general_name(7, &[10, 0, 0])]).encode(),
        ),
        "san=ip-v4-mapped" => set_ext(
            tbs,
            SAN,
            false,
            Node::seq(vec![general_name(7, &V4_MAPPED[..16])]).encode(),
        ),
        "san=empty-sequence" => set_ext(tbs, SAN, false, Node::seq(vec![]).encode()),
        "san=critical" => set_ext(tbs, SAN, true, san_dns(&[b"istiod.istio-system.svc"])),
        "san=dirname" => set_ext(tbs, SAN, false, Node::seq(vec![dir_name("Istio")]).encode()),
        "nc=permitted-dns-svc" => set_ext(
            tbs,
            NC,
            true,
            name_constraints(vec![general_name(2, b"svc")], vec![]),
        ),
        "nc=permitted-dns-example" => set_ext(
            tbs,
            NC,
            true,
            name_constraints(vec![general_name(2, b"example.com")], vec![]),
        ),
        "nc=excluded-dns-istiod" => set_ext(
            tbs,
            NC,
            true,
            name_constraints(vec![], vec![general_name(2, b"istiod.istio-system.svc")]),
        ),
        "nc=permitted-uri-trust-domain" => set_ext(
            tbs,
            NC,
            true,
            name_constraints(vec![general_name(6, b"cluster.local")], vec![]),
        ),
        "nc=permitted-uri-other" => set_ext(
            tbs,
            NC,
            true,
            name_constraints(vec![general_name(6, b"other.example")], vec![]),
        ),
        "nc=excluded-uri-trust-domain" => set_ext(
            tbs,
            NC,
            true,
            name_constraints(vec![], vec![general_name(6, b"cluster.local")]),
        ),
        "nc=permitted-dirname" => set_ext(
            tbs,
            NC,
            true,
            name_constraints(vec![dir_name("Istio")], vec![]),
        ),
        "nc=permitted-dirname-non-critical" => set_ext(
            tbs,
            NC,
            false,
            name_constraints(vec![dir_name("Istio")], vec![]),
        ),
        "nc=empty" => set_ext(tbs, NC, true, Node::seq(vec![]).encode()),
        "nc=excluded-dns-empty" => set_ext(
            tbs,
            NC,
            true,
            name_constraints(vec![], vec![general_name(2, b"")]),
        ),
        "nc=permitted-ip" => set_ext(
            tbs,
            NC,
            true,
            name_constraints(vec![general_name(7, &[10, 0, 0, 0, 255, 0, 0, 0])], vec![]),
        ),
        "nc=permitted-ip-v4-mapped" => set_ext(
            tbs,
            NC,
            true,
            name_constraints(vec![general_name(7, &V4_MAPPED)], vec![]),
        ),
        "nc=permitted-email-at-domain" => set_ext(
            tbs,
            NC,
            true,
            name_constraints(vec![general_name(1, b"ca@mesh@example.com")], vec![]),
        ),
        "ext=issuer-alt-name-critical" => set_ext(tbs, IAN, true, san_dns(&[b"ca.example"])),
        "ext=issuer-alt-name" => set_ext(tbs, IAN, false, san_dns(&[b"ca.example"])),
        "ext=aia-critical" | "ext=aia" => set_ext(
            tbs,
            AIA,
            m == "ext=aia-critical",
            Node::seq(vec![Node::seq(vec![
                Node::oid("1.3.6.1.5.5.7.48.2"),
                general_name(6, b"http://ca.example/root.crt"),
            ])])
            .encode(),
        ),
        "ext=sia-critical" => set_ext(
            tbs,
            SIA,
            true,
            Node::seq(vec![Node::seq(vec![
                Node::oid("1.3.6.1.5.5.7.48.5"),
                general_name(6, b"http://ca.example/"),
            ])])
            .encode(),
        ),
        "ext=netscape-cert-type-critical" => {
            set_ext(tbs, NS_CERT_TYPE, true, bits(&[0x02, 0x04]).encode())
        }
        "ext=netscape-cert-type" => set_ext(tbs, NS_CERT_TYPE, false, bits(&[0x02, 0x04]).encode()),
        "ext=unknown-critical" => set_ext(
            tbs,
            UNKNOWN,
            true,
            Node::prim(Tag::Null, Vec::<u8>::new()).encode(),
        ),
        "ext=unknown" => set_ext(
            tbs,
            UNKNOWN,
            false,
            Node::prim(Tag::Null, Vec::<u8>::new()).encode(),
        ),
        "ext=policies-critical" => set_ext(
            tbs,
            POLICIES,
            true,
            Node::seq(vec![Node::seq(vec![Node::oid("2.5.29.32.0")])]).encode(),
        ),
        "ext=policy-constraints-critical" => set_ext(
            tbs,
            POLICY_CONSTRAINTS,
            true,
            Node::seq(vec![Node::ctx(0, None, &[0])]).encode(),
        ),
        "ext=inhibit-any-policy" => set_ext(tbs, INHIBIT_ANY, true, Node::int(&[0]).encode()),
        "ext=crl-dp-critical" => set_ext(
            tbs,
            CRL_DP,
            true,
            Node::seq(vec![Node::seq(vec![Node::ctx(
                0,
                Some(vec![Node::ctx(
                    0,
                    Some(vec![general_name(6, b"http://ca.example/crl")]),
                    &[],
                )]),
                &[],
            )])])
            .encode(),
        ),
        "ext=duplicate-bc" | "ext=duplicate-san" => {
            let oid = if m == "ext=duplicate-bc" { BC } else { SAN };
            let list = exts(tbs);
            match ext_pos(list, oid) {
                Some(i) => {
                    let e = list[i].clone();
                    list.push(e);
                }
                None => return false,
            }
        }
        "ext=critical-bool-01" | "ext=critical-explicit-false" => {
            let list = exts(tbs);
            let Some(i) = ext_pos(list, BC) else {
                return false;
            };
            let b = if m == "ext=critical-bool-01" {
                Node::prim(Tag::Boolean, [1u8])
            } else {
                Node::boolean(false)
            };
            let e = &mut list[i];
            if e.kids().len() == 3 {
                e.kids_mut()[1] = b;
            } else {
                e.kids_mut().insert(1, b);
            }
        }
        "ext=empty-extensions" => {
            exts(tbs).clear();
        }
        "aki=absent" => remove_ext(tbs, AKI),
        "aki=wrong-keyid" => set_ext(
            tbs,
            AKI,
            false,
            Node::seq(vec![general_name(0, &[0xab; 20])]).encode(),
        ),
        "aki=not-a-sequence" => set_ext(tbs, AKI, false, Node::octets(vec![0xab; 20]).encode()),
        "aki=empty" => set_ext(tbs, AKI, false, Node::seq(vec![]).encode()),
        "aki=critical" => {
            let list = exts(tbs);
            let Some(i) = ext_pos(list, AKI) else {
                return false;
            };
            let e = &mut list[i];
            if e.kids().len() == 2 {
                e.kids_mut().insert(1, Node::boolean(true));
            }
        }
        "ski=absent" => remove_ext(tbs, SKI),
        "ski=not-octets" => set_ext(tbs, SKI, false, vec![0xab; 20]),
        "ski=empty" => set_ext(tbs, SKI, false, Node::octets(Vec::<u8>::new()).encode()),
        "ski=critical" => {
            let list = exts(tbs);
            let Some(i) = ext_pos(list, SKI) else {
                return false;
            };
            let e = &mut list[i];
            if e.kids().len() == 2 {
                e.kids_mut().insert(1, Node::boolean(true));
            }
        }
        other => panic!("unknown mutation {other}"),
    }
    true
}

/// A random structure-aware edit of some node under `root`.
fn fuzz_node(root: &mut Node, rng: &mut fastrand::Rng) -> String {
    let paths = root.paths();
    let path = paths[rng.usize(..paths.len())].clone();
    let where_ = path
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(".");
    let (parent_path, last) = path.split_at(path.len() - 1);
    let last = last[0];
    match rng.u8(..6) {
        0 => {
            let n = root.at_mut(&path);
            if n.kids.is_none() && !n.value.is_empty() {
                let i = rng.usize(..n.value.len());
                n.value[i] ^= 1 << rng.u8(..8);
                return format!("flip-byte@{where_}");
            }
            match &mut n.kids {
                Some(k) => k.clear(),
                None => n.value.push(0x80),
            }
            format!("empty@{where_}")
        }
        1 => {
            let n = root.at_mut(&path);
            let t = if n.kids.is_some() {
                [0x30, 0x31, 0xa0, 0xa1, 0xa3][rng.usize(..5)]
            } else {
                [
                    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x18, 0x1e, 0x80,
                    0x82, 0x86,
                ][rng.usize(..15)]
            };
            n.tag = tag(t);
            format!("retag-{t:02x}@{where_}")
        }
        2 => {
            root.at_mut(parent_path).kids_mut().remove(last);
            format!("delete@{where_}")
        }
        3 => {
            let p = root.at_mut(parent_path);
            let n = p.kids()[last].clone();
            p.kids_mut().insert(last, n);
            format!("duplicate@{where_}")
        }
        4 => {
            let n = root.at_mut(&path);
            if n.kids.is_none() {
                if rng.bool() && !n.value.is_empty() {
                    n.value.pop();
                    return format!("truncate@{where_}");
                }
                n.value.push(0);
                return format!("append-zero@{where_}");
            }
            n.kids_mut().push(Node::prim(Tag::Null, Vec::<u8>::new()));
            format!("append-null@{where_}")
        }
        _ => {
            let p = root.at_mut(parent_path);
            let len = p.kids().len();
            let other = rng.usize(..len);
            p.kids_mut().swap(last, other);
            format!("swap-{other}@{where_}")
        }
    }
}

// ---- the generator --------------------------------------------------------

pub struct Generator<'a> {
    pub meshes: &'a Meshes,
    seed: u64,
    index: u64,
    rng: fastrand::Rng,
}

/// Mutations of the root (re-signed with its own key).
const ROOT_MUTATIONS: &[&str] = &[
    "nc=excluded-dns-istiod",
    "nc=permitted-dns-example",
    "nc=permitted-dns-svc",
    "nc=permitted-uri-trust-domain",
    "nc=permitted-uri-other",
    "nc=excluded-uri-trust-domain",
    "nc=permitted-dirname",
    "eku=server-only",
    "eku=client-only",
    "eku=server-client",
    "ku=no-keycertsign",
    "ku=absent",
    "bc=absent",
    "bc=ca-false",
    "bc=pathlen-1",
    "root-pathlen-0",
    "validity=expired",
    "validity=not-yet-valid",
    "ext=unknown-critical",
    "ext=issuer-alt-name-critical",
    "version=v1-no-extensions",
    "version=v1",
    "subject-cn=printable-invalid",
    "serial=negative",
    "ski=absent",
    "san=dns-space",
];

const PEM_MUTATIONS: &[&str] = &[
    "ca-cert:ec-parameters-first",
    "ca-cert:csr-first",
    "ca-cert:root-appended",
    "ca-cert:foreign-cert-first",
    "ca-cert:header",
    "ca-cert:no-final-newline",
    "ca-cert:crlf",
    "ca-cert:leading-text",
    "ca-cert:trailing-text",
    "ca-cert:bad-base64",
    "ca-cert:indented",
    "ca-cert:label-x509-certificate",
    "ca-cert:label-trusted-certificate",
    "ca-cert:long-lines",
    "ca-cert:der-not-pem",
    "chain:glued",
    "chain:reversed",
    "chain:without-root",
    "chain:ca-only",
    "chain:foreign-cert-appended",
    "chain:duplicate-ca",
    "chain:csr-inserted",
    "chain:ec-parameters-inserted",
    "chain:root-header",
    "chain:no-final-newline",
    "chain:root-only",
    "chain:foreign-root-instead",
    "root:foreign-only",
    "root:foreign-then-real",
    "root:real-then-foreign",
    "root:header",
    "root:label-trusted-certificate",
    "root:with-intermediate",
    "root:intermediate-only",
    "root:no-final-newline",
    "root:glued-two-roots",
    "root:comment-between",
    "root:garbage-block-first",
    "root:expired-copy-first",
    "root:expired-copy-last",
    "chain:expired-root-copy",
    "chain:expired-ca-copy",
    "key:ec-parameters-first",
    "key:inner-format",
    "key:wrong-label",
    "key:foreign",
    "key:foreign-first",
    "key:header",
    "key:encrypted",
    "key:trailing-text",
    "key:crlf",
    "key:no-final-newline",
    "key:public-key",
    "key:certificate-instead",
    "key:explicit-curve",
    "files:no-ca-cert",
    "files:no-ca-key",
    "files:no-cert-chain",
    "files:no-root-cert",
    "files:only-ca-cert",
    "files:none",
    "files:empty-ca-cert",
    "files:empty-cert-chain",
    "files:empty-root-cert",
    "files:empty-ca-crl",
    "files:tls-layout",
    "files:tls-layout-with-crl",
    "files:istio-generated",
];

const CRL_MUTATIONS: &[&str] = &[
    "crl:good",
    "crl:stale",
    "crl:stale-and-fresh",
    "crl:future-this-update",
    "crl:wrong-signer",
    "crl:root-only",
    "crl:intermediate-only",
    "crl:critical-unknown-extension",
    "crl:unknown-extension",
    "crl:idp-only-some-reasons",
    "crl:idp-indirect",
    "crl:delta-indicator",
    "crl:certificate-block",
    "crl:revoked-intermediate",
    "crl:outer-alg-mismatch",
    "crl:outer-alg-params",
    "crl:version-absent",
    "crl:trailing-text",
    "crl:chain-with-csr",
    "crl:no-next-update",
    "crl:root-no-crlsign",
    "crl:fuzz",
];

fn insert_header(pem_text: &str, header: &str) -> String {
    let nl = pem_text.find('\n').unwrap();
    format!("{}\n{}\n\n{}", &pem_text[..nl], header, &pem_text[nl + 1..])
}

impl<'a> Generator<'a> {
    pub fn new(meshes: &'a Meshes, seed: u64) -> Self {
        Generator {
            meshes,
            seed,
            index: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The next case. The mix: a few untouched bundles, then mutations of
    /// the intermediate's TBS (named and random), of the root, of the PEM
    /// files and of the CRLs.
    pub fn case(&mut self) -> Case {
        // Each case draws from its own stream (seed, index): the keys are
        // fresh every run, and a length that depends on them must not shift
        // the mutations of the cases after it.
        self.rng =
            fastrand::Rng::with_seed(self.seed ^ self.index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        self.index += 1;
        let base_i = self.rng.usize(..self.meshes.bases.len());
        let b = &self.meshes.bases[base_i];
        let roll = self.rng.u32(..100);
        let (mutation, files) = if roll < 2 {
            ("none".to_owned(), b.files())
        } else if roll < 37 {
            let m = TBS_MUTATIONS[self.rng.usize(..TBS_MUTATIONS.len())];
            let (name, f) = self.ica_mutation(b, Some(m));
            (format!("ica:{name}"), f)
        } else if roll < 52 {
            let (name, f) = self.ica_mutation(b, None);
            (format!("ica:fuzz:{name}"), f)
        } else if roll < 57 {
            self.outer_mutation(b)
        } else if roll < 64 {
            let m = ROOT_MUTATIONS[self.rng.usize(..ROOT_MUTATIONS.len())];
            (format!("root:{m}"), self.root_mutation(b, m))
        } else if roll < 67 {
            let (name, f) = self.root_fuzz(b);
            (format!("root:fuzz:{name}"), f)
        } else if roll < 85 {
            let m = PEM_MUTATIONS[self.rng.usize(..PEM_MUTATIONS.len())];
            (format!("pem:{m}"), self.pem_mutation(b, m))
        } else {
            let m = CRL_MUTATIONS[self.rng.usize(..CRL_MUTATIONS.len())];
            let (name, f) = self.crl_mutation(b, m);
            (name, f)
        };
        Case {
            base: base_i,
            mutation,
            files,
        }
    }

    fn with_ca(b: &Base, ca_der: &[u8]) -> Files {
        let ca = meshca::certificate_pem(ca_der);
        let root = meshca::certificate_pem(&b.root_der);
        let mut f = b.files();
        f.insert("ca-cert.pem".into(), ca.clone().into_bytes());
        f.insert("cert-chain.pem".into(), format!("{ca}{root}").into_bytes());
        f
    }

    /// The intermediate's TBS mutated (`m`) or fuzzed (`None`), re-signed
    /// by the root key.
    fn ica_mutation(&mut self, b: &Base, m: Option<&str>) -> (String, Files) {
        let cert = Node::parse(&b.ica_der);
        let mut tbs = cert.kids()[0].clone();
        let mut alg = cert.kids()[1].clone();
        let name = match m {
            Some(m) => {
                if !apply_tbs(m, &mut tbs, &mut self.rng) {
                    return (format!("{m}(no-op)"), b.files());
                }
                if m.starts_with("both-alg=") {
                    alg = tbs.kids()[Tbs::alg(&tbs)].clone();
                }
                m.to_owned()
            }
            None => fuzz_node(&mut tbs, &mut self.rng),
        };
        let der = signed(&tbs, &alg, b.root.key());
        (name, Self::with_ca(b, &der))
    }

    /// Mutations outside the TBS: the outer algorithm, the signature, the
    /// signing key.
    fn outer_mutation(&mut self, b: &Base) -> (String, Files) {
        let cert = Node::parse(&b.ica_der);
        let tbs = cert.kids()[0].clone();
        let alg = cert.kids()[1].clone();
        let (name, der) = match self.rng.u8(..5) {
            0 => {
                let other = if alg.kids()[0] == Node::oid(ECDSA_SHA256) {
                    alg_id(ECDSA_SHA384, false)
                } else {
                    alg_id(ECDSA_SHA256, false)
                };
                ("outer-alg-mismatch", signed(&tbs, &other, b.root.key()))
            }
            1 => {
                let mut c = cert.clone();
                // A byte in the first 16 of the signature (after the
                // unused-bits byte): every signature is longer.
                let i = 1 + self.rng.usize(..16);
                c.kids_mut()[2].value[i] ^= 0x01;
                ("signature-bit-flip", c.encode())
            }
            2 => ("signed-by-own-key", signed(&tbs, &alg, &b.ica_key)),
            3 => (
                "signed-by-foreign-root",
                signed(&tbs, &alg, self.meshes.foreign.root.key()),
            ),
            _ => {
                let mut c = cert.clone();
                c.kids_mut().push(Node::prim(Tag::Null, Vec::<u8>::new()));
                ("trailing-field", c.encode())
            }
        };
        (format!("ica-outer:{name}"), Self::with_ca(b, &der))
    }

    /// A random structure-aware edit of the root's TBS, re-signed by its key.
    fn root_fuzz(&mut self, b: &Base) -> (String, Files) {
        let cert = Node::parse(&b.root_der);
        let mut tbs = cert.kids()[0].clone();
        let name = fuzz_node(&mut tbs, &mut self.rng);
        let root_der = signed(&tbs, &cert.kids()[1], b.root.key());
        let ca = meshca::certificate_pem(&b.ica_der);
        let root = meshca::certificate_pem(&root_der);
        let mut f = b.files();
        f.insert("cert-chain.pem".into(), format!("{ca}{root}").into_bytes());
        f.insert("root-cert.pem".into(), root.into_bytes());
        (name, f)
    }

    fn root_mutation(&mut self, b: &Base, m: &str) -> Files {
        let cert = Node::parse(&b.root_der);
        let mut tbs = cert.kids()[0].clone();
        let alg = cert.kids()[1].clone();
        if m == "root-pathlen-0" {
            set_ext(
                &mut tbs,
                BC,
                true,
                Node::seq(vec![Node::boolean(true), Node::int(&[0])]).encode(),
            );
        } else if !apply_tbs(m, &mut tbs, &mut self.rng) {
            return b.files();
        }
        let root_der = signed(&tbs, &alg, b.root.key());
        let ca = meshca::certificate_pem(&b.ica_der);
        let root = meshca::certificate_pem(&root_der);
        let mut f = b.files();
        f.insert("cert-chain.pem".into(), format!("{ca}{root}").into_bytes());
        f.insert("root-cert.pem".into(), root.into_bytes());
        f
    }

    fn pem_mutation(&mut self, b: &Base, m: &str) -> Files {
        let mut f = b.files();
        let foreign = &self.meshes.foreign;
        let ca = meshca::certificate_pem(&b.ica_der);
        let root = meshca::certificate_pem(&b.root_der);
        let froot = meshca::certificate_pem(&foreign.root_der);
        let fca = meshca::certificate_pem(&foreign.ica_der);
        let ec_params =
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
        let csr = || {
            let mut p =
                rcgen::CertificateParams::new(vec!["istiod.istio-system.svc".to_owned()]).unwrap();
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.serialize_request(&b.ica_key).unwrap().pem().unwrap()
        };
        // An expired copy of a certificate: same subject and key, re-signed
        // by the same issuer (a renewed root or intermediate leaves these).
        let expired_copy = |der: &[u8], key: &PrivateKey| {
            let cert = Node::parse(der);
            let mut tbs = cert.kids()[0].clone();
            let i = Tbs::validity(&tbs);
            tbs.kids_mut()[i] = Node::seq(vec![
                utc(T0 - Duration::days(400)),
                utc(T0 - Duration::days(35)),
            ]);
            meshca::certificate_pem(&signed(&tbs, &cert.kids()[1], key))
        };
        let old_root = expired_copy(&b.root_der, b.root.key());
        let old_ca = expired_copy(&b.ica_der, b.root.key());
        let key = b.ica_key_pem.to_string();
        let mut put = |name: &str, text: String| {
            f.insert(name.to_owned(), text.into_bytes());
        };
        let (target, op) = m.split_once(':').unwrap();
        match (target, op) {
            ("ca-cert", "ec-parameters-first") => put("ca-cert.pem", format!("{ec_params}{ca}")),
            ("ca-cert", "csr-first") => put("ca-cert.pem", format!("{}{ca}", csr())),
            ("ca-cert", "root-appended") => put("ca-cert.pem", format!("{ca}{root}")),
            ("ca-cert", "foreign-cert-first") => put("ca-cert.pem", format!("{fca}{ca}")),
            ("ca-cert", "header") => put("ca-cert.pem", insert_header(&ca, "Comment: cluster1")),
            ("ca-cert", "no-final-newline") => put("ca-cert.pem", ca.trim_end().to_owned()),
            ("ca-cert", "crlf") => put("ca-cert.pem", ca.replace('\n', "\r\n")),
            ("ca-cert", "leading-text") => {
                put("ca-cert.pem", format!("Intermediate CA for cluster1\n{ca}"))
            }
            ("ca-cert", "trailing-text") => put("ca-cert.pem", format!("{ca}trailing notes\n")),
            ("ca-cert", "bad-base64") => {
                let mut lines: Vec<String> = ca.lines().map(str::to_owned).collect();
                lines[2].replace_range(3..4, "!");
                put("ca-cert.pem", lines.join("\n") + "\n")
            }
            ("ca-cert", "indented") => put(
                "ca-cert.pem",
                ca.lines().map(|l| format!("  {l}\n")).collect::<String>(),
            ),
            ("ca-cert", "label-x509-certificate") => {
                put("ca-cert.pem", pem_block("X509 CERTIFICATE", &b.ica_der))
            }
            ("ca-cert", "label-trusted-certificate") => {
                put("ca-cert.pem", pem_block("TRUSTED CERTIFICATE", &b.ica_der))
            }
            ("ca-cert", "long-lines") => {
                let body: String = ca.lines().filter(|l| !l.starts_with("-----")).collect();
                put(
                    "ca-cert.pem",
                    format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"),
                )
            }
            ("ca-cert", "der-not-pem") => {
                f.insert("ca-cert.pem".into(), b.ica_der.clone());
            }
            ("chain", "glued") => put("cert-chain.pem", format!("{}{root}", ca.trim_end())),
            ("chain", "reversed") => put("cert-chain.pem", format!("{root}{ca}")),
            ("chain", "without-root") => put("cert-chain.pem", ca.clone()),
            ("chain", "ca-only") => put("cert-chain.pem", format!("{ca}{ca}")),
            ("chain", "foreign-cert-appended") => put("cert-chain.pem", format!("{ca}{root}{fca}")),
            ("chain", "duplicate-ca") => put("cert-chain.pem", format!("{ca}{ca}{root}")),
            ("chain", "csr-inserted") => put("cert-chain.pem", format!("{ca}{}{root}", csr())),
            ("chain", "ec-parameters-inserted") => {
                put("cert-chain.pem", format!("{ca}{ec_params}{root}"))
            }
            ("chain", "root-header") => put(
                "cert-chain.pem",
                format!("{ca}{}", insert_header(&root, "Comment: root")),
            ),
            ("chain", "no-final-newline") => {
                put("cert-chain.pem", format!("{ca}{}", root.trim_end()))
            }
            ("chain", "root-only") => put("cert-chain.pem", root.clone()),
            ("chain", "foreign-root-instead") => put("cert-chain.pem", format!("{ca}{froot}")),
            ("root", "foreign-only") => put("root-cert.pem", froot.clone()),
            ("root", "foreign-then-real") => put("root-cert.pem", format!("{froot}{root}")),
            ("root", "real-then-foreign") => put("root-cert.pem", format!("{root}{froot}")),
            ("root", "header") => put("root-cert.pem", insert_header(&root, "Comment: root")),
            ("root", "label-trusted-certificate") => put(
                "root-cert.pem",
                pem_block("TRUSTED CERTIFICATE", &b.root_der),
            ),
            ("root", "with-intermediate") => put("root-cert.pem", format!("{root}{ca}")),
            ("root", "intermediate-only") => put("root-cert.pem", ca.clone()),
            ("root", "no-final-newline") => put("root-cert.pem", root.trim_end().to_owned()),
            ("root", "glued-two-roots") => {
                put("root-cert.pem", format!("{}{froot}", root.trim_end()))
            }
            ("root", "comment-between") => {
                put("root-cert.pem", format!("{froot}# the mesh root\n{root}"))
            }
            ("root", "garbage-block-first") => put(
                "root-cert.pem",
                format!(
                    "{}{root}",
                    pem_block("CERTIFICATE", &[0x30, 0x03, 0x02, 0x01, 0x00])
                ),
            ),
            ("root", "expired-copy-first") => put("root-cert.pem", format!("{old_root}{root}")),
            ("root", "expired-copy-last") => put("root-cert.pem", format!("{root}{old_root}")),
            ("chain", "expired-root-copy") => {
                put("cert-chain.pem", format!("{ca}{old_root}{root}"))
            }
            ("chain", "expired-ca-copy") => put("cert-chain.pem", format!("{ca}{old_ca}{root}")),
            ("key", "ec-parameters-first") => put("ca-key.pem", format!("{ec_params}{key}")),
            ("key", "inner-format") => {
                use pkcs8::der::Decode as _;
                let der = pem_der(&key);
                let info = pkcs8::PrivateKeyInfo::from_der(&der).unwrap();
                let label = if b.ica.key_type().is_rsa() {
                    "RSA PRIVATE KEY"
                } else {
                    "EC PRIVATE KEY"
                };
                put("ca-key.pem", pem_block(label, info.private_key))
            }
            ("key", "wrong-label") => {
                let label = if b.ica.key_type().is_rsa() {
                    "EC PRIVATE KEY"
                } else {
                    "RSA PRIVATE KEY"
                };
                put("ca-key.pem", pem_block(label, &pem_der(&key)))
            }
            ("key", "foreign") => put("ca-key.pem", foreign.ica_key_pem.to_string()),
            ("key", "foreign-first") => {
                put("ca-key.pem", format!("{}{key}", &*foreign.ica_key_pem))
            }
            ("key", "header") => put("ca-key.pem", insert_header(&key, "Comment: cluster1")),
            ("key", "encrypted") => put(
                "ca-key.pem",
                b.ica_key
                    .to_encrypted_pem(b"differential")
                    .unwrap()
                    .to_string(),
            ),
            ("key", "trailing-text") => put("ca-key.pem", format!("{key}notes\n")),
            ("key", "crlf") => put("ca-key.pem", key.replace('\n', "\r\n")),
            ("key", "no-final-newline") => put("ca-key.pem", key.trim_end().to_owned()),
            ("key", "public-key") => put(
                "ca-key.pem",
                pem_block("PUBLIC KEY", &b.ica_key.public_key_der()),
            ),
            ("key", "certificate-instead") => put("ca-key.pem", ca.clone()),
            ("key", "explicit-curve") => {
                if let Some(k) = &b.ica_key_explicit {
                    put("ca-key.pem", k.clone())
                }
            }
            ("files", op) => match op {
                "no-ca-cert" => drop(f.remove("ca-cert.pem")),
                "no-ca-key" => drop(f.remove("ca-key.pem")),
                "no-cert-chain" => drop(f.remove("cert-chain.pem")),
                "no-root-cert" => drop(f.remove("root-cert.pem")),
                "only-ca-cert" => f.retain(|k, _| k == "ca-cert.pem"),
                "none" => f.clear(),
                "empty-ca-cert" => drop(f.insert("ca-cert.pem".into(), Vec::new())),
                "empty-cert-chain" => drop(f.insert("cert-chain.pem".into(), Vec::new())),
                "empty-root-cert" => drop(f.insert("root-cert.pem".into(), Vec::new())),
                "empty-ca-crl" => drop(f.insert("ca-crl.pem".into(), Vec::new())),
                "tls-layout" | "tls-layout-with-crl" => {
                    // kubernetes.io/tls next to the istiod files: istiod reads
                    // only tls.crt, tls.key, ca.crt (and then never ca-crl.pem).
                    // Here tls.crt is a foreign CA, so istiod fails.
                    f.insert("tls.crt".into(), fca.clone().into_bytes());
                    f.insert("tls.key".into(), foreign.ica_key_pem.as_bytes().to_vec());
                    f.insert("ca.crt".into(), root.clone().into_bytes());
                    if op == "tls-layout-with-crl" {
                        f.insert("ca-crl.pem".into(), b.ca_crl.clone().into_bytes());
                    }
                }
                "istio-generated" => drop(f.insert("istio-generated".into(), b"true".to_vec())),
                other => panic!("unknown mutation {other}"),
            },
            other => panic!("unknown mutation {other:?}"),
        }
        f
    }

    /// A CRL of `signer` (PEM) with its TBS mutated by `edit`, re-signed.
    fn resign_crl(
        crl_pem: &str,
        key: &PrivateKey,
        edit: impl FnOnce(&mut Node, &mut Node),
    ) -> String {
        let crl = Node::parse(&pem_der(crl_pem));
        let mut tbs = crl.kids()[0].clone();
        let mut alg = crl.kids()[1].clone();
        edit(&mut tbs, &mut alg);
        pem_block("X509 CRL", &signed(&tbs, &alg, key))
    }

    fn crl_mutation(&mut self, b: &Base, m: &str) -> (String, Files) {
        let mut f = b.files();
        let own_crl = |now: OffsetDateTime, days: u32| {
            b.ica
                .ca_crl(b.root_crl.as_bytes(), None, now, days)
                .unwrap()
        };
        let root_crl_pem = b.root_crl.clone();
        // The intermediate's own CRL: the last block of ca_crl.
        let own_only = {
            let blocks = pem::parse_many(&b.ca_crl).unwrap();
            pem_block("X509 CRL", blocks.last().unwrap().contents())
        };
        let crl_ext = |tbs: &mut Node, e: Node| {
            let kids = tbs.kids_mut();
            match kids.iter().position(|k| k.is_ctx(0) && k.kids.is_some()) {
                Some(i) => kids[i].kids_mut()[0].kids_mut().push(e),
                None => kids.push(Node::ctx(0, Some(vec![Node::seq(vec![e])]), &[])),
            }
        };
        let mut name = m.to_owned();
        let text = match m {
            "crl:good" => b.ca_crl.clone(),
            "crl:stale" => own_crl(AT - Duration::days(40), 30),
            // An old CRL left next to the current one: Envoy uses the best.
            "crl:stale-and-fresh" => {
                let stale = own_crl(AT - Duration::days(40), 30);
                let old = pem::parse_many(&stale).unwrap();
                format!(
                    "{}{}",
                    b.ca_crl,
                    pem_block("X509 CRL", old.last().unwrap().contents())
                )
            }
            "crl:future-this-update" => own_crl(AT + Duration::days(1), 30),
            "crl:wrong-signer" => format!("{}{own_only}", self.meshes.foreign.root_crl),
            "crl:root-only" => root_crl_pem.clone(),
            "crl:intermediate-only" => own_only.clone(),
            "crl:critical-unknown-extension" | "crl:unknown-extension" => {
                let critical = m == "crl:critical-unknown-extension";
                let own = Self::resign_crl(&own_only, &b.ica_key, |tbs, _| {
                    crl_ext(
                        tbs,
                        extension(
                            UNKNOWN,
                            critical,
                            Node::prim(Tag::Null, Vec::<u8>::new()).encode(),
                        ),
                    )
                });
                format!("{root_crl_pem}{own}")
            }
            "crl:idp-only-some-reasons" | "crl:idp-indirect" => {
                let field = if m == "crl:idp-indirect" {
                    Node::ctx(4, None, &[0xff])
                } else {
                    Node::ctx(3, None, &[0x07, 0x80])
                };
                let own = Self::resign_crl(&own_only, &b.ica_key, |tbs, _| {
                    crl_ext(
                        tbs,
                        extension("2.5.29.28", true, Node::seq(vec![field]).encode()),
                    )
                });
                format!("{root_crl_pem}{own}")
            }
            "crl:delta-indicator" => {
                let own = Self::resign_crl(&own_only, &b.ica_key, |tbs, _| {
                    crl_ext(tbs, extension("2.5.29.27", true, Node::int(&[1]).encode()))
                });
                format!("{root_crl_pem}{own}")
            }
            "crl:certificate-block" => {
                format!("{}{}", b.ca_crl, meshca::certificate_pem(&b.root_der))
            }
            "crl:revoked-intermediate" => {
                let rev = Revocation::new(b.ica.serial(), T0, Reason::KeyCompromise);
                let root_crl = b.root.crl(None, &[rev], T0, CRL_DAYS).unwrap();
                b.ica
                    .ca_crl(root_crl.as_bytes(), None, T0, CRL_DAYS)
                    .unwrap()
            }
            "crl:outer-alg-mismatch" => {
                let own = Self::resign_crl(&own_only, &b.ica_key, |_, alg| {
                    *alg = if alg.kids()[0] == Node::oid(ECDSA_SHA256) {
                        alg_id(ECDSA_SHA384, false)
                    } else {
                        alg_id(ECDSA_SHA256, false)
                    };
                });
                format!("{root_crl_pem}{own}")
            }
            "crl:outer-alg-params" => {
                let own = Self::resign_crl(&own_only, &b.ica_key, |_, alg| {
                    alg.kids_mut().push(Node::octets(vec![1, 2, 3]));
                });
                format!("{root_crl_pem}{own}")
            }
            "crl:version-absent" => {
                let own = Self::resign_crl(&own_only, &b.ica_key, |tbs, _| {
                    if tbs.kids()[0].tag == Tag::Integer {
                        tbs.kids_mut().remove(0);
                    }
                });
                format!("{root_crl_pem}{own}")
            }
            "crl:trailing-text" => format!("{}trailing notes\n", b.ca_crl),
            "crl:chain-with-csr" => {
                let ca = meshca::certificate_pem(&b.ica_der);
                let root = meshca::certificate_pem(&b.root_der);
                let fake = pem_block("CERTIFICATE REQUEST", &[0x30, 0x00]);
                f.insert(
                    "cert-chain.pem".into(),
                    format!("{ca}{fake}{root}").into_bytes(),
                );
                b.ca_crl.clone()
            }
            "crl:no-next-update" => {
                let own = Self::resign_crl(&own_only, &b.ica_key, |tbs, _| {
                    // thisUpdate is followed by nextUpdate (a time); drop it.
                    let kids = tbs.kids_mut();
                    if let Some(i) = kids
                        .iter()
                        .position(|k| k.tag == Tag::UtcTime || k.tag == Tag::GeneralizedTime)
                    {
                        if kids
                            .get(i + 1)
                            .is_some_and(|k| k.tag == Tag::UtcTime || k.tag == Tag::GeneralizedTime)
                        {
                            kids.remove(i + 1);
                        }
                    }
                });
                format!("{root_crl_pem}{own}")
            }
            "crl:root-no-crlsign" => {
                // The root's keyUsage without cRLSign: its CRL no longer counts.
                let cert = Node::parse(&b.root_der);
                let mut tbs = cert.kids()[0].clone();
                set_ext(&mut tbs, KU, true, bits(&[0x02, 0x84]).encode());
                let root_der = signed(&tbs, &cert.kids()[1], b.root.key());
                let ca = meshca::certificate_pem(&b.ica_der);
                let root = meshca::certificate_pem(&root_der);
                f.insert("cert-chain.pem".into(), format!("{ca}{root}").into_bytes());
                f.insert("root-cert.pem".into(), root.into_bytes());
                b.ca_crl.clone()
            }
            "crl:fuzz" => {
                let mut what = String::new();
                let rng = &mut self.rng;
                let own =
                    Self::resign_crl(&own_only, &b.ica_key, |tbs, _| what = fuzz_node(tbs, rng));
                name = format!("crl:fuzz:{what}");
                format!("{root_crl_pem}{own}")
            }
            other => panic!("unknown mutation {other}"),
        };
        f.insert("ca-crl.pem".into(), text.into_bytes());
        (name, f)
    }
}

/// Mutations of a two-cluster mesh (a certs directory).
const MESH_MUTATIONS: &[&str] = &[
    "mesh:good",
    "mesh:cluster2-foreign-ca-both-roots",
    "mesh:cluster2-foreign-only",
    "mesh:cluster1-both-roots",
    "mesh:both-clusters-both-roots",
    "mesh:shared-key",
    "mesh:top-root-foreign",
    "mesh:cluster2-chain-without-root",
    "mesh:cluster2-ca-is-the-root",
];

fn cluster_files(prefix: &str, ca: &str, key: &str, chain: &str, roots: &str, into: &mut Files) {
    for (n, v) in [
        ("ca-cert.pem", ca),
        ("ca-key.pem", key),
        ("cert-chain.pem", chain),
        ("root-cert.pem", roots),
    ] {
        into.insert(format!("{prefix}/{n}"), v.as_bytes().to_vec());
    }
}

impl Generator<'_> {
    /// A certs directory: the mesh root, cluster1 and cluster2, mutated.
    pub fn mesh_case(&mut self) -> Case {
        self.rng =
            fastrand::Rng::with_seed(!self.seed ^ self.index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        self.index += 1;
        let base_i = self.rng.usize(..self.meshes.bases.len());
        let b = &self.meshes.bases[base_i];
        let f = &self.meshes.foreign;
        let m = MESH_MUTATIONS[self.rng.usize(..MESH_MUTATIONS.len())];
        let root = b.root.cert_pem();
        let froot = f.root.cert_pem();
        let (ca1, key1, chain1) = (
            b.ica.cert_pem(),
            b.ica_key_pem.to_string(),
            b.ica.chain_pem(),
        );
        let b2 = b.ica2.bundle();
        let (mut ca2, mut key2, mut chain2, mut roots2) = (
            b2.ca_cert.clone(),
            b2.ca_key.to_string(),
            b2.cert_chain.clone(),
            root.clone(),
        );
        let mut roots1 = root.clone();
        let mut top = root.clone();
        match m {
            "mesh:good" => {}
            "mesh:cluster2-foreign-ca-both-roots" => {
                ca2 = f.ica.cert_pem();
                key2 = f.ica_key_pem.to_string();
                chain2 = f.ica.chain_pem();
                roots2 = format!("{root}{froot}");
            }
            "mesh:cluster2-foreign-only" => {
                ca2 = f.ica.cert_pem();
                key2 = f.ica_key_pem.to_string();
                chain2 = f.ica.chain_pem();
                roots2 = froot.clone();
            }
            "mesh:cluster1-both-roots" => roots1 = format!("{root}{froot}"),
            "mesh:both-clusters-both-roots" => {
                roots1 = format!("{root}{froot}");
                roots2 = format!("{froot}{root}");
            }
            "mesh:shared-key" => {
                ca2 = ca1.clone();
                key2 = key1.clone();
                chain2 = chain1.clone();
            }
            "mesh:top-root-foreign" => top = froot.clone(),
            "mesh:cluster2-chain-without-root" => chain2 = ca2.clone(),
            // The offline root deployed as a cluster CA: istiod loads it.
            "mesh:cluster2-ca-is-the-root" => {
                ca2 = root.clone();
                key2 = b.root.key().to_pem().to_string();
                chain2 = root.clone();
            }
            other => panic!("unknown mutation {other}"),
        }
        let mut files = Files::new();
        files.insert("root-cert.pem".into(), top.into_bytes());
        cluster_files("cluster1", &ca1, &key1, &chain1, &roots1, &mut files);
        cluster_files("cluster2", &ca2, &key2, &chain2, &roots2, &mut files);
        Case {
            base: base_i,
            mutation: m.to_owned(),
            files,
        }
    }
}
