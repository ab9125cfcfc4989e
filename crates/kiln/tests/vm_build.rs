//! `kiln build` on real QEMU under TCG, end to end: the `kiln` binary runs
//! a template from `tests/templates/<case>/` with `--json` in a private
//! working directory (and a private `TMPDIR`), and the tests read its JSON
//! events, its exit status and what it left on disk.
//!
//! Each boot costs about a minute here, so every boot carries as many
//! checks as it can without weakening them:
//! - `cloudimg`: the packer-maas cloud-image path, then the output disk
//!   booted again (plain QEMU, a second seed with a test key) and looked at
//!   over SSH;
//! - `installer`: a boot command typed into the UEFI shell, an HTTP seed,
//!   SSH, then Ctrl-C during provisioning;
//! - `selfstop`: `communicator = "none"`, a guest that powers itself off;
//! - `nosshd`, `badpass`, `badargs`: the diagnoses of issue 4 that are
//!   about the boot;
//! - the step cache, which boots cold on purpose.
//!
//! Tests that are not about booting do not boot: `reboot` (`expect_disconnect`
//! across a reboot, then a failing script), `killed` (issue 4), the leak
//! gate and the bundled example resume the suite's shared guest
//! (`kiln_test::shared_guest`) in seconds.
//!
//! Ignored unless built with `KILN_VM_TESTS=1` (see `kiln_test`). Every wait
//! ends within the test's [`TestDeadline`], before nextest kills it. Needs
//! `qemu-system-x86`, `qemu-utils`, `ovmf`, `genisoimage`, `dosfstools`,
//! `mtools` and `openssh-client`, and root for the first build of the base
//! image.

// Helpers of a test file: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use kiln_test::{
    BaseImage, SharedGuest, TestDeadline, VmLock, base_image, ovmf, shared_guest, vm_lock,
};
use serde_json::Value;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn template(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/templates")
        .join(case)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

// ---------------------------------------------------------------------
// A test's private directories.

/// `work/` is kiln's working directory, `tmp/` its `TMPDIR`: everything
/// kiln creates is under `root`, so "nothing left behind" can be checked
/// exactly, whatever else runs on the machine.
struct Scene {
    root: tempfile::TempDir,
    work: PathBuf,
    tmp: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        // Short: QMP socket paths must fit in 107 bytes.
        let root = tempfile::Builder::new()
            .prefix("kiln-vmt-")
            .tempdir_in("/tmp")
            .unwrap();
        let work = root.path().join("work");
        let tmp = root.path().join("tmp");
        fs::create_dir(&work).unwrap();
        fs::create_dir(&tmp).unwrap();
        Scene { root, work, tmp }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    fn build(&self, case: &str, vars: &[(&str, &str)]) -> Command {
        self.build_at(&template(case), vars, &[])
    }

    /// `kiln build --json [flags] -var … DIR`.
    fn build_at(&self, dir: &Path, vars: &[(&str, &str)], flags: &[&str]) -> Command {
        let mut cmd = Command::new(KILN);
        cmd.arg("build").arg("--json").args(flags);
        for (name, value) in vars {
            cmd.arg("-var").arg(format!("{name}={value}"));
        }
        cmd.arg(dir)
            .current_dir(&self.work)
            .env("TMPDIR", &self.tmp)
            // A private step cache (and download cache).
            .env("KILN_CACHE_DIR", self.path().join("cache"))
            .env("NO_COLOR", "1")
            .env_remove("PACKER_KEY_INTERVAL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // As a shell runs a foreground job: Ctrl-C goes to this group.
            .process_group(0);
        cmd
    }

    /// Entries of kiln's `TMPDIR`.
    fn temp_files(&self) -> Vec<String> {
        names_in(&self.tmp)
    }

    /// No process mentions this scene (QEMU's argv names its disk, seed and
    /// QMP socket), and kiln's temporary directory is empty.
    fn assert_nothing_left(&self, context: &str) {
        let needle = path_str(self.path());
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut left = processes_mentioning(needle);
        while !left.is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(200));
            left = processes_mentioning(needle);
        }
        assert!(
            left.is_empty(),
            "processes left behind: {left:#?}\n{context}"
        );
        let temp = self.temp_files();
        assert!(
            temp.is_empty(),
            "temporary files left behind in {}: {temp:?}\n{context}",
            self.tmp.display()
        );
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Running processes whose command line contains `needle`: `pid argv…`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(raw) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv = String::from_utf8_lossy(&raw).replace('\0', " ");
        if argv.contains(needle) {
            found.push(format!("{pid} {}", argv.trim_end()));
        }
    }
    found
}

/// Direct children of `parent` whose name starts with `prefix`.
fn children_named(parent: u32, prefix: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..].split_whitespace().nth(1);
        if comm.starts_with(prefix) && ppid == Some(parent.to_string().as_str()) {
            found.push(stat[..open].trim().parse().unwrap());
        }
    }
    found
}

fn signal(target: &str, sig: &str) {
    let status = Command::new("kill")
        .args([sig, "--", target])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {target} failed");
}

// ---------------------------------------------------------------------
// kiln's JSON events.

/// One line of kiln's stdout, stamped with when the test read it.
#[derive(Clone, Debug)]
struct Event {
    at: Duration,
    json: Value,
}

impl Event {
    fn kind(&self) -> &str {
        self.json["event"].as_str().unwrap_or("")
    }
    fn build(&self) -> &str {
        self.json["build"].as_str().unwrap_or("")
    }
    fn text(&self, field: &str) -> &str {
        self.json[field].as_str().unwrap_or("")
    }
}

/// A running `kiln build`: its events as they arrive.
struct Running {
    child: Child,
    started: Instant,
    lines: mpsc::Receiver<(Instant, String)>,
    events: Vec<Event>,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Running {
    fn spawn(mut cmd: Command) -> Running {
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Running {
            child,
            started,
            lines,
            events: Vec::new(),
            stderr: Some(stderr),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn take(&mut self, at: Instant, line: &str) -> Event {
        let json = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("`--json` printed a line that is not JSON ({e}): {line}"));
        let event = Event {
            at: at.duration_since(self.started),
            json,
        };
        self.events.push(event.clone());
        event
    }

    /// Waits for the first new event that `want` accepts.
    fn wait_for(&mut self, what: &str, limit: Duration, want: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    let event = self.take(at, &line);
                    if want(&event) {
                        return event;
                    }
                }
                Err(e) => panic!(
                    "no {what} within {limit:?} ({e:?}); events so far:\n{}",
                    summary(&self.events)
                ),
            }
        }
    }

    /// Waits for kiln to exit and collects everything it said.
    fn finish(mut self, limit: Duration) -> Finished {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                signal(&format!("-{}", self.pid()), "-TERM");
                panic!(
                    "kiln still running after {limit:?}; events:\n{}",
                    summary(&self.events)
                );
            }
            while let Ok((at, line)) = self.lines.try_recv() {
                self.take(at, &line);
            }
            thread::sleep(Duration::from_millis(50));
        };
        let exited = self.started.elapsed();
        while let Ok((at, line)) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.take(at, &line);
        }
        let stderr = self.stderr.take().unwrap().join().unwrap();
        Finished {
            code: status.code(),
            signal: status.signal(),
            events: std::mem::take(&mut self.events),
            stderr,
            exited,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave kiln (and its QEMU) running: stop it
        // as Ctrl-C would, so that its cleanups run.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-INT", "--", &format!("-{}", self.child.id())])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `kiln build` that has exited.
struct Finished {
    code: Option<i32>,
    signal: Option<i32>,
    events: Vec<Event>,
    stderr: String,
    /// From spawn to exit.
    exited: Duration,
}

impl Finished {
    fn of(&self, build: &str, kind: &str) -> std::vec::IntoIter<&Event> {
        self.events
            .iter()
            .filter(|e| e.build() == build && e.kind() == kind)
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Names of the steps that finished, in order.
    fn steps(&self, build: &str) -> Vec<String> {
        self.of(build, "step_finished")
            .map(|e| e.text("step").to_owned())
            .collect()
    }

    /// How the step ended: `ran`, `failed`, `skipped`, `cached`.
    fn outcome(&self, build: &str, step: &str) -> Option<&Value> {
        self.of(build, "step_finished")
            .find(|e| e.text("step") == step)
            .map(|e| &e.json["outcome"])
    }

    fn step_millis(&self, build: &str, step: &str) -> u64 {
        self.of(build, "step_finished")
            .find(|e| e.text("step") == step)
            .and_then(|e| e.json["duration"].as_u64())
            .unwrap_or_else(|| panic!("no step `{step}`\n{}", self.context()))
    }

    fn texts(&self, build: &str, kind: &str, field: &str) -> Vec<String> {
        self.of(build, kind)
            .map(|e| e.text(field).to_owned())
            .collect()
    }

    fn outputs(&self, build: &str) -> Vec<String> {
        self.texts(build, "output", "line")
    }

    fn warnings(&self, build: &str) -> Vec<String> {
        self.texts(build, "warning", "message")
    }

    fn diagnoses(&self, build: &str, stage: &str) -> Vec<String> {
        self.of(build, "diagnosis")
            .filter(|e| e.text("stage") == stage)
            .map(|e| e.text("message").to_owned())
            .collect()
    }

    fn console(&self, build: &str) -> Vec<String> {
        self.texts(build, "console", "line")
    }

    fn finished(&self, build: &str) -> &Event {
        self.of(build, "build_finished")
            .next()
            .unwrap_or_else(|| panic!("no build_finished for {build}\n{}", self.context()))
    }

    /// The build's error (None: it succeeded).
    fn error(&self, build: &str) -> Option<String> {
        self.finished(build).json["error"]
            .as_str()
            .map(str::to_owned)
    }

    /// Prints the events (but the console) with their times, for the log.
    fn log(&self, name: &str) {
        eprintln!(
            "{name}: exit {:?} after {:.1?}\n{}",
            self.code,
            self.exited,
            summary(&self.events)
        );
    }

    /// Everything but the console, and stderr: for assertion messages.
    fn context(&self) -> String {
        format!(
            "exit {:?} (signal {:?}) after {:.1?}\nevents:\n{}\nstderr:\n{}",
            self.code,
            self.signal,
            self.exited,
            summary(&self.events),
            self.stderr
        )
    }
}

fn summary(events: &[Event]) -> String {
    let mut out = String::new();
    let console: Vec<&Event> = events.iter().filter(|e| e.kind() == "console").collect();
    for e in events.iter().filter(|e| e.kind() != "console") {
        out.push_str(&format!("  {:>7.1}s {}\n", e.at.as_secs_f64(), e.json));
    }
    out.push_str("  last console lines:\n");
    for e in &console[console.len().saturating_sub(15)..] {
        out.push_str(&format!("    {}\n", e.text("line")));
    }
    out
}

fn assert_contains(haystack: &str, needle: &str, context: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}\n--\n{context}"
    );
}

/// The steps that ran, in order, contain `wanted` in this order.
fn assert_in_order(steps: &[String], wanted: &[&str], context: &str) {
    let mut at = 0;
    for w in wanted {
        match steps[at..].iter().position(|s| s == w) {
            Some(i) => at += i + 1,
            None => panic!("step `{w}` missing or out of order in {steps:?}\n{context}"),
        }
    }
}

fn base_vars(image: &BaseImage) -> Vec<(&'static str, String)> {
    vec![("base_image", path_str(&image.qcow2).to_owned())]
}

fn as_refs<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

// ---------------------------------------------------------------------
// Plain QEMU and ssh, to look at an image kiln made.

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

fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sha256_of(path: &Path) -> String {
    let out = stdout_of(Command::new("sha256sum").arg(path));
    out.split_whitespace().next().unwrap().to_owned()
}

/// A guest booted by the test itself, killed if the test fails.
struct Vm {
    child: Child,
    serial: PathBuf,
    started: Instant,
    key: PathBuf,
    port: u16,
    user: String,
}

impl Drop for Vm {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Vm {
    /// Boots `disk` through a fresh overlay under OVMF, with a NoCloud seed
    /// (a new instance id) authorising a fresh test key for `user`.
    fn boot(dir: &Path, disk: &Path, user: &str) -> Vm {
        let firmware = ovmf().unwrap();
        fs::create_dir_all(dir).unwrap();
        let key = dir.join("id_ed25519");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "kiln-vm-test", "-f"])
            .arg(&key));
        let public = fs::read_to_string(key.with_extension("pub")).unwrap();
        let seed = dir.join("seed");
        fs::create_dir(&seed).unwrap();
        fs::write(
            seed.join("user-data"),
            format!(
                "#cloud-config\nssh_authorized_keys:\n  - {}\n",
                public.trim()
            ),
        )
        .unwrap();
        fs::write(
            seed.join("meta-data"),
            "instance-id: kiln-vm-test-inspect\nlocal-hostname: kiln-inspect\n",
        )
        .unwrap();
        let iso = dir.join("seed.iso");
        run(Command::new("genisoimage")
            .args(["-quiet", "-volid", "cidata", "-joliet", "-rock", "-output"])
            .arg(&iso)
            .arg(seed.join("user-data"))
            .arg(seed.join("meta-data")));
        let overlay = dir.join("overlay.qcow2");
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(disk)
            .arg(&overlay));
        let vars = dir.join("vars.fd");
        fs::copy(&firmware.vars, &vars).unwrap();
        let serial = dir.join("serial.log");
        let port = free_port();
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", "q35,accel=tcg", "-m", "1024", "-smp", "2"])
            .args(["-display", "none"])
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                firmware.code.display()
            ))
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars.display()
            ))
            .arg("-drive")
            .arg(format!("file={},if=virtio,format=qcow2", overlay.display()))
            .arg("-drive")
            .arg(format!(
                "file={},media=cdrom,format=raw,readonly=on",
                iso.display()
            ))
            .arg("-netdev")
            .arg(format!("user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22"))
            .args(["-device", "virtio-net-pci,netdev=net0"])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
        Vm {
            child,
            serial,
            started: Instant::now(),
            key,
            port,
            user: user.to_owned(),
        }
    }

    fn console_tail(&self) -> String {
        let text = fs::read_to_string(&self.serial).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

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

    /// Waits until the test key logs in; returns the seconds since power-on.
    fn wait_ssh(&mut self, deadline: &TestDeadline) -> f64 {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "qemu exited ({status}) before ssh; console:\n{}",
                    self.console_tail()
                );
            }
            assert!(
                deadline.left() > Duration::ZERO,
                "no ssh login {:.0?} after power-on, and the test's time is up; console:\n{}",
                self.started.elapsed(),
                self.console_tail()
            );
            if self.ssh("true").output().is_ok_and(|o| o.status.success()) {
                return self.started.elapsed().as_secs_f64();
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    fn poweroff(mut self, deadline: &TestDeadline) {
        // The connection may drop before ssh sees an exit status.
        let _ = self.ssh("sudo poweroff").output();
        let limit = deadline.within(Duration::from_secs(120));
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "qemu still running {limit:?} after poweroff; console:\n{}",
            self.console_tail()
        );
    }
}

/// `key=value` lines between `--- name` markers.
fn sections(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("--- ") {
            name = n.to_owned();
            out.insert(name.clone(), String::new());
        } else if let Some(body) = out.get_mut(&name) {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

// ---------------------------------------------------------------------
// The shared guest.

/// The suite's shared guest, checked (or booted and checkpointed, the first
/// time) under the VM lock, and `scene`'s step cache filled from it: the
/// scene's builds of the example's source resume it.
fn shared_guest_in(scene: &Scene, lock: &VmLock, deadline: &TestDeadline) -> SharedGuest {
    let shared = shared_guest(Path::new(KILN), lock, deadline.left()).unwrap();
    eprintln!(
        "shared guest: {} in {:.1} s",
        if shared.booted_cold {
            "booted cold and checkpointed"
        } else {
            "checkpoint found in place"
        },
        shared.took.as_secs_f64()
    );
    shared.cache_into(&scene.path().join("cache")).unwrap();
    shared
}

/// A build of the shared guest's source with the `build` blocks of
/// `tests/templates/<case>/`, in the scene.
fn shared_template(shared: &SharedGuest, scene: &Scene, case: &str) -> PathBuf {
    shared
        .template_with(&template(case), &scene.path().join("template"))
        .unwrap()
}

/// The build resumed the shared guest instead of booting one; prints (and
/// returns) how long that took from the start of `resume_vm` to SSH.
fn assert_resumed_shared_guest(run: &Finished, build: &str) -> Duration {
    let ctx = run.context();
    assert_eq!(outcome_kind(run, build, "resume_vm"), "ran", "{ctx}");
    assert_eq!(outcome_kind(run, build, "run_qemu"), "absent", "{ctx}");
    let to_ssh = Duration::from_millis(
        run.step_millis(build, "resume_vm") + run.step_millis(build, "wait_ssh"),
    );
    eprintln!(
        "{build}: resumed the shared guest, SSH after {:.1} s",
        to_ssh.as_secs_f64()
    );
    to_ssh
}

// ---------------------------------------------------------------------
// The tests.

/// issue 3: the cloud-image path as packer-maas runs it, and the output
/// disk booted again.
#[test]
#[cfg_attr(
    not(kiln_vm_tests),
    ignore = "boots a VM for a minute or more; build with KILN_VM_TESTS=1"
)]
fn vm_cloud_image_build_and_its_output_booted_again() {
    let deadline = TestDeadline::start();
    let image = base_image().unwrap();
    let firmware = ovmf().unwrap();
    let _lock = vm_lock().unwrap();
    let scene = Scene::new();
    let mut vars = base_vars(&image);
    vars.push(("ovmf_code", path_str(&firmware.code).to_owned()));
    vars.push(("ovmf_vars", path_str(&firmware.vars).to_owned()));
    let run = Running::spawn(scene.build("cloudimg", &as_refs(&vars))).finish(deadline.left());
    let ctx = run.context();
    run.log("cloudimg");
    let b = "cloudimg.qemu.cloudimg";
    let deps = "cloudimg.deps.null.dependencies";
    assert_eq!(run.code, Some(0), "{ctx}");
    assert_eq!(run.error(b), None, "{ctx}");
    assert_eq!(run.error(deps), None, "{ctx}");

    // The steps, in Packer's order.
    let steps = run.steps(b);
    assert_in_order(
        &steps,
        &[
            "ssh_key",
            "download",
            "prepare_output_dir",
            "create_cd",
            // The step cache makes the disks and writes the output.
            "cache_lookup",
            "run_qemu",
            "wait_ssh",
            "provision 1/5 shell",
            "provision 2/5 file",
            "provision 3/5 file",
            "provision 4/5 shell",
            // packer-maas's `customize_script` default: `/dev/null`.
            "provision 5/5 shell",
            "clear_authorized_keys",
            "shutdown",
            "convert_disk",
            "post-processor 1.1 manifest",
            "post-processor 2.1 checksum",
            "post-processor 3.1 shell-local",
        ],
        &ctx,
    );
    assert!(
        !steps.iter().any(|s| s == "prepare_efivars"),
        "OVMF comes from qemuargs here: {steps:?}"
    );
    for step in &steps {
        assert_eq!(
            run.outcome(b, step).unwrap()["kind"],
            "ran",
            "{step}\n{ctx}"
        );
    }
    // The null build made the UEFI variables that qemuargs name.
    assert_eq!(run.steps(deps), ["provision 1/1 shell-local"], "{ctx}");
    assert!(scene.work.join("OVMF_VARS.fd").is_file());

    // VNC as packer-maas asks for it (loopback here: no warning), and its
    // shell-local post-processor ran in the template's directory.
    let says = run.texts(b, "say", "message").join("\n");
    assert_contains(
        &says,
        "connect via VNC without a password to vnc://127.0.0.1:",
        &ctx,
    );
    assert!(
        run.outputs(b)
            .iter()
            .any(|l| l == "post-processed cloudimg"),
        "{ctx}"
    );

    // qemuargs dropped the default drives; kiln kept its seed and said so.
    let warnings = run.warnings(b).join("\n");
    assert_contains(
        &warnings,
        "kiln keeps the `cd_files`/`cd_content` seed attached",
        &ctx,
    );

    // What the provisioners printed.
    let outputs = run.outputs(b);
    let all = outputs.join("\n");
    assert!(
        outputs.iter().any(|l| l == "greeting: it's built by kiln"),
        "{ctx}"
    );
    assert!(
        outputs
            .iter()
            .any(|l| l == "setup ran as root with FLAVOUR=vanilla bean"),
        "{ctx}"
    );
    let script = outputs
        .iter()
        .find_map(|l| l.strip_prefix("report: root sees FLAVOUR=vanilla bean in /tmp/"))
        .unwrap_or_else(|| panic!("no report line\n{ctx}"));
    // Earlier provisioners' scripts were removed (skip_clean = false).
    assert!(
        outputs
            .iter()
            .any(|l| *l == format!("report: scripts in /tmp: {script} ")),
        "{ctx}"
    );
    // The seed authorised the build key (and nothing else).
    let authorized: Vec<&str> = outputs
        .iter()
        .filter_map(|l| l.strip_prefix("authorized: "))
        .collect();
    assert_eq!(authorized.len(), 1, "{all}");
    let build_key = authorized[0]
        .split_whitespace()
        .nth(1)
        .expect("a key line: type, key, comment")
        .to_owned();
    assert!(authorized[0].ends_with(" kiln_cloudimg"), "{all}");

    // The artifacts.
    let out_dir = scene.work.join("output-cloudimg");
    let disk = out_dir.join("packer-cloudimg");
    assert_eq!(
        names_in(&out_dir),
        ["cloudimg.sha256", "packer-cloudimg"],
        "{ctx}"
    );
    let info: Value = serde_json::from_str(&stdout_of(
        Command::new("qemu-img")
            .args(["info", "--output=json", "-U"])
            .arg(&disk),
    ))
    .unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 6u64 << 30, "disk_size = 6G");
    assert_eq!(
        info["full-backing-filename"].as_str(),
        Some(path_str(&image.qcow2)),
        "use_backing_file"
    );
    let artifacts = run.texts(b, "artifact", "path");
    assert!(
        artifacts
            .iter()
            .any(|p| p == "output-cloudimg/packer-cloudimg"),
        "{artifacts:?}"
    );

    // manifest: Packer's layout.
    let manifest: Value =
        serde_json::from_str(&fs::read_to_string(scene.work.join("manifest.json")).unwrap())
            .unwrap();
    let builds = manifest["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 1, "{manifest:#}");
    let record = &builds[0];
    let keys: BTreeSet<&str> = record
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "name",
            "builder_type",
            "build_time",
            "files",
            "artifact_id",
            "packer_run_uuid",
            "custom_data"
        ]),
        "{manifest:#}"
    );
    assert_eq!(record["name"], "cloudimg");
    assert_eq!(record["builder_type"], "qemu");
    assert_eq!(record["artifact_id"], "VM");
    assert_eq!(record["custom_data"]["purpose"], "kiln vm test");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let built = record["build_time"].as_u64().unwrap();
    assert!(built <= now && now - built < 3600, "build_time {built}");
    assert_eq!(
        record["files"],
        serde_json::json!([{
            "name": "output-cloudimg/packer-cloudimg",
            "size": fs::metadata(&disk).unwrap().len(),
        }]),
        "{manifest:#}"
    );
    let uuid = record["packer_run_uuid"].as_str().unwrap();
    assert_eq!(manifest["last_run_uuid"].as_str(), Some(uuid));
    assert_eq!(uuid.len(), 36, "{uuid}");

    // checksum: `HEX<TAB>basename`, one line per file of the artifact.
    assert_eq!(
        fs::read_to_string(out_dir.join("cloudimg.sha256")).unwrap(),
        format!("{}\tpacker-cloudimg\n", sha256_of(&disk))
    );

    // Nothing of the build is left but its outputs and the console log.
    scene.assert_nothing_left(&ctx);
    assert_eq!(
        names_in(&scene.work),
        [".kiln", "OVMF_VARS.fd", "manifest.json", "output-cloudimg"]
    );
    let console_log = scene
        .work
        .join(".kiln/logs/cloudimg.qemu.cloudimg/console.log");
    assert_contains(
        &fs::read_to_string(&console_log).unwrap_or_default(),
        "Linux version",
        &format!("console log {}", console_log.display()),
    );
    let build_secs = run.exited.as_secs_f64();
    eprintln!("cloudimg: build {build_secs:.1} s; booting the output again");

    // Boot the output again, with a second seed authorising a test key.
    let mut vm = Vm::boot(&scene.path().join("inspect"), &disk, &image.default_user);
    let ssh_at = vm.wait_ssh(&deadline);
    let report = stdout_of(&mut vm.ssh(
        "set -e
        echo '--- authorized_keys'; cat ~/.ssh/authorized_keys
        echo '--- greeting'; cat /etc/kiln-greeting
        echo '--- facts'; stat -c '%U %a' /etc/kiln-facts; cat /etc/kiln-facts
        echo '--- motd'; cat /etc/motd
        echo '--- tree'; cd /opt/kiln-tree && find . -printf '%P %y %m\\n' | sort
        echo '--- a'; cat /opt/kiln-tree/a.txt
        echo '--- b'; cat /opt/kiln-tree/sub/b.txt
        echo '--- disk'; echo $(( $(cat /sys/block/vda/size) * 512 ))",
    ));
    vm.poweroff(&deadline);
    let s = sections(&report);
    let keys = &s["authorized_keys"];
    assert!(
        !keys.contains(&build_key),
        "the build key is still authorised:\n{keys}"
    );
    assert!(!keys.contains("kiln_cloudimg"), "{keys}");
    assert!(keys.contains("kiln-vm-test"), "the test key: {keys}");
    assert_eq!(s["greeting"], "it's built by kiln\n");
    assert_eq!(
        s["facts"],
        "root 644\nuser=root\nbuild=cloudimg\nbuilder=qemu\nflavour=vanilla bean\nempty=[]\n"
    );
    assert_eq!(
        s["motd"],
        fs::read_to_string(template("cloudimg").join("files/motd")).unwrap()
    );
    // The directory's contents, not the directory; modes kept.
    let mode = |p: &str| {
        let m = fs::metadata(template("cloudimg").join("files/tree").join(p))
            .unwrap()
            .permissions()
            .mode();
        format!("{:o}", m & 0o777)
    };
    assert_eq!(
        s["tree"],
        format!(
            " d 755\na.txt f {}\nsub d {}\nsub/b.txt f {}\nsub/tool.sh f {}\n",
            mode("a.txt"),
            mode("sub"),
            mode("sub/b.txt"),
            mode("sub/tool.sh")
        )
    );
    assert_eq!(s["a"], "alpha\n");
    assert_eq!(s["b"], "beta\n");
    assert_eq!(s["disk"], format!("{}\n", 6u64 << 30));
    eprintln!(
        "cloudimg: build {build_secs:.1} s (wait_ssh {:.1} s, provisioning {:.1} s, shutdown {:.1} s); \
         output booted again: ssh after {ssh_at:.1} s",
        run.step_millis(b, "wait_ssh") as f64 / 1000.0,
        [
            "provision 1/5 shell",
            "provision 2/5 file",
            "provision 3/5 file",
            "provision 4/5 shell",
            "provision 5/5 shell"
        ]
        .iter()
        .map(|s| run.step_millis(b, s))
        .sum::<u64>() as f64
            / 1000.0,
        run.step_millis(b, "shutdown") as f64 / 1000.0,
    );
}

/// A FAT image with the fixture's plain kernel and initramfs at its root
/// and no boot loader: OVMF falls through to its shell.
fn esp_image(dir: &Path, image: &BaseImage) -> PathBuf {
    let esp = dir.join("esp.img");
    fs::File::create(&esp).unwrap().set_len(64 << 20).unwrap();
    run(Command::new("mkfs.vfat")
        .args(["-n", "KILN-SHELL"])
        .arg(&esp));
    for (file, name) in [
        (&image.vmlinuz, "::vmlinuz"),
        (&image.initrd, "::initrd.img"),
    ] {
        run(Command::new("mcopy")
            .arg("-i")
            .arg(&esp)
            .arg(file)
            .arg(name));
    }
    esp
}

/// issue 3: the installer path — a boot command typed over QMP into the
/// UEFI shell boots the kernel with an HTTP seed from kiln's server, then
/// SSH. issue 4: Ctrl-C during provisioning stops everything and cleans up.
#[test]
#[cfg_attr(
    not(kiln_vm_tests),
    ignore = "boots a VM for a minute or more; build with KILN_VM_TESTS=1"
)]
fn vm_installer_boot_command_and_http_seed_then_ctrl_c() {
    let deadline = TestDeadline::start();
    let image = base_image().unwrap();
    let _lock = vm_lock().unwrap();
    let scene = Scene::new();
    let esp = esp_image(scene.path(), &image);
    let mut vars = base_vars(&image);
    vars.push(("esp_image", path_str(&esp).to_owned()));
    vars.push(("root_label", image.root_label.clone()));
    let mut kiln = Running::spawn(scene.build("installer", &as_refs(&vars)));
    let b = "qemu.installer";
    kiln.wait_for("the second provisioner", deadline.left(), |e| {
        e.kind() == "output" && e.text("line") == "kiln-test: provisioning, waiting for Ctrl-C"
    });
    // What a terminal does on Ctrl-C: SIGINT to the foreground group.
    let interrupted = Instant::now();
    signal(&format!("-{}", kiln.pid()), "-INT");
    let run = kiln.finish(deadline.within(Duration::from_secs(120)));
    let stopped = interrupted.elapsed();
    let ctx = run.context();
    run.log("installer");
    assert_eq!(run.code, Some(130), "{ctx}");

    // The boot command was typed into the shell, and the kernel it started
    // got its seed from kiln's HTTP server.
    let steps = run.steps(b);
    assert_in_order(
        &steps,
        &[
            "prepare_efivars",
            "cache_lookup",
            "run_qemu",
            "type_boot_command",
            "wait_ssh",
            "provision 1/2 shell",
            "provision 2/2 shell",
        ],
        &ctx,
    );
    assert!(
        run.step_millis(b, "type_boot_command") >= 15_000,
        "boot_wait"
    );
    let port = run
        .texts(b, "say", "message")
        .iter()
        .find_map(|m| {
            m.strip_prefix("Starting HTTP server on port ")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no HTTP server\n{ctx}"));
    let outputs = run.outputs(b);
    // The EFI stub passes the image's name as the first word.
    let cmdline = format!(
        "cmdline: vmlinuz initrd=\\initrd.img root=LABEL={} ro console=ttyS0 ds=nocloud-net;s=http://10.0.2.2:{port}/",
        image.root_label
    );
    assert!(
        outputs.contains(&cmdline),
        "the kernel did not get the typed command line {cmdline:?}\n{ctx}"
    );
    assert!(
        outputs
            .iter()
            .any(|l| *l == format!("seed: served by 10.0.2.2:{port}")),
        "{ctx}"
    );
    let console = run.console(b);
    assert!(console.iter().any(|l| l.contains("Shell>")), "{ctx}");

    // Ctrl-C: the running provisioner was interrupted, nothing after it ran,
    // and nothing is left: no QEMU, no temporary files, no output.
    assert_eq!(
        run.outcome(b, "provision 2/2 shell").unwrap()["kind"],
        "failed",
        "{ctx}"
    );
    assert_contains(&run.error(b).unwrap_or_default(), "interrupted", &ctx);
    assert!(
        !steps
            .iter()
            .any(|s| s == "shutdown" || s.starts_with("post-processor"))
    );
    scene.assert_nothing_left(&ctx);
    assert_eq!(names_in(&scene.work), [".kiln"], "{ctx}");
    assert!(
        stopped < Duration::from_secs(15),
        "kiln took {stopped:?} to stop after Ctrl-C\n{ctx}"
    );
    eprintln!(
        "installer: ssh {:.1} s after QEMU started (boot command {:.1} s), provisioner output at {:.1} s; \
         Ctrl-C -> exit 130 in {:.2} s",
        (run.step_millis(b, "type_boot_command") + run.step_millis(b, "wait_ssh")) as f64 / 1000.0,
        run.step_millis(b, "type_boot_command") as f64 / 1000.0,
        run.finished(b).at.as_secs_f64() - stopped.as_secs_f64(),
        stopped.as_secs_f64()
    );
}

/// issue 3: `communicator = "none"` — no SSH; the guest powers itself off
/// and kiln waits for it within `shutdown_timeout`.
#[test]
#[cfg_attr(
    not(kiln_vm_tests),
    ignore = "boots a VM for a minute or more; build with KILN_VM_TESTS=1"
)]
fn vm_communicator_none_waits_for_the_guest_to_power_off() {
    let deadline = TestDeadline::start();
    let image = base_image().unwrap();
    let _lock = vm_lock().unwrap();
    let scene = Scene::new();
    let vars = base_vars(&image);
    let run = Running::spawn(scene.build("selfstop", &as_refs(&vars))).finish(deadline.left());
    let ctx = run.context();
    run.log("selfstop");
    let b = "qemu.selfstop";
    assert_eq!(run.code, Some(0), "{ctx}");
    let steps = run.steps(b);
    assert_in_order(
        &steps,
        &[
            "create_cd",
            "prepare_efivars",
            "create_disk",
            "run_qemu",
            "provision 1/1 shell-local",
            "shutdown",
        ],
        &ctx,
    );
    assert!(
        !steps
            .iter()
            .any(|s| s == "ssh_key" || s == "port_forward" || s == "wait_ssh"),
        "no communicator: {steps:?}"
    );
    assert_eq!(run.outputs(b), ["local: selfstop via qemu"], "{ctx}");
    assert!(
        run.texts(b, "say", "message")
            .iter()
            .any(|m| m == "Waiting for shutdown..."),
        "{ctx}"
    );
    // The guest did it: cloud-init's runcmd, then power_state.
    let console = run.console(b).join("\n");
    assert_contains(&console, "kiln-test: powering off", &ctx);
    assert_contains(&console, "reboot: Power down", &ctx);
    assert_eq!(
        names_in(&scene.work.join("output-selfstop")),
        ["efivars.fd", "packer-selfstop"],
        "{ctx}"
    );
    scene.assert_nothing_left(&ctx);
    eprintln!(
        "selfstop: build {:.1} s, of which waiting for the guest to power off {:.1} s",
        run.exited.as_secs_f64(),
        run.step_millis(b, "shutdown") as f64 / 1000.0
    );
}

/// issue 3: `expect_disconnect` across a reboot, then a script whose exit
/// status stops the build with its output shown. On the shared guest.
#[test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
fn vm_reboot_with_expect_disconnect_then_a_failing_script() {
    let deadline = TestDeadline::start();
    let image = base_image().unwrap();
    let lock = vm_lock().unwrap();
    let scene = Scene::new();
    let shared = shared_guest_in(&scene, &lock, &deadline);
    let dir = shared_template(&shared, &scene, "reboot");
    let vars = base_vars(&image);
    let run = Running::spawn(scene.build_at(&dir, &as_refs(&vars), &[])).finish(deadline.left());
    let ctx = run.context();
    run.log("reboot");
    let b = "reboot.qemu.cloudimg";
    assert_eq!(run.code, Some(1), "{ctx}");
    assert_resumed_shared_guest(&run, b);

    // The reboot: the first provisioner lost its connection, as expected,
    // and the second ran in the new boot.
    assert_eq!(
        run.outcome(b, "provision 1/3 shell").unwrap()["kind"],
        "ran",
        "{ctx}"
    );
    assert!(!run.diagnoses(b, "reconnect").is_empty(), "{ctx}");
    let outputs = run.outputs(b);
    let first = outputs
        .iter()
        .find_map(|l| l.strip_prefix("kiln-test: rebooting from boot "))
        .unwrap_or_else(|| panic!("{ctx}"));
    let change = outputs
        .iter()
        .find_map(|l| l.strip_prefix("kiln-test: boot "))
        .unwrap_or_else(|| panic!("{ctx}"));
    let (before, after) = change.split_once(" -> ").unwrap();
    assert_eq!(before, first);
    assert_ne!(before, after, "no reboot happened\n{ctx}");
    assert!(outputs.iter().any(|l| l == "kiln-test: rebooted"), "{ctx}");
    let stderr_lines: Vec<&str> = run
        .of(b, "output")
        .filter(|e| e.text("stream") == "stderr")
        .map(|e| e.text("line"))
        .collect();
    assert_eq!(stderr_lines, ["kiln-test: about to fail"], "{ctx}");

    // The failure: the script, its code, its output; nothing after it.
    let failed = run.outcome(b, "provision 2/3 shell").unwrap();
    assert_eq!(failed["kind"], "failed", "{ctx}");
    let error = run.error(b).unwrap();
    for needle in [
        "provision 2/3 shell",
        "exited with code 3",
        "kiln-test: rebooted",
        "kiln-test: about to fail",
    ] {
        assert_contains(&error, needle, &ctx);
    }
    assert!(!outputs.iter().any(|l| l.contains("must not run")), "{ctx}");
    assert!(
        !run.steps(b)
            .iter()
            .any(|s| s == "provision 3/3 shell" || s == "shutdown")
    );
    assert!(!scene.work.join("output-cloudimg").exists(), "{ctx}");
    scene.assert_nothing_left(&ctx);
    eprintln!(
        "reboot: build {:.1} s; the provisioner that rebooted took {:.1} s, the failing one {:.1} s",
        run.exited.as_secs_f64(),
        run.step_millis(b, "provision 1/3 shell") as f64 / 1000.0,
        run.step_millis(b, "provision 2/3 shell") as f64 / 1000.0
    );
}

/// issue 4: a guest whose sshd never starts — "TCP connected but no SSH
/// banner" at `ssh_timeout`, with the last console lines.
#[test]
#[cfg_attr(
    not(kiln_vm_tests),
    ignore = "boots a VM for a minute or more; build with KILN_VM_TESTS=1"
)]
fn vm_sshd_masked_is_diagnosed_as_no_banner() {
    let deadline = TestDeadline::start();
    let image = base_image().unwrap();
    let _lock = vm_lock().unwrap();
    let scene = Scene::new();
    let mut vars = base_vars(&image);
    // Long enough for the guest to finish booting (about 75 s on an idle
    // 2-core machine under TCG).
    vars.push(("ssh_timeout", "200s".into()));
    let run = Running::spawn(scene.build("nosshd", &as_refs(&vars))).finish(deadline.left());
    let ctx = run.context();
    run.log("nosshd");
    let b = "qemu.nosshd";
    assert_eq!(run.code, Some(1), "{ctx}");
    let waited = run.step_millis(b, "wait_ssh");
    assert!(
        (200_000..215_000).contains(&waited),
        "wait_ssh took {waited} ms for ssh_timeout = 200s\n{ctx}"
    );
    let error = run.error(b).unwrap();
    for needle in [
        "timed out after 200",
        "TCP connected but no SSH banner",
        "last console lines:",
        "kiln-test: sshd is masked",
        "the console shows cloud-init has finished, yet nothing answers on the SSH port: sshd is not running",
    ] {
        assert_contains(&error, needle, &ctx);
    }
    let diagnoses = run.diagnoses(b, "ssh");
    assert!(
        diagnoses
            .iter()
            .any(|d| d.starts_with("TCP connected but no SSH banner")),
        "{diagnoses:?}"
    );
    assert!(
        !diagnoses.iter().any(|d| d.starts_with("SSH banner")),
        "{diagnoses:?}"
    );
    assert!(!run.outputs(b).iter().any(|l| l.contains("must not run")));
    assert!(!scene.work.join("output-nosshd").exists(), "{ctx}");
    scene.assert_nothing_left(&ctx);
    eprintln!("nosshd: build {:.1} s", run.exited.as_secs_f64());
}

/// issue 4: a wrong password (and no key authorised) stops the wait after
/// `ssh_handshake_attempts` refusals, long before `ssh_timeout`; the
/// password appears nowhere in the output.
#[test]
#[cfg_attr(
    not(kiln_vm_tests),
    ignore = "boots a VM for a minute or more; build with KILN_VM_TESTS=1"
)]
fn vm_wrong_password_stops_after_bounded_refusals() {
    let deadline = TestDeadline::start();
    let image = base_image().unwrap();
    let _lock = vm_lock().unwrap();
    let scene = Scene::new();
    let password = "kiln-wrong-Zq7w";
    let mut vars = base_vars(&image);
    vars.push(("password", password.into()));
    let run = Running::spawn(scene.build("badpass", &as_refs(&vars))).finish(deadline.left());
    let ctx = run.context();
    run.log("badpass");
    let b = "qemu.badpass";
    assert_eq!(run.code, Some(1), "{ctx}");
    let error = run.error(b).unwrap();
    for needle in ["authentication refused", "3 times", "password", "publickey"] {
        assert_contains(&error, needle, &ctx);
    }
    let refusals: Vec<&Event> = run
        .of(b, "diagnosis")
        .filter(|e| e.text("message").starts_with("authentication refused"))
        .collect();
    let counts: Vec<&str> = refusals
        .iter()
        .map(|e| &e.text("message")["authentication refused ".len()..][..5])
        .collect();
    assert_eq!(counts, ["(1/3)", "(2/3)", "(3/3)"], "{ctx}");
    let first = refusals[0].at;
    let end = run.finished(b).at;
    assert!(
        end - first < Duration::from_secs(30),
        "{:?} from the first refusal to the end\n{ctx}",
        end - first
    );
    // Nothing printed the password, not even the error.
    for e in &run.events {
        assert!(!e.json.to_string().contains(password), "leaked: {}", e.json);
    }
    assert!(!run.stderr.contains(password), "leaked: {}", run.stderr);
    assert!(!scene.work.join("output-badpass").exists(), "{ctx}");
    scene.assert_nothing_left(&ctx);
    eprintln!(
        "badpass: build {:.1} s; {:.1} s from the first refusal to the end",
        run.exited.as_secs_f64(),
        (end - first).as_secs_f64()
    );
}

/// issue 4: QEMU killed from outside while a provisioner runs — the build
/// fails within 2 s with QEMU's exit status, and cleans up. On the shared
/// guest.
#[test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
fn vm_qemu_killed_mid_provisioning_fails_at_once() {
    let deadline = TestDeadline::start();
    let image = base_image().unwrap();
    let lock = vm_lock().unwrap();
    let scene = Scene::new();
    let shared = shared_guest_in(&scene, &lock, &deadline);
    let dir = shared_template(&shared, &scene, "killed");
    let vars = base_vars(&image);
    let mut kiln = Running::spawn(scene.build_at(&dir, &as_refs(&vars), &[]));
    let b = "killed.qemu.cloudimg";
    kiln.wait_for("the provisioner", deadline.left(), |e| {
        e.kind() == "output" && e.text("line") == "kiln-test: provisioning, kill QEMU now"
    });
    let qemu = children_named(kiln.pid(), "qemu-system");
    assert_eq!(qemu.len(), 1, "QEMU processes of kiln: {qemu:?}");
    let killed_at = kiln.started.elapsed();
    signal(&qemu[0].to_string(), "-KILL");
    let end = kiln.wait_for("the end of the build", Duration::from_secs(30), |e| {
        e.kind() == "build_finished"
    });
    let run = kiln.finish(deadline.within(Duration::from_secs(60)));
    let ctx = run.context();
    run.log("killed");
    let reaction = end.at.saturating_sub(killed_at);
    assert!(
        reaction < Duration::from_secs(2),
        "the build ended {reaction:?} after QEMU was killed\n{ctx}"
    );
    assert_eq!(run.code, Some(1), "{ctx}");
    assert_resumed_shared_guest(&run, b);
    assert_contains(
        &run.error(b).unwrap(),
        "QEMU exited unexpectedly (killed by signal 9)",
        &ctx,
    );
    assert!(!scene.work.join("output-cloudimg").exists(), "{ctx}");
    scene.assert_nothing_left(&ctx);
    eprintln!(
        "killed: build {:.1} s; ended {:.2} s after QEMU was killed",
        run.exited.as_secs_f64(),
        reaction.as_secs_f64()
    );
}

/// issue 4: a `qemuargs` switch QEMU does not know — QEMU's own error.
#[test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
fn vm_bad_qemuargs_switch_shows_qemus_error() {
    let deadline = TestDeadline::start();
    let image = base_image().unwrap();
    let _lock = vm_lock().unwrap();
    let scene = Scene::new();
    let vars = base_vars(&image);
    let run = Running::spawn(scene.build("badargs", &as_refs(&vars)))
        .finish(deadline.within(Duration::from_secs(120)));
    let ctx = run.context();
    run.log("badargs");
    let b = "qemu.badargs";
    assert_eq!(run.code, Some(1), "{ctx}");
    assert_eq!(
        run.outcome(b, "run_qemu").unwrap()["kind"],
        "failed",
        "{ctx}"
    );
    assert_contains(
        &run.error(b).unwrap(),
        "-kiln-no-such-switch: invalid option",
        &ctx,
    );
    assert!(!scene.work.join("output-badargs").exists(), "{ctx}");
    scene.assert_nothing_left(&ctx);
    eprintln!("badargs: failed after {:.1} s", run.exited.as_secs_f64());
}

// ---------------------------------------------------------------------
// The step cache.

/// A copy of the `cache` template the test may edit.
fn cache_template(dir: &Path) -> PathBuf {
    let to = dir.join("template");
    fs::create_dir_all(&to).unwrap();
    for name in ["cache.pkr.hcl", "last.sh"] {
        fs::copy(template("cache").join(name), to.join(name)).unwrap();
    }
    to
}

fn append(path: &Path, line: &str) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    writeln!(f, "{line}").unwrap();
}

fn outcome_kind(done: &Finished, build: &str, step: &str) -> String {
    done.outcome(build, step)
        .and_then(|o| o["kind"].as_str().or_else(|| o.as_str()))
        .unwrap_or("absent")
        .to_owned()
}

fn says(done: &Finished, build: &str) -> Vec<String> {
    done.texts(build, "say", "message")
}

fn assert_outcomes(done: &Finished, build: &str, wanted: &[(&str, &str)]) {
    for (step, kind) in wanted {
        assert_eq!(
            outcome_kind(done, build, step),
            *kind,
            "step `{step}`\n{}",
            done.context()
        );
    }
}

const CACHE_BUILD: &str = "qemu.cache";
const P1: &str = "provision 1/3 shell";
const P2: &str = "provision 2/3 shell";
const P3: &str = "provision 3/3 shell";

#[test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
fn vm_step_cache_reuses_the_longest_unchanged_prefix() {
    let deadline = TestDeadline::start();
    let image = base_image().unwrap();
    let _lock = vm_lock().unwrap();
    let scene = Scene::new();
    let dir = cache_template(scene.path());
    let base = path_str(&image.qcow2).to_owned();
    let vars = [("base_image", base.as_str())];
    let cache = scene.path().join("cache");

    // 1. A full build: every step runs and is checkpointed.
    let full = Running::spawn(scene.build_at(&dir, &vars, &[])).finish(deadline.left());
    full.log("full build");
    assert_eq!(full.code, Some(0), "{}", full.context());
    assert_outcomes(
        &full,
        CACHE_BUILD,
        &[
            ("run_qemu", "ran"),
            ("wait_ssh", "ran"),
            (P1, "ran"),
            (P2, "ran"),
            (P3, "ran"),
        ],
    );
    let said = says(&full, CACHE_BUILD).join("\n");
    for step in ["wait_ssh", P1, P2, P3] {
        assert_contains(&said, &format!("Cached {step} as "), &full.context());
    }
    let output = scene.work.join("output-cache/packer-cache");
    assert!(output.is_file(), "no output disk\n{}", full.context());
    let ls = stdout_of(
        Command::new(KILN)
            .args(["cache", "ls", "--json"])
            .env("KILN_CACHE_DIR", &cache),
    );
    let entries: Value = serde_json::from_str(&ls).unwrap();
    assert_eq!(entries["entries"].as_array().map(Vec::len), Some(4), "{ls}");

    // The sensitive value is in the guest's disk, never in the metadata.
    let token = "kiln-cache-token-0b2f7c";
    assert!(!ls.contains(token));
    for meta in walk_files(&cache.join("steps")) {
        if meta.file_name().is_some_and(|n| n == "meta.json") {
            let text = fs::read_to_string(&meta).unwrap();
            assert!(!text.contains(token), "{} holds the token", meta.display());
        }
    }

    // 2. One byte more in the last script: only the last step runs, on the
    //    restored VM (the earlier steps' files are there).
    append(&dir.join("last.sh"), "# edit 1");
    let rebuilt = Running::spawn(scene.build_at(&dir, &vars, &["-force"])).finish(deadline.left());
    rebuilt.log("last script changed");
    assert_eq!(rebuilt.code, Some(0), "{}", rebuilt.context());
    assert_outcomes(
        &rebuilt,
        CACHE_BUILD,
        &[
            ("resume_vm", "ran"),
            (P1, "cached"),
            (P2, "cached"),
            (P3, "ran"),
            ("run_qemu", "absent"),
        ],
    );
    let out = rebuilt.outputs(CACHE_BUILD).join("\n");
    assert_contains(&out, "seen: early=one middle=middle", &rebuilt.context());
    assert_contains(&out, "last: # edit 1", &rebuilt.context());
    assert_contains(
        &says(&rebuilt, CACHE_BUILD).join("\n"),
        "(saved state)",
        &rebuilt.context(),
    );

    // 3. An environment value of the first step: the build reruns from
    //    there. Killed right after that step's checkpoint, it leaves a
    //    cache the next build uses.
    let early = [("base_image", base.as_str()), ("early", "two")];
    let mut killed = Running::spawn(scene.build_at(&dir, &early, &["-force"]));
    killed.wait_for("provision 1's checkpoint", deadline.left(), |e| {
        e.kind() == "say" && e.text("message").starts_with(&format!("Cached {P1} as"))
    });
    let resumed_at = killed
        .events
        .iter()
        .any(|e| e.text("step") == "resume_vm" && e.kind() == "step_finished");
    assert!(
        resumed_at,
        "no resume from wait_ssh:\n{}",
        summary(&killed.events)
    );
    signal(&format!("-{}", killed.pid()), "-KILL");
    let gone = killed.finish(deadline.within(Duration::from_secs(30)));
    assert_eq!(gone.signal, Some(9), "{}", gone.context());
    // A killed kiln cannot remove its scratch directory; nothing else.
    for left in scene.temp_files() {
        assert!(left.starts_with("kiln-"), "{left} left by the killed build");
        fs::remove_dir_all(scene.tmp.join(&left)).unwrap();
    }
    let again = Running::spawn(scene.build_at(&dir, &early, &["-force"])).finish(deadline.left());
    again.log("after a killed build");
    assert_eq!(again.code, Some(0), "{}", again.context());
    assert_outcomes(
        &again,
        CACHE_BUILD,
        &[(P1, "cached"), (P2, "ran"), (P3, "ran")],
    );
    assert_contains(
        &again.outputs(CACHE_BUILD).join("\n"),
        "seen: early=two middle=middle",
        &again.context(),
    );

    // 4. Two builds at once on the same cache, each with its own last
    //    script: both resume from the shared entry and both succeed.
    let twins: Vec<(PathBuf, PathBuf)> = ["a", "b"]
        .iter()
        .map(|n| {
            let work = scene.path().join(format!("work-{n}"));
            fs::create_dir_all(&work).unwrap();
            let t = cache_template(&work);
            append(&t.join("last.sh"), &format!("# twin {n}"));
            (work, t)
        })
        .collect();
    let running: Vec<Running> = twins
        .iter()
        .map(|(work, t)| {
            let mut cmd = scene.build_at(t, &vars, &[]);
            cmd.current_dir(work);
            Running::spawn(cmd)
        })
        .collect();
    for (n, r) in ["a", "b"].iter().zip(running) {
        let done = r.finish(deadline.left());
        done.log(&format!("twin {n}"));
        assert_eq!(done.code, Some(0), "twin {n}\n{}", done.context());
        assert_outcomes(&done, CACHE_BUILD, &[(P2, "cached"), (P3, "ran")]);
        assert_contains(
            &done.outputs(CACHE_BUILD).join("\n"),
            &format!("last: # twin {n}"),
            &done.context(),
        );
    }

    // 5. Another base image: nothing is reused. `--until wait_ssh` stops
    //    after the first checkpoint, with no artifact.
    let other = scene.path().join("other-base.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(&image.qcow2)
        .arg(&other));
    let other_vars = [("base_image", path_str(&other))];
    let fresh =
        Running::spawn(scene.build_at(&dir, &other_vars, &["-force", "--until", "wait_ssh"]))
            .finish(deadline.left());
    fresh.log("another base image");
    assert_eq!(fresh.code, Some(0), "{}", fresh.context());
    let said = says(&fresh, CACHE_BUILD).join("\n");
    assert_contains(&said, "nothing cached for this build yet", &fresh.context());
    assert_contains(&said, "Stopped after wait_ssh", &fresh.context());
    assert_outcomes(&fresh, CACHE_BUILD, &[("run_qemu", "ran"), (P1, "absent")]);
    assert!(fresh.error(CACHE_BUILD).is_none(), "{}", fresh.context());
    scene.assert_nothing_left(&fresh.context());
}

/// Every file under `dir`.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------
// MAAS artifacts (issue 5).

/// The bundled example, built as README's first command builds it (but
/// resuming its guest, the shared one, instead of booting it): its MAAS
/// tarball passes the leak scan, holds what the provisioners wrote, and the
/// build record says so.
#[test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
fn vm_example_builds_a_maas_tarball_with_a_clean_scan() {
    let deadline = TestDeadline::start();
    let image = base_image().unwrap();
    let lock = vm_lock().unwrap();
    let scene = Scene::new();
    let shared = shared_guest_in(&scene, &lock, &deadline);
    let example = &shared.example;
    let vars = base_vars(&image);
    let done =
        Running::spawn(scene.build_at(example, &as_refs(&vars), &[])).finish(deadline.left());
    done.log("example");
    let ctx = done.context();
    assert_eq!(done.code, Some(0), "{ctx}");
    let b = "qemu.cloudimg";
    assert_resumed_shared_guest(&done, b);
    assert_in_order(
        &done.steps(b),
        &[
            "wait_ssh",
            "provision 3/3 shell",
            "shutdown",
            "post-processor 1.1 maas-tgz",
        ],
        &ctx,
    );
    let tgz = scene.work.join("output-cloudimg/custom-cloudimg.tar.gz");
    let size = fs::metadata(&tgz).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20 << 20, "tarball of {size} bytes\n{ctx}");

    // The scan of the artifact, again, from the command line.
    let scan = Command::new(KILN)
        .args(["scan", "--json"])
        .arg(&tgz)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&scan.stdout);
    assert!(scan.status.success(), "kiln scan: {report}\n{ctx}");

    // What the provisioners wrote, as curtin would extract it.
    let greeting = stdout_of(
        Command::new("tar")
            .args(["-xzf"])
            .arg(&tgz)
            .args(["-O", "./etc/kiln-greeting"]),
    );
    assert_eq!(greeting, "built with kiln\n");
    let names = stdout_of(Command::new("tar").arg("-tzf").arg(&tgz));
    for wanted in ["./etc/motd", "./opt/kiln/build-info", "./usr/bin/"] {
        assert!(
            names.lines().any(|l| l == wanted),
            "{wanted} not in the tarball"
        );
    }
    assert!(!names.lines().any(|l| l.starts_with("./etc/ssh/ssh_host_")));

    // The build record: the artifact's digest and a clean scan verdict.
    let records: Vec<PathBuf> = walk_files(&scene.work.join(".kiln/records"));
    assert_eq!(records.len(), 1, "{records:?}");
    let record: Value = serde_json::from_str(&fs::read_to_string(&records[0]).unwrap()).unwrap();
    let text = record.to_string();
    assert!(text.contains("custom-cloudimg.tar.gz"), "{text}");
    assert!(text.contains("\"scans\""), "{text}");
    scene.assert_nothing_left(&ctx);
}

/// A private key, the build's key and a sensitive value in the image: the
/// gate fails the build, names each, removes the tarball, and never prints
/// the value. The build key survives `ssh_clear_authorized_keys` in a copy
/// of the login's `authorized_keys`, as a careless provisioner leaves it.
#[test]
#[cfg_attr(not(kiln_vm_tests), ignore = "starts QEMU; build with KILN_VM_TESTS=1")]
fn vm_leak_gate_fails_naming_the_key_the_build_key_and_the_secret() {
    let deadline = TestDeadline::start();
    let image = base_image().unwrap();
    let lock = vm_lock().unwrap();
    let scene = Scene::new();
    let shared = shared_guest_in(&scene, &lock, &deadline);
    let dir = shared_template(&shared, &scene, "leak");
    let vars = base_vars(&image);
    let done = Running::spawn(scene.build_at(&dir, &as_refs(&vars), &[])).finish(deadline.left());
    done.log("leak");
    let ctx = done.context();
    assert_eq!(done.code, Some(1), "{ctx}");
    let b = "leak.qemu.cloudimg";
    assert_resumed_shared_guest(&done, b);
    let error = done.error(b).unwrap_or_default();
    assert_contains(&error, "leak scan found", &ctx);
    for rule in ["private-key", "build-key", "sensitive-value"] {
        assert_contains(&error, rule, &ctx);
    }
    assert_contains(&error, "home/debian/.ssh/id_ed25519", &ctx);
    assert_contains(&error, "home/debian/.ssh/authorized_keys2", &ctx);
    assert_contains(&error, "etc/app.conf", &ctx);
    assert!(
        !scene.work.join("output-leak/leak.tar.gz").exists(),
        "{ctx}"
    );
    let everything = format!(
        "{}\n{}",
        done.events
            .iter()
            .map(|e| e.json.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        done.stderr
    );
    assert!(
        !everything.contains("kiln-leak-token-5d1e9a"),
        "the secret was printed"
    );
    scene.assert_nothing_left(&ctx);
}
