//! Packer's HCL2 function library.
//!
//! `can`, `try` and `convert` are not here: they need the unevaluated
//! expression (or a type expression) and are special forms of the evaluator
//! (`convert` converts with [`crate::value::convert`]).
//!
//! Each function is described by a [`Func`]: its parameters with their cty
//! types, and its implementation. [`call`] checks the number of arguments,
//! refuses nulls where cty does, and converts each argument to its
//! parameter's type the way HCL does before a cty function runs, so the
//! implementations receive values of the declared types.
//!
//! The functions are those of Packer's `hcl2template/functions.go` (current
//! Packer), one file per family as Packer's documentation groups them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use crate::value::{Number, Type, Value, convert_owned};

mod collection;
mod contextual;
mod conversion;
mod crypto;
mod datetime;
mod encoding;
mod filesystem;
mod format;
mod ipnet;
mod numeric;
#[cfg(test)]
mod packer_compat;
mod string;
mod yaml;

pub use conversion::hint_for_unknown_function;

/// Renders an HCL template (the text of a file, its path for errors)
/// with the given variables.
pub type RenderTemplate<'a> =
    dyn Fn(&str, &Path, &BTreeMap<String, Value>) -> Result<Value, String> + 'a;

/// What a function may know about the place it is called from.
pub struct FuncCtx<'a> {
    /// Directory relative paths of `file`, `fileexists`, `fileset` and
    /// `templatefile` resolve against. Packer passes the template's
    /// directory (`path.root`) here, not the working directory; `abspath`
    /// and `filebase64` resolve against the process's working directory,
    /// as in Packer.
    pub cwd: &'a Path,
    /// `env()` is allowed only in variable defaults.
    pub env_allowed: bool,
    /// Used by `templatefile`.
    pub render_template: &'a RenderTemplate<'a>,
}

/// A function call that failed.
///
/// `message` says which argument (1-based, with the parameter's name) and
/// why, but not the function's name, which callers put in front (as
/// ``call to function `substr` failed: ...``): it is in `function`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FuncError {
    pub message: String,
    /// The 0-based argument at fault, if one is.
    pub arg: Option<usize>,
    /// The function called.
    pub function: String,
}

/// Whether `name` is a function of the library (`can`/`try`/`convert` excluded).
pub fn is_function(name: &str) -> bool {
    lookup(name).is_some()
}

/// Every function name, sorted.
pub fn names() -> &'static [&'static str] {
    &NAMES
}

/// Call a function by name.
///
/// Errors name the argument (1-based in the message, 0-based in
/// [`FuncError::arg`]) and the reason, e.g.
/// ``"argument 2 (`offset`): value must be a whole number"``.
pub fn call(name: &str, args: Vec<Value>, ctx: &FuncCtx<'_>) -> Result<Value, FuncError> {
    let Some(func) = lookup(name) else {
        return Err(FuncError {
            message: conversion::unknown_function_message(name),
            arg: None,
            function: name.to_string(),
        });
    };
    let args = prepare_args(func, args)?;
    (func.imp)(args, ctx).map_err(|fail| func.error(fail))
}

// ---------------------------------------------------------------------------
// Function descriptions
// ---------------------------------------------------------------------------

/// The cty type of a parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum P {
    String,
    Number,
    Bool,
    /// cty's dynamic pseudo-type: the argument is passed as it is.
    Any,
    List(&'static P),
    Set(&'static P),
}

impl P {
    fn to_type(self) -> Type {
        match self {
            P::String => Type::String,
            P::Number => Type::Number,
            P::Bool => Type::Bool,
            P::Any => Type::Any,
            P::List(e) => Type::list(e.to_type()),
            P::Set(e) => Type::set(e.to_type()),
        }
    }
}

/// A parameter: its name (as cty names it, for messages), type, and
/// whether null is accepted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Param {
    pub name: &'static str,
    pub ty: P,
    pub allow_null: bool,
}

/// A parameter that refuses null.
pub(crate) const fn p(name: &'static str, ty: P) -> Param {
    Param {
        name,
        ty,
        allow_null: false,
    }
}

/// A parameter that accepts null.
pub(crate) const fn p_null(name: &'static str, ty: P) -> Param {
    Param {
        name,
        ty,
        allow_null: true,
    }
}

pub(crate) type Impl = fn(Vec<Value>, &FuncCtx<'_>) -> Result<Value, Fail>;

/// A function of the library.
pub(crate) struct Func {
    pub name: &'static str,
    pub params: &'static [Param],
    pub var_param: Option<Param>,
    pub imp: Impl,
}

/// Why an implementation failed; [`call`] adds the function's name.
#[derive(Debug)]
pub(crate) struct Fail {
    pub arg: Option<usize>,
    pub msg: String,
}

impl Fail {
    /// A failure of the call as a whole.
    pub fn call(msg: impl Into<String>) -> Fail {
        Fail {
            arg: None,
            msg: msg.into(),
        }
    }

    /// A failure blamed on argument `i` (0-based).
    pub fn arg(i: usize, msg: impl Into<String>) -> Fail {
        Fail {
            arg: Some(i),
            msg: msg.into(),
        }
    }
}

impl Func {
    fn param(&self, i: usize) -> Option<&Param> {
        self.params.get(i).or(self.var_param.as_ref())
    }

    fn error(&self, fail: Fail) -> FuncError {
        let message = match fail.arg.and_then(|i| self.param(i).map(|p| (i, p))) {
            Some((i, p)) => format!("argument {} (`{}`): {}", i + 1, p.name, fail.msg),
            None => fail.msg,
        };
        FuncError {
            message,
            arg: fail.arg,
            function: self.name.to_string(),
        }
    }

    fn signature(&self) -> String {
        let mut names: Vec<String> = self.params.iter().map(|p| p.name.to_string()).collect();
        if let Some(v) = &self.var_param {
            names.push(format!("{}...", v.name));
        }
        names.join(", ")
    }
}

/// Arity, nulls and argument conversion, as HCL does them before calling
/// a cty function.
fn prepare_args(func: &Func, mut args: Vec<Value>) -> Result<Vec<Value>, FuncError> {
    let want = func.params.len();
    let arity_error = |at_least: bool| FuncError {
        message: format!(
            "expected {}{} argument{} ({}), got {}",
            if at_least { "at least " } else { "" },
            want,
            if want == 1 { "" } else { "s" },
            func.signature(),
            args.len()
        ),
        arg: None,
        function: func.name.to_string(),
    };
    if func.var_param.is_none() && args.len() != want {
        return Err(arity_error(false));
    }
    if args.len() < want {
        return Err(arity_error(true));
    }
    for (i, arg) in args.iter_mut().enumerate() {
        let Some(param) = func.param(i) else { continue };
        if arg.is_null() {
            if param.allow_null {
                continue;
            }
            return Err(func.error(Fail::arg(i, "argument must not be null")));
        }
        let fits = matches!(
            (param.ty, &*arg),
            (P::Any, _)
                | (P::String, Value::String(_))
                | (P::Number, Value::Number(_))
                | (P::Bool, Value::Bool(_))
        );
        if !fits {
            let v = std::mem::replace(arg, Value::Null);
            *arg = convert_owned(v, &param.ty.to_type())
                .map_err(|e| func.error(Fail::arg(i, e.to_string())))?;
        }
    }
    Ok(args)
}

/// Every function of the library, sorted by name.
static TABLE: LazyLock<Vec<&'static Func>> = LazyLock::new(|| {
    let mut all: Vec<&'static Func> = [
        collection::FUNCS,
        contextual::FUNCS,
        crypto::FUNCS,
        datetime::FUNCS,
        encoding::FUNCS,
        filesystem::FUNCS,
        format::FUNCS,
        ipnet::FUNCS,
        numeric::FUNCS,
        string::FUNCS,
    ]
    .iter()
    .flat_map(|family| family.iter())
    .collect();
    all.sort_by_key(|f| f.name);
    all
});

static NAMES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| TABLE.iter().map(|f| f.name).collect());

fn lookup(name: &str) -> Option<&'static Func> {
    TABLE
        .binary_search_by(|f| f.name.cmp(name))
        .ok()
        .and_then(|i| TABLE.get(i).copied())
}

// ---------------------------------------------------------------------------
// Helpers for implementations: arguments arrive converted to their
// parameter's type, so these only guard against nulls where allowed.
// ---------------------------------------------------------------------------

/// The string argument `i`.
pub(crate) fn str_arg(args: &[Value], i: usize) -> Result<&str, Fail> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(Fail::arg(
            i,
            format!("string required, found {}", other.type_name()),
        )),
        None => Err(Fail::arg(i, "missing argument")),
    }
}

/// The string argument `i`, taken out of the arguments.
pub(crate) fn take_str(args: &mut [Value], i: usize) -> Result<String, Fail> {
    match args.get_mut(i) {
        Some(Value::String(s)) => Ok(std::mem::take(s)),
        Some(other) => Err(Fail::arg(
            i,
            format!("string required, found {}", other.type_name()),
        )),
        None => Err(Fail::arg(i, "missing argument")),
    }
}

/// The number argument `i`.
pub(crate) fn num_arg(args: &[Value], i: usize) -> Result<f64, Fail> {
    match args.get(i) {
        Some(Value::Number(n)) => Ok(n.0),
        Some(other) => Err(Fail::arg(
            i,
            format!("number required, found {}", other.type_name()),
        )),
        None => Err(Fail::arg(i, "missing argument")),
    }
}

/// The number argument `i` as a Go `int` (what cty's `gocty` demands).
pub(crate) fn int_arg(args: &[Value], i: usize) -> Result<i64, Fail> {
    let n = num_arg(args, i)?;
    Number(n).to_i64().ok_or_else(|| {
        Fail::arg(
            i,
            format!(
                "value must be a whole number, between {} and {}",
                i64::MIN,
                i64::MAX
            ),
        )
    })
}

/// The elements of a list/set/tuple argument `i`, taken out.
pub(crate) fn take_seq(args: &mut [Value], i: usize) -> Result<Vec<Value>, Fail> {
    match args.get_mut(i) {
        Some(Value::List(v) | Value::Set(v) | Value::Tuple(v)) => Ok(std::mem::take(v)),
        Some(other) => Err(Fail::arg(
            i,
            format!("list required, found {}", other.type_name()),
        )),
        None => Err(Fail::arg(i, "missing argument")),
    }
}

pub(crate) fn string_list(items: Vec<String>) -> Value {
    Value::List(items.into_iter().map(Value::String).collect())
}

pub(crate) fn num(n: f64) -> Value {
    Value::Number(Number(n))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Calling functions from the family tests.

    use super::*;

    pub fn no_template(_: &str, _: &Path, _: &BTreeMap<String, Value>) -> Result<Value, String> {
        Err("no templates in this test".into())
    }

    pub fn ctx_in(cwd: &Path) -> FuncCtx<'_> {
        FuncCtx {
            cwd,
            env_allowed: false,
            render_template: &no_template,
        }
    }

    /// Calls `name` with `args`, from the current directory.
    pub fn call_ok(name: &str, args: Vec<Value>) -> Value {
        let cwd = std::env::current_dir().unwrap();
        match call(name, args.clone(), &ctx_in(&cwd)) {
            Ok(v) => v,
            Err(e) => panic!("{name}({args:?}) failed: {e}"),
        }
    }

    /// Calls `name` with `args` and returns its error message, prefixed
    /// with the function's name.
    pub fn call_err(name: &str, args: Vec<Value>) -> String {
        let cwd = std::env::current_dir().unwrap();
        match call(name, args.clone(), &ctx_in(&cwd)) {
            Ok(v) => panic!("{name}({args:?}) should fail, gave {v:?}"),
            Err(e) => {
                assert_eq!(e.function, name);
                format!("`{}`: {}", e.function, e.message)
            }
        }
    }

    /// A value as cty converts it to a string (numbers as Packer prints them).
    pub fn shown(v: &Value) -> String {
        match v {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            other => other.to_json_string(),
        }
    }

    pub fn s(v: &str) -> Value {
        Value::string(v)
    }
    pub fn n(v: f64) -> Value {
        Value::number(v)
    }
    pub fn b(v: bool) -> Value {
        Value::Bool(v)
    }
    pub fn tup(items: Vec<Value>) -> Value {
        Value::Tuple(items)
    }
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(items)
    }
    pub fn strs(items: &[&str]) -> Value {
        Value::Tuple(items.iter().map(|x| s(x)).collect())
    }
    pub fn str_list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|x| s(x)).collect())
    }
    pub fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }
    pub fn map(pairs: &[(&str, Value)]) -> Value {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn names_are_sorted_unique_and_callable() {
        let names = names();
        assert!(names.len() >= 100, "only {} functions", names.len());
        for w in names.windows(2) {
            assert!(w[0] < w[1], "{} / {}", w[0], w[1]);
        }
        for name in names {
            assert!(is_function(name));
        }
        for special in ["can", "try", "convert"] {
            assert!(!is_function(special));
        }
    }

    #[test]
    fn arity_is_checked() {
        assert_eq!(
            call_err("upper", vec![]),
            "`upper`: expected 1 argument (str), got 0"
        );
        assert_eq!(
            call_err("substr", vec![s("a")]),
            "`substr`: expected 3 arguments (str, offset, length), got 1"
        );
        assert_eq!(
            call_err("join", vec![]),
            "`join`: expected at least 1 argument (separator, lists...), got 0"
        );
    }

    #[test]
    fn arguments_are_converted_and_nulls_refused() {
        assert_eq!(call_ok("upper", vec![n(5.0)]), s("5"));
        assert_eq!(call_ok("abs", vec![s("-3")]), n(3.0));
        assert_eq!(
            call_err("upper", vec![Value::Null]),
            "`upper`: argument 1 (`str`): argument must not be null"
        );
        assert_eq!(
            call_err("abs", vec![s("x")]),
            "`abs`: argument 1 (`num`): a number is required"
        );
        let e = call("upper", vec![tup(vec![])], &ctx_in(Path::new("/"))).unwrap_err();
        assert_eq!(e.arg, Some(0));
        assert_eq!(e.message, "argument 1 (`str`): string required");
    }

    #[test]
    fn unknown_functions_say_so() {
        assert_eq!(
            call_err("nosuch", vec![]),
            "`nosuch`: call to unknown function `nosuch`"
        );
        assert!(call_err("tostring", vec![s("a")]).contains("convert("));
    }
}
