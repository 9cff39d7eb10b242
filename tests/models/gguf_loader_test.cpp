// Gemma 3 from llama.cpp's GGUF files: the configuration against the HF config.json they
// were converted from, weights against HF values (tests/data/gguf/hf-excerpt.safetensors),
// the vision tower forward from the mmproj, and the whole text model end to end through a
// GGUF written the way llama.cpp writes Gemma 3 (tiny-text, BF16) against HF's logits.
#include "models/gemma3/gguf_loader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "core/error.h"
#include "formats/gguf_writer.h"
#include "formats/mapped_file.h"
#include "formats/safetensors.h"
#include "models/gemma3/model.h"
#include "ops/reference_backend.h"
#include "runtime/engine.h"
#include "support/gguf_reference.h"
#include "support/test_paths.h"

namespace unicorn::gemma3 {
namespace {

GgufModel reference_model(bool with_mmproj) {
  return load_gguf_model(test::reference_text_gguf(), with_mmproj ? test::reference_mmproj() : nullptr);
}

std::shared_ptr<SafetensorsFile> hf_excerpt() {
  static const auto f = SafetensorsFile::open(test::data_path("gguf/hf-excerpt.safetensors"));
  return f;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// ggml's Q4_0 and Q8_0 blocks, dequantized (ref: ggml-quants.c dequantize_row_q4_0 / q8_0).
std::vector<float> dequantize(const Tensor& t) {
  std::vector<float> out;
  const auto* p = t.data<const uint8_t>();
  const int64_t blocks = t.numel() / 32;
  for (int64_t b = 0; b < blocks; ++b) {
    uint16_t dh;
    if (t.dtype() == DType::Q4_0) {
      std::memcpy(&dh, p + b * 18, 2);
      const float d = f16_to_f32(dh);
      const uint8_t* qs = p + b * 18 + 2;
      for (int j = 0; j < 16; ++j) out.push_back(d * float((qs[j] & 0x0f) - 8));
      for (int j = 0; j < 16; ++j) out.push_back(d * float((qs[j] >> 4) - 8));
    } else {
      std::memcpy(&dh, p + b * 34, 2);
      const float d = f16_to_f32(dh);
      for (int j = 0; j < 32; ++j) out.push_back(d * float(int8_t(p[b * 34 + 2 + j])));
    }
  }
  return out;
}

TEST(GgufLoader, ConfigEqualsTheHuggingFaceConfig) {
  const Config hf = parse_config_text(read_file(test::data_path("gguf/config.json")), "config.json");
  const Config g = reference_model(true).config;
  EXPECT_EQ(g.architecture, hf.architecture);
  EXPECT_EQ(g.model_type, hf.model_type);
  const TextConfig &a = g.text, &b = hf.text;
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.hidden_activation, b.hidden_activation);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);  // f32 1e-6 read back as the decimal it came from
  EXPECT_EQ(a.query_pre_attn_scalar, b.query_pre_attn_scalar);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.sliding_window_pattern, b.sliding_window_pattern);
  EXPECT_EQ(a.layer_types, b.layer_types);
  EXPECT_EQ(a.layer_types.back(), LayerType::Full);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  EXPECT_EQ(a.final_logit_softcapping, b.final_logit_softcapping);
  EXPECT_EQ(a.attn_logit_softcapping, b.attn_logit_softcapping);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  for (auto [x, y] : {std::pair{&a.rope_full, &b.rope_full}, {&a.rope_sliding, &b.rope_sliding}}) {
    EXPECT_EQ(x->theta, y->theta);
    EXPECT_EQ(x->type, y->type);
    EXPECT_EQ(x->factor, y->factor);
  }
  ASSERT_TRUE(g.vision && hf.vision);
  const VisionConfig &v = *g.vision, &w = *hf.vision;
  EXPECT_EQ(v.hidden_size, w.hidden_size);
  EXPECT_EQ(v.intermediate_size, w.intermediate_size);
  EXPECT_EQ(v.num_hidden_layers, w.num_hidden_layers);
  EXPECT_EQ(v.num_attention_heads, w.num_attention_heads);
  EXPECT_EQ(v.num_channels, w.num_channels);
  EXPECT_EQ(v.image_size, w.image_size);
  EXPECT_EQ(v.patch_size, w.patch_size);
  EXPECT_EQ(v.layer_norm_eps, w.layer_norm_eps);
  EXPECT_EQ(v.hidden_act, w.hidden_act);
  EXPECT_EQ(g.mm_tokens_per_image, hf.mm_tokens_per_image);
  EXPECT_EQ(g.boi_token_index, hf.boi_token_index);
  EXPECT_EQ(g.eoi_token_index, hf.eoi_token_index);
  EXPECT_EQ(g.image_token_index, hf.image_token_index);
  EXPECT_EQ(g.eos_token_ids, hf.eos_token_ids);
  EXPECT_EQ(g.bos_token_id, hf.bos_token_id);
  EXPECT_EQ(g.pad_token_id, hf.pad_token_id);
}

TEST(GgufLoader, WithoutMmprojTheModelIsTextOnly) {
  const GgufModel m = reference_model(false);
  EXPECT_FALSE(m.config.vision.has_value());
  EXPECT_EQ(m.config.architecture, "Gemma3ForCausalLM");
  EXPECT_FALSE(m.weights.has("vision.patch_embed"));
  EXPECT_EQ(m.weights.specs().size(), 2u + 13u * 6u);
}

// The text norms come back as HF's values once the +1 llama.cpp added is taken off, exactly
// (the GGUF holds f32(bf16 + 1)); so does the projector's soft_emb_norm.
TEST(GgufLoader, NormWeightsEqualHuggingFaceAfterMinusOne) {
  const GgufModel m = reference_model(true);
  const auto hf = hf_excerpt();
  const std::string L = "language_model.model.";
  for (auto [ours, theirs] : {std::pair{"text.blk.0.attn_norm", L + "layers.0.input_layernorm.weight"},
                              {"text.blk.0.attn_q_norm", L + "layers.0.self_attn.q_norm.weight"},
                              {"text.blk.0.attn_k_norm", L + "layers.0.self_attn.k_norm.weight"},
                              {"text.blk.5.post_ffn_norm", L + "layers.5.post_feedforward_layernorm.weight"},
                              {"text.output_norm", L + "norm.weight"},
                              {"proj.norm", std::string("multi_modal_projector.mm_soft_emb_norm.weight")}}) {
    const Tensor& t = m.weights.get(ours);
    EXPECT_EQ(t.dtype(), DType::F32) << ours;
    EXPECT_EQ(t.to_f32(), hf->tensor(theirs).to_f32()) << ours;
  }
  // The file itself holds 1 + w.
  const Tensor raw = test::reference_text_gguf()->tensor("output_norm.weight");
  EXPECT_EQ(raw.to_f32()[0] - 1.0f, m.weights.get("text.output_norm").to_f32()[0]);
}

// Vision weights are views in HF's layouts: patch embedding [V, 3, p, p], the projector
// [vision, text] (not transposed), linear weights [out, in]; F16 holds these bf16 values exactly.
TEST(GgufLoader, VisionWeightsEqualHuggingFace) {
  const GgufModel m = reference_model(true);
  const auto hf = hf_excerpt();
  const std::string V = "vision_tower.vision_model.";
  for (auto [ours, theirs] : {std::pair{"vision.patch_embed", V + "embeddings.patch_embedding.weight"},
                              {"vision.position_embed", V + "embeddings.position_embedding.weight"},
                              {"vision.blk.0.fc1", V + "encoder.layers.0.mlp.fc1.weight"},
                              {"vision.blk.1.attn_out_bias", V + "encoder.layers.1.self_attn.out_proj.bias"},
                              {"vision.post_norm", V + "post_layernorm.weight"},
                              {"proj.input", std::string("multi_modal_projector.mm_input_projection_weight")}}) {
    const Tensor& t = m.weights.get(ours);
    const Tensor ref = hf->tensor(theirs);
    EXPECT_EQ(t.shape(), ref.shape()) << ours;
    EXPECT_EQ(t.to_f32(), ref.to_f32()) << ours;
  }
  EXPECT_EQ(m.weights.get("vision.blk.0.fc1").dtype(), DType::F16);
  // Zero-copy: the view points into the mmproj's bytes.
  const Tensor direct = test::reference_mmproj()->tensor("v.blk.0.ffn_up.weight");
  EXPECT_EQ(m.weights.get("vision.blk.0.fc1").raw(), direct.raw());
}

// Block-format matrices keep their layout: rows are output features, as HF's [out, in]
// (checked by dequantizing and comparing with the bf16 originals within the quantization error).
TEST(GgufLoader, QuantizedMatricesAreHuggingFaceRows) {
  const GgufModel m = reference_model(true);
  const auto hf = hf_excerpt();
  auto check = [](const std::vector<float>& q, const std::vector<float>& ref, double bound, const char* what) {
    ASSERT_EQ(q.size(), ref.size()) << what;
    double err = 0, scale = 0;
    for (size_t i = 0; i < q.size(); ++i) {
      err = std::max(err, double(std::fabs(q[i] - ref[i])));
      scale = std::max(scale, double(std::fabs(ref[i])));
    }
    EXPECT_LE(err, bound * scale) << what;
  };
  const Tensor q = m.weights.get("text.blk.0.attn_q");
  EXPECT_EQ(q.dtype(), DType::Q4_0);
  EXPECT_EQ(q.shape(), (Shape{64, 32}));
  // ggml's Q4_0 maps the block's extreme to -8 steps, so the opposite extreme clamps at +7:
  // errors reach max|block| / 8. A transposed reading would be off by about max itself.
  check(dequantize(q), hf->tensor("language_model.model.layers.0.self_attn.q_proj.weight").to_f32(), 0.13, "attn_q");
  const Tensor down = m.weights.get("text.blk.5.ffn_down");
  EXPECT_EQ(down.shape(), (Shape{32, 64}));
  check(dequantize(down), hf->tensor("language_model.model.layers.5.mlp.down_proj.weight").to_f32(), 0.13, "ffn_down");
  // Token embeddings (Q8_0 in this file): rows 2, 105, 262144.
  const Tensor embd = m.weights.get("text.embed");
  EXPECT_EQ(embd.dtype(), DType::Q8_0);
  std::vector<float> rows;
  for (int64_t r : {2, 105, 262144}) {
    const std::vector<float> v = dequantize(embd.rows(r, 1));
    rows.insert(rows.end(), v.begin(), v.end());
  }
  check(rows, hf->tensor("embed_tokens.rows_2_105_262144").to_f32(), 0.005, "token_embd");
}

// The full vision tower + projector from the mmproj (F16/F32) gives the features that the HF
// checkpoint's weights give (tools/gguf_testdata/vision_features.cpp).
TEST(GgufLoader, VisionFeaturesFromMmproj) {
  GgufModel g = reference_model(true);
  ReferenceBackend backend;
  Model model(std::move(g.config), std::move(g.weights), Placement::all(backend));
  const Tensor k = hf_excerpt()->tensor("image_chat.pixel_values_u8");
  std::vector<float> pixels(size_t(k.numel()));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = float(k.data<const uint8_t>()[i]) / 127.5f - 1.0f;
  const auto out = model.encode_images(Tensor::from_f32(pixels, k.shape()));
  const auto expected = SafetensorsFile::open(test::data_path("gguf/vision-features.safetensors"))->tensor("image_features");
  ASSERT_EQ(out.features.shape(), expected.shape());
  const std::vector<float> a = out.features.to_f32(), b = expected.to_f32();
  double err = 0;
  for (size_t i = 0; i < a.size(); ++i) err = std::max(err, double(std::fabs(a[i] - b[i])));
  EXPECT_LE(err, 1e-5);
}

// tiny-text through a GGUF written as llama.cpp writes Gemma 3 (norms + 1 in F32, BF16
// matrices), loaded by Engine::load, against HF's float32 logits.
TEST(GgufLoader, TinyTextGgufMatchesTransformersLogits) {
  EngineOptions o;
  o.device = "cpu";
  o.threads = 2;
  auto engine = Engine::load(test::tiny_text_gguf_path(), o);
  EXPECT_EQ(engine->tokenizer(), nullptr);  // this GGUF has no vocabulary
  const Config hf = load_config(test::data_path("models/tiny-text"));
  EXPECT_EQ(engine->config().text.layer_types, hf.text.layer_types);
  EXPECT_EQ(engine->config().eos_token_ids, hf.eos_token_ids);
  const auto ref = SafetensorsFile::open(test::data_path("models/tiny-text/reference.safetensors"));
  const Tensor ids_t = ref->tensor("input_ids");
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < ids_t.numel(); ++i) ids.push_back(int32_t(ids_t.data<const int64_t>()[i]));
  auto seq = engine->new_sequence();
  const Tensor logits = engine->append(*seq, ids, nullptr, true);
  const std::vector<float> a = logits.to_f32(), b = ref->tensor("logits").to_f32();
  ASSERT_EQ(a.size(), b.size());
  double err = 0, mean = 0, var = 0;
  for (float x : b) mean += x;
  mean /= double(b.size());
  for (float x : b) var += (x - mean) * (x - mean);
  for (size_t i = 0; i < a.size(); ++i) err = std::max(err, double(std::fabs(a[i] - b[i])));
  EXPECT_LE(err / std::max(1.0, std::sqrt(var / double(b.size()))), 1e-3);
  // Images need the mmproj.
  const std::string msg = error_of([&] { engine->encode_images(Tensor::zeros(DType::F32, {1, 3, 224, 224})); });
  EXPECT_NE(msg.find("--mmproj"), std::string::npos) << msg;
}

// llama.cpp's rules for what the metadata leaves out.
TEST(GgufLoader, LlamaCppRulesForScaleAndLayerPattern) {
  auto config_of = [](int64_t layers, int64_t hidden, int64_t heads, int64_t key_length,
                      const std::function<void(GgufWriter&)>& edit) {
    GgufWriter w;
    w.set_string("general.architecture", "gemma3");
    w.set_u32("gemma3.block_count", uint32_t(layers));
    w.set_u32("gemma3.embedding_length", uint32_t(hidden));
    w.set_u32("gemma3.feed_forward_length", 64);
    w.set_u32("gemma3.context_length", 1024);
    w.set_u32("gemma3.attention.head_count", uint32_t(heads));
    w.set_u32("gemma3.attention.head_count_kv", uint32_t(heads / 2));
    w.set_u32("gemma3.attention.key_length", uint32_t(key_length));
    w.set_u32("gemma3.attention.sliding_window", 16);
    w.set_f32("gemma3.attention.layer_norm_rms_epsilon", 1e-6f);
    if (edit) edit(w);
    w.add_generated("token_embd.weight", DType::F32, {8, hidden}, [](void*) {});
    const std::string bytes = w.serialize();
    const auto f = GgufFile::open_buffer(bytes.data(), bytes.size(), "cfg.gguf");
    return config_from_gguf(*f, nullptr);
  };
  // 27B (62 layers): hidden / heads = 5376 / 32 = 168; others: key_length.
  EXPECT_EQ(config_of(62, 5376, 32, 128, nullptr).text.query_pre_attn_scalar, 168);
  EXPECT_EQ(config_of(34, 2560, 8, 256, nullptr).text.query_pre_attn_scalar, 256);
  const Config c = config_of(13, 64, 4, 16, nullptr);
  for (int64_t l = 0; l < 13; ++l) EXPECT_EQ(c.text.is_sliding(l), l != 5 && l != 11) << l;
  EXPECT_EQ(c.text.rope_full.theta, 10000.0);  // llama.cpp's default without rope.freq_base
  EXPECT_EQ(c.text.rope_full.type, "default");
  // A pattern key, when present, wins (a count, or one bool per layer).
  const Config p = config_of(4, 64, 4, 16, [](GgufWriter& w) {
    w.set_array("gemma3.attention.sliding_window_pattern", GgufWriter::Array::of_bools({true, false, false, true}));
  });
  EXPECT_EQ(p.text.layer_types,
            (std::vector<LayerType>{LayerType::Sliding, LayerType::Full, LayerType::Full, LayerType::Sliding}));
  EXPECT_TRUE(config_of(4, 64, 4, 16, [](GgufWriter& w) { w.set_u32("gemma3.attention.sliding_window_pattern", 2); })
                  .text.layer_types[1] == LayerType::Full);
  EXPECT_NE(error_of([&] {
              config_of(4, 64, 4, 16, [](GgufWriter& w) { w.set_string("gemma3.rope.scaling.type", "yarn"); });
            }).find("unsupported rope_type 'yarn'"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              config_of(4, 64, 4, 16, [](GgufWriter& w) { w.set_u32("gemma3.attention.value_length", 8); });
            }).find("value_length 8 differs"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              config_of(4, 64, 4, 16, [](GgufWriter& w) { w.set_string("gemma3.attention.sliding_window", "x"); });
            }).find("'gemma3.attention.sliding_window' must be an integer"),
            std::string::npos);
}

TEST(GgufLoader, RecognizesGgufPaths) {
  EXPECT_TRUE(is_gguf_path("model.gguf"));
  EXPECT_TRUE(is_gguf_path("/x/Model-Q4_0.GGUF"));
  EXPECT_FALSE(is_gguf_path(test::data_path("models/tiny-text")));
  EXPECT_FALSE(is_gguf_path(test::data_path("models/tiny-text/model.safetensors")));
  const std::string renamed = test::scratch_dir("gguf-renamed") + "/model.bin";
  test::write_bytes(renamed, read_file(test::reference_mmproj_path()));
  EXPECT_TRUE(is_gguf_path(renamed));  // by its magic
}

TEST(GgufLoader, ClearErrors) {
  const std::string dir = test::scratch_dir("gguf-loader-errors");
  auto write = [&](GgufWriter& w, const std::string& name) {
    const std::string p = dir + "/" + name;
    w.write(p);
    return p;
  };
  // The mmproj given as the model, and the other way round.
  std::string m = error_of([&] { load_gguf_model(test::reference_mmproj_path(), ""); });
  EXPECT_NE(m.find("general.architecture is 'clip'"), std::string::npos) << m;
  EXPECT_NE(m.find("--mmproj"), std::string::npos) << m;
  m = error_of([&] { load_gguf_model(test::tiny_text_gguf_path(), test::tiny_text_gguf_path()); });
  EXPECT_NE(m.find("general.architecture is 'gemma3', expected 'clip'"), std::string::npos) << m;
  // An mmproj of another width.
  m = error_of([&] { load_gguf_model(test::tiny_text_gguf_path(), test::reference_mmproj_path()); });
  EXPECT_NE(m.find("projection_dim 32 does not match the text model's embedding_length 64"), std::string::npos) << m;
  // A missing tensor, a wrong shape, an extra tensor, an untied LM head.
  GgufWriter w = test::tiny_text_gguf_writer();
  w.set_u32("gemma3.feed_forward_length", 96);
  m = error_of([&] { load_gguf_model(write(w, "ffn.gguf"), ""); });
  EXPECT_NE(m.find("tensor 'blk.0.ffn_gate.weight' has shape [128, 64]"), std::string::npos) << m;
  EXPECT_NE(m.find("expected [96, 64]"), std::string::npos) << m;
  w = test::tiny_text_gguf_writer();
  w.set_u32("gemma3.block_count", 6);
  m = error_of([&] { load_gguf_model(write(w, "layers.gguf"), ""); });
  EXPECT_NE(m.find("missing tensor 'blk.5.attn_norm.weight'"), std::string::npos) << m;
  w = test::tiny_text_gguf_writer();
  w.add("output.weight", Tensor::zeros(DType::F32, {1024, 64}));
  m = error_of([&] { load_gguf_model(write(w, "untied.gguf"), ""); });
  EXPECT_NE(m.find("'output.weight'"), std::string::npos) << m;
  EXPECT_NE(m.find("ties them"), std::string::npos) << m;
  w = test::tiny_text_gguf_writer();
  w.add("rope_freqs.weight", Tensor::zeros(DType::F32, {8}));
  m = error_of([&] { load_gguf_model(write(w, "extra.gguf"), ""); });
  EXPECT_NE(m.find("'rope_freqs.weight'"), std::string::npos) << m;
  // An --mmproj without a GGUF model.
  EngineOptions o;
  o.mmproj = test::reference_mmproj_path();
  m = error_of([&] { Engine::load(test::data_path("models/tiny-text"), o); });
  EXPECT_NE(m.find("goes with a GGUF model"), std::string::npos) << m;
}

}  // namespace
}  // namespace unicorn::gemma3
