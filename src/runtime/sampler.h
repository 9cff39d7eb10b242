// Turns logits into the next token: penalties, temperature, top-k, top-p, min-p, then a
// draw from a seeded generator (or the argmax when the temperature is 0).
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "models/gemma3/config.h"

namespace unicorn {

struct SamplingParams {
  float temperature = 1.0f;         // 0: greedy
  int32_t top_k = 0;                // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off; keeps tokens with p >= min_p * p_max
  float repetition_penalty = 1.0f;  // HF semantics over the last penalty_window tokens (prompt + output)
  float presence_penalty = 0.0f;    // OpenAI semantics over the generated tokens
  float frequency_penalty = 0.0f;
  int32_t penalty_window = 64;      // tokens considered by repetition_penalty; 0: all
  // Added to a token's logit before anything else (OpenAI logit_bias: -100 bans, 100 forces).
  std::vector<std::pair<int32_t, float>> logit_bias;
  std::optional<uint64_t> seed;     // unset: a random seed

  // Throws Error naming the parameter if a value is out of range.
  void validate() const;
  bool greedy() const { return temperature <= 0.0f; }
};

// Sampling defaults from generation_config.json: its temperature, top-k and top-p when it
// says do_sample, else greedy decoding (what transformers' generate does).
SamplingParams sampling_defaults(const gemma3::GenerationConfig& g);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  const SamplingParams& params() const { return params_; }

  // Picks a token. `logits` is modified (penalties, scaling). `context` is every token of the
  // sequence so far (prompt and output), `generated` the output alone.
  int32_t sample(std::span<float> logits, std::span<const int32_t> context, std::span<const int32_t> generated);

  // The penalty step alone (also what greedy decoding sees).
  void apply_penalties(std::span<float> logits, std::span<const int32_t> context,
                       std::span<const int32_t> generated) const;

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
  std::vector<float> weights_;  // every token's softmax weight, where a draw needs them all
  std::vector<double> block_sums_;
  std::vector<int32_t> index_;
};

// Index of the largest value (the first on ties).
int32_t argmax(std::span<const float> values);
// Indices of the k largest finite values, the largest first (the lower index on ties); all of
// them where fewer are finite.
std::vector<int32_t> top_indices(std::span<const float> values, size_t k);
// log(sum(exp(v))) over the finite values (-inf if none).
double log_sum_exp(std::span<const float> values);

}  // namespace unicorn
