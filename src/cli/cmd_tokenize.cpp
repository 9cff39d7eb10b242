// unicorn tokenize: the token ids of a text under a model's tokenizer, as one JSON array.
#include <fmt/format.h>

#include <iostream>
#include <iterator>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "formats/mapped_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace unicorn::cli {

namespace {

struct TokenizeArgs {
  std::string model;
  std::string file;
  std::string text;
  bool no_bos = false;
};

int run_tokenize(const TokenizeArgs& a, bool has_file, bool has_text) {
  if (has_file == has_text) fail("tokenize: give either TEXT or --file FILE (one of them)");
  std::string text;
  if (has_file) {
    text = a.file == "-" ? std::string(std::istreambuf_iterator<char>(std::cin), {}) : read_file(a.file);
  } else {
    text = a.text;
  }
  // Checked here too so that the error names the file the bad bytes came from.
  utf8::require_valid(text, has_file ? (a.file == "-" ? std::string("standard input") : a.file) : std::string("TEXT"));
  const Tokenizer tok = Tokenizer::load(a.model);
  const std::vector<int32_t> ids = tok.encode(text, !a.no_bos);
  fmt::print("[{}]\n", fmt::join(ids, ","));
  return 0;
}

const CommandRegistration reg(20, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text as a JSON array");
  auto args = std::make_shared<TokenizeArgs>();
  cmd->add_option("-m,--model", args->model, "Model folder with tokenizer.json (or tokenizer.json.gz)")->required();
  cmd->add_flag("--no-bos", args->no_bos, "Do not add the beginning-of-sequence token");
  auto* file = cmd->add_option("-f,--file", args->file, "Read the text from this file ('-' for standard input)");
  auto* text = cmd->add_option("text", args->text, "The text (special tokens such as <start_of_turn> are recognized)");
  file->excludes(text);
  cmd->callback([args, file, text, &exit_code] { exit_code = run_tokenize(*args, file->count() > 0, text->count() > 0); });
});

}  // namespace

}  // namespace unicorn::cli
