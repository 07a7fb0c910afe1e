//! One module per command, and the transaction every changing command runs:
//! lock the directory, load the mesh, run a library workflow, verify the
//! new mesh in memory, save it all or nothing.

pub(crate) mod apply;
pub(crate) mod audit;
pub(crate) mod bundle;
pub(crate) mod completions;
pub(crate) mod crl;
pub(crate) mod init;
pub(crate) mod inspect;
pub(crate) mod intermediate;
pub(crate) mod man;
pub(crate) mod plan;
pub(crate) mod recover;
pub(crate) mod renew;
pub(crate) mod revoke;
pub(crate) mod root;
pub(crate) mod rotate;
pub(crate) mod secret;
pub(crate) mod status;
pub(crate) mod verify;
pub(crate) mod workload;

use std::path::{Path, PathBuf};

use anyhow::Result;
use meshca::mesh::{MeshRoot, NewCluster};
use meshca::store::DirLock;
use meshca::{
    generate_keys, IntermediateParams, KeyRef, KeyType, Mesh, Pkcs11Uri, PrivateKey, RootCa,
    SecretOptions, SecretShape, VerifyOptions,
};

use crate::cli::{DataPlane, IntermediateOpts, NameConstraintOpts};
use crate::output::{date, say, warn, Progress};

/// istiod's namespace when a command has no option for it.
pub(crate) const ISTIOD_NAMESPACE: &str = "istio-system";

/// Generates keys on all cores, with progress on a terminal when slow,
/// naming each key (`root`, the cluster) in the progress line.
pub(crate) fn labelled_keys(
    types: &[KeyType],
    labels: Vec<String>,
    quiet: bool,
) -> Result<Vec<PrivateKey>> {
    // RSA key generation is random work of about 0.1-3 s a key: show
    // progress from the start; ECDSA is instant.
    let progress = Progress::new(labels, types, quiet);
    let keys = generate_keys(types, &|done, index| progress.tick(done, index));
    progress.finish();
    Ok(keys?)
}

pub(crate) fn intermediate_params(opts: &IntermediateOpts) -> IntermediateParams {
    let mut p = IntermediateParams::default();
    p.org = opts.org.clone();
    p.cn = opts.cn.clone();
    p.days = opts.days;
    p.key_type = opts.key_type.unwrap_or_default();
    p.san_dns = if opts.san_dns.is_empty() {
        vec![format!("istiod.{}.svc", opts.namespace)]
    } else {
        opts.san_dns.clone()
    };
    p
}

/// The name constraints `--name-constraints` asks for (`None` without it),
/// refused for an ambient mesh.
pub(crate) fn name_constraints(
    opts: &NameConstraintOpts,
) -> Result<Option<meshca::NameConstraints>> {
    if !opts.name_constraints {
        return Ok(None);
    }
    let nc = meshca::NameConstraints::new(opts.trust_domains.clone(), opts.permit_dns.clone());
    nc.validate()?;
    nc.check_verifier_support(opts.data_plane == DataPlane::Ambient)?;
    Ok(Some(nc))
}

/// The trust domain the new mesh is checked against: the first one the
/// name constraints permit.
pub(crate) fn checked_trust_domain(opts: &NameConstraintOpts) -> Option<&str> {
    if opts.name_constraints {
        opts.trust_domains.first().map(String::as_str)
    } else {
        None
    }
}

pub(crate) fn secret_options(namespace: &str, tls: bool) -> SecretOptions {
    let mut s = SecretOptions::default();
    s.namespace = namespace.to_owned();
    s.shape = if tls {
        SecretShape::Tls
    } else {
        SecretShape::Opaque
    };
    s
}

/// Refuses duplicate or invalid cluster names before any work.
pub(crate) fn check_clusters(clusters: &[String]) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(clusters.len());
    for c in clusters {
        meshca::validate_name("cluster name", c)?;
        if !seen.insert(c.as_str()) {
            return Err(meshca::Error::InvalidArgument {
                what: "cluster name",
                value: c.clone(),
                reason: "given twice".into(),
            }
            .into());
        }
    }
    Ok(())
}

/// A certs directory opened for a change: locked, its mesh loaded.
pub(crate) struct Session {
    pub(crate) dir: PathBuf,
    pub(crate) mesh: Mesh,
    /// Whether errors the loaded mesh has block a save
    /// (`--allow-existing-errors`).
    existing: meshca::ExistingErrors,
    /// Files of broken cluster directories this change replaces whole.
    stale: Vec<PathBuf>,
    _lock: Option<DirLock>,
}

/// The label findings carry for `dir` (`.` gives bare file names).
pub(crate) fn label(dir: &Path) -> String {
    let s = dir.display().to_string();
    if s == "." {
        String::new()
    } else {
        s.trim_end_matches('/').to_owned()
    }
}

impl Session {
    /// Locks `dir` (saying so while another run holds it), warns about
    /// temporary files an interrupted run left, and loads the mesh. A
    /// missing `dir` is made only when `create` (a command that can start a
    /// mesh); otherwise it is a missing input.
    pub(crate) fn open(global: &crate::cli::Global, create: bool) -> Result<Session> {
        Session::open_replacing(global, create, &[])
    }

    /// Like [`Session::open`], for a change that replaces the clusters
    /// `replaced` whole: one of them that cannot be loaded (a file
    /// missing or unreadable) does not block the change that repairs it
    /// (see [`meshca::store::load_replacing`]).
    pub(crate) fn open_replacing(
        global: &crate::cli::Global,
        create: bool,
        replaced: &[String],
    ) -> Result<Session> {
        let dir = global.dir.as_path();
        if !create && std::fs::symlink_metadata(dir).is_err() {
            return Err(meshca::Error::MissingFile {
                path: dir.to_owned(),
                hint: String::new(),
            }
            .into());
        }
        let lock = DirLock::acquire(dir, &|path| {
            warn(format_args!(
                "waiting for {}: another meshca run is changing {}",
                path.display(),
                dir.display()
            ))
        })?;
        recover(dir)?;
        warn_leftovers(dir);
        let (mesh, stale) = meshca::store::load_replacing(dir, replaced)?;
        Ok(Session {
            dir: dir.to_owned(),
            mesh,
            existing: existing_errors(global),
            stale,
            _lock: Some(lock),
        })
    }

    /// Loads the mesh of `dir` without any lock (the caller holds them).
    pub(crate) fn loaded(dir: &Path) -> Result<Session> {
        Ok(Session {
            dir: dir.to_owned(),
            mesh: meshca::store::load(dir)?,
            existing: meshca::ExistingErrors::Refuse,
            stale: Vec::new(),
            _lock: None,
        })
    }

    /// Verifies `new` in memory and saves it over the loaded mesh: all
    /// files or none. Refused when `new` has an error `verify` would report
    /// (a revoked intermediate is the operator's own doing and never
    /// blocks); with `--allow-existing-errors`, errors the loaded mesh
    /// already had are printed as warnings instead.
    ///
    /// `namespace`: where istiod runs (it reads `cacerts` there).
    pub(crate) fn commit(&self, new: &Mesh, force: bool, namespace: &str) -> Result<Vec<PathBuf>> {
        self.commit_for(new, force, namespace, None)
    }

    /// [`Session::commit`], checking name constraints against
    /// `trust_domain` (default: verify's).
    pub(crate) fn commit_for(
        &self,
        new: &Mesh,
        force: bool,
        namespace: &str,
        trust_domain: Option<&str>,
    ) -> Result<Vec<PathBuf>> {
        let opts = check_options(new, namespace, trust_domain);
        let (paths, report) = self.save_checked(new, force, || {
            new.check_against_with(Some(&self.mesh), &opts, self.existing)
        })?;
        warn_kept_errors(&report);
        Ok(paths)
    }

    /// Like [`Session::commit`], checking `new` with `opts` (a pinned time,
    /// the mesh's trust domain).
    pub(crate) fn commit_with(
        &self,
        new: &Mesh,
        force: bool,
        opts: &VerifyOptions,
    ) -> Result<Vec<PathBuf>> {
        let (paths, report) = self.save_checked(new, force, || {
            new.check_against_with(Some(&self.mesh), opts, self.existing)
        })?;
        warn_kept_errors(&report);
        Ok(paths)
    }

    /// Saves `new` if `check` (verify before write) succeeds; the check
    /// runs while the written files are flushed, before the commit point.
    fn save_checked<T>(
        &self,
        new: &Mesh,
        force: bool,
        check: impl FnOnce() -> meshca::Result<T>,
    ) -> Result<(Vec<PathBuf>, T)> {
        meshca::store::save_checked(&self.dir, Some(&self.mesh), new, force, &self.stale, check)
            .map_err(|e| match e {
                // Saved, not flushed: not "nothing was changed".
                e @ meshca::Error::NotFlushed { .. } => anyhow::Error::new(e),
                // The check refused the new mesh: nothing was changed.
                e @ meshca::Error::WouldNotVerify { .. } => anyhow::Error::new(e),
                e => anyhow::Error::new(e).context(SaveFailed {
                    dir: self.dir.clone(),
                }),
            })
    }
}

/// A save that failed (and changed nothing): the command failed (exit 1),
/// whatever the I/O error was.
#[derive(Debug)]
pub(crate) struct SaveFailed {
    pub(crate) dir: PathBuf,
}

impl std::fmt::Display for SaveFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "could not save {}; nothing was changed",
            self.dir.display()
        )
    }
}

/// Verify before write (see [`Mesh::check_against`]), for an istiod in
/// `namespace`.
pub(crate) fn check_new(
    old: Option<&Mesh>,
    new: &Mesh,
    namespace: &str,
    existing: meshca::ExistingErrors,
) -> Result<()> {
    check_new_for(old, new, namespace, None, existing)
}

/// What `--allow-existing-errors` asks of the verify-before-write check.
pub(crate) fn existing_errors(global: &crate::cli::Global) -> meshca::ExistingErrors {
    if global.allow_existing_errors {
        meshca::ExistingErrors::Allow
    } else {
        meshca::ExistingErrors::Refuse
    }
}

/// Warns about the errors a saved mesh keeps (allowed by
/// `--allow-existing-errors`): the mesh does not verify yet.
pub(crate) fn warn_kept_errors(report: &meshca::Report) {
    let kept: Vec<&meshca::Finding> = report
        .findings()
        .filter(|f| f.severity == meshca::Severity::Error && f.code != meshca::Code::Revoked)
        .collect();
    if kept.is_empty() {
        return;
    }
    warn(format_args!(
        "saved with {} error{} the mesh already had (--allow-existing-errors); `meshca verify` fails until {} fixed:",
        kept.len(),
        if kept.len() == 1 { "" } else { "s" },
        if kept.len() == 1 { "it is" } else { "they are" }
    ));
    for f in kept {
        warn(format_args!("  {}: {}", f.code, f.message));
    }
}

/// [`check_new`], checking name constraints against `trust_domain`
/// (default: verify's).
pub(crate) fn check_new_for(
    old: Option<&Mesh>,
    new: &Mesh,
    namespace: &str,
    trust_domain: Option<&str>,
    existing: meshca::ExistingErrors,
) -> Result<()> {
    let opts = check_options(new, namespace, trust_domain);
    let report = new.check_against_with(old, &opts, existing)?;
    warn_kept_errors(&report);
    Ok(())
}

/// The options of the verify-before-write check of `new`, for an istiod
/// in `namespace`.
fn check_options(new: &Mesh, namespace: &str, trust_domain: Option<&str>) -> VerifyOptions {
    let mut opts = VerifyOptions::at(time::OffsetDateTime::now_utc());
    opts.namespace = namespace.to_owned();
    // The trust domain the command was given, else the one the mesh's
    // name constraints name (`meshca verify --trust-domain` checks it).
    if let Some(td) = trust_domain
        .map(str::to_owned)
        .or_else(|| new.constrained_trust_domain())
    {
        opts.trust_domain = td;
    }
    opts
}

/// Shared locks on the certs directories among `dirs` (and their parents,
/// for cluster directories) that have a lock file, so no meshca run
/// renames files in them while they are read. `except`: a directory this
/// run locks exclusively (never locked twice).
pub(crate) fn read_locks(dirs: &[&Path], except: Option<&Path>) -> Result<Vec<DirLock>> {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    let skip = except.and_then(canon);
    let mut seen = Vec::new();
    let mut locks = Vec::new();
    for dir in dirs {
        for d in [Some(*dir), dir.parent()].into_iter().flatten() {
            let d = if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            };
            let Some(c) = canon(d) else { continue };
            if seen.contains(&c) || skip.as_ref() == Some(&c) {
                continue;
            }
            seen.push(c);
            let lock = DirLock::shared(d, &|path| {
                warn(format_args!(
                    "waiting for {}: another meshca run is changing {}",
                    path.display(),
                    d.display()
                ))
            })?;
            locks.extend(lock);
        }
    }
    Ok(locks)
}

/// Warns about `.meshca-*.tmp` files under `dir`.
/// Finishes (or undoes) a save of `dir` a crash interrupted, saying so
/// (call it holding `dir`'s lock, before loading the mesh).
pub(crate) fn recover(dir: &Path) -> Result<()> {
    if let Some(said) = meshca::store::recover(dir)?.and_then(|r| recovered(dir, r)) {
        warn(format_args!("{said}"));
    }
    Ok(())
}

/// What finishing (or undoing) an interrupted save of `dir` did, in words.
pub(crate) fn recovered(dir: &Path, r: meshca::store::Recovered) -> Option<String> {
    match r {
        meshca::store::Recovered::Finished { files } => Some(format!(
            "{}: finished a save that was interrupted ({})",
            dir.display(),
            crate::output::count(files, "file")
        )),
        meshca::store::Recovered::Undone { files } => Some(format!(
            "{}: undid a failed save that was interrupted ({}); the directory is as before it",
            dir.display(),
            crate::output::count(files, "file")
        )),
        _ => None,
    }
}

pub(crate) fn warn_leftovers(dir: &Path) {
    if let Ok(found) = meshca::store::leftovers(dir) {
        let pending = found
            .iter()
            .any(|p| p.file_name().is_some_and(|n| n == meshca::store::JOURNAL));
        for path in found {
            warn(format_args!("{}", leftover_problem(&path, pending)));
        }
    }
}

/// What a `.meshca-*.tmp` file left in a certs directory is, and what to
/// do about it.
/// `pending`: a commit record is among them, so the other temporary
/// files may be its (needed to finish the save).
pub(crate) fn leftover_problem(path: &Path, pending: bool) -> String {
    if path
        .file_name()
        .is_some_and(|n| n == meshca::store::JOURNAL)
    {
        let dir = path.parent().unwrap_or(Path::new("."));
        format!(
            "{}: the commit record of a save a crash interrupted: some files are new and some old; run `meshca recover --dir {}` to finish the save (do not remove the record)",
            path.display(),
            dir.display()
        )
    } else {
        let what = if path.is_dir() {
            "a temporary directory"
        } else {
            "a temporary file"
        };
        if pending {
            format!(
                "{}: {what} of an interrupted save (it may hold a private key): `meshca recover` needs it; do not remove it",
                path.display()
            )
        } else {
            format!(
                "{}: {what} left by an interrupted meshca run (it may hold a private key): remove it",
                path.display()
            )
        }
    }
}

/// The `--root-key` reference, parsed (the value is never echoed: it may
/// hold a PIN). Warns when the URI carries the PIN itself.
pub(crate) fn root_key_ref(opt: &crate::cli::RootKeyOpt) -> Result<Option<KeyRef>> {
    let Some(text) = &opt.root_key else {
        return Ok(None);
    };
    let key: KeyRef = text.parse()?;
    if let KeyRef::Pkcs11(uri) = &key {
        if uri.has_pin_value() {
            warn(format_args!(
                "--root-key: the PIN given as pin-value= lands in shell history and process \
                 listings; prefer pin-source=file:PATH"
            ));
        }
    }
    Ok(Some(key))
}

/// The user PIN of the token `uri` names: pin-value=, pin-source=, or
/// asked on the terminal.
pub(crate) fn token_pin(uri: &Pkcs11Uri) -> Result<zeroize::Zeroizing<String>> {
    Ok(uri.pin(&|| {
        read_secret(
            &uri.describe(),
            "PIN",
            None,
            false,
            "add pin-source=file:PATH to the URI",
        )
    })?)
}

/// Logs in to the token `uri` names and opens its key.
pub(crate) fn token_key(uri: &Pkcs11Uri) -> Result<PrivateKey> {
    let pin = token_pin(uri)?;
    Ok(PrivateKey::in_token(meshca::pkcs11::TokenKey::open(
        uri, &pin,
    )?))
}

/// Generates a new root key pair inside the token `uri` names (an object
/// of the same label is replaced only when `force`).
pub(crate) fn new_token_key(uri: &Pkcs11Uri, key_type: KeyType, force: bool) -> Result<PrivateKey> {
    let pin = token_pin(uri)?;
    Ok(PrivateKey::in_token(meshca::pkcs11::TokenKey::generate(
        uri, &pin, key_type, force,
    )?))
}

/// [`keep_token_root`] when the save wrote the files, also when only
/// flushing them failed (`root-cert.pem` then names the new key); a save
/// that changed nothing lets the token's new key go.
pub(crate) fn keep_token_root_if_saved<T>(saved: &Result<T>, root: &RootCa) {
    let written = match saved {
        Ok(_) => true,
        Err(e) => e
            .downcast_ref::<meshca::Error>()
            .is_some_and(|e| matches!(e, meshca::Error::NotFlushed { .. })),
    };
    if written {
        keep_token_root(root);
    }
}

/// After a new root was saved: keeps its key pair if it was generated in
/// a token (until then a failure removes it again) and removes the
/// objects it replaced. A failure here only warns: the mesh is saved.
pub(crate) fn keep_token_root(root: &RootCa) {
    if let Some(token) = root.key().token() {
        if let Err(e) = token.keep() {
            warn(format_args!(
                "{e}; the new root is saved: remove the replaced objects with pkcs11-tool"
            ));
        }
    }
}

/// The root of `mesh` as a signer, its key from `key_ref` (`--root-key`)
/// when given, else from the certs directory: `root-key.uri` (a token),
/// or `root-key.pem` (asking for the passphrase of an encrypted key, from
/// --passphrase-file or on the terminal).
pub(crate) fn mesh_signer(
    dir: &Path,
    mesh: &Mesh,
    global: &crate::cli::Global,
    key_ref: Option<&KeyRef>,
) -> Result<RootCa> {
    let cert_path = dir.join(meshca::ROOT_CERT);
    let key_path = dir.join(meshca::ROOT_KEY);
    let Some(MeshRoot {
        cert, key, key_uri, ..
    }) = &mesh.root
    else {
        return Err(meshca::Error::MissingFile {
            path: cert_path,
            hint: String::new(),
        }
        .into());
    };
    let cert_what = cert_path.display().to_string();
    let stored_uri = key_uri.clone().map(KeyRef::Pkcs11);
    let (what, pem) = match key_ref.or(stored_uri.as_ref()) {
        Some(KeyRef::Pkcs11(uri)) => {
            let key = token_key(uri)?;
            return Ok(RootCa::from_cert_and_key(
                &cert_what,
                cert.as_bytes(),
                &uri.describe(),
                key,
            )?);
        }
        Some(KeyRef::File(path)) => (
            path.display().to_string(),
            zeroize::Zeroizing::new(meshca::read_named(path)?),
        ),
        Some(_) | None => {
            let Some(key) = key else {
                return Err(meshca::Error::MissingFile {
                    path: key_path,
                    hint: String::new(),
                }
                .into());
            };
            (
                key_path.display().to_string(),
                zeroize::Zeroizing::new(key.as_bytes().to_vec()),
            )
        }
    };
    let file = global.passphrase_file.clone();
    Ok(RootCa::from_pem_with_passphrase(
        &cert_what,
        cert.as_bytes(),
        &what,
        &pem,
        &|| read_passphrase(&what, file.as_deref(), false),
    )?)
}

/// The signing root: the CA of `--root-from-secret`, else the mesh's own.
pub(crate) fn signer(
    session: &Session,
    global: &crate::cli::Global,
    opts: &IntermediateOpts,
    key_ref: Option<&KeyRef>,
) -> Result<RootCa> {
    let Some(path) = &opts.root_from_secret else {
        return mesh_signer(&session.dir, &session.mesh, global, key_ref);
    };
    if key_ref.is_some() {
        return Err(meshca::Error::KeyRef {
            reason: format!(
                "--root-from-secret {} gives the signing key: --root-key would have no effect",
                path.display()
            ),
        }
        .into());
    }
    let what = path.display().to_string();
    let yaml = zeroize::Zeroizing::new(meshca::read_named(path)?);
    let file = global.passphrase_file.clone();
    Ok(RootCa::from_secret_yaml(&what, &yaml, &|| {
        read_passphrase(&what, file.as_deref(), false)
    })?)
}

/// Issues every cluster's intermediate with the given keys into `mesh`.
pub(crate) fn add_clusters(
    mesh: &Mesh,
    root: &RootCa,
    clusters: &[String],
    keys: Vec<PrivateKey>,
    opts: &IntermediateOpts,
    constraints: Option<&NameConstraintOpts>,
    force: bool,
) -> Result<(Mesh, Vec<meshca::mesh::Added>)> {
    let mut params = intermediate_params(opts);
    if let Some(c) = constraints {
        params.name_constraints = name_constraints(c)?;
    }
    let new: Vec<NewCluster> = clusters
        .iter()
        .zip(keys)
        .map(|(name, key)| {
            let mut c = NewCluster::new(name, params.clone(), key);
            let mut secret = secret_options(&opts.namespace, opts.tls_secret);
            // A re-issued cluster keeps its Secret's name.
            if let Some(Some(old)) = mesh.clusters.get(name).map(|c| &c.profile.secret) {
                secret.name = old.name.clone();
            }
            c.secret = Some(secret);
            // ... and its name constraints, unless --name-constraints gives
            // new ones: a re-issue never drops them silently.
            if c.params.name_constraints.is_none() {
                if let Some(old) = mesh.clusters.get(name) {
                    c.params.name_constraints = old.profile.name_constraints.clone();
                }
            }
            c
        })
        .collect();
    Ok(mesh.add_clusters(root, new, force, time::OffsetDateTime::now_utc())?)
}

/// Prints what `add_clusters` did.
pub(crate) fn report_added(
    dir: &Path,
    root: &RootCa,
    added: &[meshca::mesh::Added],
    days: u32,
    quiet: bool,
) {
    for a in added {
        if a.clamped {
            warn(format_args!(
                "{}/ca-cert.pem: validity cut to the root's end ({}) instead of {}",
                a.name,
                date(root.not_after()),
                crate::output::count(usize::try_from(days).unwrap_or(usize::MAX), "day"),
            ));
        }
        say(
            quiet,
            format_args!(
                "{}: wrote {}/{{ca-cert,ca-key,cert-chain,root-cert}}.pem{} and cacerts.yaml \
                 ({}, valid until {})",
                a.name,
                dir.join(&a.name).display(),
                if a.crl { ", ca-crl.pem" } else { "" },
                a.key_type,
                date(a.not_after)
            ),
        );
    }
}

/// A passphrase from a file (its first line) or the terminal (no echo;
/// asked twice when `confirm`).
pub(crate) fn read_passphrase(
    what: &str,
    file: Option<&std::path::Path>,
    confirm: bool,
) -> meshca::Result<zeroize::Zeroizing<String>> {
    read_secret(
        what,
        "passphrase",
        file,
        confirm,
        "give --passphrase-file FILE",
    )
}

/// A secret for `what` (a `noun`: passphrase, PIN) from a file (its first
/// line) or the terminal (no echo; asked twice when `confirm`); `hint`
/// says what to do when there is no terminal.
fn read_secret(
    what: &str,
    noun: &str,
    file: Option<&std::path::Path>,
    confirm: bool,
    hint: &str,
) -> meshca::Result<zeroize::Zeroizing<String>> {
    use std::io::IsTerminal;
    let invalid = |reason: String| meshca::Error::Passphrase { reason };
    if let Some(path) = file {
        let bytes = zeroize::Zeroizing::new(meshca::read_named(path)?);
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| invalid(format!("{} is not UTF-8 text", path.display())))?;
        let line = zeroize::Zeroizing::new(text.lines().next().unwrap_or_default().to_owned());
        if line.is_empty() {
            return Err(invalid(format!("{} is empty", path.display())));
        }
        return Ok(line);
    }
    // rpassword asks on /dev/tty: without a controlling terminal there is
    // no one to ask, so fail now (before any key is generated).
    let no_tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_err();
    if no_tty || (!std::io::stdin().is_terminal() && !std::io::stderr().is_terminal()) {
        return Err(invalid(format!(
            "{what} needs a {noun}: {hint} (no terminal to ask on)"
        )));
    }
    let mut label = noun.to_owned();
    if let Some(first) = label.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    let first = zeroize::Zeroizing::new(
        rpassword::prompt_password(format!("{label} for {what}: ")).map_err(|e| {
            meshca::Error::Io {
                path: "/dev/tty".into(),
                source: e,
            }
        })?,
    );
    if first.is_empty() {
        return Err(invalid(format!("{what}: the {noun} must not be empty")));
    }
    if confirm {
        let second = zeroize::Zeroizing::new(
            rpassword::prompt_password(format!("Repeat the {noun}: ")).map_err(|e| {
                meshca::Error::Io {
                    path: "/dev/tty".into(),
                    source: e,
                }
            })?,
        );
        if *first != *second {
            return Err(invalid(format!("{what}: the two {noun}s differ")));
        }
    }
    Ok(first)
}

/// The passphrase for a new root key when `encrypt` (asked twice on a
/// terminal), before any slow work.
pub(crate) fn new_root_passphrase(
    dir: &Path,
    global: &crate::cli::Global,
    encrypt: bool,
) -> Result<Option<zeroize::Zeroizing<String>>> {
    if !encrypt {
        return Ok(None);
    }
    let what = dir.join(meshca::ROOT_KEY).display().to_string();
    Ok(Some(read_passphrase(
        &what,
        global.passphrase_file.as_deref(),
        true,
    )?))
}

/// `root-key.pem` for a new root, encrypted with `pass` when given; `None`
/// for a key in a token (`root-key.uri` records it).
pub(crate) fn root_key_pem(
    root: &RootCa,
    pass: Option<&zeroize::Zeroizing<String>>,
) -> Result<Option<zeroize::Zeroizing<String>>> {
    if root.key().token_uri().is_some() {
        return Ok(None);
    }
    Ok(Some(match pass {
        Some(p) => root.key().to_encrypted_pem(p.as_bytes())?,
        None => root.key().try_to_pem()?,
    }))
}

/// A new root's key: generated inside the token when `key_ref` is a
/// `pkcs11:` URI, else here (a file reference is refused: a new root's key
/// file is always DIR/root-key.pem). `None` when the key is to be made
/// here (with the other keys, on all cores).
pub(crate) fn new_root_key(
    key_ref: Option<&KeyRef>,
    key_type: KeyType,
    encrypt: bool,
    force: bool,
) -> Result<Option<PrivateKey>> {
    match key_ref {
        None => Ok(None),
        Some(KeyRef::Pkcs11(uri)) => {
            if encrypt {
                return Err(meshca::Error::Refused {
                    what: uri.describe(),
                    reason: "the key stays in the token: there is no root-key.pem to encrypt"
                        .into(),
                }
                .into());
            }
            Ok(Some(new_token_key(uri, key_type, force)?))
        }
        Some(_) => Err(meshca::Error::KeyRef {
            reason: format!(
                "a new root's key is made as {} (or in a token with --root-key pkcs11:...); \
                 a key file is only read by commands that sign with an existing root",
                meshca::ROOT_KEY
            ),
        }
        .into()),
    }
}
