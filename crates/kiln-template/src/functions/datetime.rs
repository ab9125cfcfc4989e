//! Date and time functions: formatdate, legacy_isotime, legacy_strftime,
//! rfc3339_parse, timeadd, timestamp, unix_timestamp_parse.
//!
//! Timestamps are RFC 3339 as cty reads them (strictly: two-digit fields,
//! a `T`, a `Z` or `±hh:mm` offset that is kept). `legacy_isotime` takes a
//! Go time layout (`2006-01-02T15:04:05Z07:00`) and `legacy_strftime` a
//! strftime format; both, like Packer, format the moment the process
//! first needed the time, so every call in a run agrees.

use std::fmt::Write as _;
use std::sync::LazyLock;

use chrono::{DateTime, Datelike as _, FixedOffset, NaiveDate, TimeZone as _, Timelike as _, Utc};

use super::{Fail, Func, FuncCtx, P, int_arg, num, p, str_arg};
use crate::value::{Value, go_quote};

pub(crate) const FUNCS: &[Func] = &[
    Func {
        name: "formatdate",
        params: &[p("format", P::String), p("time", P::String)],
        var_param: None,
        imp: formatdate,
    },
    Func {
        name: "legacy_isotime",
        params: &[],
        var_param: Some(p("format", P::String)),
        imp: legacy_isotime,
    },
    Func {
        name: "legacy_strftime",
        params: &[],
        var_param: Some(p("format", P::String)),
        imp: legacy_strftime,
    },
    Func {
        name: "rfc3339_parse",
        params: &[p("timestamp", P::String)],
        var_param: None,
        imp: rfc3339_parse,
    },
    Func {
        name: "timeadd",
        params: &[p("timestamp", P::String), p("duration", P::String)],
        var_param: None,
        imp: timeadd,
    },
    Func {
        name: "timestamp",
        params: &[],
        var_param: None,
        imp: timestamp,
    },
    Func {
        name: "unix_timestamp_parse",
        params: &[p("unix_timestamp", P::Number)],
        var_param: None,
        imp: unix_timestamp_parse,
    },
];

/// The moment the legacy functions format (Packer: process start).
static INIT_TIME: LazyLock<DateTime<Utc>> = LazyLock::new(Utc::now);

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn month_name(t: &DateTime<FixedOffset>) -> &'static str {
    MONTHS[t.month0() as usize]
}

fn weekday_name(t: &DateTime<FixedOffset>) -> &'static str {
    WEEKDAYS[t.weekday().num_days_from_sunday() as usize]
}

/// Go's `time.RFC3339` formatting (no fraction; `Z` for a zero offset).
pub(crate) fn rfc3339(t: &DateTime<FixedOffset>) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    push_offset(&mut s, t.offset().local_minus_utc(), true, true);
    s
}

/// `Z`, or `±hh:mm` (`colon`) / `±hhmm`.
fn push_offset(s: &mut String, secs: i32, z_for_zero: bool, colon: bool) {
    if secs == 0 && z_for_zero {
        s.push('Z');
        return;
    }
    let sign = if secs < 0 { '-' } else { '+' };
    let mins = secs.abs() / 60;
    let _ = write!(
        s,
        "{sign}{:02}{}{:02}",
        mins / 60,
        if colon { ":" } else { "" },
        mins % 60
    );
}

// ---------------------------------------------------------------------------
// Strict RFC 3339, as cty parses timestamps
// ---------------------------------------------------------------------------

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        _ => 28,
    }
}

/// Parses an RFC 3339 timestamp as cty does, with cty's error messages.
pub(crate) fn parse_timestamp(s: &str) -> Result<DateTime<FixedOffset>, String> {
    parse_rfc3339_fields(s).map_err(|why| format!("not a valid RFC3339 timestamp{why}"))
}

fn parse_rfc3339_fields(s: &str) -> Result<DateTime<FixedOffset>, String> {
    let b = s.as_bytes();
    let mut i = 0usize;
    let rest = |i: usize| s.get(i..).unwrap_or("");
    let what_error = |i: usize, what: &str| -> String {
        let r = rest(i);
        if r.is_empty() {
            format!(": end of string before {what}")
        } else {
            format!(": cannot use {} as {what}", go_quote(r))
        }
    };
    let digits = |i: usize, n: usize| -> Option<u32> {
        let part = b.get(i..i + n)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let sep = |i: usize, c: u8| -> Result<(), String> {
        match b.get(i) {
            Some(x) if *x == c => Ok(()),
            Some(_) => Err(format!(
                ": found {} where {} is expected",
                go_quote(rest(i)),
                go_quote(&(c as char).to_string())
            )),
            None => Err(format!(
                ": end of string where {} is expected",
                go_quote(&(c as char).to_string())
            )),
        }
    };
    let year = digits(i, 4).ok_or_else(|| what_error(i, "year"))? as i32;
    i += 4;
    sep(i, b'-')?;
    i += 1;
    let month = digits(i, 2).ok_or_else(|| what_error(i, "month"))?;
    if !(1..=12).contains(&month) {
        return Err(what_error(i + 2, "month"));
    }
    i += 2;
    sep(i, b'-')?;
    i += 1;
    let day = digits(i, 2).ok_or_else(|| what_error(i, "day of month"))?;
    if day < 1 {
        return Err(what_error(i + 2, "day of month"));
    }
    i += 2;
    if b.get(i) != Some(&b'T') {
        return Err(": missing required time introducer 'T'".into());
    }
    i += 1;
    if b.get(i + 1) == Some(&b':') {
        return Err(": hour must have exactly two digits".into());
    }
    let hour = digits(i, 2).ok_or_else(|| what_error(i, "hour"))?;
    if hour > 23 {
        return Err(": hour must be between 0 and 23 inclusive".into());
    }
    i += 2;
    sep(i, b':')?;
    i += 1;
    if b.get(i + 1) == Some(&b':') {
        return Err(": minute must have exactly two digits".into());
    }
    let minute = digits(i, 2).ok_or_else(|| what_error(i, "minute"))?;
    if minute > 59 {
        return Err(what_error(i + 2, "minute"));
    }
    i += 2;
    sep(i, b':')?;
    i += 1;
    let second = digits(i, 2).ok_or_else(|| what_error(i, "second"))?;
    if second > 59 {
        return Err(what_error(i + 2, "second"));
    }
    i += 2;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b',') {
        return Err(": sub-second separator must be a period".into());
    }
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        let start = i + 1;
        let mut j = start;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        let frac = &s[start..j.min(start + 9)];
        nanos = format!("{frac:0<9}").parse().unwrap_or(0);
        i = j;
    }
    let offset_secs = match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(b'+' | b'-') if b.len() - i == 6 && b[i + 3] == b':' => {
            let hh = digits(i + 1, 2).ok_or_else(|| what_error(i, "UTC offset"))?;
            let mm = digits(i + 4, 2).ok_or_else(|| what_error(i, "UTC offset"))?;
            if hh >= 24 {
                return Err(": timezone hour out of range".into());
            }
            if mm >= 60 {
                return Err(": timezone minute out of range".into());
            }
            let secs = (hh * 3600 + mm * 60) as i32;
            if b[i] == b'-' { -secs } else { secs }
        }
        _ => return Err(what_error(i, "UTC offset")),
    };
    if day > days_in_month(year, month) {
        return Err(": day out of range".into());
    }
    let offset = FixedOffset::east_opt(offset_secs).ok_or(": UTC offset out of range")?;
    NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|d| d.and_hms_nano_opt(hour, minute, second, nanos))
        .and_then(|dt| offset.from_local_datetime(&dt).single())
        .ok_or_else(|| ": timestamp out of range".to_string())
}

// ---------------------------------------------------------------------------
// formatdate
// ---------------------------------------------------------------------------

fn formatdate(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let spec = str_arg(&args, 0)?;
    let t = parse_timestamp(str_arg(&args, 1)?).map_err(|e| Fail::arg(1, e))?;
    format_date(spec, &t)
        .map(Value::String)
        .map_err(|e| Fail::arg(0, e))
}

/// cty's `formatdate` specification language.
pub(crate) fn format_date(spec: &str, t: &DateTime<FixedOffset>) -> Result<String, String> {
    let mut out = String::new();
    let b = spec.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' {
            // A quoted literal; '' is a quote.
            if b.get(i + 1) == Some(&b'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            let mut j = i + 1;
            let mut lit = Vec::new();
            let mut closed = false;
            while j < b.len() {
                if b[j] == b'\'' {
                    if b.get(j + 1) == Some(&b'\'') {
                        lit.push(b'\'');
                        j += 2;
                        continue;
                    }
                    closed = true;
                    j += 1;
                    break;
                }
                lit.push(b[j]);
                j += 1;
            }
            if !closed {
                return Err("unterminated literal '".into());
            }
            out.push_str(&String::from_utf8_lossy(&lit));
            i = j;
        } else if c.is_ascii_alphabetic() {
            let mut j = i + 1;
            while j < b.len() && b[j] == c {
                j += 1;
            }
            let tok = &spec[i..j];
            format_verb(tok, t, &mut out)?;
            i = j;
        } else {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'\'' && !b[j].is_ascii_alphabetic() {
                j += 1;
            }
            out.push_str(&spec[i..j]);
            i = j;
        }
    }
    Ok(out)
}

fn format_verb(tok: &str, t: &DateTime<FixedOffset>, out: &mut String) -> Result<(), String> {
    let n = tok.len();
    let bad = |why: &str| Err(format!("invalid date format verb {}: {why}", go_quote(tok)));
    let c = tok.as_bytes()[0];
    match (c, n) {
        (b'Y', 2) => {
            let _ = write!(out, "{:02}", t.year().rem_euclid(100));
        }
        (b'Y', 4) => {
            let _ = write!(out, "{:04}", t.year());
        }
        (b'Y', _) => return bad("year must either be \"YY\" or \"YYYY\""),
        (b'M', 1) => {
            let _ = write!(out, "{}", t.month());
        }
        (b'M', 2) => {
            let _ = write!(out, "{:02}", t.month());
        }
        (b'M', 3) => out.push_str(&month_name(t)[..3]),
        (b'M', 4) => out.push_str(month_name(t)),
        (b'M', _) => return bad("month must be \"M\", \"MM\", \"MMM\", or \"MMMM\""),
        (b'D', 1) => {
            let _ = write!(out, "{}", t.day());
        }
        (b'D', 2) => {
            let _ = write!(out, "{:02}", t.day());
        }
        (b'D', _) => return bad("day of month must either be \"D\" or \"DD\""),
        (b'E', 3) => out.push_str(&weekday_name(t)[..3]),
        (b'E', 4) => out.push_str(weekday_name(t)),
        (b'E', _) => return bad("day of week must either be \"EEE\" or \"EEEE\""),
        (b'h', 1) => {
            let _ = write!(out, "{}", t.hour());
        }
        (b'h', 2) => {
            let _ = write!(out, "{:02}", t.hour());
        }
        (b'h', _) => return bad("24-hour must either be \"h\" or \"hh\""),
        (b'H', 1 | 2) => {
            let h = match t.hour() % 12 {
                0 => 12,
                h => h,
            };
            let _ = if n == 1 {
                write!(out, "{h}")
            } else {
                write!(out, "{h:02}")
            };
        }
        (b'H', _) => return bad("12-hour must either be \"H\" or \"HH\""),
        (b'A' | b'a', 2) => {
            let pm = t.hour() >= 12;
            out.push_str(match (c == b'A', pm) {
                (true, false) => "AM",
                (true, true) => "PM",
                (false, false) => "am",
                (false, true) => "pm",
            });
        }
        (b'A' | b'a', _) => {
            let l = c as char;
            return bad(&format!("must be \"{l}{l}\""));
        }
        (b'm', 1) => {
            let _ = write!(out, "{}", t.minute());
        }
        (b'm', 2) => {
            let _ = write!(out, "{:02}", t.minute());
        }
        (b'm', _) => return bad("minute must either be \"m\" or \"mm\""),
        (b's', 1) => {
            let _ = write!(out, "{}", t.second());
        }
        (b's', 2) => {
            let _ = write!(out, "{:02}", t.second());
        }
        (b's', _) => return bad("second must either be \"s\" or \"ss\""),
        (b'Z', 1) => push_offset(out, t.offset().local_minus_utc(), true, true),
        (b'Z', 3) => {
            let secs = t.offset().local_minus_utc();
            if secs == 0 {
                out.push_str("UTC");
            } else {
                push_offset(out, secs, false, false);
            }
        }
        (b'Z', 4) => push_offset(out, t.offset().local_minus_utc(), false, false),
        (b'Z', 5) => push_offset(out, t.offset().local_minus_utc(), false, true),
        (b'Z', _) => return bad("timezone must be Z, ZZZZ, or ZZZZZ"),
        _ => return Err(format!("invalid date format verb {}", go_quote(tok))),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// timeadd, timestamp
// ---------------------------------------------------------------------------

/// Go's `time.ParseDuration`, in nanoseconds.
pub(crate) fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next()
        && (c == '-' || c == '+')
    {
        neg = c == '-';
        s = &s[1..];
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if s.starts_with('.') {
            s = &s[1..];
            let frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &s[..frac_len];
            s = &s[frac_len..];
            if int_len == 0 && frac_len == 0 {
                return Err(invalid());
            }
        } else if int_len == 0 {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let unit_name = &s[..unit_len];
        s = &s[unit_len..];
        let unit: u128 = match unit_name {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit_name),
                    go_quote(orig)
                ));
            }
        };
        let v: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut amount = v.checked_mul(unit).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            // Go keeps at most the digits that fit; this is close enough.
            let digits = &frac_part[..frac_part.len().min(18)];
            let f: u128 = digits.parse().map_err(|_| invalid())?;
            let scale = 10u128.pow(digits.len() as u32);
            amount += f * unit / scale;
        }
        total = total.checked_add(amount).ok_or_else(invalid)?;
        if total > i64::MAX as u128 + u128::from(neg) {
            return Err(invalid());
        }
    }
    let total = total as i128;
    Ok(if neg { (-total) as i64 } else { total as i64 })
}

fn timeadd(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let t = parse_timestamp(str_arg(&args, 0)?).map_err(Fail::call)?;
    let d = parse_duration(str_arg(&args, 1)?).map_err(Fail::call)?;
    let t2 = t
        .checked_add_signed(chrono::Duration::nanoseconds(d))
        .ok_or_else(|| Fail::call("the resulting time is out of range"))?;
    Ok(Value::String(rfc3339(&t2)))
}

fn timestamp(_: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(Value::String(rfc3339(&Utc::now().fixed_offset())))
}

// ---------------------------------------------------------------------------
// Legacy: Go layouts and strftime
// ---------------------------------------------------------------------------

fn legacy_format(
    args: &[Value],
    render: fn(&str, &DateTime<FixedOffset>) -> String,
) -> Result<Value, Fail> {
    if args.len() > 1 {
        let shown: Vec<String> = args.iter().map(|a| a.to_json_string()).collect();
        return Err(Fail::call(format!(
            "too many values, 1 needed: [{}]",
            shown.join(" ")
        )));
    }
    let t = INIT_TIME.fixed_offset();
    match args.first() {
        None => Ok(Value::String(rfc3339(&t))),
        Some(_) => Ok(Value::String(render(str_arg(args, 0)?, &t))),
    }
}

fn legacy_isotime(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    legacy_format(&args, go_time_format)
}

fn legacy_strftime(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    legacy_format(&args, strftime)
}

/// jehiah/go-strftime, as Packer uses it: each `%x` is a Go layout.
pub(crate) fn strftime(format: &str, t: &DateTime<FixedOffset>) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(v) = chars.next() else {
            out.push('%');
            break;
        };
        let layout = match v {
            '%' => {
                out.push('%');
                continue;
            }
            'B' => "January",
            'b' => "Jan",
            'm' => "01",
            'A' => "Monday",
            'a' => "Mon",
            'd' => "02",
            'H' => "15",
            'I' => "03",
            'M' => "04",
            'S' => "05",
            'Y' => "2006",
            'y' => "06",
            'p' => "PM",
            'Z' => "MST",
            'z' => "-0700",
            'L' => ".000",
            other => {
                out.push('%');
                out.push(other);
                continue;
            }
        };
        out.push_str(&go_time_format(layout, t));
    }
    out
}

/// The elements of a Go time layout.
enum Std {
    Lit(String),
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm(bool),
    Tz,
    /// (ISO 8601 `Z` for zero, colon, seconds, hours only)
    NumTz(bool, bool, bool, bool),
    /// (separator, digits, trim trailing zeros)
    Frac(char, usize, bool),
}

fn go_layout(layout: &str) -> Vec<Std> {
    let b = layout.as_bytes();
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    let starts_lower = |j: usize| b.get(j).is_some_and(u8::is_ascii_lowercase);
    let at = |i: usize, s: &str| layout.get(i..).is_some_and(|r| r.starts_with(s));
    while i < b.len() {
        let (std, len) = match b[i] {
            b'J' if at(i, "January") => (Some(Std::LongMonth), 7),
            b'J' if at(i, "Jan") && !starts_lower(i + 3) => (Some(Std::Month), 3),
            b'M' if at(i, "Monday") => (Some(Std::LongWeekDay), 6),
            b'M' if at(i, "Mon") && !starts_lower(i + 3) => (Some(Std::WeekDay), 3),
            b'M' if at(i, "MST") => (Some(Std::Tz), 3),
            b'0' if matches!(b.get(i + 1), Some(b'1'..=b'6')) => (
                Some(match b[i + 1] {
                    b'1' => Std::ZeroMonth,
                    b'2' => Std::ZeroDay,
                    b'3' => Std::ZeroHour12,
                    b'4' => Std::ZeroMinute,
                    b'5' => Std::ZeroSecond,
                    _ => Std::Year,
                }),
                2,
            ),
            b'0' if at(i, "002") => (Some(Std::ZeroYearDay), 3),
            b'1' if at(i, "15") => (Some(Std::Hour), 2),
            b'1' => (Some(Std::NumMonth), 1),
            b'2' if at(i, "2006") => (Some(Std::LongYear), 4),
            b'2' => (Some(Std::Day), 1),
            b'_' if at(i, "_2006") => {
                lit.push('_');
                (Some(Std::LongYear), 5)
            }
            b'_' if at(i, "_2") => (Some(Std::UnderDay), 2),
            b'_' if at(i, "__2") => (Some(Std::UnderYearDay), 3),
            b'3' => (Some(Std::Hour12), 1),
            b'4' => (Some(Std::Minute), 1),
            b'5' => (Some(Std::Second), 1),
            b'P' if at(i, "PM") => (Some(Std::Pm(true)), 2),
            b'p' if at(i, "pm") => (Some(Std::Pm(false)), 2),
            b'-' if at(i, "-070000") => (Some(Std::NumTz(false, false, true, false)), 7),
            b'-' if at(i, "-07:00:00") => (Some(Std::NumTz(false, true, true, false)), 9),
            b'-' if at(i, "-0700") => (Some(Std::NumTz(false, false, false, false)), 5),
            b'-' if at(i, "-07:00") => (Some(Std::NumTz(false, true, false, false)), 6),
            b'-' if at(i, "-07") => (Some(Std::NumTz(false, false, false, true)), 3),
            b'Z' if at(i, "Z070000") => (Some(Std::NumTz(true, false, true, false)), 7),
            b'Z' if at(i, "Z07:00:00") => (Some(Std::NumTz(true, true, true, false)), 9),
            b'Z' if at(i, "Z0700") => (Some(Std::NumTz(true, false, false, false)), 5),
            b'Z' if at(i, "Z07:00") => (Some(Std::NumTz(true, true, false, false)), 6),
            b'Z' if at(i, "Z07") => (Some(Std::NumTz(true, false, false, true)), 3),
            b'.' | b',' if matches!(b.get(i + 1), Some(b'0' | b'9')) => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while b.get(j) == Some(&ch) {
                    j += 1;
                }
                if b.get(j).is_some_and(u8::is_ascii_digit) {
                    (None, 1)
                } else {
                    (Some(Std::Frac(b[i] as char, j - i - 1, ch == b'9')), j - i)
                }
            }
            _ => (None, 1),
        };
        match std {
            Some(s) => {
                if !lit.is_empty() {
                    out.push(Std::Lit(std::mem::take(&mut lit)));
                }
                out.push(s);
                i += len;
            }
            None => {
                let ch_len = layout[i..].chars().next().map_or(1, char::len_utf8);
                lit.push_str(&layout[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    if !lit.is_empty() {
        out.push(Std::Lit(lit));
    }
    out
}

/// Go's `time.Time.Format`.
pub(crate) fn go_time_format(layout: &str, t: &DateTime<FixedOffset>) -> String {
    let mut s = String::new();
    let offset = t.offset().local_minus_utc();
    for std in go_layout(layout) {
        match std {
            Std::Lit(l) => s.push_str(&l),
            Std::LongMonth => s.push_str(month_name(t)),
            Std::Month => s.push_str(&month_name(t)[..3]),
            Std::NumMonth => {
                let _ = write!(s, "{}", t.month());
            }
            Std::ZeroMonth => {
                let _ = write!(s, "{:02}", t.month());
            }
            Std::LongWeekDay => s.push_str(weekday_name(t)),
            Std::WeekDay => s.push_str(&weekday_name(t)[..3]),
            Std::Day => {
                let _ = write!(s, "{}", t.day());
            }
            Std::UnderDay => {
                let _ = write!(s, "{:>2}", t.day());
            }
            Std::ZeroDay => {
                let _ = write!(s, "{:02}", t.day());
            }
            Std::UnderYearDay => {
                let _ = write!(s, "{:>3}", t.ordinal());
            }
            Std::ZeroYearDay => {
                let _ = write!(s, "{:03}", t.ordinal());
            }
            Std::Hour => {
                let _ = write!(s, "{:02}", t.hour());
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let h = match t.hour() % 12 {
                    0 => 12,
                    h => h,
                };
                let _ = if matches!(std, Std::Hour12) {
                    write!(s, "{h}")
                } else {
                    write!(s, "{h:02}")
                };
            }
            Std::Minute => {
                let _ = write!(s, "{}", t.minute());
            }
            Std::ZeroMinute => {
                let _ = write!(s, "{:02}", t.minute());
            }
            Std::Second => {
                let _ = write!(s, "{}", t.second());
            }
            Std::ZeroSecond => {
                let _ = write!(s, "{:02}", t.second());
            }
            Std::LongYear => {
                let _ = write!(s, "{:04}", t.year());
            }
            Std::Year => {
                let _ = write!(s, "{:02}", t.year().rem_euclid(100));
            }
            Std::Pm(upper) => s.push_str(match (upper, t.hour() >= 12) {
                (true, true) => "PM",
                (true, false) => "AM",
                (false, true) => "pm",
                (false, false) => "am",
            }),
            Std::Tz => {
                if offset == 0 {
                    s.push_str("UTC");
                } else {
                    push_offset(&mut s, offset, false, false);
                }
            }
            Std::NumTz(iso, colon, seconds, hours_only) => {
                if iso && offset == 0 {
                    s.push('Z');
                    continue;
                }
                let sign = if offset < 0 { '-' } else { '+' };
                let abs = offset.abs();
                let _ = write!(s, "{sign}{:02}", abs / 3600);
                if !hours_only {
                    if colon {
                        s.push(':');
                    }
                    let _ = write!(s, "{:02}", (abs / 60) % 60);
                }
                if seconds {
                    if colon {
                        s.push(':');
                    }
                    let _ = write!(s, "{:02}", abs % 60);
                }
            }
            Std::Frac(sep, n, trim) => {
                let digits = format!("{:09}", t.nanosecond() % 1_000_000_000);
                let mut d = digits[..n.min(9)].to_string();
                while d.len() < n {
                    d.push('0');
                }
                if trim {
                    let trimmed = d.trim_end_matches('0');
                    if !trimmed.is_empty() {
                        s.push(sep);
                        s.push_str(trimmed);
                    }
                } else {
                    s.push(sep);
                    s.push_str(&d);
                }
            }
        }
    }
    s
}

// ---------------------------------------------------------------------------
// rfc3339_parse, unix_timestamp_parse
// ---------------------------------------------------------------------------

fn parts_object(t: &DateTime<FixedOffset>, extra: Option<(&str, Value)>) -> Value {
    let iso = t.iso_week();
    let mut m: std::collections::BTreeMap<String, Value> = [
        ("year", num(t.year() as f64)),
        ("year_day", num(t.ordinal() as f64)),
        ("day", num(t.day() as f64)),
        ("month", num(t.month() as f64)),
        ("month_name", Value::string(month_name(t))),
        ("weekday", num(t.weekday().num_days_from_sunday() as f64)),
        ("weekday_name", Value::string(weekday_name(t))),
        ("hour", num(t.hour() as f64)),
        ("minute", num(t.minute() as f64)),
        ("second", num(t.second() as f64)),
        ("iso_year", num(iso.year() as f64)),
        ("iso_week", num(iso.week() as f64)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some((k, v)) = extra {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}

fn rfc3339_parse(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let ts = str_arg(&args, 0)?;
    // Go's RFC3339Nano layout, or the same with a space for the `T`.
    let normalized = if ts.len() > 10 && ts.as_bytes()[10] == b' ' {
        format!("{}T{}", &ts[..10], &ts[11..])
    } else {
        ts.to_string()
    };
    let t = parse_rfc3339_fields(&normalized).map_err(|_| {
        Fail::arg(
            0,
            format!("{} is not a valid RFC3339 timestamp", go_quote(ts)),
        )
    })?;
    Ok(parts_object(&t, Some(("unix", num(t.timestamp() as f64)))))
}

fn unix_timestamp_parse(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let secs = int_arg(&args, 0).map_err(|f| {
        Fail::arg(
            0,
            format!("unix_timestamp must be a whole number of seconds representable as a 64-bit integer: {}", f.msg),
        )
    })?;
    let t = Utc
        .timestamp_opt(secs, 0)
        .single()
        .ok_or_else(|| Fail::arg(0, "unix_timestamp is out of the range of dates"))?
        .fixed_offset();
    Ok(parts_object(
        &t,
        Some(("rfc3339", Value::String(rfc3339(&t)))),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn fd(spec: &str, ts: &str) -> Value {
        call_ok("formatdate", vec![s(spec), s(ts)])
    }

    #[test]
    fn formatdate_documented_examples() {
        assert_eq!(
            fd("DD MMM YYYY hh:mm ZZZ", "2018-01-02T23:12:01Z"),
            s("02 Jan 2018 23:12 UTC")
        );
        assert_eq!(
            fd("EEEE, DD-MMM-YY hh:mm:ss ZZZ", "2018-01-02T23:12:01Z"),
            s("Tuesday, 02-Jan-18 23:12:01 UTC")
        );
        assert_eq!(
            fd("EEE, DD MMM YYYY hh:mm:ss ZZZ", "2018-01-02T23:12:01-08:00"),
            s("Tue, 02 Jan 2018 23:12:01 -0800")
        );
        assert_eq!(
            fd("MMM DD, YYYY", "2018-01-02T23:12:01Z"),
            s("Jan 02, 2018")
        );
        assert_eq!(fd("HH:mmaa", "2018-01-02T23:12:01Z"), s("11:12pm"));
        assert_eq!(fd("H:mm AA", "2018-01-02T00:05:01Z"), s("12:05 AM"));
        assert_eq!(fd("h'h'mm", "2018-01-02T23:12:01-08:00"), s("23h12"));
        assert_eq!(fd("'It''s' YYYY", "2018-01-02T23:12:01Z"), s("It's 2018"));
        assert_eq!(fd("''", "2018-01-02T23:12:01Z"), s("'"));
        assert_eq!(
            fd("Z|ZZZZ|ZZZZZ", "2018-01-02T23:12:01+05:30"),
            s("+05:30|+0530|+05:30")
        );
        assert_eq!(fd("Z", "2018-01-02T23:12:01Z"), s("Z"));
        assert_eq!(fd("M/D/YY s", "2018-01-02T03:04:05.123Z"), s("1/2/18 5"));
        assert_eq!(fd("MMMM", "2018-09-02T03:04:05Z"), s("September"));
    }

    #[test]
    fn formatdate_errors() {
        assert_eq!(
            call_err("formatdate", vec![s("YYYY"), s("2018-01-02")]),
            "`formatdate`: argument 2 (`time`): not a valid RFC3339 timestamp: missing required time introducer 'T'"
        );
        assert_eq!(
            call_err("formatdate", vec![s("YYY"), s("2018-01-02T00:00:00Z")]),
            "`formatdate`: argument 1 (`format`): invalid date format verb \"YYY\": year must either be \"YY\" or \"YYYY\""
        );
        assert_eq!(
            call_err("formatdate", vec![s("'abc"), s("2018-01-02T00:00:00Z")]),
            "`formatdate`: argument 1 (`format`): unterminated literal '"
        );
        assert_eq!(
            call_err("formatdate", vec![s("q"), s("2018-01-02T00:00:00Z")]),
            "`formatdate`: argument 1 (`format`): invalid date format verb \"q\""
        );
        let ts_err = |ts: &str| call_err("formatdate", vec![s("YYYY"), s(ts)]);
        assert!(ts_err("2018-01-02T1:00:00Z").ends_with("hour must have exactly two digits"));
        assert!(ts_err("2018-01-02T00:00:00").ends_with("end of string before UTC offset"));
        assert!(ts_err("2018-02-30T00:00:00Z").ends_with("day out of range"));
        assert!(
            ts_err("2018-01-02T24:00:00Z").ends_with("hour must be between 0 and 23 inclusive")
        );
        assert!(ts_err("18-01-02T00:00:00Z").contains("as year"));
        assert!(ts_err("2018-01-02T00:00:00+25:00").ends_with("timezone hour out of range"));
        assert!(
            ts_err("2018-01-02T00:00:00,5Z").ends_with("sub-second separator must be a period")
        );
    }

    #[test]
    fn timeadd_adds_go_durations() {
        let ta = |ts: &str, d: &str| call_ok("timeadd", vec![s(ts), s(d)]);
        assert_eq!(ta("2017-11-22T00:00:00Z", "10m"), s("2017-11-22T00:10:00Z"));
        assert_eq!(
            ta("2017-11-22T00:00:00Z", "-1h30m"),
            s("2017-11-21T22:30:00Z")
        );
        assert_eq!(
            ta("2017-11-22T00:00:00+05:00", "1.5s"),
            s("2017-11-22T00:00:01+05:00")
        );
        assert_eq!(ta("2017-11-22T00:00:00Z", "0"), s("2017-11-22T00:00:00Z"));
        assert_eq!(
            ta("2017-11-22T00:00:00Z", "1h1m1s1ms1us1ns"),
            s("2017-11-22T01:01:01Z")
        );
        assert_eq!(ta("2017-11-22T00:00:00Z", "24h"), s("2017-11-23T00:00:00Z"));
        assert_eq!(
            call_err("timeadd", vec![s("2017-11-22T00:00:00Z"), s("1d")]),
            "`timeadd`: time: unknown unit \"d\" in duration \"1d\""
        );
        assert_eq!(
            call_err("timeadd", vec![s("2017-11-22T00:00:00Z"), s("1")]),
            "`timeadd`: time: missing unit in duration \"1\""
        );
        assert_eq!(
            call_err("timeadd", vec![s("2017-11-22T00:00:00Z"), s("x")]),
            "`timeadd`: time: invalid duration \"x\""
        );
        assert_eq!(
            call_err("timeadd", vec![s("2017-11-22T00:00:00Z"), s("")]),
            "`timeadd`: time: invalid duration \"\""
        );
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_duration("1µs"), Ok(1000));
    }

    #[test]
    fn timestamp_is_now_in_rfc3339() {
        let Value::String(ts) = call_ok("timestamp", vec![]) else {
            panic!()
        };
        assert!(parse_timestamp(&ts).is_ok(), "{ts}");
        assert!(ts.ends_with('Z'));
        assert_eq!(ts.len(), 20);
    }

    #[test]
    fn go_layouts_and_strftime() {
        let t = FixedOffset::east_opt(0)
            .unwrap()
            .with_ymd_and_hms(2006, 1, 2, 15, 4, 5)
            .unwrap()
            + chrono::Duration::milliseconds(120);
        assert_eq!(
            go_time_format("2006-01-02T15:04:05Z07:00", &t),
            "2006-01-02T15:04:05Z"
        );
        assert_eq!(
            go_time_format("Mon Jan _2 3:4:5 PM MST 2006", &t),
            "Mon Jan  2 3:4:5 PM UTC 2006"
        );
        assert_eq!(
            go_time_format("Monday January 2 06 .000 .999 002 __2", &t),
            "Monday January 2 06 .120 .12 002   2"
        );
        assert_eq!(go_time_format("20060102150405", &t), "20060102150405");
        assert_eq!(go_time_format("Jane", &t), "Jane");
        let t5 = FixedOffset::east_opt(5 * 3600 + 1800)
            .unwrap()
            .with_ymd_and_hms(2020, 12, 31, 0, 0, 0)
            .unwrap();
        assert_eq!(
            go_time_format("-0700 -07:00 -07 Z07:00 MST", &t5),
            "+0530 +05:30 +05 +05:30 +0530"
        );
        assert_eq!(
            strftime("%Y-%m-%d %H:%M:%S %Z %z %a %A %b %B %I %p %y %L %% %q", &t),
            "2006-01-02 15:04:05 UTC +0000 Mon Monday Jan January 03 PM 06 .120 % %q"
        );
    }

    #[test]
    fn legacy_functions_agree_within_a_run() {
        let a = call_ok("legacy_isotime", vec![]);
        let b2 = call_ok("legacy_strftime", vec![]);
        assert_eq!(a, b2);
        let Value::String(day) = call_ok("legacy_isotime", vec![s("2006-01-02")]) else {
            panic!()
        };
        assert_eq!(day.len(), 10);
        assert!(
            call_err("legacy_isotime", vec![s("a"), s("b")]).contains("too many values, 1 needed")
        );
    }

    #[test]
    fn parse_functions() {
        assert_eq!(
            call_ok("rfc3339_parse", vec![s("2023-07-25T23:43:16-07:00")]),
            obj(&[
                ("day", n(25.0)),
                ("hour", n(23.0)),
                ("iso_week", n(30.0)),
                ("iso_year", n(2023.0)),
                ("minute", n(43.0)),
                ("month", n(7.0)),
                ("month_name", s("July")),
                ("second", n(16.0)),
                ("unix", n(1690353796.0)),
                ("weekday", n(2.0)),
                ("weekday_name", s("Tuesday")),
                ("year", n(2023.0)),
                ("year_day", n(206.0)),
            ])
        );
        assert_eq!(
            call_ok("rfc3339_parse", vec![s("2023-07-25 23:43:16.5Z")]),
            call_ok("rfc3339_parse", vec![s("2023-07-25T23:43:16Z")])
        );
        assert_eq!(
            call_err("rfc3339_parse", vec![s("2023-07-25")]),
            "`rfc3339_parse`: argument 1 (`timestamp`): \"2023-07-25\" is not a valid RFC3339 timestamp"
        );
        let v = call_ok("unix_timestamp_parse", vec![n(1690328596.0)]);
        let Value::Object(m) = v else { panic!() };
        assert_eq!(m["rfc3339"], s("2023-07-25T23:43:16Z"));
        assert_eq!(m["weekday_name"], s("Tuesday"));
        assert!(call_err("unix_timestamp_parse", vec![n(1.5)]).contains("whole number of seconds"));
    }
}
