//! The registry of plugin schemas: one table per source, provisioner and
//! post-processor type kiln runs (see [`kiln_template::schema`]). Decoding,
//! the reference docs ([`reference`]) and "did you mean" read these tables;
//! the tests here loop over all of them.

pub mod reference;

use kiln_template::body::Body;
use kiln_template::load::Loaded;
use kiln_template::schema::{Field, PluginKind, Schema};
use kiln_template::value::Value;

use crate::postprocess::{checksum, compress, maas, manifest};
use crate::provision::{breakpoint, file, shell, shell_local};

/// `source "null"`: no machine; optionally an SSH host to provision.
pub static NULL: Schema = Schema {
    kind: PluginKind::Source,
    name: "null",
    summary: "No machine: provisioners run against an existing host over SSH, or, with `communicator = \"none\"`, only on the build host (`shell-local`).",
    groups: &[NULL_FIELDS],
    example: &[("ssh_host", "192.0.2.10"), ("ssh_username", "admin")],
};

static NULL_FIELDS: &[Field] = &[
    Field::new("communicator", "string", "`ssh` or `none`.").default("ssh"),
    Field::new(
        "ssh_host",
        "string",
        "Host to connect to. Required with `communicator = \"ssh\"`.",
    )
    .required(),
    Field::new("ssh_port", "int", "SSH port of the host.").default("22"),
    Field::new(
        "ssh_username",
        "string",
        "User to log in as. Required with `communicator = \"ssh\"`.",
    )
    .required(),
    Field::new("ssh_password", "string", "Password for SSH authentication.").sensitive(),
    Field::new(
        "ssh_private_key_file",
        "string",
        "Private key for SSH authentication.",
    ),
    Field::new(
        "ssh_timeout",
        "duration",
        "How long to wait for SSH to become available.",
    )
    .default("5m"),
    Field::new(
        "ssh_wait_timeout",
        "duration",
        "Older spelling of `ssh_timeout`.",
    )
    .alias_of("ssh_timeout"),
];

/// Every source type kiln builds.
pub static SOURCES: &[&Schema] = &[&kiln_qemu::schema::SCHEMA, &NULL];

/// Every provisioner type kiln runs.
pub static PROVISIONERS: &[&Schema] = &[
    &shell::SCHEMA,
    &file::SCHEMA,
    &shell_local::PROVISIONER_SCHEMA,
    &breakpoint::SCHEMA,
];

/// Every post-processor type kiln runs.
pub static POST_PROCESSORS: &[&Schema] = &[
    &manifest::SCHEMA,
    &checksum::SCHEMA,
    &compress::SCHEMA,
    &shell_local::POST_PROCESSOR_SCHEMA,
    &maas::TGZ_SCHEMA,
    &maas::DD_SCHEMA,
    &maas::UPLOAD_SCHEMA,
];

/// Every schema: sources, provisioners, post-processors.
pub fn all() -> impl Iterator<Item = &'static Schema> {
    SOURCES
        .iter()
        .chain(PROVISIONERS)
        .chain(POST_PROCESSORS)
        .copied()
}

/// The schema of a plugin type, if kiln runs it.
pub fn find(kind: PluginKind, name: &str) -> Option<&'static Schema> {
    all().find(|s| s.kind == kind && s.name == name)
}

/// The values written in the fields the schemas mark sensitive
/// (`ssh_password`, `vnc_password`, `api_key`, …) in every selected block,
/// for the redactor and the leak scan. Values of sensitive variables are
/// [`Loaded::sensitive_values`]; these are the literals.
pub fn sensitive_values(loaded: &Loaded) -> Vec<String> {
    let mut values = Vec::new();
    let mut collect = |kind: PluginKind, name: &str, body: &Body| {
        let Some(schema) = find(kind, name) else {
            return;
        };
        for name in schema.sensitive_fields() {
            if let Some(Value::String(v)) = body.attrs.get(name).map(|a| &a.value)
                && !v.is_empty()
            {
                values.push(v.clone());
            }
        }
    };
    for build in &loaded.builds {
        collect(PluginKind::Source, &build.source.kind, &build.source.body);
        for p in build
            .provisioners
            .iter()
            .chain(&build.error_cleanup_provisioner)
        {
            collect(PluginKind::Provisioner, &p.kind, &p.body);
        }
        for p in build.post_processors.iter().flatten() {
            collect(PluginKind::PostProcessor, &p.kind, &p.body);
        }
    }
    values
}

#[cfg(test)]
mod tests;
