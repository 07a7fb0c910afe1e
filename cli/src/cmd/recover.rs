//! `meshca recover`: finish a save a crash cut short.

use anyhow::Result;

use crate::cli::ReadDir;
use crate::output::say;

pub(crate) fn run(args: &ReadDir) -> Result<u8> {
    let dir = args.dir.as_path();
    if std::fs::symlink_metadata(dir).is_err() {
        return Err(meshca::Error::MissingFile {
            path: dir.to_owned(),
            hint: String::new(),
        }
        .into());
    }
    let _lock = meshca::store::DirLock::acquire(dir, &|path| {
        crate::output::warn(format_args!(
            "waiting for {}: another meshca run is changing {}",
            path.display(),
            dir.display()
        ))
    })?;
    match meshca::store::recover(dir)? {
        Some(meshca::store::Recovered::Finished { files }) => {
            say(
                args.quiet,
                format_args!(
                    "{}: finished a save that was interrupted ({files} file{})",
                    dir.display(),
                    if files == 1 { "" } else { "s" }
                ),
            );
        }
        Some(meshca::store::Recovered::Undone { files }) => {
            say(
                args.quiet,
                format_args!(
                    "{}: undid a failed save that was interrupted ({files} file{}); the directory is as before it",
                    dir.display(),
                    if files == 1 { "" } else { "s" }
                ),
            );
        }
        Some(_) | None => {
            say(
                args.quiet,
                format_args!("{}: no interrupted save to finish", dir.display()),
            );
        }
    }
    super::warn_leftovers(dir);
    Ok(crate::EXIT_OK)
}
