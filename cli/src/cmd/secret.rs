//! `meshca secret CLUSTER`: print the `cacerts` Secret YAML.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use clap::ArgMatches;
use meshca::{cacerts_yaml, IntermediateCa, SecretShape};

use crate::cli::SecretArgs;

pub(crate) fn run(args: &SecretArgs, m: &ArgMatches) -> Result<u8> {
    // Only this cluster is read: the others' state does not matter here.
    let _lock = super::read_locks(&[args.dir.as_path()], None)?;
    let yaml_path = args.dir.join(&args.cluster).join(meshca::SECRET_YAML);
    let cluster = &match meshca::store::load_cluster(&args.dir, &args.cluster) {
        // The file this command exists to rewrite must not block it: an
        // unusable cacerts.yaml gives way to the options.
        Err(meshca::Error::BadSecret { what, .. }) if Path::new(&what) == yaml_path => {
            crate::output::warn(format_args!(
                "{} is not a usable Secret: ignored, the Secret below is made from the options",
                yaml_path.display()
            ));
            meshca::store::load_cluster_without_secret(&args.dir, &args.cluster)?
        }
        other => other?,
    };
    // Refuse to package a bundle whose key does not match its certificate
    // or whose chain does not start with it: istiod would refuse it too.
    IntermediateCa::from_bundle(&args.cluster, &cluster.bundle)?;
    // The cluster's own Secret (shape, name, namespace) unless an option
    // says otherwise.
    let mut options = cluster.profile.secret.clone().unwrap_or_default();
    if args.tls_secret {
        options.shape = SecretShape::Tls;
    }
    if super::init::given(m, "namespace") || cluster.profile.secret.is_none() {
        options.namespace = args.namespace.clone();
    }
    if super::init::given(m, "name") || cluster.profile.secret.is_none() {
        options.name = args.name.clone();
    }
    let yaml = cacerts_yaml(&cluster.bundle, &options)?;
    let mut out = std::io::stdout().lock();
    out.write_all(yaml.as_bytes())?;
    out.flush()?;
    Ok(crate::EXIT_OK)
}
