//! `meshca bundle`: every root of the mesh as a trust bundle.

use std::io::Write;

use anyhow::Result;
use clap::ArgMatches;
use meshca::{TrustBundleFormat, TrustBundleOptions};

use crate::cli::BundleArgs;

pub(crate) fn run(args: &BundleArgs, m: &ArgMatches) -> Result<u8> {
    let format = TrustBundleFormat::from(args.format);
    if format != TrustBundleFormat::Spiffe {
        for (id, flag) in [
            ("sequence", "--sequence"),
            ("refresh_hint", "--refresh-hint"),
        ] {
            if super::init::from_cli(m, id) {
                return Err(meshca::Error::InvalidArgument {
                    what: "option",
                    value: flag.to_owned(),
                    reason: format!("the {format} format has no use for it"),
                }
                .into());
            }
        }
    }
    let _locks = super::read_locks(&[args.dir.as_path()], None)?;
    let mesh = meshca::store::load(&args.dir)?;
    let anchors = mesh.trust_anchors()?;
    let mut opts = TrustBundleOptions::new(format);
    opts.trust_domains = args.trust_domains.clone();
    opts.name = args.name.clone();
    opts.namespace = args.namespace.clone();
    opts.refresh_hint = args.refresh_hint;
    opts.sequence = match args.sequence {
        Some(n) => n,
        None => u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(1),
    };
    let text = meshca::trust_bundle(&anchors, &opts)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(crate::EXIT_OK)
}
