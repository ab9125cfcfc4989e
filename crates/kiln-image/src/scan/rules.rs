//! The rule table: every rule id the scan can report, its severity and what
//! it finds (the CLI's help, the `--allow` check and the README use it), and
//! the pure matchers of the token rules.
//!
//! Token rules follow the formats their vendors document; each starts with a
//! fixed prefix that the scanner's Aho-Corasick automaton finds, and only a
//! prefix hit runs the (byte-level, regex-free) check of what follows:
//!
//! | rule | format |
//! |---|---|
//! | `aws-access-key-id` | `AKIA`/`ASIA` + 16 of `A-Z0-9` |
//! | `aws-secret-access-key` | `aws_secret_access_key` `=`/`:` + 40 of base64 |
//! | `azure-storage-key` | `AccountKey=` + 86 of base64 + `==` |
//! | `github-token` | `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_` + 36 alnum; `github_pat_` + 82 of `A-Za-z0-9_` |
//! | `gitlab-token` | `glpat-` + 20 of `A-Za-z0-9_-` |
//! | `slack-token` | `xoxb-`/`xoxp-`/`xoxa-`/`xoxr-`/`xoxs-` + a digit, 20+ of `A-Za-z0-9-` in all |
//! | `slack-webhook` | `hooks.slack.com/services/T…/B…/…` |
//! | `stripe-key` | `sk_live_`/`rk_live_` + 24+ alnum |
//!
//! AWS's documented example credentials (`AKIAIOSFODNN7EXAMPLE`,
//! `wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`) are reported as allowed, never
//! as findings.

use super::{ScanError, Severity};

/// One rule of the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The id findings carry and `--allow` names.
    pub id: &'static str,
    /// How bad a finding is.
    pub severity: Severity,
    /// What it finds, one line.
    pub finds: &'static str,
}

const fn rule(id: &'static str, severity: Severity, finds: &'static str) -> Rule {
    Rule {
        id,
        severity,
        finds,
    }
}

/// Every rule, in the order the docs list them.
pub const RULES: &[Rule] = &[
    rule(
        "private-key",
        Severity::High,
        "PEM/OpenSSH/PGP private key: plain, indented (YAML), `\\n`-escaped (JSON), base64-encoded, in an xattr, inside a .gz/.xz file",
    ),
    rule(
        "ssh-host-key",
        Severity::High,
        "`/etc/ssh/ssh_host_*_key` present",
    ),
    rule(
        "build-key",
        Severity::High,
        "the build's public key in an `authorized_keys` file",
    ),
    rule(
        "sensitive-value",
        Severity::High,
        "a sensitive value of the build, anywhere",
    ),
    rule(
        "password-hash",
        Severity::High,
        "an unlocked account whose hash matches a build password",
    ),
    rule(
        "empty-password",
        Severity::High,
        "an account with an empty password that is not locked",
    ),
    rule(
        "aws-access-key-id",
        Severity::High,
        "AWS access key id (`AKIA`/`ASIA` + 16)",
    ),
    rule(
        "aws-secret-access-key",
        Severity::High,
        "AWS secret key (40 base64 chars after `aws_secret_access_key`)",
    ),
    rule(
        "gcp-service-account",
        Severity::High,
        "GCP service-account JSON with its private key",
    ),
    rule(
        "azure-storage-key",
        Severity::High,
        "Azure storage account key (`AccountKey=` + 88)",
    ),
    rule(
        "github-token",
        Severity::High,
        "GitHub token (`ghp_` `gho_` `ghu_` `ghs_` `ghr_` + 36, `github_pat_` + 82)",
    ),
    rule(
        "gitlab-token",
        Severity::High,
        "GitLab personal access token (`glpat-` + 20)",
    ),
    rule(
        "slack-token",
        Severity::High,
        "Slack token (`xoxb-` `xoxp-` `xoxa-` `xoxr-` `xoxs-`)",
    ),
    rule(
        "slack-webhook",
        Severity::High,
        "Slack incoming webhook URL (`hooks.slack.com/services/T…/B…/…`)",
    ),
    rule(
        "stripe-key",
        Severity::High,
        "Stripe live secret or restricted key (`sk_live_`/`rk_live_` + 24)",
    ),
    rule(
        "machine-id",
        Severity::Medium,
        "a non-empty `/etc/machine-id` (clones share it)",
    ),
    rule(
        "cloud-init-instance",
        Severity::Medium,
        "cloud-init instance data under `/var/lib/cloud/instance(s)`",
    ),
    rule(
        "shell-history",
        Severity::Low,
        "a non-empty shell or REPL history",
    ),
];

/// The rule named `id`.
pub fn find_rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// The rule ids, comma-separated (for hints).
pub fn rule_ids() -> String {
    RULES.iter().map(|r| r.id).collect::<Vec<_>>().join(", ")
}

/// The rule table as aligned text lines (`id  severity  what`), for help.
pub fn rules_table() -> String {
    let w = RULES.iter().map(|r| r.id.len()).max().unwrap_or(0);
    RULES
        .iter()
        .map(|r| {
            format!(
                "  {:<w$}  {:<6}  {}",
                r.id,
                format!("{:?}", r.severity).to_lowercase(),
                r.finds
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parse an allow entry, `RULE` or `RULE:PATH-GLOB` (`*` as RULE accepts
/// any rule; no glob means every path). An unknown rule or an invalid glob
/// is an error.
pub fn parse_allow(text: &str) -> Result<(String, String), ScanError> {
    let (rule, glob) = match text.split_once(':') {
        Some((r, g)) => (r.trim(), g.trim()),
        None => (text.trim(), ""),
    };
    if rule != "*" && find_rule(rule).is_none() {
        return Err(ScanError::UnknownRule {
            entry: text.to_owned(),
            rule: rule.to_owned(),
        });
    }
    let glob = if glob.is_empty() { "**" } else { glob };
    let p = format!("/{}", glob.trim_start_matches('/'));
    globset::GlobBuilder::new(&p)
        .literal_separator(false)
        .build()
        .map_err(|e| ScanError::Allow {
            pattern: glob.to_owned(),
            reason: e.to_string(),
        })?;
    Ok((rule.to_owned(), glob.to_owned()))
}

/// AWS's documented example credentials: allowed, never findings.
pub(crate) const AWS_EXAMPLES: &[&[u8]] = &[
    b"AKIAIOSFODNN7EXAMPLE",
    b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
];

/// A token prefix the automaton looks for, and the check of what follows.
pub(crate) struct Token {
    /// Fixed prefix.
    pub prefix: &'static str,
    /// Rule reported.
    pub rule: &'static str,
    /// Given the bytes from the end of the prefix on, the length of the
    /// secret part (`None`: not a token).
    pub body: fn(&[u8]) -> Option<TokenBody>,
    /// Whether the byte before the prefix must not be alphanumeric.
    pub word_start: bool,
}

/// Where the secret part of a token is, relative to the end of its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenBody {
    /// Offset of the secret's first byte.
    pub start: usize,
    /// Its length.
    pub len: usize,
}

/// Bytes of context after a token prefix the checks may look at.
pub(crate) const TOKEN_CONTEXT: usize = 160;

fn is_b64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

fn run_of(b: &[u8], ok: impl Fn(u8) -> bool) -> usize {
    b.iter().take_while(|&&c| ok(c)).count()
}

/// Exactly `n` bytes of class `ok`, not followed by another of `more`.
fn exact(
    b: &[u8],
    n: usize,
    ok: impl Fn(u8) -> bool,
    more: impl Fn(u8) -> bool,
) -> Option<TokenBody> {
    (b.len() >= n && b[..n].iter().all(|&c| ok(c)) && b.get(n).is_none_or(|&c| !more(c)))
        .then_some(TokenBody { start: 0, len: n })
}

fn upper_alnum(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}

fn aws_key_id(b: &[u8]) -> Option<TokenBody> {
    exact(b, 16, upper_alnum, |c| c.is_ascii_alphanumeric())
}

fn aws_secret(b: &[u8]) -> Option<TokenBody> {
    // `aws_secret_access_key = X`, `aws_secret_access_key: "X"`, JSON `"…": "X"`.
    let mut i = 0;
    let skip = |i: &mut usize, set: &[u8]| {
        while b.get(*i).is_some_and(|c| set.contains(c)) {
            *i += 1;
        }
    };
    skip(&mut i, b"\"' \t");
    if !matches!(b.get(i), Some(b'=') | Some(b':')) {
        return None;
    }
    i += 1;
    skip(&mut i, b"\"' \t");
    let n = run_of(&b[i.min(b.len())..], is_b64);
    (n == 40).then_some(TokenBody { start: i, len: 40 })
}

fn azure_key(b: &[u8]) -> Option<TokenBody> {
    let n = run_of(b, is_b64);
    (n == 86 && b.get(86..88) == Some(b"==")).then_some(TokenBody { start: 0, len: 88 })
}

fn github_classic(b: &[u8]) -> Option<TokenBody> {
    exact(
        b,
        36,
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || c == b'_',
    )
}

fn github_pat(b: &[u8]) -> Option<TokenBody> {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    exact(b, 82, word, word)
}

fn gitlab(b: &[u8]) -> Option<TokenBody> {
    let c = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    exact(b, 20, c, c)
}

fn slack_token(b: &[u8]) -> Option<TokenBody> {
    let n = run_of(b, |c| c.is_ascii_alphanumeric() || c == b'-');
    (b.first().is_some_and(u8::is_ascii_digit) && n >= 20).then_some(TokenBody { start: 0, len: n })
}

fn slack_webhook(b: &[u8]) -> Option<TokenBody> {
    // T<team>/B<bot>/<secret>
    let seg = |b: &[u8], lead: u8| -> Option<usize> {
        if b.first() != Some(&lead) {
            return None;
        }
        let n = run_of(b, upper_alnum);
        (n >= 5 && b.get(n) == Some(&b'/')).then_some(n + 1)
    };
    let t = seg(b, b'T')?;
    let bb = seg(&b[t..], b'B')?;
    let s = run_of(&b[t + bb..], |c| c.is_ascii_alphanumeric());
    (s >= 16).then_some(TokenBody {
        start: 0,
        len: t + bb + s,
    })
}

fn stripe(b: &[u8]) -> Option<TokenBody> {
    let n = run_of(b, |c| c.is_ascii_alphanumeric());
    (n >= 24).then_some(TokenBody { start: 0, len: n })
}

pub(crate) const TOKENS: &[Token] = &[
    Token {
        prefix: "AKIA",
        rule: "aws-access-key-id",
        body: aws_key_id,
        word_start: true,
    },
    Token {
        prefix: "ASIA",
        rule: "aws-access-key-id",
        body: aws_key_id,
        word_start: true,
    },
    Token {
        prefix: "aws_secret_access_key",
        rule: "aws-secret-access-key",
        body: aws_secret,
        word_start: false,
    },
    Token {
        prefix: "AWS_SECRET_ACCESS_KEY",
        rule: "aws-secret-access-key",
        body: aws_secret,
        word_start: false,
    },
    Token {
        prefix: "AccountKey=",
        rule: "azure-storage-key",
        body: azure_key,
        word_start: false,
    },
    Token {
        prefix: "ghp_",
        rule: "github-token",
        body: github_classic,
        word_start: true,
    },
    Token {
        prefix: "gho_",
        rule: "github-token",
        body: github_classic,
        word_start: true,
    },
    Token {
        prefix: "ghu_",
        rule: "github-token",
        body: github_classic,
        word_start: true,
    },
    Token {
        prefix: "ghs_",
        rule: "github-token",
        body: github_classic,
        word_start: true,
    },
    Token {
        prefix: "ghr_",
        rule: "github-token",
        body: github_classic,
        word_start: true,
    },
    Token {
        prefix: "github_pat_",
        rule: "github-token",
        body: github_pat,
        word_start: true,
    },
    Token {
        prefix: "glpat-",
        rule: "gitlab-token",
        body: gitlab,
        word_start: true,
    },
    Token {
        prefix: "xoxb-",
        rule: "slack-token",
        body: slack_token,
        word_start: true,
    },
    Token {
        prefix: "xoxp-",
        rule: "slack-token",
        body: slack_token,
        word_start: true,
    },
    Token {
        prefix: "xoxa-",
        rule: "slack-token",
        body: slack_token,
        word_start: true,
    },
    Token {
        prefix: "xoxr-",
        rule: "slack-token",
        body: slack_token,
        word_start: true,
    },
    Token {
        prefix: "xoxs-",
        rule: "slack-token",
        body: slack_token,
        word_start: true,
    },
    Token {
        prefix: "hooks.slack.com/services/",
        rule: "slack-webhook",
        body: slack_webhook,
        word_start: false,
    },
    Token {
        prefix: "sk_live_",
        rule: "stripe-key",
        body: stripe,
        word_start: true,
    },
    Token {
        prefix: "rk_live_",
        rule: "stripe-key",
        body: stripe,
        word_start: true,
    },
];

/// Check the token whose prefix is `t` given the byte before it and the
/// bytes after it.
pub(crate) fn check_token(t: &Token, before: Option<u8>, after: &[u8]) -> Option<TokenBody> {
    if t.word_start && before.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
        return None;
    }
    (t.body)(after)
}

/// Standard base64 (with padding) of `data`.
pub(crate) fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (c.get(1).copied().unwrap_or(0) as u32) << 8
            | c.get(2).copied().unwrap_or(0) as u32;
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(A[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The base64 of `header` at the start of an encoded blob, cut to whole
/// 4-character groups (the last group depends on what follows).
pub(crate) fn base64_prefix(header: &str) -> String {
    let whole = header.len() / 3 * 3;
    base64(&header.as_bytes()[..whole])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(prefix: &str, before: Option<u8>, after: &[u8]) -> Option<TokenBody> {
        let t = TOKENS.iter().find(|t| t.prefix == prefix).unwrap();
        check_token(t, before, after)
    }

    #[test]
    fn every_rule_id_is_unique_and_tokens_name_known_rules() {
        let mut ids: Vec<_> = RULES.iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len());
        for t in TOKENS {
            assert!(find_rule(t.rule).is_some(), "{}", t.rule);
        }
    }

    #[test]
    fn parse_allow_accepts_known_rules_and_globs() {
        assert_eq!(
            parse_allow("private-key:/etc/ssl/private/*").unwrap(),
            ("private-key".into(), "/etc/ssl/private/*".into())
        );
        assert_eq!(
            parse_allow("machine-id").unwrap(),
            ("machine-id".into(), "**".into())
        );
        assert_eq!(parse_allow("*:/srv/**").unwrap().0, "*");
    }

    #[test]
    fn parse_allow_rejects_unknown_rule() {
        let e = parse_allow("private-keys:/x").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("`private-keys`"), "{s}");
        assert!(matches!(e, ScanError::UnknownRule { .. }));
    }

    #[test]
    fn parse_allow_rejects_invalid_glob() {
        assert!(matches!(
            parse_allow("private-key:/a/[b").unwrap_err(),
            ScanError::Allow { .. }
        ));
    }

    #[test]
    fn tokens_match_documented_formats() {
        assert!(hit("AKIA", Some(b' '), b"Z3MPLEKEYID12345 ").is_some());
        assert!(hit("AKIA", Some(b'x'), b"Z3MPLEKEYID12345 ").is_none());
        assert!(hit("AKIA", None, b"Z3MPLEKEYID1234 ").is_none());
        assert!(hit("AKIA", None, b"Z3MPLEKEYID123456").is_none());
        assert!(hit("AKIA", None, b" is the prefix of").is_none());
        let s = hit(
            "aws_secret_access_key",
            None,
            b" = abcdEFGHijklMNOPqrstUVWXyz0123456789+/ab\n",
        )
        .unwrap();
        assert_eq!(s, TokenBody { start: 3, len: 40 });
        assert!(
            hit(
                "aws_secret_access_key",
                None,
                b"\": \"abcdEFGHijklMNOPqrstUVWXyz0123456789+/ab\""
            )
            .is_some()
        );
        assert!(hit("aws_secret_access_key", None, b" = <your secret>").is_none());
        let az = format!("{}==;", "A".repeat(86));
        assert!(hit("AccountKey=", None, az.as_bytes()).is_some());
        assert!(hit("AccountKey=", None, b"<key>;").is_none());
        let gh = "a".repeat(36);
        assert!(hit("ghp_", Some(b'"'), gh.as_bytes()).is_some());
        assert!(hit("ghp_", None, b"xxxx").is_none());
        assert!(hit("github_pat_", None, &"A1_".repeat(28).as_bytes()[..82]).is_some());
        assert!(hit("glpat-", None, b"abcdefghij0123456789\n").is_some());
        assert!(
            hit(
                "xoxb-",
                None,
                b"123456789012-1234567890123-abcdefghijklmnopqrstuvwx"
            )
            .is_some()
        );
        assert!(hit("xoxb-", None, b"your-token-here-please").is_none());
        assert!(
            hit(
                "hooks.slack.com/services/",
                None,
                b"T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
            )
            .is_some()
        );
        assert!(hit("hooks.slack.com/services/", None, b"...").is_none());
        assert!(hit("sk_live_", None, b"4eC39HqLyjWDarjtT1zdp7dc").is_some());
        assert!(hit("sk_live_", None, b"short").is_none());
    }

    #[test]
    fn base64_matches_the_reference() {
        assert_eq!(base64(b"-----BEGIN "), "LS0tLS1CRUdJTiA=");
        assert_eq!(base64_prefix("-----BEGIN "), "LS0tLS1CRUdJ");
    }

    #[test]
    fn readme_lists_every_rule_id() {
        let readme = include_str!("../../../../README.md");
        for r in RULES {
            assert!(
                readme.contains(&format!("`{}`", r.id)),
                "README lacks `{}`",
                r.id
            );
        }
    }
}
