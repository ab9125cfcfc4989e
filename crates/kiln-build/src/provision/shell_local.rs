//! `shell-local`, as a provisioner and as a post-processor: commands run on
//! the build host, as Packer runs them — inline commands written to a
//! temporary script with a shebang, every script run through
//! `execute_command` (default `["/bin/sh", "-c", "{{.Vars}} {{.Script}}"]`)
//! in the working directory, output streamed, exit code checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use kiln_qemu::placeholders::{self, TemplateData};
use kiln_template::body::Body;
use kiln_template::decode::{DecodeError, Decoder};
use kiln_template::load::input::check_input;
use kiln_template::schema::{Field, PluginKind, Schema};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::shell::{BuildFacts, environment, flatten_env};
use crate::events::{BuildEvents, Stream};

/// `provisioner "shell-local"`.
pub static PROVISIONER_SCHEMA: Schema = Schema {
    kind: PluginKind::Provisioner,
    name: "shell-local",
    summary: "Commands run on the build host: inline commands written to a temporary script with a shebang, every script run through `execute_command` in the working directory, output streamed, exit code checked.",
    groups: &[FIELDS],
    example: &[("inline", r#"["echo hello"]"#)],
};

/// `post-processor "shell-local"`: the provisioner's fields and
/// `keep_input_artifact`.
pub static POST_PROCESSOR_SCHEMA: Schema = Schema {
    kind: PluginKind::PostProcessor,
    name: "shell-local",
    summary: "Commands run on the build host after the build, as the `shell-local` provisioner runs them.",
    groups: &[FIELDS, POST_PROCESSOR_FIELDS],
    example: &[("inline", r#"["echo hello"]"#)],
};

pub static FIELDS: &[Field] = &[
    Field::new(
        "command",
        "string",
        "One command (the same as a one-line `inline`).",
    ),
    Field::new(
        "inline",
        "[]string",
        "Commands written to a temporary script. One of `command`, `inline`, `script` or `scripts` is required.",
    ),
    Field::new("script", "string", "One local script."),
    Field::new("scripts", "[]string", "Local scripts run in order."),
    Field::new(
        "environment_vars",
        "[]string",
        "`KEY=value` strings for `{{.Vars}}`.",
    ),
    Field::new(
        "env",
        "map[string]string",
        "A map of environment variables for `{{.Vars}}`.",
    ),
    Field::new(
        "execute_command",
        "[]string",
        "argv of each run; `{{.Vars}}` and `{{.Script}}` are rendered.",
    )
    .default(r#"["/bin/sh", "-c", "{{.Vars}} {{.Script}}"]"#),
    Field::new("inline_shebang", "string", "Shebang of the inline script.").default("/bin/sh -e"),
    Field::new(
        "only_on",
        "[]string",
        "Run only on these host OSes (`darwin`, `freebsd`, `linux`, `openbsd`, `solaris`, `windows`); empty: everywhere.",
    ),
    Field::new(
        "valid_exit_codes",
        "[]int",
        "Exit codes that count as success.",
    )
    .default("[0]"),
    Field::new(
        "tempfile_extension",
        "string",
        "Extension of the temporary inline script.",
    ),
    Field::ignored(
        "use_linux_pathing",
        "bool",
        "Windows Subsystem for Linux paths; not used on the Linux hosts kiln runs on.",
    ),
    Field::new("env_var_format", "string", "printf format of one variable.").default("%s='%s' "),
];

/// Fields only the post-processor has.
pub static POST_PROCESSOR_FIELDS: &[Field] = &[Field::new(
    "keep_input_artifact",
    "bool",
    "Keep the input artifact (it is always kept).",
)];

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ShellLocalConfig {
    pub inline: Vec<String>,
    pub scripts: Vec<PathBuf>,
    pub environment_vars: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub execute_command: Vec<String>,
    pub inline_shebang: String,
    pub only_on: Vec<String>,
    pub valid_exit_codes: Vec<i64>,
    pub tempfile_extension: Option<String>,
    pub env_var_format: String,
}

const OSES: &[&str] = &[
    "darwin", "freebsd", "linux", "openbsd", "solaris", "windows",
];

/// Decode a shell-local block. `post_processor` also accepts
/// `keep_input_artifact`.
pub fn decode(
    body: &Body,
    what: &str,
    cwd: &Path,
    post_processor: bool,
) -> Result<ShellLocalConfig, Vec<DecodeError>> {
    let schema = if post_processor {
        &POST_PROCESSOR_SCHEMA
    } else {
        &PROVISIONER_SCHEMA
    };
    let mut d = Decoder::with_schema(body, what, schema);
    let command: Option<String> = d.opt("command");
    let mut inline: Vec<String> = d.or("inline", Vec::new());
    let script: Option<String> = d.opt("script");
    let mut scripts: Vec<String> = d.or("scripts", Vec::new());
    let environment_vars: Vec<String> = d.or("environment_vars", Vec::new());
    let env: BTreeMap<String, String> = d.or("env", BTreeMap::new());
    let execute_command: Vec<String> = d.or_default("execute_command");
    let inline_shebang: String = d.or_default("inline_shebang");
    let only_on: Vec<String> = d.or("only_on", Vec::new());
    let valid_exit_codes: Vec<i64> = d.or_default("valid_exit_codes");
    let tempfile_extension: Option<String> = d.opt("tempfile_extension");
    let env_var_format: String = d.or_default("env_var_format");
    if post_processor {
        let _ = d.opt::<bool>("keep_input_artifact");
    }
    let too_many = "you may only specify one of `command`, `inline`, `script` or `scripts`";
    if let Some(c) = command {
        if !inline.is_empty() || !scripts.is_empty() || script.is_some() {
            d.error("command", too_many, None);
        }
        inline = vec![c];
    }
    if let Some(s) = script {
        if !scripts.is_empty() || !inline.is_empty() {
            d.error("script", too_many, None);
        }
        scripts = vec![s];
    }
    if !scripts.is_empty() && !inline.is_empty() {
        d.error("scripts", too_many, None);
    }
    if inline.is_empty() && scripts.is_empty() {
        d.error(
            "inline",
            "`command`, `inline`, `script` and `scripts` cannot all be empty",
            None,
        );
    }
    let scripts: Vec<PathBuf> = scripts.iter().map(|s| cwd.join(s)).collect();
    for p in &scripts {
        if let Err(e) = check_input(p, false) {
            d.error(
                "scripts",
                format!("bad script `{}`: {}", p.display(), e.reason()),
                None,
            );
        }
    }
    for os in &only_on {
        if !OSES.contains(&os.as_str()) {
            d.error(
                "only_on",
                format!("invalid OS `{os}`; supported: {}", OSES.join(", ")),
                None,
            );
        }
    }
    if execute_command.is_empty() {
        d.error("execute_command", "must name a program", None);
    }
    for kv in &environment_vars {
        if !matches!(kv.split_once('='), Some((k, _)) if !k.is_empty()) {
            d.error(
                "environment_vars",
                format!("environment variable not in format 'key=value': {kv}"),
                None,
            );
        }
    }
    d.finish()?;
    Ok(ShellLocalConfig {
        inline,
        scripts,
        environment_vars,
        env,
        execute_command,
        inline_shebang,
        only_on,
        valid_exit_codes,
        tempfile_extension: tempfile_extension.map(|e| e.trim_start_matches('.').to_string()),
        env_var_format,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ShellLocalError {
    #[error("cannot prepare the inline script: {0}")]
    Prepare(std::io::Error),
    #[error("`{field}`: {source}")]
    Template {
        field: &'static str,
        source: placeholders::PlaceholderError,
    },
    #[error("cannot run `{argv}`: {source}")]
    Spawn {
        argv: String,
        source: std::io::Error,
    },
    #[error(
        "local script {script} exited with code {code} (valid: {valid:?}){}",
        tail_text(tail)
    )]
    ExitCode {
        script: String,
        code: i32,
        valid: Vec<i64>,
        tail: Vec<String>,
    },
    #[error("local script {script} was killed by a signal")]
    Signal { script: String },
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("\nlast output:\n  {}", tail.join("\n  "))
    }
}

/// The argv for one script, rendered.
pub fn plan_argv(
    cfg: &ShellLocalConfig,
    script: &Path,
    facts: &BuildFacts,
    data: &TemplateData,
) -> Result<Vec<String>, ShellLocalError> {
    let env = environment(&cfg.environment_vars, &cfg.env, facts);
    let vars = flatten_env(&cfg.env_var_format, &env);
    let mut d = data.clone();
    d.insert("Vars", &vars);
    d.insert("Script", script.display());
    d.insert("Command", script.display());
    cfg.execute_command
        .iter()
        .map(|part| {
            placeholders::render(part, &d).map_err(|source| ShellLocalError::Template {
                field: "execute_command",
                source,
            })
        })
        .collect()
}

/// Run every script; returns false when `only_on` skipped it.
pub async fn run(
    cfg: &ShellLocalConfig,
    cwd: &Path,
    facts: &BuildFacts,
    data: &TemplateData,
    ev: &BuildEvents,
) -> Result<bool, ShellLocalError> {
    if !cfg.only_on.is_empty() && !cfg.only_on.iter().any(|os| os == std::env::consts::OS) {
        ev.say("Skipping shell-local due to runtime OS");
        return Ok(false);
    }
    // The inline script lives in a temp dir removed when this returns.
    let tmp = tempfile::Builder::new()
        .prefix("kiln-shell-local")
        .tempdir()
        .map_err(ShellLocalError::Prepare)?;
    let mut scripts = cfg.scripts.clone();
    if !cfg.inline.is_empty() {
        let mut text = format!("#!{}\n", cfg.inline_shebang);
        for line in &cfg.inline {
            let line =
                placeholders::render(line, data).map_err(|source| ShellLocalError::Template {
                    field: "inline",
                    source,
                })?;
            text.push_str(&line);
            text.push('\n');
        }
        let name = match &cfg.tempfile_extension {
            Some(ext) => format!("packer-shell.{ext}"),
            None => "packer-shell".to_string(),
        };
        let path = tmp.path().join(name);
        std::fs::write(&path, text).map_err(ShellLocalError::Prepare)?;
        set_mode(&path, 0o700).map_err(ShellLocalError::Prepare)?;
        scripts.push(path);
    }
    for script in &scripts {
        let argv = plan_argv(cfg, script, facts, data)?;
        let label = if script.starts_with(tmp.path()) {
            "inline script".to_string()
        } else {
            script.display().to_string()
        };
        ev.say(format!("Running local shell script: {label}"));
        let (code, tail) = spawn_streamed(&argv, cwd, ev).await?;
        match code {
            Some(c) if cfg.valid_exit_codes.contains(&i64::from(c)) => {}
            Some(c) => {
                return Err(ShellLocalError::ExitCode {
                    script: label,
                    code: c,
                    valid: cfg.valid_exit_codes.clone(),
                    tail,
                });
            }
            None => return Err(ShellLocalError::Signal { script: label }),
        }
    }
    Ok(true)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Run argv in `cwd`, streaming its lines as events; the exit code (None
/// if killed) and the last lines.
pub async fn spawn_streamed(
    argv: &[String],
    cwd: &Path,
    ev: &BuildEvents,
) -> Result<(Option<i32>, Vec<String>), ShellLocalError> {
    let shown = argv.join(" ");
    let (program, args) = argv.split_first().ok_or_else(|| ShellLocalError::Spawn {
        argv: shown.clone(),
        source: std::io::Error::other("empty command"),
    })?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ShellLocalError::Spawn {
            argv: shown.clone(),
            source,
        })?;
    let tail = std::sync::Arc::new(std::sync::Mutex::new(super::shell::Tail::default()));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(pump(
            out,
            Stream::Stdout,
            ev.clone(),
            tail.clone(),
        )));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(pump(
            err,
            Stream::Stderr,
            ev.clone(),
            tail.clone(),
        )));
    }
    let status = child
        .wait()
        .await
        .map_err(|source| ShellLocalError::Spawn {
            argv: shown.clone(),
            source,
        })?;
    for r in readers {
        let _ = r.await;
    }
    let lines = tail.lock().map(|mut t| t.take()).unwrap_or_default();
    Ok((status.code(), lines))
}

async fn pump<R: tokio::io::AsyncRead + Unpin>(
    reader: R,
    stream: Stream,
    ev: BuildEvents,
    tail: std::sync::Arc<std::sync::Mutex<super::shell::Tail>>,
) {
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut t) = tail.lock() {
            t.push(&line);
        }
        ev.output(stream, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, Events};
    use kiln_template::body::Attribute;
    use kiln_template::span::Span;
    use kiln_template::value::Value;

    fn body(attrs: Vec<(&str, Value)>) -> Body {
        let mut b = Body::empty(Span::synthetic("b.pkr.hcl"));
        for (name, value) in attrs {
            b.attrs.insert(
                name.into(),
                Attribute {
                    name: name.into(),
                    value,
                    span: Span::synthetic("b.pkr.hcl"),
                    sensitive: false,
                },
            );
        }
        b
    }

    fn strings(items: &[&str]) -> Value {
        Value::List(items.iter().map(|s| Value::String(s.to_string())).collect())
    }

    fn events() -> (BuildEvents, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            BuildEvents {
                build: "null.deps".into(),
                events: Events::new(tx, kiln_secret::Redactor::default()),
            },
            rx,
        )
    }

    fn facts() -> BuildFacts {
        BuildFacts {
            build_name: "deps".into(),
            builder_type: "null".into(),
            http: None,
        }
    }

    #[tokio::test]
    async fn inline_commands_run_in_the_working_directory_with_vars() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = decode(
            &body(vec![
                (
                    "inline",
                    strings(&[
                        "echo \"$GREETING from $PACKER_BUILD_NAME\" > out.txt",
                        "echo done",
                    ]),
                ),
                ("environment_vars", strings(&["GREETING=hello there"])),
                ("inline_shebang", Value::String("/bin/bash -e".into())),
            ]),
            "provisioner \"shell-local\"",
            dir.path(),
            false,
        )
        .unwrap();
        let (ev, mut rx) = events();
        assert!(
            run(&cfg, dir.path(), &facts(), &TemplateData::new(), &ev)
                .await
                .unwrap()
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
            "hello there from deps\n"
        );
        let mut lines = Vec::new();
        while let Ok(e) = rx.try_recv() {
            if let Event::Output { line, .. } = e {
                lines.push(line);
            }
        }
        assert_eq!(lines, vec!["done"]);
    }

    #[tokio::test]
    async fn a_failing_script_reports_its_code_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = decode(
            &body(vec![(
                "command",
                Value::String("echo oops >&2; exit 3".into()),
            )]),
            "p",
            dir.path(),
            false,
        )
        .unwrap();
        let (ev, _rx) = events();
        let err = run(&cfg, dir.path(), &facts(), &TemplateData::new(), &ev)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exited with code 3"), "{text}");
        assert!(text.contains("oops"), "{text}");
    }

    #[tokio::test]
    async fn valid_exit_codes_and_only_on_are_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let (ev, _rx) = events();
        let cfg = decode(
            &body(vec![
                ("command", Value::String("exit 2".into())),
                (
                    "valid_exit_codes",
                    Value::List(vec![Value::Number(kiln_template::value::Number(2.0))]),
                ),
            ]),
            "p",
            dir.path(),
            false,
        )
        .unwrap();
        assert!(
            run(&cfg, dir.path(), &facts(), &TemplateData::new(), &ev)
                .await
                .is_ok()
        );
        let cfg = decode(
            &body(vec![
                ("command", Value::String("exit 1".into())),
                ("only_on", strings(&["windows"])),
            ]),
            "p",
            dir.path(),
            false,
        )
        .unwrap();
        assert!(
            !run(&cfg, dir.path(), &facts(), &TemplateData::new(), &ev)
                .await
                .unwrap()
        );
    }

    #[test]
    fn scripts_accept_dev_null_and_refuse_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let ok = decode(
            &body(vec![("script", Value::String("/dev/null".into()))]),
            "p",
            dir.path(),
            false,
        )
        .unwrap();
        assert_eq!(ok.scripts, vec![PathBuf::from("/dev/null")]);
        let fifo = dir.path().join("fifo.sh");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let errors = decode(
            &body(vec![("scripts", strings(&["fifo.sh", "/dev/zero"]))]),
            "p",
            dir.path(),
            false,
        )
        .unwrap_err();
        let all: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[0].contains("it is a FIFO"), "{all:?}");
        assert!(
            all[1].contains("`/dev/zero`: it is a character device that does not end"),
            "{all:?}"
        );
    }

    #[test]
    fn conflicting_sources_and_bad_os_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let errors = decode(
            &body(vec![
                ("command", Value::String("x".into())),
                ("inline", strings(&["y"])),
                ("only_on", strings(&["plan9"])),
                ("keep_input_artifact", Value::Bool(true)),
            ]),
            "p",
            dir.path(),
            false,
        )
        .unwrap_err();
        let all: String = errors.iter().map(|e| e.message.clone() + "\n").collect();
        assert!(all.contains("only specify one"), "{all}");
        assert!(all.contains("plan9"), "{all}");
        assert!(all.contains("keep_input_artifact"), "{all}");
    }

    #[test]
    fn the_default_argv_renders_vars_and_script() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = decode(
            &body(vec![("command", Value::String("x".into()))]),
            "p",
            dir.path(),
            true,
        )
        .unwrap();
        let argv = plan_argv(&cfg, Path::new("/tmp/s"), &facts(), &TemplateData::new()).unwrap();
        assert_eq!(
            argv,
            vec![
                "/bin/sh",
                "-c",
                "PACKER_BUILDER_TYPE='null' PACKER_BUILD_NAME='deps'  /tmp/s"
            ]
        );
    }
}
