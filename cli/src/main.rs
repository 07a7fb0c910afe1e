//! `meshca`: the command-line shell over the `meshca` crate.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

mod cli;
mod cmd;
mod output;

use cli::{Cli, Command};

/// Exit code: every check passed / the command succeeded.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: a check failed, or the command failed.
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit code: the command could not run (bad arguments, unreadable input).
pub(crate) const EXIT_USAGE: u8 = 2;

/// No core dumps, no ptrace by other processes of the same user: the
/// process may hold private keys.
fn protect_process() {
    let none = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    let _ = rustix::process::setrlimit(rustix::process::Resource::Core, none);
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
}

fn main() -> ExitCode {
    protect_process();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let result = match &cli.command {
        Command::Init(args) => cmd::init::run(&cli.global, args),
        Command::Root(args) => cmd::root::run(&cli.global, args),
        Command::Intermediate(args) => cmd::intermediate::run(&cli.global, args),
        Command::Workload(args) => cmd::workload::run(&cli.global, args),
        Command::Secret(args) => cmd::secret::run(&cli.global, args),
        Command::Revoke(args) => cmd::revoke::run(&cli.global, args),
        Command::Crl(args) => cmd::crl::run(&cli.global, args),
        Command::Rotate(args) => cmd::rotate::run(&cli.global, args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Completions(args) => cmd::completions::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "meshca: error: {err}");
            for cause in err.chain().skip(1) {
                let _ = writeln!(stderr, "  caused by: {cause}");
            }
            let code = match err.downcast_ref::<meshca::Error>() {
                Some(meshca::Error::InvalidArgument { .. } | meshca::Error::Passphrase { .. }) => {
                    EXIT_USAGE
                }
                _ if matches!(cli.command, Command::Verify(_) | Command::Inspect(_)) => EXIT_USAGE,
                _ => EXIT_FAILED,
            };
            ExitCode::from(code)
        }
    }
}
