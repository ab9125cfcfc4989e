//! `kiln build --accel tcg` (`KILN_ACCEL=tcg`): run a template that
//! hard-codes KVM on a host where KVM does not run guests (a cloud VM
//! without working nested virtualization), under TCG software emulation.
//!
//! packer-maas's templates pass `-machine accel=kvm` and `-cpu host` in
//! `qemuargs`; both fail without KVM. The rewrite is pure and says what it
//! changed, so the user sees exactly how their command line differs:
//! - `accelerator` becomes `tcg`;
//! - `cpu_model = "host"` and `-cpu host[,…]` become `max` (TCG's closest
//!   to "everything the host has"), other CPU models are kept;
//! - `accel=…` in `-machine`/`-M` becomes `accel=tcg`, `-accel X[,…]`
//!   becomes `-accel tcg` (X's own options do not apply to TCG), and
//!   `-enable-kvm` is dropped.
//!
//! Without the switch nothing is rewritten and preflight refuses KVM as
//! before.

use crate::config::{Accelerator, QemuConfig};
use crate::optstr::OptionString;

/// Force TCG on `cfg`; returns one line per change made.
pub fn force_tcg(cfg: &mut QemuConfig) -> Vec<String> {
    let mut notes = Vec::new();
    if cfg.accelerator != Some(Accelerator::Tcg) {
        notes.push(match cfg.accelerator {
            Some(a) => format!("accelerator = \"{}\" → \"tcg\"", a.as_str()),
            None => "accelerator (unset) → \"tcg\"".to_string(),
        });
        cfg.accelerator = Some(Accelerator::Tcg);
    }
    if cfg.cpu_model.as_deref() == Some("host") {
        notes.push("cpu_model = \"host\" → \"max\"".into());
        cfg.cpu_model = Some("max".into());
    }
    let mut kept = Vec::with_capacity(cfg.qemuargs.len());
    for arg in std::mem::take(&mut cfg.qemuargs) {
        let Some(switch) = arg.first().map(String::as_str) else {
            kept.push(arg);
            continue;
        };
        let rewritten: Option<Vec<String>> = match switch {
            "-enable-kvm" => None,
            "-machine" | "-M" if arg.len() == 2 => Some(vec![arg[0].clone(), accel_tcg(&arg[1])]),
            "-accel" if arg.len() == 2 && first_option(&arg[1]) != "tcg" => {
                Some(vec![arg[0].clone(), "tcg".into()])
            }
            "-cpu" if arg.len() == 2 && first_option(&arg[1]) == "host" => {
                let rest = arg[1].strip_prefix("host").unwrap_or("");
                Some(vec![arg[0].clone(), format!("max{rest}")])
            }
            _ => Some(arg.clone()),
        };
        match rewritten {
            None => notes.push(format!("qemuargs `{}` dropped", arg.join(" "))),
            Some(new) => {
                if new != arg {
                    notes.push(format!(
                        "qemuargs `{}` → `{}`",
                        arg.join(" "),
                        new.join(" ")
                    ));
                }
                kept.push(new);
            }
        }
    }
    cfg.qemuargs = kept;
    notes
}

/// The first option of a QEMU option string (`kvm` of `kvm,kernel-irqchip=on`).
fn first_option(value: &str) -> String {
    OptionString::parse(value)
        .iter()
        .next()
        .map(|o| o.text())
        .unwrap_or_default()
}

/// Every `accel=` of a `-machine` option string set to `tcg`; the rest
/// (`,,` included) comes back as written.
fn accel_tcg(value: &str) -> String {
    let mut opts = OptionString::parse(value);
    for accel in opts.values_mut("accel") {
        *accel = "tcg".into();
    }
    opts.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{decode, lists, minimal, s};
    use kiln_template::value::Value;

    fn cfg(extra: &[(&str, Value)]) -> QemuConfig {
        let mut attrs = minimal();
        attrs.extend(extra.iter().cloned());
        decode(&attrs)
    }

    fn args(items: &[&[&str]]) -> Vec<Vec<String>> {
        items
            .iter()
            .map(|a| a.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn packer_maas_kvm_arguments_become_tcg() {
        let mut c = cfg(&[(
            "qemuargs",
            lists(&[
                &["-machine", "accel=kvm"],
                &["-cpu", "host"],
                &["-enable-kvm"],
                &["-accel", "kvm,kernel-irqchip=on"],
                &["-M", "q35,accel=kvm:tcg,smm=on"],
                &["-cpu", "host,+vmx"],
                &["-device", "virtio-gpu-pci"],
            ]),
        )]);
        let notes = force_tcg(&mut c);
        assert_eq!(c.accelerator, Some(Accelerator::Tcg));
        assert_eq!(
            c.qemuargs,
            args(&[
                &["-machine", "accel=tcg"],
                &["-cpu", "max"],
                &["-accel", "tcg"],
                &["-M", "q35,accel=tcg,smm=on"],
                &["-cpu", "max,+vmx"],
                &["-device", "virtio-gpu-pci"],
            ])
        );
        assert!(
            notes.contains(&"qemuargs `-machine accel=kvm` → `-machine accel=tcg`".to_string()),
            "{notes:?}"
        );
        assert!(notes.contains(&"qemuargs `-enable-kvm` dropped".to_string()));
        assert!(notes.iter().any(|n| n.starts_with("accelerator")));
    }

    #[test]
    fn tcg_templates_are_left_alone() {
        let mut c = cfg(&[
            ("accelerator", s("tcg")),
            ("cpu_model", s("qemu64")),
            (
                "qemuargs",
                lists(&[&["-machine", "q35,accel=tcg"], &["-drive", "file=a,,b.img"]]),
            ),
        ]);
        let before = c.qemuargs.clone();
        assert!(force_tcg(&mut c).is_empty());
        assert_eq!(c.qemuargs, before);
        assert_eq!(accel_tcg("file=a,,b,accel=kvm"), "file=a,,b,accel=tcg");
    }

    #[test]
    fn cpu_model_host_becomes_max() {
        let mut c = cfg(&[("accelerator", s("kvm")), ("cpu_model", s("host"))]);
        let notes = force_tcg(&mut c);
        assert_eq!(c.cpu_model.as_deref(), Some("max"));
        assert_eq!(notes.len(), 2, "{notes:?}");
    }
}
