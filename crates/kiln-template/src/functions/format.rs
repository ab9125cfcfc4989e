//! `format` and `formatlist`: cty's printf, with Go's verbs and flags.
//!
//! A verb is `%` flags (`0 # - + space`), width, `.precision`, an optional
//! `[n]` argument index, then a letter. `%v` prints strings as they are,
//! numbers with `%g` and anything else as JSON; `%#v` is always JSON;
//! `%t` a bool; `%b %d %o %x %X` integers; `%e %E %f %g %G` numbers;
//! `%s` a string (precision truncates, in grapheme clusters); `%q` a JSON
//! string; `%%` a percent sign.

use std::fmt::Write as _;

use unicode_segmentation::UnicodeSegmentation;

use super::{Fail, Func, FuncCtx, P, p, p_null, str_arg};
use crate::value::{Type, Value, convert, go_float_text, go_quote};

pub(crate) const FUNCS: &[Func] = &[
    Func {
        name: "format",
        params: &[p("format", P::String)],
        var_param: Some(p_null("args", P::Any)),
        imp: format,
    },
    Func {
        name: "formatlist",
        params: &[p("format", P::String)],
        var_param: Some(p_null("args", P::Any)),
        imp: formatlist,
    },
];

fn format(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let fmt = str_arg(&args, 0)?;
    format_values(fmt, &args[1..]).map(Value::String)
}

fn formatlist(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let fmt = str_arg(&args, 0)?;
    let rest = &args[1..];
    if rest.is_empty() {
        return Ok(Value::List(vec![Value::String(format_values(fmt, rest)?)]));
    }
    let mut iter_len: Option<(usize, usize)> = None;
    for (i, arg) in rest.iter().enumerate() {
        if let Some(items) = arg.as_seq() {
            match iter_len {
                None => iter_len = Some((items.len(), i)),
                Some((len, chooser)) if len != items.len() => {
                    return Err(Fail::arg(
                        i + 1,
                        format!(
                            "argument {} has length {}, which is inconsistent with argument {} of length {}",
                            i + 1,
                            items.len(),
                            chooser + 1,
                            len
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    let n = iter_len.map_or(1, |(len, _)| len);
    let mut out = Vec::with_capacity(n);
    let mut call_args: Vec<Value> = Vec::with_capacity(rest.len());
    for idx in 0..n {
        call_args.clear();
        for arg in rest {
            call_args.push(match arg.as_seq() {
                Some(items) => items[idx].clone(),
                None => arg.clone(),
            });
        }
        let s = format_values(fmt, &call_args)
            .map_err(|f| Fail::call(format!("error on format iteration {idx}: {}", f.msg)))?;
        out.push(Value::String(s));
    }
    Ok(Value::List(out))
}

#[derive(Default, Debug)]
struct Verb {
    zero: bool,
    sharp: bool,
    plus: bool,
    minus: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
    arg_num: usize,
    mode: char,
    offset: usize,
    raw: String,
}

/// Formats `args` with `fmt` (argument errors count `args` from 1, as the
/// function's second argument).
pub(crate) fn format_values(fmt: &str, args: &[Value]) -> Result<String, Fail> {
    let bytes = fmt.as_bytes();
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut next_arg = 1usize;
    let mut highest = 0usize;
    let mut i = 0usize;
    let mut literal_start = 0usize;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        out.push_str(&fmt[literal_start..i]);
        if bytes.get(i + 1) == Some(&b'%') {
            out.push('%');
            i += 2;
            literal_start = i;
            continue;
        }
        let start = i;
        let mut verb = Verb {
            arg_num: next_arg,
            offset: start,
            ..Verb::default()
        };
        i += 1;
        // flags
        while let Some(&c) = bytes.get(i) {
            match c {
                b'0' => verb.zero = true,
                b'#' => verb.sharp = true,
                b'-' => verb.minus = true,
                b'+' => verb.plus = true,
                b' ' => verb.space = true,
                _ => break,
            }
            i += 1;
        }
        // width: [1-9][0-9]*
        if matches!(bytes.get(i), Some(b'1'..=b'9')) {
            let mut w = 0usize;
            while let Some(d @ b'0'..=b'9') = bytes.get(i) {
                w = w.saturating_mul(10).saturating_add((d - b'0') as usize);
                i += 1;
            }
            verb.width = Some(w);
        }
        // precision: '.' digit*
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            let mut pr = 0usize;
            while let Some(d @ b'0'..=b'9') = bytes.get(i) {
                pr = pr.saturating_mul(10).saturating_add((d - b'0') as usize);
                i += 1;
            }
            verb.prec = Some(pr);
        }
        // argument index: '[' [1-9][0-9]* ']'
        if bytes.get(i) == Some(&b'[') {
            i += 1;
            if !matches!(bytes.get(i), Some(b'1'..=b'9')) {
                return Err(bad_char(fmt, i));
            }
            let mut idx = 0usize;
            while let Some(d @ b'0'..=b'9') = bytes.get(i) {
                idx = idx.saturating_mul(10).saturating_add((d - b'0') as usize);
                i += 1;
            }
            if bytes.get(i) != Some(&b']') {
                return Err(bad_char(fmt, i));
            }
            i += 1;
            verb.arg_num = idx;
        }
        match bytes.get(i) {
            Some(c) if c.is_ascii_alphabetic() => {
                verb.mode = *c as char;
                i += 1;
                verb.raw = fmt[start..i].to_string();
                highest = highest.max(verb.arg_num);
                append_verb(&verb, &mut out, args)?;
                next_arg = verb.arg_num + 1;
                literal_start = i;
            }
            Some(_) => return Err(bad_char(fmt, i)),
            None => {
                return Err(Fail::call(format!(
                    "invalid format string starting at offset {}",
                    bytes.len()
                )));
            }
        }
    }
    out.push_str(&fmt[literal_start..]);
    if highest < args.len() {
        let first_bad = highest + 1;
        return Err(Fail::arg(
            first_bad,
            if highest == 0 {
                "too many arguments; no verbs in format string".to_string()
            } else {
                format!("too many arguments; only {highest} used by format string")
            },
        ));
    }
    Ok(out)
}

fn bad_char(fmt: &str, at: usize) -> Fail {
    match fmt.get(at..).and_then(|rest| rest.chars().next()) {
        Some(c) => Fail::call(format!(
            "unrecognized format character {} at offset {at}",
            go_quote_rune(c)
        )),
        None => Fail::call(format!("invalid format string starting at offset {at}")),
    }
}

/// Go's `%q` of a rune: `'x'`.
fn go_quote_rune(c: char) -> String {
    let q = go_quote(&c.to_string());
    let inner = &q[1..q.len() - 1];
    let inner = if inner == "\\\"" {
        "\""
    } else if c == '\'' {
        "\\'"
    } else {
        inner
    };
    format!("'{inner}'")
}

fn append_verb(verb: &Verb, out: &mut String, args: &[Value]) -> Result<(), Fail> {
    let raw = || go_quote(&verb.raw);
    let Some(arg) = verb.arg_num.checked_sub(1).and_then(|i| args.get(i)) else {
        return Err(Fail::call(format!(
            "not enough arguments for {} at {}: need index {} but have {} total",
            raw(),
            verb.offset,
            verb.arg_num,
            args.len()
        )));
    };
    if verb.mode != 'v' && arg.is_null() {
        return Err(Fail::call(format!(
            "unsupported value for {} at {}: null value cannot be formatted",
            raw(),
            verb.offset
        )));
    }
    let unsupported = |why: String| {
        Fail::call(format!(
            "unsupported value for {} at {}: {why}",
            raw(),
            verb.offset
        ))
    };
    match verb.mode {
        'v' => {
            let text = match arg {
                Value::String(s) if !verb.sharp => s.clone(),
                Value::Number(n) if !verb.sharp => go_float_text(n.0, 'g', None),
                other => other.to_json_string(),
            };
            out.push_str(&pad_width(verb, text));
        }
        't' => {
            let v = convert(arg, &Type::Bool).map_err(|e| unsupported(e.message))?;
            out.push_str(if v == Value::Bool(true) {
                "true"
            } else {
                "false"
            });
        }
        'b' | 'd' | 'o' | 'x' | 'X' | 'e' | 'E' | 'f' | 'g' | 'G' => {
            let Value::Number(n) =
                convert(arg, &Type::Number).map_err(|e| unsupported(e.message))?
            else {
                return Err(unsupported("a number is required".into()));
            };
            if matches!(verb.mode, 'e' | 'E' | 'f' | 'g' | 'G') {
                format_float(verb, n.0, out);
            } else {
                if !n.is_integer() {
                    return Err(unsupported("an integer is required".into()));
                }
                format_integer(verb, n.0, out);
            }
        }
        's' | 'q' => {
            let Value::String(mut s) =
                convert(arg, &Type::String).map_err(|e| unsupported(e.message))?
            else {
                return Err(unsupported("a string is required".into()));
            };
            if let Some(prec) = verb.prec
                && prec > 0
            {
                let cut: usize = s.graphemes(true).take(prec).map(str::len).sum();
                s.truncate(cut);
            }
            if verb.mode == 'q' {
                s = Value::String(s).to_json_string();
            }
            out.push_str(&pad_width(verb, s));
        }
        other => {
            return Err(Fail::call(format!(
                "unsupported format verb {} in {} at offset {}",
                go_quote_rune(other),
                raw(),
                verb.offset
            )));
        }
    }
    Ok(())
}

/// cty's padding for `%v`, `%s` and `%q`: width in grapheme clusters.
fn pad_width(verb: &Verb, text: String) -> String {
    let Some(width) = verb.width else { return text };
    let len = text.graphemes(true).count();
    if len >= width {
        return text;
    }
    let pads = if verb.zero { "0" } else { " " }.repeat(width - len);
    if verb.minus {
        text + &pads
    } else {
        pads + &text
    }
}

/// Go's `fmt` flags as `fmt` sees them: `-` cancels `0`.
fn zero_pad(verb: &Verb) -> bool {
    verb.zero && !verb.minus
}

/// Go's formatting of a `*big.Float` with `%e %E %f %g %G`.
fn format_float(verb: &Verb, v: f64, out: &mut String) {
    let prec = match (verb.mode, verb.prec) {
        ('g' | 'G', p) => p,
        (_, Some(p)) => Some(p),
        (_, None) => Some(6),
    };
    let text = go_float_text(v, verb.mode, prec);
    let (sign, body) = if let Some(rest) = text.strip_prefix('-') {
        ("-", rest)
    } else if let Some(rest) = text.strip_prefix('+') {
        (if verb.space { " " } else { "+" }, rest)
    } else if verb.plus {
        ("+", text.as_str())
    } else if verb.space {
        (" ", text.as_str())
    } else {
        ("", text.as_str())
    };
    let len = sign.len() + body.len();
    let padding = verb.width.map_or(0, |w| w.saturating_sub(len));
    if zero_pad(verb) && !v.is_infinite() {
        out.push_str(sign);
        out.push_str(&"0".repeat(padding));
        out.push_str(body);
    } else if verb.minus {
        out.push_str(sign);
        out.push_str(body);
        out.push_str(&" ".repeat(padding));
    } else {
        out.push_str(&" ".repeat(padding));
        out.push_str(sign);
        out.push_str(body);
    }
}

/// Go's formatting of a `*big.Int` with `%b %d %o %x %X`.
fn format_integer(verb: &Verb, v: f64, out: &mut String) {
    let base = match verb.mode {
        'b' => 2,
        'o' => 8,
        'x' | 'X' => 16,
        _ => 10,
    };
    let mut digits = integer_digits(v.abs(), base);
    if verb.mode == 'X' {
        digits = digits.to_ascii_uppercase();
    }
    let sign = if v < 0.0 {
        "-"
    } else if verb.plus {
        "+"
    } else if verb.space {
        " "
    } else {
        ""
    };
    let prefix = match (verb.sharp, verb.mode) {
        (true, 'b') => "0b",
        (true, 'o') => "0",
        (true, 'x') => "0x",
        (true, 'X') => "0X",
        _ => "",
    };
    let mut zeros = 0usize;
    if let Some(prec) = verb.prec {
        if digits.len() < prec {
            zeros = prec - digits.len();
        } else if digits == "0" && prec == 0 {
            return;
        }
    }
    let length = sign.len() + prefix.len() + zeros + digits.len();
    let (mut left, mut right) = (0usize, 0usize);
    if let Some(width) = verb.width
        && length < width
    {
        let d = width - length;
        if verb.minus {
            right = d;
        } else if zero_pad(verb) && verb.prec.is_none() {
            zeros = d;
        } else {
            left = d;
        }
    }
    out.push_str(&" ".repeat(left));
    out.push_str(sign);
    out.push_str(prefix);
    out.push_str(&"0".repeat(zeros));
    out.push_str(&digits);
    out.push_str(&" ".repeat(right));
}

/// The digits of a whole, non-negative f64 in `base`, exactly.
fn integer_digits(v: f64, base: u32) -> String {
    if v < 18_446_744_073_709_551_616.0 {
        let n = v as u64;
        return match base {
            2 => format!("{n:b}"),
            8 => format!("{n:o}"),
            16 => format!("{n:x}"),
            _ => format!("{n}"),
        };
    }
    // v = mantissa × 2^exp exactly; build it in 32-bit limbs.
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1075;
    let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let mut limbs: Vec<u32> = vec![mantissa as u32, (mantissa >> 32) as u32];
    for _ in 0..exp.max(0) {
        let mut carry = 0u32;
        for limb in &mut limbs {
            let next = *limb >> 31;
            *limb = (*limb << 1) | carry;
            carry = next;
        }
        if carry != 0 {
            limbs.push(carry);
        }
    }
    let mut out = Vec::new();
    while limbs.iter().any(|&l| l != 0) {
        let mut rem = 0u64;
        for limb in limbs.iter_mut().rev() {
            let cur = (rem << 32) | *limb as u64;
            *limb = (cur / base as u64) as u32;
            rem = cur % base as u64;
        }
        out.push(std::char::from_digit(rem as u32, base).unwrap_or('0'));
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
    }
    let mut s = String::with_capacity(out.len());
    for c in out.iter().rev() {
        let _ = write!(s, "{c}");
    }
    s
}

#[cfg(test)]
#[allow(clippy::approx_constant)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn f(fmt: &str, args: Vec<Value>) -> String {
        let mut all = vec![s(fmt)];
        all.extend(args);
        match call_ok("format", all) {
            Value::String(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn ferr(fmt: &str, args: Vec<Value>) -> String {
        let mut all = vec![s(fmt)];
        all.extend(args);
        call_err("format", all)
    }

    #[test]
    fn documented_examples() {
        assert_eq!(f("Hello, %s!", vec![s("Ander")]), "Hello, Ander!");
        assert_eq!(f("There are %d lights", vec![n(4.0)]), "There are 4 lights");
        assert_eq!(f("%#v", vec![s("hello")]), "\"hello\"");
        assert_eq!(f("%#v", vec![b(true)]), "true");
        assert_eq!(f("%#v", vec![n(1.0)]), "1");
        assert_eq!(f("%#v", vec![obj(&[("a", n(1.0))])]), "{\"a\":1}");
        assert_eq!(f("%#v", vec![Value::Null]), "null");
        assert_eq!(f("%-5s|%5s", vec![s("a"), s("b")]), "a    |    b");
        assert_eq!(f("%.3f", vec![n(3.14159)]), "3.142");
        assert_eq!(f("%10.3f|", vec![n(3.14159)]), "     3.142|");
        assert_eq!(f("%[2]s %[1]s", vec![s("a"), s("b")]), "b a");
    }

    #[test]
    fn numbers_as_go_prints_them() {
        assert_eq!(
            f(
                "%v|%v|%v|%v",
                vec![n(1234567.0), n(123456.0), n(0.0001), n(0.00001)]
            ),
            "1.234567e+06|123456|0.0001|1e-05"
        );
        assert_eq!(
            f(
                "%5.2f|%-5d|%05d|%+d|%x|%#x|%o|%b|%e|%g|%G|%E",
                vec![
                    n(3.14159),
                    n(42.0),
                    n(42.0),
                    n(5.0),
                    n(255.0),
                    n(255.0),
                    n(8.0),
                    n(5.0),
                    n(1234.5678),
                    n(0.00001234),
                    n(1e21),
                    n(1e21)
                ]
            ),
            " 3.14|42   |00042|+5|ff|0xff|10|101|1.234568e+03|1.234e-05|1E+21|1.000000E+21"
        );
        assert_eq!(
            f(
                "%f|%.0f|%8.3f|%-8.3f|%08.3f|% f",
                vec![n(1.0), n(2.5), n(-3.14159), n(3.14159), n(-3.14159), n(1.0)]
            ),
            "1.000000|2|  -3.142|3.142   |-003.142| 1.000000"
        );
        assert_eq!(
            f(
                "%.10g|%.3g|%g|%g",
                vec![n(1.0 / 3.0), n(1234567.0), n(100000.0), n(1000000.0)]
            ),
            "0.3333333333|1.23e+06|100000|1e+06"
        );
        assert_eq!(
            f(
                "%.3d|%8.3d|%-8d|% d|%X|%#o|%#b",
                vec![n(7.0), n(7.0), n(7.0), n(7.0), n(255.0), n(8.0), n(5.0)]
            ),
            "007|     007|7       | 7|FF|010|0b101"
        );
        assert_eq!(f("%d", vec![s("12")]), "12");
        assert_eq!(f("%d", vec![n(-12.0)]), "-12");
        assert_eq!(f("%x", vec![n(1e20)]), "56bc75e2d63100000");
        assert_eq!(f("%d", vec![n(1e21)]), "1000000000000000000000");
        assert_eq!(f("%.0d", vec![n(0.0)]), "");
        assert_eq!(f("%-05d|", vec![n(3.0)]), "3    |");
        assert_eq!(f("%05.1f", vec![n(3.14159)]), "003.1");
        assert_eq!(f("%f", vec![n(f64::INFINITY)]), "+Inf");
        assert_eq!(f("%05f", vec![n(f64::NEG_INFINITY)]), " -Inf");
    }

    #[test]
    fn strings_and_other_values() {
        assert_eq!(
            f(
                "%.3s|%.0s|%5s|%-5s|%05s|%q",
                vec![s("abcdef"), s("abc"), s("ab"), s("ab"), s("ab"), s("<a\n>")]
            ),
            "abc|abc|   ab|ab   |000ab|\"\\u003ca\\n\\u003e\""
        );
        assert_eq!(
            f(
                "%t|%v|%#v|%v",
                vec![
                    s("true"),
                    Value::Null,
                    s("x"),
                    tup(vec![n(1.0), obj(&[("a", n(2.0))])])
                ]
            ),
            "true|null|\"x\"|[1,{\"a\":2}]"
        );
        assert_eq!(f("%s", vec![n(1.5)]), "1.5");
        assert_eq!(f("%s", vec![b(false)]), "false");
        assert_eq!(f("%5v|%-4v|", vec![n(1.0), b(true)]), "    1|true|");
        assert_eq!(f("%.2s", vec![s("🤔🤷x")]), "🤔🤷");
        assert_eq!(f("100%%", vec![]), "100%");
        assert_eq!(f("%s %s", vec![s("a"), s("b")]), "a b");
    }

    #[test]
    fn errors_as_cty_words_them() {
        assert_eq!(
            ferr("%[2]s %s %[1]s", vec![s("a"), s("b")]),
            "`format`: not enough arguments for \"%s\" at 6: need index 3 but have 2 total"
        );
        assert_eq!(
            ferr("%d", vec![n(1.5)]),
            "`format`: unsupported value for \"%d\" at 0: an integer is required"
        );
        assert_eq!(
            ferr("%!", vec![]),
            "`format`: unrecognized format character '!' at offset 1"
        );
        assert_eq!(
            ferr("abc%", vec![]),
            "`format`: invalid format string starting at offset 4"
        );
        assert_eq!(
            ferr("%s", vec![s("a"), s("b")]),
            "`format`: argument 3 (`args`): too many arguments; only 1 used by format string"
        );
        assert_eq!(
            ferr("x", vec![s("a")]),
            "`format`: argument 2 (`args`): too many arguments; no verbs in format string"
        );
        assert_eq!(
            ferr("%z", vec![n(1.0)]),
            "`format`: unsupported format verb 'z' in \"%z\" at offset 0"
        );
        assert_eq!(
            ferr("%s", vec![Value::Null]),
            "`format`: unsupported value for \"%s\" at 0: null value cannot be formatted"
        );
        assert_eq!(
            ferr("%d", vec![s("x")]),
            "`format`: unsupported value for \"%d\" at 0: a number is required"
        );
        assert_eq!(
            ferr("%s", vec![tup(vec![])]),
            "`format`: unsupported value for \"%s\" at 0: string required"
        );
        assert_eq!(
            ferr("%[0]d", vec![n(1.0)]),
            "`format`: unrecognized format character '0' at offset 2"
        );
    }

    #[test]
    fn formatlist_iterates_sequences() {
        assert_eq!(
            call_ok(
                "formatlist",
                vec![
                    s("Hello, %s!"),
                    strs(&["Valentina", "Ander", "Olivia", "Sam"])
                ]
            ),
            str_list(&[
                "Hello, Valentina!",
                "Hello, Ander!",
                "Hello, Olivia!",
                "Hello, Sam!"
            ])
        );
        assert_eq!(
            call_ok(
                "formatlist",
                vec![
                    s("%s, %s!"),
                    s("Salutations"),
                    strs(&["Valentina", "Ander"])
                ]
            ),
            str_list(&["Salutations, Valentina!", "Salutations, Ander!"])
        );
        assert_eq!(call_ok("formatlist", vec![s("x")]), str_list(&["x"]));
        assert_eq!(
            call_ok("formatlist", vec![s("%s"), strs(&[])]),
            list(vec![])
        );
        assert_eq!(
            call_ok("formatlist", vec![s("%s"), s("a")]),
            str_list(&["a"])
        );
        assert_eq!(
            call_err(
                "formatlist",
                vec![s("%s%s"), strs(&["a"]), strs(&["b", "c"])]
            ),
            "`formatlist`: argument 3 (`args`): argument 2 has length 2, which is inconsistent with argument 1 of length 1"
        );
        assert_eq!(
            call_err("formatlist", vec![s("%d"), strs(&["1", "x"])]),
            "`formatlist`: error on format iteration 1: unsupported value for \"%d\" at 0: a number is required"
        );
    }
}
