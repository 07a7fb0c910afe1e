//! The command line, defined once with clap (help, completions and parsing
//! all come from here).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use meshca::KeyType;

fn key_type(s: &str) -> Result<KeyType, String> {
    s.parse::<KeyType>().map_err(|e| match e {
        meshca::Error::InvalidArgument { reason, .. } => reason,
        other => other.to_string(),
    })
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
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The certs directory: the root at its top, one sub-directory per cluster.
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub(crate) dir: PathBuf,
    /// Print nothing but errors and warnings.
    #[arg(long, short, global = true)]
    pub(crate) quiet: bool,
    /// Read the root key's passphrase from this file (first line) instead
    /// of asking on the terminal.
    #[arg(
        long,
        global = true,
        env = "MESHCA_PASSPHRASE_FILE",
        value_name = "FILE"
    )]
    pub(crate) passphrase_file: Option<PathBuf>,
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

    # The recipe's variables work too (options beat them):
    ROOTCA_ORG=Example INTERMEDIATE_DAYS=365 meshca init cluster1

When DIR has a root, --encrypt-root and the --root-* options are refused,
not ignored. Like every command that writes, init locks DIR
(DIR/.meshca.lock), checks the new mesh as `meshca verify` would, and
writes every file or none.")]
    Init(InitArgs),

    /// Make the root CA: DIR/root-cert.pem and DIR/root-key.pem.
    #[command(after_long_help = "EXAMPLES:
    meshca root --dir certs
    meshca root --dir certs --key-type ecdsa-p384 --days 7300 --org Example --cn \"Example Root CA\"
    ROOTCA_DAYS=7300 ROOTCA_KEYSZ=4096 meshca root
    # Keep the root key encrypted at rest:
    meshca root --dir certs --encrypt
    meshca intermediate --dir certs --passphrase-file /run/secrets/root-pass cluster3")]
    Root(RootArgs),

    /// Make a cluster's intermediate CA, signed by the root in DIR.
    #[command(after_long_help = "EXAMPLES:
    meshca intermediate --dir certs cluster3
    meshca intermediate --dir certs --key-type ecdsa-p256 --san-dns istiod.istio-system.svc cluster3
    # The kubernetes.io/tls shape of the Secret (tls.crt, tls.key, ca.crt):
    meshca intermediate --dir certs --tls-secret cluster4
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
    meshca secret --dir certs --tls cluster1 > cacerts-tls.yaml")]
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
superset or subset of the previous one. Apply the stages in order, every
cluster at a stage before any moves to the next:
  stage-1  root-cert.pem = old + new roots; intermediates unchanged
  stage-2  new intermediates signed by the new root; root-cert.pem = old + new
  stage-3  root-cert.pem = new root only
Each stage directory is a certs directory: `meshca verify --previous
OUT/stage-1 OUT/stage-2` checks a stage and the step to it. Every cluster
keeps its key type, SANs and Secret shape; a cluster with ca-crl.pem keeps
it in stage 1 (a revoked intermediate stays revoked) and gets one from the
new root in stages 2 and 3. The three stages are written all together, and
only after each stage and each step verified.

EXAMPLES:
    meshca root --dir new-root --key-type ecdsa-p256
    meshca rotate --dir certs --new-root new-root --out rotation
    meshca verify --previous certs rotation/stage-1
    meshca verify --previous rotation/stage-1 rotation/stage-2
    kubectl --context cluster1 apply -f rotation/stage-1/cluster1/cacerts.yaml"
    )]
    Rotate(RotateArgs),

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
    #[command(after_long_help = "EXAMPLES:
    meshca completions bash > /etc/bash_completion.d/meshca
    meshca completions zsh > \"${fpath[1]}/_meshca\"
    meshca completions fish > ~/.config/fish/completions/meshca.fish")]
    Completions(CompletionsArgs),
}

/// The intermediate CA's profile (the recipe's INTERMEDIATE_* variables).
#[derive(Debug, Args)]
pub(crate) struct IntermediateOpts {
    /// Key type of the intermediates: rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384.
    #[arg(long, env = "INTERMEDIATE_KEYSZ", value_parser = key_type, value_name = "TYPE")]
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

/// The root CA's profile (the recipe's ROOTCA_* variables).
#[derive(Debug, Args)]
pub(crate) struct RootOpts {
    /// Key type of the root.
    #[arg(long = "root-key-type", env = "ROOTCA_KEYSZ", value_parser = key_type, value_name = "TYPE")]
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
    /// Cluster names (DNS labels): one intermediate CA each, in DIR/<cluster>.
    #[arg(required = true, value_name = "CLUSTER")]
    pub(crate) clusters: Vec<String>,
    #[command(flatten)]
    pub(crate) intermediate: IntermediateOpts,
    #[command(flatten)]
    pub(crate) root: RootOpts,
    /// Overwrite existing cluster files (an existing root is always kept).
    #[arg(long)]
    pub(crate) force: bool,
    /// Write a new root-key.pem encrypted (PKCS#8, scrypt + AES-256-CBC).
    #[arg(long)]
    pub(crate) encrypt_root: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RootArgs {
    /// Key type: rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384.
    #[arg(long, env = "ROOTCA_KEYSZ", value_parser = key_type, default_value = "rsa-4096", value_name = "TYPE")]
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
}

#[derive(Debug, Args)]
pub(crate) struct IntermediateArgs {
    /// Cluster names (DNS labels).
    #[arg(required = true, value_name = "CLUSTER")]
    pub(crate) clusters: Vec<String>,
    #[command(flatten)]
    pub(crate) intermediate: IntermediateOpts,
    /// Overwrite existing files of these clusters.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WorkloadArgs {
    /// The workload's namespace (a DNS label); files go to DIR/<namespace>.
    #[arg(value_name = "NAMESPACE")]
    pub(crate) namespace: String,
    /// Issue with DIR/<cluster>'s intermediate instead of DIR/<namespace>'s.
    #[arg(long, value_name = "CLUSTER")]
    pub(crate) cluster: Option<String>,
    /// Key type of the workload key (and of a new intermediate).
    #[arg(long, value_parser = key_type, default_value = "rsa-4096", value_name = "TYPE")]
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
    /// Namespace of istiod (for a new intermediate's SAN and Secret).
    #[arg(
        long = "istio-namespace",
        env = "ISTIO_NAMESPACE",
        default_value = "istio-system",
        value_name = "NS"
    )]
    pub(crate) istio_namespace: String,
    /// Overwrite existing workload files.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SecretArgs {
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
    #[arg(long)]
    pub(crate) tls: bool,
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
    /// Warn about certificates that expire within N days.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub(crate) warn_days: u32,
    /// Check validity at this time (RFC 3339) instead of now.
    #[arg(long, value_parser = rfc3339, value_name = "TIME")]
    pub(crate) at: Option<time::OffsetDateTime>,
    /// Also check the step from this earlier rotation stage (a certs
    /// directory) to each PATH: roots superset/subset, cross-stage trust.
    #[arg(long, value_name = "DIR")]
    pub(crate) previous: Option<PathBuf>,
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

fn reason(s: &str) -> Result<meshca::Reason, String> {
    s.parse().map_err(|e| match e {
        meshca::Error::InvalidArgument { reason, .. } => reason,
        other => other.to_string(),
    })
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The cluster whose intermediate is revoked.
    #[arg(value_name = "CLUSTER")]
    pub(crate) cluster: String,
    /// Why: unspecified, key-compromise, ca-compromise, affiliation-changed,
    /// superseded, cessation-of-operation.
    #[arg(long, value_parser = reason, default_value = "unspecified")]
    pub(crate) reason: meshca::Reason,
    /// nextUpdate of the new root CRL, in days.
    #[arg(long, default_value_t = meshca::DEFAULT_CRL_DAYS, value_name = "N")]
    pub(crate) next_update_days: u32,
}

#[derive(Debug, Args)]
pub(crate) struct CrlArgs {
    /// Clusters to write ca-crl.pem for.
    #[arg(required = true, value_name = "CLUSTER")]
    pub(crate) clusters: Vec<String>,
    /// nextUpdate of the CRLs made, in days.
    #[arg(long, default_value_t = meshca::DEFAULT_CRL_DAYS, value_name = "N")]
    pub(crate) next_update_days: u32,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
