#!/usr/bin/env bash
# The CUDA check on a GPU machine, in one command: configure and build (sm_90), the whole CTest
# suite (the conformance and gradient suites run on cuda:0 beside cpu), the CUDA tests again with
# each of our own GEMM paths, compute-sanitizer memcheck on the CUDA tests, then the benchmarks
# beside PyTorch. Logs go to $OUT (default ./out); a short summary table is printed last.
#
#   bash bench/device.sh [build] [test] [gemm] [bench] [multigpu]     (default: test gemm bench)
#
# build: only the build (the library, the tests and the Python package, importable with
# PYTHONPATH=build-device/python); test: the whole suite, then memcheck and racecheck on the CUDA
# tests; gemm: the CUDA tests with ST_CUDA_GEMM=tiled and =tensorcore; bench:
# bench/cuda_vs_torch.py, SpiralTorch beside PyTorch (its dated table goes to
# $OUT/cuda_results.md; ST_BENCH_ARGS adds arguments, e.g. --no-compile).
#
# vulkan: bench/device-vulkan.sh run (the Vulkan backend beside the CUDA backend and PyTorch).
#
# multigpu: bench/multi_gpu.sh on every GPU of the machine (the NCCL tests with one process per
# GPU, then data-parallel training beside PyTorch DDP; its table goes to $out/multigpu_table.md;
# ST_MULTIGPU_ARGS adds arguments, e.g. --results bench/RESULTS.md).
#
# Dependencies the machine may lack (GoogleTest, nlohmann-json, OpenBLAS) are taken from
# .devdeps/ when present: googletest-src/ (a GoogleTest source tree), prefix/ (headers and CMake
# configs) and openblas/ (library and headers).
set -uo pipefail
cd "$(dirname "$0")/.."
stages=" ${*:-test gemm bench} "
want() { [[ $stages == *" $1 "* ]]; }
out=${OUT:-$PWD/out}
mkdir -p "$out"
jobs=$(nproc)
build=build-device
summary=()
note() { summary+=("$1"); echo "== $1"; }
export PATH=/usr/local/cuda/bin:$PATH

# vulkan: the Vulkan backend's check and figures from programs built elsewhere and copied into
# .vkdev/ (bench/device-vulkan.sh says how they are packed).
if want vulkan; then
  OUT=$out bash bench/device-vulkan.sh run
  [[ $stages == " vulkan " ]] && exit 0
fi

prefixes=()
if [ -d .devdeps/googletest-src ] && ! ls /usr/lib*/cmake/GTest /usr/lib/x86_64-linux-gnu/cmake/GTest >/dev/null 2>&1; then
  cmake -S .devdeps/googletest-src -B /tmp/gtest-build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX=/tmp/st-deps -DCMAKE_POSITION_INDEPENDENT_CODE=ON >"$out/deps.log" 2>&1 &&
    cmake --build /tmp/gtest-build -j "$jobs" >>"$out/deps.log" 2>&1 &&
    cmake --install /tmp/gtest-build >>"$out/deps.log" 2>&1 && prefixes+=(/tmp/st-deps)
fi
[ -d .devdeps/prefix ] && prefixes+=("$PWD/.devdeps/prefix")
if ! ldconfig -p | grep -q libopenblas && [ -d .devdeps/openblas ]; then
  prefixes+=("$PWD/.devdeps/openblas")
  export LD_LIBRARY_PATH=$PWD/.devdeps/openblas/lib:${LD_LIBRARY_PATH:-}
  extra=(-DBLA_VENDOR=OpenBLAS -DST_CBLAS_INCLUDE_DIR=$PWD/.devdeps/openblas/include)
else
  extra=()
fi
prefix_path=$(IFS=';'; echo "${prefixes[*]:-}")

extra+=(-DST_BUILD_PYTHON=ON -DPython_EXECUTABLE="$(command -v python3)")
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DST_ENABLE_CUDA=ON \
  -DST_ENABLE_VULKAN=OFF -DST_BUILD_EXAMPLES=OFF -DST_BUILD_APPS=OFF -DCMAKE_PREFIX_PATH="$prefix_path" "${extra[@]}" \
  >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
# ST_DEVICE_TARGETS (e.g. "spiraltorch test_ops _C") builds only those targets.
time cmake --build "$build" -j "$jobs" ${ST_DEVICE_TARGETS:+--target $ST_DEVICE_TARGETS} >"$out/build.log" 2>&1 || { grep -E "error|Error" -A3 "$out/build.log" | head -60; exit 1; }
note "build: ok"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee -a "$out/build.log"

if want test; then
  timeout 200 ctest --test-dir "$build" -j 8 --timeout 240 --output-on-failure >"$out/ctest.log" 2>&1
  note "ctest (all suites, default GEMM): $(grep -E 'tests passed' "$out/ctest.log")"
  grep -E "\*\*\*Failed|Timeout|Exception" "$out/ctest.log" | head -40
  # The out-of-memory tests fail a cudaMalloc on purpose: API errors are not reported.
  for exe in test_ops test_cuda; do
    timeout 100 compute-sanitizer --tool memcheck --leak-check no --report-api-errors no --error-exitcode 9 \
      "$build/tests/$exe" --gtest_filter='*cuda*:*Cuda*' --gtest_brief=1 >"$out/memcheck_$exe.log" 2>&1
    rc=$?
    note "memcheck $exe: rc=$rc, $(grep -E 'ERROR SUMMARY' "$out/memcheck_$exe.log" | tail -1)"
  done
  # Shared-memory races: the kernels that use shared memory (reductions, softmax, layer_norm, GEMMs).
  timeout 100 compute-sanitizer --tool racecheck --error-exitcode 9 "$build/tests/test_ops" \
    --gtest_filter='*NNOps*cuda_0_float32:*Reduce*cuda_0_float32' --gtest_brief=1 >"$out/racecheck.log" 2>&1
  note "racecheck test_ops (f32 nn ops, reductions): rc=$?, $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$out/racecheck.log" | tail -1)"
fi

if want gemm; then
  for gemm in tiled tensorcore; do
    ST_CUDA_GEMM=$gemm timeout 170 ctest --test-dir "$build" -j 12 --timeout 120 -R "(cuda|Cuda).*" \
      >"$out/ctest_$gemm.log" 2>&1
    note "ctest cuda tests, ST_CUDA_GEMM=$gemm: $(grep -E 'tests passed' "$out/ctest_$gemm.log")"
    grep -E "\*\*\*Failed|Timeout" "$out/ctest_$gemm.log" | head -20
  done
fi

if want bench; then
  PYTHONPATH="$PWD/$build/python" PYTHONUNBUFFERED=1 timeout 500 python3 bench/cuda_vs_torch.py \
    --results "$out/cuda_results.md" ${ST_BENCH_ARGS:-} >"$out/bench.log" 2>&1
  note "bench rc=$?"
fi

if want multigpu; then
  OUT=$out bash bench/multi_gpu.sh --build "$build" ${ST_MULTIGPU_ARGS:-} >"$out/multigpu.log" 2>&1
  note "multigpu rc=$? (log: $out/multigpu.log)"
fi

echo
echo "================ summary"
printf '%s\n' "${summary[@]}"
[ -f "$out/bench.log" ] && cat "$out/bench.log"
want multigpu && [ -f "$out/multigpu_table.md" ] && cat "$out/multigpu_table.md"
exit 0
