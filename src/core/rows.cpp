#include "core/rows.h"

#include <cstring>

#include "core/error.h"

namespace unicorn {

bool row_dtype_supported(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

void dequantize_row(const Tensor& w, int64_t row, float* out) {
  UNICORN_CHECK(w.rank() == 2 && row >= 0 && row < w.dim(0));
  const int64_t n = w.dim(1);
  const char* base = static_cast<const char*>(w.raw()) + dtype_bytes(w.dtype(), row * n);
  switch (w.dtype()) {
    case DType::F32:
      std::memcpy(out, base, size_t(n) * 4);
      return;
    case DType::BF16: {
      const auto* p = reinterpret_cast<const uint16_t*>(base);
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i]);
      return;
    }
    case DType::F16: {
      const auto* p = reinterpret_cast<const uint16_t*>(base);
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(p[i]);
      return;
    }
    default:
      fail("no row conversion for weights of dtype {}", dtype_name(w.dtype()));
  }
}

}  // namespace unicorn
