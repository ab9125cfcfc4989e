//! The QEMU command line as a list of arguments that know what they are:
//! a switch, its value (an [`OptionString`] where QEMU reads one), the
//! [`Slot`] it fills (disk `i`, UEFI variables, kiln's QMP socket, the SSH
//! forward…), where it came from, and the host files it names. The
//! planner builds it; the step cache, preflight and the runner read it;
//! the strings QEMU gets are rendered from it by [`render`] alone.
//!
//! `qemuargs` elements are joined as Packer joins them (the switch, then
//! the values concatenated with no separator: `["-drive", "file=a,",
//! "if=virtio"]` is `-drive file=a,if=virtio`), by [`join_qemuargs`].

use std::fmt;

use crate::optstr::OptionString;

/// One switch and its value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QemuArg {
    /// As written (`-drive`, `--drive`).
    pub switch: String,
    /// `None`: a bare switch (`-enable-kvm`).
    pub value: Option<ArgValue>,
    pub slot: Slot,
    pub source: ArgSource,
    /// Host files the argument names (placeholders and protocol URLs left
    /// out).
    pub files: Vec<FileRef>,
}

impl QemuArg {
    /// A switch with a value, its files read from the value.
    pub fn new(switch: &str, value: ArgValue, slot: Slot, source: ArgSource) -> QemuArg {
        let files = named_files(switch, &value.to_string());
        QemuArg {
            switch: switch.to_string(),
            value: Some(value),
            slot,
            source,
            files,
        }
    }

    /// A switch without a value.
    pub fn bare(switch: &str, source: ArgSource) -> QemuArg {
        QemuArg {
            switch: switch.to_string(),
            value: None,
            slot: Slot::Other,
            source,
            files: Vec::new(),
        }
    }

    /// The option string of the value, if it is one.
    pub fn options(&self) -> Option<&OptionString> {
        match &self.value {
            Some(ArgValue::Options(o)) => Some(o),
            _ => None,
        }
    }

    /// The value as QEMU gets it (empty for a bare switch).
    pub fn value_text(&self) -> String {
        self.value
            .as_ref()
            .map(ArgValue::to_string)
            .unwrap_or_default()
    }
}

/// A switch's value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum ArgValue {
    /// Taken whole (`-m 2048M`, `-bios /x/bios.bin`, `-serial stdio`).
    Text(String),
    /// A QEMU option string (`-drive file=…,if=…`).
    Options(OptionString),
}

impl ArgValue {
    /// The value of `switch` as QEMU reads it.
    pub fn parse(switch: &str, text: &str) -> ArgValue {
        if takes_options(switch) {
            ArgValue::Options(OptionString::parse(text))
        } else {
            ArgValue::Text(text.to_string())
        }
    }

    pub fn text(text: impl Into<String>) -> ArgValue {
        ArgValue::Text(text.into())
    }
}

impl fmt::Display for ArgValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgValue::Text(t) => f.write_str(t),
            ArgValue::Options(o) => o.fmt(f),
        }
    }
}

/// Switches whose value QEMU parses as an option string.
fn takes_options(switch: &str) -> bool {
    matches!(
        canonical(switch),
        "-drive"
            | "-blockdev"
            | "-netdev"
            | "-nic"
            | "-device"
            | "-machine"
            | "-M"
            | "-accel"
            | "-cpu"
            | "-smp"
            | "-qmp"
            | "-vnc"
            | "-fw_cfg"
            | "-option-rom"
            | "-object"
            | "-chardev"
    )
}

/// What an argument is to kiln.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Slot {
    /// Disk `index` of the build (drive order; the main disk is 0), a file
    /// kiln creates.
    Disk { index: usize },
    /// The downloaded installer ISO.
    Iso,
    /// Seed media kiln writes per run (`cd_files`/`cd_content`, floppy).
    Seed { media: Media },
    /// Read-only pflash: the UEFI code, or `firmware` with `use_pflash`.
    FirmwareCode,
    /// Writable pflash: the UEFI variables.
    UefiVars,
    /// `-bios`.
    Bios,
    /// `-machine`/`-M`.
    Machine,
    /// The `-netdev`/`-nic` that forwards `host_port` to the guest's SSH.
    SshForward { host_port: u16 },
    /// The `-vnc` display picked for this run.
    Vnc { display: u16 },
    /// `-serial`.
    Serial,
    /// kiln's own QMP control socket.
    Qmp,
    /// Anything else.
    Other,
}

/// Seed media.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Media {
    Cd,
    Floppy,
}

impl Media {
    pub fn as_str(self) -> &'static str {
        match self {
            Media::Cd => "cd",
            Media::Floppy => "floppy",
        }
    }
}

/// Who put an argument on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum ArgSource {
    /// Packer's defaults (`getDefaultArgs`).
    Default,
    /// kiln's additions: its QMP socket, the seed it keeps attached.
    Kiln,
    /// The template's `qemuargs[index]`.
    Qemuargs { index: usize },
}

/// A host file (or directory) an argument names.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileRef {
    /// As written (relative to where QEMU runs, or absolute).
    pub path: String,
    /// What needs it, e.g. "UEFI firmware (`-drive if=pflash`)".
    pub what: String,
    /// A directory rather than a file (`-L`).
    pub directory: bool,
}

/// The strings QEMU gets.
pub fn render(args: &[QemuArg]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() * 2);
    for arg in args {
        out.push(arg.switch.clone());
        if let Some(value) = &arg.value {
            out.push(value.to_string());
        }
    }
    out
}

/// A switch's canonical name (`--drive` is `-drive`).
pub fn canonical(switch: &str) -> &str {
    match switch.strip_prefix('-') {
        Some(rest) if rest.starts_with('-') => rest,
        _ => switch,
    }
}

/// One `qemuargs` element: the switch and its joined value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserArg {
    /// Index in `qemuargs`.
    pub index: usize,
    pub switch: String,
    pub value: String,
}

impl UserArg {
    /// How the entry is named in messages: ``qemuargs[3] `-cpu host` ``.
    pub fn describe(&self) -> String {
        if self.value.is_empty() {
            format!("qemuargs[{}] `{}`", self.index, self.switch)
        } else {
            format!("qemuargs[{}] `{} {}`", self.index, self.switch, self.value)
        }
    }

    /// The value as QEMU reads it.
    pub fn parsed(&self) -> ArgValue {
        ArgValue::parse(&self.switch, &self.value)
    }

    /// The option string of the value (every switch may be read as one).
    pub fn options(&self) -> OptionString {
        OptionString::parse(&self.value)
    }
}

/// Join each element as Packer does (the switch, then the values
/// concatenated); empty elements are skipped.
pub fn join_qemuargs(qemuargs: &[Vec<String>]) -> Vec<UserArg> {
    qemuargs
        .iter()
        .enumerate()
        .filter_map(|(index, element)| {
            let (switch, values) = element.split_first()?;
            Some(UserArg {
                index,
                switch: switch.clone(),
                value: values.concat(),
            })
        })
        .collect()
}

/// Whether a value is a path on the host rather than a protocol, a
/// placeholder kiln renders at run time, or nothing.
fn is_host_path(path: &str) -> bool {
    if path.is_empty() || path.contains("{{") || path.starts_with("json:") {
        return false;
    }
    // `nbd:…`, `http://…`, `iscsi://…`, `gluster+tcp://…`: a protocol, not a file.
    match path.split_once(':') {
        Some((proto, _)) => proto.contains('/') || proto.is_empty(),
        None => true,
    }
}

/// The host paths a switch's value names: `-drive file=`, `-blockdev
/// filename=`, `-bios`, `-kernel`, `-initrd`, `-dtb`, `-pflash`,
/// `-hda`…`-hdd`, `-fda`/`-fdb`, `-cdrom`, `-mtdblock`, `-sd`,
/// `-option-rom`, `-device loader,file=`, `-fw_cfg file=`, `-readconfig`
/// and `-L` (a directory). Placeholders (`{{ .OutputDir }}`) and protocol
/// URLs are left out.
pub fn named_files(switch: &str, value: &str) -> Vec<FileRef> {
    let mut out = Vec::new();
    let mut push = |path: &str, what: String, directory: bool| {
        if is_host_path(path) {
            out.push(FileRef {
                path: path.to_string(),
                what,
                directory,
            });
        }
    };
    let opts = || OptionString::parse(value);
    match canonical(switch) {
        "-drive" => {
            let opts = opts();
            if let Some(file) = opts.get("file") {
                let what = match (opts.get("if"), opts.get("media")) {
                    (Some("pflash"), _) => "UEFI firmware (`-drive if=pflash`)".to_string(),
                    (_, Some("cdrom")) => "a CD-ROM (`-drive media=cdrom`)".to_string(),
                    (Some(interface), _) => format!("a disk (`-drive if={interface}`)"),
                    (None, _) => "a disk (`-drive`)".to_string(),
                };
                push(file, what, false);
            }
        }
        "-blockdev" => {
            let opts = opts();
            if let Some(file) = opts.get("filename")
                && matches!(opts.get("driver"), Some("file" | "host_device") | None)
            {
                push(file, "a block device (`-blockdev`)".to_string(), false);
            }
        }
        "-device" => {
            let opts = opts();
            if opts.implied().or_else(|| opts.get("driver")) == Some("loader")
                && let Some(file) = opts.get("file")
            {
                push(
                    file,
                    "the generic loader (`-device loader`)".to_string(),
                    false,
                );
            }
        }
        "-fw_cfg" => {
            if let Some(file) = opts().get("file") {
                push(
                    file,
                    "a firmware config blob (`-fw_cfg`)".to_string(),
                    false,
                );
            }
        }
        switch @ ("-bios" | "-pflash") => push(value, format!("the firmware (`{switch}`)"), false),
        "-kernel" => push(value, "the kernel (`-kernel`)".into(), false),
        "-initrd" => {
            // `-initrd "mod1 args,mod2"` (multiboot): the first file.
            let first = opts().iter().next().map(|o| o.text()).unwrap_or_default();
            let first = first.split(' ').next().unwrap_or("");
            push(first, "the initrd (`-initrd`)".into(), false);
        }
        "-dtb" => push(value, "the device tree (`-dtb`)".into(), false),
        switch @ ("-hda" | "-hdb" | "-hdc" | "-hdd" | "-mtdblock" | "-sd") => {
            push(value, format!("a disk (`{switch}`)"), false)
        }
        switch @ ("-fda" | "-fdb") => push(value, format!("a floppy (`{switch}`)"), false),
        "-cdrom" => push(value, "a CD-ROM (`-cdrom`)".into(), false),
        "-option-rom" => {
            let opts = opts();
            if let Some(file) = opts.implied().or_else(|| opts.get("romfile")) {
                push(file, "an option ROM (`-option-rom`)".into(), false);
            }
        }
        "-readconfig" => push(value, "a config file (`-readconfig`)".into(), false),
        "-L" => push(value, "the firmware directory (`-L`)".into(), true),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_through_escaped_commas() {
        let files = named_files("-drive", "file=out/a,,b.img,if=virtio");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, "out/a,b.img");
        assert_eq!(files[0].what, "a disk (`-drive if=virtio`)");
        // A whole-value switch keeps its commas as they are.
        assert_eq!(named_files("-bios", "/x/a,b.bin")[0].path, "/x/a,b.bin");
        assert_eq!(named_files("-initrd", "mod1 arg,mod2")[0].path, "mod1");
        assert!(named_files("-drive", "file=nbd://h/x,if=virtio").is_empty());
    }

    #[test]
    fn values_render_back_as_written() {
        for (switch, text) in [
            ("-drive", "file=a,,b.img,if=pflash,format=raw,"),
            ("-netdev", "user,hostfwd=tcp::2222-:22,id=forward"),
            ("-m", "2048M"),
            ("-bios", "/x/a,b.bin"),
        ] {
            let arg = QemuArg::new(
                switch,
                ArgValue::parse(switch, text),
                Slot::Other,
                ArgSource::Default,
            );
            assert_eq!(render(&[arg]), vec![switch.to_string(), text.to_string()]);
        }
        assert_eq!(
            render(&[QemuArg::bare("-enable-kvm", ArgSource::Default)]),
            vec!["-enable-kvm".to_string()]
        );
    }
}
