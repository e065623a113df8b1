#!/usr/bin/env bash
# The full check, as CI runs it: a release build with warnings as errors, the test suite through
# CTest, then an outside project built against the installed package. Stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

echo "== configure and build ($build_dir, $jobs jobs)"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DST_WARNINGS_AS_ERRORS=ON \
  -DST_BUILD_TESTS=ON -DST_BUILD_EXAMPLES=ON "${launcher[@]}"
cmake --build "$build_dir" -j "$jobs"

echo "== unit tests"
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j "$jobs" --timeout 600

echo "== package test: find_package(SpiralTorch) from an installed copy"
work=$(mktemp -d "${TMPDIR:-/tmp}/spiraltorch-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S tests/package -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}"
cmake --build "$work/build"
"$work/build/spiraltorch_consumer"

echo "== all checks passed"
