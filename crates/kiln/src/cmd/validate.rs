//! `kiln validate`: load everything Packer would, decode every source,
//! provisioner and post-processor block into its typed config, and report
//! every error.

use crate::cli::TemplateArgs;
use crate::exit::Exit;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub template: TemplateArgs,
}

pub fn run(args: &Args) -> Exit {
    let loaded = match super::load_template(&args.template, Exit::Failed) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let exit = match kiln_build::plan::decode_builds(&loaded, &cwd) {
        Ok(planned) => {
            render::diagnostics(&[], &planned.warnings);
            render::out("The configuration is valid.");
            Exit::Ok
        }
        Err(errors) => {
            render::diagnostics(&errors, &[]);
            let n = errors.len();
            render::error(
                &format!(
                    "the template has {n} error{}",
                    if n == 1 { "" } else { "s" }
                ),
                None,
            );
            Exit::Failed
        }
    };
    // The process ends here: skip freeing a large template.
    std::mem::forget(loaded);
    exit
}
