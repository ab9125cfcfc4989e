//! The reference docs, generated from the schema tables: one Markdown file
//! per plugin type (`source-qemu.md`, `provisioner-shell.md`,
//! `post-processor-maas-tgz.md`, …) and an `index.md`. `kiln docs
//! reference --out docs/reference` writes them; a test fails with a diff
//! when the committed files are stale.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kiln_template::load::{POST_PROCESSOR_COMMON, PROVISIONER_COMMON};
use kiln_template::schema::{Field, FieldDefault, PluginKind, Schema, Support};

/// The command that regenerates the committed docs.
pub const REGENERATE: &str = "cargo run -p kiln -- docs reference --out docs/reference";

const HEADER: &str = "<!-- Generated from kiln's schema tables by `kiln docs reference --out docs/reference`; do not edit. -->\n\n";

/// Why the docs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("cannot create {}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The file name of a plugin's page: `source-qemu.md`.
pub fn page_name(schema: &Schema) -> String {
    format!("{}-{}.md", schema.kind.block(), schema.name)
}

/// Every page: file name → Markdown.
pub fn pages() -> BTreeMap<String, String> {
    let mut pages: BTreeMap<String, String> = super::all()
        .map(|schema| (page_name(schema), page(schema)))
        .collect();
    pages.insert("index.md".into(), index());
    pages
}

/// Write every page into `dir` (created if missing); returns the paths.
pub fn write_to(dir: &Path) -> Result<Vec<PathBuf>, ReferenceError> {
    std::fs::create_dir_all(dir).map_err(|source| ReferenceError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for (name, text) in pages() {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| ReferenceError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

fn index() -> String {
    let mut s = String::from(HEADER);
    s.push_str("# kiln plugin reference\n\n");
    s.push_str("Every attribute of the sources, provisioners and post-processors kiln runs, with Packer's spelling, type and default. Fields Packer accepts that kiln ignores or refuses are listed on each page with the reason.\n");
    for (title, kind) in [
        ("Sources", PluginKind::Source),
        ("Provisioners", PluginKind::Provisioner),
        ("Post-processors", PluginKind::PostProcessor),
    ] {
        let _ = write!(s, "\n## {title}\n\n");
        for schema in super::all().filter(|x| x.kind == kind) {
            let _ = writeln!(
                s,
                "- [`{}`]({}): {}",
                schema.block_header(),
                page_name(schema),
                schema.summary
            );
        }
    }
    let list = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = write!(
        s,
        "\n## Fields every block has\n\nAs in Packer, every provisioner also takes {}; every post-processor takes {}.\n",
        list(PROVISIONER_COMMON),
        list(POST_PROCESSOR_COMMON)
    );
    s
}

fn page(schema: &Schema) -> String {
    let mut s = String::from(HEADER);
    let _ = write!(s, "# `{}`\n\n{}\n\n", schema.block_header(), schema.summary);
    s.push_str("## Example\n\n```hcl\n");
    let label = match schema.kind {
        PluginKind::Source => " \"example\"",
        PluginKind::Provisioner | PluginKind::PostProcessor => "",
    };
    let _ = writeln!(s, "{}{label} {{", schema.block_header());
    let width = schema
        .example
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0);
    for (name, text) in schema.example {
        let value = schema
            .field(name)
            .map_or_else(|| (*text).to_string(), |f| hcl_literal(f, text));
        let _ = writeln!(s, "  {name:<width$} = {value}");
    }
    s.push_str("}\n```\n\n");

    let supported: Vec<&Field> = schema
        .fields()
        .filter(|f| f.support == Support::Supported && f.alias_of.is_none())
        .collect();
    s.push_str("## Fields\n\n| Field | Type | Default | Description |\n|---|---|---|---|\n");
    for f in &supported {
        let mut doc = String::new();
        if f.required {
            doc.push_str("**Required.** ");
        }
        doc.push_str(f.doc);
        if f.sensitive {
            doc.push_str(" *Sensitive: redacted wherever it is shown.*");
        }
        let _ = writeln!(
            s,
            "| `{}` | `{}` | {} | {} |",
            f.name,
            f.ty,
            cell(&default_text(f)),
            cell(&doc)
        );
    }

    let aliases: Vec<&Field> = schema
        .fields()
        .filter(|f| f.support == Support::Supported && f.alias_of.is_some())
        .collect();
    if !aliases.is_empty() {
        s.push_str("\n## Aliases\n\n| Field | Alias of | Description |\n|---|---|---|\n");
        for f in aliases {
            let _ = writeln!(
                s,
                "| `{}` | `{}` | {} |",
                f.name,
                f.alias_of.unwrap_or_default(),
                cell(f.doc)
            );
        }
    }
    for (support, title, intro) in [
        (
            Support::Ignored,
            "Ignored by kiln",
            "Packer accepts these; kiln accepts them too but they have no effect.",
        ),
        (
            Support::Unsupported,
            "Not supported by kiln",
            "Packer accepts these; kiln refuses a template that sets one (to anything but its zero value), naming the field.",
        ),
    ] {
        let fields: Vec<&Field> = schema.fields().filter(|f| f.support == support).collect();
        if fields.is_empty() {
            continue;
        }
        let _ = write!(
            s,
            "\n## {title}\n\n{intro}\n\n| Field | Type | What it does in Packer, or why kiln does not act on it |\n|---|---|---|\n"
        );
        for f in fields {
            let _ = writeln!(s, "| `{}` | `{}` | {} |", f.name, f.ty, cell(f.doc));
        }
    }
    s
}

/// A literal of the field's type as HCL writes it.
fn hcl_literal(field: &Field, text: &str) -> String {
    match field.ty {
        "string" | "duration" => serde_json::to_string(text).unwrap_or_else(|_| text.to_string()),
        _ => text.to_string(),
    }
}

fn default_text(field: &Field) -> String {
    match field.default {
        FieldDefault::Unset => String::new(),
        FieldDefault::Literal(text) => format!("`{}`", hcl_literal(field, text)),
        FieldDefault::Computed(description) => description.to_string(),
    }
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}
