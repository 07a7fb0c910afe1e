//! `meshca renew [CLUSTER...] [--within DAYS]`: re-issue intermediates
//! before they expire, `root-cert.pem` unchanged.

use anyhow::Result;
use meshca::mesh::{RenewKeys, RenewOptions};

use crate::cli::{Global, RenewArgs};
use crate::output::{date, say, warn};

pub(crate) fn run(global: &Global, args: &RenewArgs) -> Result<u8> {
    super::check_clusters(&args.clusters)?;
    refuse_cluster_dir("--dir", &global.dir)?;
    // Before a lock file is made in DIR or OUT: DIR must be there and hold
    // a mesh (checked again under the lock).
    if std::fs::symlink_metadata(&global.dir).is_err() {
        return Err(meshca::Error::MissingFile {
            path: global.dir.clone(),
            hint: String::new(),
        }
        .into());
    }
    // (A save a crash cut short is finished first, by the session below.)
    if !meshca::store::pending(&global.dir) {
        refuse_not_a_mesh(&global.dir, &meshca::store::load(&global.dir)?)?;
    }
    if let Some(out) = &args.out {
        refuse_cluster_dir("--out", out)?;
        return renew_into(global, args, out);
    }
    let session = super::Session::open(global, false)?;
    refuse_not_a_mesh(&global.dir, &session.mesh)?;
    let now = time::OffsetDateTime::now_utc();
    let Some((mesh, renewed)) = renew(global, args, &session.mesh, now)? else {
        return Ok(crate::EXIT_OK);
    };
    session.commit(&mesh, true, super::ISTIOD_NAMESPACE)?;
    report(global, &global.dir, &renewed);
    say(
        global.quiet,
        format_args!(
            "next: apply each renewed cluster's cacerts.yaml (root-cert.pem is unchanged: istiod \
             takes it without ISTIO_MULTIROOT_MESH); to check the step first, renew with --out NEW \
             and run `meshca verify --previous {} NEW`",
            global.dir.display()
        ),
    );
    Ok(crate::EXIT_OK)
}

/// Refuses a cluster directory where a certs directory is wanted. Read as
/// a certs directory it is a mesh without clusters (its `ca-cert.pem` is
/// not a cluster's): `renew --within` would find nothing due and exit 0,
/// `renew --out` would write a mesh into it, `status` would say `ok`
/// whatever its intermediate's state.
pub(crate) fn refuse_cluster_dir(option: &'static str, dir: &std::path::Path) -> Result<()> {
    for file in [meshca::CA_CERT, meshca::CA_KEY, meshca::CERT_CHAIN] {
        if std::fs::symlink_metadata(dir.join(file)).is_ok() {
            return Err(meshca::Error::InvalidArgument {
                what: option,
                value: dir.display().to_string(),
                reason: format!(
                    "a cluster directory (it holds {file}), not a certs directory: give the \
                     directory that holds root-cert.pem and the cluster directories"
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// Refuses a DIR that is no certs directory (missing, or with neither
/// `root-cert.pem` nor a cluster): `renew --within` would find nothing
/// due there and exit 0, and a mistyped path in a cron job would renew
/// nothing, ever, without a word.
fn refuse_not_a_mesh(dir: &std::path::Path, mesh: &meshca::Mesh) -> Result<()> {
    if mesh.root.is_none() && mesh.clusters.is_empty() {
        return Err(meshca::Error::InvalidArgument {
            what: "--dir",
            value: dir.display().to_string(),
            reason: "not a certs directory: no root-cert.pem and no cluster directories".into(),
        }
        .into());
    }
    Ok(())
}

/// `--out OUT`: DIR is only read; the renewed mesh goes to OUT.
fn renew_into(global: &Global, args: &RenewArgs, out: &std::path::Path) -> Result<u8> {
    let lock = meshca::store::DirLock::acquire(out, &|path| {
        warn(format_args!(
            "waiting for {}: another meshca run is writing {}",
            path.display(),
            out.display()
        ))
    })?;
    let _read = super::read_locks(&[global.dir.as_path()], Some(out))?;
    super::recover(out)?;
    let session = super::Session::loaded(&global.dir)?;
    refuse_not_a_mesh(&global.dir, &session.mesh)?;
    let existing = meshca::store::load(out)?;
    if !args.force && (existing.root.is_some() || !existing.clusters.is_empty()) {
        return Err(meshca::Error::AlreadyExists {
            path: out.join(meshca::ROOT_CERT),
        }
        .into());
    }
    let now = time::OffsetDateTime::now_utc();
    let Some((mesh, renewed)) = renew(global, args, &session.mesh, now)? else {
        return Ok(crate::EXIT_OK);
    };
    // Checked against DIR, the mesh it is made from.
    super::check_new(
        Some(&session.mesh),
        &mesh,
        super::ISTIOD_NAMESPACE,
        super::existing_errors(global),
    )?;
    let mut tx = meshca::store::Transaction::new();
    tx.journal_in(out);
    meshca::store::plan(&mut tx, out, Some(&existing), &mesh, args.force)?;
    tx.commit().map_err(|e| {
        anyhow::Error::new(e).context(super::SaveFailed {
            dir: out.to_owned(),
        })
    })?;
    drop(lock);
    report(global, out, &renewed);
    say(
        global.quiet,
        format_args!(
            "next: meshca verify --previous {} {}, then apply each renewed cluster's \
             cacerts.yaml from {}; {} is then the mesh's certs directory",
            global.dir.display(),
            out.display(),
            out.display(),
            out.display()
        ),
    );
    Ok(crate::EXIT_OK)
}

/// Picks the clusters due, signs their new intermediates. `None`: nothing
/// is due (said so).
fn renew(
    global: &Global,
    args: &RenewArgs,
    mesh: &meshca::Mesh,
    now: time::OffsetDateTime,
) -> Result<Option<(meshca::Mesh, Vec<meshca::mesh::Renewed>)>> {
    let due = mesh.renewal_due(&args.clusters, args.within, now)?;
    for d in due.iter().filter(|d| !d.due) {
        say(
            global.quiet,
            format_args!(
                "{}: not due (valid until {}, {} days left; --within {})",
                d.name,
                date(d.not_after),
                (d.not_after - now).whole_days(),
                args.within.unwrap_or_default()
            ),
        );
    }
    let names: Vec<String> = due
        .iter()
        .filter(|d| d.due)
        .map(|d| d.name.clone())
        .collect();
    if names.is_empty() {
        say(
            global.quiet,
            format_args!(
                "nothing to renew: no intermediate expires within {} days; nothing was written",
                args.within.unwrap_or_default()
            ),
        );
        return Ok(None);
    }
    let key_ref = super::root_key_ref(&args.root_key)?;
    let root = super::mesh_signer(&global.dir, mesh, global, key_ref.as_ref())?;
    let keys = if args.reuse_key {
        RenewKeys::Reuse
    } else {
        let types = mesh.key_types(&names)?;
        RenewKeys::New(super::labelled_keys(&types, names.clone(), global.quiet)?)
    };
    let mut opts = RenewOptions::default();
    opts.days = args.days;
    opts.crl_days = args.next_update_days;
    Ok(Some(mesh.renew(&root, &names, keys, &opts, now)?))
}

fn report(global: &Global, dir: &std::path::Path, renewed: &[meshca::mesh::Renewed]) {
    for r in renewed {
        if r.clamped {
            warn(format_args!(
                "{}/ca-cert.pem: validity cut to the root's end ({}) instead of {} days: renew the root (`meshca root --renew`)",
                r.name,
                date(r.not_after),
                r.days
            ));
        }
        say(
            global.quiet,
            format_args!(
                "{}: renewed {}/ca-cert.pem ({}, {}), valid until {} (was {}); wrote cert-chain.pem{}{}",
                r.name,
                dir.join(&r.name).display(),
                r.key_type,
                if r.new_key { "new key" } else { "same key" },
                date(r.not_after),
                date(r.previous_not_after),
                if r.new_key { ", ca-key.pem" } else { "" },
                if r.crl { ", ca-crl.pem" } else { "" },
            ),
        );
    }
}
