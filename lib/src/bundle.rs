//! A cluster's four PEM documents, as istiod reads them from `cacerts`
//! (the store reads and writes them: [`crate::store`]).

use std::fmt;

use zeroize::Zeroizing;

/// `ca-cert.pem`: the cluster's intermediate CA certificate.
pub const CA_CERT: &str = "ca-cert.pem";
/// `ca-key.pem`: its private key.
pub const CA_KEY: &str = "ca-key.pem";
/// `cert-chain.pem`: `ca-cert.pem` followed by the certificates up to the root.
pub const CERT_CHAIN: &str = "cert-chain.pem";
/// `root-cert.pem`: the mesh's root certificate(s).
pub const ROOT_CERT: &str = "root-cert.pem";
/// `root-key.pem`: the root's private key (in the certs directory only).
pub const ROOT_KEY: &str = "root-key.pem";
/// `ca-crl.pem`: the CRLs of the chain's CAs (Istio 1.27+, optional).
pub const CA_CRL: &str = "ca-crl.pem";
/// `cacerts.yaml`: the `cacerts` Secret for the cluster.
pub const SECRET_YAML: &str = "cacerts.yaml";

/// The four PEM documents of a cluster's `cacerts` Secret.
///
/// `Debug` shows the certificates' sizes, never the key.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterBundle {
    /// `ca-cert.pem`.
    pub ca_cert: String,
    /// `ca-key.pem`, zeroized on drop.
    pub ca_key: Zeroizing<String>,
    /// `cert-chain.pem`.
    pub cert_chain: String,
    /// `root-cert.pem`.
    pub root_cert: String,
    /// `ca-crl.pem`, when the cluster uses CRLs (Istio 1.27+).
    pub ca_crl: Option<String>,
}

impl fmt::Debug for ClusterBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterBundle")
            .field("ca_cert", &format_args!("{} bytes", self.ca_cert.len()))
            .field("ca_key", &"[secret key elided]")
            .field(
                "cert_chain",
                &format_args!("{} bytes", self.cert_chain.len()),
            )
            .field("root_cert", &format_args!("{} bytes", self.root_cert.len()))
            .field("ca_crl", &self.ca_crl.as_ref().map(String::len))
            .finish()
    }
}

impl ClusterBundle {
    /// A bundle from its four documents.
    pub fn new(
        ca_cert: String,
        ca_key: Zeroizing<String>,
        cert_chain: String,
        root_cert: String,
    ) -> Self {
        ClusterBundle {
            ca_cert,
            ca_key,
            cert_chain,
            root_cert,
            ca_crl: None,
        }
    }

    /// The same bundle with `ca-crl.pem`.
    pub fn with_crl(mut self, ca_crl: Option<String>) -> Self {
        self.ca_crl = ca_crl;
        self
    }

    /// The documents with their file names, the key marked secret.
    pub fn documents(&self) -> Vec<(&'static str, &[u8], bool)> {
        let mut docs = vec![
            (CA_CERT, self.ca_cert.as_bytes(), false),
            (CA_KEY, self.ca_key.as_bytes(), true),
            (CERT_CHAIN, self.cert_chain.as_bytes(), false),
            (ROOT_CERT, self.root_cert.as_bytes(), false),
        ];
        if let Some(crl) = &self.ca_crl {
            docs.push((CA_CRL, crl.as_bytes(), false));
        }
        docs
    }
}
