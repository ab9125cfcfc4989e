//! The base image boots the way kiln uses it, under TCG (nested KVM hangs
//! guests on the machines this runs on):
//! - UEFI: a qcow2 overlay on `base.qcow2`, OVMF pflash with a copy of the
//!   vars, a NoCloud seed ISO (`cidata`) authorising a fresh key for the
//!   default user; SSH, `cloud-init status --wait`, sudo, poweroff.
//! - HTTP seed: the plain `vmlinuz` + `initrd.img` booted directly with
//!   `ds=nocloud-net;s=http://10.0.2.2:PORT/`, the seed served from here.
//!
//! Ignored unless built with `KILN_VM_TESTS=1`. Needs `qemu-system-x86`,
//! `qemu-utils`, `ovmf`, `genisoimage` and `openssh-client`, and root for
//! the first build of the image.

// Helpers of a test file: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kiln_test::{BaseImage, base_image, ovmf, vm_lock};

const SSH_DEADLINE: Duration = Duration::from_secs(600);
const POWEROFF_DEADLINE: Duration = Duration::from_secs(120);

/// Kills QEMU if a test fails before the guest powered off.
struct Qemu {
    child: Child,
    started: Instant,
    serial: PathBuf,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Qemu {
    fn spawn(work: &Path, ssh_port: u16, args: &[String]) -> Qemu {
        let serial = work.join("serial.log");
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", "q35,accel=tcg", "-m", "1024", "-smp", "2"])
            .args(["-display", "none"])
            .arg("-netdev")
            .arg(format!("user,id=net0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"))
            .args(["-device", "virtio-net-pci,netdev=net0"])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
        Qemu {
            child,
            started: Instant::now(),
            serial,
        }
    }

    fn console_tail(&self) -> String {
        let text = fs::read_to_string(&self.serial).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

struct Guest {
    key: PathBuf,
    port: u16,
    user: String,
}

impl Guest {
    fn ssh(&self, command: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-i")
            .arg(&self.key)
            .args(["-p", &self.port.to_string()])
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
            .arg(format!("{}@127.0.0.1", self.user))
            .arg(command)
            .stdin(Stdio::null());
        cmd
    }
}

/// A fresh key pair and the user-data authorising it.
fn seed(work: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = work.join("id_ed25519");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "kiln-test", "-f"])
        .arg(&key));
    let public = fs::read_to_string(key.with_extension("pub")).unwrap();
    let dir = work.join("seed");
    fs::create_dir(&dir).unwrap();
    fs::write(
        dir.join("user-data"),
        format!(
            "#cloud-config\nssh_authorized_keys:\n  - {}\n",
            public.trim()
        ),
    )
    .unwrap();
    fs::write(
        dir.join("meta-data"),
        format!("instance-id: kiln-test-{name}\nlocal-hostname: kiln-test\n"),
    )
    .unwrap();
    (key, dir)
}

fn overlay(image: &BaseImage, work: &Path) -> PathBuf {
    let disk = work.join("disk.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(&image.qcow2)
        .arg(&disk));
    disk
}

/// Waits for SSH, then cloud-init; checks sudo; powers off and waits for
/// QEMU to exit. Prints the milestones.
fn exercise(name: &str, mut qemu: Qemu, guest: &Guest) {
    let mut banner = None;
    let ssh_at = loop {
        if let Ok(Some(status)) = qemu.child.try_wait() {
            panic!(
                "{name}: qemu exited ({status}) before ssh; console:\n{}",
                qemu.console_tail()
            );
        }
        assert!(
            qemu.started.elapsed() < SSH_DEADLINE,
            "{name}: no ssh login within {SSH_DEADLINE:?}; console:\n{}",
            qemu.console_tail()
        );
        if banner.is_none()
            && fs::read_to_string(&qemu.serial).is_ok_and(|t| t.contains("Linux version"))
        {
            banner = Some(qemu.seconds());
        }
        let probe = guest.ssh("true").output();
        if probe.is_ok_and(|o| o.status.success()) {
            break qemu.seconds();
        }
        thread::sleep(Duration::from_millis(500));
    };

    let status = guest
        .ssh("cloud-init status --wait --long")
        .output()
        .unwrap();
    let cloud_init_at = qemu.seconds();
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status_text.contains("status: done"),
        "{name}: cloud-init did not finish cleanly:\n{status_text}"
    );
    let who = run(&mut guest.ssh("sudo -n id -un && cat /var/lib/cloud/instance/datasource"));
    let who = String::from_utf8_lossy(&who.stdout).into_owned();
    assert!(who.starts_with("root\n"), "{name}: sudo: {who}");

    let poweroff_at = Instant::now();
    // The connection may drop before ssh sees an exit status.
    let _ = guest.ssh("sudo poweroff").output();
    let exit = loop {
        if let Some(status) = qemu.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            poweroff_at.elapsed() < POWEROFF_DEADLINE,
            "{name}: qemu still running {POWEROFF_DEADLINE:?} after poweroff; console:\n{}",
            qemu.console_tail()
        );
        thread::sleep(Duration::from_millis(200));
    };
    assert!(exit.success(), "{name}: qemu exited with {exit}");
    eprintln!(
        "{name}: banner {:.1} s, ssh {ssh_at:.1} s, cloud-init done {cloud_init_at:.1} s, \
         poweroff->exit {:.1} s; {}",
        banner.unwrap_or(f64::NAN),
        poweroff_at.elapsed().as_secs_f64(),
        who.lines().nth(1).unwrap_or_default()
    );
}

#[test]
#[cfg_attr(
    not(kiln_vm_tests),
    ignore = "boots a VM for a minute or more; build with KILN_VM_TESTS=1"
)]
fn vm_base_image_boots_uefi_with_nocloud_iso() {
    let image = base_image().unwrap();
    let firmware = ovmf().unwrap();
    let _lock = vm_lock().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (key, seed_dir) = seed(work.path(), "uefi");
    let iso = work.path().join("seed.iso");
    run(Command::new("genisoimage")
        .args(["-quiet", "-volid", "cidata", "-joliet", "-rock", "-output"])
        .arg(&iso)
        .arg(seed_dir.join("user-data"))
        .arg(seed_dir.join("meta-data")));
    let disk = overlay(&image, work.path());
    let vars = work.path().join("vars.fd");
    fs::copy(&firmware.vars, &vars).unwrap();

    let port = free_port();
    let qemu = Qemu::spawn(
        work.path(),
        port,
        &[
            "-drive".into(),
            format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                firmware.code.display()
            ),
            "-drive".into(),
            format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            "-drive".into(),
            format!("file={},if=virtio,format=qcow2", disk.display()),
            "-drive".into(),
            format!("file={},media=cdrom,format=raw,readonly=on", iso.display()),
        ],
    );
    let guest = Guest {
        key,
        port,
        user: image.default_user.clone(),
    };
    exercise("uefi", qemu, &guest);
}

/// Serves `dir` over HTTP/1.0 on 127.0.0.1 and records the paths asked for.
fn serve(dir: PathBuf) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(&dir, stream, &seen);
        }
    });
    (port, requests)
}

fn answer(dir: &Path, mut stream: TcpStream, seen: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    seen.lock().unwrap().push(path.clone());
    let name = path.trim_start_matches('/');
    match fs::read(dir.join(name)) {
        Ok(body) if !name.is_empty() && !name.contains('/') => {
            write!(
                stream,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)
        }
        _ => stream.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    }
}

#[test]
#[cfg_attr(
    not(kiln_vm_tests),
    ignore = "boots a VM for a minute or more; build with KILN_VM_TESTS=1"
)]
fn vm_base_image_kernel_boots_with_http_seed() {
    let image = base_image().unwrap();
    let _lock = vm_lock().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (key, seed_dir) = seed(work.path(), "http");
    let (http_port, requests) = serve(seed_dir);
    let disk = overlay(&image, work.path());

    let port = free_port();
    let qemu = Qemu::spawn(
        work.path(),
        port,
        &[
            "-kernel".into(),
            image.vmlinuz.display().to_string(),
            "-initrd".into(),
            image.initrd.display().to_string(),
            "-append".into(),
            format!(
                "root=LABEL={} ro console=ttyS0 ds=nocloud-net;s=http://10.0.2.2:{http_port}/",
                image.root_label
            ),
            "-drive".into(),
            format!("file={},if=virtio,format=qcow2", disk.display()),
        ],
    );
    let guest = Guest {
        key,
        port,
        user: image.default_user.clone(),
    };
    exercise("http", qemu, &guest);
    let asked = requests.lock().unwrap().clone();
    assert!(
        asked.iter().any(|p| p == "/user-data") && asked.iter().any(|p| p == "/meta-data"),
        "the guest did not fetch the seed over HTTP: {asked:?}"
    );
}
