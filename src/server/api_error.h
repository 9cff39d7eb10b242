// A request the server refuses: an Error that also carries the HTTP status and the fields of
// OpenAI's error object ({"error": {"message", "type", "param", "code"}}), so clients that
// branch on them (the OpenAI SDKs map status codes to exception classes) see what they would
// see from OpenAI.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "core/error.h"

namespace unicorn::server {

class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string param = {}, std::string code = {})
      : Error(std::move(message)), status_(status), param_(std::move(param)), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }  // the request field at fault, or empty
  const std::string& code() const { return code_; }    // e.g. "context_length_exceeded", or empty

 private:
  int status_;
  std::string param_, code_;
};

// Throws a 400 invalid_request_error naming the request field `param`.
template <class... Args>
[[noreturn]] void fail_request(std::string param, fmt::format_string<Args...> format, Args&&... args) {
  throw ApiError(400, fmt::format(format, std::forward<Args>(args)...), std::move(param));
}

// OpenAI's error type for a status: "invalid_request_error" for 4xx (OpenAI uses it for 401
// and 404 too, with a code), "server_error" for 5xx.
std::string_view error_type(int status);

// {"error": {"message", "type", "param" (null when empty), "code" (null when empty)}}.
nlohmann::json error_body(int status, std::string_view message, std::string_view param = {},
                          std::string_view code = {});

// JSON text for a response body. Never throws on strings that are not valid UTF-8 (a parse
// error message may quote the bad bytes): they are replaced with U+FFFD.
std::string json_text(const nlohmann::json& value);

}  // namespace unicorn::server
