//! A mesh whose root key lives only in a PKCS#11 token (SoftHSM2): the
//! key pair is generated in the token, never written anywhere, and every
//! command that signs with the root (init, intermediate, workload, crl,
//! revoke, renew, root --renew, apply, rotate) signs through the token.
//! Results are checked with `meshca verify`, `openssl verify -x509_strict`
//! and the Go oracle (rollout steps with `verify --previous` and the
//! oracle's `--previous`); the token's objects with `pkcs11-tool` (OpenSC).
//!
//! Needs `softhsm2-util` and `pkcs11-tool` on PATH and the SoftHSM2 module
//! (Debian `softhsm2`, `opensc`; .ci/run installs them): the tests fail,
//! never skip, without them. `MESHCA_SOFTHSM2_MODULE` names the module
//! when it is somewhere unusual.

mod util;

#[path = "../../lib/tests/support/oracle.rs"]
#[allow(dead_code)]
mod oracle;

use std::path::{Path, PathBuf};
use std::process::Output;

use time::format_description::well_known::Rfc3339;
use util::Dir;

/// A PIN no URI, id or file name contains by chance.
const PIN: &str = "Qz-test-pin-8841";

/// The SoftHSM2 module: `MESHCA_SOFTHSM2_MODULE`, else where Debian and
/// other distributions put it.
fn module() -> PathBuf {
    if let Some(m) = std::env::var_os("MESHCA_SOFTHSM2_MODULE") {
        let m = PathBuf::from(m);
        assert!(
            m.is_file(),
            "MESHCA_SOFTHSM2_MODULE={} is not a file",
            m.display()
        );
        return m;
    }
    let mut candidates: Vec<PathBuf> = vec![
        "/usr/lib/softhsm/libsofthsm2.so".into(),
        format!(
            "/usr/lib/{}-linux-gnu/softhsm/libsofthsm2.so",
            std::env::consts::ARCH
        )
        .into(),
        "/usr/lib64/softhsm/libsofthsm2.so".into(),
        "/usr/lib64/pkcs11/libsofthsm2.so".into(),
        "/usr/local/lib/softhsm/libsofthsm2.so".into(),
    ];
    // Any multiarch directory.
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        for e in entries.flatten() {
            candidates.push(e.path().join("softhsm/libsofthsm2.so"));
        }
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the SoftHSM2 module libsofthsm2.so was not found: install softhsm2 \
                 (.ci/run does) or set MESHCA_SOFTHSM2_MODULE"
            )
        })
}

/// A fresh SoftHSM2 token in a temp directory, and a working directory
/// for meshca beside it.
struct Token {
    dir: Dir,
    conf: PathBuf,
    module: PathBuf,
    label: String,
}

impl Token {
    fn new(label: &str) -> Token {
        let dir = Dir::new();
        let tokens = dir.join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        std::fs::write(dir.join("pin"), format!("{PIN}\n")).unwrap();
        std::fs::write(dir.join("wrong-pin"), "0000-wrong\n").unwrap();
        let t = Token {
            dir,
            conf,
            module: module(),
            label: label.to_owned(),
        };
        let out = t.tool(
            "softhsm2-util",
            &[
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                PIN,
                "--so-pin",
                "so-pin-7731",
            ],
        );
        util::assert_success("softhsm2-util --init-token", &out);
        t
    }

    /// The key `object`'s URI, the PIN read from the file `pin`.
    fn uri(&self, object: &str) -> String {
        self.uri_with(
            object,
            &format!("pin-source=file:{}", self.dir.join("pin").display()),
        )
    }

    fn uri_with(&self, object: &str, query: &str) -> String {
        format!(
            "pkcs11:token={};object={object}?module-path={}&{query}",
            self.label,
            self.module.display()
        )
    }

    fn meshca(&self, args: &[&str]) -> Output {
        let conf = self.conf.to_str().unwrap();
        self.dir.meshca_env(args, &[("SOFTHSM2_CONF", conf)])
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.meshca(args);
        util::assert_success(&format!("meshca {args:?}"), &out);
        assert!(!util::stderr(&out).contains(PIN));
        assert!(!util::stdout(&out).contains(PIN));
        out
    }

    fn tool(&self, name: &str, args: &[&str]) -> Output {
        std::process::Command::new(util::require_tool(name))
            .current_dir(self.dir.path())
            .env("SOFTHSM2_CONF", &self.conf)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {name}: {e}"))
    }

    /// `pkcs11-tool` logged in to the token.
    fn p11(&self, args: &[&str]) -> Output {
        let module = self.module.to_str().unwrap();
        let mut all = vec![
            "--module",
            module,
            "--token-label",
            &self.label,
            "--login",
            "--pin",
            PIN,
        ];
        all.extend_from_slice(args);
        let out = self.tool("pkcs11-tool", &all);
        util::assert_success(&format!("pkcs11-tool {args:?}"), &out);
        out
    }

    /// The `pkcs11-tool --list-objects` blocks of the objects labelled
    /// `label`.
    fn objects(&self, label: &str) -> Vec<String> {
        let out = util::stdout(&self.p11(&["--list-objects"]));
        let mut blocks: Vec<String> = Vec::new();
        for line in out.lines() {
            if !line.starts_with(' ') {
                blocks.push(String::new());
            }
            if let Some(b) = blocks.last_mut() {
                b.push_str(line);
                b.push('\n');
            }
        }
        blocks
            .into_iter()
            .filter(|b| {
                b.lines()
                    .any(|l| l.trim().strip_prefix("label:").map(str::trim) == Some(label))
            })
            .collect()
    }

    /// Checks that the token's public key `label` is the certificate's
    /// and that its private key is sensitive and never extractable.
    fn assert_key_is_the_certs_and_stays(&self, label: &str, cert: &str) {
        // The certificate's SubjectPublicKeyInfo, DER.
        let pem = self
            .dir
            .openssl(&["x509", "-in", cert, "-pubkey", "-noout"]);
        let pem_file = self.dir.join(&format!("{label}-cert-pub.pem"));
        std::fs::write(&pem_file, pem).unwrap();
        let cert_der = self.dir.join(&format!("{label}-cert-pub.der"));
        self.dir.openssl(&[
            "pkey",
            "-pubin",
            "-in",
            pem_file.to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            cert_der.to_str().unwrap(),
        ]);
        let spki = std::fs::read(&cert_der).unwrap();
        let objects = self.objects(label);
        let public = objects
            .iter()
            .find(|b| b.starts_with("Public Key Object"))
            .unwrap_or_else(|| panic!("no public key {label}: {objects:?}"));
        if let Some(point) = public
            .lines()
            .find_map(|l| l.trim().strip_prefix("EC_POINT:"))
        {
            // EC: pkcs11-tool prints CKA_EC_POINT (a DER OCTET STRING of
            // the point), which ends the certificate's SPKI. (OpenSC 0.23
            // cannot export P-384 public keys with --read-object.)
            let bytes: Vec<u8> = (0..point.trim().len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&point.trim()[i..i + 2], 16).unwrap())
                .collect();
            assert_eq!(bytes[0], 0x04, "{point}");
            let raw = &bytes[2..];
            assert!(raw.len() == 65 || raw.len() == 97, "{point}");
            assert!(
                spki.ends_with(raw),
                "the token's public key {label} is not {cert}'s"
            );
        } else {
            let der = self.dir.join(&format!("{label}-pub.der"));
            self.p11(&[
                "--read-object",
                "--type",
                "pubkey",
                "--label",
                label,
                "--output-file",
                der.to_str().unwrap(),
            ]);
            assert_eq!(
                std::fs::read(&der).unwrap(),
                spki,
                "the token's public key {label} is not {cert}'s"
            );
        }
        let objects = self.objects(label);
        let private: Vec<&String> = objects
            .iter()
            .filter(|b| b.starts_with("Private Key Object"))
            .collect();
        assert_eq!(private.len(), 1, "one private key {label}: {objects:?}");
        let access = private[0]
            .lines()
            .find(|l| l.trim_start().starts_with("Access:"))
            .unwrap_or_else(|| panic!("no Access line: {}", private[0]));
        for flag in ["sensitive", "never extractable"] {
            assert!(access.contains(flag), "{label}: not {flag}: {access}");
        }
        let usage = private[0]
            .lines()
            .find(|l| l.trim_start().starts_with("Usage:"))
            .unwrap_or_default();
        assert!(usage.contains("sign"), "{label}: {usage}");
        for other in ["decrypt", "unwrap", "derive"] {
            assert!(!usage.contains(other), "{label} may {other}: {usage}");
        }
    }
}

/// Every file under `dir`, relative, with its bytes (but the token's own
/// files, which a failed login changes).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().is_some_and(|n| n != ".meshca.lock")
                && !p.starts_with(dir.join("tokens"))
            {
                let rel = p.strip_prefix(dir).unwrap().to_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn oracle_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        oracle::build(
            &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oracle"),
            "oracle-pkcs11",
        )
    })
    .clone()
}

/// `meshca verify` passes on the certs directory, the Go oracle accepts
/// it as a mesh, and `openssl verify -x509_strict` accepts every cluster's
/// intermediate against the mesh's roots.
fn assert_mesh_verifies(t: &Token, certs: &str, clusters: &[&str]) {
    let out = t.meshca(&["verify", certs]);
    util::assert_success(&format!("meshca verify {certs}"), &out);
    let now = time::OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let verdicts = oracle::run_with(&oracle_bin(), &now, &["--mesh"], &[t.dir.join(certs)]);
    assert!(!verdicts.is_empty());
    for v in &verdicts {
        assert!(
            v.ok,
            "the oracle refuses {}: {} {}",
            v.dir, v.stage, v.reason
        );
    }
    for c in clusters {
        let root = format!("{certs}/{c}/root-cert.pem");
        let ca = format!("{certs}/{c}/ca-cert.pem");
        let got = t
            .dir
            .openssl(&["verify", "-x509_strict", "-CAfile", &root, &ca]);
        assert!(got.contains(": OK"), "{got}");
    }
}

/// The rollout step from `prev` to `cur` as istiod reloads it: `meshca
/// verify --previous` and the oracle both take it with `multiroot` (and
/// `ISTIO_MULTIROOT_MESH=true`) as given; when `multiroot`, both refuse it
/// without.
fn assert_step(t: &Token, prev: &str, cur: &str, multiroot: bool) {
    let now = time::OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let prev_abs = t.dir.join(prev).display().to_string();
    let judge = |multiroot: bool| {
        let mut args = vec!["verify"];
        let mut flags = vec!["--previous", prev_abs.as_str()];
        if multiroot {
            args.push("--multiroot");
            flags.push("--multiroot");
        }
        args.extend(["--previous", prev, cur]);
        let out = t.meshca(&args);
        let verdicts = oracle::run_with(&oracle_bin(), &now, &flags, &[t.dir.join(cur)]);
        assert_eq!(verdicts.len(), 1);
        (out, verdicts.into_iter().next().unwrap())
    };
    let (out, v) = judge(multiroot);
    util::assert_success(&format!("meshca verify --previous {prev} {cur}"), &out);
    assert!(
        v.ok,
        "the oracle refuses {prev} -> {cur}: {} {}",
        v.stage, v.reason
    );
    if multiroot {
        let (out, v) = judge(false);
        assert_eq!(out.status.code(), Some(1), "{}", util::stdout(&out));
        assert!(
            util::stdout(&out).contains("root-changed"),
            "{}",
            util::stdout(&out)
        );
        assert!(
            !v.ok,
            "the oracle takes {prev} -> {cur} without ISTIO_MULTIROOT_MESH"
        );
    }
}

/// The certificates of a PEM file under the token's directory, DER.
fn certs_of(t: &Token, file: &str) -> Vec<Vec<u8>> {
    meshca::certificates(file, t.dir.read(file).as_bytes()).unwrap()
}

/// renew (a cluster), status, root --renew and apply with the root in the
/// token, each checked, each rollout step too.
fn lifecycle_in_the_token(t: &Token, key_type: &str, uri: &str) {
    // Renewal of east's intermediate, signed in the token: root-cert.pem
    // byte for byte, so the step needs no ISTIO_MULTIROOT_MESH.
    util::copy_tree(&t.dir.join("certs"), &t.dir.join("before-renew"));
    t.ok(&["renew", "--dir", "certs", "east"]);
    for f in [
        "root-cert.pem",
        "east/root-cert.pem",
        "west/ca-cert.pem",
        "west/ca-key.pem",
    ] {
        assert_eq!(
            t.dir.read(&format!("certs/{f}")),
            t.dir.read(&format!("before-renew/{f}")),
            "{f}"
        );
    }
    for f in ["east/ca-cert.pem", "east/ca-key.pem", "east/cacerts.yaml"] {
        assert_ne!(
            t.dir.read(&format!("certs/{f}")),
            t.dir.read(&format!("before-renew/{f}")),
            "{f}"
        );
    }
    assert_mesh_verifies(t, "certs", &["east", "west", "north"]);
    assert_step(t, "before-renew", "certs", false);

    // status reads it all: every CA ok.
    let out = t.ok(&["status", "--dir", "certs", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["ok"], true, "{status:#}");
    assert_eq!(status["root"]["state"], "ok", "{status:#}");
    let clusters = status["clusters"].as_array().unwrap();
    for name in ["east", "west", "north"] {
        let c = clusters
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {status:#}"));
        assert_eq!(c["state"], "ok", "{name}: {status:#}");
    }
    let out = t.ok(&["status", "--dir", "certs"]);
    assert!(
        util::stdout(&out).contains("east"),
        "{}",
        util::stdout(&out)
    );

    // Root renewal, signed in the token: the same key, the renewed root
    // first in root-cert.pem, the old one after it.
    util::copy_tree(&t.dir.join("certs"), &t.dir.join("before-root-renew"));
    t.ok(&["root", "--dir", "certs", "--renew", "--days", "7300"]);
    let old = certs_of(t, "before-root-renew/root-cert.pem");
    let roots = certs_of(t, "certs/root-cert.pem");
    assert_eq!(roots.len(), old.len() + 1);
    assert_eq!(roots[1..], old[..]);
    assert_eq!(
        t.dir.read("certs/root-key.uri"),
        t.dir.read("before-root-renew/root-key.uri")
    );
    t.assert_key_is_the_certs_and_stays("root", "certs/root-cert.pem");
    // openssl: the renewed root is self-signed (by the token's key) and
    // every intermediate verifies under it alone.
    std::fs::write(
        t.dir.join("renewed-root.pem"),
        meshca::certificate_pem(&roots[0]),
    )
    .unwrap();
    let mut args = vec![
        "verify",
        "-x509_strict",
        "-CAfile",
        "renewed-root.pem",
        "renewed-root.pem",
    ];
    let cas: Vec<String> = ["east", "west", "north"]
        .iter()
        .map(|c| format!("certs/{c}/ca-cert.pem"))
        .collect();
    args.extend(cas.iter().map(String::as_str));
    let got = t.dir.openssl(&args);
    assert_eq!(got.matches(": OK").count(), 4, "{got}");
    for c in ["east", "west", "north"] {
        assert_eq!(
            t.dir.read(&format!("certs/{c}/ca-cert.pem")),
            t.dir.read(&format!("before-root-renew/{c}/ca-cert.pem")),
        );
    }
    assert_mesh_verifies(t, "certs", &["east", "west", "north"]);
    assert_step(t, "before-root-renew", "certs", true);

    // apply: a mesh file whose root key is the token's URI adds south,
    // signed in the token; the clusters it does not name stay as they were.
    util::copy_tree(&t.dir.join("certs"), &t.dir.join("before-apply"));
    std::fs::write(
        t.dir.join("fleet.yaml"),
        format!(
            "apiVersion: meshca/v1\nkind: Mesh\nroot:\n  keyType: {key_type}\n  key: '{uri}'\n\
             defaults:\n  keyType: ecdsa-p256\nclusters:\n  - name: south\n"
        ),
    )
    .unwrap();
    t.ok(&["apply", "-f", "fleet.yaml", "--dir", "certs"]);
    for c in ["east", "west", "north"] {
        for f in ["ca-cert.pem", "ca-key.pem", "root-cert.pem"] {
            assert_eq!(
                t.dir.read(&format!("certs/{c}/{f}")),
                t.dir.read(&format!("before-apply/{c}/{f}")),
                "{c}/{f}"
            );
        }
    }
    assert_eq!(
        t.dir.read("certs/south/root-cert.pem"),
        t.dir.read("certs/root-cert.pem")
    );
    assert_mesh_verifies(t, "certs", &["east", "west", "north", "south"]);
    let out = t.meshca(&["plan", "-f", "fleet.yaml", "--dir", "certs", "--exit-code"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        util::stdout(&out),
        util::stderr(&out)
    );
}

fn full_mesh_in_the_token(key_type: &str) {
    let t = Token::new("meshca");
    let uri = t.uri("root");
    let out = t.ok(&[
        "root",
        "--dir",
        "certs",
        "--key-type",
        key_type,
        "--root-key",
        &uri,
    ]);
    assert!(util::stdout(&out).contains("root-key.uri"));
    // Only the certificate and the URI: no key file, no PIN.
    let files = snapshot(&t.dir.join("certs"));
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    assert_eq!(names, ["root-cert.pem", "root-key.uri"]);
    for (p, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("PRIVATE KEY"), "{}", p.display());
        assert!(!text.contains(PIN), "{}", p.display());
    }
    let recorded = t.dir.read("certs/root-key.uri");
    assert!(
        recorded.starts_with("pkcs11:token=meshca;object=root;id="),
        "{recorded}"
    );
    assert!(recorded.contains("pin-source=file:"), "{recorded}");
    t.assert_key_is_the_certs_and_stays("root", "certs/root-cert.pem");
    let inspect = t
        .dir
        .openssl(&["x509", "-in", "certs/root-cert.pem", "-noout", "-text"]);
    let alg = if key_type.starts_with("rsa") {
        "sha256WithRSAEncryption"
    } else if key_type == "ecdsa-p256" {
        "ecdsa-with-SHA256"
    } else {
        "ecdsa-with-SHA384"
    };
    assert!(inspect.contains(alg), "{inspect}");

    // Later commands find the key through root-key.uri.
    t.ok(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "east",
        "west",
    ]);
    assert_mesh_verifies(&t, "certs", &["east", "west"]);
    t.ok(&[
        "intermediate",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "north",
    ]);
    t.ok(&[
        "workload",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "vm-ns",
    ]);
    assert_mesh_verifies(&t, "certs", &["east", "west", "north", "vm-ns"]);
    t.ok(&["crl", "--dir", "certs", "east", "west"]);
    assert_mesh_verifies(&t, "certs", &["east", "west", "north"]);
    // The root CRL's signature, made in the token, checked by openssl.
    let out = t.dir.tool(
        "openssl",
        &[
            "crl",
            "-in",
            "certs/root-crl.pem",
            "-CAfile",
            "certs/root-cert.pem",
            "-noout",
        ],
    );
    util::assert_success("openssl crl -CAfile", &out);
    let said = format!("{}{}", util::stdout(&out), util::stderr(&out));
    assert!(said.contains("verify OK"), "{said}");
    // Revoke west, signed in the token: openssl sees it revoked.
    std::fs::copy(
        t.dir.join("certs/west/ca-cert.pem"),
        t.dir.join("west-old.pem"),
    )
    .unwrap();
    t.ok(&[
        "revoke",
        "--dir",
        "certs",
        "--reason",
        "key-compromise",
        "west",
    ]);
    let out = t.dir.tool(
        "openssl",
        &[
            "verify",
            "-x509_strict",
            "-crl_check",
            "-CRLfile",
            "certs/root-crl.pem",
            "-CAfile",
            "certs/root-cert.pem",
            "west-old.pem",
        ],
    );
    assert!(!out.status.success());
    assert!(util::stdout(&out).contains("revoked") || util::stderr(&out).contains("revoked"));
    let out = t.dir.tool(
        "openssl",
        &[
            "verify",
            "-x509_strict",
            "-crl_check",
            "-CRLfile",
            "certs/root-crl.pem",
            "-CAfile",
            "certs/root-cert.pem",
            "certs/east/ca-cert.pem",
        ],
    );
    util::assert_success("openssl verify -crl_check east", &out);
    // A new intermediate for west: the mesh verifies again.
    t.ok(&[
        "intermediate",
        "--dir",
        "certs",
        "--force",
        "--key-type",
        "ecdsa-p256",
        "west",
    ]);
    assert_mesh_verifies(&t, "certs", &["east", "west", "north"]);

    lifecycle_in_the_token(&t, key_type, &uri);

    // Rotation to a second root, also in the token.
    let new_uri = t.uri("root-2");
    t.ok(&[
        "root",
        "--dir",
        "new",
        "--key-type",
        key_type,
        "--root-key",
        &new_uri,
    ]);
    t.assert_key_is_the_certs_and_stays("root-2", "new/root-cert.pem");
    t.ok(&[
        "rotate",
        "--dir",
        "certs",
        "--new-root",
        "new",
        "--out",
        "rot",
    ]);
    let all = ["east", "west", "north", "south", "vm-ns"];
    for stage in ["rot/stage-1", "rot/stage-2", "rot/stage-3"] {
        assert_mesh_verifies(&t, stage, &all);
    }
    t.ok(&[
        "verify",
        "--multiroot",
        "--previous",
        "rot/stage-1",
        "rot/stage-2",
    ]);
    t.ok(&[
        "verify",
        "--multiroot",
        "--previous",
        "rot/stage-2",
        "rot/stage-3",
    ]);
    // The whole run left no private key of a root anywhere: only the
    // intermediates' and the workload's keys.
    for (p, bytes) in snapshot(t.dir.path()) {
        if String::from_utf8_lossy(&bytes).contains("PRIVATE KEY") {
            let name = p.file_name().unwrap().to_str().unwrap();
            assert!(
                ["ca-key.pem", "key.pem", "cacerts.yaml"].contains(&name),
                "{}",
                p.display()
            );
        }
    }
}

#[test]
fn an_ecdsa_p256_root_in_the_token_signs_a_whole_mesh() {
    full_mesh_in_the_token("ecdsa-p256");
}

#[test]
fn an_ecdsa_p384_root_in_the_token_signs_a_whole_mesh() {
    full_mesh_in_the_token("ecdsa-p384");
}

#[test]
fn an_rsa_2048_root_in_the_token_signs_a_whole_mesh() {
    full_mesh_in_the_token("rsa-2048");
}

#[test]
fn rsa_3072_and_4096_roots_are_made_in_the_token() {
    let t = Token::new("rsa");
    for (kt, bits) in [("rsa-3072", "3072"), ("rsa-4096", "4096")] {
        let dir = format!("certs-{kt}");
        t.ok(&[
            "root",
            "--dir",
            &dir,
            "--key-type",
            kt,
            "--root-key",
            &t.uri(kt),
        ]);
        let cert = format!("{dir}/root-cert.pem");
        t.assert_key_is_the_certs_and_stays(kt, &cert);
        let text = t.dir.openssl(&["x509", "-in", &cert, "-noout", "-text"]);
        assert!(
            text.contains(&format!("Public-Key: ({bits} bit)")),
            "{text}"
        );
        t.ok(&["init", "--dir", &dir, "--key-type", "ecdsa-p256", "c1"]);
        assert_mesh_verifies(&t, &dir, &["c1"]);
    }
}

#[test]
fn init_makes_a_new_root_in_the_token_with_its_clusters() {
    // Eight clusters: their intermediates are signed on all cores, one
    // token session shared in turn.
    let clusters = ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"];
    let t = Token::new("meshca");
    let root_key = t.uri("root");
    let mut args = vec![
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--root-key-type",
        "rsa-2048",
        "--root-key",
        &root_key,
    ];
    args.extend(clusters);
    let out = t.ok(&args);
    assert!(util::stdout(&out).contains("the key stays in the token"));
    assert!(!t.dir.join("certs/root-key.pem").exists());
    t.assert_key_is_the_certs_and_stays("root", "certs/root-cert.pem");
    assert_mesh_verifies(&t, "certs", &clusters);
}

/// Runs a failing command and checks what a failure must be: exit 2, the
/// message naming the token and object (never the PIN), nothing written.
fn assert_fails_cleanly(t: &Token, args: &[&str], says: &[&str]) {
    let before = snapshot(t.dir.path());
    let out = t.meshca(args);
    let err = util::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    for s in says {
        assert!(err.contains(s), "{args:?}: expected {s:?} in: {err}");
    }
    assert!(!err.contains(PIN), "{err}");
    assert!(!util::stdout(&out).contains(PIN));
    let after = snapshot(t.dir.path());
    let changed: Vec<_> = after
        .iter()
        .filter(|f| !before.contains(f))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(changed.is_empty(), "{args:?} wrote {changed:?}");
}

#[test]
fn wrong_pin_missing_module_and_unknown_objects_fail_with_exit_2_writing_nothing() {
    let t = Token::new("meshca");
    t.ok(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--root-key",
        &t.uri("root"),
        "c1",
    ]);
    let wrong_pin = t.uri_with(
        "root",
        &format!("pin-source=file:{}", t.dir.join("wrong-pin").display()),
    );
    let pin = format!("pin-source=file:{}", t.dir.join("pin").display());
    let no_module =
        format!("pkcs11:token=meshca;object=root?module-path=/nonexistent/libnone.so&{pin}");
    let unknown = t.uri("no-such-key");
    let other_token = format!(
        "pkcs11:token=elsewhere;object=root?module-path={}&{pin}",
        t.module.display()
    );
    let pin_value = t.uri_with("root", "pin-value=0000-wrong");
    for (uri, says) in [
        (
            &wrong_pin,
            vec!["token \"meshca\"", "object \"root\"", "wrong PIN"],
        ),
        (
            &pin_value,
            vec!["token \"meshca\"", "object \"root\"", "wrong PIN"],
        ),
        (
            &no_module,
            vec![
                "object \"root\"",
                "cannot load the PKCS#11 module /nonexistent/libnone.so",
            ],
        ),
        (
            &unknown,
            vec!["object \"no-such-key\"", "no such private key"],
        ),
        (&other_token, vec!["token \"elsewhere\"", "no such token"]),
    ] {
        assert_fails_cleanly(
            &t,
            &["crl", "--dir", "certs", "--root-key", uri, "c1"],
            &says,
        );
        assert_fails_cleanly(
            &t,
            &["intermediate", "--dir", "certs", "--root-key", uri, "c2"],
            &says,
        );
    }
    // A new root: nothing is made when the token refuses.
    assert_fails_cleanly(
        &t,
        &["root", "--dir", "fresh", "--root-key", &wrong_pin],
        &["wrong PIN"],
    );
    assert!(!t.dir.join("fresh/root-cert.pem").exists());
    // A malformed URI: the message quotes nothing from it.
    assert_fails_cleanly(
        &t,
        &[
            "crl",
            "--dir",
            "certs",
            "--root-key",
            &format!("pkcs11:object=root?pin-value={PIN}&pin-value={PIN}"),
            "c1",
        ],
        &["invalid root key reference", "pin-value= is given twice"],
    );
}

#[test]
fn an_existing_label_is_refused_without_force_and_replaced_with_it() {
    let t = Token::new("meshca");
    let uri = t.uri("root");
    t.ok(&[
        "root",
        "--dir",
        "a",
        "--key-type",
        "ecdsa-p256",
        "--root-key",
        &uri,
    ]);
    assert_fails_cleanly(
        &t,
        &[
            "root",
            "--dir",
            "b",
            "--key-type",
            "ecdsa-p256",
            "--root-key",
            &uri,
        ],
        &[
            "object \"root\"",
            "already has a key with this label",
            "--force",
        ],
    );
    // A --force run that fails after making its key pair (here: a
    // validity the root refuses) leaves the token as it was: the old key
    // pair stays, the new one is removed.
    let out = t.meshca(&[
        "root",
        "--dir",
        "b",
        "--key-type",
        "ecdsa-p256",
        "--days",
        "0",
        "--force",
        "--root-key",
        &uri,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    assert!(!t.dir.join("b/root-cert.pem").exists());
    assert_eq!(t.objects("root").len(), 2);
    t.assert_key_is_the_certs_and_stays("root", "a/root-cert.pem");
    // A fresh label too: nothing is left behind.
    let out = t.meshca(&[
        "root",
        "--dir",
        "c",
        "--days",
        "0",
        "--root-key",
        &t.uri("never-kept"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    assert!(t.objects("never-kept").is_empty());
    t.ok(&[
        "root",
        "--dir",
        "b",
        "--key-type",
        "ecdsa-p256",
        "--force",
        "--root-key",
        &uri,
    ]);
    // One key pair under the label, and it is b's.
    let objects = t.objects("root");
    assert_eq!(objects.len(), 2, "{objects:?}");
    t.assert_key_is_the_certs_and_stays("root", "b/root-cert.pem");
}

#[test]
fn a_pin_value_is_never_recorded_and_later_commands_then_need_a_pin() {
    let t = Token::new("meshca");
    let uri = t.uri_with("root", &format!("pin-value={PIN}"));
    let out = t.ok(&[
        "root",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--root-key",
        &uri,
    ]);
    assert!(
        util::stderr(&out).contains("shell history"),
        "{}",
        util::stderr(&out)
    );
    let recorded = t.dir.read("certs/root-key.uri");
    assert!(!recorded.contains("pin-value"), "{recorded}");
    assert!(!recorded.contains(PIN), "{recorded}");
    // No PIN recorded and no terminal: a clear error before any work.
    assert_fails_cleanly(
        &t,
        &["init", "--dir", "certs", "--key-type", "ecdsa-p256", "c1"],
        &["object \"root\"", "needs a PIN", "pin-source=file:"],
    );
    // The same key, the PIN from a file on the command line.
    t.ok(&[
        "init",
        "--dir",
        "certs",
        "--key-type",
        "ecdsa-p256",
        "--root-key",
        &t.uri("root"),
        "c1",
    ]);
    assert_mesh_verifies(&t, "certs", &["c1"]);
}

#[test]
fn root_key_names_a_key_file_kept_outside_the_certs_directory() {
    let dir = util::ecdsa_mesh();
    std::fs::rename(dir.join("certs/root-key.pem"), dir.join("offline-root.pem")).unwrap();
    // Without the key: the hint names --root-key.
    let out = dir.meshca(&["crl", "--dir", "certs", "cluster1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        util::stderr(&out).contains("--root-key"),
        "{}",
        util::stderr(&out)
    );
    dir.ok(&[
        "crl",
        "--dir",
        "certs",
        "--root-key",
        "offline-root.pem",
        "cluster1",
    ]);
    dir.ok(&[
        "intermediate",
        "--dir",
        "certs",
        "--root-key",
        "offline-root.pem",
        "--key-type",
        "ecdsa-p256",
        "cluster3",
    ]);
    dir.ok(&["verify", "certs"]);
    assert!(!dir.join("certs/root-key.pem").exists());
    // A new root's key is never a file given here.
    let out = dir.meshca(&["root", "--dir", "other", "--root-key", "offline-root.pem"]);
    assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    assert!(util::stderr(&out).contains("a new root's key is made as root-key.pem"));
    assert!(!dir.join("other/root-cert.pem").exists());
    // --root-from-secret already gives the key.
    let out = dir.meshca(&[
        "intermediate",
        "--dir",
        "certs",
        "--root-from-secret",
        "x.yaml",
        "--root-key",
        "offline-root.pem",
        "cluster4",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(util::stderr(&out).contains("--root-key would have no effect"));
}
