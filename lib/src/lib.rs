//! meshca: an offline PKI toolkit for the CA hierarchy of a multi-cluster
//! service mesh (Istio's "plug in CA certificates").
//!
//! One root CA, kept offline, signs one intermediate CA per cluster; each
//! cluster's istiod loads its intermediate from the `cacerts` Secret and
//! signs workload certificates with it. Because every intermediate chains
//! to the same root, workloads trust each other across clusters.
//!
//! Everything here works in memory except [`store`], which loads a
//! [`Mesh`] from a certs directory and saves one back (all files or none,
//! under the directory's lock), and the directory readers of [`verify`].
//! The modules, from the top down:
//!
//! - [`mesh`]: a certs directory held in memory ([`Mesh`]) and the
//!   workflows over it (add clusters, re-issue, renew, revoke, CRLs,
//!   rotation stages, workloads), each returning a new mesh or a typed
//!   error, and the verify-before-write check ([`Mesh::check_against`]);
//! - [`status`]: expiry and state of the root, every intermediate and
//!   CRL, as text, JSON or Prometheus metrics;
//! - [`plan`]: the declarative mesh: a mesh file, the plan that makes a
//!   mesh match it and its application in memory, and the audit of what a
//!   cluster really holds;
//! - [`store`]: loading and saving a mesh, the directory lock, leftover
//!   temporary files;
//! - [`verify`]: findings about bundles and meshes, as istiod, Go's
//!   crypto/x509 and Envoy judge them;
//! - [`issue`] (signing), [`crl`], [`secret`] (the `cacerts` Secret),
//!   [`bundle`] (a cluster's four documents), [`key`], [`profile`] (what
//!   each certificate should be), [`inspect`].
//!
//! The everyday types are also re-exported at the crate root.
//!
//! ```
//! use meshca::{cacerts_yaml, IntermediateParams, KeyType, PrivateKey, RootCa, RootParams,
//!              SecretOptions};
//!
//! let now = time::OffsetDateTime::now_utc();
//! let mut root_params = RootParams::default();
//! root_params.key_type = KeyType::EcdsaP256; // the default is RSA 4096, as the recipe
//! let root = RootCa::generate(&root_params, now)?;
//!
//! let key = PrivateKey::generate(KeyType::EcdsaP256)?;
//! let issued = root.issue_intermediate("cluster1", &IntermediateParams::default(), key, now)?;
//! let bundle = issued.ca.bundle();
//! assert!(bundle.cert_chain.starts_with(&bundle.ca_cert));
//! assert!(bundle.cert_chain.ends_with(&bundle.root_cert));
//!
//! let yaml = cacerts_yaml(&bundle, &SecretOptions::default())?;
//! assert!(yaml.contains("name: cacerts"));
//! # Ok::<(), meshca::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod bundle;
pub mod crl;
mod error;
mod files;
mod goparse;
pub mod inspect;
pub mod issue;
pub mod key;
pub mod keyref;
pub mod mesh;
mod pemutil;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod plan;
pub mod profile;
pub mod secret;
pub mod status;
pub mod store;
pub mod trust_bundle;
pub mod verify;

pub use bundle::{
    ClusterBundle, CA_CERT, CA_CRL, CA_KEY, CERT_CHAIN, ROOT_CERT, ROOT_KEY, SECRET_YAML,
};
pub use crl::{Reason, Revocation, DEFAULT_CRL_DAYS, REASON_NAMES, ROOT_CRL};
pub use error::{Error, Result};
pub use files::{read_limited, read_named};
pub use inspect::{inspect_pem, CertSummary, CrlSummary, Item, KeySummary};
pub use issue::{IntermediateCa, IssuedIntermediate, RootCa, Workload, SERIAL_LEN};
pub use key::{KeyFormat, PrivateKey};
pub use keyref::{KeyRef, Pkcs11Uri, ROOT_KEY_URI};
pub use mesh::{generate_keys, ExistingErrors, Mesh, ALREADY_SO};
pub use pemutil::{certificate_pem, certificates, concat as concat_pem, MAX_PEM_BYTES};
pub use profile::{
    validate_name, IntermediateParams, KeyType, NameConstraints, RootParams, WorkloadParams,
    DEFAULT_BACKDATE, DEFAULT_TRUST_DOMAIN, KEY_TYPE_NAMES,
};
pub use secret::{cacerts_yaml, SecretData, SecretOptions, SecretShape, MAX_SECRET_BYTES};
pub use status::Status;
pub use trust_bundle::{
    trust_bundle, TrustBundleFormat, TrustBundleOptions, TRUST_BUNDLE_FORMAT_NAMES,
};
pub use verify::{
    verify_bundle, verify_certs_dir, verify_cluster_dir, verify_mesh, verify_mesh_step,
    verify_paths, verify_step, BundleFiles, Code, Finding, Group, GroupKind, MeshFiles, Report,
    Severity, VerifyOptions,
};

/// Internal entry points for the fuzz targets in `fuzz/` (cargo feature
/// `fuzzing`). Not part of the public API: no stability promise.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    /// Go's `x509.ParseCertificate` verdict on certificate DER: `Err` holds
    /// Go's reason.
    pub fn go_parse_certificate(der: &[u8]) -> Result<(), &'static str> {
        crate::goparse::check_certificate(der).map_err(|e| e.reason())
    }

    /// Go's `x509.ParseRevocationList` verdict on CRL DER: `Err` holds Go's
    /// reason.
    pub fn go_parse_crl(der: &[u8]) -> Result<(), &'static str> {
        crate::goparse::check_crl(der).map_err(|e| e.reason())
    }

    /// Whether the Secret reader's fast way (a document in meshca's own
    /// layout) and its YAML reader agree on `text`: the fast way declines,
    /// or both read the same Secret.
    pub fn secret_readers_agree(text: &[u8]) -> bool {
        crate::secret::readers_agree(text)
    }
}

// The README's Rust examples are compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
