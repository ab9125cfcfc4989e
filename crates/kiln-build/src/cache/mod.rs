//! The step cache: content-addressed VM checkpoints so a rebuild restarts
//! from the last unchanged step.
//!
//! - [`key`]: cache keys, pure — the base key over the base image and the
//!   shaping source fields, a step key chained onto the previous one; and
//!   the QEMU facts that go into them (version, pinned machine type).
//! - [`store`]: entries on disk (frozen qcow2 overlays chained by absolute
//!   backing paths, UEFI variables, saved VM state, metadata), atomic
//!   publish, locking, LRU prune of leaves, an automatic size limit.
//! - [`checkpoint`]: a build VM whose disks live in the store; checkpoint
//!   it while it runs (pause about a second), resume from an entry by
//!   restoring its state (seconds) or booting its disks (a full boot).
//! - [`argv`]: the planned QEMU command line as a [`VmTemplate`], its
//!   per-run parts found by slot and written as `{kiln:…}` tokens.
//! - [`fmt`]: the data behind `kiln cache ls|du|prune`.
//!
//! How the pipeline uses it: compute the base key, look up the longest
//! chain of cached keys, [`checkpoint::Vm::resume`] from its last entry (or
//! [`checkpoint::Vm::boot`] on the base image), run the remaining steps,
//! and [`checkpoint::Vm::checkpoint`] after each cacheable one (after
//! `sync` in the guest).

pub(crate) mod argv;
pub mod checkpoint;
pub mod fmt;
pub mod key;
pub mod store;

#[cfg(test)]
mod vm_tests;

pub use checkpoint::{
    BaseDisk, CheckpointError, CheckpointOutcome, CheckpointReport, CheckpointRequest, FinishedVm,
    ResumeMode, ResumeReport, Resumed, Vm, VmSetup, VmTemplate, clock_sync_command,
};
pub use key::{
    BaseKeyInputs, CacheKey, FileInput, KeyError, MachineTypes, QemuHost, QemuVersion,
    SHORT_KEY_LEN, StepKeyInputs, base_key, step_key,
};
pub use store::{
    DEFAULT_SIZE_LIMIT, DamagedEntry, Entry, EntryInfo, EntryMeta, Lease, Listing, PrunePolicy,
    PruneReport, Store, StoreError, Usage, root_in,
};

/// Whether the step cache can take a `qemu` build, or why not: it moves
/// the guest's network and checkpoints over SSH.
pub fn applies(cfg: &kiln_qemu::QemuConfig) -> Result<(), &'static str> {
    use kiln_qemu::config::Communicator;
    match &cfg.communicator {
        Communicator::Ssh(_) if !cfg.host_port.skip_nat_mapping => Ok(()),
        Communicator::Ssh(_) => {
            Err("`ssh_skip_nat_mapping` is set: kiln cannot move the guest's network")
        }
        _ => Err("the communicator is not SSH: no step can be checkpointed"),
    }
}
