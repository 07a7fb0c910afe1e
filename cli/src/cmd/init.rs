//! `meshca init CLUSTER...`: the one-command path.

use anyhow::Result;
use clap::parser::ValueSource;
use clap::ArgMatches;
use meshca::{RootCa, RootParams};

use crate::cli::{Global, InitArgs};
use crate::output::{date, say};

/// Whether the option `id` was given on the command line.
pub(crate) fn from_cli(m: &ArgMatches, id: &str) -> bool {
    m.value_source(id) == Some(ValueSource::CommandLine)
}

/// Whether the option `id` was given at all (command line or environment).
pub(crate) fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(
        m.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

pub(crate) fn run(global: &Global, args: &InitArgs, m: &ArgMatches) -> Result<u8> {
    super::check_clusters(&args.clusters)?;
    let key_ref = super::root_key_ref(&args.root_key)?;
    // Bad or refused constraints stop the command before any key is made.
    super::name_constraints(&args.constraints)?;
    let session = super::Session::open(global, true)?;
    let has_root = session.mesh.root.is_some();
    let from_secret = args.intermediate.root_from_secret.is_some();
    // Options about a new root mean nothing when none is made: refuse them
    // rather than ignore them.
    if has_root || from_secret {
        let mut ignored: Vec<&str> = Vec::new();
        if args.encrypt_root {
            ignored.push("--encrypt-root");
        }
        for (id, flag) in [
            ("root_key_type", "--root-key-type"),
            ("root_days", "--root-days"),
            ("root_org", "--root-org"),
            ("root_cn", "--root-cn"),
        ] {
            if from_cli(m, id) {
                ignored.push(flag);
            }
        }
        if !ignored.is_empty() {
            return Err(meshca::Error::Refused {
                what: global.dir.join(meshca::ROOT_CERT).display().to_string(),
                reason: format!(
                    "{} the root of this mesh, so {} would have no effect",
                    if from_secret {
                        "--root-from-secret gives"
                    } else {
                        "exists and is"
                    },
                    ignored.join(", ")
                ),
            }
            .into());
        }
    }
    let existing = if from_secret || has_root {
        Some(super::signer(
            &session,
            global,
            &args.intermediate,
            key_ref.as_ref(),
        )?)
    } else {
        None
    };
    if !args.force {
        for c in &args.clusters {
            if session.mesh.clusters.contains_key(c) {
                return Err(meshca::Error::AlreadyExists {
                    path: global.dir.join(c).join(meshca::CA_CERT),
                }
                .into());
            }
        }
    }
    // Ask for a new root's passphrase before the slow key generation.
    let pass =
        super::new_root_passphrase(&global.dir, global, existing.is_none() && args.encrypt_root)?;
    let cluster_type = args.intermediate.key_type.unwrap_or_default();
    // Command-line options beat environment variables: `--key-type` beats
    // ROOTCA_KEYSZ; `--root-key-type` beats both.
    let root_type = if from_cli(m, "root_key_type") {
        args.root.root_key_type
    } else if from_cli(m, "key_type") {
        args.intermediate.key_type
    } else {
        args.root.root_key_type.or(args.intermediate.key_type)
    }
    .unwrap_or_default();
    // A new root in a token: its key pair is made there, first.
    let token_root = match existing {
        Some(_) => None,
        None => super::new_root_key(key_ref.as_ref(), root_type, args.encrypt_root, args.force)?,
    };
    let mut types = Vec::with_capacity(args.clusters.len() + 1);
    let mut labels: Vec<String> = Vec::with_capacity(types.len());
    if existing.is_none() && token_root.is_none() {
        types.push(root_type);
        labels.push("root".to_owned());
    }
    types.extend(std::iter::repeat_n(cluster_type, args.clusters.len()));
    labels.extend(args.clusters.iter().cloned());
    let mut keys = super::labelled_keys(&types, labels, global.quiet)?;

    let now = time::OffsetDateTime::now_utc();
    let (mesh, root, new_root) = match existing {
        Some(root) => (session.mesh.clone(), root, false),
        None => {
            let mut params = RootParams::default();
            params.org = args.root.root_org.clone();
            params.cn = args.root.root_cn.clone();
            params.days = args.root.root_days;
            params.key_type = root_type;
            let key = match token_root {
                Some(key) => key,
                None => keys.remove(0),
            };
            let root = RootCa::self_signed(&params, key, now)?;
            let key_pem = super::root_key_pem(&root, pass.as_ref())?;
            (session.mesh.with_root(&root, key_pem, false)?, root, true)
        }
    };
    let (mesh, added) = super::add_clusters(
        &mesh,
        &root,
        &args.clusters,
        keys,
        &args.intermediate,
        Some(&args.constraints),
        args.force,
    )?;
    let saved = session.commit_for(
        &mesh,
        args.force,
        &args.intermediate.namespace,
        super::checked_trust_domain(&args.constraints),
    );
    super::keep_token_root_if_saved(&saved, &root);
    saved?;
    if new_root {
        say(
            global.quiet,
            format_args!(
                "root: wrote {} and {} ({root_type}, valid until {})",
                global.dir.join(meshca::ROOT_CERT).display(),
                match root.key().token_uri() {
                    Some(uri) => format!(
                        "{} (the key stays in the token: {})",
                        global.dir.join(meshca::ROOT_KEY_URI).display(),
                        uri.describe()
                    ),
                    None => format!(
                        "{}{}",
                        global.dir.join(meshca::ROOT_KEY).display(),
                        if pass.is_some() { " (encrypted)" } else { "" }
                    ),
                },
                date(root.not_after())
            ),
        );
    } else {
        let source = match &args.intermediate.root_from_secret {
            Some(p) => format!("the CA of {}", p.display()),
            None => global.dir.join(meshca::ROOT_CERT).display().to_string(),
        };
        say(global.quiet, format_args!("root: using {source}"));
    }
    super::report_added(
        &global.dir,
        &root,
        &added,
        args.intermediate.days,
        global.quiet,
    );
    say(
        global.quiet,
        format_args!(
            "next: kubectl --context <cluster> apply -f {}",
            global
                .dir
                .join("<cluster>")
                .join(meshca::SECRET_YAML)
                .display()
        ),
    );
    Ok(crate::EXIT_OK)
}
