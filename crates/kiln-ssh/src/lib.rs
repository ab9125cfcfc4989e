//! kiln-ssh: the SSH communicator as a library.
//!
//! - [`KeyPair`]: throwaway keys per build (`{{ .SSHPublicKey }}`) and a
//!   user's `ssh_private_key_file`.
//! - [`wait_ready`]: wait for a guest's sshd with a live diagnosis
//!   ([`WaitEvent`]) and a bounded number of authentication refusals.
//! - [`Session`]: commands with streamed output and exit status, SCP upload
//!   and download with Packer's `file` provisioner rules, reconnection.
//! - [`AuthorizedKeysCleanup`]: the remote command behind
//!   `ssh_clear_authorized_keys`.
//!
//! It knows nothing of QEMU or HCL.

mod authorized_keys;
mod keys;
mod scp;
mod session;
pub mod shell;
mod wait;

pub use authorized_keys::AuthorizedKeysCleanup;
pub use keys::{KeyError, KeyPair, KeyPairType, KeySpec, PrivateKeyFile, plan_key_spec};
pub use scp::{DownloadPlan, TransferError, TransferStats, UploadPlan, plan_download, plan_upload};
pub use session::{Captured, ExecError, ExitStatus, Output, Session, Stream};
pub use wait::{Auth, Target, WaitConfig, WaitError, WaitEvent, wait_ready};

/// A debug `ssh` command line for a session's target and a key written
/// with [`KeyPair::write_private_key`] (for `-debug`/breakpoints).
pub fn debug_ssh_command(target: &Target, key_file: &std::path::Path) -> String {
    format!(
        "ssh -i {} -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null {}@{}",
        shell::quote(&key_file.to_string_lossy()),
        target.port,
        shell::quote(&target.user),
        target.host
    )
}
