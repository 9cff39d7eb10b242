#include "server/api_error.h"

#include <nlohmann/json.hpp>

namespace unicorn::server {

std::string_view error_type(int status) { return status >= 500 ? "server_error" : "invalid_request_error"; }

nlohmann::json error_body(int status, std::string_view message, std::string_view param, std::string_view code) {
  nlohmann::json e = {{"message", message}, {"type", error_type(status)}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return {{"error", std::move(e)}};
}

std::string json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace unicorn::server
