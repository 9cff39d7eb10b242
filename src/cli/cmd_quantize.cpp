// unicorn quantize: writes a quantized copy of a Hugging Face Gemma 3 folder in a format
// other tools load, with a progress bar.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "models/gemma3/export.h"

namespace unicorn::cli {

namespace {

struct QuantizeArgs {
  std::string model, type, out, mmproj_out;
  bool quantize_embedding = false;
};

// A one-line progress bar on stderr.
class ProgressBar {
 public:
  void update(int64_t done, int64_t total, const std::string& what) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const int width = 30;
    const int filled = total > 0 ? int(width * done / total) : width;
    fmt::print(stderr, "\r[{}{}] {:3}% {}/{} {:<40.40}", std::string(size_t(filled), '#'),
               std::string(size_t(width - filled), ' '), total > 0 ? 100 * done / total : 100, done, total, what);
    if (done == total) fmt::print(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::chrono::steady_clock::time_point last_{};
};

int run_quantize(const QuantizeArgs& a) {
  if (!std::filesystem::is_directory(a.model))
    fail("{}: not a Hugging Face model folder (quantize reads a bf16 checkpoint folder)", a.model);
  ProgressBar bar;
  const auto t0 = std::chrono::steady_clock::now();
  const auto progress = [&](int64_t d, int64_t t, const std::string& n) { bar.update(d, t, n); };
  std::string wrote = a.out;
  if (a.type == "nf4") {
    if (!a.mmproj_out.empty()) fail("--mmproj-out is for the GGUF types; nf4 writes one folder");
    gemma3::export_bnb_nf4(a.model, a.out, progress, a.quantize_embedding);
  } else if (const auto gguf = gemma3::parse_gguf_export_type(a.type)) {
    if (a.quantize_embedding)
      fail("--quantize-embedding is for nf4; the GGUF types store the token embedding as llama-quantize does");
    const gemma3::GgufExportResult r = gemma3::export_gguf(a.model, a.out, *gguf, a.mmproj_out, progress);
    for (const gemma3::GgufTypeNote& n : r.notes)
      fmt::print(stderr, "  {} -> {}: {}\n", n.tensor, dtype_name(n.dtype), n.reason);
    for (const std::string& w : r.warnings) fmt::print(stderr, "warning: {}\n", w);
    if (!r.mmproj_path.empty()) wrote += " and " + r.mmproj_path;
  } else {
    fail("unknown --type '{}' (expected nf4, f16, bf16, q8_0, q4_0, q4_k_m or q6_k)", a.type);
  }
  fmt::print(stderr, "wrote {} ({}) in {:.1f} s\n", wrote, a.type,
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

const CommandRegistration reg(65, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("quantize", "Write a quantized copy of a model that other tools load");
  auto a = std::make_shared<QuantizeArgs>();
  cmd->add_option("-m,--model", a->model, "Hugging Face model folder (bf16)")->required();
  cmd->add_option("--type", a->type,
                  "nf4: a Hugging Face folder in bitsandbytes 4-bit serialization (transformers loads it); "
                  "f16, bf16, q8_0, q4_0, q4_k_m, q6_k: a GGUF file as llama.cpp's convert_hf_to_gguf.py "
                  "(+ llama-quantize) writes it, and for a multimodal model its mmproj file")
      ->required();
  cmd->add_option("--out", a->out, "Output folder (nf4) or .gguf file (GGUF types)")->required();
  cmd->add_option("--mmproj-out", a->mmproj_out,
                  "GGUF types, multimodal models: the mmproj file (default: mmproj-<name>-f16.gguf next to --out)");
  cmd->add_flag("--quantize-embedding", a->quantize_embedding,
                "nf4: also store the token embedding (the tied LM head) as NF4; smaller, but transformers' "
                "bitsandbytes loader expects it unquantized");
  cmd->callback([a, &exit_code] { exit_code = run_quantize(*a); });
});

}  // namespace

}  // namespace unicorn::cli
