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
