//! kiln: build machine images from Packer HCL2 templates.

mod cli;
mod cmd;
mod events;
mod exit;
mod record;
mod render;

fn main() -> std::process::ExitCode {
    cli::run(std::env::args_os().collect()).into()
}
