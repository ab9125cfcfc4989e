//! `kiln cache ls|du|prune`: the step cache's checkpoints (a frozen disk
//! overlay, UEFI variables and a saved VM state per cached build step).

use kiln_build::cache::fmt as cfmt;
use kiln_build::cache::{PrunePolicy, Store, default_root};

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

fn open() -> Result<Store, Exit> {
    let root = default_root().map_err(|e| {
        render::error(&e.to_string(), None);
        Exit::Failed
    })?;
    Store::open(&root).map_err(|e| {
        render::error(&e.to_string(), None);
        Exit::Failed
    })
}

fn print_json(value: serde_json::Result<serde_json::Value>) {
    render::out(
        &value
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_default(),
    );
}

pub fn run(cmd: &Command) -> Exit {
    let store = match open() {
        Ok(s) => s,
        Err(e) => return e,
    };
    let result = match cmd {
        Command::Ls(c) => cfmt::ls(&store).map(|out| {
            if c.json {
                print_json(serde_json::to_value(&out));
            } else {
                render::out(&format!(
                    "{:<12} {:<12} {:>10} {:5}  {}",
                    "key", "parent", "size", "state", "build / step"
                ));
                for e in &out.entries {
                    render::out(&format!(
                        "{:<12} {:<12} {:>10} {:5}  {} / {}",
                        e.short_key,
                        e.parent.as_deref().map(|p| &p[..12.min(p.len())]).unwrap_or("-"),
                        cfmt::human_bytes(e.bytes),
                        if e.has_state { "yes" } else { "no" },
                        e.build,
                        e.step
                    ));
                }
                render::out(&format!(
                    "{} checkpoints, {} in {}",
                    out.entries.len(),
                    cfmt::human_bytes(out.total_bytes),
                    out.root
                ));
            }
        }),
        Command::Du(c) => cfmt::du(&store).map(|out| {
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
