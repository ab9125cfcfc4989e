//! The step runner: timed events, cancellation, and cleanups that run in
//! reverse on success, failure and interruption.
//!
//! A step is any future returning `Result`; the pipeline gives it its
//! [`StepId`], emits started/finished events with its duration, and races
//! it against the build's cancellation token (Ctrl-C, SIGTERM, a failed
//! sibling). A cleanup is registered the moment its resource exists, so
//! nothing (QEMU, temp keys, half-written artifacts) outlives the build;
//! its [`Cleanup`] handle dismisses it when the resource is handed over.
//! Given the build's step list ([`Pipeline::expect`]), the pipeline checks
//! that the runner runs those steps in that order.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::events::{BuildEvents, Event, StepOutcome};
use crate::step::StepId;

/// Any error a step fails with: a lower crate's typed error, or a message
/// (`String` and `&str` convert too).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failed, interrupted or deliberately stopped step.
///
/// A failure keeps its cause as a typed source: its text reads
/// `step: cause`, and [`std::error::Error::source`] goes on with the
/// cause's own sources, so the edge prints each once (`caused by:`).
#[derive(Debug)]
pub enum StepError {
    Failed {
        step: StepId,
        source: BoxError,
        /// What the user can do about it, when known.
        hint: Option<String>,
    },
    Interrupted {
        step: StepId,
    },
    /// `--until`: the build ends after this step, on purpose.
    Stopped {
        step: StepId,
    },
}

impl StepError {
    /// `step` failed with `cause` (a typed error, or a message).
    pub fn failed(step: StepId, cause: impl Into<BoxError>) -> StepError {
        let source: BoxError = cause.into();
        // A cause that knows its hint brings it along.
        match source.downcast::<Hinted>() {
            Ok(h) => StepError::Failed {
                step,
                source: h.source,
                hint: Some(h.hint),
            },
            Err(source) => StepError::Failed {
                step,
                source,
                hint: None,
            },
        }
    }

    /// `step` failed for the reason `message` says.
    pub fn msg(step: StepId, message: impl Into<String>) -> StepError {
        StepError::failed(step, message.into())
    }

    /// The same failure, with what the user can do about it.
    pub fn with_hint(self, hint: impl Into<String>) -> StepError {
        match self {
            StepError::Failed { step, source, .. } => StepError::Failed {
                step,
                source,
                hint: Some(hint.into()),
            },
            other => other,
        }
    }

    pub fn is_interrupted(&self) -> bool {
        matches!(self, StepError::Interrupted { .. })
    }

    pub fn step(&self) -> &StepId {
        match self {
            StepError::Failed { step, .. }
            | StepError::Interrupted { step }
            | StepError::Stopped { step } => step,
        }
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            StepError::Failed { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Failed { step, source, .. } => write!(f, "{step}: {source}"),
            StepError::Interrupted { step } => write!(f, "{step}: interrupted"),
            StepError::Stopped { step } => write!(f, "stopped after {step} (`--until`)"),
        }
    }
}

impl std::error::Error for StepError {
    /// The cause's sources: the cause itself is already in the text.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StepError::Failed { source, .. } => source.source(),
            _ => None,
        }
    }
}

/// An error with a hint: what a step returns when it knows what the user
/// can do ([`StepError::failed`] takes the hint out).
#[derive(Debug)]
pub struct Hinted {
    pub source: BoxError,
    pub hint: String,
}

impl Hinted {
    pub fn new(source: impl Into<BoxError>, hint: impl Into<String>) -> Hinted {
        Hinted {
            source: source.into(),
            hint: hint.into(),
        }
    }
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for Hinted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

/// How long a step took and how it ended (for the build record).
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepTiming {
    pub step: StepId,
    pub millis: u64,
    pub outcome: StepOutcome,
}

type CleanupFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A registered cleanup, to dismiss once its resource is handed over
/// (a temporary output renamed into place).
#[derive(Debug)]
pub struct Cleanup {
    id: u64,
}

/// What a build records about itself beyond timings (kiln's build record).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Record {
    /// Sources read: URL, where it is, its verified checksum.
    pub inputs: Vec<serde_json::Value>,
    /// Leak-scan verdicts of the artifacts.
    pub scans: Vec<serde_json::Value>,
}

pub struct Pipeline {
    pub ev: BuildEvents,
    /// Filled by steps as they learn facts worth keeping.
    pub record: Record,
    cancel: CancellationToken,
    cleanups: Vec<(u64, String, CleanupFuture)>,
    next_cleanup: u64,
    timings: Vec<StepTiming>,
    /// The build's step list, once known: every step run or recorded must
    /// come next in it.
    expected: Option<Vec<StepId>>,
    /// Where in `expected` the next step is searched from.
    cursor: usize,
    started: Instant,
}

impl Pipeline {
    pub fn new(ev: BuildEvents, cancel: CancellationToken) -> Self {
        Pipeline {
            ev,
            record: Record::default(),
            cancel,
            cleanups: Vec::new(),
            next_cleanup: 0,
            timings: Vec::new(),
            expected: None,
            cursor: 0,
            started: Instant::now(),
        }
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn timings(&self) -> &[StepTiming] {
        &self.timings
    }

    /// The build's step list ([`crate::step::build_steps`]): from now on,
    /// and for the steps already run, each step must come next in it.
    pub fn expect(&mut self, steps: Vec<StepId>) {
        self.expected = Some(steps);
        self.cursor = 0;
        let ran: Vec<StepId> = self.timings.iter().map(|t| t.step.clone()).collect();
        for step in &ran {
            self.cursor = self.check_order(step, self.cursor);
        }
    }

    /// The place after `step` in the expected list, searched from `cursor`.
    /// A step out of order is a bug of the runner: an assertion in debug
    /// builds, a warning otherwise.
    fn check_order(&self, step: &StepId, cursor: usize) -> usize {
        let Some(list) = &self.expected else {
            return cursor;
        };
        if *step == StepId::ErrorCleanupProvisioner {
            return cursor;
        }
        match list.iter().skip(cursor).position(|l| step.fills(l)) {
            Some(k) => cursor + k + 1,
            None => {
                let listed: Vec<String> = list.iter().map(StepId::to_string).collect();
                debug_assert!(
                    false,
                    "step `{step}` is not next in the build's list: {}",
                    listed.join(", ")
                );
                tracing::warn!(
                    "step `{step}` is not next in the build's list: {}",
                    listed.join(", ")
                );
                cursor
            }
        }
    }

    /// Run one step: its own future, whose error is the step's failure.
    pub async fn step<T, E, F>(&mut self, step: StepId, fut: F) -> Result<T, StepError>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<BoxError>,
    {
        self.cursor = self.check_order(&step, self.cursor);
        self.ev.emit(Event::StepStarted {
            build: self.ev.build.clone(),
            step: step.clone(),
        });
        let start = Instant::now();
        let result = tokio::select! {
            r = fut => r.map_err(|e| StepError::failed(step.clone(), e)),
            _ = self.cancel.cancelled() => Err(StepError::Interrupted { step: step.clone() }),
        };
        let outcome = match &result {
            Ok(_) => StepOutcome::Ran,
            Err(e) => StepOutcome::Failed {
                error: e.to_string(),
            },
        };
        self.finish(step, start.elapsed(), outcome);
        result
    }

    /// Record a step that did not run (cached or skipped).
    pub fn record(&mut self, step: StepId, outcome: StepOutcome) {
        self.cursor = self.check_order(&step, self.cursor);
        self.finish(step, Duration::ZERO, outcome);
    }

    fn finish(&mut self, step: StepId, duration: Duration, outcome: StepOutcome) {
        self.timings.push(StepTiming {
            step: step.clone(),
            millis: duration.as_millis() as u64,
            outcome: outcome.clone(),
        });
        self.ev.emit(Event::StepFinished {
            build: self.ev.build.clone(),
            step,
            duration,
            outcome,
        });
    }

    /// Register a cleanup to run when the build ends, newest first.
    pub fn defer<F>(&mut self, what: impl Into<String>, cleanup: F) -> Cleanup
    where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        let id = self.next_cleanup;
        self.next_cleanup += 1;
        self.cleanups.push((id, what.into(), Box::pin(cleanup)));
        Cleanup { id }
    }

    /// Drop a cleanup without running it: its resource was handed over
    /// (an output directory that is the artifact now).
    pub fn dismiss(&mut self, cleanup: Cleanup) {
        self.cleanups.retain(|(id, _, _)| *id != cleanup.id);
    }

    /// Run every cleanup in reverse order. Failures are reported as
    /// warnings; every cleanup runs regardless.
    pub async fn cleanup(&mut self) {
        while let Some((_, what, cleanup)) = self.cleanups.pop() {
            if let Err(e) = cleanup.await {
                self.ev.warn(format!("cleanup `{what}` failed: {e}"));
            }
        }
    }

    /// Leave every resource in place (`-on-error=abort`), telling the user
    /// what was left.
    pub fn abandon(&mut self) -> Vec<String> {
        self.cleanups.drain(..).rev().map(|(_, w, _)| w).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Events;
    use std::sync::{Arc, Mutex};

    fn pipeline() -> (Pipeline, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let ev = BuildEvents {
            build: "qemu.x".into(),
            events: Events::new(tx, kiln_secret::Redactor::default()),
        };
        (Pipeline::new(ev, CancellationToken::new()), rx)
    }

    #[tokio::test]
    async fn cleanups_run_in_reverse_even_after_a_failure() {
        let (mut p, _rx) = pipeline();
        let order = Arc::new(Mutex::new(Vec::new()));
        for name in ["disk", "http", "qemu"] {
            let order = order.clone();
            let _ = p.defer(name, async move {
                order.lock().unwrap().push(name);
                Ok(())
            });
        }
        let r: Result<(), _> = p.step(StepId::Shutdown, async { Err("boom") }).await;
        assert!(matches!(r, Err(StepError::Failed { .. })));
        p.cleanup().await;
        assert_eq!(*order.lock().unwrap(), vec!["qemu", "http", "disk"]);
    }

    #[tokio::test]
    async fn cancellation_interrupts_the_running_step() {
        let (mut p, _rx) = pipeline();
        let token = p.cancel_token().clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            token.cancel();
        });
        let r: Result<(), StepError> = p
            .step(StepId::WaitSsh, async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok::<_, String>(())
            })
            .await;
        assert!(r.unwrap_err().is_interrupted());
    }

    #[tokio::test]
    async fn steps_emit_timed_events() {
        let (mut p, mut rx) = pipeline();
        let v = p
            .step(StepId::CreateDisk, async { Ok::<_, String>(7) })
            .await
            .unwrap();
        assert_eq!(v, 7);
        assert!(matches!(rx.try_recv().unwrap(), Event::StepStarted { .. }));
        assert!(matches!(
            rx.try_recv().unwrap(),
            Event::StepFinished {
                outcome: StepOutcome::Ran,
                ..
            }
        ));
        assert_eq!(p.timings().len(), 1);
    }

    #[tokio::test]
    async fn a_failing_cleanup_warns_and_the_rest_still_run() {
        let (mut p, mut rx) = pipeline();
        let ran = Arc::new(Mutex::new(false));
        let r2 = ran.clone();
        let _ = p.defer("first", async move {
            *r2.lock().unwrap() = true;
            Ok(())
        });
        let _ = p.defer("second", async { Err("no such file".to_string()) });
        p.cleanup().await;
        assert!(*ran.lock().unwrap());
        assert!(matches!(rx.try_recv().unwrap(), Event::Warning { .. }));
    }

    #[tokio::test]
    async fn a_dismissed_cleanup_does_not_run() {
        let (mut p, _rx) = pipeline();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for name in ["dir", "tmp"] {
            let order = order.clone();
            handles.push(p.defer(name, async move {
                order.lock().unwrap().push(name);
                Ok(())
            }));
        }
        p.dismiss(handles.remove(0));
        p.cleanup().await;
        assert_eq!(*order.lock().unwrap(), vec!["tmp"]);
    }

    #[tokio::test]
    async fn steps_may_skip_listed_ones_but_keep_their_order() {
        let (mut p, _rx) = pipeline();
        p.record(StepId::SshKey, StepOutcome::Ran);
        p.expect(vec![
            StepId::SshKey,
            StepId::RunQemu,
            StepId::TypeBootCommand,
            StepId::WaitSsh,
        ]);
        // A resumed VM stands for `run_qemu` and skips the boot command.
        p.step(StepId::ResumeVm, async { Ok::<_, String>(()) })
            .await
            .unwrap();
        p.step(StepId::WaitSsh, async { Ok::<_, String>(()) })
            .await
            .unwrap();
        assert_eq!(p.timings().len(), 3);
    }

    #[tokio::test]
    #[should_panic(expected = "is not next in the build's list")]
    async fn a_step_out_of_order_is_a_bug() {
        let (mut p, _rx) = pipeline();
        p.expect(vec![StepId::RunQemu, StepId::WaitSsh]);
        p.record(StepId::WaitSsh, StepOutcome::Ran);
        p.record(StepId::RunQemu, StepOutcome::Ran);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the image")]
    struct Outer(#[source] std::io::Error);

    #[tokio::test]
    async fn a_failure_keeps_its_typed_causes_and_hint() {
        let (mut p, _rx) = pipeline();
        let r: Result<(), _> = p
            .step(StepId::CreateDisk, async {
                Err(Outer(std::io::Error::other("disk full")))
            })
            .await;
        let e = r.unwrap_err();
        assert_eq!(e.to_string(), "create_disk: cannot read the image");
        let cause = std::error::Error::source(&e).unwrap();
        assert_eq!(cause.to_string(), "disk full");
        assert_eq!(e.hint(), None);

        let r: Result<(), _> = p
            .step(StepId::PrepareOutputDir, async {
                Err(Hinted::new("output directory out exists", "use -force"))
            })
            .await;
        let e = r.unwrap_err();
        assert_eq!(
            e.to_string(),
            "prepare_output_dir: output directory out exists"
        );
        assert_eq!(e.hint(), Some("use -force"));
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(
            StepError::msg(StepId::Scrub, "boom").with_hint("h").hint(),
            Some("h")
        );
    }
}
