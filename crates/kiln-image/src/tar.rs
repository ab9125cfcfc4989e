//! POSIX tar: a writer of ustar headers with PAX extended records (long
//! names and links, `SCHILY.xattr.*`, mtime with a fraction, large
//! uid/gid/size) and GNU sparse format 1.0; and a reader of the same
//! (plus GNU long names) for the leak scan and the tests.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use crate::fs::Timestamp;

/// Block size of tar.
pub const BLOCK: usize = 512;

/// The kind of a tar entry, with its kind-specific data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file; content follows.
    File,
    /// Directory.
    Directory,
    /// Symlink to the target.
    Symlink(Vec<u8>),
    /// Hard link to an earlier entry's path (as written in the archive).
    HardLink(Vec<u8>),
    /// Character device `(major, minor)`.
    CharDevice(u32, u32),
    /// Block device `(major, minor)`.
    BlockDevice(u32, u32),
    /// Named pipe.
    Fifo,
}

/// The metadata of one tar entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    /// Path as stored (`./etc/passwd`; directories end with `/`).
    pub path: Vec<u8>,
    /// Kind.
    pub kind: EntryKind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// Logical size of a regular file (0 otherwise).
    pub size: u64,
    /// Extended attributes (`name`, raw value).
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Data segments `(offset, len)` of a sparse file; `None` for a dense one.
    pub sparse: Option<Vec<(u64, u64)>>,
}

impl EntryHeader {
    /// A header with defaults for `path` and `kind`.
    pub fn new(path: &[u8], kind: EntryKind) -> Self {
        Self {
            path: path.to_vec(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: Timestamp::default(),
            size: 0,
            xattrs: vec![],
            sparse: None,
        }
    }

    /// Bytes of content that follow the header (data segments only).
    pub fn stored_size(&self) -> u64 {
        match (&self.kind, &self.sparse) {
            (EntryKind::File, Some(map)) => map.iter().map(|s| s.1).sum(),
            (EntryKind::File, None) => self.size,
            _ => 0,
        }
    }
}

fn octal(field: &mut [u8], v: u64) -> bool {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    if s.len() > digits {
        // GNU base-256: high bit set, big-endian value in the rest.
        field.fill(0);
        field[0] = 0x80;
        let bytes = v.to_be_bytes();
        let n = (field.len() - 1).min(8);
        let flen = field.len();
        field[flen - n..].copy_from_slice(&bytes[8 - n..]);
        return false;
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ' '=' '\n'
    let mut len = body + 1;
    loop {
        let total = body + len.to_string().len();
        if total == len {
            break;
        }
        len = total;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn xattr_key(name: &str) -> String {
    let mut k = String::from("SCHILY.xattr.");
    for c in name.chars() {
        match c {
            '%' => k.push_str("%25"),
            '=' => k.push_str("%3D"),
            c => k.push(c),
        }
    }
    k
}

#[allow(clippy::too_many_arguments)]
fn header_block(
    name: &[u8],
    typeflag: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    link: &[u8],
    dev: (u32, u32),
) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], mode as u64);
    // Too large values go base-256 here and into PAX records as well.
    octal(&mut h[108..116], uid as u64);
    octal(&mut h[116..124], gid as u64);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime.max(0) as u64);
    h[156] = typeflag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    if typeflag == b'3' || typeflag == b'4' {
        octal(&mut h[329..337], dev.0 as u64);
        octal(&mut h[337..345], dev.1 as u64);
    }
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// Encode `entry` as its header blocks: an optional PAX `x` header with its
/// records, then the ustar header, then (sparse files) the sparse map. The
/// caller then writes [`EntryHeader::stored_size`] bytes of content and
/// [`padding`] zero bytes.
pub fn encode_header(e: &EntryHeader) -> Vec<u8> {
    let mut pax = vec![];
    let (typeflag, link, dev): (u8, &[u8], (u32, u32)) = match &e.kind {
        EntryKind::File => (b'0', b"", (0, 0)),
        EntryKind::Directory => (b'5', b"", (0, 0)),
        EntryKind::Symlink(t) => (b'2', t, (0, 0)),
        EntryKind::HardLink(t) => (b'1', t, (0, 0)),
        EntryKind::CharDevice(a, b) => (b'3', b"", (*a, *b)),
        EntryKind::BlockDevice(a, b) => (b'4', b"", (*a, *b)),
        EntryKind::Fifo => (b'6', b"", (0, 0)),
    };
    let mut name: Vec<u8> = e.path.clone();
    let mut sparse_map = vec![];
    if let (EntryKind::File, Some(map)) = (&e.kind, &e.sparse) {
        pax_record(&mut pax, "GNU.sparse.major", b"1");
        pax_record(&mut pax, "GNU.sparse.minor", b"0");
        pax_record(&mut pax, "GNU.sparse.name", &e.path);
        pax_record(
            &mut pax,
            "GNU.sparse.realsize",
            e.size.to_string().as_bytes(),
        );
        let base = e.path.rsplit(|&c| c == b'/').next().unwrap_or(&e.path);
        let mut fake = b"./GNUSparseFile.0/".to_vec();
        fake.extend_from_slice(base);
        name = fake;
        let mut segs: Vec<(u64, u64)> = map.clone();
        if segs.last().is_none_or(|&(o, l)| o + l < e.size) {
            segs.push((e.size, 0));
        }
        sparse_map.extend_from_slice(format!("{}\n", segs.len()).as_bytes());
        for (o, l) in &segs {
            sparse_map.extend_from_slice(format!("{o}\n{l}\n").as_bytes());
        }
        sparse_map.resize(sparse_map.len().div_ceil(BLOCK) * BLOCK, 0);
    } else if name.len() > 100 {
        pax_record(&mut pax, "path", &e.path);
    }
    if link.len() > 100 {
        pax_record(&mut pax, "linkpath", link);
    }
    let size = e.stored_size() + sparse_map.len() as u64;
    if size >= 1 << 33 {
        pax_record(&mut pax, "size", size.to_string().as_bytes());
    }
    if e.uid >= 1 << 21 {
        pax_record(&mut pax, "uid", e.uid.to_string().as_bytes());
    }
    if e.gid >= 1 << 21 {
        pax_record(&mut pax, "gid", e.gid.to_string().as_bytes());
    }
    if e.mtime.nsec != 0 || e.mtime.sec < 0 || e.mtime.sec >= 1 << 33 {
        let v = if e.mtime.nsec != 0 {
            let (s, ns) = if e.mtime.sec < 0 {
                // -1.25 is written as "-1.25": sec + frac with the sign on the whole.
                let total = e.mtime.sec as i128 * 1_000_000_000 + e.mtime.nsec as i128;
                let a = total.unsigned_abs();
                (
                    format!("-{}", a / 1_000_000_000),
                    (a % 1_000_000_000) as u32,
                )
            } else {
                (e.mtime.sec.to_string(), e.mtime.nsec)
            };
            format!("{s}.{ns:09}")
        } else {
            e.mtime.sec.to_string()
        };
        pax_record(&mut pax, "mtime", v.as_bytes());
    }
    for (k, v) in &e.xattrs {
        pax_record(&mut pax, &xattr_key(k), v);
    }
    let mut out = Vec::with_capacity(BLOCK * 2 + pax.len() + sparse_map.len());
    if !pax.is_empty() {
        let mut xname = b"./PaxHeaders/".to_vec();
        let base = name
            .rsplit(|&c| c == b'/')
            .find(|s| !s.is_empty())
            .unwrap_or(b"x");
        xname.extend_from_slice(&base[..base.len().min(80)]);
        out.extend_from_slice(&header_block(
            &xname,
            b'x',
            0o644,
            0,
            0,
            pax.len() as u64,
            e.mtime.sec,
            b"",
            (0, 0),
        ));
        let padded = pax.len().div_ceil(BLOCK) * BLOCK;
        pax.resize(padded, 0);
        out.extend_from_slice(&pax);
    }
    out.extend_from_slice(&header_block(
        &name,
        typeflag,
        e.mode & 0o7777,
        e.uid,
        e.gid,
        size,
        e.mtime.sec,
        link,
        dev,
    ));
    out.extend_from_slice(&sparse_map);
    out
}

/// Zero bytes needed after `size` bytes of content.
pub fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// Largest file the writer accepts by default: ext4's limit with 64 KiB
/// blocks (2^32 blocks), above what any filesystem kiln reads can hold.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1 << 48;

/// Size limits the writer holds every entry to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TarLimits {
    /// Largest logical size of a regular file (the filesystem's maximum).
    pub max_file_size: u64,
    /// Largest number of stored content bytes of one entry (the device's
    /// size: a non-sparse file cannot hold more than the device it is on).
    pub max_stored_size: u64,
}

impl Default for TarLimits {
    fn default() -> Self {
        Self {
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_stored_size: DEFAULT_MAX_FILE_SIZE,
        }
    }
}

impl TarLimits {
    /// The limits of files read from `fs`: its maximum file size, and its
    /// device's size for the stored bytes.
    pub fn for_fs(fs: &dyn crate::fs::FileSystem) -> Self {
        Self {
            max_file_size: fs.max_file_size(),
            max_stored_size: fs.device().size(),
        }
    }
}

/// Why the writer refused an entry, or failed to write it.
#[derive(Debug, thiserror::Error)]
pub enum TarWriteError {
    /// The path (or a hard link target) could be used to write outside the
    /// extraction directory, or cannot be stored as given.
    #[error("tar entry `{entry}`{} refused: {reason}", inode_suffix(*.ino))]
    UnsafePath {
        /// The entry's path as the caller gave it (lossy UTF-8).
        entry: String,
        /// The inode it came from, when the caller said.
        ino: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// The same name was already written.
    #[error("tar entry `{entry}`{} refused: the name was already written", inode_suffix(*.ino))]
    Duplicate {
        /// The normalised path.
        entry: String,
        /// The inode it came from, when the caller said.
        ino: Option<u64>,
    },
    /// A size beyond the limits.
    #[error("tar entry `{entry}`{} refused: {what} of {size} bytes is beyond the limit of {limit}", inode_suffix(*.ino))]
    TooLarge {
        /// The normalised path.
        entry: String,
        /// The inode it came from, when the caller said.
        ino: Option<u64>,
        /// Which size (`file size`, `stored size`).
        what: &'static str,
        /// The size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The content written does not match the header.
    #[error("tar entry `{entry}`: {reason}")]
    Content {
        /// The normalised path.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// The sink failed.
    #[error("cannot write the tar stream at byte {offset}")]
    Io {
        /// Bytes written before.
        offset: u64,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

fn inode_suffix(ino: Option<u64>) -> String {
    ino.map(|i| format!(" (inode {i})")).unwrap_or_default()
}

impl From<TarWriteError> for io::Error {
    fn from(e: TarWriteError) -> Self {
        let kind = match &e {
            TarWriteError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

/// The normal form of an archive path: the components joined by single `/`
/// (no empty or `.` components), with the caller's `./` prefix kept (the
/// tgz writes `./etc/passwd`, the compress post-processor bare names) and
/// a trailing `/` for directories; the root directory is `./`. Refuses a
/// NUL byte, a `..` component and an absolute path. Returns the normal form
/// and the key used to compare names (the components without `./` or
/// trailing `/`).
pub fn normalize_path(path: &[u8], dir: bool) -> Result<(Vec<u8>, Vec<u8>), String> {
    if path.contains(&0) {
        return Err("the name contains a NUL byte".into());
    }
    if path.first() == Some(&b'/') {
        return Err("the path is absolute".into());
    }
    let mut key: Vec<u8> = Vec::with_capacity(path.len());
    for comp in path.split(|&c| c == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("the path has a `..` component".into()),
            c => {
                if !key.is_empty() {
                    key.push(b'/');
                }
                key.extend_from_slice(c);
            }
        }
    }
    if key.is_empty() && !dir {
        return Err("the path names the archive root but is not a directory".into());
    }
    let dot = key.is_empty() || path.starts_with(b"./") || path == b".";
    let mut norm = Vec::with_capacity(key.len() + 3);
    if dot {
        norm.extend_from_slice(b"./");
    }
    norm.extend_from_slice(&key);
    if dir && !key.is_empty() {
        norm.push(b'/');
    }
    Ok((norm, key))
}

/// A streaming tar writer, safe by construction: every entry's path is
/// normalised ([`normalize_path`]) and refused if it could write outside the
/// extraction directory (`..`, absolute, NUL, a parent that was written as a
/// non-directory), if it repeats a name already written, if a hard link
/// names no earlier entry, or if its sizes are beyond [`TarLimits`].
pub struct TarWriter<W: Write> {
    w: W,
    written: u64,
    pending: u64,
    pad: usize,
    current: Vec<u8>,
    limits: TarLimits,
    /// Names written (keys of [`normalize_path`]) → is a directory.
    names: HashMap<Vec<u8>, bool>,
}

impl<W: Write> TarWriter<W> {
    /// Write a tar stream into `w`.
    pub fn new(w: W) -> Self {
        Self {
            w,
            written: 0,
            pending: 0,
            pad: 0,
            current: Vec::new(),
            limits: TarLimits::default(),
            names: HashMap::new(),
        }
    }

    /// Hold entries to `limits`.
    pub fn with_limits(mut self, limits: TarLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Bytes of tar written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn raw(&mut self, b: &[u8]) -> Result<(), TarWriteError> {
        self.w.write_all(b).map_err(|source| TarWriteError::Io {
            offset: self.written,
            source,
        })?;
        self.written += b.len() as u64;
        Ok(())
    }

    /// Start an entry; then call [`write_data`](Self::write_data) with exactly
    /// [`EntryHeader::stored_size`] bytes (the data segments in order).
    pub fn start_entry(&mut self, e: &EntryHeader) -> io::Result<()> {
        Ok(self.start_entry_of(e, None)?)
    }

    /// [`start_entry`](Self::start_entry) for an entry read from inode `ino`
    /// (named in errors).
    pub fn start_entry_of(
        &mut self,
        e: &EntryHeader,
        ino: Option<u64>,
    ) -> Result<(), TarWriteError> {
        if self.pending != 0 {
            return Err(TarWriteError::Content {
                entry: String::from_utf8_lossy(&self.current).into_owned(),
                reason: format!("{} bytes of content are missing", self.pending),
            });
        }
        let (h, key, is_dir) = self.check(e, ino)?;
        self.finish_padding()?;
        let bytes = encode_header(&h);
        self.raw(&bytes)?;
        self.names.insert(key, is_dir);
        self.current = h.path;
        self.pending = e.stored_size();
        self.pad = padding(self.pending);
        Ok(())
    }

    /// The header as it will be written (path and link normalised), its
    /// name key and whether it is a directory; or why it is refused.
    fn check(
        &self,
        e: &EntryHeader,
        ino: Option<u64>,
    ) -> Result<(EntryHeader, Vec<u8>, bool), TarWriteError> {
        let lossy = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
        let unsafe_path = |reason: String| TarWriteError::UnsafePath {
            entry: lossy(&e.path),
            ino,
            reason,
        };
        let is_dir = e.kind == EntryKind::Directory;
        let (norm, key) = normalize_path(&e.path, is_dir).map_err(unsafe_path)?;
        let mut h = e.clone();
        h.path = norm;
        if self.names.contains_key(&key) {
            return Err(TarWriteError::Duplicate {
                entry: lossy(&h.path),
                ino,
            });
        }
        // No parent may have been written as a non-directory: extracting
        // `a/x` after a symlink `a` would write wherever `a` points.
        let mut at = 0;
        while let Some(i) = key[at..].iter().position(|&c| c == b'/') {
            let parent = &key[..at + i];
            if self.names.get(parent) == Some(&false) {
                return Err(unsafe_path(format!(
                    "its parent `./{}` was written as a non-directory",
                    lossy(parent)
                )));
            }
            at += i + 1;
        }
        match &mut h.kind {
            EntryKind::Symlink(t) => {
                if t.contains(&0) {
                    return Err(unsafe_path("the symlink target contains a NUL byte".into()));
                }
                if t.is_empty() {
                    return Err(unsafe_path("the symlink target is empty".into()));
                }
            }
            EntryKind::HardLink(t) => {
                let (tnorm, tkey) = normalize_path(t, false)
                    .map_err(|r| unsafe_path(format!("hard link target `{}`: {r}", lossy(t))))?;
                match self.names.get(&tkey) {
                    Some(false) => *t = tnorm,
                    Some(true) => {
                        return Err(unsafe_path(format!(
                            "hard link target `{}` is a directory",
                            lossy(&tnorm)
                        )));
                    }
                    None => {
                        return Err(unsafe_path(format!(
                            "hard link target `{}` was not written before",
                            lossy(&tnorm)
                        )));
                    }
                }
            }
            _ => {}
        }
        let too_large = |what, size, limit| TarWriteError::TooLarge {
            entry: lossy(&h.path),
            ino,
            what,
            size,
            limit,
        };
        if h.kind == EntryKind::File {
            if h.size > self.limits.max_file_size {
                return Err(too_large("file size", h.size, self.limits.max_file_size));
            }
            let stored = h.stored_size();
            if stored > self.limits.max_stored_size {
                return Err(too_large(
                    "stored size",
                    stored,
                    self.limits.max_stored_size,
                ));
            }
            if let Some(map) = &h.sparse {
                let mut end = 0u64;
                for &(o, l) in map {
                    let e_ = o.checked_add(l).filter(|&x| o >= end && x <= h.size);
                    let Some(x) = e_ else {
                        return Err(unsafe_path(format!(
                            "sparse segment ({o}, {l}) overlaps or passes the size {}",
                            h.size
                        )));
                    };
                    end = x;
                }
            }
        }
        for (k, _) in &h.xattrs {
            if k.is_empty() || k.contains('\0') || k.contains('\n') {
                return Err(unsafe_path(format!("bad xattr name {k:?}")));
            }
        }
        Ok((h, key, is_dir))
    }

    /// Write content of the current entry.
    pub fn write_data(&mut self, b: &[u8]) -> io::Result<()> {
        if b.len() as u64 > self.pending {
            return Err(TarWriteError::Content {
                entry: String::from_utf8_lossy(&self.current).into_owned(),
                reason: "more content than the tar header announced (file changed while read?)"
                    .into(),
            }
            .into());
        }
        self.pending -= b.len() as u64;
        Ok(self.raw(b)?)
    }

    fn finish_padding(&mut self) -> Result<(), TarWriteError> {
        if self.pad > 0 {
            let z = [0u8; BLOCK];
            let n = self.pad;
            self.pad = 0;
            self.raw(&z[..n])?;
        }
        Ok(())
    }

    /// Append a whole entry with in-memory content.
    pub fn append(&mut self, e: &EntryHeader, data: &[u8]) -> io::Result<()> {
        self.start_entry(e)?;
        self.write_data(data)
    }

    /// Write the end-of-archive marker and return the sink.
    pub fn finish(mut self) -> io::Result<W> {
        if self.pending != 0 {
            return Err(TarWriteError::Content {
                entry: String::from_utf8_lossy(&self.current).into_owned(),
                reason: format!("{} bytes of content are missing", self.pending),
            }
            .into());
        }
        self.finish_padding()?;
        self.raw(&[0u8; BLOCK * 2])?;
        self.w.flush().map_err(|source| TarWriteError::Io {
            offset: self.written,
            source,
        })?;
        Ok(self.w)
    }
}

/// A tar parsing error.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// I/O error while reading.
    #[error("cannot read tar stream at byte {offset}")]
    Io {
        /// Offset in the (uncompressed) stream.
        offset: u64,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Not a tar stream, or a damaged one.
    #[error("not a valid tar stream at byte {offset}: {reason}")]
    Invalid {
        /// Offset of the bad header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// A streaming tar reader.
pub struct TarReader<R: Read> {
    r: R,
    offset: u64,
    remaining: u64,
    pad: u64,
    done: bool,
    entries: u64,
}

fn parse_num(f: &[u8]) -> Option<u64> {
    if f.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256.
        let mut v: u64 = (f[0] & 0x7f) as u64;
        for &b in &f[1..] {
            v = v.checked_mul(256)?.checked_add(b as u64)?;
        }
        return Some(v);
    }
    let s: Vec<u8> = f
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&s).ok()?, 8).ok()
}

fn cstr(f: &[u8]) -> Vec<u8> {
    f.iter().copied().take_while(|&b| b != 0).collect()
}

impl<R: Read> TarReader<R> {
    /// Read a tar stream from `r`.
    pub fn new(r: R) -> Self {
        Self {
            r,
            offset: 0,
            remaining: 0,
            pad: 0,
            done: false,
            entries: 0,
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), TarError> {
        self.r.read_exact(buf).map_err(|source| TarError::Io {
            offset: self.offset,
            source,
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, mut n: u64) -> Result<(), TarError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.read_exact(&mut buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    fn read_blob(&mut self, size: u64) -> Result<Vec<u8>, TarError> {
        if size > 64 << 20 {
            return Err(TarError::Invalid {
                offset: self.offset,
                reason: format!("extended header of {size} bytes"),
            });
        }
        let mut v = vec![0u8; size as usize];
        self.read_exact(&mut v)?;
        self.skip(padding(size) as u64)?;
        Ok(v)
    }

    /// The next entry's header, or `None` at the end of the archive. Unread
    /// content of the previous entry is skipped.
    pub fn next_entry(&mut self) -> Result<Option<EntryHeader>, TarError> {
        if self.done {
            return Ok(None);
        }
        let rest = self.remaining + self.pad;
        self.skip(rest)?;
        self.remaining = 0;
        self.pad = 0;
        let mut pax: Vec<(String, Vec<u8>)> = vec![];
        let mut long_name = None;
        let mut long_link = None;
        loop {
            let mut h = [0u8; BLOCK];
            let at = self.offset;
            match self.r.read(&mut h[..1]) {
                Ok(0) if self.entries > 0 => {
                    self.done = true;
                    return Ok(None);
                }
                Ok(0) => {
                    return Err(TarError::Invalid {
                        offset: at,
                        reason: "empty stream".into(),
                    });
                }
                Ok(_) => {}
                Err(source) => return Err(TarError::Io { offset: at, source }),
            }
            self.offset += 1;
            self.read_exact(&mut h[1..])?;
            if h.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            let stored: u32 = {
                let mut c = h;
                c[148..156].fill(b' ');
                c.iter().map(|&b| b as u32).sum()
            };
            if parse_num(&h[148..156]) != Some(stored as u64) {
                return Err(TarError::Invalid {
                    offset: at,
                    reason: "header checksum mismatch (not a tar archive?)".into(),
                });
            }
            self.entries += 1;
            let size = parse_num(&h[124..136]).ok_or_else(|| TarError::Invalid {
                offset: at,
                reason: "bad size field".into(),
            })?;
            let typeflag = h[156];
            match typeflag {
                b'x' => {
                    let blob = self.read_blob(size)?;
                    pax.extend(parse_pax(&blob).map_err(|r| TarError::Invalid {
                        offset: at,
                        reason: r,
                    })?);
                    continue;
                }
                b'g' => {
                    self.read_blob(size)?;
                    continue;
                }
                b'L' => {
                    long_name = Some(cstr(&self.read_blob(size)?));
                    continue;
                }
                b'K' => {
                    long_link = Some(cstr(&self.read_blob(size)?));
                    continue;
                }
                _ => {}
            }
            let mut path = cstr(&h[0..100]);
            if &h[257..262] == b"ustar" && h[345] != 0 {
                let mut p = cstr(&h[345..500]);
                p.push(b'/');
                p.extend(path);
                path = p;
            }
            if let Some(n) = long_name.take() {
                path = n;
            }
            let mut link = cstr(&h[157..257]);
            if let Some(l) = long_link.take() {
                link = l;
            }
            let mut e = EntryHeader {
                path,
                kind: EntryKind::File,
                mode: parse_num(&h[100..108]).unwrap_or(0) as u32 & 0o7777,
                uid: parse_num(&h[108..116]).unwrap_or(0) as u32,
                gid: parse_num(&h[116..124]).unwrap_or(0) as u32,
                mtime: Timestamp {
                    sec: parse_num(&h[136..148]).unwrap_or(0) as i64,
                    nsec: 0,
                },
                size,
                xattrs: vec![],
                sparse: None,
            };
            let dev = (
                parse_num(&h[329..337]).unwrap_or(0) as u32,
                parse_num(&h[337..345]).unwrap_or(0) as u32,
            );
            let mut stored_size = size;
            let mut sparse_1_0 = false;
            let mut realsize = None;
            for (k, v) in &pax {
                let s = String::from_utf8_lossy(v);
                match k.as_str() {
                    "path" => e.path = v.clone(),
                    "linkpath" => link = v.clone(),
                    "size" => stored_size = s.parse().unwrap_or(stored_size),
                    "uid" => e.uid = s.parse().unwrap_or(e.uid),
                    "gid" => e.gid = s.parse().unwrap_or(e.gid),
                    "mtime" => e.mtime = parse_time(&s).unwrap_or(e.mtime),
                    "GNU.sparse.name" => e.path = v.clone(),
                    "GNU.sparse.realsize" | "GNU.sparse.size" => realsize = s.parse().ok(),
                    "GNU.sparse.major" => sparse_1_0 = s == "1",
                    k if k.starts_with("SCHILY.xattr.") => {
                        let name = k["SCHILY.xattr.".len()..]
                            .replace("%3D", "=")
                            .replace("%25", "%");
                        e.xattrs.push((name, v.clone()));
                    }
                    _ => {}
                }
            }
            e.kind = match typeflag {
                b'0' | 0 | b'7' => EntryKind::File,
                b'1' => EntryKind::HardLink(link),
                b'2' => EntryKind::Symlink(link),
                b'3' => EntryKind::CharDevice(dev.0, dev.1),
                b'4' => EntryKind::BlockDevice(dev.0, dev.1),
                b'5' => EntryKind::Directory,
                b'6' => EntryKind::Fifo,
                t => {
                    return Err(TarError::Invalid {
                        offset: at,
                        reason: format!("unsupported entry type {:?}", t as char),
                    });
                }
            };
            self.remaining = if matches!(e.kind, EntryKind::File) {
                stored_size
            } else {
                0
            };
            self.pad = padding(stored_size) as u64;
            if !matches!(e.kind, EntryKind::File) {
                self.remaining = 0;
                self.pad = if stored_size > 0 {
                    stored_size + padding(stored_size) as u64
                } else {
                    0
                };
            }
            e.size = if matches!(e.kind, EntryKind::File) {
                stored_size
            } else {
                0
            };
            if sparse_1_0 && matches!(e.kind, EntryKind::File) {
                let (map, used) = self.read_sparse_map()?;
                self.remaining = stored_size.saturating_sub(used);
                self.pad = padding(stored_size) as u64;
                e.size = realsize.unwrap_or(0);
                e.sparse = Some(map.into_iter().filter(|s| s.1 > 0).collect());
            }
            return Ok(Some(e));
        }
    }

    fn read_sparse_map(&mut self) -> Result<(Vec<(u64, u64)>, u64), TarError> {
        let at = self.offset;
        let mut text = vec![];
        let mut used = 0u64;
        let mut numbers = vec![];
        let mut want: Option<usize> = None;
        loop {
            let mut b = [0u8; BLOCK];
            self.read_exact(&mut b)?;
            used += BLOCK as u64;
            text.extend_from_slice(&b);
            let mut cur = vec![];
            numbers.clear();
            for &c in &text {
                if c == b'\n' {
                    let n: u64 = std::str::from_utf8(&cur)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| TarError::Invalid {
                            offset: at,
                            reason: "bad GNU sparse map".into(),
                        })?;
                    numbers.push(n);
                    cur.clear();
                } else {
                    cur.push(c);
                }
            }
            if let Some(&n) = numbers.first() {
                if n > 1 << 24 {
                    return Err(TarError::Invalid {
                        offset: at,
                        reason: "GNU sparse map too large".into(),
                    });
                }
                want = Some(1 + 2 * n as usize);
            }
            if want.is_some_and(|w| numbers.len() >= w) {
                break;
            }
            if used > 64 << 20 {
                return Err(TarError::Invalid {
                    offset: at,
                    reason: "GNU sparse map too large".into(),
                });
            }
        }
        let n = want.unwrap_or(1);
        let map = numbers[1..n]
            .chunks_exact(2)
            .map(|c| (c[0], c[1]))
            .collect();
        Ok((map, used))
    }

    /// Read the stored content of the current entry (for a sparse file, the
    /// data segments back to back), calling `sink` with pieces.
    pub fn read_data(
        &mut self,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), TarError> {
        let mut buf = vec![0u8; 256 * 1024];
        while self.remaining > 0 {
            let k = self.remaining.min(buf.len() as u64) as usize;
            let at = self.offset;
            self.read_exact(&mut buf[..k])?;
            self.remaining -= k as u64;
            sink(&buf[..k]).map_err(|source| TarError::Io { offset: at, source })?;
        }
        Ok(())
    }

    /// Offset in the uncompressed stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

fn parse_time(s: &str) -> Option<Timestamp> {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (a, b) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = a.parse().ok()?;
    let mut frac = b.chars().take(9).collect::<String>();
    while frac.len() < 9 {
        frac.push('0');
    }
    let ns: i64 = frac.parse().ok()?;
    if neg {
        let total = -(sec * 1_000_000_000 + ns);
        Some(Timestamp {
            sec: total.div_euclid(1_000_000_000),
            nsec: total.rem_euclid(1_000_000_000) as u32,
        })
    } else {
        Some(Timestamp {
            sec,
            nsec: ns as u32,
        })
    }
}

fn parse_pax(mut b: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = vec![];
    while !b.is_empty() && b[0] != 0 {
        let sp = b
            .iter()
            .position(|&c| c == b' ')
            .ok_or("PAX record without length")?;
        let len: usize = std::str::from_utf8(&b[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad PAX record length")?;
        if len <= sp + 1 || len > b.len() || b[len - 1] != b'\n' {
            return Err("PAX record overruns".into());
        }
        let rec = &b[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or("PAX record without `=`")?;
        out.push((
            String::from_utf8_lossy(&rec[..eq]).into_owned(),
            rec[eq + 1..].to_vec(),
        ));
        b = &b[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = vec![];
        pax_record(&mut v, "path", b"abc");
        assert_eq!(v, b"12 path=abc\n");
        let mut v = vec![];
        pax_record(&mut v, "k", &[b'x'; 94]);
        assert_eq!(&v[..4], b"101 ");
        assert_eq!(v.len(), 101);
    }

    #[test]
    fn round_trip_long_names_xattrs_sparse_and_devices() {
        let long = format!("./{}/{}", "d".repeat(120), "f".repeat(90)).into_bytes();
        let mut f = EntryHeader::new(&long, EntryKind::File);
        f.size = 3;
        f.mtime = Timestamp {
            sec: 1_700_000_000,
            nsec: 5,
        };
        f.uid = 3_000_000;
        f.xattrs = vec![
            ("security.capability".into(), vec![1, 0, 0, 2, 0, 0x20]),
            ("user.a=b".into(), b"v".to_vec()),
        ];
        let mut s = EntryHeader::new(b"./sparse", EntryKind::File);
        s.size = 1 << 20;
        s.sparse = Some(vec![(4096, 2)]);
        let d = EntryHeader {
            mode: 0o600,
            ..EntryHeader::new(b"./dev/null", EntryKind::CharDevice(1, 3))
        };
        let l = EntryHeader::new(b"./l", EntryKind::HardLink(long.clone()));
        let mut w = TarWriter::new(Vec::new());
        w.append(&f, b"abc").unwrap();
        w.append(&s, b"xy").unwrap();
        w.append(&d, b"").unwrap();
        w.append(&l, b"").unwrap();
        let bytes = w.finish().unwrap();
        let mut r = TarReader::new(&bytes[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.path, long);
        assert_eq!(e.uid, 3_000_000);
        assert_eq!(e.mtime, f.mtime);
        assert_eq!(e.xattrs, f.xattrs);
        let mut data = vec![];
        r.read_data(&mut |b| {
            data.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(data, b"abc");
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(
            (e.path.as_slice(), e.size, e.sparse.clone()),
            (&b"./sparse"[..], 1 << 20, Some(vec![(4096, 2)]))
        );
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.kind, EntryKind::CharDevice(1, 3));
        assert_eq!(e.mode, 0o600);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.kind, EntryKind::HardLink(long));
        assert!(r.next_entry().unwrap().is_none());
    }

    fn paths(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut r = TarReader::new(bytes);
        let mut v = vec![];
        while let Some(e) = r.next_entry().unwrap() {
            v.push(e.path);
        }
        v
    }

    fn refusal(w: &mut TarWriter<Vec<u8>>, e: &EntryHeader, ino: Option<u64>) -> String {
        w.start_entry_of(e, ino).unwrap_err().to_string()
    }

    #[test]
    fn entry_is_refused_when_its_path_climbs_out() {
        let mut w = TarWriter::new(Vec::new());
        for p in [&b"./../../pw"[..], b"./a/../../pw", b"..", b"a/.."] {
            let msg = refusal(&mut w, &EntryHeader::new(p, EntryKind::File), Some(12));
            assert!(msg.contains("`..`") && msg.contains("inode 12"), "{msg}");
            assert!(msg.contains(&*String::from_utf8_lossy(p)), "{msg}");
        }
        let msg = refusal(
            &mut w,
            &EntryHeader::new(b"/etc/passwd", EntryKind::File),
            None,
        );
        assert!(
            msg.contains("absolute") && msg.contains("/etc/passwd"),
            "{msg}"
        );
        // Nothing was written for the refused entries.
        assert_eq!(w.written(), 0);
    }

    #[test]
    fn entry_is_refused_when_name_or_link_has_nul() {
        let mut w = TarWriter::new(Vec::new());
        let msg = refusal(
            &mut w,
            &EntryHeader::new(b"./etc/pass\0wd", EntryKind::File),
            Some(7),
        );
        assert!(msg.contains("NUL") && msg.contains("inode 7"), "{msg}");
        let l = EntryHeader::new(b"./l", EntryKind::Symlink(b"/etc\0/shadow".to_vec()));
        assert!(refusal(&mut w, &l, None).contains("NUL"));
        let h = EntryHeader::new(b"./h", EntryKind::HardLink(b"./a\0b".to_vec()));
        assert!(refusal(&mut w, &h, None).contains("NUL"));
    }

    #[test]
    fn entry_is_refused_when_name_repeats() {
        let mut w = TarWriter::new(Vec::new());
        w.append(&EntryHeader::new(b"./", EntryKind::Directory), b"")
            .unwrap();
        w.append(&EntryHeader::new(b"./lib/", EntryKind::Directory), b"")
            .unwrap();
        let msg = refusal(
            &mut w,
            &EntryHeader::new(b"./lib", EntryKind::Symlink(b"usr/lib".to_vec())),
            Some(40),
        );
        assert!(
            msg.contains("already written") && msg.contains("inode 40"),
            "{msg}"
        );
        // Spelled differently, still the same name.
        let msg = refusal(
            &mut w,
            &EntryHeader::new(b".//lib//", EntryKind::Directory),
            None,
        );
        assert!(msg.contains("already written"), "{msg}");
        let msg = refusal(&mut w, &EntryHeader::new(b"./", EntryKind::Directory), None);
        assert!(msg.contains("already written"), "{msg}");
    }

    #[test]
    fn entry_is_refused_when_parent_is_not_a_directory() {
        let mut w = TarWriter::new(Vec::new());
        w.append(
            &EntryHeader::new(b"./etc", EntryKind::Symlink(b"/etc".to_vec())),
            b"",
        )
        .unwrap();
        let msg = refusal(
            &mut w,
            &EntryHeader::new(b"./etc/passwd", EntryKind::File),
            None,
        );
        assert!(msg.contains("non-directory"), "{msg}");
    }

    #[test]
    fn names_are_normalised_when_written() {
        let mut w = TarWriter::new(Vec::new());
        let dir = |p: &[u8]| EntryHeader::new(p, EntryKind::Directory);
        w.append(&dir(b"."), b"").unwrap();
        w.append(&dir(b".//etc//./"), b"").unwrap();
        let mut f = EntryHeader::new(b".//etc///passwd/", EntryKind::File);
        f.size = 1;
        w.append(&f, b"x").unwrap();
        let l = EntryHeader::new(b"./etc/pw", EntryKind::HardLink(b"etc//passwd".to_vec()));
        w.append(&l, b"").unwrap();
        // A bare name stays bare (the compress post-processor's style).
        w.append(&dir(b"bare//"), b"").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(
            paths(&bytes),
            [
                &b"./"[..],
                b"./etc/",
                b"./etc/passwd",
                b"./etc/pw",
                b"bare/"
            ]
        );
        let mut r = TarReader::new(&bytes[..]);
        let kinds: Vec<EntryKind> = std::iter::from_fn(|| r.next_entry().unwrap())
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds[3], EntryKind::HardLink(b"etc/passwd".to_vec()));
    }

    #[test]
    fn hard_link_is_refused_when_target_not_written() {
        let mut w = TarWriter::new(Vec::new());
        let h = EntryHeader::new(b"./h", EntryKind::HardLink(b"./etc/shadow".to_vec()));
        let msg = refusal(&mut w, &h, Some(3));
        assert!(
            msg.contains("not written before") && msg.contains("./etc/shadow"),
            "{msg}"
        );
        w.append(&EntryHeader::new(b"./d/", EntryKind::Directory), b"")
            .unwrap();
        let h = EntryHeader::new(b"./h", EntryKind::HardLink(b"./d".to_vec()));
        assert!(refusal(&mut w, &h, None).contains("is a directory"));
        let h = EntryHeader::new(b"./h", EntryKind::HardLink(b"../../etc/shadow".to_vec()));
        assert!(refusal(&mut w, &h, None).contains("`..`"));
    }

    #[test]
    fn file_is_refused_when_size_exceeds_limits() {
        let mut w = TarWriter::new(Vec::new());
        let mut f = EntryHeader::new(b"./huge", EntryKind::File);
        f.size = (1 << 63) - 1;
        let msg = refusal(&mut w, &f, Some(99));
        assert!(
            msg.contains("file size") && msg.contains("inode 99"),
            "{msg}"
        );
        // Within the filesystem's limit but more than the device holds.
        let mut w = TarWriter::new(Vec::new()).with_limits(TarLimits {
            max_file_size: 16 << 40,
            max_stored_size: 1 << 30,
        });
        f.size = 2 << 30;
        let msg = refusal(&mut w, &f, None);
        assert!(msg.contains("stored size"), "{msg}");
        // A sparse file of that size with little data is fine.
        f.sparse = Some(vec![(0, 4096)]);
        w.start_entry(&f).unwrap();
        w.write_data(&[0u8; 4096]).unwrap();
        // A sparse map running past the size is not.
        let mut g = EntryHeader::new(b"./g", EntryKind::File);
        g.size = 10;
        g.sparse = Some(vec![(8, 4)]);
        assert!(refusal(&mut w, &g, None).contains("sparse segment"));
    }

    #[test]
    fn garbage_is_not_a_tar() {
        let junk = vec![7u8; 2048];
        let e = TarReader::new(&junk[..]).next_entry().unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
    }

    #[test]
    fn negative_fraction_times_parse() {
        assert_eq!(
            parse_time("-1.25"),
            Some(Timestamp {
                sec: -2,
                nsec: 750_000_000
            })
        );
        assert_eq!(
            parse_time("12.5"),
            Some(Timestamp {
                sec: 12,
                nsec: 500_000_000
            })
        );
    }
}
