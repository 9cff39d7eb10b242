// unicorn perplexity end to end: the figure is finite and reproducible, a model compared
// with itself has zero KL divergence and full top-token agreement, and bad input is refused.
#include <gtest/gtest.h>

#include <regex>

#include "support/test_paths.h"

namespace unicorn {
namespace {

double number_after(const std::string& text, const std::string& label) {
  const std::regex re(label + R"(\s*([0-9.eE+-]+))");
  std::smatch m;
  if (!std::regex_search(text, m, re)) return -1;
  return std::stod(m[1]);
}

TEST(PerplexityCli, SelfComparison) {
  const std::string cmd = test::unicorn_binary() + " perplexity -m " + test::repo_path("models/demo") + " -f " +
                          test::repo_path("bench/data/prose.txt") + " --chunk 64 --chunks 2";
  const auto plain = test::run_command(cmd);
  ASSERT_EQ(plain.status, 0) << plain.err;
  const double ppl = number_after(plain.out, "perplexity:");
  EXPECT_GT(ppl, 1.0);
  const auto again = test::run_command(cmd);
  EXPECT_EQ(number_after(again.out, "perplexity:"), ppl);  // deterministic
  const auto kl = test::run_command(cmd + " --kl-divergence " + test::repo_path("models/demo"));
  ASSERT_EQ(kl.status, 0) << kl.err;
  EXPECT_LT(number_after(kl.out, R"(mean KL divergence \(base \|\| model\):)"), 1e-9) << kl.out;
  EXPECT_EQ(number_after(kl.out, "same top token:"), 100.0) << kl.out;
  // --quant applies to the model under test only: the base stays as stored, so the
  // quantization error shows (a base quantized the same way would give 0).
  const auto q = test::run_command(cmd + " --quant q4_0 --kl-divergence " + test::repo_path("models/demo"));
  ASSERT_EQ(q.status, 0) << q.err;
  EXPECT_GT(number_after(q.out, R"(mean KL divergence \(base \|\| model\):)"), 1e-4) << q.out;
  EXPECT_LT(number_after(q.out, "same top token:"), 100.0) << q.out;
}

TEST(PerplexityCli, BadInput) {
  const std::string base = test::unicorn_binary() + " perplexity -m " + test::repo_path("models/demo");
  const auto missing = test::run_command(base + " -f /nonexistent.txt");
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("/nonexistent.txt"), std::string::npos) << missing.err;
  const std::string dir = test::scratch_dir("ppl-short");
  test::write_bytes(dir + "/short.txt", "Too short.");
  const auto short_text = test::run_command(base + " -f " + dir + "/short.txt");
  EXPECT_NE(short_text.status, 0);
  EXPECT_NE(short_text.err.find("fewer than one chunk"), std::string::npos) << short_text.err;
  const auto no_tok = test::run_command(test::unicorn_binary() + " perplexity -m " + test::data_path("models/tiny-mm") +
                                        " -f " + test::repo_path("bench/data/prose.txt"));
  EXPECT_NE(no_tok.status, 0);
  EXPECT_NE(no_tok.err.find("no tokenizer"), std::string::npos) << no_tok.err;
}

}  // namespace
}  // namespace unicorn
