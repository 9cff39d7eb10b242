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
  std::string model, type, out;
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
  if (a.type == "nf4") {
    gemma3::export_bnb_nf4(
        a.model, a.out, [&](int64_t d, int64_t t, const std::string& n) { bar.update(d, t, n); }, a.quantize_embedding);
  } else {
    fail("unknown --type '{}' (expected nf4)", a.type);
  }
  fmt::print(stderr, "wrote {} ({}) in {:.1f} s\n", a.out, a.type,
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

const CommandRegistration reg(65, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("quantize", "Write a quantized copy of a model that other tools load");
  auto a = std::make_shared<QuantizeArgs>();
  cmd->add_option("-m,--model", a->model, "Hugging Face model folder (bf16)")->required();
  cmd->add_option("--type", a->type,
                  "nf4: a Hugging Face folder in bitsandbytes 4-bit serialization (transformers loads it)")
      ->required();
  cmd->add_option("--out", a->out, "Output folder")->required();
  cmd->add_flag("--quantize-embedding", a->quantize_embedding,
                "nf4: also store the token embedding (the tied LM head) as NF4; smaller, but transformers' "
                "bitsandbytes loader expects it unquantized");
  cmd->callback([a, &exit_code] { exit_code = run_quantize(*a); });
});

}  // namespace

}  // namespace unicorn::cli
