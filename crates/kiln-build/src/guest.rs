//! The build's connection to its guest: an SSH session plus what the
//! provisioners share — streamed output as events, retries across a
//! reboot within `start_retry_timeout`, and reconnection.

use std::path::Path;
use std::time::Duration;

use kiln_ssh::{ExecError, Session, Stream, WaitEvent};
use tokio::time::Instant;

use crate::events::{self, BuildEvents};
use crate::provision::shell::Tail;

/// Why a guest operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("`{command}` exited with {code}: {stderr}")]
    Quiet {
        command: String,
        code: u32,
        stderr: String,
    },
    /// Boxed: a wait error carries its whole diagnosis.
    #[error(transparent)]
    Reconnect(Box<kiln_ssh::WaitError>),
    #[error("no connection within {limit:?}")]
    ReconnectTimeout { limit: Duration },
    #[error(transparent)]
    Transfer(#[from] kiln_ssh::TransferError),
    #[error("error removing temporary script at {path}: exit {code}")]
    RemoveScript { path: String, code: u32 },
}

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
    pub async fn exec_quiet(&self, command: &str) -> Result<(), GuestError> {
        let captured = self.session.exec_capture(command).await?;
        if captured.status.success() {
            Ok(())
        } else {
            Err(GuestError::Quiet {
                command: command.to_string(),
                code: captured.status.shell_code(),
                stderr: String::from_utf8_lossy(&captured.stderr).trim().to_string(),
            })
        }
    }

    /// Connect again after an expected disconnect (reboot), within `limit`.
    pub async fn reconnect(&mut self, limit: Duration, ev: &BuildEvents) -> Result<(), GuestError> {
        let on_event = |e: WaitEvent| ev.diagnosis("reconnect", e.to_string());
        match tokio::time::timeout(limit, self.session.reconnect(on_event)).await {
            Ok(result) => result.map_err(|e| GuestError::Reconnect(Box::new(e))),
            Err(_) => Err(GuestError::ReconnectTimeout { limit }),
        }
    }

    /// After a failed attempt: reconnect and return Ok to retry, or the
    /// error when the connection was not lost or time is up.
    async fn recover(
        &mut self,
        deadline: Instant,
        lost: bool,
        error: GuestError,
        ev: &BuildEvents,
    ) -> Result<(), GuestError> {
        if !lost || Instant::now() >= deadline {
            return Err(error);
        }
        ev.diagnosis("reconnect", format!("connection lost ({error}); retrying"));
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
    ) -> Result<(), GuestError> {
        let deadline = Instant::now() + limit;
        loop {
            match self.session.upload_bytes(data, remote, mode).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.recover(deadline, e.is_disconnect(), e.into(), ev)
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
    ) -> Result<(), GuestError> {
        let command = format!("rm -f {}", kiln_ssh::shell::quote(path));
        let deadline = Instant::now() + limit;
        loop {
            match self.session.exec_capture(&command).await {
                Ok(c) if c.status.success() => return Ok(()),
                Ok(c) => {
                    return Err(GuestError::RemoveScript {
                        path: path.to_string(),
                        code: c.status.shell_code(),
                    });
                }
                Err(e) => {
                    self.recover(deadline, e.is_disconnect(), e.into(), ev)
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
    ) -> Result<kiln_ssh::TransferStats, GuestError> {
        Ok(self.session.upload(local, remote).await?)
    }

    /// Download a remote file or directory.
    pub async fn download(
        &self,
        remote: &str,
        local: &Path,
    ) -> Result<kiln_ssh::TransferStats, GuestError> {
        Ok(self.session.download(remote, local).await?)
    }
}
