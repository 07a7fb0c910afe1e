//! `meshca root`: the offline root CA.

use anyhow::Result;
use meshca::{RootCa, RootParams};

use crate::cli::{Global, RootArgs};
use crate::output::{date, say};

pub(crate) fn run(global: &Global, args: &RootArgs) -> Result<u8> {
    if args.renew {
        return renew(global, args);
    }
    let key_ref = super::root_key_ref(&args.root_key)?;
    let session = super::Session::open(global, true)?;
    if session.mesh.root.is_some() && !args.force {
        return Err(meshca::Error::AlreadyExists {
            path: global.dir.join(meshca::ROOT_CERT),
        }
        .into());
    }
    let pass = super::new_root_passphrase(&global.dir, global, args.encrypt)?;
    let mut params = RootParams::default();
    params.org = args.org.clone();
    params.cn = args.cn.clone();
    params.days = args.days;
    params.key_type = args.key_type;
    let key =
        match super::new_root_key(key_ref.as_ref(), args.key_type, args.encrypt, args.force)? {
            Some(key) => key,
            None => super::labelled_keys(&[args.key_type], vec!["root".to_owned()], global.quiet)?
                .remove(0),
        };
    let root = RootCa::self_signed(&params, key, time::OffsetDateTime::now_utc())?;
    let key_pem = super::root_key_pem(&root, pass.as_ref())?;
    let mesh = session.mesh.with_root(&root, key_pem, args.force)?;
    let saved = session.commit(&mesh, args.force, super::ISTIOD_NAMESPACE);
    super::keep_token_root_if_saved(&saved, &root);
    saved?;
    let key_written = match root.key().token_uri() {
        Some(uri) => format!(
            "{} (the key stays in the token: {})",
            global.dir.join(meshca::ROOT_KEY_URI).display(),
            uri.describe()
        ),
        None => format!(
            "{}{}",
            global.dir.join(meshca::ROOT_KEY).display(),
            if args.encrypt { " (encrypted)" } else { "" }
        ),
    };
    say(
        global.quiet,
        format_args!(
            "root: wrote {} and {key_written} ({}, valid until {})",
            global.dir.join(meshca::ROOT_CERT).display(),
            args.key_type,
            date(root.not_after())
        ),
    );
    Ok(crate::EXIT_OK)
}

/// `--renew`: the same key and subject, a new validity.
fn renew(global: &Global, args: &RootArgs) -> Result<u8> {
    super::renew::refuse_cluster_dir("--dir", &global.dir)?;
    let session = super::Session::open(global, false)?;
    let key_ref = super::root_key_ref(&args.root_key)?;
    let root = super::mesh_signer(&global.dir, &session.mesh, global, key_ref.as_ref())?;
    let (mesh, renewal) =
        session
            .mesh
            .renew_root(&root, args.days, time::OffsetDateTime::now_utc())?;
    session.commit(&mesh, true, super::ISTIOD_NAMESPACE)?;
    say(
        global.quiet,
        format_args!(
            "root: renewed {} (same key and subject), valid until {} (was {}); the root key unchanged",
            global.dir.join(meshca::ROOT_CERT).display(),
            date(renewal.not_after),
            date(renewal.previous_not_after)
        ),
    );
    say(
        global.quiet,
        format_args!(
            "{} clusters' root-cert.pem now holds the renewed root first and the old one after it, and their \
             cert-chain.pem (and cacerts.yaml) ends with the renewed root; their intermediates are unchanged and \
             keep verifying (same issuer name, key and key identifier)",
            renewal.clusters.len()
        ),
    );
    say(
        global.quiet,
        format_args!(
            "next: root-cert.pem changed, which istiod ignores (with the whole update) unless it runs with \
             ISTIO_MULTIROOT_MESH=true: set it on every istiod, then apply each cluster's cacerts.yaml \
             and check the step with `meshca verify --multiroot --previous OLD {}`",
            global.dir.display()
        ),
    );
    Ok(crate::EXIT_OK)
}
