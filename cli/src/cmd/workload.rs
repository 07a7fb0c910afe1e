//! `meshca workload NAMESPACE`: a VM workload's certificate.

use anyhow::Result;
use meshca::{
    refuse_existing, write_files, CertsDir, FileWrite, IntermediateCa, IntermediateParams,
    WorkloadParams, CA_CERT,
};

use crate::cli::{Global, WorkloadArgs};
use crate::output::{date, say};

/// The files the recipe's `<ns>-certs` target writes next to the intermediate.
pub(crate) const KEY: &str = "key.pem";
pub(crate) const CERT: &str = "workload-cert.pem";
pub(crate) const CHAIN: &str = "workload-cert-chain.pem";

pub(crate) fn run(global: &Global, args: &WorkloadArgs) -> Result<u8> {
    meshca::validate_name("namespace", &args.namespace)?;
    let certs = CertsDir::new(&global.dir);
    let out_dir = certs.path().join(&args.namespace);
    let targets = [out_dir.join(KEY), out_dir.join(CERT), out_dir.join(CHAIN)];
    if !args.force {
        refuse_existing(targets.iter().map(|p| p.as_path()))?;
    }
    let now = time::OffsetDateTime::now_utc();
    let issuer_name = args.cluster.as_deref().unwrap_or(&args.namespace);
    // A named cluster must have its intermediate (reading it names a missing
    // file); the namespace's own is made when absent, as the recipe does.
    let ca = if args.cluster.is_some() || certs.cluster_dir(issuer_name)?.join(CA_CERT).exists() {
        IntermediateCa::from_bundle(issuer_name, &certs.read_cluster(issuer_name)?)?
    } else {
        // The recipe makes the namespace's intermediate first.
        let root = super::load_root(&certs, global)?;
        let mut params = IntermediateParams::default();
        params.key_type = args.key_type;
        params.san_dns = vec![format!("istiod.{}.svc", args.istio_namespace)];
        let mut keys = super::keys(&[args.key_type, args.key_type], global.quiet)?;
        let ca_key = keys.remove(0);
        let issued = root.issue_intermediate(&args.namespace, &params, ca_key, now)?;
        certs.write_cluster(
            &issued.ca,
            &super::secret_options(&args.istio_namespace, false),
            None,
            args.force,
        )?;
        say(
            global.quiet,
            format_args!(
                "{}: wrote the intermediate CA in {}",
                args.namespace,
                out_dir.display()
            ),
        );
        return finish(global, args, &issued.ca, keys.remove(0), now, &targets);
    };
    let key = super::keys(&[args.key_type], global.quiet)?.remove(0);
    finish(global, args, &ca, key, now, &targets)
}

fn finish(
    global: &Global,
    args: &WorkloadArgs,
    ca: &IntermediateCa,
    key: meshca::PrivateKey,
    now: time::OffsetDateTime,
    targets: &[std::path::PathBuf; 3],
) -> Result<u8> {
    let mut params = WorkloadParams::default();
    params.org = args.org.clone();
    params.cn = args.cn.clone();
    params.days = args.days;
    params.key_type = args.key_type;
    params.trust_domain = args.trust_domain.clone();
    params.service_account = args.service_account.clone();
    let workload = ca.issue_workload(&args.namespace, &params, key, now)?;
    let key_pem = workload.key.to_pem();
    let [key_path, cert_path, chain_path] = targets;
    let mut files = vec![
        FileWrite {
            path: key_path.clone(),
            contents: key_pem.as_bytes(),
            secret: true,
        },
        FileWrite {
            path: cert_path.clone(),
            contents: workload.cert.as_bytes(),
            secret: false,
        },
        FileWrite {
            path: chain_path.clone(),
            contents: workload.chain.as_bytes(),
            secret: false,
        },
    ];
    let root_path = key_path.with_file_name(meshca::ROOT_CERT);
    if !root_path.exists() {
        files.push(FileWrite {
            path: root_path,
            contents: workload.root_cert.as_bytes(),
            secret: false,
        });
    }
    write_files(&files, args.force)?;
    say(
        global.quiet,
        format_args!(
            "{}: wrote {}, {}, {} ({}, issued by {}, valid until {})",
            args.namespace,
            key_path.display(),
            cert_path.display(),
            chain_path.display(),
            params.spiffe_id(&args.namespace),
            ca.cluster(),
            date(now + time::Duration::days(i64::from(args.days)))
        ),
    );
    Ok(crate::EXIT_OK)
}
