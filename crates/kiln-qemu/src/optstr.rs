//! QEMU option strings (`file=a,,b.img,if=pflash,format=raw`): the one
//! parser and renderer kiln uses for the values of `-drive`, `-netdev`,
//! `-machine`, `-device`, `-vnc`, `-qmp` and their kin.
//!
//! QEMU's rules (`get_opt_value` in `util/cutils.c`, `opts_do_parse` in
//! `util/qemu-option.c`):
//! - options are separated by `,`; `,,` is a literal comma, read greedily
//!   from the left;
//! - an option is `key=value` (split at the first `=`), or a bare word; a
//!   bare first word is the switch's "implied" option (the machine type of
//!   `-machine q35`, the driver of `-device virtio-net`), a later bare word
//!   a flag (`readonly`).
//!
//! Parsing keeps every part, empty ones included, so rendering a parsed
//! string gives back exactly the text it came from.

use std::fmt;

/// One option: `key=value`, or a bare `value` without a key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Opt {
    pub key: Option<String>,
    pub value: String,
}

impl Opt {
    /// The option as written, unescaped (`file=a,b.img`).
    pub fn text(&self) -> String {
        match &self.key {
            Some(key) => format!("{key}={}", self.value),
            None => self.value.clone(),
        }
    }
}

/// A parsed option string, in written order.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(into = "String")]
pub struct OptionString {
    opts: Vec<Opt>,
}

impl From<OptionString> for String {
    fn from(o: OptionString) -> String {
        o.to_string()
    }
}

impl OptionString {
    pub fn new() -> OptionString {
        OptionString::default()
    }

    /// Parses `text`; the empty string has no options.
    pub fn parse(text: &str) -> OptionString {
        if text.is_empty() {
            return OptionString::new();
        }
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != ',' {
                current.push(c);
            } else if chars.next_if_eq(&',').is_some() {
                current.push(',');
            } else {
                parts.push(std::mem::take(&mut current));
            }
        }
        parts.push(current);
        let opts = parts
            .into_iter()
            .map(|part| match part.split_once('=') {
                Some((key, value)) => Opt {
                    key: Some(key.to_string()),
                    value: value.to_string(),
                },
                None => Opt {
                    key: None,
                    value: part,
                },
            })
            .collect();
        OptionString { opts }
    }

    /// Builder: appends a bare word (the implied option when first).
    pub fn bare(mut self, value: impl Into<String>) -> OptionString {
        self.opts.push(Opt {
            key: None,
            value: value.into(),
        });
        self
    }

    /// Builder: appends `key=value`.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> OptionString {
        self.push(key, value);
        self
    }

    /// Builder: appends every option of `other`.
    pub fn append(mut self, other: OptionString) -> OptionString {
        self.opts.extend(other.opts);
        self
    }

    /// Appends `key=value`.
    pub fn push(&mut self, key: &str, value: impl Into<String>) {
        self.opts.push(Opt {
            key: Some(key.to_string()),
            value: value.into(),
        });
    }

    pub fn iter(&self) -> impl Iterator<Item = &Opt> {
        self.opts.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.opts.is_empty()
    }

    /// The value of `key`; the last one wins, as in QEMU.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|o| o.key.as_deref() == Some(key))
            .map(|o| o.value.as_str())
    }

    /// Every value of `key`, in order (`hostfwd=` may repeat).
    pub fn values_mut<'a>(&'a mut self, key: &'a str) -> impl Iterator<Item = &'a mut String> {
        self.opts
            .iter_mut()
            .filter(move |o| o.key.as_deref() == Some(key))
            .map(|o| &mut o.value)
    }

    /// The implied option: a bare first word (`q35` of `q35,accel=kvm`).
    pub fn implied(&self) -> Option<&str> {
        self.opts
            .first()
            .filter(|o| o.key.is_none())
            .map(|o| o.value.as_str())
    }

    /// `key` or, when absent, the implied option (`-machine type=q35` and
    /// `-machine q35` say the same).
    pub fn get_or_implied(&self, key: &str) -> Option<&str> {
        self.get(key).or_else(|| self.implied())
    }

    /// Replaces the implied option, or inserts one in front.
    pub fn set_implied(&mut self, value: impl Into<String>) {
        let value = value.into();
        match self.opts.first_mut().filter(|o| o.key.is_none()) {
            Some(first) => first.value = value,
            None => self.opts.insert(0, Opt { key: None, value }),
        }
    }

    /// Whether a boolean option is on: `key=on|yes|true`, or `key` bare.
    pub fn is_on(&self, key: &str) -> bool {
        self.opts.iter().any(|o| match &o.key {
            Some(k) => k == key && matches!(o.value.as_str(), "on" | "yes" | "true"),
            None => o.value == key,
        })
    }

    /// Sets `key` in place of its last occurrence (dropping earlier ones),
    /// or appends it.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        let last = self
            .opts
            .iter()
            .rposition(|o| o.key.as_deref() == Some(key));
        match last {
            Some(i) => {
                self.opts[i].value = value;
                let mut index = 0;
                self.opts.retain(|o| {
                    let keep = index >= i || o.key.as_deref() != Some(key);
                    index += 1;
                    keep
                });
            }
            None => self.push(key, value),
        }
    }

    /// Removes every `key=…`.
    pub fn remove(&mut self, key: &str) {
        self.opts.retain(|o| o.key.as_deref() != Some(key));
    }
}

/// `text` with every comma doubled, as QEMU reads it inside an option.
pub fn escape(text: &str) -> String {
    text.replace(',', ",,")
}

impl fmt::Display for OptionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, o) in self.opts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if let Some(key) = &o.key {
                write!(f, "{}=", escape(key))?;
            }
            f.write_str(&escape(&o.value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(text: &str) -> Vec<(Option<String>, String)> {
        OptionString::parse(text)
            .iter()
            .map(|o| (o.key.clone(), o.value.clone()))
            .collect()
    }

    #[test]
    fn options_split_with_escaped_commas_and_implied_first() {
        assert_eq!(
            pairs("q35,accel=kvm:tcg,file=a,,b.img"),
            vec![
                (None, "q35".to_string()),
                (Some("accel".into()), "kvm:tcg".into()),
                (Some("file".into()), "a,b.img".into()),
            ]
        );
        assert!(pairs("").is_empty());
        let o = OptionString::parse("q35,accel=kvm:tcg,file=a,,b.img");
        assert_eq!(o.implied(), Some("q35"));
        assert_eq!(o.get_or_implied("type"), Some("q35"));
        assert_eq!(o.get("file"), Some("a,b.img"));
        assert_eq!(o.to_string(), "q35,accel=kvm:tcg,file=a,,b.img");
    }

    #[test]
    fn commas_in_values_are_doubled_when_rendered() {
        let o = OptionString::new()
            .with("file", "out/a,b.img")
            .with("if", "pflash")
            .bare("readonly");
        assert_eq!(o.to_string(), "file=out/a,,b.img,if=pflash,readonly");
        assert_eq!(OptionString::parse(&o.to_string()), o);
        assert!(o.is_on("readonly"));
        assert!(OptionString::parse("readonly=on").is_on("readonly"));
        assert!(!OptionString::parse("readonly=off").is_on("readonly"));
        // Greedy from the left: `a,,,b` is `a,` then `b`.
        assert_eq!(
            pairs("file=a,,,b"),
            vec![(Some("file".into()), "a,".into()), (None, "b".into())]
        );
        // Empty parts are kept, so the text comes back as it was.
        assert_eq!(OptionString::parse("a,,b,").to_string(), "a,,b,");
    }

    #[test]
    fn set_replaces_in_place_and_remove_drops_every_occurrence() {
        let mut o = OptionString::parse("file=x,if=virtio,format=raw,format=qcow2");
        o.set("file", "{kiln:disk0}");
        o.remove("format");
        o.push("format", "qcow2");
        assert_eq!(o.to_string(), "file={kiln:disk0},if=virtio,format=qcow2");
        let mut o = OptionString::parse("a=1,b=2,a=3");
        o.set("a", "4");
        assert_eq!(o.to_string(), "b=2,a=4");
        let mut o = OptionString::parse("accel=tcg");
        o.set_implied("pc");
        assert_eq!(o.to_string(), "pc,accel=tcg");
        o.set_implied("q35");
        assert_eq!(o.to_string(), "q35,accel=tcg");
    }

    proptest! {
        /// Any text comes back unchanged from parse then render.
        #[test]
        fn parse_then_render_is_the_identity(text in "[a-z=,:/. ]{0,24}") {
            prop_assert_eq!(OptionString::parse(&text).to_string(), text);
        }

        /// Options whose values hold commas survive render then parse
        /// (a value after the first may not start with a comma: QEMU reads
        /// `a,,,b` greedily as `a,` and `b`).
        #[test]
        fn render_then_parse_is_the_identity(
            opts in proptest::collection::vec(("[a-z]{1,5}", "[a-z/.][a-z,=/. ]{0,8}"), 1..5)
        ) {
            let mut o = OptionString::new();
            for (k, v) in &opts {
                o.push(k, v.clone());
            }
            prop_assert_eq!(OptionString::parse(&o.to_string()), o);
        }
    }
}
