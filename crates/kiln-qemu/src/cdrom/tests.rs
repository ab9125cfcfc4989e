use super::*;

fn tool(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

fn seed(dir: &Path) -> PathBuf {
    let src = dir.join("seed");
    std::fs::create_dir_all(src.join("scripts/deep")).unwrap();
    std::fs::write(src.join("vendor-data"), "#cloud-config\n").unwrap();
    std::fs::write(src.join("scripts/setup.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(
        src.join("scripts/deep/a-very-long-file-name-for-rock-ridge.txt"),
        vec![b'x'; 5000],
    )
    .unwrap();
    let content = BTreeMap::from([
        (
            "user-data".to_string(),
            "#cloud-config\nssh_pwauth: true\n".to_string(),
        ),
        ("meta-data".to_string(), "instance-id: kiln\n".to_string()),
    ]);
    let files = cd_files(
        &["seed/vendor-data".into(), "seed/scripts".into()],
        &content,
        dir,
    )
    .unwrap();
    let iso = dir.join("cidata.iso");
    write_iso(
        &iso,
        "cidata",
        &files,
        Some(UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)),
    )
    .unwrap();
    iso
}

#[test]
fn packer_layout_of_cd_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("d");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), "a").unwrap();
    std::fs::write(src.join("sub/b"), "b").unwrap();
    let keys = |patterns: &[&str]| -> Vec<String> {
        let p: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        cd_files(&p, &BTreeMap::new(), dir.path())
            .unwrap()
            .into_keys()
            .collect()
    };
    assert_eq!(keys(&["d"]), vec!["d/", "d/a", "d/sub/", "d/sub/b"]);
    assert_eq!(keys(&["d/"]), vec!["a", "sub/", "sub/b"]);
    assert_eq!(keys(&["d/*"]), vec!["a", "sub/", "sub/b"]);
    assert_eq!(keys(&["d/a"]), vec!["a"]);
    assert!(cd_files(&["missing".into()], &BTreeMap::new(), dir.path()).is_err());
}

#[test]
fn image_has_the_label_and_volume_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let iso = seed(dir.path());
    let bytes = std::fs::read(&iso).unwrap();
    assert_eq!(bytes.len() % 2048, 0);
    assert_eq!(&bytes[16 * 2048 + 1..16 * 2048 + 6], b"CD001");
    assert_eq!(&bytes[16 * 2048 + 40..16 * 2048 + 46], b"cidata");
    assert_eq!(bytes[17 * 2048], 2);
    assert_eq!(&bytes[17 * 2048 + 88..17 * 2048 + 91], b"%/E");
    assert_eq!(bytes[18 * 2048], 255);
    let total = u32::from_le_bytes(bytes[16 * 2048 + 80..16 * 2048 + 84].try_into().unwrap());
    assert_eq!(total as usize * 2048, bytes.len());
}

#[test]
fn blkid_sees_an_iso9660_labelled_cidata() {
    let dir = tempfile::tempdir().unwrap();
    let iso = seed(dir.path());
    let Some(out) = tool("blkid", &["-p", "-o", "export", iso.to_str().unwrap()]) else {
        eprintln!("skipped: blkid not available");
        return;
    };
    assert!(out.contains("TYPE=iso9660"), "{out}");
    assert!(out.contains("LABEL=cidata"), "{out}");
}

#[test]
fn isoinfo_reads_rock_ridge_and_joliet_trees() {
    let dir = tempfile::tempdir().unwrap();
    let iso = seed(dir.path());
    let path = iso.to_str().unwrap();
    let Some(rr) = tool("isoinfo", &["-R", "-l", "-i", path]) else {
        eprintln!("skipped: isoinfo (genisoimage) not installed");
        return;
    };
    for name in [
        "user-data",
        "meta-data",
        "vendor-data",
        "setup.sh",
        "a-very-long-file-name-for-rock-ridge.txt",
    ] {
        assert!(rr.contains(name), "Rock Ridge listing lacks {name}:\n{rr}");
    }
    let joliet = tool("isoinfo", &["-J", "-l", "-i", path]).unwrap();
    assert!(joliet.contains("user-data"), "{joliet}");
    let content = tool("isoinfo", &["-R", "-i", path, "-x", "/user-data"]).unwrap();
    assert_eq!(content, "#cloud-config\nssh_pwauth: true\n");
    let deep = tool(
        "isoinfo",
        &[
            "-R",
            "-i",
            path,
            "-x",
            "/scripts/deep/a-very-long-file-name-for-rock-ridge.txt",
        ],
    )
    .unwrap();
    assert_eq!(deep.len(), 5000);
    let dump = tool("isoinfo", &["-d", "-i", path]).unwrap();
    assert!(
        dump.contains("Rock Ridge signatures version 1 found"),
        "{dump}"
    );
    assert!(dump.contains("Joliet with UCS level 3 found"), "{dump}");
}

#[test]
fn names_are_unique_d_characters() {
    let mut taken = Vec::new();
    assert_eq!(iso_name("user-data", false, &mut taken), "USER_DATA.;1");
    assert_eq!(iso_name("user_data", false, &mut taken), "USER_DATA~1.;1");
    assert_eq!(iso_name("a.tar.gz", false, &mut taken), "A_TAR.GZ;1");
    assert_eq!(iso_name("scripts", true, &mut taken), "SCRIPTS");
}
