//! `meshca intermediate CLUSTER...`: a cluster's intermediate CA.

use anyhow::Result;

use crate::cli::{Global, IntermediateArgs};
use crate::output::say;

pub(crate) fn run(global: &Global, args: &IntermediateArgs) -> Result<u8> {
    super::check_clusters(&args.clusters)?;
    let key_ref = super::root_key_ref(&args.root_key)?;
    // Bad or refused constraints stop the command before any key is made.
    super::name_constraints(&args.constraints)?;
    // With --force, a cluster being replaced may be broken (a file
    // missing): the new intermediate repairs it.
    let replaced: &[String] = if args.force { &args.clusters } else { &[] };
    let session = super::Session::open_replacing(
        global,
        args.intermediate.root_from_secret.is_some(),
        replaced,
    )?;
    let root = super::signer(&session, global, &args.intermediate, key_ref.as_ref())?;
    if !args.force {
        for c in &args.clusters {
            if session.mesh.clusters.contains_key(c) {
                return Err(meshca::Error::AlreadyExists {
                    path: global.dir.join(c).join(meshca::CA_CERT),
                }
                .into());
            }
        }
    }
    let kt = args.intermediate.key_type.unwrap_or_default();
    let keys = super::labelled_keys(
        &vec![kt; args.clusters.len()],
        args.clusters.clone(),
        global.quiet,
    )?;
    let (mesh, added) = super::add_clusters(
        &session.mesh,
        &root,
        &args.clusters,
        keys,
        &args.intermediate,
        Some(&args.constraints),
        args.force,
    )?;
    let root_written = session.mesh.root.is_none();
    session.commit_for(
        &mesh,
        args.force,
        &args.intermediate.namespace,
        super::checked_trust_domain(&args.constraints),
    )?;
    if root_written {
        say(
            global.quiet,
            format_args!(
                "root: wrote {} (the certificate only)",
                global.dir.join(meshca::ROOT_CERT).display()
            ),
        );
    }
    super::report_added(
        &global.dir,
        &root,
        &added,
        args.intermediate.days,
        global.quiet,
    );
    Ok(crate::EXIT_OK)
}
