// ggml block formats against bytes written by ggml itself (tests/data/quant-blocks, see
// shared/reference/README.md): our quantizers must reproduce ggml's reference quantizers'
// bytes exactly, and our dequantizers ggml's dequantized floats bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/quant/formats.h"
#include "core/quant/ggml_blocks.h"
#include "core/quant/quantize_simd.h"
#include "core/quant/quant.h"
#include "core/rows.h"
#include "core/thread_pool.h"
#include "formats/safetensors.h"
#include "support/test_paths.h"

namespace unicorn {
namespace {

struct GgmlType {
  const char* name;
  DType dtype;
  bool quantize;  // we reproduce ggml's quantizer for it
};

const GgmlType kTypes[] = {
    {"q4_0", DType::Q4_0, true}, {"q4_1", DType::Q4_1, true}, {"q5_0", DType::Q5_0, true},
    {"q5_1", DType::Q5_1, true}, {"q8_0", DType::Q8_0, true}, {"q2_K", DType::Q2_K, true},
    {"q3_K", DType::Q3_K, true}, {"q4_K", DType::Q4_K, true}, {"q5_K", DType::Q5_K, true},
    {"q6_K", DType::Q6_K, true}, {"iq4_nl", DType::IQ4_NL, false}, {"f16", DType::F16, true},
    {"bf16", DType::BF16, true},
};

class GgmlBlocks : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { file_ = SafetensorsFile::open(test::data_path("quant-blocks/blocks.safetensors")); }
  static void TearDownTestSuite() { file_.reset(); }
  static std::shared_ptr<SafetensorsFile> file_;
};
std::shared_ptr<SafetensorsFile> GgmlBlocks::file_;

TEST_F(GgmlBlocks, BlockSizesMatchDTypeTable) {
  EXPECT_EQ(dtype_info(DType::Q4_0).block_bytes, int64_t(sizeof(quant::BlockQ4_0)));
  EXPECT_EQ(dtype_info(DType::Q4_1).block_bytes, int64_t(sizeof(quant::BlockQ4_1)));
  EXPECT_EQ(dtype_info(DType::Q5_0).block_bytes, int64_t(sizeof(quant::BlockQ5_0)));
  EXPECT_EQ(dtype_info(DType::Q5_1).block_bytes, int64_t(sizeof(quant::BlockQ5_1)));
  EXPECT_EQ(dtype_info(DType::Q8_0).block_bytes, int64_t(sizeof(quant::BlockQ8_0)));
  EXPECT_EQ(dtype_info(DType::IQ4_NL).block_bytes, int64_t(sizeof(quant::BlockIQ4_NL)));
  EXPECT_EQ(dtype_info(DType::Q2_K).block_bytes, int64_t(sizeof(quant::BlockQ2_K)));
  EXPECT_EQ(dtype_info(DType::Q3_K).block_bytes, int64_t(sizeof(quant::BlockQ3_K)));
  EXPECT_EQ(dtype_info(DType::Q4_K).block_bytes, int64_t(sizeof(quant::BlockQ4_K)));
  EXPECT_EQ(dtype_info(DType::Q5_K).block_bytes, int64_t(sizeof(quant::BlockQ5_K)));
  EXPECT_EQ(dtype_info(DType::Q6_K).block_bytes, int64_t(sizeof(quant::BlockQ6_K)));
}

TEST_F(GgmlBlocks, QuantizersReproduceGgmlBytes) {
  const Tensor input = file_->tensor("input");
  const int64_t rows = input.dim(0), cols = input.dim(1);
  for (const GgmlType& t : kTypes) {
    if (!t.quantize) continue;
    SCOPED_TRACE(t.name);
    const Tensor want = file_->tensor(std::string(t.name) + ".quantized");
    const int64_t row_bytes = dtype_bytes(t.dtype, cols);
    ASSERT_EQ(want.dim(1), row_bytes);
    std::vector<uint8_t> got(static_cast<size_t>(row_bytes));
    for (int64_t r = 0; r < rows; ++r) {
      quantize_values(t.dtype, input.data<const float>() + r * cols, got.data(), cols);
      const auto* w = want.data<const uint8_t>() + r * row_bytes;
      int64_t first = -1;
      for (int64_t i = 0; i < row_bytes && first < 0; ++i)
        if (got[size_t(i)] != w[i]) first = i;
      EXPECT_EQ(first, -1) << "row " << r << ": first differing byte " << first << " (block "
                           << first / dtype_info(t.dtype).block_bytes << ")";
    }
  }
}

TEST_F(GgmlBlocks, DequantizersReproduceGgmlFloats) {
  for (const GgmlType& t : kTypes) {
    SCOPED_TRACE(t.name);
    const Tensor q = file_->tensor(std::string(t.name) + ".quantized");
    const Tensor want = file_->tensor(std::string(t.name) + ".dequantized");
    const int64_t rows = want.dim(0), cols = want.dim(1);
    // Through the row access every backend uses: a [rows, cols] view of the bytes.
    const Tensor w = Tensor::view(t.dtype, {rows, cols}, q.raw());
    ASSERT_TRUE(row_dtype_supported(t.dtype));
    std::vector<float> got(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(w, r, got.data());
      const float* e = want.data<const float>() + r * cols;
      int64_t first = -1;
      for (int64_t i = 0; i < cols && first < 0; ++i)
        if (std::memcmp(&got[size_t(i)], &e[i], 4) != 0) first = i;
      EXPECT_EQ(first, -1) << "row " << r << " value " << first << ": " << (first >= 0 ? got[size_t(first)] : 0.f)
                           << " vs ggml " << (first >= 0 ? e[first] : 0.f);
    }
  }
}

TEST_F(GgmlBlocks, F32RowsPassThrough) {
  const Tensor input = file_->tensor("input");
  std::vector<float> got(size_t(input.dim(1)));
  dequantize_row(input, 2, got.data());
  EXPECT_EQ(std::memcmp(got.data(), input.data<const float>() + 2 * input.dim(1), got.size() * 4), 0);
}

TEST_F(GgmlBlocks, QuantizeMatrixMatchesRowsAndThreads) {
  const Tensor input = file_->tensor("input");
  ThreadPool pool(2);
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    SCOPED_TRACE(std::string(dtype_name(t)));
    const Tensor q = quantize_matrix(input, t, &pool);
    ASSERT_EQ(q.dtype(), t);
    ASSERT_EQ(q.shape(), input.shape());
    const Tensor want = file_->tensor(std::string(t == DType::Q4_K ? "q4_K" : t == DType::Q6_K ? "q6_K"
                                                  : t == DType::Q4_0 ? "q4_0" : "q8_0") + ".quantized");
    EXPECT_EQ(std::memcmp(q.raw(), want.raw(), size_t(q.nbytes())), 0);
    const Tensor single = quantize_matrix(input, t);
    EXPECT_EQ(std::memcmp(single.raw(), q.raw(), size_t(q.nbytes())), 0);
  }
  // From bf16: the same as quantizing the bf16 values widened to f32.
  const Tensor bf = input.converted(DType::BF16);
  const Tensor q = quantize_matrix(bf, DType::Q8_0, &pool);
  const Tensor want = quantize_matrix(bf.converted(DType::F32), DType::Q8_0);
  EXPECT_EQ(std::memcmp(q.raw(), want.raw(), size_t(q.nbytes())), 0);
}

TEST_F(GgmlBlocks, TensorConversionsUseTheBlockFormats) {
  const Tensor input = file_->tensor("input");
  for (DType t : {DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
    const Tensor q = input.converted(t);
    const Tensor want = quantize_matrix(input, t);
    ASSERT_EQ(q.dtype(), t);
    EXPECT_EQ(std::memcmp(q.raw(), want.raw(), size_t(q.nbytes())), 0);
    std::vector<float> rows(size_t(input.numel()));
    for (int64_t r = 0; r < input.dim(0); ++r) dequantize_row(q, r, rows.data() + r * input.dim(1));
    EXPECT_EQ(q.to_f32(), rows);
  }
  // Interleaved (the CPU backend's layout) holds the same values.
  const Tensor x16 = input.converted(DType::Q8_0_X16);
  EXPECT_EQ(x16.dtype(), DType::Q8_0_X16);
  EXPECT_EQ(x16.to_f32(), input.converted(DType::Q8_0).to_f32());
  EXPECT_THROW(input.reshaped({2048}).converted(DType::Q8_0_X16), Error);   // not a matrix
  EXPECT_THROW(input.reshaped({4, 16, 32}).converted(DType::Q4_K), Error);  // rows of 32 values
}

// Row views of an interleaved matrix (2 groups of 16 rows + 8 plain rows here): whole groups
// and views running to the last row read the right values; a view that splits a group is an
// error, never a misread.
TEST(InterleavedRows, ViewsHoldWholeGroups) {
  std::vector<float> v(40 * 64);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(float(i) * 0.37f);
  const Tensor plain = Tensor::from_f32(v, {40, 64}).converted(DType::Q8_0);
  const Tensor x16 = plain.converted(DType::Q8_0_X16);
  for (auto [begin, count] : {std::pair<int64_t, int64_t>{0, 32}, {16, 16}, {16, 24}, {32, 8}, {0, 40}}) {
    SCOPED_TRACE(std::to_string(begin) + " + " + std::to_string(count));
    EXPECT_EQ(x16.rows(begin, count).to_f32(), plain.rows(begin, count).to_f32());
  }
  EXPECT_THROW(x16.rows(8, 16), Error);   // starts inside a group
  EXPECT_THROW(x16.rows(0, 20), Error);   // ends inside a group, before the last row
  EXPECT_THROW(x16.rows(16, 20), Error);
}

TEST(QuantizeValues, VectorizedQ4_0AndQ8_0MatchTheReference) {
  // Random blocks with the cases the scalar code decides one way: ties for the largest
  // magnitude (the first wins), exact .5 products (roundf goes away from zero), zeros and -0.
  std::mt19937 rng(9);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(32 * 400);
  for (float& v : x) v = dist(rng);
  for (size_t b = 0; b < 400; ++b) {
    float* blk = x.data() + 32 * b;
    switch (b % 5) {
      case 0: blk[5] = -blk[20]; break;                             // tie, opposite signs
      case 1: for (int i = 0; i < 32; ++i) blk[i] = i == 0 ? 127.0f : float(i - 16) + 0.5f; break;  // x / d = k + .5
      case 2: for (int i = 0; i < 32; ++i) blk[i] = i == 3 ? -0.0f : 0.0f; break;      // all zero
      case 3: for (int i = 0; i < 32; ++i) blk[i] = float(i) * 127.0f / 31.0f; break;  // quant boundaries
      default: break;
    }
  }
  const int64_t n = int64_t(x.size());
  std::vector<uint8_t> a(size_t(dtype_bytes(DType::Q8_0, n))), b(a.size());
  quant::quantize_q8_0(x.data(), a.data(), n);
  quant::quantize_q8_0_fast(x.data(), b.data(), n);
  EXPECT_EQ(a, b);
  std::vector<uint8_t> c(size_t(dtype_bytes(DType::Q4_0, n))), e(c.size());
  quant::quantize_q4_0(x.data(), c.data(), n);
  quant::quantize_q4_0_fast(x.data(), e.data(), n);
  EXPECT_EQ(c, e);
}

TEST(QuantizeMatrix, BadInputsAreErrors) {
  const Tensor m = Tensor::zeros(DType::F32, {4, 48});
  EXPECT_THROW(quantize_matrix(m, DType::Q4_0), Error);  // 48 is not a multiple of 32
  EXPECT_THROW(quantize_matrix(Tensor::zeros(DType::F32, {2, 320}), DType::Q4_K), Error);  // not x256
  EXPECT_THROW(quantize_matrix(Tensor::zeros(DType::F32, {64}), DType::Q8_0), Error);      // not 2-D
  EXPECT_THROW(quantize_matrix(Tensor::zeros(DType::I32, {2, 32}), DType::Q8_0), Error);   // not float
  EXPECT_THROW(quantize_matrix(Tensor::zeros(DType::F32, {2, 32}), DType::IQ4_NL), Error);  // no quantizer
  EXPECT_THROW(quantize_matrix(Tensor::zeros(DType::F32, {2, 64}), DType::NF4), Error);
  EXPECT_NO_THROW(quantize_matrix(Tensor::zeros(DType::F32, {2, 64}), DType::Q4_0));
}

TEST(QuantizeValues, ZerosAndRoundTrips) {
  // All-zero blocks are all-zero scales; dequantized they are zeros, not NaN.
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::Q2_K, DType::Q3_K, DType::Q5_K}) {
    std::vector<float> x(512, 0.0f), y(512, 1.0f);
    std::vector<uint8_t> q(size_t(dtype_bytes(t, 512)));
    quantize_values(t, x.data(), q.data(), 512);
    dequantize_values(t, q.data(), y.data(), 512);
    for (float v : y) ASSERT_EQ(v, 0.0f) << dtype_name(t);
  }
  // Round-trip error bounded by the format's resolution (relative to the block's max).
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(1024);
  for (float& v : x) v = dist(rng);
  for (auto [t, tol] : {std::pair{DType::Q8_0, 0.01}, {DType::Q6_K, 0.04}, {DType::Q4_0, 0.15}, {DType::Q4_K, 0.15}}) {
    std::vector<uint8_t> q(size_t(dtype_bytes(t, 1024)));
    std::vector<float> y(1024);
    quantize_values(t, x.data(), q.data(), 1024);
    dequantize_values(t, q.data(), y.data(), 1024);
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, double(std::fabs(x[i] - y[i])));
    EXPECT_LT(worst, tol * 4.0) << dtype_name(t);  // values reach ~4 sigma
  }
  std::vector<float> x3(33);
  std::vector<uint8_t> q3(64);
  EXPECT_THROW(quantize_values(DType::Q4_0, x3.data(), q3.data(), 33), Error);
}

}  // namespace
}  // namespace unicorn
