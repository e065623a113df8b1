#!/usr/bin/env bash
# The sanitized half of CI (scripts/test.sh runs it last): one clang build (the `sanitize` preset:
# CPU-only, -O1, AddressSanitizer + UndefinedBehaviorSanitizer with leak checking, warnings as
# errors) runs the whole CTest suite, then each libFuzzer target of fuzz/ for FUZZ_SECONDS (default
# 60) starting from its committed corpus. A fuzzer's failure leaves the input under the build
# folder's fuzz-artifacts/ and prints it; add it to fuzz/corpus/<target>/ once fixed, so every build
# replays it. The build folder is the preset's, build-sanitize/.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/build-settings.sh
san_dir=build-sanitize
fuzz_seconds=${FUZZ_SECONDS:-60}
# Reports name functions and lines (Debian installs the symbolizer under a versioned name).
if [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi

echo "== sanitized build ($san_dir, $jobs jobs)"
cmake --preset sanitize "${launcher[@]}" >/dev/null
cmake --build --preset sanitize -j "$jobs"

echo "== unit tests under ASan + UBSan"
# The test preset's environment: leaks on (with tests/lsan.supp), UBSan fatal with a stack trace.
ctest --preset sanitize -j "$jobs" --timeout 900

echo "== fuzzing, ${fuzz_seconds} s per target, the targets side by side"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
artifacts="$san_dir/fuzz-artifacts"
mkdir -p "$artifacts"
targets=(fuzz_safetensors fuzz_ops)
pids=()
for target in "${targets[@]}"; do
  # New inputs go to a scratch folder, so the committed corpus changes only by hand.
  scratch="$san_dir/fuzz-corpus/$target"
  mkdir -p "$scratch"
  "$san_dir/fuzz/$target" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$target-" "$scratch" "fuzz/corpus/$target" \
    >"$artifacts/$target.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!targets[@]}"; do
  target=${targets[$i]}
  if wait "${pids[$i]}"; then
    echo "$target: $(grep -E '^stat::number_of_executed_units' "$artifacts/$target.log" | tr -s ' ')"
  else
    failed=1
    echo "$target failed:"
    tail -n 60 "$artifacts/$target.log"
    for input in "$artifacts/$target"-*; do
      [ -f "$input" ] || continue
      echo "failing input $input:"
      od -A d -t x1 "$input" | head -n 20
    done
  fi
done
[ "$failed" -eq 0 ]

echo "== sanitized checks passed"
