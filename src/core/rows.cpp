#include "core/rows.h"

#include "core/error.h"
#include "core/quant/interleaved.h"
#include "core/quant/nf4.h"
#include "core/quant/quant.h"

namespace unicorn {

bool row_dtype_supported(DType t) { return can_dequantize_from(t) || is_interleaved(t) || t == DType::NF4; }

void dequantize_row(const Tensor& w, int64_t row, float* out) {
  UNICORN_CHECK(w.rank() == 2 && row >= 0 && row < w.dim(0));
  if (is_interleaved(w.dtype())) return dequantize_interleaved_row(w, row, out);
  if (w.dtype() == DType::NF4)  // blocks run over the flattened tensor (they may straddle rows)
    return nf4::dequantize(w.data<const uint8_t>(), nf4::state_of(w), row * w.dim(1), w.dim(1), out);
  if (!can_dequantize_from(w.dtype())) fail("no row conversion for weights of dtype {}", dtype_name(w.dtype()));
  const int64_t n = w.dim(1);
  const char* base = static_cast<const char*>(w.raw()) + dtype_bytes(w.dtype(), row * n);
  dequantize_values(w.dtype(), base, out, n);
}

}  // namespace unicorn
