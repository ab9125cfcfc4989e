//! `kiln cache ls|du|prune`: the step cache's checkpoints (a frozen disk
//! overlay, UEFI variables and a saved VM state per cached build step).

use kiln_build::cache::fmt as cfmt;
use std::path::PathBuf;

use kiln_build::cache::{PrunePolicy, Store};

use crate::context::Context;
use crate::exit::Exit;
use crate::render;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the cached steps.
    Ls(Common),
    /// How much space the cache takes.
    Du(Common),
    /// Remove least recently used checkpoints (never one a running build uses).
    Prune(PruneArgs),
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub common: Common,
    /// Keep at most this much (e.g. `20G`, `500M`).
    #[arg(long = "max-size", value_name = "SIZE")]
    pub max_size: Option<String>,
    /// Remove checkpoints unused for this long (e.g. `7d`, `12h`).
    #[arg(long = "older-than", value_name = "AGE")]
    pub older_than: Option<String>,
}

/// The store if there is one: `ls`, `du` and `prune` create nothing, and a
/// missing cache directory is an empty cache.
fn open_existing(root: PathBuf) -> Result<(PathBuf, Option<Store>), Exit> {
    match Store::open_existing(&root) {
        Ok(store) => Ok((root, store)),
        Err(e) => {
            render::error(&e.to_string(), None);
            Err(Exit::Failed)
        }
    }
}

fn print_json(value: serde_json::Result<serde_json::Value>) {
    render::out(
        &value
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_default(),
    );
}

pub fn run(cmd: &Command, cx: &Context) -> Exit {
    let (root, store) = match open_existing(cx.settings.step_cache_root()) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let result = match cmd {
        Command::Ls(c) => match &store {
            Some(store) => cfmt::ls(store),
            None => Ok(cfmt::ls_empty(&root)),
        }
        .map(|out| {
            if c.json {
                print_json(serde_json::to_value(&out));
            } else {
                render::out(&format!(
                    "{:<12} {:<12} {:>10} {:5}  {}",
                    "key", "parent", "size", "state", "build / step"
                ));
                for e in &out.entries {
                    let what = match &e.damaged {
                        Some(reason) => format!("damaged: {reason}"),
                        None => format!("{} / {}", e.build, e.step),
                    };
                    render::out(&format!(
                        "{:<12} {:<12} {:>10} {:5}  {what}",
                        e.short_key,
                        e.parent.as_deref().map(|p| &p[..12.min(p.len())]).unwrap_or("-"),
                        cfmt::human_bytes(e.bytes),
                        if e.has_state { "yes" } else { "no" },
                    ));
                }
                let damaged = out.entries.iter().filter(|e| e.damaged.is_some()).count();
                render::out(&format!(
                    "{} checkpoints, {} in {}{}",
                    out.entries.len() - damaged,
                    cfmt::human_bytes(out.total_bytes),
                    out.root,
                    if damaged > 0 {
                        format!("; {damaged} damaged (`kiln cache prune` removes them)")
                    } else {
                        String::new()
                    }
                ));
            }
        }),
        Command::Du(c) => match &store {
            Some(store) => cfmt::du(store),
            None => Ok(cfmt::du_empty(&root)),
        }
        .map(|out| {
            if c.json {
                print_json(serde_json::to_value(&out));
            } else {
                render::out(&format!(
                    "{}: {} checkpoints, {} (disks {}, VM states {}, UEFI vars {}; running builds {})",
                    out.root,
                    out.entries,
                    cfmt::human_bytes(out.total_bytes),
                    cfmt::human_bytes(out.disk_bytes),
                    cfmt::human_bytes(out.state_bytes),
                    cfmt::human_bytes(out.vars_bytes),
                    cfmt::human_bytes(out.staging_bytes)
                ));
                if out.damaged > 0 {
                    render::out(&format!(
                        "{} damaged checkpoints, {} (`kiln cache prune` removes them)",
                        out.damaged,
                        cfmt::human_bytes(out.damaged_bytes)
                    ));
                }
            }
        }),
        Command::Prune(a) => {
            let max_size = match a.max_size.as_deref().map(cfmt::parse_size).transpose() {
                Ok(v) => v,
                Err(e) => return crate::cli::usage_error(&e.to_string()),
            };
            let older_than = match a.older_than.as_deref().map(cfmt::parse_age).transpose() {
                Ok(v) => v,
                Err(e) => return crate::cli::usage_error(&e.to_string()),
            };
            if max_size.is_none() && older_than.is_none() {
                return crate::cli::usage_error("say what to prune: --max-size SIZE and/or --older-than AGE");
            }
            let Some(existing) = &store else {
                let out = cfmt::prune_empty(&root);
                if a.common.json {
                    print_json(serde_json::to_value(&out));
                } else {
                    render::out(&format!("removed 0 checkpoints; the cache at {} is empty", out.root));
                }
                return Exit::Ok;
            };
            // Prune writes: open the store for real (it removes what killed
            // builds left behind).
            let store = match Store::open(existing.root()) {
                Ok(s) => s,
                Err(e) => {
                    render::error(&e.to_string(), None);
                    return Exit::Failed;
                }
            };
            store
                .prune(&PrunePolicy {
                    max_size,
                    older_than,
                })
                .map(|report| {
                    let out = cfmt::prune_output(&store, &report);
                    if a.common.json {
                        print_json(serde_json::to_value(&out));
                    } else {
                        let damaged = out
                            .removed
                            .iter()
                            .filter(|r| r.entry.damaged.is_some())
                            .count();
                        if damaged > 0 {
                            render::out(&format!("removed {damaged} damaged checkpoints"));
                        }
                        render::out(&format!(
                            "removed {} checkpoints ({}); {} left ({})",
                            out.removed.len(),
                            cfmt::human_bytes(out.freed_bytes),
                            out.remaining,
                            cfmt::human_bytes(out.remaining_bytes)
                        ));
                    }
                })
        }
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            render::error(&e.to_string(), None);
            Exit::Failed
        }
    }
}
