//! `meshca revoke CLUSTER`: revoke a cluster's intermediate in the root's CRL.

use anyhow::Result;

use crate::cli::{Global, RevokeArgs};
use crate::output::say;

pub(crate) fn run(global: &Global, args: &RevokeArgs) -> Result<u8> {
    let key_ref = super::root_key_ref(&args.root_key)?;
    let session = super::Session::open(global, false)?;
    session.mesh.cluster(&args.cluster)?;
    let root = super::mesh_signer(&global.dir, &session.mesh, global, key_ref.as_ref())?;
    let now = time::OffsetDateTime::now_utc();
    let (mesh, updated) = session.mesh.revoke(
        &root,
        &args.cluster,
        args.reason,
        now,
        args.next_update_days,
    )?;
    session.commit(&mesh, true, super::ISTIOD_NAMESPACE)?;
    say(
        global.quiet,
        format_args!(
            "revoked {}'s intermediate ({}) in {}",
            args.cluster,
            args.reason,
            global.dir.join(meshca::ROOT_CRL).display()
        ),
    );
    for cluster in updated {
        say(
            global.quiet,
            format_args!("{cluster}: ca-crl.pem and cacerts.yaml updated; re-apply its Secret"),
        );
    }
    Ok(crate::EXIT_OK)
}
