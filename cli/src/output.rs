//! Progress and messages on stderr.

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

/// Prints a line on stdout unless quiet.
pub(crate) fn say(quiet: bool, line: std::fmt::Arguments<'_>) {
    if !quiet {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

/// Prints a warning on stderr (always: warnings are never silenced).
pub(crate) fn warn(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "meshca: warning: {line}");
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
    let _ = writeln!(std::io::stderr().lock(), "meshca: error: {line}");
}
