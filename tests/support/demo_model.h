// The bundled demo model (models/demo) loaded once per test process: loading its 33 MB
// tokenizer is what makes the sanitizer build slow, so every test shares one Engine.
#pragma once

#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/generation.h"

namespace unicorn::test {

// The demo model on the CPU backend with a 512-token context.
Engine& demo_engine();

// Greedy decoding with a token limit well above the longest answer (15 tokens), so a
// runaway shows up as wrong text rather than a cut-off right one.
GenerateOptions demo_greedy();

// The prompt ids of one text-only user turn, as ChatSession renders it.
std::vector<int32_t> demo_prompt_ids(const std::string& user_text);

}  // namespace unicorn::test
