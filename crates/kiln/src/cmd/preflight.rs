//! The host check `kiln build` runs before anything is downloaded or
//! started: every build's demands (memory, disk, accelerator, firmware,
//! files, ports, programs) against what this host has. A failed check
//! refuses the run (exit 3) with the number and where it was set.

use kiln_build::preflight::{
    CheckOptions, CollectOptions, Demand, HostFacts, Origin, Status, check_with, worst,
};
use kiln_build::provision::ProvisionerConfig;
use kiln_build::run::RunOptions;
use kiln_build::spec::{BuildSpec, SourceSpec};
use kiln_template::load::{Loaded, describe_origin};

use crate::events::Mode;
use crate::exit::Exit;
use crate::render;

/// What each build demands of the host.
pub fn demands(specs: &[BuildSpec], loaded: &Loaded, opts: &RunOptions) -> Vec<Demand> {
    let mut out = Vec::new();
    for spec in specs {
        let mut d = match &spec.source {
            SourceSpec::Qemu(q) => {
                let origin = |field: &str| origin_of(q.spans.get(field)?, loaded);
                Demand::from_qemu(&spec.name, q, &opts.cwd, &origin)
            }
            SourceSpec::Null(_) => Demand::new(&spec.name),
        };
        for p in &spec.provisioners {
            if let ProvisionerConfig::ShellLocal(s) = &p.config {
                d.add_shell_programs("a shell-local provisioner", &s.inline);
            }
        }
        out.push(d);
    }
    // packer-maas prepares files its qemu build names (the seed ISO, the
    // UEFI variables) in a null build of the same run: a missing file that
    // a sibling's shell-local may create is waited for, not refused.
    let makers: Vec<&str> = specs
        .iter()
        .filter(|s| {
            s.provisioners
                .iter()
                .any(|p| matches!(p.config, ProvisionerConfig::ShellLocal(_)))
        })
        .map(|s| s.name.as_str())
        .collect();
    for d in &mut out {
        let others: Vec<&str> = makers.iter().copied().filter(|m| *m != d.build).collect();
        if others.is_empty() {
            continue;
        }
        d.files.retain(|f| {
            let later = f.path.starts_with(&opts.cwd) && !f.path.exists();
            if later {
                render::err_line(&format!(
                    "preflight: {} does not exist yet; {} runs shell-local and may create it, so {} waits for it",
                    f.path.display(),
                    others.join(", "),
                    d.build
                ));
            }
            !later
        });
    }
    out
}

/// `var.memory, set in VAR03.pkr.hcl:4` when the attribute's expression
/// names an input variable (the first it names), from the template's
/// provenance of that variable.
fn origin_of(attribute: &kiln_template::span::Span, loaded: &Loaded) -> Option<Origin> {
    let var = *loaded.variables_read_at(attribute).first()?;
    let name = &var.name;
    let set = var.origin().map(describe_origin).unwrap_or_default();
    Some(Origin::var(name, format!("var.{name}, set in {set}")))
}

/// Run the checks; print what is not fine; refuse when something fails.
pub async fn refuse_if_unfit(
    specs: &[BuildSpec],
    loaded: &Loaded,
    opts: &RunOptions,
    mode: Mode,
) -> Result<(), Exit> {
    let demands = demands(specs, loaded, opts);
    if demands.is_empty() {
        return Ok(());
    }
    let facts = HostFacts::collect(&demands, &CollectOptions::cached_in(&opts.cache_dir)).await;
    let checks = check_with(
        &demands,
        &facts,
        &CheckOptions {
            parallel_builds: (opts.parallel_builds > 0).then_some(opts.parallel_builds),
        },
    );
    // An unset accelerator falling back to TCG is said by the build itself.
    let shown = checks.iter().filter(|c| {
        c.status == Status::Fail || (c.status == Status::Warn && c.id != "accelerator")
    });
    for c in shown {
        match mode {
            Mode::Json => {
                let line = serde_json::json!({"event": "preflight", "check": c});
                render::out(&line.to_string());
            }
            Mode::Human => {
                let word = if c.status == Status::Fail {
                    "refused"
                } else {
                    "warning"
                };
                render::err_line(&format!("preflight {word}: {}: {}", c.id, c.detail));
                if let Some(fix) = &c.fix {
                    render::err_line(&format!("hint: {fix}"));
                }
            }
        }
    }
    if worst(&checks) == Status::Fail {
        render::error(
            "preflight refused to start the build: it cannot work on this host",
            Some("fix what is listed above, or pass --skip-preflight if you know better"),
        );
        return Err(Exit::Refused);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kiln_template::load::{LoadOptions, load_from_memory};

    use super::*;

    #[test]
    fn origin_of_names_the_auto_var_file_line_that_set_the_variable() {
        let template = "variable \"memory\" {\n  default = 1024\n}\nsource \"qemu\" \"x\" {\n  cpus   = 2\n  memory = \"${var.memory}\"\n}\nbuild { sources = [\"source.qemu.x\"] }\n";
        let loaded = load_from_memory(
            &[("t.pkr.hcl".into(), template.into())],
            &[(
                "big.auto.pkrvars.hcl".into(),
                "# big\n\nmemory = 4096\n".into(),
            )],
            &LoadOptions::default(),
        )
        .unwrap();
        let attrs = &loaded.builds[0].source.body.attrs;
        let origin = origin_of(&attrs["memory"].span, &loaded).unwrap();
        assert_eq!(origin.text, "var.memory, set in big.auto.pkrvars.hcl:3");
        assert_eq!(origin.var.as_deref(), Some("memory"));
        // A literal names no variable: the caller falls back to its span.
        assert!(origin_of(&attrs["cpus"].span, &loaded).is_none());
    }
}
