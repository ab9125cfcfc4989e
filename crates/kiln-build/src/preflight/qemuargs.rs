//! What a template's `qemuargs` ask of the host, read without running QEMU:
//! the files they name, the machine type, the accelerator, the CPU model and
//! the TCG translation cache size.
//!
//! Each element of `qemuargs` is a switch followed by values that Packer
//! joins with no separator (`["-drive", "file=a,", "if=virtio"]` is
//! `-drive file=a,if=virtio`); the joining, the option-string parser
//! (`,,` is a literal comma) and the files a switch names all come from
//! `kiln-qemu`, where the planner uses them too. The template is read
//! unrendered: preflight runs before the run-time facts exist.

use kiln_qemu::argv::{canonical, join_qemuargs, named_files};

/// One `qemuargs` element: the switch and its joined value.
pub use kiln_qemu::argv::UserArg as QemuArg;

/// Join each element as Packer does (`key` then the concatenated values).
pub fn parse_qemuargs(qemuargs: &[Vec<String>]) -> Vec<QemuArg> {
    join_qemuargs(qemuargs)
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

/// The host paths `qemuargs` name, as kiln-qemu reads them
/// ([`kiln_qemu::argv::named_files`]): placeholders (`{{ .OutputDir }}`)
/// and protocol URLs are left out.
pub fn named_paths(args: &[QemuArg]) -> Vec<NamedPath> {
    args.iter()
        .flat_map(|arg| {
            named_files(&arg.switch, &arg.value)
                .into_iter()
                .map(|file| NamedPath {
                    arg: arg.clone(),
                    path: file.path,
                    what: file.what,
                    directory: file.directory,
                })
        })
        .collect()
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
        let opts = arg.options();
        let machine_type = opts.get_or_implied("type").map(str::to_string);
        let accel = opts
            .get("accel")
            .map(|a| a.split(':').map(str::to_string).collect());
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
                let opts = arg.options();
                if let Some(accel) = opts.get_or_implied("accel") {
                    out.push(AccelArg {
                        arg: arg.clone(),
                        accel: accel.to_string(),
                        tb_size_mib: opts.get("tb-size").and_then(|s| s.parse().ok()),
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
            let opts = a.options();
            let model = opts.implied()?.trim();
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
    fn escaped_commas_in_file_names_and_machine_types_are_read_as_qemu_does() {
        let a = args(&[
            &["-drive", "if=pflash,readonly=on,file=/opt/fw/CODE,,4M.fd"],
            &["-bios", "/opt/fw/bios,1.bin"],
            &["-machine", "type=q35,,x,accel=tcg"],
        ]);
        let paths: Vec<(usize, String)> = named_paths(&a)
            .into_iter()
            .map(|p| (p.arg.index, p.path))
            .collect();
        assert_eq!(
            paths,
            vec![
                (0, "/opt/fw/CODE,4M.fd".to_string()),
                (1, "/opt/fw/bios,1.bin".to_string()),
            ]
        );
        let m = machine(&a).unwrap();
        assert_eq!(m.machine_type.as_deref(), Some("q35,x"));
        assert_eq!(m.accel, Some(vec!["tcg".to_string()]));
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
