//! `meshca root`: the offline root CA.

use anyhow::Result;
use meshca::{refuse_existing, CertsDir, RootCa, RootParams};

use crate::cli::{Global, RootArgs};
use crate::output::{date, say};

pub(crate) fn run(global: &Global, args: &RootArgs) -> Result<u8> {
    let certs = CertsDir::new(&global.dir);
    if !args.force {
        refuse_existing([
            certs.root_cert_path().as_path(),
            certs.root_key_path().as_path(),
        ])?;
    }
    let mut params = RootParams::default();
    params.org = args.org.clone();
    params.cn = args.cn.clone();
    params.days = args.days;
    params.key_type = args.key_type;
    let key = super::keys(&[args.key_type], global.quiet)?.remove(0);
    let root = RootCa::self_signed(&params, key, time::OffsetDateTime::now_utc())?;
    let pass = super::new_root_passphrase(&certs, global, args.encrypt)?;
    certs.write_root_with(&root, pass.as_ref().map(|p| p.as_bytes()), args.force)?;
    say(
        global.quiet,
        format_args!(
            "root: wrote {} and {}{} ({}, valid until {})",
            certs.root_cert_path().display(),
            certs.root_key_path().display(),
            if args.encrypt { " (encrypted)" } else { "" },
            args.key_type,
            date(root.not_after())
        ),
    );
    Ok(crate::EXIT_OK)
}
