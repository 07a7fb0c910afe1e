//! `meshca root`: the offline root CA.

use anyhow::Result;
use meshca::{RootCa, RootParams};

use crate::cli::{Global, RootArgs};
use crate::output::{date, say};

pub(crate) fn run(global: &Global, args: &RootArgs) -> Result<u8> {
    let session = super::Session::open(&global.dir, true)?;
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
        super::labelled_keys(&[args.key_type], vec!["root".to_owned()], global.quiet)?.remove(0);
    let root = RootCa::self_signed(&params, key, time::OffsetDateTime::now_utc())?;
    let key_pem = super::root_key_pem(&root, pass.as_ref())?;
    let mesh = session.mesh.with_root(&root, Some(key_pem), args.force)?;
    session.commit(&mesh, args.force, super::ISTIOD_NAMESPACE)?;
    say(
        global.quiet,
        format_args!(
            "root: wrote {} and {}{} ({}, valid until {})",
            global.dir.join(meshca::ROOT_CERT).display(),
            global.dir.join(meshca::ROOT_KEY).display(),
            if args.encrypt { " (encrypted)" } else { "" },
            args.key_type,
            date(root.not_after())
        ),
    );
    Ok(crate::EXIT_OK)
}
