//! Packer's HCL2 function library.
//!
//! `can`, `try` and `convert` are not here: they need the unevaluated
//! expression (or a type expression) and are special forms of the evaluator.

use std::collections::BTreeMap;
use std::path::Path;

use crate::value::Value;

/// Renders an HCL template (the text of a file, its path for errors)
/// with the given variables.
pub type RenderTemplate<'a> =
    dyn Fn(&str, &Path, &BTreeMap<String, Value>) -> Result<Value, String> + 'a;

/// What a function may know about the place it is called from.
pub struct FuncCtx<'a> {
    /// Directory relative paths of the filesystem functions resolve
    /// against (Packer: the current working directory).
    pub cwd: &'a Path,
    /// `env()` is allowed only in variable defaults.
    pub env_allowed: bool,
    /// Used by `templatefile`.
    pub render_template: &'a RenderTemplate<'a>,
}

/// A function call that failed; `arg` is the 0-based argument at fault.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FuncError {
    pub message: String,
    pub arg: Option<usize>,
}

/// Whether `name` is a function of the library (`can`/`try`/`convert` excluded).
pub fn is_function(name: &str) -> bool {
    names().contains(&name)
}

/// Every function name, sorted.
pub fn names() -> &'static [&'static str] {
    &[]
}

/// Call a function by name.
pub fn call(name: &str, _args: Vec<Value>, _ctx: &FuncCtx<'_>) -> Result<Value, FuncError> {
    Err(FuncError {
        message: format!("call to unknown function `{name}`"),
        arg: None,
    })
}
