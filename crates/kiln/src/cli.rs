//! The command line: clap types, Packer's single-dash flags, dispatch.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use kiln_template::load::LoadOptions;

use crate::cmd;
use crate::context::Context;
use crate::exit::Exit;
use crate::render;
use crate::settings::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Build machine images from Packer HCL2 templates",
    long_about = "Build machine images from Packer HCL2 templates, with Packer's semantics.\n\nPacker's single-dash flags (`-var`, `-var-file`, `-only`, …) are accepted as well as `--var`.",
    after_long_help = crate::env_vars::help()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the images a template describes (Packer's `packer build`).
    Build(cmd::build::Args),
    /// Check this host (and optionally a template's demands): QEMU, KVM, firmware, memory, disk.
    Doctor(cmd::doctor::Args),
    /// Scan a disk image or tarball for leaked secrets (exit 1 on findings).
    Scan(cmd::scan::Args),
    /// MAAS artifacts from an existing image, and their upload.
    Maas {
        #[command(subcommand)]
        command: cmd::maas::Command,
    },
    /// The step cache: list, size, prune.
    Cache {
        #[command(subcommand)]
        command: cmd::cache::Command,
    },
    /// Show what `build` would do: the resolved config, the QEMU argv and disk commands, the steps.
    Plan(cmd::plan::Args),
    /// Check that a template is valid (exit 1 on errors, as Packer).
    Validate(cmd::validate::Args),
    /// Show a template's variables (with where each value came from), locals and builds.
    Inspect(cmd::inspect::Args),
    /// Explain variables.
    Vars {
        #[command(subcommand)]
        command: VarsCommand,
    },
    /// Rewrite HCL files in the canonical format, as `packer fmt`.
    Fmt(cmd::fmt::Args),
    /// Check a template's `required_plugins` against what kiln provides (Packer's `packer init`).
    Init(cmd::init::Args),
    /// Print kiln's version and the Packer version whose semantics it follows.
    Version,
    /// Generate documentation (for maintainers).
    #[command(hide = true)]
    Docs {
        #[command(subcommand)]
        command: cmd::docs::Command,
    },
}

#[derive(Debug, Subcommand)]
pub enum VarsCommand {
    /// Show every value offered for a variable, lowest precedence first, and which one wins.
    Explain(cmd::vars::ExplainArgs),
}

/// The flags every template command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct TemplateArgs {
    #[command(flatten)]
    pub flags: TemplateFlags,
    /// A template directory, or a single `.pkr.hcl`/`.pkr.json` file.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

/// Variables and build selection, without the path (`kiln doctor` takes
/// them with an optional template).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TemplateFlags {
    /// Set a variable: `-var name=value` (repeatable; always wins over var files).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Read variable values from a file (`.pkrvars.hcl` or `.json`; repeatable, later wins).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
    /// Only the builds matching these globs (comma-separated or repeated).
    #[arg(long, value_name = "GLOB")]
    pub only: Vec<String>,
    /// All builds but those matching these globs (comma-separated or repeated).
    #[arg(long, value_name = "GLOB")]
    pub except: Vec<String>,
    /// Treat an unmet `required_version` as a warning (templates that pin a newer Packer).
    #[arg(long = "ignore-version-constraint")]
    pub ignore_version_constraint: bool,
}

impl TemplateArgs {
    /// Loader options from the flags and the command's settings.
    pub fn load_options(&self, settings: &Settings) -> Result<LoadOptions, String> {
        let f = &self.flags;
        let mut opts = LoadOptions::new(&self.path);
        opts.env.clone_from(&settings.pkr_vars);
        opts.cwd.clone_from(&settings.cwd);
        for v in &f.vars {
            let Some((k, val)) = v.split_once('=') else {
                return Err(format!("invalid -var `{v}`: expected `name=value`"));
            };
            opts.vars.push((k.to_string(), val.to_string()));
        }
        opts.var_files.clone_from(&f.var_files);
        opts.only.clone_from(&f.only);
        opts.except.clone_from(&f.except);
        opts.ignore_version_constraint = f.ignore_version_constraint;
        Ok(opts)
    }
}

/// Long flags that Packer spells with one dash.
const SINGLE_DASH: &[&str] = &[
    "var",
    "var-file",
    "only",
    "except",
    "json",
    "check",
    "diff",
    "write",
    "recursive",
    "help",
    "version",
    "force",
    "on-error",
    "parallel-builds",
    "skip-preflight",
    "fix",
    "max-size",
    "older-than",
    "no-cache",
    "from",
    "until",
    "resume",
    "upgrade",
    "accel",
];

/// Turn Packer's `-var x=1` / `-var=x=1` into `--var …` (before any `--`).
pub fn normalize_args(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || rest {
            out.push(a);
            continue;
        }
        let Some(s) = a.to_str() else {
            out.push(a);
            continue;
        };
        if s == "--" {
            rest = true;
            out.push(a);
            continue;
        }
        if let Some(flag) = s.strip_prefix('-')
            && !flag.starts_with('-')
            && SINGLE_DASH.contains(&flag.split('=').next().unwrap_or(""))
        {
            out.push(OsString::from(format!("-{s}")));
            continue;
        }
        out.push(a);
    }
    out
}

/// Parse the command line and run the command.
pub fn run(args: Vec<OsString>) -> Exit {
    let cli = match Cli::try_parse_from(normalize_args(args)) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            let _ = e.print();
            return code;
        }
    };
    // Resolved once; from here on nothing reads the environment.
    let cx = Context::new(Settings::from_process());
    render::set_color_allowed(cx.settings.color);
    match cli.command {
        Command::Build(a) => cmd::build::run(&a, &cx),
        Command::Plan(a) => cmd::plan::run(&a, &cx),
        Command::Doctor(a) => cmd::doctor::run(&a, &cx),
        Command::Scan(a) => cmd::scan::run(&a),
        Command::Cache { command } => cmd::cache::run(&command, &cx),
        Command::Maas { command } => cmd::maas::run(&command, &cx),
        Command::Validate(a) => cmd::validate::run(&a, &cx),
        Command::Inspect(a) => cmd::inspect::run(&a, &cx),
        Command::Vars {
            command: VarsCommand::Explain(a),
        } => cmd::vars::explain(&a, &cx),
        Command::Fmt(a) => cmd::fmt::run(&a),
        Command::Init(a) => cmd::init::run(&a),
        Command::Docs { command } => cmd::docs::run(&command),
        Command::Version => {
            render::out(&version_text());
            Exit::Ok
        }
    }
}

/// `kiln version`: kiln's own version and the Packer version whose
/// semantics it follows (what `required_version` is checked against).
pub fn version_text() -> String {
    format!(
        "kiln {}
Packer semantics: {}",
        env!("CARGO_PKG_VERSION"),
        kiln_template::load::PACKER_COMPAT_VERSION
    )
}

/// Report a bad flag value.
pub fn usage_error(message: &str) -> Exit {
    render::error(message, Some("see `kiln --help`"));
    Exit::Usage
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_args(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_flags_become_long() {
        assert_eq!(
            norm(&[
                "kiln",
                "validate",
                "-var",
                "a=1",
                "-var-file=x.hcl",
                "-only=q.*",
                "-h",
                "."
            ]),
            [
                "kiln",
                "validate",
                "--var",
                "a=1",
                "--var-file=x.hcl",
                "--only=q.*",
                "-h",
                "."
            ]
        );
        assert_eq!(
            norm(&["kiln", "fmt", "--", "-var"]),
            ["kiln", "fmt", "--", "-var"]
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
