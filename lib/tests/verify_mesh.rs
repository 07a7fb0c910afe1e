//! A mesh verified in memory gives the same report as the same files on disk.

use std::collections::BTreeMap;

use meshca::{
    verify_certs_dir, verify_mesh, verify_mesh_step, verify_step, BundleFiles, Code,
    IntermediateParams, KeyType, MeshFiles, PrivateKey, RootCa, RootParams, Severity,
    VerifyOptions,
};
use time::macros::datetime;
use time::OffsetDateTime;
use zeroize::Zeroizing;

const NOW: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

fn root() -> RootCa {
    let mut p = RootParams::default();
    p.key_type = KeyType::EcdsaP256;
    RootCa::generate(&p, NOW).unwrap()
}

fn bundle_files(root: &RootCa, cluster: &str) -> BundleFiles {
    let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    let issued = root
        .issue_intermediate(cluster, &IntermediateParams::default(), key, NOW)
        .unwrap();
    let b = issued.ca.bundle();
    let mut f = BundleFiles::default();
    f.ca_cert = Some(b.ca_cert.into_bytes());
    f.ca_key = Some(Zeroizing::new(b.ca_key.as_bytes().to_vec()));
    f.cert_chain = Some(b.cert_chain.into_bytes());
    f.root_cert = Some(b.root_cert.into_bytes());
    f
}

fn write_mesh(dir: &std::path::Path, mesh: &MeshFiles) {
    use std::os::unix::fs::PermissionsExt;
    let put = |p: std::path::PathBuf, b: &[u8], secret: bool| {
        std::fs::write(&p, b).unwrap();
        let mode = if secret { 0o600 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    if let Some(b) = &mesh.root_cert {
        put(dir.join("root-cert.pem"), b, false);
    }
    if let Some(b) = &mesh.root_key {
        put(dir.join("root-key.pem"), b, true);
    }
    for (name, f) in &mesh.clusters {
        let c = dir.join(name);
        std::fs::create_dir_all(&c).unwrap();
        for (file, bytes, secret) in [
            ("ca-cert.pem", f.ca_cert.as_deref(), false),
            ("ca-key.pem", f.ca_key.as_ref().map(|k| k.as_slice()), true),
            ("cert-chain.pem", f.cert_chain.as_deref(), false),
            ("root-cert.pem", f.root_cert.as_deref(), false),
        ] {
            if let Some(b) = bytes {
                put(c.join(file), b, secret);
            }
        }
    }
}

fn sample_mesh() -> MeshFiles {
    let root = root();
    let mut mesh = MeshFiles::default();
    mesh.root_cert = Some(root.cert_pem().into_bytes());
    mesh.root_key = Some(Zeroizing::new(root.key().to_pem().as_bytes().to_vec()));
    let mut clusters = BTreeMap::new();
    clusters.insert("east".to_owned(), bundle_files(&root, "east"));
    let mut west = bundle_files(&root, "west");
    // A defect, so the comparison covers findings too.
    west.ca_key = clusters["east"].ca_key.clone();
    clusters.insert("west".to_owned(), west);
    mesh.clusters = clusters;
    mesh
}

#[test]
fn verify_mesh_in_memory_equals_verify_certs_dir_on_disk() {
    let mesh = sample_mesh();
    let tmp = tempfile::tempdir().unwrap();
    write_mesh(tmp.path(), &mesh);
    let opts = VerifyOptions::at(NOW);
    let label = tmp.path().display().to_string();
    let from_disk = verify_certs_dir(tmp.path(), &opts).unwrap();
    let in_memory = verify_mesh(&label, &mesh, &opts);
    assert_eq!(from_disk, in_memory);
    assert_eq!(in_memory.len(), 3);
    assert_eq!(in_memory[0].name, "mesh");
    let west = &in_memory[2];
    assert_eq!(west.name, "west");
    assert!(west.findings.iter().any(|f| f.code == Code::KeyMismatch
        && f.severity == Severity::Error
        && f.file == format!("{label}/west/ca-key.pem")));
    assert!(in_memory[1].findings.is_empty(), "{:?}", in_memory[1]);
}

#[test]
fn verify_mesh_with_an_empty_label_names_files_relative() {
    let mesh = sample_mesh();
    let groups = verify_mesh("", &mesh, &VerifyOptions::at(NOW));
    assert_eq!(groups[0].path, ".");
    assert!(groups[2]
        .findings
        .iter()
        .any(|f| f.file == "west/ca-key.pem"));
}

// Linux: some file systems elsewhere refuse names that are not UTF-8.
#[cfg(target_os = "linux")]
#[test]
fn two_directories_whose_names_read_the_same_are_both_checked() {
    use std::os::unix::ffi::OsStrExt;
    let mesh = sample_mesh();
    let tmp = tempfile::tempdir().unwrap();
    write_mesh(tmp.path(), &mesh);
    // Neither name is UTF-8: both show as U+FFFD. One is a good cluster
    // (east's files), the other lacks its key.
    for (raw, drop_key) in [(b"\xff".as_slice(), false), (b"\xfe".as_slice(), true)] {
        let d = tmp.path().join(std::ffi::OsStr::from_bytes(raw));
        std::fs::create_dir(&d).unwrap();
        for f in [
            "ca-cert.pem",
            "ca-key.pem",
            "cert-chain.pem",
            "root-cert.pem",
        ] {
            if !(drop_key && f == "ca-key.pem") {
                std::fs::copy(tmp.path().join("east").join(f), d.join(f)).unwrap();
            }
        }
    }
    let groups = verify_certs_dir(tmp.path(), &VerifyOptions::at(NOW)).unwrap();
    let lossy: Vec<_> = groups.iter().filter(|g| g.name == "\u{FFFD}").collect();
    assert_eq!(lossy.len(), 2, "{groups:?}");
    let missing = lossy
        .iter()
        .filter(|g| g.findings.iter().any(|f| f.code == Code::MissingFile))
        .count();
    assert_eq!(missing, 1, "{lossy:?}");
}

#[test]
fn key_file_modes_are_reported_by_the_directory_reader_only() {
    use std::os::unix::fs::PermissionsExt;
    let mesh = sample_mesh();
    let tmp = tempfile::tempdir().unwrap();
    write_mesh(tmp.path(), &mesh);
    let key = tmp.path().join("east/ca-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let from_disk = verify_certs_dir(tmp.path(), &VerifyOptions::at(NOW)).unwrap();
    assert!(from_disk[1]
        .findings
        .iter()
        .any(|f| f.code == Code::KeyPermissions));
    let label = tmp.path().display().to_string();
    let in_memory = verify_mesh(&label, &mesh, &VerifyOptions::at(NOW));
    assert!(!in_memory[1]
        .findings
        .iter()
        .any(|f| f.code == Code::KeyPermissions));
}

#[test]
fn verify_mesh_step_in_memory_equals_verify_step_on_disk() {
    let old = sample_mesh();
    let new = sample_mesh(); // another root: every cross-stage check fails
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_mesh(a.path(), &old);
    write_mesh(b.path(), &new);
    let mut opts = VerifyOptions::at(NOW);
    opts.multiroot = true;
    let from_disk = verify_step(a.path(), b.path(), &opts).unwrap();
    let (la, lb) = (
        a.path().display().to_string(),
        b.path().display().to_string(),
    );
    let in_memory = verify_mesh_step(&la, &old, &lb, &new, &opts);
    assert_eq!(from_disk, in_memory);
    assert!(in_memory.findings.iter().any(|f| f.code == Code::RootStep));
    assert!(in_memory
        .findings
        .iter()
        .any(|f| f.code == Code::CrossStageTrust));
}
