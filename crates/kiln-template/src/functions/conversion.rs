//! Type conversion. Packer's conversion functions are `can`, `try` and
//! `convert`, special forms of the evaluator (`convert` uses
//! [`crate::value::convert`]). Packer has none of Terraform's `tostring`,
//! `tonumber`, `tobool`, `tolist`, `toset` and `tomap`: a template calling
//! them fails in Packer, so it fails here too, with a hint.

/// The message for a call to a function the library does not have, with a
/// hint when it is a Terraform function Packer lacks.
pub(crate) fn unknown_function_message(name: &str) -> String {
    match hint_for_unknown_function(name) {
        Some(hint) => format!("call to unknown function `{name}`; {hint}"),
        None => format!("call to unknown function `{name}`"),
    }
}

/// A hint for a function that Terraform has and Packer does not.
pub fn hint_for_unknown_function(name: &str) -> Option<String> {
    let ty = match name {
        "tostring" => "string",
        "tonumber" => "number",
        "tobool" => "bool",
        "tolist" => "list(any)",
        "toset" => "set(any)",
        "tomap" => "map(any)",
        "filemd5" | "filesha1" | "filesha256" | "filesha512" => {
            let hash = &name[4..];
            return Some(format!("Packer has no `{name}`: use `{hash}(file(path))`"));
        }
        "strlen" => return Some("Packer has no `strlen`: use `length(string)`".into()),
        "setsubtract" | "matchkeys" | "transpose" | "one" | "sensitive" | "nonsensitive"
        | "templatestring" | "base64sha256" | "base64sha512" | "filebase64sha256"
        | "filebase64sha512" | "plantimestamp" | "timecmp" | "cidrcontains" | "issensitive"
        | "ephemeralasnull" => {
            return Some(format!(
                "`{name}` is a Terraform function that Packer does not have"
            ));
        }
        _ => return None,
    };
    Some(format!(
        "`{name}` is a Terraform function that Packer does not have: use `convert(value, {ty})`"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn terraform_conversion_functions_are_absent_with_a_hint() {
        for (name, ty) in [
            ("tostring", "string"),
            ("tonumber", "number"),
            ("tobool", "bool"),
            ("tolist", "list(any)"),
            ("toset", "set(any)"),
            ("tomap", "map(any)"),
        ] {
            assert!(!super::super::is_function(name));
            let e = call_err(name, vec![s("1")]);
            assert!(e.contains(&format!("use `convert(value, {ty})`")), "{e}");
        }
        assert_eq!(
            hint_for_unknown_function("filesha256").unwrap(),
            "Packer has no `filesha256`: use `sha256(file(path))`"
        );
        assert_eq!(hint_for_unknown_function("upperr"), None);
    }
}
