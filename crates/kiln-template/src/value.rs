//! Values and types of the HCL2 language as Packer (go-cty) has them.
//!
//! Collections keep their kind because Packer's functions and type
//! conversions tell a list from a tuple and a map from an object.
//!
//! What this module mirrors from cty:
//! - [`convert`]: cty's `convert.Convert` (the "unsafe" conversions
//!   included, as HCL uses them for variables and function arguments);
//! - [`unify`] / [`unify_unsafe`]: the common type of several values;
//! - [`Value::equals`]: the `==` operator;
//! - [`Value::new_set`]: sets deduplicated and kept in cty's iteration order;
//! - [`Number`]'s `Display`: cty's number-to-string conversion;
//! - [`Value::to_json_string`]: cty's JSON encoding (`jsonencode`);
//! - [`Type::name`]: the type as Packer prints it (`list(string)`).
//!
//! Two things cty has and this model does not: unknown values (nothing is
//! unknown while a template is loaded) and typed nulls (a null converted to
//! `string` is still just `null`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// A number. cty numbers are arbitrary-precision (512-bit floats); f64
/// covers what templates use. See the `Display` impl for how the two are
/// kept close.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Number(pub f64);

/// A value of the HCL2 language.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    /// Homogeneous, ordered.
    List(Vec<Value>),
    /// Homogeneous, deduplicated and kept in cty's set order
    /// (build with [`Value::new_set`]).
    Set(Vec<Value>),
    /// Heterogeneous, ordered.
    Tuple(Vec<Value>),
    /// Homogeneous, keys sorted.
    Map(BTreeMap<String, Value>),
    /// Heterogeneous attributes, keys sorted.
    Object(BTreeMap<String, Value>),
}

/// A type constraint (`type = ...` in a variable block), or the type of a
/// value ([`Value::ty`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    String,
    Number,
    Bool,
    /// `any`: the value keeps the type it has. Also the type of `null`
    /// (cty's dynamic pseudo-type).
    Any,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

/// Above this, f64 integers are no longer all exact.
const EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0;

impl Number {
    pub fn from_i64(n: i64) -> Number {
        Number(n as f64)
    }

    /// Whether the number is a whole number (infinities are not).
    pub fn is_integer(&self) -> bool {
        self.0.is_finite() && self.0.fract() == 0.0
    }

    /// The number as an i64 if it is a whole number in range (what Go's
    /// `gocty` asks of an `int` argument).
    pub fn to_i64(&self) -> Option<i64> {
        if self.is_integer() && self.0 >= i64::MIN as f64 && self.0 < -(i64::MIN as f64) {
            Some(self.0 as i64)
        } else {
            None
        }
    }

    /// Parses a number the way cty does for strings (Go's `big.ParseFloat`
    /// in base 10): an optional sign, digits with an optional fraction and
    /// exponent, or `inf`/`Inf`. No spaces, no underscores, no hex.
    pub fn parse(s: &str) -> Option<Number> {
        let body = s.strip_prefix(['+', '-']).unwrap_or(s);
        if body == "inf" || body == "Inf" {
            return Some(Number(if s.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }));
        }
        let bytes = body.as_bytes();
        let mut i = 0;
        let int_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let int_digits = i - int_start;
        let mut frac_digits = 0;
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let frac_start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            frac_digits = i - frac_start;
        }
        if int_digits == 0 && frac_digits == 0 {
            return None;
        }
        if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
            i += 1;
            if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
                i += 1;
            }
            let exp_start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == exp_start {
                return None;
            }
        }
        if i != bytes.len() {
            return None;
        }
        s.parse::<f64>().ok().map(Number)
    }
}

/// The shortest decimal digits of a finite, non-zero f64 and its decimal
/// exponent: the value is `0.DIGITS × 10^exp`.
fn shortest_digits(v: f64) -> (String, i32) {
    decimal_digits(&format!("{:e}", v.abs()))
}

/// `v` rounded to `n` significant digits, as digits and exponent
/// (`0.DIGITS × 10^exp`), trailing zeros trimmed.
fn rounded_digits(v: f64, n: usize) -> (String, i32) {
    decimal_digits(&format!("{:.*e}", n.saturating_sub(1), v.abs()))
}

/// Splits Rust's `{:e}` output (`d.ddddde±x`) into digits (trailing zeros
/// trimmed) and a `0.DIGITS × 10^exp` exponent.
fn decimal_digits(sci: &str) -> (String, i32) {
    let (mant, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    (digits, exp + 1)
}

/// Writes `0.DIGITS × 10^exp` as plain decimal (Go's `%f` with the
/// digits it has).
fn plain_decimal(digits: &str, exp: i32, out: &mut String) {
    if exp <= 0 {
        out.push_str("0.");
        for _ in 0..(-exp) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let exp = exp as usize;
        if digits.len() <= exp {
            out.push_str(digits);
            for _ in digits.len()..exp {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..exp]);
            out.push('.');
            out.push_str(&digits[exp..]);
        }
    }
}

impl fmt::Display for Number {
    /// cty's canonical decimal form (`big.Float.Text('f', -1)`): no
    /// exponent, no trailing zeros, `-0` kept.
    ///
    /// cty computes with 512-bit floats, so `0.1 + 0.2` is `0.3` there; in
    /// f64 it is `0.30000000000000004`. To print what Packer prints for
    /// such decimal arithmetic, a fraction whose shortest form needs more
    /// than 15 significant digits is rounded to 15. Whole numbers below
    /// 1e21 print exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n.is_nan() {
            return f.write_str("NaN");
        }
        if n.is_infinite() {
            return f.write_str(if n > 0.0 { "+Inf" } else { "-Inf" });
        }
        if n == 0.0 {
            return f.write_str(if n.is_sign_negative() { "-0" } else { "0" });
        }
        if n.fract() == 0.0 && n.abs() < 1e21 {
            return write!(f, "{n:.0}");
        }
        let (mut digits, mut exp) = shortest_digits(n);
        if digits.len() > 15 && n.fract() != 0.0 {
            (digits, exp) = rounded_digits(n, 15);
        }
        let mut out = String::new();
        if n < 0.0 {
            out.push('-');
        }
        plain_decimal(&digits, exp, &mut out);
        f.write_str(&out)
    }
}

/// Go's `big.Float.Text(fmt, prec)` for `fmt` in `e E f g G` (`prec`
/// `None` = shortest), as `format` and set ordering use it.
pub(crate) fn go_float_text(v: f64, verb: char, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let mut out = String::new();
    if v.is_sign_negative() {
        out.push('-');
    }
    let upper = verb.is_ascii_uppercase();
    let lower = verb.to_ascii_lowercase();
    // Digits: the decimal expansion rounded as asked.
    let (digits, exp) = if v == 0.0 {
        ("0".to_string(), 1)
    } else {
        match (lower, prec) {
            (_, None) => shortest_digits(v),
            ('e', Some(p)) => rounded_digits(v, p + 1),
            ('g', Some(p)) => rounded_digits(v, p.max(1)),
            _ => (String::new(), 0), // 'f' with a precision: handled below
        }
    };
    match lower {
        'f' => {
            match prec {
                Some(p) => out.push_str(&format!("{:.*}", p, v.abs())),
                None => plain_decimal(&digits, exp, &mut out),
            }
            out
        }
        'e' => {
            let frac = match prec {
                Some(p) => p,
                None => digits.len() - 1,
            };
            fmt_e(&digits, exp, frac, upper, &mut out);
            out
        }
        _ => {
            // 'g'
            let shortest = prec.is_none();
            let mut p = match prec {
                None => digits.len() as i32,
                Some(p) => p.max(1) as i32,
            };
            let mut eprec = p;
            if eprec > digits.len() as i32 && digits.len() as i32 >= exp {
                eprec = digits.len() as i32;
            }
            if shortest {
                eprec = 6;
            }
            let x = exp - 1;
            if x < -4 || x >= eprec {
                if p > digits.len() as i32 {
                    p = digits.len() as i32;
                }
                fmt_e(&digits, exp, (p - 1).max(0) as usize, upper, &mut out);
            } else {
                if p > exp {
                    p = digits.len() as i32;
                }
                let frac = (p - exp).max(0) as usize;
                fmt_f_digits(&digits, exp, frac, &mut out);
            }
            out
        }
    }
}

/// `d.ddd e±xx` from `0.DIGITS × 10^exp`, with `frac` digits after the point.
fn fmt_e(digits: &str, exp: i32, frac: usize, upper: bool, out: &mut String) {
    let mut chars = digits.chars();
    out.push(chars.next().unwrap_or('0'));
    if frac > 0 {
        out.push('.');
        let rest: String = chars.collect();
        out.push_str(&rest);
        for _ in rest.len()..frac {
            out.push('0');
        }
    }
    let x = if digits == "0" { 0 } else { exp - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if x < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", x.abs());
}

/// Plain decimal from `0.DIGITS × 10^exp` with exactly `frac` decimals
/// (digits are already rounded; only zero padding happens here).
fn fmt_f_digits(digits: &str, exp: i32, frac: usize, out: &mut String) {
    if exp <= 0 {
        out.push('0');
    } else {
        let e = exp as usize;
        if digits.len() >= e {
            out.push_str(&digits[..e]);
        } else {
            out.push_str(digits);
            for _ in digits.len()..e {
                out.push('0');
            }
        }
    }
    if frac > 0 {
        out.push('.');
        let mut written = 0;
        let mut i: i32 = exp;
        while written < frac {
            let c = if i < 0 {
                '0'
            } else {
                digits
                    .as_bytes()
                    .get(i as usize)
                    .map_or('0', |b| *b as char)
            };
            out.push(c);
            written += 1;
            i += 1;
        }
    }
}

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

impl Type {
    pub fn list(t: Type) -> Type {
        Type::List(Box::new(t))
    }
    pub fn set(t: Type) -> Type {
        Type::Set(Box::new(t))
    }
    pub fn map(t: Type) -> Type {
        Type::Map(Box::new(t))
    }

    pub fn is_primitive(&self) -> bool {
        matches!(self, Type::String | Type::Number | Type::Bool)
    }

    /// List, set or map.
    pub fn is_collection(&self) -> bool {
        matches!(self, Type::List(_) | Type::Set(_) | Type::Map(_))
    }

    /// The element type of a list, set or map.
    pub fn element_type(&self) -> Option<&Type> {
        match self {
            Type::List(t) | Type::Set(t) | Type::Map(t) => Some(t),
            _ => None,
        }
    }

    /// Whether `any` appears anywhere in the type.
    pub fn has_any(&self) -> bool {
        match self {
            Type::Any => true,
            Type::String | Type::Number | Type::Bool => false,
            Type::List(t) | Type::Set(t) | Type::Map(t) => t.has_any(),
            Type::Object(attrs) => attrs.values().any(Type::has_any),
            Type::Tuple(elems) => elems.iter().any(Type::has_any),
        }
    }

    /// The type as a type expression, the way Packer prints it
    /// (hcl's `typeexpr.TypeString`): `list(string)`, `object({a=string})`,
    /// `tuple([number,bool])`, `any`.
    pub fn name(&self) -> String {
        let mut s = String::new();
        self.write_name(&mut s);
        s
    }

    fn write_name(&self, s: &mut String) {
        match self {
            Type::String => s.push_str("string"),
            Type::Number => s.push_str("number"),
            Type::Bool => s.push_str("bool"),
            Type::Any => s.push_str("any"),
            Type::List(t) => wrap(s, "list(", t, ")"),
            Type::Set(t) => wrap(s, "set(", t, ")"),
            Type::Map(t) => wrap(s, "map(", t, ")"),
            Type::Object(attrs) => {
                s.push_str("object({");
                for (i, (name, t)) in attrs.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    if is_identifier(name) {
                        s.push_str(name);
                    } else {
                        s.push_str(&go_quote(name));
                    }
                    s.push('=');
                    t.write_name(s);
                }
                s.push_str("})");
            }
            Type::Tuple(elems) => {
                s.push_str("tuple([");
                for (i, t) in elems.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    t.write_name(s);
                }
                s.push_str("])");
            }
        }
        fn wrap(s: &mut String, open: &str, t: &Type, close: &str) {
            s.push_str(open);
            t.write_name(s);
            s.push_str(close);
        }
    }

    /// cty's `FriendlyName`: `list of string`, `object`, `dynamic`.
    pub fn friendly_name(&self) -> String {
        self.friendly(false)
    }

    /// cty's `FriendlyNameForConstraint`, as used in conversion errors:
    /// `list of any single type`, `any type`.
    pub fn friendly_name_for_constraint(&self) -> String {
        self.friendly(true)
    }

    fn friendly(&self, constraint: bool) -> String {
        let elem = |t: &Type| {
            if constraint && *t == Type::Any {
                "any single type".to_string()
            } else {
                t.friendly(constraint)
            }
        };
        match self {
            Type::String => "string".into(),
            Type::Number => "number".into(),
            Type::Bool => "bool".into(),
            Type::Any => {
                if constraint {
                    "any type".into()
                } else {
                    "dynamic".into()
                }
            }
            Type::List(t) => format!("list of {}", elem(t)),
            Type::Set(t) => format!("set of {}", elem(t)),
            Type::Map(t) => format!("map of {}", elem(t)),
            Type::Object(_) => "object".into(),
            Type::Tuple(_) => "tuple".into(),
        }
    }

    /// Parses a type expression as written in a `type = ...` attribute:
    /// `string`, `list(map(number))`, `object({name=string, tags=list(string)})`,
    /// `tuple([string, number])`, `any` (HCL's `typeexpr`: a bare `list`
    /// is an error).
    pub fn parse(src: &str) -> Result<Type, String> {
        let mut p = TypeParser {
            s: src.as_bytes(),
            i: 0,
        };
        let t = p.ty()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("unexpected `{}` after the type", &src[p.i..]));
        }
        Ok(t)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

struct TypeParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl TypeParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && (self.s[self.i] as char).is_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{}` at offset {}", c as char, self.i))
        }
    }
    fn ident(&mut self) -> Result<String, String> {
        self.ws();
        if self.s.get(self.i) == Some(&b'"') {
            self.i += 1;
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i] != b'"' {
                self.i += 1;
            }
            let name = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
            self.expect(b'"')?;
            return Ok(name);
        }
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric()
                || self.s[self.i] == b'_'
                || self.s[self.i] == b'-')
        {
            self.i += 1;
        }
        if start == self.i {
            return Err(format!("expected a name at offset {start}"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn ty(&mut self) -> Result<Type, String> {
        let kw = self.ident()?;
        let inner = |p: &mut Self| -> Result<Type, String> {
            p.expect(b'(')?;
            let t = p.ty()?;
            p.expect(b')')?;
            Ok(t)
        };
        match kw.as_str() {
            "string" => Ok(Type::String),
            "number" => Ok(Type::Number),
            "bool" => Ok(Type::Bool),
            "any" => Ok(Type::Any),
            "list" | "set" | "map" => {
                self.ws();
                if self.s.get(self.i) != Some(&b'(') {
                    return Err(format!(
                        "the `{kw}` type constructor requires one argument specifying the element type"
                    ));
                }
                let t = inner(self)?;
                Ok(match kw.as_str() {
                    "list" => Type::list(t),
                    "set" => Type::set(t),
                    _ => Type::map(t),
                })
            }
            "tuple" => {
                self.expect(b'(')?;
                self.expect(b'[')?;
                let mut elems = Vec::new();
                while !self.eat(b']') {
                    elems.push(self.ty()?);
                    self.eat(b',');
                }
                self.expect(b')')?;
                Ok(Type::Tuple(elems))
            }
            "object" => {
                self.expect(b'(')?;
                self.expect(b'{')?;
                let mut attrs = BTreeMap::new();
                while !self.eat(b'}') {
                    let name = self.ident()?;
                    if !self.eat(b'=') {
                        self.expect(b':')?;
                    }
                    attrs.insert(name, self.ty()?);
                    self.eat(b',');
                }
                self.expect(b')')?;
                Ok(Type::Object(attrs))
            }
            // A `Type` is exact: `optional()` attributes belong to type
            // constraints (`eval::types::parse_constraint`).
            "optional" => Err(
                "the keyword `optional` is valid only as a modifier for object type attributes of a type constraint"
                    .into(),
            ),
            other => Err(format!("the keyword `{other}` is not a valid type")),
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

// ---------------------------------------------------------------------------
// Values: types, equality, sets
// ---------------------------------------------------------------------------

impl Value {
    /// The name of the value's type as Packer prints it in errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Tuple(_) => "tuple",
            Value::Map(_) => "map",
            Value::Object(_) => "object",
        }
    }

    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    pub fn number(n: f64) -> Value {
        Value::Number(Number(n))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements of a list, set or tuple.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// The value's type as cty infers it: `[1, "a"]` is
    /// `tuple([number,string])`, `null` is `any`, an empty list is
    /// `list(any)`.
    pub fn ty(&self) -> Type {
        match self {
            Value::Null => Type::Any,
            Value::Bool(_) => Type::Bool,
            Value::Number(_) => Type::Number,
            Value::String(_) => Type::String,
            Value::List(items) => Type::list(element_type_of(items.iter())),
            Value::Set(items) => Type::set(element_type_of(items.iter())),
            Value::Map(m) => Type::map(element_type_of(m.values())),
            Value::Tuple(items) => Type::Tuple(items.iter().map(Value::ty).collect()),
            Value::Object(m) => Type::Object(m.iter().map(|(k, v)| (k.clone(), v.ty())).collect()),
        }
    }

    /// cty's `==`: same type and same value. `1 == "1"` is false, a list
    /// never equals a tuple, `null == null` is true.
    pub fn equals(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => a.0 == b.0,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) | (Value::Tuple(a), Value::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.equals(y))
            }
            (Value::Set(a), Value::Set(b)) => {
                a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| x.equals(y)))
            }
            (Value::Map(a), Value::Map(b)) | (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka == kb && va.equals(vb))
            }
            _ => false,
        }
    }

    /// A set of the given elements: duplicates removed, in cty's order
    /// (strings lexically by bytes, numbers numerically, false before
    /// true, other types by cty's hash serialisation, nulls last).
    pub fn new_set(mut items: Vec<Value>) -> Value {
        items.sort_by(set_order);
        items.dedup_by(|a, b| a.equals(b));
        Value::Set(items)
    }

    /// The value as cty's JSON encoding writes it (`jsonencode`): sorted
    /// object keys, numbers in full decimal form, `<`, `>` and `&`
    /// escaped as Go does.
    pub fn to_json_string(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => {
                let _ = write!(out, "{n}");
            }
            Value::String(s) => json_quote_into(s, out),
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Value::Map(m) | Value::Object(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_quote_into(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// The value as JSON, the way Packer's `inspect`/`jsonencode` show it:
    /// lists, sets and tuples as arrays, maps and objects as objects.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => {
                if n.is_integer() && n.0.abs() < EXACT_INT_LIMIT {
                    serde_json::Value::from(n.0 as i64)
                } else {
                    // Through the display form so that `0.1 + 0.2` is 0.3 here too.
                    let shown = n.to_string().parse::<f64>().unwrap_or(n.0);
                    serde_json::Number::from_f64(shown)
                        .map(serde_json::Value::Number)
                        .unwrap_or(serde_json::Value::Null)
                }
            }
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Map(m) | Value::Object(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// A JSON document as a value of the implied type (arrays are tuples,
    /// objects are objects), as `jsondecode` does.
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Number(Number(n.as_f64().unwrap_or(f64::NAN))),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(items) => {
                Value::Tuple(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// The element type of a homogeneous collection: the first element's
/// type, with `any` (nulls) filled in from the others.
pub(crate) fn element_type_of<'a>(items: impl Iterator<Item = &'a Value>) -> Type {
    let mut ty = Type::Any;
    for v in items {
        if v.is_null() {
            continue;
        }
        let t = v.ty();
        ty = if ty == Type::Any {
            t
        } else {
            merge_loose(ty, t)
        };
        if !ty.has_any() {
            break;
        }
    }
    ty
}

/// Fills the `any` holes of `a` from `b` where the two have the same shape.
fn merge_loose(a: Type, b: Type) -> Type {
    match (a, b) {
        (Type::Any, b) => b,
        (Type::List(x), Type::List(y)) => Type::list(merge_loose(*x, *y)),
        (Type::Set(x), Type::Set(y)) => Type::set(merge_loose(*x, *y)),
        (Type::Map(x), Type::Map(y)) => Type::map(merge_loose(*x, *y)),
        (Type::Object(mut x), Type::Object(mut y)) if x.len() == y.len() => {
            if x.keys().eq(y.keys()) {
                Type::Object(
                    std::mem::take(&mut x)
                        .into_iter()
                        .map(|(k, t)| {
                            let other = y.remove(&k).unwrap_or(Type::Any);
                            (k, merge_loose(t, other))
                        })
                        .collect(),
                )
            } else {
                Type::Object(x)
            }
        }
        (Type::Tuple(x), Type::Tuple(y)) if x.len() == y.len() => Type::Tuple(
            x.into_iter()
                .zip(y)
                .map(|(a, b)| merge_loose(a, b))
                .collect(),
        ),
        (a, _) => a,
    }
}

/// Equality of types where `any` (a null's type) matches every type.
fn types_match_loosely(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Any, _) | (_, Type::Any) => true,
        (Type::List(x), Type::List(y))
        | (Type::Set(x), Type::Set(y))
        | (Type::Map(x), Type::Map(y)) => types_match_loosely(x, y),
        (Type::Object(x), Type::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, a), (kb, b))| ka == kb && types_match_loosely(a, b))
        }
        (Type::Tuple(x), Type::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| types_match_loosely(a, b))
        }
        (a, b) => a == b,
    }
}

fn all_types_match(values: &[Value]) -> bool {
    let mut first: Option<Type> = None;
    for v in values {
        if v.is_null() {
            continue;
        }
        let t = v.ty();
        match &first {
            None => first = Some(t),
            Some(f) => {
                if !types_match_loosely(f, &t) {
                    return false;
                }
            }
        }
    }
    true
}

/// cty's set iteration order (`setRules.Less`).
fn set_order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Number(x), Value::Number(y)) => x.0.partial_cmp(&y.0).unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => set_hash_bytes(a).cmp(&set_hash_bytes(b)),
    }
}

/// cty's serialisation of a value for set hashing, which orders sets of
/// non-primitive values.
fn set_hash_bytes(v: &Value) -> String {
    let mut s = String::new();
    write_set_hash(v, &mut s);
    s
}

fn write_set_hash(v: &Value, s: &mut String) {
    match v {
        Value::Null => s.push('~'),
        Value::Bool(b) => s.push(if *b { 'T' } else { 'F' }),
        Value::Number(n) => s.push_str(&go_float_text(n.0, 'g', Some(10))),
        Value::String(x) => s.push_str(&go_quote(x)),
        Value::Map(m) => {
            s.push('{');
            for (k, v) in m {
                s.push_str(&go_quote(k));
                s.push(':');
                write_set_hash(v, s);
                s.push(';');
            }
            s.push('}');
        }
        Value::List(items) | Value::Set(items) => {
            s.push('[');
            for v in items {
                write_set_hash(v, s);
                s.push(';');
            }
            s.push(']');
        }
        Value::Object(m) => {
            s.push('<');
            for v in m.values() {
                write_set_hash(v, s);
                s.push(';');
            }
            s.push('>');
        }
        Value::Tuple(items) => {
            s.push('<');
            for v in items {
                write_set_hash(v, s);
                s.push(';');
            }
            s.push('>');
        }
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            // Go's strconv.IsPrint is false for these too.
            c if c.is_control()
                || (c.is_whitespace() && c != ' ')
                || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}') =>
            {
                if (c as u32) <= 0xffff {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON string as Go's `encoding/json` writes it (HTML-safe).
pub(crate) fn json_quote_into(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------
// Conversion
// ---------------------------------------------------------------------------

/// One step of the path to the part of a value a conversion failed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathStep {
    /// An element of a list, set or tuple.
    Index(usize),
    /// An element of a map.
    Key(String),
    /// An attribute of an object.
    Attr(String),
}

/// A failed conversion: cty's message, and where in the value it failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConvertError {
    /// Empty when the value as a whole is at fault.
    pub path: Vec<PathStep>,
    /// cty's wording: `a number is required`, `list of string required`,
    /// `attribute "name" is required`.
    pub message: String,
}

impl ConvertError {
    fn new(path: &[PathStep], message: impl Into<String>) -> Self {
        ConvertError {
            path: path.to_vec(),
            message: message.into(),
        }
    }

    /// The path in HCL syntax, e.g. `[1].name`; empty for the whole value.
    pub fn path_string(&self) -> String {
        let mut s = String::new();
        for step in &self.path {
            match step {
                PathStep::Index(i) => {
                    let _ = write!(s, "[{i}]");
                }
                PathStep::Key(k) => {
                    let _ = write!(s, "[{}]", go_quote(k));
                }
                PathStep::Attr(a) => {
                    s.push('.');
                    s.push_str(a);
                }
            }
        }
        s
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at {}: {}", self.path_string(), self.message)
        }
    }
}

/// Converts a value to a type as cty's `convert.Convert` does (HCL uses it
/// for variable values, function arguments and `convert()`): numbers and
/// bools become strings, strings that spell numbers or bools become those,
/// tuples become lists or sets (their elements unified), objects become
/// maps or (dropping extra attributes) other objects, lists become sets,
/// `any` keeps the value as it is, and null stays null.
pub fn convert(value: &Value, want: &Type) -> Result<Value, ConvertError> {
    if let Some(done) = convert_trivial(value, want) {
        return done.map(|()| value.clone());
    }
    convert_owned(value.clone(), want)
}

/// [`convert`] taking the value by value, so that nothing is copied when
/// no conversion is needed.
pub fn convert_owned(value: Value, want: &Type) -> Result<Value, ConvertError> {
    match convert_trivial(&value, want) {
        Some(Ok(())) => return Ok(value),
        Some(Err(e)) => return Err(e),
        None => {}
    }
    // Fast paths for the loader's common cases; the general path below
    // computes types, unifies and words errors as cty does.
    if conforms(&value, want) {
        return Ok(value);
    }
    if !want.has_any()
        && let Some(v) = fast_conv(&value, want)
    {
        return Ok(v);
    }
    convert_general(value, want)
}

/// The conversion as cty does it, by type first.
fn convert_general(value: Value, want: &Type) -> Result<Value, ConvertError> {
    let got = value.ty();
    if types_equal_for_conversion(&got, want) {
        return Ok(value);
    }
    if !can_convert(&got, want) {
        return Err(ConvertError::new(&[], mismatch_message(&got, want)));
    }
    let mut path = Vec::new();
    conv(value, want, &mut path)
}

/// Whether the value already has the type (`any` matching anything), so
/// that converting it changes nothing.
fn conforms(v: &Value, t: &Type) -> bool {
    match (v, t) {
        (_, Type::Any) | (Value::Null, _) => true,
        (Value::String(_), Type::String)
        | (Value::Number(_), Type::Number)
        | (Value::Bool(_), Type::Bool) => true,
        (Value::List(items), Type::List(e)) | (Value::Set(items), Type::Set(e)) => {
            items.iter().all(|i| conforms(i, e))
        }
        (Value::Map(m), Type::Map(e)) => m.values().all(|i| conforms(i, e)),
        (Value::Object(m), Type::Object(attrs)) => {
            m.len() == attrs.len()
                && m.iter()
                    .zip(attrs)
                    .all(|((k, v), (ak, at))| k == ak && conforms(v, at))
        }
        (Value::Tuple(items), Type::Tuple(etys)) => {
            items.len() == etys.len() && items.iter().zip(etys).all(|(i, t)| conforms(i, t))
        }
        _ => false,
    }
}

/// Converts to a type without `any` by walking the value: no type is
/// computed and nothing needs unifying. `None` when anything fails; the
/// general path then finds cty's error.
fn fast_conv(v: &Value, t: &Type) -> Option<Value> {
    if v.is_null() {
        return Some(Value::Null);
    }
    Some(match t {
        Type::String => match v {
            Value::String(s) => Value::String(s.clone()),
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::string(if *b { "true" } else { "false" }),
            _ => return None,
        },
        Type::Number => match v {
            Value::Number(_) => v.clone(),
            Value::String(s) => Value::Number(Number::parse(s)?),
            _ => return None,
        },
        Type::Bool => match v {
            Value::Bool(_) => v.clone(),
            Value::String(s) => match s.as_str() {
                "true" | "1" => Value::Bool(true),
                "false" | "0" => Value::Bool(false),
                _ => return None,
            },
            _ => return None,
        },
        Type::List(e) | Type::Set(e) => {
            let items = match v {
                Value::List(items) | Value::Set(items) | Value::Tuple(items) => items,
                _ => return None,
            };
            let out = items
                .iter()
                .map(|i| fast_conv(i, e))
                .collect::<Option<Vec<_>>>()?;
            if matches!(t, Type::Set(_)) {
                Value::new_set(out)
            } else {
                Value::List(out)
            }
        }
        Type::Map(e) => {
            let (Value::Map(m) | Value::Object(m)) = v else {
                return None;
            };
            Value::Map(
                m.iter()
                    .map(|(k, i)| Some((k.clone(), fast_conv(i, e)?)))
                    .collect::<Option<BTreeMap<_, _>>>()?,
            )
        }
        Type::Object(attrs) => {
            let (Value::Object(m) | Value::Map(m)) = v else {
                return None;
            };
            Value::Object(
                attrs
                    .iter()
                    .map(|(k, at)| Some((k.clone(), fast_conv(m.get(k)?, at)?)))
                    .collect::<Option<BTreeMap<_, _>>>()?,
            )
        }
        Type::Tuple(etys) => {
            let Value::Tuple(items) = v else { return None };
            if items.len() != etys.len() {
                return None;
            }
            Value::Tuple(
                items
                    .iter()
                    .zip(etys)
                    .map(|(i, e)| fast_conv(i, e))
                    .collect::<Option<Vec<_>>>()?,
            )
        }
        Type::Any => v.clone(),
    })
}

/// The cheap cases: `Some(Ok)` when the value already has the type,
/// `Some(Err)` when it cannot have it, `None` when it takes real work.
fn convert_trivial(value: &Value, want: &Type) -> Option<Result<(), ConvertError>> {
    match (value, want) {
        (_, Type::Any) | (Value::Null, _) => Some(Ok(())),
        (Value::String(_), Type::String)
        | (Value::Number(_), Type::Number)
        | (Value::Bool(_), Type::Bool) => Some(Ok(())),
        (Value::Bool(_), Type::Number) | (Value::Number(_), Type::Bool) => {
            Some(Err(ConvertError::new(
                &[],
                format!("{} required", want.friendly_name_for_constraint()),
            )))
        }
        _ => None,
    }
}

/// Type equality where the value's inferred `any` parts (nulls, empty
/// collections) count as matching: cty's values carry the exact type, ours
/// infer it.
fn types_equal_for_conversion(got: &Type, want: &Type) -> bool {
    !want.has_any() && !got.has_any() && got == want
}

/// Whether cty has an (unsafe) conversion from `from` to `to`, judged on
/// types alone (cty's `GetConversionUnsafe(from, to) != nil`).
pub fn can_convert(from: &Type, to: &Type) -> bool {
    match (from, to) {
        (_, Type::Any) | (Type::Any, _) => true,
        (a, b) if a.is_primitive() && b.is_primitive() => {
            a == b || *b == Type::String || *a == Type::String
        }
        (Type::Object(fa), Type::Object(ta)) => ta
            .iter()
            .all(|(name, t)| fa.get(name).is_some_and(|f| can_convert(f, t))),
        (Type::Tuple(fe), Type::Tuple(te)) => {
            fe.len() == te.len() && fe.iter().zip(te).all(|(f, t)| can_convert(f, t))
        }
        (Type::List(fe) | Type::Set(fe), Type::List(te) | Type::Set(te)) => can_convert(fe, te),
        (Type::Map(fe), Type::Map(te)) => can_convert(fe, te),
        (Type::Tuple(fe), Type::List(te) | Type::Set(te)) => tuple_elem_target(fe, te).is_some(),
        (Type::Object(fa), Type::Map(te)) => {
            if fa.is_empty() {
                return true;
            }
            let ety = if **te == Type::Any {
                let tys: Vec<Type> = fa.values().cloned().collect();
                match unify_types(&tys, true) {
                    Some(t) => t,
                    None => return false,
                }
            } else {
                (**te).clone()
            };
            fa.values().all(|f| *f == ety || can_convert(f, &ety))
        }
        (Type::Map(fe), Type::Object(ta)) => ta.values().all(|t| can_convert(fe, t)),
        _ => false,
    }
}

/// The element type a tuple converts to for `list(te)`/`set(te)`, if any.
fn tuple_elem_target(fe: &[Type], te: &Type) -> Option<Type> {
    if fe.is_empty() {
        return Some(te.clone());
    }
    let ety = if *te == Type::Any {
        let u = unify_types(fe, true)?;
        if u == Type::Any && fe.iter().any(|t| *t != Type::Any) {
            return None;
        }
        u
    } else {
        te.clone()
    };
    if fe.iter().all(|f| *f == ety || can_convert(f, &ety)) {
        Some(ety)
    } else {
        None
    }
}

/// cty's `MismatchMessage`: why no conversion exists from `got` to `want`.
pub fn mismatch_message(got: &Type, want: &Type) -> String {
    match (got, want) {
        (Type::Object(ga), Type::Object(wa)) => {
            let mut missing: Vec<&String> = Vec::new();
            let mut mismatch: Option<String> = None;
            for (name, wt) in wa {
                match ga.get(name) {
                    None => missing.push(name),
                    Some(gt) => {
                        if mismatch.is_none() && gt != wt && !can_convert(gt, wt) {
                            mismatch = Some(format!(
                                "attribute {}: {}",
                                go_quote(name),
                                mismatch_message(gt, wt)
                            ));
                        }
                    }
                }
            }
            match missing.len() {
                0 => mismatch.unwrap_or_else(|| "incorrect object attributes".into()),
                1 => format!("attribute {} is required", go_quote(missing[0])),
                2 => format!(
                    "attributes {} and {} are required",
                    go_quote(missing[0]),
                    go_quote(missing[1])
                ),
                n => {
                    let mut s = String::from("attributes ");
                    for name in &missing[..n - 1] {
                        let _ = write!(s, "{}, ", go_quote(name));
                    }
                    let _ = write!(s, "and {} are required", go_quote(missing[n - 1]));
                    s
                }
            }
        }
        (Type::Tuple(_), Type::List(e)) if **e == Type::Any => {
            "all list elements must have the same type".into()
        }
        (Type::Tuple(_), Type::Set(e)) if **e == Type::Any => {
            "all set elements must have the same type".into()
        }
        (Type::Object(_), Type::Map(e)) if **e == Type::Any => {
            "all map elements must have the same type".into()
        }
        (Type::Tuple(ge), Type::List(we) | Type::Set(we)) => {
            for (i, g) in ge.iter().enumerate() {
                if g != &**we && !can_convert(g, we) {
                    return format!("element {i}: {}", mismatch_message(g, we));
                }
            }
            format!("all elements must be {}", we.friendly_name_for_constraint())
        }
        (Type::Object(ga), Type::Map(we)) => {
            for (name, g) in ga {
                if g != &**we && !can_convert(g, we) {
                    return format!("element {}: {}", go_quote(name), mismatch_message(g, we));
                }
            }
            format!("all elements must be {}", we.friendly_name_for_constraint())
        }
        (Type::List(ge) | Type::Set(ge), Type::List(we)) => {
            format!("incorrect list element type: {}", mismatch_message(ge, we))
        }
        (Type::List(ge) | Type::Set(ge), Type::Set(we)) => {
            format!("incorrect set element type: {}", mismatch_message(ge, we))
        }
        (Type::Map(ge), Type::Map(we)) => {
            format!("incorrect map element type: {}", mismatch_message(ge, we))
        }
        _ => format!("{} required", want.friendly_name_for_constraint()),
    }
}

/// The value-level half of a conversion already known to be possible by
/// type.
fn conv(value: Value, want: &Type, path: &mut Vec<PathStep>) -> Result<Value, ConvertError> {
    if matches!(want, Type::Any) || value.is_null() {
        return Ok(value);
    }
    match want {
        Type::String => match value {
            Value::String(_) => Ok(value),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::string(if b { "true" } else { "false" })),
            other => Err(ConvertError::new(path, mismatch_message(&other.ty(), want))),
        },
        Type::Number => match value {
            Value::Number(_) => Ok(value),
            Value::String(s) => Number::parse(&s)
                .map(Value::Number)
                .ok_or_else(|| ConvertError::new(path, "a number is required")),
            other => Err(ConvertError::new(path, mismatch_message(&other.ty(), want))),
        },
        Type::Bool => match value {
            Value::Bool(_) => Ok(value),
            Value::String(s) => match s.as_str() {
                "true" | "1" => Ok(Value::Bool(true)),
                "false" | "0" => Ok(Value::Bool(false)),
                _ => Err(ConvertError::new(
                    path,
                    match s.to_lowercase().as_str() {
                        "true" => {
                            "a bool is required; to convert from string, use lowercase \"true\""
                        }
                        "false" => {
                            "a bool is required; to convert from string, use lowercase \"false\""
                        }
                        _ => "a bool is required",
                    },
                )),
            },
            other => Err(ConvertError::new(path, mismatch_message(&other.ty(), want))),
        },
        Type::List(ety) | Type::Set(ety) => {
            let is_set = matches!(want, Type::Set(_));
            let kind = if is_set { "set" } else { "list" };
            let (items, from_tuple) = match value {
                Value::List(items) | Value::Set(items) => (items, false),
                Value::Tuple(items) => (items, true),
                other => return Err(ConvertError::new(path, mismatch_message(&other.ty(), want))),
            };
            if items.is_empty() {
                return Ok(if is_set {
                    Value::Set(items)
                } else {
                    Value::List(items)
                });
            }
            let target = if from_tuple {
                let tys: Vec<Type> = items.iter().map(Value::ty).collect();
                tuple_elem_target(&tys, ety).ok_or_else(|| {
                    ConvertError::new(path, mismatch_message(&Type::Tuple(tys.clone()), want))
                })?
            } else {
                (**ety).clone()
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                path.push(PathStep::Index(i));
                out.push(conv(item, &target, path)?);
                path.pop();
            }
            if from_tuple && !is_set {
                out = unify_elements(out, path, true)?;
            }
            if !all_types_match(&out) {
                return Err(ConvertError::new(
                    path,
                    format!("element types must all match for conversion to {kind}"),
                ));
            }
            Ok(if is_set {
                Value::new_set(out)
            } else {
                Value::List(out)
            })
        }
        Type::Map(ety) => {
            let (entries, from_object) = match value {
                Value::Map(m) => (m, false),
                Value::Object(m) => (m, true),
                other => return Err(ConvertError::new(path, mismatch_message(&other.ty(), want))),
            };
            if entries.is_empty() {
                return Ok(Value::Map(entries));
            }
            let target = if from_object && **ety == Type::Any {
                let tys: Vec<Type> = entries.values().map(Value::ty).collect();
                unify_types(&tys, true).ok_or_else(|| {
                    ConvertError::new(path, "all map elements must have the same type")
                })?
            } else {
                (**ety).clone()
            };
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                path.push(PathStep::Key(k.clone()));
                let v = conv(v, &target, path)?;
                path.pop();
                out.insert(k, v);
            }
            if matches!(
                target,
                Type::List(_) | Type::Set(_) | Type::Map(_) | Type::Object(_)
            ) {
                let keys: Vec<String> = out.keys().cloned().collect();
                let vals: Vec<Value> = out.into_values().collect();
                let vals = unify_elements(vals, path, from_object)?;
                out = keys.into_iter().zip(vals).collect();
            }
            let vals: Vec<Value> = out.values().cloned().collect();
            if !all_types_match(&vals) {
                return Err(ConvertError::new(
                    path,
                    if from_object {
                        "attribute types must all match for conversion to map"
                    } else {
                        "element types must all match for conversion to map"
                    },
                ));
            }
            Ok(Value::Map(out))
        }
        Type::Object(attrs) => {
            let (mut entries, from_map) = match value {
                Value::Object(m) => (m, false),
                Value::Map(m) => (m, true),
                other => return Err(ConvertError::new(path, mismatch_message(&other.ty(), want))),
            };
            let mut out = BTreeMap::new();
            for (name, t) in attrs {
                match entries.remove(name) {
                    Some(v) => {
                        path.push(if from_map {
                            PathStep::Key(name.clone())
                        } else {
                            PathStep::Attr(name.clone())
                        });
                        let v = conv(v, t, path)?;
                        path.pop();
                        out.insert(name.clone(), v);
                    }
                    None => {
                        if from_map {
                            return Err(ConvertError::new(
                                path,
                                format!(
                                    "map has no element for required attribute {}",
                                    go_quote(name)
                                ),
                            ));
                        } else {
                            return Err(ConvertError::new(
                                path,
                                format!("attribute {} is required", go_quote(name)),
                            ));
                        }
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Type::Tuple(etys) => match value {
            Value::Tuple(items) if items.len() == etys.len() => {
                let mut out = Vec::with_capacity(items.len());
                for (i, (item, t)) in items.into_iter().zip(etys).enumerate() {
                    path.push(PathStep::Index(i));
                    out.push(conv(item, t, path)?);
                    path.pop();
                }
                Ok(Value::Tuple(out))
            }
            other => Err(ConvertError::new(path, mismatch_message(&other.ty(), want))),
        },
        Type::Any => Ok(value),
    }
}

/// cty's `conversionUnifyListElements`: brings elements that ended up with
/// different types to their common type.
fn unify_elements(
    items: Vec<Value>,
    path: &mut Vec<PathStep>,
    unsafe_: bool,
) -> Result<Vec<Value>, ConvertError> {
    if all_types_match(&items) {
        return Ok(items);
    }
    let tys: Vec<Type> = items.iter().map(Value::ty).collect();
    let unified = unify_types(&tys, unsafe_).ok_or_else(|| {
        ConvertError::new(path, "cannot find a common base type for all elements")
    })?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        path.push(PathStep::Index(i));
        let t = item.ty();
        if !can_convert(&t, &unified) {
            return Err(ConvertError::new(path, mismatch_message(&t, &unified)));
        }
        out.push(conv(item, &unified, path)?);
        path.pop();
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Unification
// ---------------------------------------------------------------------------

/// The most specific type all of `types` convert to without loss (cty's
/// `convert.Unify`), e.g. `number` and `string` unify to `string`.
pub fn unify(types: &[Type]) -> Option<Type> {
    unify_types(types, false)
}

/// [`unify`] allowing conversions that may fail on some values (cty's
/// `UnifyUnsafe`, used by HCL for conditionals and for `tolist`-style
/// conversions of tuples).
pub fn unify_unsafe(types: &[Type]) -> Option<Type> {
    unify_types(types, true)
}

/// Converts values to their unified type (as HCL's conditional does for
/// its two results).
pub fn unify_values(values: Vec<Value>) -> Result<(Type, Vec<Value>), ConvertError> {
    let tys: Vec<Type> = values.iter().map(Value::ty).collect();
    let t = unify_types(&tys, true)
        .ok_or_else(|| ConvertError::new(&[], "the values have no common type"))?;
    let out = values
        .into_iter()
        .map(|v| convert_owned(v, &t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((t, out))
}

/// Whether a safe (or, with `unsafe_`, any) conversion exists.
fn can_convert_mode(from: &Type, to: &Type, unsafe_: bool) -> bool {
    if unsafe_ {
        can_convert(from, to)
    } else {
        can_convert_safe(from, to)
    }
}

/// cty's safe conversions: those that cannot fail on any value.
fn can_convert_safe(from: &Type, to: &Type) -> bool {
    match (from, to) {
        (_, Type::Any) => true,
        (Type::Any, _) => false,
        (a, b) if a.is_primitive() && b.is_primitive() => a == b || *b == Type::String,
        (Type::Object(fa), Type::Object(ta)) => ta
            .iter()
            .all(|(name, t)| fa.get(name).is_some_and(|f| can_convert_safe(f, t))),
        (Type::Tuple(fe), Type::Tuple(te)) => {
            fe.len() == te.len() && fe.iter().zip(te).all(|(f, t)| can_convert_safe(f, t))
        }
        (Type::List(fe) | Type::Set(fe), Type::List(te)) => can_convert_safe(fe, te),
        (Type::Set(fe), Type::Set(te)) => can_convert_safe(fe, te),
        (Type::Map(fe), Type::Map(te)) => can_convert_safe(fe, te),
        (Type::Tuple(fe), Type::List(te) | Type::Set(te)) => {
            if fe.is_empty() {
                return true;
            }
            let ety = if **te == Type::Any {
                match unify_types(fe, false) {
                    Some(t) => t,
                    None => return false,
                }
            } else {
                (**te).clone()
            };
            fe.iter().all(|f| *f == ety || can_convert_safe(f, &ety))
        }
        (Type::Object(fa), Type::Map(te)) => {
            if fa.is_empty() {
                return true;
            }
            let ety = if **te == Type::Any {
                let tys: Vec<Type> = fa.values().cloned().collect();
                match unify_types(&tys, false) {
                    Some(t) => t,
                    None => return false,
                }
            } else {
                (**te).clone()
            };
            fa.values().all(|f| *f == ety || can_convert_safe(f, &ety))
        }
        _ => false,
    }
}

fn unify_types(types: &[Type], unsafe_: bool) -> Option<Type> {
    if types.is_empty() {
        return None;
    }
    let mut map_ct = 0;
    let mut list_ct = 0;
    let mut set_ct = 0;
    let mut object_ct = 0;
    let mut tuple_ct = 0;
    let mut dynamic_ct = 0;
    for t in types {
        match t {
            Type::Map(_) => map_ct += 1,
            Type::List(_) => list_ct += 1,
            Type::Set(_) => set_ct += 1,
            Type::Object(_) => object_ct += 1,
            Type::Tuple(_) => tuple_ct += 1,
            Type::Any => dynamic_ct += 1,
            _ => {}
        }
    }
    let n = types.len();
    if map_ct > 0 && map_ct + dynamic_ct == n {
        return unify_collections(types, unsafe_, dynamic_ct > 0, Type::map);
    } else if map_ct > 0 && map_ct + object_ct + dynamic_ct == n {
        if let Some(t) = unify_objects_as_maps(types, unsafe_) {
            return Some(t);
        }
    } else if list_ct > 0 && list_ct + dynamic_ct == n {
        return unify_collections(types, unsafe_, dynamic_ct > 0, Type::list);
    } else if list_ct > 0 && list_ct + tuple_ct + dynamic_ct == n {
        if let Some(t) = unify_tuples_as_list(types, unsafe_) {
            return Some(t);
        }
    } else if set_ct > 0 && set_ct + dynamic_ct == n {
        return unify_collections(types, unsafe_, dynamic_ct > 0, Type::set);
    } else if object_ct > 0 && object_ct + dynamic_ct == n {
        return unify_object_types(types, unsafe_, dynamic_ct > 0);
    } else if tuple_ct > 0 && tuple_ct + dynamic_ct == n {
        return unify_tuple_types(types, unsafe_, dynamic_ct > 0);
    } else if object_ct > 0 && tuple_ct > 0 {
        return None;
    }

    'pref: for want_idx in sort_types(types) {
        let want = &types[want_idx];
        for (i, t) in types.iter().enumerate() {
            if i == want_idx || t == want {
                continue;
            }
            if !can_convert_mode(t, want, unsafe_) {
                continue 'pref;
            }
        }
        return Some(want.clone());
    }
    None
}

fn unify_collections(
    types: &[Type],
    unsafe_: bool,
    has_dynamic: bool,
    make: fn(Type) -> Type,
) -> Option<Type> {
    if has_dynamic {
        return Some(Type::Any);
    }
    let elems: Vec<Type> = types
        .iter()
        .filter_map(|t| t.element_type().cloned())
        .collect();
    let ety = unify_types(&elems, unsafe_)?;
    let ret = make(ety);
    types
        .iter()
        .all(|t| *t == ret || can_convert_mode(t, &ret, unsafe_))
        .then_some(ret)
}

fn unify_objects_as_maps(types: &[Type], unsafe_: bool) -> Option<Type> {
    let objs: Vec<Type> = types
        .iter()
        .filter(|t| matches!(t, Type::Object(_)))
        .cloned()
        .collect();
    let as_map = unify_objects_to_map(&objs, unsafe_)?;
    let mapped: Vec<Type> = types
        .iter()
        .map(|t| {
            if matches!(t, Type::Object(_)) {
                as_map.clone()
            } else {
                t.clone()
            }
        })
        .collect();
    match unify_types(&mapped, unsafe_)? {
        t @ Type::Map(_) => Some(t),
        _ => None,
    }
}

fn unify_tuples_as_list(types: &[Type], unsafe_: bool) -> Option<Type> {
    let tuples: Vec<Type> = types
        .iter()
        .filter(|t| matches!(t, Type::Tuple(_)))
        .cloned()
        .collect();
    let as_list = unify_tuples_to_list(&tuples, unsafe_)?;
    let listed: Vec<Type> = types
        .iter()
        .map(|t| {
            if matches!(t, Type::Tuple(_)) {
                as_list.clone()
            } else {
                t.clone()
            }
        })
        .collect();
    match unify_types(&listed, unsafe_)? {
        t @ Type::List(_) => Some(t),
        _ => None,
    }
}

fn unify_object_types(types: &[Type], unsafe_: bool, has_dynamic: bool) -> Option<Type> {
    if has_dynamic {
        return Some(Type::Any);
    }
    let Type::Object(first) = &types[0] else {
        return None;
    };
    for t in &types[1..] {
        let Type::Object(attrs) = t else { return None };
        if attrs.len() != first.len() || attrs.keys().any(|k| !first.contains_key(k)) {
            return unify_objects_to_map(types, unsafe_);
        }
    }
    let mut ret = BTreeMap::new();
    for name in first.keys() {
        let across: Vec<Type> = types
            .iter()
            .filter_map(|t| match t {
                Type::Object(a) => a.get(name).cloned(),
                _ => None,
            })
            .collect();
        ret.insert(name.clone(), unify_types(&across, unsafe_)?);
    }
    let ret = Type::Object(ret);
    if types
        .iter()
        .all(|t| *t == ret || can_convert_mode(t, &ret, unsafe_))
    {
        Some(ret)
    } else {
        unify_objects_to_map(types, unsafe_)
    }
}

fn unify_objects_to_map(types: &[Type], unsafe_: bool) -> Option<Type> {
    let atys: Vec<Type> = types
        .iter()
        .flat_map(|t| match t {
            Type::Object(a) => a.values().cloned().collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    let ety = unify_types(&atys, unsafe_)?;
    let ret = Type::map(ety);
    types
        .iter()
        .all(|t| *t == ret || can_convert_mode(t, &ret, unsafe_))
        .then_some(ret)
}

fn unify_tuple_types(types: &[Type], unsafe_: bool, has_dynamic: bool) -> Option<Type> {
    if has_dynamic {
        return Some(Type::Any);
    }
    let Type::Tuple(first) = &types[0] else {
        return None;
    };
    for t in &types[1..] {
        let Type::Tuple(e) = t else { return None };
        if e.len() != first.len() {
            return unify_tuples_to_list(types, unsafe_);
        }
    }
    let mut ret = Vec::with_capacity(first.len());
    for idx in 0..first.len() {
        let across: Vec<Type> = types
            .iter()
            .filter_map(|t| match t {
                Type::Tuple(e) => e.get(idx).cloned(),
                _ => None,
            })
            .collect();
        ret.push(unify_types(&across, unsafe_)?);
    }
    let ret = Type::Tuple(ret);
    if types
        .iter()
        .all(|t| *t == ret || can_convert_mode(t, &ret, unsafe_))
    {
        Some(ret)
    } else {
        unify_tuples_to_list(types, unsafe_)
    }
}

fn unify_tuples_to_list(types: &[Type], unsafe_: bool) -> Option<Type> {
    let etys: Vec<Type> = types
        .iter()
        .flat_map(|t| match t {
            Type::Tuple(e) => e.clone(),
            _ => Vec::new(),
        })
        .collect();
    let ety = unify_types(&etys, unsafe_)?;
    let ret = Type::list(ety);
    types
        .iter()
        .all(|t| *t == ret || can_convert_mode(t, &ret, unsafe_))
        .then_some(ret)
}

/// cty's preference order among types for unification: a topological
/// sort where a type that others convert to comes first.
fn sort_types(types: &[Type]) -> Vec<usize> {
    let n = types.len();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n.saturating_sub(1) {
        for j in i + 1..n {
            match compare_types(&types[i], &types[j]) {
                Ordering::Less => edges[i].push(j),
                Ordering::Greater => edges[j].push(i),
                Ordering::Equal => {}
            }
        }
    }
    let mut in_degree = vec![0usize; n];
    for outs in &edges {
        for &j in outs {
            in_degree[j] += 1;
        }
    }
    let mut queue: std::collections::VecDeque<usize> =
        (0..n).filter(|&i| in_degree[i] == 0).collect();
    let mut result = Vec::with_capacity(n);
    while let Some(i) = queue.pop_front() {
        result.push(i);
        for &j in &edges[i] {
            in_degree[j] -= 1;
            if in_degree[j] == 0 {
                queue.push_back(j);
            }
        }
    }
    result
}

/// cty's `compareTypes`: `Less` when `a` is preferred (more general).
fn compare_types(a: &Type, b: &Type) -> Ordering {
    if *a == Type::Any || *b == Type::Any {
        return match (*a == Type::Any, *b == Type::Any) {
            (false, true) => Ordering::Less,
            (true, false) => Ordering::Greater,
            _ => Ordering::Equal,
        };
    }
    if a.is_primitive() && b.is_primitive() {
        if *a == Type::String || *b == Type::String {
            return match (*a == Type::String, *b == Type::String) {
                (false, true) => Ordering::Greater,
                (true, false) => Ordering::Less,
                _ => Ordering::Equal,
            };
        }
        return Ordering::Equal;
    }
    match (a, b) {
        (Type::List(x), Type::List(y))
        | (Type::Set(x), Type::Set(y))
        | (Type::Map(x), Type::Map(y)) => {
            return compare_types(x, y);
        }
        _ => {}
    }
    let (a, b, swap) = match (a, b) {
        (Type::Tuple(_), Type::List(_))
        | (Type::Object(_), Type::Map(_))
        | (Type::Set(_), Type::Tuple(_))
        | (Type::Set(_), Type::List(_)) => (b, a, true),
        _ => (a, b, false),
    };
    let flip = |o: Ordering| if swap { o.reverse() } else { o };
    if matches!(b, Type::Set(_)) && matches!(a, Type::Tuple(_) | Type::List(_)) {
        return flip(Ordering::Less);
    }
    if matches!(a, Type::List(_)) && matches!(b, Type::Tuple(_)) {
        return flip(Ordering::Less);
    }
    if matches!(a, Type::Map(_)) && matches!(b, Type::Object(_)) {
        return flip(Ordering::Less);
    }
    let supers = |pairs: Vec<(&Type, &Type)>| {
        let mut a_super = false;
        let mut b_super = false;
        for (x, y) in pairs {
            match compare_types(x, y) {
                Ordering::Less => a_super = true,
                Ordering::Greater => b_super = true,
                Ordering::Equal => {}
            }
        }
        match (a_super, b_super) {
            (true, false) => flip(Ordering::Less),
            (false, true) => flip(Ordering::Greater),
            _ => Ordering::Equal,
        }
    };
    match (a, b) {
        (Type::Object(x), Type::Object(y)) => {
            if x.len() != y.len() || x.keys().any(|k| !y.contains_key(k)) {
                return Ordering::Equal;
            }
            supers(
                x.iter()
                    .filter_map(|(k, t)| y.get(k).map(|u| (t, u)))
                    .collect(),
            )
        }
        (Type::Tuple(x), Type::Tuple(y)) => {
            if x.len() != y.len() {
                return Ordering::Equal;
            }
            supers(x.iter().zip(y).collect())
        }
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
#[allow(clippy::approx_constant)]
mod tests {
    use super::*;

    fn n(v: f64) -> Value {
        Value::number(v)
    }
    fn s(v: &str) -> Value {
        Value::string(v)
    }
    fn t(src: &str) -> Type {
        Type::parse(src).unwrap()
    }
    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn number_display_matches_cty() {
        let cases = [
            (1.0, "1"),
            (-0.0, "-0"),
            (0.0, "0"),
            (1e21, "1000000000000000000000"),
            (1e23, "100000000000000000000000"),
            (0.1 + 0.2, "0.3"),
            (0.5, "0.5"),
            (1e-7, "0.0000001"),
            (-2.25, "-2.25"),
            (1152921504606846976.0, "1152921504606846976"),
            (9007199254740993.0, "9007199254740992"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (
                1.5e300,
                "1500000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(Number(v).to_string(), want, "{v}");
        }
    }

    #[test]
    fn number_parse_follows_go_grammar() {
        for ok in [
            "1", "-1", "+1.5", ".5", "5.", "1e3", "1E-3", "inf", "-Inf", "007",
        ] {
            assert!(Number::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "", " 1", "1 ", "0x10", "1_000", "e3", ".", "1e", "nan", "infinity", "1.2.3",
        ] {
            assert!(Number::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn go_float_text_matches_go() {
        let cases = [
            (1234567.0, 'g', None, "1.234567e+06"),
            (123456.0, 'g', None, "123456"),
            (0.0001, 'g', None, "0.0001"),
            (0.00001, 'g', None, "1e-05"),
            (1e21, 'G', None, "1E+21"),
            (0.00001234, 'g', None, "1.234e-05"),
            (1.0 / 3.0, 'g', Some(10), "0.3333333333"),
            (1234567.0, 'g', Some(3), "1.23e+06"),
            (100000.0, 'g', None, "100000"),
            (1000000.0, 'g', None, "1e+06"),
            (1234.5678, 'e', Some(6), "1.234568e+03"),
            (1e21, 'E', Some(6), "1.000000E+21"),
            (3.14159, 'f', Some(2), "3.14"),
            (2.5, 'f', Some(0), "2"),
            (0.0, 'e', Some(2), "0.00e+00"),
            (12345.0, 'g', Some(10), "12345"),
            (1e10, 'g', Some(10), "1e+10"),
            (1234567890123.0, 'g', Some(10), "1.23456789e+12"),
            (0.5, 'g', Some(10), "0.5"),
            (100.0, 'g', Some(10), "100"),
        ];
        for (v, verb, prec, want) in cases {
            assert_eq!(go_float_text(v, verb, prec), want, "{v} {verb} {prec:?}");
        }
    }

    #[test]
    fn type_names_print_as_packer() {
        assert_eq!(t("list(string)").name(), "list(string)");
        assert_eq!(
            t("object({b=number, a=list(map(bool))})").name(),
            "object({a=list(map(bool)),b=number})"
        );
        assert_eq!(
            t("tuple([string, number])").name(),
            "tuple([string,number])"
        );
        assert_eq!(
            Type::parse("list").unwrap_err(),
            "the `list` type constructor requires one argument specifying the element type"
        );
        assert_eq!(
            Type::parse("object({\"a b\"=string})").unwrap().name(),
            "object({\"a b\"=string})"
        );
        assert!(Type::parse("lst(string)").is_err());
        assert!(
            Type::parse("object({a=optional(string)})")
                .unwrap_err()
                .contains("valid only as a modifier")
        );
        assert_eq!(
            t("list(any)").friendly_name_for_constraint(),
            "list of any single type"
        );
        assert_eq!(t("map(string)").friendly_name(), "map of string");
    }

    #[test]
    fn convert_primitives() {
        assert_eq!(convert(&n(3.0), &Type::String).unwrap(), s("3"));
        assert_eq!(convert(&s("3"), &Type::Number).unwrap(), n(3.0));
        assert_eq!(
            convert(&s("false"), &Type::Bool).unwrap(),
            Value::Bool(false)
        );
        assert_eq!(convert(&s("1"), &Type::Bool).unwrap(), Value::Bool(true));
        assert_eq!(
            convert(&Value::Bool(false), &Type::String).unwrap(),
            s("false")
        );
        assert_eq!(convert(&Value::Null, &Type::String).unwrap(), Value::Null);
        assert_eq!(
            convert(&s("x"), &Type::Number).unwrap_err().message,
            "a number is required"
        );
        assert_eq!(
            convert(&s("True"), &Type::Bool).unwrap_err().message,
            "a bool is required; to convert from string, use lowercase \"true\""
        );
        assert_eq!(
            convert(&n(1.0), &Type::Bool).unwrap_err().message,
            "bool required"
        );
        assert_eq!(
            convert(&Value::Tuple(vec![]), &Type::String)
                .unwrap_err()
                .message,
            "string required"
        );
    }

    #[test]
    fn convert_tuple_to_list_unifies() {
        let v = Value::Tuple(vec![s("a"), s("b"), n(3.0)]);
        assert_eq!(
            convert(&v, &t("list(any)")).unwrap(),
            Value::List(vec![s("a"), s("b"), s("3")])
        );
        assert_eq!(
            convert(&v, &t("list(string)")).unwrap(),
            Value::List(vec![s("a"), s("b"), s("3")])
        );
        let mixed = Value::Tuple(vec![n(1.0), Value::Bool(true)]);
        assert_eq!(
            convert(&mixed, &t("list(any)")).unwrap_err().message,
            "all list elements must have the same type"
        );
        let bad = Value::Tuple(vec![s("a"), Value::Tuple(vec![])]);
        assert_eq!(
            convert(&bad, &t("list(string)")).unwrap_err().message,
            "element 1: string required"
        );
        let val_err = Value::Tuple(vec![n(1.0), s("x")]);
        let e = convert(&val_err, &t("list(number)")).unwrap_err();
        assert_eq!(e.message, "a number is required");
        assert_eq!(e.path, vec![PathStep::Index(1)]);
        assert_eq!(e.to_string(), "at [1]: a number is required");
        // Nested: the inner lists end up with different element types and
        // are unified afterwards.
        let nested = Value::Tuple(vec![Value::Tuple(vec![n(1.0)]), Value::Tuple(vec![s("a")])]);
        assert_eq!(
            convert(&nested, &t("list(list(any))")).unwrap(),
            Value::List(vec![Value::List(vec![s("1")]), Value::List(vec![s("a")])])
        );
        assert_eq!(
            convert(&Value::Tuple(vec![]), &t("list(string)")).unwrap(),
            Value::List(vec![])
        );
    }

    #[test]
    fn convert_to_set_dedups_and_orders() {
        let v = Value::Tuple(vec![s("c"), s("b"), s("b")]);
        assert_eq!(
            convert(&v, &t("set(any)")).unwrap(),
            Value::Set(vec![s("b"), s("c")])
        );
        let nums = Value::Tuple(vec![n(10.0), n(9.0), n(10.0)]);
        assert_eq!(
            convert(&nums, &t("set(number)")).unwrap(),
            Value::Set(vec![n(9.0), n(10.0)])
        );
        let strs = Value::Tuple(vec![n(10.0), n(9.0)]);
        assert_eq!(
            convert(&strs, &t("set(string)")).unwrap(),
            Value::Set(vec![s("10"), s("9")])
        );
        let with_null = Value::Tuple(vec![Value::Null, s("a")]);
        assert_eq!(
            convert(&with_null, &t("set(string)")).unwrap(),
            Value::Set(vec![s("a"), Value::Null])
        );
        let list = Value::List(vec![s("b"), s("a"), s("b")]);
        assert_eq!(
            convert(&list, &t("set(string)")).unwrap(),
            Value::Set(vec![s("a"), s("b")])
        );
        let set = Value::new_set(vec![s("b"), s("a")]);
        assert_eq!(
            convert(&set, &t("list(string)")).unwrap(),
            Value::List(vec![s("a"), s("b")])
        );
    }

    #[test]
    fn convert_objects_and_maps() {
        let o = obj(&[("a", s("foo")), ("b", Value::Bool(true))]);
        let want: BTreeMap<String, Value> =
            [("a".to_string(), s("foo")), ("b".to_string(), s("true"))].into();
        assert_eq!(
            convert(&o, &t("map(any)")).unwrap(),
            Value::Map(want.clone())
        );
        assert_eq!(convert(&o, &t("map(string)")).unwrap(), Value::Map(want));
        let o2 = obj(&[("name", s("x")), ("extra", n(1.0))]);
        assert_eq!(
            convert(&o2, &t("object({name=string})")).unwrap(),
            obj(&[("name", s("x"))])
        );
        assert_eq!(
            convert(&o2, &t("object({name=string,size=number,kind=string})"))
                .unwrap_err()
                .message,
            "attributes \"kind\" and \"size\" are required"
        );
        assert_eq!(
            convert(&o2, &t("object({name=string,size=number})"))
                .unwrap_err()
                .message,
            "attribute \"size\" is required"
        );
        assert_eq!(
            convert(
                &obj(&[("name", Value::Tuple(vec![]))]),
                &t("object({name=string})")
            )
            .unwrap_err()
            .message,
            "attribute \"name\": string required"
        );
        let m = Value::Map([("a".to_string(), s("1"))].into());
        assert_eq!(
            convert(&m, &t("object({a=number})")).unwrap(),
            obj(&[("a", n(1.0))])
        );
        assert_eq!(
            convert(&m, &t("object({b=number})")).unwrap_err().message,
            "map has no element for required attribute \"b\""
        );
        let mixed = obj(&[("a", n(1.0)), ("b", Value::Tuple(vec![]))]);
        assert_eq!(
            convert(&mixed, &t("map(any)")).unwrap_err().message,
            "all map elements must have the same type"
        );
        assert_eq!(
            convert(&mixed, &t("map(string)")).unwrap_err().message,
            "element \"b\": string required"
        );
    }

    #[test]
    fn convert_tuples_and_any() {
        let v = Value::Tuple(vec![s("1"), n(2.0)]);
        assert_eq!(
            convert(&v, &t("tuple([number,string])")).unwrap(),
            Value::Tuple(vec![n(1.0), s("2")])
        );
        assert_eq!(
            convert(&v, &t("tuple([number])")).unwrap_err().message,
            "tuple required"
        );
        assert_eq!(convert(&v, &Type::Any).unwrap(), v);
        assert_eq!(
            convert(&Value::List(vec![n(1.0)]), &t("tuple([number])"))
                .unwrap_err()
                .message,
            "tuple required"
        );
        assert_eq!(
            convert(&Value::List(vec![Value::Tuple(vec![])]), &t("list(string)"))
                .unwrap_err()
                .message,
            "incorrect list element type: string required"
        );
    }

    #[test]
    fn convert_list_of_objects_with_nulls_unifies() {
        let v = Value::Tuple(vec![obj(&[("a", Value::Null)]), obj(&[("a", s("x"))])]);
        assert_eq!(
            convert(&v, &t("list(any)")).unwrap(),
            Value::List(vec![obj(&[("a", Value::Null)]), obj(&[("a", s("x"))])])
        );
        // cty: an object and a null have no common element type.
        let v = Value::Tuple(vec![obj(&[("a", s("x"))]), Value::Null]);
        assert!(convert(&v, &t("list(any)")).is_err());
    }

    #[test]
    fn fast_path_agrees_with_the_general_path() {
        let values = [
            s("1"),
            n(2.0),
            Value::Bool(true),
            Value::Null,
            Value::Tuple(vec![s("b"), n(1.0), s("b")]),
            Value::Tuple(vec![n(3.0), Value::Null]),
            Value::List(vec![s("x")]),
            obj(&[("a", s("1")), ("b", Value::Tuple(vec![n(1.0)]))]),
            obj(&[
                ("name", s("x")),
                ("size", s("10")),
                ("extra", Value::Bool(false)),
            ]),
            Value::Map([("k".to_string(), s("true"))].into()),
            Value::Tuple(vec![obj(&[("a", n(1.0))]), obj(&[("a", s("2"))])]),
        ];
        let types = [
            "string",
            "number",
            "bool",
            "list(string)",
            "set(string)",
            "set(number)",
            "map(string)",
            "map(bool)",
            "object({a=string,b=list(number)})",
            "object({name=string,size=number})",
            "list(object({a=number}))",
            "tuple([string,number,string])",
        ];
        for v in &values {
            for ty in types {
                let t = t(ty);
                if let Some(fast) = fast_conv(v, &t) {
                    assert_eq!(Ok(fast), convert_general(v.clone(), &t), "{v:?} to {ty}");
                }
            }
        }
    }

    #[test]
    fn unify_prefers_string() {
        assert_eq!(unify(&[Type::Number, Type::String]), Some(Type::String));
        assert_eq!(unify(&[Type::Number, Type::Bool]), None);
        assert_eq!(unify_unsafe(&[Type::Number, Type::Bool]), None);
        assert_eq!(unify(&[Type::String, Type::Any]), Some(Type::Any));
        assert_eq!(unify_unsafe(&[Type::String, Type::Any]), Some(Type::String));
        assert_eq!(
            unify(&[t("list(number)"), t("list(string)")]),
            Some(t("list(string)"))
        );
        assert_eq!(
            unify(&[t("object({a=number})"), t("object({b=string})")]),
            Some(t("map(string)"))
        );
        assert_eq!(
            unify(&[t("tuple([number])"), t("tuple([string,string])")]),
            Some(t("list(string)"))
        );
        let (ty, vals) = unify_values(vec![n(1.0), s("a")]).unwrap();
        assert_eq!(ty, Type::String);
        assert_eq!(vals, vec![s("1"), s("a")]);
    }

    #[test]
    fn equality_is_cty_equality() {
        assert!(n(1.0).equals(&n(1.0)));
        assert!(!n(1.0).equals(&s("1")));
        assert!(Value::Null.equals(&Value::Null));
        assert!(!Value::Null.equals(&s("")));
        assert!(!Value::List(vec![n(1.0)]).equals(&Value::Tuple(vec![n(1.0)])));
        assert!(obj(&[("a", n(1.0))]).equals(&obj(&[("a", n(1.0))])));
        assert!(!obj(&[("a", n(1.0))]).equals(&obj(&[("b", n(1.0))])));
        assert!(Value::new_set(vec![s("a"), s("b")]).equals(&Value::new_set(vec![s("b"), s("a")])));
        assert!(n(0.0).equals(&n(-0.0)));
    }

    #[test]
    fn sets_of_structures_order_by_hash_serialisation() {
        let a = obj(&[("x", n(2.0))]);
        let b = obj(&[("x", n(10.0))]);
        // "<10;>" sorts before "<2;>"
        assert_eq!(
            Value::new_set(vec![a.clone(), b.clone(), a.clone()]),
            Value::Set(vec![b, a])
        );
        let bools = Value::new_set(vec![Value::Bool(true), Value::Bool(false)]);
        assert_eq!(
            bools,
            Value::Set(vec![Value::Bool(false), Value::Bool(true)])
        );
    }

    #[test]
    fn json_encoding_matches_cty() {
        let v = obj(&[
            ("b", Value::Tuple(vec![n(1.0), n(2.5), n(1e21)])),
            ("a", s("<x>&\n\u{1}")),
            ("c", Value::Null),
        ]);
        assert_eq!(
            v.to_json_string(),
            r#"{"a":"\u003cx\u003e\u0026\n\u0001","b":[1,2.5,1000000000000000000000],"c":null}"#
        );
        assert_eq!(n(0.1 + 0.2).to_json(), serde_json::json!(0.3));
        assert_eq!(n(3.0).to_json(), serde_json::json!(3));
    }

    #[test]
    fn value_types_are_inferred() {
        assert_eq!(
            Value::Tuple(vec![n(1.0), s("a")]).ty(),
            t("tuple([number,string])")
        );
        assert_eq!(Value::List(vec![]).ty(), t("list(any)"));
        assert_eq!(
            Value::List(vec![Value::Null, s("a")]).ty(),
            t("list(string)")
        );
        assert_eq!(obj(&[("a", Value::Null)]).ty(), t("object({a=any})"));
    }
}
