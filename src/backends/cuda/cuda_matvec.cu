// One row of x against Q4_0 / Q8_0 weights (decode at batch 1), streaming the weights at the
// memory's rate. Each warp takes a run of whole rows and walks them in steps of U chunks a lane
// (lane l reads chunks l, l + 32, ...: a warp's loads are contiguous), the next step's loads in
// flight while the current one is multiplied, across row boundaries too. The grid is two blocks
// of 8 warps a multiprocessor with the rows spread evenly over its warps, so every warp has
// the same work and no block waits for a late one. Each block first quantizes x to int8 into
// shared memory (per 32 values: scale amax / 127 and the codes' sum, as linear's int8_x), with
// its first loads already in flight; products in dp4a, one float multiply per chunk and row.
// The warp's sum of a row meets in shuffles; gate and up rows go together (GELU(g) u out).
// With a residual step before the product (R), x is the normed sum that step makes: every block
// computes it from the residual stream and the last product's output (two block sums) in
// shared memory before quantizing it, and block 0 writes the sum; no kernel of one block
// stands between two products.
#include <algorithm>
#include <type_traits>

#include "backends/cuda/cuda_common.cuh"

namespace unicorn::cuda {

namespace {

constexpr int kWarps = 8, kThreads = 32 * kWarps, kBlocksPerSm = 2;

// Up to three matrices of one width as one range of rows (q, k and v), or (M = 2 below) gate
// and up whose rows go together.
struct StreamJob {
  WeightView w[3];
  const float* bias[3] = {nullptr, nullptr, nullptr};
  float* y[3] = {nullptr, nullptr, nullptr};
  int64_t end[3] = {0, 0, 0};  // each matrix's last row + 1 in the range
  int64_t rows = 0, rows_per_warp = 0, chunks = 0;
  int steps_per_row = 0;  // ceil(chunks / (32 U))
  ResidualNorm res;       // the residual step before the product (kernels with R)
};

// Row `row` of the range: which matrix, and its row there.
struct PartRow {
  int part;
  int64_t row;
};
__device__ __forceinline__ PartRow part_row(const StreamJob& j, int64_t row) {
  const int part = row >= j.end[0] ? (row >= j.end[1] ? 2 : 1) : 0;
  return {part, row - (part > 0 ? j.end[part - 1] : 0)};
}

template <WFmt F>
constexpr int kVecs = F == WFmt::Q4_0 ? 1 : 2;  // 16-byte code vectors a chunk

// One step's weights: M matrices' (1, or gate and up) U chunks of a lane.
template <WFmt F, int U, int M>
struct Step {
  uint4 q[M][U][kVecs<F>];
  __half d[M][U];
};

// Where a warp is: the row (of the range) and the step within it.
struct Cursor {
  int64_t row;
  int step;
  __device__ void next(int steps_per_row) {
    if (++step == steps_per_row) step = 0, ++row;
  }
};

template <WFmt F, int U, int M>
__device__ __forceinline__ void load_step(const StreamJob& j, const Cursor& at, int lane, Step<F, U, M>& s) {
  const PartRow at_row = M == 1 ? part_row(j, at.row) : PartRow{0, at.row};
  const int64_t row = at_row.row;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const WeightView& w = j.w[at_row.part + m];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t c = (int64_t(at.step) * U + u) * 32 + lane;
      if (c < j.chunks) {
        const int64_t b = row * j.chunks + c;
#pragma unroll
        for (int v = 0; v < kVecs<F>; ++v) s.q[m][u][v] = __ldg(reinterpret_cast<const uint4*>(w.p0) + b * kVecs<F> + v);
        s.d[m][u] = reinterpret_cast<const __half*>(w.p1)[b];
      } else {
#pragma unroll
        for (int v = 0; v < kVecs<F>; ++v) s.q[m][u][v] = make_uint4(0, 0, 0, 0);
        s.d[m][u] = __float2half_rn(0.0f);
      }
    }
  }
}

// Where the residual step's values start in shared memory: after x's codes, scales and sums
// (40 bytes a chunk), on 16 bytes.
__host__ __device__ constexpr size_t residual_offset(int64_t chunks) { return (size_t(chunks) * 40 + 15) / 16 * 16; }

// The residual step of ResidualNorm into `h` (chunks * 32 values in shared memory, beside y's
// and the two norm weights' copies), as residual_rms_norm then rms_norm: block 0 writes the sum.
// Each thread keeps to its own float4s until the last pass, so only the block sums synchronize.
__device__ __forceinline__ void residual_norm_into(const ResidualNorm& r, int64_t chunks, float* h) {
  const int64_t d = chunks * 32, d4 = chunks * 8;
  float4* const h4 = reinterpret_cast<float4*>(h);  // d values each: h, y, w_post, w_next
  float4* const y4 = h4 + d4;
  float4* const wp4 = y4 + d4;
  float4* const wn4 = wp4 + d4;
  for (int64_t i = threadIdx.x; i < d4; i += kThreads) {  // weights: not written by the kernels before
    wp4[i] = __ldg(reinterpret_cast<const float4*>(r.w_post) + i);
    wn4[i] = __ldg(reinterpret_cast<const float4*>(r.w_next) + i);
  }
  wait_for_inputs();
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < d4; i += kThreads) {
    const float4 x = reinterpret_cast<const float4*>(r.x)[i], y = reinterpret_cast<const float4*>(r.y)[i];
    h4[i] = x;
    y4[i] = y;
    ss += y.x * y.x + y.y * y.y + y.z * y.z + y.w * y.w;
  }
  const float inv = rsqrtf(block_sum(ss) / float(d) + r.eps);
  float ss2 = 0.0f;
  for (int64_t i = threadIdx.x; i < d4; i += kThreads) {
    const float4 x = h4[i], y = y4[i], w = wp4[i];
    const float4 v = make_float4(x.x + y.x * inv * (1.0f + w.x), x.y + y.y * inv * (1.0f + w.y),
                                 x.z + y.z * inv * (1.0f + w.z), x.w + y.w * inv * (1.0f + w.w));
    h4[i] = v;
    if (blockIdx.x == 0) reinterpret_cast<float4*>(r.sum)[i] = v;
    ss2 += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  const float inv2 = rsqrtf(block_sum(ss2) / float(d) + r.eps);
  for (int64_t i = threadIdx.x; i < d4; i += kThreads) {
    const float4 v = h4[i], w = wn4[i];
    h4[i] = make_float4(v.x * inv2 * (1.0f + w.x), v.y * inv2 * (1.0f + w.y), v.z * inv2 * (1.0f + w.z),
                        v.w * inv2 * (1.0f + w.w));
  }
  __syncthreads();  // the chunks are quantized by other threads
}

template <WFmt F, int U, int M, bool R>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm) matvec_stream_kernel(StreamJob j, const float* __restrict__ x) {
  extern __shared__ __align__(16) unsigned char smem[];
  uint4* const xlo = reinterpret_cast<uint4*>(smem);  // codes of values 0-15 of each chunk
  uint4* const xhi = xlo + j.chunks;                  // values 16-31
  float2* const xds = reinterpret_cast<float2*>(xhi + j.chunks);  // scale, sum of codes (as int bits)
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int64_t first = (int64_t(blockIdx.x) * kWarps + warp) * j.rows_per_warp;
  const int64_t last = min(first + j.rows_per_warp, j.rows);
  const int64_t steps = last > first ? (last - first) * j.steps_per_row : 0;
  let_next_start();

  // Two steps in flight from the start (over the wait for x and its quantization below too).
  Step<F, U, M> a, b;
  Cursor load_at{first, 0}, use_at{first, 0};
  if (steps > 0) {
    load_step<F, U, M>(j, load_at, lane, a);
    load_at.next(j.steps_per_row);
  }
  if (steps > 1) {
    load_step<F, U, M>(j, load_at, lane, b);
    load_at.next(j.steps_per_row);
  }
  if constexpr (R) {
    float* const h = reinterpret_cast<float*>(smem + residual_offset(j.chunks));
    residual_norm_into(j.res, j.chunks, h);
    x = h;
  } else {
    wait_for_inputs();
  }
  for (int64_t c = threadIdx.x; c < j.chunks; c += kThreads) {
    int xq[8], sum;
    float d;
    quantize_chunk(x + c * 32, xq, d, sum);
    xlo[c] = make_uint4(uint32_t(xq[0]), uint32_t(xq[1]), uint32_t(xq[2]), uint32_t(xq[3]));
    xhi[c] = make_uint4(uint32_t(xq[4]), uint32_t(xq[5]), uint32_t(xq[6]), uint32_t(xq[7]));
    xds[c] = make_float2(d, __int_as_float(sum));
  }
  __syncthreads();

  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  auto use = [&](const Step<F, U, M>& s) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      // Past the row's end the weights are zeros with scale 0: x's last chunk stands in, and
      // no branch keeps the U chunks' dot products from interleaving.
      const int64_t c = min((int64_t(use_at.step) * U + u) * 32 + lane, j.chunks - 1);
      const uint4 lo = xlo[c], hi = xhi[c];
      const float2 ds = xds[c];
      const int xq[8] = {int(lo.x), int(lo.y), int(lo.z), int(lo.w), int(hi.x), int(hi.y), int(hi.z), int(hi.w)};
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint32_t* words = reinterpret_cast<const uint32_t*>(s.q[m][u]);
        acc[m] += __half2float(s.d[m][u]) * ds.x * float(dot_chunk<F>(words, xq, __float_as_int(ds.y)));
      }
    }
    if (use_at.step + 1 == j.steps_per_row) {  // the row is done: the warp's sums
#pragma unroll
      for (int m = 0; m < M; ++m) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
      }
      if (lane == 0) {
        if constexpr (M == 2) {
          j.y[0][use_at.row] = gelu_tanh(acc[0]) * acc[1];
        } else {
          const PartRow at_row = part_row(j, use_at.row);
          const float* bias = j.bias[at_row.part];
          j.y[at_row.part][at_row.row] = acc[0] + (bias ? bias[at_row.row] : 0.0f);
        }
      }
#pragma unroll
      for (int m = 0; m < M; ++m) acc[m] = 0.0f;
    }
    use_at.next(j.steps_per_row);
  };
  // Two step buffers in turn: one multiplied while the other's loads are in flight, then
  // loaded with the step after the other's.
  for (int64_t s = 0; s < steps; s += 2) {
    use(a);
    if (s + 2 < steps) {
      load_step<F, U, M>(j, load_at, lane, a);
      load_at.next(j.steps_per_row);
    }
    if (s + 1 >= steps) break;
    use(b);
    if (s + 3 < steps) {
      load_step<F, U, M>(j, load_at, lane, b);
      load_at.next(j.steps_per_row);
    }
  }
}

// The U (chunks a lane a step) of Us that wastes the fewest lane slots on a row of `chunks`
// (ties: the larger, fewer steps).
template <int... Us>
int pick_u(int64_t chunks) {
  int best = 0;
  int64_t best_slots = 0;
  for (int u : {Us...}) {
    const int64_t slots = (chunks + 32 * u - 1) / (32 * u) * u;
    if (best == 0 || slots < best_slots || (slots == best_slots && u > best)) best = u, best_slots = slots;
  }
  return best;
}

// x's codes, scales and sums in shared memory: 40 bytes a chunk, within the default 48 KiB;
// with the residual step (R) also the sum, y and the two norm weights: 552 bytes a chunk (93 KB
// for 27B's 5376 values: two blocks still fit a multiprocessor), which the kernel must be
// allowed (false where the GPU cannot give it).
template <WFmt F, int M, int... Us>
bool launch(StreamJob& j, const float* x, int multiprocessors, cudaStream_t stream) {
  const bool r = j.res.x != nullptr;
  const size_t smem = r ? residual_offset(j.chunks) + size_t(j.chunks) * 4 * 32 * 4 : size_t(j.chunks) * 40;
  if (smem > (r ? 200 : 48) * 1024) return false;
  if (j.rows == 0) return true;
  const int u = pick_u<Us...>(j.chunks);
  j.steps_per_row = int((j.chunks + 32 * u - 1) / (32 * u));
  const int64_t warps = int64_t(multiprocessors) * kBlocksPerSm * kWarps;
  j.rows_per_warp = (j.rows + warps - 1) / warps;
  const unsigned blocks = unsigned((j.rows + kWarps * j.rows_per_warp - 1) / (kWarps * j.rows_per_warp));
  bool launched = false;
  auto go = [&](auto uc) {
    constexpr int U = decltype(uc)::value;
    if (u != U) return;
    if (r) {
      const auto kernel = matvec_stream_kernel<F, U, M, true>;
      if (smem > 48 * 1024 &&
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)) != cudaSuccess) {
        cudaGetLastError();
        return;
      }
      launch_dependent(kernel, blocks, kThreads, smem, stream, j, x);
    } else {
      launch_dependent(matvec_stream_kernel<F, U, M, false>, blocks, kThreads, smem, stream, j, x);
    }
    launched = true;
  };
  (go(std::integral_constant<int, Us>()), ...);
  return launched;
}

}  // namespace

bool matvec_stream(WFmt fmt, int parts, const WeightView* w, const float* const* bias, float* const* y, const float* x,
                   int multiprocessors, cudaStream_t stream, const ResidualNorm* res) {
  if ((fmt != WFmt::Q4_0 && fmt != WFmt::Q8_0) || parts < 1 || parts > 3) return false;
  StreamJob j;
  if (res) j.res = *res;
  j.chunks = w[0].cols / 32;
  for (int p = 0; p < parts; ++p) {
    if (w[p].cols != w[0].cols) return false;
    j.w[p] = w[p];
    j.bias[p] = bias ? bias[p] : nullptr;
    j.y[p] = y[p];
    j.rows += w[p].rows;
    j.end[p] = j.rows;
  }
  for (int p = parts; p < 3; ++p) j.end[p] = j.rows;
  // Q4_0: 4-8 chunks (16 bytes each) a lane a step; Q8_0 (32 bytes): 2-4.
  return fmt == WFmt::Q4_0 ? launch<WFmt::Q4_0, 1, 4, 6, 7, 8>(j, x, multiprocessors, stream)
                           : launch<WFmt::Q8_0, 1, 2, 3, 4>(j, x, multiprocessors, stream);
}

bool gate_up_stream(WFmt fmt, const WeightView& gate, const WeightView& up, const float* x, float* out,
                    int multiprocessors, cudaStream_t stream, const ResidualNorm* res) {
  if ((fmt != WFmt::Q4_0 && fmt != WFmt::Q8_0) || gate.rows != up.rows || gate.cols != up.cols) return false;
  StreamJob j;
  if (res) j.res = *res;
  j.w[0] = gate;
  j.w[1] = up;
  j.y[0] = out;
  j.rows = gate.rows;
  j.end[0] = j.end[1] = j.end[2] = j.rows;
  j.chunks = gate.cols / 32;
  return fmt == WFmt::Q4_0 ? launch<WFmt::Q4_0, 2, 3, 4>(j, x, multiprocessors, stream)
                           : launch<WFmt::Q8_0, 2, 2>(j, x, multiprocessors, stream);
}

}  // namespace unicorn::cuda
