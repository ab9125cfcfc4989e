//! `download`: the ISO or base image, fetched into the cache or verified
//! in place, and recorded as an input of the build.

use std::path::{Path, PathBuf};

use kiln_qemu::QemuConfig;
use kiln_qemu::config::IsoChecksum;

use crate::checksum::{Algorithm, Checksum, ChecksumSpec};
use crate::download::{DownloadProgress, DownloadRequest, Downloaded};
use crate::pipeline::{Pipeline, StepError};
use crate::run::RunOptions;
use crate::step::StepId;

pub(super) struct Download<'a> {
    pub cfg: &'a QemuConfig,
    pub opts: &'a RunOptions,
}

/// The source image (none without `iso_urls`).
pub(super) struct SourceImage {
    pub got: Option<Downloaded>,
    /// Its absolute path.
    pub absolute: Option<String>,
}

impl SourceImage {
    /// The verified sha256/sha512 of the source image, in the form cache
    /// keys take (weaker checksums are not trusted to identify a base image).
    pub fn verified_digest(&self) -> Option<String> {
        let c = self.got.as_ref()?.checksum.as_ref()?;
        matches!(c.algorithm, Algorithm::Sha256 | Algorithm::Sha512).then(|| c.to_string())
    }
}

impl Download<'_> {
    pub async fn run(self, p: &mut Pipeline) -> Result<SourceImage, StepError> {
        let cfg = self.cfg;
        if cfg.iso_urls.is_empty() {
            return Ok(SourceImage {
                got: None,
                absolute: None,
            });
        }
        p.ev.say("Retrieving ISO");
        let req = DownloadRequest {
            urls: cfg.iso_urls.clone(),
            checksum: checksum_spec(&cfg.iso_checksum),
            target_path: cfg.iso_target_path.as_ref().map(PathBuf::from),
            extension: cfg.iso_target_extension.clone(),
            cache_dir: self.opts.cache_dir.clone(),
            cwd: self.opts.cwd.clone(),
        };
        let ev = p.ev.clone();
        let progress = move |pr: DownloadProgress| match pr {
            DownloadProgress::Transfer { done, total } => ev.progress("download", done, total),
            DownloadProgress::Verify { done, total } => ev.progress("verify", done, Some(total)),
        };
        let got = p
            .step(StepId::Download, crate::download::fetch(&req, &progress))
            .await?;
        if got.checksum.is_none() {
            p.ev.warn("a checksum of `none` was specified: the source image is not verified");
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
        let absolute = Some(absolute(&got.path).display().to_string());
        Ok(SourceImage {
            got: Some(got),
            absolute,
        })
    }
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

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}
