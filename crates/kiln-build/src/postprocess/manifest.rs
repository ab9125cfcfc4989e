//! The `manifest` post-processor: Packer's JSON record of the build's
//! artifacts, appended to across builds of a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_template::body::Body;
use kiln_template::decode::{DecodeError, Decoder};
use kiln_template::schema::{Field, PluginKind, Schema};

use crate::artifact::Artifact;

/// `post-processor "manifest"`.
pub static SCHEMA: Schema = Schema {
    kind: PluginKind::PostProcessor,
    name: "manifest",
    summary: "Packer's JSON record of the build's artifacts, appended to across the builds of a run.",
    groups: &[FIELDS],
    example: &[("output", "manifest.json"), ("strip_path", "true")],
};

pub static FIELDS: &[Field] = &[
    Field::new("output", "string", "Where to write the manifest.").default("packer-manifest.json"),
    Field::new(
        "strip_path",
        "bool",
        "Record file names without their directories.",
    )
    .default("false"),
    Field::new("strip_time", "bool", "Record `build_time` as 0.").default("false"),
    Field::new(
        "custom_data",
        "map[string]string",
        "Strings copied into the record.",
    ),
    Field::new(
        "keep_input_artifact",
        "bool",
        "Accepted for Packer compatibility (the input is always kept).",
    ),
];

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ManifestConfig {
    pub output: String,
    pub strip_path: bool,
    pub strip_time: bool,
    pub custom_data: Option<BTreeMap<String, String>>,
}

pub fn decode(body: &Body, what: &str) -> Result<ManifestConfig, Vec<DecodeError>> {
    let mut d = Decoder::with_schema(body, what, &SCHEMA);
    let output = d.or_default("output");
    let strip_path = d.or_default("strip_path");
    let strip_time = d.or_default("strip_time");
    let custom_data = d.opt("custom_data");
    let _ = d.opt::<bool>("keep_input_artifact");
    d.finish()?;
    Ok(ManifestConfig {
        output,
        strip_path,
        strip_time,
        custom_data,
    })
}

/// One build's record (Packer's field names and order).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ManifestBuild {
    pub name: String,
    pub builder_type: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub build_time: i64,
    pub files: Vec<ManifestFile>,
    pub artifact_id: String,
    pub packer_run_uuid: String,
    pub custom_data: Option<BTreeMap<String, String>>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub size: u64,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub builds: Vec<ManifestBuild>,
    #[serde(default)]
    pub last_run_uuid: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("unable to read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unable to parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("unable to write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The record of one build (pure apart from reading file sizes).
pub fn record(
    cfg: &ManifestConfig,
    artifact: &Artifact,
    build_name: &str,
    builder_type: &str,
    run_uuid: &str,
    now: i64,
) -> ManifestBuild {
    let files = artifact
        .files
        .iter()
        .map(|f| ManifestFile {
            name: if cfg.strip_path {
                f.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                f.display().to_string()
            },
            size: std::fs::metadata(f).map(|m| m.len()).unwrap_or(0),
        })
        .collect();
    ManifestBuild {
        name: build_name.to_string(),
        builder_type: builder_type.to_string(),
        build_time: if cfg.strip_time { 0 } else { now },
        files,
        artifact_id: artifact.id.clone(),
        packer_run_uuid: run_uuid.to_string(),
        custom_data: cfg.custom_data.clone(),
    }
}

/// Append `build` to the manifest at `path` (relative to `cwd`). With
/// `-force`, a manifest from an earlier run is started afresh, as Packer
/// does. A lock file keeps parallel builds from losing each other's entry.
pub fn append(
    path: &Path,
    build: ManifestBuild,
    run_uuid: &str,
    force: bool,
) -> Result<(), ManifestError> {
    let lock = PathBuf::from(format!("{}.lock", path.display()));
    let _guard = LockFile::acquire(&lock);
    let mut manifest = match std::fs::read(path) {
        Ok(bytes) if !bytes.is_empty() => {
            serde_json::from_slice::<Manifest>(&bytes).map_err(|source| ManifestError::Parse {
                path: path.to_path_buf(),
                source,
            })?
        }
        Ok(_) => Manifest::default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
        Err(source) => {
            return Err(ManifestError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if force && manifest.last_run_uuid != run_uuid {
        manifest = Manifest::default();
    }
    manifest.builds.push(build);
    manifest.last_run_uuid = run_uuid.to_string();
    let json = serde_json::to_vec_pretty(&manifest).map_err(|source| ManifestError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ManifestError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    kiln_image::output::write_replacing(path, "manifest", &json).map_err(|e| ManifestError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })
}

/// An exclusive lock file, removed on drop; held for a few milliseconds.
struct LockFile(Option<PathBuf>);

impl LockFile {
    fn acquire(path: &Path) -> LockFile {
        for attempt in 0..50u64 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(_) => return LockFile(Some(path.to_path_buf())),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10 + attempt)),
            }
        }
        // A stale lock from a killed run: proceed rather than hang.
        LockFile(None)
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_builds_in_packers_layout() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("output-x/packer-x");
        std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
        std::fs::write(&disk, vec![0u8; 1234]).unwrap();
        let cfg = ManifestConfig {
            output: "manifest.json".into(),
            strip_path: true,
            strip_time: false,
            custom_data: None,
        };
        let artifact = Artifact::new("qemu", "VM", vec![disk]);
        let path = dir.path().join("manifest.json");
        let rec = record(&cfg, &artifact, "x", "qemu", "run-1", 1_700_000_000);
        append(&path, rec.clone(), "run-1", false).unwrap();
        append(&path, rec, "run-1", false).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["builds"].as_array().unwrap().len(), 2);
        assert_eq!(json["builds"][0]["files"][0]["name"], "packer-x");
        assert_eq!(json["builds"][0]["files"][0]["size"], 1234);
        assert_eq!(json["builds"][0]["artifact_id"], "VM");
        assert_eq!(json["builds"][0]["custom_data"], serde_json::Value::Null);
        assert_eq!(json["last_run_uuid"], "run-1");
        let keys: Vec<&str> = json["builds"][0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            vec![
                "name",
                "builder_type",
                "build_time",
                "files",
                "artifact_id",
                "packer_run_uuid",
                "custom_data"
            ]
        );
        // -force starts a manifest of an earlier run afresh.
        let rec = record(&cfg, &artifact, "x", "qemu", "run-2", 0);
        append(&path, rec, "run-2", true).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["builds"].as_array().unwrap().len(), 1);
        assert!(!dir.path().join("manifest.json.lock").exists());
    }
}
