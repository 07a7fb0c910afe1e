//! `meshca status`: expiry and state of the root, every intermediate and
//! every CRL, as text, JSON or Prometheus metrics.

use std::io::Write;

use anyhow::Result;
use meshca::{Status, VerifyOptions};

use crate::cli::{StatusArgs, StatusFormat};

pub(crate) fn run(args: &StatusArgs) -> Result<u8> {
    super::renew::refuse_cluster_dir("--dir", &args.dir)?;
    // No meshca run renames files while they are read.
    let _locks = super::read_locks(&[args.dir.as_path()], None)?;
    if std::fs::symlink_metadata(&args.dir).is_err() {
        return Err(meshca::Error::MissingFile {
            path: args.dir.clone(),
            hint: String::new(),
        }
        .into());
    }
    // A cluster directory that cannot be loaded (a file missing) is
    // reported as invalid, not a reason to report nothing: a metrics file
    // must keep coming.
    let entries: Vec<std::fs::DirEntry> = std::fs::read_dir(&args.dir)
        .map_err(|e| meshca::Error::Io {
            path: args.dir.clone(),
            source: e,
        })?
        .flatten()
        .collect();
    let cluster_name = |e: &std::fs::DirEntry| {
        e.file_name()
            .to_str()
            .filter(|n| meshca::validate_name("cluster name", n).is_ok())
            .map(str::to_owned)
    };
    // DirEntry::file_type does not follow a symbolic link.
    let subdirs: Vec<String> = entries
        .iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(cluster_name)
        .collect();
    // A cluster directory that is a symbolic link is not followed (so not
    // loaded), and `meshca verify` fails on it: invalid, never left out.
    let links = entries
        .iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()) && e.path().is_dir())
        .filter(|e| {
            [
                meshca::CA_CERT,
                meshca::CA_KEY,
                meshca::CERT_CHAIN,
                meshca::SECRET_YAML,
            ]
            .iter()
            .any(|n| e.path().join(n).exists())
        })
        .filter_map(cluster_name);
    let (mesh, stale) = meshca::store::load_replacing(&args.dir, &subdirs)?;
    let mut unreadable: Vec<String> = stale
        .iter()
        .filter_map(|p| p.parent()?.file_name()?.to_str().map(str::to_owned))
        .chain(links)
        .collect();
    unreadable.sort();
    unreadable.dedup();
    if mesh.root.is_none() && mesh.clusters.is_empty() && unreadable.is_empty() {
        return Err(meshca::Error::InvalidArgument {
            what: "--dir",
            value: args.dir.display().to_string(),
            reason: "not a certs directory: no root-cert.pem and no cluster directories".into(),
        }
        .into());
    }
    let mut opts = VerifyOptions::at(args.at.unwrap_or_else(time::OffsetDateTime::now_utc));
    opts.warn_days = args.warn_days;
    // The verdict is `meshca verify DIR`'s: the directory can fail where
    // the mesh loaded from it does not.
    let groups = meshca::verify_certs_dir(&args.dir, &opts)?;
    let status = Status::of(&mesh, &opts)
        .with_unreadable(&unreadable)
        .with_dir_verdict(&groups, &dir_label(&args.dir));
    let format = if args.json {
        StatusFormat::Json
    } else {
        args.format
    };
    let written = (|| -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        match format {
            StatusFormat::Json => {
                serde_json::to_writer_pretty(&mut out, &status)?;
                writeln!(out)?;
            }
            // Label values are escaped by the library; the text is the
            // exposition format byte for byte.
            StatusFormat::Prometheus => write!(out, "{}", status.prometheus())?,
            StatusFormat::Text => write!(out, "{}", crate::output::printable(&status.to_string()))?,
        }
        out.flush()
    })();
    match written {
        // A reader that stops early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(crate::EXIT_OK),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(crate::EXIT_OK),
    }
}

/// The prefix of finding file names for `dir`, as `meshca verify` writes
/// them (`./certs/` gives `certs`, `.` gives nothing).
fn dir_label(dir: &std::path::Path) -> String {
    let s = dir.display().to_string();
    let s = s.strip_prefix("./").unwrap_or(&s).trim_end_matches('/');
    if s == "." {
        String::new()
    } else {
        s.to_owned()
    }
}
