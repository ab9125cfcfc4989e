//! What a builder or post-processor hands to the next post-processor.

use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Artifact {
    /// Packer's `BuilderId`-like type: `qemu`, `null`, `compress`, …
    pub kind: String,
    /// Packer's artifact id (`VM` for QEMU, `Null` for null).
    pub id: String,
    pub files: Vec<PathBuf>,
    /// The build's public keys, for the leak scan (never written out).
    #[serde(skip)]
    pub build_public_keys: Vec<String>,
}

impl Artifact {
    pub fn new(kind: &str, id: &str, files: Vec<PathBuf>) -> Self {
        Artifact {
            kind: kind.to_string(),
            id: id.to_string(),
            files,
            build_public_keys: Vec::new(),
        }
    }

    /// Remove the artifact's files (an intermediate nobody keeps).
    pub fn destroy(&self) -> Vec<(PathBuf, std::io::Error)> {
        let mut failed = Vec::new();
        for f in &self.files {
            let r = if f.is_dir() {
                std::fs::remove_dir_all(f)
            } else {
                std::fs::remove_file(f)
            };
            if let Err(e) = r
                && e.kind() != std::io::ErrorKind::NotFound
            {
                failed.push((f.clone(), e));
            }
        }
        failed
    }

    pub fn describe(&self) -> String {
        if self.files.is_empty() {
            return format!("{} artifact with no files", self.kind);
        }
        let names: Vec<String> = self.files.iter().map(|p| display(p)).collect();
        names.join(", ")
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
