// Writes a Gemma 3 model folder with random weights at any shape (the published ones from
// presets.h, optionally with fewer layers), so speed can be measured without real weights.
#pragma once

#include <cstdint>
#include <string>

namespace unicorn::gemma3 {

struct RandomModelOptions {
  std::string size = "1b";   // a published size (presets.h)
  int64_t layers = 0;        // 0: as published
  bool text_only = false;    // drop the vision tower of a multimodal size
  bool nf4 = false;          // matrices (the embedding too) as bitsandbytes NF4, as `unicorn quantize --type nf4 --quantize-embedding`
  uint64_t seed = 1;
};

// Writes config.json and model.safetensors (bf16, HF hub names; or NF4 in bitsandbytes'
// serialization) into `dir` (created).
void write_random_model(const std::string& dir, const RandomModelOptions& options);
// Writes a text-only GGUF file of that shape in a llama.cpp export type (export.h).
enum class GgufExportType;
void write_random_gguf(const std::string& path, const RandomModelOptions& options, GgufExportType type);

}  // namespace unicorn::gemma3
