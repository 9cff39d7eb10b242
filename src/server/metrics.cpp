#include "server/metrics.h"

#include <fmt/format.h>

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "backends/cpu/buffer_cache.h"

namespace unicorn::server {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::observe(double value) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t i = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());  // le
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, std::string_view name, std::string_view help) const {
  std::lock_guard<std::mutex> lock(mu_);
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  int64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count_, name, sum_, name, count_);
}

namespace {

constexpr std::string_view kEndpoints[] = {"/", "/health", "/metrics", "/v1/models", "/v1/chat/completions",
                                           "/v1/completions"};

void counter(std::string& out, std::string_view name, std::string_view help, int64_t value) {
  out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, value);
}
template <class T>
void gauge(std::string& out, std::string_view name, std::string_view help, T value) {
  out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, value);
}

// Resident set size from /proc/self/statm (pages), 0 where unavailable.
double resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long long size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return double(resident) * double(sysconf(_SC_PAGESIZE));
}

}  // namespace

ServerMetrics::ServerMetrics()
    : first_token_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      per_token_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}),
      duration_({0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}) {}

void ServerMetrics::count_request(std::string_view path, int status) {
  const bool known = std::find(std::begin(kEndpoints), std::end(kEndpoints), path) != std::end(kEndpoints);
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{known ? std::string(path) : std::string("other"), status}];
}

void ServerMetrics::record_generation(const RequestUsage& u, std::string_view outcome) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    prompt_tokens_ += u.prompt_tokens;
    cached_prompt_tokens_ += u.cached_prompt_tokens;
    generated_tokens_ += u.completion_tokens;
    ++generations_[std::string(outcome)];
  }
  if (u.completion_tokens > 0) first_token_.observe(u.first_token_seconds);
  // Time per output token after the first (the decode rate a client sees).
  if (u.completion_tokens > 1)
    per_token_.observe((u.total_seconds - u.first_token_seconds) / double(u.completion_tokens - 1));
  duration_.observe(u.total_seconds);
}

std::string ServerMetrics::render(const SchedulerMetrics& s) const {
  std::string out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out += "# HELP unicorn_requests_total HTTP requests answered, by endpoint and status code.\n"
           "# TYPE unicorn_requests_total counter\n";
    for (const auto& [key, n] : requests_)
      out += fmt::format("unicorn_requests_total{{endpoint=\"{}\",code=\"{}\"}} {}\n", key.first, key.second, n);
    out += "# HELP unicorn_generations_total Generations ended, by outcome (stop, length, cancelled, error).\n"
           "# TYPE unicorn_generations_total counter\n";
    for (const auto& [outcome, n] : generations_)
      out += fmt::format("unicorn_generations_total{{outcome=\"{}\"}} {}\n", outcome, n);
    counter(out, "unicorn_prompt_tokens_total", "Prompt tokens of generations.", prompt_tokens_);
    counter(out, "unicorn_prompt_tokens_cached_total", "Prompt tokens reused from a slot's KV cache.",
            cached_prompt_tokens_);
    counter(out, "unicorn_generated_tokens_total", "Tokens generated.", generated_tokens_);
  }
  first_token_.render(out, "unicorn_time_to_first_token_seconds", "From request submission to the first token.");
  per_token_.render(out, "unicorn_time_per_output_token_seconds", "Mean time per generated token after the first.");
  duration_.render(out, "unicorn_request_duration_seconds", "From submission to the end of generation.");
  gauge(out, "unicorn_queue_depth", "Requests waiting for a slot.", s.queued);
  gauge(out, "unicorn_active_requests", "Requests holding a slot.", s.active);
  gauge(out, "unicorn_kv_cache_tokens", "Positions held in all slots' KV caches.", s.kv_tokens);
  gauge(out, "unicorn_kv_cache_capacity_tokens", "Slots times context.", s.kv_capacity);
  gauge(out, "unicorn_kv_cache_usage_ratio", "KV cache positions used over capacity.",
        s.kv_capacity > 0 ? double(s.kv_tokens) / double(s.kv_capacity) : 0.0);
  counter(out, "unicorn_image_cache_hits_total", "Images whose features came from the cache.", s.image_cache_hits);
  counter(out, "unicorn_image_cache_misses_total", "Images encoded by the vision tower.", s.image_cache_misses);
  counter(out, "unicorn_prefix_tokens_reused_total", "Prompt tokens not recomputed thanks to prefix reuse.",
          s.prefix_tokens_reused);
  // Live heap (what the allocator has handed out and not had back) next to the resident set:
  // a leak grows the first; allocator caching and fragmentation only the second.
  const struct mallinfo2 heap = mallinfo2();
  gauge(out, "unicorn_heap_allocated_bytes", "Heap bytes allocated and not freed (malloc's own count).",
        double(heap.uordblks + heap.hblkhd));
  gauge(out, "unicorn_buffer_cache_bytes",
        "Free activation blocks the CPU backend keeps for reuse (within the heap figure; grows with new shapes).",
        double(cpu::BufferCache::cached_bytes()));
  gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.", resident_bytes());
  return out;
}

}  // namespace unicorn::server
