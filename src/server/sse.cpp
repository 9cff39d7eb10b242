#include "server/sse.h"

#include <nlohmann/json.hpp>

#include "server/api_error.h"

namespace unicorn::server {

std::string sse_event(const nlohmann::json& data) { return "data: " + json_text(data) + "\n\n"; }

std::string_view sse_done() { return "data: [DONE]\n\n"; }

}  // namespace unicorn::server
