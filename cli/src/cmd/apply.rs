//! `meshca apply -f FILE`: make DIR what the mesh file says, as one
//! transaction.

use std::path::Path;

use anyhow::Result;
use meshca::plan::{Action, MeshFile, Plan};
use meshca::{RootCa, VerifyOptions};

use crate::cli::{ApplyArgs, Global};
use crate::output::say;

pub(crate) fn run(global: &Global, args: &ApplyArgs) -> Result<u8> {
    let file = super::plan::read_mesh_file(&args.file)?;
    let at = args.at.unwrap_or_else(time::OffsetDateTime::now_utc);
    if std::fs::symlink_metadata(&global.dir).is_err() {
        // What cannot be done is refused before DIR is made.
        let plan = meshca::plan::plan(&file, &meshca::Mesh::new(), at)?;
        check_root_key(global, &file, &args.file, &plan)?;
    }
    let session = super::Session::open(global, true)?;
    let plan = meshca::plan::plan(&file, &session.mesh, at)?;
    if plan.is_empty() {
        super::plan::report_kept(&global.dir, global.quiet, &args.file, &plan);
        say(
            global.quiet,
            format_args!(
                "nothing to do: {} is what {} says",
                global.dir.display(),
                args.file.display()
            ),
        );
        return Ok(crate::EXIT_OK);
    }
    check_root_key(global, &file, &args.file, &plan)?;
    // The passphrase (when asked) comes before the slow key generation.
    let signer = if plan.needs_root_key() {
        Some(signer(global, &file, &args.file, &session)?)
    } else {
        None
    };
    let keys = super::labelled_keys(&plan.key_types(), plan.key_labels(), global.quiet)?;
    let new = plan.apply(&session.mesh, signer.as_ref(), keys, at)?;
    let mut opts = VerifyOptions::at(at);
    opts.trust_domain = file.trust_domain.clone();
    let written = session.commit_with(&new, false, &opts)?;
    for a in &plan.actions {
        say(
            global.quiet,
            format_args!("{}", super::plan::describe(a, true)),
        );
    }
    super::plan::report_kept(&global.dir, global.quiet, &args.file, &plan);
    say(
        global.quiet,
        format_args!(
            "{}: {} file{} written or removed; `meshca verify {}` checks it",
            global.dir.display(),
            written.len(),
            if written.len() == 1 { "" } else { "s" },
            global.dir.display()
        ),
    );
    Ok(crate::EXIT_OK)
}

/// Where the file says the root key is: `root-key.pem` in DIR (the
/// default), another key file, or a `pkcs11:` URI.
enum KeyRef {
    InDir,
    File(std::path::PathBuf),
    Pkcs11(String),
}

fn key_ref(global: &Global, file: &MeshFile, mesh_file: &Path) -> KeyRef {
    let Some(key) = &file.root.key else {
        return KeyRef::InDir;
    };
    if key.starts_with("pkcs11:") {
        return KeyRef::Pkcs11(key.clone());
    }
    // A relative path is relative to the mesh file, as it is kept in git.
    let base = mesh_file.parent().unwrap_or(Path::new(""));
    let path = base.join(key);
    let in_dir = global.dir.join(meshca::ROOT_KEY);
    let same = match (std::fs::canonicalize(&path), std::fs::canonicalize(&in_dir)) {
        (Ok(a), Ok(b)) => a == b,
        _ => path == in_dir,
    };
    if same {
        KeyRef::InDir
    } else {
        KeyRef::File(path)
    }
}

/// Refuses what this version cannot do with the root key the file names,
/// before any work.
fn check_root_key(global: &Global, file: &MeshFile, mesh_file: &Path, plan: &Plan) -> Result<()> {
    let creates = plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::CreateRoot { .. }));
    let what = "root.key".to_owned();
    match key_ref(global, file, mesh_file) {
        KeyRef::InDir => Ok(()),
        KeyRef::Pkcs11(_) if creates => Err(meshca::Error::Refused {
            what,
            reason: "apply makes a new root only with its key in a file; make a root in a \
                     token first with `meshca root --root-key pkcs11:...`"
                .into(),
        }
        .into()),
        KeyRef::File(_) if creates => Err(meshca::Error::Refused {
            what,
            reason: format!(
                "apply makes a new root only with its key in {}: leave root.key out, or \
                 make the root first",
                global.dir.join(meshca::ROOT_KEY).display()
            ),
        }
        .into()),
        _ => Ok(()),
    }
}

/// The mesh's root as a signer, its key from where the file says.
fn signer(
    global: &Global,
    file: &MeshFile,
    mesh_file: &Path,
    session: &super::Session,
) -> Result<RootCa> {
    match key_ref(global, file, mesh_file) {
        KeyRef::File(path) => {
            let Some(root) = &session.mesh.root else {
                return Err(meshca::Error::MissingFile {
                    path: global.dir.join(meshca::ROOT_CERT),
                    hint: String::new(),
                }
                .into());
            };
            let what = path.display().to_string();
            let key = zeroize::Zeroizing::new(meshca::read_named(&path)?);
            let pass_file = global.passphrase_file.clone();
            Ok(RootCa::from_pem_with_passphrase(
                &global.dir.join(meshca::ROOT_CERT).display().to_string(),
                root.cert.as_bytes(),
                &what,
                &key,
                &|| super::read_passphrase(&what, pass_file.as_deref(), false),
            )?)
        }
        KeyRef::Pkcs11(uri) => {
            let key_ref = super::root_key_ref(&crate::cli::RootKeyOpt {
                root_key: Some(uri),
            })?;
            super::mesh_signer(&global.dir, &session.mesh, global, key_ref.as_ref())
        }
        KeyRef::InDir => super::mesh_signer(&global.dir, &session.mesh, global, None),
    }
}
