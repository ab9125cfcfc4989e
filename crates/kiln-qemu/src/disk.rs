//! The `qemu-img` commands of a build, planned as Packer's
//! `step_create_disk`, `step_copy_disk`, `step_resize_disk` and
//! `step_convert_disk` run them, and a small runner for them.
//!
//! Before boot: create the disks (the main disk as an overlay with
//! `use_backing_file`), or copy/convert the source image into the main disk,
//! then resize it. After shutdown: `qemu-img convert` to `<disk>.convert`
//! (compaction, `-c` with `disk_compression`) and rename over the disk.
//!
//! Where kiln differs: the backing format is passed with `-F` (qemu-img
//! ≥ 6.1 requires it; packer-plugin-qemu always adds `-F qcow2`), using the
//! source's real format when the caller knows it, and not twice when
//! `qemu_img_args.create` already has `-F`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{DiskFormat, QemuConfig};
use crate::plan::PlanError;

/// Which of Packer's steps a command belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskStep {
    CreateDisk,
    CopyDisk,
    ResizeDisk,
    ConvertDisk,
}

/// One action on disk images.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DiskCommand {
    /// `qemu-img ARGS…`.
    QemuImg { step: DiskStep, args: Vec<String> },
    /// A plain file copy (Packer copies instead of converting when the
    /// source's extension is already the output format).
    Copy {
        step: DiskStep,
        from: String,
        to: String,
    },
    /// Replace `to` with `from`.
    Rename {
        step: DiskStep,
        from: String,
        to: String,
    },
}

impl DiskCommand {
    pub fn step(&self) -> DiskStep {
        match self {
            DiskCommand::QemuImg { step, .. }
            | DiskCommand::Copy { step, .. }
            | DiskCommand::Rename { step, .. } => *step,
        }
    }

    /// A one-line rendering (`qemu-img create -f qcow2 …`, `cp A B`, `mv A B`).
    pub fn display(&self) -> String {
        match self {
            DiskCommand::QemuImg { args, .. } => format!("qemu-img {}", args.join(" ")),
            DiskCommand::Copy { from, to, .. } => format!("cp {from} {to}"),
            DiskCommand::Rename { from, to, .. } => format!("mv {from} {to}"),
        }
    }
}

/// The disk commands of a build.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiskPlan {
    /// Before QEMU starts, in order.
    pub before_boot: Vec<DiskCommand>,
    /// After the guest has shut down, in order.
    pub after_shutdown: Vec<DiskCommand>,
}

/// The source image, as the download step left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceImage<'a> {
    /// Absolute path of the downloaded ISO or disk image.
    pub path: &'a str,
    /// Its format (`qcow2`, `raw`, …) when known (e.g. from `qemu-img info`);
    /// `None` assumes qcow2 as Packer does.
    pub format: Option<&'a str>,
}

/// Plan the disk commands. `source` is required with `disk_image`.
pub fn plan_disk(
    config: &QemuConfig,
    source: Option<SourceImage<'_>>,
) -> Result<DiskPlan, PlanError> {
    let mut plan = DiskPlan::default();
    let fmt = config.format.as_str();
    let paths = config.disk_paths();
    let sizes: Vec<&str> = std::iter::once(config.disk_size.arg.as_str())
        .chain(config.disk_additional_size.iter().map(|s| s.arg.as_str()))
        .collect();
    let source = if config.disk_image {
        let s = source.ok_or(PlanError::MissingFact {
            what: "the downloaded source image (`disk_image = true`)",
        })?;
        if config.use_backing_file && !Path::new(s.path).is_absolute() {
            return Err(PlanError::Invalid(format!(
                "the backing file {:?} must be an absolute path (qemu-img resolves a relative one against the overlay's directory)",
                s.path
            )));
        }
        Some(s)
    } else {
        None
    };

    // step_create_disk
    for (i, (path, size)) in paths.iter().zip(&sizes).enumerate() {
        if config.disk_image && !config.use_backing_file && i == 0 {
            continue; // made by step_copy_disk
        }
        let mut args: Vec<String> = vec!["create".into(), "-f".into(), fmt.into()];
        if i == 0
            && config.use_backing_file
            && let Some(src) = &source
        {
            args.push("-b".into());
            args.push(src.path.to_string());
            if !config.qemu_img_args.create.iter().any(|a| a == "-F") {
                args.push("-F".into());
                args.push(src.format.unwrap_or("qcow2").to_string());
            }
        }
        args.extend(config.qemu_img_args.create.iter().cloned());
        args.push(path.clone());
        args.push((*size).to_string());
        plan.before_boot.push(DiskCommand::QemuImg {
            step: DiskStep::CreateDisk,
            args,
        });
    }

    // step_copy_disk
    if let Some(src) = &source
        && !config.use_backing_file
    {
        let ext = Path::new(src.path)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("");
        if ext == fmt && config.qemu_img_args.convert.is_empty() {
            plan.before_boot.push(DiskCommand::Copy {
                step: DiskStep::CopyDisk,
                from: src.path.to_string(),
                to: paths[0].clone(),
            });
        } else {
            let mut args: Vec<String> = vec!["convert".into()];
            args.extend(config.qemu_img_args.convert.iter().cloned());
            args.extend([
                "-O".into(),
                fmt.into(),
                src.path.to_string(),
                paths[0].clone(),
            ]);
            plan.before_boot.push(DiskCommand::QemuImg {
                step: DiskStep::CopyDisk,
                args,
            });
        }
    }

    // step_resize_disk
    if config.disk_image && !config.skip_resize_disk {
        let mut args: Vec<String> = vec!["resize".into(), "-f".into(), fmt.into()];
        args.extend(config.qemu_img_args.resize.iter().cloned());
        args.push(paths[0].clone());
        args.push(config.disk_size.arg.clone());
        plan.before_boot.push(DiskCommand::QemuImg {
            step: DiskStep::ResizeDisk,
            args,
        });
    }

    // step_convert_disk
    if !config.skip_compaction || config.disk_compression {
        let target = format!("{}.convert", paths[0]);
        let mut args: Vec<String> = vec!["convert".into()];
        if config.disk_compression {
            args.push("-c".into());
        }
        args.extend(config.qemu_img_args.convert.iter().cloned());
        args.extend(["-O".into(), fmt.into(), paths[0].clone(), target.clone()]);
        plan.after_shutdown.push(DiskCommand::QemuImg {
            step: DiskStep::ConvertDisk,
            args,
        });
        plan.after_shutdown.push(DiskCommand::Rename {
            step: DiskStep::ConvertDisk,
            from: target,
            to: paths[0].clone(),
        });
    }
    debug_assert!(config.format == DiskFormat::Qcow2 || plan.after_shutdown.is_empty());
    Ok(plan)
}

/// A disk command that failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error(transparent)]
    Failed(#[from] kiln_exec::ExecError),
    #[error("`{argv}`: {source}")]
    Io {
        argv: String,
        #[source]
        source: std::io::Error,
    },
}

/// Run one disk command (relative paths against `cwd`). A convert that
/// finds the image still locked by a QEMU that is exiting is retried, as
/// Packer does.
pub async fn run_disk_command(
    command: &DiskCommand,
    cwd: &Path,
    deadline: Duration,
) -> Result<(), DiskError> {
    let argv = command.display();
    let io = |source| DiskError::Io {
        argv: argv.clone(),
        source,
    };
    let abs = |p: &str| -> PathBuf { cwd.join(p) };
    match command {
        DiskCommand::Copy { from, to, .. } => {
            tokio::fs::copy(abs(from), abs(to)).await.map_err(io)?;
            Ok(())
        }
        DiskCommand::Rename { from, to, .. } => {
            tokio::fs::rename(abs(from), abs(to)).await.map_err(io)
        }
        DiskCommand::QemuImg { args, .. } => {
            let started = tokio::time::Instant::now();
            let mut delay = Duration::from_secs(1);
            loop {
                let remaining = deadline.saturating_sub(started.elapsed());
                let out = kiln_exec::Program::new("qemu-img")
                    .args(args)
                    .current_dir(cwd)
                    .timeout(remaining)
                    .output()
                    .await?;
                let failure = match out.success() {
                    Ok(_) => return Ok(()),
                    Err(failure) => failure,
                };
                let locked = matches!(&failure, kiln_exec::ExecError::Failed { stderr, .. }
                    if stderr.contains("Failed to get shared \"write\" lock")
                        || stderr.contains("Failed to get \"write\" lock"));
                if locked && started.elapsed() + delay < deadline {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    continue;
                }
                return Err(failure.into());
            }
        }
    }
}

#[cfg(test)]
mod tests;
