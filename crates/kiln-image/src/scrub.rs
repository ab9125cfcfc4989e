//! Scrub: a pure filter over the entries of a rootfs stream that removes
//! what must not ship in an image (machine identity, host keys, cloud-init
//! state, histories, temporary files, apt lists, the build key, generated
//! network config, logs). The source disk is never modified.

use globset::GlobMatcher;

use crate::fs::FileType;

/// What to do with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Write it unchanged.
    Keep,
    /// Leave it out (a directory: with everything below).
    Drop,
    /// Keep the entry with empty content.
    Empty,
    /// Keep the entry with the build public key lines removed (`authorized_keys`).
    RemoveKeyLines,
}

/// What a rule does to a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Drop the match (and below).
    Drop,
    /// Truncate regular files to zero bytes; other kinds are kept.
    Empty,
    /// Remove lines holding a build public key.
    RemoveKeyLines,
    /// Drop regular files and links, keep directories (`/tmp/**` style contents).
    DropFiles,
}

/// One scrub rule: a glob over the path relative to the root
/// (`etc/machine-id`, `home/*/.bash_history`; `**` crosses directories).
#[derive(Debug, Clone)]
pub struct ScrubRule {
    /// Short stable name (`machine-id`), used in reports and to disable a rule.
    pub name: String,
    /// The glob.
    pub pattern: String,
    /// The action on a match.
    pub action: RuleAction,
}

impl ScrubRule {
    /// A rule.
    pub fn new(name: &str, pattern: &str, action: RuleAction) -> Self {
        Self {
            name: name.into(),
            pattern: pattern.into(),
            action,
        }
    }
}

/// The default rules, in order (the first match wins): the trace table.
pub fn default_rules() -> Vec<ScrubRule> {
    crate::traces::all()
        .into_iter()
        .map(|(name, pattern, action)| ScrubRule::new(name, &pattern, action))
        .collect()
}

/// The default rules as a root shell script, for a disk that ships whole
/// (`maas-dd`): run in the guest as the last step before shutdown. The
/// build key is left to `ssh_clear_authorized_keys`.
pub fn guest_script() -> String {
    let mut script = String::from("set -u\n");
    for rule in default_rules() {
        if let Some(line) = shell_line(&rule) {
            script.push_str(&line);
            script.push('\n');
        }
    }
    script.push_str("sync\n");
    script
}

/// One rule as a shell command (its glob left to the shell where the
/// shell's glob means the same).
fn shell_line(rule: &ScrubRule) -> Option<String> {
    use RuleAction::*;
    let pattern = rule.pattern.as_str();
    let quiet = "2>/dev/null || true";
    if let Some(name) = pattern.strip_prefix("**/") {
        // Anywhere: users' homes are where histories live.
        return match rule.action {
            Drop | DropFiles => Some(format!("rm -f /root/{name} /home/*/{name}")),
            Empty | RemoveKeyLines => None,
        };
    }
    if let Some((dir, name)) = pattern.split_once("/**/") {
        let what = match rule.action {
            Drop | DropFiles => "-delete",
            Empty => "-exec truncate -s 0 {} +",
            RemoveKeyLines => return None,
        };
        return Some(format!("find /{dir} -type f -name '{name}' {what} {quiet}"));
    }
    if let Some(dir) = pattern.strip_suffix("/**") {
        return match rule.action {
            Drop | DropFiles => Some(format!("find /{dir} -mindepth 1 -type f -delete {quiet}")),
            Empty => Some(format!(
                "find /{dir} -type f -exec truncate -s 0 {{}} + {quiet}"
            )),
            RemoveKeyLines => None,
        };
    }
    match rule.action {
        Drop | DropFiles => Some(format!("rm -rf /{pattern}")),
        Empty => Some(format!(
            "if [ -e /{pattern} ]; then truncate -s 0 /{pattern}; fi"
        )),
        RemoveKeyLines => None,
    }
}

/// A compiled scrub policy.
#[derive(Debug, Clone)]
pub struct Scrub {
    rules: Vec<(ScrubRule, GlobMatcher)>,
    build_keys: Vec<Vec<u8>>,
}

/// An invalid rule.
#[derive(Debug, thiserror::Error)]
#[error("scrub rule `{name}` has an invalid pattern `{pattern}`: {reason}")]
pub struct ScrubError {
    /// Rule name.
    pub name: String,
    /// Its pattern.
    pub pattern: String,
    /// Why.
    pub reason: String,
}

/// The key material of an OpenSSH public key line (`ssh-ed25519 AAAA… comment`
/// → `AAAA…`), or the trimmed line if it has no such field.
pub fn key_blob(line: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(line);
    let fields: Vec<&str> = s.split_whitespace().collect();
    // Options may precede the key type: find the field after a key type.
    for (i, f) in fields.iter().enumerate() {
        if (f.starts_with("ssh-") || f.starts_with("ecdsa-") || f.starts_with("sk-"))
            && i + 1 < fields.len()
        {
            return fields[i + 1].as_bytes().to_vec();
        }
    }
    s.trim().as_bytes().to_vec()
}

impl Scrub {
    /// Compile `rules`; `build_keys` are public key lines to remove from
    /// `authorized_keys` files.
    pub fn new(rules: Vec<ScrubRule>, build_keys: &[String]) -> Result<Self, ScrubError> {
        let mut compiled = vec![];
        for r in rules {
            let g = globset::GlobBuilder::new(&r.pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| ScrubError {
                    name: r.name.clone(),
                    pattern: r.pattern.clone(),
                    reason: e.to_string(),
                })?;
            let m = g.compile_matcher();
            compiled.push((r, m));
        }
        Ok(Self {
            rules: compiled,
            build_keys: build_keys
                .iter()
                .map(|k| key_blob(k.as_bytes()))
                .filter(|k| !k.is_empty())
                .collect(),
        })
    }

    /// The default policy.
    pub fn with_defaults(build_keys: &[String]) -> Self {
        // The default patterns are known to compile.
        Self::new(default_rules(), build_keys).unwrap_or(Self {
            rules: vec![],
            build_keys: vec![],
        })
    }

    /// The default policy without the rules named in `disabled`.
    pub fn defaults_without(disabled: &[&str], build_keys: &[String]) -> Self {
        let rules = default_rules()
            .into_iter()
            .filter(|r| !disabled.contains(&r.name.as_str()))
            .collect();
        Self::new(rules, build_keys).unwrap_or(Self {
            rules: vec![],
            build_keys: vec![],
        })
    }

    /// Decide what to do with `path` (relative to the root, no leading `/`
    /// or `./`) of kind `ft`. Returns the action and the name of the rule
    /// that decided (none for [`Action::Keep`]).
    pub fn decide(&self, path: &str, ft: FileType) -> (Action, Option<&str>) {
        for (r, m) in &self.rules {
            if !m.is_match(path) {
                continue;
            }
            let action = match r.action {
                RuleAction::Drop => Action::Drop,
                RuleAction::Empty if ft == FileType::Regular => Action::Empty,
                RuleAction::Empty => Action::Keep,
                RuleAction::RemoveKeyLines
                    if ft == FileType::Regular && !self.build_keys.is_empty() =>
                {
                    Action::RemoveKeyLines
                }
                RuleAction::RemoveKeyLines => Action::Keep,
                RuleAction::DropFiles if ft == FileType::Directory => Action::Keep,
                RuleAction::DropFiles => Action::Drop,
            };
            return (
                action,
                if action == Action::Keep {
                    None
                } else {
                    Some(r.name.as_str())
                },
            );
        }
        (Action::Keep, None)
    }

    /// Apply [`Action::RemoveKeyLines`] to a file's content.
    pub fn remove_key_lines(&self, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(content.len());
        for line in content.split_inclusive(|&b| b == b'\n') {
            let blob = key_blob(line);
            if !blob.is_empty() && self.build_keys.contains(&blob) {
                continue;
            }
            out.extend_from_slice(line);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FileType::*;

    fn d(s: &Scrub, p: &str, ft: FileType) -> Action {
        s.decide(p, ft).0
    }

    #[test]
    fn default_rules_cover_the_documented_paths() {
        let s = Scrub::with_defaults(&["ssh-ed25519 AAAAkey build@kiln".into()]);
        assert_eq!(d(&s, "etc/machine-id", Regular), Action::Empty);
        assert_eq!(d(&s, "var/lib/dbus/machine-id", Symlink), Action::Keep);
        assert_eq!(d(&s, "etc/ssh/ssh_host_ed25519_key", Regular), Action::Drop);
        assert_eq!(
            d(&s, "etc/ssh/ssh_host_ed25519_key.pub", Regular),
            Action::Drop
        );
        assert_eq!(d(&s, "etc/ssh/sshd_config", Regular), Action::Keep);
        assert_eq!(d(&s, "var/lib/cloud/instances", Directory), Action::Drop);
        assert_eq!(d(&s, "var/lib/cloud/instance", Symlink), Action::Drop);
        assert_eq!(d(&s, "var/lib/cloud/scripts", Directory), Action::Keep);
        assert_eq!(d(&s, "var/log/cloud-init.log", Regular), Action::Drop);
        assert_eq!(d(&s, "root/.bash_history", Regular), Action::Drop);
        assert_eq!(d(&s, "home/ubuntu/.bash_history", Regular), Action::Drop);
        assert_eq!(d(&s, "tmp", Directory), Action::Keep);
        assert_eq!(d(&s, "tmp/x", Regular), Action::Drop);
        assert_eq!(d(&s, "tmp/a/b", Directory), Action::Keep);
        assert_eq!(d(&s, "var/tmp/y", Regular), Action::Drop);
        assert_eq!(
            d(&s, "var/lib/apt/lists/deb.debian.org_Release", Regular),
            Action::Drop
        );
        assert_eq!(d(&s, "var/lib/apt/lists", Directory), Action::Keep);
        assert_eq!(d(&s, "var/cache/apt/pkgcache.bin", Regular), Action::Drop);
        assert_eq!(
            d(&s, "var/cache/apt/archives/vim_1.deb", Regular),
            Action::Drop
        );
        assert_eq!(
            d(&s, "root/.ssh/authorized_keys", Regular),
            Action::RemoveKeyLines
        );
        assert_eq!(
            d(&s, "etc/netplan/50-cloud-init.yaml", Regular),
            Action::Drop
        );
        assert_eq!(d(&s, "var/log/syslog", Regular), Action::Empty);
        assert_eq!(d(&s, "var/log/syslog.1", Regular), Action::Drop);
        assert_eq!(d(&s, "var/log/apt", Directory), Action::Keep);
        assert_eq!(
            d(&s, "var/log/journal/abc/system.journal", Regular),
            Action::Drop
        );
        assert_eq!(d(&s, "usr/bin/ls", Regular), Action::Keep);
    }

    #[test]
    fn build_key_lines_are_removed_and_others_kept() {
        let s = Scrub::with_defaults(&["ssh-ed25519 AAAAbuild kiln@build".into()]);
        let content = b"ssh-rsa AAAAuser u@h\nfrom=\"10.0.0.1\" ssh-ed25519 AAAAbuild other-comment\nssh-ed25519 AAAAbuild\n";
        assert_eq!(s.remove_key_lines(content), b"ssh-rsa AAAAuser u@h\n");
    }

    #[test]
    fn the_guest_script_has_a_command_for_every_rule_but_the_build_key() {
        for rule in default_rules() {
            let expected = rule.action != RuleAction::RemoveKeyLines;
            assert_eq!(shell_line(&rule).is_some(), expected, "{}", rule.pattern);
        }
        let script = guest_script();
        for line in [
            "if [ -e /var/lib/dbus/machine-id ]; then truncate -s 0 /var/lib/dbus/machine-id; fi",
            "rm -rf /etc/ssh/ssh_host_*",
            "rm -f /root/.viminfo /home/*/.viminfo",
            "find /tmp -mindepth 1 -type f -delete 2>/dev/null || true",
            "find /var/cache/apt/archives -type f -name '*.deb' -delete 2>/dev/null || true",
            "find /var/log -type f -exec truncate -s 0 {} + 2>/dev/null || true",
        ] {
            assert!(script.lines().any(|l| l == line), "{line}\n{script}");
        }
        assert!(script.ends_with("sync\n"));
        let parsed = std::process::Command::new("sh")
            .args(["-n", "-c", &script])
            .status()
            .unwrap();
        assert!(parsed.success(), "sh -n rejects the script:\n{script}");
    }

    #[test]
    fn disabled_rules_do_not_apply() {
        let s = Scrub::defaults_without(&["logs"], &[]);
        assert_eq!(d(&s, "var/log/syslog", Regular), Action::Keep);
        let s = Scrub::with_defaults(&[]);
        assert_eq!(d(&s, "root/.ssh/authorized_keys", Regular), Action::Keep);
    }
}
