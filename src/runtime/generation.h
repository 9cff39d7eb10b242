// Generation: from the logits after a prompt, sample tokens one by one until an end-of-
// sequence id, a stop string or the token limit, streaming text that never splits a UTF-8
// character and never shows a stop string (or the start of one that may still complete).
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "tokenizer/streaming_decoder.h"
#include "tokenizer/tokenizer.h"

namespace unicorn {

struct GenerateOptions {
  SamplingParams sampling;
  int64_t max_tokens = 256;
  std::vector<std::string> stop;  // stop strings, not included in the output
};

enum class FinishReason { Stop, Length, Cancelled };
std::string_view finish_reason_name(FinishReason r);  // "stop", "length", "cancelled"

struct GenerateResult {
  std::string text;
  std::vector<int32_t> tokens;  // generated ids, without the end-of-sequence id
  FinishReason finish = FinishReason::Stop;
  bool stop_string = false;     // a stop string ended it: the cache holds tokens past the text
  double seconds = 0;           // time spent generating (after the prompt)
  // The last generated token is not in the sequence's cache yet (the cache holds every
  // token whose successor was computed): a continuation appends it first.
  std::optional<int32_t> pending;
};

// Streams text pieces, holding back what could be the start of a stop string.
class TextStream {
 public:
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop);
  // Adds a token; returns text now safe to show. Sets stopped() when a stop string completed
  // (the text up to it has then been returned, and nothing after it ever is).
  std::string push(int32_t id);
  // The rest of the held-back text at the end of generation.
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::string release(bool all);
  StreamingDecoder decoder_;
  std::vector<std::string> stop_;
  std::string held_;
  bool stopped_ = false;
};

// Samples from `logits` (host f32 [1, vocab], what the prompt produced), then decodes one
// token at a time on `seq`. `on_text` gets each piece of text as it is ready. `cancel`, when
// set to true from elsewhere (a signal handler, a disconnected client), stops at the next
// token.
GenerateResult generate(Engine& engine, Sequence& seq, const Tokenizer& tokenizer, Tensor logits,
                        const GenerateOptions& options, const std::function<void(std::string_view)>& on_text,
                        const std::atomic<bool>* cancel = nullptr);

}  // namespace unicorn
