//! The HCL2 expression evaluator, over hcl-edit's syntax tree.
//!
//! Names are resolved through [`Roots`] one attribute at a time
//! (`var.x` never builds the whole `var` object), so evaluation stays
//! linear in the size of a template. A value that touched a sensitive
//! variable or local taints the result ([`Evaluator::tainted`]).

pub mod ops;
pub mod refs;
pub mod template;
pub mod types;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use hcl_edit::Span as _;
use hcl_edit::expr::{Expression, ForExpr, FuncCall, ObjectKey, TraversalOperator};

use crate::decode::did_you_mean;
use crate::functions::{self, FuncCtx};
use crate::value::{Number, Value};
use ops::OpError;

/// An evaluation error. `range` is a byte range in the expression's file
/// (None: the whole expression).
#[derive(Clone, Debug, PartialEq)]
pub struct EvalError {
    pub range: Option<Range<usize>>,
    pub summary: String,
    pub detail: Option<String>,
    pub help: Option<String>,
}

impl EvalError {
    pub fn new(range: Option<Range<usize>>, summary: impl Into<String>) -> Self {
        EvalError {
            range,
            summary: summary.into(),
            detail: None,
            help: None,
        }
    }

    fn help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

pub type EvalResult = Result<Value, EvalError>;

/// Why a name could not be resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum Missing {
    /// No such root (`foo.x` where `foo` means nothing here).
    NoRoot,
    /// The root exists but has no such attribute.
    NoAttr { candidates: Vec<String> },
    /// The root is not allowed here, with an explanation.
    NotAllowed(String),
    /// The name exists but its value could not be computed (an error was
    /// already reported for it).
    Failed,
}

/// The names an expression can refer to: `var`, `local`, `path`,
/// `source`, `build`, … — each resolved lazily.
pub trait Roots {
    /// `root.name`, with whether it is sensitive.
    fn attr(&self, root: &str, name: &str) -> Result<(Value, bool), Missing>;
    /// The whole root object (used only for `var[...]` and the like).
    fn whole(&self, root: &str) -> Result<(Value, bool), Missing>;
    /// Root names, for "did you mean".
    fn root_names(&self) -> Vec<&str>;
}

/// No names at all (var files, `-var` values).
pub struct NoRoots;

impl Roots for NoRoots {
    fn attr(&self, _: &str, _: &str) -> Result<(Value, bool), Missing> {
        Err(Missing::NotAllowed("variables may not be used here".into()))
    }
    fn whole(&self, _: &str) -> Result<(Value, bool), Missing> {
        Err(Missing::NotAllowed("variables may not be used here".into()))
    }
    fn root_names(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// A fixed set of values (used by `templatefile`).
pub struct MapRoots<'a>(pub &'a BTreeMap<String, Value>);

impl Roots for MapRoots<'_> {
    fn attr(&self, root: &str, name: &str) -> Result<(Value, bool), Missing> {
        let v = self.0.get(root).ok_or(Missing::NoRoot)?;
        get_attr(v, name)
            .map(|v| (v, false))
            .map_err(|_| Missing::NoAttr {
                candidates: match v {
                    Value::Object(m) | Value::Map(m) => m.keys().cloned().collect(),
                    _ => Vec::new(),
                },
            })
    }
    fn whole(&self, root: &str) -> Result<(Value, bool), Missing> {
        self.0
            .get(root)
            .map(|v| (v.clone(), false))
            .ok_or(Missing::NoRoot)
    }
    fn root_names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Which functions a context may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Functions {
    /// None (var files and `-var` values are plain values).
    None,
    /// Every function of the library.
    All,
    /// Only `env()`: variable defaults, as Packer evaluates them.
    EnvOnly,
}

const MAX_DEPTH: usize = 200;

/// Evaluates expressions in one context.
pub struct Evaluator<'a> {
    roots: &'a dyn Roots,
    cwd: &'a Path,
    functions: Functions,
    env_allowed: bool,
    scopes: RefCell<Vec<(String, Value)>>,
    tainted: Cell<bool>,
    depth: Cell<usize>,
    template_depth: usize,
}

impl<'a> Evaluator<'a> {
    pub fn new(roots: &'a dyn Roots, cwd: &'a Path, functions: Functions) -> Self {
        Evaluator {
            roots,
            cwd,
            functions,
            env_allowed: false,
            scopes: RefCell::new(Vec::new()),
            tainted: Cell::new(false),
            depth: Cell::new(0),
            template_depth: 0,
        }
    }

    /// Allow `env()` (variable defaults only).
    pub fn with_env(mut self, allowed: bool) -> Self {
        self.env_allowed = allowed;
        self
    }

    /// Whether anything evaluated since the last [`Self::reset_taint`]
    /// read a sensitive value.
    pub fn tainted(&self) -> bool {
        self.tainted.get()
    }

    pub fn reset_taint(&self) {
        self.tainted.set(false);
    }

    /// Evaluate with `name` bound to `value` (an iterator of a `dynamic` block).
    pub fn bind<R>(&self, name: &str, value: Value, f: impl FnOnce(&Self) -> R) -> R {
        let mark = {
            let mut scopes = self.scopes.borrow_mut();
            let mark = scopes.len();
            scopes.push((name.to_string(), value));
            mark
        };
        let r = f(self);
        self.scopes.borrow_mut().truncate(mark);
        r
    }

    /// Evaluate an expression.
    pub fn eval(&self, expr: &Expression) -> EvalResult {
        let d = self.depth.get();
        if d > MAX_DEPTH {
            return Err(EvalError::new(expr.span(), "expression nested too deeply"));
        }
        self.depth.set(d + 1);
        let r = self.eval_inner(expr);
        self.depth.set(d);
        r
    }

    fn eval_inner(&self, expr: &Expression) -> EvalResult {
        match expr {
            Expression::Null(_) => Ok(Value::Null),
            Expression::Bool(b) => Ok(Value::Bool(*b.value())),
            Expression::Number(n) => Ok(Value::Number(Number(
                n.value().as_f64().unwrap_or(f64::NAN),
            ))),
            Expression::String(s) => Ok(Value::String(s.value().to_string())),
            Expression::Array(arr) => arr
                .iter()
                .map(|e| self.eval(e))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Tuple),
            Expression::Object(obj) => {
                let mut out = BTreeMap::new();
                for (k, v) in obj.iter() {
                    let key = match k {
                        ObjectKey::Ident(i) => i.value().to_string(),
                        ObjectKey::Expression(Expression::Variable(i)) => i.value().to_string(),
                        ObjectKey::Expression(e) => self.key_string(e)?,
                    };
                    out.insert(key, self.eval(v.expr())?);
                }
                Ok(Value::Object(out))
            }
            Expression::StringTemplate(t) => self.eval_template(t, expr.span()),
            Expression::HeredocTemplate(h) => self.eval_template(&h.template, expr.span()),
            Expression::Parenthesis(p) => self.eval(p.inner()),
            Expression::Variable(v) => self.variable(v.value().as_str(), expr.span()),
            Expression::Conditional(c) => {
                let cond = self.eval(&c.cond_expr)?;
                let b = match cond {
                    Value::Null => {
                        return Err(EvalError::new(
                            c.cond_expr.span(),
                            "the condition value is null",
                        )
                        .detail("conditions must either be true or false"));
                    }
                    other => ops::to_bool(&other).ok_or_else(|| {
                        EvalError::new(c.cond_expr.span(), "incorrect condition type")
                            .detail("the condition expression must be of type bool")
                    })?,
                };
                let (chosen, other) = if b {
                    (&c.true_expr, &c.false_expr)
                } else {
                    (&c.false_expr, &c.true_expr)
                };
                let v = self.eval(chosen)?;
                // Both results are unified to one type: a primitive result
                // becomes a string when the other side is one.
                if matches!(v, Value::Number(_) | Value::Bool(_)) {
                    let taint = self.tainted.get();
                    let o = self.eval(other);
                    self.tainted.set(taint);
                    if let Ok(Value::String(_)) = o {
                        return types::convert(&v, &crate::value::Type::String)
                            .map_err(|m| EvalError::new(chosen.span(), m));
                    }
                }
                Ok(v)
            }
            Expression::FuncCall(call) => self.call(call, expr.span()),
            Expression::Traversal(t) => self.traversal(&t.expr, &t.operators),
            Expression::UnaryOp(u) => {
                let v = self.eval(&u.expr)?;
                ops::unary(*u.operator.value(), &v).map_err(|m| {
                    EvalError::new(u.expr.span(), "invalid operand")
                        .detail(format!("unsuitable value for unary operand: {m}"))
                })
            }
            Expression::BinaryOp(b) => {
                let l = self.eval(&b.lhs_expr)?;
                let r = self.eval(&b.rhs_expr)?;
                ops::binary(*b.operator.value(), &l, &r).map_err(|e| match e {
                    OpError::Lhs(m) => EvalError::new(b.lhs_expr.span(), "invalid operand")
                        .detail(format!("unsuitable value for left operand: {m}")),
                    OpError::Rhs(m) => EvalError::new(b.rhs_expr.span(), "invalid operand")
                        .detail(format!("unsuitable value for right operand: {m}")),
                    OpError::Both(m) => EvalError::new(expr.span(), m),
                })
            }
            Expression::ForExpr(f) => self.for_expr(f, expr.span()),
        }
    }

    fn key_string(&self, e: &Expression) -> Result<String, EvalError> {
        match self.eval(e)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Null => Err(EvalError::new(e.span(), "object key is null")
                .detail("a null value cannot be used as an object key")),
            other => Err(
                EvalError::new(e.span(), "incorrect key type").detail(format!(
                    "can't use this value as a key: string required, found a {}",
                    other.type_name()
                )),
            ),
        }
    }

    fn scoped(&self, name: &str) -> Option<Value> {
        self.scopes
            .borrow()
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn missing(
        &self,
        m: Missing,
        root: &str,
        attr: Option<&str>,
        range: Option<Range<usize>>,
    ) -> EvalError {
        match m {
            Missing::NoRoot => {
                let mut names: Vec<String> = self
                    .roots
                    .root_names()
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                names.extend(self.scopes.borrow().iter().map(|(n, _)| n.clone()));
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                EvalError::new(range, format!("unknown variable `{root}`"))
                    .detail(format!("there is no variable named `{root}`"))
                    .help(did_you_mean(root, &refs).map(|s| format!("did you mean `{s}`?")))
            }
            Missing::NoAttr { candidates } => {
                let a = attr.unwrap_or("");
                let refs: Vec<&str> = candidates.iter().map(String::as_str).collect();
                let what = match root {
                    "var" => format!("an input variable named `{a}` is not declared"),
                    "local" => format!("a local named `{a}` is not declared"),
                    _ => format!("`{root}` has no attribute named `{a}`"),
                };
                let summary = match root {
                    "var" => format!("reference to undeclared input variable `var.{a}`"),
                    "local" => format!("reference to undeclared local value `local.{a}`"),
                    _ => format!("unsupported attribute `{root}.{a}`"),
                };
                EvalError::new(range, summary)
                    .detail(what)
                    .help(did_you_mean(a, &refs).map(|s| format!("did you mean `{root}.{s}`?")))
            }
            Missing::NotAllowed(why) => EvalError::new(range, why),
            Missing::Failed => EvalError::new(range, "__failed__"),
        }
    }

    fn variable(&self, name: &str, range: Option<Range<usize>>) -> EvalResult {
        if let Some(v) = self.scoped(name) {
            return Ok(v);
        }
        match self.roots.whole(name) {
            Ok((v, sensitive)) => {
                if sensitive {
                    self.tainted.set(true);
                }
                Ok(v)
            }
            Err(m) => Err(self.missing(m, name, None, range)),
        }
    }

    fn traversal(
        &self,
        base: &Expression,
        ops: &[hcl_edit::Decorated<TraversalOperator>],
    ) -> EvalResult {
        let mut rest = ops;
        let mut value = match (base, ops.first().map(|o| o.value())) {
            (Expression::Variable(root), Some(TraversalOperator::GetAttr(attr)))
                if self.scoped(root.value().as_str()).is_none() =>
            {
                let root_name = root.value().as_str();
                let attr_name = attr.value().as_str();
                rest = &ops[1..];
                let range = match (base.span(), attr.span()) {
                    (Some(a), Some(b)) => Some(a.start..b.end),
                    (a, _) => a,
                };
                match self.roots.attr(root_name, attr_name) {
                    Ok((v, sensitive)) => {
                        if sensitive {
                            self.tainted.set(true);
                        }
                        v
                    }
                    Err(m) => return Err(self.missing(m, root_name, Some(attr_name), range)),
                }
            }
            _ => self.eval(base)?,
        };
        let mut i = 0;
        while i < rest.len() {
            let op = &rest[i];
            match op.value() {
                TraversalOperator::GetAttr(name) => {
                    value = get_attr(&value, name.value().as_str())
                        .map_err(|m| EvalError::new(name.span(), m))?;
                }
                TraversalOperator::Index(e) => {
                    let key = self.eval(e)?;
                    value = index(&value, &key).map_err(|m| EvalError::new(e.span(), m))?;
                }
                TraversalOperator::LegacyIndex(n) => {
                    value = index(&value, &Value::Number(Number(*n.value() as f64)))
                        .map_err(|m| EvalError::new(n.span(), m))?;
                }
                TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_) => {
                    let full = matches!(op.value(), TraversalOperator::FullSplat(_));
                    let mut j = i + 1;
                    while j < rest.len() {
                        match rest[j].value() {
                            TraversalOperator::GetAttr(_) => j += 1,
                            TraversalOperator::Index(_) | TraversalOperator::LegacyIndex(_)
                                if full =>
                            {
                                j += 1
                            }
                            _ => break,
                        }
                    }
                    let inner = &rest[i + 1..j];
                    let (items, as_list) = match value {
                        Value::Null => (Vec::new(), false),
                        Value::List(items) | Value::Set(items) => (items, true),
                        Value::Tuple(items) => (items, false),
                        other => (vec![other], false),
                    };
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        out.push(self.apply_ops(item, inner)?);
                    }
                    value = if as_list {
                        Value::List(out)
                    } else {
                        Value::Tuple(out)
                    };
                    i = j;
                    continue;
                }
            }
            i += 1;
        }
        Ok(value)
    }

    fn apply_ops(
        &self,
        mut value: Value,
        ops: &[hcl_edit::Decorated<TraversalOperator>],
    ) -> EvalResult {
        for op in ops {
            value = match op.value() {
                TraversalOperator::GetAttr(name) => get_attr(&value, name.value().as_str())
                    .map_err(|m| EvalError::new(name.span(), m))?,
                TraversalOperator::Index(e) => {
                    let key = self.eval(e)?;
                    index(&value, &key).map_err(|m| EvalError::new(e.span(), m))?
                }
                TraversalOperator::LegacyIndex(n) => {
                    index(&value, &Value::Number(Number(*n.value() as f64)))
                        .map_err(|m| EvalError::new(n.span(), m))?
                }
                _ => value,
            };
        }
        Ok(value)
    }

    fn for_expr(&self, f: &ForExpr, range: Option<Range<usize>>) -> EvalResult {
        let coll = self.eval(&f.intro.collection_expr)?;
        let pairs: Vec<(Value, Value)> = match coll {
            Value::List(items) | Value::Tuple(items) | Value::Set(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::Number(Number(i as f64)), v))
                .collect(),
            Value::Map(m) | Value::Object(m) => {
                m.into_iter().map(|(k, v)| (Value::String(k), v)).collect()
            }
            Value::Null => {
                return Err(EvalError::new(
                    f.intro.collection_expr.span(),
                    "iteration over null value",
                )
                .detail("a null value cannot be used as the collection in a `for` expression"));
            }
            other => {
                return Err(EvalError::new(
                    f.intro.collection_expr.span(),
                    "iteration over non-iterable value",
                )
                .detail(format!(
                    "a value of type {} cannot be used as the collection in a `for` expression",
                    other.type_name()
                )));
            }
        };
        let key_var = f.intro.key_var.as_ref().map(|k| k.value().to_string());
        let value_var = f.intro.value_var.value().to_string();
        let mut list = Vec::new();
        let mut obj: BTreeMap<String, Value> = BTreeMap::new();
        let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (k, v) in pairs {
            let pushed = {
                let mut scopes = self.scopes.borrow_mut();
                let n = scopes.len();
                if let Some(kv) = &key_var {
                    scopes.push((kv.clone(), k));
                }
                scopes.push((value_var.clone(), v));
                n
            };
            let r = self.for_item(f, &mut list, &mut obj, &mut groups);
            self.scopes.borrow_mut().truncate(pushed);
            r?;
        }
        if f.key_expr.is_none() {
            Ok(Value::Tuple(list))
        } else if f.grouping {
            Ok(Value::Object(
                groups
                    .into_iter()
                    .map(|(k, v)| (k, Value::Tuple(v)))
                    .collect(),
            ))
        } else {
            let _ = range;
            Ok(Value::Object(obj))
        }
    }

    fn for_item(
        &self,
        f: &ForExpr,
        list: &mut Vec<Value>,
        obj: &mut BTreeMap<String, Value>,
        groups: &mut BTreeMap<String, Vec<Value>>,
    ) -> Result<(), EvalError> {
        if let Some(cond) = &f.cond {
            let c = self.eval(&cond.expr)?;
            match ops::to_bool(&c) {
                Some(true) => {}
                Some(false) => return Ok(()),
                None => {
                    return Err(EvalError::new(cond.expr.span(), "invalid `for` condition")
                        .detail("the `if` clause value must be a bool"));
                }
            }
        }
        match &f.key_expr {
            None => list.push(self.eval(&f.value_expr)?),
            Some(ke) => {
                let key = self.key_string(ke)?;
                let val = self.eval(&f.value_expr)?;
                if f.grouping {
                    groups.entry(key).or_default().push(val);
                } else {
                    match obj.entry(key) {
                        std::collections::btree_map::Entry::Occupied(o) => {
                            let key = o.key();
                            return Err(EvalError::new(ke.span(), "duplicate object key")
                                .detail(format!("two different items produced the key `{key}` in this `for` expression; if duplicates are expected, use the ellipsis (...) after the value expression to enable grouping by key")));
                        }
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert(val);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn call(&self, call: &FuncCall, range: Option<Range<usize>>) -> EvalResult {
        let name = call.name.name.value().as_str();
        let name_range = call.name.name.span().or(range.clone());
        if !call.name.namespace.is_empty() {
            return Err(
                EvalError::new(name_range, format!("unknown function `{name}`"))
                    .detail("namespaced functions are not supported by Packer templates"),
            );
        }
        if self.functions == Functions::None {
            return Err(EvalError::new(name_range, "function calls not allowed")
                .detail("functions may not be called here"));
        }
        if self.functions == Functions::EnvOnly && name != "env" {
            return Err(EvalError::new(name_range, format!("function `{name}` is not allowed here"))
                .detail("Packer evaluates variable defaults with only the `env` function; compute derived values in a `locals` block"));
        }
        let args: Vec<&Expression> = call.args.iter().collect();
        match name {
            "can" => {
                if args.len() != 1 {
                    return Err(arity(name_range, "can", 1, args.len()));
                }
                let taint = self.tainted.get();
                let ok = self.eval(args[0]).is_ok();
                self.tainted.set(taint);
                return Ok(Value::Bool(ok));
            }
            "try" => {
                if args.is_empty() {
                    return Err(EvalError::new(name_range, "not enough function arguments")
                        .detail("function `try` requires at least one argument"));
                }
                let mut first_err = None;
                for a in &args {
                    match self.eval(a) {
                        Ok(v) => return Ok(v),
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                let detail = first_err.map(|e| e.summary).unwrap_or_default();
                return Err(
                    EvalError::new(range, "error in function call").detail(format!(
                        "call to function `try` failed: no expression succeeded: {detail}"
                    )),
                );
            }
            "convert" => {
                if args.len() != 2 {
                    return Err(arity(name_range, "convert", 2, args.len()));
                }
                let v = self.eval(args[0])?;
                // hcl's `typeexpr.TypeConstraint`: `optional(T)` attributes
                // (missing ones become null), but no defaults.
                let t = types::parse_constraint(args[1], false).map_err(|(r, m)| {
                    EvalError::new(r.or(args[1].span()), "invalid type specification").detail(m)
                })?;
                return types::convert_constrained(&v, &t).map_err(|m| {
                    EvalError::new(args[0].span(), "invalid function argument")
                        .detail(format!("invalid value for \"value\" parameter: {m}"))
                });
            }
            _ => {}
        }
        if !functions::is_function(name) {
            let names = functions::names();
            let mut all: Vec<&str> = names.to_vec();
            all.extend(["can", "try", "convert"]);
            return Err(
                EvalError::new(name_range, format!("call to unknown function `{name}`"))
                    .detail(format!("there is no function named `{name}`"))
                    .help(did_you_mean(name, &all).map(|s| format!("did you mean `{s}`?"))),
            );
        }
        let mut values = Vec::with_capacity(args.len());
        for a in &args {
            values.push(self.eval(a)?);
        }
        if call.args.expand_final() {
            match values.pop() {
                Some(Value::List(items) | Value::Tuple(items) | Value::Set(items)) => {
                    values.extend(items)
                }
                Some(_) => {
                    return Err(EvalError::new(args.last().and_then(|a| a.span()), "invalid expanding argument value")
                        .detail("the expanding argument (indicated by ...) must be of a tuple, list, or set type"));
                }
                None => {}
            }
        }
        let cwd = self.cwd;
        let depth = self.template_depth;
        let render = move |text: &str, path: &Path, vars: &BTreeMap<String, Value>| {
            template::render_file(text, path, vars, cwd, depth + 1)
        };
        let ctx = FuncCtx {
            cwd: self.cwd,
            env_allowed: self.env_allowed,
            render_template: &render,
        };
        functions::call(name, values, &ctx).map_err(|e| {
            let r = e
                .arg
                .and_then(|i| args.get(i.min(args.len().saturating_sub(1))))
                .and_then(|a| a.span())
                .or(range.clone());
            EvalError::new(r, "error in function call")
                .detail(format!("call to function `{name}` failed: {}", e.message))
        })
    }
}

fn arity(range: Option<Range<usize>>, name: &str, want: usize, got: usize) -> EvalError {
    EvalError::new(
        range,
        if got < want {
            "not enough function arguments"
        } else {
            "too many function arguments"
        },
    )
    .detail(format!(
        "function `{name}` expects {want} argument(s), got {got}"
    ))
}

/// `value.name`.
pub fn get_attr(value: &Value, name: &str) -> Result<Value, String> {
    match value {
        Value::Object(m) => m
            .get(name)
            .cloned()
            .ok_or_else(|| format!("unsupported attribute: this object does not have an attribute named `{name}`")),
        Value::Map(m) => m
            .get(name)
            .cloned()
            .ok_or_else(|| format!("invalid index: the given key does not identify an element in this collection value (`{name}`)")),
        Value::Null => Err("attempt to get attribute from null value".into()),
        other => Err(format!("unsupported attribute: a {} value does not have any attributes", other.type_name())),
    }
}

/// `value[key]`.
pub fn index(value: &Value, key: &Value) -> Result<Value, String> {
    match value {
        Value::List(items) | Value::Tuple(items) => {
            let n = ops::to_number(key).ok_or_else(|| "invalid index: a number is required".to_string())?;
            if n.fract() != 0.0 || n < 0.0 {
                return Err("invalid index: the given key does not identify an element in this collection value: a whole number is required".into());
            }
            items.get(n as usize).cloned().ok_or_else(|| {
                "invalid index: the given key does not identify an element in this collection value: the given index is greater than or equal to the length of the collection".to_string()
            })
        }
        Value::Map(m) | Value::Object(m) => {
            let k = match key {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err("invalid index: a string key is required".into()),
            };
            m.get(&k)
                .cloned()
                .ok_or_else(|| format!("invalid index: the given key does not identify an element in this collection value (`{k}`)"))
        }
        Value::Set(_) => Err("invalid index: elements of a set are identified only by their value and don't have any separate index or key to select with".into()),
        Value::Null => Err("attempt to index null value".into()),
        other => Err(format!("invalid index: a {} value cannot be indexed", other.type_name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_with(src: &str, vars: &[(&str, Value)]) -> EvalResult {
        let map: BTreeMap<String, Value> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let roots = MapRoots(&map);
        let ev = Evaluator::new(&roots, Path::new("."), Functions::All);
        let body = hcl_edit::parser::parse_body(&format!("x = {src}\n")).unwrap();
        let attr = body.get_attribute("x").unwrap();
        ev.eval(&attr.value)
    }

    fn json(src: &str) -> String {
        let o = Value::Object(
            [
                ("a".to_string(), Value::String("x".into())),
                ("n".to_string(), Value::Number(Number(2.0))),
                (
                    "l".to_string(),
                    Value::Tuple(vec![
                        Value::Object([("id".to_string(), Value::Number(Number(1.0)))].into()),
                        Value::Object([("id".to_string(), Value::Number(Number(2.0)))].into()),
                    ]),
                ),
                (
                    "m".to_string(),
                    Value::Map([("k".to_string(), Value::String("v".into()))].into()),
                ),
            ]
            .into(),
        );
        match eval_with(src, &[("o", o)]) {
            Ok(v) => v.to_json().to_string(),
            Err(e) => format!("error: {} {}", e.summary, e.detail.unwrap_or_default()),
        }
    }

    #[test]
    fn literals_operators_and_conditionals() {
        assert_eq!(json("1 + 2 * 3"), "7");
        assert_eq!(json("\"5\" + 1"), "6");
        assert_eq!(json("7 % 3"), "1");
        assert_eq!(json("!true || false"), "false");
        assert_eq!(json("o.n > 1 ? \"big\" : \"small\""), "\"big\"");
        assert_eq!(json("true ? 1 : \"x\""), "\"1\"");
        assert_eq!(json("[1, \"a\"] == [1, \"a\"]"), "true");
        assert_eq!(json("-o.n"), "-2");
        assert!(json("1 / 0").starts_with("error"));
        assert!(json("\"a\" + 1").starts_with("error: invalid operand"));
    }

    #[test]
    fn templates_keep_values_and_go_placeholders() {
        assert_eq!(json("\"${o.n}\""), "2");
        assert_eq!(json("\"n=${o.n}\""), "\"n=2\"");
        assert_eq!(
            json("\"http://{{ .HTTPIP }}:{{ .HTTPPort }}/${o.a}\""),
            "\"http://{{ .HTTPIP }}:{{ .HTTPPort }}/x\""
        );
        assert_eq!(json("\"$${literal} %%{x}\""), "\"${literal} %{x}\"");
        assert_eq!(
            json("\"%{ if o.n == 2 }two%{ else }other%{ endif }\""),
            "\"two\""
        );
        assert_eq!(
            json("\"%{ for i, v in o.l }${i}:${v.id},%{ endfor }\""),
            "\"0:1,1:2,\""
        );
        assert_eq!(json("\"a  ${~ o.a ~}  b\""), "\"axb\"");
        assert!(json("\"x${o.l}\"").starts_with("error: invalid template interpolation value"));
    }

    #[test]
    fn heredocs_strip_indentation() {
        assert_eq!(
            json("<<-EOT\n    a\n      ${o.a}\n    EOT"),
            "\"a\\n  x\\n\""
        );
        assert_eq!(json("<<EOT\n  a\nEOT"), "\"  a\\n\"");
    }

    #[test]
    fn for_expressions_splats_and_indexes() {
        assert_eq!(json("[for v in o.l : v.id * 10 if v.id > 1]"), "[20]");
        assert_eq!(
            json("{for v in o.l : \"k${v.id}\" => v.id}"),
            "{\"k1\":1,\"k2\":2}"
        );
        assert_eq!(
            json("{for v in [\"a\", \"b\", \"a\"] : v => v...}"),
            "{\"a\":[\"a\",\"a\"],\"b\":[\"b\"]}"
        );
        assert!(
            json("{for v in [\"a\", \"a\"] : v => v}").starts_with("error: duplicate object key")
        );
        assert_eq!(json("o.l[*].id"), "[1,2]");
        assert_eq!(json("o.l.*.id"), "[1,2]");
        assert_eq!(json("o.l[1].id"), "2");
        assert_eq!(json("o.l.0.id"), "1");
        assert_eq!(json("o.m[\"k\"]"), "\"v\"");
        assert_eq!(json("o[\"a\"]"), "\"x\"");
        assert!(json("o.l[5]").starts_with("error: invalid index"));
        assert!(json("o.nope").starts_with("error: unsupported attribute"));
    }

    #[test]
    fn special_forms_need_the_unevaluated_expression() {
        assert_eq!(json("can(o.nope)"), "false");
        assert_eq!(json("can(o.a)"), "true");
        assert_eq!(json("try(o.nope, o.a)"), "\"x\"");
        assert!(json("try(o.nope, o.also)").starts_with("error: error in function call"));
        assert_eq!(json("convert([\"1\", 2], list(number))"), "[1,2]");
        assert!(json("convert(\"x\", number)").starts_with("error"));
    }

    #[test]
    fn unknown_names_suggest_the_closest() {
        let e = eval_with("oo.a", &[("o", Value::Null)]).unwrap_err();
        assert_eq!(e.summary, "unknown variable `oo`");
        assert_eq!(e.help.as_deref(), Some("did you mean `o`?"));
        let e = eval_with("uper(\"a\")", &[]).unwrap_err();
        assert!(e.summary.contains("unknown function"), "{e:?}");
    }
}
