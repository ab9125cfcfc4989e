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

/// Parse a number as cty does from a string.
pub fn parse_number(s: &str) -> Option<f64> {
    Number::parse(s).map(|n| n.0)
}

/// Convert a value to a type with go-cty's rules (the library's
/// [`crate::value::convert`]); the error reads as cty's does.
pub fn convert(v: &Value, t: &Type) -> Result<Value, String> {
    crate::value::convert(v, t).map_err(|e| e.to_string())
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
