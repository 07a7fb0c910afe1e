//! `meshca verify PATH...`.

use std::io::Write;

use anyhow::Result;
use meshca::{verify_paths, Report, Severity, VerifyOptions};

use crate::cli::VerifyArgs;

pub(crate) fn run(args: &VerifyArgs) -> Result<u8> {
    let mut options = VerifyOptions::at(args.at.unwrap_or_else(time::OffsetDateTime::now_utc));
    options.warn_days = args.warn_days;
    let mut report = verify_paths(&args.paths, &options)?;
    if let Some(previous) = &args.previous {
        let mut groups = report.groups.clone();
        for path in &args.paths {
            groups.push(meshca::verify_step(previous, path, &options)?);
        }
        report = Report::new(groups, &options);
    }
    // Temporary files an interrupted run left may hold keys: a failure.
    let mut leftovers = Vec::new();
    for path in &args.paths {
        leftovers.extend(meshca::store::leftovers(path)?);
    }
    let code = if report.ok && leftovers.is_empty() {
        crate::EXIT_OK
    } else {
        crate::EXIT_FAILED
    };
    for path in &leftovers {
        crate::output::error(format_args!(
            "{}: a temporary file left by an interrupted meshca run (it may hold a private key): remove it",
            path.display()
        ));
    }
    let written = (|| -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if args.json {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        } else {
            write_human(&mut out, &report)?;
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

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn write_human(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    for group in &report.groups {
        let errors = group
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        let warnings = group.findings.len() - errors;
        let verdict = match (errors, warnings) {
            (0, 0) => "ok".to_owned(),
            (0, w) => format!("ok, {}", plural(w, "warning")),
            (e, 0) => format!("FAILED, {}", plural(e, "error")),
            (e, w) => format!("FAILED, {}, {}", plural(e, "error"), plural(w, "warning")),
        };
        writeln!(out, "{} ({}): {verdict}", group.name, group.path)?;
        for f in &group.findings {
            writeln!(out, "  {:<7} {:<24} {}", f.severity, f.code, f.message)?;
        }
    }
    let clusters = report
        .groups
        .iter()
        .filter(|g| g.kind == meshca::GroupKind::Cluster)
        .count();
    writeln!(
        out,
        "{}: {}, {}, {} checked",
        if report.ok { "PASSED" } else { "FAILED" },
        plural(report.errors, "error"),
        plural(report.warnings, "warning"),
        plural(clusters, "cluster")
    )
}
