//! One module per command.

pub(crate) mod completions;
pub(crate) mod crl;
pub(crate) mod init;
pub(crate) mod inspect;
pub(crate) mod intermediate;
pub(crate) mod revoke;
pub(crate) mod root;
pub(crate) mod secret;
pub(crate) mod verify;
pub(crate) mod workload;

use anyhow::Result;
use meshca::{
    generate_keys, CertsDir, IntermediateParams, KeyType, PrivateKey, RootCa, SecretOptions,
    SecretShape,
};

use crate::cli::IntermediateOpts;
use crate::output::{date, say, warn, Progress};

/// Generates keys on all cores, with progress on a terminal when slow.
pub(crate) fn keys(types: &[KeyType], quiet: bool) -> Result<Vec<PrivateKey>> {
    let slow = types.iter().any(|t| t.is_rsa()) && types.len() > 1
        || types.iter().any(|t| matches!(t, KeyType::Rsa4096));
    let progress = Progress::new(types.len(), slow, quiet);
    let keys = generate_keys(types, &|done| progress.tick(done));
    progress.finish();
    Ok(keys?)
}

pub(crate) fn intermediate_params(opts: &IntermediateOpts) -> IntermediateParams {
    let mut p = IntermediateParams::default();
    p.org = opts.org.clone();
    p.cn = opts.cn.clone();
    p.days = opts.days;
    p.key_type = opts.key_type.unwrap_or_default();
    p.san_dns = if opts.san_dns.is_empty() {
        vec![format!("istiod.{}.svc", opts.namespace)]
    } else {
        opts.san_dns.clone()
    };
    p
}

pub(crate) fn secret_options(namespace: &str, tls: bool) -> SecretOptions {
    let mut s = SecretOptions::default();
    s.namespace = namespace.to_owned();
    s.shape = if tls {
        SecretShape::Tls
    } else {
        SecretShape::Opaque
    };
    s
}

/// Refuses duplicate or invalid cluster names before any work.
pub(crate) fn check_clusters(clusters: &[String]) -> Result<()> {
    for (i, c) in clusters.iter().enumerate() {
        meshca::validate_name("cluster name", c)?;
        if clusters[..i].contains(c) {
            return Err(meshca::Error::InvalidArgument {
                what: "cluster name",
                value: c.clone(),
                reason: "given twice".into(),
            }
            .into());
        }
    }
    Ok(())
}

/// Issues and writes every cluster's intermediate with the given keys.
pub(crate) fn issue_clusters(
    certs: &CertsDir,
    root: &RootCa,
    clusters: &[String],
    keys: Vec<PrivateKey>,
    opts: &IntermediateOpts,
    force: bool,
    quiet: bool,
) -> Result<()> {
    let params = intermediate_params(opts);
    let secret = secret_options(&opts.namespace, opts.tls_secret);
    let now = time::OffsetDateTime::now_utc();
    let root_crl = certs.read_root_crl()?;
    for (cluster, key) in clusters.iter().zip(keys) {
        let issued = root.issue_intermediate(cluster, &params, key, now)?;
        if issued.clamped {
            warn(format_args!(
                "{cluster}/ca-cert.pem: validity cut to the root's end ({}) instead of {} days",
                date(root.not_after()),
                params.days
            ));
        }
        let ca_crl = match &root_crl {
            Some(root_crl) => Some(cluster_crl(
                root_crl,
                &issued.ca,
                None,
                now,
                meshca::DEFAULT_CRL_DAYS,
            )?),
            None => None,
        };
        certs.write_cluster(&issued.ca, &secret, ca_crl, force)?;
        let dir = certs.cluster_dir(cluster)?;
        say(
            quiet,
            format_args!(
                "{cluster}: wrote {}/{{ca-cert,ca-key,cert-chain,root-cert}}.pem and cacerts.yaml \
                 ({}, valid until {})",
                dir.display(),
                issued.ca.key_type(),
                date(issued.ca.not_after())
            ),
        );
    }
    Ok(())
}

/// `ca-crl.pem` for a cluster: the root's CRL, then the intermediate's own
/// (numbered above the one in `previous`, the cluster's old `ca-crl.pem`).
pub(crate) fn cluster_crl(
    root_crl: &[u8],
    ca: &meshca::IntermediateCa,
    previous: Option<&[u8]>,
    now: time::OffsetDateTime,
    days: u32,
) -> Result<String> {
    let own = ca.own_crl(previous, now, days)?;
    let root = String::from_utf8_lossy(root_crl);
    Ok(meshca::concat_pem(&[&root, &own]))
}

/// Loads the root from DIR (the passphrase prompt lives here once root keys
/// can be encrypted).
pub(crate) fn load_root(certs: &CertsDir, _global: &crate::cli::Global) -> Result<RootCa> {
    Ok(certs.load_root()?)
}
