//! kiln-fs: small helpers for files on the host.
//!
//! - [`digest_file`] / [`sha256_file`]: a file's digest, streamed;
//! - [`DigestMemo`]: a digest remembered by the file's identity (path,
//!   size, mtime, inode, device), so a multi-gigabyte image is hashed once;
//! - [`write_atomic`]: a small file written to a temporary name and renamed,
//!   so a reader never sees half of it. Published artifacts use
//!   `kiln_image::output::Staged` instead (fsync, refusal to overwrite inputs).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use sha2::Digest;

/// A file that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} `{}`: {source}", path.display())]
pub struct FsError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FsError {
    fn new<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FsError + 'a {
        move |source| FsError {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A file's digest (lowercase hex) and its size in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDigest {
    pub hex: String,
    pub size: u64,
}

/// The digest of a file with any [`Digest`] (sha256, sha1, md5…), streamed.
pub fn digest_file<D: Digest>(path: &Path) -> Result<FileDigest, FsError> {
    let mut file = std::fs::File::open(path).map_err(FsError::new("open", path))?;
    let mut hasher = D::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(FsError::new("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileDigest {
        hex: hex(&hasher.finalize()),
        size,
    })
}

/// sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<FileDigest, FsError> {
    digest_file::<sha2::Sha256>(path)
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write `bytes` to `path` through a temporary file in the same directory
/// and a rename, so readers see the old file or the new one, never half.
/// For small state files (memos, probe caches); not fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::write(&tmp, bytes)
        .map_err(FsError::new("write", &tmp))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(FsError::new("rename into", path)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// What identifies a file's current contents without reading them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileStamp {
    /// Canonical path.
    pub path: String,
    pub size: u64,
    pub mtime_ns: i128,
    pub inode: u64,
    pub dev: u64,
}

impl FileStamp {
    /// The stamp of `path` as it is now.
    pub fn of(path: &Path) -> Result<FileStamp, FsError> {
        use std::os::unix::fs::MetadataExt;
        let canonical = std::fs::canonicalize(path).map_err(FsError::new("resolve", path))?;
        let meta = std::fs::metadata(&canonical).map_err(FsError::new("stat", path))?;
        Ok(FileStamp {
            path: canonical.to_string_lossy().into_owned(),
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            inode: meta.ino(),
            dev: meta.dev(),
        })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct MemoEntry {
    stamp: FileStamp,
    algorithm: String,
    digest: String,
}

/// Digests remembered in a directory, one small JSON file per (path,
/// algorithm), valid while the file's [`FileStamp`] is unchanged. Best
/// effort: a memo that cannot be read or written only costs a hash.
#[derive(Clone, Debug)]
pub struct DigestMemo {
    dir: PathBuf,
}

impl DigestMemo {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DigestMemo { dir: dir.into() }
    }

    /// The remembered `algorithm` digest of `path`, if the file has not
    /// changed since it was remembered.
    pub fn get(&self, path: &Path, algorithm: &str) -> Option<String> {
        let stamp = FileStamp::of(path).ok()?;
        let text = std::fs::read(self.entry_path(&stamp, algorithm)).ok()?;
        let entry: MemoEntry = serde_json::from_slice(&text).ok()?;
        (entry.stamp == stamp && entry.algorithm == algorithm).then_some(entry.digest)
    }

    /// Remember that `path` as it is now has `digest`.
    pub fn put(&self, path: &Path, algorithm: &str, digest: &str) {
        let Ok(stamp) = FileStamp::of(path) else {
            return;
        };
        let file = self.entry_path(&stamp, algorithm);
        let entry = MemoEntry {
            stamp,
            algorithm: algorithm.to_string(),
            digest: digest.to_string(),
        };
        if std::fs::create_dir_all(&self.dir).is_ok()
            && let Ok(json) = serde_json::to_vec(&entry)
        {
            let _ = write_atomic(&file, &json);
        }
    }

    /// The remembered digest, or `compute`'s (then remembered).
    pub fn get_or_compute<E>(
        &self,
        path: &Path,
        algorithm: &str,
        compute: impl FnOnce() -> Result<String, E>,
    ) -> Result<String, E> {
        if let Some(digest) = self.get(path, algorithm) {
            return Ok(digest);
        }
        let digest = compute()?;
        self.put(path, algorithm, &digest);
        Ok(digest)
    }

    fn entry_path(&self, stamp: &FileStamp, algorithm: &str) -> PathBuf {
        let key = sha2::Sha256::digest(format!("{}\0{algorithm}", stamp.path).as_bytes());
        self.dir.join(hex(&key[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_values() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("abc");
        std::fs::write(&f, b"abc").unwrap();
        let d = sha256_file(&f).unwrap();
        assert_eq!(
            d.hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.size, 3);
        assert_eq!(
            digest_file::<sha1::Sha1>(&f).unwrap().hex,
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = sha256_file(Path::new("/nonexistent/kiln-fs")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/kiln-fs"), "{err}");
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("state.json");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_memo_follows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let memo = DigestMemo::new(dir.path().join("memo"));
        let f = dir.path().join("image");
        std::fs::write(&f, b"v1").unwrap();
        assert_eq!(memo.get(&f, "sha256"), None);
        memo.put(&f, "sha256", "d1");
        assert_eq!(memo.get(&f, "sha256").as_deref(), Some("d1"));
        assert_eq!(memo.get(&f, "md5"), None);
        let mut calls = 0;
        let got: Result<String, ()> = memo.get_or_compute(&f, "sha256", || {
            calls += 1;
            Ok("other".into())
        });
        assert_eq!((got.unwrap().as_str(), calls), ("d1", 0));
        // Rewriting the file (new size) invalidates the memo.
        std::fs::write(&f, b"version 2").unwrap();
        assert_eq!(memo.get(&f, "sha256"), None);
    }
}
