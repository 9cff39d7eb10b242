// The CLI on llama.cpp's GGUF files (text model + mmproj), end to end through the binary.
#include <gtest/gtest.h>

#include "support/gguf_reference.h"
#include "support/test_paths.h"

namespace unicorn {
namespace {

TEST(InfoGgufCli, TextModelWithMmproj) {
  const auto r = test::run_command(test::unicorn_binary() + " info -m " + test::reference_text_gguf_path() +
                                   " --mmproj " + test::reference_mmproj_path());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Gemma3ForConditionalGeneration"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("GGUF v3, gemma3, \"Tiny Mm Realvocab\", 80 tensors"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("GGUF v3, clip"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("6 layers (5 sliding, 1 full)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rope full theta 1000000 (linear x8)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("16 tokens per image"), std::string::npos) << r.out;
  // Block formats per component: Q4_0 matrices, Q8_0 token embeddings, F32 norms; F16 vision.
  EXPECT_NE(r.out.find("Q4_0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Q8_0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("F16"), std::string::npos) << r.out;
}

TEST(InfoGgufCli, TextOnlyAndErrors) {
  const auto r = test::run_command(test::unicorn_binary() + " info -m " + test::reference_text_gguf_path());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Gemma3ForCausalLM"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("vision:"), std::string::npos) << r.out;
  const auto swapped = test::run_command(test::unicorn_binary() + " info -m " + test::reference_mmproj_path());
  EXPECT_NE(swapped.status, 0);
  EXPECT_NE(swapped.err.find("this is an mmproj file"), std::string::npos) << swapped.err;
  const auto stray = test::run_command(test::unicorn_binary() + " info -m " + test::data_path("models/tiny-text") +
                                       " --mmproj " + test::reference_mmproj_path());
  EXPECT_NE(stray.status, 0);
  EXPECT_NE(stray.err.find("goes with a GGUF model"), std::string::npos) << stray.err;
}

TEST(GgufCli, ImagesNeedTheMmproj) {
  const auto r = test::run_command(test::unicorn_binary() + " run -m " + test::reference_text_gguf_path() +
                                   " -p hi --image " + test::data_path("images/astronaut.png"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("text-only: give its vision projector with --mmproj FILE"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace unicorn
