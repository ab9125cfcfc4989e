//! The QEMU command line, planned as Packer's `step_run.go` builds it
//! (`getDefaultArgs` + `applyUserOverrides`), as a pure function of the
//! config and the facts decided at run time (ports, paths, accelerator).
//!
//! Packer's rules kept exactly:
//! - defaults form a map of switch → values; a switch given in `qemuargs`
//!   replaces *every* default value of that switch (one `-drive` there drops
//!   all default drives, including the output disk and the `cd_files` CD);
//! - the values after a switch in one `qemuargs` element are joined with no
//!   separator; an empty joined value gives the bare switch;
//! - when the `-device`s in effect do not mention `net_device`, Packer adds
//!   `<net_device>,netdev=user.0` (hashicorp/packer#6804);
//! - `qemuargs` strings are templates: `{{ .HTTPIP }}`, `{{ .HTTPPort }}`,
//!   `{{ .HTTPDir }}`, `{{ .OutputDir }}`, `{{ .Name }}` (the vm_name),
//!   `{{ .SSHHostPort }}`.
//!
//! Where kiln differs on purpose:
//! - Packer emits switches in Go map order (random per run); kiln emits them
//!   in a fixed order (defaults first, then switches only `qemuargs` has, in
//!   the order written), so a plan is reproducible and diffable;
//! - the SSH port is forwarded on 127.0.0.1 only (`hostfwd=tcp:127.0.0.1:…`),
//!   not on every interface;
//! - VNC starts only when a `vnc_*` option asks for it (kiln types the boot
//!   command over QMP); headless without VNC gets `-display none`;
//! - the serial port goes to QEMU's stdout (`-serial stdio`), which kiln
//!   reads as the console (a `-serial` in `qemuargs` replaces it);
//! - kiln always adds its own QMP control socket after everything else
//!   (a second `-qmp`, so a user's `-qmp` does not take it away);
//! - an unknown `{{ .Field }}` is an error, not an empty string.

use crate::config::{Accelerator, Communicator, QemuConfig};
use crate::placeholders::{PlaceholderError, TemplateData, render};

/// What the caller decided before QEMU runs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeFacts {
    /// The accelerator to use (the config's, or the probe's choice).
    pub accelerator: Accelerator,
    /// Host port forwarded to the guest's SSH port (required with SSH).
    pub ssh_host_port: Option<u16>,
    /// Address of the HTTP server as the guest sees it (`10.0.2.2`).
    pub http_ip: String,
    /// Port of the HTTP server (0 when none runs).
    pub http_port: u16,
    /// VNC port, when the config enables VNC.
    pub vnc_port: Option<u16>,
    /// The downloaded ISO or source disk image.
    pub iso_path: Option<String>,
    /// The `cd_files`/`cd_content` ISO, if one was made.
    pub cd_path: Option<String>,
    /// The floppy image, if one was made.
    pub floppy_path: Option<String>,
    /// The UEFI code file (the config's, or found on the host) with `efi_boot`.
    pub efi_code: Option<String>,
    /// kiln's own QMP control socket (keep it short: at most 107 bytes).
    pub qmp_socket: String,
}

/// Where kiln reads the guest's serial console.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConsoleTap {
    /// The first serial port writes to QEMU's stdout.
    Stdout,
    /// `qemuargs` sent the serial port elsewhere: no console, no watchdog.
    Unavailable { reason: String },
}

/// The planned QEMU run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QemuPlan {
    pub program: String,
    pub args: Vec<String>,
    pub console: ConsoleTap,
    pub qmp_socket: String,
    /// The disks kiln creates, in order (main disk first).
    pub disk_paths: Vec<String>,
    /// Switches of `qemuargs` that replaced defaults, with the defaults dropped.
    pub replaced: Vec<Replaced>,
    /// Where kiln deliberately departs from Packer for this plan.
    pub notes: Vec<String>,
}

/// A default switch replaced by `qemuargs`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Replaced {
    pub switch: String,
    pub dropped: Vec<String>,
}

impl QemuPlan {
    /// Program and arguments.
    pub fn argv(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(self.args.len() + 1);
        v.push(self.program.clone());
        v.extend(self.args.iter().cloned());
        v
    }

    /// One argument per line, a switch and its value on one line (for
    /// reading and snapshots).
    pub fn to_lines(&self) -> String {
        let mut out = self.program.clone();
        let mut iter = self.args.iter().peekable();
        while let Some(arg) = iter.next() {
            out.push('\n');
            out.push_str(arg);
            if arg.starts_with('-')
                && let Some(next) = iter.peek()
                && !next.starts_with('-')
            {
                out.push(' ');
                out.push_str(next);
                iter.next();
            }
        }
        out
    }
}

/// A plan that cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("qemuargs[{index}]: {source}")]
    QemuArgs {
        index: usize,
        #[source]
        source: PlaceholderError,
    },
    #[error("boot command step {index}: {message}")]
    BootCommand { index: usize, message: String },
    #[error("plan needs {what}, which the caller did not provide")]
    MissingFact { what: &'static str },
    #[error("{0}")]
    Invalid(String),
}

/// The template data of `qemuargs`.
pub fn qemuargs_data(config: &QemuConfig, facts: &RuntimeFacts) -> TemplateData {
    let ssh_port = match config.communicator {
        Communicator::None => 0,
        Communicator::Ssh(_) => facts.ssh_host_port.unwrap_or(0),
    };
    TemplateData::new()
        .with("HTTPIP", &facts.http_ip)
        .with("HTTPPort", facts.http_port)
        .with("HTTPDir", config.http.directory.as_deref().unwrap_or(""))
        .with("OutputDir", &config.output_directory)
        .with("Name", &config.vm_name)
        .with("SSHHostPort", ssh_port)
}

/// The template data of `boot_command`/`boot_steps`: `{{ .HTTPIP }}`,
/// `{{ .HTTPPort }}`, `{{ .Name }}` and `{{ .SSHPublicKey }}` (the
/// authorized_keys line of the build's key; empty without one, as Packer).
pub fn boot_command_data(
    config: &QemuConfig,
    facts: &RuntimeFacts,
    ssh_public_key: Option<&str>,
) -> TemplateData {
    TemplateData::new()
        .with("HTTPIP", &facts.http_ip)
        .with("HTTPPort", facts.http_port)
        .with("Name", &config.vm_name)
        .with("SSHPublicKey", ssh_public_key.unwrap_or(""))
}

/// A boot step, rendered and parsed, ready to type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootStep {
    pub keys: Vec<crate::bootcmd::BootItem>,
    pub description: Option<String>,
    /// The rendered text (for logs).
    pub text: String,
}

/// Render and parse the boot command (Packer joins `boot_command` into one
/// string, renders it, then parses it).
pub fn plan_boot_steps(
    config: &QemuConfig,
    data: &TemplateData,
) -> Result<Vec<BootStep>, PlanError> {
    let mut steps = Vec::new();
    for (index, (raw, description)) in config.boot.steps_to_type().into_iter().enumerate() {
        let text = render(&raw, data).map_err(|source| PlanError::BootCommand {
            index,
            message: source.to_string(),
        })?;
        let keys = crate::bootcmd::parse(&text).map_err(|e| PlanError::BootCommand {
            index,
            message: e.to_string(),
        })?;
        crate::bootcmd::strokes(&keys).map_err(|e| PlanError::BootCommand {
            index,
            message: e.to_string(),
        })?;
        steps.push(BootStep {
            keys,
            description,
            text,
        });
    }
    Ok(steps)
}

/// Plan the QEMU command line.
pub fn plan_qemu(config: &QemuConfig, facts: &RuntimeFacts) -> Result<QemuPlan, PlanError> {
    let defaults = default_args(config, facts)?;
    let data = qemuargs_data(config, facts);

    // The user's switches, values joined per element, in written order.
    let mut user: Vec<(String, Vec<String>)> = Vec::new();
    for (index, element) in config.qemuargs.iter().enumerate() {
        let mut rendered = Vec::with_capacity(element.len());
        for part in element {
            rendered
                .push(render(part, &data).map_err(|source| PlanError::QemuArgs { index, source })?);
        }
        let Some((key, values)) = rendered.split_first() else {
            continue;
        };
        let value = values.concat();
        let slot = match user.iter().position(|(k, _)| k == key) {
            Some(i) => &mut user[i].1,
            None => {
                user.push((key.clone(), Vec::new()));
                &mut user.last_mut().ok_or(PlanError::Invalid("empty".into()))?.1
            }
        };
        if !value.is_empty() {
            slot.push(value);
        }
    }

    let mut merged: Vec<(String, Vec<String>)> = Vec::new();
    let mut replaced = Vec::new();
    for (key, values) in defaults {
        match user.iter().find(|(k, _)| *k == key) {
            Some((_, user_values)) => {
                replaced.push(Replaced {
                    switch: key.clone(),
                    dropped: values,
                });
                merged.push((key, user_values.clone()));
            }
            None => merged.push((key, values)),
        }
    }
    for (key, values) in &user {
        if !merged.iter().any(|(k, _)| k == key) {
            merged.push((key.clone(), values.clone()));
        }
    }

    // hashicorp/packer#6804: keep a NIC when the user's -device list lacks one.
    if let Some((_, devices)) = merged.iter_mut().find(|(k, _)| k == "-device")
        && !devices.concat().contains(&config.net_device)
    {
        devices.push(format!("{},netdev=user.0", config.net_device));
    }

    // A `-drive` in qemuargs drops every default drive, and with them the
    // `cd_files`/`cd_content` seed, whose path the template cannot know:
    // Packer then boots without it and SSH never comes up. kiln keeps the
    // seed attached unless qemuargs already name it.
    let mut notes = Vec::new();
    if let Some(cd) = &facts.cd_path
        && user.iter().any(|(k, _)| k == "-drive")
        && let Some((_, drives)) = merged.iter_mut().find(|(k, _)| k == "-drive")
        && !drives.iter().any(|d| d.contains(cd.as_str()))
    {
        drives.push(format!("file={cd},media=cdrom,readonly=on"));
        notes.push(
            "qemuargs re-declares `-drive`, which drops Packer's default drives; kiln keeps the `cd_files`/`cd_content` seed attached (Packer would boot without it)"
                .to_string(),
        );
    }

    let console = match user.iter().find(|(k, _)| k == "-serial") {
        None => ConsoleTap::Stdout,
        Some((_, values))
            if values
                .iter()
                .any(|v| v == "stdio" || v.starts_with("mon:stdio")) =>
        {
            ConsoleTap::Stdout
        }
        Some((_, values)) => ConsoleTap::Unavailable {
            reason: format!(
                "qemuargs sends the serial port to `{}`; kiln reads the console only from `-serial stdio`",
                values.join(", ")
            ),
        },
    };

    let mut args = Vec::new();
    for (key, values) in merged {
        if values.is_empty() {
            args.push(key);
        } else {
            for v in values {
                args.push(key.clone());
                args.push(v);
            }
        }
    }
    // kiln's control channel, never replaced.
    args.push("-qmp".into());
    args.push(format!("unix:{},server=on,wait=off", facts.qmp_socket));

    Ok(QemuPlan {
        program: config.qemu_binary.clone(),
        args,
        console,
        qmp_socket: facts.qmp_socket.clone(),
        disk_paths: config.disk_paths(),
        replaced,
        notes,
    })
}

/// Packer's default switches, in kiln's fixed order.
fn default_args(
    config: &QemuConfig,
    facts: &RuntimeFacts,
) -> Result<Vec<(String, Vec<String>)>, PlanError> {
    let mut d: Vec<(String, Vec<String>)> = Vec::new();
    let mut put = |key: &str, values: Vec<String>| d.push((key.to_string(), values));

    put("-name", vec![config.vm_name.clone()]);
    let machine = match facts.accelerator {
        Accelerator::None => format!("type={}", config.machine_type),
        accel => format!("type={},accel={accel}", config.machine_type),
    };
    put("-machine", vec![machine]);
    if let Some(cpu) = &config.cpu_model {
        put("-cpu", vec![cpu.clone()]);
    }
    put("-m", vec![format!("{}M", config.memory)]);
    put("-smp", vec![config.smp.arg()]);
    if let Some(fw) = &config.firmware
        && !config.use_pflash
    {
        put("-bios", vec![fw.clone()]);
    }
    if !config.efi.enabled {
        put(
            "-boot",
            vec![if config.disk_image { "c" } else { "once=d" }.to_string()],
        );
    }
    if let Some(floppy) = &facts.floppy_path {
        put("-fda", vec![floppy.clone()]);
    }

    let (devices, drives) = device_and_drive_args(config, facts)?;
    put("-drive", drives);
    put("-device", devices);

    let netdev = match (&config.communicator, facts.ssh_host_port) {
        (Communicator::None, _) => "user,id=user.0".to_string(),
        (Communicator::Ssh(ssh), Some(host_port)) => format!(
            "user,id=user.0,hostfwd=tcp:127.0.0.1:{host_port}-:{}",
            ssh.port
        ),
        (Communicator::Ssh(_), None) => {
            return Err(PlanError::MissingFact {
                what: "the host port forwarded to SSH (`ssh_host_port`)",
            });
        }
    };
    put("-netdev", vec![netdev]);

    if config.vnc.enabled {
        let port = facts.vnc_port.ok_or(PlanError::MissingFact {
            what: "the VNC port",
        })?;
        let display = port
            .checked_sub(5900)
            .ok_or_else(|| PlanError::Invalid(format!("VNC port {port} is below 5900")))?;
        let mut vnc = format!("{}:{display}", config.vnc.bind_address);
        if config.vnc.use_password {
            vnc.push_str(",password");
        }
        put("-vnc", vec![vnc]);
    }

    if !config.headless {
        match &config.display {
            Some(display) if display != "none" => put("-display", vec![display.clone()]),
            _ if !config.use_default_display => put("-display", vec!["gtk".into()]),
            _ => {}
        }
    } else if !config.vnc.enabled {
        put("-display", vec!["none".into()]);
    }
    if let Some(vga) = &config.vga {
        put("-vga", vec![vga.clone()]);
    }
    if let Some(path) = config
        .qmp_socket_path
        .as_ref()
        .filter(|_| config.qmp_enable)
    {
        put("-qmp", vec![format!("unix:{path},server,nowait")]);
    }
    put("-serial", vec!["stdio".into()]);
    Ok(d)
}

/// `getDeviceAndDriveArgs` of packer-plugin-qemu.
fn device_and_drive_args(
    config: &QemuConfig,
    facts: &RuntimeFacts,
) -> Result<(Vec<String>, Vec<String>), PlanError> {
    let mut devices = Vec::new();
    let mut drives = Vec::new();
    let mut scsi_index = 0usize;

    for (i, path) in config.disk_paths().iter().enumerate() {
        let mut drive = if config.disk_interface == "virtio-scsi" {
            if scsi_index == 0 {
                devices.push("virtio-scsi-pci,id=scsi0".to_string());
            }
            devices.push(format!("scsi-hd,bus=scsi0.0,drive=drive{i}"));
            scsi_index += 1;
            format!(
                "if=none,file={path},id=drive{i},cache={},discard={},format={}",
                config.disk_cache,
                config.disk_discard,
                config.format.as_str()
            )
        } else {
            format!(
                "file={path},if={},cache={},discard={},format={}",
                config.disk_interface,
                config.disk_cache,
                config.disk_discard,
                config.format.as_str()
            )
        };
        if config.disk_detect_zeroes != "off" {
            drive.push_str(&format!(",detect-zeroes={}", config.disk_detect_zeroes));
        }
        drives.push(drive);
    }

    devices.push(format!("{},netdev=user.0", config.net_device));

    let mut cd_paths = Vec::new();
    if !config.disk_image {
        let iso = facts.iso_path.clone().ok_or(PlanError::MissingFact {
            what: "the path of the downloaded ISO (`iso_path`)",
        })?;
        cd_paths.push(iso);
    }
    if let Some(cd) = facts.cd_path.as_ref().filter(|p| !p.is_empty()) {
        cd_paths.push(cd.clone());
    }
    for (i, path) in cd_paths.iter().enumerate() {
        match config.cdrom_interface.as_deref() {
            None => drives.push(format!("file={path},media=cdrom")),
            Some("virtio-scsi") => {
                if scsi_index == 0 {
                    devices.push("virtio-scsi-pci,id=scsi0".to_string());
                }
                drives.push(format!(
                    "file={path},if=none,index={scsi_index},id=cdrom{i},media=cdrom"
                ));
                devices.push("virtio-scsi-device".to_string());
                devices.push(format!("scsi-cd,drive=cdrom{i}"));
                scsi_index += 1;
            }
            Some(interface) => drives.push(format!(
                "file={path},if={interface},index={i},id=cdrom{i},media=cdrom"
            )),
        }
    }

    if let Some(fw) = &config.firmware
        && config.use_pflash
    {
        drives.push(format!("file={fw},if=pflash,format=raw,readonly=on"));
    }
    if config.efi.enabled {
        let code = facts
            .efi_code
            .clone()
            .or_else(|| config.efi.code.clone())
            .ok_or(PlanError::MissingFact {
                what: "the UEFI code file (`efi_code`)",
            })?;
        drives.push(format!(
            "file={code},if=pflash,unit=0,format=raw,readonly=on"
        ));
        drives.push(format!(
            "file={},if=pflash,unit=1,format=raw",
            config.efivars_path()
        ));
    }
    Ok((devices, drives))
}

#[cfg(test)]
mod tests;
