//! Typing a boot command over QMP: `send-key` per key with a pause after
//! each (keys sent back to back with `input-send-event` are lost under TCG),
//! keys held with `…On`/`…Off` through `input-send-event`, `<wait>`s as
//! timed pauses, and an optional echo check that compares the line echoed
//! on the serial console with what was typed before pressing Enter.

use std::time::Duration;

use crate::bootcmd::{Action, BootCommandError, BootItem, Key, Special, char_qcode};
use crate::process::Console;
use crate::qmp::{Qmp, QmpError};

/// kiln's pause after each key when neither `boot_key_interval` nor
/// `PACKER_KEY_INTERVAL` says otherwise (Packer's VNC default is 100 ms;
/// QMP `send-key` is reliable here at 20–50 ms per key).
pub const DEFAULT_KEY_INTERVAL: Duration = Duration::from_millis(40);
/// How long `send-key` holds a key down.
pub const DEFAULT_HOLD: Duration = Duration::from_millis(10);

/// How to type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypingOptions {
    /// Pause after each key.
    pub key_interval: Duration,
    /// How long a pressed key is held.
    pub hold: Duration,
    /// Compare each typed line with the console echo before Enter; the
    /// duration is how long to wait for the echo.
    pub echo_check: Option<Duration>,
}

impl Default for TypingOptions {
    fn default() -> Self {
        TypingOptions {
            key_interval: DEFAULT_KEY_INTERVAL,
            hold: DEFAULT_HOLD,
            echo_check: None,
        }
    }
}

impl TypingOptions {
    /// `boot_key_interval`, else `PACKER_KEY_INTERVAL` (as Packer reads it),
    /// else kiln's default.
    pub fn with_interval(configured: Option<Duration>) -> TypingOptions {
        let env = std::env::var("PACKER_KEY_INTERVAL")
            .ok()
            .and_then(|v| kiln_template::decode::parse_go_duration(&v).ok());
        TypingOptions {
            key_interval: configured.or(env).unwrap_or(DEFAULT_KEY_INTERVAL),
            ..TypingOptions::default()
        }
    }
}

/// What typing did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypingReport {
    pub keys: usize,
    /// Lines whose echo was checked.
    pub lines_checked: usize,
    pub took: Duration,
}

/// Typing that failed.
#[derive(Debug, thiserror::Error)]
pub enum TypingError {
    #[error(transparent)]
    BootCommand(#[from] BootCommandError),
    #[error("typing the boot command: {0}")]
    Qmp(#[from] QmpError),
    #[error(
        "the console did not echo the typed line within {waited:?}: typed {expected:?}, console shows {seen:?} (keys lost? try a larger `boot_key_interval`)"
    )]
    EchoMismatch {
        expected: String,
        seen: String,
        waited: Duration,
    },
}

fn is_enter(key: Key) -> bool {
    matches!(
        key,
        Key::Special(Special::Enter)
            | Key::Special(Special::Return)
            | Key::Char('\n')
            | Key::Char('\r')
    )
}

/// Type `items` (a parsed, rendered boot command).
pub async fn type_boot_command(
    qmp: &Qmp,
    items: &[BootItem],
    options: &TypingOptions,
    console: Option<&Console>,
) -> Result<TypingReport, TypingError> {
    // Refuse untypable characters before the first key.
    crate::bootcmd::strokes(items)?;
    let started = tokio::time::Instant::now();
    let mut report = TypingReport::default();
    let mut line = String::new();
    let mut line_start = console.map(Console::offset).unwrap_or(0);

    for item in items {
        match *item {
            BootItem::Wait(d) => tokio::time::sleep(d).await,
            BootItem::Key { key, action } => {
                if action == Action::Press && is_enter(key) {
                    if let (Some(timeout), Some(console)) = (options.echo_check, console)
                        && !line.is_empty()
                    {
                        let expected = line.clone();
                        let seen = console
                            .wait_for(line_start, timeout, |t| t.contains(&expected))
                            .await;
                        if let Err(seen) = seen {
                            return Err(TypingError::EchoMismatch {
                                expected,
                                seen,
                                waited: timeout,
                            });
                        }
                        report.lines_checked += 1;
                    }
                    line.clear();
                } else if let (Action::Press, Key::Char(c)) = (action, key) {
                    if line.is_empty() {
                        line_start = console.map(Console::offset).unwrap_or(0);
                    }
                    line.push(c);
                } else if matches!(key, Key::Special(Special::Bs)) && action == Action::Press {
                    line.pop();
                } else {
                    // The echo of other keys cannot be predicted.
                    line.clear();
                }
                send(qmp, key, action, options).await?;
                report.keys += 1;
                tokio::time::sleep(options.key_interval).await;
            }
        }
    }
    report.took = started.elapsed();
    Ok(report)
}

async fn send(
    qmp: &Qmp,
    key: Key,
    action: Action,
    options: &TypingOptions,
) -> Result<(), TypingError> {
    let (qcode, shift) = match key {
        Key::Char(c) => char_qcode(c).ok_or(BootCommandError::Untypable { ch: c })?,
        Key::Special(s) => (s.qcode(), false),
    };
    match action {
        Action::Press if shift => qmp.send_key(&["shift", qcode], options.hold).await?,
        Action::Press => qmp.send_key(&[qcode], options.hold).await?,
        Action::Down => {
            if shift {
                qmp.key_event("shift", true).await?;
            }
            qmp.key_event(qcode, true).await?;
        }
        Action::Up => {
            qmp.key_event(qcode, false).await?;
            if shift {
                qmp.key_event("shift", false).await?;
            }
        }
    }
    Ok(())
}
