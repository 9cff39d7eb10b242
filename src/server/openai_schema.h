// The OpenAI API's JSON, both ways: request bodies of /v1/chat/completions and
// /v1/completions checked field by field (a wrong type or range is a 400 naming the field,
// as OpenAI answers), and the response objects: chat.completion, chat.completion.chunk,
// text_completion, usage and logprobs in OpenAI's layouts.
// ref: https://platform.openai.com/docs/api-reference/chat/create
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/gemma3/chat_format.h"
#include "models/gemma3/config.h"
#include "runtime/generation.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace unicorn::server {

// What both endpoints share: sampling, limits, streaming.
struct GenerationFields {
  std::string model;
  GenerateOptions options;
  int top_logprobs = -1;  // -1: no logprobs; k >= 0: the chosen token's and the k best
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

struct ChatCompletionRequest : GenerationFields {
  std::vector<gemma3::ChatMessage> messages;
};

struct CompletionRequest : GenerationFields {
  std::string prompt;               // text (BOS added as the tokenizer's config says)
  std::vector<int32_t> prompt_ids;  // or token ids, when the prompt was given as ids
};

// Sampling when the request says nothing: the model's generation_config.json (do_sample,
// temperature, top_k, top_p, min_p, repetition_penalty), else greedy decoding; the same
// rule as `unicorn run` (cli SamplingOptions::resolve).

// Parse a request body (already JSON). `defaults` are the sampling defaults; max_tokens
// defaults to `context` (generation stops at the context's end). Throws ApiError (400).
ChatCompletionRequest parse_chat_request(const nlohmann::json& body, const SamplingParams& defaults, int64_t context);
CompletionRequest parse_completion_request(const nlohmann::json& body, const SamplingParams& defaults, int64_t context);

// Parses the raw body text; ApiError 400 for text that is not a JSON object (including
// invalid UTF-8, which the JSON parser rejects).
nlohmann::json parse_body(const std::string& body);

// --- responses ---------------------------------------------------------------------------

enum class Endpoint { Chat, Text };

struct ResponseMeta {
  Endpoint endpoint = Endpoint::Chat;
  std::string id;  // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// OpenAI's finish_reason: "stop" or "length" (a cancelled request reports "stop").
std::string finish_reason_text(FinishReason r);

nlohmann::json usage_json(const RequestUsage& u);

// Logprobs of generated tokens, in the endpoint's layout: chat {"content": [{token, logprob,
// bytes, top_logprobs}]}; text {tokens, token_logprobs, top_logprobs, text_offset}, offsets
// counted from `text_offset` (the length of the text before these tokens).
nlohmann::json logprobs_json(Endpoint e, const Tokenizer& tok, const std::vector<TokenLogprob>& lps,
                             size_t text_offset = 0);

// The whole answer (stream = false).
nlohmann::json completion_json(const ResponseMeta& m, const std::string& text, FinishReason finish,
                               const RequestUsage& usage, const std::vector<TokenLogprob>* lps, const Tokenizer& tok);

// One streamed chunk: the role announcement (chat only: role = true), a piece of text with
// its logprobs, or the end (finish set, no text).
nlohmann::json chunk_json(const ResponseMeta& m, bool role, const std::string& text,
                          const nlohmann::json* logprobs, std::optional<FinishReason> finish);
// The last chunk when stream_options.include_usage: no choices, only usage.
nlohmann::json usage_chunk_json(const ResponseMeta& m, const RequestUsage& usage);

}  // namespace unicorn::server
