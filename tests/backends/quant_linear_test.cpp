// CpuBackend::linear with quantized weights (Q4_0, Q8_0, Q4_K, Q6_K), the AVX-512 VNNI kernels
// and the portable ones, against dequantize-then-f64 products.
//
// Tolerance. The kernels quantize each activation block (32 values for Q4_0 / Q8_0, 256 for
// the K formats) to int8 with d = amax / 127, so each activation moves by at most d / 2 and an
// output by at most sum_i |w_i| * d_i / 2 (w: the dequantized weights) -- the error llama.cpp's
// CPU kernels have too. Each output must lie within that bound (plus 1e-5 of sum |w_i x_i| for
// f32 summation) of the exact product; typically the error is ~1% of the output's scale.
// The AVX-512 and portable kernels see the same quantized activations, so they must agree to
// f32 summation order (1e-5 relative).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/quant_kernels.h"
#include "core/error.h"
#include "core/quant/interleaved.h"
#include "core/quant/quant.h"
#include "core/rows.h"
#include "ops/reference_backend.h"

namespace unicorn {
namespace {

Tensor random_matrix(int64_t rows, int64_t cols, uint32_t seed, float scale, bool outliers) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(size_t(rows * cols));
  for (float& x : v) x = dist(rng);
  if (outliers)  // Gemma's activations have a few very large channels
    for (size_t i = 7; i < v.size(); i += 97) v[i] *= 30.0f;
  return Tensor::from_f32(v, {rows, cols});
}

// Checks y (from the kernels) against the exact product of x with the dequantized weights.
void expect_within_activation_rounding(const Tensor& x, const Tensor& wq, const Tensor& y) {
  const int64_t n = x.dim(0), k = x.dim(1), m = wq.dim(0);
  const int64_t block = (wq.dtype() == DType::Q4_K || wq.dtype() == DType::Q6_K) ? 256 : 32;
  std::vector<float> w(static_cast<size_t>(k));
  double worst_ratio = 0;
  for (int64_t j = 0; j < m; ++j) {
    dequantize_row(wq, j, w.data());
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x.data<const float>() + i * k;
      double exact = 0, bound = 0, mag = 0;
      for (int64_t b = 0; b < k; b += block) {
        float amax = 0;
        for (int64_t t = b; t < b + block; ++t) amax = std::max(amax, std::fabs(xi[t]));
        const double half_step = double(amax) / 127.0 / 2.0;
        for (int64_t t = b; t < b + block; ++t) {
          exact += double(w[size_t(t)]) * xi[t];
          bound += std::fabs(double(w[size_t(t)])) * half_step;
          mag += std::fabs(double(w[size_t(t)]) * xi[t]);
        }
      }
      const double tol = bound * 1.0001 + 1e-5 * mag + 1e-30;
      const double err = std::fabs(double(y.data<const float>()[i * m + j]) - exact);
      worst_ratio = std::max(worst_ratio, err / tol);
      ASSERT_LE(err, tol) << "output [" << i << ", " << j << "] = " << y.data<const float>()[i * m + j]
                          << ", exact " << exact;
    }
  }
  EXPECT_GT(worst_ratio, 0.0);  // the activation rounding is visible: the check is not vacuous
}

void expect_close(const Tensor& a, const Tensor& b, double rel) {
  ASSERT_EQ(a.shape(), b.shape());
  double scale = 0, worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) scale = std::max(scale, double(std::fabs(b.data<const float>()[i])));
  for (int64_t i = 0; i < a.numel(); ++i)
    worst = std::max(worst, double(std::fabs(a.data<const float>()[i] - b.data<const float>()[i])));
  EXPECT_LE(worst, rel * std::max(scale, 1e-6)) << "max |diff| " << worst << " at scale " << scale;
}

struct Case {
  DType dtype;
  int64_t k;
};

class QuantLinear : public ::testing::Test {
 protected:
  CpuBackend cpu{2};
};

// Block counts odd and even (Q4_0 / Q8_0 work on pairs of blocks), several super-blocks.
const Case kCases[] = {{DType::Q4_0, 96},   {DType::Q4_0, 1152}, {DType::Q8_0, 32},   {DType::Q8_0, 96},
                       {DType::Q8_0, 1152}, {DType::Q4_K, 256},  {DType::Q4_K, 1536}, {DType::Q6_K, 256},
                       {DType::Q6_K, 1536}};

TEST_F(QuantLinear, MatchesDequantizedProductWithinActivationRounding) {
  for (const Case& cs : kCases) {
    for (int64_t m : {1, 7, 40}) {
      const Tensor wq = quantize_matrix(random_matrix(m, cs.k, 11, 0.05f, false), cs.dtype);
      // As given, and as the backend prepares it (Q4_0 / Q8_0 with 16+ rows: interleaved).
      for (const Tensor& w : {wq, cpu.prepare_weight(wq)}) {
        for (int64_t n : {1, 3, 5, 9}) {
          SCOPED_TRACE(fmt::format("{} n={} k={} m={}", dtype_name(w.dtype()), n, cs.k, m));
          const Tensor x = random_matrix(n, cs.k, uint32_t(n * 31 + m), 1.0f, true);
          for (auto kernels : {cpu::QuantKernels::Best, cpu::QuantKernels::Portable}) {
            cpu.set_quant_kernels(kernels);
            Tensor y = cpu.alloc(DType::F32, {n, m});
            cpu.linear(x, w, nullptr, y);
            expect_within_activation_rounding(x, w, y);
          }
        }
      }
    }
  }
}

TEST_F(QuantLinear, PreparedBlockFormatsAreInterleaved) {
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const int64_t cols = t == DType::Q4_K || t == DType::Q6_K ? 512 : 96;
    const Tensor wq = quantize_matrix(random_matrix(37, cols, 3, 0.05f, false), t);
    const Tensor w = cpu.prepare_weight(wq);
    EXPECT_EQ(w.dtype(), interleaved_of(t));
    EXPECT_EQ(w.nbytes(), wq.nbytes());
    std::vector<float> a(static_cast<size_t>(cols)), b(static_cast<size_t>(cols));
    for (int64_t r = 0; r < 37; ++r) {  // two groups of 16 and 5 plain rows
      dequantize_row(wq, r, a.data());
      dequantize_row(w, r, b.data());
      ASSERT_EQ(a, b) << dtype_name(t) << " row " << r;
    }
    EXPECT_EQ(cpu.prepare_weight(quantize_matrix(random_matrix(15, cols, 3, 0.05f, false), t)).dtype(), t);
  }
}

TEST_F(QuantLinear, Avx512AndPortableKernelsAgree) {
  if (!cpu::avx512_vnni_available()) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  for (const Case& cs : kCases) {
    const int64_t m = 67, n = 9;  // weight rows: 16 tiles of 4 and a tail of 3
    SCOPED_TRACE(fmt::format("{} k={}", dtype_name(cs.dtype), cs.k));
    const Tensor wq = quantize_matrix(random_matrix(m, cs.k, 5, 0.05f, false), cs.dtype);
    const Tensor x = random_matrix(n, cs.k, 6, 1.0f, true);
    for (const Tensor& w : {wq, cpu.prepare_weight(wq)}) {
      Tensor fast = cpu.alloc(DType::F32, {n, m}), portable = cpu.alloc(DType::F32, {n, m});
      cpu.set_quant_kernels(cpu::QuantKernels::Best);
      cpu.linear(x, w, nullptr, fast);
      cpu.set_quant_kernels(cpu::QuantKernels::Portable);
      cpu.linear(x, w, nullptr, portable);
      expect_close(fast, portable, 1e-5);
    }
  }
}

TEST_F(QuantLinear, ManyRowsSplitOverTasksWithBias) {
  // Enough rows for several tasks per thread (decode: 4 groups of 16 rows per kernel call);
  // a bias added after the product.
  const int64_t k = 512, m = 1000;
  for (auto [t, n] : {std::pair{DType::Q4_0, 1}, {DType::Q4_0, 2}, {DType::Q8_0, 1}, {DType::Q4_K, 1}, {DType::Q6_K, 2}}) {
    SCOPED_TRACE(fmt::format("{} n={}", dtype_name(t), n));
    const Tensor wq = cpu.prepare_weight(quantize_matrix(random_matrix(m, k, 8, 0.05f, false), t));
    const Tensor x = random_matrix(n, k, 9, 1.0f, false);
    const Tensor bias = random_matrix(1, m, 10, 1.0f, false).reshaped({m});
    Tensor y = cpu.alloc(DType::F32, {n, m}), y0 = cpu.alloc(DType::F32, {n, m});
    cpu.linear(x, wq, &bias, y);
    cpu.linear(x, wq, nullptr, y0);
    for (int64_t i = 0; i < n * m; ++i)
      ASSERT_FLOAT_EQ(y.data<float>()[i], y0.data<float>()[i] + bias.data<float>()[i % m]);
    expect_within_activation_rounding(x, wq, y0);
  }
}

TEST_F(QuantLinear, FusedProductsEqualSeparateOnes) {
  // linear3 (q, k, v) and gate_up quantize the activations once and, at decode, stream all the
  // matrices in one job of shares (a thread walks its own share, then takes passes from the
  // back of the others'): the same kernels on the same activations, so the same bits as
  // separate products. Row counts with tails (not a multiple of 16), and more threads than
  // passes (empty shares).
  for (int threads : {2, 5}) {
    CpuBackend be(threads);
    for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
      const int64_t k = 512;
      const Tensor w0 = be.prepare_weight(quantize_matrix(random_matrix(1000, k, 21, 0.05f, false), t));
      const Tensor w1 = be.prepare_weight(quantize_matrix(random_matrix(37, k, 22, 0.05f, false), t));
      const Tensor w2 = be.prepare_weight(quantize_matrix(random_matrix(64, k, 23, 0.05f, false), t));
      for (int64_t n : {1, 3}) {
        SCOPED_TRACE(fmt::format("{} threads={} n={}", dtype_name(t), threads, n));
        const Tensor x = random_matrix(n, k, 24, 1.0f, true);
        Tensor y0 = be.alloc(DType::F32, {n, 1000}), y1 = be.alloc(DType::F32, {n, 37}),
               y2 = be.alloc(DType::F32, {n, 64});
        be.linear3(x, w0, w1, w2, y0, y1, y2);
        for (auto [w, y] : {std::pair{&w0, &y0}, {&w1, &y1}, {&w2, &y2}}) {
          Tensor alone = be.alloc(DType::F32, y->shape());
          be.linear(x, *w, nullptr, alone);
          for (int64_t i = 0; i < alone.numel(); ++i) ASSERT_EQ(y->data<float>()[i], alone.data<float>()[i]) << i;
          expect_within_activation_rounding(x, *w, *y);
        }
        const Tensor wu = be.prepare_weight(quantize_matrix(random_matrix(1000, k, 25, 0.05f, false), t));
        Tensor g = be.alloc(DType::F32, {n, 1000}), gate = be.alloc(DType::F32, {n, 1000}),
               up = be.alloc(DType::F32, {n, 1000});
        be.gate_up(x, w0, wu, g);
        be.linear(x, w0, nullptr, gate);
        be.linear(x, wu, nullptr, up);
        be.gelu_tanh_mul(gate, up, gate);
        for (int64_t i = 0; i < g.numel(); ++i) ASSERT_EQ(g.data<float>()[i], gate.data<float>()[i]) << i;
      }
    }
  }
  // Weights of different dtypes are not fused, and still right.
  const Tensor a = cpu.prepare_weight(quantize_matrix(random_matrix(48, 256, 26, 0.05f, false), DType::Q4_0));
  const Tensor b = cpu.prepare_weight(quantize_matrix(random_matrix(48, 256, 27, 0.05f, false), DType::Q8_0));
  const Tensor x = random_matrix(1, 256, 28, 1.0f, false);
  Tensor ya = cpu.alloc(DType::F32, {1, 48}), yb = cpu.alloc(DType::F32, {1, 48}), yc = cpu.alloc(DType::F32, {1, 48});
  cpu.linear3(x, a, b, a, ya, yb, yc);
  expect_within_activation_rounding(x, a, ya);
  expect_within_activation_rounding(x, b, yb);
  expect_within_activation_rounding(x, a, yc);
}

TEST_F(QuantLinear, OtherBlockFormatsUseDequantizedRows) {
  // Formats without an integer kernel (GGUF fallbacks) run on dequantized rows: f32-exact.
  ReferenceBackend ref;
  for (DType t : {DType::Q5_0, DType::Q4_1, DType::Q5_K, DType::Q3_K}) {
    const int64_t k = 512, m = 9, n = 3;
    const Tensor wq = quantize_matrix(random_matrix(m, k, 12, 0.05f, false), t);
    const Tensor x = random_matrix(n, k, 13, 1.0f, false);
    Tensor y1 = cpu.alloc(DType::F32, {n, m}), y2 = ref.alloc(DType::F32, {n, m});
    cpu.linear(x, wq, nullptr, y1);
    ref.linear(x, wq, nullptr, y2);
    expect_close(y1, y2, 2e-5);
  }
}

TEST_F(QuantLinear, EmbedDequantizesGatheredRows) {
  // Prepared: interleaved (the tied LM head), so embed gathers rows across groups.
  const Tensor table = cpu.prepare_weight(quantize_matrix(random_matrix(50, 64, 14, 1.0f, false), DType::Q8_0));
  ASSERT_EQ(table.dtype(), DType::Q8_0_X16);
  const std::vector<int32_t> ids = {3, 49, 0, 3, 17};
  Tensor out = cpu.alloc(DType::F32, {5, 64});
  cpu.embed(table, ids, 2.0f, out);
  std::vector<float> row(64);
  for (size_t i = 0; i < ids.size(); ++i) {
    dequantize_row(table, ids[i], row.data());
    for (int64_t j = 0; j < 64; ++j) ASSERT_EQ(out.data<float>()[int64_t(i) * 64 + j], row[size_t(j)] * 2.0f);
  }
}

TEST_F(QuantLinear, ShapeMismatchIsAnError) {
  const Tensor wq = quantize_matrix(random_matrix(4, 64, 1, 0.05f, false), DType::Q4_0);
  const Tensor x = random_matrix(2, 32, 2, 1.0f, false);
  Tensor y = cpu.alloc(DType::F32, {2, 4});
  EXPECT_THROW(cpu.linear(x, wq, nullptr, y), Error);
  const Tensor x64 = random_matrix(2, 64, 2, 1.0f, false);
  Tensor y5 = cpu.alloc(DType::F32, {2, 5});
  EXPECT_THROW(cpu.linear(x64, wq, nullptr, y5), Error);
}

}  // namespace
}  // namespace unicorn
