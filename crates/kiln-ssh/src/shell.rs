//! POSIX shell quoting for the remote commands kiln builds.

/// Quotes `s` as one POSIX shell word: safe words are returned as they are,
/// anything else is put in single quotes (`'` written as `'\''`).
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b))
    {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quotes a remote path like [`quote`], but a leading `~` or `~/` stays
/// outside the quotes so the remote shell expands it to the home directory.
pub fn quote_path(s: &str) -> String {
    if s == "~" {
        return "~".to_owned();
    }
    match s.strip_prefix("~/") {
        Some("") => "~/".to_owned(),
        Some(rest) => format!("~/{}", quote(rest)),
        None => quote(s),
    }
}

/// Quotes `s` like [`quote_path`] but leaves the glob characters `*`, `?` and
/// `[`…`]` outside the quotes, so the remote shell expands them (as Packer's
/// download of `dir/*` does) while spaces and other specials stay literal.
pub fn quote_glob(s: &str) -> String {
    let (mut out, s) = match s.strip_prefix("~/") {
        Some(rest) => ("~/".to_owned(), rest),
        None if s == "~" => return "~".to_owned(),
        None => (String::new(), s),
    };
    let mut lit = String::new();
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']') {
            if !lit.is_empty() {
                out.push_str(&quote(&lit));
                lit.clear();
            }
            out.push(c);
        } else {
            lit.push(c);
        }
    }
    if !lit.is_empty() {
        out.push_str(&quote(&lit));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh_echo(word: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' {word}"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn quote_round_trips_through_sh() {
        for s in [
            "plain", "/tmp/a b", "it's", "$HOME", "`id`", "a\nb", "", "'", "x'\"y", "*",
        ] {
            assert_eq!(sh_echo(&quote(s)), s, "quote({s:?}) = {}", quote(s));
        }
    }

    #[test]
    fn quote_path_lets_tilde_expand() {
        let home = std::env::var("HOME").unwrap();
        assert_eq!(sh_echo(&quote_path("~/a b")), format!("{home}/a b"));
        assert_eq!(sh_echo(&quote_path("~")), home);
        assert_eq!(sh_echo(&quote_path("/x/~y")), "/x/~y");
        assert_eq!(sh_echo(&quote_glob("~/a b")), format!("{home}/a b"));
    }

    #[test]
    fn quote_glob_keeps_globs_active() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a 1.log"), "").unwrap();
        std::fs::write(dir.path().join("b.log"), "").unwrap();
        std::fs::write(dir.path().join("c.txt"), "").unwrap();
        let pattern = format!("{}/*.log", dir.path().display());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for f in {}; do echo \"$f\"; done",
                quote_glob(&pattern)
            ))
            .output()
            .unwrap();
        let got = String::from_utf8(out.stdout).unwrap();
        let names: Vec<&str> = got.lines().map(|l| l.rsplit('/').next().unwrap()).collect();
        assert_eq!(names, ["a 1.log", "b.log"]);
    }
}
