// The forward pass against Hugging Face transformers' float32 outputs for the tiny
// reference checkpoints (tests/data/models/*/reference.safetensors).
//
// Tolerance: max |ours - HF| <= 1e-3 * max(1, std(reference)) on logits, vision hidden states
// and image features. We compute in f32 from the same bf16 weights, so the differences are
// accumulation order only (observed ~1e-5).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "formats/safetensors.h"
#include "models/gemma3/image_tokens.h"
#include "models/gemma3/model.h"
#include "ops/reference_backend.h"
#include "support/devices.h"
#include "support/test_paths.h"

namespace unicorn::gemma3 {
namespace {

struct Loaded {
  std::unique_ptr<Model> model;
  std::shared_ptr<SafetensorsFile> ref;
};

Loaded load(const std::string& name, Backend& backend) {
  const std::string dir = test::data_path("models/" + name);
  Config config = load_config(dir);
  auto files = std::make_shared<const SafetensorsSet>(SafetensorsSet::open(dir));
  Weights weights = Weights::from_safetensors(files, config);
  return {std::make_unique<Model>(std::move(config), std::move(weights), Placement::all(backend)),
          SafetensorsFile::open(dir + "/reference.safetensors")};
}

std::vector<int32_t> input_ids(const SafetensorsFile& ref) {
  const Tensor t = ref.tensor("input_ids");
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < t.numel(); ++i) ids.push_back(int32_t(t.data<const int64_t>()[i]));
  return ids;
}

double stddev(const std::vector<float>& v) {
  double m = 0, s = 0;
  for (float x : v) m += x;
  m /= double(v.size());
  for (float x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size()));
}

// Max |a - b| relative to the tolerance unit max(1, std(b)).
double scaled_max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double mx = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) mx = std::max(mx, double(std::fabs(a[i] - b[i])));
  return mx / std::max(1.0, stddev(b));
}

constexpr double kTolerance = 1e-3;
// bf16 inputs to the tensor-core products: measured 0.018 (tiny-text), 0.027 (tiny-mm) and
// 0.024 (tiny-mm-896) on an H200; the tiny models' activations are large next to their std.
constexpr double kTensorCoreTolerance = 5e-2;

// Full forward of a whole reference sequence (one chunk), all logits.
Tensor forward_all(Model& model, const std::vector<int32_t>& ids, const Tensor* features, int64_t chunk) {
  const int32_t image_token = int32_t(model.config().image_token_index);
  auto cache = model.new_cache(int64_t(ids.size()) + 8, chunk);
  const std::vector<int32_t> groups =
      model.config().multimodal() ? image_groups(ids, image_token, 0) : std::vector<int32_t>(ids.size(), -1);
  DecodeItem item{cache.get(), ids, groups, features, true};
  return model.decode(std::span<DecodeItem>(&item, 1));
}

// (model, device): every backend against the same references; "cuda*" skip without a GPU.
// "cuda" multiplies 16+ rows on tensor cores with bf16 inputs (prefill, the vision tower):
// rounding x and W to 8 bits of mantissa costs up to ~kTensorCoreTolerance; "cuda-f32" keeps
// every product in f32 and meets kTolerance.
class ReferenceModels : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(ReferenceModels, LogitsMatchTransformers) {
  const auto& [name, device] = GetParam();
  std::unique_ptr<Backend> backend = test::backend_or_skip(device);
  if (!backend) GTEST_SKIP() << "no " << device << " device here";
  const double tolerance = device == "cuda" ? kTensorCoreTolerance : kTolerance;
  Loaded l = load(name, *backend);
  const std::vector<int32_t> ids = input_ids(*l.ref);
  Tensor features;
  if (l.model->config().multimodal()) {
    const auto img = l.model->encode_images(l.ref->tensor("pixel_values"), true);
    const double dv = scaled_max_diff(img.last_hidden_state.to_f32(), l.ref->tensor("vision_last_hidden_state").to_f32());
    EXPECT_LE(dv, tolerance) << "vision_last_hidden_state";
    const double df = scaled_max_diff(img.features.to_f32(), l.ref->tensor("image_features").to_f32());
    EXPECT_LE(df, tolerance) << "image_features";
    features = img.features.reshaped({img.features.dim(0) * img.features.dim(1), img.features.dim(2)});
    std::printf("%s on %s: vision %.3g, image features %.3g\n", name.c_str(), device.c_str(), dv, df);
  }
  const Tensor logits = forward_all(*l.model, ids, features.defined() ? &features : nullptr,
                                    int64_t(ids.size()));
  const std::vector<float> ref = l.ref->tensor("logits").to_f32();
  const double d = scaled_max_diff(logits.to_f32(), ref);
  std::printf("%s on %s: logits scaled max diff %.3g\n", name.c_str(), device.c_str(), d);
  EXPECT_LE(d, tolerance);
  if (l.ref->contains("logits_without_token_type_ids")) {
    // A causal-only implementation lands on these instead: we must be far from them.
    const double wrong = scaled_max_diff(logits.to_f32(), l.ref->tensor("logits_without_token_type_ids").to_f32());
    EXPECT_GT(wrong, 100 * kTolerance) << "logits look like the causal-only mistake";
  }
}

INSTANTIATE_TEST_SUITE_P(Tiny, ReferenceModels,
                         ::testing::Combine(::testing::Values("tiny-text", "tiny-mm", "tiny-mm-896"),
                                            ::testing::Values("cpu", "cuda-f32", "cuda")),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param);
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace unicorn::gemma3

namespace unicorn::gemma3 {
namespace {

// Decode steps as CUDA graphs (the default) give the same logits, bit for bit, as the same
// steps launched op by op (UNICORN_CUDA_GRAPHS=0): one sequence, then two at once (another
// recording key), then 17, over bf16 and Q4_0 weights (the int8 tensor-core products inside the
// graph). The first recording of a key fills no arena yet, so it runs op by op; the others are
// graphs. tiny-text's head dim (16) takes one sequence's attention kernel of one block a head,
// tiny-mm's (32) the kernel split over the keys (its partial sums in the step's arena).
TEST(CudaGraphs, DecodeStepsEqualOpByOp) {
  std::unique_ptr<Backend> graphs = test::backend_or_skip("cuda");
  if (!graphs) GTEST_SKIP() << "no CUDA GPU here";
  std::unique_ptr<Backend> plain;
  {
    test::ScopedEnv off("UNICORN_CUDA_GRAPHS", "0");
    plain = test::backend_or_skip("cuda");
  }
  for (const std::string name : {"tiny-text", "tiny-mm"}) {
    for (DType weights : {DType::BF16, DType::Q4_0}) {
      SCOPED_TRACE(name + " " + std::string(dtype_name(weights)));
      auto run = [&](Backend& backend) {
        Loaded l = load(name, backend);
        if (weights != DType::BF16) {
          const std::string dir = test::data_path("models/" + name);
          Config config = load_config(dir);
          Weights w =
              Weights::from_safetensors(std::make_shared<const SafetensorsSet>(SafetensorsSet::open(dir)), config);
          w.quantize_text_matrices(weights, DType::Q8_0, nullptr);
          l.model = std::make_unique<Model>(std::move(config), std::move(w), Placement::all(backend));
        }
        const std::vector<int32_t> ids = input_ids(*l.ref);
        const int64_t n = int64_t(ids.size());
        auto a = l.model->new_cache(n + 16, n), b = l.model->new_cache(n + 16, n);
        std::vector<float> out;
        auto step = [&](std::vector<KvCache*> caches, std::span<const int32_t> tokens) {
          std::vector<int32_t> groups(tokens.size(), -1);
          std::vector<DecodeItem> items;
          for (KvCache* c : caches) items.push_back({c, tokens, groups, nullptr, false});
          const std::vector<float> logits = l.model->decode(items).to_f32();
          out.insert(out.end(), logits.begin(), logits.end());
        };
        step({a.get()}, std::span<const int32_t>(ids).first(size_t(n / 2)));
        step({b.get()}, std::span<const int32_t>(ids).first(size_t(n / 3)));
        for (int64_t i = 0; i < 5; ++i) step({a.get()}, std::span<const int32_t>(ids).subspan(size_t(i), 1));
        for (int64_t i = 0; i < 5; ++i)
          step({a.get(), b.get()}, std::span<const int32_t>(ids).subspan(size_t(i + 3), 1));
        // 17 sequences: over bf16 the products go to cuBLAS, which is not recorded, so the
        // recording is given up and the groups run op by op (the same logits either way).
        std::vector<std::unique_ptr<KvCache>> many;
        std::vector<KvCache*> ptrs;
        for (int s = 0; s < 17; ++s) {
          many.push_back(l.model->new_cache(n + 16, n));
          ptrs.push_back(many.back().get());
        }
        for (int64_t i = 0; i < 3; ++i) step(ptrs, std::span<const int32_t>(ids).subspan(size_t(i), 1));
        return out;
      };
      const int64_t before = graphs->graph_launches();
      const std::vector<float> want = run(*plain), got = run(*graphs);
      ASSERT_EQ(got.size(), want.size());
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
          << "graph and op-by-op logits differ";
      EXPECT_GE(graphs->graph_launches() - before, 6);
      EXPECT_EQ(plain->graph_launches(), 0);
    }
  }
}

// The next step's first graph group, recorded a step ahead while the LM head runs, is launched
// only when the step that comes is the one it was recorded for: steps one after another (kept
// recordings launched), then a cache cut back and decoded again from an earlier position, a
// batch of two and back to one, and a cache that fills its context (nothing recorded past it).
// Every step's logits equal, bit for bit, those with nothing recorded ahead
// (UNICORN_CUDA_GRAPH_AHEAD=0) and those launched op by op (UNICORN_CUDA_GRAPHS=0).
TEST(CudaGraphs, StepsRecordedAheadEqualOpByOp) {
  std::unique_ptr<Backend> ahead = test::backend_or_skip("cuda");
  if (!ahead) GTEST_SKIP() << "no CUDA GPU here";
  std::unique_ptr<Backend> not_ahead, plain;
  {
    test::ScopedEnv off("UNICORN_CUDA_GRAPH_AHEAD", "0");
    not_ahead = test::backend_or_skip("cuda");
  }
  {
    test::ScopedEnv off("UNICORN_CUDA_GRAPHS", "0");
    plain = test::backend_or_skip("cuda");
  }
  const std::string dir = test::data_path("models/tiny-mm");
  auto run = [&](Backend& backend) {
    Config config = load_config(dir);
    Weights w = Weights::from_safetensors(std::make_shared<const SafetensorsSet>(SafetensorsSet::open(dir)), config);
    w.quantize_text_matrices(DType::Q4_0, DType::Q8_0, nullptr);
    Model model(std::move(config), std::move(w), Placement::all(backend));
    const std::vector<int32_t> ids = input_ids(*SafetensorsFile::open(dir + "/reference.safetensors"));
    const int64_t n = int64_t(ids.size()), half = n / 2;
    auto a = model.new_cache(n + 32, n), b = model.new_cache(n + 32, n), small = model.new_cache(half + 2, n);
    std::vector<float> out;
    auto step = [&](std::vector<KvCache*> caches, std::span<const int32_t> tokens) {
      std::vector<int32_t> groups(tokens.size(), -1);
      std::vector<DecodeItem> items;
      for (KvCache* c : caches) items.push_back({c, tokens, groups, nullptr, false});
      const std::vector<float> logits = model.decode(items).to_f32();
      out.insert(out.end(), logits.begin(), logits.end());
    };
    auto token = [&](int64_t i) { return std::span<const int32_t>(ids).subspan(size_t(i % n), 1); };
    step({a.get()}, std::span<const int32_t>(ids).first(size_t(half)));
    step({b.get()}, std::span<const int32_t>(ids).first(size_t(half)));
    for (int64_t i = 0; i < 8; ++i) step({a.get()}, token(i));
    EXPECT_TRUE(a->truncate(a->length() - 3));
    for (int64_t i = 0; i < 4; ++i) step({a.get()}, token(i + 5));
    step({a.get(), b.get()}, token(2));
    for (int64_t i = 0; i < 3; ++i) step({a.get()}, token(i + 1));
    step({small.get()}, std::span<const int32_t>(ids).first(size_t(half)));
    for (int64_t i = 0; i < 2; ++i) step({small.get()}, token(i));
    EXPECT_EQ(small->length(), small->context());
    std::vector<int32_t> groups{-1};
    std::vector<DecodeItem> full{{small.get(), token(0), groups, nullptr, false}};
    EXPECT_THROW(model.decode(full), Error);  // context full
    for (int64_t i = 0; i < 3; ++i) step({a.get()}, token(i + 4));
    return out;
  };
  const int64_t kept = ahead->graph_launches_kept();
  const std::vector<float> want = run(*plain), got = run(*ahead), got_not_ahead = run(*not_ahead);
  ASSERT_EQ(got.size(), want.size());
  ASSERT_EQ(got_not_ahead.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
      << "logits with graphs recorded ahead differ from op-by-op ones";
  EXPECT_EQ(std::memcmp(got_not_ahead.data(), want.data(), got.size() * sizeof(float)), 0)
      << "logits with graphs (none ahead) differ from op-by-op ones";
  // Steps after the first of each run of single steps on one cache (the first ones of a key
  // run op by op while the arena is sized): at least the 8-step run's last 6 and a few more.
  EXPECT_GE(ahead->graph_launches_kept() - kept, 8);
  EXPECT_EQ(not_ahead->graph_launches_kept(), 0);
  EXPECT_EQ(plain->graph_launches(), 0);
  // The steps' uploads (positions, masks, a batch's attention arguments) went before their
  // graphs, not into them.
  EXPECT_EQ(ahead->graph_copies(), 0);
  EXPECT_EQ(not_ahead->graph_copies(), 0);
}

}  // namespace
}  // namespace unicorn::gemma3
