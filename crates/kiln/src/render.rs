//! Everything kiln writes to the terminal goes through here: plain text,
//! `error:`/`hint:` messages, and template diagnostics drawn by miette.

use std::io::{IsTerminal, Write};

use kiln_template::diag::Diag;

/// Write a line to standard output.
pub fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{text}");
}

/// Write text to standard output as is.
pub fn out_raw(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = write!(o, "{text}");
}

/// Write a line to standard error.
pub fn err_line(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{text}");
}

/// `error: …` then `hint: …`.
pub fn error(message: &str, hint: Option<&str>) {
    err_line(&format!("error: {message}"));
    if let Some(h) = hint {
        err_line(&format!("hint: {h}"));
    }
}

fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
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
        let _ = write!(e, "{}", diagnostic_text(d, c));
        let _ = writeln!(e);
    }
}
