//! Starting the build's VM, one interface with two implementations:
//! [`launch_plain`](super::launch_plain) makes the disks with `qemu-img`
//! and spawns QEMU (`create_disk`…, `run_qemu`), as Packer does;
//! [`launch_cached`](super::launch_cached) finds the longest cached prefix
//! of the build and boots or resumes a VM on overlays in the step cache
//! (`cache_lookup`, `run_qemu`/`resume_vm`). The [`Vm`] either returns
//! is what later steps use; the differences stay behind its methods
//! (checkpoints, which provisioner comes first, how the output disks are
//! written).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiln_qemu::Accelerator;
use kiln_qemu::QemuConfig;
use kiln_qemu::disk::DiskCommand;
use kiln_qemu::placeholders;
use kiln_qemu::plan::QemuPlan;
use kiln_qemu::process::QemuProcess;
use kiln_qemu::qmp::Qmp;

use super::download::SourceImage;
use super::launch_cached::Cached;
use super::launch_plain;
use crate::cache::checkpoint::Resumed;
use crate::cache::store::Store;
use crate::events::{BuildEvents, StepOutcome};
use crate::guest::Guest;
use crate::pipeline::{Pipeline, StepError};
use crate::run::cached::CacheRun;
use crate::run::provisioners::Ran;
use crate::run::supervise::forward_console;
use crate::run::{RunOptions, Siblings};
use crate::spec::BuildSpec;
use crate::step::{CacheUse, StepId};

/// How this build starts its VM.
pub(super) enum Launcher {
    Plain,
    Cached(Box<Cached>),
}

/// What launching needs of the build.
pub(super) struct Launch<'a> {
    pub spec: &'a BuildSpec,
    pub cfg: &'a QemuConfig,
    pub opts: &'a RunOptions,
    pub plan: &'a QemuPlan,
    pub source: &'a SourceImage,
    pub accelerator: Accelerator,
}

impl Launcher {
    /// The step cache when the run uses it and this build can, else plain.
    pub fn choose(cfg: &QemuConfig, opts: &RunOptions, ev: &BuildEvents) -> Launcher {
        match Cached::open(cfg, opts, ev) {
            Some(c) => Launcher::Cached(Box::new(c)),
            None => Launcher::Plain,
        }
    }

    /// The step cache's store (the build's SSH key derives from it).
    pub fn store(&self) -> Option<&Store> {
        match self {
            Launcher::Plain => None,
            Launcher::Cached(c) => Some(c.store()),
        }
    }

    /// The planned command line, which the cache must be able to take
    /// over (else the build goes on without it).
    pub fn take_argv(self, plan: &QemuPlan, cwd: &Path, ev: &BuildEvents) -> Launcher {
        match self {
            Launcher::Plain => Launcher::Plain,
            Launcher::Cached(c) => match c.take_argv(plan, cwd) {
                Ok(c) => Launcher::Cached(Box::new(c)),
                Err(why) => {
                    ev.say(format!("Step cache off for this build: {why}"));
                    Launcher::Plain
                }
            },
        }
    }

    pub fn cache_use(&self) -> CacheUse {
        match self {
            Launcher::Plain => CacheUse::Off,
            Launcher::Cached(_) => CacheUse::On,
        }
    }

    /// Start the VM: its disks, then QEMU (or a resumed checkpoint).
    pub async fn launch(self, b: Launch<'_>, p: &mut Pipeline) -> Result<Vm, StepError> {
        let cwd = b.opts.cwd.as_path();
        let disk_plan = kiln_qemu::plan_disk(
            b.cfg,
            b.source
                .absolute
                .as_deref()
                .map(|path| kiln_qemu::disk::SourceImage { path, format: None }),
        )
        .map_err(|e| StepError::failed(StepId::CreateDisk, e))?;
        if let Launcher::Plain = self {
            launch_plain::create_disks(&disk_plan.before_boot, cwd, p).await?;
        }
        let console_log = console_log(b.opts, b.spec);
        p.ev.say(if b.cfg.disk_image {
            "Starting VM, booting disk image"
        } else {
            "Starting VM, booting from CD-ROM"
        });
        let (qemu, kind, resumed, skipped) = match self {
            Launcher::Plain => {
                let qemu = launch_plain::run_qemu(b.plan, cwd, console_log, p).await?;
                let after_shutdown = disk_plan.after_shutdown;
                (qemu, VmKind::Plain { after_shutdown }, None, Vec::new())
            }
            Launcher::Cached(c) => {
                let started = c.start(&b, console_log, p).await?;
                (
                    started.run.vm.process().clone(),
                    VmKind::Cached(Box::new(started.run)),
                    started.resumed,
                    started.skipped,
                )
            }
        };
        {
            let q = qemu.clone();
            let _ = p.defer("stop QEMU", async move {
                if q.try_exit().is_none() {
                    q.terminate(Duration::from_secs(2)).await;
                }
                Ok(())
            });
        }
        forward_console(&qemu, &p.ev);
        Ok(Vm {
            qemu,
            kind,
            resumed,
            skipped,
        })
    }
}

/// The build's console log, per build, where it survives a failed build.
fn console_log(opts: &RunOptions, spec: &BuildSpec) -> PathBuf {
    let log_dir = opts.log_dir.join(sanitize(&spec.name));
    let _ = std::fs::create_dir_all(&log_dir);
    let console_log = log_dir.join("console.log");
    let _ = std::fs::remove_file(&console_log);
    console_log
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The running VM.
pub(super) struct Vm {
    pub qemu: Arc<QemuProcess>,
    kind: VmKind,
    /// Resumed after this key index (0: SSH up), and how.
    resumed: Option<(usize, Resumed)>,
    /// Provisioners the resume skipped, recorded once SSH is up.
    skipped: Vec<(StepId, StepOutcome)>,
}

enum VmKind {
    /// Output disks converted in place after shutdown by these commands.
    Plain {
        after_shutdown: Vec<DiskCommand>,
    },
    Cached(Box<CacheRun>),
}

impl Vm {
    /// The QMP connection of a cached VM, which holds QEMU's only one
    /// (a plain VM's steps connect on their own).
    pub fn qmp(&self) -> Option<&Qmp> {
        match &self.kind {
            VmKind::Plain { .. } => None,
            VmKind::Cached(c) => Some(c.vm.qmp()),
        }
    }

    /// Whether the VM was resumed past its boot.
    pub fn resumed(&self) -> bool {
        self.resumed.is_some()
    }

    /// The first provisioner (0-based) to run: those before it are cached.
    pub fn first_provisioner(&self) -> usize {
        self.resumed.map_or(0, |(index, _)| index)
    }

    /// SSH is up: set a restored guest's clock, or checkpoint a fresh one.
    pub async fn after_ssh(
        &mut self,
        guest: Option<&Guest>,
        p: &mut Pipeline,
    ) -> Result<(), StepError> {
        for (step, outcome) in self.skipped.drain(..) {
            p.record(step, outcome);
        }
        if let (Some((_, Resumed::State)), Some(g)) = (&self.resumed, guest) {
            // The restored guest's clock stopped at the checkpoint.
            let command =
                crate::cache::checkpoint::clock_sync_command(std::time::SystemTime::now());
            if let Err(e) = g.exec_quiet(&command).await {
                p.ev.warn(format!("cannot set the restored guest's clock: {e}"));
            }
        }
        match &mut self.kind {
            VmKind::Cached(c) if self.resumed.is_none() => c.after(0, guest, p).await,
            _ => Ok(()),
        }
    }

    /// Provisioner `done` (1-based), `step`, ended as `ran`: checkpoint
    /// it, unless it failed and `continue_on_error` went on.
    pub async fn after_provisioner(
        &mut self,
        step: &StepId,
        done: usize,
        ran: Ran,
        guest: Option<&Guest>,
        p: &mut Pipeline,
    ) -> Result<(), StepError> {
        let VmKind::Cached(c) = &mut self.kind else {
            return Ok(());
        };
        if ran == Ran::FailedContinued && c.publishing {
            p.ev.warn(format!(
                "not caching {step}: it failed (`continue_on_error`); later steps are not cached"
            ));
            c.publishing = false;
        }
        c.after(done, guest, p).await
    }

    /// After shutdown, `convert_disk`: the output disks from the cache's
    /// overlay chain, or converted / compacted in place.
    pub async fn write_disks(
        self,
        cfg: &QemuConfig,
        cwd: &Path,
        source: Option<&Path>,
        p: &mut Pipeline,
    ) -> Result<(), StepError> {
        match self.kind {
            VmKind::Cached(c) => {
                p.ev.say("Writing the output disk from the cached chain...");
                p.step(StepId::ConvertDisk, c.finish(cfg, cwd, source))
                    .await
            }
            VmKind::Plain { after_shutdown } => {
                launch_plain::convert_disks(&after_shutdown, cwd, p).await
            }
        }
    }
}

/// packer-maas prepares files that `qemuargs` names (the seed ISO, the
/// UEFI variables) in a `null` build of the same run, concurrently. When
/// such a file is missing and other builds are still running, wait for
/// them rather than start QEMU without it.
pub(super) async fn wait_for_sibling_files(
    cfg: &QemuConfig,
    cwd: &Path,
    siblings: &Siblings,
    ev: &BuildEvents,
) {
    let missing = || -> Vec<PathBuf> {
        qemuargs_files(cfg)
            .into_iter()
            .map(|f| cwd.join(f))
            .filter(|p| !p.exists())
            .collect()
    };
    let first = missing();
    if first.is_empty() {
        return;
    }
    let names: Vec<String> = first.iter().map(|p| p.display().to_string()).collect();
    ev.say(format!(
        "Waiting for {} (named by qemuargs; another build of this run may create it)",
        names.join(", ")
    ));
    siblings.wait_for(|| missing().is_empty()).await;
}

/// Files named by `file=` in qemuargs `-drive` values, except the disks
/// kiln creates itself.
fn qemuargs_files(cfg: &QemuConfig) -> Vec<String> {
    let own = cfg.disk_paths();
    let mut out = Vec::new();
    for arg in &cfg.qemuargs {
        let Some((switch, rest)) = arg.split_first() else {
            continue;
        };
        let value = rest.concat();
        if switch == "-drive"
            && let Some(f) = kiln_qemu::optstr::OptionString::parse(&value).get("file")
            && !placeholders::has_actions(f)
            && !own.iter().any(|o| o == f)
        {
            out.push(f.to_string());
        }
    }
    out
}
