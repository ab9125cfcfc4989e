//! `kiln init`: Packer's `packer init`, for templates whose Makefiles run
//! `packer init . && packer build …`. kiln installs nothing: it checks each
//! `required_plugins` entry against what it provides natively and says
//! which are built in and which are not supported. Exit 0 when a build can
//! run.

use std::path::PathBuf;

use kiln_template::load::{self, LoadOptions, PACKER_COMPAT_VERSION};

use crate::exit::Exit;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Accepted for Packer compatibility: built-in plugins need no upgrade.
    #[arg(long)]
    pub upgrade: bool,
    /// Treat an unmet `required_version` as a warning.
    #[arg(long = "ignore-version-constraint")]
    pub ignore_version_constraint: bool,
    /// A template directory, or a single `.pkr.hcl` file.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

/// Plugins whose components kiln implements itself, by their source
/// address, with what of them it provides.
const BUILT_IN: &[(&str, &str)] = &[(
    "github.com/hashicorp/qemu",
    "the `qemu` builder (kiln-qemu)",
)];

/// Components that need no plugin in Packer either.
const CORE: &str = "the `null` builder; the `shell`, `file` and `shell-local` provisioners; the `manifest`, `checksum`, `compress` and `shell-local` post-processors";

pub fn run(args: &Args) -> Exit {
    let mut opts = LoadOptions::new(&args.path);
    opts.ignore_version_constraint = args.ignore_version_constraint;
    let blocks = match load::packer_blocks(&opts) {
        Ok(b) => b,
        Err(f) => {
            super::report_failure(&f);
            return Exit::Usage;
        }
    };
    render::diagnostics(&[], &blocks.warnings);
    for c in &blocks.required_versions {
        render::out(&format!(
            "required_version {c}: met (kiln follows Packer {PACKER_COMPAT_VERSION})"
        ));
    }
    let mut unsupported = Vec::new();
    for p in &blocks.required_plugins {
        let source = p.source.as_deref().unwrap_or("");
        let version = p
            .version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        match BUILT_IN
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(source.trim_end_matches('/')))
        {
            Some((_, what)) => render::out(&format!(
                "{}{version} ({source}): built in: {what}; nothing to install",
                p.name
            )),
            None => {
                render::out(&format!(
                    "{}{version} ({}): not supported by kiln",
                    p.name,
                    if source.is_empty() {
                        "no source"
                    } else {
                        source
                    }
                ));
                unsupported.push(p.name.clone());
            }
        }
    }
    if blocks.required_plugins.is_empty() {
        render::out("no required_plugins: nothing to install");
    }
    render::out(&format!("always built in: {CORE}"));
    if unsupported.is_empty() {
        Exit::Ok
    } else {
        render::error(
            &format!(
                "kiln does not provide the plugin(s) {}",
                unsupported.join(", ")
            ),
            Some(
                "builds using their components cannot run with kiln; the other builds can (`-only`)",
            ),
        );
        Exit::Failed
    }
}
