//! Progress and messages on stderr.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Shows "generating 3 keys (rsa-4096): 1/3 done (root), 2.1 s" on stderr
/// while slow key generation runs: drawn at once and redrawn every 100 ms
/// (so the time moves before the first key is done), only when stderr is a
/// terminal, the work is slow (RSA) and not `--quiet`.
pub(crate) struct Progress {
    shared: Option<Arc<Shared>>,
    ticker: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

struct Shared {
    header: String,
    labels: Vec<String>,
    total: usize,
    started: Instant,
    /// Keys done, and the last one finished.
    state: Mutex<(usize, Option<usize>)>,
}

impl Shared {
    fn draw(&self) {
        let Ok(state) = self.state.lock() else {
            return;
        };
        let (done, last) = *state;
        let which = last
            .and_then(|i| self.labels.get(i))
            .map_or_else(String::new, |l| format!(" ({l})"));
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[Kmeshca: {}: {done}/{} done{which}, {:.1} s",
            self.header,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
        let _ = err.flush();
    }
}

impl Progress {
    /// Starts showing progress for keys of `types`, named by `labels`.
    pub(crate) fn new(labels: Vec<String>, types: &[meshca::KeyType], quiet: bool) -> Self {
        let total = labels.len();
        let slow = types.iter().any(|t| t.is_rsa());
        if !slow || quiet || total == 0 || !std::io::stderr().is_terminal() {
            return Progress {
                shared: None,
                ticker: None,
            };
        }
        let mut names: Vec<String> = Vec::new();
        for t in types {
            let name = t.to_string();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let shared = Arc::new(Shared {
            header: format!("generating {} ({})", count(total, "key"), names.join(", ")),
            labels,
            total,
            started: Instant::now(),
            state: Mutex::new((0, None)),
        });
        shared.draw();
        let (tx, rx) = mpsc::channel::<()>();
        let for_ticker = Arc::clone(&shared);
        let ticker = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(Duration::from_millis(100))
                {
                    for_ticker.draw();
                }
            })
            .ok()
            .map(|handle| (tx, handle));
        Progress {
            shared: Some(shared),
            ticker,
        }
    }

    /// Key `index` is done, `done` keys in all.
    pub(crate) fn tick(&self, done: usize, index: usize) {
        let Some(shared) = &self.shared else {
            return;
        };
        if let Ok(mut state) = shared.state.lock() {
            *state = (done, Some(index));
        }
        shared.draw();
    }

    /// Stops the ticker and ends the line.
    pub(crate) fn finish(mut self) {
        if let Some((tx, handle)) = self.ticker.take() {
            drop(tx);
            let _ = handle.join();
        }
        if let Some(shared) = &self.shared {
            shared.draw();
            let _ = writeln!(std::io::stderr());
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

/// [`printable`] for text that must stay on one line (a field of a
/// report line): line breaks are escaped too, so text from input (a
/// certificate's subject) cannot forge a line of its own.
pub(crate) fn printable_line(text: &str) -> Cow<'_, str> {
    if !text.contains(['\n', '\r']) {
        return printable(text);
    }
    let one = text.replace('\n', "\\n").replace('\r', "\\r");
    Cow::Owned(printable(&one).into_owned())
}

/// `1 cluster`, `2 clusters`, `0 clusters`.
pub(crate) fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
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
