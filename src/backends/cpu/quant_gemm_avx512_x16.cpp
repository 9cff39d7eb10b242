// AVX-512 VNNI kernels for interleaved Q4_0 / Q8_0 / Q4_K / Q6_K weights (core/quant/interleaved.h):
// the 16 int32 lanes of a zmm are 16 weight rows. Per block of 32 values, 8 vpdpbusd (each
// 4 weight bytes per lane against 4 activation bytes broadcast to every lane) give 16 block
// dot products at once; one f16 load gives the 16 rows' scales. So the integer work is all
// vpdpbusd, and the f32 work (convert, scale, accumulate) is shared by 16 rows, which makes
// decode (one activation row) memory-bound and prefill close to the vpdpbusd rate.
// Callers check avx512_vnni_available().
#include "backends/cpu/quant_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <cstring>

#define UNICORN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers initialise "undefined" vectors from themselves (_mm512_undefined_*),
// which its own -Wuninitialized reports inside every inlined intrinsic.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace unicorn::cpu {

namespace {

UNICORN_AVX512 inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// y[c * ldy + i] for the 16 rows i of one group and C activation rows from c0.
template <bool Q8, int C>
UNICORN_AVX512 void group_tile(const uint8_t* g, int64_t nb, const QuantActs& a, int64_t c0, float* y, int64_t ldy) {
  constexpr int64_t kGroupBlockBytes = 16 * (Q8 ? 34 : 18);
  const __m512i low4 = _mm512_set1_epi8(0x0F), flip = _mm512_set1_epi8(char(0x80));
  __m512 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  const int8_t* aq[C];
  const float* ad[C];
  const int32_t* ab[C];
  for (int c = 0; c < C; ++c) {
    aq[c] = a.qs + (c0 + c) * a.row_qs;
    ad[c] = a.d + (c0 + c) * a.blocks;
    ab[c] = a.bias + (c0 + c) * a.blocks;
  }
  for (int64_t b = 0; b < nb; ++b, g += kGroupBlockBytes) {
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g)));
    // w[t]: lane i holds row i's quants 4t .. 4t + 3 as unsigned bytes (Q8_0: q + 128).
    __m512i w[8];
    if constexpr (Q8) {
      for (int t = 0; t < 8; ++t) w[t] = _mm512_xor_si512(_mm512_loadu_si512(g + 32 + 64 * t), flip);
    } else {
      for (int j = 0; j < 4; ++j) {
        const __m512i c = _mm512_loadu_si512(g + 32 + 64 * j);
        w[j] = _mm512_and_si512(c, low4);
        w[j + 4] = _mm512_and_si512(_mm512_srli_epi16(c, 4), low4);
      }
    }
    for (int c = 0; c < C; ++c) {
      const int8_t* q = aq[c] + b * 32;
      // Two chains halve the vpdpbusd latency; the first starts from the zero-point correction.
      __m512i s0 = _mm512_set1_epi32(ab[c][b]), s1 = _mm512_setzero_si512();
      s0 = _mm512_dpbusd_epi32(s0, w[0], bcast4(q));
      s1 = _mm512_dpbusd_epi32(s1, w[1], bcast4(q + 4));
      s0 = _mm512_dpbusd_epi32(s0, w[2], bcast4(q + 8));
      s1 = _mm512_dpbusd_epi32(s1, w[3], bcast4(q + 12));
      s0 = _mm512_dpbusd_epi32(s0, w[4], bcast4(q + 16));
      s1 = _mm512_dpbusd_epi32(s1, w[5], bcast4(q + 20));
      s0 = _mm512_dpbusd_epi32(s0, w[6], bcast4(q + 24));
      s1 = _mm512_dpbusd_epi32(s1, w[7], bcast4(q + 28));
      acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_mul_ps(dw, _mm512_set1_ps(ad[c][b])),
                               acc[c]);
    }
  }
  for (int c = 0; c < C; ++c) _mm512_storeu_ps(y + (c0 + c) * ldy, acc[c]);
}

// Decode (one activation row): NG groups at once, block by block, so each thread streams NG
// regions of memory in parallel (more misses in flight than one stream gets from the
// prefetchers) and the activation's broadcasts serve NG groups.
template <bool Q8, int NG>
UNICORN_AVX512 void groups_row(const uint8_t* g, int64_t nb, const QuantActs& a, int64_t c, float* y) {
  constexpr int64_t kGroupBlockBytes = 16 * (Q8 ? 34 : 18);
  constexpr int64_t kAhead = Q8 ? 2 : 4;  // blocks, ~1-1.2 KB: measured best
  constexpr int64_t kPrefetch = kAhead * kGroupBlockBytes;
  const int64_t group_bytes = nb * kGroupBlockBytes;
  const __m512i low4 = _mm512_set1_epi8(0x0F), flip = _mm512_set1_epi8(char(0x80));
  const int8_t* q = a.qs + c * a.row_qs;
  const float* ad = a.d + c * a.blocks;
  const int32_t* ab = a.bias + c * a.blocks;
  __m512 acc[NG];
  for (int i = 0; i < NG; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, q += 32) {
    __m512i x[8];
    for (int t = 0; t < 8; ++t) x[t] = bcast4(q + 4 * t);
    const __m512i bias = _mm512_set1_epi32(ab[b]);
    const __m512 da = _mm512_set1_ps(ad[b]);
    for (int i = 0; i < NG; ++i) {
      const uint8_t* p = g + i * group_bytes + b * kGroupBlockBytes;
      // Software prefetch a few blocks ahead: the hardware prefetchers restart at every page
      // and every op, and decode ops are short (Q4_0 decode +10% on the development VM).
      // Near the end of the groups it runs on into the next NG groups (the caller's next pass
      // over consecutive memory), so a thread walking a share never waits for a cold start.
      const uint8_t* pf = p + kPrefetch + (b + kAhead >= nb ? (NG - 1) * group_bytes : 0);
      for (int64_t o = 0; o < kGroupBlockBytes; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(pf + o), _MM_HINT_T0);
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
      __m512i s0 = bias, s1 = _mm512_setzero_si512();
      if constexpr (Q8) {
        for (int t = 0; t < 8; t += 2) {
          s0 = _mm512_dpbusd_epi32(s0, _mm512_xor_si512(_mm512_loadu_si512(p + 32 + 64 * t), flip), x[t]);
          s1 = _mm512_dpbusd_epi32(s1, _mm512_xor_si512(_mm512_loadu_si512(p + 96 + 64 * t), flip), x[t + 1]);
        }
      } else {
        for (int j = 0; j < 4; ++j) {
          const __m512i v = _mm512_loadu_si512(p + 32 + 64 * j);
          s0 = _mm512_dpbusd_epi32(s0, _mm512_and_si512(v, low4), x[j]);
          s1 = _mm512_dpbusd_epi32(s1, _mm512_and_si512(_mm512_srli_epi16(v, 4), low4), x[j + 4]);
        }
      }
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_mul_ps(dw, da), acc[i]);
    }
  }
  for (int i = 0; i < NG; ++i) _mm512_storeu_ps(y + 16 * i, acc[i]);
}

template <bool Q8>
UNICORN_AVX512 void gemm_x16(const uint8_t* w, int64_t nb, int64_t n_groups, const QuantActs& a, float* y,
                             int64_t ldy) {
  constexpr int64_t kGroupBlockBytes = 16 * (Q8 ? 34 : 18);
  if (a.rows == 1) {
    int64_t g = 0;
    for (; g + 4 <= n_groups; g += 4) groups_row<Q8, 4>(w + g * nb * kGroupBlockBytes, nb, a, 0, y + 16 * g);
    for (; g < n_groups; ++g) groups_row<Q8, 1>(w + g * nb * kGroupBlockBytes, nb, a, 0, y + 16 * g);
    return;
  }
  // Activation rows 8 at a time: each unpacked weight block serves 8 rows.
  for (int64_t c0 = 0; c0 < a.rows; c0 += 8) {
    const int64_t nc = a.rows - c0 < 8 ? a.rows - c0 : 8;
    for (int64_t g = 0; g < n_groups; ++g) {
      const uint8_t* gp = w + g * nb * kGroupBlockBytes;
      float* yg = y + g * 16;
      switch (nc) {
        case 1: group_tile<Q8, 1>(gp, nb, a, c0, yg, ldy); break;
        case 2: group_tile<Q8, 2>(gp, nb, a, c0, yg, ldy); break;
        case 3: group_tile<Q8, 3>(gp, nb, a, c0, yg, ldy); break;
        case 4: group_tile<Q8, 4>(gp, nb, a, c0, yg, ldy); break;
        case 5: group_tile<Q8, 5>(gp, nb, a, c0, yg, ldy); break;
        case 6: group_tile<Q8, 6>(gp, nb, a, c0, yg, ldy); break;
        case 7: group_tile<Q8, 7>(gp, nb, a, c0, yg, ldy); break;
        default: group_tile<Q8, 8>(gp, nb, a, c0, yg, ldy); break;
      }
    }
  }
}

// Q4_K: per super-block, each sub-block j of 32 values is 8 vpdpbusd of unsigned nibbles
// with the activation; its int32 sums are scaled by d * sc_j (16 rows' scales decoded at once
// from the interleaved 12-byte fields, as get_scale_min_k4 does) and the mins enter as
// - dmin * m_j * (activation sum over the sub-block).
template <int C>
UNICORN_AVX512 void group_tile_q4k(const uint8_t* g, int64_t nsb, const QuantActs& a, int64_t c0, float* y,
                                   int64_t ldy) {
  constexpr int64_t kGroupBlockBytes = 16 * 144;
  static constexpr int kSlot[4] = {0, 2, 1, 3};  // where sub-block j's activations are (quant_acts.h)
  const __m512i low4 = _mm512_set1_epi8(0x0F), k3f = _mm512_set1_epi32(0x3f3f3f3f),
                k0f = _mm512_set1_epi32(0x0f0f0f0f), k03 = _mm512_set1_epi32(0x03030303), kff = _mm512_set1_epi32(0xFF);
  __m512 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb, g += kGroupBlockBytes) {
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g)));
    const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 32)));
    // The 12 scale bytes of each row as 3 dwords per lane -> scales 0-3, 4-7, mins 0-3, 4-7
    // (one byte each), as ggml's kmask arithmetic does.
    const __m512i u0 = _mm512_loadu_si512(g + 64), u1 = _mm512_loadu_si512(g + 128), u2 = _mm512_loadu_si512(g + 192);
    const __m512i sc[2] = {_mm512_and_si512(u0, k3f),
                           _mm512_or_si512(_mm512_and_si512(u2, k0f),
                                           _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u0, 6), k03), 4))};
    const __m512i mn[2] = {_mm512_and_si512(u1, k3f),
                           _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), k0f),
                                           _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u1, 6), k03), 4))};
    __m512 s[C];
    for (int c = 0; c < C; ++c) s[c] = _mm512_setzero_ps();
    for (int j = 0; j < 8; ++j) {
      const __m512 dsc = _mm512_mul_ps(
          d, _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(sc[j / 4], 8 * (j % 4)), kff)));
      const __m512 dmn = _mm512_mul_ps(
          dmin, _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(mn[j / 4], 8 * (j % 4)), kff)));
      __m512i w[8];
      for (int t = 0; t < 8; ++t) {
        const __m512i chunk = _mm512_loadu_si512(g + 256 + 64 * (8 * (j / 2) + t));
        w[t] = _mm512_and_si512(j % 2 ? _mm512_srli_epi16(chunk, 4) : chunk, low4);
      }
      const int64_t off = sb * 256 + 128 * (j / 4) + 32 * kSlot[j % 4];
      for (int c = 0; c < C; ++c) {
        const int8_t* q = a.qs + (c0 + c) * a.row_qs + off;
        __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
        for (int t = 0; t < 8; t += 2) {
          s0 = _mm512_dpbusd_epi32(s0, w[t], bcast4(q + 4 * t));
          s1 = _mm512_dpbusd_epi32(s1, w[t + 1], bcast4(q + 4 * t + 4));
        }
        s[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), dsc, s[c]);
        s[c] = _mm512_fnmadd_ps(dmn, _mm512_set1_ps(a.bsums_f[((c0 + c) * nsb + sb) * 8 + j]), s[c]);
      }
    }
    for (int c = 0; c < C; ++c) acc[c] = _mm512_fmadd_ps(s[c], _mm512_set1_ps(a.d[(c0 + c) * nsb + sb]), acc[c]);
  }
  for (int c = 0; c < C; ++c) _mm512_storeu_ps(y + (c0 + c) * ldy, acc[c]);
}

// Q6_K: per 32 values (half h, quarter s), 6-bit unsigned quants from a ql nibble and 2 qh
// bits; each sub-block of 16 is 4 vpdpbusd starting from -32 * (activation sum), so the
// offset of 32 costs nothing, then scaled by d * sc_j.
template <int C>
UNICORN_AVX512 void group_tile_q6k(const uint8_t* g, int64_t nsb, const QuantActs& a, int64_t c0, float* y,
                                   int64_t ldy) {
  constexpr int64_t kGroupBlockBytes = 16 * 210;
  constexpr int64_t kScales = 32, kQl = 32 + 256, kQh = 32 + 256 + 2048;  // interleaved.h
  const __m512i low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
  __m512 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb, g += kGroupBlockBytes) {
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g)));
    __m512 s[C];
    for (int c = 0; c < C; ++c) s[c] = _mm512_setzero_ps();
    for (int h = 0; h < 2; ++h) {
      for (int q = 0; q < 4; ++q) {
        // W[t], lane i: row i's values 128h + 32q + 4t .. + 3 as unsigned 6-bit numbers.
        __m512i w[8];
        for (int t = 0; t < 8; ++t) {
          const __m512i ql = _mm512_loadu_si512(g + kQl + 64 * (16 * h + 8 * (q & 1) + t));
          const __m512i qh = _mm512_loadu_si512(g + kQh + 64 * (8 * h + t));
          const __m512i lo = _mm512_and_si512(q >> 1 ? _mm512_srli_epi16(ql, 4) : ql, low4);
          // qh bits 2q, 2q + 1 to bits 4, 5.
          const __m512i hi = q == 0 ? _mm512_slli_epi16(qh, 4)
                             : q == 1 ? _mm512_slli_epi16(qh, 2)
                             : q == 2 ? qh
                                      : _mm512_srli_epi16(qh, 2);
          w[t] = _mm512_ternarylogic_epi32(lo, hi, bits45, 0xF8);  // lo | (hi & bits45)
        }
        const int j0 = 8 * h + 2 * q;  // sub-blocks j0 (t < 4) and j0 + 1 (t >= 4)
        const __m512 ds0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                                _mm_loadu_si128(reinterpret_cast<const __m128i*>(g + kScales + 16 * j0)))));
        const __m512 ds1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                                                reinterpret_cast<const __m128i*>(g + kScales + 16 * (j0 + 1))))));
        for (int c = 0; c < C; ++c) {
          const int8_t* x = a.qs + (c0 + c) * a.row_qs + sb * 256 + 128 * h + 32 * q;
          const int32_t* bias = a.bias + ((c0 + c) * nsb + sb) * 16 + j0;
          __m512i s0 = _mm512_set1_epi32(bias[0]), s1 = _mm512_set1_epi32(bias[1]);
          for (int t = 0; t < 4; ++t) {
            s0 = _mm512_dpbusd_epi32(s0, w[t], bcast4(x + 4 * t));
            s1 = _mm512_dpbusd_epi32(s1, w[t + 4], bcast4(x + 16 + 4 * t));
          }
          s[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), ds0, s[c]);
          s[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), ds1, s[c]);
        }
      }
    }
    for (int c = 0; c < C; ++c) acc[c] = _mm512_fmadd_ps(s[c], _mm512_set1_ps(a.d[(c0 + c) * nsb + sb]), acc[c]);
  }
  for (int c = 0; c < C; ++c) _mm512_storeu_ps(y + (c0 + c) * ldy, acc[c]);
}

template <bool Q6>
UNICORN_AVX512 void gemm_x16_k(const uint8_t* w, int64_t nsb, int64_t n_groups, const QuantActs& a, float* y,
                                 int64_t ldy) {
  constexpr int64_t kGroupBlockBytes = 16 * (Q6 ? 210 : 144);
  for (int64_t c0 = 0; c0 < a.rows; c0 += 8) {
    const int64_t nc = a.rows - c0 < 8 ? a.rows - c0 : 8;
    for (int64_t g = 0; g < n_groups; ++g) {
      const uint8_t* gp = w + g * nsb * kGroupBlockBytes;
      float* yg = y + g * 16;
      switch (nc) {
#define UNICORN_CASE(n) \
  case n: Q6 ? group_tile_q6k<n>(gp, nsb, a, c0, yg, ldy) : group_tile_q4k<n>(gp, nsb, a, c0, yg, ldy); break;
        UNICORN_CASE(1) UNICORN_CASE(2) UNICORN_CASE(3) UNICORN_CASE(4)
        UNICORN_CASE(5) UNICORN_CASE(6) UNICORN_CASE(7)
#undef UNICORN_CASE
        default: Q6 ? group_tile_q6k<8>(gp, nsb, a, c0, yg, ldy) : group_tile_q4k<8>(gp, nsb, a, c0, yg, ldy); break;
      }
    }
  }
}

}  // namespace

void quant_gemm_avx512_x16(const uint8_t* w, int64_t nb, int64_t n_groups, const QuantActs& a, float* y,
                           int64_t ldy) {
  if (a.weight == DType::Q8_0) {
    gemm_x16<true>(w, nb, n_groups, a, y, ldy);
  } else if (a.weight == DType::Q4_K) {
    gemm_x16_k<false>(w, nb, n_groups, a, y, ldy);
  } else if (a.weight == DType::Q6_K) {
    gemm_x16_k<true>(w, nb, n_groups, a, y, ldy);
  } else {
    gemm_x16<false>(w, nb, n_groups, a, y, ldy);
  }
}

}  // namespace unicorn::cpu

#else

#include "core/error.h"

namespace unicorn::cpu {
void quant_gemm_avx512_x16(const uint8_t*, int64_t, int64_t, const QuantActs&, float*, int64_t) {
  fail("internal: AVX-512 kernels are not built for this CPU");
}
}  // namespace unicorn::cpu

#endif
