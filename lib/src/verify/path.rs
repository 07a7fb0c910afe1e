//! The path stage: the chain istiod's crypto/x509 builds from `ca-cert.pem`
//! through `cert-chain.pem` to a root of `root-cert.pem`, and the rules
//! along it (validity, CA flag, keyCertSign, pathlen, EKU, name
//! constraints).
//!
//! Path building follows rustls-webpki's `verify_cert.rs` and Go's
//! crypto/x509/verify.go `buildChains`: every candidate issuer (same
//! subject bytes as the child's issuer) is tried, depth first, and the
//! first path without an error wins; signature checks are remembered per
//! (child, issuer) pair and every one, remembered or not, is counted
//! against a budget, so hostile input (many certificates with one name,
//! CAs that sign one another) costs a bounded amount of work.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use time::Duration;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, NameConstraints};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::load::Loaded;
use super::report::{day, err, rfc3339, warn, Code, Finding, Severity};
use super::VerifyOptions;

/// At most this many signature checks per path search (webpki's default).
pub(super) const SIGNATURE_BUDGET: usize = 100;
/// At most this many certificates on a path (webpki allows 6 sub-CAs).
const MAX_DEPTH: usize = 8;
/// At most this many partial paths explored per search.
const BUILD_BUDGET: usize = 20_000;
/// Go's default `VerifyOptions.MaxConstraintComparisions`: a CA whose name
/// constraints need more comparisons than this against the names below it
/// fails verification (`TooManyConstraints`, crypto/x509/verify.go
/// `isValid` and `checkNameConstraints`; the count restarts per CA).
pub(super) const MAX_CONSTRAINT_COMPARISONS: usize = 250_000;

/// Name-constraint findings per (node, whether it is `ca-cert.pem`): they
/// do not depend on the rest of the path, so each CA is checked once per
/// search, however many candidate paths it is on.
type NcMemo = RefCell<HashMap<(usize, bool), Vec<Finding>>>;

/// Reports validity at `opts.at` with the given severity for expiry.
pub(super) fn validity_findings(
    l: &Loaded,
    file: &str,
    opts: &VerifyOptions,
    severity: Severity,
    out: &mut Vec<Finding>,
) {
    let Some(c) = l.cert() else { return };
    validity_of(c, &l.name, file, opts, severity, out);
}

/// [`validity_findings`] for a certificate already parsed.
fn validity_of(
    c: &X509Certificate<'_>,
    name: &str,
    file: &str,
    opts: &VerifyOptions,
    severity: Severity,
    out: &mut Vec<Finding>,
) {
    let nb = c.validity().not_before.to_datetime();
    let na = c.validity().not_after.to_datetime();
    let mk = |code, message| Finding {
        severity,
        code,
        file: file.to_owned(),
        message,
    };
    if opts.at > na {
        out.push(mk(Code::Expired, format!("{name} expired on {}", day(na))));
    } else if opts.at < nb {
        out.push(mk(
            Code::NotYetValid,
            format!("{name} is not valid before {}", rfc3339(nb)),
        ));
    } else if na - opts.at < Duration::days(i64::from(opts.warn_days)) {
        let left = (na - opts.at).whole_days();
        out.push(warn(
            Code::ExpiresSoon,
            file,
            format!(
                "{name} expires on {} ({} left)",
                day(na),
                count(u64::try_from(left).unwrap_or(0), "day")
            ),
        ));
    }
}

/// Whether a certificate's own key verifies its signature (`digest`: its
/// DER's, [`super::memo::der_digest`]).
pub(super) fn self_signature_ok(digest: &[u8; 32], c: &X509Certificate<'_>) -> bool {
    super::memo::remembered(super::memo::Kind::SelfSignature, &[digest], || {
        c.verify_signature(None).is_ok()
    })
}

/// Whether `c` (of DER digest `digest`) is signed by the key `parent`.
fn issuer_signature_ok(
    digest: &[u8; 32],
    c: &X509Certificate<'_>,
    parent: &SubjectPublicKeyInfo<'_>,
) -> bool {
    super::memo::remembered(super::memo::Kind::Signature, &[digest, parent.raw], || {
        c.verify_signature(Some(parent)).is_ok()
    })
}

/// What the path stage needs to know about a bundle.
pub(super) struct PathInput<'a> {
    /// `ca-cert.pem`'s certificate.
    pub(super) ca: &'a Loaded,
    /// `cert-chain.pem` after its first certificate.
    pub(super) intermediates: &'a [Loaded],
    /// `root-cert.pem`.
    pub(super) roots: &'a [Loaded],
    /// File names for findings.
    pub(super) ca_file: &'a str,
    pub(super) chain_file: &'a str,
    pub(super) root_file: &'a str,
    /// The names the CA will issue: istiod's DNS names and the trust
    /// domain (the host of every workload's spiffe:// URI).
    pub(super) issued_dns: &'a [String],
    pub(super) trust_domain: &'a str,
}

/// The path found (or the furthest one tried) and its findings.
pub(super) struct PathResult<'a> {
    /// `ca-cert.pem` first, the root last when `trusted`.
    pub(super) path: Vec<&'a Loaded>,
    /// Whether the path ends at a root of `root-cert.pem`.
    pub(super) trusted: bool,
    /// Everything wrong with it.
    pub(super) findings: Vec<Finding>,
}

struct Node<'a> {
    loaded: &'a Loaded,
    cert: &'a X509Certificate<'a>,
    is_root: bool,
    /// subjectKeyIdentifier and authorityKeyIdentifier's keyIdentifier.
    ski: Option<Vec<u8>>,
    aki: Option<Vec<u8>>,
}

impl<'a> Node<'a> {
    fn new(loaded: &'a Loaded, is_root: bool) -> Option<Self> {
        use x509_parser::extensions::ParsedExtension;
        let cert = loaded.cert()?;
        let mut ski = None;
        let mut aki = None;
        for e in cert.extensions() {
            match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|k| k.0.to_vec());
                }
                _ => {}
            }
        }
        Some(Node {
            loaded,
            cert,
            is_root,
            ski,
            aki,
        })
    }

    /// How plausible `parent` is as this certificate's issuer, as Go's
    /// `CertPool.findPotentialParents` orders candidates: key ids equal,
    /// then one of them absent, then key ids that differ.
    fn key_id_rank(&self, parent: &Node<'_>) -> u8 {
        match (&self.aki, &parent.ski) {
            (Some(a), Some(s)) if a == s => 0,
            (Some(_), Some(_)) => 2,
            _ => 1,
        }
    }
}

struct Search<'n, 'a> {
    nodes: &'n [Node<'a>],
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
    sigs: HashMap<(usize, usize), bool>,
    signatures_left: usize,
    builds_left: usize,
    exhausted: bool,
    /// Complete paths found, with their findings.
    complete: Vec<(Vec<usize>, Vec<Finding>)>,
    /// The longest dead end: its path and whether a same-named issuer failed its signature.
    dead_end: Option<(Vec<usize>, bool)>,
}

impl Search<'_, '_> {
    /// Every call counts against the budget, remembered pair or not, as
    /// every `CheckSignatureFrom` call counts against Go's
    /// `maxChainSignatureChecks` (crypto/x509/verify.go `buildChains`): the
    /// memo saves the cryptography, the budget bounds the paths explored
    /// (and judged). Counting only new pairs let a handful of same-key,
    /// same-name CAs that sign one another spell out thousands of paths.
    fn signed_by(&mut self, child: usize, parent: usize) -> Option<bool> {
        if self.signatures_left == 0 {
            self.exhausted = true;
            return None;
        }
        self.signatures_left -= 1;
        if let Some(ok) = self.sigs.get(&(child, parent)) {
            return Some(*ok);
        }
        let (c, p) = (self.nodes.get(child)?, self.nodes.get(parent)?);
        let ok = if child == parent {
            self_signature_ok(&c.loaded.digest, c.cert)
        } else {
            issuer_signature_ok(&c.loaded.digest, c.cert, p.cert.public_key())
        };
        self.sigs.insert((child, parent), ok);
        Some(ok)
    }

    /// Extends `path` depth first; stops at the first complete path for
    /// which `judge` finds no error.
    fn extend(&mut self, path: &mut Vec<usize>, judge: &dyn Fn(&[usize]) -> Vec<Finding>) -> bool {
        if self.builds_left == 0 {
            self.exhausted = true;
            return false;
        }
        self.builds_left -= 1;
        let Some(&current) = path.last() else {
            return false;
        };
        let Some(cur) = self.nodes.get(current) else {
            return false;
        };
        let mut candidates = self
            .by_subject
            .get(cur.cert.issuer().as_raw())
            .cloned()
            .unwrap_or_default();
        // Roots first, then intermediates; each by key id plausibility.
        candidates.sort_by_key(|&i| {
            self.nodes
                .get(i)
                .map_or((true, 3), |n| (!n.is_root, cur.key_id_rank(n)))
        });
        let mut name_match = false;
        let mut extended = false;
        for cand in candidates {
            let Some(node) = self.nodes.get(cand) else {
                continue;
            };
            if path.iter().any(|&p| {
                self.nodes
                    .get(p)
                    .is_some_and(|n| n.loaded.der == node.loaded.der)
            }) {
                continue;
            }
            name_match = true;
            let is_root = node.is_root;
            match self.signed_by(current, cand) {
                None => return false,
                Some(false) => continue,
                Some(true) => {}
            }
            extended = true;
            path.push(cand);
            if is_root {
                let findings = judge(path);
                let clean = !findings.iter().any(|f| f.severity == Severity::Error);
                self.complete.push((path.clone(), findings));
                if clean {
                    return true;
                }
            } else if path.len() < MAX_DEPTH && self.extend(path, judge) {
                return true;
            }
            path.pop();
            if self.exhausted {
                return false;
            }
        }
        if !extended
            && self
                .dead_end
                .as_ref()
                .is_none_or(|(p, _)| p.len() < path.len())
        {
            self.dead_end = Some((path.clone(), name_match));
        }
        false
    }
}

/// Builds the path istiod's crypto/x509 will build and checks it.
pub(super) fn check_path<'a>(
    input: &PathInput<'a>,
    opts: &VerifyOptions,
) -> Option<PathResult<'a>> {
    let mut nodes: Vec<Node<'a>> = vec![Node::new(input.ca, false)?];
    // Roots first: a path ends as soon as it can.
    for (list, is_root) in [(input.roots, true), (input.intermediates, false)] {
        nodes.extend(list.iter().filter_map(|l| Node::new(l, is_root)));
    }
    if input.roots.iter().any(|r| r.der == input.ca.der) {
        let path = vec![input.ca];
        let mut findings = Vec::new();
        validity_findings(
            input.ca,
            input.ca_file,
            opts,
            Severity::Error,
            &mut findings,
        );
        return Some(PathResult {
            path,
            trusted: true,
            findings,
        });
    }
    let mut by_subject: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate().skip(1) {
        by_subject
            .entry(n.cert.subject().as_raw().to_vec())
            .or_default()
            .push(i);
    }
    let nc_memo = NcMemo::default();
    let judge =
        |p: &[usize]| -> Vec<Finding> { judge_path(input, &nodes, p, true, opts, &nc_memo) };
    let mut search = Search {
        nodes: &nodes,
        by_subject,
        sigs: HashMap::new(),
        signatures_left: SIGNATURE_BUDGET,
        builds_left: BUILD_BUDGET,
        exhausted: false,
        complete: Vec::new(),
        dead_end: None,
    };
    let mut path = vec![0];
    search.extend(&mut path, &judge);
    let to_loaded = |p: &[usize]| -> Vec<&'a Loaded> {
        p.iter()
            .filter_map(|&i| nodes.get(i).map(|n| n.loaded))
            .collect()
    };
    // The first clean path, else the complete path with the fewest errors.
    let best = search
        .complete
        .iter()
        .min_by_key(|(_, f)| f.iter().filter(|f| f.severity == Severity::Error).count());
    if let Some((p, findings)) = best {
        return Some(PathResult {
            path: to_loaded(p),
            trusted: true,
            findings: findings.clone(),
        });
    }
    let mut findings = Vec::new();
    let (ca_file, root_file, chain_file) = (input.ca_file, input.root_file, input.chain_file);
    if search.exhausted {
        findings.push(err(
            Code::UntrustedChain,
            ca_file,
            format!("{ca_file} does not chain to {root_file}: no path found within {SIGNATURE_BUDGET} signature checks (too many candidate issuers)"),
        ));
        return Some(PathResult {
            path: vec![input.ca],
            trusted: false,
            findings,
        });
    }
    let (dead, name_match) = search.dead_end.clone().unwrap_or((vec![0], false));
    let last = dead.last().and_then(|&i| nodes.get(i));
    if let Some(cur) = last {
        let current = cur.loaded;
        let c = &cur.cert;
        if dead.len() >= MAX_DEPTH {
            findings.push(err(
                Code::UntrustedChain,
                ca_file,
                format!("{ca_file} does not reach a root of {root_file} within {MAX_DEPTH} certificates"),
            ));
        } else if name_match {
            findings.push(err(
                Code::BadSignature,
                ca_file,
                format!(
                    "the signature on {} does not verify with the key of its issuer ({}): the chain to {root_file} is broken",
                    current.name,
                    c.issuer()
                ),
            ));
        } else if c.subject().as_raw() == c.issuer().as_raw() {
            findings.push(err(
                Code::UntrustedChain,
                ca_file,
                format!(
                    "{ca_file} does not chain to {root_file}: its chain ends at {} ({}), a root that {root_file} does not hold",
                    current.name,
                    c.subject()
                ),
            ));
        } else {
            findings.push(err(
                Code::UntrustedChain,
                ca_file,
                format!(
                    "{ca_file} does not chain to {root_file} through {chain_file}: no certificate there is the issuer of {} ({})",
                    current.name,
                    c.issuer()
                ),
            ));
        }
    }
    // The rules that do not need a root still apply along the partial path.
    findings.extend(judge_path(input, &nodes, &dead, false, opts, &nc_memo));
    Some(PathResult {
        path: to_loaded(&dead),
        trusted: false,
        findings,
    })
}

/// Go's extended key usage nesting (verify.go `checkChainForKeyUsage`):
/// every certificate of the path that has an EKU must allow the usage.
/// Workloads present their certificates as servers and as clients (mTLS),
/// so both serverAuth and clientAuth must survive the whole path.
fn eku_lacks(c: &X509Certificate<'_>) -> Option<&'static str> {
    match c.extended_key_usage() {
        Ok(Some(eku)) => {
            let e = &eku.value;
            match (e.any || e.server_auth, e.any || e.client_auth) {
                (true, true) => None,
                (false, true) => Some("serverAuth"),
                (true, false) => Some("clientAuth"),
                (false, false) => Some("serverAuth and clientAuth"),
            }
        }
        _ => None,
    }
}

/// The rules along a path (indices into `nodes`, `ca-cert.pem` first).
fn judge_path(
    input: &PathInput<'_>,
    nodes: &[Node<'_>],
    indices: &[usize],
    trusted: bool,
    opts: &VerifyOptions,
    nc_memo: &NcMemo,
) -> Vec<Finding> {
    let path: Vec<(usize, &Node<'_>)> = indices
        .iter()
        .filter_map(|&i| nodes.get(i).map(|n| (i, n)))
        .collect();
    let first = path.first().map(|(_, n)| *n);
    let mut out = Vec::new();
    let file_of = |k: usize, n: &Node<'_>| {
        if k == 0 {
            input.ca_file
        } else if n.is_root {
            input.root_file
        } else {
            input.chain_file
        }
    };
    for (k, &(index, n)) in path.iter().enumerate() {
        let file = file_of(k, n);
        let l = n.loaded;
        let c = &n.cert;
        validity_of(c, &l.name, file, opts, Severity::Error, &mut out);
        if let Some(lacks) = eku_lacks(c) {
            out.push(err(
                Code::IncompatibleEku,
                file,
                format!("{} has an extendedKeyUsage without {lacks}; workload certificates it covers fail mTLS (Go and BoringSSL check EKU along the chain)", l.name),
            ));
        }
        let memo_key = (index, k == 0);
        let memoized = nc_memo.borrow().get(&memo_key).cloned();
        match memoized {
            Some(found) => out.extend(found),
            None => {
                let mut found = Vec::new();
                if let Some(first) = first {
                    name_constraint_findings(input, first, n, k, file, &opts.namespace, &mut found);
                }
                out.extend(found.iter().cloned());
                nc_memo.borrow_mut().insert(memo_key, found);
            }
        }
        // Go (1.22+) validates policies along every chain (verify.go
        // policiesValid, RFC 5280 6.1): a requireExplicitPolicy of r on a
        // certificate with r or fewer certificates below it makes a
        // non-empty policy tree mandatory at the leaf. The workload and DNS
        // certificates istiod signs carry no certificatePolicies, so the
        // tree is empty there and every chain is refused ("all candidate
        // chains have invalid policies"). inhibitPolicyMapping only matters
        // with policyMappings, which istiod's leaves never have.
        if let Ok(Some(pc)) = c.policy_constraints() {
            let below = u32::try_from(k + 1).unwrap_or(u32::MAX);
            if let Some(r) = pc.value.require_explicit_policy.filter(|r| *r <= below) {
                out.push(err(
                    Code::ExplicitPolicy,
                    file,
                    format!(
                        "{} requires an explicit policy after {} (policyConstraints requireExplicitPolicy), but the workload certificates istiod issues carry no certificatePolicies: Go refuses every chain (\"invalid policies\")",
                        l.name,
                        count(u64::from(r), "certificate")
                    ),
                ));
            }
        }
        if k == 0 {
            continue;
        }
        // Go's `Verify` checks the CA flag of intermediates only, never of
        // the trust anchor (verify.go `isValid`: `certType ==
        // intermediateCertificate`); a root that is not a CA is reported by
        // the root stage as `root-not-self-signed-ca`.
        let anchor = trusted && n.is_root && k + 1 == path.len();
        // Go's parser reads extensions only from a version 3 certificate
        // (parser.go `parseCertificate`: `if cert.Version == 3`), so a v1 or
        // v2 issuer has no basicConstraints for Go: "not authorized to sign".
        if !anchor && c.version() != x509_parser::x509::X509Version::V3 {
            out.push(err(
                Code::NotCa,
                file,
                format!(
                    "{} issues {} but is a version {} certificate: Go ignores the extensions of a certificate below version 3, so it is not a CA",
                    l.name,
                    path.get(k - 1).map_or("", |(_, p)| p.loaded.name.as_str()),
                    c.version().0 + 1
                ),
            ));
        } else {
            match super::load::go_basic_constraints(c) {
                Some((true, path_len)) => {
                    if let Some(max) = path_len {
                        // Intermediate CAs below this one, toward the workload leaf.
                        let below = u64::try_from(k).unwrap_or(u64::MAX);
                        if below > max {
                            out.push(err(
                            Code::PathLenExceeded,
                            file,
                            format!(
                                "{} allows {} below it (pathlen:{max}) but has {below} below it on the way to workloads",
                                l.name,
                                count(max, "CA")
                            ),
                        ));
                        }
                    }
                }
                _ if anchor => {}
                _ => out.push(err(
                    Code::NotCa,
                    file,
                    format!(
                        "{} issues {} but is not a CA (basicConstraints CA:TRUE missing)",
                        l.name,
                        path.get(k - 1).map_or("", |(_, p)| p.loaded.name.as_str())
                    ),
                )),
            }
        }
        if let Ok(Some(ku)) = c.key_usage() {
            if !ku.value.key_cert_sign() {
                out.push(err(
                    Code::NoKeyCertSign,
                    file,
                    format!(
                        "{}'s keyUsage lacks keyCertSign, so it may not issue certificates",
                        l.name
                    ),
                ));
            }
        }
        let self_issued = c.subject().as_raw() == c.issuer().as_raw();
        if (k + 1 < path.len() || !trusted) && !self_issued && !has_aki(c) {
            out.push(warn(
                Code::NoAki,
                file,
                format!("{} has no AuthorityKeyIdentifier", l.name),
            ));
        }
    }
    let single_root = path.len() == 1 && trusted;
    if let Some(first) = first {
        if !has_aki(first.cert) && !single_root {
            out.push(warn(
                Code::NoAki,
                input.ca_file,
                format!("{} has no AuthorityKeyIdentifier", input.ca_file),
            ));
        }
    }
    out
}

fn has_aki(c: &X509Certificate<'_>) -> bool {
    c.get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
        .ok()
        .flatten()
        .is_some()
}

/// A name to check against name constraints.
enum Name<'a> {
    Dns { value: &'a str, what: String },
    UriHost { host: &'a str, what: String },
    Ip { bytes: &'a [u8], what: String },
}

/// Name constraints of the CA `node` at position `k` of the path (Go's
/// verify.go `checkNameConstraints`, rustls-webpki's `subject_name/`): the
/// names of `ca-cert.pem` (`first`; Go checks the leaf it verifies, and
/// istiod verifies `ca-cert.pem` as a leaf) and the names `ca-cert.pem`
/// will issue must each be permitted (when the CA permits names of that
/// type) and not excluded. As in Go, each name costs as many comparisons as
/// the CA has subtrees of its type, and past [`MAX_CONSTRAINT_COMPARISONS`]
/// (counted apart for `ca-cert.pem`'s names and for the names it issues, as
/// Go verifies those in separate calls) verification fails.
fn name_constraint_findings(
    input: &PathInput<'_>,
    first: &Node<'_>,
    node: &Node<'_>,
    k: usize,
    file: &str,
    namespace: &str,
    out: &mut Vec<Finding>,
) {
    let Ok(Some(nc)) = node.cert.name_constraints() else {
        return;
    };
    let nc: &NameConstraints<'_> = nc.value;
    // (name, whether it is one ca-cert.pem will issue)
    let mut names: Vec<(Name<'_>, bool)> = Vec::new();
    let ca_consequence = "istiod refuses to load it";
    let issued_consequence = "every certificate istiod issues with it fails verification";
    if k > 0 {
        if let Ok(Some(san)) = first.cert.subject_alternative_name() {
            for (i, g) in san.value.general_names.iter().enumerate() {
                let what = || format!("{}'s subjectAltName entry {}", input.ca_file, i + 1);
                match g {
                    GeneralName::DNSName(d) => names.push((
                        Name::Dns {
                            value: d,
                            what: what(),
                        },
                        false,
                    )),
                    GeneralName::URI(u) => {
                        if let Some(host) = uri_host(u) {
                            names.push((Name::UriHost { host, what: what() }, false));
                        }
                    }
                    GeneralName::IPAddress(b) => names.push((
                        Name::Ip {
                            bytes: b,
                            what: what(),
                        },
                        false,
                    )),
                    _ => {}
                }
            }
        }
    }
    let already: HashSet<String> = names
        .iter()
        .filter_map(|(n, _)| match n {
            Name::Dns { value, .. } => Some(value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let own = format!("istiod.{}.svc", namespace);
    for d in input.issued_dns {
        if already.contains(&d.to_ascii_lowercase()) {
            continue;
        }
        let what = if *d == own {
            format!("the DNS name {own} (istiod's own certificate)")
        } else {
            format!(
                "a DNS name of {}'s subjectAltName (istiod's own certificate)",
                input.ca_file
            )
        };
        names.push((Name::Dns { value: d, what }, true));
    }
    names.push((
        Name::UriHost {
            host: input.trust_domain,
            what: format!(
                "the workload identities spiffe://{}/ns/.../sa/...",
                input.trust_domain
            ),
        },
        true,
    ));
    // Subtrees per name type, excluded and permitted together: what one
    // name of that type costs in Go's count.
    let mut per_type = [0usize; 3];
    for s in nc
        .excluded_subtrees
        .iter()
        .chain(nc.permitted_subtrees.iter())
        .flatten()
    {
        match s.base {
            GeneralName::DNSName(_) => per_type[0] += 1,
            GeneralName::URI(_) => per_type[1] += 1,
            GeneralName::IPAddress(_) => per_type[2] += 1,
            _ => {}
        }
    }
    let mut comparisons = [0usize; 2];
    let mut gave_up = [false; 2];
    let l = node.loaded;
    for (name, issued) in &names {
        let group = usize::from(*issued);
        let consequence = if *issued {
            issued_consequence
        } else {
            ca_consequence
        };
        let (what, cost) = match name {
            Name::Dns { what, .. } => (what, per_type[0]),
            Name::UriHost { what, .. } => (what, per_type[1]),
            Name::Ip { what, .. } => (what, per_type[2]),
        };
        if gave_up.get(group).copied().unwrap_or(true) {
            continue;
        }
        if let Some(count) = comparisons.get_mut(group) {
            *count = count.saturating_add(cost);
            if *count > MAX_CONSTRAINT_COMPARISONS {
                out.push(err(
                    Code::NameNotPermitted,
                    file,
                    format!(
                        "{}'s name constraints need more than {MAX_CONSTRAINT_COMPARISONS} comparisons to check {}; Go gives up there (too many constraints): {consequence}",
                        l.name,
                        if *issued {
                            "the names istiod issues".to_owned()
                        } else {
                            format!("the names of {}", input.ca_file)
                        }
                    ),
                ));
                if let Some(g) = gave_up.get_mut(group) {
                    *g = true;
                }
                continue;
            }
        }
        let excluded = nc
            .excluded_subtrees
            .iter()
            .flatten()
            .any(|s| matches_subtree(name, &s.base) == Some(true));
        if excluded {
            out.push(err(
                Code::NameNotPermitted,
                file,
                format!(
                    "{}'s name constraints exclude {what}: {consequence}",
                    l.name
                ),
            ));
            continue;
        }
        let mut same_type = false;
        let mut permitted = false;
        for s in nc.permitted_subtrees.iter().flatten() {
            match matches_subtree(name, &s.base) {
                Some(true) => {
                    permitted = true;
                    break;
                }
                Some(false) => same_type = true,
                None => {}
            }
        }
        if same_type && !permitted {
            out.push(err(
                Code::NameNotPermitted,
                file,
                format!(
                    "{}'s name constraints do not permit {what}: {consequence}",
                    l.name
                ),
            ));
        }
    }
}

/// `None` when the subtree is of another name type, else whether it matches.
fn matches_subtree(name: &Name<'_>, base: &GeneralName<'_>) -> Option<bool> {
    match (name, base) {
        (Name::Dns { value, .. }, GeneralName::DNSName(c)) => Some(domain_matches(value, c)),
        (Name::UriHost { host, .. }, GeneralName::URI(c)) => Some(domain_matches(host, c)),
        (Name::Ip { bytes, .. }, GeneralName::IPAddress(c)) => Some(ip_matches(bytes, c)),
        _ => None,
    }
}

/// Go's `matchDomainConstraint`: an empty constraint matches everything; a
/// leading dot requires at least one more label; otherwise the name equals
/// the constraint or ends with `.constraint`, labels compared without case.
pub(super) fn domain_matches(name: &str, constraint: &str) -> bool {
    if constraint.is_empty() {
        return true;
    }
    let (must_have_sub, constraint) = match constraint.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, constraint),
    };
    // Labels from the right, without collecting them: this runs once per
    // (name, constraint) pair.
    let mut name_labels = name.trim_end_matches('.').rsplit('.');
    for c in constraint.rsplit('.') {
        match name_labels.next() {
            Some(n) if c.eq_ignore_ascii_case(n) => {}
            _ => return false,
        }
    }
    !must_have_sub || name_labels.next().is_some()
}

/// An IP address against an address/mask constraint (4+4 or 16+16 bytes).
fn ip_matches(ip: &[u8], constraint: &[u8]) -> bool {
    let n = ip.len();
    if constraint.len() != 2 * n {
        return false;
    }
    let (net, mask) = constraint.split_at(n);
    ip.iter()
        .zip(net)
        .zip(mask)
        .all(|((a, b), m)| a & m == b & m)
}

/// The host of a URI (`scheme://host[:port]/...`), as Go's `url.Parse` sees it.
fn uri_host(uri: &str) -> Option<&str> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(']') => h,
        _ => host,
    };
    (!host.is_empty()).then_some(host)
}

/// `1 CA`, `2 CAs`.
fn count(n: u64, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_constraints_match_as_go_does() {
        assert!(domain_matches("istiod.istio-system.svc", "svc"));
        assert!(domain_matches(
            "istiod.istio-system.svc",
            "istio-system.svc"
        ));
        assert!(domain_matches(
            "ISTIOD.istio-system.svc",
            "istiod.istio-system.svc"
        ));
        assert!(!domain_matches("istiod.istio-system.svc", "other.svc"));
        assert!(domain_matches("cluster.local", "cluster.local"));
        assert!(!domain_matches("cluster.local", ".cluster.local"));
        assert!(domain_matches("a.cluster.local", ".cluster.local"));
        assert!(!domain_matches("notcluster.local", "cluster.local"));
        assert!(domain_matches("anything", ""));
    }

    #[test]
    fn uri_hosts_and_ip_ranges() {
        assert_eq!(
            uri_host("spiffe://cluster.local/ns/a/sa/b"),
            Some("cluster.local")
        );
        assert_eq!(uri_host("https://h.example:8443/x"), Some("h.example"));
        assert_eq!(uri_host("urn:x"), None);
        assert!(ip_matches(&[10, 1, 2, 3], &[10, 0, 0, 0, 255, 0, 0, 0]));
        assert!(!ip_matches(&[11, 1, 2, 3], &[10, 0, 0, 0, 255, 0, 0, 0]));
    }
}
