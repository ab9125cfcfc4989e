//! Type constraints: parsing `type = ...` expressions, printing them, and
//! converting values to them with go-cty's rules (kept private here until
//! `value.rs` grows its own conversion).
//!
//! `optional()` attribute modifiers (Packer 1.16, hcl's
//! `ext/typeexpr/get_type.go` and `defaults.go`): inside an `object({...})`
//! attribute, `optional(T)` or, in a variable's `type`, `optional(T,
//! default)`. The plain [`Type`] is kept; what `optional()` adds is an
//! [`Optionals`] tree beside it, applied to a value before it is converted
//! ([`convert_constrained`]): a missing attribute, or one given as `null`,
//! takes its default (itself with the nested defaults applied); a missing
//! optional attribute without a default becomes `null` (cty's conversion
//! to an object type with optional attributes). A `null` value as a whole
//! is left alone. Defaults apply to every element of the lists, sets, maps
//! and tuples of objects they are nested in. A default is a constant
//! (no variables, no functions) converted to the attribute's type when the
//! type is read. `optional` anywhere but as an object attribute's type is
//! an error, as is a default outside a variable's `type` (`convert()`).

use std::collections::BTreeMap;
use std::path::Path;

use hcl_edit::Span as _;
use hcl_edit::expr::{Expression, ObjectKey};

use crate::eval::{Evaluator, Functions, NoRoots};
use crate::value::{Number, Type, Value};

/// What `optional()` modifiers add to a type constraint, at one level of
/// it (hcl's `typeexpr.Defaults`, plus the optional attributes that have
/// no default).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Optionals {
    /// This object's optional attributes: name → default (`None`: null).
    pub attrs: BTreeMap<String, Option<Value>>,
    /// Nested levels: by attribute name in an object, by index in a
    /// tuple, under `""` for a collection's elements.
    pub children: BTreeMap<String, Optionals>,
}

impl Optionals {
    fn non_empty(self) -> Option<Optionals> {
        (!self.attrs.is_empty() || !self.children.is_empty()).then_some(self)
    }

    fn child(&self, key: &str) -> Option<&Optionals> {
        self.children.get(key)
    }

    /// The value with the defaults applied (hcl's `Defaults.Apply`).
    pub fn apply(&self, v: Value) -> Value {
        match v {
            Value::Null => Value::Null,
            Value::List(items) => Value::List(self.apply_seq(items)),
            Value::Tuple(items) => Value::Tuple(self.apply_seq(items)),
            Value::Set(items) => Value::new_set(self.apply_seq(items)),
            Value::Object(m) => Value::Object(self.apply_map(m)),
            Value::Map(m) => Value::Map(self.apply_map(m)),
            other => other,
        }
    }

    fn apply_seq(&self, items: Vec<Value>) -> Vec<Value> {
        items
            .into_iter()
            .enumerate()
            .map(
                |(i, v)| match self.child("").or_else(|| self.child(&i.to_string())) {
                    Some(c) => c.apply(v),
                    None => v,
                },
            )
            .collect()
    }

    fn apply_map(&self, m: BTreeMap<String, Value>) -> BTreeMap<String, Value> {
        let mut out: BTreeMap<String, Value> = m
            .into_iter()
            .map(|(k, v)| {
                let v = match self.child("").or_else(|| self.child(&k)) {
                    Some(c) => c.apply(v),
                    None => v,
                };
                (k, v)
            })
            .collect();
        for (name, default) in &self.attrs {
            if out.get(name).is_some_and(|v| !v.is_null()) {
                continue;
            }
            let v = match (default, self.child(name)) {
                (Some(d), Some(c)) => c.apply(d.clone()),
                (Some(d), None) => d.clone(),
                (None, _) => Value::Null,
            };
            out.insert(name.clone(), v);
        }
        out
    }
}

/// A type constraint with its `optional()` attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    pub ty: Type,
    pub optionals: Option<Optionals>,
}

type TypeError = (Option<std::ops::Range<usize>>, String);

/// Parse a type expression (`string`, `list(number)`, `object({a=string})`),
/// with no `optional()` attributes.
pub fn parse_type(expr: &Expression) -> Result<Type, TypeError> {
    let c = parse_constraint(expr, false)?;
    match c.optionals {
        None => Ok(c.ty),
        Some(_) => Err((
            expr.span(),
            "optional attributes are not allowed here".to_string(),
        )),
    }
}

/// Parse a type constraint, `optional()` attributes included; `defaults`
/// allows their second argument (a variable's `type`, not `convert()`).
pub fn parse_constraint(expr: &Expression, defaults: bool) -> Result<Constraint, TypeError> {
    let (ty, optionals) = parse_inner(expr, defaults)?;
    Ok(Constraint { ty, optionals })
}

/// A constant default value (hcl evaluates it with no context).
fn default_value(e: &Expression) -> Result<Value, TypeError> {
    let ev = Evaluator::new(&NoRoots, Path::new("."), Functions::None);
    ev.eval(e).map_err(|err| {
        let mut m = format!(
            "invalid default value for optional attribute: {}",
            err.summary
        );
        if let Some(d) = err.detail {
            m.push_str(": ");
            m.push_str(&d);
        }
        (err.range.or(e.span()), m)
    })
}

/// An object attribute's type, unwrapping `optional(T[, default])`: the
/// type, its nested optionals, and `Some(default)` when it is optional.
#[allow(clippy::type_complexity)]
fn attribute_type(
    name: &str,
    e: &Expression,
    defaults: bool,
) -> Result<(Type, Option<Optionals>, Option<Option<Value>>), TypeError> {
    let Expression::FuncCall(call) = e else {
        let (t, o) = parse_inner(e, defaults)?;
        return Ok((t, o, None));
    };
    if call.name.name.value().as_str() != "optional" {
        let (t, o) = parse_inner(e, defaults)?;
        return Ok((t, o, None));
    }
    let args: Vec<&Expression> = call.args.iter().collect();
    let Some(inner) = args.first() else {
        return Err((
            e.span(),
            "the optional attribute modifier requires the attribute type as its argument"
                .to_string(),
        ));
    };
    if args.len() > 2 || (args.len() == 2 && !defaults) {
        let m = if defaults {
            "the optional attribute modifier expects at most two arguments: the attribute type, and a default value"
        } else {
            "the optional attribute modifier expects only one argument here: the attribute type"
        };
        return Err((args[1].span().or(e.span()), m.to_string()));
    }
    let (t, o) = parse_inner(inner, defaults)?;
    let default = match args.get(1) {
        None => None,
        Some(d) => {
            let raw = default_value(d)?;
            let raw = match &o {
                Some(o) => o.apply(raw),
                None => raw,
            };
            let v = convert(&raw, &t).map_err(|m| {
                (
                    d.span(),
                    format!(
                        "invalid default value for optional attribute `{name}`: this default value is not compatible with the attribute's type constraint: {m}"
                    ),
                )
            })?;
            Some(v)
        }
    };
    Ok((t, o, Some(default)))
}

fn parse_inner(expr: &Expression, defaults: bool) -> Result<(Type, Option<Optionals>), TypeError> {
    let err = |e: &Expression, m: &str| Err((e.span(), m.to_string()));
    let plain = |t: Type| Ok((t, None));
    match expr {
        Expression::Variable(v) => match v.value().as_str() {
            "string" => plain(Type::String),
            "number" => plain(Type::Number),
            "bool" => plain(Type::Bool),
            "any" => plain(Type::Any),
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
        Expression::Parenthesis(p) => parse_inner(p.inner(), defaults),
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
                    let (elem, o) = parse_inner(args[0], defaults)?;
                    let elem = Box::new(elem);
                    let t = match name {
                        "list" => Type::List(elem),
                        "set" => Type::Set(elem),
                        _ => Type::Map(elem),
                    };
                    let o = o.map(|o| Optionals {
                        attrs: BTreeMap::new(),
                        children: [(String::new(), o)].into(),
                    });
                    Ok((t, o))
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
                    let mut opt = Optionals::default();
                    for (k, v) in obj.iter() {
                        let key = match k {
                            ObjectKey::Ident(i) => i.value().to_string(),
                            ObjectKey::Expression(Expression::String(s)) => s.value().to_string(),
                            ObjectKey::Expression(Expression::Variable(i)) => i.value().to_string(),
                            ObjectKey::Expression(e) => {
                                return err(e, "object attribute names must be identifiers");
                            }
                        };
                        let (t, o, optional) = attribute_type(&key, v.expr(), defaults)?;
                        if let Some(o) = o {
                            opt.children.insert(key.clone(), o);
                        }
                        if let Some(default) = optional {
                            opt.attrs.insert(key.clone(), default);
                        }
                        attrs.insert(key, t);
                    }
                    Ok((Type::Object(attrs), opt.non_empty()))
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
                    let mut items = Vec::new();
                    let mut opt = Optionals::default();
                    for (i, e) in arr.iter().enumerate() {
                        let (t, o) = parse_inner(e, defaults)?;
                        if let Some(o) = o {
                            opt.children.insert(i.to_string(), o);
                        }
                        items.push(t);
                    }
                    Ok((Type::Tuple(items), opt.non_empty()))
                }
                "optional" => err(
                    expr,
                    "the keyword `optional` is valid only as a modifier for object type attributes",
                ),
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
    constraint_string(t, None)
}

/// A type constraint in HCL's type-expression syntax, with its
/// `optional()` attributes (and their defaults, as JSON, which HCL reads).
pub fn constraint_string(t: &Type, o: Option<&Optionals>) -> String {
    let child = |k: &str| o.and_then(|o| o.child(k));
    match t {
        Type::String => "string".into(),
        Type::Number => "number".into(),
        Type::Bool => "bool".into(),
        Type::Any => "any".into(),
        Type::List(e) => format!("list({})", constraint_string(e, child(""))),
        Type::Set(e) => format!("set({})", constraint_string(e, child(""))),
        Type::Map(e) => format!("map({})", constraint_string(e, child(""))),
        Type::Object(attrs) => format!(
            "object({{{}}})",
            attrs
                .iter()
                .map(|(k, v)| {
                    let inner = constraint_string(v, child(k));
                    match o.and_then(|o| o.attrs.get(k)) {
                        None => format!("{k}={inner}"),
                        Some(None) => format!("{k}=optional({inner})"),
                        Some(Some(d)) => format!("{k}=optional({inner}, {})", d.to_json_string()),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Tuple(items) => format!(
            "tuple([{}])",
            items
                .iter()
                .enumerate()
                .map(|(i, t)| constraint_string(t, child(&i.to_string())))
                .collect::<Vec<_>>()
                .join(", ")
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

/// Convert a value to a type constraint: its `optional()` defaults
/// applied first, as Packer 1.16 does (`applyTypeDefaults`).
pub fn convert_constrained(v: &Value, c: &Constraint) -> Result<Value, String> {
    match &c.optionals {
        Some(o) => convert(&o.apply(v.clone()), &c.ty),
        None => convert(v, &c.ty),
    }
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

    fn constraint(src: &str, defaults: bool) -> Result<Constraint, String> {
        parse_constraint(&hcl_edit::parser::parse_expr(src).unwrap(), defaults).map_err(|(_, m)| m)
    }

    fn value(src: &str) -> Value {
        let ev = Evaluator::new(&NoRoots, Path::new("."), Functions::None);
        ev.eval(&hcl_edit::parser::parse_expr(src).unwrap())
            .unwrap()
    }

    fn n(x: f64) -> Value {
        Value::Number(Number(x))
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    /// hcl ext/typeexpr/defaults.go (`Defaults.apply`): a missing
    /// attribute or one given as null takes its default; without a
    /// default, a missing optional attribute is null (cty's conversion to
    /// `ObjectWithOptionalAttrs`).
    #[test]
    fn optional_attributes_take_defaults_when_missing_or_null() {
        let c = constraint(
            "object({ a = string, b = optional(number, 5), c = optional(list(string)) })",
            true,
        )
        .unwrap();
        assert_eq!(
            convert_constrained(&value("{ a = \"x\" }"), &c),
            Ok(obj(&[("a", s("x")), ("b", n(5.0)), ("c", Value::Null)]))
        );
        assert_eq!(
            convert_constrained(&value("{ a = \"x\", b = null, c = null }"), &c),
            Ok(obj(&[("a", s("x")), ("b", n(5.0)), ("c", Value::Null)]))
        );
        assert_eq!(
            convert_constrained(&value("{ a = 1, b = \"7\", c = [true] }"), &c),
            Ok(obj(&[
                ("a", s("1")),
                ("b", n(7.0)),
                ("c", Value::List(vec![s("true")]))
            ]))
        );
        // A required attribute is still required; a null value stays null.
        assert!(
            convert_constrained(&value("{ b = 1 }"), &c)
                .unwrap_err()
                .contains("\"a\" is required")
        );
        assert_eq!(convert_constrained(&Value::Null, &c), Ok(Value::Null));
    }

    /// hcl ext/typeexpr/get_type.go: the default is converted to the
    /// attribute's type when the type is read; a nested default applies
    /// to every element of the collections it is inside.
    #[test]
    fn optional_defaults_apply_to_nested_elements() {
        let c = constraint(
            "map(list(object({ name = string, size = optional(number, 10), opts = optional(object({ fast = optional(bool, true) }), {}) })))",
            true,
        )
        .unwrap();
        let got = convert_constrained(
            &value("{ a = [{ name = \"x\" }, { name = \"y\", size = \"3\", opts = { fast = false } }] }"),
            &c,
        )
        .unwrap();
        let fast = |b: bool| obj(&[("fast", Value::Bool(b))]);
        assert_eq!(
            got,
            Value::Map(
                [(
                    "a".to_string(),
                    Value::List(vec![
                        obj(&[("name", s("x")), ("opts", fast(true)), ("size", n(10.0))]),
                        obj(&[("name", s("y")), ("opts", fast(false)), ("size", n(3.0))]),
                    ])
                )]
                .into()
            )
        );
        let c = constraint("tuple([string, object({ x = optional(string, 1) })])", true).unwrap();
        assert_eq!(
            convert_constrained(&value("[\"a\", {}]"), &c),
            Ok(Value::Tuple(vec![s("a"), obj(&[("x", s("1"))])]))
        );
    }

    #[test]
    fn optional_outside_an_object_attribute_is_an_error() {
        for src in [
            "optional(string)",
            "list(optional(string))",
            "object({ a = list(optional(string)) })",
        ] {
            let e = constraint(src, true).unwrap_err();
            assert!(
                e.contains("valid only as a modifier for object type attributes"),
                "{src}: {e}"
            );
        }
        let e = constraint("object({ a = optional(number, \"x\") })", true).unwrap_err();
        assert!(
            e.contains("invalid default value for optional attribute `a`"),
            "{e}"
        );
        let e = constraint("object({ a = optional(number, 1, 2) })", true).unwrap_err();
        assert!(e.contains("at most two arguments"), "{e}");
        let e = constraint("object({ a = optional() })", true).unwrap_err();
        assert!(e.contains("requires the attribute type"), "{e}");
        // `convert()` takes type constraints without defaults.
        assert!(constraint("object({ a = optional(number) })", false).is_ok());
        let e = constraint("object({ a = optional(number, 1) })", false).unwrap_err();
        assert!(e.contains("only one argument"), "{e}");
        let e = constraint("object({ a = optional(number, var.x) })", true).unwrap_err();
        assert!(
            e.contains("invalid default value for optional attribute"),
            "{e}"
        );
    }

    #[test]
    fn optional_attributes_print_with_their_defaults() {
        for t in [
            "object({a=string, b=optional(number, 5), c=optional(list(string))})",
            "list(object({x=optional(bool, true)}))",
            "map(object({o=optional(object({n=optional(number)}), {\"n\":1})}))",
            "tuple([string, object({y=optional(string, \"d\")})])",
        ] {
            let c = constraint(t, true).unwrap();
            assert_eq!(constraint_string(&c.ty, c.optionals.as_ref()), t);
        }
        assert_eq!(type_string(&ty("object({a=string})")), "object({a=string})");
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
