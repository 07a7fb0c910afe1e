//! An installer that builds a mesh in memory, verifies it as `meshca
//! verify` would, and hands each cluster its `cacerts` Secret, without
//! touching the file system (pass a directory to also save it there, all
//! files or none, under the directory's lock).
//!
//! ```text
//! cargo run -p meshca --example installer -- [DIR]
//! ```

use std::process::ExitCode;

use meshca::mesh::{Mesh, NewCluster};
use meshca::{IntermediateParams, KeyType, PrivateKey, RootCa, RootParams, VerifyOptions};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("installer: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> meshca::Result<ExitCode> {
    let now = time::OffsetDateTime::now_utc();
    let mut root_params = RootParams::default();
    root_params.key_type = KeyType::EcdsaP384;
    let root = RootCa::generate(&root_params, now)?;

    // The mesh: a root (its key kept with the mesh) and two clusters.
    let mesh = Mesh::new().with_root(&root, Some(root.key().to_pem()), false)?;
    let clusters = ["east", "west"]
        .iter()
        .map(|name| {
            let mut params = IntermediateParams::default();
            params.key_type = KeyType::EcdsaP256;
            Ok(NewCluster::new(
                name,
                params,
                PrivateKey::generate(KeyType::EcdsaP256)?,
            ))
        })
        .collect::<meshca::Result<Vec<_>>>()?;
    let (mesh, added) = mesh.add_clusters(&root, clusters, false, now)?;
    for a in &added {
        println!(
            "{}: {} intermediate until {}",
            a.name, a.key_type, a.not_after
        );
    }

    // Revocation lists for both clusters (istiod 1.27+ reads ca-crl.pem).
    let names: Vec<String> = mesh.clusters.keys().cloned().collect();
    let mesh = mesh.write_crls(&root, &names, now, meshca::DEFAULT_CRL_DAYS)?;

    // Check it as istiod would, before anything leaves the process.
    let report = mesh.verify("", &VerifyOptions::at(now));
    print!("{report}");
    if !report.ok {
        eprintln!("installer: the mesh does not verify");
        return Ok(ExitCode::from(1));
    }
    for (name, cluster) in &mesh.clusters {
        if let Some(yaml) = &cluster.secret_yaml {
            println!(
                "{name}: cacerts Secret ready ({} bytes of YAML)",
                yaml.len()
            );
        }
    }

    if let Some(dir) = std::env::args_os().nth(1).map(std::path::PathBuf::from) {
        let _lock = meshca::store::DirLock::acquire(&dir, &|lock| {
            eprintln!("installer: waiting for {}", lock.display())
        })?;
        let old = meshca::store::load(&dir)?;
        let written = meshca::store::save(&dir, Some(&old), &mesh, false)?;
        println!("saved {} files in {}", written.len(), dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
