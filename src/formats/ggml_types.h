// The tensor types of ggml (the ids GGUF files store) and how they map to our DType. Every
// type ggml defines is listed with its block geometry, so a GGUF reader can validate the
// byte size of any tensor, including those in formats this engine does not compute with.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/dtype.h"

namespace unicorn {

struct GgmlTypeInfo {
  uint32_t id;                 // ggml_type enum value
  std::string_view name;       // upper case, like our DType names: "Q4_K", "IQ2_XS"
  int64_t block_elems;         // values per block (1 for plain types)
  int64_t block_bytes;         // bytes per block
  std::optional<DType> dtype;  // our type, when the engine has one
};

// The type with this ggml id, or null for ids ggml does not define (or has removed).
const GgmlTypeInfo* ggml_type_info(uint32_t id);
// The ggml id of one of our types, or nullopt (U8, BOOL and NF4 have none).
std::optional<uint32_t> ggml_type_of(DType dtype);

}  // namespace unicorn
