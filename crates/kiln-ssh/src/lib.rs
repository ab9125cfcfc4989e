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
pub use scp::{
    DownloadPlan, Progress, TransferError, TransferStats, UploadPlan, plan_download, plan_upload,
};
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

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}

    #[test]
    fn session_and_its_futures_cross_threads() {
        // Compile-time checks: a build step holds a Session across awaits
        // on a multi-threaded runtime.
        #[allow(unreachable_code, clippy::diverging_sub_expression)]
        fn check(s: &Session) {
            send_sync(s);
            send(s.exec("true", |_| {}));
            send(s.upload(std::path::Path::new("x"), "y"));
            send(s.download("y", std::path::Path::new("x")));
            send(s.upload_bytes(b"", "y", 0o644));
            send(wait_ready(
                Target::new("h", 22, "u"),
                Auth::new(),
                WaitConfig::default(),
                |_| {},
            ));
        }
        let _ = check;
    }

    #[test]
    fn debug_ssh_command_quotes_paths() {
        let cmd = debug_ssh_command(
            &Target::new("127.0.0.1", 2222, "packer"),
            std::path::Path::new("/tmp/kiln key/id_ed25519"),
        );
        assert_eq!(
            cmd,
            "ssh -i '/tmp/kiln key/id_ed25519' -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null packer@127.0.0.1"
        );
    }
}
