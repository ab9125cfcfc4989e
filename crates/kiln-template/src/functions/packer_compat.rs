//! The library held against Packer itself: a table of calls is evaluated
//! by `packer inspect` (each as a local `jsonencode(...)`, wrapped in
//! `try`) and by [`super::call`], and the JSON (or the failure) must agree.
//!
//! Runs where Packer 1.6.6 is installed (Debian's `packer` package); it
//! skips, saying so, elsewhere. Packer 1.6.6 predates some functions
//! (`regex`, `sum`, `templatefile`, ...) and some cty changes; the table
//! marks those rows.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::testing::ctx_in;
use super::{FuncError, call};
use crate::value::{Number, Value};

/// How a row relates to Packer 1.6.6.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Row {
    /// Both agree.
    Same,
    /// Packer 1.6.6 has no such function (it came later).
    Newer,
    /// 1.6.6 (cty 1.4) differs from current Packer, which kiln follows.
    Changed,
    /// kiln differs on purpose (see the module docs of `value.rs`).
    Diverges,
}

use Row::*;

/// (expression, relation to Packer 1.6.6)
const TABLE: &[(&str, Row)] = &[
    // numeric
    ("abs(-12.4)", Same),
    ("abs(\"-3\")", Same),
    ("ceil(5.1)", Same),
    ("ceil(-0.5)", Same),
    ("floor(-4.1)", Same),
    ("log(16, 2)", Same),
    ("log(50, 10)", Diverges),
    ("log(-1, 10)", Same),
    ("max(12, 54, 3)", Same),
    ("max(\"7\", 5)", Same),
    ("max()", Same),
    ("min(12, 54, 3)", Same),
    ("parseint(\"100\", 10)", Same),
    ("parseint(\"FF\", 16)", Same),
    ("parseint(\"-10\", 16)", Same),
    ("parseint(\"aA\", 62)", Same),
    ("parseint(\"FF\", 10)", Same),
    ("parseint(\"1\", 1)", Same),
    ("parseint(1, 10)", Same),
    ("pow(3, 2)", Same),
    ("pow(2, -1)", Same),
    ("pow(2, 0.5)", Diverges),
    ("signum(-13)", Same),
    ("signum(0)", Same),
    ("signum(1.5)", Same),
    // strings
    ("chomp(\"hello\\n\\r\\n\")", Same),
    ("chomp(\"a\\nb\")", Same),
    ("indent(2, \"[\\n  foo,\\n]\\n\")", Same),
    ("join(\", \", [\"foo\", \"bar\"])", Same),
    ("join(\"-\", [\"a\"], [], [\"b\", \"c\"])", Same),
    ("join(\",\", [1, true])", Same),
    ("join(\",\")", Same),
    ("join(\",\", [\"a\", null])", Same),
    ("lower(\"HELLO АЛЛО\")", Same),
    ("upper(\"hello алло straße\")", Same),
    ("upper(5)", Same),
    ("upper(null)", Same),
    ("upper([])", Same),
    ("replace(\"1 + 2 + 3\", \"+\", \"-\")", Same),
    ("replace(\"hello world\", \"/w.*d/\", \"x\")", Same),
    ("split(\",\", \"foo,bar,baz\")", Same),
    ("split(\",\", \"\")", Same),
    ("split(\"\", \"abc\")", Same),
    ("strrev(\"hello\")", Same),
    ("strrev(\"a☃\")", Same),
    ("substr(\"hello world\", 1, 4)", Same),
    ("substr(\"hello world\", -5, -1)", Same),
    ("substr(\"hello world\", 6, 0)", Same),
    ("substr(\"hello world\", 20, 1)", Same),
    ("substr(\"hello world\", -1, 0)", Same),
    ("substr(\"🤔🤷\", 0, 1)", Same),
    ("title(\"hello world-wide_web x.y\")", Same),
    ("trim(\"?!hello?!\", \"!?\")", Same),
    ("trimprefix(\"helloworld\", \"hello\")", Same),
    ("trimsuffix(\"helloworld\", \"world\")", Same),
    ("trimspace(\"  hello\\n\\n\")", Same),
    (
        "regex_replace(\"2019-02-01\", \"(\\\\d+)-(\\\\d+)-(\\\\d+)\", \"$3/$2/$1\")",
        Same,
    ),
    ("regex_replace(\"hello\", \"(\", \"\")", Same),
    (
        "regex(\"[a-z]+\", \"53453453.345345aaabbbccc23454\")",
        Newer,
    ),
    ("regexall(\"[a-z]+\", \"1234abcd5678efgh9\")", Newer),
    ("startswith(\"hello\", \"he\")", Newer),
    ("endswith(\"hello\", \"lo\")", Newer),
    ("strcontains(\"hello\", \"ell\")", Newer),
    // format
    ("format(\"Hello, %s!\", \"Ander\")", Same),
    (
        "format(\"%d|%05d|%-5d|%+d|%x|%X|%#x|%o|%#o|%b\", 42, 42, 42, 5, 255, 255, 255, 8, 8, 5)",
        Same,
    ),
    (
        "format(\"%v|%v|%v|%v|%v\", 1234567, 123456, 0.0001, 0.00001, true)",
        Same,
    ),
    (
        "format(\"%f|%.2f|%8.3f|%-8.3f|%08.3f|% f|%e|%E|%g|%G\", 1, 3.14159, -3.14159, 3.14159, -3.14159, 1, 1234.5678, 1e21, 0.00001234, 1e21)",
        Same,
    ),
    (
        "format(\"%.3s|%5s|%-5s|%05s|%q\", \"abcdef\", \"ab\", \"ab\", \"ab\", \"<a>\")",
        Same,
    ),
    (
        "format(\"%t|%v|%#v|%v\", \"true\", null, \"x\", [1, {a = 2}])",
        Same,
    ),
    ("format(\"%[2]s %[1]s %s\", \"a\", \"b\")", Same),
    ("format(\"%d\", 1.5)", Same),
    ("format(\"%s\", \"a\", \"b\")", Same),
    ("format(\"%z\", 1)", Same),
    ("format(\"abc%\")", Same),
    ("format(\"%.3d|%8.3d|% d|%.0d\", 7, 7, 7, 0)", Same),
    (
        "formatlist(\"Hello, %s!\", [\"Valentina\", \"Ander\"])",
        Same,
    ),
    (
        "formatlist(\"%s, %s!\", \"Salutations\", [\"Valentina\", \"Ander\"])",
        Same,
    ),
    ("formatlist(\"%s%s\", [\"a\"], [\"b\", \"c\"])", Same),
    // collections
    ("chunklist([\"a\", \"b\", \"c\", \"d\", \"e\"], 2)", Same),
    ("chunklist([\"a\", \"b\"], 0)", Same),
    ("coalesce(\"\", \"b\")", Same),
    ("coalesce(1, \"\")", Same),
    ("coalesce(null, \"x\")", Same),
    ("coalesce(1, true)", Same),
    ("coalescelist([], [\"c\", \"d\"])", Same),
    ("compact([\"a\", \"\", \"b\", null, \"c\"])", Same),
    ("concat([\"a\", \"\"], [\"b\", \"c\"])", Same),
    ("concat([\"a\"], \"b\")", Same),
    ("contains([\"a\", \"b\"], \"a\")", Same),
    ("contains([1], \"1\")", Same),
    ("distinct([\"a\", \"b\", \"a\", \"c\", \"b\"])", Same),
    ("element([\"a\", \"b\", \"c\"], 3)", Same),
    ("element([], 0)", Same),
    ("flatten([[\"a\", \"b\"], [], [\"c\", [\"d\"]]])", Same),
    ("index([\"a\", \"b\", \"c\"], \"b\")", Changed),
    ("index([\"a\"], \"z\")", Same),
    ("index([[1], [2]], [2])", Changed),
    ("keys({a = 1, c = 2, d = 3})", Same),
    ("values({a = 3, c = 2, d = 1})", Same),
    ("length([\"a\", \"b\"])", Same),
    ("length({a = 1})", Same),
    ("length(\"hello\")", Same),
    ("lookup({a = \"ay\", b = \"bee\"}, \"a\", \"what?\")", Same),
    ("lookup({a = \"ay\", b = \"bee\"}, \"c\", \"what?\")", Same),
    (
        "merge({a = \"b\", c = \"d\"}, {e = \"f\", c = \"z\"})",
        Same,
    ),
    ("merge({a = 1}, null)", Same),
    ("merge([\"a\"])", Same),
    ("range(3)", Same),
    ("range(1, 4)", Same),
    ("range(1, 8, 2)", Same),
    ("range(1, 4, 0.5)", Same),
    ("range(4, 1)", Same),
    ("range(-3)", Same),
    ("range(1, 4, -1)", Same),
    ("range(2000)", Same),
    ("reverse([1, 2, 3])", Same),
    (
        "setintersection([\"a\", \"b\"], [\"b\", \"c\"], [\"b\", \"d\"])",
        Same,
    ),
    ("setunion([\"a\", \"b\"], [\"b\", \"c\"], [\"d\"])", Same),
    ("setunion([\"b\"], [10, 9])", Same),
    (
        "setproduct([\"development\", \"staging\"], [\"app1\", \"app2\"])",
        Same,
    ),
    ("setproduct([\"a\"], [])", Same),
    ("slice([\"a\", \"b\", \"c\", \"d\"], 1, 3)", Same),
    ("slice([\"a\"], 0, 2)", Same),
    ("sort([\"e\", \"d\", \"a\", \"x\"])", Same),
    ("sort([10, 9, 1])", Same),
    ("zipmap([\"a\", \"b\"], [1, 2])", Same),
    ("zipmap([\"a\"], [1, 2])", Same),
    ("alltrue([\"true\", true])", Newer),
    ("anytrue([true, false])", Newer),
    ("sum([10, 13, 6, 4.5])", Newer),
    // encoding
    ("base64encode(\"Hello World\")", Same),
    ("base64decode(\"SGVsbG8gV29ybGQ=\")", Same),
    ("base64decode(\"SGVsbG8gV29ybGQ\")", Same),
    ("csvdecode(\"a,b,c\\n1,2,3\\n4,5,6\")", Same),
    ("csvdecode(\"a,b\\n1,2,3\")", Same),
    (
        "csvdecode(\"a,b\\n\\\"x,y\\\",\\\"say \\\"\\\"hi\\\"\\\"\\\"\")",
        Same,
    ),
    (
        "jsondecode(\"{\\\"hello\\\": \\\"world\\\", \\\"n\\\": [1, true, null]}\")",
        Same,
    ),
    ("jsondecode(\"{\")", Same),
    (
        "jsonencode({a = \"<x>&\", b = [1, 2.5, 1e21], c = null})",
        Same,
    ),
    ("urlencode(\"Hello World! ☃ a-_.~/\")", Same),
    (
        "yamldecode(\"a: 1\\nb: [x, 'y', yes, ~]\\nc: {d: 2001-12-14}\")",
        Same,
    ),
    ("yamldecode(\"---\\ntrue\\n---\\nfalse\")", Same),
    (
        "yamlencode({foo = [1, 2, 3], bar = \"baz\", multi = \"a\\nb\\n\", empty = []})",
        Same,
    ),
    ("yamlencode(1)", Same),
    ("yamlencode(\"hello\")", Same),
    ("textencodebase64(\"Hello World\", \"UTF-16LE\")", Newer),
    ("base64gzip(\"test\")", Newer),
    // filesystem (pure ones)
    ("basename(\"foo/bar/baz.txt\")", Same),
    ("basename(\"/\")", Same),
    ("dirname(\"foo/bar/baz.txt\")", Same),
    ("dirname(\"baz.txt\")", Same),
    ("abspath(\"/a/../b/\")", Same),
    // hashes and ids
    ("md5(\"hello world\")", Same),
    ("sha1(\"hello world\")", Same),
    ("sha256(\"hello world\")", Same),
    ("sha512(\"hello world\")", Same),
    ("uuidv5(\"dns\", \"www.terraform.io\")", Same),
    ("uuidv5(\"url\", \"https://www.terraform.io/\")", Same),
    // date and time
    (
        "formatdate(\"DD MMM YYYY hh:mm ZZZ\", \"2018-01-02T23:12:01Z\")",
        Same,
    ),
    (
        "formatdate(\"EEEE, DD-MMM-YY hh:mm:ss ZZZ\", \"2018-01-02T23:12:01-08:00\")",
        Same,
    ),
    (
        "formatdate(\"HH:mmaa h'h'mm Z ZZZZZ\", \"2018-01-02T23:12:01+05:30\")",
        Same,
    ),
    ("formatdate(\"YYYY\", \"2018-01-02\")", Same),
    ("formatdate(\"YYY\", \"2018-01-02T00:00:00Z\")", Same),
    ("timeadd(\"2017-11-22T00:00:00Z\", \"10m\")", Same),
    (
        "timeadd(\"2017-11-22T00:00:00+05:00\", \"-1h30m1.5s\")",
        Same,
    ),
    ("timeadd(\"2017-11-22T00:00:00Z\", \"1d\")", Same),
    ("rfc3339_parse(\"2023-07-25T23:43:16-07:00\")", Newer),
    // IP networks
    ("cidrhost(\"10.12.112.0/20\", 16)", Same),
    ("cidrhost(\"10.12.112.0/20\", 268)", Same),
    ("cidrhost(\"10.0.0.0/24\", -1)", Same),
    ("cidrhost(\"10.0.0.0/24\", 256)", Same),
    ("cidrhost(\"fd00:fd12:3456:7890:00a2::/72\", 34)", Same),
    ("cidrnetmask(\"172.16.0.0/12\")", Same),
    ("cidrnetmask(\"fd00::/64\")", Same),
    ("cidrsubnet(\"172.16.0.0/12\", 4, 2)", Same),
    ("cidrsubnet(\"fd00:fd12:3456:7890::/56\", 16, 162)", Same),
    ("cidrsubnet(\"10.1.2.0/24\", 4, 16)", Same),
    ("cidrsubnets(\"10.1.0.0/16\", 4, 4, 8, 4)", Same),
    (
        "cidrsubnets(\"fd00:fd12:3456:7890::/56\", 16, 16, 16, 32)",
        Same,
    ),
    ("cidrsubnets(\"10.0.0.0/30\", 1, 1, 1)", Same),
    // more edge cases
    ("setunion([{a = 1}], [{a = 10}], [{a = 2}])", Changed),
    ("setunion([[1, 2]], [[10]], [[1, 2]])", Same),
    ("setunion([true], [false])", Same),
    ("setproduct([\"b\", \"a\"], [2, 1])", Same),
    ("distinct([1, \"1\"])", Same),
    ("concat([1], [\"a\"])", Same),
    ("flatten([[1], \"a\", []])", Same),
    ("flatten([])", Same),
    ("chunklist([1, \"a\"], 1)", Same),
    ("coalescelist([], [])", Same),
    ("compact([1, \"\"])", Same),
    ("keys({})", Same),
    ("values({})", Same),
    ("lookup({a = 1}, \"b\", \"x\")", Same),
    ("merge({a = 1}, {a = \"x\"})", Same),
    ("merge({}, {})", Same),
    ("sort([\"b\", \"a\", \"B\", \"é\", \"e\"])", Same),
    ("split(\",\", \"a,,b\")", Same),
    ("replace(\"aaa\", \"a\", \"bb\")", Same),
    ("substr(\"abc\", 1, 100)", Same),
    ("trim(\"  x  \", \"\")", Same),
    ("join(\"\", [])", Same),
    ("element([\"a\", \"b\"], 5)", Same),
    ("slice([1, 2, 3], 0, 0)", Same),
    ("range(0)", Same),
    ("range(0, -3)", Same),
    ("range(1, 1)", Same),
    ("range(0, 5, 0)", Same),
    ("reverse([\"a\"])", Same),
    ("zipmap([\"a\", \"a\"], [1, 2])", Same),
    ("contains([[1]], [1])", Same),
    ("abs(-0)", Same),
    ("ceil(1e21)", Changed),
    ("max(1, \"x\")", Same),
    ("parseint(\"0x10\", 16)", Same),
    ("parseint(\"z\", 36)", Same),
    ("parseint(\"Z\", 62)", Same),
    ("signum(-0)", Same),
    ("pow(0, 0)", Same),
    ("strrev(\"\")", Same),
    ("substr(\"\", 0, 1)", Same),
    ("upper(true)", Same),
    ("chomp(\"\")", Same),
    ("indent(0, \"a\\nb\")", Same),
    ("title(\"ǆemal ŉ\")", Same),
    ("lower(\"ΟΔΟΣ\")", Same),
    ("jsonencode(\"\\u2028 \\t é 🤔\")", Same),
    ("format(\"%q\", \"é🤔\\t\")", Same),
    ("format(\"%-8v|%8v\", \"ab\", 1.5)", Same),
    ("format(\"%x\", \"255\")", Same),
    ("format(\"%b\", -5)", Same),
    ("format(\"%o|%x\", 1e20, 1e20)", Same),
    (
        "format(\"%e|%.0e|%g|%G|%10.4g|\", 0, 12345, 1e-7, 1e-7, 3.14159)",
        Same,
    ),
    ("format(\"%v\", [\"a\", 1, true, null])", Same),
    ("format(\"%s\", true)", Same),
    ("format(\"%t\", 1)", Same),
    ("formatlist(\"%d-%s\", [1, 2], [\"a\", \"b\"])", Same),
    (
        "formatdate(\"D/M/YY h:m:s\", \"2018-01-02T03:04:05.999999999Z\")",
        Same,
    ),
    ("formatdate(\"DD\", \"2018-02-30T00:00:00Z\")", Same),
    ("formatdate(\"MMMM EEEE\", \"2024-02-29T12:00:00Z\")", Same),
    ("timeadd(\"2017-11-22T00:00:00Z\", \"-0\")", Same),
    ("timeadd(\"2017-11-22T00:00:00Z\", \"1.5h\")", Same),
    ("timeadd(\"2017-11-22T00:00:00.5Z\", \"1s\")", Same),
    ("cidrhost(\"192.168.0.0/16\", 257)", Same),
    ("cidrsubnet(\"10.0.0.0/8\", 8, 255)", Same),
    ("csvdecode(\"a\\n1\\n\\n2\\n\")", Same),
    ("csvdecode(\"a,b\\n1,\\\"2\\n3\\\"\")", Same),
    ("jsondecode(\"[1,2,{\\\"a\\\":[]}]\")", Same),
    (
        "yamldecode(\"a: !!str 1\\nb: 0x10\\nc: 1_000\\nd: .5\\ne: 0o17\")",
        Same,
    ),
    ("yamldecode(\"- &a x\\n- *a\\n- {<<: {k: v}, j: w}\")", Same),
    ("yamldecode(\"\")", Same),
    (
        "yamldecode(\"a: 0b101\\nb: -0b11\\nc: +12\\nd: 0777\\ne: \\\"<<\\\"\\nf: <<\\ng: 1_0.5\")",
        Same,
    ),
    ("yamldecode(\"a: &a {x: 1}\\nb:\\n  <<: [*a]\")", Same),
    (
        "yamldecode(\"a: &a {x: 1}\\nb:\\n  <<: *a\\n  y: 2\")",
        Same,
    ),
    (
        "yamldecode(\"a: !!int 0x1F\\nb: !!float 1\\nc: !!bool yes\")",
        Same,
    ),
    ("yamldecode(\"y: n\")", Same),
    ("yamlencode([{a = 1, b = [2]}, [3, [4]]])", Same),
    ("yamlencode({\"key with: colon\" = \"v\"})", Same),
    ("yamlencode(\"line1\\nline2  \\n\")", Same),
    (
        "yamlencode({k = \"word word word word word word word word word word word word word word word word word word word word word word\"})",
        Same,
    ),
    ("yamlencode(\"tab\\there é 🤔 \\u00a0\")", Same),
    ("yamlencode(\"\\n\\nx\")", Same),
    ("yamlencode(null)", Same),
    ("yamlencode({})", Same),
    ("urlencode(\"~!*'();:@&=+$,/?#[]\")", Same),
    ("base64encode(\"☃\")", Same),
    ("md5(\"☃\")", Same),
    (
        "uuidv5(\"6ba7b810-9dad-11d1-80b4-00c04fd430c8\", \"x\")",
        Same,
    ),
    ("uuidv5(\"nope\", \"x\")", Same),
    ("bcrypt(\"x\", 4, 5)", Same),
    // files below the template directory
    ("file(\"data.txt\")", Same),
    ("file(\"nope.txt\")", Same),
    ("fileexists(\"data.txt\")", Same),
    ("fileexists(\"nope.txt\")", Same),
    ("fileexists(\"sub\")", Same),
    ("fileset(\".\", \"*.txt\")", Same),
    ("fileset(\".\", \"**/*.md\")", Same),
    ("fileset(\"sub\", \"**\")", Same),
    ("fileset(\".\", \"{data,nope}.*\")", Same),
    // contextual
    ("vault(\"secret/x\", \"k\")", Same),
];

/// `convert(value, type)` rows for [`crate::value::convert`].
const CONVERSIONS: &[(&str, &str, Row)] = &[
    ("[1, \"a\"]", "list(string)", Same),
    ("[1, \"a\"]", "list(any)", Same),
    ("[1, true]", "list(any)", Same),
    ("[1, true]", "tuple([string, string])", Same),
    ("[1, true]", "tuple([string])", Same),
    ("[\"c\", \"b\", \"b\"]", "set(string)", Same),
    ("[10, 9, 1]", "set(number)", Same),
    ("[10, 9, 1]", "set(string)", Same),
    ("[true, false, true]", "set(bool)", Same),
    ("[\"a\", null]", "set(string)", Same),
    ("[\"b\", \"a\"]", "set(any)", Same),
    ("{a = \"foo\", b = true}", "map(any)", Same),
    ("{a = \"foo\", b = true}", "map(string)", Same),
    ("{a = 1, b = [1]}", "map(any)", Same),
    ("{a = 1, b = [1]}", "map(string)", Same),
    ("{name = \"x\", extra = 1}", "object({name = string})", Same),
    (
        "{name = \"x\"}",
        "object({name = string, size = number})",
        Same,
    ),
    ("{a = \"1\"}", "object({a = number})", Same),
    ("\"3\"", "number", Same),
    ("\"1e3\"", "number", Same),
    ("\"x\"", "number", Same),
    ("\" 1\"", "number", Same),
    ("\"0x10\"", "number", Same),
    ("\"true\"", "bool", Same),
    ("\"1\"", "bool", Same),
    ("\"True\"", "bool", Same),
    ("3", "string", Same),
    ("false", "string", Same),
    ("1", "bool", Same),
    ("[]", "string", Same),
    ("null", "string", Changed),
    ("[[1], [\"a\"]]", "list(list(any))", Changed),
    ("[{a = 1}, {a = \"x\"}]", "list(object({a = string}))", Same),
    ("[{a = 1}, {b = 2}]", "list(any)", Same),
    ("[{a = 1}, {a = \"x\"}]", "list(any)", Same),
    ("[{a = 1}, null]", "list(any)", Changed),
    ("[null, null]", "list(any)", Same),
    ("[]", "list(string)", Same),
    ("{}", "map(string)", Same),
    ("[[1, 2], [3]]", "set(list(number))", Same),
    ("[{a = 2}, {a = 10}]", "set(object({a = number}))", Same),
    ("{a = [\"x\", \"x\"]}", "map(set(string))", Same),
    ("[1.5, \"2\"]", "list(number)", Same),
    ("[[\"b\"], [\"a\", \"b\"]]", "list(set(string))", Same),
    ("{a = {b = 1}}", "map(map(string))", Same),
    ("[1, 2]", "map(number)", Same),
    ("{a = 1}", "list(number)", Same),
];

/// Evaluates `expr` with the library: literals and calls only.
fn eval(expr: &str, dir: &Path) -> Result<Value, String> {
    let mut p = Parser {
        s: expr.as_bytes(),
        i: 0,
        dir,
    };
    let v = p.expr()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing input in {expr:?}"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    dir: &'a Path,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::String),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                while !self.eat(b']') {
                    items.push(self.expr()?);
                    self.eat(b',');
                }
                Ok(Value::Tuple(items))
            }
            Some(b'{') => {
                self.i += 1;
                let mut attrs = BTreeMap::new();
                while !self.eat(b'}') {
                    let key = if self.peek() == Some(b'"') {
                        self.string()?
                    } else {
                        self.ident()
                    };
                    if !self.eat(b'=') {
                        return Err("expected `=`".into());
                    }
                    attrs.insert(key, self.expr()?);
                    self.eat(b',');
                }
                Ok(Value::Object(attrs))
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                self.i += 1;
                while let Some(&c) = self.s.get(self.i) {
                    let exp_sign =
                        (c == b'-' || c == b'+') && matches!(self.s[self.i - 1], b'e' | b'E');
                    if !(c.is_ascii_alphanumeric() || c == b'.' || exp_sign) {
                        break;
                    }
                    self.i += 1;
                }
                let text =
                    std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                Number::parse(text)
                    .map(Value::Number)
                    .ok_or_else(|| format!("bad number {text}"))
            }
            Some(_) => {
                let name = self.ident();
                match name.as_str() {
                    "true" => return Ok(Value::Bool(true)),
                    "false" => return Ok(Value::Bool(false)),
                    "null" => return Ok(Value::Null),
                    _ => {}
                }
                if !self.eat(b'(') {
                    return Err(format!("expected a call to {name}"));
                }
                let mut args = Vec::new();
                while !self.eat(b')') {
                    args.push(self.expr()?);
                    self.eat(b',');
                }
                call(&name, args, &ctx_in(self.dir)).map_err(|e: FuncError| e.message)
            }
            None => Err("unexpected end".into()),
        }
    }

    fn ident(&mut self) -> String {
        self.ws();
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn string(&mut self) -> Result<String, String> {
        self.ws();
        self.i += 1;
        let mut out = Vec::new();
        while let Some(&c) = self.s.get(self.i) {
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                b'\\' => {
                    let e = self.s.get(self.i).copied().ok_or("dangling escape")?;
                    self.i += 1;
                    if e == b'u' {
                        let hex = std::str::from_utf8(
                            self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?,
                        )
                        .map_err(|e| e.to_string())?;
                        let c = u32::from_str_radix(hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or("bad \\u escape")?;
                        self.i += 4;
                        out.extend_from_slice(c.to_string().as_bytes());
                        continue;
                    }
                    out.push(match e {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        other => other,
                    });
                }
                c => out.push(c),
            }
        }
        Err("unterminated string".into())
    }
}

/// Packer's results: local name → the JSON text, or `None` for an error.
fn packer_results(dir: &Path, exprs: &[&str]) -> Result<BTreeMap<String, Option<String>>, String> {
    let mut src = String::from("locals {\n");
    for (i, e) in exprs.iter().enumerate() {
        src.push_str(&format!("  r{i} = try(jsonencode({e}), \"<error>\")\n"));
    }
    src.push_str("}\nsource \"null\" \"x\" { communicator = \"none\" }\nbuild { sources = [\"source.null.x\"] }\n");
    std::fs::write(dir.join("compat.pkr.hcl"), src).map_err(|e| e.to_string())?;
    let out = Command::new("packer")
        .arg("inspect")
        .arg(dir)
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "packer inspect failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut results = BTreeMap::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("local.") else {
            continue;
        };
        let Some((name, value)) = rest.split_once(": ") else {
            continue;
        };
        let text: String = serde_json::from_str(value).map_err(|e| format!("{line}: {e}"))?;
        results.insert(name.to_string(), (text != "<error>").then_some(text));
    }
    Ok(results)
}

fn packer_version() -> Option<String> {
    let out = Command::new("packer")
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn functions_agree_with_packer_1_6_6() {
    let Some(version) = packer_version() else {
        println!("skipped: `packer` is not installed (apt-get install packer gives 1.6.6)");
        return;
    };
    if !version.starts_with("Packer v1.6.6") {
        println!("skipped: the table describes Packer 1.6.6, found {version}");
        return;
    }
    let rows: Vec<(&str, Row)> = TABLE.iter().copied().filter(|(_, r)| *r != Newer).collect();
    let exprs: Vec<&str> = rows.iter().map(|(e, _)| *e).collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.txt"), "some data\n").unwrap();
    std::fs::create_dir_all(dir.path().join("sub/deep")).unwrap();
    std::fs::write(dir.path().join("sub/x.md"), "x").unwrap();
    std::fs::write(dir.path().join("sub/deep/y.md"), "y").unwrap();
    let packer = packer_results(dir.path(), &exprs).unwrap();
    let mut failures = Vec::new();
    let mut agreed = 0;
    for (i, (expr, row)) in rows.iter().enumerate() {
        let theirs = packer.get(&format!("r{i}")).cloned().unwrap_or(None);
        let ours = eval(expr, dir.path()).map(|v| v.to_json_string()).ok();
        let same = theirs == ours;
        match (row, same) {
            (Same, true) | (Changed | Diverges, false) => agreed += 1,
            (Same, false) => {
                failures.push(format!("{expr}\n  packer: {theirs:?}\n  kiln:   {ours:?}"))
            }
            (Changed | Diverges, true) => failures.push(format!(
                "{expr}: marked as differing but both give {ours:?}"
            )),
            (Newer, _) => {}
        }
    }
    // Rows for functions 1.6.6 lacks still have to run here.
    for (expr, _) in TABLE.iter().filter(|(_, r)| *r == Newer) {
        assert!(eval(expr, dir.path()).is_ok(), "{expr} fails in kiln");
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows differ from Packer:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    println!("{agreed} expressions agree with {version}");
}

#[test]
fn conversions_agree_with_packer_1_6_6() {
    let Some(version) = packer_version() else {
        println!("skipped: `packer` is not installed (apt-get install packer gives 1.6.6)");
        return;
    };
    if !version.starts_with("Packer v1.6.6") {
        println!("skipped: the table describes Packer 1.6.6, found {version}");
        return;
    }
    let exprs: Vec<String> = CONVERSIONS
        .iter()
        .map(|(v, t, _)| format!("convert({v}, {t})"))
        .collect();
    let refs: Vec<&str> = exprs.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let packer = packer_results(dir.path(), &refs).unwrap();
    let mut failures = Vec::new();
    for (i, (value, ty, row)) in CONVERSIONS.iter().enumerate() {
        let theirs = packer.get(&format!("r{i}")).cloned().unwrap_or(None);
        let v = eval(value, dir.path()).unwrap();
        let t = crate::value::Type::parse(ty).unwrap();
        let ours = crate::value::convert(&v, &t)
            .map(|v| v.to_json_string())
            .ok();
        // Changed: hcl's `convert` refuses null in 1.6.6; cty 1.4 did not
        // unify converted elements nor refuse objects mixed with nulls.
        if (theirs == ours) != (*row == Same) {
            failures.push(format!(
                "convert({value}, {ty})\n  packer: {theirs:?}\n  kiln:   {ours:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "conversions differ from Packer:\n{}",
        failures.join("\n")
    );
    println!("{} conversions agree with {version}", CONVERSIONS.len());
}
