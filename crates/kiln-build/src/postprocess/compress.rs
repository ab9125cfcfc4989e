//! The `compress` post-processor: the artifact's files as one compressed
//! file (or a tarball of several), format from the output's extension as
//! Packer detects it: `.gz` (parallel gzip members, as Packer's pgzip),
//! `.tar`, `.tar.gz`, `.xz`, `.tar.xz`, plus kiln's `.zst`/`.tar.zst`. A
//! bare name means `.tar.gz`. `zip`, `lz4` and `bgzf` are refused with a
//! clear error rather than written wrongly.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kiln_image::gzip::ParallelGzWriter;
use kiln_image::output::Staged;
use kiln_image::tar::{EntryHeader, EntryKind, TarWriter};
use kiln_qemu::placeholders::{self, TemplateData};
use kiln_template::body::Body;
use kiln_template::decode::{DecodeError, Decoder};
use kiln_template::schema::{Field, PluginKind, Schema};

use crate::artifact::Artifact;

/// `post-processor "compress"`.
pub static SCHEMA: Schema = Schema {
    kind: PluginKind::PostProcessor,
    name: "compress",
    summary: "The artifact's files as one compressed file, or a tarball of several; the format comes from the output's extension as Packer detects it (`.gz`, `.tar`, `.tar.gz`, `.xz`, `.tar.xz`, and kiln's `.zst`/`.tar.zst`; a bare name means `.tar.gz`). `zip`, `lz4` and `bgzf` are refused.",
    groups: &[FIELDS],
    example: &[("output", "{{.BuildName}}.qcow2.zst")],
};

pub static FIELDS: &[Field] = &[
    Field::new(
        "output",
        "string",
        "The compressed file; `{{.BuildName}}` and `{{.BuilderType}}` are rendered.",
    )
    .default("packer_{{.BuildName}}_{{.BuilderType}}"),
    Field::new(
        "format",
        "string",
        "Extension to use instead of the output's (e.g. `tar.gz`).",
    ),
    Field::new(
        "compression_level",
        "int",
        "-1 to 9; 0 or -1 mean the default, above 9 means 9.",
    )
    .default("6"),
    Field::new(
        "keep_input_artifact",
        "bool",
        "Keep the uncompressed input (Packer deletes it by default).",
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    None,
    Gzip,
    Xz,
    Zstd,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CompressConfig {
    pub output: String,
    pub tar: bool,
    pub algorithm: Algorithm,
    pub level: i32,
    pub keep_input_artifact: Option<bool>,
}

/// An archive format Packer's compress post-processor knows and kiln does not.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{ext}` archives are not supported by kiln; use .gz, .tar.gz, .xz or .zst")]
pub struct UnsupportedArchive {
    pub ext: String,
}

/// Packer's detection: the last two extensions of `output` (or of
/// `output.format`) choose archive and algorithm.
pub fn detect(output: &str, format: Option<&str>) -> Result<(bool, Algorithm), UnsupportedArchive> {
    let name = match format {
        Some(f) => format!("{output}.{f}"),
        None => output.to_string(),
    };
    let base = name.rsplit('/').next().unwrap_or(&name);
    let exts: Vec<&str> = base
        .split('.')
        .skip(1)
        .filter(|e| {
            !e.is_empty()
                && e.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        .collect();
    let Some(last) = exts.last() else {
        return Ok((true, Algorithm::Gzip));
    };
    let tar_before = exts.len() >= 2 && exts[exts.len() - 2] == "tar";
    match *last {
        "tar" => Ok((true, Algorithm::None)),
        "gz" | "tgz" => Ok((tar_before || *last == "tgz", Algorithm::Gzip)),
        "xz" => Ok((tar_before, Algorithm::Xz)),
        "zst" => Ok((tar_before, Algorithm::Zstd)),
        "zip" | "lz4" | "bgzf" => Err(UnsupportedArchive {
            ext: last.to_string(),
        }),
        _ => Ok((true, Algorithm::Gzip)),
    }
}

pub fn decode(body: &Body, what: &str) -> Result<CompressConfig, Vec<DecodeError>> {
    let mut d = Decoder::with_schema(body, what, &SCHEMA);
    let output: String = d.or_default("output");
    let format: Option<String> = d.opt("format");
    let level: i64 = d.or_default("compression_level");
    let keep_input_artifact = d.opt("keep_input_artifact");
    let (tar, algorithm) = match detect(&output, format.as_deref()) {
        Ok(v) => v,
        Err(unsupported) => {
            d.error(
                if format.is_some() { "format" } else { "output" },
                unsupported.to_string(),
                None,
            );
            (false, Algorithm::None)
        }
    };
    let level = match level {
        -1 | 0 => 6,
        l if l > 9 => 9,
        l if l < -1 => {
            d.error(
                "compression_level",
                "expected an integer from -1 to 9",
                None,
            );
            6
        }
        l => l as i32,
    };
    d.finish()?;
    Ok(CompressConfig {
        output,
        tar,
        algorithm,
        level,
        keep_input_artifact,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("`output`: {0}")]
    Template(#[from] placeholders::PlaceholderError),
    #[error("can only compress one file without tar; the artifact has {0}")]
    TooManyFiles(usize),
    #[error(transparent)]
    Output(#[from] kiln_image::output::OutputError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Write the archive to a temporary name beside the output and rename it
/// into place when complete (see [`kiln_image::output`]).
pub fn run(
    cfg: &CompressConfig,
    input: &Artifact,
    cwd: &Path,
    build_name: &str,
    builder_type: &str,
    progress: &dyn Fn(u64, u64),
) -> Result<Artifact, CompressError> {
    let data = TemplateData::new()
        .with("BuildName", build_name)
        .with("BuilderType", builder_type);
    let rel = PathBuf::from(placeholders::render(&cfg.output, &data)?);
    let target = cwd.join(&rel);
    let files: Vec<PathBuf> = input
        .files
        .iter()
        .map(|f| cwd.join(f))
        .filter(|f| f.is_file())
        .collect();
    if !cfg.tar && files.len() != 1 {
        return Err(CompressError::TooManyFiles(files.len()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CompressError::Io { path, source }
    };
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    // Never the input itself, never through a device or symlink; the
    // archive is published only when complete.
    let staged = Staged::create(&target, "compress", &files, true)?;
    let partial = staged.path().to_path_buf();
    let out = std::io::BufWriter::new(staged.file()?);
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let sink = encoder(out, cfg.algorithm, cfg.level).map_err(io(&target))?;
    let mut counted = Counting {
        inner: sink,
        done: 0,
        total,
        progress,
    };
    if cfg.tar {
        let mut tar = TarWriter::new(&mut counted);
        for f in &files {
            let meta = std::fs::metadata(f).map_err(io(f))?;
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut h = EntryHeader::new(name.as_bytes(), EntryKind::File);
            h.size = meta.len();
            h.mode = 0o644;
            tar.start_entry(&h).map_err(io(&partial))?;
            copy_into(f, |b| tar.write_data(b)).map_err(io(f))?;
        }
        tar.finish().map_err(io(&partial))?;
    } else {
        copy_into(&files[0], |b| counted.write_all(b)).map_err(io(&files[0]))?;
    }
    counted.inner.finish().map_err(io(&target))?;
    staged.publish()?;
    Ok(Artifact::new(
        "compress",
        &target.display().to_string(),
        vec![target],
    ))
}

fn copy_into(
    path: &Path,
    mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        write(&buf[..n])?;
    }
}

/// The compressing writer for an algorithm.
enum Encoder<W: Write> {
    Plain(W),
    Gzip(ParallelGzWriter<W>),
    Xz(liblzma::write::XzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
}

fn encoder<W: Write + Send + 'static>(
    w: W,
    algorithm: Algorithm,
    level: i32,
) -> std::io::Result<Encoder<W>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Ok(match algorithm {
        Algorithm::None => Encoder::Plain(w),
        Algorithm::Gzip => Encoder::Gzip(ParallelGzWriter::new(w, level, threads)?),
        Algorithm::Xz => Encoder::Xz(liblzma::write::XzEncoder::new(w, level.clamp(0, 9) as u32)),
        Algorithm::Zstd => Encoder::Zstd(zstd::Encoder::new(w, level.clamp(1, 19))?),
    })
}

impl<W: Write> Encoder<W> {
    fn finish(self) -> std::io::Result<()> {
        match self {
            Encoder::Plain(mut w) => w.flush(),
            Encoder::Gzip(g) => g.finish()?.flush(),
            Encoder::Xz(x) => x.finish()?.flush(),
            Encoder::Zstd(z) => z.finish()?.flush(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Xz(x) => x.write(buf),
            Encoder::Zstd(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(g) => g.flush(),
            Encoder::Xz(x) => x.flush(),
            Encoder::Zstd(z) => z.flush(),
        }
    }
}

struct Counting<'p, W: Write> {
    inner: Encoder<W>,
    done: u64,
    total: u64,
    progress: &'p dyn Fn(u64, u64),
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let before = self.done >> 26;
        self.done += n as u64;
        if self.done >> 26 != before {
            (self.progress)(self.done, self.total);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_like_packer() {
        assert_eq!(detect("packer_x_qemu", None), Ok((true, Algorithm::Gzip)));
        assert_eq!(detect("out.tar.gz", None), Ok((true, Algorithm::Gzip)));
        assert_eq!(detect("out.gz", None), Ok((false, Algorithm::Gzip)));
        assert_eq!(detect("out.tar", None), Ok((true, Algorithm::None)));
        assert_eq!(detect("out.xz", None), Ok((false, Algorithm::Xz)));
        assert_eq!(detect("out", Some("tar.zst")), Ok((true, Algorithm::Zstd)));
        assert!(detect("out.zip", None).is_err());
        assert_eq!(
            detect("dir.v2/image.qcow2", None),
            Ok((true, Algorithm::Gzip))
        );
    }

    fn roundtrip(output: &str, decompress: &[&str]) {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("packer-x");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 7) as u8).collect();
        std::fs::write(&disk, &data).unwrap();
        let (tar, algorithm) = detect(output, None).unwrap();
        let cfg = CompressConfig {
            output: output.into(),
            tar,
            algorithm,
            level: 6,
            keep_input_artifact: None,
        };
        let art = run(
            &cfg,
            &Artifact::new("qemu", "VM", vec![disk]),
            dir.path(),
            "x",
            "qemu",
            &|_, _| {},
        )
        .unwrap();
        let out = std::process::Command::new(decompress[0])
            .args(&decompress[1..])
            .arg(&art.files[0])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if tar {
            assert!(String::from_utf8_lossy(&out.stdout).contains("packer-x"));
        } else {
            assert_eq!(out.stdout, data);
        }
    }

    #[test]
    fn gzip_output_decompresses_with_gzip() {
        roundtrip("x.gz", &["gzip", "-dc"]);
    }

    #[test]
    fn xz_output_decompresses_with_xz() {
        roundtrip("x.xz", &["xz", "-dc"]);
    }

    #[test]
    fn tarballs_list_their_files() {
        roundtrip("x.tar.gz", &["tar", "-tzf"]);
    }
}
