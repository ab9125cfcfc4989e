//! The base image fixture: `fixtures/base-image/build.sh`, run once per
//! process.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::thread;

use serde::Deserialize;

use crate::FixtureError;

/// How many of the script's last stderr lines an error keeps.
const TAIL_LINES: usize = 40;

/// The built (or cached) base image.
///
/// `qcow2` is a GPT disk of 4 GiB virtual size: partition 1 is an ESP with a
/// unified kernel image at `\EFI\BOOT\BOOTX64.EFI` (boots under OVMF with no
/// boot loader), partition 2 the ext4 root labelled [`root_label`]. Never
/// write to these files: put a qcow2 overlay on `qcow2` (`qemu-img create -f
/// qcow2 -b … -F qcow2`) and copy what else a test changes.
///
/// [`root_label`]: BaseImage::root_label
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The cache entry holding everything below.
    pub dir: PathBuf,
    pub qcow2: PathBuf,
    /// The kernel and initramfs inside the image, copied out for direct
    /// (`-kernel`/`-initrd`) and UEFI-shell boots.
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
    /// The command line baked into the unified kernel image.
    pub cmdline: String,
    /// The ext4 root's label: boot with `root=LABEL=<root_label>`.
    pub root_label: String,
    /// cloud-init's default user (passwordless sudo); seeds authorise keys
    /// for it.
    pub default_user: String,
    pub info: BaseImageInfo,
}

/// What `build.sh` records in `info.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct BaseImageInfo {
    /// First 16 hex digits of the recipe's SHA-256: the cache key.
    pub key: String,
    pub suite: String,
    /// `uname -r` of the image's kernel.
    pub kernel: String,
    pub cmdline: String,
    pub root_label: String,
    pub esp_label: String,
    pub default_user: String,
    /// Versions of a few packages (`openssh-server`, `cloud-init`, …).
    pub packages: BTreeMap<String, String>,
    pub disk_virtual_bytes: u64,
    pub qcow2_bytes: u64,
    pub rootfs_files: u64,
    pub rootfs_file_bytes: u64,
    pub build_seconds: u64,
}

/// Path of the build script, from this crate's manifest directory.
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/base-image/build.sh")
}

/// The base image, built on first use.
///
/// Runs `fixtures/base-image/build.sh` (which returns at once when the
/// image for the current recipe is cached, and otherwise needs root and a
/// few minutes) once per process; every call returns the same outcome. The
/// script's progress lines are passed through to stderr.
pub fn base_image() -> Result<BaseImage, FixtureError> {
    static BASE: OnceLock<Result<BaseImage, FixtureError>> = OnceLock::new();
    BASE.get_or_init(|| run_build(&build_script())).clone()
}

/// Runs a build script and loads the directory named by its last stdout
/// line.
fn run_build(script: &Path) -> Result<BaseImage, FixtureError> {
    let spawn_error = |source: io::Error| FixtureError::Spawn {
        script: script.to_path_buf(),
        source: Arc::new(source),
    };
    let mut child = Command::new("bash")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;

    let stderr = child.stderr.take();
    let tail = thread::spawn(move || forward_stderr(stderr));
    let mut stdout = String::new();
    let read = match child.stdout.take() {
        Some(mut out) => out.read_to_string(&mut stdout).map(|_| ()),
        None => Ok(()),
    };
    let status = child.wait().map_err(spawn_error)?;
    let stderr_tail = tail.join().unwrap_or_default();
    read.map_err(spawn_error)?;

    if !status.success() {
        return Err(FixtureError::BuildFailed {
            script: script.to_path_buf(),
            status: status.to_string(),
            stderr_tail,
        });
    }
    let dir = last_line(&stdout).ok_or_else(|| FixtureError::NoResult {
        script: script.to_path_buf(),
    })?;
    BaseImage::load(Path::new(dir))
}

/// Copies the child's stderr to ours line by line; returns the last lines.
fn forward_stderr(stderr: Option<impl Read>) -> String {
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let Some(stderr) = stderr else {
        return String::new();
    };
    let mut ours = io::stderr();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        // Progress only: a closed stderr must not fail the build.
        let _ = writeln!(ours, "{line}");
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    Vec::from(tail).join("\n")
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}

impl BaseImage {
    /// Loads a result directory written by `build.sh`, checking that it is
    /// complete.
    pub fn load(dir: &Path) -> Result<BaseImage, FixtureError> {
        let file = |name: &str| -> Result<PathBuf, FixtureError> {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(FixtureError::Incomplete {
                    dir: dir.to_path_buf(),
                    missing: path,
                })
            }
        };
        let qcow2 = file("base.qcow2")?;
        let vmlinuz = file("vmlinuz")?;
        let initrd = file("initrd.img")?;
        let info_path = file("info.json")?;
        let text = fs::read_to_string(&info_path).map_err(|source| FixtureError::Read {
            path: info_path.clone(),
            source: Arc::new(source),
        })?;
        let info: BaseImageInfo = serde_json::from_str(&text).map_err(|e| FixtureError::Info {
            path: info_path.clone(),
            message: e.to_string(),
        })?;
        Ok(BaseImage {
            dir: dir.to_path_buf(),
            qcow2,
            vmlinuz,
            initrd,
            cmdline: info.cmdline.clone(),
            root_label: info.root_label.clone(),
            default_user: info.default_user.clone(),
            info,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = r#"{
      "key": "0123456789abcdef",
      "suite": "bookworm",
      "kernel": "6.1.0-50-amd64",
      "cmdline": "root=LABEL=kiln-root ro console=ttyS0",
      "root_label": "kiln-root",
      "esp_label": "KILN-ESP",
      "default_user": "debian",
      "packages": { "openssh-server": "1:9.2p1-2+deb12u10", "cloud-init": "22.4.2-1+deb12u4" },
      "disk_virtual_bytes": 4294967296,
      "qcow2_bytes": 830668800,
      "qcow2_compressed": false,
      "rootfs_entries": 19865,
      "rootfs_files": 16075,
      "rootfs_file_bytes": 738815370,
      "build_seconds": 283,
      "step_seconds": { "debootstrap": 254 }
    }"#;

    fn fake_result(files: &[&str], info: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for name in files {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        fs::write(dir.path().join("info.json"), info).unwrap();
        dir
    }

    fn script(body: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("build.sh");
        fs::write(&path, body).unwrap();
        (dir, path)
    }

    #[test]
    fn load_reads_paths_and_info() {
        let dir = fake_result(&["base.qcow2", "vmlinuz", "initrd.img"], INFO);
        let image = BaseImage::load(dir.path()).unwrap();
        assert_eq!(image.qcow2, dir.path().join("base.qcow2"));
        assert_eq!(image.initrd, dir.path().join("initrd.img"));
        assert_eq!(image.root_label, "kiln-root");
        assert_eq!(image.default_user, "debian");
        assert_eq!(image.info.packages["cloud-init"], "22.4.2-1+deb12u4");
        assert_eq!(image.info.disk_virtual_bytes, 4 << 30);
    }

    #[test]
    fn load_names_missing_file() {
        let dir = fake_result(&["base.qcow2", "initrd.img"], INFO);
        let err = BaseImage::load(dir.path()).unwrap_err();
        assert!(
            matches!(&err, FixtureError::Incomplete { missing, .. } if missing.ends_with("vmlinuz")),
            "{err}"
        );
    }

    #[test]
    fn load_rejects_bad_info_with_its_path() {
        let dir = fake_result(&["base.qcow2", "vmlinuz", "initrd.img"], "{}");
        let err = BaseImage::load(dir.path()).unwrap_err();
        assert!(matches!(err, FixtureError::Info { .. }), "{err}");
        assert!(err.to_string().contains("info.json"), "{err}");
    }

    #[test]
    fn run_build_loads_last_stdout_line() {
        let result = fake_result(&["base.qcow2", "vmlinuz", "initrd.img"], INFO);
        let (_dir, path) = script(&format!(
            "echo progress >&2\necho noise\necho '{}'\n",
            result.path().display()
        ));
        let image = run_build(&path).unwrap();
        assert_eq!(image.dir, result.path());
    }

    #[test]
    fn run_build_failure_keeps_status_and_stderr_tail() {
        let (_dir, path) = script("echo 'step debootstrap failed' >&2\nexit 3\n");
        let err = run_build(&path).unwrap_err();
        let FixtureError::BuildFailed {
            status,
            stderr_tail,
            ..
        } = &err
        else {
            panic!("unexpected error: {err}");
        };
        assert!(status.contains('3'), "{status}");
        assert_eq!(stderr_tail, "step debootstrap failed");
        assert!(err.to_string().contains("build.sh"), "{err}");
    }

    #[test]
    fn run_build_without_output_is_an_error() {
        let (_dir, path) = script("exit 0\n");
        assert!(matches!(
            run_build(&path),
            Err(FixtureError::NoResult { .. })
        ));
    }

    #[test]
    fn build_script_is_in_the_repository() {
        assert!(build_script().is_file(), "{}", build_script().display());
    }

    fn build_sh(cache: &Path, args: &[&str]) -> std::process::Output {
        Command::new("bash")
            .arg(build_script())
            .args(args)
            .env("KILN_FIXTURE_CACHE", cache)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    #[test]
    fn build_script_keys_its_entry_by_recipe_under_kiln_fixture_cache() {
        let cache = tempfile::tempdir().unwrap();
        let out = build_sh(cache.path(), &["--print-dir"]);
        assert!(out.status.success(), "{out:?}");
        let dir = String::from_utf8(out.stdout).unwrap();
        let name = Path::new(dir.trim())
            .strip_prefix(cache.path())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let key = name.strip_prefix("base-").unwrap();
        assert_eq!(key.len(), 16, "{name}");
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        // The same recipe, the same key.
        let again = build_sh(cache.path(), &["--print-dir"]);
        assert_eq!(String::from_utf8(again.stdout).unwrap(), dir);
    }

    #[test]
    fn build_script_returns_a_cached_entry_without_building() {
        let cache = tempfile::tempdir().unwrap();
        let out = build_sh(cache.path(), &["--print-dir"]);
        let dir = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        fs::create_dir(&dir).unwrap();
        for name in ["base.qcow2", "vmlinuz", "initrd.img"] {
            fs::write(dir.join(name), b"x").unwrap();
        }
        fs::write(dir.join("info.json"), INFO).unwrap();

        let started = std::time::Instant::now();
        let out = build_sh(cache.path(), &[]);
        let took = started.elapsed();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            dir.to_str().unwrap()
        );
        assert!(took.as_secs() < 5, "cache hit took {took:?}");
        let image = BaseImage::load(&dir).unwrap();
        assert_eq!(image.qcow2, dir.join("base.qcow2"));
        // Nothing else appeared: no lock, no temp directory.
        let names: Vec<_> = fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
