//! Facts about the host, gathered cheaply: memory from `/proc/meminfo`,
//! free space (`statvfs`) where a build writes, the QEMU binaries (`PATH`,
//! `--version`, `-machine help`, `-accel help`), `qemu-img`, the KVM probe
//! verdict (cached per host boot by `kiln-qemu`), free ports, programs on
//! `PATH`, firmware files.
//!
//! Every QEMU query runs concurrently with the others and with the probe,
//! each with a deadline; nothing here sleeps. What QEMU and `qemu-img` say
//! about themselves is cached next to the probe's verdict, keyed by the
//! binary's identity, so once both caches are warm a collection runs no
//! program at all and takes milliseconds; cold (probe cached) it takes a
//! few hundred milliseconds, most of it QEMU starting to print its
//! machine list.

use std::ffi::CString;
use std::io;
use std::net::{IpAddr, TcpListener, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_qemu::accel::{ProbeOptions, ProbeReport};
use kiln_qemu::firmware::{Firmware, arch_of_binary, find_uefi_firmware};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};

use super::demand::Demand;
use super::packages::OsRelease;
use super::qemu_info::{
    MachineList, ToolVersion, parse_accel_help, parse_machine_help, parse_version,
};

/// Why a fact could not be gathered.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("`{}` has no `MemTotal`/`MemAvailable` lines", path.display())]
    Meminfo { path: PathBuf },
    #[error("cannot measure free space of `{}` (at `{}`): {source}", dir.display(), probed.display())]
    Statvfs {
        dir: PathBuf,
        probed: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("`{program}` is not on PATH")]
    NotOnPath { program: String },
    #[error(transparent)]
    Exec(#[from] kiln_exec::ExecError),
    #[error("cannot make sense of what `{argv}` printed: {output:?}")]
    Unparsed { argv: String, output: String },
}

impl Serialize for PreflightError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MemInfo {
    pub total_kib: u64,
    pub available_kib: u64,
    /// `MemAvailable` was missing (kernels before 3.14) and is estimated
    /// as `MemFree + Buffers + Cached`.
    pub estimated: bool,
}

impl MemInfo {
    pub fn available_bytes(&self) -> u64 {
        self.available_kib.saturating_mul(1024)
    }
    pub fn total_bytes(&self) -> u64 {
        self.total_kib.saturating_mul(1024)
    }
}

/// Parse `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let mut total = None;
    let mut available = None;
    let mut free = 0u64;
    let mut buffers = 0u64;
    let mut cached = 0u64;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(n) = words.next().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        let kib = match words.next() {
            Some("kB") | None => n,
            Some(_) => continue,
        };
        match key {
            "MemTotal" => total = Some(kib),
            "MemAvailable" => available = Some(kib),
            "MemFree" => free = kib,
            "Buffers" => buffers = kib,
            "Cached" => cached = kib,
            _ => {}
        }
    }
    let total_kib = total?;
    Some(match available {
        Some(available_kib) => MemInfo {
            total_kib,
            available_kib,
            estimated: false,
        },
        None => MemInfo {
            total_kib,
            available_kib: free + buffers + cached,
            estimated: true,
        },
    })
}

/// Free space of the filesystem a directory is (or will be) on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FsSpace {
    /// The nearest existing ancestor of the directory, measured.
    pub probed: PathBuf,
    /// `st_dev`: directories on one filesystem share it.
    pub device: u64,
    pub mount_point: Option<PathBuf>,
    pub fs_type: Option<String>,
    /// Bytes an unprivileged user may still write (`f_bavail`).
    pub available_bytes: u64,
    pub total_bytes: u64,
}

/// A directory and its filesystem's free space.
#[derive(Clone, Debug, Serialize)]
pub struct FsFact {
    pub dir: PathBuf,
    pub space: Result<FsSpace, PreflightError>,
}

/// What a QEMU system emulator says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuBinary {
    pub path: PathBuf,
    pub version: Option<ToolVersion>,
    pub machines: MachineList,
    pub accels: Vec<String>,
    /// Queries that failed (the binary exists; some answer is missing).
    pub problems: Vec<String>,
    /// Read from kiln's cache (same file, size, times and inode as when
    /// it was queried) instead of running the binary.
    #[serde(default)]
    pub cached: bool,
}

/// A QEMU binary by the name a template or the doctor asked for.
#[derive(Clone, Debug, Serialize)]
pub struct QemuFact {
    pub name: String,
    pub binary: Result<QemuBinary, PreflightError>,
}

/// `qemu-img` on this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuImg {
    pub path: PathBuf,
    pub version: Option<ToolVersion>,
    #[serde(default)]
    pub cached: bool,
}

/// The first free port of a range, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortFact {
    pub bind: String,
    pub min: u16,
    pub max: u16,
    pub free: Option<u16>,
    /// Ports tried and found in use before the first free one (all of the
    /// range when none is free).
    pub in_use: u32,
    /// Binding failed for another reason than "in use" (address not on
    /// this host, permission): the scan stopped there.
    pub error: Option<String>,
}

/// A program looked up on `PATH`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgramFact {
    pub name: String,
    pub path: Option<PathBuf>,
}

/// What is at a demanded path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FileState {
    File {
        bytes: u64,
    },
    Directory,
    /// A block or character device, a socket, …
    Other,
    Missing,
    /// Present but not readable by this user.
    Unreadable {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileFact {
    pub path: PathBuf,
    pub state: FileState,
}

/// UEFI firmware found for an architecture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UefiFact {
    pub arch: String,
    pub firmware: Option<Firmware>,
}

/// How long a part of the collection took.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timing {
    pub part: String,
    pub ms: f64,
}

/// Everything preflight knows about the host.
#[derive(Clone, Debug, Serialize)]
pub struct HostFacts {
    /// `std::env::consts::ARCH` (`x86_64`).
    pub arch: String,
    pub os: Option<OsRelease>,
    pub memory: Result<MemInfo, PreflightError>,
    pub filesystems: Vec<FsFact>,
    pub qemu: Vec<QemuFact>,
    /// Every `qemu-system-*` on `PATH`.
    pub installed_emulators: Vec<String>,
    pub qemu_img: Result<QemuImg, PreflightError>,
    /// The KVM verdict; `None` when the probe was not run.
    pub kvm: Option<ProbeReport>,
    /// Why the probe was not run.
    pub kvm_not_probed: Option<String>,
    pub ports: Vec<PortFact>,
    pub programs: Vec<ProgramFact>,
    pub files: Vec<FileFact>,
    pub uefi: Vec<UefiFact>,
    pub timings: Vec<Timing>,
    /// Wall time of the whole collection.
    pub took_ms: f64,
}

/// What to collect besides what the demands need.
#[derive(Clone, Debug)]
pub struct CollectOptions {
    /// Run the KVM probe with these options (cached per host boot);
    /// `None` skips it.
    pub probe: Option<ProbeOptions>,
    pub meminfo: PathBuf,
    pub os_release: PathBuf,
    pub mountinfo: PathBuf,
    /// QEMU binaries to query besides the demanded ones.
    pub binaries: Vec<String>,
    /// Directories whose free space to report besides the demanded ones.
    pub dirs: Vec<PathBuf>,
    /// Architectures whose UEFI firmware to look up besides demanded ones.
    pub firmware_arches: Vec<String>,
    /// Deadline of each QEMU query.
    pub command_timeout: Duration,
    /// Where what QEMU binaries and `qemu-img` said about themselves is
    /// kept, keyed by the file's identity (path, size, times, inode), so a
    /// second collection runs none of them; `None` disables it.
    pub cache_dir: Option<PathBuf>,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            probe: Some(ProbeOptions::default()),
            meminfo: PathBuf::from("/proc/meminfo"),
            os_release: PathBuf::from("/etc/os-release"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            binaries: Vec::new(),
            dirs: Vec::new(),
            firmware_arches: Vec::new(),
            command_timeout: Duration::from_secs(10),
            cache_dir: None,
        }
    }
}

impl CollectOptions {
    /// The defaults, with the KVM verdict and what QEMU said about itself
    /// kept under kiln's cache root (resolved once by the caller).
    pub fn cached_in(cache_root: &Path) -> CollectOptions {
        CollectOptions {
            probe: Some(ProbeOptions::cached_in(cache_root)),
            cache_dir: Some(cache_root.to_path_buf()),
            ..CollectOptions::default()
        }
    }

    /// What `kiln doctor` looks at without a template: the host's own
    /// emulator (`qemu-system-<arch>`), its UEFI firmware, and free space
    /// in the working directory and kiln's cache.
    pub fn doctor(cache_root: &Path) -> CollectOptions {
        let arch = std::env::consts::ARCH;
        CollectOptions {
            binaries: vec![format!("qemu-system-{arch}")],
            dirs: vec![PathBuf::from("."), cache_root.to_path_buf()],
            firmware_arches: vec![arch.to_string()],
            ..CollectOptions::cached_in(cache_root)
        }
    }
}

impl HostFacts {
    /// Gather the facts `demands` need (and those `options` add).
    pub async fn collect(demands: &[Demand], options: &CollectOptions) -> HostFacts {
        let start = Instant::now();
        let mut timings = Vec::new();

        // What to look at.
        let mut binaries: Vec<String> = Vec::new();
        for name in demands
            .iter()
            .filter_map(|d| d.qemu_binary.as_ref().map(|b| b.value.clone()))
            .chain(options.binaries.iter().cloned())
        {
            if !binaries.contains(&name) {
                binaries.push(name);
            }
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        for dir in demands
            .iter()
            .flat_map(|d| d.disks.iter().map(|k| k.dir.clone()))
            .chain(options.dirs.iter().cloned())
        {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        let mut arches: Vec<String> = Vec::new();
        for arch in demands
            .iter()
            .filter_map(|d| d.uefi.as_ref().map(|u| u.arch.clone()))
            .chain(options.firmware_arches.iter().cloned())
        {
            if !arches.contains(&arch) {
                arches.push(arch);
            }
        }

        // Slow parts, concurrently: QEMU queries and the probe.
        let probe = async {
            let t = Instant::now();
            let (report, skipped) = match &options.probe {
                None => (None, Some("the probe was not asked for".to_string())),
                Some(_) if !matches!(std::env::consts::ARCH, "x86_64") => (
                    None,
                    Some(format!(
                        "the probe boots an x86 guest; this host is {}",
                        std::env::consts::ARCH
                    )),
                ),
                Some(probe_options) => {
                    let mut probe_options = probe_options.clone();
                    if which(&probe_options.qemu_binary).is_none()
                        && let Some(other) = binaries.iter().find(|b| {
                            matches!(arch_of_binary(b), "x86_64" | "i386") && which(b).is_some()
                        })
                    {
                        probe_options.qemu_binary = other.clone();
                    }
                    (
                        Some(kiln_qemu::accel::probe_accelerator_with(&probe_options).await),
                        None,
                    )
                }
            };
            (report, skipped, t.elapsed())
        };
        let queries = async {
            let t = Instant::now();
            let facts = futures_util::future::join_all(binaries.iter().map(|name| {
                query_qemu(name, options.command_timeout, options.cache_dir.as_deref())
            }))
            .await;
            (facts, t.elapsed())
        };
        let img = async {
            let t = Instant::now();
            (
                query_qemu_img(options.command_timeout, options.cache_dir.as_deref()).await,
                t.elapsed(),
            )
        };
        let ((kvm, kvm_not_probed, probe_took), (qemu, qemu_took), (qemu_img, img_took)) =
            tokio::join!(probe, queries, img);
        timings.push(timing("kvm probe", probe_took));
        timings.push(timing("qemu queries", qemu_took));
        timings.push(timing("qemu-img --version", img_took));

        // Cheap parts.
        let t = Instant::now();
        let memory = read_meminfo(&options.meminfo);
        timings.push(timing("meminfo", t.elapsed()));

        let t = Instant::now();
        let mounts = std::fs::read_to_string(&options.mountinfo)
            .map(|text| parse_mountinfo(&text))
            .unwrap_or_default();
        let filesystems = dirs
            .iter()
            .map(|dir| FsFact {
                dir: dir.clone(),
                space: fs_space(dir, &mounts),
            })
            .collect();
        timings.push(timing("statvfs", t.elapsed()));

        let t = Instant::now();
        let mut ports: Vec<PortFact> = Vec::new();
        for p in demands.iter().flat_map(|d| d.ports.iter()) {
            if !ports
                .iter()
                .any(|f| f.bind == p.bind && f.min == p.min && f.max == p.max)
            {
                ports.push(free_port(&p.bind, p.min, p.max));
            }
        }
        timings.push(timing("ports", t.elapsed()));

        let t = Instant::now();
        let mut programs: Vec<ProgramFact> = Vec::new();
        for name in demands
            .iter()
            .flat_map(|d| d.programs.iter().map(|p| p.name.clone()))
        {
            if !programs.iter().any(|p| p.name == name) {
                programs.push(ProgramFact {
                    path: which(&name),
                    name,
                });
            }
        }
        let mut files: Vec<FileFact> = Vec::new();
        for path in demands
            .iter()
            .flat_map(|d| d.files.iter().map(|f| f.path.clone()))
        {
            if !files.iter().any(|f| f.path == path) {
                files.push(FileFact {
                    state: file_state(&path),
                    path,
                });
            }
        }
        let uefi = arches
            .iter()
            .map(|arch| UefiFact {
                arch: arch.clone(),
                firmware: find_uefi_firmware(arch),
            })
            .collect();
        let os = std::fs::read_to_string(&options.os_release)
            .ok()
            .map(|t| OsRelease::parse(&t));
        let installed_emulators = installed_emulators();
        timings.push(timing("files, programs, firmware", t.elapsed()));

        HostFacts {
            arch: std::env::consts::ARCH.to_string(),
            os,
            memory,
            filesystems,
            qemu,
            installed_emulators,
            qemu_img,
            kvm,
            kvm_not_probed,
            ports,
            programs,
            files,
            uefi,
            timings,
            took_ms: ms(start.elapsed()),
        }
    }

    pub fn qemu(&self, name: &str) -> Option<&QemuFact> {
        self.qemu.iter().find(|q| q.name == name)
    }

    pub fn filesystem(&self, dir: &Path) -> Option<&FsFact> {
        self.filesystems.iter().find(|f| f.dir == dir)
    }

    pub fn port(&self, bind: &str, min: u16, max: u16) -> Option<&PortFact> {
        self.ports
            .iter()
            .find(|p| p.bind == bind && p.min == min && p.max == max)
    }

    pub fn program(&self, name: &str) -> Option<&ProgramFact> {
        self.programs.iter().find(|p| p.name == name)
    }

    pub fn file(&self, path: &Path) -> Option<&FileFact> {
        self.files.iter().find(|f| f.path == path)
    }

    pub fn uefi(&self, arch: &str) -> Option<&UefiFact> {
        self.uefi.iter().find(|u| u.arch == arch)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn timing(part: &str, d: Duration) -> Timing {
    Timing {
        part: part.to_string(),
        ms: ms(d),
    }
}

fn read_meminfo(path: &Path) -> Result<MemInfo, PreflightError> {
    let text = std::fs::read_to_string(path).map_err(|e| PreflightError::Read {
        path: path.to_path_buf(),
        source: Arc::new(e),
    })?;
    parse_meminfo(&text).ok_or_else(|| PreflightError::Meminfo {
        path: path.to_path_buf(),
    })
}

/// A mount of `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub device: (u32, u32),
    pub mount_point: PathBuf,
    pub fs_type: String,
}

/// Parse `/proc/self/mountinfo` (`36 35 98:0 /mnt1 /mnt2 rw … - ext3
/// /dev/root rw`), decoding `\040`-style escapes in mount points.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let (major, minor) = fields.get(2)?.split_once(':')?;
            let mount_point = PathBuf::from(unescape_octal(fields.get(4)?));
            let dash = fields.iter().position(|f| *f == "-")?;
            let fs_type = fields.get(dash + 1)?.to_string();
            Some(Mount {
                device: (major.parse().ok()?, minor.parse().ok()?),
                mount_point,
                fs_type,
            })
        })
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The nearest existing ancestor of `dir` (itself if it exists), made
/// absolute against the working directory.
pub fn nearest_existing(dir: &Path) -> io::Result<PathBuf> {
    let absolute = std::path::absolute(dir)?;
    for candidate in absolute.ancestors() {
        if std::fs::metadata(candidate).is_ok() {
            return Ok(candidate.to_path_buf());
        }
    }
    Ok(PathBuf::from("/"))
}

fn fs_space(dir: &Path, mounts: &[Mount]) -> Result<FsSpace, PreflightError> {
    let err = |probed: &Path, e: io::Error| PreflightError::Statvfs {
        dir: dir.to_path_buf(),
        probed: probed.to_path_buf(),
        source: Arc::new(e),
    };
    let probed = nearest_existing(dir).map_err(|e| err(dir, e))?;
    let meta = std::fs::metadata(&probed).map_err(|e| err(&probed, e))?;
    let (available_bytes, total_bytes) = statvfs(&probed).map_err(|e| err(&probed, e))?;
    let device = meta.dev();
    let dev = (libc::major(device), libc::minor(device));
    let canonical = std::fs::canonicalize(&probed).unwrap_or_else(|_| probed.clone());
    // The longest mount point above the path, preferring the device's own.
    let best = |same_device: bool| {
        mounts
            .iter()
            .filter(|m| !same_device || m.device == dev)
            .filter(|m| canonical.starts_with(&m.mount_point))
            .max_by_key(|m| m.mount_point.as_os_str().len())
    };
    let mount = best(true).or_else(|| best(false));
    Ok(FsSpace {
        probed,
        device,
        mount_point: mount.map(|m| m.mount_point.clone()),
        fs_type: mount.map(|m| m.fs_type.clone()),
        available_bytes,
        total_bytes,
    })
}

/// `(f_bavail * f_frsize, f_blocks * f_frsize)` of the filesystem at `path`.
// The field types differ between targets (`u64` here, `u32` on some).
#[allow(clippy::unnecessary_cast)]
fn statvfs(path: &Path) -> io::Result<(u64, u64)> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path that outlives the call and
    // `stat` points to writable memory of the right type.
    let rc = unsafe { libc::statvfs(c.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled in `stat`.
    let stat = unsafe { stat.assume_init() };
    let frsize = stat.f_frsize as u64;
    Ok((
        (stat.f_bavail as u64).saturating_mul(frsize),
        (stat.f_blocks as u64).saturating_mul(frsize),
    ))
}

/// Try to bind each port of `min..=max` on `bind`, stopping at the first
/// free one.
pub fn free_port(bind: &str, min: u16, max: u16) -> PortFact {
    let mut fact = PortFact {
        bind: bind.to_string(),
        min,
        max,
        free: None,
        in_use: 0,
        error: None,
    };
    let ip: IpAddr = match bind.parse() {
        Ok(ip) => ip,
        Err(_) => match (bind, 0u16).to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(addr)) => addr.ip(),
            Ok(None) | Err(_) => {
                fact.error = Some(format!("`{bind}` is not an address of this host"));
                return fact;
            }
        },
    };
    for port in min..=max {
        match TcpListener::bind((ip, port)) {
            Ok(_listener) => {
                fact.free = Some(port);
                return fact;
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => fact.in_use += 1,
            Err(e) => {
                fact.error = Some(format!("cannot bind {ip}:{port}: {e}"));
                return fact;
            }
        }
    }
    fact
}

/// The path of a program: as is when it contains `/`, else the first
/// executable of that name on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

fn installed_emulators() -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("qemu-system-") && !found.contains(&name) {
                    found.push(name);
                }
            }
        }
    }
    found.sort();
    found
}

fn file_state(path: &Path) -> FileState {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => match std::fs::File::open(path) {
            Ok(_) => FileState::File { bytes: m.len() },
            Err(e) => FileState::Unreadable {
                reason: e.to_string(),
            },
        },
        Ok(m) if m.is_dir() => match std::fs::read_dir(path) {
            Ok(_) => FileState::Directory,
            Err(e) => FileState::Unreadable {
                reason: e.to_string(),
            },
        },
        Ok(_) => FileState::Other,
        Err(e) if e.kind() == io::ErrorKind::NotFound => FileState::Missing,
        Err(e) => FileState::Unreadable {
            reason: e.to_string(),
        },
    }
}

/// Run a program to completion within `timeout`; stdout on success.
async fn run_capture(
    program: &Path,
    args: &[&str],
    timeout: Duration,
) -> Result<String, PreflightError> {
    let program = kiln_exec::Program::new(program).args(args).timeout(timeout);
    Ok(program.run().await?)
}

/// The identity of a file for the cache: path, size, modification and
/// change times, inode. Replacing or upgrading the binary changes it.
fn file_identity(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    Some(format!(
        "{}|{}|{}.{}|{}.{}|{}",
        path.display(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.ino()
    ))
}

fn fnv64(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

#[derive(Serialize, Deserialize)]
struct CacheEntry<T> {
    key: String,
    value: T,
}

fn cache_file(dir: &Path, kind: &str, key: &str) -> PathBuf {
    dir.join(format!("preflight-{kind}-{:016x}.json", fnv64(key)))
}

fn cache_read<T: DeserializeOwned>(dir: Option<&Path>, kind: &str, key: &str) -> Option<T> {
    let text = std::fs::read_to_string(cache_file(dir?, kind, key)).ok()?;
    let entry: CacheEntry<T> = serde_json::from_str(&text).ok()?;
    (entry.key == key).then_some(entry.value)
}

/// Best effort: a cache that cannot be written is only slower.
fn cache_write<T: Serialize>(dir: Option<&Path>, kind: &str, key: &str, value: &T) {
    let Some(dir) = dir else {
        return;
    };
    let file = cache_file(dir, kind, key);
    let entry = CacheEntry {
        key: key.to_string(),
        value,
    };
    if let Ok(json) = serde_json::to_string(&entry)
        && std::fs::create_dir_all(dir).is_ok()
    {
        // Best effort: a fact that is not remembered is only probed again.
        let _ = kiln_fs::write_atomic(&file, json.as_bytes());
    }
}

/// Ask a QEMU system emulator for its version, machine types and
/// accelerators (three runs, concurrently), or take the answer from the
/// cache when the binary has not changed since.
pub async fn query_qemu(name: &str, timeout: Duration, cache_dir: Option<&Path>) -> QemuFact {
    let Some(path) = which(name) else {
        return QemuFact {
            name: name.to_string(),
            binary: Err(PreflightError::NotOnPath {
                program: name.to_string(),
            }),
        };
    };
    let key = file_identity(&path);
    if let Some(key) = &key
        && let Some(mut binary) = cache_read::<QemuBinary>(cache_dir, "qemu", key)
    {
        binary.cached = true;
        return QemuFact {
            name: name.to_string(),
            binary: Ok(binary),
        };
    }
    let (version, machines, accels) = tokio::join!(
        run_capture(&path, &["--version"], timeout),
        run_capture(&path, &["-machine", "help"], timeout),
        run_capture(&path, &["-accel", "help"], timeout),
    );
    let mut problems = Vec::new();
    let version = match version {
        Ok(text) => {
            let v = parse_version(&text);
            if v.is_none() {
                problems.push(format!(
                    "cannot read the version from `{} --version`",
                    path.display()
                ));
            }
            v
        }
        Err(e) => {
            // A binary that cannot even print its version is unusable.
            return QemuFact {
                name: name.to_string(),
                binary: Err(e),
            };
        }
    };
    let machines = match machines {
        Ok(text) => parse_machine_help(&text),
        Err(e) => {
            problems.push(e.to_string());
            MachineList::default()
        }
    };
    let accels = match accels {
        Ok(text) => parse_accel_help(&text),
        Err(e) => {
            problems.push(e.to_string());
            Vec::new()
        }
    };
    let binary = QemuBinary {
        path,
        version,
        machines,
        accels,
        problems,
        cached: false,
    };
    if let Some(key) = &key
        && binary.problems.is_empty()
    {
        cache_write(cache_dir, "qemu", key, &binary);
    }
    QemuFact {
        name: name.to_string(),
        binary: Ok(binary),
    }
}

async fn query_qemu_img(
    timeout: Duration,
    cache_dir: Option<&Path>,
) -> Result<QemuImg, PreflightError> {
    let path = which("qemu-img").ok_or_else(|| PreflightError::NotOnPath {
        program: "qemu-img".into(),
    })?;
    let key = file_identity(&path);
    if let Some(key) = &key
        && let Some(mut img) = cache_read::<QemuImg>(cache_dir, "qemu-img", key)
    {
        img.cached = true;
        return Ok(img);
    }
    let text = run_capture(&path, &["--version"], timeout).await?;
    let img = QemuImg {
        version: parse_version(&text),
        path,
        cached: false,
    };
    if let Some(key) = &key
        && img.version.is_some()
    {
        cache_write(cache_dir, "qemu-img", key, &img);
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_parsed_in_kib() {
        let m = parse_meminfo(
            "MemTotal:       24684084 kB\nMemFree:        10004744 kB\nMemAvailable:   21195936 kB\nBuffers:           32984 kB\n",
        )
        .unwrap();
        assert_eq!(m.total_kib, 24684084);
        assert_eq!(m.available_kib, 21195936);
        assert!(!m.estimated);
        assert_eq!(m.available_bytes(), 21195936 * 1024);
        // Old kernels: estimated.
        let m = parse_meminfo(
            "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\nSwapCached: 5 kB\n",
        )
        .unwrap();
        assert_eq!((m.available_kib, m.estimated), (310, true));
        assert!(parse_meminfo("nothing here").is_none());
    }

    #[test]
    fn mountinfo_is_parsed_with_escapes() {
        let mounts = parse_mountinfo(
            "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
             80 22 0:45 / /tmp/my\\040dir rw,relatime - tmpfs tmpfs rw,size=16384k\n",
        );
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[1].mount_point, PathBuf::from("/tmp/my dir"));
        assert_eq!(mounts[1].fs_type, "tmpfs");
        assert_eq!(mounts[0].device, (254, 0));
    }

    /// A stand-in for a QEMU binary: a shell script that answers the
    /// three queries and counts how often it ran.
    fn fake_qemu(dir: &Path, version: &str) -> PathBuf {
        let path = dir.join("qemu-system-fake");
        let count = dir.join("runs");
        let script = format!(
            "#!/bin/sh\necho run >> {count}\ncase \"$1\" in\n--version) echo 'QEMU emulator version {version} (test)';;\n-machine) printf 'Supported machines are:\\npc    Standard PC (alias of pc-9)\\npc-9  Standard PC (default)\\n';;\n-accel) printf 'Accelerators supported in QEMU binary:\\ntcg\\n';;\nesac\n",
            count = count.display()
        );
        std::fs::write(&path, script).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        perms.set_mode(0o755);
        std::fs::set_permissions(&path, perms).unwrap();
        path
    }

    fn runs(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("runs"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn qemu_answers_are_cached_until_the_binary_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let bin = fake_qemu(dir.path(), "9.1.0");
        let name = bin.to_str().unwrap();
        let timeout = Duration::from_secs(10);

        let first = query_qemu(name, timeout, Some(&cache))
            .await
            .binary
            .unwrap();
        assert!(!first.cached);
        assert_eq!(first.version.as_ref().unwrap().version, "9.1.0");
        assert_eq!(first.machines.default_machine().unwrap().name, "pc-9");
        assert_eq!(first.accels, vec!["tcg"]);
        assert_eq!(runs(dir.path()), 3);

        let second = query_qemu(name, timeout, Some(&cache))
            .await
            .binary
            .unwrap();
        assert!(second.cached);
        assert_eq!(second.machines, first.machines);
        assert_eq!(runs(dir.path()), 3, "the cached answer ran the binary");

        // An upgrade (a new file) is queried again.
        std::fs::remove_file(&bin).unwrap();
        fake_qemu(dir.path(), "9.2.10");
        let third = query_qemu(name, timeout, Some(&cache))
            .await
            .binary
            .unwrap();
        assert!(!third.cached);
        assert_eq!(third.version.unwrap().version, "9.2.10");
        assert_eq!(runs(dir.path()), 6);

        // Without a cache directory, every query runs.
        let _ = query_qemu(name, timeout, None).await.binary.unwrap();
        assert_eq!(runs(dir.path()), 9);
    }

    #[test]
    fn nearest_existing_walks_up() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        assert_eq!(nearest_existing(&deep).unwrap(), dir.path());
        assert_eq!(nearest_existing(dir.path()).unwrap(), dir.path());
    }
}
