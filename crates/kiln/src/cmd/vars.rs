//! `kiln vars explain NAME`: the whole ladder of values for one variable.

use std::cmp::Ordering;

use kiln_template::decode::did_you_mean;
use kiln_template::load::{self, Assignment, OriginKind, Variable};

use super::inspect::show;
use crate::cli::TemplateArgs;
use crate::context::Context;
use crate::exit::Exit;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The variable (`name` or `var.name`).
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub template: TemplateArgs,
}

pub fn explain(args: &ExplainArgs, cx: &Context) -> Exit {
    let opts = match args.template.load_options(&cx.settings) {
        Ok(o) => o,
        Err(m) => return crate::cli::usage_error(&m),
    };
    let name = args.name.strip_prefix("var.").unwrap_or(&args.name);
    let (variables, failure) = match load::load(&opts) {
        Ok(l) => {
            render::diagnostics(&[], &l.warnings);
            (l.variables, None)
        }
        Err(f) => (f.variables.clone(), Some(f)),
    };
    let Some(var) = variables.get(name) else {
        if let Some(f) = &failure {
            super::report_failure(f);
            return Exit::Usage;
        }
        let names: Vec<&str> = variables.keys().map(String::as_str).collect();
        let hint = did_you_mean(name, &names).map(|s| format!("did you mean `{s}`?"));
        render::error(
            &format!("no variable named `{name}` is declared"),
            hint.as_deref(),
        );
        return Exit::Usage;
    };
    render::out_raw(&ladder(var));
    if let Some(f) = &failure {
        super::report_failure(f);
        return Exit::Usage;
    }
    Exit::Ok
}

fn place(a: &Assignment) -> String {
    match (&a.given_as, &a.file, a.line) {
        (Some(g), _, _) => g.clone(),
        (None, Some(f), Some(l)) => format!("{f}:{l}"),
        (None, Some(f), None) => f.to_string(),
        _ => "-".into(),
    }
}

/// Compare names the way a reader does: digit runs as numbers.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (x.peek().copied(), y.peek().copied()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let mut n1 = String::new();
                while let Some(c) = x.peek().copied().filter(char::is_ascii_digit) {
                    n1.push(c);
                    x.next();
                }
                let mut n2 = String::new();
                while let Some(d) = y.peek().copied().filter(char::is_ascii_digit) {
                    n2.push(d);
                    y.next();
                }
                let t1 = n1.trim_start_matches('0');
                let t2 = n2.trim_start_matches('0');
                let o = t1.len().cmp(&t2.len()).then_with(|| t1.cmp(t2));
                if o != Ordering::Equal {
                    return o;
                }
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(&d);
                }
                x.next();
                y.next();
            }
        }
    }
}

fn base(f: &str) -> &str {
    f.rsplit('/').next().unwrap_or(f)
}

/// The ladder as text.
pub fn ladder(v: &Variable) -> String {
    let mut s = format!("var.{}  ({}", v.name, v.type_string());
    if v.sensitive {
        s.push_str(", sensitive");
    }
    s.push_str(&format!(", declared at {})\n", v.span));
    if let Some(d) = &v.description {
        s.push_str(&format!("  {d}\n"));
    }
    s.push('\n');
    if v.history.is_empty() {
        s.push_str(
            "  no value: no default, no environment variable, no var file and no -var sets it\n",
        );
        return s;
    }
    s.push_str("  precedence (lowest first): default < PKR_VAR_ < *.auto.pkrvars (sorted by name) < -var-file (in order) < -var\n\n");
    let rows: Vec<(String, String, String)> = v
        .history
        .iter()
        .map(|a| {
            (
                a.kind.as_str().to_string(),
                place(a),
                show(&a.value, v.sensitive),
            )
        })
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.2.chars().count()).max().unwrap_or(0);
    let last = rows.len() - 1;
    for (i, (kind, at, value)) in rows.iter().enumerate() {
        let mark = if i == last { "=>" } else { "  " };
        let pad1 = " ".repeat(w1.saturating_sub(at.chars().count()));
        let pad2 = " ".repeat(w2.saturating_sub(value.chars().count()));
        s.push_str(&format!("{mark} {kind:<w0$}  {at}{pad1}  {value}{pad2}"));
        if i == last {
            s.push_str("  <- wins");
        } else {
            s.push_str("  (overridden)");
        }
        s.push('\n');
    }
    // A winner from an auto var file that sorts after one a reader would
    // expect to come later (`9-x` after `10-y`).
    if let Some(w) = v
        .history
        .last()
        .filter(|a| a.kind == OriginKind::AutoVarFile)
    {
        let wf = w.file.as_deref().unwrap_or("");
        for a in v
            .history
            .iter()
            .filter(|a| a.kind == OriginKind::AutoVarFile)
        {
            let af = a.file.as_deref().unwrap_or("");
            if af != wf && natural_cmp(base(af), base(wf)) == Ordering::Greater {
                s.push_str(&format!(
                    "\nnote: `{}` wins over `{}` because auto var files load in plain character order, where `{}` sorts after `{}` (numbers are not compared as numbers)\n",
                    base(wf),
                    base(af),
                    base(wf),
                    base(af)
                ));
                break;
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers() {
        assert_eq!(natural_cmp("9-x", "10-y"), Ordering::Less);
        assert_eq!(natural_cmp("a2", "a10"), Ordering::Less);
        assert_eq!(natural_cmp("b", "a"), Ordering::Greater);
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
    }
}
