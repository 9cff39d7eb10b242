// unicorn quantize's GGUF output (models/gemma3/export_gguf.cpp):
//   - against the files llama.cpp itself wrote (tests/data/gguf): a Hugging Face folder is
//     rebuilt from llama.cpp's q4_0 GGUF + mmproj (F32 values: Q4_0 and Q8_0 requantize to
//     the same blocks), exported again, and compared key by key, tensor by tensor and byte
//     for byte;
//   - loaded by our engine against transformers' logits (bf16 ~ exact, q8_0 closer than q4_0);
//   - loaded by llama.cpp (node-llama-cpp's prebuilt CPU build, tools/llamacpp/eval.mjs):
//     its tokenization, greedy continuation and top tokens against our engine on the same file;
//   - the command line: errors, and `unicorn info` naming the tensors in other types.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/quant/quant.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/mapped_file.h"
#include "formats/safetensors.h"
#include "models/gemma3/export.h"
#include "models/gemma3/gguf_loader.h"
#include "runtime/engine.h"
#include "support/gguf_reference.h"
#include "support/test_paths.h"

namespace unicorn::gemma3 {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

void link(const std::string& target, const std::string& dir, const std::string& name) {
  fs::create_symlink(fs::absolute(target), fs::path(dir) / name);
}

// tests/data/gguf's llama.cpp files back to a Hugging Face folder named tiny-mm-realvocab
// (hub tensor names, F32 values, norms minus 1), with the real tokenizer.
std::string folder_from_llamacpp_files(const std::string& scratch) {
  const std::string dir = test::scratch_dir(scratch) + "/tiny-mm-realvocab";
  fs::create_directories(dir);
  const GgufModel g = load_gguf_model(test::reference_text_gguf(), test::reference_mmproj());
  SafetensorsWriter w;
  for (const TensorSpec& spec : tensor_table(g.config)) {
    const Tensor& t = g.weights.get(spec.canonical);
    std::vector<float> v(size_t(t.numel()));
    dequantize_values(t.dtype(), t.raw(), v.data(), t.numel());
    w.add(hf_prefixes(spec.component, true)[0] + spec.inner, Tensor::from_f32(v, t.shape()));
  }
  w.write(dir + "/model.safetensors");
  link(test::data_path("gguf/config.json"), dir, "config.json");
  link(test::real_tokenizer_json(), dir, "tokenizer.json");
  link(test::data_path("tokenizer/tokenizer_config.json"), dir, "tokenizer_config.json");
  return dir;
}

// One metadata value as GGUF bytes.
std::string encoded(const GgufValue& v) {
  GgufWriter w;
  w.set("k", v);
  return w.serialize();
}

// Every difference between two GGUF files: keys (order, types, values), tensors (order,
// names, shapes, types, bytes). Empty when they hold the same.
std::vector<std::string> differences(const GgufFile& ours, const GgufFile& ref) {
  std::vector<std::string> d;
  const auto &ka = ours.metadata(), &kb = ref.metadata();
  for (size_t i = 0; i < std::max(ka.size(), kb.size()); ++i) {
    const std::string a = i < ka.size() ? ka[i].first : "(none)", b = i < kb.size() ? kb[i].first : "(none)";
    if (a != b) {
      d.push_back(fmt::format("key #{}: ours '{}', llama.cpp '{}'", i, a, b));
    } else if (encoded(ka[i].second) != encoded(kb[i].second)) {
      d.push_back(fmt::format("key '{}': values differ", a));
    }
  }
  const auto &ta = ours.tensors(), &tb = ref.tensors();
  for (size_t i = 0; i < std::max(ta.size(), tb.size()); ++i) {
    if (i >= ta.size() || i >= tb.size()) {
      d.push_back(fmt::format("tensor #{}: only in one file", i));
      continue;
    }
    const GgufTensorInfo &a = ta[i], &b = tb[i];
    if (a.name != b.name || a.shape != b.shape || a.type->id != b.type->id) {
      d.push_back(fmt::format("tensor #{}: ours {} {} {}, llama.cpp {} {} {}", i, a.name, shape_str(a.shape),
                              a.type->name, b.name, shape_str(b.shape), b.type->name));
    } else if (std::memcmp(ours.tensor(a).raw(), ref.tensor(b).raw(), size_t(a.bytes)) != 0) {
      d.push_back(fmt::format("tensor {} ({}): bytes differ", a.name, a.type->name));
    }
  }
  return d;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

TEST(GgufExport, ReproducesLlamaCppFilesByteForByte) {
  const std::string dir = folder_from_llamacpp_files("gguf-export-roundtrip");
  const std::string out = fs::path(dir).parent_path() / "tiny-mm-realvocab-q4_0.gguf";
  const GgufExportResult r = export_gguf(dir, out, GgufExportType::Q4_0, "", nullptr);
  EXPECT_EQ(r.mmproj_path, fs::path(dir).parent_path() / "mmproj-tiny-mm-realvocab-f16.gguf");
  // llama-quantize keeps the tied embedding wider: Q6_K, here Q8_0 (rows of 32 < 256).
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_EQ(r.notes[0].tensor, "token_embd.weight");
  EXPECT_EQ(r.notes[0].dtype, DType::Q8_0);

  const auto ours = GgufFile::open(out), mm = GgufFile::open(r.mmproj_path);
  EXPECT_EQ(joined(differences(*ours, *test::reference_text_gguf())), "");
  EXPECT_EQ(joined(differences(*mm, *test::reference_mmproj())), "");
  EXPECT_TRUE(read_file(out) == read_file(test::reference_text_gguf_path())) << "text GGUF not byte-identical";
  EXPECT_TRUE(read_file(r.mmproj_path) == read_file(test::reference_mmproj_path())) << "mmproj not byte-identical";
}

// A test model with a synthetic tokenizer: its vocabulary of 1024 has no tokenizer.json,
// and a GGUF needs one (Gemma's special pieces where the config puts them).
std::string small_vocab_folder(const std::string& model) {
  const std::string dir = test::scratch_dir("gguf-export-" + model) + "/" + model;
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"}) link(test::data_path("models/" + model + "/" + f), dir, f);
  json vocab = json::object(), added = json::array();
  const std::map<int, std::string> special = {{0, "<pad>"}, {1, "<eos>"}, {2, "<bos>"}, {3, "<unk>"},
                                              {1000, "<start_of_image>"}, {1001, "<end_of_image>"},
                                              {1002, "<image_soft_token>"}};
  for (int i = 0; i < 1024; ++i) {
    const auto s = special.find(i);
    const std::string piece = s != special.end() ? s->second : fmt::format("p{}", i);
    vocab[piece] = i;
    if (s != special.end()) added.push_back({{"id", i}, {"content", piece}, {"special", true}});
  }
  const json tok = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}, {"byte_fallback", true}}},
                    {"added_tokens", added}};
  test::write_bytes(dir + "/tokenizer.json", tok.dump());
  return dir;
}

double scaled_max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double mean = 0, var = 0, err = 0;
  for (float x : b) mean += x;
  mean /= double(b.size());
  for (float x : b) var += (x - mean) * (x - mean);
  for (size_t i = 0; i < a.size(); ++i) err = std::max(err, double(std::fabs(a[i] - b[i])));
  return err / std::max(1.0, std::sqrt(var / double(b.size())));
}

// Our engine on an exported GGUF (+ mmproj), all logits of the reference's sequence.
std::vector<float> engine_logits(const std::string& gguf, const SafetensorsFile& ref) {
  EngineOptions o;
  o.threads = 2;
  auto engine = Engine::load(gguf, o);
  const Tensor ids_t = ref.tensor("input_ids");
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < ids_t.numel(); ++i) ids.push_back(int32_t(ids_t.data<const int64_t>()[i]));
  auto seq = engine->new_sequence();
  return engine->append(*seq, ids, nullptr, true).to_f32();
}

// tiny-text (text-only; its query_pre_attn_scalar is head_dim, as llama.cpp assumes).
TEST(GgufExport, EngineLogitsCloseToTransformers) {
  const std::string dir = small_vocab_folder("tiny-text");
  const auto ref = SafetensorsFile::open(test::data_path("models/tiny-text/reference.safetensors"));
  const std::vector<float> expected = ref->tensor("logits").to_f32();
  std::map<GgufExportType, double> err;
  for (GgufExportType t : {GgufExportType::BF16, GgufExportType::Q8_0, GgufExportType::Q4_0}) {
    const std::string out = fs::path(dir).parent_path() / fmt::format("tiny-text-{}.gguf", gguf_export_type_name(t));
    const GgufExportResult r = export_gguf(dir, out, t, "", nullptr);
    EXPECT_TRUE(r.mmproj_path.empty());
    EXPECT_TRUE(r.warnings.empty());
    err[t] = scaled_max_diff(engine_logits(out, *ref), expected);
    std::printf("%s: logits scaled max diff %.3g\n", std::string(gguf_export_type_name(t)).c_str(), err[t]);
  }
  EXPECT_LE(err[GgufExportType::BF16], 1e-3);  // the same bf16 weights: only f32 rounding
  // A 64-wide random model is sensitive to weight error (measured: q8_0 0.078, q4_0 0.85).
  EXPECT_LT(err[GgufExportType::Q8_0], 0.15);
  EXPECT_LT(4 * err[GgufExportType::Q8_0], err[GgufExportType::Q4_0]);
  EXPECT_LT(err[GgufExportType::Q4_0], 1.5);
}

// tiny-mm's mmproj (F16 matrices): the image features of transformers. Its text part cannot
// be compared with transformers through GGUF: its query_pre_attn_scalar (24) is not head_dim,
// which llama.cpp's format cannot say, and its layer pattern 3 is not llama.cpp's 6.
TEST(GgufExport, MmprojImageFeaturesMatchTransformers) {
  const std::string dir = small_vocab_folder("tiny-mm"), out = fs::path(dir).parent_path() / "tiny-mm-q8_0.gguf";
  const GgufExportResult r = export_gguf(dir, out, GgufExportType::Q8_0, "", nullptr);
  ASSERT_EQ(r.warnings.size(), 2u);
  EXPECT_NE(r.warnings[0].find("query_pre_attn_scalar 24 has no GGUF key"), std::string::npos) << r.warnings[0];
  EXPECT_TRUE(GgufFile::open(out)->has("gemma3.attention.sliding_window_pattern"));
  EngineOptions o;
  o.threads = 2;
  o.mmproj = r.mmproj_path;
  auto engine = Engine::load(out, o);
  EXPECT_EQ(engine->config().text.layer_types, load_config(dir).text.layer_types);
  const auto ref = SafetensorsFile::open(test::data_path("models/tiny-mm/reference.safetensors"));
  const Tensor features = engine->encode_images(ref->tensor("pixel_values"));
  const double err = scaled_max_diff(features.to_f32(), ref->tensor("image_features").to_f32());
  std::printf("image features from the F16 mmproj: scaled max diff %.3g\n", err);
  EXPECT_LE(err, 1e-2);
}

// tests/data/models/tiny-realvocab (real vocabulary) with the real tokenizer files.
std::string tiny_realvocab_folder() {
  const std::string dir = test::scratch_dir("gguf-export-realvocab") + "/tiny-realvocab";
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"})
    link(test::data_path(std::string("models/tiny-realvocab/") + f), dir, f);
  link(test::real_tokenizer_json(), dir, "tokenizer.json");
  link(test::data_path("tokenizer/tokenizer_config.json"), dir, "tokenizer_config.json");
  return dir;
}

std::vector<float> softmax(const float* x, int64_t n) {
  std::vector<float> p(x, x + n);
  const float mx = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (float& v : p) sum += (v = std::exp(v - mx));
  for (float& v : p) v = float(v / sum);
  return p;
}

// llama.cpp loads an f16 file we export (from tiny-mm-realvocab: hidden 32, real
// vocabulary), tokenizes the chat as transformers does, and its greedy steps and
// probabilities agree with our engine fed the same tokens. (F16: llama.cpp rounds the
// activations to f16 in its products; a Q8_0 file would round them to 8 bits.)
TEST(GgufExportSlow, LlamaCppAgreesWithEngine) {
  if (!fs::exists(test::repo_path("node_modules/node-llama-cpp/package.json")))
    GTEST_SKIP() << "node-llama-cpp is not installed (scripts/install-deps.sh runs npm ci)";
  const std::string dir = folder_from_llamacpp_files("gguf-export-llamacpp");
  const std::string out = fs::path(dir).parent_path() / "tiny-mm-realvocab-f16.gguf";
  export_gguf(dir, out, GgufExportType::F16, "", nullptr);
  const json ref = json::parse(read_file(test::data_path("models/tiny-realvocab/reference.json")));
  const int steps = 6;
  const test::CommandResult r = test::run_command(
      "cd '" + test::repo_path("") + "' && node tools/llamacpp/eval.mjs '" + out + "' '" +
      json(ref["prompt"].get<std::string>()).dump() + "' " + std::to_string(steps) + " 5");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const json got = json::parse(r.out);
  EXPECT_EQ(got["prompt_ids"], ref["prompt_ids"]);  // llama.cpp's tokenizer on our vocabulary

  EngineOptions o;
  o.threads = 2;
  auto engine = Engine::load(out, o);
  std::vector<int32_t> ids = got["prompt_ids"].get<std::vector<int32_t>>();
  auto seq = engine->new_sequence();
  Tensor logits = engine->append(*seq, ids, nullptr, false);
  const int64_t vocab = logits.dim(1);
  double worst = 0;  // largest relative difference of a top-5 probability
  for (int step = 0; step < steps; ++step) {
    const std::vector<float> p = softmax(logits.data<const float>(), vocab);
    const int32_t theirs = got["generated_ids"][size_t(step)].get<int32_t>();
    const auto ours = int32_t(std::max_element(p.begin(), p.end()) - p.begin());
    // Same argmax, or a near tie (llama.cpp rounds activations to 8 bits in its products).
    EXPECT_TRUE(ours == theirs || p[size_t(ours)] - p[size_t(theirs)] < 0.02 * p[size_t(ours)])
        << "step " << step << ": ours " << ours << " (" << p[size_t(ours)] << "), llama.cpp " << theirs << " ("
        << p[size_t(theirs)] << ")";
    for (const json& top : got["top"][size_t(step)]) {
      const auto id = top[0].get<size_t>();
      const double q = top[1].get<double>();
      worst = std::max(worst, std::fabs(p[id] - q) / q);
      EXPECT_NEAR(p[id], q, 0.02 * q) << "step " << step << " token " << id;  // measured: 0.0055
    }
    const std::vector<int32_t> next = {theirs};
    logits = engine->append(*seq, next, nullptr, false);
  }
  std::printf("llama.cpp vs engine: top-5 probabilities within %.3g relative\n", worst);
}

test::CommandResult quantize(const std::string& args) {
  return test::run_command("'" + test::unicorn_binary() + "' quantize " + args);
}

TEST(QuantizeGguf, ClearErrors) {
  const std::string dir = tiny_realvocab_folder(), scratch = fs::path(dir).parent_path();
  auto r = quantize("-m '" + test::data_path("models/tiny-realvocab/config.json") + "' --type q4_0 --out x.gguf");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("not a Hugging Face model folder"), std::string::npos) << r.err;
  r = quantize("-m '" + dir + "' --type q3_k --out '" + scratch + "/x.gguf'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("unknown --type 'q3_k' (expected nf4, f16, bf16, q8_0, q4_0, q4_k_m or q6_k)"),
            std::string::npos) << r.err;
  r = quantize("-m '" + dir + "' --type q4_0 --out '" + scratch + "/no/such/folder/x.gguf'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  r = quantize("-m '" + dir + "' --type q4_0 --out '" + scratch + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("is a folder; --out names the .gguf file to write"), std::string::npos) << r.err;
  r = quantize("-m '" + dir + "' --type q4_0 --out /proc/x.gguf");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("/proc/x.gguf: cannot write here"), std::string::npos) << r.err;
  fs::remove(fs::path(dir) / "tokenizer.json");
  r = quantize("-m '" + dir + "' --type q4_0 --out '" + scratch + "/x.gguf'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("no tokenizer.json (or tokenizer.json.gz)"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(scratch + "/x.gguf"));
}

// q4_k_m on tiny-mm (hidden 64, 6 layers): llama-quantize's mix (attn_v / ffn_down of the
// use_more_bits layers 2 and 5 in Q6_K) with its fallbacks for rows that are not whole
// 256-value blocks (Q4_K -> Q5_0, Q6_K -> Q8_0), shown by unicorn info.
TEST(QuantizeGguf, Q4KMixAndInfo) {
  const std::string dir = small_vocab_folder("tiny-mm"), out = fs::path(dir).parent_path() / "tiny-mm-q4_k_m.gguf";
  const auto r = quantize("-m '" + dir + "' --type q4_k_m --out '" + out + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("blk.2.attn_v.weight -> Q8_0: Q4_K_M: attn_v of layer 2 in Q6_K (use_more_bits)"),
            std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(fs::path(out).parent_path() / "mmproj-tiny-mm-f16.gguf"));
  const auto f = GgufFile::open(out);
  EXPECT_EQ(f->get_u32("general.file_type"), 15u);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
  EXPECT_EQ(f->metadata().back().first, "general.file_type");
  EXPECT_EQ(f->find_tensor("blk.0.attn_v.weight")->type->name, "Q5_0");  // Q4_K -> Q5_0 (rows of 64)
  EXPECT_EQ(f->find_tensor("blk.2.attn_v.weight")->type->name, "Q8_0");  // Q6_K -> Q8_0
  EXPECT_EQ(f->find_tensor("blk.3.ffn_down.weight")->type->name, "Q5_0");
  EXPECT_EQ(f->find_tensor("blk.5.ffn_down.weight")->type->name, "Q8_0");
  EXPECT_EQ(f->find_tensor("token_embd.weight")->type->name, "Q8_0");
  const auto info = test::run_command("'" + test::unicorn_binary() + "' info -m '" + out + "'");
  ASSERT_EQ(info.status, 0) << info.err;
  EXPECT_NE(info.out.find("in other types:"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("blk.5.ffn_down.weight"), std::string::npos) << info.out;
}

}  // namespace
}  // namespace unicorn::gemma3
