//! `kiln plan`: what `kiln build` would do, without doing it — the resolved
//! config per build, the accelerator QEMU will use and what decided it
//! (`accelerator`, `qemuargs`, or kiln's fallback), the exact QEMU argv and
//! `qemu-img` commands, the boot command as it will be typed (with preview
//! `{{ .HTTPIP }}`/`{{ .HTTPPort }}`), the steps. A build that cannot be
//! planned is an error (exit 2), in text and in `--json`.

use kiln_build::plan::{AccelFrom, decode_builds, plan_json};

use crate::cli::TemplateArgs;
use crate::context::Context;
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

pub fn run(args: &Args, cx: &Context) -> Exit {
    let loaded = match super::load_template(&args.template, cx, Exit::Usage) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let cwd = &cx.settings.cwd;
    let planned = match decode_builds(&loaded, cwd) {
        Ok(p) => p,
        Err(errors) => {
            render::diagnostics(&errors, &[]);
            render::error(&format!("the template has {} error(s)", errors.len()), None);
            return Exit::Usage;
        }
    };
    render::diagnostics(&[], &planned.warnings);
    // A build that cannot be planned could not run either: an error (exit
    // 2), never a plan with a hole in it.
    let mut plans = Vec::new();
    let mut failed = 0;
    for spec in &planned.specs {
        match plan_json(spec, cwd, &cx.settings.cache_root) {
            Ok(p) => plans.push(p),
            Err(e) => {
                render::error(&e.to_string(), None);
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Exit::Usage;
    }
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
            let from = serde_json::from_value::<AccelFrom>(p["accelerator_from"].clone())
                .map(|f| f.describe())
                .unwrap_or_default();
            render::out(&format!("  accelerator: {accel} ({from})"));
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
        if let Some(steps) = p["boot_command"].as_array()
            && !steps.is_empty()
        {
            render::out(&format!(
                "  boot command (`{{{{ .HTTPIP }}}}` = {}, `{{{{ .HTTPPort }}}}` = {}):",
                p["preview"]["HTTPIP"].as_str().unwrap_or(""),
                p["preview"]["HTTPPort"]
            ));
            for (i, step) in steps.iter().enumerate() {
                let mut indent = "    ";
                if steps.len() > 1 {
                    let description = step["description"]
                        .as_str()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default();
                    render::out(&format!("    step {}{description}", i + 1));
                    indent = "      ";
                }
                for key in step["keys"].as_array().into_iter().flatten() {
                    render::out(&format!("{indent}{}", key_line(key)));
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

/// One boot-command entry of the JSON plan as a line: `type "…"`,
/// `key <enter>`, `hold <leftCtrl>`, `release <leftCtrl>`, `wait 5s`.
fn key_line(key: &serde_json::Value) -> String {
    let Some((verb, value)) = key.as_object().and_then(|o| o.iter().next()) else {
        return String::new();
    };
    let value = value.as_str().unwrap_or("");
    match verb.as_str() {
        "type" => format!("type {value:?}"),
        "wait" => format!("wait {value}"),
        verb => format!("{verb} <{value}>"),
    }
}
