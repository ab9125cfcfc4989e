//! `ssh_clear_authorized_keys`: the remote shell text that removes the
//! build's public key from `authorized_keys`.
//!
//! Packer deletes lines ending in the key's comment with `sed -i.bak`; kiln
//! removes exactly the lines that carry the key's base64 blob as a field (so
//! options before the key and another comment after it do not matter, and
//! another key with the same comment is kept), rewrites the file in place
//! (`cat tmp > file`, keeping its owner, mode and inode) and leaves no backup.

use crate::shell::quote;

/// What to clean and where. [`AuthorizedKeysCleanup::command`] is pure.
#[derive(Debug, Clone)]
pub struct AuthorizedKeysCleanup {
    blob: String,
    user_file: String,
    root_file: Option<String>,
}

impl AuthorizedKeysCleanup {
    /// Cleanup of the key whose public line (or bare base64 blob) is
    /// `public_key`, in `$HOME/.ssh/authorized_keys` of the login user and in
    /// `/root/.ssh/authorized_keys` (directly when the user is root, else
    /// through `sudo -n` when that works without a password).
    pub fn new(public_key: &str) -> Self {
        let blob = key_blob(public_key).to_owned();
        AuthorizedKeysCleanup {
            blob,
            user_file: "$HOME/.ssh/authorized_keys".to_owned(),
            root_file: Some("/root/.ssh/authorized_keys".to_owned()),
        }
    }

    /// Overrides the user's file. The text is put in double quotes, so
    /// `$HOME` expands.
    pub fn user_file(mut self, path: &str) -> Self {
        self.user_file = path.to_owned();
        self
    }

    /// Overrides root's file (`None`: leave root's file alone).
    pub fn root_file(mut self, path: Option<&str>) -> Self {
        self.root_file = path.map(str::to_owned);
        self
    }

    /// The shell text (POSIX sh; needs `awk` and `cat`). Exits 0 when the
    /// key was removed or was not there, non-zero when the user's file could
    /// not be rewritten. Missing files are not an error.
    pub fn command(&self) -> String {
        let func = clear_function(&self.blob);
        let mut script = String::new();
        script.push_str(&func);
        script.push_str(&format!(
            "kiln_clear_key \"{}\" || kiln_rc=1\n",
            escape_dq(&self.user_file)
        ));
        if let Some(root) = &self.root_file {
            let root_q = quote(root);
            let sudo_script = format!("{func}kiln_clear_key {root_q}\n");
            script.push_str(&format!(
                "if [ \"$(id -u)\" = 0 ]; then\n  kiln_clear_key {root_q} || kiln_rc=1\n\
                 elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then\n  \
                 sudo -n sh -c {} || kiln_rc=1\nfi\n",
                quote(&sudo_script)
            ));
        }
        format!("kiln_rc=0\n{script}exit $kiln_rc\n")
    }
}

fn clear_function(blob: &str) -> String {
    // The blob is base64 ([A-Za-z0-9+/=]); quote it anyway.
    format!(
        "kiln_clear_key() {{\n  \
         [ -f \"$1\" ] || return 0\n  \
         kiln_t=\"$1.kiln-tmp.$$\"\n  \
         (umask 077 && awk -v k={} '{{for (i = 1; i <= NF; i++) if ($i == k) next; print}}' \"$1\" > \"$kiln_t\") \
         && cat \"$kiln_t\" > \"$1\"\n  \
         kiln_s=$?\n  \
         rm -f \"$kiln_t\"\n  \
         return $kiln_s\n}}\n",
        quote(blob)
    )
}

/// The base64 field of a public key line (`type blob [comment]`, possibly
/// after options), or the text itself when it is a bare blob.
fn key_blob(public_key: &str) -> &str {
    let fields: Vec<&str> = public_key.split_whitespace().collect();
    fields
        .iter()
        .position(|f| f.starts_with("AAAA"))
        .and_then(|i| fields.get(i).copied())
        .or_else(|| fields.get(1).copied())
        .unwrap_or(public_key.trim())
}

fn escape_dq(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const OURS: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnKilnKilnKilnKilnKilnKilnKilnKilnKilnKiln0 kiln-build";
    const OTHER_SAME_COMMENT: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherOtherOtherOtherOtherOtherOtherOther0 kiln-build";
    const USER_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQUser user@laptop";

    fn run(script: &str, home: &std::path::Path) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("HOME", home)
            .output()
            .unwrap()
    }

    #[test]
    fn key_blob_finds_base64_field() {
        assert_eq!(
            key_blob(OURS),
            "AAAAC3NzaC1lZDI1NTE5AAAAIKilnKilnKilnKilnKilnKilnKilnKilnKilnKilnKiln0"
        );
        assert_eq!(
            key_blob("no-pty,command=\"x\" ssh-ed25519 AAAAC3Nz c"),
            "AAAAC3Nz"
        );
        assert_eq!(key_blob("AAAAC3Nz"), "AAAAC3Nz");
    }

    #[test]
    fn cleanup_removes_only_the_build_key_line() {
        let home = tempfile::tempdir().unwrap();
        let ssh = home.path().join(".ssh");
        std::fs::create_dir(&ssh).unwrap();
        let file = ssh.join("authorized_keys");
        let content = format!(
            "# managed\n{USER_KEY}\n{OURS}\nno-pty {OURS_BLOB_LINE}\n{OTHER_SAME_COMMENT}\n{USER_KEY}-2\n",
            OURS_BLOB_LINE = OURS.replace("kiln-build", "other-comment")
        );
        std::fs::write(&file, content).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let root = home.path().join("root_keys");
        std::fs::write(&root, format!("{OURS}\n{USER_KEY}\n")).unwrap();

        let cmd = AuthorizedKeysCleanup::new(OURS)
            .root_file(Some(root.to_str().unwrap()))
            .command();
        let out = run(&cmd, home.path());
        assert!(out.status.success(), "{out:?}\n{cmd}");
        let after = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            after,
            format!("# managed\n{USER_KEY}\n{OTHER_SAME_COMMENT}\n{USER_KEY}-2\n")
        );
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode kept");
        // Running as root in CI: root's file is cleaned too; otherwise sudo
        // is tried and may not work, which is not an error.
        if running_as_root() {
            assert_eq!(
                std::fs::read_to_string(&root).unwrap(),
                format!("{USER_KEY}\n")
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(&ssh).unwrap().collect();
        assert_eq!(
            leftovers.len(),
            1,
            "no temp or backup file left: {leftovers:?}"
        );
    }

    fn running_as_root() -> bool {
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false)
    }

    #[test]
    fn cleanup_is_quiet_when_files_are_missing() {
        let home = tempfile::tempdir().unwrap();
        let cmd = AuthorizedKeysCleanup::new(OURS)
            .root_file(Some(home.path().join("nope").to_str().unwrap()))
            .command();
        let out = run(&cmd, home.path());
        assert!(out.status.success(), "{out:?}");
        assert!(out.stderr.is_empty(), "{out:?}");
    }

    #[test]
    fn default_command_names_home_and_root_files() {
        let cmd = AuthorizedKeysCleanup::new(OURS).command();
        assert!(cmd.contains("\"$HOME/.ssh/authorized_keys\""), "{cmd}");
        assert!(cmd.contains("/root/.ssh/authorized_keys"), "{cmd}");
        assert!(cmd.contains("sudo -n"), "{cmd}");
    }
}
