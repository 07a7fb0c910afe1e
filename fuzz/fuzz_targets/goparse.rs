//! Any bytes as DER given to meshca's restatement of Go's certificate and
//! CRL parsers (`x509.ParseCertificate`, `x509.ParseRevocationList`): no
//! panic, and the same verdict twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshca::__fuzz::{go_parse_certificate, go_parse_crl};

fuzz_target!(|data: &[u8]| {
    let cert = go_parse_certificate(data);
    assert_eq!(cert, go_parse_certificate(data));
    if let Err(why) = cert {
        assert!(why.starts_with("x509: "), "reason not in Go's words: {why}");
    }
    let crl = go_parse_crl(data);
    if let Err(why) = crl {
        assert!(why.starts_with("x509: "), "reason not in Go's words: {why}");
    }
});
