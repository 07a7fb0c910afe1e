//! `meshca revoke CLUSTER`: revoke a cluster's intermediate in the root's CRL.

use anyhow::Result;
use meshca::CertsDir;

use crate::cli::{Global, RevokeArgs};
use crate::output::say;

pub(crate) fn run(global: &Global, args: &RevokeArgs) -> Result<u8> {
    let certs = CertsDir::new(&global.dir);
    let root = super::load_root(&certs, global)?;
    let now = time::OffsetDateTime::now_utc();
    let updated = certs.revoke(
        &root,
        &args.cluster,
        args.reason,
        now,
        args.next_update_days,
    )?;
    say(
        global.quiet,
        format_args!(
            "revoked {}'s intermediate ({}) in {}",
            args.cluster,
            args.reason,
            certs.root_crl_path().display()
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
