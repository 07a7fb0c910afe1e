//! `meshca plan -f FILE`: what `apply` would change to make DIR what the
//! mesh file says.

use std::path::Path;

use std::io::Write;

use anyhow::Result;
use meshca::plan::{Action, MeshFile, Plan, Shape};

use crate::cli::PlanArgs;
use crate::output::{say, warn};

/// Exit code of `plan --exit-code` when changes are pending.
pub(crate) const EXIT_PENDING: u8 = 3;

/// Reads and checks the mesh file `path`.
pub(crate) fn read_mesh_file(path: &Path) -> Result<MeshFile> {
    let text = meshca::read_named(path)?;
    Ok(MeshFile::parse(&path.display().to_string(), &text)?)
}

pub(crate) fn run(args: &PlanArgs) -> Result<u8> {
    let file = read_mesh_file(&args.file)?;
    // No meshca run renames files while the directory is read.
    let (dir, quiet) = (args.read.dir.as_path(), args.read.quiet);
    let _read = super::read_locks(&[dir], None)?;
    let mesh = meshca::store::load(dir)?;
    let at = args.at.unwrap_or_else(time::OffsetDateTime::now_utc);
    let plan = meshca::plan::plan(&file, &mesh, at)?;
    if args.json {
        let mut doc = serde_json::to_value(&plan)?;
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("schema".into(), "meshca.plan/v1".into());
            obj.insert("dir".into(), dir.display().to_string().into());
            obj.insert("file".into(), args.file.display().to_string().into());
            obj.insert("changes".into(), plan.actions.len().into());
        }
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&doc)?
        )?;
    } else {
        print_plan(dir, quiet, &args.file, &plan);
    }
    Ok(if args.exit_code && !plan.is_empty() {
        EXIT_PENDING
    } else {
        crate::EXIT_OK
    })
}

fn print_plan(dir: &Path, quiet: bool, file: &Path, plan: &Plan) {
    let shown = dir.display();
    for a in &plan.actions {
        say(quiet, format_args!("{}", describe(a, false)));
    }
    report_kept(dir, quiet, file, plan);
    if plan.is_empty() {
        say(
            quiet,
            format_args!("nothing to do: {shown} is what {} says", file.display()),
        );
    } else {
        say(
            quiet,
            format_args!(
                "{} change{}; `meshca apply -f {} --dir {shown}` makes {}",
                plan.actions.len(),
                if plan.actions.len() == 1 { "" } else { "s" },
                file.display(),
                if plan.actions.len() == 1 {
                    "it"
                } else {
                    "them"
                },
            ),
        );
    }
}

/// The clusters kept although the file does not name them, and the notes.
pub(crate) fn report_kept(dir: &Path, quiet: bool, file: &Path, plan: &Plan) {
    for name in &plan.unmanaged {
        say(
            quiet,
            format_args!(
                "  = {name}: in {} but not in {}: kept (never deleted)",
                dir.display(),
                file.display()
            ),
        );
    }
    for note in &plan.notes {
        warn(format_args!("{note}"));
    }
}

fn shape(s: Shape) -> &'static str {
    match s {
        Shape::Tls => "kubernetes.io/tls Secret",
        _ => "Opaque Secret",
    }
}

/// One line for an action: what plan will do (`done`: what apply did).
pub(crate) fn describe(a: &Action, done: bool) -> String {
    let verb = |todo: &str, past: &str| {
        if done {
            past.to_owned()
        } else {
            todo.to_owned()
        }
    };
    match a {
        Action::CreateRoot {
            key_type,
            days,
            org,
            cn,
        } => format!(
            "  + {} the root ({key_type}, {days} days, O={org}, CN={cn})",
            verb("create", "created")
        ),
        Action::AddCluster { cluster: c } => format!(
            "  + {} {} ({}, {} days, SAN {}, {} in {}{})",
            verb("add", "added"),
            c.name,
            c.key_type,
            c.days,
            c.san_dns.join(","),
            shape(c.shape),
            c.namespace,
            if c.name_constraints {
                format!(", name-constrained to {}", c.trust_domain)
            } else {
                String::new()
            }
        ),
        Action::Reissue { cluster, drift } => {
            let what: Vec<String> = drift
                .iter()
                .map(|d| format!("{} {} -> {}", d.field, d.have, d.want))
                .collect();
            format!(
                "  ~ {} {}: {}",
                verb("re-issue", "re-issued"),
                cluster.name,
                what.join("; ")
            )
        }
        Action::Renew {
            cluster,
            not_after,
            days_left,
        } => format!(
            "  ~ {} {}: expires {not_after} ({days_left} days left, renewBefore {})",
            verb("renew", "renewed"),
            cluster.name,
            cluster.renew_before
        ),
        Action::RefreshRootCrl {
            next_update,
            clusters,
        } => {
            let spread = if clusters.is_empty() {
                String::new()
            } else {
                format!(", and the ca-crl.pem of {}", clusters.join(", "))
            };
            format!(
                "  ~ {} root-crl.pem (nextUpdate {next_update}){spread}",
                verb("refresh", "refreshed")
            )
        }
        Action::RefreshCrl {
            cluster,
            next_update,
        } => format!(
            "  ~ {} {cluster}/ca-crl.pem (nextUpdate {next_update})",
            verb("refresh", "refreshed")
        ),
        other => format!("  ~ {other:?}"),
    }
}
