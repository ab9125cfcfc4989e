//! kiln-maas: MAAS artifacts written natively from a VM disk image.
//!
//! - [`tgz`]: `maas-tgz`, the root filesystem tarball curtin extracts;
//! - `error`: errors.

pub mod error;
pub mod tgz;

pub use error::ArtifactError;
pub use tgz::{BootPartition, Progress, TgzOptions, TgzReport, write_tgz};
