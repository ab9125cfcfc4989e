//! What a QEMU binary says about itself: `--version`, `-machine help`,
//! `-accel help` (parsers are pure; running them is in `host`).

use serde::{Deserialize, Serialize};

/// The version of a QEMU program, from the first line of `--version`
/// (`QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)`,
/// `qemu-img version 7.2.22 (…)`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolVersion {
    /// `7.2.22`.
    pub version: String,
    /// The whole first line.
    pub line: String,
}

/// Parse `--version` output.
pub fn parse_version(text: &str) -> Option<ToolVersion> {
    let line = text.lines().find(|l| !l.trim().is_empty())?.trim();
    let after = line.split_once(" version ").map(|(_, v)| v)?;
    let version = after.split_whitespace().next()?.trim_end_matches(',');
    if !version.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some(ToolVersion {
        version: version.to_string(),
        line: line.to_string(),
    })
}

/// A machine type of `-machine help`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub name: String,
    pub description: String,
    /// `pc` is an alias of `pc-i440fx-7.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_of: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
}

/// The machine types a binary supports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineList {
    pub machines: Vec<Machine>,
}

/// Parse `-machine help`: a header line, then `NAME  DESCRIPTION` lines
/// whose description may end with `(alias of X)`, `(default)`,
/// `(deprecated)`.
pub fn parse_machine_help(text: &str) -> MachineList {
    let mut machines = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with("Supported machines") {
            continue;
        }
        let line = line.trim_end();
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let mut description = line[line.find(name).unwrap_or(0) + name.len()..]
            .trim()
            .to_string();
        let mut alias_of = None;
        let mut default = false;
        let mut deprecated = false;
        // Trailing parenthesised markers, in any order.
        while let Some(open) = description.rfind(" (") {
            if !description.ends_with(')') {
                break;
            }
            let marker = description[open + 2..description.len() - 1].to_string();
            if marker == "default" {
                default = true;
            } else if marker == "deprecated" {
                deprecated = true;
            } else if let Some(target) = marker.strip_prefix("alias of ") {
                alias_of = Some(target.to_string());
            } else {
                break;
            }
            description.truncate(open);
        }
        machines.push(Machine {
            name: name.to_string(),
            description,
            alias_of,
            default,
            deprecated,
        });
    }
    MachineList { machines }
}

impl MachineList {
    pub fn is_empty(&self) -> bool {
        self.machines.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Machine> {
        self.machines.iter().find(|m| m.name == name)
    }

    pub fn supports(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The machine `-machine` without a type gets.
    pub fn default_machine(&self) -> Option<&Machine> {
        self.machines.iter().find(|m| m.default)
    }

    /// Up to `limit` supported names close to `wanted`: the newest
    /// versions of the same family (`pc-q35-8.2` → `pc-q35-7.2`, …), then
    /// names within a small edit distance, then the short aliases (`pc`,
    /// `q35`) and the default.
    pub fn suggestions(&self, wanted: &str, limit: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let add = |name: &str, out: &mut Vec<String>| {
            if out.len() < limit && !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        };
        // Same family, newest first.
        if let Some((family, _)) = split_versioned(wanted) {
            let mut same: Vec<(&Machine, Vec<u64>)> = self
                .machines
                .iter()
                .filter(|m| !m.deprecated)
                .filter_map(|m| {
                    let (f, v) = split_versioned(&m.name)?;
                    (f == family).then(|| (m, version_key(v)))
                })
                .collect();
            same.sort_by(|a, b| b.1.cmp(&a.1));
            // The alias of the newest first, when there is one.
            if let Some((newest, _)) = same.first()
                && let Some(alias) = self
                    .machines
                    .iter()
                    .find(|m| m.alias_of.as_deref() == Some(newest.name.as_str()))
            {
                add(&alias.name, &mut out);
            }
            for (m, _) in same.iter().take(3) {
                add(&m.name, &mut out);
            }
        }
        // Edit distance.
        let wanted_lower = wanted.to_ascii_lowercase();
        let max = (wanted.len() / 3).max(2);
        let mut close: Vec<(usize, &Machine)> = self
            .machines
            .iter()
            .filter(|m| !m.deprecated)
            .map(|m| (levenshtein(&wanted_lower, &m.name.to_ascii_lowercase()), m))
            .filter(|(d, _)| *d <= max)
            .collect();
        close.sort_by_key(|(d, m)| (*d, m.name.len()));
        for (_, m) in close {
            add(&m.name, &mut out);
        }
        // Aliases (short, stable names) and the default.
        for m in self.machines.iter().filter(|m| m.alias_of.is_some()) {
            add(&m.name, &mut out);
        }
        if let Some(d) = self.default_machine() {
            add(&d.name, &mut out);
        }
        out
    }
}

/// `pc-q35-7.2` → (`pc-q35`, `7.2`); `virt-8.0` → (`virt`, `8.0`).
fn split_versioned(name: &str) -> Option<(&str, &str)> {
    let (family, version) = name.rsplit_once('-')?;
    let versioned = !version.is_empty()
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version.chars().all(|c| c.is_ascii_digit() || c == '.');
    versioned.then_some((family, version))
}

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// Levenshtein distance (names are short).
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let value = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            cur.push(value);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parse `-accel help` (`Accelerators supported in QEMU binary:` then one
/// name a line).
pub fn parse_accel_help(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains(' ') && !l.ends_with(':'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACHINES: &str = "Supported machines are:
microvm              microvm (i386)
pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)
pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)
pc-i440fx-7.1        Standard PC (i440FX + PIIX, 1996)
pc-i440fx-2.12       Standard PC (i440FX + PIIX, 1996)
pc-i440fx-1.4        Standard PC (i440FX + PIIX, 1996) (deprecated)
q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)
pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)
pc-q35-7.1           Standard PC (Q35 + ICH9, 2009)
pc-q35-7.0           Standard PC (Q35 + ICH9, 2009)
pc-q35-2.10          Standard PC (Q35 + ICH9, 2009)
isapc                ISA-only PC
none                 empty machine
x-remote             Experimental remote machine
";

    #[test]
    fn machine_help_is_parsed_with_aliases_default_and_deprecation() {
        let list = parse_machine_help(MACHINES);
        assert_eq!(list.machines.len(), 14);
        let pc = list.get("pc").unwrap();
        assert_eq!(pc.alias_of.as_deref(), Some("pc-i440fx-7.2"));
        assert_eq!(pc.description, "Standard PC (i440FX + PIIX, 1996)");
        assert_eq!(list.default_machine().unwrap().name, "pc-i440fx-7.2");
        assert!(list.get("pc-i440fx-1.4").unwrap().deprecated);
        assert_eq!(list.get("microvm").unwrap().description, "microvm (i386)");
        assert!(list.supports("q35") && !list.supports("ubuntu"));
    }

    #[test]
    fn suggestions_prefer_the_family_then_close_names_then_aliases() {
        let list = parse_machine_help(MACHINES);
        assert_eq!(
            list.suggestions("pc-q35-8.2", 4),
            vec!["q35", "pc-q35-7.2", "pc-q35-7.1", "pc-q35-7.0"]
        );
        assert_eq!(list.suggestions("q53", 3)[0], "q35");
        // Ubuntu's own machine type: nothing close, so the aliases.
        assert_eq!(
            list.suggestions("ubuntu", 5),
            vec!["pc", "q35", "pc-i440fx-7.2"]
        );
    }

    #[test]
    fn versions_are_read_from_qemu_and_qemu_img() {
        let v = parse_version(
            "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022",
        )
        .unwrap();
        assert_eq!(v.version, "7.2.22");
        assert!(v.line.contains("Debian"));
        let v = parse_version("qemu-img version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1)\n").unwrap();
        assert_eq!(v.version, "8.2.2");
        assert!(parse_version("something else").is_none());
    }

    #[test]
    fn accel_help_lists_names() {
        assert_eq!(
            parse_accel_help("Accelerators supported in QEMU binary:\ntcg\nkvm\n"),
            vec!["tcg", "kvm"]
        );
    }

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("q35", "q35"), 0);
        assert_eq!(levenshtein("q53", "q35"), 2);
        assert_eq!(levenshtein("", "pc"), 2);
    }
}
