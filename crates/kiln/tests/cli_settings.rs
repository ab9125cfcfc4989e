//! Settings resolved once per command: one cache root for downloads, the
//! step cache and the KVM verdict, whichever variable names it; variable
//! origins from the template's provenance.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// Run kiln in `dir` with only the cache variables given here.
fn kiln(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut cmd = Command::cargo_bin("kiln").unwrap();
    cmd.current_dir(dir)
        .env_remove("KILN_CACHE_DIR")
        .env_remove("PACKER_CACHE_DIR")
        .env_remove("XDG_CACHE_HOME")
        .env("HOME", dir.join("home"))
        .env("NO_COLOR", "1")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A build whose base image is downloaded (so `plan` shows where to).
fn downloading_template(dir: &Path) {
    std::fs::write(
        dir.join("t.pkr.hcl"),
        r#"source "qemu" "x" {
  iso_url      = "https://example.invalid/base.qcow2"
  iso_checksum = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
  disk_image   = true
  accelerator  = "tcg"
  ssh_username = "u"
}
build { sources = ["source.qemu.x"] }
"#,
    )
    .unwrap();
}

/// Where `plan` puts the download and `cache ls` finds the step cache.
fn roots(dir: &Path, env: &[(&str, &Path)]) -> (String, String) {
    let (code, plan, stderr) = kiln(dir, &["plan", "--json", "."], env);
    assert_eq!(code, 0, "{stderr}");
    let (code, ls, stderr) = kiln(dir, &["cache", "ls", "--json"], env);
    assert_eq!(code, 0, "{stderr}");
    let ls: serde_json::Value = serde_json::from_str(&ls).unwrap();
    (plan, ls["root"].as_str().unwrap().to_string())
}

#[test]
fn packer_cache_dir_moves_downloads_and_the_step_cache() {
    let dir = tempfile::tempdir().unwrap();
    downloading_template(dir.path());
    let pc: PathBuf = dir.path().join("pc");
    let (plan, steps) = roots(dir.path(), &[("PACKER_CACHE_DIR", &pc)]);
    let downloads = format!("{}/downloads/", pc.display());
    assert!(plan.contains(&downloads), "{plan}");
    assert_eq!(steps, pc.join("steps").display().to_string());
    // Nothing landed in the default root, and `ls` created nothing.
    assert!(!dir.path().join("home").exists());
    assert!(!pc.exists());
}

#[test]
fn a_relative_packer_cache_dir_is_taken_from_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    downloading_template(dir.path());
    let (plan, steps) = roots(dir.path(), &[("PACKER_CACHE_DIR", Path::new("pc"))]);
    let pc = dir.path().join("pc");
    assert!(
        plan.contains(&format!("{}/downloads/", pc.display())),
        "{plan}"
    );
    assert_eq!(steps, pc.join("steps").display().to_string());
}

#[test]
fn kiln_cache_dir_wins_for_downloads_and_the_step_cache() {
    let dir = tempfile::tempdir().unwrap();
    downloading_template(dir.path());
    let (kc, pc) = (dir.path().join("kc"), dir.path().join("pc"));
    let (plan, steps) = roots(
        dir.path(),
        &[("KILN_CACHE_DIR", &kc), ("PACKER_CACHE_DIR", &pc)],
    );
    assert!(
        plan.contains(&format!("{}/downloads/", kc.display())),
        "{plan}"
    );
    assert!(!plan.contains(&pc.display().to_string()), "{plan}");
    assert_eq!(steps, kc.join("steps").display().to_string());
}

#[test]
fn without_cache_variables_everything_is_under_the_users_cache() {
    let dir = tempfile::tempdir().unwrap();
    downloading_template(dir.path());
    let (plan, steps) = roots(dir.path(), &[]);
    let root = dir.path().join("home/.cache/kiln");
    assert!(
        plan.contains(&format!("{}/downloads/", root.display())),
        "{plan}"
    );
    assert_eq!(steps, root.join("steps").display().to_string());
}

#[test]
fn preflight_names_the_auto_var_file_line_that_set_a_variable() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.qcow2");
    let ok = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&base)
        .arg("64M")
        .status()
        .unwrap()
        .success();
    assert!(ok);
    std::fs::write(
        dir.path().join("variables.pkr.hcl"),
        "variable \"cpus\" {\n  default = 1\n}\nvariable \"memory\" {\n  type    = number\n  default = 1024\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sizes.auto.pkrvars.hcl"),
        "# sizes for the big build\ncpus = 1\n\nmemory = 4194304\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("source.pkr.hcl"),
        format!(
            "source \"qemu\" \"big\" {{\n  iso_url      = \"{}\"\n  iso_checksum = \"none\"\n  disk_image   = true\n  memory       = \"${{var.memory}}\"\n  cpus         = var.cpus\n  accelerator  = \"tcg\"\n  ssh_username = \"u\"\n}}\nbuild {{ sources = [\"source.qemu.big\"] }}\n",
            base.display()
        ),
    )
    .unwrap();
    let cache = dir.path().join(".cache");
    let (code, _, stderr) = kiln(dir.path(), &["build", "."], &[("KILN_CACHE_DIR", &cache)]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("var.memory, set in sizes.auto.pkrvars.hcl:4"),
        "{stderr}"
    );
    assert!(!dir.path().join("output-big").exists());
}
