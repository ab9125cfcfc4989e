//! From a loaded template to runnable builds: every source, provisioner
//! and post-processor block decoded into its typed config, every problem
//! reported with its place; and the plan as data (`kiln plan`).

use std::path::Path;
use std::time::Duration;

use kiln_qemu::config::Communicator;
use kiln_qemu::plan::RuntimeFacts;
use kiln_qemu::{Accelerator, QemuConfig};
use kiln_template::body::Body;
use kiln_template::decode::{DecodeError, Decoder, GoDuration};
use kiln_template::diag::Diag;
use kiln_template::load::{Build, Loaded};

use crate::postprocess;
use crate::provision;
use crate::spec::{BuildSpec, NullConfig, NullSsh, PostProcessorSpec, ProvisionerSpec, SourceSpec};

/// Source types kiln builds.
pub const SOURCE_TYPES: &[&str] = &["qemu", "null"];

/// The runnable builds, and warnings about them.
pub struct Planned {
    pub specs: Vec<BuildSpec>,
    pub warnings: Vec<Diag>,
}

/// Decode every selected build. All errors of all builds come back together.
pub fn decode_builds(loaded: &Loaded, cwd: &Path) -> Result<Planned, Vec<Diag>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut specs = Vec::new();
    for build in &loaded.builds {
        match decode_build(build, cwd, &mut warnings, loaded) {
            Ok(spec) => specs.push(spec),
            Err(es) => errors.extend(es.into_iter().map(|e| to_diag(e, loaded))),
        }
    }
    if errors.is_empty() {
        Ok(Planned { specs, warnings })
    } else {
        Err(errors)
    }
}

/// A decode error as a diagnostic with its source snippet.
pub fn to_diag(e: DecodeError, loaded: &Loaded) -> Diag {
    Diag::error(e.message)
        .at_span(e.span.clone())
        .with_source_of(&e.span, &loaded.files)
        .help_opt(e.help)
}

fn decode_build(
    build: &Build,
    cwd: &Path,
    warnings: &mut Vec<Diag>,
    loaded: &Loaded,
) -> Result<BuildSpec, Vec<DecodeError>> {
    let mut errors = Vec::new();
    let src = &build.source;
    let source = match src.kind.as_str() {
        "qemu" => match QemuConfig::decode(&src.body, &src.source_name) {
            Ok(d) => {
                for w in d.warnings {
                    warnings.push(
                        Diag::warning(w.message)
                            .at_span(w.span.clone())
                            .with_source_of(&w.span, &loaded.files),
                    );
                }
                Some(SourceSpec::Qemu(Box::new(d.config)))
            }
            Err(es) => {
                errors.extend(es);
                None
            }
        },
        "null" => match decode_null(&src.body, &src.source_name) {
            Ok(c) => Some(SourceSpec::Null(c)),
            Err(es) => {
                errors.extend(es);
                None
            }
        },
        other => {
            errors.push(DecodeError {
                span: src.span.clone(),
                message: format!("source type `{other}` is not supported by kiln"),
                help: Some(format!("kiln builds: {}", SOURCE_TYPES.join(", "))),
            });
            None
        }
    };
    let seed = crate::run::seed_of(&build.name);
    let mut provisioners = Vec::new();
    for (i, p) in build.provisioners.iter().enumerate() {
        let what = format!("provisioner \"{}\"", p.kind);
        match provision::decode(&p.kind, &p.body, &what, cwd, seed.wrapping_add(i as u64)) {
            Ok(config) => provisioners.push(ProvisionerSpec {
                config,
                name: p.name.clone(),
                pause_before: p.pause_before.unwrap_or(Duration::ZERO),
                max_retries: p.max_retries,
                continue_on_error: p.continue_on_error,
                timeout: p.timeout,
            }),
            Err(es) => errors.extend(es),
        }
    }
    let error_cleanup = match &build.error_cleanup_provisioner {
        Some(p) => {
            let what = format!("error-cleanup-provisioner \"{}\"", p.kind);
            match provision::decode(&p.kind, &p.body, &what, cwd, seed.wrapping_add(9999)) {
                Ok(config) => Some(ProvisionerSpec {
                    config,
                    name: p.name.clone(),
                    pause_before: p.pause_before.unwrap_or(Duration::ZERO),
                    max_retries: p.max_retries,
                    continue_on_error: p.continue_on_error,
                    timeout: p.timeout,
                }),
                Err(es) => {
                    errors.extend(es);
                    None
                }
            }
        }
        None => None,
    };
    let mut post_processors = Vec::new();
    for chain in &build.post_processors {
        let mut decoded = Vec::new();
        for pp in chain {
            let what = format!("post-processor \"{}\"", pp.kind);
            match postprocess::decode(&pp.kind, &pp.body, &what, cwd) {
                Ok(config) => decoded.push(PostProcessorSpec {
                    config,
                    name: pp.name.clone(),
                    keep_input_artifact: pp.keep_input_artifact,
                }),
                Err(es) => errors.extend(es),
            }
        }
        if !decoded.is_empty() {
            post_processors.push(decoded);
        }
    }
    match source {
        Some(source) if errors.is_empty() => Ok(BuildSpec {
            name: build.name.clone(),
            source,
            provisioners,
            error_cleanup,
            post_processors,
        }),
        _ => Err(errors),
    }
}

/// Packer's `null` source.
pub fn decode_null(body: &Body, name: &str) -> Result<NullConfig, Vec<DecodeError>> {
    let mut d = Decoder::new(body, format!("source \"null\" \"{name}\""));
    let communicator = d.or("communicator", "ssh".to_string());
    let host: Option<String> = d.opt("ssh_host");
    let port = d.or("ssh_port", 22u16);
    let username: Option<String> = d.opt("ssh_username");
    let password: Option<String> = d.opt("ssh_password");
    let key: Option<String> = d.opt("ssh_private_key_file");
    let timeout = d
        .opt_alias::<GoDuration>(&["ssh_timeout", "ssh_wait_timeout"])
        .map(|g| g.0)
        .unwrap_or(Duration::from_secs(300));
    let ssh = match communicator.as_str() {
        "none" => None,
        "ssh" => match (host, username) {
            (Some(host), Some(username)) => Some(NullSsh {
                host,
                port,
                username,
                password,
                private_key_file: key.map(Into::into),
                timeout,
            }),
            _ => {
                d.error(
                    "ssh_host",
                    "the null source with `communicator = \"ssh\"` needs `ssh_host` and `ssh_username`",
                    Some("use `communicator = \"none\"` for a build that only runs shell-local".into()),
                );
                None
            }
        },
        other => {
            d.error(
                "communicator",
                format!("unsupported communicator `{other}` (kiln supports `ssh` and `none`)"),
                None,
            );
            None
        }
    };
    d.finish()?;
    Ok(NullConfig {
        name: name.to_string(),
        ssh,
    })
}

/// Runtime facts for showing a plan before anything runs: ports are the
/// first of their ranges and temporary paths are named `$TMP/…`.
pub fn preview_facts(cfg: &QemuConfig, accelerator: Accelerator) -> RuntimeFacts {
    RuntimeFacts {
        accelerator,
        ssh_host_port: match cfg.communicator {
            Communicator::Ssh(_) => Some(cfg.host_port.min),
            Communicator::None => None,
        },
        http_ip: "10.0.2.2".into(),
        http_port: if cfg.http.enabled() {
            cfg.http.port_min
        } else {
            0
        },
        vnc_port: cfg.vnc.enabled.then_some(cfg.vnc.port_min),
        iso_path: if cfg.disk_image || cfg.iso_urls.is_empty() {
            None
        } else {
            Some("$CACHE/source.iso".into())
        },
        cd_path: cfg.media.has_cd().then(|| "$TMP/cd.iso".into()),
        floppy_path: cfg.media.has_floppy().then(|| "$TMP/floppy.img".into()),
        efi_code: cfg
            .efi
            .enabled
            .then(|| cfg.efi.code.clone().unwrap_or_else(|| "$OVMF_CODE".into())),
        qmp_socket: "$TMP/qmp.sock".into(),
    }
}

/// The steps a build will run, in order (names as events and `--from` use).
pub fn step_names(spec: &BuildSpec) -> Vec<String> {
    let mut steps = Vec::new();
    if let SourceSpec::Qemu(q) = &spec.source {
        if q.ssh().is_some() {
            steps.push("ssh_key".to_string());
        }
        if !q.iso_urls.is_empty() {
            steps.push("download".into());
        }
        steps.push("prepare_output_dir".into());
        if q.http.enabled() {
            steps.push("http_server".into());
        }
        if q.media.has_cd() {
            steps.push("create_cd".into());
        }
        if q.media.has_floppy() {
            steps.push("create_floppy".into());
        }
        if q.efi.enabled {
            steps.push("prepare_efivars".into());
        }
        // Once the command line is planned: the step cache may take the
        // disks instead (`cache_lookup`).
        steps.push("create_disk".into());
        steps.push("run_qemu".into());
        if !q.boot.steps_to_type().is_empty() {
            steps.push("type_boot_command".into());
        }
        if q.ssh().is_some() {
            steps.push("wait_ssh".into());
        }
    }
    let total = spec.provisioners.len();
    for (i, p) in spec.provisioners.iter().enumerate() {
        steps.push(format!("provision {}/{} {}", i + 1, total, p.label()));
    }
    if let SourceSpec::Qemu(q) = &spec.source {
        if q.ssh().is_some() && crate::run::needs_guest_scrub(spec) {
            steps.push("scrub".into());
        }
        steps.push("shutdown".into());
    }
    for (c, chain) in spec.post_processors.iter().enumerate() {
        for (i, pp) in chain.iter().enumerate() {
            steps.push(format!(
                "post-processor {}.{} {}",
                c + 1,
                i + 1,
                pp.config.type_name()
            ));
        }
    }
    steps
}

/// A build's plan as JSON: the resolved config, the exact QEMU argv and
/// `qemu-img` commands, the steps.
pub fn plan_json(
    spec: &BuildSpec,
    accelerator: Accelerator,
    cwd: &Path,
    cache_dir: &Path,
) -> serde_json::Value {
    let mut out = serde_json::json!({
        "name": spec.name,
        "source": { "type": spec.source.type_name(), "name": spec.source_name() },
        "steps": step_names(spec),
        "provisioners": spec.provisioners.iter().map(|p| serde_json::json!({
            "type": p.config.type_name(),
            "name": p.name,
            "guest_only": p.config.is_guest_only(),
        })).collect::<Vec<_>>(),
        "post_processors": spec.post_processors.iter().map(|chain| chain.iter().map(|p| serde_json::json!({
            "type": p.config.type_name(),
            "name": p.name,
            "keep_input_artifact": p.keep_input_artifact,
        })).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    if let SourceSpec::Qemu(cfg) = &spec.source {
        let facts = preview_facts(cfg, accelerator);
        out["accelerator"] = serde_json::json!(accelerator.as_str());
        out["config"] = serde_json::to_value(cfg.as_ref()).unwrap_or(serde_json::Value::Null);
        match kiln_qemu::plan_qemu(cfg, &facts) {
            Ok(plan) => {
                out["qemu"] = serde_json::json!({
                    "argv": plan.argv(),
                    "console": plan.console,
                    "replaced": plan.replaced,
                    "notes": plan.notes,
                });
            }
            Err(e) => out["qemu"] = serde_json::json!({ "error": e.to_string() }),
        }
        let source = cfg
            .disk_image
            .then(|| source_image_preview(cfg, cwd, cache_dir));
        match kiln_qemu::plan_disk(
            cfg,
            source
                .as_deref()
                .map(|path| kiln_qemu::disk::SourceImage { path, format: None }),
        ) {
            Ok(d) => {
                out["qemu_img"] = serde_json::json!({
                    "before_boot": d.before_boot.iter().map(|c| c.display()).collect::<Vec<_>>(),
                    "after_shutdown": d.after_shutdown.iter().map(|c| c.display()).collect::<Vec<_>>(),
                });
            }
            Err(e) => out["qemu_img"] = serde_json::json!({ "error": e.to_string() }),
        }
    }
    out
}

/// Where the source image will be: a local path as it resolves, or the
/// download cache.
fn source_image_preview(cfg: &QemuConfig, cwd: &Path, cache_dir: &Path) -> String {
    let url = cfg.iso_urls.first().map(String::as_str).unwrap_or("");
    match crate::download::locate(url, cwd) {
        Ok(crate::download::Location::Local(p)) => {
            std::fs::canonicalize(&p).unwrap_or(p).display().to_string()
        }
        _ => cache_dir
            .join("downloads")
            .join(format!("<checksum>.{}", cfg.iso_target_extension))
            .display()
            .to_string(),
    }
}
