//! The on-disk store of checkpoints.
//!
//! ```text
//! <root>/store.lock           flock: shared for lookup/begin/publish, exclusive for prune and GC
//! <root>/entries/<key>/       one published entry per key (never changed after publish)
//!     meta.json               EntryMeta: key, parent, step, sizes, QEMU facts (no secrets)
//!     disk.qcow2              the frozen overlay; backing = parent's disk.qcow2 or the base image
//!     disk-1.qcow2 …          further disks, same rule
//!     vars.fd                 the UEFI variables at the checkpoint (when the VM has pflash vars)
//!     state.zst               the VM state (zstd-compressed migration stream), optional
//!     last-used               its mtime is the last lookup (LRU)
//! <root>/tmp/<random>/        staging dirs (a running VM's active overlays; its sockets and live
//!                             UEFI variables) and dirs being deleted
//! ```
//!
//! **Publishing** is a `rename(2)` of a complete, fsynced staging dir onto
//! `entries/<key>`; renaming a directory onto a non-empty one fails, so when
//! two builds publish the same key one wins and the other keeps its files
//! (its VM still runs on them). Backing paths are absolute and name the
//! final place of a disk, so nothing in an entry ever changes after publish.
//!
//! **Locks** are `flock`s on directories. A staging dir is locked exclusively
//! by its builder; a published entry is locked shared by every VM whose
//! chain uses it (a [`Lease`]); `prune` removes an entry only when it gets
//! the exclusive lock at once, so it never deletes an entry in use. A
//! killed process loses its locks, and the next [`Store::open`] removes its
//! staging dirs (unlocked dirs in `tmp/`).
//!
//! **Prune** removes leaves only — an entry's disk is the backing file of
//! its children's disks, so a parent goes only after all its children —
//! the least recently used leaf first. Entries are never rebased.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::key::CacheKey;

/// Default size limit kept after each publish.
pub const DEFAULT_SIZE_LIMIT: u64 = 20 << 30;
/// Version of `meta.json`.
pub const META_SCHEMA: u32 = 1;
/// The metadata file of an entry.
pub const META_FILE: &str = "meta.json";
const LAST_USED: &str = "last-used";
const ENTRIES: &str = "entries";
const TMP: &str = "tmp";
const LOCK: &str = "store.lock";
const SECRET: &str = "secret";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {op} `{}`: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cache entry metadata `{}` is invalid: {message}", path.display())]
    Meta { path: PathBuf, message: String },
    #[error("cache entry `{key}` is gone (pruned meanwhile?)")]
    Gone { key: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What a published entry records. Holds no secret: the argv is stored
/// redacted, and keys are hashes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryMeta {
    pub schema: u32,
    pub key: CacheKey,
    /// The entry whose disks back this one's; `None`: the base image.
    pub parent: Option<CacheKey>,
    pub build: String,
    pub step: String,
    pub step_index: usize,
    pub created_unix: u64,
    /// The disks in drive order (`disk.qcow2` first).
    pub disks: Vec<DiskMeta>,
    pub vars: Option<FileMeta>,
    pub state: Option<StateMeta>,
    pub machine: MachineFacts,
}

/// One frozen disk of an entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskMeta {
    /// File name inside the entry.
    pub file: String,
    /// Absolute path of its backing file (as written in its header).
    pub backing: PathBuf,
    pub backing_format: String,
    pub virtual_size: u64,
    /// Bytes allocated on the host.
    pub bytes: u64,
}

/// A file of an entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileMeta {
    pub file: String,
    pub bytes: u64,
}

/// The saved VM state of an entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateMeta {
    pub file: String,
    pub bytes: u64,
    /// `zstd`.
    pub compression: String,
    /// How long the save took.
    pub save_millis: u64,
}

/// What a restore with saved state must match: the same QEMU, the same
/// versioned machine type, and the same command line (per-run paths and
/// ports are tokens, see [`super::checkpoint::VmTemplate`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MachineFacts {
    pub qemu_binary: String,
    /// `qemu-system-* --version`, first line.
    pub qemu_version: String,
    /// Versioned machine type (`pc-q35-7.2`).
    pub machine_type: String,
    /// The command-line template, redacted.
    pub argv: Vec<String>,
    /// Digest of the unredacted template: what a restore compares.
    pub argv_digest: String,
}

/// A published entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: CacheKey,
    pub dir: PathBuf,
    pub meta: EntryMeta,
}

impl Entry {
    /// Absolute paths of its disks, in drive order.
    pub fn disk_paths(&self) -> Vec<PathBuf> {
        self.meta
            .disks
            .iter()
            .map(|d| self.dir.join(&d.file))
            .collect()
    }

    /// Its UEFI variables file, if any.
    pub fn vars_path(&self) -> Option<PathBuf> {
        self.meta.vars.as_ref().map(|v| self.dir.join(&v.file))
    }

    /// Its saved VM state, if recorded and still present.
    pub fn state_path(&self) -> Option<PathBuf> {
        self.meta
            .state
            .as_ref()
            .map(|s| self.dir.join(&s.file))
            .filter(|p| p.is_file())
    }
}

/// An entry as listed: metadata plus what the store knows about it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    pub entry: Entry,
    pub bytes: u64,
    pub last_used_unix: u64,
    /// Entries whose disks are backed by this one's.
    pub children: usize,
    /// A VM or a restore holds it.
    pub in_use: bool,
}

/// A published entry kiln cannot use: its metadata is missing, unreadable
/// or invalid, or its parent chain loops (or passes through such an entry).
/// `ls` shows it, `du` counts it, and any `prune` removes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedEntry {
    /// The key its directory is named after.
    pub key: CacheKey,
    pub dir: PathBuf,
    /// Why it is damaged (one line).
    pub reason: String,
    pub bytes: u64,
    pub last_used_unix: u64,
    pub in_use: bool,
}

/// Every entry of the store, usable or not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Usable entries, oldest first.
    pub entries: Vec<EntryInfo>,
    /// Damaged entries, by key.
    pub damaged: Vec<DamagedEntry>,
}

/// Sizes of the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub entries: usize,
    pub disk_bytes: u64,
    pub state_bytes: u64,
    pub vars_bytes: u64,
    /// meta.json and friends.
    pub other_bytes: u64,
    /// Staging dirs of running builds (and leftovers being deleted).
    pub staging_bytes: u64,
    /// Damaged entries (any prune removes them) and their bytes.
    pub damaged: usize,
    pub damaged_bytes: u64,
}

impl Usage {
    /// Everything under the root.
    pub fn total(&self) -> u64 {
        self.disk_bytes
            + self.state_bytes
            + self.vars_bytes
            + self.other_bytes
            + self.staging_bytes
            + self.damaged_bytes
    }

    /// The published entries.
    pub fn entry_bytes(&self) -> u64 {
        self.disk_bytes + self.state_bytes + self.vars_bytes + self.other_bytes
    }
}

/// What to prune.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Remove least recently used leaves until the entries take at most
    /// this many bytes.
    pub max_size: Option<u64>,
    /// Remove leaves not used for this long.
    pub older_than: Option<Duration>,
}

/// Why an entry was removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneReason {
    OlderThan,
    OverSize,
    /// Damaged entries go on every prune.
    Damaged,
}

/// What prune did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub removed: Vec<(EntryInfo, PruneReason)>,
    /// Damaged entries removed (every prune removes them).
    pub removed_damaged: Vec<DamagedEntry>,
    pub freed_bytes: u64,
    /// Entries kept because a VM uses them although the policy would remove them.
    pub kept_in_use: Vec<CacheKey>,
    /// Entries and bytes left.
    pub remaining: usize,
    pub remaining_bytes: u64,
}

/// A shared hold on a published entry: prune leaves it (and so its whole
/// chain) alone while the lease lives.
#[derive(Debug)]
pub struct Lease {
    key: CacheKey,
    _dir: File,
}

impl Lease {
    pub fn key(&self) -> &CacheKey {
        &self.key
    }
}

/// A private directory in the store, locked by its owner, where a VM's
/// active overlays live until they are frozen and published. Removed on
/// drop unless published.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    lock: Option<File>,
}

impl Staging {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Why a publish did not happen; the staging comes back (its files may
/// still be in use).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cache entry `{}` was published by another build meanwhile", key.short())]
    Exists { key: CacheKey, staging: Staging },
    #[error("{source}")]
    Failed {
        #[source]
        source: StoreError,
        staging: Staging,
    },
}

impl PublishError {
    /// The staging dir, still locked and intact.
    pub fn into_staging(self) -> Staging {
        match self {
            PublishError::Exists { staging, .. } | PublishError::Failed { staging, .. } => staging,
        }
    }
}

/// The step cache's directory under kiln's cache root (which the binary
/// resolves once: `KILN_CACHE_DIR`, `PACKER_CACHE_DIR`, `~/.cache/kiln`).
pub fn root_in(cache_root: &Path) -> PathBuf {
    cache_root.join("steps")
}

/// The step cache on disk. Cheap to clone; every method is blocking
/// (file-system work and `flock`s held for milliseconds).
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    size_limit: Option<u64>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unix_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Bytes allocated for a file or a directory tree.
fn allocated(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| allocated(&e.path())).sum())
            .unwrap_or(0)
    } else {
        meta.blocks() * 512
    }
}

fn random_name(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    let seed = format!(
        "{}-{:?}-{:?}",
        std::process::id(),
        SystemTime::now(),
        std::thread::current().id()
    );
    bytes.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..8]);
    format!("{prefix}{}", hex::encode(bytes))
}

fn fsync_dir(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err("fsync", path))
}

/// Whether the entry's `meta.json` is of a newer schema than this kiln reads.
fn newer_schema(dir: &Path) -> bool {
    fs::read(dir.join(META_FILE))
        .ok()
        .and_then(|text| serde_json::from_slice::<serde_json::Value>(&text).ok())
        .and_then(|v| v.get("schema").and_then(serde_json::Value::as_u64))
        .is_some_and(|schema| schema > u64::from(META_SCHEMA))
}

/// Why `key`'s parent chain is unusable: it loops, or it passes through a
/// damaged entry. `None`: it ends at the base image or at a parent that is
/// gone (an orphan, still a removable leaf).
fn chain_fault(
    key: &CacheKey,
    parent_of: &BTreeMap<CacheKey, Option<CacheKey>>,
    damaged: &BTreeSet<CacheKey>,
) -> Option<String> {
    let mut seen: Vec<&CacheKey> = vec![key];
    let mut at = key;
    while let Some(Some(parent)) = parent_of.get(at) {
        if damaged.contains(parent) {
            return Some(format!("its parent `{}` is damaged", parent.short()));
        }
        if let Some(i) = seen.iter().position(|k| *k == parent) {
            let chain: Vec<&str> = seen[i..]
                .iter()
                .map(|k| k.short())
                .chain(std::iter::once(parent.short()))
                .collect();
            return Some(format!("its parent chain loops: {}", chain.join(" → ")));
        }
        seen.push(parent);
        at = parent;
    }
    None
}

/// Held store lock (shared or exclusive); released on drop.
struct StoreLock {
    _file: File,
}

impl Store {
    /// Opens (creating) the store at `root` with the default size limit,
    /// and removes what killed builds left in `tmp/`.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        for dir in [root.join(ENTRIES), root.join(TMP)] {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        let root = fs::canonicalize(root).map_err(io_err("resolve", root))?;
        let store = Store {
            root,
            size_limit: Some(DEFAULT_SIZE_LIMIT),
        };
        store.collect_garbage()?;
        Ok(store)
    }

    /// The store at `root` if it exists, for commands that only read
    /// (`ls`, `du`): creates nothing and collects no garbage. `None`: no
    /// store there yet, an empty cache.
    pub fn open_existing(root: &Path) -> Result<Option<Store>, StoreError> {
        match fs::metadata(root.join(ENTRIES)) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", root)(e)),
        }
        let root = fs::canonicalize(root).map_err(io_err("resolve", root))?;
        Ok(Some(Store {
            root,
            size_limit: Some(DEFAULT_SIZE_LIMIT),
        }))
    }

    /// Keep the entries under `limit` bytes after each publish (`None`: no limit).
    pub fn with_size_limit(mut self, limit: Option<u64>) -> Store {
        self.size_limit = limit;
        self
    }

    pub fn size_limit(&self) -> Option<u64> {
        self.size_limit
    }

    /// The (absolute) root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This store's secret (32 random bytes in `secret`, mode 0600, made
    /// on first use): derives the build keys a cached guest trusts, so
    /// nobody without the store can compute them.
    pub fn secret(&self) -> Result<[u8; 32], StoreError> {
        use std::io::Read;
        let path = self.root.join(SECRET);
        let read = |path: &Path| -> Result<Option<[u8; 32]>, StoreError> {
            match fs::read(path) {
                Ok(bytes) => Ok(<[u8; 32]>::try_from(bytes.as_slice()).ok()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err("read", path)(e)),
            }
        };
        if let Some(secret) = read(&path)? {
            return Ok(secret);
        }
        let mut fresh = [0u8; 32];
        let urandom = Path::new("/dev/urandom");
        File::open(urandom)
            .and_then(|mut f| f.read_exact(&mut fresh))
            .map_err(io_err("read", urandom))?;
        // Written aside and linked into place: a racing build either wins
        // or reads the winner's secret, never a torn file.
        let staged = self.root.join(format!("{SECRET}.{}", std::process::id()));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&staged)
            .map_err(io_err("create", &staged))?;
        file.write_all(&fresh)
            .and_then(|()| file.sync_all())
            .map_err(io_err("write", &staged))?;
        let linked = fs::hard_link(&staged, &path);
        let _ = fs::remove_file(&staged);
        match linked {
            Ok(()) => Ok(fresh),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                read(&path)?.ok_or_else(|| io_err("read", &path)(io::Error::other("not 32 bytes")))
            }
            Err(e) => Err(io_err("link", &path)(e)),
        }
    }

    /// Where the entry of `key` lives (whether or not it exists).
    pub fn entry_dir(&self, key: &CacheKey) -> PathBuf {
        self.root.join(ENTRIES).join(key.as_str())
    }

    fn lock(&self, exclusive: bool) -> Result<StoreLock, StoreError> {
        let path = self.root.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        }
        .map_err(io_err("lock", &path))?;
        Ok(StoreLock { _file: file })
    }

    /// The shared lock for reading, without creating the lock file: a
    /// store without one has never been written by a build.
    fn read_lock(&self) -> Result<Option<StoreLock>, StoreError> {
        let path = self.root.join(LOCK);
        let file = match OpenOptions::new().read(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        file.lock_shared().map_err(io_err("lock", &path))?;
        Ok(Some(StoreLock { _file: file }))
    }

    /// Removes staging dirs nobody holds (builds that were killed) and
    /// entry dirs without metadata.
    fn collect_garbage(&self) -> Result<(), StoreError> {
        let _lock = self.lock(true)?;
        let tmp = self.root.join(TMP);
        for item in fs::read_dir(&tmp).map_err(io_err("list", &tmp))?.flatten() {
            let path = item.path();
            if !path.is_dir() {
                let _ = fs::remove_file(&path);
                continue;
            }
            if let Ok(dir) = File::open(&path)
                && dir.try_lock().is_ok()
            {
                let _ = fs::remove_dir_all(&path);
            }
        }
        let entries = self.root.join(ENTRIES);
        for item in fs::read_dir(&entries)
            .map_err(io_err("list", &entries))?
            .flatten()
        {
            let path = item.path();
            if path.is_dir()
                && !path.join(META_FILE).is_file()
                && let Ok(dir) = File::open(&path)
                && dir.try_lock().is_ok()
            {
                let _ = fs::remove_dir_all(&path);
            }
        }
        Ok(())
    }

    /// A new staging dir, locked by the caller until dropped or published.
    pub fn begin(&self) -> Result<Staging, StoreError> {
        let _lock = self.lock(false)?;
        let tmp = self.root.join(TMP);
        for attempt in 0.. {
            let dir = tmp.join(random_name(&format!("stage-{attempt}-")));
            match fs::create_dir(&dir) {
                Ok(()) => {
                    let file = File::open(&dir).map_err(io_err("open", &dir))?;
                    file.lock().map_err(io_err("lock", &dir))?;
                    return Ok(Staging {
                        dir,
                        lock: Some(file),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => continue,
                Err(e) => return Err(io_err("create", &dir)(e)),
            }
        }
        Err(StoreError::Io {
            op: "create",
            path: tmp,
            source: io::Error::other("no free staging name"),
        })
    }

    /// Publishes a staging dir as the entry `meta.key`: writes `meta.json`,
    /// fsyncs everything, makes the files read-only and renames the dir into
    /// place. Returns a lease on the new entry (the caller's VM still runs
    /// on it); then keeps the size limit.
    pub fn publish(&self, mut staging: Staging, meta: &EntryMeta) -> Result<Lease, PublishError> {
        let key = meta.key.clone();
        if let Err(source) = self.prepare(&staging, meta) {
            return Err(PublishError::Failed { source, staging });
        }
        let target = self.entry_dir(&key);
        let lock = match self.lock(false) {
            Ok(l) => l,
            Err(source) => return Err(PublishError::Failed { source, staging }),
        };
        if target.exists() {
            return Err(PublishError::Exists { key, staging });
        }
        if let Err(e) = fs::rename(&staging.dir, &target) {
            return if target.join(META_FILE).exists() {
                Err(PublishError::Exists { key, staging })
            } else {
                let source = io_err("publish", &target)(e);
                Err(PublishError::Failed { source, staging })
            };
        }
        let dir_lock = staging.lock.take();
        staging.dir = target.clone();
        drop(staging);
        let _ = fsync_dir(&self.root.join(ENTRIES));
        let _ = fsync_dir(&self.root.join(TMP));
        // Still under the shared store lock, so prune cannot slip in between.
        let lease = match dir_lock {
            Some(file) => {
                let _ = file.lock_shared();
                Lease {
                    key: key.clone(),
                    _dir: file,
                }
            }
            None => match File::open(&target) {
                Ok(file) => Lease {
                    key: key.clone(),
                    _dir: file,
                },
                Err(e) => {
                    return Err(PublishError::Failed {
                        source: io_err("open", &target)(e),
                        staging: Staging {
                            dir: target,
                            lock: None,
                        },
                    });
                }
            },
        };
        drop(lock);
        if let Some(limit) = self.size_limit
            && let Err(e) = self.prune(&PrunePolicy {
                max_size: Some(limit),
                older_than: None,
            })
        {
            tracing::warn!("step cache: keeping the size limit failed: {e}");
        }
        Ok(lease)
    }

    fn prepare(&self, staging: &Staging, meta: &EntryMeta) -> Result<(), StoreError> {
        let dir = &staging.dir;
        let meta_path = dir.join(META_FILE);
        let text = serde_json::to_vec_pretty(meta).map_err(|e| StoreError::Meta {
            path: meta_path.clone(),
            message: e.to_string(),
        })?;
        let mut f = File::create(&meta_path).map_err(io_err("write", &meta_path))?;
        f.write_all(&text).map_err(io_err("write", &meta_path))?;
        let used = dir.join(LAST_USED);
        File::create(&used).map_err(io_err("write", &used))?;
        for item in fs::read_dir(dir).map_err(io_err("list", dir))?.flatten() {
            let path = item.path();
            if !path.is_file() {
                continue;
            }
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io_err("fsync", &path))?;
            if path.file_name().is_some_and(|n| n != LAST_USED) {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o444))
                    .map_err(io_err("make read-only", &path))?;
            }
        }
        fsync_dir(dir)
    }

    fn read_meta(&self, dir: &Path) -> Result<EntryMeta, StoreError> {
        let path = dir.join(META_FILE);
        let text = fs::read(&path).map_err(io_err("read", &path))?;
        let meta: EntryMeta = serde_json::from_slice(&text).map_err(|e| StoreError::Meta {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if meta.schema != META_SCHEMA {
            return Err(StoreError::Meta {
                path,
                message: format!("schema {} (this kiln reads {META_SCHEMA})", meta.schema),
            });
        }
        Ok(meta)
    }

    /// The entry of `key`, if it is complete and its backing files exist;
    /// marks it used now.
    pub fn lookup(&self, key: &CacheKey) -> Result<Option<Entry>, StoreError> {
        let _lock = self.read_lock()?;
        let dir = self.entry_dir(key);
        if !dir.join(META_FILE).is_file() {
            return Ok(None);
        }
        let meta = match self.read_meta(&dir) {
            Ok(meta) if meta.key == *key => meta,
            Ok(_) | Err(StoreError::Meta { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let entry = Entry {
            key: key.clone(),
            dir: dir.clone(),
            meta,
        };
        let complete = entry
            .meta
            .disks
            .iter()
            .all(|d| entry.dir.join(&d.file).is_file() && d.backing.exists())
            && entry.vars_path().is_none_or(|p| p.is_file());
        if !complete {
            return Ok(None);
        }
        let used = dir.join(LAST_USED);
        if let Ok(f) = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&used)
        {
            let _ = f.set_modified(SystemTime::now());
        }
        Ok(Some(entry))
    }

    /// Holds `entry` (and so its chain) against prune.
    pub fn lease(&self, entry: &Entry) -> Result<Lease, StoreError> {
        let gone = || StoreError::Gone {
            key: entry.key.to_string(),
        };
        let file = File::open(&entry.dir).map_err(|_| gone())?;
        file.lock_shared().map_err(io_err("lock", &entry.dir))?;
        // Prune renames an entry away before deleting it: after the lock,
        // the path must still name the directory we hold.
        let held = file.metadata().map_err(io_err("stat", &entry.dir))?;
        match fs::metadata(&entry.dir) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {}
            _ => return Err(gone()),
        }
        if !entry.dir.join(META_FILE).is_file() {
            return Err(gone());
        }
        Ok(Lease {
            key: entry.key.clone(),
            _dir: file,
        })
    }

    fn scan(&self) -> Result<Listing, StoreError> {
        let entries = self.root.join(ENTRIES);
        let mut out = Vec::new();
        let mut damaged = Vec::new();
        let items = match fs::read_dir(&entries) {
            Ok(rd) => rd,
            // A read-only command on a store that has none yet.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Listing::default()),
            Err(e) => return Err(io_err("list", &entries)(e)),
        };
        for item in items.flatten() {
            let dir = item.path();
            let Some(key) = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| CacheKey::parse(n).ok())
            else {
                continue;
            };
            let in_use = match File::open(&dir) {
                Ok(f) => match f.try_lock() {
                    Ok(()) => {
                        let _ = f.unlock();
                        false
                    }
                    Err(_) => true,
                },
                Err(_) => false,
            };
            let last_used = fs::metadata(dir.join(LAST_USED))
                .and_then(|m| m.modified())
                .map(unix_of)
                .ok();
            let meta = match self.read_meta(&dir) {
                Ok(meta) if meta.key == key => meta,
                // A newer kiln's entry sharing the store: not ours to judge.
                Err(StoreError::Meta { .. }) if newer_schema(&dir) => continue,
                other => {
                    let reason = match other {
                        Ok(meta) => format!("its metadata names another key `{}`", meta.key),
                        Err(StoreError::Io { source, .. })
                            if source.kind() == io::ErrorKind::NotFound =>
                        {
                            format!("no `{META_FILE}`")
                        }
                        Err(StoreError::Meta { message, .. }) => {
                            format!("unreadable `{META_FILE}`: {message}")
                        }
                        Err(e) => e.to_string(),
                    };
                    damaged.push(DamagedEntry {
                        bytes: allocated(&dir),
                        last_used_unix: last_used.unwrap_or(0),
                        in_use,
                        key,
                        dir,
                        reason,
                    });
                    continue;
                }
            };
            out.push(EntryInfo {
                bytes: allocated(&dir),
                last_used_unix: last_used.unwrap_or(meta.created_unix),
                children: 0,
                in_use,
                entry: Entry { key, dir, meta },
            });
        }
        // Entries whose parent chain loops, or reaches a damaged entry, are
        // damaged too: prune could never remove them as leaves, and their
        // disks hang off disks that go.
        let parent_of: BTreeMap<CacheKey, Option<CacheKey>> = out
            .iter()
            .map(|e| (e.entry.key.clone(), e.entry.meta.parent.clone()))
            .collect();
        let bad: BTreeSet<CacheKey> = damaged.iter().map(|d| d.key.clone()).collect();
        let mut broken: BTreeMap<CacheKey, String> = BTreeMap::new();
        for info in &out {
            if let Some(reason) = chain_fault(&info.entry.key, &parent_of, &bad) {
                broken.insert(info.entry.key.clone(), reason);
            }
        }
        let (keep, gone): (Vec<EntryInfo>, Vec<EntryInfo>) = out
            .into_iter()
            .partition(|e| !broken.contains_key(&e.entry.key));
        let mut out = keep;
        for info in gone {
            let reason = broken.remove(&info.entry.key).unwrap_or_default();
            damaged.push(DamagedEntry {
                key: info.entry.key,
                dir: info.entry.dir,
                reason,
                bytes: info.bytes,
                last_used_unix: info.last_used_unix,
                in_use: info.in_use,
            });
        }
        damaged.sort_by(|a, b| a.key.cmp(&b.key));
        let parents: Vec<CacheKey> = out
            .iter()
            .filter_map(|e| e.entry.meta.parent.clone())
            .collect();
        for info in &mut out {
            info.children = parents.iter().filter(|p| **p == info.entry.key).count();
        }
        out.sort_by(|a, b| {
            a.entry
                .meta
                .created_unix
                .cmp(&b.entry.meta.created_unix)
                .then(a.entry.key.cmp(&b.entry.key))
        });
        Ok(Listing {
            entries: out,
            damaged,
        })
    }

    /// Every entry, usable or damaged, under the shared lock (taken only if
    /// the store has a lock file: this creates nothing).
    pub fn listing(&self) -> Result<Listing, StoreError> {
        let _lock = self.read_lock()?;
        self.scan()
    }

    /// Every published entry, oldest first.
    pub fn ls(&self) -> Result<Vec<EntryInfo>, StoreError> {
        Ok(self.listing()?.entries)
    }

    /// Sizes of the store (creates nothing).
    pub fn du(&self) -> Result<Usage, StoreError> {
        let _lock = self.read_lock()?;
        let mut usage = Usage::default();
        let listing = self.scan()?;
        usage.damaged = listing.damaged.len();
        usage.damaged_bytes = listing.damaged.iter().map(|d| d.bytes).sum();
        for info in listing.entries {
            usage.entries += 1;
            let e = &info.entry;
            let mut counted = 0;
            for d in &e.meta.disks {
                let b = allocated(&e.dir.join(&d.file));
                usage.disk_bytes += b;
                counted += b;
            }
            if let Some(v) = &e.meta.vars {
                let b = allocated(&e.dir.join(&v.file));
                usage.vars_bytes += b;
                counted += b;
            }
            if let Some(s) = &e.meta.state {
                let b = allocated(&e.dir.join(&s.file));
                usage.state_bytes += b;
                counted += b;
            }
            usage.other_bytes += info.bytes.saturating_sub(counted);
        }
        usage.staging_bytes = allocated(&self.root.join(TMP));
        Ok(usage)
    }

    /// Removes every damaged entry not in use (whatever the policy), then
    /// entries by `policy`: leaves only, least recently used first, never
    /// one in use.
    pub fn prune(&self, policy: &PrunePolicy) -> Result<PruneReport, StoreError> {
        let _lock = self.lock(true)?;
        let Listing {
            entries: mut live,
            damaged,
        } = self.scan()?;
        let mut report = PruneReport::default();
        let mut kept_in_use = BTreeSet::new();
        for d in damaged {
            if self.remove_dir(&d.key, &d.dir)? {
                report.freed_bytes += d.bytes;
                report
                    .removed_damaged
                    .push(DamagedEntry { in_use: false, ..d });
            } else {
                kept_in_use.insert(d.key);
            }
        }
        let cutoff = policy
            .older_than
            .map(|age| now_unix().saturating_sub(age.as_secs()));
        loop {
            let total: u64 = live.iter().map(|e| e.bytes).sum();
            let parents: BTreeMap<CacheKey, usize> = live
                .iter()
                .filter_map(|e| e.entry.meta.parent.clone())
                .fold(BTreeMap::new(), |mut m, p| {
                    *m.entry(p).or_default() += 1;
                    m
                });
            let mut leaves: Vec<usize> = (0..live.len())
                .filter(|&i| !parents.contains_key(&live[i].entry.key))
                .filter(|&i| !kept_in_use.contains(&live[i].entry.key))
                .collect();
            leaves.sort_by_key(|&i| (live[i].last_used_unix, live[i].entry.meta.created_unix));
            let pick = leaves.iter().find_map(|&i| {
                if cutoff.is_some_and(|c| live[i].last_used_unix < c) {
                    Some((i, PruneReason::OlderThan))
                } else if policy.max_size.is_some_and(|max| total > max) {
                    Some((i, PruneReason::OverSize))
                } else {
                    None
                }
            });
            let Some((i, reason)) = pick else {
                break;
            };
            match self.remove_entry(&live[i].entry)? {
                true => {
                    let mut info = live.remove(i);
                    info.in_use = false;
                    report.freed_bytes += info.bytes;
                    report.removed.push((info, reason));
                }
                false => {
                    kept_in_use.insert(live[i].entry.key.clone());
                }
            }
        }
        report.kept_in_use = kept_in_use.into_iter().collect();
        report.remaining = live.len();
        report.remaining_bytes = live.iter().map(|e| e.bytes).sum();
        Ok(report)
    }

    /// Unpublishes and deletes an entry unless someone holds it. Under the
    /// exclusive store lock.
    fn remove_entry(&self, entry: &Entry) -> Result<bool, StoreError> {
        self.remove_dir(&entry.key, &entry.dir)
    }

    fn remove_dir(&self, key: &CacheKey, dir: &Path) -> Result<bool, StoreError> {
        let file = File::open(dir).map_err(io_err("open", dir))?;
        if file.try_lock().is_err() {
            return Ok(false);
        }
        let grave = self
            .root
            .join(TMP)
            .join(random_name(&format!("del-{}-", key.short())));
        fs::rename(dir, &grave).map_err(io_err("unpublish", dir))?;
        let _ = fsync_dir(&self.root.join(ENTRIES));
        // A crash from here on leaves an unlocked dir in tmp/: garbage.
        fs::remove_dir_all(&grave).map_err(io_err("remove", &grave))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::{BaseKeyInputs, base_key};
    use std::sync::{Arc, Barrier};

    fn key(n: u8) -> CacheKey {
        base_key(&BaseKeyInputs {
            base_image_digest: format!("test:{n}"),
            source: serde_json::json!({}),
            qemu_version: "7.2.22".into(),
            machine_type: "pc-q35-7.2".into(),
            firmware: Default::default(),
        })
    }

    fn meta(key: &CacheKey, parent: Option<&CacheKey>, backing: &Path) -> EntryMeta {
        EntryMeta {
            schema: META_SCHEMA,
            key: key.clone(),
            parent: parent.cloned(),
            build: "qemu.test".into(),
            step: "provision".into(),
            step_index: 3,
            created_unix: now_unix(),
            disks: vec![DiskMeta {
                file: "disk.qcow2".into(),
                backing: backing.to_path_buf(),
                backing_format: "qcow2".into(),
                virtual_size: 1 << 30,
                bytes: 0,
            }],
            vars: None,
            state: Some(StateMeta {
                file: "state.zst".into(),
                bytes: 0,
                compression: "zstd".into(),
                save_millis: 1,
            }),
            machine: MachineFacts {
                qemu_binary: "qemu-system-x86_64".into(),
                qemu_version: "QEMU emulator version 7.2.22".into(),
                machine_type: "pc-q35-7.2".into(),
                argv: vec!["-m".into(), "1024".into()],
                argv_digest: "blake3:00".into(),
            },
        }
    }

    /// Publishes a fake entry with `size` bytes of disk.
    fn put(
        store: &Store,
        k: &CacheKey,
        parent: Option<&CacheKey>,
        base: &Path,
        size: usize,
    ) -> Lease {
        let staging = store.begin().unwrap();
        fs::write(staging.path().join("disk.qcow2"), vec![1u8; size]).unwrap();
        fs::write(staging.path().join("state.zst"), b"state").unwrap();
        let backing = match parent {
            Some(p) => store.entry_dir(p).join("disk.qcow2"),
            None => base.to_path_buf(),
        };
        store.publish(staging, &meta(k, parent, &backing)).unwrap()
    }

    fn set_last_used(store: &Store, k: &CacheKey, secs_ago: u64) {
        let f = OpenOptions::new()
            .write(true)
            .open(store.entry_dir(k).join(LAST_USED))
            .unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
            .unwrap();
    }

    fn setup() -> (tempfile::TempDir, Store, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        fs::write(&base, b"base").unwrap();
        let store = Store::open(&dir.path().join("steps"))
            .unwrap()
            .with_size_limit(None);
        (dir, store, base)
    }

    fn tmp_is_empty(store: &Store) -> bool {
        fs::read_dir(store.root().join(TMP))
            .unwrap()
            .next()
            .is_none()
    }

    #[test]
    fn publish_then_lookup_finds_the_entry_read_only() {
        let (_dir, store, base) = setup();
        let k = key(1);
        assert!(store.lookup(&k).unwrap().is_none());
        let lease = put(&store, &k, None, &base, 4096);
        assert_eq!(lease.key(), &k);
        let entry = store.lookup(&k).unwrap().unwrap();
        assert_eq!(entry.meta.key, k);
        assert_eq!(entry.dir, store.entry_dir(&k));
        assert!(entry.dir.is_absolute());
        assert_eq!(entry.disk_paths(), vec![entry.dir.join("disk.qcow2")]);
        assert_eq!(entry.state_path(), Some(entry.dir.join("state.zst")));
        let mode = fs::metadata(entry.dir.join("disk.qcow2"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
        assert!(tmp_is_empty(&store));
        let listed = store.ls().unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].in_use, "the publisher's lease holds it");
        drop(lease);
        assert!(!store.ls().unwrap()[0].in_use);
    }

    #[test]
    fn lookup_misses_when_the_backing_file_is_gone() {
        let (_dir, store, base) = setup();
        let k = key(1);
        drop(put(&store, &k, None, &base, 10));
        fs::remove_file(&base).unwrap();
        assert!(store.lookup(&k).unwrap().is_none());
    }

    #[test]
    fn dropped_staging_leaves_nothing() {
        let (_dir, store, _base) = setup();
        let staging = store.begin().unwrap();
        fs::write(staging.path().join("disk.qcow2"), b"x").unwrap();
        let path = staging.path().to_path_buf();
        drop(staging);
        assert!(!path.exists());
        assert!(tmp_is_empty(&store));
    }

    #[test]
    fn open_keeps_live_staging_and_removes_dead_leftovers() {
        let (_dir, store, _base) = setup();
        let live = store.begin().unwrap();
        // What a killed build leaves: an unlocked dir in tmp/, and an
        // unpublished entry dir without metadata.
        let dead = store.root().join(TMP).join("stage-dead");
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join("disk.qcow2"), b"half").unwrap();
        let half = store.entry_dir(&key(9));
        fs::create_dir(&half).unwrap();
        let again = Store::open(store.root()).unwrap();
        assert!(
            live.path().exists(),
            "a running build's staging was removed"
        );
        assert!(!dead.exists());
        assert!(!half.exists());
        assert!(again.ls().unwrap().is_empty());
    }

    #[test]
    fn two_threads_publishing_the_same_key_one_wins() {
        let (_dir, store, base) = setup();
        let k = key(2);
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2u8)
            .map(|n| {
                let store = store.clone();
                let barrier = barrier.clone();
                let k = k.clone();
                let base = base.clone();
                std::thread::spawn(move || {
                    let staging = store.begin().unwrap();
                    fs::write(staging.path().join("disk.qcow2"), vec![n; 1000]).unwrap();
                    barrier.wait();
                    match store.publish(staging, &meta(&k, None, &base)) {
                        Ok(lease) => {
                            drop(lease);
                            Ok(n)
                        }
                        Err(PublishError::Exists { staging, .. }) => {
                            assert!(staging.path().exists());
                            Err(n)
                        }
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        let results: Vec<Result<u8, u8>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        let winner = *results.iter().find_map(|r| r.as_ref().ok()).unwrap();
        let entry = store.lookup(&k).unwrap().unwrap();
        let disk = fs::read(entry.dir.join("disk.qcow2")).unwrap();
        assert!(disk.iter().all(|b| *b == winner), "mixed contents");
        assert!(tmp_is_empty(&store), "the loser's staging was not removed");
    }

    #[test]
    fn two_processes_publishing_the_same_key_one_wins() {
        // Child mode: publish once and report.
        if let Ok(root) = std::env::var("KILN_CACHE_TEST_PUBLISH") {
            let store = Store::open(Path::new(&root)).unwrap();
            let base = Path::new(&root).join("../base.qcow2");
            let staging = store.begin().unwrap();
            fs::write(staging.path().join("disk.qcow2"), vec![7u8; 100_000]).unwrap();
            let outcome = match store.publish(staging, &meta(&key(3), None, &base)) {
                Ok(_) => "published",
                Err(PublishError::Exists { .. }) => "exists",
                Err(e) => panic!("{e}"),
            };
            fs::write(
                Path::new(&root).join(format!("outcome-{}", std::process::id())),
                outcome,
            )
            .unwrap();
            return;
        }
        let (_dir, store, _base) = setup();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..4)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "cache::store::tests::two_processes_publishing_the_same_key_one_wins",
                        "--nocapture",
                    ])
                    .env("KILN_CACHE_TEST_PUBLISH", store.root())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        let outcomes: Vec<String> = fs::read_dir(store.root())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("outcome-"))
            .map(|e| fs::read_to_string(e.path()).unwrap())
            .collect();
        assert_eq!(outcomes.len(), 4);
        assert_eq!(
            outcomes.iter().filter(|o| *o == "published").count(),
            1,
            "{outcomes:?}"
        );
        assert!(store.lookup(&key(3)).unwrap().is_some());
        assert_eq!(store.ls().unwrap().len(), 1);
        assert!(tmp_is_empty(&store));
    }

    #[test]
    fn a_killed_publish_leaves_the_store_usable() {
        if let Ok(root) = std::env::var("KILN_CACHE_TEST_KILL") {
            // A build killed while writing its checkpoint.
            let store = Store::open(Path::new(&root)).unwrap();
            let staging = store.begin().unwrap();
            let mut f = File::create(staging.path().join("disk.qcow2")).unwrap();
            f.write_all(&[0u8; 65536]).unwrap();
            std::process::abort();
        }
        let (_dir, store, base) = setup();
        drop(put(&store, &key(1), None, &base, 100));
        let exe = std::env::current_exe().unwrap();
        let status = std::process::Command::new(&exe)
            .args([
                "--exact",
                "cache::store::tests::a_killed_publish_leaves_the_store_usable",
                "--nocapture",
            ])
            .env("KILN_CACHE_TEST_KILL", store.root())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the child was meant to die");
        assert!(
            !tmp_is_empty(&store),
            "the killed build left nothing to clean"
        );
        let store = Store::open(store.root()).unwrap().with_size_limit(None);
        assert!(tmp_is_empty(&store));
        assert!(store.lookup(&key(1)).unwrap().is_some());
        drop(put(&store, &key(2), Some(&key(1)), &base, 100));
        assert_eq!(store.ls().unwrap().len(), 2);
    }

    #[test]
    fn prune_removes_lru_leaves_first_and_never_a_parent_or_an_entry_in_use() {
        let (_dir, store, base) = setup();
        let (a, b, c, d) = (key(1), key(2), key(3), key(4));
        // a ← b ← c, a ← d
        drop(put(&store, &a, None, &base, 100_000));
        drop(put(&store, &b, Some(&a), &base, 100_000));
        drop(put(&store, &c, Some(&b), &base, 100_000));
        drop(put(&store, &d, Some(&a), &base, 100_000));
        set_last_used(&store, &a, 1000); // oldest, but a parent
        set_last_used(&store, &b, 500);
        set_last_used(&store, &c, 400);
        set_last_used(&store, &d, 300);
        let all = store.ls().unwrap();
        assert_eq!(all.iter().find(|e| e.entry.key == a).unwrap().children, 2);
        let one = all[0].bytes;
        assert!(one >= 100_000);

        // c is held by a VM: prune must skip it and take d instead.
        let held = store.lease(&store.lookup(&c).unwrap().unwrap()).unwrap();
        set_last_used(&store, &c, 400);
        let report = store
            .prune(&PrunePolicy {
                max_size: Some(one * 3 + one / 2),
                older_than: None,
            })
            .unwrap();
        let removed: Vec<&CacheKey> = report.removed.iter().map(|(e, _)| &e.entry.key).collect();
        assert_eq!(removed, vec![&d]);
        assert_eq!(report.kept_in_use, vec![c.clone()]);
        assert_eq!(report.remaining, 3);

        // Everything older than 100 s: c is held, so b (its parent) and a stay.
        let report = store
            .prune(&PrunePolicy {
                max_size: None,
                older_than: Some(Duration::from_secs(100)),
            })
            .unwrap();
        assert!(report.removed.is_empty(), "{report:?}");
        drop(held);
        let report = store
            .prune(&PrunePolicy {
                max_size: None,
                older_than: Some(Duration::from_secs(100)),
            })
            .unwrap();
        let removed: Vec<&CacheKey> = report.removed.iter().map(|(e, _)| &e.entry.key).collect();
        assert_eq!(removed, vec![&c, &b, &a], "children before parents");
        assert!(store.ls().unwrap().is_empty());
        assert!(tmp_is_empty(&store));
    }

    #[test]
    fn recently_used_entries_survive_older_than() {
        let (_dir, store, base) = setup();
        drop(put(&store, &key(1), None, &base, 10));
        drop(put(&store, &key(2), None, &base, 10));
        set_last_used(&store, &key(1), 7200);
        set_last_used(&store, &key(2), 7200);
        store.lookup(&key(2)).unwrap().unwrap();
        let report = store
            .prune(&PrunePolicy {
                max_size: None,
                older_than: Some(Duration::from_secs(3600)),
            })
            .unwrap();
        assert_eq!(report.removed.len(), 1);
        assert_eq!(report.removed[0].0.entry.key, key(1));
        assert_eq!(report.removed[0].1, PruneReason::OlderThan);
    }

    #[test]
    fn the_size_limit_is_kept_after_each_publish() {
        let (_dir, store, base) = setup();
        let store = store.with_size_limit(Some(250_000));
        drop(put(&store, &key(1), None, &base, 100_000));
        set_last_used(&store, &key(1), 100);
        drop(put(&store, &key(2), None, &base, 100_000));
        set_last_used(&store, &key(2), 50);
        drop(put(&store, &key(3), None, &base, 100_000));
        let keys: Vec<CacheKey> = store
            .ls()
            .unwrap()
            .into_iter()
            .map(|e| e.entry.key)
            .collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert!(!keys.contains(&key(1)), "the least recently used was kept");
        let usage = store.du().unwrap();
        assert_eq!(usage.entries, 2);
        assert!(usage.disk_bytes >= 200_000);
        assert!(usage.state_bytes > 0);
        assert!(usage.entry_bytes() <= 250_000 + 2 * 16_384, "{usage:?}");
    }

    /// Cuts an entry's `meta.json` short, as a full disk or a crash of
    /// another tool would.
    fn truncate_meta(store: &Store, k: &CacheKey) {
        let path = store.entry_dir(k).join(META_FILE);
        let text = fs::read(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, &text[..text.len() / 2]).unwrap();
    }

    const ANY_PRUNE: PrunePolicy = PrunePolicy {
        max_size: None,
        older_than: Some(Duration::from_secs(365 * 86400)),
    };

    #[test]
    fn ls_du_and_prune_see_entries_with_truncated_metadata_as_damaged() {
        let (_dir, store, base) = setup();
        let (good, bad) = (key(1), key(2));
        drop(put(&store, &good, None, &base, 10_000));
        drop(put(&store, &bad, None, &base, 50_000));
        truncate_meta(&store, &bad);

        let listing = store.listing().unwrap();
        assert_eq!(listing.entries.len(), 1);
        assert_eq!(listing.damaged.len(), 1, "{listing:?}");
        let d = &listing.damaged[0];
        assert_eq!(d.key, bad);
        assert!(
            d.reason.starts_with("unreadable `meta.json`"),
            "{}",
            d.reason
        );
        assert!(d.bytes >= 50_000);

        let usage = store.du().unwrap();
        assert_eq!((usage.entries, usage.damaged), (1, 1));
        assert_eq!(usage.damaged_bytes, d.bytes);
        assert!(usage.total() >= usage.entry_bytes() + d.bytes);

        // A prune whose policy removes nothing else still removes it.
        // An entry of a newer kiln sharing the store is left alone.
        let newer = key(3);
        drop(put(&store, &newer, None, &base, 10));
        let path = store.entry_dir(&newer).join(META_FILE);
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        v["schema"] = serde_json::json!(META_SCHEMA + 1);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, v.to_string()).unwrap();
        assert_eq!(store.listing().unwrap().damaged.len(), 1);

        let report = store.prune(&ANY_PRUNE).unwrap();
        assert!(report.removed.is_empty());
        assert_eq!(report.removed_damaged.len(), 1);
        assert!(store.entry_dir(&newer).exists());
        assert_eq!(report.removed_damaged[0].key, bad);
        assert_eq!(report.freed_bytes, d.bytes);
        assert!(!store.entry_dir(&bad).exists());
        assert!(store.lookup(&good).unwrap().is_some());
        assert!(store.listing().unwrap().damaged.is_empty());
        assert!(tmp_is_empty(&store));
    }

    #[test]
    fn prune_removes_entries_whose_parent_chain_loops() {
        let (_dir, store, base) = setup();
        let (own, a, b, child, fine) = (key(1), key(2), key(3), key(4), key(5));
        // own ← own; a ← b ← a; child → a; fine is a normal root entry.
        drop(put(&store, &own, Some(&own), &base, 10));
        drop(put(&store, &a, Some(&b), &base, 10));
        drop(put(&store, &b, Some(&a), &base, 10));
        drop(put(&store, &child, Some(&a), &base, 10));
        drop(put(&store, &fine, None, &base, 10));

        let listing = store.listing().unwrap();
        let live: Vec<&CacheKey> = listing.entries.iter().map(|e| &e.entry.key).collect();
        assert_eq!(live, vec![&fine]);
        let reason = |k: &CacheKey| {
            listing
                .damaged
                .iter()
                .find(|d| d.key == *k)
                .map(|d| d.reason.clone())
                .unwrap()
        };
        assert_eq!(
            reason(&own),
            format!("its parent chain loops: {} → {}", own.short(), own.short())
        );
        assert!(reason(&a).contains("loops"), "{}", reason(&a));
        assert!(reason(&b).contains("loops"), "{}", reason(&b));
        assert!(reason(&child).contains("loops"), "{}", reason(&child));

        let report = store.prune(&ANY_PRUNE).unwrap();
        assert_eq!(report.removed_damaged.len(), 4, "{report:?}");
        assert_eq!(report.remaining, 1);
        let left: Vec<CacheKey> = store
            .ls()
            .unwrap()
            .into_iter()
            .map(|e| e.entry.key)
            .collect();
        assert_eq!(left, vec![fine]);
    }

    #[test]
    fn a_damaged_entry_in_use_is_kept() {
        let (_dir, store, base) = setup();
        let k = key(1);
        let lease = put(&store, &k, None, &base, 10);
        truncate_meta(&store, &k);
        let report = store.prune(&ANY_PRUNE).unwrap();
        assert!(report.removed_damaged.is_empty());
        assert_eq!(report.kept_in_use, vec![k.clone()]);
        drop(lease);
        assert_eq!(store.prune(&ANY_PRUNE).unwrap().removed_damaged.len(), 1);
    }

    #[test]
    fn read_only_commands_on_a_missing_store_create_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("nonexistent").join("x").join("steps");
        assert!(Store::open_existing(&root).unwrap().is_none());
        assert!(!dir.path().join("nonexistent").exists());

        // An existing store without a lock file: ls, du and lookup make none.
        fs::create_dir_all(root.join(ENTRIES)).unwrap();
        let store = Store::open_existing(&root).unwrap().unwrap();
        assert!(store.listing().unwrap().entries.is_empty());
        assert_eq!(store.du().unwrap(), Usage::default());
        assert!(store.lookup(&key(1)).unwrap().is_none());
        let names: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(ENTRIES)]);
    }

    #[test]
    fn a_lease_on_a_pruned_entry_fails() {
        let (_dir, store, base) = setup();
        drop(put(&store, &key(1), None, &base, 10));
        let entry = store.lookup(&key(1)).unwrap().unwrap();
        store
            .prune(&PrunePolicy {
                max_size: Some(0),
                older_than: None,
            })
            .unwrap();
        assert!(matches!(store.lease(&entry), Err(StoreError::Gone { .. })));
    }

    #[test]
    fn the_secret_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = store.secret().unwrap();
        assert_eq!(store.secret().unwrap(), first);
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.secret().unwrap(), first);
        let mode = fs::metadata(dir.path().join(SECRET)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let other = Store::open(&dir.path().join("other")).unwrap();
        assert_ne!(other.secret().unwrap(), first);
    }

    #[test]
    fn root_in_ends_in_steps() {
        let root = root_in(Path::new("cache"));
        assert!(root.ends_with("steps"), "{}", root.display());
    }
}
