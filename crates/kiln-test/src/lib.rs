//! Test fixtures for kiln (a dev-dependency of the other crates).
//!
//! - [`base_image`]: the Debian bookworm "generic cloud" image that the suite
//!   builds itself from Debian packages (`fixtures/base-image/build.sh`),
//!   cached outside the repository under a key derived from its recipe.
//! - [`ovmf`]: Debian's OVMF firmware files for UEFI boots.
//! - [`shared_guest`]: a suite-wide step-cache checkpoint of a booted guest,
//!   so that VM tests which are not about booting resume it in seconds.
//! - [`TestDeadline`]: a VM test's waits end before nextest kills it.
//! - [`vm_lock`]: a machine-wide lock so that VM tests run one at a time.
//!
//! VM tests, in every crate, are gated and locked one way: named `vm_*`,
//! `#[cfg_attr(not(kiln_vm_tests), ignore = "…")]` (the cfg is set by
//! `vm_tests_cfg.rs`, the build script of each crate with VM tests, when
//! `KILN_VM_TESTS=1` is in the environment at build time), and
//! [`vm_lock`] held while a VM runs. nextest's `vm_` override
//! (`.config/nextest.toml`) only keeps the rest of the run off the CPU
//! meanwhile and sets the kill the [`TestDeadline`] stays under.

mod base_image;
mod deadline;
mod ovmf;
mod shared_guest;
mod vm_lock;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub use base_image::{BaseImage, BaseImageInfo, base_image, build_script};
pub use deadline::{NEXTEST_VM_KILL, TestDeadline, VM_TEST_BUDGET};
pub use ovmf::{OVMF_DIR, Ovmf, ovmf, ovmf_in};
pub use shared_guest::{SharedGuest, example_dir, shared_guest};
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
    /// A program a fixture runs could not be started.
    #[error("could not run `{}`", program.display())]
    Run {
        program: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// A file or directory of a fixture could not be read, copied or made.
    #[error("could not prepare `{}`", path.display())]
    Prepare {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// `kiln build --until wait_ssh` of the shared guest failed.
    #[error("could not prepare the shared guest from `{}`: {message}", example.display())]
    SharedGuest { example: PathBuf, message: String },
    /// No known pair of OVMF code and vars files exists.
    #[error(
        "no OVMF firmware found (looked for {}); install Debian's `ovmf` package",
        tried.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
    )]
    OvmfMissing { tried: Vec<PathBuf> },
}
