//! Provisioners: typed configs decoded from evaluated blocks, pure plans,
//! and the code that runs them.

pub mod breakpoint;
pub mod file;
pub mod shell;
pub mod shell_local;

use std::path::Path;

use kiln_template::body::Body;
use kiln_template::decode::DecodeError;

/// A provisioner of a supported type.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum ProvisionerConfig {
    Shell(shell::ShellConfig),
    File(file::FileConfig),
    ShellLocal(shell_local::ShellLocalConfig),
    Breakpoint(breakpoint::BreakpointConfig),
}

/// Provisioner types kiln runs.
pub const TYPES: &[&str] = &["shell", "file", "shell-local", "breakpoint"];

impl ProvisionerConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            ProvisionerConfig::Shell(_) => "shell",
            ProvisionerConfig::File(_) => "file",
            ProvisionerConfig::ShellLocal(_) => "shell-local",
            ProvisionerConfig::Breakpoint(_) => "breakpoint",
        }
    }

    /// Whether the step touches only the guest's disk (and so can be
    /// cached): `shell-local`, `file` downloads and breakpoints act on the
    /// host or the user.
    pub fn is_guest_only(&self) -> bool {
        match self {
            ProvisionerConfig::Shell(_) => true,
            ProvisionerConfig::File(f) => f.direction == file::Direction::Upload,
            ProvisionerConfig::ShellLocal(_) | ProvisionerConfig::Breakpoint(_) => false,
        }
    }
}

/// Decode a provisioner block of type `kind`. `seed` keeps generated remote
/// names stable across runs of the same build step.
pub fn decode(
    kind: &str,
    body: &Body,
    what: &str,
    cwd: &Path,
    seed: u64,
) -> Result<ProvisionerConfig, Vec<DecodeError>> {
    match kind {
        "shell" => shell::decode(body, what, cwd, seed).map(ProvisionerConfig::Shell),
        "file" => file::decode(body, what, cwd).map(ProvisionerConfig::File),
        "shell-local" => {
            shell_local::decode(body, what, cwd, false).map(ProvisionerConfig::ShellLocal)
        }
        "breakpoint" => breakpoint::decode(body, what).map(ProvisionerConfig::Breakpoint),
        other => Err(vec![DecodeError {
            span: body.span.clone(),
            message: format!("unknown provisioner type `{other}`"),
            help: Some(match kiln_template::decode::did_you_mean(other, TYPES) {
                Some(s) => format!("did you mean `{s}`? kiln runs: {}", TYPES.join(", ")),
                None => format!("kiln runs: {}", TYPES.join(", ")),
            }),
        }]),
    }
}
