//! One VM at a time: a lock shared by every test process on the machine.

use std::env;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;

use crate::FixtureError;

/// Held while a test runs a VM; dropping it lets the next one start.
///
/// TCG guests on a small machine slow each other down badly enough that
/// boot deadlines fail, and test runners (nextest runs every test in its own
/// process) cannot be relied on to serialise them, so VM tests take this
/// lock: an exclusive `flock` on `kiln-vm.lock` in the temp directory.
#[derive(Debug)]
pub struct VmLock {
    _file: File,
    pub path: PathBuf,
}

/// Waits until no other process holds the VM lock, then takes it.
pub fn vm_lock() -> Result<VmLock, FixtureError> {
    lock_at(env::temp_dir().join("kiln-vm.lock"))
}

fn lock_at(path: PathBuf) -> Result<VmLock, FixtureError> {
    let error = |source| FixtureError::Lock {
        path: path.clone(),
        source: Arc::new(source),
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(error)?;
    file.lock().map_err(error)?;
    Ok(VmLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_lock_is_exclusive_until_dropped() {
        // Not the machine-wide lock: a VM test may be holding that one.
        let dir = tempfile::tempdir().unwrap();
        let held = lock_at(dir.path().join("kiln-vm.lock")).unwrap();
        let other = OpenOptions::new().write(true).open(&held.path).unwrap();
        assert!(other.try_lock().is_err());
        drop(held);
        assert!(other.try_lock().is_ok());
    }
}
