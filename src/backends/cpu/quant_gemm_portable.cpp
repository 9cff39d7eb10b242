// Quantized matrix products in portable C++: each weight row is unpacked to int8 once, then
// dotted with every activation row in integer arithmetic, block scales applied in f32.
#include <cstring>
#include <vector>

#include "backends/cpu/quant_kernels.h"
#include "core/error.h"
#include "core/quant/ggml_blocks.h"
#include "core/quant/interleaved.h"

namespace unicorn::cpu {

namespace {

using namespace quant;

int32_t dot_i8(const int8_t* a, const int8_t* b, int n) {
  int32_t s = 0;
  for (int i = 0; i < n; ++i) s += int32_t(a[i]) * int32_t(b[i]);
  return s;
}

// Q4_0 / Q8_0: w_q holds the row's values (q - 8 or q), w_d its block scales.
void gemm_blocks32(const QuantActs& a, const int8_t* w_q, const float* w_d, int64_t nb, float* y, int64_t ldy) {
  for (int64_t c = 0; c < a.rows; ++c) {
    const int8_t* aq = a.qs + c * a.row_qs;
    const float* ad = a.d + c * a.blocks;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; ++b) sum += w_d[b] * ad[b] * float(dot_i8(w_q + b * 32, aq + b * 32, 32));
    y[c * ldy] = sum;
  }
}

void row_q4_0(const uint8_t* row, int64_t nb, int8_t* q, float* d) {
  const auto* blk = reinterpret_cast<const BlockQ4_0*>(row);
  for (int64_t b = 0; b < nb; ++b) {
    d[b] = f16_to_f32(blk[b].d);
    for (int i = 0; i < 16; ++i) {
      q[b * 32 + i] = int8_t((blk[b].qs[i] & 0x0F) - 8);
      q[b * 32 + i + 16] = int8_t((blk[b].qs[i] >> 4) - 8);
    }
  }
}

void row_q8_0(const uint8_t* row, int64_t nb, int8_t* q, float* d) {
  const auto* blk = reinterpret_cast<const BlockQ8_0*>(row);
  for (int64_t b = 0; b < nb; ++b) {
    d[b] = f16_to_f32(blk[b].d);
    std::memcpy(q + b * 32, blk[b].qs, 32);
  }
}

// Q4_K: value = d * sc_j * q - dmin * m_j. The activations of sub-block j (32 values) sit at
// 128 * (j / 4) + 32 * slot, slot = {0, 2, 1, 3}[j % 4] (quant_acts.h).
void gemm_q4_k(const uint8_t* w, int64_t w_row_bytes, int64_t nw, const QuantActs& a, float* y, int64_t ldy) {
  static constexpr int kSlot[4] = {0, 2, 1, 3};
  const int64_t nsb = a.k / kQK_K;
  std::vector<int8_t> q(static_cast<size_t>(a.k));
  std::vector<int32_t> sc(static_cast<size_t>(nsb * 8)), mn(static_cast<size_t>(nsb * 8));
  std::vector<float> d(static_cast<size_t>(nsb)), dmin(static_cast<size_t>(nsb));
  for (int64_t j = 0; j < nw; ++j) {
    const auto* blk = reinterpret_cast<const BlockQ4_K*>(w + j * w_row_bytes);
    for (int64_t b = 0; b < nsb; ++b) {
      d[size_t(b)] = f16_to_f32(blk[b].d);
      dmin[size_t(b)] = f16_to_f32(blk[b].dmin);
      for (int s = 0; s < 8; ++s) {
        uint8_t scv, mv;
        k4_scale_min(s, blk[b].scales, scv, mv);
        sc[size_t(b * 8 + s)] = scv;
        mn[size_t(b * 8 + s)] = mv;
        for (int i = 0; i < 32; ++i) {
          const uint8_t byte = blk[b].qs[32 * (s / 2) + i];
          q[size_t(b * 256 + 32 * s + i)] = int8_t(s % 2 ? byte >> 4 : byte & 0x0F);
        }
      }
    }
    for (int64_t c = 0; c < a.rows; ++c) {
      float sum = 0.0f;
      for (int64_t b = 0; b < nsb; ++b) {
        const int8_t* aq = a.qs + c * a.row_qs + b * 256;
        const int16_t* bs = a.bsums + (c * a.blocks + b) * 16;
        int32_t isum = 0, msum = 0;
        for (int s = 0; s < 8; ++s) {
          const int8_t* as = aq + 128 * (s / 4) + 32 * kSlot[s % 4];
          isum += sc[size_t(b * 8 + s)] * dot_i8(q.data() + b * 256 + 32 * s, as, 32);
          msum += mn[size_t(b * 8 + s)] * bs[s];
        }
        const float da = a.d[c * a.blocks + b];
        sum += d[size_t(b)] * da * float(isum) - dmin[size_t(b)] * da * float(msum);
      }
      y[c * ldy + j] = sum;
    }
  }
}

// Q6_K: value = d * sc_j * (q - 32) for sub-block j of 16.
void gemm_q6_k(const uint8_t* w, int64_t w_row_bytes, int64_t nw, const QuantActs& a, float* y, int64_t ldy) {
  const int64_t nsb = a.k / kQK_K;
  std::vector<int8_t> q(static_cast<size_t>(a.k));
  for (int64_t j = 0; j < nw; ++j) {
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(w + j * w_row_bytes);
    for (int64_t b = 0; b < nsb; ++b) {
      int8_t* qb = q.data() + b * 256;
      for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = blk[b].ql + 64 * h;
        const uint8_t* qh = blk[b].qh + 32 * h;
        for (int l = 0; l < 32; ++l) {
          qb[128 * h + l] = int8_t(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
          qb[128 * h + l + 32] = int8_t(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
          qb[128 * h + l + 64] = int8_t(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
          qb[128 * h + l + 96] = int8_t(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
      }
    }
    for (int64_t c = 0; c < a.rows; ++c) {
      float sum = 0.0f;
      for (int64_t b = 0; b < nsb; ++b) {
        const int8_t* aq = a.qs + c * a.row_qs + b * 256;
        int32_t isum = 0;
        for (int s = 0; s < 16; ++s) isum += blk[b].scales[s] * dot_i8(q.data() + b * 256 + 16 * s, aq + 16 * s, 16);
        sum += f16_to_f32(blk[b].d) * a.d[c * a.blocks + b] * float(isum);
      }
      y[c * ldy + j] = sum;
    }
  }
}

}  // namespace

void quant_gemm_portable_x16(const uint8_t* w, int64_t nb, int64_t n_groups, const QuantActs& a, float* y,
                             int64_t ldy) {
  // Each group back to 16 plain rows, then the plain kernels.
  const int64_t row_bytes = nb * dtype_info(a.weight).block_bytes;
  std::vector<uint8_t> rows(static_cast<size_t>(16 * row_bytes));
  for (int64_t g = 0; g < n_groups; ++g) {
    deinterleave_group(a.weight, w, nb, g, rows.data());
    quant_gemm_portable(rows.data(), row_bytes, 16, a, y + 16 * g, ldy);
  }
}

void quant_gemm_portable(const uint8_t* w, int64_t w_row_bytes, int64_t nw, const QuantActs& a, float* y,
                         int64_t ldy) {
  switch (a.weight) {
    case DType::Q4_0:
    case DType::Q8_0: {
      const int64_t nb = a.k / 32;
      std::vector<int8_t> q(static_cast<size_t>(a.k));
      std::vector<float> d(static_cast<size_t>(nb));
      for (int64_t j = 0; j < nw; ++j) {
        (a.weight == DType::Q4_0 ? row_q4_0 : row_q8_0)(w + j * w_row_bytes, nb, q.data(), d.data());
        gemm_blocks32(a, q.data(), d.data(), nb, y + j, ldy);
      }
      return;
    }
    case DType::Q4_K: return gemm_q4_k(w, w_row_bytes, nw, a, y, ldy);
    case DType::Q6_K: return gemm_q6_k(w, w_row_bytes, nw, a, y, ldy);
    default: fail("internal: no quantized kernel for {}", dtype_name(a.weight));
  }
}

}  // namespace unicorn::cpu
