#include "runtime/scheduler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "models/gemma3/image_tokens.h"

namespace unicorn {

using Clock = std::chrono::steady_clock;

uint64_t content_hash(std::span<const uint8_t> bytes, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (uint8_t b : bytes) {
    h ^= b;
    h *= 0x100000001b3ull;
  }
  return h;
}

// --- RequestHandle ---------------------------------------------------------------------

void RequestHandle::push(std::string text, std::optional<TokenLogprob> lp) {
  std::lock_guard<std::mutex> lock(mu_);
  text_ += text;
  pending_.text += text;
  if (lp) pending_.logprobs.push_back(std::move(*lp));
  has_pending_ = true;
  cv_.notify_all();
}

void RequestHandle::finish(FinishReason r, std::string error) {
  std::lock_guard<std::mutex> lock(mu_);
  finish_ = r;
  error_ = std::move(error);
  done_ = true;
  has_pending_ = true;
  cv_.notify_all();
}

bool RequestHandle::next(Delta& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return has_pending_; })) return false;
  out = std::move(pending_);
  pending_ = {};
  has_pending_ = false;
  return true;
}

bool RequestHandle::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}
FinishReason RequestHandle::finish_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finish_;
}
std::string RequestHandle::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}
RequestUsage RequestHandle::usage() const {
  std::lock_guard<std::mutex> lock(mu_);
  return usage_;
}
std::string RequestHandle::full_text() const {
  std::lock_guard<std::mutex> lock(mu_);
  return text_;
}

std::string RequestHandle::wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return done_; });
  return text_;
}

// --- Scheduler state ---------------------------------------------------------------------

struct Scheduler::Slot {
  std::unique_ptr<Sequence> seq;
  std::vector<uint64_t> keys;  // per cached position: the token, or the image it shows
  bool busy = false;
};

struct Scheduler::Active {
  GenerationRequest req;
  std::shared_ptr<RequestHandle> handle;
  std::vector<uint64_t> keys;
  Tensor features;  // host f32 [image tokens, hidden]
  Slot* slot = nullptr;
  int64_t prefilled = 0;
  bool generating = false;
  std::optional<Sampler> sampler;
  std::optional<TextStream> stream;
  std::vector<int32_t> generated, context;
  int32_t last_token = 0;
  Clock::time_point submitted, admitted;
  bool first_token_seen = false;
};

namespace {

// Prompt position keys: text tokens by id; image tokens by (image hash, crop, index), so two
// prompts share a prefix only where they show the same pictures.
std::vector<uint64_t> position_keys(const GenerationRequest& r, int32_t image_token) {
  std::vector<uint64_t> keys(r.prompt.size());
  for (size_t i = 0; i < r.prompt.size(); ++i) keys[i] = uint64_t(uint32_t(r.prompt[i]));
  if (image_token < 0) return keys;
  const auto runs = gemma3::find_image_runs(r.prompt, image_token);
  size_t run = 0;
  for (const RequestImage& im : r.images) {
    const int64_t pieces = im.pixel_values.dim(0);  // the image and its crops
    for (int64_t c = 0; c < pieces && run < runs.size(); ++c, ++run) {
      for (int64_t j = 0; j < runs[run].length; ++j)
        keys[size_t(runs[run].begin + j)] =
            (im.hash * 0x9E3779B97F4A7C15ull + uint64_t(c) * 1000003ull + uint64_t(j)) | (1ull << 63);
    }
  }
  return keys;
}

}  // namespace

Scheduler::Scheduler(Engine& engine, const SchedulerOptions& options)
    : engine_(engine),
      options_(options),
      sample_pool_(std::max(1, std::min({ThreadPool::hardware_threads(), options.parallel, 8}))) {
  if (options_.parallel <= 0) fail("parallel slots must be positive, got {}", options_.parallel);
  for (int i = 0; i < options_.parallel; ++i) {
    auto s = std::make_unique<Slot>();
    s->seq = engine_.new_sequence();
    slots_.push_back(std::move(s));
  }
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<RequestHandle> Scheduler::submit(GenerationRequest request) {
  const auto& c = engine_.config();
  if (request.prompt.empty()) fail("the prompt is empty");
  const int64_t ctx = engine_.options().context;
  if (int64_t(request.prompt.size()) + 1 > ctx)
    fail("the prompt has {} tokens but the context holds {} (prompt plus at least one generated token)",
         request.prompt.size(), ctx);
  request.options.sampling.validate();
  for (const auto& [id, bias] : request.options.sampling.logit_bias)
    if (id >= c.text.vocab_size) fail("logit_bias: token id {} is outside the vocabulary (0..{})", id, c.text.vocab_size - 1);
  if (request.options.max_tokens < 0) fail("max_tokens must not be negative");
  const int32_t image_token = c.multimodal() ? int32_t(c.image_token_index) : -1;
  int64_t image_tokens = 0;
  for (int32_t t : request.prompt) image_tokens += t == image_token;
  int64_t expected = 0;
  for (const auto& im : request.images) {
    if (!im.pixel_values.defined() || im.pixel_values.rank() != 4)
      fail("internal: request image without pixel values");
    expected += im.pixel_values.dim(0) * c.mm_tokens_per_image;
  }
  if (image_tokens != expected)
    fail("the prompt has {} image tokens but the images need {}", image_tokens, expected);
  for (int32_t t : request.prompt)
    if (t < 0 || (t >= c.text.vocab_size && t != image_token))
      fail("token id {} is outside the vocabulary (0..{})", t, c.text.vocab_size - 1);

  auto a = std::make_unique<Active>();
  a->keys = position_keys(request, image_token);
  a->req = std::move(request);
  a->handle = std::make_shared<RequestHandle>();
  a->handle->usage_.prompt_tokens = int64_t(a->req.prompt.size());
  a->submitted = Clock::now();
  auto handle = a->handle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(a));
  }
  cv_.notify_all();
  return handle;
}

SchedulerMetrics Scheduler::metrics() const {
  SchedulerMetrics m;
  {
    std::lock_guard<std::mutex> lock(mu_);
    m.queued = int64_t(queue_.size());
  }
  m.active = active_count_.load();
  m.kv_capacity = int64_t(slots_.size()) * engine_.options().context;
  for (const auto& s : slots_) m.kv_tokens += s->seq->length();  // racy read of a size: a gauge
  m.image_cache_hits = image_hits_.load();
  m.image_cache_misses = image_misses_.load();
  m.prefix_tokens_reused = prefix_reused_.load();
  return m;
}

Tensor Scheduler::features_for(const GenerationRequest& r) {
  const int64_t hidden = engine_.config().text.hidden_size;
  std::vector<Tensor> parts;
  int64_t rows = 0;
  for (const RequestImage& im : r.images) {
    auto it = image_index_.find(im.hash);
    Tensor f;
    if (it != image_index_.end()) {
      image_lru_.splice(image_lru_.begin(), image_lru_, it->second);  // most recent first
      f = it->second->second;
      ++image_hits_;
    } else {
      f = engine_.encode_images(im.pixel_values);
      ++image_misses_;
      image_lru_.emplace_front(im.hash, f);
      image_index_[im.hash] = image_lru_.begin();
      while (image_lru_.size() > options_.image_cache_entries) {
        image_index_.erase(image_lru_.back().first);
        image_lru_.pop_back();
      }
    }
    rows += f.dim(0);
    parts.push_back(f);
  }
  Tensor out = Tensor::zeros(DType::F32, {rows, hidden});
  int64_t at = 0;
  for (const Tensor& p : parts) {
    std::memcpy(out.data<float>() + at * hidden, p.raw(), size_t(p.nbytes()));
    at += p.dim(0);
  }
  return out;
}

void Scheduler::admit(std::unique_ptr<Active> a) {
  // The idle slot sharing the longest prefix (at least one prompt token is left to read, so
  // the last one yields logits).
  Slot* best = nullptr;
  size_t best_len = 0;
  for (auto& s : slots_) {
    if (s->busy) continue;
    const size_t limit = std::min(s->keys.size(), a->keys.size() - 1);
    size_t n = 0;
    while (n < limit && s->keys[n] == a->keys[n]) ++n;
    if (!best || n > best_len) {
      best = s.get();
      best_len = n;
    }
  }
  UNICORN_CHECK(best != nullptr);
  // Never start inside an image run: back off to its first token.
  const int32_t image_token = engine_.config().multimodal() ? int32_t(engine_.config().image_token_index) : -1;
  while (best_len > 0 && a->req.prompt[best_len] == image_token && a->req.prompt[best_len - 1] == image_token)
    --best_len;
  if (!best->seq->truncate(int64_t(best_len))) {
    best->seq->reset();
    best_len = 0;
  }
  best->keys.resize(best_len);
  best->busy = true;
  ++active_count_;
  a->slot = best;
  a->prefilled = int64_t(best_len);
  a->admitted = Clock::now();
  prefix_reused_ += int64_t(best_len);
  {
    std::lock_guard<std::mutex> lock(a->handle->mu_);
    a->handle->usage_.cached_prompt_tokens = int64_t(best_len);
    a->handle->usage_.queue_seconds = std::chrono::duration<double>(a->admitted - a->submitted).count();
  }
  a->sampler.emplace(a->req.options.sampling);
  a->stream.emplace(*engine_.tokenizer(), a->req.options.stop);
  a->context = a->req.prompt;
  try {
    if (!a->req.images.empty()) a->features = features_for(a->req);
  } catch (const std::exception& e) {
    active_.push_back(std::move(a));
    release(*active_.back(), FinishReason::Stop, e.what());
    return;
  }
  active_.push_back(std::move(a));
}

bool Scheduler::prefill_step(Active& a) {
  const int32_t image_token = engine_.config().multimodal() ? int32_t(engine_.config().image_token_index) : -1;
  const std::span<const int32_t> rest = std::span<const int32_t>(a.req.prompt).subspan(size_t(a.prefilled));
  const auto chunks = gemma3::plan_chunks(rest, image_token, engine_.options().max_chunk);
  const int64_t len = chunks.front().second;
  const std::span<const int32_t> ids = rest.first(size_t(len));
  int64_t rows_before = 0, rows = 0;
  for (int64_t i = 0; i < a.prefilled; ++i) rows_before += a.req.prompt[size_t(i)] == image_token;
  for (int32_t t : ids) rows += t == image_token;
  Tensor feats;
  if (rows > 0) feats = a.features.rows(rows_before, rows);
  Tensor logits = engine_.append(*a.slot->seq, ids, rows > 0 ? &feats : nullptr, false);
  a.slot->keys.insert(a.slot->keys.end(), a.keys.begin() + a.prefilled, a.keys.begin() + a.prefilled + len);
  a.prefilled += len;
  if (a.prefilled < int64_t(a.req.prompt.size())) return true;
  a.generating = true;
  if (a.req.options.max_tokens == 0) {
    release(a, FinishReason::Length);
    return false;
  }
  return take_token(a, std::span<float>(logits.data<float>(), size_t(logits.dim(1))));
}

Scheduler::Pick Scheduler::pick_token(Active& a, std::span<float> logits) const {
  engine_.mask_unsamplable(logits);
  std::optional<TokenLogprob> lp;
  const int k = a.req.top_logprobs;
  if (k >= 0) {
    // log-softmax of the model's distribution (before penalties and temperature)
    const float lse = float(log_sum_exp(logits));
    lp.emplace();
    if (k > 0)
      for (int32_t t : top_indices(logits, size_t(k))) lp->top.emplace_back(t, logits[size_t(t)] - lse);
    lp->token = -1;
    lp->logprob = lse;  // filled below once the token is known
  }
  std::vector<float> raw;
  if (lp) raw.assign(logits.begin(), logits.end());
  const int32_t tok = a.sampler->sample(logits, a.context, a.generated);
  if (lp) {
    lp->token = tok;
    lp->logprob = raw[size_t(tok)] - lp->logprob;
  }
  return {tok, std::move(lp)};
}

bool Scheduler::accept_token(Active& a, Pick pick) {
  if (a.handle->cancelled()) {
    release(a, FinishReason::Cancelled);
    return false;
  }
  const int32_t tok = pick.token;
  const auto stops = engine_.config().stop_token_ids();
  if (std::find(stops.begin(), stops.end(), int64_t(tok)) != stops.end()) {
    release(a, FinishReason::Stop);
    return false;
  }
  a.generated.push_back(tok);
  a.context.push_back(tok);
  if (!a.first_token_seen) {
    a.first_token_seen = true;
    std::lock_guard<std::mutex> lock(a.handle->mu_);
    a.handle->usage_.first_token_seconds = std::chrono::duration<double>(Clock::now() - a.submitted).count();
  }
  a.handle->push(a.stream->push(tok), std::move(pick.logprob));
  if (a.stream->stopped()) {
    release(a, FinishReason::Stop);
    return false;
  }
  if (int64_t(a.generated.size()) >= a.req.options.max_tokens || a.slot->seq->length() + 1 > a.slot->seq->context()) {
    release(a, FinishReason::Length);
    return false;
  }
  a.last_token = tok;
  return true;
}

void Scheduler::release(Active& a, FinishReason r, std::string error) {
  if (a.stream && error.empty()) {
    const std::string rest = a.stream->finish();
    if (!rest.empty()) a.handle->push(rest, std::nullopt);
  }
  {
    std::lock_guard<std::mutex> lock(a.handle->mu_);
    a.handle->usage_.completion_tokens = int64_t(a.generated.size());
    a.handle->usage_.total_seconds = std::chrono::duration<double>(Clock::now() - a.submitted).count();
  }
  a.handle->finish(r, std::move(error));
  if (a.slot) {
    a.slot->busy = false;
    a.slot = nullptr;
    --active_count_;
  }
  a.generating = false;
  a.prefilled = -1;  // marks it for removal
}

void Scheduler::decode_step(std::vector<Active*>& gen) {
  std::vector<Sequence*> seqs;
  std::vector<int32_t> toks;
  for (Active* a : gen) {
    seqs.push_back(a->slot->seq.get());
    toks.push_back(a->last_token);
  }
  Tensor logits;
  try {
    logits = engine_.decode(seqs, toks);
  } catch (const std::exception& e) {
    for (Active* a : gen) release(*a, FinishReason::Stop, e.what());
    return;
  }
  const int64_t vocab = logits.dim(1);
  // The draws in parallel (each sequence's own sampler over its own row), then taken in order.
  // One request's failure ends that request only, never the engine thread.
  std::vector<Pick> picks(gen.size());
  std::vector<std::string> errors(gen.size());
  sample_pool_.parallel_tasks(int64_t(gen.size()), [&](int64_t i) {
    try {
      picks[size_t(i)] = pick_token(*gen[size_t(i)], std::span<float>(logits.data<float>() + i * vocab, size_t(vocab)));
    } catch (const std::exception& e) {
      errors[size_t(i)] = e.what();
    }
  });
  for (size_t i = 0; i < gen.size(); ++i) {
    gen[i]->slot->keys.push_back(uint64_t(uint32_t(toks[i])));
    if (!errors[i].empty()) {
      release(*gen[i], FinishReason::Stop, errors[i]);
      continue;
    }
    try {
      accept_token(*gen[i], std::move(picks[i]));
    } catch (const std::exception& e) {
      if (gen[i]->slot) release(*gen[i], FinishReason::Stop, e.what());
    }
  }
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !active_.empty(); });
      if (stopping_) break;
      // Cancelled requests still in the queue end now: their clients are gone and must not
      // wait for a slot to be told so.
      for (auto it = queue_.begin(); it != queue_.end();) {
        if ((*it)->handle->cancelled()) {
          (*it)->handle->finish(FinishReason::Cancelled);
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      // Admit queued requests into idle slots, oldest first.
      while (!queue_.empty()) {
        const bool idle = std::any_of(slots_.begin(), slots_.end(), [](const auto& s) { return !s->busy; });
        if (!idle) break;
        auto a = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        if (a->handle->cancelled()) {
          a->handle->finish(FinishReason::Cancelled);
        } else {
          admit(std::move(a));
        }
        lock.lock();
      }
    }
    // Cancelled requests free their slots at once.
    for (auto& a : active_)
      if (a->slot && a->handle->cancelled()) release(*a, FinishReason::Cancelled);
    // One prefill chunk for the oldest request still reading its prompt, then a decode step
    // for everyone generating: new requests join without stalling the others for long.
    for (auto& a : active_) {
      if (a->slot && !a->generating) {
        try {
          prefill_step(*a);
        } catch (const std::exception& e) {
          release(*a, FinishReason::Stop, e.what());
        }
        break;
      }
    }
    std::vector<Active*> gen;
    for (auto& a : active_)
      if (a->slot && a->generating) gen.push_back(a.get());
    if (!gen.empty()) decode_step(gen);
    std::erase_if(active_, [](const auto& a) { return a->prefilled < 0; });
  }
  // Shutting down: end every request.
  for (auto& a : active_)
    if (a->prefilled >= 0) release(*a, FinishReason::Cancelled, "the server is shutting down");
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& a : queue_) a->handle->finish(FinishReason::Cancelled, "the server is shutting down");
}

}  // namespace unicorn
