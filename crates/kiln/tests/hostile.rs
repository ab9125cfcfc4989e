//! Careless and hostile input to the artifact writers and the output
//! layer (issue 10): nothing a user had is destroyed, a rejected artifact
//! is never published, an interrupted writer leaves nothing behind, every
//! error keeps its cause, and nothing printed carries a secret or drives
//! the terminal. Real images (`mkfs.ext4 -d`, `sgdisk`, `qemu-img`), real
//! signals, the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sh(script: &str) {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "script failed: {script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn kiln_cmd(dir: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("kiln"));
    c.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("KILN_CACHE_DIR", dir.join(".cache"));
    c
}

fn kiln(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out: Output = kiln_cmd(dir).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A GPT disk whose partition 1 is an ext4 root made from a small tree;
/// `extra` is run in the tree first (to plant files).
fn disk(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let tree = dir.join(format!("{name}.tree"));
    let img = dir.join(name);
    sh(&format!(
        r#"
t={tree}; rm -rf $t; mkdir -p $t/etc $t/usr/bin $t/root
printf 'ID=debian\nVERSION_ID=12\n' > $t/etc/os-release
printf '#!/bin/sh\necho hi\n' > $t/usr/bin/hello; chmod 755 $t/usr/bin/hello
cd $t; {extra}
cd {dir}
truncate -s 24M {img}.root; mkfs.ext4 -q -F -L root -d $t {img}.root
truncate -s 26M {img}; sgdisk -o -n 1:2048:0 -t 1:8300 {img} >/dev/null
dd if={img}.root of={img} bs=1M seek=1 conv=notrunc status=none; rm -f {img}.root
"#,
        tree = tree.display(),
        dir = dir.display(),
        img = img.display(),
    ));
    img
}

const PLANT_KEY: &str =
    "mkdir -p root/.ssh && ssh-keygen -q -t ed25519 -N '' -C planted -f root/.ssh/id_ed25519";

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kiln-"))
        .collect()
}

#[test]
fn output_that_is_the_input_image_is_refused_and_the_image_kept() {
    let t = tempfile::tempdir().unwrap();
    let img = disk(t.path(), "disk.img", "true");
    let before = std::fs::read(&img).unwrap();
    for cmd in [["maas", "tgz"], ["maas", "dd"]] {
        let (code, _, err) = kiln(
            t.path(),
            &[cmd[0], cmd[1], "disk.img", "-o", "disk.img", "--force"],
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("it is the input"), "{err}");
    }
    // The backing file of a qcow2 overlay is an input too.
    sh(&format!(
        "cd {} && qemu-img create -q -f qcow2 -F raw -b disk.img overlay.qcow2",
        t.path().display()
    ));
    let (code, _, err) = kiln(
        t.path(),
        &["maas", "tgz", "overlay.qcow2", "-o", "disk.img", "--force"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("it is the input `"), "{err}");
    assert_eq!(std::fs::read(&img).unwrap(), before);
}

#[test]
fn output_at_a_device_fifo_or_symlink_is_refused_and_left_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    disk(t.path(), "disk.img", "true");
    let (code, _, err) = kiln(t.path(), &["maas", "tgz", "disk.img", "-o", "/dev/full"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("character device"), "{err}");
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata("/dev/full")
            .unwrap()
            .file_type()
            .is_char_device()
    );

    sh(&format!("mkfifo {}/fifo", t.path().display()));
    let (code, _, err) = kiln(
        t.path(),
        &["maas", "dd", "disk.img", "-o", "fifo", "--force"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("FIFO"), "{err}");

    std::fs::write(t.path().join("precious"), b"mine").unwrap();
    std::os::unix::fs::symlink("precious", t.path().join("link")).unwrap();
    let (code, _, err) = kiln(
        t.path(),
        &["maas", "tgz", "disk.img", "-o", "link", "--force"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("symlink"), "{err}");
    assert_eq!(std::fs::read(t.path().join("precious")).unwrap(), b"mine");
    assert!(
        std::fs::symlink_metadata(t.path().join("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(leftovers(t.path()).is_empty());
}

#[test]
fn existing_output_is_replaced_only_with_force_and_stdout_is_welcome() {
    let t = tempfile::tempdir().unwrap();
    disk(t.path(), "disk.img", "true");
    std::fs::write(t.path().join("out.tar.gz"), b"old").unwrap();
    let (code, _, err) = kiln(t.path(), &["maas", "tgz", "disk.img", "-o", "out.tar.gz"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(t.path().join("out.tar.gz")).unwrap(), b"old");
    let (code, _, err) = kiln(
        t.path(),
        &["maas", "tgz", "disk.img", "-o", "out.tar.gz", "--force"],
    );
    assert_eq!(code, 0, "{err}");
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(t.path().join("out.tar.gz"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("./usr/bin/hello"));
    // `-o -`: the accepted tarball on standard output, nothing left behind.
    let out = kiln_cmd(t.path())
        .args(["maas", "tgz", "disk.img", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(&out.stdout[..2], b"\x1f\x8b", "gzip on stdout");
    assert!(leftovers(t.path()).is_empty());
    assert!(
        leftovers(&std::env::temp_dir())
            .iter()
            .all(|n| !n.starts_with(".kiln-tgz-"))
    );
}

#[test]
fn a_leaking_artifact_is_never_published() {
    let t = tempfile::tempdir().unwrap();
    disk(t.path(), "leaking.img", PLANT_KEY);
    let (code, _, err) = kiln(
        t.path(),
        &["maas", "tgz", "leaking.img", "-o", "out.tar.gz"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("private-key") && err.contains("was not written"),
        "{err}"
    );
    assert!(!t.path().join("out.tar.gz").exists());
    let (code, _, err) = kiln(
        t.path(),
        &[
            "maas",
            "dd",
            "leaking.img",
            "--format",
            "ddraw",
            "-o",
            "out.img",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(!t.path().join("out.img").exists(), "{err}");
    // Stdout gets nothing either.
    let out = kiln_cmd(t.path())
        .args(["maas", "tgz", "leaking.img", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(leftovers(t.path()).is_empty());
}

#[test]
fn interrupted_writers_leave_no_temporary_file() {
    let t = tempfile::tempdir().unwrap();
    // Enough incompressible data that the writer is still busy when the
    // signal comes.
    let img = disk(t.path(), "big.img", "head -c 18M /dev/urandom > usr/blob");
    let _ = img;
    for (cmd, signal) in [("tgz", "TERM"), ("dd", "INT"), ("tgz", "INT")] {
        let child = kiln_cmd(t.path())
            .args([
                "maas", cmd, "big.img", "-o", "out", "--force", "--level", "9",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while leftovers(t.path()).is_empty() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !leftovers(t.path()).is_empty(),
            "{cmd}: no temporary file seen"
        );
        sh(&format!("kill -{signal} {}", child.id()));
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{cmd} {signal}: {out:?}");
        assert!(
            leftovers(t.path()).is_empty(),
            "{cmd} {signal}: {:?}",
            leftovers(t.path())
        );
        assert!(!t.path().join("out").exists());
    }
}

#[test]
fn bad_levels_are_usage_errors() {
    let t = tempfile::tempdir().unwrap();
    disk(t.path(), "disk.img", "true");
    for level in ["0", "13"] {
        let (code, _, err) = kiln(
            t.path(),
            &[
                "maas", "tgz", "disk.img", "-o", "l.tar.gz", "--level", level,
            ],
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--level"), "{err}");
    }
    let (code, _, err) = kiln(
        t.path(),
        &[
            "maas", "dd", "disk.img", "-o", "l.dd.xz", "--format", "ddxz", "--level", "10",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("0..=9"), "{err}");
    assert!(!t.path().join("l.tar.gz").exists());
}

#[test]
fn curtin_directory_symlinks_are_stored_as_links_and_special_files_refused() {
    let t = tempfile::tempdir().unwrap();
    disk(t.path(), "disk.img", "true");
    let c = t.path().join("curtin");
    std::fs::create_dir(&c).unwrap();
    std::fs::write(c.join("curtin-hooks"), b"#!/bin/sh\n").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", c.join("shadow")).unwrap();
    std::os::unix::fs::symlink("/", c.join("root")).unwrap();
    std::os::unix::fs::symlink("/proc", c.join("proc")).unwrap();
    let mut child = kiln_cmd(t.path())
        .args([
            "maas", "tgz", "disk.img", "-o", "c.tar.gz", "--curtin", "curtin",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "hangs on a link to / or /proc"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let listing = Command::new("tar")
        .args(["-tvzf"])
        .arg(t.path().join("c.tar.gz"))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("./curtin/shadow -> /etc/shadow"),
        "{listing}"
    );
    assert!(listing.contains("./curtin/root -> /"), "{listing}");
    assert!(!listing.contains("./curtin/root/"), "{listing}");
    // Nothing of the host's shadow file is in the archive.
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    let root_line = shadow
        .lines()
        .find(|l| l.starts_with("root:"))
        .unwrap_or("");
    let content = Command::new("sh")
        .arg("-c")
        .arg(format!("zcat {}/c.tar.gz", t.path().display()))
        .output()
        .unwrap();
    assert!(
        root_line.is_empty() || !String::from_utf8_lossy(&content.stdout).contains(root_line),
        "the host's /etc/shadow went into the tarball"
    );

    sh(&format!("mkfifo {}/fifo", c.display()));
    let (code, _, err) = kiln(
        t.path(),
        &[
            "maas", "tgz", "disk.img", "-o", "f.tar.gz", "--curtin", "curtin",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("FIFO") && err.contains("fifo"), "{err}");
    assert!(!t.path().join("f.tar.gz").exists());
    assert!(leftovers(t.path()).is_empty());
}

#[test]
fn errors_keep_their_cause() {
    let t = tempfile::tempdir().unwrap();
    // A truncated qcow2: the file being read and the reader's reason.
    disk(t.path(), "cut.img", "head -c 6M /dev/urandom > usr/blob");
    sh(&format!(
        "cd {} && qemu-img convert -O qcow2 cut.img cut.qcow2 && truncate -s 5M cut.qcow2",
        t.path().display()
    ));
    let (code, _, err) = kiln(t.path(), &["maas", "tgz", "cut.qcow2", "-o", "cut.tar.gz"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error: cannot read `/usr/blob`"), "{err}");
    assert!(err.contains("caused by: "), "{err}");
    assert!(leftovers(t.path()).is_empty());

    // Disk full: the OS reason is in the chain.
    let small = t.path().join("small");
    std::fs::create_dir(&small).unwrap();
    disk(t.path(), "full.img", "head -c 8M /dev/urandom > usr/blob");
    let kiln_bin = assert_cmd::cargo::cargo_bin("kiln");
    let out = Command::new("unshare")
        .arg("-m")
        .arg("sh")
        .arg("-c")
        .arg(format!(
            "mount -t tmpfs -o size=1M none {small} && cd {dir} && NO_COLOR=1 {kiln} maas tgz full.img -o {small}/o.tar.gz --no-scan",
            small = small.display(),
            dir = t.path().display(),
            kiln = kiln_bin.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("caused by: No space left on device"), "{err}");
}

#[test]
fn control_characters_from_images_are_escaped() {
    let t = tempfile::tempdir().unwrap();
    disk(
        t.path(),
        "esc.img",
        &format!("{PLANT_KEY} && mv root/.ssh/id_ed25519 \"root/.ssh/id_$(printf '\\033[2J')x\""),
    );
    let (code, _, err) = kiln(t.path(), &["maas", "tgz", "esc.img", "-o", "esc.tar.gz"]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains('\x1b'), "raw escape printed: {err:?}");
    assert!(err.contains("\\x{1b}[2J"), "{err}");
    // A qcow2 whose backing-file name carries an escape sequence.
    sh(&format!(
        "cd {} && qemu-img create -q -f qcow2 -u -F raw -b \"$(printf 'gone\\033]0;owned\\007')\" evil.qcow2 26M",
        t.path().display()
    ));
    let (code, _, err) = kiln(
        t.path(),
        &["maas", "tgz", "evil.qcow2", "-o", "evil.tar.gz"],
    );
    assert_ne!(code, 0, "{err}");
    assert!(
        !err.contains('\x1b') && !err.contains('\x07'),
        "raw escape printed: {err:?}"
    );
    assert!(err.contains("\\x{1b}]0;owned"), "{err}");
}

/// Every channel: human stdout and stderr, `--json`, the build records
/// and logs under `.kiln/`, for failures of each kind.
#[test]
fn failing_builds_never_print_a_sensitive_value() {
    const SECRET: &str = "hunter2-secret-7f3a";
    let t = tempfile::tempdir().unwrap();
    sh(&format!(
        "qemu-img create -q -f qcow2 {}/base.qcow2 64M",
        t.path().display()
    ));
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates/secrets");
    let base = format!("base_image={}/base.qcow2", t.path().display());
    for json in [false, true] {
        let mut args = vec!["build", "-var", &base, "--skip-preflight"];
        if json {
            args.push("--json");
        }
        let template = template.to_str().unwrap();
        args.push(template);
        let (code, out, err) = kiln(t.path(), &args);
        assert_eq!(code, 1, "{err}");
        for build in [
            "prov.null.local",
            "pp.null.local",
            "vm.qemu.qemu",
            "vm.qemu.ssh",
        ] {
            assert!(out.contains(build), "{build} did not run: {out}");
        }
        // Each failure quoted the value, masked.
        for quoted in [
            "token is <sensitive>",
            "post-processor says <sensitive>",
            "-kiln-no-such-switch-<sensitive>",
            "user-<sensitive>@",
        ] {
            assert!(out.contains(quoted), "{quoted} missing: {out}");
        }
        if !json {
            assert!(
                out.contains("Some builds didn't complete successfully"),
                "{out}"
            );
        }
        assert!(!out.contains(SECRET), "stdout leaks the value: {out}");
        assert!(!err.contains(SECRET), "stderr leaks the value: {err}");
    }
    let leaking = Command::new("grep")
        .args(["-rl", SECRET, ".kiln"])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(
        leaking.stdout.is_empty(),
        "written with the value: {}",
        String::from_utf8_lossy(&leaking.stdout)
    );
}
