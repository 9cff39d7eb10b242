#!/usr/bin/env bash
# llama.cpp's own CPU speed on this machine against unicorn's, on the same GGUF files, run in
# alternation (memory bandwidth on a shared VM drifts by several percent within minutes).
#
# llama.cpp is built natively here from the source node-llama-cpp ships
# (node_modules/node-llama-cpp/llama/gitRelease.bundle; no network needed): llama-bench and
# llama-quantize, Release, GGML_NATIVE=ON (AVX-512, VNNI, its Q4_0 repacking). The GGUFs are
# made by llama-quantize from unicorn's bf16 export of a random 1B model:
#   q4_0       llama-quantize's own rules (token embedding Q8_0: 1152 columns rule out Q6_K)
#   pure-q4_0  --token-embedding-type q4_0 (every matrix Q4_0, as `--quant q4_0` loads it)
#   q8_0
#
# Usage: bash bench/llamacpp_native.sh [WORK_DIR=/tmp/llamacpp-native] [PROMPT=128] [GEN=64] [THREADS=2] [REPS=3]
# Needs ./build/unicorn (the README's build), cmake, ninja, a C++ compiler; ~10 min to build
# llama.cpp on 2 cores, then ~4 min of benchmarks. Prints llama-bench's and unicorn's rows.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/llamacpp-native}
prompt=${2:-128} gen=${3:-64} threads=${4:-2} reps=${5:-3}
bundle=node_modules/node-llama-cpp/llama/gitRelease.bundle
unicorn=$PWD/build/unicorn
[[ -f $bundle ]] || { echo "no $bundle: run scripts/install.sh first" >&2; exit 1; }
[[ -x $unicorn ]] || { echo "no $unicorn: build unicorn first" >&2; exit 1; }
mkdir -p "$work"

src=$work/llama.cpp
if [[ ! -d $src ]]; then git clone -q "$bundle" "$src"; fi
if [[ ! -x $src/build/bin/llama-bench || ! -x $src/build/bin/llama-quantize ]]; then
  cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >"$work/cmake.log"
  ninja -C "$src/build" llama-bench llama-quantize >"$work/build.log"
fi
bin=$src/build/bin

model=$work/rand1b
if [[ ! -f $work/rand1b-bf16.gguf ]]; then
  [[ -d $model ]] || "$unicorn" random-model --size 1b --text-only --out "$model"
  "$unicorn" quantize -m "$model" --type bf16 --out "$work/rand1b-bf16.gguf"
fi
for t in q4_0 pure-q4_0 q8_0; do
  out=$work/rand1b-$t.gguf
  [[ -f $out ]] && continue
  case $t in
    pure-q4_0) "$bin/llama-quantize" --token-embedding-type q4_0 "$work/rand1b-bf16.gguf" "$out" q4_0 >/dev/null 2>&1 ;;
    *) "$bin/llama-quantize" "$work/rand1b-bf16.gguf" "$out" "$t" >/dev/null 2>&1 ;;
  esac
done

echo "llama.cpp: $("$bin/llama-bench" --help >/dev/null 2>&1; git -C "$src" log -1 --format='%h %cd' --date=short)," \
  "ggml $(sed -n 's/^set(GGML_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\))/\2/p' "$src/ggml/CMakeLists.txt" | paste -sd.)"
for t in pure-q4_0 q4_0 q8_0; do
  for round in 1 2; do
    echo "== $t round $round, $(date +%T), load $(cut -d' ' -f1 /proc/loadavg): llama.cpp"
    "$bin/llama-bench" -m "$work/rand1b-$t.gguf" -p "$prompt" -n "$gen" -t "$threads" -r "$reps" 2>/dev/null |
      grep -E "pp$prompt|tg$gen"
    echo "== $t round $round, $(date +%T), load $(cut -d' ' -f1 /proc/loadavg): unicorn"
    "$unicorn" bench -m "$work/rand1b-$t.gguf" -p "$prompt" -n "$gen" -t "$threads" -r "$reps" 2>&1 |
      grep -E "pp$prompt|tg$gen"
  done
done
