#include "models/gemma3/gguf_loader.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "formats/mapped_file.h"
#include "tokenizer/gguf_vocab.h"

namespace unicorn::gemma3 {

namespace {

using json = nlohmann::json;

// A float metadata value as the decimal it was written from: llama.cpp stores f32, so
// rms_norm_eps 1e-6 reads back as 9.99999997e-07; the shortest decimal that gives the same
// f32 ("1e-06") is what config.json said.
double metadata_number(const GgufFile& f, std::string_view key) {
  const GgufValue& v = f.get(key);
  const double d = f.get_float(key);
  if (v.type() != GgufType::F32) return d;
  const std::string s = fmt::format("{}", float(d));  // shortest round-trip representation
  double out = d;
  std::from_chars(s.data(), s.data() + s.size(), out);
  return out;
}

bool is_integer_type_array(const GgufValue& v) {
  switch (v.elem_type()) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

// An integer hyperparameter that llama.cpp allows per layer (an array): ours must be equal
// across layers.
int64_t uniform_int(const GgufFile& f, const std::string& key) {
  const GgufValue& v = f.get(key);
  if (v.type() != GgufType::ARRAY) return f.get_int(key);
  if (!is_integer_type_array(v) || v.size() == 0)
    fail("{}: metadata key '{}' must be an integer or an array of integers", f.path(), key);
  const int64_t first = v.int_at(0);
  for (uint64_t i = 1; i < v.size(); ++i)
    if (v.int_at(i) != first)
      fail("{}: '{}' differs between layers ({} and {}); Gemma 3 has the same value in every layer", f.path(), key,
           first, v.int_at(i));
  return first;
}

// The id of a piece in the embedded vocabulary, or `fallback` (Gemma's id) without one.
int64_t piece_id(const GgufFile& f, std::string_view piece, int64_t fallback) {
  if (!has_gguf_vocab(f)) return fallback;
  const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] == piece) return int64_t(i);
  fail("{}: the vocabulary has no '{}' token, which images need", f.path(), piece);
}

void check_architecture(const GgufFile& f, std::string_view expected, std::string_view hint) {
  const std::string arch = f.get_string_or("general.architecture", "");
  if (arch != expected)
    fail("{}: general.architecture is '{}', expected '{}'{}", f.path(), arch.empty() ? "(missing)" : arch, expected, hint);
}

json text_config_json(const GgufFile& f) {
  check_architecture(f, "gemma3",
                     f.get_string_or("general.architecture", "") == "clip"
                         ? " (this is an mmproj file: give it with --mmproj and the text model with -m)"
                         : " (only Gemma 3 GGUF files are supported)");
  const std::string a = "gemma3.";
  json t = json::object();
  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd || embd->shape.size() != 2)
    fail("{}: no 2-D tensor 'token_embd.weight' (the token embeddings, which give the vocabulary size)", f.path());
  t["vocab_size"] = embd->shape[0];
  t["hidden_size"] = f.get_int(a + "embedding_length");
  t["intermediate_size"] = uniform_int(f, a + "feed_forward_length");
  const int64_t layers = f.get_int(a + "block_count");
  t["num_hidden_layers"] = layers;
  const int64_t heads = uniform_int(f, a + "attention.head_count");
  t["num_attention_heads"] = heads;
  // ref: llama.cpp llama-model.cpp: head_count_kv defaults to head_count, key_length to
  // embedding_length / head_count.
  t["num_key_value_heads"] = f.has(a + "attention.head_count_kv") ? uniform_int(f, a + "attention.head_count_kv") : heads;
  const int64_t hidden = t["hidden_size"].get<int64_t>();
  if (heads <= 0) fail("{}: {}attention.head_count must be positive, got {}", f.path(), a, heads);
  const int64_t head_dim = f.get_int_or(a + "attention.key_length", hidden / heads);
  const int64_t value_dim = f.get_int_or(a + "attention.value_length", head_dim);
  if (value_dim != head_dim)
    fail("{}: attention.value_length {} differs from key_length {}; Gemma 3 has equal head sizes", f.path(), value_dim,
         head_dim);
  t["head_dim"] = head_dim;
  // ref: llama.cpp llama_load_hparams_gemma3: f_attention_scale.
  t["query_pre_attn_scalar"] = layers == 62 ? double(hidden / heads) : double(head_dim);
  t["max_position_embeddings"] = f.get_int(a + "context_length");
  t["rms_norm_eps"] = metadata_number(f, a + "attention.layer_norm_rms_epsilon");
  t["sliding_window"] = f.get_int(a + "attention.sliding_window");
  const std::string pattern_key = a + "attention.sliding_window_pattern";
  if (const GgufValue* p = f.find(pattern_key); p && p->type() == GgufType::ARRAY) {
    if (p->elem_type() != GgufType::BOOL)
      fail("{}: '{}' must be an integer or one bool per layer", f.path(), pattern_key);
    json types = json::array();
    for (uint64_t i = 0; i < p->size(); ++i) types.push_back(p->bool_at(i) ? "sliding_attention" : "full_attention");
    t["layer_types"] = types;
  } else {
    t["sliding_window_pattern"] = p ? f.get_int(pattern_key) : 6;  // ref: set_swa_pattern(6)
  }
  // RoPE: llama.cpp's default base is 10000; local layers use freq_base_swa, unscaled.
  t["rope_theta"] = f.has(a + "rope.freq_base") ? metadata_number(f, a + "rope.freq_base") : 10000.0;
  t["rope_local_base_freq"] = f.has(a + "rope.freq_base_swa") ? metadata_number(f, a + "rope.freq_base_swa") : 10000.0;
  std::string scaling = f.get_string_or(a + "rope.scaling.type", "");
  double factor = 0;
  if (f.has(a + "rope.scaling.factor")) factor = metadata_number(f, a + "rope.scaling.factor");
  if (f.has(a + "rope.scale_linear")) {  // the older spelling of linear scaling
    factor = metadata_number(f, a + "rope.scale_linear");
    if (scaling.empty()) scaling = "linear";
  }
  if (scaling == "linear" && factor != 1.0) {
    if (!(factor > 0)) fail("{}: rope.scaling.type is linear but the factor is {}", f.path(), factor);
    t["rope_scaling"] = {{"rope_type", "linear"}, {"factor", factor}};
  } else if (!scaling.empty() && scaling != "none" && scaling != "linear") {
    t["rope_scaling"] = {{"rope_type", scaling}, {"factor", factor}};  // parse_config names the unsupported type
  }
  // Logit soft-capping keys, if a file has them, are ignored as llama.cpp's gemma3 does.
  return t;
}

json vision_config_json(const GgufFile& m, int64_t text_hidden, int64_t& tokens_per_image) {
  check_architecture(m, "clip", " (an mmproj file from llama.cpp's --mmproj conversion)");
  const std::string projector = m.get_string_or("clip.projector_type", m.get_string_or("clip.vision.projector_type", ""));
  if (projector != "gemma3")
    fail("{}: clip.projector_type is '{}', expected 'gemma3' (this mmproj is not Gemma 3's)", m.path(), projector);
  if (!m.get_bool_or("clip.has_vision_encoder", false)) fail("{}: clip.has_vision_encoder is not true", m.path());
  const std::string v = "clip.vision.";
  json c = json::object();
  c["hidden_size"] = m.get_int(v + "embedding_length");
  c["intermediate_size"] = m.get_int(v + "feed_forward_length");
  c["num_hidden_layers"] = m.get_int(v + "block_count");
  c["num_attention_heads"] = m.get_int(v + "attention.head_count");
  c["image_size"] = m.get_int(v + "image_size");
  c["patch_size"] = m.get_int(v + "patch_size");
  c["layer_norm_eps"] = metadata_number(m, v + "attention.layer_norm_epsilon");
  if (!m.get_bool_or("clip.use_gelu", false))
    fail("{}: clip.use_gelu is not true; SigLIP in Gemma 3 uses GELU (tanh)", m.path());
  c["hidden_act"] = "gelu_pytorch_tanh";
  const int64_t proj = m.get_int_or(v + "projection_dim", text_hidden);
  if (proj != text_hidden)
    fail("{}: clip.vision.projection_dim {} does not match the text model's embedding_length {}: an mmproj of another "
         "model?", m.path(), proj, text_hidden);
  // Our preprocessing normalizes with mean 0.5 and std 0.5, as Gemma 3's processor does.
  for (const char* key : {"image_mean", "image_std"}) {
    if (!m.has(v + key)) continue;
    const std::vector<float> vals = m.get_f32_array(v + key);
    if (vals.size() != 3 || std::any_of(vals.begin(), vals.end(), [](float x) { return x != 0.5f; }))
      fail("{}: {}{} must be [0.5, 0.5, 0.5] (Gemma 3's image normalization)", m.path(), v, key);
  }
  // ref: llama.cpp clip.cpp PROJECTOR_TYPE_GEMMA3: n_merge 4 unless scale_factor says otherwise.
  const int64_t merge = m.get_int_or(v + "projector.scale_factor", 4);
  const int64_t side = c["image_size"].get<int64_t>() / std::max<int64_t>(c["patch_size"].get<int64_t>(), 1);
  if (merge <= 0 || side % merge != 0)
    fail("{}: {} patches per side cannot be pooled by clip.vision.projector.scale_factor {}", m.path(), side, merge);
  tokens_per_image = (side / merge) * (side / merge);
  return c;
}

bool is_norm(const TensorSpec& spec) {
  const bool text_norm = spec.component == Component::Text && !spec.matrix;
  return text_norm || spec.canonical == "proj.norm";
}

// 1-D norm weight stored as 1 + w: back to w, in F32.
Tensor minus_one(const Tensor& t, const GgufFile& f, const TensorSpec& spec) {
  if (t.dtype() != DType::F32 && t.dtype() != DType::F16 && t.dtype() != DType::BF16)
    fail("{}: norm weight '{}' has type {}, expected F32, F16 or BF16", f.path(), spec.gguf, dtype_name(t.dtype()));
  std::vector<float> v = t.to_f32();
  for (float& x : v) x -= 1.0f;
  return Tensor::from_f32(v, t.shape());
}

}  // namespace

bool is_gguf_path(const std::string& path) {
  std::string ext = path.size() >= 5 ? path.substr(path.size() - 5) : "";
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".gguf") return true;
  // A file of another name that starts with GGUF's magic.
  if (!file_exists(path)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

Config config_from_gguf(const GgufFile& text, const GgufFile* mmproj) {
  json t = text_config_json(text);
  // Gemma's configs stop on <eos> and <end_of_turn>; llama.cpp's eos_token_id is one of them.
  std::set<int64_t> eos;
  if (text.has("tokenizer.ggml.eos_token_id")) eos.insert(text.get_int("tokenizer.ggml.eos_token_id"));
  if (text.has("tokenizer.ggml.eot_token_id")) eos.insert(text.get_int("tokenizer.ggml.eot_token_id"));
  if (has_gguf_vocab(text)) {
    const auto tokens = text.get_string_array("tokenizer.ggml.tokens");
    for (size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] == "<eos>" || tokens[i] == "<end_of_turn>") eos.insert(int64_t(i));
  }
  json root = json::object();
  if (!eos.empty()) root["eos_token_id"] = std::vector<int64_t>(eos.begin(), eos.end());
  if (text.has("tokenizer.ggml.bos_token_id")) root["bos_token_id"] = text.get_int("tokenizer.ggml.bos_token_id");
  if (text.has("tokenizer.ggml.padding_token_id")) root["pad_token_id"] = text.get_int("tokenizer.ggml.padding_token_id");
  std::string where = text.path();
  if (mmproj) {
    int64_t tokens_per_image = 0;
    json vision = vision_config_json(*mmproj, t["hidden_size"].get<int64_t>(), tokens_per_image);
    root["architectures"] = {"Gemma3ForConditionalGeneration"};
    root["model_type"] = "gemma3";
    root["text_config"] = t;
    root["vision_config"] = vision;
    root["mm_tokens_per_image"] = tokens_per_image;
    root["boi_token_index"] = piece_id(text, "<start_of_image>", 255999);
    root["eoi_token_index"] = piece_id(text, "<end_of_image>", 256000);
    root["image_token_index"] = piece_id(text, "<image_soft_token>", 262144);
    where += " + " + mmproj->path();
  } else {
    root.update(t);
    root["architectures"] = {"Gemma3ForCausalLM"};
    root["model_type"] = "gemma3_text";
  }
  return parse_config(root, where + " (GGUF metadata)");
}

GgufModel load_gguf_model(std::shared_ptr<const GgufFile> text, std::shared_ptr<const GgufFile> mmproj) {
  GgufModel m{config_from_gguf(*text, mmproj.get()), Weights(), text, mmproj};
  std::map<std::string, Tensor> tensors;
  std::set<std::string> used_text, used_mmproj;
  for (const TensorSpec& spec : tensor_table(m.config)) {
    const GgufFile& f = spec.component == Component::Text ? *text : *mmproj;
    const GgufTensorInfo* info = f.find_tensor(spec.gguf);
    if (!info)
      fail("{}: missing tensor '{}' ({} weight {}, expected shape {})", f.path(), spec.gguf,
           component_name(spec.component), spec.canonical, shape_str(spec.shape));
    if (info->shape != spec.shape)
      fail("{}: tensor '{}' has shape {} (ggml ne {}), expected {} from the metadata", f.path(), spec.gguf,
           shape_str(info->shape), shape_str(Shape(info->ne.begin(), info->ne.end())), shape_str(spec.shape));
    Tensor t = f.tensor(*info);
    tensors[spec.canonical] = is_norm(spec) ? minus_one(t, f, spec) : t;
    (spec.component == Component::Text ? used_text : used_mmproj).insert(spec.gguf);
  }
  auto refuse_unknown = [](const GgufFile& f, const std::set<std::string>& used) {
    std::vector<std::string> unknown;
    for (const GgufTensorInfo& t : f.tensors())
      if (!used.count(t.name)) unknown.push_back(t.name);
    if (unknown.empty()) return;
    if (std::find(unknown.begin(), unknown.end(), "output.weight") != unknown.end())
      fail("{}: tensor 'output.weight' (an LM head separate from the token embeddings) is not supported: Gemma 3 "
           "ties them", f.path());
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", '" : "'") + unknown[i] + "'";
    fail("{}: {} tensor(s) that Gemma 3 with this metadata does not have: {}{}", f.path(), unknown.size(), list,
         unknown.size() > 5 ? ", ..." : "");
  };
  refuse_unknown(*text, used_text);
  if (mmproj) refuse_unknown(*mmproj, used_mmproj);
  const std::string where = mmproj ? text->path() + " + " + mmproj->path() : text->path();
  m.weights = Weights::from_tensors(std::move(tensors), m.config, where, /*allow_block_formats=*/true);
  return m;
}

GgufModel load_gguf_model(const std::string& path, const std::string& mmproj_path) {
  std::shared_ptr<const GgufFile> text = GgufFile::open(path);
  std::shared_ptr<const GgufFile> mmproj;
  if (!mmproj_path.empty()) mmproj = GgufFile::open(mmproj_path);
  return load_gguf_model(std::move(text), std::move(mmproj));
}

}  // namespace unicorn::gemma3
