// Engine: a loaded model on its backends, and the operations frontends use: encode images,
// append tokens to a sequence (chunked prefill), decode a batch of sequences one token each.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "models/gemma3/model.h"
#include "ops/backend.h"
#include "tokenizer/tokenizer.h"

namespace unicorn {

struct EngineOptions {
  std::string device = "cpu";
  int threads = 0;          // CPU threads, 0: one per core
  int64_t context = 4096;   // positions per sequence (clamped to the model's maximum)
  int64_t max_chunk = 512;  // prefill chunk; raised to hold one whole image
  // For a GGUF model: its vision tower + projector (llama.cpp's mmproj file). Empty: the
  // model is text-only, even if its checkpoint was multimodal.
  std::string mmproj;
  // Quantize the text decoder's matrices while loading (Q4_0, Q8_0, Q4_K or Q6_K; see
  // Weights::quantize_text_matrices). K formats fall back to Q8_0 for rows that are not
  // whole 256-value super-blocks (Gemma 3 1B's hidden size 1152).
  std::optional<DType> quantize;
};

// One conversation's state: its KV cache and the tokens in it.
class Sequence {
 public:
  explicit Sequence(std::unique_ptr<gemma3::KvCache> cache) : cache_(std::move(cache)) {}
  gemma3::KvCache& cache() { return *cache_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  int64_t length() const { return int64_t(tokens_.size()); }
  int64_t context() const { return cache_->context(); }
  // Drops tokens from n on; false if the sliding-window cache cannot go back that far.
  bool truncate(int64_t n);
  void reset();

 private:
  friend class Engine;
  std::unique_ptr<gemma3::KvCache> cache_;
  std::vector<int32_t> tokens_;
};

class Engine {
 public:
  // Loads a Hugging Face model folder, or a GGUF file (path ending in .gguf, with
  // options.mmproj for images), onto the device named in options. A GGUF's embedded
  // vocabulary becomes the tokenizer.
  static std::unique_ptr<Engine> load(const std::string& model_path, const EngineOptions& options);
  Engine(std::unique_ptr<Backend> backend, std::unique_ptr<gemma3::Model> model, const EngineOptions& options);

  const gemma3::Config& config() const { return model_->config(); }
  gemma3::Model& model() { return *model_; }
  Backend& backend() { return *backend_; }
  // The model folder's tokenizer, or null if it has none.
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  const EngineOptions& options() const { return options_; }
  // Why this model takes no images, for messages: "" for a multimodal model.
  std::string text_only_reason() const;

  std::unique_ptr<Sequence> new_sequence();

  // Sets to -inf the logits of ids no text may hold: the embedding rows past the tokenizer's
  // vocabulary (padding: Gemma 3 has 262208 rows for 262145 pieces) and the image token.
  void mask_unsamplable(std::span<float> logits) const;

  // Image features for pixel values [n, 3, S, S]: host f32 [n * tokens_per_image, hidden].
  Tensor encode_images(const Tensor& pixel_values);
  // Host memory for pixel values that encode_images copies fastest (PreprocessOptions::alloc):
  // the vision backend's host_buffer.
  std::function<Tensor(DType, Shape)> pixel_buffer() const;

  // Appends tokens to a sequence in prefill chunks. image_features: host f32 rows for the
  // image tokens among `tokens`, in order (null if none). Returns host logits f32:
  // [tokens.size(), vocab] with all_logits, else [1, vocab] for the last token.
  Tensor append(Sequence& seq, std::span<const int32_t> tokens, const Tensor* image_features, bool all_logits);

  // One new token for each sequence, run together. Returns host logits f32 [n, vocab].
  Tensor decode(std::span<Sequence* const> seqs, std::span<const int32_t> next_tokens);

 private:
  static std::unique_ptr<Engine> load_gguf(const std::string& model_path, const EngineOptions& options);

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<gemma3::Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  EngineOptions options_;
  bool gguf_ = false;
};

}  // namespace unicorn
