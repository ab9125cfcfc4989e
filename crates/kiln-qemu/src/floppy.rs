//! The floppy of `floppy_files`/`floppy_dirs`/`floppy_content`: a 1.44 MB
//! FAT12 image written in-process, as Packer's `StepCreateFloppy` lays it
//! out: `floppy_files` flat in the root (a directory's files too),
//! `floppy_dirs` with their structure, `floppy_content` winning over both.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::cdrom::{MediaError, MediaFiles, Source, expand};

const FLOPPY_BYTES: u64 = 1440 * 1024;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MediaError + '_ {
    move |source| MediaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), MediaError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if std::fs::metadata(&p).map_err(io(&p))?.is_dir() {
            files_under(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// The floppy's files (Packer's layout).
pub fn floppy_files(
    files: &[String],
    dirs: &[String],
    content: &BTreeMap<String, String>,
    base: &Path,
) -> Result<MediaFiles, MediaError> {
    let mut out = MediaFiles::new();
    for path in expand(files, base)? {
        let mut found = Vec::new();
        if std::fs::metadata(&path).map_err(io(&path))?.is_dir() {
            files_under(&path, &mut found)?;
        } else {
            found.push(path);
        }
        for f in found {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .ok_or_else(|| MediaError::Invalid(format!("{}: no file name", f.display())))?;
            out.insert(name, Source::File(f));
        }
    }
    for dir in expand(dirs, base)? {
        let dir_text = dir.to_string_lossy().trim_end_matches('/').to_string();
        let dir = Path::new(&dir_text);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut found = Vec::new();
        files_under(dir, &mut found)?;
        for f in found {
            let rel = f
                .strip_prefix(dir)
                .unwrap_or(&f)
                .to_string_lossy()
                .to_string();
            out.insert(format!("{name}/{rel}"), Source::File(f));
        }
    }
    for (path, text) in content {
        out.insert(
            path.trim_start_matches('/').to_string(),
            Source::Bytes(text.clone().into_bytes()),
        );
    }
    Ok(out)
}

/// Write a 1.44 MB FAT12 floppy image with `label` (at most 11 characters;
/// Packer's default is `packer`).
pub fn write_floppy(out: &Path, label: &str, files: &MediaFiles) -> Result<(), MediaError> {
    if label.len() > 11 || !label.is_ascii() {
        return Err(MediaError::Invalid(format!(
            "floppy label {label:?} must be at most 11 ASCII characters"
        )));
    }
    let mut image = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)
        .map_err(io(out))?;
    image.set_len(FLOPPY_BYTES).map_err(io(out))?;
    let mut volume_label = [b' '; 11];
    for (i, b) in label.bytes().enumerate() {
        volume_label[i] = b.to_ascii_uppercase();
    }
    let options = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat12)
        .volume_label(volume_label)
        .bytes_per_sector(512)
        .total_sectors((FLOPPY_BYTES / 512) as u32);
    fatfs::format_volume(&mut image, options).map_err(io(out))?;
    image.seek(SeekFrom::Start(0)).map_err(io(out))?;
    let fs = fatfs::FileSystem::new(&mut image, fatfs::FsOptions::new()).map_err(io(out))?;
    let root = fs.root_dir();
    for (path, source) in files {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let Some((name, dirs)) = parts.split_last() else {
            continue;
        };
        let mut dir = root.clone();
        for d in dirs {
            dir = match dir.open_dir(d) {
                Ok(existing) => existing,
                Err(_) => dir.create_dir(d).map_err(io(out))?,
            };
        }
        let mut file = dir.create_file(name).map_err(io(out))?;
        file.truncate().map_err(io(out))?;
        match source {
            Source::Bytes(b) => file.write_all(b).map_err(|e| full(out, path, e))?,
            Source::File(p) => {
                let mut input = std::fs::File::open(p).map_err(io(p))?;
                let mut buf = Vec::new();
                input.read_to_end(&mut buf).map_err(io(p))?;
                file.write_all(&buf).map_err(|e| full(out, path, e))?;
            }
        }
        file.flush().map_err(io(out))?;
    }
    drop(root);
    fs.unmount().map_err(io(out))?;
    Ok(())
}

fn full(out: &Path, path: &str, e: std::io::Error) -> MediaError {
    MediaError::Invalid(format!(
        "{}: cannot write {path}: {e} (a floppy holds 1.44 MB; use http_directory or cd_files for more)",
        out.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floppy_holds_files_flat_and_dirs_with_structure() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("drivers/net")).unwrap();
        std::fs::write(src.join("Autounattend.xml"), "<x/>").unwrap();
        std::fs::write(src.join("drivers/net/a.inf"), "inf").unwrap();
        let content = BTreeMap::from([("meta-data".to_string(), "id: 1".to_string())]);
        let files = floppy_files(
            &["src/Autounattend.xml".into(), "src/drivers".into()],
            &["src/drivers".into()],
            &content,
            dir.path(),
        )
        .unwrap();
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            vec![
                "Autounattend.xml",
                "a.inf",
                "drivers/net/a.inf",
                "meta-data"
            ]
        );
        let img = dir.path().join("floppy.img");
        write_floppy(&img, "cidata", &files).unwrap();
        assert_eq!(std::fs::metadata(&img).unwrap().len(), 1440 * 1024);
        let mut f = std::fs::File::open(&img).unwrap();
        let fs = fatfs::FileSystem::new(&mut f, fatfs::FsOptions::new()).unwrap();
        assert_eq!(fs.fat_type(), fatfs::FatType::Fat12);
        assert_eq!(fs.volume_label().trim(), "CIDATA");
        let mut text = String::new();
        fs.root_dir()
            .open_file("drivers/net/a.inf")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "inf");
    }

    #[test]
    fn too_much_for_a_floppy_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let files = MediaFiles::from([("big.bin".to_string(), Source::Bytes(vec![1u8; 2 << 20]))]);
        let e = write_floppy(&dir.path().join("f.img"), "packer", &files).unwrap_err();
        assert!(e.to_string().contains("1.44 MB"), "{e}");
    }
}
