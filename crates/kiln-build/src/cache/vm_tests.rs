//! The step cache on a real QEMU under TCG, gated and locked as every VM
//! test is (see `kiln_test`): ignored unless built with `KILN_VM_TESTS=1`,
//! then they need QEMU, `qemu-img`, `qemu-io` and OVMF, and hold the
//! machine-wide VM lock. Their waits end within the test's `TestDeadline`.
//! Timings are printed, never asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use kiln_qemu::cdrom::{MediaFiles, Source, write_iso};
use kiln_secret::Redactor;
use kiln_ssh::{Auth, KeyPair, KeyPairType, Session, Target, WaitConfig, wait_ready};
use serde_json::json;

use super::checkpoint::{
    BaseDisk, CheckpointOutcome, CheckpointRequest, ResumeMode, Resumed, Vm, VmSetup, VmTemplate,
    clock_sync_command,
};
use super::key::{BaseKeyInputs, CacheKey, QemuHost, StepKeyInputs, base_key, step_key};
use super::store::Store;

const QEMU: &str = "qemu-system-x86_64";

/// The machine-wide VM lock, taken without blocking the runtime.
async fn vm_lock() -> kiln_test::VmLock {
    tokio::task::spawn_blocking(kiln_test::vm_lock)
        .await
        .unwrap()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn test_key(n: u8) -> CacheKey {
    base_key(&BaseKeyInputs {
        base_image_digest: format!("vm-test:{n}"),
        source: json!({}),
        qemu_version: "test".into(),
        machine_type: "test".into(),
        firmware: BTreeMap::new(),
    })
}

/// PIDs of processes whose command line mentions `marker`.
fn processes_mentioning(marker: &Path) -> Vec<(i32, String)> {
    let marker = marker.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(&marker) {
            found.push((pid, cmdline));
        }
    }
    found
}

fn backing_of(disk: &Path) -> String {
    let out = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(disk)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    info["backing-filename"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Whether the disk chain holds `pattern` in the 64 KiB at `offset`
/// (`qemu-io`, read-only, shared).
fn holds(disk: &Path, pattern: u8, offset: &str) -> bool {
    let out = Command::new("qemu-io")
        .args(["-r", "-U", "-f", "qcow2", "-c"])
        .arg(format!("read -P {pattern:#x} {offset} 64k"))
        .arg(disk)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("read 65536/65536 bytes"), "{text}");
    !text.contains("Pattern verification failed")
}

fn staging_is_empty(store: &Store) -> bool {
    std::fs::read_dir(store.root().join("tmp"))
        .unwrap()
        .next()
        .is_none()
}

// ---------------------------------------------------------------------
// A firmware-only VM: the mechanics in seconds.
// ---------------------------------------------------------------------

/// A q35 VM with OVMF, one blank virtio disk and nothing to boot: the
/// firmware idles, QEMU runs, and `qemu-io` over HMP writes the disk.
#[tokio::test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
async fn vm_checkpoint_chain_restore_and_cold_on_a_firmware_only_guest() {
    let ovmf = kiln_test::ovmf().unwrap();
    let _lock = vm_lock().await;
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("steps"))
        .unwrap()
        .with_size_limit(None);
    let base = work.path().join("base.qcow2");
    assert!(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&base)
            .arg("64M")
            .status()
            .unwrap()
            .success()
    );
    let host = QemuHost::probe(QEMU).await.unwrap();
    let template = VmTemplate::new(
        QEMU,
        args(&[
            "-machine",
            "q35,accel=tcg",
            "-m",
            "256",
            "-nodefaults",
            "-display",
            "none",
            "-drive",
            &format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                ovmf.code.display()
            ),
            "-drive",
            "if=pflash,format=raw,unit=1,file={kiln:vars}",
            "-drive",
            "file={kiln:disk0},if=virtio,format=qcow2,id=disk0",
            "-qmp",
            "unix:{kiln:qmp},server=on,wait=off",
        ]),
    );
    let setup = VmSetup {
        template,
        values: BTreeMap::new(),
        host: host.clone(),
        firmware_vars: Some(ovmf.vars.clone()),
        console_log: None,
        cwd: None,
        redactor: Redactor::default(),
    };
    let (k1, k2) = (test_key(1), test_key(2));
    let request = |key: &CacheKey, step: &str| CheckpointRequest {
        key: key.clone(),
        build: "qemu.tiny".into(),
        step: step.into(),
        step_index: 1,
        save_state: true,
    };

    let mut vm = Vm::boot(
        &store,
        setup.clone(),
        &[BaseDisk {
            path: base.clone(),
            format: "qcow2".into(),
            size: None,
        }],
    )
    .await
    .unwrap();
    let runtime = vm.runtime_dir().to_path_buf();
    assert!(
        vm.machine_type().starts_with("pc-q35-"),
        "{}",
        vm.machine_type()
    );
    let write =
        |pattern: u8, offset: &str| format!("qemu-io disk0 \"write -P {pattern:#x} {offset} 64k\"");
    vm.qmp()
        .human_monitor_command(&write(0x11, "0"))
        .await
        .unwrap();

    let r1 = vm.checkpoint(&store, &request(&k1, "one")).await.unwrap();
    assert_eq!(r1.outcome, CheckpointOutcome::Published, "{r1:?}");
    assert!(r1.state_bytes.unwrap() > 0);
    eprintln!(
        "tiny: checkpoint 1 paused {:.2} s (save {:.2} s), state {} bytes, disk {} bytes",
        r1.paused.as_secs_f64(),
        r1.save.as_secs_f64(),
        r1.state_bytes.unwrap(),
        r1.disk_bytes
    );
    assert!(vm.qmp().query_status().await.unwrap().running);
    // The same key again: nothing to do, no pause.
    let again = vm.checkpoint(&store, &request(&k1, "one")).await.unwrap();
    assert_eq!(again.outcome, CheckpointOutcome::AlreadyCached);
    assert_eq!(again.paused, Duration::ZERO);

    vm.qmp()
        .human_monitor_command(&write(0x22, "0"))
        .await
        .unwrap();
    vm.qmp()
        .human_monitor_command(&write(0x33, "1M"))
        .await
        .unwrap();
    let r2 = vm.checkpoint(&store, &request(&k2, "two")).await.unwrap();
    assert_eq!(r2.outcome, CheckpointOutcome::Published, "{r2:?}");
    assert_eq!(vm.parent_key(), Some(&k2));

    let e1 = store.lookup(&k1).unwrap().unwrap();
    let e2 = store.lookup(&k2).unwrap().unwrap();
    assert_eq!(e2.meta.parent, Some(k1.clone()));
    assert_eq!(e1.meta.parent, None);
    // Absolute backing paths naming the final places.
    assert_eq!(backing_of(&e1.disk_paths()[0]), base.to_string_lossy());
    assert_eq!(
        backing_of(&e2.disk_paths()[0]),
        e1.disk_paths()[0].to_string_lossy()
    );
    assert_eq!(
        backing_of(&vm.disks()[0]),
        e2.disk_paths()[0].to_string_lossy()
    );
    assert!(e1.vars_path().unwrap().is_file());
    // The chains hold what was written before each checkpoint.
    assert!(holds(&e1.disk_paths()[0], 0x11, "0"));
    assert!(!holds(&e1.disk_paths()[0], 0x22, "0"));
    assert!(!holds(&e1.disk_paths()[0], 0x33, "1M"));
    assert!(holds(&e2.disk_paths()[0], 0x22, "0"));
    assert!(holds(&e2.disk_paths()[0], 0x33, "1M"));
    let meta_text = std::fs::read_to_string(e2.dir.join("meta.json")).unwrap();
    assert!(meta_text.contains("pc-q35-"), "{meta_text}");

    vm.kill().await;
    assert!(!runtime.exists(), "the runtime dir was left behind");

    // State restore of k2 and a cold resume of k1, side by side.
    let t = Instant::now();
    let (restored, report) = Vm::resume(&store, &e2, setup.clone(), ResumeMode::Auto)
        .await
        .unwrap();
    assert_eq!(report.used, Resumed::State, "{report:?}");
    assert!(restored.qmp().query_status().await.unwrap().running);
    eprintln!(
        "tiny: state restore to running {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let (cold, report) = Vm::resume(&store, &e1, setup.clone(), ResumeMode::Cold)
        .await
        .unwrap();
    assert_eq!(report.used, Resumed::Cold);
    assert_eq!(report.fallback, None);
    assert!(cold.qmp().query_status().await.unwrap().running);
    assert_eq!(
        backing_of(&cold.disks()[0]),
        e1.disk_paths()[0].to_string_lossy()
    );
    restored.kill().await;

    // QEMU ends (here by `quit`; a guest's poweroff in a build): the final
    // overlay and the chain under it stay until the caller drops them.
    cold.qmp().quit().await.unwrap();
    let finished = cold.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(finished.exit.success(), "{}", finished.exit);
    let last = finished.disks[0].clone();
    assert!(last.is_file());
    assert!(holds(&last, 0x11, "0"));
    let in_use = store.ls().unwrap();
    assert!(in_use.iter().any(|e| e.entry.key == k1 && e.in_use));
    drop(finished);
    assert!(!last.exists());
    assert!(store.ls().unwrap().iter().all(|e| !e.in_use));

    // A different command line cannot take the state: Auto boots cold and
    // says why; State refuses.
    let mut changed = setup.clone();
    changed.template.args[3] = "320".into();
    let (vm, report) = Vm::resume(&store, &e2, changed.clone(), ResumeMode::Auto)
        .await
        .unwrap();
    assert_eq!(report.used, Resumed::Cold);
    assert!(
        report
            .fallback
            .as_deref()
            .unwrap_or_default()
            .contains("command line"),
        "{report:?}"
    );
    vm.kill().await;
    assert!(
        Vm::resume(&store, &e2, changed, ResumeMode::State)
            .await
            .is_err()
    );

    assert!(processes_mentioning(store.root()).is_empty());
    assert!(staging_is_empty(&store), "staging dirs were left behind");
}

// ---------------------------------------------------------------------
// The Debian fixture: SSH, files, branches, cold resume.
// ---------------------------------------------------------------------

struct Guest {
    work: tempfile::TempDir,
    key: KeyPair,
    seed: PathBuf,
    host: QemuHost,
    ovmf: kiln_test::Ovmf,
    user: String,
}

impl Guest {
    fn template(&self) -> VmTemplate {
        VmTemplate::new(
            QEMU,
            args(&[
                "-machine",
                "type=q35,accel=tcg",
                "-m",
                "1024",
                "-smp",
                "2",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-netdev",
                "user,id=net0,hostfwd=tcp:127.0.0.1:{kiln:ssh_port}-:22",
                "-device",
                "virtio-net-pci,netdev=net0",
                "-drive",
                &format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    self.ovmf.code.display()
                ),
                "-drive",
                "if=pflash,format=raw,unit=1,file={kiln:vars}",
                "-drive",
                "file={kiln:disk0},if=virtio,format=qcow2",
                "-drive",
                "file={kiln:seed},media=cdrom,format=raw,readonly=on",
                "-qmp",
                "unix:{kiln:qmp},server=on,wait=off",
            ]),
        )
    }

    fn setup(&self, name: &str, port: u16) -> VmSetup {
        VmSetup {
            template: self.template(),
            values: BTreeMap::from([
                ("ssh_port".to_string(), port.to_string()),
                ("seed".to_string(), self.seed.to_string_lossy().into_owned()),
            ]),
            host: self.host.clone(),
            firmware_vars: Some(self.ovmf.vars.clone()),
            console_log: Some(self.work.path().join(format!("console-{name}.log"))),
            cwd: None,
            redactor: Redactor::default(),
        }
    }

    async fn ssh(&self, port: u16, deadline: Duration) -> Session {
        wait_ready(
            Target::new("127.0.0.1", port, self.user.clone()),
            Auth::new().key(self.key.clone()),
            WaitConfig {
                timeout: deadline,
                ..WaitConfig::default()
            },
            |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("no SSH on port {port}: {e}"))
    }
}

async fn run(session: &Session, command: &str) -> String {
    let out = session.exec_capture(command).await.unwrap();
    assert!(
        out.status.success(),
        "`{command}`: {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn console_tail(work: &Path, name: &str) -> String {
    let text =
        std::fs::read_to_string(work.join(format!("console-{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(kiln_vm_tests),
    ignore = "boots a VM for a minute or more; build with KILN_VM_TESTS=1"
)]
async fn vm_checkpoint_restore_branches_and_cold_resume_of_the_base_image() {
    let deadline = kiln_test::TestDeadline::start();
    let image = kiln_test::base_image().unwrap();
    let ovmf = kiln_test::ovmf().unwrap();
    let _lock = vm_lock().await;
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("steps"))
        .unwrap()
        .with_size_limit(None);
    let key = KeyPair::generate(KeyPairType::Ed25519, None, "kiln-cache-test").unwrap();
    let seed = work.path().join("seed.iso");
    let mut files = MediaFiles::new();
    files.insert(
        "user-data".into(),
        Source::Bytes(
            format!(
                "#cloud-config\nssh_authorized_keys:\n  - {}\n",
                key.public_key_line().unwrap()
            )
            .into_bytes(),
        ),
    );
    files.insert(
        "meta-data".into(),
        Source::Bytes(b"instance-id: kiln-cache-test\nlocal-hostname: kiln-cache\n".to_vec()),
    );
    write_iso(&seed, "cidata", &files, None).unwrap();
    let host = QemuHost::probe(QEMU).await.unwrap();
    let guest = Guest {
        key,
        seed,
        host: host.clone(),
        ovmf,
        user: image.default_user.clone(),
        work,
    };
    let work = guest.work.path().to_path_buf();

    // Keys as the pipeline will make them.
    let k0 = base_key(&BaseKeyInputs {
        base_image_digest: format!("fixture:{}", image.info.key),
        source: json!({ "memory": 1024, "cpus": 2, "efi_boot": true }),
        qemu_version: host.version.number.clone(),
        machine_type: host.machines.pin("q35").unwrap(),
        firmware: BTreeMap::new(),
    });
    let k1 = step_key(
        &k0,
        &StepKeyInputs {
            definition: json!({ "type": "shell", "inline": ["echo one > ~/marker-one"] }),
            ..StepKeyInputs::default()
        },
    );
    let k2 = step_key(
        &k1,
        &StepKeyInputs {
            definition: json!({ "type": "shell", "inline": ["echo A > ~/branch"] }),
            ..StepKeyInputs::default()
        },
    );

    // Cold boot of the base image.
    let port = free_port();
    let t = Instant::now();
    let mut source = Vm::boot(
        &store,
        guest.setup("source", port),
        &[BaseDisk {
            path: image.qcow2.clone(),
            format: "qcow2".into(),
            size: None,
        }],
    )
    .await
    .unwrap();
    let mut runtimes = vec![source.runtime_dir().to_path_buf()];
    let s = guest.ssh(port, deadline.left()).await;
    let boot_to_ssh = t.elapsed();
    run(
        &s,
        "cloud-init status --wait >/dev/null; echo one > ~/marker-one && sync",
    )
    .await;

    let report = source
        .checkpoint(
            &store,
            &CheckpointRequest {
                key: k1.clone(),
                build: "qemu.test".into(),
                step: "provision shell".into(),
                step_index: 1,
                save_state: true,
            },
        )
        .await
        .unwrap();
    eprintln!("first checkpoint: {report:?}");
    assert_eq!(report.outcome, CheckpointOutcome::Published, "{report:?}");
    let checkpoint = report.clone();

    // The source runs on, on its new overlay.
    assert_eq!(
        run(&s, "echo two > ~/marker-two && sync && cat ~/marker-one").await,
        "one\n"
    );
    let e1 = store.lookup(&k1).unwrap().unwrap();

    // State restore while the source still runs.
    let port_a = free_port();
    let t = Instant::now();
    let (mut a, ra) = Vm::resume(&store, &e1, guest.setup("a", port_a), ResumeMode::Auto)
        .await
        .unwrap();
    runtimes.push(a.runtime_dir().to_path_buf());
    assert_eq!(ra.used, Resumed::State, "{ra:?}");
    let sa = guest
        .ssh(port_a, deadline.within(Duration::from_secs(120)))
        .await;
    let restore_to_ssh = t.elapsed();
    let restore_launch = ra.launch;
    run(&sa, &clock_sync_command(SystemTime::now())).await;
    assert_eq!(
        run(
            &sa,
            "cat ~/marker-one; test -e ~/marker-two && echo present || echo absent"
        )
        .await,
        "one\nabsent\n"
    );
    let lag: i64 = run(&sa, "date -u +%s").await.trim().parse().unwrap();
    let host_now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (host_now - lag).abs() < 10,
        "guest clock off by {} s",
        host_now - lag
    );

    s.close().await;
    source.kill().await;

    // A second branch from the same checkpoint, side by side with the first.
    let port_b = free_port();
    let t = Instant::now();
    let (b, rb) = Vm::resume(&store, &e1, guest.setup("b", port_b), ResumeMode::Auto)
        .await
        .unwrap();
    runtimes.push(b.runtime_dir().to_path_buf());
    assert_eq!(rb.used, Resumed::State, "{rb:?}");
    let sb = guest
        .ssh(port_b, deadline.within(Duration::from_secs(120)))
        .await;
    let restore_b_to_ssh = t.elapsed();
    run(&sa, "echo A > ~/branch && sync").await;
    run(&sb, "echo B > ~/branch && sync").await;
    assert_eq!(run(&sa, "cat ~/branch").await, "A\n");
    assert_eq!(run(&sb, "cat ~/branch").await, "B\n");

    // Branch A checkpoints on top of the restored entry: a chain.
    let report2 = a
        .checkpoint(
            &store,
            &CheckpointRequest {
                key: k2.clone(),
                build: "qemu.test".into(),
                step: "provision shell".into(),
                step_index: 2,
                save_state: true,
            },
        )
        .await
        .unwrap();
    eprintln!("second checkpoint: {report2:?}");
    assert_eq!(report2.outcome, CheckpointOutcome::Published, "{report2:?}");
    let e2 = store.lookup(&k2).unwrap().unwrap();
    assert_eq!(e2.meta.parent, Some(k1.clone()));
    assert_eq!(
        backing_of(&e2.disk_paths()[0]),
        e1.disk_paths()[0].to_string_lossy()
    );
    run(&sa, "echo after > ~/after-k2 && sync").await;
    sa.close().await;
    sb.close().await;
    a.kill().await;
    b.kill().await;

    // Restore the second entry: branch A's file, not what came after.
    let port_c = free_port();
    let t = Instant::now();
    let (c, rc) = Vm::resume(&store, &e2, guest.setup("c", port_c), ResumeMode::Auto)
        .await
        .unwrap();
    runtimes.push(c.runtime_dir().to_path_buf());
    assert_eq!(rc.used, Resumed::State, "{rc:?}");
    let sc = guest
        .ssh(port_c, deadline.within(Duration::from_secs(120)))
        .await;
    let restore_c_to_ssh = t.elapsed();
    assert_eq!(
        run(
            &sc,
            "cat ~/marker-one ~/branch; test -e ~/after-k2 && echo present || echo absent"
        )
        .await,
        "one\nA\nabsent\n"
    );
    sc.close().await;
    c.kill().await;

    // Cold resume from the first checkpoint: a full boot of its disk.
    let port_d = free_port();
    let t = Instant::now();
    let (d, rd) = Vm::resume(&store, &e1, guest.setup("d", port_d), ResumeMode::Cold)
        .await
        .unwrap();
    runtimes.push(d.runtime_dir().to_path_buf());
    assert_eq!(rd.used, Resumed::Cold);
    let sd = tokio::time::timeout(deadline.left(), guest.ssh(port_d, deadline.left()))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "cold resume: no SSH; console:\n{}",
                console_tail(&work, "d")
            )
        });
    let cold_to_ssh = t.elapsed();
    assert_eq!(
        run(&sd, "cat ~/marker-one; test -e ~/marker-two && echo present || echo absent; test -e ~/branch && echo present || echo absent").await,
        "one\nabsent\nabsent\n"
    );
    sd.close().await;
    d.kill().await;

    let e1_bytes = e1.meta.disks[0].bytes;
    let e2_bytes = e2.meta.disks[0].bytes;
    eprintln!(
        "cache timings: boot to SSH {:.1} s | checkpoint: paused {:.2} s (state save {:.2} s), total {:.2} s, \
         state {:.1} MiB, frozen overlay {:.1} MiB | second checkpoint (restored branch): paused {:.2} s, \
         state {:.1} MiB, overlay {:.1} MiB | restore to SSH: {:.1} s (QEMU start to guest running {:.2} s), {:.1} s (side by side), \
         {:.1} s (chain) | cold resume to SSH {:.1} s | load average {}",
        boot_to_ssh.as_secs_f64(),
        checkpoint.paused.as_secs_f64(),
        checkpoint.save.as_secs_f64(),
        checkpoint.total.as_secs_f64(),
        checkpoint.state_bytes.unwrap_or(0) as f64 / 1048576.0,
        e1_bytes as f64 / 1048576.0,
        report2.paused.as_secs_f64(),
        report2.state_bytes.unwrap_or(0) as f64 / 1048576.0,
        e2_bytes as f64 / 1048576.0,
        restore_to_ssh.as_secs_f64(),
        restore_launch.as_secs_f64(),
        restore_b_to_ssh.as_secs_f64(),
        restore_c_to_ssh.as_secs_f64(),
        cold_to_ssh.as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
    );

    // Nothing left behind: no QEMU, no runtime dir, no staging dir.
    let left = processes_mentioning(store.root());
    assert!(left.is_empty(), "processes left: {left:?}");
    for dir in &runtimes {
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }
    assert!(staging_is_empty(&store), "staging dirs were left behind");
    assert_eq!(store.ls().unwrap().len(), 2);
}
