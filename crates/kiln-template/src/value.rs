//! Values and types of the HCL2 language as Packer (go-cty) has them.
//!
//! Collections keep their kind because Packer's functions and type
//! conversions tell a list from a tuple and a map from an object.

use std::collections::BTreeMap;

/// A number. cty numbers are arbitrary-precision; f64 covers what templates use.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Number(pub f64);

/// A value of the HCL2 language.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    /// Homogeneous, ordered.
    List(Vec<Value>),
    /// Homogeneous, deduplicated and kept in cty's set order.
    Set(Vec<Value>),
    /// Heterogeneous, ordered.
    Tuple(Vec<Value>),
    /// Homogeneous, keys sorted.
    Map(BTreeMap<String, Value>),
    /// Heterogeneous attributes, keys sorted.
    Object(BTreeMap<String, Value>),
}

/// A type constraint (`type = ...` in a variable block).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    String,
    Number,
    Bool,
    /// `any`: the value keeps the type it has.
    Any,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl std::fmt::Display for Number {
    /// cty's canonical decimal form: no exponent, no trailing zeros.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0;
        if n.fract() == 0.0 && n.abs() < 1e21 {
            write!(f, "{n:.0}")
        } else {
            write!(f, "{n}")
        }
    }
}

impl Value {
    /// The name of the value's type as Packer prints it in errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Tuple(_) => "tuple",
            Value::Map(_) => "map",
            Value::Object(_) => "object",
        }
    }
}

impl Value {
    /// The value as JSON, the way Packer's `inspect`/`jsonencode` show it:
    /// lists, sets and tuples as arrays, maps and objects as objects.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => {
                if n.0.fract() == 0.0 && n.0.abs() < 9.007_199_254_740_992e15 {
                    serde_json::Value::from(n.0 as i64)
                } else {
                    serde_json::Number::from_f64(n.0)
                        .map(serde_json::Value::Number)
                        .unwrap_or(serde_json::Value::Null)
                }
            }
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Map(m) | Value::Object(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// A JSON document as a value of the implied type (arrays are tuples,
    /// objects are objects), as `jsondecode` does.
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Number(Number(n.as_f64().unwrap_or(f64::NAN))),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(items) => {
                Value::Tuple(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}
