//! Preflight against the real host: real `/proc/meminfo`, real `statvfs`
//! (on a small tmpfs mounted for the test), the real QEMU binary, real
//! ports, the real KVM probe.
#![allow(clippy::print_stderr)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln_qemu::QemuConfig;
use kiln_qemu::accel::{AccelVerdict, ProbeOptions, ProbeReport};
use kiln_template::body::{Attribute, Body};
use kiln_template::span::Span;
use kiln_template::value::{Number, Value};

use super::*;

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn n(v: f64) -> Value {
    Value::Number(Number(v))
}

fn b(v: bool) -> Value {
    Value::Bool(v)
}

fn lists(items: &[&[&str]]) -> Value {
    Value::Tuple(
        items
            .iter()
            .map(|i| Value::Tuple(i.iter().map(|x| s(x)).collect()))
            .collect(),
    )
}

/// A decoded `source "qemu" "NAME"` whose attributes sit on lines 2, 3, …
/// of `build.pkr.hcl`.
fn config(name: &str, attrs: &[(&str, Value)]) -> QemuConfig {
    let span = |line: u32| Span {
        file: "build.pkr.hcl".into(),
        line,
        col: 3,
        bytes: 0..0,
    };
    let mut body = Body::empty(span(1));
    let mut all: Vec<(&str, Value)> = vec![
        ("iso_url", s("https://example.org/debian.iso")),
        ("iso_checksum", s("none")),
        ("ssh_username", s("root")),
        ("headless", b(true)),
    ];
    all.extend(attrs.iter().cloned());
    for (i, (key, value)) in all.into_iter().enumerate() {
        body.attrs.insert(
            key.to_string(),
            Attribute {
                name: key.to_string(),
                value,
                span: span(i as u32 + 2),
                sensitive: false,
            },
        );
    }
    match QemuConfig::decode(&body, name) {
        Ok(d) => d.config,
        Err(e) => panic!("decode failed: {e:#?}"),
    }
}

fn demand(name: &str, attrs: &[(&str, Value)]) -> Demand {
    let cfg = config(name, attrs);
    Demand::from_qemu(
        &format!("qemu.{name}"),
        &cfg,
        Path::new("/srv/tpl"),
        &|_| None,
    )
}

/// A cache root kept between test runs (as a user's is between builds):
/// the probe's verdict and QEMU's answers, keyed by boot and binary.
fn test_cache_root() -> PathBuf {
    std::env::temp_dir().join("kiln-preflight-tests")
}

fn test_options() -> CollectOptions {
    CollectOptions::cached_in(&test_cache_root())
}

/// Probe once per test process (the verdict is also cached per boot on
/// disk), so tests do not boot smoke guests side by side.
async fn probe() -> ProbeReport {
    static PROBE: tokio::sync::Mutex<Option<ProbeReport>> = tokio::sync::Mutex::const_new(None);
    let mut guard = PROBE.lock().await;
    if let Some(r) = guard.as_ref() {
        return r.clone();
    }
    let r = kiln_qemu::accel::probe_accelerator_with(&ProbeOptions::cached_in(&test_cache_root()))
        .await;
    *guard = Some(r.clone());
    r
}

async fn collect(demands: &[Demand]) -> HostFacts {
    probe().await;
    HostFacts::collect(demands, &test_options()).await
}

fn by_id<'a>(checks: &'a [Check], id: &str) -> Vec<&'a Check> {
    checks.iter().filter(|c| c.id == id).collect()
}

fn failing<'a>(checks: &'a [Check], id: &str) -> &'a Check {
    match checks
        .iter()
        .find(|c| c.id == id && c.status == Status::Fail)
    {
        Some(c) => c,
        None => panic!("no failing `{id}` check in {checks:#?}"),
    }
}

// ------------------------------------------------------------ pure parts

/// `,,` is a comma inside a QEMU option: a firmware file with one is
/// demanded by its real name, and a disk the build creates is left out
/// however its commas are written.
#[test]
fn qemuargs_file_names_with_escaped_commas_become_demands() {
    let d = demand(
        "commas",
        &[
            ("output_directory", s("out,1")),
            (
                "qemuargs",
                lists(&[
                    &["-drive", "if=pflash,readonly=on,file=/opt/fw/CODE,,4M.fd"],
                    &["-drive", "file=out,,1/packer-commas,format=qcow2"],
                ]),
            ),
        ],
    );
    let files: Vec<(&Path, &str)> = d
        .files
        .iter()
        .map(|f| (f.path.as_path(), f.what.as_str()))
        .collect();
    assert_eq!(
        files,
        vec![(
            Path::new("/opt/fw/CODE,4M.fd"),
            "UEFI firmware (`-drive if=pflash`)"
        )]
    );
}

#[test]
fn packer_maas_style_qemuargs_become_demands() {
    let d = demand(
        "cloudimg",
        &[
            ("disk_image", b(true)),
            ("use_backing_file", b(true)),
            ("disk_size", s("4G")),
            ("memory", n(2048.0)),
            ("cpus", n(2.0)),
            ("accelerator", s("kvm")),
            (
                "qemuargs",
                lists(&[
                    &["-machine", "ubuntu,accel=kvm"],
                    &["-cpu", "host"],
                    &[
                        "-drive",
                        "if=pflash,format=raw,id=ovmf_code,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
                    ],
                    &[
                        "-drive",
                        "if=pflash,format=raw,id=ovmf_vars,file=OVMF_VARS.fd",
                    ],
                    &[
                        "-drive",
                        "file=output-cloudimg/packer-cloudimg,format=qcow2",
                    ],
                    &["-drive", "file=seeds-cloudimg.iso,format=raw"],
                ]),
            ),
        ],
    );
    let memory = d.memory_mib.as_ref().unwrap();
    assert_eq!(memory.value, 2048);
    assert_eq!(memory.origin, "`memory`, set in build.pkr.hcl:9");
    assert_eq!(d.cpus.as_ref().unwrap().value, 2);
    // The qemuargs -machine replaces kiln's: its type and accel count.
    let machine = d.machine_type.as_ref().unwrap();
    assert_eq!(machine.value, "ubuntu");
    assert!(
        machine
            .origin
            .starts_with("qemuargs[0] `-machine ubuntu,accel=kvm`")
    );
    let accel = d.accelerator.as_ref().unwrap();
    assert_eq!(
        (accel.value.as_str(), accel.origin.as_str()),
        ("kvm", "qemuargs[0] `-machine ubuntu,accel=kvm`")
    );
    assert_eq!(
        d.cpu_model.as_ref().unwrap().origin,
        "qemuargs[1] `-cpu host`"
    );
    // Files: firmware and the seed, resolved against the base directory;
    // the output disk is created by the build and left out.
    let files: Vec<(&Path, &str)> = d
        .files
        .iter()
        .map(|f| (f.path.as_path(), f.origin.as_str()))
        .collect();
    assert_eq!(
        files,
        vec![
            (
                Path::new("/usr/share/OVMF/OVMF_CODE.fd"),
                "qemuargs[2] `-drive if=pflash,format=raw,id=ovmf_code,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd`"
            ),
            (
                Path::new("/srv/tpl/OVMF_VARS.fd"),
                "qemuargs[3] `-drive if=pflash,format=raw,id=ovmf_vars,file=OVMF_VARS.fd`"
            ),
            (
                Path::new("/srv/tpl/seeds-cloudimg.iso"),
                "qemuargs[5] `-drive file=seeds-cloudimg.iso,format=raw`"
            ),
        ]
    );
    // The overlay disk, thin, in the output directory.
    assert_eq!(d.disks[0].dir, PathBuf::from("/srv/tpl/output-cloudimg"));
    assert_eq!(d.disks[0].bytes.value, 4 << 30);
    assert!(d.disks[0].sparse);
    // SSH forward on loopback, Packer's default range.
    assert_eq!(d.ports.len(), 1);
    assert_eq!(
        (d.ports[0].bind.as_str(), d.ports[0].min, d.ports[0].max),
        ("127.0.0.1", 2222, 4444)
    );
    assert_eq!(d.programs[0].name, "qemu-img");
    // Round trip through JSON (the plan prints demands).
    let json = serde_json::to_string(&d).unwrap();
    let back: Demand = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d);
}

#[test]
fn shell_local_programs_are_added_as_warnings_only() {
    let mut d = Demand::new("qemu.x");
    d.add_shell_programs(
        "the shell-local post-processor",
        &["cloud-localds seed.img user-data && xz -T0 out.img".to_string()],
    );
    let names: Vec<(&str, bool)> = d
        .programs
        .iter()
        .map(|p| (p.name.as_str(), p.required))
        .collect();
    assert_eq!(names, vec![("cloud-localds", false), ("xz", false)]);
}

// ------------------------------------------------------------ real host

#[tokio::test]
async fn memory_above_available_is_refused_naming_the_variable() {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let available_mib = parse_meminfo(&meminfo).unwrap().available_kib / 1024;
    let asked = (available_mib * 2).next_power_of_two();
    let cfg = config("cloudimg", &[("memory", n(asked as f64))]);
    let origin = |field: &str| {
        (field == "memory").then(|| Origin::var("memory", "var.memory, set in VAR03.pkr.hcl:4"))
    };
    probe().await;
    let d = Demand::from_qemu("qemu.cloudimg", &cfg, Path::new("."), &origin);
    // Without the cache of QEMU's answers (the probe's verdict is cached).
    let cold = Instant::now();
    let uncached = CollectOptions {
        cache_dir: None,
        ..test_options()
    };
    let facts = HostFacts::collect(std::slice::from_ref(&d), &uncached).await;
    let _ = check(std::slice::from_ref(&d), &facts);
    eprintln!(
        "collect + check without the QEMU cache: {:.0} ms ({})",
        cold.elapsed().as_secs_f64() * 1000.0,
        facts
            .timings
            .iter()
            .map(|t| format!("{} {:.1} ms", t.part, t.ms))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let start = Instant::now();
    let facts = HostFacts::collect(std::slice::from_ref(&d), &test_options()).await;
    let checks = check(std::slice::from_ref(&d), &facts);
    let took = start.elapsed();
    eprintln!(
        "collect + check: {:.0} ms (collection {:.0} ms; probe cached: {:?}); parts: {}",
        took.as_secs_f64() * 1000.0,
        facts.took_ms,
        facts.kvm.as_ref().map(|k| k.cached),
        facts
            .timings
            .iter()
            .map(|t| format!("{} {:.1} ms", t.part, t.ms))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let c = failing(&checks, "memory");
    eprintln!("{}\n  fix: {:?}", c.detail, c.fix);
    assert!(
        c.detail.starts_with(&format!(
            "source qemu.cloudimg asks for memory = {asked} MiB (var.memory, set in VAR03.pkr.hcl:4)"
        )),
        "{}",
        c.detail
    );
    assert!(c.detail.contains("available"), "{}", c.detail);
    let fix = c.fix.as_deref().unwrap();
    assert!(fix.starts_with("Try -var memory="), "{fix}");
    assert!(fix.ends_with("or run on a larger host."), "{fix}");
    // The suggested value fits with the overhead.
    let suggested: u64 = fix
        .trim_start_matches("Try -var memory=")
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(suggested + QEMU_BASE_OVERHEAD_MIB <= available_mib);

    // Two builds in parallel add up; one at a time they fit.
    let half = (available_mib / 2).max(256);
    let a = demand("a", &[("memory", n(half as f64))]);
    let b2 = demand("b", &[("memory", n(half as f64))]);
    let both = [a, b2];
    let facts = HostFacts::collect(&both, &test_options()).await;
    let together = check(&both, &facts);
    let c = failing(&together, "memory");
    assert!(
        c.detail.starts_with("2 builds run in parallel"),
        "{}",
        c.detail
    );
    assert!(c.fix.as_deref().unwrap().contains("-parallel-builds=1"));
    let one_at_a_time = check_with(
        &both,
        &facts,
        &CheckOptions {
            parallel_builds: Some(1),
        },
    );
    assert_ne!(by_id(&one_at_a_time, "memory")[0].status, Status::Fail);
}

/// A tmpfs of 16 MiB mounted in a temporary directory, unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount() -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "kiln-preflight"])
            .arg(dir.path())
            .stderr(std::process::Stdio::piped())
            .output()
            .ok()?;
        if !status.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs ({}): {}",
                status.status,
                String::from_utf8_lossy(&status.stderr).trim()
            );
            return None;
        }
        Some(SmallFs { dir })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn disk_demand_above_free_space_of_a_small_filesystem_fails() {
    let Some(fs) = SmallFs::mount() else {
        return;
    };
    let out = fs.dir.path().join("output-small");
    // A 64 MiB qcow2 disk in a 16 MiB filesystem: thin, so a warning…
    let thin = Demand::from_qemu(
        "qemu.small",
        &config(
            "small",
            &[
                ("disk_size", s("64M")),
                ("output_directory", s(out.to_str().unwrap())),
            ],
        ),
        Path::new("/"),
        &|_| None,
    );
    let facts = HostFacts::collect(std::slice::from_ref(&thin), &test_options()).await;
    let space = facts.filesystem(&out).unwrap().space.as_ref().unwrap();
    assert_eq!(space.probed, fs.dir.path());
    assert_eq!(space.fs_type.as_deref(), Some("tmpfs"));
    assert!(space.available_bytes <= 16 << 20);
    let checks = check(std::slice::from_ref(&thin), &facts);
    let disk = by_id(&checks, "disk");
    assert_eq!(disk.len(), 1, "{disk:#?}");
    assert_eq!(disk[0].status, Status::Warn, "{}", disk[0].detail);

    // …preallocated, or a download written in full: refused.
    let mut cfg = config(
        "small",
        &[
            ("disk_size", s("64M")),
            ("output_directory", s(out.to_str().unwrap())),
        ],
    );
    cfg.qemu_img_args.create = vec!["-o".into(), "preallocation=falloc".into()];
    let full = Demand::from_qemu("qemu.small", &cfg, Path::new("/"), &|_| None);
    let facts = HostFacts::collect(std::slice::from_ref(&full), &test_options()).await;
    let checks = check(std::slice::from_ref(&full), &facts);
    let c = failing(&checks, "disk");
    eprintln!("{}", c.detail);
    assert!(
        c.detail
            .starts_with("source qemu.small writes 64.0 MiB to the tmpfs filesystem at"),
        "{}",
        c.detail
    );
    assert!(c.detail.contains("which has 16.0 MiB free"), "{}", c.detail);
    assert!(
        c.detail.contains(&format!(
            "the tmpfs filesystem at `{}`",
            fs.dir.path().display()
        )),
        "{}",
        c.detail
    );
    assert!(
        c.detail.contains("`disk_size`, set in build.pkr.hcl:"),
        "{}",
        c.detail
    );

    let mut download = Demand::new("qemu.small");
    download.disks.push(DiskDemand {
        dir: fs.dir.path().join("cache"),
        bytes: Figure::new(32 << 20, "the size the server announced for `iso_url`"),
        what: "the download of `debian.iso`".into(),
        sparse: false,
    });
    let facts = HostFacts::collect(std::slice::from_ref(&download), &test_options()).await;
    let checks = check(std::slice::from_ref(&download), &facts);
    assert!(failing(&checks, "disk").detail.contains("debian.iso"));
}

#[tokio::test]
async fn missing_firmware_named_by_qemuargs_fails_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let vars = dir.path().join("OVMF_VARS.fd");
    let arg = format!("if=pflash,format=raw,id=ovmf_vars,file={}", vars.display());
    let d = demand(
        "uefi",
        &[(
            "qemuargs",
            lists(&[
                &[
                    "-drive",
                    "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
                ],
                &["-drive", &arg],
            ]),
        )],
    );
    let facts = collect(std::slice::from_ref(&d)).await;
    let checks = check(std::slice::from_ref(&d), &facts);
    let c = failing(&checks, "file");
    eprintln!("{}\n  fix: {:?}", c.detail, c.fix);
    assert!(
        c.detail
            .contains(&format!("`{}` does not exist", vars.display())),
        "{}",
        c.detail
    );
    assert!(c.detail.contains("UEFI firmware (`-drive if=pflash`)"));
    assert!(c.detail.contains("qemuargs[1]"));
    let fix = c.fix.as_deref().unwrap();
    assert!(fix.contains("/usr/share/OVMF/OVMF_VARS.fd"), "{fix}");
    assert_eq!(c.packages, vec!["ovmf"]);
    // The installed code file is fine (when the host has it).
    if Path::new("/usr/share/OVMF/OVMF_CODE.fd").exists() {
        assert!(checks.iter().any(|c| c.id == "file"
            && c.status == Status::Ok
            && c.detail.contains("/usr/share/OVMF/OVMF_CODE.fd")));
    }
    // A missing file under a package's directory names the package.
    let d = demand(
        "aavmf",
        &[(
            "qemuargs",
            lists(&[&["-bios", "/usr/share/AAVMF/AAVMF_NOPE.fd"]]),
        )],
    );
    let facts = collect(std::slice::from_ref(&d)).await;
    let checks = check(std::slice::from_ref(&d), &facts);
    let c = failing(&checks, "file");
    assert_eq!(
        c.fix.as_deref(),
        Some(
            "install `qemu-efi-aarch64`, or change qemuargs[0] `-bios /usr/share/AAVMF/AAVMF_NOPE.fd`"
        )
    );
}

#[tokio::test]
async fn unsupported_machine_type_fails_with_close_names() {
    let d = demand("m", &[("machine_type", s("ubuntu"))]);
    let facts = collect(std::slice::from_ref(&d)).await;
    let checks = check(std::slice::from_ref(&d), &facts);
    let c = failing(&checks, "machine_type");
    eprintln!("{}\n  fix: {:?}", c.detail, c.fix);
    assert!(
        c.detail
            .contains("machine type `ubuntu` (`machine_type`, set in build.pkr.hcl:")
    );
    assert!(
        c.detail.contains("`pc`") && c.detail.contains("`q35`"),
        "{}",
        c.detail
    );
    assert!(c.fix.as_deref().unwrap().contains("-machine help"));

    // A newer version of a family than this QEMU knows.
    let d = demand("m", &[("qemuargs", lists(&[&["-machine", "pc-q35-99.0"]]))]);
    let facts = collect(std::slice::from_ref(&d)).await;
    let checks = check(std::slice::from_ref(&d), &facts);
    let c = failing(&checks, "machine_type");
    assert!(
        c.detail.contains("qemuargs[0] `-machine pc-q35-99.0`"),
        "{}",
        c.detail
    );
    assert!(c.detail.contains("close: `q35`"), "{}", c.detail);

    // A supported one.
    let d = demand("m", &[("machine_type", s("q35"))]);
    let facts = collect(std::slice::from_ref(&d)).await;
    let checks = check(std::slice::from_ref(&d), &facts);
    assert_eq!(by_id(&checks, "machine_type")[0].status, Status::Ok);
}

#[tokio::test]
async fn kvm_verdict_of_this_machine_is_reported_as_the_probe_says() {
    let report = probe().await;
    let facts = HostFacts::collect(&[], &CollectOptions::doctor(&test_cache_root())).await;
    let checks = doctor_checks(&facts, None);
    let kvm = by_id(&checks, "kvm");
    assert_eq!(kvm.len(), 1);
    let c = kvm[0];
    eprintln!("{}: {}\n  fix: {:?}", c.status, c.detail, c.fix);
    assert!(
        c.detail.starts_with(&kvm_phrase(&report.verdict)),
        "{}",
        c.detail
    );
    match &report.verdict {
        AccelVerdict::Works { .. } => {
            eprintln!("kvm works on this host: the refusal below is not exercised");
            assert_eq!(c.status, Status::Ok);
        }
        AccelVerdict::GuestsDoNotRun { detail, .. } => {
            assert_eq!(c.status, Status::Warn);
            assert!(c.detail.starts_with(
                "kvm: present but guests do not run (nested virtualization not working): "
            ));
            assert!(c.detail.contains(detail.as_str()));
            assert!(c.fix.as_deref().unwrap().contains("nested virtualization"));
        }
        AccelVerdict::NoPermission { group, .. } => {
            assert_eq!(c.status, Status::Warn);
            if let Some(g) = group {
                assert!(
                    c.fix
                        .as_deref()
                        .unwrap()
                        .contains(&format!("usermod -aG {g}"))
                );
            }
        }
        AccelVerdict::Missing { detail } | AccelVerdict::ProbeFailed { detail } => {
            assert_eq!(c.status, Status::Warn);
            assert!(c.detail.contains(detail.as_str()));
        }
    }

    // `accelerator = "kvm"`: refused unless KVM runs guests.
    let d = demand("k", &[("accelerator", s("kvm"))]);
    let facts = collect(std::slice::from_ref(&d)).await;
    let checks = check(std::slice::from_ref(&d), &facts);
    let accel = by_id(&checks, "accelerator")[0];
    eprintln!("{}: {}\n  fix: {:?}", accel.status, accel.detail, accel.fix);
    if report.verdict.works() {
        assert_eq!(accel.status, Status::Ok);
    } else {
        assert_eq!(accel.status, Status::Fail);
        assert!(accel.detail.contains(&kvm_phrase(&report.verdict)));
        assert!(
            accel
                .detail
                .contains("`accelerator = \"kvm\"` (`accelerator`, set in build.pkr.hcl:")
        );
        assert!(
            accel
                .fix
                .as_deref()
                .unwrap()
                .contains("`accelerator = \"tcg\"`")
        );
        // Unset: a warning that TCG will be used, with the factor.
        let d = demand("u", &[]);
        let checks = check(std::slice::from_ref(&d), &facts);
        let unset = by_id(&checks, "accelerator")[0];
        assert_eq!(unset.status, Status::Warn);
        assert!(unset.detail.contains("kiln uses TCG") && unset.detail.contains("8× slower"));
        // `accel=kvm` in a qemuargs `-machine`, and `-enable-kvm`: refused,
        // naming the entry.
        let d = demand(
            "q",
            &[("qemuargs", lists(&[&["-machine", "q35,accel=kvm"]]))],
        );
        let checks = check(std::slice::from_ref(&d), &facts);
        let c = failing(&checks, "accelerator");
        eprintln!("{}\n  fix: {:?}", c.detail, c.fix);
        assert!(
            c.detail.starts_with(
                "source qemu.q asks for `kvm` (qemuargs[0] `-machine q35,accel=kvm`), but kvm: "
            ),
            "{}",
            c.detail
        );
        assert!(c.fix.as_deref().unwrap().starts_with(
            "change `accel=kvm` to `accel=tcg` in qemuargs[0] `-machine q35,accel=kvm`"
        ));
        let d = demand("e", &[("qemuargs", lists(&[&["-enable-kvm"]]))]);
        let checks = check(std::slice::from_ref(&d), &facts);
        let c = failing(&checks, "accelerator");
        assert!(
            c.detail.contains("(qemuargs[0] `-enable-kvm`)"),
            "{}",
            c.detail
        );
        assert!(
            c.fix
                .as_deref()
                .unwrap()
                .starts_with("remove qemuargs[0] `-enable-kvm`")
        );
        // `kvm:tcg` falls back: a warning, not a refusal.
        let d = demand(
            "f",
            &[("qemuargs", lists(&[&["-machine", "q35,accel=kvm:tcg"]]))],
        );
        let checks = check(std::slice::from_ref(&d), &facts);
        assert_eq!(by_id(&checks, "accelerator")[0].status, Status::Warn);
    }
}

#[tokio::test]
async fn cpu_host_under_tcg_fails_naming_the_qemuargs_entry() {
    let d = demand(
        "c",
        &[
            ("accelerator", s("tcg")),
            ("qemuargs", lists(&[&["-cpu", "host"]])),
        ],
    );
    let facts = collect(std::slice::from_ref(&d)).await;
    let checks = check(std::slice::from_ref(&d), &facts);
    let c = failing(&checks, "cpu_model");
    eprintln!("{}\n  fix: {:?}", c.detail, c.fix);
    assert!(
        c.detail.contains("qemuargs[0] `-cpu host` needs KVM"),
        "{}",
        c.detail
    );
    assert!(c.detail.contains("runs under `tcg`"));
    assert!(c.fix.as_deref().unwrap().contains("`-cpu max`"));
    // The accelerator itself is fine: TCG was asked for.
    assert_eq!(by_id(&checks, "accelerator")[0].status, Status::Ok);
}

#[tokio::test]
async fn busy_port_range_fails() {
    // Hold three consecutive loopback ports.
    // Below Linux's ephemeral range (32768–60999), so no outgoing
    // connection of another process takes one of them meanwhile.
    let start = 21_000u16 + (std::process::id() % 1000) as u16 * 3;
    let (base, held) = (0..200u16)
        .map(|i| start.wrapping_add(i * 3))
        .filter(|b| *b > 1024 && *b < 32_000)
        .find_map(|base| {
            let held: Vec<TcpListener> = (base..base + 3)
                .map_while(|port| TcpListener::bind(("127.0.0.1", port)).ok())
                .collect();
            (held.len() == 3).then_some((base, held))
        })
        .expect("three free consecutive ports");
    assert_eq!(held.len(), 3, "no three free consecutive ports found");
    let d = demand(
        "p",
        &[
            ("host_port_min", n(base as f64)),
            ("host_port_max", n((base + 2) as f64)),
        ],
    );
    let facts = collect(std::slice::from_ref(&d)).await;
    let checks = check(std::slice::from_ref(&d), &facts);
    let c = failing(&checks, "port");
    eprintln!("{}\n  fix: {:?}", c.detail, c.fix);
    assert!(
        c.detail.contains(&format!(
            "no free port for the SSH port forward in 127.0.0.1:{base}..={}",
            base + 2
        )),
        "{}",
        c.detail
    );
    assert!(c.detail.contains("all 3 ports are in use"));
    assert!(c.detail.contains("`host_port_min`"), "{}", c.detail);
    // Freed: the first port is found.
    drop(held);
    let facts = collect(std::slice::from_ref(&d)).await;
    let checks = check(std::slice::from_ref(&d), &facts);
    assert_eq!(by_id(&checks, "port")[0].status, Status::Ok);
}

#[tokio::test]
async fn missing_binary_fails_with_a_package_hint() {
    let d = demand("nb", &[("qemu_binary", s("qemu-system-nosucharch"))]);
    let facts = collect(std::slice::from_ref(&d)).await;
    let checks = check(std::slice::from_ref(&d), &facts);
    let c = failing(&checks, "qemu.binary");
    eprintln!("{}\n  fix: {:?}", c.detail, c.fix);
    assert!(c.detail.contains(
        "`qemu_binary = \"qemu-system-nosucharch\"` (`qemu_binary`, set in build.pkr.hcl:"
    ));
    assert!(c.detail.contains("is not on PATH"));
    let fix = c.fix.as_deref().unwrap();
    assert!(
        fix.contains("no package provides") && fix.contains("`qemu-system`"),
        "{fix}"
    );
    assert!(fix_plan(&checks).is_empty());

    // A real emulator that is not installed here names its package, and
    // `--fix` would install it.
    if which("qemu-system-aarch64").is_some() {
        eprintln!("skipped the aarch64 half: qemu-system-aarch64 is installed");
        return;
    }
    let d = demand(
        "arm",
        &[
            ("qemu_binary", s("qemu-system-aarch64")),
            ("machine_type", s("virt")),
        ],
    );
    let facts = collect(std::slice::from_ref(&d)).await;
    let checks = check(std::slice::from_ref(&d), &facts);
    let c = failing(&checks, "qemu.binary");
    assert!(
        c.fix
            .as_deref()
            .unwrap()
            .contains("install `qemu-system-arm`")
    );
    assert_eq!(
        fix_plan(&checks),
        vec![AptInstall {
            package: "qemu-system-arm".into(),
            because: vec!["qemu.binary".into()],
        }]
    );
}

#[tokio::test]
async fn doctor_reports_the_host_as_json() {
    probe().await;
    let start = Instant::now();
    let facts = HostFacts::collect(&[], &CollectOptions::doctor(&test_cache_root())).await;
    let checks = doctor_checks(&facts, None);
    eprintln!(
        "doctor: {:.0} ms\n{}",
        start.elapsed().as_secs_f64() * 1000.0,
        serde_json::to_string_pretty(&checks).unwrap()
    );
    for id in [
        "qemu.binary",
        "qemu.img",
        "kvm",
        "memory",
        "disk",
        "firmware",
    ] {
        assert!(
            !by_id(&checks, id).is_empty(),
            "no `{id}` check: {checks:#?}"
        );
    }
    let binary = by_id(&checks, "qemu.binary")[0];
    if which("qemu-system-x86_64").is_some() {
        assert_eq!(binary.status, Status::Ok);
        assert!(
            binary.detail.contains("machine types (default `"),
            "{}",
            binary.detail
        );
        assert!(binary.detail.contains("`tcg`"), "{}", binary.detail);
    }
    let json = serde_json::to_value(&checks).unwrap();
    for item in json.as_array().unwrap() {
        let keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys, vec!["id", "status", "detail", "fix"]);
    }
}
