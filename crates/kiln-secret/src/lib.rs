//! kiln-secret
