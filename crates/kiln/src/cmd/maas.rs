//! `kiln maas`: MAAS artifacts from any existing image (a Packer output,
//! say), without root, nbd or FUSE, and their upload.

use std::path::{Path, PathBuf};

use kiln_image::RootSelector;
use kiln_image::output::Staged;
use kiln_image::qcow2::backing_chain;
use kiln_image::scan::{ScanConfig, scan_path};
use kiln_maas::{BootPartition, DdFormat, DdOptions, TgzOptions};

use crate::context::Context;
use crate::env_vars;
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
    /// Output tarball (`-` writes it to standard output once it passed the scan).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
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
    #[arg(long, default_value_t = kiln_maas::tgz::DEFAULT_LEVEL,
          value_parser = clap::value_parser!(i32).range(1..=12))]
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
    /// qcow2 (backing chains included) or raw disk image.
    pub image: PathBuf,
    /// Output file (`-` writes it to standard output once it passed the scan).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// ddgz (default), ddxz or ddraw.
    #[arg(long, default_value = "ddgz")]
    pub format: String,
    /// Compression level: gzip 1–12, xz 0–9 (default 6).
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
    #[arg(long = "api-key", env = env_vars::MAAS_API_KEY, hide_env_values = true)]
    pub api_key: String,
}

pub fn run(cmd: &Command, cx: &Context) -> Exit {
    match cmd {
        Command::Tgz(a) => {
            crate::interrupt::remove_outputs_on_signal(cx);
            tgz(a)
        }
        Command::Dd(a) => {
            crate::interrupt::remove_outputs_on_signal(cx);
            dd(a)
        }
        Command::Upload(a) => upload(a, cx),
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
    let allow = match super::scan::allow_flags(&a.allow) {
        Ok(allow) => allow,
        Err(exit) => return exit,
    };
    let Ok(staged) = stage(&a.image, &a.output, "tgz", a.force) else {
        return Exit::Usage;
    };
    let started = std::time::Instant::now();
    match kiln_maas::write_tgz_to(&a.image, &staged, &opts, &mut |_| {}) {
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
            render::error_chain(&e, None);
            return Exit::Failed;
        }
    }
    gate_and_publish(staged, a.no_scan, allow)
}

fn dd(a: &DdArgs) -> Exit {
    let Some(format) = DdFormat::parse(&a.format) else {
        return crate::cli::usage_error("--format takes ddgz, ddxz or ddraw");
    };
    let range = kiln_maas::dd::level_range(format);
    if !range.contains(&a.level) {
        return crate::cli::usage_error(&format!(
            "--level {} is out of range for {}: {}..={}",
            a.level,
            format.filetype(),
            range.start(),
            range.end()
        ));
    }
    let opts = DdOptions {
        format,
        level: a.level,
        threads: 0,
    };
    let allow = match super::scan::allow_flags(&a.allow) {
        Ok(allow) => allow,
        Err(exit) => return exit,
    };
    let Ok(staged) = stage(&a.image, &a.output, "dd", a.force) else {
        return Exit::Usage;
    };
    match kiln_maas::write_dd_to(&a.image, &staged, &opts, &mut |_| {}) {
        Ok(r) => render::err_line(&format!(
            "wrote {}: {} bytes of disk, {} bytes written",
            a.output.display(),
            r.disk_bytes,
            r.out_bytes
        )),
        Err(e) => {
            render::error_chain(&e, None);
            return Exit::Failed;
        }
    }
    gate_and_publish(staged, a.no_scan, allow)
}

/// Where an artifact is written until it is accepted: beside `output`
/// (which must not be the image or a file of its backing chain, nor
/// anything but a regular file, replaced only with `--force`), or in the
/// temporary directory for `-o -`.
fn stage(image: &Path, output: &Path, prefix: &str, force: bool) -> Result<Staged, ()> {
    let staged = if output == Path::new("-") {
        Staged::for_stream(prefix)
    } else {
        Staged::create(output, prefix, &backing_chain(image), force)
    };
    staged.map_err(|e| {
        let hint = e.hint();
        render::error_chain(&e, hint);
    })
}

/// The leak scan of the finished artifact, before it is published: a
/// leaking artifact never appears at the output path.
fn gate_and_publish(staged: Staged, skip: bool, allow: Vec<(String, String)>) -> Exit {
    if !skip {
        let cfg = ScanConfig {
            allow,
            ..ScanConfig::default()
        };
        match scan_path(staged.path(), &cfg) {
            Ok(r) if r.is_clean() => {}
            Ok(r) => {
                for f in &r.findings {
                    render::err_line(&format!("leak: {} {} {}", f.rule, f.path, f.excerpt));
                }
                render::error(
                    &format!(
                        "{} leaks {} finding(s); it was not written",
                        staged.dest().display(),
                        r.findings.len()
                    ),
                    Some("fix the image, or accept a finding with --allow RULE:GLOB"),
                );
                return Exit::Failed;
            }
            Err(e) => {
                render::error_chain(&e, Some("the artifact was not written"));
                return Exit::Failed;
            }
        }
    }
    let published = if staged.dest() == Path::new("-") {
        staged.publish_to(&mut std::io::stdout().lock()).map(|_| ())
    } else {
        staged.publish().map(|_| ())
    };
    match published {
        Ok(()) => Exit::Ok,
        Err(e) => {
            render::error_chain(&e, None);
            Exit::Failed
        }
    }
}

fn upload(a: &UploadArgs, cx: &Context) -> Exit {
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
    let runtime = match cx.runtime() {
        Ok(r) => r,
        Err(e) => return e,
    };
    match runtime.block_on(kiln_maas::upload::upload(&req, &mut |_| {})) {
        Ok(r) => {
            render::out(&serde_json::to_string(&r).unwrap_or_default());
            Exit::Ok
        }
        Err(e) => {
            render::error_chain(&e, None);
            Exit::Failed
        }
    }
}
