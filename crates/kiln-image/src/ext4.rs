//! ext2/3/4 reader: superblock, group descriptors (32/64-bit, meta_bg),
//! inode tables, extent trees and legacy block maps, linear and htree
//! directories (read linearly), inline data, xattrs in the inode body, in an
//! xattr block and in EA inodes, POSIX ACLs converted to the Linux xattr
//! format.
//!
//! With `metadata_csum` the crc32c checksums of the superblock, the group
//! descriptors, every inode read, extent tree blocks and directory leaf
//! blocks (the `det_checksum` tail) are verified; htree index blocks, xattr
//! blocks and bitmaps are not (an htree index is never used: directories
//! are read linearly). Incompatible features the reader does not know are
//! refused by name, unknown bits in hex.

use crate::block::{BlockDevice, le};
use crate::error::{Result, corrupt, unsupported};
use crate::fs::{DirEntry, FileSystem, FileType, Inode, Run, Timestamp, Xattr};

/// ext superblock magic.
pub const MAGIC: u16 = 0xef53;

const INCOMPAT_COMPRESSION: u32 = 0x1;
const INCOMPAT_RECOVER: u32 = 0x4;
const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_DIRDATA: u32 = 0x1000;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

/// The incompatible features by bit: whether the reader handles it, and its name.
const INCOMPAT_FEATURES: &[(u32, bool, &str)] = &[
    (INCOMPAT_COMPRESSION, false, "compression"),
    (0x2, true, "filetype"),
    (INCOMPAT_RECOVER, true, "needs_recovery"),
    (INCOMPAT_JOURNAL_DEV, false, "journal_dev"),
    (INCOMPAT_META_BG, true, "meta_bg"),
    (0x40, true, "extent"),
    (INCOMPAT_64BIT, true, "64bit"),
    (0x100, true, "mmp"),
    (0x200, true, "flex_bg"),
    (0x400, true, "ea_inode"),
    (INCOMPAT_DIRDATA, false, "dirdata"),
    (INCOMPAT_CSUM_SEED, true, "metadata_csum_seed"),
    (0x4000, true, "large_dir"),
    (0x8000, true, "inline_data"),
    (0x10000, true, "encrypt"),
    (0x20000, true, "casefold"),
];

/// The incompatible feature bits of `incompat` the reader cannot read: the
/// names of known ones it does not handle, then the unknown bits in hex.
fn refused_incompat(incompat: u32) -> Vec<String> {
    let mut out = vec![];
    let mut known = 0u32;
    for &(bit, ok, name) in INCOMPAT_FEATURES {
        known |= bit;
        if incompat & bit != 0 && !ok {
            out.push(name.to_owned());
        }
    }
    let unknown = incompat & !known;
    if unknown != 0 {
        out.push(format!("unknown {unknown:#x}"));
    }
    out
}

/// The kernel's `crc32c(crc, data)`: the running CRC without the final
/// inversion the `crc32c` crate applies.
fn csum(crc: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!crc, data)
}

const FL_ENCRYPT: u32 = 0x800;
const FL_INDEX: u32 = 0x1000;
const FL_EXTENTS: u32 = 0x80000;
const FL_INLINE_DATA: u32 = 0x1000_0000;

const EXTENT_MAGIC: u16 = 0xf30a;

/// (name index, name, value) as stored.
type RawXattr = (u8, Vec<u8>, Vec<u8>);
const XATTR_MAGIC: u32 = 0xea02_0000;

/// Does `dev` hold an ext2/3/4 superblock?
pub fn probe(dev: &dyn BlockDevice) -> bool {
    let mut m = [0u8; 2];
    dev.size() >= 2048 && dev.read_at(&mut m, 1024 + 0x38).is_ok() && u16::from_le_bytes(m) == MAGIC
}

/// An open ext2/3/4 filesystem.
pub struct Ext4 {
    dev: Box<dyn BlockDevice>,
    what: String,
    block_size: u64,
    inodes_per_group: u32,
    inodes_count: u32,
    inode_size: u64,
    inode_tables: Vec<u64>,
    label: String,
    uuid: [u8; 16],
    needs_recovery: bool,
    /// The checksum seed when `metadata_csum` is on.
    csum_seed: Option<u32>,
}

impl std::fmt::Debug for Ext4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ext4")
            .field("what", &self.what)
            .field("block_size", &self.block_size)
            .field("label", &self.label)
            .finish()
    }
}

fn ts(sec: u32, extra: Option<u32>) -> Timestamp {
    let mut s = sec as i32 as i64;
    let mut nsec = 0;
    if let Some(x) = extra {
        s += ((x & 3) as i64) << 32;
        nsec = (x >> 2).min(999_999_999);
    }
    Timestamp { sec: s, nsec }
}

/// Convert an ext4 on-disk ACL to the `system.posix_acl_*` xattr format.
fn acl_to_xattr(v: &[u8]) -> Option<Vec<u8>> {
    if le::u32(v, 0) != 1 {
        return None;
    }
    let mut out = 2u32.to_le_bytes().to_vec();
    let mut p = 4;
    while p + 4 <= v.len() {
        let tag = le::u16(v, p);
        let perm = le::u16(v, p + 2);
        let id = if tag == 0x02 || tag == 0x08 {
            if p + 8 > v.len() {
                return None;
            }
            let id = le::u32(v, p + 4);
            p += 8;
            id
        } else {
            p += 4;
            u32::MAX
        };
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Some(out)
}

impl Ext4 {
    /// Open the filesystem on `dev` (which should be cached: see [`crate::block::CachedDevice`]).
    pub fn open(dev: Box<dyn BlockDevice>) -> Result<Self> {
        let what = dev.describe();
        if dev.size() < 2048 {
            return Err(corrupt(&what, 0, "too small for an ext superblock"));
        }
        let mut sb = vec![0u8; 1024];
        dev.read_at(&mut sb, 1024)?;
        if le::u16(&sb, 0x38) != MAGIC {
            return Err(corrupt(&what, 1024 + 0x38, "no ext2/3/4 superblock magic"));
        }
        let log_bs = le::u32(&sb, 0x18);
        if log_bs > 6 {
            return Err(corrupt(
                &what,
                1024 + 0x18,
                format!("block size 2^{} is invalid", log_bs as u64 + 10),
            ));
        }
        let block_size = 1024u64 << log_bs;
        let incompat = le::u32(&sb, 0x60);
        let ro_compat = le::u32(&sb, 0x64);
        let refused = refused_incompat(incompat);
        if !refused.is_empty() {
            return Err(unsupported(
                &what,
                format!(
                    "ext4 incompatible feature(s) {} (s_feature_incompat {incompat:#x})",
                    refused.join(", ")
                ),
            ));
        }
        let metadata_csum = ro_compat & RO_COMPAT_METADATA_CSUM != 0;
        let seed = if metadata_csum {
            if sb[0x175] != 1 {
                return Err(unsupported(
                    &what,
                    format!("ext4 checksum type {} (only crc32c, 1, exists)", sb[0x175]),
                ));
            }
            let stored = le::u32(&sb, 0x3fc);
            let computed = csum(!0, &sb[..0x3fc]);
            if stored != computed {
                return Err(corrupt(
                    &what,
                    1024 + 0x3fc,
                    format!(
                        "superblock checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                    ),
                ));
            }
            Some(if incompat & INCOMPAT_CSUM_SEED != 0 {
                le::u32(&sb, 0x270)
            } else {
                csum(!0, &sb[0x68..0x78])
            })
        } else {
            None
        };
        let rev = le::u32(&sb, 0x4c);
        let inode_size = if rev == 0 {
            128
        } else {
            le::u16(&sb, 0x58) as u64
        };
        if inode_size < 128 || inode_size > block_size || !inode_size.is_power_of_two() {
            return Err(corrupt(
                &what,
                1024 + 0x58,
                format!("inode size {inode_size} is invalid"),
            ));
        }
        let inodes_count = le::u32(&sb, 0x0);
        let blocks_per_group = le::u32(&sb, 0x20) as u64;
        let inodes_per_group = le::u32(&sb, 0x28);
        if blocks_per_group == 0 || inodes_per_group == 0 || inodes_count == 0 {
            return Err(corrupt(
                &what,
                1024,
                "superblock has zero blocks or inodes per group",
            ));
        }
        let is64 = incompat & INCOMPAT_64BIT != 0;
        let mut blocks = le::u32(&sb, 0x4) as u64;
        if is64 {
            blocks |= (le::u32(&sb, 0x150) as u64) << 32;
        }
        let first_data = le::u32(&sb, 0x14) as u64;
        let groups = blocks.saturating_sub(first_data).div_ceil(blocks_per_group);
        let groups_by_inodes = (inodes_count as u64).div_ceil(inodes_per_group as u64);
        if groups == 0 || groups > (1 << 32) || groups_by_inodes > groups {
            return Err(corrupt(
                &what,
                1024,
                format!(
                    "{blocks} blocks in groups of {blocks_per_group} give {groups} groups; the superblock is damaged"
                ),
            ));
        }
        if blocks.saturating_mul(block_size) > dev.size() + block_size * blocks_per_group {
            return Err(corrupt(
                &what,
                1024,
                format!(
                    "filesystem claims {} bytes but the partition holds {}",
                    blocks.saturating_mul(block_size),
                    dev.size()
                ),
            ));
        }
        let desc_size = if is64 {
            (le::u16(&sb, 0xfe) as u64).max(32)
        } else {
            32
        };
        if desc_size > block_size || !desc_size.is_power_of_two() {
            return Err(corrupt(
                &what,
                1024 + 0xfe,
                format!("group descriptor size {desc_size} invalid"),
            ));
        }
        let per_block = block_size / desc_size;
        let gdt_start = first_data + 1;
        let meta_bg = incompat & INCOMPAT_META_BG != 0;
        let first_meta_bg = le::u32(&sb, 0x104) as u64;
        let sparse = ro_compat & RO_COMPAT_SPARSE_SUPER != 0;
        let mut inode_tables = Vec::with_capacity(groups as usize);
        let mut blockbuf = vec![0u8; block_size as usize];
        let mut cur_block = u64::MAX;
        for g in 0..groups {
            let db = g / per_block;
            let blk = if meta_bg && db >= first_meta_bg {
                let first_group = db * per_block;
                let has_super = has_superblock(first_group, sparse);
                first_data + first_group * blocks_per_group + u64::from(has_super)
            } else {
                gdt_start + db
            };
            if blk != cur_block {
                dev.read_at(&mut blockbuf, blk * block_size).map_err(|_| {
                    corrupt(
                        &what,
                        blk * block_size,
                        "group descriptor table beyond the end of the device",
                    )
                })?;
                cur_block = blk;
            }
            let at = ((g % per_block) * desc_size) as usize;
            let d = &blockbuf[at..at + desc_size as usize];
            if let Some(seed) = seed {
                let mut c = csum(seed, &(g as u32).to_le_bytes());
                c = csum(c, &d[..0x1e]);
                c = csum(c, &[0, 0]);
                c = csum(c, &d[0x20..]);
                let stored = le::u16(d, 0x1e);
                if stored != c as u16 {
                    return Err(corrupt(
                        &what,
                        blk * block_size + at as u64,
                        format!(
                            "group descriptor {g} checksum mismatch (stored {stored:#06x}, computed {:#06x})",
                            c as u16
                        ),
                    ));
                }
            }
            let mut it = le::u32(d, 0x8) as u64;
            if is64 && desc_size >= 64 {
                it |= (le::u32(d, 0x28) as u64) << 32;
            }
            inode_tables.push(it);
        }
        let label =
            String::from_utf8_lossy(sb[0x78..0x88].split(|&b| b == 0).next().unwrap_or(&[]))
                .into_owned();
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&sb[0x68..0x78]);
        Ok(Self {
            dev,
            what,
            block_size,
            inodes_per_group,
            inodes_count,
            inode_size,
            inode_tables,
            label,
            uuid,
            needs_recovery: incompat & INCOMPAT_RECOVER != 0,
            csum_seed: seed,
        })
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// The largest file ext4 can hold: 2^32 blocks (16 TiB with 4 KiB blocks).
    pub fn max_file_size(&self) -> u64 {
        self.block_size << 32
    }

    /// Filesystem UUID.
    pub fn uuid(&self) -> [u8; 16] {
        self.uuid
    }

    /// The journal needs replaying (the filesystem was not cleanly unmounted):
    /// what is read may miss the last writes.
    pub fn needs_recovery(&self) -> bool {
        self.needs_recovery
    }

    fn read(&self, buf: &mut [u8], off: u64, what: &str) -> Result<()> {
        self.dev
            .read_at(buf, off)
            .map_err(|e| corrupt(&self.what, off, format!("{what}: {e}")))
    }

    fn inode_offset(&self, ino: u64) -> Result<u64> {
        if ino == 0 || ino > self.inodes_count as u64 {
            return Err(corrupt(
                &self.what,
                0,
                format!("inode number {ino} out of range 1..={}", self.inodes_count),
            ));
        }
        let g = ((ino - 1) / self.inodes_per_group as u64) as usize;
        let idx = (ino - 1) % self.inodes_per_group as u64;
        let table = *self
            .inode_tables
            .get(g)
            .ok_or_else(|| corrupt(&self.what, 0, format!("inode {ino} in missing group {g}")))?;
        table
            .checked_mul(self.block_size)
            .and_then(|o| o.checked_add(idx * self.inode_size))
            .ok_or_else(|| corrupt(&self.what, 0, format!("inode {ino} offset overflows")))
    }

    /// The checksum seed of inode `ino` (`metadata_csum` only): the
    /// filesystem seed, then the inode number and generation.
    fn inode_seed(&self, ino: u64, raw: &[u8]) -> Option<u32> {
        let seed = self.csum_seed?;
        let c = csum(seed, &(ino as u32).to_le_bytes());
        Some(csum(c, &le::u32(raw, 0x64).to_le_bytes()))
    }

    fn raw_inode(&self, ino: u64) -> Result<Vec<u8>> {
        let off = self.inode_offset(ino)?;
        let mut b = vec![0u8; self.inode_size as usize];
        self.read(&mut b, off, &format!("inode {ino}"))?;
        if let Some(seed) = self.inode_seed(ino, &b) {
            // The whole inode with `l_i_checksum_lo` (0x7c) and, when the
            // extra part holds it, `i_checksum_hi` (0x82) taken as zero.
            let mut c = csum(seed, &b[..0x7c]);
            c = csum(c, &[0, 0]);
            c = csum(c, &b[0x7e..128]);
            let mut stored = le::u16(&b, 0x7c) as u32;
            let mut mask = 0xffffu32;
            if b.len() > 128 {
                c = csum(c, &b[128..0x82]);
                let extra = le::u16(&b, 0x80) as usize;
                if 128 + extra >= 0x84 {
                    c = csum(c, &[0, 0]);
                    c = csum(c, &b[0x84..]);
                    stored |= (le::u16(&b, 0x82) as u32) << 16;
                    mask = !0;
                } else {
                    c = csum(c, &b[0x82..]);
                }
            }
            if stored != c & mask {
                return Err(corrupt(
                    &self.what,
                    off,
                    format!(
                        "inode {ino} checksum mismatch (stored {stored:#x}, computed {:#x})",
                        c & mask
                    ),
                ));
            }
        }
        Ok(b)
    }

    fn xattrs_raw(&self, ino: u64, raw: &[u8]) -> Result<Vec<RawXattr>> {
        let mut out = vec![];
        let extra = le::u16(raw, 0x80) as usize;
        if raw.len() > 128 {
            let body = 128 + extra;
            if body + 4 <= raw.len() && le::u32(raw, body) == XATTR_MAGIC {
                let region = &raw[body + 4..];
                self.parse_xattr_entries(ino, region, 0, region, &mut out)?;
            }
        }
        let xblk = le::u32(raw, 0x68) as u64 | ((le::u16(raw, 0x76) as u64) << 32);
        if xblk != 0 {
            let mut b = vec![0u8; self.block_size as usize];
            let off = xblk.saturating_mul(self.block_size);
            self.read(&mut b, off, &format!("xattr block of inode {ino}"))?;
            if le::u32(&b, 0) != XATTR_MAGIC {
                return Err(corrupt(
                    &self.what,
                    off,
                    format!("xattr block of inode {ino} has a bad magic"),
                ));
            }
            self.parse_xattr_entries(ino, &b, 32, &b, &mut out)?;
        }
        Ok(out)
    }

    fn parse_xattr_entries(
        &self,
        ino: u64,
        entries: &[u8],
        start: usize,
        values: &[u8],
        out: &mut Vec<RawXattr>,
    ) -> Result<()> {
        let mut p = start;
        while p + 16 <= entries.len() && le::u32(entries, p) != 0 {
            let name_len = entries[p] as usize;
            let index = entries[p + 1];
            let voff = le::u16(entries, p + 2) as usize;
            let vinum = le::u32(entries, p + 4) as u64;
            let vsize = le::u32(entries, p + 8) as usize;
            let name = entries
                .get(p + 16..p + 16 + name_len)
                .ok_or_else(|| {
                    corrupt(&self.what, 0, format!("xattr name of inode {ino} overruns"))
                })?
                .to_vec();
            let value = if vinum != 0 {
                let vi = self.inode(vinum)?;
                let mut v = self.read_all(&vi, vsize as u64)?;
                v.truncate(vsize);
                v
            } else {
                values
                    .get(voff..voff + vsize)
                    .ok_or_else(|| {
                        corrupt(
                            &self.what,
                            0,
                            format!("xattr value of inode {ino} overruns"),
                        )
                    })?
                    .to_vec()
            };
            out.push((index, name, value));
            p += (16 + name_len).div_ceil(4) * 4;
        }
        Ok(())
    }

    fn extents(
        &self,
        ino: u64,
        seed: Option<u32>,
        node: &[u8],
        depth_left: u32,
        out: &mut Vec<(u64, u64, u64, bool)>,
    ) -> Result<()> {
        if le::u16(node, 0) != EXTENT_MAGIC {
            return Err(corrupt(
                &self.what,
                0,
                format!("inode {ino}: bad extent header magic"),
            ));
        }
        let n = le::u16(node, 2) as usize;
        let depth = le::u16(node, 6);
        if depth as u32 > depth_left || 12 + n * 12 > node.len() {
            return Err(corrupt(
                &self.what,
                0,
                format!("inode {ino}: extent tree is malformed"),
            ));
        }
        for i in 0..n {
            let e = &node[12 + i * 12..24 + i * 12];
            if depth == 0 {
                let lblk = le::u32(e, 0) as u64;
                let mut len = le::u16(e, 4) as u64;
                let uninit = len > 32768;
                if uninit {
                    len -= 32768;
                }
                let pblk = ((le::u16(e, 6) as u64) << 32) | le::u32(e, 8) as u64;
                out.push((lblk, pblk, len, uninit));
            } else {
                let child = ((le::u16(e, 8) as u64) << 32) | le::u32(e, 4) as u64;
                let mut b = vec![0u8; self.block_size as usize];
                let at = child.saturating_mul(self.block_size);
                self.read(&mut b, at, &format!("extent node of inode {ino}"))?;
                if let Some(seed) = seed {
                    // `struct ext4_extent_tail` follows `eh_max` entries.
                    let tail = 12 + 12 * le::u16(&b, 4) as usize;
                    if tail + 4 > b.len() {
                        return Err(corrupt(
                            &self.what,
                            at,
                            format!("inode {ino}: extent block has no room for its checksum"),
                        ));
                    }
                    let stored = le::u32(&b, tail);
                    let computed = csum(seed, &b[..tail]);
                    if stored != computed {
                        return Err(corrupt(
                            &self.what,
                            at + tail as u64,
                            format!(
                                "inode {ino}: extent block checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                            ),
                        ));
                    }
                }
                self.extents(ino, seed, &b, depth as u32 - 1, out)?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn blockmap(
        &self,
        ino: u64,
        ptr: u64,
        level: u32,
        lblk: &mut u64,
        max: u64,
        out: &mut Vec<(u64, u64, u64, bool)>,
    ) -> Result<()> {
        let per = self.block_size / 4;
        let span = per.pow(level);
        if *lblk >= max {
            return Ok(());
        }
        if ptr == 0 {
            *lblk += span;
            return Ok(());
        }
        if level == 0 {
            out.push((*lblk, ptr, 1, false));
            *lblk += 1;
            return Ok(());
        }
        let mut b = vec![0u8; self.block_size as usize];
        self.read(
            &mut b,
            ptr * self.block_size,
            &format!("indirect block of inode {ino}"),
        )?;
        for i in 0..per as usize {
            if *lblk >= max {
                break;
            }
            self.blockmap(ino, le::u32(&b, i * 4) as u64, level - 1, lblk, max, out)?;
        }
        Ok(())
    }

    /// The mapped extents `(logical block, physical block, blocks,
    /// unwritten)` of an inode (block maps only up to `nblocks`).
    fn block_list(&self, ino: u64, raw: &[u8], nblocks: u64) -> Result<Vec<(u64, u64, u64, bool)>> {
        let flags = le::u32(raw, 0x20);
        let mut ext = vec![];
        if flags & FL_EXTENTS != 0 {
            let seed = self.inode_seed(ino, raw);
            self.extents(ino, seed, &raw[0x28..0x28 + 60], 5, &mut ext)?;
        } else {
            let mut lblk = 0u64;
            for i in 0..12 {
                self.blockmap(
                    ino,
                    le::u32(raw, 0x28 + i * 4) as u64,
                    0,
                    &mut lblk,
                    nblocks,
                    &mut ext,
                )?;
            }
            for (i, level) in [(12usize, 1u32), (13, 2), (14, 3)] {
                self.blockmap(
                    ino,
                    le::u32(raw, 0x28 + i * 4) as u64,
                    level,
                    &mut lblk,
                    nblocks,
                    &mut ext,
                )?;
            }
        }
        Ok(ext)
    }

    /// Verify the `det_checksum` tail of a directory leaf block; returns the
    /// length of the entries before the tail, or `None` for an htree index
    /// block (not verified: the index is never used).
    fn dir_block_csum(
        &self,
        ino: u64,
        seed: u32,
        block: &[u8],
        indexed: bool,
        first: bool,
        at: u64,
    ) -> Result<Option<usize>> {
        let t = block.len() - 12;
        let has_tail = le::u32(block, t) == 0
            && le::u16(block, t + 4) == 12
            && block[t + 6] == 0
            && block[t + 7] == 0xde;
        if !has_tail {
            let fake = le::u32(block, 0) == 0 && le::u16(block, 4) as usize >= block.len() - 8;
            if indexed && (first || fake) {
                return Ok(None);
            }
            return Err(corrupt(
                &self.what,
                at,
                format!("directory inode {ino}: leaf block has no checksum tail"),
            ));
        }
        let stored = le::u32(block, t + 8);
        let computed = csum(seed, &block[..t]);
        if stored != computed {
            return Err(corrupt(
                &self.what,
                at,
                format!(
                    "directory inode {ino}: block checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                ),
            ));
        }
        Ok(Some(t))
    }

    fn inline_data(&self, inode: &Inode, raw: &[u8]) -> Result<Vec<u8>> {
        let mut data = raw[0x28..0x28 + 60].to_vec();
        for (idx, name, value) in self.xattrs_raw(inode.ino, raw)? {
            if idx == 7 && name == b"data" {
                data.extend_from_slice(&value);
            }
        }
        Ok(data)
    }
}

fn has_superblock(group: u64, sparse: bool) -> bool {
    if !sparse || group <= 1 {
        return true;
    }
    for base in [3u64, 5, 7] {
        let mut p = base;
        while p < group {
            p *= base;
        }
        if p == group {
            return true;
        }
    }
    false
}

impl FileSystem for Ext4 {
    fn describe(&self) -> String {
        format!("{} (ext4)", self.what)
    }

    fn label(&self) -> String {
        self.label.clone()
    }

    fn root_ino(&self) -> u64 {
        2
    }

    fn inode(&self, ino: u64) -> Result<Inode> {
        let raw = self.raw_inode(ino)?;
        let mode = le::u16(&raw, 0) as u32;
        let file_type = match mode & 0o170000 {
            0o100000 => FileType::Regular,
            0o040000 => FileType::Directory,
            0o120000 => FileType::Symlink,
            0o020000 => FileType::CharDevice,
            0o060000 => FileType::BlockDevice,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            other => {
                return Err(corrupt(
                    &self.what,
                    0,
                    format!("inode {ino} has unknown file type {other:#o} (mode {mode:#o})"),
                ));
            }
        };
        let extra = if self.inode_size > 128 {
            le::u16(&raw, 0x80) as usize
        } else {
            0
        };
        let has =
            |off: usize| self.inode_size > 128 && 128 + extra >= off + 4 && off + 4 <= raw.len();
        let x = |off: usize| {
            if has(off) {
                Some(le::u32(&raw, off))
            } else {
                None
            }
        };
        let uid = le::u16(&raw, 0x2) as u32 | ((le::u16(&raw, 0x78) as u32) << 16);
        let gid = le::u16(&raw, 0x18) as u32 | ((le::u16(&raw, 0x7a) as u32) << 16);
        let size = le::u32(&raw, 0x4) as u64 | ((le::u32(&raw, 0x6c) as u64) << 32);
        let flags = le::u32(&raw, 0x20);
        if file_type == FileType::Regular && size > self.max_file_size() {
            return Err(corrupt(
                &self.what,
                self.inode_offset(ino)?,
                format!(
                    "inode {ino} has size {size}, beyond the {} bytes ext4 can hold with {}-byte blocks",
                    self.max_file_size(),
                    self.block_size
                ),
            ));
        }
        let mut rdev = (0, 0);
        if matches!(file_type, FileType::CharDevice | FileType::BlockDevice) {
            let b0 = le::u32(&raw, 0x28);
            let b1 = le::u32(&raw, 0x2c);
            rdev = if b0 != 0 {
                ((b0 >> 8) & 0xff, b0 & 0xff)
            } else {
                ((b1 >> 8) & 0xfff, (b1 & 0xff) | ((b1 >> 12) & 0xfff00))
            };
        }
        let mut xattrs = vec![];
        for (idx, name, value) in self.xattrs_raw(ino, &raw)? {
            let n = String::from_utf8_lossy(&name);
            let (full, value) = match idx {
                1 => (format!("user.{n}"), value),
                2 => (
                    "system.posix_acl_access".to_owned(),
                    acl_to_xattr(&value).unwrap_or(value),
                ),
                3 => (
                    "system.posix_acl_default".to_owned(),
                    acl_to_xattr(&value).unwrap_or(value),
                ),
                4 => (format!("trusted.{n}"), value),
                6 => (format!("security.{n}"), value),
                7 if n == "data" => continue,
                7 => (format!("system.{n}"), value),
                8 => ("system.richacl".to_owned(), value),
                _ => continue,
            };
            xattrs.push(Xattr { name: full, value });
        }
        let mut inode = Inode {
            ino,
            file_type,
            mode: mode & 0o7777,
            uid,
            gid,
            size,
            nlink: le::u16(&raw, 0x1a) as u32,
            atime: ts(le::u32(&raw, 0x8), x(0x8c)),
            mtime: ts(le::u32(&raw, 0x10), x(0x88)),
            ctime: ts(le::u32(&raw, 0xc), x(0x84)),
            rdev,
            link_target: vec![],
            xattrs,
        };
        if file_type == FileType::Symlink {
            if size > 65536 {
                return Err(corrupt(
                    &self.what,
                    0,
                    format!("symlink inode {ino} has size {size}"),
                ));
            }
            if flags & FL_INLINE_DATA != 0 {
                let mut d = self.inline_data(&inode, &raw)?;
                d.truncate(size as usize);
                inode.link_target = d;
            } else if size < 60 && flags & FL_EXTENTS == 0 {
                inode.link_target = raw[0x28..0x28 + size as usize].to_vec();
            } else {
                inode.link_target = self.read_all(&inode, size)?;
            }
        }
        Ok(inode)
    }

    fn read_dir(&self, dir: &Inode) -> Result<Vec<DirEntry>> {
        let raw = self.raw_inode(dir.ino)?;
        let flags = le::u32(&raw, 0x20);
        let ino_off = self.inode_offset(dir.ino)?;
        let mut out = vec![];
        // `.` and `..` only as the first two records of the first block.
        let mut parse = |buf: &[u8], block_len: usize, at: u64, dots: bool| -> Result<()> {
            let mut p = 0usize;
            let mut record = 0usize;
            while p + 8 <= buf.len() {
                let ino = le::u32(buf, p) as u64;
                let mut rec = le::u16(buf, p + 4) as usize;
                if block_len == 65536 && (rec == 0 || rec == 65535) {
                    rec = 65536;
                }
                let nlen = buf[p + 6] as usize;
                let here = at + p as u64;
                if rec < 8 || p + rec > buf.len() {
                    return Err(corrupt(
                        &self.what,
                        here,
                        format!("directory inode {} has a bad record length {rec}", dir.ino),
                    ));
                }
                if ino != 0 {
                    if nlen == 0 || 8 + nlen > rec {
                        return Err(corrupt(
                            &self.what,
                            here,
                            format!(
                                "directory inode {} has an entry with a name of {nlen} bytes in a record of {rec}",
                                dir.ino
                            ),
                        ));
                    }
                    let name = &buf[p + 8..p + 8 + nlen];
                    let bad = if name.contains(&b'/') {
                        Some("a `/`")
                    } else if name.contains(&0) {
                        Some("a NUL byte")
                    } else if name == b"." && !(dots && record == 0) {
                        Some("`.` out of place")
                    } else if name == b".." && !(dots && record == 1) {
                        Some("`..` out of place")
                    } else {
                        None
                    };
                    if let Some(bad) = bad {
                        return Err(corrupt(
                            &self.what,
                            here,
                            format!(
                                "directory inode {} has an entry `{}` (inode {ino}) with {bad}",
                                dir.ino,
                                String::from_utf8_lossy(name).escape_debug()
                            ),
                        ));
                    }
                    if name != b"." && name != b".." {
                        out.push(DirEntry {
                            name: name.to_vec(),
                            ino,
                        });
                    }
                }
                p += rec;
                record += 1;
            }
            Ok(())
        };
        if flags & FL_INLINE_DATA != 0 {
            let data = self.inline_data(dir, &raw)?;
            // 4 bytes of parent inode, then entries to the end of i_block,
            // then the entries stored in system.data.
            parse(&data[4..60], 56, ino_off + 0x2c, false)?;
            if data.len() > 60 {
                parse(&data[60..], data.len() - 60, ino_off, false)?;
            }
            return Ok(out);
        }
        let bs = self.block_size;
        if dir.size == 0 || !dir.size.is_multiple_of(bs) {
            return Err(corrupt(
                &self.what,
                ino_off,
                format!(
                    "directory inode {} has size {}, not a positive multiple of the block size {bs}",
                    dir.ino, dir.size
                ),
            ));
        }
        let nblocks = dir.size / bs;
        let mapped_end = self
            .block_list(dir.ino, &raw, nblocks)?
            .iter()
            .map(|e| e.0.saturating_add(e.2))
            .max()
            .unwrap_or(0);
        if mapped_end > nblocks {
            return Err(corrupt(
                &self.what,
                ino_off,
                format!(
                    "directory inode {} has size {} but its extents map {mapped_end} blocks",
                    dir.ino, dir.size
                ),
            ));
        }
        let runs = self.runs(dir)?;
        let covered: u64 = runs.iter().map(Run::len).sum();
        if covered != dir.size {
            return Err(corrupt(
                &self.what,
                ino_off,
                format!(
                    "directory inode {} has size {} but only {covered} bytes are mapped (a hole or an unwritten extent)",
                    dir.ino, dir.size
                ),
            ));
        }
        let seed = self.inode_seed(dir.ino, &raw);
        let indexed = flags & FL_INDEX != 0;
        let bsu = bs as usize;
        for r in &runs {
            let Run::Data {
                logical, physical, ..
            } = r
            else {
                continue;
            };
            let mut buf = vec![0u8; r.len() as usize];
            self.read_file_at(std::slice::from_ref(r), &mut buf, r.logical())?;
            for (i, block) in buf.chunks(bsu).enumerate() {
                let at = physical + (i * bsu) as u64;
                let first = *logical == 0 && i == 0;
                let mut body = block;
                if let Some(seed) = seed {
                    match self.dir_block_csum(dir.ino, seed, block, indexed, first, at)? {
                        Some(len) => body = &block[..len],
                        None => continue, // an htree index block
                    }
                }
                parse(body, bsu, at, first)?;
            }
        }
        Ok(out)
    }

    fn runs(&self, file: &Inode) -> Result<Vec<Run>> {
        let raw = self.raw_inode(file.ino)?;
        let flags = le::u32(&raw, 0x20);
        if flags & FL_ENCRYPT != 0 {
            return Err(unsupported(
                &self.what,
                format!("encrypted inode {}", file.ino),
            ));
        }
        if flags & FL_INLINE_DATA != 0 {
            let mut d = self.inline_data(file, &raw)?;
            d.truncate(file.size as usize);
            return Ok(if d.is_empty() {
                vec![]
            } else {
                vec![Run::Inline {
                    logical: 0,
                    data: d,
                }]
            });
        }
        let bs = self.block_size;
        let nblocks = file.size.div_ceil(bs);
        let mut ext = self.block_list(file.ino, &raw, nblocks)?;
        ext.sort_unstable_by_key(|e| e.0);
        let dev_size = self.dev.size();
        let mut runs: Vec<Run> = vec![];
        for (lblk, pblk, len, uninit) in ext {
            if uninit || len == 0 || lblk >= nblocks {
                continue;
            }
            let logical = lblk * bs;
            let physical = pblk * bs;
            let len = (len * bs).min(file.size - logical);
            if physical.checked_add(len).is_none_or(|e| e > dev_size) {
                return Err(corrupt(
                    &self.what,
                    physical,
                    format!(
                        "inode {} maps data beyond the end of the filesystem",
                        file.ino
                    ),
                ));
            }
            if let Some(Run::Data {
                logical: pl,
                len: plen,
                physical: pp,
            }) = runs.last_mut()
            {
                if *pl + *plen == logical && *pp + *plen == physical {
                    *plen += len;
                    continue;
                }
                if *pl + *plen > logical {
                    return Err(corrupt(
                        &self.what,
                        physical,
                        format!("inode {} has overlapping extents", file.ino),
                    ));
                }
            }
            runs.push(Run::Data {
                logical,
                len,
                physical,
            });
        }
        Ok(runs)
    }

    fn device(&self) -> &dyn BlockDevice {
        &*self.dev
    }

    fn max_file_size(&self) -> u64 {
        self.max_file_size()
    }

    fn notes(&self) -> Vec<String> {
        if self.needs_recovery {
            vec![format!(
                "{}: the ext4 journal needs recovery (the filesystem was not cleanly unmounted); the last writes may be missing",
                self.what
            )]
        } else {
            vec![]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::block::FileDevice;
    use crate::fs::walk;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn sh(cmd: &str) -> String {
        let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An 8 MiB ext4 image made by `mkfs.ext4 -d` from a tree that `script`
    /// fills (run in the tree), with `-O features`.
    fn image(script: &str, features: &str) -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        sh(&format!("cd {} && {script}", tree.display()));
        let img = t.path().join("fs.img");
        sh(&format!(
            "truncate -s 8M {img} && mkfs.ext4 -q -F -b 4096 -O {features} -d {tree} {img}",
            img = img.display(),
            tree = tree.display()
        ));
        (t, img)
    }

    fn open(img: &Path) -> Result<Ext4> {
        Ext4::open(Box::new(FileDevice::open(img)?))
    }

    /// Every path, and every regular file read whole.
    fn read_everything(fs: &Ext4) -> Result<Vec<String>> {
        let mut paths = vec![];
        walk(fs, &mut |e| {
            if e.inode.file_type == FileType::Regular {
                fs.read_all(&e.inode, u64::MAX)?;
            }
            paths.push(String::from_utf8_lossy(&e.path).into_owned());
            Ok(true)
        })?;
        Ok(paths)
    }

    fn debugfs(img: &Path, req: &str) -> String {
        sh(&format!("debugfs -R '{req}' {} 2>/dev/null", img.display()))
    }

    fn debugfs_w(img: &Path, req: &str) {
        sh(&format!(
            "debugfs -w -R '{req}' {} 2>/dev/null",
            img.display()
        ));
    }

    /// Byte offset of inode `ino` in the image (from `debugfs imap`).
    fn inode_offset(img: &Path, ino: u64) -> u64 {
        let out = debugfs(img, &format!("imap <{ino}>"));
        let block: u64 = out
            .split("located at block ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let off = out.split("offset 0x").nth(1).unwrap().trim();
        block * 4096 + u64::from_str_radix(off, 16).unwrap()
    }

    /// Physical byte offset of logical block `n` of `path`.
    fn block_offset(img: &Path, path: &str, n: u64) -> u64 {
        debugfs(img, &format!("bmap {path} {n}"))
            .trim()
            .parse::<u64>()
            .unwrap()
            * 4096
    }

    fn ino_of(img: &Path, path: &str) -> u64 {
        let out = debugfs(img, &format!("stat {path}"));
        out.split("Inode: ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn flip(img: &Path, off: u64) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(img)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, off).unwrap();
        b[0] ^= 0x5a;
        f.write_all_at(&b, off).unwrap();
    }

    fn patch(img: &Path, off: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
        f.write_all_at(bytes, off).unwrap();
    }

    const TREE: &str = "mkdir -p etc big && echo root:x:0:0 > etc/passwd \
        && for i in $(seq 1 300); do echo $i > big/a-fairly-long-file-name-number-$i; done \
        && truncate -s 400K sparse && for i in $(seq 0 2 40); do printf x | dd of=sparse bs=4096 seek=$i conv=notrunc 2>/dev/null; done";

    #[test]
    fn metadata_csum_image_reads_when_clean() {
        for features in [
            "metadata_csum,64bit",
            "metadata_csum,metadata_csum_seed,^64bit",
        ] {
            let (_t, img) = image(TREE, features);
            // Index the big directory (htree) as e2fsck -D does.
            let _ = Command::new("e2fsck")
                .args(["-fyD"])
                .arg(&img)
                .output()
                .unwrap();
            let fs = open(&img).unwrap();
            assert!(fs.csum_seed.is_some());
            let paths = read_everything(&fs).unwrap();
            assert!(paths.iter().any(|p| p == "etc/passwd"), "{features}");
            assert_eq!(paths.iter().filter(|p| p.starts_with("big/")).count(), 300);
            // The sparse file has more than 4 extents: an extent tree block.
            assert!(
                debugfs(&img, "ex /sparse")
                    .lines()
                    .any(|l| l.trim_start().starts_with("0/ 1")),
                "{features}"
            );
        }
    }

    #[test]
    fn ext4_open_fails_when_superblock_damaged() {
        let (_t, img) = image(TREE, "metadata_csum");
        flip(&img, 1024 + 0x78); // a label byte
        let e = open(&img).unwrap_err().to_string();
        assert!(
            e.contains("superblock checksum mismatch")
                && e.contains(&format!("offset {}", 1024 + 0x3fc)),
            "{e}"
        );
    }

    #[test]
    fn ext4_open_fails_when_group_descriptor_damaged() {
        let (_t, img) = image(TREE, "metadata_csum,64bit");
        flip(&img, 4096 + 0x0c); // free blocks count of group 0
        let e = open(&img).unwrap_err().to_string();
        assert!(
            e.contains("group descriptor 0 checksum mismatch") && e.contains("offset 4096"),
            "{e}"
        );
    }

    #[test]
    fn inode_read_fails_when_inode_damaged() {
        let (_t, img) = image(TREE, "metadata_csum");
        let ino = ino_of(&img, "/etc/passwd");
        let off = inode_offset(&img, ino);
        flip(&img, off + 0x10); // mtime
        let fs = open(&img).unwrap();
        let e = read_everything(&fs).unwrap_err().to_string();
        assert!(
            e.contains(&format!("inode {ino} checksum mismatch"))
                && e.contains(&format!("offset {off}")),
            "{e}"
        );
    }

    #[test]
    fn read_dir_fails_when_directory_block_damaged() {
        let (_t, img) = image(TREE, "metadata_csum");
        let ino = ino_of(&img, "/etc");
        let off = block_offset(&img, "/etc", 0);
        flip(&img, off + 30); // inside the entry of `passwd`
        let fs = open(&img).unwrap();
        let e = read_everything(&fs).unwrap_err().to_string();
        assert!(
            e.contains(&format!("directory inode {ino}: block checksum mismatch"))
                && e.contains(&format!("offset {off}")),
            "{e}"
        );
    }

    #[test]
    fn extents_fail_when_extent_block_damaged() {
        let (_t, img) = image(TREE, "metadata_csum");
        let ex = debugfs(&img, "ex /sparse");
        // Level 0: " 0/ 1   1/  1     0 -    99  1472   100": the index node is block 1472.
        let line = ex
            .lines()
            .find(|l| l.trim_start().starts_with("0/ 1"))
            .unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let dash = fields.iter().position(|f| *f == "-").unwrap();
        let blk: u64 = fields[dash + 2].parse().unwrap();
        flip(&img, blk * 4096 + 14); // the first extent's logical block
        let fs = open(&img).unwrap();
        let e = read_everything(&fs).unwrap_err().to_string();
        assert!(e.contains("extent block checksum mismatch"), "{e}\n{ex}");
    }

    #[test]
    fn ext4_open_refuses_unknown_incompat_features() {
        let (_t, img) = image("true", "^metadata_csum");
        let sb = std::fs::read(&img).unwrap();
        let incompat = le::u32(&sb, 1024 + 0x60);
        patch(
            &img,
            1024 + 0x60,
            &(incompat | 0x1 | 0x4_0000).to_le_bytes(),
        );
        let e = open(&img).unwrap_err().to_string();
        assert!(
            e.contains("compression") && e.contains("unknown 0x40000"),
            "{e}"
        );
    }

    #[test]
    fn read_dir_fails_when_directory_size_is_wrong() {
        for size in [0u64, 100, 8192] {
            let (_t, img) = image(TREE, "metadata_csum");
            let ino = ino_of(&img, "/etc");
            debugfs_w(&img, &format!("sif /etc size {size}"));
            let fs = open(&img).unwrap();
            let e = read_everything(&fs).unwrap_err().to_string();
            assert!(
                e.contains(&format!("directory inode {ino} has size {size}")),
                "{e}"
            );
        }
    }

    #[test]
    fn read_dir_fails_when_entry_name_has_slash_or_dot() {
        for (bad, what) in [
            (&b"../../pw"[..], "a `/`"),
            (b"pw\0abcde", "a NUL byte"),
            (b"..\0\0\0\0\0\0", "a NUL"),
        ] {
            let (_t, img) = image("mkdir d && echo x > d/xxxxxxxx", "^metadata_csum");
            let ino = ino_of(&img, "/d");
            let off = block_offset(&img, "/d", 0);
            let block = {
                use std::os::unix::fs::FileExt;
                let mut b = vec![0u8; 4096];
                std::fs::File::open(&img)
                    .unwrap()
                    .read_exact_at(&mut b, off)
                    .unwrap();
                b
            };
            let at = block.windows(8).position(|w| w == b"xxxxxxxx").unwrap() as u64;
            patch(&img, off + at, bad);
            let fs = open(&img).unwrap();
            let e = read_everything(&fs).unwrap_err().to_string();
            assert!(
                e.contains(&format!("directory inode {ino} has an entry")) && e.contains(what),
                "{e}"
            );
        }
        // `..` as the name of a later entry.
        let (_t, img) = image("mkdir d && echo x > d/xx", "^metadata_csum");
        let off = block_offset(&img, "/d", 0);
        let mut b = vec![0u8; 4096];
        {
            use std::os::unix::fs::FileExt;
            std::fs::File::open(&img)
                .unwrap()
                .read_exact_at(&mut b, off)
                .unwrap();
        }
        let at = b.windows(2).rposition(|w| w == b"xx").unwrap() as u64;
        patch(&img, off + at, b"..");
        let e = read_everything(&open(&img).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`..` out of place"), "{e}");
    }

    #[test]
    fn walk_fails_when_directory_has_duplicate_names() {
        // A directory and a symlink of the same name in one directory.
        let (_t, img) = image(
            "mkdir -p x/aaaaaaaa && ln -s /etc x/bbbbbbbb",
            "^metadata_csum",
        );
        let ino = ino_of(&img, "/x");
        let off = block_offset(&img, "/x", 0);
        let mut b = vec![0u8; 4096];
        {
            use std::os::unix::fs::FileExt;
            std::fs::File::open(&img)
                .unwrap()
                .read_exact_at(&mut b, off)
                .unwrap();
        }
        let at = b.windows(8).position(|w| w == b"bbbbbbbb").unwrap() as u64;
        patch(&img, off + at, b"aaaaaaaa");
        let e = read_everything(&open(&img).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "directory inode {ino} has two entries named `aaaaaaaa`"
            )),
            "{e}"
        );
    }

    #[test]
    fn inode_read_fails_when_file_size_exceeds_ext4_limit() {
        let (_t, img) = image(TREE, "metadata_csum");
        let ino = ino_of(&img, "/etc/passwd");
        debugfs_w(&img, "sif /etc/passwd size 0x7fffffffffffffff");
        let fs = open(&img).unwrap();
        let e = read_everything(&fs).unwrap_err().to_string();
        assert!(
            e.contains(&format!("inode {ino} has size 9223372036854775807")),
            "{e}"
        );
    }

    #[test]
    fn acl_is_converted_to_xattr_format() {
        let mut v = 1u32.to_le_bytes().to_vec();
        v.extend_from_slice(&[1, 0, 6, 0]); // USER_OBJ rw
        v.extend_from_slice(&[2, 0, 4, 0, 0xe8, 3, 0, 0]); // USER 1000 r
        v.extend_from_slice(&[0x20, 0, 0, 0]); // OTHER
        let x = acl_to_xattr(&v).unwrap();
        assert_eq!(x.len(), 4 + 3 * 8);
        assert_eq!(&x[0..4], &2u32.to_le_bytes());
        assert_eq!(&x[4..12], &[1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(&x[12..20], &[2, 0, 4, 0, 0xe8, 3, 0, 0]);
    }

    #[test]
    fn extra_time_decodes_epoch_and_nanoseconds() {
        let t = ts(5, Some((123 << 2) | 1));
        assert_eq!(
            t,
            Timestamp {
                sec: 5 + (1 << 32),
                nsec: 123
            }
        );
    }

    #[test]
    fn ext4_open_fails_when_block_size_field_is_huge() {
        // Found by the ext4 fuzz target: `s_log_block_size` near `u32::MAX`
        // overflowed while the error message was formatted.
        let mut d = vec![0u8; 4096];
        d[1024 + 0x38..1024 + 0x3a].copy_from_slice(&MAGIC.to_le_bytes());
        d[1024 + 0x18..1024 + 0x1c].copy_from_slice(&u32::MAX.to_le_bytes());
        let dev = crate::block::MemDevice::new(d, "m");
        let e = Ext4::open(Box::new(dev)).unwrap_err().to_string();
        assert!(e.contains("block size 2^4294967305 is invalid"), "{e}");
    }

    #[test]
    fn sparse_super_groups() {
        assert!(
            has_superblock(0, true)
                && has_superblock(1, true)
                && has_superblock(9, true)
                && has_superblock(49, true)
        );
        assert!(!has_superblock(2, true) && !has_superblock(10, true));
    }
}
