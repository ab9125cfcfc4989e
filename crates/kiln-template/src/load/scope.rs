//! What names mean in each part of a template.

use std::path::Path;

use indexmap::IndexMap;

use super::{Local, Variable, version::PACKER_COMPAT_VERSION};
use crate::eval::{Missing, Roots, get_attr};
use crate::value::Value;

/// The names of a template: `var`, `local`, `path`, `packer`, and inside
/// builds `source` and `build`.
pub(crate) struct Scope<'a> {
    pub vars: &'a IndexMap<String, Variable>,
    /// Locals evaluated so far; `None` when locals are not allowed.
    pub locals: Option<&'a IndexMap<String, Local>>,
    /// Every declared local name (to tell "failed" from "undeclared").
    pub declared_locals: &'a [String],
    pub path: &'a Value,
    /// `source.type`, `source.name` and `build.*`, inside builds.
    pub source: Option<&'a Value>,
    pub build: Option<&'a Value>,
}

fn not_in_build(root: &str) -> Missing {
    Missing::NotAllowed(format!("`{root}` is only available inside a `build` block"))
}

impl Roots for Scope<'_> {
    fn attr(&self, root: &str, name: &str) -> Result<(Value, bool), Missing> {
        match root {
            "var" => match self.vars.get(name) {
                Some(v) if v.failed => Err(Missing::Failed),
                Some(v) => match v.value() {
                    Some(val) => Ok((val.clone(), v.sensitive)),
                    None => Err(Missing::Failed),
                },
                None => Err(Missing::NoAttr {
                    candidates: self.vars.keys().cloned().collect(),
                }),
            },
            "local" => {
                let Some(locals) = self.locals else {
                    return Err(Missing::NotAllowed("locals may not be used here".into()));
                };
                match locals.get(name) {
                    Some(Local {
                        value: Some(v),
                        sensitive,
                        ..
                    }) => Ok((v.clone(), *sensitive)),
                    Some(_) => Err(Missing::Failed),
                    None if self.declared_locals.iter().any(|n| n == name) => Err(Missing::Failed),
                    None => Err(Missing::NoAttr {
                        candidates: self.declared_locals.to_vec(),
                    }),
                }
            }
            _ => {
                let (whole, _) = self.whole(root)?;
                get_attr(&whole, name)
                    .map(|v| (v, false))
                    .map_err(|_| Missing::NoAttr {
                        candidates: match whole {
                            Value::Object(m) => m.keys().cloned().collect(),
                            _ => Vec::new(),
                        },
                    })
            }
        }
    }

    fn whole(&self, root: &str) -> Result<(Value, bool), Missing> {
        match root {
            "var" => {
                let mut sensitive = false;
                let mut m = std::collections::BTreeMap::new();
                for (k, v) in self.vars {
                    if let Some(val) = v.value() {
                        sensitive |= v.sensitive;
                        m.insert(k.clone(), val.clone());
                    }
                }
                Ok((Value::Object(m), sensitive))
            }
            "local" => {
                let Some(locals) = self.locals else {
                    return Err(Missing::NotAllowed("locals may not be used here".into()));
                };
                let mut sensitive = false;
                let mut m = std::collections::BTreeMap::new();
                for (k, l) in locals {
                    if let Some(v) = &l.value {
                        sensitive |= l.sensitive;
                        m.insert(k.clone(), v.clone());
                    }
                }
                Ok((Value::Object(m), sensitive))
            }
            "path" => Ok((self.path.clone(), false)),
            "packer" => Ok((
                Value::Object(
                    [(
                        "version".to_string(),
                        Value::String(PACKER_COMPAT_VERSION.into()),
                    )]
                    .into(),
                ),
                false,
            )),
            "source" => self
                .source
                .map(|v| (v.clone(), false))
                .ok_or_else(|| not_in_build("source")),
            "build" => self
                .build
                .map(|v| (v.clone(), false))
                .ok_or_else(|| not_in_build("build")),
            _ => Err(Missing::NoRoot),
        }
    }

    fn root_names(&self) -> Vec<&str> {
        vec!["var", "local", "path", "packer", "source", "build"]
    }
}

/// Names allowed in a variable's `default`: none but functions.
pub(crate) struct DefaultScope;

impl Roots for DefaultScope {
    fn attr(&self, root: &str, _: &str) -> Result<(Value, bool), Missing> {
        self.whole(root)
    }
    fn whole(&self, root: &str) -> Result<(Value, bool), Missing> {
        Err(Missing::NotAllowed(format!(
            "variables not allowed: a variable's default may not refer to `{root}`; defaults are evaluated before any variable or local"
        )))
    }
    fn root_names(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// Names allowed in a validation condition: the variable itself.
pub(crate) struct ValidationScope<'a> {
    pub name: &'a str,
    pub value: &'a Value,
}

impl Roots for ValidationScope<'_> {
    fn attr(&self, root: &str, name: &str) -> Result<(Value, bool), Missing> {
        if root == "var" && name == self.name {
            Ok((self.value.clone(), false))
        } else {
            Err(Missing::NotAllowed(format!(
                "the condition for variable `{}` can only refer to the variable itself, using `var.{}`",
                self.name, self.name
            )))
        }
    }
    fn whole(&self, root: &str) -> Result<(Value, bool), Missing> {
        self.attr(root, "")
    }
    fn root_names(&self) -> Vec<&str> {
        vec!["var"]
    }
}

/// `path.root` (the template path as given) and `path.cwd`.
pub(crate) fn path_value(root: &Path, cwd: &Path) -> Value {
    Value::Object(
        [
            (
                "cwd".to_string(),
                Value::String(cwd.to_string_lossy().replace('\\', "/")),
            ),
            (
                "root".to_string(),
                Value::String(root.to_string_lossy().replace('\\', "/")),
            ),
        ]
        .into(),
    )
}
