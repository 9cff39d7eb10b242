#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <unordered_map>

#include "backends/cpu/simd_kernels.h"
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
  const float m = cpu::max_f32(values.data(), values.size(), false);
  const size_t i = cpu::find_f32(values.data(), values.size(), m);
  return i < values.size() ? int32_t(i) : 0;  // (none: empty, or all NaN)
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

namespace {

using Candidate = std::pair<float, int32_t>;  // a scaled logit (later its weight), its token

// The sampler's order: the higher scaled logit first, the lower token id on ties.
bool better(const Candidate& a, const Candidate& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

// A scaled logit at or below the k-th best of the finite ones: the k-th best of every
// stride-th (1 / 64 of a 262k vocabulary; all of a small one), or -inf where those are fewer than k.
float top_k_floor(std::span<const float> logits, float inv_t, size_t k, std::vector<float>& scratch) {
  const size_t stride = std::max<size_t>(1, logits.size() / 4096);
  scratch.clear();
  for (size_t i = 0; i < logits.size(); i += stride)
    if (std::isfinite(logits[i])) scratch.push_back(logits[i] * inv_t);
  if (scratch.size() < k) return -HUGE_VALF;
  std::nth_element(scratch.begin(), scratch.begin() + std::ptrdiff_t(k - 1), scratch.end(), std::greater<float>());
  return scratch[k - 1];
}

// The finite values with value * scale >= floor, as candidates (value * scale, index) in index
// order (collect_at_least; index is its scratch).
void gather_at_least(std::span<const float> values, float scale, float floor, std::vector<int32_t>& index,
                     std::vector<Candidate>& out) {
  index.resize(values.size());
  index.resize(cpu::collect_at_least(values.data(), values.size(), scale, floor, index.data()));
  out.clear();
  for (int32_t i : index) out.emplace_back(values[size_t(i)] * scale, i);
}

// The k best (better) of the finite scaled values at or above `floor`, ordered: those at or
// above top_k_floor gathered, then cut to k.
void top_k_candidates(std::span<const float> values, float scale, size_t k, float floor, std::vector<float>& scratch,
                      std::vector<int32_t>& index, std::vector<Candidate>& out) {
  gather_at_least(values, scale, std::max(top_k_floor(values, scale, k, scratch), floor), index, out);
  if (out.size() > k) {
    std::nth_element(out.begin(), out.begin() + std::ptrdiff_t(k), out.end(), better);
    out.resize(k);
  }
  std::sort(out.begin(), out.end(), better);
}

}  // namespace

std::vector<int32_t> top_indices(std::span<const float> values, size_t k) {
  std::vector<float> scratch;
  std::vector<int32_t> index, out;
  std::vector<Candidate> c;
  if (k > 0) top_k_candidates(values, 1.0f, k, -HUGE_VALF, scratch, index, c);
  for (const Candidate& x : c) out.push_back(x.second);
  return out;
}

double log_sum_exp(std::span<const float> values) {
  const float m = cpu::max_f32(values.data(), values.size(), true);
  if (m == -HUGE_VALF) return -HUGE_VAL;
  std::vector<float> weights(values.size());
  return double(m) + std::log(cpu::exp_scaled_f32(values.data(), 1.0f, m, weights.data(), values.size()));
}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> context,
                        std::span<const int32_t> generated) {
  if (logits.empty()) fail("cannot sample from empty logits");
  apply_penalties(logits, context, generated);
  if (params_.greedy()) return argmax(logits);

  // Temperature: the candidates are the finite logits (a banned token's -inf is never drawn),
  // scaled by 1 / T, their weights exp(s - m) with m the largest. A temperature so low that the
  // largest overflows is greedy decoding.
  const float inv_t = 1.0f / params_.temperature;
  const float top = cpu::max_f32(logits.data(), logits.size(), true);
  const float m = top * inv_t;
  if (top == -HUGE_VALF || !std::isfinite(m)) return argmax(logits);
  const size_t n = logits.size();

  // No filter: a draw over every token's weight, in token order (found by blocks of 1024).
  if (params_.top_k <= 0 && params_.top_p >= 1.0f && params_.min_p <= 0.0f) {
    weights_.resize(n);
    constexpr size_t kBlock = 1024;
    block_sums_.clear();
    double sum = 0;
    for (size_t b = 0; b < n; b += kBlock) {
      block_sums_.push_back(
          cpu::exp_scaled_f32(logits.data() + b, inv_t, m, weights_.data() + b, std::min(kBlock, n - b)));
      sum += block_sums_.back();
    }
    std::uniform_real_distribution<double> uni(0.0, sum);
    double r = uni(rng_);
    size_t i = 0;
    for (size_t b = 0; b + 1 < block_sums_.size() && r > block_sums_[b]; ++b, i += kBlock) r -= block_sums_[b];
    int32_t last = 0;
    for (; i < n; ++i) {
      if (weights_[i] <= 0.0f) continue;
      last = int32_t(i);
      r -= double(weights_[i]);
      if (r <= 0) break;
    }
    return last;  // (the last token of weight > 0 where rounding leaves r a hair above 0)
  }

  // The filters keep a prefix of the candidates in the sampler's order (better): top-k the k
  // first; top-p the shortest whose softmax mass reaches top_p (of the mass of the candidates
  // top-k left); min-p those of weight >= min_p (the first's weight is 1). Only tokens that can
  // be in that prefix are gathered and ordered: those whose scaled logit is at or above a floor
  // (collect_at_least): for top-k one below the k-th best (top_k_floor); for min-p ln(min_p)
  // below the best (less a margin for rounding); for top-p 8, 16, 32 or 64 below the best, the
  // first whose tokens hold top_p of the mass (or every token), but not below min-p's.
  candidates_.clear();
  double total = 0;  // the candidates' mass: top-p's denominator
  const float min_p_floor = params_.min_p > 0.0f ? m + std::log(params_.min_p) - 0.01f : -HUGE_VALF;
  if (params_.top_k > 0 || params_.top_p >= 1.0f) {
    if (params_.top_k > 0) {
      // (min-p's floor only where top-p, whose denominator is the mass of all k, is off)
      top_k_candidates(logits, inv_t, size_t(params_.top_k), params_.top_p < 1.0f ? -HUGE_VALF : min_p_floor,
                       weights_, index_, candidates_);
    } else {
      gather_at_least(logits, inv_t, min_p_floor, index_, candidates_);
      std::sort(candidates_.begin(), candidates_.end(), better);
    }
    for (auto& c : candidates_) {
      c.first = std::exp(c.first - m);
      total += c.first;
    }
  } else {
    weights_.resize(n);
    total = cpu::exp_scaled_f32(logits.data(), inv_t, m, weights_.data(), n);
    for (const float drop : {8.0f, 16.0f, 32.0f, 64.0f, HUGE_VALF}) {
      const float floor = std::max(m - drop, min_p_floor);
      gather_at_least(logits, inv_t, floor, index_, candidates_);
      double mass = 0;
      for (const auto& c : candidates_) mass += double(weights_[size_t(c.second)]);
      if (mass >= double(params_.top_p) * total || floor == min_p_floor) break;
    }
    std::sort(candidates_.begin(), candidates_.end(), better);
    for (auto& c : candidates_) c.first = weights_[size_t(c.second)];
  }
  if (params_.top_p < 1.0f) {
    // (The whole gathered prefix where rounding leaves its mass a hair short of top_p.)
    double cum = 0;
    size_t kept = 0;
    while (kept < candidates_.size()) {
      cum += candidates_[kept].first / total;
      ++kept;
      if (cum >= params_.top_p) break;
    }
    candidates_.resize(kept);
  }
  if (params_.min_p > 0.0f) {
    const float threshold = params_.min_p * candidates_.front().first;  // relative to the best (sorted first)
    size_t kept = 1;
    while (kept < candidates_.size() && candidates_[kept].first >= threshold) ++kept;
    candidates_.resize(kept);
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
