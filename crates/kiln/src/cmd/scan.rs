//! `kiln scan`: look for leaked secrets in a disk image (qcow2/raw) or a
//! tarball: private keys, SSH host keys, a non-empty machine-id, shell
//! histories, cloud-init instance data, given public keys in
//! `authorized_keys`, given secrets anywhere, accounts whose password is a
//! given one. Exit 1 when anything is found, 0 when clean.

use std::path::PathBuf;

use kiln_image::scan::{ScanConfig, scan_path};

use crate::exit::Exit;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A disk image (qcow2, raw) or a tarball (.tar, .tar.gz, …).
    #[arg(value_name = "ARTIFACT")]
    pub path: PathBuf,
    /// Print `{"findings": [{"path","rule","severity","excerpt"}], …}`.
    #[arg(long)]
    pub json: bool,
    /// Accept a known finding: `RULE` or `RULE:PATH-GLOB` (repeatable).
    #[arg(long, value_name = "RULE[:GLOB]")]
    pub allow: Vec<String>,
    /// A public key (file or `ssh-…` line) that must not be authorised (repeatable).
    #[arg(long = "public-key", value_name = "KEY")]
    pub public_keys: Vec<String>,
    /// A file whose lines are secrets that must not appear anywhere.
    #[arg(long = "secrets-file", value_name = "FILE")]
    pub secrets_file: Option<PathBuf>,
    /// A password that no unlocked account may have (repeatable).
    #[arg(long, value_name = "PASSWORD")]
    pub password: Vec<String>,
}

pub fn run(args: &Args) -> Exit {
    let mut public_keys = Vec::new();
    for k in &args.public_keys {
        let path = std::path::Path::new(k);
        if path.is_file() {
            match std::fs::read_to_string(path) {
                Ok(t) => public_keys.push(t.trim().to_string()),
                Err(e) => {
                    render::error(&format!("cannot read {k}: {e}"), None);
                    return Exit::Usage;
                }
            }
        } else {
            public_keys.push(k.clone());
        }
    }
    let mut sensitive = Vec::new();
    if let Some(f) = &args.secrets_file {
        match std::fs::read_to_string(f) {
            Ok(t) => sensitive.extend(
                t.lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| l.as_bytes().to_vec()),
            ),
            Err(e) => {
                render::error(&format!("cannot read {}: {e}", f.display()), None);
                return Exit::Usage;
            }
        }
    }
    let cfg = ScanConfig {
        build_public_keys: public_keys,
        sensitive,
        passwords: args.password.clone(),
        allow: args
            .allow
            .iter()
            .map(|a| kiln_build::postprocess::maas::parse_allow(a))
            .collect(),
    };
    let report = match scan_path(&args.path, &cfg) {
        Ok(r) => r,
        Err(e) => {
            render::error(&format!("{}: {e}", args.path.display()), None);
            return Exit::Usage;
        }
    };
    if args.json {
        render::out(&serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        for f in &report.findings {
            render::out(&format!(
                "{:<6} {:<18} {}  {}",
                format!("{:?}", f.severity).to_lowercase(),
                f.rule,
                f.path,
                f.excerpt
            ));
        }
        for n in &report.notes {
            render::err_line(&format!("note: {n}"));
        }
        render::err_line(&format!(
            "{}: {} finding(s), {} allowed, {} files read",
            args.path.display(),
            report.findings.len(),
            report.allowed.len(),
            report.files
        ));
    }
    if report.is_clean() {
        Exit::Ok
    } else {
        Exit::Failed
    }
}
