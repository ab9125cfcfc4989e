//! The extra CD of `cd_files`/`cd_content`, written in-process as an ISO
//! 9660 image with Rock Ridge (POSIX names and modes) and Joliet (Unicode
//! names), with the volume id from `cd_label` — `cidata` makes a NoCloud
//! seed. No `xorriso`/`mkisofs`/`cloud-localds` needed.
//!
//! File placement follows Packer's `StepCreateCD`: a file goes to the root
//! under its base name; a directory is copied with its own name, or its
//! contents alone when written with a trailing slash; globs are expanded;
//! `cd_content` entries win over files at the same path.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const SECTOR: usize = 2048;

/// Where a file's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Bytes(Vec<u8>),
    File(PathBuf),
}

impl Source {
    fn len(&self) -> Result<u64, MediaError> {
        match self {
            Source::Bytes(b) => Ok(b.len() as u64),
            Source::File(p) => {
                std::fs::metadata(p)
                    .map(|m| m.len())
                    .map_err(|source| MediaError::Io {
                        path: p.clone(),
                        source,
                    })
            }
        }
    }
}

/// Files of a medium: path inside it (`/`-separated, no leading `/`) to source.
pub type MediaFiles = BTreeMap<String, Source>;

/// Errors building media.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MediaError + '_ {
    move |source| MediaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Expand a Packer path list (globs allowed) against `base` (relative
/// paths are relative to it, as to Packer's working directory).
pub fn expand(patterns: &[String], base: &Path) -> Result<Vec<PathBuf>, MediaError> {
    let mut out = Vec::new();
    for pattern in patterns {
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        if pattern.contains(['*', '?', '[']) {
            let text = full.to_string_lossy().to_string();
            let paths = glob::glob(&text).map_err(|e| MediaError::Pattern {
                pattern: pattern.clone(),
                reason: e.to_string(),
            })?;
            for p in paths {
                out.push(p.map_err(|e| MediaError::Pattern {
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                })?);
            }
        } else {
            std::fs::metadata(&full).map_err(io_err(&full))?;
            // Keep a trailing slash: it means "the contents".
            let mut p = full.into_os_string();
            if pattern.ends_with('/') && !p.to_string_lossy().ends_with('/') {
                p.push("/");
            }
            out.push(PathBuf::from(p));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, files: &mut MediaFiles) -> Result<(), MediaError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        let inner = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        // Symlinks are followed: their targets are copied.
        let meta = std::fs::metadata(&path).map_err(io_err(&path))?;
        if meta.is_dir() {
            files.insert(format!("{inner}/"), Source::Bytes(Vec::new()));
            walk(&path, &inner, files)?;
        } else {
            files.insert(inner, Source::File(path));
        }
    }
    Ok(())
}

/// The CD's files from `cd_files` and `cd_content` (Packer's layout). A key
/// ending in `/` is an (empty) directory.
pub fn cd_files(
    cd_files: &[String],
    cd_content: &BTreeMap<String, String>,
    base: &Path,
) -> Result<MediaFiles, MediaError> {
    let mut files = MediaFiles::new();
    for path in expand(cd_files, base)? {
        let text = path.to_string_lossy();
        let meta = std::fs::metadata(&path).map_err(io_err(&path))?;
        if !meta.is_dir() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .ok_or_else(|| MediaError::Invalid(format!("{text}: no file name")))?;
            files.insert(name, Source::File(path.clone()));
        } else if text.ends_with('/') {
            walk(&path, "", &mut files)?;
        } else {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .ok_or_else(|| MediaError::Invalid(format!("{text}: no directory name")))?;
            files.insert(format!("{name}/"), Source::Bytes(Vec::new()));
            walk(&path, &name, &mut files)?;
        }
    }
    for (path, content) in cd_content {
        let key = path.trim_start_matches('/').to_string();
        if key.is_empty() || key.split('/').any(|c| c == ".." || c == ".") {
            return Err(MediaError::Invalid(format!(
                "cd_content path {path:?} is not a plain relative path"
            )));
        }
        files.insert(key, Source::Bytes(content.clone().into_bytes()));
    }
    Ok(files)
}

#[derive(Default)]
struct Dir {
    dirs: BTreeMap<String, Dir>,
    files: BTreeMap<String, Source>,
    // Assigned during layout.
    number: u16,
    parent: u16,
    lba: u32,
    size: u32,
    jlba: u32,
    jsize: u32,
}

fn build_tree(files: &MediaFiles) -> Result<Dir, MediaError> {
    let mut root = Dir::default();
    for (path, source) in files {
        let is_dir = path.ends_with('/');
        let parts: Vec<&str> = path
            .trim_end_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let Some((last, dirs)) = parts.split_last() else {
            continue;
        };
        let mut d = &mut root;
        for part in dirs {
            d = d.dirs.entry((*part).to_string()).or_default();
        }
        if is_dir {
            d.dirs.entry((*last).to_string()).or_default();
        } else {
            if d.dirs.contains_key(*last) {
                return Err(MediaError::Invalid(format!(
                    "{path} is both a file and a directory"
                )));
            }
            d.files.insert((*last).to_string(), source.clone());
        }
    }
    Ok(root)
}

/// ISO 9660 name (d-characters) for a file or directory.
fn iso_name(name: &str, is_dir: bool, taken: &mut Vec<String>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                let c = c.to_ascii_uppercase();
                if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !is_dir && !s.is_empty() => (clean(s), clean(e)),
        _ => (clean(name), String::new()),
    };
    let ext: String = ext.chars().take(8).collect();
    let max_stem = 30 - ext.len().max(1) - 1;
    let mut stem: String = stem.chars().take(max_stem).collect();
    let make = |stem: &str| {
        if is_dir {
            stem.to_string()
        } else {
            format!("{stem}.{ext};1")
        }
    };
    let mut candidate = make(&stem);
    let mut n = 1;
    while taken.contains(&candidate) {
        let suffix = format!("~{n}");
        stem = stem
            .chars()
            .take(max_stem - suffix.len())
            .collect::<String>();
        candidate = make(&format!("{stem}{suffix}"));
        n += 1;
    }
    taken.push(candidate.clone());
    candidate
}

fn joliet_name(name: &str) -> Vec<u8> {
    name.chars()
        .map(|c| {
            if matches!(c, '*' | '/' | ':' | ';' | '?' | '\\') {
                '_'
            } else {
                c
            }
        })
        .flat_map(|c| {
            let mut buf = [0u16; 2];
            c.encode_utf16(&mut buf).to_vec()
        })
        .take(64)
        .flat_map(u16::to_be_bytes)
        .collect()
}

fn both16(v: u16) -> [u8; 4] {
    let l = v.to_le_bytes();
    let b = v.to_be_bytes();
    [l[0], l[1], b[0], b[1]]
}

fn both32(v: u32) -> [u8; 8] {
    let l = v.to_le_bytes();
    let b = v.to_be_bytes();
    [l[0], l[1], l[2], l[3], b[0], b[1], b[2], b[3]]
}

/// UTC calendar fields of a Unix time.
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem / 60 % 60) as u32,
        (rem % 60) as u32,
    )
}

fn date7(secs: u64) -> [u8; 7] {
    let (y, mo, d, h, mi, s) = civil(secs);
    [
        (y - 1900).clamp(0, 255) as u8,
        mo as u8,
        d as u8,
        h as u8,
        mi as u8,
        s as u8,
        0,
    ]
}

fn date17(secs: u64) -> [u8; 17] {
    let (y, mo, d, h, mi, s) = civil(secs);
    let text = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}00");
    let mut out = [0u8; 17];
    out[..16].copy_from_slice(&text.as_bytes()[..16]);
    out
}

const ER_ID: &str = "RRIP_1991A";
const ER_DES: &str =
    "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
const ER_SRC: &str = "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

fn susp_px(mode: u32, links: u32) -> Vec<u8> {
    let mut v = vec![b'P', b'X', 36, 1];
    v.extend(both32(mode));
    v.extend(both32(links));
    v.extend(both32(0));
    v.extend(both32(0));
    v
}

fn susp_tf(stamp: &[u8; 7]) -> Vec<u8> {
    // MODIFY | ACCESS | ATTRIBUTES
    let mut v = vec![b'T', b'F', 5 + 21, 1, 0x0e];
    for _ in 0..3 {
        v.extend(stamp);
    }
    v
}

fn susp_nm(name: &str) -> Vec<u8> {
    let mut v = vec![b'N', b'M', (5 + name.len()) as u8, 1, 0];
    v.extend(name.as_bytes());
    v
}

fn er_entry() -> Vec<u8> {
    let mut v = vec![
        b'E',
        b'R',
        (8 + ER_ID.len() + ER_DES.len() + ER_SRC.len()) as u8,
        1,
        ER_ID.len() as u8,
        ER_DES.len() as u8,
        ER_SRC.len() as u8,
        1,
    ];
    v.extend(ER_ID.as_bytes());
    v.extend(ER_DES.as_bytes());
    v.extend(ER_SRC.as_bytes());
    v
}

fn record(id: &[u8], lba: u32, size: u32, is_dir: bool, stamp: &[u8; 7], su: &[u8]) -> Vec<u8> {
    let pad = usize::from(id.len().is_multiple_of(2));
    let mut len = 33 + id.len() + pad + su.len();
    let tail = len % 2;
    len += tail;
    let mut r = Vec::with_capacity(len);
    r.push(len as u8);
    r.push(0);
    r.extend(both32(lba));
    r.extend(both32(size));
    r.extend(stamp);
    r.push(if is_dir { 2 } else { 0 });
    r.push(0);
    r.push(0);
    r.extend(both16(1));
    r.push(id.len() as u8);
    r.extend(id);
    r.extend(std::iter::repeat_n(0, pad));
    r.extend(su);
    r.extend(std::iter::repeat_n(0, tail));
    r
}

/// Lay records into sectors (a record never crosses a sector boundary).
fn sectorize(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let used = out.len() % SECTOR;
        if used + r.len() > SECTOR {
            out.resize(out.len() + SECTOR - used, 0);
        }
        out.extend(r);
    }
    let rem = out.len() % SECTOR;
    if rem != 0 || out.is_empty() {
        out.resize(out.len() + SECTOR - rem, 0);
    }
    out
}

struct Entry<'a> {
    iso: String,
    rr: &'a str,
    joliet: Vec<u8>,
    dir: Option<&'a Dir>,
    file: Option<(u32, u64)>,
}

fn entries<'a>(d: &'a Dir, files: &BTreeMap<*const Source, (u32, u64)>) -> Vec<Entry<'a>> {
    let mut taken = Vec::new();
    let mut list: Vec<Entry<'a>> = Vec::new();
    for (name, sub) in &d.dirs {
        list.push(Entry {
            iso: iso_name(name, true, &mut taken),
            rr: name,
            joliet: joliet_name(name),
            dir: Some(sub),
            file: None,
        });
    }
    for (name, src) in &d.files {
        list.push(Entry {
            iso: iso_name(name, false, &mut taken),
            rr: name,
            joliet: joliet_name(name),
            dir: None,
            file: files.get(&(src as *const Source)).copied(),
        });
    }
    list
}

fn dir_records(
    d: &Dir,
    parent: &Dir,
    files: &BTreeMap<*const Source, (u32, u64)>,
    joliet: bool,
    root_ce: Option<u32>,
    stamp: &[u8; 7],
) -> Vec<Vec<u8>> {
    let (lba, size, plba, psize) = if joliet {
        (d.jlba, d.jsize, parent.jlba, parent.jsize)
    } else {
        (d.lba, d.size, parent.lba, parent.size)
    };
    let links = 2 + d.dirs.len() as u32;
    let mut dot_su = Vec::new();
    if !joliet {
        if let Some(ce) = root_ce {
            dot_su.extend([b'S', b'P', 7, 1, 0xbe, 0xef, 0]);
            let er_len = er_entry().len() as u32;
            dot_su.extend([b'C', b'E', 28, 1]);
            dot_su.extend(both32(ce));
            dot_su.extend(both32(0));
            dot_su.extend(both32(er_len));
        }
        dot_su.extend(susp_px(0o040755, links));
        dot_su.extend(susp_tf(stamp));
    }
    let dotdot_su = if joliet {
        Vec::new()
    } else {
        let mut v = susp_px(0o040755, 2 + parent.dirs.len() as u32);
        v.extend(susp_tf(stamp));
        v
    };
    let mut recs = vec![
        record(&[0], lba, size, true, stamp, &dot_su),
        record(&[1], plba, psize, true, stamp, &dotdot_su),
    ];
    let mut list = entries(d, files);
    if joliet {
        list.sort_by(|a, b| a.joliet.cmp(&b.joliet));
    } else {
        list.sort_by(|a, b| a.iso.cmp(&b.iso));
    }
    for e in list {
        let (elba, esize, is_dir) = match (e.dir, e.file) {
            (Some(sub), _) if joliet => (sub.jlba, sub.jsize, true),
            (Some(sub), _) => (sub.lba, sub.size, true),
            (None, Some((l, s))) => (l, s as u32, false),
            (None, None) => (0, 0, false),
        };
        if joliet {
            recs.push(record(&e.joliet, elba, esize, is_dir, stamp, &[]));
        } else {
            let mut su = susp_px(
                if is_dir { 0o040755 } else { 0o100644 },
                e.dir.map_or(1, |s| 2 + s.dirs.len() as u32),
            );
            su.extend(susp_tf(stamp));
            su.extend(susp_nm(e.rr));
            recs.push(record(e.iso.as_bytes(), elba, esize, is_dir, stamp, &su));
        }
    }
    recs
}

fn bfs(root: &Dir) -> Vec<&Dir> {
    let mut order = vec![root];
    let mut i = 0;
    while i < order.len() {
        let d = order[i];
        order.extend(d.dirs.values());
        i += 1;
    }
    order
}

fn bfs_mut(root: &mut Dir, mut f: impl FnMut(&mut Dir)) {
    let mut stack: std::collections::VecDeque<&mut Dir> = std::collections::VecDeque::new();
    stack.push_back(root);
    while let Some(d) = stack.pop_front() {
        f(d);
        for sub in d.dirs.values_mut() {
            stack.push_back(sub);
        }
    }
}

fn path_table(
    order: &[&Dir],
    names: &BTreeMap<*const Dir, Vec<u8>>,
    joliet: bool,
    big_endian: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    for d in order {
        let id = names
            .get(&(*d as *const Dir))
            .cloned()
            .unwrap_or_else(|| vec![0]);
        let lba = if joliet { d.jlba } else { d.lba };
        out.push(id.len() as u8);
        out.push(0);
        if big_endian {
            out.extend(lba.to_be_bytes());
            out.extend(d.parent.to_be_bytes());
        } else {
            out.extend(lba.to_le_bytes());
            out.extend(d.parent.to_le_bytes());
        }
        out.extend(&id);
        if id.len() % 2 == 1 {
            out.push(0);
        }
    }
    out
}

fn sectors(bytes: usize) -> u32 {
    bytes.div_ceil(SECTOR).max(1) as u32
}

fn pad_str(s: &str, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = s.bytes().take(len).collect();
    v.resize(len, b' ');
    v
}

fn pad_ucs2(s: &str, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = s
        .encode_utf16()
        .take(len / 2)
        .flat_map(u16::to_be_bytes)
        .collect();
    while v.len() + 1 < len {
        v.extend([0, b' ']);
    }
    v.resize(len, 0);
    v
}

/// Write an ISO 9660 image with Rock Ridge and Joliet to `out`.
/// `label` is the volume id (at most 32 characters, written as given).
pub fn write_iso(
    out: &Path,
    label: &str,
    files: &MediaFiles,
    mtime: Option<SystemTime>,
) -> Result<(), MediaError> {
    if label.chars().count() > 32 {
        return Err(MediaError::Invalid(format!(
            "volume id {label:?} is longer than 32 characters"
        )));
    }
    let secs = mtime
        .unwrap_or_else(SystemTime::now)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let stamp = date7(secs);
    let mut root = build_tree(files)?;

    // Directory numbers and parents, in path-table (BFS) order.
    {
        let mut n = 0u16;
        let mut numbers: Vec<u16> = Vec::new();
        bfs_mut(&mut root, |d| {
            n += 1;
            d.number = n;
            numbers.push(n);
        });
        let mut parent_of = Vec::new();
        for d in bfs(&root) {
            for sub in d.dirs.values() {
                parent_of.push((sub.number, d.number));
            }
        }
        bfs_mut(&mut root, |d| {
            d.parent = parent_of
                .iter()
                .find(|(c, _)| *c == d.number)
                .map(|(_, p)| *p)
                .unwrap_or(1);
        });
    }

    // Path-table names.
    let mut iso_names: BTreeMap<*const Dir, Vec<u8>> = BTreeMap::new();
    let mut joliet_names: BTreeMap<*const Dir, Vec<u8>> = BTreeMap::new();
    for d in bfs(&root) {
        let mut taken = Vec::new();
        for (name, sub) in &d.dirs {
            iso_names.insert(
                sub as *const Dir,
                iso_name(name, true, &mut taken).into_bytes(),
            );
            joliet_names.insert(sub as *const Dir, joliet_name(name));
        }
    }
    let ndirs = bfs(&root).len();
    let pt_size = path_table(&bfs(&root), &iso_names, false, false).len();
    let jpt_size = path_table(&bfs(&root), &joliet_names, true, false).len();

    // Fixed area: 16 system sectors, PVD, SVD, terminator, 4 path tables.
    let pt_sectors = sectors(pt_size);
    let jpt_sectors = sectors(jpt_size);
    let l_pt = 19u32;
    let m_pt = l_pt + pt_sectors;
    let jl_pt = m_pt + pt_sectors;
    let jm_pt = jl_pt + jpt_sectors;
    let mut next = jm_pt + jpt_sectors;

    // Directory sizes need file LBAs only for values, not lengths: size first.
    let no_files = BTreeMap::new();
    let mut sizes: Vec<(u32, u32)> = Vec::new();
    for d in bfs(&root) {
        let p = dir_records(d, d, &no_files, false, (d.number == 1).then_some(0), &stamp);
        let j = dir_records(d, d, &no_files, true, None, &stamp);
        sizes.push((sectorize(&p).len() as u32, sectorize(&j).len() as u32));
    }
    let mut k = 0;
    bfs_mut(&mut root, |d| {
        d.size = sizes[k].0;
        d.lba = next;
        next += d.size / SECTOR as u32;
        k += 1;
    });
    let mut k = 0;
    bfs_mut(&mut root, |d| {
        d.jsize = sizes[k].1;
        d.jlba = next;
        next += d.jsize / SECTOR as u32;
        k += 1;
    });
    let ce_lba = next;
    next += 1;

    // File data.
    let mut file_lbas: BTreeMap<*const Source, (u32, u64)> = BTreeMap::new();
    let mut data: Vec<(&Source, u32, u64)> = Vec::new();
    for d in bfs(&root) {
        for src in d.files.values() {
            let len = src.len()?;
            if len > u64::from(u32::MAX) {
                return Err(MediaError::Invalid(
                    "a file of 4 GiB or more needs multi-extent ISO files (not supported)".into(),
                ));
            }
            let lba = if len == 0 { 0 } else { next };
            file_lbas.insert(src as *const Source, (lba, len));
            data.push((src, lba, len));
            next += sectors(len as usize) * u32::from(len != 0);
        }
    }
    let total = next;

    let mut f = std::fs::File::create(out).map_err(io_err(out))?;
    let mut head = vec![0u8; 16 * SECTOR];
    let root_rec = |joliet: bool| {
        let (lba, size) = if joliet {
            (root.jlba, root.jsize)
        } else {
            (root.lba, root.size)
        };
        record(&[0], lba, size, true, &stamp, &[])
    };
    for joliet in [false, true] {
        let mut vd = vec![0u8; SECTOR];
        vd[0] = if joliet { 2 } else { 1 };
        vd[1..6].copy_from_slice(b"CD001");
        vd[6] = 1;
        let text = |s: &str, n: usize| {
            if joliet {
                pad_ucs2(s, n)
            } else {
                pad_str(s, n)
            }
        };
        vd[8..40].copy_from_slice(&text("LINUX", 32));
        vd[40..72].copy_from_slice(&text(label, 32));
        vd[80..88].copy_from_slice(&both32(total));
        if joliet {
            vd[88..91].copy_from_slice(b"%/E");
        }
        vd[120..124].copy_from_slice(&both16(1));
        vd[124..128].copy_from_slice(&both16(1));
        vd[128..132].copy_from_slice(&both16(SECTOR as u16));
        let (size, l, m) = if joliet {
            (jpt_size, jl_pt, jm_pt)
        } else {
            (pt_size, l_pt, m_pt)
        };
        vd[132..140].copy_from_slice(&both32(size as u32));
        vd[140..144].copy_from_slice(&l.to_le_bytes());
        vd[148..152].copy_from_slice(&m.to_be_bytes());
        vd[156..190].copy_from_slice(&root_rec(joliet));
        vd[190..318].copy_from_slice(&text("", 128));
        vd[318..446].copy_from_slice(&text("", 128));
        vd[446..574].copy_from_slice(&text("KILN", 128));
        vd[574..702].copy_from_slice(&text("KILN", 128));
        vd[702..739].copy_from_slice(&text("", 37));
        vd[739..776].copy_from_slice(&text("", 37));
        vd[776..813].copy_from_slice(&text("", 37));
        let created = date17(secs);
        vd[813..830].copy_from_slice(&created);
        vd[830..847].copy_from_slice(&created);
        vd[847..863].copy_from_slice(b"0000000000000000");
        vd[864..880].copy_from_slice(b"0000000000000000");
        vd[881] = 1;
        head.extend(vd);
    }
    let mut term = vec![0u8; SECTOR];
    term[0] = 255;
    term[1..6].copy_from_slice(b"CD001");
    term[6] = 1;
    head.extend(term);
    let order = bfs(&root);
    for (names, joliet, secs_n) in [
        (&iso_names, false, pt_sectors),
        (&joliet_names, true, jpt_sectors),
    ] {
        for big in [false, true] {
            let mut t = path_table(&order, names, joliet, big);
            t.resize(secs_n as usize * SECTOR, 0);
            head.extend(t);
        }
    }
    for joliet in [false, true] {
        for d in &order {
            let parent = order
                .iter()
                .find(|p| p.number == d.parent)
                .copied()
                .unwrap_or(d);
            let ce = (!joliet && d.number == 1).then_some(ce_lba);
            head.extend(sectorize(&dir_records(
                d, parent, &file_lbas, joliet, ce, &stamp,
            )));
        }
    }
    let mut ce = er_entry();
    ce.resize(SECTOR, 0);
    head.extend(ce);
    debug_assert_eq!(head.len(), ce_lba as usize * SECTOR + SECTOR);
    let _ = ndirs;
    f.write_all(&head).map_err(io_err(out))?;

    for (src, _lba, len) in data {
        if len == 0 {
            continue;
        }
        match src {
            Source::Bytes(b) => f.write_all(b).map_err(io_err(out))?,
            Source::File(p) => {
                let mut input = std::fs::File::open(p).map_err(io_err(p))?;
                let copied =
                    std::io::copy(&mut (&mut input).take(len), &mut f).map_err(io_err(p))?;
                if copied != len {
                    return Err(MediaError::Invalid(format!(
                        "{} changed size while being written",
                        p.display()
                    )));
                }
            }
        }
        let rem = (len as usize) % SECTOR;
        if rem != 0 {
            f.write_all(&vec![0u8; SECTOR - rem]).map_err(io_err(out))?;
        }
    }
    f.flush().map_err(io_err(out))?;
    Ok(())
}

#[cfg(test)]
mod tests;
