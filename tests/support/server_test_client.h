// Small HTTP client helpers for the server tests: JSON requests with httplib, and a raw
// socket client that sends a request, reads until some text arrives and hangs up, as a
// client that goes away mid-answer does.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace unicorn::test {

struct HttpReply {
  int status = 0;       // 0: no response (connection failed)
  std::string body;
  nlohmann::json json;  // the body parsed, or null when it is not JSON
  double seconds = 0;   // time to the whole response
};

HttpReply post(int port, const std::string& path, const std::string& body, const std::string& api_key = {});
HttpReply get(int port, const std::string& path, const std::string& api_key = {});
// POST /v1/chat/completions with {"messages": messages} plus the fields of `extra`.
HttpReply chat(int port, const nlohmann::json& messages, const nlohmann::json& extra = nlohmann::json::object(),
               const std::string& api_key = {});
// [{"role": "user", "content": text}]
nlohmann::json user_says(const std::string& text);
// One user message of an image (data: URI or other URL) and a question.
nlohmann::json image_message(const std::string& url, const std::string& question);
// data:<type>;base64,<bytes>
std::string data_uri(const std::string& bytes, const std::string& type = "image/png");

// Sends POST `path` with `body` on a fresh connection, reads until `until` appears in what
// came back (or `timeout_ms` passes), then closes the socket. Returns what was read.
std::string post_and_hang_up(int port, const std::string& path, const std::string& body, const std::string& until,
                             int timeout_ms);

// The value of an unlabelled metric in GET /metrics text, or -1.
double metric_value(const std::string& metrics_text, const std::string& name);

}  // namespace unicorn::test
