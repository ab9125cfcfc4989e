//! What canonical/packer-maas's templates need from kiln (issue 9), on the
//! real binary: VNC with Packer's meaning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn vnc_port_is_picked_in_range_password_set_and_rfb_answers() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base.qcow2");
    assert!(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&base)
            .arg("64M")
            .status()
            .unwrap()
            .success()
    );
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates/vnc");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .current_dir(t.path())
        .env("NO_COLOR", "1")
        .env("KILN_CACHE_DIR", t.path().join(".cache"))
        .args(["build", "--skip-preflight", "-var"])
        .arg(format!("base_image={}", base.display()))
        .arg(&template)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    let mut target = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        if let Some(at) = line.find("vnc://") {
            target = Some(line[at + "vnc://".len()..].trim().to_string());
            break;
        }
    }
    let target = target.unwrap_or_else(|| panic!("no VNC address printed: {seen:#?}"));
    let all = seen.join("\n");
    assert!(all.contains("with the password "), "{all}");
    assert!(all.contains("anyone who reaches this host"), "{all}");
    let port: u16 = target.rsplit(':').next().unwrap().parse().unwrap();
    assert!((5990..6190).contains(&port), "{port}");
    // RFB: the server speaks first; with a password it offers VNC auth (2).
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut banner = [0u8; 12];
    s.read_exact(&mut banner).unwrap();
    assert!(banner.starts_with(b"RFB 003."), "{banner:?}");
    s.write_all(b"RFB 003.008\n").unwrap();
    let mut n = [0u8; 1];
    s.read_exact(&mut n).unwrap();
    let mut types = vec![0u8; n[0] as usize];
    s.read_exact(&mut types).unwrap();
    assert_eq!(types, [2], "VNC authentication only");
    drop(s);
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
}

fn kiln(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("KILN_CACHE_DIR", dir.join(".cache"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const PINNED: &str = r#"
packer {
  required_version = ">= 99.0.0"
  required_plugins {
    qemu = {
      version = ">= 1.1.0, < 1.1.2"
      source  = "github.com/hashicorp/qemu"
    }
  }
}
source "null" "n" {
  communicator = "none"
}
build {
  sources = ["source.null.n"]
}
"#;

#[test]
fn init_names_built_in_plugins_and_version_prints_the_followed_packer() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("a.pkr.hcl"),
        PINNED.replace(">= 99.0.0", ">= 1.7.0"),
    )
    .unwrap();
    let (code, out, err) = kiln(t.path(), &["init", "-upgrade", "."]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("qemu >= 1.1.0, < 1.1.2 (github.com/hashicorp/qemu): built in"),
        "{out}"
    );
    assert!(out.contains("required_version >= 1.7.0: met"), "{out}");

    std::fs::write(
        t.path().join("b.pkr.hcl"),
        "packer {\n  required_plugins {\n    ansible = {\n      source = \"github.com/hashicorp/ansible\"\n      version = \"~> 1\"\n    }\n  }\n}\n",
    )
    .unwrap();
    let (code, out, err) = kiln(t.path(), &["init", "."]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("ansible ~> 1 (github.com/hashicorp/ansible): not supported"),
        "{out}"
    );

    let (code, out, _) = kiln(t.path(), &["version"]);
    assert_eq!(code, 0);
    let followed = kiln_template::load::PACKER_COMPAT_VERSION;
    assert!(
        out.contains(&format!("Packer semantics: {followed}")),
        "{out}"
    );
}

#[test]
fn newer_required_version_is_refused_unless_ignored() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("a.pkr.hcl"), PINNED).unwrap();
    for cmd in ["validate", "inspect", "plan", "init"] {
        let (code, _, err) = kiln(t.path(), &[cmd, "."]);
        assert_ne!(code, 0, "{cmd}: {err}");
        assert!(err.contains("a.pkr.hcl:3:22"), "{cmd}: {err}");
        assert!(err.contains("--ignore-version-"), "{cmd}: {err}");
        let (code, _, err) = kiln(t.path(), &[cmd, "--ignore-version-constraint", "."]);
        assert_eq!(code, 0, "{cmd}: {err}");
        assert!(
            err.contains("unmet Packer version constraint ignored"),
            "{cmd}: {err}"
        );
    }
}

/// packer-maas hard-codes `-machine accel=kvm` and `-cpu host`; on a host
/// where KVM does not run guests, preflight refuses unless software
/// emulation is forced, which rewrites both and says so. (The template's
/// last switch stops QEMU at once: the test is about the command line.)
#[test]
fn accel_tcg_rewrites_kvm_only_arguments_and_passes_preflight() {
    let t = tempfile::tempdir().unwrap();
    assert!(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "base.qcow2", "64M"])
            .current_dir(t.path())
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(
        t.path().join("kvm.pkr.hcl"),
        r#"
variable "base_image" {
  type = string
}
source "qemu" "kvm" {
  iso_url          = var.base_image
  iso_checksum     = "none"
  disk_image       = true
  use_backing_file = true
  memory           = 256
  disk_size        = "1G"
  headless         = true
  communicator     = "none"
  qemuargs         = [["-machine", "accel=kvm"], ["-cpu", "host"], ["-kiln-stop-here"]]
}
build {
  sources = ["source.qemu.kvm"]
}
"#,
    )
    .unwrap();
    let base = format!("base_image={}/base.qcow2", t.path().display());
    let kvm_runs = std::fs::metadata("/dev/kvm").is_ok()
        && kiln(t.path(), &["doctor", "--json"])
            .1
            .contains("\"kvm: works");
    if !kvm_runs {
        let (code, _, err) = kiln(t.path(), &["build", "-var", &base, "."]);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("`-machine accel=kvm`"), "{err}");
    }
    let (code, out, err) = kiln(t.path(), &["build", "--accel", "tcg", "-var", &base, "."]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("--accel tcg: qemuargs `-machine accel=kvm` → `-machine accel=tcg`"),
        "{err}"
    );
    assert!(
        err.contains("--accel tcg: qemuargs `-cpu host` → `-cpu max`"),
        "{err}"
    );
    assert!(!err.contains("preflight refused"), "{err}");
    assert!(
        out.contains("-machine accel=tcg") && out.contains("-cpu max"),
        "{out}"
    );
    assert!(out.contains("-kiln-stop-here: invalid option"), "{out}");
    let (code, _, err) = kiln(t.path(), &["build", "--accel", "hvf", "-var", &base, "."]);
    assert_eq!(code, 2, "{err}");
}

/// The compatibility corpus: templates written to exercise every construct
/// packer-maas uses (lookup maps keyed by architecture, `qemu_img_args`,
/// `qemuargs` re-declaring every drive with pflash firmware, `http_content`
/// with `templatefile`, held modifiers in `boot_command`, `floppy_files`,
/// `sata`/`cdrom_interface`, `null` builds making seeds with
/// `cloud-localds`, `shell-local` post-processors, `/dev/null` scripts,
/// VNC options, `required_plugins`) validate and plan. The cloud-image one
/// also builds in the VM tests (`vm_cloud_image_build_and_its_output_booted_again`).
#[test]
fn compatibility_corpus_validates_and_plans() {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates");
    let mut cases: Vec<(std::path::PathBuf, Vec<String>)> =
        std::fs::read_dir(templates.join("compat"))
            .unwrap()
            .map(|e| (e.unwrap().path(), Vec::new()))
            .collect();
    cases.push((
        templates.join("cloudimg"),
        [
            "base_image=/srv/images/base.qcow2",
            "ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd",
            "ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.fd",
        ]
        .iter()
        .map(|v| v.to_string())
        .collect(),
    ));
    assert!(cases.len() >= 2);
    let t = tempfile::tempdir().unwrap();
    for (dir, vars) in &cases {
        let mut args: Vec<String> = Vec::new();
        for v in vars {
            args.push("-var".into());
            args.push(v.clone());
        }
        args.push(dir.display().to_string());
        for cmd in [vec!["validate"], vec!["plan", "--json"]] {
            let mut full: Vec<&str> = cmd.clone();
            full.extend(args.iter().map(String::as_str));
            let (code, out, err) = kiln(t.path(), &full);
            assert_eq!(code, 0, "{cmd:?} {}: {out}{err}", dir.display());
            if cmd[0] == "plan" {
                let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert!(
                    plan["builds"].as_array().is_some_and(|b| b.len() >= 2),
                    "{out}"
                );
            }
        }
    }
}
