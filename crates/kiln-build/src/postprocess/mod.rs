//! Post-processors: typed configs and what they do to an artifact.

pub mod checksum;
pub mod compress;
pub mod maas;
pub mod manifest;

use std::path::Path;

use kiln_template::body::Body;
use kiln_template::decode::DecodeError;

use crate::provision::shell_local::{self, ShellLocalConfig};

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum PostProcessorConfig {
    Manifest(manifest::ManifestConfig),
    Checksum(checksum::ChecksumConfig),
    Compress(compress::CompressConfig),
    ShellLocal(ShellLocalConfig),
    MaasTgz(maas::TgzConfig),
    MaasDd(maas::DdConfig),
    MaasUpload(maas::UploadConfig),
}

pub const TYPES: &[&str] = &[
    "manifest",
    "checksum",
    "compress",
    "shell-local",
    "maas-tgz",
    "maas-dd",
    "maas-upload",
];

impl PostProcessorConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            PostProcessorConfig::Manifest(_) => "manifest",
            PostProcessorConfig::Checksum(_) => "checksum",
            PostProcessorConfig::Compress(_) => "compress",
            PostProcessorConfig::ShellLocal(_) => "shell-local",
            PostProcessorConfig::MaasTgz(_) => "maas-tgz",
            PostProcessorConfig::MaasDd(_) => "maas-dd",
            PostProcessorConfig::MaasUpload(_) => "maas-upload",
        }
    }

    /// Packer's (keep input by default, the default cannot be overridden).
    pub fn keep_defaults(&self) -> (bool, bool) {
        match self {
            PostProcessorConfig::Manifest(_) | PostProcessorConfig::Checksum(_) => (true, true),
            PostProcessorConfig::ShellLocal(_) => (true, false),
            // The disk stays: the MAAS artifact is derived from it.
            PostProcessorConfig::MaasTgz(_)
            | PostProcessorConfig::MaasDd(_)
            | PostProcessorConfig::MaasUpload(_) => (true, false),
            PostProcessorConfig::Compress(_) => (false, false),
        }
    }
}

pub fn decode(
    kind: &str,
    body: &Body,
    what: &str,
    cwd: &Path,
) -> Result<PostProcessorConfig, Vec<DecodeError>> {
    match kind {
        "manifest" => manifest::decode(body, what).map(PostProcessorConfig::Manifest),
        "checksum" => checksum::decode(body, what).map(PostProcessorConfig::Checksum),
        "compress" => compress::decode(body, what).map(PostProcessorConfig::Compress),
        "shell-local" => {
            shell_local::decode(body, what, cwd, true).map(PostProcessorConfig::ShellLocal)
        }
        "maas-tgz" => maas::decode_tgz(body, what, cwd).map(PostProcessorConfig::MaasTgz),
        "maas-dd" => maas::decode_dd(body, what).map(PostProcessorConfig::MaasDd),
        "maas-upload" => maas::decode_upload(body, what).map(PostProcessorConfig::MaasUpload),
        other => Err(vec![DecodeError {
            span: body.span.clone(),
            message: format!("unknown post-processor type `{other}`"),
            help: Some(match kiln_template::decode::did_you_mean(other, TYPES) {
                Some(s) => format!("did you mean `{s}`? kiln runs: {}", TYPES.join(", ")),
                None => format!("kiln runs: {}", TYPES.join(", ")),
            }),
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_template::span::Span;

    #[test]
    fn every_listed_type_decodes() {
        // An empty body may be invalid for a type, but never unknown.
        let body = Body::empty(Span::synthetic("t.pkr.hcl"));
        for kind in TYPES {
            if let Err(errors) = decode(kind, &body, "pp", std::path::Path::new(".")) {
                assert!(
                    errors
                        .iter()
                        .all(|e| !e.message.contains("unknown post-processor")),
                    "{kind}: {errors:?}"
                );
            }
        }
    }
}
