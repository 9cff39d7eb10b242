// Continuous batching: concurrent requests give the answers they give alone, a request that
// extends a finished one reuses its cache, cancellation frees the slot, images are encoded
// once, logprobs are a distribution.
#include "runtime/scheduler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>

#include "core/error.h"
#include "models/gemma3/chat_format.h"
#include "support/test_paths.h"
#include "vision/decode.h"
#include "vision/preprocess.h"

namespace unicorn {
namespace {

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EngineOptions o;
    o.threads = 2;
    o.context = 1024;
    engine_ = Engine::load(test::repo_path("models/demo"), o).release();
  }
  static void TearDownTestSuite() {
    delete engine_;
    engine_ = nullptr;
  }

  RequestImage image(const std::string& rel) {
    const std::string bytes = read_file(test::repo_path(rel));
    vision::PreprocessOptions po;
    po.image_size = engine_->config().vision->image_size;
    RequestImage im;
    const auto span = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    im.hash = content_hash(span);
    im.pixel_values = vision::preprocess_image(span, po).pixel_values;
    return im;
  }

  // A one-turn chat prompt with optional image.
  GenerationRequest request(const std::string& question, const std::vector<RequestImage>& images, int64_t max = 32) {
    std::vector<gemma3::ChatPart> parts;
    for (size_t i = 0; i < images.size(); ++i) parts.push_back(gemma3::ChatPart::image_part());
    parts.push_back(gemma3::ChatPart::text_part(question));
    return request_for({gemma3::ChatMessage("user", parts)}, images, max);
  }
  GenerationRequest request_for(const std::vector<gemma3::ChatMessage>& msgs, const std::vector<RequestImage>& images,
                                int64_t max = 32) {
    const auto& c = engine_->config();
    std::vector<int> crops(images.size(), 0);
    const std::string text = gemma3::expand_image_tokens(gemma3::render_chat(msgs, true), crops, {}, c.mm_tokens_per_image);
    GenerationRequest r;
    r.prompt = engine_->tokenizer()->encode(text, false);
    r.images = images;
    r.options.sampling.temperature = 0;
    r.options.max_tokens = max;
    return r;
  }

  static Engine* engine_;
};
Engine* SchedulerTest::engine_ = nullptr;

TEST_F(SchedulerTest, ConcurrentRequestsAnswerAsAlone) {
  Scheduler sched(*engine_, {.parallel = 3});
  const RequestImage tri = image("examples/blue_triangle.png"), circ = image("examples/red_circle.jpg");
  struct Q {
    std::string question;
    const RequestImage* img;
    std::string want;
  };
  const std::vector<Q> qs = {{"What do you see?", &tri, "A blue triangle in the top right."},
                             {"What do you see?", &circ, "A red circle in the bottom left."},
                             {"What shape is it?", &tri, "It is a triangle."},
                             {"Where is it?", &circ, "It is in the bottom left."},
                             {"Hello!", nullptr, "Hello! Show me a picture of a shape and ask me about it."},
                             {"What color is the shape?", &circ, "The shape is red."},
                             {"What color is the shape?", &tri, "The shape is blue."}};
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (const Q& q : qs)
    handles.push_back(sched.submit(request(q.question, q.img ? std::vector{*q.img} : std::vector<RequestImage>{})));
  for (size_t i = 0; i < qs.size(); ++i) {
    EXPECT_EQ(handles[i]->wait(), qs[i].want) << qs[i].question;
    EXPECT_EQ(handles[i]->finish_reason(), FinishReason::Stop);
    EXPECT_EQ(handles[i]->error(), "");
    EXPECT_GT(handles[i]->usage().completion_tokens, 0);
  }
  // Two images, each used by three requests: encoded once each.
  const SchedulerMetrics m = sched.metrics();
  EXPECT_EQ(m.image_cache_misses, 2);
  EXPECT_EQ(m.image_cache_hits, 4);
}

TEST_F(SchedulerTest, ExtendingAPromptReusesTheCache) {
  Scheduler sched(*engine_, {.parallel = 1});
  const RequestImage tri = image("examples/blue_triangle.png");
  std::vector<gemma3::ChatPart> parts = {gemma3::ChatPart::image_part(), gemma3::ChatPart::text_part("What do you see?")};
  std::vector<gemma3::ChatMessage> msgs = {gemma3::ChatMessage("user", parts)};
  auto h1 = sched.submit(request_for(msgs, {tri}));
  const std::string a1 = h1->wait();
  EXPECT_EQ(a1, "A blue triangle in the top right.");
  msgs.emplace_back("assistant", a1);
  msgs.emplace_back("user", "What shape is it?");
  auto h2 = sched.submit(request_for(msgs, {tri}));
  EXPECT_EQ(h2->wait(), "It is a triangle.");
  const RequestUsage u = h2->usage();
  EXPECT_GT(u.cached_prompt_tokens, 20);  // the image turn was not read again
  EXPECT_LT(u.cached_prompt_tokens, u.prompt_tokens);
  EXPECT_GT(sched.metrics().prefix_tokens_reused, 20);
  // A different image at the same place must not reuse the first image's tokens.
  const RequestImage circ = image("examples/red_circle.jpg");
  std::vector<gemma3::ChatMessage> other = {gemma3::ChatMessage("user", parts)};
  auto h3 = sched.submit(request_for(other, {circ}));
  EXPECT_EQ(h3->wait(), "A red circle in the bottom left.");
  EXPECT_LT(h3->usage().cached_prompt_tokens, 12);  // only the text before the image
}

TEST_F(SchedulerTest, CancelFreesTheSlot) {
  Scheduler sched(*engine_, {.parallel = 1});
  GenerationRequest long_req = request("Hello!", {}, 100000);
  long_req.options.sampling.temperature = 2.0f;  // rambles instead of stopping
  long_req.options.sampling.seed = 5;
  auto h = sched.submit(long_req);
  auto queued = sched.submit(request("Hello!", {}));  // waits for the only slot
  RequestHandle::Delta d;
  ASSERT_TRUE(h->next(d, std::chrono::seconds(20)));  // generation has started
  h->cancel();
  h->wait();
  EXPECT_EQ(h->finish_reason(), FinishReason::Cancelled);
  EXPECT_EQ(queued->wait(), "Hello! Show me a picture of a shape and ask me about it.");
}

// A queued request whose client left ends at once, without waiting for a slot.
TEST_F(SchedulerTest, CancelWhileQueuedEndsAtOnce) {
  Scheduler sched(*engine_, {.parallel = 1});
  GenerationRequest long_req = request("Hello!", {}, 100000);
  long_req.options.sampling.temperature = 2.0f;  // with this seed it rambles to the context's end
  long_req.options.sampling.seed = 4;
  auto running = sched.submit(long_req);
  auto queued = sched.submit(request("Hello!", {}));
  RequestHandle::Delta d;
  ASSERT_TRUE(running->next(d, std::chrono::seconds(20)));  // it holds the only slot
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  queued->cancel();
  while (!queued->done() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(queued->done()) << "the cancelled request still waits for the slot";
  running->cancel();  // (were it still queued, this lets it go)
  queued->wait();
  EXPECT_EQ(queued->finish_reason(), FinishReason::Cancelled);
  EXPECT_EQ(queued->full_text(), "");
  running->wait();
  EXPECT_EQ(running->finish_reason(), FinishReason::Cancelled);
}

// Every delta's logprobs until the request is done. (done() is read before each wait, so the
// output that came before it is still taken; the loop this replaces tested for more output
// with a call that took it and dropped it, and lost tokens when the request ended between
// two reads.)
std::vector<TokenLogprob> all_logprobs(RequestHandle& h) {
  std::vector<TokenLogprob> lps;
  RequestHandle::Delta d;
  for (;;) {
    const bool finished = h.done();
    if (h.next(d, std::chrono::milliseconds(finished ? 0 : 100)))
      lps.insert(lps.end(), d.logprobs.begin(), d.logprobs.end());
    else if (finished)
      return lps;
  }
}

TEST_F(SchedulerTest, LogprobsAndLimits) {
  Scheduler sched(*engine_, {.parallel = 2});
  GenerationRequest r = request("Hello!", {}, 3);
  r.top_logprobs = 5;
  auto h = sched.submit(r);
  const std::vector<TokenLogprob> lps = all_logprobs(*h);
  EXPECT_EQ(h->finish_reason(), FinishReason::Length);
  EXPECT_EQ(h->usage().completion_tokens, 3);
  ASSERT_EQ(lps.size(), 3u);
  for (const auto& lp : lps) {
    ASSERT_EQ(lp.top.size(), 5u);
    EXPECT_EQ(lp.top[0].first, lp.token);  // greedy picks the best
    EXPECT_FLOAT_EQ(lp.top[0].second, lp.logprob);
    double p = 0;
    for (const auto& [t, l] : lp.top) {
      EXPECT_LE(l, 0.0f);
      p += std::exp(l);
    }
    EXPECT_LE(p, 1.0 + 1e-4);
  }
  // Bad requests are refused at submit.
  GenerationRequest too_long = request("Hello!", {});
  too_long.prompt.assign(2000, 5);
  EXPECT_THROW(sched.submit(too_long), Error);
  GenerationRequest no_image = request("What?", {});
  no_image.prompt.insert(no_image.prompt.begin() + 3, 16, int32_t(engine_->config().image_token_index));
  EXPECT_THROW(sched.submit(no_image), Error);
}

TEST_F(SchedulerTest, UnsamplableIdsAreMasked) {
  const int64_t vocab = engine_->config().text.vocab_size;  // 262208 embedding rows
  const int32_t pieces = engine_->tokenizer()->vocab_size();  // 262145 token pieces
  std::vector<float> logits(static_cast<size_t>(vocab), 1.0f);
  engine_->mask_unsamplable(logits);
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(logits[size_t(pieces - 2)], 1.0f);
  EXPECT_EQ(logits[size_t(engine_->config().image_token_index)], -inf);
  for (int64_t i = pieces; i < vocab; ++i) ASSERT_EQ(logits[size_t(i)], -inf) << i;
}

// The embedding has rows past the tokenizer's vocabulary (262208 for 262145 ids) and an image
// placeholder token: a hot temperature must never draw them (once, a drawn padding id ended
// the engine thread in the tokenizer's range check).
TEST_F(SchedulerTest, HotSamplingDrawsOnlyRealTokens) {
  Scheduler sched(*engine_, {.parallel = 2});
  const Tokenizer& tok = *engine_->tokenizer();
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (uint64_t seed : {1, 2}) {
    GenerationRequest r;
    r.prompt = tok.encode("The", true);
    r.options.sampling.temperature = 2.0f;
    r.options.sampling.seed = seed;
    r.options.max_tokens = 8;
    r.top_logprobs = 0;
    handles.push_back(sched.submit(r));
  }
  for (auto& h : handles) {
    const std::vector<TokenLogprob> lps = all_logprobs(*h);
    EXPECT_EQ(h->error(), "");
    EXPECT_GT(lps.size(), 0u);
    for (const auto& lp : lps) {
      EXPECT_LT(lp.token, tok.vocab_size());
      EXPECT_NE(lp.token, int32_t(engine_->config().image_token_index));
    }
  }
}

}  // namespace
}  // namespace unicorn
