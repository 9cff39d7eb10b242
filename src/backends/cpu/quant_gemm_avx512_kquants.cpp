// AVX-512 VNNI kernels for the K formats (Q4_K, Q6_K) against q8_K-style activations (one
// scale per 256 values, block sums in QuantActs::bsums). Callers check avx512_vnni_available().
//
// Per super-block, the weights are unpacked to unsigned bytes in whole zmm registers,
// vpmaddubsw multiplies them with the activation bytes into int16 pairs, and vpdpwssd
// multiplies those by the sub-block scales (int16 lanes) and accumulates int32, so each
// super-block costs one int->f32 conversion and one FMA per (weight row, activation row).
// The weights' offsets (Q4_K's mins, Q6_K's -32) are applied through the activation block sums.
#include "backends/cpu/quant_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <cstring>

#include "core/quant/ggml_blocks.h"

#define UNICORN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers initialise "undefined" vectors from themselves (_mm512_undefined_*),
// which its own -Wuninitialized reports inside every inlined intrinsic.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace unicorn::cpu {

namespace {

using quant::BlockQ4_K;
using quant::BlockQ6_K;

UNICORN_AVX512 inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

// Q4_K's 12 scale bytes -> 8 scales (bytes 0-7) and 8 mins (bytes 8-15), as get_scale_min_k4.
UNICORN_AVX512 inline __m128i q4k_scales_mins(const uint8_t* s) {
  constexpr uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
  uint32_t u[4];
  std::memcpy(u, s, 12);
  u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
  const uint32_t mins_lo = u[1] & kmask1;
  u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
  u[2] = mins_lo;
  u[0] &= kmask1;
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));
}

// Word indices: two int16 values, each repeated over 16 lanes.
UNICORN_AVX512 inline __m512i word_pairs(short lo, short hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(lo)), _mm256_set1_epi16(hi), 1);
}

// Q4_K. Nibbles of qs[0..63] unpack (low, then high) to values 0-31 | 64-95 and 32-63 | 96-127:
// the activation order of QuantActs, so each zmm meets one activation zmm; its int16 pair
// lanes 0-15 belong to one sub-block and 16-31 to another.
template <int R, int C>
UNICORN_AVX512 void tile_q4k(const uint8_t* w, int64_t wrb, const QuantActs& a, int64_t c0, float* y, int64_t ldy) {
  const int64_t nsb = a.blocks;
  const __m512i nib = _mm512_set1_epi8(0x0F);
  const __m512i i02 = word_pairs(0, 2), i13 = word_pairs(1, 3), i46 = word_pairs(4, 6), i57 = word_pairs(5, 7);
  const __m512i imin = _mm512_setr_epi64(0x000b000a00090008LL, 0x000f000e000d000cLL, 0x000b000a00090008LL,
                                         0x000f000e000d000cLL, 0x000b000a00090008LL, 0x000f000e000d000cLL,
                                         0x000b000a00090008LL, 0x000f000e000d000cLL);
  __m512 acc[R][C], macc[R];
  for (int r = 0; r < R; ++r) {
    macc[r] = _mm512_setzero_ps();
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  for (int64_t sb = 0; sb < nsb; ++sb) {
    float da[C];
    const int8_t* aq[C];
    __m512 da4 = _mm512_setzero_ps();   // lanes 4c..4c+3: activation row c's scale
    __m512i bs4 = _mm512_setzero_si512();  // 128-bit lane c: activation row c's 8 block sums
    for (int c = 0; c < C; ++c) {
      da[c] = a.d[(c0 + c) * nsb + sb];
      aq[c] = a.qs + (c0 + c) * a.row_qs + sb * 256;
      da4 = _mm512_mask_mov_ps(da4, __mmask16(0xF << (4 * c)), _mm512_set1_ps(da[c]));
      const __m512i bs = _mm512_broadcast_i32x4(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.bsums + ((c0 + c) * nsb + sb) * 16)));
      bs4 = _mm512_mask_mov_epi32(bs4, __mmask16(0xF << (4 * c)), bs);
    }
    for (int r = 0; r < R; ++r) {
      const BlockQ4_K& blk = reinterpret_cast<const BlockQ4_K*>(w + r * wrb)[sb];
      const __m512i sm = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(q4k_scales_mins(blk.scales)));
      const float d = half_to_float(blk.d), dmin = half_to_float(blk.dmin);
      // Mins: sum_j m_j * bsum_j for the C activation rows at once.
      const __m512i mins = _mm512_madd_epi16(_mm512_permutexvar_epi16(imin, sm), bs4);
      macc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mins), _mm512_mul_ps(da4, _mm512_set1_ps(-dmin)), macc[r]);
      const __m512i s02 = _mm512_permutexvar_epi16(i02, sm), s13 = _mm512_permutexvar_epi16(i13, sm),
                    s46 = _mm512_permutexvar_epi16(i46, sm), s57 = _mm512_permutexvar_epi16(i57, sm);
      const __m512i z0 = _mm512_loadu_si512(blk.qs), z1 = _mm512_loadu_si512(blk.qs + 64);
      const __m512i v0 = _mm512_and_si512(z0, nib), v1 = _mm512_and_si512(_mm512_srli_epi16(z0, 4), nib);
      const __m512i v2 = _mm512_and_si512(z1, nib), v3 = _mm512_and_si512(_mm512_srli_epi16(z1, 4), nib);
      for (int c = 0; c < C; ++c) {
        __m512i s = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(v0, _mm512_load_si512(aq[c])), s02);
        s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(v1, _mm512_load_si512(aq[c] + 64)), s13);
        s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(v2, _mm512_load_si512(aq[c] + 128)), s46);
        s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(v3, _mm512_load_si512(aq[c] + 192)), s57);
        acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(d * da[c]), acc[r][c]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(64) float m[16];
    _mm512_store_ps(m, macc[r]);
    for (int c = 0; c < C; ++c)
      y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]) + ((m[4 * c] + m[4 * c + 1]) + (m[4 * c + 2] + m[4 * c + 3]));
  }
}

// Q6_K. Per 128 values: ql's low nibbles with qh bits 0-1 / 2-3 are values 0-63, the high
// nibbles with bits 4-5 / 6-7 values 64-127, in order. The -32 offset is folded in as
// -32 * sum_j sc_j * bsum_j.
template <int R, int C>
UNICORN_AVX512 void tile_q6k(const uint8_t* w, int64_t wrb, const QuantActs& a, int64_t c0, float* y, int64_t ldy) {
  const int64_t nsb = a.blocks;
  const __m512i nib = _mm512_set1_epi8(0x0F), hbits = _mm512_set1_epi8(0x30);
  const __m512i shl = word_pairs(4, 2), shr = word_pairs(0, 2);
  // Sub-block scale indices: 8 int16 lanes per 16 values.
  const __m512i idx[4] = {
      _mm512_setr_epi64(0, 0, 0x0001000100010001LL, 0x0001000100010001LL, 0x0002000200020002LL, 0x0002000200020002LL,
                        0x0003000300030003LL, 0x0003000300030003LL),
      _mm512_setr_epi64(0x0004000400040004LL, 0x0004000400040004LL, 0x0005000500050005LL, 0x0005000500050005LL,
                        0x0006000600060006LL, 0x0006000600060006LL, 0x0007000700070007LL, 0x0007000700070007LL),
      _mm512_setr_epi64(0x0008000800080008LL, 0x0008000800080008LL, 0x0009000900090009LL, 0x0009000900090009LL,
                        0x000a000a000a000aLL, 0x000a000a000a000aLL, 0x000b000b000b000bLL, 0x000b000b000b000bLL),
      _mm512_setr_epi64(0x000c000c000c000cLL, 0x000c000c000c000cLL, 0x000d000d000d000dLL, 0x000d000d000d000dLL,
                        0x000e000e000e000eLL, 0x000e000e000e000eLL, 0x000f000f000f000fLL, 0x000f000f000f000fLL)};
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    float da[C];
    const int8_t* aq[C];
    const int16_t* bs[C];
    for (int c = 0; c < C; ++c) {
      da[c] = a.d[(c0 + c) * nsb + sb];
      aq[c] = a.qs + (c0 + c) * a.row_qs + sb * 256;
      bs[c] = a.bsums + ((c0 + c) * nsb + sb) * 16;
    }
    for (int r = 0; r < R; ++r) {
      const BlockQ6_K& blk = reinterpret_cast<const BlockQ6_K*>(w + r * wrb)[sb];
      const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales)));
      const __m512i scw = _mm512_castsi256_si512(sc16);
      const __m512i neg32 = _mm512_zextsi256_si512(_mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(sc16, 5)));
      const float d = half_to_float(blk.d);
      __m512i s[C];
      for (int c = 0; c < C; ++c)
        s[c] = _mm512_dpwssd_epi32(_mm512_setzero_si512(), neg32,
                                   _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bs[c]))));
      for (int h = 0; h < 2; ++h) {
        const __m512i ql = _mm512_loadu_si512(blk.ql + 64 * h);
        const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * h)));
        // (low nibble) | (2 high bits at bits 4-5): ternary logic 0xEA is (A & B) | C.
        const __m512i v0 = _mm512_ternarylogic_epi32(ql, nib, _mm512_and_si512(_mm512_sllv_epi16(qh, shl), hbits), 0xEA);
        const __m512i v1 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(ql, 4), nib,
                                                     _mm512_and_si512(_mm512_srlv_epi16(qh, shr), hbits), 0xEA);
        const __m512i sc0 = _mm512_permutexvar_epi16(idx[2 * h], scw), sc1 = _mm512_permutexvar_epi16(idx[2 * h + 1], scw);
        for (int c = 0; c < C; ++c) {
          s[c] = _mm512_dpwssd_epi32(s[c], _mm512_maddubs_epi16(v0, _mm512_load_si512(aq[c] + 128 * h)), sc0);
          s[c] = _mm512_dpwssd_epi32(s[c], _mm512_maddubs_epi16(v1, _mm512_load_si512(aq[c] + 128 * h + 64)), sc1);
        }
      }
      for (int c = 0; c < C; ++c)
        acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[c]), _mm512_set1_ps(d * da[c]), acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]);
}

template <bool Q6, int R>
UNICORN_AVX512 inline void tile_c(int nc, const uint8_t* w, int64_t wrb, const QuantActs& a, int64_t c0, float* y,
                                  int64_t ldy) {
  switch (nc) {
    case 1: return Q6 ? tile_q6k<R, 1>(w, wrb, a, c0, y, ldy) : tile_q4k<R, 1>(w, wrb, a, c0, y, ldy);
    case 2: return Q6 ? tile_q6k<R, 2>(w, wrb, a, c0, y, ldy) : tile_q4k<R, 2>(w, wrb, a, c0, y, ldy);
    case 3: return Q6 ? tile_q6k<R, 3>(w, wrb, a, c0, y, ldy) : tile_q4k<R, 3>(w, wrb, a, c0, y, ldy);
    default: return Q6 ? tile_q6k<R, 4>(w, wrb, a, c0, y, ldy) : tile_q4k<R, 4>(w, wrb, a, c0, y, ldy);
  }
}

template <bool Q6>
UNICORN_AVX512 void gemm(const uint8_t* w, int64_t wrb, int64_t nw, const QuantActs& a, float* y, int64_t ldy) {
  for (int64_t c0 = 0; c0 < a.rows; c0 += 4) {
    const int nc = int(a.rows - c0 < 4 ? a.rows - c0 : 4);
    int64_t j = 0;
    for (; j + 4 <= nw; j += 4) tile_c<Q6, 4>(nc, w + j * wrb, wrb, a, c0, y + c0 * ldy + j, ldy);
    for (; j < nw; ++j) tile_c<Q6, 1>(nc, w + j * wrb, wrb, a, c0, y + c0 * ldy + j, ldy);
  }
}

}  // namespace

void quant_gemm_avx512_q4_k(const uint8_t* w, int64_t wrb, int64_t nw, const QuantActs& a, float* y, int64_t ldy) {
  gemm<false>(w, wrb, nw, a, y, ldy);
}
void quant_gemm_avx512_q6_k(const uint8_t* w, int64_t wrb, int64_t nw, const QuantActs& a, float* y, int64_t ldy) {
  gemm<true>(w, wrb, nw, a, y, ldy);
}

}  // namespace unicorn::cpu

#else

#include "core/error.h"

namespace unicorn::cpu {
void quant_gemm_avx512_q4_k(const uint8_t*, int64_t, int64_t, const QuantActs&, float*, int64_t) {
  fail("internal: AVX-512 kernels are not built for this CPU");
}
void quant_gemm_avx512_q6_k(const uint8_t*, int64_t, int64_t, const QuantActs&, float*, int64_t) {
  fail("internal: AVX-512 kernels are not built for this CPU");
}
}  // namespace unicorn::cpu

#endif
