//! Differential test of the Secret reader (`meshca::SecretData::from_yaml`,
//! what `verify` compares with a cluster's files) against kubectl, which
//! reads the document the way it is applied to the cluster istiod runs in
//! (`kubectl label --local -f FILE -o json`: offline, Kubernetes' own YAML
//! reader, no server).
//!
//! Secret documents are generated from a seed (printed; `MESHCA_SECRET_SEED`
//! replays it, `MESHCA_SECRET_CASES` sets the count): every YAML way of
//! writing the same Secret (quoting, block scalars, flow style, anchors,
//! comments, CRLF, document markers, tags, key order, indentation) and
//! broken ones (folded base64, duplicate keys, bad base64, wrong kind, bad
//! indentation, numbers and nulls for strings).
//!
//! Asserted: whenever meshca reads a Secret, kubectl reads the same one
//! (name, namespace, type and every decoded data value); whenever kubectl
//! reads a Secret and meshca refuses it, the case is one of the refusals
//! meshca makes on purpose ([`STRICTER`]).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// Refusals of Secrets kubectl reads, made on purpose: a key given twice
/// (readers disagree on which value wins), a value that is not a string
/// (null: Kubernetes stores an empty value), several documents in one file
/// (kubectl applies them all; `verify` reads one Secret), base64 whose
/// last character carries bits past the data (Go ignores them; only one
/// encoding of a value is read), and a value folded across lines (reported
/// by `verify` as an error).
const STRICTER: &[&str] = &["duplicate", "null", "multi-doc", "trailing-bits", "folded"];

const KEYS: &[&str] = &[
    "ca-cert.pem",
    "ca-key.pem",
    "cert-chain.pem",
    "root-cert.pem",
    "ca-crl.pem",
];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

fn kubectl() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("kubectl");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("required tool `kubectl` is not on PATH; .ci/run installs it (see README)");
}

/// What a reader made of a document.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Secret {
        name: String,
        namespace: Option<String>,
        type_: Option<String>,
        data: BTreeMap<String, Vec<u8>>,
    },
    Refused(String),
}

/// Go's `base64.StdEncoding` (what `encoding/json` decodes a `[]byte`
/// with): padding required, bits past the data ignored, `\r` and `\n`
/// skipped.
fn go_base64(s: &str) -> Option<Vec<u8>> {
    const GO: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
    );
    let compact: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    GO.decode(compact.as_bytes()).ok()
}

fn kubectl_reads(file: &Path) -> Read {
    let out = Command::new(kubectl())
        .args(["label", "--local", "-o", "json", "meshca-parity=1", "-f"])
        .arg(file)
        .output()
        .expect("running kubectl");
    if !out.status.success() {
        return Read::Refused(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => return Read::Refused(format!("kubectl printed no JSON: {e}")),
    };
    if v["kind"] == "List" {
        return Read::Refused("multi-doc".into());
    }
    if v["kind"] != "Secret" || v["apiVersion"] != "v1" {
        return Read::Refused("not a v1 Secret".into());
    }
    let string = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    let mut data = BTreeMap::new();
    if let Some(d) = v.get("data").filter(|d| !d.is_null()) {
        let Some(d) = d.as_object() else {
            return Read::Refused("data is not a map".into());
        };
        for (k, val) in d {
            // A null value is stored empty (encoding/json's nil []byte).
            if val.is_null() {
                data.insert(k.clone(), Vec::new());
                continue;
            }
            let Some(s) = val.as_str() else {
                return Read::Refused(format!("data.{k} is not a string"));
            };
            let Some(bytes) = go_base64(s) else {
                return Read::Refused(format!("data.{k} is not base64"));
            };
            data.insert(k.clone(), bytes);
        }
    }
    if let Some(d) = v.get("stringData").filter(|d| !d.is_null()) {
        let Some(d) = d.as_object() else {
            return Read::Refused("stringData is not a map".into());
        };
        for (k, val) in d {
            let Some(s) = val.as_str() else {
                return Read::Refused(format!("stringData.{k} is not a string"));
            };
            data.insert(k.clone(), s.as_bytes().to_vec());
        }
    }
    let meta = &v["metadata"];
    let namespace = match meta.get("namespace") {
        None => None,
        Some(n) => match n.as_str() {
            Some(s) => Some(s.to_owned()),
            None => return Read::Refused("metadata.namespace is not a string".into()),
        },
    };
    let Some(name) = string(&meta["name"]) else {
        return Read::Refused("metadata.name is not a string".into());
    };
    let type_ = match v.get("type") {
        None => None,
        Some(t) => match t.as_str() {
            Some(s) => Some(s.to_owned()),
            None => return Read::Refused("type is not a string".into()),
        },
    };
    Read::Secret {
        name,
        namespace,
        type_,
        data,
    }
}

fn meshca_reads(text: &[u8]) -> Read {
    match meshca::SecretData::from_yaml("parity.yaml", text) {
        Ok(s) if !s.folded.is_empty() => Read::Refused("folded".into()),
        Ok(s) => Read::Secret {
            name: s.name.clone(),
            namespace: s.namespace.clone(),
            type_: s.type_.clone(),
            data: s
                .data
                .iter()
                .map(|(k, v)| (k.clone(), v.to_vec()))
                .collect(),
        },
        Err(e) => Read::Refused(e.to_string()),
    }
}

/// One generated document and the tags of what it does.
struct Case {
    text: String,
    tags: Vec<&'static str>,
}

struct Gen {
    rng: fastrand::Rng,
}

impl Gen {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.usize(..items.len())]
    }

    fn chance(&mut self, percent: u8) -> bool {
        self.rng.u8(..100) < percent
    }

    fn bytes(&mut self) -> Vec<u8> {
        if self.chance(50) {
            let body: String = (0..self.rng.usize(1..120))
                .map(|_| {
                    *self.pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                        as char
                })
                .collect();
            format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n").into_bytes()
        } else {
            (0..self.rng.usize(1..200))
                .map(|_| self.rng.u8(..))
                .collect()
        }
    }

    fn key(&mut self, k: &str, tags: &mut Vec<&'static str>) -> String {
        match self.rng.u8(..6) {
            0 => format!("'{k}'"),
            1 => format!("\"{k}\""),
            2 if k.contains('-') => {
                tags.push("escape");
                format!("\"{}\"", k.replace('-', "\\x2d"))
            }
            _ => k.to_owned(),
        }
    }

    /// A base64 value as YAML after `key:` (with its leading space or
    /// line break), at `indent` spaces for continuation lines.
    fn value(&mut self, b64: &str, indent: usize, tags: &mut Vec<&'static str>) -> String {
        let pad = " ".repeat(indent + 2);
        let split = |s: &str, every: usize| -> Vec<String> {
            s.as_bytes()
                .chunks(every.max(1))
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect()
        };
        match self.rng.u8(..14) {
            0 => format!(" '{b64}'"),
            1 => format!(" \"{b64}\""),
            2 => {
                // Double-quoted with escapes that decode to the same text.
                tags.push("escape");
                format!(" \"{}\"", b64.replace('/', "\\/").replacen('A', "\\x41", 1))
            }
            3 => {
                tags.push("literal");
                let lines = split(b64, self.rng.usize(4..80));
                format!(" |\n{pad}{}\n", lines.join(&format!("\n{pad}")))
            }
            4 => {
                tags.push("literal");
                format!(" |-\n{pad}{b64}")
            }
            5 => {
                // A line break escaped in double quotes: no space is added.
                tags.push("continued");
                let lines = split(b64, self.rng.usize(4..80));
                format!(" \"{}\"", lines.join(&format!("\\\n{pad}")))
            }
            6 if b64.len() > 8 => {
                tags.push("folded");
                let lines = split(b64, self.rng.usize(4..60));
                format!(" >\n{pad}{}\n", lines.join(&format!("\n{pad}")))
            }
            7 if b64.len() > 8 => {
                tags.push("folded");
                let lines = split(b64, self.rng.usize(4..60));
                format!(" {}", lines.join(&format!("\n{pad}")))
            }
            8 => {
                tags.push("tag");
                format!(" !!str {b64}")
            }
            9 => {
                tags.push("comment");
                format!(" {b64} # a comment")
            }
            _ => format!(" {b64}"),
        }
    }

    fn case(&mut self) -> Case {
        let mut tags = Vec::new();
        let nl = if self.chance(10) {
            tags.push("crlf");
            "\r\n"
        } else {
            "\n"
        };
        let indent = *self.pick(&[2usize, 2, 3, 4]);
        let pad = " ".repeat(indent);
        // The data: some of the five keys, random values.
        let mut entries: Vec<(String, String)> = Vec::new();
        for k in KEYS {
            if self.chance(75) {
                let b64 = STANDARD.encode(self.bytes());
                entries.push(((*k).to_owned(), b64));
            }
        }
        if entries.is_empty() {
            entries.push(("ca-cert.pem".into(), STANDARD.encode(self.bytes())));
        }
        // Broken base64: a character out of the alphabet, or bits past
        // the data.
        if self.chance(6) {
            tags.push("bad-base64");
            let i = self.rng.usize(..entries.len());
            let at = self.rng.usize(..entries[i].1.len());
            entries[i].1.insert(at, '!');
        } else if self.chance(6) {
            let i = self.rng.usize(..entries.len());
            let v = &mut entries[i].1;
            if v.ends_with('=') {
                tags.push("trailing-bits");
                let pos = v.trim_end_matches('=').len() - 1;
                let c = v.as_bytes()[pos];
                let alt = if c == b'/' { 'A' } else { '/' };
                v.replace_range(pos..pos + 1, &alt.to_string());
            }
        }
        let mut data = String::new();
        let flow = self.chance(12);
        let anchor = entries.len() > 1 && self.chance(10);
        if flow {
            tags.push("flow");
            let items: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: \"{v}\"", self.key(k, &mut tags)))
                .collect();
            data.push_str(&format!(" {{{}}}{nl}", items.join(", ")));
        } else {
            data.push_str(nl);
            for (i, (k, v)) in entries.iter().enumerate() {
                let key = self.key(k, &mut tags);
                if anchor && i == 0 {
                    tags.push("anchor");
                    data.push_str(&format!("{pad}{key}: &v {v}{nl}"));
                } else if anchor && i == entries.len() - 1 {
                    data.push_str(&format!("{pad}{key}: *v{nl}"));
                } else {
                    let val = self.value(v, indent, &mut tags).replace('\n', nl);
                    data.push_str(&format!("{pad}{key}:{val}"));
                    if !val.ends_with(nl) {
                        data.push_str(nl);
                    }
                }
            }
        }
        if anchor {
            // The alias repeats the first value under the last key.
            let first = entries[0].1.clone();
            if let Some(last) = entries.last_mut() {
                last.1 = first;
            }
        }
        // Broken or odd data entries.
        if self.chance(6) {
            tags.push("duplicate");
            let (k, _) = &entries[0];
            let v = STANDARD.encode(self.bytes());
            data.push_str(&format!("{pad}{k}: {v}{nl}"));
        } else if self.chance(4) && !flow {
            tags.push("null");
            data.push_str(&format!("{pad}extra.pem:{nl}"));
        } else if self.chance(4) && !flow {
            tags.push("number");
            data.push_str(&format!("{pad}extra.pem: 1234{nl}"));
        } else if self.chance(4) && !flow {
            tags.push("number-quoted");
            data.push_str(&format!("{pad}extra.pem: '1234'{nl}"));
        } else if self.chance(4) && !flow {
            tags.push("string-data");
        }
        let kind = if self.chance(4) {
            tags.push("wrong-kind");
            *self.pick(&["secret", "ConfigMap", "Secrets"])
        } else {
            "Secret"
        };
        let api = if self.chance(3) {
            tags.push("wrong-api");
            "v2"
        } else {
            "v1"
        };
        // A namespace YAML 1.1 may read as something else than a string,
        // written plain or quoted.
        let namespace = if self.chance(20) {
            let word = *self.pick(&[
                "on",
                "yes",
                "n",
                "true",
                "null",
                "123",
                "1e3",
                "0x1f",
                "2001-12-14",
                "nan",
                "yEs",
                "off",
                "Y",
                "1_0",
                "+.5",
            ]);
            match self.rng.u8(..5) {
                0 | 1 => {
                    tags.push("yaml11-plain");
                    word.to_owned()
                }
                2 => {
                    tags.push("tag");
                    format!("!!str {word}")
                }
                3 => {
                    tags.push("tag");
                    format!("{} '{word}'", self.pick(&["!!int", "!!bool", "!!float"]))
                }
                _ => format!("'{word}'"),
            }
        } else {
            "istio-system".to_owned()
        };
        let metadata = if self.chance(12) {
            tags.push("flow");
            format!(" {{name: cacerts, namespace: {namespace}}}{nl}")
        } else {
            format!("{nl}{pad}name: cacerts{nl}{pad}namespace: {namespace}{nl}")
        };
        let mut top: Vec<String> = vec![
            format!("apiVersion: {api}{nl}"),
            format!("kind: {kind}{nl}"),
            format!("metadata:{metadata}"),
            format!("type: Opaque{nl}"),
            format!("data:{data}"),
        ];
        if tags.contains(&"string-data") {
            top.push(format!(
                "stringData:{nl}{pad}extra.txt: some text{nl}{pad}ca-cert.pem: \"-----BEGIN CERTIFICATE-----\\nX\\n\"{nl}"
            ));
        }
        if self.chance(4) {
            tags.push("duplicate");
            top.push(format!("kind: Secret{nl}"));
        }
        if self.chance(40) {
            tags.push("order");
            self.rng.shuffle(&mut top);
        }
        let mut text = String::new();
        match self.rng.u8(..12) {
            0 => {
                tags.push("marker");
                text.push_str(&format!("---{nl}"));
            }
            1 => {
                tags.push("comment");
                text.push_str(&format!("# made by hand{nl}"));
            }
            2 => {
                tags.push("bom");
                text.push('\u{feff}');
            }
            _ => {}
        }
        for t in &top {
            text.push_str(t);
        }
        match self.rng.u8(..14) {
            0 => {
                tags.push("marker");
                text.push_str(&format!("...{nl}"));
            }
            1 => {
                tags.push("multi-doc");
                text.push_str(&format!(
                    "---{nl}apiVersion: v1{nl}kind: Secret{nl}metadata:{nl}{pad}name: other{nl}"
                ));
            }
            2 => {
                tags.push("bad-indent");
                text.push_str(&format!("{pad} stray: value{nl}"));
            }
            3 => {
                tags.push("tab");
                text.push_str(&format!("data2:{nl}\tx: y{nl}"));
            }
            _ => {}
        }
        Case { text, tags }
    }
}

#[test]
fn meshca_reads_a_secret_only_as_kubectl_does() {
    let seed = env_u64("MESHCA_SECRET_SEED").unwrap_or_else(|| fastrand::u64(..));
    let count = env_u64("MESHCA_SECRET_CASES").unwrap_or(160) as usize;
    eprintln!("secret parity: seed {seed}, {count} cases (replay: MESHCA_SECRET_SEED={seed})");
    let mut gen = Gen {
        rng: fastrand::Rng::with_seed(seed),
    };
    let cases: Vec<Case> = (0..count).map(|_| gen.case()).collect();
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let p = dir.path().join(format!("case-{i}.yaml"));
            let mut f = std::fs::File::create(&p).unwrap();
            f.write_all(c.text.as_bytes()).unwrap();
            p
        })
        .collect();
    // kubectl takes a tenth of a second to start: two at a time.
    let refs: Vec<Read> = std::thread::scope(|s| {
        let half = files.len().div_ceil(2);
        let handles: Vec<_> = files
            .chunks(half.max(1))
            .map(|chunk| {
                s.spawn(move || chunk.iter().map(|f| kubectl_reads(f)).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut failures = Vec::new();
    let (mut both_read, mut both_refused, mut stricter) = (0, 0, 0);
    for (i, (case, reference)) in cases.iter().zip(&refs).enumerate() {
        let ours = meshca_reads(case.text.as_bytes());
        match (&ours, reference) {
            (Read::Secret { .. }, Read::Secret { .. }) if ours == *reference => both_read += 1,
            (Read::Secret { .. }, _) => failures.push(format!(
                "case {i} {:?}: meshca read {ours:?}, kubectl {reference:?}",
                case.tags
            )),
            (Read::Refused(_), Read::Refused(_)) => both_refused += 1,
            (Read::Refused(why), Read::Secret { .. }) => {
                if case.tags.iter().any(|t| STRICTER.contains(t)) {
                    stricter += 1;
                } else {
                    failures.push(format!(
                        "case {i} {:?}: kubectl reads it, meshca refused: {why}",
                        case.tags
                    ));
                }
            }
        }
    }
    eprintln!(
        "secret parity: {both_read} read alike, {both_refused} refused by both, {stricter} refused by meshca on purpose"
    );
    if !failures.is_empty() {
        let keep = std::env::temp_dir().join(format!("meshca-secret-parity-{seed}"));
        std::fs::create_dir_all(&keep).unwrap();
        for f in &failures {
            let i: usize = f["case ".len()..]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            std::fs::copy(&files[i], keep.join(format!("case-{i}.yaml"))).unwrap();
        }
        panic!(
            "{} of {count} Secrets read differently (seed {seed}; cases kept in {}):\n{}",
            failures.len(),
            keep.display(),
            failures.join("\n")
        );
    }
    // The generator reaches both sides. Over 30 seeds of 160 cases, 37 to 59
    // (mean 49, sd 5.5) were read by both and 90 to 112 refused by both: the
    // bounds sit more than five deviations below, so a sound generator never
    // trips them and a broken one (reading nothing, refusing nothing) does.
    assert!(
        both_read > count / 10,
        "only {both_read} of {count} documents were read by both"
    );
    assert!(
        both_refused > count / 20,
        "only {both_refused} of {count} documents were refused by both"
    );
}
