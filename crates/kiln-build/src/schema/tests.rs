//! Tests over every schema of the registry: the tables and the decoders
//! agree on names, defaults, required fields and suggestions, and the
//! committed reference docs are what the tables generate.

use std::collections::BTreeSet;
use std::path::Path;

use kiln_template::body::{Attribute, Body};
use kiln_template::decode::DecodeError;
use kiln_template::schema::{FieldDefault, PluginKind, Schema, Support};
use kiln_template::span::Span;
use kiln_template::value::Value;

use super::*;
use crate::postprocess::{self, PostProcessorConfig};
use crate::provision::{self, ProvisionerConfig};
use crate::spec::NullConfig;

/// A decoded block of any plugin type.
#[derive(Debug, PartialEq)]
enum Decoded {
    Qemu(Box<kiln_qemu::QemuConfig>),
    Null(NullConfig),
    Provisioner(ProvisionerConfig),
    PostProcessor(PostProcessorConfig),
}

fn decode(schema: &Schema, attrs: &[(&str, Value)]) -> Result<Decoded, Vec<DecodeError>> {
    let mut body = Body::empty(Span::synthetic("t.pkr.hcl"));
    for (i, (name, value)) in attrs.iter().enumerate() {
        body.attrs.insert(
            name.to_string(),
            Attribute {
                name: name.to_string(),
                value: value.clone(),
                span: Span {
                    file: "t.pkr.hcl".into(),
                    line: i as u32 + 2,
                    col: 3,
                    bytes: 0..0,
                },
                sensitive: false,
            },
        );
    }
    let cwd = Path::new(".");
    match (schema.kind, schema.name) {
        (PluginKind::Source, "qemu") => kiln_qemu::QemuConfig::decode(&body, "x").map(|d| {
            let mut config = d.config;
            // Where a field was written is not what it decodes to.
            config.spans.clear();
            Decoded::Qemu(Box::new(config))
        }),
        (PluginKind::Source, "null") => crate::plan::decode_null(&body, "x").map(Decoded::Null),
        (PluginKind::Source, other) => panic!("no decoder for source {other} in this test"),
        (PluginKind::Provisioner, name) => {
            provision::decode(name, &body, "p", cwd, 1).map(Decoded::Provisioner)
        }
        (PluginKind::PostProcessor, name) => {
            postprocess::decode(name, &body, "pp", cwd).map(Decoded::PostProcessor)
        }
    }
}

fn example(schema: &Schema) -> Vec<(&'static str, Value)> {
    schema
        .example_attrs()
        .unwrap_or_else(|e| panic!("{}: {e}", schema.block_header()))
}

fn messages(errors: &[DecodeError]) -> Vec<String> {
    errors
        .iter()
        .map(|e| format!("{} ({:?})", e.message, e.help))
        .collect()
}

#[test]
fn every_field_is_unique_documented_and_its_default_parses() {
    for schema in all() {
        let what = schema.block_header();
        assert!(!schema.summary.is_empty(), "{what} has no summary");
        let mut seen = BTreeSet::new();
        for field in schema.fields() {
            assert!(
                seen.insert(field.name),
                "{what}: duplicate `{}`",
                field.name
            );
            assert!(!field.doc.is_empty(), "{what}: `{}` has no doc", field.name);
            if let Some(of) = field.alias_of {
                assert!(
                    schema.field(of).is_some(),
                    "{what}: `{}` aliases unknown `{of}`",
                    field.name
                );
            }
            if let Some(parsed) = field.default_value() {
                assert!(parsed.is_ok(), "{what}: {parsed:?}");
            }
            if let FieldDefault::Computed(text) = field.default {
                assert!(!text.is_empty(), "{what}: `{}`", field.name);
            }
        }
    }
}

#[test]
fn every_example_decodes() {
    for schema in all() {
        if let Err(errors) = decode(schema, &example(schema)) {
            panic!("{}: {:#?}", schema.block_header(), messages(&errors));
        }
    }
}

/// Fields whose written default does not decode like an absent field,
/// and why.
const DEFAULT_EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "qemu",
        "vnc_bind_address",
        "setting any `vnc_*` field starts VNC",
    ),
    (
        "qemu",
        "vnc_port_min",
        "setting any `vnc_*` field starts VNC",
    ),
    (
        "qemu",
        "vnc_port_max",
        "setting any `vnc_*` field starts VNC",
    ),
];

#[test]
fn every_default_is_what_decoding_an_unset_field_gives() {
    for schema in all() {
        for field in schema.fields() {
            let Some(Ok(default)) = field.default_value() else {
                continue;
            };
            if DEFAULT_EXCEPTIONS
                .iter()
                .any(|(s, f, _)| *s == schema.name && *f == field.name)
            {
                continue;
            }
            let what = format!("{} `{}`", schema.block_header(), field.name);
            let mut base = example(schema);
            base.retain(|(n, _)| *n != field.name);
            let unset = decode(schema, &base)
                .unwrap_or_else(|e| panic!("{what} unset: {:#?}", messages(&e)));
            base.push((field.name, default));
            let written = decode(schema, &base)
                .unwrap_or_else(|e| panic!("{what} written: {:#?}", messages(&e)));
            assert_eq!(
                unset, written,
                "{what}: the default in the table is not the decoder's"
            );
        }
    }
}

#[test]
fn every_required_field_is_in_the_example_and_missing_it_is_an_error() {
    for schema in all() {
        for field in schema.fields().filter(|f| f.required) {
            let what = format!("{} `{}`", schema.block_header(), field.name);
            let mut attrs = example(schema);
            let before = attrs.len();
            attrs.retain(|(n, _)| *n != field.name);
            assert_ne!(
                before,
                attrs.len(),
                "{what} is required but not in the example"
            );
            assert!(decode(schema, &attrs).is_err(), "{what} can be left out");
        }
    }
}

#[test]
fn every_field_in_the_table_is_accepted_by_the_decoder() {
    // A null value counts as unset, but a name the decoder does not know is
    // still reported. (The other way round, a decoder asking for a name
    // outside its table fails a debug assertion in every test here.)
    for schema in all() {
        for field in schema.fields() {
            let mut attrs = example(schema);
            attrs.retain(|(n, _)| *n != field.name);
            attrs.push((field.name, Value::Null));
            if let Err(errors) = decode(schema, &attrs) {
                let unknown: Vec<String> = messages(&errors)
                    .into_iter()
                    .filter(|m| m.contains("unknown"))
                    .collect();
                assert!(
                    unknown.is_empty(),
                    "{} `{}`: {unknown:?}",
                    schema.block_header(),
                    field.name
                );
            }
        }
    }
}

#[test]
fn unsupported_fields_are_refused_by_name() {
    for schema in all() {
        for field in schema
            .fields()
            .filter(|f| f.support == Support::Unsupported)
        {
            let mut attrs = example(schema);
            let value = match field.ty {
                "bool" => Value::Bool(true),
                "int" => Value::Number(kiln_template::value::Number(1.0)),
                "[]string" => Value::Tuple(vec![Value::String("x".into())]),
                _ => Value::String("x".into()),
            };
            attrs.push((field.name, value));
            let errors = decode(schema, &attrs).err().unwrap_or_default();
            assert!(
                messages(&errors)
                    .iter()
                    .any(|m| m.contains(field.name) && m.contains("not supported by kiln")),
                "{} `{}`: {:?}",
                schema.block_header(),
                field.name,
                messages(&errors)
            );
        }
    }
}

#[test]
fn suggestions_for_unknown_fields_come_from_the_table() {
    for schema in all() {
        let names = schema.names();
        for field in schema.fields().filter(|f| f.name.len() >= 5) {
            let typo = format!("{}x", field.name);
            let mut attrs = example(schema);
            attrs.push((Box::leak(typo.clone().into_boxed_str()), Value::Null));
            let errors = decode(schema, &attrs).err().unwrap_or_default();
            let help = errors
                .iter()
                .find(|e| e.message.contains(&format!("`{typo}`")))
                .and_then(|e| e.help.clone())
                .unwrap_or_default();
            let suggested = help
                .strip_prefix("did you mean `")
                .and_then(|h| h.strip_suffix("`?"))
                .unwrap_or_default();
            assert!(
                names.contains(&suggested),
                "{} `{typo}`: suggested {help:?}",
                schema.block_header()
            );
        }
    }
}

#[test]
fn the_type_lists_are_the_registry() {
    let names = |list: &[&Schema]| list.iter().map(|s| s.name).collect::<Vec<_>>();
    assert_eq!(names(SOURCES), crate::plan::SOURCE_TYPES);
    assert_eq!(names(PROVISIONERS), provision::TYPES);
    assert_eq!(names(POST_PROCESSORS), postprocess::TYPES);
}

#[test]
fn the_maas_tgz_default_level_is_kiln_maas_default() {
    let field = maas::TGZ_SCHEMA.field("compression_level");
    assert_eq!(
        field.map(|f| f.default),
        Some(FieldDefault::Literal(
            kiln_maas::tgz::DEFAULT_LEVEL.to_string().leak()
        ))
    );
}

#[test]
fn the_committed_reference_docs_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference");
    let pages = reference::pages();
    let mut stale = Vec::new();
    for (name, text) in &pages {
        let committed = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        if &committed != text {
            let first = committed
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(committed.lines().count().min(text.lines().count()));
            stale.push(format!(
                "{name}: line {}: committed {:?}, generated {:?}",
                first + 1,
                committed.lines().nth(first).unwrap_or("<end>"),
                text.lines().nth(first).unwrap_or("<end>")
            ));
        }
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") && !pages.contains_key(&name) {
            stale.push(format!("{name}: not generated any more; delete it"));
        }
    }
    assert!(
        stale.is_empty(),
        "docs/reference is stale; run `{}` from the workspace root:\n{}",
        reference::REGENERATE,
        stale.join("\n")
    );
}

#[test]
fn sensitive_values_are_read_from_the_fields_the_schemas_mark() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.pkr.hcl"),
        r#"
source "qemu" "x" {
  iso_url      = "x.iso"
  iso_checksum = "none"
  ssh_username = "u"
  ssh_password = "ssh-secret"
  vnc_password = "vncpw"
}
build {
  sources = ["source.qemu.x"]
  post-processor "maas-upload" {
    url     = "http://maas:5240/MAAS"
    resource_name = "custom/x"
    api_key = "a:b:c"
    title   = "not a secret"
  }
}
"#,
    )
    .unwrap();
    let loaded = kiln_template::load::load(&kiln_template::load::LoadOptions::new(dir.path()))
        .map_err(|f| format!("{:?}", f.errors))
        .unwrap();
    let mut values = sensitive_values(&loaded);
    values.sort();
    assert_eq!(values, ["a:b:c", "ssh-secret", "vncpw"]);
}

#[test]
fn plan_json_shows_the_decoded_fields_of_provisioners_and_post_processors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.pkr.hcl"),
        r#"
source "qemu" "x" {
  iso_url      = "x.iso"
  iso_checksum = "none"
  ssh_username = "u"
}
build {
  sources = ["source.qemu.x"]
  provisioner "shell" {
    inline = ["true"]
  }
  post-processor "checksum" {
    checksum_types = ["sha256"]
  }
}
"#,
    )
    .unwrap();
    let loaded = kiln_template::load::load(&kiln_template::load::LoadOptions::new(dir.path()))
        .map_err(|f| format!("{:?}", f.errors))
        .unwrap();
    let planned = crate::plan::decode_builds(&loaded, dir.path())
        .map_err(|e| format!("{e:?}"))
        .unwrap();
    let plan = crate::plan::plan_json(&planned.specs[0], dir.path(), dir.path()).unwrap();
    let shell = &plan["provisioners"][0]["config"];
    assert_eq!(shell["source"]["inline"], serde_json::json!(["true"]));
    assert_eq!(shell["remote_folder"], "/tmp");
    let checksum = &plan["post_processors"][0][0]["config"];
    assert_eq!(checksum["checksum_types"], serde_json::json!(["sha256"]));
}

#[test]
fn no_plugin_field_is_shadowed_by_a_field_every_block_has() {
    use kiln_template::load::{POST_PROCESSOR_COMMON, PROVISIONER_COMMON};
    // The loader takes the common fields before a plugin's decoder sees the
    // body. `keep_input_artifact` is listed per post-processor because its
    // meaning differs between them.
    let allowed = |_: &Schema, name: &str| name == "keep_input_artifact";
    for (list, common) in [
        (PROVISIONERS, PROVISIONER_COMMON),
        (POST_PROCESSORS, POST_PROCESSOR_COMMON),
    ] {
        for schema in list {
            for field in schema.fields().filter(|f| common.contains(&f.name)) {
                assert!(
                    allowed(schema, field.name),
                    "{} `{}` is shadowed by the common field",
                    schema.block_header(),
                    field.name
                );
            }
        }
    }
}

#[test]
fn maas_upload_without_resource_name_says_that_name_labels_the_block() {
    let errors = decode(
        &crate::postprocess::maas::UPLOAD_SCHEMA,
        &[("url", Value::String("http://maas:5240/MAAS".into()))],
    )
    .unwrap_err();
    let text = messages(&errors).join("\n");
    assert!(
        text.contains("`resource_name`: missing required attribute"),
        "{text}"
    );
    assert!(
        text.contains("`name` names the post-processor block"),
        "{text}"
    );
}
