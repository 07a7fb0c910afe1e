//! `meshca init CLUSTER...`: the one-command path.

use anyhow::Result;
use meshca::{CertsDir, RootCa, RootParams, RootState};

use crate::cli::{Global, InitArgs};
use crate::output::{date, say};

pub(crate) fn run(global: &Global, args: &InitArgs) -> Result<u8> {
    super::check_clusters(&args.clusters)?;
    let certs = CertsDir::new(&global.dir);
    let existing = if args.intermediate.root_from_secret.is_some() {
        Some(super::root_for(&certs, global, &args.intermediate)?)
    } else {
        match certs.root_state()? {
            RootState::Present => Some(super::load_root(&certs, global)?),
            _ => None,
        }
    };
    if !args.force {
        certs.refuse_existing_clusters(&args.clusters)?;
    }
    // Ask for a new root's passphrase before the slow key generation.
    let pass = super::new_root_passphrase(&certs, global, existing.is_none() && args.encrypt_root)?;
    let cluster_type = args.intermediate.key_type.unwrap_or_default();
    let root_type = args
        .root
        .root_key_type
        .or(args.intermediate.key_type)
        .unwrap_or_default();
    let mut types = Vec::with_capacity(args.clusters.len() + 1);
    if existing.is_none() {
        types.push(root_type);
    }
    types.extend(std::iter::repeat_n(cluster_type, args.clusters.len()));
    let mut labels: Vec<String> = Vec::with_capacity(types.len());
    if existing.is_none() {
        labels.push("root".to_owned());
    }
    labels.extend(args.clusters.iter().cloned());
    let mut keys = super::labelled_keys(&types, labels, global.quiet)?;

    let root = match existing {
        Some(root) => {
            let source = match &args.intermediate.root_from_secret {
                Some(p) => format!("the CA of {}", p.display()),
                None => certs.root_cert_path().display().to_string(),
            };
            say(global.quiet, format_args!("root: using {source}"));
            root
        }
        None => {
            let mut params = RootParams::default();
            params.org = args.root.root_org.clone();
            params.cn = args.root.root_cn.clone();
            params.days = args.root.root_days;
            params.key_type = root_type;
            let key = keys.remove(0);
            let root = RootCa::self_signed(&params, key, time::OffsetDateTime::now_utc())?;
            certs.write_root_with(&root, pass.as_ref().map(|p| p.as_bytes()), false)?;
            say(
                global.quiet,
                format_args!(
                    "root: wrote {} and {} ({root_type}, valid until {})",
                    certs.root_cert_path().display(),
                    certs.root_key_path().display(),
                    date(root.not_after())
                ),
            );
            root
        }
    };
    super::issue_clusters(
        &certs,
        &root,
        &args.clusters,
        keys,
        &args.intermediate,
        args.force,
        global.quiet,
    )?;
    say(
        global.quiet,
        format_args!(
            "next: kubectl --context <cluster> apply -f {}",
            certs
                .path()
                .join("<cluster>")
                .join(meshca::SECRET_YAML)
                .display()
        ),
    );
    Ok(crate::EXIT_OK)
}
