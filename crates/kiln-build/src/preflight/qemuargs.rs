//! What a template's `qemuargs` ask of the host, read without running QEMU:
//! the files they name, the machine type, the accelerator, the CPU model and
//! the TCG translation cache size.
//!
//! Each element of `qemuargs` is a switch followed by values that Packer
//! joins with no separator (`["-drive", "file=a,", "if=virtio"]` is
//! `-drive file=a,if=virtio`), exactly as the planner in `kiln-qemu` does.
//! Option strings are QEMU's `key=value,key=value` lists, where `,,` is a
//! literal comma.

/// One `qemuargs` element: the switch and its joined value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuArg {
    /// Index in `qemuargs`.
    pub index: usize,
    pub switch: String,
    pub value: String,
}

impl QemuArg {
    /// How the entry is named in messages: ``qemuargs[3] `-cpu host` ``.
    pub fn describe(&self) -> String {
        if self.value.is_empty() {
            format!("qemuargs[{}] `{}`", self.index, self.switch)
        } else {
            format!("qemuargs[{}] `{} {}`", self.index, self.switch, self.value)
        }
    }
}

/// Join each element as Packer does (`key` then the concatenated values).
pub fn parse_qemuargs(qemuargs: &[Vec<String>]) -> Vec<QemuArg> {
    qemuargs
        .iter()
        .enumerate()
        .filter_map(|(index, element)| {
            let (switch, values) = element.split_first()?;
            Some(QemuArg {
                index,
                switch: switch.clone(),
                value: values.concat(),
            })
        })
        .collect()
}

/// Split a QEMU option string into `(key, value)` pairs; a part without
/// `=` has no key (QEMU's "implied" first option, e.g. the machine type in
/// `-machine q35,accel=kvm`). `,,` is an escaped comma.
pub fn split_options(text: &str) -> Vec<(Option<String>, String)> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                current.push(',');
            } else {
                parts.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (Some(k.to_string()), v.to_string()),
            None => (None, p),
        })
        .collect()
}

fn option<'a>(opts: &'a [(Option<String>, String)], key: &str) -> Option<&'a str> {
    opts.iter()
        .rev()
        .find(|(k, _)| k.as_deref() == Some(key))
        .map(|(_, v)| v.as_str())
}

fn implied(opts: &[(Option<String>, String)]) -> Option<&str> {
    opts.first()
        .filter(|(k, _)| k.is_none())
        .map(|(_, v)| v.as_str())
}

/// A switch's canonical name (`--drive` is `-drive`).
fn canonical(switch: &str) -> &str {
    match switch.strip_prefix('-') {
        Some(rest) if rest.starts_with('-') => rest,
        _ => switch,
    }
}

/// A host file or directory that a `qemuargs` entry names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedPath {
    pub arg: QemuArg,
    /// The path as written.
    pub path: String,
    /// What needs it, e.g. "UEFI firmware (`-drive if=pflash`)".
    pub what: String,
    /// A directory rather than a file (`-L`).
    pub directory: bool,
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

/// The host paths `qemuargs` name: `-drive file=`, `-blockdev
/// filename=`, `-bios`, `-kernel`, `-initrd`, `-dtb`, `-pflash`,
/// `-hda`…`-hdd`, `-fda`/`-fdb`, `-cdrom`, `-mtdblock`, `-sd`,
/// `-option-rom`, `-device loader,file=`, `-fw_cfg file=`, `-readconfig`
/// and `-L` (a directory). Placeholders (`{{ .OutputDir }}`) and protocol
/// URLs are left out.
pub fn named_paths(args: &[QemuArg]) -> Vec<NamedPath> {
    let mut out = Vec::new();
    for arg in args {
        let mut push = |path: &str, what: String, directory: bool| {
            if is_host_path(path) {
                out.push(NamedPath {
                    arg: arg.clone(),
                    path: path.to_string(),
                    what,
                    directory,
                });
            }
        };
        let value = arg.value.as_str();
        match canonical(&arg.switch) {
            "-drive" => {
                let opts = split_options(value);
                if let Some(file) = option(&opts, "file") {
                    let what = match (option(&opts, "if"), option(&opts, "media")) {
                        (Some("pflash"), _) => "UEFI firmware (`-drive if=pflash`)".to_string(),
                        (_, Some("cdrom")) => "a CD-ROM (`-drive media=cdrom`)".to_string(),
                        (Some(interface), _) => format!("a disk (`-drive if={interface}`)"),
                        (None, _) => "a disk (`-drive`)".to_string(),
                    };
                    push(file, what, false);
                }
            }
            "-blockdev" => {
                let opts = split_options(value);
                if let Some(file) = option(&opts, "filename")
                    && matches!(option(&opts, "driver"), Some("file" | "host_device") | None)
                {
                    push(file, "a block device (`-blockdev`)".to_string(), false);
                }
            }
            "-device" => {
                let opts = split_options(value);
                let driver = implied(&opts).or_else(|| option(&opts, "driver"));
                if driver == Some("loader")
                    && let Some(file) = option(&opts, "file")
                {
                    push(
                        file,
                        "the generic loader (`-device loader`)".to_string(),
                        false,
                    );
                }
            }
            "-fw_cfg" => {
                let opts = split_options(value);
                if let Some(file) = option(&opts, "file") {
                    push(
                        file,
                        "a firmware config blob (`-fw_cfg`)".to_string(),
                        false,
                    );
                }
            }
            switch @ ("-bios" | "-pflash") => {
                push(value, format!("the firmware (`{switch}`)"), false)
            }
            "-kernel" => push(value, "the kernel (`-kernel`)".into(), false),
            "-initrd" => {
                // `-initrd "mod1 args,mod2"` (multiboot): the first file.
                let first = value.split([' ', ',']).next().unwrap_or("");
                push(first, "the initrd (`-initrd`)".into(), false);
            }
            "-dtb" => push(value, "the device tree (`-dtb`)".into(), false),
            switch @ ("-hda" | "-hdb" | "-hdc" | "-hdd" | "-mtdblock" | "-sd") => {
                push(value, format!("a disk (`{switch}`)"), false)
            }
            switch @ ("-fda" | "-fdb") => push(value, format!("a floppy (`{switch}`)"), false),
            "-cdrom" => push(value, "a CD-ROM (`-cdrom`)".into(), false),
            "-option-rom" => {
                let opts = split_options(value);
                if let Some(file) = implied(&opts).or_else(|| option(&opts, "romfile")) {
                    push(file, "an option ROM (`-option-rom`)".into(), false);
                }
            }
            "-readconfig" => push(value, "a config file (`-readconfig`)".into(), false),
            "-L" => push(value, "the firmware directory (`-L`)".into(), true),
            _ => {}
        }
    }
    out
}

/// The machine a `-machine`/`-M` entry asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineArg {
    pub arg: QemuArg,
    /// The machine type (`type=` or the implied first option).
    pub machine_type: Option<String>,
    /// `accel=`, a `:`-separated list tried in order (`kvm:tcg`).
    pub accel: Option<Vec<String>>,
}

/// The last `-machine`/`-M` in `qemuargs` (QEMU merges repeated ones; the
/// last type wins). Present means the template's `-machine` replaces
/// kiln's default one entirely, as in Packer.
pub fn machine(args: &[QemuArg]) -> Option<MachineArg> {
    let mut found: Option<MachineArg> = None;
    for arg in args
        .iter()
        .filter(|a| matches!(canonical(&a.switch), "-machine" | "-M"))
    {
        let opts = split_options(&arg.value);
        let machine_type = option(&opts, "type")
            .or_else(|| implied(&opts))
            .map(str::to_string);
        let accel = option(&opts, "accel").map(|a| a.split(':').map(str::to_string).collect());
        let previous = found.take();
        found = Some(MachineArg {
            arg: arg.clone(),
            machine_type: machine_type
                .or_else(|| previous.as_ref().and_then(|p| p.machine_type.clone())),
            accel: accel.or_else(|| previous.and_then(|p| p.accel)),
        });
    }
    found
}

/// An accelerator named outside `-machine`: `-accel kvm`, `-enable-kvm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccelArg {
    pub arg: QemuArg,
    pub accel: String,
    /// `tb-size=` (MiB) of `-accel tcg,tb-size=N`.
    pub tb_size_mib: Option<u64>,
}

/// Every `-accel`/`-enable-kvm` entry, in order (QEMU tries them in order).
pub fn accels(args: &[QemuArg]) -> Vec<AccelArg> {
    let mut out = Vec::new();
    for arg in args {
        match canonical(&arg.switch) {
            "-enable-kvm" => out.push(AccelArg {
                arg: arg.clone(),
                accel: "kvm".into(),
                tb_size_mib: None,
            }),
            "-accel" => {
                let opts = split_options(&arg.value);
                if let Some(accel) = option(&opts, "accel").or_else(|| implied(&opts)) {
                    out.push(AccelArg {
                        arg: arg.clone(),
                        accel: accel.to_string(),
                        tb_size_mib: option(&opts, "tb-size").and_then(|s| s.parse().ok()),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The legacy `-tb-size N` (MiB).
pub fn legacy_tb_size(args: &[QemuArg]) -> Option<(QemuArg, u64)> {
    args.iter()
        .filter(|a| canonical(&a.switch) == "-tb-size")
        .filter_map(|a| a.value.trim().parse().ok().map(|n| (a.clone(), n)))
        .next_back()
}

/// The CPU model of the last `-cpu` entry (`host` of `-cpu host,+vmx`).
pub fn cpu(args: &[QemuArg]) -> Option<(QemuArg, String)> {
    args.iter()
        .filter(|a| canonical(&a.switch) == "-cpu")
        .filter_map(|a| {
            let model = a.value.split(',').next()?.trim();
            (!model.is_empty()).then(|| (a.clone(), model.to_string()))
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(raw: &[&[&str]]) -> Vec<QemuArg> {
        let v: Vec<Vec<String>> = raw
            .iter()
            .map(|e| e.iter().map(|s| s.to_string()).collect())
            .collect();
        parse_qemuargs(&v)
    }

    #[test]
    fn options_split_with_escaped_commas_and_implied_first() {
        assert_eq!(
            split_options("q35,accel=kvm:tcg,file=a,,b.img"),
            vec![
                (None, "q35".to_string()),
                (Some("accel".into()), "kvm:tcg".into()),
                (Some("file".into()), "a,b.img".into()),
            ]
        );
        assert!(split_options("").is_empty());
    }

    #[test]
    fn qemuargs_paths_are_extracted_with_what_needs_them() {
        let a = args(&[
            &[
                "-drive",
                "if=pflash,format=raw,id=ovmf_code,readonly=on,",
                "file=/usr/share/OVMF/OVMF_CODE.fd",
            ],
            &[
                "-drive",
                "if=pflash,format=raw,id=ovmf_vars,file=OVMF_VARS.fd",
            ],
            &["-drive", "file=seeds-cloudimg.iso,format=raw,media=cdrom"],
            &["-drive", "file={{ .OutputDir }}/disk,if=virtio"],
            &["-drive", "file=nbd://10.0.0.1/x,if=virtio"],
            &["-bios", "/opt/fw/bios.bin"],
            &["-kernel", "vmlinuz"],
            &["-initrd", "initrd.img"],
            &["-device", "loader,file=blob.bin,addr=0x1000"],
            &["-device", "virtio-net,netdev=user.0"],
            &["-blockdev", "driver=file,node-name=f,filename=/dev/sdz"],
            &["-fw_cfg", "name=opt/x,file=cfg.json"],
            &["--L", "/opt/qemu-share"],
            &["-cdrom", ""],
        ]);
        let paths = named_paths(&a);
        let found: Vec<(usize, &str, &str, bool)> = paths
            .iter()
            .map(|p| {
                (
                    p.arg.index,
                    p.path.as_str(),
                    match p.what.as_str() {
                        w if w.starts_with("UEFI") => "uefi",
                        w if w.contains("CD-ROM") => "cd",
                        w if w.contains("kernel") => "kernel",
                        w if w.contains("initrd") => "initrd",
                        w if w.contains("loader") => "loader",
                        w if w.contains("block") => "block",
                        w if w.contains("fw_cfg") => "fw_cfg",
                        w if w.contains("-bios") => "bios",
                        w if w.contains("-L") => "dir",
                        _ => "other",
                    },
                    p.directory,
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                (0, "/usr/share/OVMF/OVMF_CODE.fd", "uefi", false),
                (1, "OVMF_VARS.fd", "uefi", false),
                (2, "seeds-cloudimg.iso", "cd", false),
                (5, "/opt/fw/bios.bin", "bios", false),
                (6, "vmlinuz", "kernel", false),
                (7, "initrd.img", "initrd", false),
                (8, "blob.bin", "loader", false),
                (10, "/dev/sdz", "block", false),
                (11, "cfg.json", "fw_cfg", false),
                (12, "/opt/qemu-share", "dir", true),
            ]
        );
    }

    #[test]
    fn machine_accel_and_cpu_are_read_as_qemu_does() {
        let a = args(&[
            &["-machine", "ubuntu,accel=kvm"],
            &["-cpu", "host,+vmx"],
            &["-M", "smm=off"],
        ]);
        let m = machine(&a).unwrap();
        assert_eq!(m.machine_type.as_deref(), Some("ubuntu"));
        assert_eq!(m.accel, Some(vec!["kvm".to_string()]));
        assert_eq!(m.arg.index, 2);
        let (arg, model) = cpu(&a).unwrap();
        assert_eq!(model, "host");
        assert_eq!(arg.describe(), "qemuargs[1] `-cpu host,+vmx`");

        let a = args(&[
            &["-machine", "type=q35,accel=kvm:tcg"],
            &["-enable-kvm"],
            &["-accel", "tcg,tb-size=256"],
        ]);
        let m = machine(&a).unwrap();
        assert_eq!(m.machine_type.as_deref(), Some("q35"));
        assert_eq!(m.accel, Some(vec!["kvm".to_string(), "tcg".to_string()]));
        let acc = accels(&a);
        assert_eq!(acc.len(), 2);
        assert_eq!(acc[0].accel, "kvm");
        assert_eq!(acc[0].arg.describe(), "qemuargs[1] `-enable-kvm`");
        assert_eq!(acc[1].tb_size_mib, Some(256));
        assert!(machine(&args(&[&["-cpu", "max"]])).is_none());
        assert_eq!(
            legacy_tb_size(&args(&[&["-tb-size", "128"]])).map(|(_, n)| n),
            Some(128)
        );
    }
}
