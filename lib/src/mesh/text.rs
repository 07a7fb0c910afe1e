//! The report of `meshca verify` for humans, as `Display`: what an
//! installer prints after [`crate::Mesh::verify`].

use std::fmt;

use crate::verify::{GroupKind, Report, Severity};

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// One line per group with its verdict, one per finding, then the total:
///
/// ```text
/// mesh (certs): ok
/// cluster1 (certs/cluster1): FAILED, 1 error
///   error   key-mismatch             certs/cluster1/ca-key.pem does not match ...
/// FAILED: 1 error, 0 warnings, 1 cluster checked
/// ```
impl fmt::Display for Report {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        for group in &self.groups {
            let errors = group
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count();
            let warnings = group.findings.len().saturating_sub(errors);
            let verdict = match (errors, warnings) {
                (0, 0) => "ok".to_owned(),
                (0, w) => format!("ok, {}", plural(w, "warning")),
                (e, 0) => format!("FAILED, {}", plural(e, "error")),
                (e, w) => format!("FAILED, {}, {}", plural(e, "error"), plural(w, "warning")),
            };
            writeln!(out, "{} ({}): {verdict}", group.name, group.path)?;
            for f in &group.findings {
                writeln!(out, "  {:<7} {:<24} {}", f.severity, f.code, f.message)?;
            }
        }
        let clusters = self
            .groups
            .iter()
            .filter(|g| g.kind == GroupKind::Cluster)
            .count();
        writeln!(
            out,
            "{}: {}, {}, {} checked",
            if self.ok { "PASSED" } else { "FAILED" },
            plural(self.errors, "error"),
            plural(self.warnings, "warning"),
            plural(clusters, "cluster")
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::mesh::{Mesh, NewCluster};
    use crate::{IntermediateParams, KeyType, PrivateKey, RootCa, RootParams, VerifyOptions};

    #[test]
    fn a_report_prints_each_group_and_the_total() {
        let now = time::macros::datetime!(2026-06-01 12:00 UTC);
        let rp = RootParams {
            key_type: KeyType::EcdsaP256,
            ..RootParams::default()
        };
        let root = RootCa::generate(&rp, now).unwrap();
        let ip = IntermediateParams {
            key_type: KeyType::EcdsaP256,
            ..IntermediateParams::default()
        };
        let c1 = NewCluster::new("c1", ip, PrivateKey::generate(KeyType::EcdsaP256).unwrap());
        let (mesh, _) = Mesh::new()
            .with_root(&root, Some(root.key().to_pem()), false)
            .unwrap()
            .add_clusters(&root, vec![c1], false, now)
            .unwrap();
        let text = mesh.verify("certs", &VerifyOptions::at(now)).to_string();
        assert!(text.contains("c1 (certs/c1): ok\n"), "{text}");
        assert!(
            text.ends_with("PASSED: 0 errors, 0 warnings, 1 cluster checked\n"),
            "{text}"
        );
        let mut broken = mesh.clone();
        if let Some(c) = broken.clusters.get_mut("c1") {
            c.bundle.ca_key = root.key().to_pem();
        }
        let text = broken.verify("", &VerifyOptions::at(now)).to_string();
        assert!(
            text.contains("FAILED, ") && text.contains("key-mismatch"),
            "{text}"
        );
    }
}
