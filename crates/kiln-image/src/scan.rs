//! Leak scan: one pass over every file of an image (qcow2/raw, through the
//! readers) or a tarball (.tar, .tar.gz incl. multi-member, .tar.xz,
//! .tar.zst), looking for private keys, the build public key in
//! `authorized_keys`, SSH host keys, a non-empty machine-id, sensitive
//! values, unlocked accounts whose hash matches a build password, shell
//! histories and cloud-init instance data. Excerpts are redacted: a finding
//! never prints the secret.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use aho_corasick::{AhoCorasick, MatchKind};
use globset::{GlobBuilder, GlobMatcher};
use serde::Serialize;

use crate::error::ImageError;
use crate::fs::{FileSystem, FileType, Run, WalkEntry, walk};
use crate::image::{Disk, FsKind, RootSelector};
use crate::scrub::key_blob;
use crate::tar::{EntryKind, TarError, TarReader};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Hygiene (histories, logs of the build).
    Low,
    /// Identity or state that breaks clones (machine-id, cloud-init data).
    Medium,
    /// A secret.
    High,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Path inside the artifact (`/etc/shadow`; `p1:/EFI/x` for a non-root partition).
    pub path: String,
    /// Rule name (`private-key`, `build-key`, …).
    pub rule: String,
    /// Severity.
    pub severity: Severity,
    /// A redacted excerpt.
    pub excerpt: String,
}

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct ScanConfig {
    /// The build's public key lines (`ssh-ed25519 AAAA… comment`).
    pub build_public_keys: Vec<String>,
    /// Sensitive values whose literal bytes must not appear in any file.
    pub sensitive: Vec<Vec<u8>>,
    /// Passwords used in the build (checked against `/etc/shadow`).
    pub passwords: Vec<String>,
    /// Accepted findings: `(rule, path glob)`; `*` as rule accepts any rule.
    pub allow: Vec<(String, String)>,
}

/// The result of a scan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanReport {
    /// Findings not allowed.
    pub findings: Vec<Finding>,
    /// Findings accepted by the allow-list.
    pub allowed: Vec<Finding>,
    /// Files whose content was scanned.
    pub files: u64,
    /// Bytes of content scanned.
    pub bytes: u64,
    /// Things not scanned and why, fallbacks taken.
    pub notes: Vec<String>,
}

impl ScanReport {
    /// No findings left after the allow-list.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// A scan error.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The image could not be read.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The tarball could not be read.
    #[error("`{path}`: {source}")]
    Tar {
        /// Artifact path.
        path: String,
        /// Cause.
        #[source]
        source: TarError,
    },
    /// The artifact could not be opened.
    #[error("cannot open `{path}`")]
    Open {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// An allow-list glob is invalid.
    #[error("allow-list pattern `{pattern}` is invalid: {reason}")]
    Allow {
        /// The glob.
        pattern: String,
        /// Why.
        reason: String,
    },
}

const KEY_HEADERS: &[&str] = &[
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN DSA PRIVATE KEY-----",
    "-----BEGIN EC PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----",
    "-----BEGIN PGP PRIVATE KEY BLOCK-----",
];

const HISTORIES: &[&str] = &[
    ".bash_history",
    ".zsh_history",
    ".sh_history",
    ".ash_history",
    ".python_history",
    ".mysql_history",
    ".psql_history",
    ".sqlite_history",
    ".node_repl_history",
];

/// Bytes of context after a key header that must look like key material.
const KEY_CONTEXT: usize = 24;
const CHUNK: usize = 1 << 20;

/// A producer of file content: calls the sink with successive pieces.
type Feeder<'a> = dyn FnMut(&mut dyn FnMut(&[u8])) -> Result<(), ScanError> + 'a;
const OVERLAP: usize = 4096;

/// The compiled scanner; feed it files with [`Scanner::file`].
pub struct Scanner {
    ac: AhoCorasick,
    n_keys: usize,
    build_blobs: Vec<Vec<u8>>,
    passwords: Vec<String>,
    allow: Vec<(String, GlobMatcher)>,
    report: ScanReport,
    cloud_reported: bool,
    max_pat: usize,
}

fn looks_like_key_material(after: &[u8]) -> bool {
    // A newline, then base64 (or PEM encryption headers).
    let rest = match after {
        [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] => rest,
        _ => return false,
    };
    if rest.starts_with(b"Proc-Type:")
        || rest.starts_with(b"Comment:")
        || rest.starts_with(b"Version:")
    {
        return true;
    }
    let n = rest.len().min(KEY_CONTEXT);
    n >= 16
        && rest[..n].iter().all(|&c| {
            c.is_ascii_alphanumeric()
                || c == b'+'
                || c == b'/'
                || c == b'='
                || c == b'\n'
                || c == b'\r'
        })
}

fn redact_line(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    let mut it = s.split_whitespace();
    let first = it.next().unwrap_or("");
    format!(
        "{first} {}…[redacted]",
        it.next().map(|b| &b[..b.len().min(8)]).unwrap_or("")
    )
}

fn normalize(path: &[u8]) -> String {
    let s = String::from_utf8_lossy(path);
    let s = s
        .trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/');
    format!("/{s}")
}

/// Check one `/etc/shadow` hash against the passwords: `Some(true)` match,
/// `Some(false)` no match, `None` unknown scheme.
pub fn shadow_hash_matches(hash: &str, passwords: &[String]) -> Option<bool> {
    use sha_crypt::PasswordVerifier as _;
    if hash.starts_with("$6$") || hash.starts_with("$5$") {
        let v = sha_crypt::ShaCrypt::default();
        return Some(
            passwords
                .iter()
                .any(|p| v.verify_password(p.as_bytes(), hash).is_ok()),
        );
    }
    if hash.starts_with("$y$") {
        use yescrypt::PasswordVerifier as _;
        let v = yescrypt::Yescrypt::default();
        return Some(
            passwords
                .iter()
                .any(|p| v.verify_password(p.as_bytes(), hash).is_ok()),
        );
    }
    None
}

impl Scanner {
    /// Compile `cfg`.
    pub fn new(cfg: &ScanConfig) -> Result<Self, ScanError> {
        let mut pats: Vec<Vec<u8>> = KEY_HEADERS.iter().map(|h| h.as_bytes().to_vec()).collect();
        let n_keys = pats.len();
        pats.extend(cfg.sensitive.iter().filter(|s| !s.is_empty()).cloned());
        let max_pat = pats.iter().map(Vec::len).max().unwrap_or(0);
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&pats)
            .map_err(|e| ScanError::Allow {
                pattern: "(sensitive values)".into(),
                reason: e.to_string(),
            })?;
        let mut allow = vec![];
        for (rule, pat) in &cfg.allow {
            let p = format!("/{}", pat.trim_start_matches('/'));
            let g = GlobBuilder::new(&p)
                .literal_separator(false)
                .build()
                .map_err(|e| ScanError::Allow {
                    pattern: pat.clone(),
                    reason: e.to_string(),
                })?;
            allow.push((rule.clone(), g.compile_matcher()));
        }
        Ok(Self {
            ac,
            n_keys,
            build_blobs: cfg
                .build_public_keys
                .iter()
                .map(|k| key_blob(k.as_bytes()))
                .filter(|b| !b.is_empty())
                .collect(),
            passwords: cfg.passwords.clone(),
            allow,
            report: ScanReport::default(),
            cloud_reported: false,
            max_pat,
        })
    }

    fn add(&mut self, path: &str, rule: &str, severity: Severity, excerpt: String) {
        let f = Finding {
            path: path.to_owned(),
            rule: rule.to_owned(),
            severity,
            excerpt,
        };
        let bare = path
            .split_once(":/")
            .map_or(path.to_owned(), |(_, p)| format!("/{p}"));
        if self
            .allow
            .iter()
            .any(|(r, g)| (r == "*" || r == rule) && (g.is_match(path) || g.is_match(&bare)))
        {
            self.report.allowed.push(f);
        } else {
            self.report.findings.push(f);
        }
    }

    /// Add a note to the report.
    pub fn note(&mut self, n: String) {
        self.report.notes.push(n);
    }

    /// Rules that look at the path and kind alone. Returns whether the
    /// content is needed whole (small special files).
    fn path_rules(&mut self, path: &str, bare: &str, ft: FileType, size: u64) -> bool {
        let name = bare.rsplit('/').next().unwrap_or("");
        if (ft == FileType::Regular || ft == FileType::Symlink || ft == FileType::Directory)
            && (bare.starts_with("/var/lib/cloud/instances/")
                || bare.starts_with("/var/lib/cloud/instance/")
                || bare == "/var/lib/cloud/instance")
            && !self.cloud_reported
        {
            self.cloud_reported = true;
            let which = if bare.starts_with("/var/lib/cloud/instances/") {
                "/var/lib/cloud/instances"
            } else {
                "/var/lib/cloud/instance"
            };
            let shown = format!("{}{which}", &path[..path.len() - bare.len()]);
            self.add(
                &shown,
                "cloud-init-instance",
                Severity::Medium,
                "cloud-init instance data present (instance-id, user-data)".into(),
            );
        }
        if ft != FileType::Regular {
            return false;
        }
        if bare.starts_with("/etc/ssh/ssh_host_") && bare.ends_with("_key") {
            self.add(
                path,
                "ssh-host-key",
                Severity::High,
                format!("SSH host private key ({size} bytes, [redacted])"),
            );
        }
        if HISTORIES.contains(&name) && size > 0 {
            self.add(
                path,
                "shell-history",
                Severity::Low,
                format!("shell history, {size} bytes"),
            );
        }
        matches!(
            bare,
            "/etc/machine-id" | "/var/lib/dbus/machine-id" | "/etc/shadow"
        ) || name == "authorized_keys"
            || name == "authorized_keys2"
    }

    fn whole_file_rules(&mut self, path: &str, bare: &str, content: &[u8]) {
        let name = bare.rsplit('/').next().unwrap_or("");
        if bare == "/etc/machine-id" || bare == "/var/lib/dbus/machine-id" {
            let t = String::from_utf8_lossy(content);
            let t = t.trim();
            if !t.is_empty() && t != "uninitialized" {
                self.add(
                    path,
                    "machine-id",
                    Severity::Medium,
                    format!("machine-id set ({} chars, [redacted])", t.len()),
                );
            }
        }
        if (name == "authorized_keys" || name == "authorized_keys2") && !self.build_blobs.is_empty()
        {
            for (i, line) in content.split(|&b| b == b'\n').enumerate() {
                let blob = key_blob(line);
                if !blob.is_empty() && self.build_blobs.contains(&blob) {
                    self.add(
                        path,
                        "build-key",
                        Severity::High,
                        format!("line {}: {}", i + 1, redact_line(line)),
                    );
                }
            }
        }
        if bare == "/etc/shadow" {
            for line in String::from_utf8_lossy(content).lines() {
                let mut f = line.split(':');
                let (user, hash) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
                if user.is_empty() || hash.starts_with('!') || hash.starts_with('*') {
                    continue;
                }
                if hash.is_empty() {
                    self.add(
                        path,
                        "empty-password",
                        Severity::High,
                        format!("account `{user}` has no password and is not locked"),
                    );
                    continue;
                }
                if self.passwords.is_empty() {
                    continue;
                }
                let scheme: String = hash.chars().take(3).collect();
                match shadow_hash_matches(hash, &self.passwords) {
                    Some(true) => self.add(
                        path,
                        "password-hash",
                        Severity::High,
                        format!("account `{user}` is unlocked and its {scheme}… hash matches a build password"),
                    ),
                    Some(false) => {}
                    None => self.note(format!("{path}: account `{user}` uses an unknown hash scheme `{scheme}…`: not checked")),
                }
            }
        }
    }

    /// Scan the content of one file, streamed in pieces by `feed`.
    fn content(&mut self, path: &str, feed: &mut Feeder<'_>) -> Result<(), ScanError> {
        let mut carry: Vec<u8> = Vec::new();
        let mut base: u64 = 0; // absolute offset of carry[0]
        let mut next_from: u64 = 0; // matches starting before this were handled
        let mut hits: Vec<(usize, u64)> = vec![];
        let keep = OVERLAP.max(self.max_pat + KEY_CONTEXT + 2);
        let (ac, n_keys) = (&self.ac, self.n_keys);
        let mut total = 0u64;
        let scan = |buf: &[u8],
                    base: u64,
                    last: bool,
                    next_from: &mut u64,
                    hits: &mut Vec<(usize, u64)>| {
            for m in ac.find_overlapping_iter(buf) {
                let abs = base + m.start() as u64;
                if abs < *next_from {
                    continue;
                }
                let pid = m.pattern().as_usize();
                if pid < n_keys {
                    let after = &buf[m.end()..];
                    if after.len() < KEY_CONTEXT + 2 && !last {
                        continue; // seen again, whole, in the next window
                    }
                    if !looks_like_key_material(after) {
                        continue;
                    }
                }
                if !hits.iter().any(|h| h.1 == abs && h.0 == pid) {
                    hits.push((pid, abs));
                }
            }
            let safe = buf.len().saturating_sub(keep);
            *next_from = (*next_from).max(base + safe as u64);
        };
        let mut head: Vec<u8> = Vec::with_capacity(4);
        feed(&mut |piece: &[u8]| {
            if head.len() < 4 {
                let take = (4 - head.len()).min(piece.len());
                head.extend_from_slice(&piece[..take]);
            }
            total += piece.len() as u64;
            for chunk in piece.chunks(CHUNK) {
                carry.extend_from_slice(chunk);
                scan(&carry, base, false, &mut next_from, &mut hits);
                if carry.len() > keep {
                    let cut = carry.len() - keep;
                    carry.drain(..cut);
                    base += cut as u64;
                }
                if hits.len() > 1000 {
                    break;
                }
            }
        })?;
        scan(&carry, base, true, &mut next_from, &mut hits);
        self.report.files += 1;
        self.report.bytes += total;
        hits.sort_by_key(|h| h.1);
        let mut seen_key = false;
        for (pid, abs) in hits {
            if pid < self.n_keys {
                if !seen_key && head == b"\x7fELF" {
                    // Libraries carry self-test vectors (libgnutls has a GOST key):
                    // told, not failed on.
                    seen_key = true;
                    self.note(format!(
                        "{path}: an ELF binary embeds {} at byte {abs} (a self-test vector?): not counted as a finding",
                        KEY_HEADERS[pid]
                    ));
                    continue;
                }
                if !seen_key {
                    seen_key = true;
                    self.add(
                        path,
                        "private-key",
                        Severity::High,
                        format!(
                            "{} …[key material redacted] at byte {abs}",
                            KEY_HEADERS[pid]
                        ),
                    );
                }
            } else {
                let i = pid - self.n_keys;
                self.add(
                    path,
                    "sensitive-value",
                    Severity::High,
                    format!("sensitive value #{} ([redacted]) at byte {abs}", i + 1),
                );
            }
        }
        Ok(())
    }

    fn fs_entry(
        &mut self,
        fs: &dyn FileSystem,
        prefix: &str,
        we: &WalkEntry,
    ) -> Result<(), ScanError> {
        let bare = normalize(&we.path);
        let path = if prefix.is_empty() {
            bare.clone()
        } else {
            format!("{prefix}:{bare}")
        };
        let inode = &we.inode;
        let whole = self.path_rules(&path, &bare, inode.file_type, inode.size);
        if inode.file_type != FileType::Regular || we.hardlink_to.is_some() {
            return Ok(());
        }
        let runs = fs.runs(inode)?;
        if whole && inode.size <= 16 << 20 {
            let mut buf = vec![0u8; inode.size as usize];
            fs.read_file_at(&runs, &mut buf, 0)?;
            self.whole_file_rules(&path, &bare, &buf);
        }
        let dev = fs.device();
        self.content(&path, &mut |sink| {
            let mut buf = vec![0u8; CHUNK];
            for r in &runs {
                match r {
                    Run::Inline { data, .. } => sink(data),
                    Run::Data { len, physical, .. } => {
                        let mut done = 0u64;
                        while done < *len {
                            let n = (*len - done).min(CHUNK as u64) as usize;
                            dev.read_direct(&mut buf[..n], physical + done)?;
                            sink(&buf[..n]);
                            done += n as u64;
                        }
                    }
                }
            }
            Ok(())
        })
    }

    /// Scan a whole filesystem; paths are prefixed with `prefix:` unless empty.
    pub fn scan_fs(&mut self, fs: &dyn FileSystem, prefix: &str) -> Result<(), ScanError> {
        let mut err = None;
        let r = walk(fs, &mut |we| match self.fs_entry(fs, prefix, we) {
            Ok(()) => Ok(true),
            Err(e) => {
                err = Some(e);
                Err(ImageError::Corrupt {
                    what: String::new(),
                    offset: 0,
                    reason: "stopped".into(),
                })
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        r?;
        Ok(())
    }

    /// Scan a tar stream.
    pub fn scan_tar<R: Read>(&mut self, name: &str, r: R) -> Result<(), ScanError> {
        let terr = |source| ScanError::Tar {
            path: name.to_owned(),
            source,
        };
        let mut tr = TarReader::new(r);
        while let Some(e) = tr.next_entry().map_err(terr)? {
            let bare = normalize(&e.path);
            let ft = match e.kind {
                EntryKind::File => FileType::Regular,
                EntryKind::Directory => FileType::Directory,
                EntryKind::Symlink(_) => FileType::Symlink,
                EntryKind::HardLink(_) => continue,
                EntryKind::CharDevice(..) => FileType::CharDevice,
                EntryKind::BlockDevice(..) => FileType::BlockDevice,
                EntryKind::Fifo => FileType::Fifo,
            };
            let whole = self.path_rules(&bare, &bare, ft, e.size);
            if ft != FileType::Regular {
                continue;
            }
            if whole && e.size <= 16 << 20 {
                let mut content = vec![];
                tr.read_data(&mut |b| {
                    content.extend_from_slice(b);
                    Ok(())
                })
                .map_err(terr)?;
                if let Some(map) = &e.sparse {
                    let mut full = vec![0u8; e.size as usize];
                    let mut p = 0usize;
                    for &(o, l) in map {
                        let (o, l) = (o as usize, l as usize);
                        if o + l <= full.len() && p + l <= content.len() {
                            full[o..o + l].copy_from_slice(&content[p..p + l]);
                        }
                        p += l;
                    }
                    content = full;
                }
                self.whole_file_rules(&bare, &bare, &content);
                self.content(&bare, &mut |sink| {
                    sink(&content);
                    Ok(())
                })?;
            } else {
                self.content(&bare, &mut |sink| {
                    tr.read_data(&mut |b| {
                        sink(b);
                        Ok(())
                    })
                    .map_err(terr)
                })?;
            }
        }
        Ok(())
    }

    /// The report.
    pub fn finish(mut self) -> ScanReport {
        self.report
            .findings
            .sort_by(|a, b| b.severity.cmp(&a.severity).then(a.path.cmp(&b.path)));
        self.report
    }
}

/// The kind of artifact at `path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// A qcow2 image.
    Qcow2,
    /// gzip'd stream (tarball or dd).
    Gzip,
    /// xz stream.
    Xz,
    /// zstd stream.
    Zstd,
    /// Uncompressed tar.
    Tar,
    /// Anything else (raw disk).
    Raw,
}

/// Sniff the kind of an artifact from its first bytes.
pub fn sniff(head: &[u8]) -> ArtifactKind {
    if head.starts_with(b"QFI\xfb") {
        ArtifactKind::Qcow2
    } else if head.starts_with(&[0x1f, 0x8b]) {
        ArtifactKind::Gzip
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        ArtifactKind::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        ArtifactKind::Zstd
    } else if head.len() >= 263 && &head[257..262] == b"ustar" {
        ArtifactKind::Tar
    } else {
        ArtifactKind::Raw
    }
}

/// Scan a disk image (all ext4 and vfat partitions).
pub fn scan_image(path: &Path, cfg: &ScanConfig) -> Result<ScanReport, ScanError> {
    let disk = Disk::open(path)?;
    let mut s = Scanner::new(cfg)?;
    for n in disk.notes() {
        s.note(n.clone());
    }
    let root = disk.find_root(&RootSelector::Auto).ok();
    for p in disk.partitions() {
        let kind = disk.fs_kind(p.number)?;
        match kind {
            FsKind::Ext4 | FsKind::Vfat => {
                let fs = disk.open_fs(p.number)?;
                for n in fs.notes() {
                    s.note(n);
                }
                let prefix = if Some(p.number) == root {
                    String::new()
                } else {
                    format!("p{}", p.number)
                };
                s.scan_fs(&*fs, &prefix)?;
            }
            other => s.note(format!(
                "partition {} ({}) not scanned: filesystem not supported yet",
                p.number,
                other.name()
            )),
        }
    }
    Ok(s.finish())
}

/// Scan a tarball (plain, gzip incl. multi-member, xz, zstd).
pub fn scan_tarball(path: &Path, cfg: &ScanConfig) -> Result<ScanReport, ScanError> {
    let open = || {
        File::open(path).map_err(|source| ScanError::Open {
            path: path.display().to_string(),
            source,
        })
    };
    let mut head = vec![0u8; 512];
    let n = read_up_to(&mut open()?, &mut head).map_err(|source| ScanError::Open {
        path: path.display().to_string(),
        source,
    })?;
    head.truncate(n);
    let name = path.display().to_string();
    let mut s = Scanner::new(cfg)?;
    let f = BufReader::with_capacity(1 << 20, open()?);
    match sniff(&head) {
        ArtifactKind::Gzip => s.scan_tar(&name, flate2::read::MultiGzDecoder::new(f))?,
        ArtifactKind::Xz => s.scan_tar(&name, liblzma::read::XzDecoder::new_multi_decoder(f))?,
        ArtifactKind::Zstd => {
            let d =
                zstd::stream::read::Decoder::with_buffer(f).map_err(|source| ScanError::Open {
                    path: name.clone(),
                    source,
                })?;
            s.scan_tar(&name, d)?
        }
        _ => s.scan_tar(&name, f)?,
    }
    Ok(s.finish())
}

/// Scan an artifact of any supported kind (image or tarball).
pub fn scan_path(path: &Path, cfg: &ScanConfig) -> Result<ScanReport, ScanError> {
    let mut head = vec![0u8; 512];
    let n = read_up_to(
        &mut File::open(path).map_err(|source| ScanError::Open {
            path: path.display().to_string(),
            source,
        })?,
        &mut head,
    )
    .map_err(|source| ScanError::Open {
        path: path.display().to_string(),
        source,
    })?;
    head.truncate(n);
    match sniff(&head) {
        ArtifactKind::Qcow2 | ArtifactKind::Raw => scan_image(path, cfg),
        _ => scan_tarball(path, cfg),
    }
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::{EntryHeader, TarWriter};

    fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new());
        for (p, d) in files {
            let mut h = EntryHeader::new(p.as_bytes(), EntryKind::File);
            h.size = d.len() as u64;
            w.append(&h, d).unwrap();
        }
        w.finish().unwrap()
    }

    const KEY: &[u8] = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n";

    fn scan(files: &[(&str, &[u8])], cfg: &ScanConfig) -> ScanReport {
        let t = tarball(files);
        let mut s = Scanner::new(cfg).unwrap();
        s.scan_tar("t", &t[..]).unwrap();
        s.finish()
    }

    fn rules(r: &ScanReport) -> Vec<(String, String)> {
        let mut v: Vec<_> = r
            .findings
            .iter()
            .map(|f| (f.rule.clone(), f.path.clone()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn every_finding_kind_is_reported_redacted() {
        let hash = {
            use sha_crypt::PasswordHasher as _;
            sha_crypt::ShaCrypt::default()
                .hash_password(b"hunter2")
                .unwrap()
                .to_string()
        };
        let shadow = format!(
            "root:*:19000:0:99999:7:::\ndebian:{hash}:19000:0:99999:7:::\nlocked:!{hash}:1::::::\n"
        );
        let mut big = vec![b'x'; 3 << 20];
        big.extend_from_slice(b"TOPSECRET-value");
        big.extend(vec![b'y'; 100]);
        let cfg = ScanConfig {
            build_public_keys: vec!["ssh-ed25519 AAAAC3buildkey kiln@build".into()],
            sensitive: vec![b"TOPSECRET-value".to_vec(), b"proxy-pass".to_vec()],
            passwords: vec!["hunter2".into()],
            allow: vec![],
        };
        let r = scan(
            &[
                ("./home/u/.ssh/id_ed25519", KEY),
                (
                    "./root/.ssh/authorized_keys",
                    b"ssh-rsa AAAAother x\nssh-ed25519 AAAAC3buildkey other-comment\n",
                ),
                ("./etc/ssh/ssh_host_ed25519_key", b"k"),
                ("./etc/machine-id", b"0123456789abcdef0123456789abcdef\n"),
                ("./var/lib/dbus/machine-id", b""),
                ("./srv/big.bin", &big),
                (
                    "./etc/apt/apt.conf.d/proxy",
                    b"Acquire::http::Proxy \"http://u:proxy-pass@h\";",
                ),
                ("./etc/shadow", shadow.as_bytes()),
                ("./root/.bash_history", b"ls\n"),
                (
                    "./var/lib/cloud/instances/i-1/user-data.txt",
                    b"#cloud-config\n",
                ),
            ],
            &cfg,
        );
        assert_eq!(
            rules(&r),
            vec![
                ("build-key".into(), "/root/.ssh/authorized_keys".into()),
                (
                    "cloud-init-instance".into(),
                    "/var/lib/cloud/instances".into()
                ),
                ("machine-id".into(), "/etc/machine-id".into()),
                ("password-hash".into(), "/etc/shadow".into()),
                ("private-key".into(), "/home/u/.ssh/id_ed25519".into()),
                ("sensitive-value".into(), "/etc/apt/apt.conf.d/proxy".into()),
                ("sensitive-value".into(), "/srv/big.bin".into()),
                ("shell-history".into(), "/root/.bash_history".into()),
                (
                    "ssh-host-key".into(),
                    "/etc/ssh/ssh_host_ed25519_key".into()
                ),
            ]
        );
        let json = serde_json::to_string(&r.findings).unwrap();
        for secret in [
            "TOPSECRET",
            "proxy-pass",
            "buildkey",
            "b3BlbnNz",
            "0123456789abcdef",
            "hunter2",
            &hash[4..20],
        ] {
            assert!(!json.contains(secret), "{secret} leaked in {json}");
        }
        assert!(json.contains(&format!("at byte {}", 3 << 20)), "{json}");
    }

    #[test]
    fn key_headers_in_binaries_are_not_keys() {
        let bin =
            b"\0\0-----BEGIN OPENSSH PRIVATE KEY-----\n\0-----END OPENSSH PRIVATE KEY-----\n\0";
        let r = scan(&[("./usr/bin/ssh-keygen", bin)], &ScanConfig::default());
        assert!(r.is_clean(), "{:?}", r.findings);
    }

    #[test]
    fn keys_inside_elf_binaries_are_notes() {
        let mut elf = b"\x7fELF\x02\x01".to_vec();
        elf.extend_from_slice(KEY);
        let r = scan(
            &[("./usr/lib/libgnutls.so.30", &elf)],
            &ScanConfig::default(),
        );
        assert!(r.is_clean(), "{:?}", r.findings);
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("libgnutls") && n.contains("ELF")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn key_split_across_chunks_is_found_once() {
        let mut d = vec![b'a'; CHUNK - 10];
        d.extend_from_slice(KEY);
        d.extend(vec![b'b'; CHUNK]);
        d.extend_from_slice(KEY);
        let r = scan(&[("./x", &d)], &ScanConfig::default());
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
        assert!(
            r.findings[0]
                .excerpt
                .contains(&format!("at byte {}", CHUNK - 10))
        );
    }

    #[test]
    fn allow_list_moves_findings_aside() {
        let cfg = ScanConfig {
            allow: vec![("private-key".into(), "/etc/ssl/private/*".into())],
            ..Default::default()
        };
        let r = scan(
            &[("./etc/ssl/private/snakeoil.key", KEY), ("./root/k", KEY)],
            &cfg,
        );
        assert_eq!(rules(&r), vec![("private-key".into(), "/root/k".into())]);
        assert_eq!(r.allowed.len(), 1);
    }

    #[test]
    fn unknown_hash_scheme_is_noted_not_silently_skipped() {
        let cfg = ScanConfig {
            passwords: vec!["x".into()],
            ..Default::default()
        };
        let r = scan(&[("./etc/shadow", b"u:$1$abc$def:1::::::\n")], &cfg);
        assert!(r.is_clean());
        assert!(
            r.notes.iter().any(|n| n.contains("unknown hash scheme")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn non_tarball_is_a_clear_error() {
        let mut s = Scanner::new(&ScanConfig::default()).unwrap();
        let e = s.scan_tar("junk", &[1u8; 4096][..]).unwrap_err();
        assert!(e.to_string().contains("not a valid tar"), "{e}");
    }
}
