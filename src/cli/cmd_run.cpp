// unicorn run: one chat turn (a prompt and images) answered as it is generated, then the
// timings on stderr as llama.cpp prints them.
#include <fmt/format.h>

#include <csignal>
#include <cstdio>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "runtime/chat_session.h"
#include "vision/decode.h"

namespace unicorn::cli {

namespace {

std::atomic<bool> g_cancel{false};

struct RunArgs {
  ModelOptions model;
  SamplingOptions sampling;
  std::vector<std::string> images;
  std::string prompt, system;
};

void print_stats(const TurnStats& s, FinishReason finish) {
  auto rate = [](int64_t n, double sec) { return sec > 0 ? double(n) / sec : 0.0; };
  fmt::print(stderr, "\nprompt:    {} tokens in {:.1f} ms ({:.1f} tok/s)\n", s.prompt_tokens, s.prompt_seconds * 1e3,
             rate(s.prompt_tokens, s.prompt_seconds));
  if (s.images > 0) fmt::print(stderr, "images:    {} encoded in {:.1f} ms\n", s.images, s.image_seconds * 1e3);
  fmt::print(stderr, "generated: {} tokens in {:.1f} ms ({:.1f} tok/s), finish: {}\n", s.generated_tokens,
             s.generate_seconds * 1e3, rate(s.generated_tokens, s.generate_seconds), finish_reason_name(finish));
}

int run(const RunArgs& a) {
  if (a.prompt.find_first_not_of(" \t\r\n") == std::string::npos && a.images.empty())
    fail("the prompt is empty: give one with -p TEXT (and/or an image with --image FILE)");
  // Images are read before the model loads: a wrong path or a broken file is reported at
  // once, not after seconds (for the large models, minutes) of loading.
  vision::DecodeLimits limits;
  limits.max_pixels = a.model.max_image_pixels;
  std::vector<vision::RgbImage> decoded;
  for (const auto& path : a.images) decoded.push_back(vision::decode_image_file(path, limits));
  a.sampling.validate();
  auto engine = a.model.load();
  ChatSession chat(*engine, a.system);
  std::vector<vision::PreprocessedImage> images;
  if (!decoded.empty()) {
    vision::PreprocessOptions po = chat.image_options(a.model.pan_and_scan);
    po.limits = limits;
    for (const auto& img : decoded) images.push_back(vision::preprocess_image(img, po));
  }
  const GenerateOptions go = a.sampling.resolve(*engine);
  std::signal(SIGINT, [](int) { g_cancel = true; });
  const TurnResult r = chat.ask(a.prompt, images, go, [](std::string_view s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  }, &g_cancel);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  print_stats(r.stats, r.finish);
  return 0;
}

const CommandRegistration reg(10, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("run", "Answer one prompt (with images) as a chat turn, streamed");
  auto a = std::make_shared<RunArgs>();
  a->model.add_to(*cmd);
  a->sampling.add_to(*cmd);
  cmd->add_option("-p,--prompt", a->prompt, "The user's message")->required();
  cmd->add_option("--image", a->images, "An image (PNG, JPEG or WebP) shown before the prompt; repeatable");
  cmd->add_option("--system", a->system, "A system prompt");
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
});

}  // namespace

}  // namespace unicorn::cli
