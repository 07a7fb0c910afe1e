//! `meshca man --out DIR`: the manual pages, generated from the clap
//! definitions.

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};

pub(crate) fn run(args: &ManArgs) -> Result<u8> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("could not create {}", args.out.display()))?;
    clap_mangen::generate_to(Cli::command(), &args.out).with_context(|| {
        format!(
            "could not write the manual pages into {}",
            args.out.display()
        )
    })?;
    Ok(crate::EXIT_OK)
}
