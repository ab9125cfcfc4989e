//! Errors of the MAAS artifact writers.

use std::io;
use std::path::PathBuf;

use kiln_image::ImageError;

/// An error while writing a MAAS artifact.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// Reading the image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Reading a file of the image failed.
    #[error("cannot read `/{entry}` from the image")]
    Entry {
        /// Path inside the image.
        entry: String,
        /// Cause.
        #[source]
        source: ImageError,
    },
    /// Writing the output failed.
    #[error("cannot write `{path}`")]
    Write {
        /// Output path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Writing the tar stream failed (the cause says why: disk full, …).
    #[error("cannot write `/{entry}` into the tarball")]
    Stream {
        /// The entry being written (empty: the end of the archive).
        entry: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The output may not be written there (it is the input, a device, …).
    #[error(transparent)]
    Output(#[from] kiln_image::output::OutputError),
    /// The local curtin directory could not be read.
    #[error("cannot read the curtin directory `{path}`")]
    Curtin {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// An option is invalid.
    #[error("{0}")]
    Invalid(String),
}
