//! The names an expression refers to, found without evaluating it (for
//! local dependency order and the rules of validation conditions).

use std::ops::Range;

use hcl_edit::Span as _;
use hcl_edit::expr::{Expression, ObjectKey, TraversalOperator};
use hcl_edit::template::{Directive, Element, Template};

/// `root` or `root.attr`, where it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub root: String,
    pub attr: Option<String>,
    pub range: Option<Range<usize>>,
}

/// Every reference in `expr`, skipping names bound by `for`.
pub fn references(expr: &Expression) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut scope = Vec::new();
    walk(expr, &mut scope, &mut out, 0);
    out
}

fn walk(expr: &Expression, scope: &mut Vec<String>, out: &mut Vec<Reference>, depth: usize) {
    if depth > 200 {
        return;
    }
    let d = depth + 1;
    match expr {
        Expression::Null(_)
        | Expression::Bool(_)
        | Expression::Number(_)
        | Expression::String(_) => {}
        Expression::Array(a) => a.iter().for_each(|e| walk(e, scope, out, d)),
        Expression::Object(o) => {
            for (k, v) in o.iter() {
                if let ObjectKey::Expression(e) = k
                    && !matches!(e, Expression::Variable(_))
                {
                    walk(e, scope, out, d);
                }
                walk(v.expr(), scope, out, d);
            }
        }
        Expression::StringTemplate(t) => walk_template(t, scope, out, d),
        Expression::HeredocTemplate(h) => walk_template(&h.template, scope, out, d),
        Expression::Parenthesis(p) => walk(p.inner(), scope, out, d),
        Expression::Variable(v) => {
            let name = v.value().to_string();
            if !scope.contains(&name) {
                out.push(Reference {
                    root: name,
                    attr: None,
                    range: expr.span(),
                });
            }
        }
        Expression::Conditional(c) => {
            walk(&c.cond_expr, scope, out, d);
            walk(&c.true_expr, scope, out, d);
            walk(&c.false_expr, scope, out, d);
        }
        Expression::FuncCall(f) => {
            let name = f.name.name.value().as_str();
            for (i, a) in f.args.iter().enumerate() {
                // The second argument of convert() is a type, not names.
                if name == "convert" && i == 1 {
                    continue;
                }
                walk(a, scope, out, d);
            }
        }
        Expression::Traversal(t) => {
            match (&t.expr, t.operators.first().map(|o| o.value())) {
                (Expression::Variable(root), first)
                    if !scope.contains(&root.value().to_string()) =>
                {
                    let attr = match first {
                        Some(TraversalOperator::GetAttr(a)) => Some(a.value().to_string()),
                        _ => None,
                    };
                    let end = match first {
                        Some(TraversalOperator::GetAttr(a)) => a.span().map(|s| s.end),
                        _ => None,
                    };
                    let range = match (t.expr.span(), end) {
                        (Some(s), Some(e)) => Some(s.start..e),
                        (s, _) => s,
                    };
                    out.push(Reference {
                        root: root.value().to_string(),
                        attr,
                        range,
                    });
                }
                _ => walk(&t.expr, scope, out, d),
            }
            for op in &t.operators {
                if let TraversalOperator::Index(e) = op.value() {
                    walk(e, scope, out, d);
                }
            }
        }
        Expression::UnaryOp(u) => walk(&u.expr, scope, out, d),
        Expression::BinaryOp(b) => {
            walk(&b.lhs_expr, scope, out, d);
            walk(&b.rhs_expr, scope, out, d);
        }
        Expression::ForExpr(f) => {
            walk(&f.intro.collection_expr, scope, out, d);
            let mark = scope.len();
            if let Some(k) = &f.intro.key_var {
                scope.push(k.value().to_string());
            }
            scope.push(f.intro.value_var.value().to_string());
            if let Some(k) = &f.key_expr {
                walk(k, scope, out, d);
            }
            walk(&f.value_expr, scope, out, d);
            if let Some(c) = &f.cond {
                walk(&c.expr, scope, out, d);
            }
            scope.truncate(mark);
        }
    }
}

fn walk_template(t: &Template, scope: &mut Vec<String>, out: &mut Vec<Reference>, d: usize) {
    for e in t.iter() {
        match e {
            Element::Literal(_) => {}
            Element::Interpolation(i) => walk(&i.expr, scope, out, d),
            Element::Directive(dir) => match &**dir {
                Directive::If(i) => {
                    walk(&i.if_expr.cond_expr, scope, out, d);
                    walk_template(&i.if_expr.template, scope, out, d);
                    if let Some(e) = &i.else_expr {
                        walk_template(&e.template, scope, out, d);
                    }
                }
                Directive::For(f) => {
                    walk(&f.for_expr.collection_expr, scope, out, d);
                    let mark = scope.len();
                    if let Some(k) = &f.for_expr.key_var {
                        scope.push(k.value().to_string());
                    }
                    scope.push(f.for_expr.value_var.value().to_string());
                    walk_template(&f.for_expr.template, scope, out, d);
                    scope.truncate(mark);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(src: &str) -> Vec<(String, Option<String>)> {
        references(&hcl_edit::parser::parse_expr(src).unwrap())
            .into_iter()
            .map(|r| (r.root, r.attr))
            .collect()
    }

    #[test]
    fn finds_references_outside_for_scopes() {
        assert_eq!(
            refs("[for v in var.list : v if local.ok]"),
            vec![
                ("var".into(), Some("list".into())),
                ("local".into(), Some("ok".into()))
            ]
        );
        assert_eq!(
            refs("\"${local.a}-%{for x in local.b}${x}%{endfor}\"").len(),
            2
        );
        assert_eq!(
            refs("convert(var.x, list(string))"),
            vec![("var".into(), Some("x".into()))]
        );
    }
}
