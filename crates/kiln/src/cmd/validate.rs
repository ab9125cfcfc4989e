//! `kiln validate`: load everything Packer would and report every error.

use crate::cli::TemplateArgs;
use crate::exit::Exit;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub template: TemplateArgs,
}

pub fn run(args: &Args) -> Exit {
    match super::load_template(&args.template, Exit::Failed) {
        Ok(loaded) => {
            render::out("The configuration is valid.");
            // The process ends here: skip freeing a large template.
            std::mem::forget(loaded);
            Exit::Ok
        }
        Err(e) => e,
    }
}
