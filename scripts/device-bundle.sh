#!/usr/bin/env bash
# Packs the built `unicorn` and test binaries with the shared libraries they need that a
# plain Ubuntu / CUDA machine lacks (everything ldd lists except glibc, libstdc++ and libgcc)
# into .dev/bundle.tar.xz, for running on the GPU machine (see bench/RESULTS.md, "CUDA"):
#   mkdir -p /tmp/u && tar xJf .dev/bundle.tar.xz -C /tmp/u && export LD_LIBRARY_PATH=/tmp/u/lib
#   UNICORN_TEST_ROOT=$PWD UNICORN_TEST_BINARY=/tmp/u/unicorn UNICORN_REQUIRE_CUDA=1 /tmp/u/unicorn_tests
# Usage: scripts/device-bundle.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib" .dev
for bin in "$build/unicorn" "$build/tests/unicorn_tests"; do
  [[ -x $bin ]] || { echo "device-bundle: $bin is not built" >&2; exit 1; }
  strip -o "$stage/$(basename "$bin")" "$bin"
  ldd "$bin" | awk '/=> \// {print $3}' | while read -r lib; do
    case $(basename "$lib") in
      libc.so.*|libm.so.*|libstdc++.so.*|libgcc_s.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*) ;;
      *) cp -L "$lib" "$stage/lib/" ;;
    esac
  done
done
tar cJf .dev/bundle.tar.xz -C "$stage" .
ls -l .dev/bundle.tar.xz
