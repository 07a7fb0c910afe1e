//! `meshca crl CLUSTER...`: write each cluster's `ca-crl.pem`.

use anyhow::Result;

use crate::cli::{CrlArgs, Global};
use crate::output::say;

pub(crate) fn run(global: &Global, args: &CrlArgs) -> Result<u8> {
    super::check_clusters(&args.clusters)?;
    let key_ref = super::root_key_ref(&args.root_key)?;
    let session = super::Session::open(global, false)?;
    // Every cluster is checked before anything is signed or written.
    session.mesh.check_clusters(&args.clusters)?;
    let root = super::mesh_signer(&global.dir, &session.mesh, global, key_ref.as_ref())?;
    let now = time::OffsetDateTime::now_utc();
    let mesh = session
        .mesh
        .write_crls(&root, &args.clusters, now, args.next_update_days)?;
    let new_root_crl = session.mesh.root_crl.is_none();
    session.commit(&mesh, true, super::ISTIOD_NAMESPACE)?;
    if new_root_crl {
        say(
            global.quiet,
            format_args!(
                "root: wrote {}",
                global.dir.join(meshca::ROOT_CRL).display()
            ),
        );
    }
    for cluster in &args.clusters {
        let secret = mesh
            .clusters
            .get(cluster)
            .is_some_and(|c| c.secret_yaml.is_some());
        say(
            global.quiet,
            format_args!(
                "{cluster}: wrote {}{}",
                global.dir.join(cluster).join(meshca::CA_CRL).display(),
                if secret {
                    " and updated cacerts.yaml"
                } else {
                    ""
                }
            ),
        );
    }
    Ok(crate::EXIT_OK)
}
