//! `source` and `build` blocks: each build block's sources become builds
//! named `<build.name>.<type>.<name>` (or `<type>.<name>`); for each build
//! selected by `-only`/`-except`, the source (with the build's overrides),
//! provisioners and post-processors are evaluated with `source.*` and
//! `build.*` known.

use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;

use super::files::check_labels;
use super::scope::Scope;
use super::{Build, BuildFilter, Diags, Local, PostProcessor, Provisioner, Source, Variable};
use crate::body::{Attribute, Block, Body};
use crate::decode::{did_you_mean, parse_go_duration};
use crate::diag::Diag;
use crate::eval::{Evaluator, Functions, ops};
use crate::source::SourceFile;
use crate::syntax::{SAttr, SBlock, SBody, SFile};
use crate::value::Value;

/// `build.*` values known only while a build runs; they stay as
/// Go-template placeholders and are rendered then, like `{{ .HTTPIP }}`.
const BUILD_RUNTIME_KEYS: &[&str] = &[
    "ID",
    "Host",
    "Port",
    "User",
    "Password",
    "ConnType",
    "PackerRunUUID",
    "PackerHTTPAddr",
    "PackerHTTPIP",
    "PackerHTTPPort",
    "SSHPublicKey",
    "SSHPrivateKey",
    "WinRMPassword",
];

struct TopSource<'a> {
    file: &'a SFile,
    block: &'a SBlock,
}

struct Ctx<'a> {
    vars: &'a IndexMap<String, Variable>,
    locals: &'a IndexMap<String, Local>,
    local_names: Vec<String>,
    path: &'a Value,
    cwd: &'a Path,
}

pub(crate) fn evaluate(
    files: &[SFile],
    vars: &IndexMap<String, Variable>,
    locals: &IndexMap<String, Local>,
    path: &Value,
    cwd: &Path,
    filter: &BuildFilter,
    diags: &mut Diags,
) -> (Vec<Build>, Vec<String>) {
    let mut sources: IndexMap<(String, String), TopSource<'_>> = IndexMap::new();
    for f in files {
        for b in f
            .body
            .blocks()
            .filter(|b| b.kind == "source" && b.labels.len() == 2)
        {
            let key = (b.labels[0].0.clone(), b.labels[1].0.clone());
            if let Some(prev) = sources.get(&key) {
                let prev_span = prev.file.src.span(prev.block.def_span.clone());
                diags.push(
                    Diag::error(format!("duplicate source `{}.{}`", key.0, key.1))
                        .at(&f.src, b.def_span.clone())
                        .detail(format!(
                            "this source block has the same type and name as a previous block declared at {prev_span}; each source must have a unique name per builder type"
                        ))
                        .related(&prev.file.src, prev.block.def_span.clone(), "first declared here"),
                );
                continue;
            }
            sources.insert(key, TopSource { file: f, block: b });
        }
    }
    let ctx = Ctx {
        vars,
        locals,
        local_names: locals.keys().cloned().collect(),
        path,
        cwd,
    };
    let mut builds = Vec::new();
    let mut names = Vec::new();
    for f in files {
        for b in f.body.blocks().filter(|b| b.kind == "build") {
            build_block(&ctx, f, b, &sources, filter, &mut builds, &mut names, diags);
        }
    }
    (builds, names)
}

const BUILD_ATTRS: &[&str] = &["name", "description", "sources"];
const BUILD_BLOCKS: &[(&str, usize)] = &[
    ("source", 1),
    ("provisioner", 1),
    ("post-processor", 1),
    ("post-processors", 0),
    ("error-cleanup-provisioner", 1),
];

/// A source used by a build: a reference and the inline overrides.
struct SourceUse<'a> {
    kind: String,
    name: String,
    local_name: Option<String>,
    overrides: Option<&'a SBlock>,
    span: std::ops::Range<usize>,
}

fn plain_scope<'a>(ctx: &'a Ctx<'a>) -> Scope<'a> {
    Scope {
        vars: ctx.vars,
        locals: Some(ctx.locals),
        declared_locals: &ctx.local_names,
        path: ctx.path,
        source: None,
        build: None,
    }
}

fn eval_string(ctx: &Ctx<'_>, f: &SFile, a: &SAttr, diags: &mut Diags) -> Option<String> {
    let scope = plain_scope(ctx);
    let ev = Evaluator::new(&scope, ctx.cwd, Functions::All);
    match ev.eval(&a.expr.expr) {
        Ok(Value::String(s)) => Some(s),
        Ok(Value::Number(n)) => Some(n.to_string()),
        Ok(other) => {
            diags.push(
                Diag::error(format!("incorrect `{}` type", a.name))
                    .at(&f.src, a.expr.span.clone())
                    .detail(format!(
                        "a string is required, found a {}",
                        other.type_name()
                    )),
            );
            None
        }
        Err(e) => {
            diags.eval(&f.src, &a.expr, e);
            None
        }
    }
}

fn parse_ref(s: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = s.split('.').collect();
    let parts = match parts.len() {
        0 | 1 => return None,
        2 => parts,
        _ => parts[1..].to_vec(),
    };
    let ok = |p: &str| super::vars::valid_identifier(p);
    if parts.len() != 2 || !ok(parts[0]) || !ok(parts[1]) {
        return None;
    }
    Some((parts[0].to_string(), parts[1].to_string()))
}

#[allow(clippy::too_many_arguments)]
fn build_block<'a>(
    ctx: &Ctx<'_>,
    f: &'a SFile,
    b: &'a SBlock,
    sources: &IndexMap<(String, String), TopSource<'_>>,
    filter: &BuildFilter,
    builds: &mut Vec<Build>,
    names: &mut Vec<String>,
    diags: &mut Diags,
) {
    for a in b.body.attrs() {
        if !BUILD_ATTRS.contains(&a.name.as_str()) {
            diags.push(
                Diag::error(format!(
                    "unsupported argument `{}` in `build` block",
                    a.name
                ))
                .at(&f.src, a.name_span.clone())
                .help_opt(
                    did_you_mean(&a.name, BUILD_ATTRS).map(|s| format!("did you mean `{s}`?")),
                ),
            );
        }
    }
    let kinds: Vec<&str> = BUILD_BLOCKS.iter().map(|(k, _)| *k).collect();
    let mut ok_blocks: Vec<&SBlock> = Vec::new();
    for inner in b.body.blocks() {
        match BUILD_BLOCKS.iter().find(|(k, _)| *k == inner.kind) {
            Some((_, n)) => {
                if check_labels(f, inner, *n, diags) {
                    ok_blocks.push(inner);
                }
            }
            None => diags.push(
                Diag::error(format!(
                    "unsupported block type `{}` in `build` block",
                    inner.kind
                ))
                .at(&f.src, inner.kind_span.clone())
                .help_opt(
                    did_you_mean(&inner.kind, &kinds).map(|s| format!("did you mean `{s}`?")),
                ),
            ),
        }
    }
    let build_name = b
        .body
        .attr("name")
        .and_then(|a| eval_string(ctx, f, a, diags))
        .filter(|s| !s.is_empty());
    let description = b
        .body
        .attr("description")
        .and_then(|a| eval_string(ctx, f, a, diags));

    let mut uses: Vec<SourceUse<'a>> = Vec::new();
    if let Some(a) = b.body.attr("sources") {
        let scope = plain_scope(ctx);
        let ev = Evaluator::new(&scope, ctx.cwd, Functions::All);
        match ev.eval(&a.expr.expr) {
            Ok(Value::List(items) | Value::Tuple(items) | Value::Set(items)) => {
                for item in items {
                    let Value::String(s) = item else {
                        diags.push(
                            Diag::error("invalid source reference")
                                .at(&f.src, a.expr.span.clone())
                                .detail("`sources` must be a list of strings such as `\"source.qemu.ubuntu\"`"),
                        );
                        continue;
                    };
                    match parse_ref(&s) {
                        Some((kind, name)) => uses.push(SourceUse {
                            kind,
                            name,
                            local_name: None,
                            overrides: None,
                            span: a.expr.span.clone(),
                        }),
                        None => diags.push(
                            Diag::error(format!("invalid source reference `{s}`"))
                                .at(&f.src, a.expr.span.clone())
                                .detail("a source reference is made of three parts split by dots, each starting with a letter: `source.type.name`"),
                        ),
                    }
                }
            }
            Ok(other) => diags.push(
                Diag::error("incorrect `sources` type")
                    .at(&f.src, a.expr.span.clone())
                    .detail(format!(
                        "a list of strings is required, found a {}",
                        other.type_name()
                    )),
            ),
            Err(e) => diags.eval(&f.src, &a.expr, e),
        }
    }
    for inner in ok_blocks.iter().filter(|x| x.kind == "source") {
        let (label, label_span) = &inner.labels[0];
        let Some((kind, name)) = parse_ref(label) else {
            diags.push(
                Diag::error(format!("invalid source reference `{label}`"))
                    .at(&f.src, label_span.clone())
                    .detail("a source reference looks like `source.type.name` or `type.name`"),
            );
            continue;
        };
        let local_name = inner
            .body
            .attr("name")
            .and_then(|a| eval_string(ctx, f, a, diags));
        uses.push(SourceUse {
            kind,
            name,
            local_name,
            overrides: Some(inner),
            span: inner.def_span.clone(),
        });
    }

    for u in &uses {
        let Some(top) = sources.get(&(u.kind.clone(), u.name.clone())) else {
            let known: Vec<String> = sources.keys().map(|(t, n)| format!("{t}.{n}")).collect();
            let refs: Vec<&str> = known.iter().map(String::as_str).collect();
            let wanted = format!("{}.{}", u.kind, u.name);
            diags.push(
                Diag::error(format!("unknown source `{wanted}`"))
                    .at(&f.src, u.span.clone())
                    .detail(if known.is_empty() {
                        "no source blocks are declared".to_string()
                    } else {
                        format!("known sources: {}", known.join(", "))
                    })
                    .help_opt(
                        did_you_mean(&wanted, &refs).map(|s| format!("did you mean `source.{s}`?")),
                    ),
            );
            continue;
        };
        let local = u.local_name.clone().unwrap_or_else(|| u.name.clone());
        let full = match &build_name {
            Some(bn) => format!("{bn}.{}.{local}", u.kind),
            None => format!("{}.{local}", u.kind),
        };
        names.push(full.clone());
        if !filter.selects(&full) {
            continue;
        }
        if let Some(build) = instance(
            ctx,
            f,
            b,
            top,
            u,
            &local,
            &full,
            &build_name,
            &description,
            &ok_blocks,
            filter,
            diags,
        ) {
            builds.push(build);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn instance(
    ctx: &Ctx<'_>,
    f: &SFile,
    b: &SBlock,
    top: &TopSource<'_>,
    u: &SourceUse<'_>,
    local: &str,
    full: &str,
    build_name: &Option<String>,
    description: &Option<String>,
    blocks: &[&SBlock],
    filter: &BuildFilter,
    diags: &mut Diags,
) -> Option<Build> {
    let source_value = Value::Object(
        [
            ("type".to_string(), Value::String(u.kind.clone())),
            ("name".to_string(), Value::String(local.to_string())),
        ]
        .into(),
    );
    let mut build_obj: std::collections::BTreeMap<String, Value> = BUILD_RUNTIME_KEYS
        .iter()
        .map(|k| (k.to_string(), Value::String(format!("{{{{ .{k} }}}}"))))
        .collect();
    build_obj.insert(
        "name".into(),
        Value::String(build_name.clone().unwrap_or_default()),
    );
    let build_value = Value::Object(build_obj);
    let scope = Scope {
        vars: ctx.vars,
        locals: Some(ctx.locals),
        declared_locals: &ctx.local_names,
        path: ctx.path,
        source: Some(&source_value),
        build: Some(&build_value),
    };
    let ev = Evaluator::new(&scope, ctx.cwd, Functions::All);
    let errors_before = diags.errors.len();

    // The source, with the build's overrides merged in.
    let mut body = eval_body(
        &ev,
        &top.file.src,
        &top.block.body,
        top.block.def_span.clone(),
        &[],
        diags,
    );
    if let Some(over) = u.overrides {
        for a in over.body.attrs() {
            if a.name == "name" {
                continue;
            }
            if let Some(orig) = top.block.body.attr(&a.name) {
                diags.push(
                    Diag::error(format!("`{}` is set in both the source and the build's source block", a.name))
                        .at(&f.src, a.name_span.clone())
                        .detail(format!(
                            "a source block inside a build may only set fields that the top-level `source \"{}\" \"{}\"` block does not set",
                            u.kind, u.name
                        ))
                        .related(&top.file.src, orig.name_span.clone(), "already set here"),
                );
                continue;
            }
            if let Some(attr) = eval_attr(&ev, &f.src, a, diags) {
                body.attrs.insert(a.name.clone(), attr);
            }
        }
        for inner in over.body.blocks() {
            eval_block(&ev, &f.src, inner, &mut body.blocks, diags);
        }
    }
    let source_span = top.file.src.span(top.block.def_span.clone());
    let source = Source {
        kind: u.kind.clone(),
        name: local.to_string(),
        source_name: u.name.clone(),
        body,
        span: source_span,
    };
    let source_ref = format!("{}.{local}", u.kind);

    let mut provisioners = Vec::new();
    let mut cleanup: Option<Provisioner> = None;
    let mut post_processors: Vec<Vec<PostProcessor>> = Vec::new();
    for inner in blocks {
        match inner.kind.as_str() {
            "provisioner" => {
                if let Some(p) = provisioner(&ev, f, inner, diags) {
                    if skip(&p.only, &p.except, &source_ref) {
                        continue;
                    }
                    provisioners.push(p);
                }
            }
            "error-cleanup-provisioner" => {
                if let Some(p) = provisioner(&ev, f, inner, diags) {
                    if skip(&p.only, &p.except, &source_ref) {
                        continue;
                    }
                    if cleanup.is_some() {
                        diags.push(
                            Diag::error(
                                "only one `error-cleanup-provisioner` block is allowed per build",
                            )
                            .at(&f.src, inner.def_span.clone()),
                        );
                        continue;
                    }
                    cleanup = Some(p);
                }
            }
            "post-processor" => {
                let chain = post_processor_chain(
                    &ev,
                    f,
                    std::slice::from_ref(inner),
                    &source_ref,
                    filter,
                    diags,
                );
                if !chain.is_empty() {
                    post_processors.push(chain);
                }
            }
            "post-processors" => {
                for a in inner.body.attrs() {
                    diags.push(
                        Diag::error(format!(
                            "unsupported argument `{}` in `post-processors` block",
                            a.name
                        ))
                        .at(&f.src, a.name_span.clone())
                        .detail("a `post-processors` block contains only `post-processor` blocks"),
                    );
                }
                let mut pps: Vec<&SBlock> = Vec::new();
                for pb in inner.body.blocks() {
                    if pb.kind != "post-processor" {
                        diags.push(
                            Diag::error(format!(
                                "unsupported block type `{}` in `post-processors` block",
                                pb.kind
                            ))
                            .at(&f.src, pb.kind_span.clone())
                            .help_opt(
                                did_you_mean(&pb.kind, &["post-processor"])
                                    .map(|s| format!("did you mean `{s}`?")),
                            ),
                        );
                        continue;
                    }
                    if check_labels(f, pb, 1, diags) {
                        pps.push(pb);
                    }
                }
                let chain = post_processor_chain(&ev, f, &pps, &source_ref, filter, diags);
                if !chain.is_empty() {
                    post_processors.push(chain);
                }
            }
            _ => {}
        }
    }
    if diags.errors.len() > errors_before {
        return None;
    }
    Some(Build {
        name: full.to_string(),
        build_name: build_name.clone(),
        description: description.clone(),
        source,
        provisioners,
        error_cleanup_provisioner: cleanup,
        post_processors,
        span: f.src.span(b.def_span.clone()),
    })
}

/// Packer's `OnlyExcept.Skip`: exact names of sources (`type.name`).
fn skip(only: &[String], except: &[String], source: &str) -> bool {
    if !only.is_empty() {
        return !only.iter().any(|o| o == source);
    }
    except.iter().any(|e| e == source)
}

fn strings(
    ev: &Evaluator<'_>,
    file: &Arc<SourceFile>,
    a: &SAttr,
    diags: &mut Diags,
) -> Vec<String> {
    match ev.eval(&a.expr.expr) {
        Ok(Value::List(items) | Value::Tuple(items) | Value::Set(items)) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                _ => {
                    diags.push(
                        Diag::error(format!("incorrect `{}` type", a.name))
                            .at(file, a.expr.span.clone())
                            .detail("a list of strings is required"),
                    );
                    None
                }
            })
            .collect(),
        Ok(other) => {
            diags.push(
                Diag::error(format!("incorrect `{}` type", a.name))
                    .at(file, a.expr.span.clone())
                    .detail(format!(
                        "a list of strings is required, found a {}",
                        other.type_name()
                    )),
            );
            Vec::new()
        }
        Err(e) => {
            diags.eval(file, &a.expr, e);
            Vec::new()
        }
    }
}

fn value_of(
    ev: &Evaluator<'_>,
    file: &Arc<SourceFile>,
    a: &SAttr,
    diags: &mut Diags,
) -> Option<Value> {
    match ev.eval(&a.expr.expr) {
        Ok(v) => Some(v),
        Err(e) => {
            diags.eval(file, &a.expr, e);
            None
        }
    }
}

fn string_of(
    ev: &Evaluator<'_>,
    file: &Arc<SourceFile>,
    a: &SAttr,
    diags: &mut Diags,
) -> Option<String> {
    match value_of(ev, file, a, diags)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        other => {
            diags.push(
                Diag::error(format!("incorrect `{}` type", a.name))
                    .at(file, a.expr.span.clone())
                    .detail(format!(
                        "a string is required, found a {}",
                        other.type_name()
                    )),
            );
            None
        }
    }
}

fn duration_of(
    ev: &Evaluator<'_>,
    file: &Arc<SourceFile>,
    a: &SAttr,
    diags: &mut Diags,
) -> Option<std::time::Duration> {
    let s = string_of(ev, file, a, diags)?;
    match parse_go_duration(&s) {
        Ok(d) => Some(d),
        Err(m) => {
            diags.push(
                Diag::error(format!("failed to parse `{}` duration", a.name))
                    .at(file, a.expr.span.clone())
                    .detail(m),
            );
            None
        }
    }
}

fn check_only_except(
    file: &Arc<SourceFile>,
    b: &SBlock,
    only: &[String],
    except: &[String],
    diags: &mut Diags,
) -> bool {
    if !only.is_empty() && !except.is_empty() {
        diags.push(
            Diag::error("only one of `only` or `except` may be specified")
                .at(file, b.def_span.clone()),
        );
        return false;
    }
    true
}

/// Fields every provisioner block has (Packer's), taken by the loader.
pub const PROVISIONER_COMMON: &[&str] = &[
    "name",
    "pause_before",
    "max_retries",
    "timeout",
    "continue_on_error",
    "only",
    "except",
    "override",
];

fn provisioner(
    ev: &Evaluator<'_>,
    f: &SFile,
    b: &SBlock,
    diags: &mut Diags,
) -> Option<Provisioner> {
    let file = &f.src;
    let mut p = Provisioner {
        kind: b.labels[0].0.clone(),
        name: None,
        only: Vec::new(),
        except: Vec::new(),
        pause_before: None,
        max_retries: 0,
        timeout: None,
        continue_on_error: false,
        override_: None,
        body: Body::empty(file.span(b.def_span.clone())),
        span: file.span(b.def_span.clone()),
    };
    for a in b.body.attrs() {
        match a.name.as_str() {
            "name" => p.name = string_of(ev, file, a, diags),
            "pause_before" => p.pause_before = duration_of(ev, file, a, diags),
            "timeout" => p.timeout = duration_of(ev, file, a, diags),
            "max_retries" => match value_of(ev, file, a, diags)
                .as_ref()
                .and_then(ops::to_number)
            {
                Some(n) if n >= 0.0 && n.fract() == 0.0 => p.max_retries = n as u32,
                _ => diags.push(
                    Diag::error("incorrect `max_retries` type")
                        .at(file, a.expr.span.clone())
                        .detail("a whole number is required"),
                ),
            },
            "continue_on_error" => {
                // An expression that failed to evaluate is reported once.
                let Some(v) = value_of(ev, file, a, diags) else {
                    continue;
                };
                match ops::to_bool(&v) {
                    Some(v) => p.continue_on_error = v,
                    None => diags.push(
                        Diag::error("incorrect `continue_on_error` type")
                            .at(file, a.expr.span.clone())
                            .detail("a bool is required"),
                    ),
                }
            }
            "only" => p.only = strings(ev, file, a, diags),
            "except" => p.except = strings(ev, file, a, diags),
            "override" => p.override_ = value_of(ev, file, a, diags),
            _ => {}
        }
    }
    if !check_only_except(file, b, &p.only, &p.except, diags) {
        return None;
    }
    p.body = eval_body(
        ev,
        file,
        &b.body,
        b.def_span.clone(),
        PROVISIONER_COMMON,
        diags,
    );
    Some(p)
}

/// Fields every post-processor block has (Packer's), taken by the loader.
pub const POST_PROCESSOR_COMMON: &[&str] = &["name", "only", "except", "keep_input_artifact"];

fn post_processor_chain(
    ev: &Evaluator<'_>,
    f: &SFile,
    blocks: &[&SBlock],
    source_ref: &str,
    filter: &BuildFilter,
    diags: &mut Diags,
) -> Vec<PostProcessor> {
    let file = &f.src;
    let mut chain = Vec::new();
    for b in blocks {
        let mut pp = PostProcessor {
            kind: b.labels[0].0.clone(),
            name: None,
            only: Vec::new(),
            except: Vec::new(),
            keep_input_artifact: None,
            body: Body::empty(file.span(b.def_span.clone())),
            span: file.span(b.def_span.clone()),
        };
        for a in b.body.attrs() {
            match a.name.as_str() {
                "name" => pp.name = string_of(ev, file, a, diags),
                "only" => pp.only = strings(ev, file, a, diags),
                "except" => pp.except = strings(ev, file, a, diags),
                "keep_input_artifact" => {
                    match value_of(ev, file, a, diags).as_ref().and_then(ops::to_bool) {
                        Some(v) => pp.keep_input_artifact = Some(v),
                        None => diags.push(
                            Diag::error("incorrect `keep_input_artifact` type")
                                .at(file, a.expr.span.clone())
                                .detail("a bool is required"),
                        ),
                    }
                }
                _ => {}
            }
        }
        if !check_only_except(file, b, &pp.only, &pp.except, diags) {
            continue;
        }
        if skip(&pp.only, &pp.except, source_ref) {
            continue;
        }
        // Packer: `-except` naming a post-processor drops it and the rest
        // of its chain.
        let name = pp.name.clone().unwrap_or_else(|| pp.kind.clone());
        if filter.excludes_post_processor(&name) {
            break;
        }
        pp.body = eval_body(
            ev,
            file,
            &b.body,
            b.def_span.clone(),
            POST_PROCESSOR_COMMON,
            diags,
        );
        chain.push(pp);
    }
    chain
}

fn eval_attr(
    ev: &Evaluator<'_>,
    file: &Arc<SourceFile>,
    a: &SAttr,
    diags: &mut Diags,
) -> Option<Attribute> {
    ev.reset_taint();
    let r = ev.eval(&a.expr.expr);
    let sensitive = ev.tainted();
    match r {
        Ok(value) => Some(Attribute {
            name: a.name.clone(),
            value,
            span: file.span(a.name_span.clone()),
            sensitive,
        }),
        Err(e) => {
            diags.eval(file, &a.expr, e);
            None
        }
    }
}

/// Evaluate a block body: its attributes (less `skip`) and nested blocks,
/// expanding `dynamic` blocks.
pub(crate) fn eval_body(
    ev: &Evaluator<'_>,
    file: &Arc<SourceFile>,
    body: &SBody,
    def_span: std::ops::Range<usize>,
    skip: &[&str],
    diags: &mut Diags,
) -> Body {
    let mut out = Body::empty(file.span(def_span));
    for a in body.attrs() {
        if skip.contains(&a.name.as_str()) {
            continue;
        }
        if let Some(attr) = eval_attr(ev, file, a, diags) {
            out.attrs.insert(a.name.clone(), attr);
        }
    }
    for b in body.blocks() {
        eval_block(ev, file, b, &mut out.blocks, diags);
    }
    out
}

fn eval_block(
    ev: &Evaluator<'_>,
    file: &Arc<SourceFile>,
    b: &SBlock,
    out: &mut Vec<Block>,
    diags: &mut Diags,
) {
    if b.kind != "dynamic" {
        out.push(Block {
            kind: b.kind.clone(),
            labels: b.labels.iter().map(|l| l.0.clone()).collect(),
            body: eval_body(ev, file, &b.body, b.def_span.clone(), &[], diags),
            span: file.span(b.def_span.clone()),
        });
        return;
    }
    // dynamic "kind" { for_each = …, iterator = name, labels = […], content { … } }
    let Some((kind, _)) = b.labels.first() else {
        diags.push(
            Diag::error("missing block type label for `dynamic` block")
                .at(file, b.def_span.clone()),
        );
        return;
    };
    let Some(for_each) = b.body.attr("for_each") else {
        diags.push(
            Diag::error("missing required argument `for_each` in `dynamic` block")
                .at(file, b.def_span.clone()),
        );
        return;
    };
    let Some(content) = b.body.blocks().find(|c| c.kind == "content") else {
        diags.push(
            Diag::error("missing `content` block in `dynamic` block").at(file, b.def_span.clone()),
        );
        return;
    };
    let iterator = match b.body.attr("iterator") {
        Some(a) => match &*a.expr.expr {
            hcl_edit::expr::Expression::Variable(v) => v.value().to_string(),
            _ => {
                diags.push(
                    Diag::error("invalid `iterator`")
                        .at(file, a.expr.span.clone())
                        .detail("the iterator must be a bare name"),
                );
                return;
            }
        },
        None => kind.clone(),
    };
    let Some(coll) = value_of(ev, file, for_each, diags) else {
        return;
    };
    let pairs: Vec<(Value, Value)> = match coll {
        Value::List(items) | Value::Tuple(items) | Value::Set(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Value::Number(crate::value::Number(i as f64)), v))
            .collect(),
        Value::Map(m) | Value::Object(m) => {
            m.into_iter().map(|(k, v)| (Value::String(k), v)).collect()
        }
        other => {
            diags.push(
                Diag::error("invalid `for_each` argument")
                    .at(file, for_each.expr.span.clone())
                    .detail(format!(
                        "a list, set or map is required, found a {}",
                        other.type_name()
                    )),
            );
            return;
        }
    };
    for (k, v) in pairs {
        let it = Value::Object([("key".to_string(), k), ("value".to_string(), v)].into());
        ev.bind(&iterator, it, |ev| {
            let labels = match b.body.attr("labels") {
                Some(a) => strings(ev, file, a, diags),
                None => Vec::new(),
            };
            out.push(Block {
                kind: kind.clone(),
                labels,
                body: eval_body(ev, file, &content.body, b.def_span.clone(), &[], diags),
                span: file.span(b.def_span.clone()),
            });
        });
    }
}
