//! `kiln build`: load, decode, check the host, run every selected build,
//! and report artifacts — Packer's `packer build`.

use std::time::Duration;

use kiln_build::events::Events;
use kiln_build::plan::decode_builds;
use kiln_build::run::{CacheOptions, RunOptions, run_all};
use kiln_build::spec::{OnError, SourceSpec};
use kiln_qemu::accel::ProbeOptions;
use kiln_secret::{Redactor, Sensitive};
use tokio_util::sync::CancellationToken;

use crate::cli::TemplateArgs;
use crate::context::Context;
use crate::env_vars;
use crate::events::{Mode, Renderer};
use crate::exit::Exit;
use crate::render;
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub template: TemplateArgs,
    /// Delete existing output directories before building (Packer's -force).
    #[arg(long)]
    pub force: bool,
    /// What to do when a build fails: cleanup, abort, ask, run-cleanup-provisioner.
    #[arg(long = "on-error", value_name = "POLICY", default_value = "cleanup")]
    pub on_error: String,
    /// How many builds run at once (0: all).
    #[arg(long = "parallel-builds", value_name = "N", default_value_t = 0)]
    pub parallel_builds: usize,
    /// One JSON event per line on stdout instead of human output.
    #[arg(long)]
    pub json: bool,
    /// Also print the guest's serial console.
    #[arg(long)]
    pub console: bool,
    /// Start even if the host check says the build cannot work.
    #[arg(long = "skip-preflight")]
    pub skip_preflight: bool,
    /// Do not use the step cache: boot from the base image, run every step,
    /// keep no checkpoint.
    #[arg(long = "no-cache", conflicts_with_all = ["from", "until", "resume"])]
    pub no_cache: bool,
    /// Rerun from this step even when it is cached (a name or index as
    /// `kiln plan` lists them, or a unique prefix such as `provision 3`).
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// Stop after this step (`wait_ssh` or a provisioner), keeping its
    /// checkpoint; no artifact is made.
    #[arg(long, value_name = "STEP")]
    pub until: Option<String>,
    /// Continue a failed build from its last cached step; fails when no
    /// step of the build is cached.
    #[arg(long)]
    pub resume: bool,
    /// Force software emulation: `tcg` rewrites `accel=kvm`, `-enable-kvm`
    /// and `-cpu host` in the template (for hosts where KVM does not run
    /// guests) and prints what it rewrote.
    #[arg(long, value_name = "ACCEL", env = env_vars::KILN_ACCEL)]
    pub accel: Option<String>,
}

/// The step cache settings, unless `--no-cache`.
fn step_cache(args: &Args, settings: &Settings, secrets: &[String]) -> Option<CacheOptions> {
    if args.no_cache {
        return None;
    }
    Some(CacheOptions {
        root: settings.step_cache_root(),
        from: args.from.clone(),
        until: args.until.clone(),
        resume: args.resume,
        sensitive: secrets.iter().cloned().map(Sensitive::new).collect(),
    })
}

pub fn run(args: &Args, cx: &Context) -> Exit {
    let settings = &cx.settings;
    let Some(on_error) = OnError::parse(&args.on_error) else {
        return crate::cli::usage_error(&format!(
            "`-on-error={}` is not a policy: use cleanup, abort, ask or run-cleanup-provisioner",
            args.on_error
        ));
    };
    let loaded = match super::load_template(&args.template, cx, Exit::Usage) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let cwd = settings.cwd.clone();
    let mut planned = match decode_builds(&loaded, &cwd) {
        Ok(p) => p,
        Err(errors) => {
            render::diagnostics(&errors, &[]);
            render::error(&format!("the template has {} error(s)", errors.len()), None);
            return Exit::Usage;
        }
    };
    render::diagnostics(&[], &planned.warnings);
    match args.accel.as_deref() {
        None | Some("") => {}
        Some("tcg") => {
            for spec in &mut planned.specs {
                if let SourceSpec::Qemu(q) = &mut spec.source {
                    for change in kiln_qemu::emulate::force_tcg(q) {
                        render::err_line(&format!("==> {}: --accel tcg: {change}", spec.name));
                    }
                }
            }
        }
        Some(other) => {
            return crate::cli::usage_error(&format!(
                "`--accel {other}` (or KILN_ACCEL): only `tcg` can be forced; KVM is used when the host runs it"
            ));
        }
    }
    if planned.specs.is_empty() {
        render::error(
            "no build matches `-only`/`-except`",
            Some(&format!(
                "the template's builds are: {}",
                loaded.all_build_names.join(", ")
            )),
        );
        return Exit::Usage;
    }

    // Sensitive variables, and what is written in the fields the schemas
    // mark sensitive.
    let mut secrets = loaded.sensitive_values();
    secrets.extend(kiln_build::schema::sensitive_values(&loaded));
    let redactor = Redactor::new(secrets.clone());
    render::set_redactor(&redactor);
    let run_id = run_uuid();

    let runtime = match cx.runtime() {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mode = if args.json { Mode::Json } else { Mode::Human };
    let outcome = runtime.block_on(async {
        let needs_probe = planned
            .specs
            .iter()
            .any(|s| matches!(&s.source, SourceSpec::Qemu(q) if q.accelerator.is_none() || q.accelerator == Some(kiln_qemu::Accelerator::Kvm)));
        let kvm = if needs_probe {
            let probe = ProbeOptions::cached_in(&settings.cache_root);
            Some(kiln_qemu::accel::probe_accelerator_with(&probe).await.verdict)
        } else {
            None
        };
        let opts = RunOptions {
            cwd: cwd.clone(),
            force: args.force,
            on_error,
            cache_dir: settings.cache_root.clone(),
            log_dir: cwd.join(".kiln").join("logs"),
            run_uuid: run_id.clone(),
            kvm,
            parallel_builds: args.parallel_builds,
            boot_silence_timeout: Duration::from_secs(120),
            cache: step_cache(args, settings, &secrets),
        };
        if !args.skip_preflight
            && let Err(exit) = super::preflight::refuse_if_unfit(&planned.specs, &loaded, &opts, mode).await
        {
            return (Vec::new(), exit);
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let events = Events::new(tx, redactor.clone());
        let cancel = CancellationToken::new();
        let signals = spawn_signal_watch(cancel.clone());
        let mut renderer = Renderer::new(mode, args.console);
        let run = tokio::spawn({
            let opts = opts.clone();
            let cancel = cancel.clone();
            async move { run_all(planned.specs, &opts, events, cancel).await }
        });
        while let Some(e) = rx.recv().await {
            renderer.render(&e);
        }
        signals.abort();
        let outcomes = match run.await {
            Ok(o) => o,
            Err(e) => {
                render::error(&format!("the build runner failed: {e}"), None);
                return (Vec::new(), Exit::Failed);
            }
        };
        let exit = if cancel.is_cancelled() {
            Exit::Interrupted
        } else if outcomes.iter().any(|o| o.error.is_some()) {
            Exit::Failed
        } else {
            Exit::Ok
        };
        (outcomes, exit)
    });
    let (outcomes, exit) = outcome;
    let records = crate::record::write(&outcomes, &loaded, &cwd, &run_id, &redactor);
    if mode == Mode::Human && !outcomes.is_empty() {
        summarize(&outcomes);
        for r in &records {
            render::out(&format!("==> Build record: {}", r.display()));
        }
        for o in &outcomes {
            if let Some(e) = &o.error {
                render::error_chain_of(&o.name, e, e.hint());
            }
        }
    }
    exit
}

fn summarize(outcomes: &[kiln_build::run::BuildOutcome]) {
    let failed: Vec<_> = outcomes.iter().filter(|o| o.error.is_some()).collect();
    if !failed.is_empty() {
        render::out("\n==> Some builds didn't complete successfully and had errors:");
        for o in &failed {
            let error = o
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            render::out(&format!("--> {}: {error}", o.name));
        }
    }
    render::out("\n==> Builds finished. The artifacts of successful builds are:");
    for o in outcomes.iter().filter(|o| o.error.is_none()) {
        if o.artifacts.is_empty() {
            render::out(&format!("--> {}: no artifacts", o.name));
        }
        for a in &o.artifacts {
            render::out(&format!("--> {}: {}", o.name, a.describe()));
        }
    }
}

/// A v4-style random UUID for `PACKER_RUN_UUID`.
fn run_uuid() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Ctrl-C and SIGTERM cancel every build; their cleanups still run.
fn spawn_signal_watch(cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        render::err_line("==> interrupted: stopping builds and cleaning up...");
        cancel.cancel();
    })
}
