// Gemma 3 configuration, parsed from Hugging Face config.json (hub style of the published
// checkpoints, and transformers-5 style) for Gemma3ForConditionalGeneration (model_type
// "gemma3": text_config + vision_config) and Gemma3ForCausalLM ("gemma3_text").
// Every field not in the file takes transformers' default, written next to it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace unicorn::gemma3 {

enum class LayerType { Sliding, Full };

struct RopeParams {
  double theta = 10000.0;        // base frequency
  std::string type = "default";  // "default" or "linear" (what Gemma 3 uses)
  double factor = 1.0;           // linear scaling: positions are divided by factor
};

// ref: transformers configuration_gemma3.py Gemma3TextConfig
struct TextConfig {
  int64_t vocab_size = 262208;
  int64_t hidden_size = 2304;
  int64_t intermediate_size = 9216;
  int64_t num_hidden_layers = 26;
  int64_t num_attention_heads = 8;
  int64_t num_key_value_heads = 4;
  int64_t head_dim = 256;
  std::string hidden_activation = "gelu_pytorch_tanh";
  int64_t max_position_embeddings = 131072;
  double rms_norm_eps = 1e-6;
  double query_pre_attn_scalar = 256;
  int64_t sliding_window = 4096;
  int64_t sliding_window_pattern = 6;  // hub style; layer_types derived from it when absent
  bool attention_bias = false;
  std::optional<double> final_logit_softcapping;  // null in Gemma 3
  std::optional<double> attn_logit_softcapping;   // null in Gemma 3
  bool tie_word_embeddings = true;
  RopeParams rope_full{1000000.0, "default", 1.0};   // rope_theta + rope_scaling
  RopeParams rope_sliding{10000.0, "default", 1.0};  // rope_local_base_freq, unscaled
  std::vector<LayerType> layer_types;                // one per layer

  int64_t n_kv_groups() const { return num_attention_heads / num_key_value_heads; }
  bool is_sliding(int64_t layer) const { return layer_types[size_t(layer)] == LayerType::Sliding; }
};

// ref: transformers configuration_siglip.py SiglipVisionConfig
struct VisionConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t num_channels = 3;
  int64_t image_size = 224;
  int64_t patch_size = 16;
  double layer_norm_eps = 1e-6;
  std::string hidden_act = "gelu_pytorch_tanh";

  int64_t patches_per_side() const { return image_size / patch_size; }
  int64_t num_patches() const { return patches_per_side() * patches_per_side(); }
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

// Sampling defaults and stop tokens from generation_config.json.
struct GenerationConfig {
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> pad_token_id;
  std::optional<bool> do_sample;
  std::optional<double> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
};

struct Config {
  std::string architecture;  // "Gemma3ForConditionalGeneration" or "Gemma3ForCausalLM"
  std::string model_type;    // "gemma3" or "gemma3_text"
  TextConfig text;
  std::optional<VisionConfig> vision;  // present for multimodal models
  int64_t mm_tokens_per_image = 256;   // ref: Gemma3Config
  int64_t boi_token_index = 255999;
  int64_t eoi_token_index = 256000;
  int64_t image_token_index = 262144;
  std::vector<int64_t> eos_token_ids = {1};  // Gemma3TextConfig eos_token_id=1
  int64_t bos_token_id = 2;
  int64_t pad_token_id = 0;
  GenerationConfig generation;
  // quantization_config of a pre-quantized checkpoint: "bitsandbytes-nf4", or empty.
  std::string quantization;

  bool multimodal() const { return vision.has_value(); }
  // Generation stops on any of these: config.json's eos ids and generation_config.json's.
  std::vector<int64_t> stop_token_ids() const;
  // Average-pool side: patches per side / tokens per side (4 for 896px, 64 -> 16).
  int64_t pool_kernel() const;
  int64_t tokens_per_side() const;
};

// Parses config.json text; `where` names the file in errors. Validates the numbers that the
// forward pass relies on (positive sizes, heads divisible, pooling that divides evenly).
Config parse_config(const nlohmann::json& j, const std::string& where);
Config parse_config_text(const std::string& text, const std::string& where);
// Reads <dir>/config.json and, when present, <dir>/generation_config.json.
Config load_config(const std::string& model_dir);
GenerationConfig parse_generation_config(const nlohmann::json& j, const std::string& where);

}  // namespace unicorn::gemma3
