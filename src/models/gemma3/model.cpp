#include "models/gemma3/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>

#include "core/error.h"
#include "core/quant/interleaved.h"

namespace unicorn::gemma3 {

namespace {

// Layers in decode graph group `index`: 1, then 4, then 8 each. A step records its first group
// while the GPU waits (nothing of the step runs yet), and each later group while the GPU runs
// the ones before it, so the first is kept short and the next ones grow no faster than the
// GPU's lead (a layer records in ~20 us on the host and runs in ~80 us on an H200 at 27B).
int64_t graph_group_layers(int64_t index) { return index == 0 ? 1 : index == 1 ? 4 : 8; }
// A decode graph group's recording key: the number of sequences and the group.
int64_t graph_key(size_t sequences, int64_t group) { return int64_t(sequences) * 1024 + group; }

// [rows, cols] -> [cols, rows] for plain element types (the projector weight is stored as a
// matmul operand [vision, text]; our linear op wants [out, in]).
Tensor transpose_2d(const Tensor& t) {
  const int64_t r = t.dim(0), c = t.dim(1), es = dtype_info(t.dtype()).block_bytes;
  Tensor out = Tensor::zeros(t.dtype(), {c, r});
  const char* src = static_cast<const char*>(t.raw());
  char* dst = static_cast<char*>(out.raw());
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) std::memcpy(dst + (j * r + i) * es, src + (i * c + j) * es, size_t(es));
  return out;
}

// Matrices (or vectors) of one type and width stacked by rows; an empty tensor where the
// parts differ in type or width, or carry state beside their bytes (NF4's scales).
Tensor stack_rows(std::initializer_list<const Tensor*> parts) {
  const Tensor& first = **parts.begin();
  int64_t rows = 0;
  for (const Tensor* t : parts) {
    if (t->dtype() != first.dtype() || t->dtype() == DType::NF4 || t->aux() || t->rank() != first.rank() ||
        t->rank() < 1 || t->rank() > 2 || (t->rank() == 2 && t->dim(1) != first.dim(1)))
      return Tensor();
    rows += t->dim(0);
  }
  Tensor out = Tensor::zeros(first.dtype(), first.rank() == 2 ? Shape{rows, first.dim(1)} : Shape{rows});
  char* dst = static_cast<char*>(out.raw());
  for (const Tensor* t : parts) {
    std::memcpy(dst, t->raw(), size_t(t->nbytes()));
    dst += t->nbytes();
  }
  return out;
}

std::vector<int32_t> iota(int64_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

Model::Model(Config config, Weights weights, Placement placement)
    : config_(std::move(config)), weights_(std::move(weights)), placement_(placement) {
  for (Backend* b : {placement_.embed, placement_.attention, placement_.ffn, placement_.lm_head, placement_.vision}) {
    if (!b) fail("internal: model placement leaves a part without a backend");
  }
  const Weights& w = weights_;
  Backend& att = *placement_.attention;
  Backend& ffn = *placement_.ffn;
  embed_ = placement_.embed->prepare_weight(w.get("text.embed"));
  lm_head_ = placement_.lm_head == placement_.embed ? embed_ : placement_.lm_head->prepare_weight(w.get("text.embed"));
  output_norm_ = placement_.lm_head->prepare_weight(w.get("text.output_norm"));
  for (int64_t l = 0; l < config_.text.num_hidden_layers; ++l) {
    const std::string p = "text.blk." + std::to_string(l) + ".";
    auto a = [&](const char* n) { return att.prepare_weight(w.get(p + n)); };
    auto f = [&](const char* n) { return ffn.prepare_weight(w.get(p + n)); };
    layers_.push_back({a("attn_norm"), a("attn_q"), a("attn_k"), a("attn_v"), a("attn_q_norm"), a("attn_k_norm"),
                       a("attn_output"), a("post_attn_norm"), f("ffn_norm"), f("ffn_gate"), f("ffn_up"),
                       f("ffn_down"), f("post_ffn_norm")});
  }
  if (config_.vision) {
    Backend& vb = *placement_.vision;
    const VisionConfig& vc = *config_.vision;
    const Tensor& pw = w.get("vision.patch_embed");  // Conv2d [V, 3, p, p] == linear [V, 3 * p * p]
    patch_w_ = vb.prepare_weight(pw.reshaped({vc.hidden_size, 3 * vc.patch_size * vc.patch_size}));
    patch_b_ = vb.prepare_weight(w.get("vision.patch_embed_bias"));
    pos_embed_ = vb.prepare_weight(w.get("vision.position_embed"));
    post_norm_ = vb.prepare_weight(w.get("vision.post_norm"));
    post_norm_b_ = vb.prepare_weight(w.get("vision.post_norm_bias"));
    proj_norm_ = vb.prepare_weight(w.get("proj.norm"));
    proj_w_ = vb.prepare_weight(transpose_2d(w.get("proj.input")));
    for (int64_t l = 0; l < vc.num_hidden_layers; ++l) {
      const std::string p = "vision.blk." + std::to_string(l) + ".";
      auto g = [&](const char* n) { return vb.prepare_weight(w.get(p + n)); };
      // q, k and v as one stacked matrix (one product of three times the rows) where they share
      // a type and each is whole groups of 16 rows (linear_parts' row views of a CPU-interleaved
      // matrix); else each by itself.
      auto host = [&](const char* n) { return &w.get(p + n); };
      Tensor qkv = stack_rows({host("attn_q"), host("attn_k"), host("attn_v")});
      Tensor qkv_b = stack_rows({host("attn_q_bias"), host("attn_k_bias"), host("attn_v_bias")});
      const bool stacked = qkv.rank() == 2 && qkv_b.rank() == 1 && vc.hidden_size % kInterleaveRows == 0;
      auto part = [&](const char* n) { return stacked ? Tensor() : g(n); };
      vision_layers_.push_back({g("ln1"), g("ln1_bias"), part("attn_q"), part("attn_q_bias"), part("attn_k"),
                                part("attn_k_bias"), part("attn_v"), part("attn_v_bias"), g("attn_out"),
                                g("attn_out_bias"), g("ln2"), g("ln2_bias"), g("fc1"), g("fc1_bias"), g("fc2"),
                                g("fc2_bias"), stacked ? vb.prepare_weight(qkv) : Tensor(),
                                stacked ? vb.prepare_weight(qkv_b) : Tensor()});
    }
  }
}

std::unique_ptr<KvCache> Model::new_cache(int64_t context, int64_t max_chunk) const {
  return std::make_unique<KvCache>(*placement_.attention, config_.text, context, max_chunk);
}

Tensor Model::move(Backend& to, Backend& from, const Tensor& t) {
  if (&to == &from) return t;
  return to.from_host(from.to_host(t));
}

Tensor Model::decode(std::span<DecodeItem> items) {
  const TextConfig& tc = config_.text;
  Backend& eb = *placement_.embed;
  Backend& ab = *placement_.attention;
  Backend& lb = *placement_.lm_head;
  if (items.empty()) fail("decode: no sequences given");

  // Validate everything before any cache is touched.
  std::vector<int32_t> ids, positions;
  std::vector<KvCache::Step> steps;
  std::set<const KvCache*> caches;
  for (const DecodeItem& it : items) {
    if (!it.cache) fail("internal: decode item without a cache");
    if (!caches.insert(it.cache).second) fail("internal: one sequence appears twice in a decode batch");
    if (it.tokens.empty()) fail("decode: a sequence has no new tokens");
    if (it.groups.size() != it.tokens.size()) fail("internal: {} groups for {} tokens", it.groups.size(), it.tokens.size());
    int64_t n_image = 0;
    for (size_t i = 0; i < it.tokens.size(); ++i) {
      const int32_t id = it.tokens[i];
      if (it.groups[i] >= 0) {
        ++n_image;
        ids.push_back(0);  // replaced by the image features below (HF looks up pad, then overwrites)
        continue;
      }
      if (id < 0 || id >= tc.vocab_size)
        fail("token id {} at position {} is outside the vocabulary (0..{})", id, it.cache->length() + int64_t(i),
             tc.vocab_size - 1);
      ids.push_back(id);
    }
    const int64_t have = it.image_features ? it.image_features->dim(0) : 0;
    if (have != n_image)
      fail("{} image tokens in the input but image features for {} tokens", n_image, have);
    if (it.image_features && (it.image_features->rank() != 2 || it.image_features->dim(1) != tc.hidden_size ||
                              it.image_features->dtype() != DType::F32))
      fail("internal: image features must be f32 [tokens, {}], got {}", tc.hidden_size,
           shape_str(it.image_features->shape()));
    steps.push_back(it.cache->plan(it.groups));
    positions.insert(positions.end(), steps.back().positions.begin(), steps.back().positions.end());
  }
  const int64_t n = int64_t(ids.size()), hidden = tc.hidden_size;

  // A plain decode step (one new token per sequence, every layer on one backend) may run as
  // recorded graphs of groups of layers (graph_group_layers), keyed by the number of sequences
  // and the group (so the next group is recorded while the GPU runs one). The layers only change
  // device memory, so a group whose recording could not run simply runs again.
  bool plain = placement_.ffn == placement_.attention;
  for (const DecodeItem& it : items) plain = plain && it.tokens.size() == 1 && it.groups[0] < 0;
  // Such a step may record the next one's first group ahead (record_ahead), its input embedded
  // into the tensor kept with it: the step the last one recorded, if this is it.
  const bool ahead_possible = plain && &eb == &ab;
  Ahead ahead = std::move(ahead_);
  ahead_ = Ahead{};
  bool use_ahead = ahead.ticket != 0 && ahead_possible && ahead.steps == steps;
  for (size_t i = 0; use_ahead && i < items.size(); ++i) use_ahead = ahead.caches[i] == items[i].cache;

  // ref: Gemma3TextScaledWordEmbedding: embedding * sqrt(hidden); image features unscaled.
  Tensor x = use_ahead ? ahead.x : eb.empty(DType::F32, {n, hidden});
  eb.embed(embed_, ids, float(std::sqrt(double(hidden))), x);
  int64_t offset = 0;
  for (const DecodeItem& it : items) {
    if (it.image_features && it.image_features->dim(0) > 0) {
      std::vector<int32_t> rows;
      for (size_t i = 0; i < it.groups.size(); ++i)
        if (it.groups[i] >= 0) rows.push_back(int32_t(offset + int64_t(i)));
      eb.scatter_rows(eb.from_host(*it.image_features), rows, x);
    }
    offset += int64_t(it.tokens.size());
  }
  x = move(ab, eb, x);

  Tensor normed;
  const bool fold_final = fold_final_norm(items);
  int64_t group_index = 0;
  for (int64_t l0 = 0, l1 = 0; l0 < tc.num_hidden_layers; l0 = l1, ++group_index) {
    l1 = std::min(tc.num_hidden_layers, l0 + graph_group_layers(group_index));
    auto group = [&] { run_layers(l0, l1, x, normed, items, steps, fold_final); };
    const int64_t key = graph_key(items.size(), group_index);
    if (l0 == 0 && use_ahead && ab.launch_graph(key, ahead.ticket)) {
      normed = ahead.normed;
      continue;
    }
    if (!plain || !ab.begin_graph(key, l0 == 0)) {
      group();
      continue;
    }
    const Tensor normed_before = normed;
    try {
      group();
    } catch (...) {
      ab.end_graph(false);
      throw;
    }
    // (outside the try: an error in end_graph itself is not followed by a second end_graph)
    if (!ab.end_graph(true)) {
      normed = normed_before;
      group();
    }
  }

  // Final norm and tied LM head on the rows that want logits.
  std::vector<int32_t> rows;
  offset = 0;
  for (const DecodeItem& it : items) {
    const int64_t len = int64_t(it.tokens.size());
    for (int64_t i = it.all_logits ? 0 : len - 1; i < len; ++i) rows.push_back(int32_t(offset + i));
    offset += len;
  }
  Tensor sel = normed;  // fold_final: every row, normed by the last layer
  if (!fold_final) {
    x = move(lb, ab, x);
    sel = lb.empty(DType::F32, {int64_t(rows.size()), hidden});
    lb.gather_rows(x, rows, sel);
    lb.rms_norm(sel, output_norm_, float(tc.rms_norm_eps), sel);
  }
  Tensor logits = lb.result_buffer(DType::F32, {int64_t(rows.size()), tc.vocab_size});
  lb.linear(sel, lm_head_, nullptr, logits);
  if (!(ahead_possible && ab.can_keep_graphs())) {
    Tensor out = lb.to_host(logits);
    for (size_t i = 0; i < items.size(); ++i) items[i].cache->commit(steps[i]);
    return out;
  }
  // The next step's first group is recorded from the caches as this step leaves them, so they
  // take the step now (and give it back should the logits not come).
  for (size_t i = 0; i < items.size(); ++i) items[i].cache->commit(steps[i]);
  try {
    record_ahead(items);
    return lb.to_host(logits);
  } catch (...) {
    ahead_ = Ahead{};
    for (DecodeItem& it : items) it.cache->truncate(it.cache->length() - 1);  // (one token: always possible)
    throw;
  }
}

void Model::run_layers(int64_t l0, int64_t l1, Tensor& x, Tensor& normed, std::span<DecodeItem> items,
                       std::vector<KvCache::Step>& steps, bool fold_final) {
  const int64_t layers = config_.text.num_hidden_layers;
  for (int64_t l = l0; l < l1; ++l) {
    const Tensor* next_norm = l + 1 < layers ? &layers_[size_t(l + 1)].attn_norm : fold_final ? &output_norm_ : nullptr;
    attention_block(layers_[size_t(l)], l, x, normed, items, steps);
    ffn_block(layers_[size_t(l)], next_norm, x, normed);
  }
}

bool Model::fold_final_norm(std::span<const DecodeItem> items) const {
  if (placement_.lm_head != placement_.ffn || placement_.ffn != placement_.attention) return false;
  for (const DecodeItem& it : items)
    if (it.tokens.size() != 1) return false;
  return true;
}

void Model::record_ahead(std::span<DecodeItem> items) {
  Backend& ab = *placement_.attention;
  static const int32_t kText = -1;
  Ahead a;
  a.key = graph_key(items.size(), 0);
  // A head start only: nothing here may fail this step. Nothing recorded ran; whatever failed
  // fails again, and is reported, when the step itself runs these ops.
  bool recording = false;
  try {
    for (const DecodeItem& it : items) {
      if (it.cache->length() >= it.cache->context()) return;  // full: no next step to record
      a.caches.push_back(it.cache);
      a.steps.push_back(it.cache->plan(std::span<const int32_t>(&kText, 1)));
    }
    a.x = ab.empty(DType::F32, {int64_t(items.size()), config_.text.hidden_size});
    if (!ab.begin_graph(a.key, true)) return;
    recording = true;
    run_layers(0, std::min(config_.text.num_hidden_layers, graph_group_layers(0)), a.x, a.normed, items, a.steps,
               fold_final_norm(items));
    recording = false;
    a.ticket = ab.keep_graph();
  } catch (...) {
    if (recording) {
      try {
        ab.end_graph(false);
      } catch (...) {  // (the recording is over either way)
      }
    }
    return;
  }
  if (a.ticket != 0) ahead_ = std::move(a);
}

void Model::attention_block(const TextLayer& w, int64_t layer, Tensor& x, Tensor& normed,
                            std::span<DecodeItem> items, std::vector<KvCache::Step>& steps) {
  const TextConfig& tc = config_.text;
  Backend& b = *placement_.attention;
  const int64_t n = x.dim(0), hd = tc.head_dim, nh = tc.num_attention_heads, nkv = tc.num_key_value_heads;
  const float eps = float(tc.rms_norm_eps);
  const bool sliding = tc.is_sliding(layer);
  const RopeParams& rope = sliding ? tc.rope_sliding : tc.rope_full;

  Tensor h = normed;
  if (!h.defined()) {
    h = b.empty(DType::F32, {n, tc.hidden_size});
    b.rms_norm(x, w.attn_norm, eps, h);
  }
  Tensor q = b.empty(DType::F32, {n, nh * hd}), k = b.empty(DType::F32, {n, nkv * hd}),
         v = b.empty(DType::F32, {n, nkv * hd});
  b.linear3(h, w.q, w.k, w.v, q, k, v);
  std::vector<int32_t> positions;
  for (const auto& s : steps) positions.insert(positions.end(), s.positions.begin(), s.positions.end());
  Tensor attn = b.empty(DType::F32, {n, nh * hd});
  const AttentionShape shape{nh, nkv, hd, float(1.0 / std::sqrt(tc.query_pre_attn_scalar))};
  // Each sequence writes its keys and values into its own cache and attends to it; the
  // backend may do all sequences at once (one launch each on a GPU, not three per sequence).
  std::vector<AttentionJob> jobs(items.size());
  int64_t offset = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    KvCache& cache = *items[i].cache;
    const KvCache::Step& step = steps[i];
    const int64_t len = int64_t(step.positions.size());
    const KvCache::SlotView sv = cache.slots_after(sliding, step);
    AttentionJob& j = jobs[i];
    j.q = q.rows(offset, len);
    j.k_new = k.rows(offset, len);
    j.v_new = v.rows(offset, len);
    j.slots = sliding ? step.sliding_slots : step.full_slots;
    j.k_cache = &cache.keys(layer);
    j.v_cache = &cache.values(layer);
    j.used = sv.used;
    j.mask = AttentionMask{step.positions, step.groups, sv.pos, sv.group,
                           sliding ? tc.sliding_window : 0, true, sv.first, sv.count};
    j.out = attn.rows(offset, len);
    offset += len;
  }
  // ref: Gemma3Attention: q_norm / k_norm per head, before RoPE; then the cache and attention.
  b.qk_norm_rope_attention(q, k, {w.q_norm, w.k_norm, eps, positions, hd, rope.theta, rope.factor}, jobs, shape);
  // o = attn W_o^T; x += post_attn_norm(o), and the FFN's pre-norm of x with it when the FFN
  // runs here too.
  const bool fuse_next = placement_.ffn == placement_.attention;
  normed = fuse_next ? b.empty(DType::F32, {n, tc.hidden_size}) : Tensor();
  b.linear_residual_rms_norm(attn, w.o, x, w.post_attn_norm, eps, fuse_next ? &w.ffn_norm : nullptr,
                             fuse_next ? &normed : nullptr);
}

void Model::ffn_block(const TextLayer& w, const Tensor* next_norm, Tensor& x_att, Tensor& normed) {
  const TextConfig& tc = config_.text;
  Backend& b = *placement_.ffn;
  Tensor x = move(b, *placement_.attention, x_att);
  const int64_t n = x.dim(0);
  const float eps = float(tc.rms_norm_eps);
  Tensor h = normed;
  if (!h.defined()) {
    h = b.empty(DType::F32, {n, tc.hidden_size});
    b.rms_norm(x, w.ffn_norm, eps, h);
  }
  Tensor g = b.empty(DType::F32, {n, tc.intermediate_size});
  b.gate_up(h, w.gate, w.up, g);  // ref: Gemma3MLP: down(gelu_tanh(gate(x)) * up(x))
  // d = g W_down^T; x += post_ffn_norm(d), and the next norm with it (the next layer's attention
  // pre-norm, or after the last layer the final norm for the LM head) when it runs here.
  const bool fuse_next = next_norm && placement_.ffn == placement_.attention;
  normed = fuse_next ? b.empty(DType::F32, {n, tc.hidden_size}) : Tensor();
  b.linear_residual_rms_norm(g, w.down, x, w.post_ffn_norm, eps, fuse_next ? next_norm : nullptr,
                             fuse_next ? &normed : nullptr);
  x_att = move(*placement_.attention, b, x);
}

Tensor Model::vision_tower(const Tensor& image) {
  const VisionConfig& vc = *config_.vision;
  Backend& b = *placement_.vision;
  const int64_t P = vc.num_patches(), V = vc.hidden_size, p = vc.patch_size, heads = vc.num_attention_heads;
  const float eps = float(vc.layer_norm_eps);
  // ref: SiglipVisionEmbeddings: Conv2d patch embedding (+ bias), + position embedding.
  Tensor patches = b.empty(DType::F32, {P, 3 * p * p});
  b.patchify(image, p, patches);
  Tensor x = b.empty(DType::F32, {P, V});
  b.linear(patches, patch_w_, &patch_b_, x);
  Tensor pos = b.empty(DType::F32, {P, V});
  const std::vector<int32_t> all = iota(P), zeros(static_cast<size_t>(P), 0);
  b.embed(pos_embed_, all, 1.0f, pos);
  b.add(x, pos, x);

  // ref: SiglipEncoderLayer: pre-LayerNorm attention and MLP, each with a residual.
  const AttentionShape shape{heads, heads, vc.head_dim(), float(1.0 / std::sqrt(double(vc.head_dim())))};
  const AttentionMask mask{all, zeros, all, zeros, 0, false};
  // h (the normed rows), a (attention's output), f (the MLP's hidden values), q, k and v are
  // read only by products (attention's too): in the backend's product_input_dtype (bf16 on
  // CUDA's tensor cores: no conversion before them).
  const DType pd = b.product_input_dtype();
  // q, k and v one after another in one buffer (linear_parts writes them in one product).
  const Tensor qkv = b.empty(pd, {3 * P, V});
  Tensor q = qkv.rows(0, P), k = qkv.rows(P, P), v = qkv.rows(2 * P, P);
  Tensor* const parts[] = {&q, &k, &v};
  Tensor h = b.empty(pd, {P, V}), a = b.empty(pd, {P, V}), f = b.empty(pd, {P, vc.intermediate_size});
  for (const VisionLayer& w : vision_layers_) {
    b.layer_norm(x, w.ln1, w.ln1_b, eps, h);
    if (w.qkv.rank() == 2) {
      b.linear_parts(h, w.qkv, &w.qkv_b, parts);
    } else {
      b.linear(h, w.q, &w.q_b, q);
      b.linear(h, w.k, &w.k_b, k);
      b.linear(h, w.v, &w.v_b, v);
    }
    b.attention(q, k, v, mask, shape, a);
    b.linear_add(a, w.out, &w.out_b, x);
    b.layer_norm(x, w.ln2, w.ln2_b, eps, h);
    b.linear_gelu(h, w.fc1, &w.fc1_b, f);
    b.linear_add(f, w.fc2, &w.fc2_b, x);
  }
  b.layer_norm(x, post_norm_, post_norm_b_, eps, x);
  return x;
}

Model::ImageOutput Model::encode_images(const Tensor& pixel_values, bool with_hidden_state) {
  if (!config_.vision) fail("this model ({}) has no vision tower: it cannot take images", config_.architecture);
  const VisionConfig& vc = *config_.vision;
  const int64_t S = vc.image_size;
  if (pixel_values.rank() != 4 || pixel_values.dim(1) != 3 || pixel_values.dim(2) != S || pixel_values.dim(3) != S)
    fail("pixel_values must be [images, 3, {}, {}], got {}", S, S, shape_str(pixel_values.shape()));
  const Tensor pixels = pixel_values.dtype() == DType::F32 ? pixel_values : pixel_values.converted(DType::F32);
  Backend& b = *placement_.vision;
  const int64_t n = pixels.dim(0), P = vc.num_patches(), V = vc.hidden_size, T = config_.mm_tokens_per_image,
                H = config_.text.hidden_size;
  ImageOutput out{with_hidden_state ? Tensor::zeros(DType::F32, {n, P, V}) : Tensor(),
                  Tensor::zeros(DType::F32, {n, T, H})};
  for (int64_t i = 0; i < n; ++i) {
    Tensor image = b.from_host(pixels.rows(i, 1).reshaped({3, S, S}));
    Tensor x = vision_tower(image);
    if (with_hidden_state) {
      const Tensor xh = b.to_host(x);
      std::memcpy(out.last_hidden_state.data<float>() + i * P * V, xh.raw(), size_t(P * V) * 4);
    }
    // ref: Gemma3MultiModalProjector: average pool to tokens_per_image, RMSNorm (1 + w) with
    // the vision layer_norm_eps, then matmul by mm_input_projection_weight.
    Tensor pooled = b.empty(DType::F32, {T, V});
    b.avg_pool_grid(x, vc.patches_per_side(), config_.pool_kernel(), pooled);
    b.rms_norm(pooled, proj_norm_, float(vc.layer_norm_eps), pooled);
    Tensor feats = b.empty(DType::F32, {T, H});
    b.linear(pooled, proj_w_, nullptr, feats);
    const Tensor fh = b.to_host(feats);
    std::memcpy(out.features.data<float>() + i * T * H, fh.raw(), size_t(T * H) * 4);
  }
  return out;
}

}  // namespace unicorn::gemma3
