//! Any bytes as a Secret YAML: the reader, and loading a root from it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = meshca::SecretData::from_yaml("fuzz.yaml", data);
    assert!(meshca::__fuzz::secret_readers_agree(data));
    let _ = meshca::RootCa::from_secret_yaml("fuzz.yaml", data, &|| {
        Ok(zeroize::Zeroizing::new("fuzz".to_owned()))
    });
});
