#include "models/gemma3/tensor_table.h"

#include <fmt/format.h>

namespace unicorn::gemma3 {

std::string_view component_name(Component c) {
  switch (c) {
    case Component::Text: return "text";
    case Component::Vision: return "vision";
    case Component::Projector: return "projector";
  }
  return "?";
}

std::vector<std::string> hf_prefixes(Component c, bool multimodal) {
  switch (c) {
    case Component::Text:
      if (!multimodal) return {"model.", "language_model.model.", "model.language_model."};
      return {"language_model.model.", "model.language_model."};
    case Component::Vision:
      return {"vision_tower.vision_model.", "model.vision_tower.", "vision_tower.", "model.vision_tower.vision_model."};
    case Component::Projector:
      return {"multi_modal_projector.", "model.multi_modal_projector."};
  }
  return {};
}

std::vector<TensorSpec> tensor_table(const Config& c) {
  std::vector<TensorSpec> t;
  const TextConfig& x = c.text;
  const int64_t H = x.hidden_size, hd = x.head_dim, q_out = x.num_attention_heads * hd,
                kv_out = x.num_key_value_heads * hd, F = x.intermediate_size;

  // Text decoder. GGUF: llama.cpp's gemma3 names (norm weights there have +1 already added).
  auto text = [&](std::string canonical, std::string inner, std::string gguf, Shape shape, bool matrix) {
    t.push_back({std::move(canonical), std::move(inner), std::move(gguf), std::move(shape), Component::Text, matrix});
  };
  text("text.embed", "embed_tokens.weight", "token_embd.weight", {x.vocab_size, H}, true);
  for (int64_t l = 0; l < x.num_hidden_layers; ++l) {
    const std::string p = fmt::format("layers.{}.", l), g = fmt::format("blk.{}.", l), k = fmt::format("text.blk.{}.", l);
    text(k + "attn_norm", p + "input_layernorm.weight", g + "attn_norm.weight", {H}, false);
    text(k + "attn_q", p + "self_attn.q_proj.weight", g + "attn_q.weight", {q_out, H}, true);
    text(k + "attn_k", p + "self_attn.k_proj.weight", g + "attn_k.weight", {kv_out, H}, true);
    text(k + "attn_v", p + "self_attn.v_proj.weight", g + "attn_v.weight", {kv_out, H}, true);
    text(k + "attn_q_norm", p + "self_attn.q_norm.weight", g + "attn_q_norm.weight", {hd}, false);
    text(k + "attn_k_norm", p + "self_attn.k_norm.weight", g + "attn_k_norm.weight", {hd}, false);
    text(k + "attn_output", p + "self_attn.o_proj.weight", g + "attn_output.weight", {H, q_out}, true);
    text(k + "post_attn_norm", p + "post_attention_layernorm.weight", g + "post_attention_norm.weight", {H}, false);
    text(k + "ffn_norm", p + "pre_feedforward_layernorm.weight", g + "ffn_norm.weight", {H}, false);
    text(k + "ffn_gate", p + "mlp.gate_proj.weight", g + "ffn_gate.weight", {F, H}, true);
    text(k + "ffn_up", p + "mlp.up_proj.weight", g + "ffn_up.weight", {F, H}, true);
    text(k + "ffn_down", p + "mlp.down_proj.weight", g + "ffn_down.weight", {H, F}, true);
    text(k + "post_ffn_norm", p + "post_feedforward_layernorm.weight", g + "post_ffw_norm.weight", {H}, false);
  }
  text("text.output_norm", "norm.weight", "output_norm.weight", {H}, false);

  if (!c.vision) return t;
  const VisionConfig& v = *c.vision;
  const int64_t V = v.hidden_size, P = v.patch_size, VF = v.intermediate_size;
  // SigLIP. mmproj GGUF: v.*
  auto vis = [&](std::string canonical, std::string inner, std::string gguf, Shape shape, bool matrix) {
    t.push_back({std::move(canonical), std::move(inner), std::move(gguf), std::move(shape), Component::Vision, matrix});
  };
  vis("vision.patch_embed", "embeddings.patch_embedding.weight", "v.patch_embd.weight", {V, 3, P, P}, false);
  vis("vision.patch_embed_bias", "embeddings.patch_embedding.bias", "v.patch_embd.bias", {V}, false);
  vis("vision.position_embed", "embeddings.position_embedding.weight", "v.position_embd.weight",
      {v.num_patches(), V}, false);
  for (int64_t l = 0; l < v.num_hidden_layers; ++l) {
    const std::string p = fmt::format("encoder.layers.{}.", l), g = fmt::format("v.blk.{}.", l),
                      k = fmt::format("vision.blk.{}.", l);
    vis(k + "ln1", p + "layer_norm1.weight", g + "ln1.weight", {V}, false);
    vis(k + "ln1_bias", p + "layer_norm1.bias", g + "ln1.bias", {V}, false);
    for (auto [name, inner, gg] : {std::tuple{"attn_q", "self_attn.q_proj", "attn_q"},
                                   {"attn_k", "self_attn.k_proj", "attn_k"},
                                   {"attn_v", "self_attn.v_proj", "attn_v"},
                                   {"attn_out", "self_attn.out_proj", "attn_out"}}) {
      vis(k + name, p + inner + ".weight", g + gg + ".weight", {V, V}, true);
      vis(k + name + "_bias", p + inner + ".bias", g + gg + ".bias", {V}, false);
    }
    vis(k + "ln2", p + "layer_norm2.weight", g + "ln2.weight", {V}, false);
    vis(k + "ln2_bias", p + "layer_norm2.bias", g + "ln2.bias", {V}, false);
    vis(k + "fc1", p + "mlp.fc1.weight", g + "ffn_up.weight", {VF, V}, true);
    vis(k + "fc1_bias", p + "mlp.fc1.bias", g + "ffn_up.bias", {VF}, false);
    vis(k + "fc2", p + "mlp.fc2.weight", g + "ffn_down.weight", {V, VF}, true);
    vis(k + "fc2_bias", p + "mlp.fc2.bias", g + "ffn_down.bias", {V}, false);
  }
  vis("vision.post_norm", "post_layernorm.weight", "v.post_ln.weight", {V}, false);
  vis("vision.post_norm_bias", "post_layernorm.bias", "v.post_ln.bias", {V}, false);

  // Projector. mm_input_projection_weight is [vision, text] (a matmul operand, not nn.Linear layout).
  auto proj = [&](std::string canonical, std::string inner, std::string gguf, Shape shape, bool matrix) {
    t.push_back({std::move(canonical), std::move(inner), std::move(gguf), std::move(shape), Component::Projector, matrix});
  };
  proj("proj.norm", "mm_soft_emb_norm.weight", "mm.soft_emb_norm.weight", {V}, false);
  proj("proj.input", "mm_input_projection_weight", "mm.input_projection.weight", {V, H}, false);
  return t;
}

}  // namespace unicorn::gemma3
