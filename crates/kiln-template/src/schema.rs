//! Plugin schemas as data: one table per source, provisioner and
//! post-processor type listing every attribute Packer accepts, with its
//! type, default, documentation, how far kiln supports it, whether it is
//! sensitive or required, and which field it is an alias of.
//!
//! The table is the single source: a [`Decoder`](crate::decode::Decoder)
//! built with [`Decoder::with_schema`](crate::decode::Decoder::with_schema)
//! takes its defaults and its "did you mean" candidates from it and
//! refuses the fields kiln does not support; `kiln` generates the reference
//! docs from it; and tests in kiln-build loop over every table (every field
//! documented and decoded, every default parses and is what decoding an
//! empty block gives).

use crate::value::{Number, Value};

/// How kiln treats an attribute Packer accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// Decoded and acted upon.
    Supported,
    /// Accepted for compatibility; it has no effect in kiln.
    Ignored,
    /// Accepted by Packer but not by kiln: setting it is an error naming it.
    Unsupported,
}

/// The default of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum FieldDefault {
    /// Unset: the field is off or empty unless written.
    Unset,
    /// A value in the field's type, written as in [`Field::parse_literal`]:
    /// the text of a `string`/`duration`, a number, `true`/`false`, or JSON
    /// for lists and maps. Decoding an empty block gives exactly this.
    Literal(&'static str),
    /// Computed from other fields or the build (described, not parsed).
    Computed(&'static str),
}

/// One attribute of a plugin's schema.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Field {
    pub name: &'static str,
    /// Packer's type spelling: `string`, `bool`, `int`, `duration`,
    /// `[]string`, `[]int`, `[][]string`, `map[string]string`, `block`.
    pub ty: &'static str,
    pub default: FieldDefault,
    /// One line of documentation (for an unsupported or ignored field: what
    /// it does in Packer, which is why kiln refuses or ignores it).
    pub doc: &'static str,
    pub support: Support,
    /// Its value is redacted wherever it is shown.
    pub sensitive: bool,
    /// Decoding fails when it is not set (or, for one-of fields, when none
    /// of them is; the doc names the others).
    pub required: bool,
    /// This name is an alias (or deprecated spelling) of another field.
    pub alias_of: Option<&'static str>,
}

impl Field {
    /// A supported field without a default.
    pub const fn new(name: &'static str, ty: &'static str, doc: &'static str) -> Field {
        Field {
            name,
            ty,
            default: FieldDefault::Unset,
            doc,
            support: Support::Supported,
            sensitive: false,
            required: false,
            alias_of: None,
        }
    }

    /// A field Packer accepts and kiln ignores.
    pub const fn ignored(name: &'static str, ty: &'static str, doc: &'static str) -> Field {
        Field::new(name, ty, doc).support(Support::Ignored)
    }

    /// A field Packer accepts and kiln refuses.
    pub const fn unsupported(name: &'static str, ty: &'static str, doc: &'static str) -> Field {
        Field::new(name, ty, doc).support(Support::Unsupported)
    }

    pub const fn default(mut self, literal: &'static str) -> Field {
        self.default = FieldDefault::Literal(literal);
        self
    }

    pub const fn computed(mut self, description: &'static str) -> Field {
        self.default = FieldDefault::Computed(description);
        self
    }

    pub const fn support(mut self, support: Support) -> Field {
        self.support = support;
        self
    }

    pub const fn sensitive(mut self) -> Field {
        self.sensitive = true;
        self
    }

    pub const fn required(mut self) -> Field {
        self.required = true;
        self
    }

    pub const fn alias_of(mut self, of: &'static str) -> Field {
        self.alias_of = Some(of);
        self
    }

    /// The literal default as a value, if the field has one.
    pub fn default_value(&self) -> Option<Result<Value, String>> {
        match self.default {
            FieldDefault::Literal(text) => Some(self.parse_literal(text)),
            FieldDefault::Unset | FieldDefault::Computed(_) => None,
        }
    }

    /// A value of this field's type written as text: strings and durations
    /// as they are, numbers and bools as HCL writes them, lists and maps as
    /// JSON.
    pub fn parse_literal(&self, text: &str) -> Result<Value, String> {
        let bad = |why: String| format!("`{}` ({}): {text:?}: {why}", self.name, self.ty);
        match self.ty {
            "string" | "duration" => Ok(Value::String(text.to_string())),
            "int" => text
                .parse::<f64>()
                .map(|n| Value::Number(Number(n)))
                .map_err(|e| bad(e.to_string())),
            "bool" => match text {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(bad("expected `true` or `false`".into())),
            },
            ty if ty.starts_with('[') || ty.starts_with("map[") => {
                serde_json::from_str::<serde_json::Value>(text)
                    .map(|json| Value::from_json(&json))
                    .map_err(|e| bad(e.to_string()))
            }
            other => Err(bad(format!("type `{other}` has no literal syntax"))),
        }
    }
}

/// What a plugin is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    Source,
    Provisioner,
    PostProcessor,
}

impl PluginKind {
    /// As a block type: `source`, `provisioner`, `post-processor`.
    pub fn block(self) -> &'static str {
        match self {
            PluginKind::Source => "source",
            PluginKind::Provisioner => "provisioner",
            PluginKind::PostProcessor => "post-processor",
        }
    }
}

/// The schema of one plugin type.
#[derive(Debug)]
pub struct Schema {
    pub kind: PluginKind,
    /// The type label: `qemu`, `shell`, `maas-tgz`.
    pub name: &'static str,
    /// What the plugin does, in a sentence or two.
    pub summary: &'static str,
    /// The fields, in groups (a post-processor shares a group with the
    /// provisioner of the same name, say), in the order of the docs.
    pub groups: &'static [&'static [Field]],
    /// A smallest valid block: (field, literal as in
    /// [`Field::parse_literal`]). Docs show it; tests decode it.
    pub example: &'static [(&'static str, &'static str)],
}

impl Schema {
    pub fn fields(&self) -> impl Iterator<Item = &'static Field> + use<> {
        self.groups.iter().flat_map(|g| g.iter())
    }

    /// The entry of a name, if the schema has it.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields().find(|f| f.name == name)
    }

    /// Names of the sensitive attributes (their values are redacted).
    pub fn sensitive_fields(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.fields().filter(|f| f.sensitive).map(|f| f.name)
    }

    /// Every name, candidates for "did you mean".
    pub fn names(&self) -> Vec<&'static str> {
        self.fields().map(|f| f.name).collect()
    }

    /// How the block starts: `source "qemu"`, `post-processor "maas-tgz"`.
    pub fn block_header(&self) -> String {
        format!("{} \"{}\"", self.kind.block(), self.name)
    }

    /// The example block's attributes as values.
    pub fn example_attrs(&self) -> Result<Vec<(&'static str, Value)>, String> {
        self.example
            .iter()
            .map(|(name, text)| {
                let field = self
                    .field(name)
                    .ok_or_else(|| format!("example field `{name}` is not in the schema"))?;
                Ok((field.name, field.parse_literal(text)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_parse_by_type() {
        let f = |ty| Field::new("x", ty, "doc");
        assert_eq!(
            f("int").parse_literal("512"),
            Ok(Value::Number(Number(512.0)))
        );
        assert_eq!(f("bool").parse_literal("true"), Ok(Value::Bool(true)));
        assert_eq!(
            f("string").parse_literal("a b"),
            Ok(Value::String("a b".into()))
        );
        assert!(f("bool").parse_literal("yes").is_err());
        assert!(f("[]string").parse_literal("[\"md5\"]").is_ok());
        assert!(f("block").parse_literal("x").is_err());
    }
}
