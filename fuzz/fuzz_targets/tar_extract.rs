//! The tar writer's safe API against the real GNU tar: an arbitrary tree of
//! entries (names as arbitrary bytes, kinds, link targets, sizes, sparse
//! maps) goes through [`TarWriter`]; whatever it accepts is extracted with
//! `tar -x --no-same-owner` into an empty directory inside a temporary
//! parent. Nothing may land outside that directory: the parent holds only
//! the extraction directory afterwards, and every extracted object's real
//! location (its parent canonicalised) stays inside.
//!
//! A link target `@…` stands for the absolute path of the parent, so that a
//! write through an escaping symlink would be seen.
#![no_main]

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kiln_image::tar::{EntryHeader, EntryKind, TarLimits, TarWriter};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const WORDS: &[&[u8]] = &[
    b"a", b"b", b"lib", b"..", b".", b"", b"/", b"//", b"x\0y", b"../..", b"@", b"etc", b"a/..",
];

fn component(u: &mut Unstructured, parent: &[u8]) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 | 1 => u.choose(WORDS)?.to_vec(),
        2 => {
            let n = u.int_in_range(0..=6)?;
            u.bytes(n)?.to_vec()
        }
        _ => parent.to_vec(),
    })
}

fn path(u: &mut Unstructured, parent: &[u8], earlier: &[Vec<u8>]) -> Result<Vec<u8>> {
    if !earlier.is_empty() && u.ratio(1, 3)? {
        // Below (or at) an earlier name.
        let mut p = u.choose(earlier)?.clone();
        if u.ratio(2, 3)? {
            p.push(b'/');
            p.extend(component(u, parent)?);
        }
        return Ok(p);
    }
    let mut p = if u.ratio(2, 3)? {
        b"./".to_vec()
    } else {
        vec![]
    };
    for i in 0..u.int_in_range(1..=3)? {
        if i > 0 {
            p.push(b'/');
        }
        p.extend(component(u, parent)?);
    }
    Ok(p)
}

fn target(u: &mut Unstructured, parent: &[u8], earlier: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut t = if !earlier.is_empty() && u.ratio(1, 2)? {
        u.choose(earlier)?.clone()
    } else {
        path(u, parent, earlier)?
    };
    // `@` stands for the parent of the extraction directory.
    if let Some(i) = t.iter().position(|&c| c == b'@') {
        let mut r = t[..i].to_vec();
        r.extend_from_slice(parent);
        r.extend_from_slice(&t[i + 1..]);
        t = r;
    }
    Ok(t)
}

fn build(u: &mut Unstructured, parent: &[u8]) -> Result<Vec<u8>> {
    let mut w = TarWriter::new(Vec::new()).with_limits(TarLimits {
        max_file_size: 1 << 20,
        max_stored_size: 1 << 16,
    });
    let mut earlier: Vec<Vec<u8>> = vec![];
    for _ in 0..u.int_in_range(1..=24)? {
        let p = path(u, parent, &earlier)?;
        let kind = match u.int_in_range(0..=5u8)? {
            0 | 1 => EntryKind::File,
            2 => EntryKind::Directory,
            3 => EntryKind::Symlink(target(u, parent, &earlier)?),
            4 => EntryKind::HardLink(target(u, parent, &earlier)?),
            _ => EntryKind::Fifo,
        };
        let mut e = EntryHeader::new(&p, kind);
        e.mode = u.int_in_range(0..=0o7777)?;
        if e.kind == EntryKind::File {
            e.size = if u.ratio(1, 8)? {
                u.arbitrary()?
            } else {
                u.int_in_range(0..=600)?
            };
            if u.ratio(1, 4)? {
                let mut map = vec![];
                for _ in 0..u.int_in_range(0..=3)? {
                    map.push((u.int_in_range(0..=1 << 21)?, u.int_in_range(0..=700)?));
                }
                map.sort_unstable();
                e.sparse = Some(map);
            }
        }
        if w.start_entry(&e).is_err() {
            continue;
        }
        let data = vec![b'k'; e.stored_size() as usize];
        w.write_data(&data).expect("exactly the announced size");
        earlier.push(p);
    }
    Ok(w.finish().expect("in-memory finish"))
}

fn check_inside(root: &Path, dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for item in rd.flatten() {
        let p = item.path();
        let real_parent = std::fs::canonicalize(p.parent().expect("has a parent"))
            .expect("parent of an extracted object resolves");
        assert!(
            real_parent.starts_with(root),
            "{} is outside {}",
            p.display(),
            root.display()
        );
        let md = std::fs::symlink_metadata(&p).expect("lstat");
        if md.is_dir() {
            check_inside(root, &p);
        }
    }
}

fn allow_cleanup(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for item in rd.flatten() {
        if item.file_type().is_ok_and(|t| t.is_dir()) {
            allow_cleanup(&item.path());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let parent = tempfile::tempdir().expect("temp parent");
    let parent_path: PathBuf = std::fs::canonicalize(parent.path()).expect("canonical parent");
    let x = parent_path.join("x");
    std::fs::create_dir(&x).expect("extraction dir");
    let mut u = Unstructured::new(data);
    let Ok(tar) = build(&mut u, parent_path.as_os_str().as_bytes()) else {
        return;
    };
    let mut child = Command::new("tar")
        .args(["-x", "--no-same-owner", "-f", "-", "-C"])
        .arg(&x)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("GNU tar runs");
    let _ = child.stdin.take().expect("stdin").write_all(&tar);
    let _ = child.wait().expect("tar exits");
    let names: Vec<_> = std::fs::read_dir(&parent_path)
        .expect("list parent")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        [std::ffi::OsString::from("x")],
        "tar wrote beside the extraction dir"
    );
    let root = std::fs::canonicalize(&x).expect("extraction dir resolves");
    check_inside(&root, &root);
    allow_cleanup(&x);
});
