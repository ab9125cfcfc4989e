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
//! - an unknown `{{ .Field }}` is an error, not an empty string;
//! - a file name kiln puts into an option string has its commas doubled
//!   (`file=out,,1/disk`), as QEMU reads them; Packer splices it raw, and
//!   QEMU splits the name there. Config strings Packer splices as options
//!   (`machine_type`, `disk_interface`, `net_device`…) stay as written.
//!
//! The plan is a list of [`QemuArg`]s, each with the [`Slot`] it fills and
//! the files it names; `qemuargs` that re-declare kiln's drives (the
//! disks, both pflash drives) are recognised by their files and fill the
//! same slots. The strings QEMU gets are rendered from that list.

use crate::argv::{self, ArgSource, ArgValue, Media, QemuArg, Slot, canonical, join_qemuargs};
use crate::config::{Accelerator, Communicator, QemuConfig, clean_path};
use crate::optstr::OptionString;
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
    /// The arguments with what each one is; [`QemuPlan::args`] renders them.
    pub arguments: Vec<QemuArg>,
    pub console: ConsoleTap,
    pub qmp_socket: String,
    /// The host port forwarded to the guest's SSH, when there is one.
    pub ssh_host_port: Option<u16>,
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
    /// The arguments as QEMU gets them.
    pub fn args(&self) -> Vec<String> {
        argv::render(&self.arguments)
    }

    /// Program and arguments.
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![self.program.clone()];
        v.extend(self.args());
        v
    }

    /// One argument per line, a switch and its value on one line (for
    /// reading and snapshots).
    pub fn to_lines(&self) -> String {
        let mut out = self.program.clone();
        for arg in &self.arguments {
            out.push('\n');
            out.push_str(&arg.switch);
            if let Some(value) = &arg.value {
                out.push(' ');
                out.push_str(&value.to_string());
            }
        }
        out
    }

    /// The arguments that fill `slot`.
    pub fn slot(&self, slot: Slot) -> impl Iterator<Item = &QemuArg> {
        self.arguments.iter().filter(move |a| a.slot == slot)
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
    let known = Known::new(config, facts);

    let user = user_groups(config, &data, &known)?;

    let mut merged: Vec<Group> = Vec::new();
    let mut replaced = Vec::new();
    for group in defaults {
        match user.iter().find(|g| g.switch == group.switch) {
            Some(mine) => {
                replaced.push(Replaced {
                    switch: group.switch.clone(),
                    dropped: group.values.iter().map(QemuArg::value_text).collect(),
                });
                merged.push(mine.clone());
            }
            None => merged.push(group),
        }
    }
    for group in &user {
        if !merged.iter().any(|g| g.switch == group.switch) {
            merged.push(group.clone());
        }
    }

    // hashicorp/packer#6804: keep a NIC when the user's -device list lacks one.
    if let Some(devices) = merged.iter_mut().find(|g| g.switch == "-device")
        && !devices
            .values
            .iter()
            .map(QemuArg::value_text)
            .collect::<String>()
            .contains(&config.net_device)
    {
        devices.values.push(nic(config));
    }

    // A `-drive` in qemuargs drops every default drive, and with them the
    // `cd_files`/`cd_content` seed, whose path the template cannot know:
    // Packer then boots without it and SSH never comes up. kiln keeps the
    // seed attached unless qemuargs already name it.
    let mut notes = Vec::new();
    let seed = Slot::Seed { media: Media::Cd };
    if let Some(cd) = &facts.cd_path
        && user.iter().any(|g| g.switch == "-drive")
        && let Some(drives) = merged.iter_mut().find(|g| g.switch == "-drive")
        && !drives.values.iter().any(|d| d.slot == seed)
    {
        let value = OptionString::new()
            .with("file", cd.as_str())
            .with("media", "cdrom")
            .with("readonly", "on");
        drives.values.push(QemuArg::new(
            "-drive",
            ArgValue::Options(value),
            seed,
            ArgSource::Kiln,
        ));
        notes.push(
            "qemuargs re-declares `-drive`, which drops Packer's default drives; kiln keeps the `cd_files`/`cd_content` seed attached (Packer would boot without it)"
                .to_string(),
        );
    }

    let console = match user.iter().find(|g| g.switch == "-serial") {
        None => ConsoleTap::Stdout,
        Some(group) => {
            let values: Vec<String> = group.values.iter().map(QemuArg::value_text).collect();
            if values
                .iter()
                .any(|v| v == "stdio" || v.starts_with("mon:stdio"))
            {
                ConsoleTap::Stdout
            } else {
                ConsoleTap::Unavailable {
                    reason: format!(
                        "qemuargs sends the serial port to `{}`; kiln reads the console only from `-serial stdio`",
                        values.join(", ")
                    ),
                }
            }
        }
    };

    let mut arguments = Vec::new();
    for group in merged {
        if group.values.is_empty() {
            arguments.push(QemuArg::bare(&group.switch, group.source));
        } else {
            arguments.extend(group.values);
        }
    }
    // kiln's control channel, never replaced.
    let qmp = OptionString::new()
        .bare(format!("unix:{}", facts.qmp_socket))
        .with("server", "on")
        .with("wait", "off");
    arguments.push(QemuArg::new(
        "-qmp",
        ArgValue::Options(qmp),
        Slot::Qmp,
        ArgSource::Kiln,
    ));

    Ok(QemuPlan {
        program: config.qemu_binary.clone(),
        arguments,
        console,
        qmp_socket: facts.qmp_socket.clone(),
        ssh_host_port: match config.communicator {
            Communicator::None => None,
            Communicator::Ssh(_) => facts.ssh_host_port,
        },
        disk_paths: config.disk_paths(),
        replaced,
        notes,
    })
}

/// The user's switches, values rendered and joined per element, grouped by
/// switch in written order.
fn user_groups(
    config: &QemuConfig,
    data: &TemplateData,
    known: &Known<'_>,
) -> Result<Vec<Group>, PlanError> {
    let mut rendered = Vec::with_capacity(config.qemuargs.len());
    for (index, element) in config.qemuargs.iter().enumerate() {
        let mut parts = Vec::with_capacity(element.len());
        for part in element {
            parts.push(render(part, data).map_err(|source| PlanError::QemuArgs { index, source })?);
        }
        rendered.push(parts);
    }
    let mut user: Vec<Group> = Vec::new();
    for element in join_qemuargs(&rendered) {
        let source = ArgSource::Qemuargs {
            index: element.index,
        };
        let at = match user.iter().position(|g| g.switch == element.switch) {
            Some(i) => i,
            None => {
                user.push(Group::new(&element.switch, source));
                user.len() - 1
            }
        };
        if !element.value.is_empty() {
            let arg = known.classify(&element.switch, element.parsed(), source);
            user[at].values.push(arg);
        }
    }
    Ok(user)
}

/// The values of one switch: Packer's defaults and `qemuargs` are maps of
/// switch → values, and a switch given in `qemuargs` replaces the group.
#[derive(Clone, Debug)]
struct Group {
    switch: String,
    /// Who named the switch (for a bare switch, which has no value).
    source: ArgSource,
    values: Vec<QemuArg>,
}

impl Group {
    fn new(switch: &str, source: ArgSource) -> Group {
        Group {
            switch: switch.to_string(),
            source,
            values: Vec::new(),
        }
    }
}

/// What the planner knows of the files and ports of this run, to tell
/// which `qemuargs` entries re-declare kiln's own slots (packer-maas
/// declares both pflash drives and every disk there).
struct Known<'a> {
    /// The build's disks, cleaned as Go's `filepath.Clean`.
    disks: Vec<String>,
    facts: &'a RuntimeFacts,
}

impl<'a> Known<'a> {
    fn new(config: &QemuConfig, facts: &'a RuntimeFacts) -> Known<'a> {
        Known {
            disks: config.disk_paths().iter().map(|d| clean_path(d)).collect(),
            facts,
        }
    }

    /// A `qemuargs` value with the slot it fills.
    fn classify(&self, switch: &str, value: ArgValue, source: ArgSource) -> QemuArg {
        let slot = match (canonical(switch), &value) {
            ("-drive", ArgValue::Options(opts)) => self.drive_slot(opts),
            ("-machine" | "-M", _) => Slot::Machine,
            ("-serial", _) => Slot::Serial,
            ("-bios", _) => Slot::Bios,
            ("-fda", ArgValue::Text(path)) if Some(path) == self.facts.floppy_path.as_ref() => {
                Slot::Seed {
                    media: Media::Floppy,
                }
            }
            ("-netdev" | "-nic", ArgValue::Options(opts)) => self.forward_slot(opts),
            ("-vnc", ArgValue::Options(opts)) => self.vnc_slot(opts),
            _ => Slot::Other,
        };
        QemuArg::new(switch, value, slot, source)
    }

    /// A drive is one of the build's disks when its file is one (however
    /// spelled); a pflash drive is read-only code or the writable
    /// variables; a drive of the seed's file is the seed.
    fn drive_slot(&self, opts: &OptionString) -> Slot {
        let Some(file) = opts.get("file") else {
            return Slot::Other;
        };
        let pflash = opts.get("if") == Some("pflash");
        if let Some(index) = self.disks.iter().position(|d| *d == clean_path(file)) {
            Slot::Disk { index }
        } else if pflash && opts.is_on("readonly") {
            Slot::FirmwareCode
        } else if pflash {
            Slot::UefiVars
        } else if Some(file) == self.facts.cd_path.as_deref() {
            Slot::Seed { media: Media::Cd }
        } else if Some(file) == self.facts.floppy_path.as_deref() {
            Slot::Seed {
                media: Media::Floppy,
            }
        } else {
            Slot::Other
        }
    }

    /// A `hostfwd=` of the SSH host port (`tcp::{{ .SSHHostPort }}-:22`).
    fn forward_slot(&self, opts: &OptionString) -> Slot {
        match self.facts.ssh_host_port {
            Some(host_port)
                if opts.iter().any(|o| {
                    o.key.as_deref() == Some("hostfwd")
                        && o.value.contains(&format!(":{host_port}-"))
                }) =>
            {
                Slot::SshForward { host_port }
            }
            _ => Slot::Other,
        }
    }

    /// `ADDR:DISPLAY[,options]` on the display picked for this run.
    fn vnc_slot(&self, opts: &OptionString) -> Slot {
        let display = self.facts.vnc_port.map(|p| p.saturating_sub(5900));
        match (display, opts.implied().and_then(|a| a.rsplit_once(':'))) {
            (Some(display), Some((_, d))) if d == display.to_string() => Slot::Vnc { display },
            _ => Slot::Other,
        }
    }
}

/// Packer's NIC: `<net_device>,netdev=user.0` (`net_device` as Packer
/// splices it, so it may carry options of its own).
fn nic_value(config: &QemuConfig) -> ArgValue {
    ArgValue::parse("-device", &format!("{},netdev=user.0", config.net_device))
}

fn nic(config: &QemuConfig) -> QemuArg {
    QemuArg::new(
        "-device",
        nic_value(config),
        Slot::Other,
        ArgSource::Default,
    )
}

/// `before,file=<path>,after`: Packer's options as it formats them (a
/// config string may carry several), the path escaped (it is data).
fn with_file(before: &str, path: &str, after: &str) -> OptionString {
    OptionString::parse(before)
        .with("file", path)
        .append(OptionString::parse(after))
}

/// Packer's default switches, in kiln's fixed order.
fn default_args(config: &QemuConfig, facts: &RuntimeFacts) -> Result<Vec<Group>, PlanError> {
    let mut d: Vec<Group> = Vec::new();
    let mut put = |switch: &str, values: Vec<(ArgValue, Slot)>| {
        let mut group = Group::new(switch, ArgSource::Default);
        for (value, slot) in values {
            group
                .values
                .push(QemuArg::new(switch, value, slot, ArgSource::Default));
        }
        d.push(group);
    };
    let parsed = |switch: &str, text: String| vec![(ArgValue::parse(switch, &text), Slot::Other)];

    put("-name", parsed("-name", config.vm_name.clone()));
    let machine = match facts.accelerator {
        Accelerator::None => format!("type={}", config.machine_type),
        accel => format!("type={},accel={accel}", config.machine_type),
    };
    put(
        "-machine",
        vec![(ArgValue::parse("-machine", &machine), Slot::Machine)],
    );
    if let Some(cpu) = &config.cpu_model {
        put("-cpu", parsed("-cpu", cpu.clone()));
    }
    put("-m", parsed("-m", format!("{}M", config.memory)));
    put("-smp", parsed("-smp", config.smp.arg()));
    if let Some(fw) = &config.firmware
        && !config.use_pflash
    {
        put("-bios", vec![(ArgValue::text(fw.as_str()), Slot::Bios)]);
    }
    if !config.efi.enabled {
        let boot = if config.disk_image { "c" } else { "once=d" };
        put("-boot", parsed("-boot", boot.to_string()));
    }
    if let Some(floppy) = &facts.floppy_path {
        let seed = Slot::Seed {
            media: Media::Floppy,
        };
        put("-fda", vec![(ArgValue::text(floppy.as_str()), seed)]);
    }

    let DevicesAndDrives { devices, drives } = device_and_drive_args(config, facts)?;
    put(
        "-drive",
        drives
            .into_iter()
            .map(|(o, slot)| (ArgValue::Options(o), slot))
            .collect(),
    );
    put(
        "-device",
        devices.into_iter().map(|o| (o, Slot::Other)).collect(),
    );

    let netdev = match (&config.communicator, facts.ssh_host_port) {
        (Communicator::None, _) => (ArgValue::parse("-netdev", "user,id=user.0"), Slot::Other),
        (Communicator::Ssh(ssh), Some(host_port)) => (
            ArgValue::parse(
                "-netdev",
                &format!(
                    "user,id=user.0,hostfwd=tcp:127.0.0.1:{host_port}-:{}",
                    ssh.port
                ),
            ),
            Slot::SshForward { host_port },
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
        put(
            "-vnc",
            vec![(ArgValue::parse("-vnc", &vnc), Slot::Vnc { display })],
        );
    }

    if !config.headless {
        match &config.display {
            Some(display) if display != "none" => {
                put("-display", parsed("-display", display.clone()))
            }
            _ if !config.use_default_display => put("-display", parsed("-display", "gtk".into())),
            _ => {}
        }
    } else if !config.vnc.enabled {
        put("-display", parsed("-display", "none".into()));
    }
    if let Some(vga) = &config.vga {
        put("-vga", parsed("-vga", vga.clone()));
    }
    if let Some(path) = config
        .qmp_socket_path
        .as_ref()
        .filter(|_| config.qmp_enable)
    {
        let qmp = OptionString::new()
            .bare(format!("unix:{path}"))
            .bare("server")
            .bare("nowait");
        put("-qmp", vec![(ArgValue::Options(qmp), Slot::Other)]);
    }
    put("-serial", vec![(ArgValue::text("stdio"), Slot::Serial)]);
    Ok(d)
}

/// `getDeviceAndDriveArgs` of packer-plugin-qemu: the `-device` values and
/// the `-drive` values with their slots.
fn device_and_drive_args(
    config: &QemuConfig,
    facts: &RuntimeFacts,
) -> Result<DevicesAndDrives, PlanError> {
    let device = |text: String| ArgValue::parse("-device", &text);
    let mut devices = Vec::new();
    let mut drives = Vec::new();
    let mut scsi_index = 0usize;

    for (i, path) in config.disk_paths().iter().enumerate() {
        let mut drive = if config.disk_interface == "virtio-scsi" {
            if scsi_index == 0 {
                devices.push(device("virtio-scsi-pci,id=scsi0".to_string()));
            }
            devices.push(device(format!("scsi-hd,bus=scsi0.0,drive=drive{i}")));
            scsi_index += 1;
            with_file(
                "if=none",
                path,
                &format!(
                    "id=drive{i},cache={},discard={},format={}",
                    config.disk_cache,
                    config.disk_discard,
                    config.format.as_str()
                ),
            )
        } else {
            with_file(
                "",
                path,
                &format!(
                    "if={},cache={},discard={},format={}",
                    config.disk_interface,
                    config.disk_cache,
                    config.disk_discard,
                    config.format.as_str()
                ),
            )
        };
        if config.disk_detect_zeroes != "off" {
            drive = drive.append(OptionString::parse(&format!(
                "detect-zeroes={}",
                config.disk_detect_zeroes
            )));
        }
        drives.push((drive, Slot::Disk { index: i }));
    }

    devices.push(nic_value(config));

    let mut cd_paths = Vec::new();
    if !config.disk_image {
        let iso = facts.iso_path.clone().ok_or(PlanError::MissingFact {
            what: "the path of the downloaded ISO (`iso_path`)",
        })?;
        cd_paths.push((iso, Slot::Iso));
    }
    if let Some(cd) = facts.cd_path.as_ref().filter(|p| !p.is_empty()) {
        cd_paths.push((cd.clone(), Slot::Seed { media: Media::Cd }));
    }
    for (i, (path, slot)) in cd_paths.iter().enumerate() {
        let drive = match config.cdrom_interface.as_deref() {
            None => with_file("", path, "media=cdrom"),
            Some("virtio-scsi") => {
                if scsi_index == 0 {
                    devices.push(device("virtio-scsi-pci,id=scsi0".to_string()));
                }
                devices.push(device("virtio-scsi-device".to_string()));
                devices.push(device(format!("scsi-cd,drive=cdrom{i}")));
                let drive = with_file(
                    "",
                    path,
                    &format!("if=none,index={scsi_index},id=cdrom{i},media=cdrom"),
                );
                scsi_index += 1;
                drive
            }
            Some(interface) => with_file(
                "",
                path,
                &format!("if={interface},index={i},id=cdrom{i},media=cdrom"),
            ),
        };
        drives.push((drive, *slot));
    }

    if let Some(fw) = &config.firmware
        && config.use_pflash
    {
        drives.push((
            with_file("", fw, "if=pflash,format=raw,readonly=on"),
            Slot::FirmwareCode,
        ));
    }
    if config.efi.enabled {
        let code = facts
            .efi_code
            .clone()
            .or_else(|| config.efi.code.clone())
            .ok_or(PlanError::MissingFact {
                what: "the UEFI code file (`efi_code`)",
            })?;
        drives.push((
            with_file("", &code, "if=pflash,unit=0,format=raw,readonly=on"),
            Slot::FirmwareCode,
        ));
        drives.push((
            with_file("", &config.efivars_path(), "if=pflash,unit=1,format=raw"),
            Slot::UefiVars,
        ));
    }
    Ok(DevicesAndDrives { devices, drives })
}

/// The `-device` values, and the `-drive` values with their slots.
struct DevicesAndDrives {
    devices: Vec<ArgValue>,
    drives: Vec<(OptionString, Slot)>,
}

#[cfg(test)]
mod tests;
