//! `source "qemu"`: the typed, validated configuration, decoded from an
//! evaluated block with Packer's defaults and validation rules
//! (packer-plugin-qemu `builder/qemu/config.go`, Packer 1.6.6
//! `builder/qemu/config.go` and the SDK's ISO/HTTP/floppy/CD/boot/
//! communicator/shutdown configs).
//!
//! Decoding is pure: it reads nothing from disk. Checks that need the host
//! (files exist, the output directory does not) belong to preflight.

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_secret::Sensitive;
use kiln_template::body::Body;
use kiln_template::decode::{DecodeError, Decoder, GoDuration, is_zero_value, parse_go_duration};
use kiln_template::span::Span;

use crate::bootcmd;
use crate::schema::{FIELDS, SCHEMA};

/// A size as `qemu-img` takes it, with its value in bytes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DiskSize {
    /// What is passed to `qemu-img` (Packer appends `M` to a bare number).
    pub arg: String,
    pub bytes: u64,
}

impl DiskSize {
    /// Parse `disk_size` as Packer does: digits with an optional
    /// `b`/`k`/`m`/`g`/`t` suffix (any case); a bare number is MiB; empty or
    /// `0` is the default `40960M`.
    pub fn parse_disk_size(text: &str) -> Result<DiskSize, String> {
        let text = text.trim();
        if text.is_empty() || text == "0" {
            return Ok(DiskSize {
                arg: "40960M".into(),
                bytes: 40960 << 20,
            });
        }
        let (digits, suffix) = match text.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], Some(c)),
            _ => (text, None),
        };
        let invalid = || {
            format!(
                "invalid disk size {text:?}: expected a whole number with an optional unit b, k, m, g or t, such as \"10G\" or \"10240M\" (a bare number is MiB)"
            )
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let n: u64 = digits.parse().map_err(|_| invalid())?;
        let unit: u64 = match suffix.map(|c| c.to_ascii_lowercase()) {
            None | Some('m') => 1 << 20,
            Some('b') => 1,
            Some('k') => 1 << 10,
            Some('g') => 1 << 30,
            Some('t') => 1 << 40,
            Some(_) => return Err(invalid()),
        };
        let bytes = n.checked_mul(unit).ok_or_else(invalid)?;
        let arg = if suffix.is_none() {
            format!("{text}M")
        } else {
            text.to_string()
        };
        Ok(DiskSize { arg, bytes })
    }

    /// A size as `qemu-img` reads it (for `disk_additional_size`, which
    /// Packer passes unchanged): a bare number is bytes; suffixes
    /// `k`/`M`/`G`/`T`/`P`/`E` are powers of 1024, `b` is ignored.
    pub fn parse_qemu_img_size(text: &str) -> Result<DiskSize, String> {
        let t = text.trim();
        let invalid = || {
            format!(
                "invalid disk size {text:?}: expected e.g. \"10G\" (a bare number is bytes here)"
            )
        };
        let (digits, unit) = match t.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let unit: u64 = match c.to_ascii_lowercase() {
                    'b' => 1,
                    'k' => 1 << 10,
                    'm' => 1 << 20,
                    'g' => 1 << 30,
                    't' => 1 << 40,
                    'p' => 1 << 50,
                    'e' => 1 << 60,
                    _ => return Err(invalid()),
                };
                (&t[..i], unit)
            }
            _ => (t, 1),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let n: u64 = digits.parse().map_err(|_| invalid())?;
        Ok(DiskSize {
            arg: t.to_string(),
            bytes: n.checked_mul(unit).ok_or_else(invalid)?,
        })
    }
}

/// The checksum of the source file (`iso_checksum`), as go-getter reads it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IsoChecksum {
    /// `none`: not verified.
    None,
    /// A digest: `algorithm` is `md5`, `sha1`, `sha256` or `sha512`;
    /// `hex` is lowercase.
    Digest { algorithm: String, hex: String },
    /// `file:LOCATION`: a SUMS file (URL or path) listing the digest.
    File { location: String },
}

impl IsoChecksum {
    pub fn parse(text: &str) -> Result<IsoChecksum, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("none") {
            return Ok(IsoChecksum::None);
        }
        if t.is_empty() {
            return Err("a checksum must be specified (or `none`)".into());
        }
        if t.to_ascii_lowercase().ends_with(".iso") {
            return Err(format!(
                "invalid checksum {t:?}: `.iso` is not a valid checksum ending"
            ));
        }
        let (algorithm, hex) = match t.split_once(':') {
            Some(("file", location)) => {
                return Ok(IsoChecksum::File {
                    location: location.to_string(),
                });
            }
            Some((algo, hex)) => {
                let algo = algo.to_ascii_lowercase();
                if !matches!(algo.as_str(), "md5" | "sha1" | "sha256" | "sha512") {
                    return Err(format!(
                        "unsupported checksum type {algo:?} (expected md5, sha1, sha256, sha512, file or none)"
                    ));
                }
                (algo, hex)
            }
            None => {
                let algo = match t.len() {
                    32 => "md5",
                    40 => "sha1",
                    64 => "sha256",
                    128 => "sha512",
                    n => {
                        return Err(format!(
                            "cannot guess the checksum type of a {n}-character value; prefix it with its type, e.g. `sha256:`"
                        ));
                    }
                };
                (algo.to_string(), t)
            }
        };
        let want = match algorithm.as_str() {
            "md5" => 32,
            "sha1" => 40,
            "sha256" => 64,
            _ => 128,
        };
        if hex.len() != want || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "invalid {algorithm} checksum {hex:?}: expected {want} hexadecimal digits"
            ));
        }
        Ok(IsoChecksum::Digest {
            algorithm,
            hex: hex.to_ascii_lowercase(),
        })
    }
}

/// The output disk format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskFormat {
    Qcow2,
    Raw,
}

impl DiskFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
        }
    }
}

/// An accelerator QEMU can use (`-machine accel=…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Accelerator {
    Kvm,
    Tcg,
    /// No `accel=` at all (QEMU's default).
    None,
    Xen,
    Hax,
    Hvf,
    Whpx,
}

impl Accelerator {
    pub fn parse(text: &str) -> Option<Accelerator> {
        Some(match text {
            "kvm" => Accelerator::Kvm,
            "tcg" => Accelerator::Tcg,
            "none" => Accelerator::None,
            "xen" => Accelerator::Xen,
            "hax" => Accelerator::Hax,
            "hvf" => Accelerator::Hvf,
            "whpx" => Accelerator::Whpx,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "tcg",
            Accelerator::None => "none",
            Accelerator::Xen => "xen",
            Accelerator::Hax => "hax",
            Accelerator::Hvf => "hvf",
            Accelerator::Whpx => "whpx",
        }
    }
}

impl std::fmt::Display for Accelerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Extra `qemu-img` arguments per subcommand (the `qemu_img_args` block).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct QemuImgArgs {
    pub create: Vec<String>,
    pub convert: Vec<String>,
    pub resize: Vec<String>,
}

/// CPU topology (`cpus`, `sockets`, `cores`, `threads`; 0 = unset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Smp {
    pub cpus: u32,
    pub sockets: u32,
    pub cores: u32,
    pub threads: u32,
}

impl Smp {
    /// `sockets * cores * threads` over the parts that are set (0 if none).
    pub fn topology_cpus(&self) -> u32 {
        let mut total = self.sockets;
        if self.cores > 0 && total > 0 {
            total = total.saturating_mul(self.cores);
        }
        if total == 0 {
            total = self.cores;
        }
        if self.threads > 0 && total != 0 {
            total = total.saturating_mul(self.threads);
        }
        if total == 0 {
            total = self.threads;
        }
        total
    }

    /// The vCPUs the guest gets: the smaller of `cpus` and the topology.
    pub fn effective_cpus(&self) -> u32 {
        let topology = self.topology_cpus();
        match (self.cpus, topology) {
            (0, 0) => 1,
            (0, t) => t,
            (c, 0) => c,
            (c, t) => c.min(t),
        }
    }

    /// The value of `-smp`, as packer-plugin-qemu builds it.
    pub fn arg(&self) -> String {
        let mut s = self.effective_cpus().to_string();
        for (name, n) in [
            ("sockets", self.sockets),
            ("cores", self.cores),
            ("threads", self.threads),
        ] {
            if n > 0 {
                s.push_str(&format!(",{name}={n}"));
            }
        }
        s
    }
}

/// UEFI boot through pflash drives.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EfiConfig {
    pub enabled: bool,
    /// Explicit code file; `None`: looked up on the host.
    pub code: Option<String>,
    /// Explicit vars template; `None`: looked up on the host.
    pub vars: Option<String>,
    pub drop_efivars: bool,
}

/// VNC: off unless the template asks for it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VncConfig {
    /// A `vnc_*` option was set: start VNC (kiln types over QMP, not VNC).
    pub enabled: bool,
    pub disabled: bool,
    pub bind_address: String,
    pub port_min: u16,
    pub port_max: u16,
    pub use_password: bool,
    pub password: Option<Sensitive<String>>,
}

/// The HTTP server for the guest.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HttpConfig {
    pub directory: Option<String>,
    pub content: BTreeMap<String, String>,
    pub port_min: u16,
    pub port_max: u16,
    pub bind_address: String,
    pub network_protocol: String,
}

impl HttpConfig {
    /// Whether a server is started at all.
    pub fn enabled(&self) -> bool {
        self.directory.is_some() || !self.content.is_empty()
    }
}

/// Seed media built in-process.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MediaConfig {
    pub cd_files: Vec<String>,
    pub cd_content: BTreeMap<String, String>,
    pub cd_label: Option<String>,
    pub floppy_files: Vec<String>,
    pub floppy_dirs: Vec<String>,
    pub floppy_content: BTreeMap<String, String>,
    pub floppy_label: Option<String>,
}

impl MediaConfig {
    pub fn has_cd(&self) -> bool {
        !self.cd_files.is_empty() || !self.cd_content.is_empty()
    }
    pub fn has_floppy(&self) -> bool {
        !self.floppy_files.is_empty()
            || !self.floppy_dirs.is_empty()
            || !self.floppy_content.is_empty()
    }
}

/// Typing at boot.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BootConfig {
    /// The boot command as written (joined by Packer before rendering).
    pub command: Vec<String>,
    /// `boot_steps`: (keys, description).
    pub steps: Vec<(String, Option<String>)>,
    pub wait: Duration,
    pub key_interval: Option<Duration>,
}

impl BootConfig {
    /// The steps to type: `boot_command` as one step, or `boot_steps`.
    pub fn steps_to_type(&self) -> Vec<(String, Option<String>)> {
        if !self.command.is_empty() {
            vec![(self.command.concat(), None)]
        } else {
            self.steps.clone()
        }
    }
}

/// The SSH communicator.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SshConfig {
    pub host: Option<String>,
    pub port: u16,
    pub username: String,
    pub password: Option<Sensitive<String>>,
    pub private_key_file: Option<String>,
    pub timeout: Duration,
    pub handshake_attempts: u32,
    pub clear_authorized_keys: bool,
    pub temporary_key_pair_type: String,
    pub temporary_key_pair_bits: Option<u32>,
    pub pty: bool,
    /// `None`: keep-alives disabled (a negative value in the template).
    pub keep_alive_interval: Option<Duration>,
    pub read_write_timeout: Option<Duration>,
    pub file_transfer_method: String,
    pub ciphers: Vec<String>,
    pub key_exchange_algorithms: Vec<String>,
    pub agent_auth: bool,
    pub disable_agent_forwarding: bool,
    pub pause_before_connecting: Duration,
}

/// How kiln talks to the guest.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Communicator {
    Ssh(Box<SshConfig>),
    None,
}

/// The host port forwarded to the guest's SSH port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HostPortRange {
    pub min: u16,
    pub max: u16,
    pub skip_nat_mapping: bool,
}

/// A decoded `source "qemu"` block with Packer's defaults applied.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct QemuConfig {
    /// The source's name (`source "qemu" "NAME"`), Packer's build name.
    pub name: String,
    pub iso_urls: Vec<String>,
    pub iso_checksum: IsoChecksum,
    pub iso_target_path: Option<String>,
    pub iso_target_extension: String,
    pub disk_image: bool,
    pub use_backing_file: bool,
    pub disk_size: DiskSize,
    pub disk_additional_size: Vec<DiskSize>,
    pub skip_resize_disk: bool,
    pub format: DiskFormat,
    pub disk_interface: String,
    pub disk_cache: String,
    pub disk_discard: String,
    pub disk_detect_zeroes: String,
    pub skip_compaction: bool,
    pub disk_compression: bool,
    pub qemu_img_args: QemuImgArgs,
    /// `None`: not set; the caller decides (probe, else TCG).
    pub accelerator: Option<Accelerator>,
    pub machine_type: String,
    pub cpu_model: Option<String>,
    /// MiB.
    pub memory: u64,
    pub smp: Smp,
    pub net_device: String,
    pub cdrom_interface: Option<String>,
    pub vga: Option<String>,
    pub firmware: Option<String>,
    pub use_pflash: bool,
    pub efi: EfiConfig,
    pub headless: bool,
    pub display: Option<String>,
    pub use_default_display: bool,
    pub qemu_binary: String,
    pub qemuargs: Vec<Vec<String>>,
    pub qmp_enable: bool,
    pub qmp_socket_path: Option<String>,
    pub vnc: VncConfig,
    pub http: HttpConfig,
    pub media: MediaConfig,
    pub boot: BootConfig,
    pub communicator: Communicator,
    pub host_port: HostPortRange,
    pub shutdown_command: Option<String>,
    pub shutdown_timeout: Duration,
    pub output_directory: String,
    pub vm_name: String,
    /// Where each attribute was written (absent: defaulted).
    #[serde(skip)]
    pub spans: BTreeMap<&'static str, Span>,
}

/// Something worth telling about a valid config.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConfigWarning {
    pub span: Span,
    pub message: String,
    /// What to do about it (a "did you mean").
    pub help: Option<String>,
    /// The text inside the attribute the warning is about, so that the
    /// caller can point at its own line (`<wiat5>` in a long list).
    pub text: Option<String>,
}

/// A decoded config and its warnings.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub config: QemuConfig,
    pub warnings: Vec<ConfigWarning>,
}

const ACCELERATORS: &str = "`kvm`, `tcg`, `none`, `xen`, `hax`, `hvf` or `whpx`";
const DISK_INTERFACES: &[&str] = &["ide", "sata", "scsi", "sd", "virtio", "virtio-scsi"];
const DISK_CACHES: &[&str] = &["writethrough", "writeback", "none", "unsafe", "directsync"];
const DISK_DISCARDS: &[&str] = &["unmap", "ignore"];
const DETECT_ZEROES: &[&str] = &["unmap", "on", "off"];
const CDROM_INTERFACES: &[&str] = &["ide", "scsi", "virtio", "virtio-scsi"];

/// A duration that may be negative (Packer uses `-1s` to mean "none").
/// Returns `Ok(None)` for a negative value.
fn signed_duration(d: &mut Decoder<'_>, name: &'static str) -> Option<Option<Duration>> {
    let text: String = d.opt(name)?;
    let trimmed = text.trim();
    let (negative, body) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    match parse_go_duration(body) {
        Ok(v) if negative && !v.is_zero() => Some(None),
        Ok(v) => Some(Some(v)),
        Err(e) => {
            d.error(name, e, None);
            None
        }
    }
}

fn duration(d: &mut Decoder<'_>, name: &'static str) -> Option<Duration> {
    let text: String = d.opt(name)?;
    match parse_go_duration(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            d.error(name, e, None);
            None
        }
    }
}

fn one_of(d: &mut Decoder<'_>, name: &'static str, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        let list = allowed
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let help = kiln_template::decode::did_you_mean(value, allowed)
            .map(|s| format!("did you mean `{s}`?"));
        d.error(
            name,
            format!("unrecognized value {value:?}; allowed: {list}"),
            help,
        );
    }
}

/// A port where 0 (or unset) means the schema's default.
fn port_or_default(d: &mut Decoder<'_>, name: &'static str) -> u16 {
    port(d, name)
        .filter(|p| *p != 0)
        .unwrap_or_else(|| d.default_of(name))
}

fn port(d: &mut Decoder<'_>, name: &'static str) -> Option<u16> {
    let n: i64 = d.opt(name)?;
    match u16::try_from(n) {
        Ok(p) => Some(p),
        Err(_) => {
            d.error(name, format!("{n} is not a TCP port (0–65535)"), None);
            None
        }
    }
}

/// The most vCPUs (and sockets, cores, threads) kiln passes to `-smp`.
pub const MAX_CPUS: i64 = 1024;
/// The most `memory` (MiB) kiln gives a guest: 16 TiB.
pub const MAX_MEMORY_MIB: i64 = 16 << 20;

/// A whole number within `range`, else why not, naming the range. Packer's
/// integer fields are Go `int`s that wrap; kiln bounds each by what its use
/// can take and never truncates or saturates.
fn in_range(raw: f64, range: std::ops::RangeInclusive<i64>, note: &str) -> Result<i64, String> {
    let (lo, hi) = (*range.start(), *range.end());
    if raw.fract() != 0.0 || !raw.is_finite() {
        return Err(format!("{raw} is not a whole number"));
    }
    // Compared as floats: a value beyond i64 is out of range, not cast.
    if raw < lo as f64 || raw > hi as f64 {
        return Err(format!("{raw} is out of range: allowed {lo}..={hi}{note}"));
    }
    Ok(raw as i64)
}

/// An integer field checked by [`in_range`]; an error at the field otherwise.
fn bounded(
    d: &mut Decoder<'_>,
    name: &'static str,
    range: std::ops::RangeInclusive<i64>,
    note: &str,
) -> Option<i64> {
    let raw: f64 = d.opt(name)?;
    in_range(raw, range, note)
        .map_err(|message| d.error(name, message, None))
        .ok()
}

fn count(d: &mut Decoder<'_>, name: &'static str) -> u32 {
    let Some(raw) = d.opt::<f64>(name) else {
        return 0;
    };
    if raw < 0.0 {
        d.error(name, format!("{name} must be a positive number"), None);
        return 0;
    }
    match in_range(raw, 0..=MAX_CPUS, " (0: the default)") {
        Ok(n) => u32::try_from(n).unwrap_or(0),
        Err(message) => {
            d.error(name, message, None);
            0
        }
    }
}

/// Pairs `[keys, description]` of `boot_steps`.
fn boot_steps(d: &mut Decoder<'_>) -> Vec<(String, Option<String>)> {
    let steps: Vec<Vec<String>> = d.or("boot_steps", Vec::new());
    steps
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|mut s| {
            let description = if s.len() >= 2 {
                Some(s.swap_remove(1))
            } else {
                None
            };
            (s.swap_remove(0), description)
        })
        .collect()
}

impl QemuConfig {
    /// Decode a `source "qemu" "NAME"` body. Every problem is collected;
    /// unknown attributes get a "did you mean".
    pub fn decode(body: &Body, name: &str) -> Result<Decoded, Vec<DecodeError>> {
        let what = format!("source \"qemu\" \"{name}\"");
        let mut d = Decoder::with_schema(body, what, &SCHEMA);
        let mut warnings = Vec::new();
        let config = decode_fields(&mut d, body, name, &mut warnings);
        d.finish()?;
        Ok(Decoded { config, warnings })
    }

    /// Whether the main disk is a copy/overlay of a downloaded image.
    pub fn boots_disk_image(&self) -> bool {
        self.disk_image
    }

    /// The path of the main output disk, exactly as Packer forms it
    /// (`filepath.Join(output_directory, vm_name)`).
    pub fn disk_path(&self) -> String {
        join_path(&self.output_directory, &self.vm_name)
    }

    /// Paths of the main disk and the additional disks (`<vm_name>-N`).
    pub fn disk_paths(&self) -> Vec<String> {
        let mut paths = vec![self.disk_path()];
        for i in 0..self.disk_additional_size.len() {
            paths.push(join_path(
                &self.output_directory,
                &format!("{}-{}", self.vm_name, i + 1),
            ));
        }
        paths
    }

    /// The copy of the EFI variables the build boots with.
    pub fn efivars_path(&self) -> String {
        join_path(&self.output_directory, "efivars.fd")
    }

    /// The SSH config, if the communicator is SSH.
    pub fn ssh(&self) -> Option<&SshConfig> {
        match &self.communicator {
            Communicator::Ssh(ssh) => Some(ssh),
            Communicator::None => None,
        }
    }
}

/// Go's `filepath.Join` for the two-element case kiln needs: joined with
/// `/` and cleaned (`./out` + `x` is `out/x`).
pub fn join_path(dir: &str, name: &str) -> String {
    let joined = if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    };
    clean_path(&joined)
}

/// Go's `filepath.Clean` (lexical), as Packer cleans output paths.
pub use kiln_template::gopath::clean as clean_path;

fn decode_fields(
    d: &mut Decoder<'_>,
    body: &Body,
    name: &str,
    warnings: &mut Vec<ConfigWarning>,
) -> QemuConfig {
    let mut spans = BTreeMap::new();
    for field in FIELDS {
        if let Some(attr) = body.attrs.get(field.name) {
            spans.insert(field.name, attr.span.clone());
        }
    }

    // Fields kiln does not act on: refused, or ignored with a warning.
    for w in d.check_support() {
        warnings.push(ConfigWarning {
            span: w.span,
            message: w.message,
            help: None,
            text: None,
        });
    }

    // ISO / source
    let iso_url: Option<String> = d.opt("iso_url");
    let mut iso_urls: Vec<String> = d.or("iso_urls", Vec::new());
    let iso_url = iso_url.filter(|u| !u.is_empty());
    match (iso_url, iso_urls.is_empty()) {
        (Some(_), false) => d.error(
            "iso_urls",
            "only one of `iso_url` or `iso_urls` must be specified",
            None,
        ),
        (Some(url), true) => iso_urls = vec![url],
        (None, true) => d.error(
            "iso_url",
            "one of `iso_url` or `iso_urls` must be specified",
            None,
        ),
        (None, false) => {}
    }
    let checksum_text: Option<String> = d.opt("iso_checksum");
    let iso_checksum = match IsoChecksum::parse(checksum_text.as_deref().unwrap_or("")) {
        Ok(c) => c,
        Err(e) => {
            d.error("iso_checksum", e, None);
            IsoChecksum::None
        }
    };
    if iso_checksum == IsoChecksum::None && d.has("iso_checksum") {
        warnings.push(ConfigWarning {
            span: d.span_of("iso_checksum"),
            message: "a checksum of `none` was specified: the source file is not verified".into(),
            help: None,
            text: None,
        });
    }
    let iso_target_path: Option<String> = d.opt("iso_target_path");
    let iso_target_extension = d
        .or("iso_target_extension", String::new())
        .to_ascii_lowercase();
    let iso_target_extension = if iso_target_extension.is_empty() {
        "iso".to_string()
    } else {
        iso_target_extension
    };

    // disks
    let disk_image = d.or_default::<bool>("disk_image");
    let use_backing_file = d.or_default::<bool>("use_backing_file");
    let disk_size_text: String = d.or("disk_size", String::new());
    let disk_size = DiskSize::parse_disk_size(&disk_size_text).unwrap_or_else(|e| {
        d.error("disk_size", e, None);
        DiskSize {
            arg: "40960M".into(),
            bytes: 40960 << 20,
        }
    });
    let additional: Vec<String> = d.or("disk_additional_size", Vec::new());
    let mut disk_additional_size = Vec::new();
    for size in additional {
        match DiskSize::parse_qemu_img_size(&size) {
            Ok(s) => disk_additional_size.push(s),
            Err(e) => d.error("disk_additional_size", e, None),
        }
    }
    let skip_resize_disk = d.or_default::<bool>("skip_resize_disk");
    let format_text: String = d.or("format", String::new());
    let format = match format_text.as_str() {
        "" | "qcow2" => DiskFormat::Qcow2,
        "raw" => DiskFormat::Raw,
        other => {
            d.error(
                "format",
                format!("invalid format {other:?}, only `qcow2` or `raw` are allowed"),
                None,
            );
            DiskFormat::Qcow2
        }
    };
    let disk_interface = d.non_empty_or_default("disk_interface");
    one_of(d, "disk_interface", &disk_interface, DISK_INTERFACES);
    let disk_cache = d.non_empty_or_default("disk_cache");
    one_of(d, "disk_cache", &disk_cache, DISK_CACHES);
    let disk_discard = d.non_empty_or_default("disk_discard");
    one_of(d, "disk_discard", &disk_discard, DISK_DISCARDS);
    let disk_detect_zeroes = d.non_empty_or_default("disk_detect_zeroes");
    one_of(d, "disk_detect_zeroes", &disk_detect_zeroes, DETECT_ZEROES);
    let mut skip_compaction = d.or_default::<bool>("skip_compaction");
    let mut disk_compression = d.or_default::<bool>("disk_compression");
    let mut qemu_img_args = QemuImgArgs::default();
    let img_blocks = d.blocks("qemu_img_args");
    if img_blocks.len() > 1 {
        d.error(
            "qemu_img_args",
            "only one `qemu_img_args` block is allowed",
            None,
        );
    }
    if let Some(block) = img_blocks.first() {
        let mut inner = Decoder::new(&block.body, "qemu_img_args");
        qemu_img_args.create = inner.or("create", Vec::new());
        qemu_img_args.convert = inner.or("convert", Vec::new());
        qemu_img_args.resize = inner.or("resize", Vec::new());
        if let Err(errors) = inner.finish() {
            for e in errors {
                d.error("qemu_img_args", e.message, e.help);
            }
        }
    }
    if body.attrs.contains_key("qemu_img_args") {
        // JSON templates write it as an attribute (an object).
        let value: Option<BTreeMap<String, Vec<String>>> = d.opt("qemu_img_args");
        if let Some(map) = value {
            for (key, args) in map {
                match key.as_str() {
                    "create" => qemu_img_args.create = args,
                    "convert" => qemu_img_args.convert = args,
                    "resize" => qemu_img_args.resize = args,
                    other => d.error(
                        "qemu_img_args",
                        format!(
                            "unknown subcommand {other:?} (expected create, convert or resize)"
                        ),
                        None,
                    ),
                }
            }
        }
    }

    // machine
    let accelerator = match d.opt::<String>("accelerator").filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match Accelerator::parse(&text) {
            Some(a) => Some(a),
            None => {
                d.error(
                    "accelerator",
                    format!("invalid accelerator {text:?}, only {ACCELERATORS} are allowed"),
                    None,
                );
                None
            }
        },
    };
    let machine_type = d.non_empty_or_default("machine_type");
    let cpu_model: Option<String> = d.opt::<String>("cpu_model").filter(|s| !s.is_empty());
    // Below 10 MiB (negative too) means the default, as in Packer.
    let memory_raw = bounded(
        d,
        "memory",
        i64::MIN..=MAX_MEMORY_MIB,
        " MiB (below 10: the default 512)",
    )
    .unwrap_or(0);
    let memory = u64::try_from(memory_raw)
        .ok()
        .filter(|m| *m >= 10)
        .unwrap_or_else(|| d.default_of("memory"));
    let smp = Smp {
        cpus: count(d, "cpus"),
        sockets: count(d, "sockets"),
        cores: count(d, "cores"),
        threads: count(d, "threads"),
    };
    let net_device = d.non_empty_or_default("net_device");
    let cdrom_interface: Option<String> =
        d.opt::<String>("cdrom_interface").filter(|s| !s.is_empty());
    if let Some(ci) = &cdrom_interface {
        let ci = ci.clone();
        one_of(d, "cdrom_interface", &ci, CDROM_INTERFACES);
    }
    let vga: Option<String> = d.opt::<String>("vga").filter(|s| !s.is_empty());
    let firmware: Option<String> = d.opt::<String>("firmware").filter(|s| !s.is_empty());
    let use_pflash = d.or_default::<bool>("use_pflash");
    let efi_code: Option<String> = d
        .opt::<String>("efi_firmware_code")
        .filter(|s| !s.is_empty());
    let efi_vars: Option<String> = d
        .opt::<String>("efi_firmware_vars")
        .filter(|s| !s.is_empty());
    let efi = EfiConfig {
        enabled: d.or_default::<bool>("efi_boot") || efi_code.is_some() || efi_vars.is_some(),
        code: efi_code,
        vars: efi_vars,
        drop_efivars: d.or_default::<bool>("efi_drop_efivars"),
    };
    let headless = d.or_default::<bool>("headless");
    let display: Option<String> = d.opt::<String>("display").filter(|s| !s.is_empty());
    let use_default_display = d.or_default::<bool>("use_default_display");
    let qemu_binary = d.non_empty_or_default("qemu_binary");
    let qemuargs: Vec<Vec<String>> = d.or("qemuargs", Vec::new());
    for (i, arg) in qemuargs.iter().enumerate() {
        if arg.is_empty() {
            d.error(
                "qemuargs",
                format!("element {i} is empty: each element is [switch, values...]"),
                None,
            );
        }
    }
    let qmp_socket_path: Option<String> =
        d.opt::<String>("qmp_socket_path").filter(|s| !s.is_empty());

    // VNC
    // Any `vnc_*` field set (not to its zero value) starts VNC.
    let vnc_set = SCHEMA
        .fields()
        .filter(|f| f.name.starts_with("vnc_"))
        .any(|f| {
            body.attrs
                .get(f.name)
                .is_some_and(|a| !is_zero_value(&a.value))
        });
    let vnc_bind = d.non_empty_or_default("vnc_bind_address");
    let vnc_min = port_or_default(d, "vnc_port_min");
    let vnc_max = port_or_default(d, "vnc_port_max");
    if vnc_min < 5900 {
        d.error("vnc_port_min", "vnc_port_min cannot be below 5900", None);
    }
    if vnc_min > vnc_max {
        d.error(
            "vnc_port_min",
            "vnc_port_min must be less than vnc_port_max",
            None,
        );
    }
    let vnc_use_password = d.or_default::<bool>("vnc_use_password");
    let vnc_password: Option<String> = d.opt::<String>("vnc_password").filter(|s| !s.is_empty());
    if vnc_password.as_ref().is_some_and(|p| p.len() > 8) {
        d.error(
            "vnc_password",
            "the VNC password is longer than 8 characters",
            None,
        );
    }
    let disable_vnc = d.or_default::<bool>("disable_vnc");
    let vnc = VncConfig {
        enabled: vnc_set && !disable_vnc,
        disabled: disable_vnc,
        bind_address: vnc_bind,
        port_min: vnc_min,
        port_max: vnc_max,
        use_password: vnc_use_password,
        password: vnc_password.map(Sensitive::new),
    };
    let qmp_enable = d.or_default::<bool>("qmp_enable") || vnc.use_password;
    let qmp_socket_path = if qmp_enable && qmp_socket_path.is_none() {
        None // defaulted below, once output_directory/vm_name are known
    } else {
        qmp_socket_path
    };

    // HTTP
    let http_directory: Option<String> =
        d.opt::<String>("http_directory").filter(|s| !s.is_empty());
    let http_content: BTreeMap<String, String> = d.or("http_content", BTreeMap::new());
    if http_directory.is_some() && !http_content.is_empty() {
        d.error(
            "http_content",
            "`http_content` cannot be used in conjunction with `http_directory`; serve files with `http_content = { \"/x\" = file(\"x\") }`",
            None,
        );
    }
    for key in http_content.keys() {
        if !key.starts_with('/') {
            d.error(
                "http_content",
                format!("path {key:?} must start with `/`"),
                None,
            );
        }
    }
    let http_min = port_or_default(d, "http_port_min");
    let http_max = port_or_default(d, "http_port_max");
    if http_min > http_max {
        d.error(
            "http_port_min",
            "http_port_min must be less than http_port_max",
            None,
        );
    }
    let http_bind = d.non_empty_or_default("http_bind_address");
    let http_protocol = d.non_empty_or_default("http_network_protocol");
    one_of(
        d,
        "http_network_protocol",
        &http_protocol,
        &["tcp", "tcp4", "tcp6"],
    );
    let http = HttpConfig {
        directory: http_directory,
        content: http_content,
        port_min: http_min,
        port_max: http_max,
        bind_address: http_bind,
        network_protocol: http_protocol,
    };

    // media
    let media = MediaConfig {
        cd_files: d.or("cd_files", Vec::new()),
        cd_content: d.or("cd_content", BTreeMap::new()),
        cd_label: d.opt::<String>("cd_label").filter(|s| !s.is_empty()),
        floppy_files: d.or("floppy_files", Vec::new()),
        floppy_dirs: d.or("floppy_dirs", Vec::new()),
        floppy_content: d.or("floppy_content", BTreeMap::new()),
        floppy_label: d.opt::<String>("floppy_label").filter(|s| !s.is_empty()),
    };
    if let Some(label) = &media.cd_label
        && label.chars().count() > 32
    {
        d.error("cd_label", "a CD volume id has at most 32 characters", None);
    }
    if let Some(label) = &media.floppy_label
        && label.chars().count() > 11
    {
        d.error(
            "floppy_label",
            "a FAT volume label has at most 11 characters",
            None,
        );
    }

    // boot
    let command: Vec<String> = d.or("boot_command", Vec::new());
    let steps = boot_steps(d);
    if !command.is_empty() && !steps.is_empty() {
        d.error(
            "boot_steps",
            "boot_command and boot_steps cannot be used together",
            None,
        );
    }
    if !command.is_empty() && disable_vnc {
        d.error(
            "boot_command",
            "a boot command cannot be used when vnc is disabled",
            None,
        );
    }
    let boot_field = if command.is_empty() {
        "boot_steps"
    } else {
        "boot_command"
    };
    for (keys, _) in std::iter::once((command.concat(), None::<String>)).chain(steps.clone()) {
        if let Err(e) = bootcmd::parse(&keys) {
            d.error(boot_field, e.to_string(), None);
        }
        // Packer types an unknown `<name>` literally: worth a warning, not
        // an error (common/bootcommand's grammar falls back to literals).
        for unknown in bootcmd::unknown_keys(&keys) {
            warnings.push(ConfigWarning {
                span: d.span_of(boot_field),
                message: format!(
                    "`{}` in `{boot_field}` is not a key Packer knows: it is typed literally, character by character",
                    unknown.text
                ),
                help: unknown
                    .suggestion
                    .as_ref()
                    .map(|s| format!("did you mean `{s}`?")),
                text: Some(unknown.text),
            });
        }
    }
    let boot_wait = match signed_duration(d, "boot_wait") {
        Some(None) => Duration::ZERO,
        Some(Some(v)) if !v.is_zero() => v,
        _ => d.default_of::<GoDuration>("boot_wait").0,
    };
    let key_interval = duration(d, "boot_key_interval").filter(|v| !v.is_zero());
    let boot = BootConfig {
        command,
        steps,
        wait: boot_wait,
        key_interval,
    };

    // communicator
    let comm_type = d.non_empty_or_default("communicator");
    let pause_before_connecting = duration(d, "pause_before_connecting").unwrap_or_default();
    let ssh_host: Option<String> = d.opt::<String>("ssh_host").filter(|s| !s.is_empty());
    let ssh_port = port_or_default(d, "ssh_port");
    let ssh_username: Option<String> = d.opt::<String>("ssh_username").filter(|s| !s.is_empty());
    let ssh_password: Option<String> = d.opt::<String>("ssh_password").filter(|s| !s.is_empty());
    let ssh_private_key_file: Option<String> = d
        .opt::<String>("ssh_private_key_file")
        .filter(|s| !s.is_empty());
    // `ssh_wait_timeout` wins over `ssh_timeout`, as in Packer's SDK.
    let wait_timeout = duration(d, "ssh_wait_timeout").filter(|v| !v.is_zero());
    let timeout = duration(d, "ssh_timeout").filter(|v| !v.is_zero());
    let ssh_timeout = wait_timeout
        .or(timeout)
        .unwrap_or_else(|| d.default_of::<GoDuration>("ssh_timeout").0);
    let handshake = bounded(
        d,
        "ssh_handshake_attempts",
        i64::MIN..=i64::from(u32::MAX),
        " (0 or less: the default 10)",
    )
    .unwrap_or(0);
    let handshake_attempts = u32::try_from(handshake)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or_else(|| d.default_of("ssh_handshake_attempts"));
    let clear_authorized_keys = d.or_default::<bool>("ssh_clear_authorized_keys");
    let key_type = d.non_empty_or_default("temporary_key_pair_type");
    one_of(
        d,
        "temporary_key_pair_type",
        &key_type,
        &["ed25519", "rsa", "ecdsa", "dsa"],
    );
    let key_bits = bounded(
        d,
        "temporary_key_pair_bits",
        i64::MIN..=16384,
        " (0 or less: the key type's default)",
    )
    .unwrap_or(0);
    let temporary_key_pair_bits = u32::try_from(key_bits).ok().filter(|n| *n > 0);
    let pty = d.or_default::<bool>("ssh_pty");
    let keep_alive_interval = match signed_duration(d, "ssh_keep_alive_interval") {
        Some(None) => None,
        Some(Some(v)) if !v.is_zero() => Some(v),
        _ => Some(d.default_of::<GoDuration>("ssh_keep_alive_interval").0),
    };
    let read_write_timeout = duration(d, "ssh_read_write_timeout").filter(|v| !v.is_zero());
    let file_transfer_method = d.non_empty_or_default("ssh_file_transfer_method");
    one_of(
        d,
        "ssh_file_transfer_method",
        &file_transfer_method,
        &["scp", "sftp"],
    );
    let ciphers = d.or("ssh_ciphers", Vec::new());
    let key_exchange_algorithms = d.or("ssh_key_exchange_algorithms", Vec::new());
    let agent_auth = d.or_default::<bool>("ssh_agent_auth");
    let disable_agent_forwarding = d.or_default::<bool>("ssh_disable_agent_forwarding");

    let host_min_new = port(d, "host_port_min").filter(|p| *p != 0);
    let host_max_new = port(d, "host_port_max").filter(|p| *p != 0);
    let host_min_old = port(d, "ssh_host_port_min").filter(|p| *p != 0);
    let host_max_old = port(d, "ssh_host_port_max").filter(|p| *p != 0);
    for (old, new) in [
        ("ssh_host_port_min", "host_port_min"),
        ("ssh_host_port_max", "host_port_max"),
    ] {
        if d.has(old) {
            warnings.push(ConfigWarning {
                span: d.span_of(old),
                message: format!("`{old}` is deprecated and is being replaced by `{new}`"),
                help: None,
                text: None,
            });
        }
    }
    let skip_nat_mapping = d.or_default::<bool>("skip_nat_mapping");
    let host_port = HostPortRange {
        min: host_min_old
            .or(host_min_new)
            .unwrap_or_else(|| d.default_of("host_port_min")),
        max: host_max_old
            .or(host_max_new)
            .unwrap_or_else(|| d.default_of("host_port_max")),
        skip_nat_mapping,
    };
    if host_port.min > host_port.max {
        d.error(
            "host_port_min",
            "host_port_min must be less than host_port_max",
            None,
        );
    }

    let communicator = match comm_type.as_str() {
        "ssh" => {
            if ssh_username.is_none() {
                d.error(
                    "ssh_username",
                    "an `ssh_username` must be specified with `communicator = \"ssh\"`",
                    None,
                );
            }
            let host = ssh_host.or_else(|| skip_nat_mapping.then(|| "127.0.0.1".to_string()));
            Communicator::Ssh(Box::new(SshConfig {
                host,
                port: ssh_port,
                username: ssh_username.unwrap_or_default(),
                password: ssh_password.map(Sensitive::new),
                private_key_file: ssh_private_key_file,
                timeout: ssh_timeout,
                handshake_attempts,
                clear_authorized_keys,
                temporary_key_pair_type: key_type,
                temporary_key_pair_bits,
                pty,
                keep_alive_interval,
                read_write_timeout,
                file_transfer_method,
                ciphers,
                key_exchange_algorithms,
                agent_auth,
                disable_agent_forwarding,
                pause_before_connecting,
            }))
        }
        "none" => Communicator::None,
        "winrm" => {
            d.error(
                "communicator",
                "the `winrm` communicator is not supported by kiln",
                None,
            );
            Communicator::None
        }
        other => {
            d.error(
                "communicator",
                format!("communicator type {other:?} is invalid (expected `ssh` or `none`)"),
                kiln_template::decode::did_you_mean(other, &["ssh", "none"])
                    .map(|s| format!("did you mean `{s}`?")),
            );
            Communicator::None
        }
    };

    // shutdown
    let shutdown_command: Option<String> = d
        .opt::<String>("shutdown_command")
        .filter(|s| !s.is_empty());
    let shutdown_timeout = duration(d, "shutdown_timeout")
        .filter(|v| !v.is_zero())
        .unwrap_or_else(|| d.default_of::<GoDuration>("shutdown_timeout").0);

    // outputs
    let output_directory = non_empty(d.opt("output_directory"), &format!("output-{name}"));
    let vm_name = non_empty(d.opt("vm_name"), &format!("packer-{name}"));

    // Packer's cross-field rules.
    if format != DiskFormat::Qcow2 {
        skip_compaction = true;
        disk_compression = false;
    }
    if use_backing_file {
        skip_compaction = true;
        if !(disk_image && format == DiskFormat::Qcow2) {
            d.error(
                "use_backing_file",
                "use_backing_file can only be enabled for QCOW2 images and when disk_image is true",
                None,
            );
        }
    }
    if skip_resize_disk && !disk_image {
        d.error(
            "skip_resize_disk",
            "skip_resize_disk can only be used when disk_image is true",
            None,
        );
    }
    let qmp_socket_path = if qmp_enable {
        Some(
            qmp_socket_path
                .unwrap_or_else(|| join_path(&output_directory, &format!("{vm_name}.monitor"))),
        )
    } else {
        qmp_socket_path
    };

    QemuConfig {
        name: name.to_string(),
        iso_urls,
        iso_checksum,
        iso_target_path,
        iso_target_extension,
        disk_image,
        use_backing_file,
        disk_size,
        disk_additional_size,
        skip_resize_disk,
        format,
        disk_interface,
        disk_cache,
        disk_discard,
        disk_detect_zeroes,
        skip_compaction,
        disk_compression,
        qemu_img_args,
        accelerator,
        machine_type,
        cpu_model,
        memory,
        smp,
        net_device,
        cdrom_interface,
        vga,
        firmware,
        use_pflash,
        efi,
        headless,
        display,
        use_default_display,
        qemu_binary,
        qemuargs,
        qmp_enable,
        qmp_socket_path,
        vnc,
        http,
        media,
        boot,
        communicator,
        host_port,
        shutdown_command,
        shutdown_timeout,
        output_directory,
        vm_name,
        spans,
    }
}

/// The names the decoder asks for (the schema as the code sees it).
pub fn decoded_names() -> Vec<&'static str> {
    let body = Body::empty(Span::synthetic("schema"));
    let mut d = Decoder::with_schema(&body, "schema", &SCHEMA);
    let mut warnings = Vec::new();
    let _ = decode_fields(&mut d, &body, "schema", &mut warnings);
    let mut names = d.known_names().to_vec();
    names.sort_unstable();
    names.dedup();
    names
}

fn non_empty(value: Option<String>, default: &str) -> String {
    match value {
        Some(v) if !v.is_empty() => v,
        _ => default.to_string(),
    }
}

#[cfg(test)]
mod tests;
