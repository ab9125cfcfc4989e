//! `kiln plan` and `kiln build` up to the point where a VM would start:
//! the plan as data, template errors at file:line, preflight refusals, and
//! outputs a user already has.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kiln(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("kiln")
        .unwrap()
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

/// A small real qcow2 to stand in for a base image.
fn base_image(dir: &Path) -> PathBuf {
    let path = dir.join("base.qcow2");
    let ok = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&path)
        .arg("64M")
        .status()
        .unwrap()
        .success();
    assert!(ok);
    path
}

#[test]
fn plan_shows_the_exact_qemu_argv_and_disk_commands() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_image(dir.path());
    let template = repo().join("benches/templates/cloudimg-packer");
    let (code, stdout, stderr) = kiln(
        dir.path(),
        &[
            "plan",
            "--json",
            "-var",
            &format!("base_image={}", base.display()),
            template.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let builds = plan["builds"].as_array().unwrap();
    let names: Vec<&str> = builds.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "cloudimg.deps.null.dependencies",
            "cloudimg.image.qemu.cloudimg"
        ]
    );
    let qemu = &builds[1];
    let argv: Vec<&str> = qemu["qemu"]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    // qemuargs replace the default drives; the disk is where Packer puts it.
    assert!(argv.contains(&"file=output-cloudimg/packer-cloudimg,format=qcow2,if=virtio"));
    assert!(argv.contains(&"type=q35,accel=tcg"));
    assert!(
        argv.iter()
            .any(|a| a.starts_with("user,id=user.0,hostfwd=tcp:127.0.0.1:"))
    );
    let create = qemu["qemu_img"]["before_boot"][0].as_str().unwrap();
    assert_eq!(
        create,
        format!(
            "qemu-img create -f qcow2 -b {} -F qcow2 output-cloudimg/packer-cloudimg 6G",
            std::fs::canonicalize(&base).unwrap().display()
        )
    );
    let steps: Vec<&str> = qemu["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(steps.first(), Some(&"ssh_key"));
    assert!(steps.contains(&"provision 4/4 shell"));
    assert!(steps.contains(&"shutdown"));
}

#[test]
fn unknown_fields_are_errors_at_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.pkr.hcl"),
        "source \"qemu\" \"x\" {\n  memroy = 1024\n  iso_url = \"x.iso\"\n  iso_checksum = \"none\"\n  ssh_username = \"u\"\n}\nbuild { sources = [\"source.qemu.x\"] }\n",
    )
    .unwrap();
    let (code, _, stderr) = kiln(dir.path(), &["build", "."]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("t.pkr.hcl:2:3"), "{stderr}");
    assert!(stderr.contains("did you mean `memory`?"), "{stderr}");
    let (code, _, _) = kiln(dir.path(), &["validate", "."]);
    assert_eq!(code, 1);
}

#[test]
fn preflight_refuses_memory_the_host_lacks_and_names_where_it_was_set() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_image(dir.path());
    std::fs::write(
        dir.path().join("variables.pkr.hcl"),
        "variable \"memory\" {\n  type    = number\n  default = 1024\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("big.auto.pkrvars.hcl"),
        "memory = 4194304\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("source.pkr.hcl"),
        format!(
            "source \"qemu\" \"big\" {{\n  iso_url      = \"{}\"\n  iso_checksum = \"none\"\n  disk_image   = true\n  memory       = var.memory\n  accelerator  = \"tcg\"\n  ssh_username = \"u\"\n}}\nbuild {{ sources = [\"source.qemu.big\"] }}\n",
            base.display()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (code, _, stderr) = kiln(dir.path(), &["build", "."]);
    let took = started.elapsed();
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("memory = 4194304 MiB"), "{stderr}");
    assert!(
        stderr.contains("var.memory, set in big.auto.pkrvars.hcl:1"),
        "{stderr}"
    );
    assert!(stderr.contains("Try -var memory="), "{stderr}");
    // Nothing was started or written.
    assert!(!dir.path().join("output-big").exists());
    eprintln!("refused in {took:?}");
}

#[test]
fn an_existing_output_directory_is_never_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_image(dir.path());
    std::fs::create_dir(dir.path().join("output-keep")).unwrap();
    std::fs::write(dir.path().join("output-keep/precious.txt"), "mine").unwrap();
    std::fs::write(
        dir.path().join("t.pkr.hcl"),
        format!(
            "source \"qemu\" \"keep\" {{\n  iso_url      = \"{}\"\n  iso_checksum = \"none\"\n  disk_image   = true\n  accelerator  = \"tcg\"\n  memory       = 256\n  ssh_username = \"u\"\n}}\nbuild {{ sources = [\"source.qemu.keep\"] }}\n",
            base.display()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = kiln(dir.path(), &["build", "."]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("use -force"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("output-keep/precious.txt")).unwrap(),
        "mine"
    );
}
