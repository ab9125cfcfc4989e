//! `kiln inspect`: variables with their origin, locals, builds.

use kiln_template::inspect::{self, SENSITIVE};
use kiln_template::load::Loaded;
use kiln_template::value::Value;

use crate::cli::TemplateArgs;
use crate::context::Context;
use crate::exit::Exit;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the machine-readable JSON document.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub template: TemplateArgs,
}

pub fn run(args: &Args, cx: &Context) -> Exit {
    let loaded = match super::load_template(&args.template, cx, Exit::Usage) {
        Ok(l) => l,
        Err(e) => return e,
    };
    if args.json {
        let doc = inspect::to_json(&loaded);
        match serde_json::to_string_pretty(&doc) {
            Ok(s) => render::out(&s),
            Err(e) => {
                render::error(&format!("cannot encode JSON: {e}"), None);
                return Exit::Failed;
            }
        }
    } else {
        render::out_raw(&human(&loaded));
    }
    Exit::Ok
}

/// A value on one line, as HCL-ish JSON.
pub fn show(v: &Value, sensitive: bool) -> String {
    if sensitive {
        return SENSITIVE.into();
    }
    v.to_json().to_string()
}

fn human(l: &Loaded) -> String {
    let mut s = String::from("> input-variables:\n\n");
    let mut vars: Vec<_> = l.variables.values().collect();
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    for v in vars {
        let value = v.value().map_or("<unset>".into(), |x| show(x, v.sensitive));
        let origin = v
            .origin()
            .map(kiln_template::load::describe_origin)
            .unwrap_or_default();
        s.push_str(&format!(
            "var.{}: {value}  ({}, from {origin})\n",
            v.name,
            v.type_string()
        ));
    }
    s.push_str("\n> local-variables:\n\n");
    let mut locals: Vec<_> = l.locals.values().collect();
    locals.sort_by(|a, b| a.name.cmp(&b.name));
    for loc in locals {
        let value = loc
            .value
            .as_ref()
            .map_or("<unknown>".into(), |x| show(x, loc.sensitive));
        s.push_str(&format!(
            "local.{}: {value}  ({}:{})\n",
            loc.name, loc.span.file, loc.span.line
        ));
    }
    s.push_str("\n> builds:\n");
    if l.builds.is_empty() {
        s.push_str("\n  <no build>\n");
    }
    for b in &l.builds {
        s.push_str(&format!("\n  > {}:\n", b.name));
        if let Some(d) = &b.description {
            s.push_str(&format!("\n    description: {d}\n"));
        }
        s.push_str(&format!(
            "\n    source: {}.{}\n",
            b.source.kind, b.source.name
        ));
        s.push_str("\n    provisioners:\n\n");
        if b.provisioners.is_empty() {
            s.push_str("      <no provisioner>\n");
        }
        for p in &b.provisioners {
            match &p.name {
                Some(n) => s.push_str(&format!("      {}.{n}\n", p.kind)),
                None => s.push_str(&format!("      {}\n", p.kind)),
            }
        }
        s.push_str("\n    post-processors:\n");
        if b.post_processors.is_empty() {
            s.push_str("\n      <no post-processor>\n");
        }
        for (i, chain) in b.post_processors.iter().enumerate() {
            s.push_str(&format!("\n      {i}:\n"));
            for p in chain {
                match &p.name {
                    Some(n) => s.push_str(&format!("        {}.{n}\n", p.kind)),
                    None => s.push_str(&format!("        {}\n", p.kind)),
                }
            }
        }
    }
    s.push('\n');
    s
}
