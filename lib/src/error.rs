//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in meshca.
///
/// Variants carry the context an operator needs to act: which file, which
/// certificate, what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A save renamed every file (the directory holds the new mesh) but
    /// flushing the directories to disk then failed: a power loss now
    /// could bring back some old entries.
    #[error("{path}: the files were saved, but flushing them to disk failed ({source}); run `sync` and `meshca verify` before relying on them")]
    NotFlushed {
        /// The directory that could not be flushed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file that must exist is missing.
    #[error("{path}: file not found{hint}")]
    MissingFile {
        /// The missing file.
        path: PathBuf,
        /// Extra advice (starts with "; " when non-empty).
        hint: String,
    },

    /// A file exists where meshca would write, and `force` was not given.
    #[error("{path} already exists")]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// A path that must be a regular file is something else (a symbolic
    /// link, which is never followed, a FIFO, a device, a socket).
    #[error("{path}: is {kind}, not a regular file")]
    NotRegularFile {
        /// The path concerned.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },

    /// A cluster named in a command does not exist in the mesh.
    #[error("no cluster {name:?}{}", known_list(.known))]
    UnknownCluster {
        /// The name given.
        name: String,
        /// The clusters that exist, nearest to `name` first.
        known: Vec<String>,
    },

    /// A workflow refuses to run: it would leave a mesh istiod or `verify`
    /// rejects, or would overwrite something it must not.
    #[error("{what}: {reason}")]
    Refused {
        /// What is concerned (a file, a cluster, the root).
        what: String,
        /// Why.
        reason: String,
    },

    /// The mesh a command would write does not verify: nothing was changed.
    #[error("the result would not verify, nothing was changed:{}", bullet_list(.errors))]
    WouldNotVerify {
        /// The error findings of the new mesh (file and problem).
        errors: Vec<String>,
    },

    /// A document is not PEM, or holds no block of the expected kind.
    #[error("{what}: {problem}")]
    Pem {
        /// The file (or document name) concerned.
        what: String,
        /// What is wrong with it.
        problem: String,
    },

    /// An input is larger than meshca accepts.
    #[error("{what}: {size} bytes is larger than the {limit}-byte limit")]
    TooLarge {
        /// The file (or document name) concerned.
        what: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// A certificate could not be parsed.
    #[error("{what}: not a valid X.509 certificate: {reason}")]
    BadCertificate {
        /// The file (or document name) concerned.
        what: String,
        /// Parser's explanation.
        reason: String,
    },

    /// A private key could not be parsed or used.
    #[error("{what}: {reason}")]
    BadKey {
        /// The file (or document name) concerned.
        what: String,
        /// What is wrong with the key.
        reason: String,
    },

    /// A private key is encrypted; meshca needs it in the clear here.
    #[error(
        "{what}: the private key is encrypted; istiod and meshca need an unencrypted key here"
    )]
    EncryptedKey {
        /// The file (or document name) concerned.
        what: String,
    },

    /// A key does not belong to the certificate it is paired with.
    #[error("{key} does not match {cert}")]
    KeyMismatch {
        /// The key file.
        key: String,
        /// The certificate file.
        cert: String,
    },

    /// A key type meshca does not support (or istiod would reject).
    #[error("{what}: unsupported key {found}; supported: {supported}")]
    UnsupportedKey {
        /// The file (or document name) concerned.
        what: String,
        /// The key found.
        found: String,
        /// The supported key types.
        supported: &'static str,
    },

    /// A certificate meant to issue others is not usable as a CA.
    #[error("{what}: cannot issue certificates: {reason}")]
    NotACa {
        /// The file (or document name) concerned.
        what: String,
        /// Why not.
        reason: String,
    },

    /// An option or name has a value meshca refuses.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidArgument {
        /// Which option or name.
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },

    /// A passphrase could not be had, or is unusable.
    #[error("{reason}")]
    Passphrase {
        /// What went wrong (names the key file).
        reason: String,
    },

    /// A Kubernetes Secret document could not be read.
    #[error("{what}: not a usable Secret: {reason}")]
    BadSecret {
        /// The file (or document name) concerned.
        what: String,
        /// What is wrong.
        reason: String,
    },

    /// A `--root-key` reference (a file path or a `pkcs11:` URI) is
    /// malformed. The message never quotes a value from it.
    #[error("invalid root key reference: {reason}")]
    KeyRef {
        /// What is wrong.
        reason: String,
    },

    /// A PKCS#11 token or key could not be used: the module would not
    /// load, no token or key matches, the PIN was refused, the token
    /// failed. Names the token and key, never the PIN.
    #[error("{what}: {reason}")]
    Pkcs11 {
        /// The key, as [`crate::keyref::Pkcs11Uri::describe`] names it.
        what: String,
        /// What went wrong.
        reason: String,
    },

    /// Certificate generation or signing failed in the crypto layer.
    #[error("{what}: {source}")]
    Signing {
        /// What was being made.
        what: String,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "; there are no clusters".to_owned()
    } else {
        format!("; clusters: {}", known.join(", "))
    }
}

fn bullet_list(items: &[String]) -> String {
    items.iter().map(|i| format!("\n  {i}")).collect()
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn signing(what: impl Into<String>, source: rcgen::Error) -> Self {
        Error::Signing {
            what: what.into(),
            source,
        }
    }
}
