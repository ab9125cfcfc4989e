//! Leak-scan an image or tarball: `scan ARTIFACT [--json]`; exit 1 on findings.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Instant;

use kiln_image::scan::{ScanConfig, scan_path};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: scan ARTIFACT [--json]");
        std::process::exit(2);
    };
    let t = Instant::now();
    match scan_path(&PathBuf::from(path), &ScanConfig::default()) {
        Ok(r) => {
            if args.iter().any(|a| a == "--json") {
                println!("{}", serde_json::json!({ "findings": r.findings }));
            } else {
                for f in &r.findings {
                    println!("{:?} {} {}: {}", f.severity, f.rule, f.path, f.excerpt);
                }
                for n in &r.notes {
                    eprintln!("note: {n}");
                }
                eprintln!(
                    "{} files, {} bytes scanned in {:.2}s",
                    r.files,
                    r.bytes,
                    t.elapsed().as_secs_f64()
                );
            }
            std::process::exit(i32::from(!r.is_clean()));
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
