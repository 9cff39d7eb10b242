#include "cli/model_options.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/error.h"

namespace unicorn::cli {

namespace fs = std::filesystem;

std::string default_model_dir() {
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / ".." / "models" / "demo");
    candidates.push_back(exe.parent_path() / "models" / "demo");
  }
#ifdef UNICORN_SOURCE_DIR
  candidates.push_back(fs::path(UNICORN_SOURCE_DIR) / "models" / "demo");
#endif
  for (const auto& c : candidates) {
    if (fs::exists(c / "config.json", ec)) return fs::weakly_canonical(c, ec).string();
  }
  fail("no model given (-m) and the bundled demo model was not found (looked in {})",
       candidates.empty() ? std::string("nothing") : candidates.front().string());
}

std::optional<DType> parse_quant_type(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (n.empty() || n == "none") return std::nullopt;
  if (n == "q4_0") return DType::Q4_0;
  if (n == "q8_0") return DType::Q8_0;
  if (n == "q4_k") return DType::Q4_K;
  if (n == "q6_k") return DType::Q6_K;
  if (n == "nf4") return DType::NF4;
  fail("unknown quantization '{}' (expected q4_0, q8_0, q4_k, q6_k or nf4)", name);
}

void add_quant_option(CLI::App& cmd, std::string& quant) {
  cmd.add_option("--quant", quant,
                 "Quantize the text decoder's matrices while loading: q4_0, q8_0, q4_k, q6_k or nf4 (K formats use "
                 "q8_0 for rows that are not multiples of 256; nf4 is bitsandbytes' NormalFloat with double "
                 "quantization)")
      ->check([](const std::string& v) {
        try {
          parse_quant_type(v);
          return std::string();
        } catch (const Error& e) {
          return std::string(e.what());
        }
      });
}

void ModelOptions::add_to(CLI::App& cmd) {
  cmd.add_option("-m,--model", model,
                 "Model folder (Hugging Face layout) or GGUF file; default: the bundled demo model");
  cmd.add_option("--mmproj", mmproj, "A GGUF model's vision projector (llama.cpp mmproj file), for images");
  cmd.add_option("--device", device, kDeviceHelp);
  cmd.add_option("-t,--threads", threads, "CPU threads (0: one per core)")->check(CLI::Range(0, 1024));
  cmd.add_option("-c,--ctx", context, "Context size in tokens")->check(CLI::Range(16, 1 << 22));
  cmd.add_option("--max-image-pixels", max_image_pixels, "Refuse images with more pixels than this")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd.add_flag("--pan-and-scan", pan_and_scan, "Split wide or tall images into crops (Gemma 3 pan-and-scan)");
  add_quant_option(cmd, quant);
}

std::string ModelOptions::resolved_model() const { return model.empty() ? default_model_dir() : model; }

std::unique_ptr<Engine> ModelOptions::load() const {
  EngineOptions o;
  o.device = device;
  o.threads = threads;
  o.context = context;
  o.mmproj = mmproj;
  o.quantize = parse_quant_type(quant);
  return Engine::load(resolved_model(), o);
}

void SamplingOptions::add_to(CLI::App& cmd) {
  cmd.add_option("-n,--max-tokens", max_tokens, "Most tokens to generate")->check(CLI::Range(int64_t(0), int64_t(1) << 24));
  cmd.add_option("--temp,--temperature", temperature, "Sampling temperature (0: greedy)");
  cmd.add_option("--top-k", top_k, "Keep the k most likely tokens (0: off)");
  cmd.add_option("--top-p", top_p, "Nucleus sampling: keep the most likely tokens up to this probability");
  cmd.add_option("--min-p", min_p, "Drop tokens less likely than min-p times the most likely one");
  cmd.add_option("--repeat-penalty", repeat_penalty, "Repetition penalty over the last 64 tokens (1: off)");
  cmd.add_option("--presence-penalty", presence_penalty, "OpenAI presence penalty (-2..2)");
  cmd.add_option("--frequency-penalty", frequency_penalty, "OpenAI frequency penalty (-2..2)");
  cmd.add_option("-s,--seed", seed, "Random seed (same seed, same output)");
  cmd.add_option("--stop", stop, "Stop when the output contains this text (repeatable)");
}

void SamplingOptions::apply(SamplingParams& p) const {
  if (temperature) p.temperature = *temperature;
  if (top_k) p.top_k = *top_k;
  if (top_p) p.top_p = *top_p;
  if (min_p) p.min_p = *min_p;
  if (repeat_penalty) p.repetition_penalty = *repeat_penalty;
  if (presence_penalty) p.presence_penalty = *presence_penalty;
  if (frequency_penalty) p.frequency_penalty = *frequency_penalty;
}

void SamplingOptions::validate() const {
  SamplingParams p;
  apply(p);
  p.validate();
}

GenerateOptions SamplingOptions::resolve(const Engine& engine) const {
  GenerateOptions o;
  SamplingParams& p = o.sampling;
  p = sampling_defaults(engine.config().generation);
  apply(p);
  p.seed = seed;
  p.validate();
  o.max_tokens = max_tokens;
  o.stop = stop;
  return o;
}

}  // namespace unicorn::cli
