//! Rendering build events: Packer-like `==> name: message` lines (with
//! colour and progress bars on a terminal), or one JSON object per line.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_build::events::{Event, StepOutcome, Stream};
use kiln_build::step::StepId;

/// How events are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Human lines; colour and bars when stdout is a terminal.
    Human,
    /// One JSON event per line on stdout.
    Json,
}

pub struct Renderer {
    mode: Mode,
    color: bool,
    tty: bool,
    /// Also print the guest's serial console.
    console: bool,
    bars: MultiProgress,
    active: HashMap<(String, String), ProgressBar>,
    palette: HashMap<String, &'static str>,
}

const COLORS: &[&str] = &[
    "\x1b[1;36m",
    "\x1b[1;32m",
    "\x1b[1;35m",
    "\x1b[1;33m",
    "\x1b[1;34m",
];
const RESET: &str = "\x1b[0m";

impl Renderer {
    pub fn new(mode: Mode, console: bool) -> Self {
        let tty = std::io::stdout().is_terminal();
        let color = tty && crate::render::color_allowed();
        let bars = MultiProgress::with_draw_target(if tty && mode == Mode::Human {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        });
        Renderer {
            mode,
            color,
            tty,
            console,
            bars,
            active: HashMap::new(),
            palette: HashMap::new(),
        }
    }

    fn paint(&mut self, build: &str) -> (&'static str, &'static str) {
        if !self.color {
            return ("", "");
        }
        let n = self.palette.len();
        let c = *self
            .palette
            .entry(build.to_string())
            .or_insert(COLORS[n % COLORS.len()]);
        (c, RESET)
    }

    fn line(&self, text: &str) {
        if self.tty && self.mode == Mode::Human {
            let _ = self.bars.println(text);
        } else {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{text}");
        }
    }

    pub fn render(&mut self, event: &Event) {
        if self.mode == Mode::Json {
            let event = event.clone().map_text(&crate::render::redact);
            if let Ok(json) = serde_json::to_string(&event) {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "{json}");
            }
            return;
        }
        let event = &event.clone().map_text(&crate::render::clean);
        match event {
            Event::BuildStarted { .. } => {}
            Event::Say { build, message } => {
                let (c, r) = self.paint(build);
                for (i, l) in message.lines().enumerate() {
                    if i == 0 {
                        self.line(&format!("{c}==> {build}: {l}{r}"));
                    } else {
                        self.line(&format!("{c}    {build}: {l}{r}"));
                    }
                }
            }
            Event::Warning { build, message } => {
                let (y, r) = if self.color {
                    ("\x1b[1;33m", RESET)
                } else {
                    ("", "")
                };
                self.line(&format!("{y}==> {build}: warning: {message}{r}"));
            }
            Event::Output {
                build,
                stream,
                line,
            } => {
                let (c, r) = self.paint(build);
                let dim = if *stream == Stream::Stderr && self.color {
                    "\x1b[31m"
                } else {
                    c
                };
                self.line(&format!("{dim}    {build}: {line}{r}"));
            }
            Event::Console { build, line } => {
                if self.console {
                    self.line(&format!("    {build} console: {line}"));
                }
            }
            Event::Diagnosis {
                build,
                stage,
                message,
            } => {
                let (c, r) = self.paint(build);
                self.line(&format!("{c}    {build}: [{stage}] {message}{r}"));
            }
            Event::Progress {
                build,
                task,
                done,
                total,
            } => {
                let key = (build.clone(), task.clone());
                let finished = total.is_some_and(|t| *done >= t);
                let bar = self.active.entry(key.clone()).or_insert_with(|| {
                    let bar = match total {
                        Some(t) => ProgressBar::new(*t),
                        None => ProgressBar::new_spinner(),
                    };
                    bar.set_style(
                        ProgressStyle::with_template(
                            "    {prefix} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    bar.set_prefix(format!("{build}: {task}"));
                    self.bars.add(bar)
                });
                if let Some(t) = total {
                    bar.set_length(*t);
                }
                bar.set_position(*done);
                if finished && let Some(bar) = self.active.remove(&key) {
                    bar.finish_and_clear();
                }
            }
            Event::StepStarted { .. } => {}
            Event::StepFinished {
                build,
                step,
                duration,
                outcome,
            } => {
                // Close any bar the step left open.
                let keys: Vec<_> = self
                    .active
                    .keys()
                    .filter(|(b, _)| b == build)
                    .cloned()
                    .collect();
                for k in keys {
                    if let Some(bar) = self.active.remove(&k) {
                        bar.finish_and_clear();
                    }
                }
                match outcome {
                    StepOutcome::Cached { key } => {
                        let (c, r) = self.paint(build);
                        self.line(&format!("{c}==> {build}: {step}: cached ({key}){r}"));
                    }
                    StepOutcome::Failed { error } => {
                        let (red, r) = if self.color {
                            ("\x1b[1;31m", RESET)
                        } else {
                            ("", "")
                        };
                        self.line(&format!(
                            "{red}==> {build}: {step} failed after {}: {error}{r}",
                            human(*duration)
                        ));
                    }
                    // Provisioners are what the step cache decides about:
                    // each says whether it ran or came from the cache.
                    StepOutcome::Ran if matches!(step, StepId::Provision { .. }) => {
                        let (c, r) = self.paint(build);
                        self.line(&format!(
                            "{c}==> {build}: {step}: ran ({}){r}",
                            human(*duration)
                        ));
                    }
                    StepOutcome::Skipped { .. } | StepOutcome::Ran => {}
                }
            }
            Event::Artifact { .. } => {}
            Event::BuildFinished {
                build,
                duration,
                error,
                ..
            } => {
                let (c, r) = self.paint(build);
                match error {
                    None => self.line(&format!(
                        "{c}Build '{build}' finished after {}.{r}",
                        human(*duration)
                    )),
                    Some(_) => self.line(&format!(
                        "{c}Build '{build}' errored after {}.{r}",
                        human(*duration)
                    )),
                }
            }
        }
    }
}

/// `1 minute 5 seconds`, `850 milliseconds`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms} milliseconds");
    }
    let s = d.as_secs();
    let (m, s) = (s / 60, s % 60);
    let frac = (d.subsec_millis() / 100) as u64;
    match m {
        0 => format!("{s}.{frac} seconds"),
        1 => format!("1 minute {s} seconds"),
        m => format!("{m} minutes {s} seconds"),
    }
}
