//! Reading what the user points kiln at — templates, var files, scripts,
//! files to upload — without hanging on a path that never ends.
//!
//! Packer only checks that such a path exists and then reads it; a
//! symlink to `/dev/zero` or a FIFO makes it read forever. kiln opens every
//! input with `O_NONBLOCK` (so opening a FIFO does not wait for a writer),
//! looks at what it opened, and accepts:
//!
//! - a **regular file** — except on procfs, sysfs, debugfs and tracefs
//!   (`/proc`, `/sys`, wherever mounted), where a regular
//!   file is accepted only with a nonzero size (their size-0 files are
//!   generated on each read and some, like `/proc/kmsg`, block), and is
//!   then [`InputKind::Generated`]: read it by content, its size may lie;
//! - a **character device that reads empty at once** (`/dev/null`): one
//!   non-blocking read returns end-of-file, so it is an empty input;
//! - a **directory**, only where the caller allows one (the `file`
//!   provisioner uploads directories).
//!
//! Everything else is refused with the reason: a FIFO, a socket, a block
//! device, a character device that does not end (`/dev/zero`, a terminal).
//! Templates and var files are read up to [`TEMPLATE_LIMIT`] bytes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The largest template or var file kiln reads: 16 MiB.
pub const TEMPLATE_LIMIT: u64 = 16 << 20;

/// What an input path turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A regular file (it ends).
    Regular,
    /// A character device that read end-of-file at once (`/dev/null`):
    /// an empty input.
    EmptyDevice,
    /// A directory (only when the caller allows one).
    Directory,
    /// A regular file under `/proc` or `/sys` with a nonzero size: it ends,
    /// but its size may lie (sysfs says 4096), so read it by content.
    Generated,
}

/// Why an input path cannot be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("`{}` does not exist", path.display())]
    NotFound {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{}`: permission denied", path.display())]
    PermissionDenied {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{}` is a FIFO (it never ends)", path.display())]
    Fifo { path: PathBuf },
    #[error("`{}` is a socket", path.display())]
    Socket { path: PathBuf },
    #[error("`{}` is a block device", path.display())]
    BlockDevice { path: PathBuf },
    #[error("`{}` is a character device that does not end", path.display())]
    EndlessDevice { path: PathBuf },
    #[error("`{}` is a directory", path.display())]
    Directory { path: PathBuf },
    #[error(
        "`{}` is a generated file under `/proc` or `/sys` (size 0; it may never end)",
        path.display()
    )]
    Generated { path: PathBuf },
    #[error("`{}` is larger than the {} MiB limit", path.display(), limit >> 20)]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("cannot read `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl InputError {
    /// An I/O error on `path`, named by its kind.
    pub fn from_io(path: &Path, source: io::Error) -> InputError {
        let path = path.to_path_buf();
        match source.kind() {
            io::ErrorKind::NotFound => InputError::NotFound { path, source },
            io::ErrorKind::PermissionDenied => InputError::PermissionDenied { path, source },
            io::ErrorKind::IsADirectory => InputError::Directory { path },
            _ => InputError::Io { path, source },
        }
    }

    /// The reason alone, without the path (for messages that name it).
    pub fn reason(&self) -> String {
        match self {
            InputError::NotFound { .. } => "no such file".into(),
            InputError::PermissionDenied { .. } => "permission denied".into(),
            InputError::Fifo { .. } => "it is a FIFO (it never ends)".into(),
            InputError::Socket { .. } => "it is a socket".into(),
            InputError::BlockDevice { .. } => "it is a block device".into(),
            InputError::EndlessDevice { .. } => "it is a character device that does not end".into(),
            InputError::Directory { .. } => "it is a directory".into(),
            InputError::Generated { .. } => {
                "it is a generated file under `/proc` or `/sys` (size 0; it may never end)".into()
            }
            InputError::TooLarge { limit, .. } => {
                format!("it is larger than the {} MiB limit", limit >> 20)
            }
            InputError::Io { source, .. } => source.to_string(),
        }
    }
}

/// Whether an open file lives on a file system whose files are generated
/// on each read: procfs, sysfs, debugfs, tracefs (wherever mounted). One
/// `fstatfs`, so reading thousands of templates costs nothing noticeable.
fn is_generated_fs(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    const SYSFS_MAGIC: i64 = 0x6265_6572;
    const DEBUGFS_MAGIC: i64 = 0x6462_6720;
    const TRACEFS_MAGIC: i64 = 0x7472_6163;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `file` is an open descriptor for the whole call and `st` is
    // a writable `statfs` that fstatfs fills when it returns 0.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: fstatfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)]
    let kind = st.f_type as i64;
    matches!(
        kind,
        PROC_SUPER_MAGIC | SYSFS_MAGIC | DEBUGFS_MAGIC | TRACEFS_MAGIC
    )
}

/// Opens `path` without blocking and checks it can be read to its end.
/// The file comes back positioned at its start (for a device that read
/// empty, at its end, which is the same).
fn open_checked(path: &Path, allow_dir: bool) -> Result<(File, InputKind), InputError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            // Opening a Unix socket fails with ENXIO: say what it is.
            let socket = e.raw_os_error() == Some(libc::ENXIO)
                && std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket());
            if socket {
                InputError::Socket {
                    path: path.to_path_buf(),
                }
            } else {
                InputError::from_io(path, e)
            }
        })?;
    let meta = file.metadata().map_err(|e| InputError::from_io(path, e))?;
    let ft = meta.file_type();
    let owned = || path.to_path_buf();
    if ft.is_dir() {
        return if allow_dir {
            Ok((file, InputKind::Directory))
        } else {
            Err(InputError::Directory { path: owned() })
        };
    }
    if ft.is_file() {
        if is_generated_fs(&file) {
            return if meta.len() == 0 {
                Err(InputError::Generated { path: owned() })
            } else {
                Ok((file, InputKind::Generated))
            };
        }
        return Ok((file, InputKind::Regular));
    }
    if ft.is_fifo() {
        return Err(InputError::Fifo { path: owned() });
    }
    if ft.is_socket() {
        return Err(InputError::Socket { path: owned() });
    }
    if ft.is_block_device() {
        return Err(InputError::BlockDevice { path: owned() });
    }
    if ft.is_char_device() {
        let mut probe = [0u8; 1];
        let mut f = &file;
        return match f.read(&mut probe) {
            Ok(0) => Ok((file, InputKind::EmptyDevice)),
            Ok(_) => Err(InputError::EndlessDevice { path: owned() }),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                Err(InputError::EndlessDevice { path: owned() })
            }
            Err(e) => Err(InputError::from_io(path, e)),
        };
    }
    Err(InputError::Io {
        path: owned(),
        source: io::Error::other("not a file kiln can read"),
    })
}

/// Checks that `path` exists and can be read to its end (see the module
/// docs); `allow_dir` accepts a directory. Reads nothing from a regular
/// file.
pub fn check_input(path: &Path, allow_dir: bool) -> Result<InputKind, InputError> {
    open_checked(path, allow_dir).map(|(_, kind)| kind)
}

/// Reads `path` whole, refusing what never ends and anything larger than
/// `limit` bytes.
pub fn read_input(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let (file, kind) = open_checked(path, false)?;
    if kind == InputKind::EmptyDevice {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    // One byte more than the limit tells "exactly at" from "over".
    file.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| InputError::from_io(path, e))?;
    if out.len() as u64 > limit {
        return Err(InputError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn read_input_reads_regular_files_and_dev_null_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.pkr.hcl");
        std::fs::write(&p, b"x = 1\n").unwrap();
        assert_eq!(read_input(&p, TEMPLATE_LIMIT).unwrap(), b"x = 1\n");
        assert_eq!(read_input(Path::new("/dev/null"), 10).unwrap(), b"");
        assert_eq!(
            check_input(Path::new("/dev/null"), false).unwrap(),
            InputKind::EmptyDevice
        );
    }

    #[test]
    fn read_input_refuses_dev_zero_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("zero.pkr.hcl");
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        let e = read_input(&p, TEMPLATE_LIMIT).unwrap_err();
        assert!(matches!(e, InputError::EndlessDevice { .. }), "{e:?}");
        assert!(e.to_string().contains("character device that does not end"));
    }

    #[test]
    fn read_input_refuses_a_fifo_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo.pkrvars.hcl");
        mkfifo(&p);
        let e = read_input(&p, TEMPLATE_LIMIT).unwrap_err();
        assert!(matches!(e, InputError::Fifo { .. }), "{e:?}");
        assert!(e.to_string().contains("is a FIFO"));
    }

    #[test]
    fn read_input_refuses_files_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.pkr.hcl");
        std::fs::write(&p, vec![b'#'; 101]).unwrap();
        assert_eq!(read_input(&p, 101).unwrap().len(), 101);
        let e = read_input(&p, 100).unwrap_err();
        assert!(
            matches!(e, InputError::TooLarge { limit: 100, .. }),
            "{e:?}"
        );
        let e = read_input(&p, TEMPLATE_LIMIT).map(|v| v.len());
        assert_eq!(e.unwrap(), 101);
        assert!(
            InputError::TooLarge {
                path: p,
                limit: TEMPLATE_LIMIT
            }
            .to_string()
            .contains("larger than the 16 MiB limit")
        );
    }

    #[test]
    fn check_input_refuses_generated_proc_files_and_sockets() {
        let e = check_input(Path::new("/proc/self/status"), false).unwrap_err();
        assert!(matches!(e, InputError::Generated { .. }), "{e:?}");
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = check_input(&sock, false).unwrap_err();
        assert!(matches!(e, InputError::Socket { .. }), "{e:?}");
    }

    #[test]
    fn sysfs_files_with_a_size_are_read_by_content() {
        let p = Path::new("/sys/class/net/lo/address");
        assert_eq!(check_input(p, false).unwrap(), InputKind::Generated);
        // sysfs says 4096 bytes; the content is one MAC address.
        assert_eq!(
            read_input(p, TEMPLATE_LIMIT).unwrap(),
            b"00:00:00:00:00:00\n"
        );
    }

    #[test]
    fn check_input_allows_directories_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_input(dir.path(), true).unwrap(), InputKind::Directory);
        let e = check_input(dir.path(), false).unwrap_err();
        assert!(matches!(e, InputError::Directory { .. }), "{e:?}");
    }

    #[test]
    fn io_errors_are_named_by_kind() {
        let p = Path::new("/srv/scripts/x.sh");
        let e = InputError::from_io(p, io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(e.to_string(), "`/srv/scripts/x.sh`: permission denied");
        assert_eq!(e.reason(), "permission denied");
        let e = InputError::from_io(p, io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(e.reason(), "no such file");
    }
}
