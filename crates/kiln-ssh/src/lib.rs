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
//!
//! ```no_run
//! use std::time::Duration;
//! use kiln_ssh::{Auth, KeyPair, KeyPairType, Target, WaitConfig, wait_ready};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let key = KeyPair::generate(KeyPairType::Ed25519, None, "kiln-mybuild")?;
//! let seed_line = key.public_key_line()?; // {{ .SSHPublicKey }}
//! # let _ = seed_line;
//! let config = WaitConfig { timeout: Duration::from_secs(600), ..WaitConfig::default() };
//! let session = wait_ready(
//!     Target::new("127.0.0.1", 3022, "ubuntu"),
//!     Auth::new().key(key),
//!     config,
//!     |event| eprintln!("ssh: {event}"),
//! )
//! .await?;
//! let status = session
//!     .exec_lines("FOO=bar sh -c 'echo $FOO'", |stream, line| eprintln!("{stream:?}: {line}"))
//!     .await?;
//! assert!(status.success());
//! session.upload_bytes(b"#!/bin/sh\necho hi\n", "/tmp/script.sh", 0o755).await?;
//! # Ok(())
//! # }
//! ```

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
