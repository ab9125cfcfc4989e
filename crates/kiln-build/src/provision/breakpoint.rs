//! The `breakpoint` provisioner: pause the build so the user can look
//! inside the guest, until Enter is pressed.

use kiln_template::body::Body;
use kiln_template::decode::{DecodeError, Decoder};
use kiln_template::schema::{Field, PluginKind, Schema};
use tokio::io::AsyncBufReadExt;

/// `provisioner "breakpoint"`.
pub static SCHEMA: Schema = Schema {
    kind: PluginKind::Provisioner,
    name: "breakpoint",
    summary: "Pause the build so the user can look inside the guest, until Enter is pressed (skipped when stdin is not a terminal).",
    groups: &[FIELDS],
    example: &[("note", "look at /etc before the cleanup")],
};

pub static FIELDS: &[Field] = &[
    Field::new("note", "string", "Shown when the build pauses.").default(""),
    Field::new("disable", "bool", "Skip this breakpoint.").default("false"),
];

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BreakpointConfig {
    pub note: String,
    pub disable: bool,
}

pub fn decode(body: &Body, what: &str) -> Result<BreakpointConfig, Vec<DecodeError>> {
    let mut d = Decoder::with_schema(body, what, &SCHEMA);
    let note = d.or_default("note");
    let disable = d.or_default("disable");
    d.finish()?;
    Ok(BreakpointConfig { note, disable })
}

/// Pause until a line arrives on stdin. Without a terminal there is nobody
/// to press Enter, so the breakpoint is skipped with a warning.
pub async fn run(cfg: &BreakpointConfig, ssh_hint: Option<&str>, ev: &crate::events::BuildEvents) {
    if cfg.disable {
        ev.say("Breakpoint disabled, continuing...");
        return;
    }
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        ev.warn("breakpoint skipped: stdin is not a terminal");
        return;
    }
    let mut msg = String::from("Pausing at breakpoint provisioner");
    if !cfg.note.is_empty() {
        msg.push_str(&format!(" with note \"{}\"", cfg.note));
    }
    if let Some(hint) = ssh_hint {
        msg.push_str(&format!(".\nTo look inside: {hint}"));
    }
    msg.push_str(".\nPress enter to continue.");
    ev.say(msg);
    let mut line = String::new();
    let _ = tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await;
}
