// Q4_0 / Q8_0 / Q6_K weights times several rows of x (decode batches, short prompts) on the
// int8 tensor cores: mma.sync m16n8k32 (s8 x s8 -> s32), one 32-value block of k per
// instruction (Q6_K: two m16n8k16, its scales change every 16 values), so each product is
// exact in integers and takes the block scales in f32 after it, as the one-row kernels
// (cuda_linear.cu) do with dp4a.
//
// Fragments (PTX ISA, "mma.m16n8k32", lane = 4 g + t):
//   A, 16 weight rows x 32 values: a0 = row g values 4t..4t+3, a1 = row g + 8 the same,
//      a2 = row g values 16 + 4t.., a3 = row g + 8 the same. Q4_0 stores value j in the low
//      nibble of byte j and value j + 16 in its high nibble, so a lane's word t of a block
//      gives a0 (low nibbles) and a2 (high nibbles) at once.
//   B, 32 values x 8 rows of x: b0 = x row g values 4t.., b1 = x row g values 16 + 4t..
//   C, 16 x 8: c0, c1 = weight row g, x rows 2t and 2t + 1; c2, c3 = weight row g + 8.
// x is quantized into B's fragment order (one 8-byte load per lane and tile), its scales per
// block and row of x. A block of kMmaWarps warps takes 16 x RT weight rows, k split among the
// warps (and over blocks where a matrix has too few rows to fill the GPU), partial sums added
// in shared memory. (A variant with x staged in shared memory for all warps, each warp its own
// rows, ran 16% slower at 32 rows of x on an H200: 1228-1241 against 1466-1472 tokens/s.)
#include "backends/cuda/cuda_common.cuh"

#include <algorithm>

namespace unicorn::cuda {

namespace {

constexpr int kMmaWarps = 8;
constexpr int64_t kMaxSplits = 8;
// The products start from this bit pattern (1.5 * 2^23 as a float), so the s32 result read as
// a float is exactly 1.5 * 2^23 + dot for |dot| < 2^22 (a block's dot is below 2^17): one
// subtraction instead of an int-to-float conversion, which runs at a quarter of the rate.
constexpr int kBias = 0x4B400000;
constexpr float kBiasValue = 12582912.0f;

__device__ __forceinline__ void mma_s8(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                       uint32_t b1) {
#if __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(kBias));
#else
  c[0] = c[1] = c[2] = c[3] = kBias;  // never launched below sm_80 (linear_int8_mma_supported)
#endif
}

// x [n, cols] -> xq [kblocks][n_pad / 8][32 lanes] (B fragments, 8 bytes a lane) and
// xd [kblocks][n_pad] (scales); rows n..n_pad-1 are zeros.
__global__ void quantize_x_fragments_kernel(const float* __restrict__ x, uint2* __restrict__ xq,
                                            float* __restrict__ xd, int64_t n, int64_t n_pad, int64_t kblocks) {
  let_next_start();
  wait_for_inputs();
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

// The m16n8k16 form for Q6_K, whose scales change every 16 values: a0 = row g values 4t..,
// a1 = row g + 8 the same; b0 = x row g values 4t..
__device__ __forceinline__ void mma_s8_k16(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
#if __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%7,%7,%7};"
               : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
               : "r"(a0), "r"(a1), "r"(b0), "r"(kBias));
#else
  c[0] = c[1] = c[2] = c[3] = kBias;
#endif
}

// One lane's share of a 32-value block of k for two weight rows (g and g + 8 of a tile):
// Q4_0 / Q8_0: the A words (a0..a3) and the block scale of each row; Q6_K: the words of the
// two 16-value halves (h0 = a0, a1; h1 = a2, a3) and the scale of each half and row.
struct ATile {
  uint32_t a[4];
  float s[2][2];  // [row g / g + 8][half]; Q4_0 / Q8_0 use [.][0]
};

template <WFmt F>
__device__ __forceinline__ void load_a(const WeightView& w, int64_t ra, int64_t rb, int64_t kb, int t, ATile& at) {
  const int64_t kblocks = w.cols / 32;
  if constexpr (F == WFmt::Q4_0) {
    const uint32_t* codes = reinterpret_cast<const uint32_t*>(w.p0);
    const uint32_t x = codes[(ra * kblocks + kb) * 4 + t], y = codes[(rb * kblocks + kb) * 4 + t];
    // byte j: value j low, value j + 16 high; 0..15 -> -8..7
    at.a[0] = __vsub4(x & 0x0f0f0f0fu, 0x08080808u);
    at.a[2] = __vsub4((x >> 4) & 0x0f0f0f0fu, 0x08080808u);
    at.a[1] = __vsub4(y & 0x0f0f0f0fu, 0x08080808u);
    at.a[3] = __vsub4((y >> 4) & 0x0f0f0f0fu, 0x08080808u);
    const __half* d = reinterpret_cast<const __half*>(w.p1);
    at.s[0][0] = __half2float(d[ra * kblocks + kb]);
    at.s[1][0] = __half2float(d[rb * kblocks + kb]);
  } else if constexpr (F == WFmt::Q8_0) {
    const uint32_t* codes = reinterpret_cast<const uint32_t*>(w.p0);
    at.a[0] = codes[(ra * kblocks + kb) * 8 + t];
    at.a[2] = codes[(ra * kblocks + kb) * 8 + 4 + t];
    at.a[1] = codes[(rb * kblocks + kb) * 8 + t];
    at.a[3] = codes[(rb * kblocks + kb) * 8 + 4 + t];
    const __half* d = reinterpret_cast<const __half*>(w.p1);
    at.s[0][0] = __half2float(d[ra * kblocks + kb]);
    at.s[1][0] = __half2float(d[rb * kblocks + kb]);
  } else {
    // Q6_K (q6k_chunk, cuda_common.cuh): words t and 4 + t of the chunk's ql and qh.
    const int64_t rows[2] = {ra, rb};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const Q6kChunk q = q6k_chunk(w, rows[r], kb);
#pragma unroll
      for (int half = 0; half < 2; ++half)
        at.a[2 * half + r] = q6k_word(q.lword(4 * half + t), q.hword(4 * half + t), q.lo_shift, q.hi_shift);
      const float d = __half2float(*q.d);
      at.s[r][0] = d * float(q.sc[0]);
      at.s[r][1] = d * float(q.sc[1]);
    }
  }
}

// acc += scale_row * scale_x * dot, the dot read from the biased float (exact below 2^22).
__device__ __forceinline__ void accumulate(float (&acc)[4], const int (&c)[4], float sa, float sb, float2 sx) {
  acc[0] = fmaf(sa * sx.x, __int_as_float(c[0]) - kBiasValue, acc[0]);
  acc[1] = fmaf(sa * sx.y, __int_as_float(c[1]) - kBiasValue, acc[1]);
  acc[2] = fmaf(sb * sx.x, __int_as_float(c[2]) - kBiasValue, acc[2]);
  acc[3] = fmaf(sb * sx.y, __int_as_float(c[3]) - kBiasValue, acc[3]);
}

// NT tiles of 8 rows of x against RT tiles of 16 weight rows per block; k split among the
// block's warps and, over blockIdx.y, among `splits` blocks (their partial sums into
// partial [split][n][rows], added by sum_splits_kernel), so that small matrices still fill
// the GPU. Each B fragment (x) serves RT tiles of weights.
template <WFmt F, int NT, int RT>
__global__ void __launch_bounds__(kMmaWarps * 32, F == WFmt::Q6_K || NT > 4 ? 1 : 2) mma_rows_kernel(WeightView w, const uint2* __restrict__ xq,
                                                                  const float* __restrict__ xd,
                                                                  const float* __restrict__ bias, float* __restrict__ y,
                                                                  int64_t n, int64_t kb_per_split, float* partial) {
  static_assert(F == WFmt::Q4_0 || F == WFmt::Q8_0 || F == WFmt::Q6_K);
  let_next_start();
  wait_for_inputs();
  const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31, g = lane >> 2, t = lane & 3;
  const int64_t row0 = int64_t(blockIdx.x) * 16 * RT, kblocks = w.cols / 32, n_pad = NT * 8;
  const int64_t kbeg = int64_t(blockIdx.y) * kb_per_split, kend = min(kblocks, kbeg + kb_per_split);
  const int64_t per = (kend - kbeg + kMmaWarps - 1) / kMmaWarps;
  const int64_t kb0 = min(kend, kbeg + warp * per), kb1 = min(kend, kb0 + per);
  int ra[RT], rb[RT];  // 32-bit: fewer registers (a weight has < 2^31 rows)
#pragma unroll
  for (int r = 0; r < RT; ++r) {
    ra[r] = int(min(row0 + 16 * r + g, w.rows - 1));
    rb[r] = int(min(row0 + 16 * r + g + 8, w.rows - 1));
  }
  float acc[RT][NT][4];
#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int j = 0; j < NT; ++j) acc[r][j][0] = acc[r][j][1] = acc[r][j][2] = acc[r][j][3] = 0.0f;

  // Software pipelined: block kb + 1's weights and x are loaded while block kb is multiplied
  // (the loop is bound by load latency, not by the tensor cores).
  ATile at[RT];
  uint2 b[NT];
  float2 sx[NT];
  auto load = [&](int64_t kb, ATile (&a)[RT], uint2 (&bx)[NT], float2 (&s)[NT]) {
#pragma unroll
    for (int r = 0; r < RT; ++r) load_a<F>(w, ra[r], rb[r], kb, t, a[r]);
    const uint2* xb = xq + kb * NT * 32 + lane;
    const float2* xs = reinterpret_cast<const float2*>(xd + kb * n_pad) + t;
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      bx[j] = xb[j * 32];
      s[j] = xs[j * 4];  // x rows 8j + 2t, 8j + 2t + 1
    }
  };
  if (kb0 < kb1) load(kb0, at, b, sx);
  for (int64_t kb = kb0; kb < kb1; ++kb) {
    ATile next_at[RT];
    uint2 next_b[NT];
    float2 next_sx[NT];
    load(min(kb + 1, kb1 - 1), next_at, next_b, next_sx);  // the last one loads itself again
#pragma unroll
    for (int j = 0; j < NT; ++j) {
#pragma unroll
      for (int r = 0; r < RT; ++r) {
        int c[4];
        if constexpr (F == WFmt::Q6_K) {
          mma_s8_k16(c, at[r].a[0], at[r].a[1], b[j].x);
          accumulate(acc[r][j], c, at[r].s[0][0], at[r].s[1][0], sx[j]);
          mma_s8_k16(c, at[r].a[2], at[r].a[3], b[j].y);
          accumulate(acc[r][j], c, at[r].s[0][1], at[r].s[1][1], sx[j]);
        } else {
          mma_s8(c, at[r].a[0], at[r].a[1], at[r].a[2], at[r].a[3], b[j].x, b[j].y);
          accumulate(acc[r][j], c, at[r].s[0][0], at[r].s[1][0], sx[j]);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < RT; ++r) at[r] = next_at[r];
#pragma unroll
    for (int j = 0; j < NT; ++j) b[j] = next_b[j], sx[j] = next_sx[j];
  }

  // The warps' partial sums, one output at a time through shared memory.
  __shared__ float part[kMmaWarps][NT * 4][32];
  float* out = partial ? partial + int64_t(blockIdx.y) * n * w.rows : y;
#pragma unroll
  for (int r = 0; r < RT; ++r) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) part[warp][j * 4 + e][lane] = acc[r][j][e];
    __syncthreads();
    for (int i = int(threadIdx.x); i < NT * 4 * 32; i += kMmaWarps * 32) {
      const int je = i / 32, l = i % 32, j = je / 4, e = je % 4;
      const int64_t row = row0 + 16 * r + (l >> 2) + (e >= 2 ? 8 : 0), xrow = 8 * j + 2 * (l & 3) + (e & 1);
      if (row >= w.rows || xrow >= n) continue;
      float s = 0.0f;
#pragma unroll
      for (int v = 0; v < kMmaWarps; ++v) s += part[v][je][l];
      out[xrow * w.rows + row] = s + (bias && !partial ? bias[row] : 0.0f);
    }
    __syncthreads();
  }
}

// y [n, m] = sum over splits of partial [splits][n][m] (+ bias), in split order.
__global__ void sum_splits_kernel(const float* __restrict__ partial, int64_t splits, int64_t count, int64_t m,
                                  const float* __restrict__ bias, float* __restrict__ y) {
  let_next_start();
  wait_for_inputs();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  float s = 0.0f;
  for (int64_t p = 0; p < splits; ++p) s += partial[p * count + i];
  y[i] = s + (bias ? bias[i % m] : 0.0f);
}

// Blocks wanted in flight: about two per multiprocessor of an H100 / H200.
constexpr int64_t kTargetBlocks = 264;

// Tiles of 16 weight rows a block: 4 (each B fragment of x serves 64 weight rows) for up to 16
// rows of x, 2 above (registers: RT x NT x 4 accumulators a lane; at 32 rows of x, 2 tiles
// ran 11% faster than 4 on an H200, which spilled).
constexpr int row_tiles(int64_t n) { return n <= 16 ? 4 : 2; }

// Blocks of k split over blockIdx.y while there are too few blocks of rows to fill the GPU,
// each warp keeping at least 2 blocks of k.
int64_t mma_splits(int64_t rows, int64_t cols, int rt) {
  const int64_t row_blocks = (rows + 16 * rt - 1) / (16 * rt), kblocks = cols / 32;
  int64_t splits = std::clamp<int64_t>(kTargetBlocks / row_blocks, 1, kMaxSplits);
  splits = std::min(splits, std::max<int64_t>(1, kblocks / (2 * kMmaWarps)));
  const int64_t per_split = (kblocks + splits - 1) / splits;
  return (kblocks + per_split - 1) / per_split;
}

template <WFmt F, int NT, int RT>
void mma_rows_launch(const WeightView& w, const uint2* xq, const float* xd, const float* bias, float* y, int64_t n,
                     float* partial, cudaStream_t stream) {
  const int64_t row_blocks = (w.rows + 16 * RT - 1) / (16 * RT), kblocks = w.cols / 32;
  const int64_t splits = mma_splits(w.rows, w.cols, RT), per_split = (kblocks + splits - 1) / splits;
  const dim3 grid{unsigned(row_blocks), unsigned(splits)};
  launch_dependent(mma_rows_kernel<F, NT, RT>, grid, kMmaWarps * 32, 0, stream, w, xq, xd, bias, y, n, per_split,
                   splits > 1 ? partial : nullptr);
  if (splits > 1) {
    const int64_t count = n * w.rows;
    launch_dependent(sum_splits_kernel, unsigned((count + 255) / 256), 256, 0, stream, partial, splits, count, w.rows,
                     bias, y);
  }
}

template <WFmt F>
void mma_rows(const WeightView& w, const uint2* xq, const float* xd, const float* bias, float* y, int64_t n,
              float* partial, cudaStream_t stream) {
  switch ((n + 7) / 8) {
    case 1: return mma_rows_launch<F, 1, row_tiles(8)>(w, xq, xd, bias, y, n, partial, stream);
    case 2: return mma_rows_launch<F, 2, row_tiles(16)>(w, xq, xd, bias, y, n, partial, stream);
    case 3: return mma_rows_launch<F, 3, row_tiles(24)>(w, xq, xd, bias, y, n, partial, stream);
    case 4: return mma_rows_launch<F, 4, row_tiles(32)>(w, xq, xd, bias, y, n, partial, stream);
    case 5: return mma_rows_launch<F, 5, row_tiles(40)>(w, xq, xd, bias, y, n, partial, stream);
    case 6: return mma_rows_launch<F, 6, row_tiles(48)>(w, xq, xd, bias, y, n, partial, stream);
    case 7: return mma_rows_launch<F, 7, row_tiles(56)>(w, xq, xd, bias, y, n, partial, stream);
    case 8: return mma_rows_launch<F, 8, row_tiles(64)>(w, xq, xd, bias, y, n, partial, stream);
    default: break;
  }
}

}  // namespace

bool linear_int8_mma_supported(int cc_major) { return cc_major >= 8; }

int64_t linear_int8_mma_scratch(int64_t n, int64_t rows, int64_t cols) {
  const int64_t splits = mma_splits(rows, cols, row_tiles(n));
  return (n + 7) / 8 * 8 * (cols / 32) * (32 + 4) + (splits > 1 ? splits * n * rows * 4 : 0);
}

void linear_int8_mma(WFmt fmt, const WeightView& w, const float* x, const float* bias, float* y, int64_t n,
                     void* scratch, cudaStream_t stream, bool x_ready) {
  if (n < 1 || n > kMmaMaxRows) check(cudaErrorInvalidValue, "linear_int8_mma: rows of x outside 1..64", __FILE__, __LINE__);
  const int64_t kblocks = w.cols / 32, n_pad = (n + 7) / 8 * 8;
  auto* xq = static_cast<uint2*>(scratch);
  auto* xd = reinterpret_cast<float*>(static_cast<uint8_t*>(scratch) + n_pad * kblocks * 32);
  auto* partial = xd + n_pad * kblocks;
  const int64_t total = n_pad * kblocks;
  if (!x_ready) {
    launch_dependent(quantize_x_fragments_kernel, unsigned((total + 127) / 128), 128, 0, stream, x, xq, xd, n, n_pad,
                     kblocks);
  }
  if (fmt == WFmt::Q4_0)
    mma_rows<WFmt::Q4_0>(w, xq, xd, bias, y, n, partial, stream);
  else if (fmt == WFmt::Q8_0)
    mma_rows<WFmt::Q8_0>(w, xq, xd, bias, y, n, partial, stream);
  else if (fmt == WFmt::Q6_K)
    mma_rows<WFmt::Q6_K>(w, xq, xd, bias, y, n, partial, stream);
  else
    check(cudaErrorInvalidValue, "linear_int8_mma: weights not Q4_0, Q8_0 or Q6_K", __FILE__, __LINE__);
}

}  // namespace unicorn::cuda
