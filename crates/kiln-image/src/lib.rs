//! kiln-image: offline access to VM disk images — no root, no nbd, no FUSE.
//!
//! - [`block`]: the block-device abstraction and its page cache;
//! - [`qcow2`], [`partition`] (GPT/MBR), [`ext4`], [`vfat`]: the readers;
//! - [`image`]: open an image, pick the root partition;
//! - [`fs`]: the common inode model and the tree walk;
//! - [`tar`]: a POSIX tar (ustar + PAX) writer and reader;
//! - [`gzip`]: parallel multi-member gzip;
//! - [`traces`]: what a used system leaves behind (the table scrub and scan share);
//! - [`scrub`]: the filter that cleans a rootfs while it streams;
//! - [`scan`]: the leak scan.

pub mod block;
pub mod error;
pub mod ext4;
pub mod fs;
pub mod image;
pub mod partition;
pub mod qcow2;
pub mod vfat;

pub use error::{ImageError, Result};
pub use image::{Disk, FsKind, ImageFormat, RootSelector};
pub mod gzip;
pub mod output;
pub mod scan;
pub mod scrub;
pub mod tar;
pub mod traces;
