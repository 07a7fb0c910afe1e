//! `meshca rotate --new-root DIR2 --out OUT`: the stages of a root rotation.

use anyhow::Result;

use crate::cli::{Global, RotateArgs};
use crate::output::say;

pub(crate) fn run(global: &Global, args: &RotateArgs, m: &clap::ArgMatches) -> Result<u8> {
    // Hidden on rotate (see cli.rs); scripts that pass them keep working.
    for (id, flag) in [
        ("key_type", "--key-type"),
        ("tls_secret", "--tls-secret"),
        ("root_from_secret", "--root-from-secret"),
    ] {
        if super::init::from_cli(m, id) {
            crate::output::warn(format_args!(
                "{flag} has no effect on rotate: every cluster keeps its key type and Secret \
                 shape, and the root of --new-root signs"
            ));
        }
    }
    let key_ref = super::root_key_ref(&args.root_key)?;
    // --out is locked for writing, the two inputs for reading.
    let lock = meshca::store::DirLock::acquire(&args.out, &|path| {
        crate::output::warn(format_args!(
            "waiting for {}: another meshca run is writing {}",
            path.display(),
            args.out.display()
        ))
    })?;
    let _read = super::read_locks(
        &[global.dir.as_path(), args.new_root.as_path()],
        Some(&args.out),
    )?;
    super::recover(&args.out)?;
    let session = super::Session::loaded(&global.dir)?;
    let clusters = if args.clusters.is_empty() {
        session.mesh.clusters.keys().cloned().collect()
    } else {
        super::check_clusters(&args.clusters)?;
        session.mesh.check_clusters(&args.clusters)?;
        args.clusters.clone()
    };
    if clusters.is_empty() {
        anyhow::bail!(meshca::Error::Refused {
            what: global.dir.display().to_string(),
            reason: "no cluster directories to rotate".into(),
        });
    }
    let new = super::Session::loaded(&args.new_root)?;
    let new_root = super::mesh_signer(&args.new_root, &new.mesh, global, key_ref.as_ref())?;

    let stages: Vec<std::path::PathBuf> = (1..=3)
        .map(|n| args.out.join(format!("stage-{n}")))
        .collect();
    let mut old_stages = Vec::new();
    for dir in &stages {
        let m = meshca::store::load(dir)?;
        if !args.force && (m.root.is_some() || !m.clusters.is_empty()) {
            return Err(meshca::Error::AlreadyExists {
                path: dir.join(meshca::ROOT_CERT),
            }
            .into());
        }
        old_stages.push(m);
    }
    let params = super::intermediate_params(&args.intermediate);
    // Every cluster keeps its key type.
    let types = session.mesh.key_types(&clusters)?;
    let keys = super::labelled_keys(&types, clusters.clone(), global.quiet)?;
    let new_meshes = session.mesh.rotation(
        &new_root,
        new.mesh.root_crl.as_deref(),
        &clusters,
        &params,
        keys,
        time::OffsetDateTime::now_utc(),
    )?;
    // Every stage must verify, and so must every step between them, as an
    // istiod with ISTIO_MULTIROOT_MESH=true reloads it (without it, istiod
    // ignores every stage: each changes root-cert.pem).
    let mut opts = meshca::VerifyOptions::at(time::OffsetDateTime::now_utc());
    opts.multiroot = true;
    let mut steps = Vec::new();
    let mut prev: &meshca::Mesh = &session.mesh;
    let mut prev_label = super::label(&global.dir);
    // Each stage against the mesh it comes from (verified once for all).
    let mut stage_opts = opts.clone();
    stage_opts.namespace = args.intermediate.namespace.clone();
    if let Some(td) = session.mesh.constrained_trust_domain() {
        stage_opts.trust_domain = td;
    }
    let stage_refs: Vec<&meshca::Mesh> = new_meshes.iter().collect();
    let reports = meshca::Mesh::check_all_against_with(
        &stage_refs,
        Some(&session.mesh),
        &stage_opts,
        super::existing_errors(global),
    )?;
    if let Some(last) = reports.last() {
        super::warn_kept_errors(last);
    }
    for (dir, m) in stages.iter().zip(&new_meshes) {
        let label = super::label(dir);
        steps.push(meshca::verify_mesh_step(
            &prev_label,
            &prev.files(),
            &label,
            &m.files(),
            &opts,
        ));
        prev = m;
        prev_label = label;
    }
    let errors: Vec<String> = steps
        .iter()
        .flat_map(|g| &g.findings)
        .filter(|f| f.severity == meshca::Severity::Error)
        .map(|f| format!("{}: {}", f.code, f.message))
        .collect();
    if !errors.is_empty() {
        return Err(meshca::Error::WouldNotVerify { errors }.into());
    }
    let mut tx = meshca::store::Transaction::new();
    tx.journal_in(&args.out);
    for ((dir, old), new) in stages.iter().zip(&old_stages).zip(&new_meshes) {
        meshca::store::plan(&mut tx, dir, Some(old), new, args.force)?;
    }
    tx.commit().map_err(|e| {
        anyhow::Error::new(e).context(super::SaveFailed {
            dir: args.out.clone(),
        })
    })?;
    drop(lock);
    for (n, dir) in stages.iter().enumerate() {
        say(
            global.quiet,
            format_args!(
                "stage {}: {} ({})",
                n + 1,
                dir.display(),
                crate::output::count(clusters.len(), "cluster")
            ),
        );
    }
    say(
        global.quiet,
        format_args!(
            "every stage changes root-cert.pem: every istiod needs ISTIO_MULTIROOT_MESH=true \
             before stage 1 is applied (without it, istiod ignores the whole update)"
        ),
    );
    say(
        global.quiet,
        format_args!(
            "apply stage by stage, every cluster at a stage before any moves on; check each step:"
        ),
    );
    let mut prev = global.dir.display().to_string();
    for dir in &stages {
        let cur = dir.display().to_string();
        say(
            global.quiet,
            format_args!("  meshca verify --multiroot --previous {prev} {cur}"),
        );
        prev = cur;
    }
    Ok(crate::EXIT_OK)
}
