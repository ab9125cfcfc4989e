//! kiln-exec: run a program to completion and capture what it printed.
//!
//! One helper for every place kiln runs a short-lived host tool
//! (`qemu-img`, `qemu-system-* --version`, `apt-get`…): stdin is closed,
//! the child is killed if the caller gives up, and an error names the
//! command line, the exit status and the tail of stderr, because "exit
//! status 1" alone explains nothing. Long-running, streamed processes
//! (QEMU itself, `shell-local` scripts) have their own supervision.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// How many lines of stderr an error keeps: enough for the reason, short
/// enough for one diagnostic.
const STDERR_TAIL_LINES: usize = 10;

/// Why a program did not run to a successful end.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("`{command}` did not finish within {} ms", timeout.as_millis())]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        /// The last lines of stderr, trimmed.
        stderr: String,
    },
}

impl ExecError {
    /// The command line, as shown in the message.
    pub fn command(&self) -> &str {
        match self {
            ExecError::Spawn { command, .. }
            | ExecError::Timeout { command, .. }
            | ExecError::Failed { command, .. } => command,
        }
    }
}

/// What a finished program printed, whatever its exit status.
#[derive(Clone, Debug)]
pub struct Output {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    /// stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The last lines of stderr, trimmed.
    pub fn stderr_tail(&self) -> String {
        tail(&String::from_utf8_lossy(&self.stderr), STDERR_TAIL_LINES)
    }

    /// stdout as text if the program succeeded, else [`ExecError::Failed`].
    pub fn success(self) -> Result<String, ExecError> {
        if self.status.success() {
            return Ok(self.stdout_text());
        }
        Err(ExecError::Failed {
            status: self.status.to_string(),
            stderr: self.stderr_tail(),
            command: self.command,
        })
    }
}

/// The last `n` lines of `text`, trimmed.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A program, its arguments and its surroundings.
#[derive(Clone, Debug)]
pub struct Program {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    timeout: Option<Duration>,
}

impl Program {
    pub fn new(program: impl Into<OsString>) -> Self {
        Program {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            timeout: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Kill the program and fail with [`ExecError::Timeout`] after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The command line as errors show it (words joined by spaces).
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|w| w.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs to the end; stdout on success, else the error with stderr's tail.
    pub async fn run(&self) -> Result<String, ExecError> {
        self.output().await?.success()
    }

    /// Runs to the end whatever the exit status.
    pub async fn output(&self) -> Result<Output, ExecError> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        let child = command.output();
        let finished = match self.timeout {
            Some(timeout) => {
                tokio::time::timeout(timeout, child)
                    .await
                    .map_err(|_| ExecError::Timeout {
                        command: self.display(),
                        timeout,
                    })?
            }
            None => child.await,
        };
        self.finished(finished)
    }

    /// [`Program::run`] for callers outside an async runtime (no timeout).
    pub fn run_blocking(&self) -> Result<String, ExecError> {
        let mut command = std::process::Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        self.finished(command.output())?.success()
    }

    fn finished(&self, output: io::Result<std::process::Output>) -> Result<Output, ExecError> {
        let output = output.map_err(|e| ExecError::Spawn {
            command: self.display(),
            source: Arc::new(e),
        })?;
        Ok(Output {
            command: self.display(),
            status: output.status,
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn run_returns_stdout_of_a_success() {
        let out = Program::new("sh").args(["-c", "echo hi"]).run().await;
        assert_eq!(out.unwrap(), "hi\n");
    }

    #[tokio::test]
    async fn a_failure_names_the_command_status_and_stderr_tail() {
        let script = "for i in $(seq 1 30); do echo line$i >&2; done; exit 3";
        let err = Program::new("sh")
            .args(["-c", script])
            .run()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("`sh -c for i"), "{text}");
        assert!(text.contains("exit status: 3"), "{text}");
        assert!(text.ends_with("line30"), "{text}");
        assert!(!text.contains("line20\n"), "{text}");
        assert!(text.contains("line21"), "{text}");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let err = Program::new("kiln-no-such-program")
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::Spawn { .. }), "{err}");
        assert_eq!(err.command(), "kiln-no-such-program");
    }

    #[tokio::test]
    async fn a_slow_program_times_out() {
        let err = Program::new("sleep")
            .arg("5")
            .timeout(Duration::from_millis(100))
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
    }

    #[tokio::test]
    async fn env_and_current_dir_reach_the_program() {
        let dir = std::env::temp_dir();
        let out = Program::new("sh")
            .args(["-c", "echo $KILN_EXEC_TEST; pwd"])
            .env("KILN_EXEC_TEST", "x")
            .current_dir(&dir)
            .output()
            .await
            .unwrap();
        let text = out.stdout_text();
        assert!(text.starts_with("x\n"), "{text}");
    }

    #[test]
    fn run_blocking_works_without_a_runtime() {
        assert_eq!(
            Program::new("sh")
                .args(["-c", "printf ok"])
                .run_blocking()
                .unwrap(),
            "ok"
        );
        let err = Program::new("false").run_blocking().unwrap_err();
        assert!(matches!(err, ExecError::Failed { .. }), "{err}");
    }
}
