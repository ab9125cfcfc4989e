//! UEFI firmware on the host: OVMF (x86_64) and AAVMF (aarch64) code and
//! variables files where Debian, Ubuntu, Fedora, Arch and QEMU's own install
//! put them, and the per-build copy of the variables.
//!
//! packer-plugin-qemu defaults to `/usr/share/OVMF/OVMF_CODE.fd` and
//! `OVMF_VARS.fd`; kiln looks in every known place, and a code file is only
//! ever paired with the variables file of the same build (2 MB with 2 MB,
//! 4 MB with 4 MB).

use std::path::{Path, PathBuf};

/// A matching pair of firmware files.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Firmware {
    pub code: PathBuf,
    pub vars: PathBuf,
}

/// Known (code, vars) pairs per architecture, most preferred first.
pub fn candidates(arch: &str) -> &'static [(&'static str, &'static str)] {
    match arch {
        "x86_64" | "i386" | "amd64" => &[
            // Debian, Ubuntu (ovmf)
            (
                "/usr/share/OVMF/OVMF_CODE_4M.fd",
                "/usr/share/OVMF/OVMF_VARS_4M.fd",
            ),
            (
                "/usr/share/OVMF/OVMF_CODE.fd",
                "/usr/share/OVMF/OVMF_VARS.fd",
            ),
            // Fedora, RHEL (edk2-ovmf)
            (
                "/usr/share/edk2/ovmf/OVMF_CODE.fd",
                "/usr/share/edk2/ovmf/OVMF_VARS.fd",
            ),
            // Arch (edk2-ovmf)
            (
                "/usr/share/edk2/x64/OVMF_CODE.4m.fd",
                "/usr/share/edk2/x64/OVMF_VARS.4m.fd",
            ),
            (
                "/usr/share/edk2-ovmf/x64/OVMF_CODE.fd",
                "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd",
            ),
            (
                "/usr/share/ovmf/x64/OVMF_CODE.fd",
                "/usr/share/ovmf/x64/OVMF_VARS.fd",
            ),
            // openSUSE
            (
                "/usr/share/qemu/ovmf-x86_64-code.bin",
                "/usr/share/qemu/ovmf-x86_64-vars.bin",
            ),
            // QEMU's own edk2 build
            (
                "/usr/share/qemu/edk2-x86_64-code.fd",
                "/usr/share/qemu/edk2-i386-vars.fd",
            ),
        ],
        "aarch64" | "arm64" => &[
            // Debian, Ubuntu (qemu-efi-aarch64)
            (
                "/usr/share/AAVMF/AAVMF_CODE.fd",
                "/usr/share/AAVMF/AAVMF_VARS.fd",
            ),
            // Fedora (edk2-aarch64)
            (
                "/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw",
                "/usr/share/edk2/aarch64/vars-template-pflash.raw",
            ),
            // Arch (edk2-aarch64)
            (
                "/usr/share/edk2/aarch64/QEMU_CODE.fd",
                "/usr/share/edk2/aarch64/QEMU_VARS.fd",
            ),
            // QEMU's own edk2 build
            (
                "/usr/share/qemu/edk2-aarch64-code.fd",
                "/usr/share/qemu/edk2-arm-vars.fd",
            ),
        ],
        _ => &[],
    }
}

/// The architecture a QEMU binary emulates (`qemu-system-x86_64` →
/// `x86_64`; `qemu-kvm` is x86_64).
pub fn arch_of_binary(qemu_binary: &str) -> &str {
    let name = Path::new(qemu_binary)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(qemu_binary);
    name.strip_prefix("qemu-system-").unwrap_or("x86_64")
}

/// The first installed firmware pair for `arch`, looking under `root`
/// (`/` on the host; a directory in tests).
pub fn find_uefi_firmware_in(root: &Path, arch: &str) -> Option<Firmware> {
    candidates(arch).iter().find_map(|(code, vars)| {
        let code = root.join(code.trim_start_matches('/'));
        let vars = root.join(vars.trim_start_matches('/'));
        (code.is_file() && vars.is_file()).then_some(Firmware { code, vars })
    })
}

/// The host's UEFI firmware for `arch`.
pub fn find_uefi_firmware(arch: &str) -> Option<Firmware> {
    find_uefi_firmware_in(Path::new("/"), arch)
}

/// Resolve `efi_firmware_code`/`efi_firmware_vars`: explicit paths win, the
/// missing one comes from the host pair of the same build when possible.
pub fn resolve(
    code: Option<&str>,
    vars: Option<&str>,
    arch: &str,
) -> Result<Firmware, FirmwareError> {
    let host = find_uefi_firmware(arch);
    let code = match (code, &host) {
        (Some(c), _) => PathBuf::from(c),
        (None, Some(h)) => h.code.clone(),
        (None, None) => {
            return Err(FirmwareError::NotFound {
                arch: arch.to_string(),
            });
        }
    };
    let vars = match (vars, &host) {
        (Some(v), _) => PathBuf::from(v),
        (None, Some(h)) => h.vars.clone(),
        (None, None) => {
            return Err(FirmwareError::NotFound {
                arch: arch.to_string(),
            });
        }
    };
    for path in [&code, &vars] {
        if !path.is_file() {
            return Err(FirmwareError::Missing { path: path.clone() });
        }
    }
    Ok(Firmware { code, vars })
}

/// Firmware problems.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    #[error(
        "no UEFI firmware for {arch} found (install `ovmf` on Debian/Ubuntu, `edk2-ovmf` on Fedora/Arch, or set `efi_firmware_code`/`efi_firmware_vars`)"
    )]
    NotFound { arch: String },
    #[error("firmware file {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot copy UEFI variables {from} to {to}: {source}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Copy the variables template to `<output_dir>/efivars.fd` (writable), as
/// packer-plugin-qemu's `step_prepare_efivars` does.
pub fn copy_efivars(vars_template: &Path, output_dir: &Path) -> Result<PathBuf, FirmwareError> {
    let to = output_dir.join("efivars.fd");
    let err = |source| FirmwareError::Copy {
        from: vars_template.to_path_buf(),
        to: to.clone(),
        source,
    };
    std::fs::copy(vars_template, &to).map_err(err)?;
    let mut perms = std::fs::metadata(&to).map_err(err)?.permissions();
    use std::os::unix::fs::PermissionsExt;
    perms.set_mode(0o660);
    std::fs::set_permissions(&to, perms).map_err(err)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_found_under_a_root_and_never_mixed() {
        let dir = tempfile::tempdir().unwrap();
        let ovmf = dir.path().join("usr/share/OVMF");
        std::fs::create_dir_all(&ovmf).unwrap();
        // Only the 2 MB vars exist: the 4 MB code must not be paired with it.
        std::fs::write(ovmf.join("OVMF_CODE_4M.fd"), b"c4").unwrap();
        std::fs::write(ovmf.join("OVMF_CODE.fd"), b"c2").unwrap();
        std::fs::write(ovmf.join("OVMF_VARS.fd"), b"v2").unwrap();
        let fw = find_uefi_firmware_in(dir.path(), "x86_64").unwrap();
        assert!(fw.code.ends_with("OVMF_CODE.fd"));
        assert!(fw.vars.ends_with("OVMF_VARS.fd"));
        assert!(find_uefi_firmware_in(dir.path(), "aarch64").is_none());
    }

    #[test]
    fn arch_comes_from_the_binary_name() {
        assert_eq!(arch_of_binary("qemu-system-aarch64"), "aarch64");
        assert_eq!(arch_of_binary("/usr/bin/qemu-system-x86_64"), "x86_64");
        assert_eq!(arch_of_binary("qemu-kvm"), "x86_64");
    }

    #[test]
    fn efivars_are_copied_writable() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("VARS.fd");
        std::fs::write(&template, vec![0u8; 4096]).unwrap();
        let mut perms = std::fs::metadata(&template).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt;
        perms.set_mode(0o444);
        std::fs::set_permissions(&template, perms).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let copy = copy_efivars(&template, &out).unwrap();
        assert_eq!(copy, out.join("efivars.fd"));
        assert!(!std::fs::metadata(&copy).unwrap().permissions().readonly());
    }
}
