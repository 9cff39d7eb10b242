// The SentencePiece-style vocabulary that llama.cpp embeds in a Gemma 3 GGUF, built from a
// Hugging Face folder's tokenizer.json (or tokenizer.json.gz) and tokenizer_config.json the
// way llama.cpp's convert_hf_to_gguf.py builds it from tokenizer.model
// (_set_vocab_sentencepiece + gguf-py's SpecialVocab):
//   - every vocabulary piece: NORMAL, score -(rank of the first merge that makes it + 1),
//     -0.0 for a piece no merge makes (SentencePiece's BPE scores, which gguf_vocab.h reads
//     back as merge priorities); <0xHH> byte pieces: BYTE, score 0;
//   - added tokens (tokenizer_config.json's added_tokens_decoder, else tokenizer.json's
//     added_tokens): CONTROL when marked special or looking special (<mask>, <unused...>,
//     <|...|>), else USER_DEFINED with U+2581 turned back into spaces; score -1000;
//   - ids past the tokenizer up to the model's vocab_size: "[PAD<id>]", UNUSED, -10000;
//   - bos/eos/unk/pad ids from tokenizer_config's *_token names, add_bos/add_sep/add_eos,
//     and the chat template (tokenizer_config.json, chat_template.jinja or .json).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/gguf_writer.h"

namespace unicorn {

struct GgufVocabExport {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;  // llama.cpp's llama_token_type values (gguf_vocab.h TokenType)
  // In the order SpecialVocab writes them: (key suffix, id), e.g. ("bos", 2).
  std::vector<std::pair<std::string, uint32_t>> special_ids;
  std::vector<std::pair<std::string, bool>> add_special;  // ("bos", true), ("sep", false), ...
  std::optional<std::string> chat_template;
};

// Reads the folder's tokenizer files; vocab_size is the model's (the embedding rows), which
// may exceed the tokenizer's. Errors name the folder and what is missing or malformed.
GgufVocabExport build_gguf_vocab(const std::string& model_dir, int64_t vocab_size);

// Sets the tokenizer.* keys in convert_hf_to_gguf.py's order.
void write_gguf_vocab(GgufWriter& w, const GgufVocabExport& v);

}  // namespace unicorn
