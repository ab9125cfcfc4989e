//! Contextual functions: env, and the secret-store functions Packer offers
//! (vault, consul_key, aws_secretsmanager, aws_secretsmanager_raw), which
//! kiln refuses with a clear error.

use super::{Fail, Func, FuncCtx, P, p, str_arg};
use crate::value::Value;

pub(crate) const FUNCS: &[Func] = &[
    Func {
        name: "aws_secretsmanager",
        params: &[p("name", P::String), p("key", P::String)],
        var_param: None,
        imp: aws_secretsmanager,
    },
    Func {
        name: "aws_secretsmanager_raw",
        params: &[p("name", P::String)],
        var_param: None,
        imp: aws_secretsmanager_raw,
    },
    Func {
        name: "consul_key",
        params: &[p("key", P::String)],
        var_param: None,
        imp: consul_key,
    },
    Func {
        name: "env",
        params: &[p("key", P::String)],
        var_param: None,
        imp: env,
    },
    Func {
        name: "vault",
        params: &[p("path", P::String), p("key", P::String)],
        var_param: None,
        imp: vault,
    },
];

/// `env(key)`: the variable's value, or `""` when it is unset. Packer
/// offers `env` only while it evaluates a variable's `default`.
fn env(args: Vec<Value>, ctx: &FuncCtx<'_>) -> Result<Value, Fail> {
    if !ctx.env_allowed {
        return Err(Fail::call(
            "`env` can only be used in the `default` of a `variable` block, as Packer allows; \
             elsewhere, declare a variable with `default = env(\"NAME\")` or set it with `PKR_VAR_name`",
        ));
    }
    let key = str_arg(&args, 0)?;
    Ok(Value::String(
        std::env::var_os(key)
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default(),
    ))
}

fn unsupported(name: &str, store: &str) -> Fail {
    Fail::call(format!(
        "`{name}` is not supported by kiln: it would read secrets from {store} while the template \
         loads; pass the secret in a sensitive variable instead (`-var`, a var file or `PKR_VAR_name`)"
    ))
}

fn vault(_: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Err(unsupported("vault", "HashiCorp Vault"))
}

fn consul_key(_: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Err(unsupported("consul_key", "Consul"))
}

fn aws_secretsmanager(_: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Err(unsupported("aws_secretsmanager", "AWS Secrets Manager"))
}

fn aws_secretsmanager_raw(_: Vec<Value>, _: &FuncCtx<'_>) -> Result<Value, Fail> {
    Err(unsupported("aws_secretsmanager_raw", "AWS Secrets Manager"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::super::testing::*;
    use super::super::{FuncCtx, call};
    use super::*;

    #[test]
    fn env_only_where_packer_allows_it() {
        assert!(
            call_err("env", vec![s("HOME")])
                .contains("can only be used in the `default` of a `variable` block")
        );
        let ctx = FuncCtx {
            cwd: Path::new("/"),
            env_allowed: true,
            render_template: &|_: &str, _: &Path, _: &BTreeMap<String, Value>| Err("no".to_string()),
        };
        let home = std::env::var("HOME").unwrap();
        assert_eq!(call("env", vec![s("HOME")], &ctx).unwrap(), s(&home));
        assert_eq!(
            call("env", vec![s("KILN_SURELY_UNSET_VARIABLE_42")], &ctx).unwrap(),
            s("")
        );
    }

    #[test]
    fn secret_stores_are_refused() {
        for (name, args) in [
            ("vault", vec![s("secret/data/x"), s("k")]),
            ("consul_key", vec![s("k")]),
            ("aws_secretsmanager", vec![s("n"), s("k")]),
            ("aws_secretsmanager_raw", vec![s("n")]),
        ] {
            let e = call_err(name, args);
            assert!(e.contains("is not supported by kiln"), "{e}");
        }
        assert!(call_err("vault", vec![s("only-one")]).contains("expected 2 arguments"));
    }
}
