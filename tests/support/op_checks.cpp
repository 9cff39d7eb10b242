#include "support/op_checks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace unicorn::test {

Tensor random_tensor(DType dtype, Shape shape, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = dist(rng);
  Tensor f = Tensor::from_f32(v, shape);
  return dtype == DType::F32 ? f : f.converted(dtype);
}

void expect_close(const Tensor& got, const Tensor& want, double rel) {
  ASSERT_EQ(got.shape(), want.shape());
  const auto a = got.to_f32(), b = want.to_f32();
  double scale = 0, worst = 0;
  for (float x : b) scale = std::max(scale, double(std::fabs(x)));
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) {  // NaN only where NaN is expected (max() would skip it)
      if (std::isnan(a[i]) != std::isnan(b[i])) worst = std::numeric_limits<double>::infinity();
      continue;
    }
    worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  }
  EXPECT_LE(worst, rel * std::max(1.0, scale)) << "max |diff| " << worst << " at scale " << scale;
}

}  // namespace unicorn::test
