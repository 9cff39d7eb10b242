#include "models/gemma3/config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "support/test_paths.h"

namespace unicorn::gemma3 {
namespace {

using json = nlohmann::json;

std::vector<LayerType> pattern(int64_t layers, int64_t every) {
  std::vector<LayerType> v;
  for (int64_t i = 0; i < layers; ++i) v.push_back((i + 1) % every ? LayerType::Sliding : LayerType::Full);
  return v;
}

TEST(Config, TinyMultimodalHubStyle) {
  const Config c = load_config(test::data_path("models/tiny-mm"));
  EXPECT_EQ(c.architecture, "Gemma3ForConditionalGeneration");
  ASSERT_TRUE(c.vision.has_value());
  EXPECT_EQ(c.text.num_hidden_layers, 6);
  EXPECT_EQ(c.text.layer_types, pattern(6, 3));  // layers 2 and 5 global
  EXPECT_EQ(c.text.rope_full.type, "linear");
  EXPECT_EQ(c.text.rope_full.factor, 8.0);
  EXPECT_EQ(c.text.rope_sliding.theta, 10000.0);
  EXPECT_EQ(c.text.rope_sliding.factor, 1.0);
  EXPECT_EQ(c.text.query_pre_attn_scalar, 24);
  EXPECT_EQ(c.vision->image_size, 224);
  EXPECT_EQ(c.mm_tokens_per_image, 16);
  EXPECT_EQ(c.pool_kernel(), 4);
  EXPECT_EQ(c.image_token_index, 1002);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{1, 106}));
}

TEST(Config, TinyTextAndRealVocab) {
  const Config t = load_config(test::data_path("models/tiny-text"));
  EXPECT_EQ(t.architecture, "Gemma3ForCausalLM");
  EXPECT_FALSE(t.vision.has_value());
  EXPECT_EQ(t.text.num_key_value_heads, 1);
  EXPECT_EQ(t.text.sliding_window, 6);
  EXPECT_EQ(t.text.rope_full.type, "default");
  const Config r = load_config(test::data_path("models/tiny-realvocab"));
  EXPECT_EQ(r.text.vocab_size, 262144);
  EXPECT_EQ(r.bos_token_id, 2);
  const Config m896 = load_config(test::data_path("models/tiny-mm-896"));
  EXPECT_EQ(m896.vision->num_patches(), 4096);
  EXPECT_EQ(m896.pool_kernel(), 4);
}

// The published config.json files, as on the Hub (hub style: most fields omitted).
constexpr const char* k27b = R"({
  "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999, "eoi_token_index": 256000,
  "eos_token_id": [1, 106], "image_token_index": 262144, "initializer_range": 0.02, "mm_tokens_per_image": 256,
  "model_type": "gemma3",
  "text_config": {"head_dim": 128, "hidden_size": 5376, "intermediate_size": 21504, "model_type": "gemma3_text",
    "num_attention_heads": 32, "num_hidden_layers": 62, "num_key_value_heads": 16, "query_pre_attn_scalar": 168,
    "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024},
  "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
  "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304, "model_type": "siglip_vision_model",
    "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": false}})";
constexpr const char* k12b = R"({
  "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999, "eoi_token_index": 256000,
  "eos_token_id": [1, 106], "image_token_index": 262144, "initializer_range": 0.02, "mm_tokens_per_image": 256,
  "model_type": "gemma3",
  "text_config": {"hidden_size": 3840, "intermediate_size": 15360, "model_type": "gemma3_text",
    "num_attention_heads": 16, "num_hidden_layers": 48, "num_key_value_heads": 8,
    "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024},
  "torch_dtype": "bfloat16",
  "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304, "model_type": "siglip_vision_model",
    "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": false}})";
constexpr const char* k4b = R"({
  "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999, "eoi_token_index": 256000,
  "eos_token_id": [1, 106], "image_token_index": 262144, "initializer_range": 0.02, "mm_tokens_per_image": 256,
  "model_type": "gemma3",
  "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text", "num_hidden_layers": 34,
    "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024},
  "torch_dtype": "bfloat16",
  "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304, "model_type": "siglip_vision_model",
    "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": false}})";
constexpr const char* k1b = R"({
  "architectures": ["Gemma3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "attn_logit_softcapping": null, "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": [1, 106],
  "final_logit_softcapping": null, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 1152,
  "initializer_range": 0.02, "intermediate_size": 6912, "max_position_embeddings": 32768, "model_type": "gemma3_text",
  "num_attention_heads": 4, "num_hidden_layers": 26, "num_key_value_heads": 1, "pad_token_id": 0,
  "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000, "rope_scaling": null,
  "rope_theta": 1000000, "sliding_window": 512, "sliding_window_pattern": 6, "torch_dtype": "bfloat16",
  "transformers_version": "4.50.0.dev0", "use_cache": true, "vocab_size": 262144})";

TEST(Config, Published27B) {
  const Config c = parse_config_text(k27b, "27b");
  const TextConfig& t = c.text;
  EXPECT_EQ(t.num_hidden_layers, 62);
  EXPECT_EQ(t.hidden_size, 5376);
  EXPECT_EQ(t.num_attention_heads, 32);
  EXPECT_EQ(t.num_key_value_heads, 16);
  EXPECT_EQ(t.head_dim, 128);
  EXPECT_EQ(t.query_pre_attn_scalar, 168);
  EXPECT_EQ(t.sliding_window, 1024);
  EXPECT_EQ(t.layer_types, pattern(62, 6));
  EXPECT_EQ(t.rope_full.type, "linear");
  EXPECT_EQ(t.rope_full.factor, 8.0);
  EXPECT_EQ(t.rope_full.theta, 1e6);       // default
  EXPECT_EQ(t.rope_sliding.theta, 10000);  // default rope_local_base_freq, unscaled
  EXPECT_EQ(t.rope_sliding.factor, 1.0);
  EXPECT_EQ(t.vocab_size, 262208);  // default (omitted in the file)
  EXPECT_EQ(t.rms_norm_eps, 1e-6);
  const VisionConfig& v = *c.vision;
  EXPECT_EQ(v.num_hidden_layers, 27);
  EXPECT_EQ(v.hidden_size, 1152);
  EXPECT_EQ(v.intermediate_size, 4304);
  EXPECT_EQ(v.num_attention_heads, 16);
  EXPECT_EQ(v.image_size, 896);
  EXPECT_EQ(v.patch_size, 14);
  EXPECT_EQ(v.num_patches(), 4096);
  EXPECT_EQ(c.mm_tokens_per_image, 256);
  EXPECT_EQ(c.pool_kernel(), 4);
  EXPECT_EQ(c.image_token_index, 262144);
  EXPECT_EQ(c.boi_token_index, 255999);
}

TEST(Config, Published12B4B1B) {
  const Config c12 = parse_config_text(k12b, "12b");
  EXPECT_EQ(c12.text.num_hidden_layers, 48);
  EXPECT_EQ(c12.text.hidden_size, 3840);
  EXPECT_EQ(c12.text.num_attention_heads, 16);
  EXPECT_EQ(c12.text.num_key_value_heads, 8);
  EXPECT_EQ(c12.text.head_dim, 256);               // default
  EXPECT_EQ(c12.text.query_pre_attn_scalar, 256);  // default
  const Config c4 = parse_config_text(k4b, "4b");
  EXPECT_EQ(c4.text.num_hidden_layers, 34);
  EXPECT_EQ(c4.text.num_attention_heads, 8);  // default
  EXPECT_EQ(c4.text.num_key_value_heads, 4);  // default
  EXPECT_EQ(c4.text.intermediate_size, 10240);
  const Config c1 = parse_config_text(k1b, "1b");
  EXPECT_EQ(c1.architecture, "Gemma3ForCausalLM");
  EXPECT_FALSE(c1.vision.has_value());
  EXPECT_EQ(c1.text.num_hidden_layers, 26);
  EXPECT_EQ(c1.text.sliding_window, 512);
  EXPECT_EQ(c1.text.vocab_size, 262144);
  EXPECT_EQ(c1.text.rope_full.type, "default");
  EXPECT_EQ(c1.text.layer_types, pattern(26, 6));
}

TEST(Config, Transformers5Style) {
  // transformers 5 writes layer_types and rope_parameters per layer type.
  json j = json::parse(k27b);
  json& t = j["text_config"];
  t.erase("rope_scaling");
  t["layer_types"] = json::array();
  for (int i = 0; i < 62; ++i) t["layer_types"].push_back(i % 2 ? "full_attention" : "sliding_attention");
  t["rope_parameters"] = {{"full_attention", {{"rope_type", "linear"}, {"factor", 4.0}, {"rope_theta", 500000.0}}},
                          {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 20000.0}}}};
  j["image_token_id"] = 262144;
  const Config c = parse_config(j, "t5");
  EXPECT_EQ(c.text.layer_types[0], LayerType::Sliding);
  EXPECT_EQ(c.text.layer_types[1], LayerType::Full);
  EXPECT_EQ(c.text.rope_full.factor, 4.0);
  EXPECT_EQ(c.text.rope_full.theta, 500000.0);
  EXPECT_EQ(c.text.rope_sliding.theta, 20000.0);
}

TEST(Config, GenerationConfig) {
  const GenerationConfig g = parse_generation_config(
      json::parse(R"({"bos_token_id": 2, "do_sample": true, "eos_token_id": [1, 106], "pad_token_id": 0,
                      "top_k": 64, "top_p": 0.95, "cache_implementation": "hybrid"})"),
      "generation_config.json");
  EXPECT_EQ(g.eos_token_ids, (std::vector<int64_t>{1, 106}));
  EXPECT_EQ(g.top_k.value(), 64);
  EXPECT_DOUBLE_EQ(g.top_p.value(), 0.95);
  EXPECT_TRUE(g.do_sample.value());
  EXPECT_FALSE(g.temperature.has_value());
}

void expect_config_error(const std::string& text, const std::string& part) {
  try {
    parse_config_text(text, "config.json");
    FAIL() << "expected an error for " << text;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
}

TEST(Config, BadConfigs) {
  expect_config_error("{not json", "not valid JSON");
  expect_config_error("[]", "JSON object");
  expect_config_error(R"({"model_type": "llama"})", "model_type 'llama'");
  expect_config_error(R"({})", "model_type");
  expect_config_error(R"({"model_type": "gemma3_text", "hidden_size": "big"})", "'hidden_size' must be an integer");
  expect_config_error(R"({"model_type": "gemma3_text", "num_hidden_layers": 0})", "num_hidden_layers");
  expect_config_error(R"({"model_type": "gemma3_text", "num_attention_heads": 6, "num_key_value_heads": 4})",
                      "multiple of num_key_value_heads");
  expect_config_error(R"({"model_type": "gemma3_text", "num_hidden_layers": 2, "layer_types": ["full_attention"]})",
                      "layer_types");
  expect_config_error(R"({"model_type": "gemma3_text", "rope_scaling": {"rope_type": "yarn", "factor": 2}})",
                      "unsupported rope_type 'yarn'");
  expect_config_error(R"({"model_type": "gemma3_text", "rope_scaling": {"rope_type": "linear"}})", "factor");
  expect_config_error(R"({"model_type": "gemma3", "vision_config": {"image_size": 900, "patch_size": 14}})",
                      "not a multiple of patch_size");
  expect_config_error(R"({"model_type": "gemma3", "mm_tokens_per_image": 200})", "square");
  expect_config_error(R"({"model_type": "gemma3_text", "eos_token_id": "one"})", "eos_token_id");
  expect_config_error(R"({"model_type": "gemma3_text", "hidden_activation": "relu"})", "relu");
}

TEST(Config, MissingConfigFile) {
  const std::string dir = test::scratch_dir("no-config");
  try {
    load_config(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing config.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace unicorn::gemma3
