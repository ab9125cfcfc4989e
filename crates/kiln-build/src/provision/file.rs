//! The `file` provisioner: upload files or directories to the guest (or
//! download from it) with Packer's trailing-slash rules, which kiln-ssh's
//! transfers implement.

use std::path::{Path, PathBuf};

use kiln_qemu::placeholders::{self, TemplateData};
use kiln_template::body::Body;
use kiln_template::decode::{DecodeError, Decoder};
use kiln_template::load::input::{InputError, InputKind, check_input, read_input};
use kiln_template::schema::{Field, PluginKind, Schema};

/// `provisioner "file"`.
pub static SCHEMA: Schema = Schema {
    kind: PluginKind::Provisioner,
    name: "file",
    summary: "Files or directories uploaded to the guest (or downloaded from it) with Packer's trailing-slash rules.",
    groups: &[FIELDS],
    example: &[("content", "hello"), ("destination", "/tmp/hello")],
};

pub static FIELDS: &[Field] = &[
    Field::new(
        "source",
        "string",
        "A local file or directory (upload) or a remote path (download). One of `source`, `sources` or `content` is required.",
    ),
    Field::new(
        "sources",
        "[]string",
        "Several sources; the destination should end with `/`.",
    ),
    Field::new(
        "content",
        "string",
        "Text to upload as the destination file.",
    ),
    Field::new("destination", "string", "Where to put it.").required(),
    Field::new("direction", "string", "`upload` or `download`.").default("upload"),
    Field::new(
        "generated",
        "bool",
        "The source is made during the build: skip the check that it exists.",
    )
    .default("false"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Upload,
    Download,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FileConfig {
    pub sources: Vec<String>,
    pub content: Option<String>,
    pub destination: String,
    pub direction: Direction,
    pub generated: bool,
}

pub fn decode(body: &Body, what: &str, cwd: &Path) -> Result<FileConfig, Vec<DecodeError>> {
    let mut d = Decoder::with_schema(body, what, &SCHEMA);
    let source: Option<String> = d.opt("source");
    let mut sources: Vec<String> = d.or("sources", Vec::new());
    let content: Option<String> = d.opt("content");
    let destination: Option<String> = d.required("destination");
    let direction_text: String = d.or_default("direction");
    let generated: bool = d.or_default("generated");
    let direction = match direction_text.as_str() {
        "upload" => Direction::Upload,
        "download" => Direction::Download,
        other => {
            d.error(
                "direction",
                format!("direction must be one of: download, upload (got {other:?})"),
                None,
            );
            Direction::Upload
        }
    };
    if let Some(s) = source {
        sources.push(s);
    }
    if !sources.is_empty() && content.is_some() {
        d.error("content", "source(s) conflicts with content", None);
    }
    if sources.is_empty() && content.is_none() {
        d.error(
            "source",
            "one of `source`, `sources` or `content` must be specified",
            None,
        );
    }
    if direction == Direction::Upload && !generated {
        for s in &sources {
            if placeholders::has_actions(s) {
                continue;
            }
            let field = if d.has("source") { "source" } else { "sources" };
            match check_input(&cwd.join(s), true) {
                Ok(_) => {}
                Err(InputError::NotFound { .. }) => d.error(
                    field,
                    format!("bad source `{s}`: no such file or directory"),
                    Some("set `generated = true` if an earlier step creates it".into()),
                ),
                Err(e) => d.error(field, format!("bad source `{s}`: {}", e.reason()), None),
            }
        }
    }
    d.finish()?;
    Ok(FileConfig {
        sources,
        content,
        destination: destination.unwrap_or_default(),
        direction,
        generated,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("`{field}`: {source}")]
    Template {
        field: &'static str,
        source: placeholders::PlaceholderError,
    },
    #[error("{direction} {from} => {to} failed: {error}")]
    Transfer {
        direction: &'static str,
        from: String,
        to: String,
        /// Boxed: a guest error is large and this one is rare.
        error: Box<crate::guest::GuestError>,
    },
    #[error("cannot read source {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: InputError,
    },
    #[error("cannot write {path}: {source}")]
    Local {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How a local source travels to the guest.
#[derive(Debug, PartialEq)]
enum Upload {
    /// By path: kiln-ssh streams files (trusting their size) and trees.
    Path,
    /// By content, read here: a device that reads empty (`/dev/null`) or a
    /// `/proc`/`/sys` file, whose size says nothing of its content.
    Content(Vec<u8>),
}

fn how_to_upload(local: &Path) -> Result<Upload, FileError> {
    let read = |source| FileError::Read {
        path: local.to_path_buf(),
        source,
    };
    match check_input(local, true).map_err(read)? {
        InputKind::Regular | InputKind::Directory => Ok(Upload::Path),
        InputKind::EmptyDevice | InputKind::Generated => read_input(local, CONTENT_LIMIT)
            .map(Upload::Content)
            .map_err(read),
    }
}

/// The most a source read by content may hold (as a `shell` script).
const CONTENT_LIMIT: u64 = super::shell::SCRIPT_LIMIT;

/// Where content goes: into `destination` when it names a directory
/// (trailing `/`), under the source's file name.
fn content_destination(destination: &str, local: &Path) -> String {
    if destination.ends_with('/') {
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        format!("{destination}{name}")
    } else {
        destination.to_string()
    }
}

pub async fn run(
    cfg: &FileConfig,
    cwd: &Path,
    data: &TemplateData,
    guest: &crate::guest::Guest,
    ev: &crate::events::BuildEvents,
) -> Result<(), FileError> {
    let render = |field: &'static str, s: &str| {
        placeholders::render(s, data).map_err(|source| FileError::Template { field, source })
    };
    let destination = render("destination", &cfg.destination)?;
    match cfg.direction {
        Direction::Upload => {
            // `content` travels as a temporary local file, as in Packer, so
            // the destination rules are the same.
            let content_file = match &cfg.content {
                Some(text) => {
                    let f = tempfile::NamedTempFile::new().map_err(|source| FileError::Local {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                    std::fs::write(f.path(), text).map_err(|source| FileError::Local {
                        path: f.path().to_path_buf(),
                        source,
                    })?;
                    Some(f)
                }
                None => None,
            };
            if let Some(f) = &content_file {
                ev.say(format!("Uploading content => {destination}"));
                let remote = if destination.ends_with('/') {
                    format!(
                        "{destination}{}",
                        f.path()
                            .file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default()
                    )
                } else {
                    destination.clone()
                };
                let data = std::fs::read(f.path()).map_err(|source| FileError::Local {
                    path: f.path().to_path_buf(),
                    source,
                })?;
                guest
                    .session()
                    .upload_bytes(&data, &remote, 0o644)
                    .await
                    .map_err(|e| FileError::Transfer {
                        direction: "upload",
                        from: "content".into(),
                        to: remote.clone(),
                        error: Box::new(e.into()),
                    })?;
            }
            for src in &cfg.sources {
                let src = render("source", src)?;
                ev.say(format!("Uploading {src} => {destination}"));
                let local = cwd.join(&src);
                // Keep a trailing slash: it means "the directory's contents".
                let local = if src.ends_with('/') && !local.to_string_lossy().ends_with('/') {
                    PathBuf::from(format!("{}/", local.display()))
                } else {
                    local
                };
                if let Upload::Content(data) = how_to_upload(&local)? {
                    let remote = content_destination(&destination, &local);
                    guest
                        .session()
                        .upload_bytes(&data, &remote, 0o644)
                        .await
                        .map_err(|e| FileError::Transfer {
                            direction: "upload",
                            from: src.clone(),
                            to: remote.clone(),
                            error: Box::new(e.into()),
                        })?;
                    continue;
                }
                guest
                    .upload(&local, &destination)
                    .await
                    .map_err(|error| FileError::Transfer {
                        direction: "upload",
                        from: src.clone(),
                        to: destination.clone(),
                        error: Box::new(error),
                    })?;
            }
        }
        Direction::Download => {
            for src in &cfg.sources {
                let src = render("source", src)?;
                ev.say(format!("Downloading {src} => {destination}"));
                let local = cwd.join(&destination);
                let local = if destination.ends_with('/') {
                    PathBuf::from(format!("{}/", local.display()))
                } else {
                    local
                };
                guest
                    .download(&src, &local)
                    .await
                    .map_err(|error| FileError::Transfer {
                        direction: "download",
                        from: src.clone(),
                        to: destination.clone(),
                        error: Box::new(error),
                    })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_template::body::Attribute;
    use kiln_template::span::Span;
    use kiln_template::value::Value;

    fn body(attrs: Vec<(&str, Value)>) -> Body {
        let mut b = Body::empty(Span::synthetic("b.pkr.hcl"));
        for (name, value) in attrs {
            b.attrs.insert(
                name.into(),
                Attribute {
                    name: name.into(),
                    value,
                    span: Span::synthetic("b.pkr.hcl"),
                    sensitive: false,
                },
            );
        }
        b
    }

    #[test]
    fn source_and_sources_merge_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        let ok = decode(
            &body(vec![
                ("source", Value::String("a".into())),
                ("destination", Value::String("/tmp/".into())),
            ]),
            "p",
            dir.path(),
        )
        .unwrap();
        assert_eq!(ok.sources, vec!["a"]);
        let errors = decode(
            &body(vec![
                ("source", Value::String("missing".into())),
                ("destination", Value::String("/tmp/".into())),
            ]),
            "p",
            dir.path(),
        )
        .unwrap_err();
        assert!(errors[0].message.contains("missing"));
        let generated = decode(
            &body(vec![
                ("source", Value::String("missing".into())),
                ("destination", Value::String("/tmp/".into())),
                ("generated", Value::Bool(true)),
            ]),
            "p",
            dir.path(),
        );
        assert!(generated.is_ok());
    }

    #[test]
    fn sources_accept_dev_null_and_directories_and_refuse_endless_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tree")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
        let ok = decode(
            &body(vec![
                (
                    "sources",
                    Value::List(vec![
                        Value::String("/dev/null".into()),
                        Value::String("tree/".into()),
                    ]),
                ),
                ("destination", Value::String("/tmp/".into())),
            ]),
            "p",
            dir.path(),
        );
        assert!(ok.is_ok(), "{ok:?}");
        let errors = decode(
            &body(vec![
                ("source", Value::String("zero".into())),
                ("destination", Value::String("/tmp/".into())),
            ]),
            "p",
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .message
                .contains("bad source `zero`: it is a character device that does not end"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn devices_and_sysfs_files_upload_by_content_regular_files_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(how_to_upload(&file).unwrap(), Upload::Path);
        assert_eq!(how_to_upload(dir.path()).unwrap(), Upload::Path);
        assert_eq!(
            how_to_upload(Path::new("/dev/null")).unwrap(),
            Upload::Content(Vec::new())
        );
        // sysfs says 4096 bytes: streaming by size would fail mid-way.
        assert_eq!(
            how_to_upload(Path::new("/sys/class/net/lo/address")).unwrap(),
            Upload::Content(b"00:00:00:00:00:00\n".to_vec())
        );
        assert_eq!(
            content_destination("/etc/", Path::new("/dev/null")),
            "/etc/null"
        );
        assert_eq!(
            content_destination("/etc/empty", Path::new("/dev/null")),
            "/etc/empty"
        );
    }

    #[test]
    fn destination_is_required_and_content_conflicts_with_source() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        let errors = decode(
            &body(vec![
                ("source", Value::String("a".into())),
                ("content", Value::String("x".into())),
                ("direction", Value::String("sideways".into())),
            ]),
            "p",
            dir.path(),
        )
        .unwrap_err();
        let all: String = errors.iter().map(|e| e.message.clone() + "\n").collect();
        assert!(all.contains("destination"), "{all}");
        assert!(all.contains("conflicts"), "{all}");
        assert!(all.contains("sideways"), "{all}");
    }
}
