//! The plain launch, as Packer's: `create_disk`/`copy_disk`/`resize_disk`
//! with `qemu-img`, then `run_qemu` spawns the planned command line; after
//! shutdown, `convert_disk` compacts or converts the disks in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiln_qemu::disk::{DiskCommand, run_disk_command};
use kiln_qemu::plan::{ConsoleTap, QemuPlan};
use kiln_qemu::process::{QemuCommand, QemuProcess};

use crate::pipeline::{BoxError, Pipeline, StepError};
use crate::step::StepId;

/// How long one `qemu-img` command before boot may take.
const CREATE_DEADLINE: Duration = Duration::from_secs(600);
/// How long one conversion after shutdown may take.
const CONVERT_DEADLINE: Duration = Duration::from_secs(3600);

/// The disk steps before boot, one step per command.
pub(super) async fn create_disks(
    commands: &[DiskCommand],
    cwd: &Path,
    p: &mut Pipeline,
) -> Result<(), StepError> {
    p.ev.say("Creating required virtual machine disks");
    for cmd in commands {
        p.step(
            StepId::of_disk(cmd.step()),
            run_disk_command(cmd, cwd, CREATE_DEADLINE),
        )
        .await?;
    }
    Ok(())
}

/// `run_qemu`: spawn QEMU and see it through its first moments.
pub(super) async fn run_qemu(
    plan: &QemuPlan,
    cwd: &Path,
    console_log: PathBuf,
    p: &mut Pipeline,
) -> Result<Arc<QemuProcess>, StepError> {
    let cmd = QemuCommand {
        program: plan.program.clone(),
        args: plan.args(),
        cwd: Some(cwd.to_path_buf()),
        console_from_stdout: plan.console == ConsoleTap::Stdout,
        console_log: Some(console_log),
    };
    let qemu = p
        .step(StepId::RunQemu, async {
            let q = QemuProcess::spawn(cmd).await?;
            q.check_started(Duration::from_millis(300)).await?;
            Ok::<_, BoxError>(q)
        })
        .await?;
    Ok(Arc::new(qemu))
}

/// The disk steps after shutdown (conversion, compaction).
pub(super) async fn convert_disks(
    commands: &[DiskCommand],
    cwd: &Path,
    p: &mut Pipeline,
) -> Result<(), StepError> {
    if commands.is_empty() {
        return Ok(());
    }
    p.ev.say("Converting hard drive...");
    for cmd in commands {
        p.step(
            StepId::of_disk(cmd.step()),
            run_disk_command(cmd, cwd, CONVERT_DEADLINE),
        )
        .await?;
    }
    Ok(())
}
