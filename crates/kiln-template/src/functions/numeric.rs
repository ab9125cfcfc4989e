//! Numeric functions: abs, ceil, floor, log, max, min, parseint, pow, signum.
//! (`sum` is with the collection functions, as Packer documents it.)

use super::{Fail, Func, FuncCtx, P, Param, int_arg, num, num_arg, p, str_arg};
use crate::value::Value;

pub(crate) const FUNCS: &[Func] = &[
    Func {
        name: "abs",
        params: &[p("num", P::Number)],
        var_param: None,
        imp: abs,
    },
    Func {
        name: "ceil",
        params: &[p("num", P::Number)],
        var_param: None,
        imp: ceil,
    },
    Func {
        name: "floor",
        params: &[p("num", P::Number)],
        var_param: None,
        imp: floor,
    },
    Func {
        name: "log",
        params: &[p("num", P::Number), p("base", P::Number)],
        var_param: None,
        imp: log,
    },
    Func {
        name: "max",
        params: &[],
        var_param: Some(NUMBERS),
        imp: max,
    },
    Func {
        name: "min",
        params: &[],
        var_param: Some(NUMBERS),
        imp: min,
    },
    Func {
        name: "parseint",
        params: &[p("number", P::Any), p("base", P::Number)],
        var_param: None,
        imp: parseint,
    },
    Func {
        name: "pow",
        params: &[p("num", P::Number), p("power", P::Number)],
        var_param: None,
        imp: pow,
    },
    Func {
        name: "signum",
        params: &[p("num", P::Number)],
        var_param: None,
        imp: signum,
    },
];

const NUMBERS: Param = p("numbers", P::Number);

/// `-0` where cty's integer arithmetic would give `0`.
fn no_negative_zero(v: f64) -> f64 {
    if v == 0.0 { 0.0 } else { v }
}

fn abs(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(num(num_arg(&args, 0)?.abs()))
}

fn ceil(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(num(no_negative_zero(num_arg(&args, 0)?.ceil())))
}

fn floor(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Ok(num(no_negative_zero(num_arg(&args, 0)?.floor())))
}

/// cty computes these in float64 and cannot hold NaN.
fn finite_or_nan_error(v: f64, what: &str) -> Result<Value, Fail> {
    if v.is_nan() {
        Err(Fail::call(format!("the result of {what} is not a number")))
    } else {
        Ok(num(v))
    }
}

fn log(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let (x, base) = (num_arg(&args, 0)?, num_arg(&args, 1)?);
    finite_or_nan_error(x.ln() / base.ln(), &format!("log({x}, {base})"))
}

fn pow(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let (x, y) = (num_arg(&args, 0)?, num_arg(&args, 1)?);
    finite_or_nan_error(x.powf(y), &format!("pow({x}, {y})"))
}

fn signum(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    // cty reads the argument as a Go int: fractions are refused.
    let v = int_arg(&args, 0)?;
    Ok(num(v.signum() as f64))
}

fn max(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    extreme(&args, |a, b| a > b)
}

fn min(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    extreme(&args, |a, b| a < b)
}

fn extreme(args: &[Value], better: fn(f64, f64) -> bool) -> Result<Value, Fail> {
    if args.is_empty() {
        return Err(Fail::call("must pass at least one number"));
    }
    let mut best = num_arg(args, 0)?;
    for i in 1..args.len() {
        let v = num_arg(args, i)?;
        if better(v, best) {
            best = v;
        }
    }
    Ok(num(best))
}

fn parseint(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let Value::String(_) = &args[0] else {
        let found = args[0].ty().friendly_name();
        return Err(Fail::arg(
            0,
            format!("first argument must be a string, not {found}"),
        ));
    };
    let text = str_arg(&args, 0)?;
    let base = int_arg(&args, 1)?;
    if !(2..=62).contains(&base) {
        return Err(Fail::arg(
            1,
            "base must be a whole number between 2 and 62 inclusive",
        ));
    }
    parse_big_int(text, base as u32).map(num).ok_or_else(|| {
        Fail::arg(
            0,
            format!(
                "cannot parse {} as a base {base} integer",
                crate::value::go_quote(text)
            ),
        )
    })
}

/// Go's `big.Int.SetString(s, base)` for a base from 2 to 62, as a float.
fn parse_big_int(s: &str, base: u32) -> Option<f64> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut acc = 0f64;
    for c in digits.chars() {
        let d = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 10,
            'A'..='Z' if base <= 36 => c as u32 - 'A' as u32 + 10,
            'A'..='Z' => c as u32 - 'A' as u32 + 36,
            _ => return None,
        };
        if d >= base {
            return None;
        }
        acc = acc * base as f64 + d as f64;
    }
    Some(if neg { -acc } else { acc })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn abs_ceil_floor() {
        assert_eq!(call_ok("abs", vec![n(23.0)]), n(23.0));
        assert_eq!(call_ok("abs", vec![n(-12.4)]), n(12.4));
        assert_eq!(call_ok("abs", vec![n(0.0)]), n(0.0));
        assert_eq!(call_ok("ceil", vec![n(5.0)]), n(5.0));
        assert_eq!(call_ok("ceil", vec![n(5.1)]), n(6.0));
        assert_eq!(shown(&call_ok("ceil", vec![n(-0.5)])), "0");
        assert_eq!(call_ok("floor", vec![n(4.9)]), n(4.0));
        assert_eq!(call_ok("floor", vec![n(-4.1)]), n(-5.0));
        assert_eq!(call_ok("floor", vec![n(f64::INFINITY)]), n(f64::INFINITY));
    }

    #[test]
    fn log_and_pow() {
        assert_eq!(
            call_ok("log", vec![n(50.0), n(10.0)]),
            n(50f64.ln() / 10f64.ln())
        );
        assert_eq!(call_ok("log", vec![n(16.0), n(2.0)]), n(4.0));
        assert_eq!(call_ok("log", vec![n(1.0), n(10.0)]), n(0.0));
        assert_eq!(call_ok("log", vec![n(0.0), n(10.0)]), n(f64::NEG_INFINITY));
        assert!(call_err("log", vec![n(-1.0), n(10.0)]).contains("not a number"));
        assert_eq!(call_ok("pow", vec![n(3.0), n(2.0)]), n(9.0));
        assert_eq!(call_ok("pow", vec![n(4.0), n(0.0)]), n(1.0));
        assert_eq!(call_ok("pow", vec![n(2.0), n(-1.0)]), n(0.5));
        assert!(call_err("pow", vec![n(-8.0), n(0.5)]).contains("not a number"));
    }

    #[test]
    fn signum_wants_whole_numbers() {
        assert_eq!(call_ok("signum", vec![n(-13.0)]), n(-1.0));
        assert_eq!(call_ok("signum", vec![n(0.0)]), n(0.0));
        assert_eq!(call_ok("signum", vec![n(344.0)]), n(1.0));
        assert_eq!(
            call_err("signum", vec![n(1.5)]),
            "`signum`: argument 1 (`num`): value must be a whole number, between -9223372036854775808 and 9223372036854775807"
        );
    }

    #[test]
    fn max_and_min() {
        assert_eq!(call_ok("max", vec![n(12.0), n(54.0), n(3.0)]), n(54.0));
        assert_eq!(call_ok("min", vec![n(12.0), n(54.0), n(3.0)]), n(3.0));
        assert_eq!(call_ok("max", vec![s("7"), n(5.0)]), n(7.0));
        assert_eq!(
            call_err("max", vec![]),
            "`max`: must pass at least one number"
        );
        assert_eq!(
            call_err("min", vec![n(1.0), s("a")]),
            "`min`: argument 2 (`numbers`): a number is required"
        );
    }

    #[test]
    fn parseint_bases() {
        assert_eq!(call_ok("parseint", vec![s("100"), n(10.0)]), n(100.0));
        assert_eq!(call_ok("parseint", vec![s("FF"), n(16.0)]), n(255.0));
        assert_eq!(call_ok("parseint", vec![s("-10"), n(16.0)]), n(-16.0));
        assert_eq!(
            call_ok("parseint", vec![s("1011111011101111"), n(2.0)]),
            n(48879.0)
        );
        assert_eq!(call_ok("parseint", vec![s("aA"), n(62.0)]), n(656.0));
        assert_eq!(call_ok("parseint", vec![s("12"), n(62.0)]), n(64.0));
        assert_eq!(
            call_err("parseint", vec![s("FF"), n(10.0)]),
            "`parseint`: argument 1 (`number`): cannot parse \"FF\" as a base 10 integer"
        );
        assert_eq!(
            call_err("parseint", vec![s("1"), n(1.0)]),
            "`parseint`: argument 2 (`base`): base must be a whole number between 2 and 62 inclusive"
        );
        assert_eq!(
            call_err("parseint", vec![n(1.0), n(10.0)]),
            "`parseint`: argument 1 (`number`): first argument must be a string, not number"
        );
        assert!(call_err("parseint", vec![s(""), n(10.0)]).contains("cannot parse"));
        assert!(call_err("parseint", vec![s("1_000"), n(10.0)]).contains("cannot parse"));
    }
}
