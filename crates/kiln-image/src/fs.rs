//! The filesystem model shared by the ext4 and vfat readers, and the tree
//! walk (sorted, depth first, hard links detected) that the tar writer and
//! the leak scan consume.

use std::collections::HashMap;

use crate::block::BlockDevice;
use crate::error::{ImageError, Result};

/// The kind of a filesystem object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Regular file.
    Regular,
    /// Directory.
    Directory,
    /// Symbolic link.
    Symlink,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

/// Seconds since the epoch with nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Timestamp {
    /// Seconds (may be negative).
    pub sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nsec: u32,
}

/// An extended attribute with its full name (`security.capability`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    /// Full name including the namespace prefix.
    pub name: String,
    /// Raw value (POSIX ACLs in the Linux `system.posix_acl_*` xattr format).
    pub value: Vec<u8>,
}

/// An inode's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// Inode number (vfat: a synthetic number).
    pub ino: u64,
    /// Kind.
    pub file_type: FileType,
    /// Permission bits including setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Hard link count.
    pub nlink: u32,
    /// Access time.
    pub atime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Change time.
    pub ctime: Timestamp,
    /// Device number `(major, minor)` of device nodes.
    pub rdev: (u32, u32),
    /// Target of a symlink.
    pub link_target: Vec<u8>,
    /// Extended attributes in on-disk order.
    pub xattrs: Vec<Xattr>,
}

/// A piece of file content at a logical offset. Gaps between runs are holes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// `len` bytes at byte `physical` of the filesystem's device.
    Data {
        /// Offset in the file.
        logical: u64,
        /// Length.
        len: u64,
        /// Offset on the device.
        physical: u64,
    },
    /// Bytes stored in metadata (ext4 inline data).
    Inline {
        /// Offset in the file.
        logical: u64,
        /// The bytes.
        data: Vec<u8>,
    },
}

impl Run {
    /// Logical start offset.
    pub fn logical(&self) -> u64 {
        match self {
            Run::Data { logical, .. } | Run::Inline { logical, .. } => *logical,
        }
    }
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Run::Data { len, .. } => *len,
            Run::Inline { data, .. } => data.len() as u64,
        }
    }
    /// Is the run empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A directory entry (without `.` and `..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Name bytes.
    pub name: Vec<u8>,
    /// Inode number.
    pub ino: u64,
}

/// A read-only filesystem.
pub trait FileSystem: Send + Sync {
    /// Description for errors (`disk.qcow2 partition 2 (ext4)`).
    fn describe(&self) -> String;
    /// Volume label.
    fn label(&self) -> String;
    /// Root directory inode.
    fn root_ino(&self) -> u64;
    /// Metadata of an inode.
    fn inode(&self, ino: u64) -> Result<Inode>;
    /// Entries of a directory, on-disk order, without `.` and `..`.
    fn read_dir(&self, dir: &Inode) -> Result<Vec<DirEntry>>;
    /// Content runs of a regular file, sorted, clipped to the size, holes omitted.
    fn runs(&self, file: &Inode) -> Result<Vec<Run>>;
    /// The device the `Run::Data` offsets refer to.
    fn device(&self) -> &dyn BlockDevice;

    /// The largest file this filesystem can hold (the tar writer refuses
    /// sizes beyond it).
    fn max_file_size(&self) -> u64 {
        crate::tar::DEFAULT_MAX_FILE_SIZE
    }

    /// Things worth telling about this filesystem (unclean journal, …).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Read `buf.len()` bytes of `file` from `offset`, holes as zeros.
    fn read_file_at(&self, runs: &[Run], buf: &mut [u8], offset: u64) -> Result<()> {
        buf.fill(0);
        let end = offset + buf.len() as u64;
        for r in runs {
            let (rs, re) = (r.logical(), r.logical() + r.len());
            if re <= offset || rs >= end {
                continue;
            }
            let s = rs.max(offset);
            let e = re.min(end);
            let dst = &mut buf[(s - offset) as usize..(e - offset) as usize];
            match r {
                Run::Data { physical, .. } => {
                    self.device().read_direct(dst, physical + (s - rs))?
                }
                Run::Inline { data, .. } => {
                    dst.copy_from_slice(&data[(s - rs) as usize..(e - rs) as usize])
                }
            }
        }
        Ok(())
    }

    /// The whole content of a (small) file.
    fn read_all(&self, file: &Inode, limit: u64) -> Result<Vec<u8>> {
        let runs = self.runs(file)?;
        let n = file.size.min(limit);
        let mut buf = vec![0u8; n as usize];
        self.read_file_at(&runs, &mut buf, 0)?;
        Ok(buf)
    }
}

impl std::fmt::Debug for dyn FileSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileSystem({})", self.describe())
    }
}

/// One object met by [`walk`].
#[derive(Debug, Clone)]
pub struct WalkEntry {
    /// Path relative to the root, `/`-separated, no leading `./`; empty for the root itself.
    pub path: Vec<u8>,
    /// Metadata.
    pub inode: Inode,
    /// For the second and later names of a hard-linked inode: the first name.
    pub hardlink_to: Option<Vec<u8>>,
}

/// [`walk`] with a visitor whose own error type is kept: the walk stops at
/// the visitor's first error and returns it as it was, and the walk's own
/// errors are converted with `From`.
pub fn walk_with<E: From<ImageError>>(
    fs: &dyn FileSystem,
    visit: &mut dyn FnMut(&WalkEntry) -> std::result::Result<bool, E>,
) -> std::result::Result<(), E> {
    let mut stopped: Option<E> = None;
    let walked = walk(fs, &mut |we| match visit(we) {
        Ok(descend) => Ok(descend),
        Err(e) => {
            stopped = Some(e);
            // Only ends the walk; `stopped` is what is returned.
            Err(ImageError::Corrupt {
                what: String::new(),
                offset: 0,
                reason: "stopped by the visitor".into(),
            })
        }
    });
    match stopped {
        Some(e) => Err(e),
        None => walked.map_err(E::from),
    }
}

/// Walk the tree from the root, depth first with names sorted bytewise, calling
/// `visit` for every object (the root first, as an empty path). Returning
/// `Ok(false)` from `visit` for a directory skips its contents.
pub fn walk(fs: &dyn FileSystem, visit: &mut dyn FnMut(&WalkEntry) -> Result<bool>) -> Result<()> {
    let root = fs.inode(fs.root_ino())?;
    if root.file_type != FileType::Directory {
        return Err(ImageError::Corrupt {
            what: fs.describe(),
            offset: 0,
            reason: "root inode is not a directory".into(),
        });
    }
    let mut links: HashMap<u64, Vec<u8>> = HashMap::new();
    let entry = WalkEntry {
        path: Vec::new(),
        inode: root,
        hardlink_to: None,
    };
    if !visit(&entry)? {
        return Ok(());
    }
    // Stack of (dir path, remaining sorted entries reversed).
    let mut stack: Vec<(Vec<u8>, Vec<DirEntry>)> = vec![(
        Vec::new(),
        sorted(fs, &entry.inode, fs.read_dir(&entry.inode)?)?,
    )];
    let mut depth_guard = 0usize;
    while let Some((dir, entries)) = stack.last_mut() {
        let Some(de) = entries.pop() else {
            stack.pop();
            continue;
        };
        let mut path = dir.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&de.name);
        let inode = fs.inode(de.ino).map_err(|e| with_path(e, &path))?;
        let mut hardlink_to = None;
        if inode.file_type != FileType::Directory && inode.nlink > 1 {
            if let Some(first) = links.get(&inode.ino) {
                hardlink_to = Some(first.clone());
            } else {
                links.insert(inode.ino, path.clone());
            }
        }
        let is_dir = inode.file_type == FileType::Directory;
        let we = WalkEntry {
            path,
            inode,
            hardlink_to,
        };
        let descend = visit(&we)?;
        if is_dir && descend {
            depth_guard += 1;
            if stack.len() > 4096 || depth_guard > 50_000_000 {
                return Err(ImageError::Corrupt {
                    what: fs.describe(),
                    offset: 0,
                    reason: "directory tree too deep (a loop?)".into(),
                });
            }
            let children = fs
                .read_dir(&we.inode)
                .and_then(|c| sorted(fs, &we.inode, c))
                .map_err(|e| with_path(e, &we.path))?;
            stack.push((we.path, children));
        }
    }
    Ok(())
}

/// The entries in reverse name order (popped from the end); a name that
/// appears twice is an error naming the directory's inode.
fn sorted(fs: &dyn FileSystem, dir: &Inode, mut v: Vec<DirEntry>) -> Result<Vec<DirEntry>> {
    v.sort_unstable_by(|a, b| b.name.cmp(&a.name));
    if let Some(w) = v.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(ImageError::Corrupt {
            what: fs.describe(),
            offset: 0,
            reason: format!(
                "directory inode {} has two entries named `{}` (inodes {} and {})",
                dir.ino,
                String::from_utf8_lossy(&w[0].name).escape_debug(),
                w[1].ino,
                w[0].ino
            ),
        });
    }
    Ok(v)
}

fn with_path(e: ImageError, path: &[u8]) -> ImageError {
    match e {
        ImageError::Corrupt {
            what,
            offset,
            reason,
        } => ImageError::Corrupt {
            what,
            offset,
            reason: format!("{reason} (at `/{}`)", String::from_utf8_lossy(path)),
        },
        other => other,
    }
}

/// Find `path` (`/etc/os-release` or `etc/os-release`) without following symlinks.
pub fn lookup(fs: &dyn FileSystem, path: &str) -> Result<Option<Inode>> {
    let mut cur = fs.inode(fs.root_ino())?;
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if cur.file_type != FileType::Directory {
            return Ok(None);
        }
        let entries = fs.read_dir(&cur)?;
        let Some(de) = entries.iter().find(|e| e.name == comp.as_bytes()) else {
            return Ok(None);
        };
        cur = fs.inode(de.ino)?;
    }
    Ok(Some(cur))
}
