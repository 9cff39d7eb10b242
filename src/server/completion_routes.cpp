#include "server/completion_routes.h"

#include <httplib.h>

#include <chrono>
#include <ctime>

#include "server/api_error.h"
#include "server/connection_watch.h"
#include "server/sse.h"

namespace unicorn::server {

using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

// How often a waiting request looks at its client and at the server's stop flag.
constexpr auto kPollInterval = 50ms;

// Waits for the next output of `handle`. Returns false once the request is done and all of
// its output has been taken. Reading done() before draining matters: everything pushed
// before the request finished is then in the delta taken next.
bool next_output(RequestHandle& handle, RequestHandle::Delta& delta, bool& got) {
  const bool finished = handle.done();
  got = handle.next(delta, finished ? 0ms : std::chrono::milliseconds(kPollInterval));
  return !finished;
}

// How a finished request ended, for the metrics.
std::string_view outcome(const RequestHandle& h) {
  if (!h.error().empty()) return "error";
  return finish_reason_name(h.finish_reason());  // "stop", "length", "cancelled"
}

}  // namespace

IdSource::IdSource() : rng_(std::random_device{}()) {}

std::string IdSource::next(std::string_view prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  return fmt::format("{}{:016x}{:08x}", prefix, rng_(), uint32_t(rng_()));
}

CompletionRoutes::CompletionRoutes(Scheduler& scheduler, const PromptBuilder& prompts, ServerMetrics& metrics,
                                   std::string model_id, const std::atomic<bool>& stopping)
    : scheduler_(scheduler),
      prompts_(prompts),
      metrics_(metrics),
      model_id_(std::move(model_id)),
      stopping_(stopping),
      defaults_(sampling_defaults(scheduler.engine().config().generation)) {}

void CompletionRoutes::chat(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req.body);
  ChatCompletionRequest r = parse_chat_request(body, defaults_, scheduler_.context());
  GenerationRequest g;
  prompts_.chat(r.messages, g);
  run(req, res, Endpoint::Chat, std::move(g), r);
}

void CompletionRoutes::completion(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req.body);
  CompletionRequest r = parse_completion_request(body, defaults_, scheduler_.context());
  GenerationRequest g;
  if (r.prompt_ids.empty())
    prompts_.text(r.prompt, g);
  else
    prompts_.ids(r.prompt_ids, g);
  run(req, res, Endpoint::Text, std::move(g), r);
}

namespace {

// The state of one streamed answer, shared by the content provider and its releaser.
struct Stream {
  std::shared_ptr<RequestHandle> handle;
  ResponseMeta meta;
  ConnectionWatch watch;
  bool include_usage = false, logprobs = false;
  const Tokenizer* tokenizer = nullptr;
  const std::atomic<bool>* stopping = nullptr;
  ServerMetrics* metrics = nullptr;

  // Writes the whole stream; false when the client went away (the request is cancelled).
  bool write_all(httplib::DataSink& sink) {
    auto write = [&](std::string_view s) {
      if (sink.write(s.data(), s.size())) return true;
      handle->cancel();  // the client is gone: free the slot now
      return false;
    };
    if (meta.endpoint == Endpoint::Chat) {
      json role = chunk_json(meta, true, "", nullptr, std::nullopt);
      if (include_usage) role["usage"] = nullptr;  // OpenAI: null on every chunk but the last
      if (!write(sse_event(role))) return finish(false);
    }
    size_t text_offset = 0;
    RequestHandle::Delta d;
    bool got = false, client_left = false;
    while (next_output(*handle, d, got) || got) {
      if (got && (!d.text.empty() || !d.logprobs.empty())) {
        json lp;
        if (logprobs) lp = logprobs_json(meta.endpoint, *tokenizer, d.logprobs, text_offset);
        json chunk = chunk_json(meta, false, d.text, logprobs ? &lp : nullptr, std::nullopt);
        if (include_usage) chunk["usage"] = nullptr;
        if (!write(sse_event(chunk))) return finish(false);
        text_offset += d.text.size();
      }
      if (!handle->done() && (stopping->load() || watch.peer_closed())) {
        client_left = !stopping->load();
        handle->cancel();
      }
    }
    if (client_left) return finish(false);
    record();  // before the end goes out: a client that reads /metrics next sees this request
    const std::string error = handle->error();
    if (!error.empty() || handle->finish_reason() == FinishReason::Cancelled) {
      const int status = error.empty() ? 503 : 500;
      write(sse_event(error_body(status, error.empty() ? "the server is shutting down" : error)));
    } else {
      json end = chunk_json(meta, false, "", nullptr, handle->finish_reason());
      if (include_usage) end["usage"] = nullptr;
      if (!write(sse_event(end))) return finish(false);
      if (include_usage && !write(sse_event(usage_chunk_json(meta, handle->usage())))) return finish(false);
    }
    if (!write(sse_done())) return finish(false);
    sink.done();
    return finish(true);
  }

  bool finish(bool ok) {
    record();
    return ok;
  }

  // Counts the generation once, after the scheduler has let go of it.
  void record() {
    if (recorded) return;
    recorded = true;
    handle->wait();
    metrics->record_generation(handle->usage(), outcome(*handle));
  }
  bool recorded = false;
};

}  // namespace

void CompletionRoutes::run(const httplib::Request& req, httplib::Response& res, Endpoint endpoint,
                           GenerationRequest request, const GenerationFields& fields) {
  request.options = fields.options;
  request.top_logprobs = fields.top_logprobs;
  std::shared_ptr<RequestHandle> handle;
  try {
    handle = scheduler_.submit(std::move(request));
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  ResponseMeta meta;
  meta.endpoint = endpoint;
  meta.id = ids_.next(endpoint == Endpoint::Chat ? "chatcmpl-" : "cmpl-");
  meta.created = int64_t(std::time(nullptr));
  meta.model = model_id_;
  ConnectionWatch watch(req.local_port, req.remote_addr, req.remote_port);

  if (fields.stream) {
    auto s = std::make_shared<Stream>();
    s->handle = handle;
    s->meta = meta;
    s->watch = watch;
    s->include_usage = fields.include_usage;
    s->logprobs = fields.top_logprobs >= 0;
    s->tokenizer = &prompts_.tokenizer();
    s->stopping = &stopping_;
    s->metrics = &metrics_;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // proxies: pass events through as they come
    res.set_chunked_content_provider(
        "text/event-stream", [s](size_t, httplib::DataSink& sink) { return s->write_all(sink); },
        // Whatever ended the response (httplib gave up on the socket, the server stopped),
        // the request must not keep its slot.
        [s](bool) { s->handle->cancel(); });
    return;
  }

  std::string text;
  std::vector<TokenLogprob> lps;
  RequestHandle::Delta d;
  bool got = false, client_left = false;
  while (next_output(*handle, d, got) || got) {
    if (got) {
      text += d.text;
      lps.insert(lps.end(), std::make_move_iterator(d.logprobs.begin()), std::make_move_iterator(d.logprobs.end()));
    }
    if (!handle->done() && (stopping_.load() || watch.peer_closed())) {
      client_left = !stopping_.load();
      handle->cancel();
    }
  }
  metrics_.record_generation(handle->usage(), outcome(*handle));
  if (client_left) {
    res.status = 499;  // nginx's "client closed request": nobody reads it, the metrics do
    res.set_content(json_text(error_body(499, "the client closed the connection")), "application/json");
    return;
  }
  if (!handle->error().empty()) throw ApiError(500, "generation failed: " + handle->error());
  if (handle->finish_reason() == FinishReason::Cancelled) throw ApiError(503, "the server is shutting down");
  const json out = completion_json(meta, text, handle->finish_reason(), handle->usage(),
                                   fields.top_logprobs >= 0 ? &lps : nullptr, prompts_.tokenizer());
  res.set_content(json_text(out), "application/json");
}

}  // namespace unicorn::server
