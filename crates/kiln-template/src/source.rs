//! Template files held in memory, with a line index so byte offsets turn
//! into `file:line:col` spans.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use crate::span::Span;

/// One file that was read: its display name (relative to the template
/// directory where possible), its path on disk and its text.
#[derive(Debug)]
pub struct SourceFile {
    pub name: Arc<str>,
    pub path: PathBuf,
    pub text: Arc<str>,
    line_starts: Vec<usize>,
    named: miette::NamedSource<Arc<str>>,
}

impl SourceFile {
    pub fn new(name: impl Into<Arc<str>>, path: PathBuf, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let name: Arc<str> = name.into();
        let named = miette::NamedSource::new(&*name, text.clone());
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            name,
            path,
            text,
            line_starts,
            named,
        }
    }

    /// The text as miette wants it, named after the file.
    pub fn named(&self) -> &miette::NamedSource<Arc<str>> {
        &self.named
    }

    /// A span for a byte range of this file (clamped to the text).
    pub fn span(&self, range: Range<usize>) -> Span {
        let len = self.text.len();
        let mut start = range.start.min(len);
        while start > 0 && !self.text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = range.end.clamp(start, len);
        while end < len && !self.text.is_char_boundary(end) {
            end += 1;
        }
        let line_idx = match self.line_starts.binary_search(&start) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let line_start = self.line_starts.get(line_idx).copied().unwrap_or(0);
        let col = self
            .text
            .get(line_start..start)
            .map(|s| s.chars().count())
            .unwrap_or(0);
        Span {
            file: self.name.clone(),
            line: u32::try_from(line_idx + 1).unwrap_or(u32::MAX),
            col: u32::try_from(col + 1).unwrap_or(u32::MAX),
            bytes: start..end,
        }
    }

    /// Byte offset of a 1-based line and column (column in characters).
    pub fn offset_of(&self, line: usize, col: usize) -> usize {
        let Some(start) = self.line_starts.get(line.saturating_sub(1)).copied() else {
            return self.text.len();
        };
        let rest = self.text.get(start..).unwrap_or("");
        let within: usize = rest
            .chars()
            .take(col.saturating_sub(1))
            .take_while(|c| *c != '\n')
            .map(char::len_utf8)
            .sum();
        start + within
    }
}

/// The longest source line (in bytes) a diagnostic prints whole; a longer
/// line is cut to about this much around the place it points at, with `…`
/// where it was cut (a 1 MB one-line template prints no 1 MB line).
pub const SHOWN_LINE_MAX: usize = 200;

/// What a diagnostic shows of a file when a line near its span is too long
/// to print: the span's own line alone (no context lines), cut around the
/// span. Byte offsets stay those of the file: the leading `…` takes the
/// three bytes before the window's start.
#[derive(Clone, Debug)]
pub struct Excerpt {
    file: Arc<SourceFile>,
    /// `…` + the window + `…` (the marks only where something was cut).
    text: String,
    /// The file offset of `text`'s first byte.
    base: usize,
    /// 0-based line of the window.
    line: usize,
    /// The part of the span inside the window (file offsets).
    pub range: Range<usize>,
}

const ELLIPSIS: &str = "…";

impl SourceFile {
    fn line_range(&self, idx: usize) -> Option<Range<usize>> {
        let start = *self.line_starts.get(idx)?;
        let end = self
            .line_starts
            .get(idx + 1)
            .map_or(self.text.len(), |next| next.saturating_sub(1));
        Some(start..end)
    }

    fn floor_char(&self, mut i: usize) -> usize {
        while i > 0 && !self.text.is_char_boundary(i) {
            i -= 1;
        }
        i
    }

    fn ceil_char(&self, mut i: usize) -> usize {
        while i < self.text.len() && !self.text.is_char_boundary(i) {
            i += 1;
        }
        i
    }

    /// The excerpt to show for `range` when its line or a neighbouring
    /// (context) line is longer than [`SHOWN_LINE_MAX`]; `None` when the
    /// file can be shown as it is.
    pub fn excerpt(self: &Arc<Self>, range: Range<usize>) -> Option<Excerpt> {
        let start = self.floor_char(range.start.min(self.text.len()));
        let idx = match self.line_starts.binary_search(&start) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let too_long = |i: usize| {
            self.line_range(i)
                .is_some_and(|r| r.end - r.start > SHOWN_LINE_MAX)
        };
        let neighbours = idx.checked_sub(1).is_some_and(too_long) || too_long(idx + 1);
        if !too_long(idx) && !neighbours {
            return None;
        }
        let line = self.line_range(idx)?;
        let end = range.end.clamp(start, line.end);
        let (mut a, mut b) = (line.start, line.end);
        if b - a > SHOWN_LINE_MAX {
            a = self.floor_char(start.saturating_sub(SHOWN_LINE_MAX / 2).max(line.start));
            b = self.ceil_char((a + SHOWN_LINE_MAX).min(line.end));
            if b == line.end {
                a = self.floor_char(b.saturating_sub(SHOWN_LINE_MAX).max(line.start));
            }
            // The leading mark takes the bytes just before the window.
            if a - line.start < ELLIPSIS.len() {
                a = line.start;
            }
        }
        let mut text = String::with_capacity(b - a + 2 * ELLIPSIS.len());
        let base = if a > line.start {
            text.push_str(ELLIPSIS);
            a - ELLIPSIS.len()
        } else {
            a
        };
        text.push_str(self.text.get(a..b).unwrap_or(""));
        if b < line.end {
            text.push_str(ELLIPSIS);
        }
        Some(Excerpt {
            file: self.clone(),
            text,
            base,
            line: idx,
            range: start..end.min(b).max(start),
        })
    }
}

impl miette::SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        _before: usize,
        _after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let col = self.file.span(span.offset()..span.offset()).col as usize;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.file.name.to_string(),
            self.text.as_bytes(),
            miette::SourceSpan::new(self.base.into(), self.text.len()),
            self.line,
            col.saturating_sub(1),
            1,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_count_lines_and_characters() {
        let f = SourceFile::new("a.pkr.hcl", PathBuf::from("a"), "ab\ncdé f\n");
        let s = f.span(8..9);
        assert_eq!((s.line, s.col), (2, 5));
        assert_eq!(f.offset_of(2, 5), 8);
        let s = f.span(0..1);
        assert_eq!((s.line, s.col), (1, 1));
    }
}
