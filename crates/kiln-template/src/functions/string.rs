//! String functions: chomp, endswith, indent, join, lower, regex,
//! regex_replace, regexall, replace, split, startswith, strcontains,
//! strrev, substr, title, trim, trimprefix, trimspace, trimsuffix, upper.
//! (`format` and `formatlist` are in `format.rs`.)
//!
//! Regular expressions use Go's RE2 syntax; the `regex` crate implements
//! the same language, and patterns are adjusted where Go differs (`\d`,
//! `\w`, `\s` and `\b` are ASCII-only in Go, `\Q...\E` quotes). Compiled
//! patterns are cached.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use unicode_segmentation::UnicodeSegmentation;

use super::{Fail, Func, FuncCtx, P, int_arg, p, str_arg, take_seq, take_str};
use crate::value::Value;

pub(crate) const FUNCS: &[Func] = &[
    Func {
        name: "chomp",
        params: &[p("str", P::String)],
        var_param: None,
        imp: chomp,
    },
    Func {
        name: "endswith",
        params: &[p("str", P::String), p("suffix", P::String)],
        var_param: None,
        imp: endswith,
    },
    Func {
        name: "indent",
        params: &[p("spaces", P::Number), p("str", P::String)],
        var_param: None,
        imp: indent,
    },
    Func {
        name: "join",
        params: &[p("separator", P::String)],
        var_param: Some(p("lists", P::List(&P::String))),
        imp: join,
    },
    Func {
        name: "lower",
        params: &[p("str", P::String)],
        var_param: None,
        imp: lower,
    },
    Func {
        name: "regex",
        params: &[p("pattern", P::String), p("string", P::String)],
        var_param: None,
        imp: regex,
    },
    Func {
        name: "regex_replace",
        params: &[
            p("str", P::String),
            p("pattern", P::String),
            p("replace", P::String),
        ],
        var_param: None,
        imp: regex_replace,
    },
    Func {
        name: "regexall",
        params: &[p("pattern", P::String), p("string", P::String)],
        var_param: None,
        imp: regexall,
    },
    Func {
        name: "replace",
        params: &[
            p("str", P::String),
            p("substr", P::String),
            p("replace", P::String),
        ],
        var_param: None,
        imp: replace,
    },
    Func {
        name: "split",
        params: &[p("separator", P::String), p("str", P::String)],
        var_param: None,
        imp: split,
    },
    Func {
        name: "startswith",
        params: &[p("str", P::String), p("prefix", P::String)],
        var_param: None,
        imp: startswith,
    },
    Func {
        name: "strcontains",
        params: &[p("str", P::String), p("substr", P::String)],
        var_param: None,
        imp: strcontains,
    },
    Func {
        name: "strrev",
        params: &[p("str", P::String)],
        var_param: None,
        imp: strrev,
    },
    Func {
        name: "substr",
        params: &[
            p("str", P::String),
            p("offset", P::Number),
            p("length", P::Number),
        ],
        var_param: None,
        imp: substr,
    },
    Func {
        name: "title",
        params: &[p("str", P::String)],
        var_param: None,
        imp: title,
    },
    Func {
        name: "trim",
        params: &[p("str", P::String), p("cutset", P::String)],
        var_param: None,
        imp: trim,
    },
    Func {
        name: "trimprefix",
        params: &[p("str", P::String), p("prefix", P::String)],
        var_param: None,
        imp: trimprefix,
    },
    Func {
        name: "trimspace",
        params: &[p("str", P::String)],
        var_param: None,
        imp: trimspace,
    },
    Func {
        name: "trimsuffix",
        params: &[p("str", P::String), p("suffix", P::String)],
        var_param: None,
        imp: trimsuffix,
    },
    Func {
        name: "upper",
        params: &[p("str", P::String)],
        var_param: None,
        imp: upper,
    },
];

fn chomp(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::string(
        str_arg(&args, 0)?.trim_end_matches(['\r', '\n']),
    ))
}

fn endswith(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::Bool(
        str_arg(&args, 0)?.ends_with(str_arg(&args, 1)?),
    ))
}

fn startswith(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::Bool(
        str_arg(&args, 0)?.starts_with(str_arg(&args, 1)?),
    ))
}

fn strcontains(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::Bool(str_arg(&args, 0)?.contains(str_arg(&args, 1)?)))
}

fn indent(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let spaces = int_arg(&args, 0)?;
    if spaces < 0 {
        return Err(Fail::arg(0, "the number of spaces must not be negative"));
    }
    let pad = format!("\n{}", " ".repeat(spaces as usize));
    Ok(Value::String(str_arg(&args, 1)?.replace('\n', &pad)))
}

fn join(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let sep = take_str(&mut args, 0)?;
    let lists = args.len() - 1;
    if lists == 0 {
        return Err(Fail::call("at least one list is required"));
    }
    let mut out = String::new();
    let mut first = true;
    for ai in 1..args.len() {
        let items = take_seq(&mut args, ai)?;
        for (ei, item) in items.iter().enumerate() {
            let Value::String(s) = item else {
                return Err(Fail::arg(
                    ai,
                    if lists > 1 {
                        format!("element {ei} of list {ai} is null; cannot concatenate null values")
                    } else {
                        format!("element {ei} is null; cannot concatenate null values")
                    },
                ));
            };
            if !first {
                out.push_str(&sep);
            }
            first = false;
            out.push_str(s);
        }
    }
    Ok(Value::String(out))
}

/// Go's `strings.ToLower`: each rune mapped on its own (no final sigma).
pub(crate) fn go_lower(s: &str) -> String {
    s.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// Go's `strings.ToUpper`: each rune mapped on its own, runes whose
/// uppercase is several runes (`ß`) kept.
pub(crate) fn go_upper(s: &str) -> String {
    s.chars().map(upper_rune).collect()
}

fn upper_rune(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

fn lower(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(go_lower(str_arg(&args, 0)?)))
}

fn upper(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(go_upper(str_arg(&args, 0)?)))
}

/// Go's `strings.Title`: the first letter of each word in title case; a
/// word starts after a space, an ASCII punctuation mark or the start.
fn title(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let s = str_arg(&args, 0)?;
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars() {
        if is_word_separator(prev) {
            out.push(title_rune(c));
        } else {
            out.push(c);
        }
        prev = c;
    }
    Ok(Value::String(out))
}

fn title_rune(c: char) -> char {
    // Unicode title case differs from upper case only for the digraphs.
    match c {
        'Ǆ' | 'ǅ' | 'ǆ' => 'ǅ',
        'Ǉ' | 'ǈ' | 'ǉ' => 'ǈ',
        'Ǌ' | 'ǋ' | 'ǌ' => 'ǋ',
        'Ǳ' | 'ǲ' | 'ǳ' => 'ǲ',
        c => upper_rune(c),
    }
}

fn is_word_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphanumeric() {
        return false;
    }
    c.is_whitespace()
}

fn trim(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let cutset = str_arg(&args, 1)?;
    Ok(Value::string(
        str_arg(&args, 0)?.trim_matches(|c| cutset.contains(c)),
    ))
}

fn trimprefix(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let s = str_arg(&args, 0)?;
    Ok(Value::string(
        s.strip_prefix(str_arg(&args, 1)?).unwrap_or(s),
    ))
}

fn trimsuffix(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let s = str_arg(&args, 0)?;
    Ok(Value::string(
        s.strip_suffix(str_arg(&args, 1)?).unwrap_or(s),
    ))
}

fn trimspace(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::string(str_arg(&args, 0)?.trim()))
}

fn replace(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let (s, from, to) = (str_arg(&args, 0)?, str_arg(&args, 1)?, str_arg(&args, 2)?);
    if from.is_empty() {
        // Go inserts the replacement before every rune and at the end.
        let mut out = String::with_capacity(s.len() + to.len() * (s.len() + 1));
        for c in s.chars() {
            out.push_str(to);
            out.push(c);
        }
        out.push_str(to);
        return Ok(Value::String(out));
    }
    Ok(Value::String(s.replace(from, to)))
}

/// Go's `strings.Split`.
pub(crate) fn go_split(s: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        return s.chars().map(String::from).collect();
    }
    s.split(sep).map(String::from).collect()
}

fn split(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let (sep, s) = (str_arg(&args, 0)?, str_arg(&args, 1)?);
    Ok(super::string_list(go_split(s, sep)))
}

fn strrev(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(
        str_arg(&args, 0)?.graphemes(true).rev().collect(),
    ))
}

/// cty's `substr`, counting grapheme clusters, quirks included: a
/// negative offset counts from the end, a negative length takes the rest.
fn substr(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let s = str_arg(&args, 0)?;
    let mut offset = int_arg(&args, 1)?;
    let length = int_arg(&args, 2)?;
    let clusters: Vec<&str> = s.graphemes(true).collect();
    if offset < 0 {
        offset += clusters.len() as i64;
    } else if length == 0 {
        return Ok(Value::string(""));
    }
    let start = if offset > 0 {
        if offset as usize > clusters.len() {
            return Ok(Value::string(""));
        }
        offset as usize
    } else {
        0
    };
    let rest = &clusters[start..];
    let taken = if length <= 0 || length as usize >= rest.len() {
        rest.len()
    } else {
        length as usize
    };
    Ok(Value::String(rest[..taken].concat()))
}

// ---------------------------------------------------------------------------
// Regular expressions
// ---------------------------------------------------------------------------

static REGEX_CACHE: Mutex<Option<HashMap<String, Arc<regex::Regex>>>> = Mutex::new(None);
const REGEX_CACHE_MAX: usize = 512;

/// A compiled Go-syntax pattern, from the cache when it was seen before.
pub(crate) fn compile_go_regex(pattern: &str) -> Result<Arc<regex::Regex>, String> {
    if let Ok(guard) = REGEX_CACHE.lock()
        && let Some(re) = guard.as_ref().and_then(|m| m.get(pattern))
    {
        return Ok(Arc::clone(re));
    }
    let translated = translate_go_regex(pattern)?;
    let re = Arc::new(
        regex::RegexBuilder::new(&translated)
            .octal(true)
            .build()
            .map_err(|e| regex_error_text(&e))?,
    );
    if let Ok(mut guard) = REGEX_CACHE.lock() {
        let map = guard.get_or_insert_with(HashMap::new);
        if map.len() >= REGEX_CACHE_MAX {
            map.clear();
        }
        map.insert(pattern.to_string(), Arc::clone(&re));
    }
    Ok(re)
}

fn regex_error_text(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => {
            // The crate's message spans several lines with a caret; keep
            // its last line, which says what is wrong.
            let last = text
                .lines()
                .rev()
                .find(|l| l.trim_start().starts_with("error:"))
                .map(|l| {
                    l.trim_start()
                        .trim_start_matches("error:")
                        .trim()
                        .to_string()
                });
            last.unwrap_or_else(|| text.clone())
        }
        other => other.to_string(),
    }
}

/// Rewrites the parts of Go's RE2 syntax that the `regex` crate reads
/// differently.
fn translate_go_regex(pattern: &str) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut class_depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    return Err("trailing backslash at end of expression".into());
                };
                let inside = class_depth > 0;
                match (e, inside) {
                    ('d', false) => out.push_str("[0-9]"),
                    ('D', false) => out.push_str("[^0-9]"),
                    ('w', false) => out.push_str("[0-9A-Za-z_]"),
                    ('W', false) => out.push_str("[^0-9A-Za-z_]"),
                    ('s', false) => out.push_str("[\\t\\n\\f\\r ]"),
                    ('S', false) => out.push_str("[^\\t\\n\\f\\r ]"),
                    ('b', false) => out.push_str("(?-u:\\b)"),
                    ('B', false) => out.push_str("(?-u:\\B)"),
                    ('d', true) => out.push_str("0-9"),
                    ('D', true) => out.push_str("[^0-9]"),
                    ('w', true) => out.push_str("0-9A-Za-z_"),
                    ('W', true) => out.push_str("[^0-9A-Za-z_]"),
                    ('s', true) => out.push_str("\\t\\n\\f\\r "),
                    ('S', true) => out.push_str("[^\\t\\n\\f\\r ]"),
                    ('Q', _) => {
                        // Literal text up to \E (or the end).
                        let mut lit = String::new();
                        loop {
                            match chars.next() {
                                None => break,
                                Some('\\') if chars.peek() == Some(&'E') => {
                                    chars.next();
                                    break;
                                }
                                Some(x) => lit.push(x),
                            }
                        }
                        if inside {
                            for x in lit.chars() {
                                if x.is_ascii_punctuation() {
                                    out.push('\\');
                                }
                                out.push(x);
                            }
                        } else {
                            out.push_str(&regex::escape(&lit));
                        }
                    }
                    (e, _) => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' => {
                if class_depth == 0 {
                    class_depth = 1;
                    out.push('[');
                    if chars.peek() == Some(&'^') {
                        chars.next();
                        out.push('^');
                    }
                    // A `]` right after the opening bracket is a literal.
                    if chars.peek() == Some(&']') {
                        chars.next();
                        out.push_str("\\]");
                    }
                } else if chars.peek() == Some(&':') {
                    // [:alpha:] inside a class.
                    out.push('[');
                    for x in chars.by_ref() {
                        out.push(x);
                        if x == ']' {
                            break;
                        }
                    }
                } else {
                    // Go has no nested classes: a literal `[`.
                    out.push_str("\\[");
                }
            }
            ']' if class_depth > 0 => {
                class_depth = 0;
                out.push(']');
            }
            '&' | '~' | '-' if class_depth > 0 => {
                // The crate reads `&&`, `~~` and `--` as set operations.
                if c == '-' {
                    out.push('-');
                } else {
                    out.push('\\');
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The shape of `regex()`'s result for a pattern.
enum Captures {
    None,
    Unnamed(usize),
    Named(Vec<String>),
}

fn capture_shape(re: &regex::Regex) -> Result<Captures, String> {
    let mut unnamed = 0;
    let mut named = Vec::new();
    for name in re.capture_names().skip(1) {
        match name {
            Some(n) => named.push(n.to_string()),
            None => unnamed += 1,
        }
    }
    match (unnamed, named.is_empty()) {
        (0, true) => Ok(Captures::None),
        (u, true) => Ok(Captures::Unnamed(u)),
        (0, false) => Ok(Captures::Named(named)),
        _ => Err("invalid regexp pattern: cannot mix both named and unnamed capture groups".into()),
    }
}

fn capture_value(caps: &regex::Captures<'_>, shape: &Captures) -> Value {
    let text = |m: Option<regex::Match<'_>>| m.map_or(Value::Null, |m| Value::string(m.as_str()));
    match shape {
        Captures::None => text(caps.get(0)),
        Captures::Unnamed(n) => Value::Tuple((1..=*n).map(|i| text(caps.get(i))).collect()),
        Captures::Named(names) => Value::Object(
            names
                .iter()
                .map(|name| (name.clone(), text(caps.name(name))))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

fn pattern_arg(args: &[Value], i: usize) -> Result<(Arc<regex::Regex>, Captures), Fail> {
    let re = compile_go_regex(str_arg(args, i)?)
        .map_err(|e| Fail::arg(i, format!("invalid regexp pattern: {e}")))?;
    let shape = capture_shape(&re).map_err(|e| Fail::arg(i, e))?;
    Ok((re, shape))
}

fn regex(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let (re, shape) = pattern_arg(&args, 0)?;
    let s = str_arg(&args, 1)?;
    let caps = re
        .captures(s)
        .ok_or_else(|| Fail::call("pattern did not match any part of the given string"))?;
    Ok(capture_value(&caps, &shape))
}

fn regexall(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let (re, shape) = pattern_arg(&args, 0)?;
    let s = str_arg(&args, 1)?;
    Ok(Value::List(
        re.captures_iter(s)
            .map(|c| capture_value(&c, &shape))
            .collect(),
    ))
}

fn regex_replace(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let s = str_arg(&args, 0)?;
    let re = compile_go_regex(str_arg(&args, 1)?)
        .map_err(|e| Fail::arg(1, format!("error parsing regexp: {e}")))?;
    let replacement = str_arg(&args, 2)?;
    Ok(Value::String(re.replace_all(s, replacement).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn case_functions() {
        assert_eq!(call_ok("upper", vec![s("hello")]), s("HELLO"));
        assert_eq!(call_ok("upper", vec![s("алло!")]), s("АЛЛО!"));
        assert_eq!(call_ok("upper", vec![s("straße")]), s("STRAßE"));
        assert_eq!(call_ok("lower", vec![s("HELLO")]), s("hello"));
        assert_eq!(call_ok("lower", vec![s("АЛЛО!")]), s("алло!"));
        assert_eq!(call_ok("lower", vec![s("ΟΔΟΣ")]), s("οδοσ"));
        assert_eq!(call_ok("title", vec![s("hello world")]), s("Hello World"));
        assert_eq!(
            call_ok("title", vec![s("hello-world foo_bar x.y")]),
            s("Hello-World Foo_bar X.Y")
        );
        assert_eq!(call_ok("title", vec![s("ǆemal")]), s("ǅemal"));
    }

    #[test]
    fn trimming() {
        assert_eq!(call_ok("chomp", vec![s("hello\n")]), s("hello"));
        assert_eq!(call_ok("chomp", vec![s("hello\r\n")]), s("hello"));
        assert_eq!(call_ok("chomp", vec![s("hello\n\n\r\n")]), s("hello"));
        assert_eq!(
            call_ok("chomp", vec![s("hello\n world")]),
            s("hello\n world")
        );
        assert_eq!(call_ok("trim", vec![s("?!hello?!"), s("!?")]), s("hello"));
        assert_eq!(call_ok("trim", vec![s("foobar"), s("far")]), s("oob"));
        assert_eq!(
            call_ok("trim", vec![s("   hello! world.!  "), s("! ")]),
            s("hello! world.")
        );
        assert_eq!(
            call_ok("trimprefix", vec![s("helloworld"), s("hello")]),
            s("world")
        );
        assert_eq!(
            call_ok("trimprefix", vec![s("helloworld"), s("cat")]),
            s("helloworld")
        );
        assert_eq!(
            call_ok("trimsuffix", vec![s("helloworld"), s("world")]),
            s("hello")
        );
        assert_eq!(call_ok("trimspace", vec![s("  hello\n\n")]), s("hello"));
        assert_eq!(
            call_ok("trimspace", vec![s("\u{a0}\u{85}x\u{3000}")]),
            s("x")
        );
    }

    #[test]
    fn predicates() {
        assert_eq!(
            call_ok("startswith", vec![s("hello world"), s("hello")]),
            b(true)
        );
        assert_eq!(
            call_ok("startswith", vec![s("hello world"), s("world")]),
            b(false)
        );
        assert_eq!(
            call_ok("endswith", vec![s("hello world"), s("world")]),
            b(true)
        );
        assert_eq!(call_ok("endswith", vec![s("hello world"), s("")]), b(true));
        assert_eq!(
            call_ok("strcontains", vec![s("hello world"), s("wor")]),
            b(true)
        );
        assert_eq!(
            call_ok("strcontains", vec![s("hello world"), s("wod")]),
            b(false)
        );
    }

    #[test]
    fn indent_and_join_and_split() {
        assert_eq!(
            call_ok("indent", vec![n(2.0), s("[\n  foo,\n  bar,\n]\n")]),
            s("[\n    foo,\n    bar,\n  ]\n  ")
        );
        assert!(call_err("indent", vec![n(-1.0), s("a")]).contains("negative"));
        assert_eq!(
            call_ok("join", vec![s(", "), strs(&["foo", "bar", "baz"])]),
            s("foo, bar, baz")
        );
        assert_eq!(call_ok("join", vec![s(", "), strs(&["foo"])]), s("foo"));
        assert_eq!(
            call_ok(
                "join",
                vec![s("-"), strs(&["a"]), strs(&[]), strs(&["b", "c"])]
            ),
            s("a-b-c")
        );
        assert_eq!(
            call_ok("join", vec![s(","), tup(vec![n(1.0), b(true)])]),
            s("1,true")
        );
        assert_eq!(
            call_err("join", vec![s(",")]),
            "`join`: at least one list is required"
        );
        assert_eq!(
            call_err("join", vec![s(","), tup(vec![s("a"), Value::Null])]),
            "`join`: argument 2 (`lists`): element 1 is null; cannot concatenate null values"
        );
        assert_eq!(
            call_ok("split", vec![s(","), s("foo,bar,baz")]),
            str_list(&["foo", "bar", "baz"])
        );
        assert_eq!(call_ok("split", vec![s(","), s("foo")]), str_list(&["foo"]));
        assert_eq!(call_ok("split", vec![s(","), s("")]), str_list(&[""]));
        assert_eq!(
            call_ok("split", vec![s(","), s(",a,")]),
            str_list(&["", "a", ""])
        );
        assert_eq!(
            call_ok("split", vec![s(""), s("abc")]),
            str_list(&["a", "b", "c"])
        );
    }

    #[test]
    fn replace_is_literal() {
        assert_eq!(
            call_ok("replace", vec![s("1 + 2 + 3"), s("+"), s("-")]),
            s("1 - 2 - 3")
        );
        assert_eq!(
            call_ok(
                "replace",
                vec![s("hello world"), s("/w.*d/"), s("everybody")]
            ),
            s("hello world")
        );
        assert_eq!(call_ok("replace", vec![s("ab"), s(""), s("-")]), s("-a-b-"));
    }

    #[test]
    fn strrev_and_substr_count_grapheme_clusters() {
        assert_eq!(call_ok("strrev", vec![s("hello")]), s("olleh"));
        assert_eq!(call_ok("strrev", vec![s("a☃")]), s("☃a"));
        assert_eq!(call_ok("strrev", vec![s("e\u{301}x")]), s("xe\u{301}"));
        let sub = |v: &str, o: f64, l: f64| call_ok("substr", vec![s(v), n(o), n(l)]);
        assert_eq!(sub("hello world", 1.0, 4.0), s("ello"));
        assert_eq!(sub("🤔🤷", 0.0, 1.0), s("🤔"));
        assert_eq!(sub("hello world", -5.0, -1.0), s("world"));
        assert_eq!(sub("hello world", 6.0, 10.0), s("world"));
        assert_eq!(sub("hello world", 6.0, 0.0), s(""));
        assert_eq!(sub("hello world", 11.0, 1.0), s(""));
        assert_eq!(sub("hello world", 12.0, 1.0), s(""));
        assert_eq!(sub("hello world", -1.0, 0.0), s("d"));
        assert_eq!(sub("hello world", -20.0, 3.0), s("hel"));
        assert_eq!(sub("", 0.0, 3.0), s(""));
        assert!(call_err("substr", vec![s("a"), n(0.5), n(1.0)]).contains("whole number"));
    }

    #[test]
    fn regex_results_follow_capture_groups() {
        assert_eq!(
            call_ok(
                "regex",
                vec![s("[a-z]+"), s("53453453.345345aaabbbccc23454")]
            ),
            s("aaabbbccc")
        );
        assert_eq!(
            call_ok(
                "regex",
                vec![s(r"(\d\d\d\d)-(\d\d)-(\d\d)"), s("2019-02-01")]
            ),
            strs(&["2019", "02", "01"])
        );
        assert_eq!(
            call_ok(
                "regex",
                vec![
                    s(r"^(?:(?P<scheme>[^:/?#]+):)?(?://(?P<authority>[^/?#]*))?"),
                    s("https://terraform.io/docs/")
                ]
            ),
            obj(&[("authority", s("terraform.io")), ("scheme", s("https"))])
        );
        assert_eq!(
            call_ok("regex", vec![s("(a)|(b)"), s("b")]),
            tup(vec![Value::Null, s("b")])
        );
        assert_eq!(
            call_err("regex", vec![s("[a-z]+"), s("123")]),
            "`regex`: pattern did not match any part of the given string"
        );
        assert!(call_err("regex", vec![s("(?P<x>a)(b)"), s("ab")]).contains("cannot mix"));
        assert!(
            call_err("regex", vec![s("(a"), s("a")])
                .starts_with("`regex`: argument 1 (`pattern`): invalid regexp pattern")
        );
        assert_eq!(
            call_ok("regexall", vec![s("[a-z]+"), s("1234abcd5678efgh9")]),
            list(vec![s("abcd"), s("efgh")])
        );
        assert_eq!(
            call_ok("regexall", vec![s("[a-z]+"), s("123")]),
            list(vec![])
        );
        assert_eq!(
            call_ok("regexall", vec![s(r"(\w)=(\d)"), s("a=1 b=2")]),
            list(vec![strs(&["a", "1"]), strs(&["b", "2"])])
        );
    }

    #[test]
    fn go_regex_classes_are_ascii() {
        assert_eq!(
            call_ok("regexall", vec![s(r"\d"), s("1٣2")]),
            list(vec![s("1"), s("2")])
        );
        assert_eq!(
            call_ok("regexall", vec![s(r"[\d]+"), s("1٣2")]),
            list(vec![s("1"), s("2")])
        );
        assert_eq!(
            call_ok("regexall", vec![s(r"\w+"), s("héllo")]),
            list(vec![s("h"), s("llo")])
        );
        assert_eq!(call_ok("regex", vec![s(r"\Qa.b\E"), s("xa.by")]), s("a.b"));
        assert_eq!(
            call_ok("regex", vec![s(r"[a-c&&]+"), s("x&&ab")]),
            s("&&ab")
        );
        assert_eq!(call_ok("regex", vec![s(r"[]a]+"), s("x]a]")]), s("]a]"));
        assert_eq!(
            call_ok("regex", vec![s(r"[[:alpha:]]+"), s("12ab3")]),
            s("ab")
        );
        assert_eq!(call_ok("regex", vec![s(r"[a[]+"), s("x[a")]), s("[a"));
    }

    #[test]
    fn regex_replace_expands_go_templates() {
        assert_eq!(
            call_ok(
                "regex_replace",
                vec![s("hello world"), s("w.*d"), s("everybody")]
            ),
            s("hello everybody")
        );
        assert_eq!(
            call_ok(
                "regex_replace",
                vec![s("2019-02-01"), s(r"(\d+)-(\d+)-(\d+)"), s("$3/$2/$1")]
            ),
            s("01/02/2019")
        );
        assert_eq!(
            call_ok("regex_replace", vec![s("ab"), s("(?P<x>a)"), s("${x}$$")]),
            s("a$b")
        );
        assert_eq!(
            call_ok("regex_replace", vec![s("ab"), s("(a)"), s("$1x")]),
            s("b")
        );
        assert!(
            call_err("regex_replace", vec![s("a"), s("("), s("")]).contains("error parsing regexp")
        );
    }

    #[test]
    fn regex_cache_returns_the_same_program() {
        let a = compile_go_regex("cache-me-[0-9]+").unwrap();
        let b = compile_go_regex("cache-me-[0-9]+").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
