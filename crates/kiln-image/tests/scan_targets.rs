//! The leak scan on real artifacts made by real tools (mkfs.ext4 -d,
//! mkfs.vfat, sgdisk, qemu-img, gzip, xz, dd): every target is read in its
//! own format, found by content; an artifact that could not be read, whole
//! or in part, is an error and never a clean report.
//! Needs e2fsprogs, dosfstools, mtools, gdisk, qemu-utils, gzip, xz-utils, attr.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_image::scan::{ScanConfig, ScanError, ScanReport, scan_path};

fn have(tools: &[&str]) -> bool {
    let missing: Vec<&&str> = tools
        .iter()
        .filter(|t| {
            !Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {t}"))
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if !missing.is_empty() {
        eprintln!("SKIP: missing tools {missing:?}");
    }
    missing.is_empty()
}

fn sh(dir: &Path, script: &str) {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "script failed: {script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n";

/// A small root tree: os-release and clean content that looks like secrets
/// to a careless scanner (docs naming "PRIVATE KEY", CA certificates, AKIA
/// in a docstring, AWS's documented example key, gzipped docs).
fn clean_tree(t: &Path) -> PathBuf {
    let tree = t.join("tree");
    std::fs::create_dir(&tree).unwrap();
    sh(
        &tree,
        r#"
mkdir -p etc/ssl/certs usr/share/doc/openssh-client usr/lib/python3/dist-packages/botocore usr/share/man/man1 var/lib/dbus
printf 'ID=debian\nVERSION_ID=12\n' > etc/os-release
printf 'uninitialized\n' > etc/machine-id
printf 'root:*:19000:0:99999:7:::\n' > etc/shadow
printf 'Keep the PRIVATE KEY to yourself. ssh-keygen writes\n-----BEGIN OPENSSH PRIVATE KEY-----\nat the top of it.\n' > usr/share/doc/openssh-client/README
printf 'This is the changelog. -----BEGIN RSA PRIVATE KEY----- appears here as text\n' | gzip -9 > usr/share/doc/openssh-client/changelog.Debian.gz
printf '.TH SSH-KEYGEN 1\nwrites -----BEGIN OPENSSH PRIVATE KEY----- files\n' | gzip -9 > usr/share/man/man1/ssh-keygen.1.gz
cat > etc/ssl/certs/ISRG_Root_X1.pem <<'EOF'
-----BEGIN CERTIFICATE-----
MIIFazCCA1OgAwIBAgIRAIIQz7DSQONZRGPgu2OCiwAwDQYJKoZIhvcNAQELBQAw
TzELMAkGA1UEBhMCVVMxKTAnBgNVBAoTIEludGVybmV0IFNlY3VyaXR5IFJlc2Vh
-----END CERTIFICATE-----
EOF
cat etc/ssl/certs/ISRG_Root_X1.pem etc/ssl/certs/ISRG_Root_X1.pem > etc/ssl/certs/ca-certificates.crt
cat > usr/lib/python3/dist-packages/botocore/credentials.py <<'EOF'
"""Credentials. Access key ids start with AKIA (long-term) or ASIA (temporary).

Example::

    aws_access_key_id = AKIAIOSFODNN7EXAMPLE
    aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
"""
PREFIXES = ('AKIA', 'ASIA')
EOF
head -c 200000 /dev/urandom > usr/share/doc/random.bin
"#,
    );
    tree
}

fn ext4(tree: &Path, img: &Path, mb: u64) {
    sh(
        tree,
        &format!(
            "rm -f {i}; truncate -s {mb}M {i}; mkfs.ext4 -q -F -d {t} {i}",
            i = img.display(),
            t = tree.display()
        ),
    );
}

/// A GPT disk: 1 = BIOS boot (raw), 2 = ESP (vfat), 3 = `root` (ext4).
fn disk(root: &Path, out: &Path) {
    let mb = std::fs::metadata(root).unwrap().len().div_ceil(1 << 20);
    sh(
        root.parent().unwrap(),
        &format!(
            r#"
d={d}; rm -f $d; truncate -s {total}M $d
sgdisk -o -n 1:2048:+1M -t 1:ef02 -n 2:0:+8M -t 2:ef00 -n 3:0:0 -t 3:8300 $d >/dev/null
truncate -s 8M esp.img; mkfs.vfat -n ESP esp.img >/dev/null
s2=$(sgdisk -i 2 $d | awk '/First sector/{{print $3}}'); dd if=esp.img of=$d bs=512 seek=$s2 conv=notrunc status=none
s3=$(sgdisk -i 3 $d | awk '/First sector/{{print $3}}'); dd if={r} of=$d bs=512 seek=$s3 conv=notrunc,sparse status=none
rm esp.img
"#,
            d = out.display(),
            r = root.display(),
            total = mb + 12
        ),
    );
}

fn found(r: &ScanReport) -> Vec<(String, String)> {
    let mut v: Vec<_> = r
        .findings
        .iter()
        .map(|f| (f.rule.clone(), f.path.clone()))
        .collect();
    v.sort();
    v
}

fn unreadable(path: &Path) -> String {
    match scan_path(path, &ScanConfig::default()) {
        Err(e @ ScanError::Unreadable { .. }) => e.to_string(),
        other => panic!(
            "{}: want an unreadable error, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn scan_fails_when_raw_file_is_zeros() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("zeros.img");
    std::fs::write(&p, vec![0u8; 4 << 20]).unwrap();
    let e = unreadable(&p);
    assert!(
        e.contains("zeros.img") && e.contains("no filesystem"),
        "{e}"
    );
}

#[test]
fn scan_fails_when_target_is_dev_null() {
    let e = unreadable(Path::new("/dev/null"));
    assert!(e.contains("/dev/null") && e.contains("empty"), "{e}");
}

#[test]
fn scan_fails_when_qcow2_magic_is_broken() {
    if !have(&["mkfs.ext4", "qemu-img"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = clean_tree(t.path());
    let root = t.path().join("root.ext4");
    ext4(&tree, &root, 16);
    let q = t.path().join("disk.qcow2");
    sh(
        t.path(),
        &format!(
            "qemu-img convert -O qcow2 {} {q}; printf 'QFX' | dd of={q} conv=notrunc status=none",
            root.display(),
            q = q.display()
        ),
    );
    let e = unreadable(&q);
    assert!(e.contains("disk.qcow2"), "{e}");
}

#[test]
fn scan_fails_when_ext4_superblock_is_zeroed() {
    if !have(&["mkfs.ext4"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = clean_tree(t.path());
    std::fs::write(tree.join("etc/id_rsa"), KEY).unwrap();
    let root = t.path().join("root.ext4");
    ext4(&tree, &root, 16);
    sh(
        t.path(),
        &format!(
            "dd if=/dev/zero of={} bs=1024 seek=1 count=1 conv=notrunc status=none",
            root.display()
        ),
    );
    let e = unreadable(&root);
    assert!(e.contains("backup superblock"), "{e}");
}

#[test]
fn scan_fails_when_partition_filesystem_is_damaged() {
    if !have(&["mkfs.ext4", "sgdisk", "mkfs.vfat"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = clean_tree(t.path());
    let root = t.path().join("root.ext4");
    ext4(&tree, &root, 16);
    sh(
        t.path(),
        &format!(
            "dd if=/dev/zero of={} bs=1024 seek=1 count=1 conv=notrunc status=none",
            root.display()
        ),
    );
    let d = t.path().join("disk.raw");
    disk(&root, &d);
    let e = unreadable(&d);
    assert!(e.contains("partition 3") && e.contains("0fc63daf"), "{e}");
}

#[test]
fn scan_fails_when_disk_is_truncated() {
    if !have(&["mkfs.ext4", "sgdisk", "mkfs.vfat"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = clean_tree(t.path());
    let root = t.path().join("root.ext4");
    ext4(&tree, &root, 16);
    let d = t.path().join("disk.raw");
    disk(&root, &d);
    let f = std::fs::OpenOptions::new().write(true).open(&d).unwrap();
    f.set_len(std::fs::metadata(&d).unwrap().len() - (4 << 20))
        .unwrap();
    let e = match scan_path(&d, &ScanConfig::default()) {
        Err(e) => e.to_string(),
        Ok(r) => panic!("truncated disk passed: {r:?}"),
    };
    assert!(e.contains("disk.raw"), "{e}");
}

#[test]
fn scan_reads_a_clean_partitioned_disk_without_findings() {
    if !have(&["mkfs.ext4", "sgdisk", "mkfs.vfat", "qemu-img"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = clean_tree(t.path());
    let root = t.path().join("root.ext4");
    ext4(&tree, &root, 16);
    let d = t.path().join("disk.raw");
    disk(&root, &d);
    let q = t.path().join("disk.qcow2");
    sh(
        t.path(),
        &format!(
            "qemu-img convert -c -O qcow2 {} {}",
            d.display(),
            q.display()
        ),
    );
    for p in [&d, &q] {
        let r = scan_path(p, &ScanConfig::default()).unwrap();
        assert!(r.is_clean(), "{}: {:?}", p.display(), r.findings);
        assert!(r.files > 5, "{r:?}");
        assert_eq!(r.allowed.len(), 2, "the AWS examples: {:?}", r.allowed);
        assert!(
            r.notes.iter().any(|n| n.contains("BIOS boot")),
            "{:?}",
            r.notes
        );
    }
}

#[test]
fn scan_reads_bare_ext4_and_vfat_without_partition_table() {
    if !have(&["mkfs.ext4", "mkfs.vfat", "mcopy"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = clean_tree(t.path());
    std::fs::write(tree.join("etc/id_rsa"), KEY).unwrap();
    let root = t.path().join("root.ext4");
    ext4(&tree, &root, 16);
    let r = scan_path(&root, &ScanConfig::default()).unwrap();
    assert_eq!(
        found(&r),
        vec![("private-key".to_string(), "/etc/id_rsa".to_string())]
    );
    let v = t.path().join("esp.vfat");
    std::fs::write(t.path().join("key.pem"), KEY).unwrap();
    sh(
        t.path(),
        "truncate -s 8M esp.vfat; mkfs.vfat esp.vfat >/dev/null; mcopy -i esp.vfat key.pem ::/KEY.PEM",
    );
    let r = scan_path(&v, &ScanConfig::default()).unwrap();
    assert_eq!(
        found(&r),
        vec![("private-key".to_string(), "/KEY.PEM".to_string())]
    );
}

#[test]
fn scan_reads_compressed_raw_disks_as_disks() {
    if !have(&["mkfs.ext4", "sgdisk", "mkfs.vfat", "gzip", "xz"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = clean_tree(t.path());
    let root = t.path().join("root.ext4");
    ext4(&tree, &root, 16);
    let d = t.path().join("disk.raw");
    disk(&root, &d);
    // A clean disk passes, gzip (two members, as pigz/kiln write) and xz.
    sh(
        t.path(),
        "head -c 5M disk.raw | gzip -1 > disk.dd.gz; tail -c +5242881 disk.raw | gzip -1 >> disk.dd.gz; xz -T1 -0 -k -c disk.raw > disk.ddxz",
    );
    for name in ["disk.dd.gz", "disk.ddxz"] {
        let r = scan_path(&t.path().join(name), &ScanConfig::default()).unwrap();
        assert!(r.is_clean(), "{name}: {:?}", r.findings);
        assert!(r.files > 5, "{name}: {r:?}");
    }
    // An ext4 without a partition table, holding a key: found.
    std::fs::write(tree.join("etc/id_rsa"), KEY).unwrap();
    ext4(&tree, &root, 16);
    sh(
        t.path(),
        "gzip -1 -c root.ext4 > root.dd.gz; xz -0 -c root.ext4 > root.ddxz",
    );
    for name in ["root.dd.gz", "root.ddxz"] {
        let r = scan_path(&t.path().join(name), &ScanConfig::default()).unwrap();
        assert_eq!(
            found(&r),
            vec![("private-key".to_string(), "/etc/id_rsa".to_string())],
            "{name}"
        );
    }
    // Cut short: an error, not a verdict.
    sh(
        t.path(),
        "head -c $(( $(stat -c %s root.dd.gz) / 2 )) root.dd.gz > cut.dd.gz",
    );
    let e = scan_path(&t.path().join("cut.dd.gz"), &ScanConfig::default()).unwrap_err();
    assert!(matches!(e, ScanError::Decompress { .. }), "{e:?}");
}

#[test]
fn scan_finds_keys_in_xattrs_and_gzip_files_of_ext4() {
    if !have(&["mkfs.ext4", "setfattr", "gzip"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = clean_tree(t.path());
    std::fs::write(t.path().join("key.pem"), KEY).unwrap();
    sh(
        &tree,
        "printf 'hello' > etc/motd; setfattr -n user.backup -v \"$(cat ../key.pem)\" etc/motd; gzip -c ../key.pem > etc/old-key.gz",
    );
    let root = t.path().join("root.ext4");
    ext4(&tree, &root, 16);
    let r = scan_path(&root, &ScanConfig::default()).unwrap();
    assert_eq!(
        found(&r),
        vec![
            ("private-key".to_string(), "/etc/motd".to_string()),
            ("private-key".to_string(), "/etc/old-key.gz".to_string())
        ]
    );
}
