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

/// [`parse_blocks`] for a certificate file (`root-cert.pem`,
/// `cert-chain.pem`, `ca-cert.pem`), remembering the last few documents
/// this thread parsed. A mesh's files repeat each other: every cluster's
/// `root-cert.pem` is the mesh's root, its `cert-chain.pem` is its
/// `ca-cert.pem` followed by that root, and verify reads the chain twice.
/// Those are not parsed again: a document equal to one remembered, or made
/// of two remembered ones end to end, gets their blocks. Only documents of
/// `CERTIFICATE` blocks alone are remembered (never key material), of at
/// most 64 KiB.
pub(crate) fn parse_cert_blocks(what: &str, bytes: &[u8]) -> Result<Blocks> {
    if let Some(blocks) = RECENT.with(|r| r.borrow().find(bytes)) {
        return Ok(Blocks(blocks));
    }
    let blocks = parse_blocks(what, bytes)?;
    if bytes.len() <= RECENT_BYTES && blocks.iter().all(|b| b.tag() == "CERTIFICATE") {
        RECENT.with(|r| r.borrow_mut().remember(bytes, &blocks));
    }
    Ok(blocks)
}

/// How many documents a thread remembers (a cluster's three certificate
/// files and the mesh's root).
const RECENT_DOCS: usize = 4;

/// The largest document remembered (a chain of a dozen certificates).
const RECENT_BYTES: usize = 64 << 10;

thread_local! {
    static RECENT: std::cell::RefCell<Recent> = const { std::cell::RefCell::new(Recent(Vec::new())) };
}

/// Documents recently parsed, newest last: their bytes, their blocks, and
/// whether a document appended to them parses as theirs then its own.
struct Recent(Vec<(Vec<u8>, Vec<pem::Pem>, bool)>);

impl Recent {
    fn find(&self, bytes: &[u8]) -> Option<Vec<pem::Pem>> {
        if let Some((_, blocks, _)) = self.0.iter().find(|(b, ..)| b.as_slice() == bytes) {
            return Some(blocks.clone());
        }
        for (head, head_blocks, joinable) in &self.0 {
            if !*joinable || head.len() >= bytes.len() || !bytes.starts_with(head) {
                continue;
            }
            let tail = bytes.get(head.len()..)?;
            if let Some((_, tail_blocks, _)) = self.0.iter().find(|(b, ..)| b.as_slice() == tail) {
                let mut blocks = head_blocks.clone();
                blocks.extend(tail_blocks.iter().cloned());
                return Some(blocks);
            }
        }
        None
    }

    fn remember(&mut self, bytes: &[u8], blocks: &[pem::Pem]) {
        if self.0.len() >= RECENT_DOCS {
            self.0.remove(0);
        }
        self.0.push((
            bytes.to_vec(),
            blocks.to_vec(),
            joinable(bytes, blocks.len()),
        ));
    }
}

/// Whether the pem crate reads `head` followed by any document as the
/// blocks of `head` then those of the document, when it read `blocks`
/// blocks from `head`: `head` ends with a newline (no marker spans the
/// join) and holds no `-----BEGIN ` beyond its blocks' own (nothing
/// after its last block starts a block the next document would end).
fn joinable(head: &[u8], blocks: usize) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN ";
    head.ends_with(b"\n") && memchr::memmem::find_iter(head, BEGIN).count() == blocks
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

    /// The remembered documents give exactly what the pem crate reads:
    /// documents built from pieces that trip its parser (text around
    /// blocks, a BEGIN without its END, headers, blank lines, CRLF, no
    /// final newline), joined two by two.
    #[test]
    fn remembered_documents_read_as_the_pem_crate_reads_them() {
        let cert = |n: u8| {
            format!(
                "-----BEGIN CERTIFICATE-----\nMII{}Aw==\n-----END CERTIFICATE-----",
                n % 10
            )
        };
        let pieces: Vec<String> = vec![
            cert(1),
            cert(2),
            "\n".into(),
            "\r\n".into(),
            "junk ".into(),
            "-----BEGIN CERTIFICATE-----\n".into(),
            "-----END CERTIFICATE-----\n".into(),
            "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\nMIIB\n-----END CERTIFICATE-----\n".into(),
            "-----".into(),
            "----------BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n".into(),
            "-----BEGIN X509 CRL-----\nMIID\n-----END X509 CRL-----\n".into(),
        ];
        let mut rng = 7u64;
        let mut next = |n: usize| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 33) as usize % n
        };
        let doc = |next: &mut dyn FnMut(usize) -> usize| -> String {
            (0..1 + next(4))
                .map(|_| pieces[next(pieces.len())].clone())
                .collect()
        };
        let mut answered = 0;
        for _ in 0..3000 {
            let (a, b) = (doc(&mut next), doc(&mut next));
            RECENT.with(|r| r.borrow_mut().0.clear());
            let (Ok(_), Ok(_)) = (
                parse_cert_blocks("a", a.as_bytes()),
                parse_cert_blocks("b", b.as_bytes()),
            ) else {
                continue;
            };
            let joined = format!("{a}{b}");
            let Some(memo) = RECENT.with(|r| r.borrow().find(joined.as_bytes())) else {
                continue;
            };
            answered += 1;
            let direct =
                pem::parse_many(joined.as_bytes()).expect("the join of two documents read");
            assert_eq!(memo, direct, "{joined:?}");
        }
        assert!(answered > 100, "only {answered} joins answered from memory");
    }

    #[test]
    fn a_private_key_is_never_remembered() {
        let key = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMIIC\n-----END PRIVATE KEY-----\n";
        RECENT.with(|r| r.borrow_mut().0.clear());
        assert_eq!(parse_cert_blocks("k", key).unwrap().len(), 2);
        assert!(RECENT.with(|r| r.borrow().0.is_empty()));
    }

    #[test]
    fn concat_adds_missing_newlines() {
        assert_eq!(concat(&["a", "b\n"]), "a\nb\n");
    }
}
