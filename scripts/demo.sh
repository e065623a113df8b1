#!/usr/bin/env bash
# Builds the library and the MLP example in release mode and runs it: the loss should fall steadily
# and the final accuracy pass 90%.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/build-settings.sh

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DST_BUILD_EXAMPLES=ON \
  -DST_BUILD_TESTS=OFF "${launcher[@]}"
cmake --build "$build_dir" -j "$jobs" --target train_mlp
"$build_dir/examples/train_mlp"
