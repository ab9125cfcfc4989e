//! Every environment variable kiln reads, declared once with its meaning.
//!
//! The binary reads the environment in one place ([`crate::settings`]) and
//! passes values down. A few variables are read where they are used,
//! because the reader owns their meaning: Packer's template functions
//! (`env()`, `pathexpand`), the boot-command typist (`PACKER_KEY_INTERVAL`,
//! as Packer's), the `maas-upload` post-processor (`MAAS_API_KEY`), the
//! standard library (`TMPDIR`, `PATH`) and the test fixtures. They are still
//! listed here. `README.md`'s "Environment" table is this table (a test
//! compares them), and a test checks that every variable named in the
//! sources is declared.

/// Who reads a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// Resolved once per command into [`crate::settings::Settings`].
    Settings,
    /// A flag's environment fallback, read by the argument parser.
    Flag,
    /// The library that owns the meaning (named in the doc).
    Library,
    /// The test suite and its fixtures only.
    Tests,
}

/// One environment variable.
#[derive(Clone, Copy, Debug)]
pub struct EnvVar {
    /// The name (`PKR_VAR_name`: a prefix).
    pub name: &'static str,
    pub reader: Reader,
    /// What it means, as the README's table says it (Markdown).
    pub doc: &'static str,
}

pub const PKR_VAR_PREFIX: &str = kiln_template::load::VAR_ENV_PREFIX;
pub const KILN_CACHE_DIR: &str = "KILN_CACHE_DIR";
pub const PACKER_CACHE_DIR: &str = "PACKER_CACHE_DIR";
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
pub const HOME: &str = "HOME";
pub const NO_COLOR: &str = "NO_COLOR";
pub const KILN_ACCEL: &str = "KILN_ACCEL";
pub const MAAS_API_KEY: &str = "MAAS_API_KEY";

/// The table, in the README's order.
pub const ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "PKR_VAR_name",
        reader: Reader::Settings,
        doc: "a variable's value (below var files and `-var`)",
    },
    EnvVar {
        name: KILN_CACHE_DIR,
        reader: Reader::Settings,
        doc: "kiln's cache root: downloads, verification memos, the KVM verdict, the step cache (`steps/`); a relative path is taken from the working directory",
    },
    EnvVar {
        name: PACKER_CACHE_DIR,
        reader: Reader::Settings,
        doc: "the cache root when `KILN_CACHE_DIR` is unset, as Packer reads it (a relative path is taken from the working directory)",
    },
    EnvVar {
        name: XDG_CACHE_HOME,
        reader: Reader::Settings,
        doc: "the cache root is `$XDG_CACHE_HOME/kiln` when neither of the above is set, else `~/.cache/kiln`",
    },
    EnvVar {
        name: HOME,
        reader: Reader::Settings,
        doc: "`~/.cache/kiln`; also `pathexpand` and `~` in template functions",
    },
    EnvVar {
        name: NO_COLOR,
        reader: Reader::Settings,
        doc: "set: no colour in diagnostics and build output",
    },
    EnvVar {
        name: KILN_ACCEL,
        reader: Reader::Flag,
        doc: "`tcg`: the same as `kiln build --accel tcg`",
    },
    EnvVar {
        name: MAAS_API_KEY,
        reader: Reader::Flag,
        doc: "`kiln maas upload --api-key`, and the `maas-upload` post-processor's key when its `api_key` is unset",
    },
    EnvVar {
        name: "PACKER_KEY_INTERVAL",
        reader: Reader::Library,
        doc: "pause between boot-command keys when `boot_key_interval` is unset",
    },
    EnvVar {
        name: "TMPDIR",
        reader: Reader::Library,
        doc: "where temporary files and staged outputs are written (`/tmp`)",
    },
    EnvVar {
        name: "PATH",
        reader: Reader::Library,
        doc: "where `qemu-system-*`, `qemu-img` and the programs preflight checks are found",
    },
    EnvVar {
        name: "KILN_VM_TESTS",
        reader: Reader::Tests,
        doc: "`1` at build time: compile the VM tests in",
    },
    EnvVar {
        name: "KILN_FIXTURE_CACHE",
        reader: Reader::Tests,
        doc: "where the test base image is cached (`~/.cache/kiln/fixtures`)",
    },
];

/// Whether [`crate::settings`] resolves the variable `name`.
pub fn resolved_by_settings(name: &str) -> bool {
    name.starts_with(PKR_VAR_PREFIX)
        || ENV_VARS
            .iter()
            .any(|v| v.reader == Reader::Settings && v.name == name)
}

/// The "Environment:" section of `kiln --help`: the variables a user sets.
pub fn help() -> String {
    let mut out = String::from("Environment:\n");
    for v in ENV_VARS.iter().filter(|v| v.reader != Reader::Tests) {
        out.push_str(&format!("  {:<20} {}\n", v.name, v.doc.replace('`', "")));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// The rows of the README's "### Environment" table.
    fn readme_rows() -> Vec<(String, String)> {
        let text = std::fs::read_to_string(workspace().join("README.md")).unwrap();
        let section = text
            .split("\n### Environment\n")
            .nth(1)
            .expect("README.md has an `### Environment` section");
        section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2) // the header and its rule
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').splitn(2, " | ").collect();
                let name = cells[0].trim().trim_matches('`').to_string();
                (name, cells.get(1).unwrap_or(&"").trim().to_string())
            })
            .collect()
    }

    #[test]
    fn readme_environment_table_is_the_declared_table() {
        let declared: Vec<(String, String)> = ENV_VARS
            .iter()
            .map(|v| (v.name.to_string(), v.doc.to_string()))
            .collect();
        let expected: String = ENV_VARS
            .iter()
            .map(|v| format!("| `{}` | {} |\n", v.name, v.doc))
            .collect();
        assert_eq!(
            readme_rows(),
            declared,
            "README.md's Environment table should read:\n{expected}"
        );
    }

    #[test]
    fn names_are_unique() {
        for (i, v) in ENV_VARS.iter().enumerate() {
            assert!(
                !ENV_VARS[..i].iter().any(|w| w.name == v.name),
                "{} declared twice",
                v.name
            );
        }
    }

    /// Names the sources read: `var("X")`, `var_os("X")`,
    /// `option_env!("X")`, and clap's `env = "X"`.
    fn names_read_in(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for pattern in ["var(\"", "var_os(\"", "option_env!(\"", "env = \""] {
            for (at, _) in text.match_indices(pattern) {
                let rest = &text[at + pattern.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !name.is_empty() && rest[name.len()..].starts_with('"') {
                    out.push(name);
                }
            }
        }
        out
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_variable_the_sources_read_is_declared() {
        // Plumbing between a unit test and the copy of itself it spawns.
        const TEST_PLUMBING: &[&str] = &["KILN_CACHE_TEST_PUBLISH", "KILN_CACHE_TEST_KILL"];
        let mut files = Vec::new();
        for krate in std::fs::read_dir(workspace().join("crates"))
            .unwrap()
            .flatten()
        {
            for sub in ["src", "build.rs"] {
                let path = krate.path().join(sub);
                if path.is_dir() {
                    rust_files(&path, &mut files);
                } else if path.is_file() {
                    files.push(path);
                }
            }
        }
        assert!(files.len() > 50, "found only {} source files", files.len());
        let mut undeclared = Vec::new();
        for file in &files {
            if file.ends_with("kiln/src/env_vars.rs") {
                continue; // this table, and the examples of its own test
            }
            let text = std::fs::read_to_string(file).unwrap();
            for name in names_read_in(&text) {
                let declared = ENV_VARS.iter().any(|v| v.name == name)
                    || name.starts_with(PKR_VAR_PREFIX)
                    || TEST_PLUMBING.contains(&name.as_str());
                if !declared {
                    undeclared.push(format!("{name} ({})", file.display()));
                }
            }
        }
        assert!(
            undeclared.is_empty(),
            "declare these in ENV_VARS and README.md: {undeclared:?}"
        );
    }

    #[test]
    fn names_read_in_finds_each_form() {
        let text =
            r#"std::env::var("A_B") var_os("C") option_env!("D1") #[arg(env = "E")] var(name)"#;
        assert_eq!(names_read_in(text), ["A_B", "C", "D1", "E"]);
    }
}
