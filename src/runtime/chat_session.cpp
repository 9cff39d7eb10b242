#include "runtime/chat_session.h"

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace unicorn {

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Rows of several host f32 [rows_i, hidden] tensors, stacked.
Tensor concat_rows(const std::vector<const Tensor*>& parts, int64_t hidden) {
  int64_t rows = 0;
  for (const Tensor* p : parts) rows += p->defined() ? p->dim(0) : 0;
  Tensor out = Tensor::zeros(DType::F32, {rows, hidden});
  int64_t at = 0;
  for (const Tensor* p : parts) {
    if (!p->defined() || p->dim(0) == 0) continue;
    std::memcpy(out.data<float>() + at * hidden, p->raw(), size_t(p->nbytes()));
    at += p->dim(0);
  }
  return out;
}
}  // namespace

ChatSession::ChatSession(Engine& engine, std::string system)
    : engine_(engine),
      tokenizer_([&]() -> const Tokenizer& {
        if (!engine.tokenizer())
          fail("this model has no tokenizer (a folder without tokenizer.json or tokenizer.json.gz, or a GGUF without "
               "an embedded vocabulary): cannot chat");
        return *engine.tokenizer();
      }()),
      system_(std::move(system)),
      seq_(engine.new_sequence()) {}

vision::PreprocessOptions ChatSession::image_options(bool pan_and_scan) const {
  const auto& c = engine_.config();
  if (!c.vision) fail("{}: it takes no images", engine_.text_only_reason());
  vision::PreprocessOptions o;
  o.image_size = c.vision->image_size;
  o.pan_and_scan = pan_and_scan;
  o.alloc = engine_.pixel_buffer();
  return o;
}

void ChatSession::reset() {
  seq_->reset();
  turns_.clear();
  first_turn_ = 0;
  pending_.reset();
}

std::vector<gemma3::ChatMessage> ChatSession::messages(size_t first, size_t end, bool) const {
  std::vector<gemma3::ChatMessage> m;
  if (!system_.empty()) m.emplace_back("system", system_);
  for (size_t i = first; i < end; ++i) {
    const Turn& t = turns_[i];
    std::vector<gemma3::ChatPart> parts;
    for (size_t k = 0; k < t.crops.size(); ++k) parts.push_back(gemma3::ChatPart::image_part());
    parts.push_back(gemma3::ChatPart::text_part(t.user));
    m.emplace_back("user", std::move(parts));
    if (t.answered) m.emplace_back("assistant", t.answer);
  }
  return m;
}

std::vector<int32_t> ChatSession::tokens_for(const std::string& rendered, const std::vector<int>& crops) const {
  const auto& c = engine_.config();
  const std::string text =
      c.multimodal() ? gemma3::expand_image_tokens(rendered, crops, {}, c.mm_tokens_per_image) : rendered;
  return tokenizer_.encode(text, /*add_bos=*/false);  // the rendering starts with <bos>
}

void ChatSession::rebuild(size_t first, TurnStats& stats) {
  first_turn_ = first;
  seq_->reset();
  pending_.reset();
  std::vector<int> crops;
  std::vector<const Tensor*> feats;
  for (size_t i = first; i < turns_.size(); ++i) {
    crops.insert(crops.end(), turns_[i].crops.begin(), turns_[i].crops.end());
    feats.push_back(&turns_[i].features);
  }
  const std::string rendered = gemma3::render_chat(messages(first, turns_.size(), true), true);
  const std::vector<int32_t> ids = tokens_for(rendered, crops);
  if (int64_t(ids.size()) + 1 > seq_->context())
    fail("the prompt needs {} tokens but the context holds {} (use a larger --ctx or a shorter message)", ids.size(),
         seq_->context());
  const Tensor f = concat_rows(feats, engine_.config().text.hidden_size);
  const auto t0 = std::chrono::steady_clock::now();
  last_logits_ = engine_.append(*seq_, ids, f.dim(0) > 0 ? &f : nullptr, false);
  stats.prompt_seconds += since(t0);
  stats.prompt_tokens += int64_t(ids.size());
}

TurnResult ChatSession::ask(const std::string& text, const std::vector<vision::PreprocessedImage>& images,
                            const GenerateOptions& options, const std::function<void(std::string_view)>& on_text,
                            const std::atomic<bool>* cancel) {
  const auto& c = engine_.config();
  if (!images.empty() && !c.multimodal()) fail("{}: it cannot take images", engine_.text_only_reason());
  options.sampling.validate();
  TurnResult result;
  TurnStats& stats = result.stats;

  Turn turn;
  turn.user = text;
  if (!images.empty()) {
    std::vector<const Tensor*> feats;
    std::vector<Tensor> per_image;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& im : images) {
      turn.crops.push_back(int(im.num_crops));
      per_image.push_back(engine_.encode_images(im.pixel_values));
    }
    for (const Tensor& t : per_image) feats.push_back(&t);
    turn.features = concat_rows(feats, c.text.hidden_size);
    stats.images = int64_t(images.size());
    stats.image_seconds = since(t0);
  }
  turns_.push_back(std::move(turn));
  try {
    const size_t n = turns_.size();
    bool appended = false;
    if (seq_->length() > 0) {
      // Only the new turn's tokens: what the template adds after the previous answer.
      const std::string prev = gemma3::render_chat(messages(first_turn_, n - 1, true), false);
      const std::string full = gemma3::render_chat(messages(first_turn_, n, true), true);
      if (full.compare(0, prev.size(), prev) != 0) fail("internal: chat rendering is not incremental");
      std::vector<int32_t> ids;
      if (pending_) ids.push_back(*pending_);
      // The cache ends inside the previous answer: close it as the template does.
      for (int32_t t : tokenizer_.encode("<end_of_turn>\n", false)) ids.push_back(t);
      const std::vector<int32_t> rest = tokens_for(full.substr(prev.size()), turns_.back().crops);
      ids.insert(ids.end(), rest.begin(), rest.end());
      if (seq_->length() + int64_t(ids.size()) + 1 <= seq_->context()) {
        const Tensor& f = turns_.back().features;
        const auto t0 = std::chrono::steady_clock::now();
        last_logits_ = engine_.append(*seq_, ids, f.defined() && f.dim(0) > 0 ? &f : nullptr, false);
        stats.prompt_seconds += since(t0);
        stats.prompt_tokens += int64_t(ids.size());
        pending_.reset();
        appended = true;
      }
    }
    if (!appended) {
      // A fresh start, dropping the oldest turns until the rest fits.
      size_t first = first_turn_;
      for (;;) {
        try {
          rebuild(first, stats);
          break;
        } catch (const Error&) {
          if (first + 1 >= n) throw;  // even the new turn alone does not fit
          ++first;
          ++stats.dropped_turns;
        }
      }
    }
  } catch (...) {
    turns_.pop_back();
    // The cache may be half-written; the next turn starts afresh from the kept turns.
    seq_->reset();
    pending_.reset();
    throw;
  }

  const GenerateResult g = generate(engine_, *seq_, tokenizer_, last_logits_, options, on_text, cancel);
  Turn& t = turns_.back();
  t.answer = g.text;
  t.answered = true;
  pending_ = g.pending;
  // The cache holds the stop string's tokens, the transcript stops before it: read the
  // conversation again at the next turn rather than continue from a cache it disagrees with.
  if (g.stop_string) seq_->reset();
  result.text = g.text;
  result.finish = g.finish;
  stats.generated_tokens = int64_t(g.tokens.size());
  stats.generate_seconds = g.seconds;
  return result;
}

nlohmann::json ChatSession::transcript() const {
  nlohmann::json out = nlohmann::json::array();
  if (!system_.empty()) out.push_back({{"role", "system"}, {"content", system_}});
  for (const Turn& t : turns_) {
    nlohmann::json content = nlohmann::json::array();
    for (int crops : t.crops) content.push_back({{"type", "image"}, {"crops", crops}});
    content.push_back({{"type", "text"}, {"text", t.user}});
    out.push_back({{"role", "user"}, {"content", content}});
    if (t.answered) out.push_back({{"role", "assistant"}, {"content", t.answer}});
  }
  return out;
}

}  // namespace unicorn
