//! Opening a disk image: format sniffing (qcow2 or raw), the `qemu-img`
//! fallback, partitions, filesystem detection and root partition discovery.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::block::{BlockDevice, CachedDevice, FileDevice, SliceDevice};
use crate::error::{ImageError, Result, unsupported};
use crate::ext4::{self, Ext4};
use crate::fs::{self, FileSystem};
use crate::partition::{self, Partition, PartitionTable, TableKind};
use crate::qcow2::{self, Qcow2};
use crate::vfat::{self, Vfat};

/// The container format of an image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// qcow2 (read natively).
    Qcow2,
    /// Raw disk.
    Raw,
}

/// A filesystem type as detected by its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// ext2/3/4.
    Ext4,
    /// FAT12/16/32.
    Vfat,
    /// XFS (not supported yet).
    Xfs,
    /// btrfs (not supported yet).
    Btrfs,
    /// Linux swap.
    Swap,
    /// LUKS container.
    Luks,
    /// LVM physical volume.
    Lvm,
    /// Anything else.
    Unknown,
}

impl FsKind {
    /// Lowercase name (`ext4`, `xfs`…).
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Ext4 => "ext4",
            FsKind::Vfat => "vfat",
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
            FsKind::Swap => "swap",
            FsKind::Luks => "LUKS",
            FsKind::Lvm => "LVM",
            FsKind::Unknown => "unknown",
        }
    }
}

/// Which partition holds the root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RootSelector {
    /// The ext4 partition with `/etc/os-release` (the largest if several).
    #[default]
    Auto,
    /// By partition number (`root_partition`).
    Number(u32),
    /// By filesystem label (`root_label`).
    Label(String),
}

/// An open disk image.
pub struct Disk {
    path: PathBuf,
    format: ImageFormat,
    dev: Arc<dyn BlockDevice>,
    table: PartitionTable,
    notes: Vec<String>,
    _converted: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("table", &self.table)
            .field("notes", &self.notes)
            .finish()
    }
}

/// Cache size for metadata pages.
const CACHE_BYTES: usize = 64 << 20;

/// Sniff the format of `path` from its first bytes.
pub fn sniff_format(path: &Path) -> Result<ImageFormat> {
    let f = FileDevice::open(path)?;
    let mut m = [0u8; 4];
    if f.size() >= 4 {
        f.read_at(&mut m, 0)?;
    }
    Ok(if qcow2::is_qcow2(&m) {
        ImageFormat::Qcow2
    } else {
        ImageFormat::Raw
    })
}

impl Disk {
    /// Open `path` (qcow2 or raw). A qcow2 variant the native reader does not
    /// handle is converted to a temporary raw file with `qemu-img convert`
    /// (see [`Disk::notes`]).
    pub fn open(path: &Path) -> Result<Self> {
        let o = open_device(path)?;
        Self::from_device(path, o.format, o.device, o.notes, o.converted)
    }

    /// Wrap an already open device (tests, fuzzing).
    pub fn from_device(
        path: &Path,
        format: ImageFormat,
        inner: Box<dyn BlockDevice>,
        mut notes: Vec<String>,
        converted: Option<tempfile::TempDir>,
    ) -> Result<Self> {
        let dev: Arc<dyn BlockDevice> = Arc::new(CachedDevice::new(inner, CACHE_BYTES));
        let table = partition::read_table(&*dev)?;
        notes.extend(table.notes.iter().cloned());
        Ok(Self {
            path: path.to_owned(),
            format,
            dev,
            table,
            notes,
            _converted: converted,
        })
    }

    /// The image path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Container format.
    pub fn format(&self) -> ImageFormat {
        self.format
    }

    /// The whole virtual disk.
    pub fn device(&self) -> Arc<dyn BlockDevice> {
        self.dev.clone()
    }

    /// The partition table.
    pub fn table(&self) -> &PartitionTable {
        &self.table
    }

    /// Notes worth showing (fallbacks taken, backup GPT used…).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Partitions; a disk without a table is one partition numbered 0.
    pub fn partitions(&self) -> Vec<Partition> {
        if self.table.kind == TableKind::None {
            return vec![Partition {
                number: 0,
                start: 0,
                size: self.dev.size(),
                type_id: String::new(),
                name: String::new(),
                uuid: String::new(),
            }];
        }
        self.table.partitions.clone()
    }

    fn partition(&self, number: u32) -> Result<Partition> {
        self.partitions()
            .into_iter()
            .find(|p| p.number == number)
            .ok_or_else(|| ImageError::NoPartition {
                what: self.path.display().to_string(),
                reason: format!(
                    "no partition {number}; the disk has {}",
                    describe_list(&self.partitions())
                ),
            })
    }

    /// The byte range of partition `number` as a device.
    pub fn partition_device(&self, number: u32) -> Result<Box<dyn BlockDevice>> {
        let p = self.partition(number)?;
        let name = if self.table.kind == TableKind::None {
            self.path.display().to_string()
        } else {
            format!("{} partition {number}", self.path.display())
        };
        Ok(Box::new(SliceDevice::new(
            self.dev.clone(),
            p.start,
            p.size,
            name,
        )?))
    }

    /// Detect the filesystem of partition `number`.
    pub fn fs_kind(&self, number: u32) -> Result<FsKind> {
        let dev = self.partition_device(number)?;
        Ok(detect_fs(&*dev))
    }

    /// Open the filesystem of partition `number` (ext4 or vfat).
    pub fn open_fs(&self, number: u32) -> Result<Box<dyn FileSystem>> {
        let dev = self.partition_device(number)?;
        let what = dev.describe();
        match detect_fs(&*dev) {
            FsKind::Ext4 => Ok(Box::new(Ext4::open(dev)?)),
            FsKind::Vfat => Ok(Box::new(Vfat::open(dev)?)),
            other => Err(unsupported(
                &what,
                format!("{} filesystem (kiln reads ext2/3/4 and vfat)", other.name()),
            )),
        }
    }

    /// Choose the root partition.
    pub fn find_root(&self, sel: &RootSelector) -> Result<u32> {
        let parts = self.partitions();
        match sel {
            RootSelector::Number(n) => {
                self.partition(*n)?;
                Ok(*n)
            }
            RootSelector::Label(label) => {
                for p in &parts {
                    if let Ok(fs) = self.open_fs(p.number)
                        && fs.label() == *label
                    {
                        return Ok(p.number);
                    }
                }
                Err(ImageError::NoPartition {
                    what: self.path.display().to_string(),
                    reason: format!(
                        "no filesystem labelled `{label}`; the disk has {}",
                        describe_list(&parts)
                    ),
                })
            }
            RootSelector::Auto => {
                let mut best: Option<(u64, u32)> = None;
                let mut seen = vec![];
                for p in &parts {
                    let kind = self.fs_kind(p.number).unwrap_or(FsKind::Unknown);
                    seen.push(format!("{} ({})", p.number, kind.name()));
                    if kind != FsKind::Ext4 {
                        continue;
                    }
                    let fs = self.open_fs(p.number)?;
                    if fs::lookup(&*fs, "/etc/os-release")?.is_some()
                        && best.is_none_or(|(s, _)| p.size > s)
                    {
                        best = Some((p.size, p.number));
                    }
                }
                best.map(|(_, n)| n).ok_or_else(|| ImageError::NoPartition {
                    what: self.path.display().to_string(),
                    reason: format!(
                        "no ext4 partition with `/etc/os-release` found (partitions: {}); set `root_partition` or `root_label`",
                        if seen.is_empty() { "none".to_owned() } else { seen.join(", ") }
                    ),
                })
            }
        }
    }

    /// The EFI system partition, if any.
    pub fn find_esp(&self) -> Option<u32> {
        self.partitions()
            .iter()
            .find(|p| p.is_esp())
            .map(|p| p.number)
            .or_else(|| {
                self.partitions()
                    .iter()
                    .find(|p| self.fs_kind(p.number).ok() == Some(FsKind::Vfat))
                    .map(|p| p.number)
            })
    }
}

fn describe_list(parts: &[Partition]) -> String {
    if parts.is_empty() {
        return "no partitions".into();
    }
    let v: Vec<String> = parts.iter().map(|p| p.number.to_string()).collect();
    format!("partitions {}", v.join(", "))
}

/// Detect a filesystem by its magic numbers.
pub fn detect_fs(dev: &dyn BlockDevice) -> FsKind {
    let at = |off: u64, magic: &[u8]| {
        let mut b = vec![0u8; magic.len()];
        dev.size() >= off + magic.len() as u64 && dev.read_at(&mut b, off).is_ok() && b == magic
    };
    if ext4::probe(dev) {
        FsKind::Ext4
    } else if at(0, b"XFSB") {
        FsKind::Xfs
    } else if at(65536 + 64, b"_BHRfS_M") {
        FsKind::Btrfs
    } else if at(4086, b"SWAPSPACE2") || at(4086, b"SWAP-SPACE") {
        FsKind::Swap
    } else if at(0, b"LUKS\xba\xbe") {
        FsKind::Luks
    } else if at(512, b"LABELONE") {
        FsKind::Lvm
    } else if vfat::probe(dev) {
        FsKind::Vfat
    } else {
        FsKind::Unknown
    }
}

/// An image file opened as one virtual disk, without a partition table read.
pub struct OpenedDevice {
    /// Container format.
    pub format: ImageFormat,
    /// The virtual disk.
    pub device: Box<dyn BlockDevice>,
    /// Fallbacks taken.
    pub notes: Vec<String>,
    /// The temporary raw copy made by `qemu-img`, if any (deleted on drop).
    pub converted: Option<tempfile::TempDir>,
}

/// Open `path` (qcow2 natively, or raw) as a virtual disk; a qcow2 variant
/// the reader does not handle is converted with `qemu-img convert` first.
pub fn open_device(path: &Path) -> Result<OpenedDevice> {
    let format = sniff_format(path)?;
    let mut notes = vec![];
    let mut converted = None;
    let device: Box<dyn BlockDevice> = match format {
        ImageFormat::Raw => Box::new(FileDevice::open(path)?),
        ImageFormat::Qcow2 => match Qcow2::open(path) {
            Ok(q) => Box::new(q),
            Err(ImageError::Unsupported { feature, .. }) => {
                let (dir, raw) = convert_with_qemu_img(path)?;
                notes.push(format!(
                    "{feature}: not read natively; converted with `qemu-img convert -O raw` to a temporary file"
                ));
                converted = Some(dir);
                Box::new(FileDevice::open(&raw)?)
            }
            Err(e) => return Err(e),
        },
    };
    Ok(OpenedDevice {
        format,
        device,
        notes,
        converted,
    })
}

/// Convert `path` to a raw file in a new temporary directory with `qemu-img`.
pub fn convert_with_qemu_img(path: &Path) -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("kiln-raw-")
        .tempdir()
        .map_err(|source| ImageError::Open {
            path: std::env::temp_dir(),
            source,
        })?;
    let raw = dir.path().join("disk.raw");
    kiln_exec::Program::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(path)
        .arg(&raw)
        .run_blocking()?;
    Ok((dir, raw))
}
