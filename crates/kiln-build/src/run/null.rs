//! The `null` source: no machine; provisioners run locally (shell-local)
//! or against an existing SSH host.

use kiln_qemu::placeholders::TemplateData;
use kiln_ssh::{Auth, KeyPair, Target, WaitConfig};

use super::RunOptions;
use super::provisioners::{self, ProvisionEnv};
use crate::artifact::Artifact;
use crate::guest::Guest;
use crate::pipeline::{Pipeline, StepError};
use crate::provision::shell::BuildFacts;
use crate::spec::{BuildSpec, NullConfig, seed_of};
use crate::step::{CacheUse, StepId, build_steps};

pub(crate) async fn run(
    spec: &BuildSpec,
    cfg: &NullConfig,
    opts: &RunOptions,
    p: &mut Pipeline,
) -> Result<Artifact, StepError> {
    p.expect(build_steps(spec, CacheUse::Off));
    let mut data = TemplateData::new()
        .with("PackerRunUUID", &opts.run_uuid)
        .with("ID", "Null")
        .with("ConnType", if cfg.ssh.is_some() { "ssh" } else { "none" });
    let mut guest = match &cfg.ssh {
        None => None,
        Some(ssh) => {
            let mut auth = Auth::new();
            if let Some(key) = &ssh.private_key_file {
                let key = KeyPair::load(&opts.cwd.join(key))
                    .map_err(|e| StepError::msg(StepId::WaitSsh, e.to_string()))?;
                auth = auth.key(key);
            }
            if let Some(pw) = &ssh.password {
                auth = auth.password(pw.clone());
            }
            let target = Target::new(&ssh.host, ssh.port, &ssh.username);
            data.insert("Host", &ssh.host);
            data.insert("Port", ssh.port);
            data.insert("User", &ssh.username);
            let config = WaitConfig {
                timeout: ssh.timeout,
                ..WaitConfig::default()
            };
            let ev = p.ev.clone();
            let session = p
                .step(
                    StepId::WaitSsh,
                    kiln_ssh::wait_ready(target, auth, config, |e| {
                        ev.diagnosis("ssh", e.to_string())
                    }),
                )
                .await?;
            Some(Guest::new(session))
        }
    };
    let env = ProvisionEnv {
        facts: BuildFacts {
            build_name: cfg.name.clone(),
            builder_type: "null".into(),
            http: None,
        },
        data,
        cwd: &opts.cwd,
        ssh_hint: None,
        seed: seed_of(&spec.name),
        machine: None,
    };
    provisioners::run_all(spec, guest.as_mut(), &env, opts.on_error, p).await?;
    if let Some(g) = guest {
        g.into_session().close().await;
    }
    Ok(Artifact::new("null", "Null", Vec::new()))
}
