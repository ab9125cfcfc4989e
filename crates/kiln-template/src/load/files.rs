//! Finding and parsing files, as Packer's `GetHCL2Files`: a directory's
//! `*.pkr.hcl` then `*.pkr.json` by file name (no subdirectories), its
//! `*.auto.pkrvars.hcl` then `*.auto.pkrvars.json` sorted, then each
//! `-var-file` in command-line order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Diags, OriginKind, input, relative_to};
use crate::decode::did_you_mean;
use crate::diag::Diag;
use crate::source::SourceFile;
use crate::syntax::{self, SFile, SItem};

pub(crate) struct Found {
    pub root: PathBuf,
    pub hcl: Vec<PathBuf>,
    pub json: Vec<PathBuf>,
    pub auto_hcl: Vec<PathBuf>,
    pub auto_json: Vec<PathBuf>,
    pub var_files: Vec<PathBuf>,
}

pub(crate) struct Parsed {
    pub templates: Vec<SFile>,
    /// Var files in precedence order (lowest first).
    pub var_files: Vec<(SFile, OriginKind)>,
}

impl Parsed {
    pub fn all_files(&self) -> Vec<Arc<SourceFile>> {
        self.templates
            .iter()
            .map(|f| f.src.clone())
            .chain(self.var_files.iter().map(|(f, _)| f.src.clone()))
            .collect()
    }
}

const HCL: &str = ".pkr.hcl";
const JSON: &str = ".pkr.json";
const AUTO_HCL: &str = ".auto.pkrvars.hcl";
const AUTO_JSON: &str = ".auto.pkrvars.json";

pub(crate) fn discover(path: &Path, var_files: &[PathBuf]) -> Result<Found, Vec<Diag>> {
    let meta = std::fs::metadata(path).map_err(|e| {
        vec![Diag::error(format!("cannot read `{}`", path.display())).detail(e.to_string())]
    })?;
    let mut found = Found {
        root: path.to_path_buf(),
        hcl: Vec::new(),
        json: Vec::new(),
        auto_hcl: Vec::new(),
        auto_json: Vec::new(),
        var_files: var_files.to_vec(),
    };
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| {
            vec![
                Diag::error(format!("cannot read directory `{}`", path.display()))
                    .detail(e.to_string()),
            ]
        })?;
        let mut names: Vec<(std::ffi::OsString, PathBuf, bool)> = Vec::new();
        for entry in entries.flatten() {
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            names.push((entry.file_name(), entry.path(), is_dir));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, p, is_dir) in names {
            if is_dir {
                continue;
            }
            let name = name.to_string_lossy();
            if name.ends_with(HCL) {
                found.hcl.push(p);
            } else if name.ends_with(JSON) {
                found.json.push(p);
            } else if name.ends_with(AUTO_HCL) {
                found.auto_hcl.push(p);
            } else if name.ends_with(AUTO_JSON) {
                found.auto_json.push(p);
            }
        }
    } else {
        found.root = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.to_string_lossy();
        if name.ends_with(HCL) {
            found.hcl.push(path.to_path_buf());
        } else if name.ends_with(JSON) {
            found.json.push(path.to_path_buf());
        }
    }
    if found.hcl.is_empty() && found.json.is_empty() {
        return Err(vec![
            Diag::error(format!("could not find any config file in `{}`", path.display()))
                .detail("a config file must be suffixed with `.pkr.hcl` or `.pkr.json`; a folder can be referenced"),
        ]);
    }
    Ok(found)
}

fn read(path: &Path, root: &Path) -> Result<Arc<SourceFile>, Diag> {
    let name = relative_to(path, root);
    let cannot = |detail: String| Diag::error(format!("cannot read `{name}`")).detail(detail);
    let bytes = input::read_input(path, input::TEMPLATE_LIMIT).map_err(|e| cannot(e.reason()))?;
    let text =
        String::from_utf8(bytes).map_err(|e| cannot(format!("it is not UTF-8 text ({e})")))?;
    Ok(Arc::new(SourceFile::new(name, path.to_path_buf(), text)))
}

fn parse_one(
    path: &Path,
    root: &Path,
    json: bool,
    schema: &syntax::Schema,
) -> Result<SFile, Vec<Diag>> {
    let src = read(path, root).map_err(|d| vec![d])?;
    if json {
        syntax::parse_json(&src, schema)
    } else {
        syntax::parse_hcl(&src)
    }
}

/// Parse texts held in memory (fuzzing, tests): names ending in `.json`
/// use the JSON syntax; var files named `*.auto.pkrvars.*` count as auto.
pub(crate) fn parse_texts(
    templates: &[(String, String)],
    var_files: &[(String, String)],
    diags: &mut Diags,
) -> Parsed {
    let one = |name: &str, text: &str, schema: &syntax::Schema| {
        let src = Arc::new(SourceFile::new(name, PathBuf::from(name), text));
        if name.ends_with(".json") {
            syntax::parse_json(&src, schema)
        } else {
            syntax::parse_hcl(&src)
        }
    };
    let mut parsed = Parsed {
        templates: Vec::new(),
        var_files: Vec::new(),
    };
    for (name, text) in templates {
        match one(name, text, &syntax::ROOT) {
            Ok(f) => parsed.templates.push(f),
            Err(ds) => ds.into_iter().for_each(|d| diags.push(d)),
        }
    }
    for (name, text) in var_files {
        let kind = if name.contains(".auto.pkrvars.") {
            OriginKind::AutoVarFile
        } else {
            OriginKind::VarFile
        };
        match one(name, text, &syntax::OPAQUE) {
            Ok(f) => parsed.var_files.push((f, kind)),
            Err(ds) => ds.into_iter().for_each(|d| diags.push(d)),
        }
    }
    parsed
}

/// Parse files on all cores, keeping their order.
fn parse_many(
    jobs: &[(&Path, bool, &'static syntax::Schema)],
    root: &Path,
    diags: &mut Diags,
) -> Vec<SFile> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let results: Vec<Result<SFile, Vec<Diag>>> = if threads < 2 || jobs.len() < 16 {
        jobs.iter()
            .map(|(p, j, s)| parse_one(p, root, *j, s))
            .collect()
    } else {
        let chunk = jobs.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(p, j, s)| parse_one(p, root, *j, s))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(vec![Diag::error(
                            "internal error: a parser thread panicked",
                        )])]
                    })
                })
                .collect()
        })
    };
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(f) => out.push(f),
            Err(ds) => ds.into_iter().for_each(|d| diags.push(d)),
        }
    }
    out
}

pub(crate) fn parse_all(found: &Found, diags: &mut Diags) -> Parsed {
    let mut jobs: Vec<(&Path, bool, &'static syntax::Schema)> = Vec::new();
    jobs.extend(
        found
            .hcl
            .iter()
            .map(|p| (p.as_path(), false, &syntax::ROOT)),
    );
    jobs.extend(
        found
            .json
            .iter()
            .map(|p| (p.as_path(), true, &syntax::ROOT)),
    );
    let templates = parse_many(&jobs, &found.root, diags);

    let mut var_jobs: Vec<(&Path, bool, &'static syntax::Schema)> = Vec::new();
    let mut kinds = Vec::new();
    for p in &found.auto_hcl {
        var_jobs.push((p, false, &syntax::OPAQUE));
        kinds.push(OriginKind::AutoVarFile);
    }
    for p in &found.auto_json {
        var_jobs.push((p, true, &syntax::OPAQUE));
        kinds.push(OriginKind::AutoVarFile);
    }
    for p in &found.var_files {
        match p.extension().and_then(|e| e.to_str()) {
            Some("hcl") => {
                var_jobs.push((p, false, &syntax::OPAQUE));
                kinds.push(OriginKind::VarFile);
            }
            Some("json") => {
                var_jobs.push((p, true, &syntax::OPAQUE));
                kinds.push(OriginKind::VarFile);
            }
            _ => diags.push(
                Diag::error(format!("could not guess format of `{}`", p.display()))
                    .detail("a var file must be suffixed with `.hcl` or `.json`"),
            ),
        }
    }
    // Var files are few: parse them in order so kinds line up.
    let mut var_files = Vec::new();
    for ((p, j, s), kind) in var_jobs.iter().zip(kinds) {
        match parse_one(p, &found.root, *j, s) {
            Ok(f) => var_files.push((f, kind)),
            Err(ds) => ds.into_iter().for_each(|d| diags.push(d)),
        }
    }
    Parsed {
        templates,
        var_files,
    }
}

/// Top-level blocks and how many labels each takes.
pub(crate) const TOP_LEVEL: &[(&str, usize)] = &[
    ("packer", 0),
    ("source", 2),
    ("variables", 0),
    ("variable", 1),
    ("locals", 0),
    ("local", 1),
    ("build", 0),
    ("data", 2),
];

pub(crate) fn label_names(kind: &str) -> &'static [&'static str] {
    match kind {
        "source" | "data" => &["type", "name"],
        "variable" | "local" => &["name"],
        "provisioner" | "post-processor" | "error-cleanup-provisioner" => &["type"],
        _ => &[],
    }
}

/// Check a block's label count; report and return false when wrong.
pub(crate) fn check_labels(
    file: &SFile,
    b: &syntax::SBlock,
    want: usize,
    diags: &mut Diags,
) -> bool {
    if b.labels.len() == want {
        return true;
    }
    let names = label_names(&b.kind);
    if b.labels.len() < want {
        let missing = names.get(b.labels.len()).copied().unwrap_or("label");
        diags.push(
            Diag::error(format!("missing {missing} label for `{}` block", b.kind))
                .at(&file.src, b.def_span.clone())
                .detail(format!(
                    "all `{}` blocks must have {want} label(s): {}",
                    b.kind,
                    names.join(", ")
                )),
        );
    } else {
        let extra = &b.labels[want];
        diags.push(
            Diag::error(format!("extraneous label for `{}` block", b.kind))
                .at(&file.src, extra.1.clone())
                .detail(format!(
                    "only {want} label(s) are expected for `{}` blocks{}",
                    b.kind,
                    if names.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", names.join(", "))
                    }
                )),
        );
    }
    false
}

pub(crate) fn check_top_level(files: &[SFile], diags: &mut Diags) {
    let kinds: Vec<&str> = TOP_LEVEL.iter().map(|(k, _)| *k).collect();
    for f in files {
        for item in &f.body.items {
            match item {
                SItem::Attr(a) => diags.push(
                    Diag::error(format!("unsupported argument `{}`", a.name))
                        .at(&f.src, a.name_span.clone())
                        .detail("attributes are not allowed at the top level of a template; only blocks are")
                        .help_opt(did_you_mean(&a.name, &kinds).map(|s| format!("did you mean the `{s}` block?"))),
                ),
                SItem::Block(b) => match TOP_LEVEL.iter().find(|(k, _)| *k == b.kind) {
                    Some((_, n)) => {
                        if check_labels(f, b, *n, diags) && b.kind == "data" {
                            diags.push(
                                Diag::error(format!("unknown data source type `{}`", b.labels[0].0))
                                    .at(&f.src, b.labels[0].1.clone())
                                    .detail("kiln has no data sources yet"),
                            );
                        }
                    }
                    None => diags.push(
                        Diag::error(format!("unsupported block type `{}`", b.kind))
                            .at(&f.src, b.kind_span.clone())
                            .detail(format!("blocks of type `{}` are not expected here", b.kind))
                            .help_opt(did_you_mean(&b.kind, &kinds).map(|s| format!("did you mean `{s}`?"))),
                    ),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LoadOptions, load};
    use std::path::Path;

    const TEMPLATE: &str = "variable \"v\" {\n  default = \"x\"\n}\n";

    fn errors_of(opts: &LoadOptions) -> Vec<String> {
        match load(opts) {
            Ok(_) => panic!("loaded"),
            Err(f) => f
                .errors
                .iter()
                .map(|d| format!("{}: {}", d.summary, d.detail.clone().unwrap_or_default()))
                .collect(),
        }
    }

    fn opts(path: &Path) -> LoadOptions {
        LoadOptions {
            path: path.to_path_buf(),
            ..LoadOptions::default()
        }
    }

    #[test]
    fn load_refuses_a_template_linked_to_dev_zero() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.pkr.hcl"), TEMPLATE).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.pkr.hcl")).unwrap();
        let errors = errors_of(&opts(dir.path()));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("`zero.pkr.hcl`"), "{errors:?}");
        assert!(
            errors[0].contains("character device that does not end"),
            "{errors:?}"
        );
    }

    #[test]
    fn load_refuses_var_files_that_never_end() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.pkr.hcl"), TEMPLATE).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("z.auto.pkrvars.hcl")).unwrap();
        let fifo = dir.path().join("fifo.pkrvars.hcl");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let mut o = opts(dir.path());
        o.var_files.push(fifo);
        let errors = errors_of(&o);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("z.auto.pkrvars.hcl")
                && errors[0].contains("character device that does not end"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("fifo.pkrvars.hcl") && errors[1].contains("is a FIFO"),
            "{errors:?}"
        );
    }

    #[test]
    fn load_refuses_a_template_over_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pkr.hcl");
        let f = std::fs::File::create(&big).unwrap();
        // Sparse: 16 MiB + 1 without writing it.
        f.set_len(super::input::TEMPLATE_LIMIT + 1).unwrap();
        let errors = errors_of(&opts(&big));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("`big.pkr.hcl`") && errors[0].contains("16 MiB limit"),
            "{errors:?}"
        );
    }

    #[test]
    fn load_reads_an_empty_var_file_from_dev_null() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.pkr.hcl"), TEMPLATE).unwrap();
        let null = dir.path().join("null.pkrvars.hcl");
        std::os::unix::fs::symlink("/dev/null", &null).unwrap();
        let mut o = opts(dir.path());
        o.var_files.push(null);
        let loaded = load(&o).map_err(|f| f.errors).unwrap();
        assert!(loaded.variables.contains_key("v"));
    }
}
