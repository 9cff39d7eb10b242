#include "models/gemma3/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/mapped_file.h"

namespace unicorn::gemma3 {

namespace {

using json = nlohmann::json;

// Typed field readers: absent or null keeps the default; a wrong type is an error naming
// the field, so a bad config never turns into a silently wrong model.
struct Fields {
  const json& obj;
  std::string where;  // "config.json text_config"

  bool has(const char* key) const { return obj.contains(key) && !obj[key].is_null(); }

  void integer(const char* key, int64_t& out) const {
    if (!has(key)) return;
    const json& v = obj[key];
    if (v.is_number_integer()) {
      out = v.get<int64_t>();
    } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) {
      out = int64_t(v.get<double>());
    } else {
      fail("{}: field '{}' must be an integer, got {}", where, key, v.dump());
    }
  }
  void number(const char* key, double& out) const {
    if (!has(key)) return;
    if (!obj[key].is_number()) fail("{}: field '{}' must be a number, got {}", where, key, obj[key].dump());
    out = obj[key].get<double>();
  }
  void optional_number(const char* key, std::optional<double>& out) const {
    if (!has(key)) return;
    double v = 0;
    number(key, v);
    out = v;
  }
  void string(const char* key, std::string& out) const {
    if (!has(key)) return;
    if (!obj[key].is_string()) fail("{}: field '{}' must be a string, got {}", where, key, obj[key].dump());
    out = obj[key].get<std::string>();
  }
  void boolean(const char* key, bool& out) const {
    if (!has(key)) return;
    if (!obj[key].is_boolean()) fail("{}: field '{}' must be true or false, got {}", where, key, obj[key].dump());
    out = obj[key].get<bool>();
  }
  // An id or a list of ids (eos_token_id is either).
  bool id_list(const char* key, std::vector<int64_t>& out) const {
    if (!has(key)) return false;
    const json& v = obj[key];
    std::vector<int64_t> ids;
    if (v.is_number_integer()) {
      ids.push_back(v.get<int64_t>());
    } else if (v.is_array()) {
      for (const json& x : v) {
        if (!x.is_number_integer()) fail("{}: field '{}' must hold integer token ids, got {}", where, key, v.dump());
        ids.push_back(x.get<int64_t>());
      }
    } else {
      fail("{}: field '{}' must be a token id or a list of them, got {}", where, key, v.dump());
    }
    out = std::move(ids);
    return true;
  }
};

void parse_rope_entry(const json& j, RopeParams& rope, const std::string& where) {
  if (!j.is_object()) fail("{}: expected an object with rope_type and its parameters, got {}", where, j.dump());
  Fields f{j, where};
  std::string type = rope.type;
  f.string("type", type);  // older spelling
  f.string("rope_type", type);
  f.number("rope_theta", rope.theta);
  if (type == "default") {
    rope.factor = 1.0;
  } else if (type == "linear") {
    if (!f.has("factor")) fail("{}: linear RoPE scaling needs a 'factor'", where);
    f.number("factor", rope.factor);
    if (!(rope.factor > 0)) fail("{}: RoPE factor must be positive, got {}", where, rope.factor);
  } else {
    fail("{}: unsupported rope_type '{}' (Gemma 3 uses 'default' and 'linear')", where, type);
  }
  rope.type = type;
}

TextConfig parse_text(const json& j, const std::string& where) {
  if (!j.is_object()) fail("{}: expected a JSON object", where);
  TextConfig t;
  Fields f{j, where};
  f.integer("vocab_size", t.vocab_size);
  f.integer("hidden_size", t.hidden_size);
  f.integer("intermediate_size", t.intermediate_size);
  f.integer("num_hidden_layers", t.num_hidden_layers);
  f.integer("num_attention_heads", t.num_attention_heads);
  f.integer("num_key_value_heads", t.num_key_value_heads);
  f.integer("head_dim", t.head_dim);
  f.string("hidden_activation", t.hidden_activation);
  f.integer("max_position_embeddings", t.max_position_embeddings);
  f.number("rms_norm_eps", t.rms_norm_eps);
  f.number("query_pre_attn_scalar", t.query_pre_attn_scalar);
  f.integer("sliding_window", t.sliding_window);
  f.integer("sliding_window_pattern", t.sliding_window_pattern);
  f.integer("_sliding_window_pattern", t.sliding_window_pattern);
  f.boolean("attention_bias", t.attention_bias);
  f.optional_number("final_logit_softcapping", t.final_logit_softcapping);
  f.optional_number("attn_logit_softcapping", t.attn_logit_softcapping);
  f.boolean("tie_word_embeddings", t.tie_word_embeddings);
  bool bidirectional = false;  // transformers 5: EmbeddingGemma-style text attention
  f.boolean("use_bidirectional_attention", bidirectional);
  if (bidirectional) fail("{}: use_bidirectional_attention=true (an embedding model) is not supported", where);

  // RoPE, hub style: rope_theta (+ rope_scaling on full layers), rope_local_base_freq.
  f.number("rope_theta", t.rope_full.theta);
  f.number("rope_local_base_freq", t.rope_sliding.theta);
  if (f.has("rope_scaling")) parse_rope_entry(j["rope_scaling"], t.rope_full, where + " rope_scaling");
  // transformers-5 style: rope_parameters per layer type (or one entry for the full layers).
  if (f.has("rope_parameters")) {
    const json& rp = j["rope_parameters"];
    if (!rp.is_object()) fail("{}: 'rope_parameters' must be an object", where);
    if (rp.contains("full_attention") || rp.contains("sliding_attention")) {
      if (rp.contains("full_attention"))
        parse_rope_entry(rp["full_attention"], t.rope_full, where + " rope_parameters.full_attention");
      if (rp.contains("sliding_attention"))
        parse_rope_entry(rp["sliding_attention"], t.rope_sliding, where + " rope_parameters.sliding_attention");
    } else {
      parse_rope_entry(rp, t.rope_full, where + " rope_parameters");
    }
  }

  if (t.num_hidden_layers <= 0 || t.num_hidden_layers > 1024)
    fail("{}: num_hidden_layers must be in 1..1024, got {}", where, t.num_hidden_layers);
  if (f.has("layer_types")) {
    const json& lt = j["layer_types"];
    if (!lt.is_array() || int64_t(lt.size()) != t.num_hidden_layers)
      fail("{}: 'layer_types' must list {} layer types (num_hidden_layers), got {}", where, t.num_hidden_layers,
           lt.dump().substr(0, 200));
    for (size_t i = 0; i < lt.size(); ++i) {
      const std::string s = lt[i].is_string() ? lt[i].get<std::string>() : lt[i].dump();
      if (s == "sliding_attention") {
        t.layer_types.push_back(LayerType::Sliding);
      } else if (s == "full_attention") {
        t.layer_types.push_back(LayerType::Full);
      } else {
        fail("{}: layer_types[{}] is '{}', expected 'sliding_attention' or 'full_attention'", where, i, s);
      }
    }
  } else {
    if (t.sliding_window_pattern <= 0)
      fail("{}: sliding_window_pattern must be positive, got {}", where, t.sliding_window_pattern);
    // ref: Gemma3TextConfig: layer i is sliding unless (i + 1) is a multiple of the pattern.
    for (int64_t i = 0; i < t.num_hidden_layers; ++i)
      t.layer_types.push_back((i + 1) % t.sliding_window_pattern ? LayerType::Sliding : LayerType::Full);
  }

  auto positive = [&](const char* name, int64_t v, int64_t max) {
    if (v <= 0 || v > max) fail("{}: {} must be in 1..{}, got {}", where, name, max, v);
  };
  positive("vocab_size", t.vocab_size, int64_t(1) << 24);
  positive("hidden_size", t.hidden_size, 65536);
  positive("intermediate_size", t.intermediate_size, 1 << 20);
  positive("num_attention_heads", t.num_attention_heads, 1024);
  positive("num_key_value_heads", t.num_key_value_heads, 1024);
  positive("head_dim", t.head_dim, 4096);
  positive("sliding_window", t.sliding_window, int64_t(1) << 30);
  positive("max_position_embeddings", t.max_position_embeddings, int64_t(1) << 30);
  if (t.num_attention_heads % t.num_key_value_heads != 0)
    fail("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", where,
         t.num_attention_heads, t.num_key_value_heads);
  if (t.head_dim % 2 != 0) fail("{}: head_dim must be even for RoPE, got {}", where, t.head_dim);
  if (!(t.query_pre_attn_scalar > 0)) fail("{}: query_pre_attn_scalar must be positive", where);
  if (!(t.rms_norm_eps >= 0)) fail("{}: rms_norm_eps must not be negative", where);
  if (t.hidden_activation != "gelu_pytorch_tanh")
    fail("{}: hidden_activation '{}' is not supported (Gemma 3 uses gelu_pytorch_tanh)", where, t.hidden_activation);
  if (t.attention_bias) fail("{}: attention_bias=true is not supported (Gemma 3 has none)", where);
  if (!t.tie_word_embeddings) fail("{}: tie_word_embeddings=false is not supported (Gemma 3 ties the LM head)", where);
  return t;
}

VisionConfig parse_vision(const json& j, const std::string& where) {
  if (!j.is_object()) fail("{}: expected a JSON object", where);
  VisionConfig v;
  Fields f{j, where};
  f.integer("hidden_size", v.hidden_size);
  f.integer("intermediate_size", v.intermediate_size);
  f.integer("num_hidden_layers", v.num_hidden_layers);
  f.integer("num_attention_heads", v.num_attention_heads);
  f.integer("num_channels", v.num_channels);
  f.integer("image_size", v.image_size);
  f.integer("patch_size", v.patch_size);
  f.number("layer_norm_eps", v.layer_norm_eps);
  f.string("hidden_act", v.hidden_act);
  auto positive = [&](const char* name, int64_t val, int64_t max) {
    if (val <= 0 || val > max) fail("{}: {} must be in 1..{}, got {}", where, name, max, val);
  };
  positive("hidden_size", v.hidden_size, 65536);
  positive("intermediate_size", v.intermediate_size, 1 << 20);
  positive("num_hidden_layers", v.num_hidden_layers, 1024);
  positive("num_attention_heads", v.num_attention_heads, 1024);
  positive("image_size", v.image_size, 8192);
  positive("patch_size", v.patch_size, 1024);
  if (v.num_channels != 3) fail("{}: num_channels must be 3 (RGB), got {}", where, v.num_channels);
  if (v.image_size % v.patch_size != 0)
    fail("{}: image_size {} is not a multiple of patch_size {}", where, v.image_size, v.patch_size);
  if (v.hidden_size % v.num_attention_heads != 0)
    fail("{}: hidden_size {} is not a multiple of num_attention_heads {}", where, v.hidden_size,
         v.num_attention_heads);
  if (v.hidden_act != "gelu_pytorch_tanh")
    fail("{}: hidden_act '{}' is not supported (SigLIP in Gemma 3 uses gelu_pytorch_tanh)", where, v.hidden_act);
  return v;
}

}  // namespace

std::vector<int64_t> Config::stop_token_ids() const {
  std::vector<int64_t> ids = eos_token_ids;
  for (int64_t id : generation.eos_token_ids)
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  return ids;
}

int64_t Config::tokens_per_side() const { return int64_t(std::lround(std::sqrt(double(mm_tokens_per_image)))); }
int64_t Config::pool_kernel() const { return vision ? vision->patches_per_side() / tokens_per_side() : 1; }

GenerationConfig parse_generation_config(const json& j, const std::string& where) {
  if (!j.is_object()) fail("{}: expected a JSON object", where);
  GenerationConfig g;
  Fields f{j, where};
  f.id_list("eos_token_id", g.eos_token_ids);
  if (f.has("bos_token_id")) { int64_t v = 0; f.integer("bos_token_id", v); g.bos_token_id = v; }
  if (f.has("pad_token_id")) { int64_t v = 0; f.integer("pad_token_id", v); g.pad_token_id = v; }
  if (f.has("do_sample")) { bool v = false; f.boolean("do_sample", v); g.do_sample = v; }
  f.optional_number("temperature", g.temperature);
  if (f.has("top_k")) { int64_t v = 0; f.integer("top_k", v); g.top_k = v; }
  f.optional_number("top_p", g.top_p);
  f.optional_number("min_p", g.min_p);
  f.optional_number("repetition_penalty", g.repetition_penalty);
  return g;
}

Config parse_config(const json& j, const std::string& where) {
  if (!j.is_object()) fail("{}: expected a JSON object", where);
  Config c;
  Fields f{j, where};
  f.string("model_type", c.model_type);
  if (f.has("architectures")) {
    const json& a = j["architectures"];
    if (!a.is_array() || a.empty() || !a[0].is_string())
      fail("{}: 'architectures' must be a list of class names", where);
    c.architecture = a[0].get<std::string>();
  }
  if (c.model_type.empty()) {
    if (c.architecture == "Gemma3ForConditionalGeneration") c.model_type = "gemma3";
    else if (c.architecture == "Gemma3ForCausalLM") c.model_type = "gemma3_text";
    else fail("{}: no 'model_type'; expected \"gemma3\" or \"gemma3_text\"", where);
  }
  if (c.model_type == "gemma3") {
    if (c.architecture.empty()) c.architecture = "Gemma3ForConditionalGeneration";
    if (c.architecture != "Gemma3ForConditionalGeneration")
      fail("{}: model_type gemma3 with architecture '{}' is not supported (expected Gemma3ForConditionalGeneration)",
           where, c.architecture);
    c.text = parse_text(f.has("text_config") ? j["text_config"] : json::object(), where + " text_config");
    c.vision = parse_vision(f.has("vision_config") ? j["vision_config"] : json::object(), where + " vision_config");
    f.integer("mm_tokens_per_image", c.mm_tokens_per_image);
    f.integer("boi_token_index", c.boi_token_index);
    f.integer("eoi_token_index", c.eoi_token_index);
    f.integer("image_token_index", c.image_token_index);
    f.integer("image_token_id", c.image_token_index);  // transformers-5 spelling
    f.integer("boi_token_id", c.boi_token_index);
    f.integer("eoi_token_id", c.eoi_token_index);
    if (f.has("text_config")) {
      Fields tf{j["text_config"], where + " text_config"};
      tf.id_list("eos_token_id", c.eos_token_ids);
      tf.integer("bos_token_id", c.bos_token_id);
      tf.integer("pad_token_id", c.pad_token_id);
    }
  } else if (c.model_type == "gemma3_text") {
    if (c.architecture.empty()) c.architecture = "Gemma3ForCausalLM";
    if (c.architecture != "Gemma3ForCausalLM")
      fail("{}: model_type gemma3_text with architecture '{}' is not supported (expected Gemma3ForCausalLM)", where,
           c.architecture);
    c.text = parse_text(j, where);
  } else {
    fail("{}: model_type '{}' is not supported (expected \"gemma3\" or \"gemma3_text\")", where, c.model_type);
  }
  f.id_list("eos_token_id", c.eos_token_ids);
  f.integer("bos_token_id", c.bos_token_id);
  f.integer("pad_token_id", c.pad_token_id);

  if (f.has("quantization_config")) {
    // Pre-quantized checkpoints: bitsandbytes 4-bit NF4 is read (formats/bnb.h); other schemes
    // (8-bit, FP4, GPTQ, AWQ, FP8) would load as garbage, so they are refused here.
    const json& q = j["quantization_config"];
    const std::string qw = where + " quantization_config";
    if (!q.is_object()) fail("{}: expected an object", qw);
    Fields qf{q, qw};
    std::string method;
    qf.string("quant_method", method);
    bool four = false;
    qf.boolean("load_in_4bit", four);
    std::string type = "fp4";  // BitsAndBytesConfig default
    qf.string("bnb_4bit_quant_type", type);
    if (method != "bitsandbytes" || !four || type != "nf4")
      fail("{}: quantization '{}' ({}{}) is not supported; bitsandbytes 4-bit NF4 is", qw, method,
           four ? "4-bit " : "", type);
    c.quantization = "bitsandbytes-nf4";
  }

  if (c.vision) {
    const int64_t side = c.tokens_per_side();
    if (c.mm_tokens_per_image <= 0 || side * side != c.mm_tokens_per_image)
      fail("{}: mm_tokens_per_image {} must be a positive square number", where, c.mm_tokens_per_image);
    if (c.vision->patches_per_side() % side != 0)
      fail("{}: {} patches per side cannot be average-pooled to {} tokens per side", where,
           c.vision->patches_per_side(), side);
    for (auto [name, id] : {std::pair{"boi_token_index", c.boi_token_index}, {"eoi_token_index", c.eoi_token_index}}) {
      if (id < 0 || id >= c.text.vocab_size)
        fail("{}: {} {} is outside the vocabulary (size {})", where, name, id, c.text.vocab_size);
    }
    if (c.image_token_index < 0) fail("{}: image_token_index must not be negative", where);
  }
  return c;
}

Config parse_config_text(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", where, e.what());
  }
  return parse_config(j, where);
}

Config load_config(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const std::string path = (fs::path(model_dir) / "config.json").string();
  if (!file_exists(path)) fail("{}: missing config.json (is this a Hugging Face model folder?)", model_dir);
  Config c = parse_config_text(read_file(path), path);
  const std::string gen_path = (fs::path(model_dir) / "generation_config.json").string();
  if (file_exists(gen_path)) {
    json g;
    try {
      g = json::parse(read_file(gen_path));
    } catch (const json::exception& e) {
      fail("{}: not valid JSON: {}", gen_path, e.what());
    }
    c.generation = parse_generation_config(g, gen_path);
  }
  return c;
}

}  // namespace unicorn::gemma3
