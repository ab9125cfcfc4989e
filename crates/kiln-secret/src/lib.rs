//! kiln-secret: sensitive values as a type, and the redactor every line of
//! output passes through.
//!
//! A build knows all of its sensitive values (sensitive variables and
//! locals, passwords, proxy credentials, the throwaway private key); the
//! [`Redactor`] replaces each occurrence of any of them with `<sensitive>`,
//! as Packer does, so nothing printed, logged or written to a manifest can
//! carry one.

use std::fmt;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

/// What a redacted value is replaced by (Packer's spelling).
pub const MASK: &str = "<sensitive>";

/// A value that must never be displayed. `Display` and `Debug` print
/// [`MASK`]; the inner value is reached only through [`Sensitive::expose`].
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    pub fn new(value: T) -> Self {
        Sensitive(value)
    }

    /// The secret itself: call only where it is really used.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> serde::Serialize for Sensitive<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
}

/// Replaces every known secret in text. Cheap to clone and share.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
    matcher: Option<Arc<AhoCorasick>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor for the given secrets; empty strings are ignored.
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut r = Redactor::default();
        for s in secrets {
            r.push(s.into());
        }
        r.rebuild();
        r
    }

    /// Add more secrets (e.g. a key generated during the build).
    pub fn with<I, S>(mut self, secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for s in secrets {
            self.push(s.into());
        }
        self.rebuild();
        self
    }

    fn push(&mut self, secret: String) {
        // Multi-line secrets (private keys) are also masked line by line,
        // since output often arrives a line at a time.
        if secret.contains('\n') {
            // Armour lines (`-----BEGIN … KEY-----`) are not secret: every
            // ssh binary contains them.
            for line in secret
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= 8 && !l.starts_with("-----"))
            {
                if !self.secrets.iter().any(|s| s == line) {
                    self.secrets.push(line.to_string());
                }
            }
        }
        if !secret.is_empty() && !self.secrets.contains(&secret) {
            self.secrets.push(secret);
        }
    }

    fn rebuild(&mut self) {
        self.matcher = if self.secrets.is_empty() {
            None
        } else {
            // Leftmost-longest so a secret containing another is masked whole.
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&self.secrets)
                .ok()
                .map(Arc::new)
        };
    }

    /// The secrets this redactor knows (for the leak scan).
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn redact<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        match &self.matcher {
            Some(m) if m.is_match(text) => {
                let replacements = vec![MASK; self.secrets.len()];
                std::borrow::Cow::Owned(m.replace_all(text, &replacements))
            }
            _ => std::borrow::Cow::Borrowed(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_never_displays_its_value() {
        let s = Sensitive::new("hunter2".to_string());
        assert_eq!(format!("{s}"), MASK);
        assert_eq!(format!("{s:?}"), MASK);
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<sensitive>\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn redactor_masks_every_occurrence_longest_first() {
        let r = Redactor::new(["abc", "abcdef"]);
        assert_eq!(
            r.redact("x abcdef y abc z"),
            "x <sensitive> y <sensitive> z"
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn redactor_masks_key_lines_one_at_a_time() {
        let key = "-----BEGIN KEY-----\nAAAABBBBCCCCDDDD\n-----END KEY-----\n";
        let r = Redactor::new([key]);
        assert_eq!(r.redact("got AAAABBBBCCCCDDDD"), "got <sensitive>");
        assert_eq!(r.redact(key), MASK);
        // The armour alone is not a secret.
        assert_eq!(r.redact("-----BEGIN KEY-----"), "-----BEGIN KEY-----");
    }

    #[test]
    fn empty_redactor_borrows() {
        let r = Redactor::new(Vec::<String>::new());
        assert!(matches!(r.redact("x"), std::borrow::Cow::Borrowed(_)));
        assert!(r.is_empty());
    }
}
