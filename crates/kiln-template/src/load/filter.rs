//! `-only` / `-except`: globs over build names, matched as Packer does
//! (gobwas/glob without separators: `*` matches dots too).

use globset::{GlobBuilder, GlobMatcher};

use super::Diags;
use crate::decode::did_you_mean;
use crate::diag::Diag;

#[derive(Clone, Debug, Default)]
pub struct BuildFilter {
    only: Vec<(String, GlobMatcher)>,
    except: Vec<(String, GlobMatcher)>,
}

fn compile(patterns: &[String], flag: &str) -> Result<Vec<(String, GlobMatcher)>, Diag> {
    patterns
        .iter()
        .flat_map(|p| p.split(','))
        .filter(|p| !p.is_empty())
        .map(|p| {
            GlobBuilder::new(p)
                .literal_separator(false)
                .backslash_escape(true)
                .build()
                .map(|g| (p.to_string(), g.compile_matcher()))
                .map_err(|e| {
                    Diag::error(format!("invalid -{flag} pattern `{p}`")).detail(e.to_string())
                })
        })
        .collect()
}

impl BuildFilter {
    /// Patterns may be comma-separated, as Packer's flags.
    pub fn new(only: &[String], except: &[String]) -> Result<Self, Diag> {
        Ok(BuildFilter {
            only: compile(only, "only")?,
            except: compile(except, "except")?,
        })
    }

    /// Whether a build (by full name) is selected.
    pub fn selects(&self, build: &str) -> bool {
        if !self.only.is_empty() && !self.only.iter().any(|(_, g)| g.is_match(build)) {
            return false;
        }
        !self.except.iter().any(|(_, g)| g.is_match(build))
    }

    /// Whether `-except` names a post-processor (by name, or type when unnamed).
    pub fn excludes_post_processor(&self, name: &str) -> bool {
        self.except.iter().any(|(_, g)| g.is_match(name))
    }

    pub(crate) fn warn_unmatched(&self, builds: &[String], diags: &mut Diags) {
        let names: Vec<&str> = builds.iter().map(String::as_str).collect();
        for (p, g) in &self.only {
            if !builds.iter().any(|b| g.is_match(b)) {
                diags.push(
                    Diag::warning(format!("-only `{p}` matches no build"))
                        .detail(format!("builds: {}", names.join(", ")))
                        .help_opt(did_you_mean(p, &names).map(|s| format!("did you mean `{s}`?"))),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_across_dots() {
        let f = BuildFilter::new(&["ubuntu.*".into()], &[]).unwrap();
        assert!(f.selects("ubuntu.qemu.cloudimg"));
        assert!(!f.selects("qemu.cloudimg"));
        let f = BuildFilter::new(&[], &["*.cloudimg,qemu.x".into()]).unwrap();
        assert!(!f.selects("ubuntu.qemu.cloudimg"));
        assert!(!f.selects("qemu.x"));
        assert!(f.selects("qemu.y"));
        let f = BuildFilter::new(&["qemu.[ab]".into()], &[]).unwrap();
        assert!(f.selects("qemu.b"));
    }
}
