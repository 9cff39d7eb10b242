// One row of x against Q4_0 / Q8_0 weights (decode at batch 1), streaming the weights at the
// memory's rate. Each warp takes a run of whole rows and walks them in steps of U chunks a lane
// (lane l reads chunks l, l + 32, ...: a warp's loads are contiguous), the next step's loads in
// flight while the current one is multiplied, across row boundaries too. The grid is two blocks
// of 8 warps a multiprocessor with the rows spread evenly over its warps, so every warp has
// the same work and no block waits for a late one. Each block first quantizes x to int8 into
// shared memory (per 32 values: scale amax / 127 and the codes' sum, as linear's int8_x), with
// its first loads already in flight; products in dp4a, one float multiply per chunk and row.
// The warp's sum of a row meets in shuffles; gate and up rows go together (GELU(g) u out).
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

template <WFmt F, int U, int M>
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
  wait_for_inputs();
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

// x's codes, scales and sums in shared memory: 40 bytes a chunk, within the default 48 KiB.
template <WFmt F, int M, int... Us>
bool launch(StreamJob& j, const float* x, int multiprocessors, cudaStream_t stream) {
  const size_t smem = size_t(j.chunks) * 40;
  if (smem > 48 * 1024) return false;
  if (j.rows == 0) return true;
  const int u = pick_u<Us...>(j.chunks);
  j.steps_per_row = int((j.chunks + 32 * u - 1) / (32 * u));
  const int64_t warps = int64_t(multiprocessors) * kBlocksPerSm * kWarps;
  j.rows_per_warp = (j.rows + warps - 1) / warps;
  const unsigned blocks = unsigned((j.rows + kWarps * j.rows_per_warp - 1) / (kWarps * j.rows_per_warp));
  auto go = [&](auto uc) {
    constexpr int U = decltype(uc)::value;
    if (u == U) launch_dependent(matvec_stream_kernel<F, U, M>, blocks, kThreads, smem, stream, j, x);
  };
  (go(std::integral_constant<int, Us>()), ...);
  return true;
}

}  // namespace

bool matvec_stream(WFmt fmt, int parts, const WeightView* w, const float* const* bias, float* const* y, const float* x,
                   int multiprocessors, cudaStream_t stream) {
  if ((fmt != WFmt::Q4_0 && fmt != WFmt::Q8_0) || parts < 1 || parts > 3) return false;
  StreamJob j;
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
                    int multiprocessors, cudaStream_t stream) {
  if ((fmt != WFmt::Q4_0 && fmt != WFmt::Q8_0) || gate.rows != up.rows || gate.cols != up.cols) return false;
  StreamJob j;
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
