//! `meshca man --out DIR`: the manual pages, generated from the clap
//! definitions.

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};

pub(crate) fn run(args: &ManArgs) -> Result<u8> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("could not create {}", args.out.display()))?;
    let failed = || {
        format!(
            "could not write the manual pages into {}",
            args.out.display()
        )
    };
    // The pages are written into a private directory inside DIR, then
    // renamed into place: a rename replaces a symbolic link planted at
    // DIR/meshca.1 instead of writing through it to where it points (DIR
    // may be shared, such as /tmp), and a failed run leaves no half page.
    let staging = tempfile::Builder::new()
        .prefix(".meshca-man-")
        .tempdir_in(&args.out)
        .with_context(failed)?;
    clap_mangen::generate_to(Cli::command(), staging.path()).with_context(failed)?;
    let mut pages: Vec<_> = std::fs::read_dir(staging.path())
        .with_context(failed)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .with_context(failed)?;
    pages.sort();
    for name in pages {
        let to = args.out.join(&name);
        std::fs::rename(staging.path().join(&name), &to)
            .with_context(|| format!("could not write {}", to.display()))?;
    }
    Ok(crate::EXIT_OK)
}
