// Writing quantized copies of a Hugging Face Gemma 3 folder in formats other tools load.
#pragma once

#include <functional>
#include <string>

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

}  // namespace unicorn::gemma3
