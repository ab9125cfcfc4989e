//! Filesystem functions: abspath, basename, dirname, file, filebase64,
//! fileexists, fileset, pathexpand, templatefile.
//!
//! As in Packer, `file`, `fileexists`, `fileset` and `templatefile` resolve
//! relative paths against [`FuncCtx::cwd`] (Packer: the template directory,
//! `path.root`) after expanding `~`; `abspath` and `filebase64` resolve
//! them against the process's working directory, as Go's `filepath.Abs`
//! and `os.ReadFile` do.
//!
//! `file`, `filebase64` and `templatefile` read through
//! [`read_input`](crate::load::input::read_input), as templates are read:
//! a FIFO or an endless device (`/dev/zero`) is an error, not a hang, and
//! a file larger than [`TEMPLATE_LIMIT`] is refused (Packer reads either
//! until it runs out of memory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Fail, Func, FuncCtx, P, p, str_arg};
use crate::gopath;
use crate::load::input::{InputError, TEMPLATE_LIMIT, read_input};
use crate::value::{Value, go_quote};

pub(crate) const FUNCS: &[Func] = &[
    Func {
        name: "abspath",
        params: &[p("path", P::String)],
        var_param: None,
        imp: abspath,
    },
    Func {
        name: "basename",
        params: &[p("path", P::String)],
        var_param: None,
        imp: basename,
    },
    Func {
        name: "dirname",
        params: &[p("path", P::String)],
        var_param: None,
        imp: dirname,
    },
    Func {
        name: "file",
        params: &[p("path", P::String)],
        var_param: None,
        imp: file,
    },
    Func {
        name: "filebase64",
        params: &[p("path", P::String)],
        var_param: None,
        imp: filebase64,
    },
    Func {
        name: "fileexists",
        params: &[p("path", P::String)],
        var_param: None,
        imp: fileexists,
    },
    Func {
        name: "fileset",
        params: &[p("path", P::String), p("pattern", P::String)],
        var_param: None,
        imp: fileset,
    },
    Func {
        name: "pathexpand",
        params: &[p("path", P::String)],
        var_param: None,
        imp: pathexpand,
    },
    Func {
        name: "templatefile",
        params: &[p("path", P::String), p("vars", P::Any)],
        var_param: None,
        imp: templatefile,
    },
];

/// go-homedir's `Expand`.
fn expand_home(path: &str) -> Result<String, String> {
    if !path.starts_with('~') {
        return Ok(path.to_string());
    }
    if path.len() > 1 && !path[1..].starts_with('/') {
        return Err("cannot expand user-specific home dir".into());
    }
    let home = std::env::var("HOME").map_err(|_| "$HOME is not set".to_string())?;
    Ok(format!("{home}{}", &path[1..]))
}

/// A path for `file`-like functions: `~` expanded, joined to the base
/// directory when relative, cleaned.
fn resolve(ctx: &FuncCtx<'_>, path: &str) -> Result<String, Fail> {
    let expanded = expand_home(path).map_err(|e| Fail::call(format!("failed to expand ~: {e}")))?;
    if expanded.starts_with('/') {
        Ok(gopath::clean(&expanded))
    } else {
        Ok(gopath::join(&ctx.cwd.to_string_lossy(), &expanded))
    }
}

fn process_cwd() -> Result<PathBuf, Fail> {
    std::env::current_dir()
        .map_err(|e| Fail::call(format!("cannot read the working directory: {e}")))
}

fn abspath(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let path = str_arg(&args, 0)?;
    if path.starts_with('/') {
        return Ok(Value::String(gopath::clean(path)));
    }
    let cwd = process_cwd()?;
    Ok(Value::String(gopath::join(&cwd.to_string_lossy(), path)))
}

fn basename(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(gopath::base(str_arg(&args, 0)?)))
}

fn dirname(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(gopath::dir(str_arg(&args, 0)?)))
}

fn pathexpand(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    expand_home(str_arg(&args, 0)?)
        .map(Value::String)
        .map_err(Fail::call)
}

/// Reads a file as `file()` does, with its errors.
fn read_file(ctx: &FuncCtx<'_>, path: &str) -> Result<(String, Vec<u8>), Fail> {
    let full = resolve(ctx, path)?;
    match read_input(Path::new(&full), TEMPLATE_LIMIT) {
        Ok(bytes) => Ok((full, bytes)),
        Err(InputError::NotFound { .. }) => Err(Fail::call(format!("no file exists at {full}"))),
        Err(e) => Err(Fail::call(format!("failed to read {full}: {}", e.reason()))),
    }
}

fn read_text(ctx: &FuncCtx<'_>, path: &str) -> Result<(String, String), Fail> {
    let (full, bytes) = read_file(ctx, path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Fail::call(format!(
            "contents of {path} are not valid UTF-8; use the filebase64 function to obtain the Base64 encoded contents or the other file functions (e.g. filemd5, filesha256) to obtain file hashing results instead"
        ))
    })?;
    Ok((full, text))
}

fn file(args: Vec<Value>, ctx: &FuncCtx<'_>) -> Result<Value, Fail> {
    read_text(ctx, str_arg(&args, 0)?).map(|(_, text)| Value::String(text))
}

fn filebase64(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let path = str_arg(&args, 0)?;
    let full = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        process_cwd()?.join(path)
    };
    let bytes = read_input(&full, TEMPLATE_LIMIT).map_err(|e| {
        Fail::call(format!(
            "failed to read file {}: open {path}: {}",
            go_quote(path),
            go_reason(&e)
        ))
    })?;
    Ok(Value::String(super::encoding::base64_encode(&bytes)))
}

/// Why a file could not be read, as Go's `syscall.Errno` spells the
/// reasons Packer can report; kiln's own refusals in its words.
fn go_reason(e: &InputError) -> String {
    match e {
        InputError::NotFound { .. } => "no such file or directory".into(),
        InputError::PermissionDenied { .. } => "permission denied".into(),
        InputError::Directory { .. } => "is a directory".into(),
        InputError::Io { source, .. } => source.to_string().to_lowercase(),
        other => other.reason(),
    }
}

fn fileexists(args: Vec<Value>, ctx: &FuncCtx<'_>) -> Result<Value, Fail> {
    let full = resolve(ctx, str_arg(&args, 0)?)?;
    match std::fs::metadata(&full) {
        Ok(meta) if meta.is_file() => Ok(Value::Bool(true)),
        Ok(meta) => Err(Fail::call(format!(
            "{full} is not a regular file, but {}",
            go_quote(&go_file_mode(&meta))
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Bool(false)),
        Err(_) => Err(Fail::call(format!("failed to stat {full}"))),
    }
}

/// Go's `FileMode.String()` for what `fileexists` may meet.
fn go_file_mode(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let ft = meta.file_type();
    let mut s = String::new();
    if ft.is_dir() {
        s.push('d');
    }
    if ft.is_symlink() {
        s.push('L');
    }
    if ft.is_block_device() {
        s.push('D');
    }
    if ft.is_char_device() {
        s.push_str("Dc");
    }
    if ft.is_fifo() {
        s.push('p');
    }
    if ft.is_socket() {
        s.push('S');
    }
    if s.is_empty() {
        s.push('-');
    }
    let mode = meta.permissions().mode();
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if mode & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

fn fileset(args: Vec<Value>, ctx: &FuncCtx<'_>) -> Result<Value, Fail> {
    let dir = str_arg(&args, 0)?;
    let pattern = str_arg(&args, 1)?;
    let base = if dir.starts_with('/') {
        gopath::clean(dir)
    } else {
        gopath::join(&ctx.cwd.to_string_lossy(), dir)
    };
    let full_pattern = gopath::join(&base, pattern);
    // The part of the pattern below the base directory.
    let rel_pattern = if base == "/" {
        full_pattern.trim_start_matches('/').to_string()
    } else {
        full_pattern
            .strip_prefix(&format!("{base}/"))
            .map(str::to_string)
            .unwrap_or_else(|| gopath::clean(pattern))
    };
    let segments: Vec<&str> = rel_pattern.split('/').filter(|s| !s.is_empty()).collect();
    for seg in &segments {
        validate_glob(seg).map_err(|_| {
            Fail::call(format!(
                "failed to glob pattern ({}): syntax error in pattern",
                full_pattern
            ))
        })?;
    }
    let mut found = Vec::new();
    glob_walk(Path::new(&base), "", &segments, &mut found);
    let mut out = Vec::with_capacity(found.len());
    for rel in found {
        let full = Path::new(&base).join(&rel);
        match std::fs::metadata(&full) {
            Ok(meta) if meta.is_file() => out.push(Value::String(rel)),
            Ok(_) => {}
            Err(e) => {
                return Err(Fail::call(format!(
                    "failed to stat ({}): {e}",
                    full.display()
                )));
            }
        }
    }
    Ok(Value::new_set(out))
}

/// Matches `segments` (a doublestar pattern split on `/`) below `dir`,
/// collecting matches as `/`-separated paths relative to the start.
fn glob_walk(dir: &Path, rel: &str, segments: &[&str], out: &mut Vec<String>) {
    let Some((first, rest)) = segments.split_first() else {
        if !rel.is_empty() {
            out.push(rel.to_string());
        }
        return;
    };
    let join = |name: &str| {
        if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        }
    };
    if *first == "**" && rest.is_empty() {
        // A trailing `**` matches everything below.
        for (name, is_dir) in read_dir_sorted(dir) {
            out.push(join(&name));
            if is_dir {
                glob_walk(&dir.join(&name), &join(&name), segments, out);
            }
        }
        return;
    }
    if *first == "**" {
        // Zero directories...
        glob_walk(dir, rel, rest, out);
        // ...or one more, recursively (symlinked directories not followed).
        for (name, is_dir) in read_dir_sorted(dir) {
            if is_dir {
                glob_walk(&dir.join(&name), &join(&name), segments, out);
            }
        }
        return;
    }
    if !has_glob_meta(first) {
        let name = unescape_glob(first);
        let path = dir.join(&name);
        if rest.is_empty() {
            if std::fs::symlink_metadata(&path).is_ok() {
                out.push(join(&name));
            }
        } else if path.is_dir() {
            glob_walk(&path, &join(&name), rest, out);
        }
        return;
    }
    for (name, is_dir) in read_dir_sorted(dir) {
        if glob_match(first, &name) {
            if rest.is_empty() {
                out.push(join(&name));
            } else if is_dir || dir.join(&name).is_dir() {
                glob_walk(&dir.join(&name), &join(&name), rest, out);
            }
        }
    }
}

fn read_dir_sorted(dir: &Path) -> Vec<(String, bool)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<(String, bool)> = entries
        .filter_map(Result::ok)
        .map(|e| {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            (e.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .collect();
    names.sort();
    names
}

fn has_glob_meta(seg: &str) -> bool {
    seg.contains(['*', '?', '[', '{', '\\'])
}

fn unescape_glob(seg: &str) -> String {
    let mut out = String::new();
    let mut chars = seg.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn validate_glob(seg: &str) -> Result<(), ()> {
    let chars: Vec<char> = seg.chars().collect();
    let mut i = 0;
    let mut braces = 0i32;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err(());
                }
                i += 1;
            }
            '[' => {
                let mut j = i + 1;
                if chars.get(j) == Some(&'^') || chars.get(j) == Some(&'!') {
                    j += 1;
                }
                let mut closed = false;
                let mut first = true;
                while j < chars.len() {
                    if chars[j] == ']' && !first {
                        closed = true;
                        break;
                    }
                    if chars[j] == '\\' {
                        j += 1;
                    }
                    first = false;
                    j += 1;
                }
                if !closed {
                    return Err(());
                }
                i = j;
            }
            '{' => braces += 1,
            // An unmatched `}` is a literal.
            '}' if braces > 0 => braces -= 1,
            _ => {}
        }
        i += 1;
    }
    if braces != 0 { Err(()) } else { Ok(()) }
}

/// Matches one path segment against a glob segment: `*`, `?`, `[...]`
/// (with `^` or `!` negation and ranges), `{a,b}` alternatives, `\` escapes.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    let Some((&c, rest)) = p.split_first() else {
        return n.is_empty();
    };
    match c {
        '*' => (0..=n.len()).any(|k| match_from(rest, &n[k..])),
        '?' => !n.is_empty() && match_from(rest, &n[1..]),
        '\\' => match (rest.split_first(), n.split_first()) {
            (Some((&e, rest)), Some((&x, n_rest))) => e == x && match_from(rest, n_rest),
            _ => false,
        },
        '[' => {
            let Some((&x, n_rest)) = n.split_first() else {
                return false;
            };
            let mut j = 0;
            let negate = matches!(rest.first(), Some('^' | '!'));
            if negate {
                j += 1;
            }
            let mut matched = false;
            let mut first = true;
            while j < rest.len() && (rest[j] != ']' || first) {
                first = false;
                let mut lo = rest[j];
                if lo == '\\' && j + 1 < rest.len() {
                    j += 1;
                    lo = rest[j];
                }
                let mut hi = lo;
                if rest.get(j + 1) == Some(&'-') && rest.get(j + 2).is_some_and(|c| *c != ']') {
                    hi = rest[j + 2];
                    if hi == '\\' && j + 3 < rest.len() {
                        hi = rest[j + 3];
                        j += 1;
                    }
                    j += 2;
                }
                if lo <= x && x <= hi {
                    matched = true;
                }
                j += 1;
            }
            if j >= rest.len() {
                return false;
            }
            matched != negate && match_from(&rest[j + 1..], n_rest)
        }
        '{' => {
            // Find the matching close brace and split the alternatives.
            let mut depth = 0;
            let mut end = None;
            let mut starts = vec![0usize];
            let mut k = 0;
            while k < rest.len() {
                match rest[k] {
                    '\\' => k += 1,
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = Some(k);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => starts.push(k + 1),
                    _ => {}
                }
                k += 1;
            }
            let Some(end) = end else { return false };
            let after = &rest[end + 1..];
            let mut bounds = starts.clone();
            bounds.push(end + 1);
            (0..starts.len()).any(|a| {
                let alt = &rest[bounds[a]..bounds[a + 1] - 1];
                let mut candidate: Vec<char> = alt.to_vec();
                candidate.extend_from_slice(after);
                match_from(&candidate, n)
            })
        }
        c => n.first() == Some(&c) && match_from(rest, &n[1..]),
    }
}

fn templatefile(args: Vec<Value>, ctx: &FuncCtx<'_>) -> Result<Value, Fail> {
    let path = str_arg(&args, 0)?;
    let vars = match &args[1] {
        Value::Map(m) | Value::Object(m) => m,
        _ => return Err(Fail::arg(1, "invalid vars value: must be a map")),
    };
    for name in vars.keys() {
        if !is_identifier(name) {
            return Err(Fail::arg(
                1,
                format!(
                    "invalid template variable name {}: must start with a letter, followed by zero or more letters, digits, and underscores",
                    go_quote(name)
                ),
            ));
        }
    }
    let (full, text) = read_text(ctx, path)?;
    let vars: BTreeMap<String, Value> = vars.clone();
    (ctx.render_template)(&text, Path::new(&full), &vars).map_err(Fail::call)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{FuncCtx, call};
    use super::*;

    fn in_dir(dir: &Path, name: &str, args: Vec<Value>) -> Result<Value, String> {
        call(name, args, &ctx_in(dir)).map_err(|e| format!("`{name}`: {}", e.message))
    }

    #[test]
    fn basename_dirname_abspath_pathexpand() {
        assert_eq!(
            call_ok("basename", vec![s("foo/bar/baz.txt")]),
            s("baz.txt")
        );
        assert_eq!(call_ok("dirname", vec![s("foo/bar/baz.txt")]), s("foo/bar"));
        assert_eq!(call_ok("abspath", vec![s("/a/../b/")]), s("/b"));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            call_ok("abspath", vec![s("x/y")]),
            s(&format!("{}/x/y", cwd.display()))
        );
        let home = std::env::var("HOME").unwrap();
        assert_eq!(
            call_ok("pathexpand", vec![s("~/.ssh/id_rsa")]),
            s(&format!("{home}/.ssh/id_rsa"))
        );
        assert_eq!(
            call_ok("pathexpand", vec![s("/etc/resolv.conf")]),
            s("/etc/resolv.conf")
        );
        assert_eq!(
            call_err("pathexpand", vec![s("~bob/x")]),
            "`pathexpand`: cannot expand user-specific home dir"
        );
    }

    #[test]
    fn file_functions_resolve_against_the_base_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.txt"), "Hello World").unwrap();
        std::fs::write(dir.path().join("bin.dat"), [0xff, 0xfe]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(
            in_dir(dir.path(), "file", vec![s("hello.txt")]),
            Ok(s("Hello World"))
        );
        assert_eq!(
            in_dir(dir.path(), "file", vec![s("./sub/../hello.txt")]),
            Ok(s("Hello World"))
        );
        assert_eq!(
            in_dir(dir.path(), "file", vec![s("nope.txt")]),
            Err(format!(
                "`file`: no file exists at {}/nope.txt",
                dir.path().display()
            ))
        );
        assert!(
            in_dir(dir.path(), "file", vec![s("bin.dat")])
                .unwrap_err()
                .contains("are not valid UTF-8")
        );
        assert_eq!(
            in_dir(dir.path(), "fileexists", vec![s("hello.txt")]),
            Ok(b(true))
        );
        assert_eq!(
            in_dir(dir.path(), "fileexists", vec![s("nope")]),
            Ok(b(false))
        );
        let e = in_dir(dir.path(), "fileexists", vec![s("sub")]).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "`fileexists`: {}/sub is not a regular file, but \"drwx",
                dir.path().display()
            )),
            "{e}"
        );
        let abs = dir.path().join("hello.txt");
        assert_eq!(
            in_dir(
                Path::new("/nonexistent"),
                "filebase64",
                vec![s(&abs.to_string_lossy())]
            ),
            Ok(s("SGVsbG8gV29ybGQ="))
        );
        assert!(
            in_dir(dir.path(), "filebase64", vec![s("definitely-not-here.bin")])
                .unwrap_err()
                .contains("failed to read file \"definitely-not-here.bin\": open definitely-not-here.bin: no such file or directory")
        );
    }

    /// `file("/dev/zero")` used to read forever; a FIFO waited for a
    /// writer. Now both are errors naming the reason, as for templates.
    #[test]
    fn file_functions_refuse_endless_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let big = dir.path().join("big.txt");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(TEMPLATE_LIMIT + 1)
            .unwrap();
        let vars = || Value::Map(BTreeMap::new());
        for (path, reason) in [
            ("/dev/zero", "character device that does not end"),
            (fifo.to_str().unwrap(), "FIFO"),
            (big.to_str().unwrap(), "larger than the 16 MiB limit"),
        ] {
            let e = in_dir(dir.path(), "file", vec![s(path)]).unwrap_err();
            assert!(e.contains(&format!("failed to read {path}: ")), "{e}");
            assert!(e.contains(reason), "{e}");
            let e = in_dir(dir.path(), "filebase64", vec![s(path)]).unwrap_err();
            assert!(e.contains(reason), "{e}");
            let e = in_dir(dir.path(), "templatefile", vec![s(path), vars()]).unwrap_err();
            assert!(e.contains(reason), "{e}");
        }
        assert_eq!(in_dir(dir.path(), "file", vec![s("/dev/null")]), Ok(s("")));
        assert_eq!(
            in_dir(dir.path(), "filebase64", vec![s("/dev/null")]),
            Ok(s(""))
        );
    }

    #[test]
    fn fileset_globs_like_doublestar() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "a.txt",
            "b.txt",
            "c.md",
            ".hidden.txt",
            "sub/d.txt",
            "sub/deep/e.txt",
            "sub/deep/f.md",
            "x{y}.txt",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        std::fs::create_dir(root.join("empty.txt.d")).unwrap();
        let set = |items: &[&str]| Value::new_set(items.iter().map(|x| s(x)).collect());
        let fs = |path: &str, pat: &str| in_dir(root, "fileset", vec![s(path), s(pat)]).unwrap();
        assert_eq!(
            fs(".", "*.txt"),
            set(&[".hidden.txt", "a.txt", "b.txt", "x{y}.txt"])
        );
        assert_eq!(
            fs(".", "**/*.txt"),
            set(&[
                ".hidden.txt",
                "a.txt",
                "b.txt",
                "sub/d.txt",
                "sub/deep/e.txt",
                "x{y}.txt"
            ])
        );
        assert_eq!(fs("sub", "**"), set(&["d.txt", "deep/e.txt", "deep/f.md"]));
        assert_eq!(fs(".", "{a,c}.*"), set(&["a.txt", "c.md"]));
        assert_eq!(fs(".", "[ab].txt"), set(&["a.txt", "b.txt"]));
        assert_eq!(fs(".", "[!a].txt"), set(&["b.txt"]));
        assert_eq!(fs(".", "?.md"), set(&["c.md"]));
        assert_eq!(fs(".", "sub/*/e.txt"), set(&["sub/deep/e.txt"]));
        assert_eq!(fs(".", "x\\{y}.txt"), set(&["x{y}.txt"]));
        assert_eq!(fs(".", "*.nothing"), set(&[]));
        assert_eq!(fs(".", "a.txt"), set(&["a.txt"]));
        assert!(
            in_dir(root, "fileset", vec![s("."), s("[a")])
                .unwrap_err()
                .contains("syntax error in pattern")
        );
    }

    #[test]
    fn templatefile_renders_through_the_context() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.tpl"), "Hello, ${name}!").unwrap();
        let render =
            |text: &str, path: &Path, vars: &BTreeMap<String, Value>| -> Result<Value, String> {
                assert!(path.ends_with("t.tpl"));
                let name = vars.get("name").and_then(Value::as_str).ok_or("no name")?;
                Ok(Value::String(text.replace("${name}", name)))
            };
        let ctx = FuncCtx {
            cwd: dir.path(),
            env_allowed: false,
            render_template: &render,
        };
        assert_eq!(
            call(
                "templatefile",
                vec![s("t.tpl"), obj(&[("name", s("Ander"))])],
                &ctx
            )
            .unwrap(),
            s("Hello, Ander!")
        );
        let e = call("templatefile", vec![s("t.tpl"), s("x")], &ctx).unwrap_err();
        assert_eq!(
            e.message,
            "argument 2 (`vars`): invalid vars value: must be a map"
        );
        let e = call(
            "templatefile",
            vec![s("t.tpl"), obj(&[("0bad", s("x"))])],
            &ctx,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("invalid template variable name \"0bad\"")
        );
        let e = call("templatefile", vec![s("t.tpl"), obj(&[])], &ctx).unwrap_err();
        assert_eq!(e.message, "no name");
    }
}
