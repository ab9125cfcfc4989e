//! kiln-template: Packer HCL2 templates — discovery, parsing with spans,
//! variables with provenance, locals, the function library.

pub mod value;
