#!/usr/bin/env bash
# Installs what building, testing and benchmarking SpiralTorch need on Debian 12 (bookworm).
# Idempotent; uses sudo only when not run as root.
set -euo pipefail

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends \
  cmake ninja-build g++ make pkg-config \
  libopenblas-dev libopenblas-openmp-dev libcairo2-dev libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev \
  python3-dev python3-venv
# The Vulkan backend: loader and headers, glslc for the shaders, Mesa's lavapipe (a Vulkan device on
# the CPU, which CI tests on) and the validation layers the test run enables.
"${sudo[@]}" apt-get install -y --no-install-recommends \
  libvulkan-dev glslc mesa-vulkan-drivers vulkan-validationlayers
# st::distributed: Open MPI (headers, library and mpirun) for the CPU process group and its tests.
"${sudo[@]}" apt-get install -y --no-install-recommends libopenmpi-dev openmpi-bin
# The sanitized build and the fuzzers (scripts/test-sanitized.sh): clang 14 with its sanitizer and
# libFuzzer runtimes, its OpenMP runtime, and llvm-symbolizer for readable stack traces.
"${sudo[@]}" apt-get install -y --no-install-recommends \
  clang-14 libclang-rt-14-dev libomp-14-dev llvm-14
