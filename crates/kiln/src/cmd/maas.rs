//! `kiln maas`: MAAS artifacts from any existing image (a Packer output,
//! say), without root, nbd or FUSE, and their upload.

use std::path::PathBuf;

use kiln_image::RootSelector;
use kiln_image::scan::{ScanConfig, scan_path};
use kiln_maas::{BootPartition, DdFormat, DdOptions, TgzOptions};

use crate::exit::Exit;
use crate::render;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The root filesystem as a tarball curtin extracts (`custom.tar.gz`).
    Tgz(TgzArgs),
    /// The whole disk as `dd.gz`, `dd.xz` or raw.
    Dd(DdArgs),
    /// Upload an artifact to MAAS's boot resources (resumes an interrupted upload).
    Upload(UploadArgs),
}

#[derive(Debug, clap::Args)]
pub struct TgzArgs {
    /// qcow2 (backing chains included) or raw disk image.
    pub image: PathBuf,
    /// Output tarball.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Root partition by number (default: the ext4 partition holding /etc/os-release).
    #[arg(long = "root-partition")]
    pub root_partition: Option<u32>,
    /// Root partition by filesystem label.
    #[arg(long = "root-label")]
    pub root_label: Option<String>,
    /// Append the EFI system partition (`esp`) or partition N under boot/efi.
    #[arg(long = "boot-partition")]
    pub boot_partition: Option<String>,
    /// A directory added as `curtin/` (mode 0750), e.g. with `curtin-hooks`.
    #[arg(long)]
    pub curtin: Option<PathBuf>,
    /// gzip level 1–12 (default 6).
    #[arg(long, default_value_t = kiln_maas::tgz::DEFAULT_LEVEL)]
    pub level: i32,
    /// Write the tree as it is (no machine-id/host-key/cloud-init cleanup).
    #[arg(long = "no-scrub")]
    pub no_scrub: bool,
    /// Skip the leak scan of the result.
    #[arg(long = "no-scan")]
    pub no_scan: bool,
    /// Accept a known scan finding: `RULE` or `RULE:GLOB`.
    #[arg(long)]
    pub allow: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct DdArgs {
    pub image: PathBuf,
    #[arg(short, long)]
    pub output: PathBuf,
    /// ddgz (default), ddxz or ddraw.
    #[arg(long, default_value = "ddgz")]
    pub format: String,
    #[arg(long, default_value_t = 6)]
    pub level: i32,
    #[arg(long = "no-scan")]
    pub no_scan: bool,
    #[arg(long)]
    pub allow: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    /// The artifact (tgz, dd.gz, …).
    pub artifact: PathBuf,
    /// MAAS URL, e.g. http://maas:5240/MAAS.
    #[arg(long)]
    pub url: String,
    /// Boot resource name, e.g. custom/debian-12.
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long, default_value = "amd64/generic")]
    pub architecture: String,
    /// Default: detected from the file (a mismatch with the given one is an error).
    #[arg(long)]
    pub filetype: Option<String>,
    #[arg(long = "base-image")]
    pub base_image: Option<String>,
    /// `consumer:token:secret`; default the MAAS_API_KEY environment variable.
    #[arg(long = "api-key", env = "MAAS_API_KEY", hide_env_values = true)]
    pub api_key: String,
}

pub fn run(cmd: &Command) -> Exit {
    match cmd {
        Command::Tgz(a) => tgz(a),
        Command::Dd(a) => dd(a),
        Command::Upload(a) => upload(a),
    }
}

fn tgz(a: &TgzArgs) -> Exit {
    let root = match (&a.root_partition, &a.root_label) {
        (Some(n), None) => RootSelector::Number(*n),
        (None, Some(l)) => RootSelector::Label(l.clone()),
        (None, None) => RootSelector::Auto,
        _ => return crate::cli::usage_error("give --root-partition or --root-label, not both"),
    };
    let boot = match a.boot_partition.as_deref() {
        None => BootPartition::None,
        Some("esp") => BootPartition::Esp,
        Some(n) => match n.parse() {
            Ok(n) => BootPartition::Number(n),
            Err(_) => return crate::cli::usage_error("--boot-partition takes `esp` or a number"),
        },
    };
    let opts = TgzOptions {
        root,
        boot,
        curtin_dir: a.curtin.clone(),
        level: a.level,
        scrub: (!a.no_scrub).then(|| kiln_image::scrub::Scrub::with_defaults(&[])),
        ..TgzOptions::default()
    };
    let started = std::time::Instant::now();
    let report = kiln_maas::write_tgz(&a.image, &a.output, &opts, &mut |_| {});
    match report {
        Ok(r) => {
            render::err_line(&format!(
                "wrote {}: {} entries, {} bytes of tar, {} bytes gzip'd, root partition {}, in {:.1} s",
                a.output.display(),
                r.entries,
                r.tar_bytes,
                r.gz_bytes,
                r.root_partition,
                started.elapsed().as_secs_f64()
            ));
            for (rule, n) in &r.scrubbed {
                render::err_line(&format!("scrubbed {rule}: {n}"));
            }
            for n in &r.notes {
                render::err_line(&format!("note: {n}"));
            }
        }
        Err(e) => {
            render::error(&format!("{}: {e}", a.image.display()), None);
            return Exit::Failed;
        }
    }
    scan_result(&a.output, a.no_scan, &a.allow)
}

fn dd(a: &DdArgs) -> Exit {
    let Some(format) = DdFormat::parse(&a.format) else {
        return crate::cli::usage_error("--format takes ddgz, ddxz or ddraw");
    };
    let opts = DdOptions {
        format,
        level: a.level,
        threads: 0,
    };
    match kiln_maas::write_dd(&a.image, &a.output, &opts, &mut |_| {}) {
        Ok(r) => render::err_line(&format!(
            "wrote {}: {} bytes of disk, {} bytes written",
            a.output.display(),
            r.disk_bytes,
            r.out_bytes
        )),
        Err(e) => {
            render::error(&format!("{}: {e}", a.image.display()), None);
            return Exit::Failed;
        }
    }
    scan_result(&a.output, a.no_scan, &a.allow)
}

/// The leak scan of a written artifact: findings make the command fail
/// (the file is kept for inspection; nothing was published).
fn scan_result(path: &std::path::Path, skip: bool, allow: &[String]) -> Exit {
    if skip {
        return Exit::Ok;
    }
    let cfg = ScanConfig {
        allow: allow
            .iter()
            .map(|a| kiln_build::postprocess::maas::parse_allow(a))
            .collect(),
        ..ScanConfig::default()
    };
    match scan_path(path, &cfg) {
        Ok(r) if r.is_clean() => Exit::Ok,
        Ok(r) => {
            for f in &r.findings {
                render::err_line(&format!("leak: {} {} {}", f.rule, f.path, f.excerpt));
            }
            render::error(
                &format!("{} leaks {} finding(s)", path.display(), r.findings.len()),
                Some("fix the image, or accept a finding with --allow RULE:GLOB"),
            );
            Exit::Failed
        }
        Err(e) => {
            render::error(&format!("scan of {}: {e}", path.display()), None);
            Exit::Failed
        }
    }
}

fn upload(a: &UploadArgs) -> Exit {
    let key = match kiln_maas::upload::ApiKey::parse(&a.api_key) {
        Ok(k) => k,
        Err(e) => return crate::cli::usage_error(&e.to_string()),
    };
    let req = kiln_maas::upload::UploadRequest {
        url: a.url.clone(),
        api_key: key,
        name: a.name.clone(),
        title: a.title.clone().unwrap_or_else(|| a.name.clone()),
        architecture: a.architecture.clone(),
        filetype: a.filetype.clone(),
        base_image: a.base_image.clone(),
        path: a.artifact.clone(),
        chunk_size: kiln_maas::upload::DEFAULT_CHUNK,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            render::error(&format!("cannot start the async runtime: {e}"), None);
            return Exit::Failed;
        }
    };
    match runtime.block_on(kiln_maas::upload::upload(&req, &mut |_| {})) {
        Ok(r) => {
            render::out(&serde_json::to_string(&r).unwrap_or_default());
            Exit::Ok
        }
        Err(e) => {
            render::error(&e.to_string(), None);
            Exit::Failed
        }
    }
}
