//! `maas-tgz` on real images: built with `mkfs.ext4 -d` from a known tree,
//! wrapped in GPT, converted to qcow2 in several ways, extracted with the
//! command curtin uses, compared tree to tree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use kiln_image::RootSelector;
use kiln_maas::tgz::{BootPartition, TgzOptions, write_tgz};

const TOOLS: &[&str] = &[
    "mkfs.ext4",
    "sgdisk",
    "qemu-img",
    "mkfs.vfat",
    "mcopy",
    "setfattr",
    "getfattr",
    "setcap",
    "tar",
    "gzip",
];

fn opts_plain() -> TgzOptions {
    TgzOptions {
        scrub: None,
        level: 6,
        ..Default::default()
    }
}

// mkfs.ext4 -d stores no nanoseconds: they are compared in kiln-image's tests.
fn roundtrip(tree: &Path, image: &Path, work: &Path, opts: &TgzOptions) {
    roundtrip_ns(tree, image, work, opts, false)
}

fn roundtrip_ns(tree: &Path, image: &Path, work: &Path, opts: &TgzOptions, ns: bool) {
    let out = work.join("out.tar.gz");
    let mut last = None;
    let report = write_tgz(image, &out, opts, &mut |p| last = Some(*p)).unwrap();
    assert!(report.entries > 50, "{report:?}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), report.gz_bytes);
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
    assert_eq!(last.unwrap().bytes_written, report.gz_bytes);
    let x = work.join("extracted");
    let _ = std::fs::remove_dir_all(&x);
    curtin_extract(&out, &x);
    assert_same_trees_ns(tree, &x, ns);
    // GNU sparse 1.0: `tar -S` restores the holes.
    use std::os::unix::fs::MetadataExt;
    let sp = std::fs::metadata(x.join("usr/share/sparse.img")).unwrap();
    assert!(
        sp.blocks() * 512 < 1 << 20,
        "holes not restored: {} blocks of 512 bytes",
        sp.blocks()
    );
}

#[test]
fn tgz_reproduces_tree_from_raw_qcow2_compressed_and_backing_chain() {
    if !have(TOOLS) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    build_tree(&tree);
    let root = t.path().join("root.ext4");
    make_ext4(&tree, &root, 64, "");
    let disk = t.path().join("disk.raw");
    make_disk(&root, &disk);
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();

    // raw
    roundtrip(&tree, &disk, &work, &opts_plain());
    // qcow2 v3, plain
    let q = t.path().join("disk.qcow2");
    qemu_img(&format!(
        "convert -O qcow2 {} {}",
        disk.display(),
        q.display()
    ));
    roundtrip(&tree, &q, &work, &opts_plain());
    // qcow2 v2 (compat=0.10), zlib-compressed clusters, 4 KiB clusters
    let qc = t.path().join("disk-c.qcow2");
    qemu_img(&format!(
        "convert -c -O qcow2 -o compat=0.10,cluster_size=4096 {} {}",
        disk.display(),
        qc.display()
    ));
    roundtrip(&tree, &qc, &work, &opts_plain());
    // zstd-compressed clusters
    let qz = t.path().join("disk-z.qcow2");
    qemu_img(&format!(
        "convert -c -O qcow2 -o compression_type=zstd {} {}",
        disk.display(),
        qz.display()
    ));
    roundtrip(&tree, &qz, &work, &opts_plain());

    // A backing chain: base = an older tree, overlay = only the clusters that differ.
    let tree2 = t.path().join("tree2");
    std::fs::create_dir(&tree2).unwrap();
    build_tree(&tree2);
    sh(&format!(
        "cd {} && echo changed > etc/changed && rm usr/share/doc/random.bin && head -c 100000 /dev/urandom > usr/share/new.bin",
        tree2.display()
    ));
    let root2 = t.path().join("root2.ext4");
    make_ext4(&tree2, &root2, 64, "");
    let disk2 = t.path().join("disk2.raw");
    make_disk(&root2, &disk2);
    let overlay = t.path().join("overlay.qcow2");
    qemu_img(&format!(
        "convert -O qcow2 -B {} -F qcow2 {} {}",
        qc.display(),
        disk2.display(),
        overlay.display()
    ));
    roundtrip(
        &tree2,
        &overlay,
        &work,
        &TgzOptions {
            root: RootSelector::Label("kiln-root".into()),
            ..opts_plain()
        },
    );
}

#[test]
fn tgz_reads_ext3_block_maps_inline_data_and_htree_dirs() {
    if !have(TOOLS) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    build_tree(&tree);
    // A big directory (htree after e2fsck -D) and many tiny files (inline data).
    sh(&format!(
        "cd {} && mkdir usr/share/many && for i in $(seq 1 3000); do echo $i > usr/share/many/file-with-a-longish-name-$i; done",
        tree.display()
    ));
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    for (name, opts) in [
        ("ext3", "-t ext3"),
        ("inline", "-O inline_data"),
        ("4k-nometa", "-b 1024 -O ^metadata_csum,^64bit"),
    ] {
        let root = t.path().join(format!("{name}.ext4"));
        make_ext4(&tree, &root, 96, opts);
        sh(&format!(
            "e2fsck -fyD {} >/dev/null 2>&1 || test $? -le 1",
            root.display()
        ));
        // The whole disk is one filesystem (no partition table): partition 0.
        let opts = TgzOptions {
            root: RootSelector::Number(0),
            ..opts_plain()
        };
        roundtrip_ns(&tree, &root, &work, &opts, false);
        let _ = name;
    }
}

#[test]
fn tgz_appends_esp_and_curtin_hooks_and_scrubs() {
    if !have(TOOLS) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    build_tree(&tree);
    sh(&format!(
        "cd {} && mkdir -p etc/ssh var/lib/cloud/instances/i-1 root && echo k > etc/ssh/ssh_host_ed25519_key && echo h > root/.bash_history \
         && echo 'ssh-ed25519 AAAAbuildkey kiln-build' >> home/user/.ssh/authorized_keys && echo log > var/log/syslog && echo x > tmp/junk",
        tree.display()
    ));
    let root = t.path().join("root.ext4");
    make_ext4(&tree, &root, 64, "");
    let disk = t.path().join("disk.raw");
    make_disk(&root, &disk);
    let hooks = t.path().join("hooks");
    std::fs::create_dir(&hooks).unwrap();
    sh(&format!(
        "cd {} && printf '#!/bin/sh\\n' > curtin-hooks && chmod 755 curtin-hooks && echo cfg > config.yaml",
        hooks.display()
    ));
    let out = t.path().join("out.tgz");
    let opts = TgzOptions {
        boot: BootPartition::Esp,
        curtin_dir: Some(hooks),
        scrub: Some(kiln_image::scrub::Scrub::with_defaults(&[
            "ssh-ed25519 AAAAbuildkey".into(),
        ])),
        ..Default::default()
    };
    let report = write_tgz(&disk, &out, &opts, &mut |_| {}).unwrap();
    assert_eq!((report.root_partition, report.boot_partition), (2, Some(1)));
    let x = t.path().join("x");
    curtin_extract(&out, &x);
    let rd = |p: &str| std::fs::read_to_string(x.join(p)).unwrap();
    assert_eq!(rd("boot/efi/EFI/BOOT/BOOTX64.EFI"), "efi binary");
    assert_eq!(rd("boot/efi/EFI/BOOT/A Long File Name.conf"), "a long name");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(x.join("curtin"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
    assert_eq!(
        std::fs::metadata(x.join("curtin/curtin-hooks"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
    assert_eq!(rd("etc/machine-id"), "");
    assert!(!x.join("etc/ssh/ssh_host_ed25519_key").exists());
    assert!(!x.join("root/.bash_history").exists());
    assert!(!x.join("var/lib/cloud/instances").exists());
    assert!(x.join("tmp").is_dir() && !x.join("tmp/junk").exists());
    assert_eq!(rd("var/log/syslog"), "");
    assert_eq!(
        rd("home/user/.ssh/authorized_keys"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIuser user@host\n"
    );
    assert!(
        report.scrubbed.contains_key("machine-id") && report.scrubbed.contains_key("build-key"),
        "{report:?}"
    );
}

#[test]
fn tgz_errors_name_the_problem() {
    let t = tempfile::tempdir().unwrap();
    let junk = t.path().join("junk.img");
    std::fs::write(&junk, vec![0u8; 1 << 20]).unwrap();
    let e = write_tgz(&junk, &t.path().join("o.tgz"), &opts_plain(), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("os-release"), "{e}");
    assert!(!t.path().join("o.tgz").exists());
}
