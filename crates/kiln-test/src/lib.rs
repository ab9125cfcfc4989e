//! kiln-test
