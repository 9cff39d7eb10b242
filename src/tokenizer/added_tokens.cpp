#include "tokenizer/added_tokens.h"

#include <algorithm>

namespace unicorn {

int32_t AddedTokenMatcher::child(int32_t node, uint8_t b) const {
  const auto& c = nodes_[size_t(node)].children;
  auto it = std::lower_bound(c.begin(), c.end(), b, [](const auto& e, uint8_t v) { return e.first < v; });
  return it != c.end() && it->first == b ? it->second : -1;
}

void AddedTokenMatcher::add(std::string_view content, int32_t id) {
  if (content.empty()) return;  // matches nothing in HF either
  int32_t node = 0;
  for (char ch : content) {
    const auto b = uint8_t(ch);
    int32_t next = child(node, b);
    if (next < 0) {
      next = int32_t(nodes_.size());
      nodes_.push_back(Node{});
      auto& c = nodes_[size_t(node)].children;
      c.insert(std::lower_bound(c.begin(), c.end(), b, [](const auto& e, uint8_t v) { return e.first < v; }),
               {b, next});
    }
    node = next;
  }
  nodes_[size_t(node)].id = id;  // the same content twice: the later entry wins
  starts_[uint8_t(content[0])] = true;
}

AddedTokenMatcher::Match AddedTokenMatcher::find(std::string_view text, size_t from) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    if (!starts_[uint8_t(text[pos])]) continue;
    Match best;
    int32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      node = child(node, uint8_t(text[i]));
      if (node < 0) break;
      if (nodes_[size_t(node)].id >= 0) best = {pos, i + 1 - pos, nodes_[size_t(node)].id};
    }
    if (best.id >= 0) return best;
  }
  return {};
}

int32_t AddedTokenMatcher::exact(std::string_view content) const {
  int32_t node = 0;
  for (char ch : content) {
    node = child(node, uint8_t(ch));
    if (node < 0) return -1;
  }
  return nodes_[size_t(node)].id;
}

}  // namespace unicorn
