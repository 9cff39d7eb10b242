#include "support/gguf_reference.h"

#include "formats/gzip.h"
#include "formats/safetensors.h"
#include "models/gemma3/config.h"
#include "models/gemma3/tensor_table.h"
#include "support/test_paths.h"

namespace unicorn::test {

namespace {

const std::shared_ptr<const std::string>& reference_text_bytes() {
  static const auto bytes =
      std::make_shared<const std::string>(read_gzip_file(data_path("gguf/tiny-mm-realvocab-q4_0.gguf.gz")));
  return bytes;
}

}  // namespace

std::shared_ptr<const GgufFile> reference_text_gguf() {
  static const std::shared_ptr<const GgufFile> f = [] {
    const auto& bytes = reference_text_bytes();
    return GgufFile::open_buffer(bytes->data(), bytes->size(), "tiny-mm-realvocab-q4_0.gguf", bytes);
  }();
  return f;
}

const std::string& reference_text_gguf_path() {
  static const std::string path = [] {
    const std::string p = scratch_dir("gguf-reference") + "/tiny-mm-realvocab-q4_0.gguf";
    write_bytes(p, *reference_text_bytes());
    return p;
  }();
  return path;
}

std::string reference_mmproj_path() { return data_path("gguf/mmproj-tiny-mm-realvocab-f16.gguf"); }

std::shared_ptr<const GgufFile> reference_mmproj() {
  static const std::shared_ptr<const GgufFile> f = GgufFile::open(reference_mmproj_path());
  return f;
}

GgufWriter tiny_text_gguf_writer() {
  using namespace gemma3;
  const std::string dir = data_path("models/tiny-text");
  const Config c = load_config(dir);
  const TextConfig& t = c.text;
  auto files = std::make_shared<const SafetensorsSet>(SafetensorsSet::open(dir));
  GgufWriter w;
  // ref: llama.cpp convert_hf_to_gguf.py Gemma3Model (the keys it writes for gemma3).
  w.set_string("general.architecture", "gemma3");
  w.set_string("general.name", "tiny-text");
  w.set_u32("gemma3.context_length", uint32_t(t.max_position_embeddings));
  w.set_u32("gemma3.embedding_length", uint32_t(t.hidden_size));
  w.set_u32("gemma3.block_count", uint32_t(t.num_hidden_layers));
  w.set_u32("gemma3.feed_forward_length", uint32_t(t.intermediate_size));
  w.set_u32("gemma3.attention.head_count", uint32_t(t.num_attention_heads));
  w.set_u32("gemma3.attention.head_count_kv", uint32_t(t.num_key_value_heads));
  w.set_f32("gemma3.rope.freq_base", float(t.rope_full.theta));
  w.set_f32("gemma3.rope.freq_base_swa", float(t.rope_sliding.theta));
  w.set_f32("gemma3.attention.layer_norm_rms_epsilon", float(t.rms_norm_eps));
  w.set_u32("gemma3.attention.key_length", uint32_t(t.head_dim));
  w.set_u32("gemma3.attention.value_length", uint32_t(t.head_dim));
  w.set_u32("gemma3.attention.sliding_window", uint32_t(t.sliding_window));
  w.set_u32("tokenizer.ggml.bos_token_id", 2);
  w.set_u32("tokenizer.ggml.eos_token_id", 1);
  w.set_u32("tokenizer.ggml.eot_token_id", 106);
  w.set_u32("tokenizer.ggml.padding_token_id", 0);
  w.set_u32("general.file_type", 32);  // llama.cpp's LLAMA_FTYPE_MOSTLY_BF16
  for (const TensorSpec& spec : tensor_table(c)) {
    const Tensor hf = files->tensor("model." + spec.inner);
    if (spec.matrix) {
      w.add(spec.gguf, hf);
    } else {  // norms: llama.cpp stores 1 + w in F32 (its RMSNorm multiplies by w)
      std::vector<float> v = hf.to_f32();
      for (float& x : v) x += 1.0f;
      w.add(spec.gguf, Tensor::from_f32(v, hf.shape()));
    }
  }
  return w;
}

const std::string& tiny_text_gguf_path() {
  static const std::string path = [] {
    const std::string p = scratch_dir("gguf-tiny-text") + "/tiny-text-bf16.gguf";
    tiny_text_gguf_writer().write(p);
    return p;
  }();
  return path;
}

}  // namespace unicorn::test
