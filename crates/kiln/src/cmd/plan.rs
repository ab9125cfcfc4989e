//! `kiln plan`: what `kiln build` would do, without doing it — the resolved
//! config per build, the exact QEMU argv and `qemu-img` commands, the steps.

use kiln_build::plan::{decode_builds, plan_json};
use kiln_build::spec::SourceSpec;
use kiln_qemu::Accelerator;

use crate::cli::TemplateArgs;
use crate::exit::Exit;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub template: TemplateArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> Exit {
    let loaded = match super::load_template(&args.template, Exit::Usage) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let planned = match decode_builds(&loaded, &cwd) {
        Ok(p) => p,
        Err(errors) => {
            render::diagnostics(&errors, &[]);
            render::error(&format!("the template has {} error(s)", errors.len()), None);
            return Exit::Usage;
        }
    };
    render::diagnostics(&[], &planned.warnings);
    let cache = super::build::cache_dir();
    let plans: Vec<serde_json::Value> = planned
        .specs
        .iter()
        .map(|spec| {
            let accel = match &spec.source {
                SourceSpec::Qemu(q) => q.accelerator.unwrap_or(Accelerator::Tcg),
                SourceSpec::Null(_) => Accelerator::None,
            };
            plan_json(spec, accel, &cwd, &cache)
        })
        .collect();
    if args.json {
        let doc = serde_json::json!({ "builds": plans });
        match serde_json::to_string_pretty(&doc) {
            Ok(s) => render::out(&s),
            Err(e) => {
                render::error(&format!("cannot encode the plan: {e}"), None);
                return Exit::Failed;
            }
        }
        return Exit::Ok;
    }
    for p in &plans {
        render::out(&format!("build {}", p["name"].as_str().unwrap_or("?")));
        if let Some(accel) = p["accelerator"].as_str() {
            render::out(&format!(
                "  accelerator: {accel} (unset in the template: decided at build time by the KVM probe)"
            ));
        }
        if let Some(cmds) = p["qemu_img"]["before_boot"].as_array() {
            render::out("  before boot:");
            for c in cmds {
                render::out(&format!("    {}", c.as_str().unwrap_or("")));
            }
        }
        if let Some(argv) = p["qemu"]["argv"].as_array() {
            render::out("  qemu:");
            let args: Vec<&str> = argv.iter().filter_map(|a| a.as_str()).collect();
            let mut i = 0;
            while i < args.len() {
                if i + 1 < args.len() && args[i].starts_with('-') && !args[i + 1].starts_with('-') {
                    render::out(&format!("    {} {}", args[i], args[i + 1]));
                    i += 2;
                } else {
                    render::out(&format!("    {}", args[i]));
                    i += 1;
                }
            }
        }
        if let Some(notes) = p["qemu"]["notes"].as_array() {
            for n in notes {
                render::out(&format!("  note: {}", n.as_str().unwrap_or("")));
            }
        }
        if let Some(cmds) = p["qemu_img"]["after_shutdown"].as_array()
            && !cmds.is_empty()
        {
            render::out("  after shutdown:");
            for c in cmds {
                render::out(&format!("    {}", c.as_str().unwrap_or("")));
            }
        }
        if let Some(steps) = p["steps"].as_array() {
            render::out("  steps:");
            for (i, s) in steps.iter().enumerate() {
                render::out(&format!("    {:>2}. {}", i + 1, s.as_str().unwrap_or("")));
            }
        }
    }
    Exit::Ok
}
