//! File transfer over the SCP protocol (`scp -t` / `scp -f` run on the
//! guest through an exec channel), with Packer's `file` provisioner path
//! rules. Modes and modification times are preserved (`-p`).
//!
//! Upload rules (Packer's `file` provisioner):
//! - a file to `dest/` (trailing slash) lands in `dest/<name>`; to `dest`
//!   without a slash it lands at `dest`, or in `dest/<name>` when `dest` is an
//!   existing directory (scp's own rule, which Packer checks with `test -d`);
//! - a directory `src` (no trailing slash) lands in `dest/src/…`; `src/`
//!   (trailing slash) puts its contents in `dest/…`.
//!
//! kiln creates the destination directory (`mkdir -p`) for a directory
//! upload and for a file sent to `dest/`, where Packer says the result is
//! undefined unless it exists.
//!
//! Download rules (Packer 1.6.6's provisioner and SSH communicator):
//! - a remote path ending in `/` or holding glob characters is a directory
//!   download: every entry scp sends lands in the local destination, so
//!   `/var/log/app/` to `out/` gives `out/app/…` and `/var/log/app/*` gives
//!   `out/…`;
//! - otherwise it is a file: to `out/` it lands in `out/<name>`, to `out`
//!   at `out`. Missing local parent directories are created.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh::ChannelMsg;
use russh::client::Msg;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::session::{ExecError, ExitStatus, Session, short_command, sig_name};
use crate::shell::{quote_glob, quote_path};
use crate::wait::Target;

/// Errors of a transfer.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A local file or directory could not be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Local {
        /// What kiln tried (`read`, `create`, …).
        action: &'static str,
        /// The local path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A local path cannot be sent (a name with a newline, a symlink loop).
    #[error("cannot send `{path}`: {reason}")]
    Unsendable {
        /// The local path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The guest's scp reported an error.
    #[error("scp on `{target}` failed for `{path}`: {message}")]
    Remote {
        /// Where.
        target: Target,
        /// The remote path.
        path: String,
        /// What scp (or the shell) said.
        message: String,
    },
    /// The guest's side did not follow the protocol.
    #[error("scp protocol error with `{target}` for `{path}`: {detail}")]
    Protocol {
        /// Where.
        target: Target,
        /// The remote path.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// The command could not start or the connection was lost.
    #[error(transparent)]
    Exec(#[from] ExecError),
}

impl TransferError {
    /// The connection was lost during the transfer.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, TransferError::Exec(e) if e.is_disconnect())
    }
}

/// A summary of a finished transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Regular files sent or received.
    pub files: u64,
    /// Directories sent or received.
    pub dirs: u64,
    /// File content bytes.
    pub bytes: u64,
}

/// How far a transfer is, reported after each chunk of file content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Content bytes moved so far.
    pub bytes: u64,
    /// All content bytes, when known before the transfer (uploads, and
    /// downloads of a single file once its size arrives).
    pub total: Option<u64>,
}

/// What an upload will run. Pure: see [`plan_upload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPlan {
    /// Remote directory created first (`mkdir -p`), if any.
    pub mkdir: Option<String>,
    /// The path given to `scp -t`.
    pub target: String,
    /// A directory transfer (`scp -r`).
    pub recursive: bool,
    /// Send the source directory itself under this name (no trailing slash
    /// on the source); `None` sends its entries (or the single file).
    pub wrap_dir: Option<String>,
}

impl UploadPlan {
    /// The remote command line.
    pub fn command(&self) -> String {
        let mut cmd = String::new();
        if let Some(dir) = &self.mkdir {
            cmd.push_str(&format!("mkdir -p -- {} && ", quote_path(dir)));
        }
        cmd.push_str(if self.recursive {
            "scp -prt -- "
        } else {
            "scp -pt -- "
        });
        cmd.push_str(&quote_path(&self.target));
        cmd
    }
}

fn has_trailing_slash(s: &str) -> bool {
    s.len() > 1 && s.ends_with('/')
}

fn base_name(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

/// Applies Packer's upload rules to a local path (as the user wrote it,
/// trailing slash included) and a remote destination.
pub fn plan_upload(local: &str, local_is_dir: bool, remote: &str) -> UploadPlan {
    if local_is_dir {
        let wrap_dir = if has_trailing_slash(local) {
            None
        } else {
            Some(base_name(local).to_owned())
        };
        UploadPlan {
            mkdir: Some(remote.to_owned()),
            target: remote.to_owned(),
            recursive: true,
            wrap_dir,
        }
    } else {
        UploadPlan {
            mkdir: has_trailing_slash(remote).then(|| remote.to_owned()),
            target: remote.to_owned(),
            recursive: false,
            wrap_dir: None,
        }
    }
}

/// What a download will run and where it writes. Pure: see
/// [`plan_download`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadPlan {
    /// The remote source, shell-quoted with its glob characters active.
    pub source_word: String,
    /// A directory download (`scp -r`): entries land in `local`.
    pub recursive: bool,
    /// The local file (single file) or directory (recursive).
    pub local: PathBuf,
    /// Local directory created first.
    pub mkdir: PathBuf,
}

impl DownloadPlan {
    /// The remote command line.
    pub fn command(&self) -> String {
        format!(
            "scp -p{}f -- {}",
            if self.recursive { "r" } else { "" },
            self.source_word
        )
    }
}

/// Applies Packer's download rules.
pub fn plan_download(remote: &str, local: &Path) -> DownloadPlan {
    let dir_like = has_trailing_slash(remote) || remote.contains(['*', '?', '[']);
    let local_slash = local.as_os_str().as_bytes().ends_with(b"/") && local.as_os_str().len() > 1;
    let source_word = quote_glob(remote);
    if local_slash {
        DownloadPlan {
            source_word,
            recursive: dir_like,
            local: if dir_like {
                local.to_owned()
            } else {
                local.join(base_name(remote))
            },
            mkdir: local.to_owned(),
        }
    } else {
        let parent = local
            .parent()
            .map(Path::to_owned)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        DownloadPlan {
            source_word,
            recursive: dir_like,
            local: local.to_owned(),
            mkdir: if dir_like { local.to_owned() } else { parent },
        }
    }
}

/// One entry of a local tree, in the order scp sends it.
#[derive(Debug)]
enum Record {
    Dir {
        name: String,
        mode: u32,
        times: (u64, u64),
    },
    File {
        path: PathBuf,
        name: String,
        mode: u32,
        size: u64,
        times: (u64, u64),
    },
    End,
}

fn epoch_secs(t: std::io::Result<SystemTime>) -> u64 {
    t.ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn times_of(meta: &std::fs::Metadata) -> (u64, u64) {
    (epoch_secs(meta.modified()), epoch_secs(meta.accessed()))
}

fn entry_name(path: &Path) -> Result<String, TransferError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| TransferError::Unsendable {
            path: path.to_owned(),
            reason: "it has no file name".to_owned(),
        })?;
    if name.contains('\n') {
        return Err(TransferError::Unsendable {
            path: path.to_owned(),
            reason: "its name contains a newline, which scp cannot carry".to_owned(),
        });
    }
    Ok(name)
}

/// Lists a local directory's tree (symlinks followed, as scp does), sorted
/// by name.
fn walk(dir: &Path, depth: usize, out: &mut Vec<Record>) -> Result<(), TransferError> {
    if depth > 64 {
        return Err(TransferError::Unsendable {
            path: dir.to_owned(),
            reason: "directories nest more than 64 deep (a symlink loop?)".to_owned(),
        });
    }
    let local = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| TransferError::Local {
            action,
            path,
            source,
        }
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(local("read directory", dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(local("read directory", dir))?;
    entries.sort();
    for path in entries {
        let meta = std::fs::metadata(&path).map_err(local("stat", &path))?;
        let name = entry_name(&path)?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            out.push(Record::Dir {
                name,
                mode,
                times: times_of(&meta),
            });
            walk(&path, depth + 1, out)?;
            out.push(Record::End);
        } else if meta.is_file() {
            out.push(Record::File {
                path,
                name,
                mode,
                size: meta.len(),
                times: times_of(&meta),
            });
        }
        // Sockets, fifos and devices are skipped, as scp does.
    }
    Ok(())
}

/// Where the bytes of a `C` record come from.
enum Content<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

const CHUNK: usize = 256 * 1024;

/// The client end of one scp exec channel.
struct ScpIo<'s> {
    session: &'s Session,
    on_progress: Box<dyn FnMut(Progress) + Send + 's>,
    done: u64,
    total: Option<u64>,
    command: String,
    remote_path: String,
    channel: russh::Channel<Msg>,
    buf: Vec<u8>,
    pos: usize,
    stderr: Vec<u8>,
    status: Option<ExitStatus>,
    closed: bool,
}

impl<'s> ScpIo<'s> {
    async fn start(
        session: &'s Session,
        command: String,
        remote_path: &str,
        on_progress: impl FnMut(Progress) + Send + 's,
    ) -> Result<ScpIo<'s>, TransferError> {
        let channel = session.start(&command).await?;
        Ok(ScpIo {
            session,
            on_progress: Box::new(on_progress),
            done: 0,
            total: None,
            command,
            remote_path: remote_path.to_owned(),
            channel,
            buf: Vec::new(),
            pos: 0,
            stderr: Vec::new(),
            status: None,
            closed: false,
        })
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        (self.on_progress)(Progress {
            bytes: self.done,
            total: self.total,
        });
    }

    fn target(&self) -> Target {
        self.session.target().clone()
    }

    /// Takes one message from the channel. False when it has closed.
    async fn pump(&mut self) -> bool {
        if self.closed {
            return false;
        }
        match self.channel.wait().await {
            Some(ChannelMsg::Data { data }) => {
                if self.pos >= self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                }
                self.buf.extend_from_slice(&data);
            }
            Some(ChannelMsg::ExtendedData { data, .. }) => {
                if self.stderr.len() < 64 * 1024 {
                    self.stderr.extend_from_slice(&data);
                }
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                self.status = Some(ExitStatus::Code(exit_status));
            }
            Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                self.status = Some(ExitStatus::Signal {
                    signal: sig_name(&signal_name),
                    core_dumped: false,
                    message: String::new(),
                });
            }
            Some(ChannelMsg::Close) | None => self.closed = true,
            Some(_) => {}
        }
        !self.closed
    }

    /// The error for a channel that ended before the protocol did.
    fn ended_early(&self) -> TransferError {
        if self.status.is_none() && self.session.is_closed() {
            return TransferError::Exec(self.session.lost(&self.command));
        }
        let stderr = String::from_utf8_lossy(&self.stderr).trim().to_owned();
        let message = match (&self.status, stderr.is_empty()) {
            (_, false) => stderr,
            (Some(s), true) => format!("`{}` ended with {s}", short_command(&self.command)),
            (None, true) => format!("`{}` ended without a status", short_command(&self.command)),
        };
        TransferError::Remote {
            target: self.target(),
            path: self.remote_path.clone(),
            message,
        }
    }

    fn protocol(&self, detail: String) -> TransferError {
        TransferError::Protocol {
            target: self.target(),
            path: self.remote_path.clone(),
            detail,
        }
    }

    async fn fill(&mut self) -> Result<(), TransferError> {
        while self.pos >= self.buf.len() {
            if !self.pump().await {
                return Err(self.ended_early());
            }
        }
        Ok(())
    }

    /// The next byte, or `None` at a clean end of the stream.
    async fn next_byte(&mut self) -> Option<u8> {
        while self.pos >= self.buf.len() {
            if !self.pump().await {
                return None;
            }
        }
        let b = self.buf.get(self.pos).copied();
        self.pos += 1;
        b
    }

    async fn read_line(&mut self) -> Result<String, TransferError> {
        let mut line = Vec::new();
        loop {
            self.fill().await?;
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            if let Some(i) = rest.iter().position(|b| *b == b'\n') {
                line.extend_from_slice(rest.get(..i).unwrap_or_default());
                self.pos += i + 1;
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            line.extend_from_slice(rest);
            self.pos = self.buf.len();
            if line.len() > 64 * 1024 {
                return Err(self.protocol("a protocol line longer than 64 KiB".to_owned()));
            }
        }
    }

    /// Reads the peer's response: `\0`, or `\1`/`\2` and a message.
    async fn read_ack(&mut self) -> Result<(), TransferError> {
        match self.next_byte().await {
            Some(0) => Ok(()),
            Some(1 | 2) => {
                let message = self.read_line().await?;
                Err(TransferError::Remote {
                    target: self.target(),
                    path: self.remote_path.clone(),
                    message: message.trim().to_owned(),
                })
            }
            Some(other) => {
                let rest = self.read_line().await.unwrap_or_default();
                Err(self.protocol(format!(
                    "expected an acknowledgement, got `{}{}`",
                    (other as char).escape_default(),
                    rest.escape_default()
                )))
            }
            None => Err(self.ended_early()),
        }
    }

    async fn send(&mut self, data: Vec<u8>) -> Result<(), TransferError> {
        if self.channel.data_bytes(data).await.is_err() {
            // The channel is gone; find out why.
            while self.pump().await {}
            return Err(self.ended_early());
        }
        Ok(())
    }

    async fn send_record(&mut self, line: String) -> Result<(), TransferError> {
        self.send(line.into_bytes()).await?;
        self.read_ack().await
    }

    async fn send_times(&mut self, (mtime, atime): (u64, u64)) -> Result<(), TransferError> {
        self.send_record(format!("T{mtime} 0 {atime} 0\n")).await
    }

    async fn send_file(
        &mut self,
        name: &str,
        mode: u32,
        size: u64,
        times: Option<(u64, u64)>,
        content: Content<'_>,
    ) -> Result<(), TransferError> {
        if let Some(t) = times {
            self.send_times(t).await?;
        }
        self.send_record(format!("C{mode:04o} {size} {name}\n"))
            .await?;
        match content {
            Content::Bytes(b) => {
                for chunk in b.chunks(CHUNK) {
                    self.send(chunk.to_vec()).await?;
                    self.advance(chunk.len() as u64);
                }
            }
            Content::File(path) => {
                let local = |source| TransferError::Local {
                    action: "read",
                    path: path.to_owned(),
                    source,
                };
                let mut f = tokio::fs::File::open(path).await.map_err(local)?;
                let mut left = size;
                while left > 0 {
                    let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
                    let mut chunk = vec![0u8; want];
                    let n = f.read(&mut chunk).await.map_err(local)?;
                    if n == 0 {
                        return Err(TransferError::Unsendable {
                            path: path.to_owned(),
                            reason: format!("it shrank while being sent ({left} bytes missing)"),
                        });
                    }
                    chunk.truncate(n);
                    left -= n as u64;
                    self.send(chunk).await?;
                    self.advance(n as u64);
                }
            }
        }
        self.send(vec![0]).await?;
        self.read_ack().await
    }

    /// Ends the stream and waits for the remote scp's exit status.
    async fn finish(mut self) -> Result<(), TransferError> {
        let _ = self.channel.eof().await;
        while self.pump().await {}
        match &self.status {
            Some(s) if s.success() => Ok(()),
            _ => Err(self.ended_early()),
        }
    }

    async fn write_ack(&mut self) -> Result<(), TransferError> {
        self.send(vec![0]).await
    }
}

/// A parsed `C`/`D` record: mode, size, name.
fn parse_record(line: &str) -> Option<(u32, u64, String)> {
    let rest = line.get(1..)?;
    let mut parts = rest.splitn(3, ' ');
    let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
    let size = parts.next()?.parse().ok()?;
    let name = parts.next()?.to_owned();
    Some((mode & 0o7777, size, name))
}

fn parse_times(line: &str) -> Option<(u64, u64)> {
    let mut parts = line.get(1..)?.split(' ');
    let mtime = parts.next()?.parse().ok()?;
    let _ = parts.next()?;
    let atime = parts.next()?.parse().ok()?;
    Some((mtime, atime))
}

fn set_times(path: &Path, (mtime, atime): (u64, u64)) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    let times = std::fs::FileTimes::new()
        .set_modified(UNIX_EPOCH + Duration::from_secs(mtime))
        .set_accessed(UNIX_EPOCH + Duration::from_secs(atime));
    f.set_times(times)
}

fn valid_remote_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

impl Session {
    /// Uploads a local file or directory with Packer's rules (see the
    /// module docs). `local` keeps its trailing slash, if any.
    pub async fn upload(&self, local: &Path, remote: &str) -> Result<TransferStats, TransferError> {
        self.upload_with_progress(local, remote, |_| {}).await
    }

    /// [`Session::upload`], reporting [`Progress`] after each chunk.
    pub async fn upload_with_progress(
        &self,
        local: &Path,
        remote: &str,
        on_progress: impl FnMut(Progress) + Send,
    ) -> Result<TransferStats, TransferError> {
        let meta = std::fs::metadata(local).map_err(|source| TransferError::Local {
            action: "stat",
            path: local.to_owned(),
            source,
        })?;
        let local_str = local.to_string_lossy();
        let plan = plan_upload(&local_str, meta.is_dir(), remote);
        let mut records = Vec::new();
        if meta.is_dir() {
            let name_wrap = plan.wrap_dir.is_some();
            if name_wrap {
                records.push(Record::Dir {
                    name: entry_name(&local_path_without_slash(local))?,
                    mode: meta.permissions().mode() & 0o7777,
                    times: times_of(&meta),
                });
            }
            walk(local, 0, &mut records)?;
            if name_wrap {
                records.push(Record::End);
            }
        } else {
            records.push(Record::File {
                path: local.to_owned(),
                name: entry_name(local)?,
                mode: meta.permissions().mode() & 0o7777,
                size: meta.len(),
                times: times_of(&meta),
            });
        }
        let total = records
            .iter()
            .map(|r| match r {
                Record::File { size, .. } => *size,
                _ => 0,
            })
            .sum();
        let mut io = ScpIo::start(self, plan.command(), remote, on_progress).await?;
        io.total = Some(total);
        io.read_ack().await?;
        let mut stats = TransferStats::default();
        for record in &records {
            match record {
                Record::Dir { name, mode, times } => {
                    io.send_times(*times).await?;
                    io.send_record(format!("D{mode:04o} 0 {name}\n")).await?;
                    stats.dirs += 1;
                }
                Record::End => io.send_record("E\n".to_owned()).await?,
                Record::File {
                    path,
                    name,
                    mode,
                    size,
                    times,
                } => {
                    io.send_file(name, *mode, *size, Some(*times), Content::File(path))
                        .await?;
                    stats.files += 1;
                    stats.bytes += size;
                }
            }
        }
        io.finish().await?;
        Ok(stats)
    }

    /// Writes `data` to the remote file `remote` with `mode` (exactly, not
    /// masked by the umask), e.g. an inline script. If `remote` is an
    /// existing directory the file lands inside it under `remote`'s last
    /// name component.
    pub async fn upload_bytes(
        &self,
        data: &[u8],
        remote: &str,
        mode: u32,
    ) -> Result<(), TransferError> {
        let name = base_name(remote);
        if !valid_remote_name(name) || has_trailing_slash(remote) || name.contains('\n') {
            return Err(TransferError::Unsendable {
                path: PathBuf::from(remote),
                reason: "the destination must name a file".to_owned(),
            });
        }
        let plan = plan_upload(name, false, remote);
        let mut io = ScpIo::start(self, plan.command(), remote, |_| {}).await?;
        io.read_ack().await?;
        io.send_file(
            name,
            mode & 0o7777,
            data.len() as u64,
            None,
            Content::Bytes(data),
        )
        .await?;
        io.finish().await
    }

    /// Downloads a remote file or directory with Packer's rules (see the
    /// module docs). `local` keeps its trailing slash, if any.
    pub async fn download(
        &self,
        remote: &str,
        local: &Path,
    ) -> Result<TransferStats, TransferError> {
        self.download_with_progress(remote, local, |_| {}).await
    }

    /// [`Session::download`], reporting [`Progress`] after each chunk.
    pub async fn download_with_progress(
        &self,
        remote: &str,
        local: &Path,
        on_progress: impl FnMut(Progress) + Send,
    ) -> Result<TransferStats, TransferError> {
        let plan = plan_download(remote, local);
        std::fs::create_dir_all(&plan.mkdir).map_err(|source| TransferError::Local {
            action: "create directory",
            path: plan.mkdir.clone(),
            source,
        })?;
        let mut io = ScpIo::start(self, plan.command(), remote, on_progress).await?;
        let mut stats = TransferStats::default();
        let result = sink(&mut io, &plan, &mut stats).await;
        match result {
            Ok(()) => {
                io.finish().await?;
                Ok(stats)
            }
            Err(e) => {
                let _ = io.channel.close().await;
                Err(e)
            }
        }
    }
}

fn local_path_without_slash(p: &Path) -> PathBuf {
    let s = p.as_os_str().as_bytes();
    let trimmed = s.strip_suffix(b"/").unwrap_or(s);
    PathBuf::from(std::ffi::OsStr::from_bytes(trimmed))
}

/// A directory being received: its path, and the mode and times to apply
/// once its contents are complete (`None` for the destination itself).
type OpenDir = (PathBuf, Option<(u32, Option<(u64, u64)>)>);

/// Receives what `scp -f` sends (the sink side of the protocol).
async fn sink(
    io: &mut ScpIo<'_>,
    plan: &DownloadPlan,
    stats: &mut TransferStats,
) -> Result<(), TransferError> {
    let mut stack: Vec<OpenDir> = vec![(plan.local.clone(), None)];
    let mut times: Option<(u64, u64)> = None;
    let mut errors: Vec<String> = Vec::new();
    io.write_ack().await?;
    loop {
        let Some(kind) = io.next_byte().await else {
            break;
        };
        match kind {
            1 | 2 => {
                let msg = io.read_line().await?;
                errors.push(msg.trim().to_owned());
                if kind == 2 {
                    break;
                }
            }
            b'T' => {
                let line = io.read_line().await?;
                times = parse_times(&format!("T{line}"));
                if times.is_none() {
                    return Err(io.protocol(format!("bad time record `T{line}`")));
                }
                io.write_ack().await?;
            }
            b'D' | b'C' | b'E' => {
                let line = format!("{}{}", kind as char, io.read_line().await?);
                if kind == b'E' {
                    if stack.len() <= 1 {
                        return Err(io.protocol("unbalanced `E` record".to_owned()));
                    }
                    let Some((dir, attrs)) = stack.pop() else {
                        return Err(io.protocol("unbalanced `E` record".to_owned()));
                    };
                    if let Some((mode, t)) = attrs {
                        apply_attrs(&dir, mode, t)?;
                    }
                    io.write_ack().await?;
                    continue;
                }
                let Some((mode, size, name)) = parse_record(&line) else {
                    return Err(io.protocol(format!("bad record `{}`", line.escape_default())));
                };
                if !valid_remote_name(&name) {
                    return Err(io.protocol(format!("refusing unsafe name `{name}`")));
                }
                let t = times.take();
                let parent = stack
                    .last()
                    .map(|(p, _)| p.clone())
                    .unwrap_or_else(|| plan.local.clone());
                if kind == b'D' {
                    if !plan.recursive {
                        return Err(TransferError::Remote {
                            target: io.target(),
                            path: io.remote_path.clone(),
                            message:
                                "it is a directory: end the source with `/` to download a directory"
                                    .to_owned(),
                        });
                    }
                    let dir = parent.join(&name);
                    match std::fs::create_dir(&dir) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {
                        }
                        Err(source) => {
                            return Err(TransferError::Local {
                                action: "create directory",
                                path: dir,
                                source,
                            });
                        }
                    }
                    stats.dirs += 1;
                    stack.push((dir, Some((mode, t))));
                    io.write_ack().await?;
                } else {
                    let path = if plan.recursive {
                        parent.join(&name)
                    } else {
                        plan.local.clone()
                    };
                    if !plan.recursive {
                        io.total = Some(size);
                    }
                    io.write_ack().await?;
                    receive_file(io, &path, size).await?;
                    io.read_ack().await?;
                    apply_attrs(&path, mode, t)?;
                    stats.files += 1;
                    stats.bytes += size;
                    io.write_ack().await?;
                }
            }
            other => {
                let rest = io.read_line().await.unwrap_or_default();
                return Err(io.protocol(format!(
                    "unexpected record `{}{}`",
                    (other as char).escape_default(),
                    rest.escape_default()
                )));
            }
        }
    }
    if !errors.is_empty() {
        if !plan.recursive && errors.iter().any(|e| e.contains("not a regular file")) {
            errors.push(
                "if it is a directory, end the source with `/` to download a directory".to_owned(),
            );
        }
        return Err(TransferError::Remote {
            target: io.target(),
            path: io.remote_path.clone(),
            message: errors.join("; "),
        });
    }
    if stack.len() != 1 {
        return Err(io.ended_early());
    }
    Ok(())
}

fn apply_attrs(path: &Path, mode: u32, times: Option<(u64, u64)>) -> Result<(), TransferError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        TransferError::Local {
            action: "set the mode of",
            path: path.to_owned(),
            source,
        }
    })?;
    if let Some(t) = times {
        set_times(path, t).map_err(|source| TransferError::Local {
            action: "set the times of",
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(())
}

async fn receive_file(io: &mut ScpIo<'_>, path: &Path, size: u64) -> Result<(), TransferError> {
    let local = |action: &'static str| {
        let path = path.to_owned();
        move |source| TransferError::Local {
            action,
            path,
            source,
        }
    };
    let file = tokio::fs::File::create(path)
        .await
        .map_err(local("create"))?;
    let mut out = tokio::io::BufWriter::with_capacity(1024 * 1024, file);
    let mut left = size;
    while left > 0 {
        io.fill().await?;
        let avail = io.buf.get(io.pos..).unwrap_or_default();
        let n = usize::try_from(left).map_or(avail.len(), |l| l.min(avail.len()));
        out.write_all(avail.get(..n).unwrap_or_default())
            .await
            .map_err(local("write"))?;
        io.pos += n;
        left -= n as u64;
        io.advance(n as u64);
    }
    out.flush().await.map_err(local("write"))?;
    out.into_inner().sync_all().await.map_err(local("write"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_plan_file_to_explicit_path() {
        let p = plan_upload("files/app.conf", false, "/etc/app.conf");
        assert_eq!(p.mkdir, None);
        assert!(!p.recursive);
        assert_eq!(p.command(), "scp -pt -- /etc/app.conf");
    }

    #[test]
    fn upload_plan_file_into_dir_with_trailing_slash() {
        let p = plan_upload("files/app.conf", false, "/etc/app/");
        assert_eq!(p.command(), "mkdir -p -- /etc/app/ && scp -pt -- /etc/app/");
    }

    #[test]
    fn upload_plan_dir_without_slash_sends_the_dir() {
        let p = plan_upload("files/conf", true, "/tmp/x y");
        assert_eq!(p.wrap_dir.as_deref(), Some("conf"));
        assert_eq!(
            p.command(),
            "mkdir -p -- '/tmp/x y' && scp -prt -- '/tmp/x y'"
        );
    }

    #[test]
    fn upload_plan_dir_with_slash_sends_contents() {
        let p = plan_upload("files/conf/", true, "/tmp");
        assert_eq!(p.wrap_dir, None);
        assert!(p.recursive);
    }

    #[test]
    fn download_plan_follows_packer() {
        let p = plan_download("/var/log/syslog", Path::new("out/"));
        assert_eq!(p.local, PathBuf::from("out/syslog"));
        assert_eq!(p.mkdir, PathBuf::from("out/"));
        assert!(!p.recursive);
        assert_eq!(p.command(), "scp -pf -- /var/log/syslog");

        let p = plan_download("/var/log/syslog", Path::new("out/log.txt"));
        assert_eq!(p.local, PathBuf::from("out/log.txt"));
        assert_eq!(p.mkdir, PathBuf::from("out"));

        let p = plan_download("/var/log/app/", Path::new("out"));
        assert!(p.recursive);
        assert_eq!(p.local, PathBuf::from("out"));
        assert_eq!(p.command(), "scp -prf -- /var/log/app/");

        let p = plan_download("/var/my logs/*.log", Path::new("out/"));
        assert!(p.recursive);
        assert_eq!(p.command(), "scp -prf -- '/var/my logs/'*.log");

        let p = plan_download("file", Path::new("local"));
        assert_eq!(p.mkdir, PathBuf::from("."));
    }

    #[test]
    fn records_parse() {
        assert_eq!(
            parse_record("C0644 12 a b.txt"),
            Some((0o644, 12, "a b.txt".to_owned()))
        );
        assert_eq!(
            parse_record("D0755 0 dir"),
            Some((0o755, 0, "dir".to_owned()))
        );
        assert_eq!(parse_record("C06x4 12 a"), None);
        assert_eq!(
            parse_times("T1700000000 0 1700000001 0"),
            Some((1_700_000_000, 1_700_000_001))
        );
        assert!(!valid_remote_name(".."));
        assert!(!valid_remote_name("a/b"));
        assert!(valid_remote_name("a b"));
    }

    #[test]
    fn base_name_ignores_trailing_slash() {
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(base_name("b"), "b");
    }
}
