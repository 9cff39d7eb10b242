// unicorn logits: the raw forward pass, for checking this engine against another.
// Reads input_ids (int64 [seq]) and optional pixel_values ([images, 3, H, W], f32 or bf16)
// from a safetensors file and writes logits (f32 [seq, vocab]).
#include <fmt/format.h>

#include <memory>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "formats/safetensors.h"
#include "runtime/engine.h"

namespace unicorn::cli {

namespace {

struct LogitsArgs {
  std::string model, input, output, device = "cpu";
  int threads = 0;
  int64_t chunk = 512;
};

int run_logits(const LogitsArgs& a) {
  auto in = SafetensorsFile::open(a.input);
  const SafetensorsEntry* ids_entry = in->find("input_ids");
  if (!ids_entry) fail("{}: no 'input_ids' tensor (int64 [seq] expected)", a.input);
  const Tensor ids_t = in->tensor(*ids_entry);
  if (ids_t.dtype() != DType::I64 || !(ids_t.rank() == 1 || (ids_t.rank() == 2 && ids_t.dim(0) == 1)))
    fail("{}: input_ids must be int64 [seq] (or [1, seq]), got {} {}", a.input, dtype_name(ids_t.dtype()),
         shape_str(ids_t.shape()));
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < ids_t.numel(); ++i) {
    const int64_t v = ids_t.data<const int64_t>()[i];
    if (v < 0 || v > INT32_MAX) fail("{}: input_ids[{}] = {} is not a token id", a.input, i, v);
    ids.push_back(int32_t(v));
  }
  if (ids.empty()) fail("{}: input_ids is empty", a.input);

  EngineOptions opts;
  opts.device = a.device;
  opts.threads = a.threads;
  opts.context = int64_t(ids.size());
  opts.max_chunk = a.chunk;
  auto engine = Engine::load(a.model, opts);
  if (engine->options().context < int64_t(ids.size()))
    fail("{} tokens exceed the model's maximum of {} positions", ids.size(), engine->options().context);

  Tensor features;
  if (const SafetensorsEntry* pv = in->find("pixel_values")) {
    const Tensor pixels = in->tensor(*pv);
    if (pixels.dtype() != DType::F32 && pixels.dtype() != DType::BF16 && pixels.dtype() != DType::F16)
      fail("{}: pixel_values must be f32, bf16 or f16, got {}", a.input, dtype_name(pixels.dtype()));
    features = engine->encode_images(pixels);
  }
  auto seq = engine->new_sequence();
  const Tensor logits = engine->append(*seq, ids, features.defined() ? &features : nullptr, true);
  SafetensorsWriter w;
  w.add("logits", logits);
  w.write(a.output);
  fmt::print(stderr, "wrote logits {} to {}\n", shape_str(logits.shape()), a.output);
  return 0;
}

const CommandRegistration reg(50, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("logits", "Run the forward pass on input ids (and images) and write all logits");
  auto a = std::make_shared<LogitsArgs>();
  cmd->add_option("-m,--model", a->model, "Model folder")->required();
  cmd->add_option("--input", a->input, "safetensors with input_ids (int64 [seq]) and optional pixel_values")
      ->required();
  cmd->add_option("--out", a->output, "Output safetensors: logits (f32 [seq, vocab])")->required();
  cmd->add_option("--device", a->device, kDeviceHelp);
  cmd->add_option("-t,--threads", a->threads, "CPU threads (0: one per core)");
  cmd->add_option("--chunk", a->chunk, "Prefill chunk size in tokens (an image is never split)")->check(CLI::Range(1, 1 << 20));
  cmd->callback([a, &exit_code] { exit_code = run_logits(*a); });
});

}  // namespace

}  // namespace unicorn::cli
