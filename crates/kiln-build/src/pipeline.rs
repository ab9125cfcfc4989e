//! The step runner: timed events, cancellation, and cleanups that run in
//! reverse on success, failure and interruption.
//!
//! A step is any future returning `Result`; the pipeline gives it a name,
//! emits started/finished events with its duration, and races it against
//! the build's cancellation token (Ctrl-C, SIGTERM, a failed sibling).
//! A cleanup is registered the moment its resource exists, so nothing
//! (QEMU, temp keys, half-written artifacts) outlives the build.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::events::{BuildEvents, Event, StepOutcome};

/// A failed or interrupted step.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{step}: {message}")]
    Failed { step: String, message: String },
    #[error("{step}: interrupted")]
    Interrupted { step: String },
    /// `--until`: the build ends after this step, on purpose.
    #[error("stopped after {step} (`--until`)")]
    Stopped { step: String },
}

impl StepError {
    pub fn is_interrupted(&self) -> bool {
        matches!(self, StepError::Interrupted { .. })
    }

    pub fn step(&self) -> &str {
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
    pub step: String,
    pub millis: u64,
    pub outcome: StepOutcome,
}

type Cleanup = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

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
    cleanups: Vec<(String, Cleanup)>,
    timings: Vec<StepTiming>,
    started: Instant,
}

impl Pipeline {
    pub fn new(ev: BuildEvents, cancel: CancellationToken) -> Self {
        Pipeline {
            ev,
            record: Record::default(),
            cancel,
            cleanups: Vec::new(),
            timings: Vec::new(),
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

    /// Run one named step.
    pub async fn step<T, E, F>(&mut self, name: &str, fut: F) -> Result<T, StepError>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        self.ev.emit(Event::StepStarted {
            build: self.ev.build.clone(),
            step: name.to_string(),
        });
        let start = Instant::now();
        let result = tokio::select! {
            r = fut => r.map_err(|e| StepError::Failed { step: name.to_string(), message: e.to_string() }),
            _ = self.cancel.cancelled() => Err(StepError::Interrupted { step: name.to_string() }),
        };
        let outcome = match &result {
            Ok(_) => StepOutcome::Ran,
            Err(e) => StepOutcome::Failed {
                error: e.to_string(),
            },
        };
        self.finish(name, start.elapsed(), outcome);
        result
    }

    /// Record a step that did not run (cached or skipped).
    pub fn record(&mut self, name: &str, outcome: StepOutcome) {
        self.finish(name, Duration::ZERO, outcome);
    }

    fn finish(&mut self, name: &str, duration: Duration, outcome: StepOutcome) {
        self.timings.push(StepTiming {
            step: name.to_string(),
            millis: duration.as_millis() as u64,
            outcome: outcome.clone(),
        });
        self.ev.emit(Event::StepFinished {
            build: self.ev.build.clone(),
            step: name.to_string(),
            duration,
            outcome,
        });
    }

    /// Register a cleanup to run when the build ends, newest first.
    pub fn defer<F>(&mut self, what: impl Into<String>, cleanup: F)
    where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.cleanups.push((what.into(), Box::pin(cleanup)));
    }

    /// Drop the most recent cleanup named `what` without running it (the
    /// resource was handed over, e.g. a temp file renamed into place).
    pub fn forget(&mut self, what: &str) {
        if let Some(i) = self.cleanups.iter().rposition(|(w, _)| w == what) {
            drop(self.cleanups.remove(i));
        }
    }

    /// Run every cleanup in reverse order. Failures are reported as
    /// warnings; every cleanup runs regardless.
    pub async fn cleanup(&mut self) {
        while let Some((what, cleanup)) = self.cleanups.pop() {
            if let Err(e) = cleanup.await {
                self.ev.warn(format!("cleanup `{what}` failed: {e}"));
            }
        }
    }

    /// Leave every resource in place (`-on-error=abort`), telling the user
    /// what was left.
    pub fn abandon(&mut self) -> Vec<String> {
        self.cleanups.drain(..).rev().map(|(w, _)| w).collect()
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
            p.defer(name, async move {
                order.lock().unwrap().push(name);
                Ok(())
            });
        }
        let r: Result<(), _> = p.step("provision", async { Err("boom") }).await;
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
            .step("wait_ssh", async {
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
            .step("create_disk", async { Ok::<_, String>(7) })
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
        p.defer("first", async move {
            *r2.lock().unwrap() = true;
            Ok(())
        });
        p.defer("second", async { Err("no such file".to_string()) });
        p.cleanup().await;
        assert!(*ran.lock().unwrap());
        assert!(matches!(rx.try_recv().unwrap(), Event::Warning { .. }));
    }
}
