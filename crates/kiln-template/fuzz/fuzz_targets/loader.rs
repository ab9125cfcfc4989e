//! The loader on arbitrary input: no input panics.
//!
//! The input is split at NUL bytes into a native template, a JSON
//! template, an auto var file and `-var` assignments (one per line).

#![no_main]

use kiln_template::load::{LoadOptions, load_from_memory};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let hcl = parts.next().unwrap_or_default().to_string();
    let json = parts.next().map(str::to_string);
    let vars = parts.next().map(str::to_string);
    let cli = parts.next().unwrap_or_default();
    let mut templates = vec![("a.pkr.hcl".to_string(), hcl)];
    if let Some(j) = json {
        templates.push(("b.pkr.json".to_string(), j));
    }
    let var_files: Vec<(String, String)> = vars
        .map(|v| ("v.auto.pkrvars.hcl".to_string(), v))
        .into_iter()
        .collect();
    let mut opts = LoadOptions::default();
    for line in cli.lines() {
        if let Some((k, v)) = line.split_once('=') {
            opts.vars.push((k.to_string(), v.to_string()));
        }
    }
    if let Ok(loaded) = load_from_memory(&templates, &var_files, &opts) {
        let _ = kiln_template::inspect::to_json(&loaded);
    }
});
