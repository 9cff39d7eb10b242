#include "support/demo_model.h"

#include <memory>

#include "models/gemma3/chat_format.h"
#include "support/test_paths.h"

namespace unicorn::test {

Engine& demo_engine() {
  static const std::unique_ptr<Engine> engine = [] {
    EngineOptions o;
    o.context = 512;
    return Engine::load(repo_path("models/demo"), o);
  }();
  return *engine;
}

GenerateOptions demo_greedy() {
  GenerateOptions o;
  o.sampling.temperature = 0.0f;
  o.max_tokens = 40;
  return o;
}

std::vector<int32_t> demo_prompt_ids(const std::string& user_text) {
  const std::string prompt = gemma3::render_chat({gemma3::ChatMessage("user", user_text)}, true);
  return demo_engine().tokenizer()->encode(prompt, /*add_bos=*/false);  // the rendering starts with <bos>
}

}  // namespace unicorn::test
