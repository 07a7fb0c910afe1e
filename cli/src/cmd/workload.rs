//! `meshca workload NAMESPACE`: a VM workload's certificate.

use anyhow::Result;
use meshca::{IntermediateParams, WorkloadParams};

use crate::cli::{Global, WorkloadArgs};
use crate::output::{date, say};

pub(crate) fn run(global: &Global, args: &WorkloadArgs) -> Result<u8> {
    meshca::validate_name("namespace", &args.namespace)?;
    let key_ref = super::root_key_ref(&args.root_key)?;
    let session = super::Session::open(global, false)?;
    let out_dir = global.dir.join(&args.namespace);
    let targets = [
        meshca::mesh::WORKLOAD_KEY,
        meshca::mesh::WORKLOAD_CERT,
        meshca::mesh::WORKLOAD_CHAIN,
    ]
    .map(|n| out_dir.join(n));
    if !args.force {
        if let Some(path) = targets.iter().find(|p| p.symlink_metadata().is_ok()) {
            return Err(meshca::Error::AlreadyExists { path: path.clone() }.into());
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let issuer = args.cluster.as_deref().unwrap_or(&args.namespace);
    // A named cluster must exist; the namespace's own intermediate is made
    // when absent, as the recipe does.
    let mut mesh = session.mesh.clone();
    let make_ca = args.cluster.is_none() && !mesh.clusters.contains_key(issuer);
    if make_ca {
        let root = super::mesh_signer(&global.dir, &mesh, global, key_ref.as_ref())?;
        let mut params = IntermediateParams::default();
        params.key_type = args.key_type;
        params.san_dns = vec![format!("istiod.{}.svc", args.istio_namespace)];
        let key =
            super::labelled_keys(&[args.key_type], vec![args.namespace.clone()], global.quiet)?
                .remove(0);
        let mut c = meshca::mesh::NewCluster::new(&args.namespace, params, key);
        c.secret = Some(super::secret_options(&args.istio_namespace, false));
        mesh = mesh.add_clusters(&root, vec![c], args.force, now)?.0;
    } else {
        mesh.cluster(issuer)?;
    }
    let mut params = WorkloadParams::default();
    params.org = args.org.clone();
    params.cn = args.cn.clone();
    params.days = args.days;
    params.key_type = args.key_type;
    params.trust_domain = args.trust_domain.clone();
    params.service_account = args.service_account.clone();
    let key = super::labelled_keys(
        &[args.key_type],
        vec![format!("{} workload", args.namespace)],
        global.quiet,
    )?
    .remove(0);
    let (mut mesh, _) = mesh.add_workload(issuer, &args.namespace, &params, key, true, now)?;
    // A root-cert.pem already beside the workload files is kept.
    let root_copy = std::path::Path::new(&args.namespace).join(meshca::ROOT_CERT);
    if out_dir.join(meshca::ROOT_CERT).exists()
        && !session.mesh.clusters.contains_key(&args.namespace)
    {
        mesh.extra.remove(&root_copy);
    }
    // The mesh is checked for its own trust domain: a workload of another
    // is signed as asked (the constraint is enforced where it is verified).
    session.commit(&mesh, args.force, &args.istio_namespace)?;
    if make_ca {
        say(
            global.quiet,
            format_args!(
                "{}: wrote the intermediate CA in {}",
                args.namespace,
                out_dir.display()
            ),
        );
    }
    let [key_path, cert_path, chain_path] = &targets;
    say(
        global.quiet,
        format_args!(
            "{}: wrote {}, {}, {} ({}, issued by {}, valid until {})",
            args.namespace,
            key_path.display(),
            cert_path.display(),
            chain_path.display(),
            params.spiffe_id(&args.namespace),
            issuer,
            date(now + time::Duration::days(i64::from(args.days)))
        ),
    );
    Ok(crate::EXIT_OK)
}
