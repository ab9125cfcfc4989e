//! `kiln validate`: load everything Packer would, decode every source,
//! provisioner and post-processor block into its typed config, check what
//! Packer's `Prepare()` checks on the host (`floppy_files`, `cd_files`, an
//! existing `output_directory`), and report every error.

use crate::cli::TemplateArgs;
use crate::context::Context;
use crate::exit::Exit;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub template: TemplateArgs,
}

pub fn run(args: &Args, cx: &Context) -> Exit {
    let loaded = match super::load_template(&args.template, cx, Exit::Failed) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let cwd = &cx.settings.cwd;
    // Every build is decoded and checked against the host, as Packer's
    // Prepare() does; all errors of all builds come out together.
    let each = kiln_build::plan::decode_each(&loaded, cwd);
    let (host_errors, host_warnings) = kiln_build::plan::host_checks(&each.planned, &loaded, cwd);
    let mut errors: Vec<_> = each.failed.into_iter().flat_map(|(_, es)| es).collect();
    errors.extend(host_errors);
    let mut warnings = each.planned.warnings;
    warnings.extend(host_warnings);
    let exit = if errors.is_empty() {
        render::diagnostics(&[], &warnings);
        render::out("The configuration is valid.");
        Exit::Ok
    } else {
        render::diagnostics(&errors, &warnings);
        let n = errors.len();
        render::error(
            &format!(
                "the template has {n} error{}",
                if n == 1 { "" } else { "s" }
            ),
            None,
        );
        Exit::Failed
    };
    // The process ends here: skip freeing a large template.
    std::mem::forget(loaded);
    exit
}
