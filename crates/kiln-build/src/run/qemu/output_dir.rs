//! `prepare_output_dir` (Packer's `step_prepare_output_dir`): never
//! overwrite what a user has unless `-force`; removed again unless the
//! build succeeds. And the build's scratch directory (QMP socket, seed
//! media), removed when the build ends.

use std::path::{Path, PathBuf};

use crate::pipeline::{Cleanup, Hinted, Pipeline, StepError};
use crate::step::StepId;

pub(super) struct PrepareOutputDir {
    pub dir: PathBuf,
    pub force: bool,
}

/// The output directory, removed at the end unless [`OutputDir::keep`].
pub(super) struct OutputDir {
    pub path: PathBuf,
    removal: Cleanup,
}

impl PrepareOutputDir {
    pub async fn run(self, p: &mut Pipeline) -> Result<OutputDir, StepError> {
        p.step(StepId::PrepareOutputDir, prepare(&self.dir, self.force))
            .await?;
        let dir = self.dir.clone();
        let removal = p.defer("remove output directory", async move {
            tokio::fs::remove_dir_all(&dir)
                .await
                .or_else(ignore_missing)
                .map_err(|e| format!("{}: {e}", dir.display()))
        });
        Ok(OutputDir {
            path: self.dir,
            removal,
        })
    }
}

impl OutputDir {
    /// The build succeeded: the directory is the artifact. Its files as
    /// Packer lists them, under `relative` (the template's path).
    pub fn keep(self, p: &mut Pipeline, relative: &str) -> Vec<PathBuf> {
        p.dismiss(self.removal);
        list_files(&self.path)
            .into_iter()
            .filter_map(|f| f.file_name().map(|n| Path::new(relative).join(n)))
            .collect()
    }
}

async fn prepare(dir: &Path, force: bool) -> Result<(), Hinted> {
    if dir.exists() {
        if !force {
            return Err(Hinted::new(
                format!(
                    "output directory {} exists; use -force to delete it before building",
                    dir.display()
                ),
                "keep what is in it elsewhere, then build with `-force`; or set another `output_directory`",
            ));
        }
        tokio::fs::remove_dir_all(dir).await.map_err(|e| {
            Hinted::new(
                format!("removing {} (-force): {e}", dir.display()),
                "remove it by hand, or choose another `output_directory`",
            )
        })?;
    }
    tokio::fs::create_dir_all(dir).await.map_err(|e| {
        Hinted::new(
            format!("creating {}: {e}", dir.display()),
            "check the permissions of its parent, or choose another `output_directory`",
        )
    })
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// Files of the output directory, sorted (Packer's qemu artifact).
fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// A short-lived directory for the QMP socket (short path) and the seed
/// media, removed when the build ends.
pub(super) fn scratch(p: &mut Pipeline) -> Result<PathBuf, StepError> {
    let dir = tempfile::Builder::new()
        .prefix("kiln-")
        .tempdir_in(std::env::temp_dir())
        .map_err(|e| {
            StepError::msg(
                StepId::PrepareOutputDir,
                format!("temporary directory: {e}"),
            )
        })?;
    let path = dir.path().to_path_buf();
    let _ = p.defer("remove temporary files", async move {
        drop(dir);
        Ok(())
    });
    Ok(path)
}
