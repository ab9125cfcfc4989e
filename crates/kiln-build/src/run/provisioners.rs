//! Running the build's provisioners in order, with Packer's common
//! fields: `pause_before`, `max_retries`, `timeout`, `continue_on_error`;
//! and the `error-cleanup-provisioner` when one fails.
//!
//! `continue_on_error` follows Packer 1.16 (`packer/provisioner.go`,
//! `ContinueOnErrorProvisioner`, wrapped outside the retries in
//! `hcl2template/types.packer_config.go`): once every retry failed, the
//! failure is a warning and the build goes on. An interruption still
//! stops the build, and so does a QEMU that died (kiln's departure: no
//! later provisioner could reach the guest). A step that failed this way
//! is not checkpointed, nor is any after it: a rerun must run it again.

use std::path::Path;
use std::sync::Arc;

use kiln_qemu::placeholders::TemplateData;
use kiln_qemu::process::QemuProcess;

use crate::events::BuildEvents;
use crate::guest::Guest;
use crate::pipeline::{BoxError, Pipeline, StepError};
use crate::provision::shell::BuildFacts;
use crate::provision::{ProvisionerConfig, breakpoint, file, shell, shell_local};
use crate::spec::{BuildSpec, OnError, ProvisionerSpec};
use crate::step::StepId;

/// What every provisioner of a build shares.
pub(crate) struct ProvisionEnv<'a> {
    pub facts: BuildFacts,
    /// Go-template data (`{{ .HTTPIP }}`-style build values).
    pub data: TemplateData,
    pub cwd: &'a Path,
    /// A command to log into the guest, for breakpoints.
    pub ssh_hint: Option<String>,
    /// Seed for stable remote script names.
    pub seed: u64,
    /// The build's QEMU, watched while provisioners run (None: no VM).
    pub machine: Option<Arc<QemuProcess>>,
}

/// Run every provisioner in order, each as its own step (a build without
/// a step cache: the `null` source).
pub(crate) async fn run_all(
    spec: &BuildSpec,
    mut guest: Option<&mut Guest>,
    env: &ProvisionEnv<'_>,
    on_error: OnError,
    p: &mut Pipeline,
) -> Result<(), StepError> {
    for i in 0..spec.provisioners.len() {
        run_step(spec, i, guest.as_deref_mut(), env, on_error, p).await?;
    }
    Ok(())
}

/// Run provisioner `i` (0-based) as its step; when it fails, the
/// `error-cleanup-provisioner` (unless `-on-error=abort`).
pub(crate) async fn run_step(
    spec: &BuildSpec,
    i: usize,
    mut guest: Option<&mut Guest>,
    env: &ProvisionEnv<'_>,
    on_error: OnError,
    p: &mut Pipeline,
) -> Result<Ran, StepError> {
    let Some(prov) = spec.provisioners.get(i) else {
        return Ok(Ran::Succeeded);
    };
    let ev = p.ev.clone();
    let result = p
        .step(
            StepId::provision(spec, i),
            run_continuing(prov, guest.as_deref_mut(), env, &ev, i),
        )
        .await;
    if let Err(e) = &result
        && !e.is_interrupted()
        && on_error != OnError::Abort
        && let Some(cleanup) = &spec.error_cleanup
    {
        p.ev.say("Provisioning step had errors: Running the cleanup provisioner, if present...");
        let _ = p
            .step(
                StepId::ErrorCleanupProvisioner,
                run_with_retries(cleanup, guest, env, &ev, usize::MAX),
            )
            .await;
    }
    result
}

/// How a provisioner's step ended without stopping the build.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Ran {
    Succeeded,
    /// It failed, and `continue_on_error` let the build go on.
    FailedContinued,
}

/// Why a provisioner's step failed.
#[derive(Debug)]
enum Failure {
    /// QEMU exited: nothing after this can reach the guest.
    QemuDied(String),
    /// The provisioner itself failed (after its retries), with its cause.
    Provisioner(BoxError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::QemuDied(m) => f.write_str(m),
            Failure::Provisioner(e) => e.fmt(f),
        }
    }
}

/// The provisioner's own error stands for the failure: its sources follow.
impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::QemuDied(_) => None,
            Failure::Provisioner(e) => e.source(),
        }
    }
}

/// [`run_with_retries`], with `continue_on_error` applied to its result.
async fn run_continuing(
    prov: &ProvisionerSpec,
    guest: Option<&mut Guest>,
    env: &ProvisionEnv<'_>,
    ev: &BuildEvents,
    index: usize,
) -> Result<Ran, Failure> {
    match run_with_retries(prov, guest, env, ev, index).await {
        Ok(()) => Ok(Ran::Succeeded),
        Err(Failure::Provisioner(e)) if prov.continue_on_error => {
            ev.warn(format!(
                "Provisioner failed with {:?}, but continue_on_error is set; continuing the build.",
                e.to_string()
            ));
            Ok(Ran::FailedContinued)
        }
        Err(e) => Err(e),
    }
}

async fn run_with_retries(
    prov: &ProvisionerSpec,
    mut guest: Option<&mut Guest>,
    env: &ProvisionEnv<'_>,
    ev: &BuildEvents,
    index: usize,
) -> Result<(), Failure> {
    if !prov.pause_before.is_zero() {
        ev.say(format!(
            "Pausing {:?} before the next provisioner...",
            prov.pause_before
        ));
        tokio::time::sleep(prov.pause_before).await;
    }
    let mut attempt = 0;
    loop {
        let run = run_one(prov, guest.as_deref_mut(), env, ev, index);
        let run = async {
            match prov.timeout {
                Some(limit) => match tokio::time::timeout(limit, run).await {
                    Ok(r) => r,
                    Err(_) => Err(BoxError::from(format!(
                        "provisioner timed out after {limit:?} (`timeout`)"
                    ))),
                },
                None => run.await,
            }
        };
        // A dead QEMU is the error, and no retry can help.
        let result = match &env.machine {
            Some(qemu) => super::supervise::watch(qemu, run)
                .await
                .map_err(Failure::QemuDied)?,
            None => run.await,
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if attempt < prov.max_retries => {
                attempt += 1;
                ev.warn(format!(
                    "provisioner failed ({e}); retrying ({attempt}/{})",
                    prov.max_retries
                ));
            }
            Err(e) => return Err(Failure::Provisioner(e)),
        }
    }
}

async fn run_one(
    prov: &ProvisionerSpec,
    guest: Option<&mut Guest>,
    env: &ProvisionEnv<'_>,
    ev: &BuildEvents,
    index: usize,
) -> Result<(), BoxError> {
    let no_guest = || {
        format!(
            "the `{}` provisioner needs a communicator, but this build has `communicator = \"none\"`",
            prov.config.type_name()
        )
    };
    match &prov.config {
        ProvisionerConfig::Shell(cfg) => {
            let guest = guest.ok_or_else(no_guest)?;
            let seed = env.seed.wrapping_add(index as u64);
            let plan = shell::plan(cfg, &env.facts, &env.data, seed)?;
            shell::run(cfg, &plan, guest, ev)
                .await
                .map_err(BoxError::from)
        }
        ProvisionerConfig::File(cfg) => {
            let guest = guest.ok_or_else(no_guest)?;
            file::run(cfg, env.cwd, &env.data, guest, ev)
                .await
                .map_err(BoxError::from)
        }
        ProvisionerConfig::ShellLocal(cfg) => {
            shell_local::run(cfg, env.cwd, &env.facts, &env.data, ev)
                .await
                .map(|_| ())
                .map_err(BoxError::from)
        }
        ProvisionerConfig::Breakpoint(cfg) => {
            breakpoint::run(cfg, env.ssh_hint.as_deref(), ev).await;
            Ok(())
        }
    }
}
