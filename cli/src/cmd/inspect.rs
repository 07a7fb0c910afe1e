//! `meshca inspect FILE...`.

use std::io::Write;

use anyhow::Result;
use meshca::{inspect_pem, read_limited, Item};
use serde::Serialize;

use crate::cli::InspectArgs;
use crate::output::printable;

#[derive(Serialize)]
struct FileReport<'a> {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<&'a [Item]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub(crate) fn run(args: &InspectArgs) -> Result<u8> {
    let at = args.at.unwrap_or_else(time::OffsetDateTime::now_utc);
    let mut results = Vec::new();
    for path in &args.files {
        let what = path.display().to_string();
        let res = read_limited(path)
            .map(zeroize::Zeroizing::new)
            .and_then(|bytes| inspect_pem(&what, &bytes, at));
        results.push((what, res));
    }
    let failed = results.iter().any(|(_, r)| r.is_err());
    let mut out = std::io::stdout().lock();
    if args.json {
        let reports: Vec<FileReport<'_>> = results
            .iter()
            .map(|(file, r)| FileReport {
                file: file.clone(),
                items: r.as_ref().ok().map(Vec::as_slice),
                error: r.as_ref().err().map(ToString::to_string),
            })
            .collect();
        // Through io::Error, so that a closed pipe is seen as one.
        serde_json::to_writer_pretty(&mut out, &reports).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        let mut text = Vec::new();
        for (file, r) in &results {
            if let Ok(items) = r {
                write_human(&mut text, file, items)?;
            }
        }
        out.write_all(printable(&String::from_utf8_lossy(&text)).as_bytes())?;
    }
    out.flush()?;
    for (_, r) in &results {
        if let Err(e) = r {
            crate::output::error(format_args!("{e}"));
        }
    }
    Ok(if failed {
        crate::EXIT_USAGE
    } else {
        crate::EXIT_OK
    })
}

fn write_human(out: &mut impl Write, file: &str, items: &[Item]) -> std::io::Result<()> {
    writeln!(
        out,
        "{file}: {}",
        crate::output::count(items.len(), "PEM block")
    )?;
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Certificate(c) => {
                writeln!(out, "  [{}] certificate", i + 1)?;
                writeln!(out, "      subject:     {}", c.subject)?;
                writeln!(
                    out,
                    "      issuer:      {}{}",
                    c.issuer,
                    if c.self_signed { " (self-signed)" } else { "" }
                )?;
                writeln!(out, "      serial:      {}", c.serial)?;
                let left = if c.days_left < 0 {
                    let ago = usize::try_from(c.days_left.unsigned_abs()).unwrap_or(usize::MAX);
                    format!("EXPIRED {} ago", crate::output::count(ago, "day"))
                } else {
                    let left = usize::try_from(c.days_left).unwrap_or(usize::MAX);
                    format!("{} left", crate::output::count(left, "day"))
                };
                writeln!(
                    out,
                    "      validity:    {} .. {} ({left})",
                    c.not_before, c.not_after
                )?;
                writeln!(out, "      key:         {}", c.key)?;
                writeln!(out, "      signature:   {}", c.signature_algorithm)?;
                let ca = match (c.is_ca, c.path_len) {
                    (true, Some(n)) => format!("CA:TRUE, pathlen:{n}"),
                    (true, None) => "CA:TRUE".to_owned(),
                    (false, _) => "CA:FALSE".to_owned(),
                };
                writeln!(out, "      basic:       {ca}")?;
                if !c.key_usage.is_empty() {
                    writeln!(out, "      key usage:   {}", c.key_usage.join(", "))?;
                }
                if !c.extended_key_usage.is_empty() {
                    writeln!(
                        out,
                        "      ext usage:   {}",
                        c.extended_key_usage.join(", ")
                    )?;
                }
                if !c.sans.is_empty() {
                    writeln!(out, "      SANs:        {}", c.sans.join(", "))?;
                }
                if let Some(s) = &c.subject_key_id {
                    writeln!(out, "      SKI:         {s}")?;
                }
                if let Some(a) = &c.authority_key_id {
                    writeln!(out, "      AKI:         {a}")?;
                }
                writeln!(out, "      SHA-256:     {}", c.sha256_fingerprint)?;
            }
            Item::PrivateKey(k) => {
                writeln!(
                    out,
                    "  [{}] private key: {} ({}{})",
                    i + 1,
                    k.key,
                    k.format,
                    if k.encrypted {
                        ", encrypted"
                    } else {
                        ", not encrypted"
                    }
                )?;
            }
            Item::Crl(c) => {
                writeln!(out, "  [{}] CRL", i + 1)?;
                writeln!(out, "      issuer:      {}", c.issuer)?;
                writeln!(out, "      this update: {}", c.this_update)?;
                if let Some(n) = &c.next_update {
                    writeln!(out, "      next update: {n}")?;
                }
                if let Some(n) = &c.number {
                    writeln!(out, "      CRL number:  {n}")?;
                }
                writeln!(
                    out,
                    "      revoked:     {}",
                    if c.revoked.is_empty() {
                        "none".to_owned()
                    } else {
                        c.revoked.join(", ")
                    }
                )?;
            }
            Item::Other { label } => writeln!(out, "  [{}] {label} (not inspected)", i + 1)?,
            _ => writeln!(out, "  [{}] (unknown item)", i + 1)?,
        }
    }
    Ok(())
}
