// ChatSession keeps the cache and the transcript in agreement: after a stop string cut an
// answer short, the next turn reads the conversation again instead of continuing from a
// cache that holds the cut text's tokens.
#include "runtime/chat_session.h"

#include "models/gemma3/chat_format.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/demo_model.h"
#include "support/test_paths.h"
#include "vision/decode.h"

namespace unicorn {
namespace {

TEST(ChatSession, StopStringThenNextTurn) {
  Engine& engine = test::demo_engine();
  ChatSession chat(engine);
  const auto po = chat.image_options();
  const auto image = vision::preprocess_image(vision::decode_image_file(test::repo_path("examples/blue_triangle.png")), po);
  GenerateOptions cut = test::demo_greedy();
  cut.stop = {" triangle"};
  const TurnResult first = chat.ask("What do you see?", {image}, cut, nullptr);
  EXPECT_EQ(first.text, "A blue");
  EXPECT_EQ(first.finish, FinishReason::Stop);
  const TurnResult second = chat.ask("What shape is it?", {}, test::demo_greedy(), nullptr);
  EXPECT_EQ(second.text, "It is a triangle.");
  // The second turn re-read the whole conversation (image included).
  EXPECT_GT(second.stats.prompt_tokens, 40);
  const nlohmann::json t = chat.transcript();
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[1]["content"], "A blue");
  // Without a stop string, the next turn appends only its own tokens, and answers as a
  // fresh read of the same conversation does (the truncated first answer confuses the tiny
  // model about the position either way: what matters is that both paths agree).
  const TurnResult third = chat.ask("Where is it?", {}, test::demo_greedy(), nullptr);
  EXPECT_LT(third.stats.prompt_tokens, 20);
  std::vector<gemma3::ChatMessage> m;
  m.emplace_back("user", std::vector<gemma3::ChatPart>{gemma3::ChatPart::image_part(),
                                                       gemma3::ChatPart::text_part("What do you see?")});
  m.emplace_back("assistant", first.text);
  m.emplace_back("user", "What shape is it?");
  m.emplace_back("assistant", second.text);
  m.emplace_back("user", "Where is it?");
  const std::vector<int> crops = {0};
  const std::string text =
      gemma3::expand_image_tokens(gemma3::render_chat(m, true), crops, {}, engine.config().mm_tokens_per_image);
  const Tensor feats = engine.encode_images(image.pixel_values);
  auto seq = engine.new_sequence();
  const Tensor logits = engine.append(*seq, engine.tokenizer()->encode(text, false), &feats, false);
  EXPECT_EQ(third.text, generate(engine, *seq, *engine.tokenizer(), logits, test::demo_greedy(), nullptr).text);
}

}  // namespace
}  // namespace unicorn
