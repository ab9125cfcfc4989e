//! `kiln doctor`: the host half of preflight (binaries, versions,
//! accelerators, the KVM verdict, firmware, `qemu-img`, memory and disk),
//! optionally followed by the template half, and `--fix`: install what is
//! missing with apt on Debian/Ubuntu.

use std::sync::Arc;

use serde::Serialize;

use super::check::{Check, Status, check, human_bytes, kvm_fix, kvm_sentence};
use super::demand::Demand;
use super::host::HostFacts;
use super::packages::{OsRelease, package_for_qemu_binary, uefi_package};

/// The host checks, then (with demands) [`check`] of the template.
pub fn doctor_checks(host: &HostFacts, demands: Option<&[Demand]>) -> Vec<Check> {
    let mut out = Vec::new();
    let demanded: Vec<&str> = demands
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d.qemu_binary.as_ref().map(|b| b.value.as_str()))
        .collect();

    // QEMU binaries (those a template names are checked with it).
    for fact in host
        .qemu
        .iter()
        .filter(|q| !demanded.contains(&q.name.as_str()))
    {
        let name = &fact.name;
        match &fact.binary {
            Ok(b) => {
                let version = b
                    .version
                    .as_ref()
                    .map(|v| v.version.as_str())
                    .unwrap_or("(unknown version)");
                let machines = match b.machines.default_machine() {
                    Some(d) => format!(
                        "{} machine types (default `{}`)",
                        b.machines.machines.len(),
                        d.name
                    ),
                    None => format!("{} machine types", b.machines.machines.len()),
                };
                let accels = if b.accels.is_empty() {
                    "accelerators unknown".to_string()
                } else {
                    format!(
                        "accelerators {}",
                        b.accels
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let others: Vec<String> = host
                    .installed_emulators
                    .iter()
                    .filter(|e| *e != name)
                    .map(|e| format!("`{e}`"))
                    .collect();
                let also = if others.is_empty() {
                    String::new()
                } else {
                    format!("; also installed: {}", others.join(", "))
                };
                let detail = format!(
                    "`{name}` {version} at `{}`: {machines}, {accels}{also}",
                    b.path.display()
                );
                out.push(if b.problems.is_empty() {
                    Check::ok("qemu.binary", detail)
                } else {
                    Check::warn(
                        "qemu.binary",
                        format!("{detail}; {}", b.problems.join("; ")),
                    )
                });
            }
            Err(e) => {
                let mut c = Check::fail("qemu.binary", format!("`{name}`: {e}"));
                if let Some(pkg) = package_for_qemu_binary(name, host.os.as_ref()) {
                    c = c.with_fix(format!("install `{pkg}`")).with_package(pkg);
                }
                out.push(c);
            }
        }
    }

    // qemu-img.
    out.push(match &host.qemu_img {
        Ok(img) => Check::ok(
            "qemu.img",
            format!(
                "`qemu-img` {} at `{}`",
                img.version
                    .as_ref()
                    .map(|v| v.version.as_str())
                    .unwrap_or("(unknown version)"),
                img.path.display()
            ),
        ),
        Err(e) => Check::fail("qemu.img", format!("`qemu-img`: {e}"))
            .with_fix("install `qemu-utils`")
            .with_package("qemu-utils"),
    });

    // KVM.
    out.push(match &host.kvm {
        Some(report) => {
            let cached = if report.cached {
                " (verdict cached for this boot)"
            } else {
                ""
            };
            let detail = format!("{}{cached}", kvm_sentence(&report.verdict));
            if report.verdict.works() {
                Check::ok("kvm", detail)
            } else {
                let mut c = Check::warn(
                    "kvm",
                    format!(
                        "{detail}; builds without `accelerator` use TCG, about {:.0}× slower",
                        kiln_qemu::accel::TCG_SLOWDOWN
                    ),
                );
                if let Some(fix) = kvm_fix(&report.verdict) {
                    c = c.with_fix(fix);
                }
                c
            }
        }
        None => Check::warn(
            "kvm",
            format!(
                "kvm: not probed ({})",
                host.kvm_not_probed.as_deref().unwrap_or("no reason given")
            ),
        ),
    });

    // UEFI firmware for the architectures looked at.
    for u in &host.uefi {
        out.push(match &u.firmware {
            Some(fw) => Check::ok(
                "firmware",
                format!(
                    "UEFI firmware for {}: `{}` and `{}`",
                    u.arch,
                    fw.code.display(),
                    fw.vars.display()
                ),
            ),
            None => {
                let mut c = Check::warn(
                    "firmware",
                    format!(
                        "no UEFI firmware for {} (needed by `efi_boot` and pflash `qemuargs`)",
                        u.arch
                    ),
                );
                if let Some(pkg) = uefi_package(&u.arch) {
                    c = c.with_fix(format!("install `{pkg}`")).with_package(pkg);
                }
                c
            }
        });
    }

    // Memory and disk summaries.
    out.push(match &host.memory {
        Ok(m) => Check::ok(
            "memory",
            format!(
                "{} available of {}",
                human_bytes(m.available_bytes()),
                human_bytes(m.total_bytes())
            ),
        ),
        Err(e) => Check::warn("memory", format!("cannot tell: {e}")),
    });
    let demanded_dirs: Vec<&std::path::Path> = demands
        .unwrap_or_default()
        .iter()
        .flat_map(|d| d.disks.iter().map(|k| k.dir.as_path()))
        .collect();
    // One line per filesystem, with the directories it holds.
    let mut by_device: Vec<(&super::host::FsSpace, Vec<String>)> = Vec::new();
    for fs in host
        .filesystems
        .iter()
        .filter(|f| !demanded_dirs.contains(&f.dir.as_path()))
    {
        match &fs.space {
            Ok(space) => {
                let dir = format!("`{}`", fs.dir.display());
                match by_device.iter_mut().find(|(s, _)| s.device == space.device) {
                    Some((_, dirs)) => dirs.push(dir),
                    None => by_device.push((space, vec![dir])),
                }
            }
            Err(e) => out.push(Check::warn("disk", format!("cannot tell: {e}"))),
        }
    }
    for (space, dirs) in by_device {
        let on = space
            .mount_point
            .as_ref()
            .map(|m| format!(" on `{}`", m.display()))
            .unwrap_or_default();
        out.push(Check::ok(
            "disk",
            format!(
                "{} free of {}{on} (holding {})",
                human_bytes(space.available_bytes),
                human_bytes(space.total_bytes),
                dirs.join(", ")
            ),
        ));
    }

    if let Some(demands) = demands {
        out.extend(check(demands, host));
    }
    out
}

/// One package to install and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AptInstall {
    pub package: String,
    /// The ids of the checks it fixes.
    pub because: Vec<String>,
}

/// The packages that fix failing or warning checks, in first-seen order.
pub fn fix_plan(checks: &[Check]) -> Vec<AptInstall> {
    let mut plan: Vec<AptInstall> = Vec::new();
    for c in checks.iter().filter(|c| c.status != Status::Ok) {
        for p in &c.packages {
            match plan.iter_mut().find(|a| &a.package == p) {
                Some(a) => {
                    if !a.because.contains(&c.id) {
                        a.because.push(c.id.clone());
                    }
                }
                None => plan.push(AptInstall {
                    package: p.clone(),
                    because: vec![c.id.clone()],
                }),
            }
        }
    }
    plan
}

/// A command `apply_fix` ran, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RanCommand {
    pub argv: Vec<String>,
    pub success: bool,
    pub status: String,
    /// The last lines of its output (stdout and stderr).
    pub output_tail: String,
}

/// What `apply_fix` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FixReport {
    /// Every command run, in order.
    pub ran: Vec<RanCommand>,
    pub installed: Vec<String>,
    /// On hosts without apt: what to install by hand (nothing was run).
    pub by_hand: Option<String>,
}

/// Why `apply_fix` did not finish.
#[derive(Clone, Debug, thiserror::Error)]
pub enum FixError {
    #[error(transparent)]
    Spawn(#[from] kiln_exec::ExecError),
    #[error("`{argv}` failed ({status}):\n{output_tail}")]
    Failed {
        argv: String,
        status: String,
        output_tail: String,
        /// What ran before (and including) the failing command.
        ran: Vec<RanCommand>,
    },
    #[error(
        "installing packages needs root: run `kiln doctor --fix` as root, or install `sudo` (tried: {argv})"
    )]
    NotRoot { argv: String },
}

/// How to run apt: as root directly, else through `sudo -n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AptRunner {
    /// Prefix before `apt-get` (`["sudo", "-n"]` when not root).
    pub prefix: Vec<String>,
    pub apt_get: String,
}

impl AptRunner {
    /// For this process: root runs `apt-get`; others `sudo -n apt-get`.
    pub fn for_this_user() -> Result<AptRunner, FixError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid == 0 {
            return Ok(AptRunner {
                prefix: Vec::new(),
                apt_get: "apt-get".into(),
            });
        }
        if super::host::which("sudo").is_none() {
            return Err(FixError::NotRoot {
                argv: "apt-get install -y …".into(),
            });
        }
        Ok(AptRunner {
            prefix: vec!["sudo".into(), "-n".into()],
            apt_get: "apt-get".into(),
        })
    }

    /// The argv of `apt-get ARGS…`.
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        self.prefix
            .iter()
            .cloned()
            .chain(std::iter::once(self.apt_get.clone()))
            .chain(args.iter().map(|a| a.to_string()))
            .collect()
    }
}

/// The argv `apply_fix` runs for a plan: `apt-get install -y P…`.
pub fn install_argv(runner: &AptRunner, plan: &[AptInstall]) -> Vec<String> {
    let mut args = vec!["install", "-y"];
    args.extend(plan.iter().map(|a| a.package.as_str()));
    runner.argv(&args)
}

/// Install the plan's packages: `apt-get install -y P…` (with
/// `DEBIAN_FRONTEND=noninteractive`); when apt does not know a package,
/// `apt-get update` once and retry. On other distributions nothing runs
/// and the report says what to install by hand. apt's own duration is not
/// bounded here: a large install takes minutes.
pub async fn apply_fix(plan: &[AptInstall], os: Option<&OsRelease>) -> Result<FixReport, FixError> {
    if plan.is_empty() {
        return Ok(FixReport {
            ran: Vec::new(),
            installed: Vec::new(),
            by_hand: None,
        });
    }
    let packages: Vec<String> = plan.iter().map(|a| a.package.clone()).collect();
    match os {
        Some(os) if os.uses_apt() => {}
        other => {
            let name = other
                .map(|o| o.name().to_string())
                .unwrap_or_else(|| "this host (no /etc/os-release)".to_string());
            return Ok(FixReport {
                ran: Vec::new(),
                installed: Vec::new(),
                by_hand: Some(format!(
                    "{name} does not use apt; install by hand what provides these Debian packages: {} (e.g. on Fedora `qemu-system-x86` and `qemu-img`, `edk2-ovmf` for `ovmf`)",
                    packages
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            });
        }
    }
    let runner = AptRunner::for_this_user()?;
    apply_fix_with(&runner, plan).await
}

/// [`apply_fix`] with an explicit runner (tests, a different `apt-get`).
pub async fn apply_fix_with(
    runner: &AptRunner,
    plan: &[AptInstall],
) -> Result<FixReport, FixError> {
    let mut ran = Vec::new();
    let install = install_argv(runner, plan);
    let first = run(&install).await?;
    ran.push(first.clone());
    if !first.success && first.output_tail.contains("Unable to locate package") {
        let update = runner.argv(&["update"]);
        let up = run(&update).await?;
        ran.push(up.clone());
        if up.success {
            let again = run(&install).await?;
            ran.push(again);
        }
    }
    let Some(last) = ran.last() else {
        return Err(FixError::Failed {
            argv: install.join(" "),
            status: "not run".into(),
            output_tail: String::new(),
            ran,
        });
    };
    if !last.success {
        return Err(FixError::Failed {
            argv: last.argv.join(" "),
            status: last.status.clone(),
            output_tail: last.output_tail.clone(),
            ran: ran.clone(),
        });
    }
    Ok(FixReport {
        installed: plan.iter().map(|a| a.package.clone()).collect(),
        ran,
        by_hand: None,
    })
}

async fn run(argv: &[String]) -> Result<RanCommand, FixError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| kiln_exec::ExecError::Spawn {
            command: String::new(),
            source: Arc::new(std::io::Error::other("empty command")),
        })?;
    let output = kiln_exec::Program::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .await?;
    let text = output.stdout_text() + &String::from_utf8_lossy(&output.stderr);
    Ok(RanCommand {
        argv: argv.to_vec(),
        success: output.status.success(),
        status: output.status.to_string(),
        output_tail: kiln_exec::tail(&text, 15),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fix_plan_collects_packages_of_failing_checks_once() {
        let checks = vec![
            Check::ok("qemu.img", "fine").with_package("qemu-utils"),
            Check::fail("qemu.binary", "missing").with_package("qemu-system-x86"),
            Check::fail("firmware", "no ovmf").with_package("ovmf"),
            Check::fail("file", "no OVMF_VARS.fd").with_package("ovmf"),
            Check::warn("kvm", "guests do not run"),
        ];
        let plan = fix_plan(&checks);
        assert_eq!(
            plan,
            vec![
                AptInstall {
                    package: "qemu-system-x86".into(),
                    because: vec!["qemu.binary".into()]
                },
                AptInstall {
                    package: "ovmf".into(),
                    because: vec!["firmware".into(), "file".into()]
                },
            ]
        );
        let root = AptRunner {
            prefix: Vec::new(),
            apt_get: "apt-get".into(),
        };
        assert_eq!(
            install_argv(&root, &plan),
            vec!["apt-get", "install", "-y", "qemu-system-x86", "ovmf"]
        );
        let user = AptRunner {
            prefix: vec!["sudo".into(), "-n".into()],
            apt_get: "apt-get".into(),
        };
        assert_eq!(
            user.argv(&["update"]),
            vec!["sudo", "-n", "apt-get", "update"]
        );
    }

    #[tokio::test]
    async fn other_distributions_get_instructions_instead_of_commands() {
        let fedora = OsRelease::parse("ID=fedora\nPRETTY_NAME=\"Fedora Linux 40\"\n");
        let plan = vec![AptInstall {
            package: "ovmf".into(),
            because: vec!["firmware".into()],
        }];
        let report = apply_fix(&plan, Some(&fedora)).await.unwrap();
        assert!(report.ran.is_empty());
        let by_hand = report.by_hand.unwrap();
        assert!(
            by_hand.contains("Fedora Linux 40") && by_hand.contains("`ovmf`"),
            "{by_hand}"
        );
        // Nothing to do: nothing runs.
        let empty = apply_fix(&[], Some(&fedora)).await.unwrap();
        assert!(empty.ran.is_empty() && empty.by_hand.is_none());
    }

    #[tokio::test]
    async fn apply_fix_reports_what_it_ran_and_its_failure() {
        // A stand-in for apt-get: `false` fails like a failed install.
        let runner = AptRunner {
            prefix: Vec::new(),
            apt_get: "false".into(),
        };
        let plan = vec![AptInstall {
            package: "ovmf".into(),
            because: vec!["firmware".into()],
        }];
        match apply_fix_with(&runner, &plan).await {
            Err(FixError::Failed { argv, ran, .. }) => {
                assert_eq!(argv, "false install -y ovmf");
                assert_eq!(ran.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        let runner = AptRunner {
            prefix: Vec::new(),
            apt_get: "true".into(),
        };
        let report = apply_fix_with(&runner, &plan).await.unwrap();
        assert_eq!(report.ran[0].argv, vec!["true", "install", "-y", "ovmf"]);
        assert_eq!(report.installed, vec!["ovmf"]);
    }
}
