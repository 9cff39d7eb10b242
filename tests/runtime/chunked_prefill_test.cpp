// Chunked prefill followed by token-by-token decode gives the logits of one full forward
// (and of Hugging Face), including when chunks are smaller than the sliding window, when a
// chunk would cut an image, and on the scalar reference backend.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "formats/safetensors.h"
#include "models/gemma3/image_tokens.h"
#include "runtime/engine.h"
#include "support/devices.h"
#include "support/test_paths.h"

namespace unicorn {
namespace {

std::vector<int32_t> ids_of(const SafetensorsFile& ref) {
  const Tensor t = ref.tensor("input_ids");
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < t.numel(); ++i) ids.push_back(int32_t(t.data<const int64_t>()[i]));
  return ids;
}

double max_abs_diff_rows(const Tensor& ours, int64_t our_row, const std::vector<float>& ref, int64_t ref_row,
                         int64_t vocab) {
  double m = 0;
  for (int64_t j = 0; j < vocab; ++j)
    m = std::max(m, double(std::fabs(ours.data<const float>()[our_row * vocab + j] - ref[size_t(ref_row * vocab + j)])));
  return m;
}

struct Case {
  std::string model;
  int64_t chunk;
  int64_t decode_tail;  // last tokens fed one at a time through Engine::decode
  std::string device;
};

class ChunkedPrefill : public ::testing::TestWithParam<Case> {};

TEST_P(ChunkedPrefill, MatchesFullForward) {
  const Case c = GetParam();
  if (c.device == "cuda" && !test::backend_or_skip("cuda")) GTEST_SKIP() << "no CUDA GPU here";
  // Chunking, not rounding, is under test: every product in f32 on the GPU too.
  test::ScopedEnv f32("UNICORN_CUDA_GEMM", c.device == "cuda" ? "f32" : nullptr);
  const std::string dir = test::data_path("models/" + c.model);
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  const std::vector<int32_t> ids = ids_of(*ref);
  const std::vector<float> want = ref->tensor("logits").to_f32();
  EngineOptions opts;
  opts.device = c.device;
  opts.threads = 2;
  opts.context = int64_t(ids.size());
  opts.max_chunk = c.chunk;
  auto engine = Engine::load(dir, opts);
  const int64_t vocab = engine->config().text.vocab_size;
  Tensor features;
  if (engine->config().multimodal()) features = engine->encode_images(ref->tensor("pixel_values"));

  auto seq = engine->new_sequence();
  const int64_t prefill = int64_t(ids.size()) - c.decode_tail;
  const Tensor logits = engine->append(*seq, std::span(ids).first(size_t(prefill)),
                                       features.defined() ? &features : nullptr, true);
  double worst = 0;
  for (int64_t i = 0; i < prefill; ++i) worst = std::max(worst, max_abs_diff_rows(logits, i, want, i, vocab));
  for (int64_t i = prefill; i < int64_t(ids.size()); ++i) {
    Sequence* s = seq.get();
    const Tensor step = engine->decode(std::span<Sequence* const>(&s, 1), std::span(ids).subspan(size_t(i), 1));
    worst = std::max(worst, max_abs_diff_rows(step, 0, want, i, vocab));
  }
  EXPECT_EQ(seq->length(), int64_t(ids.size()));
  // Same tolerance as the single-pass reference test: 1e-3 x max(1, std) with std ~4.4.
  EXPECT_LE(worst, 4e-3) << c.model << " chunk " << c.chunk;
}

INSTANTIATE_TEST_SUITE_P(
    Models, ChunkedPrefill,
    ::testing::Values(Case{"tiny-text", 1, 0, "cpu"},     // token by token through the 6-slot window
                      Case{"tiny-text", 4, 20, "cpu"},    // chunks smaller than the window, then decode
                      Case{"tiny-text", 13, 5, "reference"},
                      Case{"tiny-mm", 3, 10, "cpu"},      // the 16-token image forces a bigger chunk
                      Case{"tiny-mm", 20, 15, "cpu"},     // a chunk boundary would cut the image
                      Case{"tiny-mm-896", 100, 30, "cpu"},
                      Case{"tiny-text", 1, 0, "cuda"}, Case{"tiny-text", 4, 20, "cuda"},
                      Case{"tiny-mm", 20, 15, "cuda"}, Case{"tiny-mm-896", 100, 30, "cuda"}),
    [](const ::testing::TestParamInfo<Case>& info) {
      std::string name = info.param.model + "_chunk" + std::to_string(info.param.chunk) + "_" + info.param.device;
      for (char& ch : name)
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return name;
    });

TEST(ChunkPlan, NeverCutsAnImage) {
  const std::vector<int32_t> ids = {1, 2, 9, 9, 9, 9, 3, 4, 9, 9, 5};
  const auto chunks = gemma3::plan_chunks(ids, 9, 4);
  const std::vector<std::pair<int64_t, int64_t>> want = {{0, 2}, {2, 6}, {6, 10}, {10, 11}};
  EXPECT_EQ(chunks, want);
  EXPECT_THROW(gemma3::plan_chunks(ids, 9, 3), Error);  // a 4-token image cannot fit
  const auto groups = gemma3::image_groups(ids, 9, 100);
  EXPECT_EQ(groups[1], -1);
  EXPECT_EQ(groups[2], 102);
  EXPECT_EQ(groups[5], 102);
  EXPECT_EQ(groups[8], 108);
}

TEST(EngineErrors, ImageTokenCountMismatch) {
  const std::string dir = test::data_path("models/tiny-mm");
  auto engine = Engine::load(dir, {});
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  std::vector<int32_t> ids = ids_of(*ref);
  const Tensor features = engine->encode_images(ref->tensor("pixel_values"));
  // Two image runs but features for one image.
  std::vector<int32_t> twice = ids;
  twice.insert(twice.end(), ids.begin() + 6, ids.begin() + 24);
  auto seq = engine->new_sequence();
  try {
    engine->append(*seq, twice, &features, false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("32 image tokens"), std::string::npos) << e.what();
  }
  EXPECT_EQ(seq->length(), 0);  // nothing was appended
  // Image tokens without any image.
  EXPECT_THROW(engine->append(*seq, ids, nullptr, false), Error);
  EXPECT_EQ(seq->length(), 0);
}

TEST(EngineErrors, TokenOutsideVocabulary) {
  auto engine = Engine::load(test::data_path("models/tiny-text"), {});
  auto seq = engine->new_sequence();
  const std::vector<int32_t> ids = {2, 5, 1024};
  try {
    engine->append(*seq, ids, nullptr, false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1024"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos) << e.what();
  }
  EXPECT_EQ(seq->length(), 0);
  const std::vector<int32_t> negative = {2, -3};
  EXPECT_THROW(engine->append(*seq, negative, nullptr, false), Error);
  // The sequence still works afterwards.
  const std::vector<int32_t> good = {2, 5, 7};
  EXPECT_EQ(engine->append(*seq, good, nullptr, false).dim(0), 1);
  EXPECT_EQ(seq->length(), 3);
}

TEST(EngineErrors, ContextFull) {
  EngineOptions opts;
  opts.context = 8;
  auto engine = Engine::load(test::data_path("models/tiny-text"), opts);
  auto seq = engine->new_sequence();
  const std::vector<int32_t> ids(9, 5);
  EXPECT_THROW(engine->append(*seq, ids, nullptr, false), Error);
  EXPECT_EQ(seq->length(), 0);
}

}  // namespace
}  // namespace unicorn

namespace unicorn {
namespace {

// Rolling a sequence back (what prefix reuse does) and continuing gives the logits of a
// fresh sequence, including on sliding-window layers whose ring has wrapped; going back
// further than the ring holds is refused.
TEST(SequenceTruncate, ContinuesLikeAFreshSequence) {
  EngineOptions opts;
  opts.threads = 2;
  opts.context = 64;
  opts.max_chunk = 4;  // window 6 + chunk 4: the ring holds 10 positions
  auto engine = Engine::load(test::data_path("models/tiny-text"), opts);
  std::vector<int32_t> a, b;
  for (int i = 0; i < 30; ++i) a.push_back(int32_t(2 + (i * 37) % 1000));
  b.assign(a.begin(), a.begin() + 27);
  for (int i = 0; i < 5; ++i) b.push_back(int32_t(500 + i * 11));

  auto seq = engine->new_sequence();
  engine->append(*seq, a, nullptr, false);
  EXPECT_FALSE(seq->truncate(15));  // positions 9..14 were overwritten in the ring
  EXPECT_EQ(seq->length(), 30);
  ASSERT_TRUE(seq->truncate(27));
  const Tensor cont = engine->append(*seq, std::span(b).subspan(27), nullptr, true);

  auto fresh = engine->new_sequence();
  const Tensor full = engine->append(*fresh, b, nullptr, true);
  const int64_t vocab = full.dim(1);
  double worst = 0;
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < vocab; ++j)
      worst = std::max(worst, double(std::fabs(cont.data<float>()[i * vocab + j] - full.data<float>()[(27 + i) * vocab + j])));
  EXPECT_LE(worst, 1e-4);
  EXPECT_EQ(seq->tokens(), fresh->tokens());
}

}  // namespace
}  // namespace unicorn
