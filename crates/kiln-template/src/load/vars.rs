//! Input variables: declarations, the ladder of values
//! (default < `PKR_VAR_` < auto var files < `-var-file` < `-var`), type
//! conversion and validation — as Packer's `types.variables.go`.

use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;

use super::files::Parsed;
use super::scope::{DefaultScope, ValidationScope};
use super::{Assignment, Diags, LoadOptions, OriginKind, VAR_ENV_PREFIX, Variable};
use crate::decode::did_you_mean;
use crate::diag::Diag;
use crate::eval::{Evaluator, Functions, NoRoots, refs, types};
use crate::source::SourceFile;
use crate::syntax::{SBlock, SExpr, SFile};
use crate::value::{Type, Value};

/// A validation rule, kept until the final value is known.
#[derive(Clone, Debug)]
pub(crate) struct Validation {
    pub file: Arc<SourceFile>,
    pub condition: SExpr,
    pub error_message: String,
    pub def_span: std::ops::Range<usize>,
}

pub(crate) fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// Evaluate a plain value (no names, no functions).
fn literal(file: &Arc<SourceFile>, e: &SExpr, diags: &mut Diags) -> Option<Value> {
    let ev = Evaluator::new(&NoRoots, Path::new("."), Functions::None);
    match ev.eval(&e.expr) {
        Ok(v) => Some(v),
        Err(err) => {
            diags.eval(file, e, err);
            None
        }
    }
}

fn literal_string(
    file: &Arc<SourceFile>,
    e: &SExpr,
    what: &str,
    diags: &mut Diags,
) -> Option<String> {
    match literal(file, e, diags)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => {
            diags.push(
                Diag::error(format!("incorrect `{what}` type"))
                    .at(file, e.span.clone())
                    .detail(format!(
                        "a string is required, found a {}",
                        other.type_name()
                    )),
            );
            None
        }
    }
}

fn literal_bool(file: &Arc<SourceFile>, e: &SExpr, what: &str, diags: &mut Diags) -> Option<bool> {
    match literal(file, e, diags)? {
        Value::Bool(b) => Some(b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        other => {
            diags.push(
                Diag::error(format!("incorrect `{what}` type"))
                    .at(file, e.span.clone())
                    .detail(format!("a bool is required, found a {}", other.type_name())),
            );
            None
        }
    }
}

pub(crate) struct Declared {
    pub vars: IndexMap<String, Variable>,
    pub validations: IndexMap<String, Vec<Validation>>,
    /// Every file read, to show snippets of spans found later.
    pub sources: Vec<Arc<SourceFile>>,
}

/// Collect `variable` blocks and `variables {}` attributes.
pub(crate) fn declare(files: &[SFile], cwd: &Path, diags: &mut Diags) -> Declared {
    let mut out = Declared {
        vars: IndexMap::new(),
        validations: IndexMap::new(),
        sources: Vec::new(),
    };
    for f in files {
        for b in f.body.blocks() {
            match b.kind.as_str() {
                "variable" if b.labels.len() == 1 => {
                    let name = &b.labels[0].0;
                    if let Some(prev) = out.vars.get(name) {
                        diags.push(duplicate(files, f, b.def_span.clone(), name, prev));
                        continue;
                    }
                    let (var, vals) = variable_block(f, b, cwd, diags);
                    out.validations.insert(name.clone(), vals);
                    out.vars.insert(name.clone(), var);
                }
                "variables" => {
                    for inner in b.body.blocks() {
                        diags.push(
                            Diag::error(format!("unexpected `{}` block", inner.kind))
                                .at(&f.src, inner.def_span.clone())
                                .detail("blocks are not allowed in a `variables` block"),
                        );
                    }
                    for a in b.body.attrs() {
                        if let Some(prev) = out.vars.get(&a.name) {
                            diags.push(duplicate(files, f, a.name_span.clone(), &a.name, prev));
                            continue;
                        }
                        let default = eval_default(f, &a.expr, diags);
                        let mut var = Variable {
                            name: a.name.clone(),
                            span: f.src.span(a.name_span.clone()),
                            declared_type: None,
                            optionals: None,
                            ty: None,
                            description: None,
                            sensitive: false,
                            history: Vec::new(),
                            failed: default.is_none(),
                        };
                        if let Some(v) = default {
                            var.ty = implied(&v);
                            var.history.push(default_assignment(f, &a.expr, v));
                        }
                        out.vars.insert(a.name.clone(), var);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn duplicate(
    files: &[SFile],
    f: &SFile,
    range: std::ops::Range<usize>,
    name: &str,
    prev: &Variable,
) -> Diag {
    let sources: Vec<Arc<SourceFile>> = files.iter().map(|f| f.src.clone()).collect();
    Diag::error(format!("duplicate variable `{name}`"))
        .at(&f.src, range)
        .label("declared again here")
        .detail(format!(
            "duplicate `{name}` variable definition found; it is first declared at {}",
            prev.span
        ))
        .related_span(&prev.span, &sources, "first declared here")
}

/// Packer gives an untyped variable the type of its default (unless the
/// default is an empty object or tuple).
fn implied(v: &Value) -> Option<Type> {
    match v {
        Value::Null => None,
        Value::Object(m) if m.is_empty() => None,
        Value::Tuple(t) if t.is_empty() => None,
        other => Some(types::implied_type(other)),
    }
}

fn default_assignment(f: &SFile, e: &SExpr, value: Value) -> Assignment {
    let span = f.src.span(e.span.clone());
    Assignment {
        kind: OriginKind::Default,
        file: Some(f.src.name.clone()),
        line: Some(span.line),
        span: Some(span),
        given_as: None,
        value,
    }
}

fn eval_default(f: &SFile, e: &SExpr, diags: &mut Diags) -> Option<Value> {
    let cwd = f.src.path.parent().unwrap_or(Path::new("."));
    let ev = Evaluator::new(&DefaultScope, cwd, Functions::EnvOnly).with_env(true);
    match ev.eval(&e.expr) {
        Ok(v) => Some(v),
        Err(err) => {
            diags.eval(&f.src, e, err);
            None
        }
    }
}

const VARIABLE_ATTRS: &[&str] = &["description", "default", "type", "sensitive"];

fn variable_block(
    f: &SFile,
    b: &SBlock,
    cwd: &Path,
    diags: &mut Diags,
) -> (Variable, Vec<Validation>) {
    let _ = cwd;
    let (name, name_span) = &b.labels[0];
    if !valid_identifier(name) {
        diags.push(
            Diag::error(format!("invalid variable name `{name}`"))
                .at(&f.src, name_span.clone())
                .detail("a name must start with a letter or underscore and may contain only letters, digits, underscores, and dashes"),
        );
    }
    let mut var = Variable {
        name: name.clone(),
        span: f.src.span(b.def_span.clone()),
        declared_type: None,
        optionals: None,
        ty: None,
        description: None,
        sensitive: false,
        history: Vec::new(),
        failed: false,
    };
    for a in b.body.attrs() {
        if !VARIABLE_ATTRS.contains(&a.name.as_str()) {
            diags.push(
                Diag::error(format!("unsupported argument `{}`", a.name))
                    .at(&f.src, a.name_span.clone())
                    .detail(format!(
                        "an argument named `{}` is not expected in a `variable` block",
                        a.name
                    ))
                    .help_opt(
                        did_you_mean(&a.name, VARIABLE_ATTRS)
                            .map(|s| format!("did you mean `{s}`?")),
                    ),
            );
        }
    }
    if let Some(a) = b.body.attr("type") {
        match types::parse_constraint(&a.expr.expr, true) {
            Ok(c) => {
                var.declared_type = Some(c.ty.clone());
                var.ty = Some(c.ty);
                var.optionals = c.optionals;
            }
            Err((r, m)) => {
                diags.push(
                    Diag::error("invalid type specification")
                        .at(&f.src, a.expr.range_of(r))
                        .detail(m),
                );
                var.failed = true;
            }
        }
    }
    if let Some(a) = b.body.attr("description") {
        var.description = literal_string(&f.src, &a.expr, "description", diags);
    }
    if let Some(a) = b.body.attr("sensitive") {
        var.sensitive = literal_bool(&f.src, &a.expr, "sensitive", diags).unwrap_or(false);
    }
    if let Some(a) = b.body.attr("default") {
        match eval_default(f, &a.expr, diags) {
            Some(mut v) => {
                if var.declared_type.is_some() {
                    match convert_for(&var, v.clone()) {
                        Ok(c) => v = c,
                        Err(m) => {
                            diags.push(
                                Diag::error(format!("invalid default value for variable `{name}`"))
                                    .at(&f.src, a.expr.span.clone())
                                    .detail(format!("this default value is not compatible with the variable's type constraint: {m}")),
                            );
                            var.failed = true;
                        }
                    }
                }
                if matches!(var.ty, None | Some(Type::Any))
                    && let Some(t) = implied(&v)
                {
                    var.ty = Some(t);
                }
                var.history.push(default_assignment(f, &a.expr, v));
            }
            None => var.failed = true,
        }
    }
    let mut validations = Vec::new();
    for inner in b.body.blocks() {
        if inner.kind != "validation" {
            diags.push(
                Diag::error(format!("unsupported block type `{}`", inner.kind))
                    .at(&f.src, inner.kind_span.clone())
                    .detail("only `validation` blocks are allowed in a `variable` block")
                    .help_opt(
                        did_you_mean(&inner.kind, &["validation"])
                            .map(|s| format!("did you mean `{s}`?")),
                    ),
            );
            continue;
        }
        if let Some(v) = validation_block(f, inner, name, diags) {
            validations.push(v);
        }
    }
    (var, validations)
}

fn looks_like_sentences(s: &str) -> bool {
    let s = s.trim();
    let (Some(first), Some(last)) = (s.chars().next(), s.chars().last()) else {
        return false;
    };
    if first.is_alphabetic() && !first.is_uppercase() {
        return false;
    }
    matches!(last, '.' | '?' | '!')
}

fn validation_block(f: &SFile, b: &SBlock, var: &str, diags: &mut Diags) -> Option<Validation> {
    for a in b.body.attrs() {
        if a.name != "condition" && a.name != "error_message" {
            diags.push(
                Diag::error(format!("unsupported argument `{}`", a.name))
                    .at(&f.src, a.name_span.clone())
                    .help_opt(
                        did_you_mean(&a.name, &["condition", "error_message"])
                            .map(|s| format!("did you mean `{s}`?")),
                    ),
            );
        }
    }
    let mut ok = true;
    let Some(cond) = b.body.attr("condition") else {
        diags.push(
            Diag::error("missing required argument `condition`")
                .at(&f.src, b.def_span.clone())
                .detail("a `validation` block needs a `condition` and an `error_message`"),
        );
        return None;
    };
    let mut good = 0;
    for r in refs::references(&cond.expr.expr) {
        if r.root == "var" && r.attr.as_deref() == Some(var) {
            good += 1;
            continue;
        }
        ok = false;
        diags.push(
            Diag::error("invalid reference in variable validation")
                .at(&f.src, cond.expr.range_of(r.range))
                .detail(format!(
                    "the condition for variable `{var}` can only refer to the variable itself, using `var.{var}`"
                )),
        );
    }
    if good == 0 && ok {
        ok = false;
        diags.push(
            Diag::error("invalid variable validation condition")
                .at(&f.src, cond.expr.span.clone())
                .detail(format!(
                    "the condition for variable `{var}` must refer to `var.{var}` in order to test incoming values"
                )),
        );
    }
    let message = match b.body.attr("error_message") {
        Some(a) => match literal_string(&f.src, &a.expr, "error_message", diags) {
            Some(m) if m.trim().is_empty() => {
                diags.push(
                    Diag::error("invalid validation error message")
                        .at(&f.src, a.expr.span.clone())
                        .detail("an empty string is not a valid nor useful error message"),
                );
                None
            }
            Some(m) if !looks_like_sentences(&m) => {
                diags.push(
                    Diag::error("invalid validation error message")
                        .at(&f.src, a.expr.span.clone())
                        .detail("validation error message must be at least one full sentence starting with an uppercase letter and ending with a period or question mark"),
                );
                None
            }
            other => other,
        },
        None => {
            diags.push(
                Diag::error("missing required argument `error_message`")
                    .at(&f.src, b.def_span.clone())
                    .detail("a `validation` block needs a `condition` and an `error_message`"),
            );
            None
        }
    };
    let message = message?;
    if !ok {
        return None;
    }
    Some(Validation {
        file: f.src.clone(),
        condition: cond.expr.clone(),
        error_message: message,
        def_span: b.def_span.clone(),
    })
}

/// Whether Packer takes a `-var`/`PKR_VAR_` value literally (string,
/// number, untyped or `any`) or parses it as an HCL expression.
fn takes_literal(ty: Option<&Type>) -> bool {
    matches!(ty, None | Some(Type::String | Type::Number | Type::Any))
}

/// Add every value offered: environment, var files, `-var`.
pub(crate) fn assign(decl: &mut Declared, parsed: &Parsed, opts: &LoadOptions, diags: &mut Diags) {
    let vars = &mut decl.vars;
    for (key, text) in &opts.env {
        let Some(name) = key.strip_prefix(VAR_ENV_PREFIX) else {
            continue;
        };
        let Some(var) = vars.get_mut(name) else {
            continue;
        };
        let given = format!("{VAR_ENV_PREFIX}{name}");
        offer_text(var, text, OriginKind::Env, given, diags);
    }
    for (f, kind) in &parsed.var_files {
        for b in f.body.blocks() {
            if b.kind == "variable" {
                let name = b.labels.first().map(|l| l.0.as_str()).unwrap_or("name");
                diags.push(
                    Diag::error("variable declaration in a var file")
                        .at(&f.src, b.def_span.clone())
                        .detail(format!(
                            "a var file assigns values to variables declared in `.pkr.hcl` files; it cannot declare new ones. To set `{name}` here, write `{name} = <value>`"
                        )),
                );
            } else {
                diags.push(
                    Diag::error(format!("unexpected `{}` block", b.kind))
                        .at(&f.src, b.def_span.clone())
                        .detail("blocks are not allowed in a var file"),
                );
            }
        }
        for a in f.body.attrs() {
            let Some(var) = vars.get_mut(&a.name) else {
                let span = f.src.span(a.name_span.clone());
                diags.push(
                    Diag::warning(format!("undefined variable `{}`", a.name))
                        .at(&f.src, a.name_span.clone())
                        .detail(format!(
                            "a `{}` variable was set in {} but was not found in known variables; to declare it, add a `variable \"{}\" {{}}` block to one of your `.pkr.hcl` files",
                            a.name, span, a.name
                        )),
                );
                continue;
            };
            let Some(value) = literal(&f.src, &a.expr, diags) else {
                var.failed = true;
                continue;
            };
            let span = f.src.span(a.span.clone());
            let value = match convert_for(var, value) {
                Ok(v) => v,
                Err(m) => {
                    diags.push(
                        Diag::error(format!("invalid value for variable `{}`", a.name))
                            .at(&f.src, a.expr.span.clone())
                            .detail(format!(
                                "the value for `{}` is not compatible with the variable's type constraint: {m}",
                                a.name
                            )),
                    );
                    var.failed = true;
                    continue;
                }
            };
            var.history.push(Assignment {
                kind: *kind,
                file: Some(f.src.name.clone()),
                line: Some(span.line),
                span: Some(span),
                given_as: None,
                value,
            });
        }
    }
    // Packer keeps `-var` in a map: the last one of a name wins.
    let mut cli: IndexMap<&str, &str> = IndexMap::new();
    for (k, v) in &opts.vars {
        cli.shift_remove(k.as_str());
        cli.insert(k, v);
    }
    for (name, text) in cli {
        let Some(var) = vars.get_mut(name) else {
            let names: Vec<&str> = vars.keys().map(String::as_str).collect();
            diags.push(
                Diag::error(format!("undefined -var variable `{name}`"))
                    .detail(format!(
                        "a `{name}` variable was passed on the command line but was not found in known variables; to declare it, add a `variable \"{name}\" {{}}` block to one of your `.pkr.hcl` files"
                    ))
                    .help_opt(did_you_mean(name, &names).map(|s| format!("did you mean `{s}`?"))),
            );
            continue;
        };
        let given = format!("-var {name}={text}");
        offer_text(var, text, OriginKind::Cli, given, diags);
    }
}

/// Convert a value to the variable's type, its `optional()` defaults
/// applied first (Packer 1.16: `applyTypeDefaults` before conversion, for
/// defaults, var files, `-var` and `PKR_VAR_`).
fn convert_for(var: &Variable, v: Value) -> Result<Value, String> {
    let v = match &var.optionals {
        Some(o) => o.apply(v),
        None => v,
    };
    match &var.ty {
        Some(t) => types::convert(&v, t),
        None => Ok(v),
    }
}

fn offer_text(var: &mut Variable, text: &str, kind: OriginKind, given: String, diags: &mut Diags) {
    let from = match kind {
        OriginKind::Env => format!("environment variable `{given}`"),
        _ => format!("`{given}`"),
    };
    let value = if takes_literal(var.ty.as_ref()) {
        Value::String(text.to_string())
    } else {
        let parsed = hcl_edit::parser::parse_expr(text)
            .map_err(|e| e.message().lines().next().unwrap_or("").to_string());
        let ev = Evaluator::new(&NoRoots, Path::new("."), Functions::None);
        match parsed.and_then(|e| ev.eval(&e).map_err(|e| e.detail.unwrap_or(e.summary))) {
            Ok(v) => v,
            Err(m) => {
                diags.push(
                    Diag::error(format!("invalid value for variable `{}`", var.name))
                        .detail(format!("the value given by {from} is not a valid HCL expression for a `{}`: {m}", var.type_string())),
                );
                var.failed = true;
                return;
            }
        }
    };
    let value = match convert_for(var, value) {
        Ok(v) => v,
        Err(m) => {
            diags.push(
                Diag::error(format!("invalid value for variable `{}`", var.name))
                    .detail(format!(
                        "the value given by {from} is not compatible with the variable's type constraint: {m}"
                    )),
            );
            var.failed = true;
            return;
        }
    };
    var.history.push(Assignment {
        kind,
        file: None,
        line: None,
        span: None,
        given_as: Some(given),
        value,
    });
}

/// Report unset variables and run validations on the final values.
pub(crate) fn finish(decl: &mut Declared, cwd: &Path, diags: &mut Diags) {
    for (name, var) in decl.vars.iter_mut() {
        if var.failed {
            continue;
        }
        let Some(assignment) = var.history.last() else {
            diags.push(
                Diag::error(format!("unset variable `{name}`"))
                    .at_span(var.span.clone())
                    .with_source_of(&var.span, &decl.sources)
                    .detail("a used variable must be set or have a default value")
                    .help(format!(
                        "set it with `-var {name}=...`, in a var file, with `{VAR_ENV_PREFIX}{name}`, or give it a `default`"
                    )),
            );
            var.failed = true;
            continue;
        };
        let Some(vals) = decl.validations.get(name) else {
            continue;
        };
        for v in vals {
            let scope = ValidationScope {
                name,
                value: &assignment.value,
            };
            let ev = Evaluator::new(&scope, cwd, Functions::All);
            let result = match ev.eval(&v.condition.expr) {
                Ok(r) => r,
                Err(e) => {
                    diags.eval(&v.file, &v.condition, e);
                    continue;
                }
            };
            let ok = match result {
                Value::Bool(b) => b,
                Value::String(s) if s == "true" || s == "false" => s == "true",
                Value::Null => {
                    diags.push(
                        Diag::error("invalid variable validation result")
                            .at(&v.file, v.condition.span.clone())
                            .detail("validation condition expression must return either true or false, not null"),
                    );
                    continue;
                }
                other => {
                    diags.push(
                        Diag::error("invalid variable validation result")
                            .at(&v.file, v.condition.span.clone())
                            .detail(format!("invalid validation condition result value: a bool is required, found a {}", other.type_name())),
                    );
                    continue;
                }
            };
            if !ok {
                let rule = v.file.span(v.def_span.clone());
                let d = Diag::error(format!(
                    "invalid value for variable `{name}` (from {})",
                    describe_origin(assignment)
                ))
                .detail(format!(
                    "{}\n\nThis was checked by the validation rule at {rule}.",
                    v.error_message
                ));
                let d = match &assignment.span {
                    Some(span) => d.at_span(span.clone()).with_source_of(span, &decl.sources),
                    None => d.at(&v.file, v.def_span.clone()),
                };
                diags.push(d.related(&v.file, v.def_span.clone(), "validation rule"));
            }
        }
    }
}

/// `the default`, `PKR_VAR_x`, `a.auto.pkrvars.hcl:3`, `-var x=1`.
pub fn describe_origin(a: &Assignment) -> String {
    match (&a.given_as, &a.file, a.line) {
        (Some(g), _, _) => format!("`{g}`"),
        (None, Some(f), Some(l)) if a.kind == OriginKind::Default => {
            format!("the default at {f}:{l}")
        }
        (None, Some(f), Some(l)) => format!("{f}:{l}"),
        _ => a.kind.as_str().to_string(),
    }
}
