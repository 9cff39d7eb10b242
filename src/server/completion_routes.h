// POST /v1/chat/completions and POST /v1/completions: parse, build the prompt, submit to the
// Scheduler, and answer either at once (one JSON object) or as a stream of server-sent
// events. A client that goes away cancels its request so its slot is freed at once: a
// streamed answer notices the failed write, and both kinds poll the connection
// (connection_watch.h) while waiting for tokens.
#pragma once

#include <atomic>
#include <mutex>
#include <random>
#include <string>

#include "runtime/scheduler.h"
#include "server/metrics.h"
#include "server/openai_schema.h"
#include "server/prompt_builder.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace unicorn::server {

// Unique response ids ("chatcmpl-" + 24 hex digits).
class IdSource {
 public:
  IdSource();
  std::string next(std::string_view prefix);

 private:
  std::mutex mu_;
  std::mt19937_64 rng_;
};

class CompletionRoutes {
 public:
  CompletionRoutes(Scheduler& scheduler, const PromptBuilder& prompts, ServerMetrics& metrics, std::string model_id,
                   const std::atomic<bool>& stopping);

  // Fill `res`; throw ApiError for a refused request (the caller turns it into the error object).
  void chat(const httplib::Request& req, httplib::Response& res);
  void completion(const httplib::Request& req, httplib::Response& res);

 private:
  void run(const httplib::Request& req, httplib::Response& res, Endpoint endpoint, GenerationRequest request,
           const GenerationFields& fields);

  Scheduler& scheduler_;
  const PromptBuilder& prompts_;
  ServerMetrics& metrics_;
  std::string model_id_;
  const std::atomic<bool>& stopping_;
  SamplingParams defaults_;
  IdSource ids_;
};

}  // namespace unicorn::server
