#include "runtime/generation.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace unicorn {

std::string_view finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
  }
  return "?";
}

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop)
    : decoder_(tokenizer, /*skip_special=*/true), stop_(std::move(stop)) {
  std::erase_if(stop_, [](const std::string& s) { return s.empty(); });
}

std::string TextStream::release(bool all) {
  if (stopped_) return "";
  // A completed stop string ends the text before it.
  size_t cut = std::string::npos;
  for (const auto& s : stop_) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    std::string out = held_.substr(0, cut);
    held_.clear();
    stopped_ = true;
    return out;
  }
  if (all) return std::exchange(held_, {});
  // Keep the longest tail that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const auto& s : stop_) {
    for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n) {
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string TextStream::push(int32_t id) {
  if (stopped_) return "";
  held_ += decoder_.push(id);
  return release(false);
}

std::string TextStream::finish() {
  if (stopped_) return "";
  held_ += decoder_.finish();
  return release(true);
}

GenerateResult generate(Engine& engine, Sequence& seq, const Tokenizer& tokenizer, Tensor logits,
                        const GenerateOptions& options, const std::function<void(std::string_view)>& on_text,
                        const std::atomic<bool>* cancel) {
  if (options.max_tokens < 0) fail("max_tokens must not be negative, got {}", options.max_tokens);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int64_t> stops = engine.config().stop_token_ids();
  Sampler sampler(options.sampling);
  TextStream stream(tokenizer, options.stop);
  GenerateResult r;
  auto emit = [&](const std::string& s) {
    if (s.empty()) return;
    r.text += s;
    if (on_text) on_text(s);
  };
  r.finish = FinishReason::Length;
  std::vector<int32_t> context = seq.tokens();
  for (int64_t i = 0; i < options.max_tokens; ++i) {
    if (cancel && cancel->load()) {
      r.finish = FinishReason::Cancelled;
      break;
    }
    if (i > 0) {
      if (seq.length() + 1 > seq.context()) break;  // the context is full: finish with "length"
      Sequence* s = &seq;
      logits = engine.decode(std::span<Sequence* const>(&s, 1), std::span<const int32_t>(&r.tokens.back(), 1));
      r.pending.reset();
    }
    const std::span<float> row(logits.data<float>(), size_t(logits.dim(1)));
    engine.mask_unsamplable(row);
    const int32_t tok = sampler.sample(row, context, r.tokens);
    if (std::find(stops.begin(), stops.end(), int64_t(tok)) != stops.end()) {
      r.finish = FinishReason::Stop;
      break;
    }
    r.tokens.push_back(tok);
    context.push_back(tok);
    r.pending = tok;
    emit(stream.push(tok));
    if (stream.stopped()) {
      r.finish = FinishReason::Stop;
      r.stop_string = true;
      break;
    }
  }
  emit(stream.finish());
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace unicorn
