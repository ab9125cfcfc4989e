use super::*;
use crate::testutil::*;
use kiln_template::value::Value;

fn cfg(extra: &[(&'static str, Value)]) -> QemuConfig {
    let mut attrs = minimal();
    attrs.extend(extra.iter().cloned());
    decode(&attrs)
}

fn lines(plan: &DiskPlan) -> String {
    let mut out = String::from("before boot:\n");
    for c in &plan.before_boot {
        out.push_str(&format!("  {}\n", c.display()));
    }
    out.push_str("after shutdown:\n");
    for c in &plan.after_shutdown {
        out.push_str(&format!("  {}\n", c.display()));
    }
    out
}

const BASE: SourceImage<'static> = SourceImage {
    path: "/cache/base.qcow2",
    format: None,
};

#[test]
fn iso_install_creates_and_compacts() {
    let plan = plan_disk(
        &cfg(&[
            ("disk_size", s("10240")),
            ("disk_additional_size", list(&["1G"])),
        ]),
        None,
    )
    .unwrap();
    insta::assert_snapshot!(lines(&plan));
}

#[test]
fn backing_file_overlay_is_resized_and_not_compacted() {
    let b = with_block(
        body(&[
            ("iso_url", s("x")),
            ("iso_checksum", s("none")),
            ("ssh_username", s("u")),
            ("disk_image", b(true)),
            ("use_backing_file", b(true)),
            ("disk_size", s("4G")),
        ]),
        "qemu_img_args",
        &[
            ("create", list(&["-F", "qcow2"])),
            ("resize", list(&["--shrink"])),
        ],
    );
    let config = QemuConfig::decode(&b, "cloudimg").unwrap().config;
    let plan = plan_disk(&config, Some(BASE)).unwrap();
    insta::assert_snapshot!(lines(&plan));
}

#[test]
fn disk_image_copy_or_convert_and_compression() {
    // Extension matches the format: a plain copy, as Packer does.
    let plan = plan_disk(
        &cfg(&[("disk_image", b(true)), ("disk_compression", b(true))]),
        Some(BASE),
    )
    .unwrap();
    assert!(matches!(plan.before_boot[0], DiskCommand::Copy { .. }));
    // Downloads end in `.iso` by default: converted.
    let iso = SourceImage {
        path: "/cache/0123.iso",
        format: Some("qcow2"),
    };
    let plan2 = plan_disk(
        &cfg(&[("disk_image", b(true)), ("skip_resize_disk", b(true))]),
        Some(iso),
    )
    .unwrap();
    insta::assert_snapshot!(format!("{}---\n{}", lines(&plan), lines(&plan2)));
}

#[test]
fn raw_output_is_never_converted() {
    let plan = plan_disk(
        &cfg(&[("format", s("raw")), ("disk_compression", b(true))]),
        None,
    )
    .unwrap();
    assert!(plan.after_shutdown.is_empty());
}

#[test]
fn relative_backing_file_is_refused() {
    let c = cfg(&[("disk_image", b(true)), ("use_backing_file", b(true))]);
    let rel = SourceImage {
        path: "base.qcow2",
        format: None,
    };
    assert!(plan_disk(&c, Some(rel)).is_err());
    assert!(plan_disk(&c, None).is_err());
}
