//! Diagnostics: what went wrong (or looks wrong) in a template, where, and
//! what to do about it. They carry their source text so that miette can
//! show a snippet.

use std::fmt;
use std::sync::Arc;

use crate::source::SourceFile;
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

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.span {
            Some(span) => write!(f, "{span}: {}", self.summary),
            None => write!(f, "{}", self.summary),
        }
    }
}

impl std::error::Error for Diag {}

fn source_span(span: &Span) -> miette::SourceSpan {
    let len = span.bytes.end.saturating_sub(span.bytes.start);
    miette::SourceSpan::new(span.bytes.start.into(), len)
}

impl miette::Diagnostic for Diag {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match (&self.detail, &self.help) {
            (None, None) => None,
            (Some(d), None) => Some(Box::new(d)),
            (None, Some(h)) => Some(Box::new(format!("hint: {h}"))),
            (Some(d), Some(h)) => Some(Box::new(format!("{d}\nhint: {h}"))),
        }
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source
            .as_ref()
            .map(|s| s.named() as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.span.as_ref()?;
        self.source.as_ref()?;
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_with_span(self.label.clone(), source_span(span)),
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
        write!(f, "{}: {}", self.span, self.message)
    }
}

impl std::error::Error for Related {}

impl miette::Diagnostic for Related {
    fn severity(&self) -> Option<miette::Severity> {
        Some(miette::Severity::Advice)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source
            .as_ref()
            .map(|s| s.named() as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.source.as_ref()?;
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_with_span(Some(self.message.clone()), source_span(&self.span)),
        )))
    }
}
