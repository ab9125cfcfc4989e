//! `port_forward`: the host port QEMU forwards to the guest's SSH port,
//! and the VNC port when a `vnc_*` option asks for one (both free ports on
//! 127.0.0.1 in Packer's ranges).

use kiln_qemu::QemuConfig;
use kiln_qemu::config::Communicator;

use crate::http::HttpError;
use crate::pipeline::{Pipeline, StepError};
use crate::step::StepId;

pub(super) struct PortForward<'a> {
    pub cfg: &'a QemuConfig,
}

pub(super) struct Ports {
    pub ssh: Option<u16>,
    pub vnc: Option<u16>,
}

impl PortForward<'_> {
    pub async fn run(self, p: &mut Pipeline) -> Result<Ports, StepError> {
        let cfg = self.cfg;
        let ssh = match &cfg.communicator {
            Communicator::Ssh(_) if !cfg.host_port.skip_nat_mapping => Some(
                p.step(
                    StepId::PortForward,
                    free_port(cfg.host_port.min, cfg.host_port.max),
                )
                .await?,
            ),
            _ => None,
        };
        let vnc = if cfg.vnc.enabled {
            let port = free_port(cfg.vnc.port_min, cfg.vnc.port_max)
                .await
                .map_err(|e| {
                    StepError::msg(
                        StepId::RunQemu,
                        format!(
                            "no free VNC port in {}..{}: {e}",
                            cfg.vnc.port_min, cfg.vnc.port_max
                        ),
                    )
                })?;
            Some(port)
        } else {
            None
        };
        Ok(Ports { ssh, vnc })
    }
}

/// A free TCP port on 127.0.0.1 in `min..=max`.
async fn free_port(min: u16, max: u16) -> Result<u16, HttpError> {
    let bind = std::net::Ipv4Addr::LOCALHOST.into();
    let l = crate::http::bind_in_range(bind, min, max).await?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|last| HttpError::NoFreePort {
            bind,
            min,
            max,
            last,
        })
}
