//! Running builds: the pipelines of the `qemu` and `null` sources, the
//! provisioners, the post-processor chains, the on-error policy, and
//! several builds side by side.

mod cached;
pub use cached::CacheOptions;
mod null;
mod postprocessors;
mod provisioners;
mod qemu;
mod supervise;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_qemu::accel::AccelVerdict;
use tokio_util::sync::CancellationToken;

use crate::artifact::Artifact;
use crate::events::{BuildEvents, Event, Events, FailureDetail};
use crate::pipeline::{Pipeline, StepError, StepTiming};
use crate::spec::{BuildSpec, OnError, SourceSpec};

/// How this run of builds behaves.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Relative paths of templates resolve here (Packer: the working directory).
    pub cwd: PathBuf,
    /// `-force`: replace existing output directories.
    pub force: bool,
    pub on_error: OnError,
    /// Downloads and memos.
    pub cache_dir: PathBuf,
    /// Console logs live here, per build, so they survive a failed build.
    pub log_dir: PathBuf,
    /// Packer's `PACKER_RUN_UUID`.
    pub run_uuid: String,
    /// The accelerator probe's verdict (None: not probed, TCG is used
    /// unless the template says otherwise).
    pub kvm: Option<AccelVerdict>,
    /// `-parallel-builds`: 0 means no limit.
    pub parallel_builds: usize,
    /// No console output at all within this → "guest is silent".
    pub boot_silence_timeout: Duration,
    /// The step cache (`None`: `--no-cache`).
    pub cache: Option<CacheOptions>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Step(#[from] StepError),
    /// The build's task panicked or was cancelled: a bug of kiln.
    #[error("build task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl BuildError {
    /// What the user can do about it, when known.
    pub fn hint(&self) -> Option<&str> {
        match self {
            BuildError::Step(e) => e.hint(),
            BuildError::Task(_) => None,
        }
    }

    /// Its sources and hint, for events and records.
    pub fn detail(&self) -> FailureDetail {
        FailureDetail::of(self, self.hint())
    }
}

/// What one build produced.
#[derive(Debug)]
pub struct BuildOutcome {
    pub name: String,
    pub artifacts: Vec<Artifact>,
    pub timings: Vec<StepTiming>,
    pub millis: u64,
    pub error: Option<BuildError>,
    pub interrupted: bool,
    pub record: crate::pipeline::Record,
}

/// Tells a build how many of its siblings are still running (a qemu build
/// may need a file a null build of the same run is making, as in
/// packer-maas).
#[derive(Clone)]
pub struct Siblings {
    running: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Siblings {
    fn new(n: usize) -> Self {
        let (tx, _rx) = tokio::sync::watch::channel(n);
        Siblings {
            running: Arc::new(tx),
        }
    }

    fn finished(&self) {
        self.running.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Wait until `ready()` holds or no other build is running.
    pub async fn wait_for(&self, mut ready: impl FnMut() -> bool) -> bool {
        let mut rx = self.running.subscribe();
        loop {
            if ready() {
                return true;
            }
            // This build itself counts as one.
            if *rx.borrow() <= 1 {
                return ready();
            }
            let tick = tokio::time::sleep(Duration::from_millis(200));
            tokio::select! {
                r = rx.changed() => { if r.is_err() { return ready(); } }
                _ = tick => {}
            }
        }
    }
}

/// Run every build (in parallel up to the limit) and collect outcomes.
pub async fn run_all(
    specs: Vec<BuildSpec>,
    opts: &RunOptions,
    events: Events,
    cancel: CancellationToken,
) -> Vec<BuildOutcome> {
    let limit = if opts.parallel_builds == 0 {
        specs.len().max(1)
    } else {
        opts.parallel_builds
    };
    let semaphore = Arc::new(tokio::sync::Semaphore::new(limit));
    let siblings = Siblings::new(specs.len());
    let mut tasks = Vec::new();
    for spec in specs {
        let opts = opts.clone();
        let events = events.clone();
        let cancel = cancel.clone();
        let semaphore = semaphore.clone();
        let siblings = siblings.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let outcome = run_build(&spec, &opts, events, cancel, &siblings).await;
            siblings.finished();
            outcome
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        match t.await {
            Ok(o) => outcomes.push(o),
            Err(e) => outcomes.push(BuildOutcome {
                name: "?".into(),
                artifacts: Vec::new(),
                timings: Vec::new(),
                millis: 0,
                error: Some(BuildError::Task(e)),
                interrupted: false,
                record: Default::default(),
            }),
        }
    }
    outcomes
}

/// Run one build to the end, cleanups included.
pub async fn run_build(
    spec: &BuildSpec,
    opts: &RunOptions,
    events: Events,
    cancel: CancellationToken,
    siblings: &Siblings,
) -> BuildOutcome {
    let started = Instant::now();
    let ev = BuildEvents {
        build: spec.name.clone(),
        events,
    };
    ev.emit(Event::BuildStarted {
        build: spec.name.clone(),
    });
    let mut p = Pipeline::new(ev.clone(), cancel);
    let result = match &spec.source {
        SourceSpec::Qemu(cfg) => qemu::run(spec, cfg, opts, &mut p, siblings).await,
        SourceSpec::Null(cfg) => null::run(spec, cfg, opts, &mut p).await,
    };
    let (artifacts, error, interrupted) = match result {
        Ok(builder_artifact) => {
            p.cleanup().await;
            match postprocessors::run_chains(spec, builder_artifact, opts, &mut p).await {
                Ok(artifacts) => (artifacts, None, false),
                Err(e) => {
                    let interrupted = e.is_interrupted();
                    (Vec::new(), Some(BuildError::Step(e)), interrupted)
                }
            }
        }
        Err(StepError::Stopped { step }) => {
            p.cleanup().await;
            ev.say(format!(
                "Stopped after {step} as asked (`--until`): no artifact, the step is cached"
            ));
            (Vec::new(), None, false)
        }
        Err(e) => {
            let interrupted = e.is_interrupted();
            finish_failed(&mut p, opts.on_error, interrupted).await;
            (Vec::new(), Some(BuildError::Step(e)), interrupted)
        }
    };
    for a in &artifacts {
        ev.emit(Event::Artifact {
            build: spec.name.clone(),
            kind: a.kind.clone(),
            path: a.describe(),
            sha256: None,
            bytes: None,
        });
    }
    let duration = started.elapsed();
    ev.emit(Event::BuildFinished {
        build: spec.name.clone(),
        duration,
        error: error.as_ref().map(BuildError::to_string),
        failure: error.as_ref().map(BuildError::detail),
    });
    BuildOutcome {
        name: spec.name.clone(),
        artifacts,
        timings: p.timings().to_vec(),
        millis: duration.as_millis() as u64,
        error,
        interrupted,
        record: p.record.clone(),
    }
}

/// The on-error policy once a step failed.
async fn finish_failed(p: &mut Pipeline, on_error: OnError, interrupted: bool) {
    let policy = if interrupted {
        OnError::Cleanup
    } else {
        on_error
    };
    match policy {
        OnError::Cleanup => p.cleanup().await,
        OnError::Abort | OnError::RunCleanupProvisioner => {
            let left = p.abandon();
            if !left.is_empty() {
                p.ev.warn(format!(
                    "-on-error={}: left in place for inspection: {}",
                    if policy == OnError::Abort {
                        "abort"
                    } else {
                        "run-cleanup-provisioner"
                    },
                    left.join(", ")
                ));
            }
        }
        OnError::Ask => {
            if ask_cleanup(&p.ev).await {
                p.cleanup().await;
            } else {
                let left = p.abandon();
                p.ev.warn(format!("left in place: {}", left.join(", ")));
            }
        }
    }
}

/// `-on-error=ask`: clean up, or leave everything for inspection.
async fn ask_cleanup(ev: &BuildEvents) -> bool {
    use std::io::IsTerminal;
    use tokio::io::AsyncBufReadExt;
    if !std::io::stdin().is_terminal() {
        ev.warn("-on-error=ask without a terminal: cleaning up");
        return true;
    }
    ev.say("Step failed. [c] Clean up and exit, [a] abort without cleanup (leave the VM and files)? [c/a]");
    let mut line = String::new();
    let _ = tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await;
    !line.trim().eq_ignore_ascii_case("a")
}
