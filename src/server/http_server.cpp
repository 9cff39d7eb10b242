#include "server/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "server/api_error.h"
#include "server/completion_routes.h"
#include "server/web_page.h"

namespace unicorn::server {

using json = nlohmann::json;

namespace {

void send_error(httplib::Response& res, int status, std::string_view message, std::string_view param = {},
                std::string_view code = {}) {
  res.status = status;
  res.set_content(json_text(error_body(status, message, param, code)), "application/json");
}

// Runs a route, turning its exceptions into OpenAI error responses.
void guarded_call(const std::function<void()>& route, httplib::Response& res) {
  try {
    route();
  } catch (const ApiError& e) {
    send_error(res, e.status(), e.what(), e.param(), e.code());
  } catch (const Error& e) {
    send_error(res, 400, e.what());
  } catch (const std::exception& e) {
    send_error(res, 500, fmt::format("internal error: {}", e.what()));
  }
}

// Constant-time comparison: the time taken tells nothing of how much of a guess was right.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < a.size(); ++i) diff |= unsigned(uint8_t(a[i]) ^ uint8_t(i < b.size() ? b[i] : 0));
  return diff == 0;
}

// The routes and the methods they answer, for 405 and Allow.
struct Route {
  std::string_view path, method;
};
constexpr Route kRoutes[] = {{"/", "GET"},          {"/health", "GET"},
                             {"/metrics", "GET"},    {"/v1/models", "GET"},
                             {"/v1/chat/completions", "POST"}, {"/v1/completions", "POST"}};

}  // namespace

ApiServer::ApiServer(Scheduler& scheduler, ServerOptions options)
    : scheduler_(scheduler),
      options_(std::move(options)),
      prompts_(scheduler.engine(), options_.prompt),
      completions_(std::make_unique<CompletionRoutes>(scheduler, prompts_, metrics_, options_.model_id, stopping_)),
      http_(std::make_unique<httplib::Server>()) {
  // A streamed answer holds its connection's thread for the whole generation, and clients
  // keep idle connections open: size the pool for every slot, as many waiting, and spare.
  const size_t threads =
      size_t(options_.http_threads > 0 ? options_.http_threads : std::max(16, 2 * options_.slots + 8));
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(options_.max_body_bytes);
  http_->set_tcp_nodelay(true);  // each token is a small write; do not hold it back
  http_->set_keep_alive_max_count(1000);
  http_->set_keep_alive_timeout(5);
  http_->set_read_timeout(30);
  // A client that stops reading a stream (without closing) blocks a write this long, then
  // counts as gone.
  http_->set_write_timeout(10);
  install_routes();
}

ApiServer::~ApiServer() = default;

bool ApiServer::authorized(const httplib::Request& req, httplib::Response& res) const {
  if (options_.api_key.empty()) return true;
  const std::string header = req.get_header_value("Authorization");
  constexpr std::string_view kBearer = "bearer ";
  std::string scheme = header.substr(0, std::min(header.size(), kBearer.size()));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  res.set_header("WWW-Authenticate", "Bearer");
  if (header.empty() || scheme != kBearer) {
    send_error(res, 401, "missing API key: send the header 'Authorization: Bearer <key>'", {}, "invalid_api_key");
    return false;
  }
  std::string_view key = std::string_view(header).substr(kBearer.size());
  while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
  if (!same_secret(key, options_.api_key)) {
    send_error(res, 401, "incorrect API key provided", {}, "invalid_api_key");
    return false;
  }
  return true;
}

void ApiServer::install_routes() {
  using httplib::Request;
  using httplib::Response;
  // Routes under /v1 and /metrics need the key when one is set; the page and /health do
  // not (the page asks for the key itself).
  auto with_key = [this](std::function<void(const Request&, Response&)> route) {
    return [this, route](const Request& req, Response& res) {
      if (!authorized(req, res)) return;
      guarded_call([&] { route(req, res); }, res);
    };
  };

  http_->Get("/", [this](const Request&, Response& res) {
    res.set_content(web_page_html(!options_.api_key.empty()), "text/html; charset=utf-8");
  });
  http_->Get("/health", [](const Request&, Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  const json model = {{"id", options_.model_id},
                      {"object", "model"},
                      {"created", int64_t(std::time(nullptr))},
                      {"owned_by", "unicorn"}};
  http_->Get("/v1/models", with_key([model](const Request&, Response& res) {
    res.set_content(json_text({{"object", "list"}, {"data", json::array({model})}}), "application/json");
  }));
  http_->Get(R"(/v1/models/(.+))", with_key([model](const Request& req, Response& res) {
    if (req.matches[1] != model["id"].get<std::string>())
      throw ApiError(404, fmt::format("the model '{}' does not exist; this server has '{}'", req.matches[1].str(),
                                      model["id"].get<std::string>()),
                     "model", "model_not_found");
    res.set_content(json_text(model), "application/json");
  }));
  http_->Get("/metrics", with_key([this](const Request&, Response& res) {
    res.set_content(metrics_.render(scheduler_.metrics()), "text/plain; version=0.0.4; charset=utf-8");
  }));
  http_->Post("/v1/chat/completions",
              with_key([this](const Request& req, Response& res) { completions_->chat(req, res); }));
  http_->Post("/v1/completions",
              with_key([this](const Request& req, Response& res) { completions_->completion(req, res); }));

  // Statuses httplib sets itself (404 no route, 413 body over the limit, 400 unparsable
  // request) get an OpenAI error object too; a body the route wrote is kept.
  http_->set_error_handler(httplib::Server::HandlerWithResponse([this](const Request& req, Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 404) {
      std::string allow;
      for (const Route& r : kRoutes)
        if (r.path == req.path) allow = r.method;
      if (!allow.empty()) {
        res.set_header("Allow", allow);
        send_error(res, 405, fmt::format("{} {} is not allowed; use {}", req.method, req.path, allow));
      } else {
        send_error(res, 404, fmt::format("unknown route: {} {}", req.method, req.path), {}, "unknown_url");
      }
    } else if (res.status == 413) {
      send_error(res, 413,
                 fmt::format("the request body is larger than the server's limit of {} bytes (--max-body-bytes)",
                             options_.max_body_bytes));
    } else {
      send_error(res, res.status, fmt::format("HTTP {} for {} {}", res.status, req.method, req.path));
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  http_->set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, 500, "internal error: " + what);
  });
  http_->set_logger([this](const Request& req, const Response& res) {
    metrics_.count_request(req.path, res.status);
    if (options_.log_requests || res.status >= 500)
      std::fprintf(stderr, "%s %s %s -> %d\n", req.remote_addr.c_str(), req.method.c_str(), req.path.c_str(),
                   res.status);
  });
}

int ApiServer::bind() {
  int port = options_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(options_.host);
    if (port < 0) fail("cannot listen on {} (any port)", options_.host);
  } else if (!http_->bind_to_port(options_.host, port)) {
    fail("cannot listen on {}:{} (in use, or not an address of this machine)", options_.host, port);
  }
  return port;
}

void ApiServer::run() {
  if (!stopping_) http_->listen_after_bind();
}

void ApiServer::stop() {
  stopping_ = true;
  http_->stop();
}

}  // namespace unicorn::server
