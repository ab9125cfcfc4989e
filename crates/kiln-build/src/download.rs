//! Fetching `iso_url`/`iso_urls` into the cache, verified before use.
//!
//! Remote files land in the cache directory under a name derived from
//! their checksum (so the same image under two URLs is fetched once), are
//! written to `NAME.part` and renamed only once verified; an interrupted
//! download resumes with an HTTP range request; a mismatch deletes the
//! file. Local files are used in place, and their verification is
//! remembered by (path, size, mtime, inode) so a multi-gigabyte base image
//! is not hashed again on every build (Packer hashes it every time).

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sha2::Digest as _;
use tokio::io::AsyncWriteExt;

use crate::checksum::{self, Algorithm, Checksum, ChecksumError, ChecksumSpec};

/// What to fetch.
#[derive(Clone, Debug)]
pub struct DownloadRequest {
    /// Tried in order until one succeeds.
    pub urls: Vec<String>,
    pub checksum: ChecksumSpec,
    /// `iso_target_path`: where to put the file instead of the cache.
    pub target_path: Option<PathBuf>,
    /// Extension of the cached file (`iso_target_extension`, default `iso`).
    pub extension: String,
    pub cache_dir: PathBuf,
    /// Relative local paths resolve against this (Packer: the working directory).
    pub cwd: PathBuf,
}

/// A verified file ready for use.
#[derive(Clone, Debug, PartialEq)]
pub struct Downloaded {
    pub path: PathBuf,
    pub url: String,
    pub checksum: Option<Checksum>,
    /// Nothing was transferred or hashed: cache or memo hit.
    pub reused: bool,
}

/// Progress of the long parts: transfer and hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownloadProgress {
    Transfer { done: u64, total: Option<u64> },
    Verify { done: u64, total: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("no `iso_url` to download")]
    NoUrl,
    #[error(transparent)]
    Checksum(#[from] ChecksumError),
    #[error(
        "checksum mismatch for {url}: expected {expected}, got {actual}; the downloaded file was deleted"
    )]
    Mismatch {
        url: String,
        expected: Checksum,
        actual: String,
    },
    #[error("local file {path} (from `{url}`) does not exist")]
    Missing { url: String, path: PathBuf },
    #[error("download of {url} failed: {error}")]
    Http { url: String, error: reqwest::Error },
    #[error("download of {url} failed: server answered {status}")]
    HttpStatus {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error(
        "unsupported URL scheme in `{0}` (kiln fetches http, https and file URLs and local paths)"
    )]
    Scheme(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("every URL failed:\n{0}")]
    AllFailed(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Remote(String),
}

/// Classify a URL or path as Packer does (no scheme = local path).
pub fn locate(url: &str, cwd: &Path) -> Result<Location, DownloadError> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(Location::Local(cwd.join(path)));
    }
    if let Some(path) = url.strip_prefix("file:") {
        return Ok(Location::Local(cwd.join(path)));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Location::Remote(url.to_string()));
    }
    if url.contains("://") {
        return Err(DownloadError::Scheme(url.to_string()));
    }
    Ok(Location::Local(cwd.join(url)))
}

/// Fetch (or find) and verify the file.
pub async fn fetch(
    req: &DownloadRequest,
    progress: &(dyn Fn(DownloadProgress) + Send + Sync),
) -> Result<Downloaded, DownloadError> {
    if req.urls.is_empty() {
        return Err(DownloadError::NoUrl);
    }
    let mut failures = Vec::new();
    for url in &req.urls {
        match fetch_one(req, url, progress).await {
            Ok(d) => return Ok(d),
            // A wrong checksum is the user's to fix, not a reason to try a mirror.
            Err(e @ DownloadError::Mismatch { .. }) => return Err(e),
            Err(e) if req.urls.len() == 1 => return Err(e),
            Err(e) => failures.push(format!("  {url}: {e}")),
        }
    }
    Err(DownloadError::AllFailed(failures.join("\n")))
}

async fn fetch_one(
    req: &DownloadRequest,
    url: &str,
    progress: &(dyn Fn(DownloadProgress) + Send + Sync),
) -> Result<Downloaded, DownloadError> {
    let location = locate(url, &req.cwd)?;
    let expected = resolve_checksum(req, url).await?;
    match location {
        Location::Local(path) => {
            if !path.is_file() {
                return Err(DownloadError::Missing {
                    url: url.to_string(),
                    path,
                });
            }
            let reused =
                verify_remembered(&req.cache_dir, &path, url, expected.as_ref(), progress).await?;
            Ok(Downloaded {
                path,
                url: url.to_string(),
                checksum: expected,
                reused,
            })
        }
        Location::Remote(remote) => {
            let target = match &req.target_path {
                Some(p) => req.cwd.join(p),
                None => req.cache_dir.join("downloads").join(cache_name(
                    &remote,
                    expected.as_ref(),
                    &req.extension,
                )),
            };
            if target.is_file() {
                let reused =
                    verify_remembered(&req.cache_dir, &target, url, expected.as_ref(), progress)
                        .await;
                match reused {
                    Ok(reused) => {
                        return Ok(Downloaded {
                            path: target,
                            url: url.to_string(),
                            checksum: expected,
                            reused,
                        });
                    }
                    // A stale file under the target name: fetch it anew.
                    Err(DownloadError::Mismatch { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            transfer(&remote, &target, expected.as_ref(), progress).await?;
            remember(&req.cache_dir, &target, expected.as_ref());
            Ok(Downloaded {
                path: target,
                url: url.to_string(),
                checksum: expected,
                reused: false,
            })
        }
    }
}

async fn resolve_checksum(
    req: &DownloadRequest,
    url: &str,
) -> Result<Option<Checksum>, DownloadError> {
    match &req.checksum {
        ChecksumSpec::None => Ok(None),
        ChecksumSpec::Digest(c) => Ok(Some(c.clone())),
        ChecksumSpec::File {
            algorithm,
            location,
        } => {
            let text = match locate(location, &req.cwd)? {
                Location::Local(path) => tokio::fs::read_to_string(&path)
                    .await
                    .map_err(io_err(&path))?,
                Location::Remote(u) => http_text(&u).await?,
            };
            let name = url.rsplit('/').next().unwrap_or(url);
            let name = name.split(['?', '#']).next().unwrap_or(name);
            Ok(Some(checksum::lookup_in_sums(
                &text, name, *algorithm, location,
            )?))
        }
    }
}

async fn http_text(url: &str) -> Result<String, DownloadError> {
    let http = |error| DownloadError::Http {
        url: url.to_string(),
        error,
    };
    let resp = reqwest::get(url).await.map_err(http)?;
    let resp = resp.error_for_status().map_err(http)?;
    resp.text().await.map_err(http)
}

/// The cache file name: by checksum when known, else by URL.
fn cache_name(url: &str, checksum: Option<&Checksum>, extension: &str) -> String {
    let stem = match checksum {
        Some(c) => format!("{}-{}", c.algorithm.name(), c.hex),
        None => format!(
            "url-{}",
            &hex::encode(sha2::Sha256::digest(url.as_bytes()))[..32]
        ),
    };
    let ext = extension.trim_start_matches('.');
    if ext.is_empty() {
        stem
    } else {
        format!("{stem}.{ext}")
    }
}

/// Stream `url` into `target` through `target.part`, resuming a partial
/// file, verifying, and renaming into place.
async fn transfer(
    url: &str,
    target: &Path,
    expected: Option<&Checksum>,
    progress: &(dyn Fn(DownloadProgress) + Send + Sync),
) -> Result<(), DownloadError> {
    let http = |error| DownloadError::Http {
        url: url.to_string(),
        error,
    };
    if let Some(dir) = target.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io_err(dir))?;
    }
    let part = target.with_extension(match target.extension() {
        Some(e) => format!("{}.part", e.to_string_lossy()),
        None => "part".into(),
    });
    let have = tokio::fs::metadata(&part)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let client = reqwest::Client::new();
    let mut request = client.get(url);
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let resp = request.send().await.map_err(http)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(DownloadError::HttpStatus {
            url: url.to_string(),
            status,
        });
    }
    let resumed = have > 0 && status == reqwest::StatusCode::PARTIAL_CONTENT;
    let mut done = if resumed { have } else { 0 };
    let total = resp.content_length().map(|n| n + done);
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(&part)
        .await
        .map_err(io_err(&part))?;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(http)?;
        file.write_all(&chunk).await.map_err(io_err(&part))?;
        done += chunk.len() as u64;
        progress(DownloadProgress::Transfer { done, total });
    }
    file.flush().await.map_err(io_err(&part))?;
    drop(file);
    if let Some(expected) = expected {
        let actual = hash_with_progress(&part, expected.algorithm, progress).await?;
        if actual != expected.hex {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(DownloadError::Mismatch {
                url: url.to_string(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    tokio::fs::rename(&part, target)
        .await
        .map_err(io_err(target))?;
    Ok(())
}

async fn hash_with_progress(
    path: &Path,
    algorithm: Algorithm,
    progress: &(dyn Fn(DownloadProgress) + Send + Sync),
) -> Result<String, DownloadError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let p = path.to_path_buf();
    let job = tokio::task::spawn_blocking(move || {
        let mut last = 0u64;
        checksum::hash_file(&p, algorithm, |done, total| {
            // Report every 64 MiB, not every read.
            if done - last >= 64 << 20 || done == total {
                last = done;
                let _ = tx.send((done, total));
            }
        })
    });
    while let Some((done, total)) = rx.recv().await {
        progress(DownloadProgress::Verify { done, total });
    }
    job.await
        .map_err(|e| DownloadError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(DownloadError::from)
}

/// Where verified digests of files are remembered, by the file's identity.
fn memo(cache_dir: &Path) -> kiln_fs::DigestMemo {
    kiln_fs::DigestMemo::new(cache_dir.join("verified"))
}

/// Verify `path` against `expected` unless a memo says this very file was
/// verified already. Returns whether the memo was used.
async fn verify_remembered(
    cache_dir: &Path,
    path: &Path,
    url: &str,
    expected: Option<&Checksum>,
    progress: &(dyn Fn(DownloadProgress) + Send + Sync),
) -> Result<bool, DownloadError> {
    let Some(expected) = expected else {
        return Ok(true);
    };
    let algorithm = expected.algorithm.name();
    if memo(cache_dir).get(path, algorithm).as_deref() == Some(expected.hex.as_str()) {
        return Ok(true);
    }
    let actual = hash_with_progress(path, expected.algorithm, progress).await?;
    if actual != expected.hex {
        return Err(DownloadError::Mismatch {
            url: url.to_string(),
            expected: expected.clone(),
            actual,
        });
    }
    remember(cache_dir, path, Some(expected));
    Ok(false)
}

/// Record that `path` as it is now matches `checksum` (best effort: a
/// memo that cannot be written only costs a hash next time).
fn remember(cache_dir: &Path, path: &Path, checksum: Option<&Checksum>) {
    if let Some(checksum) = checksum {
        memo(cache_dir).put(path, checksum.algorithm.name(), &checksum.hex);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn sha256(data: &[u8]) -> Checksum {
        Checksum {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(sha2::Sha256::digest(data)),
        }
    }

    /// A real HTTP server on loopback that honours Range requests and
    /// counts how often it was asked.
    async fn serve(body: Vec<u8>, hits: Arc<AtomicUsize>) -> String {
        use axum::http::{HeaderMap, StatusCode};
        let body = Arc::new(body);
        let app = axum::Router::new().route(
            "/image.img",
            axum::routing::get(move |headers: HeaderMap| {
                let body = body.clone();
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let from = headers
                        .get("range")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("bytes="))
                        .and_then(|v| v.trim_end_matches('-').parse::<usize>().ok());
                    match from {
                        Some(n) => (StatusCode::PARTIAL_CONTENT, body[n..].to_vec()),
                        None => (StatusCode::OK, body.to_vec()),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/image.img")
    }

    fn request(dir: &Path, url: &str, checksum: ChecksumSpec) -> DownloadRequest {
        DownloadRequest {
            urls: vec![url.to_string()],
            checksum,
            target_path: None,
            extension: "img".into(),
            cache_dir: dir.join("cache"),
            cwd: dir.to_path_buf(),
        }
    }

    #[tokio::test]
    async fn downloads_verifies_and_reuses_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![7u8; 3 << 20];
        let hits = Arc::new(AtomicUsize::new(0));
        let url = serve(data.clone(), hits.clone()).await;
        let req = request(dir.path(), &url, ChecksumSpec::Digest(sha256(&data)));
        let first = fetch(&req, &|_| {}).await.unwrap();
        assert!(!first.reused);
        assert_eq!(std::fs::read(&first.path).unwrap(), data);
        let second = fetch(&req, &|_| {}).await.unwrap();
        assert!(second.reused);
        assert_eq!(first.path, second.path);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn resumes_a_partial_download() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let hits = Arc::new(AtomicUsize::new(0));
        let url = serve(data.clone(), hits).await;
        let c = sha256(&data);
        let req = request(dir.path(), &url, ChecksumSpec::Digest(c.clone()));
        let target = dir
            .path()
            .join("cache/downloads")
            .join(format!("sha256-{}.img", c.hex));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target.with_extension("img.part"), &data[..400_000]).unwrap();
        let got = fetch(&req, &|_| {}).await.unwrap();
        assert_eq!(std::fs::read(got.path).unwrap(), data);
    }

    #[tokio::test]
    async fn a_mismatch_is_an_error_and_the_file_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let url = serve(
            b"not what you expect".to_vec(),
            Arc::new(AtomicUsize::new(0)),
        )
        .await;
        let req = request(dir.path(), &url, ChecksumSpec::Digest(sha256(b"other")));
        let err = fetch(&req, &|_| {}).await.unwrap_err();
        assert!(matches!(err, DownloadError::Mismatch { .. }), "{err}");
        let downloads = dir.path().join("cache/downloads");
        assert_eq!(std::fs::read_dir(downloads).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn local_files_are_used_in_place_and_hashed_once() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        std::fs::write(&base, b"disk").unwrap();
        let req = request(
            dir.path(),
            "base.qcow2",
            ChecksumSpec::Digest(sha256(b"disk")),
        );
        let first = fetch(&req, &|_| {}).await.unwrap();
        assert_eq!(first.path, base);
        assert!(!first.reused);
        assert!(fetch(&req, &|_| {}).await.unwrap().reused);
        // Changing the file invalidates the memo, and the mismatch is caught.
        std::fs::write(&base, b"DISK!").unwrap();
        assert!(matches!(
            fetch(&req, &|_| {}).await,
            Err(DownloadError::Mismatch { .. })
        ));
    }

    #[tokio::test]
    async fn checksum_files_are_looked_up_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("image.img"), b"abc").unwrap();
        std::fs::write(
            dir.path().join("SHA256SUMS"),
            format!("{}  image.img\n", sha256(b"abc").hex),
        )
        .unwrap();
        let req = request(
            dir.path(),
            "file://image.img",
            ChecksumSpec::File {
                algorithm: None,
                location: "SHA256SUMS".into(),
            },
        );
        let got = fetch(&req, &|_| {}).await.unwrap();
        assert_eq!(got.checksum, Some(sha256(b"abc")));
    }

    #[tokio::test]
    async fn a_missing_local_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let req = request(dir.path(), "nope.iso", ChecksumSpec::None);
        let err = fetch(&req, &|_| {}).await.unwrap_err();
        assert!(err.to_string().contains("nope.iso"), "{err}");
    }
}
