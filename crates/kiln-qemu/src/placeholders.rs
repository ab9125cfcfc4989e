//! The small part of Go's `text/template` that Packer templates use at
//! build time: `{{ .Name }}` field lookups (any spacing, `{{-`/`-}}` trim
//! markers), string constants (`{{ "{{" }}`), comments, and the `urlquery`
//! pipe (`{{ .SSHPublicKey | urlquery }}`).
//!
//! A field the caller did not provide is an error, never an empty string,
//! and so is a function call such as `{{ user "x" }}` or `{{ env "HOME" }}`
//! (in HCL2 templates those are HCL variables and functions).
//!
//! Used for `qemuargs`, `boot_command`, `cd_content`/`http_content`, and by
//! other crates (the shell provisioner's `{{.Vars}} {{.Path}}`).

use std::collections::BTreeMap;

/// Values available to a template, by field name (`HTTPIP`, `Name`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateData {
    fields: BTreeMap<String, String>,
}

impl TemplateData {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a field (builder style).
    pub fn with(mut self, name: &str, value: impl ToString) -> Self {
        self.fields.insert(name.to_string(), value.to_string());
        self
    }

    pub fn insert(&mut self, name: &str, value: impl ToString) {
        self.fields.insert(name.to_string(), value.to_string());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }
}

/// A template that cannot be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("template {template:?}: {message}")]
pub struct PlaceholderError {
    pub template: String,
    /// Byte offset of the action in the template.
    pub offset: usize,
    pub message: String,
}

/// Whether a string contains a template action at all.
pub fn has_actions(template: &str) -> bool {
    template.contains("{{")
}

/// Render `template` with `data`.
pub fn render(template: &str, data: &TemplateData) -> Result<String, PlaceholderError> {
    let err = |offset: usize, message: String| PlaceholderError {
        template: template.to_string(),
        offset,
        message,
    };
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut base = 0usize;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        let after_open = &rest[start + 2..];
        // `{{- ` trims whitespace before the action.
        let (trim_left, inner_start) = match after_open.strip_prefix("- ") {
            Some(_) => (true, 3),
            None => match after_open
                .strip_prefix("-\t")
                .or_else(|| after_open.strip_prefix("-\n"))
            {
                Some(_) => (true, 3),
                None => (false, 2),
            },
        };
        if trim_left {
            text = text.trim_end();
        }
        out.push_str(text);
        let body_from = start + inner_start;
        let Some(close) = find_close(&rest[body_from..]) else {
            return Err(err(
                base + start,
                "unclosed action: `{{` without `}}`".into(),
            ));
        };
        let mut inner = &rest[body_from..body_from + close];
        let mut after = &rest[body_from + close + 2..];
        // ` -}}` trims whitespace after the action.
        let trim_right = inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-");
        if trim_right {
            inner = &inner[..inner.len() - 1];
            after = after.trim_start();
        }
        let value = eval_action(inner.trim(), data).map_err(|m| err(base + start, m))?;
        out.push_str(&value);
        let consumed = rest.len() - after.len();
        base += consumed;
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// The end of an action (`}}`), skipping `}}` inside string constants.
fn find_close(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn eval_action(action: &str, data: &TemplateData) -> Result<String, String> {
    if action.starts_with("/*") {
        return if action.ends_with("*/") {
            Ok(String::new())
        } else {
            Err("unterminated comment".into())
        };
    }
    if action.is_empty() {
        return Err("missing value for command: empty action `{{ }}`".into());
    }
    let mut stages = split_pipeline(action).into_iter();
    let first = stages.next().unwrap_or_default();
    let mut value = eval_operand(first.trim(), data)?;
    for stage in stages {
        match stage.trim() {
            "urlquery" => value = url_query_escape(&value),
            other => {
                let name = other.split_whitespace().next().unwrap_or(other);
                return Err(format!(
                    "function `{name}` is not available here (kiln renders only fields such as `.Name`, string constants and `| urlquery`)"
                ));
            }
        }
    }
    Ok(value)
}

fn split_pipeline(action: &str) -> Vec<String> {
    let mut stages = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in action.chars() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '`' => {
                quote = Some(c);
                current.push(c);
            }
            None if c == '|' => stages.push(std::mem::take(&mut current)),
            None => current.push(c),
        }
    }
    stages.push(current);
    stages
}

fn eval_operand(operand: &str, data: &TemplateData) -> Result<String, String> {
    if let Some(field) = operand.strip_prefix('.') {
        if field.is_empty() {
            return Err(
                "`{{ . }}` (the whole data) cannot be rendered; name a field such as `.Name`"
                    .into(),
            );
        }
        if !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("unsupported expression `{operand}`"));
        }
        return data.get(field).map(str::to_string).ok_or_else(|| {
            let known: Vec<String> = data.names().map(|n| format!(".{n}")).collect();
            let names: Vec<&str> = data.names().collect();
            let hint = kiln_template::decode::did_you_mean(field, &names)
                .map(|s| format!(" (did you mean `.{s}`?)"))
                .unwrap_or_default();
            format!(
                "can't evaluate field {field}{hint}; available here: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        });
    }
    if let Some(body) = operand.strip_prefix('`') {
        return body
            .strip_suffix('`')
            .map(str::to_string)
            .ok_or_else(|| "unterminated raw string".to_string());
    }
    if operand.starts_with('"') {
        return unquote(operand);
    }
    if operand.starts_with('$') {
        return Err(format!("variables such as `{operand}` are not supported"));
    }
    let name = operand.split_whitespace().next().unwrap_or(operand);
    Err(format!(
        "function `{name}` is not available here (in HCL2 templates use variables and functions such as `var.x` or `env(\"X\")` outside `{{{{ }}}}`); kiln renders only fields such as `.Name`"
    ))
}

fn unquote(s: &str) -> Result<String, String> {
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| format!("bad string constant {s}"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some(other) => return Err(format!("unsupported escape `\\{other}` in {s}")),
            None => return Err(format!("bad string constant {s}")),
        }
    }
    Ok(out)
}

/// Go's `url.QueryEscape` (what `urlquery` does to a single string).
pub fn url_query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> TemplateData {
        TemplateData::new()
            .with("HTTPIP", "10.0.2.2")
            .with("HTTPPort", 8123)
            .with("Name", "packer-x")
    }

    #[test]
    fn fields_render_with_any_spacing() {
        let d = data();
        for t in [
            "{{ .HTTPIP }}:{{ .HTTPPort }}",
            "{{.HTTPIP}}:{{.HTTPPort}}",
            "{{  .HTTPIP\t}}:{{.HTTPPort }}",
        ] {
            assert_eq!(render(t, &d).unwrap(), "10.0.2.2:8123", "{t}");
        }
    }

    #[test]
    fn text_without_actions_is_unchanged() {
        assert_eq!(render("a } { b }", &data()).unwrap(), "a } { b }");
        assert!(!has_actions("a } { b }"));
    }

    #[test]
    fn unknown_field_is_an_error_naming_the_fields() {
        let e = render("x {{ .HTTPDir }}", &data()).unwrap_err();
        assert!(e.message.contains("HTTPDir"), "{e}");
        assert!(e.message.contains(".HTTPIP"), "{e}");
        assert_eq!(e.offset, 2);
        let e = render("{{ .Nmae }}", &data()).unwrap_err();
        assert!(e.message.contains("did you mean `.Name`"), "{e}");
    }

    #[test]
    fn function_calls_are_errors() {
        for t in [
            "{{ user `x` }}",
            "{{ env \"HOME\" }}",
            "{{ timestamp }}",
            "{{ .Name | upper }}",
        ] {
            let e = render(t, &data()).unwrap_err();
            assert!(e.message.contains("function"), "{t}: {e}");
        }
    }

    #[test]
    fn trim_markers_comments_and_constants() {
        let d = data();
        assert_eq!(render("a  {{- .Name -}}  b", &d).unwrap(), "apacker-xb");
        assert_eq!(render("a{{/* note */}}b", &d).unwrap(), "ab");
        assert_eq!(render("{{ \"{{\" }} .Name }}", &d).unwrap(), "{{ .Name }}");
        assert_eq!(render("{{ `}}` }}", &d).unwrap(), "}}");
    }

    #[test]
    fn unclosed_action_is_an_error() {
        assert!(render("a {{ .Name", &data()).is_err());
    }

    #[test]
    fn urlquery_escapes_like_go() {
        let d = TemplateData::new().with("SSHPublicKey", "ssh-ed25519 AAAA+/= kiln@host");
        assert_eq!(
            render("{{ .SSHPublicKey | urlquery }}", &d).unwrap(),
            "ssh-ed25519+AAAA%2B%2F%3D+kiln%40host"
        );
    }
}
