//! Results of pure checks, remembered for the life of the process.
//!
//! A mesh repeats the same certificates: every cluster carries the same
//! root (in `root-cert.pem`, in `cert-chain.pem`, in the Secret), the mesh
//! stage meets each cluster's CA again, and a command verifies the mesh
//! before and after its change. A check that is a pure function of bytes
//! (a signature by a key, Go's and Envoy's parse of a DER) is run once per
//! input: its answer is kept under a SHA-256 of what it was asked about
//! (each part length-prefixed, then the kind of check). The memo is
//! bounded and starts over when full.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Entries the memo holds before it starts over.
const MEMO_ENTRIES: usize = 1 << 17;

/// What was checked.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// A certificate's signature by its own key (the DER's digest).
    SelfSignature = 1,
    /// A certificate's signature by a given key (the DER's digest, then
    /// the key's SPKI).
    Signature = 2,
    /// A certificate (the DER's digest) has no finding of its own (parse
    /// stage), as a root.
    CleanRoot = 3,
    /// The same, as a CA or intermediate.
    CleanCert = 4,
    /// A private key (PEM label, then DER) whose public half is a given
    /// SubjectPublicKeyInfo: remembered when the key is made or read, so
    /// the check of a mesh before it is saved does not parse again the
    /// keys the command just made.
    KeyPair = 5,
}

/// SHA-256 of a certificate's DER: the memo's keys name a certificate by
/// it (a key is a hash of short parts, not of the whole DER again for
/// every check of every copy).
pub(crate) fn der_digest(der: &[u8]) -> [u8; 32] {
    let mut d = [0u8; 32];
    d.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref());
    d
}

/// The memo's key for `kind` and `parts`.
pub(super) fn key(kind: Kind, parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    ctx.update(&[kind as u8]);
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

type Memo = HashMap<[u8; 32], bool>;

fn memo() -> &'static Mutex<Memo> {
    static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The answer remembered under `key`, if any.
pub(super) fn get(key: &[u8; 32]) -> Option<bool> {
    memo().lock().ok().and_then(|m| m.get(key).copied())
}

/// Remembers `answer` under `key`.
pub(super) fn put(key: [u8; 32], answer: bool) {
    if let Ok(mut m) = memo().lock() {
        if m.len() >= MEMO_ENTRIES {
            m.clear();
        }
        m.insert(key, answer);
    }
}

/// Remembers that the private key `der`, read under the PEM label `tag`,
/// has the public half `spki`.
pub(crate) fn remember_key_pair(tag: &str, der: &[u8], spki: &[u8]) {
    put(key(Kind::KeyPair, &[tag.as_bytes(), der, spki]), true);
}

/// Whether the private key `der` (PEM label `tag`) is known to have the
/// public half `spki`. `false` means not known, not a mismatch.
pub(crate) fn known_key_pair(tag: &str, der: &[u8], spki: &[u8]) -> bool {
    get(&key(Kind::KeyPair, &[tag.as_bytes(), der, spki])) == Some(true)
}

/// `check()`, or the answer it gave before for the same `kind` and `parts`.
pub(crate) fn remembered(kind: Kind, parts: &[&[u8]], check: impl FnOnce() -> bool) -> bool {
    let key = key(kind, parts);
    if let Some(answer) = get(&key) {
        return answer;
    }
    let answer = check();
    put(key, answer);
    answer
}
