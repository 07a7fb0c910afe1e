//! The command line, defined once with clap (help, completions and parsing
//! all come from here).

use std::path::PathBuf;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use meshca::KeyType;

/// A value parsed by the library's `FromStr` (which also takes the aliases
/// the recipe's variables use, such as `ROOTCA_KEYSZ=4096`), offering the
/// canonical names to `--help`, completions and the man page.
#[derive(Clone)]
pub(crate) struct Names<T> {
    names: &'static [&'static str],
    _type: std::marker::PhantomData<fn() -> T>,
}

impl<T> Names<T> {
    const fn new(names: &'static [&'static str]) -> Self {
        Names {
            names,
            _type: std::marker::PhantomData,
        }
    }
}

/// `--key-type` and its kin: what [`KeyType`]'s `FromStr` accepts.
pub(crate) const KEY_TYPES: Names<KeyType> = Names::new(&[
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
    "ecdsa-p256",
    "ecdsa-p384",
]);

/// `revoke --reason`: what [`meshca::Reason`]'s `FromStr` accepts.
pub(crate) const REASONS: Names<meshca::Reason> = Names::new(&[
    "unspecified",
    "key-compromise",
    "ca-compromise",
    "affiliation-changed",
    "superseded",
    "cessation-of-operation",
]);

impl<T> TypedValueParser for Names<T>
where
    T: std::str::FromStr<Err = meshca::Error> + Clone + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let text = value
            .to_str()
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidUtf8).with_cmd(cmd))?;
        text.parse::<T>().map_err(|e| {
            let reason = match e {
                meshca::Error::InvalidArgument { reason, .. } => reason,
                other => other.to_string(),
            };
            let name = arg.map_or_else(|| "value".to_owned(), ToString::to_string);
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value for {name}: {reason}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(self.names.iter().map(|n| PossibleValue::new(*n))))
    }
}

/// Build and check the CA hierarchy of a multi-cluster Istio mesh, offline.
///
/// One root CA, kept offline, signs one intermediate CA per cluster. Each
/// cluster directory gets ca-cert.pem, ca-key.pem, cert-chain.pem,
/// root-cert.pem and cacerts.yaml (the `cacerts` Secret istiod loads).
#[derive(Debug, Parser)]
#[command(
    name = "meshca",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(after_long_help = "EXAMPLES:
    # A root and two clusters' intermediates in ./certs, then install them:
    meshca init --dir certs cluster1 cluster2
    kubectl --context cluster1 apply -f certs/cluster1/cacerts.yaml

EXIT STATUS:
    0 success; 1 a check failed, or the command refused or failed (it says why;
    nothing was written); 2 bad arguments, a missing or unreadable input, or a
    cluster that does not exist.")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options of the commands that change a certs directory (flattened into
/// each of them, so that `verify`, `inspect` and `completions` do not list
/// options that would do nothing there).
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The certs directory: the root at its top, one sub-directory per cluster.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub(crate) dir: PathBuf,
    /// Print nothing but errors and warnings.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// Read the root key's passphrase from this file (first line) instead
    /// of asking on the terminal.
    #[arg(long, env = "MESHCA_PASSPHRASE_FILE", value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Save even though the mesh keeps errors it had before this command
    /// (they are listed as warnings; new errors still refuse the save).
    /// Without it, a command saves only a mesh that verifies.
    #[arg(long)]
    pub(crate) allow_existing_errors: bool,
}

/// `--dir` and `--quiet` of a command that only reads the certs directory.
#[derive(Debug, Args)]
pub(crate) struct ReadDir {
    /// The certs directory: the root at its top, one sub-directory per cluster.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub(crate) dir: PathBuf,
    /// Print nothing but errors and warnings.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Make the root (unless DIR has one) and an intermediate for every cluster.
    #[command(after_long_help = "EXAMPLES:
    # The recipe's hierarchy, RSA 4096 everywhere:
    meshca init cluster1 cluster2

    # ECDSA P-256 keys, in ./certs, a one-year intermediate:
    meshca init --dir certs --key-type ecdsa-p256 --days 365 east west

    # Add a cluster later: the existing root in DIR signs it.
    meshca init --dir certs cluster3

    # Intermediates that may sign only spiffe://example.org/... identities:
    meshca init --dir certs --name-constraints --trust-domain example.org east west

    # The recipe's variables work too (options beat them):
    ROOTCA_ORG=Example INTERMEDIATE_DAYS=365 meshca init cluster1

When DIR has a root, --encrypt-root and the --root-* options are refused,
not ignored. Like every command that writes, init locks DIR
(DIR/.meshca.lock), checks the new mesh as `meshca verify` would, and
writes every file or none.")]
    Init(InitArgs),

    /// Make the root CA: DIR/root-cert.pem and DIR/root-key.pem (or a key in a PKCS#11 token).
    #[command(after_long_help = "EXAMPLES:
    meshca root --dir certs
    meshca root --dir certs --key-type ecdsa-p384 --days 7300 --org Example --cn \"Example Root CA\"
    ROOTCA_DAYS=7300 ROOTCA_KEYSZ=4096 meshca root
    # Keep the root key encrypted at rest:
    meshca root --dir certs --encrypt
    meshca intermediate --dir certs --passphrase-file /run/secrets/root-pass cluster3
    # Keep the root key in a PKCS#11 token (generated there, never leaves it;
    # DIR/root-key.uri records the URI without any PIN):
    M=/usr/lib/softhsm/libsofthsm2.so
    meshca root --dir certs --key-type ecdsa-p384 --root-key \\
      \"pkcs11:token=meshca;object=root?module-path=$M&pin-source=file:/run/pin\"
    meshca init --dir certs cluster1 cluster2

    # Extend the root: same key and subject, 10 more years (needs
    # ISTIO_MULTIROOT_MESH=true on every istiod, see --renew):
    meshca root --dir certs --renew --days 3650")]
    Root(RootArgs),

    /// Make a cluster's intermediate CA, signed by the root in DIR.
    #[command(after_long_help = "EXAMPLES:
    meshca intermediate --dir certs cluster3
    meshca intermediate --dir certs --key-type ecdsa-p256 --san-dns istiod.istio-system.svc cluster3
    # The kubernetes.io/tls shape of the Secret (tls.crt, tls.key, ca.crt):
    meshca intermediate --dir certs --tls-secret cluster4
    # Name-constrained to the trust domain cluster.local and *.mesh.example.com:
    meshca intermediate --dir certs --name-constraints --permit-dns mesh.example.com cluster5
    # A mesh started with istiod's self-signed CA gains a cluster, same root:
    kubectl get secret istio-ca-secret -n istio-system -o yaml > istio-ca-secret.yaml
    meshca intermediate --dir certs --root-from-secret istio-ca-secret.yaml cluster2")]
    Intermediate(IntermediateArgs),

    /// Make a VM workload's certificate, as the recipe's `<namespace>-certs`.
    #[command(after_long_help = "EXAMPLES:
    # Intermediate in DIR/vm-ns (made if missing), workload files beside it:
    meshca workload --dir certs vm-ns

    # Issued by cluster1's intermediate instead, for service account `app`:
    meshca workload --dir certs --cluster cluster1 --service-account app vm-ns")]
    Workload(WorkloadArgs),

    /// Print the `cacerts` Secret YAML of an existing cluster directory.
    #[command(after_long_help = "EXAMPLES:
    meshca secret --dir certs cluster1 | kubectl --context cluster1 apply -f -
    meshca secret --dir certs --tls-secret cluster1 > cacerts-tls.yaml")]
    Secret(SecretArgs),

    /// Check cluster bundles and certs directories as istiod will, and more.
    #[command(after_long_help = "EXIT STATUS:
    0  every check passed (warnings allowed)
    1  a check failed (an error was found)
    2  the command could not run (bad arguments, a path that is neither a
       cluster directory nor a certs directory)

FINDING CODES (stable; --json carries them):
    see the README's \"verify\" section for the list and what each means.

EXAMPLES:
    # A whole mesh: the root, every cluster, and cross-cluster checks:
    meshca verify certs

    # One cluster, in JSON, warning 90 days before expiry:
    meshca verify --json --warn-days 90 certs/cluster1

    # Will it still be valid next year?
    meshca verify --at 2027-11-24T00:00:00Z certs")]
    Verify(VerifyArgs),

    /// Write the stages of moving every cluster from DIR's root to a new root.
    #[command(
        after_long_help = "With ISTIO_MULTIROOT_MESH=true istiod accepts a root-cert.pem that is a
superset or subset of the previous one; without it, istiod ignores any
update that changes root-cert.pem, so every istiod needs
ISTIO_MULTIROOT_MESH=true before stage 1. Apply the stages in order, every
cluster at a stage before any moves to the next:
  stage-1  root-cert.pem = old + new roots; intermediates unchanged
  stage-2  new intermediates signed by the new root; root-cert.pem = old + new
  stage-3  root-cert.pem = new root only
Each stage directory is a certs directory: `meshca verify --multiroot
--previous OUT/stage-1 OUT/stage-2` checks a stage and the step to it. Every cluster
keeps its key type, SANs and Secret shape; a cluster with ca-crl.pem keeps
it in stage 1 (a revoked intermediate stays revoked) and gets one from the
new root in stages 2 and 3. The three stages are written all together, and
only after each stage and each step verified.

EXAMPLES:
    meshca root --dir new-root --key-type ecdsa-p256
    meshca rotate --dir certs --new-root new-root --out rotation
    meshca verify --multiroot --previous certs rotation/stage-1
    meshca verify --multiroot --previous rotation/stage-1 rotation/stage-2
    kubectl --context cluster1 apply -f rotation/stage-1/cluster1/cacerts.yaml"
    )]
    // Every cluster keeps its key type and Secret shape, and --new-root
    // signs: these intermediate options act nowhere here (a warning if given).
    #[command(
        mut_arg("key_type", |a| a.hide(true)),
        mut_arg("tls_secret", |a| a.hide(true)),
        mut_arg("root_from_secret", |a| a.hide(true))
    )]
    Rotate(RotateArgs),

    /// Re-issue cluster intermediates before they expire; root-cert.pem unchanged.
    #[command(
        after_long_help = "Each renewed intermediate keeps its cluster's profile: key type, subject,
SANs, the Secret's name, namespace and shape, and its ca-crl.pem (the
intermediate's own CRL signed again by the new key). root-cert.pem stays
byte-identical, so istiod takes the new intermediate without
ISTIO_MULTIROOT_MESH; clusters not renewed are left byte-identical. A new
key by default (--reuse-key keeps it). With --within, only intermediates
that expire within DAYS days (or have expired) are renewed: named clusters
are then a filter. Nothing due: exit 0, nothing written.

EXAMPLES:
    # Every intermediate that expires within 30 days, from cron:
    meshca renew --dir certs --within 30
    # Two clusters now, 90-day intermediates, same keys:
    meshca renew --dir certs --days 90 --reuse-key cluster1 cluster2
    # Into a new directory, to check the rollout step before applying it:
    meshca renew --dir certs --within 30 --out certs-next
    meshca verify --previous certs certs-next"
    )]
    Renew(RenewArgs),

    /// Expiry and state of the root, every intermediate and every CRL.
    #[command(
        after_long_help = "One line per cluster and one for the root: key type, notAfter, days
left, the earliest nextUpdate of its CRLs, and a state: ok, renew-soon
(within --warn-days), expired, revoked, or invalid (`meshca verify` finds
another error; it tells which). --format prometheus writes the Prometheus
text exposition format for node_exporter's textfile collector:
meshca_certificate_expiry_timestamp_seconds{cluster,file,subject,serial},
meshca_crl_next_update_timestamp_seconds{cluster}, meshca_state{cluster,state},
meshca_findings{severity,code}, meshca_verify_ok, meshca_status_timestamp_seconds
(the root's series have cluster=\"\").

EXIT STATUS:
    0 the status was read and printed (whatever the states), 2 the
    directory could not be read.

EXAMPLES:
    meshca status --dir certs
    meshca status --dir certs --json | jq '.clusters[] | select(.state != \"ok\")'
    meshca status --dir certs --format prometheus > /var/lib/node_exporter/textfile/meshca.prom.tmp
    mv /var/lib/node_exporter/textfile/meshca.prom.tmp /var/lib/node_exporter/textfile/meshca.prom"
    )]
    Status(StatusArgs),

    /// Show what PEM files hold: certificates, keys (never the key itself), CRLs.
    #[command(after_long_help = "EXIT STATUS:
    0 every file was read, 2 a file is missing or is not valid PEM.

EXAMPLES:
    meshca inspect certs/cluster1/cert-chain.pem
    meshca inspect --json certs/root-cert.pem | jq '.[0].items[0].not_after'")]
    Inspect(InspectArgs),

    /// Revoke a cluster's intermediate CA in the root's CRL (DIR/root-crl.pem).
    #[command(
        after_long_help = "Every cluster that already has a ca-crl.pem gets the new root CRL
(and its cacerts.yaml is refreshed): re-apply those Secrets.

EXAMPLES:
    meshca revoke --dir certs --reason key-compromise cluster2
    meshca revoke --dir certs --reason cessation-of-operation old-cluster"
    )]
    Revoke(RevokeArgs),

    /// Write DIR/CLUSTER/ca-crl.pem: a CRL from every CA of the cluster's chain.
    #[command(
        after_long_help = "istiod (1.27+, PILOT_ENABLE_CA_CRL) reads ca-crl.pem and then needs a CRL
signed by every CA of cert-chain.pem: the root's (DIR/root-crl.pem, made
here if missing) and the intermediate's own. The cluster's cacerts.yaml is
refreshed to carry it; later `intermediate` runs add CRLs to new clusters.
A cluster with the kubernetes.io/tls Secret shape cannot use ca-crl.pem
(istiod ignores it there): crl refuses it. A cluster that does not exist
stops the command before anything is written (exit 2).

EXAMPLES:
    meshca crl --dir certs cluster1 cluster2
    meshca crl --dir certs --next-update-days 30 cluster1"
    )]
    Crl(CrlArgs),

    /// Finish a save of DIR that a crash (SIGKILL, power loss) cut short.
    #[command(
        after_long_help = "A save writes every new file to a temporary file, then a commit record
(DIR/.meshca-journal.tmp), then renames the files over their names. A
crash in the renames leaves some files new and some old: `meshca verify`
fails and names the record. This command (and every command that changes
DIR, before it starts) finishes those renames, or, when the save had
failed and was putting the old files back, finishes putting them back.
Nothing to do: exit 0, nothing written.

EXAMPLES:
    meshca recover --dir certs
    meshca recover --dir certs && meshca verify certs"
    )]
    Recover(ReadDir),

    /// Print every root of the mesh as a trust bundle for other systems.
    #[command(
        after_long_help = "Every root certificate of DIR (DIR/root-cert.pem, then any other root in a
cluster's root-cert.pem), each once, in that order: during a rotation stage
both the old and the new root. Printed on stdout.

FORMATS:
    pem                   the roots, PEM
    spiffe                SPIFFE trust bundle (JWKS: use x509-svid, x5c, the key's
                          public parameters, spiffe_sequence, spiffe_refresh_hint),
                          to serve at a meshConfig spiffeBundleUrl
    cluster-trust-bundle  certificates.k8s.io/v1beta1 ClusterTrustBundle named as
                          istiod's (istio.io:istiod-ca:root-cert, signer
                          istio.io/istiod-ca); --name must keep that prefix
    trust-manager         cert-manager trust-manager Bundle (trust.cert-manager.io/v1alpha1)
                          writing ConfigMap key root-cert.pem; --namespace limits it
                          to one namespace
    mesh-config           meshConfig.caCertificates, one entry per root
                          (trustDomains from --trust-domain)
Options a format has no use for are refused.

EXAMPLES:
    meshca bundle --dir certs > roots.pem
    meshca bundle --dir certs --format spiffe --sequence 7 > bundle.json
    meshca bundle --dir certs --format cluster-trust-bundle | kubectl apply -f -
    meshca bundle --dir rotation/stage-1 --format mesh-config --trust-domain cluster.local"
    )]
    Bundle(BundleArgs),

    /// Show what `apply` would change to make DIR what a mesh file says.
    #[command(
        after_long_help = "The mesh file (YAML, apiVersion meshca/v1, kind Mesh) names the root's
profile, the clusters' defaults and the clusters; the README's \"Declarative
mesh\" section documents every field. The plan lists: the root to create,
clusters to add, clusters to re-issue because their key type, SANs,
namespace or Secret shape differ from the file, clusters to renew (expiring
within renewBefore days), CRLs to refresh (nextUpdate less than 30 days
away), and clusters in DIR the file does not name (kept, never deleted).

EXIT STATUS:
    0  the plan was made (with --exit-code: nothing to do)
    1  the plan could not be made
    2  bad arguments, a mesh file that is not valid (the error names the
       line and the field), or a certs directory that cannot be read
    3  with --exit-code: changes are pending

EXAMPLES:
    meshca plan -f fleet.yaml --dir fleet
    meshca plan -f fleet.yaml --dir fleet --json | jq '.actions[].action'
    # In CI: fail when the certs directory is behind the file:
    meshca plan -f fleet.yaml --dir fleet --exit-code
    # What will need doing next year?
    meshca plan -f fleet.yaml --dir fleet --at 2027-12-01T00:00:00Z"
    )]
    Plan(PlanArgs),

    /// Make DIR what a mesh file says: carry out `meshca plan`, as one transaction.
    #[command(
        after_long_help = "Apply makes the plan (see `meshca plan --help`), carries it out in
memory, checks the result as `meshca verify` would, then writes every
changed file or none. Clusters the plan does not name stay byte for byte as
they were; clusters the file does not name are never deleted. The root
key's passphrase is asked for (or read from --passphrase-file) only when the
root signs and its key is encrypted.

EXAMPLES:
    meshca apply -f fleet.yaml --dir fleet
    meshca apply -f fleet.yaml --dir fleet --passphrase-file /run/secrets/root-pass"
    )]
    Apply(ApplyArgs),

    /// Compare what a cluster holds (its saved cacerts Secret) with DIR/CLUSTER.
    #[command(
        after_long_help = "Reads files only: save what the cluster holds with kubectl first.
Server fields (uid, resourceVersion, managedFields, annotations) and a
`kind: List` of one object are fine. Certificate files are compared by the
certificates they hold; each difference names the file and what the cluster
runs instead (serial, subject, not-after of both).

EXIT STATUS:
    0 in sync, 1 the cluster holds something else, 2 bad arguments or an
    unreadable file.

EXAMPLES:
    kubectl --context east get secret cacerts -n istio-system -o yaml > cacerts-east.yaml
    kubectl --context east get configmap istio-ca-root-cert -n default -o yaml > root-east.yaml
    meshca audit --dir fleet east --secret cacerts-east.yaml --root-configmap root-east.yaml"
    )]
    Audit(AuditArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_long_help = "Completions offer subcommands, options and the values of options with a
fixed set (key types, revocation reasons, shells). Cluster names are not
offered: clap_complete completes values from the file system only through
its unstable dynamic engine.

EXAMPLES:
    mkdir -p ~/.local/share/bash-completion/completions
    meshca completions bash > ~/.local/share/bash-completion/completions/meshca
    meshca completions zsh > \"${fpath[1]}/_meshca\"
    meshca completions fish > ~/.config/fish/completions/meshca.fish"
    )]
    Completions(CompletionsArgs),

    /// Write the manual pages (meshca.1 and one per command) into a directory.
    #[command(
        hide = true,
        after_long_help = "EXAMPLES:
    meshca man --out ~/.local/share/man/man1 && man meshca-init"
    )]
    Man(ManArgs),
}

/// Where the root key is (`--root-key`).
#[derive(Debug, Args)]
pub(crate) struct RootKeyOpt {
    /// The root key: a PEM file (default: DIR/root-key.pem), or an RFC 7512
    /// PKCS#11 URI, `pkcs11:token=T;object=LABEL?module-path=MODULE&pin-source=file:PIN`,
    /// for a key that stays in a token (DIR/root-key.uri records it,
    /// without any PIN, so later commands find it without this option).
    /// With `meshca root` or a new root from `meshca init`, the key pair
    /// is generated inside the token; with `meshca rotate`, it is the key
    /// of the --new-root root.
    #[arg(long = "root-key", value_name = "REF")]
    pub(crate) root_key: Option<String>,
}

/// The intermediate CA's profile (the recipe's INTERMEDIATE_* variables).
#[derive(Debug, Args)]
pub(crate) struct IntermediateOpts {
    /// Key type of the intermediates.
    #[arg(
        long,
        env = "INTERMEDIATE_KEYSZ",
        value_parser = KEY_TYPES,
        default_value = "rsa-4096",
        value_name = "TYPE"
    )]
    pub(crate) key_type: Option<KeyType>,
    /// Validity of the intermediates in days (never past the root's end).
    #[arg(
        long,
        env = "INTERMEDIATE_DAYS",
        default_value_t = 730,
        value_name = "N"
    )]
    pub(crate) days: u32,
    /// Subject O of the intermediates.
    #[arg(long, env = "INTERMEDIATE_ORG", default_value = "Istio")]
    pub(crate) org: String,
    /// Subject CN of the intermediates (L is the cluster name).
    #[arg(long, env = "INTERMEDIATE_CN", default_value = "Intermediate CA")]
    pub(crate) cn: String,
    /// DNS SAN of the intermediates (repeatable; default istiod.<namespace>.svc).
    #[arg(
        long,
        env = "INTERMEDIATE_SAN_DNS",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub(crate) san_dns: Vec<String>,
    /// Namespace of istiod and of the `cacerts` Secret.
    #[arg(
        long,
        env = "ISTIO_NAMESPACE",
        default_value = "istio-system",
        value_name = "NS"
    )]
    pub(crate) namespace: String,
    /// Write cacerts.yaml in the kubernetes.io/tls shape (tls.crt, tls.key, ca.crt).
    #[arg(long)]
    pub(crate) tls_secret: bool,
    /// Sign with the CA of a saved Secret instead of DIR's root: istiod's own
    /// self-signed CA (`kubectl get secret istio-ca-secret -n istio-system -o
    /// yaml`) or a kubernetes.io/tls Secret. DIR/root-cert.pem is written if absent.
    #[arg(long, value_name = "FILE")]
    pub(crate) root_from_secret: Option<PathBuf>,
}

/// Which data plane verifies the workload certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum DataPlane {
    /// Envoy sidecars and gateways (BoringSSL) with istiod (Go): both
    /// enforce URI name constraints.
    Sidecar,
    /// ztunnel (rustls-webpki), which refuses every SPIFFE identity below
    /// a URI name constraint.
    Ambient,
}

/// Name constraints on the new intermediates.
#[derive(Debug, Args)]
pub(crate) struct NameConstraintOpts {
    /// Give each new intermediate a critical NameConstraints extension: it
    /// may then sign only SPIFFE identities of the --trust-domain(s) and DNS
    /// names of its own SANs and --permit-dns suffixes. Recorded in the
    /// certificate, so a re-issue (--force) or rotation keeps it unless
    /// --name-constraints gives new ones.
    #[arg(long)]
    pub(crate) name_constraints: bool,
    /// SPIFFE trust domain the intermediates may sign identities of
    /// (repeatable).
    #[arg(
        long = "trust-domain",
        default_value = meshca::DEFAULT_TRUST_DOMAIN,
        value_name = "DOMAIN",
        requires = "name_constraints"
    )]
    pub(crate) trust_domains: Vec<String>,
    /// A DNS suffix the intermediates may sign besides their own SANs
    /// (repeatable; `.example.com` permits subdomains only).
    #[arg(long, value_name = "SUFFIX", requires = "name_constraints")]
    pub(crate) permit_dns: Vec<String>,
    /// The data plane of the mesh: --name-constraints is refused for
    /// ambient, whose ztunnel cannot verify URI name constraints.
    #[arg(long, value_enum, default_value_t = DataPlane::Sidecar, value_name = "KIND")]
    pub(crate) data_plane: DataPlane,
}

/// The root CA's profile (the recipe's ROOTCA_* variables).
#[derive(Debug, Args)]
pub(crate) struct RootOpts {
    /// Key type of the root [default: the --key-type].
    #[arg(long = "root-key-type", env = "ROOTCA_KEYSZ", value_parser = KEY_TYPES, value_name = "TYPE")]
    pub(crate) root_key_type: Option<KeyType>,
    /// Validity of the root in days.
    #[arg(
        long = "root-days",
        env = "ROOTCA_DAYS",
        default_value_t = 3650,
        value_name = "N"
    )]
    pub(crate) root_days: u32,
    /// Subject O of the root.
    #[arg(long = "root-org", env = "ROOTCA_ORG", default_value = "Istio")]
    pub(crate) root_org: String,
    /// Subject CN of the root.
    #[arg(long = "root-cn", env = "ROOTCA_CN", default_value = "Root CA")]
    pub(crate) root_cn: String,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    pub(crate) global: Global,
    /// Cluster names (DNS labels): one intermediate CA each, in DIR/<cluster>.
    #[arg(required = true, value_name = "CLUSTER")]
    pub(crate) clusters: Vec<String>,
    #[command(flatten)]
    pub(crate) intermediate: IntermediateOpts,
    #[command(flatten)]
    pub(crate) constraints: NameConstraintOpts,
    #[command(flatten)]
    pub(crate) root: RootOpts,
    /// Overwrite existing cluster files (an existing root is always kept).
    #[arg(long)]
    pub(crate) force: bool,
    /// Write a new root-key.pem encrypted (PKCS#8, scrypt + AES-256-CBC).
    #[arg(long)]
    pub(crate) encrypt_root: bool,
    #[command(flatten)]
    pub(crate) root_key: RootKeyOpt,
}

#[derive(Debug, Args)]
pub(crate) struct RootArgs {
    #[command(flatten)]
    pub(crate) global: Global,
    /// Key type.
    #[arg(long, env = "ROOTCA_KEYSZ", value_parser = KEY_TYPES, default_value = "rsa-4096", value_name = "TYPE")]
    pub(crate) key_type: KeyType,
    /// Validity in days.
    #[arg(long, env = "ROOTCA_DAYS", default_value_t = 3650, value_name = "N")]
    pub(crate) days: u32,
    /// Subject O.
    #[arg(long, env = "ROOTCA_ORG", default_value = "Istio")]
    pub(crate) org: String,
    /// Subject CN.
    #[arg(long, env = "ROOTCA_CN", default_value = "Root CA")]
    pub(crate) cn: String,
    /// Overwrite an existing root (every cluster must then be re-issued).
    #[arg(long)]
    pub(crate) force: bool,
    /// Write root-key.pem encrypted (PKCS#8, scrypt + AES-256-CBC; `openssl
    /// pkcs8` reads it). The passphrase comes from --passphrase-file or a
    /// prompt; every command that signs with the root then asks for it.
    #[arg(long)]
    pub(crate) encrypt: bool,
    #[command(flatten)]
    pub(crate) root_key: RootKeyOpt,
    /// Renew DIR's root: a new certificate for the same key and subject
    /// (same SKI), valid --days from now, put first in root-cert.pem of the
    /// root and of every cluster (the old one stays after it). Every
    /// intermediate keeps verifying. root-cert.pem changes, so every istiod
    /// needs ISTIO_MULTIROOT_MESH=true to take it.
    #[arg(long, conflicts_with_all = ["force", "encrypt"])]
    pub(crate) renew: bool,
}

#[derive(Debug, Args)]
pub(crate) struct IntermediateArgs {
    #[command(flatten)]
    pub(crate) global: Global,
    /// Cluster names (DNS labels).
    #[arg(required = true, value_name = "CLUSTER")]
    pub(crate) clusters: Vec<String>,
    #[command(flatten)]
    pub(crate) intermediate: IntermediateOpts,
    #[command(flatten)]
    pub(crate) constraints: NameConstraintOpts,
    /// Overwrite existing files of these clusters.
    #[arg(long)]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) root_key: RootKeyOpt,
}

#[derive(Debug, Args)]
pub(crate) struct WorkloadArgs {
    #[command(flatten)]
    pub(crate) global: Global,
    /// The namespace the WORKLOAD runs in (a DNS label): its SPIFFE ID is
    /// spiffe://<trust domain>/ns/<NAMESPACE>/sa/<service account>, its
    /// files go to DIR/<NAMESPACE>. istiod's namespace is --namespace.
    #[arg(value_name = "NAMESPACE")]
    pub(crate) namespace: String,
    /// Issue with DIR/<cluster>'s intermediate instead of DIR/<namespace>'s.
    #[arg(long, value_name = "CLUSTER")]
    pub(crate) cluster: Option<String>,
    /// Key type of the workload key (and of a new intermediate).
    #[arg(long, value_parser = KEY_TYPES, default_value = "rsa-4096", value_name = "TYPE")]
    pub(crate) key_type: KeyType,
    /// Validity in days.
    #[arg(long, env = "WORKLOAD_DAYS", default_value_t = 1, value_name = "N")]
    pub(crate) days: u32,
    /// Subject O.
    #[arg(long, default_value = "Istio")]
    pub(crate) org: String,
    /// Subject CN.
    #[arg(long, default_value = "Workload")]
    pub(crate) cn: String,
    /// SPIFFE trust domain of the workload's identity.
    #[arg(long, default_value = "cluster.local", value_name = "DOMAIN")]
    pub(crate) trust_domain: String,
    /// Service account of the workload's identity.
    #[arg(
        long,
        env = "SERVICE_ACCOUNT",
        default_value = "default",
        value_name = "SA"
    )]
    pub(crate) service_account: String,
    /// Namespace of istiod, not of the workload (for a new intermediate's
    /// SAN and Secret).
    #[arg(
        long = "namespace",
        alias = "istio-namespace",
        env = "ISTIO_NAMESPACE",
        default_value = "istio-system",
        value_name = "NS"
    )]
    pub(crate) istio_namespace: String,
    /// Overwrite existing workload files.
    #[arg(long)]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) root_key: RootKeyOpt,
}

#[derive(Debug, Args)]
pub(crate) struct SecretArgs {
    /// The certs directory that holds the cluster directory.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub(crate) dir: PathBuf,
    /// The cluster directory DIR/<cluster>.
    #[arg(value_name = "CLUSTER")]
    pub(crate) cluster: String,
    /// Namespace of the Secret.
    #[arg(
        long,
        env = "ISTIO_NAMESPACE",
        default_value = "istio-system",
        value_name = "NS"
    )]
    pub(crate) namespace: String,
    /// Name of the Secret.
    #[arg(long, default_value = "cacerts")]
    pub(crate) name: String,
    /// The kubernetes.io/tls shape (tls.crt, tls.key, ca.crt) instead of Opaque.
    #[arg(long = "tls-secret", alias = "tls")]
    pub(crate) tls_secret: bool,
}

fn rfc3339(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("expected an RFC 3339 time such as 2027-01-31T00:00:00Z: {e}"))
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Cluster directories or certs directories.
    #[arg(required = true, value_name = "PATH")]
    pub(crate) paths: Vec<PathBuf>,
    /// Print the report as JSON (schema meshca.verify/v1).
    #[arg(long)]
    pub(crate) json: bool,
    /// Print only the findings (errors and warnings); the exit status tells the verdict.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// Warn about certificates that expire within N days.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub(crate) warn_days: u32,
    /// Check validity at this time (RFC 3339) instead of now.
    #[arg(long, value_parser = rfc3339, value_name = "TIME")]
    pub(crate) at: Option<time::OffsetDateTime>,
    /// Also check the rollout step from this earlier certs directory to each
    /// PATH, as istiod reloads its cacerts: root-cert.pem unchanged (or, with
    /// --multiroot, a superset or subset), ca-crl.pem neither removed nor
    /// unloadable, cross-stage trust.
    #[arg(long, value_name = "DIR")]
    pub(crate) previous: Option<PathBuf>,
    /// With --previous: every istiod runs with ISTIO_MULTIROOT_MESH=true, so
    /// a root-cert.pem that is a superset or subset of the old one is taken
    /// (a rotation's stages need it). Without it, as in Istio by default, any
    /// change of root-cert.pem is an error: istiod ignores the whole update.
    #[arg(long, requires = "previous")]
    pub(crate) multiroot: bool,
    /// The namespace istiod runs in and reads cacerts from (default: the
    /// `istiod.<ns>.svc` name of each cluster's CA, else istio-system).
    #[arg(long, value_name = "NS")]
    pub(crate) namespace: Option<String>,
    /// The mesh's SPIFFE trust domain, which every name constraint on a
    /// chain must permit.
    #[arg(long, default_value = "cluster.local", value_name = "DOMAIN")]
    pub(crate) trust_domain: String,
}

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    #[command(flatten)]
    pub(crate) global: Global,
    /// The new root's certs directory (root-cert.pem, root-key.pem), e.g.
    /// made with `meshca root --dir NEW`.
    #[arg(long, value_name = "DIR")]
    pub(crate) new_root: PathBuf,
    /// Where to write stage-1, stage-2 and stage-3.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Clusters to move (default: every cluster under --dir).
    #[arg(value_name = "CLUSTER")]
    pub(crate) clusters: Vec<String>,
    #[command(flatten)]
    pub(crate) intermediate: IntermediateOpts,
    /// Overwrite existing files under --out.
    #[arg(long)]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) root_key: RootKeyOpt,
}

#[derive(Debug, Args)]
pub(crate) struct RenewArgs {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(flatten)]
    pub(crate) root_key: RootKeyOpt,
    /// Clusters to renew (default with --within: every cluster).
    #[arg(value_name = "CLUSTER", required_unless_present = "within")]
    pub(crate) clusters: Vec<String>,
    /// Renew only intermediates that expire within DAYS days (or have expired).
    #[arg(long, value_name = "DAYS")]
    pub(crate) within: Option<u32>,
    /// Validity of the renewed intermediates in days, never past the root's
    /// end (default: each keeps its current validity period).
    #[arg(long, value_name = "N")]
    pub(crate) days: Option<u32>,
    /// Keep each intermediate's key (default: a new key of the same type).
    #[arg(long)]
    pub(crate) reuse_key: bool,
    /// nextUpdate, in days, of the intermediate CRLs signed again.
    #[arg(long, default_value_t = meshca::DEFAULT_CRL_DAYS, value_name = "N")]
    pub(crate) next_update_days: u32,
    /// Write the renewed mesh (every file of DIR, the renewed clusters
    /// re-issued) to this new certs directory and leave DIR as it was, so
    /// `meshca verify --previous DIR OUT` can check the step.
    #[arg(long, value_name = "OUT")]
    pub(crate) out: Option<PathBuf>,
    /// With --out: overwrite the files of an existing OUT.
    #[arg(long, requires = "out")]
    pub(crate) force: bool,
}

/// Output formats of `meshca status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StatusFormat {
    /// One line per cluster.
    Text,
    /// JSON, schema meshca.status/v1 (the same as --json).
    Json,
    /// Prometheus text exposition format (node_exporter textfile collector).
    Prometheus,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The certs directory to report on.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub(crate) dir: PathBuf,
    /// Print JSON (schema meshca.status/v1); the same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub(crate) json: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text, value_name = "FORMAT")]
    pub(crate) format: StatusFormat,
    /// The time to report for (RFC 3339) instead of now.
    #[arg(long, value_parser = rfc3339, value_name = "TIME")]
    pub(crate) at: Option<time::OffsetDateTime>,
    /// State renew-soon when a certificate expires within N days.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub(crate) warn_days: u32,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// PEM files.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Print JSON: a list of {file, items} (or {file, error}).
    #[arg(long)]
    pub(crate) json: bool,
    /// Count days left from this time (RFC 3339) instead of now.
    #[arg(long, value_parser = rfc3339, value_name = "TIME")]
    pub(crate) at: Option<time::OffsetDateTime>,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    pub(crate) global: Global,
    /// The cluster whose intermediate is revoked.
    #[arg(value_name = "CLUSTER")]
    pub(crate) cluster: String,
    /// Why the intermediate is revoked.
    #[arg(long, value_parser = REASONS, default_value = "unspecified")]
    pub(crate) reason: meshca::Reason,
    /// nextUpdate of the new root CRL, in days.
    #[arg(long, default_value_t = meshca::DEFAULT_CRL_DAYS, value_name = "N")]
    pub(crate) next_update_days: u32,
    #[command(flatten)]
    pub(crate) root_key: RootKeyOpt,
}

#[derive(Debug, Args)]
pub(crate) struct CrlArgs {
    #[command(flatten)]
    pub(crate) global: Global,
    /// Clusters to write ca-crl.pem for.
    #[arg(required = true, value_name = "CLUSTER")]
    pub(crate) clusters: Vec<String>,
    /// nextUpdate of the CRLs made, in days.
    #[arg(long, default_value_t = meshca::DEFAULT_CRL_DAYS, value_name = "N")]
    pub(crate) next_update_days: u32,
    #[command(flatten)]
    pub(crate) root_key: RootKeyOpt,
}

/// The forms `meshca bundle` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum BundleFormat {
    /// PEM certificates.
    Pem,
    /// SPIFFE trust bundle (JWKS).
    Spiffe,
    /// Kubernetes ClusterTrustBundle.
    ClusterTrustBundle,
    /// cert-manager trust-manager Bundle.
    TrustManager,
    /// Istio meshConfig.caCertificates.
    MeshConfig,
}

impl From<BundleFormat> for meshca::TrustBundleFormat {
    fn from(f: BundleFormat) -> Self {
        match f {
            BundleFormat::Pem => meshca::TrustBundleFormat::Pem,
            BundleFormat::Spiffe => meshca::TrustBundleFormat::Spiffe,
            BundleFormat::ClusterTrustBundle => meshca::TrustBundleFormat::ClusterTrustBundle,
            BundleFormat::TrustManager => meshca::TrustBundleFormat::TrustManager,
            BundleFormat::MeshConfig => meshca::TrustBundleFormat::MeshConfig,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct BundleArgs {
    /// The certs directory whose roots to print.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub(crate) dir: PathBuf,
    /// The output form.
    #[arg(long, value_enum, default_value_t = BundleFormat::Pem, value_name = "FORMAT")]
    pub(crate) format: BundleFormat,
    /// mesh-config: a trust domain the roots are for (repeatable).
    #[arg(long = "trust-domain", value_name = "DOMAIN")]
    pub(crate) trust_domains: Vec<String>,
    /// cluster-trust-bundle, trust-manager: the object's name.
    #[arg(long, value_name = "N")]
    pub(crate) name: Option<String>,
    /// trust-manager: write the ConfigMap into this namespace only.
    #[arg(long, value_name = "NS")]
    pub(crate) namespace: Option<String>,
    /// spiffe: spiffe_sequence, raised each time the bundle changes
    /// (default: the current Unix time, which only grows).
    #[arg(long, value_name = "N")]
    pub(crate) sequence: Option<u64>,
    /// spiffe: spiffe_refresh_hint, in seconds.
    #[arg(long, default_value_t = meshca::trust_bundle::DEFAULT_REFRESH_HINT, value_name = "SECONDS")]
    pub(crate) refresh_hint: u64,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) read: ReadDir,
    /// The mesh file.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// Print the plan as JSON (schema meshca.plan/v1).
    #[arg(long)]
    pub(crate) json: bool,
    /// Exit 3 when changes are pending (0: nothing to do).
    #[arg(long)]
    pub(crate) exit_code: bool,
    /// Plan as of this time (RFC 3339) instead of now.
    #[arg(long, value_parser = rfc3339, value_name = "TIME")]
    pub(crate) at: Option<time::OffsetDateTime>,
}

#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    #[command(flatten)]
    pub(crate) global: Global,
    /// The mesh file.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// Apply as of this time (RFC 3339) instead of now: certificates are
    /// issued and checked at it (a rehearsal: what is issued for a later
    /// time is not valid before it).
    #[arg(long, value_parser = rfc3339, value_name = "TIME")]
    pub(crate) at: Option<time::OffsetDateTime>,
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    pub(crate) read: ReadDir,
    /// The cluster directory DIR/<cluster> to compare with.
    #[arg(value_name = "CLUSTER")]
    pub(crate) cluster: String,
    /// The cluster's cacerts Secret, as `kubectl get secret cacerts -n
    /// istio-system -o yaml` saved it.
    #[arg(long, value_name = "FILE")]
    pub(crate) secret: PathBuf,
    /// The cluster's istio-ca-root-cert ConfigMap, as `kubectl get configmap
    /// istio-ca-root-cert -o yaml` saved it.
    #[arg(long, value_name = "FILE")]
    pub(crate) root_configmap: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// The directory to write meshca.1 and meshca-<command>.1 into (made if missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
}

impl Command {
    /// The certs directory of a command that has one.
    pub(crate) fn dir(&self) -> Option<&std::path::Path> {
        match self {
            Command::Init(a) => Some(&a.global.dir),
            Command::Root(a) => Some(&a.global.dir),
            Command::Intermediate(a) => Some(&a.global.dir),
            Command::Workload(a) => Some(&a.global.dir),
            Command::Secret(a) => Some(&a.dir),
            Command::Bundle(a) => Some(&a.dir),
            Command::Status(a) => Some(&a.dir),
            Command::Plan(a) => Some(&a.read.dir),
            Command::Apply(a) => Some(&a.global.dir),
            Command::Audit(a) => Some(&a.read.dir),
            Command::Renew(a) => Some(&a.global.dir),
            Command::Rotate(a) => Some(&a.global.dir),
            Command::Revoke(a) => Some(&a.global.dir),
            Command::Crl(a) => Some(&a.global.dir),
            Command::Recover(a) => Some(&a.dir),
            Command::Verify(_)
            | Command::Inspect(_)
            | Command::Completions(_)
            | Command::Man(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
