//! Tests against a real QEMU under TCG, gated and locked as every VM test
//! is (see `kiln_test`): ignored unless built with `KILN_VM_TESTS=1`, then
//! they need QEMU and OVMF and hold the machine-wide VM lock.

// Helpers of a test file: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_qemu::bootcmd;
use kiln_qemu::config::Accelerator;
use kiln_qemu::process::{BootStall, ProcessError, QemuCommand, QemuProcess};
use kiln_qemu::qmp::Qmp;
use kiln_qemu::typing::{TypingOptions, type_boot_command};

const QEMU: &str = "qemu-system-x86_64";

/// The machine-wide VM lock, taken without blocking the runtime.
async fn vm_lock() -> kiln_test::VmLock {
    tokio::task::spawn_blocking(kiln_test::vm_lock)
        .await
        .unwrap()
        .unwrap()
}

fn cmd(args: &[&str]) -> QemuCommand {
    QemuCommand {
        program: QEMU.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        cwd: None,
        console_from_stdout: true,
        console_log: None,
    }
}

fn sock(dir: &Path) -> PathBuf {
    dir.join("qmp.sock")
}

#[tokio::test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
async fn vm_qmp_commands_and_events_on_a_real_qemu() {
    let _vm = vm_lock().await;
    let dir = tempfile::tempdir().unwrap();
    let qmp_arg = format!("unix:{},server=on,wait=off", sock(dir.path()).display());
    let qemu = QemuProcess::spawn(cmd(&[
        "-machine", "none", "-display", "none", "-qmp", &qmp_arg,
    ]))
    .await
    .unwrap();
    let qmp = Qmp::connect(&sock(dir.path()), Duration::from_secs(10))
        .await
        .unwrap();
    let status = qmp.query_status().await.unwrap();
    assert!(status.running, "{status:?}");
    let mut events = qmp.events();
    qmp.stop().await.unwrap();
    let ev = Qmp::wait_event(&mut events, &["STOP"], Duration::from_secs(5)).await;
    assert!(ev.is_some(), "no STOP event");
    assert_eq!(qmp.query_status().await.unwrap().status, "paused");
    qmp.cont().await.unwrap();
    let version = qmp.human_monitor_command("info version").await.unwrap();
    assert!(
        version.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "{version:?}"
    );
    let err = qmp
        .execute_raw("no-such-command", None, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CommandNotFound"), "{err}");
    qmp.quit().await.unwrap();
    let exit = qemu
        .wait_exit_timeout(Duration::from_secs(5))
        .await
        .expect("QEMU did not quit");
    assert!(exit.success(), "{exit}");
}

#[tokio::test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
async fn vm_killed_qemu_is_reported_within_two_seconds() {
    let _vm = vm_lock().await;
    let qemu = QemuProcess::spawn(cmd(&["-machine", "none", "-display", "none"]))
        .await
        .unwrap();
    qemu.check_started(Duration::from_millis(300))
        .await
        .unwrap();
    // Killed by someone else.
    let status = std::process::Command::new("kill")
        .args(["-KILL", &qemu.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let t = Instant::now();
    let exit = qemu
        .wait_exit_timeout(Duration::from_secs(2))
        .await
        .expect("exit not reported within 2 s");
    assert_eq!(exit.signal, Some(9), "{exit}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
async fn vm_bad_qemuargs_switch_reports_qemus_own_error() {
    let _vm = vm_lock().await;
    let qemu = QemuProcess::spawn(cmd(&[
        "-machine",
        "none",
        "-display",
        "none",
        "-no-such-switch",
        "x",
    ]))
    .await
    .unwrap();
    let err = qemu
        .check_started(Duration::from_secs(5))
        .await
        .unwrap_err();
    let ProcessError::EarlyExit { exit, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(exit.code, Some(1), "{err}");
    assert!(err.to_string().contains("-no-such-switch"), "{err}");
    assert!(
        exit.stderr_tail
            .iter()
            .any(|l| l.contains("invalid option")),
        "{err}"
    );
}

/// A 64 KiB BIOS that halts at once: no firmware output at all.
fn silent_rom() -> Vec<u8> {
    let mut rom = vec![0xffu8; 65536];
    rom[..4].copy_from_slice(&[0xfa, 0xf4, 0xeb, 0xfd]); // cli; hlt; jmp $-1
    rom[0xfff0..0xfff5].copy_from_slice(&[0xea, 0x00, 0x00, 0x00, 0xf0]); // jmp f000:0000
    rom
}

#[tokio::test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
async fn vm_silent_guest_trips_the_boot_watchdog() {
    let _vm = vm_lock().await;
    let dir = tempfile::tempdir().unwrap();
    let rom = dir.path().join("silent.rom");
    std::fs::write(&rom, silent_rom()).unwrap();
    let qemu = QemuProcess::spawn(cmd(&[
        "-nodefaults",
        "-machine",
        "pc,accel=tcg",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-bios",
        rom.to_str().unwrap(),
    ]))
    .await
    .unwrap();
    let t = Instant::now();
    let err = qemu
        .watch_boot(Duration::from_secs(2), Accelerator::Tcg)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BootStall::Silent {
                accelerator: Accelerator::Tcg,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("guest is silent"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(4));
    let exit = qemu.kill().await;
    assert_eq!(exit.signal, Some(9));
}

/// The installer path's first step: type into OVMF's UEFI shell over QMP
/// and see the echo and the command's output on the serial console.
#[tokio::test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
async fn vm_boot_command_typed_into_the_uefi_shell() {
    let fw = kiln_qemu::firmware::find_uefi_firmware("x86_64")
        .expect("OVMF firmware (Debian's `ovmf` package)");
    let _vm = vm_lock().await;
    let dir = tempfile::tempdir().unwrap();
    let vars = kiln_qemu::firmware::copy_efivars(&fw.vars, dir.path()).unwrap();
    let log = dir.path().join("console.log");
    let qmp_arg = format!("unix:{},server=on,wait=off", sock(dir.path()).display());
    let code = format!(
        "if=pflash,format=raw,unit=0,readonly=on,file={}",
        fw.code.display()
    );
    let vars = format!("if=pflash,format=raw,unit=1,file={}", vars.display());
    let mut command = cmd(&[
        "-nodefaults",
        "-machine",
        "q35,accel=tcg",
        "-m",
        "256",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-drive",
        &code,
        "-drive",
        &vars,
        "-qmp",
        &qmp_arg,
    ]);
    command.console_log = Some(log.clone());
    let started = Instant::now();
    let qemu = QemuProcess::spawn(command).await.unwrap();
    let qmp = Qmp::connect(&sock(dir.path()), Duration::from_secs(10))
        .await
        .unwrap();
    let first = qemu
        .watch_boot(Duration::from_secs(30), Accelerator::Tcg)
        .await
        .unwrap();
    let console = qemu.console();
    // Keys typed during the startup.nsh countdown are lost: wait for it.
    console
        .wait_for_text(0, "startup.nsh", Duration::from_secs(60))
        .await
        .unwrap_or_else(|seen| panic!("no countdown; console: {seen}"));
    let options = TypingOptions {
        echo_check: Some(Duration::from_secs(10)),
        ..TypingOptions::default()
    };
    let esc = bootcmd::parse("<esc>").unwrap();
    type_boot_command(&qmp, &esc, &options, Some(console))
        .await
        .unwrap();
    let prompt_at = console.offset();
    let _ = prompt_at;
    console
        .wait_for_text(0, "Shell>", Duration::from_secs(30))
        .await
        .unwrap_or_else(|seen| panic!("no shell prompt; console: {seen}"));
    let shell_at = started.elapsed();
    let before = console.offset();
    let keys = bootcmd::parse("echo kiln-typed-OK_:/<enter>").unwrap();
    let report = type_boot_command(&qmp, &keys, &options, Some(console))
        .await
        .unwrap();
    assert_eq!(report.lines_checked, 1);
    // The command's output is its own line.
    let out = console
        .wait_for(before, Duration::from_secs(20), |t| {
            t.lines().any(|l| l.trim() == "kiln-typed-OK_:/")
        })
        .await
        .unwrap_or_else(|seen| panic!("no output line; console since typing: {seen:?}"));
    eprintln!(
        "first console output {first:.1?}, Shell> at {shell_at:.1?}, typed {} keys in {:.2?}; {out:?}",
        report.keys, report.took
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("kiln-typed-OK_:/"),
        "console log lacks the output"
    );
    qmp.quit().await.unwrap();
    qemu.wait_exit_timeout(Duration::from_secs(5))
        .await
        .expect("QEMU did not quit");
}

/// The smoke guest itself runs to the end under TCG on any host.
#[tokio::test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
async fn vm_smoke_guest_runs_under_tcg() {
    let _vm = vm_lock().await;
    let v = kiln_qemu::accel::run_smoke_guest(QEMU, "tcg", Duration::from_secs(10)).await;
    assert!(v.works(), "{v:?}");
}

/// On this machine `/dev/kvm` opens and creates VMs, yet guests are
/// emulated instruction by instruction: the probe must say so.
#[tokio::test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
async fn vm_accelerator_probe_verdict_on_this_host() {
    use kiln_qemu::accel::{AccelVerdict, ProbeOptions, probe_accelerator_with};
    let _vm = vm_lock().await;
    let cache = tempfile::tempdir().unwrap();
    let options = ProbeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..ProbeOptions::default()
    };
    let report = probe_accelerator_with(&options).await;
    eprintln!(
        "probe: {} in {} ms",
        report.verdict.summary(),
        report.took_ms
    );
    match &report.verdict {
        AccelVerdict::Works { .. } => eprintln!("skipped: KVM works on this host"),
        AccelVerdict::Missing { .. } | AccelVerdict::NoPermission { .. } => {
            eprintln!("skipped: no usable /dev/kvm here");
        }
        AccelVerdict::GuestsDoNotRun { reached, .. } => {
            // Present but broken: the guest gets going (so a boot sector
            // alone would have passed) and then crawls.
            assert!(reached.is_some(), "{report:?}");
            assert!(report.took_ms < 10_000, "{report:?}");
        }
        AccelVerdict::ProbeFailed { detail } => panic!("probe failed: {detail}"),
    }
    if report.boot_id.is_some() {
        let again = probe_accelerator_with(&options).await;
        assert!(again.cached, "second probe was not cached");
        assert_eq!(again.verdict, report.verdict);
    }
}
