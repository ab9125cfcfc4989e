//! `kiln fmt`: rewrite HCL files in the canonical format, as `packer fmt`,
//! which since Packer 1.13 takes several paths (`hcl2template/formatter.go`
//! `Format(paths)`): each a directory or a file, in the order given.

use std::path::{Path, PathBuf};

use kiln_template::format::format_hcl;
use kiln_template::load::input::{TEMPLATE_LIMIT, read_input};

use crate::exit::Exit;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Check whether the input is formatted; exit 1 if not (Packer exits 3).
    #[arg(long)]
    pub check: bool,
    /// Show the formatting changes as a diff.
    #[arg(long)]
    pub diff: bool,
    /// Write the result back to the files (default true; `-write=false` to only list them).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub write: bool,
    /// Also format files in subdirectories.
    #[arg(long)]
    pub recursive: bool,
    /// Directories or files, or `-` alone for standard input.
    #[arg(value_name = "PATH", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
}

fn is_hcl(p: &Path) -> bool {
    let n = p.to_string_lossy();
    n.ends_with(".pkr.hcl") || n.ends_with(".pkrvars.hcl")
}

fn collect(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if recursive {
                collect(&p, recursive, out)?;
            }
        } else if is_hcl(&p) {
            out.push(p);
        }
    }
    Ok(())
}

fn unified_diff(name: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .header(&format!("old/{name}"), &format!("new/{name}"))
        .to_string()
}

pub fn run(args: &Args) -> Exit {
    let stdin = args.paths.iter().any(|p| p.as_os_str() == "-");
    if stdin && args.paths.len() > 1 {
        render::error(
            "`-` (standard input) cannot be formatted together with other paths",
            Some("format standard input on its own: `kiln fmt -`"),
        );
        return Exit::Usage;
    }
    if stdin {
        let mut text = String::new();
        if std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).is_err() {
            render::error("cannot read standard input", None);
            return Exit::Usage;
        }
        return match format_hcl(&text, "<stdin>") {
            Ok(f) => {
                if args.check {
                    return if f == text { Exit::Ok } else { Exit::Failed };
                }
                if args.diff {
                    render::out_raw(&unified_diff("<stdin>", &text, &f));
                } else {
                    render::out_raw(&f);
                }
                Exit::Ok
            }
            Err(d) => {
                render::diagnostics(&[d], &[]);
                Exit::Usage
            }
        };
    }
    let mut files = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            if let Err(e) = collect(path, args.recursive, &mut files) {
                render::error(&format!("cannot read `{}`: {e}", path.display()), None);
                return Exit::Usage;
            }
        } else {
            files.push(path.clone());
        }
    }
    let mut unformatted = false;
    let mut errors = Vec::new();
    for p in files {
        // As templates are read: a FIFO or `/dev/zero` is refused, not
        // read forever.
        let text = match read_input(&p, TEMPLATE_LIMIT) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(e) => {
                    render::error(
                        &format!("cannot read `{}`: it is not UTF-8 text ({e})", p.display()),
                        None,
                    );
                    return Exit::Usage;
                }
            },
            Err(e) => {
                render::error(
                    &format!("cannot read `{}`: {}", p.display(), e.reason()),
                    None,
                );
                return Exit::Usage;
            }
        };
        let name = p.to_string_lossy().into_owned();
        let formatted = match format_hcl(&text, &name) {
            Ok(f) => f,
            Err(d) => {
                errors.push(d);
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        unformatted = true;
        render::out(&name);
        if args.diff {
            render::out_raw(&unified_diff(&name, &text, &formatted));
        }
        if args.write
            && !args.check
            && let Err(e) = std::fs::write(&p, &formatted)
        {
            render::error(&format!("cannot write `{name}`: {e}"), None);
            return Exit::Failed;
        }
    }
    if !errors.is_empty() {
        render::diagnostics(&errors, &[]);
        return Exit::Usage;
    }
    if args.check && unformatted {
        return Exit::Failed;
    }
    Exit::Ok
}
