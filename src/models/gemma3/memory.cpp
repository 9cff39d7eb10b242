#include "models/gemma3/memory.h"

#include <algorithm>

#include "core/error.h"
#include "models/gemma3/tensor_table.h"

namespace unicorn::gemma3 {

bool format_fits(DType format, int64_t cols) {
  if (format == DType::NF4) return true;
  return cols % dtype_info(format).block_elems == 0;
}

int64_t matrix_bytes(DType format, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  if (format == DType::NF4) {
    // codes + 8-bit absmax per 64 + f32 nested absmax per 256 blocks + maps (16 + 256 floats)
    const int64_t blocks = (n + 63) / 64;
    return (n + 1) / 2 + blocks + (blocks + 255) / 256 * 4 + (16 + 256) * 4;
  }
  return dtype_bytes(format, n);
}

DType parse_weight_format(const std::string& name) {
  if (name == "bf16") return DType::BF16;
  if (name == "f16") return DType::F16;
  if (name == "f32") return DType::F32;
  if (name == "nf4") return DType::NF4;
  if (name == "q4_0") return DType::Q4_0;
  if (name == "q8_0") return DType::Q8_0;
  if (name == "q4_k" || name == "q4_k_m") return DType::Q4_K;
  if (name == "q6_k") return DType::Q6_K;
  fail("unknown weight format '{}' (expected bf16, f16, f32, nf4, q4_0, q8_0, q4_k, q6_k)", name);
}

std::vector<std::string> matrices_kept_wide(const Config& config, DType format) {
  std::vector<std::string> out;
  for (const TensorSpec& spec : tensor_table(config)) {
    if (!spec.matrix || spec.shape.size() != 2 || format_fits(format, spec.shape[1])) continue;
    // Collapse the layer number: one line per kind of matrix.
    std::string name = spec.canonical;
    const auto blk = name.find(".blk.");
    if (blk != std::string::npos) {
      const auto dot = name.find('.', blk + 5);
      name = name.substr(0, blk + 5) + "*" + name.substr(dot);
    }
    name += " (" + std::to_string(spec.shape[1]) + " columns)";
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

MemoryEstimate estimate_memory(const Config& config, DType matrix_format, bool quantize_embedding, int64_t context,
                               DType kv_dtype, int64_t max_chunk) {
  MemoryEstimate m;
  for (const TensorSpec& spec : tensor_table(config)) {
    int64_t bytes;
    const bool is_embed = spec.canonical == "text.embed";
    const bool quantize = spec.matrix && (!is_embed || quantize_embedding) && spec.shape.size() == 2 &&
                          format_fits(matrix_format, spec.shape[1]);
    if (quantize) {
      bytes = matrix_bytes(matrix_format, spec.shape[0], spec.shape[1]);
    } else {
      bytes = dtype_bytes(DType::BF16, shape_numel(spec.shape));
    }
    switch (spec.component) {
      case Component::Text: m.text_weights += bytes; break;
      case Component::Vision: m.vision_weights += bytes; break;
      case Component::Projector: m.projector_weights += bytes; break;
    }
  }
  const TextConfig& t = config.text;
  m.kv_full_slots = context;
  m.kv_sliding_slots = std::min(context, t.sliding_window + max_chunk);
  const int64_t per_slot = 2 * t.num_key_value_heads * t.head_dim * dtype_info(kv_dtype).block_bytes;
  for (int64_t l = 0; l < t.num_hidden_layers; ++l)
    m.kv_cache += per_slot * (t.is_sliding(l) ? m.kv_sliding_slots : m.kv_full_slots);
  return m;
}

}  // namespace unicorn::gemma3
