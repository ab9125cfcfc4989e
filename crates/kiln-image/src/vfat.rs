//! FAT12/16/32 reader (the EFI system partition) with long file names.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::block::{BlockDevice, le};
use crate::error::{Result, corrupt};
use crate::fs::{DirEntry, FileSystem, FileType, Inode, Run, Timestamp};

/// Does `dev` start with a FAT boot sector?
pub fn probe(dev: &dyn BlockDevice) -> bool {
    let mut b = [0u8; 512];
    if dev.size() < 512 || dev.read_at(&mut b, 0).is_err() {
        return false;
    }
    let bps = le::u16(&b, 11);
    b[510] == 0x55
        && b[511] == 0xaa
        && matches!(bps, 512 | 1024 | 2048 | 4096)
        && b[13].is_power_of_two()
        && b[16] >= 1
        && (&b[54..59] == b"FAT12"
            || &b[54..59] == b"FAT16"
            || &b[82..87] == b"FAT32"
            || &b[54..57] == b"FAT")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fat12,
    Fat16,
    Fat32,
}

/// An open FAT filesystem.
pub struct Vfat {
    dev: Box<dyn BlockDevice>,
    what: String,
    kind: Kind,
    cluster_size: u64,
    fat_off: u64,
    data_off: u64,
    clusters: u64,
    root_off: u64,
    root_len: u64,
    root_cluster: u64,
    label: String,
    nodes: Mutex<HashMap<u64, (Inode, u64)>>,
}

fn fat_time(date: u16, time: u16) -> Timestamp {
    let y = 1980 + (date >> 9) as i64;
    let m = ((date >> 5) & 15).clamp(1, 12) as i64;
    let d = (date & 31).max(1) as i64;
    // Days from civil (Howard Hinnant's algorithm).
    let (yy, mm) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs =
        ((time >> 11) as i64) * 3600 + (((time >> 5) & 63) as i64) * 60 + ((time & 31) as i64) * 2;
    Timestamp {
        sec: days * 86400 + secs,
        nsec: 0,
    }
}

impl Vfat {
    /// Open the FAT filesystem on `dev`.
    pub fn open(dev: Box<dyn BlockDevice>) -> Result<Self> {
        let what = dev.describe();
        let mut b = [0u8; 512];
        dev.read_at(&mut b, 0)?;
        let bps = le::u16(&b, 11) as u64;
        let spc = b[13] as u64;
        let reserved = le::u16(&b, 14) as u64;
        let fats = b[16] as u64;
        let root_entries = le::u16(&b, 17) as u64;
        let total = if le::u16(&b, 19) != 0 {
            le::u16(&b, 19) as u64
        } else {
            le::u32(&b, 32) as u64
        };
        let fat_size = if le::u16(&b, 22) != 0 {
            le::u16(&b, 22) as u64
        } else {
            le::u32(&b, 36) as u64
        };
        if !matches!(bps, 512 | 1024 | 2048 | 4096)
            || spc == 0
            || !spc.is_power_of_two()
            || fats == 0
            || fat_size == 0
        {
            return Err(corrupt(&what, 11, "FAT boot sector has invalid geometry"));
        }
        let root_sectors = (root_entries * 32).div_ceil(bps);
        let data_sector = reserved + fats * fat_size + root_sectors;
        if total <= data_sector {
            return Err(corrupt(&what, 19, "FAT has no data area"));
        }
        let clusters = (total - data_sector) / spc;
        let kind = if clusters < 4085 {
            Kind::Fat12
        } else if clusters < 65525 {
            Kind::Fat16
        } else {
            Kind::Fat32
        };
        let label_at = if kind == Kind::Fat32 { 71 } else { 43 };
        let label = String::from_utf8_lossy(&b[label_at..label_at + 11])
            .trim_end()
            .to_owned();
        Ok(Self {
            dev,
            what,
            kind,
            cluster_size: bps * spc,
            fat_off: reserved * bps,
            data_off: data_sector * bps,
            clusters,
            root_off: (reserved + fats * fat_size) * bps,
            root_len: root_sectors * bps,
            root_cluster: if kind == Kind::Fat32 {
                le::u32(&b, 44) as u64
            } else {
                0
            },
            label,
            nodes: Mutex::new(HashMap::new()),
        })
    }

    fn next_cluster(&self, c: u64) -> Result<Option<u64>> {
        let (off, v) = match self.kind {
            Kind::Fat12 => {
                let off = self.fat_off + c + c / 2;
                let mut x = [0u8; 2];
                self.dev.read_at(&mut x, off)?;
                let v = u16::from_le_bytes(x) as u64;
                (off, if c & 1 == 1 { v >> 4 } else { v & 0xfff })
            }
            Kind::Fat16 => {
                let off = self.fat_off + c * 2;
                let mut x = [0u8; 2];
                self.dev.read_at(&mut x, off)?;
                (off, u16::from_le_bytes(x) as u64)
            }
            Kind::Fat32 => {
                let off = self.fat_off + c * 4;
                let mut x = [0u8; 4];
                self.dev.read_at(&mut x, off)?;
                (off, (u32::from_le_bytes(x) & 0x0fff_ffff) as u64)
            }
        };
        let eoc = match self.kind {
            Kind::Fat12 => 0xff8,
            Kind::Fat16 => 0xfff8,
            Kind::Fat32 => 0x0fff_fff8,
        };
        if v >= eoc || v == 0 {
            return Ok(None);
        }
        if v < 2 || v >= self.clusters + 2 {
            return Err(corrupt(
                &self.what,
                off,
                format!("FAT entry for cluster {c} points to invalid cluster {v}"),
            ));
        }
        Ok(Some(v))
    }

    fn chain(&self, first: u64, max_len: Option<u64>) -> Result<Vec<Run>> {
        let mut runs: Vec<Run> = vec![];
        let mut c = first;
        let mut logical = 0u64;
        let mut steps = 0u64;
        if first < 2 {
            return Ok(runs);
        }
        loop {
            if c >= self.clusters + 2 {
                return Err(corrupt(&self.what, 0, format!("cluster {c} out of range")));
            }
            let physical = self.data_off + (c - 2) * self.cluster_size;
            let mut len = self.cluster_size;
            if let Some(m) = max_len {
                if logical >= m {
                    break;
                }
                len = len.min(m - logical);
            }
            match runs.last_mut() {
                Some(Run::Data {
                    len: pl,
                    physical: pp,
                    ..
                }) if *pp + *pl == physical => *pl += len,
                _ => runs.push(Run::Data {
                    logical,
                    len,
                    physical,
                }),
            }
            logical += len;
            steps += 1;
            if steps > self.clusters {
                return Err(corrupt(&self.what, 0, "cluster chain loops"));
            }
            match self.next_cluster(c)? {
                Some(n) => c = n,
                None => break,
            }
        }
        Ok(runs)
    }

    fn dir_bytes(&self, ino: u64) -> Result<(Vec<u8>, Vec<Run>)> {
        let runs = if ino == 0 && self.kind != Kind::Fat32 {
            vec![Run::Data {
                logical: 0,
                len: self.root_len,
                physical: self.root_off,
            }]
        } else {
            let first = if ino == 0 {
                self.root_cluster
            } else {
                self.nodes
                    .lock()
                    .ok()
                    .and_then(|n| n.get(&ino).map(|x| x.1))
                    .unwrap_or(0)
            };
            self.chain(first, None)?
        };
        let total: u64 = runs.iter().map(Run::len).sum();
        if total > 64 << 20 {
            return Err(corrupt(&self.what, 0, "directory larger than 64 MiB"));
        }
        let mut buf = vec![0u8; total as usize];
        self.read_file_at(&runs, &mut buf, 0)?;
        Ok((buf, runs))
    }
}

/// Device offset of byte `pos` of a run list (a synthetic inode number).
fn physical_of(runs: &[Run], pos: u64) -> u64 {
    for r in runs {
        if let Run::Data {
            logical,
            len,
            physical,
        } = r
            && pos >= *logical
            && pos < logical + len
        {
            return physical + (pos - logical);
        }
    }
    pos
}

impl FileSystem for Vfat {
    fn describe(&self) -> String {
        format!("{} (vfat)", self.what)
    }
    fn label(&self) -> String {
        self.label.clone()
    }
    fn root_ino(&self) -> u64 {
        0
    }
    fn inode(&self, ino: u64) -> Result<Inode> {
        if ino == 0 {
            return Ok(Inode {
                ino: 0,
                file_type: FileType::Directory,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                nlink: 2,
                atime: Timestamp::default(),
                mtime: Timestamp::default(),
                ctime: Timestamp::default(),
                rdev: (0, 0),
                link_target: vec![],
                xattrs: vec![],
            });
        }
        self.nodes
            .lock()
            .ok()
            .and_then(|n| n.get(&ino).map(|x| x.0.clone()))
            .ok_or_else(|| corrupt(&self.what, ino, "unknown FAT directory entry"))
    }

    fn read_dir(&self, dir: &Inode) -> Result<Vec<DirEntry>> {
        let (buf, runs) = self.dir_bytes(dir.ino)?;
        let mut out = vec![];
        let mut lfn: Vec<(u8, Vec<u16>)> = vec![];
        let mut new_nodes = vec![];
        for (i, e) in buf.chunks_exact(32).enumerate() {
            if e[0] == 0 {
                break;
            }
            if e[0] == 0xe5 {
                lfn.clear();
                continue;
            }
            let attr = e[11];
            if attr == 0x0f {
                let mut part = vec![];
                for r in [1..11, 14..26, 28..32] {
                    part.extend(
                        e[r].chunks_exact(2)
                            .map(|c| u16::from_le_bytes([c[0], c[1]])),
                    );
                }
                lfn.push((e[0] & 0x1f, part));
                continue;
            }
            if attr & 0x08 != 0 {
                lfn.clear();
                continue;
            }
            let name = if lfn.is_empty() {
                let lower_base = e[12] & 0x08 != 0;
                let lower_ext = e[12] & 0x10 != 0;
                let mut base_name: Vec<u8> = e[0..8].to_vec();
                while base_name.last() == Some(&b' ') {
                    base_name.pop();
                }
                if base_name.first() == Some(&0x05) {
                    base_name[0] = 0xe5;
                }
                let mut ext: Vec<u8> = e[8..11].to_vec();
                while ext.last() == Some(&b' ') {
                    ext.pop();
                }
                if lower_base {
                    base_name.make_ascii_lowercase();
                }
                if lower_ext {
                    ext.make_ascii_lowercase();
                }
                let mut n = base_name;
                if !ext.is_empty() {
                    n.push(b'.');
                    n.extend(ext);
                }
                n
            } else {
                lfn.sort_by_key(|(s, _)| *s);
                let units: Vec<u16> = lfn
                    .iter()
                    .flat_map(|(_, p)| p.iter().copied())
                    .take_while(|&u| u != 0 && u != 0xffff)
                    .collect();
                lfn.clear();
                String::from_utf16_lossy(&units).into_bytes()
            };
            if name == b"." || name == b".." {
                continue;
            }
            let ino = physical_of(&runs, i as u64 * 32) + 1;
            let cluster = ((le::u16(e, 20) as u64) << 16) | le::u16(e, 26) as u64;
            let is_dir = attr & 0x10 != 0;
            let mtime = fat_time(le::u16(e, 24), le::u16(e, 22));
            let inode = Inode {
                ino,
                file_type: if is_dir {
                    FileType::Directory
                } else {
                    FileType::Regular
                },
                mode: if is_dir {
                    0o755
                } else if attr & 1 != 0 {
                    0o444
                } else {
                    0o644
                },
                uid: 0,
                gid: 0,
                size: if is_dir { 0 } else { le::u32(e, 28) as u64 },
                nlink: 1,
                atime: fat_time(le::u16(e, 18), 0),
                mtime,
                ctime: fat_time(le::u16(e, 16), le::u16(e, 14)),
                rdev: (0, 0),
                link_target: vec![],
                xattrs: vec![],
            };
            new_nodes.push((ino, inode, cluster));
            out.push(DirEntry { name, ino });
        }
        if let Ok(mut n) = self.nodes.lock() {
            for (ino, inode, cluster) in new_nodes {
                n.insert(ino, (inode, cluster));
            }
        }
        Ok(out)
    }

    fn runs(&self, file: &Inode) -> Result<Vec<Run>> {
        let first = self
            .nodes
            .lock()
            .ok()
            .and_then(|n| n.get(&file.ino).map(|x| x.1))
            .unwrap_or(0);
        if file.size == 0 {
            return Ok(vec![]);
        }
        let runs = self.chain(first, Some(file.size))?;
        let got: u64 = runs.iter().map(Run::len).sum();
        if got < file.size {
            return Err(corrupt(
                &self.what,
                0,
                format!(
                    "cluster chain of a {}-byte file covers only {got} bytes",
                    file.size
                ),
            ));
        }
        Ok(runs)
    }

    fn device(&self) -> &dyn BlockDevice {
        &*self.dev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_dates_convert_to_unix_time() {
        // 2020-01-02 03:04:06
        let date = ((2020 - 1980) << 9) | (1 << 5) | 2;
        let time = (3 << 11) | (4 << 5) | 3;
        assert_eq!(fat_time(date, time).sec, 1_577_934_246);
    }
}
