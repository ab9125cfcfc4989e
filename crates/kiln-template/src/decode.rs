//! Typed decoding of evaluated blocks.
//!
//! A config struct pulls its fields out of a [`Body`] by name through a
//! [`Decoder`]; the decoder converts values the way Packer's HCL decoding
//! does (cty conversion: `"1024"` is a number, `10` is a string), records
//! every error with the attribute's place, and at the end reports the
//! attributes and blocks nobody asked for, with a "did you mean".

use std::collections::BTreeMap;
use std::time::Duration;

use crate::body::{Block, Body};
use crate::schema::{Schema, Support};
use crate::span::Span;
use crate::value::Value;

/// One problem found while decoding, at a place in a template.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{span}: {message}")]
pub struct DecodeError {
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
}

/// Conversion of an evaluated value to a Rust type, following cty's rules.
pub trait FromValue: Sized {
    /// What the field expects, for error messages (`a string`, `a list of strings`).
    fn expected() -> String;
    fn from_value(value: &Value) -> Result<Self, String>;
}

fn mismatch<T: FromValue>(value: &Value) -> String {
    format!("expected {}, found a {}", T::expected(), value.type_name())
}

impl FromValue for String {
    fn expected() -> String {
        "a string".into()
    }
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(mismatch::<Self>(other)),
        }
    }
}

impl FromValue for bool {
    fn expected() -> String {
        "a bool".into()
    }
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Bool(b) => Ok(*b),
            Value::String(s) if s == "true" => Ok(true),
            Value::String(s) if s == "false" => Ok(false),
            other => Err(mismatch::<Self>(other)),
        }
    }
}

impl FromValue for f64 {
    fn expected() -> String {
        "a number".into()
    }
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Number(n) => Ok(n.0),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("expected a number, found the string {s:?}")),
            other => Err(mismatch::<Self>(other)),
        }
    }
}

macro_rules! integer_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn expected() -> String {
                "a whole number".into()
            }
            fn from_value(value: &Value) -> Result<Self, String> {
                let n = f64::from_value(value)?;
                // Through i128 (exact for whole floats below 2^127): `MAX as
                // f64` rounds up for 64-bit types, so comparing floats let
                // 2^63 through as i64::MAX.
                let whole = (n.fract() == 0.0 && n.is_finite()).then_some(n as i128);
                whole
                    .and_then(|w| <$t>::try_from(w).ok())
                    .ok_or_else(|| {
                        format!(
                            "expected a whole number from {} to {}, found {n}",
                            <$t>::MIN,
                            <$t>::MAX
                        )
                    })
            }
        }
    )*};
}
integer_from_value!(i64, u64, u32, u16, i32);

impl<T: FromValue> FromValue for Vec<T> {
    fn expected() -> String {
        format!("a list of {}", T::expected().trim_start_matches("a "))
    }
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::List(items) | Value::Tuple(items) | Value::Set(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| T::from_value(v).map_err(|e| format!("element {i}: {e}")))
                .collect(),
            other => Err(mismatch::<Self>(other)),
        }
    }
}

impl<T: FromValue> FromValue for BTreeMap<String, T> {
    fn expected() -> String {
        format!("a map of {}", T::expected().trim_start_matches("a "))
    }
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Map(m) | Value::Object(m) => m
                .iter()
                .map(|(k, v)| {
                    T::from_value(v)
                        .map(|v| (k.clone(), v))
                        .map_err(|e| format!("key {k:?}: {e}"))
                })
                .collect(),
            other => Err(mismatch::<Self>(other)),
        }
    }
}

impl FromValue for Value {
    fn expected() -> String {
        "any value".into()
    }
    fn from_value(value: &Value) -> Result<Self, String> {
        Ok(value.clone())
    }
}

/// A Go `time.Duration` string such as `5m`, `1h30m`, `300ms` or `0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoDuration(pub Duration);

impl FromValue for GoDuration {
    fn expected() -> String {
        "a duration such as \"5m\" or \"30s\"".into()
    }
    fn from_value(value: &Value) -> Result<Self, String> {
        let text = String::from_value(value)?;
        parse_go_duration(&text).map(GoDuration)
    }
}

/// Parse Go's duration syntax: a sequence of decimal numbers with units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`; `0` alone is allowed.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?} (expected e.g. \"5m\", \"1h30m\", \"300ms\")");
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(bad());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Something worth telling about a valid block (a field kiln ignores).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeWarning {
    pub span: Span,
    pub message: String,
}

/// Whether a value is what Go would decode as the zero value (Packer
/// cannot tell such a setting from an absent one).
pub fn is_zero_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.0 == 0.0,
        Value::String(s) => s.is_empty(),
        Value::List(v) | Value::Set(v) | Value::Tuple(v) => v.is_empty(),
        Value::Map(m) | Value::Object(m) => m.is_empty(),
    }
}

/// Pulls typed fields out of a body and remembers which names were asked
/// for, so that the rest can be reported as unknown.
pub struct Decoder<'a> {
    body: &'a Body,
    /// Human name of the block, e.g. `source "qemu" "cloudimg"`.
    what: String,
    /// The plugin's table: defaults, "did you mean" candidates, and the
    /// fields kiln refuses or ignores.
    schema: Option<&'static Schema>,
    /// [`Decoder::check_support`] has run.
    support_checked: bool,
    known: Vec<&'static str>,
    errors: Vec<DecodeError>,
}

impl<'a> Decoder<'a> {
    pub fn new(body: &'a Body, what: impl Into<String>) -> Self {
        Decoder {
            body,
            what: what.into(),
            schema: None,
            support_checked: false,
            known: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// A decoder for a plugin block described by `schema`. Every name it is
    /// asked for must be in the schema (checked in debug builds, so that the
    /// registry tests catch a field missing from the table).
    pub fn with_schema(body: &'a Body, what: impl Into<String>, schema: &'static Schema) -> Self {
        let mut d = Decoder::new(body, what);
        d.schema = Some(schema);
        d
    }

    /// Refuse the fields of the schema that kiln does not support (an
    /// error each) and return a warning for each ignored one that is set.
    /// Both count as known. [`Decoder::finish`] runs it when the caller
    /// has not, dropping the warnings.
    pub fn check_support(&mut self) -> Vec<DecodeWarning> {
        let mut warnings = Vec::new();
        let Some(schema) = self.schema else {
            return warnings;
        };
        self.support_checked = true;
        for field in schema.fields().filter(|f| f.support != Support::Supported) {
            self.known.push(field.name);
            let Some(attr) = self.body.attrs.get(field.name) else {
                continue;
            };
            if is_zero_value(&attr.value) {
                continue;
            }
            match field.support {
                Support::Ignored => warnings.push(DecodeWarning {
                    span: attr.span.clone(),
                    message: format!("`{}` has no effect in kiln: {}", field.name, field.doc),
                }),
                Support::Unsupported => self.error(
                    field.name,
                    format!(
                        "not supported by kiln ({})",
                        field.doc.trim_end_matches('.')
                    ),
                    None,
                ),
                Support::Supported => {}
            }
        }
        warnings
    }

    /// The schema's literal default of `name`, converted to `T`; `T`'s own
    /// default when the table has none (tests check every literal parses).
    pub fn default_of<T: FromValue + Default>(&self, name: &'static str) -> T {
        debug_assert!(
            self.schema
                .and_then(|s| s.field(name))
                .is_some_and(|f| f.default_value().is_some_and(|v| v.is_ok())),
            "{}: `{name}` has no literal default in its schema",
            self.what
        );
        self.schema
            .and_then(|s| s.field(name))
            .and_then(|f| f.default_value())
            .and_then(Result::ok)
            .and_then(|v| T::from_value(&v).ok())
            .unwrap_or_default()
    }

    /// A field with the default its schema gives.
    pub fn or_default<T: FromValue + Default>(&mut self, name: &'static str) -> T {
        match self.opt(name) {
            Some(v) => v,
            None => self.default_of(name),
        }
    }

    /// A string field where empty means the schema's default (Go's zero
    /// value cannot be told from an absent one).
    pub fn non_empty_or_default(&mut self, name: &'static str) -> String {
        match self.opt::<String>(name) {
            Some(v) if !v.is_empty() => v,
            _ => self.default_of(name),
        }
    }

    /// The names this decoder has been asked about so far (the schema).
    pub fn known_names(&self) -> &[&'static str] {
        &self.known
    }

    /// Where an attribute is written, or the block itself when it is not.
    pub fn span_of(&self, name: &str) -> Span {
        self.body
            .attrs
            .get(name)
            .map(|a| a.span.clone())
            .unwrap_or_else(|| self.body.span.clone())
    }

    /// Whether the attribute is written (and not null).
    pub fn has(&self, name: &str) -> bool {
        self.body
            .attrs
            .get(name)
            .is_some_and(|a| a.value != Value::Null)
    }

    /// Whether the attribute's value derives from a sensitive variable.
    pub fn is_sensitive(&self, name: &str) -> bool {
        self.body.attrs.get(name).is_some_and(|a| a.sensitive)
    }

    /// An optional field; a null value counts as absent.
    pub fn opt<T: FromValue>(&mut self, name: &'static str) -> Option<T> {
        self.note_known(name);
        let attr = self.body.attrs.get(name)?;
        if attr.value == Value::Null {
            return None;
        }
        match T::from_value(&attr.value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.errors.push(DecodeError {
                    span: attr.span.clone(),
                    message: format!("{} in {}: `{name}`: {message}", "invalid value", self.what),
                    help: None,
                });
                None
            }
        }
    }

    /// A field with a default.
    pub fn or<T: FromValue>(&mut self, name: &'static str, default: T) -> T {
        self.opt(name).unwrap_or(default)
    }

    /// The first of several spellings that is set (e.g. `ssh_timeout` and
    /// its alias `ssh_wait_timeout`). All names count as known.
    pub fn opt_alias<T: FromValue>(&mut self, names: &[&'static str]) -> Option<T> {
        let mut found = None;
        for name in names {
            let v = self.opt::<T>(name);
            if found.is_none() {
                found = v;
            }
        }
        found
    }

    /// A field that must be set.
    pub fn required<T: FromValue>(&mut self, name: &'static str) -> Option<T> {
        debug_assert!(
            self.schema
                .is_none_or(|s| s.field(name).is_some_and(|f| f.required)),
            "{}: `{name}` is required but its schema does not say so",
            self.what
        );
        let present = self.has(name);
        let value = self.opt(name);
        if !present {
            self.errors.push(DecodeError {
                span: self.body.span.clone(),
                message: format!("{}: missing required attribute `{name}`", self.what),
                help: None,
            });
        }
        value
    }

    /// Nested blocks of a type (e.g. `scan` inside a post-processor).
    pub fn blocks(&mut self, kind: &'static str) -> Vec<&'a Block> {
        self.note_known(kind);
        self.body.blocks.iter().filter(|b| b.kind == kind).collect()
    }

    fn note_known(&mut self, name: &'static str) {
        debug_assert!(
            self.schema.is_none_or(|s| s.field(name).is_some()),
            "{}: `{name}` is decoded but not in the schema",
            self.what
        );
        self.known.push(name);
    }

    /// Record an error about a field the caller checked itself.
    pub fn error(&mut self, name: &str, message: impl Into<String>, help: Option<String>) {
        self.errors.push(DecodeError {
            span: self.span_of(name),
            message: format!("{}: `{name}`: {}", self.what, message.into()),
            help,
        });
    }

    /// Finish: report unknown attributes and blocks, return every error.
    pub fn finish(mut self) -> Result<(), Vec<DecodeError>> {
        if !self.support_checked {
            let _ = self.check_support();
        }
        // Suggestions come from the schema when there is one: every name
        // the plugin has, not only those this decode asked for.
        let candidates = match self.schema {
            Some(schema) => schema.names(),
            None => self.known.clone(),
        };
        for (name, attr) in &self.body.attrs {
            if !self.known.contains(&name.as_str()) {
                self.errors.push(DecodeError {
                    span: attr.span.clone(),
                    message: format!("unknown attribute `{name}` in {}", self.what),
                    help: did_you_mean(name, &candidates).map(|s| format!("did you mean `{s}`?")),
                });
            }
        }
        for block in &self.body.blocks {
            if !self.known.contains(&block.kind.as_str()) {
                self.errors.push(DecodeError {
                    span: block.span.clone(),
                    message: format!("unknown block `{}` in {}", block.kind, self.what),
                    help: did_you_mean(&block.kind, &candidates)
                        .map(|s| format!("did you mean `{s}`?")),
                });
            }
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

/// The closest candidate to `name`, if it is close enough to be a typo.
pub fn did_you_mean<'c>(name: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Attribute;
    use crate::value::Number;

    fn body(attrs: &[(&str, Value)]) -> Body {
        let mut b = Body::empty(Span::synthetic("t.pkr.hcl"));
        for (i, (name, value)) in attrs.iter().enumerate() {
            b.attrs.insert(
                name.to_string(),
                Attribute {
                    name: name.to_string(),
                    value: value.clone(),
                    span: Span {
                        file: "t.pkr.hcl".into(),
                        line: i as u32 + 1,
                        col: 3,
                        bytes: 0..0,
                    },
                    sensitive: false,
                },
            );
        }
        b
    }

    #[test]
    fn converts_like_cty() {
        let b = body(&[
            ("memory", Value::String("2048".into())),
            ("name", Value::Number(Number(10.0))),
            ("headless", Value::String("true".into())),
        ]);
        let mut d = Decoder::new(&b, "source \"qemu\" \"x\"");
        assert_eq!(d.opt::<u64>("memory"), Some(2048));
        assert_eq!(d.opt::<String>("name"), Some("10".into()));
        assert_eq!(d.opt::<bool>("headless"), Some(true));
        assert!(d.finish().is_ok());
    }

    #[test]
    fn unknown_attribute_suggests_the_closest_name() {
        let b = body(&[("memroy", Value::Number(Number(1.0)))]);
        let mut d = Decoder::new(&b, "source \"qemu\" \"x\"");
        let _ = d.opt::<u64>("memory");
        let _ = d.opt::<u64>("cpus");
        let errors = d.finish().unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].span.line, 1);
        assert_eq!(errors[0].help.as_deref(), Some("did you mean `memory`?"));
    }

    #[test]
    fn integers_beyond_their_type_are_errors_not_saturated() {
        let b = body(&[
            ("a", Value::Number(Number(9_223_372_036_854_775_808.0))),
            ("b", Value::Number(Number(18_446_744_073_709_551_616.0))),
            ("c", Value::Number(Number(4_294_967_296.0))),
            ("d", Value::Number(Number(-1.0))),
            ("e", Value::Number(Number(4_294_967_295.0))),
        ]);
        let mut d = Decoder::new(&b, "source \"qemu\" \"x\"");
        assert_eq!(d.opt::<i64>("a"), None);
        assert_eq!(d.opt::<u64>("b"), None);
        assert_eq!(d.opt::<u32>("c"), None);
        assert_eq!(d.opt::<u32>("d"), None);
        assert_eq!(d.opt::<u32>("e"), Some(u32::MAX));
        let errors = d.finish().unwrap_err();
        assert_eq!(errors.len(), 4);
        assert!(
            errors[2].message.contains("`c`") && errors[2].message.contains("from 0 to 4294967295"),
            "{}",
            errors[2].message
        );
    }

    #[test]
    fn type_mismatch_is_reported_at_the_attribute() {
        let b = body(&[("cpus", Value::String("two".into()))]);
        let mut d = Decoder::new(&b, "source \"qemu\" \"x\"");
        assert_eq!(d.opt::<u64>("cpus"), None);
        let errors = d.finish().unwrap_err();
        assert!(
            errors[0].message.contains("`cpus`"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5x").is_err());
        assert!(parse_go_duration("").is_err());
    }
}
