// The Gemma 3 tokenizer, read from a Hugging Face tokenizer.json: added tokens matched in
// the raw text, the rest normalized (' ' -> '▁'), pre-tokenized and encoded by BPE with byte
// fallback; decoding reverses it (▁ -> ' ', <0xNN> pieces -> bytes, fused). Reproduces HF
// `tokenizers` 0.23 on the reference (tests/data/tokenizer/encode.jsonl).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"

namespace unicorn {

// What tokenizer_config.json says about special tokens; defaults are Gemma's.
struct TokenizerOptions {
  bool add_bos_token = true;         // GemmaTokenizer default
  std::string bos_token = "<bos>";
  std::string eos_token = "<eos>";   // instruction-tuned configs say "<end_of_turn>"
};

// Reads the options from tokenizer_config.json text (absent fields keep the defaults;
// bos_token/eos_token may be a string or an object with "content", as older files write).
TokenizerOptions parse_tokenizer_options(std::string_view json_text, const std::string& where);

struct SentencePieceVocab;

// Immutable after loading: encode and decode are const and safe from several threads.
// Move-only (it holds views into its own buffers); share one by reference or shared_ptr.
class Tokenizer {
 public:
  // Loads <model_dir>/tokenizer.json, or tokenizer.json.gz when only that exists, and
  // <model_dir>/tokenizer_config.json when present. Errors name the folder or the file.
  static Tokenizer load(const std::string& model_dir);
  // Builds a tokenizer from tokenizer.json text; `where` names it in errors.
  static Tokenizer from_json_text(std::string_view tokenizer_json, const TokenizerOptions& options = {},
                                  const std::string& where = "tokenizer.json");
  // Builds a tokenizer from a SentencePiece-style vocabulary such as GGUF files embed
  // (gguf_vocab.h; defined in gguf_vocab.cpp). `where` names its source in errors.
  static Tokenizer from_sentencepiece(const SentencePieceVocab& vocab, const std::string& where);

  // Token ids of UTF-8 text. With add_bos, BOS comes first when the tokenizer's config asks
  // for it (add_bos_token, true for Gemma), like HF's add_special_tokens=True. Special tokens
  // written in the text ("<start_of_turn>", "<bos>") become their ids. Throws Error naming
  // the byte offset when the text is not valid UTF-8.
  std::vector<int32_t> encode(std::string_view text, bool add_bos) const;

  // Text of ids; with skip_special, special tokens (<bos>, <end_of_turn>, <image_soft_token>,
  // ...) are left out. Byte pieces that do not form valid UTF-8 become U+FFFD, one per byte,
  // as in HF. Throws Error on an id outside [0, vocab_size()).
  std::string decode(std::span<const int32_t> ids, bool skip_special) const;

  // The piece of an id as the vocabulary spells it ("▁world", "<0x0A>", "<start_of_turn>").
  std::string token_piece(int32_t id) const;
  // The id of a piece (added tokens first, then the BPE vocabulary), if it has one.
  std::optional<int32_t> token_id(std::string_view piece) const;

  // Number of ids: the BPE vocabulary plus added tokens past its end (Gemma 3: 262144 + 1 for
  // <image_soft_token>).
  int32_t vocab_size() const { return bpe_.size() + int32_t(extra_pieces_.size()); }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }  // tokenizer_config's eos_token
  bool adds_bos() const { return options_.add_bos_token; }
  bool is_special(int32_t id) const { return in_range(id) && special_[size_t(id)]; }

  // For StreamingDecoder and decode. The text a token contributes before byte fallback and
  // fusing ('▁' already turned into ' '); Error when id is out of range.
  std::string token_text(int32_t id) const;
  // The byte of a <0xNN> piece, or -1 for other pieces (and for all when the decoder has no
  // ByteFallback step). `id` must be in range.
  int byte_value(int32_t id) const { return decode_byte_fallback_ ? byte_value_[size_t(id)] : -1; }
  // Throws Error when id is outside [0, vocab_size()).
  void check_id(int32_t id) const;

 private:
  bool in_range(int32_t id) const { return id >= 0 && id < vocab_size(); }
  void encode_segment(std::string_view text, std::vector<int32_t>& out) const;

  std::string_view piece_view(int32_t id) const {
    return id < bpe_.size() ? bpe_.piece(id) : std::string_view(extra_pieces_[size_t(id - bpe_.size())]);
  }

  BpeModel bpe_;
  AddedTokenMatcher added_;
  std::vector<std::string> extra_pieces_;  // added tokens with ids past the BPE vocabulary
  std::vector<bool> special_;
  std::vector<int16_t> byte_value_;
  // normalizer: literal replacements applied in order (Gemma 3: ' ' -> '▁')
  std::vector<std::pair<std::string, std::string>> normalize_;
  // pre_tokenizer: split after each occurrence of this literal (Split, MergedWithPrevious);
  // empty = no pre-tokenizer
  std::string split_after_;
  // decoder: literal replacements per token before byte fallback (Gemma 3: '▁' -> ' ')
  std::vector<std::pair<std::string, std::string>> decode_replace_;
  bool decode_byte_fallback_ = false;
  TokenizerOptions options_;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
};

}  // namespace unicorn
