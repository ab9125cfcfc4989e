//! `maas-dd`: the whole virtual disk as `dd.gz` (parallel gzip), `ddxz`
//! (multi-threaded xz) or `ddraw` (a sparse raw file), read through
//! kiln-image's qcow2 reader. Each decompresses byte-identical to
//! `qemu-img convert -O raw`.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use kiln_image::gzip::ParallelGzWriter;
use kiln_image::image::open_device;
use kiln_image::output::Staged;
use kiln_image::qcow2::backing_chain;

use crate::error::ArtifactError;
use crate::tgz::Progress;

/// Output format of [`write_dd`] (MAAS `filetype` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DdFormat {
    /// gzip'd raw disk (`ddgz`).
    Ddgz,
    /// xz'd raw disk (`ddxz`).
    Ddxz,
    /// Raw disk (`ddraw`), written sparse.
    Ddraw,
}

impl DdFormat {
    /// The MAAS filetype name.
    pub fn filetype(self) -> &'static str {
        match self {
            DdFormat::Ddgz => "ddgz",
            DdFormat::Ddxz => "ddxz",
            DdFormat::Ddraw => "ddraw",
        }
    }

    /// Parse a MAAS filetype name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ddgz" | "dd.gz" => Some(DdFormat::Ddgz),
            "ddxz" | "dd.xz" => Some(DdFormat::Ddxz),
            "ddraw" | "raw" => Some(DdFormat::Ddraw),
            _ => None,
        }
    }
}

/// Options of [`write_dd`].
#[derive(Debug, Clone, Copy)]
pub struct DdOptions {
    /// Format.
    pub format: DdFormat,
    /// Compression level (gzip 1..=12, xz 0..=9).
    pub level: i32,
    /// Threads (0 = all cores).
    pub threads: usize,
}

impl Default for DdOptions {
    fn default() -> Self {
        Self {
            format: DdFormat::Ddgz,
            level: 6,
            threads: 0,
        }
    }
}

/// What [`write_dd`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DdReport {
    /// Virtual disk size.
    pub disk_bytes: u64,
    /// Output size.
    pub out_bytes: u64,
    /// Notes (fallbacks).
    pub notes: Vec<String>,
}

const CHUNK: usize = 4 << 20;
const HOLE: usize = 64 << 10;

fn is_zero(b: &[u8]) -> bool {
    let (head, body, tail) = {
        // Compare in u64 words; `align_to` is sound for u8 → u64 reads.
        // SAFETY: u64 has no invalid bit patterns; align_to only reinterprets the aligned middle.
        unsafe { b.align_to::<u64>() }
    };
    head.iter().all(|&x| x == 0) && body.iter().all(|&x| x == 0) && tail.iter().all(|&x| x == 0)
}

/// Write the whole disk of `image` to `output` in `opts.format`, replacing
/// an existing regular file (see [`kiln_image::output`]; the CLI and the
/// build use [`write_dd_to`] to scan before publishing).
pub fn write_dd(
    image: &Path,
    output: &Path,
    opts: &DdOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<DdReport, ArtifactError> {
    let staged = Staged::create(output, "dd", &backing_chain(image), true)?;
    let report = write_dd_to(image, &staged, opts, progress)?;
    staged.publish()?;
    Ok(report)
}

/// The compression levels each format takes.
pub fn level_range(format: DdFormat) -> std::ops::RangeInclusive<i32> {
    match format {
        DdFormat::Ddgz => 1..=12,
        DdFormat::Ddxz => 0..=9,
        DdFormat::Ddraw => 0..=12,
    }
}

/// Write the whole disk of `image` into `staged` (not yet published).
pub fn write_dd_to(
    image: &Path,
    staged: &Staged,
    opts: &DdOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<DdReport, ArtifactError> {
    let range = level_range(opts.format);
    if !range.contains(&opts.level) {
        return Err(ArtifactError::Invalid(format!(
            "{} level {} is out of range {}..={}",
            opts.format.filetype(),
            opts.level,
            range.start(),
            range.end()
        )));
    }
    let dev = open_device(image)?;
    let werr = |source: io::Error| ArtifactError::Write {
        path: staged.dest().to_owned(),
        source,
    };
    let file: File = staged.file()?;
    let size = dev.device.size();
    let mut buf = vec![0u8; CHUNK];
    let mut p = Progress::default();
    let mut pos = 0u64;
    let next = |buf: &mut Vec<u8>, pos: &mut u64| -> Result<Option<usize>, ArtifactError> {
        if *pos >= size {
            return Ok(None);
        }
        let n = (size - *pos).min(CHUNK as u64) as usize;
        dev.device.read_direct(&mut buf[..n], *pos)?;
        *pos += n as u64;
        Ok(Some(n))
    };
    match opts.format {
        DdFormat::Ddraw => {
            let mut f = file;
            let mut off = 0u64;
            while let Some(n) = next(&mut buf, &mut pos)? {
                for piece in buf[..n].chunks(HOLE) {
                    if !is_zero(piece) {
                        f.seek(SeekFrom::Start(off)).map_err(werr)?;
                        f.write_all(piece).map_err(werr)?;
                    }
                    off += piece.len() as u64;
                }
                p.bytes_read = pos;
                p.bytes_written = pos;
                progress(&p);
            }
            f.set_len(size).map_err(werr)?;
            f.sync_all().map_err(werr)?;
        }
        DdFormat::Ddgz => {
            let mut gz = ParallelGzWriter::new(
                BufWriter::with_capacity(1 << 20, file),
                opts.level,
                opts.threads,
            )
            .map_err(werr)?;
            while let Some(n) = next(&mut buf, &mut pos)? {
                gz.write_all(&buf[..n]).map_err(werr)?;
                p.bytes_read = pos;
                p.bytes_written = gz.bytes_out();
                progress(&p);
            }
            gz.finish().map_err(werr)?.flush().map_err(werr)?;
        }
        DdFormat::Ddxz => {
            let threads = if opts.threads == 0 {
                std::thread::available_parallelism().map_or(2, |n| n.get())
            } else {
                opts.threads
            };
            let stream = liblzma::stream::MtStreamBuilder::new()
                .threads(threads as u32)
                .preset(opts.level.clamp(0, 9) as u32)
                .check(liblzma::stream::Check::Crc64)
                .encoder()
                .map_err(|e| werr(io::Error::other(e)))?;
            let mut xz = liblzma::write::XzEncoder::new_stream(
                BufWriter::with_capacity(1 << 20, file),
                stream,
            );
            while let Some(n) = next(&mut buf, &mut pos)? {
                xz.write_all(&buf[..n]).map_err(werr)?;
                p.bytes_read = pos;
                progress(&p);
            }
            xz.finish().map_err(werr)?.flush().map_err(werr)?;
        }
    }
    let out_bytes = std::fs::metadata(staged.path()).map_err(werr)?.len();
    Ok(DdReport {
        disk_bytes: size,
        out_bytes,
        notes: dev.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection() {
        let mut v = vec![0u8; 100_003];
        assert!(is_zero(&v));
        v[100_002] = 1;
        assert!(!is_zero(&v));
        v[100_002] = 0;
        v[1] = 1;
        assert!(!is_zero(&v[1..]));
    }
}
