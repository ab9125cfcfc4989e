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
        ("name", "custom/debian-12"),
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
    Field::new(
        "name",
        "string",
        "Boot resource name, e.g. `custom/debian-12`.",
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
    let name: Option<String> = d.required("name");
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

/// The image a MAAS post-processor reads: the builder's disk.
fn input_image(input: &Artifact, cwd: &Path) -> Result<PathBuf, String> {
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
        .ok_or_else(|| {
            format!(
                "no disk image among the input artifact's files ({})",
                input.describe()
            )
        })
}

fn render_output(template: &str, build_name: &str, builder_type: &str) -> Result<String, String> {
    let data = TemplateData::new()
        .with("BuildName", build_name)
        .with("BuilderType", builder_type);
    placeholders::render(template, &data).map_err(|e| format!("`output`: {e}"))
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
) -> Result<(Artifact, Option<ScanReport>), String> {
    let image = input_image(input, cwd)?;
    let rel = PathBuf::from(render_output(&cfg.output, build_name, builder_type)?);
    let output = cwd.join(&rel);
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
    let staged = stage_output(&image, &output, "tgz", ev)?;
    ev.say(format!(
        "Writing the MAAS root tarball {}",
        output.display()
    ));
    let (image2, ev2) = (image.clone(), ev.clone());
    let (staged, report) = tokio::task::spawn_blocking(move || {
        let mut last = 0u64;
        let r = kiln_maas::write_tgz_to(&image2, &staged, &opts, &mut |p| {
            if p.bytes_read.abs_diff(last) >= 32 << 20 {
                last = p.bytes_read;
                ev2.progress("maas-tgz", p.bytes_read, None);
            }
        });
        r.map(|r| (staged, r))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| error_text(&e))?;
    ev.say(format!(
        "Root tarball: {} entries, {} bytes of tar, {} bytes gzip'd (root partition {})",
        report.entries, report.tar_bytes, report.gz_bytes, report.root_partition
    ));
    for n in &report.notes {
        ev.warn(n.clone());
    }
    let scan = gate(&cfg.scan, &staged, leak, ev).await?;
    publish(staged)?;
    let artifact = Artifact::new(
        "maas-tgz",
        &output.display().to_string(),
        vec![output.clone()],
    );
    Ok((artifact, scan))
}

/// The temporary file an artifact is written to until the gate accepts
/// it; the output must not be the input disk (or a file of its backing
/// chain) nor anything but a regular file. A previous build's artifact is
/// replaced, and the build says so.
fn stage_output(
    image: &Path,
    output: &Path,
    prefix: &str,
    ev: &BuildEvents,
) -> Result<Staged, String> {
    let staged =
        Staged::create(output, prefix, &backing_chain(image), true).map_err(|e| error_text(&e))?;
    if staged.replaces() {
        ev.say(format!("Replacing the existing {}", output.display()));
    }
    Ok(staged)
}

fn publish(staged: Staged) -> Result<(), String> {
    staged.publish().map(|_| ()).map_err(|e| error_text(&e))
}

/// An error and its causes on one line (`…: caused by …`).
fn error_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
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
) -> Result<(Artifact, Option<ScanReport>), String> {
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
    let rel = PathBuf::from(render_output(&template, build_name, builder_type)?);
    let output = cwd.join(&rel);
    let opts = DdOptions {
        format: cfg.format,
        level: cfg.level,
        threads: 0,
    };
    let staged = stage_output(&image, &output, "dd", ev)?;
    ev.say(format!("Writing the MAAS disk image {}", output.display()));
    let (image2, ev2) = (image.clone(), ev.clone());
    let (staged, report) = tokio::task::spawn_blocking(move || {
        let mut last = 0u64;
        let r = kiln_maas::write_dd_to(&image2, &staged, &opts, &mut |p| {
            if p.bytes_read.abs_diff(last) >= 64 << 20 {
                last = p.bytes_read;
                ev2.progress("maas-dd", p.bytes_read, None);
            }
        });
        r.map(|r| (staged, r))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| error_text(&e))?;
    ev.say(format!(
        "Disk image: {} bytes of disk, {} bytes written",
        report.disk_bytes, report.out_bytes
    ));
    let scan = gate(&cfg.scan, &staged, leak, ev).await?;
    publish(staged)?;
    let artifact = Artifact::new(
        "maas-dd",
        &output.display().to_string(),
        vec![output.clone()],
    );
    Ok((artifact, scan))
}

/// The leak-scan gate, run on the finished artifact before it is
/// published: findings fail the post-processor, and the leaking artifact
/// never appears at its output path.
async fn gate(
    gate: &ScanGate,
    staged: &Staged,
    leak: &LeakContext,
    ev: &BuildEvents,
) -> Result<Option<ScanReport>, String> {
    let artifact = staged.dest();
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
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| {
            format!(
                "leak scan of {} (not published): {}",
                artifact.display(),
                error_text(&e)
            )
        })?;
    if report.is_clean() {
        ev.say(format!(
            "Leak scan: clean ({} files, {} allowed findings)",
            report.files,
            report.allowed.len()
        ));
        return Ok(Some(report));
    }
    let mut msg = format!(
        "leak scan found {} problem(s) in {}; the artifact was not published:",
        report.findings.len(),
        artifact.display()
    );
    for f in &report.findings {
        msg.push_str(&format!(
            "\n  {:?} {} {}: {}",
            f.severity, f.rule, f.path, f.excerpt
        ));
    }
    msg.push_str(
        "\nfix the image, or accept a finding with `scan { allow = [\"RULE:PATH-GLOB\"] }`",
    );
    Err(msg)
}

/// `maas-upload`: the input artifact to MAAS.
pub async fn run_upload(
    cfg: &UploadConfig,
    input: &Artifact,
    cwd: &Path,
    ev: &BuildEvents,
) -> Result<(), String> {
    let key_text = match &cfg.api_key {
        Some(k) => k.expose().clone(),
        None => std::env::var("MAAS_API_KEY")
            .map_err(|_| "no `api_key` and no MAAS_API_KEY in the environment".to_string())?,
    };
    let api_key = kiln_maas::upload::ApiKey::parse(&key_text).map_err(|e| e.to_string())?;
    let path = input
        .files
        .first()
        .map(|f| cwd.join(f))
        .ok_or_else(|| "maas-upload: the input artifact has no file".to_string())?;
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
    .await
    .map_err(|e| e.to_string())?;
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
    r#"set -u
truncate -s 0 /etc/machine-id 2>/dev/null || true
if [ -e /var/lib/dbus/machine-id ]; then truncate -s 0 /var/lib/dbus/machine-id; fi
rm -f /etc/ssh/ssh_host_*
rm -rf /var/lib/cloud/instances /var/lib/cloud/instance /var/lib/cloud/data /var/lib/cloud/sem /var/lib/cloud/seed
rm -f /var/log/cloud-init*
for h in .bash_history .zsh_history .sh_history .ash_history .python_history .mysql_history .psql_history .sqlite_history .lesshst .viminfo .wget-hsts .node_repl_history; do
  rm -f /root/$h /home/*/$h
done
find /tmp /var/tmp -mindepth 1 -type f -delete 2>/dev/null || true
find /var/lib/apt/lists -mindepth 1 -type f -delete 2>/dev/null || true
rm -f /var/cache/apt/*.bin
find /var/cache/apt/archives -name '*.deb' -delete 2>/dev/null || true
rm -f /etc/netplan/50-cloud-init.yaml /etc/network/interfaces.d/50-cloud-init /etc/network/interfaces.d/50-cloud-init.cfg
find /var/log/journal -mindepth 1 -type f -delete 2>/dev/null || true
find /var/log -type f \( -name '*.[0-9]' -o -name '*.gz' -o -name '*.old' \) -delete 2>/dev/null || true
find /var/log -type f -exec truncate -s 0 {} + 2>/dev/null || true
sync
"#
    .to_string()
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
