#include "models/gemma3/chat_format.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "formats/mapped_file.h"
#include "support/gemma_tokenizer.h"
#include "support/test_paths.h"

namespace unicorn::gemma3 {
namespace {

using json = nlohmann::json;

template <class F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
  }
}

json read_json(const std::string& rel) { return json::parse(read_file(test::data_path(rel))); }

TEST(ChatFormat, ReproducesEveryReferenceRendering) {
  const auto lines = test::read_jsonl("tokenizer/chat_template.jsonl");
  ASSERT_EQ(lines.size(), 8u);
  for (const json& line : lines) {
    SCOPED_TRACE(line["messages"].dump());
    EXPECT_EQ(render_chat(parse_messages(line["messages"]), line["add_generation_prompt"].get<bool>()),
              line["rendered"].get<std::string>());
  }
}

TEST(ChatFormat, TinyRealVocabPromptAndGeneration) {
  const json ref = read_json("models/tiny-realvocab/reference.json");
  const std::string prompt = render_chat(parse_messages(ref["messages"]), true);
  EXPECT_EQ(prompt, ref["prompt"].get<std::string>());
  const Tokenizer& tok = test::gemma_tokenizer();
  // The rendered prompt starts with "<bos>": tokenized without adding another.
  EXPECT_EQ(tok.encode(prompt, false), ref["prompt_ids"].get<std::vector<int32_t>>());
  EXPECT_EQ(tok.decode(ref["generated_ids"].get<std::vector<int32_t>>(), false), ref["generated_text"].get<std::string>());
}

TEST(ChatFormat, TrimsLikePythonStrip) {
  // str.strip() removes Unicode whitespace (ideographic space, NBSP, line separator) but not
  // the zero-width space U+200B, which is not whitespace to Python.
  const std::string text = "\u3000\u00a0 \t\n hi there \u2028\r\n\u200b";
  EXPECT_EQ(render_chat({ChatMessage("user", text)}, false), "<bos><start_of_turn>user\nhi there \u2028\r\n\u200b<end_of_turn>\n");
  EXPECT_EQ(render_chat({ChatMessage("user", " \u2003x\u2003 ")}, false), "<bos><start_of_turn>user\nx<end_of_turn>\n");
  // The system text is not trimmed; assistant turns are model turns.
  EXPECT_EQ(render_chat({ChatMessage("system", " S "), ChatMessage("user", " u "), ChatMessage("assistant", " a ")}, true),
            "<bos><start_of_turn>user\n S \n\nu<end_of_turn>\n<start_of_turn>model\na<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatFormat, RoleErrors) {
  const std::string alternate = "Conversation roles must alternate user/assistant/user/assistant/...";
  expect_error([] { render_chat({ChatMessage("user", "a"), ChatMessage("user", "b")}, true); }, {alternate});
  expect_error([] { render_chat({ChatMessage("assistant", "a")}, true); }, {alternate});
  expect_error([] { render_chat({ChatMessage("system", "s"), ChatMessage("assistant", "a")}, true); }, {alternate});
  expect_error([] { render_chat({ChatMessage("user", "a"), ChatMessage("tool", "b")}, true); }, {"message 1", "'tool'"});
  expect_error([] { render_chat({ChatMessage("user", "a"), ChatMessage("system", "b")}, true); }, {"message 1", "system"});
  expect_error([] { render_chat({}, true); }, {"no messages"});
  expect_error([] { render_chat({ChatMessage("system", {ChatPart::image_part()}), ChatMessage("user", "u")}, true); },
               {"system message", "image"});
  expect_error([] { render_chat({ChatMessage("user", "bad \xFF byte")}, true); }, {"message 0 part 0", "invalid UTF-8", "byte 4"});
}

TEST(ChatFormat, ParsesOpenAiParts) {
  const json j = json::parse(R"([
    {"role": "user", "content": [
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
      {"type": "text", "text": "What is this?"},
      {"type": "image", "url": "https://example.com/cat.jpg"}]}])");
  const auto msgs = parse_messages(j);
  ASSERT_EQ(msgs.size(), 1u);
  ASSERT_EQ(msgs[0].parts.size(), 3u);
  EXPECT_EQ(msgs[0].parts[0].kind, ChatPart::Image);
  EXPECT_EQ(msgs[0].parts[0].text, "data:image/png;base64,AAAA");
  EXPECT_EQ(msgs[0].parts[1].kind, ChatPart::Text);
  EXPECT_EQ(msgs[0].parts[2].text, "https://example.com/cat.jpg");
  EXPECT_EQ(count_images(msgs), 2u);
  EXPECT_EQ(render_chat(msgs, true),
            "<bos><start_of_turn>user\n<start_of_image>What is this?<start_of_image><end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatFormat, MessageJsonErrors) {
  auto bad = [](const char* text, std::initializer_list<std::string> parts) {
    expect_error([&] { parse_messages(json::parse(text)); }, parts);
  };
  bad(R"({"role": "user"})", {"messages", "array"});
  bad(R"(["hi"])", {"messages[0]", "object"});
  bad(R"([{"content": "hi"}])", {"messages[0]", "'role'"});
  bad(R"([{"role": "user", "content": 5}])", {"messages[0]", "'content'", "number"});
  bad(R"([{"role": "user", "content": null}])", {"messages[0]", "'content'"});
  bad(R"([{"role": "user", "content": [{"type": "audio"}]}])", {"messages[0].content[0]", "'audio'"});
  bad(R"([{"role": "user", "content": [{"type": "text"}]}])", {"messages[0].content[0]", "'text'"});
  bad(R"([{"role": "user", "content": [{"type": "image_url"}]}])", {"messages[0].content[0]", "image_url"});
  bad(R"([{"role": "user", "content": ["hi"]}])", {"messages[0].content[0]", "'type'"});
}

// The manifest abbreviates image tokens as "<image_soft_token>x256".
std::string unabbreviate(std::string s, int64_t n) {
  const std::string abbrev = "<image_soft_token>x" + std::to_string(n);
  std::string full;
  for (int64_t i = 0; i < n; ++i) full += "<image_soft_token>";
  for (size_t p = s.find(abbrev); p != std::string::npos; p = s.find(abbrev, p + full.size())) s.replace(p, abbrev.size(), full);
  return s;
}

TEST(ImageExpansion, ReproducesPanAndScanReference) {
  const json m = read_json("tokenizer/pan_and_scan_manifest.json").at(0);
  const int crops = m["num_crops"][0].get<int>();
  const int64_t images = m["pixel_values_shape"][0].get<int64_t>();  // the original + its crops
  ASSERT_EQ(images, crops + 1);
  const int64_t per_image = m["token_type_ids_sum"].get<int64_t>() / images;  // 256
  const auto msgs = parse_messages(json::parse(
      R"([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}])"));
  const std::string prompt = render_chat(msgs, true);
  ASSERT_EQ(prompt, m["chat_prompt"].get<std::string>());
  const Tokenizer& tok = test::gemma_tokenizer();

  const std::vector<int> with_crops{crops};
  const std::string pas = expand_image_tokens(prompt, with_crops, ImageTokenStrings{}, per_image);
  EXPECT_EQ(pas, unabbreviate(m["expanded_text_pan_and_scan"].get<std::string>(), per_image));
  EXPECT_EQ(tok.encode(pas, false), m["input_ids_pan_and_scan"].get<std::vector<int32_t>>());

  const std::vector<int> plain{0};
  EXPECT_EQ(tok.encode(expand_image_tokens(prompt, plain, ImageTokenStrings{}, per_image), false),
            m["input_ids_plain"].get<std::vector<int32_t>>());
}

TEST(ImageExpansion, TokenStringsAndCountAreParameters) {
  const ImageTokenStrings t{"[B]", "[E]", "*"};
  const std::vector<int> crops{0, 2};
  EXPECT_EQ(expand_image_tokens("a[B]b[B]c", crops, t, 3),
            "a\n\n[B]***[E]\n\nb"
            "Here is the original image \n\n[B]***[E]\n\n and here are some crops to help you see better "
            "\n\n[B]***[E]\n\n \n\n[B]***[E]\n\nc");
  expect_error([&] { expand_image_tokens("a[B]b", crops, t, 3); }, {"1 image markers", "2 images"});
  const std::vector<int> none;
  EXPECT_EQ(expand_image_tokens("no images", none, t, 3), "no images");
  const std::vector<int> one{0};
  expect_error([&] { expand_image_tokens("[B]", one, t, 0); }, {"tokens per image", "0"});
  const std::vector<int> negative{-1};
  expect_error([&] { expand_image_tokens("[B]", negative, t, 4); }, {"-1 crops"});
}

}  // namespace
}  // namespace unicorn::gemma3
