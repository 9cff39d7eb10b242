// Incremental detokenization for generation: ids arrive one at a time and the text that is
// certain so far comes out, never half a character. Byte-fallback pieces (<0xE4><0xBD><0xA0>
// for 你) can spread one character over several ids, so their bytes wait until the character
// is whole.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace unicorn {

class StreamingDecoder {
 public:
  // Keeps a reference: the tokenizer must outlive the decoder.
  StreamingDecoder(const Tokenizer& tokenizer, bool skip_special) : tok_(tokenizer), skip_special_(skip_special) {}

  // Adds one id (Error when out of range); returns the text it completes, often "" while a
  // character is still missing bytes.
  std::string push(int32_t id);
  // Ends the stream: bytes still waiting (a character that never completed) come out as
  // U+FFFD, one per byte, as Tokenizer::decode writes them.
  std::string finish();

  // The concatenation of every push() and finish() equals Tokenizer::decode of all ids
  // whenever each run of byte pieces is valid UTF-8 (what a model writes). In a run with a
  // bad byte, decode replaces every byte of the run while the stream, which has already
  // written the run's whole characters, replaces only the bytes that cannot be part of one.

 private:
  // Moves whole characters of pending_ to `out`; with `all`, the rest too, as U+FFFD.
  void drain(std::string& out, bool all);

  const Tokenizer& tok_;
  bool skip_special_;
  std::string pending_;  // bytes of an unfinished character
};

}  // namespace unicorn
