// AVX-512 VNNI kernels for Q4_0 and Q8_0 weights, and the activation quantizer, compiled
// for that target by function attributes (Highway 1.0.3 has no VNNI ops); callers check
// avx512_vnni_available() first. Nothing here is inline in a header, so no AVX-512 code can
// leak into functions the rest of the program calls.
//
// Scheme (llama.cpp's, on pairs of blocks = 64 values = one zmm): the weights are unpacked to
// unsigned bytes (Q4_0: q in 0..15; Q8_0: q + 128 via xor 0x80), vpdpbusd multiplies them with
// the signed activation bytes into 16 int32 lanes (8 per block) starting from the activation's
// zero-point correction (QuantActs::lanes), and each block's sum is scaled by d_w * d_a in f32.
// Tiles of 4 weight rows x 4 activation rows keep 16 f32 accumulators in registers, so each
// unpacked weight vector serves 4 activation rows.
#include "backends/cpu/quant_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <cstring>

#include "core/error.h"
#include "core/quant/ggml_blocks.h"

#define UNICORN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers initialise "undefined" vectors from themselves (_mm512_undefined_*),
// which its own -Wuninitialized reports inside every inlined intrinsic.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace unicorn::cpu {

bool avx512_vnni_available() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                         __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("f16c") &&
                         __builtin_cpu_supports("fma");
  return ok;
}

namespace {

constexpr int64_t kChunkPairs = 64;  // weight scales are converted 128 blocks at a time

struct Q4_0Format {
  static constexpr int kBlockBytes = 18;
  // Blocks b and b + 1 as 64 unsigned bytes in value order: lanes of 128 bits hold
  // [b low nibbles, b high nibbles, b+1 low, b+1 high].
  UNICORN_AVX512 static inline __m512i pair(const uint8_t* b) {
    const __m512i x0 = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2)));
    const __m512i x1 = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 20)));
    const __m512i z = _mm512_mask_blend_epi64(0xF0, x0, x1);
    return _mm512_and_si512(_mm512_srlv_epi64(z, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)),
                            _mm512_set1_epi8(0x0F));
  }
  // The last block of an odd count alone (the upper half meets zero activations).
  UNICORN_AVX512 static inline __m512i single(const uint8_t* b) {
    const __m512i x0 = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2)));
    return _mm512_maskz_and_epi64(0x0F, _mm512_srlv_epi64(x0, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)),
                                  _mm512_set1_epi8(0x0F));
  }
};

struct Q8_0Format {
  static constexpr int kBlockBytes = 34;
  UNICORN_AVX512 static inline __m512i pair(const uint8_t* b) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 36));
    return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8(char(0x80)));
  }
  UNICORN_AVX512 static inline __m512i single(const uint8_t* b) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
    return _mm512_xor_si512(_mm512_zextsi256_si512(lo), _mm512_set1_epi8(char(0x80)));
  }
};

// The f16 scales of blocks [0, n) of a row as f32 into out[0 .. n rounded up to 16), zeros
// past n. Each scale is the first 2 bytes of its block: gathered 16 at a time.
template <class F>
UNICORN_AVX512 inline void row_scales(const uint8_t* row, int64_t n, float* out) {
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32(F::kBlockBytes));
  for (int64_t b = 0; b < n; b += 16) {
    const __mmask16 m = n - b >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - b)) - 1);
    const __m512i g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, row + b * F::kBlockBytes, 1);
    _mm512_store_ps(out + b, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g)));
  }
}

UNICORN_AVX512 inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

// y[c * ldy + r] for R weight rows x C activation rows (from c0).
template <class F, int R, int C>
UNICORN_AVX512 void tile(const uint8_t* w, int64_t wrb, const QuantActs& a, int64_t c0, float* y, int64_t ldy) {
  const int64_t npairs = a.blocks / 2, nb = a.k / 32;
  alignas(64) float dw[R][2 * kChunkPairs];
  const __m512i pair_idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  const int8_t* aq[C];
  const uint32_t* al[C];
  for (int c = 0; c < C; ++c) {
    aq[c] = a.qs + (c0 + c) * a.row_qs;
    al[c] = a.lanes + (c0 + c) * npairs * 32;
  }
  for (int64_t p0 = 0; p0 < npairs; p0 += kChunkPairs) {
    const int64_t p1 = p0 + kChunkPairs < npairs ? p0 + kChunkPairs : npairs;
    const int64_t real = (2 * p1 < nb ? 2 * p1 : nb) - 2 * p0;
    for (int r = 0; r < R; ++r) row_scales<F>(w + r * wrb + 2 * p0 * F::kBlockBytes, real, dw[r]);
    for (int64_t p = p0; p < p1; ++p) {
      const bool single = 2 * p + 1 == nb;
      for (int r = 0; r < R; ++r) {
        const uint8_t* blk = w + r * wrb + 2 * p * F::kBlockBytes;
        const __m512i wv = single ? F::single(blk) : F::pair(blk);
        double two;
        std::memcpy(&two, &dw[r][2 * (p - p0)], 8);
        const __m512 dwv = _mm512_permutexvar_ps(pair_idx, _mm512_castpd_ps(_mm512_set1_pd(two)));
        for (int c = 0; c < C; ++c) {
          const __m512i bias = _mm512_load_si512(al[c] + p * 32);
          const __m512 da = _mm512_load_ps(reinterpret_cast<const float*>(al[c] + p * 32 + 16));
          const __m512i dot = _mm512_dpbusd_epi32(bias, wv, _mm512_load_si512(aq[c] + p * 64));
          acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dwv, da), acc[r][c]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) y[c * ldy + r] = hsum(acc[r][c]);
}

template <class F, int R>
UNICORN_AVX512 inline void tile_c(int nc, const uint8_t* w, int64_t wrb, const QuantActs& a, int64_t c0, float* y,
                                  int64_t ldy) {
  switch (nc) {
    case 1: return tile<F, R, 1>(w, wrb, a, c0, y, ldy);
    case 2: return tile<F, R, 2>(w, wrb, a, c0, y, ldy);
    case 3: return tile<F, R, 3>(w, wrb, a, c0, y, ldy);
    default: return tile<F, R, 4>(w, wrb, a, c0, y, ldy);
  }
}

template <class F>
UNICORN_AVX512 void gemm(const uint8_t* w, int64_t wrb, int64_t nw, const QuantActs& a, float* y, int64_t ldy) {
  for (int64_t c0 = 0; c0 < a.rows; c0 += 4) {
    const int nc = int(a.rows - c0 < 4 ? a.rows - c0 : 4);
    int64_t j = 0;
    for (; j + 4 <= nw; j += 4) tile_c<F, 4>(nc, w + j * wrb, wrb, a, c0, y + c0 * ldy + j, ldy);
    for (; j < nw; ++j) tile_c<F, 1>(nc, w + j * wrb, wrb, a, c0, y + c0 * ldy + j, ldy);
  }
}

// --- activation quantization -----------------------------------------------------------

UNICORN_AVX512 inline float abs_max(const float* x, int n) {  // n: a multiple of 16
  __m512 m = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
  return _mm512_reduce_max_ps(m);
}

// 16 values to int8 at q: round(x * id), ties to even (as quantize_acts_portable). Returns them as int32.
UNICORN_AVX512 inline __m512i round16(const float* x, __m512 id, int8_t* q) {
  const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), id));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(v));
  return v;
}

UNICORN_AVX512 void quantize_row32(const float* x, int8_t* q, float* d, int32_t* bias, uint32_t* lanes,
                                   const QuantActs& a) {
  const int32_t zp = a.weight == DType::Q4_0 ? -8 : -128;
  const int64_t nb = a.k / 32;
  for (int64_t b = 0; b < a.blocks; ++b) {
    if (b >= nb) {  // padding block of an odd count
      d[b] = 0.0f;
      bias[b] = 0;
      std::memset(q + b * 32, 0, 32);
      continue;
    }
    const float amax = abs_max(x + b * 32, 32);
    d[b] = amax / 127.0f;
    const __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    const __m512i s = _mm512_add_epi32(round16(x + b * 32, id, q + b * 32), round16(x + b * 32 + 16, id, q + b * 32 + 16));
    bias[b] = zp * _mm512_reduce_add_epi32(s);
  }
  for (int64_t p = 0; p < a.blocks / 2; ++p) {
    const __m512i bv = _mm512_maskz_permutexvar_epi32(
        0x0101, _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
        _mm512_castsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bias + 2 * p))));
    const __m512 dv = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                                            _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd(
                                                reinterpret_cast<const double*>(d + 2 * p)))));
    _mm512_store_si512(lanes + p * 32, bv);
    _mm512_store_ps(reinterpret_cast<float*>(lanes + p * 32 + 16), dv);
  }
}

UNICORN_AVX512 void quantize_row256(const float* x, int8_t* q, float* d, int16_t* bsums, float* bsums_f, int32_t* bias,
                                    DType weight, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b, x += 256, q += 256, bsums += 16) {
    const float amax = abs_max(x, 256);
    d[b] = amax / 127.0f;
    const __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    if (weight == DType::Q6_K) {
      for (int j = 0; j < 16; ++j) {
        const int32_t sum = _mm512_reduce_add_epi32(round16(x + 16 * j, id, q + 16 * j));
        bsums[j] = int16_t(sum);
        bias[b * 16 + j] = -32 * sum;
      }
    } else {  // Q4_K: per 128 values, the order 0-31, 64-95, 32-63, 96-127; sums per 32
      static constexpr int kSlot[4] = {0, 2, 1, 3};
      for (int j = 0; j < 8; ++j) {
        int8_t* o = q + 128 * (j / 4) + 32 * kSlot[j % 4];
        const __m512i s = _mm512_add_epi32(round16(x + 32 * j, id, o), round16(x + 32 * j + 16, id, o + 16));
        bsums[j] = int16_t(_mm512_reduce_add_epi32(s));
      }
      for (int j = 8; j < 16; ++j) bsums[j] = 0;
      for (int j = 0; j < 8; ++j) bsums_f[b * 8 + j] = float(bsums[j]);
    }
  }
}

}  // namespace

void quant_gemm_avx512_q4_0(const uint8_t* w, int64_t wrb, int64_t nw, const QuantActs& a, float* y, int64_t ldy) {
  gemm<Q4_0Format>(w, wrb, nw, a, y, ldy);
}
void quant_gemm_avx512_q8_0(const uint8_t* w, int64_t wrb, int64_t nw, const QuantActs& a, float* y, int64_t ldy) {
  gemm<Q8_0Format>(w, wrb, nw, a, y, ldy);
}

void quantize_acts_avx512(const float* x, int64_t r0, int64_t r1, QuantActs& a) {
  const bool k_format = act_block_values(a.weight) == 256;
  for (int64_t r = r0; r < r1; ++r) {
    if (k_format) {
      quantize_row256(x + r * a.k, a.qs + r * a.row_qs, a.d + r * a.blocks, a.bsums + r * a.blocks * 16,
                      a.bsums_f ? a.bsums_f + r * a.blocks * 8 : nullptr, a.bias ? a.bias + r * a.blocks * 16 : nullptr,
                      a.weight, a.blocks);
    } else {
      quantize_row32(x + r * a.k, a.qs + r * a.row_qs, a.d + r * a.blocks, a.bias + r * a.blocks,
                     a.lanes + r * (a.blocks / 2) * 32, a);
    }
  }
}

}  // namespace unicorn::cpu

#else  // not x86-64: the portable kernels only

#include "core/error.h"

namespace unicorn::cpu {
bool avx512_vnni_available() { return false; }
void quant_gemm_avx512_q4_0(const uint8_t*, int64_t, int64_t, const QuantActs&, float*, int64_t) {
  fail("internal: AVX-512 kernels are not built for this CPU");
}
void quant_gemm_avx512_q8_0(const uint8_t*, int64_t, int64_t, const QuantActs&, float*, int64_t) {
  fail("internal: AVX-512 kernels are not built for this CPU");
}
void quantize_acts_avx512(const float*, int64_t, int64_t, QuantActs&) {
  fail("internal: AVX-512 kernels are not built for this CPU");
}
}  // namespace unicorn::cpu

#endif
