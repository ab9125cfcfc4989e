//! An authenticated SSH session: commands with streamed output and their
//! exit status, reconnection after an expected disconnect.

use std::fmt;
use std::sync::{Arc, Mutex};

use russh::client::{self, DisconnectReason};
use russh::keys::{HashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect, Sig};

use crate::wait::{Auth, Target, WaitConfig, WaitError, WaitEvent, wait_ready};

/// State the connection's handler shares with the session.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    host_key: Mutex<Option<String>>,
    disconnect: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn host_key(&self) -> Option<String> {
        self.host_key.lock().ok().and_then(|g| g.clone())
    }

    pub(crate) fn disconnect_reason(&self) -> Option<String> {
        self.disconnect.lock().ok().and_then(|g| g.clone())
    }

    fn set_disconnect(&self, reason: String) {
        if let Ok(mut g) = self.disconnect.lock() {
            g.get_or_insert(reason);
        }
    }
}

/// russh's callbacks. The guest is throwaway, so any host key is accepted
/// (as Packer does); its fingerprint is recorded for the log.
pub(crate) struct ClientHandler {
    shared: Arc<Shared>,
}

impl ClientHandler {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        ClientHandler { shared }
    }
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let fp = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                key.fingerprint(HashAlg::Sha256).to_string()
            }
            PublicKeyOrCertificate::Certificate(cert) => {
                cert.public_key().fingerprint(HashAlg::Sha256).to_string()
            }
        };
        if let Ok(mut g) = self.shared.host_key.lock() {
            *g = Some(fp);
        }
        Ok(true)
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        match reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                self.shared.set_disconnect(format!(
                    "server disconnected ({:?}{}{})",
                    info.reason_code,
                    if info.message.is_empty() { "" } else { ": " },
                    info.message
                ));
                Ok(())
            }
            DisconnectReason::Error(e) => {
                self.shared.set_disconnect(e.to_string());
                Err(e)
            }
        }
    }
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(u32),
    /// It was killed by a signal.
    Signal {
        /// The signal's name without `SIG` (`KILL`, `TERM`, …).
        signal: String,
        /// A core was dumped.
        core_dumped: bool,
        /// The server's message, often empty.
        message: String,
    },
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }

    /// The exit code, if it exited.
    pub fn code(&self) -> Option<u32> {
        match self {
            ExitStatus::Code(c) => Some(*c),
            ExitStatus::Signal { .. } => None,
        }
    }

    /// The number a shell reports for this status (`$?`): the code, or 128
    /// plus the signal number for the common signals (Go's ssh package,
    /// hence Packer, does the same).
    pub fn shell_code(&self) -> u32 {
        match self {
            ExitStatus::Code(c) => *c,
            ExitStatus::Signal { signal, .. } => 128 + signal_number(signal).unwrap_or(0),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit status {c}"),
            ExitStatus::Signal {
                signal,
                core_dumped,
                ..
            } => write!(
                f,
                "killed by signal {signal}{}",
                if *core_dumped { " (core dumped)" } else { "" }
            ),
        }
    }
}

pub(crate) fn sig_name(sig: &Sig) -> String {
    match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(s) => s.as_str(),
    }
    .to_owned()
}

fn signal_number(name: &str) -> Option<u32> {
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => return None,
    })
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A chunk of a command's output, as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    /// Where it came from.
    pub stream: Stream,
    /// The bytes (not necessarily whole lines, nor valid UTF-8).
    pub data: &'a [u8],
}

/// A command's whole output and status, from [`Session::exec_capture`].
#[derive(Debug, Clone)]
pub struct Captured {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// Errors of running a command.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The connection went away before the command reported an exit status
    /// (a reboot, a killed sshd, a network drop). `expect_disconnect` turns
    /// this into success.
    #[error(
        "ssh connection to `{target}` lost while running `{command}` (no exit status){}",
        reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
    )]
    Disconnected {
        /// Where.
        target: Target,
        /// The command (first line, shortened).
        command: String,
        /// What russh or the server said, if anything.
        reason: Option<String>,
    },
    /// The command could not be started on a live connection.
    #[error("cannot start `{command}` on `{target}`: {detail}")]
    Start {
        /// Where.
        target: Target,
        /// The command (first line, shortened).
        command: String,
        /// Why.
        detail: String,
    },
}

impl ExecError {
    /// The connection was lost: the caller may [`Session::reconnect`].
    pub fn is_disconnect(&self) -> bool {
        matches!(self, ExecError::Disconnected { .. })
    }
}

pub(crate) fn short_command(command: &str) -> String {
    const MAX: usize = 120;
    let first = command.lines().next().unwrap_or_default();
    let more = first.len() < command.trim_end().len();
    if first.chars().count() > MAX {
        let cut: String = first.chars().take(MAX).collect();
        format!("{cut}…")
    } else if more {
        format!("{first} …")
    } else {
        first.to_owned()
    }
}

/// An authenticated SSH connection to a guest.
pub struct Session {
    handle: client::Handle<ClientHandler>,
    target: Target,
    auth: Auth,
    config: WaitConfig,
    shared: Arc<Shared>,
    server_version: String,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.target)
            .field("server_version", &self.server_version)
            .field("closed", &self.handle.is_closed())
            .finish()
    }
}

impl Session {
    pub(crate) fn new(
        handle: client::Handle<ClientHandler>,
        target: Target,
        auth: Auth,
        config: WaitConfig,
        shared: Arc<Shared>,
        server_version: String,
    ) -> Self {
        Session {
            handle,
            target,
            auth,
            config,
            shared,
            server_version,
        }
    }

    /// Where this session goes.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The server's identification line.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// The server's host key fingerprint (`SHA256:…`).
    pub fn host_key_fingerprint(&self) -> Option<String> {
        self.shared.host_key()
    }

    /// The connection is gone.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Why the connection ended, if it did and anyone said.
    pub fn disconnect_reason(&self) -> Option<String> {
        self.shared.disconnect_reason()
    }

    pub(crate) fn lost(&self, command: &str) -> ExecError {
        ExecError::Disconnected {
            target: self.target.clone(),
            command: short_command(command),
            reason: self.shared.disconnect_reason(),
        }
    }

    /// Opens a channel and starts `command` on it (no pty; the command
    /// string carries its environment, as Packer's `{{ .Vars }}` does).
    pub(crate) async fn start(
        &self,
        command: &str,
    ) -> Result<russh::Channel<client::Msg>, ExecError> {
        let channel = match self.handle.channel_open_session().await {
            Ok(c) => c,
            Err(e) => {
                return Err(if self.handle.is_closed() {
                    self.lost(command)
                } else {
                    ExecError::Start {
                        target: self.target.clone(),
                        command: short_command(command),
                        detail: format!("channel refused: {e}"),
                    }
                });
            }
        };
        if let Err(e) = channel.exec(true, command).await {
            return Err(if self.handle.is_closed() {
                self.lost(command)
            } else {
                ExecError::Start {
                    target: self.target.clone(),
                    command: short_command(command),
                    detail: e.to_string(),
                }
            });
        }
        Ok(channel)
    }

    /// Runs `command`, handing each output chunk to `on_output` as it
    /// arrives, and returns how it ended. Output is read until the channel
    /// closes, so no trailing output is lost. A lost connection is
    /// [`ExecError::Disconnected`].
    pub async fn exec(
        &self,
        command: &str,
        mut on_output: impl FnMut(Output<'_>) + Send,
    ) -> Result<ExitStatus, ExecError> {
        let mut channel = self.start(command).await?;
        let mut status = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => on_output(Output {
                    stream: Stream::Stdout,
                    data: &data,
                }),
                ChannelMsg::ExtendedData { data, ext: 1 } => on_output(Output {
                    stream: Stream::Stderr,
                    data: &data,
                }),
                ChannelMsg::ExitStatus { exit_status } => {
                    status = Some(ExitStatus::Code(exit_status));
                }
                ChannelMsg::ExitSignal {
                    signal_name,
                    core_dumped,
                    error_message,
                    ..
                } => {
                    status = Some(ExitStatus::Signal {
                        signal: sig_name(&signal_name),
                        core_dumped,
                        message: error_message,
                    });
                }
                ChannelMsg::Failure => {
                    return Err(ExecError::Start {
                        target: self.target.clone(),
                        command: short_command(command),
                        detail: "the server refused the exec request".to_owned(),
                    });
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        status.ok_or_else(|| self.lost(command))
    }

    /// Like [`Session::exec`], but hands over whole lines (without the line
    /// end, invalid UTF-8 replaced); a last line without a newline is
    /// delivered at the end.
    pub async fn exec_lines(
        &self,
        command: &str,
        mut on_line: impl FnMut(Stream, &str) + Send,
    ) -> Result<ExitStatus, ExecError> {
        let mut out = LineBuffer::default();
        let mut err = LineBuffer::default();
        let result = self
            .exec(command, |o| match o.stream {
                Stream::Stdout => out.push(o.data, |l| on_line(Stream::Stdout, l)),
                Stream::Stderr => err.push(o.data, |l| on_line(Stream::Stderr, l)),
            })
            .await;
        out.finish(|l| on_line(Stream::Stdout, l));
        err.finish(|l| on_line(Stream::Stderr, l));
        result
    }

    /// Runs `command` and returns all of its output with the status.
    pub async fn exec_capture(&self, command: &str) -> Result<Captured, ExecError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let status = self
            .exec(command, |o| match o.stream {
                Stream::Stdout => stdout.extend_from_slice(o.data),
                Stream::Stderr => stderr.extend_from_slice(o.data),
            })
            .await?;
        Ok(Captured {
            status,
            stdout,
            stderr,
        })
    }

    /// Connects again with the same target, credentials and limits (a fresh
    /// `timeout`), after an expected disconnect such as a reboot. The old
    /// connection is dropped first.
    pub async fn reconnect(
        &mut self,
        on_event: impl FnMut(WaitEvent) + Send,
    ) -> Result<(), WaitError> {
        if !self.handle.is_closed() {
            let _ = self
                .handle
                .disconnect(Disconnect::ByApplication, "reconnecting", "en")
                .await;
        }
        let fresh = wait_ready(
            self.target.clone(),
            self.auth.clone(),
            self.config.clone(),
            on_event,
        )
        .await?;
        *self = fresh;
        Ok(())
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        if !self.handle.is_closed() {
            let _ = self
                .handle
                .disconnect(Disconnect::ByApplication, "", "en")
                .await;
        }
    }
}

/// Splits a byte stream into lines.
#[derive(Default)]
struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    fn push(&mut self, data: &[u8], mut emit: impl FnMut(&str)) {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(rel) = self
            .pending
            .get(start..)
            .and_then(|r| r.iter().position(|b| *b == b'\n'))
        {
            let line = self.pending.get(start..start + rel).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            emit(&String::from_utf8_lossy(line));
            start += rel + 1;
        }
        self.pending.drain(..start);
    }

    fn finish(&mut self, mut emit: impl FnMut(&str)) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            emit(&String::from_utf8_lossy(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_buffer_splits_across_chunks() {
        let mut b = LineBuffer::default();
        let mut lines = Vec::new();
        b.push(b"one\ntw", |l| lines.push(l.to_owned()));
        b.push(b"o\r\nthree\n\nfou", |l| lines.push(l.to_owned()));
        b.push(b"r", |l| lines.push(l.to_owned()));
        b.finish(|l| lines.push(l.to_owned()));
        assert_eq!(lines, ["one", "two", "three", "", "four"]);
    }

    #[test]
    fn exit_status_shell_code_and_display() {
        assert!(ExitStatus::Code(0).success());
        assert_eq!(ExitStatus::Code(3).shell_code(), 3);
        let k = ExitStatus::Signal {
            signal: "KILL".into(),
            core_dumped: false,
            message: String::new(),
        };
        assert_eq!(k.shell_code(), 137);
        assert_eq!(k.code(), None);
        assert_eq!(k.to_string(), "killed by signal KILL");
        assert_eq!(ExitStatus::Code(3).to_string(), "exit status 3");
    }

    #[test]
    fn short_command_keeps_first_line() {
        assert_eq!(short_command("echo hi"), "echo hi");
        assert_eq!(short_command("set -e\necho hi\n"), "set -e …");
        let long = "x".repeat(300);
        assert_eq!(short_command(&long).chars().count(), 121);
    }
}
