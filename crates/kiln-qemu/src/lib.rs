//! kiln-qemu: Packer's `source "qemu"` for kiln — the typed config and its
//! schema, pure planners for the QEMU command line and the `qemu-img`
//! commands, the boot command (parser, key mapping, typing over QMP), a QMP
//! client, QEMU process supervision with a serial-console tap and a boot
//! watchdog, the accelerator probe, UEFI firmware lookup, and seed media
//! (ISO 9660 with Rock Ridge and Joliet, FAT12 floppies) written in-process.
//!
//! It knows nothing of HCL syntax: it decodes evaluated blocks from
//! `kiln-template`.

pub mod accel;
pub mod argv;
pub mod bootcmd;
pub mod cdrom;
pub mod config;
pub mod disk;
pub mod emulate;
pub mod firmware;
pub mod floppy;
pub mod optstr;
pub mod placeholders;
pub mod plan;
pub mod process;
pub mod qmp;
pub mod schema;
pub mod typing;

#[cfg(test)]
mod testutil;

pub use config::{Accelerator, QemuConfig};
pub use disk::{DiskCommand, DiskPlan, plan_disk};
pub use plan::{QemuPlan, RuntimeFacts, plan_qemu};
