//! One discipline for every file kiln writes (tarballs, disk images,
//! converted disks, records, manifests):
//!
//! 1. the output must not be the input, nor any file of the input's backing
//!    chain (compared by device and inode, so links and `..` do not fool it);
//! 2. only a regular file is ever replaced: a device node, FIFO, socket,
//!    directory or symlink at the output path is refused, never turned into
//!    a file;
//! 3. an existing regular file is replaced only when the caller says so
//!    (`--force`), otherwise refused;
//! 4. the bytes go to a temporary file in the target directory, which is
//!    fsync'd and renamed over the output only when complete and accepted
//!    (a rejected artifact is never published);
//! 5. the temporary file is removed on every error, on drop, and on SIGINT/
//!    SIGTERM ([`remove_staged_files`], called by the binary's signal
//!    handler), so an interrupted writer leaves nothing behind.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why an output cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output is one of the inputs.
    #[error("refusing to write `{output}`: it is the input `{input}`")]
    IsInput {
        /// The output path.
        output: PathBuf,
        /// The input (or backing file) it is.
        input: PathBuf,
    },
    /// Something other than a regular file is at the output path.
    #[error("refusing to replace `{path}`: it is a {kind}, not a regular file")]
    NotRegular {
        /// The output path.
        path: PathBuf,
        /// What it is (`symlink`, `character device`, …).
        kind: &'static str,
    },
    /// A regular file is there and replacing it was not asked for.
    #[error("`{path}` already exists")]
    Exists {
        /// The output path.
        path: PathBuf,
    },
    /// Creating, writing or renaming failed.
    #[error("cannot {action} `{path}`")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl OutputError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            OutputError::IsInput { .. } => Some("write the artifact to another path"),
            OutputError::NotRegular { .. } => {
                Some("choose a path that is a regular file or does not exist yet")
            }
            OutputError::Exists { .. } => Some("pass --force to replace it"),
            OutputError::Io { .. } => None,
        }
    }
}

/// What kind of non-regular file `md` describes.
fn kind_of(md: &Metadata) -> Option<&'static str> {
    let t = md.file_type();
    if t.is_file() {
        None
    } else if t.is_symlink() {
        Some("symlink")
    } else if t.is_dir() {
        Some("directory")
    } else if t.is_char_device() {
        Some("character device")
    } else if t.is_block_device() {
        Some("block device")
    } else if t.is_fifo() {
        Some("FIFO")
    } else if t.is_socket() {
        Some("socket")
    } else {
        Some("special file")
    }
}

/// Check that `output` may be written given `inputs` (every file the
/// writer reads, backing files included) and whether replacing an
/// existing file is allowed. Returns whether a file will be replaced.
pub fn check_output(output: &Path, inputs: &[PathBuf], force: bool) -> Result<bool, OutputError> {
    let md = match std::fs::symlink_metadata(output) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(OutputError::Io {
                action: "inspect",
                path: output.to_owned(),
                source,
            });
        }
    };
    // The identity check comes first: "it is your input" is the more
    // useful message even when the input is also a symlink or device.
    let followed = std::fs::metadata(output).ok();
    let same = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|i| {
            [Some(&md), followed.as_ref()]
                .into_iter()
                .flatten()
                .any(|o| o.dev() == i.dev() && o.ino() == i.ino())
        })
    };
    if let Some(input) = inputs.iter().find(|i| same(i)) {
        return Err(OutputError::IsInput {
            output: output.to_owned(),
            input: input.clone(),
        });
    }
    if let Some(kind) = kind_of(&md) {
        return Err(OutputError::NotRegular {
            path: output.to_owned(),
            kind,
        });
    }
    if !force {
        return Err(OutputError::Exists {
            path: output.to_owned(),
        });
    }
    Ok(true)
}

/// Temporary files being written right now, removed by a signal handler.
static STAGED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn register(p: &Path) {
    if let Ok(mut v) = STAGED.lock() {
        v.push(p.to_owned());
    }
}

fn unregister(p: &Path) {
    if let Ok(mut v) = STAGED.lock() {
        v.retain(|x| x != p);
    }
}

/// Remove every temporary output still being written; for the binary's
/// SIGINT/SIGTERM handler, just before it exits.
pub fn remove_staged_files() {
    if let Ok(mut v) = STAGED.lock() {
        for p in v.drain(..) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// An output being written: a temporary file beside its destination,
/// published by [`Staged::publish`] and removed when dropped unpublished.
#[derive(Debug)]
pub struct Staged {
    tmp: Option<tempfile::NamedTempFile>,
    dest: PathBuf,
    replaces: bool,
}

impl Staged {
    /// Check `dest` against the rules (see the module doc) and create the
    /// temporary file (`.kiln-<prefix>-XXXX` in the same directory).
    pub fn create(
        dest: &Path,
        prefix: &str,
        inputs: &[PathBuf],
        force: bool,
    ) -> Result<Self, OutputError> {
        let replaces = check_output(dest, inputs, force)?;
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".kiln-{prefix}-"))
            .tempfile_in(dir)
            .map_err(|source| OutputError::Io {
                action: "create a temporary file in",
                path: dir.to_owned(),
                source,
            })?;
        register(tmp.path());
        Ok(Self {
            tmp: Some(tmp),
            dest: dest.to_owned(),
            replaces,
        })
    }

    /// A temporary file in the system's temporary directory, for an
    /// artifact streamed to standard output (`-o -`) once it is accepted.
    pub fn for_stream(prefix: &str) -> Result<Self, OutputError> {
        let dir = std::env::temp_dir();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".kiln-{prefix}-"))
            .tempfile_in(&dir)
            .map_err(|source| OutputError::Io {
                action: "create a temporary file in",
                path: dir,
                source,
            })?;
        register(tmp.path());
        Ok(Self {
            tmp: Some(tmp),
            dest: PathBuf::from("-"),
            replaces: false,
        })
    }

    /// The temporary file (to scan before publishing).
    pub fn path(&self) -> &Path {
        self.tmp.as_ref().map_or(&self.dest, |t| t.path())
    }

    /// Where it will be published.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Whether publishing replaces an existing file.
    pub fn replaces(&self) -> bool {
        self.replaces
    }

    /// A second handle on the temporary file, for writing.
    pub fn file(&self) -> Result<File, OutputError> {
        let io = |source| OutputError::Io {
            action: "write",
            path: self.dest.clone(),
            source,
        };
        match &self.tmp {
            Some(t) => t.as_file().try_clone().map_err(io),
            None => Err(io(io::Error::other("already published"))),
        }
    }

    /// fsync, make it as readable as any new file (tempfile creates 0600),
    /// re-check the destination (it may have changed while writing), and
    /// rename it into place.
    pub fn publish(mut self) -> Result<PathBuf, OutputError> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(self.dest.clone());
        };
        unregister(tmp.path());
        let io = |action, source| OutputError::Io {
            action,
            path: self.dest.clone(),
            source,
        };
        tmp.as_file().sync_all().map_err(|e| io("sync", e))?;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| io("set the permissions of", e))?;
        if let Ok(md) = std::fs::symlink_metadata(&self.dest)
            && let Some(kind) = kind_of(&md)
        {
            return Err(OutputError::NotRegular {
                path: self.dest.clone(),
                kind,
            });
        }
        tmp.persist(&self.dest)
            .map_err(|e| io("rename the finished file to", e.error))?;
        if let Some(dir) = self.dest.parent().filter(|p| !p.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(self.dest.clone())
    }

    /// Copy the finished file to `out` (for `-o -`) and remove it.
    pub fn publish_to(mut self, out: &mut dyn io::Write) -> Result<u64, OutputError> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(0);
        };
        unregister(tmp.path());
        let mut f = tmp.reopen().map_err(|source| OutputError::Io {
            action: "read back",
            path: tmp.path().to_owned(),
            source,
        })?;
        io::copy(&mut f, out).map_err(|source| OutputError::Io {
            action: "write",
            path: PathBuf::from("-"),
            source,
        })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(t) = &self.tmp {
            unregister(t.path());
        }
    }
}

/// Write `bytes` to `dest` by the same rules, replacing an existing regular
/// file (records and manifests are kiln's own, rewritten each build).
pub fn write_replacing(dest: &Path, prefix: &str, bytes: &[u8]) -> Result<(), OutputError> {
    let staged = Staged::create(dest, prefix, &[], true)?;
    let mut f = staged.file()?;
    io::Write::write_all(&mut f, bytes).map_err(|source| OutputError::Io {
        action: "write",
        path: dest.to_owned(),
        source,
    })?;
    staged.publish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_that_is_the_input_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let img = t.path().join("disk.img");
        std::fs::write(&img, b"data").unwrap();
        let e = check_output(&img, std::slice::from_ref(&img), true).unwrap_err();
        assert!(matches!(e, OutputError::IsInput { .. }), "{e}");
        // Through another name of the same file.
        let link = t.path().join("hard");
        std::fs::hard_link(&img, &link).unwrap();
        let e = check_output(&link, std::slice::from_ref(&img), true).unwrap_err();
        assert!(matches!(e, OutputError::IsInput { .. }), "{e}");
        let dotted = t.path().join("sub/../disk.img");
        std::fs::create_dir(t.path().join("sub")).unwrap();
        let e = check_output(&dotted, std::slice::from_ref(&img), true).unwrap_err();
        assert!(matches!(e, OutputError::IsInput { .. }), "{e}");
        assert_eq!(std::fs::read(&img).unwrap(), b"data");
    }

    #[test]
    fn output_at_a_device_fifo_or_symlink_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let e = check_output(Path::new("/dev/full"), &[], true).unwrap_err();
        assert!(
            matches!(
                e,
                OutputError::NotRegular {
                    kind: "character device",
                    ..
                }
            ),
            "{e}"
        );
        let fifo = t.path().join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let e = check_output(&fifo, &[], true).unwrap_err();
        assert!(
            matches!(e, OutputError::NotRegular { kind: "FIFO", .. }),
            "{e}"
        );
        let target = t.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Staged::create(&link, "t", &[], true).unwrap_err();
        assert!(
            matches!(
                e,
                OutputError::NotRegular {
                    kind: "symlink",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        let e = check_output(t.path(), &[], true).unwrap_err();
        assert!(
            matches!(
                e,
                OutputError::NotRegular {
                    kind: "directory",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn existing_file_is_replaced_only_with_force() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out.tar.gz");
        std::fs::write(&out, b"old").unwrap();
        let e = Staged::create(&out, "t", &[], false).unwrap_err();
        assert!(matches!(e, OutputError::Exists { .. }));
        assert_eq!(e.hint(), Some("pass --force to replace it"));
        let s = Staged::create(&out, "t", &[], true).unwrap();
        assert!(s.replaces());
        std::fs::write(s.path(), b"new").unwrap();
        s.publish().unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn unpublished_output_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out.img");
        let s = Staged::create(&out, "t", &[], false).unwrap();
        let tmp = s.path().to_owned();
        std::fs::write(&tmp, b"half").unwrap();
        drop(s);
        assert!(!tmp.exists());
        assert!(!out.exists());
        // The signal path: staged files are removed by the handler.
        let s = Staged::create(&out, "t", &[], false).unwrap();
        let tmp = s.path().to_owned();
        remove_staged_files();
        assert!(!tmp.exists());
        drop(s);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    }

    #[test]
    fn publish_to_a_stream_removes_the_temporary_file() {
        let t = tempfile::tempdir().unwrap();
        let s = Staged::create(&t.path().join("x"), "t", &[], false).unwrap();
        std::fs::write(s.path(), b"stream me").unwrap();
        assert!(
            Staged::for_stream("t")
                .unwrap()
                .path()
                .starts_with(std::env::temp_dir())
        );
        let mut out = Vec::new();
        assert_eq!(s.publish_to(&mut out).unwrap(), 9);
        assert_eq!(out, b"stream me");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    }
}
