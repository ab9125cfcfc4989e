//! The `qemu` source's pipeline, step by step as Packer's builder runs it:
//! download, prepare the output directory, throwaway key, HTTP server,
//! seed media, disks, UEFI variables, SSH port, QEMU, boot command, SSH,
//! provisioners, shutdown, disk conversion.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiln_qemu::accel::{AccelDecision, AccelVerdict, decide_accelerator};
use kiln_qemu::config::{Communicator, IsoChecksum};
use kiln_qemu::disk::{SourceImage, run_disk_command};
use kiln_qemu::placeholders::{self, TemplateData};
use kiln_qemu::plan::{ConsoleTap, RuntimeFacts};
use kiln_qemu::process::{QemuCommand, QemuProcess};
use kiln_qemu::qmp::Qmp;
use kiln_qemu::{Accelerator, QemuConfig};
use kiln_ssh::{Auth, KeyPair, KeyPairType, Target, WaitConfig, WaitEvent};

use super::cached::{self, CacheOptions};
use super::provisioners::{self, ProvisionEnv};
use super::{RunOptions, Siblings, fail};
use crate::artifact::Artifact;
use crate::cache::checkpoint::Resumed;
use crate::cache::key::CacheKey;
use crate::cache::store::Store;
use crate::checksum::{Algorithm, Checksum, ChecksumSpec};
use crate::download::{DownloadProgress, DownloadRequest};
use crate::events::BuildEvents;
use crate::events::StepOutcome;
use crate::guest::Guest;
use crate::http::{HttpContent, HttpPlan};
use crate::pipeline::{Pipeline, StepError};
use crate::provision::shell::BuildFacts;
use crate::spec::BuildSpec;
use crate::step::{CacheUse, StepId, build_steps};

/// The address the guest reaches the host's loopback at (QEMU user networking).
const HOST_FROM_GUEST: &str = "10.0.2.2";

pub(crate) async fn run(
    spec: &BuildSpec,
    cfg: &QemuConfig,
    opts: &RunOptions,
    p: &mut Pipeline,
    siblings: &Siblings,
) -> Result<Artifact, StepError> {
    let cwd = opts.cwd.clone();
    let store = step_store(cfg, opts, &p.ev);

    // The throwaway key first: every later event must know to mask it.
    let ssh = cfg.ssh().cloned();
    let key = match &ssh {
        Some(s) => Some(
            p.step(StepId::SshKey, async {
                match &s.private_key_file {
                    Some(path) => KeyPair::load(&cwd.join(path)).map_err(|e| e.to_string()),
                    None if store.is_some() => {
                        // Stable per build and store: a guest restored from
                        // a checkpoint trusts the key of its first boot.
                        let store = store.as_ref().map(|(s, _)| s);
                        let seed = match store {
                            Some(store) => cached::build_key_seed(store, &spec.name)?,
                            None => return Err("no step cache".to_string()),
                        };
                        KeyPair::ed25519_from_seed(&seed, &format!("kiln_{}", cfg.name))
                            .map_err(|e| e.to_string())
                    }
                    None => {
                        let kind: KeyPairType = s
                            .temporary_key_pair_type
                            .parse()
                            .map_err(|e: kiln_ssh::KeyError| e.to_string())?;
                        KeyPair::generate(
                            kind,
                            s.temporary_key_pair_bits,
                            &format!("kiln_{}", cfg.name),
                        )
                        .map_err(|e| e.to_string())
                    }
                }
            })
            .await?,
        ),
        None => None,
    };
    let public_key = match &key {
        Some(k) => Some(
            k.public_key_line()
                .map_err(|e| fail(StepId::SshKey, e.to_string()))?,
        ),
        None => None,
    };
    if let Some(k) = &key
        && k.source_path().is_none()
    {
        let private = k
            .private_key_openssh()
            .map_err(|e| fail(StepId::SshKey, e.to_string()))?;
        p.ev.events.add_secrets([private]);
    }
    let ev = p.ev.clone();

    let decision = decide(cfg, opts.kvm.as_ref()).map_err(|e| fail(StepId::RunQemu, e))?;
    if let Some(w) = &decision.warning {
        ev.warn(w.clone());
    }

    // Download (or verify in place) the ISO or base image.
    let source_image = if cfg.iso_urls.is_empty() {
        None
    } else {
        ev.say("Retrieving ISO");
        let req = DownloadRequest {
            urls: cfg.iso_urls.clone(),
            checksum: checksum_spec(&cfg.iso_checksum),
            target_path: cfg.iso_target_path.as_ref().map(PathBuf::from),
            extension: cfg.iso_target_extension.clone(),
            cache_dir: opts.cache_dir.clone(),
            cwd: cwd.clone(),
        };
        let ev2 = ev.clone();
        let progress = move |pr: DownloadProgress| match pr {
            DownloadProgress::Transfer { done, total } => ev2.progress("download", done, total),
            DownloadProgress::Verify { done, total } => ev2.progress("verify", done, Some(total)),
        };
        let got = p
            .step(StepId::Download, crate::download::fetch(&req, &progress))
            .await?;
        if got.checksum.is_none() {
            ev.warn("a checksum of `none` was specified: the source image is not verified");
        }
        p.record.inputs.push(serde_json::json!({
            "url": got.url,
            "path": got.path,
            "checksum": got.checksum.as_ref().map(|c| c.to_string()),
            "verified": match (&got.checksum, got.reused) {
                (None, _) => "not verified (`none`)",
                (Some(_), true) => "verified earlier (unchanged file)",
                (Some(_), false) => "verified now",
            },
        }));
        Some(got)
    };

    // Output directory: never overwrite what a user has unless -force.
    let out_dir = cwd.join(&cfg.output_directory);
    p.step(
        StepId::PrepareOutputDir,
        prepare_output_dir(&out_dir, opts.force),
    )
    .await?;
    let remove_out_dir = {
        let dir = out_dir.clone();
        p.defer("remove output directory", async move {
            tokio::fs::remove_dir_all(&dir)
                .await
                .or_else(ignore_missing)
                .map_err(|e| format!("{}: {e}", dir.display()))
        })
    };

    // Scratch space: QMP socket (short path), seed media.
    let scratch = tempfile::Builder::new()
        .prefix("kiln-")
        .tempdir_in(std::env::temp_dir())
        .map_err(|e| {
            fail(
                StepId::PrepareOutputDir,
                format!("temporary directory: {e}"),
            )
        })?;
    let scratch_path = scratch.path().to_path_buf();
    let _ = p.defer("remove temporary files", async move {
        drop(scratch);
        Ok(())
    });

    // HTTP server.
    let http_bind: std::net::IpAddr = cfg.http.bind_address.parse().map_err(|_| {
        fail(
            StepId::HttpServer,
            format!(
                "`http_bind_address` {:?} is not an IP address",
                cfg.http.bind_address
            ),
        )
    })?;
    let template_base = TemplateData::new()
        .with("HTTPIP", HOST_FROM_GUEST)
        .with("Name", &cfg.vm_name)
        .with("SSHPublicKey", public_key.as_deref().unwrap_or(""));
    let http = if cfg.http.enabled() {
        let content = match &cfg.http.directory {
            Some(dir) => HttpContent::Directory(cwd.join(dir)),
            None => {
                // Rendered after the port is known: serve a placeholder map now,
                // then swap (the port appears in content only via HTTPPort).
                HttpContent::Files(Default::default())
            }
        };
        let plan = HttpPlan {
            bind: http_bind,
            port_min: cfg.http.port_min,
            port_max: cfg.http.port_max,
            content,
        };
        let mut server = p
            .step(StepId::HttpServer, crate::http::start(&plan))
            .await?;
        if cfg.http.directory.is_none() {
            // Restart with the rendered content on the port just found.
            let port = server.port();
            server.stop().await;
            let data = template_base.clone().with("HTTPPort", port);
            let mut files = std::collections::BTreeMap::new();
            for (path, body) in &cfg.http.content {
                let body = placeholders::render(body, &data)
                    .map_err(|e| fail(StepId::HttpServer, format!("`http_content` {path}: {e}")))?;
                let key = if path.starts_with('/') {
                    path.clone()
                } else {
                    format!("/{path}")
                };
                files.insert(key, body);
            }
            let plan = HttpPlan {
                bind: http_bind,
                port_min: port,
                port_max: port,
                content: HttpContent::Files(files),
            };
            server = crate::http::start(&plan)
                .await
                .map_err(|e| fail(StepId::HttpServer, e.to_string()))?;
        }
        ev.say(format!("Starting HTTP server on port {}", server.port()));
        Some(server)
    } else {
        None
    };
    let http_port = http.as_ref().map(|s| s.port()).unwrap_or(0);
    let template_data = template_base.clone().with("HTTPPort", http_port);
    if let Some(server) = http {
        let _ = p.defer("stop HTTP server", async move {
            server.stop().await;
            Ok(())
        });
    }

    // Seed media, written in-process.
    let cd_path = if cfg.media.has_cd() {
        let path = scratch_path.join("cd.iso");
        let label = cfg
            .media
            .cd_label
            .clone()
            .unwrap_or_else(|| "packer".into());
        let mut content = std::collections::BTreeMap::new();
        for (name, text) in &cfg.media.cd_content {
            let text = placeholders::render(text, &template_data)
                .map_err(|e| fail(StepId::CreateCd, format!("`cd_content` {name}: {e}")))?;
            content.insert(name.clone(), text);
        }
        let files = cfg.media.cd_files.clone();
        let cwd2 = cwd.clone();
        let path2 = path.clone();
        p.step(StepId::CreateCd, async move {
            let files =
                kiln_qemu::cdrom::cd_files(&files, &content, &cwd2).map_err(|e| e.to_string())?;
            kiln_qemu::cdrom::write_iso(&path2, &label, &files, None).map_err(|e| e.to_string())
        })
        .await?;
        Some(path.display().to_string())
    } else {
        None
    };
    let floppy_path = if cfg.media.has_floppy() {
        let path = scratch_path.join("floppy.img");
        let label = cfg
            .media
            .floppy_label
            .clone()
            .unwrap_or_else(|| "packer".into());
        let m = cfg.media.clone();
        let cwd2 = cwd.clone();
        let path2 = path.clone();
        p.step(StepId::CreateFloppy, async move {
            let files = kiln_qemu::floppy::floppy_files(
                &m.floppy_files,
                &m.floppy_dirs,
                &m.floppy_content,
                &cwd2,
            )
            .map_err(|e| e.to_string())?;
            kiln_qemu::floppy::write_floppy(&path2, &label, &files).map_err(|e| e.to_string())
        })
        .await?;
        Some(path.display().to_string())
    } else {
        None
    };

    let source_abs = source_image
        .as_ref()
        .map(|d| absolute(&d.path).display().to_string());

    // UEFI variables.
    let efi_code = if cfg.efi.enabled {
        let arch = kiln_qemu::firmware::arch_of_binary(&cfg.qemu_binary).to_string();
        let fw =
            kiln_qemu::firmware::resolve(cfg.efi.code.as_deref(), cfg.efi.vars.as_deref(), &arch)
                .map_err(|e| fail(StepId::PrepareEfivars, e.to_string()))?;
        let out = out_dir.clone();
        let vars = fw.vars.clone();
        p.step(StepId::PrepareEfivars, async move {
            kiln_qemu::firmware::copy_efivars(&vars, &out).map_err(|e| e.to_string())
        })
        .await?;
        Some(fw.code.display().to_string())
    } else {
        None
    };

    // The SSH port forward.
    let ssh_host_port = match &cfg.communicator {
        Communicator::Ssh(_) if !cfg.host_port.skip_nat_mapping => Some(
            p.step(
                StepId::PortForward,
                free_port(cfg.host_port.min, cfg.host_port.max),
            )
            .await?,
        ),
        _ => None,
    };

    // VNC, when a `vnc_*` option asks for it: a free port in Packer's range.
    let vnc_port = if cfg.vnc.enabled {
        Some(
            free_port(cfg.vnc.port_min, cfg.vnc.port_max)
                .await
                .map_err(|e| {
                    fail(
                        StepId::RunQemu,
                        format!(
                            "no free VNC port in {}..{}: {e}",
                            cfg.vnc.port_min, cfg.vnc.port_max
                        ),
                    )
                })?,
        )
    } else {
        None
    };

    // QEMU.
    let facts = RuntimeFacts {
        accelerator: decision.accelerator,
        ssh_host_port,
        http_ip: HOST_FROM_GUEST.into(),
        http_port,
        vnc_port,
        iso_path: if cfg.disk_image {
            None
        } else {
            source_abs.clone()
        },
        cd_path,
        floppy_path,
        efi_code,
        qmp_socket: scratch_path.join("qmp.sock").display().to_string(),
    };
    let plan =
        kiln_qemu::plan_qemu(cfg, &facts).map_err(|e| fail(StepId::RunQemu, e.to_string()))?;
    for note in &plan.notes {
        ev.warn(note.clone());
    }
    if let ConsoleTap::Unavailable { reason } = &plan.console {
        ev.warn(format!("no console log and no boot watchdog: {reason}"));
    }
    wait_for_sibling_files(cfg, &cwd, siblings, &ev).await;

    // The step cache takes the VM's disks when the command line lets it.
    let media: Vec<(&str, &str)> = [
        ("cd", facts.cd_path.as_deref()),
        ("floppy", facts.floppy_path.as_deref()),
    ]
    .into_iter()
    .filter_map(|(name, path)| path.map(|p| (name, p)))
    .collect();
    let disk_paths = cfg.disk_paths();
    let store = match store {
        Some((store, options)) => match cached::tokenize(
            &plan.program,
            &plan.args,
            &cached::ArgvFacts {
                cwd: &cwd,
                disks: &disk_paths,
                qmp_socket: &facts.qmp_socket,
                ssh_host_port,
                vnc_port,
                media: &media,
            },
        ) {
            Ok(tokenized) => Some((store, options, tokenized)),
            Err(why) => {
                ev.say(format!("Step cache off for this build: {why}"));
                None
            }
        },
        None => None,
    };
    p.expect(build_steps(
        spec,
        if store.is_some() {
            CacheUse::On
        } else {
            CacheUse::Off
        },
    ));
    // Disks.
    let disk_plan = kiln_qemu::plan_disk(
        cfg,
        source_abs
            .as_deref()
            .map(|path| SourceImage { path, format: None }),
    )
    .map_err(|e| fail(StepId::CreateDisk, e.to_string()))?;
    if store.is_none() {
        ev.say("Creating required virtual machine disks");
        for cmd in &disk_plan.before_boot {
            p.step(
                StepId::of_disk(cmd.step()),
                run_disk_command(cmd, &cwd, Duration::from_secs(600)),
            )
            .await?;
        }
    }

    let log_dir = opts.log_dir.join(sanitize(&spec.name));
    let _ = std::fs::create_dir_all(&log_dir);
    let console_log = log_dir.join("console.log");
    let _ = std::fs::remove_file(&console_log);
    ev.say(if cfg.disk_image {
        "Starting VM, booting disk image"
    } else {
        "Starting VM, booting from CD-ROM"
    });
    let mut cache_run = None;
    let mut resumed = None;
    let qemu = match store {
        Some((store, options, tokenized)) => {
            let source_path = source_abs.as_deref().map(Path::new);
            let found = p
                .step(
                    StepId::CacheLookup,
                    cached::lookup(
                        &store,
                        cached::LookupInput {
                            spec,
                            cfg,
                            options: &options,
                            cwd: &cwd,
                            tokenized,
                            source: source_path,
                            source_digest: verified_digest(source_image.as_ref()),
                            accelerator: decision.accelerator.as_str(),
                        },
                    ),
                )
                .await?;
            if let Some(why) = &found.boundary {
                ev.say(format!("Step cache: {why}"));
            }
            if let Some((j, entry)) = &found.hit {
                ev.say(format!(
                    "Step cache: reusing {} ({})",
                    found.names[*j],
                    entry.key.short()
                ));
                if let Some((until, step)) = &found.until
                    && until <= j
                {
                    record_cached(spec, &found.keys, *until, p);
                    return Err(StepError::Stopped { step: step.clone() });
                }
            } else {
                ev.say("Step cache: nothing cached for this build yet");
            }
            let setup = cached::setup(
                &found.tokenized,
                found.host.clone(),
                console_log.clone(),
                &cwd,
                &options.sensitive,
            );
            let step = if found.hit.is_some() {
                StepId::ResumeVm
            } else {
                StepId::RunQemu
            };
            let (vm, started) = p
                .step(
                    step,
                    cached::start(
                        &store,
                        setup,
                        &found.base,
                        found.hit.as_ref(),
                        cfg.disk_image,
                    ),
                )
                .await?;
            if let cached::Started::Resumed {
                index,
                key,
                how,
                fallback,
            } = &started
            {
                if let Some(why) = fallback {
                    ev.warn(format!(
                        "the saved VM state was not used ({why}): booting the cached disk"
                    ));
                }
                ev.say(format!(
                    "Resumed after {} from {} ({})",
                    found.names[*index],
                    key.short(),
                    match how {
                        Resumed::State => "saved state",
                        Resumed::Cold => "cold boot of the cached disk",
                    }
                ));
                record_cached(spec, &found.keys, *index, p);
                resumed = Some((*index, *how));
            }
            let qemu = vm.process().clone();
            cache_run = Some(cached::CacheRun {
                store,
                vm,
                keys: found.keys,
                names: found.names,
                build: spec.name.clone(),
                until: found.until,
                publishing: true,
                vars_out: found.tokenized.vars.clone(),
                base_format: found.base.first().map(|b| b.format.clone()),
            });
            qemu
        }
        None => {
            let cmd = QemuCommand {
                program: plan.program.clone(),
                args: plan.args.clone(),
                cwd: Some(cwd.clone()),
                console_from_stdout: plan.console == ConsoleTap::Stdout,
                console_log: Some(console_log.clone()),
            };
            Arc::new(
                p.step(StepId::RunQemu, async {
                    let q = QemuProcess::spawn(cmd).await.map_err(|e| e.to_string())?;
                    q.check_started(Duration::from_millis(300))
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>(q)
                })
                .await?,
            )
        }
    };
    {
        let q = qemu.clone();
        let _ = p.defer("stop QEMU", async move {
            if q.try_exit().is_none() {
                q.terminate(Duration::from_secs(2)).await;
            }
            Ok(())
        });
    }
    forward_console(&qemu, &ev);
    if let Some(port) = vnc_port {
        let vm_qmp = cache_run.as_ref().map(|c| c.vm.qmp());
        let socket = PathBuf::from(&facts.qmp_socket);
        announce_vnc(cfg, port, vm_qmp, &socket, &ev)
            .await
            .map_err(|e| fail(StepId::RunQemu, e))?;
    }

    // Boot command, typed over QMP.
    let boot_steps = kiln_qemu::plan::plan_boot_steps(
        cfg,
        &kiln_qemu::plan::boot_command_data(cfg, &facts, public_key.as_deref()),
    )
    .map_err(|e| fail(StepId::TypeBootCommand, e.to_string()))?;
    if !boot_steps.is_empty() && resumed.is_none() {
        let socket = PathBuf::from(&facts.qmp_socket);
        let vm_qmp = cache_run.as_ref().map(|c| c.vm.qmp());
        let q = qemu.clone();
        let ev2 = ev.clone();
        let wait = cfg.boot.wait;
        let interval = cfg.boot.key_interval;
        p.step(
            StepId::TypeBootCommand,
            supervised(&qemu, async move {
                if !wait.is_zero() {
                    ev2.say(format!("Waiting {wait:?} for boot..."));
                    tokio::time::sleep(wait).await;
                }
                // The cache's VM holds QEMU's only QMP connection.
                let connected;
                let qmp = match vm_qmp {
                    Some(qmp) => qmp,
                    None => {
                        connected = Qmp::connect(&socket, Duration::from_secs(10))
                            .await
                            .map_err(|e| e.to_string())?;
                        &connected
                    }
                };
                ev2.say("Typing the boot command over QMP...");
                let options = kiln_qemu::typing::TypingOptions::with_interval(interval);
                for step in &boot_steps {
                    kiln_qemu::typing::type_boot_command(
                        qmp,
                        &step.keys,
                        &options,
                        Some(q.console()),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            }),
        )
        .await?;
    }

    let mut guest = None;
    if let (Some(s), Some(key)) = (&ssh, &key) {
        let host = s.host.clone().unwrap_or_else(|| "127.0.0.1".into());
        let port = ssh_host_port.unwrap_or(s.port);
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
        ev.say("Waiting for SSH to become available...");
        let session = p
            .step(
                StepId::WaitSsh,
                wait_ssh(
                    &qemu,
                    target,
                    auth,
                    config,
                    &ev,
                    decision.accelerator,
                    opts.boot_silence_timeout,
                    plan.console == ConsoleTap::Stdout,
                ),
            )
            .await?;
        ev.say("Connected to SSH!");
        guest = Some(Guest::new(session));
    }
    if let (Some((_, Resumed::State)), Some(g)) = (&resumed, guest.as_ref()) {
        // The restored guest's clock stopped at the checkpoint.
        let command = crate::cache::checkpoint::clock_sync_command(std::time::SystemTime::now());
        if let Err(e) = g.exec_quiet(&command).await {
            ev.warn(format!("cannot set the restored guest's clock: {e}"));
        }
    }
    if resumed.is_none()
        && let Some(c) = cache_run.as_mut()
    {
        c.after(0, guest.as_ref(), p).await?;
    }

    // Provisioners.
    let mut data = template_data.clone();
    data.insert("ID", &cfg.vm_name);
    data.insert(
        "Host",
        ssh.as_ref()
            .and_then(|s| s.host.clone())
            .unwrap_or_else(|| "127.0.0.1".into()),
    );
    data.insert(
        "Port",
        ssh_host_port.map(|p| p.to_string()).unwrap_or_default(),
    );
    data.insert(
        "User",
        ssh.as_ref().map(|s| s.username.clone()).unwrap_or_default(),
    );
    data.insert(
        "Password",
        ssh.as_ref()
            .and_then(|s| s.password.as_ref().map(|p| p.expose().clone()))
            .unwrap_or_default(),
    );
    data.insert("ConnType", if ssh.is_some() { "ssh" } else { "none" });
    data.insert("PackerRunUUID", &opts.run_uuid);
    data.insert("PackerHTTPIP", HOST_FROM_GUEST);
    data.insert("PackerHTTPPort", http_port);
    data.insert("PackerHTTPAddr", format!("{HOST_FROM_GUEST}:{http_port}"));
    if let Some(k) = &key
        && k.source_path().is_none()
    {
        data.insert(
            "SSHPrivateKey",
            k.private_key_openssh()
                .map_err(|e| fail(StepId::SshKey, e.to_string()))?,
        );
    }
    let env = ProvisionEnv {
        facts: BuildFacts {
            build_name: cfg.name.clone(),
            builder_type: "qemu".into(),
            http: (http_port != 0).then(|| (HOST_FROM_GUEST.to_string(), http_port)),
        },
        data,
        cwd: &cwd,
        ssh_hint: ssh_host_port.map(|port| {
            format!(
                "ssh -p {port} {}@127.0.0.1 (kiln's key is in memory only; use the build's password or your own key)",
                ssh.as_ref().map(|s| s.username.as_str()).unwrap_or("root")
            )
        }),
        seed: crate::spec::seed_of(&spec.name),
        machine: Some(qemu.clone()),
    };
    // Each provisioner watches QEMU: if it dies, the build fails at once.
    let start = resumed.map(|(index, _)| index).unwrap_or(0);
    provisioners::run_all(
        spec,
        start,
        guest.as_mut(),
        &env,
        opts.on_error,
        p,
        cache_run.as_mut(),
    )
    .await?;

    // Remove the build key from the guest when asked.
    if let (Some(s), Some(g), Some(pk)) = (&ssh, guest.as_ref(), &public_key)
        && s.clear_authorized_keys
    {
        let command = kiln_ssh::AuthorizedKeysCleanup::new(pk).command();
        p.step(
            StepId::ClearAuthorizedKeys,
            supervised(&qemu, g.exec_quiet(&command)),
        )
        .await?;
    }

    // A whole-disk MAAS artifact carries the disk as it is: scrub it in
    // the guest as the last step (a tarball is scrubbed while streaming).
    if let Some(g) = guest.as_ref()
        && spec.needs_guest_scrub()
    {
        let script = crate::postprocess::maas::guest_scrub_script();
        let command = format!("sudo -n sh -c {}", kiln_ssh::shell::quote(&script));
        p.step(StepId::Scrub, supervised(&qemu, g.exec_quiet(&command)))
            .await?;
    }

    // Shutdown.
    let shutdown_command = cfg.shutdown_command.clone();
    let timeout = cfg.shutdown_timeout;
    let ev2 = ev.clone();
    let q = qemu.clone();
    let vm_qmp = cache_run.as_ref().map(|c| c.vm.qmp());
    p.step(StepId::Shutdown, async move {
        shutdown(
            &q,
            guest,
            shutdown_command,
            timeout,
            &ev2,
            &facts.qmp_socket,
            vm_qmp,
        )
        .await
    })
    .await?;

    // The output disks from the cache's overlay chain (this is the
    // conversion), or converted / compacted in place.
    if let Some(c) = cache_run {
        ev.say("Writing the output disk from the cached chain...");
        let source = source_abs.as_deref().map(Path::new);
        p.step(StepId::ConvertDisk, c.finish(cfg, &cwd, source))
            .await?;
    } else if !disk_plan.after_shutdown.is_empty() {
        ev.say("Converting hard drive...");
        for cmd in &disk_plan.after_shutdown {
            p.step(
                StepId::of_disk(cmd.step()),
                run_disk_command(cmd, &cwd, Duration::from_secs(3600)),
            )
            .await?;
        }
    }

    // Success: the output directory is the artifact now.
    p.dismiss(remove_out_dir);
    // As Packer lists them: relative to the working directory.
    let files = list_files(&out_dir)
        .into_iter()
        .filter_map(|f| {
            f.file_name()
                .map(|n| Path::new(&cfg.output_directory).join(n))
        })
        .collect();
    let mut artifact = Artifact::new("qemu", "VM", files);
    artifact.build_public_keys = public_key.into_iter().collect();
    Ok(artifact)
}

/// The step cache's store, when the run uses the cache and this build can.
fn step_store(
    cfg: &QemuConfig,
    opts: &RunOptions,
    ev: &BuildEvents,
) -> Option<(Store, CacheOptions)> {
    let options = opts.cache.clone()?;
    if let Err(why) = crate::cache::applies(cfg) {
        ev.say(format!("Step cache off for this build: {why}"));
        return None;
    }
    match Store::open(&options.root) {
        Ok(store) => Some((store, options)),
        Err(e) => {
            ev.warn(format!("no step cache: {e}"));
            None
        }
    }
}

/// The verified sha256/sha512 of the source image, in the form cache keys
/// take (weaker checksums are not trusted to identify a base image).
fn verified_digest(got: Option<&crate::download::Downloaded>) -> Option<String> {
    let c = got?.checksum.as_ref()?;
    matches!(c.algorithm, Algorithm::Sha256 | Algorithm::Sha512).then(|| c.to_string())
}

/// Marks the steps a resume skipped: provisioners 1..=`index`.
fn record_cached(spec: &BuildSpec, keys: &[CacheKey], index: usize, p: &mut Pipeline) {
    for i in 0..index {
        let key = keys
            .get(i + 1)
            .map(|k| k.short().to_string())
            .unwrap_or_default();
        p.record(StepId::provision(spec, i), StepOutcome::Cached { key });
    }
}

fn qemu_died(qemu: &QemuProcess) -> String {
    match qemu.try_exit() {
        Some(exit) => format!(
            "QEMU exited unexpectedly ({}){}",
            exit.status(),
            tail_text("QEMU said", &exit.stderr_tail)
        ),
        None => "QEMU exited unexpectedly".into(),
    }
}

fn tail_text(what: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("\n{what}:\n  {}", lines.join("\n  "))
    }
}

/// How long a failed step waits to see whether QEMU exited too. A guest
/// whose QEMU is killed drops its SSH connection a moment before QEMU's
/// exit is reaped, and the lost connection is only a symptom.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// Runs `fut` while watching QEMU. The outer `Err` says QEMU exited: while
/// `fut` ran, or within [`EXIT_GRACE`] after it failed (its failure is then
/// put down to QEMU's exit). Otherwise `fut`'s own result.
pub(crate) async fn watch<T, E>(
    qemu: &QemuProcess,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<Result<T, E>, String> {
    tokio::select! {
        r = fut => match r {
            Ok(v) => Ok(Ok(v)),
            Err(e) => match qemu.wait_exit_timeout(EXIT_GRACE).await {
                Some(_) => Err(qemu_died(qemu)),
                None => Ok(Err(e)),
            },
        },
        _ = qemu.wait_exit() => Err(qemu_died(qemu)),
    }
}

/// A step future raced against QEMU's exit (see [`watch`]).
async fn supervised<T, E: std::fmt::Display>(
    qemu: &QemuProcess,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    watch(qemu, fut).await?.map_err(|e| e.to_string())
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

/// Stop the guest: the shutdown command (then wait for QEMU to exit), the
/// guest powering itself off (`communicator = "none"`), or ACPI power-down
/// with a short grace before QEMU is stopped.
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

fn decide(cfg: &QemuConfig, kvm: Option<&AccelVerdict>) -> Result<AccelDecision, String> {
    let unknown = AccelVerdict::ProbeFailed {
        detail: "not probed".into(),
    };
    decide_accelerator(cfg.accelerator, kvm.unwrap_or(&unknown))
}

fn checksum_spec(c: &IsoChecksum) -> ChecksumSpec {
    match c {
        IsoChecksum::None => ChecksumSpec::None,
        IsoChecksum::Digest { algorithm, hex } => {
            let algorithm = match algorithm.as_str() {
                "md5" => Algorithm::Md5,
                "sha1" => Algorithm::Sha1,
                "sha512" => Algorithm::Sha512,
                _ => Algorithm::Sha256,
            };
            ChecksumSpec::Digest(Checksum {
                algorithm,
                hex: hex.clone(),
            })
        }
        IsoChecksum::File { location } => ChecksumSpec::File {
            algorithm: None,
            location: location.clone(),
        },
    }
}

/// Packer's `step_prepare_output_dir`.
async fn prepare_output_dir(dir: &Path, force: bool) -> Result<(), String> {
    if dir.exists() {
        if !force {
            return Err(format!(
                "output directory {} exists; use -force to delete it before building",
                dir.display()
            ));
        }
        tokio::fs::remove_dir_all(dir)
            .await
            .map_err(|e| format!("removing {} (-force): {e}", dir.display()))?;
    }
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("creating {}: {e}", dir.display()))
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// A free TCP port on 127.0.0.1 in `min..=max`.
/// Set the VNC password (Packer's `vnc_use_password`: the given one, or a
/// random one of 8 characters) through QMP and say where to connect, as
/// packer-plugin-qemu does. A bind address other than loopback exposes the
/// guest's console to the network: warned about.
async fn announce_vnc(
    cfg: &QemuConfig,
    port: u16,
    vm_qmp: Option<&Qmp>,
    socket: &Path,
    ev: &BuildEvents,
) -> Result<(), String> {
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
        // The cache's VM holds QEMU's only QMP connection; otherwise a
        // short one of our own.
        let connected;
        let qmp = match vm_qmp {
            Some(q) => q,
            None => {
                connected = Qmp::connect(socket, Duration::from_secs(10))
                    .await
                    .map_err(|e| format!("VNC password: {e}"))?;
                &connected
            }
        };
        qmp.execute_raw(
            "change-vnc-password",
            Some(serde_json::json!({ "password": pw })),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| format!("VNC password: `change-vnc-password`: {e}"))?;
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

async fn free_port(min: u16, max: u16) -> Result<u16, String> {
    let l = crate::http::bind_in_range(std::net::Ipv4Addr::LOCALHOST.into(), min, max)
        .await
        .map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Files of the output directory, sorted (Packer's qemu artifact).
fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Send console lines to the events as they arrive.
fn forward_console(qemu: &QemuProcess, ev: &BuildEvents) {
    let mut rx = qemu.console().subscribe();
    let ev = ev.clone();
    tokio::spawn(async move {
        while let Ok(line) = rx.recv().await {
            ev.console(line.text);
        }
    });
}

/// packer-maas prepares files that `qemuargs` names (the seed ISO, the
/// UEFI variables) in a `null` build of the same run, concurrently. When
/// such a file is missing and other builds are still running, wait for
/// them rather than start QEMU without it.
async fn wait_for_sibling_files(
    cfg: &QemuConfig,
    cwd: &Path,
    siblings: &Siblings,
    ev: &BuildEvents,
) {
    let missing = || -> Vec<PathBuf> {
        qemuargs_files(cfg)
            .into_iter()
            .map(|f| cwd.join(f))
            .filter(|p| !p.exists())
            .collect()
    };
    let first = missing();
    if first.is_empty() {
        return;
    }
    let names: Vec<String> = first.iter().map(|p| p.display().to_string()).collect();
    ev.say(format!(
        "Waiting for {} (named by qemuargs; another build of this run may create it)",
        names.join(", ")
    ));
    siblings.wait_for(|| missing().is_empty()).await;
}

/// Files named by `file=` in qemuargs `-drive` values, except the disks
/// kiln creates itself.
fn qemuargs_files(cfg: &QemuConfig) -> Vec<String> {
    let own = cfg.disk_paths();
    let mut out = Vec::new();
    for arg in &cfg.qemuargs {
        let Some((switch, rest)) = arg.split_first() else {
            continue;
        };
        let value = rest.concat();
        if switch == "-drive" {
            for part in value.split(',') {
                if let Some(f) = part.strip_prefix("file=")
                    && !placeholders::has_actions(f)
                    && !own.iter().any(|o| o == f)
                {
                    out.push(f.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for QEMU: `sh -c SCRIPT` in its own process group.
    async fn fake_qemu(script: &str) -> QemuProcess {
        QemuProcess::spawn(QemuCommand {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: None,
            console_from_stdout: false,
            console_log: None,
        })
        .await
        .unwrap()
    }

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

    #[tokio::test]
    async fn a_failure_just_before_qemu_dies_is_put_down_to_qemu() {
        // As when QEMU is killed: the SSH connection drops first.
        let qemu = fake_qemu("sleep 0.3; kill -9 $$").await;
        let step = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Err::<(), _>("script disconnected unexpectedly")
        };
        let died = watch(&qemu, step).await.unwrap_err();
        assert_eq!(died, "QEMU exited unexpectedly (killed by signal 9)");
    }

    #[tokio::test]
    async fn a_failure_while_qemu_runs_on_is_the_steps_own() {
        let qemu = fake_qemu("sleep 30").await;
        let r = watch(&qemu, async { Err::<(), _>("exit code 3") }).await;
        assert_eq!(r, Ok(Err("exit code 3")));
        assert_eq!(supervised(&qemu, async { Ok::<_, String>(7) }).await, Ok(7));
        qemu.kill().await;
    }

    #[tokio::test]
    async fn qemu_exiting_while_a_step_runs_ends_the_step() {
        let qemu = fake_qemu("echo 'qemu: bad things' >&2; exit 3").await;
        let step = std::future::pending::<Result<(), String>>();
        let died = supervised(&qemu, step).await.unwrap_err();
        assert_eq!(
            died,
            "QEMU exited unexpectedly (exit status 3)\nQEMU said:\n  qemu: bad things"
        );
    }
}
