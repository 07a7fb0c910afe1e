//! `meshca audit CLUSTER --secret FILE [--root-configmap FILE]`: what a
//! cluster really holds, compared with DIR/CLUSTER. Files only.

use std::io::Write;

use anyhow::Result;
use meshca::plan::audit::{audit, CertFacts};

use crate::cli::AuditArgs;
use crate::output::say;

pub(crate) fn run(args: &AuditArgs) -> Result<u8> {
    let _read = super::read_locks(&[args.read.dir.as_path()], None)?;
    let cluster = meshca::store::load_cluster(&args.read.dir, &args.cluster)?;
    let secret_what = args.secret.display().to_string();
    let secret = zeroize::Zeroizing::new(meshca::read_named(&args.secret)?);
    let configmap = match &args.root_configmap {
        Some(p) => Some((p.display().to_string(), meshca::read_named(p)?)),
        None => None,
    };
    let result = audit(
        &args.cluster,
        &cluster,
        (&secret_what, &secret),
        configmap.as_ref().map(|(w, b)| (w.as_str(), b.as_slice())),
        time::OffsetDateTime::now_utc(),
    )?;
    let dir = args.read.dir.join(&args.cluster);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&result)?)?;
    } else if result.in_sync() {
        say(
            args.read.quiet,
            format_args!(
                "{}: in sync: {}{} hold{} what {} holds",
                args.cluster,
                secret_what,
                configmap
                    .as_ref()
                    .map(|(w, _)| format!(" and {w}"))
                    .unwrap_or_default(),
                if configmap.is_some() { "" } else { "s" },
                dir.display()
            ),
        );
    } else {
        for d in &result.differences {
            // Differences are the verdict: printed even with --quiet.
            let line = format!("{}: {}: {}", args.cluster, d.what, d.problem);
            writeln!(out, "{}", crate::output::printable_line(&line))?;
            print_facts(&mut out, &format!("{} has", dir.display()), &d.ours)?;
            print_facts(&mut out, "the cluster runs", &d.theirs)?;
        }
        writeln!(
            out,
            "{}: out of sync: {} difference{} with {}",
            args.cluster,
            result.differences.len(),
            if result.differences.len() == 1 {
                ""
            } else {
                "s"
            },
            dir.display()
        )?;
    }
    Ok(if result.in_sync() {
        crate::EXIT_OK
    } else {
        crate::EXIT_FAILED
    })
}

fn print_facts(out: &mut impl Write, who: &str, facts: &[CertFacts]) -> std::io::Result<()> {
    for f in facts {
        let line = format!(
            "    {who}: serial {}, subject {}, not after {}",
            f.serial, f.subject, f.not_after
        );
        writeln!(out, "{}", crate::output::printable_line(&line))?;
    }
    Ok(())
}
