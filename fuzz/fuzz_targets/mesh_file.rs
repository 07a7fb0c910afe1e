//! Any bytes as a mesh file (`plan -f`, `apply -f`): `MeshFile::parse`,
//! and for a file it accepts, the plan against an empty mesh.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshca::plan::{plan, Action, MeshFile};

fuzz_target!(|data: &[u8]| {
    match MeshFile::parse("fuzz.yaml", data) {
        Err(e) => {
            // An error names the file first.
            assert!(e.to_string().starts_with("fuzz.yaml"), "{e}");
        }
        Ok(file) => {
            // An accepted file has a profile for every cluster that plan
            // takes: renewBefore below the validity, the names unique.
            for spec in &file.clusters {
                let d = file.desired(spec);
                assert!(d.renew_before < d.days, "{d:?}");
                assert!(d.name_constraints == d.name_constraints().is_some());
            }
            let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
            let p = plan(&file, &meshca::Mesh::new(), at).expect("plan of an empty mesh");
            assert_eq!(p.actions.len(), 1 + file.clusters.len());
            assert!(matches!(p.actions.first(), Some(Action::CreateRoot { .. })));
            assert_eq!(p.key_types().len(), p.actions.len());
        }
    }
});
