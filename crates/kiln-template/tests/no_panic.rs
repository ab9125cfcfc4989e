//! A stable-toolchain companion to the cargo-fuzz targets in `fuzz/`:
//! mutated copies of every conformance template go through the loader and
//! the formatter; none may panic, and formatting must be a fixed point.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use kiln_template::format::format_hcl;
use kiln_template::load::{LoadOptions, load_from_memory};

/// xorshift64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "\"",
    "${",
    "%{",
    "~}",
    "<<EOF\n",
    "\nEOF\n",
    "=",
    ".",
    "*",
    "...",
    "?",
    ":",
    "var.",
    "local.",
    "for x in ",
    " : ",
    "=>",
    "if",
    "null",
    "-1",
    "1e309",
    "\\",
    "\n",
    "#",
    "/*",
    "//",
    "é",
    "source.name",
    "build.name",
    "try(",
    "can(",
    "convert(",
    "list(string)",
    "dynamic \"x\" {",
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut s: Vec<char> = seed.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(4) {
            0 if !s.is_empty() => {
                let end = (at + rng.below(8)).min(s.len());
                s.drain(at.min(end)..end);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                s.splice(at..at, t.chars());
            }
            2 if !s.is_empty() => {
                let from = rng.below(s.len());
                let end = (from + rng.below(16)).min(s.len());
                let piece: Vec<char> = s[from..end].to_vec();
                s.splice(at..at, piece);
            }
            _ => s.truncate(at),
        }
    }
    s.into_iter().collect()
}

#[test]
fn mutated_templates_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut seeds = Vec::new();
    for dir in ["conformance", "fixtures"] {
        for case in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if !case.path().is_dir() {
                continue;
            }
            for f in std::fs::read_dir(case.path()).unwrap().flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                if name.ends_with(".hcl") || name.ends_with(".json") {
                    seeds.push((name, std::fs::read_to_string(f.path()).unwrap()));
                }
            }
        }
    }
    assert!(seeds.len() > 30);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let opts = LoadOptions::default();
    for i in 0..2500 {
        let (name, seed) = &seeds[i % seeds.len()];
        let text = mutate(&mut rng, seed);
        let name = if name.ends_with(".json") {
            "t.pkr.json"
        } else {
            "t.pkr.hcl"
        };
        let (other, other_text) = &seeds[rng.below(seeds.len())];
        let templates = vec![
            (name.to_string(), text.clone()),
            (format!("z-{other}"), other_text.clone()),
        ];
        let templates: Vec<_> = templates
            .into_iter()
            .filter(|(n, _)| n.ends_with(".pkr.hcl") || n.ends_with(".pkr.json"))
            .collect();
        let vars = vec![(
            "v.auto.pkrvars.hcl".to_string(),
            mutate(&mut rng, "x = \"a\"\nn = [1, 2]\n"),
        )];
        let _ = load_from_memory(&templates, &vars, &opts);
        if name.ends_with(".hcl")
            && let Ok(once) = format_hcl(&text, "t")
        {
            let twice = format_hcl(&once, "t").unwrap_or_else(|e| {
                panic!("formatted output does not parse: {e}\n--- input\n{text}\n--- once\n{once}")
            });
            assert_eq!(once, twice, "fmt is not idempotent on:\n{text}");
        }
    }
}
