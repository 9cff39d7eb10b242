#include "tokenizer/bpe.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

namespace unicorn {

namespace {

using json = nlohmann::json;

// Reads an optional field of the model section, checking its JSON type.
const json* field(const json& model, const char* key, json::value_t type, const char* type_name,
                  const std::string& where) {
  auto it = model.find(key);
  if (it == model.end() || it->is_null()) return nullptr;
  const bool ok = type == json::value_t::number_float ? it->is_number() : it->type() == type;
  if (!ok) fail("{}: model.{} must be {}, got {}", where, key, type_name, it->dump());
  return &*it;
}

}  // namespace

BpeModel BpeModel::build(const TokenizerJson& tj, const std::string& where) {
  const json empty = json::object();
  const json& model = tj.rest.contains("model") ? tj.rest["model"] : empty;
  if (!model.is_object()) fail("{}: 'model' must be an object", where);
  if (auto* t = field(model, "type", json::value_t::string, "a string", where); t && *t != "BPE")
    fail("{}: model.type is '{}'; only BPE tokenizers (as Gemma 3 uses) are supported", where, t->get<std::string>());
  if (!tj.has_vocab) fail("{}: model.vocab is missing", where);
  if (!tj.has_merges) fail("{}: model.merges is missing", where);
  // Options that change how words are split into pieces: refuse the ones this engine does
  // not implement rather than tokenize differently from the reference.
  if (auto* d = field(model, "dropout", json::value_t::number_float, "a number", where); d && d->get<double>() != 0.0)
    fail("{}: model.dropout is {}; BPE dropout (a training-time option) is not supported", where, d->dump());
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (auto* v = field(model, key, json::value_t::string, "a string", where); v && !v->get<std::string>().empty())
      fail("{}: model.{} is '{}'; not supported (Gemma 3 uses none)", where, key, v->get<std::string>());
  }
  if (auto* v = field(model, "ignore_merges", json::value_t::boolean, "true or false", where); v && v->get<bool>())
    fail("{}: model.ignore_merges is true; not supported (Gemma 3 uses false)", where);

  BpeModel m;
  if (auto* v = field(model, "byte_fallback", json::value_t::boolean, "true or false", where)) m.byte_fallback_ = v->get<bool>();
  if (auto* v = field(model, "fuse_unk", json::value_t::boolean, "true or false", where)) m.fuse_unk_ = v->get<bool>();

  // Vocabulary: ids must be exactly 0 .. n-1, so that pieces can be an array by id.
  const size_t n = tj.vocab.size();
  if (n == 0) fail("{}: model.vocab is empty", where);
  if (n > size_t(INT32_MAX)) fail("{}: model.vocab has {} entries; at most {} are supported", where, n, INT32_MAX);
  std::vector<int32_t> entry_of_id(n, -1);
  for (size_t i = 0; i < n; ++i) {
    const auto& e = tj.vocab[i];
    if (e.id < 0 || size_t(e.id) >= n)
      fail("{}: model.vocab['{}'] = {}; ids must run from 0 to {} (the vocabulary size - 1)", where, tj.text(e.piece), e.id, n - 1);
    if (entry_of_id[size_t(e.id)] >= 0)
      fail("{}: model.vocab gives id {} to both '{}' and '{}'", where, e.id, tj.text(tj.vocab[size_t(entry_of_id[size_t(e.id)])].piece),
           tj.text(e.piece));
    entry_of_id[size_t(e.id)] = int32_t(i);
  }
  // Every id appears once among n entries with ids < n, so entry_of_id is a permutation.
  std::vector<std::string_view> by_id(n);
  for (size_t id = 0; id < n; ++id) by_id[id] = tj.text(tj.vocab[size_t(entry_of_id[id])].piece);
  m.set_pieces(by_id);
  if (auto* u = field(model, "unk_token", json::value_t::string, "a string", where)) {
    m.unk_id_ = m.find(u->get<std::string>());
    if (m.unk_id_ < 0) fail("{}: model.unk_token '{}' is not in model.vocab", where, u->get<std::string>());
  }

  // Merges: rank = position in the list; the merged piece must be in the vocabulary.
  if (tj.merges.size() > size_t(UINT32_MAX)) fail("{}: too many merges ({})", where, tj.merges.size());
  m.merges_ = MergeTable(tj.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < tj.merges.size(); ++rank) {
    const std::string_view a = tj.text(tj.merges[rank].left), b = tj.text(tj.merges[rank].right);
    const int32_t ia = m.find(a), ib = m.find(b);
    if (ia < 0 || ib < 0)
      fail("{}: merge {} ('{}', '{}'): piece '{}' is not in model.vocab", where, rank, a, b, ia < 0 ? a : b);
    joined.assign(a).append(b);
    const int32_t merged = m.find(joined);
    if (merged < 0) fail("{}: merge {} ('{}', '{}'): the merged piece '{}' is not in model.vocab", where, rank, a, b, joined);
    m.merges_.insert(ia, ib, Merge{uint32_t(rank), merged});
  }
  return m;
}

void BpeModel::set_pieces(std::span<const std::string_view> by_id) {
  const size_t n = by_id.size();
  offsets_.reserve(n + 1);
  size_t total = 0;
  for (const std::string_view p : by_id) total += p.size();
  pieces_.reserve(total);
  for (const std::string_view p : by_id) {
    offsets_.push_back(uint32_t(pieces_.size()));
    pieces_.insert(pieces_.end(), p.begin(), p.end());
  }
  offsets_.push_back(uint32_t(pieces_.size()));

  ids_.reserve(n);
  ascii_ids_.fill(-1);
  for (int32_t id = 0; id < int32_t(n); ++id) {
    const std::string_view p = piece(id);
    ids_.insert_or_assign(p, id);  // a repeated piece: the last one wins (as a repeated JSON key)
    uint32_t cp = 0;
    if (!p.empty() && utf8::decode_one(p, 0, cp) == p.size()) {
      if (cp < 128) {
        ascii_ids_[cp] = id;
      } else {
        char_ids_[cp] = id;
      }
    }
  }
  // Byte fallback pieces are spelled as HF tokenizers looks them up: format!("<{:#04X}>").
  has_all_bytes_ = true;
  for (int b = 0; b < 256; ++b) {
    byte_ids_[size_t(b)] = find(fmt::format("<0x{:02X}>", b));
    if (byte_ids_[size_t(b)] < 0) has_all_bytes_ = false;
  }
}

BpeModel BpeModel::from_pieces(std::span<const std::string_view> pieces, std::span<const RankedMerge> merges,
                               bool byte_fallback, int32_t unk_id, const std::string& where) {
  if (pieces.empty()) fail("{}: the vocabulary is empty", where);
  if (pieces.size() > size_t(INT32_MAX)) fail("{}: {} pieces; at most {} are supported", where, pieces.size(), INT32_MAX);
  size_t total = 0;
  for (const std::string_view p : pieces) total += p.size();
  if (total > UINT32_MAX) fail("{}: the vocabulary's pieces hold {} bytes; at most 4 GiB are supported", where, total);
  BpeModel m;
  m.set_pieces(pieces);
  m.byte_fallback_ = byte_fallback;
  const int32_t n = m.size();
  if (unk_id >= n) fail("{}: unknown-token id {} is outside the vocabulary (size {})", where, unk_id, n);
  m.unk_id_ = unk_id;
  m.merges_ = MergeTable(merges.size());
  for (const RankedMerge& r : merges) {
    if (r.left < 0 || r.left >= n || r.right < 0 || r.right >= n || r.merged < 0 || r.merged >= n)
      fail("{}: a merge names an id outside the vocabulary (size {})", where, n);
    m.merges_.insert(r.left, r.right, Merge{r.rank, r.merged});
  }
  return m;
}

int32_t BpeModel::char_id(uint32_t cp) const {
  if (cp < 128) return ascii_ids_[cp];
  auto it = char_ids_.find(cp);
  return it == char_ids_.end() ? -1 : it->second;
}

namespace {

// One symbol of the word being merged; removed symbols are unlinked from the list.
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
};

// A candidate merge of the symbol at `pos` with its right neighbour. HF's BinaryHeap pops
// the lowest rank first and, among equal ranks, the leftmost position: same order here.
struct Candidate {
  uint32_t rank;
  int32_t pos;
  int32_t merged;
};
struct LaterCandidate {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};

}  // namespace

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  // Per-call buffers: encode is const and may run on several threads at once.
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  bool last_unk = false;
  auto push = [&](int32_t id) {
    const int32_t i = int32_t(sym.size());
    sym.push_back({id, i - 1, i + 1});
  };
  for (size_t pos = 0; pos < word.size();) {
    uint32_t cp = 0;
    const size_t len = utf8::decode_one(word, pos, cp);
    if (len == 0) fail("internal error: BPE word is not valid UTF-8 at byte {}", pos);
    const int32_t id = char_id(cp);
    if (id >= 0) {
      push(id);
      last_unk = false;
    } else if (byte_fallback_ && has_all_bytes_) {
      for (size_t k = 0; k < len; ++k) push(byte_ids_[uint8_t(word[pos + k])]);
      last_unk = false;
    } else if (unk_id_ >= 0) {
      if (!(fuse_unk_ && last_unk)) push(unk_id_);
      last_unk = true;
    } else {
      fail("cannot tokenize U+{:04X}: it is not in the vocabulary, and the tokenizer has neither byte fallback nor an unk_token", cp);
    }
    pos += len;
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  std::vector<Candidate> heap;
  heap.reserve(sym.size());
  for (int32_t i = 0; i + 1 < int32_t(sym.size()); ++i) {
    if (const Merge* mg = merges_.find(sym[size_t(i)].id, sym[size_t(i) + 1].id)) heap.push_back({mg->rank, i, mg->merged});
  }
  std::make_heap(heap.begin(), heap.end(), LaterCandidate{});
  auto consider = [&](int32_t left) {
    const int32_t right = sym[size_t(left)].next;
    if (const Merge* mg = merges_.find(sym[size_t(left)].id, sym[size_t(right)].id)) {
      heap.push_back({mg->rank, left, mg->merged});
      std::push_heap(heap.begin(), heap.end(), LaterCandidate{});
    }
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), LaterCandidate{});
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& s = sym[size_t(c.pos)];
    // Skip candidates made stale by earlier merges: the left symbol was merged into its
    // left neighbour (id -1), or its right neighbour changed so the pair is another one.
    if (s.id < 0 || s.next < 0) continue;
    const Merge* now = merges_.find(s.id, sym[size_t(s.next)].id);
    if (!now || now->merged != c.merged) continue;
    const int32_t right = s.next;
    s.id = c.merged;
    s.next = sym[size_t(right)].next;
    sym[size_t(right)].id = -1;
    if (s.next >= 0) sym[size_t(s.next)].prev = c.pos;
    if (s.prev >= 0) consider(s.prev);
    if (s.next >= 0) consider(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next) out.push_back(sym[size_t(i)].id);
}

}  // namespace unicorn
