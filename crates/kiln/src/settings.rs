//! The settings of one command, resolved once from the environment and
//! defaults (in the manner of uv's `settings.rs`) and passed down: neither
//! the commands nor the crates below them read these variables themselves.
//! [`crate::env_vars`] declares every variable kiln reads.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::env_vars::{
    HOME, KILN_CACHE_DIR, NO_COLOR, PACKER_CACHE_DIR, PKR_VAR_PREFIX, XDG_CACHE_HOME,
    resolved_by_settings,
};

/// The variables kiln resolves, read from the process once.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    vars: HashMap<String, OsString>,
}

impl Environment {
    /// This process's environment: the variables [`Settings`] resolves and
    /// every `PKR_VAR_*`. The one place the binary reads the environment.
    pub fn from_process() -> Environment {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
            .filter(|(k, _)| resolved_by_settings(k))
            .collect();
        Environment { vars }
    }

    /// An environment given as pairs (tests).
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Environment {
        Environment {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), OsString::from(v)))
                .collect(),
        }
    }

    /// A variable's value; set but empty counts as unset.
    fn get(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .get(name)
            .map(OsString::as_os_str)
            .filter(|v| !v.is_empty())
    }
}

/// What every command of this process works with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The working directory: relative paths of the template and of the
    /// cache variables resolve against it.
    pub cwd: PathBuf,
    /// kiln's cache root: downloads (`downloads/`), verification memos
    /// (`verified/`), the KVM verdict and QEMU's answers, and the step
    /// cache (`steps/`). One root, so none of them can drift apart.
    pub cache_root: PathBuf,
    /// `PKR_VAR_name` values, by variable name with the prefix kept (what
    /// the template loader expects).
    pub pkr_vars: Vec<(String, String)>,
    /// `NO_COLOR` is unset.
    pub color: bool,
}

impl Settings {
    /// Resolve from `env`, with `cwd` as the working directory.
    pub fn resolve(env: &Environment, cwd: PathBuf) -> Settings {
        let mut pkr_vars: Vec<(String, String)> = env
            .vars
            .iter()
            .filter(|(k, _)| k.starts_with(PKR_VAR_PREFIX))
            .filter_map(|(k, v)| Some((k.clone(), v.to_str()?.to_string())))
            .collect();
        pkr_vars.sort();
        Settings {
            cache_root: cache_root(env, &cwd),
            pkr_vars,
            color: !env.vars.contains_key(NO_COLOR),
            cwd,
        }
    }

    /// This process's settings.
    pub fn from_process() -> Settings {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Settings::resolve(&Environment::from_process(), cwd)
    }

    /// The step cache's store, under the cache root.
    pub fn step_cache_root(&self) -> PathBuf {
        kiln_build::cache::root_in(&self.cache_root)
    }
}

/// `KILN_CACHE_DIR`, else `PACKER_CACHE_DIR` (relative to `cwd`, as Packer
/// takes it), else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`, else
/// `kiln-cache` in the temporary directory.
fn cache_root(env: &Environment, cwd: &Path) -> PathBuf {
    if let Some(dir) = env
        .get(KILN_CACHE_DIR)
        .or_else(|| env.get(PACKER_CACHE_DIR))
    {
        return cwd.join(dir);
    }
    if let Some(dir) = env.get(XDG_CACHE_HOME) {
        return cwd.join(dir).join("kiln");
    }
    match env.get(HOME) {
        Some(home) => Path::new(home).join(".cache").join("kiln"),
        None => std::env::temp_dir().join("kiln-cache"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(pairs: &[(&str, &str)]) -> Settings {
        Settings::resolve(&Environment::from_pairs(pairs), PathBuf::from("/work/t"))
    }

    #[test]
    fn packer_cache_dir_moves_downloads_the_step_cache_and_the_probe_together() {
        let s = resolve(&[("PACKER_CACHE_DIR", "/srv/pc"), ("HOME", "/home/u")]);
        assert_eq!(s.cache_root, Path::new("/srv/pc"));
        assert_eq!(s.step_cache_root(), Path::new("/srv/pc/steps"));
        // What `kiln build` hands the engine (downloads under `downloads/`)
        // and the preflight (the KVM verdict, QEMU's answers).
        let probe = kiln_qemu::accel::ProbeOptions::cached_in(&s.cache_root);
        assert_eq!(probe.cache_dir.as_deref(), Some(Path::new("/srv/pc")));
    }

    #[test]
    fn kiln_cache_dir_wins_over_packer_cache_dir() {
        let s = resolve(&[
            ("KILN_CACHE_DIR", "/k"),
            ("PACKER_CACHE_DIR", "/p"),
            ("XDG_CACHE_HOME", "/x"),
        ]);
        assert_eq!(s.cache_root, Path::new("/k"));
        assert_eq!(s.step_cache_root(), Path::new("/k/steps"));
    }

    #[test]
    fn a_relative_cache_dir_is_taken_from_the_working_directory() {
        let s = resolve(&[("PACKER_CACHE_DIR", "packer_cache")]);
        assert_eq!(s.cache_root, Path::new("/work/t/packer_cache"));
    }

    #[test]
    fn without_cache_variables_the_root_is_the_users_cache() {
        let s = resolve(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/home/u")]);
        assert_eq!(s.cache_root, Path::new("/x/kiln"));
        let s = resolve(&[("HOME", "/home/u"), ("KILN_CACHE_DIR", "")]);
        assert_eq!(s.cache_root, Path::new("/home/u/.cache/kiln"));
        assert!(s.step_cache_root().ends_with("steps"));
    }

    #[test]
    fn pkr_vars_and_no_color_are_resolved() {
        let s = resolve(&[("PKR_VAR_b", "2"), ("PKR_VAR_a", "1"), ("OTHER", "x")]);
        assert_eq!(
            s.pkr_vars,
            [
                ("PKR_VAR_a".to_string(), "1".to_string()),
                ("PKR_VAR_b".to_string(), "2".to_string())
            ]
        );
        assert!(s.color);
        assert!(!resolve(&[("NO_COLOR", "")]).color);
    }
}
