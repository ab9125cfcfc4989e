use super::*;
use crate::argv::{ArgSource, Media, Slot};
use crate::config::QemuConfig;
use crate::testutil::*;
use kiln_template::value::Value;

fn facts() -> RuntimeFacts {
    RuntimeFacts {
        accelerator: Accelerator::Tcg,
        ssh_host_port: Some(3022),
        http_ip: "10.0.2.2".into(),
        http_port: 8123,
        vnc_port: None,
        iso_path: Some("/cache/kiln/0123abcd.iso".into()),
        cd_path: None,
        floppy_path: None,
        efi_code: None,
        qmp_socket: "/run/kiln/x/qmp.sock".into(),
    }
}

fn cfg(extra: &[(&'static str, Value)]) -> QemuConfig {
    let mut attrs = minimal();
    attrs.extend(extra.iter().cloned());
    decode(&attrs)
}

#[test]
fn iso_install_with_packer_defaults() {
    let plan = plan_qemu(&cfg(&[("headless", b(true))]), &facts()).unwrap();
    insta::assert_snapshot!(plan.to_lines());
    assert_eq!(plan.console, ConsoleTap::Stdout);
    assert!(plan.replaced.is_empty());
}

/// packer-maas `ubuntu-cloudimg.pkr.hcl`: the output disk re-declared at
/// `output-<name>/packer-<name>` and every default drive dropped.
#[test]
fn packer_maas_cloudimg_redeclares_all_drives() {
    let attrs = vec![
        (
            "iso_url",
            s("https://cloud-images.ubuntu.com/jammy/current/jammy-server-cloudimg-amd64.img"),
        ),
        (
            "iso_checksum",
            s("file:https://cloud-images.ubuntu.com/jammy/current/SHA256SUMS"),
        ),
        ("ssh_username", s("ubuntu")),
        ("ssh_password", s("ubuntu")),
        ("boot_wait", s("2s")),
        ("cpus", n(2.0)),
        ("disk_image", b(true)),
        ("disk_size", s("4G")),
        ("format", s("qcow2")),
        ("headless", b(true)),
        ("memory", n(2048.0)),
        ("qemu_binary", s("qemu-system-x86_64")),
        ("use_backing_file", b(true)),
        (
            "qemuargs",
            lists(&[
                &["-machine", "ubuntu,accel=kvm"],
                &["-cpu", "host"],
                &["-device", "virtio-gpu-pci"],
                &[
                    "-drive",
                    "if=pflash,format=raw,id=ovmf_code,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
                ],
                &[
                    "-drive",
                    "if=pflash,format=raw,id=ovmf_vars,file=OVMF_VARS.fd",
                ],
                &[
                    "-drive",
                    "file=output-cloudimg/packer-cloudimg,format=qcow2",
                ],
                &["-drive", "file=seeds-cloudimg.iso,format=raw"],
            ]),
        ),
    ];
    let config = match QemuConfig::decode(&body(&attrs), "cloudimg") {
        Ok(d) => d.config,
        Err(e) => panic!("{e:?}"),
    };
    let plan = plan_qemu(&config, &facts()).unwrap();
    // kiln creates the disk exactly where the template points QEMU.
    assert_eq!(plan.disk_paths[0], "output-cloudimg/packer-cloudimg");
    assert!(
        plan.args()
            .contains(&"file=output-cloudimg/packer-cloudimg,format=qcow2".to_string())
    );
    // No default drive survives; the NIC is added back (packer#6804).
    assert!(
        !plan
            .args()
            .iter()
            .any(|a| a.contains("if=virtio,cache=writeback"))
    );
    assert!(
        plan.args()
            .contains(&"virtio-net,netdev=user.0".to_string())
    );
    insta::assert_snapshot!(plan.to_lines());
    insta::assert_debug_snapshot!(plan.replaced);
    assert!(plan.notes.is_empty());

    // With a cd_content seed kiln keeps it attached (Packer would drop it).
    let mut f = facts();
    f.cd_path = Some("seed/cidata.iso".into());
    let plan = plan_qemu(&config, &f).unwrap();
    assert!(
        plan.args()
            .contains(&"file=seed/cidata.iso,media=cdrom,readonly=on".to_string())
    );
    assert_eq!(plan.notes.len(), 1);
}

#[test]
fn efi_scsi_cd_floppy_and_extra_disks() {
    let config = cfg(&[
        ("headless", b(true)),
        ("efi_boot", b(true)),
        ("machine_type", s("q35")),
        ("disk_interface", s("virtio-scsi")),
        ("cdrom_interface", s("virtio-scsi")),
        ("disk_detect_zeroes", s("unmap")),
        ("disk_additional_size", list(&["1G", "2048M"])),
        ("cpu_model", s("host")),
        ("vga", s("virtio")),
        ("accelerator", s("kvm")),
        ("output_directory", s("out")),
        ("vm_name", s("disk.qcow2")),
    ]);
    let mut f = facts();
    f.accelerator = Accelerator::Kvm;
    f.cd_path = Some("seed/cidata.iso".into());
    f.floppy_path = Some("seed/floppy.img".into());
    f.efi_code = Some("/usr/share/OVMF/OVMF_CODE_4M.fd".into());
    let plan = plan_qemu(&config, &f).unwrap();
    insta::assert_snapshot!(plan.to_lines());
}

#[test]
fn qemuargs_placeholders_are_rendered() {
    let config = cfg(&[
        ("headless", b(true)),
        (
            "qemuargs",
            lists(&[
                &[
                    "-netdev",
                    "user,hostfwd=tcp::{{ .SSHHostPort }}-:22,",
                    "id=forward",
                ],
                &["-device", "virtio-net,netdev=forward,id=net0"],
                &[
                    "-fw_cfg",
                    "name=opt/kiln,string={{.HTTPIP}}:{{ .HTTPPort }}/{{ .Name }}@{{ .OutputDir }}",
                ],
                &["--no-acpi", ""],
            ]),
        ),
    ]);
    let plan = plan_qemu(&config, &facts()).unwrap();
    let lines = plan.to_lines();
    assert!(
        lines.contains("-netdev user,hostfwd=tcp::3022-:22,id=forward"),
        "{lines}"
    );
    assert!(
        lines.contains("-fw_cfg name=opt/kiln,string=10.0.2.2:8123/packer-x@output-x"),
        "{lines}"
    );
    assert!(lines.contains("\n--no-acpi\n"), "{lines}");
    // The user's -device mentions virtio-net: no extra NIC.
    assert_eq!(
        plan.args()
            .iter()
            .filter(|a| a.contains("virtio-net"))
            .count(),
        1,
        "{lines}"
    );
}

#[test]
fn unknown_placeholder_is_an_error() {
    let config = cfg(&[("qemuargs", lists(&[&["-name", "{{ .VMName }}"]]))]);
    let e = plan_qemu(&config, &facts()).unwrap_err();
    assert!(e.to_string().contains("qemuargs[0]"), "{e}");
    assert!(e.to_string().contains("VMName"), "{e}");
}

#[test]
fn serial_elsewhere_disables_the_console_tap() {
    let config = cfg(&[("qemuargs", lists(&[&["-serial", "file:serial.log"]]))]);
    let plan = plan_qemu(&config, &facts()).unwrap();
    assert!(matches!(plan.console, ConsoleTap::Unavailable { .. }));
    let config = cfg(&[("qemuargs", lists(&[&["-serial", "mon:stdio"]]))]);
    assert_eq!(
        plan_qemu(&config, &facts()).unwrap().console,
        ConsoleTap::Stdout
    );
}

#[test]
fn display_and_vnc_follow_packer() {
    let lines = |extra: &[(&'static str, Value)], vnc: Option<u16>| {
        let mut f = facts();
        f.vnc_port = vnc;
        plan_qemu(&cfg(extra), &f).unwrap().to_lines()
    };
    assert!(lines(&[], None).contains("-display gtk"));
    assert!(lines(&[("display", s("sdl"))], None).contains("-display sdl"));
    assert!(!lines(&[("use_default_display", b(true))], None).contains("-display"));
    let headless_vnc = lines(
        &[
            ("headless", b(true)),
            ("vnc_port_min", n(5901.0)),
            ("vnc_use_password", b(true)),
        ],
        Some(5905),
    );
    assert!(
        headless_vnc.contains("-vnc 127.0.0.1:5,password"),
        "{headless_vnc}"
    );
    assert!(!headless_vnc.contains("-display"), "{headless_vnc}");
    assert!(
        headless_vnc.contains("-qmp unix:output-x/packer-x.monitor,server,nowait"),
        "{headless_vnc}"
    );
}

#[test]
fn communicator_none_forwards_nothing_and_accel_none_has_no_accel() {
    let config = cfg(&[("communicator", s("none")), ("headless", b(true))]);
    let mut f = facts();
    f.accelerator = Accelerator::None;
    f.ssh_host_port = None;
    let lines = plan_qemu(&config, &f).unwrap().to_lines();
    assert!(lines.contains("-netdev user,id=user.0\n"), "{lines}");
    assert!(lines.contains("-machine type=pc\n"), "{lines}");
}

#[test]
fn missing_facts_are_errors() {
    let mut f = facts();
    f.ssh_host_port = None;
    assert!(matches!(
        plan_qemu(&cfg(&[]), &f),
        Err(PlanError::MissingFact { .. })
    ));
    let mut f = facts();
    f.iso_path = None;
    assert!(matches!(
        plan_qemu(&cfg(&[]), &f),
        Err(PlanError::MissingFact { .. })
    ));
}

#[test]
fn boot_command_is_joined_rendered_and_parsed() {
    let config = cfg(&[(
        "boot_command",
        list(&[
            "<esc><wait>fs0:<enter>",
            "vmlinuz ds=nocloud-net;s=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ key={{ .SSHPublicKey | urlquery }}<enter>",
        ]),
    )]);
    let data = boot_command_data(&config, &facts(), Some("ssh-ed25519 AAAA kiln"));
    let steps = plan_boot_steps(&config, &data).unwrap();
    assert_eq!(steps.len(), 1);
    assert!(
        steps[0]
            .text
            .contains("s=http://10.0.2.2:8123/ key=ssh-ed25519+AAAA+kiln<enter>"),
        "{}",
        steps[0].text
    );
    let config = cfg(&[("boot_command", list(&["{{ .HTTPDir }}"]))]);
    assert!(matches!(
        plan_boot_steps(&config, &data),
        Err(PlanError::BootCommand { .. })
    ));
}

/// Each argument says what it is: kiln's defaults by construction,
/// `qemuargs` re-declaring kiln's drives (packer-maas) by their files.
#[test]
fn arguments_know_their_slots_including_redeclared_drives() {
    let mut f = facts();
    f.cd_path = Some("seed/cidata.iso".into());
    f.efi_code = Some("/usr/share/OVMF/OVMF_CODE_4M.fd".into());
    let plan = plan_qemu(&cfg(&[("headless", b(true)), ("efi_boot", b(true))]), &f).unwrap();
    let slots: Vec<Slot> = plan
        .arguments
        .iter()
        .map(|a| a.slot)
        .filter(|s| *s != Slot::Other)
        .collect();
    assert_eq!(
        slots,
        vec![
            Slot::Machine,
            Slot::Disk { index: 0 },
            Slot::Iso,
            Slot::Seed { media: Media::Cd },
            Slot::FirmwareCode,
            Slot::UefiVars,
            Slot::SshForward { host_port: 3022 },
            Slot::Serial,
            Slot::Qmp,
        ]
    );
    let vars = plan.slot(Slot::UefiVars).next().unwrap();
    assert_eq!(vars.files[0].path, "output-x/efivars.fd");

    let config = cfg(&[
        ("efi_boot", b(true)),
        (
            "qemuargs",
            lists(&[
                &[
                    "-drive",
                    "if=pflash,format=raw,id=ovmf_code,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
                ],
                &[
                    "-drive",
                    "if=pflash,format=raw,id=ovmf_vars,file=OVMF_VARS.fd",
                ],
                &["-drive", "file=./output-x/packer-x,format=qcow2"],
                &["-drive", "file=seeds-cloudimg.iso,format=raw"],
                &[
                    "-netdev",
                    "user,hostfwd=tcp::{{ .SSHHostPort }}-:22,id=forward",
                ],
            ]),
        ),
    ]);
    let plan = plan_qemu(&config, &f).unwrap();
    let drives: Vec<(Slot, ArgSource)> = plan
        .arguments
        .iter()
        .filter(|a| a.switch == "-drive")
        .map(|a| (a.slot, a.source))
        .collect();
    assert_eq!(
        drives,
        vec![
            (Slot::FirmwareCode, ArgSource::Qemuargs { index: 0 }),
            (Slot::UefiVars, ArgSource::Qemuargs { index: 1 }),
            (Slot::Disk { index: 0 }, ArgSource::Qemuargs { index: 2 }),
            (Slot::Other, ArgSource::Qemuargs { index: 3 }),
            (Slot::Seed { media: Media::Cd }, ArgSource::Kiln),
        ]
    );
    assert_eq!(
        plan.slot(Slot::SshForward { host_port: 3022 }).count(),
        1,
        "{}",
        plan.to_lines()
    );
}

/// A comma in a file name is doubled where QEMU reads an option string,
/// and a `qemuargs` drive naming the disk that way is still the disk.
#[test]
fn commas_in_file_names_are_escaped_and_recognised() {
    let mut f = facts();
    f.cd_path = Some("seed,x/cidata.iso".into());
    f.qmp_socket = "/run/kiln,x/qmp.sock".into();
    let config = cfg(&[("headless", b(true)), ("output_directory", s("out,1"))]);
    let plan = plan_qemu(&config, &f).unwrap();
    let lines = plan.to_lines();
    assert!(
        lines.contains("-drive file=out,,1/packer-x,if=virtio,"),
        "{lines}"
    );
    assert!(
        lines.contains("-drive file=seed,,x/cidata.iso,media=cdrom"),
        "{lines}"
    );
    assert!(
        lines.contains("-qmp unix:/run/kiln,,x/qmp.sock,server=on,wait=off"),
        "{lines}"
    );
    let disk = plan.slot(Slot::Disk { index: 0 }).next().unwrap();
    assert_eq!(disk.files[0].path, "out,1/packer-x");

    let config = cfg(&[
        ("output_directory", s("out,1")),
        (
            "qemuargs",
            lists(&[&["-drive", "file={{ .OutputDir }}/packer-x,format=qcow2"]]),
        ),
    ]);
    // The rendered placeholder holds a bare comma: QEMU would split there,
    // so this drive is not the disk.
    let plan = plan_qemu(&config, &f).unwrap();
    assert_eq!(plan.slot(Slot::Disk { index: 0 }).count(), 0);
    let config = cfg(&[
        ("output_directory", s("out,1")),
        (
            "qemuargs",
            lists(&[&["-drive", "file=out,,1/packer-x,format=qcow2"]]),
        ),
    ]);
    let plan = plan_qemu(&config, &f).unwrap();
    assert_eq!(plan.slot(Slot::Disk { index: 0 }).count(), 1);
}
