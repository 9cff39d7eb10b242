// The OpenAI request fields and response layouts: what each field becomes, the 400 (with
// the field named) for wrong types and ranges, and chunks, usage and logprobs as OpenAI
// writes them.
#include "server/openai_schema.h"

#include <gtest/gtest.h>

#include "server/api_error.h"

namespace unicorn::server {
namespace {

using json = nlohmann::json;

const json kHello = json::array({{{"role", "user"}, {"content", "Hello!"}}});

ChatCompletionRequest chat(json extra) {
  extra["messages"] = kHello;
  SamplingParams greedy;
  greedy.temperature = 0;
  return parse_chat_request(extra, greedy, 4096);
}

std::string param_of_error(json extra, const char* endpoint = "chat") {
  try {
    if (std::string(endpoint) == "chat") {
      if (!extra.contains("messages")) extra["messages"] = kHello;
      parse_chat_request(extra, {}, 4096);
    } else {
      parse_completion_request(extra, {}, 4096);
    }
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    return e.param().empty() ? "(none)" : e.param();
  }
  return "no error";
}

TEST(OpenAiSchema, ChatFields) {
  const ChatCompletionRequest d = chat(json::object());
  EXPECT_EQ(d.options.sampling.temperature, 0.0f);  // the defaults given
  EXPECT_EQ(d.options.max_tokens, 4096);             // until the context is full
  EXPECT_FALSE(d.stream);
  EXPECT_EQ(d.top_logprobs, -1);
  ASSERT_EQ(d.messages.size(), 1u);
  EXPECT_EQ(d.messages[0].parts[0].text, "Hello!");

  const ChatCompletionRequest r = chat({{"model", "demo"}, {"temperature", 0.7}, {"top_p", 0.9}, {"seed", 7},
                                        {"max_tokens", 10}, {"max_completion_tokens", 20}, {"stop", "\n"},
                                        {"presence_penalty", 1}, {"frequency_penalty", -1}, {"stream", true},
                                        {"stream_options", {{"include_usage", true}}}, {"logprobs", true},
                                        {"top_logprobs", 4}, {"n", 1}, {"top_k", 5}, {"user", "ignored"}});
  EXPECT_EQ(r.model, "demo");
  EXPECT_FLOAT_EQ(r.options.sampling.temperature, 0.7f);
  EXPECT_FLOAT_EQ(r.options.sampling.top_p, 0.9f);
  EXPECT_EQ(r.options.sampling.seed, 7u);
  EXPECT_EQ(r.options.max_tokens, 20);  // max_completion_tokens wins
  EXPECT_EQ(r.options.stop, std::vector<std::string>{"\n"});
  EXPECT_FLOAT_EQ(r.options.sampling.presence_penalty, 1.0f);
  EXPECT_FLOAT_EQ(r.options.sampling.frequency_penalty, -1.0f);
  EXPECT_TRUE(r.stream && r.include_usage);
  EXPECT_EQ(r.top_logprobs, 4);
  EXPECT_EQ(r.options.sampling.top_k, 5);
  EXPECT_EQ(chat({{"logprobs", true}}).top_logprobs, 0);
  EXPECT_EQ(chat({{"logprobs", false}}).top_logprobs, -1);
  EXPECT_EQ(chat({{"temperature", nullptr}, {"max_tokens", 5.0}}).options.max_tokens, 5);  // null: absent
  json dev = {{"messages", json::array({{{"role", "developer"}, {"content", "Be brief."}}, kHello[0]})}};
  EXPECT_EQ(parse_chat_request(dev, {}, 100).messages[0].role, "system");
}

TEST(OpenAiSchema, ChatFieldErrorsNameTheField) {
  EXPECT_EQ(param_of_error({{"messages", "Hello"}}), "messages");
  EXPECT_EQ(param_of_error({{"messages", json::array()}}), "messages");
  EXPECT_EQ(param_of_error({{"messages", json::array({{{"role", "user"}, {"content", 1}}})}}), "messages");
  EXPECT_EQ(param_of_error({{"temperature", "warm"}}), "temperature");
  EXPECT_EQ(param_of_error({{"temperature", -0.1}}), "temperature");
  EXPECT_EQ(param_of_error({{"max_tokens", -3}}), "max_tokens");
  EXPECT_EQ(param_of_error({{"max_tokens", true}}), "max_tokens");
  EXPECT_EQ(param_of_error({{"max_tokens", 1.5}}), "max_tokens");
  EXPECT_EQ(param_of_error({{"max_tokens", 18446744073709551615ull}}), "max_tokens");
  EXPECT_EQ(param_of_error({{"n", 2}}), "n");
  EXPECT_EQ(param_of_error({{"stop", json::array({""})}}), "stop");
  EXPECT_EQ(param_of_error({{"stop", json::array({1})}}), "stop");
  EXPECT_EQ(param_of_error({{"stream_options", true}}), "stream_options");
  EXPECT_EQ(param_of_error({{"top_logprobs", 2}}), "top_logprobs");
  EXPECT_EQ(param_of_error({{"logprobs", "yes"}}), "logprobs");
  EXPECT_EQ(param_of_error({{"response_format", {{"type", "json_object"}}}}), "response_format");
  EXPECT_EQ(param_of_error({{"frequency_penalty", 2.5}}), "frequency_penalty");
  EXPECT_EQ(param_of_error({{"seed", 1.5}}), "seed");
  EXPECT_EQ(param_of_error({{"logit_bias", json::array()}}), "logit_bias");
  EXPECT_EQ(param_of_error({{"logit_bias", {{"hello", 1}}}}), "logit_bias");
  EXPECT_EQ(param_of_error({{"logit_bias", {{"106", 101}}}}), "logit_bias");
  EXPECT_EQ(param_of_error({{"logit_bias", {{"-5", 1}}}}), "logit_bias");
}

TEST(OpenAiSchema, LogitBias) {
  const ChatCompletionRequest r = chat({{"logit_bias", {{"106", -100}, {"1", 5.5}}}});
  auto bias = r.options.sampling.logit_bias;
  std::sort(bias.begin(), bias.end());
  ASSERT_EQ(bias.size(), 2u);
  EXPECT_EQ(bias[0], (std::pair<int32_t, float>{1, 5.5f}));
  EXPECT_EQ(bias[1], (std::pair<int32_t, float>{106, -100.0f}));
}

TEST(OpenAiSchema, CompletionFields) {
  const CompletionRequest r = parse_completion_request({{"prompt", "Once"}, {"logprobs", 2}, {"max_tokens", 3}}, {}, 64);
  EXPECT_EQ(r.prompt, "Once");
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_EQ(r.options.max_tokens, 3);
  EXPECT_EQ(parse_completion_request({{"prompt", json::array({"One"})}}, {}, 64).prompt, "One");
  EXPECT_EQ(parse_completion_request({{"prompt", json::array({2, 9})}}, {}, 64).prompt_ids, (std::vector<int32_t>{2, 9}));
  EXPECT_EQ(parse_completion_request({{"prompt", json::array({json::array({2, 9})})}}, {}, 64).prompt_ids.size(), 2u);
  EXPECT_EQ(param_of_error(json::object(), "text"), "prompt");
  EXPECT_EQ(param_of_error({{"prompt", ""}}, "text"), "prompt");
  EXPECT_EQ(param_of_error({{"prompt", json::array({"a", "b"})}}, "text"), "prompt");
  EXPECT_EQ(param_of_error({{"prompt", json::array({-1})}}, "text"), "prompt");
  EXPECT_EQ(param_of_error({{"prompt", "x"}, {"echo", true}}, "text"), "echo");
  EXPECT_EQ(param_of_error({{"prompt", "x"}, {"logprobs", 30}}, "text"), "logprobs");
}

TEST(OpenAiSchema, BodyParsing) {
  EXPECT_TRUE(parse_body(R"({"a": 1})").is_object());
  for (const char* bad : {"", "{", "[1]", "1", "{\"a\": \"\xff\"}"}) {
    try {
      parse_body(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400);
      EXPECT_FALSE(json_text(error_body(400, e.what())).empty());  // printable even with bad bytes quoted
    }
  }
}

TEST(OpenAiSchema, DefaultSamplingFollowsGenerationConfig) {
  gemma3::GenerationConfig g;
  EXPECT_EQ(sampling_defaults(g).temperature, 0.0f);  // no config: greedy
  g.do_sample = true;
  g.temperature = 0.8;
  g.top_k = 64;
  g.top_p = 0.95;
  const SamplingParams p = sampling_defaults(g);
  EXPECT_FLOAT_EQ(p.temperature, 0.8f);
  EXPECT_EQ(p.top_k, 64);
  EXPECT_FLOAT_EQ(p.top_p, 0.95f);
}

TEST(OpenAiSchema, ResponseLayouts) {
  ResponseMeta m{Endpoint::Chat, "chatcmpl-1", 1700000000, "demo"};
  RequestUsage u;
  u.prompt_tokens = 10;
  u.cached_prompt_tokens = 4;
  u.completion_tokens = 3;
  const json usage = usage_json(u);
  EXPECT_EQ(usage["total_tokens"], 13);
  EXPECT_EQ(usage["prompt_tokens_details"]["cached_tokens"], 4);

  const json role = chunk_json(m, true, "", nullptr, std::nullopt);
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(role["choices"][0]["finish_reason"].is_null());
  const json piece = chunk_json(m, false, "Hi", nullptr, std::nullopt);
  EXPECT_EQ(piece["choices"][0]["delta"], json({{"content", "Hi"}}));
  const json end = chunk_json(m, false, "", nullptr, FinishReason::Length);
  EXPECT_EQ(end["choices"][0]["delta"], json::object());
  EXPECT_EQ(end["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(usage_chunk_json(m, u)["choices"], json::array());
  EXPECT_EQ(finish_reason_text(FinishReason::Cancelled), "stop");

  ResponseMeta t{Endpoint::Text, "cmpl-1", 1, "demo"};
  const json tc = chunk_json(t, false, "abc", nullptr, std::nullopt);
  EXPECT_EQ(tc["object"], "text_completion");
  EXPECT_EQ(tc["choices"][0]["text"], "abc");
  EXPECT_EQ(error_body(404, "gone", {}, "unknown_url")["error"],
            json({{"message", "gone"}, {"type", "invalid_request_error"}, {"param", nullptr}, {"code", "unknown_url"}}));
  EXPECT_EQ(error_body(500, "boom")["error"]["type"], "server_error");
}

}  // namespace
}  // namespace unicorn::server
