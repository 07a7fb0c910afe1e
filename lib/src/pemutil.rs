//! PEM documents: bounded parsing, LF encoding, certificate extraction.

use crate::error::{Error, Result};

/// The largest PEM document meshca reads (1 MiB). A cluster bundle is a few
/// kilobytes; anything this large is a mistake or an attack.
pub const MAX_PEM_BYTES: usize = 1 << 20;

/// The PEM blocks of a document. Their decoded contents (which may be
/// private keys) are zeroized when this is dropped.
pub(crate) struct Blocks(Vec<pem::Pem>);

impl std::fmt::Debug for Blocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tags: Vec<&str> = self.0.iter().map(pem::Pem::tag).collect();
        f.debug_tuple("Blocks").field(&tags).finish()
    }
}

impl std::ops::Deref for Blocks {
    type Target = [pem::Pem];
    fn deref(&self) -> &[pem::Pem] {
        &self.0
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        for block in self.0.drain(..) {
            let mut contents = block.into_contents();
            zeroize::Zeroize::zeroize(&mut contents);
        }
    }
}

/// Parses every PEM block of a document, refusing oversized or non-PEM input.
pub(crate) fn parse_blocks(what: &str, bytes: &[u8]) -> Result<Blocks> {
    if bytes.len() > MAX_PEM_BYTES {
        return Err(Error::TooLarge {
            what: what.into(),
            size: bytes.len(),
            limit: MAX_PEM_BYTES,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Pem {
            what: what.into(),
            problem: "the file is empty".into(),
        });
    }
    let blocks = pem::parse_many(bytes).map_err(|e| Error::Pem {
        what: what.into(),
        problem: format!("malformed PEM: {}", describe_pem_error(&e)),
    })?;
    if blocks.is_empty() {
        let problem = if bytes.first() == Some(&0x30) {
            "not PEM: this looks like DER (binary); convert it with \
             `openssl x509 -inform der -in FILE -out FILE.pem`"
        } else {
            "not PEM: no \"-----BEGIN ...-----\" line found"
        };
        return Err(Error::Pem {
            what: what.into(),
            problem: problem.into(),
        });
    }
    Ok(Blocks(blocks))
}

/// What is wrong, without the pem crate's own text: it quotes the labels
/// and header lines it read (`mismatching BEGIN ("...")`), which for a
/// garbled key file can be key bytes.
fn describe_pem_error(e: &pem::PemError) -> &'static str {
    match e {
        pem::PemError::MismatchedTags(..) => "the BEGIN and END labels differ",
        pem::PemError::MalformedFraming => "a BEGIN or END line is malformed",
        pem::PemError::MissingBeginTag => "a block has no BEGIN line",
        pem::PemError::MissingEndTag => "a block has no END line",
        pem::PemError::MissingData => "a block has no data",
        pem::PemError::InvalidData(_) => "a block's base64 data does not decode",
        pem::PemError::InvalidHeader(_) => "a block has a malformed header line",
        pem::PemError::NotUtf8(_) => "it is not UTF-8 text",
    }
}

/// Encodes one block with LF line endings; the result ends with a newline.
pub(crate) fn encode(block: &pem::Pem) -> zeroize::Zeroizing<String> {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    zeroize::Zeroizing::new(pem::encode_config(block, config))
}

/// Encodes a certificate's DER as a PEM `CERTIFICATE` block ending with a newline.
pub fn certificate_pem(der: &[u8]) -> String {
    let block = pem::Pem::new("CERTIFICATE", der.to_vec());
    encode(&block).to_string()
}

/// The DER of every `CERTIFICATE` block of a PEM document, each checked to
/// parse as X.509. Fails when there is none.
pub fn certificates(what: &str, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let blocks = parse_blocks(what, bytes)?;
    let mut out = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        if block.tag() != "CERTIFICATE" {
            continue;
        }
        let der = block.contents().to_vec();
        if let Err(e) = x509_parser::parse_x509_certificate(&der) {
            return Err(Error::BadCertificate {
                what: format!("{what} (PEM block {})", i + 1),
                reason: e.to_string(),
            });
        }
        out.push(der);
    }
    if out.is_empty() {
        return Err(Error::Pem {
            what: what.into(),
            problem: "no certificate found (expected a PEM block \"CERTIFICATE\")".into(),
        });
    }
    Ok(out)
}

/// Joins PEM documents so that each starts on its own line: a document not
/// ending with a newline gets one (a chain glued as
/// `-----END CERTIFICATE----------BEGIN` breaks Envoy).
pub fn concat(docs: &[&str]) -> String {
    let mut out = String::new();
    for doc in docs {
        out.push_str(doc);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_empty_der_and_huge_input() {
        assert!(parse_blocks("a.pem", b"  \n")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let der = [0x30, 0x82, 0x01, 0x00, 0x01];
        assert!(parse_blocks("a.pem", &der)
            .unwrap_err()
            .to_string()
            .contains("DER"));
        let big = vec![b'A'; MAX_PEM_BYTES + 1];
        assert!(matches!(
            parse_blocks("a.pem", &big),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn concat_adds_missing_newlines() {
        assert_eq!(concat(&["a", "b\n"]), "a\nb\n");
    }
}
