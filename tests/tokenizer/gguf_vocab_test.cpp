// The tokenizer embedded in llama.cpp's GGUF (SentencePiece pieces and scores, no merges)
// against the Hugging Face reference of tokenizer.json.
#include "tokenizer/gguf_vocab.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gguf_writer.h"
#include "support/gemma_tokenizer.h"
#include "support/gguf_reference.h"

namespace unicorn {
namespace {

using json = nlohmann::json;

const Tokenizer& gguf_tokenizer() {
  static const Tokenizer tok = tokenizer_from_gguf(*test::reference_text_gguf());
  return tok;
}

std::vector<int32_t> ids_of(const json& j) { return j.get<std::vector<int32_t>>(); }

std::string replace_spaces(const std::string& s) {
  std::string out;
  for (char c : s) out += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
  return out;
}

TEST(GgufVocab, EncodesEveryReferenceLineLikeHuggingFace) {
  const Tokenizer& tok = gguf_tokenizer();
  const auto lines = test::read_jsonl("tokenizer/encode.jsonl");
  ASSERT_EQ(lines.size(), 46u);
  for (const json& line : lines) {
    const std::string text = line["text"];
    SCOPED_TRACE(text.substr(0, 80));
    const auto ids = ids_of(line["ids"]), with_bos = ids_of(line["ids_with_bos"]);
    EXPECT_EQ(tok.encode(text, false), ids);
    EXPECT_EQ(tok.encode(text, true), with_bos);
    const auto pieces = line["pieces"].get<std::vector<std::string>>();
    ASSERT_EQ(pieces.size(), ids.size());
    // llama.cpp's converter writes the user-defined runs of '▁' (ids 138-167) with spaces,
    // which is how its tokenizer finds them in the raw text; the ids agree with HF's.
    for (size_t i = 0; i < ids.size(); ++i) {
      std::string piece = tok.token_piece(ids[i]);
      if (ids[i] >= 138 && ids[i] <= 167) EXPECT_EQ(piece.find_first_not_of(' '), std::string::npos) << piece;
      if (ids[i] >= 138 && ids[i] <= 167) piece = replace_spaces(piece);
      EXPECT_EQ(piece, pieces[i]);
    }
    EXPECT_EQ(tok.decode(ids, false), line["decoded"].get<std::string>());
    // Special means control here, as in llama.cpp; HF's tokenizer.json marks only 9 of
    // Gemma's 6252 control tokens special, so <unusedN> and <mask> differ.
    const std::string skip = text == "<unused0> <unused99> <mask> [multimodal]" ? "   [multimodal]"
                                                                               : line["decoded_skip_special"].get<std::string>();
    EXPECT_EQ(tok.decode(ids, true), skip);
  }
}

// Chat prompts (special tokens, newlines, the image markers) tokenize as tokenizer.json does.
TEST(GgufVocab, EncodesChatPromptsLikeTokenizerJson) {
  const Tokenizer& gguf = gguf_tokenizer();
  const Tokenizer& hf = test::gemma_tokenizer();
  int n = 0;
  for (const json& line : test::read_jsonl("tokenizer/chat_template.jsonl")) {
    if (!line.contains("rendered") || !line["rendered"].is_string()) continue;
    const std::string text = line["rendered"];
    SCOPED_TRACE(text.substr(0, 80));
    EXPECT_EQ(gguf.encode(text, false), hf.encode(text, false));
    ++n;
  }
  EXPECT_GT(n, 5);
  const std::string mixed = "<start_of_turn>user\n<start_of_image><end_of_image>\t\t tabs  and\n\n\nlines "
                            "<b>bold</b> naïve café 日本語 🙂 <unused5>x<pad>";
  EXPECT_EQ(gguf.encode(mixed, true), hf.encode(mixed, true));
  EXPECT_EQ(gguf.decode(gguf.encode(mixed, false), false), mixed);
}

TEST(GgufVocab, SpecialTokensAndSizes) {
  const Tokenizer& tok = gguf_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 262208);  // the GGUF keeps the embedding table's padding rows
  EXPECT_EQ(tok.bos_id(), 2);
  EXPECT_EQ(tok.eos_id(), 106);  // tokenizer.ggml.eos_token_id: <end_of_turn>
  EXPECT_TRUE(tok.adds_bos());
  EXPECT_EQ(tok.token_id("<image_soft_token>"), 262144);
  EXPECT_EQ(tok.encode("<start_of_image>", false), (std::vector<int32_t>{255999}));
  EXPECT_TRUE(tok.is_special(106));
  EXPECT_TRUE(tok.is_special(6));    // <unused0>: control, as llama.cpp treats it
  EXPECT_FALSE(tok.is_special(108));  // "\n\n": user defined, printed as text
  EXPECT_EQ(tok.decode(std::vector<int32_t>{2, 9259, 106}, true), "Hello");
}

// A small vocabulary shows the rule: the pair forming the highest-scored piece merges first,
// and equal scores go left to right.
TEST(GgufVocab, MergesByScore) {
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "llama");
  const std::vector<std::string> pieces = {"<unk>", "<s>", "</s>", "a", "b", "c", "ab", "bc", "abc", "\xE2\x96\x81", "\xE2\x96\x81" "a"};
  const std::vector<float> scores = {0, 0, 0, 0, 0, 0, -2, -1, -3, 0, -5};
  const std::vector<int32_t> types = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1};
  w.set_array("tokenizer.ggml.tokens", GgufWriter::Array::of(std::span<const std::string>(pieces)));
  w.set_array("tokenizer.ggml.scores", GgufWriter::Array::of(std::span<const float>(scores)));
  w.set_array("tokenizer.ggml.token_type", GgufWriter::Array::of(std::span<const int32_t>(types)));
  w.set_bool("tokenizer.ggml.add_space_prefix", false);
  const std::string bytes = w.serialize();
  const auto f = GgufFile::open_buffer(bytes.data(), bytes.size(), "small.gguf");
  const Tokenizer tok = tokenizer_from_gguf(*f);
  // "bc" (-1) beats "ab" (-2); then "a" + "bc" makes "abc" (any split of a piece merges).
  EXPECT_EQ(tok.encode("abc", false), (std::vector<int32_t>{8}));
  EXPECT_EQ(tok.encode("abcbc", false), (std::vector<int32_t>{8, 7}));
  // "ab" (-2) outranks "▁a" (-5), so "▁" stays alone; bos is llama.cpp's default id 1.
  EXPECT_EQ(tok.encode("ab ab", true), (std::vector<int32_t>{1, 6, 9, 6}));
  EXPECT_EQ(tok.encode("d", false), (std::vector<int32_t>{0}));  // no byte pieces: unknown
  EXPECT_EQ(tok.decode(std::vector<int32_t>{6, 10}, false), "ab a");
}

TEST(GgufVocab, RefusesWhatItCannotReproduce) {
  auto error_of = [](GgufWriter& w) -> std::string {
    const std::string bytes = w.serialize();
    const auto f = GgufFile::open_buffer(bytes.data(), bytes.size(), "v.gguf");
    try {
      tokenizer_from_gguf(*f);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  const std::vector<std::string> pieces = {"<unk>", "<s>", "</s>", "a"};
  auto base = [&] {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_array("tokenizer.ggml.tokens", GgufWriter::Array::of(std::span<const std::string>(pieces)));
    w.set_bool("tokenizer.ggml.add_space_prefix", false);
    return w;
  };
  GgufWriter w = base();
  w.set_string("tokenizer.ggml.model", "gpt2");
  EXPECT_NE(error_of(w).find("tokenizer.ggml.model is 'gpt2'"), std::string::npos) << error_of(w);
  w = base();
  w.set_bool("tokenizer.ggml.add_space_prefix", true);
  EXPECT_NE(error_of(w).find("add_space_prefix"), std::string::npos) << error_of(w);
  w = base();
  const std::vector<float> two = {0, 0};
  w.set_array("tokenizer.ggml.scores", GgufWriter::Array::of(std::span<const float>(two)));
  EXPECT_NE(error_of(w).find("scores has 2 entries for 4 tokens"), std::string::npos) << error_of(w);
  w = base();
  w.set_u32("tokenizer.ggml.bos_token_id", 9);
  EXPECT_NE(error_of(w).find("bos_token_id is 9, outside the vocabulary"), std::string::npos) << error_of(w);
  w = base();
  const std::vector<int32_t> bad_types = {2, 3, 3, 6};
  w.set_array("tokenizer.ggml.token_type", GgufWriter::Array::of(std::span<const int32_t>(bad_types)));
  EXPECT_NE(error_of(w).find("type byte but is not spelled <0xNN>"), std::string::npos) << error_of(w);
  w = base();
  w.set_string("tokenizer.ggml.tokens", "a");
  EXPECT_NE(error_of(w).find("must be an array of string"), std::string::npos) << error_of(w);
}

}  // namespace
}  // namespace unicorn
