// The tokenizer that llama.cpp embeds in a GGUF file: a SentencePiece-style vocabulary
// (tokenizer.ggml.model = "llama") of pieces, scores and token types, without a merges list.
// llama.cpp tokenizes it the SentencePiece way: split the text into characters, then merge
// the adjacent pair whose concatenation is the piece of highest score, leftmost first, until
// no pair forms a piece. When the scores come from BPE merge ranks (llama.cpp's converter
// writes score = -(rank of the first merge that makes the piece + 1), so Gemma 3's GGUF
// scores do) this reproduces the BPE of tokenizer.json. We build the same: our BPE model
// with a merge for every split of every normal piece into two pieces, ranked by score.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace unicorn {

// llama.cpp's token types (ref: llama.h enum llama_token_type).
enum class TokenType : int32_t { Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct SentencePieceVocab {
  std::vector<std::string_view> pieces;  // by id (views: the source must outlive the vocab)
  std::vector<float> scores;             // by id; higher merges first
  std::vector<TokenType> types;          // by id
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  bool add_bos = true;
};

// True when the file embeds a tokenizer (tokenizer.ggml.tokens).
bool has_gguf_vocab(const GgufFile& file);
// Reads tokenizer.ggml.*; Errors name the file and the key (a model other than "llama",
// arrays of different lengths, ids out of range, add_space_prefix, which Gemma does not use).
SentencePieceVocab read_gguf_vocab(const GgufFile& file);
// The Tokenizer of the file's embedded vocabulary.
Tokenizer tokenizer_from_gguf(const GgufFile& file);

}  // namespace unicorn
