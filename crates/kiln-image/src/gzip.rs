//! Parallel gzip: the stream is cut into chunks that are compressed on all
//! cores as independent gzip members (RFC 1952 allows several members in a
//! row; GNU tar, gzip, Python and curtin read them). Output order is kept;
//! memory is bounded by `threads × 2` chunks in flight.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use libdeflater::{CompressionLvl, Compressor};

/// Default chunk size: large enough that the restarted dictionary costs
/// nothing measurable, small enough to keep memory low.
pub const DEFAULT_CHUNK: usize = 4 << 20;

type Job = (Vec<u8>, SyncSender<io::Result<Vec<u8>>>);

/// A `Write` that gzips in parallel into `W`.
pub struct ParallelGzWriter<W: Write> {
    sink: Option<W>,
    buf: Vec<u8>,
    chunk: usize,
    jobs: Option<SyncSender<Job>>,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    workers: Vec<JoinHandle<()>>,
    max_pending: usize,
    bytes_in: u64,
    bytes_out: u64,
    free: Vec<Vec<u8>>,
}

/// Compress one buffer as a complete gzip member.
pub fn gzip_member(level: i32, data: &[u8]) -> io::Result<Vec<u8>> {
    let lvl = CompressionLvl::new(level)
        .map_err(|_| io::Error::other(format!("gzip level {level} is not in 0..=12")))?;
    let mut c = Compressor::new(lvl);
    compress_with(&mut c, data)
}

fn compress_with(c: &mut Compressor, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; c.gzip_compress_bound(data.len())];
    let n = c
        .gzip_compress(data, &mut out)
        .map_err(|e| io::Error::other(format!("deflate failed: {e:?}")))?;
    out.truncate(n);
    Ok(out)
}

impl<W: Write> ParallelGzWriter<W> {
    /// Compress at `level` (libdeflate levels 1..=12; 9 matches or beats
    /// `gzip -9` in ratio) on `threads` workers (0 = all cores).
    pub fn new(sink: W, level: i32, threads: usize) -> io::Result<Self> {
        Self::with_chunk(sink, level, threads, DEFAULT_CHUNK)
    }

    /// As [`new`](Self::new) with a chunk size.
    pub fn with_chunk(sink: W, level: i32, threads: usize, chunk: usize) -> io::Result<Self> {
        let lvl = CompressionLvl::new(level)
            .map_err(|_| io::Error::other(format!("gzip level {level} is not in 0..=12")))?;
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        let (tx, rx) = sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = vec![];
        for i in 0..threads {
            let rx = rx.clone();
            let w = std::thread::Builder::new()
                .name(format!("kiln-gzip-{i}"))
                .spawn(move || {
                    let mut c = Compressor::new(lvl);
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        let Ok((data, reply)) = job else { return };
                        let _ = reply.send(compress_with(&mut c, &data));
                    }
                })?;
            workers.push(w);
        }
        Ok(Self {
            sink: Some(sink),
            buf: Vec::with_capacity(chunk),
            chunk: chunk.max(64 * 1024),
            jobs: Some(tx),
            pending: VecDeque::new(),
            workers,
            max_pending: threads * 2,
            bytes_in: 0,
            bytes_out: 0,
            free: vec![],
        })
    }

    /// Uncompressed bytes accepted so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Compressed bytes written to the sink so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let out = rx
                .recv()
                .map_err(|_| io::Error::other("gzip worker died"))??;
            self.bytes_out += out.len() as u64;
            match self.sink.as_mut() {
                Some(s) => s.write_all(&out)?,
                None => return Err(io::Error::other("gzip writer already finished")),
            }
        }
        Ok(())
    }

    fn submit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        while self.pending.len() >= self.max_pending {
            self.drain_one()?;
        }
        let next = self
            .free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.chunk));
        let data = std::mem::replace(&mut self.buf, next);
        let (tx, rx) = sync_channel(1);
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))?
            .send((data, tx))
            .map_err(|_| io::Error::other("gzip workers are gone"))?;
        self.pending.push_back(rx);
        Ok(())
    }

    /// Flush everything, stop the workers and return the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit()?;
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let mut sink = self
            .sink
            .take()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))?;
        sink.flush()?;
        Ok(sink)
    }
}

impl<W: Write> Write for ParallelGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.chunk - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.bytes_in += n as u64;
        if self.buf.len() >= self.chunk {
            self.submit()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParallelGzWriter<W> {
    fn drop(&mut self) {
        self.jobs = None;
        self.pending.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn multi_member_output_decompresses_in_order() {
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| (i % 1000).to_le_bytes())
            .collect();
        let mut w = ParallelGzWriter::with_chunk(Vec::new(), 6, 2, 100_000).unwrap();
        w.write_all(&data).unwrap();
        let gz = w.finish().unwrap();
        let mut out = vec![];
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn bad_level_is_an_error() {
        assert!(ParallelGzWriter::new(Vec::new(), 13, 1).is_err());
    }
}
