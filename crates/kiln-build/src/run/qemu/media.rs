//! `create_cd`, `create_floppy` (the seed media, written in-process) and
//! `prepare_efivars` (the UEFI variables copied next to the disks).

use std::collections::BTreeMap;
use std::path::Path;

use kiln_qemu::QemuConfig;
use kiln_qemu::placeholders::{self, TemplateData};

use crate::pipeline::{BoxError, Pipeline, StepError};
use crate::step::StepId;

pub(super) struct SeedMedia<'a> {
    pub cfg: &'a QemuConfig,
    pub cwd: &'a Path,
    pub scratch: &'a Path,
    /// `cd_content` is rendered with the build's template data.
    pub data: &'a TemplateData,
}

/// Paths of the media made (for the command line).
pub(super) struct Media {
    pub cd: Option<String>,
    pub floppy: Option<String>,
}

impl SeedMedia<'_> {
    pub async fn run(self, p: &mut Pipeline) -> Result<Media, StepError> {
        let media = &self.cfg.media;
        let cd = if media.has_cd() {
            let path = self.scratch.join("cd.iso");
            let label = media.cd_label.clone().unwrap_or_else(|| "packer".into());
            let mut content = BTreeMap::new();
            for (name, text) in &media.cd_content {
                let text = placeholders::render(text, self.data).map_err(|e| {
                    StepError::msg(StepId::CreateCd, format!("`cd_content` {name}: {e}"))
                })?;
                content.insert(name.clone(), text);
            }
            p.step(StepId::CreateCd, async {
                let files = kiln_qemu::cdrom::cd_files(&media.cd_files, &content, self.cwd)?;
                kiln_qemu::cdrom::write_iso(&path, &label, &files, None)?;
                Ok::<_, BoxError>(())
            })
            .await?;
            Some(path.display().to_string())
        } else {
            None
        };
        let floppy = if media.has_floppy() {
            let path = self.scratch.join("floppy.img");
            let label = media
                .floppy_label
                .clone()
                .unwrap_or_else(|| "packer".into());
            p.step(StepId::CreateFloppy, async {
                let files = kiln_qemu::floppy::floppy_files(
                    &media.floppy_files,
                    &media.floppy_dirs,
                    &media.floppy_content,
                    self.cwd,
                )?;
                kiln_qemu::floppy::write_floppy(&path, &label, &files)?;
                Ok::<_, BoxError>(())
            })
            .await?;
            Some(path.display().to_string())
        } else {
            None
        };
        Ok(Media { cd, floppy })
    }
}

pub(super) struct PrepareEfivars<'a> {
    pub cfg: &'a QemuConfig,
    pub out_dir: &'a Path,
}

impl PrepareEfivars<'_> {
    /// The firmware code QEMU loads (none without `efi_boot`).
    pub async fn run(self, p: &mut Pipeline) -> Result<Option<String>, StepError> {
        let cfg = self.cfg;
        if !cfg.efi.enabled {
            return Ok(None);
        }
        let arch = kiln_qemu::firmware::arch_of_binary(&cfg.qemu_binary).to_string();
        let fw =
            kiln_qemu::firmware::resolve(cfg.efi.code.as_deref(), cfg.efi.vars.as_deref(), &arch)
                .map_err(|e| StepError::failed(StepId::PrepareEfivars, e))?;
        p.step(StepId::PrepareEfivars, async {
            kiln_qemu::firmware::copy_efivars(&fw.vars, self.out_dir)
        })
        .await?;
        Ok(Some(fw.code.display().to_string()))
    }
}
