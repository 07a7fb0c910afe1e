//! A whole certs directory given to `verify_mesh`. After two bytes (the
//! marker's offset, below) the input is split on "\n--8<--\n" into
//! root-cert.pem, root-key.pem, root-crl.pem, then per cluster (cluster1,
//! cluster2, ...; at most 8) ca-cert.pem, ca-key.pem, cert-chain.pem,
//! root-cert.pem, ca-crl.pem, cacerts.yaml. An empty part is an absent file.
//!
//! A marker is planted in every key file at the offset the first two bytes
//! choose (its preamble, PEM label, headers or base64 body): no finding may
//! repeat it, since verification must never echo what it read from a key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshca::{BundleFiles, MeshFiles, VerifyOptions};
use zeroize::Zeroizing;

const SEP: &[u8] = b"\n--8<--\n";
const MARKER: &[u8] = b"Qm9vZ3Vz-KEY-MARKER-7d41c2";
const MAX_CLUSTERS: usize = 8;

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

/// Threads of this process (Linux).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

/// `verify_mesh` checks clusters on worker threads; each frees aws-lc's
/// per-thread state (RNG, error queue) in its exit destructors, which may
/// run after the call has returned. Wait until those threads are gone, or
/// LeakSanitizer takes that state for a leak.
fn wait_for_threads(before: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    while threads() > before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let Some((offset, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let offset = usize::from(u16::from_be_bytes(*offset));
    let parts = split(rest);
    // The marker must come only from a key file, or a hit proves nothing.
    if parts.iter().any(|p| contains(p, MARKER)) {
        return;
    }
    let file = |i: usize| parts.get(i).filter(|p| !p.is_empty()).map(|p| p.to_vec());
    let key = |i: usize| {
        file(i).map(|mut k| {
            let at = offset % (k.len() + 1);
            k.splice(at..at, MARKER.iter().copied());
            Zeroizing::new(k)
        })
    };

    let mut mesh = MeshFiles::default();
    mesh.root_cert = file(0);
    mesh.root_key = key(1);
    mesh.root_crl = file(2);
    for c in 0..MAX_CLUSTERS {
        let base = 3 + 6 * c;
        if base >= parts.len() {
            break;
        }
        let mut b = BundleFiles::default();
        b.ca_cert = file(base);
        b.ca_key = key(base + 1);
        b.cert_chain = file(base + 2);
        b.root_cert = file(base + 3);
        b.ca_crl = file(base + 4);
        b.cacerts_yaml = file(base + 5).map(Zeroizing::new);
        mesh.clusters.insert(format!("cluster{}", c + 1), b);
    }

    // 2026-12-02, inside the seed corpus' validity.
    let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_789);
    let before = threads();
    let groups = meshca::verify_mesh("certs", &mesh, &VerifyOptions::at(at));
    wait_for_threads(before);
    for g in &groups {
        for f in &g.findings {
            assert!(
                !contains(f.message.as_bytes(), MARKER) && !contains(f.file.as_bytes(), MARKER),
                "a finding echoes key bytes: {:?} {}: {}",
                f.code,
                f.file,
                f.message
            );
        }
    }
});
