//! Evaluated blocks: what a `source`, `provisioner` or `post-processor`
//! block says once its expressions have been evaluated, with the place of
//! every attribute so typed decoders can point at it.

use indexmap::IndexMap;

use crate::span::Span;
use crate::value::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: Value,
    /// Where the attribute is written (its name).
    pub span: Span,
    /// The value derives from a sensitive variable or local.
    pub sensitive: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// Block type, e.g. `source`, `provisioner`, `scan`.
    pub kind: String,
    pub labels: Vec<String>,
    pub body: Body,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Body {
    pub attrs: IndexMap<String, Attribute>,
    pub blocks: Vec<Block>,
    /// The block the body belongs to.
    pub span: Span,
}

impl Body {
    pub fn empty(span: Span) -> Self {
        Body {
            attrs: IndexMap::new(),
            blocks: Vec::new(),
            span,
        }
    }
}
