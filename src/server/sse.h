// Server-sent events as OpenAI streams them: each chunk one "data: <json>" event, then
// "data: [DONE]". Only the framing lives here; what the chunks hold is openai_schema.h.
// ref: https://html.spec.whatwg.org/multipage/server-sent-events.html
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace unicorn::server {

// "data: <json>\n\n" (the JSON has no raw newlines, so one data line is enough).
std::string sse_event(const nlohmann::json& data);
// "data: [DONE]\n\n": OpenAI's end of stream.
std::string_view sse_done();

}  // namespace unicorn::server
