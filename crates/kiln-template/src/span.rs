//! Where something was written: a file and a position in it.

use std::fmt;
use std::sync::Arc;

/// A place in a template file. `file` is the path as shown to users
/// (relative to the template directory where possible).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Span {
    pub file: Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
    /// Byte range in the file, for source snippets.
    #[serde(skip)]
    pub bytes: std::ops::Range<usize>,
}

impl Span {
    /// A span for values that come from outside any file (flags, environment).
    pub fn synthetic(origin: &str) -> Self {
        Span {
            file: Arc::from(origin),
            line: 0,
            col: 0,
            bytes: 0..0,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.col)
        }
    }
}
