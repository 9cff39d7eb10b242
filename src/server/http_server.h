// The HTTP side of `unicorn serve`: cpp-httplib's server with the OpenAI-compatible routes
// (completion_routes.h), GET /, /health, /v1/models, /metrics, Bearer-key checks, body size
// limit, and every failure answered as an OpenAI error object with its status code.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "runtime/scheduler.h"
#include "server/metrics.h"
#include "server/prompt_builder.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace unicorn::server {

class CompletionRoutes;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;           // 0: any free port (bind() tells which)
  std::string api_key;       // empty: no key needed
  std::string model_id;      // what /v1/models lists and responses name
  size_t max_body_bytes = size_t(32) << 20;
  PromptOptions prompt;
  int slots = 4;             // the Scheduler's parallel slots (sizes the thread pool)
  int http_threads = 0;      // 0: enough for every slot plus waiting and idle connections
  bool log_requests = false; // one line per request on stderr (errors >= 500 always)
};

class ApiServer {
 public:
  ApiServer(Scheduler& scheduler, ServerOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds the listening socket; returns the port. Error when the address cannot be bound.
  int bind();
  // Serves until stop(); call after bind().
  void run();
  // From any thread (not a signal handler): generations in flight are cancelled, their
  // clients told, and run() returns. Calling it again is harmless; a stop() that comes
  // before run() has started listening may be missed, so callers repeat it until run()
  // has returned.
  void stop();

 private:
  bool authorized(const httplib::Request& req, httplib::Response& res) const;
  void install_routes();

  Scheduler& scheduler_;
  ServerOptions options_;
  std::atomic<bool> stopping_{false};
  ServerMetrics metrics_;
  PromptBuilder prompts_;
  std::unique_ptr<CompletionRoutes> completions_;
  std::unique_ptr<httplib::Server> http_;
};

}  // namespace unicorn::server
