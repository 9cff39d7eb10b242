// A conversation held in one sequence's KV cache: each turn appends only its new tokens
// (the user's message, then the model's answer as generated). When a turn would overflow the
// context, the oldest turns are dropped (the system prompt stays) and the rest is read again.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/gemma3/chat_format.h"
#include "runtime/engine.h"
#include "runtime/generation.h"
#include "vision/preprocess.h"

namespace unicorn {

struct TurnStats {
  int64_t prompt_tokens = 0;  // tokens appended for this turn (all re-read tokens after a drop)
  double prompt_seconds = 0;
  int64_t images = 0;
  double image_seconds = 0;
  int64_t generated_tokens = 0;
  double generate_seconds = 0;
  int64_t dropped_turns = 0;  // oldest turns dropped to make room
};

struct TurnResult {
  std::string text;
  FinishReason finish = FinishReason::Stop;
  TurnStats stats;
};

class ChatSession {
 public:
  // The engine must have a tokenizer. `system` (may be empty) is folded into the first user turn.
  ChatSession(Engine& engine, std::string system = {});

  // Adds a user message (text, and images shown before it) and generates the answer.
  // Errors (a prompt that cannot fit even alone, images given to a text-only model) leave
  // the conversation as it was.
  TurnResult ask(const std::string& text, const std::vector<vision::PreprocessedImage>& images,
                 const GenerateOptions& options, const std::function<void(std::string_view)>& on_text,
                 const std::atomic<bool>* cancel = nullptr);

  void reset();
  size_t turns() const { return turns_.size(); }
  // The conversation as OpenAI-style messages plus the images' crop counts: [{role, content}].
  nlohmann::json transcript() const;
  // Preprocessing for this model's vision tower.
  vision::PreprocessOptions image_options(bool pan_and_scan = false) const;

 private:
  struct Turn {
    std::string user;
    std::vector<int> crops;        // per image: pan-and-scan crops (0: the image alone)
    Tensor features;               // host f32 [image tokens, hidden] of this turn's images
    std::string answer;
    bool answered = false;
  };
  // System message, then turns [first_turn, end_turn) with their answers where given.
  std::vector<gemma3::ChatMessage> messages(size_t first_turn, size_t end_turn, bool) const;
  std::vector<int32_t> tokens_for(const std::string& rendered, const std::vector<int>& crops) const;
  // Re-reads turns [first, end) into a fresh sequence; returns the tokens appended.
  void rebuild(size_t first, TurnStats& stats);

  Engine& engine_;
  const Tokenizer& tokenizer_;
  std::string system_;
  std::unique_ptr<Sequence> seq_;
  std::vector<Turn> turns_;
  size_t first_turn_ = 0;  // turns before this were dropped from the cache
  std::optional<int32_t> pending_;
  Tensor last_logits_;  // what the last appended tokens predict
};

}  // namespace unicorn
