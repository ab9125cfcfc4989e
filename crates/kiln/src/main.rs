//! kiln: build machine images from Packer HCL2 templates.

mod cli;
mod cmd;
mod context;
mod env_vars;
mod events;
mod exit;
mod interrupt;
mod record;
mod render;
mod settings;

fn main() -> std::process::ExitCode {
    render::install_panic_hook();
    let exit = cli::run(std::env::args_os().collect());
    // A writer abandoned by an interrupted build leaves no temporary file.
    kiln_image::output::remove_staged_files();
    exit.into()
}
