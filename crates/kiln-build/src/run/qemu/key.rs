//! `ssh_key`: the key kiln logs into the guest with — the template's
//! `ssh_private_key_file`, a key stable per step cache (a guest
//! restored from a checkpoint trusts the key of its first boot), or a
//! throwaway one. Its private half joins the redactor's secrets at once.

use std::path::Path;

use kiln_qemu::QemuConfig;
use kiln_ssh::{KeyPair, KeyPairType};

use crate::cache::store::Store;
use crate::pipeline::{BoxError, Pipeline, StepError};
use crate::step::StepId;

pub(super) struct SshKey<'a> {
    pub cfg: &'a QemuConfig,
    pub cwd: &'a Path,
    /// The step cache's store, when this build uses it.
    pub store: Option<&'a Store>,
}

/// The build's key (none with `communicator = "none"`).
pub(super) struct BuildKey {
    pub pair: Option<KeyPair>,
    /// Its `authorized_keys` line.
    public: Option<String>,
}

impl BuildKey {
    pub fn public_line(&self) -> Option<&str> {
        self.public.as_deref()
    }

    /// The private key in OpenSSH form, unless the user gave it as a file.
    pub fn generated_private(&self) -> Result<Option<String>, StepError> {
        match &self.pair {
            Some(k) if k.source_path().is_none() => k
                .private_key_openssh()
                .map(Some)
                .map_err(|e| StepError::failed(StepId::SshKey, e)),
            _ => Ok(None),
        }
    }
}

impl SshKey<'_> {
    pub async fn run(self, p: &mut Pipeline) -> Result<BuildKey, StepError> {
        let Some(ssh) = self.cfg.ssh() else {
            return Ok(BuildKey {
                pair: None,
                public: None,
            });
        };
        let comment = format!("kiln_{}", self.cfg.name);
        let pair = p
            .step(StepId::SshKey, async {
                let pair = match (&ssh.private_key_file, self.store) {
                    (Some(path), _) => KeyPair::load(&self.cwd.join(path))?,
                    (None, Some(store)) => {
                        let seed = super::super::cached::build_key_seed(store)?;
                        KeyPair::ed25519_from_seed(&seed, &comment)?
                    }
                    (None, None) => {
                        let kind: KeyPairType = ssh.temporary_key_pair_type.parse()?;
                        KeyPair::generate(kind, ssh.temporary_key_pair_bits, &comment)?
                    }
                };
                Ok::<_, BoxError>(pair)
            })
            .await?;
        let public = pair
            .public_key_line()
            .map_err(|e| StepError::failed(StepId::SshKey, e))?;
        let key = BuildKey {
            pair: Some(pair),
            public: Some(public),
        };
        if let Some(private) = key.generated_private()? {
            p.ev.events.add_secrets([private]);
        }
        Ok(key)
    }
}
