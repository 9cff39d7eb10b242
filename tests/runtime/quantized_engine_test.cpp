// EngineOptions::quantize: the text decoder's matrices are quantized while loading, the
// vision tower is not, and the quantized model computes what its dequantized weights say.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "formats/safetensors.h"
#include "runtime/engine.h"
#include "support/test_paths.h"

namespace unicorn {
namespace {

std::vector<int32_t> prompt_ids(const std::string& dir) {
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  const Tensor t = ref->tensor("input_ids");
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < t.numel(); ++i) ids.push_back(int32_t(t.data<const int64_t>()[i]));
  return ids;
}

std::unique_ptr<Engine> load(const std::string& dir, const std::string& device, std::optional<DType> quantize) {
  EngineOptions o;
  o.device = device;
  o.threads = 2;
  o.context = 256;
  o.quantize = quantize;
  return Engine::load(dir, o);
}

// Logits of every prompt token.
Tensor logits_of(Engine& e, const std::vector<int32_t>& ids) {
  auto seq = e.new_sequence();
  return e.append(*seq, ids, nullptr, true);
}

// max |a - b| over max |b|.
double relative_max_diff(const Tensor& a, const Tensor& b) {
  double worst = 0, scale = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    worst = std::max(worst, double(std::fabs(a.data<const float>()[i] - b.data<const float>()[i])));
    scale = std::max(scale, double(std::fabs(b.data<const float>()[i])));
  }
  return worst / scale;
}

TEST(QuantizedEngine, QuantizesTextMatricesOnly) {
  const std::string dir = test::data_path("models/tiny-mm");
  auto e = load(dir, "cpu", DType::Q4_0);
  const auto& w = e->model().weights();
  EXPECT_EQ(w.get("text.embed").dtype(), DType::Q4_0);
  EXPECT_EQ(w.get("text.blk.0.attn_q").dtype(), DType::Q4_0);
  EXPECT_EQ(w.get("text.blk.5.ffn_down").dtype(), DType::Q4_0);
  EXPECT_NE(w.get("text.blk.0.attn_norm").dtype(), DType::Q4_0);
  const auto text = w.stats(gemma3::Component::Text), vision = w.stats(gemma3::Component::Vision);
  EXPECT_GT(text.bytes_by_dtype.count("Q4_0"), 0u);
  EXPECT_EQ(vision.bytes_by_dtype.count("Q4_0"), 0u);
  // Q4_K falls back to Q8_0 for rows of 64 values (not whole 256-value super-blocks).
  auto k = load(dir, "reference", DType::Q4_K);
  EXPECT_EQ(k->model().weights().get("text.blk.0.attn_q").dtype(), DType::Q8_0);
  EXPECT_THROW(load(dir, "cpu", DType::Q4_1), Error);
}

TEST(QuantizedEngine, CpuIntegerKernelsMatchReferenceOnQuantizedWeights) {
  // The reference backend multiplies the dequantized weights in f64; the CPU backend rounds
  // activations to 8 bits per block first (as llama.cpp does). Through 5 layers that moves
  // the logits by about 1% of their scale; 3% bounds it.
  const std::string dir = test::data_path("models/tiny-text");
  const std::vector<int32_t> ids = prompt_ids(dir);
  for (DType q : {DType::Q8_0, DType::Q4_0}) {
    SCOPED_TRACE(std::string(dtype_name(q)));
    auto cpu = load(dir, "cpu", q);
    auto ref = load(dir, "reference", q);
    const Tensor a = logits_of(*cpu, ids), b = logits_of(*ref, ids);
    EXPECT_LT(relative_max_diff(a, b), 0.03);
  }
}

TEST(QuantizedEngine, Q8_0StaysCloseToTheCheckpoint) {
  // Weight quantization error: Q8_0 keeps the logits within ~1% of the unquantized model's,
  // Q4_0 within ~15% (random tiny weights have no outliers to lose).
  const std::string dir = test::data_path("models/tiny-text");
  const std::vector<int32_t> ids = prompt_ids(dir);
  auto plain = load(dir, "reference", std::nullopt);
  const Tensor want = logits_of(*plain, ids);
  auto q8 = load(dir, "reference", DType::Q8_0);
  auto q4 = load(dir, "reference", DType::Q4_0);
  const double d8 = relative_max_diff(logits_of(*q8, ids), want), d4 = relative_max_diff(logits_of(*q4, ids), want);
  EXPECT_LT(d8, 0.02);
  EXPECT_LT(d4, 0.15);
  EXPECT_LT(d8, d4);
}

}  // namespace
}  // namespace unicorn
