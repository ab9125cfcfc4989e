//! `wait_ssh`: wait for the guest's SSH, reporting each state change,
//! watching QEMU and the console; on failure say what was last seen.

use std::time::Duration;

use kiln_qemu::process::QemuProcess;
use kiln_qemu::{Accelerator, QemuConfig};
use kiln_ssh::{Auth, Target, WaitConfig, WaitEvent};

use super::key::BuildKey;
use super::launch::Vm;
use crate::events::BuildEvents;
use crate::guest::Guest;
use crate::pipeline::{Pipeline, StepError};
use crate::run::supervise::{qemu_died, tail_text};
use crate::step::StepId;

pub(super) struct WaitSsh<'a> {
    pub cfg: &'a QemuConfig,
    pub key: &'a BuildKey,
    pub ssh_host_port: Option<u16>,
    pub vm: &'a Vm,
    /// No console output at all within this → "guest is silent".
    pub silence: Duration,
    /// Whether kiln reads the console (the boot watchdog needs it).
    pub console_tapped: bool,
    pub accelerator: Accelerator,
}

impl WaitSsh<'_> {
    /// The guest (none with `communicator = "none"`).
    pub async fn run(self, p: &mut Pipeline) -> Result<Option<Guest>, StepError> {
        let (Some(s), Some(key)) = (self.cfg.ssh(), &self.key.pair) else {
            return Ok(None);
        };
        let host = s.host.clone().unwrap_or_else(|| "127.0.0.1".into());
        let port = self.ssh_host_port.unwrap_or(s.port);
        let target = Target::new(&host, port, &s.username);
        let mut auth = Auth::new().key(key.clone());
        if let Some(pw) = &s.password {
            auth = auth.password(pw.expose().clone());
        }
        let config = WaitConfig {
            timeout: s.timeout,
            handshake_attempts: s.handshake_attempts.max(1),
            ..WaitConfig::default()
        };
        if !s.pause_before_connecting.is_zero() {
            tokio::time::sleep(s.pause_before_connecting).await;
        }
        p.ev.say("Waiting for SSH to become available...");
        let ev = p.ev.clone();
        let session = p
            .step(
                StepId::WaitSsh,
                wait_ssh(
                    &self.vm.qemu,
                    target,
                    auth,
                    config,
                    &ev,
                    self.accelerator,
                    self.silence,
                    self.console_tapped,
                ),
            )
            .await?;
        p.ev.say("Connected to SSH!");
        Ok(Some(Guest::new(session)))
    }
}

/// Wait for SSH, reporting each state change, watching QEMU and the
/// console; on failure say what was last seen.
#[allow(clippy::too_many_arguments)]
async fn wait_ssh(
    qemu: &QemuProcess,
    target: Target,
    auth: Auth,
    config: WaitConfig,
    ev: &BuildEvents,
    accelerator: Accelerator,
    silence: Duration,
    console_tapped: bool,
) -> Result<kiln_ssh::Session, String> {
    let last = std::sync::Arc::new(std::sync::Mutex::new(None::<WaitEvent>));
    let last2 = last.clone();
    let ev2 = ev.clone();
    let wait = kiln_ssh::wait_ready(target, auth, config, move |e| {
        // Intermediate states speak for themselves; problems get their explanation.
        let text = match &e {
            WaitEvent::Banner { .. } | WaitEvent::Connected { .. } => e.to_string(),
            _ => format!("{e} — {}", e.diagnosis()),
        };
        ev2.diagnosis("ssh", text);
        if let Ok(mut l) = last2.lock() {
            *l = Some(e);
        }
    });
    let watchdog = async {
        if !console_tapped {
            return std::future::pending::<String>().await;
        }
        match qemu.watch_boot(silence, accelerator).await {
            Ok(first) => {
                ev.diagnosis("boot", format!("guest console active after {first:.1?}"));
                std::future::pending::<String>().await
            }
            Err(stall) => stall.to_string(),
        }
    };
    tokio::select! {
        r = wait => r.map_err(|e| {
            let mut msg = e.to_string();
            if let Ok(l) = last.lock()
                && matches!(*l, Some(WaitEvent::TcpConnectedNoBanner { .. }))
                && let Some(hint) = no_banner_hint(&qemu.console().last_lines(CONSOLE_LOOKBACK))
            {
                msg.push('\n');
                msg.push_str(hint);
            }
            msg + &tail_text("last console lines", &qemu.console().last_lines(20))
        }),
        msg = watchdog => Err(msg + &tail_text("last console lines", &qemu.console().last_lines(20))),
        _ = qemu.wait_exit() => Err(qemu_died(qemu)),
    }
}

/// Console lines searched for what the guest was doing when a wait failed.
const CONSOLE_LOOKBACK: usize = 200;

/// What the console tells about a guest whose SSH port gives no banner.
fn no_banner_hint(console: &[String]) -> Option<&'static str> {
    let finished = console
        .iter()
        .any(|l| l.contains("Cloud-init") && l.contains("finished"));
    if finished {
        // sshd starts after cloud-init's first stages, long before it ends.
        Some(
            "the console shows cloud-init has finished, yet nothing answers on the SSH port: sshd is not running in the guest (disabled, masked or failed), or listens on another port than `ssh_port`",
        )
    } else if console.iter().any(|l| l.contains("cloud-init")) {
        Some("the console shows cloud-init still running: sshd may be waiting for it")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn no_banner_hints_follow_cloud_init_on_the_console() {
        assert_eq!(no_banner_hint(&lines("[  OK  ] Started foo.service")), None);
        let busy = no_banner_hint(&lines(
            "[ 101.0] cloud-init[322]: Cloud-init v. 22.4.2 running 'init' at Mon. Up 100.26 seconds.",
        ));
        assert!(busy.unwrap().contains("still running"));
        let done = no_banner_hint(&lines(
            "[ 101.0] cloud-init[322]: Cloud-init v. 22.4.2 running 'init'\n\
             [ 158.0] cloud-init[459]: Cloud-init v. 22.4.2 finished at Mon, 30 Nov 2026 10:44:42 +0000.\n\
             kiln login:",
        ));
        assert!(done.unwrap().contains("sshd is not running"));
    }
}
