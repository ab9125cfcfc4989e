//! `kiln scan` as a user meets it: exit 0 clean, 1 findings, 2 when the
//! artifact could not be read or a flag is wrong (naming the flag and the
//! value). Real ext4 images made with `mkfs.ext4 -d`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use assert_cmd::Command;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn kiln_scan(args: &[&str]) -> Out {
    let out = Command::cargo_bin("kiln")
        .unwrap()
        .env_clear()
        .env("NO_COLOR", "1")
        .arg("scan")
        .args(args)
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A clean ext4 image (os-release, a CA bundle, docs naming "PRIVATE KEY").
fn clean_ext4(dir: &Path) -> Option<String> {
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg("command -v mkfs.ext4")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return None;
    }
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc/ssl/certs")).unwrap();
    std::fs::create_dir_all(tree.join("usr/share/doc/openssh-client")).unwrap();
    std::fs::write(tree.join("etc/os-release"), "ID=debian\n").unwrap();
    std::fs::write(
        tree.join("etc/ssl/certs/ca.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIFazCCA1OgAwIBAgIRAIIQz7DSQONZRGPgu2OCiwAwDQYJKoZIhvcNAQELBQAw\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        tree.join("usr/share/doc/openssh-client/README"),
        "Protect the PRIVATE KEY. Example: AKIAIOSFODNN7EXAMPLE\n",
    )
    .unwrap();
    let img = dir.join("root.ext4");
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "truncate -s 8M {i} && mkfs.ext4 -q -F -d {t} {i}",
            i = img.display(),
            t = tree.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    Some(img.display().to_string())
}

#[test]
fn scan_exits_2_when_artifact_is_zeros() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("zeros.img");
    std::fs::write(&p, vec![0u8; 1 << 20]).unwrap();
    let o = kiln_scan(&[p.to_str().unwrap()]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("zeros.img") && o.stderr.contains("no filesystem"),
        "{}",
        o.stderr
    );
    assert!(!o.stdout.contains("\"files\": 0"), "{}", o.stdout);
}

#[test]
fn scan_exits_2_when_artifact_is_dev_null() {
    let o = kiln_scan(&["--json", "/dev/null"]);
    assert_eq!(o.code, 2, "{}{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("/dev/null"), "{}", o.stderr);
    assert!(o.stdout.is_empty(), "{}", o.stdout);
}

#[test]
fn scan_exits_0_on_a_clean_image() {
    let t = tempfile::tempdir().unwrap();
    let Some(img) = clean_ext4(t.path()) else {
        return;
    };
    let o = kiln_scan(&[&img]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("0 finding(s), 1 allowed"), "{}", o.stderr);
}

#[test]
fn scan_rejects_public_key_when_file_is_missing() {
    let t = tempfile::tempdir().unwrap();
    let Some(img) = clean_ext4(t.path()) else {
        return;
    };
    let o = kiln_scan(&["--public-key", "/srv/keys/missing.pub", &img]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("--public-key /srv/keys/missing.pub"),
        "{}",
        o.stderr
    );
}

#[test]
fn scan_rejects_public_key_when_value_is_garbage() {
    let t = tempfile::tempdir().unwrap();
    let Some(img) = clean_ext4(t.path()) else {
        return;
    };
    let o = kiln_scan(&["--public-key", "hunter2", &img]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("--public-key hunter2") && o.stderr.contains("ssh-"),
        "{}",
        o.stderr
    );
    let bad = t.path().join("notakey.pub");
    std::fs::write(&bad, "this is not a key\n").unwrap();
    let o = kiln_scan(&["--public-key", bad.to_str().unwrap(), &img]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("notakey.pub"), "{}", o.stderr);
}

#[test]
fn scan_accepts_public_key_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let Some(img) = clean_ext4(t.path()) else {
        return;
    };
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIbuildkey kiln@build";
    let f = t.path().join("id.pub");
    std::fs::write(&f, format!("{key}\n")).unwrap();
    let o = kiln_scan(&[
        "--public-key",
        f.to_str().unwrap(),
        "--public-key",
        key,
        &img,
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

#[test]
fn scan_rejects_allow_when_rule_is_unknown() {
    let t = tempfile::tempdir().unwrap();
    let Some(img) = clean_ext4(t.path()) else {
        return;
    };
    let o = kiln_scan(&["--allow", "private-keys:/etc/ssl/**", &img]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("--allow private-keys:/etc/ssl/**")
            && o.stderr.contains("unknown rule `private-keys`")
            && o.stderr.contains("hint: valid rule ids: private-key,"),
        "{}",
        o.stderr
    );
    let o = kiln_scan(&["--allow", "private-key:/etc/ssl/**", &img]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

#[test]
fn scan_help_lists_every_rule_id() {
    let o = kiln_scan(&["--help"]);
    assert_eq!(o.code, 0);
    for r in kiln_image::scan::RULES {
        assert!(o.stdout.contains(r.id), "{} missing:\n{}", r.id, o.stdout);
    }
}
