//! `meshca verify PATH...`.

use std::io::Write;

use anyhow::Result;
use meshca::{verify_paths, Report, VerifyOptions};

use crate::cli::VerifyArgs;

/// `quiet`: print only the findings (errors and warnings), as `--quiet`
/// promises; the exit code tells the verdict.
pub(crate) fn run(args: &VerifyArgs, quiet: bool) -> Result<u8> {
    // No meshca run renames files while they are read.
    let mut dirs: Vec<&std::path::Path> = args.paths.iter().map(|p| p.as_path()).collect();
    dirs.extend(args.previous.as_deref());
    let _locks = super::read_locks(&dirs, None)?;
    let mut options = VerifyOptions::at(args.at.unwrap_or_else(time::OffsetDateTime::now_utc));
    options.warn_days = args.warn_days;
    options.trust_domain = args.trust_domain.clone();
    options.multiroot = args.multiroot;
    if let Some(ns) = &args.namespace {
        meshca::validate_name("namespace", ns)?;
        options.namespace = ns.clone();
        options.infer_namespace = false;
    }
    // Temporary files an interrupted run left may hold keys: a failure.
    // They are looked for while the paths are verified (a fleet's certs
    // directory has 10,000 cluster directories to list).
    let (report, found) = std::thread::scope(|s| {
        let scan = s.spawn(|| {
            args.paths
                .iter()
                .map(|path| meshca::store::leftovers(path))
                .collect::<meshca::Result<Vec<_>>>()
        });
        let report = verify_paths(&args.paths, &options);
        let found = scan
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (report, found)
    });
    let mut report = report?;
    if let Some(previous) = &args.previous {
        let mut groups = report.groups.clone();
        for path in &args.paths {
            groups.push(meshca::verify_step(previous, path, &options)?);
        }
        report = Report::new(groups, &options);
    }
    let mut leftovers = Vec::new();
    for (path, found) in args.paths.iter().zip(found?) {
        leftovers.extend(found);
        // A rotation stage (or a cluster directory) whose parent holds the
        // record of a save cut short is half-way too.
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let record = parent.join(meshca::store::JOURNAL);
            if meshca::store::pending(parent) && !leftovers.contains(&record) {
                leftovers.push(record);
            }
        }
    }
    let code = if report.ok && leftovers.is_empty() {
        crate::EXIT_OK
    } else {
        crate::EXIT_FAILED
    };
    let pending = leftovers
        .iter()
        .any(|p| p.file_name().is_some_and(|n| n == meshca::store::JOURNAL));
    for path in &leftovers {
        crate::output::error(format_args!("{}", super::leftover_problem(path, pending)));
    }
    let written = (|| -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if args.json {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        } else if quiet {
            let mut text = String::new();
            for f in report.groups.iter().flat_map(|g| &g.findings) {
                text.push_str(&format!("{:<7} {:<24} {}\n", f.severity, f.code, f.message));
            }
            write!(out, "{}", crate::output::printable(&text))?;
        } else {
            write!(out, "{}", crate::output::printable(&report.to_string()))?;
        }
        out.flush()
    })();
    match written {
        // A reader that stops early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(code),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(code),
    }
}
