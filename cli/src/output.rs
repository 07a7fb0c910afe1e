//! Progress and messages on stderr.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

/// Shows "generating keys [k/n]" on stderr while slow key generation runs,
/// only when stderr is a terminal, the work is slow (RSA) and not `--quiet`.
pub(crate) struct Progress {
    labels: Vec<String>,
    enabled: bool,
    total: usize,
    started: Instant,
    shown: Mutex<bool>,
}

impl Progress {
    pub(crate) fn new(labels: Vec<String>, slow: bool, quiet: bool) -> Self {
        let total = labels.len();
        Progress {
            labels,
            enabled: slow && !quiet && total > 0 && std::io::stderr().is_terminal(),
            total,
            started: Instant::now(),
            shown: Mutex::new(false),
        }
    }

    pub(crate) fn tick(&self, done: usize, index: usize) {
        if !self.enabled || self.started.elapsed().as_millis() < 700 && done < self.total {
            return;
        }
        if let Ok(mut shown) = self.shown.lock() {
            *shown = true;
            let mut err = std::io::stderr().lock();
            let label = self.labels.get(index).map_or("", String::as_str);
            let _ = write!(
                err,
                "\r\x1b[Kmeshca: generating keys [{done}/{}] {label} done, {:.1}s",
                self.total,
                self.started.elapsed().as_secs_f64()
            );
            let _ = err.flush();
        }
    }

    pub(crate) fn finish(&self) {
        if let Ok(shown) = self.shown.lock() {
            if *shown {
                let _ = writeln!(std::io::stderr());
            }
        }
    }
}

/// `text` made safe to print on a terminal: every control character but
/// newline and tab, and every bidirectional-text control, is shown escaped
/// (`\u{1b}`). Certificates, CRLs and PEM labels come from files that may be
/// hostile, and a subject holding an escape sequence could otherwise
/// rewrite the screen (hide an error, print a fake "PASSED").
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Prints a line on stdout unless quiet.
pub(crate) fn say(quiet: bool, line: std::fmt::Arguments<'_>) {
    if !quiet {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", printable(&line.to_string()));
    }
}

/// Prints a warning on stderr (always: warnings are never silenced).
pub(crate) fn warn(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "meshca: warning: {}",
        printable(&line.to_string())
    );
}

/// A date for humans: `2028-11-24 20:22 UTC`.
pub(crate) fn date(t: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| t.to_string())
}

/// Prints an error line on stderr.
pub(crate) fn error(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "meshca: error: {}",
        printable(&line.to_string())
    );
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escape_sequences_from_certificates_are_shown_escaped() {
        assert_eq!(
            printable("CN=a\u{1b}[31mRED\u{1b}]0;t\u{7}\u{9b}\u{202e}x"),
            "CN=a\\u{1b}[31mRED\\u{1b}]0;t\\u{7}\\u{9b}\\u{202e}x"
        );
        assert_eq!(printable("a\n\tb: ok"), "a\n\tb: ok");
    }
}
