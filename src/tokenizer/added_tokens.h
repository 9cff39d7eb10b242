// Added tokens (tokenizer.json "added_tokens": <start_of_turn>, <start_of_image>, runs of
// newlines and tabs, <unusedN>, HTML tags, ...) are found in the raw text before anything
// else, leftmost first and longest at a position, as HF tokenizers' AddedVocabulary does with
// its Aho-Corasick LeftmostLongest matcher. The text between them is normalized and BPE'd.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace unicorn {

class AddedTokenMatcher {
 public:
  struct Match {
    size_t pos = 0;   // byte offset in the text
    size_t size = 0;  // bytes matched
    int32_t id = -1;  // token id
  };

  void add(std::string_view content, int32_t id);
  // The leftmost-longest match at or after byte `from`, or a match with id -1 when none.
  Match find(std::string_view text, size_t from) const;
  // The id of exactly this content, or -1.
  int32_t exact(std::string_view content) const;
  bool empty() const { return nodes_.size() <= 1; }

 private:
  // A byte trie. Children are few except at the root, so a sorted list per node suffices;
  // `starts_` lets the scan skip positions whose first byte begins no token.
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // byte -> node index
    int32_t id = -1;                                    // token ending here
  };
  int32_t child(int32_t node, uint8_t b) const;

  std::vector<Node> nodes_{Node{}};
  std::array<bool, 256> starts_{};
};

}  // namespace unicorn
