// What the flash attention kernels share (cuda_flash.cu: mma.sync for sm_80 on;
// cuda_flash_sm90a.cu: wgmma, built for sm_90a only): the tile of keys, cp.async, f16 packing,
// ex2. Device code; only for the CUDA backend's .cu files.
#pragma once

#include "backends/cuda/cuda_common.cuh"

namespace unicorn::cuda {

constexpr int kK = 64;  // keys a tile

// The Hopper form (wgmma) for head dim 72 where every query sees every key and n_k is whole
// tiles (cuda_flash_sm90a.cu); false (nothing launched) where this build or GPU lacks it.
bool flash_wgmma(const AttentionArgs& a, cudaStream_t stream, bool pipelined);

namespace flash {

__device__ __forceinline__ unsigned smem_address(const void* p) {
  return unsigned(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, in flight until cp_async_wait; zeros where !valid.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_address(dst)), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;" ::: "memory"); }

__device__ __forceinline__ uint32_t pack_f16(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
}  // namespace flash

}  // namespace unicorn::cuda
