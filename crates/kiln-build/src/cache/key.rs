//! Cache keys: pure functions of a step's inputs, chained from the base
//! image.
//!
//! - [`base_key`] covers the base image digest and everything that shapes
//!   the first disk and the guest: the source fields the caller collects as
//!   JSON (disk size and format, seed content, firmware settings, qemuargs,
//!   boot command …), the QEMU version, the *pinned* machine type (see
//!   [`MachineTypes::pin`]) and the digests of the firmware files.
//! - [`step_key`] chains one step onto the previous key: its definition after
//!   evaluation, the bytes of every file it uploads (by digest), its
//!   environment, and its sensitive values — which enter only as hashes
//!   salted with the previous key, so equal secrets in two chains give
//!   unrelated hashes and the raw value is never part of what is hashed.
//!
//! Keys are blake3, 64 lowercase hex digits, shown to users shortened to
//! [`SHORT_KEY_LEN`]. The hash input is framed (tag, length, bytes) so that
//! moving bytes from one field to the next cannot give the same key, and
//! JSON is hashed in a canonical form (object members sorted by name, no
//! whitespace): the order of members in a map never matters, the order of
//! array elements always does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use kiln_exec::Program;
use kiln_qemu::argv::canonical;
use kiln_qemu::optstr::OptionString;
use kiln_secret::Sensitive;
use serde_json::Value;

/// Shown length of a key.
pub const SHORT_KEY_LEN: usize = 12;

/// blake3 `derive_key` contexts: bump the version to invalidate every key.
const BASE_CONTEXT: &str = "kiln 2025 step cache base key v1";
const STEP_CONTEXT: &str = "kiln 2025 step cache step key v1";
const SALT_CONTEXT: &str = "kiln 2025 step cache sensitive salt v1";

/// Errors of keys and of the host facts that go into them.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("`{text}` is not a cache key (64 lowercase hex digits)")]
    Malformed { text: String },
    #[error("cannot read `{}` to hash it: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Probe(#[from] kiln_exec::ExecError),
    #[error("cannot read the QEMU version from `{command}`: {output:?}")]
    NoVersion { command: String, output: String },
    #[error(
        "machine type `{machine}` is not known to this QEMU (`-machine help` lists {known} types)"
    )]
    UnknownMachine { machine: String, known: usize },
    #[error("no `-machine` given and `-machine help` names no default machine type")]
    NoDefaultMachine,
}

/// A cache key: blake3, 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CacheKey(String);

impl CacheKey {
    /// Parses a full key.
    pub fn parse(text: &str) -> Result<CacheKey, KeyError> {
        let ok = text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(CacheKey(text.to_string()))
        } else {
            Err(KeyError::Malformed {
                text: text.chars().take(80).collect(),
            })
        }
    }

    fn from_hash(hash: blake3::Hash) -> CacheKey {
        CacheKey(hash.to_hex().to_string())
    }

    /// The full hex key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first [`SHORT_KEY_LEN`] digits, as shown to users.
    pub fn short(&self) -> &str {
        &self.0[..SHORT_KEY_LEN]
    }

    fn bytes(&self) -> [u8; 32] {
        // Checked at construction: 64 hex digits.
        blake3::Hash::from_hex(&self.0)
            .map(|h| *h.as_bytes())
            .unwrap_or([0; 32])
    }
}

impl TryFrom<String> for CacheKey {
    type Error = KeyError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        CacheKey::parse(&text)
    }
}

impl From<CacheKey> for String {
    fn from(key: CacheKey) -> String {
        key.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({}…)", self.short())
    }
}

/// What the first key covers. The caller builds `source` from the decoded
/// source block: every field that shapes the disk or the guest (disk size,
/// format, interface, seed/`cd_*` content digests, `efi_*`, `qemuargs`,
/// `boot_command`, memory, CPUs…), and nothing that does not (output paths,
/// VNC and SSH ports, timeouts, `headless`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BaseKeyInputs {
    /// Digest of the base image or ISO, with its algorithm
    /// (`sha256:…`, `blake3:…`; see [`digest_file`]).
    pub base_image_digest: String,
    /// The shaping source fields, as JSON (map order is irrelevant).
    pub source: Value,
    /// QEMU's version (see [`QemuVersion::number`]).
    pub qemu_version: String,
    /// The versioned machine type (`pc-q35-7.2`), never an alias.
    pub machine_type: String,
    /// Digests of firmware files by role (`code`, `vars`, `bios`).
    pub firmware: BTreeMap<String, String>,
}

/// A file a step uploads or runs, by content.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileInput {
    /// Where it goes or how the step names it (`scripts[0]`, a destination
    /// path, a path relative to an uploaded directory).
    pub name: String,
    /// `blake3:<hex>` of its bytes.
    pub digest: String,
}

impl FileInput {
    /// A file given by its bytes.
    pub fn from_bytes(name: impl Into<String>, bytes: &[u8]) -> FileInput {
        FileInput {
            name: name.into(),
            digest: digest_bytes(bytes),
        }
    }

    /// A file on disk, read and hashed now (blocking; large files belong on
    /// a blocking thread).
    pub fn from_path(name: impl Into<String>, path: &Path) -> Result<FileInput, KeyError> {
        Ok(FileInput {
            name: name.into(),
            digest: digest_file(path)?,
        })
    }
}

/// What a step key covers besides the previous key.
///
/// Not `Debug`: environment values may be secret.
#[derive(Clone, Default)]
pub struct StepKeyInputs {
    /// The step's full definition after evaluation (provisioner type and
    /// every field). Map order is irrelevant, array order is not.
    pub definition: Value,
    /// Every script and file it uploads, in upload order.
    pub files: Vec<FileInput>,
    /// Its environment (`environment_vars`, `env`), as `(name, value)`:
    /// a later entry with the same name wins, otherwise order is
    /// irrelevant (the variables are exported together).
    pub env: Vec<(String, String)>,
    /// The sensitive values the step uses. Where one occurs in the
    /// definition or an environment value it is replaced by its salted
    /// hash before hashing; each also enters the key on its own, as the
    /// same salted hash.
    pub sensitive: Vec<Sensitive<String>>,
}

/// The key of the first cache entry of a build.
pub fn base_key(inputs: &BaseKeyInputs) -> CacheKey {
    let mut h = Framed::new(BASE_CONTEXT);
    h.field("base_image_digest", inputs.base_image_digest.as_bytes());
    h.field("source", &canonical_json(&inputs.source));
    h.field("qemu_version", inputs.qemu_version.as_bytes());
    h.field("machine_type", inputs.machine_type.as_bytes());
    h.count("firmware", inputs.firmware.len());
    for (role, digest) in &inputs.firmware {
        h.field("firmware.role", role.as_bytes());
        h.field("firmware.digest", digest.as_bytes());
    }
    CacheKey::from_hash(h.finish())
}

/// The key of a step, chained onto `prev`.
pub fn step_key(prev: &CacheKey, inputs: &StepKeyInputs) -> CacheKey {
    CacheKey::from_hash(
        blake3::Hasher::new_derive_key(STEP_CONTEXT)
            .update(&step_material(prev, inputs))
            .finalize(),
    )
}

/// Everything [`step_key`] hashes, framed. Separate so tests can check that
/// no raw sensitive value is part of it.
fn step_material(prev: &CacheKey, inputs: &StepKeyInputs) -> Vec<u8> {
    let salt = blake3::derive_key(SALT_CONTEXT, &prev.bytes());
    let secrets = Secrets::new(&salt, &inputs.sensitive);
    let mut h = Framed::buffer();
    h.field("prev", prev.as_str().as_bytes());
    h.field(
        "definition",
        &canonical_json(&secrets.redact_json(&inputs.definition)),
    );
    h.count("files", inputs.files.len());
    for file in &inputs.files {
        h.field("file.name", file.name.as_bytes());
        h.field("file.digest", file.digest.as_bytes());
    }
    let env: BTreeMap<&str, &str> = inputs
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    h.count("env", env.len());
    for (name, value) in env {
        h.field("env.name", secrets.redact(name).as_bytes());
        h.field("env.value", secrets.redact(value).as_bytes());
    }
    let hashes: BTreeSet<&str> = secrets.hashes.iter().map(|(_, h)| h.as_str()).collect();
    h.count("sensitive", hashes.len());
    for hash in hashes {
        h.field("sensitive", hash.as_bytes());
    }
    h.into_bytes()
}

/// The sensitive values of a step with their salted hashes, longest first
/// (a secret containing another is replaced whole).
struct Secrets<'a> {
    hashes: Vec<(&'a str, String)>,
}

impl<'a> Secrets<'a> {
    fn new(salt: &[u8; 32], values: &'a [Sensitive<String>]) -> Self {
        let mut hashes: Vec<(&str, String)> = values
            .iter()
            .map(|v| v.expose().as_str())
            .filter(|v| !v.is_empty())
            .map(|v| {
                (
                    v,
                    blake3::keyed_hash(salt, v.as_bytes()).to_hex().to_string(),
                )
            })
            .collect();
        hashes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
        hashes.dedup_by(|a, b| a.0 == b.0);
        Secrets { hashes }
    }

    fn redact(&self, text: &str) -> String {
        if self.hashes.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        'outer: while !rest.is_empty() {
            for (secret, hash) in &self.hashes {
                if rest.starts_with(secret) {
                    out.push_str("<sensitive:");
                    out.push_str(hash);
                    out.push('>');
                    rest = &rest[secret.len()..];
                    continue 'outer;
                }
            }
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        }
        out
    }

    fn redact_json(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.redact(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.redact(k), self.redact_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// A hash input written as (tag length, tag, value length, value).
struct Framed {
    hasher: Option<blake3::Hasher>,
    buffer: Vec<u8>,
}

impl Framed {
    fn new(context: &str) -> Framed {
        Framed {
            hasher: Some(blake3::Hasher::new_derive_key(context)),
            buffer: Vec::new(),
        }
    }

    fn buffer() -> Framed {
        Framed {
            hasher: None,
            buffer: Vec::new(),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        match &mut self.hasher {
            Some(h) => {
                h.update(bytes);
            }
            None => self.buffer.extend_from_slice(bytes),
        }
    }

    fn field(&mut self, tag: &str, value: &[u8]) {
        self.write(&(tag.len() as u64).to_le_bytes());
        self.write(tag.as_bytes());
        self.write(&(value.len() as u64).to_le_bytes());
        self.write(value);
    }

    fn count(&mut self, tag: &str, n: usize) {
        self.field(tag, &(n as u64).to_le_bytes());
    }

    fn finish(self) -> blake3::Hash {
        match self.hasher {
            Some(h) => h.finalize(),
            None => blake3::hash(&self.buffer),
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        self.buffer
    }
}

/// JSON in canonical form: object members sorted by name, no whitespace.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    fn write(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Object(map) => {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_by(|a, b| a.0.cmp(b.0));
                out.push(b'{');
                for (i, (k, v)) in members.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
                    out.push(b':');
                    write(v, out);
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(v, out);
                }
                out.push(b']');
            }
            scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
        }
    }
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

/// `blake3:<hex>` of bytes.
pub fn digest_bytes(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

/// `blake3:<hex>` of a file's bytes, streamed (blocking).
pub fn digest_file(path: &Path) -> Result<String, KeyError> {
    let read = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file).map_err(read)?;
    Ok(format!("blake3:{}", hasher.finalize().to_hex()))
}

/// The QEMU binary's version, from `--version`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QemuVersion {
    /// The first line (`QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)`).
    pub line: String,
    /// The upstream version number (`7.2.22`): what a key should hold.
    pub number: String,
}

/// Reads the version from `qemu-system-* --version` output.
pub fn parse_qemu_version(output: &str) -> Option<QemuVersion> {
    let line = output.lines().map(str::trim).find(|l| !l.is_empty())?;
    let after = line.split("version").nth(1)?.trim();
    let number: String = after
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if number.is_empty() {
        return None;
    }
    Some(QemuVersion {
        line: line.to_string(),
        number,
    })
}

/// Runs `qemu_binary --version`.
pub async fn probe_qemu_version(qemu_binary: &str) -> Result<QemuVersion, KeyError> {
    let probe = Program::new(qemu_binary).arg("--version");
    let command = probe.display();
    let out = probe.run().await?;
    parse_qemu_version(&out).ok_or(KeyError::NoVersion {
        command,
        output: out.chars().take(200).collect(),
    })
}

/// The machine types of a QEMU binary: which names are aliases of which
/// versioned type, and the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MachineTypes {
    /// Every name listed (aliases included).
    pub names: BTreeSet<String>,
    /// Alias → versioned type (`q35` → `pc-q35-7.2`).
    pub aliases: BTreeMap<String, String>,
    /// The type QEMU uses without `-machine`.
    pub default: Option<String>,
}

/// Parses `qemu-system-* -machine help`:
/// `q35   Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)`.
pub fn parse_machine_help(text: &str) -> MachineTypes {
    let mut types = MachineTypes::default();
    for line in text.lines() {
        if line.starts_with(' ') || line.starts_with("Supported machines") {
            continue;
        }
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        types.names.insert(name.to_string());
        if let Some(target) = line
            .rsplit_once("(alias of ")
            .and_then(|(_, rest)| rest.split(')').next())
        {
            types
                .aliases
                .insert(name.to_string(), target.trim().to_string());
        }
        if line.trim_end().ends_with("(default)") {
            types.default = Some(name.to_string());
        }
    }
    types
}

impl MachineTypes {
    /// The versioned type for `name` (`q35` → `pc-q35-7.2`; a versioned
    /// name is returned as is).
    pub fn pin(&self, name: &str) -> Result<String, KeyError> {
        if let Some(target) = self.aliases.get(name) {
            return Ok(target.clone());
        }
        if self.names.contains(name) {
            return Ok(name.to_string());
        }
        Err(KeyError::UnknownMachine {
            machine: name.to_string(),
            known: self.names.len(),
        })
    }

    /// Pins the machine type in an argument list: the type in the last
    /// `-machine`/`-M` value is replaced by its versioned name; without
    /// one, `-machine <default>` is added. Returns the arguments and the
    /// pinned type.
    pub fn pin_args(&self, args: &[String]) -> Result<(Vec<String>, String), KeyError> {
        let mut out = args.to_vec();
        let position = out
            .iter()
            .enumerate()
            .filter(|(i, a)| matches!(canonical(a), "-machine" | "-M") && i + 1 < args.len())
            .map(|(i, _)| i + 1)
            .next_back();
        match position {
            Some(i) => {
                let (value, pinned) = self.pin_machine_value(&out[i])?;
                out[i] = value;
                Ok((out, pinned))
            }
            None => {
                let default = self.default.clone().ok_or(KeyError::NoDefaultMachine)?;
                out.push("-machine".into());
                out.push(default.clone());
                Ok((out, default))
            }
        }
    }

    /// `type=q35,accel=tcg` → (`type=pc-q35-7.2,accel=tcg`, `pc-q35-7.2`);
    /// `q35` → `pc-q35-7.2`; without a type, `type=<default>` in front.
    fn pin_machine_value(&self, value: &str) -> Result<(String, String), KeyError> {
        let mut opts = OptionString::parse(value);
        let pinned = match (opts.get("type"), opts.implied()) {
            (Some(name), _) => {
                let pinned = self.pin(name)?;
                opts.set("type", pinned.as_str());
                pinned
            }
            (None, Some(name)) => {
                let pinned = self.pin(name)?;
                opts.set_implied(pinned.as_str());
                pinned
            }
            (None, None) => {
                let default = self.default.clone().ok_or(KeyError::NoDefaultMachine)?;
                opts = OptionString::new()
                    .with("type", default.as_str())
                    .append(opts);
                default
            }
        };
        Ok((opts.to_string(), pinned))
    }
}

/// What kiln knows of a QEMU binary: its version and machine types. Probe
/// once per build; the key and every VM launch use the same facts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QemuHost {
    pub binary: String,
    pub version: QemuVersion,
    pub machines: MachineTypes,
}

impl QemuHost {
    /// Runs `--version` and `-machine help`.
    pub async fn probe(binary: &str) -> Result<QemuHost, KeyError> {
        Ok(QemuHost {
            binary: binary.to_string(),
            version: probe_qemu_version(binary).await?,
            machines: probe_machine_types(binary).await?,
        })
    }
}

/// Runs `qemu_binary -machine help`.
pub async fn probe_machine_types(qemu_binary: &str) -> Result<MachineTypes, KeyError> {
    let out = Program::new(qemu_binary)
        .args(["-machine", "help"])
        .run()
        .await?;
    Ok(parse_machine_help(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn base() -> BaseKeyInputs {
        BaseKeyInputs {
            base_image_digest: "sha256:00ff".into(),
            source: json!({ "disk_size": "8G", "qemuargs": [["-m", "1024"]], "efi_boot": true }),
            qemu_version: "7.2.22".into(),
            machine_type: "pc-q35-7.2".into(),
            firmware: BTreeMap::from([
                ("code".to_string(), "blake3:aa".to_string()),
                ("vars".to_string(), "blake3:bb".to_string()),
            ]),
        }
    }

    fn step() -> StepKeyInputs {
        StepKeyInputs {
            definition: json!({ "type": "shell", "inline": ["apt-get update", "echo hi"] }),
            files: vec![FileInput::from_bytes(
                "scripts[0]",
                b"#!/bin/sh\necho one\n",
            )],
            env: vec![("A".into(), "1".into()), ("B".into(), "2".into())],
            sensitive: vec![],
        }
    }

    #[test]
    fn key_is_64_hex_and_shown_as_12() {
        let key = base_key(&base());
        assert_eq!(key.as_str().len(), 64);
        assert_eq!(key.short().len(), SHORT_KEY_LEN);
        assert!(key.as_str().starts_with(key.short()));
        assert_eq!(CacheKey::parse(key.as_str()).unwrap(), key);
        assert!(CacheKey::parse("abc").is_err());
        assert!(CacheKey::parse(&key.as_str().to_uppercase()).is_err());
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(serde_json::from_str::<CacheKey>(&json).unwrap(), key);
        assert!(serde_json::from_str::<CacheKey>("\"../../etc\"").is_err());
    }

    #[test]
    fn base_key_changes_with_every_input() {
        let k = base_key(&base());
        let mut variants = Vec::new();
        let mut b = base();
        b.base_image_digest = "sha256:00fe".into();
        variants.push(b);
        let mut b = base();
        b.source["disk_size"] = json!("9G");
        variants.push(b);
        let mut b = base();
        b.qemu_version = "8.0.0".into();
        variants.push(b);
        let mut b = base();
        b.machine_type = "pc-q35-7.1".into();
        variants.push(b);
        let mut b = base();
        b.firmware.insert("vars".into(), "blake3:bc".into());
        variants.push(b);
        let mut b = base();
        b.firmware.remove("vars");
        variants.push(b);
        for v in variants {
            assert_ne!(base_key(&v), k, "{v:?}");
        }
        assert_eq!(base_key(&base()), k);
    }

    #[test]
    fn map_order_is_irrelevant_array_order_is_not() {
        let a = json!({ "x": 1, "y": [1, 2], "z": { "p": true, "q": null } });
        let mut b = serde_json::Map::new();
        b.insert("z".into(), json!({ "q": null, "p": true }));
        b.insert("y".into(), json!([1, 2]));
        b.insert("x".into(), json!(1));
        assert_eq!(canonical_json(&a), canonical_json(&Value::Object(b)));
        assert_eq!(
            String::from_utf8(canonical_json(&a)).unwrap(),
            r#"{"x":1,"y":[1,2],"z":{"p":true,"q":null}}"#
        );
        assert_ne!(
            canonical_json(&json!({ "y": [1, 2] })),
            canonical_json(&json!({ "y": [2, 1] }))
        );
    }

    #[test]
    fn env_order_is_irrelevant_but_the_last_duplicate_wins() {
        let prev = base_key(&base());
        let a = step();
        let mut b = step();
        b.env.reverse();
        assert_eq!(step_key(&prev, &a), step_key(&prev, &b));
        let mut dup = step();
        dup.env = vec![
            ("A".into(), "0".into()),
            ("A".into(), "1".into()),
            ("B".into(), "2".into()),
        ];
        assert_eq!(step_key(&prev, &dup), step_key(&prev, &a));
        let mut swapped = step();
        swapped.env = vec![
            ("A".into(), "1".into()),
            ("A".into(), "0".into()),
            ("B".into(), "2".into()),
        ];
        assert_ne!(step_key(&prev, &swapped), step_key(&prev, &a));
    }

    #[test]
    fn file_order_matters() {
        let prev = base_key(&base());
        let mut a = step();
        a.files.push(FileInput::from_bytes("scripts[1]", b"two"));
        let mut b = a.clone();
        b.files.swap(0, 1);
        assert_ne!(step_key(&prev, &a), step_key(&prev, &b));
    }

    #[test]
    fn sensitive_values_enter_only_as_salted_hashes() {
        let prev = base_key(&base());
        let secret = "hunter2-very-secret";
        let mut s = step();
        s.definition = json!({ "type": "shell", "inline": [format!("echo {secret} | passwd")] });
        s.env.push(("PASSWORD".into(), secret.into()));
        s.sensitive = vec![Sensitive::new(secret.to_string())];
        let material = step_material(&prev, &s);
        assert!(
            !material
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "the raw secret is part of the hash input"
        );
        let k1 = step_key(&prev, &s);
        let mut t = s.clone();
        let other = "hunter3-very-secret";
        t.definition = json!({ "type": "shell", "inline": [format!("echo {other} | passwd")] });
        t.env = vec![
            ("A".into(), "1".into()),
            ("B".into(), "2".into()),
            ("PASSWORD".into(), other.into()),
        ];
        t.sensitive = vec![Sensitive::new(other.to_string())];
        assert_ne!(step_key(&prev, &t), k1);

        // The same secret hashes differently in another chain.
        let salt_a = blake3::derive_key(SALT_CONTEXT, &prev.bytes());
        let other_prev = step_key(&prev, &step());
        let salt_b = blake3::derive_key(SALT_CONTEXT, &other_prev.bytes());
        let one = [Sensitive::new(secret.to_string())];
        let a = Secrets::new(&salt_a, &one).redact(secret);
        let b = Secrets::new(&salt_b, &one).redact(secret);
        assert_ne!(a, b);
        assert!(!a.contains(secret) && a.starts_with("<sensitive:"));
    }

    #[test]
    fn a_secret_containing_another_is_replaced_whole() {
        let salt = [7u8; 32];
        let values = [
            Sensitive::new("pass".to_string()),
            Sensitive::new("password1".to_string()),
        ];
        let s = Secrets::new(&salt, &values);
        let out = s.redact("x password1 pass y");
        assert!(!out.contains("pass"), "{out}");
        assert_eq!(out.matches("<sensitive:").count(), 2);
    }

    #[test]
    fn a_sensitive_value_that_appears_nowhere_still_changes_the_key() {
        let prev = base_key(&base());
        let mut a = step();
        a.sensitive = vec![Sensitive::new("token-a".into())];
        let mut b = step();
        b.sensitive = vec![Sensitive::new("token-b".into())];
        assert_ne!(step_key(&prev, &a), step_key(&prev, &b));
        assert_ne!(step_key(&prev, &a), step_key(&prev, &step()));
    }

    #[test]
    fn qemu_version_and_machine_help_parse() {
        let v = parse_qemu_version(
            "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022\n",
        )
        .unwrap();
        assert_eq!(v.number, "7.2.22");
        assert!(v.line.contains("Debian"));
        assert!(parse_qemu_version("nothing here").is_none());

        let help = "Supported machines are:\n\
            microvm              microvm (i386)\n\
            pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)\n\
            pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)\n\
            q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)\n\
            pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)\n\
            none                 empty machine\n";
        let types = parse_machine_help(help);
        assert_eq!(types.pin("q35").unwrap(), "pc-q35-7.2");
        assert_eq!(types.pin("pc").unwrap(), "pc-i440fx-7.2");
        assert_eq!(types.pin("pc-q35-7.2").unwrap(), "pc-q35-7.2");
        assert_eq!(types.default.as_deref(), Some("pc-i440fx-7.2"));
        assert!(matches!(
            types.pin("q99"),
            Err(KeyError::UnknownMachine { .. })
        ));

        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (out, pinned) = types
            .pin_args(&args(&["-m", "1024", "-machine", "type=q35,accel=tcg"]))
            .unwrap();
        assert_eq!(
            out,
            args(&["-m", "1024", "-machine", "type=pc-q35-7.2,accel=tcg"])
        );
        assert_eq!(pinned, "pc-q35-7.2");
        let (out, _) = types.pin_args(&args(&["-M", "q35,accel=kvm"])).unwrap();
        assert_eq!(out, args(&["-M", "pc-q35-7.2,accel=kvm"]));
        let (out, pinned) = types.pin_args(&args(&["-machine", "accel=tcg"])).unwrap();
        assert_eq!(out, args(&["-machine", "type=pc-i440fx-7.2,accel=tcg"]));
        assert_eq!(pinned, "pc-i440fx-7.2");
        let (out, pinned) = types.pin_args(&args(&["-m", "512"])).unwrap();
        assert_eq!(out, args(&["-m", "512", "-machine", "pc-i440fx-7.2"]));
        assert_eq!(pinned, "pc-i440fx-7.2");
        // `,,` stays a comma inside its option; `--machine` is `-machine`.
        let (out, _) = types
            .pin_args(&args(&["--machine", "q35,memory-backend=m,,1"]))
            .unwrap();
        assert_eq!(out, args(&["--machine", "pc-q35-7.2,memory-backend=m,,1"]));
    }

    #[test]
    fn digests_of_files_and_bytes_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script.sh");
        std::fs::write(&path, b"echo hi\n").unwrap();
        assert_eq!(digest_file(&path).unwrap(), digest_bytes(b"echo hi\n"));
        let err = digest_file(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    fn arb_base() -> impl Strategy<Value = BaseKeyInputs> {
        (
            "[a-z0-9:]{1,20}",
            proptest::collection::btree_map("[a-z_]{1,8}", "[a-z0-9]{0,8}", 0..5),
            "[0-9.]{1,8}",
            "[a-z0-9.-]{1,12}",
            proptest::collection::btree_map("[a-z]{1,5}", "[a-f0-9]{1,8}", 0..3),
        )
            .prop_map(|(d, src, v, m, fw)| BaseKeyInputs {
                base_image_digest: d,
                source: serde_json::to_value(src).unwrap(),
                qemu_version: v,
                machine_type: m,
                firmware: fw,
            })
    }

    fn mutate(s: &str) -> String {
        format!("{s}x")
    }

    proptest! {
        #[test]
        fn changing_any_base_input_changes_the_key(b in arb_base(), which in 0usize..5) {
            let k = base_key(&b);
            let mut m = b.clone();
            match which {
                0 => m.base_image_digest = mutate(&m.base_image_digest),
                1 => { m.source.as_object_mut().unwrap().insert("zz_extra".into(), json!(1)); }
                2 => m.qemu_version = mutate(&m.qemu_version),
                3 => m.machine_type = mutate(&m.machine_type),
                _ => { m.firmware.insert("zz".into(), "00".into()); }
            }
            prop_assert_ne!(base_key(&m), k);
        }

        #[test]
        fn changing_any_step_input_changes_the_key(
            def in "[ -~]{0,30}",
            file in proptest::collection::vec(any::<u8>(), 0..64),
            flip in any::<usize>(),
            env in proptest::collection::btree_map("[A-Z]{1,6}", "[ -~]{0,10}", 1..6),
            secret in "[a-z]{6,12}",
            which in 0usize..7,
        ) {
            let prev = base_key(&base());
            let inputs = StepKeyInputs {
                definition: json!({ "type": "shell", "inline": [def] }),
                files: vec![FileInput::from_bytes("f", &file)],
                env: env.clone().into_iter().collect(),
                sensitive: vec![Sensitive::new(secret.clone())],
            };
            let k = step_key(&prev, &inputs);
            let mut m = inputs.clone();
            let mut prev2 = prev.clone();
            match which {
                0 => m.definition["inline"][0] = json!(format!("{}!", m.definition["inline"][0].as_str().unwrap())),
                1 => {
                    let mut bytes = file.clone();
                    if bytes.is_empty() { bytes.push(0) } else { let i = flip % bytes.len(); bytes[i] ^= 1 }
                    m.files = vec![FileInput::from_bytes("f", &bytes)];
                }
                2 => { let (name, value) = m.env[flip % m.env.len()].clone(); m.env.push((name, format!("{value}~"))); }
                3 => m.env.push(("ZZZZZZZ".into(), String::new())),
                4 => m.sensitive = vec![Sensitive::new(format!("{secret}q"))],
                5 => m.files[0].name.push('/'),
                _ => prev2 = step_key(&prev, &StepKeyInputs::default()),
            }
            prop_assert_ne!(step_key(&prev2, &m), k);
        }

        #[test]
        fn env_permutations_give_the_same_key(
            env in proptest::collection::btree_map("[A-Z]{1,6}", "[ -~]{0,10}", 0..8),
            seed in any::<u64>(),
        ) {
            let prev = base_key(&base());
            let mut a = step();
            a.env = env.clone().into_iter().collect();
            let mut b = a.clone();
            // A deterministic shuffle.
            let n = b.env.len();
            let mut s = seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let j = (s >> 33) as usize % (i + 1);
                b.env.swap(i, j);
            }
            prop_assert_eq!(step_key(&prev, &a), step_key(&prev, &b));
        }
    }
}
