//! `maas-dd` decompresses byte-identical to `qemu-img convert -O raw`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use kiln_maas::dd::{DdFormat, DdOptions, write_dd};

#[test]
fn dd_outputs_decompress_to_the_same_disk_as_qemu_img() {
    if !have(&[
        "mkfs.ext4",
        "sgdisk",
        "qemu-img",
        "mkfs.vfat",
        "mcopy",
        "xz",
        "gzip",
        "cmp",
    ]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    sh(&format!(
        "cd {} && mkdir -p etc && echo ID=debian > etc/os-release && head -c 2000000 /dev/urandom > blob",
        tree.display()
    ));
    let root = t.path().join("root.ext4");
    make_ext4(&tree, &root, 24, "");
    let disk = t.path().join("disk.raw");
    make_disk(&root, &disk);
    let q = t.path().join("disk.qcow2");
    qemu_img(&format!(
        "convert -c -O qcow2 {} {}",
        disk.display(),
        q.display()
    ));
    let reference = t.path().join("ref.raw");
    qemu_img(&format!(
        "convert -O raw {} {}",
        q.display(),
        reference.display()
    ));
    for (format, decompress) in [
        (DdFormat::Ddgz, "gzip -dc"),
        (DdFormat::Ddxz, "xz -dc"),
        (DdFormat::Ddraw, "cat"),
    ] {
        let out = t.path().join(format!("out.{}", format.filetype()));
        let r = write_dd(
            &q,
            &out,
            &DdOptions {
                format,
                level: 1,
                threads: 2,
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(r.disk_bytes, std::fs::metadata(&reference).unwrap().len());
        sh(&format!(
            "{decompress} {} | cmp - {}",
            out.display(),
            reference.display()
        ));
    }
    // ddraw is sparse: far fewer blocks than its size.
    let raw = t.path().join("out.ddraw");
    let used: u64 = sh_out(&format!(
        "du -k --apparent-size {0} >/dev/null; du -k {0} | cut -f1",
        raw.display()
    ))
    .trim()
    .parse()
    .unwrap();
    assert!(
        used * 1024 < std::fs::metadata(&raw).unwrap().len() / 2,
        "ddraw is not sparse: {used} KiB used"
    );
}

#[test]
fn dd_of_a_truncated_qcow2_is_an_error() {
    if !have(&["qemu-img"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let q = t.path().join("d.qcow2");
    qemu_img(&format!("create -f qcow2 {} 64M", q.display()));
    sh(&format!(
        "qemu-io -c 'write -P 7 0 1M' {} >/dev/null && truncate -s 200000 {}",
        q.display(),
        q.display()
    ));
    let e = write_dd(
        &q,
        &t.path().join("o.gz"),
        &DdOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("truncated") || format!("{e:?}").contains("truncated"),
        "{e:?}"
    );
}
