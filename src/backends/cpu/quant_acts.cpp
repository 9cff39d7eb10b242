#include "backends/cpu/quant_acts.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace unicorn::cpu {

namespace {

constexpr int64_t kAlign = 64;

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// Round to nearest, ties to even (what the vector conversions do), for |v| < 2^22.
inline int nearest(float v) {
  const float t = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// The zero-point correction factor of a 32-value weight format (see QuantActs::bias).
int32_t zero_point(DType t) { return t == DType::Q4_0 ? -8 : -128; }

// One block of n values: q = round(x * 127 / amax), d = amax / 127. Returns d, writes q.
float quantize_block(const float* x, int n, int8_t* q) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  for (int i = 0; i < n; ++i) q[i] = int8_t(nearest(x[i] * id));
  return d;
}

}  // namespace

bool quant_kernel_supported(DType t) {
  return t == DType::Q4_0 || t == DType::Q8_0 || t == DType::Q4_K || t == DType::Q6_K;
}

int64_t act_block_values(DType t) {
  UNICORN_CHECK(quant_kernel_supported(t));
  return (t == DType::Q4_K || t == DType::Q6_K) ? 256 : 32;
}

void QuantActs::allocate(DType w, int64_t n_rows, int64_t n_k) {
  const int64_t bv = act_block_values(w);
  if (n_k % bv) fail("internal: {} activations per row are not whole {}-value blocks", n_k, bv);
  weight = w;
  rows = n_rows;
  k = n_k;
  const bool k_format = bv == 256;
  blocks = k_format ? k / bv : round_up(k / bv, 2);
  row_qs = blocks * bv;
  const int64_t qs_bytes = round_up(rows * row_qs, kAlign);
  const int64_t d_bytes = round_up(rows * blocks * 4, kAlign);
  const int64_t bias_bytes = !k_format ? round_up(rows * blocks * 4, kAlign)
                             : w == DType::Q6_K ? round_up(rows * blocks * 16 * 4, kAlign) : 0;
  const int64_t bsum_bytes = k_format ? round_up(rows * blocks * 16 * 2, kAlign) : 0;
  const int64_t lane_bytes = k_format ? 0 : rows * (blocks / 2) * 32 * 4;
  const int64_t bsumf_bytes = w == DType::Q4_K ? round_up(rows * blocks * 8 * 4, kAlign) : 0;
  storage_.resize(size_t(qs_bytes + d_bytes + bias_bytes + bsum_bytes + lane_bytes + bsumf_bytes + kAlign));
  uint8_t* p = storage_.data();
  p += (kAlign - reinterpret_cast<uintptr_t>(p) % kAlign) % kAlign;
  qs = reinterpret_cast<int8_t*>(p);
  d = reinterpret_cast<float*>(p + qs_bytes);
  bias = bias_bytes ? reinterpret_cast<int32_t*>(p + qs_bytes + d_bytes) : nullptr;
  bsums = bsum_bytes ? reinterpret_cast<int16_t*>(p + qs_bytes + d_bytes + bias_bytes) : nullptr;
  lanes = lane_bytes ? reinterpret_cast<uint32_t*>(p + qs_bytes + d_bytes + bias_bytes + bsum_bytes) : nullptr;
  bsums_f = bsumf_bytes ? reinterpret_cast<float*>(p + qs_bytes + d_bytes + bias_bytes + bsum_bytes + lane_bytes)
                        : nullptr;
}

void quantize_acts_portable(const float* x, int64_t r0, int64_t r1, QuantActs& a) {
  const int64_t bv = act_block_values(a.weight);
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * a.k;
    int8_t* qr = a.qs + r * a.row_qs;
    float* dr = a.d + r * a.blocks;
    if (bv == 32) {
      const int32_t zp = zero_point(a.weight);
      for (int64_t b = 0; b < a.blocks; ++b) {
        int32_t sum = 0;
        if (b * 32 < a.k) {
          dr[b] = quantize_block(xr + b * 32, 32, qr + b * 32);
          for (int i = 0; i < 32; ++i) sum += qr[b * 32 + i];
        } else {  // padding block of an odd count
          dr[b] = 0.0f;
          std::memset(qr + b * 32, 0, 32);
        }
        a.bias[r * a.blocks + b] = zp * sum;
      }
      for (int64_t p = 0; p < a.blocks / 2; ++p) {
        uint32_t* l = a.lanes + (r * (a.blocks / 2) + p) * 32;
        std::memset(l, 0, 16 * 4);
        std::memcpy(&l[0], &a.bias[r * a.blocks + 2 * p], 4);
        std::memcpy(&l[8], &a.bias[r * a.blocks + 2 * p + 1], 4);
        for (int i = 0; i < 16; ++i) std::memcpy(&l[16 + i], &dr[2 * p + i / 8], 4);
      }
    } else {
      int8_t tmp[256];
      for (int64_t b = 0; b < a.blocks; ++b) {
        dr[b] = quantize_block(xr + b * 256, 256, tmp);
        int16_t* bs = a.bsums + (r * a.blocks + b) * 16;
        int8_t* q = qr + b * 256;
        if (a.weight == DType::Q6_K) {
          std::memcpy(q, tmp, 256);
          for (int j = 0; j < 16; ++j) {
            int s = 0;
            for (int i = 0; i < 16; ++i) s += tmp[16 * j + i];
            bs[j] = int16_t(s);
            a.bias[(r * a.blocks + b) * 16 + j] = -32 * s;
          }
        } else {  // Q4_K: per 128 values, the order 0-31, 64-95, 32-63, 96-127
          for (int h = 0; h < 2; ++h) {
            const int8_t* t = tmp + 128 * h;
            int8_t* o = q + 128 * h;
            std::memcpy(o, t, 32);
            std::memcpy(o + 32, t + 64, 32);
            std::memcpy(o + 64, t + 32, 32);
            std::memcpy(o + 96, t + 96, 32);
          }
          for (int j = 0; j < 8; ++j) {
            int s = 0;
            for (int i = 0; i < 32; ++i) s += tmp[32 * j + i];
            bs[j] = int16_t(s);
          }
          for (int j = 8; j < 16; ++j) bs[j] = 0;
          for (int j = 0; j < 8; ++j) a.bsums_f[(r * a.blocks + b) * 8 + j] = float(bs[j]);
        }
      }
    }
  }
}

}  // namespace unicorn::cpu
