#!/usr/bin/env bash
# Builds everything and runs every test: the Release build under CTest, then the unit tests
# again built with AddressSanitizer + UndefinedBehaviorSanitizer (without the CUDA backend:
# the CI machine has no GPU, and the Release pass already compiles it).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-$(nproc)}"

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j "$JOBS"
(cd build && ctest -j "$JOBS" --output-on-failure --timeout 900)

# -O1 -g1: about half the compile time of -O2 -g on two cores, line numbers still in reports.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
  -DCMAKE_C_FLAGS_DEBUG="-O1 -g1" -DUNICORN_SANITIZE=ON -DUNICORN_BUILD_BENCH=OFF -DUNICORN_CUDA=OFF >/dev/null
ninja -C build-asan -j "$JOBS" unicorn unicorn_tests
# Slow end-to-end suites (many generations, browsers, load) run in the Release pass only.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ./build-asan/tests/unicorn_tests --gtest_brief=1 --gtest_filter="${ASAN_FILTER:--*Slow*}"
echo "all tests passed"
