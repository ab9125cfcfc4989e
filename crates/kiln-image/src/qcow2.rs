//! qcow2 reader (versions 2 and 3): L1/L2 tables, backing chains with a
//! backing format, zero clusters, zlib- and zstd-compressed clusters.
//!
//! Variants not handled (encryption, external data files, extended L2
//! entries) are reported as [`ImageError::Unsupported`]; [`crate::image`]
//! then falls back to `qemu-img convert`.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::block::{BlockDevice, FileDevice, be, check_bounds};
use crate::error::{Result, corrupt, unsupported};

/// The qcow2 magic, `QFI\xfb`.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";

const L1_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COMPRESSED_FLAG: u64 = 1 << 62;
const MAX_CHAIN: usize = 16;

/// How compressed clusters are encoded (header byte 104).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Raw deflate (the default).
    Zlib,
    /// zstd frames.
    Zstd,
}

/// What a guest cluster maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mapping {
    Unallocated,
    Zero,
    Normal(u64),
    Compressed(u64),
}

/// An open qcow2 image (and its backing chain).
pub struct Qcow2 {
    file: FileDevice,
    version: u32,
    cluster_bits: u32,
    size: u64,
    l1: Vec<u64>,
    compression: Compression,
    backing: Option<Box<dyn BlockDevice>>,
    backing_file: Option<PathBuf>,
    l2_cache: Mutex<HashMap<u64, Arc<[u64]>>>,
    cluster_cache: Mutex<HashMap<u64, Arc<[u8]>>>,
}

impl std::fmt::Debug for Qcow2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qcow2")
            .field("path", &self.file.path())
            .field("version", &self.version)
            .field("cluster_bits", &self.cluster_bits)
            .field("size", &self.size)
            .field("compression", &self.compression)
            .field("backing_file", &self.backing_file)
            .finish()
    }
}

/// Does `head` start with the qcow2 magic?
pub fn is_qcow2(head: &[u8]) -> bool {
    head.starts_with(&MAGIC)
}

/// `path` and every file of its qcow2 backing chain, as far as the headers
/// can be read (for the output rules: a writer must never replace one of
/// its inputs). A raw file is its own chain.
pub fn backing_chain(path: &Path) -> Vec<PathBuf> {
    let mut chain = vec![path.to_owned()];
    let mut cur = path.to_owned();
    while chain.len() <= MAX_CHAIN {
        let Ok(file) = FileDevice::open(&cur) else {
            break;
        };
        let mut h = [0u8; 20];
        if file.size() < 72 || file.read_at(&mut h, 0).is_err() || !is_qcow2(&h) {
            break;
        }
        let (off, len) = (be::u64(&h, 8), be::u32(&h, 16) as usize);
        if off == 0 || len == 0 {
            break;
        }
        let mut name = vec![0u8; len.min(4096)];
        if file.read_at(&mut name, off).is_err() {
            break;
        }
        let name = PathBuf::from(String::from_utf8_lossy(&name).into_owned());
        cur = if name.is_absolute() {
            name
        } else {
            cur.parent().unwrap_or(Path::new(".")).join(name)
        };
        chain.push(cur.clone());
    }
    chain
}

impl Qcow2 {
    /// Open `path` and its backing chain.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_depth(path, 0)
    }

    fn open_depth(path: &Path, depth: usize) -> Result<Self> {
        let file = FileDevice::open(path)?;
        let what = path.display().to_string();
        let fsize = file.size();
        if fsize < 72 {
            return Err(corrupt(
                &what,
                0,
                format!("file is {fsize} bytes, too short for a qcow2 header (truncated?)"),
            ));
        }
        let mut h = vec![0u8; 512.min(fsize as usize)];
        file.read_at(&mut h, 0)?;
        if !is_qcow2(&h) {
            return Err(corrupt(&what, 0, "no qcow2 magic `QFI\\xfb`"));
        }
        let version = be::u32(&h, 4);
        if version != 2 && version != 3 {
            return Err(unsupported(&what, format!("qcow2 version {version}")));
        }
        let backing_off = be::u64(&h, 8);
        let backing_len = be::u32(&h, 16) as usize;
        let cluster_bits = be::u32(&h, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(corrupt(
                &what,
                20,
                format!("cluster_bits {cluster_bits} out of range 9..=21"),
            ));
        }
        let size = be::u64(&h, 24);
        if size > (1u64 << 56) {
            return Err(corrupt(&what, 24, format!("virtual size {size} is absurd")));
        }
        if be::u32(&h, 32) != 0 {
            return Err(unsupported(&what, "encrypted qcow2"));
        }
        let l1_size = be::u32(&h, 36) as u64;
        let l1_off = be::u64(&h, 40);
        let cs = 1u64 << cluster_bits;
        let l2_entries = cs / 8;
        let need_l1 = size.div_ceil(cs * l2_entries);
        if l1_size < need_l1 {
            return Err(corrupt(
                &what,
                36,
                format!("L1 table has {l1_size} entries, {need_l1} needed for {size} bytes"),
            ));
        }
        let (mut header_len, mut compression) = (72usize, Compression::Zlib);
        if version == 3 {
            if h.len() < 104 {
                return Err(corrupt(&what, 0, "qcow2 v3 header truncated"));
            }
            let incompat = be::u64(&h, 72);
            header_len = be::u32(&h, 100) as usize;
            if header_len < 104 || header_len > h.len() {
                return Err(corrupt(
                    &what,
                    100,
                    format!("header_length {header_len} invalid"),
                ));
            }
            if incompat & (1 << 2) != 0 {
                return Err(unsupported(&what, "qcow2 external data file"));
            }
            if incompat & (1 << 4) != 0 {
                return Err(unsupported(
                    &what,
                    "qcow2 extended L2 entries (subclusters)",
                ));
            }
            if incompat & !0b1_1111 != 0 {
                return Err(unsupported(
                    &what,
                    format!("qcow2 incompatible features {incompat:#x}"),
                ));
            }
            if incompat & (1 << 3) != 0 && header_len > 104 {
                compression = match h[104] {
                    0 => Compression::Zlib,
                    1 => Compression::Zstd,
                    t => return Err(unsupported(&what, format!("qcow2 compression type {t}"))),
                };
            }
        }
        // Header extensions: only the backing format matters here.
        let mut backing_fmt: Option<String> = None;
        let mut pos = header_len;
        while pos + 8 <= h.len() {
            let ty = be::u32(&h, pos);
            let len = be::u32(&h, pos + 4) as usize;
            if ty == 0 {
                break;
            }
            let data = h.get(pos + 8..pos + 8 + len);
            if ty == 0xe279_2aca
                && let Some(d) = data
            {
                backing_fmt = Some(String::from_utf8_lossy(d).into_owned());
            }
            pos += 8 + len.div_ceil(8) * 8;
        }
        if l1_size > (1 << 26) {
            return Err(corrupt(
                &what,
                36,
                format!("L1 table of {l1_size} entries is absurd"),
            ));
        }
        let mut raw_l1 = vec![0u8; (l1_size * 8) as usize];
        file.read_at(&mut raw_l1, l1_off).map_err(|_| {
            corrupt(&what, l1_off, format!("L1 table ({l1_size} entries) lies beyond the end of the file ({fsize} bytes): truncated image?"))
        })?;
        let l1 = raw_l1.chunks_exact(8).map(|c| be::u64(c, 0)).collect();

        let (backing, backing_file) = if backing_off != 0 && backing_len != 0 {
            if depth >= MAX_CHAIN {
                return Err(corrupt(
                    &what,
                    8,
                    format!("backing chain deeper than {MAX_CHAIN}"),
                ));
            }
            let mut name = vec![0u8; backing_len.min(4096)];
            file.read_at(&mut name, backing_off)
                .map_err(|_| corrupt(&what, backing_off, "backing file name beyond end of file"))?;
            let name = PathBuf::from(String::from_utf8_lossy(&name).into_owned());
            let bpath = if name.is_absolute() {
                name
            } else {
                path.parent().unwrap_or(Path::new(".")).join(name)
            };
            let dev: Box<dyn BlockDevice> = match backing_fmt.as_deref() {
                Some("raw") => Box::new(FileDevice::open(&bpath)?),
                Some("qcow2") => Box::new(Qcow2::open_depth(&bpath, depth + 1)?),
                Some(other) => return Err(unsupported(&what, format!("backing format `{other}`"))),
                None => {
                    let f = FileDevice::open(&bpath)?;
                    let mut m = [0u8; 4];
                    if f.size() >= 4 {
                        f.read_at(&mut m, 0)?;
                    }
                    if is_qcow2(&m) {
                        Box::new(Qcow2::open_depth(&bpath, depth + 1)?)
                    } else {
                        Box::new(f)
                    }
                }
            };
            (Some(dev), Some(bpath))
        } else {
            (None, None)
        };
        Ok(Self {
            file,
            version,
            cluster_bits,
            size,
            l1,
            compression,
            backing,
            backing_file,
            l2_cache: Mutex::new(HashMap::new()),
            cluster_cache: Mutex::new(HashMap::new()),
        })
    }

    /// qcow2 version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Compression type of compressed clusters.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The backing file, if any (resolved against the image's directory).
    pub fn backing_file(&self) -> Option<&Path> {
        self.backing_file.as_deref()
    }

    fn l2(&self, l2_off: u64) -> Result<Arc<[u64]>> {
        if let Ok(c) = self.l2_cache.lock()
            && let Some(t) = c.get(&l2_off)
        {
            return Ok(t.clone());
        }
        let cs = self.cluster_size();
        if !l2_off.is_multiple_of(cs) || l2_off >= self.file.size() {
            return Err(corrupt(
                &self.describe(),
                l2_off,
                "L2 table offset is unaligned or beyond the end of the file (truncated image?)",
            ));
        }
        let mut raw = vec![0u8; cs as usize];
        self.file.read_at_lenient(&mut raw, l2_off)?;
        let table: Arc<[u64]> = raw.chunks_exact(8).map(|c| be::u64(c, 0)).collect();
        if let Ok(mut c) = self.l2_cache.lock() {
            if c.len() >= 512 {
                c.clear();
            }
            c.insert(l2_off, table.clone());
        }
        Ok(table)
    }

    fn map(&self, voff: u64) -> Result<Mapping> {
        let l2_bits = self.cluster_bits - 3;
        let l1_index = (voff >> (self.cluster_bits + l2_bits)) as usize;
        let Some(&l1e) = self.l1.get(l1_index) else {
            return Ok(Mapping::Unallocated);
        };
        let l2_off = l1e & L1_OFFSET_MASK;
        if l2_off == 0 {
            return Ok(Mapping::Unallocated);
        }
        let table = self.l2(l2_off)?;
        let idx = ((voff >> self.cluster_bits) & ((1 << l2_bits) - 1)) as usize;
        let e = table.get(idx).copied().unwrap_or(0);
        if e & COMPRESSED_FLAG != 0 {
            return Ok(Mapping::Compressed(e & (COMPRESSED_FLAG - 1)));
        }
        let off = e & L1_OFFSET_MASK;
        if self.version >= 3 && e & 1 != 0 {
            return Ok(Mapping::Zero);
        }
        if off == 0 {
            return Ok(Mapping::Unallocated);
        }
        if off >= self.file.size() {
            return Err(corrupt(
                &self.describe(),
                off,
                format!(
                    "data cluster for guest offset {voff} lies beyond the end of the file (truncated image?)"
                ),
            ));
        }
        Ok(Mapping::Normal(off))
    }

    fn compressed_cluster(&self, desc: u64) -> Result<Arc<[u8]>> {
        if let Ok(c) = self.cluster_cache.lock()
            && let Some(d) = c.get(&desc)
        {
            return Ok(d.clone());
        }
        let x = 62 - (self.cluster_bits - 8);
        let host = desc & ((1u64 << x) - 1);
        let sectors = (desc >> x) & ((1u64 << (62 - x)) - 1);
        let csize = ((sectors + 1) * 512).saturating_sub(host & 511);
        if host >= self.file.size() {
            return Err(corrupt(
                &self.describe(),
                host,
                "compressed cluster lies beyond the end of the file (truncated image?)",
            ));
        }
        let mut comp = vec![0u8; csize as usize];
        self.file.read_at_lenient(&mut comp, host)?;
        let cs = self.cluster_size() as usize;
        let mut out = vec![0u8; cs];
        let bad = |why: String| {
            corrupt(
                &self.describe(),
                host,
                format!("compressed cluster does not decompress: {why}"),
            )
        };
        match self.compression {
            Compression::Zlib => {
                let mut d = flate2::Decompress::new(false);
                d.decompress(&comp, &mut out, flate2::FlushDecompress::Finish)
                    .map_err(|e| bad(e.to_string()))?;
                if d.total_out() as usize != cs {
                    return Err(bad(format!("{} bytes instead of {cs}", d.total_out())));
                }
            }
            Compression::Zstd => {
                let mut dec = zstd::stream::read::Decoder::with_buffer(&comp[..])
                    .map_err(|e| bad(e.to_string()))?;
                dec.read_exact(&mut out).map_err(|e| bad(e.to_string()))?;
            }
        }
        let out: Arc<[u8]> = out.into();
        if let Ok(mut c) = self.cluster_cache.lock() {
            if c.len() >= 32 {
                c.clear();
            }
            c.insert(desc, out.clone());
        }
        Ok(out)
    }

    fn read_unallocated(&self, buf: &mut [u8], voff: u64) -> Result<()> {
        match &self.backing {
            None => buf.fill(0),
            Some(b) => {
                let avail = b.size().saturating_sub(voff).min(buf.len() as u64) as usize;
                let (head, tail) = buf.split_at_mut(avail);
                if !head.is_empty() {
                    b.read_at(head, voff)?;
                }
                tail.fill(0);
            }
        }
        Ok(())
    }
}

impl BlockDevice for Qcow2 {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_bounds(&|| self.describe(), self.size, offset, buf.len())?;
        let cs = self.cluster_size();
        let mut pos = 0usize;
        while pos < buf.len() {
            let voff = offset + pos as u64;
            let within = voff % cs;
            let first = ((cs - within) as usize).min(buf.len() - pos);
            let m = self.map(voff)?;
            // Extend the run while the following clusters map the same way
            // (host-contiguous data, or more holes / zeros).
            let mut end = pos + first;
            while end < buf.len() {
                let next = self.map(offset + end as u64)?;
                let same = match (m, next) {
                    (Mapping::Normal(h), Mapping::Normal(n)) => {
                        n == h + within + (end - pos) as u64
                    }
                    (Mapping::Unallocated, Mapping::Unallocated)
                    | (Mapping::Zero, Mapping::Zero) => true,
                    _ => false,
                };
                if !same {
                    break;
                }
                end += (cs as usize).min(buf.len() - end);
            }
            let chunk = &mut buf[pos..end];
            match m {
                Mapping::Normal(h) => self.file.read_at_lenient(chunk, h + within)?,
                Mapping::Zero => chunk.fill(0),
                Mapping::Unallocated => self.read_unallocated(chunk, voff)?,
                Mapping::Compressed(d) => {
                    let data = self.compressed_cluster(d)?;
                    let w = within as usize;
                    chunk.copy_from_slice(&data[w..w + chunk.len()]);
                }
            }
            pos = end;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.file.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_and_bad_magic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.qcow2");
        std::fs::write(&p, b"QFI\xfb\0\0\0\x03").unwrap();
        let e = Qcow2::open(&p).unwrap_err();
        assert!(e.to_string().contains("too short"), "{e}");
        std::fs::write(&p, vec![0u8; 1024]).unwrap();
        let e = Qcow2::open(&p).unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
    }
}
