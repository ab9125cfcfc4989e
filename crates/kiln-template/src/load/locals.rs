//! Locals: `locals {}` attributes and `local "name" {}` blocks from every
//! file, evaluated once each in dependency order. Duplicates and cycles are
//! errors naming every place involved (current Packer; 1.6.6 accepted
//! duplicate locals).

use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;

use super::scope::Scope;
use super::{Diags, Local, Variable};
use crate::decode::did_you_mean;
use crate::diag::Diag;
use crate::eval::{Evaluator, Functions, NoRoots, refs};
use crate::source::SourceFile;
use crate::syntax::{SExpr, SFile};
use crate::value::Value;

struct Decl {
    name: String,
    file: Arc<SourceFile>,
    name_span: std::ops::Range<usize>,
    expr: SExpr,
    sensitive: bool,
}

fn collect(files: &[SFile], diags: &mut Diags) -> Vec<Decl> {
    let mut out: Vec<Decl> = Vec::new();
    let mut index: IndexMap<String, usize> = IndexMap::new();
    let mut add = |d: Decl, out: &mut Vec<Decl>, diags: &mut Diags| {
        if let Some(&i) = index.get(&d.name) {
            let prev = &out[i];
            let prev_span = prev.file.span(prev.name_span.clone());
            diags.push(
                Diag::error(format!("duplicate local `{}`", d.name))
                    .at(&d.file, d.name_span.clone())
                    .label("defined again here")
                    .detail(format!(
                        "local `{}` is defined twice; the other definition is at {prev_span}",
                        d.name
                    ))
                    .related(&prev.file, prev.name_span.clone(), "first defined here"),
            );
            return;
        }
        index.insert(d.name.clone(), out.len());
        out.push(d);
    };
    for f in files {
        for b in f.body.blocks() {
            match b.kind.as_str() {
                "locals" => {
                    for inner in b.body.blocks() {
                        diags.push(
                            Diag::error(format!("unexpected `{}` block", inner.kind))
                                .at(&f.src, inner.def_span.clone())
                                .detail("blocks are not allowed in a `locals` block"),
                        );
                    }
                    for a in b.body.attrs() {
                        add(
                            Decl {
                                name: a.name.clone(),
                                file: f.src.clone(),
                                name_span: a.name_span.clone(),
                                expr: a.expr.clone(),
                                sensitive: false,
                            },
                            &mut out,
                            diags,
                        );
                    }
                }
                "local" if b.labels.len() == 1 => {
                    let (name, name_span) = &b.labels[0];
                    for a in b.body.attrs() {
                        if a.name != "expression" && a.name != "sensitive" {
                            diags.push(
                                Diag::error(format!("unsupported argument `{}`", a.name))
                                    .at(&f.src, a.name_span.clone())
                                    .help_opt(
                                        did_you_mean(&a.name, &["expression", "sensitive"])
                                            .map(|s| format!("did you mean `{s}`?")),
                                    ),
                            );
                        }
                    }
                    let sensitive = match b.body.attr("sensitive") {
                        Some(a) => {
                            let ev = Evaluator::new(&NoRoots, Path::new("."), Functions::None);
                            match ev.eval(&a.expr.expr) {
                                Ok(Value::Bool(b)) => b,
                                Ok(_) => {
                                    diags.push(
                                        Diag::error("incorrect `sensitive` type")
                                            .at(&f.src, a.expr.span.clone())
                                            .detail("a bool is required"),
                                    );
                                    false
                                }
                                Err(e) => {
                                    diags.eval(&f.src, &a.expr, e);
                                    false
                                }
                            }
                        }
                        None => false,
                    };
                    let Some(expr) = b.body.attr("expression") else {
                        diags.push(
                            Diag::error("missing required argument `expression`")
                                .at(&f.src, b.def_span.clone())
                                .detail(format!(
                                    "the `local \"{name}\"` block needs an `expression`"
                                )),
                        );
                        continue;
                    };
                    add(
                        Decl {
                            name: name.clone(),
                            file: f.src.clone(),
                            name_span: name_span.clone(),
                            expr: expr.expr.clone(),
                            sensitive,
                        },
                        &mut out,
                        diags,
                    );
                }
                _ => {}
            }
        }
    }
    out
}

/// Dependency order (post-order DFS, iterative); nodes on a cycle are
/// reported and left out.
fn order(decls: &[Decl], diags: &mut Diags) -> (Vec<usize>, Vec<bool>) {
    let index: IndexMap<&str, usize> = decls
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = decls
        .iter()
        .map(|d| {
            let mut v: Vec<usize> = refs::references(&d.expr.expr)
                .into_iter()
                .filter(|r| r.root == "local")
                .filter_map(|r| r.attr.and_then(|a| index.get(a.as_str()).copied()))
                .collect();
            v.dedup();
            v
        })
        .collect();
    let n = decls.len();
    let mut state = vec![0u8; n];
    let mut in_cycle = vec![false; n];
    let mut out = Vec::with_capacity(n);
    for start in 0..n {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(top) = stack.last_mut() {
            let (node, i) = *top;
            if i < deps[node].len() {
                top.1 += 1;
                let d = deps[node][i];
                match state[d] {
                    0 => {
                        state[d] = 1;
                        stack.push((d, 0));
                    }
                    1 => {
                        let pos = stack.iter().position(|(x, _)| *x == d).unwrap_or(0);
                        let cycle: Vec<usize> = stack[pos..].iter().map(|(x, _)| *x).collect();
                        if cycle.iter().all(|c| !in_cycle[*c]) {
                            report_cycle(decls, &cycle, diags);
                        }
                        cycle.iter().for_each(|c| in_cycle[*c] = true);
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                out.push(node);
                stack.pop();
            }
        }
    }
    (out, in_cycle)
}

fn report_cycle(decls: &[Decl], cycle: &[usize], diags: &mut Diags) {
    let Some(&first) = cycle.first() else {
        return;
    };
    let mut path: Vec<String> = cycle
        .iter()
        .map(|&i| format!("local.{}", decls[i].name))
        .collect();
    path.push(format!("local.{}", decls[first].name));
    let d0 = &decls[first];
    let mut d = Diag::error(format!("cycle between locals: {}", path.join(" → ")))
        .at(&d0.file, d0.name_span.clone())
        .detail("locals may refer to each other, but not in a loop");
    for &i in &cycle[1..] {
        let di = &decls[i];
        d = d.related(
            &di.file,
            di.name_span.clone(),
            format!("`local.{}` is part of the cycle", di.name),
        );
    }
    diags.push(d);
}

/// Evaluate every local.
pub(crate) fn evaluate(
    files: &[SFile],
    vars: &IndexMap<String, Variable>,
    path: &Value,
    cwd: &Path,
    diags: &mut Diags,
) -> IndexMap<String, Local> {
    let decls = collect(files, diags);
    let (order, in_cycle) = order(&decls, diags);
    let names: Vec<String> = decls.iter().map(|d| d.name.clone()).collect();
    let mut done: IndexMap<String, Local> = IndexMap::with_capacity(decls.len());
    for i in order {
        let d = &decls[i];
        let value = if in_cycle[i] {
            None
        } else {
            let scope = Scope {
                vars,
                locals: Some(&done),
                declared_locals: &names,
                path,
                source: None,
                build: None,
            };
            let ev = Evaluator::new(&scope, cwd, Functions::All);
            let r = ev.eval(&d.expr.expr);
            let tainted = ev.tainted();
            match r {
                Ok(v) => Some((v, tainted)),
                Err(e) => {
                    diags.eval(&d.file, &d.expr, e);
                    None
                }
            }
        };
        let (value, tainted) = match value {
            Some((v, t)) => (Some(v), t),
            None => (None, false),
        };
        done.insert(
            d.name.clone(),
            Local {
                name: d.name.clone(),
                span: d.file.span(d.name_span.clone()),
                value,
                sensitive: d.sensitive || tainted,
            },
        );
    }
    // Declaration order for callers.
    let mut out = IndexMap::with_capacity(done.len());
    for d in &decls {
        if let Some(l) = done.swap_remove(&d.name) {
            out.insert(d.name.clone(), l);
        }
    }
    out
}
