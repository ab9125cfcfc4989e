//! Right after QEMU starts: the VNC password and where to connect, and
//! `type_boot_command` — `boot_wait`, then the boot command typed over QMP
//! (not for a resumed VM: it is past its boot).

use std::path::Path;
use std::time::Duration;

use kiln_qemu::QemuConfig;
use kiln_qemu::plan::RuntimeFacts;
use kiln_qemu::qmp::Qmp;

use super::launch::Vm;
use crate::events::BuildEvents;
use crate::pipeline::{BoxError, Pipeline, StepError};
use crate::run::supervise::supervised;
use crate::step::StepId;

/// How long connecting to QEMU's QMP socket may take.
const QMP_CONNECT: Duration = Duration::from_secs(10);

pub(super) struct TypeBootCommand<'a> {
    pub cfg: &'a QemuConfig,
    pub facts: &'a RuntimeFacts,
    pub public_key: Option<&'a str>,
    pub vm: &'a Vm,
}

impl TypeBootCommand<'_> {
    pub async fn run(self, p: &mut Pipeline) -> Result<(), StepError> {
        let cfg = self.cfg;
        let data = kiln_qemu::plan::boot_command_data(cfg, self.facts, self.public_key);
        let boot_steps = kiln_qemu::plan::plan_boot_steps(cfg, &data)
            .map_err(|e| StepError::failed(StepId::TypeBootCommand, e))?;
        if boot_steps.is_empty() || self.vm.resumed() {
            return Ok(());
        }
        let socket = Path::new(&self.facts.qmp_socket);
        let qemu = &self.vm.qemu;
        let ev = p.ev.clone();
        let wait = cfg.boot.wait;
        let interval = cfg.boot.key_interval;
        let vm_qmp = self.vm.qmp();
        p.step(
            StepId::TypeBootCommand,
            supervised(qemu, async {
                if !wait.is_zero() {
                    ev.say(format!("Waiting {wait:?} for boot..."));
                    tokio::time::sleep(wait).await;
                }
                let connected;
                let qmp = match vm_qmp {
                    Some(qmp) => qmp,
                    None => {
                        connected = Qmp::connect(socket, QMP_CONNECT).await?;
                        &connected
                    }
                };
                ev.say("Typing the boot command over QMP...");
                let options = kiln_qemu::typing::TypingOptions::with_interval(interval);
                for step in &boot_steps {
                    kiln_qemu::typing::type_boot_command(
                        qmp,
                        &step.keys,
                        &options,
                        Some(qemu.console()),
                    )
                    .await?;
                }
                Ok::<(), BoxError>(())
            }),
        )
        .await
    }
}

/// Set the VNC password (Packer's `vnc_use_password`: the given one, or a
/// random one of 8 characters) through QMP and say where to connect, as
/// packer-plugin-qemu does. A bind address other than loopback exposes the
/// guest's console to the network: warned about.
pub(super) async fn announce_vnc(
    cfg: &QemuConfig,
    port: Option<u16>,
    vm: &Vm,
    qmp_socket: &str,
    ev: &BuildEvents,
) -> Result<(), StepError> {
    let Some(port) = port else {
        return Ok(());
    };
    let fail = |message: String| StepError::msg(StepId::RunQemu, message);
    let address = &cfg.vnc.bind_address;
    let loopback = address
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
        || address == "localhost";
    if !loopback {
        ev.warn(format!(
            "VNC listens on {address}:{port}: anyone who reaches this host can see and type on the guest's console{}",
            if cfg.vnc.use_password {
                ""
            } else {
                " (no password: set `vnc_use_password = true`)"
            }
        ));
    }
    let password = if cfg.vnc.use_password {
        let pw = match &cfg.vnc.password {
            Some(pw) => pw.expose().clone(),
            None => random_vnc_password(),
        };
        let connected;
        let qmp = match vm.qmp() {
            Some(q) => q,
            None => {
                connected = Qmp::connect(Path::new(qmp_socket), QMP_CONNECT)
                    .await
                    .map_err(|e| fail(format!("VNC password: {e}")))?;
                &connected
            }
        };
        qmp.execute_raw(
            "change-vnc-password",
            Some(serde_json::json!({ "password": pw })),
            QMP_CONNECT,
        )
        .await
        .map_err(|e| fail(format!("VNC password: `change-vnc-password`: {e}")))?;
        Some(pw)
    } else {
        None
    };
    let shown = if loopback { "127.0.0.1" } else { address };
    ev.say(format!(
        "The VM will be run headless, without a GUI. To view its screen, connect via VNC {} to vnc://{shown}:{port}",
        match &password {
            Some(pw) => format!("with the password {pw}"),
            None => "without a password".to_string(),
        }
    ));
    Ok(())
}

/// Eight characters, as Packer generates when `vnc_password` is unset.
fn random_vnc_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}
