// One row of x against Q4_0 / Q8_0 / Q6_K / Q4_K / NF4 weights (decode at batch 1), streaming the
// weights at the memory's rate. The rows are spread evenly over one block of 16 warps a
// multiprocessor (or two of 8: UNICORN_CUDA_STREAM_WARPS=8; whole rows, at most one apart), and a
// block's rows, as one run of steps of U units a lane (Unit below), evenly over its warps, so every
// warp has the same work to within a step even where the rows do not divide (a row may start in one
// warp and end in the next). A warp walks its run with the next step's loads in flight while the
// current one is multiplied, across row boundaries too (lane l reads units l, l + 32, ...: a warp's
// loads are contiguous). Each block quantizes x to int8 into shared memory (per 32 values: scale
// amax / 127 and the codes' sum, as linear's int8_x) with its first step's loads in flight;
// products in dp4a, one float multiply per chunk and row (NF4: its 16 levels as int8, round(127
// level), looked up by byte permutes; the levels so rounded move a weight by at most 0.4% of its
// block's absmax, bf16's rounding of the largest). A warp's sum of a row meets in shuffles; rows a
// warp finishes go to shared memory, the parts of rows split between warps to slots added in warp
// order (the same sums every run), and the block writes its rows at the end. Gate and up rows go
// together (GELU(g) u out). Rows wider than 256 chunks may be split into column parts
// (stream_column_parts: each block then makes a part of x's codes, and the residual norm after adds
// the parts). The Q6_K product (the LM head) may write y in page-locked host memory (host_rows):
// each warp then writes its whole rows a few at a time as it finishes them, so the result crosses
// the bus while the product streams.
#include <algorithm>
#include <type_traits>

#include "backends/cuda/cuda_common.cuh"

namespace unicorn::cuda {

namespace {

constexpr int kMaxWarps = 16;
// stream_column_parts: split rows wider than this many chunks (x's codes a block makes).
constexpr int64_t kPartChunks = 256;
// host_rows: a warp's whole rows go to y this many at a time (one 32-byte write).
constexpr int kHostRun = 8;

// Up to three matrices of one width as one range of rows (q, k and v), or (M = 2 below) gate
// and up whose rows go together.
struct StreamJob {
  WeightView w[3];
  const float* bias[3] = {nullptr, nullptr, nullptr};
  float* y[3] = {nullptr, nullptr, nullptr};
  int64_t end[3] = {0, 0, 0};  // each matrix's last row + 1 in the range
  int64_t rows = 0, chunks = 0;  // chunks: x's 32-value chunks (of a column part)
  int64_t units = 0;              // a row's units (Unit below) in a column part: chunks, or Q6_K's half blocks
  int64_t row_units = 0;          // a whole row's units
  int steps_per_row = 0;          // ceil(units / (32 U))
  int column_parts = 1;   // each row group's columns split over this many blocks
  int groups = 0;         // row groups: group g takes rows [g rows / groups, (g + 1) rows / groups)
  int block_rows = 0;     // ceil(rows / groups): room for a block's sums
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

// x's int8 codes in shared memory: chunk c's values 0-15 in lo[c], 16-31 in hi[c], its
// scale and codes' sum (as int bits) in ds[c]. For Q6_K, whose lane takes chunks 4 h .. 4 h + 3
// (half block h), chunk 4 h + q sits at q * quarter + h (quarter: a row's half blocks), so
// that the lanes' reads of one quarter are consecutive (no bank conflicts), and its ds.y holds
// the sums of the chunk's two halves of 16 codes (int16 each: low, high).
struct XCodes {
  uint4* lo;
  uint4* hi;
  float2* ds;
  int quarter = 0;
  // NF4 (M matrices): each one's 16 levels as int8 (round(127 level), nf4_int8_level), four to
  // a word, and its nested absmax codes (256, in shared memory; null without double
  // quantization) and offset. (x's codes then go with the bytes of each pair swapped: quantize_x.)
  uint32_t nf4_levels[2][4];
  const float* nf4_codes[2];
  float nf4_offset[2];
  __device__ void get(int64_t c, int (&xq)[8], float2& d) const {
    const uint4 l = lo[c], h = hi[c];
    d = ds[c];
    xq[0] = int(l.x), xq[1] = int(l.y), xq[2] = int(l.z), xq[3] = int(l.w);
    xq[4] = int(h.x), xq[5] = int(h.y), xq[6] = int(h.z), xq[7] = int(h.w);
  }
};

// What a lane takes of a row at a time: a 32-value chunk of Q4_0 / Q8_0 (codes and scale), or
// half a Q6_K super-block (128 values: its ql and qh, its 8 scales and the block's d; the
// planes of cuda_kernels.h, 16-byte aligned). load fetches one unit (Q4_0 / Q8_0: at the
// addresses load_step works out; Q6_K: half block b of the matrix), zeros with scale 0 where not
// valid (past the row's end); dot is its product with x.
template <WFmt F>
struct Unit;
template <WFmt F>
  requires(F == WFmt::Q4_0 || F == WFmt::Q8_0)
struct Unit<F> {
  static constexpr int kChunks = 1, kVecs = F == WFmt::Q4_0 ? 1 : 2;
  uint4 q[kVecs];
  __half d;
  // The unit whose codes and scale are at qp and dp (load_step finds them).
  __device__ void load(const uint4* qp, const __half* dp, bool valid) {
    if (valid) {
#pragma unroll
      for (int v = 0; v < kVecs; ++v) q[v] = load_once(qp + v);
      d = load_once(dp);
    } else {
#pragma unroll
      for (int v = 0; v < kVecs; ++v) q[v] = make_uint4(0, 0, 0, 0);
      d = __float2half_rn(0.0f);
    }
  }
  __device__ float dot(const XCodes& x, int64_t c, int) const {
    int xq[8];
    float2 ds;
    x.get(c, xq, ds);
    return __half2float(d) * ds.x * float(dot_chunk<F>(reinterpret_cast<const uint32_t*>(q), xq, __float_as_int(ds.y)));
  }
};
template <>
struct Unit<WFmt::Q6_K> {
  static constexpr int kChunks = 4;
  uint4 ql[4], qh[2];
  uint2 sc;
  __half d;
  __device__ void load(const WeightView& w, int64_t half, bool valid) {
    if (valid) {
#pragma unroll
      for (int v = 0; v < 4; ++v) ql[v] = load_once(reinterpret_cast<const uint4*>(w.p0) + q6k_piece(half, v, 4));
#pragma unroll
      for (int v = 0; v < 2; ++v) qh[v] = load_once(reinterpret_cast<const uint4*>(w.p1) + q6k_piece(half, v, 2));
      sc = load_once(reinterpret_cast<const uint2*>(w.p2) + half);
      d = load_once(reinterpret_cast<const __half*>(w.p3) + half / 2);
    } else {
#pragma unroll
      for (int v = 0; v < 4; ++v) ql[v] = make_uint4(0, 0, 0, 0);
      qh[0] = qh[1] = make_uint4(0, 0, 0, 0);
      sc = make_uint2(0, 0);
      d = __float2half_rn(0.0f);
    }
  }
  __device__ float dot(const XCodes& x, int64_t c, int) const {
    const uint32_t* l = reinterpret_cast<const uint32_t*>(ql);
    const uint32_t* h = reinterpret_cast<const uint32_t*>(qh);
    const int8_t* scales = reinterpret_cast<const int8_t*>(&sc);
    float sum = 0.0f;
#pragma unroll
    for (int quarter = 0; quarter < 4; ++quarter) {  // the half's four chunks (q6k_chunk's quarters)
      int xq[8];
      float2 ds;
      x.get(quarter * x.quarter + c, xq, ds);
      // On unsigned codes: sum (code - 32) x = sum code x - 32 sum x over each 16 values.
      int lo = 0, hi = 0;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        lo = __dp4a(int(q6k_codes(l[(quarter & 1) * 8 + i], h[i], (quarter >> 1) * 4, quarter * 2)), xq[i], lo);
        hi = __dp4a(int(q6k_codes(l[(quarter & 1) * 8 + i + 4], h[i + 4], (quarter >> 1) * 4, quarter * 2)), xq[i + 4], hi);
      }
      const int halves = __float_as_int(ds.y);
      lo -= 32 * ((halves << 16) >> 16);
      hi -= 32 * (halves >> 16);
      sum += ds.x * (float(scales[2 * quarter]) * float(lo) + float(scales[2 * quarter + 1]) * float(hi));
    }
    return __half2float(d) * sum;
  }
};

// Q4_K: 64 values of a 256-value super-block (ggml's 144 bytes: d and dmin, 12 bytes of 6-bit
// scales and mins, 128 of codes), its sub-blocks 2 j and 2 j + 1 (j: the unit's place in the
// super-block, c mod 4 in dot: column parts start on whole super-blocks): their 32 bytes of
// codes (2 j's in the low nibbles, 2 j + 1's in the high ones) and the block's first 16 bytes
// (the 4 lanes of a block read the same ones: one load); against x's chunks 2 c and 2 c + 1.
template <>
struct Unit<WFmt::Q4_K> {
  static constexpr int kChunks = 2;
  uint4 head, q[2];
  __device__ void load(const WeightView& w, int64_t unit, bool valid) {
    if (valid) {
      const uint4* blk = reinterpret_cast<const uint4*>(w.p0) + (unit >> 2) * 9;
      head = load_once(blk);
      q[0] = load_once(blk + 1 + 2 * (unit & 3));
      q[1] = load_once(blk + 2 + 2 * (unit & 3));
    } else {
      head = q[0] = q[1] = make_uint4(0, 0, 0, 0);
    }
  }
  __device__ float dot(const XCodes& x, int64_t c, int) const {
    // ref: ggml get_scale_min_k4, sub-blocks s = 2 j and s + 1: scales[s] (y), scales[s + 4] (z)
    const int j = int(c & 3), shift = 16 * (j & 1);
    const uint32_t y = head.y >> shift, z = head.z >> shift;
    uint32_t sc0, sc1, m0, m1;
    if (j < 2) {
      sc0 = y & 63, sc1 = (y >> 8) & 63, m0 = z & 63, m1 = (z >> 8) & 63;
    } else {  // the low 4 bits in scales[s + 4], the high 2 in scales[s - 4] (scale) and scales[s] (min)
      const uint32_t v = head.w >> shift;
      sc0 = (v & 15) | ((y >> 2) & 48), sc1 = ((v >> 8) & 15) | ((y >> 10) & 48);
      m0 = ((v >> 4) & 15) | ((z >> 2) & 48), m1 = ((v >> 12) & 15) | ((z >> 10) & 48);
    }
    const float2 dm = __half22float2(*reinterpret_cast<const __half2*>(&head.x));
    const uint32_t* qw = reinterpret_cast<const uint32_t*>(q);
    int xq[8], lo = 0, hi = 0;
    float2 d0, d1;
    x.get(2 * c, xq, d0);
#pragma unroll
    for (int i = 0; i < 8; ++i) lo = __dp4a(int(qw[i] & 0x0f0f0f0fu), xq[i], lo);
    x.get(2 * c + 1, xq, d1);
    // the high nibbles in place, 16 times their value (as Q4_0's)
#pragma unroll
    for (int i = 0; i < 8; ++i) hi = dp4a_unsigned(qw[i] & 0xf0f0f0f0u, xq[i], hi);
    return d0.x * (dm.x * float(sc0) * float(lo) - dm.y * float(m0) * float(__float_as_int(d0.y))) +
           d1.x * (dm.x * float(sc1) * float(hi >> 4) - dm.y * float(m1) * float(__float_as_int(d1.y)));
  }
};

// A word of 8 NF4 codes (one a nibble) as their int8 levels (t: 16 bytes), 4 a word in the
// nibbles' order (the low 16 bits' in lo, the high 16 bits' in hi): byte permutes over levels
// 0-7 and 8-15, then a third picking by each code's bit 3 (12 integer instructions).
__device__ __forceinline__ void nf4_lookup(const uint32_t (&t)[4], uint32_t w, uint32_t& lo, uint32_t& hi) {
  const uint32_t sel = w & 0x77777777u, pick = ((w >> 1) & 0x44444444u) | 0x32103210u;
  const uint32_t sel_hi = sel >> 16, pick_hi = pick >> 16;
  lo = __byte_perm(__byte_perm(t[0], t[1], sel), __byte_perm(t[2], t[3], sel), pick);
  hi = __byte_perm(__byte_perm(t[0], t[1], sel_hi), __byte_perm(t[2], t[3], sel_hi), pick_hi);
}

// NF4 (bitsandbytes): 64 values, their 32 bytes of codes (a byte's high nibble first) as int8
// levels against x's int8 codes (dp4a; x's codes pair-swapped to match the nibbles' order),
// times the block's absmax / 127, the absmax rebuilt as the CPU does (code, nested scale and
// offset, rounding each step). a: the absmax's code, or its bits without double quantization;
// ~0u past the row's end (codes of zeros are level -1, not 0).
template <>
struct Unit<WFmt::NF4> {
  static constexpr int kChunks = 2;
  uint4 q[2];
  uint32_t a;
  float nested;
  __device__ void load(const WeightView& w, int64_t unit, bool valid) {
    if (valid) {
      const uint4* p = reinterpret_cast<const uint4*>(w.p0) + 2 * unit;
      q[0] = load_once(p);
      q[1] = load_once(p + 1);
      // (blocks of 64 << k values, nested in 1 << n: shifts, not 64-bit divisions)
      const int64_t b = unit >> (__ffsll(w.nf4_block) - 7);
      if (w.p2) {
        a = __ldg(w.p1 + b);
        nested = __ldg(reinterpret_cast<const float*>(w.p2) + (b >> (__ffsll(w.nf4_nested) - 1)));
      } else {
        a = __float_as_uint(__ldg(reinterpret_cast<const float*>(w.p1) + b));
        nested = 0.0f;
      }
    } else {
      q[0] = q[1] = make_uint4(0, 0, 0, 0);
      a = ~0u;
      nested = 0.0f;
    }
  }
  __device__ float dot(const XCodes& x, int64_t c, int m) const {
    if (a == ~0u) return 0.0f;
    const float absmax =
        x.nf4_codes[m] ? nf4_absmax(x.nf4_codes[m][a], nested, x.nf4_offset[m]) : __uint_as_float(a);
    const uint32_t* qw = reinterpret_cast<const uint32_t*>(q);
    float sum = 0.0f;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      int xq[8], acc0 = 0, acc1 = 0;  // two chains of dependent dp4a, not one
      float2 ds;
      x.get(2 * c + h, xq, ds);
#pragma unroll
      for (int i = 0; i < 4; ++i) {  // a word's 8 values against two of x's words
        uint32_t lo, hi;
        nf4_lookup(x.nf4_levels[m], qw[4 * h + i], lo, hi);
        acc0 = __dp4a(int(lo), xq[2 * i], acc0);
        acc1 = __dp4a(int(hi), xq[2 * i + 1], acc1);
      }
      sum += ds.x * float(acc0 + acc1);
    }
    return absmax * (1.0f / 127.0f) * sum;
  }
};

// One step's weights: M matrices' (1, or gate and up) U units of a lane.
template <WFmt F, int U, int M>
struct Step {
  Unit<F> unit[M][U];
};

// Where a warp is: the row (of the range) and the step within it.
struct Cursor {
  int64_t row;
  int step;
  __device__ void next(int steps_per_row) {
    if (++step == steps_per_row) step = 0, ++row;
  }
};

// first: the unit of the block's column part where its rows start.
template <WFmt F, int U, int M>
__device__ __forceinline__ void load_step(const StreamJob& j, const Cursor& at, int lane, int64_t first,
                                          Step<F, U, M>& s) {
  const PartRow at_row = M == 1 ? part_row(j, at.row) : PartRow{0, at.row};
  if constexpr (Unit<F>::kChunks == 1) {
    // Q4_0 / Q8_0: the step's first unit's address once a matrix, the others 32 units on
    // (constant offsets), validity in 32 bits.
    const int c0 = at.step * U * 32 + lane;
    // (gate and up: no column parts)
    const int64_t b0 = at_row.row * (M == 1 ? j.row_units : j.units) + first + c0;
    const int units = int(j.units);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const WeightView& w = j.w[at_row.part + m];
      const uint4* qp = reinterpret_cast<const uint4*>(w.p0) + b0 * Unit<F>::kVecs;
      const __half* dp = reinterpret_cast<const __half*>(w.p1) + b0;
#pragma unroll
      for (int u = 0; u < U; ++u)
        s.unit[m][u].load(qp + u * 32 * Unit<F>::kVecs, dp + u * 32, c0 + u * 32 < units);
    }
  } else {
#pragma unroll
    for (int m = 0; m < M; ++m) {
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t c = (int64_t(at.step) * U + u) * 32 + lane;
        const int64_t row_units = M == 1 ? j.row_units : j.units;
        s.unit[m][u].load(j.w[at_row.part + m], at_row.row * row_units + first + c, c < j.units);
      }
    }
  }
}

// Shared memory of a block: x's codes, scales and sums (40 bytes a chunk), then the sums of
// its rows and the warps' parts of split rows.
struct Sums {
  float* rows;       // [M][block_rows]
  float* parts;      // [W][2][M]: a warp's first and last row where it has only part
  int* part_rows;    // [W][2]: which row (of the block), -1 for none
  int* written;      // [W][2]: host_rows: the rows [first, end) a warp has written to y
};
// (NF4: then each matrix's 256 nested absmax codes.)
template <int M>
__host__ __device__ size_t smem_sums_end(const StreamJob& j) {
  return size_t(j.chunks) * 40 + size_t(j.block_rows) * M * 4 + kMaxWarps * 2 * (M + 2) * 4;
}
template <WFmt F, int M>
size_t smem_bytes(const StreamJob& j) {
  return smem_sums_end<M>(j) + (F == WFmt::NF4 ? M * 256 * 4 : 0);
}

// x's codes for the block (its column part), every thread a chunk at a time. NF4: the bytes of
// each pair swapped, as the levels come out of its lookup (a byte's high nibble is the first value).
template <WFmt F, int kThreads>
__device__ __forceinline__ void quantize_x(const StreamJob& j, const float* __restrict__ x, const XCodes& xc) {
  for (int64_t c = threadIdx.x; c < j.chunks; c += kThreads) {
    int xq[8], sum;
    float d;
    quantize_chunk(x + c * 32, xq, d, sum);
    int64_t at = c;
    if (xc.quarter > 0) {  // Q6_K (XCodes)
      at = (c & 3) * xc.quarter + (c >> 2);
      int low = 0;
#pragma unroll
      for (int i = 0; i < 4; ++i) low = __dp4a(xq[i], 0x01010101, low);
      sum = (low & 0xffff) | ((sum - low) << 16);
    }
    if constexpr (F == WFmt::NF4) {
#pragma unroll
      for (int i = 0; i < 8; ++i) xq[i] = int(__byte_perm(uint32_t(xq[i]), 0u, 0x2301u));
    }
    xc.lo[at] = make_uint4(uint32_t(xq[0]), uint32_t(xq[1]), uint32_t(xq[2]), uint32_t(xq[3]));
    xc.hi[at] = make_uint4(uint32_t(xq[4]), uint32_t(xq[5]), uint32_t(xq[6]), uint32_t(xq[7]));
    xc.ds[at] = make_float2(d, __int_as_float(sum));
  }
}

// A warp's sum of a row of the block, or of its part of it, into shared memory (lane 0): whole
// rows to their sums, parts to the warp's first or last slot.
template <int M>
__device__ __forceinline__ void put_row(const StreamJob& j, const Sums& sums, int warp, int lane, int row, bool whole,
                                        bool first_row, float (&acc)[M]) {
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
  }
  if (lane != 0) return;
  if (whole) {
#pragma unroll
    for (int m = 0; m < M; ++m) sums.rows[m * j.block_rows + row] = acc[m];
  } else {
    const int slot = warp * 2 + (first_row ? 0 : 1);
    sums.part_rows[slot] = row;
#pragma unroll
    for (int m = 0; m < M; ++m) sums.parts[slot * M + m] = acc[m];
  }
}

// The rows of the block in steps of U units a lane, a step within one row (the warp's first
// and last rows may be parts), through two step buffers. first: the unit of the block's column
// part where a row's units start (column parts: Q4_0 / Q8_0, a unit a chunk).
template <WFmt F, int U, int M, int W, bool H>
__device__ __forceinline__ void stepped_rows(const StreamJob& j, const float* __restrict__ x, const XCodes& xc,
                                             const Sums& sums, int64_t r0, int64_t r1, int64_t first) {
  constexpr int kWarps = W, kThreads = 32 * W;
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int64_t total = (r1 - r0) * j.steps_per_row;
  const int64_t s0 = total * warp / kWarps;
  const int steps = int(total * (warp + 1) / kWarps - s0);

  // One step's loads in flight before the wait for x, the next one's after x's loads: x's
  // loads, which every warp waits for, queue behind fewer weight loads (tg128 +3-4% over
  // both steps first).
  Step<F, U, M> a, b;
  const Cursor start{r0 + s0 / j.steps_per_row, int(s0 % j.steps_per_row)};
  Cursor load_at = start, use_at = start;
  if (steps > 0) {
    load_step<F, U, M>(j, load_at, lane, first, a);
    load_at.next(j.steps_per_row);
  }
  // Every matrix's sums from 0 (all of [M][block_rows]: in a block of fewer rows than block_rows,
  // up's last block_rows - rows sums would start as shared memory had them, read where a row is split).
  for (int64_t i = threadIdx.x; i < int64_t(j.block_rows) * M; i += kThreads) sums.rows[i] = 0.0f;
  if (threadIdx.x < kWarps * 2) sums.part_rows[threadIdx.x] = -1;
  wait_for_inputs();
  trace_block_mark(2);
  quantize_x<F, kThreads>(j, x, xc);
  if (steps > 1) {
    load_step<F, U, M>(j, load_at, lane, first, b);
    load_at.next(j.steps_per_row);
  }
  __syncthreads();

  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  bool first_row = true;  // the row in use is the warp's first
  int written = -1, unwritten = -1;  // H: the warp's whole rows [written, unwritten) are in y
  auto use = [&](const Step<F, U, M>& s, bool last) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      // Past the row's end the weights are zeros with scale 0: x's last unit stands in, and
      // no branch keeps the U units' dot products from interleaving.
      const int64_t c = min((int64_t(use_at.step) * U + u) * 32 + lane, j.units - 1);
#pragma unroll
      for (int m = 0; m < M; ++m) acc[m] += s.unit[m][u].dot(xc, c, m);
    }
    const bool row_end = use_at.step + 1 == j.steps_per_row;
    if (row_end || last) {  // the warp's sums of the row (or of its part of it)
      const int row = int(use_at.row - r0);
      const bool whole = row_end && !(first_row && start.step > 0);
      put_row<M>(j, sums, warp, lane, row, whole, first_row, acc);
      if constexpr (H) {
        if (whole && written < 0) written = unwritten = row;
        if (whole && row + 1 - unwritten == kHostRun) {
          __syncwarp();
          if (lane < kHostRun) j.y[0][r0 + unwritten + lane] = sums.rows[unwritten + lane];
          unwritten += kHostRun;
        }
      }
#pragma unroll
      for (int m = 0; m < M; ++m) acc[m] = 0.0f;
      first_row = false;
    }
    use_at.next(j.steps_per_row);
  };
  // Two step buffers in turn: one multiplied while the other's loads are in flight, then
  // loaded with the step after the other's.
  for (int s = 0; s < steps; s += 2) {
    use(a, s + 1 == steps);
    if (s + 2 < steps) {
      load_step<F, U, M>(j, load_at, lane, first, a);
      load_at.next(j.steps_per_row);
    }
    if (s + 1 >= steps) break;
    use(b, s + 2 == steps);
    if (s + 3 < steps) {
      load_step<F, U, M>(j, load_at, lane, first, b);
      load_at.next(j.steps_per_row);
    }
  }
  if (H && lane == 0) sums.written[warp * 2] = written, sums.written[warp * 2 + 1] = unwritten;
}

template <WFmt F, int U, int M, int W, bool H = false>
__global__ void __launch_bounds__(32 * W, 16 / W) matvec_stream_kernel(StreamJob j, const float* __restrict__ x) {
  constexpr int kWarps = W, kThreads = 32 * W;
  extern __shared__ __align__(16) unsigned char smem[];
  XCodes xc;
  xc.lo = reinterpret_cast<uint4*>(smem);
  xc.hi = xc.lo + j.chunks;
  xc.ds = reinterpret_cast<float2*>(xc.hi + j.chunks);
  if constexpr (F == WFmt::Q6_K) xc.quarter = int(j.chunks / 4);
  Sums sums;
  sums.rows = reinterpret_cast<float*>(xc.ds + j.chunks);
  sums.parts = sums.rows + int64_t(j.block_rows) * M;
  sums.part_rows = reinterpret_cast<int*>(sums.parts + kWarps * 2 * M);
  sums.written = sums.part_rows + kWarps * 2;
  const int group = int(blockIdx.x) / j.column_parts, column_part = int(blockIdx.x) % j.column_parts;
  const int64_t r0 = int64_t(group) * j.rows / j.groups, r1 = int64_t(group + 1) * j.rows / j.groups;
  x += column_part * j.chunks * 32;
  let_next_start();
  if constexpr (F == WFmt::NF4) {  // the levels as int8, the nested codes into shared memory
    float* codes = reinterpret_cast<float*>(smem + smem_sums_end<M>(j));
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float* lv = j.w[m].levels;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        uint32_t word = 0;
#pragma unroll
        for (int b = 0; b < 4; ++b) word |= (uint32_t(nf4_int8_level(lv[4 * k + b])) & 0xffu) << (8 * b);
        xc.nf4_levels[m][k] = word;
      }
      xc.nf4_codes[m] = j.w[m].p2 ? codes + m * 256 : nullptr;
      xc.nf4_offset[m] = j.w[m].p2 ? lv[16 + 256] : 0.0f;
      if (j.w[m].p2)
        for (int i = threadIdx.x; i < 256; i += kThreads) codes[m * 256 + i] = lv[16 + i];
    }
  }
  stepped_rows<F, U, M, W, H>(j, x, xc, sums, r0, r1, M == 1 ? column_part * j.units : 0);
  trace_block_mark(4);
  __syncthreads();

  // The block's rows: the whole rows' sums plus the parts of split rows, in warp order.
  for (int row = threadIdx.x; row < int(r1 - r0); row += kThreads) {
    if constexpr (H) {  // (those the warps wrote as they went are in y)
      bool done = false;
      for (int w = 0; w < kWarps; ++w) done |= row >= sums.written[2 * w] && row < sums.written[2 * w + 1];
      if (done) continue;
    }
    float v[M];
#pragma unroll
    for (int m = 0; m < M; ++m) v[m] = sums.rows[m * j.block_rows + row];
    for (int slot = 0; slot < kWarps * 2; ++slot) {
      if (sums.part_rows[slot] == row) {
#pragma unroll
        for (int m = 0; m < M; ++m) v[m] += sums.parts[slot * M + m];
      }
    }
    const int64_t at = r0 + row;
    if constexpr (M == 2) {
      j.y[0][at] = gelu_tanh(v[0]) * v[1];
    } else {
      const PartRow at_row = part_row(j, at);
      const float* bias = column_part == 0 ? j.bias[at_row.part] : nullptr;
      j.y[at_row.part][column_part * j.rows + at_row.row] = v[0] + (bias ? bias[at_row.row] : 0.0f);
    }
  }
  trace_block_mark(3);
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

// x's codes, scales and sums and the block's sums in shared memory, within the default 48 KiB.
template <WFmt F, int M, int... Us>
bool launch(StreamJob& j, const float* x, StreamGrid grid, cudaStream_t stream, bool host_rows = false) {
  const bool wide = grid.warps == 16;
  const int64_t most = std::max<int64_t>(1, int64_t(grid.multiprocessors) * (wide ? 1 : 2) / j.column_parts);
  j.groups = int(std::clamp<int64_t>(j.rows, 1, most));
  j.block_rows = int((j.rows + j.groups - 1) / j.groups);
  const size_t smem = smem_bytes<F, M>(j);
  if (smem > 48 * 1024) return false;
  if (j.rows == 0) return true;
  j.units = j.chunks / Unit<F>::kChunks;
  j.row_units = j.units * j.column_parts;
  const unsigned blocks = unsigned(j.groups * j.column_parts);
  const int u = pick_u<Us...>(j.units);
  j.steps_per_row = int((j.units + 32 * u - 1) / (32 * u));
  auto go = [&](auto uc) {
    constexpr int U = decltype(uc)::value;
    if constexpr (F == WFmt::Q6_K && M == 1) {
      if (u == U && host_rows) {
        if (wide) return launch_dependent(matvec_stream_kernel<F, U, M, 16, true>, blocks, 512, smem, stream, j, x);
        return launch_dependent(matvec_stream_kernel<F, U, M, 8, true>, blocks, 256, smem, stream, j, x);
      }
    }
    if (u == U && !wide) launch_dependent(matvec_stream_kernel<F, U, M, 8>, blocks, 256, smem, stream, j, x);
    if (u == U && wide) launch_dependent(matvec_stream_kernel<F, U, M, 16>, blocks, 512, smem, stream, j, x);
  };
  (go(std::integral_constant<int, Us>()), ...);
  return true;
}

// x's chunks a unit of the format takes, where a part of a row must start (Q4_K: whole
// super-blocks).
int64_t part_chunks(WFmt fmt) { return fmt == WFmt::Q4_K ? 8 : fmt == WFmt::NF4 ? 2 : 1; }

// Whether the streamed kernel takes rows of w: NF4 in units of 64 values, each within one absmax
// block (of a power of two values, as bitsandbytes makes them) and one row.
bool streamable(const WeightView& w, WFmt fmt) {
  auto power_of_two = [](int64_t v) { return v > 0 && (v & (v - 1)) == 0; };
  if (fmt == WFmt::NF4)
    return w.cols % 64 == 0 && w.nf4_block >= 64 && power_of_two(w.nf4_block) && power_of_two(w.nf4_nested);
  return fmt == WFmt::Q4_0 || fmt == WFmt::Q8_0 || fmt == WFmt::Q6_K || (fmt == WFmt::Q4_K && w.cols % 256 == 0);
}

}  // namespace

int stream_column_parts(WFmt fmt, int64_t cols) {
  const int64_t chunks = cols / 32, unit = part_chunks(fmt);
  if ((fmt != WFmt::Q4_0 && fmt != WFmt::Q8_0 && fmt != WFmt::Q4_K && fmt != WFmt::NF4) || chunks <= kPartChunks)
    return 1;
  for (int p = int((chunks + kPartChunks - 1) / kPartChunks); p <= 4; ++p)
    if (chunks % (p * unit) == 0) return p;
  return 1;
}

bool matvec_stream(WFmt fmt, int parts, const WeightView* w, const float* const* bias, float* const* y, const float* x,
                   StreamGrid grid, cudaStream_t stream, int column_parts, bool host_rows) {
  if (parts < 1 || parts > 3 || (fmt == WFmt::NF4 && parts != 1)) return false;  // (NF4: one matrix's levels)
  for (int p = 0; p < parts; ++p)
    if (!streamable(w[p], fmt)) return false;
  if (host_rows && (fmt != WFmt::Q6_K || parts != 1 || column_parts != 1 || (bias && bias[0]))) return false;
  const int64_t chunks = w[0].cols / 32;
  if (column_parts < 1 ||
      (column_parts > 1 && (parts != 1 || fmt == WFmt::Q6_K || chunks % (column_parts * part_chunks(fmt)) != 0)))
    return false;
  StreamJob j;
  j.column_parts = column_parts;
  j.chunks = chunks / column_parts;
  for (int p = 0; p < parts; ++p) {
    if (w[p].cols != w[0].cols) return false;
    j.w[p] = w[p];
    j.bias[p] = bias ? bias[p] : nullptr;
    j.y[p] = y[p];
    j.rows += w[p].rows;
    j.end[p] = j.rows;
  }
  for (int p = parts; p < 3; ++p) j.end[p] = j.rows;
  // Q4_0: 4-8 chunks (16 bytes each) a lane a step; Q8_0 (32 bytes): 2-4; Q6_K: half a block
  // (104 bytes); Q4_K: 2-3 units of 64 values (48 bytes loaded, 16 of them shared by a block's 4
  // lanes); NF4: 2-3 units of 64 values (32 bytes and the absmax).
  switch (fmt) {
    case WFmt::Q6_K: return launch<WFmt::Q6_K, 1, 1>(j, x, grid, stream, host_rows);
    case WFmt::Q4_0: return launch<WFmt::Q4_0, 1, 4, 6, 7, 8>(j, x, grid, stream);
    case WFmt::Q8_0: return launch<WFmt::Q8_0, 1, 2, 3, 4>(j, x, grid, stream);
    case WFmt::Q4_K: return launch<WFmt::Q4_K, 1, 2, 3>(j, x, grid, stream);
    case WFmt::NF4: return launch<WFmt::NF4, 1, 2, 3>(j, x, grid, stream);  // (U = 4 spills)
    default: return false;
  }
}

bool gate_up_stream(WFmt fmt, const WeightView& gate, const WeightView& up, const float* x, float* out,
                    StreamGrid grid, cudaStream_t stream) {
  if (fmt == WFmt::Q6_K || !streamable(gate, fmt) || !streamable(up, fmt) || gate.rows != up.rows ||
      gate.cols != up.cols)
    return false;
  StreamJob j;
  j.w[0] = gate;
  j.w[1] = up;
  j.y[0] = out;
  j.rows = gate.rows;
  j.end[0] = j.end[1] = j.end[2] = j.rows;
  j.chunks = gate.cols / 32;
  switch (fmt) {
    case WFmt::Q4_0: return launch<WFmt::Q4_0, 2, 3, 4>(j, x, grid, stream);
    case WFmt::Q8_0: return launch<WFmt::Q8_0, 2, 2>(j, x, grid, stream);
    case WFmt::Q4_K: return launch<WFmt::Q4_K, 2, 1>(j, x, grid, stream);  // (U = 2 spills)
    case WFmt::NF4: return launch<WFmt::NF4, 2, 1>(j, x, grid, stream);  // (U = 2 spills)
    default: return false;
  }
}

}  // namespace unicorn::cuda
