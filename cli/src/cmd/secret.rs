//! `meshca secret CLUSTER`: print the `cacerts` Secret YAML.

use std::io::Write;

use anyhow::Result;
use meshca::{cacerts_yaml, CertsDir, IntermediateCa};

use crate::cli::{Global, SecretArgs};

pub(crate) fn run(global: &Global, args: &SecretArgs) -> Result<u8> {
    let certs = CertsDir::new(&global.dir);
    let bundle = certs.read_cluster(&args.cluster)?;
    // Refuse to package a bundle whose key does not match its certificate
    // or whose chain does not start with it: istiod would refuse it too.
    IntermediateCa::from_bundle(&args.cluster, &bundle)?;
    let mut options = super::secret_options(&args.namespace, args.tls);
    options.name = args.name.clone();
    let yaml = cacerts_yaml(&bundle, &options)?;
    let mut out = std::io::stdout().lock();
    out.write_all(yaml.as_bytes())?;
    out.flush()?;
    Ok(crate::EXIT_OK)
}
