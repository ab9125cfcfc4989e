//! Fixture helpers for the image tests: real tools on real files.
//! Needs (Debian): e2fsprogs, gdisk, qemu-utils, dosfstools, mtools, attr,
//! libcap2-bin, acl, tar, and root (mknod, chown).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn have(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {t}"))
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIP: missing tools {missing:?} (apt-get install e2fsprogs gdisk qemu-utils dosfstools mtools attr libcap2-bin acl)"
        );
        return false;
    }
    if unsafe_is_not_root() {
        eprintln!("SKIP: these tests need root (mknod, chown)");
        return false;
    }
    true
}

fn unsafe_is_not_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() != 0)
        .unwrap_or(true)
}

pub fn sh(script: &str) {
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "script failed: {script}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn sh_out(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "script failed: {script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The known tree: owners, modes, symlinks, hard links, devices, fifos,
/// xattrs (incl. security.capability and ACLs), a sparse file, long and
/// unicode names, deep paths, empty files, nanosecond mtimes.
pub fn build_tree(root: &Path) {
    let r = root.display();
    let long_comp = "L".repeat(150);
    let long_target = format!("/usr/share/{}", "t".repeat(120));
    sh(&format!(
        r#"
cd {r}
mkdir -p etc usr/bin usr/share/doc home/user/.ssh var/log var/lib/dbus tmp dev deep boot/efi root
printf 'ID=debian\nVERSION_ID=12\n' > usr/share/os-release.real
ln -s ../usr/share/os-release.real etc/os-release
echo 'root:x:0:0:root:/root:/bin/bash' > etc/passwd
chmod 644 etc/passwd
printf 'hello world\n' > usr/bin/tool; chmod 4755 usr/bin/tool
head -c 300000 /dev/urandom > usr/share/doc/random.bin
(yes 'compressible line of text' || true) | head -c 200000 > usr/share/doc/text.txt
: > usr/share/doc/empty
ln usr/share/doc/text.txt usr/share/doc/text-hardlink.txt
ln usr/share/doc/text.txt etc/text-third-link
ln -s /etc/passwd usr/share/short-link
ln -s {long_target} usr/share/long-link
mknod dev/null c 1 3; chmod 666 dev/null
mknod dev/sda1 b 8 1; chmod 660 dev/sda1
mknod dev/bigminor c 259 70000
mkfifo dev/fifo; chmod 600 dev/fifo
echo 'user file' > home/user/notes.txt
chown -R 1000:1000 home/user
chown 3000000:3000001 usr/share/doc/empty
chmod 1777 tmp
chmod 700 root
echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIuser user@host' > home/user/.ssh/authorized_keys
truncate -s 20M usr/share/sparse.img
printf 'data in the middle' | dd of=usr/share/sparse.img bs=1 seek=5000000 conv=notrunc status=none
printf 'tail' | dd of=usr/share/sparse.img bs=1 seek=$((20*1024*1024-4)) conv=notrunc status=none
truncate -s 1M usr/share/all-hole.img
mkdir -p usr/share/{long_comp}
echo long > usr/share/{long_comp}/{long_comp}
d=deep; for i in $(seq 1 40); do d=$d/level$i; done; mkdir -p $d; echo bottom > $d/file
echo 'grüße' > 'usr/share/ünïcödé-名前.txt'
setfattr -n user.comment -v 'a user xattr' usr/share/doc/text.txt
setfattr -n user.binary -v 0x00ff10 usr/share/doc/random.bin
setfattr -n trusted.t -v trusted-value etc/passwd
setcap cap_net_raw,cap_net_admin+ep usr/bin/tool
if command -v setfacl >/dev/null; then setfacl -m u:1000:r-x,g:100:r-- usr/share/doc/text.txt; setfacl -d -m u:1000:rwx home/user; fi
printf 'machine-id-abcdef0123456789\n' > etc/machine-id
touch -h -d '2021-03-04 05:06:07.123456789' usr/share/short-link
touch -d '2020-01-02 03:04:05.987654321' usr/share/doc/text.txt
touch -d '1999-12-31 23:59:59' usr/share/doc/empty
"#
    ));
}

pub fn make_ext4(tree: &Path, img: &Path, size_mb: u64, opts: &str) {
    sh(&format!(
        "rm -f {img}; truncate -s {size_mb}M {img}; mkfs.ext4 -q -F -L kiln-root {opts} -d {tree} {img}",
        img = img.display(),
        tree = tree.display()
    ));
}

/// A GPT disk: partition 1 = ESP (vfat, with `EFI/BOOT/BOOTX64.EFI` and a long-named file), 2 = `root_img`.
pub fn make_disk(root_img: &Path, disk: &Path) {
    let root_mb = std::fs::metadata(root_img).unwrap().len().div_ceil(1 << 20);
    let total = 1 + 33 + root_mb + 2;
    sh(&format!(
        r#"
d={disk}; rm -f $d; truncate -s {total}M $d
sgdisk -o -n 1:2048:+32M -t 1:ef00 -c 1:ESP -n 2:0:0 -t 2:8300 -c 2:root $d >/dev/null
esp=$d.esp; rm -f $esp; truncate -s 32M $esp; mkfs.vfat -n KILNESP $esp >/dev/null
mkdir -p $d.espdir/EFI/BOOT; printf 'efi binary' > $d.espdir/EFI/BOOT/BOOTX64.EFI
printf 'a long name' > "$d.espdir/EFI/BOOT/A Long File Name.conf"
mcopy -s -i $esp $d.espdir/EFI ::/
dd if=$esp of=$d bs=1M seek=1 conv=notrunc status=none
start=$(sgdisk -i 2 $d | awk '/First sector/{{print $3}}')
dd if={root} of=$d bs=512 seek=$start conv=notrunc,sparse status=none
rm -rf $esp $d.espdir
"#,
        disk = disk.display(),
        root = root_img.display()
    ));
}

pub fn qemu_img(args: &str) {
    sh(&format!("qemu-img {args}"));
}

#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, i64),
    pub content: Option<String>,
    pub link: Option<String>,
    pub rdev: u64,
    pub link_group: Vec<String>,
}

/// Describe every object under `root` (relative paths), excluding those for which `skip` says so.
pub fn describe_tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut by_ino: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let md = std::fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let key = if rel.as_os_str().is_empty() {
            ".".to_string()
        } else {
            rel.display().to_string()
        };
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else {
            use std::os::unix::fs::FileTypeExt;
            if ft.is_char_device() {
                "char"
            } else if ft.is_block_device() {
                "block"
            } else if ft.is_fifo() {
                "fifo"
            } else {
                "socket"
            }
        };
        if ft.is_file() && md.nlink() > 1 {
            by_ino.entry(md.ino()).or_default().push(key.clone());
        }
        let content = ft.is_file().then(|| {
            let d = std::fs::read(&p).unwrap();
            format!("{} bytes, fnv {:016x}", d.len(), fnv(&d))
        });
        out.insert(
            key.clone(),
            Node {
                kind: kind.into(),
                mode: md.permissions().mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size: if ft.is_file() { md.len() } else { 0 },
                mtime: (md.mtime(), md.mtime_nsec()),
                content,
                link: ft
                    .is_symlink()
                    .then(|| std::fs::read_link(&p).unwrap().display().to_string()),
                rdev: md.rdev(),
                link_group: vec![],
            },
        );
        if ft.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                let e = e.unwrap();
                if rel.as_os_str().is_empty() && e.file_name() == "lost+found" {
                    continue;
                }
                stack.push(rel.join(e.file_name()));
            }
        }
    }
    for group in by_ino.into_values() {
        let mut g = group.clone();
        g.sort();
        for k in &group {
            out.get_mut(k).unwrap().link_group = g.clone();
        }
    }
    out
}

pub fn fnv(d: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in d {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// All xattrs of the tree, as `getfattr` prints them (hex values).
pub fn xattrs(root: &Path) -> String {
    sh_out(&format!(
        "cd {} && getfattr -R -h -d -m - -e hex . 2>/dev/null | grep -v '^$' || true",
        root.display()
    ))
}

/// Extract a tarball exactly as curtin does.
pub fn curtin_extract(tgz: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    sh(&format!(
        "cd {} && gzip -dc {} | tar --xattrs --xattrs-include='*' -Sxpf - --numeric-owner",
        into.display(),
        tgz.display()
    ));
}

pub fn assert_same_trees(a: &Path, b: &Path) {
    assert_same_trees_ns(a, b, true)
}

/// `ns`: compare nanoseconds of mtimes (ext3 without extra_isize stores none).
pub fn assert_same_trees_ns(a: &Path, b: &Path, ns: bool) {
    let (mut ta, tb) = (describe_tree(a), describe_tree(b));
    if !ns {
        for n in ta.values_mut() {
            n.mtime.1 = 0;
        }
    }
    let ka: Vec<_> = ta.keys().collect();
    let kb: Vec<_> = tb.keys().collect();
    assert_eq!(ka, kb, "the trees hold different paths");
    for (k, na) in &ta {
        let nb = &tb[k];
        if k == "." {
            continue;
        }
        assert_eq!(na, nb, "`{k}` differs");
    }
    let (xa, xb) = (xattrs(a), xattrs(b));
    assert_eq!(xa, xb, "xattrs differ");
}
