// unicorn serve: the OpenAI-compatible HTTP server (src/server/) over one Scheduler. Prints
// "listening on http://HOST:PORT" on stderr once it accepts connections; SIGINT or SIGTERM
// cancels what is in flight and exits with status 0.
#include <fmt/format.h>
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "runtime/scheduler.h"
#include "server/http_server.h"

namespace unicorn::cli {

namespace {

namespace fs = std::filesystem;

struct ServeArgs {
  ModelOptions model;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key, api_key_file, local_images;
  int parallel = 4;
  size_t max_body_bytes = size_t(32) << 20;
  size_t image_cache = 64;
  int http_threads = 0;
  bool verbose = false;
};

std::string read_api_key(const ServeArgs& a) {
  if (a.api_key_file.empty()) return a.api_key;
  std::ifstream f(a.api_key_file);
  if (!f) fail("--api-key-file: cannot read {}", a.api_key_file);
  std::string key((std::istreambuf_iterator<char>(f)), {});
  while (!key.empty() && std::isspace(uint8_t(key.back()))) key.pop_back();
  while (!key.empty() && std::isspace(uint8_t(key.front()))) key.erase(key.begin());
  if (key.empty()) fail("--api-key-file: {} holds no key", a.api_key_file);
  return key;
}

// The model's name in /v1/models: its folder's name ("models/demo" -> "demo").
std::string model_id(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  if (ec) p = path;
  const std::string name = p.filename().string();
  return name.empty() ? std::string("model") : name;
}

int serve(const ServeArgs& a) {
  const std::string api_key = read_api_key(a);
  // Signals are taken by one thread with sigtimedwait: block them before any thread starts
  // (the engine's pool, the scheduler, the HTTP workers inherit the mask).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not end the server
  // Dozens of HTTP threads would each get a malloc arena of their own (glibc allows 8 per
  // core), every one holding on to its peak: a few shared arenas keep the resident set near
  // the live heap. MALLOC_ARENA_MAX in the environment still wins.
  if (!std::getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 4);

  const std::string path = a.model.resolved_model();
  auto engine = a.model.load();
  server::ServerOptions so;
  so.host = a.host;
  so.port = a.port;
  so.api_key = api_key;
  so.model_id = model_id(path);
  so.max_body_bytes = a.max_body_bytes;
  so.prompt.images = server::make_image_policy(a.local_images, a.max_body_bytes);
  so.prompt.max_image_pixels = a.model.max_image_pixels;
  so.prompt.pan_and_scan = a.model.pan_and_scan;
  so.slots = a.parallel;
  so.http_threads = a.http_threads;
  so.log_requests = a.verbose;

  Scheduler scheduler(*engine, {.parallel = a.parallel, .image_cache_entries = a.image_cache});
  server::ApiServer server(scheduler, so);
  const int port = server.bind();

  std::atomic<bool> finished{false};
  std::thread signals([&] {
    const timespec tick{0, 100'000'000};
    bool stopping = false;
    while (!finished) {
      const int sig = sigtimedwait(&stop_signals, nullptr, &tick);
      if (sig == SIGINT || sig == SIGTERM) {
        if (!stopping) fmt::print(stderr, "unicorn serve: {} received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        stopping = true;
      }
      if (stopping) server.stop();  // again each tick: a stop before listening started is missed
    }
  });

  fmt::print(stderr, "unicorn serve: model {} ({}), {} slots x {} tokens of context\n", so.model_id, path, a.parallel,
             scheduler.context());
  const std::string shown_host = a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host;
  fmt::print(stderr, "unicorn serve: listening on http://{}:{}\n", shown_host, port);
  std::fflush(stderr);
  server.run();
  finished = true;
  signals.join();
  fmt::print(stderr, "unicorn serve: stopped\n");
  return 0;
}

const CommandRegistration reg(12, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (chat with images, completions, web page)");
  auto a = std::make_shared<ServeArgs>();
  a->model.add_to(*cmd);
  cmd->add_option("--host", a->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", a->port, "Port to listen on (0: any free port, printed at start)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  auto* key = cmd->add_option("--api-key", a->api_key, "Require 'Authorization: Bearer KEY' on /v1 and /metrics");
  cmd->add_option("--api-key-file", a->api_key_file, "Read the API key from this file")->excludes(key);
  cmd->add_option("--parallel", a->parallel, "Requests generated at once (slots, each with its own KV cache)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--allow-local-images", a->local_images,
                  "Let requests name image files (paths or file:// URLs) inside this directory");
  cmd->add_option("--max-body-bytes", a->max_body_bytes, "Largest request body accepted (413 above)")
      ->check(CLI::Range(size_t(1024), size_t(1) << 34))
      ->capture_default_str();
  cmd->add_option("--image-cache", a->image_cache, "Images whose vision features are kept for reuse")
      ->check(CLI::Range(size_t(0), size_t(1) << 20))
      ->capture_default_str();
  cmd->add_option("--http-threads", a->http_threads, "HTTP worker threads (0: 2 x parallel + 8, at least 16)")
      ->check(CLI::Range(0, 4096));
  cmd->add_flag("-v,--verbose", a->verbose, "Log every request on stderr");
  cmd->callback([a, &exit_code] { exit_code = serve(*a); });
});

}  // namespace

}  // namespace unicorn::cli
