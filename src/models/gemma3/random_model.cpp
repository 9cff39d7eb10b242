#include "models/gemma3/random_model.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant/nf4.h"
#include "core/thread_pool.h"
#include "formats/bnb.h"
#include "formats/mapped_file.h"
#include "formats/safetensors.h"
#include "models/gemma3/config.h"
#include "models/gemma3/export.h"
#include "models/gemma3/presets.h"
#include "models/gemma3/tensor_table.h"

namespace unicorn::gemma3 {

namespace {

nlohmann::json random_config(const RandomModelOptions& o) {
  using json = nlohmann::json;
  json cfg = json::parse(published_config_json(o.size));
  if (o.text_only && cfg["model_type"] == "gemma3") {
    json text = cfg["text_config"];
    text["architectures"] = {"Gemma3ForCausalLM"};
    text["eos_token_id"] = cfg["eos_token_id"];
    text["vocab_size"] = 262208;
    cfg = text;
  }
  if (o.layers > 0) {
    json& t = cfg["model_type"] == "gemma3" ? cfg["text_config"] : cfg;
    t["num_hidden_layers"] = o.layers;
  }
  return cfg;
}

}  // namespace

void write_random_gguf(const std::string& path, const RandomModelOptions& o, GgufExportType type) {
  RandomModelOptions text = o;
  text.text_only = true;
  const Config config = parse_config(random_config(text), "random model config");
  write_random_text_gguf(config, path, type, o.seed, nullptr);
}

void write_random_model(const std::string& dir, const RandomModelOptions& o) {
  nlohmann::json cfg = random_config(o);
  const Config config = parse_config(cfg, "random model config");
  if (o.nf4) cfg["quantization_config"] = bnb_nf4_quantization_config(true);
  std::filesystem::create_directories(dir);
  write_file((std::filesystem::path(dir) / "config.json").string(), cfg.dump(2) + "\n");

  // Values uniform in [-0.02, 0.02) from a fast xorshift generator: the numbers do not
  // matter for speed, only that they are finite and not all equal.
  auto fill = [](uint64_t seed, int64_t n, void* bytes) {
    uint64_t s = seed | 1;
    auto* out = static_cast<uint16_t*>(bytes);
    for (int64_t i = 0; i < n; ++i) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      const float u = float(s >> 40) * (1.0f / 16777216.0f);  // [0, 1)
      out[i] = f32_to_bf16((u - 0.5f) * 0.04f);
    }
  };
  SafetensorsWriter w;
  const std::vector<TensorSpec> specs = tensor_table(config);
  auto seed_of = [&](size_t i) { return o.seed * 0x9E3779B97F4A7C15ull + uint64_t(i) + 1; };
  auto name_of = [&](const TensorSpec& spec) {
    return hf_prefixes(spec.component, config.multimodal()).front() + spec.inner;
  };
  if (o.nf4) {
    // Every matrix as NF4 with double quantization (what `unicorn quantize --type nf4
    // --quantize-embedding` writes), quantized on all cores: at 27B that is most of the work.
    std::vector<Tensor> made(specs.size());
    ThreadPool pool;
    pool.parallel_tasks(int64_t(specs.size()), [&](int64_t i) {
      const TensorSpec& spec = specs[size_t(i)];
      Tensor t = Tensor::zeros(DType::BF16, spec.shape);
      fill(seed_of(size_t(i)), shape_numel(spec.shape), t.raw());
      made[size_t(i)] = spec.matrix ? nf4::quantize_tensor(t, true) : t;
    });
    for (size_t i = 0; i < specs.size(); ++i) {
      if (specs[i].matrix)
        bnb::add_4bit(w, name_of(specs[i]), made[i]);
      else
        w.add(name_of(specs[i]), made[i]);
    }
  } else {
    for (size_t i = 0; i < specs.size(); ++i)
      w.add_generated(name_of(specs[i]), DType::BF16, specs[i].shape,
                      [&fill, seed = seed_of(i), n = shape_numel(specs[i].shape)](void* bytes) { fill(seed, n, bytes); });
  }
  w.set_metadata("format", "pt");
  w.write((std::filesystem::path(dir) / "model.safetensors").string());
}

}  // namespace unicorn::gemma3
