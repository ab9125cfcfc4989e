//! kiln-template
