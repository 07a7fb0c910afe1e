//! `meshca intermediate CLUSTER...`: a cluster's intermediate CA.

use anyhow::Result;
use meshca::CertsDir;

use crate::cli::{Global, IntermediateArgs};

pub(crate) fn run(global: &Global, args: &IntermediateArgs) -> Result<u8> {
    super::check_clusters(&args.clusters)?;
    let certs = CertsDir::new(&global.dir);
    let root = super::root_for(&certs, global, &args.intermediate)?;
    if !args.force {
        certs.refuse_existing_clusters(&args.clusters)?;
    }
    let kt = args.intermediate.key_type.unwrap_or_default();
    let keys = super::labelled_keys(
        &vec![kt; args.clusters.len()],
        args.clusters.clone(),
        global.quiet,
    )?;
    super::issue_clusters(
        &certs,
        &root,
        &args.clusters,
        keys,
        &args.intermediate,
        args.force,
        global.quiet,
    )?;
    Ok(crate::EXIT_OK)
}
