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
    let said = meshca::store::recover(dir)?
        .and_then(|r| super::recovered(dir, r))
        .unwrap_or_else(|| format!("{}: no interrupted save to finish", dir.display()));
    say(args.quiet, format_args!("{said}"));
    super::warn_leftovers(dir);
    Ok(crate::EXIT_OK)
}
