//! Reading cluster and certs directories into [`BundleFiles`] and
//! [`MeshFiles`], then verifying the bytes. What only the file system
//! shows (files that cannot be read, key file modes) is reported here, not
//! by the byte checks.

use crate::files::OpenDir;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::report::{err, join, warn, Code, Finding, Group, GroupKind, Report};
use super::{verify_bundle, verify_mesh_step, BundleFiles, MeshFiles, VerifyOptions};
use crate::bundle::{CA_CERT, CA_CRL, CA_KEY, CERT_CHAIN, ROOT_CERT, ROOT_KEY, SECRET_YAML};
use crate::error::{Error, Result};
use crate::keyref::{Pkcs11Uri, ROOT_KEY_URI};

fn label_for(path: &Path) -> String {
    let s = path.display().to_string();
    let s = s
        .strip_prefix("./")
        .unwrap_or(&s)
        .trim_end_matches('/')
        .to_owned();
    if s == "." {
        String::new()
    } else {
        s
    }
}

fn is_cluster_dir(dir: &Path) -> bool {
    [CA_CERT, CA_KEY, CERT_CHAIN, SECRET_YAML]
        .iter()
        .any(|n| dir.join(n).exists())
}

#[cfg(unix)]
fn check_key_mode(path: &Path, file: &str, rf: &mut ReadFindings) {
    use std::os::unix::fs::PermissionsExt;
    let out = &mut rf.findings;
    // The file read (its descriptor's metadata), else the file itself,
    // never a link's target (a link is refused when read).
    let meta = match rf.modes.iter().find(|(f, _)| f == file) {
        Some((_, m)) => Some(m.clone()),
        None => std::fs::symlink_metadata(path).ok(),
    };
    if let Some(m) = meta.filter(|m| m.is_file()) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(warn(
                Code::KeyPermissions,
                file,
                format!("{file} is readable by others (mode {mode:o}); run `chmod 600 {file}`"),
            ));
        }
    }
}

#[cfg(not(unix))]
fn check_key_mode(_: &Path, _: &str, _: &mut ReadFindings) {}

/// The cluster directories directly under `dir`, sorted.
fn cluster_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(cluster_entries(dir)?.0)
}

/// The cluster directories directly under `dir`, sorted, and the symbolic
/// links there that point at one: an untrusted certs directory is never
/// followed out of (a link could lead verify to the operator's keys).
fn cluster_entries(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    use rayon::prelude::*;
    let mut candidates = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let Ok(entry) = entry else { continue };
        // DirEntry::file_type does not follow a symbolic link.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        // A directory a save was writing whole (`.meshca-*.tmp`) is not a
        // cluster: it is reported as a leftover.
        if crate::store::is_temp_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        if kind.is_dir() || kind.is_symlink() {
            candidates.push((entry.path(), kind.is_symlink()));
        }
    }
    // Whether each holds a cluster's file: one look per directory, on all
    // cores (the inodes of a fleet not in the page cache come off disk).
    let found: Vec<(PathBuf, bool)> = candidates
        .into_par_iter()
        .filter(|(path, link)| (!link || path.is_dir()) && is_cluster_dir(path))
        .collect();
    let (links, dirs): (Vec<_>, Vec<_>) = found.into_iter().partition(|(_, link)| *link);
    let mut dirs: Vec<PathBuf> = dirs.into_iter().map(|(p, _)| p).collect();
    let mut links: Vec<PathBuf> = links.into_iter().map(|(p, _)| p).collect();
    dirs.sort();
    links.sort();
    Ok((dirs, links))
}

/// Verifies a cluster directory.
pub fn verify_cluster_dir(dir: &Path, opts: &VerifyOptions) -> Group {
    check_cluster_dir(dir, opts)
}

/// Verifies a cluster directory: reads it, then runs [`verify_bundle`].
fn check_cluster_dir(dir: &Path, opts: &VerifyOptions) -> Group {
    let label = label_for(dir);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| label.clone());
    let (files, rf) = read_bundle_dir(dir, &label, false);
    let findings = verify_bundle(&label, Some(&name), &files, opts);
    rf.merge_into(Group::new(&name, &label, GroupKind::Cluster, findings))
}

/// What reading a directory found that the bytes cannot show: files that
/// could not be read, too large, or with loose permissions.
#[derive(Default)]
struct ReadFindings {
    findings: Vec<Finding>,
    /// Files (as labelled) that exist but could not be read: their
    /// `missing-file` finding from the byte checks is dropped.
    unreadable: Vec<String>,
    /// The metadata of the secret files read (as labelled), for their mode.
    modes: Vec<(String, std::fs::Metadata)>,
}

impl ReadFindings {
    /// Reads one file, `None` when absent; other failures become findings.
    fn read(&mut self, dir: &OpenDir, label: &str, name: &str) -> Option<Vec<u8>> {
        let file = join(label, name);
        match dir.read_limited_meta(name) {
            Ok((b, meta)) => {
                if name == CA_KEY || name == SECRET_YAML || name == ROOT_KEY {
                    self.modes.push((file, meta));
                }
                Some(b)
            }
            Err(Error::MissingFile { .. }) => None,
            Err(Error::TooLarge { size, limit, .. }) => {
                self.findings.push(err(
                    Code::TooLarge,
                    &file,
                    format!("{file} is {size} bytes, over the {limit}-byte limit"),
                ));
                self.unreadable.push(file);
                None
            }
            Err(e) => {
                self.findings.push(err(
                    Code::NotPem,
                    &file,
                    format!("{file} cannot be read: {e}"),
                ));
                self.unreadable.push(file);
                None
            }
        }
    }

    /// Adds these findings to a group computed from the bytes.
    fn merge_into(self, group: Group) -> Group {
        let mut findings: Vec<Finding> = group
            .findings
            .into_iter()
            .filter(|f| !(f.code == Code::MissingFile && self.unreadable.contains(&f.file)))
            .collect();
        findings.extend(self.findings);
        Group::new(&group.name, &group.path, group.kind, findings)
    }
}

/// Reads a cluster directory's files, with what the file system says.
/// `listed`: `dir` was found in a listing of the certs directory (a link
/// put there since is not followed); else the operator named it.
fn read_bundle_dir(dir: &Path, label: &str, listed: bool) -> (BundleFiles, ReadFindings) {
    let mut rf = ReadFindings::default();
    let dir = &OpenDir::open(dir, !listed);
    let files = BundleFiles {
        ca_cert: rf.read(dir, label, CA_CERT),
        ca_key: rf.read(dir, label, CA_KEY).map(zeroize::Zeroizing::new),
        cert_chain: rf.read(dir, label, CERT_CHAIN),
        root_cert: rf.read(dir, label, ROOT_CERT),
        ca_crl: rf.read(dir, label, CA_CRL),
        cacerts_yaml: rf
            .read(dir, label, SECRET_YAML)
            .map(zeroize::Zeroizing::new),
    };
    for key in [CA_KEY, SECRET_YAML] {
        check_key_mode(&dir.join(key), &join(label, key), &mut rf);
    }
    check_tls_layout(dir, label, &files, &mut rf);
    (files, rf)
}

/// A `tls.crt` in the directory switches istiod to the kubernetes.io/tls
/// layout (istio/istio pilot/pkg/bootstrap/istio_ca.go
/// detectSigningCABundleAndCRL): it then loads `tls.crt`, `tls.key` and
/// `ca.crt` (chain: `tls.crt` + `ca.crt`) and never reads the istiod files
/// or `ca-crl.pem`. What meshca verified is only what istiod loads when
/// those files are the same as `ca-cert.pem`, `ca-key.pem`, `root-cert.pem`.
fn check_tls_layout(dir: &OpenDir, label: &str, files: &BundleFiles, rf: &mut ReadFindings) {
    const TLS_CERT: &str = "tls.crt";
    if !dir.has(TLS_CERT) {
        return;
    }
    let tls_cert = rf.read(dir, label, TLS_CERT);
    let tls_key = rf.read(dir, label, "tls.key").map(zeroize::Zeroizing::new);
    let tls_root = rf.read(dir, label, "ca.crt");
    let same = tls_cert.as_deref() == files.ca_cert.as_deref()
        && tls_key.as_deref().map(|k| k.as_slice())
            == files.ca_key.as_deref().map(|k| k.as_slice())
        && tls_root.as_deref() == files.root_cert.as_deref();
    let file = join(label, TLS_CERT);
    if !same {
        rf.findings.push(err(
            Code::WrongContent,
            &file,
            format!("{file} exists, so istiod loads the kubernetes.io/tls layout (tls.crt, tls.key, ca.crt) instead of {CA_CERT}, {CA_KEY} and {ROOT_CERT}, and those files differ: istiod would run another CA than the one verified here"),
        ));
    } else if files.ca_crl.is_some() {
        rf.findings.push(warn(
            Code::WrongContent,
            &file,
            format!("{file} exists, so istiod loads the kubernetes.io/tls layout and never reads {CA_CRL}: revocation is off"),
        ));
    }
}

/// `root-key.uri` (the root key in a token), when there, must be what the
/// signing commands accept: one `pkcs11:` URI that records no PIN, and no
/// `root-key.pem` beside it (see [`crate::store::load`]). Otherwise every
/// command that loads the directory refuses it, so verify does too.
fn check_key_uri(dir: &OpenDir, label: &str, has_key_file: bool, rf: &mut ReadFindings) {
    let Some(bytes) = rf
        .read(dir, label, ROOT_KEY_URI)
        .map(zeroize::Zeroizing::new)
    else {
        return;
    };
    let file = join(label, ROOT_KEY_URI);
    let problem = match std::str::from_utf8(&bytes) {
        Err(_) => Some("is not text".to_owned()),
        Ok(line) => match Pkcs11Uri::parse(line.trim()) {
            Err(e) => Some(format!("is not a usable key reference ({e})")),
            Ok(u) if u.has_pin_value() => {
                Some("records a PIN (pin-value=): remove it, use pin-source=file:PATH".to_owned())
            }
            Ok(_) if has_key_file => Some(format!(
                "and {} are both there: keep the one that holds the root key",
                join(label, ROOT_KEY)
            )),
            Ok(_) => None,
        },
    };
    if let Some(problem) = problem {
        rf.findings.push(err(
            Code::WrongContent,
            &file,
            format!("{file} {problem}; every command that signs with the root refuses it"),
        ));
    }
}

/// Cluster directories by name.
type ClusterDirs = Vec<(String, PathBuf)>;

/// Reads a certs directory's root files and lists its cluster
/// directories (by name, sorted). Returns the root files (no clusters),
/// the mesh-level read findings and the cluster directories.
fn read_mesh_roots(dir: &Path, label: &str) -> Result<(MeshFiles, ReadFindings, ClusterDirs)> {
    let mut rf = ReadFindings::default();
    let top = &OpenDir::open(dir, true);
    let root_cert = rf.read(top, label, ROOT_CERT);
    let root_key = rf.read(top, label, ROOT_KEY).map(zeroize::Zeroizing::new);
    if root_key.is_some() {
        check_key_mode(&dir.join(ROOT_KEY), &join(label, ROOT_KEY), &mut rf);
    }
    let root_crl = rf.read(top, label, crate::crl::ROOT_CRL);
    check_key_uri(top, label, root_key.is_some(), &mut rf);
    let (cdirs, links) = cluster_entries(dir)?;
    for link in links {
        let file = join(
            label,
            &link.file_name().unwrap_or_default().to_string_lossy(),
        );
        rf.findings.push(err(
            Code::WrongContent,
            &file,
            format!("{file} is a symbolic link to a directory: not followed, so that cluster was not checked; keep cluster directories inside the certs directory"),
        ));
    }
    let mut named: Vec<(String, PathBuf)> = cdirs
        .into_iter()
        .filter_map(|cdir| {
            let name = cdir.file_name()?.to_string_lossy().into_owned();
            Some((name, cdir))
        })
        .collect();
    named.sort();
    let mesh = MeshFiles {
        root_cert,
        root_key,
        root_crl,
        clusters: BTreeMap::new(),
    };
    Ok((mesh, rf, named))
}

/// Reads a certs directory: its root files and every cluster directory.
/// Returns the files and the mesh-level read findings.
fn read_mesh_dir(dir: &Path, label: &str) -> Result<(MeshFiles, ReadFindings)> {
    let (mut mesh, rf, named) = read_mesh_roots(dir, label)?;
    // Cluster directories are independent: read them on all cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let read = crate::mesh::map_parallel(named, threads, &|(name, cdir): (String, PathBuf)| {
        let (files, _) = read_bundle_dir(&cdir, &join(label, &name), true);
        (name, files)
    });
    mesh.clusters.extend(read);
    Ok((mesh, rf))
}

/// Verifies a certs directory: its root, every cluster under it, and the
/// mesh as a whole (one root, no shared intermediate keys), as
/// [`super::verify_mesh`] does, with what only the file system shows
/// (unreadable files, key file modes) added to the groups. Each cluster's
/// files are read, checked and dropped (keys wiped) in one job, on all
/// cores.
pub fn verify_certs_dir(dir: &Path, opts: &VerifyOptions) -> Result<Vec<Group>> {
    let label = label_for(dir);
    let (mesh, mesh_reads, named) = read_mesh_roots(dir, &label)?;
    let names: Vec<&str> = named.iter().map(|(name, _)| name.as_str()).collect();
    // By index: two directories whose names are not UTF-8 may show as the
    // same name, and each is still checked.
    let mut groups =
        super::mesh::verify_mesh_with(&label, &mesh, &names, opts, &|i, name, clabel| {
            let (files, crf) = named
                .get(i)
                .map(|(_, cdir)| read_bundle_dir(cdir, clabel, true))
                .unwrap_or_default();
            let (findings, ca) = super::verify_bundle_and_ca(clabel, Some(name), &files, opts);
            drop(files);
            (
                crf.merge_into(Group::new(name, clabel, GroupKind::Cluster, findings)),
                ca,
            )
        })
        .into_iter();
    let mut all = Vec::new();
    if let Some(first) = groups.next() {
        all.push(mesh_reads.merge_into(first));
    }
    all.extend(groups);
    Ok(all)
}

/// Verifies each path: a cluster directory (it holds `ca-cert.pem`,
/// `ca-key.pem`, `cert-chain.pem` or `cacerts.yaml`) or a certs directory
/// (its root and every cluster under it). A path that is neither is an
/// [`Error`], not a finding: the command could not run.
pub fn verify_paths(paths: &[PathBuf], opts: &VerifyOptions) -> Result<Report> {
    let mut groups = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::MissingFile {
                    path: path.clone(),
                    hint: String::new(),
                }
            } else {
                Error::io(path, e)
            }
        })?;
        if !meta.is_dir() {
            return Err(Error::InvalidArgument {
                what: "path",
                value: path.display().to_string(),
                reason: "not a directory: give a cluster directory or a certs directory (use `meshca inspect` for a single file)".into(),
            });
        }
        if is_cluster_dir(path) {
            groups.push(verify_cluster_dir(path, opts));
        } else if path.join(ROOT_CERT).exists() || !cluster_dirs(path)?.is_empty() {
            groups.extend(verify_certs_dir(path, opts)?);
        } else {
            return Err(Error::InvalidArgument {
                what: "path",
                value: path.display().to_string(),
                reason: "neither a cluster directory (no ca-cert.pem) nor a certs directory (no root-cert.pem, no cluster directories)".into(),
            });
        }
    }
    Ok(Report::new(groups, opts))
}

/// Checks the step between two certs directories, `previous` then
/// `current` (stages of a root rotation): reads both, then runs
/// [`verify_mesh_step`].
pub fn verify_step(previous: &Path, current: &Path, opts: &VerifyOptions) -> Result<Group> {
    let (prev_label, cur_label) = (label_for(previous), label_for(current));
    let (prev, ..) = read_mesh_dir(previous, &prev_label)?;
    let (cur, ..) = read_mesh_dir(current, &cur_label)?;
    Ok(verify_mesh_step(&prev_label, &prev, &cur_label, &cur, opts))
}
