//! Block devices: a random-access byte source with a page cache.
//!
//! Everything above (partition tables, filesystems) reads through
//! [`BlockDevice`]. Large reads go straight to the backing store so that
//! file contents stream with big sequential reads; small metadata reads are
//! served from [`CachedDevice`].

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{ImageError, Result};

/// A read-only random-access byte device.
pub trait BlockDevice: Send + Sync {
    /// Size in bytes.
    fn size(&self) -> u64;
    /// Fill `buf` from `offset`. Reading past [`size`](Self::size) is an error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;
    /// A short description for error messages (`disk.qcow2`, `disk.qcow2 partition 2`).
    fn describe(&self) -> String;
    /// Like [`read_at`](Self::read_at) but never fills a cache: file contents
    /// are read once and must not evict metadata.
    fn read_direct(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.read_at(buf, offset)
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for Arc<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        (**self).read_at(buf, offset)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn read_direct(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        (**self).read_direct(buf, offset)
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for Box<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        (**self).read_at(buf, offset)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn read_direct(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        (**self).read_direct(buf, offset)
    }
}

pub(crate) fn check_bounds(
    what: &dyn Fn() -> String,
    size: u64,
    offset: u64,
    len: usize,
) -> Result<()> {
    let len = len as u64;
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(ImageError::OutOfBounds {
            what: what(),
            offset,
            len,
            size,
        });
    }
    Ok(())
}

/// A plain file (a raw image, or a qcow2's host file).
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    path: PathBuf,
    size: u64,
}

impl FileDevice {
    /// Open `path` read-only.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|source| ImageError::Open {
            path: path.to_owned(),
            source,
        })?;
        let size = file
            .metadata()
            .map_err(|source| ImageError::Open {
                path: path.to_owned(),
                source,
            })?
            .len();
        Ok(Self {
            file,
            path: path.to_owned(),
            size,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read up to `buf.len()` bytes; bytes past the end of the file read as
    /// zero (qcow2 host files may end inside a cluster).
    pub(crate) fn read_at_lenient(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let avail = self.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        let (head, tail) = buf.split_at_mut(avail);
        if !head.is_empty() {
            self.read_at(head, offset)?;
        }
        tail.fill(0);
        Ok(())
    }
}

impl BlockDevice for FileDevice {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_bounds(&|| self.describe(), self.size, offset, buf.len())?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| ImageError::Read {
                what: self.describe(),
                offset,
                len: buf.len() as u64,
                source,
            })
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// A byte range of another device (a partition).
pub struct SliceDevice<D> {
    inner: D,
    start: u64,
    len: u64,
    name: String,
}

impl<D: BlockDevice> SliceDevice<D> {
    /// `len` bytes of `inner` from `start`, described as `name`.
    pub fn new(inner: D, start: u64, len: u64, name: String) -> Result<Self> {
        check_bounds(&|| inner.describe(), inner.size(), start, 0)?;
        let len = len.min(inner.size() - start);
        Ok(Self {
            inner,
            start,
            len,
            name,
        })
    }

    /// Offset of this slice in the parent device.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl<D: BlockDevice> BlockDevice for SliceDevice<D> {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_bounds(&|| self.describe(), self.len, offset, buf.len())?;
        self.inner.read_at(buf, self.start + offset)
    }
    fn read_direct(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_bounds(&|| self.describe(), self.len, offset, buf.len())?;
        self.inner.read_direct(buf, self.start + offset)
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// A device in memory (tests and fuzzing).
#[derive(Debug, Clone)]
pub struct MemDevice {
    data: Arc<Vec<u8>>,
    name: String,
}

impl MemDevice {
    /// Wrap `data`.
    pub fn new(data: Vec<u8>, name: &str) -> Self {
        Self {
            data: Arc::new(data),
            name: name.to_owned(),
        }
    }
}

impl BlockDevice for MemDevice {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_bounds(&|| self.describe(), self.size(), offset, buf.len())?;
        let o = offset as usize;
        buf.copy_from_slice(&self.data[o..o + buf.len()]);
        Ok(())
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Page size of [`CachedDevice`].
pub const PAGE: u64 = 64 * 1024;

/// Reads of at least this size bypass the cache.
const BYPASS: usize = 256 * 1024;

/// A page cache in front of a device: metadata reads (inodes, directory
/// blocks, extent nodes) hit memory; large reads bypass the cache.
pub struct CachedDevice<D> {
    inner: D,
    state: Mutex<CacheState>,
    max_pages: usize,
}

struct CacheState {
    pages: HashMap<u64, (Arc<[u8]>, u64)>,
    tick: u64,
}

impl<D: BlockDevice> CachedDevice<D> {
    /// Cache up to `max_bytes` of `inner` in 64 KiB pages.
    pub fn new(inner: D, max_bytes: usize) -> Self {
        Self {
            inner,
            state: Mutex::new(CacheState {
                pages: HashMap::new(),
                tick: 0,
            }),
            max_pages: (max_bytes / PAGE as usize).max(4),
        }
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    fn page(&self, index: u64) -> Result<Arc<[u8]>> {
        if let Ok(mut st) = self.state.lock() {
            st.tick += 1;
            let tick = st.tick;
            if let Some((p, t)) = st.pages.get_mut(&index) {
                *t = tick;
                return Ok(p.clone());
            }
        }
        let start = index * PAGE;
        let len = PAGE.min(self.inner.size() - start) as usize;
        let mut buf = vec![0u8; len];
        self.inner.read_at(&mut buf, start)?;
        let page: Arc<[u8]> = buf.into();
        if let Ok(mut st) = self.state.lock() {
            if st.pages.len() >= self.max_pages {
                // Evict the older half (cheap approximate LRU).
                let mut ticks: Vec<u64> = st.pages.values().map(|(_, t)| *t).collect();
                ticks.sort_unstable();
                let cut = ticks[ticks.len() / 2];
                st.pages.retain(|_, (_, t)| *t > cut);
            }
            let tick = st.tick;
            st.pages.insert(index, (page.clone(), tick));
        }
        Ok(page)
    }
}

impl<D: BlockDevice> BlockDevice for CachedDevice<D> {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_bounds(&|| self.describe(), self.size(), offset, buf.len())?;
        if buf.len() >= BYPASS {
            return self.inner.read_at(buf, offset);
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let page = self.page(pos / PAGE)?;
            let in_page = (pos % PAGE) as usize;
            let n = (page.len() - in_page).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&page[in_page..in_page + n]);
            done += n;
        }
        Ok(())
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn read_direct(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_bounds(&|| self.describe(), self.size(), offset, buf.len())?;
        self.inner.read_direct(buf, offset)
    }
}

/// Little-endian field readers over byte slices that never panic.
pub(crate) mod le {
    pub fn u16(b: &[u8], o: usize) -> u16 {
        b.get(o..o + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]))
            .unwrap_or(0)
    }
    pub fn u32(b: &[u8], o: usize) -> u32 {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            .unwrap_or(0)
    }
    pub fn u64(b: &[u8], o: usize) -> u64 {
        b.get(o..o + 8)
            .map(|s| u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]))
            .unwrap_or(0)
    }
}

/// Big-endian field readers (qcow2).
pub(crate) mod be {
    pub fn u32(b: &[u8], o: usize) -> u32 {
        b.get(o..o + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            .unwrap_or(0)
    }
    pub fn u64(b: &[u8], o: usize) -> u64 {
        b.get(o..o + 8)
            .map(|s| u64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_reads_match_uncached_across_pages() {
        let data: Vec<u8> = (0..(PAGE as usize * 3 + 100))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let dev = CachedDevice::new(MemDevice::new(data.clone(), "m"), 1 << 20);
        for (off, len) in [
            (0u64, 10usize),
            (PAGE - 5, 10),
            (PAGE * 2 + 3, 1000),
            (1, 190_000),
        ] {
            let mut buf = vec![0; len];
            dev.read_at(&mut buf, off).unwrap();
            assert_eq!(&buf[..], &data[off as usize..off as usize + len]);
        }
        let mut buf = vec![0; 200];
        assert!(matches!(
            dev.read_at(&mut buf, PAGE * 3),
            Err(ImageError::OutOfBounds { .. })
        ));
    }

    #[test]
    fn slice_device_bounds_reads() {
        let dev = SliceDevice::new(MemDevice::new(vec![1; 100], "m"), 10, 50, "p1".into()).unwrap();
        let mut buf = [0u8; 50];
        dev.read_at(&mut buf, 0).unwrap();
        assert!(dev.read_at(&mut buf, 1).is_err());
    }
}
