//! Leak scan: one pass over every file of an image (qcow2/raw, through the
//! readers; a bare ext4/vfat filesystem; a gzip- or xz-compressed raw disk)
//! or a tarball (.tar, .tar.gz incl. multi-member, .tar.xz, .tar.zst),
//! looking for private keys, cloud and API tokens, the build public key in
//! `authorized_keys`, SSH host keys, a non-empty machine-id, sensitive
//! values, unlocked accounts whose hash matches a build password, shell
//! histories and cloud-init instance data. Every rule is listed in
//! [`rules::RULES`]. Excerpts are redacted: a finding never prints the
//! secret.
//!
//! What the content rules see: each file's bytes, each extended attribute's
//! value, and the decompressed content of `.gz`/`.xz` files (found by their
//! magic, not their name) up to [`DECOMPRESS_LIMIT`] bytes.
//!
//! The verdict is honest: an artifact of which nothing, or only a part, could
//! be read is an error ([`ScanError::Unreadable`]), never a clean report.

use std::io::{self, Read};

use aho_corasick::{AhoCorasick, MatchKind};
use globset::{GlobBuilder, GlobMatcher};
use serde::Serialize;

use crate::error::ImageError;
use crate::fs::{FileSystem, FileType, Run, WalkEntry, walk_with};
use crate::scrub::key_blob;
use crate::tar::{EntryKind, TarError, TarReader};

mod dpkg;
pub mod rules;
mod target;

pub use rules::{RULES, Rule, parse_allow};
pub use target::{ArtifactKind, scan_image, scan_path, scan_tarball, sniff};

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
    /// An allow-list entry names a rule the scan does not have.
    #[error("allow-list entry `{entry}`: unknown rule `{rule}`")]
    UnknownRule {
        /// The entry as given.
        entry: String,
        /// The rule part.
        rule: String,
    },
    /// Nothing, or only a part, of the artifact could be read: the scan
    /// cannot say it is clean.
    #[error("`{path}`: {reason}")]
    Unreadable {
        /// Artifact path.
        path: String,
        /// What could not be read, and why.
        reason: String,
    },
    /// A compressed artifact could not be decompressed to its end.
    #[error("`{path}`: cannot decompress ({format}) past byte {offset} of the decompressed stream")]
    Decompress {
        /// Artifact path.
        path: String,
        /// `gzip`, `xz`, `zstd`.
        format: &'static str,
        /// Decompressed bytes produced before the failure.
        offset: u64,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The temporary file for a decompressed disk could not be written.
    #[error("cannot write the decompressed copy of `{path}` to a temporary file in `{dir}`")]
    Temp {
        /// Artifact path.
        path: String,
        /// The temporary directory.
        dir: String,
        /// Cause.
        #[source]
        source: io::Error,
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

/// Bytes of context after a key header that must look like key material
/// (a line break, `\n` escaped in JSON, up to 32 bytes of YAML indentation,
/// then 16 of base64).
const KEY_CONTEXT: usize = 64;
const CHUNK: usize = 1 << 20;
/// The most decompressed bytes of one `.gz`/`.xz` file that are scanned;
/// past it, the rest is named in a note.
pub const DECOMPRESS_LIMIT: u64 = 64 << 20;
/// At most this many hits are kept per file.
const MAX_HITS: usize = 1000;

/// A producer of file content: calls the sink with successive pieces.
type Feeder<'a> = dyn FnMut(&mut dyn FnMut(&[u8])) -> Result<(), ScanError> + 'a;
const OVERLAP: usize = 4096;

/// What an automaton pattern stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pat {
    /// `KEY_HEADERS[i]`.
    Key(usize),
    /// The base64 of `KEY_HEADERS[i]`.
    Key64(usize),
    /// `rules::TOKENS[i]`.
    Token(usize),
    /// `"service_account"` (GCP key files).
    ServiceAccount,
    /// `ScanConfig::sensitive[i]`.
    Sensitive(usize),
}

impl Pat {
    /// Bytes needed after the pattern to judge a hit.
    fn context(self) -> usize {
        match self {
            Pat::Key(_) => KEY_CONTEXT + 4,
            Pat::Token(_) => rules::TOKEN_CONTEXT,
            _ => 0,
        }
    }
}

/// One hit in a file: what, where, and for tokens the secret's length and
/// whether it is a documented example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hit {
    pat: Pat,
    at: u64,
    example: bool,
}

/// Where the bytes handed to [`Scanner::content`] come from.
#[derive(Debug, Clone, Copy)]
enum Origin<'a> {
    /// The file's content.
    File,
    /// The value of an extended attribute.
    Xattr(&'a str),
    /// The decompressed content of the file.
    Decompressed(&'static str),
}

impl Origin<'_> {
    fn suffix(&self) -> String {
        match self {
            Origin::File => String::new(),
            Origin::Xattr(n) => format!(" of xattr `{n}`"),
            Origin::Decompressed(f) => format!(" of the {f}-decompressed content"),
        }
    }
}

/// A compression found by its magic at the start of a file.
fn compression(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Some("gzip")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else {
        None
    }
}

/// The compiled scanner; feed it files with [`Scanner::scan_fs`] or
/// [`Scanner::scan_tar`].
pub struct Scanner {
    ac: AhoCorasick,
    sensitive: Option<AhoCorasick>,
    n_builtin: usize,
    /// A reusable read buffer (allocating one per file costs more than the search).
    scratch: Vec<u8>,
    /// dpkg's checksums and the files with content findings.
    packaged: dpkg::Packaged,
    pats: Vec<Pat>,
    build_blobs: Vec<Vec<u8>>,
    passwords: Vec<String>,
    allow: Vec<(String, GlobMatcher)>,
    report: ScanReport,
    cloud_reported: bool,
    max_pat: usize,
}

/// Judge one automaton match at `start..end` of `buf` (whose first byte is
/// at absolute offset `base`) and keep it as a hit if it is one.
#[allow(clippy::too_many_arguments)]
fn consider(
    buf: &[u8],
    base: u64,
    last: bool,
    next_from: u64,
    hits: &mut Vec<Hit>,
    start: usize,
    end: usize,
    pat: Pat,
) {
    let abs = base + start as u64;
    if abs < next_from {
        return;
    }
    let after = &buf[end..];
    if after.len() < pat.context() && !last {
        return; // seen again, whole, in the next window
    }
    let mut example = false;
    match pat {
        Pat::Key(_) if !looks_like_key_material(after) => return,
        Pat::Token(i) => {
            let t = &rules::TOKENS[i];
            let before = start.checked_sub(1).map(|p| buf[p]);
            let Some(body) = rules::check_token(t, before, after) else {
                return;
            };
            let whole = if body.start == 0 {
                &buf[start..end + body.len]
            } else {
                &after[body.start..body.start + body.len]
            };
            example = rules::AWS_EXAMPLES.contains(&whole);
        }
        _ => {}
    }
    if hits.len() < MAX_HITS && !hits.iter().any(|h| h.at == abs && h.pat == pat) {
        hits.push(Hit {
            pat,
            at: abs,
            example,
        });
    }
}

fn looks_like_key_material(after: &[u8]) -> bool {
    // A line break (raw or `\n`-escaped as in JSON), optional indentation
    // (YAML block scalars), then base64 or PEM encryption headers.
    let rest = match after {
        [b'\r', b'\n', rest @ ..]
        | [b'\n', rest @ ..]
        | [b'\\', b'r', b'\\', b'n', rest @ ..]
        | [b'\\', b'n', rest @ ..] => rest,
        _ => return false,
    };
    let indent = rest
        .iter()
        .take(32)
        .take_while(|&&c| c == b' ' || c == b'\t')
        .count();
    let rest = &rest[indent..];
    if rest.starts_with(b"Proc-Type:")
        || rest.starts_with(b"Comment:")
        || rest.starts_with(b"Version:")
    {
        return true;
    }
    rest.len() >= 16
        && rest[..16].iter().all(|&c| {
            c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=' || c == b'\\'
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
        let mut pats = vec![];
        let mut bytes: Vec<Vec<u8>> = vec![];
        for (i, h) in KEY_HEADERS.iter().enumerate() {
            pats.push(Pat::Key(i));
            bytes.push(h.as_bytes().to_vec());
            pats.push(Pat::Key64(i));
            bytes.push(rules::base64_prefix(h).into_bytes());
        }
        for (i, t) in rules::TOKENS.iter().enumerate() {
            pats.push(Pat::Token(i));
            bytes.push(t.prefix.as_bytes().to_vec());
        }
        pats.push(Pat::ServiceAccount);
        bytes.push(b"\"service_account\"".to_vec());
        // The built-in patterns never overlap in a way that matters: one
        // leftmost-first pass, which lets aho-corasick use its SIMD prefilter.
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&bytes)
            .map_err(|e| ScanError::Allow {
                pattern: "(built-in patterns)".into(),
                reason: e.to_string(),
            })?;
        let mut max_pat = bytes.iter().map(Vec::len).max().unwrap_or(0);
        // Sensitive values are anything: their own automaton, overlapping.
        let mut sens = vec![];
        for (i, s) in cfg.sensitive.iter().enumerate() {
            if !s.is_empty() {
                pats.push(Pat::Sensitive(i));
                sens.push(s.clone());
            }
        }
        max_pat = max_pat.max(sens.iter().map(Vec::len).max().unwrap_or(0));
        let sensitive = if sens.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&sens)
                    .map_err(|e| ScanError::Allow {
                        pattern: "(sensitive values)".into(),
                        reason: e.to_string(),
                    })?,
            )
        };
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
            sensitive,
            n_builtin: bytes.len(),
            pats,
            scratch: vec![],
            packaged: dpkg::Packaged::default(),
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

    /// Whether findings from index `from` on include a content finding of
    /// `path` in the root filesystem (one that may be package content).
    fn content_findings_since(&self, from: usize, path: &str) -> bool {
        !path.contains(":/")
            && self.report.findings[from..]
                .iter()
                .any(|f| f.path == path && dpkg::CONTENT_RULES.contains(&f.rule.as_str()))
    }

    /// The reusable read buffer, [`CHUNK`] bytes; put it back when done.
    fn take_scratch(&mut self) -> Vec<u8> {
        let mut b = std::mem::take(&mut self.scratch);
        b.resize(CHUNK, 0);
        b
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
        if crate::traces::SHELL_HISTORIES.contains(&name) && size > 0 {
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
            || dpkg::is_md5sums(bare)
    }

    fn whole_file_rules(&mut self, path: &str, bare: &str, content: &[u8]) {
        let name = bare.rsplit('/').next().unwrap_or("");
        if path == bare && dpkg::is_md5sums(bare) {
            self.packaged.add_md5sums(content);
        }
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

    /// Scan bytes streamed in pieces by `feed`: a file's content, an xattr
    /// value or a decompressed stream (`origin`).
    fn content(
        &mut self,
        path: &str,
        origin: Origin<'_>,
        feed: &mut Feeder<'_>,
    ) -> Result<(), ScanError> {
        let mut carry: Vec<u8> = Vec::new();
        let mut base: u64 = 0; // absolute offset of carry[0]
        let mut next_from: u64 = 0; // matches starting before this were handled
        let mut hits: Vec<Hit> = vec![];
        let keep = OVERLAP.max(self.max_pat + KEY_CONTEXT + 8 + rules::TOKEN_CONTEXT);
        let (ac, sens, pats, nb) = (&self.ac, &self.sensitive, &self.pats, self.n_builtin);
        let mut total = 0u64;
        let scan = |buf: &[u8], base: u64, last: bool, next_from: &mut u64, hits: &mut Vec<Hit>| {
            for m in ac.find_iter(buf) {
                let pat = pats[m.pattern().as_usize()];
                consider(buf, base, last, *next_from, hits, m.start(), m.end(), pat);
            }
            if let Some(sens) = sens {
                for m in sens.find_overlapping_iter(buf) {
                    let pat = pats[nb + m.pattern().as_usize()];
                    consider(buf, base, last, *next_from, hits, m.start(), m.end(), pat);
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
            }
        })?;
        scan(&carry, base, true, &mut next_from, &mut hits);
        if matches!(origin, Origin::File) {
            self.report.files += 1;
        }
        self.report.bytes += total;
        hits.sort_by_key(|h| h.at);
        self.report_hits(path, origin, &head, &hits);
        Ok(())
    }

    /// Turn the hits of one stream into findings and notes.
    fn report_hits(&mut self, path: &str, origin: Origin<'_>, head: &[u8], hits: &[Hit]) {
        let sfx = origin.suffix();
        let service_account = hits.iter().any(|h| h.pat == Pat::ServiceAccount);
        let mut seen_key = false;
        let mut seen_rules: Vec<&str> = vec![];
        for h in hits {
            let abs = h.at;
            match h.pat {
                Pat::Key(i) | Pat::Key64(i) => {
                    if seen_key {
                        continue;
                    }
                    seen_key = true;
                    let how = if matches!(h.pat, Pat::Key64(_)) {
                        "base64 of "
                    } else {
                        ""
                    };
                    if head == b"\x7fELF" {
                        // Libraries carry self-test vectors (libgnutls has a GOST key):
                        // told, not failed on.
                        self.note(format!(
                            "{path}: an ELF binary embeds {how}{} at byte {abs}{sfx} (a self-test vector?): not counted as a finding",
                            KEY_HEADERS[i]
                        ));
                        continue;
                    }
                    if service_account {
                        self.add(
                            path,
                            "gcp-service-account",
                            Severity::High,
                            format!(
                                "\"type\": \"service_account\" with \"private_key\": \"{}…[key material redacted]\" at byte {abs}{sfx}",
                                KEY_HEADERS[i]
                            ),
                        );
                    } else {
                        self.add(
                            path,
                            "private-key",
                            Severity::High,
                            format!(
                                "{how}{} …[key material redacted] at byte {abs}{sfx}",
                                KEY_HEADERS[i]
                            ),
                        );
                    }
                }
                Pat::Token(i) => {
                    let t = &rules::TOKENS[i];
                    if seen_rules.contains(&t.rule) {
                        continue;
                    }
                    seen_rules.push(t.rule);
                    let n = hits
                        .iter()
                        .filter(
                            |o| matches!(o.pat, Pat::Token(j) if rules::TOKENS[j].rule == t.rule),
                        )
                        .count();
                    let more = if n > 1 {
                        format!(" (and {} more)", n - 1)
                    } else {
                        String::new()
                    };
                    let excerpt = format!("{}…[redacted] at byte {abs}{sfx}{more}", t.prefix);
                    if h.example {
                        let f = Finding {
                            path: path.to_owned(),
                            rule: t.rule.to_owned(),
                            severity: Severity::High,
                            excerpt: format!("{excerpt}: AWS's documented example credential"),
                        };
                        self.report.allowed.push(f);
                    } else if head == b"\x7fELF" {
                        self.note(format!(
                            "{path}: an ELF binary embeds what looks like a `{}` at byte {abs}{sfx}: not counted as a finding",
                            t.rule
                        ));
                    } else {
                        self.add(path, t.rule, Severity::High, excerpt);
                    }
                }
                Pat::ServiceAccount => {}
                Pat::Sensitive(i) => self.add(
                    path,
                    "sensitive-value",
                    Severity::High,
                    format!("sensitive value #{} ([redacted]) at byte {abs}{sfx}", i + 1),
                ),
            }
        }
    }

    /// Scan `data`, a whole compressed file, decompressed (up to
    /// [`DECOMPRESS_LIMIT`] bytes). A stream that is not what its magic
    /// says is a note: files in an image may be anything.
    fn decompressed(
        &mut self,
        path: &str,
        format: &'static str,
        data: &[u8],
    ) -> Result<(), ScanError> {
        let mut dec: Box<dyn Read + '_> = match format {
            "xz" => Box::new(liblzma::read::XzDecoder::new_multi_decoder(data)),
            _ => Box::new(flate2::read::MultiGzDecoder::new(data)),
        };
        let mut failed: Option<(u64, io::Error)> = None;
        let mut cut = false;
        let mut buf = self.take_scratch();
        self.content(path, Origin::Decompressed(format), &mut |sink| {
            let mut done = 0u64;
            loop {
                match dec.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let n = (n as u64).min(DECOMPRESS_LIMIT - done) as usize;
                        sink(&buf[..n]);
                        done += n as u64;
                        if done >= DECOMPRESS_LIMIT {
                            cut = true;
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some((done, e));
                        break;
                    }
                }
            }
            Ok(())
        })?;
        self.scratch = buf;
        if let Some((at, e)) = failed {
            self.note(format!(
                "{path}: {format} content is damaged after {at} decompressed bytes ({e}): the rest was not scanned decompressed"
            ));
        }
        if cut {
            self.note(format!(
                "{path}: decompressed content scanned up to {} MiB only",
                DECOMPRESS_LIMIT >> 20
            ));
        }
        Ok(())
    }

    /// Scan the values of extended attributes.
    fn xattrs<'x>(
        &mut self,
        path: &str,
        xattrs: impl Iterator<Item = (&'x str, &'x [u8])>,
    ) -> Result<(), ScanError> {
        for (name, value) in xattrs {
            if value.is_empty() {
                continue;
            }
            self.content(path, Origin::Xattr(name), &mut |sink| {
                sink(value);
                Ok(())
            })?;
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
        if we.hardlink_to.is_some() {
            return Ok(());
        }
        self.xattrs(
            &path,
            inode
                .xattrs
                .iter()
                .map(|x| (x.name.as_str(), x.value.as_slice())),
        )?;
        if inode.file_type != FileType::Regular {
            return Ok(());
        }
        let runs = fs.runs(inode)?;
        if whole && inode.size <= 16 << 20 {
            let mut buf = vec![0u8; inode.size as usize];
            fs.read_file_at(&runs, &mut buf, 0)?;
            self.whole_file_rules(&path, &bare, &buf);
        }
        let mut magic = [0u8; 6];
        if inode.size >= magic.len() as u64 {
            fs.read_file_at(&runs, &mut magic, 0)?;
        }
        let dev = fs.device();
        let first = self.report.findings.len();
        let mut buf = self.take_scratch();
        self.content(&path, Origin::File, &mut |sink| {
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
        })?;
        self.scratch = buf;
        if let Some(format) = compression(&magic) {
            if inode.size <= DECOMPRESS_LIMIT {
                let mut data = vec![0u8; inode.size as usize];
                fs.read_file_at(&runs, &mut data, 0)?;
                self.decompressed(&path, format, &data)?;
            } else {
                self.note(format!(
                    "{path}: {format} file of {} bytes not decompressed (over {} MiB)",
                    inode.size,
                    DECOMPRESS_LIMIT >> 20
                ));
            }
        }
        if self.content_findings_since(first, &path) && inode.size <= DECOMPRESS_LIMIT {
            let mut data = vec![0u8; inode.size as usize];
            fs.read_file_at(&runs, &mut data, 0)?;
            self.packaged.candidate(&path, dpkg::md5_of(&data));
        }
        Ok(())
    }

    /// Scan a whole filesystem; paths are prefixed with `prefix:` unless empty.
    pub fn scan_fs(&mut self, fs: &dyn FileSystem, prefix: &str) -> Result<(), ScanError> {
        walk_with(fs, &mut |we| self.fs_entry(fs, prefix, we).map(|()| true))
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
            self.xattrs(
                &bare,
                e.xattrs.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
            )?;
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
                let first = self.report.findings.len();
                self.content(&bare, Origin::File, &mut |sink| {
                    sink(&content);
                    Ok(())
                })?;
                if let Some(format) = compression(&content) {
                    self.decompressed(&bare, format, &content)?;
                }
                if self.content_findings_since(first, &bare) {
                    self.packaged.candidate(&bare, dpkg::md5_of(&content));
                }
            } else {
                // Kept whole only when it is compressed (and small enough).
                let mut kept: Option<Vec<u8>> = None;
                let mut first = true;
                let mut too_big = None;
                let dense = e.sparse.is_none();
                // Hashed on the way: a tar is read once, and a file with a
                // content finding is checked against dpkg's md5sums.
                let mut md5 =
                    (dense && e.size <= DECOMPRESS_LIMIT).then(<md5::Md5 as md5::Digest>::new);
                let first_finding = self.report.findings.len();
                self.content(&bare, Origin::File, &mut |sink| {
                    tr.read_data(&mut |b| {
                        if let Some(h) = md5.as_mut() {
                            md5::Digest::update(h, b);
                        }
                        if first && !b.is_empty() {
                            first = false;
                            if b.starts_with(b"\x7fELF") {
                                // Hits in ELF files are notes, never findings: no need to hash.
                                md5 = None;
                            }
                            if let Some(f) = compression(b).filter(|_| dense) {
                                if e.size <= DECOMPRESS_LIMIT {
                                    kept = Some(Vec::with_capacity(e.size as usize));
                                } else {
                                    too_big = Some(f);
                                }
                            }
                        }
                        if let Some(k) = kept.as_mut() {
                            k.extend_from_slice(b);
                        }
                        sink(b);
                        Ok(())
                    })
                    .map_err(terr)
                })?;
                if let Some(data) = kept
                    && let Some(format) = compression(&data)
                {
                    self.decompressed(&bare, format, &data)?;
                }
                if let Some(h) = md5
                    && self.content_findings_since(first_finding, &bare)
                {
                    self.packaged.candidate(&bare, dpkg::md5_hex(h));
                }
                if let Some(format) = too_big {
                    self.note(format!(
                        "{bare}: {format} file of {} bytes not decompressed (over {} MiB)",
                        e.size,
                        DECOMPRESS_LIMIT >> 20
                    ));
                }
            }
        }
        Ok(())
    }

    /// The report.
    pub fn finish(mut self) -> ScanReport {
        let unchanged = self.packaged.unchanged();
        if !unchanged.is_empty() {
            let (packaged, kept): (Vec<Finding>, Vec<Finding>) =
                std::mem::take(&mut self.report.findings)
                    .into_iter()
                    .partition(|f| {
                        unchanged.contains(&f.path)
                            && dpkg::CONTENT_RULES.contains(&f.rule.as_str())
                    });
            self.report.findings = kept;
            for mut f in packaged {
                f.excerpt
                    .push_str(" (file unchanged from its Debian package: public, not a leak)");
                self.report.allowed.push(f);
            }
        }
        self.report
            .findings
            .sort_by(|a, b| b.severity.cmp(&a.severity).then(a.path.cmp(&b.path)));
        self.report
    }
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
                    "./home/admin/.ssh/authorized_keys",
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
                ("./home/admin/.bash_history", b"ls\n"),
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
                (
                    "build-key".into(),
                    "/home/admin/.ssh/authorized_keys".into()
                ),
                (
                    "cloud-init-instance".into(),
                    "/var/lib/cloud/instances".into()
                ),
                ("machine-id".into(), "/etc/machine-id".into()),
                ("password-hash".into(), "/etc/shadow".into()),
                ("private-key".into(), "/home/u/.ssh/id_ed25519".into()),
                ("sensitive-value".into(), "/etc/apt/apt.conf.d/proxy".into()),
                ("sensitive-value".into(), "/srv/big.bin".into()),
                ("shell-history".into(), "/home/admin/.bash_history".into()),
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
            &[
                ("./etc/ssl/private/snakeoil.key", KEY),
                ("./home/admin/k", KEY),
            ],
            &cfg,
        );
        assert_eq!(
            rules(&r),
            vec![("private-key".into(), "/home/admin/k".into())]
        );
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

    /// A realistic RSA key body line (not a real key).
    const B64: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj";

    fn gz(d: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }

    fn xz(d: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }

    fn assert_no_secret(r: &ScanReport, secrets: &[&str]) {
        let json = serde_json::to_string(r).unwrap();
        for s in secrets {
            assert!(!json.contains(s), "{s} leaked in {json}");
        }
    }

    #[test]
    fn private_key_is_found_when_indented_in_yaml() {
        let yaml = format!(
            "#cloud-config\nwrite_files:\n  - path: /home/admin/.ssh/id_rsa\n    content: |\n      -----BEGIN RSA PRIVATE KEY-----\n      {B64}\n      -----END RSA PRIVATE KEY-----\n"
        );
        let r = scan(
            &[("./etc/cloud/cloud.cfg.d/99-user.cfg", yaml.as_bytes())],
            &ScanConfig::default(),
        );
        assert_eq!(
            rules(&r),
            vec![(
                "private-key".into(),
                "/etc/cloud/cloud.cfg.d/99-user.cfg".into()
            )]
        );
        assert_no_secret(&r, &[&B64[..16]]);
    }

    #[test]
    fn private_key_is_found_when_escaped_in_json() {
        let json = format!(
            "{{\"key\": \"-----BEGIN PRIVATE KEY-----\\n{B64}\\n-----END PRIVATE KEY-----\\n\"}}"
        );
        let r = scan(
            &[("./srv/app/key.json", json.as_bytes())],
            &ScanConfig::default(),
        );
        assert_eq!(
            rules(&r),
            vec![("private-key".into(), "/srv/app/key.json".into())]
        );
    }

    #[test]
    fn gcp_service_account_is_found_by_its_own_rule() {
        let json = format!(
            "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"p\",\n  \"private_key_id\": \"abc\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n{B64}\\n-----END PRIVATE KEY-----\\n\",\n  \"client_email\": \"x@p.iam.gserviceaccount.com\"\n}}\n"
        );
        let r = scan(
            &[("./etc/gcp/sa.json", json.as_bytes())],
            &ScanConfig::default(),
        );
        assert_eq!(
            rules(&r),
            vec![("gcp-service-account".into(), "/etc/gcp/sa.json".into())]
        );
        assert_no_secret(&r, &[&B64[..16]]);
    }

    #[test]
    fn private_key_is_found_inside_gzip_and_xz_files() {
        let (g, x) = (gz(KEY), xz(KEY));
        let r = scan(
            &[
                ("./home/admin/backup/id.gz", &g),
                ("./home/admin/backup/id.xz", &x),
            ],
            &ScanConfig::default(),
        );
        assert_eq!(
            rules(&r),
            vec![
                ("private-key".into(), "/home/admin/backup/id.gz".into()),
                ("private-key".into(), "/home/admin/backup/id.xz".into())
            ]
        );
        assert!(
            r.findings[0].excerpt.contains("decompressed"),
            "{:?}",
            r.findings
        );
    }

    #[test]
    fn private_key_is_found_when_base64_encoded() {
        let blob = rules::base64(KEY);
        let yaml = format!("apiVersion: v1\nkind: Secret\ndata:\n  id_ed25519: {blob}\n");
        let r = scan(
            &[("./srv/k8s/secret.yaml", yaml.as_bytes())],
            &ScanConfig::default(),
        );
        assert_eq!(
            rules(&r),
            vec![("private-key".into(), "/srv/k8s/secret.yaml".into())]
        );
        assert_no_secret(&r, &[&blob[..60]]);
    }

    #[test]
    fn private_key_is_found_in_an_xattr() {
        let mut w = TarWriter::new(Vec::new());
        let mut h = EntryHeader::new(b"./srv/innocent.txt", EntryKind::File);
        h.size = 5;
        h.xattrs = vec![("user.key".into(), KEY.to_vec())];
        w.append(&h, b"hello").unwrap();
        let t = w.finish().unwrap();
        let mut s = Scanner::new(&ScanConfig::default()).unwrap();
        s.scan_tar("t", &t[..]).unwrap();
        let r = s.finish();
        assert_eq!(
            rules(&r),
            vec![("private-key".into(), "/srv/innocent.txt".into())]
        );
        assert!(r.findings[0].excerpt.contains("xattr `user.key`"));
    }

    #[test]
    fn cloud_tokens_are_found_by_their_formats() {
        let text = [
            "aws_access_key_id = AKIAZ7Q3MPLEKEYID123",
            "aws_secret_access_key = Zr8Yk3Vq9Xw2Lp5Nt7Hc1Bd4Fg6Jm0Qs8Uv2W+/Y",
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=",
        ]
        .join("\n")
            + &"Ab3d".repeat(21)
            + "xy==;EndpointSuffix=core.windows.net\n";
        let gh = format!("token: ghp_{}\n", "a1B2".repeat(9));
        let pat = format!("GITHUB_TOKEN=github_pat_{}\n", "A1b_".repeat(20) + "zz");
        let files: Vec<(String, String)> = vec![
            ("./home/admin/.aws/credentials".into(), text),
            ("./srv/gh".into(), gh),
            ("./srv/pat".into(), pat),
            ("./srv/gl".into(), "glpat-Ab3dEf5hIj7lMn9pQr1t\n".into()),
            (
                "./srv/slack".into(),
                "SLACK=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx\n".into(),
            ),
            (
                "./srv/hook".into(),
                "url: https://hooks.slack.com/services/T0123ABCD/B0123ABCD/AbCdEfGhIjKlMnOpQrStUvWx\n"
                    .into(),
            ),
            ("./srv/stripe".into(), "sk_live_4eC39HqLyjWDarjtT1zdp7dc\n".into()),
        ];
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_bytes()))
            .collect();
        let r = scan(&files, &ScanConfig::default());
        let want: Vec<(String, String)> = [
            ("aws-access-key-id", "/home/admin/.aws/credentials"),
            ("aws-secret-access-key", "/home/admin/.aws/credentials"),
            ("azure-storage-key", "/home/admin/.aws/credentials"),
            ("github-token", "/srv/gh"),
            ("github-token", "/srv/pat"),
            ("gitlab-token", "/srv/gl"),
            ("slack-token", "/srv/slack"),
            ("slack-webhook", "/srv/hook"),
            ("stripe-key", "/srv/stripe"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(rules(&r), want);
        assert_no_secret(
            &r,
            &[
                "Z7Q3MPLE",
                "Zr8Yk3Vq",
                "Ab3dAb3d",
                "a1B2a1B2",
                "A1b_A1b_",
                "Ab3dEf5h",
                "1234567890123",
                "AbCdEfGh",
                "4eC39HqL",
            ],
        );
    }

    #[test]
    fn aws_documented_example_is_allowed_not_a_finding() {
        let r = scan(
            &[(
                "./usr/lib/python3/dist-packages/botocore/docs.py",
                b"key = 'AKIAIOSFODNN7EXAMPLE'\nsecret: aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
            )],
            &ScanConfig::default(),
        );
        assert!(r.is_clean(), "{:?}", r.findings);
        assert_eq!(r.allowed.len(), 2, "{:?}", r.allowed);
    }

    #[test]
    fn clean_lookalikes_are_not_findings() {
        let ca = "-----BEGIN CERTIFICATE-----\nMIIFazCCA1OgAwIBAgIRAIIQz7DSQONZRGPgu2OCiwAwDQYJKoZIhvcNAQELBQAw\n-----END CERTIFICATE-----\n";
        let r = scan(
            &[
                (
                    "./usr/share/doc/openssh-client/README",
                    b"Keep your PRIVATE KEY safe. A file starting with\n-----BEGIN OPENSSH PRIVATE KEY-----\nis one.\n",
                ),
                ("./etc/ssl/certs/ISRG_Root_X1.pem", ca.as_bytes()),
                (
                    "./usr/lib/python3/dist-packages/aws.py",
                    b"\"\"\"Access key ids start with AKIA (long-term) or ASIA.\"\"\"\nPREFIX = 'AKIA'\nAKIA_PATTERN = r'AKIA[A-Z0-9]{16}'\n",
                ),
                (
                    "./usr/share/doc/slack/README",
                    b"export SLACK_TOKEN=xoxb-your-token-here\nsk_live_... goes here; ghp_xxx; glpat-xxxx\n",
                ),
                (
                    "./usr/share/doc/x/copyright.gz",
                    &gz(b"no secrets, just -----BEGIN RSA PRIVATE KEY----- in prose\n"),
                ),
            ],
            &ScanConfig::default(),
        );
        assert!(r.is_clean(), "{:?}", r.findings);
        assert!(r.allowed.is_empty(), "{:?}", r.allowed);
    }

    #[test]
    fn damaged_gzip_file_is_a_note_not_an_error() {
        let mut g = gz(&vec![b'a'; 100_000]);
        g.truncate(g.len() / 2);
        let r = scan(&[("./srv/broken.gz", &g)], &ScanConfig::default());
        assert!(r.is_clean());
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("/srv/broken.gz") && n.contains("damaged")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn example_keys_in_unchanged_package_files_are_allowed() {
        let doc =
            format!("write_files:\n  content: |\n    -----BEGIN RSA PRIVATE KEY-----\n    {B64}\n");
        let sums = format!(
            "{}  usr/share/doc/cloud-init/examples/cloud-config.txt\n{}  usr/lib/python3/dist-packages/cloudinit/config/cc_ssh.py\n{}  usr/share/doc/changed.txt\n",
            dpkg::md5_of(doc.as_bytes()),
            dpkg::md5_of(doc.as_bytes()),
            dpkg::md5_of(b"the packaged version"),
        );
        let r = scan(
            &[
                (
                    "./usr/lib/python3/dist-packages/cloudinit/config/__pycache__/cc_ssh.cpython-311.pyc",
                    doc.as_bytes(),
                ),
                (
                    "./usr/lib/python3/dist-packages/cloudinit/config/cc_ssh.py",
                    doc.as_bytes(),
                ),
                (
                    "./usr/share/doc/cloud-init/examples/cloud-config.txt",
                    doc.as_bytes(),
                ),
                ("./usr/share/doc/changed.txt", doc.as_bytes()),
                ("./usr/share/doc/unlisted.txt", doc.as_bytes()),
                ("./var/lib/dpkg/info/cloud-init.md5sums", sums.as_bytes()),
            ],
            &ScanConfig::default(),
        );
        assert_eq!(
            rules(&r),
            vec![
                ("private-key".into(), "/usr/share/doc/changed.txt".into()),
                ("private-key".into(), "/usr/share/doc/unlisted.txt".into()),
            ]
        );
        assert_eq!(r.allowed.len(), 3, "{:?}", r.allowed);
        assert!(
            r.allowed
                .iter()
                .all(|f| f.excerpt.contains("Debian package"))
        );
    }

    #[test]
    fn sensitive_value_overlapping_a_token_reports_both() {
        let token = format!("ghp_{}", "Zz9".repeat(12));
        let cfg = ScanConfig {
            sensitive: vec![
                format!("TOKEN={token}").into_bytes(),
                token.clone().into_bytes(),
            ],
            ..Default::default()
        };
        let text = format!("export GH_TOKEN={token}\n");
        let r = scan(&[("./etc/profile.d/gh.sh", text.as_bytes())], &cfg);
        let mut got: Vec<_> = r.findings.iter().map(|f| f.rule.as_str()).collect();
        got.sort();
        assert_eq!(
            got,
            vec!["github-token", "sensitive-value", "sensitive-value"],
            "{:?}",
            r.findings
        );
        assert_no_secret(&r, &["Zz9Zz9"]);
    }
}
