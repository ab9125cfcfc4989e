//! Loading a template as Packer does: find the files, parse them, collect
//! variables with their provenance, evaluate locals in dependency order,
//! and evaluate each selected build's blocks.
//!
//! ```
//! use kiln_template::load::{LoadOptions, load_from_memory};
//!
//! let template = r#"
//! variable "series" {
//!   default = "jammy"
//! }
//! variable "password" {
//!   default   = "s3cret"
//!   sensitive = true
//! }
//! source "qemu" "cloudimg" {
//!   iso_url      = "https://example.invalid/${var.series}.img"
//!   ssh_password = var.password
//! }
//! build {
//!   name    = "ubuntu"
//!   sources = ["source.qemu.cloudimg"]
//!   provisioner "shell" {
//!     inline = ["echo ${source.name}"]
//!   }
//! }
//! "#;
//! let mut opts = LoadOptions::default();
//! opts.vars.push(("series".into(), "noble".into())); // -var series=noble
//! let loaded = load_from_memory(&[("t.pkr.hcl".into(), template.into())], &[], &opts)
//!     .map_err(|f| f.errors)
//!     .unwrap();
//!
//! let series = &loaded.variables["series"];
//! assert_eq!(series.history.len(), 2); // the default, then -var
//! assert_eq!(series.origin().unwrap().kind.as_str(), "cli");
//!
//! let build = &loaded.builds[0];
//! assert_eq!(build.name, "ubuntu.qemu.cloudimg");
//! let source = &build.source.body; // typed decoding: crate::decode::Decoder
//! assert!(source.attrs["ssh_password"].sensitive);
//! assert_eq!(loaded.sensitive_values(), ["s3cret"]);
//! assert_eq!(build.provisioners[0].kind, "shell");
//! ```

mod builds;
mod files;
mod filter;
pub mod input;
mod locals;
mod scope;
mod vars;
pub mod version;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use crate::body::Body;
use crate::diag::Diag;
use crate::eval::{EvalError, refs, types};
use crate::source::SourceFile;
use crate::span::Span;
use crate::syntax::{SAttr, SBody, SExpr, SFile, SItem};
use crate::value::{Type, Value};

pub use builds::{POST_PROCESSOR_COMMON, PROVISIONER_COMMON};
pub use filter::BuildFilter;
pub use vars::describe_origin;
pub use version::PACKER_COMPAT_VERSION;

/// Environment variable prefix Packer reads variable values from.
pub const VAR_ENV_PREFIX: &str = "PKR_VAR_";

/// What to load and with which variable inputs.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// A directory or a single `*.pkr.hcl` / `*.pkr.json` file.
    pub path: PathBuf,
    /// `-var-file` arguments, in command-line order.
    pub var_files: Vec<PathBuf>,
    /// `-var name=value` arguments, in command-line order.
    pub vars: Vec<(String, String)>,
    /// The process environment (only `PKR_VAR_*` entries are used).
    pub env: Vec<(String, String)>,
    /// `-only` globs.
    pub only: Vec<String>,
    /// `-except` globs.
    pub except: Vec<String>,
    /// The working directory (`path.cwd`, relative paths of functions).
    pub cwd: PathBuf,
    /// `--ignore-version-constraint`: an unmet `required_version` is a
    /// warning instead of an error.
    pub ignore_version_constraint: bool,
}

impl LoadOptions {
    /// Options for `path` in this process's directory. No `PKR_VAR_*`
    /// values: the caller passes the environment it resolved in `env`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LoadOptions {
            path: path.into(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            ..LoadOptions::default()
        }
    }
}

/// Where a variable's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OriginKind {
    Default,
    Env,
    AutoVarFile,
    VarFile,
    Cli,
}

impl OriginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OriginKind::Default => "default",
            OriginKind::Env => "env",
            OriginKind::AutoVarFile => "auto-var-file",
            OriginKind::VarFile => "var-file",
            OriginKind::Cli => "cli",
        }
    }
}

/// One value offered for a variable.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    pub kind: OriginKind,
    /// The file (relative to the template directory), for defaults and var files.
    pub file: Option<Arc<str>>,
    pub line: Option<u32>,
    pub span: Option<Span>,
    /// How it was given outside files: `PKR_VAR_name`, `-var name=...`.
    pub given_as: Option<String>,
    pub value: Value,
}

/// An input variable with its whole ladder of values.
#[derive(Clone, Debug)]
pub struct Variable {
    pub name: String,
    /// The `variable` block (or the attribute in a `variables` block).
    pub span: Span,
    pub declared_type: Option<Type>,
    /// The `optional()` attributes of the declared type, with their
    /// defaults: applied to every value before it is converted.
    pub optionals: Option<types::Optionals>,
    /// The type values are converted to: declared, or implied by the default.
    pub ty: Option<Type>,
    pub description: Option<String>,
    pub sensitive: bool,
    /// Every value offered, lowest precedence first; the last one wins.
    pub history: Vec<Assignment>,
    pub(crate) failed: bool,
}

impl Variable {
    /// The winning assignment.
    pub fn origin(&self) -> Option<&Assignment> {
        self.history.last()
    }

    /// The value in effect.
    pub fn value(&self) -> Option<&Value> {
        self.history.last().map(|a| &a.value)
    }

    /// The type as written in HCL (`string`, `list(string)`), or the type
    /// implied by the value for an untyped variable.
    pub fn type_string(&self) -> String {
        match (&self.declared_type, &self.ty) {
            (Some(t), _) => types::constraint_string(t, self.optionals.as_ref()),
            (None, Some(t)) => types::type_string(t),
            (None, None) => "any".into(),
        }
    }
}

/// A local value.
#[derive(Clone, Debug)]
pub struct Local {
    pub name: String,
    pub span: Span,
    pub value: Option<Value>,
    /// Declared sensitive (`local` block) or derived from a sensitive value.
    pub sensitive: bool,
}

/// A `source` as used by one build, with the build's overrides merged in.
#[derive(Clone, Debug)]
pub struct Source {
    /// The builder type (`qemu`).
    pub kind: String,
    /// The name in this build (the `name` override, or the source's name).
    pub name: String,
    /// The name of the top-level source block.
    pub source_name: String,
    pub body: Body,
    pub span: Span,
}

/// A `provisioner` (or `error-cleanup-provisioner`) block.
#[derive(Clone, Debug)]
pub struct Provisioner {
    pub kind: String,
    pub name: Option<String>,
    pub only: Vec<String>,
    pub except: Vec<String>,
    pub pause_before: Option<Duration>,
    pub max_retries: u32,
    pub timeout: Option<Duration>,
    /// `continue_on_error` (Packer 1.16): a failure, once every retry is
    /// spent, is logged and the build goes on.
    pub continue_on_error: bool,
    pub override_: Option<Value>,
    /// The provisioner's own fields, evaluated for this build.
    pub body: Body,
    pub span: Span,
}

/// A `post-processor` block.
#[derive(Clone, Debug)]
pub struct PostProcessor {
    pub kind: String,
    pub name: Option<String>,
    pub only: Vec<String>,
    pub except: Vec<String>,
    pub keep_input_artifact: Option<bool>,
    pub body: Body,
    pub span: Span,
}

/// One build: a source of a `build` block.
#[derive(Clone, Debug)]
pub struct Build {
    /// `<build.name>.<type>.<name>`, or `<type>.<name>` for an unnamed build.
    pub name: String,
    pub build_name: Option<String>,
    pub description: Option<String>,
    pub source: Source,
    pub provisioners: Vec<Provisioner>,
    pub error_cleanup_provisioner: Option<Provisioner>,
    /// Chains of post-processors; each chain runs on the build's artifact.
    pub post_processors: Vec<Vec<PostProcessor>>,
    pub span: Span,
}

/// A plugin named in `required_plugins`.
#[derive(Clone, Debug, PartialEq)]
pub struct RequiredPlugin {
    pub name: String,
    pub source: Option<String>,
    pub version: Option<String>,
    pub span: Span,
}

/// A loaded template.
#[derive(Debug)]
pub struct Loaded {
    /// The template directory (`path.root`).
    pub root: PathBuf,
    /// The working directory (`path.cwd`; relative paths of builders).
    pub cwd: PathBuf,
    /// Every file read, in load order.
    pub files: Vec<Arc<SourceFile>>,
    /// Input variables, in declaration order.
    pub variables: IndexMap<String, Variable>,
    /// Locals, in declaration order.
    pub locals: IndexMap<String, Local>,
    /// The selected builds, in template order.
    pub builds: Vec<Build>,
    /// Names of every build before `-only`/`-except`.
    pub all_build_names: Vec<String>,
    /// `required_version` constraints, checked against [`PACKER_COMPAT_VERSION`].
    pub required_versions: Vec<String>,
    pub required_plugins: Vec<RequiredPlugin>,
    pub warnings: Vec<Diag>,
    sensitive: BTreeSet<String>,
    /// The parsed template files, to answer what an attribute reads.
    templates: Vec<SFile>,
}

impl Loaded {
    /// Every sensitive string of this run (values of sensitive variables and
    /// locals), for the redactor and the leak scan. Longest first.
    pub fn sensitive_values(&self) -> Vec<String> {
        let mut v: Vec<String> = self.sensitive.iter().cloned().collect();
        v.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        v
    }

    /// The file a span points into.
    pub fn file(&self, name: &str) -> Option<&Arc<SourceFile>> {
        self.files.iter().find(|f| &*f.name == name)
    }

    /// The input variables that the attribute whose name is written at
    /// `attribute` (an [`Attribute::span`](crate::body::Attribute::span))
    /// names, as `var.NAME`, each once in the order written. With
    /// [`Variable::origin`] and [`describe_origin`] this says where a value
    /// was set: `memory = var.memory` → `big.auto.pkrvars.hcl:1`.
    pub fn variables_read_at(&self, attribute: &Span) -> Vec<&Variable> {
        let Some(file) = self.templates.iter().find(|f| f.src.name == attribute.file) else {
            return Vec::new();
        };
        let Some(attr) = find_attr(&file.body, attribute.bytes.start) else {
            return Vec::new();
        };
        let mut names: Vec<String> = Vec::new();
        for r in refs::references(&attr.expr.expr) {
            if r.root == "var"
                && let Some(name) = r.attr
                && !names.contains(&name)
            {
                names.push(name);
            }
        }
        names.iter().filter_map(|n| self.variables.get(n)).collect()
    }
}

/// The attribute whose name starts at byte `at`, in `body` or its blocks.
fn find_attr(body: &SBody, at: usize) -> Option<&SAttr> {
    body.items.iter().find_map(|item| match item {
        SItem::Attr(a) if a.name_span.start == at => Some(a),
        SItem::Attr(_) => None,
        SItem::Block(b) => find_attr(&b.body, at),
    })
}

/// A template that could not be loaded: every error found, and the warnings.
#[derive(Debug, thiserror::Error)]
#[error("the template has {} error(s)", errors.len())]
pub struct LoadFailure {
    pub errors: Vec<Diag>,
    pub warnings: Vec<Diag>,
    /// The variables as far as they could be resolved (for `vars explain`
    /// on a template that does not load).
    pub variables: IndexMap<String, Variable>,
}

/// Collected diagnostics of a run.
#[derive(Default)]
pub(crate) struct Diags {
    pub errors: Vec<Diag>,
    pub warnings: Vec<Diag>,
}

impl Diags {
    pub fn push(&mut self, d: Diag) {
        if d.is_error() {
            self.errors.push(d);
        } else {
            self.warnings.push(d);
        }
    }

    /// An evaluation error as a diagnostic at its place; errors that only
    /// repeat an earlier one (a failed variable or local) are dropped.
    pub fn eval(&mut self, file: &Arc<SourceFile>, expr: &SExpr, e: EvalError) {
        if let Some(d) = eval_diag(file, expr, e) {
            self.push(d);
        }
    }
}

pub(crate) fn eval_diag(file: &Arc<SourceFile>, expr: &SExpr, e: EvalError) -> Option<Diag> {
    if e.summary == "__failed__" {
        return None;
    }
    let range = expr.range_of(e.range);
    let mut d = Diag::error(e.summary).at(file, range);
    if let Some(detail) = e.detail {
        d = d.detail(detail);
    }
    Some(d.help_opt(e.help))
}

/// Load a template with Packer's rules. Every error found is reported.
pub fn load(opts: &LoadOptions) -> Result<Loaded, LoadFailure> {
    let mut diags = Diags::default();
    let found = match files::discover(&opts.path, &opts.var_files) {
        Ok(f) => f,
        Err(d) => {
            return Err(LoadFailure {
                errors: d,
                warnings: Vec::new(),
                variables: IndexMap::new(),
            });
        }
    };
    let parsed = files::parse_all(&found, &mut diags);
    evaluate(parsed, found.root, opts, diags)
}

/// What `kiln init` reads: the `packer {}` blocks only (no variables are
/// evaluated, as `packer init` needs none).
#[derive(Debug)]
pub struct PackerBlocks {
    /// `required_version` constraints that the followed Packer version meets.
    pub required_versions: Vec<String>,
    /// `required_plugins` entries.
    pub required_plugins: Vec<RequiredPlugin>,
    /// Warnings (an ignored version constraint).
    pub warnings: Vec<Diag>,
}

/// Read the `packer {}` blocks of the templates at `opts.path`.
pub fn packer_blocks(opts: &LoadOptions) -> Result<PackerBlocks, LoadFailure> {
    let failure = |d: Diags| LoadFailure {
        errors: d.errors,
        warnings: d.warnings,
        variables: IndexMap::new(),
    };
    let mut diags = Diags::default();
    let found = match files::discover(&opts.path, &[]) {
        Ok(f) => f,
        Err(errors) => {
            return Err(LoadFailure {
                errors,
                warnings: Vec::new(),
                variables: IndexMap::new(),
            });
        }
    };
    let parsed = files::parse_all(&found, &mut diags);
    if !diags.errors.is_empty() {
        return Err(failure(diags));
    }
    let required_versions = version::check_packer_blocks(
        &parsed.templates,
        opts.ignore_version_constraint,
        &mut diags,
    );
    let required_plugins = version::required_plugins(&parsed.templates, &mut diags);
    if !diags.errors.is_empty() {
        return Err(failure(diags));
    }
    Ok(PackerBlocks {
        required_versions,
        required_plugins,
        warnings: diags.warnings,
    })
}

/// Load templates and var files given as `(name, text)` pairs, in that
/// order (for fuzzing and tests). `opts.path` is `path.root`; its
/// `var_files` are ignored.
pub fn load_from_memory(
    templates: &[(String, String)],
    var_files: &[(String, String)],
    opts: &LoadOptions,
) -> Result<Loaded, LoadFailure> {
    let mut diags = Diags::default();
    let parsed = files::parse_texts(templates, var_files, &mut diags);
    evaluate(parsed, opts.path.clone(), opts, diags)
}

fn evaluate(
    parsed: files::Parsed,
    root: PathBuf,
    opts: &LoadOptions,
    mut diags: Diags,
) -> Result<Loaded, LoadFailure> {
    if !diags.errors.is_empty() {
        return Err(LoadFailure {
            errors: diags.errors,
            warnings: diags.warnings,
            variables: IndexMap::new(),
        });
    }
    let cwd = opts.cwd.clone();
    // Packer resolves the paths of file(), templatefile() & co against the
    // template directory (`Functions(cfg.Basedir)`), not the working one.
    let fn_dir = root.clone();

    let required_versions = version::check_packer_blocks(
        &parsed.templates,
        opts.ignore_version_constraint,
        &mut diags,
    );
    let required_plugins = version::required_plugins(&parsed.templates, &mut diags);
    files::check_top_level(&parsed.templates, &mut diags);

    let mut declared = vars::declare(&parsed.templates, &cwd, &mut diags);
    declared.sources = parsed.all_files();
    vars::assign(&mut declared, &parsed, opts, &mut diags);
    vars::finish(&mut declared, &fn_dir, &mut diags);
    let variables = declared.vars;

    let path_value = scope::path_value(&root, &cwd);
    let locals = locals::evaluate(
        &parsed.templates,
        &variables,
        &path_value,
        &fn_dir,
        &mut diags,
    );

    let filter = match BuildFilter::new(&opts.only, &opts.except) {
        Ok(f) => f,
        Err(d) => {
            diags.push(d);
            BuildFilter::default()
        }
    };
    let (builds, all_build_names) = builds::evaluate(
        &parsed.templates,
        &variables,
        &locals,
        &path_value,
        &fn_dir,
        &filter,
        &mut diags,
    );
    filter.warn_unmatched(&all_build_names, &mut diags);

    if !diags.errors.is_empty() {
        return Err(LoadFailure {
            errors: diags.errors,
            warnings: diags.warnings,
            variables,
        });
    }

    let mut sensitive = BTreeSet::new();
    for v in variables.values().filter(|v| v.sensitive) {
        for a in &v.history {
            collect_strings(&a.value, &mut sensitive);
        }
    }
    for l in locals.values().filter(|l| l.sensitive) {
        if let Some(v) = &l.value {
            collect_strings(v, &mut sensitive);
        }
    }

    Ok(Loaded {
        root,
        cwd,
        files: parsed.all_files(),
        variables,
        locals,
        builds,
        all_build_names,
        required_versions,
        required_plugins,
        warnings: diags.warnings,
        sensitive,
        templates: parsed.templates,
    })
}

fn collect_strings(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) if !s.is_empty() => {
            out.insert(s.clone());
        }
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            items.iter().for_each(|i| collect_strings(i, out));
        }
        Value::Map(m) | Value::Object(m) => m.values().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}

/// `path` shown relative to `base` (with `..` where needed).
pub fn relative_to(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| -> PathBuf {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        out
    };
    let (p, b) = (abs(path), abs(base));
    let pc: Vec<_> = p.components().collect();
    let bc: Vec<_> = b.components().collect();
    let common = pc.iter().zip(&bc).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..bc.len() {
        out.push("..");
    }
    for c in &pc[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        ".".into()
    } else {
        out.to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(template: &str, var_files: &[(&str, &str)]) -> Loaded {
        let templates = [("t.pkr.hcl".to_string(), template.to_string())];
        let var_files: Vec<(String, String)> = var_files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        load_from_memory(&templates, &var_files, &LoadOptions::default())
            .map_err(|f| format!("{:?}", f.errors))
            .unwrap()
    }

    const TEMPLATE: &str = r#"
variable "memory" {
  default = 1024
}
variable "series" {
  default = "jammy"
}
source "null" "x" {
  communicator = "none"
}
build {
  sources = ["source.null.x"]
  provisioner "shell-local" {
    inline = ["echo ${var.series} ${var.memory} ${var.series}"]
  }
}
"#;

    #[test]
    fn variables_read_at_names_the_variables_of_an_attribute_with_their_origin() {
        let l = loaded(
            TEMPLATE,
            &[("big.auto.pkrvars.hcl", "# sizes\n\nmemory = 4096\n")],
        );
        let inline = &l.builds[0].provisioners[0].body.attrs["inline"];
        let read = l.variables_read_at(&inline.span);
        let names: Vec<&str> = read.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["series", "memory"]);
        let memory = read[1].origin().unwrap();
        assert_eq!(memory.kind, OriginKind::AutoVarFile);
        assert_eq!(describe_origin(memory), "big.auto.pkrvars.hcl:3");
        assert_eq!(
            describe_origin(read[0].origin().unwrap()),
            "the default at t.pkr.hcl:6"
        );
    }

    #[test]
    fn variables_read_at_is_empty_for_a_literal_or_an_unknown_place() {
        let l = loaded(TEMPLATE, &[]);
        let communicator = &l.builds[0].source.body.attrs["communicator"];
        assert!(l.variables_read_at(&communicator.span).is_empty());
        assert!(l.variables_read_at(&Span::synthetic("-var")).is_empty());
    }
}
