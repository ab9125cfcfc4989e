//! QEMU supervision: spawned in its own process group with stderr captured
//! (the last lines kept for errors), a watcher that reports the exit at once
//! with its status, kill on cleanup and on drop so no QEMU outlives kiln's
//! handle, the serial console tapped from stdout (a log file plus live line
//! events), and the boot watchdog.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, broadcast, watch};
use tokio::time::Instant;

use crate::config::Accelerator;

/// Lines of stderr kept for errors.
pub const STDERR_TAIL_LINES: usize = 40;
/// Bytes of console transcript kept in memory.
const TRANSCRIPT_BYTES: usize = 256 * 1024;
/// Console lines kept in memory.
const CONSOLE_LINES: usize = 200;

/// How to run QEMU.
#[derive(Clone, Debug)]
pub struct QemuCommand {
    pub program: String,
    pub args: Vec<String>,
    /// Working directory (Packer runs QEMU in the directory it was started
    /// in; relative paths in the argv are relative to it).
    pub cwd: Option<PathBuf>,
    /// Read the serial console from QEMU's stdout (`-serial stdio`).
    pub console_from_stdout: bool,
    /// Append the console to this file.
    pub console_log: Option<PathBuf>,
}

impl QemuCommand {
    pub fn argv_display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How QEMU ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExitInfo {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal number, if it was killed.
    pub signal: Option<i32>,
    /// Last lines QEMU wrote to stderr.
    pub stderr_tail: Vec<String>,
    /// Time from spawn to exit.
    pub after: Duration,
}

impl ExitInfo {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn status(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "unknown status".into(),
        }
    }
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QEMU exited after {:.1?} with {}",
            self.after,
            self.status()
        )?;
        if !self.stderr_tail.is_empty() {
            write!(f, ": {}", self.stderr_tail.join("\n"))?;
        }
        Ok(())
    }
}

/// Errors of supervision.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start `{argv}`: {source}")]
    Spawn {
        argv: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open console log {path}: {source}")]
    ConsoleLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{argv}` failed to start: {exit}")]
    EarlyExit { argv: String, exit: ExitInfo },
}

/// A line the guest wrote to its serial console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleLine {
    pub text: String,
    /// Time since QEMU was spawned.
    pub at: Duration,
}

#[derive(Default)]
struct ConsoleState {
    /// Console output with ANSI escapes removed, backspaces applied.
    transcript: String,
    /// Absolute offset of `transcript[0]` in the whole output.
    base: usize,
    lines: VecDeque<String>,
    partial: String,
    bytes: u64,
    first_output: Option<Duration>,
    escape: EscapeState,
    closed: bool,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum EscapeState {
    #[default]
    Text,
    Esc,
    Csi,
}

/// The guest's serial console.
#[derive(Clone)]
pub struct Console {
    state: Arc<Mutex<ConsoleState>>,
    changed: Arc<Notify>,
    lines: broadcast::Sender<ConsoleLine>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Console {
    fn new() -> Console {
        Console {
            state: Arc::new(Mutex::new(ConsoleState::default())),
            changed: Arc::new(Notify::new()),
            lines: broadcast::channel(1024).0,
        }
    }

    /// Live console lines from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ConsoleLine> {
        self.lines.subscribe()
    }

    /// The last complete lines (up to `n`), oldest first.
    pub fn last_lines(&self, n: usize) -> Vec<String> {
        let st = lock(&self.state);
        let skip = st.lines.len().saturating_sub(n);
        st.lines.iter().skip(skip).cloned().collect()
    }

    /// Bytes the guest has written so far.
    pub fn bytes(&self) -> u64 {
        lock(&self.state).bytes
    }

    /// When the first byte arrived (since spawn).
    pub fn first_output(&self) -> Option<Duration> {
        lock(&self.state).first_output
    }

    /// The current end of the transcript, to look for text written later.
    pub fn offset(&self) -> usize {
        let st = lock(&self.state);
        st.base + st.transcript.len()
    }

    /// The (cleaned) text written since `offset`.
    pub fn text_since(&self, offset: usize) -> String {
        let st = lock(&self.state);
        let start = offset.saturating_sub(st.base).min(st.transcript.len());
        let mut start = start;
        while !st.transcript.is_char_boundary(start) {
            start += 1;
        }
        st.transcript[start..].to_string()
    }

    /// Wait until `pred` holds for the text written since `offset`, or the
    /// deadline passes (returns the text seen either way).
    pub async fn wait_for(
        &self,
        offset: usize,
        deadline: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let until = Instant::now() + deadline;
        loop {
            let notified = self.changed.notified();
            let text = self.text_since(offset);
            if pred(&text) {
                return Ok(text);
            }
            if lock(&self.state).closed {
                return Err(text);
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return Err(self.text_since(offset));
            }
        }
    }

    /// Wait for `needle` to appear after `offset`.
    pub async fn wait_for_text(
        &self,
        offset: usize,
        needle: &str,
        deadline: Duration,
    ) -> Result<String, String> {
        self.wait_for(offset, deadline, |t| t.contains(needle))
            .await
    }

    fn feed(&self, chunk: &[u8], at: Duration) {
        let mut finished = Vec::new();
        {
            let mut st = lock(&self.state);
            st.bytes += chunk.len() as u64;
            if st.first_output.is_none() && !chunk.is_empty() {
                st.first_output = Some(at);
            }
            let text = String::from_utf8_lossy(chunk);
            for c in text.chars() {
                match (st.escape, c) {
                    (EscapeState::Text, '\u{1b}') => st.escape = EscapeState::Esc,
                    (EscapeState::Esc, '[') => st.escape = EscapeState::Csi,
                    (EscapeState::Esc, _) => st.escape = EscapeState::Text,
                    (EscapeState::Csi, c) if ('\u{40}'..='\u{7e}').contains(&c) => {
                        st.escape = EscapeState::Text
                    }
                    (EscapeState::Csi, _) => {}
                    (EscapeState::Text, '\u{8}') => {
                        st.transcript.pop();
                        st.partial.pop();
                    }
                    (EscapeState::Text, '\r') => {}
                    (EscapeState::Text, '\n') => {
                        st.transcript.push('\n');
                        let line = std::mem::take(&mut st.partial);
                        st.lines.push_back(line.clone());
                        if st.lines.len() > CONSOLE_LINES {
                            st.lines.pop_front();
                        }
                        finished.push(line);
                    }
                    (EscapeState::Text, c) if c.is_control() && c != '\t' => {}
                    (EscapeState::Text, c) => {
                        st.transcript.push(c);
                        st.partial.push(c);
                    }
                }
            }
            if st.transcript.len() > TRANSCRIPT_BYTES {
                let mut cut = st.transcript.len() - TRANSCRIPT_BYTES / 2;
                while !st.transcript.is_char_boundary(cut) {
                    cut += 1;
                }
                st.transcript.drain(..cut);
                st.base += cut;
            }
        }
        for text in finished {
            let _ = self.lines.send(ConsoleLine { text, at });
        }
        self.changed.notify_waiters();
    }

    fn close(&self) {
        lock(&self.state).closed = true;
        self.changed.notify_waiters();
    }
}

/// Why a boot looks stuck.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BootStall {
    #[error(
        "guest is silent: no console output within {waited:?} with accelerator `{accelerator}` — an accelerator or firmware stall (check `kiln doctor`; with KVM, nested virtualization may not work)"
    )]
    Silent {
        accelerator: Accelerator,
        waited: Duration,
    },
    #[error("{0}")]
    Exited(ExitInfo),
    #[error("the console is not tapped (qemuargs sends the serial port elsewhere)")]
    NoConsole,
}

/// A running QEMU.
pub struct QemuProcess {
    pid: i32,
    argv: String,
    console: Console,
    console_tapped: bool,
    exit: watch::Receiver<Option<ExitInfo>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    spawned_at: Instant,
}

impl QemuProcess {
    /// Start QEMU in its own process group.
    pub async fn spawn(cmd: QemuCommand) -> Result<QemuProcess, ProcessError> {
        let argv = cmd.argv_display();
        let mut command = tokio::process::Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .stdin(Stdio::null())
            .stdout(if cmd.console_from_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &cmd.cwd {
            command.current_dir(cwd);
        }
        // SAFETY: the closure runs in the forked child before exec and only
        // calls prctl(2), which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                // Die with the thread that spawned us if kiln is killed hard.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut log = match &cmd.console_log {
            Some(path) => Some(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(|source| ProcessError::ConsoleLog {
                        path: path.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        let spawned_at = Instant::now();
        let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
            argv: argv.clone(),
            source,
        })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);

        let console = Console::new();
        let stdout_task = child.stdout.take().map(|mut out| {
            let console = console.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                loop {
                    match out.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if let Some(f) = log.as_mut() {
                                let _ = f.write_all(&buf[..n]).await;
                                let _ = f.flush().await;
                            }
                            console.feed(&buf[..n], spawned_at.elapsed());
                        }
                    }
                }
                console.close();
            })
        });
        let stderr: Arc<Mutex<VecDeque<String>>> = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_task = child.stderr.take().map(|err| {
            let stderr = stderr.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut tail = lock(&stderr);
                    tail.push_back(line);
                    if tail.len() > STDERR_TAIL_LINES {
                        tail.pop_front();
                    }
                }
            })
        });
        let (exit_tx, exit_rx) = watch::channel(None);
        {
            let stderr = stderr.clone();
            tokio::spawn(async move {
                let status = child.wait().await;
                // Let the pipes drain so the error carries QEMU's last words.
                if let Some(t) = stderr_task {
                    let _ = tokio::time::timeout(Duration::from_millis(500), t).await;
                }
                if let Some(t) = stdout_task {
                    let _ = tokio::time::timeout(Duration::from_millis(200), t).await;
                }
                let (code, signal) = match status {
                    Ok(s) => (s.code(), s.signal()),
                    Err(_) => (None, None),
                };
                let info = ExitInfo {
                    code,
                    signal,
                    stderr_tail: lock(&stderr).iter().cloned().collect(),
                    after: spawned_at.elapsed(),
                };
                let _ = exit_tx.send(Some(info));
            });
        }
        Ok(QemuProcess {
            pid,
            argv,
            console,
            console_tapped: cmd.console_from_stdout,
            exit: exit_rx,
            stderr,
            spawned_at,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn argv(&self) -> &str {
        &self.argv
    }

    pub fn console(&self) -> &Console {
        &self.console
    }

    /// Time since spawn.
    pub fn uptime(&self) -> Duration {
        self.spawned_at.elapsed()
    }

    /// The last lines of stderr so far.
    pub fn stderr_tail(&self) -> Vec<String> {
        lock(&self.stderr).iter().cloned().collect()
    }

    /// The exit, if QEMU has exited.
    pub fn try_exit(&self) -> Option<ExitInfo> {
        self.exit.borrow().clone()
    }

    /// Wait for QEMU to exit.
    pub async fn wait_exit(&self) -> ExitInfo {
        let mut rx = self.exit.clone();
        loop {
            if let Some(info) = rx.borrow_and_update().clone() {
                return info;
            }
            if rx.changed().await.is_err() {
                return ExitInfo {
                    code: None,
                    signal: None,
                    stderr_tail: self.stderr_tail(),
                    after: self.uptime(),
                };
            }
        }
    }

    /// Wait for the exit at most `deadline`.
    pub async fn wait_exit_timeout(&self, deadline: Duration) -> Option<ExitInfo> {
        tokio::time::timeout(deadline, self.wait_exit()).await.ok()
    }

    /// Give QEMU `settle` to fail on its command line (a bad switch makes it
    /// exit at once); an exit in that time is an error with its stderr.
    pub async fn check_started(&self, settle: Duration) -> Result<(), ProcessError> {
        match self.wait_exit_timeout(settle).await {
            None => Ok(()),
            Some(exit) => Err(ProcessError::EarlyExit {
                argv: self.argv.clone(),
                exit,
            }),
        }
    }

    fn signal_group(&self, signal: i32) {
        if self.pid > 0 && self.try_exit().is_none() {
            // SAFETY: kill(2) with a negative pid signals the process group
            // QEMU leads (spawned with process_group(0)); no memory is touched.
            unsafe {
                libc::kill(-self.pid, signal);
            }
        }
    }

    /// Kill QEMU's process group and wait for the exit.
    pub async fn kill(&self) -> ExitInfo {
        self.signal_group(libc::SIGKILL);
        self.wait_exit().await
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn terminate(&self, grace: Duration) -> ExitInfo {
        self.signal_group(libc::SIGTERM);
        match self.wait_exit_timeout(grace).await {
            Some(info) => info,
            None => self.kill().await,
        }
    }

    /// The boot watchdog: the guest must write to its console within
    /// `deadline`; QEMU exiting first is reported with its stderr.
    pub async fn watch_boot(
        &self,
        deadline: Duration,
        accelerator: Accelerator,
    ) -> Result<Duration, BootStall> {
        if !self.console_tapped {
            return Err(BootStall::NoConsole);
        }
        let console = self.console.clone();
        let output = console.wait_for(0, deadline, |t| !t.is_empty());
        tokio::select! {
            r = output => match r {
                Ok(_) => Ok(self.console.first_output().unwrap_or_default()),
                Err(_) => match self.try_exit() {
                    Some(exit) => Err(BootStall::Exited(exit)),
                    None => Err(BootStall::Silent { accelerator, waited: deadline }),
                },
            },
            exit = self.wait_exit() => {
                if self.console.bytes() > 0 {
                    Ok(self.console.first_output().unwrap_or_default())
                } else {
                    Err(BootStall::Exited(exit))
                }
            }
        }
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        // Last resort: never leave a QEMU behind.
        self.signal_group(libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_strips_escapes_and_applies_backspaces() {
        let c = Console::new();
        c.feed(b"\x1b[2J\x1b[1;1HShell> ech", Duration::ZERO);
        c.feed(b"x\x08o hi\r\nhi\r\n", Duration::ZERO);
        assert_eq!(c.text_since(0), "Shell> echo hi\nhi\n");
        assert_eq!(c.last_lines(5), vec!["Shell> echo hi", "hi"]);
    }
}
