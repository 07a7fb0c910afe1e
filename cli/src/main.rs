//! `meshca`: the command-line shell over the `meshca` crate.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

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

/// mimalloc instead of the system allocator: a run allocates and frees
/// the files of every cluster on several threads, where it saves about a
/// third of `verify`'s CPU (README, Dependencies).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    protect_process();
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return clap_exit(&e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    let sub = matches
        .subcommand()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    let result = match &cli.command {
        Command::Init(args) => cmd::init::run(&args.global, args, &sub),
        Command::Root(args) => cmd::root::run(&args.global, args),
        Command::Intermediate(args) => cmd::intermediate::run(&args.global, args),
        Command::Workload(args) => cmd::workload::run(&args.global, args),
        Command::Secret(args) => cmd::secret::run(args, &sub),
        Command::Revoke(args) => cmd::revoke::run(&args.global, args),
        Command::Crl(args) => cmd::crl::run(&args.global, args),
        Command::Recover(args) => cmd::recover::run(args),
        Command::Rotate(args) => cmd::rotate::run(&args.global, args, &sub),
        Command::Renew(args) => cmd::renew::run(&args.global, args),
        Command::Status(args) => cmd::status::run(args),
        Command::Verify(args) => cmd::verify::run(args, args.quiet),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Bundle(args) => cmd::bundle::run(args, &sub),
        Command::Completions(args) => cmd::completions::run(args),
        Command::Man(args) => cmd::man::run(args),
        Command::Plan(args) => cmd::plan::run(args),
        Command::Apply(args) => cmd::apply::run(&args.global, args),
        Command::Audit(args) => cmd::audit::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if is_broken_pipe(&err) {
                // The reader went away (`| head`): not an error.
                return ExitCode::from(EXIT_OK);
            }
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(
                stderr,
                "meshca: error: {}",
                output::printable(&err.to_string())
            );
            let mut shown = err.to_string();
            for cause in err.chain().skip(1) {
                let text = cause.to_string();
                // An error that already quotes its cause (`PATH: No space
                // left on device`) is not followed by the cause again.
                if !shown.contains(&text) {
                    let _ = writeln!(stderr, "  caused by: {}", output::printable(&text));
                }
                shown = text;
            }
            let lib = err.downcast_ref::<meshca::Error>();
            if let Some(h) = lib.and_then(|e| hint(e, &cli)) {
                let _ = writeln!(stderr, "  hint: {h}");
            }
            if err.downcast_ref::<meshca::plan::MeshFileError>().is_some() {
                return ExitCode::from(EXIT_USAGE);
            }
            if err.downcast_ref::<cmd::SaveFailed>().is_some() {
                return ExitCode::from(EXIT_FAILED);
            }
            ExitCode::from(exit_code(lib, &cli.command))
        }
    }
}

fn clap_exit(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK })
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// 2: bad arguments, or input missing or unreadable; 1: the command (or a
/// check) refused or failed.
fn exit_code(err: Option<&meshca::Error>, command: &Command) -> u8 {
    use meshca::Error as E;
    match err {
        Some(
            E::InvalidArgument { .. }
            | E::Passphrase { .. }
            | E::UnknownCluster { .. }
            | E::MissingFile { .. }
            | E::NotRegularFile { .. }
            | E::TooLarge { .. }
            | E::Pem { .. }
            | E::BadSecret { .. }
            | E::BadCertificate { .. }
            | E::EncryptedKey { .. }
            | E::KeyRef { .. }
            | E::Pkcs11 { .. }
            | E::Io { .. },
        ) => EXIT_USAGE,
        _ if matches!(command, Command::Verify(_) | Command::Inspect(_)) => EXIT_USAGE,
        _ => EXIT_FAILED,
    }
}

/// What the operator can do about a library error (the library itself
/// gives none).
fn hint(err: &meshca::Error, cli: &Cli) -> Option<String> {
    use meshca::Error as E;
    match err {
        E::AlreadyExists { path } => {
            let root = path
                .file_name()
                .is_some_and(|n| n == meshca::ROOT_CERT || n == meshca::ROOT_KEY)
                && path.parent().is_some_and(|p| Some(p) == cli.command.dir());
            Some(if root {
                "use --force to replace the root; a new root orphans every cluster: each must then be \
                 re-issued (`meshca intermediate --force`) or rotated (`meshca rotate`)"
                    .to_owned()
            } else {
                "use --force to overwrite it".to_owned()
            })
        }
        E::WouldNotVerify { errors }
            if errors.iter().any(|e| e.contains(meshca::ALREADY_SO))
                && !matches!(cli.command, Command::Root(_)) =>
        {
            Some(
                concat!(
                    "the mesh had errors before this command, and a command saves only a mesh ",
                    "that verifies: fix them first (`meshca verify` lists them) or in the same ",
                    "command (`meshca renew` renews every cluster due), or pass ",
                    "--allow-existing-errors to save this change anyway"
                )
                .to_owned(),
            )
        }
        E::WouldNotVerify { .. } if matches!(cli.command, Command::Root(_)) => Some(
            "a new root orphans every cluster of the mesh: make it in another directory \
             (`meshca root --dir NEW`) and move the clusters with `meshca rotate`"
                .to_owned(),
        ),
        E::MissingFile { path, .. }
            if path.file_name().is_some_and(|n| n == meshca::ROOT_KEY)
                && path
                    .parent()
                    .is_some_and(|d| d.join(meshca::ROOT_CERT).exists()) =>
        {
            // A root certificate without its key (a rotation stage, or a
            // mesh signed from a Secret): `meshca root` would refuse.
            Some(
                "this directory holds root-cert.pem but not the root's key (a rotation stage \
                 or a copy): run the command in the root's own certs directory, name the key \
                 with --root-key FILE or --root-key pkcs11:URI, or sign with --root-from-secret \
                 FILE where the command has it"
                    .to_owned(),
            )
        }
        E::MissingFile { path, .. }
            if path.file_name().is_some_and(|n| n == meshca::ROOT_CERT)
                && path
                    .parent()
                    .is_some_and(|d| d.join(meshca::ROOT_KEY).exists()) =>
        {
            // The root's key without its certificate: `meshca root` would
            // stop at the same missing file, and the key is worth keeping.
            Some(
                "root-key.pem is there but its certificate is not: copy root-cert.pem back \
                 from a backup or from any cluster directory (CLUSTER/root-cert.pem)"
                    .to_owned(),
            )
        }
        E::MissingFile { path, .. }
            if path
                .file_name()
                .is_some_and(|n| n == meshca::ROOT_CERT || n == meshca::ROOT_KEY) =>
        {
            Some("create the root first with `meshca root` (or `meshca init`)".to_owned())
        }
        _ => None,
    }
}
