//! `packer fmt`: canonical layout of native-syntax HCL files, following
//! hclwrite's `Format` (which `packer fmt` runs): re-indent by bracket
//! nesting (two spaces a level), one space between most tokens and none
//! inside brackets or around dots, `=` of consecutive one-line attributes
//! aligned, trailing comments aligned. Comments and strings are kept as
//! written; the file must parse.

use std::sync::Arc;

use crate::diag::Diag;
use crate::source::SourceFile;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum T {
    Ident,
    Number,
    OQuote,
    CQuote,
    QuotedLit,
    Interp,
    Control,
    SeqEnd,
    OHeredoc,
    CHeredoc,
    StringLit,
    Comment,
    Newline,
    OBrace,
    CBrace,
    OBrack,
    CBrack,
    OParen,
    CParen,
    Equal,
    Comma,
    Dot,
    Ellipsis,
    Minus,
    Plus,
    Star,
    Slash,
    Percent,
    EqualOp,
    NotEqual,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Bang,
    Question,
    Colon,
    FatArrow,
    Other,
}

#[derive(Clone, Debug)]
struct Tok {
    t: T,
    text: String,
    spaces: usize,
}

fn bracket(t: T) -> i32 {
    match t {
        T::OBrace | T::OBrack | T::OParen | T::Interp | T::Control => 1,
        T::CBrace | T::CBrack | T::CParen | T::SeqEnd => -1,
        _ => 0,
    }
}

enum Mode {
    /// Expression tokens; the number is the brace depth that ends an
    /// interpolation (None at top level).
    Normal(Option<usize>),
    Quoted,
    Heredoc {
        delim: String,
    },
}

struct Lexer<'a> {
    s: &'a str,
    pos: usize,
    toks: Vec<Tok>,
    modes: Vec<Mode>,
    depth: usize,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    fn push(&mut self, t: T, len: usize) {
        let text = self
            .s
            .get(self.pos..self.pos + len)
            .unwrap_or("")
            .to_string();
        self.pos += len;
        self.toks.push(Tok { t, text, spaces: 0 });
    }

    fn run(mut self) -> Vec<Tok> {
        while self.pos < self.s.len() {
            match self.modes.last() {
                Some(Mode::Quoted) => self.quoted(),
                Some(Mode::Heredoc { .. }) => self.heredoc(),
                _ => self.normal(),
            }
        }
        self.toks
    }

    fn template_start(&mut self) -> bool {
        let r = self.rest();
        if r.starts_with("${") || r.starts_with("%{") {
            let t = if r.starts_with('$') {
                T::Interp
            } else {
                T::Control
            };
            let len = if r[2..].starts_with('~') { 3 } else { 2 };
            self.push(t, len);
            self.depth += 1;
            self.modes.push(Mode::Normal(Some(self.depth)));
            return true;
        }
        false
    }

    fn quoted(&mut self) {
        if self.template_start() {
            return;
        }
        let r = self.rest();
        if r.starts_with('"') {
            self.push(T::CQuote, 1);
            self.modes.pop();
            return;
        }
        let bytes = r.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' | b'\n' => break,
                b'\\' => i += 2,
                b'$' | b'%' if bytes.get(i + 1) == Some(&b'{') => {
                    if i > 0 && bytes[i - 1] == bytes[i] {
                        i += 2;
                        continue;
                    }
                    break;
                }
                b'$' | b'%'
                    if bytes.get(i + 1) == Some(&bytes[i]) && bytes.get(i + 2) == Some(&b'{') =>
                {
                    i += 3
                }
                _ => i += 1,
            }
        }
        if i == 0 {
            // A newline in a quoted string: let the normal lexer have it.
            self.modes.pop();
            return;
        }
        let mut i = i.min(r.len());
        while !r.is_char_boundary(i) {
            i += 1;
        }
        self.push(T::QuotedLit, i);
    }

    fn heredoc(&mut self) {
        let delim = match self.modes.last() {
            Some(Mode::Heredoc { delim }) => delim.clone(),
            _ => return,
        };
        // At a line start: is it the closing marker?
        let at_line_start = self.pos == 0 || self.s.as_bytes().get(self.pos - 1) == Some(&b'\n');
        let r = self.rest();
        if at_line_start {
            let line = r.split('\n').next().unwrap_or("");
            if line.trim() == delim {
                let len = line.trim_end().len();
                self.push(T::CHeredoc, len);
                self.modes.pop();
                return;
            }
        }
        if self.template_start() {
            return;
        }
        let bytes = r.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => {
                    i += 1;
                    break;
                }
                b'$' | b'%' if bytes.get(i + 1) == Some(&b'{') => {
                    if i > 0 && bytes[i - 1] == bytes[i] {
                        i += 2;
                        continue;
                    }
                    break;
                }
                _ => i += 1,
            }
        }
        if i == 0 {
            i = 1;
        }
        let mut i = i.min(r.len());
        while !r.is_char_boundary(i) {
            i += 1;
        }
        self.push(T::StringLit, i);
    }

    fn normal(&mut self) {
        let r = self.rest();
        let b = r.as_bytes();
        let c = b[0];
        match c {
            b' ' | b'\t' | b'\r' if !r.starts_with("\r\n") => {
                self.pos += 1;
            }
            b'\n' => self.push(T::Newline, 1),
            b'\r' => self.push(T::Newline, 2),
            b'#' => self.line_comment(),
            b'/' if r.starts_with("//") => self.line_comment(),
            b'/' if r.starts_with("/*") => {
                let len = r[2..].find("*/").map_or(r.len(), |i| i + 4);
                self.push(T::Comment, len);
            }
            b'"' => {
                self.push(T::OQuote, 1);
                self.modes.push(Mode::Quoted);
            }
            b'<' if r.starts_with("<<") && self.heredoc_start() => {}
            b'{' => {
                self.depth += 1;
                self.push(T::OBrace, 1);
            }
            b'}' => {
                if let Some(Mode::Normal(Some(d))) = self.modes.last()
                    && *d == self.depth
                {
                    self.depth -= 1;
                    self.modes.pop();
                    self.push(T::SeqEnd, 1);
                    return;
                }
                self.depth = self.depth.saturating_sub(1);
                self.push(T::CBrace, 1);
            }
            b'~' if r.starts_with("~}") => {
                if let Some(Mode::Normal(Some(d))) = self.modes.last()
                    && *d == self.depth
                {
                    self.depth -= 1;
                    self.modes.pop();
                    self.push(T::SeqEnd, 2);
                    return;
                }
                self.push(T::Other, 1);
            }
            b'[' => self.push(T::OBrack, 1),
            b']' => self.push(T::CBrack, 1),
            b'(' => self.push(T::OParen, 1),
            b')' => self.push(T::CParen, 1),
            b',' => self.push(T::Comma, 1),
            b'.' if r.starts_with("...") => self.push(T::Ellipsis, 3),
            b'.' => self.push(T::Dot, 1),
            b'=' if r.starts_with("==") => self.push(T::EqualOp, 2),
            b'=' if r.starts_with("=>") => self.push(T::FatArrow, 2),
            b'=' => self.push(T::Equal, 1),
            b'!' if r.starts_with("!=") => self.push(T::NotEqual, 2),
            b'!' => self.push(T::Bang, 1),
            b'<' if r.starts_with("<=") => self.push(T::Le, 2),
            b'<' => self.push(T::Lt, 1),
            b'>' if r.starts_with(">=") => self.push(T::Ge, 2),
            b'>' => self.push(T::Gt, 1),
            b'&' if r.starts_with("&&") => self.push(T::And, 2),
            b'|' if r.starts_with("||") => self.push(T::Or, 2),
            b'+' => self.push(T::Plus, 1),
            b'-' => self.push(T::Minus, 1),
            b'*' => self.push(T::Star, 1),
            b'/' => self.push(T::Slash, 1),
            b'%' => self.push(T::Percent, 1),
            b'?' => self.push(T::Question, 1),
            b':' => self.push(T::Colon, 1),
            b'0'..=b'9' => {
                let mut i = 0;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    if b[i] == b'.' && !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                        break;
                    }
                    i += 1;
                }
                if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                    let mut j = i + 1;
                    if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                        j += 1;
                    }
                    if j < b.len() && b[j].is_ascii_digit() {
                        i = j;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                self.push(T::Number, i);
            }
            _ => {
                let len: usize = r
                    .char_indices()
                    .take_while(|(i, ch)| {
                        // HCL identifiers are Unicode ID_Start/ID_Continue:
                        // any non-ASCII, non-space character after the
                        // first counts (combining marks included).
                        ch.is_alphanumeric()
                            || *ch == '_'
                            || (*i > 0 && (*ch == '-' || (!ch.is_ascii() && !ch.is_whitespace())))
                    })
                    .map(|(_, ch)| ch.len_utf8())
                    .sum();
                if len > 0 {
                    self.push(T::Ident, len);
                } else {
                    let l = r.chars().next().map_or(1, char::len_utf8);
                    self.push(T::Other, l);
                }
            }
        }
    }

    fn line_comment(&mut self) {
        let r = self.rest();
        let len = r.find('\n').map_or(r.len(), |i| i + 1);
        self.push(T::Comment, len);
    }

    fn heredoc_start(&mut self) -> bool {
        let r = self.rest();
        let after = &r[2..];
        let (dash, name_start) = if after.starts_with('-') {
            (true, 3)
        } else {
            (false, 2)
        };
        let name: String = r[name_start..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if name.is_empty() {
            return false;
        }
        let end = name_start + name.len();
        let line_end = if r[end..].starts_with("\r\n") {
            end + 2
        } else if r[end..].starts_with('\n') {
            end + 1
        } else {
            return false;
        };
        let _ = dash;
        self.push(T::OHeredoc, line_end);
        self.modes.push(Mode::Heredoc { delim: name });
        true
    }
}

fn is_newline(t: &Tok) -> bool {
    t.t == T::Newline || (t.t == T::Comment && t.text.ends_with('\n'))
}

#[derive(Default)]
struct Line {
    lead: Vec<Tok>,
    assign: Vec<Tok>,
    comment: Vec<Tok>,
}

fn columns(toks: &[Tok]) -> usize {
    toks.iter()
        .map(|t| t.spaces + t.text.trim_end_matches('\n').chars().count())
        .sum()
}

fn space_after(subject: &Tok, before: Option<&Tok>, after: Option<&Tok>) -> bool {
    let Some(after) = after else {
        return false;
    };
    let (s, a) = (subject.t, after.t);
    if a == T::Newline {
        return false;
    }
    if s == T::Ident && a == T::OParen {
        return false;
    }
    if s == T::Dot || s == T::Ellipsis || a == T::Dot {
        return false;
    }
    if a == T::Comma || a == T::Ellipsis {
        return false;
    }
    if s == T::Comma {
        return true;
    }
    if matches!(s, T::QuotedLit | T::StringLit | T::OQuote | T::OHeredoc)
        || matches!(a, T::QuotedLit | T::StringLit | T::CQuote | T::CHeredoc)
    {
        return false;
    }
    if s == T::Ident && subject.text == "in" && before.is_some_and(|b| b.t == T::Ident) {
        return true;
    }
    if a == T::OBrack && (s == T::Ident || s == T::Number || bracket(s) < 0) {
        return false;
    }
    if s == T::Minus {
        return !matches!(
            before.map(|b| b.t),
            None | Some(
                T::OParen
                    | T::OBrace
                    | T::OBrack
                    | T::Equal
                    | T::Colon
                    | T::Comma
                    | T::Question
                    | T::Plus
                    | T::Star
                    | T::Slash
                    | T::Percent
                    | T::Minus
                    | T::EqualOp
                    | T::NotEqual
                    | T::Gt
                    | T::Ge
                    | T::Lt
                    | T::Le
                    | T::And
                    | T::Or
                    | T::Bang,
            )
        );
    }
    if s == T::OBrace || a == T::CBrace {
        return !(s == T::OBrace && a == T::CBrace);
    }
    if matches!(s, T::Interp | T::Control) && a == T::OBrace {
        return true;
    }
    if s == T::CBrace && a == T::SeqEnd {
        return true;
    }
    if s == T::SeqEnd && matches!(a, T::Interp | T::Control) {
        return false;
    }
    if bracket(s) > 0 {
        return false;
    }
    if bracket(a) < 0 {
        return false;
    }
    true
}

fn net_brackets(toks: &[Tok]) -> i32 {
    let mut n = 0;
    for t in toks {
        n += bracket(t.t);
        if t.t == T::OHeredoc {
            break;
        }
    }
    n
}

/// Format a file's text; errors if it does not parse.
pub fn format_hcl(text: &str, name: &str) -> Result<String, Diag> {
    let src = Arc::new(SourceFile::new(name, name.into(), text));
    crate::syntax::parse_native(&src)?;
    let toks = Lexer {
        s: text,
        pos: 0,
        toks: Vec::new(),
        modes: Vec::new(),
        depth: 0,
    }
    .run();

    // Lines, split after each newline (or comment that ends one).
    let mut lines: Vec<Line> = Vec::new();
    let mut cur = Vec::new();
    for t in toks {
        let nl = is_newline(&t);
        cur.push(t);
        if nl {
            lines.push(Line {
                lead: std::mem::take(&mut cur),
                ..Line::default()
            });
        }
    }
    if !cur.is_empty() {
        lines.push(Line {
            lead: cur,
            ..Line::default()
        });
    }
    for line in &mut lines {
        if line.lead.len() > 1 && line.lead.last().is_some_and(|t| t.t == T::Comment) {
            line.comment = line.lead.split_off(line.lead.len() - 1);
        }
        if let Some(i) = line
            .lead
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, t)| t.t == T::Equal)
            .map(|(i, _)| i)
            && net_brackets(&line.lead[i..]) == 0
        {
            line.assign = line.lead.split_off(i);
        }
    }

    // Indentation.
    let mut indents: Vec<i32> = Vec::new();
    for line in &mut lines {
        let Some(first) = line.lead.first() else {
            continue;
        };
        if first.t == T::Newline {
            line.lead[0].spaces = 0;
            continue;
        }
        let net = net_brackets(&line.lead) + net_brackets(&line.assign);
        if net > 0 {
            line.lead[0].spaces = 2 * indents.len();
            indents.push(net);
        } else {
            let mut closed = -net;
            while closed > 0 {
                let Some(top) = indents.last_mut() else { break };
                if closed > *top {
                    closed -= *top;
                    indents.pop();
                } else if closed < *top {
                    *top -= closed;
                    closed = 0;
                } else {
                    indents.pop();
                    closed = 0;
                }
            }
            line.lead[0].spaces = 2 * indents.len();
        }
    }

    // Spaces between tokens.
    for line in &mut lines {
        let n = line.lead.len();
        for i in 1..n {
            let after = if i + 1 < n {
                line.lead.get(i + 1)
            } else {
                line.assign.first()
            };
            let sp = space_after(
                &line.lead[i - 1].clone(),
                if i >= 2 { line.lead.get(i - 2) } else { None },
                Some(&line.lead[i]),
            );
            let _ = after;
            line.lead[i].spaces = usize::from(sp);
        }
        let m = line.assign.len();
        for i in 0..m {
            if i == 0 {
                line.assign[0].spaces = 1;
                continue;
            }
            let before = if i >= 2 {
                line.assign.get(i - 2)
            } else {
                line.lead.last()
            };
            let sp = space_after(&line.assign[i - 1].clone(), before, Some(&line.assign[i]));
            line.assign[i].spaces = usize::from(sp);
        }
        if let Some(c) = line.comment.first_mut() {
            c.spaces = 1;
        }
    }

    // Align `=` in runs of one-line attributes, then trailing comments.
    let mut start: Option<usize> = None;
    let mut max = 0;
    let n = lines.len();
    for i in 0..=n {
        let has = i < n && !lines[i].assign.is_empty();
        if has {
            start.get_or_insert(i);
            max = max.max(columns(&lines[i].lead));
        } else if let Some(s) = start.take() {
            for line in &mut lines[s..i] {
                let c = columns(&line.lead);
                line.assign[0].spaces = max - c + 1;
            }
            max = 0;
        }
    }
    let mut start: Option<usize> = None;
    let mut max = 0;
    for i in 0..=n {
        let has = i < n && !lines[i].comment.is_empty();
        if has {
            start.get_or_insert(i);
            max = max.max(columns(&lines[i].lead) + columns(&lines[i].assign));
        } else if let Some(s) = start.take() {
            for line in &mut lines[s..i] {
                let c = columns(&line.lead) + columns(&line.assign);
                line.comment[0].spaces = max - c + 1;
            }
            max = 0;
        }
    }

    let mut out = String::with_capacity(text.len());
    for line in &lines {
        for t in line.lead.iter().chain(&line.assign).chain(&line.comment) {
            if t.t != T::Newline {
                out.extend(std::iter::repeat_n(' ', t.spaces));
            }
            out.push_str(&t.text);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_hclwrite() {
        let input = "variable \"x\" {\ntype=string\n  default   =   \"a\"   # c\n description = \"long\" // d\n}\nsource \"qemu\" \"a\"{\nqemuargs=[ [\"-m\",\"2048\"] , [ \"-smp\", \"2\" ] ]\n  boot = [\"<esc>${ var.x }\"]\n}\n";
        let want = "variable \"x\" {\n  type        = string\n  default     = \"a\"    # c\n  description = \"long\" // d\n}\nsource \"qemu\" \"a\" {\n  qemuargs = [[\"-m\", \"2048\"], [\"-smp\", \"2\"]]\n  boot     = [\"<esc>${var.x}\"]\n}\n";
        assert_eq!(format_hcl(input, "t").unwrap(), want);
    }

    #[test]
    fn keeps_heredocs_and_is_idempotent() {
        let input =
            "locals {\n  a = <<EOF\n  keep   this\n${var.x}\nEOF\n  b = -1\n  c = 1 - 2\n}\n";
        let once = format_hcl(input, "t").unwrap();
        assert_eq!(once, input);
        assert_eq!(format_hcl(&once, "t").unwrap(), once);
    }

    #[test]
    fn identifiers_may_hold_combining_marks() {
        // Found by the fmt fuzz target.
        let input = "l\u{658}s {\n}\n";
        assert_eq!(format_hcl(input, "t").unwrap(), input);
    }

    #[test]
    fn rejects_invalid_input() {
        assert!(format_hcl("a = [", "t").is_err());
    }
}
