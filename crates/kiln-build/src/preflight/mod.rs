//! Preflight: the host against what a build demands, before anything starts.
