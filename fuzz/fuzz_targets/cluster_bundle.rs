//! A whole cluster bundle given to `verify`: the input is split on
//! "\n--8<--\n" into ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem,
//! ca-crl.pem and cacerts.yaml (missing parts are absent files).
#![no_main]

use libfuzzer_sys::fuzz_target;

const SEP: &[u8] = b"\n--8<--\n";

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEP.len()).position(|w| w == SEP) {
        parts.push(&rest[..i]);
        rest = &rest[i + SEP.len()..];
    }
    parts.push(rest);
    parts
}

fuzz_target!(|data: &[u8]| {
    let parts = split(data);
    let get = |i: usize| parts.get(i).map(|p| p.to_vec());
    let mut files = meshca::BundleFiles::default();
    files.ca_cert = get(0);
    files.ca_key = get(1).map(zeroize::Zeroizing::new);
    files.cert_chain = get(2);
    files.root_cert = get(3);
    files.ca_crl = get(4);
    files.cacerts_yaml = get(5).map(zeroize::Zeroizing::new);
    let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let _ = meshca::verify_bundle("cluster1", Some("cluster1"), &files, &meshca::VerifyOptions::at(at));
});
