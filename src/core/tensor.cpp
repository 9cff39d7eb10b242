#include "core/tensor.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/quant/nf4.h"
#include "core/quant/interleaved.h"
#include "core/quant/quant.h"

namespace unicorn {

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  for (int64_t d : shape) {
    if (d < 0) fail("negative dimension in shape {}", shape_str(shape));
  }
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  const size_t bytes = size_t(t.nbytes());
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) fail("out of memory allocating {} bytes for a tensor of shape {}", bytes, shape_str(t.shape_));
  std::memset(p, 0, rounded == 0 ? 64 : rounded);
  t.data_ = p;
  t.owner_ = std::shared_ptr<const void>(p, [](const void* q) { std::free(const_cast<void*>(q)); });
  return t;
}

Tensor Tensor::view(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> keepalive) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = const_cast<void*>(data);
  t.owner_ = std::move(keepalive);
  return t;
}

Tensor Tensor::from_f32(std::span<const float> values, Shape shape) {
  if (shape_numel(shape) != int64_t(values.size()))
    fail("from_f32: {} values do not fill shape {}", values.size(), shape_str(shape));
  Tensor t = zeros(DType::F32, std::move(shape));
  std::memcpy(t.data_, values.data(), values.size() * sizeof(float));
  return t;
}

int64_t Tensor::dim(int i) const {
  const int r = rank();
  if (i < 0) i += r;
  UNICORN_CHECK(i >= 0 && i < r);
  return shape_[size_t(i)];
}

Tensor Tensor::rows(int64_t begin, int64_t count) const {
  UNICORN_CHECK(rank() >= 1 && begin >= 0 && count >= 0 && begin + count <= shape_[0]);
  // An interleaved matrix keeps its rows in groups of 16 (core/quant/interleaved.h): a view
  // holds whole groups, or runs to the last row (the plain tail).
  if (is_interleaved(dtype_) &&
      (begin % kInterleaveRows != 0 || (count % kInterleaveRows != 0 && begin + count != shape_[0])))
    fail("rows [{}, {}) of an interleaved {} matrix {} would split its groups of {} rows", begin, begin + count,
         dtype_name(dtype_), shape_str(shape_), kInterleaveRows);
  Shape s = shape_;
  s[0] = count;
  const int64_t row_elems = shape_[0] == 0 ? 0 : numel() / shape_[0];
  Tensor t = *this;
  t.shape_ = std::move(s);
  t.data_ = static_cast<char*>(data_) + dtype_bytes(dtype_, begin * row_elems);
  return t;
}

Tensor Tensor::reshaped(Shape shape) const {
  if (shape_numel(shape) != numel())
    fail("cannot reshape {} to {}", shape_str(shape_), shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = zeros(dtype_, shape_);
  if (nbytes() > 0) std::memcpy(t.data_, data_, size_t(nbytes()));
  t.aux_ = aux_;
  return t;
}

std::vector<float> Tensor::to_f32() const {
  const int64_t n = numel();
  std::vector<float> out(static_cast<size_t>(n));
  switch (dtype_) {
    case DType::F32:
      if (n) std::memcpy(out.data(), data_, size_t(n) * 4);
      break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) out[size_t(i)] = bf16_to_f32(data<const uint16_t>()[i]);
      break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) out[size_t(i)] = f16_to_f32(data<const uint16_t>()[i]);
      break;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) out[size_t(i)] = float(data<const double>()[i]);
      break;
    default:
      if (is_interleaved(dtype_)) {  // rows are not contiguous
        UNICORN_CHECK(rank() == 2);
        const int64_t cols = shape_[1];
        for (int64_t r = 0; r < shape_[0]; ++r) dequantize_interleaved_row(*this, r, out.data() + r * cols);
      } else if (can_dequantize_from(dtype_)) {  // ggml block formats
        dequantize_values(dtype_, data_, out.data(), n);
      } else if (dtype_ == DType::NF4) {
        nf4::dequantize(static_cast<const uint8_t*>(data_), nf4::state_of(*this), 0, n, out.data());
      } else {
        fail("to_f32: tensor of dtype {} does not hold float values", dtype_name(dtype_));
      }
  }
  return out;
}

Tensor Tensor::converted(DType to) const {
  if (to == dtype_) return clone();
  const std::vector<float> v = to_f32();
  Tensor t = zeros(to, shape_);
  const size_t n = v.size();
  switch (to) {
    case DType::F32:
      if (n) std::memcpy(t.data_, v.data(), n * 4);
      break;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) t.data<uint16_t>()[i] = f32_to_bf16(v[i]);
      break;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) t.data<uint16_t>()[i] = f32_to_f16(v[i]);
      break;
    default:
      if (is_interleaved(to)) return interleave_rows(converted(plain_of(to)));  // [rows, cols] only
      // Block formats quantize along the last dimension: its length must be whole blocks.
      if (!can_quantize_to(to)) fail("converted: cannot convert to {}", dtype_name(to));
      if (rank() == 0 || shape_.back() % dtype_info(to).block_elems)
        fail("converted: rows of shape {} are not whole {} blocks of {}", shape_str(shape_), dtype_name(to),
             dtype_info(to).block_elems);
      quantize_values(to, v.data(), t.data_, int64_t(n));
  }
  return t;
}

}  // namespace unicorn
