//! The build's connection to its guest: an SSH session plus what the
//! provisioners share — streamed output as events, retries across a
//! reboot within `start_retry_timeout`, and reconnection.

use std::path::Path;
use std::time::Duration;

use kiln_ssh::{ExecError, Session, Stream, WaitEvent};
use tokio::time::Instant;

use crate::events::{self, BuildEvents};
use crate::provision::shell::Tail;

pub struct Guest {
    session: Session,
}

impl Guest {
    pub fn new(session: Session) -> Self {
        Guest { session }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn into_session(self) -> Session {
        self.session
    }

    /// Run `command`, sending each line to the events as guest output.
    /// Returns the shell's view of the status (`$?`).
    pub async fn exec_streamed(
        &self,
        command: &str,
        ev: &BuildEvents,
        tail: &mut Tail,
    ) -> Result<u32, ExecError> {
        let status = self
            .session
            .exec_lines(command, |stream, line| {
                tail.push(line);
                let stream = match stream {
                    Stream::Stdout => events::Stream::Stdout,
                    Stream::Stderr => events::Stream::Stderr,
                };
                ev.output(stream, line);
            })
            .await?;
        Ok(status.shell_code())
    }

    /// Run a housekeeping command quietly; its output only appears in the
    /// error when it fails.
    pub async fn exec_quiet(&self, command: &str) -> Result<(), String> {
        let captured = self
            .session
            .exec_capture(command)
            .await
            .map_err(|e| e.to_string())?;
        if captured.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{command}` exited with {}: {}",
                captured.status.shell_code(),
                String::from_utf8_lossy(&captured.stderr).trim()
            ))
        }
    }

    /// Connect again after an expected disconnect (reboot), within `limit`.
    pub async fn reconnect(&mut self, limit: Duration, ev: &BuildEvents) -> Result<(), String> {
        let on_event = |e: WaitEvent| ev.diagnosis("reconnect", e.to_string());
        match tokio::time::timeout(limit, self.session.reconnect(on_event)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no connection within {limit:?}")),
        }
    }

    /// After a failed attempt: reconnect and return Ok to retry, or the
    /// error when the connection was not lost or time is up.
    async fn recover(
        &mut self,
        deadline: Instant,
        lost: bool,
        message: String,
        ev: &BuildEvents,
    ) -> Result<(), String> {
        if !lost || Instant::now() >= deadline {
            return Err(message);
        }
        ev.diagnosis(
            "reconnect",
            format!("connection lost ({message}); retrying"),
        );
        let left = deadline.saturating_duration_since(Instant::now());
        self.reconnect(left, ev).await
    }

    /// Write `data` to `remote` with `mode`, retrying across a reboot.
    pub async fn upload_bytes(
        &mut self,
        data: &[u8],
        remote: &str,
        mode: u32,
        limit: Duration,
        ev: &BuildEvents,
    ) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            match self.session.upload_bytes(data, remote, mode).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.recover(deadline, e.is_disconnect(), e.to_string(), ev)
                        .await?
                }
            }
        }
    }

    /// `rm -f PATH`, retrying across a reboot.
    pub async fn remove(
        &mut self,
        path: &str,
        limit: Duration,
        ev: &BuildEvents,
    ) -> Result<(), String> {
        let command = format!("rm -f {}", kiln_ssh::shell::quote(path));
        let deadline = Instant::now() + limit;
        loop {
            match self.session.exec_capture(&command).await {
                Ok(c) if c.status.success() => return Ok(()),
                Ok(c) => {
                    return Err(format!(
                        "error removing temporary script at {path}: exit {}",
                        c.status.shell_code()
                    ));
                }
                Err(e) => {
                    self.recover(deadline, e.is_disconnect(), e.to_string(), ev)
                        .await?
                }
            }
        }
    }

    /// Upload a local file or directory with Packer's trailing-slash rules.
    pub async fn upload(
        &self,
        local: &Path,
        remote: &str,
    ) -> Result<kiln_ssh::TransferStats, String> {
        self.session
            .upload(local, remote)
            .await
            .map_err(|e| e.to_string())
    }

    /// Download a remote file or directory.
    pub async fn download(
        &self,
        remote: &str,
        local: &Path,
    ) -> Result<kiln_ssh::TransferStats, String> {
        self.session
            .download(remote, local)
            .await
            .map_err(|e| e.to_string())
    }
}
