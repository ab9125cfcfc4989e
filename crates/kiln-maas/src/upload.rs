//! MAAS boot-resources upload (API 2.0), as `maas boot-resources create`
//! does it: create the resource with `name`, `title`, `architecture`,
//! `filetype`, `sha256` and `size` (multipart POST to
//! `/MAAS/api/2.0/boot-resources/`), then PUT the content in chunks to the
//! file's `upload_uri` (`/MAAS/api/2.0/boot-resources/{id}/upload/{file_id}/`).
//! An interrupted upload is resumed: the resource with the same name,
//! architecture and sha256 is found again and the upload continues at the
//! size MAAS reports (`progress`, a percentage, × `size`).
//!
//! Authentication is OAuth 1.0 PLAINTEXT with the API key
//! `consumer_key:token_key:token_secret` (the consumer secret is empty).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Chunk size of the PUTs (as the MAAS CLI: 4 MiB).
pub const DEFAULT_CHUNK: usize = 4 << 20;

/// A MAAS API key. `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// OAuth consumer key.
    pub consumer_key: String,
    /// OAuth token key.
    pub token_key: String,
    token_secret: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ApiKey({}:{}:<redacted>)",
            self.consumer_key, self.token_key
        )
    }
}

impl ApiKey {
    /// Parse `consumer:token:secret`.
    pub fn parse(s: &str) -> Result<Self, UploadError> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        match parts.as_slice() {
            [c, t, s] if !c.is_empty() && !t.is_empty() && !s.is_empty() => Ok(Self {
                consumer_key: (*c).to_owned(),
                token_key: (*t).to_owned(),
                token_secret: (*s).to_owned(),
            }),
            _ => Err(UploadError::Invalid(
                "a MAAS API key has the form `consumer_key:token_key:token_secret`".into(),
            )),
        }
    }

    /// The token secret (to register it with a redactor).
    pub fn secret(&self) -> &str {
        &self.token_secret
    }

    /// The `Authorization` header value: OAuth 1.0 PLAINTEXT.
    pub fn authorization(&self) -> String {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let nonce = format!(
            "{:x}{:x}",
            ts,
            std::process::id() as u64 ^ (ts.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        );
        format!(
            "OAuth realm=\"\", oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", oauth_consumer_key=\"{}\", oauth_token=\"{}\", oauth_signature=\"%26{}\", oauth_nonce=\"{}\", oauth_timestamp=\"{}\"",
            pct(&self.consumer_key),
            pct(&self.token_key),
            pct(&self.token_secret),
            nonce,
            ts
        )
    }
}

fn pct(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// An upload error.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// The artifact could not be read.
    #[error("cannot read `{path}`")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The declared filetype does not match the file.
    #[error("`{path}` is a `{detected}` artifact but filetype `{declared}` was given")]
    FiletypeMismatch {
        /// Path.
        path: PathBuf,
        /// Given.
        declared: String,
        /// Sniffed.
        detected: String,
    },
    /// HTTP transport failure.
    #[error("{method} {url} failed")]
    Http {
        /// Method.
        method: String,
        /// URL.
        url: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// MAAS answered with an error status.
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        /// Method.
        method: String,
        /// URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Response body (truncated).
        body: String,
    },
    /// MAAS answered something unexpected.
    #[error("unexpected answer from MAAS to {what}: {reason}")]
    Protocol {
        /// Request.
        what: String,
        /// Why.
        reason: String,
    },
}

/// MAAS filetypes of boot resources.
pub const FILETYPES: &[&str] = &[
    "tgz", "tbz", "txz", "ddtgz", "ddtbz", "ddtxz", "ddtar", "ddbz2", "ddgz", "ddxz", "ddraw",
    "squashfs",
];

/// Sniff the filetypes an artifact can be uploaded as (tarballs: `tgz` or
/// `ddtgz`; compressed disks: `ddgz`…). Errors on a qcow2 (MAAS wants raw).
pub fn detect_filetypes(path: &Path) -> Result<Vec<&'static str>, UploadError> {
    let rerr = |source| UploadError::Read {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(rerr)?;
    let mut head = vec![0u8; 1024];
    let n = read_up_to(&mut f, &mut head).map_err(rerr)?;
    head.truncate(n);
    let is_tar =
        |b: &[u8]| b.len() >= 512 && (&b[257..262] == b"ustar" || tar_checksum_ok(&b[..512]));
    let inner = |r: &mut dyn Read| -> Vec<u8> {
        let mut b = vec![0u8; 1024];
        let n = read_up_to(r, &mut b).unwrap_or(0);
        b.truncate(n);
        b
    };
    let file = || std::fs::File::open(path).map_err(rerr);
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        let b = inner(&mut flate2::read::MultiGzDecoder::new(file()?));
        if is_tar(&b) {
            vec!["tgz", "ddtgz"]
        } else {
            vec!["ddgz"]
        }
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        let b = inner(&mut liblzma::read::XzDecoder::new_multi_decoder(file()?));
        if is_tar(&b) {
            vec!["txz", "ddtxz"]
        } else {
            vec!["ddxz"]
        }
    } else if head.starts_with(b"BZh") {
        vec!["tbz", "ddtbz", "ddbz2"]
    } else if head.starts_with(b"hsqs") {
        vec!["squashfs"]
    } else if head.starts_with(b"QFI\xfb") {
        return Err(UploadError::Invalid(format!(
            "`{}` is a qcow2 image: MAAS takes raw disks; write one with `maas-dd` (ddgz/ddxz/ddraw)",
            path.display()
        )));
    } else if is_tar(&head) {
        vec!["ddtar"]
    } else {
        vec!["ddraw"]
    })
}

fn tar_checksum_ok(h: &[u8]) -> bool {
    let stored: Option<u64> = std::str::from_utf8(&h[148..156])
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok());
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u64
            }
        })
        .sum();
    stored == Some(sum)
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// What to upload where.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    /// MAAS URL, e.g. `http://maas:5240/MAAS` (with or without `/api/2.0/`).
    pub url: String,
    /// API key.
    pub api_key: ApiKey,
    /// Resource name (`custom/debian-12`).
    pub name: String,
    /// Title shown in the UI.
    pub title: String,
    /// `amd64/generic`.
    pub architecture: String,
    /// Filetype; `None` = detected from the file.
    pub filetype: Option<String>,
    /// `base_image` (needed by MAAS for custom non-Ubuntu images, e.g. `ubuntu/jammy`).
    pub base_image: Option<String>,
    /// The artifact.
    pub path: PathBuf,
    /// PUT chunk size.
    pub chunk_size: usize,
}

/// Progress of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadProgress {
    /// Bytes MAAS holds.
    pub uploaded: u64,
    /// Total.
    pub size: u64,
}

/// What [`upload`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UploadReport {
    /// Boot resource id.
    pub resource_id: u64,
    /// The file's upload URI.
    pub upload_uri: String,
    /// The filetype used.
    pub filetype: String,
    /// sha256 of the artifact.
    pub sha256: String,
    /// Size.
    pub size: u64,
    /// Bytes sent by this call.
    pub sent: u64,
    /// Offset the upload resumed at (0 for a fresh one).
    pub resumed_from: u64,
    /// MAAS already had the whole file.
    pub already_complete: bool,
}

fn api_base(url: &str) -> String {
    let u = url.trim_end_matches('/');
    if u.ends_with("/api/2.0") {
        format!("{u}/")
    } else {
        format!("{u}/api/2.0/")
    }
}

fn join(base: &str, uri: &str) -> String {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return uri.to_owned();
    }
    // Absolute path: keep scheme://host of base.
    if let (Some(rest), Some(i)) = (uri.strip_prefix('/'), base.find("://")) {
        let host_end = base[i + 3..].find('/').map_or(base.len(), |j| i + 3 + j);
        return format!("{}/{rest}", &base[..host_end]);
    }
    format!("{base}{uri}")
}

fn multipart(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = format!(
        "kiln-{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

struct Client {
    http: reqwest::Client,
    key: ApiKey,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        ctype: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<String, UploadError> {
        let mut rb = self
            .http
            .request(method.clone(), url)
            .header("Authorization", self.key.authorization())
            .header("Accept", "application/json");
        if let Some(c) = ctype {
            rb = rb.header("Content-Type", c);
        }
        if let Some(b) = body {
            rb = rb.header("Content-Length", b.len().to_string()).body(b);
        }
        let herr = |source| UploadError::Http {
            method: method.to_string(),
            url: url.to_owned(),
            source,
        };
        let resp = rb.send().await.map_err(herr)?;
        let status = resp.status();
        let text = resp.text().await.map_err(herr)?;
        if !status.is_success() {
            return Err(UploadError::Status {
                method: method.to_string(),
                url: url.to_owned(),
                status: status.as_u16(),
                body: text.chars().take(500).collect(),
            });
        }
        Ok(text)
    }

    async fn json(
        &self,
        method: reqwest::Method,
        url: &str,
        ctype: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Value, UploadError> {
        let text = self.send(method.clone(), url, ctype, body).await?;
        serde_json::from_str(&text).map_err(|e| UploadError::Protocol {
            what: format!("{method} {url}"),
            reason: format!("not JSON: {e}"),
        })
    }
}

/// The single file of the newest set of a boot resource (as the MAAS CLI picks it).
fn newest_file(resource: &Value) -> Option<&Value> {
    let sets = resource.get("sets")?.as_object()?;
    let newest = sets.keys().max()?;
    let files = sets.get(newest)?.get("files")?.as_object()?;
    if files.len() != 1 {
        return None;
    }
    files.values().next()
}

/// Bytes MAAS holds of `file` (from `complete`, `progress` (percent) and `size`),
/// rounded to the chunk grid this client uploads on.
fn uploaded_bytes(file: &Value, chunk: u64) -> u64 {
    let size = file.get("size").and_then(Value::as_u64).unwrap_or(0);
    if file.get("complete").and_then(Value::as_bool) == Some(true) {
        return size;
    }
    let p = file
        .get("progress")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
        .clamp(0.0, 100.0);
    let bytes = p / 100.0 * size as f64;
    let chunks = (bytes / chunk as f64).round() as u64;
    (chunks * chunk).min(size)
}

/// Upload `req.path` to MAAS, resuming an interrupted upload of the same
/// content (same name, architecture and sha256).
pub async fn upload(
    req: &UploadRequest,
    progress: &mut (dyn FnMut(UploadProgress) + Send),
) -> Result<UploadReport, UploadError> {
    let detected = detect_filetypes(&req.path)?;
    let filetype = match &req.filetype {
        Some(ft) => {
            if !FILETYPES.contains(&ft.as_str()) {
                return Err(UploadError::Invalid(format!(
                    "unknown MAAS filetype `{ft}`; known: {}",
                    FILETYPES.join(", ")
                )));
            }
            if !detected.contains(&ft.as_str()) {
                return Err(UploadError::FiletypeMismatch {
                    path: req.path.clone(),
                    declared: ft.clone(),
                    detected: detected.join(" or "),
                });
            }
            ft.clone()
        }
        None => detected
            .first()
            .map(|s| (*s).to_owned())
            .unwrap_or_default(),
    };
    if req.name.is_empty() || req.architecture.is_empty() {
        return Err(UploadError::Invalid(
            "`name` and `architecture` are required".into(),
        ));
    }
    let chunk = req.chunk_size.max(1);
    let kiln_fs::FileDigest { hex: sha256, size } = {
        let p = req.path.clone();
        tokio::task::spawn_blocking(move || kiln_fs::sha256_file(&p))
            .await
            .map_err(|e| UploadError::Invalid(format!("hashing task failed: {e}")))?
            .map_err(|e| UploadError::Read {
                path: e.path,
                source: e.source,
            })?
    };
    let base = api_base(&req.url);
    let client = Client {
        http: reqwest::Client::builder()
            .build()
            .map_err(|source| UploadError::Http {
                method: "BUILD".into(),
                url: base.clone(),
                source,
            })?,
        key: req.api_key.clone(),
    };
    let list_url = format!("{base}boot-resources/");

    // Resume: an uploaded resource of this name/arch whose file has our sha256.
    let mut found: Option<(u64, Value)> = None;
    let listing = client
        .json(
            reqwest::Method::GET,
            &format!("{list_url}?type=uploaded"),
            None,
            None,
        )
        .await?;
    for r in listing.as_array().into_iter().flatten() {
        if r.get("name").and_then(Value::as_str) != Some(&req.name)
            || r.get("architecture").and_then(Value::as_str) != Some(&req.architecture)
        {
            continue;
        }
        let Some(id) = r.get("id").and_then(Value::as_u64) else {
            continue;
        };
        let full = client
            .json(
                reqwest::Method::GET,
                &format!("{list_url}{id}/"),
                None,
                None,
            )
            .await?;
        if newest_file(&full)
            .and_then(|f| f.get("sha256"))
            .and_then(Value::as_str)
            == Some(sha256.as_str())
        {
            found = Some((id, full));
            break;
        }
    }
    let (resource_id, resource) =
        match found {
            Some(x) => x,
            None => {
                let size_s = size.to_string();
                let mut fields = vec![
                    ("name", req.name.as_str()),
                    ("title", req.title.as_str()),
                    ("architecture", req.architecture.as_str()),
                    ("filetype", filetype.as_str()),
                    ("sha256", sha256.as_str()),
                    ("size", size_s.as_str()),
                ];
                if let Some(b) = &req.base_image {
                    fields.push(("base_image", b.as_str()));
                }
                let (ctype, body) = multipart(&fields);
                let created = client
                    .json(reqwest::Method::POST, &list_url, Some(&ctype), Some(body))
                    .await?;
                let id = created.get("id").and_then(Value::as_u64).ok_or_else(|| {
                    UploadError::Protocol {
                        what: format!("POST {list_url}"),
                        reason: "no resource `id`".into(),
                    }
                })?;
                (id, created)
            }
        };
    let file = newest_file(&resource).ok_or_else(|| UploadError::Protocol {
        what: format!("boot resource {resource_id}"),
        reason: "no set with exactly one file".into(),
    })?;
    let mut report = UploadReport {
        resource_id,
        upload_uri: String::new(),
        filetype,
        sha256,
        size,
        sent: 0,
        resumed_from: 0,
        already_complete: false,
    };
    if file.get("complete").and_then(Value::as_bool) == Some(true) {
        report.already_complete = true;
        progress(UploadProgress {
            uploaded: size,
            size,
        });
        return Ok(report);
    }
    let uri = file
        .get("upload_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| UploadError::Protocol {
            what: format!("boot resource {resource_id}"),
            reason: "incomplete file without `upload_uri`".into(),
        })?;
    let upload_url = join(&base, uri);
    report.upload_uri = upload_url.clone();
    let start = uploaded_bytes(file, chunk as u64);
    report.resumed_from = start;
    let rerr = |source| UploadError::Read {
        path: req.path.clone(),
        source,
    };
    let mut f = tokio::fs::File::open(&req.path).await.map_err(rerr)?;
    f.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(rerr)?;
    let mut pos = start;
    progress(UploadProgress {
        uploaded: pos,
        size,
    });
    while pos < size {
        let n = (size - pos).min(chunk as u64) as usize;
        let mut buf = vec![0u8; n];
        f.read_exact(&mut buf).await.map_err(rerr)?;
        client
            .send(
                reqwest::Method::PUT,
                &upload_url,
                Some("application/octet-stream"),
                Some(buf),
            )
            .await?;
        pos += n as u64;
        report.sent += n as u64;
        progress(UploadProgress {
            uploaded: pos,
            size,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_parses_and_redacts() {
        let k = ApiKey::parse("ck:tk:s3cr3t").unwrap();
        assert!(!format!("{k:?}").contains("s3cr3t"));
        let h = k.authorization();
        assert!(h.starts_with("OAuth realm=\"\""), "{h}");
        assert!(h.contains("oauth_signature_method=\"PLAINTEXT\""));
        assert!(
            h.contains("oauth_consumer_key=\"ck\"")
                && h.contains("oauth_token=\"tk\"")
                && h.contains("oauth_signature=\"%26s3cr3t\"")
        );
        assert!(ApiKey::parse("a:b").is_err());
    }

    #[test]
    fn urls_join_like_maas_cli() {
        assert_eq!(
            api_base("http://m:5240/MAAS"),
            "http://m:5240/MAAS/api/2.0/"
        );
        assert_eq!(
            api_base("http://m:5240/MAAS/api/2.0/"),
            "http://m:5240/MAAS/api/2.0/"
        );
        assert_eq!(
            join(
                "http://m:5240/MAAS/api/2.0/",
                "/MAAS/api/2.0/boot-resources/3/upload/4/"
            ),
            "http://m:5240/MAAS/api/2.0/boot-resources/3/upload/4/"
        );
    }

    #[test]
    fn resume_offset_comes_from_progress_on_the_chunk_grid() {
        let f = serde_json::json!({"size": 10_000_000u64, "complete": false, "progress": 83.88608});
        assert_eq!(uploaded_bytes(&f, 4 << 20), 8 << 20);
        let f = serde_json::json!({"size": 10, "complete": true});
        assert_eq!(uploaded_bytes(&f, 4), 10);
    }
}
