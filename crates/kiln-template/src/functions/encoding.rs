//! Encoding functions: base64decode, base64encode, base64gzip, csvdecode,
//! jsondecode, jsonencode, textdecodebase64, textencodebase64, urlencode,
//! yamldecode, yamlencode.

use std::collections::BTreeMap;
use std::io::Write as _;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{Fail, Func, FuncCtx, P, p, p_null, str_arg, yaml};
use crate::value::{Value, go_quote};

pub(crate) const FUNCS: &[Func] = &[
    Func {
        name: "base64decode",
        params: &[p("str", P::String)],
        var_param: None,
        imp: base64decode,
    },
    Func {
        name: "base64encode",
        params: &[p("str", P::String)],
        var_param: None,
        imp: base64encode,
    },
    Func {
        name: "base64gzip",
        params: &[p("str", P::String)],
        var_param: None,
        imp: base64gzip,
    },
    Func {
        name: "csvdecode",
        params: &[p("str", P::String)],
        var_param: None,
        imp: csvdecode,
    },
    Func {
        name: "jsondecode",
        params: &[p("str", P::String)],
        var_param: None,
        imp: jsondecode,
    },
    Func {
        name: "jsonencode",
        params: &[p_null("val", P::Any)],
        var_param: None,
        imp: jsonencode,
    },
    Func {
        name: "textdecodebase64",
        params: &[p("source", P::String), p("encoding", P::String)],
        var_param: None,
        imp: textdecodebase64,
    },
    Func {
        name: "textencodebase64",
        params: &[p("string", P::String), p("encoding", P::String)],
        var_param: None,
        imp: textencodebase64,
    },
    Func {
        name: "urlencode",
        params: &[p("str", P::String)],
        var_param: None,
        imp: urlencode,
    },
    Func {
        name: "yamldecode",
        params: &[p("src", P::String)],
        var_param: None,
        imp: yamldecode,
    },
    Func {
        name: "yamlencode",
        params: &[p_null("value", P::Any)],
        var_param: None,
        imp: yamlencode,
    },
];

/// Go's `base64.StdEncoding`: padding required, trailing bits not checked.
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Decodes base64 as Go's `StdEncoding.DecodeString` (which skips `\r`
/// and `\n`).
pub(crate) fn go_base64_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if s.contains(['\r', '\n']) {
        let cleaned: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        GO_STD_BASE64.decode(cleaned)
    } else {
        GO_STD_BASE64.decode(s)
    }
}

pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    GO_STD_BASE64.encode(bytes)
}

fn base64decode(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let s = str_arg(&args, 0)?;
    let bytes = go_base64_decode(s)
        .map_err(|_| Fail::call(format!("failed to decode base64 data '{s}'")))?;
    String::from_utf8(bytes).map(Value::String).map_err(|_| {
        Fail::call("the result of decoding the the provided string is not valid UTF-8")
    })
}

fn base64encode(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(base64_encode(str_arg(&args, 0)?.as_bytes())))
}

fn base64gzip(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let s = str_arg(&args, 0)?;
    let mut gz = flate2::GzBuilder::new()
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(s.as_bytes())
        .map_err(|e| Fail::call(format!("failed to write gzip raw data: {e}")))?;
    let bytes = gz
        .finish()
        .map_err(|e| Fail::call(format!("failed to close gzip writer: {e}")))?;
    Ok(Value::String(base64_encode(&bytes)))
}

fn jsonencode(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(args[0].to_json_string()))
}

fn jsondecode(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let s = str_arg(&args, 0)?;
    let json: serde_json::Value =
        serde_json::from_str(s).map_err(|e| Fail::arg(0, json_error(&e)))?;
    Ok(Value::from_json(&json))
}

fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => "unexpected end of JSON input".into(),
        _ => format!("invalid JSON: {e}"),
    }
}

/// Go's `url.QueryEscape`.
fn urlencode(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let s = str_arg(&args, 0)?;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push_str(&format!("{b:02X}"));
            }
        }
    }
    Ok(Value::String(out))
}

fn yamldecode(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    yaml::decode(str_arg(&args, 0)?).map_err(|e| Fail::arg(0, e))
}

fn yamlencode(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(yaml::encode(&args[0])))
}

// ---------------------------------------------------------------------------
// CSV (Go's encoding/csv, as cty's csvdecode drives it)
// ---------------------------------------------------------------------------

fn csvdecode(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let s = str_arg(&args, 0)?;
    let mut reader = CsvReader::new(s);
    let headers = match reader.record(None) {
        Ok(Some(h)) => h,
        Ok(None) => return Err(Fail::call("missing header line")),
        Err(e) => return Err(Fail::call(e)),
    };
    let mut seen = std::collections::BTreeSet::new();
    for h in &headers {
        if !seen.insert(h.as_str()) {
            return Err(Fail::call(format!("duplicate column name {}", go_quote(h))));
        }
    }
    let mut rows = Vec::new();
    while let Some(cols) = reader.record(Some(headers.len())).map_err(Fail::call)? {
        let row: BTreeMap<String, Value> = headers
            .iter()
            .cloned()
            .zip(cols.into_iter().map(Value::String))
            .collect();
        rows.push(Value::Object(row));
    }
    Ok(Value::List(rows))
}

struct CsvReader<'a> {
    rest: &'a str,
    line: usize,
}

const ERR_BARE_QUOTE: &str = "bare \" in non-quoted-field";
const ERR_QUOTE: &str = "extraneous or missing \" in quoted-field";

impl<'a> CsvReader<'a> {
    fn new(s: &'a str) -> Self {
        CsvReader { rest: s, line: 0 }
    }

    /// The next line with its newline normalised to `\n` (none at EOF).
    fn read_line(&mut self) -> Option<String> {
        if self.rest.is_empty() {
            return None;
        }
        self.line += 1;
        let (line, rest) = match self.rest.find('\n') {
            Some(i) => (&self.rest[..=i], &self.rest[i + 1..]),
            None => (self.rest, ""),
        };
        self.rest = rest;
        let mut line = line.to_string();
        if line.ends_with("\r\n") {
            line.truncate(line.len() - 2);
            line.push('\n');
        } else if rest.is_empty() && !line.ends_with('\n') && line.ends_with('\r') {
            line.pop();
        }
        Some(line)
    }

    /// One record, or `None` at the end; `want` checks the field count.
    fn record(&mut self, want: Option<usize>) -> Result<Option<Vec<String>>, String> {
        let mut line = loop {
            match self.read_line() {
                None => return Ok(None),
                Some(l) if l == "\n" => continue,
                Some(l) => break l,
            };
        };
        let rec_line = self.line;
        let err = |line: usize, what: &str| format!("CSV parse error on line {line}: {what}");
        let mut fields = Vec::new();
        'fields: loop {
            if !line.starts_with('"') {
                let (field, rest) = match line.find(',') {
                    Some(i) => (line[..i].to_string(), Some(line[i + 1..].to_string())),
                    None => (line.trim_end_matches('\n').to_string(), None),
                };
                if field.contains('"') {
                    return Err(err(self.line, ERR_BARE_QUOTE));
                }
                fields.push(field);
                match rest {
                    Some(r) => {
                        line = r;
                        continue 'fields;
                    }
                    None => break 'fields,
                }
            }
            // Quoted field.
            let mut field = String::new();
            line = line[1..].to_string();
            loop {
                if let Some(i) = line.find('"') {
                    field.push_str(&line[..i]);
                    line = line[i + 1..].to_string();
                    match line.chars().next() {
                        Some('"') => {
                            field.push('"');
                            line = line[1..].to_string();
                        }
                        Some(',') => {
                            line = line[1..].to_string();
                            fields.push(std::mem::take(&mut field));
                            continue 'fields;
                        }
                        None | Some('\n') if line.len() <= 1 => {
                            fields.push(std::mem::take(&mut field));
                            break 'fields;
                        }
                        _ => return Err(err(self.line, ERR_QUOTE)),
                    }
                } else if !line.is_empty() {
                    field.push_str(&line);
                    match self.read_line() {
                        Some(next) => line = next,
                        None => line = String::new(),
                    }
                } else {
                    return Err(err(self.line, ERR_QUOTE));
                }
            }
        }
        if let Some(n) = want
            && fields.len() != n
        {
            return Err(err(rec_line, "wrong number of fields"));
        }
        Ok(Some(fields))
    }
}

// ---------------------------------------------------------------------------
// Text encodings by IANA name (Go's ianaindex)
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum TextEncoding {
    Utf8,
    Ascii,
    Latin1,
    /// Big-endian with a byte order mark on encoding.
    Utf16,
    Utf16Le,
    Utf16Be,
    Other(&'static encoding_rs::Encoding),
}

/// (lower-case IANA name or alias, canonical name, encoding)
const ENCODINGS: &[(&[&str], &str, TextEncoding)] = &[
    (&["utf-8", "utf8", "csutf8"], "UTF-8", TextEncoding::Utf8),
    (
        &[
            "us-ascii",
            "ascii",
            "us",
            "ansi_x3.4-1968",
            "ansi_x3.4-1986",
            "iso-ir-6",
            "iso646-us",
            "iso_646.irv:1991",
            "ibm367",
            "cp367",
            "csascii",
        ],
        "US-ASCII",
        TextEncoding::Ascii,
    ),
    (
        &[
            "iso-8859-1",
            "iso_8859-1",
            "iso_8859-1:1987",
            "iso-ir-100",
            "latin1",
            "l1",
            "ibm819",
            "cp819",
            "csisolatin1",
        ],
        "ISO-8859-1",
        TextEncoding::Latin1,
    ),
    (&["utf-16", "csutf16"], "UTF-16", TextEncoding::Utf16),
    (
        &["utf-16le", "csutf16le"],
        "UTF-16LE",
        TextEncoding::Utf16Le,
    ),
    (
        &["utf-16be", "csutf16be"],
        "UTF-16BE",
        TextEncoding::Utf16Be,
    ),
    (
        &["iso-8859-2", "iso_8859-2", "latin2", "l2", "csisolatin2"],
        "ISO-8859-2",
        TextEncoding::Other(encoding_rs::ISO_8859_2),
    ),
    (
        &["iso-8859-3", "iso_8859-3", "latin3", "l3", "csisolatin3"],
        "ISO-8859-3",
        TextEncoding::Other(encoding_rs::ISO_8859_3),
    ),
    (
        &["iso-8859-4", "iso_8859-4", "latin4", "l4", "csisolatin4"],
        "ISO-8859-4",
        TextEncoding::Other(encoding_rs::ISO_8859_4),
    ),
    (
        &["iso-8859-5", "iso_8859-5", "cyrillic", "csisolatincyrillic"],
        "ISO-8859-5",
        TextEncoding::Other(encoding_rs::ISO_8859_5),
    ),
    (
        &["iso-8859-6", "iso_8859-6", "arabic", "csisolatinarabic"],
        "ISO-8859-6",
        TextEncoding::Other(encoding_rs::ISO_8859_6),
    ),
    (
        &[
            "iso-8859-7",
            "iso_8859-7",
            "greek",
            "greek8",
            "csisolatingreek",
        ],
        "ISO-8859-7",
        TextEncoding::Other(encoding_rs::ISO_8859_7),
    ),
    (
        &["iso-8859-8", "iso_8859-8", "hebrew", "csisolatinhebrew"],
        "ISO-8859-8",
        TextEncoding::Other(encoding_rs::ISO_8859_8),
    ),
    (
        &["iso-8859-10", "iso_8859-10", "latin6", "l6", "csisolatin6"],
        "ISO-8859-10",
        TextEncoding::Other(encoding_rs::ISO_8859_10),
    ),
    (
        &["iso-8859-13", "iso_8859-13"],
        "ISO-8859-13",
        TextEncoding::Other(encoding_rs::ISO_8859_13),
    ),
    (
        &["iso-8859-14", "iso_8859-14", "latin8", "l8"],
        "ISO-8859-14",
        TextEncoding::Other(encoding_rs::ISO_8859_14),
    ),
    (
        &["iso-8859-15", "iso_8859-15", "latin-9"],
        "ISO-8859-15",
        TextEncoding::Other(encoding_rs::ISO_8859_15),
    ),
    (
        &["iso-8859-16", "iso_8859-16", "latin10", "l10"],
        "ISO-8859-16",
        TextEncoding::Other(encoding_rs::ISO_8859_16),
    ),
    (
        &["koi8-r", "cskoi8r"],
        "KOI8-R",
        TextEncoding::Other(encoding_rs::KOI8_R),
    ),
    (
        &["koi8-u"],
        "KOI8-U",
        TextEncoding::Other(encoding_rs::KOI8_U),
    ),
    (
        &["ibm866", "cp866", "866", "csibm866"],
        "IBM866",
        TextEncoding::Other(encoding_rs::IBM866),
    ),
    (
        &["macintosh", "mac", "csmacintosh"],
        "macintosh",
        TextEncoding::Other(encoding_rs::MACINTOSH),
    ),
    (
        &["windows-874"],
        "windows-874",
        TextEncoding::Other(encoding_rs::WINDOWS_874),
    ),
    (
        &["windows-1250", "cswindows1250"],
        "windows-1250",
        TextEncoding::Other(encoding_rs::WINDOWS_1250),
    ),
    (
        &["windows-1251", "cswindows1251"],
        "windows-1251",
        TextEncoding::Other(encoding_rs::WINDOWS_1251),
    ),
    (
        &["windows-1252", "cswindows1252"],
        "windows-1252",
        TextEncoding::Other(encoding_rs::WINDOWS_1252),
    ),
    (
        &["windows-1253", "cswindows1253"],
        "windows-1253",
        TextEncoding::Other(encoding_rs::WINDOWS_1253),
    ),
    (
        &["windows-1254", "cswindows1254"],
        "windows-1254",
        TextEncoding::Other(encoding_rs::WINDOWS_1254),
    ),
    (
        &["windows-1255", "cswindows1255"],
        "windows-1255",
        TextEncoding::Other(encoding_rs::WINDOWS_1255),
    ),
    (
        &["windows-1256", "cswindows1256"],
        "windows-1256",
        TextEncoding::Other(encoding_rs::WINDOWS_1256),
    ),
    (
        &["windows-1257", "cswindows1257"],
        "windows-1257",
        TextEncoding::Other(encoding_rs::WINDOWS_1257),
    ),
    (
        &["windows-1258", "cswindows1258"],
        "windows-1258",
        TextEncoding::Other(encoding_rs::WINDOWS_1258),
    ),
    (
        &["shift_jis", "ms_kanji", "csshiftjis"],
        "Shift_JIS",
        TextEncoding::Other(encoding_rs::SHIFT_JIS),
    ),
    (
        &[
            "euc-jp",
            "cseucpkdfmtjapanese",
            "extended_unix_code_packed_format_for_japanese",
        ],
        "EUC-JP",
        TextEncoding::Other(encoding_rs::EUC_JP),
    ),
    (
        &["iso-2022-jp", "csiso2022jp"],
        "ISO-2022-JP",
        TextEncoding::Other(encoding_rs::ISO_2022_JP),
    ),
    (
        &["euc-kr", "cseuckr"],
        "EUC-KR",
        TextEncoding::Other(encoding_rs::EUC_KR),
    ),
    (
        &["gbk", "cp936", "ms936", "windows-936", "csgbk"],
        "GBK",
        TextEncoding::Other(encoding_rs::GBK),
    ),
    (
        &["gb18030", "csgb18030"],
        "GB18030",
        TextEncoding::Other(encoding_rs::GB18030),
    ),
    (
        &["big5", "csbig5"],
        "Big5",
        TextEncoding::Other(encoding_rs::BIG5),
    ),
];

fn text_encoding(name: &str) -> Option<(&'static str, TextEncoding)> {
    let lower = name.to_ascii_lowercase();
    ENCODINGS
        .iter()
        .find(|(aliases, _, _)| aliases.contains(&lower.as_str()))
        .map(|(_, canonical, enc)| (*canonical, *enc))
}

fn unknown_encoding(name: &str) -> Fail {
    Fail::arg(
        1,
        format!(
            "{} is not a supported IANA encoding name or alias",
            go_quote(name)
        ),
    )
}

fn encode_text(s: &str, enc: TextEncoding) -> Option<Vec<u8>> {
    match enc {
        TextEncoding::Utf8 => Some(s.as_bytes().to_vec()),
        TextEncoding::Ascii => s.is_ascii().then(|| s.as_bytes().to_vec()),
        TextEncoding::Latin1 => s.chars().map(|c| u8::try_from(c as u32).ok()).collect(),
        TextEncoding::Utf16 => {
            let mut out = vec![0xFE, 0xFF];
            out.extend(s.encode_utf16().flat_map(u16::to_be_bytes));
            Some(out)
        }
        TextEncoding::Utf16Be => Some(s.encode_utf16().flat_map(u16::to_be_bytes).collect()),
        TextEncoding::Utf16Le => Some(s.encode_utf16().flat_map(u16::to_le_bytes).collect()),
        TextEncoding::Other(e) => {
            let (bytes, _, unmappable) = e.encode(s);
            (!unmappable).then(|| bytes.into_owned())
        }
    }
}

fn decode_text(bytes: &[u8], enc: TextEncoding) -> Option<String> {
    let utf16 = |bytes: &[u8], le: bool| -> Option<String> {
        if !bytes.len().is_multiple_of(2) {
            return None;
        }
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units).ok()
    };
    let decoded = match enc {
        TextEncoding::Utf8 => String::from_utf8(bytes.to_vec()).ok(),
        TextEncoding::Ascii => bytes
            .is_ascii()
            .then(|| String::from_utf8_lossy(bytes).into_owned()),
        TextEncoding::Latin1 => Some(bytes.iter().map(|&b| b as char).collect()),
        TextEncoding::Utf16 => match bytes {
            [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
            [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
            _ => utf16(bytes, false),
        },
        TextEncoding::Utf16Le => utf16(bytes, true),
        TextEncoding::Utf16Be => utf16(bytes, false),
        TextEncoding::Other(e) => e
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|c| c.into_owned()),
    };
    decoded.filter(|s| !s.contains('\u{fffd}'))
}

fn textencodebase64(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let name = str_arg(&args, 1)?;
    let (canonical, enc) = text_encoding(name).ok_or_else(|| unknown_encoding(name))?;
    let bytes = encode_text(str_arg(&args, 0)?, enc).ok_or_else(|| {
        Fail::arg(
            0,
            format!(
                "the given string contains characters that cannot be represented in {canonical}"
            ),
        )
    })?;
    Ok(Value::String(base64_encode(&bytes)))
}

fn textdecodebase64(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let name = str_arg(&args, 1)?;
    let (canonical, enc) = text_encoding(name).ok_or_else(|| unknown_encoding(name))?;
    let src = str_arg(&args, 0)?;
    let bytes = go_base64_decode(src).map_err(|e| match e {
        base64::DecodeError::InvalidByte(offset, _)
        | base64::DecodeError::InvalidLastSymbol(offset, _) => Fail::arg(
            0,
            format!("the given value is has an invalid base64 symbol at offset {offset}"),
        ),
        other => Fail::arg(0, format!("invalid source string: {other}")),
    })?;
    decode_text(&bytes, enc).map(Value::String).ok_or_else(|| {
        Fail::arg(
            0,
            format!("the given string contains symbols that are not defined for {canonical}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(
            call_ok("base64encode", vec![s("Hello World")]),
            s("SGVsbG8gV29ybGQ=")
        );
        assert_eq!(
            call_ok("base64decode", vec![s("SGVsbG8gV29ybGQ=")]),
            s("Hello World")
        );
        assert_eq!(
            call_ok("base64decode", vec![s("SGVsbG8g\nV29ybGQ=")]),
            s("Hello World")
        );
        assert_eq!(call_ok("base64decode", vec![s("")]), s(""));
        assert_eq!(
            call_err("base64decode", vec![s("SGVsbG8gV29ybGQ")]),
            "`base64decode`: failed to decode base64 data 'SGVsbG8gV29ybGQ'"
        );
        assert_eq!(
            call_err("base64decode", vec![s("/w==")]),
            "`base64decode`: the result of decoding the the provided string is not valid UTF-8"
        );
    }

    #[test]
    fn base64gzip_decompresses_to_the_input() {
        let Value::String(out) = call_ok("base64gzip", vec![s("test")]) else {
            panic!()
        };
        let bytes = go_base64_decode(&out).unwrap();
        assert_eq!(&bytes[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(bytes[9], 255, "OS byte as Go writes it");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
            .unwrap();
        assert_eq!(text, "test");
    }

    #[test]
    fn json() {
        assert_eq!(
            call_ok("jsonencode", vec![obj(&[("hello", s("world"))])]),
            s("{\"hello\":\"world\"}")
        );
        assert_eq!(call_ok("jsonencode", vec![Value::Null]), s("null"));
        assert_eq!(
            call_ok("jsonencode", vec![s("<&>")]),
            s("\"\\u003c\\u0026\\u003e\"")
        );
        assert_eq!(
            call_ok(
                "jsondecode",
                vec![s("{\"hello\": \"world\", \"n\": [1, true, null]}")]
            ),
            obj(&[
                ("hello", s("world")),
                ("n", tup(vec![n(1.0), b(true), Value::Null]))
            ])
        );
        assert_eq!(call_ok("jsondecode", vec![s("true")]), b(true));
        assert_eq!(
            call_ok("jsondecode", vec![s("{\"a\":1,\"a\":2}")]),
            obj(&[("a", n(2.0))])
        );
        assert!(call_err("jsondecode", vec![s("{")]).contains("unexpected end of JSON input"));
        assert!(call_err("jsondecode", vec![s("[1] x")]).contains("invalid JSON"));
    }

    #[test]
    fn urlencode_is_query_escape() {
        assert_eq!(
            call_ok("urlencode", vec![s("Hello World!")]),
            s("Hello+World%21")
        );
        assert_eq!(call_ok("urlencode", vec![s("☃")]), s("%E2%98%83"));
        assert_eq!(
            call_ok("urlencode", vec![s("foo:bar@localhost?foo=bar&bar=baz")]),
            s("foo%3Abar%40localhost%3Ffoo%3Dbar%26bar%3Dbaz")
        );
        assert_eq!(call_ok("urlencode", vec![s("a-_.~/")]), s("a-_.~%2F"));
    }

    #[test]
    fn csvdecode_reads_records() {
        assert_eq!(
            call_ok("csvdecode", vec![s("a,b,c\n1,2,3\n4,5,6")]),
            list(vec![
                obj(&[("a", s("1")), ("b", s("2")), ("c", s("3"))]),
                obj(&[("a", s("4")), ("b", s("5")), ("c", s("6"))]),
            ])
        );
        assert_eq!(
            call_ok(
                "csvdecode",
                vec![s("name,text\r\n\r\nx,\"say \"\"hi\"\",\nok\"\r\n")]
            ),
            list(vec![obj(&[
                ("name", s("x")),
                ("text", s("say \"hi\",\nok"))
            ])])
        );
        assert_eq!(call_ok("csvdecode", vec![s("a,b\n")]), list(vec![]));
        assert_eq!(
            call_err("csvdecode", vec![s("")]),
            "`csvdecode`: missing header line"
        );
        assert_eq!(
            call_err("csvdecode", vec![s("a,b\n1,2,3")]),
            "`csvdecode`: CSV parse error on line 2: wrong number of fields"
        );
        assert_eq!(
            call_err("csvdecode", vec![s("a,b\n1,x\"y")]),
            "`csvdecode`: CSV parse error on line 2: bare \" in non-quoted-field"
        );
        assert_eq!(
            call_err("csvdecode", vec![s("a,b\n\"1\"x,2")]),
            "`csvdecode`: CSV parse error on line 2: extraneous or missing \" in quoted-field"
        );
        assert_eq!(
            call_err("csvdecode", vec![s("a,b\n\"1,2")]),
            "`csvdecode`: CSV parse error on line 2: extraneous or missing \" in quoted-field"
        );
        assert_eq!(
            call_err("csvdecode", vec![s("a,a\n1,2")]),
            "`csvdecode`: duplicate column name \"a\""
        );
    }

    #[test]
    fn text_encodings() {
        assert_eq!(
            call_ok("textencodebase64", vec![s("Hello World"), s("UTF-16LE")]),
            s("SABlAGwAbABvACAAVwBvAHIAbABkAA==")
        );
        assert_eq!(
            call_ok(
                "textdecodebase64",
                vec![s("SABlAGwAbABvACAAVwBvAHIAbABkAA=="), s("utf-16le")]
            ),
            s("Hello World")
        );
        assert_eq!(
            call_ok("textencodebase64", vec![s("é"), s("latin1")]),
            s("6Q==")
        );
        assert_eq!(
            call_ok("textdecodebase64", vec![s("6Q=="), s("ISO-8859-1")]),
            s("é")
        );
        assert_eq!(
            call_ok("textencodebase64", vec![s("€"), s("windows-1252")]),
            s("gA==")
        );
        assert_eq!(
            call_ok("textencodebase64", vec![s("a"), s("UTF-16")]),
            s("/v8AYQ==")
        );
        assert_eq!(
            call_ok("textdecodebase64", vec![s("/v8AYQ=="), s("UTF-16")]),
            s("a")
        );
        assert_eq!(
            call_err("textencodebase64", vec![s("☃"), s("US-ASCII")]),
            "`textencodebase64`: argument 1 (`string`): the given string contains characters that cannot be represented in US-ASCII"
        );
        assert_eq!(
            call_err("textencodebase64", vec![s("a"), s("klingon")]),
            "`textencodebase64`: argument 2 (`encoding`): \"klingon\" is not a supported IANA encoding name or alias"
        );
        assert_eq!(
            call_err("textdecodebase64", vec![s("gA=="), s("US-ASCII")]),
            "`textdecodebase64`: argument 1 (`source`): the given string contains symbols that are not defined for US-ASCII"
        );
        assert!(
            call_err("textdecodebase64", vec![s("a$=="), s("UTF-8")])
                .contains("invalid base64 symbol at offset 1")
        );
    }

    #[test]
    fn yaml_functions() {
        assert_eq!(
            call_ok("yamldecode", vec![s("hello: world")]),
            obj(&[("hello", s("world"))])
        );
        assert_eq!(call_ok("yamldecode", vec![s("true")]), b(true));
        assert_eq!(
            call_ok("yamldecode", vec![s("{a: &foo [1, 2, 3], b: *foo}")]),
            obj(&[
                ("a", tup(vec![n(1.0), n(2.0), n(3.0)])),
                ("b", tup(vec![n(1.0), n(2.0), n(3.0)]))
            ])
        );
        assert_eq!(
            call_ok("yamlencode", vec![obj(&[("a", s("b")), ("c", s("d"))])]),
            s("\"a\": \"b\"\n\"c\": \"d\"\n")
        );
        assert_eq!(
            call_ok(
                "yamlencode",
                vec![obj(&[
                    ("foo", tup(vec![n(1.0), n(2.0), n(3.0)])),
                    ("bar", s("baz"))
                ])]
            ),
            s("\"bar\": \"baz\"\n\"foo\":\n- 1\n- 2\n- 3\n")
        );
        assert!(
            call_err("yamldecode", vec![s("a: [")])
                .starts_with("`yamldecode`: argument 1 (`src`): on line")
        );
    }
}
