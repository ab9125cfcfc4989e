//! Debian's OVMF firmware files.

use std::path::{Path, PathBuf};

use crate::FixtureError;

/// Where Debian's `ovmf` package installs its firmware.
pub const OVMF_DIR: &str = "/usr/share/OVMF";

/// Code and vars file names, preferred first: the 4 MiB builds Debian 12
/// ships, then the older 2 MiB ones.
const PAIRS: [(&str, &str); 2] = [
    ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"),
    ("OVMF_CODE.fd", "OVMF_VARS.fd"),
];

/// A matching pair of OVMF firmware files. Boot with `code` read-only as
/// pflash unit 0 and a writable *copy* of `vars` as unit 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ovmf {
    pub code: PathBuf,
    pub vars: PathBuf,
}

/// Debian's OVMF files: `OVMF_CODE_4M.fd` + `OVMF_VARS_4M.fd`, falling back
/// to the 2 MiB `OVMF_CODE.fd` + `OVMF_VARS.fd`.
pub fn ovmf() -> Result<Ovmf, FixtureError> {
    ovmf_in(Path::new(OVMF_DIR))
}

/// [`ovmf`], looking in `dir` instead of [`OVMF_DIR`].
pub fn ovmf_in(dir: &Path) -> Result<Ovmf, FixtureError> {
    let mut tried = Vec::new();
    for (code, vars) in PAIRS {
        let pair = Ovmf {
            code: dir.join(code),
            vars: dir.join(vars),
        };
        if pair.code.is_file() && pair.vars.is_file() {
            return Ok(pair);
        }
        tried.push(pair.code);
        tried.push(pair.vars);
    }
    Err(FixtureError::OvmfMissing { tried })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(dir: &Path, names: &[&str]) {
        for name in names {
            fs::write(dir.join(name), b"").unwrap();
        }
    }

    #[test]
    fn ovmf_in_prefers_4m_pair() {
        let dir = tempfile::tempdir().unwrap();
        touch(
            dir.path(),
            &[
                "OVMF_CODE.fd",
                "OVMF_VARS.fd",
                "OVMF_CODE_4M.fd",
                "OVMF_VARS_4M.fd",
            ],
        );
        let found = ovmf_in(dir.path()).unwrap();
        assert_eq!(found.code, dir.path().join("OVMF_CODE_4M.fd"));
        assert_eq!(found.vars, dir.path().join("OVMF_VARS_4M.fd"));
    }

    #[test]
    fn ovmf_in_falls_back_to_2m_pair_when_4m_is_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        touch(
            dir.path(),
            &["OVMF_CODE_4M.fd", "OVMF_CODE.fd", "OVMF_VARS.fd"],
        );
        let found = ovmf_in(dir.path()).unwrap();
        assert_eq!(found.code, dir.path().join("OVMF_CODE.fd"));
        assert_eq!(found.vars, dir.path().join("OVMF_VARS.fd"));
    }

    #[test]
    fn ovmf_in_names_every_path_tried_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = ovmf_in(dir.path()).unwrap_err();
        let FixtureError::OvmfMissing { tried } = &err else {
            panic!("unexpected error: {err}");
        };
        assert_eq!(tried.len(), 4);
        let message = err.to_string();
        assert!(message.contains("OVMF_VARS_4M.fd"), "{message}");
        assert!(message.contains("`ovmf` package"), "{message}");
    }
}
