// Every CPU op against the scalar reference backend on random inputs, over the weight dtypes
// and sizes that exercise the SIMD tails (widths not a multiple of the vector length).
// Tolerance: relative 2e-5 of the output's scale (f32 accumulation in a different order).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/quant/interleaved.h"
#include "ops/reference_backend.h"
#include "support/op_checks.h"

namespace unicorn {
namespace {

using test::expect_close;
using test::random_tensor;

class CpuOps : public ::testing::Test {
 protected:
  CpuBackend cpu{2};
  ReferenceBackend ref;
};

TEST_F(CpuOps, LinearOverDtypesAndShapes) {
  for (DType wt : {DType::BF16, DType::F16, DType::F32}) {
    for (auto [n, k, m] : {std::tuple{1, 64, 96}, {3, 37, 5}, {5, 588, 48}, {9, 1152, 130}, {4, 16, 4}}) {
      const Tensor x = random_tensor(DType::F32, {n, k}, 1);
      const Tensor w = random_tensor(wt, {m, k}, 2, 0.1f);
      const Tensor bias = random_tensor(DType::BF16, {m}, 3);
      Tensor y1 = cpu.alloc(DType::F32, {n, m}), y2 = ref.alloc(DType::F32, {n, m});
      cpu.linear(x, w, &bias, y1);
      ref.linear(x, w, &bias, y2);
      SCOPED_TRACE(std::string(dtype_name(wt)) + " " + std::to_string(n) + "x" + std::to_string(k) + "x" +
                   std::to_string(m));
      expect_close(y1, y2);
      cpu.linear(x, w, nullptr, y1);
      ref.linear(x, w, nullptr, y2);
      expect_close(y1, y2);
    }
  }
}

TEST_F(CpuOps, LinearShapeMismatchIsAnError) {
  const Tensor x = random_tensor(DType::F32, {2, 8}, 1), w = random_tensor(DType::BF16, {4, 9}, 2);
  Tensor y = cpu.alloc(DType::F32, {2, 4});
  EXPECT_THROW(cpu.linear(x, w, nullptr, y), Error);
}

// linear_parts (Backend's default: row views of the stacked weight, one product each) against
// products with each part prepared alone, over plain and interleaved (Q8_0, 16-row groups)
// weights; parts that do
// not split the weight, or outputs of the wrong shape, are errors.
TEST_F(CpuOps, LinearParts) {
  const int64_t n = 5, k = 64, m = 32, P = 3;
  for (DType wt : {DType::BF16, DType::Q8_0}) {
    SCOPED_TRACE(dtype_name(wt));
    const Tensor w = random_tensor(DType::F32, {P * m, k}, 7, 0.1f).converted(wt);
    const Tensor dw = cpu.prepare_weight(w), bias = random_tensor(DType::F32, {P * m}, 8);
    const Tensor x = random_tensor(DType::F32, {n, k}, 9);
    Tensor all = cpu.alloc(DType::F32, {P * n, m});
    Tensor y[3] = {all.rows(0, n), all.rows(n, n), all.rows(2 * n, n)};
    Tensor* const ys[] = {&y[0], &y[1], &y[2]};
    cpu.linear_parts(x, dw, &bias, ys);
    for (int64_t p = 0; p < P; ++p) {
      Tensor want = cpu.alloc(DType::F32, {n, m});
      const Tensor bp = bias.rows(p * m, m);
      cpu.linear(x, cpu.prepare_weight(w.rows(p * m, m)), &bp, want);
      expect_close(y[p], want);
    }
    Tensor* const two[] = {&y[0], &y[1]};
    EXPECT_THROW(cpu.linear_parts(x, dw, &bias, two), Error);  // 96 rows are not 2 parts of 32
    Tensor wrong = cpu.alloc(DType::F32, {n, m + 1});
    Tensor* const bad[] = {&y[0], &y[1], &wrong};
    EXPECT_THROW(cpu.linear_parts(x, dw, &bias, bad), Error);
  }
  // Parts of 24 rows of an interleaved matrix (groups of 16) are refused, not misread (by
  // Tensor::rows, which refuses any view that splits a group).
  const Tensor w24 = cpu.prepare_weight(random_tensor(DType::F32, {72, k}, 10, 0.1f).converted(DType::Q8_0));
  ASSERT_TRUE(is_interleaved(w24.dtype()));
  Tensor y24[3] = {cpu.alloc(DType::F32, {n, 24}), cpu.alloc(DType::F32, {n, 24}), cpu.alloc(DType::F32, {n, 24})};
  Tensor* const ys24[] = {&y24[0], &y24[1], &y24[2]};
  EXPECT_THROW(cpu.linear_parts(random_tensor(DType::F32, {n, k}, 11), w24, nullptr, ys24), Error);
}

// The CPU's activations are f32 (product_input_dtype): a bf16 x, norm or attention output is
// refused, never read as f32.
TEST_F(CpuOps, Bf16ActivationsAreRefused) {
  EXPECT_EQ(cpu.product_input_dtype(), DType::F32);
  const Tensor w = random_tensor(DType::F32, {8, 32}, 1), ln = random_tensor(DType::F32, {32}, 2);
  Tensor x16 = Tensor::zeros(DType::BF16, {2, 32}), y = Tensor::zeros(DType::F32, {2, 8});
  EXPECT_THROW(cpu.linear(x16, w, nullptr, y), Error);
  EXPECT_THROW(cpu.layer_norm(random_tensor(DType::F32, {2, 32}, 3), ln, ln, 1e-6f, x16), Error);
  EXPECT_THROW(cpu.rms_norm(random_tensor(DType::F32, {2, 32}, 4), ln, 1e-6f, x16), Error);
  const std::vector<int32_t> pos = {0, 1}, group = {-1, -1};
  const Tensor q = random_tensor(DType::F32, {2, 32}, 5);
  EXPECT_THROW(cpu.attention(q, q, q, AttentionMask{pos, group, pos, group, 0, false}, AttentionShape{1, 1, 32, 1.0f}, x16),
               Error);
}

TEST_F(CpuOps, NormsAndElementwise) {
  for (int64_t d : {16, 37, 1152}) {
    const Tensor x = random_tensor(DType::F32, {6, d}, 4, 3.0f);
    const Tensor w = random_tensor(DType::BF16, {d}, 5, 0.5f), b = random_tensor(DType::BF16, {d}, 6);
    Tensor y1 = cpu.alloc(DType::F32, {6, d}), y2 = ref.alloc(DType::F32, {6, d});
    cpu.rms_norm(x, w, 1e-6f, y1);
    ref.rms_norm(x, w, 1e-6f, y2);
    expect_close(y1, y2);
    cpu.layer_norm(x, w, b, 1e-6f, y1);
    ref.layer_norm(x, w, b, 1e-6f, y2);
    expect_close(y1, y2);
    const Tensor g = random_tensor(DType::F32, {6, d}, 7, 3.0f);
    cpu.gelu_tanh_mul(g, x, y1);
    ref.gelu_tanh_mul(g, x, y2);
    expect_close(y1, y2, 1e-5);
    Tensor g1 = g.clone(), g2 = g.clone();
    cpu.gelu_tanh(g1);
    ref.gelu_tanh(g2);
    expect_close(g1, g2, 1e-5);
    cpu.add(x, g, y1);
    ref.add(x, g, y2);
    expect_close(y1, y2);
    // In place, as the model uses it.
    Tensor x1 = x.clone();
    cpu.rms_norm(x1, w, 1e-6f, x1);
    ref.rms_norm(x, w, 1e-6f, y2);
    expect_close(x1, y2);
  }
}

TEST_F(CpuOps, RopeAndEmbed) {
  const std::vector<int32_t> pos = {0, 1, 7, 300, 8191};
  for (auto [theta, factor] : {std::pair{10000.0, 1.0}, {1000000.0, 8.0}}) {
    Tensor a = random_tensor(DType::F32, {5, 4 * 32}, 8), b = a.clone();
    cpu.rope(a, pos, 32, theta, factor);
    ref.rope(b, pos, 32, theta, factor);
    expect_close(a, b, 1e-6);
  }
  // The CPU keeps the last two tables of cos / sin (a step's sliding and global layers): any
  // mix of positions, head widths and parameters must still rotate by the right angles.
  const std::vector<int32_t> other = {2, 3, 4, 5, 6}, prefix = {0, 1, 7};
  struct Call {
    const std::vector<int32_t>* pos;
    int64_t hd;
    double theta;
  };
  for (const Call& c : {Call{&pos, 32, 10000.0}, Call{&pos, 32, 1000000.0}, Call{&other, 32, 10000.0},
                        Call{&pos, 32, 10000.0}, Call{&pos, 16, 10000.0}, Call{&prefix, 32, 10000.0},
                        Call{&pos, 32, 1000000.0}}) {
    const int64_t n = int64_t(c.pos->size());
    Tensor a = random_tensor(DType::F32, {n, 64}, 10), b = a.clone();
    cpu.rope(a, *c.pos, c.hd, c.theta, 1.0);
    ref.rope(b, *c.pos, c.hd, c.theta, 1.0);
    expect_close(a, b, 1e-6);
  }
  const Tensor table = random_tensor(DType::BF16, {50, 40}, 9);
  const std::vector<int32_t> ids = {3, 0, 49, 3};
  Tensor e1 = cpu.alloc(DType::F32, {4, 40}), e2 = ref.alloc(DType::F32, {4, 40});
  cpu.embed(table, ids, 6.5f, e1);
  ref.embed(table, ids, 6.5f, e2);
  expect_close(e1, e2, 0);
  const std::vector<int32_t> bad = {3, 50};
  Tensor e3 = cpu.alloc(DType::F32, {2, 40});
  EXPECT_THROW(cpu.embed(table, bad, 1.0f, e3), Error);
}

TEST_F(CpuOps, AttentionMasks) {
  // GQA 4:2, head_dim 24; 7 queries after 5 cached keys; a sliding window of 4; one image group.
  const int64_t nq = 7, nk = 12, hd = 24;
  const Tensor q = random_tensor(DType::F32, {nq, 4 * hd}, 10), k = random_tensor(DType::F32, {nk, 2 * hd}, 11),
               v = random_tensor(DType::F32, {nk, 2 * hd}, 12);
  std::vector<int32_t> qpos, qgrp, kpos, kgrp;
  for (int i = 0; i < nq; ++i) {
    qpos.push_back(5 + i);
    qgrp.push_back(i >= 1 && i <= 4 ? 6 : -1);  // positions 6..9 are one image
  }
  for (int j = 0; j < nk; ++j) {
    kpos.push_back(j == 3 ? -1 : j);  // slot 3 empty
    kgrp.push_back(j >= 6 && j <= 9 ? 6 : -1);
  }
  for (int64_t window : {0, 4}) {
    for (bool causal : {true, false}) {
      const AttentionMask mask{qpos, qgrp, kpos, kgrp, window, causal};
      const AttentionShape shape{4, 2, hd, 0.2f};
      Tensor o1 = cpu.alloc(DType::F32, {nq, 4 * hd}), o2 = ref.alloc(DType::F32, {nq, 4 * hd});
      cpu.attention(q, k, v, mask, shape, o1);
      ref.attention(q, k, v, mask, shape, o2);
      expect_close(o1, o2);
    }
  }
  // The mask rule itself: the image token at position 6 sees position 9 (same image, later),
  // text at position 5 does not see 6; with window 4 position 11 cannot see 7.
  const AttentionMask m{qpos, qgrp, kpos, kgrp, 4, true};
  EXPECT_TRUE(ops::attention_visible(m, 1, 9));
  EXPECT_FALSE(ops::attention_visible(m, 0, 6));
  EXPECT_FALSE(ops::attention_visible(m, 6, 7));
  EXPECT_TRUE(ops::attention_visible(m, 6, 8));
  EXPECT_FALSE(ops::attention_visible(m, 6, 3));  // empty slot
}

TEST_F(CpuOps, RowsPatchifyPool) {
  const Tensor src = random_tensor(DType::F32, {3, 10}, 13);
  Tensor dst1 = cpu.alloc(DType::F32, {6, 10}), dst2 = ref.alloc(DType::F32, {6, 10});
  const std::vector<int32_t> rows = {4, 0, 2};
  cpu.scatter_rows(src, rows, dst1);
  ref.scatter_rows(src, rows, dst2);
  expect_close(dst1, dst2, 0);
  Tensor g = cpu.alloc(DType::F32, {3, 10});
  cpu.gather_rows(dst1, rows, g);
  expect_close(g, src, 0);
  const std::vector<int32_t> bad = {6, 0, 1};
  EXPECT_THROW(cpu.scatter_rows(src, bad, dst1), Error);

  const Tensor img = random_tensor(DType::F32, {3, 28, 28}, 14);
  Tensor p = cpu.alloc(DType::F32, {4, 3 * 14 * 14});
  cpu.patchify(img, 14, p);
  // Patch 1 (row 0, col 1), channel 2, pixel (3, 5) = image[2, 3, 14 + 5].
  EXPECT_EQ(p.data<float>()[1 * 588 + 2 * 196 + 3 * 14 + 5], img.data<float>()[(2 * 28 + 3) * 28 + 19]);
  const Tensor grid = random_tensor(DType::F32, {16, 3}, 15);
  Tensor pooled = cpu.alloc(DType::F32, {4, 3});
  cpu.avg_pool_grid(grid, 4, 2, pooled);
  const float* gv = grid.data<const float>();
  // Token 3 = bottom-right 2x2 block: grid rows 10, 11, 14, 15.
  EXPECT_NEAR(pooled.data<float>()[3 * 3 + 1], (gv[10 * 3 + 1] + gv[11 * 3 + 1] + gv[14 * 3 + 1] + gv[15 * 3 + 1]) / 4,
              1e-6);
}

}  // namespace
}  // namespace unicorn

#include "core/quant/nf4.h"

namespace unicorn {
namespace {

// NF4 (bitsandbytes): blocks of 64 over the flattened matrix, so rows of 4304 or 32 values
// start inside blocks; the CPU path dequantizes row ranges, the reference row by row.
TEST_F(CpuOps, LinearAndEmbedOverNf4) {
  for (auto [n, k, m] : {std::tuple{1, 4304, 5}, {3, 32, 700}, {5, 1152, 70}}) {
    const Tensor x = random_tensor(DType::F32, {n, k}, 21);
    const Tensor w = nf4::quantize_tensor(random_tensor(DType::BF16, {m, k}, 22, 0.05f), true);
    Tensor y1 = cpu.alloc(DType::F32, {n, m}), y2 = ref.alloc(DType::F32, {n, m});
    cpu.linear(x, w, nullptr, y1);
    ref.linear(x, w, nullptr, y2);
    SCOPED_TRACE(std::to_string(n) + "x" + std::to_string(k) + "x" + std::to_string(m));
    expect_close(y1, y2);
  }
  const Tensor table = nf4::quantize_tensor(random_tensor(DType::BF16, {100, 32}, 23), true);
  const std::vector<int32_t> ids = {7, 99, 0, 8};
  Tensor e1 = cpu.alloc(DType::F32, {4, 32}), e2 = ref.alloc(DType::F32, {4, 32});
  cpu.embed(table, ids, 2.0f, e1);
  ref.embed(table, ids, 2.0f, e2);
  expect_close(e1, e2, 0);
}

}  // namespace
}  // namespace unicorn
