// Q4_0 / Q8_0 weights times several rows of x (decode batches, short prompts) on the int8
// tensor cores: mma.sync m16n8k32 (s8 x s8 -> s32), one 32-value block of k per instruction,
// so each product is exact in integers and takes the two block scales in f32 after it, as the
// one-row kernels (cuda_linear.cu) do with dp4a.
//
// Fragments (PTX ISA, "mma.m16n8k32", lane = 4 g + t):
//   A, 16 weight rows x 32 values: a0 = row g values 4t..4t+3, a1 = row g + 8 the same,
//      a2 = row g values 16 + 4t.., a3 = row g + 8 the same. Q4_0 stores value j in the low
//      nibble of byte j and value j + 16 in its high nibble, so a lane's word t of a block
//      gives a0 (low nibbles) and a2 (high nibbles) at once.
//   B, 32 values x 8 rows of x: b0 = x row g values 4t.., b1 = x row g values 16 + 4t..
//   C, 16 x 8: c0, c1 = weight row g, x rows 2t and 2t + 1; c2, c3 = weight row g + 8.
// x is quantized into B's fragment order (one 8-byte load per lane and tile), its scales per
// block and row of x. A block of kMmaWarps warps takes 16 weight rows, k split among the warps,
// partial sums added in shared memory.
#include "backends/cuda/cuda_common.cuh"

namespace unicorn::cuda {

namespace {

constexpr int kMmaWarps = 8;

__device__ __forceinline__ void mma_s8(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                       uint32_t b1) {
#if __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(0));
#else
  c[0] = c[1] = c[2] = c[3] = 0;  // never launched below sm_80 (linear_int8_mma_supported)
#endif
}

// x [n, cols] -> xq [kblocks][n_pad / 8][32 lanes] (B fragments, 8 bytes a lane) and
// xd [kblocks][n_pad] (scales); rows n..n_pad-1 are zeros.
__global__ void quantize_x_fragments_kernel(const float* __restrict__ x, uint2* __restrict__ xq,
                                            float* __restrict__ xd, int64_t n, int64_t n_pad, int64_t kblocks) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_pad * kblocks) return;
  const int64_t row = i % n_pad, kb = i / n_pad;
  int words[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sum = 0;
  float d = 0.0f;
  if (row < n) quantize_chunk(x + row * kblocks * 32 + kb * 32, words, d, sum);
  const int64_t tile = row / 8, g = row % 8;
  uint2* out = xq + (kb * (n_pad / 8) + tile) * 32 + g * 4;
#pragma unroll
  for (int t = 0; t < 4; ++t) out[t] = make_uint2(uint32_t(words[t]), uint32_t(words[4 + t]));
  xd[kb * n_pad + row] = d;
}

// NT tiles of 8 rows of x. Each warp walks its share of k U blocks at a time, their weight
// words and scales loaded first.
template <WFmt F, int NT>
__global__ void __launch_bounds__(kMmaWarps * 32) mma_rows_kernel(WeightView w, const uint2* __restrict__ xq,
                                                                  const float* __restrict__ xd,
                                                                  const float* __restrict__ bias,
                                                                  float* __restrict__ y, int64_t n) {
  static_assert(F == WFmt::Q4_0 || F == WFmt::Q8_0);
  constexpr int kWords = F == WFmt::Q4_0 ? 4 : 8;  // 32-bit words of codes a block
  constexpr int U = NT <= 4 ? 4 : 2;
  const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31, g = lane >> 2, t = lane & 3;
  const int64_t row0 = int64_t(blockIdx.x) * 16, kblocks = w.cols / 32, n_pad = NT * 8;
  const int64_t ra = min(row0 + g, w.rows - 1), rb = min(row0 + g + 8, w.rows - 1);
  const uint32_t* codes = reinterpret_cast<const uint32_t*>(w.p0);
  const uint32_t* qa = codes + ra * kblocks * kWords + t;
  const uint32_t* qb = codes + rb * kblocks * kWords + t;
  const __half* da = reinterpret_cast<const __half*>(w.p1) + ra * kblocks;
  const __half* db = reinterpret_cast<const __half*>(w.p1) + rb * kblocks;
  const int64_t per = (kblocks + kMmaWarps - 1) / kMmaWarps;
  const int64_t kb0 = min(kblocks, warp * per), kb1 = min(kblocks, kb0 + per);

  float acc[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;

  for (int64_t kb = kb0; kb < kb1; kb += U) {
    uint32_t wa[U][2], wb[U][2];
    float sa[U], sb[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const bool valid = kb + u < kb1;
      const int64_t k = valid ? kb + u : kb;
      // Q4_0: word t (low nibbles 4t.., high 16 + 4t..); Q8_0: words t and 4 + t.
      wa[u][0] = qa[k * kWords];
      wb[u][0] = qb[k * kWords];
      wa[u][1] = kWords == 8 ? qa[k * kWords + 4] : 0u;
      wb[u][1] = kWords == 8 ? qb[k * kWords + 4] : 0u;
      sa[u] = valid ? __half2float(da[k]) : 0.0f;
      sb[u] = valid ? __half2float(db[k]) : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t k = kb + u < kb1 ? kb + u : kb;
      uint32_t a0, a1, a2, a3;
      if constexpr (F == WFmt::Q4_0) {
        a0 = __vsub4(wa[u][0] & 0x0f0f0f0fu, 0x08080808u);
        a2 = __vsub4((wa[u][0] >> 4) & 0x0f0f0f0fu, 0x08080808u);
        a1 = __vsub4(wb[u][0] & 0x0f0f0f0fu, 0x08080808u);
        a3 = __vsub4((wb[u][0] >> 4) & 0x0f0f0f0fu, 0x08080808u);
      } else {
        a0 = wa[u][0], a2 = wa[u][1], a1 = wb[u][0], a3 = wb[u][1];
      }
      const uint2* xb = xq + k * NT * 32 + lane;
      const float2* xs = reinterpret_cast<const float2*>(xd + k * n_pad) + t;
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        const uint2 b = xb[j * 32];
        int c[4];
        mma_s8(c, a0, a1, a2, a3, b.x, b.y);
        const float2 s = xs[j * 4];  // x rows 8j + 2t, 8j + 2t + 1
        acc[j][0] += sa[u] * s.x * float(c[0]);
        acc[j][1] += sa[u] * s.y * float(c[1]);
        acc[j][2] += sb[u] * s.x * float(c[2]);
        acc[j][3] += sb[u] * s.y * float(c[3]);
      }
    }
  }

  __shared__ float partial[kMmaWarps][NT * 4][32];
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) partial[warp][j * 4 + e][lane] = acc[j][e];
  __syncthreads();
  for (int i = int(threadIdx.x); i < NT * 4 * 32; i += kMmaWarps * 32) {
    const int je = i / 32, l = i % 32, j = je / 4, e = je % 4;
    const int64_t row = row0 + (l >> 2) + (e >= 2 ? 8 : 0), xrow = 8 * j + 2 * (l & 3) + (e & 1);
    if (row >= w.rows || xrow >= n) continue;
    float s = 0.0f;
#pragma unroll
    for (int v = 0; v < kMmaWarps; ++v) s += partial[v][je][l];
    y[xrow * w.rows + row] = s + (bias ? bias[row] : 0.0f);
  }
}

template <WFmt F, int NT>
void launch_mma_rows(const WeightView& w, const uint2* xq, const float* xd, const float* bias, float* y, int64_t n,
                     cudaStream_t stream) {
  const unsigned blocks = unsigned((w.rows + 15) / 16);
  mma_rows_kernel<F, NT><<<blocks, kMmaWarps * 32, 0, stream>>>(w, xq, xd, bias, y, n);
}

template <WFmt F>
void mma_rows(const WeightView& w, const uint2* xq, const float* xd, const float* bias, float* y, int64_t n,
              cudaStream_t stream) {
  switch ((n + 7) / 8) {
    case 1: return launch_mma_rows<F, 1>(w, xq, xd, bias, y, n, stream);
    case 2: return launch_mma_rows<F, 2>(w, xq, xd, bias, y, n, stream);
    case 3: return launch_mma_rows<F, 3>(w, xq, xd, bias, y, n, stream);
    case 4: return launch_mma_rows<F, 4>(w, xq, xd, bias, y, n, stream);
    case 5: return launch_mma_rows<F, 5>(w, xq, xd, bias, y, n, stream);
    case 6: return launch_mma_rows<F, 6>(w, xq, xd, bias, y, n, stream);
    case 7: return launch_mma_rows<F, 7>(w, xq, xd, bias, y, n, stream);
    case 8: return launch_mma_rows<F, 8>(w, xq, xd, bias, y, n, stream);
    default: break;
  }
}

}  // namespace

bool linear_int8_mma_supported(int cc_major) { return cc_major >= 8; }

int64_t linear_int8_mma_scratch(int64_t n, int64_t cols) { return (n + 7) / 8 * 8 * (cols / 32) * (32 + 4); }

void linear_int8_mma(WFmt fmt, const WeightView& w, const float* x, const float* bias, float* y, int64_t n,
                     void* scratch, cudaStream_t stream) {
  if (n < 1 || n > kMmaMaxRows) check(cudaErrorInvalidValue, "linear_int8_mma: rows of x outside 1..64", __FILE__, __LINE__);
  const int64_t kblocks = w.cols / 32, n_pad = (n + 7) / 8 * 8;
  auto* xq = static_cast<uint2*>(scratch);
  auto* xd = reinterpret_cast<float*>(static_cast<uint8_t*>(scratch) + n_pad * kblocks * 32);
  const int64_t total = n_pad * kblocks;
  quantize_x_fragments_kernel<<<unsigned((total + 127) / 128), 128, 0, stream>>>(x, xq, xd, n, n_pad, kblocks);
  UNICORN_CUDA_LAUNCHED();
  if (fmt == WFmt::Q4_0)
    mma_rows<WFmt::Q4_0>(w, xq, xd, bias, y, n, stream);
  else
    mma_rows<WFmt::Q8_0>(w, xq, xd, bias, y, n, stream);
  UNICORN_CUDA_LAUNCHED();
}

}  // namespace unicorn::cuda
