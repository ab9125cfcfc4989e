//! kiln-ssh
