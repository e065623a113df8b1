#!/usr/bin/env bash
# The Vulkan backend on a GPU machine whose image has no Vulkan SDK, glslc or cairo: the programs
# are built here (build-vulkan) and copied into .vkdev/ with the shared libraries they need beyond
# glibc, libstdc++ and OpenBLAS (which .devdeps/openblas provides there).
#
#   bash bench/device-vulkan.sh pack [build-dir]   here: fill .vkdev/ from a Vulkan build
#   bash bench/device-vulkan.sh run                there (bench/device.sh vulkan calls it), logs
#                                                  to $OUT: bench.txt, tests.txt, gpt.txt
#
# On the GPU machine, with .vkdev/, .devdeps/openblas and .devdeps/prefix copied beside the sources:
# `bash bench/device.sh vulkan`. ST_VK_STAGES picks stages (default "bench tests gpt"),
# ST_VK_TESTS the suites, ST_VK_GPT_STEPS the GPT's steps (default 300).
#
# run: the CUDA backend's figures for the same cases (a CUDA build of the library, bench_vulkan
# compiled against it), bench_vulkan on vulkan:0, PyTorch's figures (bench_vulkan_torch.py), the
# conformance suites on vulkan:0, and the demo GPT trained on vulkan and on cpu with the same small
# settings, per-step losses compared.
set -uo pipefail
cd "$(dirname "$0")/.."
vk=$PWD/.vkdev

if [ "${1:-}" = pack ]; then
  build=${2:-build-vulkan}
  mkdir -p "$vk/lib"
  programs=("$build/bench/bench_vulkan" "$build/apps/spiraltorch-train")
  for t in test_core test_ops test_autograd test_nn; do programs+=("$build/tests/$t"); done
  cp "${programs[@]}" "$vk/"
  cp -L "$build/libspiraltorch.so.0" "$vk/lib/"
  # Everything the programs load except the C and C++ runtimes and OpenBLAS with its Fortran
  # runtime; stripped, so that the folders stay small to copy.
  ldd "${programs[@]}" | awk '$3 ~ /^\// {print $3}' | sort -u |
    grep -Ev '/(libc|libm|libstdc\+\+|libgcc_s|libopenblas|libgfortran|libquadmath|libspiraltorch)\.so' |
    xargs -r cp -L -t "$vk/lib/"
  strip --strip-unneeded "$vk"/test_* "$vk/bench_vulkan" "$vk/spiraltorch-train" "$vk/lib/libspiraltorch.so.0"
  du -sh "$vk"
  exit 0
fi

out=${OUT:-$PWD/out}
mkdir -p "$out"
stages=" ${ST_VK_STAGES:-bench tests gpt} "
want() { [[ $stages == *" $1 "* ]]; }
# OpenBLAS under the soname the programs were linked against.
mkdir -p /tmp/st-openblas
ln -sf "$PWD/.devdeps/openblas/lib/libopenblas.so" /tmp/st-openblas/libopenblas.so.0
export LD_LIBRARY_PATH=$vk/lib:/tmp/st-openblas:$PWD/.devdeps/openblas/lib:${LD_LIBRARY_PATH:-}
for icd in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
  /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
  if [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; break; fi
done
echo "Vulkan driver: ${VK_DRIVER_FILES:-(loader default)}" | tee "$out/bench.txt"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$out/bench.txt"

# The CUDA backend, for its figures beside Vulkan's.
if want bench; then
  export PATH=/usr/local/cuda/bin:$PATH
  cuda=build-vk-cuda
  { cmake -S . -B $cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DST_ENABLE_CUDA=ON -DST_ENABLE_VULKAN=OFF \
      -DST_BUILD_TESTS=OFF -DST_BUILD_EXAMPLES=OFF -DST_BUILD_APPS=OFF -DST_ENABLE_MPI=OFF -DST_ENABLE_NCCL=OFF \
      -DCMAKE_PREFIX_PATH="$PWD/.devdeps/prefix;$PWD/.devdeps/openblas" -DBLA_VENDOR=OpenBLAS \
      -DST_CBLAS_INCLUDE_DIR="$PWD/.devdeps/openblas/include" &&
      cmake --build $cuda --target spiraltorch -j "$(nproc)" &&
      g++ -O2 -std=c++20 -Iinclude -I$cuda/include bench/bench_vulkan.cpp -o $cuda/bench_backend \
        -L$cuda -lspiraltorch -Wl,-rpath,"$PWD/$cuda"; } >"$out/build.txt" 2>&1 ||
    echo "CUDA build failed: see build.txt" | tee -a "$out/bench.txt"
  # Its own library first: .vkdev/lib holds the Vulkan build under the same name.
  [ -x $cuda/bench_backend ] && LD_LIBRARY_PATH=$PWD/$cuda:$LD_LIBRARY_PATH timeout 120 \
    $cuda/bench_backend cuda:0 2>&1 | tee -a "$out/bench.txt"
  timeout 120 "$vk/bench_vulkan" vulkan 2>&1 | tee -a "$out/bench.txt"
  timeout 120 python3 bench/bench_vulkan_torch.py 2>&1 | tee -a "$out/bench.txt"
fi

: >"$out/tests.txt"
want tests && for t in ${ST_VK_TESTS:-test_core test_ops test_autograd test_nn}; do
  timeout 200 "$vk/$t" --gtest_filter='*vulkan*:*Vulkan*' --gtest_brief=1 >>"$out/tests.txt" 2>&1
  echo "== $t rc=$?: $(grep -E '^\[==========\]' "$out/tests.txt" | tail -1)" | tee -a "$out/tests.txt"
done

# The demo GPT, same settings and seed on both devices; dropout 0, so the runs differ only by
# floating-point rounding.
gpt=(--data data/corpus.txt --layers 2 --d-model 128 --heads 4 --context 64 --batch 16
  --steps "${ST_VK_GPT_STEPS:-300}" --eval-every 100 --sample-chars 0)
: >"$out/gpt.txt"
want gpt && for d in vulkan cpu; do
  start=$SECONDS
  timeout 240 "$vk/spiraltorch-train" --device $d --out /tmp/gpt-$d "${gpt[@]}" >>"$out/gpt.txt" 2>&1
  echo "$d: rc=$?, $((SECONDS - start)) s" >>"$out/gpt.txt"
done
want gpt && python3 - >>"$out/gpt.txt" 2>&1 <<'EOF'
import array, json, struct

def history(path):
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        data = f.read()
    out = {}
    for name in ("history.train", "history.eval"):
        lo, hi = header[name]["data_offsets"]
        out[name] = array.array("f", data[lo:hi]).tolist()
    return out

vk, cpu = (history(f"/tmp/gpt-{d}/checkpoint.safetensors") for d in ("vulkan", "cpu"))
diff = [abs(a - b) for a, b in zip(vk["history.train"], cpu["history.train"])]
worst = max(range(len(diff)), key=diff.__getitem__)
print(f"steps {len(diff)}: max |train loss vulkan - cpu| = {diff[worst]:.2e} at step {worst + 1}, "
      f"mean {sum(diff) / len(diff):.2e}")
for d, h in (("vulkan", vk), ("cpu", cpu)):
    print(f"{d}: train loss {h['history.train'][0]:.4f} -> {h['history.train'][-1]:.4f}, held-out",
          " ".join(f"{x:.4f}" for x in h["history.eval"]))
EOF
cat "$out/gpt.txt" | grep -Ev '^step ' | tail -12
grep -E "^== " "$out/tests.txt"
