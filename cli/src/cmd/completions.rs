//! `meshca completions SHELL`.

use std::io::Write as _;

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

pub(crate) fn run(args: &CompletionsArgs) -> Result<u8> {
    let mut cmd = Cli::command();
    // clap_complete panics when its writer fails: generate into memory,
    // then write, so a closed pipe (`| head`) is an ordinary I/O error.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "meshca", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(crate::EXIT_OK)
}
