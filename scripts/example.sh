#!/bin/bash
# kiln's main job, end to end, on a fresh Debian 12 machine: install what
# kiln needs, build (or reuse) the base image from Debian packages, build
# kiln, and run `kiln build` on the bundled example. The image and its
# manifest end up in examples/cloudimg/output-cloudimg/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
base_dir=$(fixtures/base-image/build.sh | tail -n 1)
cargo build --release --locked -p kiln

cd examples/cloudimg
../../target/release/kiln build -force -var "base_image=${base_dir}/base.qcow2" "$@" .
echo
echo "image:    $(pwd)/output-cloudimg/cloudimg.qcow2"
echo "manifest: $(pwd)/output-cloudimg/manifest.json"
