//! Any bytes given to `meshca inspect`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let _ = meshca::inspect_pem("fuzz.pem", data, at);
});
