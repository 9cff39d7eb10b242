// The checked set of Gemma 3 weights of a checkpoint, by canonical name (tensor_table.h).
// Loading validates every tensor (present, right shape, usable dtype) and refuses unknown
// ones before any model memory is allocated; the tensors are views of the mapped files.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "formats/safetensors.h"
#include "models/gemma3/config.h"
#include "models/gemma3/tensor_table.h"

namespace unicorn::gemma3 {

struct ComponentStats {
  int64_t parameters = 0;
  int64_t bytes = 0;
  std::map<std::string, int64_t> bytes_by_dtype;
};

class Weights {
 public:
  // Checks `files` against tensor_table(config); throws Error naming the first problem.
  static Weights from_safetensors(std::shared_ptr<const SafetensorsSet> files, const Config& config);
  // Checks tensors already mapped to canonical names (a GGUF loader's output) against
  // tensor_table(config): every one present, of the table's shape, and of a float type:
  // F32, F16 or BF16, or for matrices (TensorSpec::matrix) also a block format when
  // `allow_block_formats`. Tensors that the table does not list are an error. `where`
  // names the source in messages. The tensors must keep their own memory alive.
  static Weights from_tensors(std::map<std::string, Tensor> tensors, const Config& config, const std::string& where,
                              bool allow_block_formats);

  const Tensor& get(const std::string& canonical) const;
  bool has(const std::string& canonical) const { return tensors_.count(canonical) != 0; }
  // The checkpoint's name prefix of each component ("" for an absent component).
  const std::string& prefix(Component c) const { return prefixes_[size_t(c)]; }
  const std::vector<TensorSpec>& specs() const { return specs_; }
  ComponentStats stats(Component c) const;

  // Quantizes the text decoder's matrices (TensorSpec::matrix: attention and MLP projections
  // and the token embedding, which is also the tied LM head) to `target`, as llama-quantize
  // would. A matrix whose rows are not whole blocks of the target gets `fallback` instead
  // (llama.cpp falls back likewise, e.g. for Q4_K rows of 1152), or stays as it is if those
  // do not fit either. The vision tower and projector keep their dtype. Rows split over pool.
  void quantize_text_matrices(DType target, DType fallback, ThreadPool* pool);

 private:
  std::shared_ptr<const SafetensorsSet> files_;  // keeps the mappings alive
  std::vector<TensorSpec> specs_;
  std::map<std::string, Tensor> tensors_;
  std::string prefixes_[3];
};

}  // namespace unicorn::gemma3
