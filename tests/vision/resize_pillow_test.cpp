#include "vision/resize_pillow.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"

namespace unicorn::vision {
namespace {

RgbImage random_image(int64_t w, int64_t h, uint32_t seed) {
  RgbImage image = RgbImage::allocate(w, h);
  std::mt19937 rng(seed);
  for (auto& v : image.pixels) v = uint8_t(rng());
  return image;
}

// The filter in plain double arithmetic, without fixed point or the 8-bit rounding between
// the passes: an independent statement of "bilinear with antialiasing" (the triangle's support
// widened by the shrink factor, centred on each output pixel's footprint).
std::vector<double> reference_weights(int64_t in_size, int64_t out_size, int64_t o, int64_t* first) {
  const double scale = double(in_size) / double(out_size);
  const double stretch = std::max(scale, 1.0);
  const double center = (double(o) + 0.5) * scale;
  std::vector<double> w;
  *first = -1;
  double total = 0;
  for (int64_t i = 0; i < in_size; ++i) {
    const double t = std::abs((double(i) + 0.5 - center) / stretch);
    const double v = t < 1 ? 1 - t : 0;
    if (v > 0 && *first < 0) *first = i;
    if (*first >= 0 && v > 0) w.push_back(v);
    total += v;
  }
  for (double& v : w) v /= total;
  return w;
}

std::vector<double> reference_resize(const RgbImage& in, int64_t ow, int64_t oh) {
  std::vector<double> tmp(size_t(ow * in.height * 3)), out(size_t(ow * oh * 3));
  for (int64_t x = 0; x < ow; ++x) {
    int64_t first = 0;
    const auto w = reference_weights(in.width, ow, x, &first);
    for (int64_t y = 0; y < in.height; ++y)
      for (int c = 0; c < 3; ++c) {
        double s = 0;
        for (size_t k = 0; k < w.size(); ++k) s += w[k] * in.pixel(first + int64_t(k), y)[c];
        tmp[size_t((y * ow + x) * 3 + c)] = s;
      }
  }
  for (int64_t y = 0; y < oh; ++y) {
    int64_t first = 0;
    const auto w = reference_weights(in.height, oh, y, &first);
    for (int64_t x = 0; x < ow; ++x)
      for (int c = 0; c < 3; ++c) {
        double s = 0;
        for (size_t k = 0; k < w.size(); ++k) s += w[k] * tmp[size_t(((first + int64_t(k)) * ow + x) * 3 + c)];
        out[size_t((y * ow + x) * 3 + c)] = s;
      }
  }
  return out;
}

// Pillow's result differs from the exact filter only by its roundings: the horizontal pass
// to 8 bits (<= 0.5, carried through weights that sum to 1) and the final one (<= 0.5).
void expect_close_to_exact_filter(int64_t w, int64_t h, int64_t ow, int64_t oh) {
  const RgbImage in = random_image(w, h, uint32_t(w * 131 + h));
  const RgbImage out = resize_bilinear_pillow(in, ow, oh);
  ASSERT_EQ(out.width, ow);
  ASSERT_EQ(out.height, oh);
  const std::vector<double> exact = reference_resize(in, ow, oh);
  double worst = 0;
  for (size_t i = 0; i < exact.size(); ++i) worst = std::max(worst, std::abs(out.pixels[i] - exact[i]));
  EXPECT_LE(worst, 1.0 + 1e-6) << w << "x" << h << " -> " << ow << "x" << oh;
}

TEST(ResizePillow, ShrinkBothAxesAntialiased) { expect_close_to_exact_filter(301, 257, 64, 50); }
TEST(ResizePillow, ShrinkByNonIntegerFactor) { expect_close_to_exact_filter(100, 90, 37, 41); }
TEST(ResizePillow, EnlargeBothAxes) { expect_close_to_exact_filter(13, 7, 56, 40); }
TEST(ResizePillow, ShrinkOneAxisEnlargeTheOther) { expect_close_to_exact_filter(150, 20, 40, 64); }
TEST(ResizePillow, OnlyOneAxisChanges) {
  expect_close_to_exact_filter(50, 30, 50, 71);
  expect_close_to_exact_filter(50, 30, 17, 30);
}

TEST(ResizePillow, SameSizeIsACopy) {
  const RgbImage in = random_image(20, 10, 1);
  EXPECT_EQ(resize_bilinear_pillow(in, 20, 10).pixels, in.pixels);
}

TEST(ResizePillow, TapsAreNormalisedFixedPoint) {
  for (auto [in, out] : {std::pair<int64_t, int64_t>{1536, 896}, {100, 896}, {4000, 896}, {7, 3}}) {
    const auto taps = bilinear_taps(in, out);
    ASSERT_EQ(int64_t(taps.size()), out);
    for (const ResampleTaps& t : taps) {
      int64_t sum = 0;
      for (int32_t w : t.weights) sum += w;
      // Each weight is rounded on its own, so the sum is 1.0 within one unit per tap.
      EXPECT_LE(std::abs(sum - (int64_t(1) << kResamplePrecisionBits)), int64_t(t.weights.size()));
      EXPECT_GE(t.first, 0);
      EXPECT_LE(t.first + int64_t(t.weights.size()), in);
    }
  }
}

TEST(ResizePillow, BadSizes) {
  const RgbImage in = random_image(4, 4, 2);
  EXPECT_THROW(resize_bilinear_pillow(in, 0, 4), Error);
  EXPECT_THROW(resize_bilinear_pillow(RgbImage{}, 4, 4), Error);
}

}  // namespace
}  // namespace unicorn::vision
