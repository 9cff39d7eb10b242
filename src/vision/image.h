// RgbImage: an 8-bit RGB image in host memory, rows top to bottom, pixels interleaved R, G, B
// (what Pillow holds after convert("RGB"), and what numpy.asarray(image) shows as [H, W, 3]).
#pragma once

#include <cstdint>
#include <vector>

namespace unicorn::vision {

struct RgbImage {
  int64_t width = 0;
  int64_t height = 0;
  std::vector<uint8_t> pixels;  // [height, width, 3]

  // A zero-filled image; throws Error for negative sizes.
  static RgbImage allocate(int64_t width, int64_t height);

  bool empty() const { return width == 0 || height == 0; }
  int64_t row_bytes() const { return width * 3; }
  uint8_t* row(int64_t y) { return pixels.data() + y * row_bytes(); }
  const uint8_t* row(int64_t y) const { return pixels.data() + y * row_bytes(); }
  const uint8_t* pixel(int64_t x, int64_t y) const { return row(y) + x * 3; }
};

// The rectangle [x, x + width) x [y, y + height), which must lie inside the image.
RgbImage crop(const RgbImage& image, int64_t x, int64_t y, int64_t width, int64_t height);

}  // namespace unicorn::vision
