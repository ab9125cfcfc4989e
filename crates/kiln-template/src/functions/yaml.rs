//! YAML for `yamldecode` and `yamlencode`, as go-cty-yaml does it.
//!
//! Packer (1.6.6 and current) pins go-cty-yaml v1.0.1, whose rules these
//! are. Decoding reads the event stream of a YAML parser and resolves
//! scalars (YAML 1.1 flavoured: `yes`/`no`/`on`/`off` are bools, `~` is
//! null, timestamps become RFC 3339 strings, decimal numbers may hold `_`,
//! `0b` binary, quoted scalars are strings, but `0x`/`0o` stay strings
//! unless tagged), merges `<<` keys (a mapping, not a sequence of them)
//! and expands aliases. Mappings become objects and sequences tuples.
//!
//! Encoding is a port of the parts of libyaml's emitter that go-cty-yaml
//! drives: strings double-quoted (a literal block when they contain a
//! newline and can be one), block collections, flow `[]`/`{}` when empty,
//! lines folded past 80 columns, and the `...` that libyaml writes after
//! a document whose root is a plain scalar.

use std::collections::BTreeMap;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::value::{Number, Value};

const TAG_PREFIX: &str = "tag:yaml.org,2002:";

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Parses one YAML document into a value.
pub(crate) fn decode(src: &str) -> Result<Value, String> {
    let src = if src.is_empty() { "\n" } else { src };
    let mut d = Decoder {
        parser: Parser::new_from_str(src),
        anchors: BTreeMap::new(),
        pending: Vec::new(),
    };
    let (ev, mark) = d.next()?;
    if ev != Event::StreamStart {
        return Err(at(mark, "missing stream start token"));
    }
    let (ev, mark) = d.next()?;
    match ev {
        Event::DocumentStart => {}
        // libyaml places the end of an empty stream at its start.
        Event::StreamEnd => return Err("on line 1, column 1: missing start of document".into()),
        _ => return Err(at(mark, "missing start of document")),
    }
    let value = d.value()?;
    let (ev, mark) = d.next()?;
    match ev {
        Event::DocumentEnd => {}
        Event::DocumentStart => return Err(at(mark, "only a single document is allowed")),
        _ => return Err(at(mark, "unexpected extra content after value")),
    }
    let (ev, mark) = d.next()?;
    if ev != Event::StreamEnd {
        return Err(at(mark, "unexpected extra content after value"));
    }
    Ok(value)
}

fn at(mark: Marker, msg: impl std::fmt::Display) -> String {
    format!("on line {}, column {}: {msg}", mark.line(), mark.col() + 1)
}

struct Decoder<'a> {
    parser: Parser<std::str::Chars<'a>>,
    anchors: BTreeMap<usize, Value>,
    /// Anchors whose node is still being read.
    pending: Vec<usize>,
}

impl Decoder<'_> {
    fn next(&mut self) -> Result<(Event, Marker), String> {
        self.parser.next_token().map_err(|e| {
            let m = e.marker();
            format!("on line {}, column {}: {}", m.line(), m.col() + 1, e.info())
        })
    }

    fn value(&mut self) -> Result<Value, String> {
        let (ev, mark) = self.next()?;
        self.value_from(ev, mark)
    }

    fn value_from(&mut self, ev: Event, mark: Marker) -> Result<Value, String> {
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let v = resolve_scalar(tag.as_ref(), &text, style).map_err(|e| at(mark, e))?;
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                Ok(v)
            }
            Event::Alias(id) => {
                if self.pending.contains(&id) {
                    return Err(at(
                        mark,
                        "cannot refer to an anchor from inside its own definition",
                    ));
                }
                self.anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| at(mark, "reference to undefined anchor"))
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(t) = tag.as_ref().map(full_tag)
                    && t != format!("{TAG_PREFIX}seq")
                {
                    return Err(at(
                        mark,
                        format!("can't interpret sequence as {}", short_tag(&t)),
                    ));
                }
                self.begin(anchor);
                let mut items = Vec::new();
                loop {
                    let (ev, mark) = self.next()?;
                    if ev == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.value_from(ev, mark)?);
                }
                let v = Value::Tuple(items);
                self.complete(anchor, &v);
                Ok(v)
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(t) = tag.as_ref().map(full_tag)
                    && t != format!("{TAG_PREFIX}map")
                {
                    return Err(at(
                        mark,
                        format!("can't interpret mapping as {}", short_tag(&t)),
                    ));
                }
                self.begin(anchor);
                let mut attrs = BTreeMap::new();
                loop {
                    let (ev, mark) = self.next()?;
                    match ev {
                        Event::MappingEnd => break,
                        Event::Scalar(ref text, style, _, ref tag)
                            if is_merge_key(text, style, tag.as_ref()) =>
                        {
                            self.merge_into(&mut attrs, mark)?;
                        }
                        Event::Scalar(text, style, anchor, tag) => {
                            let key = resolve_scalar(tag.as_ref(), &text, style)
                                .map_err(|e| at(mark, e))?;
                            if anchor > 0 {
                                self.anchors.insert(anchor, key.clone());
                            }
                            let key = match key {
                                Value::Null => return Err(at(mark, "mapping key cannot be null")),
                                Value::String(s) => s,
                                Value::Number(n) => n.to_string(),
                                Value::Bool(b) => b.to_string(),
                                _ => {
                                    return Err(at(
                                        mark,
                                        "only strings are allowed as mapping keys",
                                    ));
                                }
                            };
                            let v = self.value()?;
                            attrs.insert(key, v);
                        }
                        _ => return Err(at(mark, "only strings are allowed as mapping keys")),
                    }
                }
                let v = Value::Object(attrs);
                self.complete(anchor, &v);
                Ok(v)
            }
            Event::DocumentStart => Err(at(mark, "only a single document is allowed")),
            Event::StreamEnd => Err(at(mark, "expecting value but found end of stream")),
            Event::MappingEnd => Err(at(mark, "expecting value but found end of mapping")),
            Event::SequenceEnd => Err(at(mark, "expecting value but found end of sequence")),
            other => Err(at(mark, format!("unexpected parser event {other:?}"))),
        }
    }

    fn merge_into(
        &mut self,
        attrs: &mut BTreeMap<String, Value>,
        mark: Marker,
    ) -> Result<(), String> {
        match self.value()? {
            Value::Object(m) | Value::Map(m) => {
                attrs.extend(m);
                Ok(())
            }
            other => Err(at(
                mark,
                format!("cannot merge {} into mapping", other.ty().friendly_name()),
            )),
        }
    }

    fn begin(&mut self, anchor: usize) {
        if anchor > 0 {
            self.pending.push(anchor);
        }
    }

    fn complete(&mut self, anchor: usize, v: &Value) {
        if anchor > 0 {
            self.pending.retain(|a| *a != anchor);
            self.anchors.insert(anchor, v.clone());
        }
    }
}

fn full_tag(t: &Tag) -> String {
    let handle = if t.handle == "!!" {
        TAG_PREFIX
    } else {
        &t.handle
    };
    format!("{handle}{}", t.suffix)
}

fn short_tag(t: &str) -> String {
    match t.strip_prefix(TAG_PREFIX) {
        Some(rest) => format!("!!{rest}"),
        None => t.to_string(),
    }
}

/// v1.0.1: any untagged `<<` key, quoted or not.
fn is_merge_key(text: &str, _style: TScalarStyle, tag: Option<&Tag>) -> bool {
    tag.is_none() && text == "<<"
}

/// go-cty-yaml's `resolveScalar`.
fn resolve_scalar(tag: Option<&Tag>, src: &str, style: TScalarStyle) -> Result<Value, String> {
    let tag = tag.map(full_tag).unwrap_or_default();
    let short = tag.strip_prefix(TAG_PREFIX).map(|s| s.to_string());
    let kind = match short.as_deref() {
        _ if tag.is_empty() => "",
        Some(k @ ("str" | "bool" | "int" | "float" | "null" | "timestamp" | "binary")) => k,
        _ => return Err(format!("unsupported tag {}", crate::value::go_quote(&tag))),
    };
    // yaml-rust2 reports an empty plain scalar as `~`.
    let src = if style == TScalarStyle::Plain && src == "~" && kind.is_empty() {
        ""
    } else {
        src
    };
    let mut kind = kind;
    let hint = match src.as_bytes().first() {
        None => Some('N'),
        Some(b'+' | b'-') => Some('S'),
        Some(b'0'..=b'9') => Some('D'),
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => {
            Some('M')
        }
        Some(b'.') => Some('.'),
        _ => None,
    };
    if let Some(hint) = hint
        && kind != "str"
        && kind != "binary"
    {
        if matches!(
            style,
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted
        ) {
            return Ok(Value::string(src));
        }
        if let Some(v) = resolve_map(src) {
            return Ok(v);
        }
        if kind.is_empty() && matches!(src, ".nan" | ".NaN" | ".NAN") {
            return Err("floating point NaN is not supported".into());
        }
        match hint {
            '.' => {
                if let Some(n) = Number::parse(src) {
                    return Ok(Value::Number(n));
                }
            }
            'D' | 'S' => {
                if (kind.is_empty() || kind == "timestamp")
                    && let Some(t) = parse_timestamp(src)
                {
                    return Ok(Value::String(t));
                }
                let plain = src.replace('_', "");
                if let Some(n) = Number::parse(&plain) {
                    return Ok(Value::Number(n));
                }
                if plain.starts_with("0b") || plain.starts_with("-0b") {
                    kind = "int";
                }
            }
            _ => {}
        }
    }
    match kind {
        "str" => Ok(Value::string(src)),
        "binary" => {
            use base64::Engine as _;
            let cleaned: String = src.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(cleaned)
                .map(|_| Value::string(src))
                .map_err(|_| {
                    format!(
                        "cannot parse {} as {}: not valid base64",
                        crate::value::go_quote(src),
                        tag
                    )
                })
        }
        "bool" => match resolve_map(src) {
            Some(v @ Value::Bool(_)) => Ok(v),
            _ => Err(format!(
                "cannot parse {} as {}",
                crate::value::go_quote(src),
                tag_name(&tag, "bool")
            )),
        },
        "int" | "float" => {
            let plain = src.replace('_', "");
            if let Some(n) = Number::parse(&plain) {
                return Ok(Value::Number(n));
            }
            if let Some(n) = go_parse_int_base0(&plain) {
                return Ok(Value::number(n));
            }
            let binary = |digits: &str, neg: bool| {
                u64::from_str_radix(digits, 2)
                    .ok()
                    .filter(|v| !neg || *v <= i64::MAX as u64)
                    .map(|v| Value::number(if neg { -(v as f64) } else { v as f64 }))
            };
            if let Some(v) = plain.strip_prefix("0b").and_then(|d| binary(d, false)) {
                return Ok(v);
            }
            if let Some(v) = plain.strip_prefix("-0b").and_then(|d| binary(d, true)) {
                return Ok(v);
            }
            Err(format!(
                "cannot parse {} as {}",
                crate::value::go_quote(src),
                tag_name(&tag, kind)
            ))
        }
        "timestamp" => parse_timestamp(src)
            .map(Value::String)
            .ok_or_else(|| format!("cannot parse {} as {tag}", crate::value::go_quote(src))),
        "null" => Ok(Value::Null),
        _ => Ok(Value::string(src)),
    }
}

fn tag_name(tag: &str, kind: &str) -> String {
    if tag.is_empty() {
        format!("{TAG_PREFIX}{kind}")
    } else {
        tag.to_string()
    }
}

fn resolve_map(src: &str) -> Option<Value> {
    Some(match src {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Value::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Value::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Value::number(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Value::number(f64::NEG_INFINITY),
        _ => return None,
    })
}

/// Go's `strconv.ParseInt(s, 0, 64)` (then `ParseUint`): `0x`, `0o`, `0b`
/// and a leading `0` for octal.
fn go_parse_int_base0(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) =
        if let Some(r) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, r)
        } else if let Some(r) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (8, r)
        } else if let Some(r) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (2, r)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    let v = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some(-(v as f64))
    } else {
        Some(v as f64)
    }
}

/// go-cty-yaml's timestamps: `YYYY-M-D`, with an optional time (`T`, `t`
/// or space) and zone; returned in RFC 3339.
fn parse_timestamp(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let year_len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if year_len != 4 || bytes.get(4) != Some(&b'-') {
        return None;
    }
    let num = |t: &str, min_len: usize, max_len: usize| -> Option<u32> {
        if t.len() < min_len || t.len() > max_len || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some((&s[i..i + 1], &s[i + 1..]))),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month = num(parts.next()?, 1, 2)?;
    let day = num(parts.next()?, 1, 2)?;
    let date = chrono::NaiveDate::from_ymd_opt(year, month, day)?;
    let Some((sep, time)) = time else {
        return Some(format!("{}T00:00:00Z", date.format("%Y-%m-%d")));
    };
    // The time: H:M:S(.frac)? then, for T/t, a zone (Z or ±hh:mm); for a
    // space, no zone at all.
    let zone_at = if sep == " " {
        None
    } else {
        time.find(['Z', '+', '-'])
    };
    let (clock, zone) = match zone_at {
        Some(i) => (&time[..i], Some(&time[i..])),
        None => (time, None),
    };
    if sep != " " && zone.is_none() {
        return None;
    }
    let (hms, frac) = match clock.split_once('.') {
        Some((a, f)) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            (a, Some(f))
        }
        Some(_) => return None,
        None => (clock, None),
    };
    let mut t = hms.splitn(3, ':');
    let h = num(t.next()?, 1, 2)?;
    let m = num(t.next()?, 1, 2)?;
    let sec = num(t.next()?, 1, 2)?;
    let nanos = frac.map_or(Some(0), |f| format!("{f:0<9}").parse::<u32>().ok())?;
    let time = chrono::NaiveTime::from_hms_nano_opt(h, m, sec, nanos)?;
    let offset_secs = match zone {
        None | Some("Z") => 0,
        Some(z) => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (hh, mm) = z[1..].split_once(':')?;
            let hh = num(hh, 2, 2)? as i32;
            let mm = num(mm, 2, 2)? as i32;
            sign * (hh * 3600 + mm * 60)
        }
    };
    let offset = chrono::FixedOffset::east_opt(offset_secs)?;
    let dt = chrono::NaiveDateTime::new(date, time)
        .and_local_timezone(offset)
        .single()?;
    // Go's time.RFC3339 drops fractions of a second.
    Some(if offset_secs == 0 {
        dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        dt.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    })
}

// ---------------------------------------------------------------------------
// Encoding: libyaml's emitter, the parts go-cty-yaml uses
// ---------------------------------------------------------------------------

/// The value as `yamlencode` writes it.
pub(crate) fn encode(v: &Value) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        indent: -1,
        indents: Vec::new(),
        whitespace: true,
        indention: true,
        open_ended: false,
        flow_level: 0,
        root: false,
        mapping: false,
        simple_key: false,
    };
    e.node(v, true, false, false, false);
    // Document end (implicit).
    e.write_indent();
    // Stream end.
    if e.open_ended {
        e.write_indicator("...", true, false, false);
        e.write_indent();
    }
    e.out
}

const BEST_INDENT: i64 = 2;
const BEST_WIDTH: usize = 80;

struct Emitter {
    out: String,
    column: usize,
    indent: i64,
    indents: Vec<i64>,
    whitespace: bool,
    indention: bool,
    open_ended: bool,
    flow_level: usize,
    root: bool,
    mapping: bool,
    simple_key: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    DoubleQuoted,
    Literal,
}

/// libyaml's analysis of a scalar.
struct Analysis {
    multiline: bool,
    flow_plain_allowed: bool,
    block_plain_allowed: bool,
    block_allowed: bool,
}

fn is_printable(c: char) -> bool {
    let u = c as u32;
    u == 0x0A
        || (0x20..=0x7E).contains(&u)
        || (0xA0..=0xD7FF).contains(&u)
        || ((0xE000..=0xFFFD).contains(&u) && u != 0xFEFF)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn analyze(value: &str) -> Analysis {
    if value.is_empty() {
        return Analysis {
            multiline: false,
            flow_plain_allowed: false,
            block_plain_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = value.chars().collect();
    let mut block_indicators = false;
    let mut flow_indicators = false;
    if value.starts_with("---") || value.starts_with("...") {
        block_indicators = true;
        flow_indicators = true;
    }
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let mut preceded_by_ws = true;
    let (mut prev_space, mut prev_break) = (false, false);
    let n = chars.len();
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = i + 1 >= n || matches!(chars[i + 1], ' ' | '\t');
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                '?' | ':' => {
                    flow_indicators = true;
                    if followed_by_ws {
                        block_indicators = true;
                    }
                }
                '-' if followed_by_ws => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        } else {
            match c {
                ',' | '?' | '[' | ']' | '{' | '}' => flow_indicators = true,
                ':' => {
                    flow_indicators = true;
                    if followed_by_ws {
                        block_indicators = true;
                    }
                }
                '#' if preceded_by_ws => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i + 1 == n {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if i + 1 == n {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_space = false;
            prev_break = true;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = matches!(c, ' ' | '\t') || is_break(c);
    }
    let mut a = Analysis {
        multiline: line_breaks,
        flow_plain_allowed: true,
        block_plain_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
    }
    if space_break || special {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
    }
    if flow_indicators {
        a.flow_plain_allowed = false;
    }
    if block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

/// The scalar text and wanted style of a primitive, as go-cty-yaml emits it.
fn scalar_of(v: &Value) -> Option<(String, Style)> {
    Some(match v {
        Value::Null => ("null".into(), Style::Plain),
        Value::Bool(b) => (b.to_string(), Style::Plain),
        Value::Number(n) => (n.to_string(), Style::Plain),
        Value::String(s) => (
            s.clone(),
            if s.contains('\n') {
                Style::Literal
            } else {
                Style::DoubleQuoted
            },
        ),
        _ => return None,
    })
}

fn is_empty_collection(v: &Value) -> bool {
    match v {
        Value::List(x) | Value::Set(x) | Value::Tuple(x) => x.is_empty(),
        Value::Map(m) | Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.out.push(c);
            self.column = 0;
        }
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(&mut self, ind: &str, need_ws: bool, is_ws: bool, is_indention: bool) {
        if need_ws && !self.whitespace {
            self.put(' ');
        }
        for c in ind.chars() {
            self.put(c);
        }
        self.whitespace = is_ws;
        self.indention = self.indention && is_indention;
        self.open_ended = false;
    }

    fn node(&mut self, v: &Value, root: bool, sequence: bool, mapping: bool, simple_key: bool) {
        self.root = root;
        self.mapping = mapping;
        self.simple_key = simple_key;
        let _ = sequence;
        match v {
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
                if self.flow_level > 0 || items.is_empty() {
                    self.flow_sequence(items);
                } else {
                    self.block_sequence(items);
                }
            }
            Value::Map(m) | Value::Object(m) => {
                if self.flow_level > 0 || m.is_empty() {
                    self.flow_mapping(m);
                } else {
                    self.block_mapping(m);
                }
            }
            _ => self.scalar(v),
        }
    }

    fn flow_sequence(&mut self, items: &[Value]) {
        self.write_indicator("[", true, true, false);
        self.increase_indent(true, false);
        self.flow_level += 1;
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.write_indicator(",", false, false, false);
            }
            if self.column > BEST_WIDTH {
                self.write_indent();
            }
            self.node(item, false, true, false, false);
        }
        self.flow_level -= 1;
        self.pop_indent();
        self.write_indicator("]", false, false, false);
    }

    fn flow_mapping(&mut self, m: &BTreeMap<String, Value>) {
        self.write_indicator("{", true, true, false);
        self.increase_indent(true, false);
        self.flow_level += 1;
        for (i, (k, v)) in m.iter().enumerate() {
            if i > 0 {
                self.write_indicator(",", false, false, false);
            }
            if self.column > BEST_WIDTH {
                self.write_indent();
            }
            let key = Value::String(k.clone());
            if self.check_simple_key(&key) {
                self.node(&key, false, false, true, true);
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, false);
                self.node(&key, false, false, true, false);
                if self.column > BEST_WIDTH {
                    self.write_indent();
                }
                self.write_indicator(":", true, false, false);
            }
            self.node(v, false, false, true, false);
        }
        self.flow_level -= 1;
        self.pop_indent();
        self.write_indicator("}", false, false, false);
    }

    fn block_sequence(&mut self, items: &[Value]) {
        let indentless = self.mapping && !self.indention;
        self.increase_indent(false, indentless);
        for item in items {
            self.write_indent();
            self.write_indicator("-", true, false, true);
            self.node(item, false, true, false, false);
        }
        self.pop_indent();
    }

    fn block_mapping(&mut self, m: &BTreeMap<String, Value>) {
        self.increase_indent(false, false);
        for (k, v) in m {
            self.write_indent();
            let key = Value::String(k.clone());
            if self.check_simple_key(&key) {
                self.node(&key, false, false, true, true);
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, true);
                self.node(&key, false, false, true, false);
                self.write_indent();
                self.write_indicator(":", true, false, true);
            }
            self.node(v, false, false, true, false);
        }
        self.pop_indent();
    }

    fn check_simple_key(&self, key: &Value) -> bool {
        match key {
            Value::List(_) | Value::Set(_) | Value::Tuple(_) | Value::Map(_) | Value::Object(_) => {
                is_empty_collection(key)
            }
            other => match scalar_of(other) {
                Some((text, _)) => !analyze(&text).multiline && text.len() <= 128,
                None => false,
            },
        }
    }

    fn scalar(&mut self, v: &Value) {
        let Some((text, wanted)) = scalar_of(v) else {
            return;
        };
        let a = analyze(&text);
        let mut style = wanted;
        if self.simple_key && a.multiline {
            style = Style::DoubleQuoted;
        }
        // libyaml would single-quote a plain scalar that cannot stay
        // plain; go-cty-yaml's plain scalars (numbers, bools, null) always
        // can, so that path is not ported.
        if style == Style::Plain
            && ((self.flow_level > 0 && !a.flow_plain_allowed)
                || (self.flow_level == 0 && !a.block_plain_allowed))
        {
            style = Style::DoubleQuoted;
        }
        if style == Style::Literal && (!a.block_allowed || self.flow_level > 0 || self.simple_key) {
            style = Style::DoubleQuoted;
        }
        self.increase_indent(true, false);
        let allow_breaks = !self.simple_key;
        match style {
            Style::Plain => self.write_plain(&text, allow_breaks),
            Style::DoubleQuoted => self.write_double_quoted(&text, allow_breaks),
            Style::Literal => self.write_literal(&text),
        }
        self.pop_indent();
    }

    fn write_plain(&mut self, value: &str, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = value.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
        if self.root {
            self.open_ended = true;
        }
    }

    fn write_double_quoted(&mut self, value: &str, allow_breaks: bool) {
        self.write_indicator("\"", true, false, false);
        let starts_with_bom = value.starts_with('\u{feff}');
        let bytes_len = value.len();
        let mut spaces = false;
        let mut chars = value.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if !is_printable(c) || starts_with_bom || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                let code = c as u32;
                match c {
                    '\0' => self.put('0'),
                    '\u{7}' => self.put('a'),
                    '\u{8}' => self.put('b'),
                    '\t' => self.put('t'),
                    '\n' => self.put('n'),
                    '\u{b}' => self.put('v'),
                    '\u{c}' => self.put('f'),
                    '\r' => self.put('r'),
                    '\u{1b}' => self.put('e'),
                    '"' => self.put('"'),
                    '\\' => self.put('\\'),
                    '\u{85}' => self.put('N'),
                    '\u{a0}' => self.put('_'),
                    '\u{2028}' => self.put('L'),
                    '\u{2029}' => self.put('P'),
                    _ => {
                        let (letter, width) = if code <= 0xFF {
                            ('x', 2)
                        } else if code <= 0xFFFF {
                            ('u', 4)
                        } else {
                            ('U', 8)
                        };
                        self.put(letter);
                        for k in (0..width).rev() {
                            let digit = (code >> (k * 4)) & 0xF;
                            self.put(
                                std::char::from_digit(digit, 16)
                                    .unwrap_or('0')
                                    .to_ascii_uppercase(),
                            );
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks && !spaces && self.column > BEST_WIDTH && i > 0 && i < bytes_len - 1
                {
                    self.write_indent();
                    if chars.peek().is_some_and(|&(_, next)| next == ' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_literal(&mut self, value: &str) {
        self.write_indicator("|", true, false, false);
        // Block scalar hints.
        if value.starts_with(' ') || value.starts_with(is_break) {
            self.write_indicator(&BEST_INDENT.to_string(), false, false, false);
        }
        self.open_ended = false;
        let mut rev = value.chars().rev();
        let chomp = match (rev.next(), rev.next()) {
            (None, _) => Some('-'),
            (Some(last), _) if !is_break(last) => Some('-'),
            (Some(_), None) => {
                self.open_ended = true;
                Some('+')
            }
            (Some(_), Some(before)) if is_break(before) => {
                self.open_ended = true;
                Some('+')
            }
            _ => None,
        };
        if let Some(c) = chomp {
            self.write_indicator(&c.to_string(), false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for c in value.chars() {
            if is_break(c) {
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::testing::*;

    fn dec(src: &str) -> Value {
        decode(src).unwrap_or_else(|e| panic!("{src:?}: {e}"))
    }

    #[test]
    fn scalars_resolve_as_go_cty_yaml() {
        assert_eq!(dec("true"), b(true));
        assert_eq!(dec("yes"), b(true));
        assert_eq!(dec("Off"), b(false));
        assert_eq!(dec("\"True\""), s("True"));
        assert_eq!(dec("~"), Value::Null);
        assert_eq!(dec("null"), Value::Null);
        assert_eq!(
            decode("").unwrap_err(),
            "on line 1, column 1: missing start of document"
        );
        assert_eq!(dec("---"), Value::Null);
        assert_eq!(dec("12"), n(12.0));
        assert_eq!(dec("-1.5e3"), n(-1500.0));
        assert_eq!(dec(".5"), n(0.5));
        assert_eq!(dec("0x1F"), s("0x1F"));
        assert_eq!(dec("!!int 0x1F"), n(31.0));
        assert_eq!(dec("0o17"), s("0o17"));
        assert_eq!(dec("1_000"), n(1000.0));
        assert_eq!(dec("0b101"), n(5.0));
        assert_eq!(dec("-0b11"), n(-3.0));
        assert_eq!(dec("0777"), n(777.0));
        assert_eq!(dec("12abc"), s("12abc"));
        assert_eq!(dec(".inf"), n(f64::INFINITY));
        assert_eq!(dec("'1'"), s("1"));
        assert_eq!(dec("hello world"), s("hello world"));
        assert_eq!(
            dec("2001-12-14t21:59:43.10-05:00"),
            s("2001-12-14T21:59:43-05:00")
        );
        assert_eq!(dec("2002-12-14"), s("2002-12-14T00:00:00Z"));
        assert_eq!(dec("!!str 12"), s("12"));
        assert!(decode(".nan").unwrap_err().contains("NaN is not supported"));
        assert!(
            decode("!!bool maybe")
                .unwrap_err()
                .contains("cannot parse \"maybe\" as tag:yaml.org,2002:bool")
        );
        assert!(
            decode("!foo x")
                .unwrap_err()
                .contains("unsupported tag \"!foo\"")
        );
    }

    #[test]
    fn collections_are_objects_and_tuples() {
        assert_eq!(
            dec("a: 1\nb: [x, 'y']\nc:\n  - d: ~\n"),
            obj(&[
                ("a", n(1.0)),
                ("b", strs(&["x", "y"])),
                ("c", tup(vec![obj(&[("d", Value::Null)])])),
            ])
        );
        assert_eq!(
            dec("1: one\ntrue: yes"),
            obj(&[("1", s("one")), ("true", b(true))])
        );
        assert_eq!(dec("{}"), obj(&[]));
        assert_eq!(dec("[]"), tup(vec![]));
        assert_eq!(dec("key:"), obj(&[("key", Value::Null)]));
    }

    #[test]
    fn anchors_aliases_and_merges() {
        assert_eq!(
            dec("base: &b {x: 1, z: 2}\nderived:\n  <<: *b\n  z: 3\n"),
            obj(&[
                ("base", obj(&[("x", n(1.0)), ("z", n(2.0))])),
                ("derived", obj(&[("x", n(1.0)), ("z", n(3.0))])),
            ])
        );
        // YAML 1.1: `y` is a bool, also as a key.
        assert_eq!(dec("y: 1"), obj(&[("true", n(1.0))]));
        assert_eq!(dec("- &a hi\n- *a"), strs(&["hi", "hi"]));
        // v1.0.1 merges a mapping only.
        assert!(
            decode("a: &a {x: 1}\nb: &b {w: 2}\nc:\n  <<: [*a, *b]")
                .unwrap_err()
                .contains("cannot merge tuple into mapping")
        );
        assert_eq!(dec("'<<': {k: v}"), obj(&[("k", s("v"))]));
        assert_eq!(dec("a: <<"), obj(&[("a", s("<<"))]));
        assert!(decode("a: &a [*a]").is_err());
        assert!(
            decode("<<: 1")
                .unwrap_err()
                .contains("cannot merge number into mapping")
        );
    }

    #[test]
    fn document_rules() {
        assert_eq!(
            decode("---\ntrue\n---\nfalse").unwrap_err(),
            "on line 3, column 1: unexpected extra content after value"
        );
        assert!(decode("a: [").is_err());
        assert!(
            decode("? [a]\n: b")
                .unwrap_err()
                .contains("only strings are allowed as mapping keys")
        );
        assert!(
            decode("~: b")
                .unwrap_err()
                .contains("mapping key cannot be null")
        );
    }

    #[test]
    fn encoding_matches_go_cty_yaml() {
        assert_eq!(encode(&b(true)), "true\n...\n");
        assert_eq!(encode(&n(0.0)), "0\n...\n");
        assert_eq!(encode(&Value::Null), "null\n...\n");
        assert_eq!(encode(&s("")), "\"\"\n");
        assert_eq!(encode(&s("hello")), "\"hello\"\n");
        assert_eq!(encode(&s("hello\nworld")), "|-\n  hello\n  world\n");
        assert_eq!(encode(&s("hello\nworld\n")), "|\n  hello\n  world\n");
        assert_eq!(encode(&s("hello\n\n")), "|+\n  hello\n\n");
        assert_eq!(encode(&s(" lead\nx")), "|2-\n   lead\n  x\n");
        assert_eq!(encode(&s("trail \nx")), "\"trail \\nx\"\n");
        assert_eq!(encode(&s("tab\there")), "\"tab\\there\"\n");
        assert_eq!(encode(&s("é ☃ 🤔")), "\"é ☃ \\U0001F914\"\n");
        assert_eq!(encode(&obj(&[])), "{}\n");
        assert_eq!(encode(&tup(vec![])), "[]\n");
        assert_eq!(encode(&obj(&[("a", s("b"))])), "\"a\": \"b\"\n");
        assert_eq!(
            encode(&obj(&[
                ("foo", tup(vec![n(1.0), n(2.0), n(3.0)])),
                ("bar", s("baz"))
            ])),
            "\"bar\": \"baz\"\n\"foo\":\n- 1\n- 2\n- 3\n"
        );
        assert_eq!(
            encode(&obj(&[
                ("a", obj(&[("b", obj(&[("c", s("d"))]))])),
                ("e", tup(vec![]))
            ])),
            "\"a\":\n  \"b\":\n    \"c\": \"d\"\n\"e\": []\n"
        );
        assert_eq!(
            encode(&tup(vec![
                obj(&[("a", n(1.0)), ("b", n(2.0))]),
                tup(vec![s("x"), s("y")])
            ])),
            "- \"a\": 1\n  \"b\": 2\n- - \"x\"\n  - \"y\"\n"
        );
        assert_eq!(
            encode(&obj(&[("text", s("line1\nline2\n"))])),
            "\"text\": |\n  line1\n  line2\n"
        );
    }

    #[test]
    fn long_strings_fold_at_80_columns() {
        let long = "word ".repeat(30);
        let long = long.trim_end();
        let out = encode(&obj(&[("k", s(long))]));
        assert!(out.lines().count() > 1, "{out}");
        assert!(out.starts_with("\"k\": \"word word"));
        // Folded back, the string is the same.
        assert_eq!(dec(&out), obj(&[("k", s(long))]));
    }

    #[test]
    fn round_trips() {
        let v = obj(&[
            ("list", tup(vec![s("a"), n(1.5), b(false), Value::Null])),
            (
                "nested",
                obj(&[("x", s("multi\nline")), ("y", tup(vec![]))]),
            ),
            ("quote", s("it's \"quoted\" \\ yes")),
        ]);
        assert_eq!(dec(&encode(&v)), v);
    }
}
