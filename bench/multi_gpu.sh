#!/usr/bin/env bash
# Data-parallel training on every GPU of one machine, SpiralTorch beside PyTorch DDP, in one
# command: the NCCL collective and DDP tests (tests/test_distributed) with one process per GPU,
# then bench/ddp_vs_torch.py for each library on 1 GPU, on all N GPUs, and on 1 GPU accumulating
# N micro-batches per step (the N-GPU run's global batch: the loss check). Logs go to $OUT
# (default ./out); the table is printed last and, with --results, appended there with the date
# and the command.
#
#   bash bench/device.sh build          # first: configures and builds build-device (the library,
#                                       # the tests, the NCCL module and the Python package)
#   bash bench/multi_gpu.sh [--gpus N] [--batch B] [--results bench/RESULTS.md] [--quick]
#                           [--build DIR] [-- more arguments for bench/ddp_vs_torch.py]
#   bash bench/device.sh multigpu       # the same after an incremental build (ST_MULTIGPU_ARGS)
#   bash bench/multi_gpu.sh --cpu --gpus 2 --quick --build build   # CPU ranks under mpirun, to
#                                       # check the script on a machine without GPU
#
# This script builds nothing when build-device is there (it runs `bench/device.sh build` only
# when the Python package or the test is missing). Every process gets NCCL_NVLS_ENABLE=0,
# TORCH_SYMM_MEM_DISABLE_MULTICAST=1 and NVSHMEM_DISABLE_NVLS=1: NVLink multicast stays off.
# The ranks start with torchrun's variables (RANK, LOCAL_RANK, WORLD_SIZE) and ST_STORE_FILE, a
# fresh file through which SpiralTorch's rank 0 hands out NCCL's id and PyTorch's FileStore meets.
# PYTHON names the interpreter (default python3).
#
# The per-GPU batch is 16 sequences of 1024 tokens unless --batch says otherwise: the GPT-2-small
# row of bench/cuda_vs_torch.py, which both libraries train on one H200; DDP adds its gradient
# buckets (one copy of the 124M f32 gradients, about 0.5 GB). Scaling efficiency compares runs
# with the same per-GPU batch: N-GPU tokens/s over N times the 1-GPU figure, where the single GPU
# trains the plain model (no DDP), so the efficiency charges DDP with its whole cost. The loss
# check needs the N-GPU run's global batch (N x 16 sequences) on one GPU: gradient accumulation
# over N micro-batches of 16 (--accum N) rather than one batch of N x 16, which would need N times
# the activation memory of a rank (128 sequences on 8 GPUs); each micro-batch then computes
# exactly what one rank computes, and only the order in which gradients are summed differs.
set -uo pipefail
caller=$PWD
cd "$(dirname "$0")/.." || exit 1
command_line="bash bench/multi_gpu.sh $*"
gpus="" batch="" results="" quick=() cpu=0 build=${ST_BUILD_DIR:-build-device} extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --gpus) gpus=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --results) results=$(cd "$caller" && realpath -m "$2"); shift 2 ;;
    --quick) quick=(--quick); shift ;;
    --cpu) cpu=1; shift ;;
    --build) build=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown argument $1 (see the head of $0)" >&2; exit 2 ;;
  esac
done
out=${OUT:-$PWD/out}
mkdir -p "$out"
build=$(realpath -m "$build")  # relative to the repository root
python=${PYTHON:-python3}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=$build/python${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
summary=()
note() { summary+=("$1"); echo "== $1"; }
failed=0

if [ $cpu = 1 ]; then
  gpus=${gpus:-2}
  device=cpu transport=MPI
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  machine="$gpus CPU ranks"
else
  export PATH=/usr/local/cuda/bin:$PATH
  gpus=${gpus:-$(nvidia-smi -L | grep -c '^GPU')}
  device=cuda transport=NCCL
  # Host threads per rank: the cores shared out.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / gpus > 0 ? $(nproc) / gpus : 1 ))}
  machine="$gpus x $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
  nvidia-smi topo -m >"$out/topology.log" 2>&1
fi
machine+=", commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

if [ $cpu = 0 ] && { ! ls "$build"/python/spiraltorch/_C*.so >/dev/null 2>&1 ||
                     [ ! -x "$build/tests/test_distributed" ]; }; then
  if [ "$build" != "$PWD/build-device" ]; then
    echo "$build lacks the Python package or tests/test_distributed: build it first"; exit 1
  fi
  OUT=$out bash bench/device.sh build || { echo "build failed: see $out/build.log"; exit 1; }
fi
if [ $cpu = 0 ] && [ ! -e "$build/libspiraltorch_nccl.so" ]; then
  echo "$build has no libspiraltorch_nccl.so: NCCL was not found at configure time (set" \
       "NCCL_ROOT or install the nvidia-nccl-cu* wheel, then bash bench/device.sh build)"
  exit 1
fi

# launch RANKS LOG COMMAND...: one process per rank, each with torchrun's variables, or mpirun
# with --cpu. When a rank fails the others are stopped rather than left waiting for it.
launch() {
  local ranks=$1 log=$2 limit=${LIMIT:-600}
  shift 2
  local store
  store=$(mktemp -u "$out/store.XXXXXX")
  if [ $cpu = 1 ]; then
    ST_STORE_FILE=$store timeout "$limit" mpirun -n "$ranks" "$@" >"$log" 2>&1
    local rc=$?
    rm -f "$store"
    return $rc
  fi
  local pids=() r rc=0
  for ((r = 0; r < ranks; r++)); do
    RANK=$r LOCAL_RANK=$r WORLD_SIZE=$ranks ST_STORE_FILE=$store \
      timeout "$limit" "$@" >"$log.rank$r" 2>&1 &
    pids+=($!)
  done
  for ((r = 0; r < ranks; r++)); do
    wait -n || { rc=1; kill "${pids[@]}" 2>/dev/null; }
  done
  wait
  cp "$log.rank0" "$log"
  for ((r = 1; r < ranks; r++)); do
    { echo "---- rank $r"; cat "$log.rank$r"; } >>"$log"
  done
  rm -f "$log".rank*
  rm -f "$store"
  return $rc
}

# The collectives and DDP against one process on the whole batch, over NCCL (MPI with --cpu).
test_ranks=$(printf '%s\n' 2 "$gpus" | sort -nu | awk -v n="$gpus" '$1 <= n')
[ "$gpus" -lt 2 ] && test_ranks=1
for ranks in $test_ranks; do
  log=$out/test_distributed_$ranks.log
  if [ ! -x "$build/tests/test_distributed" ]; then
    note "test_distributed, $ranks ranks: not run ($build/tests/test_distributed not built)"
    continue
  fi
  ST_TEST_DIST_BACKEND=${transport,,} LIMIT=300 launch "$ranks" "$log" \
    "$build/tests/test_distributed" --gtest_brief=1 --gtest_color=no
  rc=$?
  [ $rc = 0 ] || failed=1
  counts=$(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$log" | sort -u | tr '\n' ' ')
  note "test_distributed, $ranks ranks over $transport: rc=$rc, $counts"
done

# The benchmark: per library, 1 GPU, N GPUs, and 1 GPU with N accumulated micro-batches.
jsonl=$out/multigpu.jsonl
rm -f "$jsonl"
args=(--device "$device" --json "$jsonl" ${batch:+--batch "$batch"} "${quick[@]}" "${extra[@]}")
for lib in st torch; do
  configs=("1 1")
  if [ "$gpus" -gt 1 ]; then configs+=("$gpus 1" "1 $gpus"); fi
  if [ $lib = torch ] && ! "$python" -c "import torch" 2>/dev/null; then
    configs=("1 1")  # the script records that PyTorch is absent
  fi
  for config in "${configs[@]}"; do
    read -r ranks accum <<<"$config"
    log=$out/ddp_${lib}_${ranks}ranks_accum$accum.log
    launch "$ranks" "$log" "$python" bench/ddp_vs_torch.py --lib $lib --accum "$accum" "${args[@]}"
    rc=$?
    [ $rc = 0 ] || failed=1
    note "ddp_vs_torch --lib $lib, $ranks ranks, accum $accum: rc=$rc ($log)"
    [ $rc = 0 ] || tail -5 "$log"
  done
done

table=$out/multigpu_table.md
"$python" bench/ddp_vs_torch.py --report "$jsonl" --command "$command_line" --machine "$machine" \
  ${results:+--results "$results"} >"$table" 2>&1 || failed=1
[ -n "$results" ] && note "table appended to $results"

echo
echo "================ summary ($machine)"
printf '%s\n' "${summary[@]}"
echo
cat "$table"
exit $failed
