#!/bin/bash
# The whole test suite, from a fresh Debian 12 machine: installs what it
# needs, checks formatting and lints, builds (or reuses) the cached base
# image fixture, then runs every test (VM tests one at a time).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
# Tests that boot real VMs are compiled in (see crates/*/build.rs).
export KILN_VM_TESTS=1

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# The fixture is cached outside the repo, keyed by its recipe.
KILN_BASE_IMAGE_DIR=$(fixtures/base-image/build.sh | tail -n 1)
export KILN_BASE_IMAGE_DIR

cargo nextest run --workspace --locked --profile ci "$@"
cargo test --workspace --locked --doc
