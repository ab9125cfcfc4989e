//! Preflight: the host against what a build demands, before anything starts.
//!
//! Three parts, so the checks stay pure and testable:
//!
//! 1. [`Demand`] — what a build will need (memory, disks, ports, the QEMU
//!    binary, machine type, accelerator, CPU model, files, programs), each
//!    number with the place it was set ([`Figure`]). The planner fills it,
//!    usually with [`Demand::from_qemu`].
//! 2. [`HostFacts::collect`] — what the host has: `MemAvailable`, free space
//!    where the build writes, QEMU binaries (version, machine types,
//!    accelerators), `qemu-img`, the KVM probe's verdict (cached per host
//!    boot by `kiln-qemu`), free ports, programs on `PATH`, firmware files.
//!    Milliseconds with warm caches (the probe's verdict per host boot, the
//!    QEMU answers per binary); a few hundred without the QEMU answers.
//! 3. [`check`] — demands against facts, a list of [`Check`]s. Pure.
//!
//! [`doctor_checks`] adds the host half that `kiln doctor` prints without a
//! template; [`fix_plan`] and [`apply_fix`] install missing packages with
//! apt on Debian/Ubuntu.
//!
//! ```no_run
//! # async fn f(config: &kiln_qemu::QemuConfig) {
//! use kiln_build::preflight::*;
//! let demand = Demand::from_qemu("qemu.cloudimg", config, std::path::Path::new("."), &|_| None);
//! let facts = HostFacts::collect(std::slice::from_ref(&demand), &CollectOptions::default()).await;
//! let checks = check(std::slice::from_ref(&demand), &facts);
//! if worst(&checks) == Status::Fail { /* exit 3: refused by preflight */ }
//! # }
//! ```
//!
//! # JSON
//!
//! `kiln doctor --json` and `kiln build` print one object per check:
//!
//! ```json
//! {"id": "memory", "status": "fail",
//!  "detail": "source qemu.cloudimg asks for memory = 65536 MiB (var.memory, set in VAR03.pkr.hcl:4), plus 1280 MiB for QEMU itself under TCG (1024 MiB translation cache + 256 MiB): 65.2 GiB in all; this host has 15.1 GiB available (of 23.5 GiB)",
//!  "fix": "Try -var memory=8192, or run on a larger host."}
//! ```
//!
//! `status` is `ok`, `warn` or `fail`; `fix` is `null` when nothing needs
//! doing. A build is refused (exit code 3) when any check fails; warnings
//! are printed and the build goes on. Ids are stable; a check id may
//! appear several times (one per file, port range, build…).
//!
//! # Checks
//!
//! | id | checks | fails when | fix |
//! |---|---|---|---|
//! | `qemu.binary` | the QEMU emulator (`qemu_binary`, default `qemu-system-x86_64`): on `PATH`, its version, machine types, accelerators | it is not on `PATH` or does not run | install its package (`qemu-system-x86`, `qemu-system-arm`, …; `--fix` does it); for unknown names, correct `qemu_binary` |
//! | `qemu.img` | `qemu-img` and its version (doctor) | it is missing | install `qemu-utils` |
//! | `kvm` | the probe's verdict (doctor): `kvm: works`, `kvm: missing`, `kvm: no permission (join group kvm)`, `kvm: present but guests do not run (nested virtualization not working)` — a smoke guest must finish under KVM, not just `/dev/kvm` open | never (warns: builds fall back to TCG) | load the module / join the group / enable nested virtualization, or use TCG |
//! | `accelerator` | what the build asks for (`accelerator`, `accel=` in a `qemuargs` `-machine`, `-accel`, `-enable-kvm`) against the verdict and the binary's `-accel help` | `kvm` is asked for (without a fallback such as `kvm:tcg`) and KVM does not run guests; KVM for another architecture; an accelerator the binary lacks. Unset: warns that TCG will be used and how much slower (8×) | `accelerator = "tcg"`, or a host with working virtualization |
//! | `cpu_model` | `cpu_model = "host"` or `qemuargs` `-cpu host` | the build does not run under a working KVM (QEMU refuses `-cpu host` under TCG) | `-cpu max` / `cpu_model = "max"` |
//! | `machine_type` | `machine_type` (or the type of a `qemuargs` `-machine`) against `-machine help` | the binary lacks it; the check lists close names | one of the listed names |
//! | `memory` | the sum of `memory` of builds that run in parallel, plus QEMU's own overhead (256 MiB, plus the TCG translation cache — 1 GiB, or an eighth of host RAM when less — under TCG) against `MemAvailable` | the sum exceeds it (warns above 90%) | `-var memory=N` with N that fits, `-parallel-builds=1`, or a larger host |
//! | `disk` | per filesystem: `disk_size`, `disk_additional_size`, the compaction copy, outputs and cache (as the planner adds them) against free space (`statvfs` of the nearest existing parent) | what is written in full (downloads, copies, preallocated disks) exceeds free space; thin disks that could outgrow it only warn | free space, another `output_directory`, a smaller `disk_size` |
//! | `firmware` | UEFI firmware for `efi_boot` without explicit files (and, in doctor, for the host's architecture) | none of the known OVMF/AAVMF pairs is installed | install `ovmf` / `qemu-efi-aarch64` / `qemu-efi-arm`, or set `efi_firmware_code`/`efi_firmware_vars` |
//! | `file` | files the build reads before it starts: `firmware`, `efi_firmware_*`, a local `iso_url`, `cd_files`, `floppy_files`, `http_directory`, and every path a `qemuargs` `-drive file=`, `-bios`, `-kernel`, `-initrd`, `-pflash`, `-device loader,file=`, … names (except what the build creates itself) | the path does not exist, cannot be read, or is a file where a directory is needed (or the reverse) | install the package that ships it (e.g. `ovmf`), copy a firmware template (`OVMF_VARS.fd` from `/usr/share/OVMF/`), or fix the path |
//! | `port` | a free port in each range the build binds (SSH forward `host_port_min..=host_port_max` on 127.0.0.1, HTTP, VNC), by binding | every port of the range is in use, or the address cannot be bound | widen the range or free a port |
//! | `program` | programs on `PATH`: `qemu-img` (required), programs `shell-local` commands call (guessed from first words) | a required one is missing (shell-local ones only warn) | install the package named |
//! | `memory`, `disk` (doctor) | summaries: available memory, free space in the working directory and kiln's cache | never | — |
//!
//! # Measured
//!
//! QEMU's overhead: a Debian guest (`-m 1024`, 2 vCPUs) booted under TCG to
//! its login prompt had, outside the guest's RAM, 737 MiB of translation
//! cache and 175 MiB of everything else resident (from
//! `/proc/PID/smaps`); the cache keeps growing to its cap as more code is
//! translated and is never returned, so the check counts it in full.

mod check;
mod demand;
mod doctor;
mod host;
pub mod packages;
pub mod qemu_info;
pub mod qemuargs;

pub use check::{
    Check, CheckOptions, QEMU_BASE_OVERHEAD_MIB, Status, check, check_with, default_tcg_cache_mib,
    human_bytes, kvm_fix, kvm_phrase, kvm_sentence, worst,
};
pub use demand::{
    Demand, DiskDemand, Figure, FileDemand, Origin, PortDemand, ProgramDemand, UefiDemand,
    programs_in_shell,
};
pub use doctor::{
    AptInstall, AptRunner, FixError, FixReport, RanCommand, apply_fix, apply_fix_with,
    doctor_checks, fix_plan, install_argv,
};
pub use host::{
    CollectOptions, FileFact, FileState, FsFact, FsSpace, HostFacts, MemInfo, PortFact,
    PreflightError, ProgramFact, QemuBinary, QemuFact, QemuImg, Timing, UefiFact, free_port,
    nearest_existing, parse_meminfo, parse_mountinfo, query_qemu, which,
};
pub use packages::OsRelease;

#[cfg(test)]
mod tests;
