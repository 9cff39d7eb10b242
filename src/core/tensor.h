// Tensor: a typed, shaped view of memory, owned or borrowed (for example a slice of a
// memory-mapped weights file). Copying a Tensor copies the view, not the data.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace unicorn {

using Shape = std::vector<int64_t>;

// Side data of a block format whose scales are stored beside the codes rather than inside
// each block (NF4: bitsandbytes' quantization state). Formats derive from it.
struct TensorAux {
  virtual ~TensorAux() = default;
};

std::string shape_str(const Shape& shape);  // "[2, 3]"
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // Host memory owned by the tensor, 64-byte aligned, zero-filled.
  static Tensor zeros(DType dtype, Shape shape);
  // A view of memory that `keepalive` keeps valid (nullptr: the caller guarantees it).
  static Tensor view(DType dtype, Shape shape, const void* data,
                     std::shared_ptr<const void> keepalive = nullptr);
  static Tensor from_f32(std::span<const float> values, Shape shape);

  // False for a default-constructed Tensor (which holds nothing, not even a scalar).
  bool defined() const { return data_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return int(shape_.size()); }
  // Dimension i; negative i counts from the end.
  int64_t dim(int i) const;
  int64_t numel() const { return shape_numel(shape_); }
  int64_t nbytes() const { return dtype_bytes(dtype_, numel()); }

  void* raw() const { return data_; }
  template <class T>
  T* data() const { return static_cast<T*>(data_); }

  // Rows [begin, begin + count) of the first dimension, as a view sharing ownership.
  Tensor rows(int64_t begin, int64_t count) const;
  // The same bytes with another shape of equal element count.
  Tensor reshaped(Shape shape) const;
  // A deep copy in host memory (the side data, immutable, is shared).
  Tensor clone() const;

  const std::shared_ptr<const TensorAux>& aux() const { return aux_; }
  // The same view, also keeping `other`'s memory alive.
  Tensor with_keepalive(const Tensor& other) const {
    Tensor t = *this;
    t.owner_ = std::make_shared<std::pair<std::shared_ptr<const void>, std::shared_ptr<const void>>>(owner_, other.owner_);
    return t;
  }
  Tensor with_aux(std::shared_ptr<const TensorAux> aux) const {
    Tensor t = *this;
    t.aux_ = std::move(aux);
    return t;
  }
  // All values as f32 (plain float types, and ggml block formats dequantized as ggml does).
  std::vector<float> to_f32() const;
  // Converts a float tensor to F32, F16, BF16 or a block format (core/quant/quant.h: the last
  // dimension must be whole blocks; Q4_0_X16 / Q8_0_X16 for matrices only).
  Tensor converted(DType to) const;

 private:
  DType dtype_ = DType::F32;
  Shape shape_;
  void* data_ = nullptr;
  std::shared_ptr<const void> owner_;
  std::shared_ptr<const TensorAux> aux_;
};

}  // namespace unicorn
