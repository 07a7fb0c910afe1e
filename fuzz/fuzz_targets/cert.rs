//! Any bytes as the DER of a CA certificate, wrapped in PEM and handed to
//! the verifier as `ca-cert.pem` (and as its own chain and root).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pem = meshca::certificate_pem(data);
    let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let _ = meshca::inspect_pem("fuzz.pem", pem.as_bytes(), at);
    let mut files = meshca::BundleFiles::default();
    files.ca_cert = Some(pem.clone().into_bytes());
    files.cert_chain = Some(pem.clone().into_bytes());
    files.root_cert = Some(pem.into_bytes());
    let _ = meshca::verify_bundle("fuzz", Some("fuzz"), &files, &meshca::VerifyOptions::at(at));
});
