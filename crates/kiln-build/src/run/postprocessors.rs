//! Post-processor chains, with Packer's rules for which artifacts are
//! kept: each chain starts from the builder's artifact; an intermediate
//! nobody keeps is deleted; the builder's artifact is deleted only when no
//! chain's first post-processor keeps it.

use kiln_qemu::placeholders::TemplateData;

use super::RunOptions;
use crate::artifact::Artifact;
use crate::pipeline::{BoxError, Pipeline, StepError};
use crate::postprocess::maas::{self, LeakContext};
use crate::postprocess::{PostProcessorConfig, checksum, compress, manifest};
use crate::provision::shell::BuildFacts;
use crate::provision::shell_local;
use crate::spec::{BuildSpec, PostProcessorSpec};
use crate::step::StepId;

pub(crate) async fn run_chains(
    spec: &BuildSpec,
    builder: Artifact,
    opts: &RunOptions,
    p: &mut Pipeline,
) -> Result<Vec<Artifact>, StepError> {
    if spec.post_processors.is_empty() {
        return Ok(vec![builder]);
    }
    let leak = leak_context(spec, &builder, p);
    let mut keep_original = false;
    let mut results = Vec::new();
    for (c, chain) in spec.post_processors.iter().enumerate() {
        let mut prior = builder.clone();
        for (i, pp) in chain.iter().enumerate() {
            let step = StepId::PostProcessor {
                chain: c + 1,
                index: i + 1,
                label: pp.label(),
            };
            p.ev.say(format!("Running post-processor: {}", pp.label()));
            let input = prior.clone();
            let ev = p.ev.clone();
            let (artifact, scan) = p
                .step(step, run_one(spec, pp, &input, opts, &leak, &ev))
                .await?;
            if let Some(scan) = scan {
                p.record.scans.push(scan);
            }
            let (default_keep, forced) = pp.config.keep_defaults();
            let keep = match pp.keep_input_artifact {
                Some(false) if default_keep && forced => true,
                Some(k) => k,
                None => default_keep,
            };
            if i == 0 {
                keep_original |= keep;
            } else if !keep {
                for (path, e) in input.destroy() {
                    p.ev.warn(format!("could not remove {}: {e}", path.display()));
                }
            }
            prior = artifact;
        }
        results.push(prior);
    }
    if keep_original {
        results.insert(0, builder);
    } else if !builder.files.is_empty() {
        p.ev.say(format!(
            "Deleting the builder's artifact ({}): no post-processor keeps it (`keep_input_artifact`)",
            builder.describe()
        ));
        for (path, e) in builder.destroy() {
            p.ev.warn(format!("could not remove {}: {e}", path.display()));
        }
    }
    Ok(results)
}

async fn run_one(
    spec: &BuildSpec,
    pp: &PostProcessorSpec,
    input: &Artifact,
    opts: &RunOptions,
    leak: &LeakContext,
    ev: &crate::events::BuildEvents,
) -> Result<(Artifact, Option<serde_json::Value>), BoxError> {
    let build_name = spec.source_name().to_string();
    let builder_type = spec.source.type_name().to_string();
    let cwd = opts.cwd.clone();
    match &pp.config {
        PostProcessorConfig::Manifest(cfg) => {
            let rec = manifest::record(
                cfg,
                input,
                &build_name,
                &builder_type,
                &opts.run_uuid,
                now_unix(),
            );
            manifest::append(&cwd.join(&cfg.output), rec, &opts.run_uuid, opts.force)
                .map_err(BoxError::from)?;
            Ok((input.clone(), None))
        }
        PostProcessorConfig::Checksum(cfg) => {
            let cfg = cfg.clone();
            let input = input.clone();
            tokio::task::spawn_blocking(move || {
                checksum::run(&cfg, &input, &cwd, &build_name, &builder_type)
            })
            .await
            .map_err(BoxError::from)?
            .map(|a| (a, None))
            .map_err(BoxError::from)
        }
        PostProcessorConfig::Compress(cfg) => {
            let cfg = cfg.clone();
            let input = input.clone();
            let ev2 = ev.clone();
            tokio::task::spawn_blocking(move || {
                compress::run(
                    &cfg,
                    &input,
                    &cwd,
                    &build_name,
                    &builder_type,
                    &|done, total| ev2.progress("compress", done, Some(total)),
                )
            })
            .await
            .map_err(BoxError::from)?
            .map(|a| (a, None))
            .map_err(BoxError::from)
        }
        PostProcessorConfig::ShellLocal(cfg) => {
            let facts = BuildFacts {
                build_name,
                builder_type,
                http: None,
            };
            let data = TemplateData::new().with("PackerRunUUID", &opts.run_uuid);
            shell_local::run(cfg, &cwd, &facts, &data, ev)
                .await
                .map_err(BoxError::from)?;
            Ok((input.clone(), None))
        }
        PostProcessorConfig::MaasTgz(cfg) => {
            let (artifact, scan) =
                maas::run_tgz(cfg, input, &cwd, &build_name, &builder_type, leak, ev)
                    .await
                    .map_err(|e| e.to_string())?;
            Ok((artifact.clone(), scan.map(|s| scan_record(&artifact, &s))))
        }
        PostProcessorConfig::MaasDd(cfg) => {
            let (artifact, scan) =
                maas::run_dd(cfg, input, &cwd, &build_name, &builder_type, leak, ev)
                    .await
                    .map_err(|e| e.to_string())?;
            Ok((artifact.clone(), scan.map(|s| scan_record(&artifact, &s))))
        }
        PostProcessorConfig::MaasUpload(cfg) => {
            maas::run_upload(cfg, input, &cwd, ev)
                .await
                .map_err(|e| e.to_string())?;
            Ok((input.clone(), None))
        }
    }
}

/// What the leak scan looks for: every secret the redactor knows, the
/// build's public keys, and the passwords the build logged in with.
fn leak_context(spec: &BuildSpec, builder: &Artifact, p: &Pipeline) -> LeakContext {
    let mut passwords = Vec::new();
    if let crate::spec::SourceSpec::Qemu(q) = &spec.source
        && let Some(pw) = q.ssh().and_then(|s| s.password.as_ref())
    {
        passwords.push(pw.expose().clone());
    }
    LeakContext {
        sensitive: p.ev.events.redactor().secrets().to_vec(),
        build_public_keys: builder.build_public_keys.clone(),
        passwords,
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn scan_record(artifact: &Artifact, scan: &kiln_image::scan::ScanReport) -> serde_json::Value {
    serde_json::json!({
        "artifact": artifact.describe(),
        "clean": scan.is_clean(),
        "findings": scan.findings,
        "allowed": scan.allowed,
        "files": scan.files,
    })
}
