// Image resizing that reproduces Pillow's Image.resize(size, resample=Image.BILINEAR) on 8-bit
// images bit for bit (ref: Pillow src/libImaging/Resample.c): a separable triangle filter whose
// support widens by the scale factor when shrinking (antialiasing), coefficients normalised
// in double and rounded to 22-bit fixed point, a horizontal pass rounded to 8 bits, then a
// vertical pass. Gemma 3's processor (Gemma3ImageProcessorPil) resizes with exactly this.
#pragma once

#include <cstdint>
#include <vector>

#include "vision/image.h"

namespace unicorn::vision {

// The filter taps of one output position: input samples [first, first + weights.size()).
struct ResampleTaps {
  int64_t first = 0;
  std::vector<int32_t> weights;  // fixed point, 1.0 = 1 << kResamplePrecisionBits
};

// Pillow's PRECISION_BITS: 32 bits less 8 for the sample, less 2 for overflow headroom.
inline constexpr int kResamplePrecisionBits = 32 - 8 - 2;

// The taps for resizing `in_size` samples to `out_size` with Pillow's bilinear filter.
std::vector<ResampleTaps> bilinear_taps(int64_t in_size, int64_t out_size);

// Resizes to out_width x out_height (both >= 1); the same size returns a copy, as Pillow does.
RgbImage resize_bilinear_pillow(const RgbImage& image, int64_t out_width, int64_t out_height);

}  // namespace unicorn::vision
