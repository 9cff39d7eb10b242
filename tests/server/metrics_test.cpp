// Prometheus text of the server's metrics: counters by endpoint and status, cumulative
// histogram buckets, and the scheduler's gauges.
#include "server/metrics.h"

#include <gtest/gtest.h>

namespace unicorn::server {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(ServerMetrics, PrometheusText) {
  ServerMetrics m;
  m.count_request("/v1/chat/completions", 200);
  m.count_request("/v1/chat/completions", 200);
  m.count_request("/v1/chat/completions", 400);
  m.count_request("/wp-admin/setup.php", 404);  // not a label of its own
  RequestUsage u;
  u.prompt_tokens = 20;
  u.cached_prompt_tokens = 5;
  u.completion_tokens = 11;
  u.first_token_seconds = 0.03;
  u.total_seconds = 0.1;  // 10 more tokens in 0.07 s: 7 ms each
  m.record_generation(u, "stop");
  m.record_generation(RequestUsage{}, "cancelled");
  SchedulerMetrics s;
  s.queued = 2;
  s.active = 3;
  s.kv_tokens = 100;
  s.kv_capacity = 400;
  s.image_cache_hits = 7;
  s.image_cache_misses = 1;
  const std::string text = m.render(s);
  EXPECT_TRUE(has_line(text, "unicorn_requests_total{endpoint=\"/v1/chat/completions\",code=\"200\"} 2")) << text;
  EXPECT_TRUE(has_line(text, "unicorn_requests_total{endpoint=\"/v1/chat/completions\",code=\"400\"} 1"));
  EXPECT_TRUE(has_line(text, "unicorn_requests_total{endpoint=\"other\",code=\"404\"} 1"));
  EXPECT_TRUE(has_line(text, "unicorn_prompt_tokens_total 20"));
  EXPECT_TRUE(has_line(text, "unicorn_generations_total{outcome=\"stop\"} 1"));
  EXPECT_TRUE(has_line(text, "unicorn_generations_total{outcome=\"cancelled\"} 1"));
  EXPECT_TRUE(has_line(text, "unicorn_prompt_tokens_cached_total 5"));
  EXPECT_TRUE(has_line(text, "unicorn_generated_tokens_total 11"));
  EXPECT_TRUE(has_line(text, "unicorn_time_to_first_token_seconds_bucket{le=\"0.025\"} 0"));
  EXPECT_TRUE(has_line(text, "unicorn_time_to_first_token_seconds_bucket{le=\"0.05\"} 1"));
  EXPECT_TRUE(has_line(text, "unicorn_time_to_first_token_seconds_bucket{le=\"+Inf\"} 1"));
  EXPECT_TRUE(has_line(text, "unicorn_time_to_first_token_seconds_count 1"));
  EXPECT_TRUE(has_line(text, "unicorn_time_per_output_token_seconds_bucket{le=\"0.01\"} 1"));
  EXPECT_TRUE(has_line(text, "unicorn_time_per_output_token_seconds_bucket{le=\"0.005\"} 0"));
  EXPECT_TRUE(has_line(text, "unicorn_queue_depth 2"));
  EXPECT_TRUE(has_line(text, "unicorn_active_requests 3"));
  EXPECT_TRUE(has_line(text, "unicorn_kv_cache_tokens 100"));
  EXPECT_TRUE(has_line(text, "unicorn_kv_cache_capacity_tokens 400"));
  EXPECT_TRUE(has_line(text, "unicorn_kv_cache_usage_ratio 0.25"));
  EXPECT_TRUE(has_line(text, "unicorn_image_cache_hits_total 7"));
  EXPECT_TRUE(has_line(text, "unicorn_image_cache_misses_total 1"));
  EXPECT_NE(text.find("# TYPE unicorn_time_to_first_token_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find("\nunicorn_heap_allocated_bytes "), std::string::npos);
  EXPECT_NE(text.find("\nunicorn_buffer_cache_bytes "), std::string::npos);
}

}  // namespace
}  // namespace unicorn::server
