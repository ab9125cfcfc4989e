//! HCL's operators on values.

use hcl_edit::expr::{BinaryOperator, UnaryOperator};

use super::types::parse_number;
use crate::value::{Number, Value};

/// cty equality: same type and same value (a list never equals a tuple).
pub fn equal(a: &Value, b: &Value) -> bool {
    a.equals(b)
}

pub fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(n.0),
        Value::String(s) => parse_number(s),
        _ => None,
    }
}

pub fn to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// Which operand is at fault and why.
pub enum OpError {
    Lhs(String),
    Rhs(String),
    Both(String),
}

pub fn binary(op: BinaryOperator, l: &Value, r: &Value) -> Result<Value, OpError> {
    use BinaryOperator as B;
    match op {
        B::Eq => Ok(Value::Bool(equal(l, r))),
        B::NotEq => Ok(Value::Bool(!equal(l, r))),
        B::And | B::Or => {
            let need = "a bool is required".to_string();
            let a = to_bool(l).ok_or_else(|| OpError::Lhs(need.clone()))?;
            let b = to_bool(r).ok_or(OpError::Rhs(need))?;
            Ok(Value::Bool(if op == B::And { a && b } else { a || b }))
        }
        _ => {
            let need = "a number is required".to_string();
            if matches!(l, Value::Null) {
                return Err(OpError::Lhs("the operand is null".into()));
            }
            if matches!(r, Value::Null) {
                return Err(OpError::Rhs("the operand is null".into()));
            }
            let a = to_number(l).ok_or_else(|| OpError::Lhs(need.clone()))?;
            let b = to_number(r).ok_or(OpError::Rhs(need))?;
            let n = |x: f64| Ok(Value::Number(Number(x)));
            match op {
                B::Plus => n(a + b),
                B::Minus => n(a - b),
                B::Mul => n(a * b),
                B::Div => {
                    if b == 0.0 {
                        Err(OpError::Both("can't divide by zero".into()))
                    } else {
                        n(a / b)
                    }
                }
                B::Mod => {
                    if b == 0.0 {
                        Err(OpError::Both("can't use zero as the modulus".into()))
                    } else {
                        // cty: integer modulo for whole numbers, with the
                        // sign of the dividend (Go's %).
                        n(a % b)
                    }
                }
                B::Less => Ok(Value::Bool(a < b)),
                B::LessEq => Ok(Value::Bool(a <= b)),
                B::Greater => Ok(Value::Bool(a > b)),
                B::GreaterEq => Ok(Value::Bool(a >= b)),
                _ => Err(OpError::Both("unsupported operator".into())),
            }
        }
    }
}

pub fn unary(op: UnaryOperator, v: &Value) -> Result<Value, String> {
    match op {
        UnaryOperator::Not => to_bool(v)
            .map(|b| Value::Bool(!b))
            .ok_or_else(|| "a bool is required".to_string()),
        UnaryOperator::Neg => to_number(v)
            .map(|n| Value::Number(Number(-n)))
            .ok_or_else(|| "a number is required".to_string()),
    }
}
