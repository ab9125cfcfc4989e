//! One module per command. Each takes its clap arguments and returns an
//! [`Exit`](crate::exit::Exit); all output goes through [`crate::render`].

pub mod build;
pub mod cache;
pub mod docs;
pub mod doctor;
pub mod fmt;
pub mod init;
pub mod inspect;
pub mod maas;
pub mod plan;
pub mod preflight;
pub mod scan;
pub mod validate;
pub mod vars;

use kiln_template::load::{self, LoadFailure, Loaded};

use crate::cli::TemplateArgs;
use crate::context::Context;
use crate::exit::Exit;
use crate::render;

/// Load a template from the flags; on failure print everything and say
/// which exit status the command should end with.
pub fn load_template(args: &TemplateArgs, cx: &Context, failed: Exit) -> Result<Loaded, Exit> {
    let opts = match args.load_options(&cx.settings) {
        Ok(o) => o,
        Err(m) => return Err(crate::cli::usage_error(&m)),
    };
    match load::load(&opts) {
        Ok(l) => {
            // From here on, nothing printed can carry a sensitive value:
            // sensitive variables, and literals in fields the schemas mark.
            let mut secrets = l.sensitive_values();
            secrets.extend(kiln_build::schema::sensitive_values(&l));
            render::set_redactor(&kiln_secret::Redactor::new(secrets));
            render::diagnostics(&[], &l.warnings);
            Ok(l)
        }
        Err(f) => {
            report_failure(&f);
            Err(failed)
        }
    }
}

pub fn report_failure(f: &LoadFailure) {
    render::diagnostics(&f.errors, &f.warnings);
    let n = f.errors.len();
    render::error(
        &format!(
            "the template has {n} error{}",
            if n == 1 { "" } else { "s" }
        ),
        None,
    );
}
