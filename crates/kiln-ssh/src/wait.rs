//! Waiting for a guest's SSH server, with a diagnosis of every state on the
//! way: port closed, TCP accepted but no banner, banner, authentication
//! refused, connected.
//!
//! Each attempt goes through the phases by hand: a TCP connect, then kiln
//! reads the server's identification line itself (so a forward that accepts
//! and then closes, as QEMU's user networking does while the guest's sshd is
//! not up, is told apart from a closed port), then russh runs the handshake
//! on the same stream with the bytes already read replayed to it.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use russh::client;
use russh::keys::PrivateKeyWithHashAlg;
use russh::{Disconnect, MethodKind, MethodSet};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::keys::KeyPair;
use crate::session::{ClientHandler, Session, Shared};

/// Where to connect and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address (`127.0.0.1` for a QEMU port forward).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Login user (`ssh_username`).
    pub user: String,
}

impl Target {
    /// A target.
    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>) -> Self {
        Target {
            host: host.into(),
            port,
            user: user.into(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// Credentials: keys (tried in order) and/or a password (used for
/// `password` and `keyboard-interactive`). `Debug` hides the password.
#[derive(Clone, Default)]
pub struct Auth {
    keys: Vec<KeyPair>,
    password: Option<String>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("keys", &self.keys)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Auth {
    /// No credentials yet.
    pub fn new() -> Self {
        Auth::default()
    }

    /// Adds a key.
    pub fn key(mut self, key: KeyPair) -> Self {
        self.keys.push(key);
        self
    }

    /// Sets the password (`ssh_password`).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// The keys.
    pub fn keys(&self) -> &[KeyPair] {
        &self.keys
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.password.is_none()
    }
}

/// How to wait. Defaults: Packer's `ssh_timeout` (5 min) and
/// `ssh_handshake_attempts` (10), a TCP poll every 100 ms (Packer polls
/// every 5 s), 3 s for the banner after a TCP connect, 1 s between
/// authentication retries, a keepalive every 5 s (Packer's
/// `ssh_keep_alive_interval`).
#[derive(Debug, Clone)]
pub struct WaitConfig {
    /// Overall deadline (`ssh_timeout`).
    pub timeout: Duration,
    /// Handshake and authentication failures tolerated before giving up
    /// (`ssh_handshake_attempts`); 0 counts as 1. Only attempts that reached
    /// an SSH server count: a closed port or a missing banner never do.
    pub handshake_attempts: u32,
    /// Pause after a refused or closed connection before the next one.
    pub poll_interval: Duration,
    /// Limit of one TCP connect.
    pub connect_timeout: Duration,
    /// How long to wait for the server's identification line after TCP
    /// accepted the connection.
    pub banner_timeout: Duration,
    /// Limit of key exchange plus authentication in one attempt.
    pub handshake_timeout: Duration,
    /// Pause after a failed handshake or a refused authentication.
    pub retry_delay: Duration,
    /// Keepalive interval on the established connection (`None`: off).
    pub keepalive_interval: Option<Duration>,
    /// Unanswered keepalives after which the connection is dropped.
    pub keepalive_max: usize,
}

impl Default for WaitConfig {
    fn default() -> Self {
        WaitConfig {
            timeout: Duration::from_secs(300),
            handshake_attempts: 10,
            poll_interval: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(5),
            banner_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(30),
            retry_delay: Duration::from_secs(1),
            keepalive_interval: Some(Duration::from_secs(5)),
            keepalive_max: 3,
        }
    }
}

/// What the wait observed, reported as it happens (once per change of
/// state; every handshake or authentication failure is reported since each
/// counts against `handshake_attempts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEvent {
    /// The TCP connect was refused or reset: nothing listens on the port
    /// (no port forward, or QEMU is not running).
    PortClosed {
        /// The OS error.
        error: String,
    },
    /// The TCP connect timed out or failed otherwise (no route, name not
    /// resolved).
    Unreachable {
        /// The OS error.
        error: String,
    },
    /// TCP accepted the connection but no SSH identification line came.
    /// With QEMU user networking the host side of a forward accepts even
    /// when nothing listens in the guest, then closes (`peer_closed`).
    TcpConnectedNoBanner {
        /// How long kiln waited for the banner.
        waited: Duration,
        /// The peer closed the connection (rather than staying silent).
        peer_closed: bool,
    },
    /// The server identified itself (`SSH-2.0-OpenSSH_9.2p1 Debian-2`).
    Banner {
        /// The identification line, without the line end.
        version: String,
    },
    /// Key exchange failed or the connection dropped during it.
    HandshakeFailed {
        /// What went wrong.
        error: String,
        /// Failures so far (handshakes and authentications).
        attempt: u32,
        /// The limit (`handshake_attempts`).
        of: u32,
    },
    /// The server refused every credential kiln has.
    AuthRefused {
        /// Methods the server offers (`publickey`, `password`, …).
        methods_offered: Vec<String>,
        /// Methods kiln tried.
        methods_tried: Vec<String>,
        /// Failures so far (handshakes and authentications).
        attempt: u32,
        /// The limit (`handshake_attempts`).
        of: u32,
    },
    /// Authenticated: the session is ready for commands.
    Connected {
        /// Time since the wait began.
        elapsed: Duration,
        /// TCP connections made.
        attempts: u32,
        /// The server's host key fingerprint (`SHA256:…`).
        host_key: String,
    },
}

impl WaitEvent {
    /// A short name of the state, for messages.
    pub fn state_name(&self) -> &'static str {
        match self {
            WaitEvent::PortClosed { .. } => "port closed",
            WaitEvent::Unreachable { .. } => "host unreachable",
            WaitEvent::TcpConnectedNoBanner { .. } => "TCP connected but no SSH banner",
            WaitEvent::Banner { .. } => "SSH banner received",
            WaitEvent::HandshakeFailed { .. } => "SSH handshake failed",
            WaitEvent::AuthRefused { .. } => "authentication refused",
            WaitEvent::Connected { .. } => "connected",
        }
    }

    /// The likely cause of being stuck in this state, for a `hint:` line.
    pub fn diagnosis(&self) -> &'static str {
        match self {
            WaitEvent::PortClosed { .. } => {
                "nothing listens on the port: the port forward is missing or QEMU is not running"
            }
            WaitEvent::Unreachable { .. } => {
                "the address cannot be reached: check `ssh_host` and the network"
            }
            WaitEvent::TcpConnectedNoBanner {
                peer_closed: true, ..
            } => {
                "the port forward accepts but nothing answers behind it: the guest's sshd is not up yet (still booting, or cloud-init still running), or the guest has no network"
            }
            WaitEvent::TcpConnectedNoBanner {
                peer_closed: false, ..
            } => {
                "TCP connects but no SSH banner arrives: the guest's network is not up yet, or the service on the port is not sshd"
            }
            WaitEvent::Banner { .. } => {
                "sshd answered but the handshake did not finish: the guest may be overloaded"
            }
            WaitEvent::HandshakeFailed { .. } => {
                "sshd answered but the key exchange failed: the server may lack host keys or share no algorithm with kiln"
            }
            WaitEvent::AuthRefused { .. } => {
                "sshd refuses the credentials: check `ssh_username`, `ssh_password`, and that the seed authorises `{{ .SSHPublicKey }}`"
            }
            WaitEvent::Connected { .. } => "connected",
        }
    }

    fn kind(&self) -> u8 {
        match self {
            WaitEvent::PortClosed { .. } => 0,
            WaitEvent::Unreachable { .. } => 1,
            WaitEvent::TcpConnectedNoBanner { .. } => 2,
            WaitEvent::Banner { .. } => 3,
            WaitEvent::HandshakeFailed { .. } => 4,
            WaitEvent::AuthRefused { .. } => 5,
            WaitEvent::Connected { .. } => 6,
        }
    }
}

impl fmt::Display for WaitEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitEvent::PortClosed { error } => write!(f, "port closed ({error})"),
            WaitEvent::Unreachable { error } => write!(f, "host unreachable ({error})"),
            WaitEvent::TcpConnectedNoBanner {
                waited,
                peer_closed,
            } => {
                if *peer_closed {
                    write!(
                        f,
                        "TCP connected but no SSH banner (peer closed after {:.1?})",
                        waited
                    )
                } else {
                    write!(f, "TCP connected but no SSH banner within {waited:.1?}")
                }
            }
            WaitEvent::Banner { version } => write!(f, "SSH banner `{version}`"),
            WaitEvent::HandshakeFailed { error, attempt, of } => {
                write!(f, "SSH handshake failed ({attempt}/{of}): {error}")
            }
            WaitEvent::AuthRefused {
                methods_offered,
                methods_tried,
                attempt,
                of,
            } => write!(
                f,
                "authentication refused ({attempt}/{of}): server offers {}; tried {}",
                list(methods_offered),
                list(methods_tried)
            ),
            WaitEvent::Connected {
                elapsed,
                attempts,
                host_key,
            } => write!(
                f,
                "connected after {elapsed:.2?} ({attempts} connection attempts, host key {host_key})"
            ),
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items.join(", ")
    }
}

/// Why the wait gave up. A value: the caller adds console lines and hints.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The deadline passed.
    #[error(
        "timed out after {timeout:.1?} waiting for ssh on `{target}`: {} for the last {held:.1?} ({attempts} connection attempts)",
        last.as_ref().map_or_else(|| "no attempt made".to_owned(), ToString::to_string)
    )]
    Timeout {
        /// Where.
        target: Target,
        /// The deadline that passed (`ssh_timeout`).
        timeout: Duration,
        /// The last state reached.
        last: Option<WaitEvent>,
        /// How long that state had been held.
        held: Duration,
        /// TCP connections made.
        attempts: u32,
    },
    /// Authentication was refused `attempts` times.
    #[error(
        "ssh authentication refused by `{target}` {attempts} times: server offers {}; kiln tried {}",
        list(methods_offered),
        list(methods_tried)
    )]
    AuthRefused {
        /// Where.
        target: Target,
        /// Refusals (and handshake failures) counted.
        attempts: u32,
        /// Methods the server offers.
        methods_offered: Vec<String>,
        /// Methods kiln tried.
        methods_tried: Vec<String>,
    },
    /// The handshake failed `attempts` times.
    #[error("ssh handshake with `{target}` failed {attempts} times; last error: {last_error}")]
    HandshakeFailed {
        /// Where.
        target: Target,
        /// Failures counted.
        attempts: u32,
        /// The last failure.
        last_error: String,
    },
    /// Neither key nor password was given.
    #[error("no ssh credentials for `{target}`: give a private key or a password")]
    NoCredentials {
        /// Where.
        target: Target,
    },
}

impl WaitError {
    /// The likely cause, for a `hint:` line.
    pub fn diagnosis(&self) -> &'static str {
        match self {
            WaitError::Timeout { last: Some(e), .. } => e.diagnosis(),
            WaitError::Timeout { last: None, .. } => "no connection attempt fit in the timeout",
            WaitError::AuthRefused { .. } => WaitEvent::AuthRefused {
                methods_offered: Vec::new(),
                methods_tried: Vec::new(),
                attempt: 0,
                of: 0,
            }
            .diagnosis(),
            WaitError::HandshakeFailed { .. } => WaitEvent::HandshakeFailed {
                error: String::new(),
                attempt: 0,
                of: 0,
            }
            .diagnosis(),
            WaitError::NoCredentials { .. } => {
                "set `ssh_password` or `ssh_private_key_file`, or let kiln generate a key"
            }
        }
    }
}

/// Tracks states for events and for the timeout error.
struct Tracker<'a> {
    on_event: &'a mut (dyn FnMut(WaitEvent) + Send),
    last: Option<WaitEvent>,
    since: Instant,
    last_banner: Option<String>,
}

impl Tracker<'_> {
    fn observe(&mut self, event: WaitEvent) {
        let now = Instant::now();
        let same_kind = self.last.as_ref().map(WaitEvent::kind) == Some(event.kind());
        let emit = match &event {
            WaitEvent::PortClosed { .. } | WaitEvent::Unreachable { .. } => {
                self.last_banner = None;
                !same_kind
            }
            WaitEvent::TcpConnectedNoBanner { peer_closed, .. } => {
                self.last_banner = None;
                !matches!(
                    &self.last,
                    Some(WaitEvent::TcpConnectedNoBanner { peer_closed: p, .. }) if p == peer_closed
                )
            }
            WaitEvent::Banner { version } => {
                let new = self.last_banner.as_deref() != Some(version.as_str());
                self.last_banner = Some(version.clone());
                new
            }
            WaitEvent::HandshakeFailed { .. }
            | WaitEvent::AuthRefused { .. }
            | WaitEvent::Connected { .. } => true,
        };
        // A banner seen again on each retry keeps the refusal as the state
        // held, so the timeout error reports what really blocks.
        let keeps_state = matches!(event, WaitEvent::Banner { .. })
            && matches!(
                self.last,
                Some(WaitEvent::AuthRefused { .. } | WaitEvent::HandshakeFailed { .. })
            );
        if !same_kind && !keeps_state {
            self.since = now;
        }
        if !keeps_state {
            self.last = Some(event.clone());
        }
        if emit {
            tracing::debug!(%event, "ssh wait");
            (self.on_event)(event);
        }
    }
}

/// Waits until an SSH session to `target` is authenticated, reporting each
/// change of state to `on_event`. See [`WaitConfig`] for the limits.
pub async fn wait_ready(
    target: Target,
    auth: Auth,
    config: WaitConfig,
    mut on_event: impl FnMut(WaitEvent) + Send,
) -> Result<Session, WaitError> {
    if auth.is_empty() {
        return Err(WaitError::NoCredentials { target });
    }
    let start = Instant::now();
    let deadline = start + config.timeout;
    let mut tracker = Tracker {
        on_event: &mut on_event,
        last: None,
        since: start,
        last_banner: None,
    };
    let max_failures = config.handshake_attempts.max(1);
    let mut failures = 0u32;
    let mut attempts = 0u32;
    let russh_config = Arc::new(russh_config(&config));

    let timeout_error = |tracker: &Tracker<'_>, attempts: u32| WaitError::Timeout {
        target: target.clone(),
        timeout: config.timeout,
        last: tracker.last.clone(),
        held: Instant::now().saturating_duration_since(tracker.since),
        attempts,
    };

    loop {
        if Instant::now() >= deadline {
            return Err(timeout_error(&tracker, attempts));
        }
        attempts += 1;
        let outcome = attempt(
            &target,
            &auth,
            &config,
            &russh_config,
            deadline,
            &mut tracker,
        )
        .await;
        let pause = match outcome {
            Outcome::DeadlinePassed => return Err(timeout_error(&tracker, attempts)),
            Outcome::Refused(error) => {
                tracker.observe(WaitEvent::PortClosed { error });
                config.poll_interval
            }
            Outcome::Unreachable(error) => {
                tracker.observe(WaitEvent::Unreachable { error });
                config.poll_interval
            }
            Outcome::NoBanner {
                waited,
                peer_closed,
            } => {
                tracker.observe(WaitEvent::TcpConnectedNoBanner {
                    waited,
                    peer_closed,
                });
                if peer_closed {
                    config.poll_interval
                } else {
                    Duration::ZERO
                }
            }
            Outcome::HandshakeFailed { error } => {
                failures += 1;
                tracker.observe(WaitEvent::HandshakeFailed {
                    error: error.clone(),
                    attempt: failures,
                    of: max_failures,
                });
                if failures >= max_failures {
                    return Err(WaitError::HandshakeFailed {
                        target,
                        attempts: failures,
                        last_error: error,
                    });
                }
                config.retry_delay
            }
            Outcome::AuthRefused { offered, tried } => {
                failures += 1;
                tracker.observe(WaitEvent::AuthRefused {
                    methods_offered: offered.clone(),
                    methods_tried: tried.clone(),
                    attempt: failures,
                    of: max_failures,
                });
                if failures >= max_failures {
                    return Err(WaitError::AuthRefused {
                        target,
                        attempts: failures,
                        methods_offered: offered,
                        methods_tried: tried,
                    });
                }
                config.retry_delay
            }
            Outcome::Connected {
                banner,
                handle,
                shared,
            } => {
                let host_key = shared.host_key().unwrap_or_default();
                tracker.observe(WaitEvent::Connected {
                    elapsed: start.elapsed(),
                    attempts,
                    host_key,
                });
                return Ok(Session::new(handle, target, auth, config, shared, banner));
            }
        };
        if !pause.is_zero() {
            let wake = (Instant::now() + pause).min(deadline);
            tokio::time::sleep_until(wake).await;
        }
    }
}

pub(crate) fn russh_config(config: &WaitConfig) -> client::Config {
    client::Config {
        keepalive_interval: config.keepalive_interval,
        keepalive_max: config.keepalive_max,
        nodelay: true,
        client_id: russh::SshId::Standard(
            concat!("SSH-2.0-kiln_", env!("CARGO_PKG_VERSION")).into(),
        ),
        ..client::Config::default()
    }
}

enum Outcome {
    DeadlinePassed,
    Refused(String),
    Unreachable(String),
    NoBanner {
        waited: Duration,
        peer_closed: bool,
    },
    HandshakeFailed {
        error: String,
    },
    AuthRefused {
        offered: Vec<String>,
        tried: Vec<String>,
    },
    Connected {
        banner: String,
        handle: client::Handle<ClientHandler>,
        shared: Arc<Shared>,
    },
}

async fn attempt(
    target: &Target,
    auth: &Auth,
    config: &WaitConfig,
    russh_config: &Arc<client::Config>,
    deadline: Instant,
    tracker: &mut Tracker<'_>,
) -> Outcome {
    // TCP.
    let connect_by = (Instant::now() + config.connect_timeout).min(deadline);
    let connect = TcpStream::connect((target.host.as_str(), target.port));
    let stream = match tokio::time::timeout_at(connect_by, connect).await {
        Err(_) if Instant::now() >= deadline => return Outcome::DeadlinePassed,
        Err(_) => {
            return Outcome::Unreachable(format!(
                "TCP connect timed out after {:.1?}",
                config.connect_timeout
            ));
        }
        Ok(Err(e)) => {
            return match e.kind() {
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset => {
                    Outcome::Refused(e.to_string())
                }
                _ => Outcome::Unreachable(e.to_string()),
            };
        }
        Ok(Ok(s)) => s,
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("set_nodelay: {e}");
    }

    // Banner.
    let banner_start = Instant::now();
    let banner_by = (banner_start + config.banner_timeout).min(deadline);
    let mut stream = stream;
    let (version, prefix) = match tokio::time::timeout_at(banner_by, read_banner(&mut stream)).await
    {
        Err(_) if Instant::now() >= deadline => return Outcome::DeadlinePassed,
        Err(_) => {
            return Outcome::NoBanner {
                waited: banner_start.elapsed(),
                peer_closed: false,
            };
        }
        Ok(Err(BannerError::Closed)) => {
            return Outcome::NoBanner {
                waited: banner_start.elapsed(),
                peer_closed: true,
            };
        }
        Ok(Err(BannerError::NotSsh(line))) => {
            return Outcome::HandshakeFailed {
                error: format!("not an SSH server; it sent `{line}`"),
            };
        }
        Ok(Ok(v)) => v,
    };
    tracker.observe(WaitEvent::Banner {
        version: version.clone(),
    });

    // Key exchange and authentication.
    let shared = Arc::new(Shared::default());
    let handler = ClientHandler::new(shared.clone());
    let hs_by = (Instant::now() + config.handshake_timeout).min(deadline);
    let replay = Replay {
        prefix,
        pos: 0,
        inner: stream,
    };
    let handle = match tokio::time::timeout_at(
        hs_by,
        client::connect_stream(russh_config.clone(), replay, handler),
    )
    .await
    {
        Err(_) if Instant::now() >= deadline => return Outcome::DeadlinePassed,
        Err(_) => {
            return Outcome::HandshakeFailed {
                error: format!(
                    "key exchange did not finish within {:.1?}",
                    config.handshake_timeout
                ),
            };
        }
        Ok(Err(e)) => {
            return Outcome::HandshakeFailed {
                error: shared.disconnect_reason().unwrap_or_else(|| e.to_string()),
            };
        }
        Ok(Ok(h)) => h,
    };
    let mut handle = handle;
    match tokio::time::timeout_at(hs_by, authenticate(&mut handle, &target.user, auth)).await {
        Err(_) if Instant::now() >= deadline => Outcome::DeadlinePassed,
        Err(_) => Outcome::HandshakeFailed {
            error: format!(
                "authentication did not finish within {:.1?}",
                config.handshake_timeout
            ),
        },
        Ok(Err(e)) => Outcome::HandshakeFailed {
            error: shared.disconnect_reason().unwrap_or(e),
        },
        Ok(Ok(AuthOutcome::Success)) => Outcome::Connected {
            banner: version,
            handle,
            shared,
        },
        Ok(Ok(AuthOutcome::Refused { offered, tried })) => {
            let _ = handle
                .disconnect(Disconnect::ByApplication, "authentication refused", "en")
                .await;
            Outcome::AuthRefused { offered, tried }
        }
    }
}

enum BannerError {
    Closed,
    NotSsh(String),
}

/// Reads up to and including the server's `SSH-` identification line.
/// Returns the line (without its end) and every byte read, for replay.
async fn read_banner(stream: &mut TcpStream) -> Result<(String, Vec<u8>), BannerError> {
    const LIMIT: usize = 16 * 1024;
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut line_start = 0;
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) if buf.iter().any(|b| !b.is_ascii_whitespace()) => {
                return Err(BannerError::NotSsh(first_line(&buf)));
            }
            Ok(0) | Err(_) => return Err(BannerError::Closed),
            Ok(n) => n,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        while let Some(rel) = buf
            .get(line_start..)
            .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
        {
            let line = buf.get(line_start..line_start + rel).unwrap_or_default();
            let text = String::from_utf8_lossy(line)
                .trim_end_matches('\r')
                .to_owned();
            if text.starts_with("SSH-") {
                return Ok((text, buf));
            }
            line_start += rel + 1;
        }
        if buf.len() > LIMIT {
            return Err(BannerError::NotSsh(first_line(&buf)));
        }
    }
}

fn first_line(buf: &[u8]) -> String {
    String::from_utf8_lossy(buf.get(..80.min(buf.len())).unwrap_or_default())
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A stream that first yields bytes already read from it.
struct Replay {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Some(rest) = this.prefix.get(this.pos..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            this.pos += n;
            if this.pos >= this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

enum AuthOutcome {
    Success,
    Refused {
        offered: Vec<String>,
        tried: Vec<String>,
    },
}

fn method_names(set: &MethodSet) -> Vec<String> {
    set.iter()
        .map(|m| <&'static str>::from(m).to_owned())
        .collect()
}

/// Tries every credential the server accepts. `Err` is a protocol or
/// connection failure (a handshake failure), not a refusal.
///
/// There is no `none` probe first: every round trip costs a TCG guest's
/// sshd real time, and the first refusal names the methods the server
/// offers anyway. Until a refusal says otherwise, every method is assumed
/// offered.
async fn authenticate(
    handle: &mut client::Handle<ClientHandler>,
    user: &str,
    auth: &Auth,
) -> Result<AuthOutcome, String> {
    let mut offered_set: Option<MethodSet> = None;
    let offers =
        |set: &Option<MethodSet>, m: MethodKind| set.as_ref().is_none_or(|s| s.contains(&m));
    let mut tried: Vec<String> = Vec::new();
    let note = |tried: &mut Vec<String>, m: &str| {
        if !tried.iter().any(|t| t == m) {
            tried.push(m.to_owned());
        }
    };
    let closed = || Err("connection closed during authentication".to_owned());

    for key in &auth.keys {
        if !offers(&offered_set, MethodKind::PublicKey) {
            break;
        }
        note(&mut tried, "publickey");
        let hash = if key.private_key().algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .map_err(|e| format!("rsa hash negotiation failed: {e}"))?
                .flatten()
        } else {
            None
        };
        let res = handle
            .authenticate_publickey(
                user,
                PrivateKeyWithHashAlg::new(key.private_key().clone(), hash),
            )
            .await
            .map_err(|e| format!("publickey authentication failed: {e}"))?;
        match res {
            client::AuthResult::Success => return Ok(AuthOutcome::Success),
            client::AuthResult::Failure {
                remaining_methods, ..
            } => offered_set = Some(remaining_methods),
        }
        if handle.is_closed() {
            return closed();
        }
    }
    if let Some(password) = &auth.password {
        if offers(&offered_set, MethodKind::Password) {
            note(&mut tried, "password");
            let res = handle
                .authenticate_password(user, password.as_str())
                .await
                .map_err(|e| format!("password authentication failed: {e}"))?;
            match res {
                client::AuthResult::Success => return Ok(AuthOutcome::Success),
                client::AuthResult::Failure {
                    remaining_methods, ..
                } => offered_set = Some(remaining_methods),
            }
        }
        if offered_set
            .as_ref()
            .is_some_and(|s| s.contains(&MethodKind::KeyboardInteractive))
            && !handle.is_closed()
        {
            note(&mut tried, "keyboard-interactive");
            if keyboard_interactive(handle, user, password).await? {
                return Ok(AuthOutcome::Success);
            }
        }
    }
    if handle.is_closed() {
        return closed();
    }
    let offered = offered_set.as_ref().map(method_names).unwrap_or_default();
    Ok(AuthOutcome::Refused { offered, tried })
}

async fn keyboard_interactive(
    handle: &mut client::Handle<ClientHandler>,
    user: &str,
    password: &str,
) -> Result<bool, String> {
    let err = |e: russh::Error| format!("keyboard-interactive authentication failed: {e}");
    let mut reply = handle
        .authenticate_keyboard_interactive_start(user, None::<String>)
        .await
        .map_err(err)?;
    // A server asks for the password once; a few rounds cover banners and
    // empty info requests.
    for _ in 0..8 {
        match reply {
            client::KeyboardInteractiveAuthResponse::Success => return Ok(true),
            client::KeyboardInteractiveAuthResponse::Failure { .. } => return Ok(false),
            client::KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                let answers = prompts
                    .iter()
                    .map(|p| {
                        if p.echo {
                            String::new()
                        } else {
                            password.to_owned()
                        }
                    })
                    .collect();
                reply = handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await
                    .map_err(err)?;
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_display_names_user_host_port() {
        assert_eq!(
            Target::new("127.0.0.1", 2222, "packer").to_string(),
            "packer@127.0.0.1:2222"
        );
        assert_eq!(Target::new("::1", 22, "u").to_string(), "u@[::1]:22");
    }

    #[test]
    fn auth_debug_hides_password() {
        let a = Auth::new().password("hunter2");
        assert!(!format!("{a:?}").contains("hunter2"));
    }

    #[test]
    fn tracker_emits_transitions_once() {
        let mut seen = Vec::new();
        let mut sink = |e: WaitEvent| seen.push(e);
        let mut t = Tracker {
            on_event: &mut sink,
            last: None,
            since: Instant::now(),
            last_banner: None,
        };
        for _ in 0..5 {
            t.observe(WaitEvent::PortClosed {
                error: "refused".into(),
            });
        }
        t.observe(WaitEvent::TcpConnectedNoBanner {
            waited: Duration::ZERO,
            peer_closed: true,
        });
        t.observe(WaitEvent::TcpConnectedNoBanner {
            waited: Duration::ZERO,
            peer_closed: true,
        });
        for attempt in 1..=2 {
            t.observe(WaitEvent::Banner {
                version: "SSH-2.0-x".into(),
            });
            t.observe(WaitEvent::AuthRefused {
                methods_offered: vec!["publickey".into()],
                methods_tried: vec![],
                attempt,
                of: 2,
            });
        }
        assert!(matches!(
            t.last,
            Some(WaitEvent::AuthRefused { attempt: 2, .. })
        ));
        drop(t);
        let kinds: Vec<&str> = seen.iter().map(WaitEvent::state_name).collect();
        assert_eq!(
            kinds,
            [
                "port closed",
                "TCP connected but no SSH banner",
                "SSH banner received",
                "authentication refused",
                "authentication refused"
            ]
        );
    }

    #[test]
    fn timeout_error_names_state_and_target() {
        let e = WaitError::Timeout {
            target: Target::new("127.0.0.1", 2222, "packer"),
            timeout: Duration::from_secs(300),
            last: Some(WaitEvent::TcpConnectedNoBanner {
                waited: Duration::from_millis(2),
                peer_closed: true,
            }),
            held: Duration::from_secs(120),
            attempts: 1000,
        };
        let s = e.to_string();
        assert!(s.contains("`packer@127.0.0.1:2222`"), "{s}");
        assert!(s.contains("no SSH banner"), "{s}");
        assert!(s.contains("120.0s"), "{s}");
        assert!(s.contains("1000 connection attempts"), "{s}");
        assert!(e.diagnosis().contains("sshd is not up"));
    }
}
