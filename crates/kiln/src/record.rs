//! kiln's build record: beside Packer's `manifest.json`, what went in
//! (sources and their verified digests, every variable's value and where
//! it came from — sensitive ones redacted), how long each step took, what
//! came out (files with their sha256) and the leak-scan verdicts. One JSON
//! file per build under `.kiln/records/`.

use std::path::{Path, PathBuf};

use kiln_build::run::BuildOutcome;
use kiln_template::load::{Loaded, describe_origin};

/// The variables with their winning values and origins.
fn variables(loaded: &Loaded) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, v) in &loaded.variables {
        let value = if v.sensitive {
            serde_json::Value::String(kiln_secret::MASK.into())
        } else {
            v.value()
                .map(|x| x.to_json())
                .unwrap_or(serde_json::Value::Null)
        };
        out.insert(
            name.clone(),
            serde_json::json!({
                "value": value,
                "origin": v.origin().map(describe_origin),
            }),
        );
    }
    serde_json::Value::Object(out)
}

/// Write one record per build; returns the paths written.
pub fn write(
    outcomes: &[BuildOutcome],
    loaded: &Loaded,
    cwd: &Path,
    run_uuid: &str,
    redactor: &kiln_secret::Redactor,
) -> Vec<PathBuf> {
    let dir = cwd.join(".kiln").join("records");
    if std::fs::create_dir_all(&dir).is_err() {
        return Vec::new();
    }
    let vars = variables(loaded);
    let mut written = Vec::new();
    for o in outcomes {
        let artifacts: Vec<serde_json::Value> = o
            .artifacts
            .iter()
            .map(|a| {
                let files: Vec<serde_json::Value> = a
                    .files
                    .iter()
                    .map(|f| {
                        let path = cwd.join(f);
                        serde_json::json!({
                            "path": f,
                            "bytes": std::fs::metadata(&path).map(|m| m.len()).ok(),
                            "sha256": kiln_fs::sha256_file(&path).ok().map(|d| d.hex),
                        })
                    })
                    .collect();
                serde_json::json!({ "kind": a.kind, "id": a.id, "files": files })
            })
            .collect();
        let record = serde_json::json!({
            "kiln_version": env!("CARGO_PKG_VERSION"),
            "build": o.name,
            "run_uuid": run_uuid,
            "status": if o.error.is_some() { "failed" } else { "ok" },
            "error": o.error.as_ref().map(|e| redactor.redact(&e.to_string()).into_owned()),
            "millis": o.millis,
            "inputs": o.record.inputs,
            "variables": vars,
            "steps": o.timings,
            "artifacts": artifacts,
            "scans": o.record.scans,
        });
        let name: String = o
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&record).unwrap_or_default();
        match kiln_image::output::write_replacing(
            &path,
            "record",
            redactor.redact(&text).as_bytes(),
        ) {
            Ok(()) => written.push(path),
            Err(e) => crate::render::error_chain(&e, None),
        }
    }
    written
}
