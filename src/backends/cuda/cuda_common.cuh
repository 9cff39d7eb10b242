// Device code the CUDA backend's .cu files share: the loader that turns 32 consecutive
// weights of a row into f32, for each weight format of cuda_kernels.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_kernels.h"

namespace unicorn::cuda {

// Kernel trace (a build configured with -DUNICORN_CUDA_TRACE=ON, run with
// UNICORN_CUDA_TRACE=FILE; scripts/cuda-trace.py reads the file): block 0 of each dependent
// kernel records the GPU's global timer when it starts (let_next_start) and when its wait for
// inputs returns; the time from one kernel's wait to the next one's is what that kernel adds to
// the critical path. Each .cu file has its own copy of the device-side slots, set by
// trace_start through trace_setters. The marks cost ~4% of 27B decode: not in normal builds.
#ifdef UNICORN_CUDA_TRACE_BUILD
namespace {
__device__ TraceSlots g_trace;
inline void set_trace_here(const TraceSlots& s) { cudaMemcpyToSymbol(g_trace, &s, sizeof s); }
const bool g_trace_registered = (trace_setters().push_back(&set_trace_here), true);
}  // namespace
#endif
#ifdef UNICORN_CUDA_TRACE_BUILD
// One event of `kind`: the global timer's time and `word`.
__device__ __forceinline__ void trace_record(int kind, unsigned long long word) {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  const unsigned i = atomicAdd(g_trace.n + kind, 1u);
  if (i < g_trace.cap) {
    unsigned long long* e = g_trace.buf + (size_t(kind) * g_trace.cap + i) * 2;
    e[0] = t;
    e[1] = word;
  }
}
#endif
__device__ __forceinline__ void trace_mark([[maybe_unused]] int kind) {
#ifdef UNICORN_CUDA_TRACE_BUILD
  if (blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0 && threadIdx.x == 0 && threadIdx.y == 0 && g_trace.buf)
    trace_record(kind, (unsigned long long)(gridDim.x * gridDim.y * gridDim.z) | ((unsigned long long)blockDim.x << 32));
#endif
}

// Kinds 2-4 of the trace, from every block of a streamed product (cuda_matvec.cu): thread 0
// marks when the block's input wait returned (2) and when the block is done (3, after a block
// barrier); lane 0 of each warp when the warp's rows are done (4). Each as (time, block |
// warp << 20 | grid blocks << 32).
__device__ __forceinline__ void trace_block_mark([[maybe_unused]] int kind) {
#ifdef UNICORN_CUDA_TRACE_BUILD
  if (kind == 3) __syncthreads();
  if ((kind == 4 ? (threadIdx.x & 31) : threadIdx.x) == 0 && threadIdx.y == 0 && g_trace.buf)
    trace_record(kind, (unsigned long long)blockIdx.x | (unsigned long long)(threadIdx.x >> 5) << 20 |
                           ((unsigned long long)gridDim.x << 32));
#endif
}

// Loads of data read once per kernel (a product's weights streamed at batch 1, the KV cache's
// rows in decode attention): through the read-only path, with no line kept in L1
// (L1::no_allocate), where it would only take room and work from the loads that are reused.
// 27B Q4_0 tg128 on H200s: the streamed products' weights 201.6 -> 203.2 tok/s on one card (L2
// evict_first as well: 202.9; L2 256-byte prefetch instead: 198.5), attention's K / V rows
// 201.5 -> 202.2 on another (after 4096 tokens 164.1 -> 165.1), both 199.9 -> 200.4 on a third.
// `Ordered` keeps the load in program order with other memory operations and
// griddepcontrol.wait (data an earlier kernel wrote); without it the compiler may move it
// anywhere, so only for memory that no kernel writes while this one may run (weights).
template <bool Ordered = false>
__device__ __forceinline__ uint4 load_once(const uint4* p) {
  uint4 r;
  if constexpr (Ordered)
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p) : "memory");
  else
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
}
template <bool Ordered = false>
__device__ __forceinline__ uint2 load_once(const uint2* p) {
  uint2 r;
  if constexpr (Ordered)
    asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];" : "=r"(r.x), "=r"(r.y) : "l"(p) : "memory");
  else
    asm("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];" : "=r"(r.x), "=r"(r.y) : "l"(p));
  return r;
}
__device__ __forceinline__ __half load_once(const __half* p) {
  unsigned short r;
  asm("ld.global.nc.L1::no_allocate.b16 %0, [%1];" : "=h"(r) : "l"(p));
  return __ushort_as_half(r);
}

// Programmatic dependent launch (cuda_kernels.h, allow_dependent_launches). A kernel launched
// by launch_dependent calls let_next_start first (the kernel after it may be scheduled as soon
// as every block of this one runs) and wait_for_inputs before it touches memory the kernels
// before it wrote or read (activations, caches; weights and constants may come earlier). Both
// are no-ops for a plain launch and before sm_90.
__device__ __forceinline__ void let_next_start() {
  trace_mark(0);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void wait_for_inputs() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  trace_mark(1);
}
// kernel<<<grid, block, smem, stream>>>(args...), programmatically dependent on the work
// before it when dependent_launches() (the kernel must call wait_for_inputs as above).
template <class... Params, class... Args>
void launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                      Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = attr;
  config.numAttrs = dependent_launches() ? 1 : 0;
  check(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...), "kernel launch", __FILE__, __LINE__);
}

// A float stored as T (float, f16 or bf16, rounded to nearest).
__device__ __forceinline__ void store_as(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_as(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store_as(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Where Q6_K's chunk `chunk` (32 values) of `row` lies (ref: ggml dequantize_row_q6_K: two
// halves of 128 values, each four quarters of 32; value l of a quarter is (ql nibble | 2 bits of
// qh) - 32, times d and the scale of its 16 values): 32 bytes of ql and of qh, shared with the
// chunks whose other nibble / bits they hold, the two int8 scales and the block's d. The 32
// bytes of ql and of qh are two 16-byte pieces each (l(0), l(1); h(0), h(1)), kQ6kGroup pieces
// apart (q6k_piece, cuda_layout.h).
struct Q6kChunk {
  const uint4* ql;
  const uint4* qh;
  const int8_t* sc;
  const __half* d;
  int lo_shift, hi_shift;
  __device__ uint4 l(int i) const { return ql[i * kQ6kGroup]; }
  __device__ uint4 h(int i) const { return qh[i * kQ6kGroup]; }
  // Word k (0-7) of the 32 bytes.
  __device__ uint32_t lword(int k) const { return reinterpret_cast<const uint32_t*>(ql + (k >> 2) * kQ6kGroup)[k & 3]; }
  __device__ uint32_t hword(int k) const { return reinterpret_cast<const uint32_t*>(qh + (k >> 2) * kQ6kGroup)[k & 3]; }
};
__device__ __forceinline__ Q6kChunk q6k_chunk(const WeightView& w, int64_t row, int64_t chunk) {
  const int64_t blk = row * (w.cols / 256) + chunk / 8;
  const int j = int(chunk % 8), h = j / 4, quarter = j % 4;
  const int64_t half = blk * 2 + h;
  return {reinterpret_cast<const uint4*>(w.p0) + q6k_piece(half, (quarter & 1) * 2, 4),
          reinterpret_cast<const uint4*>(w.p1) + q6k_piece(half, 0, 2),
          reinterpret_cast<const int8_t*>(w.p2 + blk * 16 + 8 * h + 2 * quarter),
          reinterpret_cast<const __half*>(w.p3) + blk, (quarter >> 1) * 4, quarter * 2};
}
// Four 6-bit codes of a chunk from a word of its ql and of its qh, as int8 values - 32.
__device__ __forceinline__ uint32_t q6k_word(uint32_t ql, uint32_t qh, int lo_shift, int hi_shift) {
  const uint32_t q = ((ql >> lo_shift) & 0x0f0f0f0fu) | (((qh >> hi_shift) & 0x03030303u) << 4);
  return __vsub4(q, 0x20202020u);  // bytes 0..63 -> -32..31
}
// The same codes unsigned (0..63, without the - 32, which a product can take as - 32 times the
// sum of x's codes): fewer operations a word. (q6k_word is not written on it: ptxas then
// makes the tensor-core and int8 kernels' loops longer, up to 16%.)
__device__ __forceinline__ uint32_t q6k_codes(uint32_t ql, uint32_t qh, int lo_shift, int hi_shift) {
  const uint32_t hi = hi_shift <= 4 ? qh << (4 - hi_shift) : qh >> (hi_shift - 4);
  return ((ql >> lo_shift) & 0x0f0f0f0fu) | (hi & 0x30303030u);
}

// A double-quantized NF4 block's absmax from its 8-bit code's value, nested scale and offset, as
// nf4::State::block_absmax: rounding each step (no fused multiply-add), so it equals the CPU's.
__device__ __forceinline__ float nf4_absmax(float code, float nested, float offset) {
  return __fadd_rn(__fmul_rn(code, nested), offset);
}

// acc + the dot product of a's 4 unsigned bytes with b's 4 signed ones (Q4_0's and Q4_K's high
// nibbles in place: bytes of 16 times their value).
__device__ __forceinline__ int dp4a_unsigned(uint32_t a, int b, int acc) {
  asm("dp4a.u32.s32 %0, %1, %2, %0;" : "+r"(acc) : "r"(a), "r"(b));
  return acc;
}

// The 32 weights [chunk * 32, chunk * 32 + 32) of `row`, as f32.
template <WFmt F>
__device__ __forceinline__ void load_chunk(const WeightView& w, int64_t row, int64_t chunk, float* out) {
  const int64_t chunks = w.cols / 32;
  if constexpr (F == WFmt::F32) {
    const float4* p = reinterpret_cast<const float4*>(w.p0) + (row * w.cols + chunk * 32) / 4;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const float4 v = p[i];
      out[4 * i] = v.x, out[4 * i + 1] = v.y, out[4 * i + 2] = v.z, out[4 * i + 3] = v.w;
    }
  } else if constexpr (F == WFmt::F16 || F == WFmt::BF16) {
    const uint4* p = reinterpret_cast<const uint4*>(w.p0 + (row * w.cols + chunk * 32) * 2);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint4 v = p[i];
      const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        if constexpr (F == WFmt::F16) {
          const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&words[j]));
          out[8 * i + 2 * j] = f.x, out[8 * i + 2 * j + 1] = f.y;
        } else {
          out[8 * i + 2 * j] = __uint_as_float(words[j] << 16);
          out[8 * i + 2 * j + 1] = __uint_as_float(words[j] & 0xffff0000u);
        }
      }
    }
  } else if constexpr (F == WFmt::Q4_0) {
    const int64_t b = row * chunks + chunk;
    const uint4 v = reinterpret_cast<const uint4*>(w.p0)[b];
    const float d = __half2float(reinterpret_cast<const __half*>(w.p1)[b]);
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const uint32_t byte = (words[j / 4] >> (8 * (j % 4))) & 0xffu;
      out[j] = d * float(int(byte & 0xfu) - 8);
      out[j + 16] = d * float(int(byte >> 4) - 8);
    }
  } else if constexpr (F == WFmt::Q8_0) {
    const int64_t b = row * chunks + chunk;
    const uint4* p = reinterpret_cast<const uint4*>(w.p0) + 2 * b;
    const float d = __half2float(reinterpret_cast<const __half*>(w.p1)[b]);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const uint4 v = p[i];
      const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int j = 0; j < 16; ++j) out[16 * i + j] = d * float(int8_t((words[j / 4] >> (8 * (j % 4))) & 0xffu));
    }
  } else if constexpr (F == WFmt::Q4_K) {
    // ref: ggml dequantize_row_q4_K; 8 sub-blocks of 32 per 256-value super-block.
    const uint8_t* blk = w.p0 + (row * (w.cols / 256) + chunk / 8) * 144;
    const int j = int(chunk % 8);
    const float d = __half2float(*reinterpret_cast<const __half*>(blk));
    const float dmin = __half2float(*reinterpret_cast<const __half*>(blk + 2));
    const uint8_t* sc = blk + 4;
    int s, m;
    if (j < 4) {
      s = sc[j] & 63;
      m = sc[j + 4] & 63;
    } else {
      s = (sc[j + 4] & 0xf) | ((sc[j - 4] >> 6) << 4);
      m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
    }
    const float ds = d * float(s), dm = dmin * float(m);
    const uint4* q = reinterpret_cast<const uint4*>(blk + 16 + 32 * (j / 2));
    const int shift = (j & 1) * 4;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const uint4 v = q[i];
      const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int t = 0; t < 16; ++t)
        out[16 * i + t] = ds * float((words[t / 4] >> (8 * (t % 4) + shift)) & 0xfu) - dm;
    }
  } else if constexpr (F == WFmt::Q6_K) {
    const Q6kChunk q = q6k_chunk(w, row, chunk);
    const float d = __half2float(*q.d);
    const float d0 = d * float(q.sc[0]), d1 = d * float(q.sc[1]);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const uint4 lv = q.l(i), hv = q.h(i);
      const uint32_t lw[4] = {lv.x, lv.y, lv.z, lv.w}, hw[4] = {hv.x, hv.y, hv.z, hv.w};
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        const uint32_t codes = q6k_word(lw[t], hw[t], q.lo_shift, q.hi_shift);
#pragma unroll
        for (int b = 0; b < 4; ++b) out[16 * i + 4 * t + b] = (i == 0 ? d0 : d1) * float(int8_t(codes >> (8 * b)));
      }
    }
  } else if constexpr (F == WFmt::NF4) {
    const int64_t e = row * w.cols + chunk * 32, b = e / w.nf4_block;  // 32 values never straddle blocks
    const uint4 v = *reinterpret_cast<const uint4*>(w.p0 + e / 2);
    const float a = w.p2 ? nf4_absmax(w.levels[16 + w.p1[b]], reinterpret_cast<const float*>(w.p2)[b / w.nf4_nested],
                                      w.levels[16 + 256])
                         : reinterpret_cast<const float*>(w.p1)[b];
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const uint32_t byte = (words[j / 4] >> (8 * (j % 4))) & 0xffu;
      out[2 * j] = w.levels[byte >> 4] * a;
      out[2 * j + 1] = w.levels[byte & 0xf] * a;
    }
  }
}

// Values 8 part .. 8 part + 7 of a chunk (a quarter, for kernels that give a chunk four
// threads: the bf16 dequantization, the embedding). Q4_0 and Q8_0 decode only those 8 values,
// converting codes with a float add on the bits (2^23 + code, exact) instead of int-to-float
// conversions, which run at a quarter of the rate (they made the bf16 dequantization
// compute-bound: a third of 27B prefill); the values are the same, d * code in f32. Other
// formats decode the chunk (its loads hit L1) and keep their quarter.
template <WFmt F>
__device__ __forceinline__ void chunk_quarter(const WeightView& w, int64_t row, int64_t chunk, int part, float (&q)[8]) {
  if constexpr (F == WFmt::Q4_0 || F == WFmt::Q8_0) {
    const int64_t b = row * (w.cols / 32) + chunk;
    const float d = __half2float(reinterpret_cast<const __half*>(w.p1)[b]);
    uint2 v;
    uint32_t mask, offset;
    if constexpr (F == WFmt::Q4_0) {
      // values 8p..8p+7: low nibbles of bytes 0-7 (p = 0) or 8-15 (p = 1), high ones for p = 2, 3
      v = reinterpret_cast<const uint2*>(w.p0 + b * 16)[part & 1];
      const int shift = (part >> 1) * 4;
      v.x >>= shift;
      v.y >>= shift;
      mask = 0x0f0f0f0fu;
      offset = 8;
    } else {
      v = reinterpret_cast<const uint2*>(w.p0 + b * 32)[part];
      v.x ^= 0x80808080u;  // int8 -> excess-128
      v.y ^= 0x80808080u;
      mask = 0xffffffffu;
      offset = 128;
    }
    const uint32_t words[2] = {v.x & mask, v.y & mask};
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const uint32_t code = (words[i / 4] >> (8 * (i % 4))) & 0xffu;
      q[i] = d * (__uint_as_float(0x4b000000u | code) - (8388608.0f + float(offset)));
    }
  } else {
    float v[32];
    load_chunk<F>(w, row, chunk, v);
#pragma unroll
    for (int p = 0; p < 4; ++p) {  // static indices keep v in registers
      if (p != part) continue;
#pragma unroll
      for (int i = 0; i < 8; ++i) q[i] = v[8 * p + i];
    }
  }
}

// 32 values of x as int8 codes packed four to a word (scale amax / 127, rounded half away
// from zero, as ggml's Q8_0), the scale and the codes' sum.
__device__ __forceinline__ void quantize_chunk(const float* x, int (&xq)[8], float& d, int& sum) {
  const float4* p = reinterpret_cast<const float4*>(x);
  float v[32], amax = 0.0f;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float4 f = p[i];
    v[4 * i] = f.x, v[4 * i + 1] = f.y, v[4 * i + 2] = f.z, v[4 * i + 3] = f.w;
    amax = fmaxf(amax, fmaxf(fmaxf(fabsf(f.x), fabsf(f.y)), fmaxf(fabsf(f.z), fabsf(f.w))));
  }
  d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  sum = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    int packed = 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int q = int(roundf(v[4 * i + j] * id));
      sum += q;
      packed |= (q & 0xff) << (8 * j);
    }
    xq[i] = packed;
  }
}

// The integer dot product of one chunk: weight codes against x's int8 codes (xsum for Q4_0's
// offset of 8: byte j holds value j in its low nibble and value j + 16 in its high one).
template <WFmt F>
__device__ __forceinline__ int dot_chunk(const uint32_t* wq, const int (&xq)[8], int xsum) {
  int lo = 0, hi = 0;  // two chains of dependent dp4a, not one
  if constexpr (F == WFmt::Q4_0) {
    // The high nibbles in place (16 times their value, as unsigned bytes against x's signed
    // ones): every term a multiple of 16, so the sum shifts back exactly, one shift a chunk
    // instead of one a word.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      lo = __dp4a(int(wq[i] & 0x0f0f0f0fu), xq[i], lo);
      hi = dp4a_unsigned(wq[i] & 0xf0f0f0f0u, xq[i + 4], hi);
    }
    return lo + (hi >> 4) - 8 * xsum;
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      lo = __dp4a(int(wq[i]), xq[i], lo);
      hi = __dp4a(int(wq[i + 4]), xq[i + 4], hi);
    }
    return lo + hi;
  }
}

// ref: torch gelu(approximate="tanh")
__device__ __forceinline__ float gelu_tanh(float g) {
  return 0.5f * g * (1.0f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
}

}  // namespace unicorn::cuda
