// The server's counters and histograms, written in Prometheus' text exposition format for
// GET /metrics: requests by endpoint and status, prompt / cached / generated tokens, time to
// first token, time per output token and request duration histograms, and the Scheduler's
// gauges (queue depth, active requests, KV cache use) and image cache counters.
// ref: https://prometheus.io/docs/instrumenting/exposition_formats/
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/scheduler.h"

namespace unicorn::server {

// Cumulative buckets with fixed upper bounds (plus +Inf).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Appends the _bucket, _sum and _count lines of metric `name`.
  void render(std::string& out, std::string_view name, std::string_view help) const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  // One HTTP request answered. Paths other than the API's are counted as "other", so a
  // scanner cannot grow the label set without bound.
  void count_request(std::string_view path, int status);
  // A generation that ended: "stop", "length", "cancelled" (its client left, or the server
  // stopped) or "error".
  void record_generation(const RequestUsage& usage, std::string_view outcome);

  std::string render(const SchedulerMetrics& scheduler) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  std::map<std::string, int64_t> generations_;  // by outcome
  int64_t prompt_tokens_ = 0, cached_prompt_tokens_ = 0, generated_tokens_ = 0;
  Histogram first_token_, per_token_, duration_;
};

}  // namespace unicorn::server
