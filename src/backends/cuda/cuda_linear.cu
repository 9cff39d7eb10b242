// y = x W^T (+ bias) on the GPU for every weight format of cuda_common.cuh.
//   one row of x (decode): matvec1_kernel, 8 weight rows per block with k split among threads;
//   2..8 rows of x (small batches): one warp per weight row, each lane dequantizing 32-weight
//   chunks and multiplying them into every row of x: the weights are read once.
//   More rows (prefill, the vision tower): 64 x 64 output tiles over 32-wide slices of k, the
//   weight slice dequantized into shared memory, f32 products.
// Plain float weights whose rows are not whole 32-value chunks (SigLIP's 588-wide patch
// embedding and 4304-wide MLP) go through the same kernels reading one value at a time.
#include "backends/cuda/cuda_common.cuh"

#include <algorithm>

#include <type_traits>

namespace unicorn::cuda {

namespace {

// Calls fn(std::integral_constant<WFmt, F>) for the runtime format: one instantiation each.
template <class Fn>
void with_format(WFmt fmt, Fn&& fn) {
  using enum WFmt;
  switch (fmt) {
    case F32: return fn(std::integral_constant<WFmt, F32>());
    case F16: return fn(std::integral_constant<WFmt, F16>());
    case BF16: return fn(std::integral_constant<WFmt, BF16>());
    case Q4_0: return fn(std::integral_constant<WFmt, Q4_0>());
    case Q8_0: return fn(std::integral_constant<WFmt, Q8_0>());
    case Q4_K: return fn(std::integral_constant<WFmt, Q4_K>());
    case Q6_K: return fn(std::integral_constant<WFmt, Q6_K>());
    case NF4: return fn(std::integral_constant<WFmt, NF4>());
  }
}

constexpr int kMatvecRows = 8;  // rows of x one matvec pass takes
constexpr int kWarpsPerBlock = 8;

// One weight of a plain float format.
template <WFmt F>
__device__ __forceinline__ float load_elem(const WeightView& w, int64_t row, int64_t col) {
  const int64_t i = row * w.cols + col;
  if constexpr (F == WFmt::F32) return reinterpret_cast<const float*>(w.p0)[i];
  else if constexpr (F == WFmt::F16) return __half2float(reinterpret_cast<const __half*>(w.p0)[i]);
  else return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(w.p0)[i]);
}

// Sums each row's partial dot products over the warp; lane 0 writes y[r, row] (+ bias).
template <int NR>
__device__ __forceinline__ void store_rows(float (&acc)[NR], int n, int64_t row, int64_t m, const float* bias,
                                           float* y) {
#pragma unroll
  for (int r = 0; r < NR; ++r) {
    float s = acc[r];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if ((threadIdx.x & 31) == 0 && r < n) y[int64_t(r) * m + row] = s + (bias ? bias[row] : 0.0f);
  }
}

// Plain weights of any width: lanes stride over single values.
template <WFmt F, int NR>
__global__ void matvec_elem_kernel(WeightView w, const float* __restrict__ x, const float* __restrict__ bias,
                                   float* __restrict__ y, int n) {
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= w.rows) return;
  const int64_t k = w.cols;
  float acc[NR];
#pragma unroll
  for (int r = 0; r < NR; ++r) acc[r] = 0.0f;
  for (int64_t e = lane; e < k; e += 32) {
    const float wv = load_elem<F>(w, row, e);
#pragma unroll
    for (int r = 0; r < NR; ++r)
      if (r < n) acc[r] += wv * x[int64_t(r) * k + e];
  }
  store_rows<NR>(acc, n, row, w.rows, bias, y);
}

template <WFmt F, int NR>
__global__ void matvec_kernel(WeightView w, const float* __restrict__ x, const float* __restrict__ bias,
                              float* __restrict__ y, int n) {
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= w.rows) return;
  const int64_t k = w.cols, chunks = k / 32;
  float acc[NR];
#pragma unroll
  for (int r = 0; r < NR; ++r) acc[r] = 0.0f;
  for (int64_t c = lane; c < chunks; c += 32) {
    float wv[32];
    load_chunk<F>(w, row, c, wv);
#pragma unroll
    for (int r = 0; r < NR; ++r) {
      if (r < n) {
        const float4* xp = reinterpret_cast<const float4*>(x + int64_t(r) * k + c * 32);
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const float4 xv = xp[i];
          s += wv[4 * i] * xv.x + wv[4 * i + 1] * xv.y + wv[4 * i + 2] * xv.z + wv[4 * i + 3] * xv.w;
        }
        acc[r] += s;
      }
    }
  }
  store_rows<NR>(acc, n, row, w.rows, bias, y);
}

// One row of x (decode at batch 1): a block of 128 threads takes kRowsPerBlock weight rows
// and splits k among its threads, so each thread loads its 32 values of x once for all the
// rows (x's L1 traffic is 1/kRowsPerBlock of reading it per row), and even narrow layers give
// thousands of warps to hide DRAM latency. Partial sums meet in shared memory.
constexpr int kRowsPerBlock = 8, kMatvec1Threads = 128;

// The block's per-thread partial sums of R rows, added up; thread r writes row r.
template <int R>
__device__ __forceinline__ void block_store_rows(const float (&acc)[R], int rows, int64_t row0, const float* bias,
                                                 float* y) {
  __shared__ float partial[kMatvec1Threads / 32][R];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    float s = acc[r];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) partial[warp][r] = s;
  }
  __syncthreads();
  if (threadIdx.x < rows) {
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < kMatvec1Threads / 32; ++i) s += partial[i][threadIdx.x];
    const int64_t row = row0 + threadIdx.x;
    y[row] = s + (bias ? bias[row] : 0.0f);
  }
}

template <WFmt F>
__global__ void __launch_bounds__(kMatvec1Threads) matvec1_kernel(WeightView w, const float* __restrict__ x,
                                                                  const float* __restrict__ bias, float* __restrict__ y) {
  let_next_start();
  wait_for_inputs();
  const int64_t row0 = int64_t(blockIdx.x) * kRowsPerBlock;
  const int64_t chunks = w.cols / 32;
  const int rows = int(min(int64_t(kRowsPerBlock), w.rows - row0));
  float acc[kRowsPerBlock];
#pragma unroll
  for (int r = 0; r < kRowsPerBlock; ++r) acc[r] = 0.0f;
  for (int64_t c = threadIdx.x; c < chunks; c += kMatvec1Threads) {
    float xv[32];
    const float4* xp = reinterpret_cast<const float4*>(x + c * 32);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const float4 v = xp[i];
      xv[4 * i] = v.x, xv[4 * i + 1] = v.y, xv[4 * i + 2] = v.z, xv[4 * i + 3] = v.w;
    }
#pragma unroll
    for (int r = 0; r < kRowsPerBlock; ++r) {
      if (r < rows) {
        float wv[32];
        load_chunk<F>(w, row0 + r, c, wv);
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < 32; ++i) s += wv[i] * xv[i];
        acc[r] += s;
      }
    }
  }
  block_store_rows(acc, rows, row0, bias, y);
}

// Codes (4 words Q4_0, 8 words Q8_0) and scale of chunk c of each of R weight rows from row0
// (rows past `rows` repeat the last).
template <WFmt F, int R>
__device__ __forceinline__ void fetch_int8_rows(const WeightView& w, int64_t row0, int rows, int64_t c,
                                                uint32_t (&wq)[R][F == WFmt::Q4_0 ? 4 : 8], float (&wd)[R]) {
  constexpr int kWords = F == WFmt::Q4_0 ? 4 : 8;
  const int64_t chunks = w.cols / 32;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t b = (row0 + min(r, rows - 1)) * chunks + c;
    const uint4* p = reinterpret_cast<const uint4*>(w.p0) + b * (kWords / 4);
#pragma unroll
    for (int i = 0; i < kWords / 4; ++i) {
      const uint4 v = p[i];
      wq[r][4 * i] = v.x, wq[r][4 * i + 1] = v.y, wq[r][4 * i + 2] = v.z, wq[r][4 * i + 3] = v.w;
    }
    wd[r] = __half2float(reinterpret_cast<const __half*>(w.p1)[b]);
  }
}

// Q6_K's chunk c of R rows unpacked to int8 values (6-bit codes - 32, four to a word, in value
// order) and the scales d * sc of its two 16-value halves.
template <int R>
__device__ __forceinline__ void fetch_q6k_rows(const WeightView& w, int64_t row0, int rows, int64_t c,
                                               uint32_t (&wq)[R][8], float (&ws)[R][2]) {
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const Q6kChunk q = q6k_chunk(w, row0 + min(r, rows - 1), c);
    const uint4 l0 = q.l(0), l1 = q.l(1), h0 = q.h(0), h1 = q.h(1);
    const uint32_t lw[8] = {l0.x, l0.y, l0.z, l0.w, l1.x, l1.y, l1.z, l1.w};
    const uint32_t hw[8] = {h0.x, h0.y, h0.z, h0.w, h1.x, h1.y, h1.z, h1.w};
#pragma unroll
    for (int i = 0; i < 8; ++i) wq[r][i] = q6k_word(lw[i], hw[i], q.lo_shift, q.hi_shift);
    const float d = __half2float(*q.d);
    ws[r][0] = d * float(q.sc[0]);
    ws[r][1] = d * float(q.sc[1]);
  }
}

// Up to three products of the same row of x in one launch (q, k and v): blocks [first_block[i],
// first_block[i + 1]) take w[i].
struct Int8Products {
  WeightView w[3];
  const float* bias[3] = {nullptr, nullptr, nullptr};
  float* y[3] = {nullptr, nullptr, nullptr};
  int64_t first_block[4] = {0, 0, 0, 0};
  int count = 0;
};

// Q4_0 / Q8_0 weights and one row of x (decode): x's 32-value chunk quantized to int8 in
// registers (scale amax / 127, as ggml's Q8_0), products in 4-way int8 dot products (dp4a),
// one float multiply per chunk and row. Dequantizing to f32 spends ~4 instructions a weight,
// which at 4-bit weights costs more than the memory does.
// R weight rows a block (Q4_0: 16, whose 4 words a row leave room for them; else 8).
template <WFmt F>
constexpr int int8_rows_per_block() {
  return F == WFmt::Q4_0 ? 16 : kRowsPerBlock;
}

template <WFmt F>
__global__ void __launch_bounds__(kMatvec1Threads) matvec1_int8_kernel(Int8Products p, const float* __restrict__ x) {
  static_assert(F == WFmt::Q4_0 || F == WFmt::Q8_0 || F == WFmt::Q6_K);
  let_next_start();
  wait_for_inputs();
  constexpr int R = int8_rows_per_block<F>();
  int part = 0;
  while (part + 1 < p.count && int64_t(blockIdx.x) >= p.first_block[part + 1]) ++part;
  const WeightView& w = p.w[part];
  const int64_t row0 = (int64_t(blockIdx.x) - p.first_block[part]) * R;
  const int64_t chunks = w.cols / 32;
  const int rows = int(min(int64_t(R), w.rows - row0));
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  for (int64_t c = threadIdx.x; c < chunks; c += kMatvec1Threads) {
    int xq[8], xsum;
    float d;
    if constexpr (F == WFmt::Q6_K) {
      // Values -32..31 with a scale per 16: two partial integer sums a chunk.
      uint32_t wq[R][8];
      float ws[R][2];
      fetch_q6k_rows<R>(w, row0, rows, c, wq, ws);
      quantize_chunk(x + c * 32, xq, d, xsum);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        int lo = 0, hi = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          lo = __dp4a(int(wq[r][i]), xq[i], lo);
          hi = __dp4a(int(wq[r][i + 4]), xq[i + 4], hi);
        }
        acc[r] += d * (ws[r][0] * float(lo) + ws[r][1] * float(hi));
      }
    } else {
      // Every row's codes and scale first: R loads in flight per thread.
      uint32_t wq[R][F == WFmt::Q4_0 ? 4 : 8];
      float wd[R];
      fetch_int8_rows<F, R>(w, row0, rows, c, wq, wd);
      quantize_chunk(x + c * 32, xq, d, xsum);
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r] += wd[r] * d * float(dot_chunk<F>(wq[r], xq, xsum));
    }
  }
  block_store_rows(acc, rows, row0, p.bias[part], p.y[part]);
}

// The FFN's gate and up products of one row of x with GELU between, in one pass over both
// weights (as matvec1_int8_kernel, kRowsPerBlock rows of each).
template <WFmt F>
__global__ void __launch_bounds__(kMatvec1Threads) gate_up1_int8_kernel(WeightView wg, WeightView wu,
                                                                        const float* __restrict__ x,
                                                                        float* __restrict__ out) {
  const int64_t row0 = int64_t(blockIdx.x) * kRowsPerBlock;
  const int64_t chunks = wg.cols / 32;
  const int rows = int(min(int64_t(kRowsPerBlock), wg.rows - row0));
  float acc_g[kRowsPerBlock], acc_u[kRowsPerBlock];
#pragma unroll
  for (int r = 0; r < kRowsPerBlock; ++r) acc_g[r] = acc_u[r] = 0.0f;
  for (int64_t c = threadIdx.x; c < chunks; c += kMatvec1Threads) {
    uint32_t gq[kRowsPerBlock][F == WFmt::Q4_0 ? 4 : 8], uq[kRowsPerBlock][F == WFmt::Q4_0 ? 4 : 8];
    float gd[kRowsPerBlock], ud[kRowsPerBlock];
    fetch_int8_rows<F, kRowsPerBlock>(wg, row0, rows, c, gq, gd);
    fetch_int8_rows<F, kRowsPerBlock>(wu, row0, rows, c, uq, ud);
    int xq[8], xsum;
    float d;
    quantize_chunk(x + c * 32, xq, d, xsum);
#pragma unroll
    for (int r = 0; r < kRowsPerBlock; ++r) {
      acc_g[r] += gd[r] * d * float(dot_chunk<F>(gq[r], xq, xsum));
      acc_u[r] += ud[r] * d * float(dot_chunk<F>(uq[r], xq, xsum));
    }
  }
  __shared__ float partial[kMatvec1Threads / 32][2 * kRowsPerBlock];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int r = 0; r < 2 * kRowsPerBlock; ++r) {
    float s = r < kRowsPerBlock ? acc_g[r] : acc_u[r - kRowsPerBlock];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) partial[warp][r] = s;
  }
  __syncthreads();
  if (threadIdx.x < rows) {
    float g = 0.0f, u = 0.0f;
#pragma unroll
    for (int i = 0; i < kMatvec1Threads / 32; ++i) g += partial[i][threadIdx.x], u += partial[i][kRowsPerBlock + threadIdx.x];
    out[row0 + threadIdx.x] = gelu_tanh(g) * u;
  }
}

// Q4_0 / Q8_0 weights and several rows of x (batched decode, short prompts): x quantized to
// int8 once (quantize_x_kernel: per 32 values, the scale and the sum of the codes), then each
// block takes kXRows rows of x against kWRows weight rows, k split among its threads; the
// weights are read once per kXRows rows of x.
constexpr int kXRows = 16, kWRows = 4;

__global__ void quantize_x_kernel(const float* __restrict__ x, int8_t* __restrict__ xq, float* __restrict__ xd,
                                  int* __restrict__ xs, int64_t count_chunks) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // chunk of 32 over all rows
  if (i >= count_chunks) return;
  int words[8], sum;
  float d;
  quantize_chunk(x + i * 32, words, d, sum);
  uint4* out = reinterpret_cast<uint4*>(xq + i * 32);
  out[0] = make_uint4(words[0], words[1], words[2], words[3]);
  out[1] = make_uint4(words[4], words[5], words[6], words[7]);
  xd[i] = d;
  xs[i] = sum;
}

template <WFmt F>
__global__ void __launch_bounds__(kMatvec1Threads) matvec_rows_int8_kernel(WeightView w, const int8_t* __restrict__ xq,
                                                                           const float* __restrict__ xd,
                                                                           const int* __restrict__ xs,
                                                                           const float* __restrict__ bias,
                                                                           float* __restrict__ y, int64_t n) {
  const int64_t row0 = int64_t(blockIdx.x) * kWRows, x0 = int64_t(blockIdx.y) * kXRows;
  const int64_t chunks = w.cols / 32;
  const int rows = int(min(int64_t(kWRows), w.rows - row0));
  const int xrows = int(min(int64_t(kXRows), n - x0));
  float acc[kWRows][kXRows];
#pragma unroll
  for (int r = 0; r < kWRows; ++r)
#pragma unroll
    for (int j = 0; j < kXRows; ++j) acc[r][j] = 0.0f;
  for (int64_t c = threadIdx.x; c < chunks; c += kMatvec1Threads) {
    uint32_t wq[kWRows][F == WFmt::Q4_0 ? 4 : 8];
    float wd[kWRows];
    fetch_int8_rows<F, kWRows>(w, row0, rows, c, wq, wd);
#pragma unroll
    for (int j = 0; j < kXRows; ++j) {
      if (j >= xrows) break;
      const int64_t xi = (x0 + j) * chunks + c;
      const uint4* xp = reinterpret_cast<const uint4*>(xq + xi * 32);
      const uint4 a = xp[0], b = xp[1];
      const int xw[8] = {int(a.x), int(a.y), int(a.z), int(a.w), int(b.x), int(b.y), int(b.z), int(b.w)};
      const float dx = xd[xi];
#pragma unroll
      for (int r = 0; r < kWRows; ++r) acc[r][j] += wd[r] * dx * float(dot_chunk<F>(wq[r], xw, xs[xi]));
    }
  }
  __shared__ float partial[kMatvec1Threads / 32][kWRows * kXRows];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int r = 0; r < kWRows; ++r)
#pragma unroll
    for (int j = 0; j < kXRows; ++j) {
      float s = acc[r][j];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (lane == 0) partial[warp][r * kXRows + j] = s;
    }
  __syncthreads();
  for (int t = threadIdx.x; t < kWRows * kXRows; t += kMatvec1Threads) {
    const int r = t / kXRows, j = t % kXRows;
    if (r >= rows || j >= xrows) continue;
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < kMatvec1Threads / 32; ++i) s += partial[i][t];
    const int64_t row = row0 + r;
    y[(x0 + j) * w.rows + row] = s + (bias ? bias[row] : 0.0f);
  }
}

constexpr int kTile = 64, kSlice = 32;

template <WFmt F, bool kElem>
__global__ void __launch_bounds__(256) gemm_kernel(WeightView w, const float* __restrict__ x,
                                                   const float* __restrict__ bias, float* __restrict__ y, int64_t n) {
  __shared__ float xs[kSlice][kTile + 4];  // [k][x row]
  __shared__ float ws[kSlice][kTile + 4];  // [k][weight row]
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t row0 = int64_t(blockIdx.y) * kTile;  // rows of x
  const int64_t col0 = int64_t(blockIdx.x) * kTile;  // rows of w = columns of y
  const int64_t k = w.cols;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < k; k0 += kSlice) {
    // x slice: 64 rows x 32 values, 8 per thread, coalesced along k.
    for (int i = tid; i < kTile * kSlice; i += 256) {
      const int r = i / kSlice, kk = i % kSlice;
      const int64_t gr = row0 + r;
      xs[kk][r] = gr < n && k0 + kk < k ? x[gr * k + k0 + kk] : 0.0f;
    }
    if constexpr (kElem) {
      for (int i = tid; i < kTile * kSlice; i += 256) {
        const int r = i / kSlice, kk = i % kSlice;
        const int64_t gr = col0 + r;
        ws[kk][r] = gr < w.rows && k0 + kk < k ? load_elem<F>(w, gr, k0 + kk) : 0.0f;
      }
    } else if (tid < kTile) {
      // Weight slice: one 32-value chunk for each of the 64 rows.
      const int64_t gr = col0 + tid;
      float v[32];
      if (gr < w.rows) {
        load_chunk<F>(w, gr, k0 / 32, v);
      } else {
#pragma unroll
        for (int i = 0; i < 32; ++i) v[i] = 0.0f;
      }
#pragma unroll
      for (int i = 0; i < 32; ++i) ws[i][tid] = v[i];
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kSlice; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = xs[kk][ty * 4 + i], b[i] = ws[kk][tx * 4 + i];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = row0 + ty * 4 + i;
    if (r >= n) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t c = col0 + tx * 4 + j;
      if (c < w.rows) y[r * w.rows + c] = acc[i][j] + (bias ? bias[c] : 0.0f);
    }
  }
}

template <WFmt F, bool kElem>
void launch_shape(const WeightView& w, const float* x, const float* bias, float* y, int64_t n, bool int8_x,
                  cudaStream_t stream) {
  if constexpr (F == WFmt::Q4_0 || F == WFmt::Q8_0 || F == WFmt::Q6_K) {
    if (n == 1 && int8_x) {
      constexpr int R = int8_rows_per_block<F>();
      const unsigned row_blocks = unsigned((w.rows + R - 1) / R);
      Int8Products p;
      p.w[0] = w;
      p.bias[0] = bias;
      p.y[0] = y;
      p.first_block[1] = row_blocks;
      p.count = 1;
      launch_dependent(matvec1_int8_kernel<F>, row_blocks, kMatvec1Threads, 0, stream, p, x);
      return;
    }
  }
  if (n == 1 && !kElem) {
    launch_dependent(matvec1_kernel<F>, unsigned((w.rows + kRowsPerBlock - 1) / kRowsPerBlock), kMatvec1Threads, 0,
                     stream, w, x, bias, y);
    return;
  } else if (n <= kMatvecRows) {
    const dim3 grid(unsigned((w.rows + kWarpsPerBlock - 1) / kWarpsPerBlock));
    const dim3 block(32 * kWarpsPerBlock);
    auto go = [&](auto nr) {
      constexpr int NR = decltype(nr)::value;
      if constexpr (kElem)
        matvec_elem_kernel<F, NR><<<grid, block, 0, stream>>>(w, x, bias, y, int(n));
      else
        matvec_kernel<F, NR><<<grid, block, 0, stream>>>(w, x, bias, y, int(n));
    };
    if (n == 1)
      go(std::integral_constant<int, 1>());
    else if (n <= 4)
      go(std::integral_constant<int, 4>());
    else
      go(std::integral_constant<int, kMatvecRows>());
  } else {
    const dim3 grid(unsigned((w.rows + kTile - 1) / kTile), unsigned((n + kTile - 1) / kTile));
    gemm_kernel<F, kElem><<<grid, 256, 0, stream>>>(w, x, bias, y, n);
  }
  UNICORN_CUDA_LAUNCHED();
}

template <WFmt F>
void launch(const WeightView& w, const float* x, const float* bias, float* y, int64_t n, bool int8_x,
            cudaStream_t stream) {
  constexpr bool kPlain = F == WFmt::F32 || F == WFmt::F16 || F == WFmt::BF16;
  if (kPlain && w.cols % 32 != 0)
    launch_shape<F, kPlain>(w, x, bias, y, n, int8_x, stream);
  else
    launch_shape<F, false>(w, x, bias, y, n, int8_x, stream);
}

}  // namespace

void linear(WFmt fmt, const WeightView& w, const float* x, const float* bias, float* y, int64_t n, bool int8_x,
            cudaStream_t stream) {
  with_format(fmt, [&](auto f) { launch<decltype(f)::value>(w, x, bias, y, n, int8_x, stream); });
}

namespace {

// Four threads a 32-value chunk of a row, each writing its 8 values as two 16-byte stores (a
// warp's stores contiguous).
__device__ __forceinline__ int32_t embed_id(const EmbedIds& ids, int64_t t) {
  if (ids.device) return ids.device[t];
  int32_t id = 0;
#pragma unroll
  for (int i = 0; i < EmbedIds::kInlineIds; ++i) id = t == i ? ids.inline_ids[i] : id;
  return id;
}

template <WFmt F>
__global__ void embed_kernel(WeightView w, EmbedIds ids, float scale, float* __restrict__ out, int64_t n) {
  let_next_start();
  wait_for_inputs();
  const int64_t quarters = w.cols / 8;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // (token, chunk, quarter)
  if (i >= n * quarters) return;
  const int64_t t = i / quarters, c = i % quarters / 4;
  float q[8];
  chunk_quarter<F>(w, embed_id(ids, t), c, int(i % 4), q);
  float4* o = reinterpret_cast<float4*>(out + t * w.cols) + (i % quarters) * 2;
  o[0] = make_float4(q[0] * scale, q[1] * scale, q[2] * scale, q[3] * scale);
  o[1] = make_float4(q[4] * scale, q[5] * scale, q[6] * scale, q[7] * scale);
}

template <WFmt F>
__global__ void embed_elem_kernel(WeightView w, EmbedIds ids, float scale, float* __restrict__ out, int64_t n) {
  let_next_start();
  wait_for_inputs();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // (token, column)
  if (i >= n * w.cols) return;
  out[i] = load_elem<F>(w, embed_id(ids, i / w.cols), i % w.cols) * scale;
}

template <WFmt F>
void launch_embed(const WeightView& w, const EmbedIds& ids, float scale, float* out, int64_t n, cudaStream_t stream) {
  if constexpr (F == WFmt::F32 || F == WFmt::F16 || F == WFmt::BF16) {
    const int64_t total = n * w.cols;
    launch_dependent(embed_elem_kernel<F>, unsigned((total + 255) / 256), 256, 0, stream, w, ids, scale, out, n);
  } else {
    const int64_t total = n * (w.cols / 8);
    launch_dependent(embed_kernel<F>, unsigned((total + 127) / 128), 128, 0, stream, w, ids, scale, out, n);
  }
}

}  // namespace

void embed(WFmt fmt, const WeightView& w, const EmbedIds& ids, float scale, float* out, int64_t n,
           cudaStream_t stream) {
  with_format(fmt, [&](auto f) { launch_embed<decltype(f)::value>(w, ids, scale, out, n, stream); });
}

namespace {

// Four threads a 32-value chunk (chunk_quarter), each writing 8 bf16 values as one 16-byte
// store, so a warp's stores are contiguous.
template <WFmt F>
__device__ __forceinline__ void chunk_quarter_to_bf16(const WeightView& w, int64_t row, int64_t chunk, int part,
                                                      uint4* out) {
  float q[8];
  chunk_quarter<F>(w, row, chunk, part, q);
  uint32_t words[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const __nv_bfloat162 pair = __floats2bfloat162_rn(q[2 * j], q[2 * j + 1]);
    words[j] = *reinterpret_cast<const uint32_t*>(&pair);
  }
  *out = make_uint4(words[0], words[1], words[2], words[3]);
}

// All rows of w into out [rows, cols]. (Kept apart from the ranged kernel below, whose extra
// index arithmetic made 27B prefill 4% slower when used for whole matrices, H200.)
template <WFmt F>
__global__ void weight_chunks_to_bf16_kernel(WeightView w, __nv_bfloat16* __restrict__ out) {
  const int64_t chunks = w.cols / 32;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // (row, chunk, quarter)
  if (i >= w.rows * chunks * 4) return;
  const int64_t chunk = i / 4;
  chunk_quarter_to_bf16<F>(w, chunk / chunks, chunk % chunks, int(i % 4), reinterpret_cast<uint4*>(out) + i);
}

// Rows r0 .. r0 + rows - 1 of w into out [rows, cols]: the slices of a panelled product.
template <WFmt F>
__global__ void weight_row_chunks_to_bf16_kernel(WeightView w, int64_t r0, int64_t rows,
                                                 __nv_bfloat16* __restrict__ out) {
  const int64_t chunks = w.cols / 32;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * chunks * 4) return;
  chunk_quarter_to_bf16<F>(w, r0 + i / 4 / chunks, i / 4 % chunks, int(i % 4), reinterpret_cast<uint4*>(out) + i);
}

template <WFmt F>
__global__ void weight_elems_to_bf16_kernel(WeightView w, int64_t r0, int64_t rows, __nv_bfloat16* __restrict__ out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < rows * w.cols) out[i] = __float2bfloat16_rn(load_elem<F>(w, r0 + i / w.cols, i % w.cols));
}

// Rows blockIdx.y, blockIdx.y + gridDim.y, ... of y; a column per thread.
__global__ void bias_act_kernel(float* y, const float* __restrict__ bias, int64_t n, int64_t m, int64_t ldy, bool gelu) {
  const int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= m) return;
  const float b = bias ? bias[col] : 0.0f;
  for (int64_t row = blockIdx.y; row < n; row += gridDim.y) {
    float* const p = y + row * ldy + col;
    const float v = *p + b;
    *p = gelu ? gelu_tanh(v) : v;
  }
}

}  // namespace

void linear_int8_rows(WFmt fmt, const WeightView& w, const float* x, const float* bias, float* y, int64_t n,
                      void* scratch, cudaStream_t stream) {
  const int64_t chunks = w.cols / 32, total = n * chunks;
  auto* xq = static_cast<int8_t*>(scratch);
  auto* xd = reinterpret_cast<float*>(xq + total * 32);
  auto* xs = reinterpret_cast<int*>(xd + total);
  quantize_x_kernel<<<unsigned((total + 127) / 128), 128, 0, stream>>>(x, xq, xd, xs, total);
  UNICORN_CUDA_LAUNCHED();
  const dim3 grid(unsigned((w.rows + kWRows - 1) / kWRows), unsigned((n + kXRows - 1) / kXRows));
  if (fmt == WFmt::Q4_0)
    matvec_rows_int8_kernel<WFmt::Q4_0><<<grid, kMatvec1Threads, 0, stream>>>(w, xq, xd, xs, bias, y, n);
  else
    matvec_rows_int8_kernel<WFmt::Q8_0><<<grid, kMatvec1Threads, 0, stream>>>(w, xq, xd, xs, bias, y, n);
  UNICORN_CUDA_LAUNCHED();
}

void gate_up_int8(WFmt fmt, const WeightView& gate, const WeightView& up, const float* x, float* out,
                  cudaStream_t stream) {
  const unsigned blocks = unsigned((gate.rows + kRowsPerBlock - 1) / kRowsPerBlock);
  if (fmt == WFmt::Q4_0)
    gate_up1_int8_kernel<WFmt::Q4_0><<<blocks, kMatvec1Threads, 0, stream>>>(gate, up, x, out);
  else
    gate_up1_int8_kernel<WFmt::Q8_0><<<blocks, kMatvec1Threads, 0, stream>>>(gate, up, x, out);
  UNICORN_CUDA_LAUNCHED();
}

void linear3_int8(WFmt fmt, const WeightView (&w)[3], const float* x, float* const (&y)[3], cudaStream_t stream) {
  const int64_t rows_per_block =
      fmt == WFmt::Q4_0 ? int8_rows_per_block<WFmt::Q4_0>() : int8_rows_per_block<WFmt::Q8_0>();
  Int8Products p;
  p.count = 3;
  for (int i = 0; i < 3; ++i) {
    p.w[i] = w[i];
    p.y[i] = y[i];
    p.first_block[i + 1] = p.first_block[i] + (w[i].rows + rows_per_block - 1) / rows_per_block;
  }
  if (fmt == WFmt::Q4_0)
    matvec1_int8_kernel<WFmt::Q4_0><<<unsigned(p.first_block[3]), kMatvec1Threads, 0, stream>>>(p, x);
  else
    matvec1_int8_kernel<WFmt::Q8_0><<<unsigned(p.first_block[3]), kMatvec1Threads, 0, stream>>>(p, x);
  UNICORN_CUDA_LAUNCHED();
}

int64_t linear_int8_rows_scratch(int64_t n, int64_t cols) { return n * (cols / 32) * (32 + 4 + 4); }

void weight_to_bf16(WFmt fmt, const WeightView& w, void* out, cudaStream_t stream, int64_t r0, int64_t r1) {
  if (r1 < 0) r1 = w.rows;
  const int64_t rows = r1 - r0;
  if (rows <= 0) return;
  auto* o = static_cast<__nv_bfloat16*>(out);
  with_format(fmt, [&](auto f) {
    constexpr WFmt F = decltype(f)::value;
    constexpr bool kPlain = F == WFmt::F32 || F == WFmt::F16 || F == WFmt::BF16;
    if (kPlain && w.cols % 32 != 0) {
      if constexpr (kPlain) {
        const int64_t total = rows * w.cols;
        weight_elems_to_bf16_kernel<F><<<unsigned((total + 255) / 256), 256, 0, stream>>>(w, r0, rows, o);
      }
    } else {
      const int64_t total = rows * (w.cols / 32) * 4;
      if (r0 == 0 && rows == w.rows)
        weight_chunks_to_bf16_kernel<F><<<unsigned((total + 255) / 256), 256, 0, stream>>>(w, o);
      else
        weight_row_chunks_to_bf16_kernel<F><<<unsigned((total + 255) / 256), 256, 0, stream>>>(w, r0, rows, o);
    }
  });
  UNICORN_CUDA_LAUNCHED();
}

void bias_act(float* y, const float* bias, int64_t n, int64_t m, int64_t ldy, bool gelu, cudaStream_t stream) {
  if (n * m == 0) return;
  const dim3 grid{unsigned((m + 255) / 256), unsigned(std::min<int64_t>(n, 65535))};
  bias_act_kernel<<<grid, 256, 0, stream>>>(y, bias, n, m, ldy, gelu);
  UNICORN_CUDA_LAUNCHED();
}

}  // namespace unicorn::cuda
