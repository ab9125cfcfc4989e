//! String templates: `${}` interpolation, `%{if}`/`%{for}` directives and
//! `~` strip markers, with HCL's rules. A template that is a single
//! interpolation yields the value itself, not its string form. Go-template
//! placeholders (`{{ .HTTPIP }}`) are plain text to HCL and pass through.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use hcl_edit::Span as _;
use hcl_edit::template::{Directive, Element, Template};

use super::{EvalError, EvalResult, Evaluator, Functions, MapRoots, Number};
use crate::value::Value;

/// Render a template file's text for `templatefile`.
pub fn render_file(
    text: &str,
    path: &Path,
    vars: &BTreeMap<String, Value>,
    cwd: &Path,
    depth: usize,
) -> Result<Value, String> {
    if depth > 8 {
        return Err("templatefile calls nested too deeply".into());
    }
    let tpl = hcl_edit::parser::parse_template(text).map_err(|e| {
        format!(
            "{}:{}:{}: {}",
            path.display(),
            e.location().line(),
            e.location().column(),
            e.message().lines().next().unwrap_or("invalid template")
        )
    })?;
    let roots = MapRoots(vars);
    let mut ev = Evaluator::new(&roots, cwd, Functions::All);
    ev.template_depth = depth;
    ev.eval_template(&tpl, None).map_err(|e| {
        let pos = e
            .range
            .map(|r| {
                let line = text.get(..r.start).map_or(0, |s| s.matches('\n').count()) + 1;
                format!(":{line}")
            })
            .unwrap_or_default();
        match e.detail {
            Some(d) => format!("{}{pos}: {}: {d}", path.display(), e.summary),
            None => format!("{}{pos}: {}", path.display(), e.summary),
        }
    })
}

fn interpolate(v: Value, range: Option<Range<usize>>) -> Result<String, EvalError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err(
            EvalError::new(range, "invalid template interpolation value").detail(
                "the expression result is null; cannot include a null value in a string template",
            ),
        ),
        other => Err(
            EvalError::new(range, "invalid template interpolation value").detail(format!(
                "cannot include the given value in a string template: string required, found a {}",
                other.type_name()
            )),
        ),
    }
}

fn strip_start(e: &Element) -> bool {
    match e {
        Element::Literal(_) => false,
        Element::Interpolation(i) => i.strip.strip_start(),
        Element::Directive(d) => match &**d {
            Directive::If(i) => i.if_expr.strip.strip_start(),
            Directive::For(f) => f.for_expr.strip.strip_start(),
        },
    }
}

fn strip_end(e: &Element) -> bool {
    match e {
        Element::Literal(_) => false,
        Element::Interpolation(i) => i.strip.strip_end(),
        Element::Directive(d) => match &**d {
            Directive::If(i) => i.endif_expr.strip.strip_end(),
            Directive::For(f) => f.endfor_expr.strip.strip_end(),
        },
    }
}

impl Evaluator<'_> {
    /// Evaluate a template to its value.
    pub fn eval_template(&self, t: &Template, _range: Option<Range<usize>>) -> EvalResult {
        let elements: Vec<&Element> = t.iter().collect();
        if let [Element::Interpolation(i)] = elements.as_slice() {
            return self.eval(&i.expr);
        }
        let mut out = String::new();
        self.render(t, &mut out, false, false)?;
        Ok(Value::String(out))
    }

    fn render(
        &self,
        t: &Template,
        out: &mut String,
        strip_first: bool,
        strip_last: bool,
    ) -> Result<(), EvalError> {
        let elements: Vec<&Element> = t.iter().collect();
        let n = elements.len();
        for (i, e) in elements.iter().enumerate() {
            match e {
                Element::Literal(lit) => {
                    let mut s: &str = lit.value();
                    let trim_start = if i == 0 {
                        strip_first
                    } else {
                        strip_end(elements[i - 1])
                    };
                    let trim_end = if i + 1 == n {
                        strip_last
                    } else {
                        strip_start(elements[i + 1])
                    };
                    if trim_start {
                        s = s.trim_start();
                    }
                    if trim_end {
                        s = s.trim_end();
                    }
                    out.push_str(s);
                }
                Element::Interpolation(interp) => {
                    let v = self.eval(&interp.expr)?;
                    out.push_str(&interpolate(v, interp.expr.span())?);
                }
                Element::Directive(d) => match &**d {
                    Directive::If(ifd) => {
                        let c = self.eval(&ifd.if_expr.cond_expr)?;
                        let b = super::ops::to_bool(&c).ok_or_else(|| {
                            EvalError::new(ifd.if_expr.cond_expr.span(), "invalid `if` condition")
                                .detail("the condition of an `%{if}` directive must be a bool")
                        })?;
                        let endif_strip = ifd.endif_expr.strip.strip_start();
                        if b {
                            let last = match &ifd.else_expr {
                                Some(e) => e.strip.strip_start(),
                                None => endif_strip,
                            };
                            self.render(
                                &ifd.if_expr.template,
                                out,
                                ifd.if_expr.strip.strip_end(),
                                last,
                            )?;
                        } else if let Some(e) = &ifd.else_expr {
                            self.render(&e.template, out, e.strip.strip_end(), endif_strip)?;
                        }
                    }
                    Directive::For(fd) => {
                        let fe = &fd.for_expr;
                        let coll = self.eval(&fe.collection_expr)?;
                        let pairs: Vec<(Value, Value)> = match coll {
                            Value::List(items) | Value::Tuple(items) | Value::Set(items) => items
                                .into_iter()
                                .enumerate()
                                .map(|(i, v)| (Value::Number(Number(i as f64)), v))
                                .collect(),
                            Value::Map(m) | Value::Object(m) => {
                                m.into_iter().map(|(k, v)| (Value::String(k), v)).collect()
                            }
                            other => {
                                return Err(EvalError::new(fe.collection_expr.span(), "iteration over non-iterable value")
                                    .detail(format!(
                                        "a value of type {} cannot be used as the collection in a `%{{for}}` directive",
                                        other.type_name()
                                    )));
                            }
                        };
                        for (k, v) in pairs {
                            let mark = {
                                let mut scopes = self.scopes.borrow_mut();
                                let mark = scopes.len();
                                if let Some(kv) = &fe.key_var {
                                    scopes.push((kv.value().to_string(), k));
                                }
                                scopes.push((fe.value_var.value().to_string(), v));
                                mark
                            };
                            let r = self.render(
                                &fe.template,
                                out,
                                fe.strip.strip_end(),
                                fd.endfor_expr.strip.strip_start(),
                            );
                            self.scopes.borrow_mut().truncate(mark);
                            r?;
                        }
                    }
                },
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templatefile_renders_with_its_own_variables() {
        let vars: BTreeMap<String, Value> = [
            ("name".to_string(), Value::String("kiln".into())),
            (
                "xs".to_string(),
                Value::Tuple(vec![Value::String("a".into()), Value::String("b".into())]),
            ),
        ]
        .into();
        let out = render_file(
            "Hello ${name}!\n%{ for x in xs ~}\n[${x}]\n%{~ endfor }\n{{ .HTTPIP }}",
            Path::new("t.tpl"),
            &vars,
            Path::new("."),
            0,
        );
        assert_eq!(
            out,
            Ok(Value::String("Hello kiln!\n[a][b]\n{{ .HTTPIP }}".into()))
        );
        let err = render_file("${nope}", Path::new("t.tpl"), &vars, Path::new("."), 0).unwrap_err();
        assert!(err.starts_with("t.tpl:1: unknown variable `nope`"), "{err}");
        assert!(render_file("${", Path::new("t.tpl"), &vars, Path::new("."), 0).is_err());
    }
}
