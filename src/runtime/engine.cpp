#include "runtime/engine.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>

#include "backends/registry.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/safetensors.h"
#include "models/gemma3/gguf_loader.h"
#include "models/gemma3/image_tokens.h"
#include "tokenizer/gguf_vocab.h"

namespace unicorn {

bool Sequence::truncate(int64_t n) {
  if (n < 0 || n > length()) return false;
  if (!cache_->truncate(n)) return false;
  tokens_.resize(size_t(n));
  return true;
}

void Sequence::reset() {
  cache_->clear();
  tokens_.clear();
}

std::unique_ptr<Engine> Engine::load(const std::string& model_path, const EngineOptions& options) {
  if (gemma3::is_gguf_path(model_path)) return load_gguf(model_path, options);
  if (!options.mmproj.empty())
    fail("--mmproj {}: an mmproj file goes with a GGUF model (-m FILE.gguf), but {} is not one", options.mmproj,
         model_path);
  auto backend = create_backend(options.device, {options.threads});
  gemma3::Config config = gemma3::load_config(model_path);
  auto files = std::make_shared<const SafetensorsSet>(SafetensorsSet::open(model_path));
  gemma3::Weights weights = gemma3::Weights::from_safetensors(files, config);
  if (options.quantize) {
    const DType q = *options.quantize;
    if (q != DType::Q4_0 && q != DType::Q8_0 && q != DType::Q4_K && q != DType::Q6_K && q != DType::NF4)
      fail("cannot quantize a model to {} (supported: Q4_0, Q8_0, Q4_K, Q6_K, NF4)", dtype_name(q));
    ThreadPool pool(options.threads);
    weights.quantize_text_matrices(q, DType::Q8_0, &pool);
  }
  auto model = std::make_unique<gemma3::Model>(std::move(config), std::move(weights),
                                               gemma3::Placement::all(*backend));
  auto engine = std::make_unique<Engine>(std::move(backend), std::move(model), options);
  namespace fs = std::filesystem;
  if (fs::is_directory(model_path) &&
      (fs::exists(fs::path(model_path) / "tokenizer.json") || fs::exists(fs::path(model_path) / "tokenizer.json.gz")))
    engine->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(model_path));
  return engine;
}

std::unique_ptr<Engine> Engine::load_gguf(const std::string& model_path, const EngineOptions& options) {
  gemma3::GgufModel g = gemma3::load_gguf_model(model_path, options.mmproj);
  auto backend = create_backend(options.device, {options.threads});
  std::unique_ptr<Tokenizer> tokenizer;
  if (has_gguf_vocab(*g.text)) tokenizer = std::make_unique<Tokenizer>(tokenizer_from_gguf(*g.text));
  auto model = std::make_unique<gemma3::Model>(std::move(g.config), std::move(g.weights),
                                               gemma3::Placement::all(*backend));
  auto engine = std::make_unique<Engine>(std::move(backend), std::move(model), options);
  engine->tokenizer_ = std::move(tokenizer);
  engine->gguf_ = true;
  return engine;
}

std::string Engine::text_only_reason() const {
  if (config().multimodal()) return "";
  if (gguf_) return fmt::format("this GGUF model is loaded text-only: give its vision projector with --mmproj FILE");
  return fmt::format("this model ({}) is text-only", config().architecture);
}

Engine::Engine(std::unique_ptr<Backend> backend, std::unique_ptr<gemma3::Model> model, const EngineOptions& options)
    : backend_(std::move(backend)), model_(std::move(model)), options_(options) {
  const gemma3::Config& c = model_->config();
  options_.context = std::min(options_.context, c.text.max_position_embeddings);
  if (options_.context <= 0) fail("context size must be positive, got {}", options_.context);
  if (c.multimodal()) options_.max_chunk = std::max(options_.max_chunk, c.mm_tokens_per_image);
  options_.max_chunk = std::min(options_.max_chunk, options_.context);
}

void Engine::mask_unsamplable(std::span<float> logits) const {
  const float never = -std::numeric_limits<float>::infinity();
  const size_t vocab = tokenizer_ ? size_t(tokenizer_->vocab_size()) : logits.size();
  if (vocab < logits.size()) std::fill(logits.begin() + std::ptrdiff_t(vocab), logits.end(), never);
  const auto& c = config();
  if (c.multimodal() && size_t(c.image_token_index) < logits.size()) logits[size_t(c.image_token_index)] = never;
}

std::unique_ptr<Sequence> Engine::new_sequence() {
  return std::make_unique<Sequence>(model_->new_cache(options_.context, options_.max_chunk));
}

Tensor Engine::encode_images(const Tensor& pixel_values) {
  if (!config().multimodal()) fail("{}: it cannot take images", text_only_reason());
  auto out = model_->encode_images(pixel_values);
  const Tensor& f = out.features;
  return f.reshaped({f.dim(0) * f.dim(1), f.dim(2)});
}

std::function<Tensor(DType, Shape)> Engine::pixel_buffer() const {
  Backend* vision = model_->placement().vision;
  if (!vision) return {};
  return [vision](DType dtype, Shape shape) { return vision->host_buffer(dtype, std::move(shape)); };
}

Tensor Engine::append(Sequence& seq, std::span<const int32_t> tokens, const Tensor* image_features, bool all_logits) {
  const gemma3::Config& c = config();
  if (tokens.empty()) fail("nothing to append: no tokens");
  if (seq.length() + int64_t(tokens.size()) > seq.context())
    fail("the prompt needs {} tokens but the context holds {} ({} already used)", seq.length() + int64_t(tokens.size()),
         seq.context(), seq.length());
  const int32_t image_token = c.multimodal() ? int32_t(c.image_token_index) : -1;
  const std::vector<int32_t> groups = gemma3::image_groups(tokens, image_token, seq.length());
  const int64_t n_image_tokens = std::count_if(groups.begin(), groups.end(), [](int32_t g) { return g >= 0; });
  const int64_t have = image_features ? image_features->dim(0) : 0;
  if (n_image_tokens != have)
    fail("the prompt has {} image tokens but {} image feature rows were given ({} tokens per image)", n_image_tokens,
         have, c.mm_tokens_per_image);

  const auto chunks = gemma3::plan_chunks(tokens, image_token, options_.max_chunk);
  const int64_t vocab = c.text.vocab_size;
  Tensor logits = Tensor::zeros(DType::F32, {all_logits ? int64_t(tokens.size()) : 1, vocab});
  int64_t image_row = 0;
  for (size_t ci = 0; ci < chunks.size(); ++ci) {
    const auto [b, e] = chunks[ci];
    const std::span<const int32_t> ids = tokens.subspan(size_t(b), size_t(e - b));
    const std::span<const int32_t> grp = std::span<const int32_t>(groups).subspan(size_t(b), size_t(e - b));
    const int64_t n_img = std::count_if(grp.begin(), grp.end(), [](int32_t g) { return g >= 0; });
    Tensor feats;
    if (n_img > 0) feats = image_features->rows(image_row, n_img);
    image_row += n_img;
    const bool last_chunk = ci + 1 == chunks.size();
    gemma3::DecodeItem item{&seq.cache(), ids, grp, n_img > 0 ? &feats : nullptr, all_logits};
    if (!all_logits && !last_chunk) item.all_logits = false;
    Tensor out = model_->decode(std::span<gemma3::DecodeItem>(&item, 1));
    seq.tokens_.insert(seq.tokens_.end(), ids.begin(), ids.end());
    if (all_logits) {
      std::memcpy(logits.data<float>() + b * vocab, out.raw(), size_t(out.nbytes()));
    } else if (last_chunk) {
      std::memcpy(logits.raw(), out.raw(), size_t(out.nbytes()));
    }
  }
  return logits;
}

Tensor Engine::decode(std::span<Sequence* const> seqs, std::span<const int32_t> next_tokens) {
  if (seqs.size() != next_tokens.size()) fail("internal: {} sequences but {} tokens", seqs.size(), next_tokens.size());
  std::vector<gemma3::DecodeItem> items;
  static const int32_t kText = -1;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (seqs[i]->length() + 1 > seqs[i]->context())
      fail("context full: the sequence holds {} of {} positions", seqs[i]->length(), seqs[i]->context());
    items.push_back({&seqs[i]->cache(), next_tokens.subspan(i, 1), std::span<const int32_t>(&kText, 1), nullptr, false});
  }
  Tensor logits = model_->decode(items);
  for (size_t i = 0; i < seqs.size(); ++i) seqs[i]->tokens_.push_back(next_tokens[i]);
  return logits;
}

}  // namespace unicorn
