//! Test fixtures for kiln (a dev-dependency of the other crates).
//!
//! - [`base_image`]: the Debian bookworm "generic cloud" image that the suite
//!   builds itself from Debian packages (`fixtures/base-image/build.sh`),
//!   cached outside the repository under a key derived from its recipe.
//! - [`ovmf`]: Debian's OVMF firmware files for UEFI boots.
//! - [`vm_lock`]: a machine-wide lock so that VM tests run one at a time.
//!
//! Tests that boot real VMs are `#[ignore]`d unless the crate was built with
//! `KILN_VM_TESTS=1` in the environment (see `build.rs`).

mod base_image;
mod ovmf;
mod vm_lock;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub use base_image::{BaseImage, BaseImageInfo, base_image, build_script};
pub use ovmf::{OVMF_DIR, Ovmf, ovmf, ovmf_in};
pub use vm_lock::{VmLock, vm_lock};

/// Why a fixture could not be provided.
///
/// `Clone` because [`base_image`] builds once per process and hands every
/// caller the same outcome, errors included.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FixtureError {
    /// The build script could not be started at all.
    #[error("could not run `bash {}`", script.display())]
    Spawn {
        script: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// The build script ran and failed.
    #[error(
        "`bash {}` failed ({status}); the last lines it printed:\n{stderr_tail}",
        script.display()
    )]
    BuildFailed {
        script: PathBuf,
        status: String,
        stderr_tail: String,
    },
    /// The build script succeeded but did not name a result directory.
    #[error("`bash {}` printed no result directory on stdout", script.display())]
    NoResult { script: PathBuf },
    /// A file every complete result directory holds is missing.
    #[error("base image in `{}` is incomplete: `{}` is missing", dir.display(), missing.display())]
    Incomplete { dir: PathBuf, missing: PathBuf },
    /// A file of the fixture could not be read.
    #[error("could not read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// `info.json` is not what `build.sh` writes.
    #[error("`{}` is not valid fixture info: {message}", path.display())]
    Info { path: PathBuf, message: String },
    /// The machine-wide VM lock could not be taken.
    #[error("could not lock `{}`", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// No known pair of OVMF code and vars files exists.
    #[error(
        "no OVMF firmware found (looked for {}); install Debian's `ovmf` package",
        tried.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
    )]
    OvmfMissing { tried: Vec<PathBuf> },
}
