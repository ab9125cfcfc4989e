use super::*;
use crate::schema::FIELDS;
use crate::testutil::*;
use kiln_template::value::Value;

fn errors(attrs: &[(&str, Value)]) -> Vec<String> {
    match QemuConfig::decode(&body(attrs), "x") {
        Ok(_) => Vec::new(),
        Err(e) => e
            .into_iter()
            .map(|e| {
                format!(
                    "{}{}",
                    e.message,
                    e.help.map(|h| format!(" ({h})")).unwrap_or_default()
                )
            })
            .collect(),
    }
}

fn with(extra: &[(&'static str, Value)]) -> Vec<(&'static str, Value)> {
    let mut v = minimal();
    v.extend(extra.iter().cloned());
    v
}

#[test]
fn every_decoded_field_is_documented_and_every_documented_field_decoded() {
    let decoded = decoded_names();
    let documented: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
    for name in &decoded {
        assert!(
            documented.contains(name),
            "`{name}` is decoded but not in the schema"
        );
    }
    for name in &documented {
        assert!(
            decoded.contains(name),
            "`{name}` is in the schema but never decoded"
        );
    }
}

#[test]
fn defaults_are_packers() {
    let c = decode(&minimal());
    assert_eq!(c.output_directory, "output-x");
    assert_eq!(c.vm_name, "packer-x");
    assert_eq!(c.disk_path(), "output-x/packer-x");
    assert_eq!(c.disk_size.arg, "40960M");
    assert_eq!(c.format, DiskFormat::Qcow2);
    assert_eq!(c.disk_interface, "virtio");
    assert_eq!(c.disk_cache, "writeback");
    assert_eq!(c.disk_discard, "ignore");
    assert_eq!(c.disk_detect_zeroes, "off");
    assert_eq!(c.machine_type, "pc");
    assert_eq!(c.memory, 512);
    assert_eq!(c.smp.arg(), "1");
    assert_eq!(c.net_device, "virtio-net");
    assert_eq!(c.qemu_binary, "qemu-system-x86_64");
    assert_eq!(c.boot.wait, Duration::from_secs(10));
    assert_eq!(c.shutdown_timeout, Duration::from_secs(300));
    assert_eq!(c.host_port.min, 2222);
    assert_eq!(c.host_port.max, 4444);
    assert_eq!(c.http.port_min, 8000);
    assert_eq!(c.http.port_max, 9000);
    assert_eq!(c.http.bind_address, "127.0.0.1");
    assert_eq!(c.accelerator, None);
    assert!(!c.vnc.enabled);
    let ssh = c.ssh().unwrap();
    assert_eq!(ssh.port, 22);
    assert_eq!(ssh.timeout, Duration::from_secs(300));
    assert_eq!(ssh.handshake_attempts, 10);
    assert_eq!(ssh.temporary_key_pair_type, "ed25519");
    assert_eq!(ssh.keep_alive_interval, Some(Duration::from_secs(5)));
}

#[test]
fn disk_sizes_parse_as_packer() {
    let ok = |t: &str| DiskSize::parse_disk_size(t).unwrap();
    assert_eq!(
        ok("10G"),
        DiskSize {
            arg: "10G".into(),
            bytes: 10 << 30
        }
    );
    assert_eq!(ok("10240M").bytes, 10 << 30);
    assert_eq!(
        ok("10240"),
        DiskSize {
            arg: "10240M".into(),
            bytes: 10 << 30
        }
    );
    assert_eq!(ok("1t").bytes, 1 << 40);
    assert_eq!(ok("512k").bytes, 512 << 10);
    assert_eq!(ok("0").arg, "40960M");
    for bad in ["10GB", "1.5G", "-1G", "G", "ten", "10 G"] {
        assert!(DiskSize::parse_disk_size(bad).is_err(), "{bad}");
    }
    assert_eq!(DiskSize::parse_qemu_img_size("1024").unwrap().bytes, 1024);
    assert_eq!(DiskSize::parse_qemu_img_size("2P").unwrap().bytes, 2 << 50);
}

#[test]
fn memory_below_ten_means_default_and_cpus_follow_topology() {
    let c = decode(&with(&[
        ("memory", n(4.0)),
        ("sockets", n(2.0)),
        ("cores", n(2.0)),
    ]));
    assert_eq!(c.memory, 512);
    assert_eq!(c.smp.arg(), "4,sockets=2,cores=2");
    let c = decode(&with(&[
        ("cpus", n(8.0)),
        ("sockets", n(1.0)),
        ("threads", n(2.0)),
    ]));
    assert_eq!(c.smp.arg(), "2,sockets=1,threads=2");
    let c = decode(&with(&[("cpus", s("2"))]));
    assert_eq!(c.smp.arg(), "2");
}

#[test]
fn integer_fields_out_of_range_are_errors_naming_the_range() {
    // Was `-smp 4294967295`: the value saturated into u32.
    let e = errors(&with(&[("cpus", n(99_999_999_999.0))]));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("`cpus`"), "{e:?}");
    assert!(
        e[0].contains("99999999999 is out of range: allowed 0..=1024"),
        "{e:?}"
    );
    for field in ["sockets", "cores", "threads"] {
        let e = errors(&with(&[(field, n(1025.0))]));
        assert!(
            e.len() == 1 && e[0].contains(&format!("`{field}`")) && e[0].contains("0..=1024"),
            "{field}: {e:?}"
        );
    }
    let e = errors(&with(&[("memory", n(1e30))]));
    assert!(
        e.len() == 1 && e[0].contains("`memory`") && e[0].contains("..=16777216 MiB"),
        "{e:?}"
    );
    let e = errors(&with(&[("ssh_handshake_attempts", n(5e9))]));
    assert!(e.len() == 1 && e[0].contains("..=4294967295"), "{e:?}");
    let e = errors(&with(&[("temporary_key_pair_bits", n(1e12))]));
    assert!(e.len() == 1 && e[0].contains("..=16384"), "{e:?}");
    let e = errors(&with(&[("cpus", n(2.5))]));
    assert!(e.len() == 1 && e[0].contains("not a whole number"), "{e:?}");
    // The bounds themselves are fine.
    let c = decode(&with(&[("cpus", n(1024.0)), ("memory", n(16_777_216.0))]));
    assert_eq!(c.smp.arg(), "1024");
    assert_eq!(c.memory, 16 << 20);
}

#[test]
fn checksums_parse_in_every_packer_form() {
    let digest = |a: &str, h: &str| IsoChecksum::Digest {
        algorithm: a.into(),
        hex: h.into(),
    };
    let sha256 = "ED363350696A726B7932DB864DDA019BD2017365C9E299627830F06954643F93";
    assert_eq!(
        IsoChecksum::parse(&format!("sha256:{sha256}")).unwrap(),
        digest("sha256", &sha256.to_lowercase())
    );
    assert_eq!(
        IsoChecksum::parse(sha256).unwrap(),
        digest("sha256", &sha256.to_lowercase())
    );
    assert_eq!(
        IsoChecksum::parse("090992ba9fd140077b0661cb75f7ce13").unwrap(),
        digest("md5", "090992ba9fd140077b0661cb75f7ce13")
    );
    assert_eq!(IsoChecksum::parse("none").unwrap(), IsoChecksum::None);
    assert_eq!(
        IsoChecksum::parse("file:https://cloud-images.ubuntu.com/x/SHA256SUMS").unwrap(),
        IsoChecksum::File {
            location: "https://cloud-images.ubuntu.com/x/SHA256SUMS".into()
        }
    );
    assert!(IsoChecksum::parse("sha256:abc").is_err());
    assert!(IsoChecksum::parse("crc32:abcd").is_err());
    assert!(IsoChecksum::parse("").is_err());
    assert!(IsoChecksum::parse("abc").is_err());
}

#[test]
fn unknown_attribute_suggests_the_field() {
    let e = errors(&with(&[("disk_sise", s("10G"))]));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("unknown attribute `disk_sise`"), "{e:?}");
    assert!(e[0].contains("did you mean `disk_size`?"), "{e:?}");
}

#[test]
fn all_errors_are_collected() {
    let e = errors(&[
        ("iso_checksum", s("none")),
        ("format", s("vmdk")),
        ("accelerator", s("kvmm")),
        ("disk_size", s("10GB")),
        ("disk_cache", s("writebak")),
        ("use_backing_file", b(true)),
        ("memroy", n(1024.0)),
    ]);
    let all = e.join("\n");
    for needle in [
        "one of `iso_url` or `iso_urls` must be specified",
        "invalid format",
        "invalid accelerator",
        "invalid disk size",
        "did you mean `writeback`?",
        "use_backing_file can only be enabled for QCOW2 images and when disk_image is true",
        "an `ssh_username` must be specified",
        "unknown attribute `memroy`",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

#[test]
fn cross_field_rules_of_packer() {
    let c = decode(&with(&[
        ("format", s("raw")),
        ("disk_compression", b(true)),
    ]));
    assert!(c.skip_compaction);
    assert!(!c.disk_compression);
    let c = decode(&with(&[
        ("disk_image", b(true)),
        ("use_backing_file", b(true)),
    ]));
    assert!(c.skip_compaction);
    let e = errors(&with(&[("skip_resize_disk", b(true))]));
    assert!(
        e.join("")
            .contains("skip_resize_disk can only be used when disk_image is true")
    );
    let e = errors(&with(&[("iso_urls", list(&["a"]))]));
    assert!(e.join("").contains("only one of `iso_url` or `iso_urls`"));
    let e = errors(&with(&[
        ("boot_command", list(&["<enter>"])),
        ("boot_steps", lists(&[&["a"]])),
    ]));
    assert!(e.join("").contains("cannot be used together"));
    let e = errors(&with(&[
        ("http_directory", s("http")),
        ("http_content", map(&[("/a", "b")])),
    ]));
    assert!(e.join("").contains("cannot be used in conjunction"));
    let e = errors(&with(&[("vnc_port_min", n(5000.0))]));
    assert!(e.join("").contains("cannot be below 5900"));
    let e = errors(&with(&[("cpus", n(-1.0))]));
    assert!(e.join("").contains("cpus must be a positive number"));
}

#[test]
fn ssh_wait_timeout_wins_over_ssh_timeout() {
    let c = decode(&with(&[
        ("ssh_timeout", s("20m")),
        ("ssh_wait_timeout", s("45m")),
    ]));
    assert_eq!(c.ssh().unwrap().timeout, Duration::from_secs(45 * 60));
    let c = decode(&with(&[("ssh_timeout", s("20m"))]));
    assert_eq!(c.ssh().unwrap().timeout, Duration::from_secs(20 * 60));
}

#[test]
fn deprecated_host_port_spelling_warns_and_applies() {
    let d = QemuConfig::decode(
        &body(&with(&[
            ("ssh_host_port_min", n(3000.0)),
            ("ssh_host_port_max", n(3010.0)),
        ])),
        "x",
    )
    .unwrap();
    assert_eq!(d.config.host_port.min, 3000);
    assert_eq!(d.config.host_port.max, 3010);
    assert_eq!(
        d.warnings
            .iter()
            .filter(|w| w.message.contains("deprecated"))
            .count(),
        2
    );
}

#[test]
fn efi_is_implied_by_firmware_paths() {
    let c = decode(&with(&[("efi_firmware_code", s("/fw/CODE.fd"))]));
    assert!(c.efi.enabled);
    assert_eq!(c.efivars_path(), "output-x/efivars.fd");
}

#[test]
fn negative_boot_wait_means_none() {
    assert_eq!(
        decode(&with(&[("boot_wait", s("-1s"))])).boot.wait,
        Duration::ZERO
    );
    assert_eq!(
        decode(&with(&[("boot_wait", s("2s"))])).boot.wait,
        Duration::from_secs(2)
    );
}

#[test]
fn unsupported_fields_are_refused_and_ignored_fields_warn() {
    let e = errors(&with(&[("ssh_bastion_host", s("jump"))]));
    assert!(e.join("").contains("not supported by kiln"), "{e:?}");
    // Go's zero value is the same as unset in Packer: no error.
    assert!(errors(&with(&[("vtpm", b(false))])).is_empty());
    let d = QemuConfig::decode(&body(&with(&[("boot_keygroup_interval", s("1s"))])), "x").unwrap();
    assert_eq!(
        d.warnings
            .iter()
            .filter(|w| w.message.contains("boot_keygroup_interval"))
            .count(),
        1
    );
    let e = errors(&with(&[("communicator", s("winrm"))]));
    assert!(e.join("").contains("winrm"), "{e:?}");
}

#[test]
fn qemu_img_args_is_a_block_or_a_json_object() {
    let b = with_block(
        body(&minimal()),
        "qemu_img_args",
        &[("create", list(&["-F", "qcow2"]))],
    );
    let c = QemuConfig::decode(&b, "x").unwrap().config;
    assert_eq!(c.qemu_img_args.create, vec!["-F", "qcow2"]);
    let c = decode(&with(&[(
        "qemu_img_args",
        Value::Object([("convert".to_string(), list(&["-o", "preallocation=full"]))].into()),
    )]));
    assert_eq!(c.qemu_img_args.convert, vec!["-o", "preallocation=full"]);
}

#[test]
fn bad_boot_command_is_reported_at_decode() {
    let e = errors(&with(&[("boot_command", list(&["<wait0>"]))]));
    assert!(e.join("").contains("positive wait"), "{e:?}");
}

#[test]
fn paths_join_like_go() {
    assert_eq!(join_path("./out/", "vm"), "out/vm");
    assert_eq!(join_path("/abs/out", "vm"), "/abs/out/vm");
    assert_eq!(join_path("a/../b", "vm"), "b/vm");
    assert_eq!(clean_path("../x/./y"), "../x/y");
}

#[test]
fn misspelled_boot_keys_warn_with_the_closest_key() {
    let d = QemuConfig::decode(
        &body(&with(&[(
            "boot_command",
            list(&["<esc><wiat5>", "linux ip=dhcp<enter>"]),
        )])),
        "x",
    )
    .unwrap();
    let w: Vec<&ConfigWarning> = d.warnings.iter().filter(|w| w.text.is_some()).collect();
    assert_eq!(w.len(), 1, "{:?}", d.warnings);
    assert!(
        w[0].message.contains("`<wiat5>` in `boot_command`"),
        "{}",
        w[0].message
    );
    assert_eq!(w[0].help.as_deref(), Some("did you mean `<wait5>`?"));
    assert_eq!(w[0].text.as_deref(), Some("<wiat5>"));
}
