// Gemma 3: the text decoder, the SigLIP vision tower and the multimodal projector, computed
// through the backend op interface in the order of transformers' modeling_gemma3.py.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/gemma3/config.h"
#include "models/gemma3/kv_cache.h"
#include "models/gemma3/weights.h"
#include "ops/backend.h"

namespace unicorn::gemma3 {

// Which backend computes each part of the model. Placement is data: any part may go to any
// backend; activations move between backends where neighbouring parts differ.
struct Placement {
  Backend* embed = nullptr;
  Backend* attention = nullptr;  // attention projections, norms and the KV cache
  Backend* ffn = nullptr;
  Backend* lm_head = nullptr;
  Backend* vision = nullptr;     // vision tower and projector
  static Placement all(Backend& b) { return {&b, &b, &b, &b, &b}; }
};

// One sequence's share of a decoder step.
struct DecodeItem {
  KvCache* cache = nullptr;
  std::span<const int32_t> tokens;  // new token ids
  std::span<const int32_t> groups;  // image group per token (-1 for text)
  // Image features for the tokens with group >= 0, in order: host f32 [n_image_tokens, hidden].
  const Tensor* image_features = nullptr;
  bool all_logits = false;  // logits for every token, else for the last one only
};

struct TextLayer {
  Tensor attn_norm, q, k, v, q_norm, k_norm, o, post_attn_norm, ffn_norm, gate, up, down, post_ffn_norm;
};
struct VisionLayer {
  // qkv, qkv_b: q, k and v stacked [3 V, V] (one product); empty where their types differ,
  // which then go one by one.
  Tensor ln1, ln1_b, q, q_b, k, k_b, v, v_b, out, out_b, ln2, ln2_b, fc1, fc1_b, fc2, fc2_b, qkv, qkv_b;
};

class Model {
 public:
  Model(Config config, Weights weights, Placement placement);
  const Config& config() const { return config_; }
  const Weights& weights() const { return weights_; }
  const Placement& placement() const { return placement_; }

  // A KV cache for one sequence on the attention backend.
  std::unique_ptr<KvCache> new_cache(int64_t context, int64_t max_chunk) const;

  // Runs new tokens of one or more sequences through the decoder, appending to each cache.
  // Returns host logits f32 [rows, vocab]: for each item in order, every token's row
  // (all_logits) or its last token's row.
  Tensor decode(std::span<DecodeItem> items);

  // Vision tower + projector. pixel_values: host f32 [n, 3, S, S]. The tower's output comes
  // back to the host only when asked for (with_hidden_state): 19 MB an image at 27B's size.
  struct ImageOutput {
    Tensor last_hidden_state;  // host f32 [n, patches, vision_hidden], or empty
    Tensor features;           // host f32 [n, tokens_per_image, text_hidden]
  };
  ImageOutput encode_images(const Tensor& pixel_values, bool with_hidden_state = false);

 private:
  Tensor move(Backend& to, Backend& from, const Tensor& t);
  // Each block starts from `normed` (its pre-norm of x) when the previous block computed it
  // in its fused residual step, and leaves the next block's there when both run on one backend.
  void attention_block(const TextLayer& w, int64_t layer, Tensor& x, Tensor& normed, std::span<DecodeItem> items,
                       std::vector<KvCache::Step>& steps);
  // next_norm: the norm whose output the next block (or, after the last layer, the LM head)
  // takes from `normed`; null: none made here.
  void ffn_block(const TextLayer& w, const Tensor* next_norm, Tensor& x, Tensor& normed);
  // Decoder layers [l0, l1) of a step; `fold_final`: the last layer also makes the final norm
  // of every row into `normed` (fold_final_norm).
  void run_layers(int64_t l0, int64_t l1, Tensor& x, Tensor& normed, std::span<DecodeItem> items,
                  std::vector<KvCache::Step>& steps, bool fold_final);
  // Whether a step of these items leaves the final norm to the last layer's residual step: one
  // token a sequence (every row wants logits) and the layers and LM head on one backend.
  bool fold_final_norm(std::span<const DecodeItem> items) const;
  // The next plain step of these sequences (one token each, at their next positions): its
  // first graph group recorded now, while the GPU runs this step's LM head, and kept in
  // ahead_ for decode to launch if that step comes next.
  void record_ahead(std::span<DecodeItem> items);
  Tensor vision_tower(const Tensor& image);  // [3, S, S] -> [patches, vision_hidden] (vision backend)

  Config config_;
  Weights weights_;
  Placement placement_;
  Tensor embed_;  // [vocab, hidden] on the embed backend
  Tensor lm_head_;  // the same table (tied) on the lm_head backend
  Tensor output_norm_;
  std::vector<TextLayer> layers_;
  struct Ahead {
    std::vector<const KvCache*> caches;
    std::vector<KvCache::Step> steps;  // planned after this step's commit
    Tensor x, normed;                  // the step's input (the embedding writes it) and group 0's output
    int64_t key = 0, ticket = 0;       // ticket 0: nothing kept
  };
  Ahead ahead_;
  // Vision
  Tensor patch_w_, patch_b_, pos_embed_, post_norm_, post_norm_b_, proj_norm_, proj_w_;  // proj_w_ [text, vision]
  std::vector<VisionLayer> vision_layers_;
};

}  // namespace unicorn::gemma3
