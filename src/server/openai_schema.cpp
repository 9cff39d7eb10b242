#include "server/openai_schema.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "server/api_error.h"

namespace unicorn::server {

using json = nlohmann::json;

namespace {

// A field's value, or null when the field is absent or JSON null (OpenAI treats both alike).
const json* field(const json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& v, const char* name, double lo, double hi) {
  if (!v.is_number()) fail_request(name, "'{}' must be a number, got {}", name, v.type_name());
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi)) fail_request(name, "'{}' must be between {} and {}, got {}", name, lo, hi, x);
  return x;
}

int64_t integer(const json& v, const char* name, int64_t lo, int64_t hi) {
  int64_t x = 0;
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      fail_request(name, "'{}' must be at most {}, got {}", name, hi, v.dump());
    x = v.get<int64_t>();
  } else if (v.is_number_float() && std::isfinite(v.get<double>()) && std::floor(v.get<double>()) == v.get<double>() &&
             std::fabs(v.get<double>()) < 9e15) {
    x = int64_t(v.get<double>());  // 5.0 from clients that only have doubles
  } else {
    fail_request(name, "'{}' must be an integer, got {}", name, v.is_number() ? v.dump() : std::string(v.type_name()));
  }
  if (x < lo || x > hi) fail_request(name, "'{}' must be between {} and {}, got {}", name, lo, hi, x);
  return x;
}

bool boolean(const json& v, const char* name) {
  if (!v.is_boolean()) fail_request(name, "'{}' must be true or false, got {}", name, v.type_name());
  return v.get<bool>();
}

// Fields shared by both endpoints. `logprobs` differs (a bool with top_logprobs in chat, an
// integer in completions) and is read by the callers.
void parse_common(const json& body, const SamplingParams& defaults, int64_t context, GenerationFields& r) {
  if (const json* v = field(body, "model")) {
    if (!v->is_string()) fail_request("model", "'model' must be a string, got {}", v->type_name());
    r.model = v->get<std::string>();
  }
  if (const json* v = field(body, "n"); v && integer(*v, "n", 1, 128) != 1)
    fail_request("n", "only n = 1 is supported (one choice per request), got {}", v->dump());
  if (const json* v = field(body, "best_of"); v && integer(*v, "best_of", 1, 128) != 1)
    fail_request("best_of", "only best_of = 1 is supported");
  if (const json* v = field(body, "stream")) r.stream = boolean(*v, "stream");
  if (const json* v = field(body, "stream_options")) {
    if (!v->is_object()) fail_request("stream_options", "'stream_options' must be an object, got {}", v->type_name());
    if (const json* u = field(*v, "include_usage")) r.include_usage = boolean(*u, "stream_options.include_usage");
  }

  GenerateOptions& o = r.options;
  SamplingParams& p = o.sampling;
  p = defaults;
  o.max_tokens = context;  // until the context is full, as OpenAI's default is "no limit"
  for (const char* name : {"max_tokens", "max_completion_tokens"})  // the newer name wins
    if (const json* v = field(body, name)) o.max_tokens = integer(*v, name, 0, int64_t(1) << 40);
  if (const json* v = field(body, "temperature")) p.temperature = float(number(*v, "temperature", 0, 2));
  if (const json* v = field(body, "top_p")) p.top_p = float(number(*v, "top_p", 0, 1));
  if (p.top_p <= 0) fail_request("top_p", "'top_p' must be greater than 0");
  if (const json* v = field(body, "top_k")) p.top_k = int32_t(integer(*v, "top_k", 0, 1 << 30));
  if (const json* v = field(body, "min_p")) p.min_p = float(number(*v, "min_p", 0, 1));
  if (const json* v = field(body, "presence_penalty")) p.presence_penalty = float(number(*v, "presence_penalty", -2, 2));
  if (const json* v = field(body, "frequency_penalty"))
    p.frequency_penalty = float(number(*v, "frequency_penalty", -2, 2));
  if (const json* v = field(body, "repetition_penalty"))
    p.repetition_penalty = float(number(*v, "repetition_penalty", 0.01, 100));
  if (const json* v = field(body, "seed")) {
    if (!v->is_number_integer()) fail_request("seed", "'seed' must be an integer, got {}", v->type_name());
    p.seed = v->is_number_unsigned() ? v->get<uint64_t>() : uint64_t(v->get<int64_t>());
  }
  if (const json* v = field(body, "logit_bias")) {
    if (!v->is_object()) fail_request("logit_bias", "'logit_bias' must be an object of token id -> bias, got {}", v->type_name());
    for (auto it = v->begin(); it != v->end(); ++it) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(it.key(), &used);
        if (used != it.key().size()) id = -1;
      } catch (const std::exception&) {
      }
      if (id < 0 || id > INT32_MAX) fail_request("logit_bias", "logit_bias keys must be token ids, got '{}'", it.key());
      p.logit_bias.emplace_back(int32_t(id), float(number(it.value(), "logit_bias", -100, 100)));
    }
  }
  if (const json* v = field(body, "stop")) {
    std::vector<std::string> stops;
    if (v->is_string()) {
      stops.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      if (v->size() > 16) fail_request("stop", "'stop' may hold at most 16 strings, got {}", v->size());
      for (const json& s : *v) {
        if (!s.is_string()) fail_request("stop", "'stop' must be a string or an array of strings");
        stops.push_back(s.get<std::string>());
      }
    } else {
      fail_request("stop", "'stop' must be a string or an array of strings, got {}", v->type_name());
    }
    for (const auto& s : stops)
      if (s.empty()) fail_request("stop", "stop strings must not be empty");
    o.stop = std::move(stops);
  }
  try {
    p.validate();
  } catch (const Error& e) {
    fail_request("", "{}", e.what());
  }
}

}  // namespace


json parse_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw ApiError(400, fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) throw ApiError(400, fmt::format("the request body must be a JSON object, got {}", j.type_name()));
  return j;
}

ChatCompletionRequest parse_chat_request(const json& body, const SamplingParams& defaults, int64_t context) {
  ChatCompletionRequest r;
  parse_common(body, defaults, context, r);
  const json* messages = field(body, "messages");
  if (!messages) fail_request("messages", "'messages' is required: an array of {{\"role\", \"content\"}} objects");
  if (!messages->is_array())
    fail_request("messages", "'messages' must be an array of {{\"role\", \"content\"}} objects, got {}",
                 messages->type_name());
  if (messages->empty()) fail_request("messages", "'messages' must not be empty");
  try {
    r.messages = gemma3::parse_messages(*messages);
  } catch (const Error& e) {
    fail_request("messages", "{}", e.what());
  }
  for (auto& m : r.messages)
    if (m.role == "developer") m.role = "system";  // OpenAI's newer name for system messages

  if (const json* v = field(body, "logprobs"); v && boolean(*v, "logprobs")) r.top_logprobs = 0;
  if (const json* v = field(body, "top_logprobs")) {
    const int64_t k = integer(*v, "top_logprobs", 0, 20);
    if (r.top_logprobs < 0) fail_request("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    r.top_logprobs = int(k);
  }
  if (const json* v = field(body, "tools"); v && !(v->is_array() && v->empty()))
    fail_request("tools", "tools (function calling) are not supported by this server");
  if (const json* v = field(body, "response_format")) {
    const json* type = v->is_object() ? field(*v, "type") : nullptr;
    if (!type || *type != "text")
      fail_request("response_format", "only response_format {{\"type\": \"text\"}} is supported");
  }
  return r;
}

CompletionRequest parse_completion_request(const json& body, const SamplingParams& defaults, int64_t context) {
  CompletionRequest r;
  parse_common(body, defaults, context, r);
  const json* prompt = field(body, "prompt");
  if (!prompt) fail_request("prompt", "'prompt' is required: a string");
  const json* p = prompt;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  if (p->is_string()) {
    r.prompt = p->get<std::string>();
    if (r.prompt.empty()) fail_request("prompt", "'prompt' must not be empty");
  } else if (p->is_array() && !p->empty() && std::all_of(p->begin(), p->end(), [](const json& x) { return x.is_number_integer(); })) {
    for (const json& x : *p) r.prompt_ids.push_back(int32_t(integer(x, "prompt", 0, std::numeric_limits<int32_t>::max())));
  } else if (p->is_array() && p->size() > 1) {
    fail_request("prompt", "one prompt per request is supported, got {}", p->size());
  } else {
    fail_request("prompt", "'prompt' must be a string (or an array of token ids), got {}", p->type_name());
  }
  if (const json* v = field(body, "logprobs")) r.top_logprobs = int(integer(*v, "logprobs", 0, 20));
  if (const json* v = field(body, "echo"); v && boolean(*v, "echo"))
    fail_request("echo", "'echo' is not supported by this server");
  if (const json* v = field(body, "suffix"); v && !(v->is_string() && v->get<std::string>().empty()))
    fail_request("suffix", "'suffix' is not supported by this server");
  return r;
}

// --- responses ---------------------------------------------------------------------------

std::string finish_reason_text(FinishReason r) { return r == FinishReason::Length ? "length" : "stop"; }

json usage_json(const RequestUsage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_prompt_tokens}}}};
}

namespace {

// A token as OpenAI shows it: its text, and its UTF-8 bytes. A byte-fallback piece (<0xE2>)
// is one byte of a character that spans tokens: its text is written "bytes:\xe2" as OpenAI
// writes such partial tokens, its bytes are the byte itself.
struct ShownToken {
  std::string text;
  std::vector<int> bytes;
};

ShownToken show_token(const Tokenizer& tok, int32_t id) {
  ShownToken s;
  if (id < 0 || id >= tok.vocab_size()) return {"", {}};
  const int b = tok.byte_value(id);
  if (b >= 0) {
    s.bytes.push_back(b);
    s.text = b < 0x80 ? std::string(1, char(b)) : fmt::format("bytes:\\x{:02x}", b);
    return s;
  }
  s.text = tok.token_text(id);
  for (unsigned char c : s.text) s.bytes.push_back(int(c));
  return s;
}

}  // namespace

json logprobs_json(Endpoint e, const Tokenizer& tok, const std::vector<TokenLogprob>& lps, size_t text_offset) {
  if (e == Endpoint::Chat) {
    json content = json::array();
    for (const TokenLogprob& lp : lps) {
      const ShownToken t = show_token(tok, lp.token);
      json top = json::array();
      for (const auto& [id, l] : lp.top) {
        const ShownToken s = show_token(tok, id);
        top.push_back({{"token", s.text}, {"logprob", l}, {"bytes", s.bytes}});
      }
      content.push_back({{"token", t.text}, {"logprob", lp.logprob}, {"bytes", t.bytes}, {"top_logprobs", top}});
    }
    return {{"content", content}, {"refusal", nullptr}};
  }
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(), offsets = json::array();
  size_t at = text_offset;
  for (const TokenLogprob& lp : lps) {
    const ShownToken t = show_token(tok, lp.token);
    tokens.push_back(t.text);
    token_logprobs.push_back(lp.logprob);
    json alternatives = json::object();
    for (const auto& [id, l] : lp.top) alternatives[show_token(tok, id).text] = l;
    top.push_back(alternatives);
    offsets.push_back(at);
    at += t.bytes.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

json completion_json(const ResponseMeta& m, const std::string& text, FinishReason finish, const RequestUsage& usage,
                     const std::vector<TokenLogprob>* lps, const Tokenizer& tok) {
  const bool chat = m.endpoint == Endpoint::Chat;
  json choice = {{"index", 0}, {"finish_reason", finish_reason_text(finish)}, {"logprobs", nullptr}};
  if (chat)
    choice["message"] = {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}};
  else
    choice["text"] = text;
  if (lps) choice["logprobs"] = logprobs_json(m.endpoint, tok, *lps);
  return {{"id", m.id},
          {"object", chat ? "chat.completion" : "text_completion"},
          {"created", m.created},
          {"model", m.model},
          {"choices", json::array({choice})},
          {"usage", usage_json(usage)}};
}

json chunk_json(const ResponseMeta& m, bool role, const std::string& text, const json* logprobs,
                std::optional<FinishReason> finish) {
  const bool chat = m.endpoint == Endpoint::Chat;
  json choice = {{"index", 0}, {"logprobs", logprobs ? *logprobs : json(nullptr)}};
  choice["finish_reason"] = finish ? json(finish_reason_text(*finish)) : json(nullptr);
  if (chat) {
    json delta = json::object();
    if (role) delta = {{"role", "assistant"}, {"content", ""}};
    else if (!finish) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  return {{"id", m.id},
          {"object", chat ? "chat.completion.chunk" : "text_completion"},
          {"created", m.created},
          {"model", m.model},
          {"choices", json::array({choice})}};
}

json usage_chunk_json(const ResponseMeta& m, const RequestUsage& usage) {
  return {{"id", m.id},
          {"object", m.endpoint == Endpoint::Chat ? "chat.completion.chunk" : "text_completion"},
          {"created", m.created},
          {"model", m.model},
          {"choices", json::array()},
          {"usage", usage_json(usage)}};
}

}  // namespace unicorn::server
