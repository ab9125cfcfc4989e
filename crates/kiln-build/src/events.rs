//! What a build reports while it runs. Renderers (TTY, plain, JSON lines)
//! live in the binary; everything below it only emits these.

use std::time::Duration;

use serde::Serialize;

use kiln_secret::Redactor;

use crate::step::StepId;

/// Which output stream of a guest or local command a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepOutcome {
    Ran,
    Cached { key: String },
    Skipped { reason: String },
    Failed { error: String },
}

/// One thing that happened in a build. Every text field has passed the
/// build's redactor before it reaches a renderer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    BuildStarted {
        build: String,
    },
    StepStarted {
        build: String,
        step: StepId,
    },
    StepFinished {
        build: String,
        step: StepId,
        #[serde(serialize_with = "millis")]
        duration: Duration,
        outcome: StepOutcome,
    },
    /// A line for the user, as Packer's `==> name: message`.
    Say {
        build: String,
        message: String,
    },
    Warning {
        build: String,
        message: String,
    },
    /// Long work: download, conversion, compression, boot.
    Progress {
        build: String,
        task: String,
        done: u64,
        total: Option<u64>,
    },
    /// A line printed by a provisioner's command (guest or local).
    Output {
        build: String,
        stream: Stream,
        line: String,
    },
    /// A line from the guest's serial console.
    Console {
        build: String,
        line: String,
    },
    /// The state of a wait changed (e.g. SSH: port closed → banner).
    Diagnosis {
        build: String,
        stage: String,
        message: String,
    },
    Artifact {
        build: String,
        kind: String,
        path: String,
        sha256: Option<String>,
        bytes: Option<u64>,
    },
    BuildFinished {
        build: String,
        #[serde(serialize_with = "millis")]
        duration: Duration,
        /// The failure in one line (`step: cause`), as Packer shows it.
        error: Option<String>,
        /// For a failed build: `causes` and `hint` next to `error`.
        #[serde(flatten)]
        failure: Option<FailureDetail>,
    },
}

/// What a failed build's error says beyond its first line: each source
/// (`caused by:`), then what to do (`hint:`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FailureDetail {
    pub causes: Vec<String>,
    pub hint: Option<String>,
}

impl FailureDetail {
    /// The sources of `err` (not `err` itself) and a hint.
    pub fn of(err: &dyn std::error::Error, hint: Option<&str>) -> FailureDetail {
        let mut causes = Vec::new();
        let mut source = err.source();
        while let Some(s) = source {
            causes.push(s.to_string());
            source = s.source();
        }
        FailureDetail {
            causes,
            hint: hint.map(str::to_string),
        }
    }
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Event {
    /// The same event with every text field passed through the redactor.
    pub fn redacted(self, r: &Redactor) -> Event {
        if r.is_empty() {
            return self;
        }
        self.map_text(&|s| r.redact(s).into_owned())
    }

    /// The same event with every free-text field (messages, output and
    /// console lines, errors, artifact paths) passed through `f`: the
    /// redactor, or a renderer's escaping of control characters.
    pub fn map_text(self, f: &dyn Fn(&str) -> String) -> Event {
        let m = |s: String| f(&s);
        match self {
            Event::Say { build, message } => Event::Say {
                build,
                message: m(message),
            },
            Event::Warning { build, message } => Event::Warning {
                build,
                message: m(message),
            },
            Event::Output {
                build,
                stream,
                line,
            } => Event::Output {
                build,
                stream,
                line: m(line),
            },
            Event::Console { build, line } => Event::Console {
                build,
                line: m(line),
            },
            Event::Diagnosis {
                build,
                stage,
                message,
            } => Event::Diagnosis {
                build,
                stage,
                message: m(message),
            },
            Event::StepFinished {
                build,
                step,
                duration,
                outcome: StepOutcome::Failed { error },
            } => Event::StepFinished {
                build,
                step,
                duration,
                outcome: StepOutcome::Failed { error: m(error) },
            },
            Event::Artifact {
                build,
                kind,
                path,
                sha256,
                bytes,
            } => Event::Artifact {
                build,
                kind,
                path: m(path),
                sha256,
                bytes,
            },
            Event::BuildFinished {
                build,
                duration,
                error,
                failure,
            } => Event::BuildFinished {
                build,
                duration,
                error: error.map(m),
                failure: failure.map(|d| FailureDetail {
                    causes: d.causes.into_iter().map(m).collect(),
                    hint: d.hint.map(m),
                }),
            },
            other => other,
        }
    }
}

/// Where events go: a channel to the renderer, behind the redactor.
#[derive(Clone)]
pub struct Events {
    tx: tokio::sync::mpsc::UnboundedSender<Event>,
    redactor: Redactor,
}

impl Events {
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<Event>, redactor: Redactor) -> Self {
        Events { tx, redactor }
    }

    /// A sink whose events are dropped (tests, `plan`).
    pub fn discard() -> Self {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        Events {
            tx,
            redactor: Redactor::default(),
        }
    }

    /// Learn secrets found during the build (the throwaway key).
    pub fn add_secrets<I, S>(&mut self, secrets: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.redactor = self.redactor.clone().with(secrets);
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn emit(&self, event: Event) {
        // A closed renderer must not stop the build.
        let _ = self.tx.send(event.redacted(&self.redactor));
    }
}

/// Events of one build, so steps don't repeat its name.
#[derive(Clone)]
pub struct BuildEvents {
    pub build: String,
    pub events: Events,
}

impl BuildEvents {
    pub fn say(&self, message: impl Into<String>) {
        self.events.emit(Event::Say {
            build: self.build.clone(),
            message: message.into(),
        });
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.events.emit(Event::Warning {
            build: self.build.clone(),
            message: message.into(),
        });
    }

    pub fn progress(&self, task: &str, done: u64, total: Option<u64>) {
        self.events.emit(Event::Progress {
            build: self.build.clone(),
            task: task.to_string(),
            done,
            total,
        });
    }

    pub fn output(&self, stream: Stream, line: impl Into<String>) {
        self.events.emit(Event::Output {
            build: self.build.clone(),
            stream,
            line: line.into(),
        });
    }

    pub fn console(&self, line: impl Into<String>) {
        self.events.emit(Event::Console {
            build: self.build.clone(),
            line: line.into(),
        });
    }

    pub fn diagnosis(&self, stage: &str, message: impl Into<String>) {
        self.events.emit(Event::Diagnosis {
            build: self.build.clone(),
            stage: stage.to_string(),
            message: message.into(),
        });
    }

    pub fn emit(&self, event: Event) {
        self.events.emit(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_redacted_before_they_leave() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let events = Events::new(tx, Redactor::new(["s3cret"]));
        let b = BuildEvents {
            build: "qemu.x".into(),
            events,
        };
        b.output(Stream::Stdout, "password is s3cret");
        let got = rx.try_recv().unwrap();
        assert_eq!(
            got,
            Event::Output {
                build: "qemu.x".into(),
                stream: Stream::Stdout,
                line: "password is <sensitive>".into()
            }
        );
    }

    #[test]
    fn events_serialize_as_tagged_json() {
        let e = Event::StepFinished {
            build: "b".into(),
            step: StepId::WaitSsh,
            duration: Duration::from_millis(1500),
            outcome: StepOutcome::Ran,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"event":"step_finished","build":"b","step":"wait_ssh","duration":1500,"outcome":{"kind":"ran"}}"#
        );
    }

    #[test]
    fn a_failed_build_carries_its_causes_and_hint_next_to_the_error() {
        let e = Event::BuildFinished {
            build: "b".into(),
            duration: Duration::from_millis(5),
            error: Some("wait_ssh: timeout s3cret".into()),
            failure: Some(FailureDetail {
                causes: vec!["connection refused s3cret".into()],
                hint: Some("check sshd".into()),
            }),
        }
        .redacted(&Redactor::new(["s3cret"]));
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"build_finished","build":"b","duration":5,"error":"wait_ssh: timeout <sensitive>","causes":["connection refused <sensitive>"],"hint":"check sshd"}"#
        );
        let ok = Event::BuildFinished {
            build: "b".into(),
            duration: Duration::from_millis(5),
            error: None,
            failure: None,
        };
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"event":"build_finished","build":"b","duration":5,"error":null}"#
        );
    }
}
