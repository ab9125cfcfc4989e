//! A booted guest shared by the VM tests that are not about booting.
//!
//! Most VM tests need "a guest that is up and answers SSH", then test what
//! comes after (provisioners, failures, artifacts). Booting one costs a
//! minute or two under TCG; resuming one from the step cache costs a few
//! seconds. So the suite keeps one checkpoint, taken right after `wait_ssh`
//! of the bundled example's source (`examples/cloudimg`: its
//! `variables.pkr.hcl` and `source.pkr.hcl`), in a suite-wide step cache
//! next to the base image:
//!
//! ```text
//! <fixture cache>/shared-guest-<base image key>-v<kiln version>/
//!     cache/steps/        the step cache (`KILN_CACHE_DIR=…/cache`)
//!     work/ tmp/          kiln's working and temporary directories
//! ```
//!
//! [`shared_guest`] (called with the machine-wide [`VmLock`] held) runs
//! `kiln build --until wait_ssh` on the example against that cache: the
//! first time it boots cold and checkpoints; later kiln finds the step
//! cached and stops in a fraction of a second, which also proves the
//! checkpoint still matches the key this kiln, QEMU and firmware compute (a
//! stale one is replaced by a fresh boot, never reused). A test
//! then gets a private copy of the cache ([`SharedGuest::cache_into`]: the
//! entries hard-linked, so its own checkpoints never reach the shared one)
//! and a template made of the example's source and its own `build` block
//! ([`SharedGuest::template_with`]). Its build finds the same key (the key
//! covers the source's shape, not the build's name) and resumes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{FixtureError, VmLock, base_image};

/// The files of the example that make the shared guest what it is.
const SOURCE_FILES: [&str; 2] = ["variables.pkr.hcl", "source.pkr.hcl"];

/// The suite-wide checkpoint of a booted guest, ready to resume.
#[derive(Debug, Clone)]
pub struct SharedGuest {
    /// The suite-wide `KILN_CACHE_DIR` (the step cache is its `steps/`).
    pub cache_dir: PathBuf,
    /// The example whose source the shared guest is.
    pub example: PathBuf,
    /// Whether this call had to boot the guest cold (the first use, or a
    /// stale checkpoint), and how long `kiln build --until wait_ssh` took
    /// (a fraction of a second when the checkpoint is in place).
    pub booted_cold: bool,
    pub took: Duration,
}

/// `examples/cloudimg`, from this crate's manifest directory.
pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cloudimg")
}

/// The shared guest's checkpoint, made or checked now with `kiln` (the
/// binary under test). Holding `lock` is the caller's proof that no other
/// VM runs meanwhile; `limit` bounds the build (a cold boot included).
pub fn shared_guest(
    kiln: &Path,
    lock: &VmLock,
    limit: Duration,
) -> Result<SharedGuest, FixtureError> {
    let _ = lock;
    let base = base_image()?;
    let parent = base.dir.parent().unwrap_or(&base.dir);
    let root = parent.join(format!(
        "shared-guest-{}-v{}",
        base.info.key,
        env!("CARGO_PKG_VERSION")
    ));
    let cache_dir = root.join("cache");
    let work = root.join("work");
    let tmp = root.join("tmp");
    for dir in [&work, &tmp] {
        // What an earlier (maybe killed) run left there is of no use.
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    fs::create_dir_all(&cache_dir).map_err(io_error(&cache_dir))?;
    let example = example_dir();
    let mut cmd = Command::new(kiln);
    cmd.args(["build", "--json", "--until", "wait_ssh", "-var"])
        .arg(format!("base_image={}", base.qcow2.display()))
        .arg(&example)
        .current_dir(&work)
        .env("TMPDIR", &tmp)
        .env("KILN_CACHE_DIR", &cache_dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let (code, stdout, stderr) = run_with_limit(cmd, limit)?;
    let took = started.elapsed();
    // With the checkpoint in place kiln stops at once ("the step is
    // cached"): its key, computed afresh, found the entry. Without it kiln
    // boots, checkpoints and stops.
    let booted_cold = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|e| {
            e["event"] == "step_finished"
                && e["step"] == "run_qemu"
                && e["outcome"]["kind"] == "ran"
        });
    let entries = cache_dir.join("steps/entries");
    let has_entry = fs::read_dir(&entries).is_ok_and(|mut d| d.next().is_some());
    if code != Some(0) || !has_entry {
        return Err(FixtureError::SharedGuest {
            example,
            message: format!(
                "`kiln build --until wait_ssh` exited with {code:?} after {took:.1?}, leaving {} entries in `{}`\nstdout:\n{}\nstderr:\n{}",
                if has_entry { "some" } else { "no" },
                entries.display(),
                tail(&stdout),
                tail(&stderr)
            ),
        });
    }
    Ok(SharedGuest {
        cache_dir,
        example,
        booted_cold,
        took,
    })
}

impl SharedGuest {
    /// Fills `cache_dir` (a test's own `KILN_CACHE_DIR`) with the shared
    /// step cache: the store's secret (the SSH key the guest trusts derives
    /// from it), its file-digest memos, and every entry hard-linked (copied
    /// across file systems). Entries never change once published, so the
    /// links are safe; what the test's build publishes stays in its copy.
    pub fn cache_into(&self, cache_dir: &Path) -> Result<(), FixtureError> {
        let from = self.cache_dir.join("steps");
        let to = cache_dir.join("steps");
        fs::create_dir_all(&to).map_err(io_error(&to))?;
        copy_file(&from.join("secret"), &to.join("secret"))?;
        for dir in ["digests", "entries"] {
            let Ok(read) = fs::read_dir(from.join(dir)) else {
                continue;
            };
            for item in read {
                let item = item.map_err(io_error(&from.join(dir)))?;
                let target = to.join(dir).join(item.file_name());
                if item.path().is_dir() {
                    link_entry(&item.path(), &target)?;
                } else {
                    fs::create_dir_all(to.join(dir)).map_err(io_error(&to.join(dir)))?;
                    copy_file(&item.path(), &target)?;
                }
            }
        }
        Ok(())
    }

    /// A template in `dir` made of the shared guest's source and the files
    /// of `build` (a directory holding `build` blocks that name
    /// `source.qemu.cloudimg`): the build resumes the shared guest.
    pub fn template_with(&self, build: &Path, dir: &Path) -> Result<PathBuf, FixtureError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        for name in SOURCE_FILES {
            copy_file(&self.example.join(name), &dir.join(name))?;
        }
        let read = fs::read_dir(build).map_err(io_error(build))?;
        for item in read {
            let item = item.map_err(io_error(build))?;
            if item.path().is_file() {
                copy_file(&item.path(), &dir.join(item.file_name()))?;
            }
        }
        Ok(dir.to_path_buf())
    }
}

/// An entry directory: its files hard-linked, but `last-used` (its mtime is
/// the entry's LRU stamp, the copy's own).
fn link_entry(from: &Path, to: &Path) -> Result<(), FixtureError> {
    fs::create_dir_all(to).map_err(io_error(to))?;
    for item in fs::read_dir(from).map_err(io_error(from))? {
        let item = item.map_err(io_error(from))?;
        let target = to.join(item.file_name());
        if item.file_name() == "last-used" || fs::hard_link(item.path(), &target).is_err() {
            copy_file(&item.path(), &target)?;
        }
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<(), FixtureError> {
    fs::copy(from, to).map(drop).map_err(io_error(from))
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FixtureError + '_ {
    move |source| FixtureError::Prepare {
        path: path.to_path_buf(),
        source: Arc::new(source),
    }
}

/// Runs `cmd` to its end or kills it after `limit`: exit code, stdout,
/// stderr.
fn run_with_limit(
    mut cmd: Command,
    limit: Duration,
) -> Result<(Option<i32>, String, String), FixtureError> {
    let program = PathBuf::from(cmd.get_program());
    let spawn_error = |source: io::Error| FixtureError::Run {
        program: program.clone(),
        source: Arc::new(source),
    };
    let mut child = cmd.spawn().map_err(spawn_error)?;
    let read_all = |pipe: Option<Box<dyn io::Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read_all(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read_all(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(spawn_error)? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // SIGINT first: kiln's cleanups stop its QEMU.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            thread::sleep(Duration::from_secs(20));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let stdout = stdout.join().unwrap_or_default();
    let mut stderr = stderr.join().unwrap_or_default();
    if status.is_none() {
        stderr.push_str(&format!("\n(killed: still running after {limit:?})"));
    }
    Ok((status.and_then(|s| s.code()), stdout, stderr))
}

/// The last lines of a text, for an error message.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn shared(root: &Path) -> SharedGuest {
        let steps = root.join("cache/steps");
        write(&steps.join("secret"), "s3cret");
        write(&steps.join("digests/abc"), "{}");
        write(&steps.join("entries/k1/disk.qcow2"), "disk");
        write(&steps.join("entries/k1/meta.json"), "{}");
        write(&steps.join("entries/k1/last-used"), "");
        write(&steps.join("tmp/staging/x"), "a running build's");
        SharedGuest {
            cache_dir: root.join("cache"),
            example: example_dir(),
            booted_cold: false,
            took: Duration::ZERO,
        }
    }

    #[test]
    fn cache_into_links_entries_and_copies_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let guest = shared(&dir.path().join("shared"));
        let mine = dir.path().join("mine");
        guest.cache_into(&mine).unwrap();
        let (from, to) = (guest.cache_dir.join("steps"), mine.join("steps"));
        assert_eq!(fs::read_to_string(to.join("secret")).unwrap(), "s3cret");
        assert_eq!(fs::read_to_string(to.join("digests/abc")).unwrap(), "{}");
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        for linked in ["disk.qcow2", "meta.json"] {
            let entry = Path::new("entries/k1").join(linked);
            assert_eq!(ino(&from.join(&entry)), ino(&to.join(&entry)), "{linked}");
        }
        // The LRU stamp is the copy's own; staging dirs are not copied.
        let stamp = Path::new("entries/k1/last-used");
        assert_ne!(ino(&from.join(stamp)), ino(&to.join(stamp)));
        assert!(!to.join("tmp").exists());
    }

    #[test]
    fn template_with_adds_the_examples_source_to_a_build() {
        let dir = tempfile::tempdir().unwrap();
        let guest = shared(&dir.path().join("shared"));
        let build = dir.path().join("build");
        write(&build.join("b.pkr.hcl"), "build {}\n");
        let made = guest
            .template_with(&build, &dir.path().join("template"))
            .unwrap();
        let mut names: Vec<String> = fs::read_dir(&made)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["b.pkr.hcl", "source.pkr.hcl", "variables.pkr.hcl"]);
        let source = fs::read_to_string(made.join("source.pkr.hcl")).unwrap();
        assert!(source.contains("source \"qemu\" \"cloudimg\""), "{source}");
        assert!(!source.contains("build {"), "{source}");
    }
}
