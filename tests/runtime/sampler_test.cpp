#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <utility>

#include "core/error.h"

namespace unicorn {
namespace {

std::vector<float> logits_of(std::initializer_list<float> v) { return v; }

TEST(Sampler, GreedyIsArgmax) {
  Sampler s(SamplingParams{.temperature = 0.0f});
  auto l = logits_of({0.1f, 3.0f, -2.0f, 2.9f});
  EXPECT_EQ(s.sample(l, {}, {}), 1);
}

TEST(Sampler, SeedMakesRunsReproducible) {
  auto draw = [](uint64_t seed) {
    Sampler s(SamplingParams{.temperature = 1.0f, .seed = seed});
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) {
      auto l = logits_of({1.0f, 1.1f, 0.9f, 1.05f, 0.0f});
      out.push_back(s.sample(l, {}, {}));
    }
    return out;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(Sampler, DrawsFollowTheSoftmax) {
  // Logits log(1), log(2), log(7): probabilities 0.1, 0.2, 0.7 at temperature 1.
  Sampler s(SamplingParams{.temperature = 1.0f, .seed = 7});
  std::map<int32_t, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    auto l = logits_of({0.0f, std::log(2.0f), std::log(7.0f)});
    ++counts[s.sample(l, {}, {})];
  }
  EXPECT_NEAR(counts[0] / double(n), 0.1, 0.015);
  EXPECT_NEAR(counts[1] / double(n), 0.2, 0.015);
  EXPECT_NEAR(counts[2] / double(n), 0.7, 0.015);
}

TEST(Sampler, TopKTopPMinPRestrictTheCandidates) {
  for (SamplingParams p : {SamplingParams{.temperature = 1.0f, .top_k = 2, .seed = 1},
                           SamplingParams{.temperature = 1.0f, .top_p = 0.75f, .seed = 1},
                           SamplingParams{.temperature = 1.0f, .min_p = 0.3f, .seed = 1}}) {
    Sampler s(p);
    // Probabilities 0.5, 0.3, 0.15, 0.05: every rule keeps exactly tokens 0 and 1.
    for (int i = 0; i < 2000; ++i) {
      auto l = logits_of({std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)});
      const int32_t t = s.sample(l, {}, {});
      ASSERT_TRUE(t == 0 || t == 1) << "top_k " << p.top_k << " top_p " << p.top_p << " min_p " << p.min_p;
    }
  }
}

TEST(Sampler, LowTemperatureConcentrates) {
  Sampler s(SamplingParams{.temperature = 0.01f, .seed = 3});
  for (int i = 0; i < 100; ++i) {
    auto l = logits_of({1.0f, 1.2f, 0.8f});
    EXPECT_EQ(s.sample(l, {}, {}), 1);
  }
}

TEST(Sampler, Penalties) {
  Sampler rep(SamplingParams{.temperature = 0.0f, .repetition_penalty = 2.0f});
  auto l = logits_of({2.0f, 1.5f, -1.0f});
  const std::vector<int32_t> context = {0, 2};
  rep.apply_penalties(l, context, {});
  EXPECT_FLOAT_EQ(l[0], 1.0f);   // positive: divided
  EXPECT_FLOAT_EQ(l[1], 1.5f);   // unseen
  EXPECT_FLOAT_EQ(l[2], -2.0f);  // negative: multiplied
  auto l2 = logits_of({2.0f, 1.5f, -1.0f});
  EXPECT_EQ(rep.sample(l2, context, {}), 1);  // the penalty changes the greedy choice

  Sampler pf(SamplingParams{.temperature = 0.0f, .presence_penalty = 0.5f, .frequency_penalty = 0.25f});
  auto l3 = logits_of({1.0f, 1.0f, 1.0f});
  const std::vector<int32_t> gen = {1, 1, 2};
  pf.apply_penalties(l3, gen, gen);
  EXPECT_FLOAT_EQ(l3[0], 1.0f);
  EXPECT_FLOAT_EQ(l3[1], 1.0f - 2 * 0.25f - 0.5f);
  EXPECT_FLOAT_EQ(l3[2], 1.0f - 0.25f - 0.5f);

  // The window limits which context tokens count.
  Sampler win(SamplingParams{.temperature = 0.0f, .repetition_penalty = 2.0f, .penalty_window = 1});
  auto l4 = logits_of({2.0f, 2.0f});
  const std::vector<int32_t> ctx = {0, 1};
  win.apply_penalties(l4, ctx, {});
  EXPECT_FLOAT_EQ(l4[0], 2.0f);
  EXPECT_FLOAT_EQ(l4[1], 1.0f);
}

TEST(Sampler, InvalidParameters) {
  EXPECT_THROW(Sampler(SamplingParams{.temperature = -1.0f}), Error);
  EXPECT_THROW(Sampler(SamplingParams{.top_p = 0.0f}), Error);
  EXPECT_THROW(Sampler(SamplingParams{.top_p = 1.5f}), Error);
  EXPECT_THROW(Sampler(SamplingParams{.min_p = 2.0f}), Error);
  EXPECT_THROW(Sampler(SamplingParams{.top_k = -1}), Error);
  EXPECT_THROW(Sampler(SamplingParams{.repetition_penalty = 0.0f}), Error);
  EXPECT_THROW(Sampler(SamplingParams{.presence_penalty = 3.0f}), Error);
}

}  // namespace
}  // namespace unicorn

namespace unicorn {
namespace {

TEST(Sampler, LogitBias) {
  Sampler s(SamplingParams{.temperature = 0.0f, .logit_bias = {{1, -100.0f}, {2, 0.5f}}});
  auto l = std::vector<float>{1.0f, 3.0f, 2.7f};
  EXPECT_EQ(s.sample(l, {}, {}), 2);  // 1 banned, 2 raised to 3.2
  EXPECT_THROW(Sampler(SamplingParams{.logit_bias = {{0, 101.0f}}}), Error);
  EXPECT_THROW(Sampler(SamplingParams{.logit_bias = {{-1, 1.0f}}}), Error);
}

}  // namespace
}  // namespace unicorn

namespace unicorn {
namespace {

// The filters as first written, over every candidate in full (a sort of the whole vocabulary):
// the oracle the sampler, which orders only what the filters can keep, must agree with.
// Returns the kept candidates (weight, token), in the order a draw walks them.
std::vector<std::pair<float, int32_t>> kept_in_full(const std::vector<float>& logits, const SamplingParams& p) {
  std::vector<std::pair<float, int32_t>> c;
  const float inv_t = 1.0f / p.temperature;
  for (size_t i = 0; i < logits.size(); ++i)
    if (std::isfinite(logits[i])) c.emplace_back(logits[i] * inv_t, int32_t(i));
  auto better = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  const bool truncate = p.top_k > 0 || p.top_p < 1.0f || p.min_p > 0.0f;
  if (truncate) std::sort(c.begin(), c.end(), better);
  if (p.top_k > 0 && size_t(p.top_k) < c.size()) c.resize(size_t(p.top_k));
  float mx = c.front().first;
  for (const auto& x : c) mx = std::max(mx, x.first);
  double total = 0;
  for (auto& x : c) {
    x.first = std::exp(x.first - mx);
    total += x.first;
  }
  if (p.top_p < 1.0f) {
    double cum = 0;
    size_t n = 0;
    while (n < c.size()) {
      cum += c[n].first / total;
      ++n;
      if (cum >= p.top_p) break;
    }
    c.resize(n);
  }
  if (p.min_p > 0.0f) {
    size_t n = 1;
    while (n < c.size() && c[n].first >= p.min_p * c.front().first) ++n;
    c.resize(n);
  }
  return c;
}

int32_t draw(const std::vector<std::pair<float, int32_t>>& c, std::mt19937_64& rng) {
  double sum = 0;
  for (const auto& x : c) sum += x.first;
  std::uniform_real_distribution<double> uni(0.0, sum);
  double r = uni(rng);
  for (const auto& x : c) {
    r -= x.first;
    if (r <= 0) return x.second;
  }
  return c.back().second;
}

// Over a Gemma-sized vocabulary (262208: a model-like spread, a few hundred strong tokens, some
// banned at -inf, ties) and a small one (fewer tokens than top-k), every filter and their
// combinations draw what the full sort draws, seed for seed (the same uniform number each).
TEST(Sampler, FiltersAgreeWithAFullSort) {
  std::mt19937 gen(11);
  std::normal_distribution<float> spread(-4.0f, 2.5f);
  std::vector<float> big(262208);
  for (float& x : big) x = spread(gen);
  std::uniform_int_distribution<size_t> pick(0, big.size() - 1);
  std::uniform_real_distribution<float> high(6.0f, 14.0f);
  for (int i = 0; i < 400; ++i) big[pick(gen)] = high(gen);
  for (int i = 0; i < 64; ++i) big[pick(gen)] = -HUGE_VALF;
  for (int i = 0; i < 32; ++i) big[pick(gen)] = 9.5f;  // ties among the strong
  const std::vector<float> flat(5000, 0.25f), small = {1.0f, 0.5f, -HUGE_VALF, 2.0f, 0.5f};
  const std::vector<SamplingParams> configs = {
      {.temperature = 0.8f},
      {.temperature = 1.0f, .top_k = 64},
      {.temperature = 1.0f, .top_k = 64, .top_p = 0.95f},  // Gemma 3's generation_config
      {.temperature = 0.7f, .top_p = 0.9f},
      {.temperature = 1.5f, .top_p = 0.99f},
      {.temperature = 1.0f, .min_p = 0.05f},
      {.temperature = 1.0f, .top_p = 0.8f, .min_p = 0.1f},
      {.temperature = 1.0f, .top_k = 40, .min_p = 0.02f},
      {.temperature = 1.0f, .top_k = 200, .top_p = 0.9f, .min_p = 0.05f},
      {.temperature = 2.0f, .top_k = 100, .top_p = 0.5f, .min_p = 0.3f},
      {.temperature = 1.0f, .top_k = 1},
      {.temperature = 3.0f, .top_k = 10000},
  };
  for (const std::vector<float>* logits : {&std::as_const(big), &flat, &small}) {
    for (SamplingParams p : configs) {
      const auto kept = kept_in_full(*logits, p);
      for (uint64_t seed = 1; seed <= 40; ++seed) {
        p.seed = seed;
        Sampler s(p);
        std::vector<float> l = *logits;
        std::mt19937_64 rng(seed);
        ASSERT_EQ(s.sample(l, {}, {}), draw(kept, rng))
            << "vocab " << logits->size() << " T " << p.temperature << " top_k " << p.top_k << " top_p " << p.top_p
            << " min_p " << p.min_p << " seed " << seed;
      }
    }
  }
}

TEST(Sampler, ArgmaxTakesTheFirstLargest) {
  std::vector<float> v(1000, -1.0f);
  v[700] = 5.0f;
  v[300] = 5.0f;
  v[10] = std::nanf("");
  EXPECT_EQ(argmax(v), 300);
  v[999] = HUGE_VALF;
  EXPECT_EQ(argmax(v), 999);
  EXPECT_EQ(argmax(std::vector<float>(3, -HUGE_VALF)), 0);
}

}  // namespace
}  // namespace unicorn

namespace unicorn {
namespace {

// top_indices and log_sum_exp (the server's top_logprobs) against a sort and a plain f64 sum.
TEST(Sampler, TopIndicesAndLogSumExp) {
  std::mt19937 gen(5);
  std::normal_distribution<float> spread(0.0f, 3.0f);
  std::vector<float> v(100000);
  for (float& x : v) x = spread(gen);
  v[123] = v[77];  // a tie
  v[5] = -HUGE_VALF;
  std::vector<int32_t> order(v.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = int32_t(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return v[size_t(a)] > v[size_t(b)]; });
  for (size_t k : {size_t(1), size_t(5), size_t(20), size_t(300)}) {
    const std::vector<int32_t> top = top_indices(v, k);
    ASSERT_EQ(top, std::vector<int32_t>(order.begin(), order.begin() + std::ptrdiff_t(k))) << k;
  }
  EXPECT_EQ(top_indices(std::vector<float>{1.0f, -HUGE_VALF, 3.0f}, 5), (std::vector<int32_t>{2, 0}));
  double m = -HUGE_VAL, s = 0;
  for (float x : v) m = std::max(m, double(x));
  for (float x : v) s += std::exp(double(x) - m);
  EXPECT_NEAR(log_sum_exp(v), m + std::log(s), 1e-5);
  EXPECT_EQ(log_sum_exp(std::vector<float>(3, -HUGE_VALF)), -HUGE_VAL);
}

}  // namespace
}  // namespace unicorn
