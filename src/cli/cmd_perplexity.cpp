// unicorn perplexity: how well a model predicts a text (perplexity over chunks of the
// context size, scoring the second half of each chunk as llama.cpp's perplexity tool does),
// and with --kl-divergence BASE how far its next-token distributions are from a base
// model's: mean KL(base || model), and how often both pick the same top token.
#include <fmt/format.h>

#include <cmath>
#include <memory>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "formats/mapped_file.h"
#include "runtime/engine.h"

namespace unicorn::cli {

namespace {

struct PplArgs {
  ModelOptions model;
  std::string file, base;
  int64_t chunk = 512;
  int64_t max_chunks = 0;
};

// log-softmax of one row, in double.
std::vector<double> log_softmax(const float* row, int64_t n) {
  double mx = row[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, double(row[i]));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(row[i]) - mx);
  const double lse = mx + std::log(sum);
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = double(row[i]) - lse;
  return out;
}

struct MeanErr {
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  void add(double x) {
    sum += x;
    sum2 += x * x;
    ++n;
  }
  double mean() const { return n ? sum / double(n) : 0; }
  double stderr_() const {
    if (n < 2) return 0;
    const double m = mean();
    return std::sqrt(std::max(0.0, (sum2 / double(n) - m * m) / double(n - 1)));
  }
};

int run_perplexity(const PplArgs& a) {
  auto engine = a.model.load();
  const Tokenizer* tok = engine->tokenizer();
  if (!tok) fail("{}: the model has no tokenizer: cannot tokenize the text", a.model.resolved_model());
  std::unique_ptr<Engine> base;
  if (!a.base.empty()) {
    ModelOptions bo = a.model;
    bo.model = a.base;
    bo.quant.clear();  // the base as stored: --quant applies to the model under test
    base = bo.load();
    if (base->config().text.vocab_size != engine->config().text.vocab_size)
      fail("--kl-divergence: the base model's vocabulary ({}) differs from the model's ({})",
           base->config().text.vocab_size, engine->config().text.vocab_size);
  }
  const std::string text = read_file(a.file);
  const std::vector<int32_t> ids = tok->encode(text, false);
  const int64_t n_ctx = std::min(a.chunk, engine->options().context);
  if (n_ctx < 8) fail("--ctx must be at least 8 for perplexity, got {}", n_ctx);
  int64_t chunks = int64_t(ids.size()) / n_ctx;
  if (a.max_chunks > 0) chunks = std::min(chunks, a.max_chunks);
  if (chunks == 0)
    fail("{}: {} tokens are fewer than one chunk of {} (use a longer text or a smaller --chunk)", a.file, ids.size(),
         n_ctx);
  const int64_t vocab = engine->config().text.vocab_size;
  fmt::print(stderr, "perplexity: {} tokens, {} chunks of {}, scoring the second half of each\n", ids.size(), chunks,
             n_ctx);
  MeanErr nll, kl, same;
  for (int64_t c = 0; c < chunks; ++c) {
    // Each chunk starts with BOS in place of its first token, as llama.cpp does.
    std::vector<int32_t> chunk(ids.begin() + c * n_ctx, ids.begin() + (c + 1) * n_ctx);
    chunk[0] = tok->bos_id();
    auto seq = engine->new_sequence();
    const Tensor logits = engine->append(*seq, chunk, nullptr, true);
    Tensor base_logits;
    if (base) {
      auto bseq = base->new_sequence();
      base_logits = base->append(*bseq, chunk, nullptr, true);
    }
    for (int64_t i = n_ctx / 2; i + 1 < n_ctx; ++i) {
      const std::vector<double> lp = log_softmax(logits.data<const float>() + i * vocab, vocab);
      nll.add(-lp[size_t(chunk[size_t(i + 1)])]);
      if (base) {
        const std::vector<double> bp = log_softmax(base_logits.data<const float>() + i * vocab, vocab);
        double d = 0;
        int64_t top = 0, btop = 0;
        for (int64_t v = 0; v < vocab; ++v) {
          d += std::exp(bp[size_t(v)]) * (bp[size_t(v)] - lp[size_t(v)]);
          if (lp[size_t(v)] > lp[size_t(top)]) top = v;
          if (bp[size_t(v)] > bp[size_t(btop)]) btop = v;
        }
        kl.add(std::max(0.0, d));
        same.add(top == btop ? 1.0 : 0.0);
      }
    }
    fmt::print(stderr, "[{}] running perplexity {:.4f}\n", c + 1, std::exp(nll.mean()));
  }
  const double ppl = std::exp(nll.mean());
  fmt::print("perplexity: {:.4f} ± {:.4f} over {} tokens\n", ppl, ppl * nll.stderr_(), nll.n);
  if (base) {
    fmt::print("mean KL divergence (base || model): {:.6f} ± {:.6f}\n", kl.mean(), kl.stderr_());
    fmt::print("same top token: {:.2f} ± {:.2f} %\n", 100 * same.mean(), 100 * same.stderr_());
  }
  return 0;
}

const CommandRegistration reg(70, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "perplexity", "Perplexity of a text, and with --kl-divergence the divergence from a base model (llama.cpp style)");
  auto a = std::make_shared<PplArgs>();
  a->model.add_to(*cmd);
  cmd->add_option("-f,--file", a->file, "UTF-8 text to score")->required();
  cmd->add_option("--kl-divergence", a->base,
                  "Base model (folder or file) to compare against, loaded as stored (no --quant); reports mean "
                  "KL(base || model) and the share of positions where both pick the same top token");
  cmd->add_option("--chunk", a->chunk, "Tokens per chunk (the second half of each is scored)")
      ->check(CLI::Range(int64_t(8), int64_t(1) << 20));
  cmd->add_option("--chunks", a->max_chunks, "Score at most this many chunks (0: all)");
  cmd->callback([a, &exit_code] { exit_code = run_perplexity(*a); });
});

}  // namespace

}  // namespace unicorn::cli
