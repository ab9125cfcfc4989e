//! Diagnostics: what went wrong (or looks wrong) in a template, where, and
//! what to do about it. They carry their source text so that miette can
//! show a snippet.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use crate::source::{Excerpt, SourceFile};
use crate::span::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A place related to a diagnostic (e.g. the other definition of a duplicate).
#[derive(Clone, Debug)]
pub struct Related {
    pub span: Span,
    pub message: String,
    source: Option<Arc<SourceFile>>,
    excerpt: OnceLock<Option<Excerpt>>,
}

/// One problem found in a template.
#[derive(Clone, Debug)]
pub struct Diag {
    pub severity: Severity,
    /// One line, lowercase, names in backticks.
    pub summary: String,
    /// More explanation, shown under the snippet.
    pub detail: Option<String>,
    pub span: Option<Span>,
    /// Text at the underlined place.
    pub label: Option<String>,
    pub help: Option<String>,
    pub related: Vec<Related>,
    source: Option<Arc<SourceFile>>,
    /// What is shown instead of the whole file when a line is too long.
    excerpt: OnceLock<Option<Excerpt>>,
}

impl Diag {
    pub fn error(summary: impl Into<String>) -> Self {
        Diag {
            severity: Severity::Error,
            summary: summary.into(),
            detail: None,
            span: None,
            label: None,
            help: None,
            related: Vec::new(),
            source: None,
            excerpt: OnceLock::new(),
        }
    }

    pub fn warning(summary: impl Into<String>) -> Self {
        Diag {
            severity: Severity::Warning,
            ..Diag::error(summary)
        }
    }

    /// Point at a byte range of a file.
    pub fn at(mut self, file: &Arc<SourceFile>, range: std::ops::Range<usize>) -> Self {
        self.span = Some(file.span(range));
        self.source = Some(file.clone());
        self
    }

    /// Point at a span outside any file (a flag, an environment variable).
    pub fn at_span(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }

    /// Attach the text of the file a span points into (found by name).
    pub fn with_source_of(mut self, span: &Span, files: &[Arc<SourceFile>]) -> Self {
        if let Some(f) = files.iter().find(|f| f.name == span.file) {
            self.source = Some(f.clone());
        }
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn help_opt(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    pub fn related(
        mut self,
        file: &Arc<SourceFile>,
        range: std::ops::Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        self.related.push(Related {
            span: file.span(range),
            message: message.into(),
            source: Some(file.clone()),
            excerpt: OnceLock::new(),
        });
        self
    }

    /// A related place given as a span (its file found by name).
    pub fn related_span(
        mut self,
        span: &Span,
        files: &[Arc<SourceFile>],
        message: impl Into<String>,
    ) -> Self {
        self.related.push(Related {
            span: span.clone(),
            message: message.into(),
            source: files.iter().find(|f| f.name == span.file).cloned(),
            excerpt: OnceLock::new(),
        });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The file the diagnostic points into, if any.
    pub fn source_file(&self) -> Option<&Arc<SourceFile>> {
        self.source.as_ref()
    }
}

/// The most characters of one line of a message kiln prints: messages
/// echo names and values from the input, which may be huge.
pub const MESSAGE_LINE_MAX: usize = 400;

/// `text` with every line longer than [`MESSAGE_LINE_MAX`] characters cut
/// in its middle, marked with `…`.
pub fn clip_lines(text: &str) -> std::borrow::Cow<'_, str> {
    if text.lines().all(|l| l.len() <= MESSAGE_LINE_MAX) {
        return std::borrow::Cow::Borrowed(text);
    }
    let half = MESSAGE_LINE_MAX / 2;
    let clipped: Vec<String> = text
        .split('\n')
        .map(|line| {
            let count = line.chars().count();
            if count <= MESSAGE_LINE_MAX {
                return line.to_string();
            }
            let head: String = line.chars().take(half).collect();
            let tail: String = line.chars().skip(count - half).collect();
            format!("{head}…{tail}")
        })
        .collect();
    std::borrow::Cow::Owned(clipped.join("\n"))
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summary = clip_lines(&self.summary);
        match &self.span {
            Some(span) => write!(f, "{span}: {summary}"),
            None => write!(f, "{summary}"),
        }
    }
}

impl std::error::Error for Diag {}

fn source_span(bytes: &Range<usize>) -> miette::SourceSpan {
    let len = bytes.end.saturating_sub(bytes.start);
    miette::SourceSpan::new(bytes.start.into(), len)
}

/// The excerpt shown for `span` of `source` when a line is too long.
fn excerpt<'a>(
    cell: &'a OnceLock<Option<Excerpt>>,
    source: Option<&Arc<SourceFile>>,
    span: &Span,
) -> Option<&'a Excerpt> {
    cell.get_or_init(|| source.and_then(|s| s.excerpt(span.bytes.clone())))
        .as_ref()
}

/// What miette reads: the excerpt, else the whole file.
fn shown_source<'a>(
    excerpt: Option<&'a Excerpt>,
    source: Option<&'a Arc<SourceFile>>,
) -> Option<&'a dyn miette::SourceCode> {
    match excerpt {
        Some(e) => Some(e as &dyn miette::SourceCode),
        None => source.map(|s| s.named() as &dyn miette::SourceCode),
    }
}

impl miette::Diagnostic for Diag {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let text = match (&self.detail, &self.help) {
            (None, None) => return None,
            (Some(d), None) => d.clone(),
            (None, Some(h)) => format!("hint: {h}"),
            (Some(d), Some(h)) => format!("{d}\nhint: {h}"),
        };
        Some(Box::new(clip_lines(&text).into_owned()))
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        let shown = self
            .span
            .as_ref()
            .and_then(|span| excerpt(&self.excerpt, self.source.as_ref(), span));
        shown_source(shown, self.source.as_ref())
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.span.as_ref()?;
        self.source.as_ref()?;
        let bytes = excerpt(&self.excerpt, self.source.as_ref(), span)
            .map_or(span.bytes.clone(), |e| e.range.clone());
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_with_span(
                self.label.as_deref().map(|l| clip_lines(l).into_owned()),
                source_span(&bytes),
            ),
        )))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(
            self.related.iter().map(|r| r as &dyn miette::Diagnostic),
        ))
    }
}

impl fmt::Display for Related {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.span, clip_lines(&self.message))
    }
}

impl std::error::Error for Related {}

impl miette::Diagnostic for Related {
    fn severity(&self) -> Option<miette::Severity> {
        Some(miette::Severity::Advice)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        let shown = excerpt(&self.excerpt, self.source.as_ref(), &self.span);
        shown_source(shown, self.source.as_ref())
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.source.as_ref()?;
        let bytes = excerpt(&self.excerpt, self.source.as_ref(), &self.span)
            .map_or(self.span.bytes.clone(), |e| e.range.clone());
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_with_span(Some(self.message.clone()), source_span(&bytes)),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn render(d: &Diag) -> String {
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_width(100)
                .with_links(false);
        let mut s = String::new();
        handler.render_report(&mut s, d).unwrap();
        s
    }

    #[test]
    fn diagnostics_cut_a_one_megabyte_line_around_the_error() {
        let mut text = "a".repeat(1 << 20);
        let at = 600_000;
        text.replace_range(at..at + 3, "@@@");
        let file = Arc::new(SourceFile::new("big.pkr.hcl", PathBuf::from("big"), text));
        let d = Diag::error("syntax error")
            .at(&file, at..at + 1)
            .label("invalid character");
        let out = render(&d);
        assert!(out.len() < 2_000, "{} bytes printed", out.len());
        assert!(out.contains("[big.pkr.hcl:1:600001]"), "{out}");
        let line = out.lines().find(|l| l.contains("@@@")).unwrap();
        assert!(line.contains("…aaa") && line.contains("aaa…"), "{line}");
        // The label still points at the error column.
        let caret_line = out
            .lines()
            .skip_while(|l| !l.contains("@@@"))
            .nth(1)
            .unwrap();
        let col_of = |l: &str, pat: &str| l.find(pat).map(|b| l[..b].chars().count());
        assert_eq!(col_of(line, "@@@"), col_of(caret_line, "┬"), "{out}");
        assert!(out.contains("invalid character"), "{out}");
    }

    #[test]
    fn loading_a_one_megabyte_line_with_a_syntax_error_prints_a_short_snippet() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = format!("locals {{ x = \"{}", "y".repeat(1 << 20));
        text.push_str("\" } = }\n");
        std::fs::write(dir.path().join("one.pkr.hcl"), &text).unwrap();
        let opts = crate::load::LoadOptions {
            path: dir.path().to_path_buf(),
            ..Default::default()
        };
        let errors = crate::load::load(&opts).err().unwrap().errors;
        assert!(!errors.is_empty());
        for d in &errors {
            let out = render(d);
            assert!(out.len() < 2_000, "{} bytes: {}", out.len(), &out[..2_000]);
            assert!(out.contains("one.pkr.hcl:1:"), "{out}");
        }
    }

    #[test]
    fn messages_that_echo_huge_input_are_cut() {
        let name = "n".repeat(100_000);
        let d = Diag::error(format!("unsupported argument `{name}`"))
            .detail(format!("value: {name}"))
            .label(name.clone());
        let out = render(&d);
        assert!(out.len() < 3_000, "{} bytes", out.len());
        // miette wraps at 100 columns; the cut line still begins as written.
        assert!(out.contains("unsupported argument"), "{out}");
        assert!(out.contains("n…"), "{out}");
        assert!(d.to_string().len() < MESSAGE_LINE_MAX + 50);
        assert_eq!(clip_lines("short\nlines"), "short\nlines");
        let cut = clip_lines(&"é".repeat(1000)).into_owned();
        assert_eq!(cut.chars().count(), MESSAGE_LINE_MAX + 1);
    }

    #[test]
    fn diagnostics_drop_long_context_lines_and_keep_short_files_whole() {
        let text = format!("{}\nx = = 1\n{}\n", "#".repeat(5000), "#".repeat(5000));
        let file = Arc::new(SourceFile::new("t.pkr.hcl", PathBuf::from("t"), text));
        let d = Diag::error("syntax error").at(&file, 5005..5006);
        let out = render(&d);
        assert!(out.contains("x = = 1"), "{out}");
        assert!(!out.contains("#####"), "{out}");
        assert!(out.contains("[t.pkr.hcl:2:5]"), "{out}");

        let short = Arc::new(SourceFile::new(
            "s.pkr.hcl",
            PathBuf::from("s"),
            "a = 1\nb = = 2\nc = 3\n",
        ));
        let d = Diag::error("syntax error").at(&short, 10..11);
        let out = render(&d);
        assert!(out.contains("a = 1") && out.contains("c = 3"), "{out}");
    }
}
