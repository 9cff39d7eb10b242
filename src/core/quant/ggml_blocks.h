// ggml's block layouts (ggml-common.h), byte for byte: GGUF files hold rows of these, and our
// quantizers write them. Scales are IEEE half floats kept as raw uint16 (f16_to_f32).
// All fields are bytes or uint16, so blocks pack without padding at 2-byte alignment.
#pragma once

#include <cstdint>

namespace unicorn::quant {

constexpr int kQK = 32;     // values per block of the 32-value formats
constexpr int kQK_K = 256;  // values per super-block of the K formats
constexpr int kKScaleBytes = 12;  // packed 6-bit scales (and mins) of Q3_K, Q4_K, Q5_K

struct BlockQ4_0 {
  uint16_t d;            // value = d * (q - 8)
  uint8_t qs[kQK / 2];   // value j in the low nibble of qs[j], value j + 16 in the high nibble
};
struct BlockQ4_1 {
  uint16_t d, m;         // value = d * q + m
  uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {
  uint16_t d;            // value = d * (q - 16)
  uint8_t qh[4];         // fifth bit of value j at bit j (little-endian uint32)
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {
  uint16_t d;            // value = d * q
  int8_t qs[kQK];
};
struct BlockIQ4_NL {
  uint16_t d;            // value = d * kIQ4NLValues[q]
  uint8_t qs[kQK / 2];
};

struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // per 16 values: scale (low nibble) and min (high nibble)
  uint8_t qs[kQK_K / 4];
  uint16_t d, dmin;
};
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[kKScaleBytes];  // 16 x 6-bit scales, offset by 32
  uint16_t d;
};
struct BlockQ4_K {
  uint16_t d, dmin;              // value = d * sc_j * q - dmin * m_j for sub-block j of 32
  uint8_t scales[kKScaleBytes];  // 8 x 6-bit sc_j and m_j (get_scale_min_k4 layout)
  uint8_t qs[kQK_K / 2];         // per 64 values: 32 bytes, low nibbles first 32, high the next 32
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];   // low 4 bits
  uint8_t qh[kQK_K / 4];   // high 2 bits
  int8_t scales[kQK_K / 16];  // value = d * scales[j] * (q - 32) for sub-block j of 16
  uint16_t d;
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockIQ4_NL) == 18);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

// ref: ggml-common.h kvalues_iq4nl
inline constexpr int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// The 6-bit scale and min of sub-block j (0..7) of Q4_K / Q5_K. ref: ggml-quants.c get_scale_min_k4
inline void k4_scale_min(int j, const uint8_t* q, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

}  // namespace unicorn::quant
