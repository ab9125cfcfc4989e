//! The step cache inside a `qemu` build: whether it applies, the keys of
//! the build's steps, the VM started from the longest cached prefix, a
//! checkpoint after SSH and after each cacheable provisioner, and the
//! output disks flattened from the final overlay chain.
//!
//! Keys: the first covers the source image's digest, every source field
//! that shapes the disk or the guest (seed and HTTP content unrendered, the
//! files behind `cd_files`/`http_directory`/`floppy_files`), QEMU's
//! version, the pinned machine type, the firmware and the accelerator.
//! Each provisioner chains on: its definition after evaluation, the bytes
//! of every script and file it uploads, and the sensitive values it uses
//! as salted hashes. Build-time values such as ports are not part of any
//! key. `shell-local`, `breakpoint` and `file` downloads act outside the
//! guest disk: the cache stops before the first of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_qemu::QemuConfig;
use kiln_qemu::config::DiskFormat;
use kiln_secret::{Redactor, Sensitive};
use serde_json::{Value, json};

use crate::cache::checkpoint::{
    BaseDisk, CheckpointOutcome, CheckpointRequest, FinishedVm, ResumeMode, Resumed, Vm, VmSetup,
    image_info, run_tool,
};
// The argv tokenizer lives with the cache; re-exported for the runner.
pub(crate) use crate::cache::argv::{Tokenized, tokenize};
use crate::cache::key::{self, BaseKeyInputs, CacheKey, FileInput, QemuHost, StepKeyInputs};
use crate::cache::store::{Entry, Store};
use crate::events::BuildEvents;
use crate::guest::Guest;
use crate::pipeline::{BoxError, Pipeline, StepError};
use crate::provision::ProvisionerConfig;
use crate::provision::file::Direction;
use crate::provision::shell::Source;
use crate::spec::{BuildSpec, ProvisionerSpec};
use crate::step::{CacheUse, StepId, build_steps};

/// The step cache settings of a run (absent: `--no-cache`).
#[derive(Clone, Debug, Default)]
pub struct CacheOptions {
    /// The store's root (`kiln cache` reads the same).
    pub root: PathBuf,
    /// `--from STEP`: rerun from this step even when it is cached.
    pub from: Option<String>,
    /// `--until STEP`: stop the build after this step (checkpointed).
    pub until: Option<String>,
    /// `--resume`: fail unless some step of the build is cached.
    pub resume: bool,
    /// Every sensitive value of the run: they enter keys only as salted
    /// hashes, and only for the steps that use them.
    pub sensitive: Vec<Sensitive<String>>,
}

/// The key of the stable SSH key pair of every build using this store: a
/// guest restored from a checkpoint trusts the key it was given at its
/// first boot, and a checkpoint serves every build whose source has the
/// same shape (its key covers what the guest is, never the build's name),
/// so the key pair cannot depend on the build's name either.
pub(crate) fn build_key_seed(store: &Store) -> Result<[u8; 32], BoxError> {
    let secret = store.secret().map_err(BoxError::from)?;
    Ok(*blake3::Hasher::new_keyed(&secret)
        .update(b"kiln build ssh key\0")
        .finalize()
        .as_bytes())
}

/// One key per cacheable point: `keys[0]` after SSH is up, `keys[j]`
/// after provisioner `j` (1-based), up to the first provisioner that acts
/// outside the guest disk.
pub(crate) struct StepKeys {
    pub keys: Vec<CacheKey>,
    /// Why the cache stops before the end (the boundary provisioner).
    pub boundary: Option<String>,
}

/// The shaping fields of the source as JSON, with the digests of the
/// files it puts into the guest's media.
pub(crate) fn source_shape(cfg: &QemuConfig, cwd: &Path, accelerator: &str) -> Value {
    let mut v = serde_json::to_value(cfg).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        for field in [
            "name",
            "iso_urls",
            "iso_checksum",
            "iso_target_path",
            "iso_target_extension",
            "headless",
            "display",
            "use_default_display",
            "vnc",
            "host_port",
            "communicator",
            "shutdown_command",
            "shutdown_timeout",
            "qmp_enable",
            "qmp_socket_path",
            "accelerator",
        ] {
            map.remove(field);
        }
        if let Some(ssh) = cfg.ssh() {
            map.insert("ssh_username".into(), json!(ssh.username));
        }
        map.insert("accelerator_used".into(), json!(accelerator));
        let mut files = BTreeMap::new();
        let media = &cfg.media;
        let listed = media
            .cd_files
            .iter()
            .chain(&media.floppy_files)
            .chain(&media.floppy_dirs)
            .chain(cfg.http.directory.iter());
        for path in listed {
            for f in tree_inputs(path, &cwd.join(path)) {
                files.insert(f.name, f.digest);
            }
        }
        map.insert("media_files".into(), json!(files));
    }
    v
}

/// Digests of a file or of every file under a directory, named by path.
fn tree_inputs(name: &str, path: &Path) -> Vec<FileInput> {
    let mut out = Vec::new();
    walk(name, path, &mut out);
    out
}

fn walk(name: &str, path: &Path, out: &mut Vec<FileInput>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        // Missing now: its name still counts (the step fails anyway).
        out.push(FileInput::from_bytes(name, b"\0missing"));
        return;
    };
    if meta.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        names.sort();
        for child in names {
            let child_name = format!("{name}/{}", child.to_string_lossy());
            walk(&child_name, &path.join(&child), out);
        }
    } else if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).unwrap_or_default();
        out.push(FileInput::from_bytes(
            name,
            target.as_os_str().as_encoded_bytes(),
        ));
    } else if !meta.is_file() {
        // A FIFO, socket or device in an uploaded tree: its type counts,
        // reading it could block forever (`/dev/null` is empty anyway).
        use std::os::unix::fs::MetadataExt;
        let kind = format!("\0special {:o}", meta.mode() & 0o170000);
        out.push(FileInput::from_bytes(name, kind.as_bytes()));
    } else {
        out.push(
            FileInput::from_path(name, path)
                .unwrap_or_else(|_| FileInput::from_bytes(name, b"\0unreadable")),
        );
    }
}

/// Whether a provisioner acts outside the guest's disk (so nothing after
/// it may be replayed from the cache).
pub(crate) fn boundary_reason(prov: &ProvisionerSpec) -> Option<&'static str> {
    match &prov.config {
        ProvisionerConfig::ShellLocal(_) => Some("`shell-local` runs on this machine"),
        ProvisionerConfig::Breakpoint(_) => Some("`breakpoint` waits for a person"),
        ProvisionerConfig::File(f) if f.direction == Direction::Download => {
            Some("a `file` download writes on this machine")
        }
        ProvisionerConfig::File(f) if f.generated => {
            Some("a `generated` file is made during the build")
        }
        _ => None,
    }
}

/// What a provisioner's key covers besides the previous key.
pub(crate) fn step_inputs(
    prov: &ProvisionerSpec,
    cwd: &Path,
    sensitive: &[Sensitive<String>],
) -> StepKeyInputs {
    let definition = format!("{prov:?}");
    let mut files = Vec::new();
    match &prov.config {
        ProvisionerConfig::Shell(s) => {
            if let Source::Scripts(paths) = &s.source {
                for (i, path) in paths.iter().enumerate() {
                    files.extend(tree_inputs(&format!("scripts[{i}]"), &cwd.join(path)));
                }
            }
        }
        ProvisionerConfig::File(f) => {
            for (i, src) in f.sources.iter().enumerate() {
                files.extend(tree_inputs(&format!("sources[{i}]"), &cwd.join(src)));
            }
        }
        _ => {}
    }
    let used = sensitive
        .iter()
        .filter(|s| !s.expose().is_empty() && definition.contains(s.expose().as_str()))
        .cloned()
        .collect();
    StepKeyInputs {
        definition: json!({ "type": prov.config.type_name(), "spec": definition }),
        files,
        env: Vec::new(),
        sensitive: used,
    }
}

/// The keys of a build, from its base key on.
pub(crate) fn step_keys(
    base: CacheKey,
    spec: &BuildSpec,
    cwd: &Path,
    sensitive: &[Sensitive<String>],
) -> StepKeys {
    let mut prev = base.clone();
    let mut keys = vec![base];
    let mut boundary = None;
    let total = spec.provisioners.len();
    for (i, prov) in spec.provisioners.iter().enumerate() {
        if let Some(reason) = boundary_reason(prov) {
            boundary = Some(format!(
                "the cache stops before provision {}/{total}: {reason}",
                i + 1
            ));
            break;
        }
        prev = key::step_key(&prev, &step_inputs(prov, cwd, sensitive));
        keys.push(prev.clone());
    }
    StepKeys { keys, boundary }
}

/// The base key's inputs other than the source shape.
pub(crate) struct BaseFacts {
    pub image_digest: String,
    pub host: QemuHost,
    pub machine_type: String,
    pub firmware: BTreeMap<String, String>,
}

pub(crate) fn base_key(shape: Value, facts: &BaseFacts) -> CacheKey {
    key::base_key(&BaseKeyInputs {
        base_image_digest: facts.image_digest.clone(),
        source: shape,
        qemu_version: facts.host.version.number.clone(),
        machine_type: facts.machine_type.clone(),
        firmware: facts.firmware.clone(),
    })
}

/// The digest of a large file, remembered by path, size, inode and mtime
/// under the store (a base image is hashed once, not on every build).
pub(crate) fn memo_digest(store: &Store, path: &Path) -> Result<String, BoxError> {
    Ok(
        kiln_fs::DigestMemo::new(store.root().join("digests")).get_or_compute(
            path,
            "blake3",
            || key::digest_file(path),
        )?,
    )
}

/// Where a step named on the command line is in the build's step list:
/// its 1-based index, its full name, or a unique prefix (`provision 3`).
pub(crate) fn find_step(steps: &[StepId], wanted: &str, flag: &str) -> Result<usize, String> {
    if let Ok(n) = wanted.trim().parse::<usize>() {
        return match n {
            1.. if n <= steps.len() => Ok(n - 1),
            _ => Err(format!(
                "{flag} {n}: the build has steps 1 to {} (see `kiln plan`)",
                steps.len()
            )),
        };
    }
    if let Ok(id) = wanted.parse::<StepId>()
        && let Some(i) = steps.iter().position(|s| *s == id)
    {
        return Ok(i);
    }
    let names: Vec<String> = steps.iter().map(StepId::to_string).collect();
    let hits: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.starts_with(wanted))
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!(
            "{flag} {wanted:?}: no such step; the steps are: {}",
            names.join(", ")
        )),
        many => Err(format!(
            "{flag} {wanted:?} names {} steps: {}",
            many.len(),
            many.iter()
                .map(|&i| names[i].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The key index a step stands for: `wait_ssh` is 0, provisioner `j` is
/// `j`; earlier steps are `Before`, later ones `After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StepPoint {
    Before,
    Key(usize),
    After,
}

pub(crate) fn step_point(steps: &[StepId], index: usize) -> StepPoint {
    match steps.get(index) {
        Some(StepId::WaitSsh) => StepPoint::Key(0),
        Some(StepId::Provision { number, .. }) => StepPoint::Key(*number),
        _ => match steps.iter().position(|s| *s == StepId::WaitSsh) {
            Some(ssh) if index < ssh => StepPoint::Before,
            _ => StepPoint::After,
        },
    }
}

/// The highest key index `--from` lets the build reuse (`None`: nothing).
pub(crate) fn reuse_limit(point: StepPoint, keys: usize) -> Option<usize> {
    match point {
        StepPoint::Before | StepPoint::Key(0) => None,
        StepPoint::Key(j) => Some((j - 1).min(keys.saturating_sub(1))),
        StepPoint::After => keys.checked_sub(1),
    }
}

/// The longest cached prefix: the highest key index at most `limit` with
/// an entry.
pub(crate) fn longest_prefix(
    store: &Store,
    keys: &[CacheKey],
    limit: Option<usize>,
) -> Result<Option<(usize, Entry)>, BoxError> {
    let Some(limit) = limit else {
        return Ok(None);
    };
    for j in (0..=limit.min(keys.len().saturating_sub(1))).rev() {
        if let Some(entry) = store.lookup(&keys[j]).map_err(BoxError::from)? {
            return Ok(Some((j, entry)));
        }
    }
    Ok(None)
}

/// A blank qcow2 disk of `bytes` under the store, the base of a disk the
/// build starts empty (an installer's target, `disk_additional_size`).
pub(crate) async fn blank_base(store: &Store, bytes: u64) -> Result<PathBuf, BoxError> {
    let dir = store.root().join("blank");
    let path = dir.join(format!("blank-{bytes}.qcow2"));
    if path.exists() {
        return Ok(path);
    }
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let staged = dir.join(format!(".blank-{bytes}.{}", std::process::id()));
    qemu_img(&[
        "create".into(),
        "-q".into(),
        "-f".into(),
        "qcow2".into(),
        staged.display().to_string(),
        bytes.to_string(),
    ])
    .await?;
    tokio::fs::rename(&staged, &path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// `qemu-img info`'s format of an image (a base image may be raw).
pub(crate) async fn image_format(path: &Path) -> Result<String, BoxError> {
    let info = image_info(path).await.map_err(BoxError::from)?;
    info.get("format")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("qemu-img info {}: no format", path.display()).into())
}

/// The base disks of a fresh boot, in drive order.
pub(crate) async fn base_disks(
    store: &Store,
    cfg: &QemuConfig,
    source: Option<&Path>,
) -> Result<Vec<BaseDisk>, BoxError> {
    let mut disks = Vec::new();
    let sizes = std::iter::once(&cfg.disk_size).chain(&cfg.disk_additional_size);
    for (i, size) in sizes.enumerate() {
        match source {
            Some(src) if i == 0 && cfg.disk_image => disks.push(BaseDisk {
                path: src.to_path_buf(),
                format: image_format(src).await?,
                size: (!cfg.skip_resize_disk).then_some(size.bytes),
            }),
            _ => disks.push(BaseDisk {
                path: blank_base(store, size.bytes).await?,
                format: "qcow2".into(),
                size: None,
            }),
        }
    }
    Ok(disks)
}

/// How the VM was started.
pub(crate) enum Started {
    Booted,
    Resumed {
        index: usize,
        key: CacheKey,
        how: Resumed,
        fallback: Option<String>,
    },
}

/// Resumes from `hit` or boots from the base disks. An installer build
/// never boots cold from a checkpoint (its boot order starts at the CD):
/// when its state cannot be restored, it starts from the base instead.
pub(crate) async fn start(
    store: &Store,
    setup: VmSetup,
    base: &[BaseDisk],
    hit: Option<&(usize, Entry)>,
    disk_image: bool,
) -> Result<(Vm, Started), BoxError> {
    if let Some((index, entry)) = hit {
        let mode = if disk_image {
            ResumeMode::Auto
        } else {
            ResumeMode::State
        };
        match Vm::resume(store, entry, setup.clone(), mode).await {
            Ok((vm, report)) => {
                return Ok((
                    vm,
                    Started::Resumed {
                        index: *index,
                        key: entry.key.clone(),
                        how: report.used,
                        fallback: report.fallback,
                    },
                ));
            }
            Err(e) if !disk_image => {
                tracing::warn!("cannot restore {}: {e}; booting from the base", entry.key);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let vm = Vm::boot(store, setup, base).await.map_err(BoxError::from)?;
    Ok((vm, Started::Booted))
}

/// The step cache during one build: its VM, its keys, where to stop.
pub(crate) struct CacheRun {
    pub store: Store,
    pub vm: Vm,
    pub keys: Vec<CacheKey>,
    /// The step each key follows: `wait_ssh`, then the provisioners.
    pub names: Vec<StepId>,
    pub build: String,
    /// `--until`: stop after this point (a key index), with its step.
    pub until: Option<(usize, StepId)>,
    /// False once a checkpoint failed or lost a race: the chain of this
    /// VM is no longer in the store.
    pub publishing: bool,
    /// Where the build keeps the UEFI variables (its output directory, or
    /// the file `qemuargs` names).
    pub vars_out: Option<PathBuf>,
    /// The format of the first base disk (the source image).
    pub base_format: Option<String>,
}

impl CacheRun {
    /// After SSH came up (`done` = 0) or provisioner `done` succeeded:
    /// flush the guest's file systems, checkpoint, and stop if asked.
    pub async fn after(
        &mut self,
        done: usize,
        guest: Option<&Guest>,
        p: &mut Pipeline,
    ) -> Result<(), StepError> {
        if self.publishing && done < self.keys.len() {
            self.checkpoint(done, guest, &p.ev).await;
        }
        match &self.until {
            Some((point, step)) if *point == done => Err(StepError::Stopped { step: step.clone() }),
            _ => Ok(()),
        }
    }

    /// Once the guest powered off: the output disks from the final
    /// overlays, and the UEFI variables where the build keeps them.
    pub async fn finish(
        self,
        cfg: &QemuConfig,
        cwd: &Path,
        source: Option<&Path>,
    ) -> Result<(), BoxError> {
        let finished = self
            .vm
            .wait_exit(EXIT_DEADLINE)
            .await
            .map_err(BoxError::from)?;
        flatten(&finished, cfg, cwd, source.zip(self.base_format.as_deref())).await?;
        if let (Some(from), Some(to)) = (&finished.vars, &self.vars_out) {
            tokio::fs::copy(from, to)
                .await
                .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
        }
        Ok(())
    }

    async fn checkpoint(&mut self, done: usize, guest: Option<&Guest>, ev: &BuildEvents) {
        let step = self
            .names
            .get(done)
            .map(StepId::to_string)
            .unwrap_or_default();
        if let Some(g) = guest
            && let Err(e) = g.exec_quiet("sync").await
        {
            ev.warn(format!(
                "not caching {step}: `sync` failed in the guest ({e}); later steps are not cached"
            ));
            self.publishing = false;
            return;
        }
        let req = CheckpointRequest {
            key: self.keys[done].clone(),
            build: self.build.clone(),
            step: step.clone(),
            step_index: done,
            save_state: true,
        };
        let report = match self.vm.checkpoint(&self.store, &req).await {
            Ok(r) => r,
            Err(e) => {
                ev.warn(format!(
                    "checkpoint after {step} failed: {e}; later steps are not cached"
                ));
                self.publishing = false;
                return;
            }
        };
        let short = req.key.short();
        match &report.outcome {
            CheckpointOutcome::Published => ev.say(format!(
                "Cached {step} as {short} (guest paused {:.1} s; disk {}, state {})",
                report.paused.as_secs_f64(),
                crate::cache::fmt::human_bytes(report.disk_bytes),
                report
                    .state_bytes
                    .map(crate::cache::fmt::human_bytes)
                    .unwrap_or_else(|| "not saved".into()),
            )),
            CheckpointOutcome::AlreadyCached => {
                ev.say(format!("{step} is cached already ({short})"))
            }
            CheckpointOutcome::LostRace => {
                ev.say(format!(
                    "Another build cached {step} first ({short}); later steps of this build are not cached"
                ));
                self.publishing = false;
            }
            CheckpointOutcome::NotCached { reason } => {
                ev.warn(format!("{step} is not cached: {reason}"));
                self.publishing = false;
            }
        }
    }
}

/// Writes the output disks from the final overlays, as the uncached build
/// leaves them: the output format (compressed when asked), or, with
/// `use_backing_file`, an overlay on the source image holding every change
/// of the chain (a copy of the top overlay rebased onto the source: a
/// `convert -B` would keep only the top overlay's own clusters).
pub(crate) async fn flatten(
    finished: &FinishedVm,
    cfg: &QemuConfig,
    cwd: &Path,
    source: Option<(&Path, &str)>,
) -> Result<(), BoxError> {
    for (i, (overlay, out)) in finished.disks.iter().zip(cfg.disk_paths()).enumerate() {
        let out = cwd.join(out);
        let staged = PathBuf::from(format!("{}.kiln-flatten", out.display()));
        let result = match source {
            Some((src, src_fmt)) if i == 0 && cfg.disk_image && cfg.use_backing_file => {
                match tokio::fs::copy(overlay, &staged).await {
                    Ok(_) => {
                        let args = [
                            "rebase".to_string(),
                            "-q".into(),
                            "-f".into(),
                            "qcow2".into(),
                            "-b".into(),
                            src.display().to_string(),
                            "-F".into(),
                            src_fmt.to_string(),
                            staged.display().to_string(),
                        ];
                        qemu_img(&args).await
                    }
                    Err(e) => {
                        Err(
                            format!("copy {} to {}: {e}", overlay.display(), staged.display())
                                .into(),
                        )
                    }
                }
            }
            _ => {
                let mut args: Vec<String> = vec!["convert".into(), "-q".into()];
                if cfg.disk_compression && cfg.format == DiskFormat::Qcow2 {
                    args.push("-c".into());
                }
                args.extend(cfg.qemu_img_args.convert.iter().cloned());
                args.extend([
                    "-O".into(),
                    cfg.format.as_str().into(),
                    overlay.display().to_string(),
                    staged.display().to_string(),
                ]);
                qemu_img(&args).await
            }
        };
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&staged).await;
            return Err(e);
        }
        tokio::fs::rename(&staged, &out)
            .await
            .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}

/// Runs `qemu-img ARGS` (errors name the command and what it said).
async fn qemu_img(args: &[String]) -> Result<(), BoxError> {
    run_tool("qemu-img", args)
        .await
        .map(drop)
        .map_err(BoxError::from)
}

/// A VM setup from the tokenized command line.
pub(crate) fn setup(
    tokenized: &Tokenized,
    host: QemuHost,
    console_log: PathBuf,
    cwd: &Path,
    sensitive: &[Sensitive<String>],
) -> VmSetup {
    VmSetup {
        template: tokenized.template.clone(),
        values: tokenized.values.clone(),
        host,
        firmware_vars: tokenized.vars.clone(),
        console_log: Some(console_log),
        cwd: Some(cwd.to_path_buf()),
        redactor: Redactor::new(sensitive.iter().map(|s| s.expose().clone())),
    }
}

/// What the cache found for a build before its VM starts.
pub(crate) struct Lookup {
    pub tokenized: Tokenized,
    pub keys: Vec<CacheKey>,
    pub names: Vec<StepId>,
    pub boundary: Option<String>,
    pub hit: Option<(usize, Entry)>,
    pub base: Vec<BaseDisk>,
    pub host: QemuHost,
    pub until: Option<(usize, StepId)>,
}

/// What [`lookup`] needs of the build.
pub(crate) struct LookupInput<'a> {
    pub spec: &'a BuildSpec,
    pub cfg: &'a QemuConfig,
    pub options: &'a CacheOptions,
    pub cwd: &'a Path,
    pub tokenized: Tokenized,
    /// The downloaded ISO or disk image.
    pub source: Option<&'a Path>,
    /// Its digest when the download step verified a strong checksum
    /// (`sha256:…`): the key uses it instead of hashing the file again.
    pub source_digest: Option<String>,
    pub accelerator: &'a str,
}

/// Computes the build's keys and finds its longest cached prefix.
pub(crate) async fn lookup(store: &Store, input: LookupInput<'_>) -> Result<Lookup, BoxError> {
    let LookupInput {
        spec,
        cfg,
        options,
        cwd,
        tokenized,
        source,
        source_digest,
        accelerator,
    } = input;
    let host = QemuHost::probe(&cfg.qemu_binary)
        .await
        .map_err(BoxError::from)?;
    let (_, machine_type) = tokenized.template.pinned(&host).map_err(BoxError::from)?;
    let all_steps = build_steps(spec, CacheUse::On);
    let position = |flag: &str, wanted: &Option<String>| -> Result<Option<StepPoint>, String> {
        wanted
            .as_deref()
            .map(|w| find_step(&all_steps, w, flag).map(|i| step_point(&all_steps, i)))
            .transpose()
    };
    let from = position("--from", &options.from)?;
    let until = position("--until", &options.until)?;

    let base = base_disks(store, cfg, source).await?;
    let (keys, boundary) = {
        let store = store.clone();
        let source = source.map(Path::to_path_buf);
        let firmware_files = tokenized.firmware.clone();
        let vars = tokenized.vars.clone();
        let shape = source_shape(cfg, cwd, accelerator);
        let spec = spec.clone();
        let cwd = cwd.to_path_buf();
        let sensitive = options.sensitive.clone();
        let host = host.clone();
        tokio::task::spawn_blocking(move || -> Result<_, BoxError> {
            let image_digest = match (source_digest, &source) {
                (Some(digest), _) => digest,
                (None, Some(path)) => memo_digest(&store, path)?,
                (None, None) => "none".into(),
            };
            let mut firmware = BTreeMap::new();
            for (i, f) in firmware_files.iter().enumerate() {
                firmware.insert(format!("code{i}"), memo_digest(&store, f)?);
            }
            if let Some(v) = &vars {
                firmware.insert("vars".into(), memo_digest(&store, v)?);
            }
            let facts = BaseFacts {
                image_digest,
                host,
                machine_type,
                firmware,
            };
            let keys = step_keys(base_key(shape, &facts), &spec, &cwd, &sensitive);
            Ok((keys.keys, keys.boundary))
        })
        .await
        .map_err(BoxError::from)??
    };
    let names: Vec<StepId> = std::iter::once(StepId::WaitSsh)
        .chain((0..keys.len() - 1).map(|i| StepId::provision(spec, i)))
        .collect();
    let until = match until {
        None => None,
        Some(StepPoint::Key(j)) => {
            let step = match j {
                0 => StepId::WaitSsh,
                _ => StepId::provision(spec, j - 1),
            };
            Some((j, step))
        }
        Some(_) => {
            return Err(format!(
                "--until {:?}: a build can stop after `wait_ssh` or a provisioner",
                options.until.as_deref().unwrap_or("")
            )
            .into());
        }
    };
    let limit = match from {
        Some(point) => reuse_limit(point, keys.len()),
        None => keys.len().checked_sub(1),
    };
    let hit = {
        let store = store.clone();
        let keys = keys.clone();
        tokio::task::spawn_blocking(move || longest_prefix(&store, &keys, limit))
            .await
            .map_err(BoxError::from)??
    };
    if options.resume && hit.is_none() {
        return Err("--resume: no step of this build is cached (run it without `--resume`)".into());
    }
    Ok(Lookup {
        tokenized,
        keys,
        names,
        boundary,
        hit,
        base,
        host,
        until,
    })
}

/// How long QEMU may take to exit once the guest powered off.
pub(crate) const EXIT_DEADLINE: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(list: &[&str]) -> Vec<StepId> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn tree_inputs_do_not_read_a_fifo_in_an_uploaded_directory() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("a"), b"a").unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(tree.join("fifo"))
            .status()
            .unwrap();
        assert!(made.success());
        // Would block forever reading the FIFO before.
        let inputs = tree_inputs("sources[0]", &tree);
        let names: Vec<&str> = inputs.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["sources[0]/a", "sources[0]/fifo"]);
    }

    #[test]
    fn steps_are_found_by_index_name_or_unique_prefix() {
        let n = steps(&[
            "ssh_key",
            "run_qemu",
            "wait_ssh",
            "provision 1/2 shell",
            "provision 2/2 file",
            "shutdown",
        ]);
        assert_eq!(find_step(&n, "4", "--from"), Ok(3));
        assert_eq!(find_step(&n, "provision 2/2 file", "--from"), Ok(4));
        assert_eq!(find_step(&n, "provision 2", "--from"), Ok(4));
        assert!(
            find_step(&n, "provision", "--from")
                .unwrap_err()
                .contains("names 2 steps")
        );
        assert!(
            find_step(&n, "9", "--until")
                .unwrap_err()
                .contains("steps 1 to 6")
        );
        assert!(
            find_step(&n, "nope", "--from")
                .unwrap_err()
                .contains("no such step")
        );
        assert_eq!(step_point(&n, 0), StepPoint::Before);
        assert_eq!(step_point(&n, 2), StepPoint::Key(0));
        assert_eq!(step_point(&n, 4), StepPoint::Key(2));
        assert_eq!(step_point(&n, 5), StepPoint::After);
        // --from reuses what is strictly before the step.
        assert_eq!(reuse_limit(StepPoint::Key(2), 3), Some(1));
        assert_eq!(reuse_limit(StepPoint::Key(1), 3), Some(0));
        assert_eq!(reuse_limit(StepPoint::Key(0), 3), None);
        assert_eq!(reuse_limit(StepPoint::Before, 3), None);
        assert_eq!(reuse_limit(StepPoint::After, 3), Some(2));
    }

    #[tokio::test]
    async fn blank_bases_are_made_once_and_read_back_as_qcow2() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("steps")).unwrap();
        let a = blank_base(&store, 64 << 20).await.unwrap();
        assert_eq!(blank_base(&store, 64 << 20).await.unwrap(), a);
        assert_eq!(image_format(&a).await.unwrap(), "qcow2");
        let err = image_format(&dir.path().join("missing.img"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("qemu-img info -U --output=json "),
            "{err}"
        );
    }

    #[test]
    fn memoised_digests_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("steps")).unwrap();
        let f = dir.path().join("base.img");
        std::fs::write(&f, b"one").unwrap();
        let d1 = memo_digest(&store, &f).unwrap();
        assert_eq!(d1, key::digest_bytes(b"one"));
        assert_eq!(memo_digest(&store, &f).unwrap(), d1);
        std::fs::write(&f, b"two!").unwrap();
        assert_eq!(memo_digest(&store, &f).unwrap(), key::digest_bytes(b"two!"));
    }

    #[test]
    fn a_sensitive_value_changes_the_key_and_is_written_nowhere() {
        use kiln_template::body::{Attribute, Body};
        use kiln_template::span::Span;
        use kiln_template::value::Value as V;
        let base = key::base_key(&BaseKeyInputs {
            base_image_digest: "blake3:00".into(),
            source: Value::Null,
            qemu_version: "7.2.0".into(),
            machine_type: "pc-q35-7.2".into(),
            firmware: BTreeMap::new(),
        });
        let shell = |line: String| {
            let mut b = Body::empty(Span::synthetic("b.pkr.hcl"));
            b.attrs.insert(
                "inline".into(),
                Attribute {
                    name: "inline".into(),
                    value: V::List(vec![V::String(line)]),
                    span: Span::synthetic("b.pkr.hcl"),
                    sensitive: false,
                },
            );
            crate::provision::shell::decode(&b, "shell", Path::new("/"), 1).unwrap()
        };
        let spec = |secret: &str| ProvisionerSpec {
            config: ProvisionerConfig::Shell(shell(format!("echo {secret} | sudo tee /etc/token"))),
            name: None,
            pause_before: Duration::ZERO,
            max_retries: 0,
            continue_on_error: false,
            timeout: None,
        };
        let cwd = Path::new("/");
        let s1 = vec![Sensitive::new("hunter2".to_string())];
        let s2 = vec![Sensitive::new("hunter3".to_string())];
        let k1 = key::step_key(&base, &step_inputs(&spec("hunter2"), cwd, &s1));
        let k2 = key::step_key(&base, &step_inputs(&spec("hunter3"), cwd, &s2));
        assert_ne!(k1, k2);
        // The inputs carry the value only as a `Sensitive` (redacted in Debug).
        let inputs = step_inputs(&spec("hunter2"), cwd, &s1);
        assert_eq!(inputs.sensitive.len(), 1);
        assert!(!format!("{:?}", inputs.sensitive).contains("hunter2"));
        // A value the step does not use does not enter its key.
        let unused = vec![Sensitive::new("other".to_string())];
        let k3 = key::step_key(&base, &step_inputs(&spec("hunter2"), cwd, &unused));
        let k4 = key::step_key(&base, &step_inputs(&spec("hunter2"), cwd, &[]));
        assert_eq!(k3, k4);
    }
}
