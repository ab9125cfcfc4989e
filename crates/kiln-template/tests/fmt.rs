//! `fmt` matches `packer fmt`: each `tests/fmt/NAME.in.pkr.hcl` formats to
//! `NAME.out.pkr.hcl`, which Packer 1.6.6 produced; where `packer` is
//! installed the output is also compared with a live `packer fmt`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;
use std::process::Command;

use kiln_template::format::format_hcl;

#[test]
fn fmt_matches_packer_fmt() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fmt");
    let packer = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("packer"))
            .find(|p| p.is_file())
    });
    if packer.is_none() {
        eprintln!("live comparison skipped: `packer` is not on PATH (CI installs Packer 1.6.6)");
    }
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".in.pkr.hcl") else {
            continue;
        };
        n += 1;
        let input = std::fs::read_to_string(e.path()).unwrap();
        let want = std::fs::read_to_string(dir.join(format!("{stem}.out.pkr.hcl"))).unwrap();
        let got = format_hcl(&input, &name).unwrap();
        assert_eq!(got, want, "{name}");
        assert_eq!(
            format_hcl(&want, &name).unwrap(),
            want,
            "{stem}.out is a fixed point"
        );
        if let Some(packer) = &packer {
            let tmp = tempfile::tempdir().unwrap();
            let f = tmp.path().join("x.pkr.hcl");
            std::fs::write(&f, &input).unwrap();
            let ok = Command::new(packer)
                .args(["fmt", "x.pkr.hcl"])
                .current_dir(tmp.path())
                .env("CHECKPOINT_DISABLE", "1")
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "packer fmt failed on {name}");
            assert_eq!(
                got,
                std::fs::read_to_string(&f).unwrap(),
                "{name} differs from packer fmt"
            );
        }
    }
    assert!(n >= 4);
}
