// unicorn info: what a model folder or GGUF file (+ mmproj) holds: architecture, shapes,
// parameter counts and bytes by component and dtype (block formats such as Q4_0 included).
#include <fmt/format.h>

#include <memory>
#include <optional>

#include "cli/commands.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "models/gemma3/gguf_loader.h"
#include "models/gemma3/config.h"
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

// The GGUF files' own description: format version, llama.cpp's name and file type.
std::string gguf_description(const GgufFile& f) {
  std::string s = fmt::format("{} (GGUF v{}, {}", f.path(), f.version(), f.get_string_or("general.architecture", "?"));
  if (f.has("general.name")) s += fmt::format(", \"{}\"", f.get_string("general.name"));
  return s + fmt::format(", {} tensors)", f.tensors().size());
}

int run_info(const std::string& model_path, const std::string& mmproj) {
  using namespace gemma3;
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
  return 0;
}

const CommandRegistration reg(60, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("info", "Show a model's architecture, parameter counts, dtypes and sizes");
  auto model = std::make_shared<std::string>();
  auto mmproj = std::make_shared<std::string>();
  cmd->add_option("-m,--model", *model, "Model folder (Hugging Face layout) or GGUF file")->required();
  cmd->add_option("--mmproj", *mmproj, "A GGUF model's vision projector (llama.cpp mmproj file)");
  cmd->callback([model, mmproj, &exit_code] { exit_code = run_info(*model, *mmproj); });
});

}  // namespace

}  // namespace unicorn::cli
