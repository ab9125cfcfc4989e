//! Data behind `kiln cache ls|du|prune`: plain structs that serialize to
//! JSON (for `--json`) and carry what a table needs, plus parsers for the
//! `--max-size` and `--older-than` flags. Rendering is the CLI's.

use std::path::Path;
use std::time::Duration;

use super::store::{
    DEFAULT_SIZE_LIMIT, DamagedEntry, EntryInfo, PruneReason, PruneReport, Store, StoreError, Usage,
};

/// One row of `kiln cache ls`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LsRow {
    pub key: String,
    /// The key as shown (12 digits).
    pub short_key: String,
    pub parent: Option<String>,
    pub build: String,
    pub step: String,
    pub step_index: usize,
    pub created_unix: u64,
    pub last_used_unix: u64,
    pub bytes: u64,
    /// A saved VM state is present (restores in seconds rather than a boot).
    pub has_state: bool,
    pub children: usize,
    pub in_use: bool,
    pub machine_type: String,
    pub qemu_version: String,
    /// Why the entry is unusable (`None`: it is fine). Any prune removes it.
    pub damaged: Option<String>,
}

impl From<&DamagedEntry> for LsRow {
    fn from(d: &DamagedEntry) -> LsRow {
        LsRow {
            key: d.key.to_string(),
            short_key: d.key.short().to_string(),
            parent: None,
            build: "?".into(),
            step: "?".into(),
            step_index: 0,
            created_unix: 0,
            last_used_unix: d.last_used_unix,
            bytes: d.bytes,
            has_state: false,
            children: 0,
            in_use: d.in_use,
            machine_type: String::new(),
            qemu_version: String::new(),
            damaged: Some(d.reason.clone()),
        }
    }
}

impl From<&EntryInfo> for LsRow {
    fn from(info: &EntryInfo) -> LsRow {
        let meta = &info.entry.meta;
        LsRow {
            key: info.entry.key.to_string(),
            short_key: info.entry.key.short().to_string(),
            parent: meta.parent.as_ref().map(|p| p.to_string()),
            build: meta.build.clone(),
            step: meta.step.clone(),
            step_index: meta.step_index,
            created_unix: meta.created_unix,
            last_used_unix: info.last_used_unix,
            bytes: info.bytes,
            has_state: info.entry.state_path().is_some(),
            children: info.children,
            in_use: info.in_use,
            machine_type: meta.machine.machine_type.clone(),
            qemu_version: meta.machine.qemu_version.clone(),
            damaged: None,
        }
    }
}

/// `kiln cache ls`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LsOutput {
    pub root: String,
    pub entries: Vec<LsRow>,
    pub total_bytes: u64,
}

/// `kiln cache du`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DuOutput {
    pub root: String,
    pub entries: usize,
    pub total_bytes: u64,
    pub entry_bytes: u64,
    pub disk_bytes: u64,
    pub state_bytes: u64,
    pub vars_bytes: u64,
    pub other_bytes: u64,
    /// Running builds' working overlays.
    pub staging_bytes: u64,
    /// Damaged entries (any prune removes them) and their bytes.
    pub damaged: usize,
    pub damaged_bytes: u64,
    pub size_limit: Option<u64>,
}

/// A removed entry in `kiln cache prune`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PrunedRow {
    #[serde(flatten)]
    pub entry: LsRow,
    pub reason: PruneReason,
}

/// `kiln cache prune`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PruneOutput {
    pub root: String,
    pub removed: Vec<PrunedRow>,
    pub freed_bytes: u64,
    /// Short keys the policy would remove but a running build holds.
    pub kept_in_use: Vec<String>,
    pub remaining: usize,
    pub remaining_bytes: u64,
}

/// Lists the store: usable entries oldest first, then damaged ones.
pub fn ls(store: &Store) -> Result<LsOutput, StoreError> {
    let listing = store.listing()?;
    let entries: Vec<LsRow> = listing
        .entries
        .iter()
        .map(LsRow::from)
        .chain(listing.damaged.iter().map(LsRow::from))
        .collect();
    Ok(LsOutput {
        root: store.root().display().to_string(),
        total_bytes: entries.iter().map(|e| e.bytes).sum(),
        entries,
    })
}

/// `kiln cache ls` where there is no store yet: an empty cache.
pub fn ls_empty(root: &Path) -> LsOutput {
    LsOutput {
        root: root.display().to_string(),
        entries: Vec::new(),
        total_bytes: 0,
    }
}

/// Sizes of the store.
pub fn du(store: &Store) -> Result<DuOutput, StoreError> {
    Ok(du_output(
        &store.root().display().to_string(),
        store.size_limit(),
        &store.du()?,
    ))
}

/// `kiln cache du` where there is no store yet.
pub fn du_empty(root: &Path) -> DuOutput {
    du_output(
        &root.display().to_string(),
        Some(DEFAULT_SIZE_LIMIT),
        &Usage::default(),
    )
}

fn du_output(root: &str, size_limit: Option<u64>, u: &Usage) -> DuOutput {
    DuOutput {
        root: root.to_string(),
        entries: u.entries,
        total_bytes: u.total(),
        entry_bytes: u.entry_bytes(),
        disk_bytes: u.disk_bytes,
        state_bytes: u.state_bytes,
        vars_bytes: u.vars_bytes,
        other_bytes: u.other_bytes,
        staging_bytes: u.staging_bytes,
        damaged: u.damaged,
        damaged_bytes: u.damaged_bytes,
        size_limit,
    }
}

/// Turns a prune report into output rows.
pub fn prune_output(store: &Store, report: &PruneReport) -> PruneOutput {
    PruneOutput {
        root: store.root().display().to_string(),
        removed: report
            .removed
            .iter()
            .map(|(info, reason)| PrunedRow {
                entry: LsRow::from(info),
                reason: *reason,
            })
            .chain(report.removed_damaged.iter().map(|d| PrunedRow {
                entry: LsRow::from(d),
                reason: PruneReason::Damaged,
            }))
            .collect(),
        freed_bytes: report.freed_bytes,
        kept_in_use: report
            .kept_in_use
            .iter()
            .map(|k| k.short().to_string())
            .collect(),
        remaining: report.remaining,
        remaining_bytes: report.remaining_bytes,
    }
}

/// `kiln cache prune` where there is no store yet: nothing to remove.
pub fn prune_empty(root: &Path) -> PruneOutput {
    PruneOutput {
        root: root.display().to_string(),
        removed: Vec::new(),
        freed_bytes: 0,
        kept_in_use: Vec::new(),
        remaining: 0,
        remaining_bytes: 0,
    }
}

/// A bad `--max-size` or `--older-than` value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("`{0}` is not a size (use bytes or a number with K, M, G or T, e.g. `20G`)")]
    Size(String),
    #[error("`{0}` is not an age (use a number with s, m, h, d or w, e.g. `7d`)")]
    Age(String),
}

fn split_number(text: &str) -> Option<(f64, String)> {
    let t = text.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let number: f64 = t[..end].parse().ok()?;
    (number.is_finite() && number >= 0.0).then(|| (number, t[end..].trim().to_ascii_lowercase()))
}

/// `20G`, `512M`, `1.5T`, `1000` (bytes); binary units, `GiB`/`GB` accepted.
pub fn parse_size(text: &str) -> Result<u64, FlagError> {
    let err = || FlagError::Size(text.to_string());
    let (n, unit) = split_number(text).ok_or_else(err)?;
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(err()),
    };
    Ok((n * (1u64 << shift) as f64) as u64)
}

/// `30s`, `15m`, `12h`, `7d`, `2w`.
pub fn parse_age(text: &str) -> Result<Duration, FlagError> {
    let err = || FlagError::Age(text.to_string());
    let (n, unit) = split_number(text).ok_or_else(err)?;
    let secs = match unit.as_str() {
        "s" | "" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        "w" => 7.0 * 86400.0,
        _ => return Err(err()),
    };
    Ok(Duration::from_secs_f64(n * secs))
}

/// `1.5 GiB`, `148.0 MiB`, `512 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::key::{BaseKeyInputs, base_key};
    use crate::cache::store::{EntryMeta, META_SCHEMA, MachineFacts, PrunePolicy};

    #[test]
    fn flags_parse() {
        assert_eq!(parse_size("20G").unwrap(), 20 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5t").unwrap(), 3 << 39);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
        assert_eq!(parse_age("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse_age("90m").unwrap(), Duration::from_secs(5400));
        assert!(parse_age("-1d").is_err());
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(148 << 20), "148.0 MiB");
    }

    #[test]
    fn outputs_serialize_to_json() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap().with_size_limit(None);
        let key = base_key(&BaseKeyInputs {
            base_image_digest: "x".into(),
            source: serde_json::json!({}),
            qemu_version: "7.2.22".into(),
            machine_type: "pc-q35-7.2".into(),
            firmware: Default::default(),
        });
        let staging = store.begin().unwrap();
        std::fs::write(staging.path().join("disk.qcow2"), b"disk").unwrap();
        let meta = EntryMeta {
            schema: META_SCHEMA,
            key: key.clone(),
            parent: None,
            build: "qemu.x".into(),
            step: "provision shell".into(),
            step_index: 4,
            created_unix: 1,
            disks: vec![],
            vars: None,
            state: None,
            machine: MachineFacts {
                qemu_binary: "qemu-system-x86_64".into(),
                qemu_version: "7.2.22".into(),
                machine_type: "pc-q35-7.2".into(),
                argv: vec![],
                argv_digest: String::new(),
            },
        };
        drop(store.publish(staging, &meta).unwrap());
        let listed = ls(&store).unwrap();
        assert_eq!(listed.entries.len(), 1);
        assert_eq!(listed.entries[0].short_key, key.short());
        let json = serde_json::to_value(&listed).unwrap();
        assert_eq!(json["entries"][0]["step"], "provision shell");
        assert!(!listed.entries[0].has_state);
        let usage = serde_json::to_value(du(&store).unwrap()).unwrap();
        assert_eq!(usage["entries"], 1);
        let report = store
            .prune(&PrunePolicy {
                max_size: Some(0),
                older_than: None,
            })
            .unwrap();
        let out = serde_json::to_value(prune_output(&store, &report)).unwrap();
        assert_eq!(out["removed"][0]["reason"], "over_size");
        assert_eq!(out["removed"][0]["short_key"], key.short());
        assert_eq!(out["remaining"], 0);
    }
}
