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

/// Two builds of one template: `good` plans, `bad` has a template error.
fn two_builds_one_broken(dir: &Path) {
    let base = base_image(dir);
    std::fs::write(
        dir.join("t.pkr.hcl"),
        format!(
            "source \"qemu\" \"good\" {{\n  iso_url      = \"{base}\"\n  iso_checksum = \"none\"\n  disk_image   = true\n  accelerator  = \"tcg\"\n  ssh_username = \"u\"\n}}\nsource \"qemu\" \"bad\" {{\n  iso_url      = \"{base}\"\n  iso_checksum = \"none\"\n  disk_image   = true\n  ssh_username = \"u\"\n  memroy       = 1024\n}}\nbuild {{ sources = [\"source.qemu.good\", \"source.qemu.bad\"] }}\n",
            base = base.display()
        ),
    )
    .unwrap();
}

#[test]
fn doctor_prints_each_check_once_and_goes_past_a_broken_build() {
    let dir = tempfile::tempdir().unwrap();
    two_builds_one_broken(dir.path());

    let (code, stdout, stderr) = kiln(dir.path(), &["doctor", "."]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    // The broken build's error is printed at its place…
    assert!(stderr.contains("t.pkr.hcl:13:3"), "{stderr}");
    // …and the other build is still checked.
    assert!(
        stdout.contains("source qemu.good asks for `accelerator = \"tcg\"`"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "FAIL template      build qemu.bad cannot be planned: unknown attribute `memroy`"
        ),
        "{stdout}"
    );
    let checks: Vec<&str> = stdout
        .lines()
        .filter(|l| ["ok  ", "warn", "FAIL"].iter().any(|m| l.starts_with(m)))
        .collect();
    for line in &checks {
        let n = checks.iter().filter(|l| *l == line).count();
        assert_eq!(n, 1, "printed {n} times: {line}\n{stdout}");
    }

    let (code, stdout, stderr) = kiln(dir.path(), &["doctor", "--json", "."]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for line in &lines {
        let n = lines.iter().filter(|l| *l == line).count();
        assert_eq!(n, 1, "printed {n} times: {line}");
    }
    assert!(
        objects
            .iter()
            .any(|o| o["id"] == "template" && o["status"] == "fail"),
        "{stdout}"
    );
    assert!(
        objects.iter().any(|o| o["id"] == "accelerator"
            && o["detail"].as_str().unwrap().contains("source qemu.good")),
        "{stdout}"
    );
}

#[test]
fn doctor_takes_only_like_build() {
    let dir = tempfile::tempdir().unwrap();
    two_builds_one_broken(dir.path());
    let (code, stdout, stderr) = kiln(dir.path(), &["doctor", "-only", "qemu.good", "."]);
    assert!(stdout.contains("source qemu.good"), "{stdout}");
    assert!(!stdout.contains("qemu.bad"), "{stdout}");
    assert!(!stdout.contains("template"), "{stdout}");
    assert!(!stderr.contains("memroy"), "{stderr}");
    // Whatever this host lacks, it is no template error.
    assert_ne!(code, 2, "{stdout}{stderr}");
}

#[test]
fn validate_finds_missing_media_and_an_existing_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.pkr.hcl"),
        "source \"qemu\" \"x\" {\n  iso_url      = \"x.iso\"\n  iso_checksum = \"none\"\n  ssh_username = \"u\"\n  floppy_files = [\n    \"ks.cfg\",\n  ]\n  cd_files     = [\"seed/*\", \"meta-data\"]\n  http_directory = \"http\"\n}\nbuild { sources = [\"source.qemu.x\"] }\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("output-x")).unwrap();
    let (code, stdout, stderr) = kiln(dir.path(), &["validate", "."]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("t.pkr.hcl:6:5: `floppy_files`: bad floppy disk file `ks.cfg`"),
        "{stderr}"
    );
    // A glob that matches nothing is fine, as in Packer.
    assert!(!stderr.contains("file `seed/*`"), "{stderr}");
    assert!(
        stderr.contains("t.pkr.hcl:8:29: `cd_files`: bad CD disk file `meta-data`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("output directory `output-x` already exists; it must not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("t.pkr.hcl:9:20: `http_directory` `http`"),
        "{stderr}"
    );
    assert!(stderr.contains("the template has 3 errors"), "{stderr}");
}

#[test]
fn validate_warns_on_a_misspelled_boot_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.pkr.hcl"),
        "source \"qemu\" \"x\" {\n  iso_url      = \"x.iso\"\n  iso_checksum = \"none\"\n  ssh_username = \"u\"\n  boot_command = [\n    \"<esc>\",\n    \"<wiat5>linux<enter>\",\n  ]\n}\nbuild { sources = [\"source.qemu.x\"] }\n",
    )
    .unwrap();
    let (code, stdout, stderr) = kiln(dir.path(), &["validate", "."]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("The configuration is valid."), "{stdout}");
    assert!(
        stderr.contains("t.pkr.hcl:7:6: `<wiat5>` in `boot_command` is not a key Packer knows"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `<wait5>`?"), "{stderr}");
}

#[test]
fn plan_names_the_accelerator_and_where_it_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.pkr.hcl"),
        "source \"qemu\" \"field\" {\n  iso_url      = \"x.iso\"\n  iso_checksum = \"none\"\n  ssh_username = \"u\"\n  accelerator  = \"kvm\"\n}\nsource \"qemu\" \"args\" {\n  iso_url      = \"x.iso\"\n  iso_checksum = \"none\"\n  ssh_username = \"u\"\n  qemuargs     = [[\"-machine\", \"q35,accel=kvm\"]]\n  http_content = { \"/ks\" = \"x\" }\n  boot_command = [\"<esc><wait3>linux ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks<enter>\"]\n}\nsource \"qemu\" \"unset\" {\n  iso_url      = \"x.iso\"\n  iso_checksum = \"none\"\n  ssh_username = \"u\"\n}\nbuild { sources = [\"source.qemu.field\", \"source.qemu.args\", \"source.qemu.unset\"] }\n",
    )
    .unwrap();
    let (code, stdout, stderr) = kiln(dir.path(), &["plan", "."]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("accelerator: kvm (`accelerator`, set in t.pkr.hcl:5)"),
        "{stdout}"
    );
    assert!(stdout.contains("-machine type=pc,accel=kvm"), "{stdout}");
    assert!(
        stdout.contains("accelerator: kvm (from qemuargs[0] `-machine q35,accel=kvm`)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("accelerator: tcg (unset: kiln's fallback"),
        "{stdout}"
    );
    for line in [
        "    key <esc>",
        "    wait 3s",
        "    type \"linux ks=http://10.0.2.2:8000/ks\"",
        "    key <enter>",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in\n{stdout}");
    }

    let (code, stdout, stderr) = kiln(dir.path(), &["plan", "--json", "."]);
    assert_eq!(code, 0, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let b = &plan["builds"];
    assert_eq!(b[0]["accelerator"], "kvm");
    assert_eq!(b[0]["accelerator_from"]["kind"], "field");
    assert_eq!(b[1]["accelerator"], "kvm");
    assert_eq!(b[1]["accelerator_from"]["kind"], "qemuargs");
    assert_eq!(b[2]["accelerator_from"]["kind"], "fallback");
    assert_eq!(
        b[1]["boot_command"][0]["keys"][2]["type"],
        "linux ks=http://10.0.2.2:8000/ks"
    );
}

#[test]
fn plan_exits_2_when_a_source_cannot_be_planned() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.pkr.hcl"),
        "source \"qemu\" \"x\" {\n  iso_url      = \"x.iso\"\n  iso_checksum = \"none\"\n  ssh_username = \"u\"\n  qemuargs     = [[\"-name\", \"{{ .Nope }}\"]]\n}\nbuild { sources = [\"source.qemu.x\"] }\n",
    )
    .unwrap();
    for args in [&["plan", "--json", "."][..], &["plan", "."][..]] {
        let (code, stdout, stderr) = kiln(dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(
            stderr.contains("error: cannot plan qemu.x: the QEMU command line:"),
            "{stderr}"
        );
    }
}
