//! One structural model for both HCL syntaxes: native (`*.pkr.hcl`, parsed
//! by hcl-edit) and JSON (`*.pkr.json`). Expressions stay hcl-edit syntax
//! trees; an expression that came from a JSON string points every error at
//! that string (`fixed`).

use std::ops::Range;
use std::sync::Arc;

use hcl_edit::Span as _;
use hcl_edit::expr::{Array, Expression, Object, ObjectKey, ObjectValue};
use hcl_edit::structure::{BlockLabel, Structure};
use hcl_edit::template::StringTemplate;

use crate::diag::Diag;
use crate::json::{Json, JsonKind};
use crate::source::SourceFile;

/// An expression and where to report about it.
#[derive(Clone, Debug)]
pub struct SExpr {
    pub expr: Arc<Expression>,
    /// Set for JSON: every span inside maps to this range.
    pub fixed: Option<Range<usize>>,
    pub span: Range<usize>,
}

impl SExpr {
    /// The byte range of a node of this expression, for diagnostics.
    pub fn range_of(&self, node: Option<Range<usize>>) -> Range<usize> {
        match (&self.fixed, node) {
            (Some(f), _) => f.clone(),
            (None, Some(r)) => r,
            (None, None) => self.span.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SAttr {
    pub name: String,
    pub name_span: Range<usize>,
    pub expr: SExpr,
    pub span: Range<usize>,
}

#[derive(Clone, Debug)]
pub struct SBlock {
    pub kind: String,
    pub kind_span: Range<usize>,
    pub labels: Vec<(String, Range<usize>)>,
    pub body: SBody,
    /// The block header (type and labels), as HCL's DefRange.
    pub def_span: Range<usize>,
}

#[derive(Clone, Debug)]
pub enum SItem {
    Attr(SAttr),
    Block(SBlock),
}

#[derive(Clone, Debug, Default)]
pub struct SBody {
    pub items: Vec<SItem>,
    pub span: Range<usize>,
}

impl SBody {
    pub fn attrs(&self) -> impl Iterator<Item = &SAttr> {
        self.items.iter().filter_map(|i| match i {
            SItem::Attr(a) => Some(a),
            SItem::Block(_) => None,
        })
    }

    pub fn blocks(&self) -> impl Iterator<Item = &SBlock> {
        self.items.iter().filter_map(|i| match i {
            SItem::Block(b) => Some(b),
            SItem::Attr(_) => None,
        })
    }

    pub fn attr(&self, name: &str) -> Option<&SAttr> {
        self.attrs().find(|a| a.name == name)
    }
}

/// A parsed file.
#[derive(Clone, Debug)]
pub struct SFile {
    pub src: Arc<SourceFile>,
    pub body: SBody,
}

/// Finds quoted strings split over lines, which HCL rejects (hcl-edit
/// accepts them).
struct MultiLineStrings<'a> {
    text: &'a str,
    in_heredoc: usize,
    found: Option<Range<usize>>,
}

impl MultiLineStrings<'_> {
    fn check(&mut self, span: Option<Range<usize>>) {
        if self.found.is_some() || self.in_heredoc > 0 {
            return;
        }
        if let Some(r) = span
            && self.text.get(r.clone()).is_some_and(|t| t.contains('\n'))
        {
            self.found = Some(r);
        }
    }
}

impl hcl_edit::visit::Visit for MultiLineStrings<'_> {
    fn visit_string(&mut self, node: &hcl_edit::Decorated<String>) {
        self.check(node.span());
    }
    fn visit_literal(&mut self, node: &hcl_edit::Spanned<String>) {
        self.check(node.span());
    }
    fn visit_heredoc_template(&mut self, node: &hcl_edit::template::HeredocTemplate) {
        self.in_heredoc += 1;
        hcl_edit::visit::visit_heredoc_template(self, node);
        self.in_heredoc -= 1;
    }
}

/// Parse native syntax as HCL does: hcl-edit, plus HCL's rule that a
/// quoted string may not span lines.
pub fn parse_native(src: &Arc<SourceFile>) -> Result<hcl_edit::structure::Body, Diag> {
    let body = hcl_edit::parser::parse_body(&src.text).map_err(|e| parse_error(src, &e))?;
    let mut v = MultiLineStrings {
        text: &src.text,
        in_heredoc: 0,
        found: None,
    };
    hcl_edit::visit::visit_body(&mut v, &body);
    if let Some(r) = v.found {
        return Err(Diag::error("invalid multi-line string")
            .at(src, r)
            .detail("quoted strings may not be split over multiple lines; use the `\\n` escape or a heredoc (`<<EOT`)"));
    }
    Ok(body)
}

/// Parse a native-syntax HCL file.
pub fn parse_hcl(src: &Arc<SourceFile>) -> Result<SFile, Vec<Diag>> {
    let body = parse_native(src).map_err(|d| vec![d])?;
    let mut diags = Vec::new();
    let body = convert_body(src, body, &mut diags);
    if diags.is_empty() {
        Ok(SFile {
            src: src.clone(),
            body,
        })
    } else {
        Err(diags)
    }
}

/// A parse error of hcl-edit as a diagnostic.
pub fn parse_error(src: &Arc<SourceFile>, e: &hcl_edit::parser::Error) -> Diag {
    let loc = e.location();
    let offset = src.offset_of(loc.line(), loc.column());
    let message = e
        .message()
        .lines()
        .next()
        .unwrap_or("invalid syntax")
        .to_string();
    Diag::error("syntax error")
        .at(src, offset..offset + 1)
        .label(message)
}

fn convert_body(
    src: &Arc<SourceFile>,
    body: hcl_edit::structure::Body,
    diags: &mut Vec<Diag>,
) -> SBody {
    let span = body.span().unwrap_or(0..0);
    let mut items: Vec<SItem> = Vec::new();
    for structure in body {
        match structure {
            Structure::Attribute(attr) => {
                let span = attr.span().unwrap_or(0..0);
                let name_span = attr.key.span().unwrap_or(span.clone());
                let name = attr.key.value().to_string();
                if let Some(prev) = items.iter().find_map(|i| match i {
                    SItem::Attr(a) if a.name == name => Some(a),
                    _ => None,
                }) {
                    diags.push(
                        Diag::error(format!("attribute `{name}` is defined twice"))
                            .at(src, name_span.clone())
                            .label("redefined here")
                            .related(src, prev.name_span.clone(), "first defined here"),
                    );
                    continue;
                }
                let expr_span = attr.value.span().unwrap_or(span.clone());
                items.push(SItem::Attr(SAttr {
                    name,
                    name_span,
                    expr: SExpr {
                        expr: Arc::new(attr.value),
                        fixed: None,
                        span: expr_span,
                    },
                    span,
                }));
            }
            Structure::Block(block) => {
                let kind_span = block.ident.span().unwrap_or(0..0);
                let labels: Vec<(String, Range<usize>)> = block
                    .labels
                    .iter()
                    .map(|l| {
                        let text = match l {
                            BlockLabel::Ident(i) => i.value().to_string(),
                            BlockLabel::String(s) => s.value().to_string(),
                        };
                        (text, l.span().unwrap_or(kind_span.clone()))
                    })
                    .collect();
                let end = labels.last().map_or(kind_span.end, |(_, r)| r.end);
                let def_span = kind_span.start..end;
                let kind = block.ident.value().to_string();
                let body = convert_body(src, block.body, diags);
                items.push(SItem::Block(SBlock {
                    kind,
                    kind_span,
                    labels,
                    body,
                    def_span,
                }));
            }
        }
    }
    SBody { items, span }
}

/// How JSON objects map onto blocks: which keys are blocks, with how many
/// labels, and the schema of their bodies.
pub struct Schema {
    pub blocks: &'static [(&'static str, usize, &'static Schema)],
    /// Attribute values whose JSON strings are expressions, not templates
    /// (`type` in a variable block).
    pub expr_attrs: &'static [&'static str],
}

pub static OPAQUE: Schema = Schema {
    blocks: &[],
    expr_attrs: &[],
};
static VALIDATION: Schema = Schema {
    blocks: &[],
    expr_attrs: &[],
};
static VARIABLE: Schema = Schema {
    blocks: &[("validation", 0, &VALIDATION)],
    expr_attrs: &["type"],
};
static PACKER: Schema = Schema {
    blocks: &[("required_plugins", 0, &OPAQUE)],
    expr_attrs: &[],
};
static POST_PROCESSORS: Schema = Schema {
    blocks: &[("post-processor", 1, &OPAQUE)],
    expr_attrs: &[],
};
static BUILD: Schema = Schema {
    blocks: &[
        ("source", 1, &OPAQUE),
        ("provisioner", 1, &OPAQUE),
        ("error-cleanup-provisioner", 1, &OPAQUE),
        ("post-processor", 1, &OPAQUE),
        ("post-processors", 0, &POST_PROCESSORS),
    ],
    expr_attrs: &[],
};
/// The top level of a template file.
pub static ROOT: Schema = Schema {
    blocks: &[
        ("packer", 0, &PACKER),
        ("variable", 1, &VARIABLE),
        ("variables", 0, &OPAQUE),
        ("locals", 0, &OPAQUE),
        ("local", 1, &OPAQUE),
        ("source", 2, &OPAQUE),
        ("data", 2, &OPAQUE),
        ("build", 0, &BUILD),
    ],
    expr_attrs: &[],
};

/// Parse a JSON-syntax file with the given schema for its top level.
pub fn parse_json(src: &Arc<SourceFile>, schema: &Schema) -> Result<SFile, Vec<Diag>> {
    let json = crate::json::parse(&src.text).map_err(|e| {
        vec![
            Diag::error("syntax error")
                .at(src, e.offset..e.offset + 1)
                .label(e.message),
        ]
    })?;
    let mut diags = Vec::new();
    let body = match &json.kind {
        JsonKind::Object(_) => json_body(src, &json, schema, &mut diags),
        _ => {
            diags.push(
                Diag::error("the root of a JSON template must be an object")
                    .at(src, json.span.clone()),
            );
            SBody::default()
        }
    };
    if diags.is_empty() {
        Ok(SFile {
            src: src.clone(),
            body,
        })
    } else {
        Err(diags)
    }
}

fn json_body(src: &Arc<SourceFile>, json: &Json, schema: &Schema, diags: &mut Vec<Diag>) -> SBody {
    let mut body = SBody {
        items: Vec::new(),
        span: json.span.clone(),
    };
    let JsonKind::Object(members) = &json.kind else {
        diags.push(Diag::error("a JSON object is required here").at(src, json.span.clone()));
        return body;
    };
    for m in members {
        if m.key == "//" {
            continue;
        }
        if let Some((_, nlabels, child)) = schema.blocks.iter().find(|(k, _, _)| *k == m.key) {
            json_blocks(
                src,
                m,
                &m.value,
                *nlabels,
                Vec::new(),
                child,
                &mut body,
                diags,
            );
            continue;
        }
        if let Some(prev) = body.attrs().find(|a| a.name == m.key) {
            diags.push(
                Diag::error(format!("attribute `{}` is defined twice", m.key))
                    .at(src, m.key_span.clone())
                    .related(src, prev.name_span.clone(), "first defined here"),
            );
            continue;
        }
        let as_expr = schema.expr_attrs.contains(&m.key.as_str());
        let expr = json_expr(src, &m.value, as_expr, diags);
        body.items.push(SItem::Attr(SAttr {
            name: m.key.clone(),
            name_span: m.key_span.clone(),
            expr: SExpr {
                expr: Arc::new(expr),
                fixed: Some(m.value.span.clone()),
                span: m.value.span.clone(),
            },
            span: m.key_span.start..m.value.span.end,
        }));
    }
    body
}

#[allow(clippy::too_many_arguments)]
fn json_blocks(
    src: &Arc<SourceFile>,
    member: &crate::json::Member,
    value: &Json,
    labels_left: usize,
    labels: Vec<(String, Range<usize>)>,
    schema: &Schema,
    out: &mut SBody,
    diags: &mut Vec<Diag>,
) {
    match &value.kind {
        JsonKind::Array(items) => {
            for item in items {
                json_blocks(
                    src,
                    member,
                    item,
                    labels_left,
                    labels.clone(),
                    schema,
                    out,
                    diags,
                );
            }
        }
        JsonKind::Object(members) if labels_left > 0 => {
            for m in members {
                if m.key == "//" {
                    continue;
                }
                let mut l = labels.clone();
                l.push((m.key.clone(), m.key_span.clone()));
                json_blocks(
                    src,
                    member,
                    &m.value,
                    labels_left - 1,
                    l,
                    schema,
                    out,
                    diags,
                );
            }
        }
        JsonKind::Object(_) => {
            let body = json_body(src, value, schema, diags);
            let end = labels.last().map_or(member.key_span.end, |(_, r)| r.end);
            out.items.push(SItem::Block(SBlock {
                kind: member.key.clone(),
                kind_span: member.key_span.clone(),
                def_span: member.key_span.start..end.max(member.key_span.end),
                labels,
                body,
            }));
        }
        _ => diags.push(
            Diag::error(format!(
                "a JSON object is required for a `{}` block",
                member.key
            ))
            .at(src, value.span.clone()),
        ),
    }
}

/// A JSON value as an hcl-edit expression: strings are templates (or
/// expressions, for `type`), arrays are tuples, objects are objects.
pub fn json_expr(
    src: &Arc<SourceFile>,
    json: &Json,
    as_expr: bool,
    diags: &mut Vec<Diag>,
) -> Expression {
    match &json.kind {
        JsonKind::Null => Expression::null(),
        JsonKind::Bool(b) => Expression::from(*b),
        JsonKind::Number(n) => Expression::from(*n),
        JsonKind::String(s) => {
            if as_expr {
                match hcl_edit::parser::parse_expr(s) {
                    Ok(e) => e,
                    Err(e) => {
                        diags.push(
                            Diag::error("invalid expression")
                                .at(src, json.span.clone())
                                .label(e.message().lines().next().unwrap_or("").to_string()),
                        );
                        Expression::null()
                    }
                }
            } else {
                string_template(src, s, json.span.clone(), diags)
            }
        }
        JsonKind::Array(items) => Expression::from(
            items
                .iter()
                .map(|i| json_expr(src, i, false, diags))
                .collect::<Array>(),
        ),
        JsonKind::Object(members) => {
            let mut obj = Object::new();
            for m in members {
                let key = string_template(src, &m.key, m.key_span.clone(), diags);
                obj.insert(
                    ObjectKey::Expression(key),
                    ObjectValue::new(json_expr(src, &m.value, false, diags)),
                );
            }
            Expression::from(obj)
        }
    }
}

fn string_template(
    src: &Arc<SourceFile>,
    s: &str,
    span: Range<usize>,
    diags: &mut Vec<Diag>,
) -> Expression {
    if !s.contains("${") && !s.contains("%{") {
        return Expression::from(s);
    }
    match hcl_edit::parser::parse_template(s) {
        Ok(t) => Expression::from(StringTemplate::from(t.into_iter().collect::<Vec<_>>())),
        Err(e) => {
            diags.push(
                Diag::error("invalid template")
                    .at(src, span)
                    .label(e.message().lines().next().unwrap_or("").to_string()),
            );
            Expression::null()
        }
    }
}
