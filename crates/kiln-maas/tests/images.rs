//! kiln-image readers and the leak scan on real images: nanosecond times,
//! malformed inputs, unsupported filesystems, planted secrets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use kiln_image::fs::lookup;
use kiln_image::scan::{ScanConfig, scan_path};
use kiln_image::{Disk, ImageError, RootSelector};
use kiln_maas::tgz::{TgzOptions, write_tgz};

#[test]
fn ext4_nanoseconds_xattrs_and_acls_are_read() {
    if !have(&["mkfs.ext4", "debugfs", "setfattr", "setcap", "setfacl"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    build_tree(&tree);
    let img = t.path().join("root.ext4");
    make_ext4(&tree, &img, 64, "");
    // mkfs.ext4 -d stores no nanoseconds: set them (and a post-2038 epoch bit) with debugfs.
    sh(&format!(
        "debugfs -w -R 'sif /usr/share/doc/text.txt mtime_extra {}' {} >/dev/null 2>&1",
        (987_654_321u64 << 2) | 1,
        img.display()
    ));
    let disk = Disk::open(&img).unwrap();
    assert_eq!(disk.find_root(&RootSelector::Auto).unwrap(), 0);
    let fs = disk.open_fs(0).unwrap();
    assert_eq!(fs.label(), "kiln-root");
    let f = lookup(&*fs, "/usr/share/doc/text.txt").unwrap().unwrap();
    assert_eq!(f.mtime.nsec, 987_654_321);
    assert_eq!(f.mtime.sec, 1_577_934_245 + (1i64 << 32));
    let names: Vec<&str> = f.xattrs.iter().map(|x| x.name.as_str()).collect();
    assert!(
        names.contains(&"user.comment") && names.contains(&"system.posix_acl_access"),
        "{names:?}"
    );
    let tool = lookup(&*fs, "/usr/bin/tool").unwrap().unwrap();
    assert_eq!(tool.mode, 0o4755);
    assert!(tool.xattrs.iter().any(|x| x.name == "security.capability"));
    let dev = lookup(&*fs, "/dev/bigminor").unwrap().unwrap();
    assert_eq!(dev.rdev, (259, 70000));
    let big = lookup(&*fs, "/usr/share/doc/empty").unwrap().unwrap();
    assert_eq!((big.uid, big.gid), (3_000_000, 3_000_001));
    let sparse = lookup(&*fs, "/usr/share/sparse.img").unwrap().unwrap();
    let runs = fs.runs(&sparse).unwrap();
    let stored: u64 = runs.iter().map(|r| r.len()).sum();
    assert!(
        stored < 64 * 1024 && sparse.size == 20 << 20,
        "holes not seen: {stored} bytes stored"
    );
}

#[test]
fn malformed_images_give_clear_errors() {
    if !have(&["mkfs.ext4", "qemu-img", "sgdisk"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/os-release"), "ID=debian\n").unwrap();
    let img = t.path().join("root.ext4");
    make_ext4(&tree, &img, 16, "");
    // Corrupt superblock: an absurd block size.
    let bad = t.path().join("bad-sb.ext4");
    std::fs::copy(&img, &bad).unwrap();
    sh(&format!(
        "printf '\\x63' | dd of={} bs=1 seek=$((1024+0x18)) conv=notrunc status=none",
        bad.display()
    ));
    let e = Disk::open(&bad).unwrap().open_fs(0).unwrap_err();
    assert!(e.to_string().contains("block size"), "{e}");
    // Corrupt group descriptor count: blocks count zeroed.
    sh(&format!(
        "dd if=/dev/zero of={} bs=1 seek=$((1024+4)) count=4 conv=notrunc status=none",
        bad.display()
    ));
    assert!(Disk::open(&bad).unwrap().open_fs(0).is_err());
    // Truncated qcow2.
    let q = t.path().join("t.qcow2");
    qemu_img(&format!(
        "convert -O qcow2 {} {}",
        img.display(),
        q.display()
    ));
    sh(&format!("truncate -s 100000 {}", q.display()));
    let e = Disk::open(&q)
        .map(|d| d.open_fs(0).map(|_| ()))
        .unwrap_or_else(Err)
        .unwrap_err();
    assert!(
        format!("{e}").contains("truncated") || format!("{e}").contains("beyond the end"),
        "{e}"
    );
    // A GPT whose header and backup are damaged.
    let disk = t.path().join("d.raw");
    make_disk(&img, &disk);
    let size = std::fs::metadata(&disk).unwrap().len();
    sh(&format!(
        "printf 'XXXX' | dd of={d} bs=1 seek=$((512+24)) conv=notrunc status=none; printf 'XXXX' | dd of={d} bs=1 seek=$(({size}-512+24)) conv=notrunc status=none",
        d = disk.display()
    ));
    let e = Disk::open(&disk).unwrap_err();
    assert!(
        matches!(e, ImageError::Corrupt { .. }) && e.to_string().contains("CRC"),
        "{e}"
    );
    // An unsupported filesystem names the partition.
    make_disk(&img, &disk);
    sh(&format!(
        "start=$(sgdisk -i 2 {d} | awk '/First sector/{{print $3}}'); dd if=/dev/zero of={d} bs=512 seek=$start count=8 conv=notrunc status=none; printf 'XFSB' | dd of={d} bs=512 seek=$start conv=notrunc status=none",
        d = disk.display()
    ));
    let d = Disk::open(&disk).unwrap();
    let e = d.open_fs(2).unwrap_err();
    assert!(
        e.to_string().contains("partition 2")
            && e.to_string().contains("xfs filesystem")
            && e.to_string().contains("not supported yet"),
        "{e}"
    );
    let e = d.find_root(&RootSelector::Auto).unwrap_err();
    assert!(e.to_string().contains("2 (xfs)"), "{e}");
}

#[test]
fn scan_finds_planted_secrets_in_image_and_scrubbed_tarball_is_cleaner() {
    if !have(&[
        "mkfs.ext4",
        "sgdisk",
        "qemu-img",
        "mkfs.vfat",
        "mcopy",
        "openssl",
    ]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    build_tree(&tree);
    sh(&format!(
        r#"cd {}
mkdir -p root/.ssh etc/ssh srv var/lib/cloud/instances/i-0
printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n' > root/.ssh/id_ed25519
cp root/.ssh/id_ed25519 etc/ssh/ssh_host_ed25519_key
echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIbuildkey kiln-build' > root/.ssh/authorized_keys
echo 'proxy_password=s3nsitive-Value!' > srv/app.conf
echo "debian:$(openssl passwd -6 -salt abcdefgh buildpass):19000:0:99999:7:::" > etc/shadow
echo 'ls -la' > root/.bash_history
echo 'iid' > var/lib/cloud/instances/i-0/instance-id
"#,
        tree.display()
    ));
    let root = t.path().join("root.ext4");
    make_ext4(&tree, &root, 64, "");
    let disk = t.path().join("disk.raw");
    make_disk(&root, &disk);
    let q = t.path().join("disk.qcow2");
    qemu_img(&format!(
        "convert -c -O qcow2 {} {}",
        disk.display(),
        q.display()
    ));
    let cfg = ScanConfig {
        build_public_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIbuildkey".into()],
        sensitive: vec![b"s3nsitive-Value!".to_vec()],
        passwords: vec!["buildpass".into()],
        allow: vec![],
    };
    let r = scan_path(&q, &cfg).unwrap();
    let mut got: Vec<(String, String)> = r
        .findings
        .iter()
        .map(|f| (f.rule.clone(), f.path.clone()))
        .collect();
    got.sort();
    let want = [
        ("build-key", "/root/.ssh/authorized_keys"),
        ("cloud-init-instance", "/var/lib/cloud/instances"),
        ("machine-id", "/etc/machine-id"),
        ("password-hash", "/etc/shadow"),
        ("private-key", "/etc/ssh/ssh_host_ed25519_key"),
        ("private-key", "/root/.ssh/id_ed25519"),
        ("sensitive-value", "/srv/app.conf"),
        ("shell-history", "/root/.bash_history"),
        ("ssh-host-key", "/etc/ssh/ssh_host_ed25519_key"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want);
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        !json.contains("s3nsitive") && !json.contains("buildkey") && !json.contains("b3BlbnNz"),
        "{json}"
    );

    // The scrubbed tarball drops what scrub is for; the planted key and value stay (the gate's job).
    let out = t.path().join("root.tgz");
    let opts = TgzOptions {
        scrub: Some(kiln_image::scrub::Scrub::with_defaults(
            &cfg.build_public_keys,
        )),
        ..Default::default()
    };
    write_tgz(&q, &out, &opts, &mut |_| {}).unwrap();
    let r = scan_path(&out, &cfg).unwrap();
    let mut got: Vec<(String, String)> = r
        .findings
        .iter()
        .map(|f| (f.rule.clone(), f.path.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("password-hash".to_string(), "/etc/shadow".to_string()),
            (
                "private-key".to_string(),
                "/root/.ssh/id_ed25519".to_string()
            ),
            ("sensitive-value".to_string(), "/srv/app.conf".to_string()),
        ]
    );
}
