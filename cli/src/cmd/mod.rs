//! One module per command.

pub(crate) mod completions;
pub(crate) mod crl;
pub(crate) mod init;
pub(crate) mod inspect;
pub(crate) mod intermediate;
pub(crate) mod revoke;
pub(crate) mod root;
pub(crate) mod rotate;
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
    let labels = (1..=types.len()).map(|i| format!("key {i}")).collect();
    labelled_keys(types, labels, quiet)
}

/// Like [`keys`], naming each key (`root`, the cluster) in the progress line.
pub(crate) fn labelled_keys(
    types: &[KeyType],
    labels: Vec<String>,
    quiet: bool,
) -> Result<Vec<PrivateKey>> {
    // RSA key generation is random work of about 0.1-3 s a key: show
    // progress once it runs past a moment; ECDSA is instant.
    let slow = types.iter().any(|t| t.is_rsa());
    let progress = Progress::new(labels, slow, quiet);
    let keys = generate_keys(types, &|done, index| progress.tick(done, index));
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
    // Signing is quick; writing waits on fsync: do clusters side by side.
    let work: Vec<(&String, PrivateKey)> = clusters.iter().zip(keys).collect();
    let results = meshca::map_parallel(
        work,
        8,
        &|(cluster, key)| -> Result<meshca::IntermediateCa> {
            let issued = root.issue_intermediate(cluster, &params, key, now)?;
            if issued.clamped {
                warn(format_args!(
                    "{cluster}/ca-cert.pem: validity cut to the root's end ({}) instead of {} days",
                    date(root.not_after()),
                    params.days
                ));
            }
            let ca_crl = match &root_crl {
                Some(root_crl) => Some(issued.ca.ca_crl(
                    root_crl,
                    None,
                    now,
                    meshca::DEFAULT_CRL_DAYS,
                )?),
                None => None,
            };
            certs.write_cluster(&issued.ca, &secret, ca_crl, force)?;
            Ok(issued.ca)
        },
    );
    for (cluster, result) in clusters.iter().zip(results) {
        let ca = result?;
        let dir = certs.cluster_dir(cluster)?;
        say(
            quiet,
            format_args!(
                "{cluster}: wrote {}/{{ca-cert,ca-key,cert-chain,root-cert}}.pem and cacerts.yaml \
                 ({}, valid until {})",
                dir.display(),
                ca.key_type(),
                date(ca.not_after())
            ),
        );
    }
    Ok(())
}

/// Loads the root from DIR, asking for the passphrase of an encrypted key
/// (from --passphrase-file, or on the terminal).
pub(crate) fn load_root(certs: &CertsDir, global: &crate::cli::Global) -> Result<RootCa> {
    let what = certs.root_key_path().display().to_string();
    let file = global.passphrase_file.clone();
    Ok(certs.load_root_with_passphrase(&|| read_passphrase(&what, file.as_deref(), false))?)
}

/// A passphrase from a file (its first line) or the terminal (no echo;
/// asked twice when `confirm`).
pub(crate) fn read_passphrase(
    what: &str,
    file: Option<&std::path::Path>,
    confirm: bool,
) -> meshca::Result<zeroize::Zeroizing<String>> {
    use std::io::IsTerminal;
    let invalid = |reason: String| meshca::Error::Passphrase { reason };
    if let Some(path) = file {
        let bytes = zeroize::Zeroizing::new(meshca::read_limited(path)?);
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| invalid(format!("{} is not UTF-8 text", path.display())))?;
        let line = zeroize::Zeroizing::new(text.lines().next().unwrap_or_default().to_owned());
        if line.is_empty() {
            return Err(invalid(format!("{} is empty", path.display())));
        }
        return Ok(line);
    }
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        return Err(invalid(format!(
            "{what} needs a passphrase: give --passphrase-file FILE (no terminal to ask on)"
        )));
    }
    let first = zeroize::Zeroizing::new(
        rpassword::prompt_password(format!("Passphrase for {what}: ")).map_err(|e| {
            meshca::Error::Io {
                path: "/dev/tty".into(),
                source: e,
            }
        })?,
    );
    if first.is_empty() {
        return Err(invalid(format!("{what}: the passphrase must not be empty")));
    }
    if confirm {
        let second = zeroize::Zeroizing::new(
            rpassword::prompt_password("Repeat the passphrase: ").map_err(|e| {
                meshca::Error::Io {
                    path: "/dev/tty".into(),
                    source: e,
                }
            })?,
        );
        if *first != *second {
            return Err(invalid(format!("{what}: the two passphrases differ")));
        }
    }
    Ok(first)
}

/// The signing root: from `--root-from-secret` (and then DIR/root-cert.pem
/// is written if absent), else DIR's own.
pub(crate) fn root_for(
    certs: &CertsDir,
    global: &crate::cli::Global,
    opts: &IntermediateOpts,
) -> Result<RootCa> {
    let Some(path) = &opts.root_from_secret else {
        return load_root(certs, global);
    };
    let what = path.display().to_string();
    let yaml = zeroize::Zeroizing::new(meshca::read_limited(path)?);
    let file = global.passphrase_file.clone();
    let root = RootCa::from_secret_yaml(&what, &yaml, &|| {
        read_passphrase(&what, file.as_deref(), false)
    })?;
    if !certs.root_cert_path().exists() {
        meshca::write_files(
            &[meshca::FileWrite {
                path: certs.root_cert_path(),
                contents: root.roots_pem().as_bytes(),
                secret: false,
            }],
            false,
        )?;
    }
    Ok(root)
}

/// The passphrase for a new root key when `encrypt` (asked twice on a
/// terminal), before any slow work.
pub(crate) fn new_root_passphrase(
    certs: &CertsDir,
    global: &crate::cli::Global,
    encrypt: bool,
) -> Result<Option<zeroize::Zeroizing<String>>> {
    if !encrypt {
        return Ok(None);
    }
    let what = certs.root_key_path().display().to_string();
    Ok(Some(read_passphrase(
        &what,
        global.passphrase_file.as_deref(),
        true,
    )?))
}
