//! A build as the runner sees it: every block decoded into a typed config,
//! the template's common provisioner fields applied, nothing left to
//! evaluate but run-time placeholders.

use std::path::PathBuf;
use std::time::Duration;

use kiln_qemu::QemuConfig;

use crate::postprocess::PostProcessorConfig;
use crate::provision::ProvisionerConfig;

/// Packer's `null` source: no machine, optionally an SSH host to provision.
#[derive(Clone, Debug, PartialEq)]
pub struct NullConfig {
    pub name: String,
    /// `None`: `communicator = "none"`.
    pub ssh: Option<NullSsh>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NullSsh {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Option<String>,
    pub private_key_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    Qemu(Box<QemuConfig>),
    Null(NullConfig),
}

impl SourceSpec {
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceSpec::Qemu(_) => "qemu",
            SourceSpec::Null(_) => "null",
        }
    }
}

/// A provisioner with the fields every provisioner has.
#[derive(Clone, Debug, PartialEq)]
pub struct ProvisionerSpec {
    pub config: ProvisionerConfig,
    /// The block's `name`, shown instead of its type when set.
    pub name: Option<String>,
    pub pause_before: Duration,
    pub max_retries: u32,
    pub timeout: Option<Duration>,
    /// `continue_on_error`: a failure (after the retries) is a warning
    /// and the build goes on.
    pub continue_on_error: bool,
}

impl ProvisionerSpec {
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{} ({})", self.config.type_name(), n),
            None => self.config.type_name().to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PostProcessorSpec {
    pub config: PostProcessorConfig,
    pub name: Option<String>,
    pub keep_input_artifact: Option<bool>,
}

impl PostProcessorSpec {
    /// Its type, and its `name` when set: `maas-tgz (rootfs)`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{} ({n})", self.config.type_name()),
            None => self.config.type_name().to_string(),
        }
    }
}

/// One build: `<build.name>.<type>.<source name>`.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildSpec {
    pub name: String,
    pub source: SourceSpec,
    pub provisioners: Vec<ProvisionerSpec>,
    pub error_cleanup: Option<ProvisionerSpec>,
    /// Each inner list is one chain, fed the builder's artifact.
    pub post_processors: Vec<Vec<PostProcessorSpec>>,
}

impl BuildSpec {
    /// The source's name: Packer's `PACKER_BUILD_NAME`.
    pub fn source_name(&self) -> &str {
        match &self.source {
            SourceSpec::Qemu(q) => &q.name,
            SourceSpec::Null(n) => &n.name,
        }
    }

    /// Whether a post-processor writes the whole disk (`maas-dd`): the
    /// guest is then scrubbed before shutdown (a tarball is scrubbed while
    /// streaming).
    pub fn needs_guest_scrub(&self) -> bool {
        self.post_processors
            .iter()
            .flatten()
            .any(|p| matches!(p.config, PostProcessorConfig::MaasDd(_)))
    }
}

/// A stable number per build name (remote script names).
pub fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Packer's `-on-error`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    #[default]
    Cleanup,
    Abort,
    Ask,
    RunCleanupProvisioner,
}

impl OnError {
    pub fn parse(text: &str) -> Option<OnError> {
        match text {
            "cleanup" => Some(OnError::Cleanup),
            "abort" => Some(OnError::Abort),
            "ask" => Some(OnError::Ask),
            "run-cleanup-provisioner" => Some(OnError::RunCleanupProvisioner),
            _ => None,
        }
    }
}
