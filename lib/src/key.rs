//! Private keys: generation, PEM in and out, zeroized on drop, never shown
//! in `Debug`.

use std::fmt;

use rcgen::{KeyPair, PublicKeyData, RsaKeySize};
use rustls_pki_types::PrivateKeyDer;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::pemutil;
use crate::profile::{KeyType, KEY_TYPE_NAMES};

/// The encoding a private key was read from (generated keys are PKCS#8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFormat {
    /// PKCS#8 `PRIVATE KEY` (what meshca and the recipe write).
    Pkcs8,
    /// PKCS#1 `RSA PRIVATE KEY` (`openssl genrsa -traditional`, older openssl).
    Pkcs1,
    /// SEC1 `EC PRIVATE KEY` (`openssl ecparam -genkey`).
    Sec1,
}

impl KeyFormat {
    /// The format a PEM label names (`PRIVATE KEY`, `RSA PRIVATE KEY`,
    /// `EC PRIVATE KEY`), if any.
    pub fn from_pem_tag(tag: &str) -> Option<Self> {
        match tag {
            "PRIVATE KEY" => Some(KeyFormat::Pkcs8),
            "RSA PRIVATE KEY" => Some(KeyFormat::Pkcs1),
            "EC PRIVATE KEY" => Some(KeyFormat::Sec1),
            _ => None,
        }
    }

    fn pem_tag(self) -> &'static str {
        match self {
            KeyFormat::Pkcs8 => "PRIVATE KEY",
            KeyFormat::Pkcs1 => "RSA PRIVATE KEY",
            KeyFormat::Sec1 => "EC PRIVATE KEY",
        }
    }
}

/// A private key, zeroized when dropped: held here, or (a root key) in a
/// PKCS#11 token, where only signatures leave it.
///
/// `Debug` prints `[secret key elided]` in place of the key.
pub struct PrivateKey {
    held: Held,
    key_type: KeyType,
    format: KeyFormat,
}

/// Where a key's private half is.
enum Held {
    /// In memory.
    Local(KeyPair),
    /// In a token.
    #[cfg(feature = "pkcs11")]
    Token(Box<crate::pkcs11::TokenKey>),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("key_type", &self.key_type)
            .field("format", &self.format)
            .field("key", &self.held_in())
            .finish()
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        match &mut self.held {
            Held::Local(pair) => pair.zeroize(),
            // Nothing of the key is here.
            #[cfg(feature = "pkcs11")]
            Held::Token(_) => {}
        }
    }
}

impl PrivateKey {
    /// Generates a fresh key of the given type.
    ///
    /// RSA keys come from aws-lc (the only backend of rcgen that generates
    /// them); this is the slow part of meshca (about 0.4 s for RSA 4096),
    /// so callers making several keys should do it on several threads.
    pub fn generate(key_type: KeyType) -> Result<Self> {
        let alg = key_type.signature_algorithm();
        let pair = match key_type {
            KeyType::Rsa2048 => KeyPair::generate_rsa_for(alg, RsaKeySize::_2048),
            KeyType::Rsa3072 => KeyPair::generate_rsa_for(alg, RsaKeySize::_3072),
            KeyType::Rsa4096 => KeyPair::generate_rsa_for(alg, RsaKeySize::_4096),
            KeyType::EcdsaP256 | KeyType::EcdsaP384 => KeyPair::generate_for(alg),
        }
        .map_err(|e| Error::signing(format!("generating a {key_type} key"), e))?;
        crate::verify::memo::remember_key_pair(
            KeyFormat::Pkcs8.pem_tag(),
            pair.serialized_der(),
            &pair.subject_public_key_info(),
        );
        Ok(PrivateKey {
            held: Held::Local(pair),
            key_type,
            format: KeyFormat::Pkcs8,
        })
    }

    /// A key held in a PKCS#11 token (see [`crate::pkcs11::TokenKey`]).
    /// [`PrivateKey::to_pem`] and [`PrivateKey::to_encrypted_pem`] refuse
    /// it: the key never leaves the token.
    #[cfg(feature = "pkcs11")]
    pub fn in_token(key: crate::pkcs11::TokenKey) -> Self {
        PrivateKey {
            key_type: key.key_type(),
            held: Held::Token(Box::new(key)),
            format: KeyFormat::Pkcs8,
        }
    }

    /// The `pkcs11:` URI of a key held in a token; `None` for a key held
    /// here.
    pub fn token_uri(&self) -> Option<&crate::keyref::Pkcs11Uri> {
        match &self.held {
            Held::Local(_) => None,
            #[cfg(feature = "pkcs11")]
            Held::Token(t) => Some(t.uri()),
        }
    }

    /// The token holding the key, for a key held in one.
    #[cfg(feature = "pkcs11")]
    pub fn token(&self) -> Option<&crate::pkcs11::TokenKey> {
        match &self.held {
            Held::Local(_) => None,
            Held::Token(t) => Some(t),
        }
    }

    fn held_in(&self) -> &'static str {
        match self.held {
            Held::Local(_) => "[secret key elided]",
            #[cfg(feature = "pkcs11")]
            Held::Token(_) => "[in a PKCS#11 token]",
        }
    }

    /// The key pair of a key held here, or the error for one in a token.
    #[cfg_attr(not(feature = "pkcs11"), allow(unused_variables))]
    fn local(&self, what: &str) -> Result<&KeyPair> {
        match &self.held {
            Held::Local(pair) => Ok(pair),
            #[cfg(feature = "pkcs11")]
            Held::Token(t) => Err(Error::Pkcs11 {
                what: t.uri().describe(),
                reason: format!("{what}: the key never leaves its token"),
            }),
        }
    }

    /// Reads the first private key of a PEM document: PKCS#8, PKCS#1 (RSA)
    /// or SEC1 (EC), unencrypted. `what` names the document in errors
    /// (usually its path).
    pub fn from_pem(what: &str, pem_text: &[u8]) -> Result<Self> {
        Self::load_pem(what, pem_text, None)
    }

    /// Like [`PrivateKey::from_pem`], but an encrypted PKCS#8 key
    /// (`ENCRYPTED PRIVATE KEY`, PBES2 as written by
    /// [`PrivateKey::to_encrypted_pem`] or `openssl pkcs8 -topk8 -v2`) is
    /// decrypted with the passphrase `passphrase` returns; it is only asked
    /// for when the key is encrypted.
    pub fn from_pem_with_passphrase(
        what: &str,
        pem_text: &[u8],
        passphrase: &dyn Fn() -> Result<Zeroizing<String>>,
    ) -> Result<Self> {
        Self::load_pem(what, pem_text, Some(passphrase))
    }

    /// The first private key of a PEM document; an encrypted one needs
    /// `passphrase` (without it, [`Error::EncryptedKey`]).
    fn load_pem(
        what: &str,
        pem_text: &[u8],
        passphrase: Option<&dyn Fn() -> Result<Zeroizing<String>>>,
    ) -> Result<Self> {
        let blocks = pemutil::parse_blocks(what, pem_text)?;
        for block in blocks.iter() {
            if block.tag() == "ENCRYPTED PRIVATE KEY" {
                let Some(passphrase) = passphrase else {
                    return Err(Error::EncryptedKey { what: what.into() });
                };
                let info =
                    pkcs8::EncryptedPrivateKeyInfo::try_from(block.contents()).map_err(|e| {
                        Error::BadKey {
                            what: what.into(),
                            reason: format!("cannot parse the encrypted key: {e}"),
                        }
                    })?;
                let pass = passphrase()?;
                let doc = info.decrypt(pass.as_bytes()).map_err(|_| Error::BadKey {
                    what: what.into(),
                    reason: "wrong passphrase (or a damaged or unsupported encrypted key)".into(),
                })?;
                return Self::from_der(what, KeyFormat::Pkcs8, doc.as_bytes());
            }
            let Some(format) = KeyFormat::from_pem_tag(block.tag()) else {
                continue;
            };
            if block.headers().get("Proc-Type").is_some() {
                // Legacy openssl encryption: "Proc-Type: 4,ENCRYPTED".
                return Err(Error::EncryptedKey { what: what.into() });
            }
            // The decoded block is wiped when `blocks` drops.
            return Self::from_der(what, format, block.contents());
        }
        Err(Error::Pem {
            what: what.into(),
            problem: "no private key found (expected a PEM block \"PRIVATE KEY\", \
                      \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\")"
                .into(),
        })
    }

    /// The key as encrypted PKCS#8 PEM (`ENCRYPTED PRIVATE KEY`): PBES2 with
    /// scrypt (N=2^14, r=8, p=1, the parameters `openssl pkcs8 -scrypt`
    /// uses, within OpenSSL's default memory limit) and AES-256-CBC, so
    /// `openssl pkcs8 -in FILE` reads it. Only PKCS#8 keys (all keys
    /// meshca generates) can be encrypted.
    pub fn to_encrypted_pem(&self, passphrase: &[u8]) -> Result<Zeroizing<String>> {
        use aws_lc_rs::rand::{SecureRandom, SystemRandom};
        let pair = self.local("encrypting the key")?;
        if self.format != KeyFormat::Pkcs8 {
            return Err(Error::BadKey {
                what: "private key".into(),
                reason: "only PKCS#8 keys can be encrypted".into(),
            });
        }
        if passphrase.is_empty() {
            return Err(Error::InvalidArgument {
                what: "passphrase",
                value: String::new(),
                reason: "must not be empty".into(),
            });
        }
        let bad = |reason: String| Error::BadKey {
            what: "private key".into(),
            reason,
        };
        let mut salt = [0u8; 16];
        let mut iv = [0u8; 16];
        let rng = SystemRandom::new();
        rng.fill(&mut salt)
            .and_then(|()| rng.fill(&mut iv))
            .map_err(|_| bad("the system random generator failed".into()))?;
        let scrypt = pkcs8::pkcs5::scrypt::Params::new(14, 8, 1, 32)
            .map_err(|e| bad(format!("scrypt parameters: {e}")))?;
        let params = pkcs8::pkcs5::pbes2::Parameters::scrypt_aes256cbc(scrypt, &salt, &iv)
            .map_err(|e| bad(format!("PBES2 parameters: {e}")))?;
        let info = pkcs8::PrivateKeyInfo::try_from(pair.serialized_der())
            .map_err(|e| bad(format!("not PKCS#8: {e}")))?;
        let doc = info
            .encrypt_with_params(params, passphrase)
            .map_err(|e| bad(format!("encryption failed: {e}")))?;
        let block = pem::Pem::new("ENCRYPTED PRIVATE KEY", doc.as_bytes().to_vec());
        let text = pemutil::encode(&block);
        let mut contents = block.into_contents();
        contents.zeroize();
        Ok(text)
    }

    /// Reads a DER private key in the given format.
    pub fn from_der(what: &str, format: KeyFormat, der: &[u8]) -> Result<Self> {
        // The algorithm named in the key picks the one parser to run;
        // rcgen's own guess tries each algorithm in turn (Ed25519 first).
        let named = named_algorithm(format, der).and_then(|alg| {
            KeyPair::from_der_and_sign_algo(&rcgen_private_key_der(format, der), alg).ok()
        });
        let pair = match named {
            Some(pair) => pair,
            None => KeyPair::try_from(der).map_err(|e| Error::BadKey {
                what: what.into(),
                reason: format!("cannot parse the private key: {e}"),
            })?,
        };
        let spki = pair.subject_public_key_info();
        let key_type = key_type_of_spki(what, &spki)?;
        let pair = if key_type.signature_algorithm() == pair.algorithm() {
            pair
        } else {
            KeyPair::from_der_and_sign_algo(
                &rcgen_private_key_der(format, der),
                key_type.signature_algorithm(),
            )
            .map_err(|e| Error::BadKey {
                what: what.into(),
                reason: format!("cannot use the private key: {e}"),
            })?
        };
        crate::verify::memo::remember_key_pair(format.pem_tag(), der, &spki);
        Ok(PrivateKey {
            held: Held::Local(pair),
            key_type,
            format,
        })
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The encoding it was read from ([`KeyFormat::Pkcs8`] when generated).
    pub fn format(&self) -> KeyFormat {
        self.format
    }

    /// The DER SubjectPublicKeyInfo of the public half.
    pub fn public_key_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(self)
    }

    /// The key as PEM, in the format it was read from (PKCS#8 when
    /// generated), ending with a newline. Zeroized when dropped.
    ///
    /// A key held in a token has no PEM: this gives an empty string for
    /// it (use [`PrivateKey::try_to_pem`] where a key may be one).
    pub fn to_pem(&self) -> Zeroizing<String> {
        self.try_to_pem().unwrap_or_default()
    }

    /// Like [`PrivateKey::to_pem`], but a key held in a token is an error.
    pub fn try_to_pem(&self) -> Result<Zeroizing<String>> {
        let pair = self.local("writing the key as PEM")?;
        let block = pem::Pem::new(self.format.pem_tag(), pair.serialized_der().to_vec());
        let text = pemutil::encode(&block);
        let mut contents = block.into_contents();
        contents.zeroize();
        Ok(text)
    }
}

impl rcgen::PublicKeyData for PrivateKey {
    fn der_bytes(&self) -> &[u8] {
        match &self.held {
            Held::Local(pair) => pair.der_bytes(),
            #[cfg(feature = "pkcs11")]
            Held::Token(t) => t.public_bytes(),
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match &self.held {
            Held::Local(pair) => rcgen::PublicKeyData::algorithm(pair),
            #[cfg(feature = "pkcs11")]
            Held::Token(_) => self.key_type.signature_algorithm(),
        }
    }
}

impl rcgen::SigningKey for PrivateKey {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        match &self.held {
            Held::Local(pair) => pair.sign(msg),
            #[cfg(feature = "pkcs11")]
            Held::Token(t) => t.sign(msg),
        }
    }
}

/// The signature algorithm for the key a PKCS#8 or PKCS#1 DER names
/// (RSA, ECDSA P-256 or P-384), if it names one of them.
fn named_algorithm(format: KeyFormat, der: &[u8]) -> Option<&'static rcgen::SignatureAlgorithm> {
    const RSA: &str = "1.2.840.113549.1.1.1";
    const EC: &str = "1.2.840.10045.2.1";
    const P256: &str = "1.2.840.10045.3.1.7";
    const P384: &str = "1.3.132.0.34";
    match format {
        KeyFormat::Pkcs1 => Some(&rcgen::PKCS_RSA_SHA256),
        KeyFormat::Sec1 => None,
        KeyFormat::Pkcs8 => {
            let info = pkcs8::PrivateKeyInfo::try_from(der).ok()?;
            let alg = info.algorithm.oid.to_string();
            if alg == RSA {
                return Some(&rcgen::PKCS_RSA_SHA256);
            }
            if alg != EC {
                return None;
            }
            match info.algorithm.parameters_oid().ok()?.to_string().as_str() {
                P256 => Some(&rcgen::PKCS_ECDSA_P256_SHA256),
                P384 => Some(&rcgen::PKCS_ECDSA_P384_SHA384),
                _ => None,
            }
        }
    }
}

fn rcgen_private_key_der(format: KeyFormat, der: &[u8]) -> PrivateKeyDer<'_> {
    match format {
        KeyFormat::Pkcs8 => PrivateKeyDer::Pkcs8(der.into()),
        KeyFormat::Pkcs1 => PrivateKeyDer::Pkcs1(der.into()),
        KeyFormat::Sec1 => PrivateKeyDer::Sec1(der.into()),
    }
}

/// Determines the [`KeyType`] of a DER SubjectPublicKeyInfo, refusing what
/// istiod would refuse.
pub(crate) fn key_type_of_spki(what: &str, spki_der: &[u8]) -> Result<KeyType> {
    let unsupported = |found: String| Error::UnsupportedKey {
        what: what.into(),
        found,
        supported: KEY_TYPE_NAMES,
    };
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| Error::BadKey {
        what: what.into(),
        reason: format!("cannot parse the public key: {e}"),
    })?;
    describe_spki(&spki).map_err(unsupported)
}

/// Names the key of a parsed SubjectPublicKeyInfo, or says why it is not
/// one meshca supports.
pub(crate) fn describe_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyType, String> {
    use x509_parser::oid_registry::{
        OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    };
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_PKCS1_RSAENCRYPTION {
        let bits = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => rsa.key_size(),
            _ => return Err("RSA key that cannot be parsed".into()),
        };
        return match bits {
            2048 => Ok(KeyType::Rsa2048),
            3072 => Ok(KeyType::Rsa3072),
            4096 => Ok(KeyType::Rsa4096),
            other => Err(format!("rsa-{other}")),
        };
    }
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => Ok(KeyType::EcdsaP256),
            Some(c) if c == OID_NIST_EC_P384 => Ok(KeyType::EcdsaP384),
            Some(c) => Err(format!("ECDSA on curve {c}")),
            None => Err("ECDSA key without a named curve".into()),
        };
    }
    Err(format!("with algorithm {alg}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("[secret key elided]"), "{shown}");
        let pem = key.to_pem();
        let body: String = pem.lines().nth(1).unwrap().chars().take(20).collect();
        assert!(!shown.contains(&body));
    }

    #[test]
    fn generated_keys_round_trip_through_pem() {
        for kt in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048] {
            let key = PrivateKey::generate(kt).unwrap();
            let pem = key.to_pem();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
            let back = PrivateKey::from_pem("k.pem", pem.as_bytes()).unwrap();
            assert_eq!(back.key_type(), kt);
            assert_eq!(back.public_key_der(), key.public_key_der());
        }
    }

    #[test]
    fn encrypted_keys_round_trip_and_wrong_passphrases_fail() {
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let enc = key.to_encrypted_pem(b"correct horse").unwrap();
        assert!(enc.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        let good = || Ok(Zeroizing::new("correct horse".to_owned()));
        let back = PrivateKey::from_pem_with_passphrase("k.pem", enc.as_bytes(), &good).unwrap();
        assert_eq!(back.public_key_der(), key.public_key_der());
        let bad = || Ok(Zeroizing::new("wrong".to_owned()));
        let err = PrivateKey::from_pem_with_passphrase("k.pem", enc.as_bytes(), &bad).unwrap_err();
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
        // Plain keys never ask.
        let never = || -> Result<Zeroizing<String>> { panic!("asked for a passphrase") };
        let plain = key.to_pem();
        PrivateKey::from_pem_with_passphrase("k.pem", plain.as_bytes(), &never).unwrap();
    }

    #[test]
    fn encrypted_and_missing_keys_are_named() {
        let enc =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = PrivateKey::from_pem("root-key.pem", enc).unwrap_err();
        assert!(matches!(err, Error::EncryptedKey { .. }), "{err}");
        assert!(err.to_string().starts_with("root-key.pem: "));
        let cert_only = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = PrivateKey::from_pem("ca-key.pem", cert_only).unwrap_err();
        assert!(err.to_string().contains("no private key found"), "{err}");
    }
}
