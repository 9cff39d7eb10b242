#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/gzip.h"
#include "formats/mapped_file.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

namespace unicorn {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// A {"type": "Replace", "pattern": {"String": s}, "content": c} step, as (s, c).
std::pair<std::string, std::string> replace_step(const json& step, const std::string& where, const char* section) {
  const json* pattern = step.contains("pattern") ? &step["pattern"] : nullptr;
  if (!pattern || !pattern->is_object() || !pattern->contains("String") || !(*pattern)["String"].is_string())
    fail("{}: {} Replace must have a literal pattern {{\"String\": ...}} (regex patterns are not supported), got {}",
         where, section, step.dump());
  if (!step.contains("content") || !step["content"].is_string())
    fail("{}: {} Replace must have a string 'content', got {}", where, section, step.dump());
  auto s = (*pattern)["String"].get<std::string>();
  if (s.empty()) fail("{}: {} Replace has an empty pattern", where, section);
  return {std::move(s), step["content"].get<std::string>()};
}

std::string type_of(const json& step) {
  return step.is_object() && step.contains("type") && step["type"].is_string() ? step["type"].get<std::string>() : "";
}

// Flattens {"type": "Sequence", <list_key>: [...]} into its steps; any other step is itself.
std::vector<json> steps_of(const json& j, const char* list_key) {
  if (type_of(j) != "Sequence") return {j};
  std::vector<json> out;
  if (j.contains(list_key) && j[list_key].is_array())
    for (const auto& s : j[list_key]) out.push_back(s);
  return out;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  size_t pos = s.find(from);
  if (pos == std::string::npos) return;
  std::string out;
  out.reserve(s.size() + s.size() / 2);
  size_t last = 0;
  for (; pos != std::string::npos; pos = s.find(from, last)) {
    out.append(s, last, pos - last).append(to);
    last = pos + from.size();
  }
  out.append(s, last, std::string::npos);
  s = std::move(out);
}

// A <0xNN> piece's byte, or -1. ref: tokenizers decoders/byte_fallback.rs
int16_t parse_byte_piece(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  auto hex = [](char c) -> int { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
  const int hi = hex(p[3]), lo = hex(p[4]);
  return hi < 0 || lo < 0 ? -1 : int16_t(hi * 16 + lo);
}

// A token name in tokenizer_config.json: "<bos>" or {"content": "<bos>", ...}.
void token_name(const json& cfg, const char* key, std::string& out, const std::string& where) {
  if (!cfg.contains(key) || cfg[key].is_null()) return;
  const json& v = cfg[key];
  if (v.is_string()) {
    out = v.get<std::string>();
  } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    out = v["content"].get<std::string>();
  } else {
    fail("{}: '{}' must be a string or an object with 'content', got {}", where, key, v.dump());
  }
}

}  // namespace

TokenizerOptions parse_tokenizer_options(std::string_view json_text, const std::string& where) {
  json cfg;
  try {
    cfg = json::parse(json_text);
  } catch (const json::parse_error& e) {
    fail("{}: invalid JSON at byte {}: {}", where, e.byte, e.what());
  }
  if (!cfg.is_object()) fail("{}: expected a JSON object at the top level", where);
  TokenizerOptions o;
  if (cfg.contains("add_bos_token") && !cfg["add_bos_token"].is_null()) {
    if (!cfg["add_bos_token"].is_boolean()) fail("{}: 'add_bos_token' must be true or false, got {}", where, cfg["add_bos_token"].dump());
    o.add_bos_token = cfg["add_bos_token"].get<bool>();
  }
  // add_eos_token is not read: prompts for generation must not end with EOS, and HF's chat
  // path (apply_chat_template) tokenizes without special tokens anyway.
  token_name(cfg, "bos_token", o.bos_token, where);
  token_name(cfg, "eos_token", o.eos_token, where);
  return o;
}

Tokenizer Tokenizer::load(const std::string& model_dir) {
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) fail("{}: model folder not found (expected a folder with tokenizer.json)", model_dir);
  const std::string json_path = (fs::path(model_dir) / "tokenizer.json").string();
  const std::string gz_path = json_path + ".gz";
  const std::string config_path = (fs::path(model_dir) / "tokenizer_config.json").string();
  TokenizerOptions options;
  if (file_exists(config_path)) options = parse_tokenizer_options(read_file(config_path), config_path);
  if (file_exists(json_path)) {
    auto file = MappedFile::open(json_path);
    return from_json_text(std::string_view(reinterpret_cast<const char*>(file->data()), file->size()), options, json_path);
  }
  if (file_exists(gz_path)) return from_json_text(read_gzip_file(gz_path), options, gz_path);
  fail("{}: no tokenizer.json (or tokenizer.json.gz) in this folder; copy it from the model's Hugging Face repository",
       model_dir);
}

Tokenizer Tokenizer::from_json_text(std::string_view text, const TokenizerOptions& options, const std::string& where) {
  const TokenizerJson tj = parse_tokenizer_json(text, where);
  Tokenizer t;
  t.bpe_ = BpeModel::build(tj, where);
  t.options_ = options;
  const json& root = tj.rest;
  const int32_t n_bpe = t.bpe_.size();

  // Added tokens: an id inside the BPE vocabulary must name the same piece; ids past it
  // must continue it without gaps (HF assigns them that way).
  struct Added {
    int32_t id;
    std::string content;
    bool special;
  };
  std::vector<Added> added;
  if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
    const json& list = root["added_tokens"];
    if (!list.is_array()) fail("{}: 'added_tokens' must be an array", where);
    for (size_t i = 0; i < list.size(); ++i) {
      const json& a = list[i];
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string())
        fail("{}: added_tokens[{}] must be an object with an integer 'id' and a string 'content', got {}", where, i, a.dump());
      for (const char* flag : {"lstrip", "rstrip", "single_word", "normalized"}) {
        if (a.contains(flag) && a[flag].is_boolean() && a[flag].get<bool>())
          fail("{}: added token '{}' sets '{}', which is not supported (Gemma 3's added tokens set none)", where,
               a["content"].get<std::string>(), flag);
      }
      const int64_t id = a["id"].get<int64_t>();
      if (id < 0 || id > INT32_MAX) fail("{}: added token '{}' has id {}, out of range", where, a["content"].get<std::string>(), id);
      const bool special = a.contains("special") && a["special"].is_boolean() && a["special"].get<bool>();
      added.push_back({int32_t(id), a["content"].get<std::string>(), special});
    }
  }
  std::vector<const Added*> past;  // ids >= n_bpe, in id order
  for (const Added& a : added) {
    if (a.id < n_bpe) {
      if (t.bpe_.piece(a.id) != a.content)
        fail("{}: added token '{}' has id {}, but the vocabulary gives that id to '{}'", where, a.content, a.id, t.bpe_.piece(a.id));
    } else {
      past.push_back(&a);
    }
  }
  std::sort(past.begin(), past.end(), [](auto* x, auto* y) { return x->id < y->id; });
  for (size_t i = 0; i < past.size(); ++i) {
    if (past[i]->id != n_bpe + int32_t(i))
      fail("{}: added token '{}' has id {}; expected {} (ids past the vocabulary must follow it without gaps)", where,
           past[i]->content, past[i]->id, n_bpe + int32_t(i));
    t.extra_pieces_.push_back(past[i]->content);
  }
  t.special_.assign(size_t(t.vocab_size()), false);
  for (const Added& a : added) {
    t.added_.add(a.content, a.id);
    if (a.special) t.special_[size_t(a.id)] = true;
  }
  t.byte_value_.resize(size_t(t.vocab_size()));
  // From the raw piece: the decoder's replacements (▁ -> ' ') never touch "<0xNN>".
  for (int32_t id = 0; id < t.vocab_size(); ++id) t.byte_value_[size_t(id)] = parse_byte_piece(t.piece_view(id));

  // Normalizer: literal replacements only (Gemma 3: ' ' -> '▁').
  if (root.contains("normalizer") && !root["normalizer"].is_null()) {
    for (const json& step : steps_of(root["normalizer"], "normalizers")) {
      if (type_of(step) != "Replace")
        fail("{}: normalizer '{}' is not supported (Gemma 3 uses Replace ' ' -> '▁')", where, step.dump());
      t.normalize_.push_back(replace_step(step, where, "normalizer"));
    }
  }
  // Pre-tokenizer: none, or Split on a literal with the match kept at the end of each piece.
  if (root.contains("pre_tokenizer") && !root["pre_tokenizer"].is_null()) {
    const json& p = root["pre_tokenizer"];
    const bool ok = type_of(p) == "Split" && p.contains("pattern") && p["pattern"].is_object() &&
                    p["pattern"].contains("String") && p["pattern"]["String"].is_string() &&
                    !p["pattern"]["String"].get<std::string>().empty() && p.value("behavior", "") == "MergedWithPrevious" &&
                    !p.value("invert", false);
    if (!ok) fail("{}: pre_tokenizer {} is not supported (Gemma 3 uses Split on ' ', MergedWithPrevious)", where, p.dump());
    t.split_after_ = p["pattern"]["String"].get<std::string>();
  }
  // Decoder: Replace steps, then ByteFallback, then Fuse (concatenation, which decode does).
  if (!root.contains("decoder") || root["decoder"].is_null())
    fail("{}: 'decoder' is missing; expected Gemma 3's Replace '▁' -> ' ', ByteFallback, Fuse", where);
  bool fused = false;
  for (const json& step : steps_of(root["decoder"], "decoders")) {
    const std::string type = type_of(step);
    if (type == "Replace" && !t.decode_byte_fallback_ && !fused) {
      t.decode_replace_.push_back(replace_step(step, where, "decoder"));
    } else if (type == "ByteFallback" && !t.decode_byte_fallback_ && !fused) {
      t.decode_byte_fallback_ = true;
    } else if (type == "Fuse" && !fused) {
      fused = true;
    } else {
      fail("{}: decoder step {} is not supported here (expected Replace steps, ByteFallback, then Fuse)", where, step.dump());
    }
  }

  auto special_id = [&](const std::string& name, const char* what) {
    const auto id = t.token_id(name);
    if (!id) fail("{}: the {} '{}' (from tokenizer_config.json or Gemma's default) is not a token of this vocabulary", where, what, name);
    return *id;
  };
  t.bos_id_ = special_id(options.bos_token, "bos_token");
  t.eos_id_ = special_id(options.eos_token, "eos_token");
  return t;
}

void Tokenizer::check_id(int32_t id) const {
  if (!in_range(id)) fail("token id {} is out of range: this vocabulary has ids 0 to {}", id, vocab_size() - 1);
}

std::string Tokenizer::token_piece(int32_t id) const {
  check_id(id);
  return std::string(piece_view(id));
}

std::optional<int32_t> Tokenizer::token_id(std::string_view piece) const {
  if (const int32_t id = added_.exact(piece); id >= 0) return id;
  if (const int32_t id = bpe_.find(piece); id >= 0) return id;
  return std::nullopt;
}

std::string Tokenizer::token_text(int32_t id) const {
  check_id(id);
  std::string s(piece_view(id));
  for (const auto& [from, to] : decode_replace_) replace_all(s, from, to);
  return s;
}

void Tokenizer::encode_segment(std::string_view text, std::vector<int32_t>& out) const {
  std::string norm(text);
  for (const auto& [from, to] : normalize_) replace_all(norm, from, to);
  if (split_after_.empty()) {
    bpe_.encode_word(norm, out);
    return;
  }
  // Split, MergedWithPrevious: each piece ends with the delimiter (Gemma 3 splits on ' ',
  // which the normalizer has already replaced, so the whole segment is one word).
  size_t start = 0;
  while (start < norm.size()) {
    const size_t hit = norm.find(split_after_, start);
    const size_t end = hit == std::string::npos ? norm.size() : hit + split_after_.size();
    bpe_.encode_word(std::string_view(norm).substr(start, end - start), out);
    start = end;
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  utf8::require_valid(text, "text to tokenize");
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && options_.add_bos_token) out.push_back(bos_id_);
  size_t pos = 0;
  while (pos < text.size()) {
    const AddedTokenMatcher::Match m = added_.find(text, pos);
    const size_t end = m.id >= 0 ? m.pos : text.size();
    if (end > pos) encode_segment(text.substr(pos, end - pos), out);
    if (m.id < 0) break;
    out.push_back(m.id);
    pos = m.pos + m.size;
  }
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  std::string bytes;  // a run of <0xNN> pieces, turned into text when the run ends
  auto flush = [&] {
    if (bytes.empty()) return;
    // ref: tokenizers decoders/byte_fallback.rs: a run that is not valid UTF-8 becomes one
    // U+FFFD per byte.
    if (utf8::find_invalid(bytes) == utf8::kValid) {
      out += bytes;
    } else {
      for (size_t i = 0; i < bytes.size(); ++i) out += "\xEF\xBF\xBD";
    }
    bytes.clear();
  };
  for (const int32_t id : ids) {
    check_id(id);
    if (skip_special && special_[size_t(id)]) continue;
    if (const int b = byte_value(id); b >= 0) {
      bytes.push_back(char(b));
      continue;
    }
    flush();
    out += token_text(id);
  }
  flush();
  return out;
}

}  // namespace unicorn
