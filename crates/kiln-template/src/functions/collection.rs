//! Collection functions: alltrue, anytrue, chunklist, coalesce,
//! coalescelist, compact, concat, contains, distinct, element, flatten,
//! index, keys, length, lookup, merge, range, reverse, setintersection,
//! setproduct, setunion, slice, sort, sum, values, zipmap.

use std::collections::BTreeMap;

use unicode_segmentation::UnicodeSegmentation;

use super::{Fail, Func, FuncCtx, P, Param, int_arg, num, num_arg, p, p_null, take_seq, take_str};
use crate::value::{Type, Value, convert_owned, element_type_of, go_quote, unify_unsafe};

const LIST_ANY: P = P::List(&P::Any);
const SET_ANY: P = P::Set(&P::Any);
const OTHER_SETS: Param = p("other_sets", SET_ANY);

pub(crate) const FUNCS: &[Func] = &[
    Func {
        name: "alltrue",
        params: &[p("list", P::List(&P::Bool))],
        var_param: None,
        imp: alltrue,
    },
    Func {
        name: "anytrue",
        params: &[p("list", P::List(&P::Bool))],
        var_param: None,
        imp: anytrue,
    },
    Func {
        name: "chunklist",
        params: &[p("list", LIST_ANY), p("size", P::Number)],
        var_param: None,
        imp: chunklist,
    },
    Func {
        name: "coalesce",
        params: &[],
        var_param: Some(p_null("vals", P::Any)),
        imp: coalesce,
    },
    Func {
        name: "coalescelist",
        params: &[],
        var_param: Some(p_null("vals", P::Any)),
        imp: coalescelist,
    },
    Func {
        name: "compact",
        params: &[p("list", P::List(&P::String))],
        var_param: None,
        imp: compact,
    },
    Func {
        name: "concat",
        params: &[],
        var_param: Some(p("seqs", P::Any)),
        imp: concat,
    },
    Func {
        name: "contains",
        params: &[p("list", P::Any), p("value", P::Any)],
        var_param: None,
        imp: contains,
    },
    Func {
        name: "distinct",
        params: &[p("list", LIST_ANY)],
        var_param: None,
        imp: distinct,
    },
    Func {
        name: "element",
        params: &[p("list", P::Any), p("index", P::Number)],
        var_param: None,
        imp: element,
    },
    Func {
        name: "flatten",
        params: &[p("list", P::Any)],
        var_param: None,
        imp: flatten,
    },
    Func {
        name: "index",
        params: &[p("list", P::Any), p("value", P::Any)],
        var_param: None,
        imp: index,
    },
    Func {
        name: "keys",
        params: &[p("inputMap", P::Any)],
        var_param: None,
        imp: keys,
    },
    Func {
        name: "length",
        params: &[p("value", P::Any)],
        var_param: None,
        imp: length,
    },
    Func {
        name: "lookup",
        params: &[
            p("inputMap", P::Any),
            p("key", P::String),
            p("default", P::Any),
        ],
        var_param: None,
        imp: lookup,
    },
    Func {
        name: "merge",
        params: &[],
        var_param: Some(p_null("maps", P::Any)),
        imp: merge,
    },
    Func {
        name: "range",
        params: &[],
        var_param: Some(p("params", P::Number)),
        imp: range,
    },
    Func {
        name: "reverse",
        params: &[p("list", P::Any)],
        var_param: None,
        imp: reverse,
    },
    Func {
        name: "setintersection",
        params: &[p("first_set", SET_ANY)],
        var_param: Some(OTHER_SETS),
        imp: setintersection,
    },
    Func {
        name: "setproduct",
        params: &[],
        var_param: Some(p("sets", P::Any)),
        imp: setproduct,
    },
    Func {
        name: "setunion",
        params: &[p("first_set", SET_ANY)],
        var_param: Some(OTHER_SETS),
        imp: setunion,
    },
    Func {
        name: "slice",
        params: &[
            p("list", P::Any),
            p("start_index", P::Number),
            p("end_index", P::Number),
        ],
        var_param: None,
        imp: slice,
    },
    Func {
        name: "sort",
        params: &[p("list", P::List(&P::String))],
        var_param: None,
        imp: sort,
    },
    Func {
        name: "sum",
        params: &[p("list", P::Any)],
        var_param: None,
        imp: sum,
    },
    Func {
        name: "values",
        params: &[p("mapping", P::Any)],
        var_param: None,
        imp: values,
    },
    Func {
        name: "zipmap",
        params: &[p("keys", P::List(&P::String)), p("values", P::Any)],
        var_param: None,
        imp: zipmap,
    },
];

fn alltrue(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let items = take_seq(&mut args, 0)?;
    Ok(Value::Bool(items.iter().all(|v| *v == Value::Bool(true))))
}

fn anytrue(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let items = take_seq(&mut args, 0)?;
    Ok(Value::Bool(items.contains(&Value::Bool(true))))
}

fn chunklist(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let size = int_arg(&args, 1).map_err(|f| Fail::arg(1, format!("invalid size: {}", f.msg)))?;
    if size < 0 {
        return Err(Fail::arg(1, "the size argument must be positive"));
    }
    let items = take_seq(&mut args, 0)?;
    if items.is_empty() {
        return Ok(Value::List(vec![]));
    }
    if size == 0 {
        return Ok(Value::List(vec![Value::List(items)]));
    }
    let chunks = items
        .chunks(size as usize)
        .map(|c| Value::List(c.to_vec()))
        .collect();
    Ok(Value::List(chunks))
}

fn coalesce(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let types: Vec<Type> = args.iter().map(Value::ty).collect();
    let Some(ret) = (if types.is_empty() {
        None
    } else {
        unify_unsafe(&types)
    }) else {
        return Err(Fail::call("all arguments must have the same type"));
    };
    for arg in args {
        if arg.is_null() {
            continue;
        }
        let Ok(v) = convert_owned(arg, &ret) else {
            continue;
        };
        if ret == Type::String && v == Value::string("") {
            continue;
        }
        return Ok(v);
    }
    Err(Fail::call("no non-null, non-empty-string arguments"))
}

fn coalescelist(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    if args.is_empty() {
        return Err(Fail::call("at least one argument is required"));
    }
    for (i, arg) in args.iter().enumerate() {
        if !matches!(arg, Value::List(_) | Value::Tuple(_) | Value::Null) {
            return Err(Fail::arg(
                i,
                "coalescelist arguments must be lists or tuples",
            ));
        }
    }
    for arg in args {
        if arg.as_seq().is_some_and(|items| !items.is_empty()) {
            return Ok(arg);
        }
    }
    Err(Fail::call("no non-null arguments"))
}

fn compact(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let items = take_seq(&mut args, 0)?;
    Ok(Value::List(
        items
            .into_iter()
            .filter(|v| matches!(v, Value::String(s) if !s.is_empty()))
            .collect(),
    ))
}

fn concat(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    if args.is_empty() {
        return Err(Fail::call("at least one argument is required"));
    }
    if args.iter().all(|a| matches!(a, Value::List(_))) {
        let types: Vec<Type> = args.iter().map(Value::ty).collect();
        if let Some(common) = unify_unsafe(&types) {
            let mut out = Vec::new();
            for (i, arg) in args.into_iter().enumerate() {
                match convert_owned(arg, &common).map_err(|e| Fail::arg(i, e.to_string()))? {
                    Value::List(items) => out.extend(items),
                    other => out.push(other),
                }
            }
            return Ok(Value::List(out));
        }
    }
    let mut out = Vec::new();
    for (i, arg) in args.into_iter().enumerate() {
        match arg {
            Value::List(items) | Value::Tuple(items) => out.extend(items),
            other => {
                return Err(Fail::arg(
                    i,
                    format!(
                        "all arguments must be lists or tuples; got {}",
                        other.ty().friendly_name()
                    ),
                ));
            }
        }
    }
    Ok(Value::Tuple(out))
}

fn contains(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let Some(items) = args[0].as_seq() else {
        return Err(Fail::call("argument must be list, tuple, or set"));
    };
    Ok(Value::Bool(items.iter().any(|v| args[1].equals(v))))
}

fn distinct(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let items = take_seq(&mut args, 0)?;
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for v in items {
        if !out.iter().any(|seen| seen.equals(&v)) {
            out.push(v);
        }
    }
    Ok(Value::List(out))
}

fn element(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let index = int_arg(&args, 1).map_err(|f| Fail::call(format!("invalid index: {}", f.msg)))?;
    if index < 0 {
        return Err(Fail::call(
            "cannot use element function with a negative index",
        ));
    }
    let items = match &mut args[0] {
        Value::List(items) | Value::Tuple(items) => std::mem::take(items),
        other => {
            return Err(Fail::call(format!(
                "cannot read elements from {}",
                other.ty().friendly_name()
            )));
        }
    };
    if items.is_empty() {
        return Err(Fail::call("cannot use element function with an empty list"));
    }
    let i = (index as usize) % items.len();
    Ok(items.into_iter().nth(i).unwrap_or(Value::Null))
}

fn flatten(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    if args[0].as_seq().is_none() {
        return Err(Fail::call("can only flatten lists, sets and tuples"));
    }
    let items = take_seq(&mut args, 0)?;
    let mut out = Vec::new();
    flatten_into(items, &mut out);
    Ok(Value::Tuple(out))
}

fn flatten_into(items: Vec<Value>, out: &mut Vec<Value>) {
    for v in items {
        match v {
            Value::List(inner) | Value::Set(inner) | Value::Tuple(inner) => {
                flatten_into(inner, out)
            }
            other => out.push(other),
        }
    }
}

fn index(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let items = match &args[0] {
        Value::List(items) | Value::Tuple(items) => items,
        _ => return Err(Fail::call("argument must be a list or tuple")),
    };
    if items.is_empty() {
        return Err(Fail::call("cannot search an empty list"));
    }
    items
        .iter()
        .position(|v| v.equals(&args[1]))
        .map(|i| num(i as f64))
        .ok_or_else(|| Fail::call("item not found"))
}

fn keys(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    match &args[0] {
        Value::Map(m) => Ok(Value::List(
            m.keys().map(|k| Value::string(k.clone())).collect(),
        )),
        Value::Object(m) => Ok(Value::Tuple(
            m.keys().map(|k| Value::string(k.clone())).collect(),
        )),
        _ => Err(Fail::arg(0, "must have map or object type")),
    }
}

fn length(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let n = match &args[0] {
        Value::String(s) => s.graphemes(true).count(),
        Value::List(v) | Value::Set(v) | Value::Tuple(v) => v.len(),
        Value::Map(m) | Value::Object(m) => m.len(),
        _ => {
            return Err(Fail::call(
                "argument must be a string, a collection type, or a structural type",
            ));
        }
    };
    Ok(num(n as f64))
}

fn lookup(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let key = take_str(&mut args, 1)?;
    let default = std::mem::replace(&mut args[2], Value::Null);
    match std::mem::replace(&mut args[0], Value::Null) {
        Value::Object(mut m) => Ok(m.remove(&key).unwrap_or(default)),
        Value::Map(mut m) => {
            let elem_ty = element_type_of(m.values());
            let default = convert_owned(default, &elem_ty).map_err(|_| {
                Fail::arg(
                    2,
                    "the default value must have the same type as the map elements",
                )
            })?;
            Ok(m.remove(&key).unwrap_or(default))
        }
        _ => Err(Fail::arg(
            0,
            "lookup() requires a map as the first argument",
        )),
    }
}

fn merge(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    if args.is_empty() {
        return Ok(Value::Object(BTreeMap::new()));
    }
    let mut first: Option<Type> = None;
    let mut matching = true;
    let mut any_null = false;
    for arg in &args {
        match arg {
            Value::Null => any_null = true,
            Value::Map(_) | Value::Object(_) => {}
            other => {
                return Err(Fail::call(format!(
                    "arguments must be maps or objects, got {}",
                    go_quote(&other.ty().friendly_name())
                )));
            }
        }
        let t = arg.ty();
        match &first {
            None => first = Some(t),
            Some(f) => matching &= *f == t,
        }
    }
    let as_map = matching && !any_null && matches!(args.first(), Some(Value::Map(_)));
    let mut out = BTreeMap::new();
    for arg in args {
        if let Value::Map(m) | Value::Object(m) = arg {
            out.extend(m);
        }
    }
    Ok(if as_map {
        Value::Map(out)
    } else {
        Value::Object(out)
    })
}

fn range(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let (start, end, step) = match args.len() {
        1 => {
            let end = num_arg(&args, 0)?;
            (0.0, end, if end < 0.0 { -1.0 } else { 1.0 })
        }
        2 => {
            let (start, end) = (num_arg(&args, 0)?, num_arg(&args, 1)?);
            (start, end, if end < start { -1.0 } else { 1.0 })
        }
        3 => (num_arg(&args, 0)?, num_arg(&args, 1)?, num_arg(&args, 2)?),
        _ => return Err(Fail::call("must have one, two, or three arguments")),
    };
    let down = step < 0.0;
    if down && end > start {
        return Err(Fail::arg(
            1,
            "end must be less than start when step is negative",
        ));
    }
    if !down && end < start {
        return Err(Fail::arg(
            1,
            "end must be greater than start when step is positive",
        ));
    }
    let mut out = Vec::new();
    let mut v = start;
    loop {
        if (down && v <= end) || (!down && v >= end) {
            break;
        }
        if out.len() >= 1024 {
            return Err(Fail::call(
                "more than 1024 values were generated; either decrease the difference between start and end or use a smaller step",
            ));
        }
        out.push(num(v));
        v += step;
    }
    Ok(Value::List(out))
}

fn reverse(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    match std::mem::replace(&mut args[0], Value::Null) {
        Value::Tuple(mut items) => {
            items.reverse();
            Ok(Value::Tuple(items))
        }
        Value::List(mut items) | Value::Set(mut items) => {
            items.reverse();
            Ok(Value::List(items))
        }
        other => Err(Fail::arg(
            0,
            format!(
                "can only reverse list or tuple values, not {}",
                other.ty().friendly_name()
            ),
        )),
    }
}

/// The sets converted to their common type (cty's set operations).
fn common_sets(args: Vec<Value>) -> Result<Vec<Vec<Value>>, Fail> {
    let etys: Vec<Type> = args
        .iter()
        .filter(|a| a.as_seq().is_some_and(|s| !s.is_empty()))
        .filter_map(|a| a.ty().element_type().cloned())
        .collect();
    let ety = if etys.is_empty() {
        Type::Any
    } else {
        unify_unsafe(&etys)
            .ok_or_else(|| Fail::call("given sets must all have compatible element types"))?
    };
    let want = Type::set(ety);
    args.into_iter()
        .enumerate()
        .map(|(i, a)| match convert_owned(a, &want) {
            Ok(Value::Set(items)) => Ok(items),
            Ok(_) => Ok(Vec::new()),
            Err(e) => Err(Fail::arg(i, e.to_string())),
        })
        .collect()
}

fn setunion(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let sets = common_sets(args)?;
    Ok(Value::new_set(sets.into_iter().flatten().collect()))
}

fn setintersection(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let mut sets = common_sets(args)?.into_iter();
    let mut acc = sets.next().unwrap_or_default();
    for other in sets {
        acc.retain(|v| other.iter().any(|o| o.equals(v)));
    }
    Ok(Value::new_set(acc))
}

fn setproduct(args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    if args.len() < 2 {
        return Err(Fail::call("at least two arguments are required"));
    }
    let mut all_lists = true;
    let mut etys = Vec::with_capacity(args.len());
    for (i, arg) in args.iter().enumerate() {
        let ety = match arg {
            Value::Set(_) => {
                all_lists = false;
                arg.ty().element_type().cloned().unwrap_or(Type::Any)
            }
            Value::List(_) => arg.ty().element_type().cloned().unwrap_or(Type::Any),
            Value::Tuple(items) => {
                if items.is_empty() {
                    Type::Any
                } else {
                    let tys: Vec<Type> = items.iter().map(Value::ty).collect();
                    unify_unsafe(&tys)
                        .ok_or_else(|| Fail::arg(i, "all elements must be of the same type"))?
                }
            }
            _ => return Err(Fail::arg(i, "a set or a list is required")),
        };
        etys.push(ety);
    }
    let mut columns: Vec<Vec<Value>> = Vec::with_capacity(args.len());
    for (i, (arg, ety)) in args.into_iter().zip(&etys).enumerate() {
        let items = match arg {
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => v,
            _ => Vec::new(),
        };
        let converted = items
            .into_iter()
            .map(|v| convert_owned(v, ety).map_err(|e| Fail::arg(i, e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        columns.push(converted);
    }
    let total: usize = columns.iter().map(Vec::len).product();
    let mut out = Vec::with_capacity(total);
    if total > 0 {
        let mut idx = vec![0usize; columns.len()];
        for _ in 0..total {
            out.push(Value::Tuple(
                idx.iter()
                    .zip(&columns)
                    .map(|(&i, col)| col[i].clone())
                    .collect(),
            ));
            for j in (0..idx.len()).rev() {
                idx[j] += 1;
                if idx[j] < columns[j].len() {
                    break;
                }
                idx[j] = 0;
            }
        }
    }
    Ok(if all_lists {
        Value::List(out)
    } else {
        Value::new_set(out)
    })
}

fn slice(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let is_tuple = match &args[0] {
        Value::Set(_) => {
            return Err(Fail::arg(
                0,
                "cannot slice a set, because its elements do not have indices; explicitly convert to a list if the ordering of the result is not important",
            ));
        }
        Value::List(_) => false,
        Value::Tuple(_) => true,
        _ => return Err(Fail::arg(0, "must be a list or tuple value")),
    };
    let len = args[0].as_seq().map_or(0, <[Value]>::len) as i64;
    let start =
        int_arg(&args, 1).map_err(|f| Fail::arg(1, format!("invalid start index: {}", f.msg)))?;
    if start < 0 {
        return Err(Fail::arg(1, "start index must not be less than zero"));
    }
    if start > len {
        return Err(Fail::arg(
            1,
            "start index must not be greater than the length of the list",
        ));
    }
    let end =
        int_arg(&args, 2).map_err(|f| Fail::arg(2, format!("invalid end index: {}", f.msg)))?;
    if end < 0 {
        return Err(Fail::arg(2, "end index must not be less than zero"));
    }
    if end > len {
        return Err(Fail::arg(
            2,
            "end index must not be greater than the length of the list",
        ));
    }
    if start > end {
        return Err(Fail::arg(
            1,
            "start index must not be greater than end index",
        ));
    }
    let items = take_seq(&mut args, 0)?;
    let out: Vec<Value> = items
        .into_iter()
        .skip(start as usize)
        .take((end - start) as usize)
        .collect();
    Ok(if is_tuple {
        Value::Tuple(out)
    } else {
        Value::List(out)
    })
}

fn sort(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let items = take_seq(&mut args, 0)?;
    let mut strings = Vec::with_capacity(items.len());
    for (i, v) in items.into_iter().enumerate() {
        match v {
            Value::String(s) => strings.push(s),
            _ => {
                return Err(Fail::call(format!(
                    "given list element {i} is null; a null string cannot be sorted"
                )));
            }
        }
    }
    strings.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(super::string_list(strings))
}

fn sum(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let kind_ok = matches!(args[0], Value::List(_) | Value::Set(_) | Value::Tuple(_));
    if !kind_ok {
        return Err(match &args[0] {
            Value::Map(_) | Value::Object(_) => Fail::arg(
                0,
                format!(
                    "argument must be list, set, or tuple. Received {}",
                    args[0].ty().friendly_name()
                ),
            ),
            _ => Fail::arg(0, "cannot sum noniterable"),
        });
    }
    let items = take_seq(&mut args, 0)?;
    if items.is_empty() {
        return Err(Fail::arg(0, "cannot sum an empty list"));
    }
    let mut total = 0.0;
    for v in items {
        match convert_owned(v, &Type::Number) {
            Ok(Value::Number(n)) => total += n.0,
            _ => {
                return Err(Fail::arg(
                    0,
                    "argument must be list, set, or tuple of number values",
                ));
            }
        }
    }
    if total.is_nan() {
        return Err(Fail::call("can't compute sum of opposing infinities"));
    }
    Ok(num(total))
}

fn values(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    match std::mem::replace(&mut args[0], Value::Null) {
        Value::Map(m) => Ok(Value::List(m.into_values().collect())),
        Value::Object(m) => Ok(Value::Tuple(m.into_values().collect())),
        _ => Err(Fail::call("values() requires a map as the first argument")),
    }
}

fn zipmap(mut args: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    let keys = take_seq(&mut args, 0)?;
    let (vals, as_object) = match std::mem::replace(&mut args[1], Value::Null) {
        Value::List(v) => (v, false),
        Value::Tuple(v) => (v, true),
        _ => return Err(Fail::call("values argument must be a list or tuple value")),
    };
    if keys.len() != vals.len() {
        return Err(Fail::call(format!(
            "number of keys ({}) does not match number of values ({})",
            keys.len(),
            vals.len()
        )));
    }
    let mut out = BTreeMap::new();
    for (i, (k, v)) in keys.into_iter().zip(vals).enumerate() {
        let Value::String(k) = k else {
            return Err(Fail::call(format!("keys list has null value at index {i}")));
        };
        out.insert(k, v);
    }
    Ok(if as_object {
        Value::Object(out)
    } else {
        Value::Map(out)
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn nums(v: &[f64]) -> Value {
        Value::Tuple(v.iter().map(|x| n(*x)).collect())
    }
    fn num_list(v: &[f64]) -> Value {
        Value::List(v.iter().map(|x| n(*x)).collect())
    }

    #[test]
    fn alltrue_anytrue() {
        assert_eq!(
            call_ok("alltrue", vec![tup(vec![s("true"), b(true)])]),
            b(true)
        );
        assert_eq!(
            call_ok("alltrue", vec![tup(vec![b(true), b(false)])]),
            b(false)
        );
        assert_eq!(call_ok("alltrue", vec![tup(vec![])]), b(true));
        assert_eq!(
            call_ok("alltrue", vec![tup(vec![b(true), Value::Null])]),
            b(false)
        );
        assert_eq!(call_ok("anytrue", vec![tup(vec![s("true")])]), b(true));
        assert_eq!(
            call_ok("anytrue", vec![tup(vec![b(true), b(false)])]),
            b(true)
        );
        assert_eq!(call_ok("anytrue", vec![tup(vec![])]), b(false));
        assert_eq!(
            call_ok("anytrue", vec![tup(vec![Value::Null, b(false)])]),
            b(false)
        );
        assert!(call_err("alltrue", vec![tup(vec![s("yes")])]).contains("a bool is required"));
    }

    #[test]
    fn chunklist_splits() {
        assert_eq!(
            call_ok("chunklist", vec![strs(&["a", "b", "c", "d", "e"]), n(2.0)]),
            list(vec![
                str_list(&["a", "b"]),
                str_list(&["c", "d"]),
                str_list(&["e"])
            ])
        );
        assert_eq!(
            call_ok("chunklist", vec![strs(&["a", "b", "c", "d", "e"]), n(1.0)]),
            list(vec![
                str_list(&["a"]),
                str_list(&["b"]),
                str_list(&["c"]),
                str_list(&["d"]),
                str_list(&["e"])
            ])
        );
        assert_eq!(
            call_ok("chunklist", vec![strs(&["a", "b"]), n(0.0)]),
            list(vec![str_list(&["a", "b"])])
        );
        assert_eq!(call_ok("chunklist", vec![strs(&[]), n(3.0)]), list(vec![]));
        assert_eq!(
            call_err("chunklist", vec![strs(&["a"]), n(-1.0)]),
            "`chunklist`: argument 2 (`size`): the size argument must be positive"
        );
    }

    #[test]
    fn coalesce_and_coalescelist() {
        assert_eq!(call_ok("coalesce", vec![s("a"), s("b")]), s("a"));
        assert_eq!(call_ok("coalesce", vec![s(""), s("b")]), s("b"));
        assert_eq!(call_ok("coalesce", vec![n(1.0), n(2.0)]), n(1.0));
        assert_eq!(call_ok("coalesce", vec![Value::Null, s("x")]), s("x"));
        assert_eq!(call_ok("coalesce", vec![n(1.0), s("")]), s("1"));
        assert_eq!(
            call_err("coalesce", vec![Value::Null, s("")]),
            "`coalesce`: no non-null, non-empty-string arguments"
        );
        assert_eq!(
            call_err("coalesce", vec![n(1.0), b(true)]),
            "`coalesce`: all arguments must have the same type"
        );
        assert_eq!(
            call_ok("coalescelist", vec![strs(&["a", "b"]), strs(&["c", "d"])]),
            strs(&["a", "b"])
        );
        assert_eq!(
            call_ok("coalescelist", vec![strs(&[]), strs(&["c", "d"])]),
            strs(&["c", "d"])
        );
        assert_eq!(
            call_err("coalescelist", vec![strs(&[])]),
            "`coalescelist`: no non-null arguments"
        );
        assert_eq!(
            call_err("coalescelist", vec![s("a")]),
            "`coalescelist`: argument 1 (`vals`): coalescelist arguments must be lists or tuples"
        );
    }

    #[test]
    fn compact_concat_contains_distinct() {
        assert_eq!(
            call_ok(
                "compact",
                vec![tup(vec![s("a"), s(""), s("b"), Value::Null, s("c")])]
            ),
            str_list(&["a", "b", "c"])
        );
        assert_eq!(
            call_ok("concat", vec![strs(&["a", ""]), strs(&["b", "c"])]),
            strs(&["a", "", "b", "c"])
        );
        assert_eq!(
            call_ok("concat", vec![str_list(&["a"]), num_list(&[1.0])]),
            str_list(&["a", "1"])
        );
        assert_eq!(
            call_ok("concat", vec![str_list(&["a"]), nums(&[1.0])]),
            tup(vec![s("a"), n(1.0)])
        );
        assert_eq!(
            call_err("concat", vec![strs(&["a"]), s("b")]),
            "`concat`: argument 2 (`seqs`): all arguments must be lists or tuples; got string"
        );
        assert_eq!(
            call_err("concat", vec![]),
            "`concat`: at least one argument is required"
        );
        assert_eq!(
            call_ok("contains", vec![strs(&["a", "b", "c"]), s("a")]),
            b(true)
        );
        assert_eq!(
            call_ok("contains", vec![strs(&["a", "b", "c"]), s("d")]),
            b(false)
        );
        assert_eq!(call_ok("contains", vec![nums(&[1.0]), s("1")]), b(false));
        assert_eq!(
            call_ok("contains", vec![Value::new_set(vec![s("x")]), s("x")]),
            b(true)
        );
        assert_eq!(
            call_err("contains", vec![s("abc"), s("a")]),
            "`contains`: argument must be list, tuple, or set"
        );
        assert_eq!(
            call_ok("distinct", vec![strs(&["a", "b", "a", "c", "d", "b"])]),
            str_list(&["a", "b", "c", "d"])
        );
    }

    #[test]
    fn element_and_index() {
        assert_eq!(
            call_ok("element", vec![strs(&["a", "b", "c"]), n(1.0)]),
            s("b")
        );
        assert_eq!(
            call_ok("element", vec![strs(&["a", "b", "c"]), n(3.0)]),
            s("a")
        );
        assert_eq!(
            call_err("element", vec![strs(&[]), n(0.0)]),
            "`element`: cannot use element function with an empty list"
        );
        assert_eq!(
            call_err("element", vec![strs(&["a"]), n(-1.0)]),
            "`element`: cannot use element function with a negative index"
        );
        assert_eq!(
            call_err("element", vec![Value::new_set(vec![s("a")]), n(0.0)]),
            "`element`: cannot read elements from set of string"
        );
        assert_eq!(
            call_ok("index", vec![strs(&["a", "b", "c"]), s("b")]),
            n(1.0)
        );
        assert_eq!(
            call_err("index", vec![strs(&["a"]), s("z")]),
            "`index`: item not found"
        );
        assert_eq!(
            call_err("index", vec![strs(&[]), s("z")]),
            "`index`: cannot search an empty list"
        );
        assert_eq!(
            call_err("index", vec![s("abc"), s("a")]),
            "`index`: argument must be a list or tuple"
        );
    }

    #[test]
    fn flatten_nests() {
        assert_eq!(
            call_ok(
                "flatten",
                vec![tup(vec![strs(&["a", "b"]), strs(&[]), strs(&["c"])])]
            ),
            strs(&["a", "b", "c"])
        );
        assert_eq!(
            call_ok(
                "flatten",
                vec![tup(vec![tup(vec![s("a"), tup(vec![s("b")])]), s("c")])]
            ),
            strs(&["a", "b", "c"])
        );
        assert_eq!(call_ok("flatten", vec![tup(vec![])]), tup(vec![]));
        assert_eq!(
            call_err("flatten", vec![s("a")]),
            "`flatten`: can only flatten lists, sets and tuples"
        );
    }

    #[test]
    fn keys_values_lookup_length() {
        let o = obj(&[("a", n(1.0)), ("c", n(2.0)), ("d", n(3.0))]);
        assert_eq!(call_ok("keys", vec![o.clone()]), strs(&["a", "c", "d"]));
        assert_eq!(call_ok("values", vec![o.clone()]), nums(&[1.0, 2.0, 3.0]));
        let m = map(&[("b", s("x")), ("a", s("y"))]);
        assert_eq!(call_ok("keys", vec![m.clone()]), str_list(&["a", "b"]));
        assert_eq!(call_ok("values", vec![m.clone()]), str_list(&["y", "x"]));
        assert_eq!(
            call_err("keys", vec![strs(&[])]),
            "`keys`: argument 1 (`inputMap`): must have map or object type"
        );
        assert_eq!(
            call_err("values", vec![s("a")]),
            "`values`: values() requires a map as the first argument"
        );
        let lk = obj(&[("a", s("ay")), ("b", s("bee"))]);
        assert_eq!(
            call_ok("lookup", vec![lk.clone(), s("a"), s("what?")]),
            s("ay")
        );
        assert_eq!(call_ok("lookup", vec![lk, s("c"), s("what?")]), s("what?"));
        assert_eq!(call_ok("lookup", vec![m.clone(), s("z"), n(1.0)]), s("1"));
        assert_eq!(
            call_err("lookup", vec![m, s("z"), tup(vec![])]),
            "`lookup`: argument 3 (`default`): the default value must have the same type as the map elements"
        );
        assert_eq!(
            call_err("lookup", vec![s("x"), s("z"), s("d")]),
            "`lookup`: argument 1 (`inputMap`): lookup() requires a map as the first argument"
        );
        assert_eq!(call_ok("length", vec![tup(vec![])]), n(0.0));
        assert_eq!(call_ok("length", vec![strs(&["a", "b"])]), n(2.0));
        assert_eq!(call_ok("length", vec![obj(&[("a", s("b"))])]), n(1.0));
        assert_eq!(call_ok("length", vec![s("hello")]), n(5.0));
        assert_eq!(call_ok("length", vec![s("👾🕹️")]), n(2.0));
        assert!(call_err("length", vec![n(1.0)]).contains("argument must be a string"));
    }

    #[test]
    fn merge_keeps_maps_and_objects() {
        assert_eq!(
            call_ok(
                "merge",
                vec![
                    obj(&[("a", s("b")), ("c", s("d"))]),
                    obj(&[("e", s("f")), ("c", s("z"))])
                ]
            ),
            obj(&[("a", s("b")), ("c", s("z")), ("e", s("f"))])
        );
        assert_eq!(
            call_ok("merge", vec![map(&[("a", s("b"))]), map(&[("c", s("d"))])]),
            map(&[("a", s("b")), ("c", s("d"))])
        );
        assert_eq!(
            call_ok("merge", vec![map(&[("a", s("b"))]), map(&[("c", n(1.0))])]),
            obj(&[("a", s("b")), ("c", n(1.0))])
        );
        assert_eq!(
            call_ok("merge", vec![Value::Null, obj(&[("a", n(1.0))])]),
            obj(&[("a", n(1.0))])
        );
        assert_eq!(call_ok("merge", vec![]), obj(&[]));
        assert_eq!(
            call_err("merge", vec![strs(&["a"])]),
            "`merge`: arguments must be maps or objects, got \"tuple\""
        );
    }

    #[test]
    fn range_counts() {
        assert_eq!(call_ok("range", vec![n(3.0)]), num_list(&[0.0, 1.0, 2.0]));
        assert_eq!(
            call_ok("range", vec![n(1.0), n(4.0)]),
            num_list(&[1.0, 2.0, 3.0])
        );
        assert_eq!(
            call_ok("range", vec![n(1.0), n(8.0), n(2.0)]),
            num_list(&[1.0, 3.0, 5.0, 7.0])
        );
        assert_eq!(
            call_ok("range", vec![n(1.0), n(4.0), n(0.5)]),
            num_list(&[1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
        );
        assert_eq!(
            call_ok("range", vec![n(4.0), n(1.0)]),
            num_list(&[4.0, 3.0, 2.0])
        );
        assert_eq!(
            call_ok("range", vec![n(10.0), n(5.0), n(-2.0)]),
            num_list(&[10.0, 8.0, 6.0])
        );
        assert_eq!(
            call_ok("range", vec![n(-3.0)]),
            num_list(&[0.0, -1.0, -2.0])
        );
        assert_eq!(call_ok("range", vec![n(0.0)]), num_list(&[]));
        assert_eq!(
            call_err("range", vec![n(1.0), n(4.0), n(-1.0)]),
            "`range`: argument 2 (`params`): end must be less than start when step is negative"
        );
        assert!(call_err("range", vec![n(0.0), n(5.0), n(0.0)]).contains("more than 1024 values"));
        assert!(call_err("range", vec![n(2000.0)]).contains("more than 1024 values"));
        assert_eq!(
            call_err("range", vec![]),
            "`range`: must have one, two, or three arguments"
        );
    }

    #[test]
    fn reverse_and_slice() {
        assert_eq!(
            call_ok("reverse", vec![nums(&[1.0, 2.0, 3.0])]),
            nums(&[3.0, 2.0, 1.0])
        );
        assert_eq!(
            call_ok("reverse", vec![str_list(&["a", "b"])]),
            str_list(&["b", "a"])
        );
        assert_eq!(
            call_err("reverse", vec![s("ab")]),
            "`reverse`: argument 1 (`list`): can only reverse list or tuple values, not string"
        );
        assert_eq!(
            call_ok("slice", vec![strs(&["a", "b", "c", "d"]), n(1.0), n(3.0)]),
            strs(&["b", "c"])
        );
        assert_eq!(
            call_ok("slice", vec![str_list(&["a", "b"]), n(2.0), n(2.0)]),
            str_list(&[])
        );
        assert_eq!(
            call_err("slice", vec![strs(&["a"]), n(0.0), n(2.0)]),
            "`slice`: argument 3 (`end_index`): end index must not be greater than the length of the list"
        );
        assert_eq!(
            call_err("slice", vec![strs(&["a", "b"]), n(2.0), n(1.0)]),
            "`slice`: argument 2 (`start_index`): start index must not be greater than end index"
        );
        assert!(
            call_err("slice", vec![Value::new_set(vec![s("a")]), n(0.0), n(1.0)])
                .contains("cannot slice a set")
        );
    }

    #[test]
    fn set_functions() {
        assert_eq!(
            call_ok(
                "setunion",
                vec![strs(&["a", "b"]), strs(&["b", "c"]), strs(&["d"])]
            ),
            Value::Set(vec![s("a"), s("b"), s("c"), s("d")])
        );
        assert_eq!(
            call_ok(
                "setintersection",
                vec![strs(&["a", "b"]), strs(&["b", "c"]), strs(&["b", "d"])]
            ),
            Value::Set(vec![s("b")])
        );
        assert_eq!(
            call_ok("setunion", vec![strs(&["a"]), nums(&[1.0])]),
            Value::Set(vec![s("1"), s("a")])
        );
        assert_eq!(
            call_ok("setunion", vec![strs(&[]), nums(&[2.0, 1.0])]),
            Value::Set(vec![n(1.0), n(2.0)])
        );
        assert_eq!(
            call_ok(
                "setproduct",
                vec![strs(&["development", "staging"]), strs(&["app1", "app2"])]
            ),
            list(vec![
                strs(&["development", "app1"]),
                strs(&["development", "app2"]),
                strs(&["staging", "app1"]),
                strs(&["staging", "app2"]),
            ])
        );
        assert_eq!(
            call_ok("setproduct", vec![strs(&["a"]), strs(&[])]),
            list(vec![])
        );
        assert_eq!(
            call_ok(
                "setproduct",
                vec![Value::new_set(vec![s("b"), s("a")]), nums(&[1.0])]
            ),
            Value::Set(vec![tup(vec![s("a"), n(1.0)]), tup(vec![s("b"), n(1.0)])])
        );
        assert_eq!(
            call_err("setproduct", vec![strs(&["a"])]),
            "`setproduct`: at least two arguments are required"
        );
        assert_eq!(
            call_err("setproduct", vec![strs(&["a"]), s("b")]),
            "`setproduct`: argument 2 (`sets`): a set or a list is required"
        );
    }

    #[test]
    fn sort_sum_zipmap() {
        assert_eq!(
            call_ok("sort", vec![strs(&["e", "d", "a", "x"])]),
            str_list(&["a", "d", "e", "x"])
        );
        assert_eq!(
            call_ok("sort", vec![nums(&[10.0, 9.0, 1.0])]),
            str_list(&["1", "10", "9"])
        );
        assert_eq!(
            call_err("sort", vec![tup(vec![s("a"), Value::Null])]),
            "`sort`: given list element 1 is null; a null string cannot be sorted"
        );
        assert_eq!(call_ok("sum", vec![nums(&[10.0, 13.0, 6.0, 4.5])]), n(33.5));
        assert_eq!(call_ok("sum", vec![tup(vec![s("1"), n(2.0)])]), n(3.0));
        assert_eq!(
            call_err("sum", vec![tup(vec![])]),
            "`sum`: argument 1 (`list`): cannot sum an empty list"
        );
        assert_eq!(
            call_err("sum", vec![tup(vec![s("x")])]),
            "`sum`: argument 1 (`list`): argument must be list, set, or tuple of number values"
        );
        assert_eq!(
            call_ok("zipmap", vec![strs(&["a", "b"]), nums(&[1.0, 2.0])]),
            obj(&[("a", n(1.0)), ("b", n(2.0))])
        );
        assert_eq!(
            call_ok("zipmap", vec![strs(&["a", "b"]), str_list(&["x", "y"])]),
            map(&[("a", s("x")), ("b", s("y"))])
        );
        assert_eq!(
            call_err("zipmap", vec![strs(&["a"]), nums(&[1.0, 2.0])]),
            "`zipmap`: number of keys (1) does not match number of values (2)"
        );
    }
}
