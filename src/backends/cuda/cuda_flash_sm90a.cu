// Flash attention on Hopper's warpgroup products (wgmma), for the vision tower: SigLIP's head
// dim 72, every query seeing every key. Built for sm_90a only (CMakeLists.txt); the mma.sync
// kernels of cuda_flash.cu take every other case, and this one's absence.
//
// A block of two warpgroups takes 128 queries, each warpgroup 64, and walks the keys 64 at a
// time; q k^T (m64n64k16, q from shared memory) and P V (m64n80k16, P from registers: the C
// fragments of the scores, as in the mma.sync kernel) are wgmma. q, K and V tiles are laid out
// in wgmma's canonical no-swizzle form, 8x8 core matrices of 128 bytes: chunk (row, c) of 8
// dimensions at (row / 8) * 1280 + c * 128 + (row % 8) * 16 bytes. q and K are K-major
// operands (leading offset 128: the next 8 dimensions; stride 1280: the next 8 rows), V the
// MN-major B of P V (leading 1280: the next 8 keys; stride 128: the next 8 dimensions).
// Dimensions 72-79 are zeros in q and K; V has a column of ones at 72, so O's dimension 72 is
// the sum of the probabilities (f32, rescaled with O). kPipe: q k^T of the next tile runs on the
// tensor cores while this tile's softmax runs (three stages of K and V; one block a
// multiprocessor for the registers); else two stages, two blocks a multiprocessor.
#include "backends/cuda/cuda_flash_common.cuh"

namespace unicorn::cuda {

namespace {

using namespace flash;

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define UNICORN_WGMMA 1
#endif

constexpr int kTileBytes = kK * 80 * 2;  // 64 rows x 80 dimensions, f16
constexpr int kRowGroup = 1280, kDimGroup = 128;

__device__ __forceinline__ int chunk_at(int row, int c) { return (row >> 3) * kRowGroup + c * kDimGroup + (row & 7) * 16; }

__device__ __forceinline__ uint64_t wgmma_desc(const void* p, uint32_t leading, uint32_t stride) {
  return uint64_t((smem_address(p) & 0x3FFFF) >> 4) | uint64_t((leading >> 4) & 0x3FFF) << 16 |
         uint64_t((stride >> 4) & 0x3FFF) << 32;  // no swizzle (bits 62-63 zero)
}

#ifdef UNICORN_WGMMA
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory"); }
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
// d [64 x 64] (+)= a [64 x 16] b [16 x 64], both K-major in shared memory; scale_d 0: d = a b.
__device__ __forceinline__ void wgmma_qk(float (&d)[32], uint64_t a_desc, uint64_t b_desc, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
      "%32, %33, p, 1, 1, 0, 0;\n}"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(a_desc), "l"(b_desc), "r"(scale_d)
      : "memory");
}
// d [64 x 80] += a [64 x 16] b [16 x 80]: a from registers, b MN-major.
__device__ __forceinline__ void wgmma_pv(float (&d)[40], const uint32_t (&a)[4], uint64_t b_desc) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n80k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39}, "
      "{%40, %41, %42, %43}, %44, 1, 1, 1, 1;"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc)
      : "memory");
}
#endif

template <int kStages>
__global__ void __launch_bounds__(256, 2) flash_wgmma_kernel(AttentionArgs a) {
#ifdef UNICORN_WGMMA
  constexpr int kThreads = 256, kQ = 128, NT = 9, KS = 5;  // KS: 16-wide steps of q k^T
  constexpr int kLoads = (kK * NT + kThreads - 1) / kThreads;  // 16-byte chunks a thread a tile
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* const sq = smem;                       // [2 warpgroups][kTileBytes]
  unsigned char* const sk = smem + 2 * kTileBytes;      // [kStages][kTileBytes]
  unsigned char* const sv = sk + kStages * kTileBytes;  // [kStages][kTileBytes]
  const int tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int64_t h = blockIdx.y, kvh = h / (a.heads / a.kv_heads), hd = 72;
  const int64_t qw = a.heads * hd, kw = a.kv_heads * hd;
  const int tiles = int(a.n_k / kK);
  const __half* const K = static_cast<const __half*>(a.k) + kvh * hd;
  const __half* const V = static_cast<const __half*>(a.v) + kvh * hd;
  // This thread's chunks of a tile: where each lands and where it comes from (key * kw + 8 c).
  int to[kLoads], from[kLoads];
#pragma unroll
  for (int it = 0; it < kLoads; ++it) {
    const int i = tid + it * kThreads, key = i / NT, c = i - key * NT;
    to[it] = i < kK * NT ? chunk_at(key, c) : -1;
    from[it] = key * int(kw) + c * 8;
  }
  auto load_tile = [&](int j) {
    unsigned char* const dk = sk + (j % kStages) * kTileBytes;
    unsigned char* const dv = sv + (j % kStages) * kTileBytes;
    const int64_t base = int64_t(j) * kK * kw;
#pragma unroll
    for (int it = 0; it < kLoads; ++it)
      if (to[it] >= 0) {
        cp_async16(dk + to[it], K + base + from[it], true);
        cp_async16(dv + to[it], V + base + from[it], true);
      }
  };
#pragma unroll
  for (int j = 0; j < kStages - 1; ++j) {  // the first tiles ahead, one group each
    if (j < tiles) load_tile(j);
    cp_async_commit();
  }
  // Dimensions 72-79 of every stage, which the loads never write: zeros in K, [1, 0, ...] in V.
  for (int i = tid; i < kStages * kK; i += kThreads) {
    const int stage = i / kK, key = i % kK;
    *reinterpret_cast<uint4*>(sk + stage * kTileBytes + chunk_at(key, NT)) = make_uint4(0, 0, 0, 0);
    *reinterpret_cast<uint4*>(sv + stage * kTileBytes + chunk_at(key, NT)) = make_uint4(0x3C00u, 0, 0, 0);
  }
  // q of the block's 128 queries scaled by scale * log2 e, in f16, zeros past n_q and past 72.
  const float q_scale = a.scale * 1.4426950408889634f;
  const int64_t qb = int64_t(blockIdx.x) * kQ;
  for (int i = tid; i < kQ * 10; i += kThreads) {
    const int row = i / 10, c = i - row * 10;
    uint4 packed = make_uint4(0, 0, 0, 0);
    if (qb + row < a.n_q && c < NT) {
      const float4* x = reinterpret_cast<const float4*>(a.q + (qb + row) * qw + h * hd + c * 8);
      const float4 x0 = x[0], x1 = x[1];
      packed = make_uint4(pack_f16(x0.x * q_scale, x0.y * q_scale), pack_f16(x0.z * q_scale, x0.w * q_scale),
                          pack_f16(x1.x * q_scale, x1.y * q_scale), pack_f16(x1.z * q_scale, x1.w * q_scale));
    }
    *reinterpret_cast<uint4*>(sq + (row >> 6) * kTileBytes + chunk_at(row & 63, c)) = packed;
  }
  const int64_t q0 = qb + (warp >> 2) * 64 + (warp & 3) * 16;  // this warp's 16 rows: g, g + 8
  // Descriptors: an address in shared memory is bits 0-13 (in 16 bytes), so offsets add.
  const uint64_t q_desc = wgmma_desc(sq + (warp >> 2) * kTileBytes, kDimGroup, kRowGroup);
  const uint64_t k_desc = wgmma_desc(sk, kDimGroup, kRowGroup), v_desc = wgmma_desc(sv, kRowGroup, kDimGroup);

  float o[40];  // O [16 rows x 80]: o[4 v + e] = dimension 8 v + 2 t + (e & 1), row e >> 1
#pragma unroll
  for (int i = 0; i < 40; ++i) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};
  float s[32];  // s[4 nt + e]: key 8 nt + 2 t + (e & 1), row e >> 1
  for (int j = 0; j < tiles; ++j) {
    // Tile j in (its group and, with three stages, all but the newest), every warpgroup done
    // with tile j - 1, whose stage takes tile j + kStages - 1.
    if constexpr (kStages == 3)
      asm volatile("cp.async.wait_group 1;" ::: "memory");
    else
      cp_async_wait_all();
    fence_proxy_async();  // this thread's shared memory writes, visible to wgmma
    __syncthreads();
    if (j + kStages - 1 < tiles) load_tile(j + kStages - 1);
    cp_async_commit();  // (an empty group past the last tile keeps the count)
    const uint32_t stage = uint32_t(j % kStages) * (kTileBytes >> 4);
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < KS; ++ks)
      wgmma_qk(s, q_desc + ks * (2 * kDimGroup >> 4), k_desc + stage + ks * (2 * kDimGroup >> 4), ks);
    wgmma_commit();
    wgmma_wait<0>();

    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int i = 0; i < 32; ++i) mx[(i >> 1) & 1] = fmaxf(mx[(i >> 1) & 1], s[i]);
    float corr[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r]);
      corr[r] = exp2_approx(m[r] - m_new);
      m[r] = m_new;
    }
    if (!__all_sync(0xffffffffu, corr[0] == 1.0f && corr[1] == 1.0f)) {
#pragma unroll
      for (int i = 0; i < 40; ++i) o[i] *= corr[(i >> 1) & 1];
    }
    uint32_t ph[8][2];  // probabilities as f16 pairs: keys 8 nt + 2 t, + 1 of row r
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int r = 0; r < 2; ++r)
        ph[nt][r] = pack_f16(exp2_approx(s[4 * nt + 2 * r] - m[r]), exp2_approx(s[4 * nt + 2 * r + 1] - m[r]));
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const uint32_t p[4] = {ph[2 * kk][0], ph[2 * kk][1], ph[2 * kk + 1][0], ph[2 * kk + 1][1]};
      wgmma_pv(o, p, v_desc + stage + kk * (2 * kRowGroup >> 4));
    }
    wgmma_commit();
    wgmma_wait<0>();
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t row = q0 + g + 8 * r;
    const float l = __shfl_sync(0xffffffffu, o[4 * NT + 2 * r], lane & ~3);  // dimension 72
    if (row >= a.n_q) continue;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int v = 0; v < NT; ++v) {
      const int64_t d = v * 8 + 2 * t;
      const float lo = o[4 * v + 2 * r] * inv, hi = o[4 * v + 2 * r + 1] * inv;
      if (a.out_bf16)
        *reinterpret_cast<__nv_bfloat162*>(static_cast<__nv_bfloat16*>(a.out_bf16) + row * qw + h * hd + d) =
            __floats2bfloat162_rn(lo, hi);
      else
        *reinterpret_cast<float2*>(a.out + row * qw + h * hd + d) = make_float2(lo, hi);
    }
  }
#endif
}

template <int kStages>
void launch(const AttentionArgs& a, cudaStream_t stream) {
  constexpr size_t bytes = size_t(2 + 2 * kStages) * kTileBytes;
  UNICORN_CUDA_CHECK(
      cudaFuncSetAttribute(flash_wgmma_kernel<kStages>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  const dim3 grid{unsigned((a.n_q + 127) / 128), unsigned(a.heads)};
  flash_wgmma_kernel<kStages><<<grid, 256, bytes, stream>>>(a);
  UNICORN_CUDA_LAUNCHED();
}

}  // namespace

bool flash_wgmma(const AttentionArgs& a, cudaStream_t stream, bool pipelined) {
  int device = 0, major = 0, minor = 0;
  UNICORN_CUDA_CHECK(cudaGetDevice(&device));
  UNICORN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  UNICORN_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  if (major != 9 || minor != 0 || !a.kv_f16 || !a.every_key || a.head_dim != 72 || a.n_k % kK != 0) return false;
  if (pipelined)
    launch<3>(a, stream);
  else
    launch<2>(a, stream);
  return true;
}

}  // namespace unicorn::cuda
