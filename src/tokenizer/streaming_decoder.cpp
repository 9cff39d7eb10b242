#include "tokenizer/streaming_decoder.h"

#include "tokenizer/utf8.h"

namespace unicorn {

namespace {
constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD
}

void StreamingDecoder::drain(std::string& out, bool all) {
  for (;;) {
    size_t bad = utf8::kValid;
    const size_t ok = utf8::complete_prefix(pending_, bad);
    out.append(pending_, 0, ok);
    if (bad != utf8::kValid) {
      // A byte that can never start or continue a character: replace it and go on.
      out += kReplacement;
      pending_.erase(0, bad + 1);
      continue;
    }
    pending_.erase(0, ok);
    if (all) {
      for (size_t i = 0; i < pending_.size(); ++i) out += kReplacement;
      pending_.clear();
    }
    return;
  }
}

std::string StreamingDecoder::push(int32_t id) {
  tok_.check_id(id);
  std::string out;
  if (skip_special_ && tok_.is_special(id)) return out;
  if (const int b = tok_.byte_value(id); b >= 0) {
    pending_.push_back(char(b));
    drain(out, false);
    return out;
  }
  // Any other piece ends a byte run, as in decode: what is left of it can never complete.
  drain(out, true);
  out += tok_.token_text(id);
  return out;
}

std::string StreamingDecoder::finish() {
  std::string out;
  drain(out, true);
  return out;
}

}  // namespace unicorn
