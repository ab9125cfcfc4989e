//! `boot_command`: Packer's key syntax parsed into a typed sequence, mapped
//! to QMP key codes on a US layout, and typed over QMP.
//!
//! The grammar mirrors the SDK's PEG (`bootcommand/boot_command.pigeon`)
//! exactly, including its ordered choices: `<wait>`, `<waitN>` (seconds),
//! `<waitDURATION>` (Go syntax, e.g. `<wait1m30s>`), `<xOn>`/`<xOff>` for a
//! single character, the special keys (case-insensitive, optionally with
//! `On`/`Off`), and every other character typed as itself, including a `<`
//! that does not start one of these expressions.

use std::fmt;
use std::time::Duration;

/// A special key of Packer's boot command syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Special {
    Bs,
    Del,
    Enter,
    Esc,
    F(u8),
    Return,
    Tab,
    Up,
    Down,
    Spacebar,
    Insert,
    Home,
    End,
    PageUp,
    PageDown,
    LeftAlt,
    LeftCtrl,
    LeftShift,
    RightAlt,
    RightCtrl,
    RightShift,
    LeftSuper,
    RightSuper,
    LeftCommand,
    RightCommand,
    LeftOption,
    RightOption,
    Left,
    Right,
    Menu,
}

/// The special keys in the grammar's order (an earlier name wins when it is
/// a prefix of a later one, as in the PEG).
const SPECIALS: &[(&str, Special)] = &[
    ("bs", Special::Bs),
    ("del", Special::Del),
    ("enter", Special::Enter),
    ("esc", Special::Esc),
    ("f10", Special::F(10)),
    ("f11", Special::F(11)),
    ("f12", Special::F(12)),
    ("f1", Special::F(1)),
    ("f2", Special::F(2)),
    ("f3", Special::F(3)),
    ("f4", Special::F(4)),
    ("f5", Special::F(5)),
    ("f6", Special::F(6)),
    ("f7", Special::F(7)),
    ("f8", Special::F(8)),
    ("f9", Special::F(9)),
    ("return", Special::Return),
    ("tab", Special::Tab),
    ("up", Special::Up),
    ("down", Special::Down),
    ("spacebar", Special::Spacebar),
    ("insert", Special::Insert),
    ("home", Special::Home),
    ("end", Special::End),
    ("pageUp", Special::PageUp),
    ("pageDown", Special::PageDown),
    ("leftAlt", Special::LeftAlt),
    ("leftCtrl", Special::LeftCtrl),
    ("leftShift", Special::LeftShift),
    ("rightAlt", Special::RightAlt),
    ("rightCtrl", Special::RightCtrl),
    ("rightShift", Special::RightShift),
    ("leftSuper", Special::LeftSuper),
    ("rightSuper", Special::RightSuper),
    ("leftCommand", Special::LeftCommand),
    ("rightCommand", Special::RightCommand),
    ("leftOption", Special::LeftOption),
    ("rightOption", Special::RightOption),
    ("left", Special::Left),
    ("right", Special::Right),
    ("menu", Special::Menu),
];

impl Special {
    /// The name as Packer documents it (`pageUp`, `leftCtrl`, …).
    pub fn name(self) -> String {
        match self {
            Special::F(n) => format!("f{n}"),
            other => SPECIALS
                .iter()
                .find(|(_, s)| *s == other)
                .map(|(n, _)| (*n).to_string())
                .unwrap_or_default(),
        }
    }

    /// The QEMU key code (QKeyCode) of the key.
    pub fn qcode(self) -> &'static str {
        match self {
            Special::Bs => "backspace",
            Special::Del => "delete",
            Special::Enter | Special::Return => "ret",
            Special::Esc => "esc",
            Special::F(n) => match n {
                1 => "f1",
                2 => "f2",
                3 => "f3",
                4 => "f4",
                5 => "f5",
                6 => "f6",
                7 => "f7",
                8 => "f8",
                9 => "f9",
                10 => "f10",
                11 => "f11",
                _ => "f12",
            },
            Special::Tab => "tab",
            Special::Up => "up",
            Special::Down => "down",
            Special::Left => "left",
            Special::Right => "right",
            Special::Spacebar => "spc",
            Special::Insert => "insert",
            Special::Home => "home",
            Special::End => "end",
            Special::PageUp => "pgup",
            Special::PageDown => "pgdn",
            Special::LeftAlt | Special::LeftOption => "alt",
            Special::RightAlt | Special::RightOption => "alt_r",
            Special::LeftCtrl => "ctrl",
            Special::RightCtrl => "ctrl_r",
            Special::LeftShift => "shift",
            Special::RightShift => "shift_r",
            Special::LeftSuper | Special::LeftCommand => "meta_l",
            Special::RightSuper | Special::RightCommand => "meta_r",
            Special::Menu => "menu",
        }
    }
}

/// A key: a character (typed with shift when the US layout needs it) or a
/// special key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Char(char),
    Special(Special),
}

/// What happens to the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Down and up.
    Press,
    /// `…On`: held down.
    Down,
    /// `…Off`: released.
    Up,
}

/// One element of a boot command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BootItem {
    Key { key: Key, action: Action },
    Wait(Duration),
}

/// A boot command that cannot be parsed or typed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BootCommandError {
    #[error("invalid wait `{text}` in boot command: {reason}")]
    BadWait { text: String, reason: String },
    #[error("boot command: cannot type {ch:?} on a US keyboard layout")]
    Untypable { ch: char },
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `On`/`Off` (any case) at the start of `s`.
fn toggle(s: &str) -> Option<(Action, &str)> {
    if let Some(rest) = strip_prefix_ci(s, "on") {
        return Some((Action::Down, rest));
    }
    strip_prefix_ci(s, "off").map(|rest| (Action::Up, rest))
}

/// Integer = '0' / [1-9][0-9]*
fn integer(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    match b.first()? {
        b'0' => Some((&s[..1], &s[1..])),
        b'1'..=b'9' => {
            let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
            Some((&s[..n], &s[n..]))
        }
        _ => None,
    }
}

/// Number = '-'? Integer ( '.' Digit+ )?
fn number(s: &str) -> Option<&str> {
    let mut rest = s.strip_prefix('-').unwrap_or(s);
    let (_, r) = integer(rest)?;
    rest = r;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n > 0 {
            rest = &frac[n..];
        }
    }
    Some(rest)
}

const TIME_UNITS: &[&str] = &["ns", "us", "µs", "ms", "s", "m", "h"];

/// Duration = ( Number TimeUnit )+ ; returns (text, rest).
fn duration_text(s: &str) -> Option<(&str, &str)> {
    let mut rest = s;
    let mut matched = false;
    while let Some(after_number) = number(rest) {
        let Some(unit) = TIME_UNITS.iter().find(|u| after_number.starts_with(**u)) else {
            break;
        };
        rest = &after_number[unit.len()..];
        matched = true;
    }
    matched.then(|| (&s[..s.len() - rest.len()], rest))
}

/// Go's `time.ParseDuration`, signed.
fn go_duration(text: &str) -> Result<(bool, Duration), String> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    // The grammar allows a sign on every number; Go accepts only one leading sign.
    if body.contains('-') {
        return Err(format!("time: invalid duration {text:?}"));
    }
    kiln_template::decode::parse_go_duration(body).map(|d| (negative, d))
}

/// Try `<wait…>` at the start of `s` (which starts after `<`).
fn wait(s: &str) -> Option<(Result<Duration, BootCommandError>, &str)> {
    let rest = s.strip_prefix("wait")?;
    let bad = |text: &str, reason: String| BootCommandError::BadWait {
        text: format!("<wait{text}>"),
        reason,
    };
    if let Some((text, after)) = duration_text(rest) {
        let after = after.strip_prefix('>')?;
        let result = match go_duration(text) {
            Ok((false, d)) if !d.is_zero() => Ok(d),
            Ok((_, d)) => Err(bad(
                text,
                format!(
                    "expecting a positive wait value, got {}{d:?}",
                    if d.is_zero() { "" } else { "-" }
                ),
            )),
            Err(e) => Err(bad(text, e)),
        };
        return Some((result, after));
    }
    if let Some((digits, after)) = integer(rest) {
        let after = after.strip_prefix('>')?;
        let result = match digits.parse::<u64>() {
            Ok(0) => Err(bad(
                digits,
                "expecting a positive wait value, got 0s".into(),
            )),
            Ok(n) => Ok(Duration::from_secs(n)),
            Err(e) => Err(bad(digits, e.to_string())),
        };
        return Some((result, after));
    }
    let after = rest.strip_prefix('>')?;
    Some((Ok(Duration::from_secs(1)), after))
}

/// `<` Literal (On / Off) `>`
fn char_toggle(s: &str) -> Option<(BootItem, &str)> {
    let mut chars = s.chars();
    let ch = chars.next()?;
    let (action, rest) = toggle(chars.as_str())?;
    let rest = rest.strip_prefix('>')?;
    Some((
        BootItem::Key {
            key: Key::Char(ch),
            action,
        },
        rest,
    ))
}

/// `<` SpecialKey (On / Off)? `>` — the first special name that matches is
/// taken, as the PEG's ordered choice does.
fn special(s: &str) -> Option<(BootItem, &str)> {
    let (key, rest) = SPECIALS
        .iter()
        .find_map(|(name, key)| strip_prefix_ci(s, name).map(|rest| (*key, rest)))?;
    let (action, rest) = match toggle(rest) {
        Some((action, rest)) => (action, rest),
        None => (Action::Press, rest),
    };
    let rest = rest.strip_prefix('>')?;
    Some((
        BootItem::Key {
            key: Key::Special(key),
            action,
        },
        rest,
    ))
}

/// Parse a (rendered) boot command.
pub fn parse(input: &str) -> Result<Vec<BootItem>, BootCommandError> {
    let mut items = Vec::new();
    let mut rest = input;
    while let Some(ch) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix('<') {
            if let Some((result, r)) = wait(after) {
                items.push(BootItem::Wait(result?));
                rest = r;
                continue;
            }
            if let Some((item, r)) = char_toggle(after).or_else(|| special(after)) {
                items.push(item);
                rest = r;
                continue;
            }
        }
        items.push(BootItem::Key {
            key: Key::Char(ch),
            action: Action::Press,
        });
        rest = &rest[ch.len_utf8()..];
    }
    Ok(items)
}

/// A `<name>` that Packer's grammar does not know: it is typed literally,
/// character by character (not an error in Packer), with the closest key
/// or wait it may have meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownKey {
    /// As written, with its angle brackets (`<wiat5>`).
    pub text: String,
    /// The closest valid spelling, with angle brackets (`<wait5>`).
    pub suggestion: Option<String>,
}

/// Every `<word>` of a boot command that [`parse`] types literally: a
/// letter, then letters, digits or `.`, up to a `>`.
pub fn unknown_keys(input: &str) -> Vec<UnknownKey> {
    let mut out = Vec::new();
    let mut rest = input;
    while let Some(at) = rest.find('<') {
        let after = &rest[at + 1..];
        rest = after;
        // A bad `<waitN>` is an error of its own (see `parse`).
        let known =
            wait(after).is_some() || char_toggle(after).is_some() || special(after).is_some();
        if known {
            continue;
        }
        let name_len = after
            .char_indices()
            .take_while(|(i, c)| {
                if *i == 0 {
                    c.is_ascii_alphabetic()
                } else {
                    c.is_ascii_alphanumeric() || *c == '.'
                }
            })
            .map(|(i, c)| i + c.len_utf8())
            .last()
            .unwrap_or(0);
        if name_len < 2 || !after[name_len..].starts_with('>') {
            continue;
        }
        let name = &after[..name_len];
        out.push(UnknownKey {
            text: format!("<{name}>"),
            suggestion: closest_key(name).map(|s| format!("<{s}>")),
        });
        rest = &after[name_len + 1..];
    }
    out
}

/// The valid key or wait closest to `name` (compared without case).
fn closest_key(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let mut candidates: Vec<String> = Vec::new();
    for (n, _) in SPECIALS {
        candidates.push((*n).to_string());
        candidates.push(format!("{n}On"));
        candidates.push(format!("{n}Off"));
    }
    candidates.push("wait".into());
    // `<wiat5>`: keep what follows the letters as the wait's length.
    if let Some(i) = name.find(|c: char| c.is_ascii_digit()) {
        candidates.push(format!("wait{}", &name[i..]));
    }
    let lowered: Vec<String> = candidates.iter().map(|c| c.to_ascii_lowercase()).collect();
    let refs: Vec<&str> = lowered.iter().map(String::as_str).collect();
    let best = kiln_template::decode::did_you_mean(&lower, &refs)?;
    let i = refs.iter().position(|c| *c == best)?;
    candidates.get(i).cloned()
}

/// Write items back in Packer's syntax (canonical spellings).
pub fn to_string(items: &[BootItem]) -> String {
    let mut out = String::new();
    for item in items {
        out.push_str(&item.to_string());
    }
    out
}

impl fmt::Display for BootItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootItem::Wait(d) => {
                let ms = d.as_millis();
                if d.subsec_nanos() == 0 {
                    write!(f, "<wait{}s>", d.as_secs())
                } else if d.as_nanos() % 1_000_000 == 0 {
                    write!(f, "<wait{ms}ms>")
                } else {
                    write!(f, "<wait{}ns>", d.as_nanos())
                }
            }
            BootItem::Key { key, action } => {
                let suffix = match action {
                    Action::Press => "",
                    Action::Down => "On",
                    Action::Up => "Off",
                };
                match key {
                    Key::Char(c) if *action == Action::Press => write!(f, "{c}"),
                    Key::Char(c) => write!(f, "<{c}{suffix}>"),
                    Key::Special(s) => write!(f, "<{}{suffix}>", s.name()),
                }
            }
        }
    }
}

/// The QMP key code of a character on a US layout, and whether it needs
/// shift (`:`, `_`, capitals, …). Newlines type Enter, tabs type Tab.
pub fn char_qcode(c: char) -> Option<(&'static str, bool)> {
    const LETTERS: [&str; 26] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
        "s", "t", "u", "v", "w", "x", "y", "z",
    ];
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    Some(match c {
        'a'..='z' => (LETTERS[(c as u8 - b'a') as usize], false),
        'A'..='Z' => (LETTERS[(c as u8 - b'A') as usize], true),
        '0'..='9' => (DIGITS[(c as u8 - b'0') as usize], false),
        ' ' => ("spc", false),
        '\n' | '\r' => ("ret", false),
        '\t' => ("tab", false),
        '-' => ("minus", false),
        '_' => ("minus", true),
        '=' => ("equal", false),
        '+' => ("equal", true),
        '[' => ("bracket_left", false),
        '{' => ("bracket_left", true),
        ']' => ("bracket_right", false),
        '}' => ("bracket_right", true),
        '\\' => ("backslash", false),
        '|' => ("backslash", true),
        ';' => ("semicolon", false),
        ':' => ("semicolon", true),
        '\'' => ("apostrophe", false),
        '"' => ("apostrophe", true),
        ',' => ("comma", false),
        '<' => ("comma", true),
        '.' => ("dot", false),
        '>' => ("dot", true),
        '/' => ("slash", false),
        '?' => ("slash", true),
        '`' => ("grave_accent", false),
        '~' => ("grave_accent", true),
        '!' => ("1", true),
        '@' => ("2", true),
        '#' => ("3", true),
        '$' => ("4", true),
        '%' => ("5", true),
        '^' => ("6", true),
        '&' => ("7", true),
        '*' => ("8", true),
        '(' => ("9", true),
        ')' => ("0", true),
        _ => return None,
    })
}

/// A key event as QMP sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStroke {
    /// `send-key` of these qcodes together (modifiers first).
    Press(Vec<&'static str>),
    /// `input-send-event` down (true) or up (false) of one qcode.
    Hold {
        qcode: &'static str,
        down: bool,
    },
    Wait(Duration),
}

/// Map parsed items to key strokes; a character with no key on a US layout
/// is an error (found before anything is typed).
pub fn strokes(items: &[BootItem]) -> Result<Vec<KeyStroke>, BootCommandError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match *item {
            BootItem::Wait(d) => out.push(KeyStroke::Wait(d)),
            BootItem::Key { key, action } => {
                let (qcode, shift) = match key {
                    Key::Char(c) => char_qcode(c).ok_or(BootCommandError::Untypable { ch: c })?,
                    Key::Special(s) => (s.qcode(), false),
                };
                match action {
                    Action::Press if shift => out.push(KeyStroke::Press(vec!["shift", qcode])),
                    Action::Press => out.push(KeyStroke::Press(vec![qcode])),
                    Action::Down | Action::Up => {
                        let down = action == Action::Down;
                        if shift && down {
                            out.push(KeyStroke::Hold {
                                qcode: "shift",
                                down,
                            });
                        }
                        out.push(KeyStroke::Hold { qcode, down });
                        if shift && !down {
                            out.push(KeyStroke::Hold {
                                qcode: "shift",
                                down,
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
