// unicorn info: what a model folder or GGUF file (+ mmproj) holds: architecture, shapes,
// parameter counts and bytes by component and dtype (block formats such as Q4_0 included).
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "models/gemma3/gguf_loader.h"
#include "models/gemma3/config.h"
#include "models/gemma3/memory.h"
#include "models/gemma3/presets.h"
#include "models/gemma3/weights.h"

namespace unicorn::cli {

namespace {

std::string human_bytes(int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.2f} {}", v, units[u]);
}

std::string human_count(int64_t n) {
  if (n >= 1000000000) return fmt::format("{:.2f} B", double(n) / 1e9);
  if (n >= 1000000) return fmt::format("{:.2f} M", double(n) / 1e6);
  if (n >= 1000) return fmt::format("{:.1f} K", double(n) / 1e3);
  return std::to_string(n);
}

struct InfoArgs {
  std::string model, mmproj, size, quant, kv_type = "f32";
  int64_t ctx = 0;
};

void print_memory(const gemma3::Config& config, const InfoArgs& a, const gemma3::Weights* weights) {
  using namespace gemma3;
  const DType kv = parse_weight_format(a.kv_type);
  if (kv != DType::F32 && kv != DType::F16 && kv != DType::BF16) fail("--kv-type must be f32, f16 or bf16");
  MemoryEstimate m;
  std::string format_note;
  if (!a.quant.empty() || !weights) {
    const DType f = a.quant.empty() ? DType::BF16 : parse_weight_format(a.quant);
    // Quantized loading stores the tied embedding / LM head in the same format (it is the
    // largest single matrix); bf16 keeps everything as is.
    m = estimate_memory(config, f, f != DType::BF16, a.ctx, kv);
    format_note = fmt::format("linear weights and embedding as {}", dtype_name(f));
    for (const auto& w : matrices_kept_wide(config, f)) format_note += fmt::format("; {} stays BF16", w);
  } else {
    m = estimate_memory(config, DType::BF16, false, a.ctx, kv);
    m.text_weights = weights->stats(Component::Text).bytes;
    m.vision_weights = config.vision ? weights->stats(Component::Vision).bytes : 0;
    m.projector_weights = config.vision ? weights->stats(Component::Projector).bytes : 0;
    format_note = "weights as stored";
  }
  int64_t full = 0, sliding = 0;
  for (auto lt : config.text.layer_types) (lt == LayerType::Sliding ? sliding : full) += 1;
  fmt::print("\nmemory at context {} ({}; KV cache {}):\n", a.ctx, format_note, dtype_name(kv));
  auto row = [](const char* what, int64_t bytes, const std::string& note = {}) {
    fmt::print("  {:<18} {:>12}  {}\n", what, human_bytes(bytes), note);
  };
  row("text weights", m.text_weights);
  if (config.vision) {
    row("vision weights", m.vision_weights);
    row("projector weights", m.projector_weights);
  }
  row("KV cache", m.kv_cache,
      fmt::format("{} full layers x {} positions, {} sliding layers x {} (window {} + chunk)", full, m.kv_full_slots,
                  sliding, m.kv_sliding_slots, config.text.sliding_window));
  row("total", m.total(), fmt::format("({:.2f} GB)", double(m.total()) / 1e9));
}
// The GGUF files' own description: format version, llama.cpp's name and file type.
std::string gguf_description(const GgufFile& f) {
  std::string s = fmt::format("{} (GGUF v{}, {}", f.path(), f.version(), f.get_string_or("general.architecture", "?"));
  if (f.has("general.name")) s += fmt::format(", \"{}\"", f.get_string("general.name"));
  return s + fmt::format(", {} tensors)", f.tensors().size());
}

// A GGUF's text matrices outside its main type: llama-quantize keeps some wider (the tied
// token embedding; Q4_K_M's attn_v and ffn_down on some layers) and falls back for rows that
// are not whole blocks of the type.
void print_mixed_types(const gemma3::Weights& weights) {
  std::map<DType, int> count;
  for (const gemma3::TensorSpec& s : weights.specs())
    if (s.component == gemma3::Component::Text && s.matrix) ++count[weights.get(s.canonical).dtype()];
  if (count.empty()) return;
  const DType main = std::max_element(count.begin(), count.end(), [](auto& x, auto& y) { return x.second < y.second; })->first;
  std::string others;
  for (const gemma3::TensorSpec& s : weights.specs()) {
    const DType d = weights.get(s.canonical).dtype();
    if (s.component == gemma3::Component::Text && s.matrix && d != main)
      others += fmt::format("\n  {:<30} {}", s.gguf, dtype_name(d));
  }
  fmt::print("\ntext matrices: {} of {} in {}{}\n", count[main], count[main] + int(std::count(others.begin(), others.end(), '\n')),
             dtype_name(main), others.empty() ? "" : "; in other types:" + others);
}

int run_info(const InfoArgs& a) {
  using namespace gemma3;
  if (a.model.empty() == a.size.empty()) fail("give a model (-m) or a published size (--size), not both");
  if (!a.size.empty()) {
    const Config config = parse_config_text(published_config_json(a.size), "gemma-3-" + a.size + " config");
    fmt::print("model:        published Gemma 3 {} shape (no weights)\n", a.size);
    fmt::print("architecture: {}\n", config.architecture);
    print_memory(config, a, nullptr);
    return 0;
  }
  const std::string& model_path = a.model;
  const std::string& mmproj = a.mmproj;
  std::optional<Config> config_holder;
  std::optional<Weights> weights_holder;
  std::string weights_line;
  if (is_gguf_path(model_path)) {
    GgufModel g = load_gguf_model(model_path, mmproj);
    weights_line = gguf_description(*g.text);
    if (g.mmproj) weights_line += "\n              " + gguf_description(*g.mmproj);
    config_holder = std::move(g.config);
    weights_holder = std::move(g.weights);
  } else {
    if (!mmproj.empty()) fail("--mmproj {}: an mmproj file goes with a GGUF model, but {} is not one", mmproj, model_path);
    config_holder = load_config(model_path);
    auto files = std::make_shared<const SafetensorsSet>(SafetensorsSet::open(model_path));
    weights_holder = Weights::from_safetensors(files, *config_holder);
    std::string prefixes;
    for (Component c : {Component::Text, Component::Vision, Component::Projector})
      if (!weights_holder->prefix(c).empty())
        prefixes += fmt::format("{}{} {}*", prefixes.empty() ? "" : ", ", component_name(c), weights_holder->prefix(c));
    weights_line = fmt::format("{} ({})", files->description(), prefixes);
  }
  const Config& config = *config_holder;
  const Weights& weights = *weights_holder;
  const TextConfig& t = config.text;

  int64_t sliding = 0;
  for (auto lt : t.layer_types) sliding += lt == LayerType::Sliding;
  fmt::print("model:        {}\n", model_path);
  fmt::print("architecture: {} (model_type {})\n", config.architecture, config.model_type);
  fmt::print("weights:      {}\n", weights_line);
  fmt::print("text:         {} layers ({} sliding, {} full), hidden {}, ffn {}, heads {} / kv {} x {}, vocab {}\n",
             t.num_hidden_layers, sliding, t.num_hidden_layers - sliding, t.hidden_size, t.intermediate_size,
             t.num_attention_heads, t.num_key_value_heads, t.head_dim, t.vocab_size);
  fmt::print("attention:    window {}, query_pre_attn_scalar {}, rope full theta {} ({}{}), sliding theta {}\n",
             t.sliding_window, t.query_pre_attn_scalar, t.rope_full.theta, t.rope_full.type,
             t.rope_full.type == "linear" ? fmt::format(" x{}", t.rope_full.factor) : "", t.rope_sliding.theta);
  if (config.vision) {
    const VisionConfig& v = *config.vision;
    fmt::print("vision:       SigLIP {} layers, hidden {}, mlp {}, heads {}, {}px / patch {} = {} patches\n",
               v.num_hidden_layers, v.hidden_size, v.intermediate_size, v.num_attention_heads, v.image_size,
               v.patch_size, v.num_patches());
    fmt::print("image:        {} tokens per image (pool {}x{}), boi {}, eoi {}, image token {}\n",
               config.mm_tokens_per_image, config.pool_kernel(), config.pool_kernel(), config.boi_token_index,
               config.eoi_token_index, config.image_token_index);
  }
  std::string eos;
  for (int64_t id : config.stop_token_ids()) eos += (eos.empty() ? "" : ", ") + std::to_string(id);
  fmt::print("tokens:       bos {}, end of sequence {}\n", config.bos_token_id, eos);

  fmt::print("\n{:<10} {:>22} {:>12}  {}\n", "component", "parameters", "bytes", "dtypes");
  int64_t total_params = 0, total_bytes = 0;
  for (Component c : {Component::Text, Component::Vision, Component::Projector}) {
    if (c != Component::Text && !config.vision) continue;
    const ComponentStats s = weights.stats(c);
    std::string dtypes;
    for (const auto& [name, bytes] : s.bytes_by_dtype) dtypes += (dtypes.empty() ? "" : ", ") + name + " " + human_bytes(bytes);
    fmt::print("{:<10} {:>22} {:>12}  {}\n", component_name(c), fmt::format("{} ({})", human_count(s.parameters), s.parameters),
               human_bytes(s.bytes), dtypes);
    total_params += s.parameters;
    total_bytes += s.bytes;
  }
  fmt::print("{:<10} {:>22} {:>12}\n", "total", fmt::format("{} ({})", human_count(total_params), total_params),
             human_bytes(total_bytes));
  if (is_gguf_path(model_path)) print_mixed_types(weights);
  if (a.ctx > 0) print_memory(config, a, &weights);
  return 0;
}

const CommandRegistration reg(60, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("info", "Show a model's architecture, parameter counts, dtypes and sizes");
  auto a = std::make_shared<InfoArgs>();
  cmd->add_option("-m,--model", a->model, "Model folder (Hugging Face layout) or GGUF file");
  cmd->add_option("--mmproj", a->mmproj, "A GGUF model's vision projector (llama.cpp mmproj file)");
  cmd->add_option("--size", a->size, "Instead of a model: a published Gemma 3 shape (1b, 4b, 12b, 27b)");
  cmd->add_option("--ctx", a->ctx, "Also print the memory needed at this context size")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  cmd->add_option("--quant", a->quant, "Memory as if loaded in this format (nf4, q4_0, q8_0, q4_k, bf16)");
  cmd->add_option("--kv-type", a->kv_type, "KV cache element type for the estimate (f32, f16, bf16)");
  cmd->callback([a, &exit_code] {
    if ((!a->quant.empty() || !a->size.empty()) && a->ctx == 0) a->ctx = 4096;
    exit_code = run_info(*a);
  });
});

}  // namespace

}  // namespace unicorn::cli
