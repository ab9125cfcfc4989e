//! Write a MAAS root tarball from an image: `maas-tgz IMAGE OUT [LEVEL] [--no-scrub]`.
//! Used by `benches/maas-tgz.sh`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Instant;

use kiln_maas::tgz::{TgzOptions, write_tgz};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: maas-tgz IMAGE OUT [LEVEL] [--no-scrub] [--root N]");
        std::process::exit(2);
    }
    let mut opts = TgzOptions::default();
    let mut i = 3;
    while i < args.len() {
        match args[i].as_str() {
            "--no-scrub" => opts.scrub = None,
            "--root" => {
                i += 1;
                opts.root = kiln_image::RootSelector::Number(
                    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(0),
                );
            }
            "--threads" => {
                i += 1;
                opts.threads = args.get(i).and_then(|s| s.parse().ok()).unwrap_or(0);
            }
            l => opts.level = l.parse().unwrap_or(opts.level),
        }
        i += 1;
    }
    let t = Instant::now();
    match write_tgz(
        &PathBuf::from(&args[1]),
        &PathBuf::from(&args[2]),
        &opts,
        &mut |_| {},
    ) {
        Ok(r) => {
            println!(
                "{{\"seconds\": {:.3}, \"entries\": {}, \"tar_bytes\": {}, \"gz_bytes\": {}, \"root_partition\": {}, \"level\": {}, \"scrubbed\": {}}}",
                t.elapsed().as_secs_f64(),
                r.entries,
                r.tar_bytes,
                r.gz_bytes,
                r.root_partition,
                opts.level,
                serde_json::to_string(&r.scrubbed).unwrap_or_default()
            );
            for n in r.notes {
                eprintln!("note: {n}");
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            std::process::exit(1);
        }
    }
}
