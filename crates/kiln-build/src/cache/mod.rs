//! The step cache: content-addressed VM checkpoints so a rebuild restarts from the last unchanged step.
