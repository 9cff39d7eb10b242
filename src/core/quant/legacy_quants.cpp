// The 32-value ggml formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (quantize and dequantize) and
// IQ4_NL (dequantize). Every float operation follows ggml-quants.c's reference code in the
// same order, because the bytes must match it exactly: one rounding step done differently
// flips a quant. The project compiles without FP contraction (ISO C++), as ggml's reference
// build does, so a * b + c is never fused here.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/quant/formats.h"
#include "core/quant/ggml_blocks.h"

namespace unicorn::quant {

namespace {

// The value of largest magnitude in x[0..n) (the first such, sign kept), and that magnitude.
struct SignedMax {
  float max = 0.0f, amax = 0.0f;
};
SignedMax signed_max(const float* x, int n) {
  SignedMax r;
  for (int j = 0; j < n; ++j) {
    if (r.amax < std::fabs(x[j])) {
      r.amax = std::fabs(x[j]);
      r.max = x[j];
    }
  }
  return r;
}

struct MinMax {
  float min, max;
};
MinMax min_max(const float* x, int n) {
  MinMax r{3.402823466e+38f, -3.402823466e+38f};  // FLT_MAX, as ggml starts
  for (int j = 0; j < n; ++j) {
    r.min = std::min(r.min, x[j]);
    r.max = std::max(r.max, x[j]);
  }
  return r;
}

// ggml's (int8_t)(v) on a float in range: truncation toward zero.
inline int trunc_i8(float v) { return int(int8_t(v)); }

}  // namespace

// ref: quantize_row_q4_0_ref. d maps the value of largest magnitude to -8 exactly.
void quantize_q4_0(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ4_0*>(out);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const SignedMax sm = signed_max(x, kQK);
    const float d = sm.max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, trunc_i8(x[j] * id + 8.5f));
      const int q1 = std::min(15, trunc_i8(x[j + kQK / 2] * id + 8.5f));
      y[b].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

// ref: quantize_row_q4_1_ref
void quantize_q4_1(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ4_1*>(out);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const MinMax mm = min_max(x, kQK);
    const float d = (mm.max - mm.min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(mm.min);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, trunc_i8((x[j] - mm.min) * id + 0.5f));
      const int q1 = std::min(15, trunc_i8((x[j + kQK / 2] - mm.min) * id + 0.5f));
      y[b].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

// ref: quantize_row_q5_0_ref
void quantize_q5_0(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ5_0*>(out);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const SignedMax sm = signed_max(x, kQK);
    const float d = sm.max / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(31, trunc_i8(x[j] * id + 16.5f));
      const int q1 = std::min(31, trunc_i8(x[j + kQK / 2] * id + 16.5f));
      y[b].qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= uint32_t((q0 & 0x10) >> 4) << j;
      qh |= uint32_t((q1 & 0x10) >> 4) << (j + kQK / 2);
    }
    std::memcpy(y[b].qh, &qh, 4);
  }
}

// ref: quantize_row_q5_1_ref
void quantize_q5_1(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ5_1*>(out);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const MinMax mm = min_max(x, kQK);
    const float d = (mm.max - mm.min) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(mm.min);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = uint8_t((x[j] - mm.min) * id + 0.5f);
      const int q1 = uint8_t((x[j + kQK / 2] - mm.min) * id + 0.5f);
      y[b].qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= uint32_t((q0 & 0x10) >> 4) << j;
      qh |= uint32_t((q1 & 0x10) >> 4) << (j + kQK / 2);
    }
    std::memcpy(y[b].qh, &qh, 4);
  }
}

// ref: quantize_row_q8_0_ref (roundf: halves away from zero)
void quantize_q8_0(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(out);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQK; ++j) y[b].qs[j] = int8_t(std::round(x[j] * id));
  }
}

void dequantize_q4_0(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_0*>(in);
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float((x[b].qs[j] & 0x0F) - 8) * d;
      y[j + kQK / 2] = float((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_1*>(in);
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float(x[b].qs[j] & 0x0F) * d + m;
      y[j + kQK / 2] = float(x[b].qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_0*>(in);
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = int((qh >> j) << 4) & 0x10, h1 = int(qh >> (j + 12)) & 0x10;
      y[j] = float(((x[b].qs[j] & 0x0F) | h0) - 16) * d;
      y[j + kQK / 2] = float(((x[b].qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

void dequantize_q5_1(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_1*>(in);
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = int((qh >> j) << 4) & 0x10, h1 = int(qh >> (j + 12)) & 0x10;
      y[j] = float((x[b].qs[j] & 0x0F) | h0) * d + m;
      y[j + kQK / 2] = float((x[b].qs[j] >> 4) | h1) * d + m;
    }
  }
}

void dequantize_q8_0(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_0*>(in);
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK; ++j) y[j] = float(x[b].qs[j]) * d;
  }
}

void dequantize_iq4_nl(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const BlockIQ4_NL*>(in);
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * float(kIQ4NLValues[x[b].qs[j] & 0x0F]);
      y[j + kQK / 2] = d * float(kIQ4NLValues[x[b].qs[j] >> 4]);
    }
  }
}

}  // namespace unicorn::quant
