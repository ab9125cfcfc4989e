//! kiln-maas
