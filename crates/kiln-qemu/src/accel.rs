//! The accelerator probe: is KVM there, may we open it, and does a real
//! guest run under it at hardware speed?
//!
//! Opening `/dev/kvm` and creating a VM is not enough: on hosts whose
//! nested virtualization does not work (seen here: a PVM-based nested KVM),
//! `KVM_CREATE_VM` succeeds and a guest even starts, but every instruction
//! is emulated — a Linux kernel seems to hang right after "Probing EDD",
//! which is where it leaves real mode and starts real work. What was
//! measured on such a host with the smoke guest below:
//!
//! - SeaBIOS and real-mode code run, ~2 M instructions/s (TCG: ~300 M/s);
//! - a far jump into protected mode with the GDT in the BIOS ROM region
//!   never completes (the GDT is therefore copied to RAM first);
//! - legacy 32-bit PAE paging triple-faults; long mode with paging works;
//! - a 10 M-iteration loop in long mode takes ~10 s (TCG: ~30 ms).
//!
//! So the probe boots a tiny guest ([`SMOKE_GUEST`], assembled from
//! `accel/smoke.asm`) as `-bios` under `-accel kvm`: it prints a marker per
//! stage on the serial port (real mode, protected mode, long mode with
//! paging), runs a 20 M-instruction workload with paging on, prints
//! `kiln-smoke-ok` and exits through `isa-debug-exit`. A working KVM does
//! all that in well under a second; the verdict is "works" only if it
//! finishes within the deadline. The verdict is cached per host boot
//! (`/proc/sys/kernel/random/boot_id`) and QEMU binary.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use crate::config::Accelerator;

/// The smoke guest's code (`accel/smoke.asm`, `nasm -f bin`), placed at the
/// start of a 64 KiB BIOS image.
pub const SMOKE_GUEST: &[u8] = &[
    0xfa, 0xba, 0xf8, 0x03, 0xb0, 0x52, 0xee, 0x31, 0xc0, 0x8e, 0xc0, 0x8c, 0xc8, 0x8e, 0xd8, 0xbe,
    0x18, 0x01, 0xbf, 0x00, 0x05, 0xb9, 0x26, 0x00, 0xfc, 0xf3, 0xa4, 0x31, 0xc0, 0x8e, 0xd8, 0x66,
    0x0f, 0x01, 0x16, 0x20, 0x05, 0x0f, 0x20, 0xc0, 0x66, 0x25, 0xff, 0xff, 0xff, 0x9f, 0x66, 0x83,
    0xc8, 0x01, 0x0f, 0x22, 0xc0, 0x66, 0xea, 0x3d, 0x00, 0x0f, 0x00, 0x08, 0x00, 0x66, 0xb8, 0x10,
    0x00, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0xbc, 0x00, 0x80, 0x00, 0x00, 0x66, 0xba, 0xf8, 0x03,
    0xb0, 0x50, 0xee, 0xbf, 0x00, 0x10, 0x00, 0x00, 0xb9, 0x00, 0x10, 0x00, 0x00, 0x31, 0xc0, 0xf3,
    0xab, 0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x40, 0x00, 0x00, 0xc7, 0x05, 0x00, 0x40, 0x00,
    0x00, 0x03, 0x30, 0x00, 0x00, 0xbf, 0x00, 0x30, 0x00, 0x00, 0xb8, 0x83, 0x00, 0x00, 0x00, 0xb9,
    0x08, 0x00, 0x00, 0x00, 0x89, 0x07, 0x05, 0x00, 0x00, 0x20, 0x00, 0x83, 0xc7, 0x08, 0xe2, 0xf4,
    0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f, 0x22, 0xe0, 0xb8, 0x00, 0x10, 0x00, 0x00, 0x0f, 0x22,
    0xd8, 0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x0f, 0x30, 0x0f,
    0x20, 0xc0, 0x0d, 0x00, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0, 0xea, 0xc1, 0x00, 0x0f, 0x00, 0x18,
    0x00, 0x66, 0xba, 0xf8, 0x03, 0xb0, 0x4c, 0xee, 0xb9, 0x80, 0x96, 0x98, 0x00, 0x48, 0xff, 0xc9,
    0x75, 0xfb, 0xbf, 0x00, 0x00, 0x80, 0x00, 0xb9, 0x00, 0x00, 0x08, 0x00, 0x31, 0xc0, 0xf3, 0x48,
    0xab, 0x66, 0xba, 0xf8, 0x03, 0xb0, 0x57, 0xee, 0x48, 0x8d, 0x35, 0x12, 0x00, 0x00, 0x00, 0xac,
    0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8, 0x66, 0xba, 0xf4, 0x00, 0xb0, 0x10, 0xee, 0xf4, 0xeb,
    0xfd, 0x0a, 0x6b, 0x69, 0x6c, 0x6e, 0x2d, 0x73, 0x6d, 0x6f, 0x6b, 0x65, 0x2d, 0x6f, 0x6b, 0x0a,
    0x00, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xaf, 0x00, 0x1f, 0x00, 0x00, 0x05, 0x00, 0x00,
];

/// What the guest prints when it is done.
pub const SMOKE_OK: &str = "kiln-smoke-ok";

/// How much slower a build runs under TCG than under KVM, as an estimate
/// for warnings (boot, package installs and compression of a cloud image:
/// roughly 5–10×; the fixture boots to SSH in ~55 s under TCG).
pub const TCG_SLOWDOWN: f64 = 8.0;

/// The default deadline of the smoke guest under KVM.
pub const SMOKE_DEADLINE: Duration = Duration::from_secs(4);

/// A stage the smoke guest reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmokeStage {
    RealMode,
    ProtectedMode,
    LongMode,
    Workload,
    Done,
}

impl SmokeStage {
    fn from_marker(b: u8) -> Option<SmokeStage> {
        Some(match b {
            b'R' => SmokeStage::RealMode,
            b'P' => SmokeStage::ProtectedMode,
            b'L' => SmokeStage::LongMode,
            b'W' => SmokeStage::Workload,
            _ => return None,
        })
    }

    pub fn describe(self) -> &'static str {
        match self {
            SmokeStage::RealMode => "real mode",
            SmokeStage::ProtectedMode => "protected mode",
            SmokeStage::LongMode => "long mode with paging",
            SmokeStage::Workload => "the workload",
            SmokeStage::Done => "the end",
        }
    }
}

/// The verdict on KVM.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum AccelVerdict {
    /// `kvm: works` — the smoke guest ran to the end in `elapsed_ms`.
    Works { elapsed_ms: u64 },
    /// `kvm: missing`.
    Missing { detail: String },
    /// `kvm: no permission` — join `group`.
    NoPermission {
        group: Option<String>,
        detail: String,
    },
    /// `kvm: present but guests do not run (nested virtualization not working)`.
    GuestsDoNotRun {
        /// The last stage reached, with the time since QEMU started.
        reached: Option<(SmokeStage, u64)>,
        detail: String,
    },
    /// The probe itself could not run (no QEMU, …).
    ProbeFailed { detail: String },
}

impl AccelVerdict {
    pub fn works(&self) -> bool {
        matches!(self, AccelVerdict::Works { .. })
    }

    /// The one-line verdict as `kiln doctor` prints it.
    pub fn summary(&self) -> String {
        match self {
            AccelVerdict::Works { elapsed_ms } => {
                format!("kvm: works (smoke guest ran in {elapsed_ms} ms)")
            }
            AccelVerdict::Missing { detail } => format!("kvm: missing ({detail})"),
            AccelVerdict::NoPermission { group, detail } => match group {
                Some(g) => format!(
                    "kvm: no permission ({detail}; join the `{g}` group: `sudo usermod -aG {g} $USER`, then log in again)"
                ),
                None => format!("kvm: no permission ({detail})"),
            },
            AccelVerdict::GuestsDoNotRun { detail, .. } => {
                format!(
                    "kvm: present but guests do not run (nested virtualization not working): {detail}"
                )
            }
            AccelVerdict::ProbeFailed { detail } => {
                format!("kvm: unknown (the probe failed: {detail})")
            }
        }
    }
}

/// The probe's result.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProbeReport {
    pub verdict: AccelVerdict,
    pub boot_id: Option<String>,
    pub qemu_binary: String,
    /// Taken from the cache rather than probed now.
    pub cached: bool,
    pub took_ms: u64,
}

/// Probe options.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    pub qemu_binary: String,
    pub deadline: Duration,
    /// Directory of the verdict cache; `None` disables caching.
    pub cache_dir: Option<PathBuf>,
    pub kvm_device: PathBuf,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            qemu_binary: "qemu-system-x86_64".into(),
            deadline: SMOKE_DEADLINE,
            cache_dir: None,
            kvm_device: PathBuf::from("/dev/kvm"),
        }
    }
}

impl ProbeOptions {
    /// The defaults, with the verdict cached in `dir` (kiln's cache root,
    /// resolved once by the caller: `KILN_CACHE_DIR`, `PACKER_CACHE_DIR`…).
    pub fn cached_in(dir: &Path) -> ProbeOptions {
        ProbeOptions {
            cache_dir: Some(dir.to_path_buf()),
            ..ProbeOptions::default()
        }
    }
}

/// How the accelerator was decided.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AccelDecision {
    pub accelerator: Accelerator,
    /// A loud warning for the user (TCG fallback).
    pub warning: Option<String>,
    /// Estimated slowdown against KVM, when falling back to TCG.
    pub slowdown: Option<f64>,
}

/// Decide the accelerator: the template's choice, refused when it is KVM
/// and KVM does not run guests; unset → KVM when it works, else TCG with a
/// warning.
pub fn decide_accelerator(
    configured: Option<Accelerator>,
    verdict: &AccelVerdict,
) -> Result<AccelDecision, String> {
    match configured {
        Some(Accelerator::Kvm) if !verdict.works() => Err(format!(
            "`accelerator = \"kvm\"` cannot work on this host: {}",
            verdict.summary()
        )),
        Some(a) => Ok(AccelDecision {
            accelerator: a,
            warning: None,
            slowdown: None,
        }),
        None if verdict.works() => Ok(AccelDecision {
            accelerator: Accelerator::Kvm,
            warning: None,
            slowdown: None,
        }),
        None => Ok(AccelDecision {
            accelerator: Accelerator::Tcg,
            warning: Some(format!(
                "{}; using TCG (software emulation): expect the build to run about {TCG_SLOWDOWN:.0}× slower",
                verdict.summary()
            )),
            slowdown: Some(TCG_SLOWDOWN),
        }),
    }
}

/// The 64 KiB BIOS image of the smoke guest.
pub fn smoke_rom() -> Vec<u8> {
    let mut rom = vec![0xffu8; 65536];
    rom[..SMOKE_GUEST.len()].copy_from_slice(SMOKE_GUEST);
    // Reset vector: jmp far f000:0000.
    rom[0xfff0..0xfff5].copy_from_slice(&[0xea, 0x00, 0x00, 0x00, 0xf0]);
    rom
}

const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
const KVM_CREATE_VM: libc::c_ulong = 0xAE01;

/// Check `/dev/kvm`: exists, opens read-write, speaks API 12, creates a VM.
pub fn check_kvm_device(device: &Path) -> Result<(), AccelVerdict> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AccelVerdict::Missing {
                detail: format!(
                    "{} does not exist: the kvm module is not loaded, the CPU lacks VT-x/AMD-V, or nested virtualization is off",
                    device.display()
                ),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(AccelVerdict::NoPermission {
                group: device_group(device),
                detail: format!("cannot open {}: {e}", device.display()),
            });
        }
        Err(e) => {
            return Err(AccelVerdict::Missing {
                detail: format!("cannot open {}: {e}", device.display()),
            });
        }
    };
    let fd = file.as_raw_fd();
    // SAFETY: KVM_GET_API_VERSION takes no argument and only returns an int;
    // `fd` is a valid open descriptor owned by `file` for this call.
    let version = unsafe { libc::ioctl(fd, KVM_GET_API_VERSION, 0) };
    if version != 12 {
        return Err(AccelVerdict::Missing {
            detail: format!(
                "{} answers KVM API version {version}, expected 12",
                device.display()
            ),
        });
    }
    // SAFETY: KVM_CREATE_VM takes the machine type (0) by value and returns a
    // new descriptor, which is closed right below; `fd` is valid.
    let vm = unsafe { libc::ioctl(fd, KVM_CREATE_VM, 0) };
    if vm < 0 {
        let e = std::io::Error::last_os_error();
        return Err(AccelVerdict::GuestsDoNotRun {
            reached: None,
            detail: format!("KVM_CREATE_VM failed: {e}"),
        });
    }
    // SAFETY: `vm` is a descriptor we own and close exactly once.
    unsafe {
        libc::close(vm);
    }
    Ok(())
}

/// The group owning the device (the one to join), from `/etc/group`.
fn device_group(device: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let gid = std::fs::metadata(device).ok()?.gid();
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut parts = line.split(':');
        let name = parts.next()?;
        let _ = parts.next();
        let id: u32 = parts.next()?.parse().ok()?;
        (id == gid).then(|| name.to_string())
    })
}

/// Run the smoke guest under `accel` and judge it.
pub async fn run_smoke_guest(qemu_binary: &str, accel: &str, deadline: Duration) -> AccelVerdict {
    let dir = match tempfile_dir() {
        Ok(d) => d,
        Err(e) => return AccelVerdict::ProbeFailed { detail: e },
    };
    let rom = dir.join("kiln-smoke.rom");
    if let Err(e) = std::fs::write(&rom, smoke_rom()) {
        let _ = std::fs::remove_dir_all(&dir);
        return AccelVerdict::ProbeFailed {
            detail: format!("cannot write {}: {e}", rom.display()),
        };
    }
    let verdict = smoke(qemu_binary, accel, &rom, deadline).await;
    let _ = std::fs::remove_dir_all(&dir);
    verdict
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let base = std::env::temp_dir();
    for i in 0..100u32 {
        let dir = base.join(format!("kiln-probe-{}-{i}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err("cannot create a temporary directory".into())
}

async fn smoke(qemu_binary: &str, accel: &str, rom: &Path, deadline: Duration) -> AccelVerdict {
    let rom_arg = rom.display().to_string();
    let machine = format!("pc,accel={accel}");
    let args = [
        "-nodefaults",
        "-machine",
        &machine,
        "-m",
        "32",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-no-reboot",
        "-bios",
        &rom_arg,
    ];
    let mut child = match tokio::process::Command::new(qemu_binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return AccelVerdict::ProbeFailed {
                detail: format!("cannot run {qemu_binary}: {e}"),
            };
        }
    };
    let start = Instant::now();
    let mut out = match child.stdout.take() {
        Some(o) => o,
        None => {
            return AccelVerdict::ProbeFailed {
                detail: "no stdout".into(),
            };
        }
    };
    let mut seen = Vec::new();
    let mut reached: Option<(SmokeStage, u64)> = None;
    let until = start + deadline;
    let mut buf = [0u8; 256];
    let finished = loop {
        match tokio::time::timeout_at(until, out.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break false,
            Ok(Ok(n)) => {
                for &b in &buf[..n] {
                    if let Some(stage) = SmokeStage::from_marker(b)
                        && seen.iter().all(|c: &u8| c.is_ascii_uppercase())
                    {
                        reached = Some((stage, start.elapsed().as_millis() as u64));
                    }
                    seen.push(b);
                }
                if String::from_utf8_lossy(&seen).contains(SMOKE_OK) {
                    break true;
                }
            }
        }
    };
    let elapsed = start.elapsed();
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ =
            tokio::time::timeout(Duration::from_millis(300), e.read_to_string(&mut stderr)).await;
    }
    let stderr = stderr.trim().lines().last().unwrap_or("").to_string();
    if finished {
        return AccelVerdict::Works {
            elapsed_ms: elapsed.as_millis() as u64,
        };
    }
    if stderr.contains("failed to initialize kvm") || stderr.contains("Could not access KVM") {
        return AccelVerdict::Missing { detail: stderr };
    }
    let detail = match reached {
        None => format!(
            "the smoke guest printed nothing within {deadline:?} under `-accel {accel}`{}",
            if stderr.is_empty() {
                String::new()
            } else {
                format!(" (QEMU: {stderr})")
            }
        ),
        Some((stage, ms)) => format!(
            "the smoke guest reached {} after {ms} ms but did not finish a workload of milliseconds within {deadline:?}: instructions are emulated, not run by the CPU",
            stage.describe()
        ),
    };
    AccelVerdict::GuestsDoNotRun { reached, detail }
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Key of the cache: host boot, QEMU binary and its identity.
fn cache_key(boot_id: &str, qemu_binary: &str) -> String {
    let resolved = which(qemu_binary).unwrap_or_else(|| PathBuf::from(qemu_binary));
    let stamp = std::fs::metadata(&resolved)
        .ok()
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{}:{}", m.size(), m.mtime())
        })
        .unwrap_or_default();
    format!("{boot_id}|{}|{stamp}", resolved.display())
}

fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

fn fnv64(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CacheEntry {
    key: String,
    report: ProbeReport,
}

/// Probe KVM: the device, then the smoke guest. Only verdicts about the
/// host (not probe failures) are cached.
pub async fn probe_accelerator_with(options: &ProbeOptions) -> ProbeReport {
    let start = Instant::now();
    let boot = boot_id();
    let cache_file = match (&options.cache_dir, &boot) {
        (Some(dir), Some(b)) => {
            let key = cache_key(b, &options.qemu_binary);
            Some((
                dir.join(format!("accel-probe-{:016x}.json", fnv64(&key))),
                key,
            ))
        }
        _ => None,
    };
    if let Some((file, key)) = &cache_file
        && let Ok(text) = std::fs::read_to_string(file)
        && let Ok(entry) = serde_json::from_str::<CacheEntry>(&text)
        && entry.key == *key
    {
        let mut report = entry.report;
        report.cached = true;
        return report;
    }
    let verdict = match check_kvm_device(&options.kvm_device) {
        Err(v) => v,
        Ok(()) => run_smoke_guest(&options.qemu_binary, "kvm", options.deadline).await,
    };
    let report = ProbeReport {
        verdict,
        boot_id: boot,
        qemu_binary: options.qemu_binary.clone(),
        cached: false,
        took_ms: start.elapsed().as_millis() as u64,
    };
    if let Some((file, key)) = cache_file
        && !matches!(report.verdict, AccelVerdict::ProbeFailed { .. })
    {
        let entry = CacheEntry {
            key,
            report: report.clone(),
        };
        if let Ok(json) = serde_json::to_string_pretty(&entry)
            && let Some(dir) = file.parent()
            && std::fs::create_dir_all(dir).is_ok()
        {
            // Best effort: a probe that is not remembered only runs again.
            let _ = kiln_fs::write_atomic(&file, json.as_bytes());
        }
    }
    report
}

#[cfg(test)]
mod tests;
