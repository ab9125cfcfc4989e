//! GPT and MBR partition tables.

use crate::block::{BlockDevice, le};
use crate::error::{ImageError, Result, corrupt};

/// Which table a partition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// GUID partition table.
    Gpt,
    /// MS-DOS table (primary and logical partitions).
    Mbr,
    /// No table: the whole device is one filesystem.
    None,
}

/// A partition (1-based `number`, as Linux numbers them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Partition number (`sda2` → 2).
    pub number: u32,
    /// Byte offset on the disk.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    /// GPT type GUID (lowercase, dashed) or MBR type byte (`0x83`).
    pub type_id: String,
    /// GPT partition name (empty for MBR).
    pub name: String,
    /// GPT unique partition GUID (empty for MBR).
    pub uuid: String,
}

/// The EFI system partition's GPT type.
pub const ESP_GUID: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

impl Partition {
    /// Is this an EFI system partition (GPT type or MBR 0xef)?
    pub fn is_esp(&self) -> bool {
        self.type_id == ESP_GUID || self.type_id == "0xef"
    }
}

/// A parsed partition table.
#[derive(Debug, Clone)]
pub struct PartitionTable {
    /// GPT, MBR, or none.
    pub kind: TableKind,
    /// Partitions in table order.
    pub partitions: Vec<Partition>,
    /// Notes (backup GPT used, …).
    pub notes: Vec<String>,
}

fn guid(b: &[u8]) -> String {
    if b.len() < 16 {
        return String::new();
    }
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        le::u32(b, 0),
        le::u16(b, 4),
        le::u16(b, 6),
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// Read the partition table of `dev` (GPT first, then MBR, else none).
pub fn read_table(dev: &dyn BlockDevice) -> Result<PartitionTable> {
    let what = dev.describe();
    if dev.size() < 512 {
        return Ok(PartitionTable {
            kind: TableKind::None,
            partitions: vec![],
            notes: vec![],
        });
    }
    let mut mbr = [0u8; 512];
    dev.read_at(&mut mbr, 0)?;
    let has_sig = mbr[510] == 0x55 && mbr[511] == 0xaa;
    let protective = has_sig && (0..4).any(|i| mbr[446 + i * 16 + 4] == 0xee);
    // GPT: try 512-byte then 4096-byte sectors.
    for sector in [512u64, 4096] {
        if dev.size() < sector * 2 {
            continue;
        }
        let mut hdr = vec![0u8; 512];
        dev.read_at(&mut hdr, sector)?;
        if &hdr[0..8] == b"EFI PART" {
            match parse_gpt(dev, &hdr, sector, sector) {
                Ok(mut t) => {
                    return Ok({
                        t.kind = TableKind::Gpt;
                        t
                    });
                }
                Err(primary_err) => {
                    // Try the backup header at the last sector.
                    let last = (dev.size() / sector - 1) * sector;
                    let mut b = vec![0u8; 512];
                    dev.read_at(&mut b, last)?;
                    if &b[0..8] == b"EFI PART"
                        && let Ok(mut t) = parse_gpt(dev, &b, sector, last)
                    {
                        t.notes.push(format!(
                            "primary GPT is damaged ({primary_err}); the backup GPT was used"
                        ));
                        return Ok(t);
                    }
                    return Err(primary_err);
                }
            }
        }
    }
    if protective {
        return Err(corrupt(
            &what,
            512,
            "protective MBR present but no valid GPT header (`EFI PART`) found",
        ));
    }
    if has_sig && let Some(t) = parse_mbr(dev, &mbr)? {
        return Ok(t);
    }
    Ok(PartitionTable {
        kind: TableKind::None,
        partitions: vec![],
        notes: vec![],
    })
}

fn parse_gpt(dev: &dyn BlockDevice, hdr: &[u8], sector: u64, at: u64) -> Result<PartitionTable> {
    let what = dev.describe();
    let hsize = le::u32(hdr, 12) as usize;
    if !(92..=512).contains(&hsize) {
        return Err(corrupt(
            &what,
            at,
            format!("GPT header size {hsize} invalid"),
        ));
    }
    let want = le::u32(hdr, 16);
    let mut h = hdr[..hsize].to_vec();
    h[16..20].fill(0);
    let got = crc32fast::hash(&h);
    if got != want {
        return Err(corrupt(
            &what,
            at,
            format!("GPT header CRC mismatch (stored {want:#010x}, computed {got:#010x})"),
        ));
    }
    let entries_lba = le::u64(hdr, 72);
    let n = le::u32(hdr, 80) as u64;
    let esize = le::u32(hdr, 84) as u64;
    if !(128..=4096).contains(&esize) || n > 65536 {
        return Err(corrupt(
            &what,
            at,
            format!("GPT entry array of {n} × {esize} bytes is invalid"),
        ));
    }
    let off = entries_lba
        .checked_mul(sector)
        .ok_or_else(|| corrupt(&what, at, "GPT entry LBA overflows"))?;
    let mut arr = vec![0u8; (n * esize) as usize];
    dev.read_at(&mut arr, off)
        .map_err(|_| corrupt(&what, off, "GPT entry array beyond the end of the disk"))?;
    let want = le::u32(hdr, 88);
    let got = crc32fast::hash(&arr);
    if got != want {
        return Err(corrupt(
            &what,
            off,
            format!("GPT entry array CRC mismatch (stored {want:#010x}, computed {got:#010x})"),
        ));
    }
    let first_usable = le::u64(hdr, 40);
    let last_usable = le::u64(hdr, 48);
    let disk_sectors = dev.size() / sector;
    let mut partitions = vec![];
    let mut spans: Vec<(u64, u64, u32)> = vec![];
    for (i, e) in arr.chunks_exact(esize as usize).enumerate() {
        if e[0..16].iter().all(|&b| b == 0) {
            continue;
        }
        let first = le::u64(e, 32);
        let last = le::u64(e, 40);
        let eoff = off + i as u64 * esize;
        if last < first {
            return Err(corrupt(
                &what,
                eoff,
                format!("GPT entry {} ends before it starts", i + 1),
            ));
        }
        if first < first_usable || last > last_usable || last >= disk_sectors {
            return Err(corrupt(
                &what,
                eoff,
                format!(
                    "GPT partition {} (sectors {first}..={last}) lies outside the usable sectors {first_usable}..={last_usable} of a disk of {disk_sectors} sectors",
                    i + 1
                ),
            ));
        }
        spans.push((first, last, i as u32 + 1));
        let name: Vec<u16> = e[56..128.min(e.len())]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&c| c != 0)
            .collect();
        partitions.push(Partition {
            number: i as u32 + 1,
            start: first.saturating_mul(sector),
            size: (last - first + 1).saturating_mul(sector),
            type_id: guid(&e[0..16]),
            name: String::from_utf16_lossy(&name),
            uuid: guid(&e[16..32]),
        });
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        let ((_, a_last, a), (b_first, _, b)) = (w[0], w[1]);
        if b_first <= a_last {
            return Err(corrupt(
                &what,
                off,
                format!("GPT partitions {a} and {b} overlap (sector {b_first})"),
            ));
        }
    }
    Ok(PartitionTable {
        kind: TableKind::Gpt,
        partitions,
        notes: vec![],
    })
}

fn parse_mbr(dev: &dyn BlockDevice, mbr: &[u8]) -> Result<Option<PartitionTable>> {
    let mut partitions = vec![];
    let mut extended = None;
    for i in 0..4 {
        let e = &mbr[446 + i * 16..446 + (i + 1) * 16];
        let status = e[0];
        let ty = e[4];
        let start = le::u32(e, 8) as u64;
        let count = le::u32(e, 12) as u64;
        if status != 0 && status != 0x80 {
            // Not a partition table (a filesystem boot sector, say).
            return Ok(None);
        }
        if ty == 0 || count == 0 {
            continue;
        }
        if matches!(ty, 0x05 | 0x0f | 0x85) {
            extended = Some(start);
            continue;
        }
        partitions.push(Partition {
            number: i as u32 + 1,
            start: start * 512,
            size: count * 512,
            type_id: format!("{ty:#04x}"),
            name: String::new(),
            uuid: String::new(),
        });
    }
    if let Some(ext) = extended {
        let mut ebr_lba = ext;
        let mut number = 5;
        for _ in 0..128 {
            let mut ebr = [0u8; 512];
            if dev.read_at(&mut ebr, ebr_lba * 512).is_err() || ebr[510] != 0x55 || ebr[511] != 0xaa
            {
                return Err(ImageError::Corrupt {
                    what: dev.describe(),
                    offset: ebr_lba * 512,
                    reason: "extended boot record missing or unreadable".into(),
                });
            }
            let e = &ebr[446..462];
            let (ty, start, count) = (e[4], le::u32(e, 8) as u64, le::u32(e, 12) as u64);
            if ty != 0 && count != 0 {
                partitions.push(Partition {
                    number,
                    start: (ebr_lba + start) * 512,
                    size: count * 512,
                    type_id: format!("{ty:#04x}"),
                    name: String::new(),
                    uuid: String::new(),
                });
                number += 1;
            }
            let next = &ebr[462..478];
            let nstart = le::u32(next, 8) as u64;
            if next[4] == 0 || nstart == 0 {
                break;
            }
            ebr_lba = ext + nstart;
        }
    }
    if partitions.is_empty() {
        return Ok(None);
    }
    Ok(Some(PartitionTable {
        kind: TableKind::Mbr,
        partitions,
        notes: vec![],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::MemDevice;

    #[test]
    fn mbr_primary_partitions_are_listed() {
        let mut d = vec![0u8; 1 << 20];
        d[510] = 0x55;
        d[511] = 0xaa;
        let e = &mut d[446..462];
        e[4] = 0x83;
        e[8..12].copy_from_slice(&2048u32.to_le_bytes());
        e[12..16].copy_from_slice(&100u32.to_le_bytes());
        let t = read_table(&MemDevice::new(d, "m")).unwrap();
        assert_eq!(t.kind, TableKind::Mbr);
        assert_eq!(t.partitions[0].start, 2048 * 512);
        assert_eq!(t.partitions[0].type_id, "0x83");
    }

    /// A 20 MiB disk made by `sgdisk` with partitions 1 and 2.
    fn gpt_disk() -> (tempfile::TempDir, std::path::PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("disk.img");
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "truncate -s 20M {d} && sgdisk -o -n 1:2048:+4M -t 1:ef00 -n 2:0:0 -t 2:8300 {d} >/dev/null",
                d = d.display()
            ))
            .status()
            .unwrap();
        assert!(st.success());
        (t, d)
    }

    /// Change the entries of both GPTs with `edit` and fix both CRCs, as a
    /// careless tool would.
    fn rewrite_gpt(d: &std::path::Path, edit: impl Fn(&mut [u8])) {
        let mut b = std::fs::read(d).unwrap();
        let last = b.len() - 512;
        for h in [512usize, last] {
            let entries = le::u64(&b, h + 72) as usize * 512;
            let n = le::u32(&b, h + 80) as usize * le::u32(&b, h + 84) as usize;
            edit(&mut b[entries..entries + n]);
            let c = crc32fast::hash(&b[entries..entries + n]);
            b[h + 88..h + 92].copy_from_slice(&c.to_le_bytes());
            b[h + 16..h + 20].fill(0);
            let c = crc32fast::hash(&b[h..h + 92]);
            b[h + 16..h + 20].copy_from_slice(&c.to_le_bytes());
        }
        std::fs::write(d, b).unwrap();
    }

    fn table(d: &std::path::Path) -> Result<PartitionTable> {
        read_table(&crate::block::FileDevice::open(d).unwrap())
    }

    #[test]
    fn gpt_is_refused_when_partition_passes_disk_end() {
        let (_t, d) = gpt_disk();
        assert_eq!(table(&d).unwrap().partitions.len(), 2);
        // Partition 2 ends past the last usable sector and the disk.
        rewrite_gpt(&d, |e| {
            e[128 + 40..128 + 48].copy_from_slice(&50_000u64.to_le_bytes())
        });
        let e = table(&d).unwrap_err().to_string();
        assert!(
            e.contains("GPT partition 2 (sectors") && e.contains("outside"),
            "{e}"
        );
    }

    #[test]
    fn gpt_is_refused_when_partitions_overlap() {
        let (_t, d) = gpt_disk();
        // Partition 2 starts inside partition 1.
        rewrite_gpt(&d, |e| {
            e[128 + 32..128 + 40].copy_from_slice(&4096u64.to_le_bytes())
        });
        let e = table(&d).unwrap_err().to_string();
        assert!(e.contains("GPT partitions 1 and 2 overlap"), "{e}");
    }

    #[test]
    fn gpt_is_refused_when_crcs_do_not_match() {
        let (_t, d) = gpt_disk();
        let mut b = std::fs::read(&d).unwrap();
        let last = b.len() - 512;
        b[1024 + 56] ^= 1; // a name byte of entry 1 in the primary array
        b[last + 56] ^= 1; // and the backup header's own bytes
        std::fs::write(&d, b).unwrap();
        let e = table(&d).unwrap_err().to_string();
        assert!(e.contains("GPT entry array CRC mismatch"), "{e}");
    }

    #[test]
    fn corrupt_gpt_is_an_error_not_a_panic() {
        let mut d = vec![0u8; 1 << 20];
        d[510] = 0x55;
        d[511] = 0xaa;
        d[446 + 4] = 0xee;
        d[512..520].copy_from_slice(b"EFI PART");
        d[524..528].copy_from_slice(&92u32.to_le_bytes());
        let e = read_table(&MemDevice::new(d, "m")).unwrap_err();
        assert!(e.to_string().contains("CRC"), "{e}");
    }
}
