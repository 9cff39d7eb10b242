#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/quant/nf4.h"
#include "formats/bnb.h"
#include "formats/mapped_file.h"
#include "formats/safetensors.h"
#include "models/gemma3/config.h"
#include "models/gemma3/export.h"
#include "models/gemma3/weights.h"

namespace unicorn::gemma3 {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Everything in the folder but the weights (config, tokenizer, processor files).
void copy_side_files(const std::string& src, const std::string& out) {
  for (const auto& e : fs::directory_iterator(src)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    if (name.ends_with(".safetensors") || name == "model.safetensors.index.json" || name == "config.json" ||
        name.ends_with(".bin") || name.ends_with(".pt") || name.ends_with(".gguf"))
      continue;
    fs::copy_file(e.path(), fs::path(out) / name, fs::copy_options::overwrite_existing);
  }
}

}  // namespace

json bnb_nf4_quantization_config(bool quantize_embedding) {
  return {
      {"_load_in_4bit", true},
      {"_load_in_8bit", false},
      {"bnb_4bit_compute_dtype", "bfloat16"},
      {"bnb_4bit_quant_storage", "uint8"},
      {"bnb_4bit_quant_type", "nf4"},
      {"bnb_4bit_use_double_quant", true},
      {"llm_int8_enable_fp32_cpu_offload", false},
      {"llm_int8_has_fp16_weight", false},
      {"llm_int8_skip_modules", {"lm_head", "multi_modal_projector"}},
      {"unicorn_quantized_embedding", quantize_embedding},
      {"llm_int8_threshold", 6.0},
      {"load_in_4bit", true},
      {"load_in_8bit", false},
      {"quant_method", "bitsandbytes"},
  };
}

void export_bnb_nf4(const std::string& src_dir, const std::string& out_dir, const ExportProgress& progress,
                    bool quantize_embedding) {
  const Config config = load_config(src_dir);
  auto files = std::make_shared<const SafetensorsSet>(SafetensorsSet::open(src_dir));
  const Weights weights = Weights::from_safetensors(files, config);
  for (const TensorSpec& spec : weights.specs())
    if (weights.get(spec.canonical).dtype() == DType::NF4)
      fail("{}: already holds 4-bit weights ('{}'): quantize from the bf16 checkpoint", src_dir, spec.canonical);
  std::error_code ec;
  if (fs::equivalent(src_dir, out_dir, ec)) fail("the output folder must differ from the model folder");
  fs::create_directories(out_dir);

  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  const auto& specs = weights.specs();
  int64_t done = 0;
  for (const TensorSpec& spec : specs) {
    const std::string name = weights.prefix(spec.component) + spec.inner;
    const Tensor& t = weights.get(spec.canonical);
    // bitsandbytes replaces nn.Linear layers: the text and vision projections and MLPs.
    const bool linear = spec.matrix && (spec.canonical != "text.embed" || quantize_embedding);
    if (linear) {
      bnb::add_4bit(writer, name, nf4::quantize_tensor(t, true));
    } else {
      writer.add(name, t);
    }
    if (progress) progress(++done, int64_t(specs.size()), spec.canonical);
  }
  writer.write((fs::path(out_dir) / "model.safetensors").string());

  json cfg = json::parse(read_file((fs::path(src_dir) / "config.json").string()));
  cfg["quantization_config"] = bnb_nf4_quantization_config(quantize_embedding);
  write_file((fs::path(out_dir) / "config.json").string(), cfg.dump(2) + "\n");
  copy_side_files(src_dir, out_dir);
}

}  // namespace unicorn::gemma3
