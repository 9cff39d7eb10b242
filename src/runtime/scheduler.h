// Continuous batching: requests from any thread join a running batch between decode steps.
// One engine thread owns the Engine (backends are not reentrant): it admits queued requests
// into free slots (each slot a Sequence with its own KV cache), prefills them a chunk at a
// time between decode steps, decodes every generating request together, and streams each
// request's text to its RequestHandle. A finished slot keeps its cache, so a new request
// whose prompt extends it reuses the common prefix (KvCache::truncate keeps the sliding
// window correct, or the slot starts afresh). Image features are cached by content hash.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/thread_pool.h"
#include "runtime/engine.h"
#include "runtime/generation.h"

namespace unicorn {

// An image of a request: its pixels (all crops, as preprocess_image gives them) and a hash
// of the file's bytes (plus the preprocessing that depends on it) naming it in the cache.
struct RequestImage {
  uint64_t hash = 0;
  Tensor pixel_values;  // host f32 [1 + crops, 3, S, S]; may be empty when the hash is cached
};

struct GenerationRequest {
  std::vector<int32_t> prompt;       // token ids, image tokens expanded
  std::vector<RequestImage> images;  // one per image (crops included), in prompt order
  GenerateOptions options;
  int top_logprobs = -1;  // -1: no logprobs; 0: the chosen token's; k: also the k best
};

struct TokenLogprob {
  int32_t token;
  float logprob;
  std::vector<std::pair<int32_t, float>> top;
};

struct RequestUsage {
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // reused from a slot's cache
  int64_t completion_tokens = 0;
  double queue_seconds = 0;  // submitted -> admitted
  double first_token_seconds = 0;  // submitted -> first token
  double total_seconds = 0;
};

// Shared between the submitting thread (consumer) and the engine thread (producer).
class RequestHandle {
 public:
  struct Delta {
    std::string text;
    std::vector<TokenLogprob> logprobs;
  };
  // Waits up to `timeout` for output. Returns true with new output (possibly empty text
  // when only the end came), false on timeout. After done() and the last delta, returns
  // false immediately.
  bool next(Delta& out, std::chrono::milliseconds timeout);
  // Stops generation at the next step and frees the slot; safe from any thread, idempotent.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }
  bool done() const;
  // Valid once done():
  FinishReason finish_reason() const;
  std::string error() const;  // non-empty if the request failed inside the engine
  RequestUsage usage() const;
  std::string full_text() const;
  // Blocks until done, collecting everything; returns the text.
  std::string wait();

 private:
  friend class Scheduler;
  void push(std::string text, std::optional<TokenLogprob> lp);
  void finish(FinishReason r, std::string error = {});

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Delta pending_;
  bool has_pending_ = false;
  bool done_ = false;
  FinishReason finish_ = FinishReason::Stop;
  std::string error_;
  std::string text_;
  RequestUsage usage_;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerOptions {
  int parallel = 4;                // slots: sequences generating at once
  size_t image_cache_entries = 64; // features of this many images kept
};

struct SchedulerMetrics {
  int64_t queued = 0;
  int64_t active = 0;
  int64_t kv_tokens = 0;    // positions held in all slots' caches
  int64_t kv_capacity = 0;  // parallel x context
  int64_t image_cache_hits = 0, image_cache_misses = 0;
  int64_t prefix_tokens_reused = 0;
};

class Scheduler {
 public:
  Scheduler(Engine& engine, const SchedulerOptions& options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request; its output streams to the returned handle. Errors in the request
  // (too long for the context, image count not matching) come back as Error here.
  std::shared_ptr<RequestHandle> submit(GenerationRequest request);
  SchedulerMetrics metrics() const;
  const Engine& engine() const { return engine_; }
  int64_t context() const { return engine_.options().context; }

 private:
  struct Active;
  struct Slot;
  void loop();
  void admit(std::unique_ptr<Active> req);
  bool prefill_step(Active& a);
  void decode_step(std::vector<Active*>& generating);
  // The next token of `a` drawn from `logits` (one row), with its log-probabilities where the
  // request asks for them. It touches only `a`'s own state (its sampler), so a decode batch's
  // tokens are drawn in parallel.
  struct Pick {
    int32_t token = -1;
    std::optional<TokenLogprob> logprob;
  };
  Pick pick_token(Active& a, std::span<float> logits) const;
  // Takes a drawn token into `a` (streams it) or finishes `a` (cancelled, a stop token or
  // string, the length); returns false when `a` is finished.
  bool accept_token(Active& a, Pick pick);
  bool take_token(Active& a, std::span<float> logits) { return accept_token(a, pick_token(a, logits)); }
  void release(Active& a, FinishReason r, std::string error = {});
  Tensor features_for(const GenerationRequest& r);

  Engine& engine_;
  SchedulerOptions options_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::unique_ptr<Active>> active_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Active>> queue_;
  bool stopping_ = false;
  // Image features by hash, least recently used last.
  std::list<std::pair<uint64_t, Tensor>> image_lru_;
  std::unordered_map<uint64_t, std::list<std::pair<uint64_t, Tensor>>::iterator> image_index_;
  std::atomic<int64_t> image_hits_{0}, image_misses_{0}, prefix_reused_{0}, active_count_{0};
  ThreadPool sample_pool_;  // a decode batch's draws (at most 8 threads)
  std::thread thread_;
};


// 64-bit FNV-1a of bytes, for image content hashes.
uint64_t content_hash(std::span<const uint8_t> bytes, uint64_t seed = 0);

}  // namespace unicorn
