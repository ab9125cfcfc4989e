//! `kiln scan`: look for leaked secrets in a disk image (qcow2, raw, a bare
//! ext4/vfat filesystem, a gzip/xz-compressed raw disk) or a tarball:
//! private keys, cloud and API tokens, SSH host keys, a non-empty
//! machine-id, shell histories, cloud-init instance data, given public keys
//! in `authorized_keys`, given secrets anywhere, accounts whose password is
//! a given one. Exit 1 when anything is found, 0 when clean, 2 when the
//! artifact (or a part of it) could not be read or a flag is wrong.

use std::path::PathBuf;

use kiln_image::scan::{ScanConfig, parse_allow, rules, scan_path};

use crate::exit::Exit;
use crate::render;

fn allow_help() -> String {
    format!(
        "Accept a known finding: `RULE` or `RULE:PATH-GLOB` (repeatable; `*` for any rule).\n\nRules:\n{}",
        rules::rules_table()
    )
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A disk image (qcow2, raw, bare ext4/vfat, .dd.gz/.ddxz) or a tarball (.tar, .tar.gz, …), found by content.
    #[arg(value_name = "ARTIFACT")]
    pub path: PathBuf,
    /// Print `{"findings": [{"path","rule","severity","excerpt"}], …}`.
    #[arg(long)]
    pub json: bool,
    /// Accept a known finding: `RULE` or `RULE:PATH-GLOB` (repeatable; see --help for the rules).
    #[arg(long, value_name = "RULE[:GLOB]", long_help = allow_help())]
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

/// Whether `line` is an OpenSSH public key line (`ssh-…`, `ecdsa-…`,
/// `sk-…`, maybe after options) with a base64 blob.
fn is_public_key_line(line: &str) -> bool {
    let f: Vec<&str> = line.split_whitespace().collect();
    f.iter().enumerate().any(|(i, t)| {
        (t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-"))
            && f.get(i + 1).is_some_and(|b| {
                b.len() >= 16
                    && b.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
            })
    })
}

/// The public key lines given by one `--public-key` value: a file of key
/// lines, or a key line itself. Anything else is a usage error.
fn public_keys(value: &str) -> Result<Vec<String>, (String, String)> {
    let path = std::path::Path::new(value);
    let hint =
        "give a public key file (`id_ed25519.pub`) or a key line (`ssh-ed25519 AAAA… comment`)"
            .to_string();
    if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| {
            (
                format!("`--public-key {value}`: cannot read the file: {e}"),
                hint.clone(),
            )
        })?;
        let keys: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        if let Some(bad) = keys.iter().position(|l| !is_public_key_line(l)) {
            return Err((
                format!(
                    "`--public-key {value}`: line {} is not an OpenSSH public key (`ssh-…`/`ecdsa-…`)",
                    bad + 1
                ),
                hint,
            ));
        }
        if keys.is_empty() {
            return Err((
                format!("`--public-key {value}`: the file holds no public key"),
                hint,
            ));
        }
        return Ok(keys);
    }
    if is_public_key_line(value) {
        return Ok(vec![value.trim().to_owned()]);
    }
    let what = if value.contains('/') || value.ends_with(".pub") {
        "no such file, and not a public key line"
    } else {
        "not a file, and not an `ssh-…`/`ecdsa-…` public key line"
    };
    Err((format!("`--public-key {value}`: {what}"), hint))
}

pub fn run(args: &Args) -> Exit {
    let mut build_public_keys = Vec::new();
    for k in &args.public_keys {
        match public_keys(k) {
            Ok(v) => build_public_keys.extend(v),
            Err((msg, hint)) => {
                render::error(&msg, Some(&hint));
                return Exit::Usage;
            }
        }
    }
    let allow = match allow_flags(&args.allow) {
        Ok(a) => a,
        Err(exit) => return exit,
    };
    let mut sensitive = Vec::new();
    if let Some(f) = &args.secrets_file {
        match std::fs::read_to_string(f) {
            Ok(t) => sensitive.extend(
                t.lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| l.as_bytes().to_vec()),
            ),
            Err(e) => {
                render::error(
                    &format!("`--secrets-file {}`: cannot read: {e}", f.display()),
                    None,
                );
                return Exit::Usage;
            }
        }
    }
    let cfg = ScanConfig {
        build_public_keys,
        sensitive,
        passwords: args.password.clone(),
        allow,
    };
    let report = match scan_path(&args.path, &cfg) {
        Ok(r) => r,
        Err(e) => {
            let mut msg = format!("cannot scan {}: {e}", args.path.display());
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!("\ncaused by: {s}"));
                src = s.source();
            }
            render::error(
                &msg,
                Some("the scan says clean only of what it read whole; this artifact was not"),
            );
            return Exit::Usage;
        }
    };
    if args.json {
        render::out(&serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        for f in &report.findings {
            render::out(&format!(
                "{:<6} {:<21} {}  {}",
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

/// `--allow RULE[:GLOB]` values, each checked against the rule table.
pub fn allow_flags(values: &[String]) -> Result<Vec<(String, String)>, Exit> {
    let mut allow = Vec::new();
    for a in values {
        match parse_allow(a) {
            Ok(r) => allow.push(r),
            Err(e) => {
                render::error(
                    &format!("`--allow {a}`: {e}"),
                    Some(&format!("valid rule ids: {}", rules::rule_ids())),
                );
                return Err(Exit::Usage);
            }
        }
    }
    Ok(allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_lines_are_recognised() {
        assert!(is_public_key_line(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIuser user@host"
        ));
        assert!(is_public_key_line(
            "from=\"10.0.0.1\" ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAA x"
        ));
        assert!(!is_public_key_line("ssh-ed25519"));
        assert!(!is_public_key_line("hunter2"));
        assert!(!is_public_key_line("ssh-rsa not*base64*at*all"));
    }
}
