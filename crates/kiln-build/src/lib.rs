//! kiln-build: plan, preflight, the step pipeline, and events.

pub mod artifact;
pub mod cache;
pub mod checksum;
pub mod download;
pub mod events;
pub mod guest;
pub mod http;
pub mod pipeline;
pub mod plan;
pub mod postprocess;
pub mod preflight;
pub mod provision;
pub mod run;
pub mod schema;
pub mod spec;
pub mod step;
