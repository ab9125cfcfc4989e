//! `packer {}` blocks: `required_version` checked against the Packer
//! version whose HCL2 semantics kiln follows, and `required_plugins`
//! (accepted: kiln's builders and provisioners are built in).

use super::{Diags, RequiredPlugin};
use crate::decode::did_you_mean;
use crate::diag::Diag;
use crate::eval::{Evaluator, Functions, NoRoots};
use crate::syntax::SFile;
use crate::value::Value;

/// The Packer version kiln is compatible with, for `required_version`
/// and `packer.version`: 1.16.0, the newest release, whose HCL2 template
/// language kiln follows (checked against the v1.16.0 sources of
/// `hcl2template/` and its CHANGELOG): every function up to
/// `rfc3339_parse`/`unix_timestamp_parse`, `optional()` attributes with
/// defaults in object type constraints, and the provisioner meta-arguments
/// up to `continue_on_error`. Left out: HCP Packer (`hcp_packer_registry`,
/// the `hcp-sbom` provisioner), data sources (`data` blocks), plugin
/// installation (`required_plugins` is accepted, as kiln's builders and
/// provisioners are built in) and the enforced provisioners HCP injects.
pub const PACKER_COMPAT_VERSION: &str = "1.16.0";

fn parse_version(s: &str) -> Option<Vec<u64>> {
    let s = s.trim().trim_start_matches('v');
    let core = s.split(['-', '+']).next()?;
    let parts: Option<Vec<u64>> = core.split('.').map(|p| p.parse().ok()).collect();
    let mut parts = parts?;
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    while parts.len() < 3 {
        parts.push(0);
    }
    Some(parts)
}

/// Whether `version` satisfies a go-version constraint string such as
/// `">= 1.7.0, < 2"` or `"~> 1.9"`.
pub fn satisfies(version: &str, constraint: &str) -> Result<bool, String> {
    let v = parse_version(version).ok_or_else(|| format!("invalid version `{version}`"))?;
    for part in constraint.split(',') {
        let part = part.trim();
        let (op, rest) = ["~>", ">=", "<=", "!=", ">", "<", "="]
            .iter()
            .find_map(|op| part.strip_prefix(op).map(|r| (*op, r)))
            .unwrap_or(("=", part));
        let rest = rest.trim();
        let c = parse_version(rest).ok_or_else(|| format!("malformed constraint `{part}`"))?;
        let ok = match op {
            "=" => v == c,
            "!=" => v != c,
            ">" => v > c,
            "<" => v < c,
            ">=" => v >= c,
            "<=" => v <= c,
            _ => {
                // ~> 1.2.3: >= 1.2.3, < 1.3; ~> 1.2: >= 1.2, < 2.
                let given = rest
                    .trim_start_matches('v')
                    .split(['-', '+'])
                    .next()
                    .unwrap_or("")
                    .split('.')
                    .count();
                let mut upper = c.clone();
                let bump = given.saturating_sub(2).min(upper.len().saturating_sub(1));
                upper.truncate(bump + 1);
                if let Some(last) = upper.last_mut() {
                    *last += 1;
                }
                while upper.len() < v.len() {
                    upper.push(0);
                }
                v >= c && v < upper
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn literal(f: &SFile, e: &crate::syntax::SExpr, diags: &mut Diags) -> Option<Value> {
    let ev = Evaluator::new(&NoRoots, std::path::Path::new("."), Functions::None);
    match ev.eval(&e.expr) {
        Ok(v) => Some(v),
        Err(err) => {
            diags.eval(&f.src, e, err);
            None
        }
    }
}

pub(crate) fn check_packer_blocks(
    files: &[SFile],
    ignore_unmet: bool,
    diags: &mut Diags,
) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        for b in f.body.blocks().filter(|b| b.kind == "packer") {
            for a in b.body.attrs() {
                if a.name != "required_version" {
                    diags.push(
                        Diag::error(format!(
                            "unsupported argument `{}` in `packer` block",
                            a.name
                        ))
                        .at(&f.src, a.name_span.clone())
                        .help_opt(
                            did_you_mean(&a.name, &["required_version"])
                                .map(|s| format!("did you mean `{s}`?")),
                        ),
                    );
                }
            }
            for inner in b.body.blocks() {
                if inner.kind != "required_plugins" {
                    diags.push(
                        Diag::error(format!(
                            "unsupported block type `{}` in `packer` block",
                            inner.kind
                        ))
                        .at(&f.src, inner.kind_span.clone())
                        .help_opt(
                            did_you_mean(&inner.kind, &["required_plugins"])
                                .map(|s| format!("did you mean `{s}`?")),
                        ),
                    );
                }
            }
            let Some(a) = b.body.attr("required_version") else {
                continue;
            };
            let Some(v) = literal(f, &a.expr, diags) else {
                continue;
            };
            let Value::String(c) = v else {
                diags.push(
                    Diag::error("`required_version` must be a string")
                        .at(&f.src, a.expr.span.clone()),
                );
                continue;
            };
            match satisfies(PACKER_COMPAT_VERSION, &c) {
                Ok(true) => out.push(c),
                Ok(false) if ignore_unmet => diags.push(
                    Diag::warning("unmet Packer version constraint ignored")
                        .at(&f.src, a.expr.span.clone())
                        .detail(format!(
                            "this template requires Packer `{c}`; kiln follows the semantics of Packer {PACKER_COMPAT_VERSION} (`--ignore-version-constraint`)"
                        )),
                ),
                Ok(false) => diags.push(
                    Diag::error("unsupported Packer version")
                        .at(&f.src, a.expr.span.clone())
                        .detail(format!(
                            "this template requires Packer `{c}`; kiln follows the semantics of Packer {PACKER_COMPAT_VERSION}"
                        ))
                        .help("if the template works with that version all the same, pass `--ignore-version-constraint`"),
                ),
                Err(m) => diags.push(
                    Diag::error("invalid version constraint")
                        .at(&f.src, a.expr.span.clone())
                        .detail(m),
                ),
            }
        }
    }
    out
}

pub(crate) fn required_plugins(files: &[SFile], diags: &mut Diags) -> Vec<RequiredPlugin> {
    let mut out = Vec::new();
    for f in files {
        for b in f.body.blocks().filter(|b| b.kind == "packer") {
            for rp in b.body.blocks().filter(|b| b.kind == "required_plugins") {
                for a in rp.body.attrs() {
                    let Some(v) = literal(f, &a.expr, diags) else {
                        continue;
                    };
                    let (source, version) = match &v {
                        Value::Object(m) | Value::Map(m) => (
                            m.get("source").and_then(|s| match s {
                                Value::String(s) => Some(s.clone()),
                                _ => None,
                            }),
                            m.get("version").and_then(|s| match s {
                                Value::String(s) => Some(s.clone()),
                                _ => None,
                            }),
                        ),
                        Value::String(s) => (None, Some(s.clone())),
                        _ => (None, None),
                    };
                    out.push(RequiredPlugin {
                        name: a.name.clone(),
                        source,
                        version,
                        span: f.src.span(a.name_span.clone()),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_follow_go_version() {
        assert_eq!(satisfies(PACKER_COMPAT_VERSION, ">= 1.7.0"), Ok(true));
        assert_eq!(
            satisfies(PACKER_COMPAT_VERSION, ">= 1.7.0, < 1.10"),
            Ok(false)
        );
        assert_eq!(satisfies(PACKER_COMPAT_VERSION, "~> 1.9"), Ok(true));
        assert_eq!(satisfies(PACKER_COMPAT_VERSION, "~> 1.9.0"), Ok(false));
        assert_eq!(satisfies(PACKER_COMPAT_VERSION, "~> 1.16.0"), Ok(true));
        assert_eq!(satisfies(PACKER_COMPAT_VERSION, "1.16.0"), Ok(true));
        assert_eq!(satisfies(PACKER_COMPAT_VERSION, "!= 1.16.0"), Ok(false));
        assert!(satisfies(PACKER_COMPAT_VERSION, ">= banana").is_err());
    }
}
