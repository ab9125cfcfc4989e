//! The packer-maas-style template directory loads, and where Packer 1.6.6
//! is installed, every plain string variable and local matches what
//! `packer inspect` shows for the same directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_template::load::{LoadOptions, load};
use kiln_template::value::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packer-maas-style")
}

fn options(dir: &Path) -> LoadOptions {
    LoadOptions {
        path: dir.to_path_buf(),
        cwd: dir.to_path_buf(),
        ..LoadOptions::default()
    }
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

#[test]
fn packer_maas_style_directory_loads() {
    let l = load(&options(&fixture())).unwrap_or_else(|f| panic!("{:#?}", f.errors));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let names: Vec<&str> = l.builds.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["cloudimg.qemu.cloudimg", "flat.qemu.flat"]);

    // An auto var file overrides the shared default.
    let memory = &l.variables["memory"];
    assert_eq!(
        memory.value(),
        Some(&Value::Number(kiln_template::value::Number(4096.0)))
    );
    assert_eq!(memory.history.len(), 2);

    // Locals in one file use variables declared only in another.
    assert_eq!(
        l.locals["image_name"].value,
        Some(s("ubuntu-jammy-amd64-uefi"))
    );

    let cloudimg = &l.builds[0].source.body;
    // qemuargs: a list of lists, evaluated.
    let Value::Tuple(args) = &cloudimg.attrs["qemuargs"].value else {
        panic!()
    };
    assert_eq!(args.len(), 7);
    assert_eq!(args[0], Value::Tuple(vec![s("-machine"), s("accel=kvm")]));
    assert_eq!(cloudimg.attrs["qemu_binary"].value, s("qemu-system-x86_64"));
    // Both spellings of the SSH timeout are kept for the typed decoder.
    assert_eq!(cloudimg.attrs["ssh_timeout"].value, s("1h"));
    assert_eq!(cloudimg.attrs["ssh_wait_timeout"].value, s("1h"));
    assert!(cloudimg.attrs["ssh_password"].sensitive);
    assert!(!cloudimg.attrs["ssh_username"].sensitive);

    // Go-template placeholders pass through for boot-time rendering.
    let flat = &l.builds[1].source.body;
    let Value::Tuple(boot) = &flat.attrs["boot_command"].value else {
        panic!()
    };
    let Value::String(last) = &boot[2] else {
        panic!()
    };
    assert!(
        last.contains("s=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ ---"),
        "{last}"
    );

    let prov = &l.builds[0].provisioners;
    assert_eq!(prov.len(), 3);
    assert_eq!(prov[1].max_retries, 2);
    assert_eq!(
        prov[1].pause_before,
        Some(std::time::Duration::from_secs(10))
    );
    assert!(prov[1].body.attrs["execute_command"].sensitive);
    assert_eq!(l.builds[0].post_processors.len(), 1);
    assert_eq!(l.required_plugins[0].name, "qemu");
    assert_eq!(l.sensitive_values(), ["insecure-build-pw"]);
}

fn packer() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|p| p.join("packer"))
        .find(|p| p.is_file())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn packer_maas_style_matches_packer_inspect() {
    let Some(packer) = packer() else {
        eprintln!("skipped: `packer` is not on PATH (CI installs Packer 1.6.6)");
        return;
    };
    // Packer 1.6.6 predates `required_plugins` and would download the
    // checksum files: drop the `packer` block and use `none`.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    copy_dir(&fixture(), &dir);
    for f in ["ubuntu-cloudimg.pkr.hcl", "ubuntu-flat.pkr.hcl"] {
        let p = dir.join(f);
        let mut text = std::fs::read_to_string(&p).unwrap();
        if let Some(i) = text.find("packer {") {
            let j = text[i..].find("\n}\n").unwrap() + i + 3;
            text.replace_range(i..j, "");
        }
        let mut out = String::new();
        for line in text.lines() {
            if line.trim_start().starts_with("iso_checksum") {
                out.push_str("  iso_checksum = \"none\"\n");
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        std::fs::write(&p, out).unwrap();
    }
    let run = |cmd: &str| {
        let o = Command::new(&packer)
            .args([cmd, "."])
            .current_dir(&dir)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TMPDIR", tmp.path())
            .env_remove("PKR_VAR_memory")
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (ok, text) = run("validate");
    assert!(ok, "packer validate failed:\n{text}");
    let (ok, text) = run("inspect");
    assert!(ok, "packer inspect failed:\n{text}");

    let l = load(&options(&dir)).unwrap_or_else(|f| panic!("{:#?}", f.errors));
    let mut compared = 0;
    for (kind, name, value, sensitive) in l
        .variables
        .values()
        .map(|v| ("var", &v.name, v.value().cloned(), v.sensitive))
        .chain(
            l.locals
                .values()
                .map(|x| ("local", &x.name, x.value.clone(), x.sensitive)),
        )
    {
        let Some(Value::String(v)) = value else {
            continue;
        };
        if sensitive {
            continue;
        }
        let line = format!("{kind}.{name}: {}", serde_json::Value::String(v));
        assert!(
            text.lines().any(|l| l.trim() == line),
            "packer inspect lacks `{line}`:\n{text}"
        );
        compared += 1;
    }
    assert!(compared > 10, "compared only {compared} values");
}
