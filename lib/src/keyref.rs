//! Where a root key is: a PEM file, or an object in a PKCS#11 token named
//! by an RFC 7512 `pkcs11:` URI.
//!
//! ```text
//! root-key.pem
//! pkcs11:token=meshca;object=root?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin
//! ```
//!
//! The URI's path attributes `token=`, `object=` and `id=` say which key;
//! its query attributes `module-path=` (the PKCS#11 module to load),
//! `pin-source=file:PATH` and `pin-value=` how to reach it. Values are
//! percent-decoded (RFC 3986); anything else is refused rather than
//! ignored. The PIN never shows: not in `Debug`, not in `Display` (which
//! is the URI as the certs directory records it, in `root-key.uri`), not
//! in errors. Errors about the URI's syntax quote no value from it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// `root-key.uri`: the `pkcs11:` URI (without any PIN) of a root key kept
/// in a token, recorded in the certs directory in place of `root-key.pem`.
pub const ROOT_KEY_URI: &str = "root-key.uri";

/// A reference to a root key: `--root-key REF`.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum KeyRef {
    /// A PEM file (`root-key.pem`, possibly encrypted).
    File(PathBuf),
    /// A key in a PKCS#11 token.
    Pkcs11(Pkcs11Uri),
}

impl FromStr for KeyRef {
    type Err = Error;

    /// A string starting with `pkcs11:` (any case) is a URI; anything
    /// else non-empty is a file path.
    fn from_str(s: &str) -> Result<Self> {
        if s.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("pkcs11:"))
        {
            return Pkcs11Uri::parse(s).map(KeyRef::Pkcs11);
        }
        if s.is_empty() {
            return Err(bad("the key reference is empty"));
        }
        Ok(KeyRef::File(PathBuf::from(s)))
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::File(p) => write!(f, "{}", p.display()),
            KeyRef::Pkcs11(u) => write!(f, "{u}"),
        }
    }
}

/// An RFC 7512 `pkcs11:` URI naming a private key.
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Pkcs11Uri {
    /// `token=`: the token's label.
    pub token: Option<String>,
    /// `object=`: the key's label (`CKA_LABEL`).
    pub object: Option<String>,
    /// `id=`: the key's `CKA_ID` bytes.
    pub id: Option<Vec<u8>>,
    /// `module-path=`: the PKCS#11 module (shared library) to load.
    pub module_path: Option<PathBuf>,
    /// `pin-source=`: where the PIN is (`file:PATH`).
    pub pin_source: Option<String>,
    /// `pin-value=`: the PIN itself (never displayed or recorded).
    pin_value: Option<Zeroizing<String>>,
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Uri")
            .field("token", &self.token)
            .field("object", &self.object)
            .field("id", &self.id)
            .field("module_path", &self.module_path)
            .field("pin_source", &self.pin_source)
            .field(
                "pin_value",
                &self.pin_value.as_ref().map(|_| "[PIN elided]"),
            )
            .finish()
    }
}

fn bad(reason: &str) -> Error {
    Error::KeyRef {
        reason: reason.into(),
    }
}

/// RFC 7512 `pk11-pchar` and `pk11-qchar` besides unreserved and `%XX`.
fn allowed(c: char, query: bool) -> bool {
    c.is_ascii_alphanumeric()
        || "-._~:[]@!$'()*+,=".contains(c)
        || (!query && c == '&')
        || (query && "/?|;".contains(c))
}

/// Percent-decodes one attribute value, refusing characters RFC 7512 does
/// not allow there and malformed `%` escapes.
fn decode(attr: &str, value: &str, query: bool) -> Result<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
            if hex.len() != 2 || !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(Error::KeyRef {
                    reason: format!("{attr}= has a malformed %-escape"),
                });
            }
            i += 3;
            continue;
        }
        if !allowed(char::from(b), query) {
            return Err(Error::KeyRef {
                reason: format!("{attr}= has a character that must be %-encoded in a pkcs11: URI"),
            });
        }
        i += 1;
    }
    Ok(percent_decode_str(value).collect())
}

fn decode_text(attr: &str, value: &str, query: bool) -> Result<String> {
    String::from_utf8(decode(attr, value, query)?).map_err(|_| Error::KeyRef {
        reason: format!("{attr}= is not UTF-8 once decoded"),
    })
}

fn set_once<T>(slot: &mut Option<T>, attr: &str, value: T) -> Result<()> {
    if slot.is_some() {
        return Err(Error::KeyRef {
            reason: format!("{attr}= is given twice"),
        });
    }
    *slot = Some(value);
    Ok(())
}

/// Path values: everything but unreserved characters is encoded.
const PATH_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Query values: `/` and `:` stay as they are (paths, `file:`).
const QUERY_VALUE: &AsciiSet = &PATH_VALUE.remove(b'/').remove(b':');

impl Pkcs11Uri {
    /// Parses a `pkcs11:` URI. Known attributes: `token`, `object`, `id`,
    /// `type` (only `private`) in the path; `module-path`, `pin-source`,
    /// `pin-value` in the query. An unknown or repeated attribute, a value
    /// with a character that should have been %-encoded, or a URI naming
    /// neither `object=` nor `id=` is refused.
    pub fn parse(s: &str) -> Result<Self> {
        let Some(rest) = s
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("pkcs11:"))
            .and_then(|_| s.get(7..))
        else {
            return Err(bad("a PKCS#11 URI starts with \"pkcs11:\""));
        };
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.contains('#') || query.is_some_and(|q| q.contains('#')) {
            return Err(bad("a pkcs11: URI has no fragment ('#' must be %-encoded)"));
        }
        let mut uri = Pkcs11Uri::default();
        for part in path.split(';').filter(|p| !p.is_empty()) {
            let Some((attr, value)) = part.split_once('=') else {
                return Err(bad("each path attribute of a pkcs11: URI is NAME=VALUE"));
            };
            match attr {
                "token" => set_once(&mut uri.token, attr, decode_text(attr, value, false)?)?,
                "object" => set_once(&mut uri.object, attr, decode_text(attr, value, false)?)?,
                "id" => set_once(&mut uri.id, attr, decode(attr, value, false)?)?,
                "type" => {
                    if decode_text(attr, value, false)? != "private" {
                        return Err(bad(
                            "type= must be \"private\": the root key is a private key",
                        ));
                    }
                }
                _ => {
                    return Err(Error::KeyRef {
                        reason: format!(
                            "unsupported path attribute {:?} (supported: token, object, id, type)",
                            printable_name(attr)
                        ),
                    })
                }
            }
        }
        for part in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let Some((attr, value)) = part.split_once('=') else {
                return Err(bad("each query attribute of a pkcs11: URI is NAME=VALUE"));
            };
            match attr {
                "module-path" => {
                    let p = decode_text(attr, value, true)?;
                    set_once(&mut uri.module_path, attr, PathBuf::from(p))?;
                }
                "pin-source" => set_once(&mut uri.pin_source, attr, decode_text(attr, value, true)?)?,
                "pin-value" => {
                    let bytes = Zeroizing::new(decode(attr, value, true)?);
                    let pin = std::str::from_utf8(&bytes)
                        .map_err(|_| bad("pin-value= is not UTF-8 once decoded"))?;
                    set_once(&mut uri.pin_value, attr, Zeroizing::new(pin.to_owned()))?;
                }
                _ => {
                    return Err(Error::KeyRef {
                        reason: format!(
                            "unsupported query attribute {:?} (supported: module-path, pin-source, pin-value)",
                            printable_name(attr)
                        ),
                    })
                }
            }
        }
        if uri.object.is_none() && uri.id.is_none() {
            return Err(bad(
                "the URI names no key: give object= (the key's label) or id=",
            ));
        }
        if uri.pin_source.is_some() && uri.pin_value.is_some() {
            return Err(bad("give pin-source= or pin-value=, not both"));
        }
        if uri.object.as_deref() == Some("") || uri.token.as_deref() == Some("") {
            return Err(bad("token= and object= must not be empty"));
        }
        Ok(uri)
    }

    /// Whether the URI carries the PIN itself (`pin-value=`), which then
    /// lands in shell history and process listings.
    pub fn has_pin_value(&self) -> bool {
        self.pin_value.is_some()
    }

    /// The URI without `pin-value=` (what the certs directory records).
    pub fn without_pin(&self) -> Pkcs11Uri {
        Pkcs11Uri {
            pin_value: None,
            ..self.clone()
        }
    }

    /// The same URI with `id=` set (the `CKA_ID` of a generated key).
    pub fn with_id(&self, id: Vec<u8>) -> Pkcs11Uri {
        Pkcs11Uri {
            id: Some(id),
            ..self.clone()
        }
    }

    /// The module to load (`module-path=`), or an error saying it is needed.
    pub fn module(&self) -> Result<&Path> {
        self.module_path.as_deref().ok_or_else(|| Error::Pkcs11 {
            what: self.describe(),
            reason: "the URI has no module-path= (the PKCS#11 module to load, such as \
                     /usr/lib/softhsm/libsofthsm2.so)"
                .into(),
        })
    }

    /// The key in words for messages: `token "T", object "O"` (never the
    /// PIN).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.token {
            parts.push(format!("token {:?}", printable_name(t)));
        }
        if let Some(o) = &self.object {
            parts.push(format!("object {:?}", printable_name(o)));
        }
        if let Some(id) = &self.id {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            parts.push(format!("id {hex}"));
        }
        format!("PKCS#11 key ({})", parts.join(", "))
    }

    /// The user PIN: `pin-value=`, else the first line of the file
    /// `pin-source=file:PATH` names (its trailing newline stripped), else
    /// what `ask` returns (a terminal prompt).
    pub fn pin(&self, ask: &dyn Fn() -> Result<Zeroizing<String>>) -> Result<Zeroizing<String>> {
        if let Some(pin) = &self.pin_value {
            return Ok(pin.clone());
        }
        let Some(source) = &self.pin_source else {
            return ask();
        };
        let path = source.strip_prefix("file:").ok_or_else(|| Error::Pkcs11 {
            what: self.describe(),
            reason: "pin-source= must be a file: URI (pin-source=file:/path/to/pin)".into(),
        })?;
        // file:///run/pin and file:/run/pin both name /run/pin.
        let path = path.strip_prefix("//").unwrap_or(path);
        let bytes = Zeroizing::new(crate::read_named(Path::new(path))?);
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::Passphrase {
            reason: format!("{path}: the PIN file is not UTF-8 text"),
        })?;
        let line = text.strip_suffix('\n').unwrap_or(text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return Err(Error::Passphrase {
                reason: format!("{path}: the PIN file is empty"),
            });
        }
        Ok(Zeroizing::new(line.to_owned()))
    }
}

/// A name from the URI as it may be shown: control characters replaced.
fn printable_name(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(64)
        .collect()
}

impl fmt::Display for Pkcs11Uri {
    /// The URI without `pin-value=`: safe to print and to record.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pkcs11:")?;
        let mut path = Vec::new();
        if let Some(t) = &self.token {
            path.push(format!("token={}", utf8_percent_encode(t, PATH_VALUE)));
        }
        if let Some(o) = &self.object {
            path.push(format!("object={}", utf8_percent_encode(o, PATH_VALUE)));
        }
        if let Some(id) = &self.id {
            let enc: String = id.iter().map(|b| format!("%{b:02X}")).collect();
            path.push(format!("id={enc}"));
        }
        path.push("type=private".into());
        f.write_str(&path.join(";"))?;
        let mut query = Vec::new();
        if let Some(m) = &self.module_path {
            query.push(format!(
                "module-path={}",
                utf8_percent_encode(&m.to_string_lossy(), QUERY_VALUE)
            ));
        }
        if let Some(s) = &self.pin_source {
            query.push(format!(
                "pin-source={}",
                utf8_percent_encode(s, QUERY_VALUE)
            ));
        }
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_path_and_query_attributes_with_percent_decoding() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=mesh%20ca;object=root;id=%01%ab?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("mesh ca"));
        assert_eq!(u.object.as_deref(), Some("root"));
        assert_eq!(u.id.as_deref(), Some(&[0x01, 0xab][..]));
        assert_eq!(
            u.module_path.as_deref(),
            Some(Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(u.pin_source.as_deref(), Some("file:/run/pin"));
        assert!(!u.has_pin_value());
    }

    #[test]
    fn display_round_trips_and_never_shows_the_pin() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=a%3Bb;object=r%C3%A9?module-path=/m.so&pin-value=s3cr%65t",
        )
        .unwrap();
        assert!(u.has_pin_value());
        let shown = u.to_string();
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(!shown.contains("pin-value"), "{shown}");
        assert!(!format!("{u:?}").contains("s3cr"));
        let back = Pkcs11Uri::parse(&shown).unwrap();
        assert_eq!(back, u.without_pin());
        assert_eq!(back.token.as_deref(), Some("a;b"));
        assert_eq!(back.object.as_deref(), Some("ré"));
        let with_id = u.with_id(vec![0, 255]).to_string();
        assert_eq!(Pkcs11Uri::parse(&with_id).unwrap().id, Some(vec![0, 255]));
    }

    #[test]
    fn the_pin_comes_from_the_value_the_file_or_the_prompt() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pin");
        std::fs::write(&file, "1234\n").unwrap();
        let never = || -> Result<Zeroizing<String>> { Err(bad("asked")) };
        let u = Pkcs11Uri::parse(&format!(
            "pkcs11:object=k?pin-source=file:{}",
            file.display()
        ))
        .unwrap();
        assert_eq!(u.pin(&never).unwrap().as_str(), "1234");
        let u = Pkcs11Uri::parse("pkcs11:object=k?pin-value=99").unwrap();
        assert_eq!(u.pin(&never).unwrap().as_str(), "99");
        let u = Pkcs11Uri::parse("pkcs11:object=k").unwrap();
        let asked = || Ok(Zeroizing::new("typed".to_owned()));
        assert_eq!(u.pin(&asked).unwrap().as_str(), "typed");
        let u = Pkcs11Uri::parse("pkcs11:object=k?pin-source=https://x").unwrap();
        assert!(u.pin(&never).is_err());
    }

    #[test]
    fn syntax_errors_never_quote_values() {
        for (uri, says) in [
            ("pkcs11:token=SECRETX", "names no key"),
            ("pkcs11:object=SECRETX;object=SECRETX", "given twice"),
            ("pkcs11:object=SECRETX%zz", "malformed"),
            ("pkcs11:object=SECRET X", "must be %-encoded"),
            (
                "pkcs11:object=k?pin-value=SECRETX&pin-value=SECRETX",
                "given twice",
            ),
            (
                "pkcs11:object=k?pin-value=SECRETX&pin-source=file:/SECRETX",
                "not both",
            ),
            ("pkcs11:object=k;slot-id=1", "unsupported path attribute"),
            (
                "pkcs11:object=k?module-name=SECRETX",
                "unsupported query attribute",
            ),
            ("pkcs11:object=k;type=cert", "must be \"private\""),
            ("pkcs11:object", "NAME=VALUE"),
        ] {
            let err = Pkcs11Uri::parse(uri).unwrap_err().to_string();
            assert!(err.contains(says), "{uri}: {err}");
            assert!(!err.contains("SECRET"), "{uri}: {err}");
        }
    }

    #[test]
    fn key_refs_are_files_unless_they_are_uris() {
        assert_eq!(
            "root-key.pem".parse::<KeyRef>().unwrap(),
            KeyRef::File("root-key.pem".into())
        );
        assert!(matches!(
            "PKCS11:object=r".parse::<KeyRef>().unwrap(),
            KeyRef::Pkcs11(_)
        ));
        assert!("".parse::<KeyRef>().is_err());
    }
}
