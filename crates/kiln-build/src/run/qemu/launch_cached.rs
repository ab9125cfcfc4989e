//! The launch through the step cache: `cache_lookup` computes the build's
//! keys and finds its longest cached prefix; `run_qemu` boots a VM whose
//! disks are overlays in the store, or `resume_vm` restores the last
//! cached checkpoint (the provisioners it covers are recorded as cached).
//! See [`crate::run::cached`] for the keys and the checkpoints.

use std::path::{Path, PathBuf};

use kiln_qemu::QemuConfig;
use kiln_qemu::plan::QemuPlan;

use super::launch::Launch;
use crate::cache::checkpoint::Resumed;
use crate::cache::key::CacheKey;
use crate::cache::store::Store;
use crate::events::{BuildEvents, StepOutcome};
use crate::pipeline::{Pipeline, StepError};
use crate::run::cached::{self, CacheOptions, CacheRun, Tokenized};
use crate::spec::BuildSpec;
use crate::step::StepId;

pub(super) struct Cached {
    store: Store,
    options: CacheOptions,
    /// The planned command line as the cache's VM template.
    tokenized: Option<Tokenized>,
}

/// A VM started by the cache.
pub(super) struct Started {
    pub run: CacheRun,
    /// Resumed after this key index, and how.
    pub resumed: Option<(usize, Resumed)>,
    /// The provisioners a resume skipped, recorded as cached once SSH is
    /// up (their place in the build's list).
    pub skipped: Vec<(StepId, StepOutcome)>,
}

impl Cached {
    /// The store, when the run uses the cache and this build can.
    pub fn open(
        cfg: &QemuConfig,
        opts: &crate::run::RunOptions,
        ev: &BuildEvents,
    ) -> Option<Cached> {
        let options = opts.cache.clone()?;
        if let Err(why) = crate::cache::applies(cfg) {
            ev.say(format!("Step cache off for this build: {why}"));
            return None;
        }
        match Store::open(&options.root) {
            Ok(store) => Some(Cached {
                store,
                options,
                tokenized: None,
            }),
            Err(e) => {
                ev.warn(format!("no step cache: {e}"));
                None
            }
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The command line as a VM template, or why the cache cannot take it.
    pub fn take_argv(self, plan: &QemuPlan, cwd: &Path) -> Result<Cached, String> {
        let tokenized = cached::tokenize(plan, cwd).map_err(|e| e.to_string())?;
        Ok(Cached {
            tokenized: Some(tokenized),
            ..self
        })
    }

    /// `cache_lookup`, then `run_qemu` or `resume_vm`.
    pub async fn start(
        self,
        b: &Launch<'_>,
        console_log: PathBuf,
        p: &mut Pipeline,
    ) -> Result<Started, StepError> {
        let Cached {
            store,
            options,
            tokenized,
        } = self;
        let tokenized = tokenized.ok_or_else(|| {
            StepError::msg(StepId::CacheLookup, "the command line was not taken over")
        })?;
        let cwd = b.opts.cwd.as_path();
        let source = b.source.absolute.as_deref().map(Path::new);
        let found = p
            .step(
                StepId::CacheLookup,
                cached::lookup(
                    &store,
                    cached::LookupInput {
                        spec: b.spec,
                        cfg: b.cfg,
                        options: &options,
                        cwd,
                        tokenized,
                        source,
                        source_digest: b.source.verified_digest(),
                        accelerator: b.accelerator.as_str(),
                    },
                ),
            )
            .await?;
        if let Some(why) = &found.boundary {
            p.ev.say(format!("Step cache: {why}"));
        }
        if let Some((j, entry)) = &found.hit {
            p.ev.say(format!(
                "Step cache: reusing {} ({})",
                found.names[*j],
                entry.key.short()
            ));
            if let Some((until, step)) = &found.until
                && until <= j
            {
                for (step, outcome) in cached_provisioners(b.spec, &found.keys, *until) {
                    p.record(step, outcome);
                }
                return Err(StepError::Stopped { step: step.clone() });
            }
        } else {
            p.ev.say("Step cache: nothing cached for this build yet");
        }
        let setup = cached::setup(
            &found.tokenized,
            found.host.clone(),
            console_log,
            cwd,
            &options.sensitive,
        );
        let step = if found.hit.is_some() {
            StepId::ResumeVm
        } else {
            StepId::RunQemu
        };
        let (vm, started) = p
            .step(
                step,
                cached::start(
                    &store,
                    setup,
                    &found.base,
                    found.hit.as_ref(),
                    b.cfg.disk_image,
                ),
            )
            .await?;
        let mut resumed = None;
        let mut skipped = Vec::new();
        if let cached::Started::Resumed {
            index,
            key,
            how,
            fallback,
        } = &started
        {
            if let Some(why) = fallback {
                p.ev.warn(format!(
                    "the saved VM state was not used ({why}): booting the cached disk"
                ));
            }
            p.ev.say(format!(
                "Resumed after {} from {} ({})",
                found.names[*index],
                key.short(),
                match how {
                    Resumed::State => "saved state",
                    Resumed::Cold => "cold boot of the cached disk",
                }
            ));
            skipped = cached_provisioners(b.spec, &found.keys, *index);
            resumed = Some((*index, *how));
        }
        Ok(Started {
            run: CacheRun {
                store,
                vm,
                keys: found.keys,
                names: found.names,
                build: b.spec.name.clone(),
                until: found.until,
                publishing: true,
                vars_out: found.tokenized.vars.clone(),
                base_format: found.base.first().map(|b| b.format.clone()),
            },
            resumed,
            skipped,
        })
    }
}

/// The steps a resume skips: provisioners 1..=`index`, cached.
fn cached_provisioners(
    spec: &BuildSpec,
    keys: &[CacheKey],
    index: usize,
) -> Vec<(StepId, StepOutcome)> {
    (0..index)
        .map(|i| {
            let key = keys
                .get(i + 1)
                .map(|k| k.short().to_string())
                .unwrap_or_default();
            (StepId::provision(spec, i), StepOutcome::Cached { key })
        })
        .collect()
}
