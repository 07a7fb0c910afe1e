//! A root key that never leaves a PKCS#11 token (an HSM, a smart card,
//! SoftHSM2), through the `cryptoki` crate.
//!
//! The module named by the URI's `module-path=` is loaded at run time
//! (dlopen): it is trusted code running inside meshca. [`TokenKey`] logs
//! in with the user PIN, finds (or generates) the key pair by label and
//! id, and signs with `C_Sign`: RSA keys with `CKM_SHA256_RSA_PKCS` (the
//! sha256WithRSAEncryption file keys use), ECDSA keys with `CKM_ECDSA`
//! over a SHA-256 (P-256) or SHA-384 (P-384) digest made here, the
//! token's raw `r || s` re-encoded as the DER `ECDSA-Sig-Value` X.509
//! wants. The private key is generated with `CKA_SENSITIVE` and without
//! `CKA_EXTRACTABLE`: no call can read it out.

use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType as CkKeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use der::asn1::{ObjectIdentifier, OctetStringRef, SequenceOf, UintRef};
use der::{Decode, Encode};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keyref::Pkcs11Uri;
use crate::profile::{KeyType, KEY_TYPE_NAMES};

/// secp256r1 (P-256).
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1 (P-384).
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// A private key in a PKCS#11 token, with a logged-in session to sign.
pub struct TokenKey {
    /// One session, used by one thread at a time (PKCS#11 sessions are
    /// not shared between threads).
    session: Mutex<Session>,
    _context: Pkcs11,
    handle: ObjectHandle,
    key_type: KeyType,
    /// The public key as rcgen wants it: RSAPublicKey DER, or the EC point.
    public: Vec<u8>,
    uri: Pkcs11Uri,
    /// A key pair just generated and not yet kept: removed on drop.
    pending: Mutex<Option<Pending>>,
}

/// The objects of a generated key pair, and those it replaces.
struct Pending {
    new: [ObjectHandle; 2],
    replaced: Vec<ObjectHandle>,
}

impl Drop for TokenKey {
    /// A generated key pair that was never kept ([`TokenKey::keep`]) is
    /// removed from the token: a failed command leaves it as it was.
    fn drop(&mut self) {
        let pending = self.pending.get_mut().ok().and_then(Option::take);
        if let (Some(p), Ok(session)) = (pending, self.session.get_mut()) {
            for h in p.new {
                let _ = session.destroy_object(h);
            }
        }
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("key", &self.uri.describe())
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

/// The error for `uri` with `reason`.
fn fail(uri: &Pkcs11Uri, reason: impl Into<String>) -> Error {
    Error::Pkcs11 {
        what: uri.describe(),
        reason: reason.into(),
    }
}

/// A token's error in words (the RV code's name), for `doing`.
fn token_error(uri: &Pkcs11Uri, doing: &str, e: &CkError) -> Error {
    let reason = match e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => "the token refused the PIN (wrong PIN)".into(),
        CkError::Pkcs11(RvError::PinLocked, _) => {
            "the token's user PIN is locked (too many wrong PINs)".into()
        }
        CkError::Pkcs11(RvError::PinLenRange, _) => {
            "the token refused the PIN (wrong length)".into()
        }
        CkError::Pkcs11(RvError::UserPinNotInitialized, _) => {
            "the token's user PIN is not set (initialize the token first)".into()
        }
        CkError::Pkcs11(rv, function) => format!("{doing}: {function} failed: {rv:?}"),
        other => format!("{doing}: {other}"),
    };
    fail(uri, reason)
}

/// Loads the module, finds the token, opens a session and logs in.
fn connect(uri: &Pkcs11Uri, pin: &Zeroizing<String>) -> Result<(Pkcs11, Session)> {
    let module = uri.module()?;
    let context = Pkcs11::new(module).map_err(|e| {
        fail(
            uri,
            format!(
                "cannot load the PKCS#11 module {}: {}",
                module.display(),
                match e {
                    CkError::LibraryLoading(l) => l.to_string(),
                    other => other.to_string(),
                }
            ),
        )
    })?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(token_error(uri, "initializing the module", &e)),
    }
    let slots = context
        .get_slots_with_initialized_token()
        .map_err(|e| token_error(uri, "listing the tokens", &e))?;
    let mut found = Vec::new();
    for slot in slots {
        let info = context
            .get_token_info(slot)
            .map_err(|e| token_error(uri, "reading a token's label", &e))?;
        if uri
            .token
            .as_deref()
            .is_none_or(|t| info.label().trim_end() == t)
        {
            found.push(slot);
        }
    }
    let slot = match found.as_slice() {
        [slot] => *slot,
        [] => return Err(fail(uri, "no such token in the module")),
        _ => {
            return Err(fail(
                uri,
                "several tokens match: name one with token= in the URI",
            ))
        }
    };
    let session = context
        .open_rw_session(slot)
        .map_err(|e| token_error(uri, "opening a session", &e))?;
    let auth = AuthPin::from(pin.as_str());
    session
        .login(UserType::User, Some(&auth))
        .map_err(|e| token_error(uri, "logging in", &e))?;
    Ok((context, session))
}

/// The template that finds the URI's objects of `class`.
fn template(uri: &Pkcs11Uri, class: ObjectClass) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(class)];
    if let Some(o) = &uri.object {
        t.push(Attribute::Label(o.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

fn find(session: &Session, uri: &Pkcs11Uri, class: ObjectClass) -> Result<Vec<ObjectHandle>> {
    session
        .find_objects(&template(uri, class))
        .map_err(|e| token_error(uri, "searching the token", &e))
}

/// The RSAPublicKey DER (SEQUENCE of modulus and exponent).
fn rsa_public(uri: &Pkcs11Uri, modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>> {
    let ints = [modulus, exponent]
        .into_iter()
        .map(UintRef::new)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| fail(uri, format!("the token's RSA public key: {e}")))?;
    let mut seq: SequenceOf<UintRef<'_>, 2> = SequenceOf::new();
    for i in ints {
        seq.add(i)
            .map_err(|e| fail(uri, format!("the token's RSA public key: {e}")))?;
    }
    seq.to_der()
        .map_err(|e| fail(uri, format!("the token's RSA public key: {e}")))
}

/// The DER `ECDSA-Sig-Value` of a raw `r || s` signature.
fn ecdsa_der(raw: &[u8]) -> std::result::Result<Vec<u8>, der::Error> {
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut seq: SequenceOf<UintRef<'_>, 2> = SequenceOf::new();
    seq.add(UintRef::new(r)?)?;
    seq.add(UintRef::new(s)?)?;
    seq.to_der()
}

impl TokenKey {
    /// Opens the existing private key the URI names (by `object=` label
    /// and/or `id=`), logging in with `pin`.
    pub fn open(uri: &Pkcs11Uri, pin: &Zeroizing<String>) -> Result<TokenKey> {
        let (context, session) = connect(uri, pin)?;
        let private = match find(&session, uri, ObjectClass::PRIVATE_KEY)?.as_slice() {
            [h] => *h,
            [] => return Err(fail(uri, "no such private key in the token")),
            _ => return Err(fail(uri, "several private keys match: add id= to the URI")),
        };
        // The public half: the public key object of the same label and
        // id (an EC private key does not carry its point).
        let id = session
            .get_attributes(private, &[AttributeType::Id])
            .map_err(|e| token_error(uri, "reading the key's id", &e))?
            .into_iter()
            .find_map(|a| match a {
                Attribute::Id(id) => Some(id),
                _ => None,
            });
        let exact = match id {
            Some(id) if !id.is_empty() => uri.with_id(id),
            _ => uri.clone(),
        };
        let public = match find(&session, &exact, ObjectClass::PUBLIC_KEY)?.as_slice() {
            [h] => *h,
            [] => {
                return Err(fail(
                    uri,
                    "the token has the private key but not its public key object",
                ))
            }
            _ => return Err(fail(uri, "several public keys match: add id= to the URI")),
        };
        Self::from_handles(context, session, uri.clone(), private, public)
    }

    /// Generates a key pair of `key_type` inside the token, labelled with
    /// the URI's `object=` and with its `id=` (random when absent): the
    /// private key `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE`, not
    /// `CKA_EXTRACTABLE`, `CKA_SIGN` (and no decrypt, unwrap or derive).
    /// A key already there with the same label is refused unless
    /// `replace`. The returned key's [`TokenKey::uri`] has the id.
    ///
    /// The new key pair is provisional: call [`TokenKey::keep`] once its
    /// certificate is saved, which also removes the objects it replaces.
    /// Dropped without that, it is removed from the token again.
    pub fn generate(
        uri: &Pkcs11Uri,
        pin: &Zeroizing<String>,
        key_type: KeyType,
        replace: bool,
    ) -> Result<TokenKey> {
        let Some(label) = uri.object.clone() else {
            return Err(fail(uri, "give object= (the new key's label) in the URI"));
        };
        let (context, session) = connect(uri, pin)?;
        let mut by_label = uri.clone();
        by_label.id = None;
        let mut old = Vec::new();
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            old.extend(find(&session, &by_label, class)?);
        }
        if !old.is_empty() && !replace {
            return Err(fail(
                uri,
                "the token already has a key with this label (use --force to replace it)",
            ));
        }
        let id = match &uri.id {
            Some(id) => id.clone(),
            None => session
                .generate_random_vec(16)
                .map_err(|e| token_error(uri, "making a random key id", &e))?,
        };
        let uri = uri.with_id(id.clone());
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ]
        };
        // A CA key signs and does nothing else.
        let mut public_t = common(false);
        public_t.extend([
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
        ]);
        let mut private_t = common(true);
        private_t.extend([
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
        ]);
        let mechanism = match key_type {
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let bits = match key_type {
                    KeyType::Rsa2048 => 2048u64,
                    KeyType::Rsa3072 => 3072,
                    _ => 4096,
                };
                public_t.push(Attribute::ModulusBits(bits.into()));
                public_t.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                Mechanism::RsaPkcsKeyPairGen
            }
            KeyType::EcdsaP256 | KeyType::EcdsaP384 => {
                let oid = if key_type == KeyType::EcdsaP256 {
                    OID_P256
                } else {
                    OID_P384
                };
                let params = oid
                    .to_der()
                    .map_err(|e| fail(&uri, format!("encoding the curve: {e}")))?;
                public_t.push(Attribute::EcParams(params));
                Mechanism::EccKeyPairGen
            }
        };
        let (public, private) = session
            .generate_key_pair(&mechanism, &public_t, &private_t)
            .map_err(|e| token_error(&uri, &format!("generating a {key_type} key pair"), &e))?;
        let pending = Pending {
            new: [private, public],
            replaced: old,
        };
        match Self::from_handles(context, session, uri, private, public) {
            Ok(key) => {
                if let Ok(mut p) = key.pending.lock() {
                    *p = Some(pending);
                }
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    /// Keeps a key pair made by [`TokenKey::generate`] (it is no longer
    /// removed on drop) and removes the objects it replaces. Does nothing
    /// for a key that was opened, or already kept.
    pub fn keep(&self) -> Result<()> {
        let pending = self
            .pending
            .lock()
            .map_err(|_| fail(&self.uri, "the token's session is poisoned"))?
            .take();
        let Some(p) = pending else {
            return Ok(());
        };
        let session = self
            .session
            .lock()
            .map_err(|_| fail(&self.uri, "the token's session is poisoned"))?;
        for h in p.replaced {
            session
                .destroy_object(h)
                .map_err(|e| token_error(&self.uri, "removing the replaced key", &e))?;
        }
        Ok(())
    }

    fn from_handles(
        context: Pkcs11,
        session: Session,
        uri: Pkcs11Uri,
        private: ObjectHandle,
        public: ObjectHandle,
    ) -> Result<TokenKey> {
        let kind = session
            .get_attributes(private, &[AttributeType::KeyType])
            .map_err(|e| token_error(&uri, "reading the key's type", &e))?
            .into_iter()
            .find_map(|a| match a {
                Attribute::KeyType(k) => Some(k),
                _ => None,
            });
        let unsupported = |found: String| Error::UnsupportedKey {
            what: uri.describe(),
            found,
            supported: KEY_TYPE_NAMES,
        };
        let (key_type, public_der) = if kind == Some(CkKeyType::RSA) {
            let attrs = session
                .get_attributes(
                    public,
                    &[AttributeType::Modulus, AttributeType::PublicExponent],
                )
                .map_err(|e| token_error(&uri, "reading the RSA public key", &e))?;
            let mut n = None;
            let mut e = None;
            for a in attrs {
                match a {
                    Attribute::Modulus(m) => n = Some(m),
                    Attribute::PublicExponent(x) => e = Some(x),
                    _ => {}
                }
            }
            let (Some(n), Some(e)) = (n, e) else {
                return Err(fail(&uri, "the token did not give the RSA public key"));
            };
            let significant = n.iter().skip_while(|b| **b == 0).count();
            let kt = match significant * 8 {
                2048 => KeyType::Rsa2048,
                3072 => KeyType::Rsa3072,
                4096 => KeyType::Rsa4096,
                other => return Err(unsupported(format!("rsa-{other}"))),
            };
            (kt, rsa_public(&uri, &n, &e)?)
        } else if kind == Some(CkKeyType::EC) {
            let attrs = session
                .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
                .map_err(|e| token_error(&uri, "reading the EC public key", &e))?;
            let mut params = None;
            let mut point = None;
            for a in attrs {
                match a {
                    Attribute::EcParams(p) => params = Some(p),
                    Attribute::EcPoint(p) => point = Some(p),
                    _ => {}
                }
            }
            let (Some(params), Some(point)) = (params, point) else {
                return Err(fail(&uri, "the token did not give the EC public key"));
            };
            let kt = match ObjectIdentifier::from_der(&params) {
                Ok(o) if o == OID_P256 => KeyType::EcdsaP256,
                Ok(o) if o == OID_P384 => KeyType::EcdsaP384,
                Ok(o) => return Err(unsupported(format!("ECDSA on curve {o}"))),
                Err(_) => return Err(unsupported("ECDSA without a named curve".into())),
            };
            // CKA_EC_POINT is a DER OCTET STRING holding the point; some
            // modules give the bare point.
            let bare = match OctetStringRef::from_der(&point) {
                Ok(os) => os.as_bytes().to_vec(),
                Err(_) => point,
            };
            let len = if kt == KeyType::EcdsaP256 { 65 } else { 97 };
            if bare.len() != len || bare.first() != Some(&0x04) {
                return Err(fail(
                    &uri,
                    "the token's EC point is not an uncompressed point",
                ));
            }
            (kt, bare)
        } else {
            return Err(unsupported("of a type other than RSA or EC".into()));
        };
        Ok(TokenKey {
            session: Mutex::new(session),
            _context: context,
            handle: private,
            key_type,
            public: public_der,
            uri,
            pending: Mutex::new(None),
        })
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The URI of the key (with its `id=`), PIN included only if it was
    /// given as `pin-value=` (its `Display` never shows it).
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.uri
    }

    /// The public key as rcgen wants it (RSAPublicKey DER or EC point).
    pub(crate) fn public_bytes(&self) -> &[u8] {
        &self.public
    }

    /// Signs `msg` with the key type's algorithm (see the module docs).
    pub(crate) fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        use aws_lc_rs::digest;
        let session = self
            .session
            .lock()
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        match self.key_type {
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => session
                .sign(&Mechanism::Sha256RsaPkcs, self.handle, msg)
                .map_err(|_| rcgen::Error::RemoteKeyError),
            KeyType::EcdsaP256 | KeyType::EcdsaP384 => {
                let (alg, len) = if self.key_type == KeyType::EcdsaP256 {
                    (&digest::SHA256, 64)
                } else {
                    (&digest::SHA384, 96)
                };
                let hash = digest::digest(alg, msg);
                let raw = session
                    .sign(&Mechanism::Ecdsa, self.handle, hash.as_ref())
                    .map_err(|_| rcgen::Error::RemoteKeyError)?;
                if raw.len() != len {
                    return Err(rcgen::Error::RemoteKeyError);
                }
                ecdsa_der(&raw).map_err(|_| rcgen::Error::RemoteKeyError)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_signatures_become_der_with_minimal_integers() {
        // r with a high bit (needs a 0x00 pad), s with leading zeros.
        let mut raw = vec![0x80; 32];
        raw.extend([0u8; 31]);
        raw.push(0x05);
        let der = ecdsa_der(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x21, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x05]);
    }
}
