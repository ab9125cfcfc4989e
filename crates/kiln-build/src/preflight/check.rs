//! The checks: demands held against host facts. Pure: everything comes
//! from the [`Demand`]s and the [`HostFacts`] passed in.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_qemu::accel::{AccelVerdict, TCG_SLOWDOWN};
use kiln_qemu::firmware::arch_of_binary;
use serde::{Deserialize, Serialize};

use super::demand::{Demand, DiskDemand, FileDemand};
use super::host::{FileState, HostFacts};
use super::packages::{
    known_firmware_source, package_for_path, package_for_program, package_for_qemu_binary,
    uefi_package,
};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One verdict, as `kiln doctor --json` prints it:
/// `{"id": "memory", "status": "fail", "detail": "…", "fix": "…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// A stable id from the table in the module docs (`memory`, `kvm`, …).
    pub id: String,
    pub status: Status,
    /// What was found, with the numbers and where they were set.
    pub detail: String,
    /// What to do about it (`null` when nothing needs doing).
    pub fix: Option<String>,
    /// Debian/Ubuntu packages that fix it (for `kiln doctor --fix`).
    #[serde(skip)]
    pub packages: Vec<String>,
}

impl Check {
    pub fn new(id: &str, status: Status, detail: impl Into<String>) -> Check {
        Check {
            id: id.to_string(),
            status,
            detail: detail.into(),
            fix: None,
            packages: Vec::new(),
        }
    }

    pub fn ok(id: &str, detail: impl Into<String>) -> Check {
        Check::new(id, Status::Ok, detail)
    }

    pub fn warn(id: &str, detail: impl Into<String>) -> Check {
        Check::new(id, Status::Warn, detail)
    }

    pub fn fail(id: &str, detail: impl Into<String>) -> Check {
        Check::new(id, Status::Fail, detail)
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }

    pub fn with_package(mut self, package: impl Into<String>) -> Check {
        let p = package.into();
        if !self.packages.contains(&p) {
            self.packages.push(p);
        }
        self
    }
}

/// The worst status of a list (`Ok` for none).
pub fn worst(checks: &[Check]) -> Status {
    checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok)
}

/// QEMU's own memory beyond the guest's `-m`, MiB, with any accelerator:
/// the binary and its libraries, the heap, device state and buffers,
/// video RAM. Measured here: a Debian guest (`-m 1024`, 2 vCPUs,
/// virtio disk and NIC) booted to its login prompt under TCG had 175 MiB
/// resident outside guest RAM and the translation cache; 256 MiB leaves
/// room for the default VGA's 16 MiB of video RAM and more devices.
pub const QEMU_BASE_OVERHEAD_MIB: u64 = 256;

/// QEMU's default TCG translation cache (`tb-size`), MiB: 1 GiB, or an
/// eighth of the host's physical memory when that is less (QEMU ≥ 5.1,
/// "accel/tcg: better handle memory constrained systems"). It fills as
/// code is translated and is never given back: the boot above alone left
/// 737 MiB of it resident, so a whole build is counted at its full size.
pub fn default_tcg_cache_mib(host_total_mib: u64) -> u64 {
    (host_total_mib / 8).clamp(1, 1024)
}

/// Options of [`check_with`].
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// `-parallel-builds=N`: at most N builds run at once (their memory
    /// adds up); `None`/`Some(0)`: all of them, Packer's default.
    pub parallel_builds: Option<usize>,
}

/// Hold every demand against the host. Builds passed together run in
/// parallel (their memory adds up), as Packer runs the builds of a
/// template.
pub fn check(demands: &[Demand], facts: &HostFacts) -> Vec<Check> {
    check_with(demands, facts, &CheckOptions::default())
}

/// [`check`] with options.
pub fn check_with(demands: &[Demand], facts: &HostFacts, options: &CheckOptions) -> Vec<Check> {
    let mut out = Vec::new();
    binary_checks(demands, facts, &mut out);
    for d in demands {
        accelerator_check(d, facts, &mut out);
        cpu_check(d, facts, &mut out);
        machine_check(d, facts, &mut out);
    }
    memory_check(demands, facts, options, &mut out);
    disk_checks(demands, facts, &mut out);
    for d in demands {
        uefi_check(d, facts, &mut out);
        for f in &d.files {
            file_check(d, f, facts, &mut out);
        }
        port_checks(d, facts, &mut out);
    }
    program_checks(demands, facts, &mut out);
    // The same finding from several builds is told once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert((c.id.clone(), c.detail.clone())));
    out
}

// ---------------------------------------------------------------- units

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Bytes for people: `512 KiB`, `64.0 MiB`, `15.1 GiB`, `1.2 TiB`.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= 1 << 40 {
        format!("{:.1} TiB", b / (1u64 << 40) as f64)
    } else if bytes >= GIB {
        format!("{:.1} GiB", b / GIB as f64)
    } else if bytes >= MIB {
        format!("{:.1} MiB", b / MIB as f64)
    } else if bytes >= 1024 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

// ---------------------------------------------------------------- KVM

/// `kvm: works`, `kvm: missing`, `kvm: no permission (join group kvm)`,
/// `kvm: present but guests do not run (nested virtualization not
/// working)`, `kvm: unknown (the probe failed)`.
pub fn kvm_phrase(verdict: &AccelVerdict) -> String {
    match verdict {
        AccelVerdict::Works { .. } => "kvm: works".into(),
        AccelVerdict::Missing { .. } => "kvm: missing".into(),
        AccelVerdict::NoPermission { group: Some(g), .. } => {
            format!("kvm: no permission (join group {g})")
        }
        AccelVerdict::NoPermission { group: None, .. } => "kvm: no permission".into(),
        AccelVerdict::GuestsDoNotRun { .. } => {
            "kvm: present but guests do not run (nested virtualization not working)".into()
        }
        AccelVerdict::ProbeFailed { .. } => "kvm: unknown (the probe failed)".into(),
    }
}

/// The phrase and the probe's detail: `kvm: works (smoke guest ran in 210
/// ms)`, `kvm: missing: /dev/kvm does not exist: …`.
pub fn kvm_sentence(verdict: &AccelVerdict) -> String {
    let phrase = kvm_phrase(verdict);
    match verdict {
        AccelVerdict::Works { elapsed_ms } => {
            format!("{phrase} (a smoke guest ran to the end in {elapsed_ms} ms)")
        }
        AccelVerdict::Missing { detail }
        | AccelVerdict::NoPermission { detail, .. }
        | AccelVerdict::GuestsDoNotRun { detail, .. }
        | AccelVerdict::ProbeFailed { detail } => format!("{phrase}: {detail}"),
    }
}

/// What to do about a KVM that does not work (besides using TCG).
pub fn kvm_fix(verdict: &AccelVerdict) -> Option<String> {
    match verdict {
        AccelVerdict::Works { .. } => None,
        AccelVerdict::Missing { .. } => Some(
            "load the module (`modprobe kvm_intel` or `modprobe kvm_amd`) and enable VT-x/AMD-V in the firmware, or on a VM enable nested virtualization in its hypervisor".into(),
        ),
        AccelVerdict::NoPermission { group, .. } => {
            let g = group.as_deref().unwrap_or("kvm");
            Some(format!(
                "join the `{g}` group: `sudo usermod -aG {g} $USER`, then log in again"
            ))
        }
        AccelVerdict::GuestsDoNotRun { .. } => Some(
            "enable working nested virtualization on the hypervisor that runs this host (e.g. `kvm_intel nested=1` there), or run builds on a host with working virtualization".into(),
        ),
        AccelVerdict::ProbeFailed { .. } => Some(
            "run `kiln doctor` again once QEMU is installed; the probe needs `qemu-system-x86_64`"
                .into(),
        ),
    }
}

/// `Some(true)` when the probe says KVM runs guests, `Some(false)` when it
/// says it does not, `None` when unknown (not probed, probe failed).
fn kvm_works(facts: &HostFacts) -> Option<bool> {
    match facts.kvm.as_ref().map(|r| &r.verdict) {
        None | Some(AccelVerdict::ProbeFailed { .. }) => None,
        Some(v) => Some(v.works()),
    }
}

/// The accelerator a build will really use: the first of its list that
/// can work (QEMU tries `kvm:tcg` in order), or the probe's choice when
/// unset. `None` when unknown.
fn effective_accel(d: &Demand, facts: &HostFacts) -> Option<String> {
    let works = kvm_works(facts);
    match &d.accelerator {
        None => works.map(|w| if w { "kvm" } else { "tcg" }.to_string()),
        Some(fig) => {
            let list: Vec<&str> = fig.value.split(':').filter(|a| !a.is_empty()).collect();
            for a in &list {
                if *a == "none" {
                    // No accelerator named: QEMU's default, TCG.
                    return Some("tcg".to_string());
                }
                if *a != "kvm" || works == Some(true) {
                    return Some((*a).to_string());
                }
                works?;
            }
            list.first().map(|a| (*a).to_string())
        }
    }
}

fn from_qemuargs(origin: &str) -> bool {
    origin.starts_with("qemuargs[")
}

fn build_name(d: &Demand) -> String {
    format!("source {}", d.build)
}

fn accelerator_check(d: &Demand, facts: &HostFacts, out: &mut Vec<Check>) {
    const ID: &str = "accelerator";
    let verdict = facts.kvm.as_ref().map(|r| &r.verdict);
    let who = build_name(d);
    // A build without QEMU (a null source) needs no accelerator.
    let Some(binary) = d.qemu_binary.as_ref().map(|b| b.value.as_str()) else {
        return;
    };
    let accels = facts
        .qemu(binary)
        .and_then(|q| q.binary.as_ref().ok())
        .map(|b| b.accels.clone())
        .unwrap_or_default();
    let Some(fig) = &d.accelerator else {
        let check = match verdict {
            Some(v) if v.works() => Check::ok(
                ID,
                format!("{who}: `accelerator` is unset and {}: kiln uses kvm", kvm_phrase(v)),
            ),
            Some(v) => Check::warn(
                ID,
                format!(
                    "{who}: `accelerator` is unset and {}; kiln uses TCG (software emulation): expect the build to run about {TCG_SLOWDOWN:.0}× slower",
                    kvm_sentence(v)
                ),
            )
            .with_fix(
                "set `accelerator = \"tcg\"` to accept it, or run on a host where KVM runs guests",
            ),
            None => Check::warn(
                ID,
                format!(
                    "{who}: `accelerator` is unset and KVM was not probed ({}); kiln decides at build time, TCG is about {TCG_SLOWDOWN:.0}× slower than KVM",
                    facts.kvm_not_probed.as_deref().unwrap_or("no verdict")
                ),
            ),
        };
        out.push(check);
        return;
    };
    let list: Vec<&str> = fig.value.split(':').filter(|a| !a.is_empty()).collect();
    let Some(first) = list.first().copied() else {
        return;
    };
    let shown = if from_qemuargs(&fig.origin) || fig.origin.starts_with("QEMU's default") {
        format!("`{}` ({})", fig.value, fig.origin)
    } else {
        format!("`accelerator = \"{}\"` ({})", fig.value, fig.origin)
    };
    if first == "none" {
        out.push(Check::ok(
            ID,
            format!("{who} asks for {shown}: no `accel=`, so QEMU's default, TCG (about {TCG_SLOWDOWN:.0}× slower than KVM)"),
        ));
        return;
    }
    // The binary must know the accelerators it is asked for.
    if !accels.is_empty()
        && let Some(unknown) = list.iter().find(|a| !accels.iter().any(|x| x == *a))
    {
        out.push(
            Check::fail(
                ID,
                format!(
                    "{who} asks for {shown}, but `{binary}` supports only {}",
                    accels
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_fix(format!(
                "use one of them instead of `{unknown}` (`{binary} -accel help` lists them)"
            )),
        );
        return;
    }
    match first {
        "kvm" => {
            // KVM runs guests of the host's own architecture only.
            {
                let guest = arch_of_binary(binary);
                let host = facts.arch.as_str();
                let same = guest == host || (host == "x86_64" && guest == "i386");
                if !same {
                    out.push(
                        Check::fail(
                            ID,
                            format!(
                                "{who} asks for {shown} with `{binary}`, but KVM runs only {host} guests on this {host} host"
                            ),
                        )
                        .with_fix(format!(
                            "use `tcg` for {guest} guests here (about {TCG_SLOWDOWN:.0}× slower), or build on a {guest} host"
                        )),
                    );
                    return;
                }
            }
            let fallback = list.get(1).copied();
            match (verdict, fallback) {
                (Some(v), _) if v.works() => out.push(Check::ok(
                    ID,
                    format!("{who} asks for {shown}: {}", kvm_sentence(v)),
                )),
                (Some(AccelVerdict::ProbeFailed { detail }), _) => out.push(
                    Check::warn(
                        ID,
                        format!(
                            "{who} asks for {shown}, and whether KVM runs guests is unknown: the probe failed: {detail}"
                        ),
                    ),
                ),
                (Some(v), Some(next)) => out.push(
                    Check::warn(
                        ID,
                        format!(
                            "{who} asks for {shown}, and {}; QEMU falls back to `{next}`: expect the build to run about {TCG_SLOWDOWN:.0}× slower",
                            kvm_sentence(v)
                        ),
                    )
                    .with_fix("drop `kvm` from the list to say so, or run on a host where KVM runs guests"),
                ),
                (Some(v), None) => {
                    let fix = if fig.origin.contains("`-enable-kvm") {
                        format!(
                            "remove {} to use TCG (about {TCG_SLOWDOWN:.0}× slower), or run on a host with working virtualization",
                            fig.origin
                        )
                    } else if fig.origin.contains("`-accel ") {
                        format!(
                            "use `-accel tcg` instead of {} (about {TCG_SLOWDOWN:.0}× slower), or run on a host with working virtualization",
                            fig.origin
                        )
                    } else if from_qemuargs(&fig.origin) {
                        format!(
                            "change `accel=kvm` to `accel=tcg` in {} (about {TCG_SLOWDOWN:.0}× slower), or run on a host with working virtualization",
                            fig.origin
                        )
                    } else {
                        format!(
                            "set `accelerator = \"tcg\"` (about {TCG_SLOWDOWN:.0}× slower), or run on a host with working virtualization"
                        )
                    };
                    let fix = match (v, kvm_fix(v)) {
                        (AccelVerdict::NoPermission { .. }, Some(k)) => format!("{k}; or {fix}"),
                        _ => fix,
                    };
                    out.push(
                        Check::fail(
                            ID,
                            format!("{who} asks for {shown}, but {}", kvm_sentence(v)),
                        )
                        .with_fix(fix),
                    );
                }
                (None, _) => out.push(Check::warn(
                    ID,
                    format!(
                        "{who} asks for {shown}, and KVM was not probed ({})",
                        facts.kvm_not_probed.as_deref().unwrap_or("no verdict")
                    ),
                )),
            }
        }
        "tcg" => {
            let also = match verdict {
                Some(v) if v.works() => {
                    " (kvm works here: `accelerator = \"kvm\"` would be much faster)".to_string()
                }
                _ => String::new(),
            };
            out.push(Check::ok(
                ID,
                format!(
                    "{who} asks for {shown}: software emulation, about {TCG_SLOWDOWN:.0}× slower than KVM{also}"
                ),
            ));
        }
        other => out.push(Check::ok(ID, format!("{who} asks for {shown} (`{other}`)"))),
    }
}

fn cpu_check(d: &Demand, facts: &HostFacts, out: &mut Vec<Check>) {
    const ID: &str = "cpu_model";
    let Some(cpu) = &d.cpu_model else {
        return;
    };
    if cpu.value != "host" {
        return;
    }
    let who = build_name(d);
    let named = if from_qemuargs(&cpu.origin) {
        cpu.origin.clone()
    } else {
        format!("`cpu_model = \"host\"` ({})", cpu.origin)
    };
    let fix = if from_qemuargs(&cpu.origin) {
        format!(
            "replace {} with `-cpu max` (every feature TCG emulates), or run on a host where KVM runs guests",
            cpu.origin
        )
    } else {
        "set `cpu_model = \"max\"` (every feature TCG emulates), or run on a host where KVM runs guests".to_string()
    };
    let accel = effective_accel(d, facts);
    let verdict = facts.kvm.as_ref().map(|r| &r.verdict);
    match (accel.as_deref(), verdict) {
        (Some("kvm"), Some(v)) if v.works() => out.push(Check::ok(
            "cpu_model",
            format!("{who}: {named} passes the host CPU through under kvm"),
        )),
        (Some(accel), v) => {
            let why = match v {
                Some(v) if !v.works() => format!(" ({})", kvm_sentence(v)),
                _ => String::new(),
            };
            out.push(
                Check::fail(
                    ID,
                    format!(
                        "{who}: {named} needs KVM (QEMU: \"CPU model 'host' requires KVM or HVF\"), but this build runs under `{accel}`{why}"
                    ),
                )
                .with_fix(fix),
            );
        }
        (None, _) => out.push(
            Check::warn(
                ID,
                format!("{who}: {named} needs KVM, and whether KVM runs guests here is unknown"),
            )
            .with_fix(fix),
        ),
    }
}

fn machine_check(d: &Demand, facts: &HostFacts, out: &mut Vec<Check>) {
    const ID: &str = "machine_type";
    let (Some(machine), Some(binary)) = (&d.machine_type, &d.qemu_binary) else {
        return;
    };
    let Some(Ok(q)) = facts.qemu(&binary.value).map(|f| f.binary.as_ref()) else {
        return;
    };
    if q.machines.is_empty() {
        return;
    }
    let who = build_name(d);
    let version = q
        .version
        .as_ref()
        .map(|v| format!(" {}", v.version))
        .unwrap_or_default();
    let bin = &binary.value;
    let wanted = machine.value.as_str();
    match q.machines.get(wanted) {
        Some(m) => {
            let alias = m
                .alias_of
                .as_ref()
                .map(|a| format!(", an alias of `{a}`"))
                .unwrap_or_default();
            let check = if m.deprecated {
                Check::warn(
                    ID,
                    format!(
                        "{who}: machine type `{wanted}` ({}) is deprecated in `{bin}`{version}",
                        machine.origin
                    ),
                )
                .with_fix("use a newer version of the machine type")
            } else {
                Check::ok(
                    ID,
                    format!(
                        "{who}: machine type `{wanted}` is supported by `{bin}`{version}{alias}"
                    ),
                )
            };
            out.push(check);
        }
        None => {
            let close = q.machines.suggestions(wanted, 5);
            let list = close
                .iter()
                .map(
                    |n| match q.machines.get(n).and_then(|m| m.alias_of.as_ref()) {
                        Some(a) => format!("`{n}` (= `{a}`)"),
                        None => format!("`{n}`"),
                    },
                )
                .collect::<Vec<_>>()
                .join(", ");
            let hint = if wanted.starts_with("ubuntu") {
                " (`ubuntu*` machine types exist only in Ubuntu's QEMU)"
            } else {
                ""
            };
            out.push(
                Check::fail(
                    ID,
                    format!(
                        "{who}: machine type `{wanted}` ({}) is not supported by `{bin}`{version}{hint}; close: {list}",
                        machine.origin
                    ),
                )
                .with_fix(format!(
                    "use one of those; `{bin} -machine help` lists all {}",
                    q.machines.machines.len()
                )),
            );
        }
    }
}

fn binary_checks(demands: &[Demand], facts: &HostFacts, out: &mut Vec<Check>) {
    const ID: &str = "qemu.binary";
    let os = facts.os.as_ref();
    for d in demands {
        let Some(fig) = &d.qemu_binary else {
            continue;
        };
        let name = fig.value.as_str();
        let Some(fact) = facts.qemu(name) else {
            continue;
        };
        match &fact.binary {
            Ok(b) => {
                let version = b
                    .version
                    .as_ref()
                    .map(|v| format!(" {}", v.version))
                    .unwrap_or_default();
                let mut check =
                    Check::ok(ID, format!("`{name}`{version} at `{}`", b.path.display()));
                if !b.problems.is_empty() {
                    check = Check::warn(
                        ID,
                        format!(
                            "`{name}`{version} at `{}`: {}",
                            b.path.display(),
                            b.problems.join("; ")
                        ),
                    );
                }
                out.push(check);
            }
            Err(e) => {
                let installed = if facts.installed_emulators.is_empty() {
                    "no QEMU system emulator is installed".to_string()
                } else {
                    format!(
                        "installed: {}",
                        facts
                            .installed_emulators
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let detail = format!(
                    "`qemu_binary = \"{name}\"` ({}): {e}; {installed}",
                    fig.origin
                );
                let check = match package_for_qemu_binary(name, os) {
                    Some(pkg) => Check::fail(ID, detail)
                        .with_fix(format!(
                            "install `{pkg}` (`sudo apt-get install {pkg}`, or `kiln doctor --fix`)"
                        ))
                        .with_package(pkg),
                    None => Check::fail(ID, detail).with_fix(format!(
                        "no package provides `{name}`: check `qemu_binary` (emulators are named `qemu-system-<arch>`, e.g. `qemu-system-x86_64`; the `qemu-system` package installs them all)"
                    )),
                };
                out.push(check);
            }
        }
    }
}

fn memory_check(
    demands: &[Demand],
    facts: &HostFacts,
    options: &CheckOptions,
    out: &mut Vec<Check>,
) {
    const ID: &str = "memory";
    if demands.is_empty() {
        return;
    }
    let mem = match &facts.memory {
        Ok(m) => *m,
        Err(e) => {
            out.push(Check::warn(
                ID,
                format!("cannot tell how much memory is available: {e}"),
            ));
            return;
        }
    };
    let total_mib = mem.total_kib / 1024;
    let available = mem.available_bytes();

    struct Need<'a> {
        d: &'a Demand,
        guest_mib: u64,
        origin: String,
        var: Option<String>,
        overhead_mib: u64,
        accel: String,
    }
    let mut needs: Vec<Need> = demands
        .iter()
        .map(|d| {
            let (guest_mib, origin, var) = match &d.memory_mib {
                Some(f) => (f.value, f.origin.clone(), f.var.clone()),
                None => (512, "Packer's default for `memory`".to_string(), None),
            };
            let accel = effective_accel(d, facts).unwrap_or_else(|| "tcg".into());
            let overhead_mib = QEMU_BASE_OVERHEAD_MIB
                + if accel == "tcg" {
                    d.tcg_tb_size_mib
                        .as_ref()
                        .map(|f| f.value)
                        .unwrap_or_else(|| default_tcg_cache_mib(total_mib))
                } else {
                    0
                };
            Need {
                d,
                guest_mib,
                origin,
                var,
                overhead_mib,
                accel,
            }
        })
        .collect();
    needs.sort_by_key(|n| std::cmp::Reverse(n.guest_mib + n.overhead_mib));
    let limit = match options.parallel_builds {
        Some(n) if n > 0 => n,
        _ => needs.len(),
    };
    let running = &needs[..limit.min(needs.len())];
    let total_need_mib: u64 = running.iter().map(|n| n.guest_mib + n.overhead_mib).sum();
    let total_need = total_need_mib.saturating_mul(MIB);
    let available_text = format!(
        "this host has {} available (of {}{})",
        human_bytes(available),
        human_bytes(mem.total_bytes()),
        if mem.estimated { ", estimated" } else { "" }
    );
    let overhead_text = |n: &Need| {
        if n.accel == "tcg" {
            format!(
                "{} MiB for QEMU itself under TCG ({} MiB translation cache + {QEMU_BASE_OVERHEAD_MIB} MiB)",
                n.overhead_mib,
                n.overhead_mib - QEMU_BASE_OVERHEAD_MIB
            )
        } else {
            format!("{} MiB for QEMU itself under {}", n.overhead_mib, n.accel)
        }
    };
    let asks = |n: &Need| {
        format!(
            "{} asks for memory = {} MiB ({})",
            build_name(n.d),
            n.guest_mib,
            n.origin
        )
    };
    let detail = if running.len() == 1 {
        let n = &running[0];
        format!(
            "{}, plus {}: {} in all; {available_text}",
            asks(n),
            overhead_text(n),
            human_bytes(total_need)
        )
    } else {
        format!(
            "{} builds run in parallel: {}; with QEMU's own overhead ({}) that is {}; {available_text}",
            running.len(),
            running.iter().map(asks).collect::<Vec<_>>().join("; "),
            running
                .iter()
                .map(|n| format!("{} MiB under {}", n.overhead_mib, n.accel))
                .collect::<Vec<_>>()
                .join(", "),
            human_bytes(total_need)
        )
    };
    if total_need > available {
        // The largest power of two that fits for the biggest build.
        let biggest = &running[0];
        let others_mib: u64 = running[1..]
            .iter()
            .map(|n| n.guest_mib + n.overhead_mib)
            .sum();
        let budget_mib = (available / MIB)
            .saturating_sub(others_mib)
            .saturating_sub(biggest.overhead_mib);
        let suggestion = (budget_mib >= 256).then(|| 1u64 << (63 - budget_mib.leading_zeros()));
        let parallel = if running.len() > 1 && limit > 1 {
            "-parallel-builds=1, "
        } else {
            ""
        };
        let fix = match (suggestion, &biggest.var) {
            (Some(s), Some(var)) => {
                format!("Try {parallel}-var {var}={s}, or run on a larger host.")
            }
            (Some(s), None) => format!("Try {parallel}`memory = {s}`, or run on a larger host."),
            (None, _) => format!("Try {parallel}a smaller `memory`, or run on a larger host."),
        };
        out.push(Check::fail(ID, detail).with_fix(fix));
    } else if total_need.saturating_mul(10) > available.saturating_mul(9) {
        out.push(
            Check::warn(ID, format!("{detail}: less than 10% would be left"))
                .with_fix("lower `memory`, or stop other memory-hungry work while building"),
        );
    } else {
        out.push(Check::ok(ID, detail));
    }
}

fn disk_checks(demands: &[Demand], facts: &HostFacts, out: &mut Vec<Check>) {
    const ID: &str = "disk";
    // Group demands by the filesystem they land on.
    let mut groups: BTreeMap<u64, Vec<(&Demand, &DiskDemand)>> = BTreeMap::new();
    for d in demands {
        for disk in &d.disks {
            match facts.filesystem(&disk.dir).map(|f| &f.space) {
                Some(Ok(space)) => groups.entry(space.device).or_default().push((d, disk)),
                Some(Err(e)) => out.push(Check::warn(
                    ID,
                    format!(
                        "cannot tell the free space where {} is written: {e}",
                        disk.what
                    ),
                )),
                None => out.push(Check::warn(
                    ID,
                    format!(
                        "free space of `{}` was not collected ({})",
                        disk.dir.display(),
                        disk.what
                    ),
                )),
            }
        }
    }
    for items in groups.values() {
        let Some((_, first)) = items.first() else {
            continue;
        };
        let Some(Ok(space)) = facts.filesystem(&first.dir).map(|f| &f.space) else {
            continue;
        };
        let full: u64 = items
            .iter()
            .filter(|(_, k)| !k.sparse)
            .map(|(_, k)| k.bytes.value)
            .sum();
        let sparse: u64 = items
            .iter()
            .filter(|(_, k)| k.sparse)
            .map(|(_, k)| k.bytes.value)
            .sum();
        let mut dirs: Vec<String> = Vec::new();
        for (_, k) in items {
            let shown = format!("`{}`", k.dir.display());
            if !dirs.contains(&shown) {
                dirs.push(shown);
            }
        }
        let place = match (&space.mount_point, &space.fs_type) {
            (Some(m), Some(t)) => format!("the {t} filesystem at `{}`", m.display()),
            (Some(m), None) => format!("the filesystem at `{}`", m.display()),
            _ => format!("the filesystem of `{}`", space.probed.display()),
        };
        let mut builds: Vec<&str> = Vec::new();
        for (d, _) in items {
            if !builds.contains(&d.build.as_str()) {
                builds.push(&d.build);
            }
        }
        let who = if builds.len() == 1 {
            format!("source {}", builds[0])
        } else {
            format!("sources {}", builds.join(", "))
        };
        let list = |sparse_ones: bool| {
            items
                .iter()
                .filter(|(_, k)| k.sparse == sparse_ones)
                .map(|(d, k)| {
                    let of = if builds.len() > 1 {
                        format!(" of {}", d.build)
                    } else {
                        String::new()
                    };
                    format!(
                        "{}{of}: {} ({})",
                        k.what,
                        human_bytes(k.bytes.value),
                        k.bytes.origin
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let free = human_bytes(space.available_bytes);
        let fix = "free space there, point `output_directory` (or the cache) at a larger filesystem, or lower `disk_size`";
        if full > space.available_bytes {
            out.push(
                Check::fail(
                    ID,
                    format!(
                        "{who} writes {} to {place} (holding {}), which has {free} free: {}",
                        human_bytes(full),
                        dirs.join(", "),
                        list(false)
                    ),
                )
                .with_fix(fix),
            );
        } else if full + sparse > space.available_bytes {
            let also = if full > 0 {
                format!(" besides {} written in full", human_bytes(full))
            } else {
                String::new()
            };
            out.push(
                Check::warn(
                    ID,
                    format!(
                        "{who} has thin-provisioned disks that can grow to {} ({}){also} on {place} (holding {}), which has {free} free: the build fails if the guest fills them",
                        human_bytes(sparse),
                        list(true),
                        dirs.join(", ")
                    ),
                )
                .with_fix(fix),
            );
        } else {
            out.push(Check::ok(
                ID,
                format!(
                    "{who}: {} ({}) fit in the {free} free on {place} (holding {})",
                    human_bytes(full + sparse),
                    if sparse > 0 {
                        "thin disks counted at full size"
                    } else {
                        "all written in full"
                    },
                    dirs.join(", ")
                ),
            ));
        }
    }
}

fn uefi_check(d: &Demand, facts: &HostFacts, out: &mut Vec<Check>) {
    const ID: &str = "firmware";
    let Some(uefi) = &d.uefi else {
        return;
    };
    let who = build_name(d);
    match facts.uefi(&uefi.arch).and_then(|u| u.firmware.as_ref()) {
        Some(fw) => out.push(Check::ok(
            ID,
            format!(
                "{who}: UEFI firmware for {}: `{}` and `{}`",
                uefi.arch,
                fw.code.display(),
                fw.vars.display()
            ),
        )),
        None => {
            let looked = kiln_qemu::firmware::candidates(&uefi.arch)
                .iter()
                .map(|(c, _)| {
                    Path::new(c)
                        .parent()
                        .map(|p| format!("`{}`", p.display()))
                        .unwrap_or_default()
                })
                .fold(Vec::<String>::new(), |mut acc, p| {
                    if !acc.contains(&p) {
                        acc.push(p);
                    }
                    acc
                })
                .join(", ");
            let mut check = Check::fail(
                ID,
                format!(
                    "{who}: `efi_boot` ({}) needs UEFI firmware for {}, and none is installed (looked in {looked})",
                    uefi.origin, uefi.arch
                ),
            );
            check = match uefi_package(&uefi.arch) {
                Some(pkg) => check
                    .with_fix(format!(
                        "install `{pkg}`, or set `efi_firmware_code` and `efi_firmware_vars`"
                    ))
                    .with_package(pkg),
                None => check.with_fix("set `efi_firmware_code` and `efi_firmware_vars`"),
            };
            out.push(check);
        }
    }
}

fn file_check(d: &Demand, f: &FileDemand, facts: &HostFacts, out: &mut Vec<Check>) {
    const ID: &str = "file";
    let Some(fact) = facts.file(&f.path) else {
        return;
    };
    let who = build_name(d);
    let path = f.path.display();
    let package = package_for_path(&f.path);
    let source = f
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(known_firmware_source)
        .filter(|s| Path::new(s) != f.path);
    let missing_fix = || {
        let mut fix = match (package, source) {
            (Some(pkg), _) => format!("install `{pkg}`"),
            (None, Some(src)) => format!(
                "copy it from `{src}` (package `{}`)",
                package_for_path(Path::new(src)).unwrap_or("ovmf")
            ),
            (None, None) => "create it, or correct the path".to_string(),
        };
        if from_qemuargs(&f.origin) {
            fix.push_str(&format!(", or change {}", f.origin));
        }
        fix
    };
    let with_packages = |mut c: Check| {
        if let Some(p) = package {
            c = c.with_package(p);
        }
        if let Some(p) = source.and_then(|s| package_for_path(Path::new(s))) {
            c = c.with_package(p);
        }
        c
    };
    let check = match (&fact.state, f.directory) {
        (FileState::Missing, _) => with_packages(
            Check::fail(
                ID,
                format!(
                    "{who}: `{path}` does not exist; {} needs it ({})",
                    f.what, f.origin
                ),
            )
            .with_fix(missing_fix()),
        ),
        (FileState::Unreadable { reason }, _) => Check::fail(
            ID,
            format!(
                "{who}: `{path}` cannot be read ({reason}); {} needs it ({})",
                f.what, f.origin
            ),
        )
        .with_fix("make it readable by the user running kiln"),
        (FileState::Directory, false) => Check::fail(
            ID,
            format!(
                "{who}: `{path}` is a directory, but {} needs a file ({})",
                f.what, f.origin
            ),
        )
        .with_fix("correct the path"),
        (FileState::File { .. }, true) => Check::fail(
            ID,
            format!(
                "{who}: `{path}` is a file, but {} needs a directory ({})",
                f.what, f.origin
            ),
        )
        .with_fix("correct the path"),
        (FileState::File { bytes }, false) => Check::ok(
            ID,
            format!("{who}: `{path}` ({}) for {}", human_bytes(*bytes), f.what),
        ),
        (FileState::Directory, true) | (FileState::Other, _) => {
            Check::ok(ID, format!("{who}: `{path}` for {}", f.what))
        }
    };
    out.push(check);
}

fn port_checks(d: &Demand, facts: &HostFacts, out: &mut Vec<Check>) {
    const ID: &str = "port";
    let who = build_name(d);
    for p in &d.ports {
        let Some(fact) = facts.port(&p.bind, p.min, p.max) else {
            continue;
        };
        let range = format!("{}:{}..={}", p.bind, p.min, p.max);
        let check = match (fact.free, &fact.error) {
            (Some(port), _) => Check::ok(
                ID,
                format!("{who}: {} can use port {port} ({range})", p.what),
            ),
            (None, Some(error)) => Check::fail(
                ID,
                format!("{who}: {} cannot bind in {range} ({}): {error}", p.what, p.origin),
            )
            .with_fix("use an address of this host, or a port range this user may bind"),
            (None, None) => Check::fail(
                ID,
                format!(
                    "{who}: no free port for {} in {range} ({}): all {} ports are in use",
                    p.what, p.origin, fact.in_use
                ),
            )
            .with_fix(format!(
                "widen the range, or stop what holds them (`ss -ltnp 'sport >= :{} and sport <= :{}'` lists them)",
                p.min, p.max
            )),
        };
        out.push(check);
    }
}

fn program_checks(demands: &[Demand], facts: &HostFacts, out: &mut Vec<Check>) {
    const ID: &str = "program";
    let mut seen: Vec<&str> = Vec::new();
    for d in demands {
        for p in &d.programs {
            if seen.contains(&p.name.as_str()) {
                continue;
            }
            seen.push(&p.name);
            let Some(fact) = facts.program(&p.name) else {
                continue;
            };
            let check = match &fact.path {
                Some(path) => Check::ok(
                    ID,
                    format!("`{}` at `{}` for {}", p.name, path.display(), p.what),
                ),
                None => {
                    let detail = if p.required {
                        format!("`{}` is not on PATH; {} needs it", p.name, p.what)
                    } else {
                        format!(
                            "`{}` is not on PATH; {} seems to call it (a guess from the command's first word)",
                            p.name, p.what
                        )
                    };
                    let base = if p.required {
                        Check::fail(ID, detail)
                    } else {
                        Check::warn(ID, detail)
                    };
                    match package_for_program(&p.name) {
                        Some(pkg) => base.with_fix(format!("install `{pkg}`")).with_package(pkg),
                        None => {
                            base.with_fix(format!("install `{}` or correct the command", p.name))
                        }
                    }
                }
            };
            out.push(check);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_shown_with_units() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(16 << 20), "16.0 MiB");
        assert_eq!(human_bytes(15_462 * MIB), "15.1 GiB");
        assert_eq!(human_bytes(3 << 40), "3.0 TiB");
    }

    #[test]
    fn tcg_cache_follows_qemu_default() {
        assert_eq!(default_tcg_cache_mib(24_000), 1024);
        assert_eq!(default_tcg_cache_mib(4096), 512);
    }

    #[test]
    fn kvm_phrases_are_the_documented_ones() {
        assert_eq!(
            kvm_phrase(&AccelVerdict::NoPermission {
                group: Some("kvm".into()),
                detail: "x".into()
            }),
            "kvm: no permission (join group kvm)"
        );
        assert_eq!(
            kvm_phrase(&AccelVerdict::GuestsDoNotRun {
                reached: None,
                detail: "x".into()
            }),
            "kvm: present but guests do not run (nested virtualization not working)"
        );
        assert_eq!(
            kvm_phrase(&AccelVerdict::Missing { detail: "x".into() }),
            "kvm: missing"
        );
        assert_eq!(
            kvm_phrase(&AccelVerdict::Works { elapsed_ms: 3 }),
            "kvm: works"
        );
    }

    #[test]
    fn check_serializes_to_the_documented_json() {
        let c = Check::fail("memory", "too much")
            .with_fix("less")
            .with_package("x");
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"id":"memory","status":"fail","detail":"too much","fix":"less"}"#
        );
        let ok = Check::ok("kvm", "kvm: works");
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            serde_json::json!({"id": "kvm", "status": "ok", "detail": "kvm: works", "fix": null})
        );
    }
}
