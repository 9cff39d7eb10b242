// Norms, RoPE, GELU, adds, row moves and the vision tower's reshapes on the GPU. Each matches
// the CPU backend's definition (ops/backend.h); reductions run in f32 like it does.
#include <algorithm>
#include <atomic>
#include <type_traits>

#include "backends/cuda/cuda_common.cuh"

namespace unicorn::cuda {

namespace {
// 1: no backend has said no yet, and one said yes; 0: not yet; -1: one said no.
std::atomic<int> g_dependent_launches{0};
}  // namespace

void allow_dependent_launches(bool allowed) {
  int seen = g_dependent_launches.load();
  while (seen != -1 && !g_dependent_launches.compare_exchange_weak(seen, allowed ? 1 : -1)) {
  }
}

bool dependent_launches() { return g_dependent_launches.load(std::memory_order_relaxed) == 1; }

namespace {

constexpr int kNormThreads = 256;

// Sum over the block (blockDim.x a multiple of 32, at most 1024).
__device__ float block_sum(float v) {
  __shared__ float partial[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  float s = lane < warps ? partial[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  return s;
}

__global__ void rms_norm_kernel(const float* __restrict__ x, const float* __restrict__ w, float eps, float* y,
                                int64_t d) {
  let_next_start();
  wait_for_inputs();
  const float* xr = x + int64_t(blockIdx.x) * d;
  float* yr = y + int64_t(blockIdx.x) * d;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) ss += xr[i] * xr[i];
  const float inv = rsqrtf(block_sum(ss) / float(d) + eps);
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) yr[i] = xr[i] * inv * (1.0f + w[i]);
}

// y: the sum of y_parts parts, part_stride apart.
__device__ __forceinline__ float part_sum(const float* y, int y_parts, int64_t part_stride) {
  float v = y[0];
  for (int p = 1; p < y_parts; ++p) v += y[p * part_stride];
  return v;
}

// One row in registers-and-cache: x's row is read twice and written once.
__global__ void residual_rms_norm_kernel(float* x, const float* __restrict__ y, const float* __restrict__ w_post,
                                         float eps, const float* __restrict__ w_next, float* next, int64_t d,
                                         int y_parts, int64_t part_stride) {
  let_next_start();
  wait_for_inputs();
  float* xr = x + int64_t(blockIdx.x) * d;
  const float* yr = y + int64_t(blockIdx.x) * d;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const float v = part_sum(yr + i, y_parts, part_stride);
    ss += v * v;
  }
  const float inv = rsqrtf(block_sum(ss) / float(d) + eps);
  float ss2 = 0.0f;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const float v = xr[i] + part_sum(yr + i, y_parts, part_stride) * inv * (1.0f + w_post[i]);
    xr[i] = v;
    ss2 += v * v;
  }
  if (!w_next) return;
  const float inv2 = rsqrtf(block_sum(ss2) / float(d) + eps);
  float* nr = next + int64_t(blockIdx.x) * d;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) nr[i] = xr[i] * inv2 * (1.0f + w_next[i]);
}

// Rows of up to kRowValues values held in registers (kPer a thread, blockDim.x threads):
// every load of the row is issued at once instead of one strided loop trip at a time, which
// is what a single-row norm waits on. At most 64 registers a thread (__launch_bounds__), so
// blocks of up to 1024 threads fit each quarter of the register file (16K registers for 8
// warps): without the bound the residual kernel took 86 and its 672-thread blocks (27B's 5376
// values) could not launch.
constexpr int kPer = 8, kRowValues = 1024 * kPer;

// The norm weights' loads go out with the row's, so a row waits on memory once, not once per
// reduction.
__global__ void __launch_bounds__(kRowValues / kPer)
    rms_norm_rows_kernel(const float* __restrict__ x, const float* __restrict__ w, float eps, float* y, int64_t d) {
  let_next_start();
  const float* xr = x + int64_t(blockIdx.x) * d;
  float v[kPer], wv[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = int(threadIdx.x + j * blockDim.x);  // d <= kRowValues
    wv[j] = i < d ? w[i] : 0.0f;
  }
  wait_for_inputs();
  float ss = 0.0f;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = int(threadIdx.x + j * blockDim.x);  // d <= kRowValues
    v[j] = i < d ? xr[i] : 0.0f;
    ss += v[j] * v[j];
  }
  const float inv = rsqrtf(block_sum(ss) / float(d) + eps);
  float* yr = y + int64_t(blockIdx.x) * d;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = int(threadIdx.x + j * blockDim.x);  // d <= kRowValues
    if (i < d) yr[i] = v[j] * inv * (1.0f + wv[j]);
  }
}

__global__ void __launch_bounds__(kRowValues / kPer)
    residual_rms_norm_rows_kernel(float* x, const float* __restrict__ y, const float* __restrict__ w_post, float eps,
                                  const float* __restrict__ w_next, float* next, int64_t d, int y_parts,
                                  int64_t part_stride) {
  float* xr = x + int64_t(blockIdx.x) * d;
  const float* yr = y + int64_t(blockIdx.x) * d;
  float xv[kPer], yv[kPer], wp[kPer], wn[kPer];
  let_next_start();
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = int(threadIdx.x + j * blockDim.x);  // d <= kRowValues
    wp[j] = i < d ? w_post[i] : 0.0f;
    wn[j] = i < d && w_next ? w_next[i] : 0.0f;
  }
  wait_for_inputs();
  float ss = 0.0f;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = int(threadIdx.x + j * blockDim.x);  // d <= kRowValues
    yv[j] = i < d ? yr[i] : 0.0f;
    xv[j] = i < d ? xr[i] : 0.0f;
  }
  for (int p = 1; p < y_parts; ++p) {  // the column parts of a product (matvec_stream's), in order
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int i = int(threadIdx.x + j * blockDim.x);  // d <= kRowValues
      if (i < d) yv[j] += yr[p * part_stride + i];
    }
  }
#pragma unroll
  for (int j = 0; j < kPer; ++j) ss += yv[j] * yv[j];
  const float inv = rsqrtf(block_sum(ss) / float(d) + eps);
  float ss2 = 0.0f;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = int(threadIdx.x + j * blockDim.x);  // d <= kRowValues
    if (i < d) {
      xv[j] += yv[j] * inv * (1.0f + wp[j]);
      xr[i] = xv[j];
      ss2 += xv[j] * xv[j];
    }
  }
  if (!w_next) return;
  const float inv2 = rsqrtf(block_sum(ss2) / float(d) + eps);
  float* nr = next + int64_t(blockIdx.x) * d;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = int(threadIdx.x + j * blockDim.x);  // d <= kRowValues
    if (i < d) nr[i] = xv[j] * inv2 * (1.0f + wn[j]);
  }
}

// This thread's kPer values of a row of d (zeros past d), all loads issued at once.
__device__ __forceinline__ void row_values(const float* __restrict__ row, int64_t d, float (&v)[kPer]) {
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = int(threadIdx.x + j * blockDim.x);  // d <= kRowValues
    v[j] = i < d ? row[i] : 0.0f;
  }
}

// LayerNorm with the row, its weight and bias in registers: one read of x (the vision tower's
// 1152-wide rows), mean and variance from the registers.
template <class Out>
__global__ void __launch_bounds__(kRowValues / kPer)
    layer_norm_rows_kernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                           float eps, Out* y, int64_t d) {
  float v[kPer], wv[kPer], bv[kPer];
  row_values(x + int64_t(blockIdx.x) * d, d, v);
  row_values(w, d, wv);
  row_values(b, d, bv);
  float s = 0.0f;
#pragma unroll
  for (int j = 0; j < kPer; ++j) s += v[j];
  const float mean = block_sum(s) / float(d);
  float var = 0.0f;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = int(threadIdx.x + j * blockDim.x);
    const float c = v[j] - mean;
    if (i < d) var += c * c;
  }
  const float inv = rsqrtf(block_sum(var) / float(d) + eps);
  Out* yr = y + int64_t(blockIdx.x) * d;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int i = int(threadIdx.x + j * blockDim.x);
    if (i < d) store_as(yr + i, (v[j] - mean) * inv * wv[j] + bv[j]);  // f32, or bf16 for products
  }
}

// LayerNorm of rows up to 32 V float4 wide (the vision tower's 1152), a warp a row: 16-byte
// loads, the sums in shuffles (no block barrier), 4 values a store; 8 rows a block.
constexpr int kWarpRows = 8;
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ void store4(__nv_bfloat16* p, float4 v) {
  const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
  *reinterpret_cast<uint2*>(p) = make_uint2(*reinterpret_cast<const uint32_t*>(&lo), *reinterpret_cast<const uint32_t*>(&hi));
}
template <class Out, int V>
__global__ void __launch_bounds__(32 * kWarpRows)
    layer_norm_warp_kernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                           float eps, Out* y, int64_t n, int64_t d) {
  const int lane = int(threadIdx.x) & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarpRows + (threadIdx.x >> 5);
  if (row >= n) return;
  const int d4 = int(d / 4);
  const float4* xr = reinterpret_cast<const float4*>(x + row * d);
  float4 v[V];
  float s = 0.0f;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = lane + 32 * j;
    v[j] = i < d4 ? xr[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    s += (v[j].x + v[j].y) + (v[j].z + v[j].w);
  }
  const float mean = warp_sum(s) / float(d);
  float var = 0.0f;
#pragma unroll
  for (int j = 0; j < V; ++j)
    if (lane + 32 * j < d4) {
      const float a = v[j].x - mean, c = v[j].y - mean, e = v[j].z - mean, f = v[j].w - mean;
      var += (a * a + c * c) + (e * e + f * f);
    }
  const float inv = rsqrtf(warp_sum(var) / float(d) + eps);
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = lane + 32 * j;
    if (i >= d4) continue;
    const float4 wv = reinterpret_cast<const float4*>(w)[i], bv = reinterpret_cast<const float4*>(b)[i];
    store4(y + row * d + 4 * i, make_float4((v[j].x - mean) * inv * wv.x + bv.x, (v[j].y - mean) * inv * wv.y + bv.y,
                                            (v[j].z - mean) * inv * wv.z + bv.z, (v[j].w - mean) * inv * wv.w + bv.w));
  }
}

// Threads for a row of d values in registers: whole warps, kPer values each.
int row_threads(int64_t d) { return int(std::max<int64_t>(32, ((d + kPer - 1) / kPer + 31) / 32 * 32)); }

template <class Out>
__global__ void layer_norm_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                  const float* __restrict__ b, float eps, Out* y, int64_t d) {
  const float* xr = x + int64_t(blockIdx.x) * d;
  Out* yr = y + int64_t(blockIdx.x) * d;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
  const float mean = block_sum(s) / float(d);
  float v = 0.0f;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) v += (xr[i] - mean) * (xr[i] - mean);
  const float inv = rsqrtf(block_sum(v) / float(d) + eps);
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) store_as(yr + i, (xr[i] - mean) * inv * w[i] + b[i]);
}

__global__ void rope_kernel(float* x, const int32_t* __restrict__ positions, const float* __restrict__ inv_freq,
                            int64_t n, int64_t width, int64_t head_dim) {
  const int64_t half = head_dim / 2, heads = width / head_dim;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // (row, head, pair)
  if (i >= n * heads * half) return;
  const int64_t p = i % half, h = (i / half) % heads, r = i / (half * heads);
  const float angle = float(positions[r]) * inv_freq[p];  // f32 product, as HF
  float s, c;
  sincosf(angle, &s, &c);
  float* v = x + r * width + h * head_dim;
  const float a = v[p], b = v[p + half];
  v[p] = a * c - b * s;
  v[p + half] = b * c + a * s;
}

// One matrix of heads for rms_norm_rope_kernel: x [n, width] and its norm weight [head_dim].
struct NormRopePart {
  float* x = nullptr;
  const float* w = nullptr;
  int64_t width = 0;
};

// One value of a cache row, as the cache's type.
__device__ __forceinline__ void store_value(void* row, int64_t i, float v, bool f16) {
  if (f16)
    store_as(static_cast<__half*>(row) + i, v);
  else
    store_as(static_cast<float*>(row) + i, v);
}

// Block (row, head) of part a (the first blocks_a blocks), then of part b (q and k in one
// launch); thread p holds the pair (p, p + half) through the norm and the rotation. With
// store.k_cache, part b's rows (k) and v's go into the KV cache too.
__global__ void rms_norm_rope_kernel(NormRopePart pa, NormRopePart pb, int64_t blocks_a, float eps,
                                     const int32_t* __restrict__ positions, const float* __restrict__ inv_freq,
                                     int64_t head_dim, KvStore store) {
  const bool second = int64_t(blockIdx.x) >= blocks_a;
  const int64_t block = second ? int64_t(blockIdx.x) - blocks_a : int64_t(blockIdx.x);
  const float* __restrict__ w = second ? pb.w : pa.w;
  const int64_t width = second ? pb.width : pa.width;
  const int64_t heads = width / head_dim, half = head_dim / 2;
  const int64_t r = block / heads, h = block % heads;
  float* v = (second ? pb.x : pa.x) + r * width + h * head_dim;
  const int64_t p = threadIdx.x;
  const bool active = p < half;
  let_next_start();
  const float w0 = active ? w[p] : 0.0f, w1 = active ? w[p + half] : 0.0f, freq = active ? inv_freq[p] : 0.0f;
  wait_for_inputs();
  const float a = active ? v[p] : 0.0f, b = active ? v[p + half] : 0.0f;
  const float inv = rsqrtf(block_sum(a * a + b * b) / float(head_dim) + eps);
  if (!active) return;
  const float an = a * inv * (1.0f + w0), bn = b * inv * (1.0f + w1);
  const float angle = float(positions[r]) * freq;  // f32 product, as HF
  float s, c;
  sincosf(angle, &s, &c);
  v[p] = an * c - bn * s;
  v[p + half] = bn * c + an * s;
  if (second && store.k_cache) {  // k's head and v's into the caches' row
    const int64_t at = int64_t(store.slots[r]) * width + h * head_dim, from = r * width + h * head_dim;
    store_value(store.k_cache, at + p, an * c - bn * s, store.f16);
    store_value(store.k_cache, at + p + half, bn * c + an * s, store.f16);
    store_value(store.v_cache, at + p, store.v[from + p], store.f16);
    store_value(store.v_cache, at + p + half, store.v[from + p + half], store.f16);
  }
}

__global__ void gelu_tanh_mul_kernel(const float* gate, const float* up, float* out, int64_t count) {
  let_next_start();
  wait_for_inputs();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float r = gelu_tanh(gate[i]);
  out[i] = up ? r * up[i] : r;
}

__global__ void add_kernel(const float* a, const float* b, float* out, int64_t count) {
  let_next_start();
  wait_for_inputs();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = a[i] + b[i];
}

// One 4-byte word per thread when rows allow it, else one byte.
template <class T, bool kScatter>
__global__ void move_rows_kernel(const T* __restrict__ src, const int32_t* __restrict__ rows, T* __restrict__ dst,
                                 int64_t n, int64_t row_elems) {
  let_next_start();
  wait_for_inputs();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * row_elems) return;
  const int64_t r = i / row_elems, e = i % row_elems;
  if constexpr (kScatter)
    dst[int64_t(rows[r]) * row_elems + e] = src[i];
  else
    dst[i] = src[int64_t(rows[r]) * row_elems + e];
}

template <bool kScatter>
void move_rows(const void* src, const int32_t* rows, void* dst, int64_t n, int64_t row_bytes, cudaStream_t stream) {
  if (n == 0) return;
  if (row_bytes % 4 == 0) {
    const int64_t e = row_bytes / 4, total = n * e;
    launch_dependent(move_rows_kernel<uint32_t, kScatter>, unsigned((total + 255) / 256), 256, 0, stream,
                     static_cast<const uint32_t*>(src), rows, static_cast<uint32_t*>(dst), n, e);
  } else {
    const int64_t total = n * row_bytes;
    launch_dependent(move_rows_kernel<uint8_t, kScatter>, unsigned((total + 255) / 256), 256, 0, stream,
                     static_cast<const uint8_t*>(src), rows, static_cast<uint8_t*>(dst), n, row_bytes);
  }
}

// Value blockIdx.x * blockDim.x + threadIdx.x of job j's rows: dst[rows[r]][e] = src[r][e]
// (kToF16: rounded to half, into a half-precision KV cache).
template <bool kToF16>
__device__ __forceinline__ void scatter_value(const RowScatter& j, int64_t width) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= j.n * width) return;
  const int64_t at = int64_t(j.rows[i / width]) * width + i % width;
  if constexpr (kToF16)
    static_cast<__half*>(j.dst)[at] = __float2half_rn(j.src[i]);
  else
    static_cast<float*>(j.dst)[at] = j.src[i];
}

// Rows of f32 into a half-precision KV cache.
__global__ void scatter_rows_to_f16_kernel(RowScatter j, int64_t width) {
  let_next_start();
  wait_for_inputs();
  scatter_value<true>(j, width);
}

template <bool kToF16>
__global__ void scatter_rows_multi_kernel(const RowScatter* __restrict__ jobs, int64_t width) {
  let_next_start();
  wait_for_inputs();
  scatter_value<kToF16>(jobs[blockIdx.y], width);
}

template <bool kToF16>
__global__ void scatter_rows_pair_kernel(RowScatter a, RowScatter b, int64_t width) {
  let_next_start();
  wait_for_inputs();
  scatter_value<kToF16>(blockIdx.y == 0 ? a : b, width);
}

// f32 <-> T (__half or __nv_bfloat16), rounded to nearest on the way down.
template <class T>
__device__ __forceinline__ uint32_t narrow_pair(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 p = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&p);
  } else {
    const __nv_bfloat162 p = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&p);
  }
}

template <class T>
__global__ void widen_kernel(const T* __restrict__ x, float* __restrict__ out, int64_t count) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = float(x[i]);
}

template <class T>
__global__ void narrow_kernel(const float* __restrict__ x, T* __restrict__ out, int64_t count) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = T(x[i]);
}

// Eight values a thread (two 16-byte loads, one 16-byte store).
template <class T>
__global__ void narrow_x8_kernel(const float4* __restrict__ x, uint4* __restrict__ out, int64_t groups) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= groups) return;
  const float4 a = x[2 * i], b = x[2 * i + 1];
  out[i] = make_uint4(narrow_pair<T>(a.x, a.y), narrow_pair<T>(a.z, a.w), narrow_pair<T>(b.x, b.y),
                      narrow_pair<T>(b.z, b.w));
}

// image [3, S, S] -> out [(S/p)^2, 3 * p * p], (channel, y, x) order within a patch.
__global__ void patchify_kernel(const float* __restrict__ image, int64_t size, int64_t patch, float* __restrict__ out) {
  const int64_t side = size / patch, width = 3 * patch * patch;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= side * side * width) return;
  const int64_t pi = i / width, e = i % width;
  const int64_t c = e / (patch * patch), yy = (e / patch) % patch, xx = e % patch;
  const int64_t py = pi / side, px = pi % side;
  out[i] = image[(c * size + py * patch + yy) * size + px * patch + xx];
}

__global__ void avg_pool_kernel(const float* __restrict__ x, int64_t side, int64_t kernel, int64_t channels,
                                float* __restrict__ out) {
  const int64_t o_side = side / kernel;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= o_side * o_side * channels) return;
  const int64_t c = i % channels, o = i / channels, oy = o / o_side, ox = o % o_side;
  float s = 0.0f;
  for (int64_t dy = 0; dy < kernel; ++dy)
    for (int64_t dx = 0; dx < kernel; ++dx) s += x[((oy * kernel + dy) * side + ox * kernel + dx) * channels + c];
  out[i] = s / float(kernel * kernel);
}

unsigned blocks_for(int64_t count, int threads) { return unsigned((count + threads - 1) / threads); }

template <class T>
void widen(const void* x, float* out, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  widen_kernel<T><<<blocks_for(count, 256), 256, 0, stream>>>(static_cast<const T*>(x), out, count);
  UNICORN_CUDA_LAUNCHED();
}

// Eight values a thread where x and out allow it, else one.
template <class T>
void narrow(const float* x, void* out, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  if (count % 8 == 0 && (reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(out)) % 16 == 0)
    narrow_x8_kernel<T><<<blocks_for(count / 8, 256), 256, 0, stream>>>(reinterpret_cast<const float4*>(x),
                                                                        static_cast<uint4*>(out), count / 8);
  else
    narrow_kernel<T><<<blocks_for(count, 256), 256, 0, stream>>>(x, static_cast<T*>(out), count);
  UNICORN_CUDA_LAUNCHED();
}

}  // namespace

void rms_norm(const float* x, const float* w, float eps, float* y, int64_t n, int64_t d, cudaStream_t stream) {
  if (n == 0) return;
  if (d <= kRowValues)
    launch_dependent(rms_norm_rows_kernel, unsigned(n), row_threads(d), 0, stream, x, w, eps, y, d);
  else
    launch_dependent(rms_norm_kernel, unsigned(n), kNormThreads, 0, stream, x, w, eps, y, d);
}

void residual_rms_norm(float* x, const float* y, const float* w_post, float eps, const float* w_next, float* next,
                       int64_t n, int64_t d, cudaStream_t stream, int y_parts) {
  if (n == 0) return;
  if (d <= kRowValues)
    launch_dependent(residual_rms_norm_rows_kernel, unsigned(n), row_threads(d), 0, stream, x, y, w_post, eps, w_next,
                     next, d, y_parts, n * d);
  else
    launch_dependent(residual_rms_norm_kernel, unsigned(n), kNormThreads, 0, stream, x, y, w_post, eps, w_next, next,
                     d, y_parts, n * d);
}

void layer_norm(const float* x, const float* w, const float* b, float eps, void* y, bool y_bf16, int64_t n, int64_t d,
                cudaStream_t stream) {
  if (n == 0) return;
  const bool aligned = ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(w) |
                         reinterpret_cast<uintptr_t>(b) | reinterpret_cast<uintptr_t>(y)) & 15) == 0;
  auto run = [&](auto* out) {
    using Out = std::remove_pointer_t<decltype(out)>;
    const unsigned warp_blocks = unsigned((n + kWarpRows - 1) / kWarpRows);
    if (aligned && d % 4 == 0 && d <= 32 * 4 * 4)
      layer_norm_warp_kernel<Out, 4><<<warp_blocks, 32 * kWarpRows, 0, stream>>>(x, w, b, eps, out, n, d);
    else if (aligned && d % 4 == 0 && d <= 32 * 4 * 12)
      layer_norm_warp_kernel<Out, 12><<<warp_blocks, 32 * kWarpRows, 0, stream>>>(x, w, b, eps, out, n, d);
    else if (d <= kRowValues)
      layer_norm_rows_kernel<<<unsigned(n), row_threads(d), 0, stream>>>(x, w, b, eps, out, d);
    else
      layer_norm_kernel<<<unsigned(n), kNormThreads, 0, stream>>>(x, w, b, eps, out, d);
  };
  if (y_bf16)
    run(static_cast<__nv_bfloat16*>(y));
  else
    run(static_cast<float*>(y));
  UNICORN_CUDA_LAUNCHED();
}

void rope(float* x, const int32_t* positions, const float* inv_freq, int64_t n, int64_t width, int64_t head_dim,
          cudaStream_t stream) {
  const int64_t total = n * (width / head_dim) * (head_dim / 2);
  if (total == 0) return;
  rope_kernel<<<blocks_for(total, 256), 256, 0, stream>>>(x, positions, inv_freq, n, width, head_dim);
  UNICORN_CUDA_LAUNCHED();
}

void qk_norm_rope(float* q, const float* wq, int64_t q_width, float* k, const float* wk, int64_t k_width, float eps,
                  const int32_t* positions, const float* inv_freq, int64_t n, int64_t head_dim, cudaStream_t stream,
                  const KvStore& store) {
  const int64_t blocks_q = n * (q_width / head_dim), blocks = blocks_q + n * (k_width / head_dim);
  if (blocks == 0) return;
  const int threads = int(std::max<int64_t>(32, (head_dim / 2 + 31) / 32 * 32));
  launch_dependent(rms_norm_rope_kernel, unsigned(blocks), threads, 0, stream, NormRopePart{q, wq, q_width},
                   NormRopePart{k, wk, k_width}, blocks_q, eps, positions, inv_freq, head_dim, store);
}

void rms_norm_rope(float* x, const float* w, float eps, const int32_t* positions, const float* inv_freq, int64_t n,
                   int64_t width, int64_t head_dim, cudaStream_t stream) {
  qk_norm_rope(x, w, width, nullptr, nullptr, 0, eps, positions, inv_freq, n, head_dim, stream);
}

void gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  launch_dependent(gelu_tanh_mul_kernel, blocks_for(count, 256), 256, 0, stream, gate, up, out, count);
}

void add(const float* a, const float* b, float* out, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  launch_dependent(add_kernel, blocks_for(count, 256), 256, 0, stream, a, b, out, count);
}

void scatter_rows(const void* src, const int32_t* rows, void* dst, int64_t n, int64_t row_bytes, cudaStream_t stream) {
  move_rows<true>(src, rows, dst, n, row_bytes, stream);
}

void gather_rows(const void* src, const int32_t* rows, void* dst, int64_t n, int64_t row_bytes, cudaStream_t stream) {
  move_rows<false>(src, rows, dst, n, row_bytes, stream);
}

void scatter_rows_to_f16(const float* src, const int32_t* rows, void* dst, int64_t n, int64_t width,
                         cudaStream_t stream) {
  if (n * width == 0) return;
  launch_dependent(scatter_rows_to_f16_kernel, blocks_for(n * width, 256), 256, 0, stream,
                   RowScatter{src, rows, dst, n}, width);
}

void scatter_rows_multi(const RowScatter* jobs, int64_t count, int64_t max_n, int64_t width, bool to_f16,
                        cudaStream_t stream) {
  if (count == 0 || max_n * width == 0) return;
  const dim3 grid(blocks_for(max_n * width, 256), unsigned(count));
  if (to_f16)
    launch_dependent(scatter_rows_multi_kernel<true>, grid, 256, 0, stream, jobs, width);
  else
    launch_dependent(scatter_rows_multi_kernel<false>, grid, 256, 0, stream, jobs, width);
}

void scatter_rows_pair(const RowScatter& a, const RowScatter& b, int64_t width, bool to_f16, cudaStream_t stream) {
  const int64_t n = std::max(a.n, b.n);
  if (n * width == 0) return;
  const dim3 grid(blocks_for(n * width, 256), 2);
  if (to_f16)
    launch_dependent(scatter_rows_pair_kernel<true>, grid, 256, 0, stream, a, b, width);
  else
    launch_dependent(scatter_rows_pair_kernel<false>, grid, 256, 0, stream, a, b, width);
}

void f16_to_f32(const void* x, float* out, int64_t count, cudaStream_t stream) { widen<__half>(x, out, count, stream); }
void bf16_to_f32(const void* x, float* out, int64_t count, cudaStream_t stream) {
  widen<__nv_bfloat16>(x, out, count, stream);
}
void f32_to_f16_device(const float* x, void* out, int64_t count, cudaStream_t stream) {
  narrow<__half>(x, out, count, stream);
}
void f32_to_bf16(const float* x, void* out, int64_t count, cudaStream_t stream) {
  narrow<__nv_bfloat16>(x, out, count, stream);
}

void patchify(const float* image, int64_t size, int64_t patch, float* out, cudaStream_t stream) {
  const int64_t total = (size / patch) * (size / patch) * 3 * patch * patch;
  patchify_kernel<<<blocks_for(total, 256), 256, 0, stream>>>(image, size, patch, out);
  UNICORN_CUDA_LAUNCHED();
}

void avg_pool_grid(const float* x, int64_t side, int64_t kernel, int64_t channels, float* out, cudaStream_t stream) {
  const int64_t total = (side / kernel) * (side / kernel) * channels;
  avg_pool_kernel<<<blocks_for(total, 256), 256, 0, stream>>>(x, side, kernel, channels, out);
  UNICORN_CUDA_LAUNCHED();
}

namespace {
// (the kernel trace's marker: cuda_kernels.h)
__global__ void trace_tick_kernel() {
  let_next_start();
  wait_for_inputs();
}
}  // namespace
void trace_tick(cudaStream_t stream) {
  if (trace_on()) launch_dependent(trace_tick_kernel, 1, 32, 0, stream);
}

}  // namespace unicorn::cuda
