//! kiln-build: plan, preflight, the step pipeline, and events.

pub mod checksum;
pub mod events;
pub mod http;
