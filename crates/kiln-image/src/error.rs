//! Errors of the image readers.

use std::io;
use std::path::PathBuf;

/// An error while reading a disk image, a partition table or a filesystem.
///
/// Every variant names what was being read (`what`: the image path, or
/// `image.qcow2 partition 2`) and, where it matters, the byte offset.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image file could not be opened.
    #[error("cannot open `{path}`")]
    Open {
        /// Image path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// A read failed at the OS level.
    #[error("cannot read {len} bytes at offset {offset} of `{what}`")]
    Read {
        /// What was being read.
        what: String,
        /// Byte offset.
        offset: u64,
        /// Length asked for.
        len: u64,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// A read went past the end of the device.
    #[error("read of {len} bytes at offset {offset} is past the end of `{what}` ({size} bytes)")]
    OutOfBounds {
        /// What was being read.
        what: String,
        /// Byte offset.
        offset: u64,
        /// Length asked for.
        len: u64,
        /// Size of the device.
        size: u64,
    },
    /// The on-disk structure is inconsistent.
    #[error("`{what}` is corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// What was being read.
        what: String,
        /// Byte offset of the bad structure.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A valid but not (yet) handled variant of a format.
    #[error("`{what}`: not supported yet: {feature}")]
    Unsupported {
        /// What was being read.
        what: String,
        /// The feature that is not handled.
        feature: String,
    },
    /// A path looked up inside a filesystem does not exist.
    #[error("`{path}` not found in `{what}`")]
    NotFound {
        /// Filesystem description.
        what: String,
        /// Path inside it.
        path: String,
    },
    /// No partition matched the request.
    #[error("`{what}`: {reason}")]
    NoPartition {
        /// Image description.
        what: String,
        /// What was asked and what exists.
        reason: String,
    },
    /// An external helper (`qemu-img`, from `qemu-utils`) failed.
    #[error(transparent)]
    Helper(#[from] kiln_exec::ExecError),
}

/// Result alias for the image readers.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

pub(crate) fn corrupt(what: &str, offset: u64, reason: impl Into<String>) -> ImageError {
    ImageError::Corrupt {
        what: what.to_owned(),
        offset,
        reason: reason.into(),
    }
}

pub(crate) fn unsupported(what: &str, feature: impl Into<String>) -> ImageError {
    ImageError::Unsupported {
        what: what.to_owned(),
        feature: feature.into(),
    }
}
