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
