//! What runs in the guest between SSH and shutdown, besides the
//! provisioners: their shared environment, `clear_authorized_keys` (the
//! build's key out of the guest when asked) and `scrub` (a whole-disk
//! MAAS artifact carries the disk as it is: scrubbed in the guest as the
//! last step; a tarball is scrubbed while streaming).

use kiln_qemu::QemuConfig;

use super::HOST_FROM_GUEST;
use super::key::BuildKey;
use super::launch::Vm;
use super::serve_http::Http;
use crate::guest::Guest;
use crate::pipeline::{Pipeline, StepError};
use crate::provision::shell::BuildFacts;
use crate::run::RunOptions;
use crate::run::provisioners::ProvisionEnv;
use crate::run::supervise::supervised;
use crate::spec::BuildSpec;
use crate::step::StepId;

/// What every provisioner of the build shares: Packer's build values
/// (`{{ .Host }}`, `{{ .SSHPrivateKey }}`, …), the QEMU they watch.
pub(super) fn provision_env<'a>(
    spec: &BuildSpec,
    cfg: &QemuConfig,
    opts: &'a RunOptions,
    key: &BuildKey,
    http: &Http,
    ssh_host_port: Option<u16>,
    vm: &Vm,
) -> Result<ProvisionEnv<'a>, StepError> {
    let ssh = cfg.ssh();
    let http_port = http.port;
    let mut data = http.template_data.clone();
    data.insert("ID", &cfg.vm_name);
    data.insert(
        "Host",
        ssh.and_then(|s| s.host.clone())
            .unwrap_or_else(|| "127.0.0.1".into()),
    );
    data.insert(
        "Port",
        ssh_host_port.map(|p| p.to_string()).unwrap_or_default(),
    );
    data.insert("User", ssh.map(|s| s.username.clone()).unwrap_or_default());
    data.insert(
        "Password",
        ssh.and_then(|s| s.password.as_ref().map(|p| p.expose().clone()))
            .unwrap_or_default(),
    );
    data.insert("ConnType", if ssh.is_some() { "ssh" } else { "none" });
    data.insert("PackerRunUUID", &opts.run_uuid);
    data.insert("PackerHTTPIP", HOST_FROM_GUEST);
    data.insert("PackerHTTPPort", http_port);
    data.insert("PackerHTTPAddr", format!("{HOST_FROM_GUEST}:{http_port}"));
    if let Some(private) = key.generated_private()? {
        data.insert("SSHPrivateKey", private);
    }
    Ok(ProvisionEnv {
        facts: BuildFacts {
            build_name: cfg.name.clone(),
            builder_type: "qemu".into(),
            http: (http_port != 0).then(|| (HOST_FROM_GUEST.to_string(), http_port)),
        },
        data,
        cwd: &opts.cwd,
        ssh_hint: ssh_host_port.map(|port| {
            format!(
                "ssh -p {port} {}@127.0.0.1 (kiln's key is in memory only; use the build's password or your own key)",
                ssh.map(|s| s.username.as_str()).unwrap_or("root")
            )
        }),
        seed: crate::spec::seed_of(&spec.name),
        machine: Some(vm.qemu.clone()),
    })
}

pub(super) struct ClearAuthorizedKeys<'a> {
    pub cfg: &'a QemuConfig,
    pub key: &'a BuildKey,
    pub guest: Option<&'a Guest>,
    pub vm: &'a Vm,
}

impl ClearAuthorizedKeys<'_> {
    pub async fn run(self, p: &mut Pipeline) -> Result<(), StepError> {
        let (Some(s), Some(g), Some(pk)) = (self.cfg.ssh(), self.guest, self.key.public_line())
        else {
            return Ok(());
        };
        if !s.clear_authorized_keys {
            return Ok(());
        }
        let command = kiln_ssh::AuthorizedKeysCleanup::new(pk).command();
        p.step(
            StepId::ClearAuthorizedKeys,
            supervised(&self.vm.qemu, g.exec_quiet(&command)),
        )
        .await
    }
}

pub(super) struct Scrub<'a> {
    pub spec: &'a BuildSpec,
    pub guest: Option<&'a Guest>,
    pub vm: &'a Vm,
}

impl Scrub<'_> {
    pub async fn run(self, p: &mut Pipeline) -> Result<(), StepError> {
        let Some(g) = self.guest else {
            return Ok(());
        };
        if !self.spec.needs_guest_scrub() {
            return Ok(());
        }
        let script = crate::postprocess::maas::guest_scrub_script();
        let command = format!("sudo -n sh -c {}", kiln_ssh::shell::quote(&script));
        p.step(
            StepId::Scrub,
            supervised(&self.vm.qemu, g.exec_quiet(&command)),
        )
        .await
    }
}
