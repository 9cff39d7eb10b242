// Backend's default compositions that need more than a line or two.
#include "ops/backend.h"

#include "ops/checks.h"

namespace unicorn {

void Backend::linear_parts(const Tensor& x, const Tensor& w, const Tensor* bias, std::span<Tensor* const> ys) {
  const int64_t m = ops::check_linear_parts(x, w, bias, ys, product_input_dtype() == DType::BF16);
  for (size_t p = 0; p < ys.size(); ++p) {
    const int64_t r0 = int64_t(p) * m;
    const Tensor b = bias ? bias->rows(r0, m) : Tensor();
    linear(x, w.rows(r0, m), bias ? &b : nullptr, *ys[p]);
  }
}

}  // namespace unicorn
