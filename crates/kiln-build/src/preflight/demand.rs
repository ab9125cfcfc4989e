//! What a build will need from the host, with where each number was set.
//!
//! The planner fills a [`Demand`] per build: [`Demand::from_qemu`] reads
//! everything a `source "qemu"` block implies (memory, disks, ports, the
//! QEMU binary, machine type, accelerator, CPU model, firmware and the
//! files `qemuargs` name, `qemu-img`); the planner adds what only it knows
//! (downloads into the cache, post-processor outputs, the programs of
//! `shell-local` steps via [`programs_in_shell`]).

use std::path::{Path, PathBuf};

use kiln_qemu::QemuConfig;
use kiln_qemu::config::{Communicator, DiskFormat, clean_path};
use serde::{Deserialize, Serialize};

use super::qemuargs;

/// Where a figure was set, as shown to users.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// E.g. `var.memory, set in VAR03.pkr.hcl:4`, `` `memory`, set in
    /// build.pkr.hcl:12 ``, ``Packer's default for `memory` ``.
    pub text: String,
    /// The input variable that set the value (`memory` for `var.memory`),
    /// so a fix can say `-var memory=8192`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub var: Option<String>,
}

impl Origin {
    pub fn new(text: impl Into<String>) -> Origin {
        Origin {
            text: text.into(),
            var: None,
        }
    }

    /// Set by an input variable.
    pub fn var(var: impl Into<String>, text: impl Into<String>) -> Origin {
        Origin {
            text: text.into(),
            var: Some(var.into()),
        }
    }

    /// Packer's (or kiln's) default: nothing in the template set `field`.
    pub fn default_value(field: &str) -> Origin {
        Origin::new(format!("Packer's default for `{field}`"))
    }
}

/// A demanded value and where it was set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figure<T> {
    pub value: T,
    /// E.g. `var.memory, set in VAR03.pkr.hcl:4`.
    pub origin: String,
    /// The input variable behind the value, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub var: Option<String>,
}

impl<T> Figure<T> {
    pub fn new(value: T, origin: impl Into<String>) -> Figure<T> {
        Figure {
            value,
            origin: origin.into(),
            var: None,
        }
    }

    pub fn with_origin(value: T, origin: Origin) -> Figure<T> {
        Figure {
            value,
            origin: origin.text,
            var: origin.var,
        }
    }
}

/// Space a build writes into a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskDemand {
    /// Where it is written (need not exist yet: free space is measured on
    /// the nearest existing parent).
    pub dir: PathBuf,
    /// Bytes, and where the number was set.
    pub bytes: Figure<u64>,
    /// E.g. "the disk `output-x/packer-x`" (the origin names the field).
    pub what: String,
    /// A thin-provisioned upper bound (a qcow2 or sparse raw disk grows
    /// only as the guest writes): exceeding free space is a warning, not a
    /// refusal. Downloads, copies and preallocated disks are not sparse.
    pub sparse: bool,
}

/// A port range a build binds in (one free port is enough).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortDemand {
    /// E.g. "the SSH port forward".
    pub what: String,
    /// The address bound (`127.0.0.1`, `0.0.0.0`).
    pub bind: String,
    pub min: u16,
    /// Inclusive, as kiln binds (`min..=max`).
    pub max: u16,
    /// The fields that set it.
    pub origin: String,
}

/// A file (or directory) that must exist before the build starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDemand {
    /// Absolute, or relative to where the build runs (resolved by
    /// [`Demand::from_qemu`] against its base directory).
    pub path: PathBuf,
    /// What needs it: "UEFI firmware (`-drive if=pflash`)".
    pub what: String,
    /// Where it is named: ``qemuargs[4] `-drive …` ``, `` `firmware`, set in … ``.
    pub origin: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub directory: bool,
}

/// A program that must (or should) be on `PATH`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramDemand {
    pub name: String,
    /// E.g. "creating and converting disks" or "the shell-local
    /// post-processor (`inline[0]`)".
    pub what: String,
    /// A missing required program fails the check; others (guessed from
    /// shell commands) only warn.
    pub required: bool,
}

/// UEFI firmware looked up on the host (`efi_boot` without explicit
/// `efi_firmware_code`/`efi_firmware_vars`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UefiDemand {
    /// `x86_64`, `aarch64`, … (of the QEMU binary).
    pub arch: String,
    pub origin: String,
}

/// What one build will need from the host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demand {
    /// Packer's build name, e.g. `qemu.cloudimg`.
    pub build: String,
    /// The guest's `-m`, MiB.
    pub memory_mib: Option<Figure<u64>>,
    pub cpus: Option<Figure<u32>>,
    pub disks: Vec<DiskDemand>,
    pub ports: Vec<PortDemand>,
    /// The emulator (`qemu-system-x86_64`).
    pub qemu_binary: Option<Figure<String>>,
    /// The machine type in effect (`machine_type`, or a `qemuargs`
    /// `-machine` that replaces kiln's).
    pub machine_type: Option<Figure<String>>,
    /// The accelerator asked for: the `accelerator` field, `accel=` inside
    /// a `qemuargs` `-machine`, `-accel`/`-enable-kvm`. `None`: unset, kiln
    /// decides with the probe (KVM when it works, else TCG). A value may
    /// be a QEMU fallback list (`kvm:tcg`).
    pub accelerator: Option<Figure<String>>,
    /// `cpu_model` or a `qemuargs` `-cpu` (`host` needs KVM).
    pub cpu_model: Option<Figure<String>>,
    /// `-accel tcg,tb-size=N` or `-tb-size N` (MiB): the TCG translation
    /// cache when set; else QEMU's default is used in the memory check.
    pub tcg_tb_size_mib: Option<Figure<u64>>,
    pub uefi: Option<UefiDemand>,
    pub files: Vec<FileDemand>,
    pub programs: Vec<ProgramDemand>,
}

impl Demand {
    pub fn new(build: impl Into<String>) -> Demand {
        Demand {
            build: build.into(),
            ..Demand::default()
        }
    }

    /// The demand of a `source "qemu"` build.
    ///
    /// `base_dir` is where the build runs (relative paths in the template
    /// resolve against it, as QEMU and Packer resolve them against their
    /// working directory). `origin` tells where a field's value came from
    /// when the caller knows more than the attribute's span (a variable:
    /// `Origin::var("memory", "var.memory, set in VAR03.pkr.hcl:4")`);
    /// when it returns `None` the span of the attribute is used, and
    /// "Packer's default for `field`" for fields the template did not set.
    pub fn from_qemu(
        build: &str,
        config: &QemuConfig,
        base_dir: &Path,
        origin: &dyn Fn(&str) -> Option<Origin>,
    ) -> Demand {
        let origin_of = |field: &str| -> Origin {
            origin(field).unwrap_or_else(|| match config.spans.get(field) {
                Some(span) if span.line > 0 => {
                    Origin::new(format!("`{field}`, set in {}:{}", span.file, span.line))
                }
                Some(span) => Origin::new(format!("`{field}`, set by {}", span.file)),
                None => Origin::default_value(field),
            })
        };
        let resolve = |p: &str| -> PathBuf {
            let path = Path::new(p);
            if path.is_absolute() {
                path.to_path_buf()
            } else {
                base_dir.join(path)
            }
        };
        let mut d = Demand::new(build);
        let args = qemuargs::parse_qemuargs(&config.qemuargs);

        d.memory_mib = Some(Figure::with_origin(config.memory, origin_of("memory")));
        d.cpus = Some(Figure::with_origin(
            config.smp.effective_cpus(),
            origin_of("cpus"),
        ));
        d.qemu_binary = Some(Figure::with_origin(
            config.qemu_binary.clone(),
            origin_of("qemu_binary"),
        ));

        // Machine and accelerator: a `-machine` in qemuargs replaces kiln's
        // default `-machine type=…,accel=…` entirely (Packer's rule), so
        // `machine_type` and `accelerator` then have no effect.
        match qemuargs::machine(&args) {
            Some(m) => {
                let note = "(replaces kiln's `-machine`)";
                if let Some(t) = &m.machine_type {
                    d.machine_type = Some(Figure::new(
                        t.clone(),
                        format!("{} {note}", m.arg.describe()),
                    ));
                }
                d.accelerator = Some(match &m.accel {
                    Some(list) => Figure::new(list.join(":"), m.arg.describe()),
                    None => Figure::new(
                        "tcg".to_string(),
                        format!(
                            "QEMU's default: {} {note} and names no `accel=`",
                            m.arg.describe()
                        ),
                    ),
                });
            }
            None => {
                d.machine_type = Some(Figure::with_origin(
                    config.machine_type.clone(),
                    origin_of("machine_type"),
                ));
                d.accelerator = config
                    .accelerator
                    .map(|a| Figure::with_origin(a.as_str().to_string(), origin_of("accelerator")));
            }
        }
        // `-accel`/`-enable-kvm` come before any `accel=` of -machine.
        let accel_args = qemuargs::accels(&args);
        if let Some(first) = accel_args.first() {
            let list: Vec<&str> = accel_args.iter().map(|a| a.accel.as_str()).collect();
            d.accelerator = Some(Figure::new(list.join(":"), first.arg.describe()));
        }
        if let Some(a) = accel_args.iter().find(|a| a.tb_size_mib.is_some())
            && let Some(n) = a.tb_size_mib
        {
            d.tcg_tb_size_mib = Some(Figure::new(n, a.arg.describe()));
        } else if let Some((arg, n)) = qemuargs::legacy_tb_size(&args) {
            d.tcg_tb_size_mib = Some(Figure::new(n, arg.describe()));
        }

        d.cpu_model = match qemuargs::cpu(&args) {
            Some((arg, model)) => Some(Figure::new(model, arg.describe())),
            None => config
                .cpu_model
                .as_ref()
                .map(|m| Figure::with_origin(m.clone(), origin_of("cpu_model"))),
        };

        // Disks, written under output_directory.
        let disk_paths = config.disk_paths();
        let preallocated = config
            .qemu_img_args
            .create
            .iter()
            .any(|a| a.contains("preallocation=full") || a.contains("preallocation=falloc"));
        if let Some(main) = disk_paths.first() {
            let dir = resolve(&parent_of(main));
            d.disks.push(DiskDemand {
                dir: dir.clone(),
                bytes: Figure::with_origin(config.disk_size.bytes, origin_of("disk_size")),
                what: format!("the disk `{main}`"),
                sparse: !preallocated,
            });
            if !config.skip_compaction || config.disk_compression {
                d.disks.push(DiskDemand {
                    dir,
                    bytes: Figure::with_origin(config.disk_size.bytes, origin_of("disk_size")),
                    what: format!(
                        "the compacted copy `{main}.convert` written after shutdown (`skip_compaction = false`)"
                    ),
                    sparse: true,
                });
            }
        }
        for (i, size) in config.disk_additional_size.iter().enumerate() {
            if let Some(path) = disk_paths.get(i + 1) {
                d.disks.push(DiskDemand {
                    dir: resolve(&parent_of(path)),
                    bytes: Figure::with_origin(size.bytes, origin_of("disk_additional_size")),
                    what: format!("the disk `{path}` (`disk_additional_size[{i}]`)"),
                    sparse: !preallocated,
                });
            }
        }

        // Ports.
        if let Communicator::Ssh(_) = &config.communicator
            && !config.host_port.skip_nat_mapping
        {
            d.ports.push(PortDemand {
                what: "the SSH port forward".into(),
                bind: "127.0.0.1".into(),
                min: config.host_port.min,
                max: config.host_port.max,
                origin: port_origin(&origin_of, "host_port_min", "host_port_max"),
            });
        }
        if config.http.enabled() {
            d.ports.push(PortDemand {
                what: "the HTTP server".into(),
                bind: config.http.bind_address.clone(),
                min: config.http.port_min,
                max: config.http.port_max,
                origin: port_origin(&origin_of, "http_port_min", "http_port_max"),
            });
        }
        if config.vnc.enabled {
            d.ports.push(PortDemand {
                what: "VNC".into(),
                bind: config.vnc.bind_address.clone(),
                min: config.vnc.port_min,
                max: config.vnc.port_max,
                origin: port_origin(&origin_of, "vnc_port_min", "vnc_port_max"),
            });
        }

        // Firmware.
        let arch = kiln_qemu::firmware::arch_of_binary(&config.qemu_binary).to_string();
        if let Some(fw) = &config.firmware {
            d.files.push(FileDemand {
                path: resolve(fw),
                what: if config.use_pflash {
                    "the firmware (`firmware` as pflash)".into()
                } else {
                    "the firmware (`firmware`, `-bios`)".into()
                },
                origin: origin_of("firmware").text,
                directory: false,
            });
        }
        if config.efi.enabled {
            for (field, path, what) in [
                (
                    "efi_firmware_code",
                    &config.efi.code,
                    "the UEFI code (`efi_boot`)",
                ),
                (
                    "efi_firmware_vars",
                    &config.efi.vars,
                    "the UEFI variables template (`efi_boot`)",
                ),
            ] {
                if let Some(p) = path {
                    d.files.push(FileDemand {
                        path: resolve(p),
                        what: what.into(),
                        origin: origin_of(field).text,
                        directory: false,
                    });
                }
            }
            if config.efi.code.is_none() || config.efi.vars.is_none() {
                d.uefi = Some(UefiDemand {
                    arch: arch.clone(),
                    origin: origin_of("efi_boot").text,
                });
            }
        }

        // Local inputs: a single local source image, cd/floppy files, the
        // HTTP directory.
        if let [url] = config.iso_urls.as_slice()
            && let Some(path) = local_path(url)
        {
            d.files.push(FileDemand {
                path: resolve(&path),
                what: "the source image (`iso_url`)".into(),
                origin: origin_of("iso_url").text,
                directory: false,
            });
        }
        for (field, list) in [
            ("cd_files", &config.media.cd_files),
            ("floppy_files", &config.media.floppy_files),
        ] {
            for p in list.iter().filter(|p| !is_glob(p)) {
                d.files.push(FileDemand {
                    path: resolve(p),
                    what: format!("`{field}`"),
                    origin: origin_of(field).text,
                    directory: p.ends_with('/'),
                });
            }
        }
        for p in config.media.floppy_dirs.iter().filter(|p| !is_glob(p)) {
            d.files.push(FileDemand {
                path: resolve(p),
                what: "`floppy_dirs`".into(),
                origin: origin_of("floppy_dirs").text,
                directory: true,
            });
        }
        if let Some(dir) = &config.http.directory {
            d.files.push(FileDemand {
                path: resolve(dir),
                what: "the HTTP server (`http_directory`)".into(),
                origin: origin_of("http_directory").text,
                directory: true,
            });
        }

        // Files qemuargs name, except those the build itself creates.
        let created: Vec<String> = disk_paths
            .iter()
            .cloned()
            .chain([config.efivars_path()])
            .map(|p| clean_path(&p))
            .collect();
        let output_dir = clean_path(&config.output_directory);
        for named in qemuargs::named_paths(&args) {
            let cleaned = clean_path(&named.path);
            if created.contains(&cleaned)
                || (output_dir != "." && cleaned.starts_with(&format!("{output_dir}/")))
            {
                continue;
            }
            d.files.push(FileDemand {
                path: resolve(&named.path),
                what: named.what.clone(),
                origin: named.arg.describe(),
                directory: named.directory,
            });
        }

        d.programs.push(ProgramDemand {
            name: "qemu-img".into(),
            what: match config.format {
                DiskFormat::Qcow2 => "creating, resizing and compacting the disk".into(),
                DiskFormat::Raw => "creating and resizing the disk".into(),
            },
            required: true,
        });
        d
    }

    /// Add the programs a `shell-local` step's commands call (a warning
    /// when missing: the guess from the first word may be wrong).
    pub fn add_shell_programs(&mut self, what: &str, commands: &[String]) {
        for (i, command) in commands.iter().enumerate() {
            for name in programs_in_shell(command) {
                if !self.programs.iter().any(|p| p.name == name) {
                    self.programs.push(ProgramDemand {
                        name,
                        what: format!("{what} (`inline[{i}]`)"),
                        required: false,
                    });
                }
            }
        }
    }
}

fn port_origin(origin_of: &dyn Fn(&str) -> Origin, min: &str, max: &str) -> String {
    let a = origin_of(min).text;
    let b = origin_of(max).text;
    if a == b {
        format!("`{min}`/`{max}`: {a}")
    } else {
        format!("{a}; {b}")
    }
}

fn parent_of(path: &str) -> String {
    match Path::new(path).parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_string_lossy().into_owned(),
        _ => ".".into(),
    }
}

fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// A local path from an `iso_url` (`file:///x`, `/x`, `./x`), `None` for a
/// download.
fn local_path(url: &str) -> Option<String> {
    if let Some(rest) = url.strip_prefix("file://") {
        return Some(rest.split('?').next().unwrap_or(rest).to_string());
    }
    if url.contains("://") || url.contains("{{") {
        return None;
    }
    Some(url.split('?').next().unwrap_or(url).to_string())
}

/// Words that are not programs on `PATH`: shell keywords and builtins.
const SHELL_WORDS: &[&str] = &[
    "!", "[", "[[", ".", ":", "alias", "break", "case", "cd", "command", "continue", "declare",
    "do", "done", "echo", "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fi",
    "for", "function", "getopts", "hash", "if", "in", "let", "local", "printf", "pwd", "read",
    "readonly", "return", "select", "set", "shift", "source", "test", "then", "time", "times",
    "trap", "true", "type", "ulimit", "umask", "unalias", "unset", "until", "wait", "while", "{",
    "}", "(", ")",
];

/// Words that run the next word: `sudo apt-get …`, `env X=1 prog`.
const PREFIX_WORDS: &[&str] = &[
    "sudo", "env", "nohup", "nice", "ionice", "timeout", "xargs", "exec", "command", "time",
    "stdbuf", "chronic",
];

/// The programs a shell command line calls, guessed from the first word of
/// each simple command (split at `;`, `&&`, `||`, `|`, newlines; skipping
/// `VAR=value` assignments, shell keywords, builtins, and words with
/// expansions or quotes). Relative paths (`./build.sh`) are left out;
/// absolute paths are kept.
pub fn programs_in_shell(command: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // Split into simple commands.
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut chars = command.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                current.push(c);
            }
            (None, '#') if current.is_empty() || current.ends_with(char::is_whitespace) => {
                // A comment: skip to the end of the line.
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                pieces.push(std::mem::take(&mut current));
            }
            (None, ';' | '\n' | '|' | '&' | '(' | ')' | '`') => {
                pieces.push(std::mem::take(&mut current));
            }
            (None, c) => current.push(c),
        }
    }
    pieces.push(current);
    for piece in pieces {
        let words = piece.split_whitespace();
        for word in words {
            let is_assignment = word.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_')
            });
            if is_assignment || word.starts_with('-') {
                continue;
            }
            if PREFIX_WORDS.contains(&word) {
                continue;
            }
            if word.starts_with(['<', '>']) || word.chars().all(|c| c.is_ascii_digit()) {
                break;
            }
            if SHELL_WORDS.contains(&word)
                || word.contains(['$', '"', '\'', '{', '}', '*', '?', '=', '<', '>'])
            {
                // `if cmd`, `then cmd`, `while cmd`: the command follows.
                if matches!(
                    word,
                    "if" | "then" | "else" | "elif" | "do" | "while" | "until" | "!"
                ) {
                    continue;
                }
                break;
            }
            if word.contains('/') && !word.starts_with('/') {
                break;
            }
            if !out.iter().any(|o| o == word) {
                out.push(word.to_string());
            }
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_programs_are_guessed_from_first_words() {
        assert_eq!(
            programs_in_shell(
                "set -e\nFOO=1 genisoimage -o seed.iso x && sudo cloud-localds a b | tee log; echo done"
            ),
            vec!["genisoimage", "cloud-localds", "tee"]
        );
        assert_eq!(
            programs_in_shell("if [ -f x ]; then /usr/local/bin/frob --now; fi"),
            vec!["/usr/local/bin/frob"]
        );
        assert_eq!(
            programs_in_shell("./build.sh; $HOME/bin/x; \"quoted\" arg # jq in a comment"),
            Vec::<String>::new()
        );
        assert_eq!(
            programs_in_shell("env A=1 B=2 xorriso -as mkisofs 2>/dev/null || true"),
            vec!["xorriso"]
        );
    }

    #[test]
    fn local_iso_urls_are_recognised() {
        assert_eq!(
            local_path("file:///srv/x.img").as_deref(),
            Some("/srv/x.img")
        );
        assert_eq!(local_path("images/x.img").as_deref(), Some("images/x.img"));
        assert_eq!(local_path("https://example.org/x.iso"), None);
    }
}
