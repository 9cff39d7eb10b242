#include "core/quant/quant.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/quant/formats.h"
#include "core/quant/quantize_simd.h"
#include "core/thread_pool.h"

namespace unicorn {

namespace {

using QuantizeFn = void (*)(const float*, void*, int64_t);
using DequantizeFn = void (*)(const void*, float*, int64_t);

void quantize_f32(const float* x, void* y, int64_t n) { std::memcpy(y, x, size_t(n) * 4); }
void quantize_f16(const float* x, void* y, int64_t n) {
  auto* o = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) o[i] = f32_to_f16(x[i]);
}
void quantize_bf16(const float* x, void* y, int64_t n) {
  auto* o = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) o[i] = f32_to_bf16(x[i]);
}
void dequantize_f32(const void* x, float* y, int64_t n) { std::memcpy(y, x, size_t(n) * 4); }
void dequantize_f16(const void* x, float* y, int64_t n) {
  const auto* p = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(p[i]);
}
void dequantize_bf16(const void* x, float* y, int64_t n) {
  const auto* p = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(p[i]);
}

struct Codec {
  QuantizeFn quantize;
  DequantizeFn dequantize;
};

Codec codec(DType t) {
  using namespace quant;
  switch (t) {
    case DType::F32: return {quantize_f32, dequantize_f32};
    case DType::F16: return {quantize_f16, dequantize_f16};
    case DType::BF16: return {quantize_bf16, dequantize_bf16};
    case DType::Q4_0: return {quantize_q4_0_fast, dequantize_q4_0};
    case DType::Q4_1: return {quantize_q4_1, dequantize_q4_1};
    case DType::Q5_0: return {quantize_q5_0, dequantize_q5_0};
    case DType::Q5_1: return {quantize_q5_1, dequantize_q5_1};
    case DType::Q8_0: return {quantize_q8_0_fast, dequantize_q8_0};
    case DType::Q2_K: return {quantize_q2_K, dequantize_q2_K};
    case DType::Q3_K: return {quantize_q3_K, dequantize_q3_K};
    case DType::Q4_K: return {quantize_q4_K, dequantize_q4_K};
    case DType::Q5_K: return {quantize_q5_K, dequantize_q5_K};
    case DType::Q6_K: return {quantize_q6_K, dequantize_q6_K};
    case DType::IQ4_NL: return {nullptr, dequantize_iq4_nl};  // its quantizer searches a table; not needed
    default: return {nullptr, nullptr};
  }
}

void check_count(DType t, int64_t n) {
  const int64_t block = dtype_info(t).block_elems;
  if (n < 0 || n % block != 0) fail("{} values cannot be stored as {} (blocks of {})", n, dtype_name(t), block);
}

}  // namespace

bool can_quantize_to(DType t) { return codec(t).quantize != nullptr; }
bool can_dequantize_from(DType t) { return codec(t).dequantize != nullptr; }

void quantize_values(DType t, const float* x, void* out, int64_t n) {
  const Codec c = codec(t);
  if (!c.quantize) fail("cannot quantize to {}", dtype_name(t));
  check_count(t, n);
  c.quantize(x, out, n);
}

void dequantize_values(DType t, const void* in, float* y, int64_t n) {
  const Codec c = codec(t);
  if (!c.dequantize) fail("cannot dequantize {}", dtype_name(t));
  check_count(t, n);
  c.dequantize(in, y, n);
}

Tensor quantize_matrix(const Tensor& matrix, DType target, ThreadPool* pool) {
  if (matrix.rank() != 2) fail("quantize_matrix: expected a [rows, cols] matrix, got {}", shape_str(matrix.shape()));
  Tensor out = Tensor::zeros(target, matrix.shape());
  quantize_matrix_into(matrix, target, out.raw(), pool);
  return out;
}

void quantize_matrix_into(const Tensor& matrix, DType target, void* out, ThreadPool* pool) {
  const DType src = matrix.dtype();
  if (matrix.rank() != 2) fail("quantize_matrix: expected a [rows, cols] matrix, got {}", shape_str(matrix.shape()));
  if (src != DType::F32 && src != DType::F16 && src != DType::BF16)
    fail("quantize_matrix: the matrix must be F32, F16 or BF16, got {}", dtype_name(src));
  if (!can_quantize_to(target)) fail("quantize_matrix: cannot quantize to {}", dtype_name(target));
  const int64_t rows = matrix.dim(0), cols = matrix.dim(1), block = dtype_info(target).block_elems;
  if (cols % block != 0)
    fail("quantize_matrix: rows of {} values are not whole {} blocks of {}", cols, dtype_name(target), block);
  const int64_t in_row = dtype_bytes(src, cols), out_row = dtype_bytes(target, cols);
  const Codec from = codec(src), to = codec(target);
  auto work = [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      from.dequantize(static_cast<const char*>(matrix.raw()) + r * in_row, row.data(), cols);
      to.quantize(row.data(), static_cast<char*>(out) + r * out_row, cols);
    }
  };
  if (pool) {
    pool->parallel_for(rows, 16, work);
  } else {
    work(0, rows);
  }
}

}  // namespace unicorn
