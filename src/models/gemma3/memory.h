// Memory a Gemma 3 model needs: weights by component in a given storage format, and the KV
// cache for a context (full layers hold every position, sliding layers a ring of window +
// prefill chunk). Computed from the tensor table, so it works for shapes without weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "models/gemma3/config.h"

namespace unicorn::gemma3 {

struct MemoryEstimate {
  int64_t text_weights = 0, vision_weights = 0, projector_weights = 0;
  int64_t kv_cache = 0;
  int64_t kv_full_slots = 0, kv_sliding_slots = 0;  // per layer
  int64_t total() const { return text_weights + vision_weights + projector_weights + kv_cache; }
};

// `matrix_format`: the dtype of linear-layer matrices (BF16 for an unquantized checkpoint,
// or NF4, Q4_0, Q8_0, Q4_K): matrices whose rows the format cannot hold stay BF16, other
// tensors stay BF16. `quantize_embedding`: the token embedding (tied LM head) in the matrix
// format too. `kv_dtype`: F32 (CPU) or F16/BF16.
MemoryEstimate estimate_memory(const Config& config, DType matrix_format, bool quantize_embedding, int64_t context,
                               DType kv_dtype, int64_t max_chunk = 512);

// Bytes of a [rows, cols] matrix stored as `format` (NF4 includes its double-quantized state).
int64_t matrix_bytes(DType format, int64_t rows, int64_t cols);
// Whether `format` can store rows of `cols` values (block formats need whole blocks a row;
// NF4 blocks run over the flattened tensor).
bool format_fits(DType format, int64_t cols);
// Parse "bf16", "f16", "f32", "nf4", "q4_0", "q8_0", "q4_k"/"q4_k_m", "q6_k"; Error otherwise.
DType parse_weight_format(const std::string& name);
// Matrices of the model whose rows `format` cannot hold (they stay in their original type),
// grouped as "vision.blk.*.fc2 (4304 columns)".
std::vector<std::string> matrices_kept_wide(const Config& config, DType format);

}  // namespace unicorn::gemma3
