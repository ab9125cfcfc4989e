//! Key pairs: throwaway keys generated per build, and a user's
//! `ssh_private_key_file`.
//!
//! A private key lives in memory only. [`KeyPair::write_private_key`] puts it
//! on disk when the caller asks (for a debug `ssh -i` command), mode 0600 in a
//! private temporary directory that is removed when the returned
//! [`PrivateKeyFile`] is dropped.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use russh::keys::ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
use russh::keys::ssh_key::{self, LineEnding};
use russh::keys::{EcdsaCurve, HashAlg, PrivateKey, PublicKey};

/// Errors of key generation and loading.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `temporary_key_pair_type` names a type kiln does not know.
    #[error("unknown `temporary_key_pair_type` `{0}`: expected `ed25519`, `rsa`, `ecdsa` or `dsa`")]
    UnknownType(String),
    /// DSA is accepted by Packer's schema but refused by current OpenSSH servers.
    #[error(
        "`temporary_key_pair_type = \"dsa\"` is not supported: OpenSSH servers refuse DSA keys since 7.0; use `ed25519` or `rsa`"
    )]
    DsaUnsupported,
    /// `temporary_key_pair_bits` does not fit the key type.
    #[error("`temporary_key_pair_bits = {bits}` is invalid for {kind} keys: {expected}")]
    InvalidBits {
        /// The key type.
        kind: KeyPairType,
        /// The bits asked for.
        bits: u32,
        /// What the type accepts.
        expected: &'static str,
    },
    /// The key generator failed.
    #[error("cannot generate a {kind} key pair: {source}")]
    Generate {
        /// The key type.
        kind: KeyPairType,
        /// The generator's error.
        source: ssh_key::Error,
    },
    /// The key could not be encoded (OpenSSH text form).
    #[error("cannot encode the {what}: {source}")]
    Encode {
        /// Which key.
        what: &'static str,
        /// The encoder's error.
        source: ssh_key::Error,
    },
    /// A key file could not be read.
    #[error("cannot read private key file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key file is protected by a passphrase.
    #[error(
        "private key file `{path}` is encrypted with a passphrase; kiln cannot prompt for it: give an unencrypted key (`ssh-keygen -p -N '' -f {path}` removes the passphrase from a copy)"
    )]
    Encrypted {
        /// The file.
        path: PathBuf,
    },
    /// A key file is in a format or of a type kiln cannot read.
    #[error(
        "private key file `{path}` is not a supported private key (OpenSSH, PEM PKCS#1/PKCS#8/SEC1 or PuTTY; ed25519, rsa or ecdsa): {detail}"
    )]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        detail: String,
    },
    /// Writing the private key to a temporary file failed.
    #[error("cannot write the private key to `{path}`: {source}")]
    Write {
        /// The file (or its directory).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Packer's `temporary_key_pair_type`. kiln's default is ed25519 (Packer's
/// is rsa): ed25519 keys are generated in microseconds and accepted by every
/// OpenSSH since 6.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyPairType {
    /// `ed25519` (kiln's default; bits are ignored, as in Packer).
    #[default]
    Ed25519,
    /// `rsa`, 4096 bits unless `temporary_key_pair_bits` says otherwise (at
    /// least 1024, as in Packer).
    Rsa,
    /// `ecdsa`, bits select the curve: 256, 384 or 521 (default 521, as in
    /// Packer).
    Ecdsa,
    /// `dsa`: accepted by the parser so the error can say why it is refused.
    Dsa,
}

impl KeyPairType {
    /// The value as written in a template.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPairType::Ed25519 => "ed25519",
            KeyPairType::Rsa => "rsa",
            KeyPairType::Ecdsa => "ecdsa",
            KeyPairType::Dsa => "dsa",
        }
    }
}

impl fmt::Display for KeyPairType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyPairType {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ed25519" => Ok(KeyPairType::Ed25519),
            "rsa" => Ok(KeyPairType::Rsa),
            "ecdsa" => Ok(KeyPairType::Ecdsa),
            "dsa" => Ok(KeyPairType::Dsa),
            other => Err(KeyError::UnknownType(other.to_owned())),
        }
    }
}

/// The algorithm and size a [`KeyPair::generate`] call resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// An ed25519 key.
    Ed25519,
    /// An RSA key of this many bits.
    Rsa {
        /// Modulus size.
        bits: usize,
    },
    /// An ECDSA key on this curve.
    Ecdsa {
        /// NIST curve.
        curve: EcdsaCurve,
    },
}

/// Resolves `temporary_key_pair_type` and `temporary_key_pair_bits` (0 or
/// `None` meaning unset) with Packer's rules. Pure.
pub fn plan_key_spec(kind: KeyPairType, bits: Option<u32>) -> Result<KeySpec, KeyError> {
    let bits = bits.filter(|b| *b != 0);
    match kind {
        KeyPairType::Ed25519 => Ok(KeySpec::Ed25519),
        KeyPairType::Dsa => Err(KeyError::DsaUnsupported),
        KeyPairType::Rsa => match bits {
            None => Ok(KeySpec::Rsa { bits: 4096 }),
            Some(b) if (1024..=16384).contains(&b) => Ok(KeySpec::Rsa { bits: b as usize }),
            Some(b) => Err(KeyError::InvalidBits {
                kind,
                bits: b,
                expected: "between 1024 and 16384",
            }),
        },
        KeyPairType::Ecdsa => match bits {
            Some(256) => Ok(KeySpec::Ecdsa {
                curve: EcdsaCurve::NistP256,
            }),
            Some(384) => Ok(KeySpec::Ecdsa {
                curve: EcdsaCurve::NistP384,
            }),
            None | Some(521) => Ok(KeySpec::Ecdsa {
                curve: EcdsaCurve::NistP521,
            }),
            Some(b) => Err(KeyError::InvalidBits {
                kind,
                bits: b,
                expected: "256, 384 or 521",
            }),
        },
    }
}

/// A private key in memory with its public half. Cheap to clone (the key is
/// shared). `Debug` shows the algorithm and fingerprint, never the key.
#[derive(Clone)]
pub struct KeyPair {
    key: Arc<PrivateKey>,
    source: KeySource,
}

#[derive(Clone, Debug)]
enum KeySource {
    Generated,
    File(PathBuf),
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("algorithm", &self.key.algorithm().as_str())
            .field("fingerprint", &self.fingerprint())
            .field("source", &self.source)
            .finish()
    }
}

impl KeyPair {
    /// Generates a throwaway key pair. `comment` ends the public key line
    /// (`kiln-<build>` by convention) and is what a human sees in
    /// `authorized_keys`.
    pub fn generate(kind: KeyPairType, bits: Option<u32>, comment: &str) -> Result<Self, KeyError> {
        let spec = plan_key_spec(kind, bits)?;
        let mut rng = rand::rng();
        let data = match spec {
            KeySpec::Ed25519 => KeypairData::from(Ed25519Keypair::random(&mut rng)),
            KeySpec::Rsa { bits } => KeypairData::from(
                RsaKeypair::random(&mut rng, bits)
                    .map_err(|source| KeyError::Generate { kind, source })?,
            ),
            KeySpec::Ecdsa { curve } => KeypairData::from(
                EcdsaKeypair::random(&mut rng, curve)
                    .map_err(|source| KeyError::Generate { kind, source })?,
            ),
        };
        let key =
            PrivateKey::new(data, comment).map_err(|source| KeyError::Generate { kind, source })?;
        Ok(KeyPair {
            key: Arc::new(key),
            source: KeySource::Generated,
        })
    }

    /// An ed25519 key pair derived from a 32-byte seed: the same seed gives
    /// the same key. The step cache uses it so a guest restored from a
    /// checkpoint still trusts the build's key on the next run.
    pub fn ed25519_from_seed(seed: &[u8; 32], comment: &str) -> Result<Self, KeyError> {
        let data = KeypairData::from(Ed25519Keypair::from_seed(seed));
        let key = PrivateKey::new(data, comment).map_err(|source| KeyError::Generate {
            kind: KeyPairType::Ed25519,
            source,
        })?;
        Ok(KeyPair {
            key: Arc::new(key),
            source: KeySource::Generated,
        })
    }

    /// Loads a user's `ssh_private_key_file`: OpenSSH (`BEGIN OPENSSH PRIVATE
    /// KEY`), PEM (`BEGIN RSA PRIVATE KEY`, `BEGIN EC PRIVATE KEY`, `BEGIN
    /// PRIVATE KEY`) or PuTTY. A passphrase-protected key is refused with
    /// [`KeyError::Encrypted`] naming the path.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_text(&text, path)
    }

    /// Decodes a private key from its text; `origin` names it in errors.
    pub fn from_text(text: &str, origin: &Path) -> Result<Self, KeyError> {
        if looks_encrypted(text) {
            return Err(KeyError::Encrypted {
                path: origin.to_owned(),
            });
        }
        match russh::keys::decode_secret_key(text, None) {
            Ok(key) if key.is_encrypted() => Err(KeyError::Encrypted {
                path: origin.to_owned(),
            }),
            Ok(key) => Ok(KeyPair {
                key: Arc::new(key),
                source: KeySource::File(origin.to_owned()),
            }),
            Err(russh::keys::Error::KeyIsEncrypted) => Err(KeyError::Encrypted {
                path: origin.to_owned(),
            }),
            Err(e) => Err(KeyError::Unsupported {
                path: origin.to_owned(),
                detail: e.to_string(),
            }),
        }
    }

    /// The file the key was loaded from (`None` for a generated key).
    pub fn source_path(&self) -> Option<&Path> {
        match &self.source {
            KeySource::Generated => None,
            KeySource::File(p) => Some(p),
        }
    }

    /// The key for russh.
    pub fn private_key(&self) -> &Arc<PrivateKey> {
        &self.key
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// The OpenSSH public key line, `ssh-ed25519 AAAA… kiln-<build>`, for
    /// `{{ .SSHPublicKey }}` and `authorized_keys`. No trailing newline.
    pub fn public_key_line(&self) -> Result<String, KeyError> {
        self.key
            .public_key()
            .to_openssh()
            .map_err(|source| KeyError::Encode {
                what: "public key",
                source,
            })
    }

    /// The base64 key blob (second field of the public key line): what
    /// identifies this key in an `authorized_keys` file whatever the comment
    /// or options.
    pub fn public_key_blob(&self) -> Result<String, KeyError> {
        let line = self.public_key_line()?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned())
    }

    /// SHA-256 fingerprint as OpenSSH prints it (`SHA256:…`).
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The private key in OpenSSH text form. Sensitive: for callers that
    /// must hand it to another program; prefer [`KeyPair::write_private_key`].
    pub fn private_key_openssh(&self) -> Result<String, KeyError> {
        self.key
            .to_openssh(LineEnding::LF)
            .map(|z| z.as_str().to_owned())
            .map_err(|source| KeyError::Encode {
                what: "private key",
                source,
            })
    }

    /// Writes the private key to `<tmp>/kiln-key-XXXX/id_<alg>` with mode
    /// 0600 (directory 0700). The directory is removed when the returned
    /// value is dropped.
    pub fn write_private_key(&self) -> Result<PrivateKeyFile, KeyError> {
        let dir = tempfile::Builder::new()
            .prefix("kiln-key-")
            .tempdir()
            .map_err(|source| KeyError::Write {
                path: std::env::temp_dir(),
                source,
            })?;
        let name = match self.key.algorithm() {
            ssh_key::Algorithm::Ed25519 => "id_ed25519",
            ssh_key::Algorithm::Rsa { .. } => "id_rsa",
            ssh_key::Algorithm::Ecdsa { .. } => "id_ecdsa",
            _ => "id_key",
        };
        let path = dir.path().join(name);
        let text = self
            .key
            .to_openssh(LineEnding::LF)
            .map_err(|source| KeyError::Encode {
                what: "private key",
                source,
            })?;
        write_private(&path, text.as_bytes()).map_err(|source| KeyError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(PrivateKeyFile { _dir: dir, path })
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

fn looks_encrypted(text: &str) -> bool {
    text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.lines().any(|l| l.trim() == "Proc-Type: 4,ENCRYPTED")
        || text
            .lines()
            .any(|l| l.starts_with("Encryption:") && l.trim() != "Encryption: none")
}

/// A private key written to disk for a debug `ssh -i` command; removed with
/// its directory on drop.
#[derive(Debug)]
pub struct PrivateKeyFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl PrivateKeyFile {
    /// Where the key is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod seed_tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_key() {
        let a = KeyPair::ed25519_from_seed(&[7u8; 32], "kiln").unwrap();
        let b = KeyPair::ed25519_from_seed(&[7u8; 32], "kiln").unwrap();
        let c = KeyPair::ed25519_from_seed(&[8u8; 32], "kiln").unwrap();
        assert_eq!(a.public_key_line().unwrap(), b.public_key_line().unwrap());
        assert_ne!(a.public_key_line().unwrap(), c.public_key_line().unwrap());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_parses_packer_values() {
        assert_eq!(
            "ed25519".parse::<KeyPairType>().unwrap(),
            KeyPairType::Ed25519
        );
        assert_eq!("rsa".parse::<KeyPairType>().unwrap(), KeyPairType::Rsa);
        assert_eq!("ecdsa".parse::<KeyPairType>().unwrap(), KeyPairType::Ecdsa);
        assert_eq!("dsa".parse::<KeyPairType>().unwrap(), KeyPairType::Dsa);
        let err = "RSA".parse::<KeyPairType>().unwrap_err();
        assert!(err.to_string().contains("`RSA`"), "{err}");
    }

    #[test]
    fn key_spec_follows_packer_bits_rules() {
        assert_eq!(
            plan_key_spec(KeyPairType::Ed25519, Some(1234)).unwrap(),
            KeySpec::Ed25519
        );
        assert_eq!(
            plan_key_spec(KeyPairType::Rsa, None).unwrap(),
            KeySpec::Rsa { bits: 4096 }
        );
        assert_eq!(
            plan_key_spec(KeyPairType::Rsa, Some(0)).unwrap(),
            KeySpec::Rsa { bits: 4096 }
        );
        assert_eq!(
            plan_key_spec(KeyPairType::Rsa, Some(2048)).unwrap(),
            KeySpec::Rsa { bits: 2048 }
        );
        assert!(matches!(
            plan_key_spec(KeyPairType::Rsa, Some(512)),
            Err(KeyError::InvalidBits { bits: 512, .. })
        ));
        assert_eq!(
            plan_key_spec(KeyPairType::Ecdsa, None).unwrap(),
            KeySpec::Ecdsa {
                curve: EcdsaCurve::NistP521
            }
        );
        assert_eq!(
            plan_key_spec(KeyPairType::Ecdsa, Some(256)).unwrap(),
            KeySpec::Ecdsa {
                curve: EcdsaCurve::NistP256
            }
        );
        assert!(plan_key_spec(KeyPairType::Ecdsa, Some(255)).is_err());
        assert!(matches!(
            plan_key_spec(KeyPairType::Dsa, None),
            Err(KeyError::DsaUnsupported)
        ));
    }

    #[test]
    fn generated_ed25519_public_line_has_comment() {
        let k = KeyPair::generate(KeyPairType::Ed25519, None, "kiln-test-build").unwrap();
        let line = k.public_key_line().unwrap();
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(fields[0], "ssh-ed25519");
        assert!(fields[1].starts_with("AAAA"), "{line}");
        assert_eq!(fields[2], "kiln-test-build");
        assert_eq!(k.public_key_blob().unwrap(), fields[1]);
        assert!(k.fingerprint().starts_with("SHA256:"));
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
    }

    #[test]
    fn generated_rsa_key_has_requested_size() {
        let k = KeyPair::generate(KeyPairType::Rsa, Some(2048), "c").unwrap();
        assert!(k.public_key_line().unwrap().starts_with("ssh-rsa AAAA"));
        match k.private_key().key_data() {
            KeypairData::Rsa(rsa) => assert_eq!(rsa.key_size(), 2048),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn generated_ecdsa_key_uses_curve() {
        let k = KeyPair::generate(KeyPairType::Ecdsa, Some(256), "c").unwrap();
        assert!(
            k.public_key_line()
                .unwrap()
                .starts_with("ecdsa-sha2-nistp256 ")
        );
    }

    #[test]
    fn written_private_key_is_0600_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let k = KeyPair::generate(KeyPairType::Ed25519, None, "c").unwrap();
        let file = k.write_private_key().unwrap();
        let path = file.path().to_owned();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let reloaded = KeyPair::load(&path).unwrap();
        assert_eq!(reloaded.fingerprint(), k.fingerprint());
        let dir = path.parent().unwrap().to_owned();
        drop(file);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }

    #[test]
    fn load_reports_missing_file_with_path() {
        let err = KeyPair::load(Path::new("/nonexistent/kiln/id_x")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/kiln/id_x"), "{err}");
    }

    #[test]
    fn load_refuses_garbage_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("junk");
        std::fs::write(&p, "hello\n").unwrap();
        let err = KeyPair::load(&p).unwrap_err();
        assert!(matches!(err, KeyError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains(p.to_str().unwrap()), "{err}");
    }

    #[test]
    fn encrypted_pem_headers_are_detected() {
        assert!(looks_encrypted(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n"
        ));
        assert!(looks_encrypted("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        assert!(!looks_encrypted("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
    }
}
