//! kiln-maas: MAAS artifacts written natively from a VM disk image.
//!
//! - [`tgz`]: `maas-tgz`, the root filesystem tarball curtin extracts;
//! - [`upload`]: the MAAS boot-resources upload client;
//! - [`dd`]: `maas-dd`, the whole disk as `ddgz`, `ddxz` or `ddraw`;
//! - `error`: errors.

pub mod dd;
pub mod error;
pub mod tgz;
pub mod upload;

pub use dd::{DdFormat, DdOptions, DdReport, write_dd, write_dd_to};
pub use error::ArtifactError;
pub use tgz::{BootPartition, Progress, TgzOptions, TgzReport, write_tgz, write_tgz_to};
