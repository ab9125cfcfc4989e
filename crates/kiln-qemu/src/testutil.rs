//! Helpers for unit tests: evaluated bodies built by hand.

use kiln_template::body::{Attribute, Block, Body};
use kiln_template::span::Span;
use kiln_template::value::{Number, Value};

pub fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

pub fn n(v: f64) -> Value {
    Value::Number(Number(v))
}

pub fn b(v: bool) -> Value {
    Value::Bool(v)
}

pub fn list(items: &[&str]) -> Value {
    Value::Tuple(items.iter().map(|i| s(i)).collect())
}

pub fn lists(items: &[&[&str]]) -> Value {
    Value::Tuple(items.iter().map(|i| list(i)).collect())
}

pub fn map(items: &[(&str, &str)]) -> Value {
    Value::Object(items.iter().map(|(k, v)| (k.to_string(), s(v))).collect())
}

fn span(line: u32) -> Span {
    Span {
        file: "test.pkr.hcl".into(),
        line,
        col: 3,
        bytes: 0..0,
    }
}

pub fn body(attrs: &[(&str, Value)]) -> Body {
    let mut body = Body::empty(span(1));
    for (i, (name, value)) in attrs.iter().enumerate() {
        body.attrs.insert(
            name.to_string(),
            Attribute {
                name: name.to_string(),
                value: value.clone(),
                span: span(i as u32 + 2),
                sensitive: false,
            },
        );
    }
    body
}

pub fn with_block(mut outer: Body, kind: &str, attrs: &[(&str, Value)]) -> Body {
    outer.blocks.push(Block {
        kind: kind.to_string(),
        labels: Vec::new(),
        body: body(attrs),
        span: span(99),
    });
    outer
}

/// The minimum valid source: an ISO, no checksum, an SSH user.
pub fn minimal() -> Vec<(&'static str, Value)> {
    vec![
        ("iso_url", s("https://example.org/debian.iso")),
        ("iso_checksum", s("none")),
        ("ssh_username", s("root")),
    ]
}

pub fn decode(attrs: &[(&str, Value)]) -> crate::config::QemuConfig {
    match crate::config::QemuConfig::decode(&body(attrs), "x") {
        Ok(d) => d.config,
        Err(e) => panic!("decode failed: {e:#?}"),
    }
}
