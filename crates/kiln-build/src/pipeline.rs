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

/// A failed or interrupted step.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{step}: {message}")]
    Failed { step: StepId, message: String },
    #[error("{step}: interrupted")]
    Interrupted { step: StepId },
    /// `--until`: the build ends after this step, on purpose.
    #[error("stopped after {step} (`--until`)")]
    Stopped { step: StepId },
}

impl StepError {
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

    /// Run one step.
    pub async fn step<T, E, F>(&mut self, step: StepId, fut: F) -> Result<T, StepError>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        self.cursor = self.check_order(&step, self.cursor);
        self.ev.emit(Event::StepStarted {
            build: self.ev.build.clone(),
            step: step.clone(),
        });
        let start = Instant::now();
        let result = tokio::select! {
            r = fut => r.map_err(|e| StepError::Failed { step: step.clone(), message: e.to_string() }),
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
}
