//! The schema of `source "qemu"` as data: every attribute Packer's QEMU
//! builder accepts, with its type, default, one-line documentation and how
//! far kiln supports it.
//!
//! The decoder in [`crate::config`] asks for exactly these names (tests
//! compare the names the decoder asked for with this table), takes its
//! defaults and "did you mean" candidates from it and refuses the
//! unsupported fields it lists; the reference docs are generated from it
//! (kiln-build's `schema` registry) and sensitive fields are marked here.

pub use kiln_template::schema::{Field, FieldDefault, PluginKind, Schema, Support};

/// A supported field; `default` is a literal of its type (see
/// [`Field::parse_literal`]).
const fn f(
    name: &'static str,
    ty: &'static str,
    default: Option<&'static str>,
    doc: &'static str,
) -> Field {
    let field = Field::new(name, ty, doc);
    match default {
        Some(literal) => field.default(literal),
        None => field,
    }
}

const fn ignored(name: &'static str, ty: &'static str, doc: &'static str) -> Field {
    Field::ignored(name, ty, doc)
}

const fn unsupported(name: &'static str, ty: &'static str, doc: &'static str) -> Field {
    Field::unsupported(name, ty, doc)
}

const fn secret(field: Field) -> Field {
    field.sensitive()
}

const fn alias(field: Field, of: &'static str) -> Field {
    field.alias_of(of)
}

const fn required(field: Field) -> Field {
    field.required()
}

/// `source "qemu"`.
pub static SCHEMA: Schema = Schema {
    kind: PluginKind::Source,
    name: "qemu",
    summary: "A virtual machine run with QEMU: from an installer ISO typed into over QMP, or from a cloud disk image (`disk_image = true`), provisioned over SSH and shut down; the disk is the artifact.",
    groups: &[FIELDS],
    example: &[
        ("iso_url", "debian-12-genericcloud-amd64.qcow2"),
        ("iso_checksum", "none"),
        ("disk_image", "true"),
        ("ssh_username", "debian"),
    ],
};

/// Every attribute of `source "qemu"`, in the order of Packer's reference.
pub static FIELDS: &[Field] = &[
    // ISO / source image
    required(f(
        "iso_url",
        "string",
        None,
        "URL or path of the installation ISO, or of the disk image when `disk_image` is true. One of `iso_url`/`iso_urls` is required.",
    )),
    f(
        "iso_urls",
        "[]string",
        None,
        "Several URLs for the same file, tried in order. Only one of `iso_url` and `iso_urls` may be set.",
    ),
    required(f(
        "iso_checksum",
        "string",
        None,
        "Checksum of the ISO or image: `sha256:HEX`, `sha512:`, `sha1:`, `md5:`, bare hex (type guessed from its length), `file:URL-or-path` of a SUMS file, or `none`.",
    )),
    f(
        "iso_target_path",
        "string",
        None,
        "Where the downloaded file is stored; by default in the cache under a name derived from the URL and checksum.",
    ),
    f(
        "iso_target_extension",
        "string",
        Some("iso"),
        "Extension of the downloaded file.",
    ),
    unsupported(
        "iso_skip_cache",
        "bool",
        "Let QEMU read the ISO over the network (curl block driver) instead of downloading it.",
    ),
    // disks
    f(
        "disk_image",
        "bool",
        Some("false"),
        "`iso_url` is a bootable disk image (cloned or used as a backing file) rather than an installer ISO.",
    ),
    f(
        "use_backing_file",
        "bool",
        Some("false"),
        "With `disk_image` and `qcow2`, create the output disk as an overlay on the source image (`qemu-img create -b … -F …`); forces `skip_compaction`.",
    ),
    f(
        "disk_size",
        "string",
        Some("40960M"),
        "Size of the main disk: a number with an optional `b`/`k`/`m`/`g`/`t` suffix; a bare number means MiB.",
    ),
    f(
        "disk_additional_size",
        "[]string",
        None,
        "Sizes of additional disks (`<vm_name>-1`, `-2`, …), passed to `qemu-img create` as written (a bare number is bytes there).",
    ),
    f(
        "skip_resize_disk",
        "bool",
        Some("false"),
        "Do not run `qemu-img resize` on a `disk_image`. Only valid with `disk_image`.",
    ),
    f(
        "format",
        "string",
        Some("qcow2"),
        "Output disk format: `qcow2` or `raw`.",
    ),
    f(
        "disk_interface",
        "string",
        Some("virtio"),
        "Disk interface: `ide`, `sata`, `scsi`, `sd`, `virtio` or `virtio-scsi`.",
    ),
    f(
        "disk_cache",
        "string",
        Some("writeback"),
        "Cache mode of the disk: `writethrough`, `writeback`, `none`, `unsafe` or `directsync`.",
    ),
    f(
        "disk_discard",
        "string",
        Some("ignore"),
        "Discard mode of the disk: `unmap` or `ignore`.",
    ),
    f(
        "disk_detect_zeroes",
        "string",
        Some("off"),
        "Detect-zeroes mode of the disk: `unmap`, `on` or `off` (`off` adds nothing to the command line).",
    ),
    f(
        "skip_compaction",
        "bool",
        Some("false"),
        "Skip the final `qemu-img convert` that compacts a qcow2 disk.",
    ),
    f(
        "disk_compression",
        "bool",
        Some("false"),
        "Compress the qcow2 output in the final `qemu-img convert` (`-c`).",
    ),
    f(
        "qemu_img_args",
        "block",
        None,
        "Extra arguments for `qemu-img` subcommands: a block with `create`, `convert` and `resize` lists.",
    ),
    // machine
    f(
        "accelerator",
        "string",
        None,
        "`kvm`, `tcg`, `none`, `xen`, `hax`, `hvf` or `whpx`. Unset: kiln uses KVM when its probe shows that KVM really runs guests, else TCG with a warning.",
    ),
    f(
        "machine_type",
        "string",
        Some("pc"),
        "QEMU machine type (`-machine type=…`).",
    ),
    f(
        "cpu_model",
        "string",
        None,
        "CPU model (`-cpu …`); unset passes no `-cpu`.",
    ),
    f(
        "memory",
        "int",
        Some("512"),
        "Guest memory in MiB; values below 10 mean the default.",
    ),
    Field::new(
        "cpus",
        "int",
        "Number of virtual CPUs; with a topology, the smaller of the two counts.",
    )
    .computed("1, or the topology's count when one is set"),
    f(
        "sockets",
        "int",
        None,
        "CPU sockets of the topology (`-smp …,sockets=N`).",
    ),
    f("cores", "int", None, "Cores per socket (`-smp …,cores=N`)."),
    f(
        "threads",
        "int",
        None,
        "Threads per core (`-smp …,threads=N`).",
    ),
    f(
        "net_device",
        "string",
        Some("virtio-net"),
        "Network device model (`-device <net_device>,netdev=user.0`).",
    ),
    unsupported(
        "net_bridge",
        "string",
        "Attach the network to a host bridge instead of user-mode networking.",
    ),
    f(
        "cdrom_interface",
        "string",
        None,
        "Interface of the CD-ROM drives: `ide`, `scsi`, `virtio` or `virtio-scsi`; unset uses QEMU's default.",
    ),
    f(
        "vga",
        "string",
        None,
        "VGA card to emulate (`-vga …`); unset passes none.",
    ),
    f(
        "firmware",
        "string",
        None,
        "Firmware file (`-bios`, or a read-only pflash drive with `use_pflash`).",
    ),
    f(
        "use_pflash",
        "bool",
        Some("false"),
        "Load `firmware` as a pflash drive instead of `-bios`.",
    ),
    f(
        "efi_boot",
        "bool",
        Some("false"),
        "Boot with UEFI firmware through pflash drives; implied by `efi_firmware_code`/`efi_firmware_vars`.",
    ),
    f(
        "efi_firmware_code",
        "string",
        None,
        "OVMF/AAVMF code file. Unset: the host's firmware, found where Debian, Ubuntu, Fedora or Arch install it.",
    ),
    f(
        "efi_firmware_vars",
        "string",
        None,
        "OVMF/AAVMF variables template, copied to `<output_directory>/efivars.fd` for the build.",
    ),
    f(
        "efi_drop_efivars",
        "bool",
        Some("false"),
        "Leave `efivars.fd` out of the artifact's file list.",
    ),
    f(
        "headless",
        "bool",
        Some("false"),
        "Run without a local display window.",
    ),
    f(
        "display",
        "string",
        None,
        "QEMU `-display` backend when not headless (`none` means QEMU's default).",
    ),
    f(
        "use_default_display",
        "bool",
        Some("false"),
        "Pass no `-display`, letting QEMU choose.",
    ),
    f(
        "qemu_binary",
        "string",
        Some("qemu-system-x86_64"),
        "QEMU system emulator to run.",
    ),
    f(
        "qemuargs",
        "[][]string",
        None,
        "Extra QEMU switches, one list per switch; a switch given here replaces every default of that switch. Values of a switch are joined without separator; templates `{{ .HTTPIP }}`, `{{ .HTTPPort }}`, `{{ .HTTPDir }}`, `{{ .OutputDir }}`, `{{ .Name }}`, `{{ .SSHHostPort }}` are rendered.",
    ),
    f(
        "qmp_enable",
        "bool",
        Some("false"),
        "Also expose a QMP socket for the user at `qmp_socket_path` (kiln always has its own).",
    ),
    f(
        "qmp_socket_path",
        "string",
        None,
        "Path of the user's QMP socket; default `<output_directory>/<vm_name>.monitor`.",
    ),
    unsupported("vtpm", "bool", "Expose an emulated TPM (swtpm)."),
    unsupported("use_tpm1", "bool", "Use TPM 1.2 for the emulated TPM."),
    unsupported(
        "tpm_device_type",
        "string",
        "TPM device model of the emulated TPM.",
    ),
    ignored("run_once", "bool", "Deprecated; has no effect."),
    // VNC
    f(
        "vnc_bind_address",
        "string",
        Some("127.0.0.1"),
        "Address VNC listens on. kiln starts VNC only when a `vnc_*` option is set.",
    ),
    f(
        "vnc_port_min",
        "int",
        Some("5900"),
        "Lowest VNC port (not below 5900).",
    ),
    f("vnc_port_max", "int", Some("6000"), "Highest VNC port."),
    f(
        "vnc_use_password",
        "bool",
        Some("false"),
        "Protect VNC with a password (random unless `vnc_password` is set).",
    ),
    secret(f(
        "vnc_password",
        "string",
        None,
        "VNC password (at most 8 characters) when `vnc_use_password` is true.",
    )),
    f(
        "disable_vnc",
        "bool",
        Some("false"),
        "No VNC server; a `boot_command` is then an error, as in Packer.",
    ),
    // HTTP
    f(
        "http_directory",
        "string",
        None,
        "Directory served over HTTP to the guest; conflicts with `http_content`.",
    ),
    f(
        "http_content",
        "map[string]string",
        None,
        "Files served over HTTP: paths (starting with `/`) to contents; conflicts with `http_directory`.",
    ),
    f(
        "http_port_min",
        "int",
        Some("8000"),
        "Lowest port for the HTTP server.",
    ),
    f(
        "http_port_max",
        "int",
        Some("9000"),
        "Highest port for the HTTP server.",
    ),
    f(
        "http_bind_address",
        "string",
        Some("127.0.0.1"),
        "Address the HTTP server binds. Packer's default is 0.0.0.0; kiln's is loopback, which user-mode networking reaches as 10.0.2.2.",
    ),
    unsupported(
        "http_interface",
        "string",
        "Bind the HTTP server to the address of a named interface.",
    ),
    f(
        "http_network_protocol",
        "string",
        Some("tcp"),
        "Network protocol of the HTTP server; kiln supports `tcp`, `tcp4` and `tcp6`.",
    ),
    // floppy / CD
    f(
        "floppy_files",
        "[]string",
        None,
        "Files (globs allowed; directories are flattened) copied to the root of a 1.44 MB FAT12 floppy.",
    ),
    f(
        "floppy_dirs",
        "[]string",
        None,
        "Directories copied to the floppy with their structure.",
    ),
    f(
        "floppy_content",
        "map[string]string",
        None,
        "Files written to the floppy: paths to contents; wins over `floppy_files`.",
    ),
    Field::new("floppy_label", "string", "Volume label of the floppy.").computed("`packer`"),
    f(
        "cd_files",
        "[]string",
        None,
        "Files and directories (globs allowed) put on an extra ISO 9660 CD; a directory keeps its name unless written with a trailing slash.",
    ),
    f(
        "cd_content",
        "map[string]string",
        None,
        "Files written to the extra CD: paths to contents; wins over `cd_files`. `{{ .SSHPublicKey }}` is rendered.",
    ),
    Field::new(
        "cd_label",
        "string",
        "Volume id of the extra CD (e.g. `cidata` for a NoCloud seed).",
    )
    .computed("`packer`"),
    // boot
    f(
        "boot_command",
        "[]string",
        None,
        "Keys typed after `boot_wait`, joined into one sequence; Packer's `<special>` keys and `{{ .HTTPIP }}`, `{{ .HTTPPort }}`, `{{ .Name }}`, `{{ .SSHPublicKey }}` templates.",
    ),
    f(
        "boot_steps",
        "[][]string",
        None,
        "Boot command in steps of [keys, description]; exclusive with `boot_command`.",
    ),
    f(
        "boot_wait",
        "duration",
        Some("10s"),
        "Time to wait before typing the boot command; a negative value means no wait.",
    ),
    f(
        "boot_key_interval",
        "duration",
        None,
        "Pause after each key; default `PACKER_KEY_INTERVAL` or kiln's QMP default.",
    ),
    ignored(
        "boot_keygroup_interval",
        "duration",
        "Pause after a group of keys (not used: QMP typing sends keys one by one).",
    ),
    // communicator
    f("communicator", "string", Some("ssh"), "`ssh` or `none`."),
    f(
        "pause_before_connecting",
        "duration",
        None,
        "Wait this long after the first successful connection before provisioning.",
    ),
    f(
        "ssh_host",
        "string",
        None,
        "Address to connect to; by default the forwarded port on 127.0.0.1.",
    ),
    f("ssh_port", "int", Some("22"), "SSH port of the guest."),
    required(f(
        "ssh_username",
        "string",
        None,
        "User to log in as. Required with `communicator = \"ssh\"`.",
    )),
    secret(f(
        "ssh_password",
        "string",
        None,
        "Password for SSH authentication.",
    )),
    f(
        "ssh_private_key_file",
        "string",
        None,
        "Private key for SSH authentication (`~` expanded); no throwaway key is made then.",
    ),
    f(
        "ssh_timeout",
        "duration",
        Some("5m"),
        "How long to wait for SSH to become available.",
    ),
    alias(
        f(
            "ssh_wait_timeout",
            "duration",
            None,
            "Older spelling of `ssh_timeout`; wins when both are set, as in Packer.",
        ),
        "ssh_timeout",
    ),
    f(
        "ssh_handshake_attempts",
        "int",
        Some("10"),
        "SSH handshakes to try once the port accepts connections.",
    ),
    f(
        "ssh_clear_authorized_keys",
        "bool",
        Some("false"),
        "Remove the build's throwaway key from `authorized_keys` in the guest at the end.",
    ),
    f(
        "temporary_key_pair_type",
        "string",
        Some("ed25519"),
        "Type of the throwaway key: `ed25519`, `rsa`, `ecdsa` or `dsa`. Packer's default is `rsa`; kiln's is `ed25519`.",
    ),
    f(
        "temporary_key_pair_bits",
        "int",
        None,
        "Bits of the throwaway key (RSA default 4096; ECDSA 256/384/521).",
    ),
    f(
        "ssh_pty",
        "bool",
        Some("false"),
        "Request a PTY for commands.",
    ),
    f(
        "ssh_keep_alive_interval",
        "duration",
        Some("5s"),
        "Interval of keep-alive messages; negative disables.",
    ),
    f(
        "ssh_read_write_timeout",
        "duration",
        None,
        "Deadline for a remote command; unset means none.",
    ),
    f(
        "ssh_file_transfer_method",
        "string",
        Some("scp"),
        "`scp` or `sftp`.",
    ),
    f(
        "ssh_ciphers",
        "[]string",
        None,
        "Ciphers to offer instead of the defaults.",
    ),
    f(
        "ssh_key_exchange_algorithms",
        "[]string",
        None,
        "Key exchange algorithms to offer instead of the defaults.",
    ),
    f(
        "ssh_agent_auth",
        "bool",
        Some("false"),
        "Authenticate with the local SSH agent.",
    ),
    f(
        "ssh_disable_agent_forwarding",
        "bool",
        Some("false"),
        "Do not forward the SSH agent.",
    ),
    unsupported(
        "ssh_certificate_file",
        "string",
        "User certificate for SSH authentication.",
    ),
    unsupported(
        "ssh_keypair_name",
        "string",
        "Name of an existing cloud key pair (cloud builders).",
    ),
    unsupported(
        "temporary_key_pair_name",
        "string",
        "Name of the throwaway key pair (cloud builders).",
    ),
    unsupported(
        "ssh_bastion_host",
        "string",
        "Bastion host to connect through.",
    ),
    unsupported("ssh_bastion_port", "int", "Port of the bastion host."),
    unsupported(
        "ssh_bastion_agent_auth",
        "bool",
        "Use the SSH agent for the bastion host.",
    ),
    unsupported(
        "ssh_bastion_username",
        "string",
        "User on the bastion host.",
    ),
    secret(unsupported(
        "ssh_bastion_password",
        "string",
        "Password for the bastion host.",
    )),
    unsupported(
        "ssh_bastion_interactive",
        "bool",
        "Keyboard-interactive authentication with the bastion host.",
    ),
    unsupported(
        "ssh_bastion_private_key_file",
        "string",
        "Private key for the bastion host.",
    ),
    unsupported(
        "ssh_bastion_certificate_file",
        "string",
        "Certificate for the bastion host.",
    ),
    unsupported(
        "ssh_proxy_host",
        "string",
        "SOCKS proxy to connect through.",
    ),
    unsupported("ssh_proxy_port", "int", "Port of the SOCKS proxy."),
    unsupported("ssh_proxy_username", "string", "User for the SOCKS proxy."),
    secret(unsupported(
        "ssh_proxy_password",
        "string",
        "Password for the SOCKS proxy.",
    )),
    unsupported(
        "ssh_remote_tunnels",
        "[]string",
        "Remote port forwards over the SSH connection.",
    ),
    unsupported(
        "ssh_local_tunnels",
        "[]string",
        "Local port forwards over the SSH connection.",
    ),
    secret(unsupported(
        "ssh_public_key",
        "string",
        "Internal to Packer.",
    )),
    secret(unsupported(
        "ssh_private_key",
        "string",
        "Internal to Packer.",
    )),
    unsupported(
        "winrm_username",
        "string",
        "WinRM user (the WinRM communicator is not supported).",
    ),
    secret(unsupported("winrm_password", "string", "WinRM password.")),
    unsupported("winrm_host", "string", "WinRM address."),
    unsupported("winrm_no_proxy", "bool", "Bypass proxies for WinRM."),
    unsupported("winrm_port", "int", "WinRM port."),
    unsupported("winrm_timeout", "duration", "How long to wait for WinRM."),
    unsupported("winrm_use_ssl", "bool", "WinRM over HTTPS."),
    unsupported("winrm_insecure", "bool", "Skip WinRM certificate checks."),
    unsupported("winrm_use_ntlm", "bool", "NTLM authentication for WinRM."),
    f(
        "host_port_min",
        "int",
        Some("2222"),
        "Lowest host port forwarded to the guest's SSH port.",
    ),
    f(
        "host_port_max",
        "int",
        Some("4444"),
        "Highest host port forwarded to the guest's SSH port.",
    ),
    alias(
        f(
            "ssh_host_port_min",
            "int",
            None,
            "Deprecated spelling of `host_port_min`.",
        ),
        "host_port_min",
    ),
    alias(
        f(
            "ssh_host_port_max",
            "int",
            None,
            "Deprecated spelling of `host_port_max`.",
        ),
        "host_port_max",
    ),
    f(
        "skip_nat_mapping",
        "bool",
        Some("false"),
        "Forward no port; connect to `ssh_host`:`ssh_port` (default 127.0.0.1).",
    ),
    // shutdown
    f(
        "shutdown_command",
        "string",
        None,
        "Command that powers the guest off after provisioning; unset: kiln asks the guest to power off over ACPI.",
    ),
    f(
        "shutdown_timeout",
        "duration",
        Some("5m"),
        "How long to wait for the guest to power off.",
    ),
    // outputs
    Field::new(
        "output_directory",
        "string",
        "Directory of the build's outputs; must not exist unless forced.",
    )
    .computed("output-<name>"),
    Field::new(
        "vm_name",
        "string",
        "File name of the output disk (no extension is added).",
    )
    .computed("packer-<name>"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_documented() {
        let mut seen = std::collections::BTreeSet::new();
        for field in FIELDS {
            assert!(seen.insert(field.name), "duplicate {}", field.name);
            assert!(!field.doc.is_empty(), "{} has no doc", field.name);
            if let Some(of) = field.alias_of {
                assert!(
                    SCHEMA.field(of).is_some(),
                    "{} aliases unknown {of}",
                    field.name
                );
            }
        }
    }
}
