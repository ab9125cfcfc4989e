//! Checkpoints of a running build VM, and resuming from them.
//!
//! A [`Vm`] is a QEMU whose writable disks are qcow2 overlays in a store
//! staging dir, started from a [`VmTemplate`]: the command line with the
//! per-run parts written as tokens (`{kiln:disk0}`, `{kiln:vars}`,
//! `{kiln:qmp}`, and the caller's own such as `{kiln:ssh_port}`), so that a
//! restore runs the very same devices and the template can be compared
//! across runs by digest.
//!
//! **Checkpoint** ([`Vm::checkpoint`]), with the guest paused for about a
//! second:
//! 1. QMP `stop`; copy the live UEFI variables file (a raw pflash drive,
//!    which is also why `savevm` cannot be used);
//! 2. `blockdev-snapshot-sync` every disk (found with `query-block` by its
//!    file name) onto a new overlay in a fresh staging dir, in one
//!    `transaction`: the old overlays are frozen and become the checkpoint's
//!    disks, the guest goes on writing to the new ones;
//! 3. raise `max-bandwidth` (the 128 MiB/s default makes the save take
//!    seconds) and `migrate` to a Unix socket kiln listens on; the
//!    accepted connection is the stdin of a `zstd -1 -T0` that kiln starts
//!    and waits for (in-process zstd when the program is missing), polling
//!    `query-migrate` until it completes. Not `exec:zstd … > FILE`: when
//!    QEMU closes an `exec:` channel it SIGTERMs the child at once (and
//!    SIGKILLs it 10 ms later), which can cut off the compressor's last
//!    block; this way kiln knows the file is whole and fsyncs it;
//! 4. `cont`: the source VM runs on, on its new overlays;
//! 5. publish the frozen dir as the entry (fsync, rename), then
//!    `change-backing-file` the new overlays to the entry's final path, so
//!    every header names a path that exists and never changes.
//!
//! **Consistency.** The caller runs `sync` in the guest first. With a saved
//! state, disk and RAM are consistent whatever the guest was doing: `stop`
//! drains QEMU's block layer (no request is half-written), the snapshot
//! flushes the old overlay before freezing it, and the migration stream
//! holds the guest's page cache and the virtqueues at that same instant, so
//! the restored guest resumes exactly where it paused. Without the state (a
//! cold resume) the frozen disk is what a power cut at that instant would
//! leave: everything the guest had synced is there, ext4's journal deals
//! with the rest, and `sync` right before makes the step's own writes part
//! of the former.
//!
//! **Resume** ([`Vm::resume`]): a fresh overlay on the entry's disks and a
//! fresh copy of its variables for every branch, then either QEMU with
//! `-incoming unix:…` fed the decompressed stream by kiln (the guest runs
//! on in a second or two; its clock lags by the checkpoint's age: run
//! [`clock_sync_command`]), or a cold boot of the frozen disk (a full boot;
//! used when the state is missing or the QEMU, machine type or command
//! line differ). [`ResumeMode::Auto`] — the default — restores the state
//! when it can and falls back to a cold boot, saying why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln_qemu::process::{ExitInfo, ProcessError, QemuCommand, QemuProcess};
use kiln_qemu::qmp::{Qmp, QmpError};
use kiln_secret::Redactor;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::key::{CacheKey, KeyError, QemuHost, canonical_json};
use super::store::{
    DiskMeta, Entry, EntryMeta, FileMeta, Lease, META_SCHEMA, MachineFacts, PublishError, Staging,
    StateMeta, Store, StoreError,
};

/// Token names kiln fills in itself.
pub const DISK_TOKEN_PREFIX: &str = "disk";
pub const VARS_TOKEN: &str = "vars";
pub const QMP_TOKEN: &str = "qmp";
/// File names in entries and staging dirs.
const VARS_FILE: &str = "vars.fd";
const STATE_FILE: &str = "state.zst";
/// `max-bandwidth` during a save (bytes/s): as fast as the host can go.
const SAVE_BANDWIDTH: u64 = 100 << 30;
/// How long a save or an incoming restore may take.
const MIGRATION_DEADLINE: Duration = Duration::from_secs(600);
/// How long loading a saved state may take.
const INCOMING_DEADLINE: Duration = Duration::from_secs(300);
/// How long QEMU may take to open its QMP socket.
const QMP_DEADLINE: Duration = Duration::from_secs(30);

/// `{kiln:<name>}`.
pub fn token(name: &str) -> String {
    format!("{{kiln:{name}}}")
}

/// The token of disk `i` (drive order).
pub fn disk_token(i: usize) -> String {
    token(&format!("{DISK_TOKEN_PREFIX}{i}"))
}

/// File name of disk `i` in a staging dir or an entry.
fn disk_file(i: usize) -> String {
    if i == 0 {
        "disk.qcow2".to_string()
    } else {
        format!("disk-{i}.qcow2")
    }
}

/// Errors of checkpoints and resumes.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{source} (QEMU pid {pid})")]
    Qmp {
        pid: i32,
        #[source]
        source: QmpError,
    },
    #[error(transparent)]
    Start(#[from] ProcessError),
    #[error(transparent)]
    Tool(#[from] kiln_exec::ExecError),
    #[error("cannot read what `{command}` printed: {source}")]
    ToolOutput {
        command: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot {op} `{}`: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the QEMU command-line template {problem}")]
    Template { problem: String },
    #[error("QEMU has no block node for `{}` (`query-block` lists {seen:?})", path.display())]
    NoNode { path: PathBuf, seen: Vec<String> },
    #[error("the VM state `{}` could not be written or read: {desc}", path.display())]
    Save { path: PathBuf, desc: String },
    #[error("restoring the saved state `{state}` failed: {exit}")]
    Incoming { state: String, exit: ExitInfo },
    #[error("the saved state of `{key}` cannot be restored: {reason}")]
    NoState { key: String, reason: NoStateReason },
    #[error("{what} did not happen within {after:?}; QEMU said: {stderr}")]
    Deadline {
        what: &'static str,
        after: Duration,
        stderr: String,
    },
    #[error("a blocking task panicked: {0}")]
    Join(#[from] tokio::task::JoinError),
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CheckpointError + 'a {
    move |source| CheckpointError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A QEMU command line with the per-run parts as `{kiln:<name>}` tokens.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmTemplate {
    pub program: String,
    pub args: Vec<String>,
}

impl VmTemplate {
    pub fn new(program: impl Into<String>, args: Vec<String>) -> VmTemplate {
        VmTemplate {
            program: program.into(),
            args,
        }
    }

    /// The token names used, without braces.
    pub fn tokens(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for arg in &self.args {
            let mut rest = arg.as_str();
            while let Some(start) = rest.find("{kiln:") {
                let after = &rest[start + 6..];
                match after.find('}') {
                    Some(end) => {
                        names.insert(after[..end].to_string());
                        rest = &after[end + 1..];
                    }
                    None => break,
                }
            }
        }
        names
    }

    /// Number of disks (`{kiln:disk0}` … without gaps).
    pub fn disk_count(&self) -> usize {
        let tokens = self.tokens();
        (0..)
            .take_while(|i| tokens.contains(&format!("{DISK_TOKEN_PREFIX}{i}")))
            .count()
    }

    /// The arguments with every token replaced; an unknown token is an error.
    pub fn render(
        &self,
        values: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, CheckpointError> {
        let missing: Vec<String> = self
            .tokens()
            .into_iter()
            .filter(|t| !values.contains_key(t))
            .collect();
        if !missing.is_empty() {
            return Err(CheckpointError::Template {
                problem: format!(
                    "uses {} with no value",
                    missing
                        .iter()
                        .map(|t| format!("`{}`", token(t)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        Ok(self
            .args
            .iter()
            .map(|arg| {
                let mut out = arg.clone();
                for (name, value) in values {
                    out = out.replace(&token(name), value);
                }
                out
            })
            .collect())
    }

    /// `blake3:<hex>` of program and arguments: equal digests mean the same
    /// devices in the same order.
    pub fn digest(&self) -> String {
        let v = json!({ "program": self.program, "args": self.args });
        super::key::digest_bytes(&canonical_json(&v))
    }

    /// The template with its machine type pinned to the versioned name.
    pub fn pinned(&self, host: &QemuHost) -> Result<(VmTemplate, String), CheckpointError> {
        let (args, machine) = host.machines.pin_args(&self.args)?;
        Ok((VmTemplate::new(self.program.clone(), args), machine))
    }

    fn console_from_stdout(&self) -> bool {
        self.args
            .windows(2)
            .any(|w| w[0] == "-serial" && (w[1] == "stdio" || w[1].starts_with("mon:stdio")))
    }
}

/// How to run a VM: everything but its disks.
#[derive(Clone, Debug)]
pub struct VmSetup {
    /// The command line; must use `{kiln:qmp}` (kiln's QMP socket),
    /// `{kiln:disk0}` … for the writable qcow2 disks, and `{kiln:vars}`
    /// when the guest has a UEFI variables pflash drive.
    pub template: VmTemplate,
    /// Values of the caller's own tokens (ports, seed media …).
    pub values: BTreeMap<String, String>,
    /// The QEMU the template runs.
    pub host: QemuHost,
    /// The firmware's variables template, copied for a boot from the base
    /// image (a resume copies the entry's).
    pub firmware_vars: Option<PathBuf>,
    /// Append the serial console here.
    pub console_log: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    /// Masks sensitive values in the argv recorded in entries.
    pub redactor: Redactor,
}

/// A base disk for [`Vm::boot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseDisk {
    pub path: PathBuf,
    /// `qcow2` or `raw`.
    pub format: String,
    /// Virtual size of the overlay (`disk_size`); `None`: the base's.
    pub size: Option<u64>,
}

/// What a checkpoint is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRequest {
    pub key: CacheKey,
    pub build: String,
    pub step: String,
    pub step_index: usize,
    /// Save the VM state too (restore in seconds rather than a boot).
    pub save_state: bool,
}

/// What became of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckpointOutcome {
    /// A new entry.
    Published,
    /// The key was already cached: the VM was not paused.
    AlreadyCached,
    /// Another build published the same key while this one saved it; this
    /// VM's later checkpoints are not cached.
    LostRace,
    /// Not cached: the VM's chain is not in the store, or the store failed
    /// (the VM runs on either way).
    NotCached { reason: String },
}

/// Timings and sizes of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointReport {
    pub key: String,
    pub outcome: CheckpointOutcome,
    /// From `stop` to `cont`: how long the guest was paused.
    pub paused: Duration,
    /// Of which saving the state.
    pub save: Duration,
    /// Everything, publish included.
    pub total: Duration,
    /// Size of `state.zst`, when saved.
    pub state_bytes: Option<u64>,
    /// Why no state was saved although asked for.
    pub state_skipped: Option<String>,
    /// Allocated bytes of the frozen overlays.
    pub disk_bytes: u64,
}

/// How to resume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeMode {
    /// The saved state when it can be restored, else a cold boot.
    #[default]
    Auto,
    /// The saved state or an error.
    State,
    /// Boot the checkpoint's disks.
    Cold,
}

/// How a resume went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resumed {
    /// The guest runs on from the checkpoint's instant (fix its clock).
    State,
    /// The guest boots from the checkpoint's disks (wait for SSH as after
    /// any boot).
    Cold,
}

/// What a resume did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ResumeReport {
    pub key: String,
    pub used: Resumed,
    /// Why the state was not used (a cold resume under `Auto`).
    pub fallback: Option<String>,
    /// From spawning QEMU to the guest running (state) or QEMU up (cold).
    pub launch: Duration,
}

/// A command that sets the guest's clock after a state restore (it lags by
/// the checkpoint's age): the host's time now, else the emulated RTC.
pub fn clock_sync_command(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("sudo -n date -u -s @{secs} >/dev/null 2>&1 || sudo -n hwclock --hctosys")
}

/// Where the active chain of a VM starts.
enum Parent {
    Base(Vec<(PathBuf, String)>),
    Entry {
        key: CacheKey,
        disks: Vec<PathBuf>,
        _lease: Lease,
    },
}

/// A build VM whose disks live in the step cache.
pub struct Vm {
    // Dropped first: QEMU dies before its files go (callers that clone
    // the handle stop QEMU before they drop the VM).
    process: Arc<QemuProcess>,
    qmp: Qmp,
    template: VmTemplate,
    machine_type: String,
    values: BTreeMap<String, String>,
    host: QemuHost,
    redactor: Redactor,
    /// The live overlays, in drive order.
    disks: Vec<PathBuf>,
    active: Staging,
    parent: Parent,
    /// Frozen dirs that back the active chain but are not published.
    held: Vec<Staging>,
    /// `Err(reason)` once the chain can no longer be published.
    cacheable: Result<(), String>,
    vars: Option<PathBuf>,
    runtime: Runtime,
    checkpoints: usize,
}

/// What is left of a VM after QEMU exited: its final overlays, kept (with
/// the chain under them) until dropped.
pub struct FinishedVm {
    pub exit: ExitInfo,
    /// The final overlays in drive order; their backing chains are in the
    /// store and held until this is dropped.
    pub disks: Vec<PathBuf>,
    /// The UEFI variables as the guest left them.
    pub vars: Option<PathBuf>,
    _runtime: Runtime,
    _active: Staging,
    _held: Vec<Staging>,
    _parent: Parent,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CheckpointError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(CheckpointError::Join)
}

/// Runs a host tool (`qemu-img`, `zstd`); stdout on success.
pub(crate) async fn run_tool(program: &str, args: &[String]) -> Result<String, CheckpointError> {
    Ok(kiln_exec::Program::new(program).args(args).run().await?)
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Creates a qcow2 overlay on `backing` without opening it (`-u`), so a
/// backing file that a running QEMU holds is fine.
async fn create_overlay(
    overlay: &Path,
    backing: &Path,
    backing_format: &str,
    size: Option<u64>,
) -> Result<(), CheckpointError> {
    let mut args = vec![
        "create".to_string(),
        "-q".into(),
        "-f".into(),
        "qcow2".into(),
        "-F".into(),
        backing_format.into(),
        "-b".into(),
        path_str(backing),
    ];
    if size.is_some() {
        args.push("-u".into());
    }
    args.push(path_str(overlay));
    if let Some(size) = size {
        args.push(size.to_string());
    }
    run_tool("qemu-img", &args).await.map(|_| ())
}

/// `qemu-img info` of a file another QEMU may hold.
pub(crate) async fn image_info(path: &Path) -> Result<Value, CheckpointError> {
    let text = run_tool(
        "qemu-img",
        &[
            "info".into(),
            "-U".into(),
            "--output=json".into(),
            path_str(path),
        ],
    )
    .await?;
    serde_json::from_str(&text).map_err(|source| CheckpointError::ToolOutput {
        command: format!("qemu-img info -U --output=json {}", path.display()),
        source,
    })
}

/// The top-level file name of a block node as `query-block` reports it
/// (`json:{…}` after a snapshot).
fn node_file_name(inserted: &Value) -> Option<String> {
    let file = inserted.get("file")?.as_str()?;
    match file.strip_prefix("json:") {
        None => Some(file.to_string()),
        Some(json) => serde_json::from_str::<Value>(json)
            .ok()?
            .get("file")?
            .get("filename")?
            .as_str()
            .map(str::to_string),
    }
}

/// Finds the root node name of the device whose active image is `path`.
fn find_node(blocks: &Value, path: &Path) -> Result<String, CheckpointError> {
    let mut seen = Vec::new();
    for device in blocks.as_array().into_iter().flatten() {
        let Some(inserted) = device.get("inserted") else {
            continue;
        };
        let Some(name) = node_file_name(inserted) else {
            continue;
        };
        if Path::new(&name) == path
            && let Some(node) = inserted.get("node-name").and_then(Value::as_str)
        {
            return Ok(node.to_string());
        }
        seen.push(name);
    }
    Err(CheckpointError::NoNode {
        path: path.to_path_buf(),
        seen,
    })
}

/// Why a frozen checkpoint cannot be published (the build goes on
/// uncached).
#[derive(Debug, thiserror::Error)]
pub enum NotPublishable {
    #[error("{0}")]
    Info(Box<CheckpointError>),
    #[error(
        "disk {disk} is backed by `{named}`, not by `{}`: its chain is not in the cache",
        backing.display()
    )]
    Chain {
        disk: usize,
        named: String,
        backing: PathBuf,
    },
    #[error("`{}`: {source}", path.display())]
    Vars {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a checkpoint's saved VM state cannot be restored here.
#[derive(Debug, thiserror::Error)]
pub enum NoStateReason {
    #[error("a cold resume was asked for")]
    ColdAsked,
    #[error("the checkpoint has no saved state")]
    NoneSaved,
    #[error("QEMU changed (`{saved}` saved it, this is `{now}`)")]
    QemuChanged { saved: String, now: String },
    #[error("machine type changed (`{saved}` → `{now}`)")]
    MachineChanged { saved: String, now: String },
    #[error("the QEMU command line (devices) changed")]
    ArgvChanged,
}

/// The state file of an entry, or why it cannot be restored with this setup.
fn state_compatibility(
    entry: &Entry,
    template: &VmTemplate,
    machine_type: &str,
    host: &QemuHost,
) -> Result<PathBuf, NoStateReason> {
    let facts = &entry.meta.machine;
    let state = entry.state_path().ok_or(NoStateReason::NoneSaved)?;
    if facts.qemu_version != host.version.line {
        return Err(NoStateReason::QemuChanged {
            saved: facts.qemu_version.clone(),
            now: host.version.line.clone(),
        });
    }
    if facts.machine_type != machine_type {
        return Err(NoStateReason::MachineChanged {
            saved: facts.machine_type.clone(),
            now: machine_type.to_string(),
        });
    }
    if facts.argv_digest != template.digest() {
        return Err(NoStateReason::ArgvChanged);
    }
    Ok(state)
}

impl Vm {
    /// Boots a VM on fresh overlays over the base disks.
    pub async fn boot(
        store: &Store,
        setup: VmSetup,
        base: &[BaseDisk],
    ) -> Result<Vm, CheckpointError> {
        let (template, machine_type) = setup.template.pinned(&setup.host)?;
        check_template(&template, base.len(), setup.firmware_vars.is_some())?;
        let mut chain = Vec::new();
        for disk in base {
            let path = std::path::absolute(&disk.path).map_err(io_err("resolve", &disk.path))?;
            chain.push((path, disk.format.clone()));
        }
        let store2 = store.clone();
        let active = blocking(move || store2.begin()).await??;
        let mut disks = Vec::new();
        for (i, (disk, (path, format))) in base.iter().zip(&chain).enumerate() {
            let overlay = active.path().join(disk_file(i));
            create_overlay(&overlay, path, format, disk.size).await?;
            disks.push(overlay);
        }
        let runtime = runtime_dir(store).await?;
        let vars = match &setup.firmware_vars {
            Some(src) => Some(copy_file(src, &runtime.path().join(VARS_FILE)).await?),
            None => None,
        };
        let (process, qmp) = launch(
            &template,
            &setup,
            &disks,
            vars.as_deref(),
            runtime.path(),
            None,
        )
        .await?;
        Ok(Vm {
            process,
            qmp,
            template,
            machine_type,
            values: setup.values,
            host: setup.host,
            redactor: setup.redactor,
            disks,
            active,
            parent: Parent::Base(chain),
            held: Vec::new(),
            cacheable: Ok(()),
            vars,
            runtime,
            checkpoints: 0,
        })
    }

    /// Resumes from a cache entry on fresh overlays and a fresh copy of its
    /// variables: the saved state when `mode` allows and it fits, else a
    /// cold boot of its disks.
    pub async fn resume(
        store: &Store,
        entry: &Entry,
        setup: VmSetup,
        mode: ResumeMode,
    ) -> Result<(Vm, ResumeReport), CheckpointError> {
        let (template, machine_type) = setup.template.pinned(&setup.host)?;
        check_template(&template, entry.meta.disks.len(), entry.meta.vars.is_some())?;
        let key = entry.key.to_string();
        let state = match mode {
            ResumeMode::Cold => Err(NoStateReason::ColdAsked),
            _ => state_compatibility(entry, &template, &machine_type, &setup.host),
        };
        let fallback = match state {
            Ok(state_path) => {
                match Vm::launch_from(
                    store,
                    entry,
                    &setup,
                    &template,
                    &machine_type,
                    Some(&state_path),
                )
                .await
                {
                    Ok(vm) => return Ok(vm),
                    Err(e) if mode == ResumeMode::Auto => Some(e.to_string()),
                    Err(e) => return Err(e),
                }
            }
            Err(reason) if mode == ResumeMode::State => {
                return Err(CheckpointError::NoState { key, reason });
            }
            Err(reason) => Some(reason.to_string()),
        };
        let (vm, mut report) =
            Vm::launch_from(store, entry, &setup, &template, &machine_type, None).await?;
        report.fallback = fallback.filter(|_| mode == ResumeMode::Auto);
        Ok((vm, report))
    }

    async fn launch_from(
        store: &Store,
        entry: &Entry,
        setup: &VmSetup,
        template: &VmTemplate,
        machine_type: &str,
        state: Option<&Path>,
    ) -> Result<(Vm, ResumeReport), CheckpointError> {
        let lease = {
            let store = store.clone();
            let entry = entry.clone();
            blocking(move || store.lease(&entry)).await??
        };
        let store2 = store.clone();
        let active = blocking(move || store2.begin()).await??;
        let backing = entry.disk_paths();
        let mut disks = Vec::new();
        for (i, (meta, back)) in entry.meta.disks.iter().zip(&backing).enumerate() {
            let overlay = active.path().join(disk_file(i));
            create_overlay(&overlay, back, "qcow2", Some(meta.virtual_size)).await?;
            disks.push(overlay);
        }
        let runtime = runtime_dir(store).await?;
        let vars = match entry.vars_path() {
            Some(src) => Some(copy_file(&src, &runtime.path().join(VARS_FILE)).await?),
            None => None,
        };
        let started = Instant::now();
        let (process, qmp) = launch(
            template,
            setup,
            &disks,
            vars.as_deref(),
            runtime.path(),
            state,
        )
        .await?;
        let report = ResumeReport {
            key: entry.key.to_string(),
            used: if state.is_some() {
                Resumed::State
            } else {
                Resumed::Cold
            },
            fallback: None,
            launch: started.elapsed(),
        };
        let vm = Vm {
            process,
            qmp,
            template: template.clone(),
            machine_type: machine_type.to_string(),
            values: setup.values.clone(),
            host: setup.host.clone(),
            redactor: setup.redactor.clone(),
            disks,
            active,
            parent: Parent::Entry {
                key: entry.key.clone(),
                disks: backing,
                _lease: lease,
            },
            held: Vec::new(),
            cacheable: Ok(()),
            vars,
            runtime,
            checkpoints: 0,
        };
        Ok((vm, report))
    }

    pub fn qmp(&self) -> &Qmp {
        &self.qmp
    }

    pub fn process(&self) -> &Arc<QemuProcess> {
        &self.process
    }

    /// The caller's token values this VM runs with.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// The live overlays, in drive order.
    pub fn disks(&self) -> &[PathBuf] {
        &self.disks
    }

    /// The entry the active chain starts from (`None`: the base image).
    pub fn parent_key(&self) -> Option<&CacheKey> {
        match &self.parent {
            Parent::Base(_) => None,
            Parent::Entry { key, .. } => Some(key),
        }
    }

    /// The pinned machine type.
    pub fn machine_type(&self) -> &str {
        &self.machine_type
    }

    /// Per-VM files (QMP socket, live variables), removed with the VM.
    pub fn runtime_dir(&self) -> &Path {
        self.runtime.path()
    }

    fn qmp_err(&self) -> impl FnOnce(QmpError) -> CheckpointError + use<> {
        let pid = self.process.pid();
        move |source| CheckpointError::Qmp { pid, source }
    }

    /// Freezes the VM's disks (and, when asked, its state) as the entry
    /// `req.key`, and lets it run on. See the module docs for the steps.
    pub async fn checkpoint(
        &mut self,
        store: &Store,
        req: &CheckpointRequest,
    ) -> Result<CheckpointReport, CheckpointError> {
        let started = Instant::now();
        let mut report = CheckpointReport {
            key: req.key.to_string(),
            outcome: CheckpointOutcome::AlreadyCached,
            paused: Duration::ZERO,
            save: Duration::ZERO,
            total: Duration::ZERO,
            state_bytes: None,
            state_skipped: None,
            disk_bytes: 0,
        };
        if let Err(reason) = &self.cacheable {
            report.outcome = CheckpointOutcome::NotCached {
                reason: reason.clone(),
            };
            return Ok(report);
        }
        {
            let store = store.clone();
            let key = req.key.clone();
            if blocking(move || store.lookup(&key)).await??.is_some() {
                report.total = started.elapsed();
                return Ok(report);
            }
        }
        let save_state = req.save_state;
        let next = {
            let store = store.clone();
            blocking(move || store.begin()).await??
        };
        self.checkpoints += 1;

        // The guest is paused from here to `cont`.
        let paused_at = Instant::now();
        self.qmp.stop().await.map_err(self.qmp_err())?;
        let frozen = self.freeze(next).await;
        let mut save_result = Ok(None);
        if frozen.is_ok() && save_state {
            let save_started = Instant::now();
            save_result = self.save_state().await.map(Some);
            report.save = save_started.elapsed();
        }
        let cont = self.qmp.cont().await.map_err(self.qmp_err());
        report.paused = paused_at.elapsed();
        let new_nodes = frozen?;
        // The old staging now holds the frozen disks (and the state); the
        // new one the overlays the guest writes to.
        let frozen_dir = std::mem::replace(&mut self.active, new_nodes.staging);
        self.disks = new_nodes.disks;
        if let Err(e) = cont {
            self.held.push(frozen_dir);
            self.cacheable = Err(e.to_string());
            return Err(e);
        }
        match save_result {
            Ok(Some(bytes)) => report.state_bytes = Some(bytes),
            Ok(None) => {}
            Err(e) => {
                let _ = tokio::fs::remove_file(frozen_dir.path().join(STATE_FILE)).await;
                report.state_skipped = Some(e.to_string());
            }
        }

        let meta = match self.entry_meta(req, frozen_dir.path(), &report).await {
            Ok(meta) => meta,
            Err(not) => {
                let reason = not.to_string();
                self.held.push(frozen_dir);
                self.cacheable = Err(reason.clone());
                report.outcome = CheckpointOutcome::NotCached { reason };
                report.total = started.elapsed();
                return Ok(report);
            }
        };
        report.disk_bytes = meta.disks.iter().map(|d| d.bytes).sum();
        let published = {
            let store = store.clone();
            let meta = meta.clone();
            blocking(move || store.publish(frozen_dir, &meta)).await?
        };
        match published {
            Ok(lease) => {
                let entry_dir = store.entry_dir(&req.key);
                let entry_disks: Vec<PathBuf> =
                    meta.disks.iter().map(|d| entry_dir.join(&d.file)).collect();
                for (i, disk) in entry_disks.iter().enumerate() {
                    let node = new_nodes.names[i].clone();
                    let args = json!({
                        "device": node,
                        "image-node-name": node,
                        "backing-file": path_str(disk),
                    });
                    if let Err(e) = self
                        .qmp
                        .execute_raw(
                            "change-backing-file",
                            Some(args),
                            kiln_qemu::qmp::COMMAND_DEADLINE,
                        )
                        .await
                    {
                        // The entry is fine; this VM's own overlay header is not.
                        self.cacheable = Err(format!("`change-backing-file` failed: {e}"));
                        return Err(self.qmp_err()(e));
                    }
                }
                self.parent = Parent::Entry {
                    key: req.key.clone(),
                    disks: entry_disks,
                    _lease: lease,
                };
                report.outcome = CheckpointOutcome::Published;
            }
            Err(PublishError::Exists { staging, .. }) => {
                self.held.push(staging);
                self.cacheable = Err(format!(
                    "another build published `{}` while this one saved it",
                    req.key.short()
                ));
                report.outcome = CheckpointOutcome::LostRace;
            }
            Err(PublishError::Failed { source, staging }) => {
                self.held.push(staging);
                let reason = source.to_string();
                self.cacheable = Err(reason.clone());
                report.outcome = CheckpointOutcome::NotCached { reason };
            }
        }
        report.total = started.elapsed();
        Ok(report)
    }

    /// Copies the live variables and snapshots every disk onto a new
    /// overlay in `next` (the guest is stopped).
    async fn freeze(&self, next: Staging) -> Result<NewNodes, CheckpointError> {
        if let Some(vars) = &self.vars {
            copy_file(vars, &self.active.path().join(VARS_FILE)).await?;
        }
        let blocks = self
            .qmp
            .execute_raw("query-block", None, kiln_qemu::qmp::COMMAND_DEADLINE)
            .await
            .map_err(self.qmp_err())?;
        let mut actions = Vec::new();
        let mut names = Vec::new();
        let mut disks = Vec::new();
        for (i, disk) in self.disks.iter().enumerate() {
            let node = find_node(&blocks, disk)?;
            let name = format!("kiln-{}-{i}", self.checkpoints);
            let overlay = next.path().join(disk_file(i));
            actions.push(json!({
                "type": "blockdev-snapshot-sync",
                "data": {
                    "node-name": node,
                    "snapshot-file": path_str(&overlay),
                    "snapshot-node-name": name,
                    "format": "qcow2",
                    "mode": "absolute-paths",
                }
            }));
            names.push(name);
            disks.push(overlay);
        }
        self.qmp
            .execute_raw(
                "transaction",
                Some(json!({ "actions": actions })),
                kiln_qemu::qmp::COMMAND_DEADLINE,
            )
            .await
            .map_err(self.qmp_err())?;
        Ok(NewNodes {
            staging: next,
            names,
            disks,
        })
    }

    /// Migrates the (stopped) VM into `state.zst` of the frozen dir:
    /// QEMU connects to a socket of ours, and the stream is compressed as it
    /// arrives. Returns the file's size.
    async fn save_state(&self) -> Result<u64, CheckpointError> {
        let path = self.active.path().join(STATE_FILE);
        let socket = self.runtime.path().join("save.sock");
        let _ = tokio::fs::remove_file(&socket).await;
        let listener =
            tokio::net::UnixListener::bind(&socket).map_err(io_err("listen on", &socket))?;
        let result = self.save_through(&listener, &path).await;
        drop(listener);
        let _ = tokio::fs::remove_file(&socket).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&path).await;
        }
        result
    }

    async fn save_through(
        &self,
        listener: &tokio::net::UnixListener,
        path: &Path,
    ) -> Result<u64, CheckpointError> {
        let socket = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            .unwrap_or_default();
        self.qmp
            .migrate_set_parameters(json!({ "max-bandwidth": SAVE_BANDWIDTH }))
            .await
            .map_err(self.qmp_err())?;
        self.qmp
            .migrate(&format!("unix:{}", path_str(&socket)))
            .await
            .map_err(self.qmp_err())?;
        let conn = match tokio::time::timeout(QMP_DEADLINE, listener.accept()).await {
            Ok(Ok((conn, _))) => conn,
            Ok(Err(e)) => return Err(io_err("accept on", &socket)(e)),
            Err(_) => {
                let desc = match self.qmp.query_migrate().await {
                    Ok(info) => info
                        .error_desc
                        .unwrap_or_else(|| format!("QEMU did not connect ({:?})", info.status)),
                    Err(e) => e.to_string(),
                };
                return Err(CheckpointError::Save {
                    path: path.to_path_buf(),
                    desc,
                });
            }
        };
        let conn = conn
            .into_std()
            .and_then(|c| c.set_nonblocking(false).map(|()| c))
            .map_err(io_err("read from", &socket))?;
        let out = path.to_path_buf();
        let writer = tokio::spawn(async move { compress_into(conn, &out).await });

        let until = Instant::now() + MIGRATION_DEADLINE;
        loop {
            let info = self.qmp.query_migrate().await.map_err(self.qmp_err())?;
            match info.status.as_deref() {
                Some("completed") => break,
                Some("failed") | Some("cancelled") => {
                    return Err(CheckpointError::Save {
                        path: path.to_path_buf(),
                        desc: info
                            .error_desc
                            .unwrap_or_else(|| info.status.unwrap_or_default()),
                    });
                }
                _ => {}
            }
            if Instant::now() >= until {
                let _ = self
                    .qmp
                    .execute_raw("migrate_cancel", None, kiln_qemu::qmp::COMMAND_DEADLINE)
                    .await;
                return Err(CheckpointError::Deadline {
                    what: "saving the VM state",
                    after: MIGRATION_DEADLINE,
                    stderr: self.process.stderr_tail().join("\n"),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // QEMU closes the socket once the migration is over: the writer
        // sees the end of the stream, finishes the frame and fsyncs.
        match tokio::time::timeout(QMP_DEADLINE, writer).await {
            Ok(Ok(Ok(bytes))) => Ok(bytes),
            Ok(Ok(Err(e))) => Err(CheckpointError::Save {
                path: path.to_path_buf(),
                desc: e.to_string(),
            }),
            Ok(Err(e)) => Err(CheckpointError::Join(e)),
            Err(_) => Err(CheckpointError::Deadline {
                what: "the end of the migration stream",
                after: QMP_DEADLINE,
                stderr: self.process.stderr_tail().join("\n"),
            }),
        }
    }

    /// The metadata of the frozen dir, or why it cannot be published.
    async fn entry_meta(
        &self,
        req: &CheckpointRequest,
        dir: &Path,
        report: &CheckpointReport,
    ) -> Result<EntryMeta, NotPublishable> {
        let (parent, expected): (Option<CacheKey>, Vec<(PathBuf, String)>) = match &self.parent {
            Parent::Base(chain) => (None, chain.clone()),
            Parent::Entry { key, disks, .. } => (
                Some(key.clone()),
                disks
                    .iter()
                    .map(|d| (d.clone(), "qcow2".to_string()))
                    .collect(),
            ),
        };
        let mut disks = Vec::new();
        for (i, (backing, format)) in expected.into_iter().enumerate() {
            let file = disk_file(i);
            let info = image_info(&dir.join(&file))
                .await
                .map_err(|e| NotPublishable::Info(Box::new(e)))?;
            let named = info
                .get("full-backing-filename")
                .or_else(|| info.get("backing-filename"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if Path::new(named) != backing {
                return Err(NotPublishable::Chain {
                    disk: i,
                    named: named.to_string(),
                    backing,
                });
            }
            disks.push(DiskMeta {
                file,
                backing,
                backing_format: format,
                virtual_size: info
                    .get("virtual-size")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                bytes: info.get("actual-size").and_then(Value::as_u64).unwrap_or(0),
            });
        }
        let vars = match &self.vars {
            Some(_) => {
                let path = dir.join(VARS_FILE);
                let bytes = tokio::fs::metadata(&path)
                    .await
                    .map_err(|source| NotPublishable::Vars {
                        path: path.clone(),
                        source,
                    })?
                    .len();
                Some(FileMeta {
                    file: VARS_FILE.into(),
                    bytes,
                })
            }
            None => None,
        };
        let state = report.state_bytes.map(|bytes| StateMeta {
            file: STATE_FILE.into(),
            bytes,
            compression: "zstd".into(),
            save_millis: u64::try_from(report.save.as_millis()).unwrap_or(u64::MAX),
        });
        Ok(EntryMeta {
            schema: META_SCHEMA,
            key: req.key.clone(),
            parent,
            build: self.redactor.redact(&req.build).into_owned(),
            step: self.redactor.redact(&req.step).into_owned(),
            step_index: req.step_index,
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            disks,
            vars,
            state,
            machine: MachineFacts {
                qemu_binary: self.template.program.clone(),
                qemu_version: self.host.version.line.clone(),
                machine_type: self.machine_type.clone(),
                argv: self
                    .template
                    .args
                    .iter()
                    .map(|a| self.redactor.redact(a).into_owned())
                    .collect(),
                argv_digest: self.template.digest(),
            },
        })
    }

    /// Kills QEMU and removes the VM's files (its published entries stay).
    pub async fn kill(self) -> ExitInfo {
        self.process.kill().await
    }

    /// Waits for QEMU to exit (after the guest powered off) and keeps the
    /// final overlays for the caller.
    pub async fn wait_exit(self, deadline: Duration) -> Result<FinishedVm, CheckpointError> {
        let Some(exit) = self.process.wait_exit_timeout(deadline).await else {
            let stderr = self.process.stderr_tail().join("\n");
            let _ = self.process.kill().await;
            return Err(CheckpointError::Deadline {
                what: "QEMU's exit",
                after: deadline,
                stderr,
            });
        };
        Ok(FinishedVm {
            exit,
            disks: self.disks,
            vars: self.vars,
            _runtime: self.runtime,
            _active: self.active,
            _held: self.held,
            _parent: self.parent,
        })
    }
}

struct NewNodes {
    staging: Staging,
    names: Vec<String>,
    disks: Vec<PathBuf>,
}

fn check_template(template: &VmTemplate, disks: usize, vars: bool) -> Result<(), CheckpointError> {
    let tokens = template.tokens();
    let problem = if !tokens.contains(QMP_TOKEN) {
        Some(format!("has no `{}` (kiln's QMP socket)", token(QMP_TOKEN)))
    } else if template.disk_count() != disks {
        Some(format!(
            "has {} disk tokens (`{}` …) for {disks} disks",
            template.disk_count(),
            disk_token(0)
        ))
    } else if tokens.contains(VARS_TOKEN) != vars {
        Some(if vars {
            format!("has no `{}` for the UEFI variables", token(VARS_TOKEN))
        } else {
            format!(
                "uses `{}` but there is no variables file",
                token(VARS_TOKEN)
            )
        })
    } else {
        None
    };
    match problem {
        Some(problem) => Err(CheckpointError::Template { problem }),
        None => Ok(()),
    }
}

/// Longest socket path kiln puts in the store (`sun_path` holds 108 bytes).
const MAX_SOCKET_PATH: usize = 100;

/// Per-VM files: the QMP and migration sockets and the live UEFI variables.
enum Runtime {
    /// A locked dir in the store's `tmp/`: a killed build's is removed by
    /// the next [`Store::open`].
    Store(Staging),
    /// In the system temp dir, when the store's path is too long for a
    /// Unix socket.
    Temp(tempfile::TempDir),
}

impl Runtime {
    fn path(&self) -> &Path {
        match self {
            Runtime::Store(s) => s.path(),
            Runtime::Temp(t) => t.path(),
        }
    }
}

async fn runtime_dir(store: &Store) -> Result<Runtime, CheckpointError> {
    let store = store.clone();
    let staging = blocking(move || store.begin()).await??;
    if staging.path().join("restore.sock").as_os_str().len() <= MAX_SOCKET_PATH {
        return Ok(Runtime::Store(staging));
    }
    drop(staging);
    tempfile::Builder::new()
        .prefix("kiln-vm-")
        .tempdir()
        .map(Runtime::Temp)
        .map_err(io_err("create", &std::env::temp_dir()))
}

async fn copy_file(from: &Path, to: &Path) -> Result<PathBuf, CheckpointError> {
    tokio::fs::copy(from, to)
        .await
        .map_err(|source| CheckpointError::Io {
            op: "copy",
            path: from.to_path_buf(),
            source,
        })?;
    // Entries are read-only; the copy is the VM's to write.
    let mut perms = tokio::fs::metadata(to)
        .await
        .map_err(io_err("stat", to))?
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    tokio::fs::set_permissions(to, perms)
        .await
        .map_err(io_err("chmod", to))?;
    Ok(to.to_path_buf())
}

/// Spawns QEMU from the template and connects to its QMP socket.
async fn launch(
    template: &VmTemplate,
    setup: &VmSetup,
    disks: &[PathBuf],
    vars: Option<&Path>,
    runtime: &Path,
    incoming: Option<&Path>,
) -> Result<(Arc<QemuProcess>, Qmp), CheckpointError> {
    let socket = runtime.join("qmp.sock");
    let mut values = setup.values.clone();
    values.insert(QMP_TOKEN.into(), path_str(&socket));
    for (i, disk) in disks.iter().enumerate() {
        values.insert(format!("{DISK_TOKEN_PREFIX}{i}"), path_str(disk));
    }
    if let Some(vars) = vars {
        values.insert(VARS_TOKEN.into(), path_str(vars));
    }
    let mut args = template.render(&values)?;
    let incoming_socket = runtime.join("restore.sock");
    if incoming.is_some() {
        args.push("-incoming".into());
        args.push(format!("unix:{}", path_str(&incoming_socket)));
    }
    let process = QemuProcess::spawn(QemuCommand {
        program: template.program.clone(),
        args,
        cwd: setup.cwd.clone(),
        console_from_stdout: template.console_from_stdout(),
        console_log: setup.console_log.clone(),
    })
    .await?;
    let qmp = tokio::select! {
        qmp = Qmp::connect(&socket, QMP_DEADLINE) => qmp,
        exit = process.wait_exit() => {
            return Err(ProcessError::EarlyExit { argv: process.argv().to_string(), exit }.into());
        }
    };
    let qmp = qmp.map_err(|source| CheckpointError::Qmp {
        pid: process.pid(),
        source,
    })?;
    if let Some(state) = incoming {
        feed_incoming(&process, &qmp, &incoming_socket, state).await?;
    }
    Ok((Arc::new(process), qmp))
}

/// `zstd` on the PATH (checked once): multithreaded and optimised,
/// whatever profile kiln was built with.
async fn have_zstd() -> bool {
    static ZSTD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if let Some(v) = ZSTD.get() {
        return *v;
    }
    let ok = run_tool("zstd", &["--version".to_string()]).await.is_ok();
    *ZSTD.get_or_init(|| ok)
}

/// Waits for a `zstd` child that kiln started (so, unlike an `exec:`
/// migration channel, nobody kills it before it is done).
async fn wait_zstd(child: tokio::process::Child) -> std::io::Result<()> {
    let out = child.wait_with_output().await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "zstd failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Compresses the migration stream arriving on `from` into `out` and
/// fsyncs it: with the `zstd` program reading the socket directly when
/// installed (`-1 -T0`, a content checksum), else in-process.
async fn compress_into(from: std::os::unix::net::UnixStream, out: &Path) -> std::io::Result<u64> {
    if have_zstd().await {
        let child = tokio::process::Command::new("zstd")
            .args(["-q", "-1", "-T0", "-f", "-o"])
            .arg(out)
            .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(from)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        wait_zstd(child).await?;
        let out = out.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&out)?;
            file.sync_all()?;
            Ok(file.metadata()?.len())
        })
        .await
        .map_err(std::io::Error::other)?
    } else {
        let out = out.to_path_buf();
        tokio::task::spawn_blocking(move || compress_stream(from, &out))
            .await
            .map_err(std::io::Error::other)?
    }
}

/// Streams the decompressed state into QEMU's incoming socket.
async fn decompress_from(state: &Path, to: std::os::unix::net::UnixStream) -> std::io::Result<u64> {
    if have_zstd().await {
        let child = tokio::process::Command::new("zstd")
            .args(["-q", "-d", "-c"])
            .arg(state)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::from(std::os::fd::OwnedFd::from(to)))
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        wait_zstd(child).await?;
        Ok(0)
    } else {
        let state = state.to_path_buf();
        tokio::task::spawn_blocking(move || decompress_stream(&state, to))
            .await
            .map_err(std::io::Error::other)?
    }
}

/// Compresses a migration stream into `out` (zstd level 1 with a
/// checksum), fsynced. Blocking.
fn compress_stream(mut from: std::os::unix::net::UnixStream, out: &Path) -> std::io::Result<u64> {
    let file = std::fs::File::create(out)?;
    let mut encoder = zstd::Encoder::new(std::io::BufWriter::with_capacity(1 << 20, file), 1)?;
    encoder.include_checksum(true)?;
    std::io::copy(&mut from, &mut encoder)?;
    let file = encoder.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// Decompresses `state` into QEMU's incoming socket. Blocking.
fn decompress_stream(state: &Path, mut to: std::os::unix::net::UnixStream) -> std::io::Result<u64> {
    let file = std::fs::File::open(state)?;
    let mut decoder = zstd::Decoder::new(file)?;
    let n = std::io::copy(&mut decoder, &mut to)?;
    let _ = to.shutdown(std::net::Shutdown::Write);
    Ok(n)
}

/// Connects to QEMU's `-incoming` socket and streams the saved state into
/// it, then waits for the guest to run.
async fn feed_incoming(
    process: &QemuProcess,
    qmp: &Qmp,
    socket: &Path,
    state: &Path,
) -> Result<(), CheckpointError> {
    let until = Instant::now() + QMP_DEADLINE;
    let conn = loop {
        match tokio::net::UnixStream::connect(socket).await {
            Ok(conn) => break conn,
            Err(e) => {
                if let Some(exit) = process.try_exit() {
                    return Err(ProcessError::EarlyExit {
                        argv: process.argv().to_string(),
                        exit,
                    }
                    .into());
                }
                if Instant::now() >= until {
                    return Err(io_err("connect to", socket)(e));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let conn = conn
        .into_std()
        .and_then(|c| c.set_nonblocking(false).map(|()| c))
        .map_err(io_err("write to", socket))?;
    let state_path = state.to_path_buf();
    let feeder = tokio::spawn(async move { decompress_from(&state_path, conn).await });
    let running = wait_incoming(process, qmp, state).await;
    let fed = feeder.await.map_err(CheckpointError::Join)?;
    match (running, fed) {
        (Ok(()), _) => Ok(()),
        (Err(e), Ok(_)) => Err(e),
        // A broken state file: say so rather than QEMU's "unexpected EOF".
        (Err(e), Err(read)) => Err(CheckpointError::Save {
            path: state.to_path_buf(),
            desc: format!("{read}; QEMU: {e}"),
        }),
    }
}

/// Waits until an incoming migration has loaded and the guest runs.
async fn wait_incoming(
    process: &QemuProcess,
    qmp: &Qmp,
    state: &Path,
) -> Result<(), CheckpointError> {
    let key = state.display().to_string();
    let until = Instant::now() + INCOMING_DEADLINE;
    loop {
        if let Some(exit) = process.try_exit() {
            return Err(CheckpointError::Incoming { state: key, exit });
        }
        match qmp.query_status().await {
            Ok(status) if status.running => return Ok(()),
            Ok(status) if status.status == "inmigrate" => {}
            // Loaded. The guest was paused when it was saved, and QEMU
            // restores that run state (`paused`) rather than starting it.
            Ok(_) => {
                qmp.cont().await.map_err(|source| CheckpointError::Qmp {
                    pid: process.pid(),
                    source,
                })?;
            }
            Err(_) => {
                // QEMU died while loading: report its own words.
                if let Some(exit) = process.wait_exit_timeout(Duration::from_secs(2)).await {
                    return Err(CheckpointError::Incoming { state: key, exit });
                }
            }
        }
        if Instant::now() >= until {
            return Err(CheckpointError::Deadline {
                what: "loading the saved VM state",
                after: INCOMING_DEADLINE,
                stderr: process.stderr_tail().join("\n"),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn template_tokens_render_and_digest() {
        // As `cache::argv::tokenize` makes it from a planned command line.
        let t = VmTemplate::new(
            "qemu-system-x86_64",
            args(&[
                "-machine",
                "type=q35,accel=tcg",
                "-drive",
                "file={kiln:disk0},if=virtio,format=qcow2",
                "-drive",
                "file={kiln:disk1},if=virtio,format=qcow2",
                "-drive",
                "if=pflash,unit=1,format=raw,file={kiln:vars}",
                "-netdev",
                "user,id=user.0,hostfwd=tcp:{kiln:ssh_fwd}:22",
                "-qmp",
                "unix:{kiln:qmp},server=on,wait=off",
            ]),
        );
        assert_eq!(t.args[3], "file={kiln:disk0},if=virtio,format=qcow2");
        assert_eq!(t.args[5], "file={kiln:disk1},if=virtio,format=qcow2");
        assert_eq!(t.disk_count(), 2);
        assert_eq!(
            t.tokens().into_iter().collect::<Vec<_>>(),
            vec!["disk0", "disk1", "qmp", "ssh_fwd", "vars"]
        );
        let mut values: BTreeMap<String, String> = [
            ("disk0", "/s/a/disk.qcow2"),
            ("disk1", "/s/a/disk-1.qcow2"),
            ("vars", "/r/vars.fd"),
            ("qmp", "/r/qmp.sock"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let err = t.render(&values).unwrap_err();
        assert!(err.to_string().contains("{kiln:ssh_fwd}"), "{err}");
        values.insert("ssh_fwd".into(), "127.0.0.1:4444-".into());
        let out = t.render(&values).unwrap();
        assert_eq!(out[9], "user,id=user.0,hostfwd=tcp:127.0.0.1:4444-:22");
        assert_eq!(out[11], "unix:/r/qmp.sock,server=on,wait=off");

        let mut other = t.clone();
        other.args[1] = "type=q35,accel=kvm".into();
        assert_ne!(other.digest(), t.digest());
        assert_eq!(t.clone().digest(), t.digest());
        assert!(check_template(&t, 2, true).is_ok());
        assert!(check_template(&t, 1, true).is_err());
        assert!(check_template(&t, 2, false).is_err());
    }

    #[test]
    fn nodes_are_found_by_file_name_also_after_a_snapshot() {
        let blocks = json!([
            { "device": "", "qdev": "cd", "inserted": { "node-name": "#block1", "file": "/seed.iso" } },
            { "device": "virtio0", "inserted": {
                "node-name": "kiln-1-0",
                "file": "json:{\"backing\": {\"driver\": \"qcow2\"}, \"driver\": \"qcow2\", \"file\": {\"driver\": \"file\", \"filename\": \"/s/b/disk.qcow2\"}}"
            } },
            { "device": "floppy0" }
        ]);
        assert_eq!(
            find_node(&blocks, Path::new("/s/b/disk.qcow2")).unwrap(),
            "kiln-1-0"
        );
        let err = find_node(&blocks, Path::new("/s/a/disk.qcow2")).unwrap_err();
        assert!(err.to_string().contains("/seed.iso"), "{err}");
    }

    #[test]
    fn clock_command_sets_the_host_time() {
        let cmd = clock_sync_command(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert!(cmd.contains("date -u -s @1700000000"), "{cmd}");
        assert!(cmd.contains("hwclock --hctosys"), "{cmd}");
    }
}
