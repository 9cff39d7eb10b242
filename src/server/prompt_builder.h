// From a parsed request to what the Scheduler runs: images fetched (images.h), decoded with
// the pixel limit, preprocessed and hashed; the conversation rendered with Gemma 3's chat
// template, image tokens expanded, tokenized; and the result checked against the context,
// so every fault of the request is a 400 before it takes a slot.
#pragma once

#include <string>
#include <vector>

#include "models/gemma3/chat_format.h"
#include "runtime/engine.h"
#include "runtime/scheduler.h"
#include "server/images.h"

namespace unicorn::server {

struct PromptOptions {
  ImagePolicy images;
  int64_t max_image_pixels = 100'000'000;
  bool pan_and_scan = false;
};

class PromptBuilder {
 public:
  // The engine must have a tokenizer (Error otherwise).
  PromptBuilder(const Engine& engine, PromptOptions options);

  // Fills request.prompt and request.images. Throws ApiError.
  void chat(const std::vector<gemma3::ChatMessage>& messages, GenerationRequest& request) const;
  // A raw text prompt (no chat template), BOS first when the tokenizer's config adds it.
  void text(const std::string& prompt, GenerationRequest& request) const;
  // Token ids given by the client.
  void ids(const std::vector<int32_t>& ids, GenerationRequest& request) const;

  const Tokenizer& tokenizer() const { return tokenizer_; }

 private:
  RequestImage load_image(const std::string& url, const std::string& where, int& crops) const;
  // 400 "context_length_exceeded" when the prompt leaves no room for one generated token.
  void check_length(size_t tokens, const char* param) const;

  const Engine& engine_;
  const Tokenizer& tokenizer_;
  PromptOptions options_;
};

}  // namespace unicorn::server
