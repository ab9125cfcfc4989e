//! Exit statuses, one enum for every command.

/// How a kiln run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything went fine.
    Ok = 0,
    /// The build failed, or `validate` found errors (as Packer: 1).
    Failed = 1,
    /// Bad command line, or a template that does not load.
    Usage = 2,
    /// Preflight refused to start.
    Refused = 3,
    /// Interrupted (Ctrl-C).
    Interrupted = 130,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}
