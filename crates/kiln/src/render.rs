//! Everything kiln writes to the terminal goes through here: plain text,
//! `error:`/`caused by:`/`hint:` messages, template diagnostics drawn by
//! miette, and (from [`crate::events`]) build events.
//!
//! Two properties hold for every byte printed, whoever composed the line:
//! - it passes the redactor that knows the command's sensitive values
//!   ([`set_redactor`], set as soon as a template is loaded), so a message
//!   that quotes a provisioner's output, an error chain or a panic cannot
//!   carry a secret;
//! - human text has its control characters escaped ([`clean`]), so a file
//!   name from an image or a backing-file name cannot drive the terminal.

use std::io::{IsTerminal, Write};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use kiln_secret::Redactor;
use kiln_template::diag::Diag;

static REDACTOR: RwLock<Option<Redactor>> = RwLock::new(None);
/// `NO_COLOR` is unset (from the command's settings).
static COLOR_ALLOWED: AtomicBool = AtomicBool::new(true);

/// Whether output may be coloured, as the settings resolved `NO_COLOR`.
pub fn set_color_allowed(allowed: bool) {
    COLOR_ALLOWED.store(allowed, Ordering::Relaxed);
}

pub fn color_allowed() -> bool {
    COLOR_ALLOWED.load(Ordering::Relaxed)
}

/// Mask these values in everything printed from now on (adds to what was
/// set before).
pub fn set_redactor(r: &Redactor) {
    if let Ok(mut g) = REDACTOR.write() {
        *g = Some(match g.take() {
            Some(old) => old.with(r.secrets().iter().cloned()),
            None => r.clone(),
        });
    }
}

/// `text` with every known secret masked.
pub fn redact(text: &str) -> String {
    match REDACTOR.read() {
        Ok(g) => match g.as_ref() {
            Some(r) => r.redact(text).into_owned(),
            None => text.to_owned(),
        },
        Err(_) => text.to_owned(),
    }
}

/// `text` redacted, with control characters (ESC, BEL, CR, …; not newline
/// or tab) written as `\x1b`-style escapes.
pub fn clean(text: &str) -> String {
    escape_controls(&redact(text))
}

/// Control characters other than newline and tab, escaped.
pub fn escape_controls(text: &str) -> String {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return text.to_owned();
    }
    let mut s = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            s.push_str(&c.escape_default().to_string().replace("\\u{", "\\x{"));
        } else {
            s.push(c);
        }
    }
    s
}

/// Write a line to standard output.
pub fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{}", clean(text));
}

/// Write text to standard output, redacted but otherwise as is (`fmt`).
pub fn out_raw(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = write!(o, "{}", redact(text));
}

/// Write a line to standard error.
pub fn err_line(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{}", clean(text));
}

/// `error: …` then `hint: …`.
pub fn error(message: &str, hint: Option<&str>) {
    err_line(&format!("error: {message}"));
    if let Some(h) = hint {
        err_line(&format!("hint: {h}"));
    }
}

/// `error:` the failure, `caused by:` each of its sources, then `hint:`.
pub fn error_chain(err: &dyn std::error::Error, hint: Option<&str>) {
    for line in chain_lines(None, err, hint) {
        err_line(&line);
    }
}

/// [`error_chain`] for the failure of one of several things (a build):
/// `error: WHAT: the failure`.
pub fn error_chain_of(what: &str, err: &dyn std::error::Error, hint: Option<&str>) {
    for line in chain_lines(Some(what), err, hint) {
        err_line(&line);
    }
}

fn chain_lines(what: Option<&str>, err: &dyn std::error::Error, hint: Option<&str>) -> Vec<String> {
    let mut lines = vec![match what {
        Some(w) => format!("error: {w}: {err}"),
        None => format!("error: {err}"),
    }];
    let mut source = err.source();
    while let Some(s) = source {
        lines.push(format!("caused by: {s}"));
        source = s.source();
    }
    if let Some(h) = hint {
        lines.push(format!("hint: {h}"));
    }
    lines
}

/// Every panic message passes the redactor too.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        err_line(&format!("kiln panicked: {info}"));
        err_line("hint: this is a bug in kiln; please report it with the command line");
    }));
}

fn color() -> bool {
    color_allowed() && std::io::stderr().is_terminal()
}

/// A diagnostic drawn with its source snippet.
pub fn diagnostic_text(d: &Diag, color: bool) -> String {
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut s = String::new();
    if handler.render_report(&mut s, d).is_err() {
        s = format!("{d}\n");
    }
    s
}

/// Warnings, then errors, each with its snippet.
pub fn diagnostics(errors: &[Diag], warnings: &[Diag]) {
    let c = color();
    let mut e = std::io::stderr().lock();
    for d in warnings.iter().chain(errors) {
        let _ = write!(e, "{}", redact(&diagnostic_text(d, c)));
        let _ = writeln!(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("cannot start QEMU")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_error_chain_names_each_cause_once_then_the_hint() {
        let e = Outer(std::io::Error::other("no such file"));
        assert_eq!(
            chain_lines(Some("qemu.x"), &e, Some("install qemu-system-x86")),
            [
                "error: qemu.x: cannot start QEMU",
                "caused by: no such file",
                "hint: install qemu-system-x86",
            ]
        );
    }

    #[test]
    fn control_characters_are_escaped_but_not_newlines() {
        assert_eq!(
            escape_controls("a\x1b[2Jb\tc\nd\x07\r"),
            "a\\x{1b}[2Jb\tc\nd\\x{7}\\r"
        );
        assert_eq!(escape_controls("plain"), "plain");
    }
}
