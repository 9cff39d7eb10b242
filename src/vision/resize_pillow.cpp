#include "vision/resize_pillow.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace unicorn::vision {

namespace {

// ref: Resample.c bilinear_filter; support 1.0.
double triangle(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

// ref: Resample.c clip8: drop the fraction (the +0.5 rounding is in the accumulator's start
// value), then clamp to 8 bits.
inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kResamplePrecisionBits;
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

constexpr int32_t kHalf = int32_t(1) << (kResamplePrecisionBits - 1);

// Rows [0, out.height) of `out` from rows [row0, row0 + out.height) of `in`, resampling x.
void horizontal_pass(const RgbImage& in, int64_t row0, const std::vector<ResampleTaps>& taps, RgbImage& out) {
  for (int64_t y = 0; y < out.height; ++y) {
    const uint8_t* src = in.row(row0 + y);
    uint8_t* dst = out.row(y);
    for (int64_t x = 0; x < out.width; ++x) {
      const ResampleTaps& t = taps[size_t(x)];
      const uint8_t* s = src + t.first * 3;
      int32_t r = kHalf, g = kHalf, b = kHalf;
      for (size_t k = 0; k < t.weights.size(); ++k, s += 3) {
        r += s[0] * t.weights[k];
        g += s[1] * t.weights[k];
        b += s[2] * t.weights[k];
      }
      dst[3 * x] = clip8(r);
      dst[3 * x + 1] = clip8(g);
      dst[3 * x + 2] = clip8(b);
    }
  }
}

// Resamples y; taps index rows of `in` relative to row `row0`.
void vertical_pass(const RgbImage& in, int64_t row0, const std::vector<ResampleTaps>& taps, RgbImage& out) {
  const int64_t n = out.row_bytes();
  std::vector<int32_t> acc(static_cast<size_t>(n));
  for (int64_t y = 0; y < out.height; ++y) {
    const ResampleTaps& t = taps[size_t(y)];
    std::fill(acc.begin(), acc.end(), kHalf);
    for (size_t k = 0; k < t.weights.size(); ++k) {
      const uint8_t* src = in.row(t.first - row0 + int64_t(k));
      const int32_t w = t.weights[k];
      for (int64_t i = 0; i < n; ++i) acc[size_t(i)] += src[i] * w;
    }
    uint8_t* dst = out.row(y);
    for (int64_t i = 0; i < n; ++i) dst[i] = clip8(acc[size_t(i)]);
  }
}

}  // namespace

std::vector<ResampleTaps> bilinear_taps(int64_t in_size, int64_t out_size) {
  if (in_size < 1 || out_size < 1) fail("resize from {} to {} samples: both sizes must be at least 1", in_size, out_size);
  // ref: Resample.c precompute_coeffs with box (0, in_size): the same double arithmetic in the
  // same order, so every coefficient and bound is identical to Pillow's.
  const double support_base = 1.0;
  const double scale = double(float(in_size)) / double(out_size);
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = support_base * filterscale;
  const double inv = 1.0 / filterscale;
  std::vector<ResampleTaps> taps(static_cast<size_t>(out_size));
  std::vector<double> w;
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = 0.0 + (double(xx) + 0.5) * scale;
    int xmin = int(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = int(in_size);
    xmax -= xmin;
    w.assign(size_t(std::max(xmax, 0)), 0.0);
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[size_t(x)] = triangle((x + xmin - center + 0.5) * inv);
      total += w[size_t(x)];
    }
    ResampleTaps& t = taps[size_t(xx)];
    t.first = xmin;
    t.weights.resize(w.size());
    for (size_t x = 0; x < w.size(); ++x) {
      const double k = total != 0.0 ? w[x] / total : w[x];
      // ref: Resample.c normalize_coeffs_8bpc: round half away from zero, by truncation.
      const double fixed = k * double(1 << kResamplePrecisionBits);
      t.weights[x] = k < 0 ? int32_t(-0.5 + fixed) : int32_t(0.5 + fixed);
    }
  }
  return taps;
}

RgbImage resize_bilinear_pillow(const RgbImage& image, int64_t out_width, int64_t out_height) {
  if (image.empty()) fail("cannot resize an empty {}x{} image", image.width, image.height);
  if (out_width < 1 || out_height < 1) fail("cannot resize to {}x{}: sizes must be at least 1", out_width, out_height);
  if (out_width == image.width && out_height == image.height) return image;

  const std::vector<ResampleTaps> vtaps = bilinear_taps(image.height, out_height);
  const bool need_horizontal = out_width != image.width;
  const bool need_vertical = out_height != image.height;
  // As Pillow does, the horizontal pass only covers the rows the vertical pass reads.
  const int64_t first_row = vtaps.front().first;
  const int64_t last_row = vtaps.back().first + int64_t(vtaps.back().weights.size());

  if (!need_horizontal) {
    RgbImage out = RgbImage::allocate(image.width, out_height);
    vertical_pass(image, 0, vtaps, out);
    return out;
  }
  const std::vector<ResampleTaps> htaps = bilinear_taps(image.width, out_width);
  RgbImage temp = RgbImage::allocate(out_width, last_row - first_row);
  horizontal_pass(image, first_row, htaps, temp);
  if (!need_vertical) return temp;  // first_row = 0 and all rows were used
  RgbImage out = RgbImage::allocate(out_width, out_height);
  vertical_pass(temp, first_row, vtaps, out);
  return out;
}

}  // namespace unicorn::vision
