#include "support/gemma_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "support/test_paths.h"

namespace unicorn::test {

namespace fs = std::filesystem;

std::string gemma_model_dir() {
  static const std::string dir = [] {
    const std::string d = scratch_dir("gemma-tokenizer-model");
    fs::create_symlink(real_tokenizer_json(), fs::path(d) / "tokenizer.json");
    fs::copy_file(data_path("tokenizer/tokenizer_config.json"), fs::path(d) / "tokenizer_config.json");
    fs::copy_file(data_path("models/tiny-realvocab/config.json"), fs::path(d) / "config.json");
    return d;
  }();
  return dir;
}

const Tokenizer& gemma_tokenizer() {
  static const Tokenizer tok = Tokenizer::load(gemma_model_dir());
  return tok;
}

std::vector<nlohmann::json> read_jsonl(const std::string& rel) {
  std::ifstream in(data_path(rel));
  if (!in) throw std::runtime_error("cannot open " + data_path(rel));
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace unicorn::test
