//! `kiln doctor`: facts and verdicts about this host (QEMU, `qemu-img`,
//! the KVM probe, firmware, memory, disk), and, given a template, the host
//! against what its builds demand. `--fix` installs what is missing with
//! apt and says what it ran.

use std::path::PathBuf;

use kiln_build::plan::decode_each;
use kiln_build::preflight::{
    Check, CollectOptions, HostFacts, Status, apply_fix, doctor_checks, fix_plan, worst,
};

use crate::cli::{TemplateArgs, TemplateFlags};
use crate::context::Context;
use crate::exit::Exit;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object per check: `{"id","status","detail","fix"}`.
    #[arg(long)]
    pub json: bool,
    /// Install what is missing with the system package manager (apt).
    #[arg(long)]
    pub fix: bool,
    // `-var`, `-var-file`, `-only`, `-except`, as `build` takes them.
    #[command(flatten)]
    pub template: TemplateFlags,
    /// A template to check the host against (optional).
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
}

impl Args {
    /// The template flags, when a template was given.
    fn template(&self) -> Option<TemplateArgs> {
        Some(TemplateArgs {
            flags: self.template.clone(),
            path: self.path.clone()?,
        })
    }
}

pub fn run(args: &Args, cx: &Context) -> Exit {
    let settings = &cx.settings;
    let cwd = settings.cwd.clone();
    // A build that cannot be planned is reported (its errors, and a failed
    // `template` check) and the others are still checked.
    let mut template_checks = Vec::new();
    let demands = match args.template() {
        None => None,
        Some(t) => {
            let loaded = match super::load_template(&t, cx, Exit::Usage) {
                Ok(l) => l,
                Err(e) => return e,
            };
            let each = decode_each(&loaded, &cwd);
            let errors: Vec<_> = each.failed.iter().flat_map(|(_, es)| es.clone()).collect();
            render::diagnostics(&errors, &each.planned.warnings);
            for (build, es) in &each.failed {
                let first = es.first().map(|d| d.summary.as_str()).unwrap_or("");
                let more = match es.len() {
                    0 | 1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                };
                template_checks.push(
                    Check::fail(
                        "template",
                        format!("build {build} cannot be planned: {first}{more}"),
                    )
                    .with_fix("fix the template errors printed above"),
                );
            }
            let opts = kiln_build::run::RunOptions {
                cwd: cwd.clone(),
                force: false,
                on_error: Default::default(),
                cache_dir: settings.cache_root.clone(),
                log_dir: cwd.join(".kiln/logs"),
                run_uuid: String::new(),
                kvm: None,
                parallel_builds: 0,
                boot_silence_timeout: std::time::Duration::from_secs(120),
                cache: None,
            };
            Some(super::preflight::demands(
                &each.planned.specs,
                &loaded,
                &opts,
            ))
        }
    };
    let runtime = match cx.runtime() {
        Ok(r) => r,
        Err(e) => return e,
    };
    runtime.block_on(async {
        let demands_slice = demands.as_deref().unwrap_or(&[]);
        let facts =
            HostFacts::collect(demands_slice, &CollectOptions::doctor(&settings.cache_root)).await;
        // With demands, doctor_checks holds the template's checks too.
        let mut checks = doctor_checks(&facts, demands.as_deref());
        let template_failed = !template_checks.is_empty();
        checks.extend(template_checks);
        print_checks(&checks, args.json);
        if args.fix {
            let plan = fix_plan(&checks);
            if plan.is_empty() {
                render::err_line("doctor --fix: nothing to install");
            } else {
                match apply_fix(&plan, facts.os.as_ref()).await {
                    Ok(report) => {
                        for r in &report.ran {
                            render::err_line(&format!("doctor --fix ran: {}", r.argv.join(" ")));
                        }
                        if let Some(h) = &report.by_hand {
                            render::err_line(&format!("install by hand: {h}"));
                        }
                        return Exit::Ok;
                    }
                    Err(e) => {
                        render::error(&format!("doctor --fix: {e}"), None);
                        return Exit::Failed;
                    }
                }
            }
        }
        if template_failed {
            // A template error, as `validate` and `build` exit with.
            Exit::Usage
        } else if worst(&checks) == Status::Fail {
            Exit::Failed
        } else {
            Exit::Ok
        }
    })
}

fn print_checks(checks: &[Check], json: bool) {
    for c in checks {
        if json {
            render::out(&serde_json::to_string(c).unwrap_or_default());
            continue;
        }
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        render::out(&format!("{mark} {:<13} {}", c.id, c.detail));
        if let Some(fix) = &c.fix
            && c.status != Status::Ok
        {
            render::out(&format!("     {:<13} fix: {fix}", ""));
        }
    }
}
