//! What a booted, provisioned system leaves behind that must not ship in
//! an image: one table, from which the scrub derives its rules (and the
//! in-guest scrub script of disk outputs), and the leak scan the histories
//! it reports. Add a trace here, not in a consumer.

use crate::scrub::RuleAction::{self, *};

/// One trace: a glob relative to the root (`**` crosses directories) and
/// what the scrub does to a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trace {
    /// The scrub rule name (`scrub_skip` names it).
    pub rule: &'static str,
    pub pattern: &'static str,
    pub action: RuleAction,
}

const fn trace(rule: &'static str, pattern: &'static str, action: RuleAction) -> Trace {
    Trace {
        rule,
        pattern,
        action,
    }
}

/// Shell and REPL histories, by file name, in any directory: scrubbed, and
/// reported by the scan's `shell-history` rule when non-empty.
pub const SHELL_HISTORIES: &[&str] = &[
    ".bash_history",
    ".zsh_history",
    ".sh_history",
    ".ash_history",
    ".python_history",
    ".mysql_history",
    ".psql_history",
    ".sqlite_history",
    ".lesshst",
    ".viminfo",
    ".wget-hsts",
    ".node_repl_history",
];

/// The scrub rule of [`SHELL_HISTORIES`].
pub const SHELL_HISTORY_RULE: &str = "shell-history";

/// Traces before the histories, in the scrub's order (the first match wins).
pub const BEFORE_HISTORIES: &[Trace] = &[
    trace("machine-id", "etc/machine-id", Empty),
    trace("machine-id", "var/lib/dbus/machine-id", Empty),
    trace("ssh-host-keys", "etc/ssh/ssh_host_*", Drop),
    trace("cloud-init-state", "var/lib/cloud/instances", Drop),
    trace("cloud-init-state", "var/lib/cloud/instance", Drop),
    trace("cloud-init-state", "var/lib/cloud/data", Drop),
    trace("cloud-init-state", "var/lib/cloud/sem", Drop),
    trace("cloud-init-state", "var/lib/cloud/seed", Drop),
    trace("cloud-init-logs", "var/log/cloud-init*", Drop),
];

/// Traces after the histories.
pub const AFTER_HISTORIES: &[Trace] = &[
    trace("tmp", "tmp/**", DropFiles),
    trace("tmp", "var/tmp/**", DropFiles),
    trace("apt-lists", "var/lib/apt/lists/**", DropFiles),
    trace("apt-cache", "var/cache/apt/*.bin", Drop),
    trace("apt-cache", "var/cache/apt/archives/**/*.deb", Drop),
    trace("build-key", "**/.ssh/authorized_keys", RemoveKeyLines),
    trace("build-key", "**/.ssh/authorized_keys2", RemoveKeyLines),
    trace("cloud-init-network", "etc/netplan/50-cloud-init.yaml", Drop),
    trace(
        "cloud-init-network",
        "etc/network/interfaces.d/50-cloud-init",
        Drop,
    ),
    trace(
        "cloud-init-network",
        "etc/network/interfaces.d/50-cloud-init.cfg",
        Drop,
    ),
    trace("logs", "var/log/journal/**", DropFiles),
    trace("logs", "var/log/**/*.[0-9]", DropFiles),
    trace("logs", "var/log/**/*.[0-9].gz", DropFiles),
    trace("logs", "var/log/**/*.gz", DropFiles),
    trace("logs", "var/log/**/*.old", DropFiles),
    trace("logs", "var/log/**", Empty),
];

/// Every trace, in the scrub's order (patterns owned: histories are
/// `**/NAME`).
pub fn all() -> Vec<(&'static str, String, RuleAction)> {
    let own = |t: &Trace| (t.rule, t.pattern.to_string(), t.action);
    BEFORE_HISTORIES
        .iter()
        .map(own)
        .chain(
            SHELL_HISTORIES
                .iter()
                .map(|h| (SHELL_HISTORY_RULE, format!("**/{h}"), Drop)),
        )
        .chain(AFTER_HISTORIES.iter().map(own))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FileType;
    use crate::scrub::{Action, Scrub};

    /// One example of each path the scan reports by where it is (besides
    /// the histories, which it reads from [`SHELL_HISTORIES`] itself).
    const SCANNED_BY_PATH: &[(&str, FileType)] = &[
        ("etc/machine-id", FileType::Regular),
        ("var/lib/dbus/machine-id", FileType::Regular),
        ("etc/ssh/ssh_host_ed25519_key", FileType::Regular),
        ("var/lib/cloud/instances", FileType::Directory),
        ("var/lib/cloud/instance", FileType::Symlink),
    ];

    #[test]
    fn every_path_the_scan_reports_is_scrubbed() {
        let scrub = Scrub::with_defaults(&[]);
        let histories = SHELL_HISTORIES.iter().flat_map(|h| {
            [
                (format!("root/{h}"), FileType::Regular),
                (format!("home/admin/{h}"), FileType::Regular),
            ]
        });
        let scanned = SCANNED_BY_PATH
            .iter()
            .map(|(p, ft)| (p.to_string(), *ft))
            .chain(histories);
        for (path, ft) in scanned {
            let (action, _) = scrub.decide(&path, ft);
            assert_ne!(action, Action::Keep, "`{path}` is scanned but not scrubbed");
        }
    }

    #[test]
    fn every_history_the_scrub_removes_is_one_the_scan_reports() {
        for (rule, pattern, _) in all() {
            if rule == SHELL_HISTORY_RULE {
                let name = pattern.trim_start_matches("**/");
                assert!(SHELL_HISTORIES.contains(&name), "{pattern}");
            }
        }
    }
}
