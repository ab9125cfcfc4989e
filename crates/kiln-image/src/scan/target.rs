//! What is being scanned, found by its content (magic bytes), never by its
//! name:
//!
//! - qcow2 → the qcow2 reader, then as a disk;
//! - gzip / xz / zstd → peek into the stream: a tarball is scanned as one,
//!   anything else is a compressed raw disk (a MAAS `.dd.gz`/`.ddxz`),
//!   decompressed, streaming, to an unlinked file in the system temp
//!   directory (zero blocks become holes), then scanned as a disk;
//! - uncompressed tar (`ustar` at byte 257) → as a tarball;
//! - anything else → as a raw disk: a partition table, or a bare ext4/vfat
//!   filesystem at offset 0.
//!
//! A disk must be read whole for a verdict: an ext4 or vfat partition is
//! walked; a partition whose filesystem kiln cannot read (xfs, btrfs, LUKS,
//! LVM), a partition typed as a filesystem that holds none, a partition
//! past the end of the image, or a disk with no filesystem at all is an
//! error, never "clean". Other partitions (BIOS boot, swap, unknown
//! types) have their raw bytes scanned by the content rules.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{Origin, ScanConfig, ScanError, ScanReport, Scanner};
use crate::block::BlockDevice;
use crate::error::ImageError;
use crate::image::{Disk, FsKind, ImageFormat, RootSelector};
use crate::partition::{ESP_GUID, TableKind};

/// The kind of artifact at `path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// A qcow2 image.
    Qcow2,
    /// gzip'd stream (tarball or dd).
    Gzip,
    /// xz stream.
    Xz,
    /// zstd stream.
    Zstd,
    /// Uncompressed tar.
    Tar,
    /// Anything else (raw disk).
    Raw,
}

impl ArtifactKind {
    fn name(self) -> &'static str {
        match self {
            ArtifactKind::Qcow2 => "qcow2",
            ArtifactKind::Gzip => "gzip",
            ArtifactKind::Xz => "xz",
            ArtifactKind::Zstd => "zstd",
            ArtifactKind::Tar => "tar",
            ArtifactKind::Raw => "raw",
        }
    }
}

/// Sniff the kind of an artifact from its first bytes.
pub fn sniff(head: &[u8]) -> ArtifactKind {
    if head.starts_with(b"QFI\xfb") {
        ArtifactKind::Qcow2
    } else if head.starts_with(&[0x1f, 0x8b]) {
        ArtifactKind::Gzip
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        ArtifactKind::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        ArtifactKind::Zstd
    } else if is_tar(head) {
        ArtifactKind::Tar
    } else {
        ArtifactKind::Raw
    }
}

fn is_tar(head: &[u8]) -> bool {
    head.len() >= 263 && &head[257..262] == b"ustar"
}

/// The GPT type of a BIOS boot partition (GRUB's core image, no filesystem).
const BIOS_BOOT_GUID: &str = "21686148-6449-6e6f-744e-656564454649";
/// Partition types that promise a filesystem.
const FS_TYPES: &[&str] = &[
    "0fc63daf-8483-4772-8e79-3d69d8477de4", // Linux filesystem
    "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", // Linux x86-64 root
    "b921b045-1df0-41c3-af44-4c6f280d3fae", // Linux arm64 root
    "933ac7e1-2eb4-4f13-b844-0e14e2aef915", // Linux /home
    "3b8f8425-20e0-4f3b-907f-1a25a76f98e8", // Linux /srv
    "bc13c2ff-59e6-4262-a352-b275fd6f7172", // Linux extended boot
    ESP_GUID,
    "0x83",
    "0xef",
    "0x0b",
    "0x0c",
    "0x0e",
];

/// Scan a disk image (qcow2 or raw: every ext4 and vfat partition, or a
/// bare filesystem).
pub fn scan_image(path: &Path, cfg: &ScanConfig) -> Result<ScanReport, ScanError> {
    let disk = Disk::open(path)?;
    scan_disk(&disk, &path.display().to_string(), cfg)
}

fn unreadable(name: &str, reason: String) -> ScanError {
    ScanError::Unreadable {
        path: name.to_owned(),
        reason,
    }
}

fn scan_disk(disk: &Disk, name: &str, cfg: &ScanConfig) -> Result<ScanReport, ScanError> {
    let size = disk.device().size();
    if size == 0 {
        return Err(unreadable(name, "empty (0 bytes): nothing to scan".into()));
    }
    let mut s = Scanner::new(cfg)?;
    for n in disk.notes() {
        s.note(n.clone());
    }
    let bare = disk.table().kind == TableKind::None;
    let root = if bare {
        Some(0)
    } else {
        disk.find_root(&RootSelector::Auto).ok()
    };
    let parts = disk.partitions();
    if parts.is_empty() {
        return Err(unreadable(
            name,
            format!(
                "the {:?} partition table lists no partitions: nothing could be read",
                disk.table().kind
            ),
        ));
    }
    let mut filesystems = 0;
    for p in &parts {
        if p.start.saturating_add(p.size) > size {
            return Err(unreadable(
                name,
                format!(
                    "partition {} ends at byte {} but the disk is {size} bytes (truncated?): it cannot be read whole",
                    p.number,
                    p.start.saturating_add(p.size)
                ),
            ));
        }
        let kind = disk.fs_kind(p.number)?;
        let prefix = if Some(p.number) == root {
            String::new()
        } else {
            format!("p{}", p.number)
        };
        match kind {
            FsKind::Ext4 | FsKind::Vfat => {
                let fs = disk.open_fs(p.number)?;
                for n in fs.notes() {
                    s.note(n);
                }
                s.scan_fs(&*fs, &prefix)?;
                filesystems += 1;
            }
            FsKind::Xfs | FsKind::Btrfs | FsKind::Luks | FsKind::Lvm => {
                return Err(unreadable(
                    name,
                    format!(
                        "{} holds {}, which kiln cannot read yet (it reads ext2/3/4 and vfat): the scan would be partial",
                        where_(bare, p.number),
                        kind.name()
                    ),
                ));
            }
            FsKind::Swap | FsKind::Unknown => {
                if bare {
                    return Err(unreadable(
                        name,
                        format!(
                            "no partition table and no filesystem kiln reads (ext2/3/4, vfat) at offset 0 ({size} bytes{}): not a disk image kiln can scan, or its superblock is damaged",
                            if ext4_backup_superblock(&*disk.device()) {
                                "; an ext4 backup superblock exists, so the primary one is damaged"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                if kind == FsKind::Unknown && FS_TYPES.contains(&p.type_id.as_str()) {
                    return Err(unreadable(
                        name,
                        format!(
                            "partition {} is typed `{}` (a filesystem) but holds no filesystem kiln recognises (damaged superblock?)",
                            p.number, p.type_id
                        ),
                    ));
                }
                let what = if p.type_id == BIOS_BOOT_GUID {
                    "BIOS boot".to_owned()
                } else {
                    format!("{}, type {}", kind.name(), p.type_id)
                };
                s.note(format!(
                    "partition {} ({what}, {} bytes): no filesystem; its raw bytes were scanned",
                    p.number, p.size
                ));
                let dev = disk.partition_device(p.number)?;
                s.raw(&format!("p{}", p.number), &*dev)?;
            }
        }
    }
    if filesystems == 0 {
        return Err(unreadable(
            name,
            format!(
                "none of its {} partition(s) holds a filesystem kiln reads (ext2/3/4, vfat): nothing inside could be read",
                parts.len()
            ),
        ));
    }
    Ok(s.finish())
}

fn where_(bare: bool, n: u32) -> String {
    if bare {
        "the disk (no partition table)".into()
    } else {
        format!("partition {n}")
    }
}

/// An ext4 backup superblock in block group 1 (1 KiB or 4 KiB blocks).
fn ext4_backup_superblock(dev: &dyn BlockDevice) -> bool {
    [8193u64 * 1024, 32768 * 4096, 16384 * 2048]
        .iter()
        .any(|&at| {
            let mut m = [0u8; 2];
            dev.size() >= at + 58 + 2 && dev.read_at(&mut m, at + 56).is_ok() && m == [0x53, 0xef]
        })
}

impl Scanner {
    /// Scan the raw bytes of `dev` with the content rules (a partition
    /// without a filesystem).
    fn raw(&mut self, path: &str, dev: &dyn BlockDevice) -> Result<(), ScanError> {
        const STEP: u64 = 1 << 20;
        let size = dev.size();
        self.content(path, Origin::File, &mut |sink| {
            let mut buf = vec![0u8; STEP as usize];
            let mut at = 0u64;
            while at < size {
                let n = (size - at).min(STEP) as usize;
                dev.read_direct(&mut buf[..n], at)?;
                sink(&buf[..n]);
                at += n as u64;
            }
            Ok(())
        })
    }
}

fn open(path: &Path) -> Result<File, ScanError> {
    File::open(path).map_err(|source| ScanError::Open {
        path: path.display().to_string(),
        source,
    })
}

fn decoder<'a>(
    kind: ArtifactKind,
    f: impl Read + 'a,
    name: &str,
) -> Result<Box<dyn Read + 'a>, ScanError> {
    Ok(match kind {
        ArtifactKind::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        ArtifactKind::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(f)),
        ArtifactKind::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(BufReader::new(f)).map_err(|source| {
                ScanError::Decompress {
                    path: name.to_owned(),
                    format: "zstd",
                    offset: 0,
                    source,
                }
            })?,
        ),
        _ => Box::new(f),
    })
}

/// Scan a tarball (plain, gzip incl. multi-member, xz, zstd).
pub fn scan_tarball(path: &Path, cfg: &ScanConfig) -> Result<ScanReport, ScanError> {
    let name = path.display().to_string();
    let head = head_of(path, 512)?;
    let mut s = Scanner::new(cfg)?;
    let f = BufReader::with_capacity(1 << 20, open(path)?);
    s.scan_tar(&name, decoder(sniff(&head), f, &name)?)?;
    Ok(s.finish())
}

fn head_of(path: &Path, n: usize) -> Result<Vec<u8>, ScanError> {
    let mut head = vec![0u8; n];
    let got = read_up_to(&mut open(path)?, &mut head).map_err(|source| ScanError::Open {
        path: path.display().to_string(),
        source,
    })?;
    head.truncate(got);
    Ok(head)
}

/// Scan an artifact of any supported kind, found by its content: a disk
/// image (qcow2, raw, bare filesystem), a compressed raw disk (gzip, xz,
/// zstd) or a tarball (plain, gzip, xz, zstd).
pub fn scan_path(path: &Path, cfg: &ScanConfig) -> Result<ScanReport, ScanError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| ScanError::Open {
        path: name.clone(),
        source,
    })?;
    if meta.is_dir() {
        return Err(unreadable(
            &name,
            "is a directory, not an image or a tarball".into(),
        ));
    }
    let head = head_of(path, 512)?;
    if head.is_empty() {
        return Err(unreadable(&name, "empty (0 bytes): nothing to scan".into()));
    }
    match sniff(&head) {
        ArtifactKind::Qcow2 | ArtifactKind::Raw => scan_image(path, cfg),
        ArtifactKind::Tar => scan_tarball(path, cfg),
        kind => {
            // Peek at the decompressed start: a tarball, or a raw disk.
            let mut inner = vec![0u8; 512];
            let got = read_up_to(
                &mut decoder(kind, BufReader::new(open(path)?), &name)?,
                &mut inner,
            )
            .map_err(|source| ScanError::Decompress {
                path: name.clone(),
                format: kind.name(),
                offset: 0,
                source,
            })?;
            inner.truncate(got);
            if is_tar(&inner) {
                scan_tarball(path, cfg)
            } else {
                scan_compressed_disk(path, kind, cfg)
            }
        }
    }
}

/// A decompressed disk in an unlinked temporary file.
struct TempDisk {
    file: File,
    size: u64,
    name: String,
}

impl BlockDevice for TempDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> crate::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.size)
        {
            return Err(ImageError::OutOfBounds {
                what: self.name.clone(),
                offset,
                len: buf.len() as u64,
                size: self.size,
            });
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| ImageError::Read {
                what: self.name.clone(),
                offset,
                len: buf.len() as u64,
                source,
            })
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Decompress `path` to an unlinked temporary file (all-zero blocks left
/// as holes) and scan it as a raw disk.
fn scan_compressed_disk(
    path: &Path,
    kind: ArtifactKind,
    cfg: &ScanConfig,
) -> Result<ScanReport, ScanError> {
    const BLOCK: usize = 64 << 10;
    let name = path.display().to_string();
    let dir = std::env::temp_dir();
    let temp = |source| ScanError::Temp {
        path: name.clone(),
        dir: dir.display().to_string(),
        source,
    };
    let mut file = tempfile::tempfile_in(&dir).map_err(temp)?;
    let mut dec = decoder(kind, BufReader::with_capacity(1 << 20, open(path)?), &name)?;
    let mut buf = vec![0u8; BLOCK];
    let mut size = 0u64;
    loop {
        let n = match read_up_to(&mut dec, &mut buf) {
            Ok(n) => n,
            Err(source) => {
                return Err(ScanError::Decompress {
                    path: name.clone(),
                    format: kind.name(),
                    offset: size,
                    source,
                });
            }
        };
        if n == 0 {
            break;
        }
        if buf[..n].iter().all(|&b| b == 0) {
            file.seek(SeekFrom::Current(n as i64)).map_err(temp)?;
        } else {
            file.write_all(&buf[..n]).map_err(temp)?;
        }
        size += n as u64;
        if n < BLOCK {
            break;
        }
    }
    file.set_len(size).map_err(temp)?;
    let dev = TempDisk {
        file,
        size,
        name: format!("{name} ({}-decompressed)", kind.name()),
    };
    let disk = Disk::from_device(path, ImageFormat::Raw, Box::new(dev), vec![], None)?;
    let mut r = scan_disk(&disk, &name, cfg)?;
    r.notes.insert(
        0,
        format!(
            "{name}: {}-compressed raw disk, {size} bytes decompressed to a temporary file",
            kind.name()
        ),
    );
    Ok(r)
}

pub(super) fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
