//! Any bytes as a PEM bundle: certificates, keys and CRLs must parse or be
//! refused with an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = meshca::certificates("fuzz.pem", data);
    let _ = meshca::PrivateKey::from_pem("fuzz.pem", data);
    let _ = meshca::PrivateKey::from_pem_with_passphrase("fuzz.pem", data, &|| {
        Ok(zeroize::Zeroizing::new("fuzz".to_owned()))
    });
});
