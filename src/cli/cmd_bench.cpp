// unicorn bench: prompt processing (ppN) and token generation (tgN) speed, printed as
// llama-bench prints it, with the weight bytes a decode step reads against the measured
// memory copy bandwidth. unicorn random-model writes models at the real Gemma 3 shapes.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <thread>

#include "backends/cuda/cuda_backend.h"
#include "backends/registry.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "models/gemma3/export.h"
#include "models/gemma3/random_model.h"
#include "runtime/engine.h"
#include "vision/decode.h"
#include "vision/preprocess.h"

namespace unicorn::cli {

namespace {

struct BenchArgs {
  std::string model, device = "cpu", quant, mmproj, image;
  int64_t prompt = 512, gen = 128, reps = 3, batch = 1, ctx = 0, chunk = 0;
  int64_t depth = 0;  // tokens already in each sequence before the timed part (llama-bench's -d)
  double gpu_limit_gib = 0;  // emulate a card of this much memory (0: the whole card)
  int threads = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Stat {
  double mean, sd;
};
Stat stats(const std::vector<double>& v) {
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= double(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return {m, v.size() > 1 ? std::sqrt(s / double(v.size() - 1)) : 0.0};
}

// Host memory copy bandwidth (read + write counted once each way as bytes copied).
double host_copy_gbps() {
  const size_t n = size_t(256) << 20;
  std::vector<char> a(n, 1), b(n, 2);
  double best = 0;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(b.data(), a.data(), n);
    best = std::max(best, double(n) / seconds_since(t0) / 1e9);
  }
  return best;
}

std::string human_bytes(int64_t b) {
  return b >= (int64_t(1) << 30) ? fmt::format("{:.2f} GiB", double(b) / double(int64_t(1) << 30))
                                 : fmt::format("{:.2f} MiB", double(b) / double(1 << 20));
}

int run_bench(const BenchArgs& a) {
  EngineOptions opts;
  opts.device = a.device;
  opts.threads = a.threads;
  opts.context = std::max<int64_t>(a.ctx, a.depth + std::max<int64_t>(a.prompt, a.gen) + 8);
  opts.max_chunk = a.chunk > 0 ? a.chunk : std::max<int64_t>({a.prompt, std::min<int64_t>(a.depth, 512), 1});
  opts.quantize = parse_quant_type(a.quant);
  opts.mmproj = a.mmproj;
  const std::optional<int> gpu = cuda_device_index(a.device);
  std::shared_ptr<void> ballast;
  int64_t ballast_bytes = 0;
  if (a.gpu_limit_gib > 0) {
    if (!gpu) fail("--gpu-memory applies to --device cuda[:N]");
    int64_t total = 0;
    const int64_t before = cuda_memory_in_use(*gpu, &total);
    ballast = cuda_limit_memory(*gpu, int64_t(a.gpu_limit_gib * double(int64_t(1) << 30)));
    ballast_bytes = cuda_memory_in_use(*gpu, &total) - before;
    fmt::print("GPU memory limited to {:.2f} GiB in all (the rest held by this process, unused)\n\n", a.gpu_limit_gib);
  }
  const auto load_start = std::chrono::steady_clock::now();
  auto engine = Engine::load(a.model, opts);
  if (opts.quantize)
    fmt::print("quantized the text decoder to {} while loading in {:.1f} s\n\n", dtype_name(*opts.quantize),
               seconds_since(load_start));
  const auto& cfg = engine->config();
  const auto& weights = engine->model().weights();
  const auto text = weights.stats(gemma3::Component::Text);
  // A decode step reads every text matrix once, and the tied embedding again as the LM head.
  const int64_t embed_bytes = weights.get("text.embed").nbytes();
  const int64_t step_bytes = text.bytes;  // embedding rows gathered are negligible; LM head reads the table
  const std::string dtypes = [&] {
    std::string s;
    for (const auto& [n, b] : text.bytes_by_dtype) s += (s.empty() ? "" : "+") + n;
    return s;
  }();
  const std::string name = fmt::format("gemma3 {}L h{} {}", cfg.text.num_hidden_layers, cfg.text.hidden_size, dtypes);
  const int threads = a.device == "cpu" ? (a.threads > 0 ? a.threads : int(std::thread::hardware_concurrency())) : 0;

  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(10, int32_t(std::min<int64_t>(cfg.text.vocab_size, 200000)) - 1);
  fmt::print("| model | size | params | backend | threads | batch | test | t/s |\n");
  fmt::print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n");
  auto row = [&](const std::string& test, const std::vector<double>& tps) {
    const Stat s = stats(tps);
    fmt::print("| {} | {} | {:.2f} M | {} | {} | {} | {} | {:.2f} ± {:.2f} |\n", name, human_bytes(text.bytes),
               double(text.parameters) / 1e6, a.device, threads, a.batch, test, s.mean, s.sd);
    std::fflush(stdout);
    return s;
  };

  // The untimed start of each sequence: `depth` random tokens (prefill), then the test goes on
  // from there; "@ dN" on the test's name, as llama-bench writes it.
  auto fill = [&](Sequence& seq) {
    if (a.depth == 0) return;
    std::vector<int32_t> ids(size_t(a.depth));
    for (auto& t : ids) t = tok(rng);
    engine->append(seq, ids, nullptr, false);
  };
  const std::string at_depth = a.depth > 0 ? fmt::format(" @ d{}", a.depth) : "";

  auto memory_report = [&] {
    if (!gpu) return;
    // What the run holds on the GPU at the end: weights, the KV caches, the stream-ordered pool
    // (it keeps freed scratch for reuse, so this is about the peak), the CUDA context.
    int64_t total = 0, pool_peak = 0;
    const int64_t used = cuda_memory_in_use(*gpu, &total, &pool_peak) - ballast_bytes;
    if (ballast) total -= ballast_bytes;
    fmt::print("GPU memory in use after the run (all processes): {} of {} (context {} tokens, chunk {}); at most {}"
               " at once in KV caches, activations and scratch; weights {}\n",
               human_bytes(used), human_bytes(total), opts.context, opts.max_chunk, human_bytes(pool_peak),
               human_bytes(weights.stats(gemma3::Component::Text).bytes + weights.stats(gemma3::Component::Vision).bytes +
                           weights.stats(gemma3::Component::Projector).bytes));
    ballast.reset();  // the bandwidth probe below needs room
  };
  if (a.prompt > 0) {
    std::vector<double> tps;
    for (int64_t r = 0; r < a.reps + 1; ++r) {  // the first run warms caches and is dropped
      auto seq = engine->new_sequence();
      fill(*seq);
      std::vector<int32_t> ids(size_t(a.prompt));
      for (auto& t : ids) t = tok(rng);
      const auto t0 = std::chrono::steady_clock::now();
      engine->append(*seq, ids, nullptr, false);
      if (r > 0) tps.push_back(double(a.prompt) / seconds_since(t0));
    }
    row(fmt::format("pp{}{}", a.prompt, at_depth), tps);
  }
  if (!a.image.empty()) {
    // One image through the vision tower and projector, timed from preprocessed pixels to
    // the features' arrival on the host.
    if (!cfg.vision) fail("--image: {} has no vision tower", a.model);
    vision::PreprocessOptions po;
    po.image_size = cfg.vision->image_size;
    po.alloc = engine->pixel_buffer();
    const Tensor pixels = vision::preprocess_image(vision::decode_image_file(a.image, {}), po).pixel_values;
    std::vector<double> ms;
    for (int64_t r = 0; r < a.reps + 1; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      const Tensor f = engine->encode_images(pixels);
      if (r > 0) ms.push_back(seconds_since(t0) * 1e3);
      if (r == 0) fmt::print("image {}x{} -> {} tokens of {}\n", po.image_size, po.image_size, f.dim(0), f.dim(1));
    }
    const Stat s = stats(ms);
    fmt::print("| {} | vision | {} | image encode | {:.2f} ± {:.2f} ms |\n", name, a.device, s.mean, s.sd);
  }
  if (a.gen > 0) {
    std::vector<double> tps;
    for (int64_t r = 0; r < a.reps + 1; ++r) {
      std::vector<std::unique_ptr<Sequence>> seqs;
      std::vector<Sequence*> ptrs;
      for (int64_t b = 0; b < a.batch; ++b) {
        seqs.push_back(engine->new_sequence());
        fill(*seqs.back());
        ptrs.push_back(seqs.back().get());
      }
      std::vector<int32_t> next(size_t(a.batch));
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < a.gen; ++i) {
        for (auto& t : next) t = tok(rng);
        engine->decode(ptrs, next);
      }
      if (r > 0) tps.push_back(double(a.gen * a.batch) / seconds_since(t0));
    }
    const Stat s = row(fmt::format("tg{}{}", a.gen, at_depth), tps);
    memory_report();
    const double steps_per_s = s.mean / double(a.batch);
    const double read_gbs = double(step_bytes) * steps_per_s / 1e9;
    if (a.device == "cpu" || a.device == "reference") {
      const double bw = host_copy_gbps();
      fmt::print("\ndecode reads {} of weights per step ({} of it the tied LM head): {:.1f} GB/s at {:.2f} steps/s;"
                 " host memcpy bandwidth {:.1f} GB/s\n",
                 human_bytes(step_bytes), human_bytes(embed_bytes), read_gbs, steps_per_s, bw);
    } else if (gpu) {
      // The floor: every weight byte read once per step at the card's measured DRAM rate (a
      // device-to-device copy, bytes read + written).
      const double bw = cuda_copy_bandwidth_gbs(*gpu);
      fmt::print("\ndecode reads {} of weights per step ({} of it the tied LM head): {:.1f} GB/s at {:.2f} steps/s;"
                 " GPU copy bandwidth {:.0f} GB/s (read + write): {:.0f}% of the weight-read floor of {:.1f} steps/s\n",
                 human_bytes(step_bytes), human_bytes(embed_bytes), read_gbs, steps_per_s, bw,
                 100.0 * read_gbs / bw, bw * 1e9 / double(step_bytes));
    }
  } else {
    memory_report();
  }
  return 0;
}

const CommandRegistration bench_reg(80, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("bench", "Measure prompt processing and generation speed (llama-bench style)");
  auto a = std::make_shared<BenchArgs>();
  cmd->add_option("-m,--model", a->model, "Model folder or GGUF file")->required();
  cmd->add_option("--mmproj", a->mmproj, "A GGUF model's vision projector (llama.cpp mmproj file)");
  cmd->add_option("--image", a->image, "Also time one image (PNG/JPEG/WebP) through the vision tower and projector");
  cmd->add_option("-p,--n-prompt", a->prompt, "Prompt tokens (ppN test; 0 to skip)")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-n,--n-gen", a->gen, "Generated tokens (tgN test; 0 to skip)")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-d,--n-depth", a->depth, "Tokens already in each sequence (prefilled, not timed) before ppN / tgN")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-r,--repetitions", a->reps, "Repetitions of each test")->check(CLI::Range(1, 1000));
  cmd->add_option("--batch", a->batch, "Sequences decoding together in tgN")->check(CLI::Range(1, 4096));
  cmd->add_option("--ctx", a->ctx, "Context size of each sequence's KV cache (default: what the tests need)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--gpu-memory", a->gpu_limit_gib,
                  "GiB of GPU memory the run may use in all, CUDA context included (emulates a smaller card)")
      ->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--chunk", a->chunk, "Prompt tokens per forward pass in ppN (default: the whole prompt)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--device", a->device, kDeviceHelp);
  cmd->add_option("-t,--threads", a->threads, "CPU threads (0: one per core)");
  add_quant_option(*cmd, a->quant);
  cmd->callback([a, &exit_code] { exit_code = run_bench(*a); });
});

const CommandRegistration random_reg(81, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("random-model", "Write a model folder with random bf16 weights at a real Gemma 3 shape");
  auto o = std::make_shared<gemma3::RandomModelOptions>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("--size", o->size, "Published shape: 1b, 4b, 12b or 27b")->required();
  cmd->add_option("--out", *out, "Output folder")->required();
  cmd->add_option("--layers", o->layers, "Keep only this many decoder layers (0: all)")->check(CLI::Range(0, 1024));
  cmd->add_flag("--text-only", o->text_only, "Drop the vision tower (Gemma3ForCausalLM)");
  cmd->add_option("--seed", o->seed, "Random seed");
  auto gguf = std::make_shared<std::string>();
  cmd->add_option("--gguf", *gguf,
                  "Write a text-only GGUF file (--out names it) in this type instead of a bf16 folder: f16, bf16, "
                  "q8_0, q4_0, q4_k_m or q6_k, with llama-quantize's per-tensor types");
  cmd->add_flag("--nf4", o->nf4,
                "Matrices (the embedding too) as bitsandbytes NF4 with double quantization, as `unicorn quantize "
                "--type nf4 --quantize-embedding` writes them");
  cmd->callback([o, out, gguf, &exit_code] {
    if (o->nf4 && !gguf->empty()) fail("--nf4 writes a folder; it does not go with --gguf");
    if (gguf->empty()) {
      gemma3::write_random_model(*out, *o);
    } else {
      const auto type = gemma3::parse_gguf_export_type(*gguf);
      if (!type) fail("unknown --gguf type '{}' (expected f16, bf16, q8_0, q4_0, q4_k_m or q6_k)", *gguf);
      gemma3::write_random_gguf(*out, *o, *type);
    }
    fmt::print("wrote {} (random weights, {} shape)\n", *out, o->size);
    exit_code = 0;
  });
});

}  // namespace

}  // namespace unicorn::cli
