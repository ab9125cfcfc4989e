//! `shutdown`: the shutdown command (then wait for QEMU to exit), the
//! guest powering itself off (`communicator = "none"`), or ACPI power-down
//! with a short grace before QEMU is stopped.

use std::path::Path;
use std::time::Duration;

use kiln_qemu::QemuConfig;
use kiln_qemu::process::QemuProcess;
use kiln_qemu::qmp::Qmp;

use super::launch::Vm;
use crate::events::BuildEvents;
use crate::guest::Guest;
use crate::pipeline::{Pipeline, StepError};
use crate::run::supervise::tail_text;
use crate::step::StepId;

pub(super) struct Shutdown<'a> {
    pub cfg: &'a QemuConfig,
    /// The guest's session, closed here.
    pub guest: Option<Guest>,
    pub vm: &'a Vm,
    pub qmp_socket: &'a str,
}

impl Shutdown<'_> {
    pub async fn run(self, p: &mut Pipeline) -> Result<(), StepError> {
        let ev = p.ev.clone();
        p.step(
            StepId::Shutdown,
            shutdown(
                &self.vm.qemu,
                self.guest,
                self.cfg.shutdown_command.clone(),
                self.cfg.shutdown_timeout,
                &ev,
                self.qmp_socket,
                self.vm.qmp(),
            ),
        )
        .await
    }
}

async fn shutdown(
    qemu: &QemuProcess,
    guest: Option<Guest>,
    command: Option<String>,
    timeout: Duration,
    ev: &BuildEvents,
    qmp_socket: &str,
    vm_qmp: Option<&Qmp>,
) -> Result<(), String> {
    match (guest, command) {
        (None, _) => {
            ev.say("Waiting for shutdown...");
            match qemu.wait_exit_timeout(timeout).await {
                Some(_) => Ok(()),
                None => Err(format!(
                    "the guest did not power off within `shutdown_timeout` ({timeout:?})"
                )),
            }
        }
        (Some(g), Some(cmd)) => {
            ev.say("Gracefully halting virtual machine...");
            let mut tail = crate::provision::shell::Tail::default();
            // The connection drops as the guest goes down: that is expected.
            let _ = tokio::time::timeout(timeout, g.exec_streamed(&cmd, ev, &mut tail)).await;
            g.into_session().close().await;
            match qemu.wait_exit_timeout(timeout).await {
                Some(_) => Ok(()),
                None => Err(format!(
                    "timeout while waiting for the machine to shut down (`shutdown_timeout` = {timeout:?}){}",
                    tail_text("last console lines", &qemu.console().last_lines(20))
                )),
            }
        }
        (Some(g), None) => {
            ev.say("Halting the virtual machine (ACPI power-down, then stop)...");
            g.into_session().close().await;
            match vm_qmp {
                Some(qmp) => {
                    let _ = qmp.system_powerdown().await;
                }
                None => {
                    if let Ok(qmp) =
                        Qmp::connect(Path::new(qmp_socket), Duration::from_secs(5)).await
                    {
                        let _ = qmp.system_powerdown().await;
                    }
                }
            }
            if qemu
                .wait_exit_timeout(timeout.min(Duration::from_secs(30)))
                .await
                .is_none()
            {
                qemu.terminate(Duration::from_secs(2)).await;
            }
            Ok(())
        }
    }
}
