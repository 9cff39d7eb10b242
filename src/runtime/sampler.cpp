#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/error.h"

namespace unicorn {

void SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || temperature > 100.0f) fail("temperature must be in [0, 100], got {}", temperature);
  if (top_k < 0) fail("top_k must not be negative, got {}", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) fail("top_p must be in (0, 1], got {}", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) fail("min_p must be in [0, 1], got {}", min_p);
  if (!(repetition_penalty > 0.0f) || repetition_penalty > 100.0f)
    fail("repetition_penalty must be in (0, 100], got {}", repetition_penalty);
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f))
    fail("presence_penalty must be in [-2, 2], got {}", presence_penalty);
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f))
    fail("frequency_penalty must be in [-2, 2], got {}", frequency_penalty);
  if (penalty_window < 0) fail("penalty window must not be negative, got {}", penalty_window);
  for (const auto& [id, bias] : logit_bias) {
    if (id < 0) fail("logit_bias: token id {} is negative", id);
    if (!(bias >= -100.0f && bias <= 100.0f)) fail("logit_bias: bias {} for token {} is outside [-100, 100]", bias, id);
  }
}

int32_t argmax(std::span<const float> values) {
  return int32_t(std::max_element(values.begin(), values.end()) - values.begin());
}

Sampler::Sampler(const SamplingParams& params) : params_(params) {
  params_.validate();
  rng_.seed(params_.seed ? *params_.seed : std::random_device{}());
}

SamplingParams sampling_defaults(const gemma3::GenerationConfig& g) {
  SamplingParams p;
  const bool sample = g.do_sample.value_or(false);
  p.temperature = sample ? float(g.temperature.value_or(1.0)) : 0.0f;
  if (sample) {
    p.top_k = int32_t(g.top_k.value_or(0));
    p.top_p = float(g.top_p.value_or(1.0));
    p.min_p = float(g.min_p.value_or(0.0));
  }
  if (g.repetition_penalty) p.repetition_penalty = float(*g.repetition_penalty);
  return p;
}

void Sampler::apply_penalties(std::span<float> logits, std::span<const int32_t> context,
                              std::span<const int32_t> generated) const {
  const int64_t vocab = int64_t(logits.size());
  for (const auto& [id, bias] : params_.logit_bias)
    if (id < vocab) logits[size_t(id)] += bias;
  if (params_.repetition_penalty != 1.0f) {
    // ref: HF RepetitionPenaltyLogitsProcessor: divide positive logits, multiply negative.
    const size_t from = params_.penalty_window > 0 && context.size() > size_t(params_.penalty_window)
                            ? context.size() - size_t(params_.penalty_window)
                            : 0;
    std::vector<int32_t> seen(context.begin() + std::ptrdiff_t(from), context.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (int32_t t : seen) {
      if (t < 0 || t >= vocab) continue;
      float& l = logits[size_t(t)];
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    // ref: OpenAI: logit -= count * frequency_penalty + (count > 0) * presence_penalty
    std::unordered_map<int32_t, int> counts;
    for (int32_t t : generated) ++counts[t];
    for (const auto& [t, c] : counts) {
      if (t < 0 || t >= vocab) continue;
      logits[size_t(t)] -= float(c) * params_.frequency_penalty + params_.presence_penalty;
    }
  }
}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> context,
                        std::span<const int32_t> generated) {
  if (logits.empty()) fail("cannot sample from empty logits");
  apply_penalties(logits, context, generated);
  if (params_.greedy()) return argmax(logits);

  // Temperature, then keep candidates by top-k, top-p and min-p over the softmax.
  candidates_.clear();
  const float inv_t = 1.0f / params_.temperature;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isfinite(logits[i])) candidates_.emplace_back(logits[i] * inv_t, int32_t(i));
  }
  if (candidates_.empty()) return argmax(logits);
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  // Order only as much as the filters need: the k best for top-k, all of them for top-p and
  // min-p (a full sort: partial_sort over 262k candidates is several times slower), none
  // for plain temperature sampling.
  const bool truncate = params_.top_k > 0 || params_.top_p < 1.0f || params_.min_p > 0.0f;
  if (params_.top_k > 0 && size_t(params_.top_k) < candidates_.size()) {
    std::nth_element(candidates_.begin(), candidates_.begin() + params_.top_k, candidates_.end(), by_logit);
    candidates_.resize(size_t(params_.top_k));
  }
  if (truncate) std::sort(candidates_.begin(), candidates_.end(), by_logit);
  float mx = candidates_.front().first;
  for (const auto& c : candidates_) mx = std::max(mx, c.first);
  double total = 0;
  for (auto& c : candidates_) {
    c.first = std::exp(c.first - mx);
    total += c.first;
  }
  if (params_.top_p < 1.0f) {
    double cum = 0;
    size_t n = 0;
    while (n < candidates_.size()) {
      cum += candidates_[n].first / total;
      ++n;
      if (cum >= params_.top_p) break;
    }
    candidates_.resize(n);
  }
  if (params_.min_p > 0.0f) {
    const float threshold = params_.min_p * candidates_.front().first;  // relative to the best (sorted first)
    size_t n = 1;
    while (n < candidates_.size() && candidates_[n].first >= threshold) ++n;
    candidates_.resize(n);
  }
  double sum = 0;
  for (const auto& c : candidates_) sum += c.first;
  std::uniform_real_distribution<double> uni(0.0, sum);
  double r = uni(rng_);
  for (const auto& c : candidates_) {
    r -= c.first;
    if (r <= 0) return c.second;
  }
  return candidates_.back().second;
}

}  // namespace unicorn
