#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang and runs each for SECONDS seconds
# (default 300), seeded with the repository's GGUF and safetensors test files.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     TARGET: gguf, safetensors (default: both)
# Findings (crash-*, leak-*, timeout-* inputs) are written to build-fuzz/findings/<target>/;
# the script exits non-zero if a target finds one. Corpora grow in build-fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-300}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(gguf safetensors)
JOBS="${JOBS:-2}"

# clang with libFuzzer: Debian 12 has clang 14 (the runtime is libclang-rt-14-dev).
if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-dev
fi

cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DUNICORN_FUZZ=ON -DUNICORN_BUILD_TESTS=OFF -DUNICORN_BUILD_BENCH=OFF >/dev/null
ninja -C build-fuzz -j "$JOBS" fuzz_make_seeds "${TARGETS[@]/%/_fuzz}"
mkdir -p build-fuzz/seeds/gguf build-fuzz/seeds/safetensors
./build-fuzz/fuzz/fuzz_make_seeds build-fuzz/seeds/gguf build-fuzz/seeds/safetensors

status=0
for t in "${TARGETS[@]}"; do
  corpus="build-fuzz/corpus/$t" findings="build-fuzz/findings/$t"
  mkdir -p "$corpus" "$findings"
  # Seeds: small files of the format (large ones would slow every execution down).
  if [ "$t" = gguf ]; then
    seeds=(build-fuzz/seeds/gguf tests/data/gguf/mmproj-tiny-mm-realvocab-f16.gguf)
  else
    seeds=(build-fuzz/seeds/safetensors tests/data/gguf/hf-excerpt.safetensors)
  fi
  for s in "${seeds[@]}"; do
    if [ -d "$s" ]; then cp -n "$s"/* "$corpus"/ 2>/dev/null || true; elif [ -f "$s" ]; then cp -n "$s" "$corpus"/; fi
  done
  echo "== $t: fuzzing for ${SECONDS_PER_TARGET}s"
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "./build-fuzz/fuzz/${t}_fuzz" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 \
      -timeout=10 -print_final_stats=1 -artifact_prefix="$findings/" "$corpus"; then
    echo "== $t: FINDING (see $findings)"
    status=1
  fi
done
exit $status
