#!/usr/bin/env bash
# Builds the library and the MLP example in release mode and runs it: the loss should fall steadily
# and the final accuracy pass 90%.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DST_BUILD_EXAMPLES=ON \
  -DST_BUILD_TESTS=OFF "${launcher[@]}"
cmake --build "$build_dir" -j "$jobs" --target train_mlp
"$build_dir/examples/train_mlp"
