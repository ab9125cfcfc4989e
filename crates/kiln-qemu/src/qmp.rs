//! A small QMP client over a Unix socket: greeting and capabilities
//! negotiation, commands with typed replies and errors, an event stream,
//! and a deadline on everything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{broadcast, oneshot};
use tokio::time::{Instant, timeout};

/// Default deadline of a command.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(10);

/// A QMP failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QmpError {
    #[error("cannot connect to QMP socket {path}: {reason}")]
    Connect { path: PathBuf, reason: String },
    #[error("QMP handshake on {path} failed: {reason}")]
    Handshake { path: PathBuf, reason: String },
    #[error("QMP `{command}` failed: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    #[error("QMP `{command}` got no reply within {after:?}")]
    Timeout { command: String, after: Duration },
    #[error("QMP connection closed (QEMU exited?) during `{command}`")]
    Disconnected { command: String },
    #[error("QMP `{command}`: unexpected reply: {reason}")]
    BadReply { command: String, reason: String },
}

/// An asynchronous QMP event (`SHUTDOWN`, `POWERDOWN`, `RESET`, `STOP`, …).
#[derive(Clone, Debug, PartialEq)]
pub struct QmpEvent {
    pub name: String,
    pub data: Value,
    /// Seconds and microseconds since the epoch, as QEMU stamps it.
    pub timestamp: (i64, i64),
}

/// `query-status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct StatusInfo {
    pub running: bool,
    pub status: String,
}

/// `query-migrate` (the fields kiln reads).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct MigrationInfo {
    pub status: Option<String>,
    #[serde(rename = "error-desc")]
    pub error_desc: Option<String>,
    #[serde(default)]
    pub ram: Option<Value>,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, (String, String)>>>>>;

/// A connected QMP session. Cheap to share behind an `Arc`.
pub struct Qmp {
    path: PathBuf,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: std::sync::atomic::AtomicU64,
    events: broadcast::Sender<QmpEvent>,
    closed: Arc<std::sync::atomic::AtomicBool>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Qmp {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Qmp {
    /// Connect (retrying while QEMU creates the socket) and negotiate
    /// capabilities, all within `deadline`.
    pub async fn connect(path: &Path, deadline: Duration) -> Result<Qmp, QmpError> {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(path).await {
                Ok(s) => break s,
                Err(e) => {
                    if start.elapsed() >= deadline {
                        return Err(QmpError::Connect {
                            path: path.to_path_buf(),
                            reason: format!("{e} (gave up after {deadline:?})"),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let handshake = |reason: String| QmpError::Handshake {
            path: path.to_path_buf(),
            reason,
        };
        let remaining = deadline.saturating_sub(start.elapsed());
        let greeting = timeout(remaining, lines.next_line())
            .await
            .map_err(|_| handshake("no greeting".into()))?
            .map_err(|e| handshake(e.to_string()))?
            .ok_or_else(|| handshake("closed before the greeting".into()))?;
        let greeting: Value =
            serde_json::from_str(&greeting).map_err(|e| handshake(format!("{e}: {greeting}")))?;
        if greeting.get("QMP").is_none() {
            return Err(handshake(format!("not a QMP greeting: {greeting}")));
        }

        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let (events, _) = broadcast::channel(256);
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let pending = pending.clone();
            let events = events.clone();
            let closed = closed.clone();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    if let Some(name) = msg.get("event").and_then(Value::as_str) {
                        let ts = msg.get("timestamp");
                        let part = |k: &str| {
                            ts.and_then(|t| t.get(k))
                                .and_then(Value::as_i64)
                                .unwrap_or(0)
                        };
                        let _ = events.send(QmpEvent {
                            name: name.to_string(),
                            data: msg.get("data").cloned().unwrap_or(Value::Null),
                            timestamp: (part("seconds"), part("microseconds")),
                        });
                        continue;
                    }
                    let Some(id) = msg.get("id").and_then(Value::as_u64) else {
                        continue;
                    };
                    let reply = if let Some(ret) = msg.get("return") {
                        Ok(ret.clone())
                    } else {
                        let err = msg.get("error");
                        let field = |k: &str| {
                            err.and_then(|e| e.get(k))
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string()
                        };
                        Err((field("class"), field("desc")))
                    };
                    if let Some(tx) = lock(&pending).remove(&id) {
                        let _ = tx.send(reply);
                    }
                }
                closed.store(true, std::sync::atomic::Ordering::SeqCst);
                lock(&pending).clear();
            })
        };
        let qmp = Qmp {
            path: path.to_path_buf(),
            writer: tokio::sync::Mutex::new(write),
            pending,
            next_id: std::sync::atomic::AtomicU64::new(1),
            events,
            closed,
            reader,
        };
        let remaining = deadline
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(500));
        qmp.execute_raw("qmp_capabilities", None, remaining)
            .await
            .map_err(|e| handshake(e.to_string()))?;
        Ok(qmp)
    }

    /// The socket this session is connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Subscribe to events from now on.
    pub fn events(&self) -> broadcast::Receiver<QmpEvent> {
        self.events.subscribe()
    }

    /// Whether QEMU closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Run a command and return its raw `return` value.
    pub async fn execute_raw(
        &self,
        command: &str,
        arguments: Option<Value>,
        deadline: Duration,
    ) -> Result<Value, QmpError> {
        if self.is_closed() {
            return Err(QmpError::Disconnected {
                command: command.to_string(),
            });
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let mut msg = json!({ "execute": command, "id": id });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut line = msg.to_string();
        line.push('\n');
        let write = async {
            let mut w = self.writer.lock().await;
            w.write_all(line.as_bytes()).await?;
            w.flush().await
        };
        let disconnected = || QmpError::Disconnected {
            command: command.to_string(),
        };
        match timeout(deadline, write).await {
            Err(_) => {
                lock(&self.pending).remove(&id);
                return Err(QmpError::Timeout {
                    command: command.to_string(),
                    after: deadline,
                });
            }
            Ok(Err(_)) => {
                lock(&self.pending).remove(&id);
                return Err(disconnected());
            }
            Ok(Ok(())) => {}
        }
        match timeout(deadline, rx).await {
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(QmpError::Timeout {
                    command: command.to_string(),
                    after: deadline,
                })
            }
            Ok(Err(_)) => Err(disconnected()),
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err((class, desc)))) => Err(QmpError::Command {
                command: command.to_string(),
                class,
                desc,
            }),
        }
    }

    /// Run a command and decode its reply.
    pub async fn execute<T: DeserializeOwned>(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<T, QmpError> {
        let v = self
            .execute_raw(command, arguments, COMMAND_DEADLINE)
            .await?;
        serde_json::from_value(v).map_err(|e| QmpError::BadReply {
            command: command.to_string(),
            reason: e.to_string(),
        })
    }

    async fn unit(&self, command: &str, arguments: Option<Value>) -> Result<(), QmpError> {
        self.execute_raw(command, arguments, COMMAND_DEADLINE)
            .await
            .map(|_| ())
    }

    /// Press the keys together (QKeyCode names) and release them after
    /// `hold`.
    pub async fn send_key(&self, qcodes: &[&str], hold: Duration) -> Result<(), QmpError> {
        let keys: Vec<Value> = qcodes
            .iter()
            .map(|k| json!({ "type": "qcode", "data": k }))
            .collect();
        let hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1);
        self.unit(
            "send-key",
            Some(json!({ "keys": keys, "hold-time": hold_ms })),
        )
        .await
    }

    /// Key down or up (for keys held across other keys).
    pub async fn key_event(&self, qcode: &str, down: bool) -> Result<(), QmpError> {
        let event = json!({
            "type": "key",
            "data": { "down": down, "key": { "type": "qcode", "data": qcode } }
        });
        self.unit("input-send-event", Some(json!({ "events": [event] })))
            .await
    }

    /// ACPI power button.
    pub async fn system_powerdown(&self) -> Result<(), QmpError> {
        self.unit("system_powerdown", None).await
    }

    /// Stop QEMU at once. The connection closing is the expected answer.
    pub async fn quit(&self) -> Result<(), QmpError> {
        match self.unit("quit", None).await {
            Err(QmpError::Disconnected { .. }) => Ok(()),
            other => other,
        }
    }

    pub async fn query_status(&self) -> Result<StatusInfo, QmpError> {
        self.execute("query-status", None).await
    }

    pub async fn stop(&self) -> Result<(), QmpError> {
        self.unit("stop", None).await
    }

    pub async fn cont(&self) -> Result<(), QmpError> {
        self.unit("cont", None).await
    }

    /// Start a migration to `uri` (e.g. `exec:cat > state` for a snapshot).
    pub async fn migrate(&self, uri: &str) -> Result<(), QmpError> {
        self.unit("migrate", Some(json!({ "uri": uri }))).await
    }

    pub async fn migrate_set_parameters(&self, parameters: Value) -> Result<(), QmpError> {
        self.unit("migrate-set-parameters", Some(parameters)).await
    }

    pub async fn query_migrate(&self) -> Result<MigrationInfo, QmpError> {
        self.execute("query-migrate", None).await
    }

    /// External snapshot of a block device onto a new overlay file.
    pub async fn blockdev_snapshot_sync(
        &self,
        device: &str,
        snapshot_file: &str,
        format: &str,
    ) -> Result<(), QmpError> {
        self.unit(
            "blockdev-snapshot-sync",
            Some(json!({ "device": device, "snapshot-file": snapshot_file, "format": format })),
        )
        .await
    }

    /// A human monitor command; returns its text output.
    pub async fn human_monitor_command(&self, command_line: &str) -> Result<String, QmpError> {
        self.execute(
            "human-monitor-command",
            Some(json!({ "command-line": command_line })),
        )
        .await
    }

    /// Wait for the next event named one of `names`, within `deadline`.
    pub async fn wait_event(
        events: &mut broadcast::Receiver<QmpEvent>,
        names: &[&str],
        deadline: Duration,
    ) -> Option<QmpEvent> {
        let until = Instant::now() + deadline;
        loop {
            match tokio::time::timeout_at(until, events.recv()).await {
                Err(_) => return None,
                Ok(Ok(ev)) if names.contains(&ev.name.as_str()) => return Some(ev),
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            }
        }
    }
}
