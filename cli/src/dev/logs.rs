//! Log lines of every service, prefixed and coloured so that one terminal
//! can follow the whole system:
//!
//! ```text
//!    operator │ 2026-11-28T16:01:02Z  INFO agentauth_operator::server: listening
//!  verifier-a │ 2026-11-28T16:01:03Z  INFO agentauth_verifier::server: ready
//!         dev │ ready in 6.2s
//! ```
//!
//! The prefix has a fixed width (the longest service name) so the messages
//! line up. Colour is used only when stdout is a terminal and `NO_COLOR` is
//! unset (<https://no-color.org>); the whole line is written under one lock,
//! so lines of different services never interleave mid-line.

use std::io::{IsTerminal as _, Write as _};

/// The width of the name column: `verifier-a` and `verifier-b` are the longest.
pub const NAME_WIDTH: usize = 10;

/// The separator between the name column and the message.
const SEPARATOR: &str = " │ ";

/// How a service's lines are shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Style {
    /// Whether ANSI colours are written.
    pub colour: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty.
    pub fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            colour: !no_color && std::io::stdout().is_terminal(),
        }
    }

    /// The full line for `message` of `service`, without the newline.
    pub fn line(&self, service: &str, message: &str) -> String {
        let name = format!("{service:>NAME_WIDTH$}");
        if self.colour {
            let colour = colour_of(service);
            format!("\x1b[{colour}m{name}{SEPARATOR}\x1b[0m{message}")
        } else {
            format!("{name}{SEPARATOR}{message}")
        }
    }

    /// `text` in bold (when colouring), for the runner's own headlines.
    pub fn bold(&self, text: &str) -> String {
        if self.colour {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// `text` in bold red (when colouring), for failures.
    pub fn alarm(&self, text: &str) -> String {
        if self.colour {
            format!("\x1b[1;31m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Prints one line of `service` to stdout. A closed stdout (the
    /// terminal went away) is ignored: the run is stopped by its signal.
    pub fn print(&self, service: &str, message: &str) {
        let line = self.line(service, message);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// The ANSI colour code of a service; stable, so a service keeps its colour
/// from one run to the next.
pub fn colour_of(service: &str) -> &'static str {
    match service {
        "operator" => "36",   // cyan
        "webhook" => "35",    // magenta
        "verifier-a" => "32", // green
        "verifier-b" => "33", // yellow
        "redis" => "31",      // red
        "apiserver" => "34",  // blue
        "provider" => "96",   // bright cyan
        "dev" => "1",         // bold
        _ => "37",            // white
    }
}

/// Removes ANSI escape sequences (CSI `ESC [ ... letter`) from `line`:
/// the services colour their own log levels only when told they may.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_have_a_fixed_width_and_line_up() {
        let plain = Style { colour: false };
        assert_eq!(plain.line("operator", "hello"), "  operator │ hello");
        assert_eq!(plain.line("verifier-a", "hello"), "verifier-a │ hello");
        assert_eq!(plain.line("redis", ""), "     redis │ ");
        let columns: Vec<usize> = ["operator", "webhook", "verifier-b", "redis", "apiserver"]
            .iter()
            .map(|s| plain.line(s, "x").find('│').unwrap_or_default())
            .collect();
        assert!(columns.iter().all(|c| *c == columns[0]), "{columns:?}");
    }

    #[test]
    fn colour_only_when_asked_and_each_service_has_its_own() {
        let coloured = Style { colour: true };
        let line = coloured.line("webhook", "up");
        assert!(line.starts_with("\x1b[35m"), "{line:?}");
        assert!(line.ends_with("\x1b[0mup"), "{line:?}");
        assert_eq!(strip_ansi(&line), "   webhook │ up");
        let services = [
            "operator",
            "webhook",
            "verifier-a",
            "verifier-b",
            "redis",
            "apiserver",
        ];
        for (i, a) in services.iter().enumerate() {
            for b in &services[i + 1..] {
                assert_ne!(colour_of(a), colour_of(b), "{a} and {b}");
            }
        }
        let plain = Style { colour: false };
        assert!(!plain.line("webhook", "up").contains('\x1b'));
        assert_eq!(plain.bold("ready"), "ready");
        assert_eq!(plain.alarm("gone"), "gone");
    }

    #[test]
    fn ansi_sequences_are_stripped_from_service_output() {
        assert_eq!(
            strip_ansi("\x1b[2m2026\x1b[0m \x1b[32m INFO\x1b[0m ok"),
            "2026  INFO ok"
        );
        assert_eq!(strip_ansi("no colour │ here"), "no colour │ here");
    }
}
