// Random inputs and closeness checks shared by the backend op tests.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace unicorn::test {

// Normal(0, scale) values, as `dtype` (F32, F16, BF16 or a block format).
Tensor random_tensor(DType dtype, Shape shape, uint32_t seed, float scale = 1.0f);
// max |got - want| <= rel * max(1, max |want|), NaN only where want is NaN (gtest expectation).
void expect_close(const Tensor& got, const Tensor& want, double rel = 2e-5);

}  // namespace unicorn::test
