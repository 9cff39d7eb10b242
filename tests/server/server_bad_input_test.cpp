// Bad input to `unicorn serve`: every case answered with a 4xx OpenAI error object (never a
// crash, a hang or a 500) while the server keeps serving; and clients that hang up mid-answer
// give their slot back at once. One server (--parallel 1, so a slot left behind would block
// the next request) serves the whole suite.
#include <gtest/gtest.h>
#include <httplib.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "formats/mapped_file.h"
#include "support/png_io.h"
#include "support/server_process.h"
#include "support/server_test_client.h"
#include "support/test_paths.h"

namespace unicorn {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::HttpReply;

constexpr const char* kHelloAnswer = "Hello! Show me a picture of a shape and ask me about it.";
constexpr size_t kMaxBody = 1 << 20;

std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

// A PNG whose IHDR declares 100000 x 100000 with a valid CRC: a decoder that trusts the
// header would ask for 30 GB.
std::string png_bomb() {
  std::string png = test::encode_png(test::raw_png(2, 2, 8, 2, std::vector<uint8_t>(12, 7)));
  png.replace(16, 8, be32(100000) + be32(100000));
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(png.data() + 12), 17);  // chunk type + 13 data bytes
  png.replace(29, 4, be32(uint32_t(crc)));
  return png;
}

class ServerBadInputSlow : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    images_ = test::scratch_dir("server-images");
    outside_ = test::scratch_dir("server-outside");
    fs::copy_file(test::repo_path("examples/blue_triangle.png"), images_ + "/triangle.png");
    fs::create_directories(images_ + "/sub");
    fs::copy_file(test::repo_path("examples/red_circle.jpg"), images_ + "/sub/circle.jpg");
    fs::copy_file(test::repo_path("examples/blue_triangle.png"), outside_ + "/secret.png");
    fs::create_symlink(outside_ + "/secret.png", images_ + "/link-out.png");
    fs::create_symlink(images_ + "/triangle.png", images_ + "/link-in.png");
    server_ = new test::ServerProcess({"--parallel", "1", "--max-body-bytes", std::to_string(kMaxBody),
                                       "--allow-local-images", images_});
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->stop(), 0) << server_->log();
    delete server_;
    server_ = nullptr;
  }
  void TearDown() override {
    // Whatever the test sent, the server still answers.
    const HttpReply r = test::chat(port(), test::user_says("Hello!"));
    EXPECT_EQ(r.status, 200) << r.body << "\n" << server_->log();
    EXPECT_EQ(r.json["choices"][0]["message"]["content"], kHelloAnswer);
  }

  static int port() { return server_->port(); }

  // Expects a 4xx with an OpenAI error object; returns its message.
  static std::string expect_error(const HttpReply& r, int status, const std::string& param = {}) {
    EXPECT_EQ(r.status, status) << r.body;
    if (!r.json.is_object() || !r.json.contains("error")) {
      ADD_FAILURE() << "not an OpenAI error object: " << r.body;
      return {};
    }
    const json& e = r.json["error"];
    EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty()) << r.body;
    EXPECT_EQ(e["type"], status >= 500 ? "server_error" : "invalid_request_error") << r.body;
    EXPECT_TRUE(e.contains("param") && e.contains("code")) << r.body;
    if (!param.empty()) {
      EXPECT_EQ(e["param"], param) << r.body;
    }
    return e["message"].is_string() ? e["message"].get<std::string>() : std::string();
  }
  static std::string chat_error(const json& messages, const json& extra, int status, const std::string& param = {}) {
    return expect_error(test::chat(port(), messages, extra), status, param);
  }

  static test::ServerProcess* server_;
  static std::string images_, outside_;
};
test::ServerProcess* ServerBadInputSlow::server_ = nullptr;
std::string ServerBadInputSlow::images_, ServerBadInputSlow::outside_;

TEST_F(ServerBadInputSlow, MalformedJson) {
  for (const char* body : {"", "{", "{\"messages\": [", "not json", "{\"a\": 1,}", "[1, 2]", "\"text\"", "null"})
    expect_error(test::post(port(), "/v1/chat/completions", body), 400);
  EXPECT_NE(expect_error(test::post(port(), "/v1/chat/completions", "{"), 400).find("not valid JSON"),
            std::string::npos);
  expect_error(test::post(port(), "/v1/completions", "{\"prompt\": "), 400);
}

TEST_F(ServerBadInputSlow, InvalidUtf8InTheBody) {
  const std::string body = "{\"model\": \"demo\", \"messages\": [{\"role\": \"user\", \"content\": \"caf\xc3\x28 \xff\"}]}";
  const HttpReply r = test::post(port(), "/v1/chat/completions", body);
  expect_error(r, 400);
  // The error body itself is valid JSON (the bad bytes replaced).
  EXPECT_FALSE(r.json.is_null()) << r.body;
}

TEST_F(ServerBadInputSlow, WrongFieldTypesAndRanges) {
  const json hello = test::user_says("Hello!");
  expect_error(test::post(port(), "/v1/chat/completions", R"({"messages": "Hello!"})"), 400, "messages");
  expect_error(test::post(port(), "/v1/chat/completions", R"({"model": "demo"})"), 400, "messages");
  chat_error(hello, {{"temperature", "hot"}}, 400, "temperature");
  chat_error(hello, {{"temperature", 7}}, 400, "temperature");
  chat_error(hello, {{"max_tokens", -1}}, 400, "max_tokens");
  chat_error(hello, {{"max_tokens", 2.5}}, 400, "max_tokens");
  chat_error(hello, {{"max_completion_tokens", "ten"}}, 400, "max_completion_tokens");
  chat_error(hello, {{"top_p", 0}}, 400, "top_p");
  chat_error(hello, {{"seed", "x"}}, 400, "seed");
  chat_error(hello, {{"stop", 5}}, 400, "stop");
  chat_error(hello, {{"stop", json::array({"a", 1})}}, 400, "stop");
  chat_error(hello, {{"stream", "yes"}}, 400, "stream");
  chat_error(hello, {{"n", 2}}, 400, "n");
  chat_error(hello, {{"top_logprobs", 3}}, 400, "top_logprobs");  // without logprobs: true
  chat_error(hello, {{"logprobs", true}, {"top_logprobs", 50}}, 400, "top_logprobs");
  chat_error(hello, {{"presence_penalty", 3}}, 400, "presence_penalty");
  chat_error(hello, {{"model", 5}}, 400, "model");
  chat_error(hello, {{"tools", json::array({{{"type", "function"}}})}}, 400, "tools");
  expect_error(test::post(port(), "/v1/completions", R"({"prompt": 5})"), 400, "prompt");
  expect_error(test::post(port(), "/v1/completions", R"({"prompt": ["a", "b"]})"), 400, "prompt");
  expect_error(test::post(port(), "/v1/completions", R"({"prompt": [1, 999999999]})"), 400, "prompt");
}

TEST_F(ServerBadInputSlow, MessagesAndRoles) {
  chat_error(json::array(), {}, 400, "messages");
  EXPECT_NE(chat_error(json::array({{{"role", "wizard"}, {"content", "hi"}}}), {}, 400).find("wizard"),
            std::string::npos);
  const json twice = json::array({{{"role", "user"}, {"content", "Hello!"}}, {{"role", "user"}, {"content", "Again"}}});
  EXPECT_NE(chat_error(twice, {}, 400).find("alternate"), std::string::npos);
  const json late_system = json::array({{{"role", "user"}, {"content", "Hello!"}},
                                        {{"role", "assistant"}, {"content", "Hi"}},
                                        {{"role", "system"}, {"content", "Be brief"}}});
  chat_error(late_system, {}, 400);
  chat_error(json::array({{{"role", "user"}, {"content", 5}}}), {}, 400, "messages");
  chat_error(json::array({{{"role", "user"}}}), {}, 400, "messages");
  chat_error(json::array({"Hello!"}), {}, 400, "messages");
  chat_error(json::array({{{"role", "user"}, {"content", json::array({{{"type", "audio"}}})}}}), {}, 400, "messages");
  chat_error(json::array({{{"role", "assistant"}, {"content", "I start"}}}), {}, 400);
  // "<start_of_image>" typed as text is not an image.
  chat_error(test::user_says("look: <start_of_image>"), {}, 400);
}

TEST_F(ServerBadInputSlow, BodyOverTheLimit) {
  json body = {{"model", "demo"}, {"messages", test::user_says(std::string(kMaxBody + 1000, 'a'))}};
  const HttpReply r = test::post(port(), "/v1/chat/completions", body.dump());
  EXPECT_NE(expect_error(r, 413).find("--max-body-bytes"), std::string::npos) << r.body;
}

TEST_F(ServerBadInputSlow, BadImages) {
  const std::string triangle = read_file(test::repo_path("examples/blue_triangle.png"));
  auto image_error = [&](const std::string& url) {
    return chat_error(json::array({test::image_message(url, "What do you see?")}), {}, 400,
                      "messages[0].content[0]");
  };
  EXPECT_NE(image_error("data:image/png;base64,@@@@not*base64").find("base64"), std::string::npos);
  std::string cut = test::data_uri(triangle);
  EXPECT_NE(image_error(cut.substr(0, cut.size() - 3) + "=A").find("base64"), std::string::npos);
  EXPECT_NE(image_error(test::data_uri("Just some text, not a picture.")).find("PNG, JPEG or WebP"), std::string::npos);
  EXPECT_NE(image_error(test::data_uri(triangle.substr(0, triangle.size() / 2))).find("PNG"), std::string::npos);
  EXPECT_NE(image_error(test::data_uri(triangle, "image/gif")).find("image/gif"), std::string::npos);
  image_error("data:image/png,rawbytes");
  image_error("data:image/png;base64");
  EXPECT_NE(image_error("https://example.com/cat.png").find("remote image URLs are not fetched"), std::string::npos);
  image_error("http://127.0.0.1:1/cat.png");
  image_error("ftp://example.com/cat.png");
  image_error("");
  // The image bomb: refused from its header, fast, without allocating 30 GB.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(image_error(test::data_uri(png_bomb())).find("100000 x 100000"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
}

TEST_F(ServerBadInputSlow, LocalImageFiles) {
  auto ask = [&](const std::string& url) {
    return test::chat(port(), json::array({test::image_message(url, "What do you see?")}));
  };
  // Inside the directory: as file:// URL, absolute path, relative path, symlink inside.
  for (const std::string& url : {"file://" + images_ + "/triangle.png", images_ + "/triangle.png",
                                 std::string("triangle.png"), std::string("link-in.png")}) {
    const HttpReply r = ask(url);
    EXPECT_EQ(r.status, 200) << url << ": " << r.body;
    EXPECT_EQ(r.json["choices"][0]["message"]["content"], "A blue triangle in the top right.") << url;
  }
  EXPECT_EQ(ask("sub/circle.jpg").json["choices"][0]["message"]["content"], "A red circle in the bottom left.");
  // Out of it: "..", a symlink pointing out, an absolute path elsewhere, a directory.
  for (const std::string& url :
       {std::string("../server-outside/secret.png"), "file://" + images_ + "/../server-outside/secret.png",
        std::string("link-out.png"), outside_ + "/secret.png", std::string("/etc/passwd")}) {
    const HttpReply r = ask(url);
    EXPECT_EQ(r.status, 400) << url;
    EXPECT_NE(expect_error(r, 400).find("outside the allowed directory"), std::string::npos) << url << ": " << r.body;
  }
  expect_error(ask("missing.png"), 400);
  expect_error(ask("sub"), 400);
  expect_error(ask("file://remote-host/x.png"), 400);
}

TEST_F(ServerBadInputSlow, PromptOverTheContext) {
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "shape ";
  const HttpReply r = test::chat(port(), test::user_says(text));
  const std::string msg = expect_error(r, 400, "messages");
  EXPECT_EQ(r.json["error"]["code"], "context_length_exceeded");
  EXPECT_NE(msg.find("the context holds 4096 tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the prompt has 50"), std::string::npos) << msg;  // 5000 words + the template
  const HttpReply c = test::post(port(), "/v1/completions", json({{"prompt", text}}).dump());
  EXPECT_EQ(expect_error(c, 400, "prompt").find("context holds") != std::string::npos, true);
}

TEST_F(ServerBadInputSlow, UnknownRoutesAndMethods) {
  const HttpReply r = test::get(port(), "/v1/engines");
  EXPECT_NE(expect_error(r, 404).find("/v1/engines"), std::string::npos);
  expect_error(test::post(port(), "/nope", "{}"), 404);
  const HttpReply m = test::get(port(), "/v1/chat/completions");
  EXPECT_NE(expect_error(m, 405).find("POST"), std::string::npos);
  expect_error(test::post(port(), "/health", "{}"), 405);
  expect_error(test::get(port(), "/v1/models/other-model"), 404, "model");
}

// A long generation on the only slot: logit_bias bans both end-of-turn ids, so the demo
// model goes on to the end of the context (4096 tokens, far longer than any test waits).
json rambling(bool stream) {
  return {{"model", "demo"},   {"messages", test::user_says("Hello!")},
          {"temperature", 1.0}, {"seed", 4},
          {"max_tokens", 100000}, {"logit_bias", {{"1", -100}, {"106", -100}}},
          {"stream", stream}};
}

const std::string kCancelled = "unicorn_generations_total{outcome=\"cancelled\"}";

double cancelled_so_far(int port) { return std::max(0.0, test::metric_value(test::get(port, "/metrics").body, kCancelled)); }

// After a client hung up, its request must be cancelled (not left to finish) and its slot come
// free at once: /metrics shows nothing active, and the next request (which needs the only
// slot) is answered promptly.
void expect_slot_freed(int port, double cancelled_before) {
  const auto t0 = std::chrono::steady_clock::now();
  double active = -1, cancelled = -1;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    const std::string m = test::get(port, "/metrics").body;
    active = test::metric_value(m, "unicorn_active_requests");
    cancelled = test::metric_value(m, kCancelled);
    if (active == 0 && cancelled == cancelled_before + 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(active, 0);
  EXPECT_EQ(cancelled, cancelled_before + 1) << "the generation was not cancelled";
  const HttpReply r = test::chat(port, test::user_says("Hello!"));
  EXPECT_EQ(r.json["choices"][0]["message"]["content"], kHelloAnswer) << r.body;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 3.0);
}

TEST_F(ServerBadInputSlow, ClientHangsUpMidStream) {
  const double before = cancelled_so_far(port());
  const std::string got = test::post_and_hang_up(port(), "/v1/chat/completions", rambling(true).dump(),
                                                 "\"content\":", 30000);
  ASSERT_NE(got.find("\"content\":"), std::string::npos) << got;  // the answer was streaming
  expect_slot_freed(port(), before);
}

TEST_F(ServerBadInputSlow, ClientHangsUpWaitingForAWholeAnswer) {
  const double before = cancelled_so_far(port());
  const auto t0 = std::chrono::steady_clock::now();
  // Nothing comes back before the end: hang up after half a second.
  const std::string got = test::post_and_hang_up(port(), "/v1/chat/completions", rambling(false).dump(),
                                                 "never-in-the-answer", 500);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(got, "");
  expect_slot_freed(port(), before);
  // The server counted it as a closed request, not as an error (once it gave up writing).
  std::string metrics;
  for (int i = 0; i < 100 && metrics.find("code=\"499\"") == std::string::npos; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    metrics = test::get(port(), "/metrics").body;
  }
  EXPECT_NE(metrics.find("code=\"499\""), std::string::npos) << metrics;
}

}  // namespace
}  // namespace unicorn
