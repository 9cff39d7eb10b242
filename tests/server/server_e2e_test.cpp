// `unicorn serve` end to end, as a separate process on a free loopback port: a smoke test
// (also run in the sanitizer build), the OpenAI Node SDK suite, the web page in headless
// Chromium, API key mode, and bad input of every kind, each answered with a 4xx OpenAI error
// while the server keeps serving. The suites named *Slow* run in the Release pass only.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "formats/mapped_file.h"
#include "support/server_process.h"
#include "support/server_test_client.h"
#include "support/test_paths.h"

namespace unicorn {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::ServerProcess;

constexpr const char* kHelloAnswer = "Hello! Show me a picture of a shape and ask me about it.";

TEST(ServerSmoke, AnswersAndStopsCleanly) {
  ServerProcess server({"--parallel", "2", "--ctx", "1024"});
  httplib::Client cli("127.0.0.1", server.port());
  auto health = cli.Get("/health");
  ASSERT_TRUE(health) << server.log();
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json::parse(health->body), json({{"status", "ok"}}));
  auto models = cli.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "demo");

  const auto r = test::chat(server.port(), test::user_says("Hello!"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json["choices"][0]["message"]["content"], kHelloAnswer);
  EXPECT_EQ(r.json["choices"][0]["finish_reason"], "stop");

  const auto bad = test::post(server.port(), "/v1/chat/completions", "{\"messages\": [");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.json["error"]["type"], "invalid_request_error") << bad.body;

  auto page = cli.Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("/v1/chat/completions"), std::string::npos);
  // A request is counted once its response is written, a moment after the client has it.
  const std::string ok_line = "unicorn_requests_total{endpoint=\"/v1/chat/completions\",code=\"200\"} 1";
  const std::string bad_line = "unicorn_requests_total{endpoint=\"/v1/chat/completions\",code=\"400\"} 1";
  std::string metrics;
  for (int i = 0; i < 100; ++i) {
    metrics = test::get(server.port(), "/metrics").body;
    if (metrics.find(ok_line) != std::string::npos && metrics.find(bad_line) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(metrics.find(ok_line), std::string::npos) << metrics;
  EXPECT_NE(metrics.find(bad_line), std::string::npos) << metrics;

  EXPECT_EQ(server.stop(), 0) << server.log();
  EXPECT_NE(server.log().find("stopped"), std::string::npos) << server.log();
}

TEST(ServerSlow, OpenAiNodeSdk) {
  ServerProcess server({"--parallel", "4"});
  const auto r = test::run_node("--test tests/server/openai_sdk.mjs", server.base_url());
  EXPECT_EQ(r.status, 0) << r.output << "\nserver log:\n" << server.log();
  EXPECT_EQ(server.stop(), 0) << server.log();
}

TEST(ServerSlow, WebPageInHeadlessChromium) {
  if (!fs::exists("/usr/bin/chromium")) GTEST_SKIP() << "no /usr/bin/chromium (scripts/install-deps.sh installs it)";
  ServerProcess server({"--parallel", "2"});
  const auto r = test::run_node("--test tests/server/web_page.mjs", server.base_url());
  EXPECT_EQ(r.status, 0) << r.output << "\nserver log:\n" << server.log();
  EXPECT_EQ(server.stop(), 0) << server.log();
}

TEST(ServerSlow, ApiKeyRequired) {
  const std::string dir = test::scratch_dir("server-api-key");
  test::write_bytes(dir + "/key", "sk-unicorn-test-key\n");
  ServerProcess server({"--api-key-file", dir + "/key"});
  // Without a key, with a wrong one, with the right one.
  auto none = test::chat(server.port(), test::user_says("Hello!"));
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.json["error"]["code"], "invalid_api_key") << none.body;
  auto wrong = test::chat(server.port(), test::user_says("Hello!"), {}, "sk-wrong");
  EXPECT_EQ(wrong.status, 401);
  auto right = test::chat(server.port(), test::user_says("Hello!"), {}, "sk-unicorn-test-key");
  EXPECT_EQ(right.status, 200) << right.body;
  httplib::Client cli("127.0.0.1", server.port());
  EXPECT_EQ(cli.Get("/metrics")->status, 401);
  EXPECT_EQ(cli.Get("/v1/models")->status, 401);
  EXPECT_EQ(cli.Get("/health")->status, 200);  // open: for load balancers
  auto page = cli.Get("/");
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("const API_KEY_REQUIRED = true;"), std::string::npos);

  const auto r = test::run_node("--test tests/server/api_key.mjs", server.base_url(),
                                {"UNICORN_API_KEY=sk-unicorn-test-key"});
  EXPECT_EQ(r.status, 0) << r.output << "\nserver log:\n" << server.log();
  EXPECT_EQ(server.stop(), 0) << server.log();
}

}  // namespace
}  // namespace unicorn
