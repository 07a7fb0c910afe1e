//! `meshca crl CLUSTER...`: write each cluster's `ca-crl.pem`.

use anyhow::Result;
use meshca::{CertsDir, IntermediateCa, CA_CRL};

use crate::cli::{CrlArgs, Global};
use crate::output::say;

pub(crate) fn run(global: &Global, args: &CrlArgs) -> Result<u8> {
    super::check_clusters(&args.clusters)?;
    let certs = CertsDir::new(&global.dir);
    let now = time::OffsetDateTime::now_utc();
    let root_crl = match certs.read_root_crl()? {
        Some(crl) => crl,
        None => {
            // First CRL of this root: an empty one, number 1.
            let root = super::load_root(&certs, global)?;
            let crl = root.crl(None, &[], now, args.next_update_days)?;
            certs.write_root_crl(&crl)?;
            say(
                global.quiet,
                format_args!("root: wrote {}", certs.root_crl_path().display()),
            );
            crl.into_bytes()
        }
    };
    for cluster in &args.clusters {
        let bundle = certs.read_cluster(cluster)?;
        let ca = IntermediateCa::from_bundle(cluster, &bundle)?;
        let path = certs.cluster_dir(cluster)?.join(CA_CRL);
        let previous = bundle.ca_crl.as_deref().map(str::as_bytes);
        let crl = ca.ca_crl(&root_crl, previous, now, args.next_update_days)?;
        let secret = certs.write_ca_crl(cluster, &crl)?;
        say(
            global.quiet,
            format_args!(
                "{cluster}: wrote {}{}",
                path.display(),
                if secret {
                    " and updated cacerts.yaml"
                } else {
                    ""
                }
            ),
        );
    }
    Ok(crate::EXIT_OK)
}
