//! Type constraints: parsing `type = ...` expressions, printing them, and
//! converting values to them with go-cty's rules (kept private here until
//! `value.rs` grows its own conversion).

use std::collections::BTreeMap;

use hcl_edit::Span as _;
use hcl_edit::expr::{Expression, ObjectKey};

use crate::value::{Number, Type, Value};

/// Parse a type expression (`string`, `list(number)`, `object({a=string})`).
pub fn parse_type(expr: &Expression) -> Result<Type, (Option<std::ops::Range<usize>>, String)> {
    let err = |e: &Expression, m: &str| Err((e.span(), m.to_string()));
    match expr {
        Expression::Variable(v) => match v.value().as_str() {
            "string" => Ok(Type::String),
            "number" => Ok(Type::Number),
            "bool" => Ok(Type::Bool),
            "any" => Ok(Type::Any),
            "list" | "set" | "map" => err(
                expr,
                &format!(
                    "the `{}` type constructor requires one argument specifying the element type",
                    v.value().as_str()
                ),
            ),
            other => err(
                expr,
                &format!("the keyword `{other}` is not a valid type specification"),
            ),
        },
        Expression::Parenthesis(p) => parse_type(p.inner()),
        Expression::FuncCall(call) => {
            let name = call.name.name.value().as_str();
            let args: Vec<&Expression> = call.args.iter().collect();
            match name {
                "list" | "set" | "map" => {
                    if args.len() != 1 {
                        return err(
                            expr,
                            &format!(
                                "the `{name}` type constructor requires one argument specifying the element type"
                            ),
                        );
                    }
                    let elem = Box::new(parse_type(args[0])?);
                    Ok(match name {
                        "list" => Type::List(elem),
                        "set" => Type::Set(elem),
                        _ => Type::Map(elem),
                    })
                }
                "object" => {
                    let Some(Expression::Object(obj)) = args.first().copied() else {
                        return err(
                            expr,
                            "the `object` type constructor requires one argument specifying the attribute types as a map",
                        );
                    };
                    if args.len() != 1 {
                        return err(expr, "the `object` type constructor requires one argument");
                    }
                    let mut attrs = BTreeMap::new();
                    for (k, v) in obj.iter() {
                        let key = match k {
                            ObjectKey::Ident(i) => i.value().to_string(),
                            ObjectKey::Expression(Expression::String(s)) => s.value().to_string(),
                            ObjectKey::Expression(Expression::Variable(i)) => i.value().to_string(),
                            ObjectKey::Expression(e) => {
                                return err(e, "object attribute names must be identifiers");
                            }
                        };
                        attrs.insert(key, parse_type(v.expr())?);
                    }
                    Ok(Type::Object(attrs))
                }
                "tuple" => {
                    let Some(Expression::Array(arr)) = args.first().copied() else {
                        return err(
                            expr,
                            "the `tuple` type constructor requires one argument specifying the element types as a list",
                        );
                    };
                    if args.len() != 1 {
                        return err(expr, "the `tuple` type constructor requires one argument");
                    }
                    arr.iter()
                        .map(parse_type)
                        .collect::<Result<Vec<_>, _>>()
                        .map(Type::Tuple)
                }
                other => err(expr, &format!("`{other}` is not a valid type constructor")),
            }
        }
        _ => err(
            expr,
            "a type specification is required here (e.g. `string`, `list(string)`)",
        ),
    }
}

/// A type in HCL's type-expression syntax.
pub fn type_string(t: &Type) -> String {
    match t {
        Type::String => "string".into(),
        Type::Number => "number".into(),
        Type::Bool => "bool".into(),
        Type::Any => "any".into(),
        Type::List(e) => format!("list({})", type_string(e)),
        Type::Set(e) => format!("set({})", type_string(e)),
        Type::Map(e) => format!("map({})", type_string(e)),
        Type::Object(attrs) => format!(
            "object({{{}}})",
            attrs
                .iter()
                .map(|(k, v)| format!("{k}={}", type_string(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Tuple(items) => format!(
            "tuple([{}])",
            items.iter().map(type_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The type a value has by itself (what Packer gives an untyped variable
/// from its default). `null` has no type (`any`).
pub fn implied_type(v: &Value) -> Type {
    match v {
        Value::Null => Type::Any,
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::String(_) => Type::String,
        Value::List(items) => Type::List(Box::new(items.first().map_or(Type::Any, implied_type))),
        Value::Set(items) => Type::Set(Box::new(items.first().map_or(Type::Any, implied_type))),
        Value::Map(m) => Type::Map(Box::new(m.values().next().map_or(Type::Any, implied_type))),
        Value::Tuple(items) => Type::Tuple(items.iter().map(implied_type).collect()),
        Value::Object(m) => Type::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), implied_type(v)))
                .collect(),
        ),
    }
}

/// cty's friendly name of a value's type, for messages.
pub fn friendly(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::List(items) => match items.first() {
            Some(e) => format!("list of {}", friendly(e)),
            None => "list".into(),
        },
        Value::Set(items) => match items.first() {
            Some(e) => format!("set of {}", friendly(e)),
            None => "set".into(),
        },
        Value::Map(m) => match m.values().next() {
            Some(e) => format!("map of {}", friendly(e)),
            None => "map".into(),
        },
        Value::Tuple(_) => "tuple".into(),
        Value::Object(_) => "object".into(),
    }
}

fn friendly_type(t: &Type) -> String {
    match t {
        Type::String => "string".into(),
        Type::Number => "number".into(),
        Type::Bool => "bool".into(),
        Type::Any => "any value".into(),
        Type::List(e) => format!("list of {}", friendly_type(e)),
        Type::Set(e) => format!("set of {}", friendly_type(e)),
        Type::Map(e) => format!("map of {}", friendly_type(e)),
        Type::Object(_) => "object".into(),
        Type::Tuple(_) => "tuple".into(),
    }
}

/// Parse a number as cty does from a string.
pub fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() || t != s {
        return None;
    }
    if !t
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Convert a value to a type, following go-cty's `convert.Convert`.
/// The error reads as cty's does ("a number is required").
pub fn convert(v: &Value, t: &Type) -> Result<Value, String> {
    convert_at(v, t, &mut Vec::new())
}

fn at(path: &[String], msg: String) -> String {
    if path.is_empty() {
        msg
    } else {
        format!("{}: {msg}", path.join(""))
    }
}

fn convert_at(v: &Value, t: &Type, path: &mut Vec<String>) -> Result<Value, String> {
    if matches!(v, Value::Null) {
        return Ok(Value::Null);
    }
    match t {
        Type::Any => unify_any(v).map_err(|m| at(path, m)),
        Type::String => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err(at(path, "string required".into())),
        },
        Type::Number => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::String(s) => parse_number(s)
                .map(|n| Value::Number(Number(n)))
                .ok_or_else(|| at(path, "a number is required".into())),
            _ => Err(at(path, "number required".into())),
        },
        Type::Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) if s == "true" => Ok(Value::Bool(true)),
            Value::String(s) if s == "false" => Ok(Value::Bool(false)),
            Value::String(_) => Err(at(path, "a bool is required".into())),
            _ => Err(at(path, "bool required".into())),
        },
        Type::List(e) | Type::Set(e) => {
            let items = match v {
                Value::List(items) | Value::Tuple(items) | Value::Set(items) => items,
                _ => return Err(at(path, format!("{} required", friendly_type(t)))),
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                let c = convert_at(item, e, path);
                path.pop();
                out.push(c?);
            }
            if matches!(**e, Type::Any) {
                out = unify_list(out).map_err(|m| at(path, m))?;
            }
            if matches!(t, Type::Set(_)) {
                Ok(Value::Set(dedup(out)))
            } else {
                Ok(Value::List(out))
            }
        }
        Type::Map(e) => {
            let m = match v {
                Value::Map(m) | Value::Object(m) => m,
                _ => return Err(at(path, format!("{} required", friendly_type(t)))),
            };
            let mut out = BTreeMap::new();
            for (k, item) in m {
                path.push(format!("[{k:?}]"));
                let c = convert_at(item, e, path);
                path.pop();
                out.insert(k.clone(), c?);
            }
            if matches!(**e, Type::Any) {
                let keys: Vec<String> = out.keys().cloned().collect();
                let vals = unify_list(out.into_values().collect()).map_err(|m| at(path, m))?;
                out = keys.into_iter().zip(vals).collect();
            }
            Ok(Value::Map(out))
        }
        Type::Object(attrs) => {
            let m = match v {
                Value::Map(m) | Value::Object(m) => m,
                _ => return Err(at(path, "object required".into())),
            };
            let mut out = BTreeMap::new();
            for (k, at_t) in attrs {
                let Some(item) = m.get(k) else {
                    return Err(at(path, format!("attribute {k:?} is required")));
                };
                path.push(format!(".{k}"));
                let c = convert_at(item, at_t, path);
                path.pop();
                out.insert(k.clone(), c?);
            }
            Ok(Value::Object(out))
        }
        Type::Tuple(types) => {
            let items = match v {
                Value::List(items) | Value::Tuple(items) | Value::Set(items) => items,
                _ => return Err(at(path, "tuple required".into())),
            };
            if items.len() != types.len() {
                return Err(at(
                    path,
                    format!("tuple required with {} elements", types.len()),
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, ty)) in items.iter().zip(types).enumerate() {
                path.push(format!("[{i}]"));
                let c = convert_at(item, ty, path);
                path.pop();
                out.push(c?);
            }
            Ok(Value::Tuple(out))
        }
    }
}

/// `any`: the value keeps its type, but the elements of a list, set or map
/// must share one type (cty unifies them).
fn unify_any(v: &Value) -> Result<Value, String> {
    Ok(match v {
        Value::List(items) => Value::List(unify_list(items.clone())?),
        Value::Set(items) => Value::Set(unify_list(items.clone())?),
        Value::Map(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let vals = unify_list(m.values().cloned().collect())?;
            Value::Map(keys.into_iter().zip(vals).collect())
        }
        _ => v.clone(),
    })
}

/// Make elements share one type: primitives of mixed kinds become strings.
pub fn unify_list(items: Vec<Value>) -> Result<Vec<Value>, String> {
    let kinds: Vec<&'static str> = items
        .iter()
        .filter(|v| !matches!(v, Value::Null))
        .map(|v| v.type_name())
        .collect();
    let Some(first) = kinds.first() else {
        return Ok(items);
    };
    if kinds.iter().all(|k| k == first) {
        return Ok(items);
    }
    if kinds
        .iter()
        .all(|k| matches!(*k, "string" | "number" | "bool"))
    {
        return items.iter().map(|v| convert(v, &Type::String)).collect();
    }
    if kinds.iter().all(|k| matches!(*k, "object" | "map")) {
        return Ok(items
            .into_iter()
            .map(|v| match v {
                Value::Object(m) => Value::Map(m),
                other => other,
            })
            .collect());
    }
    if kinds.iter().all(|k| matches!(*k, "tuple" | "list")) {
        return Ok(items
            .into_iter()
            .map(|v| match v {
                Value::Tuple(m) => Value::List(m),
                other => other,
            })
            .collect());
    }
    Err("all elements must have the same type".into())
}

fn dedup(items: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for i in items {
        if !out.iter().any(|o| super::ops::equal(o, &i)) {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    fn ty(src: &str) -> Type {
        parse_type(&hcl_edit::parser::parse_expr(src).unwrap()).unwrap()
    }

    #[test]
    fn parses_and_prints_type_expressions() {
        for t in [
            "string",
            "list(number)",
            "map(list(string))",
            "object({a=string, b=bool})",
            "tuple([string, number])",
            "set(any)",
        ] {
            assert_eq!(type_string(&ty(t)), t);
        }
        assert!(parse_type(&hcl_edit::parser::parse_expr("list").unwrap()).is_err());
        assert!(parse_type(&hcl_edit::parser::parse_expr("strin").unwrap()).is_err());
    }

    #[test]
    fn converts_like_cty() {
        assert_eq!(
            convert(&s("12"), &Type::Number),
            Ok(Value::Number(Number(12.0)))
        );
        assert_eq!(
            convert(&s("x"), &Type::Number),
            Err("a number is required".into())
        );
        assert_eq!(
            convert(&Value::Number(Number(1.5)), &Type::String),
            Ok(s("1.5"))
        );
        assert_eq!(convert(&s("true"), &Type::Bool), Ok(Value::Bool(true)));
        let t = Value::Tuple(vec![s("a"), Value::Number(Number(1.0))]);
        assert_eq!(
            convert(&t, &ty("list(string)")),
            Ok(Value::List(vec![s("a"), s("1")]))
        );
        assert_eq!(
            convert(&t, &ty("list(any)")),
            Ok(Value::List(vec![s("a"), s("1")]))
        );
        assert!(
            convert(&t, &ty("list(number)"))
                .unwrap_err()
                .contains("[0]")
        );
        let o = Value::Object([("a".to_string(), s("1")), ("x".to_string(), s("y"))].into());
        assert_eq!(
            convert(&o, &ty("object({a=number})")),
            Ok(Value::Object(
                [("a".to_string(), Value::Number(Number(1.0)))].into()
            ))
        );
        assert!(
            convert(&o, &ty("object({b=number})"))
                .unwrap_err()
                .contains("\"b\" is required")
        );
        assert_eq!(
            convert(&Value::Tuple(vec![s("a"), s("a")]), &ty("set(string)")),
            Ok(Value::Set(vec![s("a")]))
        );
        assert!(convert(&t, &ty("tuple([string])")).is_err());
    }
}
