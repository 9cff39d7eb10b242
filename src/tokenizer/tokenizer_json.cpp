#include "tokenizer/tokenizer_json.h"

#include <limits>

#include "core/error.h"

namespace unicorn {

namespace {

using json = nlohmann::json;

// SAX handler: model.vocab and model.merges go to TokenizerJson's flat arrays, every other
// value into a DOM. `containers_` is the path of open arrays/objects in that DOM.
class Reader final : public nlohmann::json_sax<json> {
 public:
  explicit Reader(TokenizerJson& out) : out_(out) {}

  std::string error;  // set when the content (not the syntax) is wrong

  bool null() override { return value(json(nullptr)); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override {
    if (mode_ == Mode::Vocab) return vocab_id(v);
    return value(json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == Mode::Vocab) {
      if (v > uint64_t(std::numeric_limits<int64_t>::max())) return bad("vocab id of '" + vocab_key_ + "' is too large");
      return vocab_id(int64_t(v));
    }
    return value(json(v));
  }
  bool number_float(number_float_t v, const string_t&) override {
    if (mode_ == Mode::Vocab) return bad("vocab id of '" + vocab_key_ + "' must be an integer");
    return value(json(v));
  }
  bool string(string_t& v) override {
    if (mode_ == Mode::Merges) {
      // Older files write a merge as one string "left right".
      const size_t space = v.find(' ');
      if (space == std::string::npos || v.find(' ', space + 1) != std::string::npos)
        return bad("merge " + std::to_string(out_.merges.size()) + " '" + v + "' must be two pieces separated by one space");
      out_.merges.push_back({stash(std::string_view(v).substr(0, space)), stash(std::string_view(v).substr(space + 1))});
      return true;
    }
    if (mode_ == Mode::MergePair) {
      if (pair_parts_ >= 2) return bad("merge " + std::to_string(out_.merges.size()) + " must be a pair of two strings");
      (pair_parts_ == 0 ? pair_.left : pair_.right) = stash(v);
      ++pair_parts_;
      return true;
    }
    return value(json(std::move(v)));
  }
  bool binary(binary_t&) override { return bad("unexpected binary value"); }

  bool start_object(std::size_t) override {
    if (mode_ != Mode::Dom) return bad(std::string("unexpected object inside model.") + (mode_ == Mode::Vocab ? "vocab" : "merges"));
    if (at_model_key("vocab")) {
      mode_ = Mode::Vocab;
      out_.has_vocab = true;
      return true;
    }
    return open(json::object());
  }
  bool key(string_t& k) override {
    if (mode_ == Mode::Vocab) {
      vocab_key_ = std::move(k);
    } else {
      key_ = std::move(k);
    }
    return true;
  }
  bool end_object() override {
    if (mode_ == Mode::Vocab) {
      mode_ = Mode::Dom;
      return true;
    }
    containers_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (mode_ == Mode::Vocab) return bad("unexpected array inside model.vocab");
    if (mode_ == Mode::MergePair) return bad("merge " + std::to_string(out_.merges.size()) + " must be a pair of two strings");
    if (mode_ == Mode::Merges) {
      mode_ = Mode::MergePair;
      pair_parts_ = 0;
      return true;
    }
    if (at_model_key("merges")) {
      mode_ = Mode::Merges;
      out_.has_merges = true;
      return true;
    }
    return open(json::array());
  }
  bool end_array() override {
    if (mode_ == Mode::MergePair) {
      if (pair_parts_ != 2) return bad("merge " + std::to_string(out_.merges.size()) + " must be a pair of two strings");
      out_.merges.push_back(pair_);
      mode_ = Mode::Merges;
      return true;
    }
    if (mode_ == Mode::Merges) {
      mode_ = Mode::Dom;
      return true;
    }
    containers_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    syntax_error = "invalid JSON at byte " + std::to_string(position) + ": " + e.what();
    return false;
  }

  std::string syntax_error;

 private:
  enum class Mode { Dom, Vocab, Merges, MergePair };

  bool bad(std::string msg) {
    error = std::move(msg);
    return false;
  }
  bool vocab_id(int64_t id) {
    out_.vocab.push_back({stash(vocab_key_), id});
    return true;
  }
  TokenizerJson::Span stash(std::string_view s) {
    if (out_.bytes.size() + s.size() > std::numeric_limits<uint32_t>::max()) {
      bad("vocabulary text larger than 4 GiB");
      return {};
    }
    TokenizerJson::Span span{uint32_t(out_.bytes.size()), uint32_t(s.size())};
    out_.bytes.append(s);
    return span;
  }
  // True when the next value is root.model.<name>.
  bool at_model_key(const char* name) const {
    return containers_.size() == 2 && containers_[1] == model_ && key_ == name;
  }
  // Places a value in the DOM at the current position; returns where it went.
  json* place(json&& v) {
    if (containers_.empty()) {
      out_.rest = std::move(v);
      return &out_.rest;
    }
    json* top = containers_.back();
    if (top->is_object()) {
      json& slot = (*top)[key_];
      slot = std::move(v);
      return &slot;
    }
    top->push_back(std::move(v));
    return &top->back();
  }
  bool value(json&& v) {
    if (mode_ == Mode::Vocab) return bad("vocab id of '" + vocab_key_ + "' must be an integer");
    if (mode_ != Mode::Dom) return bad("merge " + std::to_string(out_.merges.size()) + " must be a pair of two strings");
    place(std::move(v));
    return true;
  }
  bool open(json&& container) {
    const bool is_model = containers_.size() == 1 && key_ == "model" && containers_[0]->is_object();
    json* p = place(std::move(container));
    if (is_model) model_ = p;
    containers_.push_back(p);
    return true;
  }

  TokenizerJson& out_;
  Mode mode_ = Mode::Dom;
  std::vector<json*> containers_;
  const json* model_ = nullptr;
  std::string key_, vocab_key_;
  TokenizerJson::MergeEntry pair_{};
  int pair_parts_ = 0;
};

}  // namespace

TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& where) {
  TokenizerJson out;
  // Gemma 3: ~3 MB of vocabulary text, 262144 entries, 514906 merges; reserving by the file
  // size keeps the big buffers from being copied while they grow.
  out.bytes.reserve(text.size() / 4);
  Reader reader(out);
  const bool ok = json::sax_parse(text.begin(), text.end(), &reader);
  if (!ok) {
    if (!reader.syntax_error.empty()) fail("{}: {}", where, reader.syntax_error);
    fail("{}: {}", where, reader.error.empty() ? "cannot parse" : reader.error);
  }
  if (!reader.error.empty()) fail("{}: {}", where, reader.error);
  if (!out.rest.is_object()) fail("{}: expected a JSON object at the top level", where);
  return out;
}

}  // namespace unicorn
