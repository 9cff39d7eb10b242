// Reads Hugging Face `tokenizers` JSON (tokenizer.json). The vocabulary (262144 entries) and
// merges (514906) of Gemma 3 make up nearly all of its 33 MB; building a JSON DOM for them
// costs more than the rest of loading together, so a SAX pass copies those two straight into
// flat arrays and builds an ordinary DOM only for the small remainder (added tokens,
// normalizer, pre-tokenizer, decoder, model options).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace unicorn {

struct TokenizerJson {
  // Text of all vocabulary pieces and merge halves, back to back; the entries below point
  // into it, so parsing allocates a few large buffers instead of a million small strings.
  std::string bytes;
  struct Span {
    uint32_t offset = 0;
    uint32_t size = 0;
  };
  struct VocabEntry {
    Span piece;
    int64_t id = 0;
  };
  struct MergeEntry {
    Span left, right;
  };
  std::vector<VocabEntry> vocab;  // model.vocab, in file order
  std::vector<MergeEntry> merges;  // model.merges, in rank order
  bool has_vocab = false;
  bool has_merges = false;
  // Everything else: the document with model.vocab and model.merges left out.
  nlohmann::json rest;

  std::string_view text(Span s) const { return std::string_view(bytes).substr(s.offset, s.size); }
};

// Parses tokenizer.json text; `where` names the file in errors (invalid JSON with its byte
// offset, a vocab entry that is not an integer id, a merge that is not a pair of strings).
TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& where);

}  // namespace unicorn
