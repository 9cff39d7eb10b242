// unicorn chat: a conversation at the terminal. Each message (with the images attached by
// /image) is answered as it is generated; ChatSession keeps the conversation in the KV cache,
// so a turn reads only its own new tokens. Lines come from readline at a terminal, or from a
// pipe for scripts (line_reader.h).
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/line_reader.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "runtime/chat_session.h"
#include "vision/decode.h"

namespace unicorn::cli {

namespace {

struct ChatArgs {
  ModelOptions model;
  SamplingOptions sampling;
  std::string system;
  bool verbose = false;
};

constexpr const char* kCommands =
    "  /image PATH   attach an image (PNG, JPEG or WebP) to the next message; repeat for several\n"
    "  /reset        forget the conversation and any attached images\n"
    "  /save FILE    write the conversation so far as JSON\n"
    "  /help         list these commands\n"
    "  /quit, /exit  leave (Ctrl-D too)\n"
    "Ctrl-C stops an answer being written, or clears the line being typed.\n";

constexpr const char* kContextPolicy =
    "The conversation stays in the model's KV cache, so each turn reads only its new tokens. "
    "When the context (--ctx) fills, the oldest turns are dropped (the system prompt is kept) "
    "and the rest of the conversation is read again.";

std::string trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string plural(int64_t n, std::string_view word) { return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s"); }

// A path as typed: terminals wrap dropped files in quotes, and ~ means the home folder.
std::string typed_path(std::string path) {
  if (path.size() >= 2 && (path.front() == '\'' || path.front() == '"') && path.back() == path.front())
    path = path.substr(1, path.size() - 2);
  if (path.starts_with("~/")) {
    if (const char* home = std::getenv("HOME")) path = std::string(home) + path.substr(1);
  }
  return path;
}

void print_stats(const TurnStats& s, FinishReason finish) {
  auto rate = [](int64_t n, double sec) { return sec > 0 ? double(n) / sec : 0.0; };
  std::string line = fmt::format("[prompt {} tokens in {:.1f} ms ({:.1f} tok/s)", s.prompt_tokens,
                                 s.prompt_seconds * 1e3, rate(s.prompt_tokens, s.prompt_seconds));
  if (s.images > 0) line += fmt::format(", {} encoded in {:.1f} ms", plural(s.images, "image"), s.image_seconds * 1e3);
  line += fmt::format(", generated {} tokens in {:.1f} ms ({:.1f} tok/s), finish: {}]\n", s.generated_tokens,
                      s.generate_seconds * 1e3, rate(s.generated_tokens, s.generate_seconds),
                      finish_reason_name(finish));
  std::fputs(line.c_str(), stderr);
}

class Chat {
 public:
  Chat(const ChatArgs& args, Engine& engine, LineReader& reader)
      : args_(args),
        engine_(engine),
        reader_(reader),
        session_(engine, args.system),
        generate_(args.sampling.resolve(engine)) {}

  // Reads and answers lines until /quit or the end of input; returns the exit status.
  int run() {
    if (reader_.interactive())
      fmt::print(stderr, "unicorn chat with {} ({}). /help lists the commands; Ctrl-D or /quit leaves.\n",
                 args_.model.resolved_model(), engine_.config().architecture);
    for (;;) {
      const LineReader::Input in = reader_.read(prompt());
      if (in.status == LineReader::Status::End) return 0;
      if (in.status == LineReader::Status::Interrupted) return 130;  // as a shell reports SIGINT
      const std::string line = trim(in.text);
      if (line.empty()) continue;
      // A failed command or turn is reported and the chat goes on: the session is left as
      // it was before the line.
      try {
        if (line.front() == '/') {
          if (!command(line)) return 0;
        } else {
          answer(line);
        }
      } catch (const std::exception& e) {
        std::fflush(stdout);
        fmt::print(stderr, "error: {}\n", e.what());
      }
    }
  }

 private:
  std::string prompt() const {
    return images_.empty() ? "> " : fmt::format("[{}] > ", plural(int64_t(images_.size()), "image"));
  }

  // Runs a slash command; false means leave.
  bool command(const std::string& line) {
    const size_t space = line.find_first_of(" \t");
    const std::string name = line.substr(0, space);
    const std::string arg = space == std::string::npos ? std::string() : trim(line.substr(space));
    if (name == "/quit" || name == "/exit") return false;
    if (name == "/help") {
      std::fputs(kCommands, stdout);
      std::fflush(stdout);
    } else if (name == "/image") {
      if (arg.empty()) fail("/image needs a file: /image PATH");
      attach(typed_path(arg));
    } else if (name == "/reset") {
      session_.reset();
      images_.clear();
      fmt::print(stderr, "[the conversation was forgotten]\n");
    } else if (name == "/save") {
      if (arg.empty()) fail("/save needs a file: /save FILE");
      save(typed_path(arg));
    } else {
      fail("unknown command '{}' (/help lists the commands)", name);
    }
    return true;
  }

  // Decodes and preprocesses now, so that a missing or broken file is reported while the
  // user still knows which one it was; nothing is attached then.
  void attach(const std::string& path) {
    vision::PreprocessOptions po = session_.image_options(args_.model.pan_and_scan);
    po.limits.max_pixels = args_.model.max_image_pixels;
    const vision::RgbImage image = vision::decode_image_file(path, po.limits);
    images_.push_back(vision::preprocess_image(image, po));
    const int64_t crops = images_.back().num_crops;
    fmt::print(stderr, "[attached {} ({} x {}{}); {} for the next message]\n", path, image.width, image.height,
               crops > 0 ? fmt::format(", {} pan-and-scan {}", crops, crops == 1 ? "crop" : "crops") : "",
               plural(int64_t(images_.size()), "image"));
  }

  void save(const std::string& path) {
    const nlohmann::json transcript = session_.transcript();
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      if (!out) fail("cannot write the conversation to {}: {}", path, std::strerror(errno));
      out << transcript.dump(2) << '\n';
      out.close();
      if (!out) fail("cannot write the conversation to {}: the write failed", path);
    }
    fmt::print(stderr, "[saved {} to {}]\n", plural(int64_t(transcript.size()), "message"), path);
  }

  void answer(const std::string& text) {
    std::atomic<bool>& stop = reader_.interrupted();
    stop.store(false);
    TurnResult r;
    try {
      r = session_.ask(text, images_, generate_,
                       [](std::string_view piece) {
                         std::fwrite(piece.data(), 1, piece.size(), stdout);
                         std::fflush(stdout);
                       },
                       &stop);
    } catch (...) {
      // The message was not taken; its images stay attached for the next try.
      if (!images_.empty())
        fmt::print(stderr, "[{} still attached for the next message; /reset drops them]\n",
                   plural(int64_t(images_.size()), "image"));
      throw;
    }
    images_.clear();
    stop.store(false);
    std::fputs(r.finish == FinishReason::Cancelled ? "\n[stopped]\n" : "\n", stdout);
    std::fflush(stdout);
    if (r.stats.dropped_turns > 0)
      fmt::print(stderr, "[the context was full: the {} oldest {} dropped and the rest read again]\n",
                 r.stats.dropped_turns, r.stats.dropped_turns == 1 ? "turn was" : "turns were");
    if (args_.verbose) print_stats(r.stats, r.finish);
  }

  const ChatArgs& args_;
  Engine& engine_;
  LineReader& reader_;
  ChatSession session_;
  GenerateOptions generate_;
  std::vector<vision::PreprocessedImage> images_;  // attached to the next message
};

int run(const ChatArgs& args) {
  args.sampling.validate();
  auto engine = args.model.load();
  LineReader reader;
  Chat chat(args, *engine, reader);
  return chat.run();
}

const CommandRegistration reg(20, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("chat", "Chat at the terminal, with images (/image), answers streamed");
  auto a = std::make_shared<ChatArgs>();
  a->model.add_to(*cmd);
  a->sampling.add_to(*cmd);
  cmd->add_option("--system", a->system, "A system prompt (kept when old turns are dropped)");
  cmd->add_flag("-v,--verbose", a->verbose, "Print each turn's timings on stderr");
  cmd->footer(fmt::format("Context: {}\n\nCommands inside the chat:\n{}", kContextPolicy, kCommands));
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
});

}  // namespace

}  // namespace unicorn::cli
