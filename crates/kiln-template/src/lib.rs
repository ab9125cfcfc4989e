//! kiln-template: Packer HCL2 templates — discovery, parsing with spans,
//! variables with provenance, locals, the function library, and typed
//! decoding of evaluated blocks.

pub mod body;
pub mod decode;
pub mod functions;
pub mod span;
pub mod value;
