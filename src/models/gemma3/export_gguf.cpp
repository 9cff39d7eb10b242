// unicorn quantize --type f16|bf16|q8_0|q4_0|q4_k_m|q6_k: GGUF files as llama.cpp writes
// Gemma 3 (see export.h for the flows reproduced).
// ref: llama.cpp convert_hf_to_gguf.py (Gemma3Model, Gemma3VisionModel, MmprojModel),
// gguf-py (SpecialVocab, size_label), src/llama-quant.cpp (llama_tensor_get_type_impl,
// tensor_type_fallback), src/llama-model-loader.h (weight_name_comparer).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/quant/quant.h"
#include "core/thread_pool.h"
#include "formats/gguf_writer.h"
#include "formats/mapped_file.h"
#include "formats/safetensors.h"
#include "models/gemma3/config.h"
#include "models/gemma3/export.h"
#include "models/gemma3/weights.h"
#include "tokenizer/gguf_vocab_export.h"

namespace unicorn::gemma3 {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct TypeInfo {
  GgufExportType type;
  std::string_view name;
  DType dtype;         // the type of the text matrices
  uint32_t file_type;  // ref: llama.h enum llama_ftype
  bool quantize_flow;  // llama-quantize over a bf16 conversion (else convert_hf_to_gguf.py alone)
};

constexpr TypeInfo kTypes[] = {
    {GgufExportType::F16, "f16", DType::F16, 1, false},
    {GgufExportType::BF16, "bf16", DType::BF16, 32, false},
    {GgufExportType::Q8_0, "q8_0", DType::Q8_0, 7, false},
    {GgufExportType::Q4_0, "q4_0", DType::Q4_0, 2, true},
    {GgufExportType::Q4_K_M, "q4_k_m", DType::Q4_K, 15, true},
    {GgufExportType::Q6_K, "q6_k", DType::Q6_K, 18, true},
};
constexpr uint32_t kFileTypeF16 = 1, kQuantizationVersion = 2;  // GGML_QNT_VERSION

const TypeInfo& info(GgufExportType t) {
  for (const TypeInfo& i : kTypes)
    if (i.type == t) return i;
  fail("unknown GGUF export type");
}

int64_t block_of(DType t) { return dtype_info(t).block_elems; }

// A tensor to write: where its values come from and how they are stored.
struct Planned {
  const TensorSpec* spec;
  std::string hf_name;
  DType dtype;
  bool plus_one;  // Gemma's RMSNorm weight: stored as 1 + w (llama.cpp multiplies by w)
};

// ref: llama-quant.cpp llama_tensor_get_type_impl use_more_bits.
bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

int64_t layer_of(const std::string& gguf_name) {
  int layer = -1;
  return std::sscanf(gguf_name.c_str(), "blk.%d.", &layer) == 1 ? layer : -1;
}

// ref: llama-quant.cpp tensor_type_fallback.
DType quantize_fallback(DType t, const TensorSpec& spec, std::string& reason) {
  const int64_t cols = spec.shape.back();
  if (cols % block_of(t) == 0) return t;
  DType to;
  switch (t) {
    case DType::Q4_K: to = DType::Q5_0; break;
    case DType::Q6_K: to = DType::Q8_0; break;
    default:
      fail("tensor '{}': rows of {} values are not whole {} blocks, and llama-quantize has no fallback for {}",
           spec.gguf, cols, dtype_name(t), dtype_name(t));
  }
  if (cols % block_of(to) != 0) to = DType::F16;
  reason += fmt::format("{}rows of {} values are not whole {} blocks of {}: {} (llama-quantize's fallback)",
                        reason.empty() ? "" : "; ", cols, dtype_name(t), block_of(t), dtype_name(to));
  return to;
}

// The type of a text tensor, and why it is not the requested one (empty when it is).
DType text_type(const TensorSpec& spec, const TypeInfo& ti, int64_t n_layers, std::string& reason) {
  if (!spec.matrix) return DType::F32;  // norms: F32 in every llama.cpp file
  const int64_t cols = spec.shape.back();
  if (!ti.quantize_flow) {
    // ref: convert_hf_to_gguf.py prepare_tensors: a QuantError falls back to F16.
    if (cols % block_of(ti.dtype) == 0) return ti.dtype;
    reason = fmt::format("rows of {} values are not whole {} blocks: F16 (convert_hf_to_gguf.py's fallback)", cols,
                         dtype_name(ti.dtype));
    return DType::F16;
  }
  DType t = ti.dtype;
  const std::string& g = spec.gguf;
  if (spec.canonical == "text.embed") {
    // Tied embeddings: the token embedding is quantized as the output tensor would be.
    if (cols % block_of(t) != 0) {
      t = DType::Q8_0;
      reason = fmt::format("token embedding (the tied output layer) with rows of {} values, not whole {} blocks: Q8_0",
                           cols, dtype_name(ti.dtype));
    } else if (t != DType::Q8_0) {
      t = DType::Q6_K;
      if (ti.dtype != DType::Q6_K) reason = "token embedding (the tied output layer): Q6_K, as llama-quantize stores it";
    }
  } else if (ti.type == GgufExportType::Q4_K_M &&
             (g.find("attn_v.weight") != std::string::npos || g.find("ffn_down") != std::string::npos) &&
             use_more_bits(layer_of(g), n_layers)) {
    t = DType::Q6_K;
    reason = fmt::format("Q4_K_M: {} of layer {} in Q6_K (use_more_bits)",
                         g.find("attn_v") != std::string::npos ? "attn_v" : "ffn_down", layer_of(g));
  }
  return quantize_fallback(t, spec, reason);
}

// ref: convert_hf_to_gguf.py Gemma3VisionModel.tensor_force_quant and the F16 outtype.
DType mmproj_type(const TensorSpec& spec) {
  if (spec.canonical == "proj.input") return DType::F16;
  return spec.matrix ? DType::F16 : DType::F32;
}

// ref: gguf-py utility.py model_weight_count_rounded_notation.
std::string size_label(int64_t n) {
  double scaled;
  char suffix;
  if (n > 1000000000000) {
    scaled = double(n) * 1e-12, suffix = 'T';
  } else if (n > 1000000000) {
    scaled = double(n) * 1e-9, suffix = 'B';
  } else if (n > 1000000) {
    scaled = double(n) * 1e-6, suffix = 'M';
  } else {
    scaled = double(n) * 1e-3, suffix = 'K';
  }
  const auto rounded = int64_t(std::nearbyint(scaled));
  const int digits = rounded == 0 ? 0 : int(std::to_string(rounded).size());
  return fmt::format("{:.{}f}{}", scaled, std::max(2 - digits, 0), suffix);
}

// general.name as gguf-py derives it from the folder name ("tiny-mm-realvocab" -> "Tiny Mm
// Realvocab"): separators to spaces, Python's str.title().
std::string model_name(const std::string& src_dir) {
  std::string base = fs::path(src_dir).lexically_normal().filename().string();
  if (base.empty() || base == ".") base = fs::absolute(src_dir).lexically_normal().parent_path().filename().string();
  std::string out;
  bool prev_alpha = false;
  for (char c : base) {
    if (c == '-' || c == '_') c = ' ';
    const bool alpha = std::isalpha(static_cast<unsigned char>(c)) != 0;
    out += alpha ? char(prev_alpha ? std::tolower(c) : std::toupper(c)) : c;
    prev_alpha = alpha;
  }
  return out;
}

void set_general(GgufWriter& w, const std::string& arch, const std::string& type, const std::string& name,
                 const std::vector<Planned>& plan) {
  int64_t params = 0;
  for (const Planned& p : plan) params += shape_numel(p.spec->shape);
  w.set_string("general.architecture", arch);
  w.set_string("general.type", type);
  w.set_string("general.name", name);
  w.set_string("general.size_label", size_label(params));
}

void set_u32s(GgufWriter& w, const std::string& prefix, std::initializer_list<std::pair<const char*, int64_t>> kv) {
  for (const auto& [key, value] : kv) w.set_u32(prefix + key, uint32_t(value));
}

// ref: convert_hf_to_gguf.py TextModel / Gemma3Model set_gguf_parameters, in their order.
void set_text_metadata(GgufWriter& w, const Config& c, const TypeInfo& ti) {
  const TextConfig& x = c.text;
  const std::string a = "gemma3.";
  set_u32s(w, a, {{"block_count", x.num_hidden_layers},
                  {"context_length", x.max_position_embeddings},
                  {"embedding_length", x.hidden_size},
                  {"feed_forward_length", x.intermediate_size},
                  {"attention.head_count", x.num_attention_heads},
                  {"attention.head_count_kv", x.num_key_value_heads}});
  if (x.rope_full.type == "linear") {
    w.set_string(a + "rope.scaling.type", "linear");
    w.set_f32(a + "rope.scaling.factor", float(x.rope_full.factor));
  }
  w.set_f32(a + "rope.freq_base", float(x.rope_full.theta));
  w.set_f32(a + "rope.freq_base_swa", float(x.rope_sliding.theta));
  w.set_f32(a + "attention.layer_norm_rms_epsilon", float(x.rms_norm_eps));
  w.set_u32(a + "attention.key_length", uint32_t(x.head_dim));
  w.set_u32(a + "attention.value_length", uint32_t(x.head_dim));
  // The bf16 conversion that llama-quantize reads carries these two; llama-quantize moves
  // them to the end (written there by export_text).
  if (!ti.quantize_flow) w.set_u32("general.file_type", ti.file_type);
  w.set_u32(a + "attention.sliding_window", uint32_t(x.sliding_window));
  // llama.cpp's gemma3 assumes every 6th layer global; another pattern (only in test models)
  // is written as one bool per layer (true = sliding), which gguf_loader reads.
  std::vector<bool> sliding;
  bool standard = true;
  for (int64_t l = 0; l < x.num_hidden_layers; ++l) {
    sliding.push_back(x.is_sliding(l));
    standard = standard && sliding.back() == ((l + 1) % 6 != 0);
  }
  if (!standard) w.set_array(a + "attention.sliding_window_pattern", GgufWriter::Array::of_bools(sliding));
  if (!ti.quantize_flow) w.set_u32("general.quantization_version", kQuantizationVersion);
}

std::vector<float> image_stat(const std::string& src_dir, const char* key) {
  const std::string path = (fs::path(src_dir) / "preprocessor_config.json").string();
  if (file_exists(path)) {
    const json p = json::parse(read_file(path), nullptr, false);
    if (p.is_object() && p.contains(key) && p[key].is_array() && p[key].size() == 3)
      return p[key].get<std::vector<float>>();
  }
  return {0.5f, 0.5f, 0.5f};  // Gemma 3's processor
}

// ref: convert_hf_to_gguf.py MmprojModel + Gemma3VisionModel set_gguf_parameters.
void set_mmproj_metadata(GgufWriter& w, const Config& c, const std::string& src_dir) {
  const VisionConfig& v = *c.vision;
  const std::string p = "clip.vision.";
  w.set_u32("general.file_type", kFileTypeF16);
  w.set_bool("clip.has_vision_encoder", true);
  set_u32s(w, p, {{"projection_dim", c.text.hidden_size},
                  {"image_size", v.image_size},
                  {"patch_size", v.patch_size},
                  {"embedding_length", v.hidden_size},
                  {"feed_forward_length", v.intermediate_size},
                  {"block_count", v.num_hidden_layers},
                  {"attention.head_count", v.num_attention_heads}});
  const std::vector<float> mean = image_stat(src_dir, "image_mean"), std = image_stat(src_dir, "image_std");
  w.set_array(p + "image_mean", GgufWriter::Array::of(std::span<const float>(mean)));
  w.set_array(p + "image_std", GgufWriter::Array::of(std::span<const float>(std)));
  w.set_string("clip.projector_type", "gemma3");
  w.set_f32(p + "attention.layer_norm_epsilon", float(v.layer_norm_eps));
  w.set_bool("clip.use_gelu", true);
  const int64_t scale = c.pool_kernel();
  if (scale > 0 && scale != 4) w.set_u32(p + "projector.scale_factor", uint32_t(scale));
  w.set_u32("general.quantization_version", kQuantizationVersion);
}

// Adds the planned tensors; each is converted when the writer reaches it.
void add_tensors(GgufWriter& w, const std::vector<Planned>& plan, const Weights& weights, ThreadPool& pool,
                 const std::function<void(const std::string&)>& done) {
  for (const Planned& p : plan) {
    const Tensor& t = weights.get(p.spec->canonical);
    w.add_generated(p.spec->gguf, p.dtype, p.spec->shape, [&t, &p, &pool, done](void* bytes) {
      if (p.dtype == DType::F32) {
        std::vector<float> v = t.to_f32();
        if (p.plus_one)
          for (float& x : v) x += 1.0f;  // in f32, from the f32 value of the bf16 weight
        std::memcpy(bytes, v.data(), v.size() * sizeof(float));
      } else {
        quantize_matrix_into(t, p.dtype, bytes, &pool);  // 2-D: only matrices are stored in other types
      }
      done(p.spec->gguf);
    });
  }
}

// convert_hf_to_gguf.py writes tensors as it reads them: shard by shard, each shard's
// names sorted.
void sort_as_converted(std::vector<Planned>& plan, const SafetensorsSet& files) {
  auto shard = [&](const Planned& p) {
    const auto* loc = files.find(p.hf_name);
    const auto& all = files.files();
    for (size_t i = 0; i < all.size(); ++i)
      if (loc && all[i].get() == loc->file) return i;
    return size_t(0);
  };
  std::stable_sort(plan.begin(), plan.end(), [&](const Planned& a, const Planned& b) {
    const size_t sa = shard(a), sb = shard(b);
    return sa != sb ? sa < sb : a.hf_name < b.hf_name;
  });
}

// ref: llama-model-loader.h weight_name_comparer (llama-quantize's output order).
void sort_as_quantized(std::vector<Planned>& plan) {
  std::stable_sort(plan.begin(), plan.end(), [](const Planned& a, const Planned& b) {
    const int64_t la = layer_of(a.spec->gguf), lb = layer_of(b.spec->gguf);
    return la != lb ? la < lb : a.spec->gguf < b.spec->gguf;
  });
}

// Fails early, before any conversion, when `path` cannot be written.
void check_writable(const std::string& path, const char* what) {
  if (fs::is_directory(path)) fail("{}: is a folder; {} names the .gguf file to write", path, what);
  const fs::path parent = fs::absolute(path).parent_path();
  if (!fs::is_directory(parent)) fail("{}: the folder {} does not exist", path, parent.string());
  const std::string probe = path + ".tmp";
  {
    std::ofstream f(probe, std::ios::binary | std::ios::trunc);
    if (!f) fail("{}: cannot write here: {}", path, std::strerror(errno));
  }
  std::remove(probe.c_str());
}

}  // namespace

std::optional<GgufExportType> parse_gguf_export_type(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  for (const TypeInfo& i : kTypes)
    if (i.name == lower) return i.type;
  return std::nullopt;
}

std::string_view gguf_export_type_name(GgufExportType t) { return info(t).name; }

std::string default_mmproj_path(const std::string& out_path, GgufExportType type) {
  const fs::path out(out_path);
  std::string stem = out.extension() == ".gguf" ? out.stem().string() : out.filename().string();
  const std::string suffix = "-" + std::string(info(type).name);
  std::string lower = stem;
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (lower.size() > suffix.size() && lower.ends_with(suffix)) stem.resize(stem.size() - suffix.size());
  return (out.parent_path() / ("mmproj-" + stem + "-f16.gguf")).string();
}

GgufExportResult export_gguf(const std::string& src_dir, const std::string& out_path, GgufExportType type,
                             const std::string& mmproj_path, const ExportProgress& progress) {
  const TypeInfo& ti = info(type);
  const Config config = load_config(src_dir);
  auto files = std::make_shared<const SafetensorsSet>(SafetensorsSet::open(src_dir));
  const Weights weights = Weights::from_safetensors(files, config);
  for (const TensorSpec& spec : weights.specs()) {
    const DType d = weights.get(spec.canonical).dtype();
    if (d != DType::F32 && d != DType::F16 && d != DType::BF16)
      fail("{}: '{}' is {}: quantize from the bf16 (or f16/f32) checkpoint", src_dir, spec.canonical, dtype_name(d));
  }
  GgufExportResult result;
  result.text_path = out_path;
  if (config.multimodal()) result.mmproj_path = mmproj_path.empty() ? default_mmproj_path(out_path, type) : mmproj_path;
  check_writable(out_path, "--out");
  if (!result.mmproj_path.empty()) {
    if (fs::absolute(result.mmproj_path).lexically_normal() == fs::absolute(out_path).lexically_normal())
      fail("{}: the mmproj file must differ from the text GGUF (--mmproj-out)", result.mmproj_path);
    check_writable(result.mmproj_path, "--mmproj-out");
  }
  // ref: llama-model.cpp LLM_ARCH_GEMMA3 hparams (what gguf_loader.cpp reads back).
  const TextConfig& x = config.text;
  const double scale = x.num_hidden_layers == 62 ? double(x.hidden_size / x.num_attention_heads) : double(x.head_dim);
  if (x.query_pre_attn_scalar != scale)
    result.warnings.push_back(fmt::format(
        "query_pre_attn_scalar {} has no GGUF key: llama.cpp (and unicorn on this file) scales attention by {}^-0.5",
        x.query_pre_attn_scalar, scale));
  for (int64_t l = 0; l < x.num_hidden_layers; ++l) {
    if (x.is_sliding(l) == ((l + 1) % 6 != 0)) continue;
    result.warnings.push_back("the layer pattern is not llama.cpp's (every 6th layer global): written as "
                              "gemma3.attention.sliding_window_pattern, which unicorn reads; llama.cpp may not");
    break;
  }
  // The vocabulary first: a folder without a tokenizer fails before any conversion.
  const GgufVocabExport vocab = build_gguf_vocab(src_dir, config.text.vocab_size);

  std::vector<Planned> text, mmproj;
  for (const TensorSpec& spec : weights.specs()) {
    const std::string hf = weights.prefix(spec.component) + spec.inner;
    if (spec.component == Component::Text) {
      std::string reason;
      const DType d = text_type(spec, ti, config.text.num_hidden_layers, reason);
      if (!reason.empty()) result.notes.push_back({spec.gguf, d, reason});
      text.push_back({&spec, hf, d, !spec.matrix});
    } else {
      mmproj.push_back({&spec, hf, mmproj_type(spec), spec.canonical == "proj.norm"});
    }
  }
  if (ti.quantize_flow) {
    sort_as_quantized(text);
  } else {
    sort_as_converted(text, *files);
  }
  sort_as_converted(mmproj, *files);

  ThreadPool pool;
  int64_t done = 0;
  const auto total = int64_t(text.size() + mmproj.size());
  auto tick = [&](const std::string& name) {
    if (progress) progress(++done, total, name);
  };
  const std::string name = model_name(src_dir);
  {
    GgufWriter w;
    set_general(w, "gemma3", "model", name, text);
    set_text_metadata(w, config, ti);
    write_gguf_vocab(w, vocab);
    if (ti.quantize_flow) {
      // ref: llama-quant.cpp: gguf_set_kv of the source, then these two (moved to the end).
      w.set_u32("general.quantization_version", kQuantizationVersion);
      w.set_u32("general.file_type", ti.file_type);
    }
    add_tensors(w, text, weights, pool, tick);
    w.write(out_path);
  }
  if (!mmproj.empty()) {
    GgufWriter w;
    set_general(w, "clip", "mmproj", name, mmproj);
    set_mmproj_metadata(w, config, src_dir);
    add_tensors(w, mmproj, weights, pool, tick);
    w.write(result.mmproj_path);
  }
  return result;
}

void write_random_text_gguf(const Config& config, const std::string& out_path, GgufExportType type, uint64_t seed,
                            const ExportProgress& progress) {
  const TypeInfo& ti = info(type);
  check_writable(out_path, "--out");
  const std::vector<TensorSpec> specs = tensor_table(config);  // the plan points into it
  std::vector<Planned> text;
  for (const TensorSpec& spec : specs) {
    if (spec.component != Component::Text) continue;
    std::string reason;
    text.push_back({&spec, spec.inner, text_type(spec, ti, config.text.num_hidden_layers, reason), !spec.matrix});
  }
  sort_as_quantized(text);
  ThreadPool pool;
  GgufWriter w;
  set_general(w, "gemma3", "model", "Random Gemma 3", text);
  set_text_metadata(w, config, ti);
  w.set_u32("general.quantization_version", kQuantizationVersion);
  w.set_u32("general.file_type", ti.file_type);
  int64_t done = 0;
  const auto total = int64_t(text.size());
  uint64_t index = 0;
  for (const Planned& p : text) {
    const uint64_t tensor_seed = seed * 0x9E3779B97F4A7C15ull + ++index;
    w.add_generated(p.spec->gguf, p.dtype, p.spec->shape, [&, p, tensor_seed](void* bytes) {
      const int64_t cols = p.spec->shape.back(), rows = shape_numel(p.spec->shape) / cols;
      const int64_t row_bytes = dtype_bytes(p.dtype, cols);
      // Values uniform in [-0.02, 0.02) (norm weights 1 + that), quantized row by row.
      pool.parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
        std::vector<float> v(static_cast<size_t>(cols));
        for (int64_t r = r0; r < r1; ++r) {
          uint64_t s = (tensor_seed + uint64_t(r) * 0xD1B54A32D192ED03ull) | 1;
          for (float& x : v) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            x = (float(s >> 40) * (1.0f / 16777216.0f) - 0.5f) * 0.04f + (p.plus_one ? 1.0f : 0.0f);
          }
          quantize_values(p.dtype, v.data(), static_cast<char*>(bytes) + r * row_bytes, cols);
        }
      });
      if (progress) progress(++done, total, p.spec->gguf);
    });
  }
  w.write(out_path);
}

}  // namespace unicorn::gemma3
