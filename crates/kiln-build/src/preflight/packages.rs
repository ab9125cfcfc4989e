//! Which Debian/Ubuntu package provides a missing program or file, and
//! which distribution this host runs (`/etc/os-release`).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The fields of `/etc/os-release` kiln uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRelease {
    /// `debian`, `ubuntu`, `fedora`, …
    pub id: String,
    /// `ID_LIKE`, split (`ubuntu debian` for Mint).
    pub id_like: Vec<String>,
    pub pretty_name: Option<String>,
    pub version_id: Option<String>,
}

impl OsRelease {
    /// Parse `/etc/os-release` (`KEY=value`, values optionally quoted).
    pub fn parse(text: &str) -> OsRelease {
        let mut os = OsRelease::default();
        for line in text.lines() {
            let Some((key, value)) = line.trim().split_once('=') else {
                continue;
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value)
                .to_string();
            match key {
                "ID" => os.id = value,
                "ID_LIKE" => os.id_like = value.split_whitespace().map(str::to_string).collect(),
                "PRETTY_NAME" => os.pretty_name = Some(value),
                "VERSION_ID" => os.version_id = Some(value),
                _ => {}
            }
        }
        os
    }

    /// Whether packages are installed with apt (Debian, Ubuntu and their
    /// derivatives).
    pub fn uses_apt(&self) -> bool {
        self.is("debian") || self.is("ubuntu")
    }

    fn is(&self, id: &str) -> bool {
        self.id == id || self.id_like.iter().any(|l| l == id)
    }

    fn is_ubuntu(&self) -> bool {
        self.is("ubuntu")
    }

    /// The name to show: `PRETTY_NAME`, else `ID`.
    pub fn name(&self) -> &str {
        self.pretty_name.as_deref().unwrap_or(&self.id)
    }
}

/// The package of a QEMU system emulator (`qemu-system-aarch64` →
/// `qemu-system-arm`). `None` for a name no package provides.
pub fn package_for_qemu_binary(binary: &str, os: Option<&OsRelease>) -> Option<&'static str> {
    let name = Path::new(binary)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(binary);
    if name == "qemu-kvm" {
        return Some("qemu-system-x86");
    }
    let arch = name.strip_prefix("qemu-system-")?;
    Some(match arch {
        "x86_64" | "i386" | "x86_64-microvm" => "qemu-system-x86",
        "aarch64" | "arm" => "qemu-system-arm",
        "ppc" | "ppc64" => "qemu-system-ppc",
        "mips" | "mipsel" | "mips64" | "mips64el" => "qemu-system-mips",
        "sparc" | "sparc64" => "qemu-system-sparc",
        "s390x" if os.is_some_and(OsRelease::is_ubuntu) => "qemu-system-s390x",
        "s390x" | "riscv32" | "riscv64" | "alpha" | "avr" | "cris" | "hppa" | "loongarch64"
        | "m68k" | "microblaze" | "microblazeel" | "nios2" | "or1k" | "rx" | "sh4" | "sh4eb"
        | "tricore" | "xtensa" | "xtensaeb" => "qemu-system-misc",
        _ => return None,
    })
}

/// The package of a program (`qemu-img` → `qemu-utils`), for the ones
/// templates commonly call. `None` when unknown.
pub fn package_for_program(program: &str) -> Option<&'static str> {
    let name = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(program);
    if let Some(p) = package_for_qemu_binary(name, None) {
        return Some(p);
    }
    Some(match name {
        "qemu-img" | "qemu-nbd" | "qemu-io" => "qemu-utils",
        "genisoimage" | "mkisofs" => "genisoimage",
        "xorriso" => "xorriso",
        "cloud-localds" => "cloud-image-utils",
        "mkfs.vfat" | "mkfs.fat" | "mkdosfs" => "dosfstools",
        "mkfs.ext4" | "e2fsck" | "resize2fs" | "tune2fs" => "e2fsprogs",
        "mcopy" | "mformat" => "mtools",
        "curl" => "curl",
        "wget" => "wget",
        "jq" => "jq",
        "git" => "git",
        "rsync" => "rsync",
        "unzip" => "unzip",
        "zip" => "zip",
        "xz" | "unxz" => "xz-utils",
        "zstd" | "unzstd" => "zstd",
        "pigz" => "pigz",
        "bzip2" => "bzip2",
        "python3" => "python3",
        "ansible" | "ansible-playbook" => "ansible",
        "sshpass" => "sshpass",
        "ssh" | "scp" | "ssh-keygen" => "openssh-client",
        "virt-customize" | "virt-sysprep" => "guestfs-tools",
        "guestfish" | "guestmount" => "libguestfs-tools",
        "sgdisk" => "gdisk",
        "parted" => "parted",
        "kpartx" => "kpartx",
        "losetup" | "mount" | "umount" => "mount",
        "make" => "make",
        "nasm" => "nasm",
        _ => return None,
    })
}

/// The package of a file kiln knows about (firmware, mostly).
pub fn package_for_path(path: &Path) -> Option<&'static str> {
    let text = path.to_string_lossy();
    let in_dir = |dir: &str| text.starts_with(dir);
    if in_dir("/usr/share/OVMF/") || in_dir("/usr/share/ovmf/") || text == "/usr/share/qemu/OVMF.fd"
    {
        Some("ovmf")
    } else if in_dir("/usr/share/AAVMF/AAVMF32") || in_dir("/usr/share/qemu-efi-arm/") {
        Some("qemu-efi-arm")
    } else if in_dir("/usr/share/AAVMF/") || in_dir("/usr/share/qemu-efi-aarch64/") {
        Some("qemu-efi-aarch64")
    } else if in_dir("/usr/share/seabios/") {
        Some("seabios")
    } else if in_dir("/usr/share/qemu/") || in_dir("/usr/lib/ipxe/qemu/") {
        Some("qemu-system-data")
    } else {
        None
    }
}

/// The UEFI firmware package for an architecture.
pub fn uefi_package(arch: &str) -> Option<&'static str> {
    match arch {
        "x86_64" | "i386" | "amd64" => Some("ovmf"),
        "aarch64" | "arm64" => Some("qemu-efi-aarch64"),
        "arm" => Some("qemu-efi-arm"),
        _ => None,
    }
}

/// Well-known firmware file names and where a package installs them, so a
/// missing relative `OVMF_VARS.fd` (copied next to the template by a
/// Makefile, as packer-maas does) gets "copy it from …".
pub fn known_firmware_source(file_name: &str) -> Option<&'static str> {
    Some(match file_name {
        "OVMF_VARS.fd" => "/usr/share/OVMF/OVMF_VARS.fd",
        "OVMF_VARS_4M.fd" => "/usr/share/OVMF/OVMF_VARS_4M.fd",
        "OVMF_CODE.fd" => "/usr/share/OVMF/OVMF_CODE.fd",
        "OVMF_CODE_4M.fd" => "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "OVMF.fd" => "/usr/share/qemu/OVMF.fd",
        "AAVMF_VARS.fd" => "/usr/share/AAVMF/AAVMF_VARS.fd",
        "AAVMF_CODE.fd" => "/usr/share/AAVMF/AAVMF_CODE.fd",
        "QEMU_EFI.fd" => "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_is_parsed_and_apt_detected() {
        let debian = OsRelease::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
        );
        assert_eq!(debian.id, "debian");
        assert_eq!(debian.version_id.as_deref(), Some("12"));
        assert_eq!(debian.name(), "Debian GNU/Linux 12 (bookworm)");
        assert!(debian.uses_apt());
        let mint = OsRelease::parse("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n");
        assert!(mint.uses_apt());
        let fedora = OsRelease::parse("ID=fedora\nPRETTY_NAME='Fedora Linux 40'\n");
        assert!(!fedora.uses_apt());
        assert_eq!(fedora.name(), "Fedora Linux 40");
    }

    #[test]
    fn apt_packages_map_binaries_programs_and_files() {
        let ubuntu = OsRelease::parse("ID=ubuntu\nID_LIKE=debian\n");
        let debian = OsRelease::parse("ID=debian\n");
        assert_eq!(
            package_for_qemu_binary("qemu-system-x86_64", Some(&debian)),
            Some("qemu-system-x86")
        );
        assert_eq!(
            package_for_qemu_binary("/usr/bin/qemu-system-aarch64", None),
            Some("qemu-system-arm")
        );
        assert_eq!(
            package_for_qemu_binary("qemu-system-s390x", Some(&ubuntu)),
            Some("qemu-system-s390x")
        );
        assert_eq!(
            package_for_qemu_binary("qemu-system-s390x", Some(&debian)),
            Some("qemu-system-misc")
        );
        assert_eq!(
            package_for_qemu_binary("qemu-system-nosucharch", None),
            None
        );
        assert_eq!(package_for_program("qemu-img"), Some("qemu-utils"));
        assert_eq!(package_for_program("/usr/bin/xorriso"), Some("xorriso"));
        assert_eq!(package_for_program("frobnicate"), None);
        assert_eq!(
            package_for_path(Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd")),
            Some("ovmf")
        );
        assert_eq!(
            package_for_path(Path::new("/usr/share/AAVMF/AAVMF_CODE.fd")),
            Some("qemu-efi-aarch64")
        );
        assert_eq!(
            package_for_path(Path::new("/usr/share/AAVMF/AAVMF32_CODE.fd")),
            Some("qemu-efi-arm")
        );
        assert_eq!(package_for_path(Path::new("/home/x/OVMF_VARS.fd")), None);
        assert_eq!(uefi_package("aarch64"), Some("qemu-efi-aarch64"));
        assert_eq!(
            known_firmware_source("OVMF_VARS.fd"),
            Some("/usr/share/OVMF/OVMF_VARS.fd")
        );
    }
}
