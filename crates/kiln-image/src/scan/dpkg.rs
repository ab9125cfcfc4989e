//! Files unchanged from their Debian package are public: a key in them
//! (cloud-init's example keys in its docs and `cc_ssh.py`) is what every
//! Debian system ships, not a leak of this build. A content finding in such
//! a file is moved to the allowed list; everything else stays a finding.
//!
//! "Unchanged" means: the file's MD5 equals the one in
//! `/var/lib/dpkg/info/<package>.md5sums` (for a `.gz`, the compressed
//! file, as dpkg records it). A `__pycache__/X.cpython-NNN.pyc` counts as
//! unchanged when its source `X.py` is (dpkg does not list the bytecode it
//! compiles at install time). A file not listed, or changed, keeps its
//! findings.

use std::collections::{HashMap, HashSet};

use md5::{Digest, Md5};

/// Rules whose findings may be package content.
pub(crate) const CONTENT_RULES: &[&str] = &[
    "private-key",
    "gcp-service-account",
    "aws-access-key-id",
    "aws-secret-access-key",
    "azure-storage-key",
    "github-token",
    "gitlab-token",
    "slack-token",
    "slack-webhook",
    "stripe-key",
];

/// Whether `bare` is a dpkg md5sums file.
pub(crate) fn is_md5sums(bare: &str) -> bool {
    bare.starts_with("/var/lib/dpkg/info/") && bare.ends_with(".md5sums")
}

/// MD5 as lowercase hex.
pub(crate) fn md5_hex(h: Md5) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// MD5 of `data` as lowercase hex.
pub(crate) fn md5_of(data: &[u8]) -> String {
    let mut h = Md5::new();
    h.update(data);
    md5_hex(h)
}

/// What dpkg says, and the files with content findings.
#[derive(Debug, Default)]
pub(crate) struct Packaged {
    /// `/path` → MD5 hex, from every md5sums file seen.
    sums: HashMap<String, String>,
    /// `/path` → MD5 hex of the files with content findings.
    candidates: HashMap<String, String>,
}

impl Packaged {
    /// Read one md5sums file (`<md5>  <path without leading slash>` lines).
    pub(crate) fn add_md5sums(&mut self, content: &[u8]) {
        for line in String::from_utf8_lossy(content).lines() {
            let Some((sum, path)) = line.split_once("  ") else {
                continue;
            };
            let path = format!("/{}", path.trim_start_matches('/'));
            // Merged /usr: a package may list `lib/x` that lives at `/usr/lib/x`.
            for old in ["/lib/", "/lib64/", "/bin/", "/sbin/"] {
                if path.starts_with(old) {
                    self.sums.insert(format!("/usr{path}"), sum.to_owned());
                }
            }
            self.sums.insert(path, sum.to_owned());
        }
    }

    /// Record the MD5 of a file that has content findings.
    pub(crate) fn candidate(&mut self, path: &str, md5: String) {
        self.candidates.insert(path.to_owned(), md5);
    }

    /// The paths (of the root filesystem) whose content is unchanged from
    /// their package.
    pub(crate) fn unchanged(&self) -> HashSet<String> {
        let mut ok: HashSet<String> = self
            .candidates
            .iter()
            .filter(|(p, m)| self.sums.get(*p) == Some(*m))
            .map(|(p, _)| p.clone())
            .collect();
        for p in self.candidates.keys() {
            if let Some(src) = pyc_source(p)
                && ok.contains(&src)
            {
                ok.insert(p.clone());
            }
        }
        ok
    }
}

/// `/d/__pycache__/X.cpython-311.pyc` → `/d/X.py`.
fn pyc_source(p: &str) -> Option<String> {
    let (dir, name) = p.rsplit_once("/__pycache__/")?;
    let stem = name.strip_suffix(".pyc")?;
    let (module, _tag) = stem.rsplit_once('.')?;
    Some(format!("{dir}/{module}.py"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_files_and_their_bytecode_are_packaged() {
        let mut p = Packaged::default();
        let py = md5_of(b"source");
        p.add_md5sums(
            format!(
                "{py}  usr/lib/python3/m/cc_ssh.py\n{}  usr/share/doc/x.gz\n{}  lib/udev/k\n",
                md5_of(b"doc"),
                md5_of(b"k")
            )
            .as_bytes(),
        );
        p.candidate("/usr/lib/python3/m/cc_ssh.py", py);
        p.candidate(
            "/usr/lib/python3/m/__pycache__/cc_ssh.cpython-311.pyc",
            md5_of(b"bytecode"),
        );
        p.candidate("/usr/share/doc/x.gz", md5_of(b"changed"));
        p.candidate("/usr/lib/udev/k", md5_of(b"k"));
        p.candidate("/home/admin/.ssh/id_rsa", md5_of(b"key"));
        let mut ok: Vec<_> = p.unchanged().into_iter().collect();
        ok.sort();
        assert_eq!(
            ok,
            vec![
                "/usr/lib/python3/m/__pycache__/cc_ssh.cpython-311.pyc",
                "/usr/lib/python3/m/cc_ssh.py",
                "/usr/lib/udev/k",
            ]
        );
    }
}
