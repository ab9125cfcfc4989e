//! The `checksum` post-processor: one checksum file per type, lines of
//! `HEX<TAB>basename`, appended to (as Packer does).

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_qemu::placeholders::{self, TemplateData};
use kiln_template::body::Body;
use kiln_template::decode::{DecodeError, Decoder};
use kiln_template::schema::{Field, PluginKind, Schema};

use crate::artifact::Artifact;

/// `post-processor "checksum"`.
pub static SCHEMA: Schema = Schema {
    kind: PluginKind::PostProcessor,
    name: "checksum",
    summary: "One checksum file per type for the artifact's files, lines of `HEX<TAB>basename`, appended to as Packer does.",
    groups: &[FIELDS],
    example: &[("checksum_types", r#"["sha256"]"#)],
};

pub static FIELDS: &[Field] = &[
    Field::new(
        "checksum_types",
        "[]string",
        "Digests to write: `md5`, `sha1`, `sha224`, `sha256`, `sha384`, `sha512`.",
    )
    .default(r#"["md5"]"#),
    Field::new(
        "output",
        "string",
        "The checksum file; `{{.BuildName}}`, `{{.BuilderType}}` and `{{.ChecksumType}}` are rendered.",
    )
    .default("packer_{{.BuildName}}_{{.BuilderType}}_{{.ChecksumType}}.checksum"),
    Field::new(
        "keep_input_artifact",
        "bool",
        "Accepted for Packer compatibility (the input is always kept).",
    ),
];

pub const TYPES: &[&str] = &["md5", "sha1", "sha224", "sha256", "sha384", "sha512"];

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ChecksumConfig {
    pub checksum_types: Vec<String>,
    pub output: String,
}

pub fn decode(body: &Body, what: &str) -> Result<ChecksumConfig, Vec<DecodeError>> {
    let mut d = Decoder::with_schema(body, what, &SCHEMA);
    let checksum_types: Vec<String> = d.or_default("checksum_types");
    let output: String = d.or_default("output");
    let _ = d.opt::<bool>("keep_input_artifact");
    for t in &checksum_types {
        if !TYPES.contains(&t.as_str()) {
            d.error(
                "checksum_types",
                format!("unrecognized checksum type: {t}"),
                Some(format!("use one of {}", TYPES.join(", "))),
            );
        }
    }
    d.finish()?;
    Ok(ChecksumConfig {
        checksum_types,
        output,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ChecksumPpError {
    #[error("`output`: {0}")]
    Template(#[from] placeholders::PlaceholderError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Digest(#[from] kiln_fs::FsError),
    #[error(transparent)]
    Output(#[from] kiln_image::output::OutputError),
}

fn digest(kind: &str, path: &Path) -> Result<String, ChecksumPpError> {
    use kiln_fs::digest_file;
    let digest = match kind {
        "md5" => digest_file::<md5::Md5>(path),
        "sha1" => digest_file::<sha1::Sha1>(path),
        "sha224" => digest_file::<sha2::Sha224>(path),
        "sha384" => digest_file::<sha2::Sha384>(path),
        "sha512" => digest_file::<sha2::Sha512>(path),
        _ => digest_file::<sha2::Sha256>(path),
    };
    Ok(digest?.hex)
}

/// Write the checksum files; the new artifact is the input's files plus
/// each checksum file that did not exist before.
pub fn run(
    cfg: &ChecksumConfig,
    input: &Artifact,
    cwd: &Path,
    build_name: &str,
    builder_type: &str,
) -> Result<Artifact, ChecksumPpError> {
    let mut files = input.files.clone();
    for kind in &cfg.checksum_types {
        let data = TemplateData::new()
            .with("BuildName", build_name)
            .with("BuilderType", builder_type)
            .with("ChecksumType", kind);
        let rel = PathBuf::from(placeholders::render(&cfg.output, &data)?);
        let out = cwd.join(&rel);
        let io = |source| ChecksumPpError::Io {
            path: out.clone(),
            source,
        };
        let inputs: Vec<PathBuf> = input.files.iter().map(|f| cwd.join(f)).collect();
        // Packer appends to the checksum file; it must still be a regular
        // file and not one of the files it describes.
        kiln_image::output::check_output(&out, &inputs, true)?;
        for file in input.files.iter().filter(|f| cwd.join(f).is_file()) {
            let hex = digest(kind, &cwd.join(file))?;
            if !out.exists() {
                files.push(rel.clone());
            }
            if let Some(dir) = out.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let mut w = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&out)
                .map_err(io)?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            writeln!(w, "{hex}\t{name}").map_err(io)?;
        }
    }
    Ok(Artifact::new("checksum", &input.id, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_packers_line_format() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("packer-x");
        std::fs::write(&disk, b"").unwrap();
        let cfg = ChecksumConfig {
            checksum_types: vec!["sha256".into(), "md5".into()],
            output: "out/{{.BuildName}}.{{.ChecksumType}}".into(),
        };
        let art = run(
            &cfg,
            &Artifact::new("qemu", "VM", vec![disk]),
            dir.path(),
            "x",
            "qemu",
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out/x.sha256")).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\tpacker-x\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out/x.md5")).unwrap(),
            "d41d8cd98f00b204e9800998ecf8427e\tpacker-x\n"
        );
        assert_eq!(art.files.len(), 3);
    }

    #[test]
    fn unknown_types_are_errors() {
        use kiln_template::body::Attribute;
        use kiln_template::span::Span;
        use kiln_template::value::Value;
        let mut b = Body::empty(Span::synthetic("b.pkr.hcl"));
        b.attrs.insert(
            "checksum_types".into(),
            Attribute {
                name: "checksum_types".into(),
                value: Value::List(vec![Value::String("crc32".into())]),
                span: Span::synthetic("b.pkr.hcl"),
                sensitive: false,
            },
        );
        let errors = decode(&b, "post-processor \"checksum\"").unwrap_err();
        assert!(errors[0].message.contains("crc32"));
    }
}
