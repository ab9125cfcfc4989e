//! kiln-build: plan, preflight, the step pipeline, and events.

pub mod events;
pub mod http;
