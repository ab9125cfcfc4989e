//! The planned QEMU command line turned into a [`VmTemplate`]: the parts
//! that differ per run or live in the store become `{kiln:…}` tokens,
//! found by the slot each argument fills (never by re-splitting strings):
//! every disk of the build becomes `{kiln:diskN}` (a qcow2 overlay
//! whatever the output format), the UEFI variables drive `{kiln:vars}`,
//! kiln's QMP socket `{kiln:qmp}`, the SSH forward's host port
//! `{kiln:ssh_port}`, the VNC display `{kiln:vnc_display}`, the seed media
//! `{kiln:cd}`/`{kiln:floppy}`.
//!
//! `qemuargs` that re-declare kiln's drives (packer-maas declares both
//! pflash drives and every disk) fill the same slots: the planner
//! recognises them by their files.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use kiln_qemu::QemuPlan;
use kiln_qemu::argv::{self, ArgValue, QemuArg, Slot};
use kiln_qemu::optstr::{OptionString, escape};

use super::checkpoint::{VARS_TOKEN, VmTemplate, disk_token, token};

/// The template and what it needs.
pub(crate) struct Tokenized {
    pub template: VmTemplate,
    /// The text each of the caller's tokens (`ssh_port`, `cd`, …) stands
    /// for, escaped as QEMU reads it where the token sits.
    pub values: BTreeMap<String, String>,
    /// The file behind the UEFI variables drive (as the build made it).
    pub vars: Option<PathBuf>,
    /// Read-only firmware the command line loads (pflash code, `-bios`).
    pub firmware: Vec<PathBuf>,
}

/// What a command line lacks to be a template (the build then runs
/// without the step cache).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenizeError {
    #[error("the QEMU command line has no `-drive` with `file={path}` (the build's disk {index})")]
    Disk { index: usize, path: String },
    #[error("the QEMU command line has no QMP socket")]
    Qmp,
    #[error("the SSH port forward is not in a `-netdev`/`-nic` argument")]
    SshForward,
}

/// Tokenizes `plan`; relative files resolve against `cwd`, where QEMU runs.
pub(crate) fn tokenize(plan: &QemuPlan, cwd: &Path) -> Result<Tokenized, TokenizeError> {
    let mut arguments = Vec::with_capacity(plan.arguments.len());
    let mut values = BTreeMap::new();
    let mut vars = None;
    let mut firmware = Vec::new();
    let mut found = vec![false; plan.disk_paths.len()];
    let mut qmp = false;
    let resolve = |file: &str| normal(&cwd.join(file));
    for arg in &plan.arguments {
        let mut arg = arg.clone();
        match arg.slot {
            Slot::Disk { index } => {
                if let (Some(seen), Some(opts)) = (found.get_mut(index), options_mut(&mut arg)) {
                    *seen = true;
                    opts.set("file", disk_token(index));
                    opts.remove("format");
                    opts.push("format", "qcow2");
                }
            }
            Slot::FirmwareCode => {
                if let Some(file) = arg.options().and_then(|o| o.get("file")) {
                    firmware.push(resolve(file));
                }
            }
            Slot::Bios => firmware.push(resolve(&arg.value_text())),
            Slot::UefiVars => {
                if let Some(opts) = options_mut(&mut arg)
                    && let Some(file) = opts.get("file")
                {
                    vars = Some(resolve(file));
                    opts.set("file", token(VARS_TOKEN));
                }
            }
            Slot::Seed { media } => {
                let name = media.as_str();
                match &mut arg.value {
                    Some(ArgValue::Options(opts)) => {
                        if let Some(file) = opts.get("file") {
                            values.insert(name.to_string(), escape(file));
                            opts.set("file", token(name));
                        }
                    }
                    Some(ArgValue::Text(path)) => {
                        values.insert(name.to_string(), std::mem::take(path));
                        *path = token(name);
                    }
                    None => {}
                }
            }
            Slot::Qmp => {
                if let Some(opts) = options_mut(&mut arg) {
                    opts.set_implied(format!("unix:{}", token("qmp")));
                    qmp = true;
                }
            }
            Slot::SshForward { host_port } => {
                if let Some(opts) = options_mut(&mut arg) {
                    let port = format!(":{host_port}-");
                    let tokenized = format!(":{}-", token("ssh_port"));
                    for forward in opts.values_mut("hostfwd") {
                        *forward = forward.replace(&port, &tokenized);
                    }
                    values.insert("ssh_port".into(), host_port.to_string());
                }
            }
            // `ADDR:DISPLAY[,options]`: the display is picked per run.
            Slot::Vnc { display } => {
                if let Some(opts) = options_mut(&mut arg)
                    && let Some((addr, _)) = opts.implied().and_then(|a| a.rsplit_once(':'))
                {
                    let addr = addr.to_string();
                    opts.set_implied(format!("{addr}:{}", token("vnc_display")));
                    values.insert("vnc_display".into(), display.to_string());
                }
            }
            Slot::Iso | Slot::Machine | Slot::Serial | Slot::Other => {}
        }
        arguments.push(arg);
    }
    if let Some(index) = found.iter().position(|f| !f) {
        return Err(TokenizeError::Disk {
            index,
            path: plan.disk_paths[index].clone(),
        });
    }
    if !qmp {
        return Err(TokenizeError::Qmp);
    }
    if plan.ssh_host_port.is_some() && !values.contains_key("ssh_port") {
        return Err(TokenizeError::SshForward);
    }
    Ok(Tokenized {
        template: VmTemplate::new(&plan.program, argv::render(&arguments)),
        values,
        vars,
        firmware,
    })
}

fn options_mut(arg: &mut QemuArg) -> Option<&mut OptionString> {
    match &mut arg.value {
        Some(ArgValue::Options(o)) => Some(o),
        _ => None,
    }
}

/// A path with `.` and `..` resolved lexically.
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_qemu::argv::{ArgSource, Media};
    use kiln_qemu::plan::{ConsoleTap, RuntimeFacts};
    use kiln_qemu::{Accelerator, QemuConfig};
    use kiln_template::body::{Attribute, Body};
    use kiln_template::span::Span;
    use kiln_template::value::Value;

    /// A plan of `(switch, value, slot)`, as the planner makes one.
    fn plan(disks: &[&str], args: &[(&str, &str, Slot)]) -> QemuPlan {
        QemuPlan {
            program: "qemu-system-x86_64".into(),
            arguments: args
                .iter()
                .map(|(switch, value, slot)| {
                    QemuArg::new(
                        switch,
                        ArgValue::parse(switch, value),
                        *slot,
                        ArgSource::Default,
                    )
                })
                .collect(),
            console: ConsoleTap::Stdout,
            qmp_socket: "/srv/k/qmp.sock".into(),
            ssh_host_port: Some(2231),
            disk_paths: disks.iter().map(|d| d.to_string()).collect(),
            replaced: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn the_planned_command_line_becomes_a_template() {
        let args = [
            ("-machine", "type=q35,accel=tcg", Slot::Machine),
            (
                "-drive",
                "file=output-x/./x.img,if=virtio,cache=writeback,format=raw",
                Slot::Disk { index: 0 },
            ),
            (
                "-drive",
                "file=/srv/k/cd.iso,media=cdrom",
                Slot::Seed { media: Media::Cd },
            ),
            (
                "-drive",
                "file=/usr/share/OVMF/OVMF_CODE_4M.fd,if=pflash,unit=0,format=raw,readonly=on",
                Slot::FirmwareCode,
            ),
            (
                "-drive",
                "file=OVMF_VARS.fd,if=pflash,unit=1,format=raw",
                Slot::UefiVars,
            ),
            (
                "-netdev",
                "user,id=user.0,hostfwd=tcp:127.0.0.1:2231-:22",
                Slot::SshForward { host_port: 2231 },
            ),
            ("-qmp", "unix:/srv/k/qmp.sock,server=on,wait=off", Slot::Qmp),
            ("-m", "2231M", Slot::Other),
        ];
        let cwd = Path::new("/srv");
        let t = tokenize(&plan(&["output-x/x.img"], &args), cwd).unwrap();
        let a = &t.template.args;
        assert_eq!(
            a[3],
            "file={kiln:disk0},if=virtio,cache=writeback,format=qcow2"
        );
        assert_eq!(a[5], "file={kiln:cd},media=cdrom");
        assert!(a[7].starts_with("file=/usr/share/OVMF/OVMF_CODE_4M.fd"));
        assert_eq!(a[9], "file={kiln:vars},if=pflash,unit=1,format=raw");
        assert_eq!(
            a[11],
            "user,id=user.0,hostfwd=tcp:127.0.0.1:{kiln:ssh_port}-:22"
        );
        assert_eq!(a[13], "unix:{kiln:qmp},server=on,wait=off");
        // A port number elsewhere is left alone.
        assert_eq!(a[15], "2231M");
        assert_eq!(t.vars, Some(PathBuf::from("/srv/OVMF_VARS.fd")));
        assert_eq!(
            t.firmware,
            vec![PathBuf::from("/usr/share/OVMF/OVMF_CODE_4M.fd")]
        );
        assert_eq!(t.values["ssh_port"], "2231");
        assert_eq!(t.values["cd"], "/srv/k/cd.iso");

        // The disk is not on the command line: no template.
        let mut args = args.to_vec();
        args[1].2 = Slot::Other;
        let err = tokenize(&plan(&["output-x/other.img"], &args), cwd)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("file=output-x/other.img"), "{err}");
    }

    fn config(attrs: &[(&str, Value)]) -> QemuConfig {
        let mut body = Body::empty(Span::synthetic("build.pkr.hcl"));
        let base = [
            ("iso_url", Value::String("https://example.org/x.img".into())),
            ("iso_checksum", Value::String("none".into())),
            ("ssh_username", Value::String("ubuntu".into())),
            ("disk_image", Value::Bool(true)),
            ("headless", Value::Bool(true)),
        ];
        for (key, value) in base.iter().chain(attrs) {
            body.attrs.insert(
                key.to_string(),
                Attribute {
                    name: key.to_string(),
                    value: value.clone(),
                    span: Span::synthetic("build.pkr.hcl"),
                    sensitive: false,
                },
            );
        }
        match QemuConfig::decode(&body, "cloudimg") {
            Ok(d) => d.config,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn qemuargs(items: &[&[&str]]) -> Value {
        Value::Tuple(
            items
                .iter()
                .map(|i| Value::Tuple(i.iter().map(|x| Value::String(x.to_string())).collect()))
                .collect(),
        )
    }

    fn facts() -> RuntimeFacts {
        RuntimeFacts {
            accelerator: Accelerator::Tcg,
            ssh_host_port: Some(3022),
            http_ip: "10.0.2.2".into(),
            http_port: 0,
            vnc_port: None,
            iso_path: None,
            cd_path: Some("/tmp/kiln,1/cd.iso".into()),
            floppy_path: Some("/tmp/kiln,1/floppy.img".into()),
            efi_code: None,
            qmp_socket: "/tmp/kiln,1/qmp.sock".into(),
        }
    }

    /// packer-maas declares both pflash drives, the disk and its own
    /// forward in `qemuargs`; they fill kiln's slots as the defaults would,
    /// commas in file names included.
    #[test]
    fn packer_maas_qemuargs_fill_the_same_slots_with_commas_in_names() {
        let cfg = config(&[
            ("output_directory", Value::String("output,1".into())),
            (
                "floppy_files",
                Value::Tuple(vec![Value::String("a".into())]),
            ),
            (
                "qemuargs",
                qemuargs(&[
                    &["-machine", "ubuntu,accel=kvm"],
                    &[
                        "-drive",
                        "if=pflash,format=raw,id=ovmf_code,readonly=on,file=/usr/share/OVMF/OVMF,,CODE.fd",
                    ],
                    &[
                        "-drive",
                        "if=pflash,format=raw,id=ovmf_vars,file=OVMF,,VARS.fd",
                    ],
                    &["-drive", "file=output,,1/packer-cloudimg,format=qcow2"],
                    &["-drive", "file=seeds-cloudimg.iso,format=raw"],
                    &[
                        "-netdev",
                        "user,hostfwd=tcp::{{ .SSHHostPort }}-:22,id=forward",
                    ],
                    &["-device", "virtio-net,netdev=forward,id=net0"],
                ]),
            ),
        ]);
        let plan = kiln_qemu::plan_qemu(&cfg, &facts()).unwrap();
        let t = tokenize(&plan, Path::new("/srv")).unwrap();
        let lines = t.template.args.join("\n");
        assert!(
            lines.contains("-drive\nfile={kiln:disk0},format=qcow2\n"),
            "{lines}"
        );
        assert!(
            lines.contains("if=pflash,format=raw,id=ovmf_vars,file={kiln:vars}\n"),
            "{lines}"
        );
        assert!(
            lines.contains("user,hostfwd=tcp::{kiln:ssh_port}-:22,id=forward"),
            "{lines}"
        );
        assert!(
            lines.contains("file={kiln:cd},media=cdrom,readonly=on"),
            "{lines}"
        );
        assert!(lines.contains("-fda\n{kiln:floppy}\n"), "{lines}");
        assert!(
            lines.ends_with("-qmp\nunix:{kiln:qmp},server=on,wait=off"),
            "{lines}"
        );
        assert_eq!(t.vars, Some(PathBuf::from("/srv/OVMF,VARS.fd")));
        assert_eq!(
            t.firmware,
            vec![PathBuf::from("/usr/share/OVMF/OVMF,CODE.fd")]
        );
        // Values go back where their tokens were, escaped where QEMU reads
        // an option string.
        assert_eq!(t.values["cd"], "/tmp/kiln,,1/cd.iso");
        assert_eq!(t.values["floppy"], "/tmp/kiln,1/floppy.img");
        assert_eq!(t.values["ssh_port"], "3022");
        let mut values = t.values.clone();
        values.insert("qmp".into(), "/tmp/kiln,,1/qmp.sock".into());
        values.insert("disk0".into(), "output,,1/packer-cloudimg".into());
        values.insert("vars".into(), "OVMF,,VARS.fd".into());
        let rendered = t.template.render(&values).unwrap();
        assert_eq!(rendered, plan.args());
    }
}
