// BPE merging against a plain reference (repeatedly merge the lowest-rank pair, leftmost
// first), on small synthetic vocabularies and on long words of the real Gemma 3 tokenizer.
#include "tokenizer/bpe.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "core/error.h"
#include "formats/mapped_file.h"
#include "support/gemma_tokenizer.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

namespace unicorn {
namespace {

using json = nlohmann::json;
using Ranks = std::map<std::pair<std::string, std::string>, size_t>;

// The definition of BPE: split into characters, then while some adjacent pair has a merge,
// merge the pair of lowest rank (the leftmost of equal ones). Quadratic, obviously right.
// Characters not in the vocabulary (`known`) start as their <0xNN> byte pieces.
template <class Known>
std::vector<std::string> naive_bpe(const std::string& word, const Ranks& ranks, Known&& known) {
  std::vector<std::string> s;
  for (size_t pos = 0; pos < word.size();) {
    uint32_t cp = 0;
    const size_t len = utf8::decode_one(word, pos, cp);
    const std::string c = word.substr(pos, len);
    if (known(c)) {
      s.push_back(c);
    } else {
      for (char b : c) s.push_back(fmt::format("<0x{:02X}>", uint8_t(b)));
    }
    pos += len;
  }
  for (;;) {
    size_t best = s.size(), best_rank = SIZE_MAX;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      auto it = ranks.find({s[i], s[i + 1]});
      if (it != ranks.end() && it->second < best_rank) {
        best = i;
        best_rank = it->second;
      }
    }
    if (best == s.size()) return s;
    s[best] += s[best + 1];
    s.erase(s.begin() + long(best) + 1);
  }
}

// A tokenizer.json for `pieces` and `merges`.
std::string tokenizer_json(const std::vector<std::string>& pieces, const std::vector<std::pair<std::string, std::string>>& merges,
                           const json& model_extra = json::object()) {
  json vocab = json::object();
  for (size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = i;
  json m = json::array();
  for (const auto& [a, b] : merges) m.push_back({a, b});
  json model = {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}};
  model.update(model_extra);
  json j = {{"model", model},
            {"added_tokens", json::array({{{"id", 0}, {"content", "<bos>"}, {"special", true}},
                                          {{"id", 1}, {"content", "<eos>"}, {"special", true}}})},
            {"normalizer", {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "_"}}},
            {"pre_tokenizer", nullptr},
            {"decoder", {{"type", "Sequence"}, {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", "_"}}}, {"content", " "}},
                                                                          {{"type", "Fuse"}}})}}}};
  return j.dump();
}

std::vector<std::string> pieces_of(const Tokenizer& t, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(t.token_piece(id));
  return out;
}

TEST(Bpe, LowerRankMergesFirstAndLeftmostWinsTies) {
  const Tokenizer t = Tokenizer::from_json_text(
      tokenizer_json({"<bos>", "<eos>", "a", "b", "c", "ab", "bc", "aa"}, {{"b", "c"}, {"a", "b"}, {"a", "a"}}));
  // (b, c) outranks (a, b): "abc" is a + bc, not ab + c.
  EXPECT_EQ(pieces_of(t, t.encode("abc", false)), (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(pieces_of(t, t.encode("aaa", false)), (std::vector<std::string>{"aa", "a"}));
  EXPECT_EQ(pieces_of(t, t.encode("<bos>ab", false)), (std::vector<std::string>{"<bos>", "ab"}));
}

TEST(Bpe, UnknownCharactersWithoutByteFallback) {
  const std::vector<std::string> pieces{"<bos>", "<eos>", "<unk>", "a"};
  const Tokenizer fused = Tokenizer::from_json_text(tokenizer_json(pieces, {}, {{"unk_token", "<unk>"}, {"fuse_unk", true}}));
  EXPECT_EQ(pieces_of(fused, fused.encode("xya", false)), (std::vector<std::string>{"<unk>", "a"}));
  const Tokenizer unfused = Tokenizer::from_json_text(tokenizer_json(pieces, {}, {{"unk_token", "<unk>"}}));
  EXPECT_EQ(pieces_of(unfused, unfused.encode("xya", false)), (std::vector<std::string>{"<unk>", "<unk>", "a"}));
  const Tokenizer none = Tokenizer::from_json_text(tokenizer_json(pieces, {}));
  EXPECT_THROW(none.encode("x", false), Error);
}

TEST(Bpe, MatchesPlainBpeOnRandomMerges) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<std::string> pieces{"<bos>", "<eos>", "a", "b", "c", "d", "_"};
    std::vector<std::pair<std::string, std::string>> merges;
    Ranks ranks;
    while (merges.size() < 40) {
      const auto& l = pieces[2 + rng() % (pieces.size() - 2)];
      const auto& r = pieces[2 + rng() % (pieces.size() - 2)];
      if (ranks.count({l, r}) || l.size() + r.size() > 8) continue;
      const std::string joined = l + r;
      ranks[{l, r}] = merges.size();
      merges.push_back({l, r});
      if (std::find(pieces.begin(), pieces.end(), joined) == pieces.end()) pieces.push_back(joined);
    }
    const Tokenizer t = Tokenizer::from_json_text(tokenizer_json(pieces, merges));
    for (int w = 0; w < 10; ++w) {
      std::string word;
      const size_t len = 1 + rng() % 300;
      for (size_t i = 0; i < len; ++i) word += "abcd_"[rng() % 5];
      EXPECT_EQ(pieces_of(t, t.encode(word, false)), naive_bpe(word, ranks, [](auto&) { return true; })) << word;
    }
  }
}

TEST(Bpe, LongWordsOfTheRealTokenizerMatchPlainBpe) {
  // The merge list as the file holds it (tokenizer_json's SAX reader only lists the strings;
  // reproducing encode.jsonl checks that it reads them right).
  const TokenizerJson tj = parse_tokenizer_json(read_file(test::real_tokenizer_json()), "tokenizer.json");
  Ranks ranks;
  for (size_t i = 0; i < tj.merges.size(); ++i)
    ranks.emplace(std::make_pair(std::string(tj.text(tj.merges[i].left)), std::string(tj.text(tj.merges[i].right))), i);
  const Tokenizer& tok = test::gemma_tokenizer();
  // Long single words (no newline, tab or other added token): prose, code, CJK, repetition.
  std::string prose;
  for (const json& line : test::read_jsonl("tokenizer/encode.jsonl")) {
    std::string text = line["text"];
    std::replace(text.begin(), text.end(), '\n', ' ');
    std::replace(text.begin(), text.end(), '\t', ' ');
    if (text.find('<') == std::string::npos) prose += text + " ";
  }
  for (const std::string& word : {prose.substr(0, 1500), prose.substr(prose.size() - 1200), std::string(700, 'a') + "b"}) {
    std::string norm;
    for (char c : word) norm += c == ' ' ? std::string("▁") : std::string(1, c);
    const auto got = pieces_of(tok, tok.encode(word, false));
    EXPECT_EQ(got, naive_bpe(norm, ranks, [&](const std::string& c) { return tok.token_id(c).has_value(); }))
        << word.substr(0, 60);
  }
}

TEST(Bpe, BadModelSectionsAreClearErrors) {
  auto expect_error = [](const std::string& text, std::initializer_list<std::string> parts) {
    try {
      Tokenizer::from_json_text(text, {}, "synthetic.json");
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("synthetic.json"), std::string::npos) << msg;
      for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
    }
  };
  const std::vector<std::string> pieces{"<bos>", "<eos>", "a", "b"};
  expect_error(tokenizer_json(pieces, {{"a", "b"}}), {"merge 0", "'ab'", "not in model.vocab"});
  expect_error(tokenizer_json(pieces, {{"a", "z"}}), {"merge 0", "'z'"});
  expect_error(tokenizer_json(pieces, {}, {{"type", "Unigram"}}), {"Unigram"});
  expect_error(tokenizer_json(pieces, {}, {{"vocab", {{"<bos>", 0}, {"<eos>", 1}, {"a", 5}}}}), {"'a'", "5"});
  expect_error(tokenizer_json(pieces, {}, {{"vocab", {{"<bos>", 0}, {"<eos>", 1}, {"a", "x"}}}}), {"vocab id of 'a'"});
  expect_error(tokenizer_json(pieces, {}, {{"merges", {"a b c"}}}), {"merge 0"});
  expect_error(tokenizer_json(pieces, {}, {{"merges", {{"a"}}}}), {"merge 0", "pair"});
  expect_error(tokenizer_json(pieces, {}, {{"continuing_subword_prefix", "##"}}), {"continuing_subword_prefix"});
  json no_vocab = json::parse(tokenizer_json(pieces, {}));
  no_vocab["model"].erase("vocab");
  expect_error(no_vocab.dump(), {"model.vocab is missing"});
  json bad_pre = json::parse(tokenizer_json(pieces, {}));
  bad_pre["pre_tokenizer"] = {{"type", "ByteLevel"}};
  expect_error(bad_pre.dump(), {"pre_tokenizer", "ByteLevel"});
  json bad_added = json::parse(tokenizer_json(pieces, {}));
  bad_added["added_tokens"].push_back({{"id", 9}, {"content", "<x>"}});
  expect_error(bad_added.dump(), {"'<x>'", "9", "expected 4"});
  expect_error("[1, 2]", {"top level"});
  expect_error("", {"invalid JSON at byte"});
}

TEST(Bpe, LegacyMergeStrings) {
  json j = json::parse(tokenizer_json({"<bos>", "<eos>", "a", "b", "ab", "_"}, {}));
  j["model"]["merges"] = {"a b"};
  const Tokenizer t = Tokenizer::from_json_text(j.dump());
  EXPECT_EQ(pieces_of(t, t.encode("ab a", false)), (std::vector<std::string>{"ab", "_", "a"}));
  EXPECT_EQ(t.decode(t.encode("ab a", false), false), "ab a");
}

}  // namespace
}  // namespace unicorn
