//! The lifecycle state of a mesh at a point in time: when the root, every
//! intermediate and every CRL expires, and whether each cluster is ok, due
//! for renewal, expired, revoked or otherwise invalid (what
//! [`crate::Mesh::verify`] reports).
//!
//! [`Status`] prints as text (`Display`), serializes as JSON (schema
//! `meshca.status/v1`) and renders the Prometheus text exposition format
//! ([`Status::prometheus`]) for node_exporter's textfile collector.

use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::bundle::{CA_CERT, CA_CRL, ROOT_CERT};
use crate::crl::ROOT_CRL;
use crate::mesh::Mesh;
use crate::verify::{Code, Group, GroupKind, Report, Severity, VerifyOptions};

/// A cluster's (or the root's) state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum State {
    /// Valid, and not expiring within the warning window.
    Ok,
    /// Valid, but expiring within the warning window: renew it.
    RenewSoon,
    /// Past its `notAfter`.
    Expired,
    /// Revoked by a CRL of its chain.
    Revoked,
    /// `meshca verify` reports another error.
    Invalid,
}

impl State {
    /// Every state, for enumerations (Prometheus state series).
    pub const ALL: [State; 5] = [
        State::Ok,
        State::RenewSoon,
        State::Expired,
        State::Revoked,
        State::Invalid,
    ];

    /// The name in output: `ok`, `renew-soon`, `expired`, `revoked`, `invalid`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::RenewSoon => "renew-soon",
            State::Expired => "expired",
            State::Revoked => "revoked",
            State::Invalid => "invalid",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One certificate of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CertStatus {
    /// The file, relative to the certs directory (`cluster1/ca-cert.pem`).
    pub file: String,
    /// The subject, as `O=Istio, CN=Root CA`.
    pub subject: String,
    /// The serial number, hex.
    pub serial: String,
    /// The key type (`None`: one istiod does not support).
    pub key_type: Option<String>,
    /// `notAfter`, RFC 3339.
    pub not_after: String,
    /// `notAfter`, Unix seconds.
    pub not_after_unix: i64,
    /// Whole days from the status time to `notAfter` (negative: expired).
    pub days_left: i64,
}

/// One cluster (or the root directory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ClusterStatus {
    /// The cluster's name.
    pub name: String,
    /// Its state.
    pub state: State,
    /// The intermediate (`ca-cert.pem`, first certificate).
    pub ca: Option<CertStatus>,
    /// The roots of its `root-cert.pem`.
    pub roots: Vec<CertStatus>,
    /// The earliest nextUpdate of its `ca-crl.pem`, RFC 3339.
    pub crl_next_update: Option<String>,
    /// The same, Unix seconds.
    pub crl_next_update_unix: Option<i64>,
}

/// The root directory's `root-cert.pem` and `root-crl.pem`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RootStatus {
    /// The state of the signing root (the latest-expiring certificate).
    pub state: State,
    /// Every certificate of `root-cert.pem`.
    pub certs: Vec<CertStatus>,
    /// nextUpdate of `root-crl.pem`, RFC 3339.
    pub crl_next_update: Option<String>,
    /// The same, Unix seconds.
    pub crl_next_update_unix: Option<i64>,
}

/// How many findings of one kind `verify` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FindingCount {
    /// Error or warning.
    pub severity: Severity,
    /// The finding's code.
    pub code: Code,
    /// How many.
    pub count: usize,
}

/// The lifecycle state of a mesh (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Status {
    /// Schema identity of the JSON form: `meshca.status/v1`.
    pub schema: &'static str,
    /// The time the status is for, RFC 3339.
    pub at: String,
    /// The same, Unix seconds.
    pub at_unix: i64,
    /// `renew-soon` window, in days.
    pub warn_days: u32,
    /// Whether `verify` finds no error.
    pub ok: bool,
    /// The root, when the directory has one.
    pub root: Option<RootStatus>,
    /// Every cluster, by name.
    pub clusters: Vec<ClusterStatus>,
    /// `verify`'s findings, counted by severity and code.
    pub findings: Vec<FindingCount>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn days_between(from: OffsetDateTime, to: OffsetDateTime) -> i64 {
    let secs = (to - from).whole_seconds();
    secs.div_euclid(86_400)
}

/// Every certificate of a PEM document (unparsable ones left out).
fn certs_of(file: &str, pem: &[u8], at: OffsetDateTime) -> Vec<CertStatus> {
    let Ok(ders) = crate::pemutil::certificates(file, pem) else {
        return Vec::new();
    };
    ders.iter()
        .filter_map(|der| {
            let c = x509_parser::parse_x509_certificate(der).ok()?.1;
            let not_after = c.validity().not_after.to_datetime();
            Some(CertStatus {
                file: file.to_owned(),
                subject: c.subject().to_string(),
                serial: c.raw_serial().iter().map(|b| format!("{b:02x}")).collect(),
                key_type: crate::key::key_type_of_spki(file, c.public_key().raw)
                    .ok()
                    .map(|k| k.name().to_owned()),
                not_after: rfc3339(not_after),
                not_after_unix: not_after.unix_timestamp(),
                days_left: days_between(at, not_after),
            })
        })
        .collect()
}

/// The earliest nextUpdate among the CRLs of a PEM document.
fn crl_next_update(file: &str, pem: &[u8]) -> Option<OffsetDateTime> {
    let blocks = crate::pemutil::parse_blocks(file, pem).ok()?;
    blocks
        .iter()
        .filter(|b| b.tag() == "X509 CRL")
        .filter_map(|b| {
            let (_, crl) = CertificateRevocationList::from_der(b.contents()).ok()?;
            crl.next_update().map(|t| t.to_datetime())
        })
        .min()
}

fn expiry_state(not_after: Option<OffsetDateTime>, at: OffsetDateTime, warn_days: u32) -> State {
    match not_after {
        Some(t) if t <= at => State::Expired,
        Some(t) if t <= at + time::Duration::days(i64::from(warn_days)) => State::RenewSoon,
        Some(_) => State::Ok,
        None => State::Invalid,
    }
}

impl Status {
    /// The status of `mesh` at `opts.at`, `renew-soon` within
    /// `opts.warn_days`; states come from [`Mesh::verify`] with `opts`.
    pub fn of(mesh: &Mesh, opts: &VerifyOptions) -> Status {
        let report = mesh.verify("", opts);
        Status::from_report(mesh, &report, opts)
    }

    /// [`Status::of`] with a report of `mesh` already made with `opts`.
    pub fn from_report(mesh: &Mesh, report: &Report, opts: &VerifyOptions) -> Status {
        let at = opts.at;
        let root = mesh.root.as_ref().map(|r| {
            let certs = certs_of(ROOT_CERT, r.cert.as_bytes(), at);
            let latest = certs
                .iter()
                .map(|c| c.not_after_unix)
                .max()
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
            let mesh_errors = report
                .groups
                .iter()
                .filter(|g| g.kind == GroupKind::Mesh)
                .flat_map(|g| &g.findings)
                .any(|f| f.severity == Severity::Error && f.file.starts_with("root-"));
            let state = match expiry_state(latest, at, opts.warn_days) {
                State::Ok | State::RenewSoon if mesh_errors => State::Invalid,
                s => s,
            };
            let next = mesh
                .root_crl
                .as_ref()
                .and_then(|c| crl_next_update(ROOT_CRL, c.as_bytes()));
            RootStatus {
                state,
                certs,
                crl_next_update: next.map(rfc3339),
                crl_next_update_unix: next.map(OffsetDateTime::unix_timestamp),
            }
        });
        let clusters =
            mesh.clusters
                .iter()
                .map(|(name, c)| {
                    let ca = certs_of(
                        &format!("{name}/{CA_CERT}"),
                        c.bundle.ca_cert.as_bytes(),
                        at,
                    )
                    .into_iter()
                    .next();
                    let roots = certs_of(
                        &format!("{name}/{ROOT_CERT}"),
                        c.bundle.root_cert.as_bytes(),
                        at,
                    );
                    let findings: Vec<_> = report
                        .groups
                        .iter()
                        .filter(|g| g.kind == GroupKind::Cluster && g.name == *name)
                        .flat_map(|g| &g.findings)
                        .filter(|f| f.severity == Severity::Error)
                        .collect();
                    let not_after = ca
                        .as_ref()
                        .and_then(|c| OffsetDateTime::from_unix_timestamp(c.not_after_unix).ok());
                    let state = if findings.iter().any(|f| f.code == Code::Revoked) {
                        State::Revoked
                    } else {
                        match expiry_state(not_after, at, opts.warn_days) {
                            State::Expired => State::Expired,
                            // The root (or another certificate of the path) expired.
                            _ if findings.iter().any(|f| f.code == Code::Expired) => State::Expired,
                            _ if !findings.is_empty() => State::Invalid,
                            s => s,
                        }
                    };
                    let next = c.bundle.ca_crl.as_ref().and_then(|crl| {
                        crl_next_update(&format!("{name}/{CA_CRL}"), crl.as_bytes())
                    });
                    ClusterStatus {
                        name: name.clone(),
                        state,
                        ca,
                        roots,
                        crl_next_update: next.map(rfc3339),
                        crl_next_update_unix: next.map(OffsetDateTime::unix_timestamp),
                    }
                })
                .collect();
        let mut counts: std::collections::BTreeMap<(Severity, Code), usize> =
            std::collections::BTreeMap::new();
        for f in report.findings() {
            *counts.entry((f.severity, f.code)).or_default() += 1;
        }
        Status {
            schema: "meshca.status/v1",
            at: rfc3339(at),
            at_unix: at.unix_timestamp(),
            warn_days: opts.warn_days,
            ok: report.ok,
            root,
            clusters,
            findings: counts
                .into_iter()
                .map(|((severity, code), count)| FindingCount {
                    severity,
                    code,
                    count,
                })
                .collect(),
        }
    }

    /// Adds clusters whose directory could not be loaded at all (a file
    /// missing or unreadable: see [`crate::store::load_replacing`]), as
    /// `invalid` with nothing known; the status is then not ok.
    pub fn with_unreadable(mut self, names: &[String]) -> Status {
        let mut known: std::collections::HashSet<String> =
            self.clusters.iter().map(|c| c.name.clone()).collect();
        for name in names {
            if !known.insert(name.clone()) {
                continue;
            }
            self.clusters.push(ClusterStatus {
                name: name.clone(),
                state: State::Invalid,
                ca: None,
                roots: Vec::new(),
                crl_next_update: None,
                crl_next_update_unix: None,
            });
            self.ok = false;
        }
        self.clusters.sort_by(|a, b| a.name.cmp(&b.name));
        self
    }

    /// Takes in `meshca verify`'s verdict on the directory itself:
    /// `groups` from [`crate::verify_certs_dir`] of the directory whose
    /// finding files start with `label` (`""` for `.`). The directory can
    /// fail where the mesh loaded from it does not (a cluster directory
    /// that is a symbolic link, a `tls.crt` beside `ca-cert.pem`, a file
    /// meshca does not load): a cluster with an error there is `invalid`
    /// (unless expired or revoked), the root too for an error on a
    /// `root-*` file, and the status is ok only when both verdicts are.
    /// The finding counts become the directory's, as `meshca verify`
    /// prints them.
    pub fn with_dir_verdict(mut self, groups: &[Group], label: &str) -> Status {
        let is_error = |g: &&Group| g.findings.iter().any(|f| f.severity == Severity::Error);
        let root_prefix = if label.is_empty() {
            "root-".to_owned()
        } else {
            format!("{label}/root-")
        };
        for g in groups.iter().filter(is_error) {
            match g.kind {
                GroupKind::Cluster => match self.clusters.iter_mut().find(|c| c.name == g.name) {
                    Some(c) => {
                        if matches!(c.state, State::Ok | State::RenewSoon) {
                            c.state = State::Invalid;
                        }
                    }
                    None => self.clusters.push(ClusterStatus {
                        name: g.name.clone(),
                        state: State::Invalid,
                        ca: None,
                        roots: Vec::new(),
                        crl_next_update: None,
                        crl_next_update_unix: None,
                    }),
                },
                _ => {
                    let on_root = g
                        .findings
                        .iter()
                        .any(|f| f.severity == Severity::Error && f.file.starts_with(&root_prefix));
                    if let Some(r) = self.root.as_mut().filter(|_| on_root) {
                        if matches!(r.state, State::Ok | State::RenewSoon) {
                            r.state = State::Invalid;
                        }
                    }
                }
            }
            self.ok = false;
        }
        self.clusters.sort_by(|a, b| a.name.cmp(&b.name));
        let mut counts: std::collections::BTreeMap<(Severity, Code), usize> =
            std::collections::BTreeMap::new();
        for f in groups.iter().flat_map(|g| &g.findings) {
            *counts.entry((f.severity, f.code)).or_default() += 1;
        }
        self.findings = counts
            .into_iter()
            .map(|((severity, code), count)| FindingCount {
                severity,
                code,
                count,
            })
            .collect();
        self
    }

    /// The Prometheus text exposition format (version 0.0.4), as
    /// node_exporter's textfile collector reads it. The root's series have
    /// an empty `cluster` label. Label values (subjects, from the
    /// certificates) are escaped as the format wants: `\`, `"` and newline.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, help: &str, lines: Vec<(Vec<(&str, String)>, String)>| {
            out.push_str(&format!("# HELP {name} {}\n", escape_help(help)));
            out.push_str(&format!("# TYPE {name} gauge\n"));
            // A series twice (the same certificate twice in a file) makes
            // node_exporter refuse the whole file: the first one stays.
            let mut seen = std::collections::HashSet::new();
            for (labels, value) in lines {
                if !seen.insert(labels.clone()) {
                    continue;
                }
                out.push_str(name);
                if !labels.is_empty() {
                    out.push('{');
                    let parts: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                        .collect();
                    out.push_str(&parts.join(","));
                    out.push('}');
                }
                out.push(' ');
                out.push_str(&value);
                out.push('\n');
            }
        };
        let mut certs = Vec::new();
        let mut cert_line = |cluster: &str, c: &CertStatus| {
            let file = c
                .file
                .rsplit('/')
                .next()
                .unwrap_or(c.file.as_str())
                .to_owned();
            certs.push((
                vec![
                    ("cluster", cluster.to_owned()),
                    ("file", file),
                    ("subject", c.subject.clone()),
                    ("serial", c.serial.clone()),
                ],
                c.not_after_unix.to_string(),
            ));
        };
        if let Some(root) = &self.root {
            for c in &root.certs {
                cert_line("", c);
            }
        }
        for cl in &self.clusters {
            for c in cl.ca.iter().chain(&cl.roots) {
                cert_line(&cl.name, c);
            }
        }
        family(
            "meshca_certificate_expiry_timestamp_seconds",
            "notAfter of each certificate, Unix seconds (cluster \"\": the root directory).",
            certs,
        );
        let mut crls = Vec::new();
        if let Some(t) = self.root.as_ref().and_then(|r| r.crl_next_update_unix) {
            crls.push((vec![("cluster", String::new())], t.to_string()));
        }
        for cl in &self.clusters {
            if let Some(t) = cl.crl_next_update_unix {
                crls.push((vec![("cluster", cl.name.clone())], t.to_string()));
            }
        }
        family(
            "meshca_crl_next_update_timestamp_seconds",
            "Earliest nextUpdate of a cluster's ca-crl.pem (cluster \"\": root-crl.pem), Unix seconds.",
            crls,
        );
        let mut states = Vec::new();
        let mut state_lines = |cluster: &str, current: State| {
            for s in State::ALL {
                states.push((
                    vec![
                        ("cluster", cluster.to_owned()),
                        ("state", s.as_str().to_owned()),
                    ],
                    if s == current { "1" } else { "0" }.to_owned(),
                ));
            }
        };
        if let Some(root) = &self.root {
            state_lines("", root.state);
        }
        for cl in &self.clusters {
            state_lines(&cl.name, cl.state);
        }
        family(
            "meshca_state",
            "1 for the current state of each cluster (cluster \"\": the root): ok, renew-soon, expired, revoked, invalid.",
            states,
        );
        family(
            "meshca_findings",
            "Findings of meshca verify, by severity and code.",
            self.findings
                .iter()
                .map(|f| {
                    (
                        vec![
                            ("severity", f.severity.to_string()),
                            ("code", f.code.as_str().to_owned()),
                        ],
                        f.count.to_string(),
                    )
                })
                .collect(),
        );
        family(
            "meshca_verify_ok",
            "1 when meshca verify finds no error in the certs directory.",
            vec![(Vec::new(), if self.ok { "1" } else { "0" }.to_owned())],
        );
        family(
            "meshca_status_timestamp_seconds",
            "The time this status is for, Unix seconds.",
            vec![(Vec::new(), self.at_unix.to_string())],
        );
        out
    }
}

/// A label value as the exposition format wants it: `\`, `"` and newline
/// escaped. The format has no escape for other control characters: they
/// are written as the text `\u{1b}` (its backslash escaped), so a hostile
/// subject can neither break a line nor reach a terminal.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// HELP text: `\` and newline escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// One line per cluster and one for the root:
///
/// ```text
/// root      ecdsa-p256  2036-05-30  3650 days  crl 2026-08-30  ok
/// cluster1  ecdsa-p256  2028-05-31   730 days  crl -           ok
/// ```
impl fmt::Display for Status {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = |s: &str| s.get(..10).unwrap_or(s).to_owned();
        let width = self
            .clusters
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max(if self.root.is_some() { 6 } else { 4 });
        writeln!(
            out,
            "{:<width$}  {:<10}  {:<10}  {:>9}  {:<10}  STATE",
            "NAME", "KEY", "NOT AFTER", "DAYS LEFT", "CRL NEXT"
        )?;
        let line = |out: &mut fmt::Formatter<'_>,
                    name: &str,
                    cert: Option<&CertStatus>,
                    crl: Option<&String>,
                    state: State|
         -> fmt::Result {
            writeln!(
                out,
                "{:<width$}  {:<10}  {:<10}  {:>9}  {:<10}  {}",
                name,
                cert.and_then(|c| c.key_type.clone())
                    .unwrap_or_else(|| "-".into()),
                cert.map_or_else(|| "-".into(), |c| day(&c.not_after)),
                cert.map_or_else(|| "-".into(), |c| c.days_left.to_string()),
                crl.map_or_else(|| "-".into(), |c| day(c)),
                state
            )
        };
        if let Some(root) = &self.root {
            let signing = root.certs.iter().max_by_key(|c| c.not_after_unix);
            line(
                out,
                "(root)",
                signing,
                root.crl_next_update.as_ref(),
                root.state,
            )?;
        }
        for c in &self.clusters {
            line(
                out,
                &c.name,
                c.ca.as_ref(),
                c.crl_next_update.as_ref(),
                c.state,
            )?;
        }
        let errors: usize = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.count)
            .sum();
        let not_ok = self
            .clusters
            .iter()
            .filter(|c| !matches!(c.state, State::Ok | State::RenewSoon))
            .count();
        writeln!(
            out,
            "{} at {}: {} clusters, {not_ok} expired, revoked or invalid, {} errors (details: meshca verify)",
            if self.ok { "ok" } else { "FAILED" },
            self.at,
            self.clusters.len(),
            errors
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::NewCluster;
    use crate::{IntermediateParams, KeyType, PrivateKey, RootCa, RootParams};

    const NOW: OffsetDateTime = time::macros::datetime!(2026-06-01 12:00 UTC);

    fn mesh(days: &[(&str, u32)]) -> (Mesh, RootCa) {
        let rp = RootParams {
            key_type: KeyType::EcdsaP256,
            ..RootParams::default()
        };
        let root = RootCa::generate(&rp, NOW).unwrap();
        let new = days
            .iter()
            .map(|(name, d)| {
                let ip = IntermediateParams {
                    key_type: KeyType::EcdsaP256,
                    days: *d,
                    ..IntermediateParams::default()
                };
                NewCluster::new(name, ip, PrivateKey::generate(KeyType::EcdsaP256).unwrap())
            })
            .collect();
        let (m, _) = Mesh::new()
            .with_root(&root, Some(root.key().to_pem()), false)
            .unwrap()
            .add_clusters(&root, new, false, NOW)
            .unwrap();
        (m, root)
    }

    #[test]
    fn states_follow_expiry_and_revocation() {
        let (m, root) = mesh(&[("soon", 10), ("later", 730), ("gone", 730)]);
        let (m, _) = m
            .revoke(&root, "gone", crate::Reason::KeyCompromise, NOW, 30)
            .unwrap();
        let m = m.write_crls(&root, &["gone".into()], NOW, 30).unwrap();
        let opts = VerifyOptions::at(NOW);
        let s = Status::of(&m, &opts);
        let state = |n: &str| s.clusters.iter().find(|c| c.name == n).unwrap().state;
        assert_eq!(state("soon"), State::RenewSoon);
        assert_eq!(state("later"), State::Ok);
        assert_eq!(state("gone"), State::Revoked);
        assert_eq!(s.root.as_ref().unwrap().state, State::Ok);
        let gone = s.clusters.iter().find(|c| c.name == "gone").unwrap();
        assert_eq!(
            gone.crl_next_update_unix,
            Some((NOW + time::Duration::days(30)).unix_timestamp())
        );
        // Eleven days on, the 10-day intermediate has expired.
        let s = Status::of(&m, &VerifyOptions::at(NOW + time::Duration::days(11)));
        let soon = s.clusters.iter().find(|c| c.name == "soon").unwrap();
        assert_eq!(soon.state, State::Expired);
        assert!(soon.ca.as_ref().unwrap().days_left < 0);
        let text = s.to_string();
        assert!(text.contains("soon") && text.contains("expired"), "{text}");
    }

    #[test]
    fn prometheus_label_values_are_escaped() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_label("a\u{1b}[2Jb\r"), "a\\\\u{1b}[2Jb\\\\u{d}");
        let (m, _) = mesh(&[("c1", 30)]);
        let mut s = Status::of(&m, &VerifyOptions::at(NOW));
        s.clusters[0].ca.as_mut().unwrap().subject = "O=\"x\"\n, CN=a\\b".into();
        let text = s.prometheus();
        assert!(
            text.contains("subject=\"O=\\\"x\\\"\\n, CN=a\\\\b\""),
            "{text}"
        );
        // No sample line is broken by the subject's newline.
        for line in text.lines() {
            assert!(
                line.starts_with('#') || line.starts_with("meshca_"),
                "{line}"
            );
        }
        assert!(
            text.contains("meshca_state{cluster=\"c1\",state=\"renew-soon\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn a_certificate_twice_in_root_cert_pem_is_one_series() {
        let (mut m, _) = mesh(&[("c1", 30)]);
        if let Some(r) = m.root.as_mut() {
            r.cert = format!("{}{}", r.cert, r.cert);
        }
        let text = Status::of(&m, &VerifyOptions::at(NOW)).prometheus();
        let prefix =
            "meshca_certificate_expiry_timestamp_seconds{cluster=\"\",file=\"root-cert.pem\"";
        let roots = text.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(roots, 1, "{text}");
    }
}
