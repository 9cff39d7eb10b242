// `unicorn random-model` and `unicorn bench` end to end through the binary: a random model in
// bitsandbytes NF4 that loads and runs, bench's context / chunk options, and their errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "formats/mapped_file.h"
#include "support/test_paths.h"

namespace unicorn {
namespace {

// One layer of the 1B shape (the 262144 x 1152 embedding makes it ~10 s to quantize).
TEST(RandomModelCliSlow, Nf4FolderLoadsAndRuns) {
  const std::string dir = test::scratch_dir("random_nf4") + "/model";
  const auto made = test::run_command(test::unicorn_binary() + " random-model --size 1b --layers 1 --text-only --nf4 --out " + dir);
  ASSERT_EQ(made.status, 0) << made.err;
  const auto cfg = nlohmann::json::parse(read_file(dir + "/config.json"));
  ASSERT_TRUE(cfg.contains("quantization_config")) << cfg.dump();
  EXPECT_EQ(cfg["quantization_config"]["bnb_4bit_quant_type"], "nf4");
  EXPECT_EQ(cfg["quantization_config"]["bnb_4bit_use_double_quant"], true);

  const auto info = test::run_command(test::unicorn_binary() + " info -m " + dir);
  ASSERT_EQ(info.status, 0) << info.err;
  EXPECT_NE(info.out.find("NF4"), std::string::npos) << info.out;

  // A prompt of 12 in chunks of 4 into a 64-token context, then 2 decode steps.
  const auto bench =
      test::run_command(test::unicorn_binary() + " bench -m " + dir + " -p 12 -n 2 -r 1 -t 2 --ctx 64 --chunk 4");
  ASSERT_EQ(bench.status, 0) << bench.err;
  EXPECT_NE(bench.out.find("| pp12 |"), std::string::npos) << bench.out;
  EXPECT_NE(bench.out.find("| tg2 |"), std::string::npos) << bench.out;
  EXPECT_NE(bench.out.find("NF4"), std::string::npos) << bench.out;
  // The same after 20 tokens already in the sequence (llama-bench's -d): the context grows to hold them.
  const auto deep = test::run_command(test::unicorn_binary() + " bench -m " + dir + " -p 4 -n 2 -r 1 -t 2 -d 20 --ctx 8");
  ASSERT_EQ(deep.status, 0) << deep.err;
  EXPECT_NE(deep.out.find("| pp4 @ d20 |"), std::string::npos) << deep.out;
  EXPECT_NE(deep.out.find("| tg2 @ d20 |"), std::string::npos) << deep.out;
}

TEST(BenchCli, Errors) {
  const std::string demo = test::repo_path("models/demo");
  const auto both = test::run_command(test::unicorn_binary() + " random-model --size 1b --nf4 --gguf q4_0 --out " +
                                      test::scratch_dir("random_bad") + "/x.gguf");
  EXPECT_NE(both.status, 0);
  EXPECT_NE(both.err.find("--nf4"), std::string::npos) << both.err;
  const auto limit = test::run_command(test::unicorn_binary() + " bench -m " + demo + " --gpu-memory 4 -p 4 -n 1");
  EXPECT_NE(limit.status, 0);
  EXPECT_NE(limit.err.find("--gpu-memory applies to --device cuda"), std::string::npos) << limit.err;
  const auto chunk = test::run_command(test::unicorn_binary() + " bench -m " + demo + " --chunk -3");
  EXPECT_NE(chunk.status, 0);
  EXPECT_NE(chunk.err.find("--chunk"), std::string::npos) << chunk.err;
  const auto depth = test::run_command(test::unicorn_binary() + " bench -m " + demo + " -d -1");
  EXPECT_NE(depth.status, 0);
  EXPECT_NE(depth.err.find("--n-depth"), std::string::npos) << depth.err;
}

}  // namespace
}  // namespace unicorn
