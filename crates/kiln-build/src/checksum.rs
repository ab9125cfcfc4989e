//! Packer's `iso_checksum` forms and file hashing.
//!
//! Accepted, as Packer documents them: `none`, `TYPE:HEX` with TYPE one of
//! md5, sha1, sha256, sha512, bare `HEX` (type from its length), and
//! `file:URL-or-path` of a checksums file (GNU `HASH  name`, `HASH *name`,
//! or BSD `SHA256 (name) = HASH` lines), optionally with a type prefix
//! (`sha256:file:…`).

use std::io::Read;
use std::path::Path;

use sha1::Digest as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "md5" => Some(Algorithm::Md5),
            "sha1" => Some(Algorithm::Sha1),
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    fn from_hex_len(len: usize) -> Option<Self> {
        match len {
            32 => Some(Algorithm::Md5),
            40 => Some(Algorithm::Sha1),
            64 => Some(Algorithm::Sha256),
            128 => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// An expected digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Checksum {
    pub algorithm: Algorithm,
    /// Lowercase hex.
    pub hex: String,
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// What `iso_checksum` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChecksumSpec {
    None,
    Digest(Checksum),
    /// A checksums file to look the download's file name up in.
    File {
        algorithm: Option<Algorithm>,
        location: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    #[error(
        "`iso_checksum` {0:?} is not a checksum: use `sha256:HEX`, `md5:HEX`, `file:URL`, a bare hex digest, or `none`"
    )]
    Invalid(String),
    #[error("checksums file {location} has no line for `{name}`")]
    NotListed { location: String, name: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// Parse an `iso_checksum` value.
pub fn parse_spec(text: &str) -> Result<ChecksumSpec, ChecksumError> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("none") {
        return Ok(ChecksumSpec::None);
    }
    if let Some(location) = t.strip_prefix("file:") {
        return Ok(ChecksumSpec::File {
            algorithm: None,
            location: location.to_string(),
        });
    }
    if let Some((prefix, rest)) = t.split_once(':')
        && let Some(algorithm) = Algorithm::from_name(prefix)
    {
        if let Some(location) = rest.strip_prefix("file:") {
            return Ok(ChecksumSpec::File {
                algorithm: Some(algorithm),
                location: location.to_string(),
            });
        }
        let hex = rest.to_ascii_lowercase();
        if is_hex(&hex) && Algorithm::from_hex_len(hex.len()) == Some(algorithm) {
            return Ok(ChecksumSpec::Digest(Checksum { algorithm, hex }));
        }
        return Err(ChecksumError::Invalid(text.to_string()));
    }
    let hex = t.to_ascii_lowercase();
    match Algorithm::from_hex_len(hex.len()) {
        Some(algorithm) if is_hex(&hex) => Ok(ChecksumSpec::Digest(Checksum { algorithm, hex })),
        _ => Err(ChecksumError::Invalid(text.to_string())),
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Find `file_name` in the text of a checksums file.
pub fn lookup_in_sums(
    sums: &str,
    file_name: &str,
    algorithm: Option<Algorithm>,
    location: &str,
) -> Result<Checksum, ChecksumError> {
    for line in sums.lines() {
        let line = line.trim();
        // BSD style: `SHA256 (name) = hex`
        if let Some((head, hex)) = line.split_once(") = ")
            && let Some((alg, name)) = head.split_once(" (")
        {
            if base_name(name) == file_name
                && let Some(a) = Algorithm::from_name(alg)
            {
                return Ok(Checksum {
                    algorithm: a,
                    hex: hex.trim().to_ascii_lowercase(),
                });
            }
            continue;
        }
        // GNU style: `hex  name` or `hex *name`
        let mut parts = line.splitn(2, char::is_whitespace);
        let (Some(hex), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        let name = name.trim_start().trim_start_matches('*');
        if base_name(name) != file_name || !is_hex(hex) {
            continue;
        }
        let a = algorithm.or_else(|| Algorithm::from_hex_len(hex.len()));
        if let Some(algorithm) = a {
            return Ok(Checksum {
                algorithm,
                hex: hex.to_ascii_lowercase(),
            });
        }
    }
    Err(ChecksumError::NotListed {
        location: location.to_string(),
        name: file_name.to_string(),
    })
}

fn base_name(path: &str) -> &str {
    let p = path.trim_start_matches("./");
    p.rsplit('/').next().unwrap_or(p)
}

/// An incremental hasher for any of the algorithms.
pub enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish_hex(self) -> String {
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// Hash a file, reporting progress as (bytes done, total).
pub fn hash_file(
    path: &Path,
    algorithm: Algorithm,
    mut progress: impl FnMut(u64, u64),
) -> Result<String, ChecksumError> {
    let read_err = |source| ChecksumError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(read_err)?;
    let total = f.metadata().map_err(read_err)?.len();
    let mut h = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        done += n as u64;
        progress(done, total);
    }
    Ok(h.finish_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_every_form_packer_documents() {
        assert_eq!(parse_spec("none").unwrap(), ChecksumSpec::None);
        let d = parse_spec(&format!("sha256:{}", SHA256_EMPTY.to_uppercase())).unwrap();
        assert_eq!(
            d,
            ChecksumSpec::Digest(Checksum {
                algorithm: Algorithm::Sha256,
                hex: SHA256_EMPTY.into()
            })
        );
        assert_eq!(
            parse_spec(SHA256_EMPTY).unwrap(),
            parse_spec(&format!("sha256:{SHA256_EMPTY}")).unwrap()
        );
        assert!(matches!(
            parse_spec("d41d8cd98f00b204e9800998ecf8427e").unwrap(),
            ChecksumSpec::Digest(Checksum {
                algorithm: Algorithm::Md5,
                ..
            })
        ));
        assert_eq!(
            parse_spec("file:https://example.invalid/SHA256SUMS").unwrap(),
            ChecksumSpec::File {
                algorithm: None,
                location: "https://example.invalid/SHA256SUMS".into()
            }
        );
        assert_eq!(
            parse_spec("sha512:file:./SUMS").unwrap(),
            ChecksumSpec::File {
                algorithm: Some(Algorithm::Sha512),
                location: "./SUMS".into()
            }
        );
    }

    #[test]
    fn rejects_what_is_not_a_checksum() {
        for bad in [
            "sha256:abc",
            "xyz",
            "md5:zz",
            "sha1:e3b0c44298fc1c149afbf4c8996fb92427ae41e",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_names_in_gnu_and_bsd_sums() {
        let sums = format!(
            "{SHA256_EMPTY}  other.img\n{SHA256_EMPTY} *noble-server-cloudimg-amd64.img\nSHA512 (bsd.img) = {}\n",
            "ab".repeat(64)
        );
        let c = lookup_in_sums(&sums, "noble-server-cloudimg-amd64.img", None, "SUMS").unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        let b = lookup_in_sums(&sums, "bsd.img", None, "SUMS").unwrap();
        assert_eq!(b.algorithm, Algorithm::Sha512);
        let err = lookup_in_sums(&sums, "missing.img", None, "SUMS").unwrap_err();
        assert!(err.to_string().contains("missing.img"));
    }

    #[test]
    fn hashes_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty");
        std::fs::write(&p, b"").unwrap();
        assert_eq!(
            hash_file(&p, Algorithm::Sha256, |_, _| {}).unwrap(),
            SHA256_EMPTY
        );
        assert_eq!(
            hash_file(&p, Algorithm::Md5, |_, _| {}).unwrap(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}
