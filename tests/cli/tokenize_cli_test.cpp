// `unicorn tokenize` end to end: the built binary on a model folder with the real tokenizer.
#include <gtest/gtest.h>

#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "formats/gzip.h"
#include "formats/mapped_file.h"
#include "support/gemma_tokenizer.h"
#include "support/test_paths.h"

namespace unicorn {
namespace {

namespace fs = std::filesystem;
using test::shell_quote;

test::CommandResult tokenize(const std::string& args, std::string_view stdin_text = {}) {
  return test::run_command(shell_quote(test::unicorn_binary()) + " tokenize " + args, stdin_text);
}

std::string json_ids(const nlohmann::json& ids) { return fmt::format("[{}]\n", fmt::join(ids.get<std::vector<int32_t>>(), ",")); }

TEST(TokenizeCli, PrintsIdsAsJson) {
  const std::string model = shell_quote(test::gemma_model_dir());
  const auto lines = test::read_jsonl("tokenizer/encode.jsonl");
  const auto& hello = lines.at(0);
  auto r = tokenize("-m " + model + " " + shell_quote(hello["text"]));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, json_ids(hello["ids_with_bos"]));

  // From a file: multi-line text with special tokens, byte for byte (no trailing newline).
  const auto& chat = lines.at(23);
  const std::string path = test::scratch_dir("tokenize-file") + "/in.txt";
  test::write_bytes(path, chat["text"].get<std::string>());
  r = tokenize("-m " + model + " --file " + shell_quote(path));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, json_ids(chat["ids_with_bos"]));
  // From standard input, without BOS.
  r = tokenize("-m " + model + " --no-bos --file -", lines.at(13)["text"].get<std::string>());
  EXPECT_EQ(r.out, json_ids(lines.at(13)["ids"]));
}

TEST(TokenizeCli, Help) {
  const auto r = tokenize("--help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--no-bos"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--file"), std::string::npos) << r.out;
}

TEST(TokenizeCli, Errors) {
  const std::string model = shell_quote(test::gemma_model_dir());
  const std::string missing = test::scratch_dir("tokenize-missing") + "/nope.txt";
  auto r = tokenize("-m " + model + " --file " + shell_quote(missing));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;

  r = tokenize("-m " + model + " " + shell_quote("caf\xC3 au lait"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("invalid UTF-8 at byte 3"), std::string::npos) << r.err;
  const std::string bad_file = test::scratch_dir("tokenize-bad-utf8") + "/latin1.txt";
  test::write_bytes(bad_file, "ok\nna\xEFve");
  r = tokenize("-m " + model + " --file " + shell_quote(bad_file));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(bad_file + ": invalid UTF-8 at byte 5"), std::string::npos) << r.err;

  const std::string no_tokenizer = test::scratch_dir("tokenize-no-tokenizer");
  fs::copy_file(test::data_path("models/tiny-realvocab/config.json"), no_tokenizer + "/config.json");
  r = tokenize("-m " + shell_quote(no_tokenizer) + " hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(no_tokenizer), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tokenizer.json"), std::string::npos) << r.err;

  r = tokenize("-m " + model);  // neither TEXT nor --file
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("TEXT or --file"), std::string::npos) << r.err;
  r = tokenize("hi");  // no model
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--model"), std::string::npos) << r.err;
}

TEST(TokenizeCli, LoadsGzippedTokenizer) {
  const std::string dir = test::scratch_dir("tokenize-gz");
  fs::copy_file(test::data_path("models/tiny-realvocab/config.json"), dir + "/config.json");
  fs::copy_file(test::data_path("tokenizer/tokenizer_config.json"), dir + "/tokenizer_config.json");
  write_gzip_file(dir + "/tokenizer.json.gz", read_file(test::real_tokenizer_json()), 1);
  ASSERT_FALSE(fs::exists(dir + "/tokenizer.json"));
  const auto line = test::read_jsonl("tokenizer/encode.jsonl").at(14);  // Japanese
  const auto r = tokenize("-m " + shell_quote(dir) + " " + shell_quote(line["text"]));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, json_ids(line["ids_with_bos"]));

  test::write_bytes(dir + "/tokenizer.json.gz", "{\"not\": \"gzip\"}");
  const auto bad = tokenize("-m " + shell_quote(dir) + " hi");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("tokenizer.json.gz"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("not a gzip file"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace unicorn
