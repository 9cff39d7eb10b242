#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "formats/gzip.h"
#include "formats/mapped_file.h"
#include "support/gemma_tokenizer.h"
#include "support/test_paths.h"
#include "tokenizer/streaming_decoder.h"
#include "tokenizer/utf8.h"

namespace unicorn {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::vector<int32_t> ids_of(const json& j) { return j.get<std::vector<int32_t>>(); }

// Expects `f` to throw Error whose message holds every one of `parts`.
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

TEST(Tokenizer, ReproducesEveryReferenceEncoding) {
  const Tokenizer& tok = test::gemma_tokenizer();
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
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(tok.token_piece(ids[i]), pieces[i]);
      EXPECT_EQ(tok.token_id(pieces[i]), ids[i]);
    }
    EXPECT_EQ(tok.decode(ids, false), line["decoded"].get<std::string>());
    EXPECT_EQ(tok.decode(ids, true), line["decoded_skip_special"].get<std::string>());
    EXPECT_EQ(tok.decode(with_bos, true), line["decoded_skip_special"].get<std::string>());
  }
}

TEST(Tokenizer, SpecialTokensAndSizes) {
  const Tokenizer& tok = test::gemma_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 262145);  // 262144 BPE pieces + <image_soft_token>
  EXPECT_EQ(tok.token_piece(tok.bos_id()), "<bos>");
  EXPECT_EQ(tok.token_piece(tok.eos_id()), "<end_of_turn>");  // tokenizer_config's eos_token
  EXPECT_EQ(tok.token_id("<image_soft_token>"), 262144);
  EXPECT_TRUE(tok.is_special(*tok.token_id("<start_of_turn>")));
  EXPECT_TRUE(tok.is_special(*tok.token_id("<image_soft_token>")));
  EXPECT_FALSE(tok.is_special(*tok.token_id("<unused0>")));  // added but not special
  EXPECT_FALSE(tok.is_special(*tok.token_id("▁world")));
  EXPECT_FALSE(tok.is_special(-1));
  EXPECT_FALSE(tok.token_id("no such piece ▁▁x").has_value());
  EXPECT_TRUE(tok.adds_bos());
}

// A Gemma-shaped tokenizer.json with a handful of pieces, for tests of loading and options
// that need no 33 MB file.
std::string mini_tokenizer_json() {
  return R"({"added_tokens": [
      {"id": 0, "content": "<pad>", "special": true}, {"id": 1, "content": "<eos>", "special": true},
      {"id": 2, "content": "<bos>", "special": true}, {"id": 3, "content": "<end_of_turn>", "special": true}],
    "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
    "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": false},
    "decoder": {"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}]},
    "model": {"type": "BPE", "byte_fallback": true, "unk_token": null,
      "vocab": {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<end_of_turn>": 3, "H": 4, "i": 5, "\u2581": 6, "Hi": 7, "\u2581Hi": 8},
      "merges": [["H", "i"], ["\u2581", "Hi"]]}})";
}

TEST(Tokenizer, ConfigDecidesBosAndEos) {
  const std::string dir = test::scratch_dir("tokenizer-config");
  test::write_bytes(dir + "/tokenizer.json", mini_tokenizer_json());
  const Tokenizer plain = Tokenizer::load(dir);  // no tokenizer_config.json: Gemma's defaults
  EXPECT_EQ(plain.encode("Hi Hi", true), (std::vector<int32_t>{2, 7, 8}));
  EXPECT_EQ(plain.eos_id(), 1);
  EXPECT_EQ(plain.decode(std::vector<int32_t>{2, 7, 8, 3}, true), "Hi Hi");

  test::write_bytes(dir + "/tokenizer_config.json", R"({"add_bos_token": false, "eos_token": {"content": "<end_of_turn>"}})");
  const Tokenizer configured = Tokenizer::load(dir);
  EXPECT_FALSE(configured.adds_bos());
  EXPECT_EQ(configured.encode("Hi Hi", true), (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(configured.eos_id(), 3);

  expect_error([] { parse_tokenizer_options(R"({"add_bos_token": "yes"})", "cfg.json"); }, {"cfg.json", "add_bos_token"});
  expect_error([] { parse_tokenizer_options("{", "cfg.json"); }, {"cfg.json", "invalid JSON"});
  test::write_bytes(dir + "/tokenizer_config.json", R"({"bos_token": "<not a token>"})");
  expect_error([&] { Tokenizer::load(dir); }, {"bos_token", "<not a token>"});
}

TEST(Tokenizer, LongInputsRoundTrip) {
  // A long run without added tokens is one BPE word (spaces become ▁ before the
  // pre-tokenizer's split on ' '); bpe_test.cpp checks such words against a plain BPE.
  const Tokenizer& tok = test::gemma_tokenizer();
  std::string big;
  for (const json& line : test::read_jsonl("tokenizer/encode.jsonl")) big += line["text"].get<std::string>() + " ";
  while (big.size() < 400000) big += big;
  const auto ids = tok.encode(big, false);
  EXPECT_EQ(tok.decode(ids, false), big);
  EXPECT_LT(ids.size(), big.size() / 2);
}

TEST(Tokenizer, ByteFallbackAndInvalidBytesInDecode) {
  const Tokenizer& tok = test::gemma_tokenizer();
  auto byte = [&](int b) { return *tok.token_id(fmt::format("<0x{:02X}>", b)); };
  // U+10FFFD (private use) is not in the vocabulary: it goes out as its 4 UTF-8 bytes.
  const std::string pua = "\xF4\x8F\xBF\xBD";
  ASSERT_FALSE(tok.token_id(pua).has_value());
  const std::vector<int32_t> bytes{byte(0xF4), byte(0x8F), byte(0xBF), byte(0xBD)};
  EXPECT_EQ(tok.encode("a" + pua, false), (std::vector<int32_t>{*tok.token_id("a"), bytes[0], bytes[1], bytes[2], bytes[3]}));
  EXPECT_EQ(tok.decode(bytes, false), pua);
  // A run that is not valid UTF-8 becomes one U+FFFD per byte (HF ByteFallback).
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(tok.decode(std::vector<int32_t>{byte(0xFF)}, false), fffd);
  const int32_t hello = *tok.token_id("Hello");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{byte(0xE4), byte(0xBD), hello}, false), fffd + fffd + "Hello");
}

TEST(Tokenizer, InvalidUtf8IsAnErrorWithItsOffset) {
  const Tokenizer& tok = test::gemma_tokenizer();
  expect_error([&] { tok.encode("abc\xFF" "def", false); }, {"invalid UTF-8", "byte 3", "0xFF"});
  expect_error([&] { tok.encode("ab\xE4\xBD", false); }, {"byte 2", "ends in the middle"});
  expect_error([&] { tok.encode("\xC0\xAF", false); }, {"byte 0"});             // overlong '/'
  expect_error([&] { tok.encode("x\xED\xA0\x80", false); }, {"byte 1"});        // surrogate
  expect_error([&] { tok.encode("xy\xF4\x90\x80\x80", false); }, {"byte 2"});   // > U+10FFFF
  expect_error([&] { tok.encode("<bos>\xE4\x41", true); }, {"byte 5", "continuation"});
  EXPECT_EQ(utf8::find_invalid("\xF0\x9F\xA6\x84 ok"), utf8::kValid);
}

TEST(Tokenizer, OutOfRangeIdsAreErrors) {
  const Tokenizer& tok = test::gemma_tokenizer();
  expect_error([&] { tok.decode(std::vector<int32_t>{2, tok.vocab_size()}, false); }, {"262145", "out of range", "262144"});
  expect_error([&] { tok.decode(std::vector<int32_t>{-1}, true); }, {"-1", "out of range"});
  expect_error([&] { tok.token_piece(1 << 30); }, {"out of range"});
  StreamingDecoder stream(tok, false);
  expect_error([&] { stream.push(-7); }, {"-7"});
}

TEST(StreamingDecoder, MatchesDecodeOnEveryReferenceLine) {
  const Tokenizer& tok = test::gemma_tokenizer();
  for (const json& line : test::read_jsonl("tokenizer/encode.jsonl")) {
    SCOPED_TRACE(line["text"].get<std::string>().substr(0, 80));
    for (bool skip : {false, true}) {
      StreamingDecoder stream(tok, skip);
      std::string all;
      for (int32_t id : ids_of(line["ids_with_bos"])) {
        const std::string piece = stream.push(id);
        EXPECT_EQ(utf8::find_invalid(piece), utf8::kValid);  // never half a character
        all += piece;
      }
      all += stream.finish();
      EXPECT_EQ(all, tok.decode(ids_of(line["ids_with_bos"]), skip));
    }
  }
}

TEST(StreamingDecoder, HoldsBytesUntilTheCharacterIsWhole) {
  const Tokenizer& tok = test::gemma_tokenizer();
  auto byte = [&](int b) { return *tok.token_id(fmt::format("<0x{:02X}>", b)); };
  StreamingDecoder stream(tok, true);
  EXPECT_EQ(stream.push(*tok.token_id("<start_of_turn>")), "");  // special, skipped
  EXPECT_EQ(stream.push(*tok.token_id("▁world")), " world");
  EXPECT_EQ(stream.push(byte(0xE4)), "");
  EXPECT_EQ(stream.push(byte(0xBD)), "");
  EXPECT_EQ(stream.push(byte(0xA0)), "\xE4\xBD\xA0");  // 你
  EXPECT_EQ(stream.push(byte(0xF0)), "");
  EXPECT_EQ(stream.push(byte(0x9F)), "");
  // The run ends before the character is whole: its bytes become U+FFFD, as decode does.
  EXPECT_EQ(stream.push(*tok.token_id("Hello")), "\xEF\xBF\xBD\xEF\xBF\xBD" "Hello");
  EXPECT_EQ(stream.push(byte(0xE4)), "");
  EXPECT_EQ(stream.finish(), "\xEF\xBF\xBD");
  EXPECT_EQ(stream.finish(), "");
  // A byte that can never be part of a character comes out at once.
  EXPECT_EQ(stream.push(byte(0xFF)), "\xEF\xBF\xBD");
}

TEST(Tokenizer, LoadsGzipWhenOnlyThatExists) {
  // The real tokenizer.json.gz is loaded end to end in tests/cli/tokenize_cli_test.cpp.
  const std::string dir = test::scratch_dir("tokenizer-gz");
  write_gzip_file(dir + "/tokenizer.json.gz", mini_tokenizer_json());
  const Tokenizer tok = Tokenizer::load(dir);
  EXPECT_EQ(tok.encode("Hi Hi<eos>", true), (std::vector<int32_t>{2, 7, 8, 1}));
  test::write_bytes(dir + "/tokenizer.json", "{");  // tokenizer.json comes first when present
  expect_error([&] { Tokenizer::load(dir); }, {dir + "/tokenizer.json:", "invalid JSON"});
}

TEST(Tokenizer, BadFilesAreClearErrors) {
  const std::string empty = test::scratch_dir("tokenizer-empty");
  expect_error([&] { Tokenizer::load(empty); }, {empty, "no tokenizer.json"});
  expect_error([&] { Tokenizer::load(empty + "/missing"); }, {"missing", "not found"});

  const std::string corrupt = test::scratch_dir("tokenizer-corrupt");
  test::write_bytes(corrupt + "/tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0,)");
  expect_error([&] { Tokenizer::load(corrupt); }, {corrupt + "/tokenizer.json", "invalid JSON at byte"});

  const std::string bad_gz = test::scratch_dir("tokenizer-bad-gz");
  test::write_bytes(bad_gz + "/tokenizer.json.gz", "\x1f\x8b\x08\x00garbage that is not deflate data at all");
  expect_error([&] { Tokenizer::load(bad_gz); }, {bad_gz + "/tokenizer.json.gz", "gzip"});

  const std::string truncated_gz = test::scratch_dir("tokenizer-truncated-gz");
  write_gzip_file(truncated_gz + "/whole.gz", mini_tokenizer_json());
  const std::string whole = read_file(truncated_gz + "/whole.gz");
  test::write_bytes(truncated_gz + "/tokenizer.json.gz", whole.substr(0, whole.size() / 2));
  expect_error([&] { Tokenizer::load(truncated_gz); }, {truncated_gz + "/tokenizer.json.gz", "truncated"});
}

}  // namespace
}  // namespace unicorn
