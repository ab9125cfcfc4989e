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
use kiln_template::span::Span;

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

/// Every selected build decoded on its own: those that decode, and the
/// errors of each one that does not (so a report can go on past it).
pub struct DecodedEach {
    pub planned: Planned,
    /// Build name and its errors, in template order.
    pub failed: Vec<(String, Vec<Diag>)>,
}

/// Decode every selected build. All errors of all builds come back together.
pub fn decode_builds(loaded: &Loaded, cwd: &Path) -> Result<Planned, Vec<Diag>> {
    let each = decode_each(loaded, cwd);
    if each.failed.is_empty() {
        Ok(each.planned)
    } else {
        Err(each.failed.into_iter().flat_map(|(_, es)| es).collect())
    }
}

/// Decode every selected build, keeping the builds that decode when
/// others do not (`kiln doctor` reports on the rest).
pub fn decode_each(loaded: &Loaded, cwd: &Path) -> DecodedEach {
    let mut failed = Vec::new();
    let mut warnings = Vec::new();
    let mut specs = Vec::new();
    for build in &loaded.builds {
        match decode_build(build, cwd, &mut warnings, loaded) {
            Ok(spec) => specs.push(spec),
            Err(es) => failed.push((
                build.name.clone(),
                es.into_iter().map(|e| to_diag(e, loaded)).collect(),
            )),
        }
    }
    DecodedEach {
        planned: Planned { specs, warnings },
        failed,
    }
}

/// Point a diagnostic at `text` inside the attribute at `span` (its own
/// line in a long list), or at the attribute when it is not written there
/// (it came from a variable, say).
pub fn at_text(diag: Diag, span: &Span, text: Option<&str>, loaded: &Loaded) -> Diag {
    if let Some(text) = text
        && let Some(file) = loaded.files.iter().find(|f| f.name == span.file)
        && let Some(range) = find_in_attribute(&file.text, span.bytes.start, text)
    {
        return diag.at(file, range);
    }
    diag.at_span(span.clone())
        .with_source_of(span, &loaded.files)
}

/// Where `needle` is written in the attribute whose name starts at
/// `start`: from there up to the next attribute or the end of the block.
fn find_in_attribute(text: &str, start: usize, needle: &str) -> Option<std::ops::Range<usize>> {
    let rest = text.get(start..)?;
    let indent = text.get(..start)?.rsplit('\n').next()?.len();
    let mut end = rest.len();
    let mut offset = 0;
    for (i, line) in rest.split_inclusive('\n').enumerate() {
        if i > 0 {
            let trimmed = line.trim_start();
            let line_indent = line.len() - trimmed.len();
            let next_attr = line_indent <= indent
                && trimmed.split_once('=').is_some_and(|(k, v)| {
                    !k.trim().is_empty()
                        && k.trim()
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !v.starts_with('=')
                });
            if next_attr || trimmed.starts_with('}') && line_indent < indent {
                end = offset;
                break;
            }
        }
        offset += line.len();
    }
    let at = rest[..end].find(needle)?;
    Some(start + at..start + at + needle.len())
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
                    let diag = Diag::warning(w.message).help_opt(w.help);
                    warnings.push(at_text(diag, &w.span, w.text.as_deref(), loaded));
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
    let seed = crate::spec::seed_of(&build.name);
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
    let mut d = Decoder::with_schema(
        body,
        format!("source \"null\" \"{name}\""),
        &crate::schema::NULL,
    );
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

/// The accelerator a build's QEMU runs with, and what decided it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AccelChoice {
    /// `kvm`, `tcg`, … or a list QEMU tries in order (`kvm:tcg`).
    pub accelerator: String,
    pub from: AccelFrom,
}

/// What decided the accelerator.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccelFrom {
    /// The `accelerator` field, written at `at` (`file:line`).
    Field { at: String },
    /// A `qemuargs` entry (`-accel`, `-enable-kvm`, or a `-machine` that
    /// replaces kiln's and names `accel=` or none, QEMU's default being TCG).
    Qemuargs { arg: String },
    /// Unset: kiln's fallback, decided when the build starts — KVM when the
    /// probe finds it runs guests, else TCG. Shown as `tcg` before then.
    Fallback,
}

impl AccelChoice {
    /// Where it came from, in words.
    pub fn describe(&self) -> String {
        self.from.describe()
    }
}

impl AccelFrom {
    /// Where it came from, in words.
    pub fn describe(&self) -> String {
        match self {
            AccelFrom::Field { at } => format!("`accelerator`, set in {at}"),
            AccelFrom::Qemuargs { arg } => format!("from {arg}"),
            AccelFrom::Fallback => "unset: kiln's fallback when the build starts, kvm if the KVM probe finds it runs guests, else tcg".into(),
        }
    }
}

/// The accelerator QEMU really uses, as QEMU reads its command line:
/// `-accel`/`-enable-kvm` in `qemuargs` first, then the `accel=` of a
/// `qemuargs` `-machine` (which replaces kiln's `-machine` entirely), then
/// the `accelerator` field, then kiln's fallback. The same reading as
/// preflight's demand.
pub fn plan_accelerator(cfg: &QemuConfig) -> AccelChoice {
    use crate::preflight::qemuargs;
    let args = qemuargs::parse_qemuargs(&cfg.qemuargs);
    let accels = qemuargs::accels(&args);
    if let Some(first) = accels.first() {
        let list: Vec<&str> = accels.iter().map(|a| a.accel.as_str()).collect();
        return AccelChoice {
            accelerator: list.join(":"),
            from: AccelFrom::Qemuargs {
                arg: first.arg.describe(),
            },
        };
    }
    if let Some(m) = qemuargs::machine(&args) {
        return match &m.accel {
            Some(list) => AccelChoice {
                accelerator: list.join(":"),
                from: AccelFrom::Qemuargs {
                    arg: m.arg.describe(),
                },
            },
            None => AccelChoice {
                accelerator: "tcg".into(),
                from: AccelFrom::Qemuargs {
                    arg: format!(
                        "{} (replaces kiln's `-machine` and names no `accel=`: QEMU's default)",
                        m.arg.describe()
                    ),
                },
            },
        };
    }
    match (cfg.accelerator, cfg.spans.get("accelerator")) {
        (Some(a), span) => AccelChoice {
            accelerator: a.as_str().to_string(),
            from: AccelFrom::Field {
                at: span
                    .map(|s| format!("{}:{}", s.file, s.line))
                    .unwrap_or_default(),
            },
        },
        (None, _) => AccelChoice {
            accelerator: Accelerator::Tcg.as_str().to_string(),
            from: AccelFrom::Fallback,
        },
    }
}

/// A plan that cannot be made (the build could not start either).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot plan {build}: {message}")]
pub struct PlanError {
    pub build: String,
    pub message: String,
}

/// The boot command as it will be typed, grouped for reading: runs of
/// characters, special keys, waits, and keys held down and released.
pub fn boot_json(steps: &[kiln_qemu::plan::BootStep]) -> serde_json::Value {
    use kiln_qemu::bootcmd::{Action, BootItem, Key};
    let mut out = Vec::new();
    for step in steps {
        let mut items: Vec<serde_json::Value> = Vec::new();
        let mut typed = String::new();
        let flush = |typed: &mut String, items: &mut Vec<serde_json::Value>| {
            if !typed.is_empty() {
                items.push(serde_json::json!({ "type": std::mem::take(typed) }));
            }
        };
        for item in &step.keys {
            match *item {
                BootItem::Key {
                    key: Key::Char(c),
                    action: Action::Press,
                } => typed.push(c),
                BootItem::Key { key, action } => {
                    flush(&mut typed, &mut items);
                    let name = match key {
                        Key::Char(c) => c.to_string(),
                        Key::Special(sp) => sp.name(),
                    };
                    let verb = match action {
                        Action::Press => "key",
                        Action::Down => "hold",
                        Action::Up => "release",
                    };
                    items.push(serde_json::json!({ verb: name }));
                }
                BootItem::Wait(d) => {
                    flush(&mut typed, &mut items);
                    items.push(serde_json::json!({ "wait": format!("{d:?}") }));
                }
            }
        }
        flush(&mut typed, &mut items);
        out.push(serde_json::json!({
            "description": step.description,
            "text": step.text,
            "keys": items,
        }));
    }
    serde_json::Value::Array(out)
}

/// A build's plan as JSON: the resolved config, the accelerator and what
/// decided it, the exact QEMU argv and `qemu-img` commands, the boot
/// command as typed, the steps. Placeholders take preview values (ports
/// the first of their ranges, `$TMP/…` paths).
pub fn plan_json(
    spec: &BuildSpec,
    cwd: &Path,
    cache_dir: &Path,
) -> Result<serde_json::Value, PlanError> {
    let mut out = serde_json::json!({
        "name": spec.name,
        "source": { "type": spec.source.type_name(), "name": spec.source_name() },
        "steps": crate::step::build_steps(spec, crate::step::CacheUse::by_default(spec)),
        "provisioners": spec.provisioners.iter().map(|p| serde_json::json!({
            "type": p.config.type_name(),
            "name": p.name,
            "guest_only": p.config.is_guest_only(),
            "config": serde_json::to_value(&p.config).unwrap_or(serde_json::Value::Null),
        })).collect::<Vec<_>>(),
        "post_processors": spec.post_processors.iter().map(|chain| chain.iter().map(|p| serde_json::json!({
            "type": p.config.type_name(),
            "name": p.name,
            "keep_input_artifact": p.keep_input_artifact,
            "config": serde_json::to_value(&p.config).unwrap_or(serde_json::Value::Null),
        })).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    let fail = |message: String| PlanError {
        build: spec.name.clone(),
        message,
    };
    if let SourceSpec::Qemu(cfg) = &spec.source {
        let choice = plan_accelerator(cfg);
        // kiln's own `-machine` carries the field's accelerator, or the
        // fallback's (shown as TCG before the probe has run).
        let facts = preview_facts(cfg, cfg.accelerator.unwrap_or(Accelerator::Tcg));
        out["accelerator"] = serde_json::json!(choice.accelerator);
        out["accelerator_from"] =
            serde_json::to_value(&choice.from).unwrap_or(serde_json::Value::Null);
        out["config"] = serde_json::to_value(cfg.as_ref()).unwrap_or(serde_json::Value::Null);
        let plan = kiln_qemu::plan_qemu(cfg, &facts)
            .map_err(|e| fail(format!("the QEMU command line: {e}")))?;
        out["qemu"] = serde_json::json!({
            "argv": plan.argv(),
            "console": plan.console,
            "replaced": plan.replaced,
            "notes": plan.notes,
        });
        let data = kiln_qemu::plan::boot_command_data(cfg, &facts, Some("$SSH_PUBLIC_KEY"));
        let boot = kiln_qemu::plan::plan_boot_steps(cfg, &data)
            .map_err(|e| fail(format!("the boot command: {e}")))?;
        out["boot_command"] = boot_json(&boot);
        out["preview"] = serde_json::json!({
            "HTTPIP": facts.http_ip,
            "HTTPPort": facts.http_port,
            "SSHHostPort": facts.ssh_host_port,
        });
        let source = cfg
            .disk_image
            .then(|| source_image_preview(cfg, cwd, cache_dir));
        let d = kiln_qemu::plan_disk(
            cfg,
            source
                .as_deref()
                .map(|path| kiln_qemu::disk::SourceImage { path, format: None }),
        )
        .map_err(|e| fail(format!("the disk commands: {e}")))?;
        out["qemu_img"] = serde_json::json!({
            "before_boot": d.before_boot.iter().map(|c| c.display()).collect::<Vec<_>>(),
            "after_shutdown": d.after_shutdown.iter().map(|c| c.display()).collect::<Vec<_>>(),
        });
    }
    Ok(out)
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

/// What `packer validate` finds on the host, for each decoded build, as
/// diagnostics at the attribute (errors, warnings). Relative paths are
/// relative to `cwd`, Packer's working directory.
///
/// - `floppy_files`, `floppy_dirs`, `cd_files`: each entry must exist; a
///   glob only has to be a valid pattern (it may match nothing) — the SDK's
///   `FloppyConfig.Prepare` and `CDConfig.Prepare` (`Bad Floppy disk file`,
///   `Bad CD disk file`).
/// - `output_directory` must not exist: packer-plugin-qemu's
///   `Config.Prepare` (builder/qemu/config.go, `if !c.PackerForce {
///   os.Stat(c.OutputDir) … "Output directory '…' already exists. It must
///   not exist." }`). `packer validate` never sets force (command/validate.go
///   calls `GetBuilds` with only `Only`/`Except`), so neither does
///   `kiln validate`.
/// - `http_directory`: Packer's `HTTPConfig.Prepare` does not look at the
///   directory (its server then answers 404), so a missing one is a
///   warning here; `kiln build`'s preflight refuses it.
pub fn host_checks(planned: &Planned, loaded: &Loaded, cwd: &Path) -> (Vec<Diag>, Vec<Diag>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut seen_outputs = Vec::new();
    for spec in &planned.specs {
        let SourceSpec::Qemu(cfg) = &spec.source else {
            continue;
        };
        let Some(build) = loaded.builds.iter().find(|b| b.name == spec.name) else {
            continue;
        };
        let span_of = |field: &str| {
            cfg.spans
                .get(field)
                .cloned()
                .unwrap_or_else(|| build.source.span.clone())
        };
        let diag_at = |diag: Diag, field: &str, text: Option<&str>| {
            at_text(diag, &span_of(field), text, loaded)
        };
        for (field, list, what) in [
            ("floppy_files", &cfg.media.floppy_files, "floppy disk file"),
            (
                "floppy_dirs",
                &cfg.media.floppy_dirs,
                "floppy disk directory",
            ),
            ("cd_files", &cfg.media.cd_files, "CD disk file"),
        ] {
            for entry in list {
                if let Err(reason) = input_exists(entry, cwd) {
                    let quoted = format!("\"{entry}\"");
                    errors.push(diag_at(
                        Diag::error(format!("`{field}`: bad {what} `{entry}`: {reason}"))
                            .help("create it, or correct the path (relative paths start at the directory kiln runs in)"),
                        field,
                        Some(&quoted),
                    ));
                }
            }
        }
        if let Some(dir) = &cfg.http.directory
            && !cwd.join(dir).is_dir()
        {
            let quoted = format!("\"{dir}\"");
            warnings.push(diag_at(
                Diag::warning(format!(
                    "`http_directory` `{dir}` is not a directory: Packer serves nothing from it (every request gets 404), and `kiln build` refuses to start"
                ))
                .help("create it, or correct the path (relative paths start at the directory kiln runs in)"),
                "http_directory",
                Some(&quoted),
            ));
        }
        let out = cwd.join(&cfg.output_directory);
        if out.symlink_metadata().is_ok() && !seen_outputs.contains(&out) {
            seen_outputs.push(out);
            errors.push(diag_at(
                Diag::error(format!(
                    "output directory `{}` already exists; it must not exist",
                    cfg.output_directory
                ))
                .help("remove it, or build with `-force` to replace it (`validate` takes no `-force`, as Packer's)"),
                "output_directory",
                None,
            ));
        }
    }
    (errors, warnings)
}

/// Whether a `floppy_files`/`cd_files` entry is usable as Packer checks
/// it: a path must exist, a glob must be a valid pattern.
fn input_exists(entry: &str, cwd: &Path) -> Result<(), String> {
    if entry.contains(['*', '?', '[']) {
        return kiln_qemu::cdrom::expand(std::slice::from_ref(&entry.to_string()), cwd)
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    match std::fs::metadata(cwd.join(entry)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("no such file or directory".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use kiln_template::load::{LoadOptions, load};

    /// Load `t.pkr.hcl` with `text` from a fresh directory.
    fn loaded(text: &str) -> (tempfile::TempDir, Loaded) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.pkr.hcl"), text).unwrap();
        let loaded = load(&LoadOptions::new(dir.path()))
            .map_err(|f| format!("{:?}", f.errors))
            .unwrap();
        (dir, loaded)
    }

    fn source(body: &str) -> String {
        format!(
            "source \"qemu\" \"x\" {{\n  iso_url      = \"x.iso\"\n  iso_checksum = \"none\"\n  ssh_username = \"u\"\n{body}}}\nbuild {{ sources = [\"source.qemu.x\"] }}\n"
        )
    }

    fn where_(d: &Diag) -> String {
        d.span
            .as_ref()
            .map(|s| format!("{}:{}", s.file, s.line))
            .unwrap_or_default()
    }

    #[test]
    fn accelerator_comes_from_the_field_qemuargs_or_the_fallback() {
        let (dir, l) = loaded(&source("  accelerator = \"kvm\"\n"));
        let p = decode_builds(&l, dir.path()).ok().unwrap();
        let SourceSpec::Qemu(cfg) = &p.specs[0].source else {
            panic!()
        };
        let c = plan_accelerator(cfg);
        assert_eq!(c.accelerator, "kvm");
        assert_eq!(
            c.from,
            AccelFrom::Field {
                at: "t.pkr.hcl:5".into()
            }
        );

        let (dir, l) = loaded(&source(
            "  qemuargs = [[\"-machine\", \"q35,accel=kvm\"]]\n",
        ));
        let p = decode_builds(&l, dir.path()).ok().unwrap();
        let SourceSpec::Qemu(cfg) = &p.specs[0].source else {
            panic!()
        };
        let c = plan_accelerator(cfg);
        assert_eq!(c.accelerator, "kvm");
        assert!(c.describe().contains("-machine q35,accel=kvm"), "{c:?}");

        let (dir, l) = loaded(&source(
            "  accelerator = \"tcg\"\n  qemuargs = [[\"-enable-kvm\"]]\n",
        ));
        let p = decode_builds(&l, dir.path()).ok().unwrap();
        let SourceSpec::Qemu(cfg) = &p.specs[0].source else {
            panic!()
        };
        assert_eq!(plan_accelerator(cfg).accelerator, "kvm");

        let (dir, l) = loaded(&source(""));
        let p = decode_builds(&l, dir.path()).ok().unwrap();
        let SourceSpec::Qemu(cfg) = &p.specs[0].source else {
            panic!()
        };
        let c = plan_accelerator(cfg);
        assert_eq!(
            (c.accelerator.as_str(), c.from),
            ("tcg", AccelFrom::Fallback)
        );
    }

    #[test]
    fn plan_json_lists_every_step_the_runner_runs() {
        let steps = |body: &str| -> Vec<String> {
            let (dir, l) = loaded(&source(body));
            let p = decode_builds(&l, dir.path()).ok().unwrap();
            let v = plan_json(&p.specs[0], dir.path(), dir.path()).unwrap();
            serde_json::from_value(v["steps"].clone()).unwrap()
        };
        // SSH: the step cache makes the disks and writes the output.
        assert_eq!(
            steps("  boot_command = [\"<enter>\"]\n"),
            [
                "ssh_key",
                "download",
                "prepare_output_dir",
                "port_forward",
                "cache_lookup",
                "run_qemu",
                "type_boot_command",
                "wait_ssh",
                "shutdown",
                "convert_disk",
            ]
        );
        // Without SSH there is no cache: Packer's disk steps.
        assert_eq!(
            steps("  communicator = \"none\"\n  format = \"raw\"\n"),
            [
                "download",
                "prepare_output_dir",
                "create_disk",
                "run_qemu",
                "shutdown",
            ]
        );
    }

    #[test]
    fn plan_json_shows_the_boot_command_as_typed_with_preview_values() {
        let (dir, l) = loaded(&source(
            "  http_content = { \"/u\" = \"x\" }\n  boot_command = [\"<esc><wait2>linux url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/u<enter>\", \"<leftCtrlOn>x<leftCtrlOff>\"]\n",
        ));
        let p = decode_builds(&l, dir.path()).ok().unwrap();
        let v = plan_json(&p.specs[0], dir.path(), dir.path()).unwrap();
        let keys = &v["boot_command"][0]["keys"];
        assert_eq!(keys[0], serde_json::json!({"key": "esc"}));
        assert_eq!(keys[1], serde_json::json!({"wait": "2s"}));
        assert_eq!(
            keys[2],
            serde_json::json!({"type": "linux url=http://10.0.2.2:8000/u"})
        );
        assert_eq!(keys[3], serde_json::json!({"key": "enter"}));
        assert_eq!(keys[4], serde_json::json!({"hold": "leftCtrl"}));
        assert_eq!(keys[5], serde_json::json!({"type": "x"}));
        assert_eq!(keys[6], serde_json::json!({"release": "leftCtrl"}));
    }

    #[test]
    fn plan_json_is_an_error_when_the_qemu_plan_fails() {
        let (dir, l) = loaded(&source("  qemuargs = [[\"-name\", \"{{ .Nope }}\"]]\n"));
        let p = decode_builds(&l, dir.path()).ok().unwrap();
        let e = plan_json(&p.specs[0], dir.path(), dir.path()).unwrap_err();
        assert!(e.to_string().contains("cannot plan qemu.x"), "{e}");
    }

    #[test]
    fn host_checks_find_missing_media_and_an_existing_output_directory() {
        let (dir, l) = loaded(&source(
            "  floppy_files = [\n    \"present.cfg\",\n    \"missing.cfg\",\n    \"*.nothing\",\n  ]\n  cd_files = [\"gone/\"]\n  http_directory = \"http\"\n",
        ));
        std::fs::write(dir.path().join("present.cfg"), "").unwrap();
        std::fs::create_dir(dir.path().join("output-x")).unwrap();
        let p = decode_builds(&l, dir.path()).ok().unwrap();
        let (errors, warnings) = host_checks(&p, &l, dir.path());
        let got: Vec<String> = errors
            .iter()
            .map(|d| format!("{} {}", where_(d), d.summary))
            .collect();
        assert_eq!(
            got,
            [
                "t.pkr.hcl:7 `floppy_files`: bad floppy disk file `missing.cfg`: no such file or directory",
                "t.pkr.hcl:10 `cd_files`: bad CD disk file `gone/`: no such file or directory",
                "t.pkr.hcl:1 output directory `output-x` already exists; it must not exist",
            ]
        );
        assert_eq!(warnings.len(), 1);
        assert_eq!(where_(&warnings[0]), "t.pkr.hcl:11");
        assert!(warnings[0].summary.contains("`http_directory` `http`"));
    }

    #[test]
    fn warnings_point_at_the_line_of_a_misspelled_boot_key() {
        let (dir, l) = loaded(&source(
            "  boot_command = [\n    \"<esc>\",\n    \"<wiat5>\",\n  ]\n",
        ));
        let p = decode_builds(&l, dir.path()).ok().unwrap();
        let w: Vec<&Diag> = p
            .warnings
            .iter()
            .filter(|w| w.summary.contains("<wiat5>"))
            .collect();
        assert_eq!(w.len(), 1);
        assert_eq!(where_(w[0]), "t.pkr.hcl:7");
        assert_eq!(w[0].help.as_deref(), Some("did you mean `<wait5>`?"));
    }
}
