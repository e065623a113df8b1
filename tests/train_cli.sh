#!/usr/bin/env bash
# spiraltorch-train as a user runs it: --help, a short run writing its outputs, and Ctrl-C
# (SIGINT) saving a checkpoint that --resume continues to the end.
set -euo pipefail
train="$1"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
tiny=(--layers 1 --d-model 16 --heads 2 --context 16 --batch 4 --eval-every 5 --eval-batches 2
      --warmup 2 --sample-chars 20)

"$train" --help | grep -q -- "--resume"
if "$train" --no-such-flag 1 2>"$out/err"; then exit 1; fi
grep -q "unknown option --no-such-flag" "$out/err"

"$train" "${tiny[@]}" --steps 10 --out "$out/short" >"$out/sample.txt" 2>"$out/short.log"
for f in checkpoint.safetensors loss.png sample.txt; do test -s "$out/short/$f"; done
grep -q -- "---- sample" "$out/sample.txt"

# A long run, interrupted once it has trained a little.
"$train" "${tiny[@]}" --steps 1000000 --checkpoint-every 1000000 --out "$out/long" \
  2>"$out/long.log" &
pid=$!
for _ in $(seq 1 600); do
  grep -q "parameters" "$out/long.log" 2>/dev/null && break
  sleep 0.1
done
sleep 1
kill -INT "$pid"
status=0
wait "$pid" || status=$?
test "$status" -eq 130
grep -q "interrupted after step" "$out/long.log"
step=$(sed -n 's/.*interrupted after step \([0-9]*\).*/\1/p' "$out/long.log")
"$train" --resume "$out/long/checkpoint.safetensors" --steps $((step + 3)) --sample-chars 0 \
  --out "$out/long" 2>"$out/resume.log"
grep -q "resuming from .* at step $step" "$out/resume.log"
grep -q "step *$((step + 3))/$((step + 3))" "$out/resume.log"
echo "spiraltorch-train: help, run, interrupt and resume all behave"
