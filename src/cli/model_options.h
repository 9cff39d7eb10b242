// Options shared by the commands that load a model and generate (run, chat, serve): the
// model path (the bundled demo model when none is given), device, threads, context, and
// sampling; and turning them into an Engine and GenerateOptions.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/generation.h"

namespace unicorn::cli {

// --help text of every --device option.
inline constexpr const char* kDeviceHelp =
    "Backend: cpu, cuda or cuda:N (a CUDA GPU: see unicorn devices), or reference (the slow scalar definition)";

struct ModelOptions {
  std::string model;   // empty: the bundled demo model
  std::string mmproj;  // a GGUF model's vision projector (llama.cpp's mmproj file)
  std::string device = "cpu";
  int threads = 0;
  int64_t context = 4096;
  int64_t max_image_pixels = 100'000'000;
  bool pan_and_scan = false;
  std::string quant;  // empty: the checkpoint's dtypes; else q4_0, q8_0, q4_k or q6_k

  void add_to(CLI::App& cmd);
  std::string resolved_model() const;
  std::unique_ptr<Engine> load() const;
};

struct SamplingOptions {
  std::optional<float> temperature, top_p, min_p, repeat_penalty, presence_penalty, frequency_penalty;
  std::optional<int32_t> top_k;
  std::optional<uint64_t> seed;
  int64_t max_tokens = 256;
  std::vector<std::string> stop;

  void add_to(CLI::App& cmd);
  // Unset values come from the model's generation_config.json (do_sample, temperature, top_k,
  // top_p), else greedy decoding.
  GenerateOptions resolve(const Engine& engine) const;
  // Checks the values given on the command line (before a model is loaded).
  void validate() const;
  // Copies the values given on the command line over p's.
  void apply(SamplingParams& p) const;
};

// The --quant values: "q4_0", "q8_0", "q4_k", "q6_k" (any case); empty or "none": nullopt.
// Throws Error for anything else.
std::optional<DType> parse_quant_type(const std::string& name);
// Adds --quant to a command, validated by parse_quant_type.
void add_quant_option(CLI::App& cmd, std::string& quant);

// The bundled demo model's folder: next to the executable (../models/demo) or in the source tree.
std::string default_model_dir();

}  // namespace unicorn::cli
