//! The `shell` provisioner: scripts run in the guest over SSH, as Packer
//! runs them — each script uploaded to `remote_path`, made executable, run
//! through `execute_command` with the environment flattened into
//! `{{.Vars}}`, its exit code checked against `valid_exit_codes`, then
//! removed (unless `skip_clean`).

use crate::guest::GuestError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_qemu::placeholders::{self, TemplateData};
use kiln_template::body::Body;
use kiln_template::decode::{DecodeError, Decoder, GoDuration};
use kiln_template::load::input::{InputError, check_input, read_input};
use kiln_template::schema::{Field, PluginKind, Schema};

/// The largest script the `shell` provisioner reads (it is held in memory
/// to convert line endings and upload): 1 GiB.
pub const SCRIPT_LIMIT: u64 = 1 << 30;

/// `provisioner "shell"`.
pub static SCHEMA: Schema = Schema {
    kind: PluginKind::Provisioner,
    name: "shell",
    summary: "Scripts run in the guest over SSH: each uploaded to `remote_path`, made executable, run through `execute_command` with the environment in `{{.Vars}}`, its exit code checked, then removed.",
    groups: &[FIELDS],
    example: &[("inline", r#"["echo hello"]"#)],
};

/// The fields, in Packer's spelling.
pub static FIELDS: &[Field] = &[
    Field::new(
        "inline",
        "[]string",
        "Commands, one per line of a generated script. One of `inline`, `script` or `scripts` is required.",
    ),
    Field::new("script", "string", "One local script to upload and run."),
    Field::new("scripts", "[]string", "Local scripts to upload and run in order."),
    Field::new(
        "environment_vars",
        "[]string",
        "`KEY=value` strings exported to every script.",
    ),
    Field::new(
        "env",
        "map[string]string",
        "A map of environment variables (merged with `environment_vars`).",
    ),
    Field::new(
        "execute_command",
        "string",
        "How a script is run; `{{.Path}}`, `{{.Vars}}` and `{{.EnvVarFile}}` are rendered.",
    )
    .computed("`chmod +x {{.Path}}; {{.Vars}} {{.Path}}`; with `use_env_var_file`, `chmod +x {{.Path}}; . {{.EnvVarFile}} && {{.Path}}`"),
    Field::new(
        "inline_shebang",
        "string",
        "Shebang of the inline script.",
    )
    .computed("`/bin/sh -e`, unless the first inline line is a shebang"),
    Field::new("remote_folder", "string", "Where scripts are uploaded.").default("/tmp"),
    Field::new("remote_file", "string", "File name of the uploaded script.")
        .computed("`script_NNNN.sh`, stable for the build step"),
    Field::new("remote_path", "string", "Full remote path of the script.")
        .computed("`<remote_folder>/<remote_file>`"),
    Field::new(
        "expect_disconnect",
        "bool",
        "A lost connection (a reboot) is not an error.",
    )
    .default("false"),
    Field::new(
        "valid_exit_codes",
        "[]int",
        "Exit codes that count as success.",
    )
    .default("[0]"),
    Field::new("skip_clean", "bool", "Leave the uploaded scripts in the guest.").default("false"),
    Field::new(
        "start_retry_timeout",
        "duration",
        "How long to retry starting a script (the guest may be rebooting).",
    )
    .default("5m"),
    Field::new("binary", "bool", "Upload scripts as they are (no CRLF → LF).").default("false"),
    Field::new(
        "use_env_var_file",
        "bool",
        "Write the variables to a file in the guest and source it.",
    )
    .default("false"),
    Field::new("env_var_format", "string", "printf format of one variable.")
        .computed("`%s='%s' `; with `use_env_var_file`, `export %s='%s'` and a newline"),
    Field::new("pause_after", "duration", "Wait this long after the provisioner."),
];

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Inline(Vec<String>),
    Scripts(Vec<PathBuf>),
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ShellConfig {
    pub source: Source,
    pub environment_vars: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub execute_command: String,
    pub inline_shebang: Option<String>,
    pub remote_folder: String,
    pub remote_path: String,
    pub expect_disconnect: bool,
    pub valid_exit_codes: Vec<i64>,
    pub skip_clean: bool,
    pub start_retry_timeout: Duration,
    pub binary: bool,
    pub use_env_var_file: bool,
    pub env_var_format: String,
    pub pause_after: Duration,
}

/// Decode a `provisioner "shell"` body. `cwd` resolves relative script
/// paths (Packer resolves them against the working directory); `seed`
/// makes the default remote file name stable across runs of the same step.
pub fn decode(
    body: &Body,
    what: &str,
    cwd: &Path,
    seed: u64,
) -> Result<ShellConfig, Vec<DecodeError>> {
    let mut d = Decoder::with_schema(body, what, &SCHEMA);
    let inline: Option<Vec<String>> = d.opt("inline");
    let script: Option<String> = d.opt("script");
    let scripts: Option<Vec<String>> = d.opt("scripts");
    let environment_vars: Vec<String> = d.or("environment_vars", Vec::new());
    let env: BTreeMap<String, String> = d.or("env", BTreeMap::new());
    let use_env_var_file = d.or_default("use_env_var_file");
    let execute_command: Option<String> = d.opt("execute_command");
    let inline_shebang: Option<String> = d.opt("inline_shebang");
    let remote_folder: String = d.or_default("remote_folder");
    let remote_file: Option<String> = d.opt("remote_file");
    let remote_path: Option<String> = d.opt("remote_path");
    let expect_disconnect = d.or_default("expect_disconnect");
    let valid_exit_codes: Vec<i64> = d.or_default("valid_exit_codes");
    let skip_clean = d.or_default("skip_clean");
    let start_retry_timeout = match d.opt::<GoDuration>("start_retry_timeout") {
        Some(GoDuration(t)) if !t.is_zero() => t,
        _ => d.default_of::<GoDuration>("start_retry_timeout").0,
    };
    let binary = d.or_default("binary");
    let env_var_format: Option<String> = d.opt("env_var_format");
    let pause_after = d
        .opt::<GoDuration>("pause_after")
        .map(|g| g.0)
        .unwrap_or_default();

    let inline = inline.filter(|l| !l.is_empty());
    let mut script_list: Vec<String> = scripts.unwrap_or_default();
    if let Some(s) = script {
        if !script_list.is_empty() {
            d.error(
                "script",
                "only one of `script` or `scripts` can be specified",
                None,
            );
        }
        script_list = vec![s];
    }
    let source = match (inline, script_list.is_empty()) {
        (Some(_), false) => {
            d.error(
                "inline",
                "only a script file or an inline script can be specified, not both",
                None,
            );
            Source::Scripts(Vec::new())
        }
        (Some(lines), true) => Source::Inline(lines),
        (None, false) => {
            let mut paths = Vec::new();
            for s in &script_list {
                let p = cwd.join(s);
                if let Err(e) = check_input(&p, false) {
                    let field = if d.has("script") { "script" } else { "scripts" };
                    d.error(
                        field,
                        format!("bad script `{s}`: {} ({})", e.reason(), p.display()),
                        None,
                    );
                }
                paths.push(p);
            }
            Source::Scripts(paths)
        }
        (None, true) => {
            d.error(
                "inline",
                "either a script file or an inline script must be specified",
                Some("set `inline = [...]`, `script = \"...\"` or `scripts = [...]`".into()),
            );
            Source::Inline(Vec::new())
        }
    };
    for kv in &environment_vars {
        if !matches!(kv.split_once('='), Some((k, _)) if !k.is_empty()) {
            d.error(
                "environment_vars",
                format!("environment variable not in format 'key=value': {kv}"),
                None,
            );
        }
    }
    let env_var_format = env_var_format.unwrap_or_else(|| {
        if use_env_var_file {
            "export %s='%s'\n".into()
        } else {
            "%s='%s' ".into()
        }
    });
    let execute_command = execute_command.unwrap_or_else(|| {
        if use_env_var_file {
            "chmod +x {{.Path}}; . {{.EnvVarFile}} && {{.Path}}".into()
        } else {
            "chmod +x {{.Path}}; {{.Vars}} {{.Path}}".into()
        }
    });
    let remote_file = remote_file.unwrap_or_else(|| format!("script_{}.sh", seed % 9999));
    let remote_path = remote_path.unwrap_or_else(|| format!("{remote_folder}/{remote_file}"));
    d.finish()?;
    Ok(ShellConfig {
        source,
        environment_vars,
        env,
        execute_command,
        inline_shebang,
        remote_folder,
        remote_path,
        expect_disconnect,
        valid_exit_codes,
        skip_clean,
        start_retry_timeout,
        binary,
        use_env_var_file,
        env_var_format,
        pause_after,
    })
}

/// What Packer exports to every script besides the user's variables.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildFacts {
    /// Packer's `PACKER_BUILD_NAME`: the source's name.
    pub build_name: String,
    pub builder_type: String,
    /// `PACKER_HTTP_ADDR` (`ip:port`), `PACKER_HTTP_IP`, `PACKER_HTTP_PORT`.
    pub http: Option<(String, u16)>,
}

/// The environment, sorted, with single quotes escaped as Packer does.
pub fn environment(
    vars: &[String],
    env: &BTreeMap<String, String>,
    facts: &BuildFacts,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("PACKER_BUILD_NAME".to_string(), facts.build_name.clone());
    out.insert(
        "PACKER_BUILDER_TYPE".to_string(),
        facts.builder_type.clone(),
    );
    if let Some((ip, port)) = &facts.http {
        out.insert("PACKER_HTTP_ADDR".to_string(), format!("{ip}:{port}"));
        out.insert("PACKER_HTTP_IP".to_string(), ip.clone());
        out.insert("PACKER_HTTP_PORT".to_string(), port.to_string());
    }
    let escape = |v: &str| v.replace('\'', r#"'"'"'"#);
    for kv in vars {
        if let Some((k, v)) = kv.split_once('=') {
            out.insert(k.to_string(), escape(v));
        }
    }
    for (k, v) in env {
        out.insert(k.clone(), escape(v));
    }
    out
}

/// Apply a Go printf format with two `%s` verbs (`env_var_format`).
pub fn format_var(format: &str, key: &str, value: &str) -> String {
    let mut out = String::new();
    let mut args = [key, value].into_iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('s') => out.push_str(args.next().unwrap_or("")),
                Some('%') => out.push('%'),
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `{{.Vars}}`: every variable through `env_var_format`, concatenated.
pub fn flatten_env(format: &str, env: &BTreeMap<String, String>) -> String {
    env.iter().map(|(k, v)| format_var(format, k, v)).collect()
}

/// One script to run.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptRun {
    /// What the user sees (`Provisioning with shell script: …`).
    pub label: String,
    pub content: Vec<u8>,
    pub remote_path: String,
    pub command: String,
}

/// Everything the provisioner will do, computed without a guest.
#[derive(Clone, Debug, PartialEq)]
pub struct ShellPlan {
    /// The variables file to upload first (`use_env_var_file`).
    pub env_file: Option<(String, Vec<u8>)>,
    pub runs: Vec<ScriptRun>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("cannot read script {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: InputError,
    },
    #[error("`{field}`: {source}")]
    Template {
        field: &'static str,
        source: placeholders::PlaceholderError,
    },
}

/// Compute the scripts and commands. `data` renders Go-template
/// placeholders in inline commands (Packer interpolates them, but not
/// `execute_command` until `{{.Vars}}`/`{{.Path}}` are known).
pub fn plan(
    cfg: &ShellConfig,
    facts: &BuildFacts,
    data: &TemplateData,
    seed: u64,
) -> Result<ShellPlan, ShellError> {
    let env = environment(&cfg.environment_vars, &cfg.env, facts);
    let vars = flatten_env(&cfg.env_var_format, &env);
    let env_file = cfg.use_env_var_file.then(|| {
        (
            format!("{}/varfile_{}.sh", cfg.remote_folder, (seed / 7) % 9999),
            vars.clone().into_bytes(),
        )
    });
    let mut cmd_data = data.clone();
    cmd_data.insert("Vars", &vars);
    cmd_data.insert("Path", &cfg.remote_path);
    cmd_data.insert(
        "EnvVarFile",
        env_file.as_ref().map(|(p, _)| p.as_str()).unwrap_or(""),
    );
    let command = placeholders::render(&cfg.execute_command, &cmd_data).map_err(|source| {
        ShellError::Template {
            field: "execute_command",
            source,
        }
    })?;
    let mut runs = Vec::new();
    match &cfg.source {
        Source::Inline(lines) => {
            let mut body = String::new();
            for line in lines {
                let line =
                    placeholders::render(line, data).map_err(|source| ShellError::Template {
                        field: "inline",
                        source,
                    })?;
                body.push_str(&line);
                body.push('\n');
            }
            let mut content = String::new();
            if cfg.inline_shebang.is_some() || !body.starts_with("#!") {
                let shebang = cfg.inline_shebang.as_deref().unwrap_or("/bin/sh -e");
                content.push_str(&format!("#!{shebang}\n"));
            }
            content.push_str(&body);
            runs.push(ScriptRun {
                label: "inline script".into(),
                content: content.into_bytes(),
                remote_path: cfg.remote_path.clone(),
                command: command.clone(),
            });
        }
        Source::Scripts(paths) => {
            for path in paths {
                let raw = read_input(path, SCRIPT_LIMIT).map_err(|source| ShellError::Read {
                    path: path.clone(),
                    source,
                })?;
                let content = if cfg.binary {
                    raw
                } else {
                    unix_line_endings(&raw)
                };
                runs.push(ScriptRun {
                    label: path.display().to_string(),
                    content,
                    remote_path: cfg.remote_path.clone(),
                    command: command.clone(),
                });
            }
        }
    }
    Ok(ShellPlan { env_file, runs })
}

/// CRLF and lone CR to LF, as Packer's UnixReader does for scripts.
fn unix_line_endings(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\r' {
            out.push(b'\n');
            if raw.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
        } else {
            out.push(raw[i]);
        }
        i += 1;
    }
    out
}

/// Whether an exit code is accepted.
pub fn exit_code_ok(cfg: &ShellConfig, code: u32) -> bool {
    cfg.valid_exit_codes.contains(&i64::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_template::body::Attribute;
    use kiln_template::span::Span;
    use kiln_template::value::Value;

    fn body(attrs: Vec<(&str, Value)>) -> Body {
        let mut b = Body::empty(Span::synthetic("build.pkr.hcl"));
        for (name, value) in attrs {
            b.attrs.insert(
                name.into(),
                Attribute {
                    name: name.into(),
                    value,
                    span: Span::synthetic("build.pkr.hcl"),
                    sensitive: false,
                },
            );
        }
        b
    }

    fn strings(items: &[&str]) -> Value {
        Value::List(items.iter().map(|s| Value::String(s.to_string())).collect())
    }

    fn facts() -> BuildFacts {
        BuildFacts {
            build_name: "cloudimg".into(),
            builder_type: "qemu".into(),
            http: Some(("10.0.2.2".into(), 8123)),
        }
    }

    #[test]
    fn inline_scripts_get_the_default_shebang_and_command() {
        let b = body(vec![
            ("inline", strings(&["echo hi", "echo {{ .HTTPIP }}"])),
            ("environment_vars", strings(&["FOO=it's", "A=1"])),
        ]);
        let cfg = decode(&b, "provisioner \"shell\"", Path::new("."), 42).unwrap();
        assert_eq!(cfg.remote_path, "/tmp/script_42.sh");
        let data = TemplateData::new().with("HTTPIP", "10.0.2.2");
        let plan = plan(&cfg, &facts(), &data, 42).unwrap();
        let run = &plan.runs[0];
        assert_eq!(
            String::from_utf8(run.content.clone()).unwrap(),
            "#!/bin/sh -e\necho hi\necho 10.0.2.2\n"
        );
        assert_eq!(
            run.command,
            "chmod +x /tmp/script_42.sh; A='1' FOO='it'\"'\"'s' PACKER_BUILDER_TYPE='qemu' \
             PACKER_BUILD_NAME='cloudimg' PACKER_HTTP_ADDR='10.0.2.2:8123' PACKER_HTTP_IP='10.0.2.2' \
             PACKER_HTTP_PORT='8123'  /tmp/script_42.sh"
        );
    }

    #[test]
    fn an_inline_shebang_is_kept_unless_one_is_set() {
        let b = body(vec![("inline", strings(&["#!/bin/bash", "echo x"]))]);
        let cfg = decode(&b, "p", Path::new("."), 1).unwrap();
        let p = plan(&cfg, &facts(), &TemplateData::new(), 1).unwrap();
        assert!(p.runs[0].content.starts_with(b"#!/bin/bash\necho"));
        let b = body(vec![
            ("inline", strings(&["#!/bin/bash", "echo x"])),
            ("inline_shebang", Value::String("/bin/dash".into())),
        ]);
        let cfg = decode(&b, "p", Path::new("."), 1).unwrap();
        let p = plan(&cfg, &facts(), &TemplateData::new(), 1).unwrap();
        assert!(p.runs[0].content.starts_with(b"#!/bin/dash\n#!/bin/bash"));
    }

    #[test]
    fn scripts_are_read_with_unix_line_endings_and_the_user_command() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.sh"), b"echo a\r\necho b\r\n").unwrap();
        let b = body(vec![
            ("scripts", strings(&["a.sh"])),
            (
                "execute_command",
                Value::String("{{ .Vars }} sudo -S -E sh -eux '{{ .Path }}'".into()),
            ),
            (
                "env",
                Value::Map(BTreeMap::from([("X".into(), Value::String("y".into()))])),
            ),
        ]);
        let cfg = decode(&b, "p", dir.path(), 7).unwrap();
        let p = plan(&cfg, &BuildFacts::default(), &TemplateData::new(), 7).unwrap();
        assert_eq!(p.runs[0].content, b"echo a\necho b\n");
        assert!(
            p.runs[0]
                .command
                .ends_with("X='y'  sudo -S -E sh -eux '/tmp/script_7.sh'")
        );
    }

    #[test]
    fn scripts_accept_dev_null_as_an_empty_script() {
        // packer-maas's Ubuntu templates default `customize_script` to it.
        let b = body(vec![("script", Value::String("/dev/null".into()))]);
        let cfg = decode(&b, "p", Path::new("/srv/templates"), 3).unwrap();
        assert_eq!(
            cfg.source,
            Source::Scripts(vec![PathBuf::from("/dev/null")])
        );
        let p = plan(&cfg, &BuildFacts::default(), &TemplateData::new(), 3).unwrap();
        assert_eq!(p.runs.len(), 1);
        assert!(p.runs[0].content.is_empty());
        assert_eq!(p.runs[0].remote_path, "/tmp/script_3.sh");
    }

    #[test]
    fn scripts_refuse_paths_that_never_end() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.sh")).unwrap();
        let fifo = dir.path().join("fifo.sh");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let b = body(vec![(
            "scripts",
            strings(&["zero.sh", "fifo.sh", "/proc/self/status", "missing.sh"]),
        )]);
        let errors = decode(&b, "p", dir.path(), 1).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        assert_eq!(text.len(), 4, "{text:?}");
        assert!(
            text[0].contains("bad script `zero.sh`: it is a character device that does not end"),
            "{text:?}"
        );
        assert!(
            text[1].contains("bad script `fifo.sh`: it is a FIFO"),
            "{text:?}"
        );
        assert!(text[2].contains("under `/proc` or `/sys`"), "{text:?}");
        assert!(
            text[3].contains("bad script `missing.sh`: no such file"),
            "{text:?}"
        );
    }

    #[test]
    fn bad_configurations_are_reported_together() {
        let b = body(vec![
            ("inline", strings(&["x"])),
            ("scripts", strings(&["missing.sh"])),
            ("environment_vars", strings(&["=oops"])),
            ("valid_exit_code", strings(&["0"])),
        ]);
        let errors = decode(&b, "provisioner \"shell\"", Path::new("/nonexistent"), 1).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        assert!(text.iter().any(|m| m.contains("not both")), "{text:?}");
        assert!(text.iter().any(|m| m.contains("'key=value'")), "{text:?}");
        let unknown = errors
            .iter()
            .find(|e| e.message.contains("valid_exit_code"))
            .unwrap();
        assert_eq!(
            unknown.help.as_deref(),
            Some("did you mean `valid_exit_codes`?")
        );
    }

    #[test]
    fn neither_inline_nor_scripts_is_an_error() {
        let errors = decode(&body(vec![]), "p", Path::new("."), 1).unwrap_err();
        assert!(errors[0].message.contains("must be specified"));
    }

    #[test]
    fn env_var_file_mode_uploads_exports() {
        let b = body(vec![
            ("inline", strings(&["true"])),
            ("use_env_var_file", Value::Bool(true)),
            ("environment_vars", strings(&["A=1"])),
        ]);
        let cfg = decode(&b, "p", Path::new("."), 70).unwrap();
        let p = plan(&cfg, &BuildFacts::default(), &TemplateData::new(), 70).unwrap();
        let (path, content) = p.env_file.unwrap();
        assert_eq!(path, "/tmp/varfile_10.sh");
        assert!(
            String::from_utf8(content)
                .unwrap()
                .contains("export A='1'\n")
        );
        assert_eq!(
            p.runs[0].command,
            "chmod +x /tmp/script_70.sh; . /tmp/varfile_10.sh && /tmp/script_70.sh"
        );
    }

    #[test]
    fn every_documented_field_is_decoded() {
        // A documented field the decoder did not ask for would be reported
        // as unknown; null values count as unset.
        let mut attrs: Vec<(&str, Value)> = FIELDS.iter().map(|f| (f.name, Value::Null)).collect();
        attrs.retain(|(n, _)| *n != "inline");
        attrs.push(("inline", strings(&["x"])));
        assert!(decode(&body(attrs), "p", Path::new("."), 1).is_ok());
    }
}

/// Why a shell provisioner failed in the guest.
#[derive(Debug, thiserror::Error)]
pub enum ShellRunError {
    #[error(
        "script {label} exited with code {code} (valid: {valid:?}){}",
        tail_text(tail)
    )]
    ExitCode {
        label: String,
        code: u32,
        valid: Vec<i64>,
        tail: Vec<String>,
    },
    #[error(
        "script {label} disconnected unexpectedly; if it reboots the guest, set `expect_disconnect = true`{}",
        tail_text(tail)
    )]
    Disconnected { label: String, tail: Vec<String> },
    #[error("uploading {label} to {remote}: {error}")]
    Upload {
        label: String,
        remote: String,
        error: GuestError,
    },
    #[error("could not reach the guest again within `start_retry_timeout` ({timeout:?}): {error}")]
    Reconnect {
        timeout: Duration,
        error: GuestError,
    },
    #[error("{0}")]
    Exec(GuestError),
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("\nlast output:\n  {}", tail.join("\n  "))
    }
}

/// Keeps the last lines a script printed, for the error message.
#[derive(Default)]
pub struct Tail {
    lines: std::collections::VecDeque<String>,
}

impl Tail {
    const KEEP: usize = 20;
    pub fn push(&mut self, line: &str) {
        if self.lines.len() == Self::KEEP {
            self.lines.pop_front();
        }
        self.lines.push_back(line.to_string());
    }
    pub fn take(&mut self) -> Vec<String> {
        self.lines.drain(..).collect()
    }
}

/// Run the planned scripts in the guest.
pub async fn run(
    cfg: &ShellConfig,
    plan: &ShellPlan,
    guest: &mut crate::guest::Guest,
    ev: &crate::events::BuildEvents,
) -> Result<(), ShellRunError> {
    if let Some((path, content)) = &plan.env_file {
        guest
            .upload_bytes(content, path, 0o600, cfg.start_retry_timeout, ev)
            .await
            .map_err(|error| ShellRunError::Upload {
                label: "environment file".into(),
                remote: path.clone(),
                error,
            })?;
    }
    for run in &plan.runs {
        ev.say(format!("Provisioning with shell script: {}", run.label));
        guest
            .upload_bytes(
                &run.content,
                &run.remote_path,
                0o755,
                cfg.start_retry_timeout,
                ev,
            )
            .await
            .map_err(|error| ShellRunError::Upload {
                label: run.label.clone(),
                remote: run.remote_path.clone(),
                error,
            })?;
        let mut tail = Tail::default();
        let status = guest.exec_streamed(&run.command, ev, &mut tail).await;
        match status {
            Ok(code) if exit_code_ok(cfg, code) => {}
            Ok(code) => {
                return Err(ShellRunError::ExitCode {
                    label: run.label.clone(),
                    code,
                    valid: cfg.valid_exit_codes.clone(),
                    tail: tail.take(),
                });
            }
            Err(e) if e.is_disconnect() => {
                if !cfg.expect_disconnect {
                    return Err(ShellRunError::Disconnected {
                        label: run.label.clone(),
                        tail: tail.take(),
                    });
                }
                ev.say("Script disconnected as expected; reconnecting");
                guest
                    .reconnect(cfg.start_retry_timeout, ev)
                    .await
                    .map_err(|error| ShellRunError::Reconnect {
                        timeout: cfg.start_retry_timeout,
                        error,
                    })?;
            }
            Err(e) => return Err(ShellRunError::Exec(e.into())),
        }
        if !cfg.skip_clean {
            guest
                .remove(&run.remote_path, cfg.start_retry_timeout, ev)
                .await
                .map_err(ShellRunError::Exec)?;
        }
    }
    if !cfg.skip_clean
        && let Some((path, _)) = &plan.env_file
    {
        guest
            .remove(path, cfg.start_retry_timeout, ev)
            .await
            .map_err(ShellRunError::Exec)?;
    }
    if !cfg.pause_after.is_zero() {
        ev.say(format!(
            "Pausing {:?} after this provisioner...",
            cfg.pause_after
        ));
        tokio::time::sleep(cfg.pause_after).await;
    }
    Ok(())
}
