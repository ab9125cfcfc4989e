//! A build's steps as a type, and the one list of the steps a build runs.
//!
//! The names are Packer's (`create_disk`, `run_qemu`, `wait_ssh`, …) and
//! are what events, build records, the step cache, `kiln plan` and
//! `--from`/`--until` show and read. [`build_steps`] is the list; the
//! runner checks that it runs its steps in that order
//! ([`crate::pipeline::Pipeline::expect`]).

use std::fmt;
use std::str::FromStr;

use crate::spec::{BuildSpec, SourceSpec};

/// One step of a build.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StepId {
    SshKey,
    Download,
    PrepareOutputDir,
    HttpServer,
    CreateCd,
    CreateFloppy,
    PrepareEfivars,
    PortForward,
    CreateDisk,
    CopyDisk,
    ResizeDisk,
    ConvertDisk,
    CacheLookup,
    RunQemu,
    /// The step cache's alternative to `run_qemu`: a VM resumed from a
    /// checkpoint.
    ResumeVm,
    TypeBootCommand,
    WaitSsh,
    /// Provisioner `number` (1-based) of `total`, with its label (`shell`,
    /// `shell (name)`).
    Provision {
        number: usize,
        total: usize,
        label: String,
    },
    /// Runs only after a provisioner failed: never in a build's list.
    ErrorCleanupProvisioner,
    ClearAuthorizedKeys,
    Scrub,
    Shutdown,
    /// Post-processor `index` (1-based) of chain `chain` (1-based).
    PostProcessor {
        chain: usize,
        index: usize,
        label: String,
    },
}

/// The steps named by a single word, with their names.
const SIMPLE: &[(StepId, &str)] = &[
    (StepId::SshKey, "ssh_key"),
    (StepId::Download, "download"),
    (StepId::PrepareOutputDir, "prepare_output_dir"),
    (StepId::HttpServer, "http_server"),
    (StepId::CreateCd, "create_cd"),
    (StepId::CreateFloppy, "create_floppy"),
    (StepId::PrepareEfivars, "prepare_efivars"),
    (StepId::PortForward, "port_forward"),
    (StepId::CreateDisk, "create_disk"),
    (StepId::CopyDisk, "copy_disk"),
    (StepId::ResizeDisk, "resize_disk"),
    (StepId::ConvertDisk, "convert_disk"),
    (StepId::CacheLookup, "cache_lookup"),
    (StepId::RunQemu, "run_qemu"),
    (StepId::ResumeVm, "resume_vm"),
    (StepId::TypeBootCommand, "type_boot_command"),
    (StepId::WaitSsh, "wait_ssh"),
    (StepId::ErrorCleanupProvisioner, "error-cleanup-provisioner"),
    (StepId::ClearAuthorizedKeys, "clear_authorized_keys"),
    (StepId::Scrub, "scrub"),
    (StepId::Shutdown, "shutdown"),
];

impl StepId {
    /// Provisioner `i` (0-based) of `spec`.
    pub fn provision(spec: &BuildSpec, i: usize) -> StepId {
        StepId::Provision {
            number: i + 1,
            total: spec.provisioners.len(),
            label: spec
                .provisioners
                .get(i)
                .map(|p| p.label())
                .unwrap_or_default(),
        }
    }

    /// The disk step of a `qemu-img` (or copy) command.
    pub fn of_disk(step: kiln_qemu::disk::DiskStep) -> StepId {
        use kiln_qemu::disk::DiskStep;
        match step {
            DiskStep::CreateDisk => StepId::CreateDisk,
            DiskStep::CopyDisk => StepId::CopyDisk,
            DiskStep::ResizeDisk => StepId::ResizeDisk,
            DiskStep::ConvertDisk => StepId::ConvertDisk,
        }
    }

    /// Whether running `self` fills the place of `listed` in a build's
    /// list: a resumed VM stands where the list says `run_qemu`.
    pub fn fills(&self, listed: &StepId) -> bool {
        self == listed || (*self == StepId::ResumeVm && *listed == StepId::RunQemu)
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepId::Provision {
                number,
                total,
                label,
            } => write!(f, "provision {number}/{total} {label}"),
            StepId::PostProcessor {
                chain,
                index,
                label,
            } => write!(f, "post-processor {chain}.{index} {label}"),
            simple => {
                let name = SIMPLE
                    .iter()
                    .find(|(id, _)| id == simple)
                    .map_or("?", |(_, name)| name);
                f.write_str(name)
            }
        }
    }
}

/// A text that names no step.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a step name")]
pub struct UnknownStep(pub String);

impl FromStr for StepId {
    type Err = UnknownStep;

    fn from_str(text: &str) -> Result<StepId, UnknownStep> {
        let unknown = || UnknownStep(text.to_string());
        if let Some((id, _)) = SIMPLE.iter().find(|(_, name)| *name == text) {
            return Ok(id.clone());
        }
        if let Some(rest) = text.strip_prefix("provision ") {
            let (count, label) = rest.split_once(' ').ok_or_else(unknown)?;
            let (number, total) = count.split_once('/').ok_or_else(unknown)?;
            return Ok(StepId::Provision {
                number: number.parse().map_err(|_| unknown())?,
                total: total.parse().map_err(|_| unknown())?,
                label: label.to_string(),
            });
        }
        if let Some(rest) = text.strip_prefix("post-processor ") {
            let (place, label) = rest.split_once(' ').ok_or_else(unknown)?;
            let (chain, index) = place.split_once('.').ok_or_else(unknown)?;
            return Ok(StepId::PostProcessor {
                chain: chain.parse().map_err(|_| unknown())?,
                index: index.parse().map_err(|_| unknown())?,
                label: label.to_string(),
            });
        }
        Err(unknown())
    }
}

/// Written as its name in events, records and plans.
impl serde::Serialize for StepId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Whether a `qemu` build runs through the step cache: its VM then starts
/// in `cache_lookup` + `run_qemu`/`resume_vm` on overlays, and its output
/// disks are written by one `convert_disk` from the overlay chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheUse {
    On,
    Off,
}

impl CacheUse {
    /// What a build does unless the run turns the cache off (`--no-cache`,
    /// a store that cannot open, a command line it cannot take): `kiln
    /// plan`'s view.
    pub fn by_default(spec: &BuildSpec) -> CacheUse {
        match &spec.source {
            SourceSpec::Qemu(q) if crate::cache::applies(q).is_ok() => CacheUse::On,
            _ => CacheUse::Off,
        }
    }
}

/// The steps a build runs when it succeeds, in order. What depends on the
/// run alone is left out or stands for its alternatives: a resumed VM's
/// `resume_vm` takes the place of `run_qemu` and skips
/// `type_boot_command`; `error-cleanup-provisioner` runs only after a
/// failure.
pub fn build_steps(spec: &BuildSpec, cache: CacheUse) -> Vec<StepId> {
    let mut steps = Vec::new();
    let qemu = match &spec.source {
        SourceSpec::Qemu(q) => Some(q.as_ref()),
        SourceSpec::Null(_) => None,
    };
    if let Some(q) = qemu {
        let ssh = q.ssh();
        if ssh.is_some() {
            steps.push(StepId::SshKey);
        }
        if !q.iso_urls.is_empty() {
            steps.push(StepId::Download);
        }
        steps.push(StepId::PrepareOutputDir);
        if q.http.enabled() {
            steps.push(StepId::HttpServer);
        }
        if q.media.has_cd() {
            steps.push(StepId::CreateCd);
        }
        if q.media.has_floppy() {
            steps.push(StepId::CreateFloppy);
        }
        if q.efi.enabled {
            steps.push(StepId::PrepareEfivars);
        }
        if ssh.is_some() && !q.host_port.skip_nat_mapping {
            steps.push(StepId::PortForward);
        }
        let disks = disk_steps(q);
        match cache {
            CacheUse::On => steps.push(StepId::CacheLookup),
            CacheUse::Off => steps.extend(disks.before_boot),
        }
        steps.push(StepId::RunQemu);
        if !q.boot.steps_to_type().is_empty() {
            steps.push(StepId::TypeBootCommand);
        }
        if ssh.is_some() {
            steps.push(StepId::WaitSsh);
        }
        steps.extend((0..spec.provisioners.len()).map(|i| StepId::provision(spec, i)));
        if ssh.is_some_and(|s| s.clear_authorized_keys) {
            steps.push(StepId::ClearAuthorizedKeys);
        }
        if ssh.is_some() && spec.needs_guest_scrub() {
            steps.push(StepId::Scrub);
        }
        steps.push(StepId::Shutdown);
        match cache {
            CacheUse::On => steps.push(StepId::ConvertDisk),
            CacheUse::Off => steps.extend(disks.after_shutdown),
        }
    } else {
        if let SourceSpec::Null(n) = &spec.source
            && n.ssh.is_some()
        {
            steps.push(StepId::WaitSsh);
        }
        steps.extend((0..spec.provisioners.len()).map(|i| StepId::provision(spec, i)));
    }
    for (c, chain) in spec.post_processors.iter().enumerate() {
        for (i, pp) in chain.iter().enumerate() {
            steps.push(StepId::PostProcessor {
                chain: c + 1,
                index: i + 1,
                label: pp.label(),
            });
        }
    }
    steps
}

struct DiskSteps {
    before_boot: Vec<StepId>,
    after_shutdown: Vec<StepId>,
}

/// The disk steps of an uncached build, from the pure disk planner (the
/// source image's path does not change which commands run). A config the
/// planner refuses fails at `create_disk`.
fn disk_steps(q: &kiln_qemu::QemuConfig) -> DiskSteps {
    let source = kiln_qemu::disk::SourceImage {
        path: "/source-image",
        format: None,
    };
    match kiln_qemu::plan_disk(q, Some(source)) {
        Ok(plan) => DiskSteps {
            before_boot: plan
                .before_boot
                .iter()
                .map(|c| StepId::of_disk(c.step()))
                .collect(),
            after_shutdown: plan
                .after_shutdown
                .iter()
                .map(|c| StepId::of_disk(c.step()))
                .collect(),
        },
        Err(_) => DiskSteps {
            before_boot: vec![StepId::CreateDisk],
            after_shutdown: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_its_step() {
        let mut all: Vec<StepId> = SIMPLE.iter().map(|(id, _)| id.clone()).collect();
        all.push(StepId::Provision {
            number: 2,
            total: 4,
            label: "shell (install packages)".into(),
        });
        all.push(StepId::PostProcessor {
            chain: 1,
            index: 2,
            label: "maas-tgz".into(),
        });
        for id in all {
            let name = id.to_string();
            assert_eq!(name.parse::<StepId>(), Ok(id), "{name}");
        }
        assert_eq!(
            StepId::Provision {
                number: 1,
                total: 3,
                label: "shell".into()
            }
            .to_string(),
            "provision 1/3 shell"
        );
        assert!("provision".parse::<StepId>().is_err());
        assert!("provision x/3 shell".parse::<StepId>().is_err());
        assert!("boot".parse::<StepId>().is_err());
    }

    #[test]
    fn a_resumed_vm_fills_the_place_of_run_qemu() {
        assert!(StepId::ResumeVm.fills(&StepId::RunQemu));
        assert!(StepId::RunQemu.fills(&StepId::RunQemu));
        assert!(!StepId::RunQemu.fills(&StepId::ResumeVm));
    }

    #[test]
    fn step_ids_serialize_as_their_names() {
        assert_eq!(
            serde_json::to_string(&StepId::WaitSsh).unwrap(),
            "\"wait_ssh\""
        );
    }
}
