//! `kiln docs reference --out DIR` (hidden, for maintainers): write the
//! plugin reference generated from the schema tables.

use std::path::PathBuf;

use kiln_build::schema::reference;

use crate::exit::Exit;
use crate::render;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write one Markdown page per source, provisioner and post-processor, and an index.
    Reference {
        /// The directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

pub fn run(command: &Command) -> Exit {
    match command {
        Command::Reference { out } => match reference::write_to(out) {
            Ok(written) => {
                render::out(&format!(
                    "wrote {} pages to {}",
                    written.len(),
                    out.display()
                ));
                Exit::Ok
            }
            Err(e) => {
                render::error_chain(&e, None);
                Exit::Failed
            }
        },
    }
}
