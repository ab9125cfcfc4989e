//! The `inspect --json` document — a contract other tools rely on:
//!
//! ```text
//! {"variables": {NAME: {"value", "type", "sensitive",
//!                       "origin": {"kind", "file", "line"},
//!                       "history": [{"kind", "file", "line", "value"}, …]}},
//!  "locals": {NAME: {"value", "file", "line"}},
//!  "builds": [{"name", "sources": […], "provisioners": […], "post_processors": […]}]}
//! ```
//!
//! Values are JSON of their HCL type; a sensitive value is `"<sensitive>"`
//! everywhere; files are relative to the template directory.

use std::time::Duration;

use serde_json::{Map, Value as Json, json};

use crate::body::Body;
use crate::load::{Assignment, Build, Loaded, PostProcessor, Provisioner};
use crate::value::Value;

/// What a sensitive value is shown as.
pub const SENSITIVE: &str = "<sensitive>";

/// A value as JSON, or `"<sensitive>"`.
pub fn value_json(v: &Value, sensitive: bool) -> Json {
    if sensitive {
        Json::String(SENSITIVE.into())
    } else {
        v.to_json()
    }
}

/// A duration the way Go prints it (`1m30s`, `300ms`, `0s`).
pub fn go_duration(d: Duration) -> String {
    let total = d.as_secs_f64();
    if d.is_zero() {
        return "0s".into();
    }
    if total < 1.0 {
        let ms = d.as_secs_f64() * 1000.0;
        return if ms.fract() == 0.0 {
            format!("{ms:.0}ms")
        } else {
            format!("{ms}ms")
        };
    }
    let h = d.as_secs() / 3600;
    let m = (d.as_secs() % 3600) / 60;
    let s = total - (h * 3600 + m * 60) as f64;
    let s = if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s}s")
    };
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

fn origin_json(a: &Assignment) -> Json {
    json!({"kind": a.kind.as_str(), "file": a.file.as_deref(), "line": a.line})
}

/// An evaluated body: attributes by name, nested blocks in HCL's JSON
/// shape (`kind: [body…]`, labels as nested keys).
pub fn body_json(b: &Body) -> Json {
    let mut m = Map::new();
    for (k, a) in &b.attrs {
        m.insert(k.clone(), value_json(&a.value, a.sensitive));
    }
    for blk in &b.blocks {
        let mut slot = m.entry(blk.kind.clone()).or_insert_with(|| {
            if blk.labels.is_empty() {
                Json::Array(Vec::new())
            } else {
                Json::Object(Map::new())
            }
        });
        for (i, l) in blk.labels.iter().enumerate() {
            let last = i + 1 == blk.labels.len();
            let Json::Object(obj) = slot else { break };
            slot = obj.entry(l.clone()).or_insert_with(|| {
                if last {
                    Json::Array(Vec::new())
                } else {
                    Json::Object(Map::new())
                }
            });
        }
        if let Json::Array(items) = slot {
            items.push(body_json(&blk.body));
        }
    }
    Json::Object(m)
}

fn provisioner_json(p: &Provisioner) -> Json {
    json!({
        "type": p.kind,
        "name": p.name,
        "only": p.only,
        "except": p.except,
        "pause_before": p.pause_before.map(go_duration),
        "max_retries": p.max_retries,
        "timeout": p.timeout.map(go_duration),
        "continue_on_error": p.continue_on_error,
        "override": p.override_.as_ref().map(Value::to_json),
        "config": body_json(&p.body),
    })
}

fn post_processor_json(p: &PostProcessor) -> Json {
    json!({
        "type": p.kind,
        "name": p.name,
        "only": p.only,
        "except": p.except,
        "keep_input_artifact": p.keep_input_artifact,
        "config": body_json(&p.body),
    })
}

fn build_json(b: &Build) -> Json {
    json!({
        "name": b.name,
        "build_name": b.build_name,
        "description": b.description,
        "sources": [{
            "type": b.source.kind,
            "name": b.source.name,
            "source_name": b.source.source_name,
            "config": body_json(&b.source.body),
        }],
        "provisioners": b.provisioners.iter().map(provisioner_json).collect::<Vec<_>>(),
        "error_cleanup_provisioner": b.error_cleanup_provisioner.as_ref().map(provisioner_json),
        "post_processors": b.post_processors.iter()
            .map(|chain| chain.iter().map(post_processor_json).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
    })
}

/// The whole document, variables and locals sorted by name.
pub fn to_json(l: &Loaded) -> Json {
    let mut vars: Vec<_> = l.variables.values().collect();
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    let mut variables = Map::new();
    for v in vars {
        let value = v.value().map_or(Json::Null, |x| value_json(x, v.sensitive));
        let origin = v.origin().map_or(Json::Null, origin_json);
        let history: Vec<Json> = v
            .history
            .iter()
            .map(|a| {
                let mut o = origin_json(a);
                if let Json::Object(m) = &mut o {
                    m.insert("value".into(), value_json(&a.value, v.sensitive));
                }
                o
            })
            .collect();
        variables.insert(
            v.name.clone(),
            json!({
                "value": value,
                "type": v.type_string(),
                "sensitive": v.sensitive,
                "origin": origin,
                "history": history,
            }),
        );
    }
    let mut locals_sorted: Vec<_> = l.locals.values().collect();
    locals_sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut locals = Map::new();
    for loc in locals_sorted {
        locals.insert(
            loc.name.clone(),
            json!({
                "value": loc.value.as_ref().map_or(Json::Null, |v| value_json(v, loc.sensitive)),
                "file": &*loc.span.file,
                "line": loc.span.line,
            }),
        );
    }
    json!({
        "variables": variables,
        "locals": locals,
        "builds": l.builds.iter().map(build_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }
}
