// Generation: TextStream (stop strings, held-back text, whole UTF-8 characters) with the real
// Gemma 3 tokenizer, and generate() on the bundled demo model (token limit, end of sequence,
// cancellation, seeded sampling).
#include "runtime/generation.h"

#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "support/demo_model.h"
#include "support/gemma_tokenizer.h"
#include "tokenizer/utf8.h"

namespace unicorn {
namespace {

struct Streamed {
  std::vector<std::string> pieces;  // what push() returned for each id, then finish()
  std::string text;                 // all of them
  size_t stopped_at = size_t(-1);   // index of the id after which stopped() became true
};

Streamed stream_ids(const std::vector<int32_t>& ids, std::vector<std::string> stop) {
  TextStream stream(test::gemma_tokenizer(), std::move(stop));
  Streamed s;
  for (size_t i = 0; i < ids.size(); ++i) {
    s.pieces.push_back(stream.push(ids[i]));
    s.text += s.pieces.back();
    if (stream.stopped() && s.stopped_at == size_t(-1)) s.stopped_at = i;
  }
  s.pieces.push_back(stream.finish());
  s.text += s.pieces.back();
  return s;
}

std::vector<int32_t> ids_of(const std::string& text) { return test::gemma_tokenizer().encode(text, false); }

TEST(TextStream, MultiTokenStopStringEndsTheTextAndIsNeverShown) {
  const std::string stop = "the END";
  ASSERT_GE(ids_of(stop).size(), 2u) << "the stop string must span several tokens";
  const std::vector<int32_t> ids = ids_of("Here we go, this is the END of the story.");
  const Streamed s = stream_ids(ids, {stop});
  EXPECT_EQ(s.text, "Here we go, this is ");
  // It stopped at the token that completed "END", not later.
  ASSERT_NE(s.stopped_at, size_t(-1));
  EXPECT_EQ(test::gemma_tokenizer().decode(std::span(ids).first(s.stopped_at + 1), false),
            "Here we go, this is the END");
  for (const auto& p : s.pieces) {
    EXPECT_EQ(p.find("the"), std::string::npos) << "a piece of the stop string was shown: " << p;
    EXPECT_EQ(p.find("END"), std::string::npos) << p;
  }
  // Nothing comes after a stop, finish() included.
  for (size_t i = s.stopped_at + 1; i < s.pieces.size(); ++i) EXPECT_EQ(s.pieces[i], "") << i;
}

TEST(TextStream, EarliestOfSeveralStopStrings) {
  const Streamed s = stream_ids(ids_of("one, two, three, four"), {"four", ", t"});
  EXPECT_EQ(s.text, "one");
}

TEST(TextStream, PartialMatchIsHeldThenReleased) {
  // " the" could become "the END": held back until " Eagle" (or " hill") shows it is not.
  const std::string text = "Look at the Eagle over the hill";
  const std::vector<int32_t> ids = ids_of(text);
  TextStream stream(test::gemma_tokenizer(), {"the END"});
  std::string shown, decoded_so_far;
  bool held_something = false;
  for (size_t i = 0; i < ids.size(); ++i) {
    shown += stream.push(ids[i]);
    decoded_so_far = test::gemma_tokenizer().decode(std::span(ids).first(i + 1), false);
    ASSERT_EQ(decoded_so_far.compare(0, shown.size(), shown), 0) << "shown text is not a prefix";
    const std::string held = decoded_so_far.substr(shown.size());
    // Whatever is held is a prefix of the stop string (after the text before it).
    if (!held.empty()) {
      held_something = true;
      EXPECT_EQ(std::string("the END").compare(0, held.size(), held), 0) << "held \"" << held << "\"";
    }
  }
  EXPECT_TRUE(held_something);
  EXPECT_FALSE(stream.stopped());
  shown += stream.finish();
  EXPECT_EQ(shown, text);
}

TEST(TextStream, FinishFlushesAHeldTail) {
  // Ends in "the": a possible start of "the END" that never completed.
  const std::vector<int32_t> ids = ids_of("Over the");
  TextStream stream(test::gemma_tokenizer(), {"the END"});
  std::string shown;
  for (int32_t id : ids) shown += stream.push(id);
  EXPECT_EQ(shown, "Over ");
  EXPECT_EQ(stream.finish(), "the");
  EXPECT_FALSE(stream.stopped());
}

TEST(TextStream, ByteFallbackCharactersAreNeverSplit) {
  const Tokenizer& tok = test::gemma_tokenizer();
  // Characters the vocabulary lacks come as <0xNN> byte pieces, 3 or 4 ids per character.
  const std::string text = "A \xF0\x93\x80\x80 and \xF0\x90\x8C\xB0\xF0\x90\x8C\xB1 then \xE4\xBD\xA0\xE5\xA5\xBD!";
  const std::vector<int32_t> ids = ids_of(text);
  int byte_pieces = 0;
  for (int32_t id : ids) byte_pieces += tok.byte_value(id) >= 0;
  ASSERT_GE(byte_pieces, 6) << "the test needs characters spread over byte-fallback tokens";
  for (const std::vector<std::string>& stop : {std::vector<std::string>{}, std::vector<std::string>{"then X"}}) {
    const Streamed s = stream_ids(ids, stop);
    EXPECT_EQ(s.text, text);
    int empty_while_waiting = 0;
    for (const auto& p : s.pieces) {
      EXPECT_EQ(utf8::find_invalid(p), utf8::kValid) << "a piece splits a character";
      empty_while_waiting += p.empty();
    }
    EXPECT_GT(empty_while_waiting, 0);  // some ids completed no character
  }
}

TEST(TextStream, StopStringWithAByteFallbackCharacter) {
  // The stop string's first character arrives as four byte pieces: none of them shows.
  const std::string text = "go \xF0\x93\x80\x80 stop here";
  const Streamed s = stream_ids(ids_of(text), {"\xF0\x93\x80\x80 stop"});
  EXPECT_EQ(s.text, "go ");
  for (const auto& p : s.pieces) EXPECT_EQ(utf8::find_invalid(p), utf8::kValid);
}

// ---------------------------------------------------------------- generate() on the demo model

struct Prompted {
  std::unique_ptr<Sequence> seq;
  Tensor logits;
};

Prompted prompt(const std::string& user_text) {
  Engine& e = test::demo_engine();
  Prompted p;
  p.seq = e.new_sequence();
  p.logits = e.append(*p.seq, test::demo_prompt_ids(user_text), nullptr, false);
  return p;
}

GenerateResult run(const std::string& user_text, const GenerateOptions& o,
                   const std::function<void(std::string_view)>& on_text = nullptr,
                   const std::atomic<bool>* cancel = nullptr) {
  Prompted p = prompt(user_text);
  Engine& e = test::demo_engine();
  return generate(e, *p.seq, *e.tokenizer(), p.logits, o, on_text, cancel);
}

TEST(Generate, EndOfTurnFinishesWithStop) {
  const GenerateResult r = run("Hello!", test::demo_greedy());
  EXPECT_EQ(r.text, "Hello! Show me a picture of a shape and ask me about it.");
  EXPECT_EQ(r.finish, FinishReason::Stop);
  EXPECT_EQ(finish_reason_name(r.finish), "stop");
  const auto stops = test::demo_engine().config().stop_token_ids();
  for (int32_t t : r.tokens) EXPECT_EQ(std::count(stops.begin(), stops.end(), int64_t(t)), 0) << t;
  EXPECT_FALSE(r.pending.has_value());  // the answer's last token was read to predict <end_of_turn>
}

TEST(Generate, TokenLimitFinishesWithLength) {
  for (int64_t n : {1, 3, 5}) {
    GenerateOptions o = test::demo_greedy();
    o.max_tokens = n;
    const GenerateResult r = run("Hello!", o);
    EXPECT_EQ(r.finish, FinishReason::Length) << n;
    EXPECT_EQ(finish_reason_name(r.finish), "length");
    EXPECT_EQ(int64_t(r.tokens.size()), n);
    EXPECT_EQ(r.text, test::demo_engine().tokenizer()->decode(r.tokens, true));
    EXPECT_EQ(r.text, std::string("Hello! Show me a picture").substr(0, r.text.size()));
  }
  GenerateOptions zero = test::demo_greedy();
  zero.max_tokens = 0;
  const GenerateResult none = run("Hello!", zero);
  EXPECT_TRUE(none.tokens.empty());
  EXPECT_EQ(none.text, "");
  EXPECT_EQ(none.finish, FinishReason::Length);
}

TEST(Generate, StopStringFinishesWithStop) {
  GenerateOptions o = test::demo_greedy();
  o.stop = {"picture"};
  const GenerateResult r = run("Hello!", o);
  EXPECT_EQ(r.text, "Hello! Show me a ");
  EXPECT_EQ(r.finish, FinishReason::Stop);
}

TEST(Generate, CancelledBeforeTheFirstToken) {
  std::atomic<bool> cancel{true};
  const GenerateResult r = run("Hello!", test::demo_greedy(), nullptr, &cancel);
  EXPECT_EQ(r.finish, FinishReason::Cancelled);
  EXPECT_EQ(finish_reason_name(r.finish), "cancelled");
  EXPECT_TRUE(r.tokens.empty());
  EXPECT_EQ(r.text, "");
}

TEST(Generate, CancelledWhileGenerating) {
  std::atomic<bool> cancel{false};
  int pieces = 0;
  // The flag goes up with the first text shown, as a client that disconnects would set it.
  const GenerateResult r = run("Hello!", test::demo_greedy(), [&](std::string_view) {
    ++pieces;
    cancel = true;
  }, &cancel);
  EXPECT_EQ(r.finish, FinishReason::Cancelled);
  EXPECT_EQ(pieces, 1);
  EXPECT_EQ(r.tokens.size(), 1u);  // "Hello": checked before each next token
  EXPECT_EQ(r.text, "Hello");
}

TEST(Generate, SeedReproducesSampledText) {
  GenerateOptions o;
  o.sampling.temperature = 1.5f;  // the demo model is very sure of itself: flatten it to vary
  o.sampling.top_k = 64;          // without it each draw sorts all 262208 logits (60-300 ms)
  o.max_tokens = 8;
  auto text_with = [&](uint64_t seed) {
    GenerateOptions s = o;
    s.sampling.seed = seed;
    return run("What do you see?", s).text;
  };
  const std::string a = text_with(1);
  EXPECT_EQ(text_with(1), a);
  std::set<std::string> distinct{a};
  for (uint64_t seed = 2; seed <= 4; ++seed) distinct.insert(text_with(seed));
  EXPECT_GE(distinct.size(), 2u) << "four seeds, one text: " << a;
}

TEST(Generate, InvalidOptions) {
  GenerateOptions o = test::demo_greedy();
  o.max_tokens = -1;
  EXPECT_THROW(run("Hello!", o), Error);
  o = test::demo_greedy();
  o.sampling.top_p = 0.0f;
  EXPECT_THROW(run("Hello!", o), Error);
}

}  // namespace
}  // namespace unicorn
