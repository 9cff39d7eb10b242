// bitsandbytes 4-bit (NF4) weights in Hugging Face safetensors, as transformers +
// bitsandbytes save them: for a weight W.weight,
//   W.weight                                   uint8 [numel / 2, 1]  packed codes
//   W.weight.absmax                            uint8 [blocks] (double quant) or f32
//   W.weight.quant_map                         f32 [16]
//   W.weight.nested_absmax                     f32 [ceil(blocks / 256)]   (double quant)
//   W.weight.nested_quant_map                  f32 [256]                  (double quant)
//   W.weight.quant_state.bitsandbytes__nf4     uint8: JSON {quant_type, blocksize, dtype,
//                                              shape, nested_blocksize, nested_dtype, nested_offset}
// ref: bitsandbytes functional.py QuantState.as_dict(packed=True) / from_dict.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/safetensors.h"

namespace unicorn::bnb {

// Whether `name` (e.g. "...q_proj.weight") is stored as bitsandbytes 4-bit in `files`.
bool is_4bit(const SafetensorsSet& files, const std::string& name);
// The names of all entries that belong to weight `name`'s 4-bit storage.
std::vector<std::string> entry_names(const std::string& name);
// Loads weight `name` as an NF4 tensor (a view of the mapped codes, with its nf4::State).
// Errors name the file and the missing or inconsistent entry.
Tensor load_4bit(const SafetensorsSet& files, const std::string& name);
// Adds an NF4 tensor under `name` with every quant-state entry.
void add_4bit(SafetensorsWriter& writer, const std::string& name, const Tensor& nf4_tensor);

}  // namespace unicorn::bnb
