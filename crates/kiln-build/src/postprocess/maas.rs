//! MAAS post-processors: `maas-tgz` (the root filesystem as curtin extracts
//! it), `maas-dd` (the whole disk), `maas-upload` (to a MAAS region's
//! boot resources), and the leak-scan gate every MAAS artifact passes
//! before the build may succeed.

use std::path::{Path, PathBuf};

use kiln_image::RootSelector;
use kiln_image::output::Staged;
use kiln_image::qcow2::backing_chain;
use kiln_image::scan::{ScanConfig, ScanReport};
use kiln_maas::{BootPartition, DdFormat, DdOptions, TgzOptions};
use kiln_qemu::placeholders::{self, TemplateData};
use kiln_template::body::Body;
use kiln_template::decode::{DecodeError, Decoder};
use kiln_template::schema::{Field, PluginKind, Schema};

use crate::artifact::Artifact;
use crate::events::BuildEvents;

/// The leak-scan gate every MAAS artifact passes.
const SCAN: Field = Field::new(
    "scan",
    "block",
    "The leak scan gate: `scan { enabled = true, allow = [\"rule:glob\", …] }`; on by default.",
);

/// `post-processor "maas-tgz"`.
pub static TGZ_SCHEMA: Schema = Schema {
    kind: PluginKind::PostProcessor,
    name: "maas-tgz",
    summary: "The root filesystem as MAAS (curtin) extracts it: a gzipped tarball read offline from the disk, scrubbed while streaming, then leak-scanned.",
    groups: &[TGZ_FIELDS],
    example: &[("output", "{{.BuildName}}.tar.gz")],
};

pub static TGZ_FIELDS: &[Field] = &[
    Field::new(
        "output",
        "string",
        "The tarball; `{{.BuildName}}` is rendered.",
    )
    .default("{{.BuildName}}.tar.gz"),
    Field::new(
        "root_partition",
        "int",
        "Root partition by number; unset: found automatically.",
    ),
    Field::new(
        "root_label",
        "string",
        "Root partition by filesystem label.",
    ),
    Field::new(
        "boot_partition",
        "string",
        "Append a boot partition under `boot/efi`: `esp` or a number; unset or `none`: no boot partition.",
    ),
    Field::new(
        "curtin_hooks",
        "string",
        "A local directory added as `curtin/` (mode 0750), e.g. holding `curtin-hooks`.",
    ),
    Field::new(
        "compression_level",
        "int",
        "gzip level 1–12 (libdeflate; 6 gives about `gzip -9`'s ratio).",
    )
    .default("6"),
    Field::new(
        "scrub",
        "bool",
        "Clean machine-id, host keys, cloud-init state, histories… while streaming.",
    )
    .default("true"),
    Field::new(
        "scrub_skip",
        "[]string",
        "Scrub rules to leave out, by name (e.g. `logs`).",
    ),
    Field::new(
        "keep_input_artifact",
        "bool",
        "Keep the disk image (it is always kept).",
    ),
    SCAN,
];

/// `post-processor "maas-dd"`.
pub static DD_SCHEMA: Schema = Schema {
    kind: PluginKind::PostProcessor,
    name: "maas-dd",
    summary: "The whole disk as MAAS writes it to a machine (raw, gzip or xz), leak-scanned.",
    groups: &[DD_FIELDS],
    example: &[("format", "ddxz")],
};

pub static DD_FIELDS: &[Field] = &[
    Field::new(
        "output",
        "string",
        "The disk file; `{{.BuildName}}` is rendered.",
    )
    .computed("`{{.BuildName}}.dd.gz`, `.dd.xz` or `.dd` by `format`"),
    Field::new("format", "string", "`ddgz`, `ddxz` or `ddraw`.").default("ddgz"),
    Field::new("compression_level", "int", "Compression level, 1 to 12.").default("6"),
    Field::new(
        "keep_input_artifact",
        "bool",
        "Keep the disk image (it is always kept).",
    ),
    SCAN,
];

/// `post-processor "maas-upload"`.
pub static UPLOAD_SCHEMA: Schema = Schema {
    kind: PluginKind::PostProcessor,
    name: "maas-upload",
    summary: "Upload the artifact of the previous post-processor to a MAAS region's boot resources.",
    groups: &[UPLOAD_FIELDS],
    example: &[
        ("url", "http://maas.example:5240/MAAS"),
        ("resource_name", "custom/debian-12"),
    ],
};

pub static UPLOAD_FIELDS: &[Field] = &[
    Field::new("url", "string", "MAAS URL, e.g. `http://maas:5240/MAAS`.").required(),
    Field::new(
        "api_key",
        "string",
        "`consumer:token:secret`; unset: the `MAAS_API_KEY` environment variable.",
    )
    .sensitive(),
    // Not `name`: Packer's common `name` names the post-processor block.
    Field::new(
        "resource_name",
        "string",
        "Boot resource name, e.g. `custom/debian-12` (MAAS's `name`).",
    )
    .required(),
    Field::new("title", "string", "Title shown in MAAS; unset: the name."),
    Field::new("architecture", "string", "MAAS architecture of the image.")
        .default("amd64/generic"),
    Field::new(
        "filetype",
        "string",
        "`tgz`, `ddgz`, `ddxz`, `ddraw`…; unset: detected (a mismatch is an error).",
    ),
    Field::new(
        "base_image",
        "string",
        "For non-Ubuntu custom images, e.g. `ubuntu/jammy`.",
    ),
    Field::new(
        "keep_input_artifact",
        "bool",
        "Keep the uploaded file (it is always kept).",
    ),
];

/// `scan { enabled = true, allow = ["rule:glob", …] }`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ScanGate {
    pub enabled: bool,
    /// (rule, path glob); an empty glob allows the rule anywhere.
    pub allow: Vec<(String, String)>,
}

fn decode_scan(d: &mut Decoder<'_>) -> ScanGate {
    let blocks = d.blocks("scan");
    let mut gate = ScanGate {
        enabled: true,
        allow: Vec::new(),
    };
    for b in blocks {
        let mut s = Decoder::new(&b.body, "scan");
        gate.enabled = s.or("enabled", true);
        let allow: Vec<String> = s.or("allow", Vec::new());
        for a in allow {
            match kiln_image::scan::parse_allow(&a) {
                Ok(entry) => gate.allow.push(entry),
                Err(e) => d.error(
                    "scan",
                    format!("`allow` entry `{a}`: {e}"),
                    Some(format!(
                        "valid rule ids: {}",
                        kiln_image::scan::rules::rule_ids()
                    )),
                ),
            }
        }
        if let Err(errors) = s.finish() {
            for e in errors {
                d.error("scan", e.message, e.help);
            }
        }
    }
    gate
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TgzConfig {
    pub output: String,
    pub root: RootSelector,
    pub boot: BootPartition,
    pub curtin_hooks: Option<PathBuf>,
    pub level: i32,
    pub scrub: bool,
    pub scrub_skip: Vec<String>,
    pub scan: ScanGate,
}

pub fn decode_tgz(body: &Body, what: &str, cwd: &Path) -> Result<TgzConfig, Vec<DecodeError>> {
    let mut d = Decoder::with_schema(body, what, &TGZ_SCHEMA);
    let output: String = d.or_default("output");
    let root_partition: Option<u32> = d.opt("root_partition");
    let root_label: Option<String> = d.opt("root_label");
    let boot: Option<String> = d.opt("boot_partition");
    let curtin_hooks: Option<String> = d.opt("curtin_hooks");
    let level: i64 = d.or_default("compression_level");
    let scrub = d.or_default("scrub");
    let scrub_skip: Vec<String> = d.or("scrub_skip", Vec::new());
    let _ = d.opt::<bool>("keep_input_artifact");
    let scan = decode_scan(&mut d);
    let root = match (root_partition, root_label) {
        (Some(_), Some(_)) => {
            d.error(
                "root_label",
                "set `root_partition` or `root_label`, not both",
                None,
            );
            RootSelector::Auto
        }
        (Some(n), None) => RootSelector::Number(n),
        (None, Some(l)) => RootSelector::Label(l),
        (None, None) => RootSelector::Auto,
    };
    let boot = match boot.as_deref() {
        None | Some("") | Some("none") => BootPartition::None,
        Some("esp") => BootPartition::Esp,
        Some(n) => match n.parse::<u32>() {
            Ok(n) => BootPartition::Number(n),
            Err(_) => {
                d.error(
                    "boot_partition",
                    format!("expected `esp` or a partition number, got {n:?}"),
                    None,
                );
                BootPartition::None
            }
        },
    };
    let curtin_hooks = curtin_hooks.map(|p| cwd.join(p));
    if let Some(dir) = &curtin_hooks
        && !dir.is_dir()
    {
        d.error(
            "curtin_hooks",
            format!("{} is not a directory", dir.display()),
            None,
        );
    }
    if !(1..=12).contains(&level) {
        d.error("compression_level", "expected 1 to 12", None);
    }
    let known: Vec<String> = kiln_image::scrub::default_rules()
        .iter()
        .map(|r| r.name.clone())
        .collect();
    for s in &scrub_skip {
        if !known.contains(s) {
            let names: Vec<&str> = known.iter().map(String::as_str).collect();
            d.error(
                "scrub_skip",
                format!("unknown scrub rule `{s}`"),
                Some(format!("rules: {}", dedup(&names).join(", "))),
            );
        }
    }
    d.finish()?;
    Ok(TgzConfig {
        output,
        root,
        boot,
        curtin_hooks,
        level: level.clamp(1, 12) as i32,
        scrub,
        scrub_skip,
        scan,
    })
}

fn dedup<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for n in names {
        if !out.contains(n) {
            out.push(n);
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DdConfig {
    pub output: Option<String>,
    pub format: DdFormat,
    pub level: i32,
    pub scan: ScanGate,
}

pub fn decode_dd(body: &Body, what: &str) -> Result<DdConfig, Vec<DecodeError>> {
    let mut d = Decoder::with_schema(body, what, &DD_SCHEMA);
    let output: Option<String> = d.opt("output");
    let format_text: String = d.or_default("format");
    let level: i64 = d.or_default("compression_level");
    let _ = d.opt::<bool>("keep_input_artifact");
    let scan = decode_scan(&mut d);
    let format = DdFormat::parse(&format_text).unwrap_or_else(|| {
        d.error(
            "format",
            format!("unknown format `{format_text}`: use ddgz, ddxz or ddraw"),
            None,
        );
        DdFormat::Ddgz
    });
    d.finish()?;
    Ok(DdConfig {
        output,
        format,
        level: level.clamp(1, 12) as i32,
        scan,
    })
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct UploadConfig {
    pub url: String,
    /// `None`: read `MAAS_API_KEY` at run time.
    pub api_key: Option<kiln_secret::Sensitive<String>>,
    pub name: String,
    pub title: Option<String>,
    pub architecture: String,
    pub filetype: Option<String>,
    pub base_image: Option<String>,
}

pub fn decode_upload(body: &Body, what: &str) -> Result<UploadConfig, Vec<DecodeError>> {
    let mut d = Decoder::with_schema(body, what, &UPLOAD_SCHEMA);
    let url: Option<String> = d.required("url");
    let api_key: Option<String> = d.opt("api_key");
    let present = d.has("resource_name");
    let name: Option<String> = d.opt("resource_name");
    if !present {
        d.error(
            "resource_name",
            "missing required attribute",
            Some(
                "the boot resource's name (MAAS's `name`, e.g. `custom/debian-12`) is `resource_name`; \
                 `name` names the post-processor block itself, as in Packer"
                    .into(),
            ),
        );
    }
    let title = d.opt("title");
    let architecture = d.or_default("architecture");
    let filetype = d.opt("filetype");
    let base_image = d.opt("base_image");
    let _ = d.opt::<bool>("keep_input_artifact");
    if let Some(k) = &api_key
        && kiln_maas::upload::ApiKey::parse(k).is_err()
    {
        d.error(
            "api_key",
            "a MAAS API key has the form `consumer:token:secret`",
            None,
        );
    }
    d.finish()?;
    Ok(UploadConfig {
        url: url.unwrap_or_default(),
        api_key: api_key.map(kiln_secret::Sensitive::new),
        name: name.unwrap_or_default(),
        title,
        architecture,
        filetype,
        base_image,
    })
}

/// What the leak scan must look for, from the build.
#[derive(Clone, Debug, Default)]
pub struct LeakContext {
    pub sensitive: Vec<String>,
    pub build_public_keys: Vec<String>,
    pub passwords: Vec<String>,
}

/// Why a MAAS post-processor failed. The texts join a source's causes
/// with `: ` (as the one-line build error shows them).
#[derive(Debug, thiserror::Error)]
pub enum MaasPpError {
    #[error("no disk image among the input artifact's files ({files})")]
    NoDiskImage { files: String },
    #[error("`output`: {0}")]
    OutputName(#[source] placeholders::PlaceholderError),
    #[error("{}", chain(.0))]
    Output(kiln_image::output::OutputError),
    #[error("cannot create the output directory `{}`", dir.display())]
    OutputDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", chain(.0))]
    Write(kiln_maas::ArtifactError),
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("leak scan of {} (not published): {}", artifact.display(), chain(error))]
    Scan {
        artifact: PathBuf,
        error: kiln_image::scan::ScanError,
    },
    #[error("{}", leak_message(artifact, findings))]
    Leaks {
        artifact: PathBuf,
        findings: Vec<kiln_image::scan::Finding>,
    },
    #[error("no `api_key` and no MAAS_API_KEY in the environment")]
    NoApiKey,
    #[error("maas-upload: the input artifact has no file")]
    NoUploadFile,
    #[error("{0}")]
    Upload(#[from] kiln_maas::upload::UploadError),
}

/// An error and its causes on one line (`…: cause: cause`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

fn leak_message(artifact: &Path, findings: &[kiln_image::scan::Finding]) -> String {
    let mut msg = format!(
        "leak scan found {} problem(s) in {}; the artifact was not published:",
        findings.len(),
        artifact.display()
    );
    for f in findings {
        msg.push_str(&format!(
            "\n  {:?} {} {}: {}",
            f.severity, f.rule, f.path, f.excerpt
        ));
    }
    msg.push_str(
        "\nfix the image, or accept a finding with `scan { allow = [\"RULE:PATH-GLOB\"] }`",
    );
    msg
}

/// The image a MAAS post-processor reads: the builder's disk.
fn input_image(input: &Artifact, cwd: &Path) -> Result<PathBuf, MaasPpError> {
    input
        .files
        .iter()
        .map(|f| cwd.join(f))
        .find(|f| {
            let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
            f.is_file()
                && !matches!(
                    ext,
                    "fd" | "json" | "sha256" | "md5" | "sha1" | "sha512" | "log"
                )
        })
        .ok_or_else(|| MaasPpError::NoDiskImage {
            files: input.describe(),
        })
}

/// Where a MAAS artifact goes: `output` rendered, under `cwd`.
fn output_path(
    template: &str,
    cwd: &Path,
    build_name: &str,
    builder_type: &str,
) -> Result<PathBuf, MaasPpError> {
    let data = TemplateData::new()
        .with("BuildName", build_name)
        .with("BuilderType", builder_type);
    let rel = placeholders::render(template, &data).map_err(MaasPpError::OutputName)?;
    Ok(cwd.join(rel))
}

/// `maas-tgz`: write, then scan.
pub async fn run_tgz(
    cfg: &TgzConfig,
    input: &Artifact,
    cwd: &Path,
    build_name: &str,
    builder_type: &str,
    leak: &LeakContext,
    ev: &BuildEvents,
) -> Result<(Artifact, Option<ScanReport>), MaasPpError> {
    let image = input_image(input, cwd)?;
    let output = output_path(&cfg.output, cwd, build_name, builder_type)?;
    let scrub = if cfg.scrub {
        let skip: Vec<&str> = cfg.scrub_skip.iter().map(String::as_str).collect();
        Some(kiln_image::scrub::Scrub::defaults_without(
            &skip,
            &leak.build_public_keys,
        ))
    } else {
        None
    };
    let opts = TgzOptions {
        root: cfg.root.clone(),
        boot: cfg.boot.clone(),
        curtin_dir: cfg.curtin_hooks.clone(),
        level: cfg.level,
        scrub,
        ..TgzOptions::default()
    };
    let writer = Writer {
        kind: "maas-tgz",
        prefix: "tgz",
        what: "the MAAS root tarball",
        progress_every: 32 << 20,
    };
    let out = writer
        .write(
            &image,
            &output,
            &cfg.scan,
            leak,
            ev,
            move |image, staged, progress| kiln_maas::write_tgz_to(image, staged, &opts, progress),
        )
        .await?;
    let report = &out.report;
    ev.say(format!(
        "Root tarball: {} entries, {} bytes of tar, {} bytes gzip'd (root partition {})",
        report.entries, report.tar_bytes, report.gz_bytes, report.root_partition
    ));
    for n in &report.notes {
        ev.warn(n.clone());
    }
    out.finish(ev).await
}

/// `maas-dd`: write, then scan.
pub async fn run_dd(
    cfg: &DdConfig,
    input: &Artifact,
    cwd: &Path,
    build_name: &str,
    builder_type: &str,
    leak: &LeakContext,
    ev: &BuildEvents,
) -> Result<(Artifact, Option<ScanReport>), MaasPpError> {
    let image = input_image(input, cwd)?;
    let ext = match cfg.format {
        DdFormat::Ddgz => "dd.gz",
        DdFormat::Ddxz => "dd.xz",
        DdFormat::Ddraw => "img",
    };
    let template = cfg
        .output
        .clone()
        .unwrap_or_else(|| format!("{{{{.BuildName}}}}.{ext}"));
    let output = output_path(&template, cwd, build_name, builder_type)?;
    let opts = DdOptions {
        format: cfg.format,
        level: cfg.level,
        threads: 0,
    };
    let writer = Writer {
        kind: "maas-dd",
        prefix: "dd",
        what: "the MAAS disk image",
        progress_every: 64 << 20,
    };
    let out = writer
        .write(
            &image,
            &output,
            &cfg.scan,
            leak,
            ev,
            move |image, staged, progress| kiln_maas::write_dd_to(image, staged, &opts, progress),
        )
        .await?;
    ev.say(format!(
        "Disk image: {} bytes of disk, {} bytes written",
        out.report.disk_bytes, out.report.out_bytes
    ));
    out.finish(ev).await
}

/// The tail both MAAS writers share: stage the output beside its final
/// name, write it off the async runtime with throttled progress, and, in
/// [`Written::finish`], pass the leak-scan gate and publish.
struct Writer {
    /// Post-processor type: the artifact's builder id and progress label.
    kind: &'static str,
    /// Staging file prefix.
    prefix: &'static str,
    /// What is written, for the log.
    what: &'static str,
    /// Bytes between progress events.
    progress_every: u64,
}

/// A written, not yet published, artifact.
struct Written<'a, R> {
    writer: Writer,
    staged: Staged,
    output: PathBuf,
    report: R,
    gate: &'a ScanGate,
    leak: &'a LeakContext,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    async fn write<'a, R: Send + 'static>(
        self,
        image: &Path,
        output: &Path,
        gate: &'a ScanGate,
        leak: &'a LeakContext,
        ev: &BuildEvents,
        write: impl FnOnce(
            &Path,
            &Staged,
            &mut dyn FnMut(&kiln_maas::Progress),
        ) -> Result<R, kiln_maas::ArtifactError>
        + Send
        + 'static,
    ) -> Result<Written<'a, R>, MaasPpError> {
        let staged = stage_output(image, output, self.prefix, ev)?;
        ev.say(format!("Writing {} {}", self.what, output.display()));
        let (image, ev2, kind, every) = (
            image.to_path_buf(),
            ev.clone(),
            self.kind,
            self.progress_every,
        );
        let (staged, report) = tokio::task::spawn_blocking(move || {
            let mut last = 0u64;
            let r = write(&image, &staged, &mut |p| {
                if p.bytes_read.abs_diff(last) >= every {
                    last = p.bytes_read;
                    ev2.progress(kind, p.bytes_read, None);
                }
            });
            r.map(|r| (staged, r))
        })
        .await?
        .map_err(MaasPpError::Write)?;
        Ok(Written {
            writer: self,
            staged,
            output: output.to_path_buf(),
            report,
            gate,
            leak,
        })
    }
}

impl<R> Written<'_, R> {
    /// The gate, then the rename into place.
    async fn finish(self, ev: &BuildEvents) -> Result<(Artifact, Option<ScanReport>), MaasPpError> {
        let scan = gate(self.gate, &self.staged, self.leak, ev).await?;
        self.staged.publish().map_err(MaasPpError::Output)?;
        let artifact = Artifact::new(
            self.writer.kind,
            &self.output.display().to_string(),
            vec![self.output.clone()],
        );
        Ok((artifact, scan))
    }
}

/// The temporary file an artifact is written to until the gate accepts
/// it; the output must not be the input disk (or a file of its backing
/// chain) nor anything but a regular file. A previous build's artifact is
/// replaced, and the build says so. A missing directory is made, as
/// Packer's post-processors make theirs.
fn stage_output(
    image: &Path,
    output: &Path,
    prefix: &str,
    ev: &BuildEvents,
) -> Result<Staged, MaasPpError> {
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| MaasPpError::OutputDir {
            dir: dir.to_owned(),
            source,
        })?;
    }
    let staged =
        Staged::create(output, prefix, &backing_chain(image), true).map_err(MaasPpError::Output)?;
    if staged.replaces() {
        ev.say(format!("Replacing the existing {}", output.display()));
    }
    Ok(staged)
}

/// The leak-scan gate, run on the finished artifact before it is
/// published: findings fail the post-processor, and the leaking artifact
/// never appears at its output path.
async fn gate(
    gate: &ScanGate,
    staged: &Staged,
    leak: &LeakContext,
    ev: &BuildEvents,
) -> Result<Option<ScanReport>, MaasPpError> {
    let artifact = staged.dest().to_path_buf();
    if !gate.enabled {
        ev.warn(format!("leak scan disabled for {}", artifact.display()));
        return Ok(None);
    }
    ev.say(format!(
        "Scanning {} for leaked secrets",
        artifact.display()
    ));
    let cfg = ScanConfig {
        build_public_keys: leak.build_public_keys.clone(),
        sensitive: leak
            .sensitive
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        passwords: leak.passwords.clone(),
        allow: gate.allow.clone(),
    };
    let path = staged.path().to_path_buf();
    let report = tokio::task::spawn_blocking(move || kiln_image::scan::scan_path(&path, &cfg))
        .await?
        .map_err(|error| MaasPpError::Scan {
            artifact: artifact.clone(),
            error,
        })?;
    if report.is_clean() {
        ev.say(format!(
            "Leak scan: clean ({} files, {} allowed findings)",
            report.files,
            report.allowed.len()
        ));
        return Ok(Some(report));
    }
    Err(MaasPpError::Leaks {
        artifact,
        findings: report.findings,
    })
}

/// `maas-upload`: the input artifact to MAAS.
pub async fn run_upload(
    cfg: &UploadConfig,
    input: &Artifact,
    cwd: &Path,
    ev: &BuildEvents,
) -> Result<(), MaasPpError> {
    let key_text = match &cfg.api_key {
        Some(k) => k.expose().clone(),
        None => std::env::var("MAAS_API_KEY").map_err(|_| MaasPpError::NoApiKey)?,
    };
    let api_key = kiln_maas::upload::ApiKey::parse(&key_text)?;
    let path = input
        .files
        .first()
        .map(|f| cwd.join(f))
        .ok_or(MaasPpError::NoUploadFile)?;
    let req = kiln_maas::upload::UploadRequest {
        url: cfg.url.clone(),
        api_key,
        name: cfg.name.clone(),
        title: cfg.title.clone().unwrap_or_else(|| cfg.name.clone()),
        architecture: cfg.architecture.clone(),
        filetype: cfg.filetype.clone(),
        base_image: cfg.base_image.clone(),
        path,
        chunk_size: kiln_maas::upload::DEFAULT_CHUNK,
    };
    ev.say(format!(
        "Uploading {} to MAAS as {}",
        req.path.display(),
        req.name
    ));
    let ev2 = ev.clone();
    let report = kiln_maas::upload::upload(&req, &mut move |p| {
        ev2.progress("maas-upload", p.uploaded, Some(p.size))
    })
    .await?;
    ev.say(format!(
        "Uploaded to MAAS: boot resource {} ({}, {} bytes, sha256 {}){}",
        report.resource_id,
        report.filetype,
        report.size,
        report.sha256,
        if report.resumed_from > 0 {
            format!(", resumed at byte {}", report.resumed_from)
        } else {
            String::new()
        }
    ));
    Ok(())
}

/// The in-guest scrub for disk outputs (`maas-dd`): the same rules the
/// tarball writer applies while streaming, as a root shell script run as
/// the last step before shutdown.
pub fn guest_scrub_script() -> String {
    kiln_image::scrub::guest_script()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_scrub_covers_every_default_rule() {
        let script = guest_scrub_script();
        let marks = [
            ("machine-id", "/etc/machine-id"),
            ("ssh-host-keys", "ssh_host_"),
            ("cloud-init-state", "/var/lib/cloud/instances"),
            ("cloud-init-logs", "/var/log/cloud-init"),
            ("tmp", "/var/tmp"),
            ("apt-lists", "/var/lib/apt/lists"),
            ("apt-cache", "/var/cache/apt"),
            ("cloud-init-network", "50-cloud-init.yaml"),
            ("logs", "/var/log/journal"),
            ("shell-history", ".bash_history"),
        ];
        for rule in kiln_image::scrub::default_rules() {
            if rule.name == "build-key" {
                // Removed by `ssh_clear_authorized_keys` semantics before shutdown.
                continue;
            }
            let mark = marks
                .iter()
                .find(|(n, _)| *n == rule.name)
                .unwrap_or_else(|| panic!("no guest scrub for rule `{}`", rule.name));
            assert!(script.contains(mark.1), "{}", rule.name);
        }
    }
}
