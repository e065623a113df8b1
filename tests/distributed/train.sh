#!/usr/bin/env bash
# spiraltorch-train data-parallel under mpirun: 2 ranks on one machine train what one process
# trains on the whole batch (the same losses to rounding), only rank 0 writes the outputs, and a
# data-parallel run resumes from its checkpoint as a single-process run does.
# Usage: train.sh <mpiexec> <spiraltorch-train>
set -euo pipefail
mpiexec="$1"
train="$2"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
tiny=(--layers 1 --d-model 16 --heads 2 --context 16 --batch 4 --eval-every 3 --eval-batches 2
      --warmup 2 --sample-chars 10)
# The last held-out loss the run printed.
final_loss() { sed -n 's/^held-out loss: .* -> \([0-9.]*\) at step .*/\1/p' "$1"; }
same() { python3 -c "import sys; a, b = map(float, sys.argv[1:]); sys.exit(abs(a - b) > 2e-4)" "$1" "$2"; }

"$train" "${tiny[@]}" --steps 6 --out "$out/single" >/dev/null 2>"$out/single.log"
"$mpiexec" -n 2 "$train" "${tiny[@]}" --steps 6 --out "$out/dp" >"$out/dp.out" 2>"$out/dp.log"
grep -q "data-parallel over 2 ranks (mpi): 2 sequences per rank and step" "$out/dp.log"
test "$(grep -c "^held-out loss" "$out/dp.log")" -eq 1  # rank 0 alone reports
test "$(grep -c -- "---- sample" "$out/dp.out")" -eq 1
for f in checkpoint.safetensors loss.png sample.txt; do test -s "$out/dp/$f"; done
single=$(final_loss "$out/single.log")
dp=$(final_loss "$out/dp.log")
echo "held-out loss after 6 steps: one process $single, two ranks $dp"
same "$single" "$dp"

# Both runs resumed from their checkpoints for two more steps, the data-parallel one on two ranks
# again: each rank loads the checkpoint rank 0 wrote, and the runs stay equal.
"$train" --resume "$out/single/checkpoint.safetensors" --steps 8 --out "$out/single" \
  >/dev/null 2>"$out/single-resumed.log"
"$mpiexec" -n 2 "$train" --resume "$out/dp/checkpoint.safetensors" --steps 8 --out "$out/dp" \
  >/dev/null 2>"$out/dp-resumed.log"
grep -q "resuming from .* at step 6" "$out/dp-resumed.log"
single=$(final_loss "$out/single-resumed.log")
dp=$(final_loss "$out/dp-resumed.log")
echo "resumed to step 8: one process $single, two ranks $dp"
same "$single" "$dp"

# A batch that does not divide among the ranks is refused, by name.
if "$mpiexec" -n 3 "$train" "${tiny[@]}" --steps 1 --out "$out/bad" 2>"$out/bad.log"; then exit 1; fi
grep -q "must divide among the 3 ranks" "$out/bad.log"
echo "spiraltorch-train under mpirun: data-parallel equals one process, resume works"
