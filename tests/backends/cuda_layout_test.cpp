// The CUDA backend's weight layouts that differ from the host's (cuda_layout.h): plain
// arithmetic, checked without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backends/cuda/cuda_layout.h"
#include "core/quant/nf4.h"

namespace unicorn::cuda {
namespace {

// Q6_K's interleaved ql / qh planes: every piece of every half block has its own slot inside
// the padded plane (whole groups of 32 half blocks), and the 32 half blocks of a group put
// each piece in one contiguous run, which is what the LM head's coalesced loads rely on.
TEST(CudaLayout, Q6kPiecesFillWholeGroupsOnce) {
  for (const int pieces : {4, 2}) {
    for (const int64_t halves : {1, 6, 31, 32, 42, 84, 100}) {
      const int64_t groups = (halves + 31) / 32;
      std::vector<int> seen(size_t(groups * 32 * pieces), 0);
      for (int64_t h = 0; h < halves; ++h) {
        for (int p = 0; p < pieces; ++p) {
          const int64_t at = q6k_piece(h, p, pieces);
          ASSERT_GE(at, 0);
          ASSERT_LT(at, int64_t(seen.size())) << "half " << h << " piece " << p;
          EXPECT_EQ(seen[size_t(at)]++, 0) << "half " << h << " piece " << p << " shares slot " << at;
          EXPECT_EQ(at, q6k_piece(h - h % 32, p, pieces) + h % 32) << "half " << h << " piece " << p;
        }
      }
    }
  }
  // A half block's pieces are 32 slots (512 bytes) apart, the next group after the last piece.
  EXPECT_EQ(q6k_piece(0, 1, 4) - q6k_piece(0, 0, 4), 32);
  EXPECT_EQ(q6k_piece(32, 0, 4), 4 * 32);
  EXPECT_EQ(q6k_piece(32, 0, 2), 2 * 32);
}

// NF4's levels as the streamed products take them: round(127 level), half away from zero,
// within a level's rounding (half a step of 1/127) of the level, clamped to [-1, 1]; the standard
// levels keep their order and 0 stays 0.
TEST(CudaLayout, Nf4LevelsAsInt8) {
  int last = -128;
  for (const float level : nf4::kLevels) {
    const int q = nf4_int8_level(level);
    EXPECT_LE(std::fabs(float(q) / 127.0f - level), 0.5f / 127.0f + 1e-7f) << level;
    EXPECT_GT(q, last) << level;
    last = q;
  }
  EXPECT_EQ(nf4_int8_level(nf4::kLevels[0]), -127);
  EXPECT_EQ(nf4_int8_level(nf4::kLevels[7]), 0);
  EXPECT_EQ(nf4_int8_level(nf4::kLevels[15]), 127);
  EXPECT_EQ(nf4_int8_level(0.5f / 127.0f), 1);
  EXPECT_EQ(nf4_int8_level(-0.5f / 127.0f), -1);
  EXPECT_EQ(nf4_int8_level(1.5f), 127);
  EXPECT_EQ(nf4_int8_level(-2.0f), -127);
}

}  // namespace
}  // namespace unicorn::cuda
