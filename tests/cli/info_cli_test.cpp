// `unicorn info` and the CLI's help and error conventions, end to end through the binary.
#include <gtest/gtest.h>

#include "support/test_paths.h"

namespace unicorn {
namespace {

TEST(InfoCli, MultimodalModel) {
  const auto r = test::run_command(test::unicorn_binary() + " info -m " + test::data_path("models/tiny-mm"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Gemma3ForConditionalGeneration"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("6 layers (4 sliding, 2 full)"), std::string::npos) << r.out;
  // Parameter counts per component (from the tensor shapes of tiny-mm).
  EXPECT_NE(r.out.find("(362432)"), std::string::npos) << r.out;  // text
  EXPECT_NE(r.out.find("(97536)"), std::string::npos) << r.out;   // vision
  EXPECT_NE(r.out.find("(3120)"), std::string::npos) << r.out;    // projector
  EXPECT_NE(r.out.find("BF16"), std::string::npos) << r.out;
}

TEST(InfoCli, Errors) {
  const auto missing = test::run_command(test::unicorn_binary() + " info -m /nonexistent/model");
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("error:"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("/nonexistent/model"), std::string::npos) << missing.err;
  EXPECT_TRUE(missing.out.empty());
  const auto no_arg = test::run_command(test::unicorn_binary() + " info");
  EXPECT_NE(no_arg.status, 0);
  const auto unknown = test::run_command(test::unicorn_binary() + " frobnicate");
  EXPECT_NE(unknown.status, 0);
}

TEST(Cli, HelpOnEverySubcommand) {
  const auto top = test::run_command(test::unicorn_binary() + " --help");
  ASSERT_EQ(top.status, 0);
  // Every subcommand listed in the top-level help answers --help with its usage.
  const std::string marker = "Subcommands:";
  const size_t at = top.out.find(marker);
  ASSERT_NE(at, std::string::npos) << top.out;
  std::istringstream lines(top.out.substr(at + marker.size()));
  std::string line;
  int checked = 0;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string name;
    if (!(words >> name)) continue;
    const auto r = test::run_command(test::unicorn_binary() + " " + name + " --help");
    EXPECT_EQ(r.status, 0) << name;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << name << ": " << r.out;
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

}  // namespace
}  // namespace unicorn

namespace unicorn {
namespace {

TEST(InfoCli, MemoryEstimate) {
  // 27B multimodal at nf4 with 8192 context: the engine's 16 GB goal.
  const auto r = test::run_command(test::unicorn_binary() + " info --size 27b --quant nf4 --ctx 8192 --kv-type f16");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("10 full layers x 8192 positions, 52 sliding layers x 1536"), std::string::npos) << r.out;
  const auto at = r.out.find("(", r.out.find("total"));
  ASSERT_NE(at, std::string::npos) << r.out;
  const double gb = std::stod(r.out.substr(at + 1));
  EXPECT_GT(gb, 13.0);
  EXPECT_LT(gb, 16.0);
  // Q4_0 cannot hold SigLIP's 4304-wide rows: info says which matrices stay wide.
  const auto q = test::run_command(test::unicorn_binary() + " info --size 4b --quant q4_0 --ctx 1024");
  ASSERT_EQ(q.status, 0) << q.err;
  EXPECT_NE(q.out.find("vision.blk.*.fc2 (4304 columns) stays BF16"), std::string::npos) << q.out;
  // A model folder: the KV cache follows the window (demo: 128 + 512 slots on sliding layers).
  const auto d = test::run_command(test::unicorn_binary() + " info -m " + test::repo_path("models/demo") + " --ctx 2048");
  ASSERT_EQ(d.status, 0) << d.err;
  EXPECT_NE(d.out.find("3 full layers x 2048 positions, 3 sliding layers x 640"), std::string::npos) << d.out;
  const auto bad = test::run_command(test::unicorn_binary() + " info --size 27b --quant q3_x");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("unknown weight format 'q3_x'"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace unicorn
