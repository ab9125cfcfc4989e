//! Conformance table: one directory per case under `tests/conformance/`,
//! each a template plus `case.json`:
//!
//! ```json
//! {"cites": "Packer doc or behaviour mirrored",
//!  "args": ["-var", "x=1", "-var-file", "f.pkrvars.hcl", "-only", "a.*"],
//!  "env": {"PKR_VAR_x": "2"},
//!  "path": "one.pkr.hcl",            (default: the case directory)
//!  "packer": "same" | "differs: why",
//!  "expect": {"ok": true,
//!             "values": {"x": <json>}, "origins": {"x": "cli"},
//!             "locals": {"l": <json>}, "builds": ["name", …],
//!             "errors": [{"contains": "…", "at": "file:line:col"}],
//!             "warnings": [{"contains": "…", "at": "file:line"}],
//!             "sensitive": ["…"]}}
//! ```
//!
//! Where Packer 1.6.6 behaves the same (`"packer": "same"`), the case also
//! runs `packer validate` (and `packer inspect` for string values) and
//! compares; without `packer` on PATH that half is skipped with a message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_template::load::{LoadOptions, load};
use serde_json::Value as Json;

struct Case {
    dir: PathBuf,
    spec: Json,
}

fn cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("case.json").exists())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let text = std::fs::read_to_string(dir.join("case.json")).unwrap();
            let spec: Json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: bad case.json: {e}", dir.display()));
            Case { dir, spec }
        })
        .collect()
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn options(case: &Case) -> LoadOptions {
    let path = case.spec["path"]
        .as_str()
        .map_or(case.dir.clone(), |p| case.dir.join(p));
    let mut opts = LoadOptions {
        path,
        cwd: case.dir.clone(),
        ..LoadOptions::default()
    };
    let args = strings(&case.spec["args"]);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "-var" => {
                let v = val();
                let (k, x) = v.split_once('=').unwrap();
                opts.vars.push((k.into(), x.into()));
            }
            "-var-file" => opts.var_files.push(case.dir.join(val())),
            "-only" => opts.only.push(val()),
            "-except" => opts.except.push(val()),
            other => panic!("{}: unknown arg {other}", case.dir.display()),
        }
    }
    if let Some(env) = case.spec["env"].as_object() {
        for (k, v) in env {
            opts.env
                .push((k.clone(), v.as_str().unwrap_or_default().into()));
        }
    }
    opts
}

fn check(case: &Case) -> Vec<String> {
    let name = case.dir.file_name().unwrap().to_string_lossy().to_string();
    let mut fails = Vec::new();
    let mut fail = |m: String| fails.push(format!("{name}: {m}"));
    assert!(
        case.spec["cites"].as_str().is_some_and(|s| !s.is_empty()),
        "{name}: every case cites the Packer behaviour it mirrors"
    );
    let expect = &case.spec["expect"];
    let want_ok = expect["ok"].as_bool().unwrap_or(true);
    let (errors, warnings, loaded) = match load(&options(case)) {
        Ok(l) => (Vec::new(), l.warnings.clone(), Some(l)),
        Err(f) => (f.errors, f.warnings, None),
    };
    if want_ok != loaded.is_some() {
        fail(format!(
            "expected ok={want_ok}, got errors: {:#?}",
            errors
                .iter()
                .map(|d| format!("{d} {:?}", d.detail))
                .collect::<Vec<_>>()
        ));
    }
    let diag_matches = |list: &[kiln_template::diag::Diag], want: &Json| -> Option<String> {
        let contains = want["contains"].as_str().unwrap_or("");
        let at = want["at"].as_str();
        let hit = list.iter().any(|d| {
            let text = format!("{} {}", d.summary, d.detail.clone().unwrap_or_default());
            let place = d.span.as_ref().map(|s| {
                if at.is_some_and(|a| a.matches(':').count() == 1) {
                    format!("{}:{}", s.file, s.line)
                } else {
                    s.to_string()
                }
            });
            text.contains(contains) && at.is_none_or(|a| place.as_deref() == Some(a))
        });
        (!hit).then(|| {
            format!(
                "no diagnostic containing {contains:?} at {at:?}; got {:#?}",
                list.iter()
                    .map(|d| format!("{d} | {}", d.detail.clone().unwrap_or_default()))
                    .collect::<Vec<_>>()
            )
        })
    };
    for want in expect["errors"].as_array().into_iter().flatten() {
        if let Some(m) = diag_matches(&errors, want) {
            fail(m);
        }
    }
    for want in expect["warnings"].as_array().into_iter().flatten() {
        if let Some(m) = diag_matches(&warnings, want) {
            fail(m);
        }
    }
    if let Some(l) = &loaded {
        for (k, v) in expect["values"].as_object().into_iter().flatten() {
            let got = l
                .variables
                .get(k)
                .and_then(|x| x.value())
                .map(|x| x.to_json());
            if got.as_ref() != Some(v) {
                fail(format!("var.{k}: expected {v}, got {got:?}"));
            }
        }
        for (k, v) in expect["origins"].as_object().into_iter().flatten() {
            let got = l
                .variables
                .get(k)
                .and_then(|x| x.origin())
                .map(|o| o.kind.as_str());
            if got != v.as_str() {
                fail(format!("var.{k}: expected origin {v}, got {got:?}"));
            }
        }
        for (k, v) in expect["locals"].as_object().into_iter().flatten() {
            let got = l
                .locals
                .get(k)
                .and_then(|x| x.value.as_ref())
                .map(|x| x.to_json());
            if got.as_ref() != Some(v) {
                fail(format!("local.{k}: expected {v}, got {got:?}"));
            }
        }
        if expect.get("builds").is_some() {
            let got: Vec<String> = l.builds.iter().map(|b| b.name.clone()).collect();
            if got != strings(&expect["builds"]) {
                fail(format!(
                    "builds: expected {}, got {got:?}",
                    expect["builds"]
                ));
            }
        }
        if expect.get("sensitive").is_some() {
            let got = l.sensitive_values();
            if got != strings(&expect["sensitive"]) {
                fail(format!(
                    "sensitive values: expected {}, got {got:?}",
                    expect["sensitive"]
                ));
            }
        }
        if expect.get("inspect").is_some() {
            let doc = kiln_template::inspect::to_json(l);
            for (ptr, want) in expect["inspect"].as_object().into_iter().flatten() {
                // `null` also matches a path that does not exist.
                let got = doc.pointer(ptr);
                if got.unwrap_or(&Json::Null) != want {
                    fail(format!("inspect {ptr}: expected {want}, got {got:?}"));
                }
            }
        }
    }
    fails
}

fn packer() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|p| p.join("packer"))
        .find(|p| p.is_file())
}

fn run_packer(packer: &Path, case: &Case, cmd: &str) -> (bool, String) {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Command::new(packer);
    c.arg(cmd);
    c.args(strings(&case.spec["args"]));
    c.arg(case.spec["path"].as_str().unwrap_or("."));
    c.current_dir(&case.dir);
    c.env_clear();
    c.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c.env("HOME", tmp.path());
    c.env("TMPDIR", tmp.path());
    c.env("CHECKPOINT_DISABLE", "1");
    if let Some(env) = case.spec["env"].as_object() {
        for (k, v) in env {
            c.env(k, v.as_str().unwrap_or_default());
        }
    }
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn compare_with_packer(packer: &Path, case: &Case) -> Vec<String> {
    let name = case.dir.file_name().unwrap().to_string_lossy().to_string();
    let mut fails = Vec::new();
    let want_ok = case.spec["expect"]["ok"].as_bool().unwrap_or(true);
    let (ok, text) = run_packer(packer, case, "validate");
    if ok != want_ok {
        fails.push(format!(
            "{name}: packer validate ok={ok} but kiln ok={want_ok}:\n{text}"
        ));
        return fails;
    }
    if !ok {
        return fails;
    }
    let (_, text) = run_packer(packer, case, "inspect");
    let check = |kind: &str, map: &Json, fails: &mut Vec<String>| {
        for (k, v) in map.as_object().into_iter().flatten() {
            let Some(s) = v.as_str() else { continue };
            let line = format!("{kind}.{k}: {}", Json::String(s.into()));
            if !text.lines().any(|l| l.trim() == line) {
                fails.push(format!(
                    "{name}: packer inspect has no line `{line}`:\n{text}"
                ));
            }
        }
    };
    check("var", &case.spec["expect"]["values"], &mut fails);
    check("local", &case.spec["expect"]["locals"], &mut fails);
    fails
}

#[test]
fn conformance_table() {
    let cases = cases();
    assert!(!cases.is_empty());
    let mut fails = Vec::new();
    for case in &cases {
        fails.extend(check(case));
    }
    assert!(fails.is_empty(), "{}", fails.join("\n\n"));
}

#[test]
fn conformance_against_packer_1_6_6() {
    let Some(packer) = packer() else {
        eprintln!("skipped: `packer` is not on PATH (CI installs Packer 1.6.6)");
        return;
    };
    let mut fails = Vec::new();
    let mut compared = 0;
    for case in cases() {
        if case.spec["packer"].as_str() == Some("same") {
            compared += 1;
            fails.extend(compare_with_packer(&packer, &case));
        }
    }
    assert!(compared > 0);
    assert!(fails.is_empty(), "{}", fails.join("\n\n"));
}
