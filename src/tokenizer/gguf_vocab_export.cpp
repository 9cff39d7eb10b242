#include "tokenizer/gguf_vocab_export.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/error.h"
#include "formats/gzip.h"
#include "formats/mapped_file.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer_json.h"

namespace unicorn {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct AddedToken {
  std::string content;
  bool special = false;
};

// ref: gguf-py vocab.py SpecialVocab / convert_hf_to_gguf.py does_token_look_special.
bool looks_special(const std::string& t) {
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  if (t.starts_with("<|") && t.ends_with("|>")) return true;
  if (t.starts_with("<\xef\xbd\x9c") && t.ends_with("\xef\xbd\x9c>")) return true;  // <｜ ... ｜>
  return t.starts_with("<unused") && t.ends_with(">");
}

bool is_byte_piece(std::string_view p) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return p.size() == 6 && p.starts_with("<0x") && hex(p[3]) && hex(p[4]) && p[5] == '>';
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  size_t at = 0;
  for (size_t hit = s.find(from); hit != std::string_view::npos; hit = s.find(from, at)) {
    out.append(s.substr(at, hit - at)).append(to);
    at = hit + from.size();
  }
  return out.append(s.substr(at));
}

json read_json(const std::string& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", path, e.what());
  }
}

// A *_token entry of tokenizer_config.json: a string or {"content": ...}.
std::optional<std::string> token_content(const json& cfg, const std::string& key) {
  if (!cfg.contains(key)) return std::nullopt;
  const json& e = cfg[key];
  if (e.is_string()) return e.get<std::string>();
  if (e.is_object() && e.contains("content") && e["content"].is_string()) return e["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

GgufVocabExport build_gguf_vocab(const std::string& model_dir, int64_t vocab_size) {
  const fs::path dir(model_dir);
  const std::string json_path = (dir / "tokenizer.json").string(), gz_path = json_path + ".gz";
  std::string text, where;
  if (file_exists(json_path)) {
    text = read_file(json_path);
    where = json_path;
  } else if (file_exists(gz_path)) {
    text = read_gzip_file(gz_path);
    where = gz_path;
  } else {
    fail("{}: no tokenizer.json (or tokenizer.json.gz): a GGUF file embeds the vocabulary, copy tokenizer.json from "
         "the model's Hugging Face repository", model_dir);
  }
  const TokenizerJson tj = parse_tokenizer_json(text, where);
  if (!tj.has_vocab || !tj.has_merges)
    fail("{}: expected a BPE model with a vocabulary and merges (Gemma 3's tokenizer)", where);

  // ref: convert_hf_to_gguf.py _set_vocab_sentencepiece; tokenizer.model's BPE scores are
  // -(merge rank + 1) of the first merge that makes the piece.
  std::unordered_map<std::string_view, int64_t> first_rank;
  std::vector<std::string> merged_pieces(tj.merges.size());
  for (size_t r = 0; r < tj.merges.size(); ++r) {
    merged_pieces[r] = std::string(tj.text(tj.merges[r].left)) + std::string(tj.text(tj.merges[r].right));
    first_rank.emplace(merged_pieces[r], int64_t(r));
  }
  int64_t n_pieces = 0;
  for (const auto& e : tj.vocab) n_pieces = std::max(n_pieces, e.id + 1);
  if (n_pieces > vocab_size)
    fail("{}: the tokenizer has {} pieces but the model's vocab_size is {}", where, n_pieces, vocab_size);

  GgufVocabExport v;
  const auto n = size_t(vocab_size);
  v.tokens.resize(n);
  v.scores.assign(n, -10000.0f);
  v.types.assign(n, int32_t(TokenType::Unused));
  for (size_t i = 0; i < n; ++i) v.tokens[i] = fmt::format("[PAD{}]", i);
  for (const auto& e : tj.vocab) {
    const std::string_view piece = tj.text(e.piece);
    const auto i = size_t(e.id);
    v.tokens[i] = std::string(piece);
    if (is_byte_piece(piece)) {
      v.scores[i] = 0.0f;
      v.types[i] = int32_t(TokenType::Byte);
    } else {
      const auto r = first_rank.find(piece);
      v.scores[i] = r == first_rank.end() ? -0.0f : -float(r->second + 1);
      v.types[i] = int32_t(TokenType::Normal);
    }
  }

  const std::string config_path = (dir / "tokenizer_config.json").string();
  const json config = file_exists(config_path) ? read_json(config_path) : json::object();
  std::map<int64_t, AddedToken> added;
  if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
    for (const auto& [id, t] : config["added_tokens_decoder"].items())
      added[std::stoll(id)] = {t.value("content", ""), t.value("special", false)};
  } else if (tj.rest.contains("added_tokens") && tj.rest["added_tokens"].is_array()) {
    for (const json& t : tj.rest["added_tokens"]) added[t.value("id", int64_t(-1))] = {t.value("content", ""), t.value("special", false)};
  }
  for (const auto& [id, t] : added) {
    if (id < 0 || id >= vocab_size) continue;  // convert_hf_to_gguf skips these with a warning
    const auto i = size_t(id);
    const bool control = t.special || looks_special(t.content);
    v.tokens[i] = control ? t.content : replace_all(t.content, "\xe2\x96\x81", " ");
    v.types[i] = int32_t(control ? TokenType::Control : TokenType::UserDefined);
    v.scores[i] = -1000.0f;
  }

  // ref: gguf-py SpecialVocab: ids of tokenizer_config's *_token by their added token.
  for (const auto& [typ, key] : std::vector<std::pair<std::string, std::string>>{
           {"bos", "bos_token"}, {"eos", "eos_token"}, {"unk", "unk_token"}, {"sep", "sep_token"},
           {"pad", "pad_token"}, {"cls", "cls_token"}, {"mask", "mask_token"}}) {
    const auto content = token_content(config, key);
    if (!content) continue;
    for (const auto& [id, t] : added) {
      if (t.content != *content) continue;
      if (id >= 0 && id < vocab_size) v.special_ids.push_back({typ, uint32_t(id)});
      break;
    }
  }
  // tokenizer.json's TemplateProcessing says whether BOS is added and that no separator is;
  // tokenizer_config.json's add_bos_token / add_eos_token take precedence.
  const json& post = tj.rest.contains("post_processor") ? tj.rest["post_processor"] : json();
  if (post.is_object() && post.value("type", "") == "TemplateProcessing") {
    const json single = post.value("single", json::array());
    if (single.size() > 1 && single[0].contains("SpecialToken")) v.add_special.push_back({"bos", true});
    if (post.contains("pair") && post["pair"].size() > 2) v.add_special.push_back({"sep", false});
  }
  for (const std::string typ : {"bos", "eos"}) {
    const std::string key = "add_" + typ + "_token";
    if (!config.contains(key) || !config[key].is_boolean()) continue;
    auto it = std::find_if(v.add_special.begin(), v.add_special.end(), [&](const auto& p) { return p.first == typ; });
    if (it != v.add_special.end()) {
      it->second = config[key].get<bool>();
    } else {
      v.add_special.push_back({typ, config[key].get<bool>()});
    }
  }

  const std::string jinja = (dir / "chat_template.jinja").string(), tmpl_json = (dir / "chat_template.json").string();
  if (config.contains("chat_template") && config["chat_template"].is_string()) {
    v.chat_template = config["chat_template"].get<std::string>();
  } else if (file_exists(jinja)) {
    v.chat_template = read_file(jinja);
  } else if (file_exists(tmpl_json)) {
    const json t = read_json(tmpl_json);
    if (t.contains("chat_template") && t["chat_template"].is_string()) v.chat_template = t["chat_template"].get<std::string>();
  }
  return v;
}

void write_gguf_vocab(GgufWriter& w, const GgufVocabExport& v) {
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string("tokenizer.ggml.pre", "default");
  w.set_array("tokenizer.ggml.tokens", GgufWriter::Array::of(std::span<const std::string>(v.tokens)));
  w.set_array("tokenizer.ggml.scores", GgufWriter::Array::of(std::span<const float>(v.scores)));
  w.set_array("tokenizer.ggml.token_type", GgufWriter::Array::of(std::span<const int32_t>(v.types)));
  // ref: gguf-py constants.py Keys.Tokenizer (sic: "seperator").
  const std::map<std::string, std::string> id_key = {{"bos", "bos_token_id"}, {"eos", "eos_token_id"},
                                                     {"unk", "unknown_token_id"}, {"sep", "seperator_token_id"},
                                                     {"pad", "padding_token_id"}, {"cls", "cls_token_id"},
                                                     {"mask", "mask_token_id"}};
  for (const auto& [typ, id] : v.special_ids) w.set_u32("tokenizer.ggml." + id_key.at(typ), id);
  for (const auto& [typ, on] : v.add_special) w.set_bool("tokenizer.ggml.add_" + typ + "_token", on);
  if (v.chat_template) w.set_string("tokenizer.chat_template", *v.chat_template);
  w.set_bool("tokenizer.ggml.add_space_prefix", false);  // ref: convert_hf_to_gguf.py Gemma3Model.set_vocab
}

}  // namespace unicorn
