//! `meshca rotate --new-root DIR2 --out OUT`: the stages of a root rotation.

use anyhow::Result;
use meshca::CertsDir;

use crate::cli::{Global, RotateArgs};
use crate::output::say;

pub(crate) fn run(global: &Global, args: &RotateArgs) -> Result<u8> {
    let certs = CertsDir::new(&global.dir);
    let clusters = if args.clusters.is_empty() {
        certs.clusters()?
    } else {
        super::check_clusters(&args.clusters)?;
        args.clusters.clone()
    };
    if clusters.is_empty() {
        anyhow::bail!(
            "{}: no cluster directories to rotate",
            certs.path().display()
        );
    }
    let new = CertsDir::new(&args.new_root);
    let new_root = super::load_root(&new, global)?;
    let params = super::intermediate_params(&args.intermediate);
    let keys = super::keys(&vec![params.key_type; clusters.len()], global.quiet)?;
    let stages = certs.write_rotation(
        &new_root,
        &args.out,
        &clusters,
        &params,
        keys,
        time::OffsetDateTime::now_utc(),
        args.force,
    )?;
    for (n, dir) in stages.iter().enumerate() {
        say(
            global.quiet,
            format_args!(
                "stage {}: {} ({} clusters)",
                n + 1,
                dir.display(),
                clusters.len()
            ),
        );
    }
    say(
        global.quiet,
        format_args!(
            "apply stage by stage; check each with `meshca verify --previous <earlier stage> <stage>`"
        ),
    );
    Ok(crate::EXIT_OK)
}
