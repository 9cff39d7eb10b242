// `unicorn run` end to end through the binary with the bundled demo model (no -m): the
// answer on stdout, llama.cpp-style timings on stderr, and bad input turned into one clear
// message and a non-zero exit, never a crash.
#include <gtest/gtest.h>

#include <regex>

#include "support/gemma_tokenizer.h"
#include "support/test_paths.h"

namespace unicorn {
namespace {

using test::shell_quote;

test::CommandResult unicorn_run(const std::string& args) {
  return test::run_command(test::unicorn_binary() + " run -t 2 " + args);
}

std::string example(const std::string& name) { return shell_quote(test::repo_path("examples/" + name)); }

// A failure: non-zero exit (not a signal), nothing on stdout, one "error: ..." on stderr.
void expect_clean_error(const test::CommandResult& r, const std::string& needle) {
  EXPECT_NE(r.status, 0);
  EXPECT_LT(r.status, 128) << "killed by a signal: " << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << r.err;
}

TEST(RunCli, DescribesThePngExample) {
  const auto r = unicorn_run("--image " + example("blue_triangle.png") + " -p 'What do you see?'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "A blue triangle in the top right.\n");
  // Timings, as llama.cpp prints them: counts, milliseconds and rates.
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(prompt: +\d+ tokens in [0-9.]+ ms \([0-9.]+ tok/s\))"))) << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(images: +1 encoded in [0-9.]+ ms)"))) << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(generated: +\d+ tokens in [0-9.]+ ms \([0-9.]+ tok/s\), finish: stop)")))
      << r.err;
}

TEST(RunCli, JpegExample) {
  const auto r = unicorn_run("--image " + example("red_circle.jpg") + " -p 'What do you see?'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "A red circle in the bottom left.\n");
}

TEST(RunCli, TextOnly) {
  const auto r = unicorn_run("-p 'Hello!'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "Hello! Show me a picture of a shape and ask me about it.\n");
  EXPECT_EQ(r.err.find("images:"), std::string::npos) << r.err;  // no image, no image timing
}

TEST(RunCli, TokenLimit) {
  const auto r = unicorn_run("-p 'Hello!' -n 2");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "Hello!\n");
  EXPECT_NE(r.err.find("generated: 2 tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("finish: length"), std::string::npos) << r.err;
}

TEST(RunCli, MissingImage) {
  const std::string path = test::scratch_dir("run-missing") + "/no_such_image.png";
  expect_clean_error(unicorn_run("--image " + shell_quote(path) + " -p 'What do you see?'"), "no_such_image.png");
}

TEST(RunCli, CorruptImage) {
  const std::string path = test::scratch_dir("run-corrupt") + "/garbage.png";
  test::write_bytes(path, "this is not a picture at all, only some text in a file named .png\n");
  expect_clean_error(unicorn_run("--image " + shell_quote(path) + " -p 'What do you see?'"), "garbage.png");
  // A real PNG signature followed by garbage: the decoder itself must fail cleanly.
  const std::string truncated = test::scratch_dir("run-truncated") + "/truncated.png";
  static const char kTruncated[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x02\0\0\0garbage";
  test::write_bytes(truncated, std::string_view(kTruncated, sizeof kTruncated - 1));
  expect_clean_error(unicorn_run("--image " + shell_quote(truncated) + " -p 'What do you see?'"), "truncated.png");
}

TEST(RunCli, EmptyPrompt) {
  expect_clean_error(unicorn_run("-p ''"), "prompt is empty");
  expect_clean_error(unicorn_run("-p '   '"), "prompt is empty");
}

TEST(RunCli, PromptLongerThanTheContext) {
  std::string prompt;
  for (int i = 0; i < 20; ++i) prompt += "Tell me about the shape. ";
  const auto r = unicorn_run("--ctx 32 -p " + shell_quote(prompt));
  expect_clean_error(r, "context holds 32");
  // The message gives the number of tokens the prompt needs.
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(needs \d+ tokens)"))) << r.err;
}

TEST(RunCli, InvalidSamplingValues) {
  expect_clean_error(unicorn_run("-p 'Hello!' --top-p 0"), "top_p");
  expect_clean_error(unicorn_run("-p 'Hello!' --temp -1"), "temperature");
}

}  // namespace
}  // namespace unicorn
