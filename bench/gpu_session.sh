#!/usr/bin/env bash
# What runs on the GPU machine (see bench/RESULTS.md, CUDA): the CUDA tests, then the
# benchmarks at real shapes with random weights. Expects .dev/bundle.tar.xz from
# scripts/device-bundle.sh; writes logs to $OUT (default ./out).
#   bash bench/gpu_session.sh [tests] [bench1b] [bench27b] [depth27b] [vision27b] [profile] [nf4_27b] [ab27b] [flashab] [ncu] [envab] [binab]
#   (default: tests bench1b bench27b vision27b)
set -uo pipefail
OUT=${OUT:-out}
mkdir -p "$OUT" /tmp/u
tar xJf .dev/bundle.tar.xz -C /tmp/u
# cuBLAS from the CUDA toolkit or PyTorch's wheels, whichever the machine has.
blas=$(find /usr/local/cuda*/lib64 /opt /usr/lib -name 'libcublas.so.13*' 2>/dev/null | head -1)
export LD_LIBRARY_PATH=/tmp/u/lib${blas:+:$(dirname "$blas")}
U=/tmp/u/unicorn
parts=${*:-tests bench1b bench27b vision27b}
# profile: per-op GPU time (UNICORN_CUDA_PROFILE) of 27B decode and prefill and the 27B vision tower
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$U devices | tee "$OUT/devices.txt"

if [[ $parts == *tests* ]]; then
  UNICORN_TEST_ROOT=$PWD UNICORN_TEST_BINARY=$U UNICORN_REQUIRE_CUDA=1 timeout 600 /tmp/u/unicorn_tests \
    --gtest_filter='CudaOps*:CudaDevices*:CudaGraphs*:*cuda*:Formats/DemoModelSlow.*/4:Formats/DemoModelSlow.*/5:Formats/DemoModelSlow.*/6' \
    2>&1 | tee "$OUT/tests.txt" | grep -E '^\[  (FAILED|PASSED|SKIPPED)|Failure|diff|demo model|on cuda'
fi
if [[ $parts == *bench1b* ]]; then
  [[ -d /tmp/r1b ]] || $U random-model --size 1b --out /tmp/r1b >/dev/null
  for q in "" "--quant q4_0" "--quant q8_0"; do
    timeout 300 $U bench -m /tmp/r1b --device cuda -p 512 -n 128 -r 3 $q 2>&1 | tee -a "$OUT/bench1b.txt" | grep -E 'pp|tg|floor'
  done
fi
if [[ $parts == *bench27b* ]]; then
  [[ -f /tmp/r27b-q4_0.gguf ]] || (time $U random-model --size 27b --gguf q4_0 --out /tmp/r27b-q4_0.gguf) 2>&1 | tail -4
  timeout 400 $U bench -m /tmp/r27b-q4_0.gguf --device cuda -p 512 -n 128 -r 3 2>&1 | tee -a "$OUT/bench27b.txt"
  timeout 300 $U bench -m /tmp/r27b-q4_0.gguf --device cuda -p 0 -n 32 -r 2 --batch 32 2>&1 | tee -a "$OUT/bench27b.txt" | grep -E 'tg'
fi
if [[ $parts == *depth27b* ]]; then
  # 27B decode with a filled context: 4096 and 16384 tokens already in the sequence (bench -d).
  [[ -f /tmp/r27b-q4_0.gguf ]] || $U random-model --size 27b --gguf q4_0 --out /tmp/r27b-q4_0.gguf >/dev/null
  for d in 4096 16384; do
    timeout 300 $U bench -m /tmp/r27b-q4_0.gguf --device cuda -p 0 -n 64 -r 2 -d $d 2>&1 | tee -a "$OUT/depth27b.txt" | grep -E 'tg|error'
  done
fi
if [[ $parts == *ab27b* ]]; then
  # A/B in alternation on one card: decode and 32 sequences with and without CUDA graphs
  # (graph statistics with them), 32 sequences on the int8 tensor cores and on dp4a.
  [[ -f /tmp/r27b-q4_0.gguf ]] || $U random-model --size 27b --gguf q4_0 --out /tmp/r27b-q4_0.gguf >/dev/null
  B="$U bench -m /tmp/r27b-q4_0.gguf --device cuda"
  for i in $(seq "${AB_REPS:-2}"); do
    for g in 1 0; do
      echo "UNICORN_CUDA_GRAPHS=$g" | tee -a "$OUT/ab27b.txt"
      UNICORN_CUDA_GRAPHS=$g UNICORN_CUDA_GRAPH_STATS=1 timeout 200 $B -p 0 -n 128 -r 3 2>&1 | tee -a "$OUT/ab27b.txt" | grep -E 'tg|graphs'
      UNICORN_CUDA_GRAPHS=$g UNICORN_CUDA_GRAPH_STATS=1 timeout 200 $B -p 0 -n 32 -r 2 --batch 32 2>&1 | tee -a "$OUT/ab27b.txt" | grep -E 'tg|graphs'
    done
  done
  echo "UNICORN_CUDA_MMA=0" | tee -a "$OUT/ab27b.txt"
  UNICORN_CUDA_MMA=0 timeout 200 $B -p 0 -n 32 -r 2 --batch 32 2>&1 | tee -a "$OUT/ab27b.txt" | grep -E 'tg'
fi
if [[ $parts == *profile* ]]; then
  [[ -f /tmp/r27b-q4_0.gguf ]] || $U random-model --size 27b --gguf q4_0 --out /tmp/r27b-q4_0.gguf >/dev/null
  UNICORN_CUDA_PROFILE=1 timeout 300 $U bench -m /tmp/r27b-q4_0.gguf --device cuda -p 0 -n 32 -r 1 2>&1 | tee "$OUT/profile27b_tg.txt"
  UNICORN_CUDA_PROFILE=1 timeout 300 $U bench -m /tmp/r27b-q4_0.gguf --device cuda -p 0 -n 8 -r 1 --batch 32 2>&1 | tee "$OUT/profile27b_b32.txt"
  UNICORN_CUDA_PROFILE=1 timeout 300 $U bench -m /tmp/r27b-q4_0.gguf --device cuda -p 512 -n 0 -r 1 2>&1 | tee "$OUT/profile27b_pp.txt"
  [[ -d /tmp/r27v ]] || $U random-model --size 27b --layers 1 --out /tmp/r27v >/dev/null
  UNICORN_CUDA_PROFILE=1 timeout 300 $U bench -m /tmp/r27v --device cuda -p 0 -n 0 -r 1 --image examples/blue_triangle.png 2>&1 | tee "$OUT/profile_vision.txt"
fi
if [[ $parts == *vision27b* ]]; then
  # The 27B vision tower (and one text layer) in bf16, an 896x896 image through it.
  [[ -d /tmp/r27v ]] || $U random-model --size 27b --layers 1 --out /tmp/r27v >/dev/null
  timeout 300 $U bench -m /tmp/r27v --device cuda -p 0 -n 0 -r 5 --image examples/blue_triangle.png 2>&1 \
    | tee "$OUT/vision27b.txt"
fi
if [[ $parts == *flashab* ]]; then
  # Flash attention off / on in alternation: the 27B vision tower (bf16) and, if the 27B Q4_0
  # GGUF is there (bench27b makes it), pp512.
  [[ -d /tmp/r27v ]] || $U random-model --size 27b --layers 1 --out /tmp/r27v >/dev/null
  for i in 1 2; do
    for f in 0 1; do
      echo "UNICORN_CUDA_FLASH=$f" | tee -a "$OUT/flashab.txt"
      UNICORN_CUDA_FLASH=$f timeout 120 $U bench -m /tmp/r27v --device cuda -p 0 -n 0 -r 5 \
        --image examples/blue_triangle.png 2>&1 | tee -a "$OUT/flashab.txt" | grep -E 'image|error'
      [[ -f /tmp/r27b-q4_0.gguf ]] && UNICORN_CUDA_FLASH=$f timeout 200 $U bench -m /tmp/r27b-q4_0.gguf \
        --device cuda -p 512 -n 0 -r 3 2>&1 | tee -a "$OUT/flashab.txt" | grep -E 'pp|error'
    done
  done
fi
if [[ $parts == *ncu* ]]; then
  # Nsight Compute on a few 27B decode steps (graphs off): DRAM throughput, occupancy and warp
  # stall reasons of each kernel a layer launches (NCU_KERNELS: a regex of kernel names).
  NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  [[ -f /tmp/r27b-q4_0.gguf ]] || $U random-model --size 27b --gguf q4_0 --out /tmp/r27b-q4_0.gguf >/dev/null
  UNICORN_CUDA_GRAPHS=0 timeout 400 "$NCU" -k "regex:${NCU_KERNELS:-.}" -s "${NCU_SKIP:-900}" -c "${NCU_COUNT:-30}" \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
    $U bench -m /tmp/r27b-q4_0.gguf --device cuda -p 0 -n 4 -r 1 > "$OUT/ncu.txt" 2>&1
  grep -E '^  [a-z_]|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Stall Long|Warp Cycles Per Issued|Block Limit Reg|Grid Size' "$OUT/ncu.txt" | head -400
fi
if [[ $parts == *envab* ]]; then
  # An environment switch AB_VAR off (0) / on (1) in alternation: 27B decode (tg128) at batch 1
  # (graph statistics with it) and, with AB_BATCH=B, B sequences.
  [[ -f /tmp/r27b-q4_0.gguf ]] || $U random-model --size 27b --gguf q4_0 --out /tmp/r27b-q4_0.gguf >/dev/null
  for i in $(seq "${AB_REPS:-2}"); do
    for v in 0 1; do
      echo "$AB_VAR=$v" | tee -a "$OUT/envab.txt"
      env "$AB_VAR=$v" UNICORN_CUDA_GRAPH_STATS=1 timeout 200 $U bench -m /tmp/r27b-q4_0.gguf --device cuda -p 0 -n 128 -r 3 2>&1 \
        | tee -a "$OUT/envab.txt" | grep -E 'tg|error|graphs'
      [[ -n ${AB_BATCH:-} ]] && env "$AB_VAR=$v" timeout 200 $U bench -m /tmp/r27b-q4_0.gguf --device cuda -p 0 -n 32 -r 2 \
        --batch "$AB_BATCH" 2>&1 | tee -a "$OUT/envab.txt" | grep -E 'tg|error'
    done
  done
fi
if [[ $parts == *binab* ]]; then
  # Two builds in alternation on one card: .dev/bundle_base.tar.xz (A, e.g. the last commit's,
  # from scripts/device-bundle.sh) against this bundle (B): 27B decode (tg128) at batch 1 and,
  # with AB_BATCH=B, B sequences.
  mkdir -p /tmp/ua && tar xJf .dev/bundle_base.tar.xz -C /tmp/ua
  [[ -f /tmp/r27b-q4_0.gguf ]] || $U random-model --size 27b --gguf q4_0 --out /tmp/r27b-q4_0.gguf >/dev/null
  for i in $(seq "${AB_REPS:-2}"); do
    for bin in /tmp/ua/unicorn $U; do
      echo "$bin" | tee -a "$OUT/binab.txt"
      timeout 200 $bin bench -m /tmp/r27b-q4_0.gguf --device cuda -p 0 -n 128 -r 3 2>&1 | tee -a "$OUT/binab.txt" | grep -E 'tg|error'
      [[ -n ${AB_BATCH:-} ]] && timeout 200 $bin bench -m /tmp/r27b-q4_0.gguf --device cuda -p 0 -n 32 -r 2 \
        --batch "$AB_BATCH" 2>&1 | tee -a "$OUT/binab.txt" | grep -E 'tg|error'
    done
  done
fi
if [[ $parts == *nf4_27b* ]]; then
  # 27B multimodal with every matrix in NF4 (double quantization, embedding included), a KV
  # cache for 8192 tokens filled by a prompt of 8192 in chunks of 512, then decode and an
  # image: the GPU memory it holds at the end (bench prints it).
  [[ -d /tmp/r27nf4 ]] || (time $U random-model --size 27b --nf4 --out /tmp/r27nf4) 2>&1 | tail -4
  du -sh /tmp/r27nf4
  # --gpu-memory 16: everything but 16 GiB of the card is held back, as on a 16 GB card.
  timeout 500 $U bench -m /tmp/r27nf4 --device cuda --gpu-memory 16 --ctx 8192 -p 8192 --chunk 512 -n 32 -r 1 \
    --image examples/blue_triangle.png 2>&1 | tee "$OUT/nf4_27b.txt"
fi
