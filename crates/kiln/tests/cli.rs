//! The command line, as a user sees it: every case records the exit
//! status, standard output and standard error in a snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn template_tests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kiln-template/tests")
}

/// Run kiln in `crates/kiln-template/tests` with a clean environment.
fn kiln(args: &[&str]) -> String {
    kiln_env(args, &[])
}

fn kiln_env(args: &[&str], env: &[(&str, &str)]) -> String {
    kiln_in(&template_tests(), args, env)
}

/// Run kiln inside the packer-maas-style directory, as its users do
/// (`packer build .`: scripts are relative to the working directory).
fn kiln_maas(args: &[&str]) -> String {
    kiln_in(
        &template_tests().join("fixtures/packer-maas-style"),
        args,
        &[],
    )
}

fn kiln_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::cargo_bin("kiln").unwrap();
    cmd.current_dir(dir)
        .env_clear()
        .env("NO_COLOR", "1")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

macro_rules! snap {
    ($name:expr, $out:expr) => {
        insta::assert_snapshot!($name, $out)
    };
}

#[test]
fn validate_packer_maas_style() {
    snap!("validate_packer_maas_style", kiln_maas(&["validate", "."]));
}

#[test]
fn validate_accepts_packer_single_dash_flags() {
    snap!(
        "validate_single_dash",
        kiln_maas(&[
            "validate",
            "-var",
            "memory=1024",
            "-var-file=../../conformance/precedence-ladder/f.pkrvars.hcl",
            "-only",
            "cloudimg.*",
            "."
        ])
    );
}

#[test]
fn inspect_packer_maas_style_json() {
    snap!(
        "inspect_packer_maas_style_json",
        kiln_maas(&["inspect", "--json", "."])
    );
}

#[test]
fn inspect_packer_maas_style_human() {
    snap!(
        "inspect_packer_maas_style_human",
        kiln_maas(&["inspect", "-var", "cpus=4", "."])
    );
}

#[test]
fn validate_reports_all_errors_with_positions() {
    snap!(
        "validate_errors",
        kiln(&["validate", "conformance/errors-reported-together"])
    );
}

#[test]
fn validate_reports_duplicates_naming_both_places() {
    snap!(
        "validate_duplicate_local",
        kiln(&["validate", "conformance/duplicate-local"])
    );
}

#[test]
fn validate_failed_validation_rule() {
    snap!(
        "validate_validation_rule",
        kiln(&[
            "validate",
            "-var-file",
            "conformance/validation-fails/small.pkrvars.hcl",
            "conformance/validation-fails"
        ])
    );
}

#[test]
fn inspect_errors_exit_2() {
    snap!(
        "inspect_errors",
        kiln(&["inspect", "conformance/unknown-reference"])
    );
}

#[test]
fn unknown_cli_variable_suggests_a_name() {
    snap!(
        "validate_unknown_var",
        kiln(&[
            "validate",
            "-var",
            "regoin=x",
            "conformance/undefined-cli-variable"
        ])
    );
}

#[test]
fn malformed_var_flag_is_a_usage_error() {
    snap!(
        "validate_bad_var_flag",
        kiln(&["validate", "-var", "novalue", "fixtures/packer-maas-style"])
    );
}

#[test]
fn warnings_for_undeclared_var_file_names() {
    snap!(
        "validate_warning",
        kiln(&[
            "validate",
            "conformance/undeclared-in-var-file-is-a-warning"
        ])
    );
}

#[test]
fn vars_explain_shows_the_ladder() {
    snap!(
        "vars_explain_ladder",
        kiln_env(
            &[
                "vars",
                "explain",
                "e",
                "-var",
                "e=cli",
                "-var-file",
                "conformance/precedence-ladder/f.pkrvars.hcl",
                "conformance/precedence-ladder"
            ],
            &[("PKR_VAR_e", "env")]
        )
    );
}

#[test]
fn vars_explain_notes_surprising_sort_order() {
    snap!(
        "vars_explain_lexical",
        kiln(&[
            "vars",
            "explain",
            "x",
            "conformance/auto-files-lexical-order"
        ])
    );
}

#[test]
fn vars_explain_hides_sensitive_values() {
    snap!(
        "vars_explain_sensitive",
        kiln(&[
            "vars",
            "explain",
            "var.password",
            "conformance/sensitive-values"
        ])
    );
}

#[test]
fn vars_explain_unknown_name() {
    snap!(
        "vars_explain_unknown",
        kiln(&["vars", "explain", "memroy", "fixtures/packer-maas-style"])
    );
}

#[test]
fn vars_explain_on_a_failing_template_still_shows_the_ladder() {
    snap!(
        "vars_explain_failing",
        kiln(&[
            "vars",
            "explain",
            "size",
            "-var-file",
            "conformance/validation-fails/small.pkrvars.hcl",
            "conformance/validation-fails"
        ])
    );
}

#[test]
fn fmt_check_and_diff() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.pkr.hcl"),
        "variable \"x\" {\ndefault=\"a\"\n  type = string\n}\n",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let out = kiln(&["fmt", "-check", "-diff", path]).replace(path, "DIR");
    snap!("fmt_check_diff", out);
    let out = kiln(&["fmt", path]).replace(path, "DIR");
    snap!("fmt_write", out);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.pkr.hcl")).unwrap(),
        "variable \"x\" {\n  default = \"a\"\n  type    = string\n}\n"
    );
    snap!(
        "fmt_check_clean",
        kiln(&["fmt", "-check", path]).replace(path, "DIR")
    );
}

/// Packer 1.13+ (CHANGELOG GH-13362; `HCL2Formatter.Format(paths)` in
/// hcl2template/formatter.go): `fmt` takes several files and directories.
#[test]
fn fmt_formats_several_paths_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let messy = "variable \"x\" {\ndefault=\"a\"\n}\n";
    for p in [dir.path().join("b.pkr.hcl"), sub.join("a.pkrvars.hcl")] {
        std::fs::write(&p, messy).unwrap();
    }
    let path = dir.path().to_str().unwrap();
    let b = dir.path().join("b.pkr.hcl");
    let out =
        kiln(&["fmt", "-check", b.to_str().unwrap(), sub.to_str().unwrap()]).replace(path, "DIR");
    snap!("fmt_several_paths", out);
    let out = kiln(&["fmt", "-", b.to_str().unwrap()]).replace(path, "DIR");
    snap!("fmt_stdin_with_other_paths", out);
}

/// `kiln fmt` reads files as templates are read: `/dev/zero` and a FIFO
/// named like a template are refused at once instead of read forever.
#[test]
fn fmt_refuses_endless_inputs() {
    snap!("fmt_dev_zero", kiln(&["fmt", "-check", "/dev/zero"]));
    let dir = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("mkfifo")
        .arg(dir.path().join("a.pkr.hcl"))
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let path = dir.path().to_str().unwrap();
    snap!(
        "fmt_fifo_in_directory",
        kiln(&["fmt", "-check", path]).replace(path, "DIR")
    );
}

#[test]
fn help_on_every_command() {
    for args in [
        &["--help"][..],
        &["validate", "--help"],
        &["inspect", "--help"],
        &["vars", "--help"],
        &["vars", "explain", "--help"],
        &["fmt", "--help"],
    ] {
        let name = format!("help_{}", args.join("_").replace("--", ""));
        snap!(name, kiln(args));
    }
}

#[test]
fn missing_path_is_a_usage_error() {
    snap!("validate_no_path", kiln(&["validate"]));
}

#[test]
fn cache_commands_on_a_missing_cache_dir_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexistent").join("x");
    let env = [("KILN_CACHE_DIR", missing.to_str().unwrap())];
    for args in [
        &["cache", "ls"][..],
        &["cache", "ls", "--json"],
        &["cache", "du"],
        &["cache", "prune", "--older-than", "1d"],
    ] {
        let out = kiln_in(dir.path(), args, &env);
        assert!(out.starts_with("exit: 0\n"), "{args:?}: {out}");
        assert!(!out.contains("error"), "{args:?}: {out}");
    }
    assert!(!dir.path().join("nonexistent").exists());
}

#[test]
fn validate_accepts_dev_null_as_customize_script() {
    // packer-maas's Ubuntu templates default `customize_script` to it.
    let dir = template_tests().join("fixtures/packer-maas-style");
    let out = kiln_in(
        &dir,
        &["validate", "-var", "customize_script=/dev/null", "."],
        &[],
    );
    assert_eq!(
        out,
        "exit: 0\n--- stdout\nThe configuration is valid.\n--- stderr\n"
    );
    let out = kiln_in(
        &dir,
        &["validate", "-var", "customize_script=/dev/zero", "."],
        &[],
    );
    assert!(out.starts_with("exit: 1\n"), "{out}");
    // miette wraps the message; both parts are there.
    assert!(out.contains("bad script `/dev/zero`"), "{out}");
    assert!(out.contains("character device that does not end"), "{out}");
}

/// A `null` build whose first `shell-local` provisioner fails, then one
/// that writes `marker`; run from the template's directory.
fn continue_on_error_build(flag: &str) -> (String, bool) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("build.pkr.hcl"),
        format!(
            r#"source "null" "n" {{
  communicator = "none"
}}

build {{
  sources = ["source.null.n"]

  provisioner "shell-local" {{
    inline = ["echo failing on purpose", "exit 3"]
    {flag}
  }}

  provisioner "shell-local" {{
    inline = ["touch marker"]
  }}
}}
"#
        ),
    )
    .unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let out = kiln_in(dir.path(), &["build", "."], &[("PATH", &path)]);
    (out, dir.path().join("marker").exists())
}

/// Packer 1.16.0 (CHANGELOG GH-13674; `ContinueOnErrorProvisioner` in
/// packer/provisioner.go): with `continue_on_error = true` a failed
/// provisioner is a warning and the build goes on. Packer 1.6.6 has no
/// such argument.
#[test]
fn build_continues_past_a_failed_provisioner_with_continue_on_error() {
    let (out, marker) = continue_on_error_build("continue_on_error = true");
    assert!(out.starts_with("exit: 0\n"), "{out}");
    assert!(out.contains("continue_on_error is set"), "{out}");
    assert!(marker, "the second provisioner did not run:\n{out}");
}

#[test]
fn build_stops_at_a_failed_provisioner_without_continue_on_error() {
    for flag in ["", "continue_on_error = false"] {
        let (out, marker) = continue_on_error_build(flag);
        assert!(out.starts_with("exit: 1\n"), "{out}");
        assert!(!marker, "the second provisioner ran:\n{out}");
    }
}

#[test]
fn continue_on_error_must_be_a_bool() {
    let (out, marker) = continue_on_error_build(r#"continue_on_error = "maybe""#);
    assert!(out.starts_with("exit: 2\n"), "{out}");
    assert!(out.contains("incorrect `continue_on_error` type"), "{out}");
    assert!(out.contains("build.pkr.hcl:10:25"), "{out}");
    assert!(!marker);
}
