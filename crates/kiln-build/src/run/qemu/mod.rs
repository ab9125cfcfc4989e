//! The `qemu` source's build, step by step as packer-plugin-qemu's
//! `builder.go` runs it. This function is the list: each step is a struct
//! of its inputs in a file of its own, run with the pipeline
//! ([`Pipeline`]); a step's output is the input of the next, so the order
//! cannot drift. [`crate::step::build_steps`] lists the same steps for
//! `kiln plan`, and the pipeline checks that this runs them in order.

mod boot;
mod download;
mod guest_steps;
mod key;
mod launch;
mod launch_cached;
mod launch_plain;
mod media;
mod output_dir;
mod ports;
mod serve_http;
mod shutdown;
mod wait_ssh;

use std::path::Path;

use kiln_qemu::QemuConfig;
use kiln_qemu::accel::{AccelDecision, AccelVerdict, decide_accelerator};
use kiln_qemu::plan::{ConsoleTap, RuntimeFacts};

use super::provisioners;
use super::{RunOptions, Siblings};
use crate::artifact::Artifact;
use crate::pipeline::{Pipeline, StepError};
use crate::spec::BuildSpec;
use crate::step::{StepId, build_steps};

/// The address the guest reaches the host's loopback at (QEMU user networking).
const HOST_FROM_GUEST: &str = "10.0.2.2";

pub(crate) async fn run(
    spec: &BuildSpec,
    cfg: &QemuConfig,
    opts: &RunOptions,
    p: &mut Pipeline,
    siblings: &Siblings,
) -> Result<Artifact, StepError> {
    let cwd = opts.cwd.as_path();
    let launcher = launch::Launcher::choose(cfg, opts, &p.ev);

    // The throwaway key first: every later event must know to mask it.
    let key = key::SshKey {
        cfg,
        cwd,
        store: launcher.store(),
    }
    .run(p)
    .await?;
    let accel = decide(cfg, opts.kvm.as_ref())?;
    if let Some(w) = &accel.warning {
        p.ev.warn(w.clone());
    }
    let source = download::Download { cfg, opts }.run(p).await?;
    let out_dir = output_dir::PrepareOutputDir {
        dir: cwd.join(&cfg.output_directory),
        force: opts.force,
    }
    .run(p)
    .await?;
    let scratch = output_dir::scratch(p)?;
    let http = serve_http::HttpServer {
        cfg,
        cwd,
        public_key: key.public_line(),
    }
    .run(p)
    .await?;
    let media = media::SeedMedia {
        cfg,
        cwd,
        scratch: &scratch,
        data: &http.template_data,
    }
    .run(p)
    .await?;
    let efi_code = media::PrepareEfivars {
        cfg,
        out_dir: &out_dir.path,
    }
    .run(p)
    .await?;
    let ports = ports::PortForward { cfg }.run(p).await?;

    // The command line, planned (pure) from what the steps made.
    let facts = RuntimeFacts {
        accelerator: accel.accelerator,
        ssh_host_port: ports.ssh,
        http_ip: HOST_FROM_GUEST.into(),
        http_port: http.port,
        vnc_port: ports.vnc,
        iso_path: if cfg.disk_image {
            None
        } else {
            source.absolute.clone()
        },
        cd_path: media.cd,
        floppy_path: media.floppy,
        efi_code,
        qmp_socket: scratch.join("qmp.sock").display().to_string(),
    };
    let plan =
        kiln_qemu::plan_qemu(cfg, &facts).map_err(|e| StepError::failed(StepId::RunQemu, e))?;
    for note in &plan.notes {
        p.ev.warn(note.clone());
    }
    if let ConsoleTap::Unavailable { reason } = &plan.console {
        p.ev.warn(format!("no console log and no boot watchdog: {reason}"));
    }
    launch::wait_for_sibling_files(cfg, cwd, siblings, &p.ev).await;

    // The VM: on fresh disks, or from the step cache's longest prefix.
    let launcher = launcher.take_argv(&plan, cwd, &p.ev);
    p.expect(build_steps(spec, launcher.cache_use()));
    let mut vm = launcher
        .launch(
            launch::Launch {
                spec,
                cfg,
                opts,
                plan: &plan,
                source: &source,
                accelerator: accel.accelerator,
            },
            p,
        )
        .await?;
    boot::announce_vnc(cfg, ports.vnc, &vm, &facts.qmp_socket, &p.ev).await?;
    boot::TypeBootCommand {
        cfg,
        facts: &facts,
        public_key: key.public_line(),
        vm: &vm,
    }
    .run(p)
    .await?;
    let mut guest = wait_ssh::WaitSsh {
        cfg,
        key: &key,
        ssh_host_port: ports.ssh,
        vm: &vm,
        silence: opts.boot_silence_timeout,
        console_tapped: plan.console == ConsoleTap::Stdout,
        accelerator: accel.accelerator,
    }
    .run(p)
    .await?;
    vm.after_ssh(guest.as_ref(), p).await?;

    let env = guest_steps::provision_env(spec, cfg, opts, &key, &http, ports.ssh, &vm)?;
    for i in vm.first_provisioner()..spec.provisioners.len() {
        let ran = provisioners::run_step(spec, i, guest.as_mut(), &env, opts.on_error, p).await?;
        let step = StepId::provision(spec, i);
        vm.after_provisioner(&step, i + 1, ran, guest.as_ref(), p)
            .await?;
    }
    guest_steps::ClearAuthorizedKeys {
        cfg,
        key: &key,
        guest: guest.as_ref(),
        vm: &vm,
    }
    .run(p)
    .await?;
    guest_steps::Scrub {
        spec,
        guest: guest.as_ref(),
        vm: &vm,
    }
    .run(p)
    .await?;
    shutdown::Shutdown {
        cfg,
        guest,
        vm: &vm,
        qmp_socket: &facts.qmp_socket,
    }
    .run(p)
    .await?;
    vm.write_disks(cfg, cwd, source.absolute.as_deref().map(Path::new), p)
        .await?;

    // Success: the output directory is the artifact now.
    let files = out_dir.keep(p, &cfg.output_directory);
    let mut artifact = Artifact::new("qemu", "VM", files);
    artifact.build_public_keys = key.public_line().map(str::to_string).into_iter().collect();
    Ok(artifact)
}

/// The accelerator QEMU runs with (the probe's verdict against the field).
fn decide(cfg: &QemuConfig, kvm: Option<&AccelVerdict>) -> Result<AccelDecision, StepError> {
    let unknown = AccelVerdict::ProbeFailed {
        detail: "not probed".into(),
    };
    decide_accelerator(cfg.accelerator, kvm.unwrap_or(&unknown))
        .map_err(|e| StepError::msg(StepId::RunQemu, e))
}
