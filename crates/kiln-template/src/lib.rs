//! kiln-template: Packer HCL2 templates — discovery, parsing with spans,
//! variables with provenance, locals, the function library, and typed
//! decoding of evaluated blocks.
//!
//! Start at [`load::load`]: it reads a template directory (or file) with
//! Packer's rules and returns a [`load::Loaded`] with every variable's
//! ladder of values, the locals, and per selected build the evaluated
//! source, provisioner and post-processor bodies.

// Diagnostics are large but only travel on the error path.
#![allow(clippy::result_large_err)]

pub mod body;
pub mod decode;
pub mod diag;
pub mod eval;
pub mod format;
pub mod functions;
pub mod gopath;
pub mod inspect;
pub mod json;
pub mod load;
pub mod schema;
pub mod source;
pub mod span;
pub mod syntax;
pub mod value;
