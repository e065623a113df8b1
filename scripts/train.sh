#!/usr/bin/env bash
# Builds SpiralTorch and spiraltorch-train in release mode and trains the character-level GPT on
# the shipped corpus (data/corpus.txt) with the program's defaults: a progress bar while it
# trains, then the held-out loss, a text sample, and runs/char-gpt/{checkpoint.safetensors,
# loss.png,sample.txt}. Arguments go to the program (see --help); Ctrl-C saves a checkpoint that
# --resume runs/char-gpt/checkpoint.safetensors continues.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/build-settings.sh

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DST_BUILD_APPS=ON "${launcher[@]}"
cmake --build "$build_dir" -j "$jobs" --target spiraltorch-train
exec "$build_dir/apps/spiraltorch-train" "$@"
