// Writing quantized copies of a Hugging Face Gemma 3 folder in formats other tools load.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace unicorn::gemma3 {

// Called after each tensor: (done, total, tensor name).
using ExportProgress = std::function<void(int64_t, int64_t, const std::string&)>;

// A Hugging Face folder in bitsandbytes' 4-bit serialization (NF4, double quantization,
// blocks of 64), as transformers + bitsandbytes save a load_in_4bit model: every linear
// layer of the text decoder and the vision tower quantized; embedding, norms, biases,
// patch and position embeddings and the projector kept in the source dtype;
// quantization_config added to config.json; tokenizer and other files copied.
// With quantize_embedding, the token embedding (the tied LM head) is stored the same way:
// smaller (it dominates small models), but beyond what transformers' bitsandbytes
// integration loads, which quantizes linear layers only.
void export_bnb_nf4(const std::string& src_dir, const std::string& out_dir, const ExportProgress& progress,
                    bool quantize_embedding = false);
// config.json's quantization_config for a folder export_bnb_nf4 writes.
nlohmann::json bnb_nf4_quantization_config(bool quantize_embedding);

// GGUF files as llama.cpp writes Gemma 3 (arch "gemma3", its tensor names and metadata keys,
// text norm weights in F32 with 1 added, the SentencePiece-style vocabulary built from
// tokenizer.json: tokenizer/gguf_vocab_export.h) and, for a multimodal checkpoint, the
// mmproj file of its --mmproj conversion (vision tower + projector: F16 matrices, F32 the
// rest, clip.* keys). Which llama.cpp flow each type reproduces:
//   f16, bf16, q8_0: convert_hf_to_gguf.py --outtype TYPE (every text matrix in TYPE; a
//     matrix whose rows are not whole blocks in F16; tensors in the checkpoint's order);
//   q4_0, q4_k_m, q6_k: convert_hf_to_gguf.py --outtype bf16, then llama-quantize TYPE
//     (llama_tensor_get_type: the tied token embedding in Q6_K, or Q8_0 when its rows are
//     not whole blocks of the type; q4_k_m's attn_v and ffn_down in Q6_K on the layers of
//     use_more_bits; rows that do not fit a type fall back Q4_K -> Q5_0, Q6_K -> Q8_0, then
//     F16; tensors in llama.cpp's loader order; general.file_type last).
// Quantizers are ggml's reference ones bit for bit (core/quant/quant.h); without an
// importance matrix llama-quantize uses the same.
enum class GgufExportType { F16, BF16, Q8_0, Q4_0, Q4_K_M, Q6_K };
std::optional<GgufExportType> parse_gguf_export_type(std::string_view name);  // "q4_k_m", ...
std::string_view gguf_export_type_name(GgufExportType t);

// A tensor the export stored in another type than the one requested, and why.
struct GgufTypeNote {
  std::string tensor;  // GGUF name
  DType dtype;
  std::string reason;
};

struct GgufExportResult {
  std::string text_path;
  std::string mmproj_path;  // empty for a text-only checkpoint
  std::vector<GgufTypeNote> notes;
  // What llama.cpp's gemma3 metadata cannot say about this checkpoint (test models only:
  // an attention scale other than llama.cpp's rule, a layer pattern other than 6).
  std::vector<std::string> warnings;
};

// mmproj-<stem>-f16.gguf next to out_path, where stem is out_path's name without .gguf and
// without a trailing -<type> ("gemma-3-4b-it-q4_0.gguf" -> "mmproj-gemma-3-4b-it-f16.gguf").
std::string default_mmproj_path(const std::string& out_path, GgufExportType type);

// Writes out_path and, for a multimodal checkpoint, mmproj_path (empty: the default name).
GgufExportResult export_gguf(const std::string& src_dir, const std::string& out_path, GgufExportType type,
                             const std::string& mmproj_path, const ExportProgress& progress);

// A text GGUF with random weights at `config`'s shapes, for measuring speed without real
// weights (unicorn random-model --gguf): llama.cpp's names and metadata, each tensor in the
// type `type` gives it (as export_gguf), values uniform in [-0.02, 0.02) quantized; no
// vocabulary.
struct Config;
void write_random_text_gguf(const Config& config, const std::string& out_path, GgufExportType type, uint64_t seed,
                            const ExportProgress& progress);

}  // namespace unicorn::gemma3
