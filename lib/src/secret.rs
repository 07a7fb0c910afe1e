//! The Kubernetes Secret istiod reads its CA from (`cacerts`).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use zeroize::{Zeroize, Zeroizing};

use crate::bundle::{ClusterBundle, CA_CERT, CA_CRL, CA_KEY, CERT_CHAIN, ROOT_CERT};
use crate::error::{Error, Result};

/// The largest Secret document meshca reads (1 MiB, Kubernetes' own limit
/// for a Secret).
pub const MAX_SECRET_BYTES: usize = 1 << 20;

/// The deepest nesting of YAML flow collections (`[`, `{`) read. A Secret
/// needs one or two levels; libyaml's scanner does work in proportion to the
/// depth for every token, so 1 MiB of `[` would take minutes to refuse.
pub(crate) const MAX_FLOW_DEPTH: usize = 64;

/// How deep `[` and `{` nest, counted over every byte (quotes and comments
/// included: an overestimate, which only matters past [`MAX_FLOW_DEPTH`]).
pub(crate) fn flow_depth(text: &[u8]) -> usize {
    // Fewer openings than the limit cannot nest past it: counted first (a
    // loop the compiler vectorizes; a Secret has none or a few).
    let openings = text.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if openings <= MAX_FLOW_DEPTH {
        return openings;
    }
    let (mut depth, mut deepest) = (0usize, 0usize);
    for b in text {
        match b {
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// What is wrong with a document the YAML reader refused, and where,
/// without its message: serde's messages quote the values they met
/// (`invalid type: string "..."`), and a Secret's values are keys.
fn yaml_problem(e: &serde_saphyr::Error) -> String {
    let duplicate = matches!(e, serde_saphyr::Error::DuplicateMappingKey { .. })
        || e.to_string().contains(DUPLICATE_KEY);
    let at = e
        .location()
        .map(|at| format!(" (line {}, column {})", at.line(), at.column()))
        .unwrap_or_default();
    if duplicate {
        return format!("{DUPLICATE_KEY}{at}: each key once");
    }
    if matches!(e, serde_saphyr::Error::MultipleDocuments { .. }) {
        return format!("more than one YAML document{at}: one Secret per file");
    }
    format!("invalid YAML, or not a Secret{at}")
}

/// Base64 decoded into a buffer wiped when dropped, also when the input
/// turns out not to be base64 half-way (a value may be a key).
fn decode_wiped(input: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; base64::decoded_len_estimate(input.len())]);
    let n = B64.decode_slice(input, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// A data key as errors name it: one of the bundle's own names, else
/// "(a key)" (a key is read from the document, and errors never quote it).
pub(crate) fn key_label(k: &str) -> &str {
    const KNOWN: &[&str] = &[
        CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT, CA_CRL, "tls.crt", "tls.key", "ca.crt",
    ];
    KNOWN
        .iter()
        .find(|n| **n == k)
        .copied()
        .unwrap_or("(a key)")
}

/// The shape of the Secret istiod accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SecretShape {
    /// `type: Opaque` with `ca-cert.pem`, `ca-key.pem`, `cert-chain.pem`,
    /// `root-cert.pem`: what `kubectl create secret generic cacerts
    /// --from-file=...` makes.
    #[default]
    Opaque,
    /// `type: kubernetes.io/tls` with `tls.crt` (the CA certificate),
    /// `tls.key` and `ca.crt` (the root), read by istiod since 1.15.
    Tls,
}

/// Where the Secret goes and what shape it has.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretOptions {
    /// `metadata.name` (default `cacerts`, the name istiod looks for).
    pub name: String,
    /// `metadata.namespace` (default `istio-system`).
    pub namespace: String,
    /// The data layout.
    pub shape: SecretShape,
}

impl Default for SecretOptions {
    fn default() -> Self {
        SecretOptions {
            name: "cacerts".into(),
            namespace: "istio-system".into(),
            shape: SecretShape::Opaque,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretDoc {
    api_version: String,
    kind: String,
    metadata: Metadata,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    type_: Option<String>,
    data: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    string_data: Option<BTreeMap<String, String>>,
}

/// What a map of the Secret that names a key twice is refused with.
pub(crate) const DUPLICATE_KEY: &str = "a key is given twice";

/// A map of strings whose keys are all different. YAML readers disagree
/// on a key given twice (serde keeps the last value, others the first or
/// refuse the document), so a Secret holding two `ca-cert.pem` could be
/// checked with one certificate and installed with the other: refused.
pub(crate) fn unique_keys<'de, D: serde::Deserializer<'de>, V: Deserialize<'de> + Wipe>(
    d: D,
) -> std::result::Result<BTreeMap<String, V>, D::Error> {
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de> + Wipe> serde::de::Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of strings")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut access: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out: BTreeMap<String, V> = BTreeMap::new();
            let wipe = |out: &mut BTreeMap<String, V>| {
                for v in out.values_mut() {
                    v.wipe();
                }
            };
            loop {
                match access.next_entry::<String, V>() {
                    Ok(Some((k, mut v))) => {
                        if out.contains_key(&k) {
                            v.wipe();
                            wipe(&mut out);
                            return Err(serde::de::Error::custom(DUPLICATE_KEY));
                        }
                        out.insert(k, v);
                    }
                    Ok(None) => return Ok(out),
                    Err(e) => {
                        wipe(&mut out);
                        return Err(e);
                    }
                }
            }
        }
    }
    d.deserialize_map(Unique(std::marker::PhantomData))
}

fn unique_keys_opt<'de, D: serde::Deserializer<'de>, V: Deserialize<'de> + Wipe>(
    d: D,
) -> std::result::Result<Option<BTreeMap<String, V>>, D::Error> {
    unique_keys(d).map(Some)
}

/// A value wiped when a map holding it is dropped half-read.
pub(crate) trait Wipe {
    fn wipe(&mut self);
}

impl Wipe for String {
    fn wipe(&mut self) {
        self.zeroize();
    }
}

impl Wipe for Spanned<String> {
    fn wipe(&mut self) {
        self.value.zeroize();
    }
}

/// The Secret as read: the strings that matter keep where they stand in
/// the document, so a plain scalar YAML 1.1 reads as something else than
/// a string can be told from a quoted one (see [`typed_scalars`]).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretIn {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: MetadataIn,
    #[serde(rename = "type", default)]
    type_: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "unique_keys")]
    data: BTreeMap<String, Spanned<String>>,
    #[serde(default, deserialize_with = "unique_keys_opt")]
    string_data: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Deserialize, Default)]
struct MetadataIn {
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    namespace: Option<Spanned<String>>,
}

impl Drop for SecretIn {
    fn drop(&mut self) {
        wipe_values(&mut self.data, self.string_data.as_mut());
    }
}

/// Wipes every value of a Secret's `data` and `stringData` (they hold the key).
fn wipe_values<V: Wipe>(
    data: &mut BTreeMap<String, V>,
    string_data: Option<&mut BTreeMap<String, V>>,
) {
    for v in data
        .values_mut()
        .chain(string_data.into_iter().flat_map(|m| m.values_mut()))
    {
        v.wipe();
    }
}

/// Whether Kubernetes' YAML reader (go-yaml v2: YAML 1.1 with Go's number
/// syntax) takes `v`, written as a plain scalar, for a boolean, null or a
/// number rather than a string.
fn yaml11_not_a_string(v: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~", "",
    ];
    let capitalized = |w: &str| {
        let mut c = w.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    // No word is longer than "false": a base64 value skips the spellings.
    if v.len() <= 5
        && WORDS
            .iter()
            .any(|w| v == *w || v == capitalized(w) || v == w.to_ascii_uppercase())
    {
        return true;
    }
    if !v.starts_with(|c: char| "-+.0123456789".contains(c)) {
        return false;
    }
    let plain = v.replace('_', "");
    let digits = plain.strip_prefix(['+', '-']).unwrap_or(&plain);
    let int = |s: &str, radix: u32| !s.is_empty() && u64::from_str_radix(s, radix).is_ok();
    let is_int = if let Some(h) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        int(h, 16)
    } else if let Some(o) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
        int(o, 8)
    } else if let Some(b) = digits.strip_prefix("0b").or(digits.strip_prefix("0B")) {
        int(b, 2)
    } else {
        int(digits, 10) || (digits.starts_with('0') && int(digits, 8))
    };
    let special = [".inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN"].contains(&digits);
    // (A date stays a string: Kubernetes' reader does not resolve
    // timestamps.)
    is_int || special || plain.parse::<f64>().is_ok()
}

/// The character offsets of the scalars of `text` whose look decides their
/// type to YAML 1.1 (plain and untagged) or whose tag makes them something
/// else than a string (`!!bool on`, `!!int "12"`), or `None` when the
/// events cannot be read (the document was parsed already, so this does
/// not happen).
fn typed_scalars(text: &str) -> Option<std::collections::HashSet<usize>> {
    use granit_parser::{Event, Parser, ScalarStyle};
    let mut out = std::collections::HashSet::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        if let Event::Scalar(_, style, _, tag) = event {
            let typed = match tag {
                None => style == ScalarStyle::Plain,
                Some(t) => !(t.handle() == "tag:yaml.org,2002:" && t.suffix() == "str"),
            };
            if typed {
                out.insert(span.start.index());
            }
        }
    }
    Some(out)
}

#[derive(Serialize)]
struct Metadata {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

impl Drop for SecretDoc {
    fn drop(&mut self) {
        wipe_values(&mut self.data, self.string_data.as_mut());
    }
}

/// The `cacerts` Secret YAML for a cluster bundle, ready for
/// `kubectl apply -f`. Zeroized when dropped: it holds the key.
pub fn cacerts_yaml(bundle: &ClusterBundle, options: &SecretOptions) -> Result<Zeroizing<String>> {
    crate::profile::validate_name("namespace", &options.namespace)?;
    validate_secret_name(&options.name)?;
    let (type_, entries): (&str, [(&str, &[u8]); 4]) = match options.shape {
        SecretShape::Opaque => (
            "Opaque",
            [
                (CA_CERT, bundle.ca_cert.as_bytes()),
                (CA_KEY, bundle.ca_key.as_bytes()),
                (CERT_CHAIN, bundle.cert_chain.as_bytes()),
                (ROOT_CERT, bundle.root_cert.as_bytes()),
            ],
        ),
        SecretShape::Tls => (
            "kubernetes.io/tls",
            [
                ("tls.crt", bundle.ca_cert.as_bytes()),
                ("tls.key", bundle.ca_key.as_bytes()),
                ("ca.crt", bundle.root_cert.as_bytes()),
                ("", b""),
            ],
        ),
    };
    let mut data: BTreeMap<String, String> = entries
        .iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| ((*k).to_owned(), B64.encode(v)))
        .collect();
    if let Some(crl) = &bundle.ca_crl {
        data.insert(CA_CRL.to_owned(), B64.encode(crl.as_bytes()));
    }
    let doc = SecretDoc {
        api_version: "v1".into(),
        kind: "Secret".into(),
        metadata: Metadata {
            name: options.name.clone(),
            namespace: Some(options.namespace.clone()),
        },
        type_: Some(type_.into()),
        data,
        string_data: None,
    };
    // Plain scalars where YAML 1.1 reads them as strings, quoted where it
    // would not (a namespace `on` or `yes`: Kubernetes' reader takes them
    // for booleans and refuses the Secret); never folded (a base64 value
    // stays on one line, as kubectl writes it).
    let mut style = serde_saphyr::SerializerOptions::default();
    style.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(&doc, style)
        .map(Zeroizing::new)
        .map_err(|e| Error::BadSecret {
            what: options.name.clone(),
            reason: e.to_string(),
        })
}

fn validate_secret_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| crate::profile::validate_name("x", l).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            what: "secret name",
            value: name.to_owned(),
            reason: "must be a DNS subdomain (lowercase letters, digits, '-', '.')".into(),
        })
    }
}

/// A Secret in exactly the layout meshca writes (`apiVersion`, `kind`,
/// `metadata` with `name` then `namespace`, `type`, then one `data` entry
/// per line, every scalar plain, `\n` line ends), read without a YAML
/// parser: a fleet's verify reads thousands. Every scalar must be one
/// token of letters, digits and `._/-` (`+=` too in values) that YAML 1.1
/// reads as a string; a key must be new. `None` for anything else, which
/// the YAML reader then reads. What this accepts, the YAML reader reads to
/// the same [`SecretData`] (tested against it on mutated documents, and
/// fuzzed).
fn read_canonical(text: &[u8]) -> Option<SecretData> {
    fn token(s: &str, value: bool) -> Option<&str> {
        let ok = s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'.' | b'_' | b'/' | b'-')
                    || (value && matches!(b, b'+' | b'='))
            })
            && !yaml11_not_a_string(s);
        ok.then_some(s)
    }
    fn line<'a>(rest: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
        let (line, rest) = rest.strip_prefix(prefix)?.split_once('\n')?;
        Some((token(line, false)?, rest))
    }
    let text = std::str::from_utf8(text).ok()?;
    let rest = text.strip_prefix("apiVersion: v1\nkind: Secret\nmetadata:\n")?;
    let (name, rest) = line(rest, "  name: ")?;
    let (namespace, rest) = line(rest, "  namespace: ")?;
    let (type_, rest) = line(rest, "type: ")?;
    let mut rest = rest.strip_prefix("data:\n")?;
    let mut data = BTreeMap::new();
    while !rest.is_empty() {
        let (entry, next) = rest.strip_prefix("  ")?.split_once('\n')?;
        let (key, value) = entry.split_once(": ")?;
        let value = token(value, true)?;
        let bytes = decode_wiped(value.as_bytes())?;
        if data.insert(token(key, false)?.to_owned(), bytes).is_some() {
            return None;
        }
        rest = next;
    }
    if data.is_empty() {
        return None;
    }
    Some(SecretData {
        name: name.to_owned(),
        namespace: Some(namespace.to_owned()),
        type_: Some(type_.to_owned()),
        data,
        folded: Vec::new(),
    })
}

/// Whether [`read_canonical`] declines `text` or reads it as the YAML
/// reader does (for the fuzz targets).
#[cfg(feature = "fuzzing")]
pub(crate) fn readers_agree(text: &[u8]) -> bool {
    match read_canonical(text) {
        None => true,
        Some(fast) => SecretData::from_yaml_document("fuzz.yaml", text).is_ok_and(|s| s == fast),
    }
}

/// A Secret read back from YAML: its names, type and decoded data.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretData {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, if set.
    pub namespace: Option<String>,
    /// `type`, if set.
    pub type_: Option<String>,
    /// Every entry of `data` (base64-decoded) and `stringData`, zeroized on drop.
    pub data: BTreeMap<String, Zeroizing<Vec<u8>>>,
    /// Keys of `data` whose base64 value is folded across lines with
    /// spaces or tabs in it (a plain or folded YAML scalar), which
    /// Kubernetes' decoder refuses although this reader accepts it.
    pub folded: Vec<String>,
}

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretData")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("type", &self.type_)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretData {
    /// Parses a Secret YAML document (as meshca writes it, or as `kubectl
    /// get secret -o yaml` prints it). `what` names it in errors.
    pub fn from_yaml(what: &str, text: &[u8]) -> Result<Self> {
        if text.len() > MAX_SECRET_BYTES {
            return Err(Error::TooLarge {
                what: what.into(),
                size: text.len(),
                limit: MAX_SECRET_BYTES,
            });
        }
        if let Some(secret) = read_canonical(text) {
            return Ok(secret);
        }
        Self::from_yaml_document(what, text)
    }

    /// [`SecretData::from_yaml`] by the YAML reader alone, whatever the
    /// document looks like (the size was checked).
    fn from_yaml_document(what: &str, text: &[u8]) -> Result<Self> {
        let bad = |reason: String| Error::BadSecret {
            what: what.into(),
            reason,
        };
        if flow_depth(text) > MAX_FLOW_DEPTH {
            return Err(bad(format!(
                "YAML nested deeper than {MAX_FLOW_DEPTH} levels of [ and {{"
            )));
        }
        // `\/` in double quotes is `/` in YAML 1.2 and an error in
        // Kubernetes' reader (YAML 1.1): a Secret kubectl cannot apply.
        // Looked for anywhere (elsewhere it is no base64 either).
        if memchr::memmem::find(text, b"\\/").is_some() {
            return Err(bad(
                "the escape \\/ (YAML 1.2), which Kubernetes' YAML reader refuses: write /"
                    .to_owned(),
            ));
        }
        // A byte-order mark is read as the start of the stream (as
        // Kubernetes does), not as content.
        let text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
        let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8 text".to_owned()))?;
        let mut options = serde_saphyr::Options::default();
        // The reader's messages would quote the document: not wanted.
        options.with_snippet = false;
        let doc: SecretIn = serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| bad(yaml_problem(&e)))?;
        if doc.kind != "Secret" || doc.api_version != "v1" {
            return Err(bad("expected apiVersion v1, kind Secret".to_owned()));
        }
        // A string Kubernetes' reader would take for something else when
        // written plain (`namespace: on` is a boolean to it, and the API
        // server refuses the Secret): refused when it is written plain.
        // Rare, so the document's events are read only when one looks so.
        let mut doubtful: Vec<(String, u64)> = Vec::new();
        let mut consider = |label: String, v: &Spanned<String>| {
            if yaml11_not_a_string(v.value.trim()) {
                doubtful.push((label, v.defined.span().offset()));
            }
        };
        if let Some(v) = &doc.metadata.name {
            consider("metadata.name".into(), v);
        }
        if let Some(v) = &doc.metadata.namespace {
            consider("metadata.namespace".into(), v);
        }
        if let Some(v) = &doc.type_ {
            consider("type".into(), v);
        }
        for (k, v) in &doc.data {
            consider(format!("data.{}", key_label(k)), v);
        }
        for (k, v) in doc.string_data.iter().flatten() {
            consider(format!("stringData.{}", key_label(k)), v);
        }
        if !doubtful.is_empty() {
            let plain = typed_scalars(text)
                .ok_or_else(|| bad("invalid YAML, or not a Secret".to_owned()))?;
            if let Some((label, _)) = doubtful
                .iter()
                .find(|(_, at)| usize::try_from(*at).is_ok_and(|at| plain.contains(&at)))
            {
                return Err(bad(format!(
                    "{label} is written plain (or tagged) so that Kubernetes' YAML reader (YAML 1.1) takes it for a boolean, null or a number: quote it"
                )));
            }
        }
        let mut data = BTreeMap::new();
        let mut folded = Vec::new();
        for (k, v) in &doc.data {
            let v = &v.value;
            if v.trim().bytes().any(|b| b == b' ' || b == b'\t') {
                folded.push(k.clone());
            }
            // A value on one line (as meshca and kubectl write it) decodes
            // as it is; only one that does not (line breaks, a folded one)
            // is decoded again without its whitespace.
            let decoded = decode_wiped(v.as_bytes()).or_else(|| {
                let compact: Zeroizing<String> =
                    Zeroizing::new(v.chars().filter(|c| !c.is_whitespace()).collect());
                decode_wiped(compact.as_bytes())
            });
            let bytes =
                decoded.ok_or_else(|| bad(format!("data.{} is not valid base64", key_label(k))))?;
            data.insert(k.clone(), bytes);
        }
        if let Some(sd) = &doc.string_data {
            for (k, v) in sd {
                data.insert(k.clone(), Zeroizing::new(v.value.as_bytes().to_vec()));
            }
        }
        Ok(SecretData {
            name: doc
                .metadata
                .name
                .as_ref()
                .map(|n| n.value.clone())
                .unwrap_or_default(),
            namespace: doc.metadata.namespace.as_ref().map(|n| n.value.clone()),
            type_: doc.type_.as_ref().map(|t| t.value.clone()),
            data,
            folded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> ClusterBundle {
        ClusterBundle::new(
            "cert\n".into(),
            Zeroizing::new("key\n".into()),
            "chain\n".into(),
            "root\n".into(),
        )
    }

    /// Secrets as meshca writes them, in every shape, with and without a CRL.
    fn written() -> Vec<String> {
        let mut out = Vec::new();
        let pem = |label: &str, n: usize| {
            let body: String = (0..n).map(|i| char::from(b'A' + (i % 26) as u8)).collect();
            format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
        };
        for (i, (name, namespace)) in [
            ("cacerts", "istio-system"),
            ("cacerts", "on"),
            ("ca.certs-2", "mesh-1"),
            ("x", "y1"),
        ]
        .into_iter()
        .enumerate()
        {
            for shape in [SecretShape::Opaque, SecretShape::Tls] {
                for crl in [None, Some(pem("X509 CRL", 40 + i))] {
                    let b = ClusterBundle::new(
                        pem("CERTIFICATE", 100 + i),
                        Zeroizing::new(pem("PRIVATE KEY", 30 + i)),
                        pem("CERTIFICATE", 200 + i),
                        pem("CERTIFICATE", 101 + i),
                    )
                    .with_crl(crl);
                    let opts = SecretOptions {
                        name: name.into(),
                        namespace: namespace.into(),
                        shape,
                    };
                    out.push(cacerts_yaml(&b, &opts).unwrap().to_string());
                }
            }
        }
        out
    }

    /// One random edit of a document: a byte changed, text put in or
    /// taken out, a value replaced by one YAML may read otherwise, a line
    /// repeated or two swapped.
    fn mutate(rng: &mut fastrand::Rng, doc: &str) -> Vec<u8> {
        const BYTES: &[u8] = b" \t\r\n:#'\"-?&*!|>%@`[]{},.=/+~_0aZ9\\";
        const WORDS: &[&str] = &[
            "true", "on", "No", "null", "1234", "0x1f", "1e30", "0o17", ".inf", "~", "-", "+LS0",
            "=", "LS0t", "a b", "!!str", "&a", "*a", "\"LS0t\"", "'on'", "LS0t #c", "---", "...",
            "<<", "|", ">", "[]", "{}", "\u{feff}", "\u{e9}",
        ];
        let mut b = doc.as_bytes().to_vec();
        let at = rng.usize(..=b.len());
        match rng.u8(..6) {
            0 if !b.is_empty() => {
                let i = rng.usize(..b.len());
                b[i] = BYTES[rng.usize(..BYTES.len())];
            }
            1 => b.insert(at, BYTES[rng.usize(..BYTES.len())]),
            2 => {
                let end = (at + rng.usize(1..12)).min(b.len());
                b.drain(at..end);
            }
            3 => {
                let w = WORDS[rng.usize(..WORDS.len())];
                b.splice(at..at, w.bytes());
            }
            4 => {
                // A value (after ": ") replaced by a word.
                let lines: Vec<&str> = doc.split_inclusive('\n').collect();
                let i = rng.usize(..lines.len());
                let w = WORDS[rng.usize(..WORDS.len())];
                let mut out = String::new();
                for (j, l) in lines.iter().enumerate() {
                    match l.split_once(": ") {
                        Some((k, _)) if j == i => out.push_str(&format!("{k}: {w}\n")),
                        _ => out.push_str(l),
                    }
                }
                b = out.into_bytes();
            }
            _ => {
                let mut lines: Vec<&str> = doc.split_inclusive('\n').collect();
                let (i, j) = (rng.usize(..lines.len()), rng.usize(..lines.len()));
                if rng.bool() {
                    lines.swap(i, j);
                } else {
                    lines.insert(i, lines[j]);
                }
                b = lines.concat().into_bytes();
            }
        }
        b
    }

    #[test]
    fn the_canonical_reader_reads_as_the_yaml_reader_does() {
        let docs = written();
        // Everything meshca writes takes the fast way (but a namespace
        // the writer must quote), and reads the same both ways.
        for doc in &docs {
            let slow = SecretData::from_yaml_document("s.yaml", doc.as_bytes()).unwrap();
            match read_canonical(doc.as_bytes()) {
                Some(fast) => assert_eq!(fast, slow, "{doc}"),
                None => assert_eq!(slow.namespace.as_deref(), Some("on"), "{doc}"),
            }
        }
        // Edited documents: whatever the fast way accepts, the YAML reader
        // reads to the same Secret.
        let mut rng = fastrand::Rng::with_seed(11);
        let (mut taken, mut left) = (0, 0);
        for n in 0..60_000 {
            let mut m = mutate(&mut rng, &docs[n % docs.len()]);
            if rng.u8(..4) == 0 {
                m = mutate(&mut rng, &String::from_utf8_lossy(&m));
            }
            let Some(fast) = read_canonical(&m) else {
                left += 1;
                continue;
            };
            taken += 1;
            match SecretData::from_yaml_document("s.yaml", &m) {
                Ok(slow) => assert_eq!(fast, slow, "{}", String::from_utf8_lossy(&m)),
                Err(e) => panic!(
                    "the fast way read what the YAML reader refuses ({e}):\n{}",
                    String::from_utf8_lossy(&m)
                ),
            }
        }
        // Both ways were taken often: the comparison means something.
        assert!(taken > 5_000 && left > 5_000, "taken {taken}, left {left}");
    }

    #[test]
    fn opaque_round_trips() {
        let yaml = cacerts_yaml(&bundle(), &SecretOptions::default()).unwrap();
        assert!(yaml.contains("type: Opaque"));
        let back = SecretData::from_yaml("cacerts.yaml", yaml.as_bytes()).unwrap();
        assert_eq!(back.name, "cacerts");
        assert_eq!(back.namespace.as_deref(), Some("istio-system"));
        let keys: Vec<_> = back.data.keys().map(String::as_str).collect();
        assert_eq!(keys, [CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT]);
        assert_eq!(back.data[CA_KEY].as_slice(), b"key\n");
        assert!(!format!("{back:?}").contains("key\\n"));
    }

    #[test]
    fn tls_shape_has_tls_keys() {
        let opts = SecretOptions {
            shape: SecretShape::Tls,
            ..SecretOptions::default()
        };
        let yaml = cacerts_yaml(&bundle(), &opts).unwrap();
        let back = SecretData::from_yaml("s.yaml", yaml.as_bytes()).unwrap();
        assert_eq!(back.type_.as_deref(), Some("kubernetes.io/tls"));
        let keys: Vec<_> = back.data.keys().map(String::as_str).collect();
        assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
    }

    #[test]
    fn bad_yaml_is_named() {
        let err = SecretData::from_yaml(
            "s.yaml",
            b"kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n",
        )
        .unwrap_err()
        .to_string();
        // What was expected, not what was found: values are never echoed.
        assert!(
            err.starts_with("s.yaml: ")
                && err.contains("kind Secret")
                && !err.contains("ConfigMap"),
            "{err}"
        );
        let err = SecretData::from_yaml(
            "s.yaml",
            b"apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata: {ca-cert.pem: '!!!', s3cret: '!!!'}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("data.ca-cert.pem is not valid base64"),
            "{err}"
        );
        // A key of the document's own is not quoted either.
        let err = SecretData::from_yaml(
            "s.yaml",
            b"apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata: {s3cret: '!!!'}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("data.(a key)") && !err.contains("s3cret"),
            "{err}"
        );
        // An unquoted number is not a string to Kubernetes.
        let err = SecretData::from_yaml(
            "s.yaml",
            b"apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata: {ca-crl.pem: 1234}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("data.ca-crl.pem is written plain"), "{err}");
        // A namespace YAML 1.1 reads as a boolean: refused plain, read quoted.
        let doc = |ns: &str| {
            format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: cacerts\n  namespace: {ns}\ndata: {{}}\n")
        };
        for plain in [
            "on", "yes", "N", "TRUE", "0x1f", "1e3", "+.Inf", "1_0", ".NaN",
        ] {
            let err = SecretData::from_yaml("s.yaml", doc(plain).as_bytes()).unwrap_err();
            assert!(
                err.to_string()
                    .contains("metadata.namespace is written plain (or tagged)"),
                "{plain}: {err}"
            );
        }
        // Tagged as something else than a string: refused (by the reader
        // or by the look-up of tags).
        for tagged in ["!!bool on", "!!int \"12\"", "!!float '1.5'"] {
            assert!(
                SecretData::from_yaml("s.yaml", doc(tagged).as_bytes()).is_err(),
                "{tagged}"
            );
        }
        for fine in [
            "'on'",
            "\"yes\"",
            "!!str on",
            "istio-system",
            "nan",
            "yEs",
            "a1e3",
            "2001-12-14",
        ] {
            let s = SecretData::from_yaml("s.yaml", doc(fine).as_bytes()).unwrap();
            assert!(s.namespace.is_some(), "{fine}");
        }
        // An alias of a quoted scalar is the quoted scalar.
        let s = SecretData::from_yaml(
            "s.yaml",
            b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: &n 'on'\n  namespace: *n\n",
        )
        .unwrap();
        assert_eq!(s.namespace.as_deref(), Some("on"));
        // A byte-order mark starts the stream.
        let s =
            SecretData::from_yaml("s.yaml", format!("\u{feff}{}", doc("x")).as_bytes()).unwrap();
        assert_eq!(s.namespace.as_deref(), Some("x"));
    }

    /// "The root key is printed in full when a key file is passed where a
    /// Secret is expected": the YAML error names where, never what.
    #[test]
    fn a_key_file_given_as_a_secret_is_not_echoed() {
        let key = crate::key::PrivateKey::generate(crate::KeyType::EcdsaP256).unwrap();
        let pem = key.to_pem();
        let err = SecretData::from_yaml("root-key.pem", pem.as_bytes())
            .unwrap_err()
            .to_string();
        let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        for line in body {
            assert!(!err.contains(line), "{err}");
        }
        assert!(!err.contains("PRIVATE KEY"), "{err}");
        assert!(err.starts_with("root-key.pem: "), "{err}");
    }

    /// "1 MiB of nested brackets as cacerts.yaml takes minutes".
    #[test]
    fn a_mebibyte_of_nested_brackets_is_refused_at_once() {
        let text = vec![b'['; 1 << 20];
        let started = std::time::Instant::now();
        let err = SecretData::from_yaml("cacerts.yaml", &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nested"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
